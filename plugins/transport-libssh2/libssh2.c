/* transport-libssh2: one in-process SSH session per host on libssh2 1.10,
 * driven by the core's loop; rdhpf itself listens on every forward's local
 * port and relays each accepted connection through a direct-tcpip channel.
 *
 * How libssh2 is driven (the parts that are not obvious):
 *
 * - Sends never block.  libssh2's own send path keeps ONE partially sent
 *   packet per session, and 1.10.0 mishandles a second sender that comes
 *   along before it is flushed (send_existing: "Address is different"),
 *   which with many channels on one session corrupts or wedges the session
 *   (libssh2 #1397, #1431, #1672).  So the session's LIBSSH2_CALLBACK_SEND
 *   is ours (cb_send): it writes what the kernel takes and keeps the rest in
 *   a userspace buffer (ls->out) that the session's io watch flushes when
 *   the socket is writable.  libssh2 never sees EAGAIN on send, never holds
 *   a partial packet, and any channel may be driven in any order.
 *   Backpressure moves up one level: no channel write starts while ls->out
 *   holds OUT_HIGH bytes.  Inside service() sends are batched (one send()
 *   per round instead of one per 32K packet) and flushed at the end of
 *   every round, so window adjusts never wait behind a long batch.
 *
 * - Receives are ours too (cb_recv): recv() only after the io watch said
 *   readable, into a read-ahead buffer (libssh2 asks for 16K at a time), so
 *   the many libssh2 calls that "drain the transport first" cost no syscall
 *   when nothing came; every inbound byte stamps last_rx for the keepalive.
 *   Each service round may hand libssh2 at most RX_BUDGET bytes, so reading
 *   from the server interleaves with delivering to local clients.  libssh2
 *   also talks to ssh-agent through these callbacks (its own fd): that is
 *   passed straight through.
 *
 * - libssh2 reads packets for all channels whichever channel's call pulled
 *   them in, so after any call that received bytes (rx_seq moved) every open
 *   channel is checked for queued data, EOF and a grown send window (scan),
 *   and those that have something go on the ready list.
 *
 * - libssh2 1.10 has one channel-open state per session: opens wait in a
 *   FIFO, one in flight.  An open whose owner went away meanwhile is
 *   completed and then closed (open_orphan).
 *
 * - Windows: 2 MiB per forwarded connection by default (option "window"),
 *   as OpenSSH's client uses.  Larger windows make OpenSSH's sshd buffer
 *   that much from the target and copy its buffer per packet (measured: a
 *   32M window cut the download rate 5x).
 *
 * - Keepalive: libssh2_keepalive_send(want_reply=1) makes the server answer
 *   with SSH_MSG_REQUEST_FAILURE, which libssh2 1.10 queues on the session
 *   and never frees (libssh2 #623): the list every channel read walks grows
 *   by one node per interval for the life of the session.  So the probe is a
 *   want-reply "env" request on a private session channel that never runs a
 *   command (libssh2 consumes that reply); libssh2_keepalive_send is the
 *   fallback when the server refuses that channel.  Liveness is the time
 *   since the last inbound byte: dead after keepalive_interval ×
 *   keepalive_count (plus half an interval, see ka_threshold).
 *   TCP_USER_TIMEOUT backs it up.
 *
 * - No busy loops: every loop ends at EAGAIN or at a budget (then a zero
 *   timer continues), local fds are watched only for what can be done now,
 *   and the session socket only for reading (plus writing while ls->out
 *   holds data).  An idle session wakes for the keepalive tick and its
 *   reply only.
 *
 * Limits: libssh2 1.10 has no rsa-sha2-256/512 (RSA keys and RSA host keys
 * fail against OpenSSH >= 8.8), no AES-GCM, no chacha20-poly1305, no ETM
 * MACs, and encrypts one 16-byte block per EVP call, which bounds the rate
 * of one connection by CPU.  ssh-agent I/O inside libssh2 is synchronous (a
 * local Unix socket).  Host names that are not addresses are resolved by a
 * `getent ahosts` child, so nothing blocks on DNS. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <libssh2.h>

#include "rdhpf/plugin.h"

#define PLUGIN_VERSION "1.0.0"

#define SCRATCH_SIZE (256u * 1024u)       /* one read from a channel or socket */
#define OUT_HIGH (1024u * 1024u)          /* sess_out: stop starting channel writes */
#define OUT_RESUME (256u * 1024u)         /* sess_out: wake throttled writers */
#define RELAY_BUDGET (4u * 1024u * 1024u) /* bytes per relay per turn */
#define SERVICE_ROUNDS 64
/* Bytes libssh2 may take from the socket per service round.  Without a
 * bound, one call drains the socket while the server keeps refilling it,
 * and nothing reaches the local side (nor does a window adjust go out)
 * until a whole window has arrived: stop-and-go in window-sized bursts. */
#define RX_BUDGET (256u * 1024u)
/* Batching on the session socket: libssh2 hands over one packet (<= 32K)
 * per send and asks for <= 16K per recv; one syscall per 256K instead. */
#define TX_BATCH (256u * 1024u)
#define RX_AHEAD (256u * 1024u)
#define PACKET_SIZE 32768u /* max channel packet we accept */
#define WINDOW_DEFAULT (2u * 1024u * 1024u)
#define WINDOW_STREAM (512u * 1024u) /* exec / unix streams */
#define WINDOW_KA (64u * 1024u)
#define TAIL_MAX 1024
#define MAX_ADDRS 8
#define RESOLVE_MAX (64u * 1024u)
#define ACCEPT_BATCH 256
#define ACCEPT_PAUSE_MS 100
/* Open relays per forward at most (max_relays): every one holds an fd and a
 * channel, and local clients must not take every fd of the daemon.  Past
 * it a new connection is closed at once and counted. */
#define RELAYS_MAX_DEFAULT 4096
#define KA_ENV "RDHPF_KEEPALIVE"
#define DEFAULT_CIPHERS "aes128-ctr,aes192-ctr,aes256-ctr"
#define DEFAULT_MACS "hmac-sha2-256,hmac-sha2-512,hmac-sha1"

static const struct rdhpf_host_api *H;
static bool g_ssh2_ready;

/* ---- small byte buffer ------------------------------------------------- */

struct buf {
	char *p;
	size_t off, len, cap;
};

static int
buf_append(struct buf *b, const void *d, size_t n)
{
	if (n == 0)
		return 0;
	if (b->off + b->len + n > b->cap) {
		if (b->off > 0) {
			memmove(b->p, b->p + b->off, b->len);
			b->off = 0;
		}
		if (b->len + n > b->cap) {
			size_t cap = b->cap ? b->cap : 4096;
			while (cap < b->len + n)
				cap *= 2;
			char *p = realloc(b->p, cap);
			if (p == NULL)
				return -1;
			b->p = p;
			b->cap = cap;
		}
	}
	memcpy(b->p + b->off + b->len, d, n);
	b->len += n;
	return 0;
}

static void
buf_consume(struct buf *b, size_t n)
{
	b->off += n;
	b->len -= n;
	if (b->len == 0)
		b->off = 0;
}

static void
buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

/* Free a big buffer once drained, so idle connections cost no memory. */
static void
buf_trim(struct buf *b)
{
	if (b->len == 0 && b->cap > 65536)
		buf_free(b);
}

/* ---- objects ----------------------------------------------------------- */

enum phase {
	PH_DOWN = 0,
	PH_RESOLVING,
	PH_TCP,
	PH_HANDSHAKE,
	PH_AUTH,
	PH_READY,
};

enum auth_step {
	AS_LIST = 0,
	AS_AGENT,
	AS_FILE,
};

enum chan_kind {
	CK_RELAY = 1,
	CK_EXEC,
	CK_UNIX,
	CK_KA,
};

enum chan_state {
	CS_WAIT = 0, /* relay: waiting for the session to come (back) */
	CS_QUEUED,   /* in the open FIFO */
	CS_STARTING, /* exec: channel open, exec request in flight */
	CS_OPEN,
	CS_CLOSED,
};

struct ls2;

/* What relays, streams and the keepalive channel have in common: a place in
 * the open FIFO, in the session's channel list and in the ready list. */
struct chan {
	struct ls2 *ls;
	int kind;
	int state;
	LIBSSH2_CHANNEL *ch;
	struct chan *next, *prev; /* ls->chans: every chan with an open channel */
	struct chan *qnext;       /* ls->openq */
	struct chan *rnext;       /* ls->ready */
	bool queued, linked, ready;
	bool win_blocked;   /* a write found the peer's window empty */
	bool out_throttled; /* a write waits for sess_out to drain */
};

struct fwd;

struct relay {
	struct chan c; /* first */
	struct fwd *fw;
	int fd;
	struct rdhpf_io *io;
	unsigned io_ev;
	uint16_t peer_port;
	uint64_t t_accept;
	struct buf up, down; /* local→channel, channel→local not yet taken */
	bool l_rd;           /* local fd readable (until recv says EAGAIN) */
	bool l_eof, eof_sent, r_eof, shut_wr;
	struct relay *fnext, *fprev;
};

struct fwd {
	struct ls2 *ls;
	char bind[64];
	uint16_t lport;
	char rhost[256];
	uint16_t rport;
	int lfd;
	struct rdhpf_io *lio;
	struct rdhpf_timer *pause_t;
	struct relay *relays;
	struct rdhpf_forward_stats st;
	bool warned_open;
	struct fwd *next;
};

struct xstream {
	struct chan c; /* first */
	const struct rdhpf_stream_cbs *cbs;
	void *arg;
	char *req; /* exec: the command line; unix: the open message */
	size_t req_len;
	struct buf in; /* bytes for the remote's stdin / socket */
	char tail[TAIL_MAX + 1];
	size_t tail_len;
	bool out_eof, err_eof;
	bool in_cb, user_closed;
	bool torn; /* the session is gone; teardown frees it */
	struct xstream *snext, *sprev;
};

struct pending {
	struct ls2 *ls;
	rdhpf_done_fn done;
	void *arg;
	int status;
	char *detail;
	struct rdhpf_timer *t;
	struct pending *next;
};

struct health {
	struct ls2 *ls;
	rdhpf_done_fn done;
	void *arg;
	struct rdhpf_timer *t;
	struct health *next;
};

struct zombie {
	LIBSSH2_CHANNEL *ch;
	struct zombie *next;
};

struct ls2 {
	struct rdhpf_ctx *ctx;

	/* configuration */
	char *host_name, *hostname, *user, *identity, *known_hosts, *bind_addr;
	char *ciphers, *macs;
	uint16_t port;
	uint64_t connect_timeout_ms, ka_interval_ms;
	uint32_t ka_count;
	uint32_t window;
	uint32_t max_relays;
	bool use_agent;

	/* connecting */
	int phase;
	rdhpf_done_fn cdone;
	void *carg;
	struct rdhpf_timer *ctimer;
	struct rdhpf_child *resolver;
	int res_fd;
	struct rdhpf_io *res_io;
	struct buf resbuf;
	struct sockaddr_storage addr[MAX_ADDRS];
	socklen_t addrlen[MAX_ADDRS];
	int naddr, iaddr;
	char last_conn_err[256];
	LIBSSH2_KNOWNHOSTS *kh, *kh_revoked;
	int kh_lines;
	bool kh_readable;
	char kh_err[160];
	int auth_step;
	LIBSSH2_AGENT *agent;
	struct libssh2_agent_publickey *agent_prev;
	int agent_tried;
	char *idfiles[4];
	int nidfiles, iid;
	bool tried_rsa, tried_file;
	char auth_err[600];

	/* the session */
	int fd;
	struct rdhpf_io *io;
	unsigned io_ev;
	LIBSSH2_SESSION *s;
	struct buf out;
	bool rx_ready, io_dead;
	size_t rx_budget; /* recv bytes left this round (READY only) */
	struct buf in;    /* read ahead, not yet handed to libssh2 */
	bool corked;      /* inside service(): sends collect in out */
	bool sock_failed; /* recv saw EOF/error or send failed */
	char sock_why[200];
	bool zombie_dirty;  /* zombies that have not had a close attempt */
	bool any_throttled; /* some chan waits for sess_out to drain */
	uint64_t rx_seq, scan_seq, last_rx_ms;

	/* channels */
	struct chan *chans;
	struct chan *openq, *openq_tail;
	struct chan *opening; /* in flight; NULL when orphaned */
	bool open_busy, open_orphan;
	char open_type[40];
	unsigned open_type_len;
	char *open_msg;
	unsigned open_msg_len;
	uint32_t open_window;
	struct chan *ready, *ready_tail;
	struct zombie *zombies;
	struct chan ka;
	bool ka_wanted, ka_inflight, ka_fallback;
	struct rdhpf_timer *ka_timer, *dead_timer;

	struct fwd *fwds;
	struct rdhpf_timer *wait_timer;
	struct xstream *streams;
	struct pending *pend;
	struct health *health;
	struct rdhpf_timer *kick_t;
	char *scratch;

	unsigned gen;   /* bumped by every teardown: callers re-check after callbacks */
	int depth;      /* service() frames on the stack */
	bool destroyed; /* destroy() ran inside a callback; free at depth 0 */
};

/* ---- helpers ------------------------------------------------------------ */

static uint64_t
now_ms(struct ls2 *ls)
{
	return H->now_ms(ls->ctx);
}

static char *
xstrdup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static const char *
sess_errmsg(struct ls2 *ls)
{
	char *msg = NULL;

	if (ls->s == NULL)
		return "no session";
	libssh2_session_last_error(ls->s, &msg, NULL, 0);
	return msg && *msg ? msg : "unknown libssh2 error";
}

static void
set_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void
base64_enc(const unsigned char *in, size_t n, char *out, size_t outlen, bool pad)
{
	static const char tbl[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		size_t k = n - i < 3 ? n - i : 3;
		if (k > 1)
			v |= (uint32_t)in[i + 1] << 8;
		if (k > 2)
			v |= in[i + 2];
		char q[4] = {tbl[(v >> 18) & 63], tbl[(v >> 12) & 63], tbl[(v >> 6) & 63],
		             tbl[v & 63]};
		size_t emit = k + 1;
		for (size_t j = 0; j < 4; j++) {
			if (j >= emit && !pad)
				break;
			if (o + 1 >= outlen)
				goto end;
			out[o++] = j < emit ? q[j] : '=';
		}
	}
end:
	out[o < outlen ? o : outlen - 1] = '\0';
}

static int
b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decode base64, skipping line breaks; stops at '=' or anything else. */
static size_t
base64_dec(const char *in, unsigned char *out, size_t outlen)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;

	for (; *in && o < outlen; in++) {
		if (*in == '\n' || *in == '\r')
			continue;
		int v = b64val((unsigned char)*in);
		if (v < 0)
			break;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	return o;
}

/* "4M", "512K", "1048576" → bytes within [lo, hi]. */
static int
parse_size(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	if (*end == 'k' || *end == 'K') {
		v *= 1024ull;
		end++;
	} else if (*end == 'm' || *end == 'M') {
		v *= 1024ull * 1024ull;
		end++;
	} else if (*end == 'g' || *end == 'G') {
		v *= 1024ull * 1024ull * 1024ull;
		end++;
	}
	if (*end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* ---- deferred completions (never call back before the op returned) --- */

static void
pending_fire(void *arg)
{
	struct pending *p = arg;
	struct ls2 *ls = p->ls;

	for (struct pending **pp = &ls->pend; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	H->timer_stop(p->t);
	p->done(p->arg, p->status, p->detail);
	free(p->detail);
	free(p);
}

static int
complete_later(struct ls2 *ls, rdhpf_done_fn done, void *arg, int status, const char *detail)
{
	struct pending *p = calloc(1, sizeof *p);

	if (p == NULL)
		return RDHPF_ERR_NOMEM;
	p->ls = ls;
	p->done = done;
	p->arg = arg;
	p->status = status;
	p->detail = xstrdup_or_null(detail);
	p->t = H->timer_start(ls->ctx, 0, 0, pending_fire, p);
	if (p->t == NULL) {
		free(p->detail);
		free(p);
		return RDHPF_ERR_NOMEM;
	}
	p->next = ls->pend;
	ls->pend = p;
	return RDHPF_OK;
}

static void
cancel_pending(struct ls2 *ls)
{
	while (ls->pend) {
		struct pending *p = ls->pend;
		ls->pend = p->next;
		H->timer_stop(p->t);
		free(p->detail);
		free(p);
	}
}

static void service(struct ls2 *ls);
static void really_destroy(struct ls2 *ls);

static void
kick_fire(void *arg)
{
	struct ls2 *ls = arg;

	H->timer_stop(ls->kick_t);
	ls->kick_t = NULL;
	service(ls);
}

/* Run service() from the loop, not from the caller's frame. */
static void
kick(struct ls2 *ls)
{
	if (ls->kick_t == NULL && ls->phase == PH_READY)
		ls->kick_t = H->timer_start(ls->ctx, 0, 0, kick_fire, ls);
}

/* ---- the session socket: our send/recv callbacks for libssh2 ---------- */

static void sess_update_io(struct ls2 *ls);

static void
sock_fail(struct ls2 *ls, const char *what, int err)
{
	if (ls->sock_failed)
		return;
	ls->sock_failed = true;
	if (err == 0)
		snprintf(ls->sock_why, sizeof ls->sock_why, "connection closed by the server");
	else
		snprintf(ls->sock_why, sizeof ls->sock_why, "%s: %s", what, strerror(err));
}

static int sess_flush(struct ls2 *ls);

static ssize_t
cb_send(libssh2_socket_t fd, const void *buf, size_t len, int flags, void **abstract)
{
	struct ls2 *ls = *abstract;
	size_t done = 0;

	/* libssh2 also talks to ssh-agent through this callback (its own fd):
	 * pass that straight through. */
	if (fd != ls->fd) {
		ssize_t n = send(fd, buf, len, flags | MSG_NOSIGNAL);
		return n < 0 ? -errno : n;
	}
	if (ls->io_dead || ls->sock_failed)
		return -EPIPE;
	if (ls->out.len == 0 && !ls->corked) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				int e = errno;
				sock_fail(ls, "send", e);
				return -e;
			}
			n = 0;
		}
		done = (size_t)n;
	}
	if (done < len) {
		if (buf_append(&ls->out, (const char *)buf + done, len - done) != 0)
			return -ENOMEM;
		if (ls->out.len >= TX_BATCH)
			sess_flush(ls);
		if (ls->out.len > 0 && !(ls->io_ev & RDHPF_IO_WRITE) && !ls->corked)
			sess_update_io(ls);
	}
	return (ssize_t)len;
}

static ssize_t
cb_recv(libssh2_socket_t fd, void *buf, size_t len, int flags, void **abstract)
{
	struct ls2 *ls = *abstract;
	ssize_t n;

	if (fd != ls->fd) { /* ssh-agent, as in cb_send */
		n = recv(fd, buf, len, flags);
		return n < 0 ? -errno : n;
	}
	if (ls->io_dead)
		return 0;
	if (ls->phase == PH_READY) {
		if (ls->rx_budget == 0)
			return -EAGAIN; /* input stays pending: the next round goes on */
		if (len > ls->rx_budget)
			len = ls->rx_budget;
	}
	if (ls->in.len == 0) {
		if (!ls->rx_ready)
			return -EAGAIN;
		if (ls->in.cap < RX_AHEAD) {
			char *p = realloc(ls->in.p, RX_AHEAD);
			if (p == NULL)
				return -ENOMEM;
			ls->in.p = p;
			ls->in.cap = RX_AHEAD;
		}
		ls->in.off = 0;
		n = recv(fd, ls->in.p, ls->in.cap, MSG_DONTWAIT);
		if (n == 0) {
			sock_fail(ls, "recv", 0);
			return 0;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
				ls->rx_ready = false;
				return -EAGAIN;
			}
			int e = errno;
			sock_fail(ls, "recv", e);
			return -e;
		}
		ls->in.len = (size_t)n;
		ls->last_rx_ms = now_ms(ls);
	}
	if (len > ls->in.len)
		len = ls->in.len;
	memcpy(buf, ls->in.p + ls->in.off, len);
	buf_consume(&ls->in, len);
	if (ls->phase == PH_READY)
		ls->rx_budget -= len;
	ls->rx_seq++;
	return (ssize_t)len;
}

static bool
rx_pending(struct ls2 *ls)
{
	return ls->rx_ready || ls->in.len > 0;
}

static void ready_push(struct ls2 *ls, struct chan *c);

/* Flush sess_out; -1 on a dead socket.  Writers that stopped because it was
 * full are woken here, wherever the flush happened. */
static int
sess_flush(struct ls2 *ls)
{
	while (ls->out.len > 0) {
		ssize_t n =
		    send(ls->fd, ls->out.p + ls->out.off, ls->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			sock_fail(ls, "send", errno);
			snprintf(ls->last_conn_err, sizeof ls->last_conn_err, "%s", ls->sock_why);
			return -1;
		}
		buf_consume(&ls->out, (size_t)n);
	}
	if (ls->any_throttled && ls->out.len < OUT_RESUME) {
		ls->any_throttled = false;
		for (struct chan *c = ls->chans; c; c = c->next) {
			if (c->out_throttled) {
				c->out_throttled = false;
				ready_push(ls, c);
			}
		}
	}
	buf_trim(&ls->out);
	return 0;
}

static bool
pump_possible(struct ls2 *ls)
{
	return ls->phase != PH_READY || ls->chans != NULL || ls->open_busy;
}

static void
sess_update_io(struct ls2 *ls)
{
	unsigned ev = 0;

	if (ls->io == NULL)
		return;
	if (ls->phase == PH_TCP) {
		ev = RDHPF_IO_WRITE;
	} else {
		/* Without a channel nothing can pull the transport; the data waits
		 * in the kernel rather than waking us in a loop. */
		if (pump_possible(ls))
			ev |= RDHPF_IO_READ;
		if (ls->out.len > 0)
			ev |= RDHPF_IO_WRITE;
	}
	if (ev != ls->io_ev) {
		H->io_update(ls->io, ev);
		ls->io_ev = ev;
	}
}

/* ---- lists --------------------------------------------------------------- */

static void
chan_link(struct ls2 *ls, struct chan *c)
{
	if (c->linked)
		return;
	c->prev = NULL;
	c->next = ls->chans;
	if (ls->chans)
		ls->chans->prev = c;
	ls->chans = c;
	c->linked = true;
}

static void
chan_unlink(struct ls2 *ls, struct chan *c)
{
	if (!c->linked)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		ls->chans = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
	c->linked = false;
}

static void
ready_push(struct ls2 *ls, struct chan *c)
{
	if (c->ready)
		return;
	c->ready = true;
	c->rnext = NULL;
	if (ls->ready_tail)
		ls->ready_tail->rnext = c;
	else
		ls->ready = c;
	ls->ready_tail = c;
}

static struct chan *
ready_pop(struct ls2 *ls)
{
	struct chan *c = ls->ready;

	if (c == NULL)
		return NULL;
	ls->ready = c->rnext;
	if (ls->ready == NULL)
		ls->ready_tail = NULL;
	c->rnext = NULL;
	c->ready = false;
	return c;
}

static void
ready_remove(struct ls2 *ls, struct chan *c)
{
	struct chan *prev = NULL;

	if (!c->ready)
		return;
	for (struct chan *x = ls->ready; x; prev = x, x = x->rnext) {
		if (x != c)
			continue;
		if (prev)
			prev->rnext = x->rnext;
		else
			ls->ready = x->rnext;
		if (ls->ready_tail == x)
			ls->ready_tail = prev;
		break;
	}
	c->ready = false;
	c->rnext = NULL;
}

static void
openq_push(struct ls2 *ls, struct chan *c)
{
	if (c->queued)
		return;
	c->queued = true;
	c->state = CS_QUEUED;
	c->qnext = NULL;
	if (ls->openq_tail)
		ls->openq_tail->qnext = c;
	else
		ls->openq = c;
	ls->openq_tail = c;
}

/* The ka channel jumps the queue: liveness matters before anything else. */
static void
openq_push_front(struct ls2 *ls, struct chan *c)
{
	if (c->queued)
		return;
	c->queued = true;
	c->state = CS_QUEUED;
	c->qnext = ls->openq;
	ls->openq = c;
	if (ls->openq_tail == NULL)
		ls->openq_tail = c;
}

static void
openq_remove(struct ls2 *ls, struct chan *c)
{
	struct chan *prev = NULL;

	if (!c->queued)
		return;
	for (struct chan *x = ls->openq; x; prev = x, x = x->qnext) {
		if (x != c)
			continue;
		if (prev)
			prev->qnext = x->qnext;
		else
			ls->openq = x->qnext;
		if (ls->openq_tail == x)
			ls->openq_tail = prev;
		break;
	}
	c->queued = false;
	c->qnext = NULL;
	if (ls->opening == c) {
		/* libssh2 is mid-open for it: finish the open, then close it. */
		ls->opening = NULL;
		ls->open_orphan = true;
	}
}

static void
zombie_add(struct ls2 *ls, LIBSSH2_CHANNEL *ch)
{
	struct zombie *z;

	if (ch == NULL)
		return;
	z = calloc(1, sizeof *z);
	if (z == NULL) {
		/* Leave it to libssh2_session_free. */
		return;
	}
	z->ch = ch;
	z->next = ls->zombies;
	ls->zombies = z;
	ls->zombie_dirty = true;
	kick(ls);
}

/* Detach a chan from every session list and hand its channel to the
 * zombies (closed and freed in the background). */
static void
chan_detach(struct ls2 *ls, struct chan *c)
{
	openq_remove(ls, c);
	ready_remove(ls, c);
	chan_unlink(ls, c);
	if (c->ch) {
		zombie_add(ls, c->ch);
		c->ch = NULL;
	}
	c->state = CS_CLOSED;
}

/* ---- forwards and relays ------------------------------------------------- */

static void relay_free(struct relay *r);
static const char *sess_errmsg(struct ls2 *ls);
static void relay_service(struct relay *r);
static void wait_timer_arm(struct ls2 *ls);

static void
relay_update_io(struct relay *r)
{
	unsigned ev = 0;

	if (r->io == NULL)
		return;
	if (r->c.state == CS_OPEN) {
		if (!r->l_eof && !r->l_rd && r->up.len == 0 && !r->c.win_blocked &&
		    !r->c.out_throttled)
			ev |= RDHPF_IO_READ;
		if (r->down.len > 0)
			ev |= RDHPF_IO_WRITE;
	}
	if (ev != r->io_ev) {
		H->io_update(r->io, ev);
		r->io_ev = ev;
	}
}

static void
relay_on_io(void *arg, int fd, unsigned rev)
{
	struct relay *r = arg;
	struct ls2 *ls = r->c.ls;

	(void)fd;
	if (rev & (RDHPF_IO_READ | RDHPF_IO_ERROR))
		r->l_rd = true;
	if (ls->phase != PH_READY || r->c.state != CS_OPEN)
		return;
	ready_push(ls, &r->c);
	service(ls);
}

static void
relay_free(struct relay *r)
{
	struct ls2 *ls = r->c.ls;
	struct fwd *fw = r->fw;

	chan_detach(ls, &r->c);
	if (r->fprev)
		r->fprev->fnext = r->fnext;
	else if (fw->relays == r)
		fw->relays = r->fnext;
	if (r->fnext)
		r->fnext->fprev = r->fprev;
	if (r->io)
		H->io_stop(r->io);
	if (r->fd >= 0)
		close(r->fd);
	buf_free(&r->up);
	buf_free(&r->down);
	if (fw->st.active > 0)
		fw->st.active--;
	free(r);
}

/* Drop a connection hard: RST to the local client. */
static void
relay_reset(struct relay *r, const char *why)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	struct ls2 *ls = r->c.ls;
	char pb[8], eb[160];

	snprintf(pb, sizeof pb, "%u", r->fw->lport);
	snprintf(eb, sizeof eb, "%s%s%s", why, ls->s ? ": " : "", ls->s ? sess_errmsg(ls) : "");
	H->log(ls->ctx, RDHPF_LOG_DEBUG, "forwarded connection reset", "port", pb, "why", eb, NULL);

	if (r->fd >= 0)
		setsockopt(r->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	relay_free(r);
}

static void
relay_open_now(struct ls2 *ls, struct relay *r)
{
	openq_push(ls, &r->c);
}

static void
relay_new(struct fwd *fw, int cfd, uint16_t peer_port)
{
	struct ls2 *ls = fw->ls;
	struct relay *r = calloc(1, sizeof *r);

	if (r == NULL) {
		close(cfd);
		return;
	}
	r->c.ls = ls;
	r->c.kind = CK_RELAY;
	r->c.state = CS_WAIT;
	r->fw = fw;
	r->fd = cfd;
	r->peer_port = peer_port;
	r->t_accept = now_ms(ls);
	r->fnext = fw->relays;
	if (fw->relays)
		fw->relays->fprev = r;
	fw->relays = r;
	fw->st.connections++;
	fw->st.active++;
	if (ls->phase == PH_READY)
		relay_open_now(ls, r);
	else
		wait_timer_arm(ls);
}

static void
pause_fire(void *arg)
{
	struct fwd *fw = arg;

	H->timer_stop(fw->pause_t);
	fw->pause_t = NULL;
	if (fw->lio)
		H->io_update(fw->lio, RDHPF_IO_READ);
}

static void
listen_on_io(void *arg, int fd, unsigned rev)
{
	struct fwd *fw = arg;
	struct ls2 *ls = fw->ls;

	(void)rev;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage sa = {0};
		socklen_t sl = sizeof sa;
		uint16_t pp = 0;
		int cfd = accept4(fd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (cfd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			/* Out of fds or memory: the listener stays readable, so stop
			 * watching it for a moment instead of spinning. */
			char ebuf[64], pb[8];
			snprintf(ebuf, sizeof ebuf, "%s", strerror(errno));
			snprintf(pb, sizeof pb, "%u", fw->lport);
			H->log(ls->ctx, RDHPF_LOG_WARN, "accept failed; pausing the listener",
			       "port", pb, "err", ebuf, NULL);
			if (fw->pause_t == NULL) {
				H->io_update(fw->lio, 0);
				fw->pause_t =
				    H->timer_start(ls->ctx, ACCEPT_PAUSE_MS, 0, pause_fire, fw);
			}
			break;
		}
		if (fw->st.active >= ls->max_relays) {
			char pb[8], mb[16];
			close(cfd);
			H->counter_add(ls->ctx, "relays_dropped_total", 1);
			snprintf(pb, sizeof pb, "%u", fw->lport);
			snprintf(mb, sizeof mb, "%u", ls->max_relays);
			H->log(ls->ctx, RDHPF_LOG_WARN,
			       "too many connections on a forward; closing new ones", "port", pb,
			       "max_relays", mb, NULL);
			continue;
		}
		set_nodelay(cfd);
		if (sa.ss_family == AF_INET)
			pp = ntohs(((struct sockaddr_in *)&sa)->sin_port);
		else if (sa.ss_family == AF_INET6)
			pp = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
		relay_new(fw, cfd, pp);
	}
	service(ls);
}

static int
bind_listener(const char *addr, uint16_t port, int *out, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_NUMERICHOST | AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	char portstr[8];
	const char *a = addr;
	int fd, one = 1, r;

	if (a == NULL || *a == '\0' || strcmp(a, "localhost") == 0)
		a = "127.0.0.1";
	else if (strcmp(a, "*") == 0)
		a = "0.0.0.0";
	snprintf(portstr, sizeof portstr, "%u", port);
	r = getaddrinfo(a, portstr, &hints, &ai);
	if (r != 0 || ai == NULL) {
		snprintf(err, errlen, "bind address '%s' is not an IP address", addr ? addr : "");
		return RDHPF_ERR_INVAL;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		freeaddrinfo(ai);
		return RDHPF_ERR_IO;
	}
	/* SO_REUSEADDR only skips TIME_WAIT; on Linux no other socket can bind
	 * the port while we hold it (that would need SO_REUSEPORT on both). */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		int e = errno;
		close(fd);
		freeaddrinfo(ai);
		snprintf(err, errlen, "bind %s:%u: %s", a, port, strerror(e));
		return e == EADDRINUSE ? RDHPF_ERR_ADDRINUSE : RDHPF_ERR_IO;
	}
	freeaddrinfo(ai);
	if (listen(fd, SOMAXCONN) != 0) {
		int e = errno;
		close(fd);
		snprintf(err, errlen, "listen %s:%u: %s", a, port, strerror(e));
		return e == EADDRINUSE ? RDHPF_ERR_ADDRINUSE : RDHPF_ERR_IO;
	}
	*out = fd;
	return RDHPF_OK;
}

static struct fwd *
fwd_find(struct ls2 *ls, const struct rdhpf_forward *f)
{
	const char *b = f->bind_address ? f->bind_address : ls->bind_addr;

	for (struct fwd *fw = ls->fwds; fw; fw = fw->next)
		if (fw->lport == f->local_port && strcmp(fw->bind, b) == 0)
			return fw;
	return NULL;
}

static void
fwd_free(struct ls2 *ls, struct fwd *fw)
{
	for (struct fwd **pp = &ls->fwds; *pp; pp = &(*pp)->next) {
		if (*pp == fw) {
			*pp = fw->next;
			break;
		}
	}
	while (fw->relays)
		relay_free(fw->relays);
	if (fw->pause_t)
		H->timer_stop(fw->pause_t);
	if (fw->lio)
		H->io_stop(fw->lio);
	if (fw->lfd >= 0)
		close(fw->lfd);
	free(fw);
}

/* Relays waiting for the session: those past connect_timeout are dropped. */
static void
wait_fire(void *arg)
{
	struct ls2 *ls = arg;
	uint64_t now = now_ms(ls);

	H->timer_stop(ls->wait_timer);
	ls->wait_timer = NULL;
	if (ls->phase == PH_READY)
		return;
	for (struct fwd *fw = ls->fwds; fw; fw = fw->next) {
		struct relay *r = fw->relays;
		while (r) {
			struct relay *next = r->fnext;
			if (r->c.state == CS_WAIT && now >= r->t_accept + ls->connect_timeout_ms)
				relay_reset(r, "waited connect_timeout for the session");
			r = next;
		}
	}
	wait_timer_arm(ls);
}

static void
wait_timer_arm(struct ls2 *ls)
{
	uint64_t first = UINT64_MAX, now;

	if (ls->phase == PH_READY)
		return;
	for (struct fwd *fw = ls->fwds; fw; fw = fw->next)
		for (struct relay *r = fw->relays; r; r = r->fnext)
			if (r->c.state == CS_WAIT && r->t_accept < first)
				first = r->t_accept;
	if (ls->wait_timer) {
		H->timer_stop(ls->wait_timer);
		ls->wait_timer = NULL;
	}
	if (first == UINT64_MAX)
		return;
	now = now_ms(ls);
	first += ls->connect_timeout_ms;
	ls->wait_timer = H->timer_start(ls->ctx, first > now ? first - now : 0, 0, wait_fire, ls);
}

/* The session is up: everyone who waited gets a channel, oldest first. */
static void
wake_waiters(struct ls2 *ls)
{
	if (ls->wait_timer) {
		H->timer_stop(ls->wait_timer);
		ls->wait_timer = NULL;
	}
	for (struct fwd *fw = ls->fwds; fw; fw = fw->next) {
		/* relays are pushed at the head: walk to the tail for FIFO order */
		struct relay *r = fw->relays;
		while (r && r->fnext)
			r = r->fnext;
		for (; r; r = r->fprev)
			if (r->c.state == CS_WAIT)
				relay_open_now(ls, r);
	}
}

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
	chan_detach(ls, &x->c);
	stream_unlink(ls, x);
	buf_free(&x->in);
	free(x->req);
	free(x);
}

/* End a stream by itself: on_close once, then free.  The callback may call
 * anything; nothing of x is touched after it. */
static void
stream_finish(struct ls2 *ls, struct xstream *x, int status, int code, const char *detail)
{
	const struct rdhpf_stream_cbs *cbs = x->cbs;
	void *arg = x->arg;
	char d[TAIL_MAX + 128];

	snprintf(d, sizeof d, "%s", detail ? detail : "");
	stream_free(ls, x);
	cbs->on_close(arg, status, code, d[0] ? d : NULL);
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

/* ---- known_hosts ---------------------------------------------------------- */

struct ktype {
	int hk_type;      /* LIBSSH2_HOSTKEY_TYPE_* */
	int kh_mask;      /* LIBSSH2_KNOWNHOST_KEY_* */
	const char *name; /* algorithm / key type name */
};

/* Preference order when several are known (OpenSSH's). */
static const struct ktype ktypes[] = {
    {LIBSSH2_HOSTKEY_TYPE_ED25519, LIBSSH2_KNOWNHOST_KEY_ED25519, "ssh-ed25519"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_256, LIBSSH2_KNOWNHOST_KEY_ECDSA_256, "ecdsa-sha2-nistp256"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_384, LIBSSH2_KNOWNHOST_KEY_ECDSA_384, "ecdsa-sha2-nistp384"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_521, LIBSSH2_KNOWNHOST_KEY_ECDSA_521, "ecdsa-sha2-nistp521"},
    {LIBSSH2_HOSTKEY_TYPE_RSA, LIBSSH2_KNOWNHOST_KEY_SSHRSA, "ssh-rsa"},
    {LIBSSH2_HOSTKEY_TYPE_DSS, LIBSSH2_KNOWNHOST_KEY_SSHDSS, "ssh-dss"},
};

static const struct ktype *
ktype_by_hk(int t)
{
	for (size_t i = 0; i < sizeof ktypes / sizeof ktypes[0]; i++)
		if (ktypes[i].hk_type == t)
			return &ktypes[i];
	return NULL;
}

/* The name known_hosts files use for host:port ("[h]:p" unless port 22). */
static void
host_pattern(struct ls2 *ls, char *out, size_t len)
{
	if (ls->port == 22)
		snprintf(out, len, "%s", ls->hostname);
	else
		snprintf(out, len, "[%s]:%u", ls->hostname, ls->port);
}

/* Read known_hosts line by line: libssh2_knownhost_readfile stops at the
 * first line it cannot parse (markers, unsupported key types, …), which
 * would silently hide every key after it.  @revoked lines go to their own
 * collection; @cert-authority is not supported by libssh2 and is skipped. */
static void
known_hosts_load(struct ls2 *ls)
{
	FILE *fp;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int lineno = 0, bad = 0;

	ls->kh = libssh2_knownhost_init(ls->s);
	ls->kh_revoked = libssh2_knownhost_init(ls->s);
	ls->kh_lines = 0;
	ls->kh_readable = false;
	ls->kh_err[0] = '\0';
	fp = fopen(ls->known_hosts, "re");
	if (fp == NULL) {
		snprintf(ls->kh_err, sizeof ls->kh_err, "%s", strerror(errno));
		return;
	}
	ls->kh_readable = true;
	while ((n = getline(&line, &cap, fp)) >= 0) {
		char *p = line;
		LIBSSH2_KNOWNHOSTS *into = ls->kh;

		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || *p == '#')
			continue;
		if (*p == '@') {
			if (strncmp(p, "@revoked", 8) != 0 || (p[8] != ' ' && p[8] != '\t')) {
				bad++;
				continue;
			}
			p += 8;
			while (*p == ' ' || *p == '\t')
				p++;
			into = ls->kh_revoked;
		}
		if (libssh2_knownhost_readline(into, p, strlen(p),
		                               LIBSSH2_KNOWNHOST_FILE_OPENSSH) != 0) {
			bad++;
			continue;
		}
		if (into == ls->kh)
			ls->kh_lines++;
	}
	free(line);
	fclose(fp);
	{
		char nb[16], kb[16];
		snprintf(nb, sizeof nb, "%d", bad);
		snprintf(kb, sizeof kb, "%d", ls->kh_lines);
		H->log(ls->ctx, RDHPF_LOG_DEBUG, "known_hosts read", "file", ls->known_hosts,
		       "entries", kb, "skipped", nb, NULL);
	}
	(void)lineno;
}

/* Host key algorithms worth offering: the types known_hosts has for this
 * host (OpenSSH does the same), so a server with several host keys shows
 * the one we can verify.  A deliberately wrong key makes check() answer
 * MISMATCH exactly when an entry of that type exists.  Empty when none. */
static void
known_types(struct ls2 *ls, char *out, size_t len)
{
	char pat[300];
	size_t o = 0;

	out[0] = '\0';
	if (ls->kh == NULL)
		return;
	host_pattern(ls, pat, sizeof pat);
	for (size_t i = 0; i < sizeof ktypes / sizeof ktypes[0]; i++) {
		int r = libssh2_knownhost_check(
		    ls->kh, pat, "\x01", 1,
		    LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | ktypes[i].kh_mask,
		    NULL);
		if (r != LIBSSH2_KNOWNHOST_CHECK_MISMATCH && r != LIBSSH2_KNOWNHOST_CHECK_MATCH)
			continue;
		int w = snprintf(out + o, len - o, "%s%s", o ? "," : "", ktypes[i].name);
		if (w < 0 || (size_t)w >= len - o)
			break;
		o += (size_t)w;
	}
}

/* 0 when the host key is known; else RDHPF_ERR_HOSTKEY with detail. */
static int
hostkey_verify(struct ls2 *ls, char *detail, size_t dlen)
{
	size_t klen = 0;
	int ktype = 0, r;
	const char *key = libssh2_session_hostkey(ls->s, &klen, &ktype);
	const struct ktype *kt = ktype_by_hk(ktype);
	const char *hash = libssh2_hostkey_hash(ls->s, LIBSSH2_HOSTKEY_HASH_SHA256);
	char fp[64] = "SHA256:?", pat[300];

	host_pattern(ls, pat, sizeof pat);
	if (hash != NULL) {
		memcpy(fp, "SHA256:", 7);
		base64_enc((const unsigned char *)hash, 32, fp + 7, sizeof fp - 7, false);
	}
	if (key == NULL || kt == NULL) {
		snprintf(detail, dlen,
		         "host %s presented a host key of a type libssh2 cannot check", pat);
		return RDHPF_ERR_HOSTKEY;
	}
	if (!ls->kh_readable) {
		snprintf(detail, dlen,
		         "cannot read known_hosts %s (%s): host %s (%s key %s) cannot be verified; "
		         "refusing to connect",
		         ls->known_hosts, ls->kh_err, pat, kt->name, fp);
		return RDHPF_ERR_HOSTKEY;
	}
	r = libssh2_knownhost_check(
	    ls->kh_revoked, pat, key, klen,
	    LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | kt->kh_mask, NULL);
	if (r == LIBSSH2_KNOWNHOST_CHECK_MATCH) {
		snprintf(detail, dlen,
		         "host key of %s (%s %s) is marked @revoked in %s; refusing to connect",
		         pat, kt->name, fp, ls->known_hosts);
		return RDHPF_ERR_HOSTKEY;
	}
	r = libssh2_knownhost_check(
	    ls->kh, pat, key, klen,
	    LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | kt->kh_mask, NULL);
	switch (r) {
	case LIBSSH2_KNOWNHOST_CHECK_MATCH:
		return RDHPF_OK;
	case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
		snprintf(detail, dlen,
		         "HOST KEY MISMATCH for %s: the server presented %s key %s, which differs "
		         "from the "
		         "%s key in %s; possible man-in-the-middle attack; refusing to connect",
		         pat, kt->name, fp, kt->name, ls->known_hosts);
		return RDHPF_ERR_HOSTKEY;
	case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
		snprintf(
		    detail, dlen,
		    "host %s is not in %s (the server presented %s key %s); refusing to connect: "
		    "verify the fingerprint, then add the key (ssh-keyscan -p %u %s)",
		    pat, ls->known_hosts, kt->name, fp, ls->port, ls->hostname);
		return RDHPF_ERR_HOSTKEY;
	default:
		snprintf(detail, dlen, "cannot check the host key of %s (%s %s) against %s", pat,
		         kt->name, fp, ls->known_hosts);
		return RDHPF_ERR_HOSTKEY;
	}
}

/* ---- key type sniffing (only for the RSA error message) ----------------- */

static bool
blob_is_rsa(const unsigned char *blob, size_t len)
{
	uint32_t n;

	if (len < 4)
		return false;
	n = (uint32_t)blob[0] << 24 | (uint32_t)blob[1] << 16 | (uint32_t)blob[2] << 8 | blob[3];
	return n == 7 && len >= 11 && memcmp(blob + 4, "ssh-rsa", 7) == 0;
}

/* Is this identity file an RSA key?  Looks at FILE.pub, else the private
 * key's armour (PEM "RSA", or the public half of an openssh-key-v1). */
static bool
idfile_is_rsa(const char *path)
{
	char pub[PATH_MAX + 8], head[4096];
	FILE *fp;
	size_t n;
	bool rsa = false;

	snprintf(pub, sizeof pub, "%s.pub", path);
	fp = fopen(pub, "re");
	if (fp != NULL) {
		n = fread(head, 1, 15, fp);
		fclose(fp);
		head[n] = '\0';
		return strncmp(head, "ssh-rsa ", 8) == 0;
	}
	fp = fopen(path, "re");
	if (fp == NULL)
		return false;
	n = fread(head, 1, sizeof head - 1, fp);
	fclose(fp);
	head[n] = '\0';
	if (strstr(head, "BEGIN RSA PRIVATE KEY") != NULL)
		rsa = true;
	else if (strstr(head, "BEGIN OPENSSH PRIVATE KEY") != NULL) {
		/* "openssh-key-v1\0" string cipher, string kdf, string kdfopts,
		 * uint32 nkeys, string pubkey (whose first string is the type) */
		unsigned char bin[1024];
		const char *b = strchr(head, '\n');
		size_t m = b ? base64_dec(b + 1, bin, sizeof bin) : 0, o = 15;
		for (int i = 0; i < 3 && o + 4 <= m; i++) {
			uint32_t l = (uint32_t)bin[o] << 24 | (uint32_t)bin[o + 1] << 16 |
			             (uint32_t)bin[o + 2] << 8 | bin[o + 3];
			o += 4 + (size_t)l;
		}
		o += 4; /* nkeys */
		if (m > 15 && memcmp(bin, "openssh-key-v1", 14) == 0 && o + 4 < m)
			rsa = blob_is_rsa(bin + o + 4, m - o - 4);
	}
	return rsa;
}

/* ---- connecting ----------------------------------------------------------- */

static void session_teardown(struct ls2 *ls, int why);
static void conn_step(struct ls2 *ls);
enum { TD_DISCONNECT = 0, TD_LOST, TD_FAILED };

static void
connect_finish(struct ls2 *ls, int status, const char *detail)
{
	rdhpf_done_fn done = ls->cdone;
	void *arg = ls->carg;

	ls->cdone = NULL;
	if (ls->ctimer) {
		H->timer_stop(ls->ctimer);
		ls->ctimer = NULL;
	}
	if (status != RDHPF_OK) {
		H->log(ls->ctx, RDHPF_LOG_DEBUG, "connect failed", "err", detail, NULL);
		session_teardown(ls, TD_FAILED);
	}
	if (done)
		done(arg, status, detail);
}

static const char *
phase_name(int ph)
{
	switch (ph) {
	case PH_RESOLVING:
		return "resolving the host name";
	case PH_TCP:
		return "TCP connect";
	case PH_HANDSHAKE:
		return "SSH handshake";
	case PH_AUTH:
		return "authentication";
	case PH_READY:
		return "ready";
	default:
		return "down";
	}
}

static void
ctimer_fire(void *arg)
{
	struct ls2 *ls = arg;
	char d[512];

	snprintf(d, sizeof d, "connecting to %s:%u timed out after %llu ms (during %s)%s%s",
	         ls->hostname, ls->port, (unsigned long long)ls->connect_timeout_ms,
	         phase_name(ls->phase), ls->last_conn_err[0] ? "; last error: " : "",
	         ls->last_conn_err);
	connect_finish(ls, RDHPF_ERR_TIMEOUT, d);
}

static void
sess_on_io(void *arg, int fd, unsigned rev)
{
	struct ls2 *ls = arg;

	(void)fd;
	if (rev & (RDHPF_IO_READ | RDHPF_IO_ERROR))
		ls->rx_ready = true;
	if ((rev & RDHPF_IO_WRITE) && ls->phase != PH_TCP && sess_flush(ls) != 0)
		ls->rx_ready = true; /* let the read path report the error */
	ls->depth++;
	if (ls->phase < PH_READY)
		conn_step(ls);
	else
		service(ls);
	ls->depth--;
	if (ls->destroyed) {
		if (ls->depth == 0)
			really_destroy(ls);
		return;
	}
	sess_update_io(ls);
}

static int
tcp_start(struct ls2 *ls)
{
	while (ls->iaddr < ls->naddr) {
		struct sockaddr_storage *sa = &ls->addr[ls->iaddr];
		int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			snprintf(ls->last_conn_err, sizeof ls->last_conn_err, "socket: %s",
			         strerror(errno));
			ls->iaddr++;
			continue;
		}
		set_nodelay(fd);
		if (connect(fd, (struct sockaddr *)sa, ls->addrlen[ls->iaddr]) != 0 &&
		    errno != EINPROGRESS) {
			snprintf(ls->last_conn_err, sizeof ls->last_conn_err, "connect: %s",
			         strerror(errno));
			close(fd);
			ls->iaddr++;
			continue;
		}
		ls->fd = fd;
		ls->phase = PH_TCP;
		ls->io_ev = RDHPF_IO_WRITE;
		ls->io = H->io_start(ls->ctx, fd, RDHPF_IO_WRITE, sess_on_io, ls);
		if (ls->io == NULL) {
			close(fd);
			ls->fd = -1;
			snprintf(ls->last_conn_err, sizeof ls->last_conn_err,
			         "cannot watch the socket");
			return -1;
		}
		return 0;
	}
	return -1;
}

static void
resolve_done(struct ls2 *ls)
{
	char *save = NULL, *line;

	buf_append(&ls->resbuf, "", 1);
	ls->naddr = 0;
	for (line = strtok_r(ls->resbuf.p + ls->resbuf.off, "\n", &save);
	     line && ls->naddr < MAX_ADDRS; line = strtok_r(NULL, "\n", &save)) {
		char a[INET6_ADDRSTRLEN + 1], kind[16];
		struct sockaddr_storage *sa = &ls->addr[ls->naddr];
		if (sscanf(line, "%46s %15s", a, kind) != 2 || strcmp(kind, "STREAM") != 0)
			continue;
		memset(sa, 0, sizeof *sa);
		if (inet_pton(AF_INET, a, &((struct sockaddr_in *)sa)->sin_addr) == 1) {
			sa->ss_family = AF_INET;
			((struct sockaddr_in *)sa)->sin_port = htons(ls->port);
			ls->addrlen[ls->naddr++] = sizeof(struct sockaddr_in);
		} else if (inet_pton(AF_INET6, a, &((struct sockaddr_in6 *)sa)->sin6_addr) == 1) {
			sa->ss_family = AF_INET6;
			((struct sockaddr_in6 *)sa)->sin6_port = htons(ls->port);
			ls->addrlen[ls->naddr++] = sizeof(struct sockaddr_in6);
		}
	}
	buf_free(&ls->resbuf);
	if (ls->naddr == 0) {
		char d[400];
		snprintf(d, sizeof d, "cannot resolve host name %s", ls->hostname);
		connect_finish(ls, RDHPF_ERR_CONNECT, d);
		return;
	}
	ls->iaddr = 0;
	if (tcp_start(ls) != 0) {
		char d[512];
		snprintf(d, sizeof d, "cannot connect to %s:%u: %s", ls->hostname, ls->port,
		         ls->last_conn_err);
		connect_finish(ls, RDHPF_ERR_CONNECT, d);
	}
}

static void
resolver_stop(struct ls2 *ls)
{
	if (ls->res_io) {
		H->io_stop(ls->res_io);
		ls->res_io = NULL;
	}
	if (ls->res_fd >= 0) {
		close(ls->res_fd);
		ls->res_fd = -1;
	}
	if (ls->resolver) {
		H->child_kill(ls->resolver, SIGKILL);
		H->child_detach(ls->resolver);
		ls->resolver = NULL;
	}
}

static void
resolver_exit(void *arg, int code, int sig)
{
	struct ls2 *ls = arg;

	(void)code;
	(void)sig;
	ls->resolver = NULL;
}

static void
resolver_on_io(void *arg, int fd, unsigned rev)
{
	struct ls2 *ls = arg;
	char b[4096];
	ssize_t n = read(fd, b, sizeof b);

	(void)rev;
	if (n > 0) {
		if (ls->resbuf.len + (size_t)n <= RESOLVE_MAX)
			buf_append(&ls->resbuf, b, (size_t)n);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	H->io_stop(ls->res_io);
	ls->res_io = NULL;
	close(ls->res_fd);
	ls->res_fd = -1;
	if (ls->resolver) {
		H->child_detach(ls->resolver); /* the core reaps it */
		ls->resolver = NULL;
	}
	resolve_done(ls);
}

static int
resolve_start(struct ls2 *ls, char *err, size_t errlen)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ls->addr[0];
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ls->addr[0];
	const char *argv[] = {"getent", "ahosts", ls->hostname, NULL};
	struct rdhpf_spawn_opts o;
	char cerr[256];

	memset(&ls->addr[0], 0, sizeof ls->addr[0]);
	ls->naddr = ls->iaddr = 0;
	if (inet_pton(AF_INET, ls->hostname, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(ls->port);
		ls->addrlen[0] = sizeof *s4;
		ls->naddr = 1;
	} else if (inet_pton(AF_INET6, ls->hostname, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(ls->port);
		ls->addrlen[0] = sizeof *s6;
		ls->naddr = 1;
	}
	if (ls->naddr == 1) {
		if (tcp_start(ls) != 0) {
			snprintf(err, errlen, "cannot connect to %s:%u: %s", ls->hostname, ls->port,
			         ls->last_conn_err);
			return RDHPF_ERR_CONNECT;
		}
		return RDHPF_OK;
	}
	/* A name: getaddrinfo() would block the loop, so a child resolves it. */
	memset(&o, 0, sizeof o);
	o.argv = argv;
	o.stdout_fd = &ls->res_fd;
	ls->resolver = H->spawn(ls->ctx, &o, resolver_exit, ls, cerr, sizeof cerr);
	if (ls->resolver == NULL) {
		snprintf(err, errlen, "cannot resolve %s: %s", ls->hostname, cerr);
		return RDHPF_ERR_CONNECT;
	}
	ls->res_io = H->io_start(ls->ctx, ls->res_fd, RDHPF_IO_READ, resolver_on_io, ls);
	ls->phase = PH_RESOLVING;
	return RDHPF_OK;
}

/* Build the session and decide which host key algorithms to offer. */
static int
session_make(struct ls2 *ls, char *err, size_t errlen)
{
	char kt[256];

	ls->s = libssh2_session_init_ex(NULL, NULL, NULL, ls);
	if (ls->s == NULL) {
		snprintf(err, errlen, "libssh2_session_init failed");
		return RDHPF_ERR_NOMEM;
	}
	libssh2_session_set_blocking(ls->s, 0);
	/* libssh2 takes callbacks as void *; ISO C has no such cast, so copy
	 * the pointer's bytes (the same size on every target libssh2 runs on). */
	{
		LIBSSH2_SEND_FUNC((*sf)) = cb_send;
		LIBSSH2_RECV_FUNC((*rf)) = cb_recv;
		void *ps, *pr;
		_Static_assert(sizeof ps == sizeof sf, "function pointers fit in void *");
		memcpy(&ps, &sf, sizeof ps);
		memcpy(&pr, &rf, sizeof pr);
		libssh2_session_callback_set(ls->s, LIBSSH2_CALLBACK_SEND, ps);
		libssh2_session_callback_set(ls->s, LIBSSH2_CALLBACK_RECV, pr);
	}
	libssh2_session_flag(ls->s, LIBSSH2_FLAG_COMPRESS, 0);
	if (libssh2_session_method_pref(ls->s, LIBSSH2_METHOD_CRYPT_CS, ls->ciphers) != 0 ||
	    libssh2_session_method_pref(ls->s, LIBSSH2_METHOD_CRYPT_SC, ls->ciphers) != 0 ||
	    libssh2_session_method_pref(ls->s, LIBSSH2_METHOD_MAC_CS, ls->macs) != 0 ||
	    libssh2_session_method_pref(ls->s, LIBSSH2_METHOD_MAC_SC, ls->macs) != 0) {
		snprintf(err, errlen, "cipher/MAC preferences rejected: %s", sess_errmsg(ls));
		return RDHPF_ERR_INVAL;
	}
	known_hosts_load(ls);
	known_types(ls, kt, sizeof kt);
	if (kt[0] != '\0' && libssh2_session_method_pref(ls->s, LIBSSH2_METHOD_HOSTKEY, kt) != 0) {
		snprintf(err, errlen,
		         "known_hosts %s has only %s keys for %s, which libssh2 %s cannot use",
		         ls->known_hosts, kt, ls->hostname, libssh2_version(0));
		return RDHPF_ERR_HOSTKEY;
	}
	return RDHPF_OK;
}

static const char RSA_HINT[] =
    "; note: libssh2 1.10 can only sign with RSA keys using ssh-rsa (SHA-1), which OpenSSH 8.8 "
    "and later refuse, and it has no rsa-sha2-256/512: use an ed25519 or ECDSA key";

/* RDHPF_OK when authenticated, LIBSSH2_ERROR_EAGAIN to wait, else an
 * RDHPF error with ls->auth_err. */
static int
auth_run(struct ls2 *ls)
{
	int rc;

	if (ls->auth_step == AS_LIST) {
		char *list = libssh2_userauth_list(ls->s, ls->user, (unsigned)strlen(ls->user));
		if (list == NULL) {
			if (libssh2_userauth_authenticated(ls->s))
				return RDHPF_OK;
			if (libssh2_session_last_errno(ls->s) == LIBSSH2_ERROR_EAGAIN)
				return LIBSSH2_ERROR_EAGAIN;
			snprintf(ls->auth_err, sizeof ls->auth_err,
			         "cannot list authentication methods: %s", sess_errmsg(ls));
			return RDHPF_ERR_AUTH;
		}
		if (strstr(list, "publickey") == NULL) {
			snprintf(ls->auth_err, sizeof ls->auth_err,
			         "%s@%s does not accept public key authentication (offers: %.100s)",
			         ls->user, ls->hostname, list);
			return RDHPF_ERR_AUTH;
		}
		ls->auth_step = ls->use_agent && getenv("SSH_AUTH_SOCK") ? AS_AGENT : AS_FILE;
		ls->iid = 0;
	}
	if (ls->auth_step == AS_AGENT) {
		if (ls->agent == NULL) {
			ls->agent = libssh2_agent_init(ls->s);
			if (ls->agent == NULL || libssh2_agent_connect(ls->agent) != 0 ||
			    libssh2_agent_list_identities(ls->agent) != 0) {
				H->log(ls->ctx, RDHPF_LOG_DEBUG, "ssh-agent not usable", NULL);
				ls->auth_step = AS_FILE;
			}
			ls->agent_prev = NULL;
		}
		while (ls->auth_step == AS_AGENT) {
			struct libssh2_agent_publickey *id = NULL;
			rc = libssh2_agent_get_identity(ls->agent, &id, ls->agent_prev);
			if (rc != 0) {
				ls->auth_step = AS_FILE;
				break;
			}
			rc = libssh2_agent_userauth(ls->agent, ls->user, id);
			if (rc == LIBSSH2_ERROR_EAGAIN)
				return LIBSSH2_ERROR_EAGAIN; /* the same identity again */
			if (rc == 0)
				return RDHPF_OK;
			ls->agent_tried++;
			if (blob_is_rsa(id->blob, id->blob_len))
				ls->tried_rsa = true;
			ls->agent_prev = id;
		}
	}
	while (ls->iid < ls->nidfiles) {
		const char *f = ls->idfiles[ls->iid];
		if (access(f, R_OK) != 0) {
			if (ls->identity != NULL)
				snprintf(ls->auth_err, sizeof ls->auth_err,
				         "cannot read identity_file %s: %s", f, strerror(errno));
			ls->iid++;
			continue;
		}
		rc = libssh2_userauth_publickey_fromfile_ex(
		    ls->s, ls->user, (unsigned)strlen(ls->user), NULL, f, NULL);
		if (rc == LIBSSH2_ERROR_EAGAIN)
			return LIBSSH2_ERROR_EAGAIN;
		if (rc == 0)
			return RDHPF_OK;
		ls->tried_file = true;
		if (idfile_is_rsa(f))
			ls->tried_rsa = true;
		if (rc == LIBSSH2_ERROR_FILE || rc == LIBSSH2_ERROR_KEYFILE_AUTH_FAILED)
			snprintf(ls->auth_err, sizeof ls->auth_err,
			         "cannot use identity file %s: %s (encrypted keys need ssh-agent)",
			         f, sess_errmsg(ls));
		ls->iid++;
	}
	{
		char tried[1200];
		snprintf(tried, sizeof tried,
		         "public key authentication as %s@%s refused (tried: %d agent "
		         "key(s), %s)%s%s%s",
		         ls->user, ls->hostname, ls->agent_tried,
		         ls->nidfiles == 0 ? "no identity file"
		         : ls->tried_file ? (ls->identity ? ls->identity : "default identity files")
		                          : "no readable identity file",
		         ls->auth_err[0] ? "; " : "", ls->auth_err, ls->tried_rsa ? RSA_HINT : "");
		size_t n = strlen(tried);
		if (n >= sizeof ls->auth_err)
			n = sizeof ls->auth_err - 1;
		memcpy(ls->auth_err, tried, n);
		ls->auth_err[n] = '\0';
	}
	return RDHPF_ERR_AUTH;
}

static void ka_start(struct ls2 *ls);

static void
became_ready(struct ls2 *ls)
{
	ls->phase = PH_READY;
	ls->last_rx_ms = now_ms(ls);
	if (ls->agent) {
		libssh2_agent_disconnect(ls->agent);
		libssh2_agent_free(ls->agent);
		ls->agent = NULL;
	}
	if (ls->kh) {
		libssh2_knownhost_free(ls->kh);
		libssh2_knownhost_free(ls->kh_revoked);
		ls->kh = ls->kh_revoked = NULL;
	}
	ka_start(ls);
	wake_waiters(ls);
	H->log(ls->ctx, RDHPF_LOG_INFO, "ssh session up", "addr", ls->hostname, NULL);
	connect_finish(ls, RDHPF_OK, NULL);
	if (ls->phase == PH_READY && !ls->destroyed)
		service(ls);
}

static void
conn_step(struct ls2 *ls)
{
	char d[1024];
	int rc;

	if (ls->phase == PH_TCP) {
		int soerr = 0;
		socklen_t sl = sizeof soerr;
		if (getsockopt(ls->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
			soerr = errno;
		if (soerr == EINPROGRESS || soerr == EALREADY)
			return;
		if (soerr != 0) {
			snprintf(ls->last_conn_err, sizeof ls->last_conn_err, "connect: %s",
			         strerror(soerr));
			H->io_stop(ls->io);
			ls->io = NULL;
			close(ls->fd);
			ls->fd = -1;
			ls->iaddr++;
			if (tcp_start(ls) != 0) {
				snprintf(d, sizeof d, "cannot connect to %s:%u: %s", ls->hostname,
				         ls->port, ls->last_conn_err);
				connect_finish(ls, RDHPF_ERR_CONNECT, d);
			}
			return;
		}
		/* TCP_USER_TIMEOUT backs the keepalive up: unacknowledged data
		 * older than this kills the socket even if we are not looking. */
		if (ls->ka_interval_ms > 0 && ls->ka_count > 0) {
			uint64_t ut = ls->ka_interval_ms * (ls->ka_count + 1u);
			unsigned int v = ut > UINT_MAX ? UINT_MAX : (unsigned int)ut;
			setsockopt(ls->fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &v, sizeof v);
		}
		ls->phase = PH_HANDSHAKE;
		ls->rx_ready = true;
		sess_update_io(ls);
	}
	if (ls->phase == PH_HANDSHAKE) {
		rc = libssh2_session_handshake(ls->s, ls->fd);
		if (rc == LIBSSH2_ERROR_EAGAIN && !ls->sock_failed)
			return;
		if (rc != 0) {
			char kt[256];
			known_types(ls, kt, sizeof kt);
			snprintf(
			    d, sizeof d, "SSH handshake with %s:%u failed: %s%s%s", ls->hostname,
			    ls->port, ls->sock_failed ? ls->sock_why : sess_errmsg(ls),
			    strcmp(kt, "ssh-rsa") == 0 ? "; known_hosts has only an ssh-rsa key "
			                                 "for this host, which libssh2 1.10 "
			                                 "can only verify with SHA-1 signatures "
			                                 "(no rsa-sha2-256/512): add the "
			                                 "host's ed25519 or ECDSA key"
			                               : "",
			    "");
			connect_finish(
			    ls, strcmp(kt, "ssh-rsa") == 0 ? RDHPF_ERR_HOSTKEY : RDHPF_ERR_CONNECT,
			    d);
			return;
		}
		rc = hostkey_verify(ls, d, sizeof d);
		if (rc != RDHPF_OK) {
			H->log(ls->ctx, RDHPF_LOG_ERROR, "host key verification failed", "detail",
			       d, NULL);
			connect_finish(ls, rc, d);
			return;
		}
		ls->phase = PH_AUTH;
		ls->auth_step = AS_LIST;
	}
	if (ls->phase == PH_AUTH) {
		rc = auth_run(ls);
		if (rc == LIBSSH2_ERROR_EAGAIN && ls->sock_failed) {
			snprintf(d, sizeof d,
			         "ssh connection to %s:%u failed during authentication: %s",
			         ls->hostname, ls->port, ls->sock_why);
			connect_finish(ls, RDHPF_ERR_CONNECT, d);
			return;
		}
		if (rc == LIBSSH2_ERROR_EAGAIN)
			return;
		if (rc != RDHPF_OK) {
			connect_finish(ls, rc, ls->auth_err);
			return;
		}
		became_ready(ls);
	}
}

/* ---- keepalive ------------------------------------------------------------ */

static void session_dead(struct ls2 *ls, int status, const char *detail);

static void
ka_probe(struct ls2 *ls)
{
	int rc;

	if (ls->ka.ch == NULL || ls->ka.state != CS_OPEN)
		return;
	rc = libssh2_channel_setenv_ex(ls->ka.ch, KA_ENV, (unsigned)strlen(KA_ENV), "1", 1);
	/* EAGAIN: waiting for the reply (retried as bytes come in); any answer,
	 * success or refusal, completes the probe. */
	ls->ka_inflight = rc == LIBSSH2_ERROR_EAGAIN;
	if (rc != LIBSSH2_ERROR_EAGAIN && rc != 0 && rc != LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED) {
		/* The probe channel broke: reopen it. */
		zombie_add(ls, ls->ka.ch);
		ls->ka.ch = NULL;
		chan_unlink(ls, &ls->ka);
		openq_push_front(ls, &ls->ka);
	}
}

static void dead_fire(void *arg);

/* Dead when nothing came in for keepalive_interval × keepalive_count, plus
 * half an interval of grace: probes go out on interval ticks, so with
 * keepalive_count 1 the deadline would otherwise race the reply to the
 * probe sent at that very moment.  A blackhole is still reported within
 * interval × (count + 1/2) of its start. */
static uint64_t
ka_threshold(const struct ls2 *ls)
{
	return ls->ka_interval_ms * ls->ka_count + ls->ka_interval_ms / 2;
}

static void
dead_arm(struct ls2 *ls)
{
	uint64_t thr = ka_threshold(ls), now = now_ms(ls), due;

	if (ls->dead_timer) {
		H->timer_stop(ls->dead_timer);
		ls->dead_timer = NULL;
	}
	due = ls->last_rx_ms + thr;
	if (due <= now + ls->ka_interval_ms)
		ls->dead_timer =
		    H->timer_start(ls->ctx, due > now ? due - now : 0, 0, dead_fire, ls);
}

static bool
ka_check_dead(struct ls2 *ls)
{
	uint64_t thr = ka_threshold(ls), now = now_ms(ls);
	char d[256];

	if (now < ls->last_rx_ms + thr)
		return false;
	snprintf(
	    d, sizeof d,
	    "no reply from %s:%u for %llu ms (keepalive_interval %llu ms x keepalive_count %u): "
	    "ssh session is dead",
	    ls->hostname, ls->port, (unsigned long long)(now - ls->last_rx_ms),
	    (unsigned long long)ls->ka_interval_ms, ls->ka_count);
	session_dead(ls, RDHPF_ERR_TIMEOUT, d);
	return true;
}

static void
dead_fire(void *arg)
{
	struct ls2 *ls = arg;

	H->timer_stop(ls->dead_timer);
	ls->dead_timer = NULL;
	if (ls->phase == PH_READY && !ka_check_dead(ls))
		dead_arm(ls);
}

static void
ka_tick(void *arg)
{
	struct ls2 *ls = arg;
	uint64_t now = now_ms(ls);

	if (ls->phase != PH_READY)
		return;
	if (ka_check_dead(ls))
		return;
	/* Probe only a quiet link: traffic already proves it alive.  Half an
	 * interval, so that a tick landing a millisecond early still probes. */
	if (now >= ls->last_rx_ms + ls->ka_interval_ms / 2) {
		if (ls->ka_fallback) {
			int next = 0;
			libssh2_keepalive_send(ls->s, &next);
		} else if (!ls->ka_inflight) {
			ka_probe(ls);
		}
	}
	dead_arm(ls);
	service(ls);
}

static void
ka_start(struct ls2 *ls)
{
	memset(&ls->ka, 0, sizeof ls->ka);
	ls->ka.ls = ls;
	ls->ka.kind = CK_KA;
	ls->ka_inflight = false;
	ls->ka_fallback = false;
	openq_push_front(ls, &ls->ka);
	if (ls->ka_interval_ms == 0 || ls->ka_count == 0)
		return;
	ls->ka_timer = H->timer_start(ls->ctx, ls->ka_interval_ms, ls->ka_interval_ms, ka_tick, ls);
}

/* ---- opening channels ------------------------------------------------------ */

/* Fill the open parameters for c into ls (kept while libssh2 is mid-open,
 * even if c goes away). */
static int
open_params(struct ls2 *ls, struct chan *c)
{
	unsigned char msg[600];
	size_t m = 0;

	free(ls->open_msg);
	ls->open_msg = NULL;
	ls->open_msg_len = 0;
	switch (c->kind) {
	case CK_RELAY: {
		struct relay *r = (struct relay *)c;
		size_t hl = strlen(r->fw->rhost);
		const char *orig = "127.0.0.1";
		size_t ol = strlen(orig);
		/* string host, uint32 port, string originator, uint32 port */
		msg[m++] = (unsigned char)(hl >> 24);
		msg[m++] = (unsigned char)(hl >> 16);
		msg[m++] = (unsigned char)(hl >> 8);
		msg[m++] = (unsigned char)hl;
		memcpy(msg + m, r->fw->rhost, hl);
		m += hl;
		msg[m++] = 0;
		msg[m++] = 0;
		msg[m++] = (unsigned char)(r->fw->rport >> 8);
		msg[m++] = (unsigned char)r->fw->rport;
		msg[m++] = 0;
		msg[m++] = 0;
		msg[m++] = 0;
		msg[m++] = (unsigned char)ol;
		memcpy(msg + m, orig, ol);
		m += ol;
		msg[m++] = 0;
		msg[m++] = 0;
		msg[m++] = (unsigned char)(r->peer_port >> 8);
		msg[m++] = (unsigned char)r->peer_port;
		snprintf(ls->open_type, sizeof ls->open_type, "direct-tcpip");
		ls->open_window = ls->window;
		break;
	}
	case CK_UNIX: {
		struct xstream *x = (struct xstream *)c;
		memcpy(msg, x->req, x->req_len);
		m = x->req_len;
		snprintf(ls->open_type, sizeof ls->open_type, "direct-streamlocal@openssh.com");
		ls->open_window = WINDOW_STREAM;
		break;
	}
	case CK_EXEC:
		snprintf(ls->open_type, sizeof ls->open_type, "session");
		ls->open_window = WINDOW_STREAM;
		break;
	case CK_KA:
		snprintf(ls->open_type, sizeof ls->open_type, "session");
		ls->open_window = WINDOW_KA;
		break;
	default:
		return -1;
	}
	ls->open_type_len = (unsigned)strlen(ls->open_type);
	if (m > 0) {
		ls->open_msg = malloc(m);
		if (ls->open_msg == NULL)
			return -1;
		memcpy(ls->open_msg, msg, m);
		ls->open_msg_len = (unsigned)m;
	}
	return 0;
}

static void
open_done(struct ls2 *ls, struct chan *c, LIBSSH2_CHANNEL *ch)
{
	c->ch = ch;
	chan_link(ls, c);
	switch (c->kind) {
	case CK_RELAY: {
		struct relay *r = (struct relay *)c;
		c->state = CS_OPEN;
		r->io_ev = RDHPF_IO_READ;
		r->io = H->io_start(ls->ctx, r->fd, RDHPF_IO_READ, relay_on_io, r);
		if (r->io == NULL) {
			relay_reset(r, "cannot watch the socket");
			return;
		}
		/* The client may have written before the channel was there. */
		r->l_rd = true;
		ready_push(ls, c);
		break;
	}
	case CK_EXEC:
		c->state = CS_STARTING;
		ready_push(ls, c);
		break;
	case CK_UNIX:
		c->state = CS_OPEN;
		ready_push(ls, c);
		break;
	case CK_KA:
		c->state = CS_OPEN;
		break;
	default:
		break;
	}
}

static void
open_failed(struct ls2 *ls, struct chan *c, const char *why)
{
	char d[512];

	switch (c->kind) {
	case CK_RELAY: {
		struct relay *r = (struct relay *)c;
		snprintf(d, sizeof d, "cannot open a channel to %s:%u: %s", r->fw->rhost,
		         r->fw->rport, why);
		H->log(ls->ctx, r->fw->warned_open ? RDHPF_LOG_DEBUG : RDHPF_LOG_WARN,
		       "forwarded connection refused by the remote", "detail", d, NULL);
		r->fw->warned_open = true;
		relay_free(r);
		break;
	}
	case CK_EXEC:
	case CK_UNIX: {
		struct xstream *x = (struct xstream *)c;
		snprintf(d, sizeof d, "cannot open %s channel: %s",
		         c->kind == CK_EXEC ? "a session" : "a unix-socket", why);
		stream_finish(ls, x, RDHPF_ERR_REMOTE, -1, d);
		break;
	}
	case CK_KA:
		c->state = CS_CLOSED;
		ls->ka_fallback = true;
		if (ls->ka_interval_ms == 0 || ls->ka_count == 0)
			break;
		H->log(ls->ctx, RDHPF_LOG_WARN,
		       "the server refused the keepalive session channel; using "
		       "libssh2_keepalive_send, "
		       "whose replies libssh2 1.10 keeps in memory for the life of the session",
		       "err", why, NULL);
		libssh2_keepalive_config(ls->s, 1, (unsigned)((ls->ka_interval_ms + 999) / 1000));
		break;
	default:
		break;
	}
}

/* One open in flight at a time (libssh2 1.10 keeps a single open state). */
static void
drive_opens(struct ls2 *ls)
{
	unsigned gen = ls->gen;

	while (ls->phase == PH_READY && gen == ls->gen && (ls->open_busy || ls->openq != NULL)) {
		struct chan *c;
		LIBSSH2_CHANNEL *ch;

		if (!ls->open_busy) {
			c = ls->openq;
			if (open_params(ls, c) != 0) {
				openq_remove(ls, c);
				open_failed(ls, c, "out of memory");
				continue;
			}
			ls->opening = c;
			ls->open_busy = true;
			ls->open_orphan = false;
		}
		ch = libssh2_channel_open_ex(ls->s, ls->open_type, ls->open_type_len,
		                             ls->open_window, PACKET_SIZE, ls->open_msg,
		                             ls->open_msg_len);
		if (ch == NULL && libssh2_session_last_errno(ls->s) == LIBSSH2_ERROR_EAGAIN)
			return;
		c = ls->opening;
		ls->opening = NULL;
		ls->open_busy = false;
		if (c != NULL) {
			c->queued = false;
			ls->openq = c->qnext;
			if (ls->openq == NULL)
				ls->openq_tail = NULL;
			c->qnext = NULL;
		}
		if (ch == NULL) {
			char why[256];
			snprintf(why, sizeof why, "%s", sess_errmsg(ls));
			int e = libssh2_session_last_errno(ls->s);
			if (e != LIBSSH2_ERROR_CHANNEL_FAILURE && e != LIBSSH2_ERROR_ALLOC &&
			    e != LIBSSH2_ERROR_CHANNEL_UNKNOWN) {
				/* the transport itself failed */
				char d[300];
				snprintf(d, sizeof d, "ssh connection to %s:%u lost: %s",
				         ls->hostname, ls->port,
				         ls->sock_failed ? ls->sock_why : why);
				session_dead(ls, RDHPF_ERR_CLOSED, d);
				return;
			}
			if (c != NULL)
				open_failed(ls, c, why);
			continue;
		}
		if (c == NULL || ls->open_orphan) {
			zombie_add(ls, ch);
			ls->open_orphan = false;
			continue;
		}
		open_done(ls, c, ch);
	}
}

/* ---- relaying ------------------------------------------------------------- */

static int
relay_flush_down(struct relay *r)
{
	while (r->down.len > 0) {
		ssize_t n =
		    send(r->fd, r->down.p + r->down.off, r->down.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		buf_consume(&r->down, (size_t)n);
	}
	buf_trim(&r->down);
	return 0;
}

/* Write p[0..n) to the channel; how much it took, or a libssh2 error when it
 * took nothing. */
static ssize_t
relay_chan_write(struct relay *r, const char *p, size_t n)
{
	struct ls2 *ls = r->c.ls;
	size_t off = 0;

	while (off < n) {
		ssize_t w;
		if (ls->out.len >= OUT_HIGH) {
			r->c.out_throttled = true;
			ls->any_throttled = true;
			break;
		}
		w = libssh2_channel_write(r->c.ch, p + off, n - off);
		if (w > 0) {
			off += (size_t)w;
			r->fw->st.bytes_out += (uint64_t)w;
			continue;
		}
		if (w == 0 || w == LIBSSH2_ERROR_EAGAIN) {
			if (libssh2_channel_window_write_ex(r->c.ch, NULL) == 0)
				r->c.win_blocked = true;
			break;
		}
		if (off == 0)
			return w;
		break;
	}
	return (ssize_t)off;
}

/* local → channel.  false when the relay is gone. */
static bool
relay_up(struct relay *r)
{
	struct ls2 *ls = r->c.ls;
	uint64_t budget = RELAY_BUDGET;

	r->c.win_blocked = false;
	r->c.out_throttled = false;
	while (r->up.len > 0) {
		ssize_t w = relay_chan_write(r, r->up.p + r->up.off, r->up.len);
		if (w < 0) {
			relay_reset(r, "channel write");
			return false;
		}
		if (w == 0)
			return true;
		buf_consume(&r->up, (size_t)w);
	}
	buf_trim(&r->up);
	if (r->l_eof) {
		if (!r->eof_sent) {
			int rc = libssh2_channel_send_eof(r->c.ch);
			if (rc == LIBSSH2_ERROR_EAGAIN)
				return true; /* retried when bytes come in */
			r->eof_sent = true;
		}
		return true;
	}
	while (r->l_rd && budget > 0) {
		size_t room = libssh2_channel_window_write_ex(r->c.ch, NULL);
		ssize_t n, w;

		if (room == 0) {
			r->c.win_blocked = true;
			break;
		}
		if (ls->out.len >= OUT_HIGH) {
			r->c.out_throttled = true;
			ls->any_throttled = true;
			break;
		}
		if (room > SCRATCH_SIZE)
			room = SCRATCH_SIZE;
		n = recv(r->fd, ls->scratch, room, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				r->l_rd = false;
				break;
			}
			relay_reset(r, "local recv");
			return false;
		}
		if (n == 0) {
			r->l_eof = true;
			r->l_rd = false;
			int rc = libssh2_channel_send_eof(r->c.ch);
			if (rc != LIBSSH2_ERROR_EAGAIN)
				r->eof_sent = true;
			break;
		}
		budget -= (uint64_t)n < budget ? (uint64_t)n : budget;
		w = relay_chan_write(r, ls->scratch, (size_t)n);
		if (w < 0) {
			relay_reset(r, "channel write");
			return false;
		}
		if (w < n) {
			if (buf_append(&r->up, ls->scratch + w, (size_t)(n - w)) != 0) {
				relay_reset(r, "out of memory");
				return false;
			}
			break;
		}
	}
	if (budget == 0 && r->l_rd)
		ready_push(ls, &r->c);
	return true;
}

static void
relay_service(struct relay *r)
{
	struct ls2 *ls = r->c.ls;
	uint64_t budget = RELAY_BUDGET;

	if (r->c.state != CS_OPEN || r->c.ch == NULL)
		return;
	/* channel → local */
	if (r->down.len > 0 && relay_flush_down(r) != 0) {
		relay_reset(r, "local send");
		return;
	}
	while (!r->r_eof && r->down.len == 0 && budget > 0) {
		ssize_t n = libssh2_channel_read(r->c.ch, ls->scratch, SCRATCH_SIZE);
		if (n > 0) {
			ssize_t w;
			r->fw->st.bytes_in += (uint64_t)n;
			budget -= (uint64_t)n < budget ? (uint64_t)n : budget;
			w = send(r->fd, ls->scratch, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w < 0) {
				if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
					relay_reset(r, "local send");
					return;
				}
				w = 0;
			}
			if (w < n && buf_append(&r->down, ls->scratch + w, (size_t)(n - w)) != 0) {
				relay_reset(r, "out of memory");
				return;
			}
			continue;
		}
		if (n == LIBSSH2_ERROR_EAGAIN)
			break;
		if (n == 0 || n == LIBSSH2_ERROR_CHANNEL_CLOSED ||
		    n == LIBSSH2_ERROR_CHANNEL_EOF_SENT) {
			r->r_eof = true;
			break;
		}
		/* transport failure: the session is gone, service() notices */
		relay_reset(r, "channel read");
		return;
	}
	if (budget == 0 && r->down.len == 0 && !r->r_eof)
		ready_push(ls, &r->c);
	if (r->r_eof && r->down.len == 0 && !r->shut_wr) {
		shutdown(r->fd, SHUT_WR);
		r->shut_wr = true;
	}
	/* local → channel */
	if (!relay_up(r))
		return;
	if (r->shut_wr && r->eof_sent) {
		relay_free(r); /* done both ways: the channel closes in the background */
		return;
	}
	/* The remote closed the channel (not just EOF): the local side is done. */
	if (r->r_eof && r->down.len == 0 && libssh2_channel_wait_closed(r->c.ch) == 0) {
		relay_free(r); /* done both ways: the channel closes in the background */
		return;
	}
	relay_update_io(r);
}

/* ---- exec / unix streams: service ------------------------------------------ */

/* Deliver to the owner; false if the stream or the session went away. */
static bool
x_deliver(struct ls2 *ls, struct xstream *x, const char *p, size_t n)
{
	unsigned gen = ls->gen;

	x->in_cb = true;
	x->cbs->on_data(x->arg, p, n);
	if (ls->destroyed || gen != ls->gen)
		return false;
	x->in_cb = false;
	if (x->user_closed) {
		stream_free(ls, x);
		return false;
	}
	return true;
}

static void
x_service(struct xstream *x)
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
			         sess_errmsg(ls));
			stream_finish(ls, x, RDHPF_ERR_REMOTE, -1, d);
			return;
		}
		x->c.state = CS_OPEN;
	}
	if (x->c.state != CS_OPEN)
		return;
	x->c.win_blocked = false;
	while (x->in.len > 0) {
		ssize_t w;
		if (ls->out.len >= OUT_HIGH) {
			x->c.out_throttled = true;
			ls->any_throttled = true;
			break;
		}
		w = libssh2_channel_write(ch, x->in.p + x->in.off, x->in.len);
		if (w > 0) {
			buf_consume(&x->in, (size_t)w);
			continue;
		}
		if (w == LIBSSH2_ERROR_EAGAIN || w == 0) {
			if (libssh2_channel_window_write_ex(ch, NULL) == 0)
				x->c.win_blocked = true;
			break;
		}
		/* the remote stopped reading (EOF sent, closed): drop the rest */
		buf_free(&x->in);
		break;
	}
	buf_trim(&x->in);
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
		stream_finish(ls, x, RDHPF_OK, -1, NULL);
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
			stream_finish(ls, x, RDHPF_OK, -1, d);
			return;
		}
		snprintf(d, sizeof d, "%s", x->tail);
		stream_finish(ls, x, RDHPF_OK, code, d[0] ? d : NULL);
	}
}

/* ---- the service loop ------------------------------------------------------- */

/* Which channels have something to do after bytes came in. */
static void
scan(struct ls2 *ls)
{
	for (struct chan *c = ls->chans; c; c = c->next) {
		bool need = false;

		if (c->ch == NULL || c->ready)
			continue;
		switch (c->kind) {
		case CK_RELAY: {
			struct relay *r = (struct relay *)c;
			if (c->state != CS_OPEN)
				break;
			if (!r->r_eof && r->down.len == 0 &&
			    (libssh2_poll_channel_read(c->ch, 0) != 0 ||
			     libssh2_channel_eof(c->ch)))
				need = true;
			else if (r->l_eof && !r->eof_sent)
				need = true;
			else if (r->r_eof && r->down.len == 0)
				need = true; /* waiting for the remote CLOSE */
			if (c->win_blocked && libssh2_channel_window_write_ex(c->ch, NULL) > 0)
				need = true;
			if (c->out_throttled && ls->out.len < OUT_RESUME)
				need = true;
			break;
		}
		case CK_EXEC:
		case CK_UNIX: {
			struct xstream *x = (struct xstream *)c;
			if (c->state == CS_STARTING || (x->out_eof && x->err_eof))
				need = true;
			else if ((!x->out_eof || !x->err_eof) &&
			         (libssh2_poll_channel_read(c->ch, 1) != 0 ||
			          libssh2_channel_eof(c->ch)))
				need = true;
			if (c->win_blocked && libssh2_channel_window_write_ex(c->ch, NULL) > 0)
				need = true;
			break;
		}
		default:
			break;
		}
		if (need)
			ready_push(ls, c);
	}
}

/* Let libssh2 read whatever arrived, through a channel read of 0 bytes (no
 * data is taken; any pending window adjust goes out).  The keepalive
 * channel never carries data, so it is the natural one to use. */
static int
pull(struct ls2 *ls)
{
	struct chan *c = ls->ka.ch ? &ls->ka : ls->chans;
	ssize_t n;

	if (c == NULL || c->ch == NULL)
		return 0;
	n = libssh2_channel_read_ex(c->ch, 0, ls->scratch, 0);
	if (n < 0 && n != LIBSSH2_ERROR_EAGAIN)
		return (int)n; /* only the transport can fail a 0-byte read */
	return 0;
}

static void
zombies_drive(struct ls2 *ls)
{
	struct zombie **pp = &ls->zombies;

	ls->zombie_dirty = false;
	while (*pp) {
		struct zombie *z = *pp;
		int rc = libssh2_channel_free(z->ch);
		if (rc == LIBSSH2_ERROR_EAGAIN) {
			pp = &z->next;
			continue;
		}
		*pp = z->next;
		free(z);
	}
}

static void
health_complete(struct ls2 *ls, int status, const char *detail)
{
	while (ls->health) {
		struct health *h = ls->health;
		ls->health = h->next;
		H->timer_stop(h->t);
		complete_later(ls, h->done, h->arg, status, detail);
		free(h);
	}
}

static void
service(struct ls2 *ls)
{
	unsigned gen = ls->gen;
	int rounds = 0;

	if (ls->phase != PH_READY || ls->destroyed)
		return;
	ls->depth++;
	if (ls->depth == 1)
		ls->corked = true;
	for (;;) {
		uint64_t seq0 = ls->rx_seq;
		struct chan *c;

		if (++rounds > SERVICE_ROUNDS) {
			kick(ls);
			break;
		}
		ls->rx_budget = RX_BUDGET;
		if (rx_pending(ls) && pull(ls) < 0 && !ls->sock_failed) {
			ls->sock_failed = true;
			snprintf(ls->sock_why, sizeof ls->sock_why, "%s", sess_errmsg(ls));
		}
		if (ls->sock_failed)
			break;
		if (ls->open_busy || ls->openq)
			drive_opens(ls);
		if (ls->destroyed || gen != ls->gen || ls->phase != PH_READY)
			break;
		if (ls->rx_seq != ls->scan_seq) {
			ls->scan_seq = ls->rx_seq;
			if (ls->ka_inflight)
				ka_probe(ls);
			ls->zombie_dirty = true;
			if (ls->health)
				health_complete(ls, RDHPF_OK, NULL);
			scan(ls);
		}
		if (ls->zombies && ls->zombie_dirty)
			zombies_drive(ls);
		if (ls->ready == NULL && !rx_pending(ls) && ls->rx_seq == ls->scan_seq)
			break;
		while ((c = ready_pop(ls)) != NULL) {
			if (c->kind == CK_RELAY)
				relay_service((struct relay *)c);
			else if (c->kind == CK_EXEC || c->kind == CK_UNIX)
				x_service((struct xstream *)c);
			if (ls->destroyed || gen != ls->gen || ls->phase != PH_READY)
				goto out;
		}
		/* Send what this round produced (window adjusts above all): held
		 * back until service() ends, they would let the server run out of
		 * window while we work through a long batch. */
		if (ls->out.len > 0 && sess_flush(ls) != 0)
			break;
		if (ls->rx_seq == seq0 && !rx_pending(ls) && ls->ready == NULL &&
		    ls->rx_seq == ls->scan_seq)
			break;
	}
out:
	if (!ls->destroyed && gen == ls->gen && ls->phase == PH_READY && ls->sock_failed) {
		char d[300];
		snprintf(d, sizeof d, "ssh connection to %s:%u lost: %s", ls->hostname, ls->port,
		         ls->sock_why);
		session_dead(ls, RDHPF_ERR_CLOSED, d);
	}
	if (ls->depth == 1) {
		ls->corked = false;
		if (!ls->destroyed && gen == ls->gen && ls->phase == PH_READY && ls->out.len > 0)
			sess_flush(ls);
		/* That flush may have woken writers: they run from the loop. */
		if (!ls->destroyed && gen == ls->gen && ls->ready != NULL)
			kick(ls);
	}
	ls->depth--;
	if (ls->destroyed) {
		if (ls->depth == 0)
			really_destroy(ls);
		return;
	}
	if (ls->phase == PH_READY && gen == ls->gen)
		sess_update_io(ls);
}

/* ---- teardown ---------------------------------------------------------------- */

static void
session_teardown(struct ls2 *ls, int why)
{
	struct xstream *streams;
	int was = ls->phase;

	ls->gen++;
	ls->phase = PH_DOWN; /* first: nothing below may arm a kick */
	if (ls->ctimer) {
		H->timer_stop(ls->ctimer);
		ls->ctimer = NULL;
	}
	if (ls->ka_timer) {
		H->timer_stop(ls->ka_timer);
		ls->ka_timer = NULL;
	}
	if (ls->dead_timer) {
		H->timer_stop(ls->dead_timer);
		ls->dead_timer = NULL;
	}
	if (ls->kick_t) {
		H->timer_stop(ls->kick_t);
		ls->kick_t = NULL;
	}
	resolver_stop(ls);
	buf_free(&ls->resbuf);

	/* Streams end (their owners hear of it only when the link was lost). */
	streams = ls->streams;
	ls->streams = NULL;
	/* Relays with a channel lose their connection; the others wait for
	 * the next session (HOLD_LISTENERS). */
	for (struct fwd *fw = ls->fwds; fw; fw = fw->next) {
		struct relay *r = fw->relays;
		while (r) {
			struct relay *next = r->fnext;
			if (r->c.state == CS_OPEN || r->c.ch != NULL) {
				relay_free(r);
			} else {
				r->c.queued = false;
				r->c.qnext = NULL;
				r->c.ready = false;
				r->c.rnext = NULL;
				r->c.state = CS_WAIT;
			}
			r = next;
		}
	}
	ls->openq = ls->openq_tail = NULL;
	ls->opening = NULL;
	ls->open_busy = ls->open_orphan = false;
	free(ls->open_msg);
	ls->open_msg = NULL;
	ls->ready = ls->ready_tail = NULL;
	ls->chans = NULL;
	while (ls->zombies) {
		struct zombie *z = ls->zombies;
		ls->zombies = z->next;
		free(z);
	}
	memset(&ls->ka, 0, sizeof ls->ka);
	ls->ka_inflight = false;

	if (ls->agent) {
		libssh2_agent_disconnect(ls->agent);
		libssh2_agent_free(ls->agent);
		ls->agent = NULL;
	}
	if (ls->kh) {
		libssh2_knownhost_free(ls->kh);
		ls->kh = NULL;
	}
	if (ls->kh_revoked) {
		libssh2_knownhost_free(ls->kh_revoked);
		ls->kh_revoked = NULL;
	}
	if (ls->s) {
		if (why == TD_DISCONNECT && was == PH_READY && !ls->sock_failed) {
			libssh2_session_disconnect(ls->s, "rdhpf: closing");
			sess_flush(ls);
		}
		/* From here every read sees EOF and every write fails, so freeing
		 * the channels and the session cannot wait on the network. */
		ls->io_dead = true;
		for (int i = 0; i < 100 && libssh2_session_free(ls->s) == LIBSSH2_ERROR_EAGAIN; i++)
			;
		ls->s = NULL;
	}
	if (ls->io) {
		H->io_stop(ls->io);
		ls->io = NULL;
	}
	ls->io_ev = 0;
	if (ls->fd >= 0) {
		close(ls->fd);
		ls->fd = -1;
	}
	buf_free(&ls->out);
	buf_free(&ls->in);
	ls->corked = false;
	ls->io_dead = false;
	ls->rx_ready = false;
	ls->sock_failed = false;
	ls->sock_why[0] = '\0';
	ls->zombie_dirty = false;

	/* Owners' on_close may call stream_close on streams still on this list
	 * (a runtime closing its other streams): mark them all first, so that
	 * such a close only flags the stream and this loop stays the one that
	 * frees it. */
	for (struct xstream *x = streams; x; x = x->snext) {
		x->torn = true;
		x->c.ch = NULL; /* freed with the session */
		x->c.linked = x->c.queued = x->c.ready = false;
	}
	while (streams) {
		struct xstream *x = streams;
		const struct rdhpf_stream_cbs *cbs = x->cbs;
		void *arg = x->arg;
		bool closed = x->user_closed;
		streams = x->snext;
		buf_free(&x->in);
		free(x->req);
		free(x);
		if (why == TD_LOST && !closed && !ls->destroyed)
			cbs->on_close(arg, RDHPF_ERR_CLOSED, -1, "ssh session lost");
	}
	wait_timer_arm(ls);
}

/* The link died under us: tell the core (once) after cleaning up. */
static void
session_dead(struct ls2 *ls, int status, const char *detail)
{
	char d[512];

	if (ls->phase != PH_READY)
		return;
	snprintf(d, sizeof d, "%s", detail);
	H->log(ls->ctx, RDHPF_LOG_WARN, "ssh session lost", "detail", d, NULL);
	health_complete(ls, RDHPF_ERR_CLOSED, d);
	ls->depth++;
	session_teardown(ls, TD_LOST); /* streams' on_close run in here */
	ls->depth--;
	if (ls->destroyed) {
		if (ls->depth == 0)
			really_destroy(ls);
		return;
	}
	H->report_down(ls->ctx, status, d);
}

/* ---- ops ------------------------------------------------------------------- */

static void t_destroy(void *state);

static int
t_create(struct rdhpf_ctx *ctx, const struct rdhpf_host_params *p, void **state, char *err,
         size_t errlen)
{
	struct ls2 *ls;
	struct passwd *pw = getpwuid(getuid());
	const char *home = getenv("HOME");
	char path[PATH_MAX];

	if (!g_ssh2_ready) {
		if (libssh2_init(0) != 0) {
			snprintf(err, errlen, "libssh2_init failed");
			return RDHPF_ERR_GENERIC;
		}
		g_ssh2_ready = true;
	}
	if (p->hostname == NULL || *p->hostname == '\0') {
		snprintf(err, errlen, "no host name");
		return RDHPF_ERR_INVAL;
	}
	ls = calloc(1, sizeof *ls);
	if (ls == NULL)
		return RDHPF_ERR_NOMEM;
	ls->ctx = ctx;
	ls->fd = -1;
	ls->res_fd = -1;
	ls->window = WINDOW_DEFAULT;
	ls->max_relays = RELAYS_MAX_DEFAULT;
	ls->use_agent = true;
	if (home == NULL || *home == '\0')
		home = pw ? pw->pw_dir : "/";
	ls->host_name = strdup(p->host_name ? p->host_name : p->hostname);
	ls->hostname = strdup(p->hostname);
	ls->port = p->port ? p->port : 22;
	ls->user = strdup(p->user ? p->user : (pw ? pw->pw_name : "root"));
	ls->identity = xstrdup_or_null(p->identity_file);
	if (p->known_hosts) {
		ls->known_hosts = strdup(p->known_hosts);
	} else {
		snprintf(path, sizeof path, "%s/.ssh/known_hosts", home);
		ls->known_hosts = strdup(path);
	}
	ls->bind_addr = strdup(p->bind_address ? p->bind_address : "127.0.0.1");
	ls->connect_timeout_ms = p->connect_timeout_ms ? p->connect_timeout_ms : 10000;
	ls->ka_interval_ms = p->keepalive_interval_ms;
	ls->ka_count = p->keepalive_count;
	ls->ciphers = strdup(DEFAULT_CIPHERS);
	ls->macs = strdup(DEFAULT_MACS);
	ls->scratch = malloc(SCRATCH_SIZE);
	if (!ls->host_name || !ls->hostname || !ls->user || !ls->known_hosts || !ls->bind_addr ||
	    !ls->ciphers || !ls->macs || !ls->scratch) {
		t_destroy(ls);
		return RDHPF_ERR_NOMEM;
	}
	for (size_t i = 0; i < p->n_options; i++) {
		const char *k = p->options[i].key, *v = p->options[i].value;
		uint64_t n;
		if (strcmp(k, "window") == 0) {
			if (parse_size(v, 64 * 1024, 1024ull * 1024 * 1024, &n) != 0) {
				snprintf(err, errlen,
				         "window: '%s' is not a size between 64K and 1G", v);
				t_destroy(ls);
				return RDHPF_ERR_INVAL;
			}
			ls->window = (uint32_t)n;
		} else if (strcmp(k, "max_relays") == 0) {
			if (parse_size(v, 1, 1000000, &n) != 0) {
				snprintf(err, errlen,
				         "max_relays: '%s' is not a count between 1 and 1000000",
				         v);
				t_destroy(ls);
				return RDHPF_ERR_INVAL;
			}
			ls->max_relays = (uint32_t)n;
		} else if (strcmp(k, "agent") == 0) {
			if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0) {
				snprintf(err, errlen, "agent: '%s' is not yes or no", v);
				t_destroy(ls);
				return RDHPF_ERR_INVAL;
			}
			ls->use_agent = strcmp(v, "yes") == 0;
		} else if (strcmp(k, "ciphers") == 0 || strcmp(k, "macs") == 0) {
			char **dst = k[0] == 'c' ? &ls->ciphers : &ls->macs;
			free(*dst);
			*dst = strdup(v);
			if (*dst == NULL) {
				t_destroy(ls);
				return RDHPF_ERR_NOMEM;
			}
		}
	}
	/* Check the method lists now (no I/O: a session object only). */
	{
		LIBSSH2_SESSION *s = libssh2_session_init();
		int bad = 0;
		if (s == NULL) {
			t_destroy(ls);
			return RDHPF_ERR_NOMEM;
		}
		if (libssh2_session_method_pref(s, LIBSSH2_METHOD_CRYPT_CS, ls->ciphers) != 0)
			bad = 1;
		else if (libssh2_session_method_pref(s, LIBSSH2_METHOD_MAC_CS, ls->macs) != 0)
			bad = 2;
		libssh2_session_free(s);
		if (bad) {
			snprintf(err, errlen, "%s: '%s' names nothing libssh2 %s supports",
			         bad == 1 ? "ciphers" : "macs", bad == 1 ? ls->ciphers : ls->macs,
			         libssh2_version(0));
			t_destroy(ls);
			return RDHPF_ERR_INVAL;
		}
	}
	if (ls->identity) {
		ls->idfiles[ls->nidfiles++] = strdup(ls->identity);
	} else {
		static const char *const defs[] = {"id_ed25519", "id_ecdsa", "id_rsa"};
		for (size_t i = 0; i < 3; i++) {
			snprintf(path, sizeof path, "%s/.ssh/%s", home, defs[i]);
			ls->idfiles[ls->nidfiles++] = strdup(path);
		}
	}
	*state = ls;
	return RDHPF_OK;
}

static void
really_destroy(struct ls2 *ls)
{
	for (int i = 0; i < ls->nidfiles; i++)
		free(ls->idfiles[i]);
	free(ls->host_name);
	free(ls->hostname);
	free(ls->user);
	free(ls->identity);
	free(ls->known_hosts);
	free(ls->bind_addr);
	free(ls->ciphers);
	free(ls->macs);
	free(ls->scratch);
	free(ls);
}

static void
t_disconnect(void *state)
{
	struct ls2 *ls = state;

	cancel_pending(ls);
	while (ls->health) {
		struct health *h = ls->health;
		ls->health = h->next;
		H->timer_stop(h->t);
		free(h);
	}
	ls->cdone = NULL;
	session_teardown(ls, TD_DISCONNECT);
}

static void
t_destroy(void *state)
{
	struct ls2 *ls = state;

	if (ls == NULL)
		return;
	t_disconnect(ls);
	while (ls->fwds)
		fwd_free(ls, ls->fwds);
	if (ls->wait_timer) {
		H->timer_stop(ls->wait_timer);
		ls->wait_timer = NULL;
	}
	if (ls->depth > 0) {
		ls->destroyed = true; /* freed when the last service() frame returns */
		return;
	}
	really_destroy(ls);
}

static int
t_connect(void *state, rdhpf_done_fn done, void *arg)
{
	struct ls2 *ls = state;
	char err[512];
	int r;

	if (ls->phase == PH_READY)
		return complete_later(ls, done, arg, RDHPF_OK, NULL);
	if (ls->phase != PH_DOWN)
		return RDHPF_ERR_BUSY;
	ls->last_conn_err[0] = '\0';
	ls->auth_err[0] = '\0';
	ls->tried_rsa = ls->tried_file = false;
	ls->agent_tried = 0;
	ls->iid = 0;
	r = session_make(ls, err, sizeof err);
	if (r == RDHPF_OK)
		r = resolve_start(ls, err, sizeof err);
	if (r != RDHPF_OK) {
		session_teardown(ls, TD_FAILED);
		return complete_later(ls, done, arg, r, err);
	}
	ls->cdone = done;
	ls->carg = arg;
	ls->ctimer = H->timer_start(ls->ctx, ls->connect_timeout_ms, 0, ctimer_fire, ls);
	return RDHPF_OK;
}

static void
health_timeout(void *arg)
{
	struct health *h = arg;
	struct ls2 *ls = h->ls;

	for (struct health **pp = &ls->health; *pp; pp = &(*pp)->next) {
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	}
	H->timer_stop(h->t);
	h->done(h->arg, RDHPF_ERR_TIMEOUT, "no answer from the ssh server");
	free(h);
}

static int
t_health(void *state, rdhpf_done_fn done, void *arg)
{
	struct ls2 *ls = state;
	struct health *h;
	uint64_t to;

	if (ls->phase != PH_READY)
		return complete_later(ls, done, arg, RDHPF_ERR_NOTCONN, "not connected");
	if (now_ms(ls) < ls->last_rx_ms + 1000)
		return complete_later(ls, done, arg, RDHPF_OK, NULL);
	/* Ask the server something and wait for any byte back. */
	h = calloc(1, sizeof *h);
	if (h == NULL)
		return RDHPF_ERR_NOMEM;
	to = ls->ka_interval_ms ? ls->ka_interval_ms * (ls->ka_count ? ls->ka_count : 1)
	                        : ls->connect_timeout_ms;
	h->ls = ls;
	h->done = done;
	h->arg = arg;
	h->t = H->timer_start(ls->ctx, to, 0, health_timeout, h);
	h->next = ls->health;
	ls->health = h;
	if (ls->ka_fallback || ls->ka.ch == NULL) {
		int next = 0;
		libssh2_keepalive_send(ls->s, &next);
	} else if (!ls->ka_inflight) {
		ka_probe(ls);
	}
	sess_update_io(ls);
	return RDHPF_OK;
}

static int
t_forward_add(void *state, const struct rdhpf_forward *f, rdhpf_done_fn done, void *arg)
{
	struct ls2 *ls = state;
	struct fwd *fw;
	char err[300];
	int r;

	if (f == NULL || f->local_port == 0 || f->remote_port == 0 || f->remote_host == NULL ||
	    *f->remote_host == '\0' || strlen(f->remote_host) >= sizeof fw->rhost ||
	    (f->bind_address && strlen(f->bind_address) >= sizeof fw->bind))
		return RDHPF_ERR_INVAL;
	fw = fwd_find(ls, f);
	if (fw != NULL) {
		/* Idempotent; a changed target applies to new connections. */
		snprintf(fw->rhost, sizeof fw->rhost, "%s", f->remote_host);
		fw->rport = f->remote_port;
		return complete_later(ls, done, arg, RDHPF_OK, NULL);
	}
	fw = calloc(1, sizeof *fw);
	if (fw == NULL)
		return RDHPF_ERR_NOMEM;
	fw->ls = ls;
	fw->lfd = -1;
	snprintf(fw->bind, sizeof fw->bind, "%s",
	         f->bind_address ? f->bind_address : ls->bind_addr);
	fw->lport = f->local_port;
	snprintf(fw->rhost, sizeof fw->rhost, "%s", f->remote_host);
	fw->rport = f->remote_port;
	r = bind_listener(fw->bind, fw->lport, &fw->lfd, err, sizeof err);
	if (r != RDHPF_OK) {
		free(fw);
		return complete_later(ls, done, arg, r, err);
	}
	fw->lio = H->io_start(ls->ctx, fw->lfd, RDHPF_IO_READ, listen_on_io, fw);
	if (fw->lio == NULL) {
		close(fw->lfd);
		free(fw);
		return RDHPF_ERR_IO;
	}
	fw->next = ls->fwds;
	ls->fwds = fw;
	return complete_later(ls, done, arg, RDHPF_OK, NULL);
}

static int
t_forward_remove(void *state, const struct rdhpf_forward *f, rdhpf_done_fn done, void *arg)
{
	struct ls2 *ls = state;
	struct fwd *fw = f ? fwd_find(ls, f) : NULL;

	/* The port is closed before the callback: a connect now is refused. */
	if (fw != NULL)
		fwd_free(ls, fw);
	kick(ls);
	return complete_later(ls, done, arg, RDHPF_OK, NULL);
}

static int
t_forward_stats(void *state, const struct rdhpf_forward *f, struct rdhpf_forward_stats *out)
{
	struct ls2 *ls = state;
	struct fwd *fw = f ? fwd_find(ls, f) : NULL;

	if (fw == NULL)
		return RDHPF_ERR_INVAL;
	*out = fw->st;
	return RDHPF_OK;
}

static struct xstream *
stream_new(struct ls2 *ls, int kind, const struct rdhpf_stream_cbs *cbs, void *arg)
{
	struct xstream *x = calloc(1, sizeof *x);

	if (x == NULL)
		return NULL;
	x->c.ls = ls;
	x->c.kind = kind;
	x->cbs = cbs;
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
	openq_push(ls, &x->c);
	kick(ls);
}

static int
t_exec(void *state, const char *const *argv, const struct rdhpf_stream_cbs *cbs, void *arg,
       void **stream)
{
	struct ls2 *ls = state;
	struct xstream *x;

	if (argv == NULL || argv[0] == NULL || cbs == NULL || cbs->on_data == NULL ||
	    cbs->on_close == NULL)
		return RDHPF_ERR_INVAL;
	if (ls->phase != PH_READY)
		return RDHPF_ERR_NOTCONN;
	x = stream_new(ls, CK_EXEC, cbs, arg);
	if (x == NULL)
		return RDHPF_ERR_NOMEM;
	x->req = H->shell_join(argv);
	if (x->req == NULL) {
		free(x);
		return RDHPF_ERR_NOMEM;
	}
	x->req_len = strlen(x->req);
	stream_start(ls, x);
	*stream = x;
	return RDHPF_OK;
}

static int
t_open_unix(void *state, const char *path, const struct rdhpf_stream_cbs *cbs, void *arg,
            void **stream)
{
	struct ls2 *ls = state;
	struct xstream *x;
	size_t pl;
	unsigned char *m;

	if (path == NULL || *path == '\0' || cbs == NULL || cbs->on_data == NULL ||
	    cbs->on_close == NULL)
		return RDHPF_ERR_INVAL;
	pl = strlen(path);
	if (pl > 4096)
		return RDHPF_ERR_INVAL;
	if (ls->phase != PH_READY)
		return RDHPF_ERR_NOTCONN;
	x = stream_new(ls, CK_UNIX, cbs, arg);
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

static int
t_stream_write(void *state, void *stream, const void *buf, size_t len)
{
	struct ls2 *ls = state;
	struct xstream *x = stream;

	if (x == NULL || x->user_closed)
		return RDHPF_ERR_INVAL;
	if (ls->phase != PH_READY || x->torn)
		return RDHPF_ERR_NOTCONN;
	if (buf_append(&x->in, buf, len) != 0)
		return RDHPF_ERR_NOMEM;
	if (x->c.state == CS_OPEN)
		ready_push(ls, &x->c);
	kick(ls);
	return RDHPF_OK;
}

static void
t_stream_close(void *state, void *stream)
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
	kick(ls);
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
    .forward_stats = t_forward_stats,
};

static const struct rdhpf_option_desc options[] = {
    {"window", "receive window of each forwarded connection's channel (default 2M; 64K..1G)"},
    {"ciphers", "libssh2 cipher preference list (default " DEFAULT_CIPHERS ")"},
    {"macs", "libssh2 MAC preference list (default " DEFAULT_MACS ")"},
    {"agent", "yes (default): try ssh-agent keys before identity_file; no: never"},
    {"max_relays", "open connections per forward at most (default 4096); more are closed at once"},
    {NULL, NULL},
};

static const struct rdhpf_plugin_info info = {
    .abi_major = RDHPF_ABI_MAJOR,
    .abi_minor = RDHPF_ABI_MINOR,
    .struct_size = sizeof(struct rdhpf_plugin_info),
    .kind = RDHPF_KIND_TRANSPORT,
    .name = "libssh2",
    .version = PLUGIN_VERSION,
    .description = "in-process SSH (libssh2): own listeners, channels relayed on the core loop",
    .caps = RDHPF_TCAP_EXEC | RDHPF_TCAP_UNIX_STREAM | RDHPF_TCAP_FORWARD_STATS |
            RDHPF_TCAP_HOLD_LISTENERS,
    .options = options,
    .ops.transport = &ops,
};

RDHPF_PLUGIN_DECLARE
{
	H = host;
	return &info;
}
