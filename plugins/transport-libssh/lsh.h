/* transport-libssh: the objects every file of the plugin shares.
 *
 * One in-process SSH session per host on libssh 0.10, in non-blocking mode,
 * driven by the core's loop.  rdhpf listens on every forward's local port
 * and relays each accepted connection through a direct-tcpip channel.
 *
 * Files, one concept each:
 *   plugin.c   ops table, options, create/destroy, deferred completions, health
 *   sshconf.c  the libssh session's options: ssh_config, ciphers, identities
 *   dial.c     name resolution (a getent child) and the non-blocking TCP connect
 *   agent.c    asynchronous ssh-agent probe (libssh's own agent I/O blocks)
 *   hostkey.c  strict host key verification against known_hosts
 *   connect.c  the connect state machine: TCP, handshake, host key, auth
 *   session.c  the ready session: pumping libssh, teardown
 *   live.c     the keepalive: probes on a private channel, rsdk_live
 *   chan.c     channels common to relays and streams: opens, ready list
 *   forward.c  forwards' books and their local listeners
 *   relay.c    one accepted connection relayed through its channel
 *   stream.c   remote commands and direct-streamlocal streams for runtimes
 *
 * The rule that keeps libssh re-entrancy safe: libssh calls our channel
 * callbacks from inside any libssh call that reads packets (even from
 * ssh_channel_write).  Those callbacks only record what happened, copy
 * stream bytes, or hand relay bytes straight to a local socket; anything
 * that frees a channel, or calls back into the core, happens later in
 * lsh_service(), outside every libssh call. */
#ifndef LSH_H
#define LSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>

#include "rdhpf/plugin.h"
#include "rdhpf/sdk.h"

#define LSH_VERSION "2.0.0"

#define LSH_SCRATCH (256u * 1024u)       /* one read from a local socket */
#define LSH_SCRATCH_SLACK (64u * 1024u)  /* allocated beyond LSH_SCRATCH (relay_window_topup) */
#define LSH_RELAY_BUDGET (1024u * 1024u) /* bytes one relay moves per turn */
#define LSH_PUMP_ROUNDS 64               /* libssh reads 4 KiB per poll: 256 KiB per turn */
#define LSH_SERVICE_BATCH 256            /* ready channels per turn, then a zero timer */
#define LSH_TAIL_MAX 1024
#define LSH_MAX_ADDRS 8
#define LSH_ACCEPT_BATCH 256
#define LSH_ACCEPT_PAUSE_MS 100
#define LSH_AGENT_PROBE_MS 1000
#define LSH_OPEN_RECHECK_MS 20
#define LSH_OPENS_PER_FWD 8                     /* channel opens in flight per forward */
#define LSH_WINDOW_DEFAULT (2u * 1024u * 1024u) /* receive window per relay channel */
#define LSH_WINDOW_LIBSSH 1280000u              /* libssh 0.10's own (channels.c WINDOWBASE) */

extern const struct rdhpf_host_api *lsh_H;

/* Drop n bytes from the front; an idle relay should not pin a large buffer. */
static inline void
lsh_buf_consume(struct rsdk_buf *b, size_t n)
{
	rsdk_buf_consume(b, n);
	if (rsdk_buf_size(b) == 0 && b->cap > 64u * 1024u)
		rsdk_buf_free(b);
}

enum lsh_phase {
	PH_DOWN = 0,
	PH_RESOLVING,
	PH_TCP,
	PH_HANDSHAKE,
	PH_AGENT,
	PH_AUTH,
	PH_READY,
};

enum lsh_chan_kind { CK_RELAY = 1, CK_EXEC, CK_UNIX, CK_KA };

enum lsh_chan_state {
	CS_WAIT = 0, /* relay: waiting for the session to come (back) */
	CS_OPENING,  /* channel open in flight */
	CS_REQ,      /* exec: the exec request in flight */
	CS_OPEN,
	CS_DONE, /* finished: freed by the next service turn */
};

struct lsh;

/* What relays and streams share: the channel, its libssh callbacks (whose
 * userdata is this chan), and the session's lists. */
struct lsh_chan {
	struct lsh *ls;
	int kind;
	int state;
	ssh_channel ch;
	struct ssh_channel_callbacks_struct cb;
	struct lsh_chan *onext, *oprev; /* ls->opening */
	struct lsh_chan *rnext;         /* ls->ready */
	struct lsh_chan *tnext;         /* ls->throttled */
	bool opening, ready, throttled;
	bool r_eof, r_closed; /* seen by libssh callbacks */
	bool win_wait;        /* a write found the peer's window empty */
	bool out_wait;        /* waits for the session's output to drain */
	bool drain_wait;      /* …because the kernel was full (not a key re-exchange) */
};

struct lsh_fwd;

struct lsh_relay {
	struct lsh_chan c; /* first */
	struct lsh_fwd *fw;
	int fd;
	struct rdhpf_io *io;
	unsigned io_ev;
	uint16_t peer_port;
	uint64_t t_accept;
	struct rsdk_buf down; /* channel → local, taken from libssh, not yet sent */
	struct rsdk_buf up;   /* local → channel, refused during a key re-exchange */
	bool held;            /* libssh holds channel bytes we could not send yet */
	uint32_t rx_unacked;  /* bytes taken since our last window top-up */
	bool l_rd;            /* local fd readable (until recv says EAGAIN) */
	bool l_eof, eof_sent, shut_wr, l_err;
	struct lsh_relay *fnext, *fprev;
};

/* A forward's counters (forward_stats copies them out). */
struct lsh_fstats {
	uint64_t connections; /* accepted since added */
	uint64_t active;      /* open now */
	uint64_t bytes_in;    /* remote → local */
	uint64_t bytes_out;   /* local → remote */
};

struct lsh_fwd {
	struct lsh *ls;
	char bind[64];
	uint16_t lport;
	char rhost[256];
	uint16_t rport;
	int lfd;
	struct rdhpf_io *lio;
	struct rdhpf_timer *pause_t;
	struct lsh_relay *relays;
	struct lsh_fstats st;
	bool warned_open;
	bool open_more;     /* an open ended: start waiting ones */
	unsigned n_opening; /* relays with an open in flight */
	struct lsh_fwd *next;
};

struct lsh_stream {
	struct lsh_chan c;           /* first */
	struct rdhpf_stream_cbs cbs; /* a copy; members the owner did not have are NULL */
	void *arg;
	char *cmd;           /* exec: the command line */
	char *path;          /* unix: the remote socket */
	struct rsdk_buf in;  /* to the remote's stdin / socket */
	struct rsdk_buf out; /* from the remote, not yet delivered */
	char tail[LSH_TAIL_MAX + 1];
	size_t tail_len;
	int exit_code;
	bool in_cb, user_closed;
	bool torn;     /* its session is gone; the teardown frees it */
	char why[200]; /* set when the stream failed (open refused) */
	struct lsh_stream *snext, *sprev;
};

struct lsh {
	struct rdhpf_ctx *ctx;

	/* configuration (create) */
	char *host_name; /* the config section */
	char *alias;     /* what ssh_config's Host lines match: the URL's host */
	char *user;      /* NULL: ssh_config's User, else the local user */
	char *identity;  /* identity_file, or NULL */
	char *known_hosts;
	char *bind_addr;
	char *ciphers;    /* the `ciphers` option, or NULL */
	char *ssh_config; /* NULL: user's and system's; "none"; or one file */
	uint16_t port;    /* 0: ssh_config's Port, else 22 */
	uint64_t connect_timeout_ms, ka_interval_ms;
	uint32_t ka_count;
	uint32_t window; /* relay channels' receive window (the `window` option) */
	bool use_agent;

	/* connecting */
	int phase;
	rdhpf_done_fn cdone;
	void *carg;
	struct rdhpf_timer *ctimer;
	char target[256]; /* host name after ssh_config's HostName */
	uint16_t tport;
	struct rdhpf_child *resolver;
	int res_fd;
	struct rdhpf_io *res_io;
	struct rsdk_buf resbuf;
	struct sockaddr_storage addr[LSH_MAX_ADDRS];
	socklen_t addrlen[LSH_MAX_ADDRS];
	int naddr, iaddr;
	char last_err[256];
	/* ssh-agent probe */
	int ag_fd;
	struct rdhpf_io *ag_io;
	struct rdhpf_timer *ag_timer;
	unsigned char ag_rx[9];
	size_t ag_rx_len, ag_tx_off;
	int ag_keys; /* keys the agent offered (-1: not usable) */
	char ag_note[160];

	/* the session */
	ssh_session s;
	ssh_event ev;
	struct ssh_callbacks_struct scb;
	struct ssh_counter_struct cnt_sock, cnt_raw;
	int fd;        /* ours; libssh has a dup of it */
	bool sock_err; /* the core's watch saw an error on it (and stopped) */
	struct rdhpf_io *io;
	unsigned io_ev;
	uint64_t rx_seen, last_rx_ms;
	uint64_t rx_serviced;      /* socket bytes in when lsh_service last looked at opens */
	struct lsh_chan ka;        /* the keepalive's session channel */
	bool ka_req;               /* its env request is out */
	struct rsdk_keepalive kal; /* the SDK's driver (fallback: no channel, any byte counts) */

	/* channels */
	struct lsh_chan *opening;
	struct lsh_chan *ready, *ready_tail;
	struct lsh_chan *throttled;
	struct lsh_fwd *fwds;
	struct rdhpf_timer *wait_timer;
	struct lsh_stream *streams;
	struct rsdk_pending pend;   /* results known at once, delivered from the loop */
	struct rsdk_pending health; /* health checks waiting for the server */
	struct rdhpf_timer *kick_t;
	struct rdhpf_timer *open_t; /* re-checks opens in flight */
	char *scratch;

	int depth;      /* our frames on the stack that use the session */
	bool destroyed; /* destroy() ran inside a callback: free at depth 0 */
};

/* plugin.c */
uint64_t lsh_now(struct lsh *ls);
int lsh_complete_later(struct lsh *ls, rdhpf_done_fn done, void *arg, int status,
                       const char *detail);
void lsh_really_destroy(struct lsh *ls);

/* sshconf.c */
int lsh_session_new(struct lsh *ls, char *err, size_t errlen);
const char *lsh_default_ciphers(void);
int lsh_check_ciphers(const char *list, char *err, size_t errlen);

/* dial.c */
int lsh_dial_start(struct lsh *ls, char *err, size_t errlen);
int lsh_tcp_check(struct lsh *ls);
void lsh_dial_stop(struct lsh *ls);

/* agent.c */
void lsh_agent_probe(struct lsh *ls);
void lsh_agent_stop(struct lsh *ls);

/* hostkey.c */
int lsh_hostkey_verify(struct lsh *ls, char *detail, size_t dlen);

/* connect.c */
void lsh_conn_step(struct lsh *ls);
void lsh_connect_finish(struct lsh *ls, int status, const char *detail);
void lsh_agent_done(struct lsh *ls);
void lsh_conn_sock_failed(struct lsh *ls);

/* session.c */
enum { TD_DISCONNECT = 0, TD_LOST, TD_FAILED };
void lsh_sess_on_io(void *arg, int fd, unsigned rev);
void lsh_sess_update_io(struct lsh *ls);
void lsh_became_ready(struct lsh *ls);
void lsh_teardown(struct lsh *ls, int why);
void lsh_session_dead(struct lsh *ls, int status, const char *detail);
void lsh_service(struct lsh *ls);
void lsh_kick(struct lsh *ls);
void lsh_kick_if_needed(struct lsh *ls);
bool lsh_out_blocked(struct lsh *ls);
void lsh_note_rx(struct lsh *ls);
void lsh_sock_error(struct lsh *ls, char *out, size_t outlen);
bool lsh_enter(struct lsh *ls);
void lsh_leave(struct lsh *ls);

/* live.c */
void lsh_ka_start(struct lsh *ls);
void lsh_ka_stop(struct lsh *ls);
void lsh_ka_step(struct lsh *ls);
void lsh_ka_service(struct lsh *ls);
void lsh_ka_probe_now(struct lsh *ls);

/* chan.c */
void lsh_chan_ready(struct lsh_chan *c);
struct lsh_chan *lsh_ready_pop(struct lsh *ls);
void lsh_ready_remove(struct lsh_chan *c);
void lsh_throttle(struct lsh_chan *c, bool out);
void lsh_throttle_drain(struct lsh_chan *c);
void lsh_wake_drained(struct lsh *ls);
void lsh_unthrottle_all(struct lsh *ls, bool io_event);
void lsh_opening_add(struct lsh_chan *c);
void lsh_opening_remove(struct lsh_chan *c);
int lsh_chan_new(struct lsh_chan *c);
void lsh_chan_release(struct lsh_chan *c);
void lsh_drive_opens(struct lsh *ls);
const char *lsh_open_hint(struct lsh *ls, int kind, const char *err);

/* forward.c */
struct lsh_fwd *lsh_fwd_find(struct lsh *ls, const struct rdhpf_forward *f);
int lsh_fwd_add(struct lsh *ls, const struct rdhpf_forward *f, char *err, size_t errlen);
void lsh_fwd_free(struct lsh *ls, struct lsh_fwd *fw);
void lsh_wake_waiters(struct lsh *ls);
void lsh_fwd_open_waiting(struct lsh_fwd *fw);
void lsh_wait_timer_arm(struct lsh *ls);

/* relay.c */
void lsh_relay_new(struct lsh_fwd *fw, int cfd, uint16_t peer_port);
void lsh_relay_open(struct lsh_relay *r);
int lsh_relay_open_step(struct lsh_relay *r);
void lsh_relay_service(struct lsh_relay *r);
void lsh_relay_free(struct lsh_relay *r);
void lsh_relay_lost(struct lsh_relay *r);

/* stream.c */
int lsh_stream_open_step(struct lsh_stream *x);
void lsh_stream_service(struct lsh_stream *x);
void lsh_stream_free(struct lsh *ls, struct lsh_stream *x);
void lsh_streams_teardown(struct lsh *ls, bool tell);
int lsh_exec(struct lsh *ls, const char *const *argv, const struct rdhpf_stream_cbs *cbs, void *arg,
             void **stream);
int lsh_open_unix(struct lsh *ls, const char *path, const struct rdhpf_stream_cbs *cbs, void *arg,
                  void **stream);
int lsh_stream_write(struct lsh *ls, void *stream, const void *buf, size_t len);
void lsh_stream_close(struct lsh *ls, void *stream);

#endif
