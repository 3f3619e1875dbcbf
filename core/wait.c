/* `rdhpf wait` and `rdhpf events`: see wait.h.
 *
 * Both subscribe to the daemon's event stream with a replay of the current
 * state first ("events --since-start"), so nothing that happened before the
 * client connected is missed, and then only react to what the daemon sends:
 * no polling of the daemon. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "util.h"
#include "wait.h"

#define LINE_MAX_BYTES (64 * 1024)
/* A forward the daemon calls active whose local connect still fails is
 * tried again this often (a local connect, not a question to the daemon). */
#define RECHECK_MS 20
#define CONNECT_MS 500

/* ---- pure part ---- */

static const char *
js(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static void
copy(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src ? src : "");
}

void
wait_init(struct wait_state *w, const char *host, const struct wait_target *t, size_t n)
{
	memset(w, 0, sizeof *w);
	w->host = host;
	w->targets = t;
	w->n_targets = n;
}

void
wait_free(struct wait_state *w)
{
	free(w->fwds);
	free(w->hosts);
	memset(w, 0, sizeof *w);
}

static struct wait_host *
host_get(struct wait_state *w, const char *name)
{
	for (size_t i = 0; i < w->n_hosts; i++)
		if (strcmp(w->hosts[i].name, name) == 0)
			return &w->hosts[i];
	w->hosts = xrealloc(w->hosts, (w->n_hosts + 1) * sizeof *w->hosts);
	memset(&w->hosts[w->n_hosts], 0, sizeof *w->hosts);
	copy(w->hosts[w->n_hosts].name, sizeof w->hosts->name, name);
	return &w->hosts[w->n_hosts++];
}

static const struct wait_host *
host_find(const struct wait_state *w, const char *name)
{
	for (size_t i = 0; i < w->n_hosts; i++)
		if (strcmp(w->hosts[i].name, name) == 0)
			return &w->hosts[i];
	return NULL;
}

static int
host_up(const struct wait_state *w, const char *name)
{
	const struct wait_host *h = host_find(w, name);
	return h != NULL && (strcmp(h->state, "steady") == 0 || strcmp(h->state, "syncing") == 0);
}

void
wait_feed(struct wait_state *w, const json_t *ev)
{
	const char *type = js(ev, "type");
	const char *host = js(ev, "host");

	if (strcmp(type, "replay-end") == 0) {
		w->replayed = 1;
		return;
	}
	if (strcmp(type, "closed") == 0) {
		copy(w->closed, sizeof w->closed, js(ev, "reason"));
		return;
	}
	if (w->host != NULL && *host && strcmp(w->host, host) != 0)
		return;
	if (strcmp(type, "host") == 0) {
		struct wait_host *h = host_get(w, host);
		copy(h->state, sizeof h->state, js(ev, "state"));
		copy(h->error, sizeof h->error, js(ev, "error"));
		return;
	}
	if (strcmp(type, "forward") == 0) {
		const char *bind = js(ev, "bind"), *what = js(ev, "event");
		int port = (int)json_integer_value(json_object_get(ev, "local_port"));
		int rport = (int)json_integer_value(json_object_get(ev, "remote_port"));
		int skipped = strcmp(what, "skipped") == 0;
		struct wait_fwd *f = NULL;

		/* A forward is (host, bind, local port); a skipped port has no
		 * forward: it is (host, container, remote port). */
		for (size_t i = 0; i < w->n_fwds; i++) {
			struct wait_fwd *x = &w->fwds[i];
			if (strcmp(x->host, host) != 0 ||
			    (strcmp(x->event, "skipped") == 0) != skipped)
				continue;
			if (skipped ? x->remote_port == rport &&
			                  strcmp(x->container, js(ev, "container")) == 0
			            : x->local_port == port && strcmp(x->bind, bind) == 0) {
				f = x;
				break;
			}
		}
		if (strcmp(what, "removed") == 0) {
			if (f != NULL)
				*f = w->fwds[--w->n_fwds];
			return;
		}
		if (f == NULL) {
			w->fwds = xrealloc(w->fwds, (w->n_fwds + 1) * sizeof *w->fwds);
			f = &w->fwds[w->n_fwds++];
			memset(f, 0, sizeof *f);
		}
		copy(f->host, sizeof f->host, host);
		copy(f->bind, sizeof f->bind, bind);
		f->local_port = port;
		f->remote_port = (int)json_integer_value(json_object_get(ev, "remote_port"));
		copy(f->container, sizeof f->container, js(ev, "container"));
		copy(f->event, sizeof f->event, what);
		copy(f->reason, sizeof f->reason, js(ev, "reason"));
	}
}

static int
matches(const struct wait_target *t, const struct wait_fwd *f)
{
	if (t->container != NULL)
		return strcmp(t->container, f->container) == 0;
	return f->local_port == t->port;
}

int
wait_check(const struct wait_state *w, struct wait_addr **addrs, size_t *n_addrs)
{
	struct wait_addr *a = NULL;
	size_t na = 0;

	*addrs = NULL;
	*n_addrs = 0;
	if (!w->replayed)
		return 0;
	for (size_t t = 0; t < w->n_targets; t++) {
		size_t found = 0;
		for (size_t i = 0; i < w->n_fwds; i++) {
			const struct wait_fwd *f = &w->fwds[i];
			if (!matches(&w->targets[t], f) || strcmp(f->event, "skipped") == 0)
				continue; /* a skipped port is no forward to wait for */
			if (strcmp(f->event, "active") != 0 || !host_up(w, f->host)) {
				free(a);
				return 0;
			}
			a = xrealloc(a, (na + 1) * sizeof *a);
			copy(a[na].bind, sizeof a->bind, f->bind);
			a[na].port = f->local_port;
			na++;
			found++;
		}
		if (found == 0) {
			free(a);
			return 0;
		}
	}
	*addrs = a;
	*n_addrs = na;
	return 1;
}

static void
hosts_down(const struct wait_state *w, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < w->n_hosts && o < len; i++) {
		const struct wait_host *h = &w->hosts[i];
		if (host_up(w, h->name))
			continue;
		o += (size_t)snprintf(buf + o, len - o, "%shost %s is %s%s%s", o ? "; " : "",
		                      h->name, h->state, h->error[0] ? ": " : "", h->error);
	}
}

void
wait_explain(const struct wait_state *w, size_t ti, char *buf, size_t len)
{
	const struct wait_target *t = &w->targets[ti];
	char what[160], down[400];
	size_t o;

	if (t->container != NULL)
		snprintf(what, sizeof what, "container %s", t->container);
	else
		snprintf(what, sizeof what, "port %d", t->port);
	o = (size_t)snprintf(buf, len, "%s: ", what);
	if (o >= len)
		return;
	hosts_down(w, down, sizeof down);
	/* Forwards first; a skipped port only when no forward explains it. */
	for (size_t i = 0; i < 2 * w->n_fwds; i++) {
		const struct wait_fwd *f = &w->fwds[i % w->n_fwds];
		int skipped = strcmp(f->event, "skipped") == 0;
		if (!matches(t, f) || skipped != (i >= w->n_fwds) ||
		    (strcmp(f->event, "active") == 0 && host_up(w, f->host)))
			continue;
		if (skipped)
			snprintf(buf + o, len - o, "remote port %d (%s on %s) skipped: %s",
			         f->remote_port, f->container, f->host, f->reason);
		else if (strcmp(f->event, "active") == 0 || strcmp(f->event, "added") == 0)
			snprintf(buf + o, len - o, "%s:%d (%s on %s) not active yet%s%s", f->bind,
			         f->local_port, f->container, f->host, down[0] ? ": " : "", down);
		else
			snprintf(buf + o, len - o, "%s:%d (%s on %s) %s%s%s", f->bind,
			         f->local_port, f->container, f->host, f->event,
			         f->reason[0] ? ": " : "", f->reason);
		return;
	}
	if (!w->replayed)
		snprintf(buf + o, len - o, "the daemon did not send its state");
	else if (down[0])
		snprintf(buf + o, len - o, "no forward: %s", down);
	else if (t->container != NULL)
		snprintf(buf + o, len - o,
		         "no such container running%s%s (or it publishes no TCP port)",
		         w->host ? " on " : "", w->host ? w->host : "");
	else
		snprintf(buf + o, len - o, "no container publishes it%s%s", w->host ? " on " : "",
		         w->host ? w->host : "");
}

/* ---- I/O ---- */

static long
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A local connect to a forward: is it serving?  Bounded by CONNECT_MS. */
static int
serving(const struct wait_addr *a)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	const char *b = a->bind;
	int fd, r, err = 0;
	socklen_t el = sizeof err;
	struct pollfd p;

	memset(&ss, 0, sizeof ss);
	if (strcmp(b, "0.0.0.0") == 0 || *b == '\0')
		b = "127.0.0.1";
	else if (strcmp(b, "::") == 0)
		b = "::1";
	if (strchr(b, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)a->port);
		if (inet_pton(AF_INET6, b, &s6->sin6_addr) != 1)
			return 0;
		sl = sizeof *s6;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)a->port);
		if (inet_pton(AF_INET, b, &s4->sin_addr) != 1)
			return 0;
		sl = sizeof *s4;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	r = connect(fd, (struct sockaddr *)&ss, sl);
	if (r != 0 && errno == EINPROGRESS) {
		p.fd = fd;
		p.events = POLLOUT;
		r = poll(&p, 1, CONNECT_MS) == 1 &&
		            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0
		        ? 0
		        : -1;
	}
	close(fd);
	return r == 0;
}

/* Reads lines from fd into buf; calls fn for each complete line.  -1 on EOF
 * or error, 0 otherwise. */
static int
read_lines(int fd, char *buf, size_t *len, void (*fn)(void *arg, char *line), void *arg)
{
	ssize_t n = read(fd, buf + *len, LINE_MAX_BYTES - *len);
	char *start = buf, *nl;

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0)
		return -1;
	*len += (size_t)n;
	while ((nl = memchr(start, '\n', *len - (size_t)(start - buf))) != NULL) {
		*nl = '\0';
		fn(arg, start);
		start = nl + 1;
	}
	*len -= (size_t)(start - buf);
	memmove(buf, start, *len);
	if (*len == LINE_MAX_BYTES)
		*len = 0; /* a line longer than any event: drop it */
	return 0;
}

static void
feed_line(void *arg, char *line)
{
	json_error_t je;
	json_t *o = json_loads(line, 0, &je);

	if (o != NULL)
		wait_feed(arg, o);
	json_decref(o);
}

static void
stream_cmd(char *buf, size_t len, const char *host)
{
	snprintf(buf, len, "events --since-start%s%s", host ? " --host " : "", host ? host : "");
}

int
wait_run(const char *rundir, const char *host, long timeout_ms, const struct wait_target *t,
         size_t n)
{
	struct wait_state w;
	char cmd[256], err[768], *buf = xmalloc(LINE_MAX_BYTES + 1);
	size_t len = 0;
	long deadline = mono_ms() + timeout_ms;
	int fd, rc = 1, eof = 0, recheck = 0;

	stream_cmd(cmd, sizeof cmd, host);
	fd = control_connect(rundir, cmd, err, sizeof err);
	if (fd < 0) {
		fprintf(stderr, "rdhpf wait: %s\n", err);
		free(buf);
		return 1;
	}
	wait_init(&w, host, t, n);
	for (;;) {
		struct wait_addr *a;
		size_t na;
		long left = deadline - mono_ms();
		struct pollfd p = {.fd = fd, .events = POLLIN};

		if (wait_check(&w, &a, &na)) {
			size_t ok = 0;
			while (ok < na && serving(&a[ok]))
				ok++;
			if (ok == na) {
				for (size_t i = 0; i < na; i++)
					printf("ready: %s:%d\n", a[i].bind, a[i].port);
				free(a);
				rc = 0;
				break;
			}
			free(a);
			recheck = 1;
		} else {
			recheck = 0;
		}
		if (left <= 0 || eof)
			break;
		if (poll(&p, 1, recheck && left > RECHECK_MS ? RECHECK_MS : (int)left) > 0 &&
		    read_lines(fd, buf, &len, feed_line, &w) != 0)
			eof = 1;
	}
	if (rc != 0) {
		char why[512];
		if (eof)
			fprintf(stderr, "rdhpf wait: the daemon closed the stream%s%s\n",
			        w.closed[0] ? ": " : "", w.closed);
		else
			fprintf(stderr, "rdhpf wait: not ready after %ld ms:\n", timeout_ms);
		for (size_t i = 0; i < n; i++) {
			struct wait_target one = t[i];
			struct wait_state w1 = w;
			struct wait_addr *a;
			size_t na;
			w1.targets = &one;
			w1.n_targets = 1;
			if (wait_check(&w1, &a, &na)) {
				/* Active per the daemon, but a local connect fails. */
				if (t[i].container != NULL)
					fprintf(stderr,
					        "  container %s: active but not serving (local "
					        "connect refused)\n",
					        t[i].container);
				else
					fprintf(stderr,
					        "  port %d: active but not serving (local connect "
					        "refused)\n",
					        t[i].port);
				free(a);
				continue;
			}
			wait_explain(&w, i, why, sizeof why);
			fprintf(stderr, "  %s\n", why);
		}
	}
	close(fd);
	wait_free(&w);
	free(buf);
	return rc;
}

/* ---- events ---- */

struct events_out {
	FILE *out;
	int logfmt;
	int closed;
};

static void
logfmt_value(FILE *out, const json_t *v)
{
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		int quote = *s == '\0' || strpbrk(s, " =\"\\") != NULL;
		if (!quote) {
			for (const char *p = s; *p; p++)
				if ((unsigned char)*p < 0x20 || *p == 0x7f)
					quote = 1;
		}
		if (!quote) {
			fputs(s, out);
			return;
		}
		fputc('"', out);
		for (const char *p = s; *p; p++) {
			if (*p == '"' || *p == '\\')
				fprintf(out, "\\%c", *p);
			else if ((unsigned char)*p < 0x20 || *p == 0x7f)
				fprintf(out, "\\x%02x", (unsigned char)*p);
			else
				fputc(*p, out);
		}
		fputc('"', out);
	} else if (json_is_null(v)) {
		fputs("-", out);
	} else {
		char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(13));
		fputs(t ? t : "?", out);
		free(t);
	}
}

static void
print_line(void *arg, char *line)
{
	struct events_out *eo = arg;
	json_error_t je;
	json_t *o;
	const char *k;
	json_t *v;
	int first = 1;

	o = json_loads(line, 0, &je);
	if (o != NULL && strcmp(js(o, "type"), "closed") == 0)
		eo->closed = 1;
	if (!eo->logfmt || o == NULL) {
		fprintf(eo->out, "%s\n", line);
	} else {
		json_object_foreach(o, k, v)
		{
			if (json_is_null(v))
				continue;
			fprintf(eo->out, "%s%s=", first ? "" : " ", k);
			logfmt_value(eo->out, v);
			first = 0;
		}
		fputc('\n', eo->out);
	}
	fflush(eo->out);
	json_decref(o);
}

int
events_run(const char *rundir, const char *host, int since_start, int logfmt, FILE *out)
{
	char cmd[256], err[768], *buf;
	size_t len = 0;
	struct events_out eo = {.out = out, .logfmt = logfmt};
	int fd;

	snprintf(cmd, sizeof cmd, "events%s%s%s", since_start ? " --since-start" : "",
	         host ? " --host " : "", host ? host : "");
	fd = control_connect(rundir, cmd, err, sizeof err);
	if (fd < 0) {
		fprintf(stderr, "rdhpf events: %s\n", err);
		return 1;
	}
	buf = xmalloc(LINE_MAX_BYTES + 1);
	while (read_lines(fd, buf, &len, print_line, &eo) == 0)
		;
	close(fd);
	free(buf);
	return eo.closed ? 1 : 0;
}
