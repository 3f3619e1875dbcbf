/* transport-openssh: the system ssh client as a ControlMaster, one TCP
 * connection per host.  Like the docker CLI's ssh://, it honours the user's
 * ssh_config, agent and ProxyJump, because it is the user's ssh.
 *
 * The master is our own child (`ssh -M -N`, never -f), registered with the
 * core loop, so its death is seen at once.  Everything else speaks the
 * ControlMaster's mux protocol (OpenSSH PROTOCOL.mux, version 4) directly
 * over the control socket; no further ssh process is ever spawned, so no
 * second TCP connection to the host can happen:
 *
 *   - one persistent control connection per host carries alive checks and
 *     forward open/close requests, pipelined, replies matched by request id
 *     (the master answers these at once and keeps the connection open);
 *   - exec opens a short control connection per command and sends
 *     MUX_C_NEW_SESSION with the stdin/stdout/stderr fds passed over
 *     SCM_RIGHTS, exactly what `ssh -S` does as a mux client; the exit
 *     status comes back as MUX_S_EXIT_MESSAGE;
 *   - open_unix asks the master for a local streamlocal forward (the mux
 *     form of `-L LOCALSOCK:REMOTESOCK`) from a socket in our private
 *     runtime directory, once per remote path, and connects to it;
 *   - liveness, end to end: every keepalive_interval a short control
 *     connection sends MUX_C_NEW_STDIO_FWD (the mux form of `ssh -W`) to
 *     127.0.0.1 port 0 on the remote.  The master answers only when sshd
 *     has answered the channel open, and sshd always refuses it (nothing
 *     listens on port 0, and connect() to it fails at once, so no process
 *     and no connection happen on the remote; sshd logs one
 *     "connect_to 127.0.0.1 port 0: failed." line per probe).  The link is
 *     dead when no answer came for keepalive_interval × keepalive_count
 *     (plus half an interval), the libssh2 transport's rule; each interval
 *     that passes unanswered is counted and logged.  The mux alive check
 *     stays as it was; ssh's own ServerAlive gets two more misses than
 *     the probe, as a backstop (it is late under load: a blackhole took
 *     5.8-6.8 s to find with 1 s × 3, and idle it raced the probe).
 *
 * Behaviour of the master verified against OpenSSH 9.2: an identical
 * MUX_C_OPEN_FWD is answered MUX_S_OK (idempotent); another target on a
 * bound port fails with "Port forwarding failed"; MUX_C_CLOSE_FWD of an
 * unknown forward fails with "port not forwarded"; MUX_C_TERMINATE never
 * gets its MUX_S_OK out (the master exits first), and is dropped if the
 * client closes right after sending it on a connection whose hello has not
 * been processed yet — so we keep the connection open until the master
 * exits, or send it only on a connection that has already been answered.
 *
 * The control socket lives in the core's private 0700 runtime directory,
 * named by a hash of host section, user, host and port, short enough for
 * macOS's 104-byte sun_path (the master first binds NAME.XXXXXXXXXXXXXXXX,
 * 17 bytes longer).  A socket left by a dead master (connect refused) is
 * removed before a master starts; a live one belongs to someone else and is
 * never touched (the next name is used). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include "rdhpf/plugin.h"

/* PROTOCOL.mux */
#define MUX_MSG_HELLO 0x00000001u
#define MUX_C_NEW_SESSION 0x10000002u
#define MUX_C_ALIVE_CHECK 0x10000004u
#define MUX_C_TERMINATE 0x10000005u
#define MUX_C_OPEN_FWD 0x10000006u
#define MUX_C_CLOSE_FWD 0x10000007u
#define MUX_C_NEW_STDIO_FWD 0x10000008u
#define MUX_S_OK 0x80000001u
#define MUX_S_PERMISSION_DENIED 0x80000002u
#define MUX_S_FAILURE 0x80000003u
#define MUX_S_EXIT_MESSAGE 0x80000004u
#define MUX_S_ALIVE 0x80000005u
#define MUX_S_SESSION_OPENED 0x80000006u
#define MUX_S_REMOTE_PORT 0x80000007u
#define MUX_FWD_LOCAL 1u
#define MUX_VERSION 4u
#define MUX_PORT_STREAMLOCAL 0xfffffffeu
#define MUX_PACKET_MAX (256u * 1024u)

#define POLL_MS 20             /* while the master comes up */
#define TAIL_MAX 1024          /* stderr kept for error details */
#define LINE_MAX_ 512          /* longest stderr line logged */
#define SUN_PATH_PORTABLE 104  /* sizeof(sun_path) on macOS and the BSDs */
#define MASTER_TMP_SUFFIX 17   /* ssh binds "PATH.XXXXXXXXXXXXXXXX" first */
#define CTL_NAME_MAX 19        /* "/m-XXXXXXXX-NN.sock" */
#define CTL_CANDIDATES 16
#define TERM_GRACE_MS 1000     /* mux terminate → SIGTERM */
#define KILL_GRACE_MS 1000     /* SIGTERM → SIGKILL */
#define UNIX_LISTENERS_MAX 8
#define CMD_MAX 65536
#define STREAM_WBUF_MAX (16u * 1024u * 1024u)
/* The liveness probe's target: refused by any sshd at once (see above). */
#define LV_HOST "127.0.0.1"
#define LV_PORT 0u

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* macOS: SO_NOSIGPIPE is set on each socket instead */
#endif

static const struct rdhpf_host_api *H;

/* ---- byte buffers ------------------------------------------------------ */

struct buf {
	unsigned char *d;
	size_t off, len, cap; /* live bytes are d[off..len) */
};

static size_t
buf_avail(const struct buf *b)
{
	return b->len - b->off;
}

static int
buf_put(struct buf *b, const void *p, size_t n)
{
	if (b->off > 0 && b->len + n > b->cap) {
		memmove(b->d, b->d + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		unsigned char *d;
		while (cap < b->len + n)
			cap *= 2;
		d = realloc(b->d, cap);
		if (d == NULL)
			return -1;
		b->d = d;
		b->cap = cap;
	}
	memcpy(b->d + b->len, p, n);
	b->len += n;
	return 0;
}

static void
buf_consume(struct buf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len)
		b->off = b->len = 0;
}

static void
buf_free(struct buf *b)
{
	free(b->d);
	memset(b, 0, sizeof *b);
}

static void
put_u32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t
get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Copy src into dst, truncated to fit; always terminated. */
static void
copy_str(char *dst, size_t len, const char *src)
{
	size_t n = strnlen(src, len - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* ---- mux packets ------------------------------------------------------- */

/* A packet under construction: body only; pkt_finish prepends the length. */
struct pkt {
	struct buf b;
	int err;
};

static void
pkt_u32(struct pkt *p, uint32_t v)
{
	unsigned char x[4];

	put_u32(x, v);
	p->err |= buf_put(&p->b, x, 4);
}

static void
pkt_str(struct pkt *p, const char *s)
{
	size_t n = strlen(s);

	pkt_u32(p, (uint32_t)n);
	p->err |= buf_put(&p->b, s, n);
}

/* Append the finished packet (length + body) to out.  0 or -1. */
static int
pkt_finish(struct pkt *p, struct buf *out)
{
	unsigned char x[4];
	int r = -1;

	if (p->err == 0) {
		put_u32(x, (uint32_t)buf_avail(&p->b));
		if (buf_put(out, x, 4) == 0 && buf_put(out, p->b.d + p->b.off, buf_avail(&p->b)) == 0)
			r = 0;
	}
	buf_free(&p->b);
	return r;
}

/* Reading a received packet body, bounded. */
struct rd {
	const unsigned char *p;
	size_t n;
	int err;
};

static uint32_t
rd_u32(struct rd *r)
{
	uint32_t v;

	if (r->n < 4) {
		r->err = 1;
		return 0;
	}
	v = get_u32(r->p);
	r->p += 4;
	r->n -= 4;
	return v;
}

/* Copy a string into out (truncated, NUL-terminated, control characters
 * replaced: the master's words end up in logs). */
static void
rd_str(struct rd *r, char *out, size_t outlen)
{
	uint32_t n = rd_u32(r);
	size_t k = 0;

	out[0] = '\0';
	if (r->err || n > r->n) {
		r->err = 1;
		return;
	}
	for (uint32_t i = 0; i < n && k + 1 < outlen; i++) {
		unsigned char c = r->p[i];
		out[k++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	out[k] = '\0';
	r->p += n;
	r->n -= n;
}

/* ---- sockets ----------------------------------------------------------- */

static int
fd_prepare(int fd, int nonblock)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) != 0)
		return -1;
	if (nonblock) {
		fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
			return -1;
	}
#ifdef SO_NOSIGPIPE
	{
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one); /* not a socket: harmless */
	}
#endif
	return 0;
}

static int
unix_addr(struct sockaddr_un *sa, const char *path)
{
	size_t n = strlen(path);

	if (n >= sizeof sa->sun_path)
		return -1;
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, path, n + 1);
	return 0;
}

/* Non-blocking connect to a Unix socket: the fd, or -errno.  A full
 * listen backlog is -EAGAIN; nobody listening is -ECONNREFUSED. */
static int
unix_connect(const char *path)
{
	struct sockaddr_un sa;
	int fd, e;

	if (unix_addr(&sa, path) != 0)
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return -errno;
	if (fd_prepare(fd, 1) != 0) {
		e = errno;
		close(fd);
		return -e;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		e = errno == EINPROGRESS ? EAGAIN : errno;
		close(fd);
		return -e;
	}
	return fd;
}

/* A pipe whose ends are close-on-exec; *ours is made non-blocking. */
static int
pipe_pair(int *rd_end, int *wr_end, int ours_is_read)
{
	int p[2];

	if (pipe(p) != 0)
		return -1;
	if (fd_prepare(p[0], ours_is_read) != 0 || fd_prepare(p[1], !ours_is_read) != 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	*rd_end = p[0];
	*wr_end = p[1];
	return 0;
}

static int
send_fd(int sock, int fd)
{
	struct msghdr msg;
	struct iovec iov;
	char ch = '\0';
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct cmsghdr *c;
	ssize_t n;

	memset(&msg, 0, sizeof msg);
	memset(&cm, 0, sizeof cm);
	iov.iov_base = &ch;
	iov.iov_len = 1;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cm.buf;
	msg.msg_controllen = sizeof cm.buf;
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_len = CMSG_LEN(sizeof(int));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	memcpy(CMSG_DATA(c), &fd, sizeof fd);
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == 1 ? 0 : -1;
}

/* Write as much of b as the socket takes.  0 (done or would block), or
 * -errno. */
static int
sock_flush(int fd, struct buf *b)
{
	while (buf_avail(b) > 0) {
		ssize_t n = send(fd, b->d + b->off, buf_avail(b), MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno;
		}
		buf_consume(b, (size_t)n);
	}
	return 0;
}

/* A path whose socket nobody listens on any more is removed; anything
 * else (a live socket, not a socket, gone) is left alone.  1 if removed. */
static int
unlink_if_stale(const char *path)
{
	struct stat st;
	int fd;

	if (lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode))
		return 0;
	fd = unix_connect(path);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (fd != -ECONNREFUSED)
		return 0;
	return unlink(path) == 0;
}

/* ---- the instance ------------------------------------------------------ */

enum mstate {
	M_NONE = 0, /* no master */
	M_STARTING, /* spawned, waiting for its control socket to answer */
	M_UP,
	M_DYING,    /* asked to exit; waiting for the child to be reaped */
};

enum mop_kind {
	MOP_READY = 1, /* alive check that ends the start */
	MOP_HEALTH,
	MOP_OPEN,
	MOP_CLOSE,
	MOP_CLOSE_QUIET, /* replacing a forward's target: no caller */
	MOP_TERMINATE,
	MOP_UNIX_OPEN,
};

struct oss;
struct ostream;

struct fwd_key {
	char bind[64];
	uint16_t lport;
	char rhost[256];
	uint16_t rport;
};

/* One request on the persistent control connection. */
struct mop {
	uint32_t rid;
	int kind;
	rdhpf_done_fn done;
	void *arg;
	struct fwd_key fk;
	struct ulisten *ul;
	struct mop *next;
};

struct mux {
	int fd;
	struct rdhpf_io *io;
	struct buf r, w;
	int hello;          /* the master's hello arrived */
	unsigned long answers; /* replies seen: our hello was processed */
	struct mop *head, *tail;
};

/* The books: forwards asked for and not removed, by bind:local_port. */
struct fwd_entry {
	struct fwd_key k;
	struct fwd_entry *next;
};

/* A streamlocal forward LOCAL → remote path, shared by every open_unix to
 * that path while the master lives. */
enum { UL_PENDING = 1, UL_READY };
struct ulisten {
	char rpath[1024];
	char lpath[SUN_PATH_PORTABLE];
	int state;
	struct ulisten *next;
};

struct pending {
	struct oss *o;
	rdhpf_done_fn done;
	void *arg;
	int status;
	int has_detail;
	char detail[512];
	struct rdhpf_timer *t;
	struct pending *next;
};

enum { S_EXEC = 1, S_UNIX };

struct ostream {
	struct oss *o;
	int kind;
	const struct rdhpf_stream_cbs *cbs;
	void *arg;
	/* exec: the session's control connection; unix: the data socket */
	int cfd;
	struct rdhpf_io *cio;
	struct buf cr;     /* exec: control bytes read */
	struct buf w;      /* bytes for the remote (stdin / socket) */
	int in_fd;         /* exec: our end of stdin */
	struct rdhpf_io *in_io;
	int out_fd, err_fd;
	struct rdhpf_io *out_io, *err_io;
	int opened, exited, exit_code, ctl_eof, out_eof, err_eof;
	int status;
	char reason[256];
	char tail[TAIL_MAX + 1];
	size_t tail_len;
	struct ulisten *ul; /* unix: waiting for this listener (cfd < 0) */
	char *rpath;        /* unix: the remote socket */
	uint64_t got;
	struct rdhpf_timer *fail_t;
	int fail_status;
	struct ostream *next;
};

struct oss {
	struct rdhpf_ctx *ctx;
	/* settings */
	char *host_name, *user, *hostname, *identity, *known_hosts, *runtime_dir;
	char *ssh_bin, *ssh_config;
	char setpriv[32];
	uint16_t port;
	uint64_t connect_timeout_ms, keepalive_interval_ms;
	uint32_t keepalive_count;
	uint32_t hash;
	char ctl[SUN_PATH_PORTABLE];
	char where[300]; /* "host:port" for messages */
	/* the master */
	enum mstate st;
	struct rdhpf_child *child;
	int pid;
	int err_fd;
	struct rdhpf_io *err_io;
	char tail[TAIL_MAX + 1];
	size_t tail_len;
	char line[LINE_MAX_];
	size_t line_len;
	struct rdhpf_timer *poll_t, *deadline_t, *kill_t;
	int kill_stage;
	rdhpf_done_fn cdone;
	void *carg;
	int connect_queued;
	uint64_t connect_started_ms;
	struct mux mux;
	uint32_t next_rid;
	unsigned ul_seq;
	/* books and streams */
	struct fwd_entry *fw;
	struct ulisten *ul;
	struct ostream *streams;
	struct pending *pend;
	/* end-to-end liveness (see the top of this file) */
	struct rdhpf_timer *lv_tick_t, *lv_dead_t;
	int lv_fd;               /* the probe's control connection, -1 if none */
	struct rdhpf_io *lv_io;
	struct buf lv_r;
	uint32_t lv_rid;
	uint64_t lv_sent_ms;     /* when the probe in flight went out */
	uint64_t lv_last_ms;     /* the last answer (or the master coming up) */
	uint32_t lv_unanswered;  /* intervals without an answer, in a row */
	int lv_off;              /* the master cannot do it: ServerAlive only */
	int lv_never;            /* option liveness = no */
};

static void master_stop(struct oss *o);
static void master_gone(struct oss *o, int code, int sig);
static int master_start(struct oss *o, char *err, size_t errlen);
static void ul_drop_all(struct oss *o);
static void stream_free(struct ostream *s);
static void ul_ready(struct oss *o, struct ulisten *ul, int status, const char *detail);
static void link_broken(struct oss *o);
static void lv_start(struct oss *o);
static void lv_stop(struct oss *o);

static void
tail_add(char *tail, size_t *tail_len, const char *p, size_t k)
{
	if (k >= TAIL_MAX) {
		memcpy(tail, p + k - TAIL_MAX, TAIL_MAX);
		*tail_len = TAIL_MAX;
	} else {
		if (*tail_len + k > TAIL_MAX) {
			size_t drop = *tail_len + k - TAIL_MAX;
			memmove(tail, tail + drop, *tail_len - drop);
			*tail_len -= drop;
		}
		memcpy(tail + *tail_len, p, k);
		*tail_len += k;
	}
	tail[*tail_len] = '\0';
}

/* ---- deferred completions (never call back before the op returns) ---- */

static void
pending_fire(void *arg)
{
	struct pending *p = arg;
	struct oss *o = p->o;

	for (struct pending **pp = &o->pend; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	H->timer_stop(p->t);
	/* Nothing of ours is touched after the callback: it may disconnect. */
	p->done(p->arg, p->status, p->has_detail ? p->detail : NULL);
	free(p);
}

static int
complete_later(struct oss *o, rdhpf_done_fn done, void *arg, int status, const char *detail)
{
	struct pending *p = calloc(1, sizeof *p);

	if (p == NULL)
		return RDHPF_ERR_NOMEM;
	p->o = o;
	p->done = done;
	p->arg = arg;
	p->status = status;
	if (detail != NULL) {
		p->has_detail = 1;
		copy_str(p->detail, sizeof p->detail, detail);
	}
	p->t = H->timer_start(o->ctx, 0, 0, pending_fire, p);
	if (p->t == NULL) {
		free(p);
		return RDHPF_ERR_NOMEM;
	}
	p->next = o->pend;
	o->pend = p;
	return RDHPF_OK;
}

/* From an event handler (not inside a slot): the op already returned OK,
 * so its callback must come; out of memory is the only way it cannot. */
static void
complete_soon(struct oss *o, rdhpf_done_fn done, void *arg, int status, const char *detail)
{
	if (complete_later(o, done, arg, status, detail) != RDHPF_OK)
		done(arg, status, detail);
}

static void
pending_cancel_all(struct oss *o)
{
	while (o->pend) {
		struct pending *p = o->pend;
		o->pend = p->next;
		H->timer_stop(p->t);
		free(p);
	}
}

/* ---- the persistent control connection ---------------------------------- */

static void mux_io_cb(void *arg, int fd, unsigned rev);

static void
mux_watch(struct oss *o)
{
	if (o->mux.io != NULL)
		H->io_update(o->mux.io, RDHPF_IO_READ | (buf_avail(&o->mux.w) ? RDHPF_IO_WRITE : 0));
}

static void
mux_drop_ops(struct oss *o, int status, const char *detail, int call)
{
	struct mop *m = o->mux.head;

	o->mux.head = o->mux.tail = NULL;
	while (m) {
		struct mop *next = m->next;
		if (call && m->done != NULL)
			complete_soon(o, m->done, m->arg, status, detail);
		if (call && m->kind == MOP_UNIX_OPEN && m->ul != NULL)
			ul_ready(o, m->ul, status, detail);
		free(m);
		m = next;
	}
}

/* Close the control connection; outstanding requests fail with status
 * (call) or are dropped silently (!call). */
static void
mux_close(struct oss *o, int status, const char *detail, int call)
{
	if (o->mux.io)
		H->io_stop(o->mux.io);
	if (o->mux.fd >= 0)
		close(o->mux.fd);
	o->mux.io = NULL;
	o->mux.fd = -1;
	o->mux.hello = 0;
	o->mux.answers = 0;
	buf_free(&o->mux.r);
	buf_free(&o->mux.w);
	mux_drop_ops(o, status, detail, call);
}

static int
mux_hello(struct buf *out)
{
	struct pkt p = {0};

	pkt_u32(&p, MUX_MSG_HELLO);
	pkt_u32(&p, MUX_VERSION);
	return pkt_finish(&p, out);
}

/* Connect the control connection: 0, or -errno (-ENOENT, -ECONNREFUSED:
 * no master listening there). */
static int
mux_open(struct oss *o)
{
	int fd = unix_connect(o->ctl);

	if (fd < 0)
		return fd;
	o->mux.fd = fd;
	o->mux.io = H->io_start(o->ctx, fd, RDHPF_IO_READ, mux_io_cb, o);
	if (o->mux.io == NULL || mux_hello(&o->mux.w) != 0) {
		mux_close(o, RDHPF_ERR_IO, NULL, 0);
		return -ENOMEM;
	}
	return 0;
}

/* Queue one request: the op (taken over) and its packet.  0, or -1 when
 * the connection cannot be had (m freed). */
static int
mux_send(struct oss *o, struct mop *m, struct pkt *p)
{
	int r;

	if (o->mux.fd < 0 && (r = mux_open(o)) != 0) {
		H->log(o->ctx, RDHPF_LOG_WARN, "cannot reach the ssh control socket", "path", o->ctl,
		       "err", strerror(-r), NULL);
		buf_free(&p->b);
		free(m);
		return -1;
	}
	if (pkt_finish(p, &o->mux.w) != 0) {
		free(m);
		return -1;
	}
	m->next = NULL;
	if (o->mux.tail)
		o->mux.tail->next = m;
	else
		o->mux.head = m;
	o->mux.tail = m;
	r = sock_flush(o->mux.fd, &o->mux.w);
	if (r != 0) {
		/* The op is queued: it fails with the connection, later. */
		H->log(o->ctx, RDHPF_LOG_WARN, "ssh control socket write failed", "err", strerror(-r),
		       NULL);
	}
	mux_watch(o);
	return 0;
}

static struct mop *
mop_new(struct oss *o, int kind, rdhpf_done_fn done, void *arg)
{
	struct mop *m = calloc(1, sizeof *m);

	if (m == NULL)
		return NULL;
	m->rid = ++o->next_rid;
	m->kind = kind;
	m->done = done;
	m->arg = arg;
	return m;
}

static int
mux_request_simple(struct oss *o, int kind, uint32_t type, rdhpf_done_fn done, void *arg)
{
	struct mop *m = mop_new(o, kind, done, arg);
	struct pkt p = {0};

	if (m == NULL)
		return -1;
	pkt_u32(&p, type);
	pkt_u32(&p, m->rid);
	return mux_send(o, m, &p);
}

static int
mux_request_fwd(struct oss *o, int kind, uint32_t type, const char *lhost, uint32_t lport,
                const char *chost, uint32_t cport, const struct fwd_key *fk, struct ulisten *ul,
                rdhpf_done_fn done, void *arg)
{
	struct mop *m = mop_new(o, kind, done, arg);
	struct pkt p = {0};

	if (m == NULL)
		return -1;
	if (fk != NULL)
		m->fk = *fk;
	m->ul = ul;
	pkt_u32(&p, type);
	pkt_u32(&p, m->rid);
	pkt_u32(&p, MUX_FWD_LOCAL);
	pkt_str(&p, lhost);
	pkt_u32(&p, lport);
	pkt_str(&p, chost);
	pkt_u32(&p, cport);
	return mux_send(o, m, &p);
}

/* ---- forwards: the books ----------------------------------------------- */

static struct fwd_entry *
fw_find(struct oss *o, const char *bind, uint16_t lport)
{
	for (struct fwd_entry *e = o->fw; e; e = e->next)
		if (e->k.lport == lport && strcmp(e->k.bind, bind) == 0)
			return e;
	return NULL;
}

static void
fw_drop(struct oss *o, struct fwd_entry *e)
{
	for (struct fwd_entry **pp = &o->fw; *pp; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			free(e);
			return;
		}
	}
}

static int
fwkey_same_target(const struct fwd_key *a, const struct fwd_key *b)
{
	return a->rport == b->rport && strcmp(a->rhost, b->rhost) == 0;
}

/* Why did the master refuse to listen?  It only says "Port forwarding
 * failed"; a bind of our own tells a taken port from other causes. */
static int
bind_probe(const char *addr, uint16_t port, char *why, size_t len)
{
	struct addrinfo hints, *ai = NULL;
	char ps[8];
	int fd, r = RDHPF_ERR_GENERIC, one = 1;

	memset(&hints, 0, sizeof hints);
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(ps, sizeof ps, "%u", port);
	/* Numeric only: never a DNS lookup from the loop. */
	if (getaddrinfo(addr, ps, &hints, &ai) != 0 || ai == NULL) {
		snprintf(why, len, "bind address is not numeric; cause unknown");
		return RDHPF_ERR_GENERIC;
	}
	fd = socket(ai->ai_family, ai->ai_socktype, 0);
	if (fd >= 0) {
		/* As ssh does: SO_REUSEADDR, so TIME_WAIT does not count. */
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			snprintf(why, len, "the port is free now (it may have been taken briefly)");
			r = RDHPF_ERR_GENERIC;
		} else if (errno == EADDRINUSE) {
			snprintf(why, len, "%s:%u is already in use locally", addr, port);
			r = RDHPF_ERR_ADDRINUSE;
		} else if (errno == EACCES || errno == EPERM) {
			snprintf(why, len, "no permission to bind %s:%u", addr, port);
			r = RDHPF_ERR_IO;
		} else if (errno == EADDRNOTAVAIL) {
			snprintf(why, len, "bind address %s is not available on this machine", addr);
			r = RDHPF_ERR_INVAL;
		} else {
			snprintf(why, len, "bind %s:%u: %s", addr, port, strerror(errno));
			r = RDHPF_ERR_IO;
		}
		close(fd);
	}
	freeaddrinfo(ai);
	return r;
}

/* ---- replies on the control connection ---------------------------------- */

static void
on_ready(struct oss *o, uint32_t type, uint32_t pid, const char *reason)
{
	char d[256];

	if (o->st != M_STARTING)
		return;
	if (type != MUX_S_ALIVE) {
		snprintf(d, sizeof d, "ssh master refused the alive check: %.200s", reason);
	} else if ((int)pid != o->pid) {
		/* Someone else's master answers on our path: ours runs without a
		 * control socket.  Never use it; never touch theirs. */
		snprintf(d, sizeof d,
		         "control socket %s is answered by pid %u, not by our ssh master (pid %d)",
		         o->ctl, pid, o->pid);
	} else {
		char ms[24];
		uint64_t took = H->now_ms(o->ctx) - o->connect_started_ms;
		rdhpf_done_fn done = o->cdone;
		void *arg = o->carg;

		o->st = M_UP;
		H->timer_stop(o->poll_t);
		H->timer_stop(o->deadline_t);
		o->poll_t = o->deadline_t = NULL;
		o->cdone = NULL;
		lv_start(o);
		snprintf(ms, sizeof ms, "%llu", (unsigned long long)took);
		H->log(o->ctx, RDHPF_LOG_INFO, "ssh master connected", "dest", o->where, "pid",
		       (snprintf(d, sizeof d, "%d", o->pid), d), "took_ms", ms, NULL);
		H->observe(o->ctx, "ssh_master_connect_seconds", (double)took / 1000.0);
		if (done != NULL)
			complete_soon(o, done, arg, RDHPF_OK, NULL);
		return;
	}
	{
		rdhpf_done_fn done = o->cdone;
		void *arg = o->carg;
		o->cdone = NULL;
		H->log(o->ctx, RDHPF_LOG_ERROR, "ssh master unusable", "err", d, NULL);
		master_stop(o);
		if (done != NULL)
			complete_soon(o, done, arg, RDHPF_ERR_GENERIC, d);
	}
}

static void
on_reply(struct oss *o, struct mop *m, uint32_t type, struct rd *r)
{
	char reason[256] = "", d[512];
	uint32_t pid = 0;
	int st;

	if (type == MUX_S_FAILURE || type == MUX_S_PERMISSION_DENIED)
		rd_str(r, reason, sizeof reason);
	else if (type == MUX_S_ALIVE || type == MUX_S_REMOTE_PORT)
		pid = rd_u32(r);
	switch (m->kind) {
	case MOP_READY:
		on_ready(o, type, pid, reason);
		break;
	case MOP_HEALTH:
		if (type == MUX_S_ALIVE && (int)pid == o->pid)
			complete_soon(o, m->done, m->arg, RDHPF_OK, NULL);
		else {
			snprintf(d, sizeof d, "ssh master alive check: unexpected answer 0x%08x %s", type,
			         reason);
			complete_soon(o, m->done, m->arg, RDHPF_ERR_PROTO, d);
		}
		break;
	case MOP_OPEN:
		if (type == MUX_S_OK) {
			complete_soon(o, m->done, m->arg, RDHPF_OK, NULL);
			break;
		}
		{
			char why[160];
			struct fwd_entry *e = fw_find(o, m->fk.bind, m->fk.lport);
			st = type == MUX_S_FAILURE ? bind_probe(m->fk.bind, m->fk.lport, why, sizeof why)
			                           : RDHPF_ERR_GENERIC;
			if (type != MUX_S_FAILURE)
				snprintf(why, sizeof why, "refused by the master");
			if (e != NULL && fwkey_same_target(&e->k, &m->fk))
				fw_drop(o, e);
			snprintf(d, sizeof d, "ssh master: %s (%s)", reason[0] ? reason : "failed", why);
			complete_soon(o, m->done, m->arg, st, d);
		}
		break;
	case MOP_CLOSE:
	case MOP_CLOSE_QUIET:
		/* Not forwarded (any more) is what was asked for. */
		if (type == MUX_S_OK || strstr(reason, "not forwarded") || strstr(reason, "not found"))
			st = RDHPF_OK;
		else
			st = RDHPF_ERR_GENERIC;
		if (st != RDHPF_OK)
			snprintf(d, sizeof d, "ssh master: %s", reason);
		if (m->kind == MOP_CLOSE)
			complete_soon(o, m->done, m->arg, st, st == RDHPF_OK ? NULL : d);
		else if (st != RDHPF_OK)
			H->log(o->ctx, RDHPF_LOG_WARN, "replacing a forward: closing the old one failed",
			       "err", d, NULL);
		break;
	case MOP_UNIX_OPEN:
		if (type == MUX_S_OK)
			ul_ready(o, m->ul, RDHPF_OK, NULL);
		else {
			snprintf(d, sizeof d, "ssh master refused the forward to remote socket: %s",
			         reason[0] ? reason : "failed");
			ul_ready(o, m->ul, RDHPF_ERR_REMOTE, d);
		}
		break;
	case MOP_TERMINATE:
	default:
		break;
	}
}

static void
mux_parse(struct oss *o)
{
	while (buf_avail(&o->mux.r) >= 4) {
		const unsigned char *p = o->mux.r.d + o->mux.r.off;
		uint32_t len = get_u32(p);
		struct rd r;
		uint32_t type, rid;

		if (len < 4 || len > MUX_PACKET_MAX) {
			H->log(o->ctx, RDHPF_LOG_ERROR, "malformed packet from the ssh master", NULL);
			mux_close(o, RDHPF_ERR_PROTO, "malformed packet from the ssh master", 1);
			return;
		}
		if (buf_avail(&o->mux.r) < 4 + (size_t)len)
			return;
		r.p = p + 4;
		r.n = len;
		r.err = 0;
		type = rd_u32(&r);
		if (type == MUX_MSG_HELLO) {
			uint32_t v = rd_u32(&r);
			if (v != MUX_VERSION) {
				char d[96];
				snprintf(d, sizeof d, "ssh master speaks mux protocol %u, not %u", v,
				         MUX_VERSION);
				buf_consume(&o->mux.r, 4 + (size_t)len);
				mux_close(o, RDHPF_ERR_PROTO, d, 1);
				return;
			}
			o->mux.hello = 1;
		} else {
			struct mop *m, *prev = NULL;
			rid = rd_u32(&r);
			o->mux.answers++;
			for (m = o->mux.head; m; prev = m, m = m->next)
				if (m->rid == rid)
					break;
			if (m != NULL) {
				if (prev)
					prev->next = m->next;
				else
					o->mux.head = m->next;
				if (o->mux.tail == m)
					o->mux.tail = prev;
				on_reply(o, m, type, &r);
				free(m);
			}
		}
		/* on_reply may have closed the connection (master_stop keeps it,
		 * but be safe). */
		if (o->mux.fd < 0)
			return;
		buf_consume(&o->mux.r, 4 + (size_t)len);
	}
}

static void
mux_io_cb(void *arg, int fd, unsigned rev)
{
	struct oss *o = arg;
	unsigned char tmp[4096];

	if (rev & RDHPF_IO_WRITE) {
		int r = sock_flush(fd, &o->mux.w);
		if (r != 0) {
			mux_close(o, RDHPF_ERR_CLOSED, "ssh control connection lost", 1);
			return;
		}
		mux_watch(o);
	}
	if (!(rev & (RDHPF_IO_READ | RDHPF_IO_ERROR)))
		return;
	for (;;) {
		ssize_t n = recv(fd, tmp, sizeof tmp, 0);
		if (n > 0) {
			if (buf_put(&o->mux.r, tmp, (size_t)n) != 0) {
				mux_close(o, RDHPF_ERR_NOMEM, "out of memory", 1);
				return;
			}
			if ((size_t)n < sizeof tmp)
				break;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		/* EOF or error: the master closed the connection or is gone.
		 * Its exit (if that is it) is seen by the child watch. */
		mux_parse(o);
		if (o->mux.fd >= 0)
			mux_close(o, RDHPF_ERR_CLOSED, "ssh master closed the control connection", 1);
		return;
	}
	mux_parse(o);
}

/* ---- unix socket forwards ----------------------------------------------- */

static void stream_unix_connect(struct ostream *s);
static void stream_fail_later(struct ostream *s, int status, const char *why);

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

static void
ul_drop_all(struct oss *o)
{
	for (struct ostream *s = o->streams; s; s = s->next) {
		if (s->ul != NULL) {
			s->ul = NULL;
			stream_fail_later(s, RDHPF_ERR_CLOSED, "ssh master went away");
		}
	}
	while (o->ul) {
		struct ulisten *ul = o->ul;
		o->ul = ul->next;
		/* The master that listened is gone or going: remove the name
		 * whether it still answers or not (it is ours). */
		unlink(ul->lpath);
		free(ul);
	}
}

static void
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

/* ---- the master --------------------------------------------------------- */

static void
stop_timer(struct rdhpf_timer **t)
{
	if (*t != NULL)
		H->timer_stop(*t);
	*t = NULL;
}

static void
master_err_line(struct oss *o, const char *line)
{
	if (line[0] == '\0')
		return;
	/* Debug only: the failure's warn line already carries the line that
	 * matters, and info lines are never collapsed, so a host key banner
	 * per retry would grow the log without bound. */
	H->log(o->ctx, RDHPF_LOG_DEBUG, "ssh master says", "err", line, NULL);
}

static void
master_err_drain(struct oss *o)
{
	char buf[2048];

	if (o->err_fd < 0)
		return;
	for (;;) {
		ssize_t n = read(o->err_fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
				H->io_stop(o->err_io);
				o->err_io = NULL;
				close(o->err_fd);
				o->err_fd = -1;
			}
			return;
		}
		tail_add(o->tail, &o->tail_len, buf, (size_t)n);
		for (ssize_t i = 0; i < n; i++) {
			char c = buf[i];
			if (c == '\n') {
				o->line[o->line_len] = '\0';
				master_err_line(o, o->line);
				o->line_len = 0;
			} else if (c != '\r' && o->line_len + 1 < sizeof o->line) {
				o->line[o->line_len++] = (unsigned char)c < 0x20 ? '?' : c;
			}
		}
	}
}

static void
master_err_cb(void *arg, int fd, unsigned rev)
{
	(void)fd;
	(void)rev;
	master_err_drain(arg);
}

/* The most telling line of ssh's stderr, for a detail. */
static void
tail_pick(const char *tail, const char *prefer, char *out, size_t len)
{
	const char *best = NULL, *p = tail, *last = NULL;
	size_t best_len = 0, last_len = 0;

	while (*p) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == ' '))
			n--;
		if (n > 0 && p[0] != '@') {
			last = p;
			last_len = n;
			if (prefer != NULL && best == NULL && strstr(p, prefer) != NULL &&
			    (size_t)(strstr(p, prefer) - p) < n) {
				best = p;
				best_len = n;
			}
		}
		if (e == NULL)
			break;
		p = e + 1;
	}
	if (best == NULL) {
		best = last;
		best_len = last_len;
	}
	if (best == NULL) {
		snprintf(out, len, "no message");
		return;
	}
	if (best_len > 5 && strncmp(best, "ssh: ", 5) == 0) {
		best += 5; /* ssh's own prefix: the caller adds one */
		best_len -= 5;
	}
	if (best_len >= len)
		best_len = len - 1;
	memcpy(out, best, best_len);
	out[best_len] = '\0';
}

/* ssh exited while connecting: why, as a status and a detail naming the
 * host. */
static int
master_classify(struct oss *o, int code, int sig, char *d, size_t len)
{
	const char *t = o->tail;
	const char *kh = o->known_hosts ? o->known_hosts : "the user's known_hosts";
	char line[300];

	if (strstr(t, "IDENTIFICATION HAS CHANGED") || strstr(t, "has changed and you have requested")) {
		tail_pick(t, "Offending", line, sizeof line);
		snprintf(d, len,
		         "host key mismatch for %.120s: the key the server offers differs from the one in %.200s "
		         "(the host was reinstalled, or someone is in between); not connecting (ssh: %.200s)",
		         o->where, kh, line);
		return RDHPF_ERR_HOSTKEY;
	}
	if (strstr(t, "host key is known for") || strstr(t, "Host key verification failed")) {
		tail_pick(t, "host key", line, sizeof line);
		snprintf(d, len,
		         "host key for %.120s is not in %.200s and StrictHostKeyChecking=yes; verify the key "
		         "and add it (ssh: %.200s)",
		         o->where, kh, line);
		return RDHPF_ERR_HOSTKEY;
	}
	if (strstr(t, "Permission denied") || strstr(t, "Too many authentication failures")) {
		tail_pick(t, "Permission denied", line, sizeof line);
		snprintf(d, len, "authentication refused by %.120s%s%.64s (ssh: %.200s)", o->where,
		         o->user ? " for user " : "", o->user ? o->user : "", line);
		return RDHPF_ERR_AUTH;
	}
	if (strstr(t, "setpriv:") != NULL || (code == 127 && o->tail_len == 0)) {
		tail_pick(t, "setpriv:", line, sizeof line);
		snprintf(d, len, "could not run %.200s (%.200s)", o->ssh_bin,
		         o->tail_len ? line : "exit status 127");
		return RDHPF_ERR_IO;
	}
	if (strstr(t, "unix_listener") != NULL || strstr(t, "ControlSocket") != NULL) {
		tail_pick(t, NULL, line, sizeof line);
		snprintf(d, len, "ssh cannot create its control socket %.120s (%.200s)", o->ctl, line);
		return RDHPF_ERR_IO;
	}
	if (strstr(t, "Bad configuration option") || strstr(t, "command-line line") ||
	    strstr(t, "Bad owner or permissions") ||
	    strstr(t, "Bad port") || strstr(t, "no argument after keyword")) {
		tail_pick(t, NULL, line, sizeof line);
		snprintf(d, len, "ssh refused its configuration for %.120s (ssh: %.200s)", o->where, line);
		return RDHPF_ERR_INVAL;
	}
	tail_pick(t, NULL, line, sizeof line);
	if (sig != 0)
		snprintf(d, len, "ssh master for %.120s was killed by signal %d (ssh: %.200s)", o->where, sig,
		         line);
	else
		snprintf(d, len, "cannot connect to %.120s: ssh exited with status %d (ssh: %.200s)", o->where,
		         code, line);
	return RDHPF_ERR_CONNECT;
}

static void
master_exit_cb(void *arg, int code, int sig)
{
	struct oss *o = arg;

	o->child = NULL;
	master_gone(o, code, sig);
}

/* The child is gone (reaped): clean up whatever it left, then tell whoever
 * waits. */
static void
master_gone(struct oss *o, int code, int sig)
{
	enum mstate was = o->st;
	char d[768], cs[16], ss[16];
	rdhpf_done_fn done = o->cdone;
	void *carg = o->carg;

	master_err_drain(o);
	if (o->line_len > 0) {
		o->line[o->line_len] = '\0';
		master_err_line(o, o->line);
		o->line_len = 0;
	}
	if (o->err_io)
		H->io_stop(o->err_io);
	if (o->err_fd >= 0)
		close(o->err_fd);
	o->err_io = NULL;
	o->err_fd = -1;
	stop_timer(&o->poll_t);
	stop_timer(&o->deadline_t);
	stop_timer(&o->kill_t);
	lv_stop(o);
	o->st = M_NONE;
	o->pid = 0;
	mux_close(o, RDHPF_ERR_CLOSED, "ssh master exited", 1);
	ul_drop_all(o);
	/* kill -9 leaves the socket behind; nobody listens on it now. */
	if (unlink_if_stale(o->ctl))
		H->log(o->ctx, RDHPF_LOG_DEBUG, "removed the dead master's control socket", "path",
		       o->ctl, NULL);
	snprintf(cs, sizeof cs, "%d", code);
	snprintf(ss, sizeof ss, "%d", sig);

	if (was == M_STARTING) {
		int st = master_classify(o, code, sig, d, sizeof d);
		o->cdone = NULL;
		H->log(o->ctx, RDHPF_LOG_WARN, "ssh master failed to connect", "dest", o->where,
		       "status", cs, "signal", ss, "err", d, NULL);
		if (done != NULL)
			complete_soon(o, done, carg, st, d);
		return;
	}
	if (was == M_UP) {
		char line[300];
		tail_pick(o->tail, NULL, line, sizeof line);
		snprintf(d, sizeof d, "ssh master for %s exited (status %d, signal %d): %s", o->where,
		         code, sig, o->tail_len ? line : "no message");
		H->log(o->ctx, RDHPF_LOG_WARN, "ssh master exited", "dest", o->where, "status", cs,
		       "signal", ss, "err", d, NULL);
		H->counter_add(o->ctx, "ssh_master_exits_total", 1);
		H->report_down(o->ctx, RDHPF_ERR_CLOSED, d);
		return;
	}
	if (was == M_DYING && o->connect_queued) {
		char err[256];
		int r;
		o->connect_queued = 0;
		r = master_start(o, err, sizeof err);
		if (r != RDHPF_OK) {
			o->cdone = NULL;
			if (done != NULL)
				complete_soon(o, done, carg, r, err);
		}
	}
}

static void
kill_cb(void *arg)
{
	struct oss *o = arg;

	stop_timer(&o->kill_t);
	if (o->child == NULL)
		return;
	if (o->kill_stage == 0) {
		H->log(o->ctx, RDHPF_LOG_WARN, "ssh master did not exit on request; SIGTERM", NULL);
		H->child_kill(o->child, SIGTERM);
		o->kill_stage = 1;
		o->kill_t = H->timer_start(o->ctx, KILL_GRACE_MS, 0, kill_cb, o);
	} else {
		H->log(o->ctx, RDHPF_LOG_WARN, "ssh master ignored SIGTERM; SIGKILL", NULL);
		H->child_kill(o->child, SIGKILL);
	}
}

/* Ask the master to exit: mux terminate, then SIGTERM after a grace, then
 * SIGKILL.  Requests outstanding are dropped without callbacks (callers
 * decide what their callers hear). */
static void
master_stop(struct oss *o)
{
	int sent = 0;

	stop_timer(&o->poll_t);
	stop_timer(&o->deadline_t);
	lv_stop(o);
	ul_drop_all(o);
	if (o->child == NULL) {
		o->st = M_NONE;
		return;
	}
	if (o->st == M_DYING)
		return;
	mux_drop_ops(o, RDHPF_ERR_CANCELLED, NULL, 0);
	if (o->st == M_UP) {
		/* The connection stays open until the master is gone: it drops a
		 * terminate followed at once by EOF. */
		if (o->mux.fd >= 0 || mux_open(o) == 0)
			sent = mux_request_simple(o, MOP_TERMINATE, MUX_C_TERMINATE, NULL, NULL) == 0;
	}
	if (!sent)
		H->child_kill(o->child, SIGTERM);
	o->kill_stage = sent ? 0 : 1;
	o->st = M_DYING;
	stop_timer(&o->kill_t);
	o->kill_t = H->timer_start(o->ctx, sent ? TERM_GRACE_MS : KILL_GRACE_MS, 0, kill_cb, o);
}

static void
poll_cb(void *arg)
{
	struct oss *o = arg;
	int r;

	if (o->st != M_STARTING || o->mux.fd >= 0)
		return;
	r = mux_open(o);
	if (r == -ENOENT || r == -ECONNREFUSED || r == -EAGAIN)
		return; /* not listening yet */
	if (r == 0) {
		stop_timer(&o->poll_t);
		if (mux_request_simple(o, MOP_READY, MUX_C_ALIVE_CHECK, NULL, NULL) == 0)
			return;
		r = -EIO;
	}
	{
		char d[256];
		rdhpf_done_fn done = o->cdone;
		void *carg = o->carg;
		snprintf(d, sizeof d, "cannot use the control socket %s: %s", o->ctl, strerror(-r));
		o->cdone = NULL;
		master_stop(o);
		if (done != NULL)
			complete_soon(o, done, carg, RDHPF_ERR_IO, d);
	}
}

static void
deadline_cb(void *arg)
{
	struct oss *o = arg;
	char d[640], line[300];
	rdhpf_done_fn done = o->cdone;
	void *carg = o->carg;

	stop_timer(&o->deadline_t);
	if (o->st != M_STARTING && o->st != M_DYING)
		return;
	master_err_drain(o);
	tail_pick(o->tail, NULL, line, sizeof line);
	snprintf(d, sizeof d, "ssh master for %.120s not ready within %llu ms (ssh: %.300s)", o->where,
	         (unsigned long long)o->connect_timeout_ms, o->tail_len ? line : "no message");
	o->cdone = NULL;
	o->connect_queued = 0;
	H->log(o->ctx, RDHPF_LOG_WARN, "ssh master connect timed out", "err", d, NULL);
	master_stop(o);
	if (done != NULL)
		complete_soon(o, done, carg, RDHPF_ERR_TIMEOUT, d);
}

/* Pick the control path: our name if free or stale, else the next one.  A
 * live socket is another process's master (another rdhpf, or a user's
 * ssh): never touched, never used. */
static int
ctl_choose(struct oss *o, char *err, size_t errlen)
{
	for (unsigned i = 0; i < CTL_CANDIDATES; i++) {
		char path[SUN_PATH_PORTABLE];
		struct stat st;

		if (i == 0)
			snprintf(path, sizeof path, "%s/m-%08x.sock", o->runtime_dir, o->hash);
		else
			snprintf(path, sizeof path, "%s/m-%08x-%u.sock", o->runtime_dir, o->hash, i);
		if (lstat(path, &st) != 0) {
			if (errno != ENOENT)
				continue;
			copy_str(o->ctl, sizeof o->ctl, path);
			return 0;
		}
		if (!S_ISSOCK(st.st_mode)) {
			H->log(o->ctx, RDHPF_LOG_WARN, "not a socket where a control socket goes; skipped",
			       "path", path, NULL);
			continue;
		}
		if (unlink_if_stale(path)) {
			H->log(o->ctx, RDHPF_LOG_INFO, "removed a stale control socket", "path", path, NULL);
			copy_str(o->ctl, sizeof o->ctl, path);
			return 0;
		}
		H->log(o->ctx, RDHPF_LOG_WARN,
		       "control socket in use by another live process; leaving it alone", "path", path,
		       NULL);
	}
	snprintf(err, errlen, "no free control socket name in %s (all %d in use)", o->runtime_dir,
	         CTL_CANDIDATES);
	return -1;
}

/* A quoted path (known_hosts, identity_file) as ssh gets it. */
#define QPATH_MAX 1060

/* ssh_config syntax for a path value: quoted, % escaped. */
static int
cfg_quote_path(const char *in, char *out, size_t len)
{
	size_t k = 0;

	if (k + 1 >= len)
		return -1;
	out[k++] = '"';
	for (const char *p = in; *p; p++) {
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 || (p[0] == '$' && p[1] == '{'))
			return -1;
		if (*p == '%') {
			if (k + 2 >= len)
				return -1;
			out[k++] = '%';
		}
		if (k + 2 >= len)
			return -1;
		out[k++] = *p;
	}
	if (k + 2 > len)
		return -1;
	out[k++] = '"';
	out[k] = '\0';
	return 0;
}

static int
master_start(struct oss *o, char *err, size_t errlen)
{
	const char *argv[64];
	size_t n = 0;
	char o_alive[48], o_count[48], o_ct[48], o_kh[QPATH_MAX + 40], kh[QPATH_MAX],
	    idf[QPATH_MAX], o_id[QPATH_MAX + 40], portb[8];
	struct rdhpf_spawn_opts so;
	char serr[256];
	int efd = -1;

	if (ctl_choose(o, err, errlen) != 0)
		return RDHPF_ERR_BUSY;
	if (o->setpriv[0]) {
		/* Linux: the master dies with us even if we are SIGKILLed. */
		argv[n++] = o->setpriv;
		argv[n++] = "--pdeathsig";
		argv[n++] = "TERM";
		argv[n++] = "--";
	}
	argv[n++] = o->ssh_bin;
	argv[n++] = "-M";
	argv[n++] = "-N";
	argv[n++] = "-S";
	argv[n++] = o->ctl;
	if (o->ssh_config) {
		argv[n++] = "-F";
		argv[n++] = o->ssh_config;
	}
	argv[n++] = "-o";
	argv[n++] = "ControlMaster=yes";
	argv[n++] = "-o";
	argv[n++] = "ControlPersist=no";
	argv[n++] = "-o";
	argv[n++] = "BatchMode=yes";
	argv[n++] = "-o";
	argv[n++] = "StrictHostKeyChecking=yes";
	argv[n++] = "-o";
	argv[n++] = "UpdateHostKeys=no";
	argv[n++] = "-o";
	argv[n++] = "ExitOnForwardFailure=no";
	argv[n++] = "-o";
	argv[n++] = "ClearAllForwardings=yes";
	argv[n++] = "-o";
	argv[n++] = "PermitLocalCommand=no";
	argv[n++] = "-o";
	argv[n++] = "StreamLocalBindMask=0177";
	/* Our error details come from ssh's messages: a LogLevel QUIET in
	 * ssh_config would hide a host key mismatch. */
	argv[n++] = "-o";
	argv[n++] = "LogLevel=INFO";
	snprintf(o_alive, sizeof o_alive, "ServerAliveInterval=%llu",
	         (unsigned long long)((o->keepalive_interval_ms + 999) / 1000));
	/* With the liveness probe, ServerAlive is the backstop, not a racer:
	 * two more misses, so that the probe's bound (interval × count + 1/2)
	 * is what finds a dead link, idle or loaded, every time. */
	snprintf(o_count, sizeof o_count, "ServerAliveCountMax=%u",
	         o->keepalive_count + (o->lv_never ? 0u : 2u));
	snprintf(o_ct, sizeof o_ct, "ConnectTimeout=%llu",
	         (unsigned long long)((o->connect_timeout_ms + 999) / 1000));
	argv[n++] = "-o";
	argv[n++] = o_alive;
	argv[n++] = "-o";
	argv[n++] = o_count;
	argv[n++] = "-o";
	argv[n++] = o_ct;
	if (o->known_hosts) {
		if (cfg_quote_path(o->known_hosts, kh, sizeof kh) != 0) {
			snprintf(err, errlen, "known_hosts path cannot be passed to ssh safely");
			return RDHPF_ERR_INVAL;
		}
		snprintf(o_kh, sizeof o_kh, "UserKnownHostsFile=%s", kh);
		argv[n++] = "-o";
		argv[n++] = o_kh;
	}
	if (o->identity) {
		/* As -o, not -i: -i drops a file whose name holds '%' (it stats
		 * the name before expanding it). */
		if (cfg_quote_path(o->identity, idf, sizeof idf) != 0) {
			snprintf(err, errlen, "identity_file path cannot be passed to ssh safely");
			return RDHPF_ERR_INVAL;
		}
		snprintf(o_id, sizeof o_id, "IdentityFile=%s", idf);
		argv[n++] = "-o";
		argv[n++] = o_id;
		argv[n++] = "-o";
		argv[n++] = "IdentitiesOnly=yes";
	}
	if (o->port) {
		snprintf(portb, sizeof portb, "%u", o->port);
		argv[n++] = "-p";
		argv[n++] = portb;
	}
	if (o->user) {
		argv[n++] = "-l";
		argv[n++] = o->user;
	}
	argv[n++] = "--";
	argv[n++] = o->hostname;
	argv[n] = NULL;

	memset(&so, 0, sizeof so);
	so.argv = argv;
	so.stderr_fd = &efd;
	o->tail_len = 0;
	o->tail[0] = '\0';
	o->line_len = 0;
	o->child = H->spawn(o->ctx, &so, master_exit_cb, o, serr, sizeof serr);
	if (o->child == NULL) {
		snprintf(err, errlen, "cannot start ssh: %.200s", serr);
		return RDHPF_ERR_IO;
	}
	o->pid = H->child_pid(o->child);
	o->err_fd = efd;
	o->err_io = H->io_start(o->ctx, efd, RDHPF_IO_READ, master_err_cb, o);
	if (o->err_io == NULL) {
		/* Undrained, the pipe would stall ssh once full; closed, its
		 * writes just fail (ssh ignores SIGPIPE).  Only details are lost. */
		close(efd);
		o->err_fd = -1;
	}
	o->st = M_STARTING;
	o->kill_stage = 0;
	o->connect_started_ms = H->now_ms(o->ctx);
	o->poll_t = H->timer_start(o->ctx, POLL_MS, POLL_MS, poll_cb, o);
	if (o->deadline_t == NULL)
		o->deadline_t = H->timer_start(o->ctx, o->connect_timeout_ms, 0, deadline_cb, o);
	H->counter_add(o->ctx, "ssh_masters_started_total", 1);
	{
		char ps[16];
		snprintf(ps, sizeof ps, "%d", o->pid);
		H->log(o->ctx, RDHPF_LOG_INFO, "ssh master starting", "dest", o->where, "control_path",
		       o->ctl, "pid", ps, NULL);
	}
	return RDHPF_OK;
}

/* ---- streams ------------------------------------------------------------ */

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
io_close(struct rdhpf_io **io, int *fd)
{
	if (*io)
		H->io_stop(*io);
	if (*fd >= 0)
		close(*fd);
	*io = NULL;
	*fd = -1;
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
	buf_free(&s->cr);
	buf_free(&s->w);
	free(s->rpath);
	free(s);
}

/* The stream ended by itself: free it, then tell its owner (last). */
static void
stream_finish(struct ostream *s, int status, int code, const char *detail)
{
	const struct rdhpf_stream_cbs *cbs = s->cbs;
	void *arg = s->arg;
	char d[TAIL_MAX + 300];
	int has = detail != NULL;

	if (has)
		copy_str(d, sizeof d, detail);
	stream_free(s);
	cbs->on_close(arg, status, code, has ? d : NULL);
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
		H->io_update(io, ev | (buf_avail(&s->w) ? RDHPF_IO_WRITE : 0));
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
		buf_free(&s->w);
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
		s->cbs->on_data(s->arg, buf, (size_t)n);
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
	while (buf_avail(&s->cr) >= 4) {
		const unsigned char *p = s->cr.d + s->cr.off;
		uint32_t len = get_u32(p), type;
		struct rd r;

		if (len < 4 || len > MUX_PACKET_MAX) {
			s->status = RDHPF_ERR_PROTO;
			snprintf(s->reason, sizeof s->reason, "malformed packet from the ssh master");
			s->ctl_eof = 1;
			io_close(&s->cio, &s->cfd);
			return;
		}
		if (buf_avail(&s->cr) < 4 + (size_t)len)
			return;
		r.p = p + 4;
		r.n = len;
		r.err = 0;
		type = rd_u32(&r);
		switch (type) {
		case MUX_MSG_HELLO:
			break; /* a master of another version refuses our hello */
		case MUX_S_SESSION_OPENED:
			(void)rd_u32(&r);
			s->opened = 1;
			break;
		case MUX_S_FAILURE:
		case MUX_S_PERMISSION_DENIED: {
			char why[200];
			(void)rd_u32(&r);
			rd_str(&r, why, sizeof why);
			s->status = RDHPF_ERR_REMOTE;
			snprintf(s->reason, sizeof s->reason, "ssh master refused the session: %s", why);
			s->exited = 1;
			s->exit_code = -1;
			break;
		}
		case MUX_S_EXIT_MESSAGE: {
			uint32_t v;
			(void)rd_u32(&r);
			v = rd_u32(&r);
			if (!r.err && !s->exited) {
				s->exited = 1;
				s->exit_code = (int)(v & 0xff);
			}
			break;
		}
		default:
			break; /* TTY_ALLOC_FAIL and the like */
		}
		buf_consume(&s->cr, 4 + (size_t)len);
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
			if (buf_put(&s->cr, buf, (size_t)n) != 0)
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

static int
t_exec(void *state, const char *const *argv, const struct rdhpf_stream_cbs *cbs, void *arg,
       void **stream)
{
	struct oss *o = state;
	struct ostream *s;
	char *cmd;
	struct buf out = {0};
	struct pkt p = {0};
	int sv[2] = {-1, -1}, po[2] = {-1, -1}, pe[2] = {-1, -1}, r = RDHPF_ERR_IO, fd = -1;
	int gone = 0;
	ssize_t n;

	if (o->st != M_UP)
		return RDHPF_ERR_NOTCONN;
	if (argv == NULL || argv[0] == NULL || cbs == NULL || cbs->on_data == NULL ||
	    cbs->on_close == NULL)
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
	s->cbs = cbs;
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
	pkt_u32(&p, MUX_C_NEW_SESSION);
	pkt_u32(&p, ++o->next_rid);
	pkt_str(&p, "");          /* reserved */
	pkt_u32(&p, 0);           /* want tty */
	pkt_u32(&p, 0);           /* want X11 forwarding */
	pkt_u32(&p, 0);           /* want agent forwarding */
	pkt_u32(&p, 0);           /* subsystem */
	pkt_u32(&p, 0xffffffffu); /* no escape character */
	pkt_str(&p, "");          /* terminal type */
	pkt_str(&p, cmd);
	if (mux_hello(&out) != 0 || pkt_finish(&p, &out) != 0) {
		r = RDHPF_ERR_NOMEM;
		goto fail;
	}
	/* A fresh socket's buffer takes the whole request at once; the master
	 * reads the packet, then the three descriptors. */
	n = send(fd, out.d + out.off, buf_avail(&out), MSG_NOSIGNAL);
	if (n < 0 || (size_t)n != buf_avail(&out) || send_fd(fd, sv[1]) != 0 ||
	    send_fd(fd, po[1]) != 0 || send_fd(fd, pe[1]) != 0) {
		r = RDHPF_ERR_BUSY;
		goto fail;
	}
	buf_free(&out);
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
	buf_free(&out);
	buf_free(&p.b);
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

/* ---- liveness ---------------------------------------------------------- */

static void
lv_close(struct oss *o)
{
	io_close(&o->lv_io, &o->lv_fd);
	buf_free(&o->lv_r);
}

static void
lv_stop(struct oss *o)
{
	stop_timer(&o->lv_tick_t);
	stop_timer(&o->lv_dead_t);
	lv_close(o);
}

/* Dead when nothing answered for interval × count, plus half an interval:
 * probes go out on interval ticks, so with keepalive_count 1 the deadline
 * would otherwise race the answer to the probe sent at that moment. */
static uint64_t
lv_threshold(const struct oss *o)
{
	return o->keepalive_interval_ms * o->keepalive_count + o->keepalive_interval_ms / 2;
}

static void
lv_dead_cb(void *arg)
{
	struct oss *o = arg;
	uint64_t now = H->now_ms(o->ctx);
	char d[640], n[16];

	stop_timer(&o->lv_dead_t);
	if (o->st != M_UP || o->lv_off)
		return;
	if (now < o->lv_last_ms + lv_threshold(o)) {
		o->lv_dead_t = H->timer_start(o->ctx, o->lv_last_ms + lv_threshold(o) - now, 0,
		                              lv_dead_cb, o);
		return;
	}
	snprintf(d, sizeof d,
	         "no answer from sshd at %s through the ssh master for %llu ms "
	         "(keepalive_interval %llu ms x keepalive_count %u; %u probes unanswered): "
	         "the link is dead",
	         o->where, (unsigned long long)(now - o->lv_last_ms),
	         (unsigned long long)o->keepalive_interval_ms, o->keepalive_count,
	         o->lv_unanswered);
	snprintf(n, sizeof n, "%u", o->lv_unanswered);
	H->log(o->ctx, RDHPF_LOG_WARN, "ssh link dead: liveness probes unanswered", "dest", o->where,
	       "unanswered", n, "err", d, NULL);
	H->counter_add(o->ctx, "ssh_liveness_dead_total", 1);
	master_stop(o);
	H->report_down(o->ctx, RDHPF_ERR_TIMEOUT, d);
}

/* An answer from the master on the probe's connection.  1: sshd answered;
 * 0: not yet; -1: this master cannot probe (it answered by itself). */
static int
lv_parse(struct oss *o, char *why, size_t whylen)
{
	while (buf_avail(&o->lv_r) >= 4) {
		const unsigned char *p = o->lv_r.d + o->lv_r.off;
		uint32_t len = get_u32(p), type, rid;
		struct rd r;

		if (len < 4 || len > MUX_PACKET_MAX) {
			snprintf(why, whylen, "malformed packet from the ssh master");
			return -1;
		}
		if (buf_avail(&o->lv_r) < 4 + (size_t)len)
			return 0;
		r.p = p + 4;
		r.n = len;
		r.err = 0;
		type = rd_u32(&r);
		rid = rd_u32(&r);
		if (type == MUX_S_SESSION_OPENED && rid == o->lv_rid)
			return 1; /* something listens on port 0?  sshd answered anyway */
		if ((type == MUX_S_FAILURE || type == MUX_S_PERMISSION_DENIED) && rid == o->lv_rid) {
			rd_str(&r, why, whylen);
			/* "Session open refused by peer": sshd's refusal, sent after
			 * the round trip.  Anything else the master said itself. */
			return strstr(why, "refused by peer") != NULL ? 1 : -1;
		}
		buf_consume(&o->lv_r, 4 + (size_t)len); /* the hello */
	}
	return 0;
}

static void
lv_io_cb(void *arg, int fd, unsigned rev)
{
	struct oss *o = arg;
	unsigned char buf[512];
	char why[200] = "";
	int got = 0;

	(void)rev;
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n > 0) {
			if (buf_put(&o->lv_r, buf, (size_t)n) != 0)
				break;
			got = lv_parse(o, why, sizeof why);
			if (got != 0)
				break;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		break; /* EOF or error before an answer: counted at the next tick */
	}
	lv_close(o);
	if (got == 1) {
		char ms[24];
		uint64_t now = H->now_ms(o->ctx);
		snprintf(ms, sizeof ms, "%llu", (unsigned long long)(now - o->lv_sent_ms));
		if (o->lv_unanswered > 0)
			H->log(o->ctx, RDHPF_LOG_INFO, "ssh liveness: sshd answers again", "dest",
			       o->where, "took_ms", ms, NULL);
		o->lv_last_ms = now;
		o->lv_unanswered = 0;
		H->observe(o->ctx, "ssh_liveness_seconds", (double)(now - o->lv_sent_ms) / 1000.0);
	} else if (got == -1) {
		o->lv_off = 1;
		stop_timer(&o->lv_tick_t);
		stop_timer(&o->lv_dead_t);
		H->log(o->ctx, RDHPF_LOG_WARN,
		       "ssh liveness probe not possible through this master: dead links are found "
		       "by ServerAlive only",
		       "dest", o->where, "err", why, NULL);
	}
}

/* Send one probe on a connection of its own (the master ties a stdio
 * forward to its control connection and closes both together). */
static void
lv_send(struct oss *o)
{
	struct buf out = {0};
	struct pkt p = {0};
	int sv[2] = {-1, -1}, fd;
	ssize_t n;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return;
	fd = unix_connect(o->ctl);
	if (fd < 0) {
		close(sv[0]);
		close(sv[1]);
		/* Nobody listens there any more: the link is unusable (as for
		 * exec); a full backlog is tried again at the next tick. */
		if (fd == -ENOENT || fd == -ECONNREFUSED)
			link_broken(o);
		return;
	}
	o->lv_rid = ++o->next_rid;
	pkt_u32(&p, MUX_C_NEW_STDIO_FWD);
	pkt_u32(&p, o->lv_rid);
	pkt_str(&p, ""); /* reserved */
	pkt_str(&p, LV_HOST);
	pkt_u32(&p, LV_PORT);
	if (mux_hello(&out) != 0 || pkt_finish(&p, &out) != 0)
		goto out;
	/* The stdio fds: the master owns its copies and closes them when the
	 * open is refused. */
	n = send(fd, out.d + out.off, buf_avail(&out), MSG_NOSIGNAL);
	if (n < 0 || (size_t)n != buf_avail(&out) || send_fd(fd, sv[1]) != 0 ||
	    send_fd(fd, sv[1]) != 0)
		goto out;
	o->lv_io = H->io_start(o->ctx, fd, RDHPF_IO_READ, lv_io_cb, o);
	if (o->lv_io == NULL)
		goto out;
	o->lv_fd = fd;
	fd = -1;
	o->lv_sent_ms = H->now_ms(o->ctx);
out:
	buf_free(&out);
	buf_free(&p.b);
	if (fd >= 0)
		close(fd);
	close(sv[0]);
	close(sv[1]);
}

static void
lv_tick(void *arg)
{
	struct oss *o = arg;

	if (o->st != M_UP || o->lv_off)
		return;
	if (o->lv_fd >= 0) {
		/* The last probe is still out: one more interval unanswered.  It
		 * stays out (an answer late under load still counts). */
		char n[16], c[16];
		o->lv_unanswered++;
		snprintf(n, sizeof n, "%u", o->lv_unanswered);
		snprintf(c, sizeof c, "%u", o->keepalive_count);
		H->log(o->ctx, RDHPF_LOG_INFO, "ssh liveness probe unanswered", "dest", o->where,
		       "unanswered", n, "keepalive_count", c, NULL);
		H->counter_add(o->ctx, "ssh_liveness_unanswered_total", 1);
	} else {
		lv_send(o);
	}
	if (o->lv_dead_t == NULL)
		lv_dead_cb(o); /* arms itself for the deadline */
}

static void
lv_start(struct oss *o)
{
	lv_stop(o);
	o->lv_off = 0;
	o->lv_unanswered = 0;
	o->lv_last_ms = H->now_ms(o->ctx);
	if (o->lv_never || o->keepalive_interval_ms == 0 || o->keepalive_count == 0)
		return;
	/* The first probe goes at the first tick: this runs inside the mux
	 * reply that brought the master up. */
	o->lv_tick_t = H->timer_start(o->ctx, o->keepalive_interval_ms, o->keepalive_interval_ms,
	                              lv_tick, o);
}

/* unix streams */

static void
unix_io_cb(void *arg, int fd, unsigned rev)
{
	struct ostream *s = arg;
	char buf[16384];
	ssize_t n;

	if (rev & RDHPF_IO_WRITE) {
		if (stream_flush(s) != 0) {
			stream_finish(s, RDHPF_ERR_CLOSED, -1, "remote socket closed the connection");
			return;
		}
	}
	if (!(rev & (RDHPF_IO_READ | RDHPF_IO_ERROR)))
		return;
	n = recv(fd, buf, sizeof buf, 0);
	if (n > 0) {
		s->got += (uint64_t)n;
		s->cbs->on_data(s->arg, buf, (size_t)n);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (s->got == 0) {
		char d[1200];
		snprintf(d, sizeof d,
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
	copy_str(s->reason, sizeof s->reason, why ? why : "failed");
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

static int
t_open_unix(void *state, const char *path, const struct rdhpf_stream_cbs *cbs, void *arg,
            void **stream)
{
	struct oss *o = state;
	struct ostream *s;
	struct ulisten *ul;
	size_t nul = 0;

	if (o->st != M_UP)
		return RDHPF_ERR_NOTCONN;
	if (path == NULL || path[0] != '/' || strlen(path) >= sizeof ul->rpath || cbs == NULL ||
	    cbs->on_data == NULL || cbs->on_close == NULL)
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
	s->cbs = cbs;
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
		copy_str(ul->rpath, sizeof ul->rpath, path);
		/* Next to the control socket, named after it: unique among live
		 * instances because the control path is. */
		if ((size_t)snprintf(ul->lpath, sizeof ul->lpath, "%.*s.u%u", (int)(strlen(o->ctl) - 5),
		                     o->ctl, o->ul_seq++) >= sizeof ul->lpath) {
			free(ul);
			free(s->rpath);
			free(s);
			return RDHPF_ERR_INVAL;
		}
		unlink_if_stale(ul->lpath);
		ul->state = UL_PENDING;
		ul->next = o->ul;
		o->ul = ul;
		if (mux_request_fwd(o, MOP_UNIX_OPEN, MUX_C_OPEN_FWD, ul->lpath, MUX_PORT_STREAMLOCAL,
		                    ul->rpath, MUX_PORT_STREAMLOCAL, NULL, ul, NULL, NULL) != 0) {
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

static int
t_stream_write(void *state, void *stream, const void *buf, size_t len)
{
	struct ostream *s = stream;

	(void)state;
	if (s->kind == S_EXEC && s->in_fd < 0)
		return RDHPF_ERR_CLOSED;
	if (buf_avail(&s->w) + len > STREAM_WBUF_MAX)
		return RDHPF_ERR_BUSY;
	if (buf_put(&s->w, buf, len) != 0)
		return RDHPF_ERR_NOMEM;
	if (stream_flush(s) != 0) {
		if (s->kind == S_EXEC)
			io_close(&s->in_io, &s->in_fd);
		return RDHPF_ERR_CLOSED;
	}
	return RDHPF_OK;
}

static void
t_stream_close(void *state, void *stream)
{
	(void)state;
	/* Closing our ends makes the master close the channel. */
	stream_free(stream);
}

/* ---- the link ------------------------------------------------------------ */

static int
t_connect(void *state, rdhpf_done_fn done, void *arg)
{
	struct oss *o = state;
	char err[256];
	int r;

	if (o->st == M_UP)
		return complete_later(o, done, arg, RDHPF_OK, NULL);
	if (o->st == M_STARTING || o->cdone != NULL)
		return RDHPF_ERR_BUSY;
	o->cdone = done;
	o->carg = arg;
	if (o->st == M_DYING) {
		/* One master per host: the next starts when the last is reaped
		 * (its control socket is gone then). */
		o->connect_queued = 1;
		o->connect_started_ms = H->now_ms(o->ctx);
		stop_timer(&o->deadline_t);
		o->deadline_t = H->timer_start(o->ctx, o->connect_timeout_ms, 0, deadline_cb, o);
		return RDHPF_OK;
	}
	r = master_start(o, err, sizeof err);
	if (r != RDHPF_OK) {
		o->cdone = NULL;
		H->log(o->ctx, RDHPF_LOG_ERROR, "cannot start the ssh master", "err", err, NULL);
		return r;
	}
	return RDHPF_OK;
}

static void
close_streams(struct oss *o)
{
	while (o->streams)
		stream_free(o->streams);
}

static void
t_disconnect(void *state)
{
	struct oss *o = state;

	pending_cancel_all(o);
	o->cdone = NULL;
	o->connect_queued = 0;
	close_streams(o);
	if (o->st == M_STARTING || o->st == M_UP) {
		H->log(o->ctx, RDHPF_LOG_INFO, "stopping the ssh master", "dest", o->where, NULL);
		master_stop(o);
	} else if (o->st == M_DYING) {
		stop_timer(&o->deadline_t);
	}
	mux_drop_ops(o, RDHPF_ERR_CANCELLED, NULL, 0);
}

static int
t_health(void *state, rdhpf_done_fn done, void *arg)
{
	struct oss *o = state;
	struct stat st;

	if (o->st != M_UP)
		return complete_later(o, done, arg, RDHPF_ERR_NOTCONN, "not connected");
	if (lstat(o->ctl, &st) != 0 || !S_ISSOCK(st.st_mode)) {
		/* Removed under us (a tmp cleaner?): exec and open_unix cannot
		 * reach the master any more, though it lives.  A new one will. */
		char d[160];
		snprintf(d, sizeof d, "control socket %.100s was removed", o->ctl);
		return complete_later(o, done, arg, RDHPF_ERR_CLOSED, d);
	}
	if (mux_request_simple(o, MOP_HEALTH, MUX_C_ALIVE_CHECK, done, arg) != 0)
		return complete_later(o, done, arg, RDHPF_ERR_CLOSED,
		                      "ssh master's control socket cannot be reached");
	return RDHPF_OK;
}

static int
fwd_key_make(const struct rdhpf_forward *f, struct fwd_key *k)
{
	if (f == NULL || f->bind_address == NULL || f->remote_host == NULL || f->local_port == 0 ||
	    f->remote_port == 0 || strlen(f->bind_address) >= sizeof k->bind ||
	    strlen(f->remote_host) >= sizeof k->rhost || f->bind_address[0] == '\0' ||
	    f->remote_host[0] == '\0')
		return -1;
	memset(k, 0, sizeof *k);
	copy_str(k->bind, sizeof k->bind, f->bind_address);
	copy_str(k->rhost, sizeof k->rhost, f->remote_host);
	k->lport = f->local_port;
	k->rport = f->remote_port;
	return 0;
}

/* The control socket is unreachable while the master lives: the link is
 * unusable.  Stop the master, tell the core. */
static void
link_broken(struct oss *o)
{
	char d[256];

	snprintf(d, sizeof d, "ssh master's control socket %s cannot be reached", o->ctl);
	master_stop(o);
	H->report_down(o->ctx, RDHPF_ERR_CLOSED, d);
}

static int
t_forward_add(void *state, const struct rdhpf_forward *f, rdhpf_done_fn done, void *arg)
{
	struct oss *o = state;
	struct fwd_key k;
	struct fwd_entry *e;

	if (fwd_key_make(f, &k) != 0)
		return RDHPF_ERR_INVAL;
	if (o->st != M_UP)
		return complete_later(o, done, arg, RDHPF_ERR_NOTCONN, "not connected");
	e = fw_find(o, k.bind, k.lport);
	if (e != NULL && !fwkey_same_target(&e->k, &k)) {
		/* Same local port, new target: the master would refuse to bind
		 * it twice, so close the old forward first (FIFO order). */
		if (mux_request_fwd(o, MOP_CLOSE_QUIET, MUX_C_CLOSE_FWD, e->k.bind, e->k.lport,
		                    e->k.rhost, e->k.rport, &e->k, NULL, NULL, NULL) != 0) {
			link_broken(o);
			return complete_later(o, done, arg, RDHPF_ERR_CLOSED, "control socket unreachable");
		}
		e->k = k;
	} else if (e == NULL) {
		e = calloc(1, sizeof *e);
		if (e == NULL)
			return RDHPF_ERR_NOMEM;
		e->k = k;
		e->next = o->fw;
		o->fw = e;
	}
	/* Always asked of the master: it answers an identical forward with
	 * OK, and it is the one that knows. */
	if (mux_request_fwd(o, MOP_OPEN, MUX_C_OPEN_FWD, k.bind, k.lport, k.rhost, k.rport, &k, NULL,
	                    done, arg) != 0) {
		link_broken(o);
		return complete_later(o, done, arg, RDHPF_ERR_CLOSED, "control socket unreachable");
	}
	return RDHPF_OK;
}

static int
t_forward_remove(void *state, const struct rdhpf_forward *f, rdhpf_done_fn done, void *arg)
{
	struct oss *o = state;
	struct fwd_key k;
	struct fwd_entry *e;

	if (fwd_key_make(f, &k) != 0)
		return RDHPF_ERR_INVAL;
	e = fw_find(o, k.bind, k.lport);
	if (e != NULL) {
		k = e->k; /* what the master has: the target matters to it */
		fw_drop(o, e);
	}
	if (o->st != M_UP)
		return complete_later(o, done, arg, RDHPF_OK, NULL); /* gone with the master */
	/* Asked even when not in the books: "not forwarded" is success. */
	if (mux_request_fwd(o, MOP_CLOSE, MUX_C_CLOSE_FWD, k.bind, k.lport, k.rhost, k.rport, &k, NULL,
	                    done, arg) != 0) {
		link_broken(o);
		return complete_later(o, done, arg, RDHPF_OK, NULL);
	}
	return RDHPF_OK;
}

/* ---- create / destroy ----------------------------------------------------- */

static uint32_t
fnv1a(uint32_t h, const char *s)
{
	if (s != NULL)
		for (; *s; s++)
			h = (h ^ (unsigned char)*s) * 16777619u;
	return (h ^ 0xffu) * 16777619u;
}

static int
word_ok(const char *s)
{
	if (s == NULL || s[0] == '\0' || s[0] == '-')
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

static char *
dup_or_null(const char *s, int *oom)
{
	char *d;

	if (s == NULL)
		return NULL;
	d = strdup(s);
	if (d == NULL)
		*oom = 1;
	return d;
}

static void t_destroy(void *state);

static int
t_create(struct rdhpf_ctx *ctx, const struct rdhpf_host_params *p, void **state, char *err,
         size_t errlen)
{
	struct oss *o;
	struct stat st;
	int oom = 0, pdeath = 1, no_liveness = 0;
	const char *ssh_bin = "ssh";
	char portb[8], qpath[QPATH_MAX];

	if (p == NULL || p->hostname == NULL || !word_ok(p->hostname)) {
		snprintf(err, errlen, "host name missing or unusable");
		return RDHPF_ERR_INVAL;
	}
	if (p->user != NULL && !word_ok(p->user)) {
		snprintf(err, errlen, "user '%s' cannot be passed to ssh", p->user);
		return RDHPF_ERR_INVAL;
	}
	if (p->runtime_dir == NULL || p->runtime_dir[0] != '/') {
		snprintf(err, errlen, "no private runtime directory for the control socket");
		return RDHPF_ERR_INVAL;
	}
	if (strlen(p->runtime_dir) + CTL_NAME_MAX > SUN_PATH_PORTABLE - 1 - MASTER_TMP_SUFFIX) {
		snprintf(err, errlen,
		         "runtime_dir %s is too long for ssh's control socket (at most %d bytes: socket "
		         "paths are limited to %d bytes and ssh binds a name %d bytes longer first)",
		         p->runtime_dir, SUN_PATH_PORTABLE - 1 - MASTER_TMP_SUFFIX - CTL_NAME_MAX,
		         SUN_PATH_PORTABLE, MASTER_TMP_SUFFIX);
		return RDHPF_ERR_INVAL;
	}
	if (lstat(p->runtime_dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 077) != 0) {
		snprintf(err, errlen, "runtime_dir %s is not a private (0700) directory of ours",
		         p->runtime_dir);
		return RDHPF_ERR_INVAL;
	}
	for (size_t i = 0; i < p->n_options; i++) {
		const char *k = p->options[i].key, *v = p->options[i].value;
		if (strcmp(k, "ssh_binary") == 0) {
			if (v == NULL || v[0] == '\0' || v[0] == '-') {
				snprintf(err, errlen, "ssh_binary: '%s' is not a program", v ? v : "");
				return RDHPF_ERR_INVAL;
			}
			ssh_bin = v;
		} else if (strcmp(k, "ssh_config") == 0) {
			if (v == NULL || v[0] == '\0' || v[0] == '-') {
				snprintf(err, errlen, "ssh_config: '%s' is not a file", v ? v : "");
				return RDHPF_ERR_INVAL;
			}
		} else if (strcmp(k, "pdeathsig") == 0) {
			if (v == NULL || (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0)) {
				snprintf(err, errlen, "pdeathsig: '%s' is not yes or no", v ? v : "");
				return RDHPF_ERR_INVAL;
			}
			pdeath = strcmp(v, "yes") == 0;
		} else if (strcmp(k, "liveness") == 0) {
			if (v == NULL || (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0)) {
				snprintf(err, errlen, "liveness: '%s' is not yes or no", v ? v : "");
				return RDHPF_ERR_INVAL;
			}
			no_liveness = strcmp(v, "no") == 0;
		} else {
			snprintf(err, errlen, "unknown option '%s'", k);
			return RDHPF_ERR_INVAL;
		}
	}
	/* Refused now, not at every connect: a path that cannot be quoted
	 * never will be. */
	if (p->known_hosts != NULL && cfg_quote_path(p->known_hosts, qpath, sizeof qpath) != 0) {
		snprintf(err, errlen, "known_hosts: path cannot be passed to ssh safely");
		return RDHPF_ERR_INVAL;
	}
	if (p->identity_file != NULL &&
	    cfg_quote_path(p->identity_file, qpath, sizeof qpath) != 0) {
		snprintf(err, errlen, "identity_file: path cannot be passed to ssh safely");
		return RDHPF_ERR_INVAL;
	}
	o = calloc(1, sizeof *o);
	if (o == NULL)
		return RDHPF_ERR_NOMEM;
	o->ctx = ctx;
	o->err_fd = -1;
	o->lv_fd = -1;
	o->lv_never = no_liveness;
	o->mux.fd = -1;
	o->host_name = dup_or_null(p->host_name, &oom);
	o->user = dup_or_null(p->user, &oom);
	o->hostname = dup_or_null(p->hostname, &oom);
	o->identity = dup_or_null(p->identity_file, &oom);
	o->known_hosts = dup_or_null(p->known_hosts, &oom);
	o->runtime_dir = dup_or_null(p->runtime_dir, &oom);
	o->ssh_bin = dup_or_null(ssh_bin, &oom);
	for (size_t i = 0; i < p->n_options; i++)
		if (strcmp(p->options[i].key, "ssh_config") == 0)
			o->ssh_config = dup_or_null(p->options[i].value, &oom);
	if (oom) {
		t_destroy(o);
		return RDHPF_ERR_NOMEM;
	}
	o->port = p->port;
	o->connect_timeout_ms = p->connect_timeout_ms ? p->connect_timeout_ms : 10000;
	o->keepalive_interval_ms = p->keepalive_interval_ms;
	o->keepalive_count = p->keepalive_count;
#ifdef __linux__
	if (pdeath) {
		if (access("/usr/bin/setpriv", X_OK) == 0)
			snprintf(o->setpriv, sizeof o->setpriv, "/usr/bin/setpriv");
		else if (access("/bin/setpriv", X_OK) == 0)
			snprintf(o->setpriv, sizeof o->setpriv, "/bin/setpriv");
	}
#else
	(void)pdeath;
#endif
	snprintf(portb, sizeof portb, "%u", p->port ? p->port : 22);
	o->hash = fnv1a(fnv1a(fnv1a(fnv1a(2166136261u, p->host_name), p->user), p->hostname), portb);
	/* Without a port the real one is ssh_config's business: name none. */
	if (p->port == 0)
		snprintf(o->where, sizeof o->where, "%s", p->hostname);
	else if (strchr(p->hostname, ':') != NULL)
		snprintf(o->where, sizeof o->where, "[%s]:%s", p->hostname, portb);
	else
		snprintf(o->where, sizeof o->where, "%s:%s", p->hostname, portb);
	*state = o;
	return RDHPF_OK;
}

static void
t_destroy(void *state)
{
	struct oss *o = state;

	if (o == NULL)
		return;
	pending_cancel_all(o);
	o->cdone = NULL;
	o->connect_queued = 0;
	close_streams(o);
	ul_drop_all(o);
	stop_timer(&o->poll_t);
	stop_timer(&o->deadline_t);
	stop_timer(&o->kill_t);
	lv_stop(o);
	if (o->child != NULL) {
		/* We cannot wait: a terminate is only safe to send and close at
		 * once on a connection whose hello the master has processed and
		 * that has nothing else queued; otherwise SIGTERM (ssh still
		 * removes its socket and stops its ProxyCommand).  The core reaps
		 * the child, and SIGKILLs it at shutdown if it lingers. */
		int sent = 0;
		if (o->st != M_DYING) {
			if (o->mux.fd >= 0 && o->mux.answers > 0 && o->mux.head == NULL &&
			    buf_avail(&o->mux.w) == 0) {
				struct pkt p = {0};
				pkt_u32(&p, MUX_C_TERMINATE);
				pkt_u32(&p, ++o->next_rid);
				if (pkt_finish(&p, &o->mux.w) == 0 && sock_flush(o->mux.fd, &o->mux.w) == 0 &&
				    buf_avail(&o->mux.w) == 0)
					sent = 1;
			}
		}
		if (!sent)
			H->child_kill(o->child, SIGTERM);
		H->child_detach(o->child);
		o->child = NULL;
	} else {
		unlink_if_stale(o->ctl);
	}
	mux_close(o, RDHPF_ERR_CANCELLED, NULL, 0);
	if (o->err_io)
		H->io_stop(o->err_io);
	if (o->err_fd >= 0)
		close(o->err_fd);
	while (o->fw) {
		struct fwd_entry *e = o->fw;
		o->fw = e->next;
		free(e);
	}
	free(o->host_name);
	free(o->user);
	free(o->hostname);
	free(o->identity);
	free(o->known_hosts);
	free(o->runtime_dir);
	free(o->ssh_bin);
	free(o->ssh_config);
	free(o);
}

static const struct rdhpf_transport_ops ops = {
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
	.open_unix = t_open_unix,
};

static const struct rdhpf_option_desc options[] = {
	{"ssh_binary", "the ssh client to run (default: ssh from PATH)"},
	{"ssh_config", "ssh_config file passed as -F (default: the user's and the system's)"},
	{"pdeathsig",
	 "yes (default): on Linux, run ssh under setpriv --pdeathsig so that the master dies with "
	 "rdhpf even if rdhpf is killed; no: plain ssh"},
	{"liveness",
	 "yes (default): every keepalive_interval, check through the master that sshd answers "
	 "(a channel open sshd refuses: one \"connect_to 127.0.0.1 port 0: failed.\" line in "
	 "its log each time); the link is dead after keepalive_count intervals unanswered; "
	 "no: ssh's ServerAlive only (slower under load)"},
	{NULL, NULL},
};

static const struct rdhpf_plugin_info info = {
	.abi_major = RDHPF_ABI_MAJOR,
	.abi_minor = RDHPF_ABI_MINOR,
	.struct_size = sizeof(struct rdhpf_plugin_info),
	.kind = RDHPF_KIND_TRANSPORT,
	.name = "openssh",
	.version = "1.0.0",
	.description = "system ssh as a ControlMaster; mux protocol over its control socket",
	.caps = RDHPF_TCAP_EXEC | RDHPF_TCAP_UNIX_STREAM,
	.options = options,
	.ops.transport = &ops,
};

RDHPF_PLUGIN_DECLARE
{
	H = host;
	return &info;
}
