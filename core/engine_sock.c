/* See engine_sock.h.
 *
 * Flow control: ABI 1.0 streams have no way to pause the remote side or to
 * learn how much the transport buffered, so a client that stops reading
 * makes its replies pile up here, and a client sending a large body makes
 * it pile up in the transport.  Engine API traffic (ps, inspect, run) is
 * small; a large `docker build` context through this socket is the case
 * that would need it. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <uv.h>

#include "core.h"
#include "engine_sock.h"
#include "log.h"
#include "util.h"

#define READ_CHUNK 65536

struct econn;

struct engine_sock {
	uv_pipe_t server;
	struct host *h;
	char *host_name;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *remote;
	struct econn *conns;
	uint64_t served;
};

struct econn {
	uv_pipe_t pipe;
	struct engine_sock *e;
	struct econn *next;
	struct pinst *tp;
	void *ts; /* the transport's stream; NULL once closed */
	int closing;
	uv_shutdown_t shut;
	char buf[READ_CHUNK];
};

struct ewrite {
	uv_write_t req;
	char data[];
};

const char *
engine_remote_path(const char *engine_socket, const char *runtime, const char *socket_option)
{
	if (engine_socket != NULL && engine_socket[0] == '/')
		return engine_socket;
	if (socket_option != NULL && socket_option[0] == '/')
		return socket_option;
	if (runtime != NULL && strcmp(runtime, "podman") == 0)
		return "/run/podman/podman.sock";
	return "/var/run/docker.sock";
}

int
engine_local_path(char *buf, size_t len, const char *rundir, const char *host)
{
	char name[64];
	size_t i;

	for (i = 0; host[i] && i < sizeof name - 1; i++) {
		char c = host[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		         (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
		name[i] = ok ? c : '_';
	}
	name[i] = '\0';
	if (name[0] == '.')
		name[0] = '_';
	if (len > sizeof(((struct sockaddr_un *)0)->sun_path))
		len = sizeof(((struct sockaddr_un *)0)->sun_path);
	return (size_t)snprintf(buf, len, "%s/engine-%s.sock", rundir, name) >= len ? -1 : 0;
}

static void
econn_closed(uv_handle_t *hd)
{
	free(hd->data);
}

static void
econn_unlink(struct econn *c)
{
	for (struct econn **p = &c->e->conns; *p; p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			return;
		}
	}
}

/* Both sides closed: the transport stream (no callback follows) and ours. */
static void
econn_close(struct econn *c)
{
	if (uv_is_closing((uv_handle_t *)&c->pipe))
		return;
	c->closing = 1;
	if (c->ts != NULL) {
		tp_stream_close(c->tp, c->ts);
		c->ts = NULL;
	}
	econn_unlink(c);
	uv_close((uv_handle_t *)&c->pipe, econn_closed);
}

static void
written(uv_write_t *w, int status)
{
	(void)status;
	free(w->data);
}

static void
remote_data(void *arg, const char *buf, size_t len)
{
	struct econn *c = arg;
	struct ewrite *w;
	uv_buf_t b;

	if (c->closing || len == 0)
		return;
	w = xmalloc(sizeof *w + len);
	memcpy(w->data, buf, len);
	w->req.data = w;
	b = uv_buf_init(w->data, (unsigned)len);
	if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, written) != 0) {
		free(w);
		econn_close(c);
	}
}

static void
shut_done(uv_shutdown_t *s, int status)
{
	struct econn *c = s->data;

	if (status == UV_ECANCELED)
		return; /* closed meanwhile; c is going away */
	econn_close(c);
}

/* The remote end closed (engine done, or the link went): flush what we have
 * for the client, then close. */
static void
remote_closed(void *arg, int status, int exit_code, const char *detail)
{
	struct econn *c = arg;

	(void)exit_code;
	c->ts = NULL; /* ended by itself: nothing to close */
	if (c->closing)
		return;
	if (status != RDHPF_OK)
		log_kv(RDHPF_LOG_DEBUG, c->e->host_name, NULL, "engine socket: remote stream ended",
		       "detail", detail, NULL);
	c->closing = 1;
	c->shut.data = c;
	if (uv_shutdown(&c->shut, (uv_stream_t *)&c->pipe, shut_done) != 0)
		shut_done(&c->shut, 0);
}

static const struct rdhpf_stream_cbs remote_cbs = {
    RDHPF_INIT(rdhpf_stream_cbs),
    .on_data = remote_data,
    .on_close = remote_closed,
};

static void
local_alloc(uv_handle_t *hd, size_t hint, uv_buf_t *b)
{
	struct econn *c = hd->data;
	(void)hint;
	*b = uv_buf_init(c->buf, sizeof c->buf);
}

/* EOF from the client: gone altogether (close), or only done sending
 * (shutdown(SHUT_WR), as `docker run` does once its request is out: keep the
 * remote side, the answer is still to come).  ABI 1.0 streams cannot pass a
 * half-close on to the remote; the engine does not need it for requests. */
static int
client_gone(struct econn *c)
{
	uv_os_fd_t fd;
	struct pollfd p;

	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0)
		return 1;
	p.fd = fd;
	p.events = POLLOUT;
	p.revents = 0;
	return poll(&p, 1, 0) < 0 || (p.revents & (POLLHUP | POLLERR)) != 0;
}

static void
local_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct econn *c = s->data;

	if (n == UV_EOF && c->ts != NULL && !client_gone(c)) {
		uv_read_stop(s);
		return;
	}
	if (n < 0) {
		econn_close(c);
		return;
	}
	if (n > 0 && c->ts != NULL && tp_stream_write(c->tp, c->ts, b->base, (size_t)n) != RDHPF_OK)
		econn_close(c);
}

static void
on_connection(uv_stream_t *server, int status)
{
	struct engine_sock *e = server->data;
	struct econn *c;
	struct pinst *tp;
	int r;

	if (status < 0)
		return;
	c = xcalloc(1, sizeof *c);
	c->e = e;
	uv_pipe_init(core_loop(), &c->pipe, 0);
	c->pipe.data = c;
	c->next = e->conns;
	e->conns = c;
	if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0) {
		econn_close(c);
		return;
	}
	/* The link is down: the client learns at once (a refused connection
	 * would be the same to it), rather than hanging. */
	if (!host_link(e->h, &tp) || !tp_can_open_unix(tp)) {
		log_kv(RDHPF_LOG_DEBUG, e->host_name, NULL,
		       "engine socket: link not up; client closed", NULL);
		econn_close(c);
		return;
	}
	c->tp = tp;
	r = tp_open_unix(tp, e->remote, &remote_cbs, c, &c->ts);
	if (r != RDHPF_OK) {
		c->ts = NULL;
		log_kv(RDHPF_LOG_WARN, e->host_name, NULL,
		       "engine socket: cannot reach the remote socket", "path", e->remote, NULL);
		econn_close(c);
		return;
	}
	e->served++;
	uv_read_start((uv_stream_t *)&c->pipe, local_alloc, local_read);
}

static void
server_closed(uv_handle_t *hd)
{
	struct engine_sock *e = hd->data;
	free(e->host_name);
	free(e->remote);
	free(e);
}

struct engine_sock *
engine_sock_start(struct host *h, const char *host_name, const char *local_path,
                  const char *remote_path, char *err, size_t errlen)
{
	struct engine_sock *e = xcalloc(1, sizeof *e);
	int r;

	e->h = h;
	e->host_name = xstrdup(host_name);
	e->remote = xstrdup(remote_path);
	snprintf(e->path, sizeof e->path, "%s", local_path);
	unlink(e->path); /* ours from an earlier run: we hold the instance lock */
	uv_pipe_init(core_loop(), &e->server, 0);
	e->server.data = e;
	r = uv_pipe_bind(&e->server, e->path);
	if (r == 0)
		r = chmod(e->path, 0600) == 0 ? 0 : uv_translate_sys_error(errno);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&e->server, 64, on_connection);
	if (r != 0) {
		snprintf(err, errlen, "engine socket %s: %s", e->path, uv_strerror(r));
		unlink(e->path);
		uv_close((uv_handle_t *)&e->server, server_closed);
		return NULL;
	}
	return e;
}

void
engine_sock_stop(struct engine_sock *e)
{
	if (e == NULL)
		return;
	while (e->conns != NULL)
		econn_close(e->conns);
	unlink(e->path);
	uv_close((uv_handle_t *)&e->server, server_closed);
}
