/* transport-fake: a transport for testing the core without SSH.
 *
 * The "remote" is this machine: exec runs argv locally (no shell), so
 * streams behave as real ones do.  Forwards are only recorded, and written
 * to state_file after every change, so tests can watch what the core asked
 * for.  The link can be made to fail: fail_connects=N fails the first N
 * connects; hang_connect=yes never completes a connect; control_file=PATH
 * is polled, and while it holds "down" the link is down (reported at once,
 * connects fail); refuse_connect=REASON completes every connect with
 * RDHPF_ERR_INVAL (a configuration that can never work).  Not installed. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rdhpf/plugin.h"

#define POLL_MS 50
#define TAIL_MAX 1024

static const struct rdhpf_host_api *H;

struct ffwd {
	char bind[64];
	uint16_t lport;
	char rhost[64];
	uint16_t rport;
	int fd; /* listening socket with bind_ports=yes, else -1 */
};

struct fstream {
	struct fake *f;
	struct rdhpf_child *child;
	int in_fd, out_fd, err_fd;
	struct rdhpf_io *out_io, *err_io;
	const struct rdhpf_stream_cbs *cbs;
	void *arg;
	int exited, exit_code, out_eof, err_eof;
	char tail[TAIL_MAX + 1];
	size_t tail_len;
	struct fstream *next;
};

struct pending {
	rdhpf_done_fn done;
	void *arg;
	int status;
	const char *detail;
	struct rdhpf_timer *t;
	struct fake *f;
	struct pending *next;
};

struct fake {
	struct rdhpf_ctx *ctx;
	char *state_file;
	char *control_file;
	char *refuse_connect;
	long fail_connects;
	int hang;
	int bind_ports;
	int connected;
	int down; /* control file says down */
	unsigned long connects, connect_calls;
	struct ffwd *fw;
	size_t n_fw;
	struct fstream *streams;
	struct pending *pend;
	struct rdhpf_timer *poll;
};

/* Only an instance that was asked to connect owns the state file: the core
 * also makes instances just to check a host's options (check-config, start,
 * reload), and those must not overwrite the running one's. */
static void
write_state(struct fake *f)
{
	char tmp[4096];
	FILE *fp;

	if (f->state_file == NULL || f->connect_calls == 0)
		return;
	snprintf(tmp, sizeof tmp, "%s.tmp", f->state_file);
	fp = fopen(tmp, "w");
	if (fp == NULL)
		return;
	fprintf(fp, "connects %lu\nconnected %d\nconnect_calls %lu\n", f->connects, f->connected,
	        f->connect_calls);
	for (size_t i = 0; i < f->n_fw; i++)
		fprintf(fp, "forward %s:%u %s:%u\n", f->fw[i].bind, f->fw[i].lport, f->fw[i].rhost,
		        f->fw[i].rport);
	fclose(fp);
	rename(tmp, f->state_file);
}

/* ---- deferred completions (never call back before the op returns) ---- */

static void
pending_fire(void *arg)
{
	struct pending *p = arg;
	struct fake *f = p->f;

	for (struct pending **pp = &f->pend; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	H->timer_stop(p->t);
	p->done(p->arg, p->status, p->detail);
	free(p);
}

static int
complete_later(struct fake *f, rdhpf_done_fn done, void *arg, int status, const char *detail)
{
	struct pending *p = calloc(1, sizeof *p);

	if (p == NULL)
		return RDHPF_ERR_NOMEM;
	p->done = done;
	p->arg = arg;
	p->status = status;
	p->detail = detail;
	p->f = f;
	p->next = f->pend;
	f->pend = p;
	p->t = H->timer_start(f->ctx, 0, 0, pending_fire, p);
	return RDHPF_OK;
}

static void
cancel_pending(struct fake *f)
{
	while (f->pend) {
		struct pending *p = f->pend;
		f->pend = p->next;
		H->timer_stop(p->t);
		free(p);
	}
}

/* ---- streams: argv run locally ---- */

static void stream_free(struct fstream *s);

static void
stream_maybe_close(struct fstream *s)
{
	if (!(s->exited && s->out_eof && s->err_eof))
		return;
	const struct rdhpf_stream_cbs *cbs = s->cbs;
	void *arg = s->arg;
	int code = s->exit_code;
	char tail[TAIL_MAX + 1];
	memcpy(tail, s->tail, s->tail_len + 1);
	stream_free(s);
	cbs->on_close(arg, RDHPF_OK, code, tail[0] ? tail : NULL);
}

static void
on_out(void *arg, int fd, unsigned rev)
{
	struct fstream *s = arg;
	char buf[16384];
	ssize_t n = read(fd, buf, sizeof buf);

	(void)rev;
	if (n > 0) {
		s->cbs->on_data(s->arg, buf, (size_t)n);
		return; /* s may be gone now (stream_close from on_data) */
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	H->io_stop(s->out_io);
	s->out_io = NULL;
	s->out_eof = 1;
	stream_maybe_close(s);
}

static void
on_err(void *arg, int fd, unsigned rev)
{
	struct fstream *s = arg;
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof buf);

	(void)rev;
	if (n > 0) {
		/* keep the last TAIL_MAX bytes */
		size_t k = (size_t)n;
		if (k >= TAIL_MAX) {
			memcpy(s->tail, buf + k - TAIL_MAX, TAIL_MAX);
			s->tail_len = TAIL_MAX;
		} else {
			if (s->tail_len + k > TAIL_MAX) {
				size_t drop = s->tail_len + k - TAIL_MAX;
				memmove(s->tail, s->tail + drop, s->tail_len - drop);
				s->tail_len -= drop;
			}
			memcpy(s->tail + s->tail_len, buf, k);
			s->tail_len += k;
		}
		s->tail[s->tail_len] = '\0';
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	H->io_stop(s->err_io);
	s->err_io = NULL;
	s->err_eof = 1;
	stream_maybe_close(s);
}

static void
on_exit_cb(void *arg, int code, int sig)
{
	struct fstream *s = arg;

	s->child = NULL;
	s->exited = 1;
	s->exit_code = sig ? -1 : code;
	stream_maybe_close(s);
}

static void
stream_free(struct fstream *s)
{
	struct fake *f = s->f;

	for (struct fstream **pp = &f->streams; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	if (s->out_io)
		H->io_stop(s->out_io);
	if (s->err_io)
		H->io_stop(s->err_io);
	if (s->child) {
		H->child_kill(s->child, SIGKILL);
		H->child_detach(s->child);
	}
	if (s->in_fd >= 0)
		close(s->in_fd);
	if (s->out_fd >= 0)
		close(s->out_fd);
	if (s->err_fd >= 0)
		close(s->err_fd);
	free(s);
}

static int
t_exec(void *state, const char *const *argv, const struct rdhpf_stream_cbs *cbs, void *arg,
       void **stream)
{
	struct fake *f = state;
	struct fstream *s;
	struct rdhpf_spawn_opts o;
	char err[256];

	if (!f->connected)
		return RDHPF_ERR_NOTCONN;
	s = calloc(1, sizeof *s);
	if (s == NULL)
		return RDHPF_ERR_NOMEM;
	s->f = f;
	s->in_fd = s->out_fd = s->err_fd = -1;
	s->cbs = cbs;
	s->arg = arg;
	memset(&o, 0, sizeof o);
	o.struct_size = sizeof o;
	o.argv = argv;
	o.stdin_fd = &s->in_fd;
	o.stdout_fd = &s->out_fd;
	o.stderr_fd = &s->err_fd;
	s->child = H->spawn(f->ctx, &o, on_exit_cb, s, err, sizeof err);
	if (s->child == NULL) {
		H->log(f->ctx, RDHPF_LOG_WARN, "exec failed", "err", err, NULL);
		free(s);
		return RDHPF_ERR_REMOTE;
	}
	s->out_io = H->io_start(f->ctx, s->out_fd, RDHPF_IO_READ, on_out, s);
	s->err_io = H->io_start(f->ctx, s->err_fd, RDHPF_IO_READ, on_err, s);
	s->next = f->streams;
	f->streams = s;
	*stream = s;
	return RDHPF_OK;
}

static int
t_stream_write(void *state, void *stream, const void *buf, size_t len)
{
	struct fstream *s = stream;
	(void)state;
	/* Small writes only: test traffic.  A real transport buffers. */
	while (len > 0) {
		ssize_t n = write(s->in_fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return RDHPF_ERR_IO;
		}
		buf = (const char *)buf + n;
		len -= (size_t)n;
	}
	return RDHPF_OK;
}

static void
t_stream_close(void *state, void *stream)
{
	(void)state;
	stream_free(stream);
}

static void
close_streams(struct fake *f)
{
	while (f->streams)
		stream_free(f->streams);
}

/* ---- link ---- */

static int
read_control(struct fake *f)
{
	char buf[16] = "";
	int fd;
	ssize_t n;

	if (f->control_file == NULL)
		return 0;
	fd = open(f->control_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return strncmp(buf, "down", 4) == 0;
}

static void
poll_cb(void *arg)
{
	struct fake *f = arg;
	int down = read_control(f);

	if (down && !f->down && f->connected) {
		f->connected = 0;
		close_streams(f);
		write_state(f);
		f->down = 1;
		H->report_down(f->ctx, RDHPF_ERR_CLOSED, "control file says the link is down");
		return;
	}
	f->down = down;
}

static int
t_connect(void *state, rdhpf_done_fn done, void *arg)
{
	struct fake *f = state;

	f->connect_calls++;
	write_state(f);
	if (f->refuse_connect != NULL)
		return complete_later(f, done, arg, RDHPF_ERR_INVAL, f->refuse_connect);
	if (f->hang)
		return RDHPF_OK; /* never completes: the core's watchdog must act */
	if (f->fail_connects > 0) {
		f->fail_connects--;
		return complete_later(f, done, arg, RDHPF_ERR_CONNECT, "fail_connects");
	}
	if (read_control(f)) {
		f->down = 1;
		return complete_later(f, done, arg, RDHPF_ERR_CONNECT,
		                      "control file says the link is down");
	}
	f->connected = 1;
	f->connects++;
	write_state(f);
	return complete_later(f, done, arg, RDHPF_OK, NULL);
}

static void
t_disconnect(void *state)
{
	struct fake *f = state;

	cancel_pending(f);
	close_streams(f);
	f->connected = 0;
	write_state(f);
}

static int
t_health(void *state, rdhpf_done_fn done, void *arg)
{
	struct fake *f = state;

	return complete_later(f, done, arg, f->connected ? RDHPF_OK : RDHPF_ERR_NOTCONN,
	                      f->connected ? NULL : "not connected");
}

static struct ffwd *
fw_find(struct fake *f, const struct rdhpf_forward *fw)
{
	for (size_t i = 0; i < f->n_fw; i++)
		if (f->fw[i].lport == fw->local_port &&
		    strcmp(f->fw[i].bind, fw->bind_address) == 0)
			return &f->fw[i];
	return NULL;
}

/* Hold the local port as a real forward would (accepting nothing), so
 * conflicts with other listeners are real. */
static int
bind_port(const struct rdhpf_forward *fw, int *out)
{
	struct sockaddr_in a;
	struct sockaddr_in6 a6;
	struct sockaddr *sa;
	socklen_t salen;
	int fd, one = 1, family;

	memset(&a, 0, sizeof a);
	memset(&a6, 0, sizeof a6);
	a.sin_family = AF_INET;
	a.sin_port = htons(fw->local_port);
	a6.sin6_family = AF_INET6;
	a6.sin6_port = htons(fw->local_port);
	if (inet_pton(AF_INET, fw->bind_address, &a.sin_addr) == 1) {
		family = AF_INET;
		sa = (struct sockaddr *)&a;
		salen = sizeof a;
	} else if (inet_pton(AF_INET6, fw->bind_address, &a6.sin6_addr) == 1) {
		family = AF_INET6;
		sa = (struct sockaddr *)&a6;
		salen = sizeof a6;
	} else
		return RDHPF_ERR_INVAL;
	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return RDHPF_ERR_IO;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(fd, sa, salen) != 0 || listen(fd, 1) != 0) {
		int e = errno;
		close(fd);
		return e == EADDRINUSE ? RDHPF_ERR_ADDRINUSE : RDHPF_ERR_IO;
	}
	*out = fd;
	return RDHPF_OK;
}

static int
t_forward_add(void *state, const struct rdhpf_forward *fw, rdhpf_done_fn done, void *arg)
{
	struct fake *f = state;
	struct ffwd *e;
	int fd = -1;

	if (!f->connected)
		return complete_later(f, done, arg, RDHPF_ERR_NOTCONN, NULL);
	e = fw_find(f, fw);
	if (e == NULL && f->bind_ports) {
		int r = bind_port(fw, &fd);
		if (r != RDHPF_OK)
			return complete_later(f, done, arg, r,
			                      r == RDHPF_ERR_ADDRINUSE ? "port in use" : NULL);
	}
	if (e == NULL) {
		struct ffwd *v = realloc(f->fw, (f->n_fw + 1) * sizeof *v);
		if (v == NULL)
			return RDHPF_ERR_NOMEM;
		f->fw = v;
		e = &f->fw[f->n_fw++];
		e->fd = fd;
	}
	snprintf(e->bind, sizeof e->bind, "%s", fw->bind_address);
	e->lport = fw->local_port;
	snprintf(e->rhost, sizeof e->rhost, "%s", fw->remote_host);
	e->rport = fw->remote_port;
	write_state(f);
	return complete_later(f, done, arg, RDHPF_OK, NULL);
}

static int
t_forward_remove(void *state, const struct rdhpf_forward *fw, rdhpf_done_fn done, void *arg)
{
	struct fake *f = state;
	struct ffwd *e = fw_find(f, fw);

	if (e != NULL) {
		if (e->fd >= 0)
			close(e->fd);
		*e = f->fw[--f->n_fw];
		write_state(f);
	}
	return complete_later(f, done, arg, RDHPF_OK, NULL);
}

static int
parse_long(const char *s, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0)
		return -1;
	*out = v;
	return 0;
}

static void t_destroy(void *state);

/* The value checks create makes, without an instance (check-config). */
static int
t_validate(const char *k, const char *v, char *err, size_t errlen)
{
	long n;

	if (strcmp(k, "fail_connects") == 0 && parse_long(v, &n) != 0) {
		snprintf(err, errlen, "'%s' is not a count", v);
		return RDHPF_ERR_INVAL;
	}
	if ((strcmp(k, "hang_connect") == 0 || strcmp(k, "bind_ports") == 0) &&
	    strcmp(v, "yes") != 0 && strcmp(v, "no") != 0) {
		snprintf(err, errlen, "'%s' is not yes or no", v);
		return RDHPF_ERR_INVAL;
	}
	return RDHPF_OK;
}

static const char *const option_names[] = {"state_file",    "control_file", "refuse_connect",
                                           "fail_connects", "hang_connect", "bind_ports"};

static int
t_create(struct rdhpf_ctx *ctx, const struct rdhpf_host_params *p, void **state, char *err,
         size_t errlen)
{
	struct fake *f = calloc(1, sizeof *f);

	if (f == NULL)
		return RDHPF_ERR_NOMEM;
	f->ctx = ctx;
	(void)p;
	for (size_t i = 0; i < sizeof option_names / sizeof option_names[0]; i++) {
		const char *k = option_names[i], *v = H->option(ctx, k);
		if (v == NULL)
			continue;
		if (strcmp(k, "state_file") == 0) {
			f->state_file = strdup(v);
		} else if (strcmp(k, "control_file") == 0) {
			f->control_file = strdup(v);
		} else if (strcmp(k, "refuse_connect") == 0) {
			f->refuse_connect = strdup(v);
		} else if (strcmp(k, "fail_connects") == 0) {
			if (parse_long(v, &f->fail_connects) != 0) {
				snprintf(err, errlen, "fail_connects: '%s' is not a count", v);
				t_destroy(f);
				return RDHPF_ERR_INVAL;
			}
		} else if (strcmp(k, "hang_connect") == 0) {
			if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0) {
				snprintf(err, errlen, "hang_connect: '%s' is not yes or no", v);
				t_destroy(f);
				return RDHPF_ERR_INVAL;
			}
			f->hang = strcmp(v, "yes") == 0;
		} else if (strcmp(k, "bind_ports") == 0) {
			f->bind_ports = strcmp(v, "yes") == 0;
		}
	}
	f->poll = H->timer_start(ctx, POLL_MS, POLL_MS, poll_cb, f);
	*state = f;
	return RDHPF_OK;
}

static void
t_destroy(void *state)
{
	struct fake *f = state;

	if (f == NULL)
		return;
	t_disconnect(f);
	for (size_t i = 0; i < f->n_fw; i++)
		if (f->fw[i].fd >= 0)
			close(f->fw[i].fd);
	f->n_fw = 0;
	write_state(f);
	if (f->poll)
		H->timer_stop(f->poll);
	free(f->fw);
	free(f->state_file);
	free(f->control_file);
	free(f->refuse_connect);
	free(f);
}

static const struct rdhpf_transport_ops ops = {
    RDHPF_INIT(rdhpf_transport_ops),
    .create = t_create,
    .destroy = t_destroy,
    .connect = t_connect,
    .disconnect = t_disconnect,
    .health_check = t_health,
    .forward_add = t_forward_add,
    .forward_remove = t_forward_remove,
    .exec = t_exec,
    .stream_write = t_stream_write,
    .stream_close = t_stream_close,
};

static const struct rdhpf_option_desc *const options[] = {
    RDHPF_OPTION("state_file", "write the forward table here after every change"),
    RDHPF_OPTION("control_file", "while this file holds \"down\", the link is down"),
    RDHPF_OPTION("fail_connects", "fail this many connects first"),
    RDHPF_OPTION("hang_connect", "yes: connect never completes"),
    RDHPF_OPTION("refuse_connect",
                 "every connect fails as invalid (RDHPF_ERR_INVAL) with this reason"),
    RDHPF_OPTION("bind_ports", "yes: hold each forward's local port with a real listener"),
    NULL,
};

static const struct rdhpf_plugin_info info = {
    .abi_major = RDHPF_ABI_MAJOR,
    .abi_minor = RDHPF_ABI_MINOR,
    .struct_size = sizeof(struct rdhpf_plugin_info),
    .kind = RDHPF_KIND_TRANSPORT,
    .name = "fake",
    .version = "1.0.0",
    .description = "test transport: records forwards, runs commands locally",
    .caps = RDHPF_TCAP_EXEC,
    .options = options,
    .validate_option = t_validate,
    .ops.transport = &ops,
};

RDHPF_PLUGIN_DECLARE
{
	H = host;
	return &info;
}
