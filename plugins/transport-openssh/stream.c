/* transport-openssh: streams for runtimes: exec over a mux session, open_unix over a streamlocal
 * forward of the master. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ossh.h"

static void stream_fail_later(struct ostream *s, int status, const char *why);
static void stream_unix_connect(struct ostream *s);

static void
ul_free(struct oss *o, struct ulisten *ul)
{
	for (struct ulisten **pp = &o->ul; *pp; pp = &(*pp)->next) {
		if (*pp == ul) {
			*pp = ul->next;
			break;
		}
	}
	unlink_if_stale(ul->lpath);
	free(ul);
}

void
ul_drop_all(struct oss *o)
{
	for (struct ostream *s = o->streams; s; s = s->next) {
		if (s->ul != NULL) {
			s->ul = NULL;
			stream_fail_later(s, RDHPF_ERR_CLOSED, "ssh master went away");
		}
	}
	/* Requests still waiting for the master must not reach them. */
	for (struct mop *m = o->cc.head; m; m = m->next)
		m->ul = NULL;
	while (o->ul) {
		struct ulisten *ul = o->ul;
		o->ul = ul->next;
		/* The master that listened is gone or going: remove the name
		 * whether it still answers or not (it is ours). */
		unlink(ul->lpath);
		free(ul);
	}
}

void
ul_ready(struct oss *o, struct ulisten *ul, int status, const char *detail)
{
	struct ostream *s, *next;

	if (status == RDHPF_OK)
		ul->state = UL_READY;
	for (s = o->streams; s; s = next) {
		next = s->next;
		if (s->ul != ul)
			continue;
		s->ul = NULL;
		if (status == RDHPF_OK)
			stream_unix_connect(s);
		else
			stream_fail_later(s, status, detail);
	}
	if (status != RDHPF_OK)
		ul_free(o, ul);
}

static void
stream_unlink(struct ostream *s)
{
	for (struct ostream **pp = &s->o->streams; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			return;
		}
	}
}

static void
stream_free(struct ostream *s)
{
	stream_unlink(s);
	io_close(&s->cio, &s->cfd);
	io_close(&s->in_io, &s->in_fd);
	io_close(&s->out_io, &s->out_fd);
	io_close(&s->err_io, &s->err_fd);
	if (s->fail_t)
		H->timer_stop(s->fail_t);
	rsdk_buf_free(&s->cr);
	rsdk_buf_free(&s->w);
	free(s->rpath);
	free(s);
}

/* The stream ended by itself: free it, then tell its owner (last). */
static void
stream_finish(struct ostream *s, int status, int code, const char *detail)
{
	void (*on_close)(void *, int, int, const char *) = s->on_close;
	void *arg = s->arg;
	char d[TAIL_MAX + 300];
	int has = detail != NULL;

	if (has)
		snprintf(d, sizeof d, "%s", detail);
	stream_free(s);
	on_close(arg, status, code, has ? d : NULL);
}

static void
stream_exec_maybe_done(struct ostream *s)
{
	const char *detail;

	if (!((s->exited || s->ctl_eof) && s->out_eof && s->err_eof))
		return;
	detail = s->tail_len ? s->tail : (s->reason[0] ? s->reason : NULL);
	stream_finish(s, s->status, s->exited ? s->exit_code : -1, detail);
}

static void
stream_in_watch(struct ostream *s)
{
	struct rdhpf_io *io = s->kind == S_EXEC ? s->in_io : s->cio;
	unsigned ev = s->kind == S_EXEC ? 0 : RDHPF_IO_READ;

	if (io != NULL)
		H->io_update(io, ev | (rsdk_buf_size(&s->w) ? RDHPF_IO_WRITE : 0));
}

/* Write what is buffered.  0, or -errno when the remote side is gone. */
static int
stream_flush(struct ostream *s)
{
	int fd = s->kind == S_EXEC ? s->in_fd : s->cfd;
	int r;

	if (fd < 0)
		return 0; /* unix stream still waiting for its listener */
	r = sock_flush(fd, &s->w);
	if (r != 0)
		rsdk_buf_free(&s->w);
	stream_in_watch(s);
	return r;
}

static void
exec_in_cb(void *arg, int fd, unsigned rev)
{
	struct ostream *s = arg;

	(void)fd;
	(void)rev;
	if (stream_flush(s) != 0)
		io_close(&s->in_io, &s->in_fd); /* the command stopped reading */
}

static void
exec_out_cb(void *arg, int fd, unsigned rev)
{
	struct ostream *s = arg;
	char buf[16384];
	ssize_t n = read(fd, buf, sizeof buf);

	(void)rev;
	if (n > 0) {
		s->got += (uint64_t)n;
		s->on_data(s->arg, buf, (size_t)n);
		return; /* s may be gone (stream_close from on_data) */
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	io_close(&s->out_io, &s->out_fd);
	s->out_eof = 1;
	stream_exec_maybe_done(s);
}

static void
exec_err_cb(void *arg, int fd, unsigned rev)
{
	struct ostream *s = arg;
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof buf);

	(void)rev;
	if (n > 0) {
		tail_add(s->tail, &s->tail_len, buf, (size_t)n);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	io_close(&s->err_io, &s->err_fd);
	s->err_eof = 1;
	stream_exec_maybe_done(s);
}

static void
exec_ctl_parse(struct ostream *s)
{
	struct mux_msg msg;
	size_t used;
	char err[200];
	int r;

	while ((r = mux_decode(rsdk_buf_str(&s->cr), rsdk_buf_size(&s->cr), &msg, &used, err,
	                       sizeof err)) == 1) {
		switch (msg.type) {
		case MUX_MSG_HELLO:
			break; /* a master of another version refuses our hello */
		case MUX_S_SESSION_OPENED:
			s->opened = 1;
			break;
		case MUX_S_FAILURE:
		case MUX_S_PERMISSION_DENIED: {
			char why[200];
			rsdk_printable(why, sizeof why, msg.reason.p, msg.reason.len);
			s->status = RDHPF_ERR_REMOTE;
			/* The master says so when sshd refused the session
			 * channel: past MaxSessions, most likely. */
			snprintf(
			    s->reason, sizeof s->reason, "ssh master refused the session: %.150s%s",
			    why,
			    strstr(why, "refused by peer") != NULL
			        ? " (sshd refused a session channel on this connection: likely "
			          "its MaxSessions limit, default 10 per connection)"
			        : "");
			s->exited = 1;
			s->exit_code = -1;
			break;
		}
		case MUX_S_EXIT_MESSAGE:
			if (!s->exited) {
				s->exited = 1;
				s->exit_code = (int)(msg.value & 0xff);
			}
			break;
		default:
			break; /* TTY_ALLOC_FAIL and the like */
		}
		rsdk_buf_consume(&s->cr, used);
	}
	if (r < 0) {
		s->status = RDHPF_ERR_PROTO;
		snprintf(s->reason, sizeof s->reason,
		         "malformed packet from the ssh master: %.150s", err);
		s->ctl_eof = 1;
		io_close(&s->cio, &s->cfd);
	}
}

static void
exec_ctl_cb(void *arg, int fd, unsigned rev)
{
	struct ostream *s = arg;
	unsigned char buf[1024];

	(void)rev;
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n > 0) {
			if (rsdk_buf_append(&s->cr, buf, (size_t)n) != 0)
				break;
			exec_ctl_parse(s);
			if (s->cfd < 0)
				break;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		break;
	}
	/* The master closes the session's connection when the session ends,
	 * or when it dies. */
	io_close(&s->cio, &s->cfd);
	s->ctl_eof = 1;
	if (!s->exited && s->status == RDHPF_OK) {
		s->status = RDHPF_ERR_CLOSED;
		snprintf(s->reason, sizeof s->reason,
		         s->opened ? "session ended without an exit status (killed by a signal, or "
		                     "the link went away)"
		                   : "ssh master closed the session before it opened");
	}
	stream_exec_maybe_done(s);
}

/* The opener's callbacks, both mandatory, read only inside what it
 * knew (struct_size). */
static int
cbs_usable(const struct rdhpf_stream_cbs *cbs)
{
	return cbs != NULL && RDHPF_HAS(cbs, on_data) && RDHPF_HAS(cbs, on_close) &&
	       cbs->on_data != NULL && cbs->on_close != NULL;
}

int
t_exec(void *state, const char *const *argv, const struct rdhpf_stream_cbs *cbs, void *arg,
       void **stream)
{
	struct oss *o = state;
	struct ostream *s;
	char *cmd;
	struct rsdk_buf out = {0};
	int sv[2] = {-1, -1}, po[2] = {-1, -1}, pe[2] = {-1, -1}, r = RDHPF_ERR_IO, fd = -1;
	int gone = 0;
	ssize_t n;

	if (o->st != M_UP)
		return RDHPF_ERR_NOTCONN;
	if (argv == NULL || argv[0] == NULL || !cbs_usable(cbs))
		return RDHPF_ERR_INVAL;
	cmd = H->shell_join(argv);
	if (cmd == NULL)
		return RDHPF_ERR_NOMEM;
	if (strlen(cmd) > CMD_MAX) {
		free(cmd);
		return RDHPF_ERR_INVAL;
	}
	s = calloc(1, sizeof *s);
	if (s == NULL) {
		free(cmd);
		return RDHPF_ERR_NOMEM;
	}
	s->o = o;
	s->kind = S_EXEC;
	s->on_data = cbs->on_data;
	s->on_close = cbs->on_close;
	s->arg = arg;
	s->cfd = s->in_fd = s->out_fd = s->err_fd = -1;
	s->status = RDHPF_OK;
	s->exit_code = -1;

	/* stdin is a socket pair, so writes never raise SIGPIPE. */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 || fd_prepare(sv[0], 1) != 0 ||
	    fd_prepare(sv[1], 0) != 0)
		goto fail;
	if (pipe_pair(&po[0], &po[1], 1) != 0 || pipe_pair(&pe[0], &pe[1], 1) != 0)
		goto fail;
	fd = unix_connect(o->ctl);
	if (fd < 0) {
		r = fd == -EAGAIN ? RDHPF_ERR_BUSY : RDHPF_ERR_NOTCONN;
		if (fd == -ENOENT || fd == -ECONNREFUSED)
			gone = 1; /* after the cleanup below */
		fd = -1;
		goto fail;
	}
	if (mux_enc_hello(&out) != 0 || mux_enc_session(&out, ++o->next_rid, cmd) != 0) {
		r = RDHPF_ERR_NOMEM;
		goto fail;
	}
	/* A fresh socket's buffer takes the whole request at once; the master
	 * reads the packet, then the three descriptors. */
	n = send(fd, rsdk_buf_str(&out), rsdk_buf_size(&out), MSG_NOSIGNAL);
	if (n < 0 || (size_t)n != rsdk_buf_size(&out) || send_fd(fd, sv[1]) != 0 ||
	    send_fd(fd, po[1]) != 0 || send_fd(fd, pe[1]) != 0) {
		r = RDHPF_ERR_BUSY;
		goto fail;
	}
	rsdk_buf_free(&out);
	free(cmd);
	close(sv[1]);
	close(po[1]);
	close(pe[1]);
	s->cfd = fd;
	s->in_fd = sv[0];
	s->out_fd = po[0];
	s->err_fd = pe[0];
	s->cio = H->io_start(o->ctx, s->cfd, RDHPF_IO_READ, exec_ctl_cb, s);
	s->in_io = H->io_start(o->ctx, s->in_fd, 0, exec_in_cb, s);
	s->out_io = H->io_start(o->ctx, s->out_fd, RDHPF_IO_READ, exec_out_cb, s);
	s->err_io = H->io_start(o->ctx, s->err_fd, RDHPF_IO_READ, exec_err_cb, s);
	if (s->cio == NULL || s->in_io == NULL || s->out_io == NULL || s->err_io == NULL) {
		s->next = NULL;
		stream_free(s);
		return RDHPF_ERR_NOMEM;
	}
	s->next = o->streams;
	o->streams = s;
	H->counter_add(o->ctx, "ssh_sessions_total", 1);
	*stream = s;
	return RDHPF_OK;
fail:
	rsdk_buf_free(&out);
	free(cmd);
	for (int i = 0; i < 2; i++) {
		if (sv[i] >= 0)
			close(sv[i]);
		if (po[i] >= 0)
			close(po[i]);
		if (pe[i] >= 0)
			close(pe[i]);
	}
	if (fd >= 0)
		close(fd);
	free(s);
	if (gone)
		link_broken(o);
	return r;
}

static void
unix_io_cb(void *arg, int fd, unsigned rev)
{
	struct ostream *s = arg;
	char buf[16384];
	ssize_t n;

	if (rev & RDHPF_IO_WRITE) {
		if (stream_flush(s) != 0) {
			stream_finish(s, RDHPF_ERR_CLOSED, -1,
			              "remote socket closed the connection");
			return;
		}
	}
	if (!(rev & (RDHPF_IO_READ | RDHPF_IO_ERROR)))
		return;
	n = recv(fd, buf, sizeof buf, 0);
	if (n > 0) {
		s->got += (uint64_t)n;
		s->on_data(s->arg, buf, (size_t)n);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (s->got == 0) {
		char d[1200];
		snprintf(
		    d, sizeof d,
		    "remote socket %s closed the connection without sending anything (missing, "
		    "not permitted, or the server forbids stream forwarding)",
		    s->rpath);
		stream_finish(s, RDHPF_ERR_REMOTE, -1, d);
	} else {
		stream_finish(s, n == 0 ? RDHPF_OK : RDHPF_ERR_CLOSED, -1, NULL);
	}
}

static void
stream_fail_cb(void *arg)
{
	struct ostream *s = arg;

	stream_finish(s, s->fail_status, -1, s->reason);
}

/* Fail a stream from an event handler: on_close from a timer of its own,
 * so whatever loop called us is not disturbed. */
static void
stream_fail_later(struct ostream *s, int status, const char *why)
{
	s->fail_status = status;
	snprintf(s->reason, sizeof s->reason, "%s", why ? why : "failed");
	if (s->fail_t == NULL)
		s->fail_t = H->timer_start(s->o->ctx, 0, 0, stream_fail_cb, s);
}

static void
stream_unix_connect(struct ostream *s)
{
	struct ulisten *ul = NULL;
	int fd;

	for (ul = s->o->ul; ul; ul = ul->next)
		if (ul->state == UL_READY && strcmp(ul->rpath, s->rpath) == 0)
			break;
	if (ul == NULL) {
		stream_fail_later(s, RDHPF_ERR_CLOSED, "the forward to the remote socket is gone");
		return;
	}
	fd = unix_connect(ul->lpath);
	if (fd < 0) {
		char d[200];
		snprintf(d, sizeof d, "cannot connect to the master's socket %s: %s", ul->lpath,
		         strerror(-fd));
		stream_fail_later(s, fd == -EAGAIN ? RDHPF_ERR_BUSY : RDHPF_ERR_CLOSED, d);
		return;
	}
	s->cfd = fd;
	s->cio = H->io_start(s->o->ctx, fd, RDHPF_IO_READ, unix_io_cb, s);
	if (s->cio == NULL) {
		stream_fail_later(s, RDHPF_ERR_NOMEM, "out of memory");
		return;
	}
	if (stream_flush(s) != 0)
		stream_fail_later(s, RDHPF_ERR_CLOSED, "remote socket closed the connection");
}

int
t_open_unix(void *state, const char *path, const struct rdhpf_stream_cbs *cbs, void *arg,
            void **stream)
{
	struct oss *o = state;
	struct ostream *s;
	struct ulisten *ul;
	size_t nul = 0;

	if (o->st != M_UP)
		return RDHPF_ERR_NOTCONN;
	if (path == NULL || path[0] != '/' || strlen(path) >= sizeof ul->rpath || !cbs_usable(cbs))
		return RDHPF_ERR_INVAL;
	for (const char *c = path; *c; c++)
		if ((unsigned char)*c < 0x20)
			return RDHPF_ERR_INVAL;
	for (ul = o->ul; ul; ul = ul->next, nul++)
		if (strcmp(ul->rpath, path) == 0)
			break;
	s = calloc(1, sizeof *s);
	if (s == NULL)
		return RDHPF_ERR_NOMEM;
	s->o = o;
	s->kind = S_UNIX;
	s->on_data = cbs->on_data;
	s->on_close = cbs->on_close;
	s->arg = arg;
	s->cfd = s->in_fd = s->out_fd = s->err_fd = -1;
	s->rpath = strdup(path);
	if (s->rpath == NULL) {
		free(s);
		return RDHPF_ERR_NOMEM;
	}
	if (ul == NULL) {
		if (nul >= UNIX_LISTENERS_MAX) {
			free(s->rpath);
			free(s);
			return RDHPF_ERR_BUSY;
		}
		ul = calloc(1, sizeof *ul);
		if (ul == NULL) {
			free(s->rpath);
			free(s);
			return RDHPF_ERR_NOMEM;
		}
		snprintf(ul->rpath, sizeof ul->rpath, "%s", path);
		/* Next to the control socket, named after it: unique among live
		 * instances because the control path is. */
		if ((size_t)snprintf(ul->lpath, sizeof ul->lpath, "%.*s.u%u",
		                     (int)(strlen(o->ctl) - 5), o->ctl,
		                     o->ul_seq++) >= sizeof ul->lpath) {
			free(ul);
			free(s->rpath);
			free(s);
			return RDHPF_ERR_INVAL;
		}
		unlink_if_stale(ul->lpath);
		ul->state = UL_PENDING;
		ul->next = o->ul;
		o->ul = ul;
		if (ctl_request_fwd(o, MOP_UNIX_OPEN, MUX_C_OPEN_FWD, ul->lpath,
		                    MUX_PORT_STREAMLOCAL, ul->rpath, MUX_PORT_STREAMLOCAL, NULL, ul,
		                    NULL, NULL) != 0) {
			ul_free(o, ul);
			free(s->rpath);
			free(s);
			link_broken(o);
			return RDHPF_ERR_NOTCONN;
		}
	}
	s->next = o->streams;
	o->streams = s;
	if (ul->state == UL_READY) {
		stream_unix_connect(s);
	} else {
		s->ul = ul;
	}
	*stream = s;
	return RDHPF_OK;
}

int
t_stream_write(void *state, void *stream, const void *buf, size_t len)
{
	struct ostream *s = stream;

	(void)state;
	if (s->kind == S_EXEC && s->in_fd < 0)
		return RDHPF_ERR_CLOSED;
	if (rsdk_buf_size(&s->w) + len > STREAM_WBUF_MAX)
		return RDHPF_ERR_BUSY;
	if (rsdk_buf_append(&s->w, buf, len) != 0)
		return RDHPF_ERR_NOMEM;
	if (stream_flush(s) != 0) {
		if (s->kind == S_EXEC)
			io_close(&s->in_io, &s->in_fd);
		return RDHPF_ERR_CLOSED;
	}
	return RDHPF_OK;
}

void
t_stream_close(void *state, void *stream)
{
	(void)state;
	/* Closing our ends makes the master close the channel. */
	stream_free(stream);
}

void
close_streams(struct oss *o)
{
	while (o->streams)
		stream_free(o->streams);
}
