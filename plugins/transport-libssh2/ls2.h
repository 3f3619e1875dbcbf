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
 *   holds OUT_HIGH bytes.  Inside ls2_service() sends are batched (one send()
 *   per round instead of one per 32K packet) and flushed at the end of
 *   every round, so window adjusts never wait behind a long batch.
 *
 * - Receives are ours too (cb_recv): recv() only after the io watch said
 *   readable, into a read-ahead buffer (libssh2 asks for 16K at a time), so
 *   the many libssh2 calls that "drain the transport first" cost no syscall
 *   when nothing came; every inbound byte stamps last_rx (the keepalive
 *   fallback counts it).
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
 *   fallback when the server refuses that channel.  One probe goes out per
 *   keepalive_interval, busy link or not, and only its answers (and the
 *   remote TCP acknowledging our bytes) count: rsdk_live in the SDK, the
 *   same counting as every transport's.  In the fallback, whose replies
 *   libssh2 swallows, any inbound byte counts.  TCP_USER_TIMEOUT backs it
 *   up.
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
 * `getent ahosts` child, so nothing blocks on DNS.
 *
 * Files, one concept each (ls2.h holds what they share):
 *   plugin.c     info block, ops table, options, create/destroy, deferred completions
 *   sockio.c     the session socket: our send/recv callbacks, batching, its io watch
 *   hostkey.c    known_hosts and host key verification; key type sniffing
 *   connect.c    resolve, TCP connect, handshake, authentication
 *   session.c    the service loop that drives libssh2, and the session's teardown
 *   chan.c       channel lists, the open FIFO, zombies (channels closing)
 *   keepalive.c  the keepalive probe, liveness and health_check
 *   relay.c      forwards' local listeners and their direct-tcpip relays
 *   stream.c     exec and direct-streamlocal streams for runtimes */
#ifndef LS2_H
#define LS2_H

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
#include "rdhpf/sdk.h"

#define PLUGIN_VERSION "2.0.0"

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

/* ---- small byte buffer ------------------------------------------------- */

/* Free a big buffer once drained, so idle connections cost no memory. */
static inline void
ls2_buf_trim(struct rsdk_buf *b)
{
	if (rsdk_buf_size(b) == 0 && b->cap > 65536)
		rsdk_buf_free(b);
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
	struct rsdk_buf up, down; /* local→channel, channel→local not yet taken */
	bool l_rd;                /* local fd readable (until recv says EAGAIN) */
	bool l_eof, eof_sent, r_eof, shut_wr;
	struct relay *fnext, *fprev;
};

/* A forward's counters (forward_stats copies them out). */
struct ls2_fstats {
	uint64_t connections; /* accepted since added */
	uint64_t active;      /* open now */
	uint64_t bytes_in;    /* remote → local */
	uint64_t bytes_out;   /* local → remote */
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
	struct ls2_fstats st;
	bool warned_open;
	struct fwd *next;
};

struct xstream {
	struct chan c;               /* first */
	struct rdhpf_stream_cbs cbs; /* a copy; members the owner did not have are NULL */
	void *arg;
	char *req; /* exec: the command line; unix: the open message */
	size_t req_len;
	struct rsdk_buf in; /* bytes for the remote's stdin / socket */
	char tail[TAIL_MAX + 1];
	size_t tail_len;
	bool out_eof, err_eof;
	bool in_cb, user_closed;
	bool torn; /* the session is gone; teardown frees it */
	struct xstream *snext, *sprev;
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
	struct rsdk_buf resbuf;
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
	struct rsdk_buf out;
	bool rx_ready, io_dead;
	size_t rx_budget; /* recv bytes left this round (READY only) */
	char *rx;         /* read ahead (RX_AHEAD bytes), not yet handed to libssh2 */
	size_t rx_off, rx_len;
	bool corked;      /* inside ls2_service(): sends collect in out */
	bool sock_failed; /* recv saw EOF/error or send failed */
	char sock_why[200];
	uint64_t rx_total;   /* bytes received on this socket (0: not even a banner) */
	char first_line[80]; /* the first line the server sent (printable) */
	bool zombie_dirty;   /* zombies that have not had a close attempt */
	bool any_throttled;  /* some chan waits for sess_out to drain */
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
	bool ka_inflight;
	struct rsdk_keepalive kal; /* the SDK's driver: the probes' answers, ticks, deadline */

	struct fwd *fwds;
	struct rdhpf_timer *wait_timer;
	struct xstream *streams;
	struct rsdk_pending pend;   /* results known at once, delivered from the loop */
	struct rsdk_pending health; /* health checks waiting for the server */
	struct rdhpf_timer *kick_t;
	char *scratch;

	unsigned gen;   /* bumped by every teardown: callers re-check after callbacks */
	int depth;      /* ls2_service() frames on the stack */
	bool destroyed; /* destroy() ran inside a callback; free at depth 0 */
};

/* Why ls2_session_teardown() runs. */
enum { TD_DISCONNECT = 0, TD_LOST, TD_FAILED };

extern const struct rdhpf_host_api *ls2_H;

/* plugin.c */
uint64_t ls2_now_ms(struct ls2 *ls);
const char *ls2_sess_errmsg(struct ls2 *ls);
int ls2_complete_later(struct ls2 *ls, rdhpf_done_fn done, void *arg, int status,
                       const char *detail);
void ls2_really_destroy(struct ls2 *ls);

/* sockio.c */
void ls2_set_nodelay(int fd);
ssize_t ls2_cb_send(libssh2_socket_t fd, const void *buf, size_t len, int flags, void **abstract);
ssize_t ls2_cb_recv(libssh2_socket_t fd, void *buf, size_t len, int flags, void **abstract);
struct chan *ls2_pull_chan(struct ls2 *ls);
bool ls2_can_pull(struct ls2 *ls);
bool ls2_rx_pending(struct ls2 *ls);
int ls2_sess_flush(struct ls2 *ls);
void ls2_sess_update_io(struct ls2 *ls);
void ls2_sess_on_io(void *arg, int fd, unsigned rev);

/* hostkey.c */
void ls2_known_hosts_load(struct ls2 *ls);
void ls2_known_types(struct ls2 *ls, char *out, size_t len);
int ls2_hostkey_verify(struct ls2 *ls, char *detail, size_t dlen);
bool ls2_blob_is_rsa(const unsigned char *blob, size_t len);
bool ls2_idfile_is_rsa(const char *path);

/* connect.c */
void ls2_resolver_stop(struct ls2 *ls);
void ls2_conn_step(struct ls2 *ls);
int ls2_connect(void *state, rdhpf_done_fn done, void *arg);

/* session.c */
void ls2_kick(struct ls2 *ls);
void ls2_service(struct ls2 *ls);
void ls2_session_teardown(struct ls2 *ls, int why);
void ls2_session_dead(struct ls2 *ls, int status, const char *detail);

/* chan.c */
void ls2_chan_unlink(struct ls2 *ls, struct chan *c);
void ls2_ready_push(struct ls2 *ls, struct chan *c);
struct chan *ls2_ready_pop(struct ls2 *ls);
void ls2_openq_push(struct ls2 *ls, struct chan *c);
void ls2_openq_push_front(struct ls2 *ls, struct chan *c);
void ls2_zombie_add(struct ls2 *ls, LIBSSH2_CHANNEL *ch);
void ls2_chan_detach(struct ls2 *ls, struct chan *c);
void ls2_drive_opens(struct ls2 *ls);

/* keepalive.c */
void ls2_ka_probe(struct ls2 *ls);
void ls2_ka_opened(struct ls2 *ls);
void ls2_ka_start(struct ls2 *ls);
int ls2_health(void *state, rdhpf_done_fn done, void *arg);

/* relay.c */
void ls2_relay_on_io(void *arg, int fd, unsigned rev);
void ls2_relay_free(struct relay *r);
void ls2_relay_reset(struct relay *r, const char *why);
void ls2_fwd_free(struct ls2 *ls, struct fwd *fw);
void ls2_wait_timer_arm(struct ls2 *ls);
void ls2_wake_waiters(struct ls2 *ls);
void ls2_relay_service(struct relay *r);
int ls2_forward_add(void *state, const struct rdhpf_forward *f, rdhpf_done_fn done, void *arg);
int ls2_forward_remove(void *state, const struct rdhpf_forward *f, rdhpf_done_fn done, void *arg);
int ls2_forward_stats(void *state, const struct rdhpf_forward *f, struct rdhpf_forward_stats *out);

/* stream.c */
void ls2_stream_finish(struct ls2 *ls, struct xstream *x, int status, int code, const char *detail);
void ls2_x_service(struct xstream *x);
int ls2_exec(void *state, const char *const *argv, const struct rdhpf_stream_cbs *cbs, void *arg,
             void **stream);
int ls2_open_unix(void *state, const char *path, const struct rdhpf_stream_cbs *cbs, void *arg,
                  void **stream);
int ls2_stream_write(void *state, void *stream, const void *buf, size_t len);
void ls2_stream_close(void *state, void *stream);

#endif /* LS2_H */
