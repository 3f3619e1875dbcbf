/* transport-libssh: byte streams for runtimes — a remote command on a
 * session channel (exec), or a remote Unix socket over a
 * direct-streamlocal@openssh.com channel (open_unix).
 *
 * Bytes from the remote are copied into the stream's buffer inside the
 * libssh callback and delivered to the owner's on_data later, from
 * lsh_service(): owners may call stream_close, stream_write or even
 * disconnect from on_data, which must never happen with libssh on the
 * stack.  Streams carry control traffic (events, lists), so they take what
 * comes: no backpressure towards the remote. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsh.h"

#define H lsh_H

int stream_cb_data(ssh_session s, ssh_channel ch, void *data, uint32_t len, int is_stderr,
                   void *ud);
void stream_cb_exit(ssh_session s, ssh_channel ch, int status, void *ud);

/* The last LSH_TAIL_MAX bytes of stderr, for on_close's detail. */
static void
tail_add(struct lsh_stream *x, const char *p, size_t k)
{
	if (k >= LSH_TAIL_MAX) {
		memcpy(x->tail, p + k - LSH_TAIL_MAX, LSH_TAIL_MAX);
		x->tail_len = LSH_TAIL_MAX;
	} else {
		if (x->tail_len + k > LSH_TAIL_MAX) {
			size_t drop = x->tail_len + k - LSH_TAIL_MAX;
			memmove(x->tail, x->tail + drop, x->tail_len - drop);
			x->tail_len -= drop;
		}
		memcpy(x->tail + x->tail_len, p, k);
		x->tail_len += k;
	}
	x->tail[x->tail_len] = '\0';
}

int
stream_cb_data(ssh_session s, ssh_channel ch, void *data, uint32_t len, int is_stderr, void *ud)
{
	struct lsh_stream *x = ud;

	(void)s;
	(void)ch;
	if (is_stderr)
		tail_add(x, data, len);
	else if (!x->user_closed && rsdk_buf_append(&x->out, data, len) != 0)
		snprintf(x->why, sizeof x->why, "out of memory");
	lsh_chan_ready(&x->c);
	return (int)len;
}

void
stream_cb_exit(ssh_session s, ssh_channel ch, int status, void *ud)
{
	struct lsh_stream *x = ud;

	(void)s;
	(void)ch;
	x->exit_code = status;
	lsh_chan_ready(&x->c);
}

static void
stream_unlink(struct lsh *ls, struct lsh_stream *x)
{
	if (x->sprev)
		x->sprev->snext = x->snext;
	else if (ls->streams == x)
		ls->streams = x->snext;
	if (x->snext)
		x->snext->sprev = x->sprev;
	x->snext = x->sprev = NULL;
}

void
lsh_stream_free(struct lsh *ls, struct lsh_stream *x)
{
	stream_unlink(ls, x);
	lsh_chan_release(&x->c);
	rsdk_buf_free(&x->in);
	rsdk_buf_free(&x->out);
	free(x->cmd);
	free(x->path);
	free(x);
}

static void
stream_fail(struct lsh_stream *x, const char *what)
{
	struct lsh *ls = x->c.ls;

	lsh_opening_remove(&x->c);
	snprintf(x->why, sizeof x->why, "%s: %s", what, ssh_get_error(ls->s));
	if (x->c.state == CS_OPENING)
		snprintf(x->why + strlen(x->why), sizeof x->why - strlen(x->why), "%s",
		         lsh_open_hint(ls, x->c.kind, ssh_get_error(ls->s)));
	x->c.state = CS_DONE;
	lsh_chan_ready(&x->c);
}

/* 0: still going, 1: open, -1: failed (on_close follows from service). */
int
lsh_stream_open_step(struct lsh_stream *x)
{
	int rc;

	if (x->c.state == CS_OPENING) {
		if (x->c.kind == CK_EXEC)
			rc = ssh_channel_open_session(x->c.ch);
		else
			rc = ssh_channel_open_forward_unix(x->c.ch, x->path, "127.0.0.1", 0);
		if (rc == SSH_AGAIN)
			return 0;
		if (rc != SSH_OK) {
			stream_fail(x, x->c.kind == CK_EXEC ? "cannot open a session channel"
			                                    : "cannot open the remote socket");
			return -1;
		}
		x->c.state = x->c.kind == CK_EXEC ? CS_REQ : CS_OPEN;
	}
	if (x->c.state == CS_REQ) {
		rc = ssh_channel_request_exec(x->c.ch, x->cmd);
		if (rc == SSH_AGAIN)
			return 0;
		if (rc != SSH_OK) {
			stream_fail(x, "remote command refused");
			return -1;
		}
		x->c.state = CS_OPEN;
	}
	lsh_opening_remove(&x->c);
	lsh_chan_ready(&x->c); /* stdin written meanwhile */
	return 1;
}

/* Calls the owner; false when x must not be touched any more. */
static bool
deliver(struct lsh_stream *x)
{
	struct lsh *ls = x->c.ls;

	while (rsdk_buf_size(&x->out) > 0 && !x->user_closed) {
		size_t n = rsdk_buf_size(&x->out);
		x->in_cb = true;
		x->cbs.on_data(x->arg, rsdk_buf_str(&x->out), n);
		x->in_cb = false;
		if (x->user_closed) {
			lsh_stream_free(ls, x);
			return false;
		}
		lsh_buf_consume(&x->out, n);
		if (ls->phase != PH_READY)
			return false; /* torn down meanwhile: teardown owns x */
	}
	return true;
}

static void
finish(struct lsh_stream *x, int status, int code, const char *detail)
{
	struct lsh *ls = x->c.ls;
	struct rdhpf_stream_cbs cbs = x->cbs;
	void *arg = x->arg;
	char d[LSH_TAIL_MAX + 1];

	snprintf(d, sizeof d, "%s", detail ? detail : "");
	lsh_stream_free(ls, x);
	cbs.on_close(arg, status, code, d[0] ? d : NULL);
}

void
lsh_stream_service(struct lsh_stream *x)
{
	struct lsh *ls = x->c.ls;

	if (x->user_closed) {
		lsh_stream_free(ls, x);
		return;
	}
	if (!deliver(x))
		return;
	if (x->c.state == CS_DONE) {
		finish(x, RDHPF_ERR_REMOTE, -1, x->why);
		return;
	}
	if (x->c.state != CS_OPEN)
		return;
	while (rsdk_buf_size(&x->in) > 0 && !x->c.r_closed && !x->c.throttled) {
		uint32_t win = ssh_channel_window_size(x->c.ch);
		size_t n = rsdk_buf_size(&x->in);
		int w;
		if (win == 0) {
			x->c.win_wait = true;
			lsh_throttle(&x->c, false);
			break;
		}
		if (n > win)
			n = win;
		w = ssh_channel_write(x->c.ch, rsdk_buf_str(&x->in), (uint32_t)n);
		if (w < 0) {
			snprintf(x->why, sizeof x->why, "write to the remote failed: %s",
			         ssh_get_error(ls->s));
			finish(x, RDHPF_ERR_CLOSED, -1, x->why);
			return;
		}
		lsh_buf_consume(&x->in, (size_t)w);
		if ((size_t)w < n) {
			/* A key re-exchange: retried on the next session io event. */
			lsh_throttle(&x->c, true);
			break;
		}
	}
	/* The end: the channel closed, or EOF with (for commands) the exit
	 * status in; sshd may hold its close until we close too. */
	if (x->c.r_closed || (x->c.r_eof && (x->c.kind == CK_UNIX || x->exit_code >= 0))) {
		if (x->c.kind == CK_EXEC)
			finish(x, RDHPF_OK, x->exit_code, x->tail_len ? x->tail : NULL);
		else
			finish(x, RDHPF_OK, -1, NULL);
	}
}

/* Before the session is freed: every stream goes; the owners hear of it
 * only if tell (link lost). */
void
lsh_streams_teardown(struct lsh *ls, bool tell)
{
	struct lsh_stream *list = ls->streams;

	ls->streams = NULL;
	for (struct lsh_stream *x = list; x; x = x->snext) {
		lsh_chan_release(&x->c);
		x->c.state = CS_DONE;
		x->torn = true;
	}
	while (list) {
		struct lsh_stream *x = list;
		struct rdhpf_stream_cbs cbs = x->cbs;
		void *arg = x->arg;
		bool closed = x->user_closed, busy = x->in_cb;
		list = x->snext;
		x->snext = x->sprev = NULL;
		if (busy) {
			x->user_closed = true; /* deliver() frees it when on_data returns */
			continue;
		}
		rsdk_buf_free(&x->in);
		rsdk_buf_free(&x->out);
		free(x->cmd);
		free(x->path);
		free(x);
		if (tell && !closed)
			cbs.on_close(arg, RDHPF_ERR_CLOSED, -1, "ssh session lost");
	}
}

/* The owner's callbacks, copied: only the members inside its struct_size
 * (the others stay NULL).  false when a mandatory one is missing. */
static bool
cbs_copy(struct rdhpf_stream_cbs *dst, const struct rdhpf_stream_cbs *cbs)
{
	memset(dst, 0, sizeof *dst);
	dst->struct_size = sizeof *dst;
	if (cbs == NULL)
		return false;
	if (RDHPF_HAS(cbs, on_data))
		dst->on_data = cbs->on_data;
	if (RDHPF_HAS(cbs, on_close))
		dst->on_close = cbs->on_close;
	return dst->on_data != NULL && dst->on_close != NULL;
}

static struct lsh_stream *
stream_start(struct lsh *ls, int kind, const struct rdhpf_stream_cbs *cbs, void *arg)
{
	struct lsh_stream *x = calloc(1, sizeof *x);

	if (x == NULL)
		return NULL;
	x->c.ls = ls;
	x->c.kind = kind;
	x->cbs = *cbs;
	x->arg = arg;
	x->exit_code = -1;
	return x;
}

static int
stream_go(struct lsh *ls, struct lsh_stream *x, void **out)
{
	if (lsh_chan_new(&x->c) != 0) {
		free(x->cmd);
		free(x->path);
		free(x);
		return RDHPF_ERR_NOMEM;
	}
	x->snext = ls->streams;
	if (ls->streams)
		ls->streams->sprev = x;
	ls->streams = x;
	x->c.state = CS_OPENING;
	lsh_opening_add(&x->c);
	*out = x;
	/* The open goes out on the next turn: no callback before we return. */
	lsh_kick(ls);
	return RDHPF_OK;
}

int
lsh_exec(struct lsh *ls, const char *const *argv, const struct rdhpf_stream_cbs *cbs, void *arg,
         void **stream)
{
	struct rdhpf_stream_cbs cb;
	struct lsh_stream *x;

	if (argv == NULL || argv[0] == NULL || !cbs_copy(&cb, cbs) || stream == NULL)
		return RDHPF_ERR_INVAL;
	if (ls->phase != PH_READY)
		return RDHPF_ERR_NOTCONN;
	x = stream_start(ls, CK_EXEC, &cb, arg);
	if (x == NULL)
		return RDHPF_ERR_NOMEM;
	x->cmd = H->shell_join(argv); /* every word quoted for the remote shell */
	if (x->cmd == NULL) {
		free(x);
		return RDHPF_ERR_NOMEM;
	}
	return stream_go(ls, x, stream);
}

int
lsh_open_unix(struct lsh *ls, const char *path, const struct rdhpf_stream_cbs *cbs, void *arg,
              void **stream)
{
	struct rdhpf_stream_cbs cb;
	struct lsh_stream *x;

	if (path == NULL || *path == '\0' || strlen(path) > 4096 || !cbs_copy(&cb, cbs) ||
	    stream == NULL)
		return RDHPF_ERR_INVAL;
	if (ls->phase != PH_READY)
		return RDHPF_ERR_NOTCONN;
	x = stream_start(ls, CK_UNIX, &cb, arg);
	if (x == NULL)
		return RDHPF_ERR_NOMEM;
	x->path = strdup(path);
	if (x->path == NULL) {
		free(x);
		return RDHPF_ERR_NOMEM;
	}
	return stream_go(ls, x, stream);
}

int
lsh_stream_write(struct lsh *ls, void *stream, const void *buf, size_t len)
{
	struct lsh_stream *x = stream;

	if (x == NULL || x->user_closed)
		return RDHPF_ERR_INVAL;
	if (ls->phase != PH_READY || x->c.state == CS_DONE)
		return RDHPF_ERR_NOTCONN;
	if (rsdk_buf_append(&x->in, buf, len) != 0)
		return RDHPF_ERR_NOMEM;
	if (x->c.state == CS_OPEN) {
		lsh_chan_ready(&x->c);
		lsh_kick(ls);
	}
	return RDHPF_OK;
}

void
lsh_stream_close(struct lsh *ls, void *stream)
{
	struct lsh_stream *x = stream;

	if (x == NULL)
		return;
	if (x->in_cb || x->torn) {
		x->user_closed = true; /* freed when its callback / the teardown returns */
		return;
	}
	/* Safe also from another stream's on_data: owners are only ever called
	 * outside libssh (lsh.h). */
	lsh_stream_free(ls, x);
}
