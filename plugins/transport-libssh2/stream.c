/* transport-libssh2, stream: streams for runtimes: remote commands (exec) and remote Unix
 * sockets (direct-streamlocal@openssh.com). */
#include "ls2.h"

/* ---- streams (exec, unix) ----------------------------------------------- */

static void
stream_unlink(struct ls2 *ls, struct xstream *x)
{
	if (x->sprev)
		x->sprev->snext = x->snext;
	else if (ls->streams == x)
		ls->streams = x->snext;
	if (x->snext)
		x->snext->sprev = x->sprev;
	x->snext = x->sprev = NULL;
}

static void
stream_free(struct ls2 *ls, struct xstream *x)
{
	ls2_chan_detach(ls, &x->c);
	stream_unlink(ls, x);
	rsdk_buf_free(&x->in);
	free(x->req);
	free(x);
}

/* End a stream by itself: on_close once, then free.  The callback may call
 * anything; nothing of x is touched after it. */
void
ls2_stream_finish(struct ls2 *ls, struct xstream *x, int status, int code, const char *detail)
{
	struct rdhpf_stream_cbs cbs = x->cbs;
	void *arg = x->arg;
	char d[TAIL_MAX + 128];

	snprintf(d, sizeof d, "%s", detail ? detail : "");
	stream_free(ls, x);
	cbs.on_close(arg, status, code, d[0] ? d : NULL);
}

static void
tail_add(struct xstream *x, const char *p, size_t k)
{
	if (k >= TAIL_MAX) {
		memcpy(x->tail, p + k - TAIL_MAX, TAIL_MAX);
		x->tail_len = TAIL_MAX;
	} else {
		if (x->tail_len + k > TAIL_MAX) {
			size_t drop = x->tail_len + k - TAIL_MAX;
			memmove(x->tail, x->tail + drop, x->tail_len - drop);
			x->tail_len -= drop;
		}
		memcpy(x->tail + x->tail_len, p, k);
		x->tail_len += k;
	}
	x->tail[x->tail_len] = '\0';
}

/* ---- exec / unix streams: service ------------------------------------------ */

/* Deliver to the owner; false if the stream or the session went away. */
static bool
x_deliver(struct ls2 *ls, struct xstream *x, const char *p, size_t n)
{
	unsigned gen = ls->gen;

	x->in_cb = true;
	x->cbs.on_data(x->arg, p, n);
	if (ls->destroyed || gen != ls->gen)
		return false;
	x->in_cb = false;
	if (x->user_closed) {
		stream_free(ls, x);
		return false;
	}
	return true;
}

void
ls2_x_service(struct xstream *x)
{
	struct ls2 *ls = x->c.ls;
	LIBSSH2_CHANNEL *ch = x->c.ch;
	int rc;

	if (ch == NULL)
		return;
	if (x->c.state == CS_STARTING) {
		rc = libssh2_channel_process_startup(ch, "exec", 4, x->req, (unsigned)x->req_len);
		if (rc == LIBSSH2_ERROR_EAGAIN)
			return;
		if (rc != 0) {
			char d[300];
			snprintf(d, sizeof d, "the server refused to run the command: %s",
			         ls2_sess_errmsg(ls));
			ls2_stream_finish(ls, x, RDHPF_ERR_REMOTE, -1, d);
			return;
		}
		x->c.state = CS_OPEN;
	}
	if (x->c.state != CS_OPEN)
		return;
	x->c.win_blocked = false;
	while (rsdk_buf_size(&x->in) > 0) {
		ssize_t w;
		if (rsdk_buf_size(&ls->out) >= OUT_HIGH) {
			x->c.out_throttled = true;
			ls->any_throttled = true;
			break;
		}
		w = libssh2_channel_write(ch, rsdk_buf_str(&x->in), rsdk_buf_size(&x->in));
		if (w > 0) {
			rsdk_buf_consume(&x->in, (size_t)w);
			continue;
		}
		if (w == LIBSSH2_ERROR_EAGAIN || w == 0) {
			if (libssh2_channel_window_write_ex(ch, NULL) == 0)
				x->c.win_blocked = true;
			break;
		}
		/* the remote stopped reading (EOF sent, closed): drop the rest */
		rsdk_buf_free(&x->in);
		break;
	}
	ls2_buf_trim(&x->in);
	for (int i = 0; i < 64 && !x->out_eof; i++) {
		ssize_t n = libssh2_channel_read_ex(ch, 0, ls->scratch, 65536);
		if (n > 0) {
			if (!x_deliver(ls, x, ls->scratch, (size_t)n))
				return;
			continue;
		}
		if (n == LIBSSH2_ERROR_EAGAIN)
			break;
		x->out_eof = true;
	}
	for (int i = 0; i < 64 && !x->err_eof; i++) {
		ssize_t n =
		    libssh2_channel_read_ex(ch, SSH_EXTENDED_DATA_STDERR, ls->scratch, 65536);
		if (n > 0) {
			if (x->c.kind == CK_EXEC)
				tail_add(x, ls->scratch, (size_t)n);
			continue;
		}
		if (n == LIBSSH2_ERROR_EAGAIN)
			break;
		x->err_eof = true;
	}
	if (!(x->out_eof && x->err_eof))
		return;
	if (x->c.kind == CK_UNIX) {
		ls2_stream_finish(ls, x, RDHPF_OK, -1, NULL);
		return;
	}
	/* exit-status comes before the server's CLOSE: wait for the CLOSE. */
	rc = libssh2_channel_wait_closed(ch);
	if (rc == LIBSSH2_ERROR_EAGAIN)
		return;
	{
		char *sig = NULL;
		int code = libssh2_channel_get_exit_status(ch);
		char d[TAIL_MAX + 64];
		libssh2_channel_get_exit_signal(ch, &sig, NULL, NULL, NULL, NULL, NULL);
		if (sig != NULL) {
			snprintf(d, sizeof d, "%s%skilled by signal %s", x->tail,
			         x->tail_len ? "; " : "", sig);
			libssh2_free(ls->s, sig);
			ls2_stream_finish(ls, x, RDHPF_OK, -1, d);
			return;
		}
		snprintf(d, sizeof d, "%s", x->tail);
		ls2_stream_finish(ls, x, RDHPF_OK, code, d[0] ? d : NULL);
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

static struct xstream *
stream_new(struct ls2 *ls, int kind, const struct rdhpf_stream_cbs *cbs, void *arg)
{
	struct xstream *x = calloc(1, sizeof *x);

	if (x == NULL)
		return NULL;
	x->c.ls = ls;
	x->c.kind = kind;
	x->cbs = *cbs;
	x->arg = arg;
	return x;
}

static void
stream_start(struct ls2 *ls, struct xstream *x)
{
	x->snext = ls->streams;
	if (ls->streams)
		ls->streams->sprev = x;
	ls->streams = x;
	ls2_openq_push(ls, &x->c);
	ls2_kick(ls);
}

int
ls2_exec(void *state, const char *const *argv, const struct rdhpf_stream_cbs *cbs, void *arg,
         void **stream)
{
	struct ls2 *ls = state;
	struct rdhpf_stream_cbs cb;
	struct xstream *x;

	if (argv == NULL || argv[0] == NULL || !cbs_copy(&cb, cbs) || stream == NULL)
		return RDHPF_ERR_INVAL;
	if (ls->phase != PH_READY)
		return RDHPF_ERR_NOTCONN;
	x = stream_new(ls, CK_EXEC, &cb, arg);
	if (x == NULL)
		return RDHPF_ERR_NOMEM;
	x->req = ls2_H->shell_join(argv);
	if (x->req == NULL) {
		free(x);
		return RDHPF_ERR_NOMEM;
	}
	x->req_len = strlen(x->req);
	stream_start(ls, x);
	*stream = x;
	return RDHPF_OK;
}

int
ls2_open_unix(void *state, const char *path, const struct rdhpf_stream_cbs *cbs, void *arg,
              void **stream)
{
	struct ls2 *ls = state;
	struct rdhpf_stream_cbs cb;
	struct xstream *x;
	size_t pl;
	unsigned char *m;

	if (path == NULL || *path == '\0' || !cbs_copy(&cb, cbs) || stream == NULL)
		return RDHPF_ERR_INVAL;
	pl = strlen(path);
	if (pl > 4096)
		return RDHPF_ERR_INVAL;
	if (ls->phase != PH_READY)
		return RDHPF_ERR_NOTCONN;
	x = stream_new(ls, CK_UNIX, &cb, arg);
	if (x == NULL)
		return RDHPF_ERR_NOMEM;
	/* direct-streamlocal@openssh.com: string socket path, string reserved
	 * (""), uint32 reserved (0) — 1.10 has no helper for it. */
	x->req_len = 4 + pl + 4 + 4;
	m = malloc(x->req_len);
	if (m == NULL) {
		free(x);
		return RDHPF_ERR_NOMEM;
	}
	m[0] = (unsigned char)(pl >> 24);
	m[1] = (unsigned char)(pl >> 16);
	m[2] = (unsigned char)(pl >> 8);
	m[3] = (unsigned char)pl;
	memcpy(m + 4, path, pl);
	memset(m + 4 + pl, 0, 8);
	x->req = (char *)m;
	stream_start(ls, x);
	*stream = x;
	return RDHPF_OK;
}

int
ls2_stream_write(void *state, void *stream, const void *buf, size_t len)
{
	struct ls2 *ls = state;
	struct xstream *x = stream;

	if (x == NULL || x->user_closed)
		return RDHPF_ERR_INVAL;
	if (ls->phase != PH_READY || x->torn)
		return RDHPF_ERR_NOTCONN;
	if (rsdk_buf_append(&x->in, buf, len) != 0)
		return RDHPF_ERR_NOMEM;
	if (x->c.state == CS_OPEN)
		ls2_ready_push(ls, &x->c);
	ls2_kick(ls);
	return RDHPF_OK;
}

void
ls2_stream_close(void *state, void *stream)
{
	struct ls2 *ls = state;
	struct xstream *x = stream;

	if (x == NULL)
		return;
	if (x->in_cb || x->torn) {
		x->user_closed = true; /* freed when its callback / the teardown returns */
		return;
	}
	stream_free(ls, x);
	ls2_kick(ls);
}
