/* The control socket: `status` and `metrics` ask the running daemon.
 *
 * Protocol: the client connects to RUNDIR/control.sock (mode 0600 in the
 * 0700 runtime directory), writes one command line ("status" or "metrics"),
 * and reads the answer until the daemon closes.  One request a connection;
 * requests longer than a line are refused.
 *
 * A stream command ("events …") keeps the connection: the daemon writes one
 * line per event until either side closes.  A client that does not read
 * never slows the daemon: past STREAM_QUEUE_MAX unsent bytes it gets one
 * last line saying so and is cut off. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "core.h"
#include "log.h"
#include "reqsrv.h"
#include "util.h"

#define REQ_MAX 128
/* The control socket is private to the user; its cap and deadline only
 * keep a stuck client from holding the daemon's fds or its exit. */
#define CONTROL_MAX_CONNS 32
#define CONTROL_DEADLINE_MS 10000
/* Unsent bytes a stream client may have before it is cut off. */
#define STREAM_QUEUE_MAX (256 * 1024)

struct control {
	struct reqsrv *srv;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	control_handler_fn handler;
	control_stream_fn stream;
	void *arg;
};

/* A stream command takes its connection over (see reqsrv_stream). */
static int
control_stream_take(const char *req, size_t len, struct reqsrv_stream *rs, void *arg)
{
	struct control *c = arg;
	const char *nl = memchr(req, '\n', len);
	char cmd[REQ_MAX];

	if (nl == NULL)
		return -1;
	if (c->stream == NULL)
		return 0;
	memcpy(cmd, req, (size_t)(nl - req));
	cmd[nl - req] = '\0';
	return c->stream(cmd, (struct control_stream *)rs, c->arg);
}

void
control_stream_send(struct control_stream *s, const char *line, size_t len)
{
	reqsrv_stream_send((struct reqsrv_stream *)s, line, len);
}

void
control_stream_on_close(struct control_stream *s, void (*fn)(void *arg), void *arg)
{
	reqsrv_stream_on_close((struct reqsrv_stream *)s, fn, arg);
}

void
control_stream_close(struct control_stream *s, const char *reason)
{
	reqsrv_stream_close((struct reqsrv_stream *)s, reason);
}

static char *
control_answer(const char *req, size_t len, void *arg)
{
	struct control *c = arg;
	const char *nl = memchr(req, '\n', len);
	char cmd[REQ_MAX];
	char *reply;

	if (nl == NULL)
		return NULL;
	memcpy(cmd, req, (size_t)(nl - req));
	cmd[nl - req] = '\0';
	reply = c->handler(cmd, c->arg);
	return reply != NULL ? reply : xstrdup("error: unknown command\n");
}

struct control *
control_start(const char *rundir, control_handler_fn handler, void *arg, char *err, size_t errlen)
{
	struct control *c = xcalloc(1, sizeof *c);
	struct reqsrv_opts o = {
	    .what = "control",
	    .max_conns = CONTROL_MAX_CONNS,
	    .max_request = REQ_MAX - 1,
	    .deadline_ms = CONTROL_DEADLINE_MS,
	    .answer = control_answer,
	    .stream = control_stream_take,
	    .stream_queue_max = STREAM_QUEUE_MAX,
	    .arg = c,
	};

	if ((size_t)snprintf(c->path, sizeof c->path, "%s/control.sock", rundir) >=
	    sizeof c->path) {
		snprintf(err, errlen, "control socket path too long under %s", rundir);
		free(c);
		return NULL;
	}
	c->handler = handler;
	c->arg = arg;
	/* We hold the instance lock: a socket here is a dead daemon's. */
	unlink(c->path);
	c->srv = reqsrv_pipe(c->path, 0600, &o, err, errlen);
	if (c->srv == NULL) {
		unlink(c->path);
		free(c);
		return NULL;
	}
	return c;
}

void
control_set_stream(struct control *c, control_stream_fn fn)
{
	c->stream = fn;
}

void
control_stop(struct control *c)
{
	if (c == NULL)
		return;
	unlink(c->path);
	reqsrv_stop(c->srv);
	free(c);
}

/* ---- client ---- */

int
control_connect(const char *rundir, const char *cmd, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	int fd;

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if ((size_t)snprintf(sa.sun_path, sizeof sa.sun_path, "%s/control.sock", rundir) >=
	    sizeof sa.sun_path) {
		snprintf(err, errlen, "control socket path too long");
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		snprintf(err, errlen, "no rdhpf running with runtime directory %s (%s: %s)", rundir,
		         sa.sun_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (write(fd, cmd, strlen(cmd)) < 0 || write(fd, "\n", 1) < 0) {
		snprintf(err, errlen, "control socket: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int
control_request(const char *rundir, const char *cmd, char **out, char *err, size_t errlen)
{
	int fd = control_connect(rundir, cmd, err, errlen);
	size_t len = 0, cap = 65536;
	char *buf;

	if (fd < 0)
		return -1;
	buf = xmalloc(cap);
	for (;;) {
		ssize_t n;
		if (len + 1 >= cap)
			buf = xrealloc(buf, cap *= 2);
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	*out = buf;
	return 0;
}

/* ---- metrics text ---- */

static const char *
metric_help(const char *name)
{
	static const struct {
		const char *name, *help;
	} h[] = {
	    {"connects_total", "Successful transport connects."},
	    {"disconnects_total", "Links lost after being connected."},
	    {"reconnect_seconds", "Time from link loss to the next successful connect."},
	    {"forward_add_seconds",
	     "Time from asking the transport for a forward to it being active."},
	    {"health_check_seconds", "Duration of transport health checks."},
	    {"events_total", "Container events received from the runtime."},
	    {"resyncs_total",
	     "Full resyncs after a stream failure, and lists after a runtime lost an event."},
	    {"forwards_active", "Forwards currently active."},
	    {"host_state", "Host state: 0 idle, 1 connecting, 2 syncing, 3 steady, 4 backoff, 5 "
	                   "breaker-open, 6 stopped, 7 failed (configuration can never work)."},
	    {"breaker_open", "1 while the host's circuit breaker is open."},
	    {"dead_link_detect_seconds",
	     "Time from the last sign of life to declaring the link dead."},
	    {"connections_dropped_total", "Control or metrics_listen connections closed "
	                                  "unanswered: deadline, cap or request too long."},
	    {"stream_clients_cut_total", "Event stream clients cut off for not reading."},
	    {"loop_pauses_total",
	     "Times the loop did not run for a while (sleep, SIGSTOP) and every host was checked."},
	};
	for (size_t i = 0; i < sizeof h / sizeof h[0]; i++)
		if (strcmp(h[i].name, name) == 0)
			return h[i].help;
	return "Reported by a plugin.";
}

static void
append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < *cap - *len) {
			*len += (size_t)n;
			return;
		}
		*cap = *cap * 2 + (n > 0 ? (size_t)n : 0);
		*buf = xrealloc(*buf, *cap);
	}
}

/* Label values: backslash, double quote and newline escaped. */
static void
label(char *out, size_t outlen, const char *v)
{
	size_t o = 0;

	for (const char *p = v ? v : ""; *p && o + 3 < outlen; p++) {
		if (*p == '\\' || *p == '"') {
			out[o++] = '\\';
			out[o++] = *p;
		} else if (*p == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else {
			out[o++] = *p;
		}
	}
	out[o] = '\0';
}

static int
cmp_metric(const void *a, const void *b)
{
	const struct metric *x = *(const struct metric *const *)a,
	                    *y = *(const struct metric *const *)b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	c = strcmp(x->host ? x->host : "", y->host ? y->host : "");
	if (c)
		return c;
	return strcmp(x->plugin ? x->plugin : "", y->plugin ? y->plugin : "");
}

char *
metrics_text(void)
{
	size_t n, len = 0, cap = 8192;
	const struct metric *all = metrics_all(&n);
	const struct metric **v = xcalloc(n ? n : 1, sizeof *v);
	char *buf = xmalloc(cap);
	const char *prev = NULL;

	buf[0] = '\0';
	for (size_t i = 0; i < n; i++)
		v[i] = &all[i];
	qsort(v, n, sizeof *v, cmp_metric);
	for (size_t i = 0; i < n; i++) {
		const struct metric *m = v[i];
		char host[256], plugin[128];
		static const char *types[] = {"counter", "gauge", "summary"};
		label(host, sizeof host, m->host);
		label(plugin, sizeof plugin, m->plugin);
		if (prev == NULL || strcmp(prev, m->name) != 0) {
			append(&buf, &len, &cap, "# HELP rdhpf_%s %s\n# TYPE rdhpf_%s %s\n",
			       m->name, metric_help(m->name), m->name, types[m->type]);
			prev = m->name;
		}
		if (m->type == 2) {
			append(&buf, &len, &cap, "rdhpf_%s_sum{host=\"%s\",plugin=\"%s\"} %.6f\n",
			       m->name, host, plugin, m->sum);
			append(&buf, &len, &cap, "rdhpf_%s_count{host=\"%s\",plugin=\"%s\"} %llu\n",
			       m->name, host, plugin, (unsigned long long)m->count);
		} else {
			append(&buf, &len, &cap, "rdhpf_%s{host=\"%s\",plugin=\"%s\"} %.17g\n",
			       m->name, host, plugin, m->value);
		}
	}
	free(v);
	return buf;
}

/* ---- status table ---- */

static const char *
jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "-";
}

static void
since(json_t *v, char *buf, size_t len)
{
	double t = json_number_value(v);
	double now;
	struct timespec ts;
	long long d;

	if (!json_is_number(v)) {
		snprintf(buf, len, "-");
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	now -= t; /* rounded to whole seconds; a time ahead of ours is 0 */
	d = !(now >= 0.5) ? 0 : now < 1e12 ? (long long)(now + 0.5) : 1000000000000LL;
	if (d < 120)
		snprintf(buf, len, "%llds", d);
	else if (d < 7200)
		snprintf(buf, len, "%lldm", d / 60);
	else
		snprintf(buf, len, "%lldh", d / 3600);
}

/* String fields of the status escaped for the terminal: container names,
 * hosts and errors come from the remote engine or the config, and a name
 * holding ESC ] 0;… would otherwise rewrite the user's terminal.  The
 * escaped copies live until pool_free. */
struct pool {
	char *v[16];
	size_t n;
};

static const char *
tj(struct pool *p, json_t *o, const char *k)
{
	char *e;

	if (p->n == sizeof p->v / sizeof p->v[0])
		return "?";
	e = term_escape_dup(jstr(o, k));
	p->v[p->n++] = e;
	return e;
}

static void
pool_free(struct pool *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i]);
	p->n = 0;
}

/* Published ports without a forward: one line each, with why. */
static void
status_skipped(json_t *skipped, FILE *out)
{
	json_t *f;
	size_t k;
	struct pool p = {.n = 0};

	json_array_foreach(skipped, k, f)
	{
		char remote[96], why[160];
		snprintf(remote, sizeof remote, "%s:%lld/%s", tj(&p, f, "remote_host"),
		         (long long)json_integer_value(json_object_get(f, "remote_port")),
		         tj(&p, f, "proto"));
		if (json_is_string(json_object_get(f, "rule")))
			snprintf(why, sizeof why, "%s (rule %s)", tj(&p, f, "reason"),
			         tj(&p, f, "rule"));
		else if (json_is_string(json_object_get(f, "holder")))
			snprintf(why, sizeof why, "%s (%s)", tj(&p, f, "reason"),
			         tj(&p, f, "holder"));
		else
			snprintf(why, sizeof why, "%s", tj(&p, f, "reason"));
		fprintf(out, "  %-21s %-21.21s %-16.16s %-8s %s\n", "-", remote,
		        tj(&p, f, "container"), "skipped", why);
		pool_free(&p);
	}
}

void
status_table(json_t *st, FILE *out)
{
	json_t *hosts = json_object_get(st, "hosts"), *h, *f;
	struct pool p = {.n = 0};
	size_t i, k;

	json_array_foreach(hosts, i, h)
	{
		char ago[32];
		since(json_object_get(h, "connected_since"), ago, sizeof ago);
		fprintf(out, "host %s  %s  %s/%s  up %s  reconnects %lld  breaker %s\n",
		        tj(&p, h, "name"), tj(&p, h, "state"), tj(&p, h, "transport"),
		        tj(&p, h, "runtime"), ago,
		        (long long)json_integer_value(json_object_get(h, "reconnects")),
		        tj(&p, h, "breaker"));
		if (json_is_string(json_object_get(h, "last_error")))
			fprintf(out, "  last error: %.70s\n", tj(&p, h, "last_error"));
		pool_free(&p);
		fprintf(out, "  %-21s %-21s %-16s %-8s %s\n", "LOCAL", "REMOTE", "CONTAINER",
		        "STATE", "SINCE");
		json_array_foreach(json_object_get(h, "forwards"), k, f)
		{
			char local[64], remote[96], ago2[32];
			snprintf(local, sizeof local, "%s:%lld", tj(&p, f, "bind"),
			         (long long)json_integer_value(json_object_get(f, "local_port")));
			snprintf(remote, sizeof remote, "%s:%lld", tj(&p, f, "remote_host"),
			         (long long)json_integer_value(json_object_get(f, "remote_port")));
			since(json_object_get(f, "since"), ago2, sizeof ago2);
			fprintf(out, "  %-21.21s %-21.21s %-16.16s %-8s %s\n", local, remote,
			        tj(&p, f, "container"), tj(&p, f, "state"), ago2);
			if (json_is_string(json_object_get(f, "error")))
				fprintf(out, "    %.74s\n", tj(&p, f, "error"));
			if (json_is_integer(json_object_get(f, "wanted_port")))
				fprintf(
				    out,
				    "    wanted local port %lld (taken; on_conflict = next-free)\n",
				    (long long)json_integer_value(
				        json_object_get(f, "wanted_port")));
			pool_free(&p);
		}
		status_skipped(json_object_get(h, "skipped"), out);
	}
	if (json_array_size(json_object_get(st, "ended")) > 0) {
		fprintf(out, "ended (newest first):\n");
		json_array_foreach(json_object_get(st, "ended"), k, f)
		{
			char ago[32];
			if (k >= 10) {
				fprintf(out, "  … %zu more in --format json\n",
				        json_array_size(json_object_get(st, "ended")) - 10);
				break;
			}
			since(json_object_get(f, "ended"), ago, sizeof ago);
			fprintf(out, "  %-10.10s %5lld %-16.16s %-32.32s %s ago\n",
			        tj(&p, f, "host"),
			        (long long)json_integer_value(json_object_get(f, "local_port")),
			        tj(&p, f, "container"), tj(&p, f, "reason"), ago);
			pool_free(&p);
		}
	}
}

/* ---- metrics over HTTP (metrics_listen) ---- */

#define HTTP_REQ_MAX 4096
/* Reachable by every local user (and more, on a non-loopback address):
 * few connections, a short deadline. */
#define HTTP_MAX_CONNS 64
#define HTTP_DEADLINE_MS 5000

struct metrics_http {
	struct reqsrv *srv;
};

static char *
http_answer(const char *req, size_t len, void *arg)
{
	char *body, *reply;
	const char *status;
	size_t cap;

	(void)len;
	(void)arg;
	if (strstr(req, "\r\n\r\n") == NULL && strstr(req, "\n\n") == NULL)
		return NULL;
	if (strncmp(req, "GET /metrics ", 13) == 0 || strncmp(req, "GET /metrics?", 13) == 0) {
		status = "200 OK";
		body = metrics_text();
	} else {
		status = "404 Not Found";
		body = xstrdup("only GET /metrics here\n");
	}
	cap = strlen(body) + 256;
	reply = xmalloc(cap);
	snprintf(reply, cap,
	         "HTTP/1.1 %s\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
	         "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
	         status, strlen(body), body);
	free(body);
	return reply;
}

struct metrics_http *
metrics_http_start(const char *listen, char *err, size_t errlen)
{
	struct metrics_http *m;
	struct sockaddr_storage ss;
	char host[64];
	const char *colon = strrchr(listen, ':');
	size_t hl;
	int port, r;
	struct reqsrv_opts o = {
	    .what = "metrics_listen",
	    .max_conns = HTTP_MAX_CONNS,
	    .max_request = HTTP_REQ_MAX - 1,
	    .deadline_ms = HTTP_DEADLINE_MS,
	    .answer = http_answer,
	    .arg = NULL,
	};

	if (colon == NULL || (hl = (size_t)(colon - listen)) == 0 || hl >= sizeof host) {
		snprintf(err, errlen, "metrics_listen: bad address '%s'", listen);
		return NULL;
	}
	memcpy(host, listen, hl);
	host[hl] = '\0';
	port = (int)strtol(colon + 1, NULL, 10);
	if (host[0] == '[') {
		host[hl - 1] = '\0';
		r = uv_ip6_addr(host + 1, port, (struct sockaddr_in6 *)&ss);
	} else {
		r = uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
	}
	if (r != 0) {
		snprintf(err, errlen, "metrics_listen %s: %s", listen, uv_strerror(r));
		return NULL;
	}
	m = xcalloc(1, sizeof *m);
	m->srv = reqsrv_tcp((const struct sockaddr *)&ss, &o, err, errlen);
	if (m->srv == NULL) {
		free(m);
		return NULL;
	}
	return m;
}

void
metrics_http_stop(struct metrics_http *m)
{
	if (m == NULL)
		return;
	reqsrv_stop(m->srv);
	free(m);
}
