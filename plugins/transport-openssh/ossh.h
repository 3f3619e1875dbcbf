/* transport-openssh: the objects every file of the plugin shares.
 *
 * Files, one concept each:
 *   plugin.c    info block, ops table, options, create/destroy, connect/health
 *   mux.c       the mux protocol: packets built and read in memory (pure)
 *   ctl.c       the persistent control connection: requests and replies
 *   master.c    the ssh master process: control path, spawn, stderr, exit
 *   liveness.c  the end-to-end liveness probe and its keepalive counting
 *   stream.c    exec and open_unix streams over mux sessions
 *   forward.c   forwards: the books, open/close through the master
 *   sock.c      Unix sockets and descriptors
 *   util.c      small helpers (answers, stderr tails, timers)
 *
 * From the plugin SDK (rdhpf/sdk.h): byte buffers (rsdk_buf) and the
 * books of callers waiting for an answer (rsdk_pending).
 *
 * The system ssh client as a ControlMaster, one TCP connection per host.
 * Like the docker CLI's ssh://, it honours the user's ssh_config, agent and
 * ProxyJump, because it is the user's ssh.
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
#ifndef OSSH_H
#define OSSH_H

#include <stddef.h>
#include <stdint.h>

#include "rdhpf/plugin.h"
#include "rdhpf/sdk.h"

#include "mux.h"

#define POLL_MS 20            /* while the master comes up */
#define TAIL_MAX 1024         /* stderr kept for error details */
#define LINE_MAX_ 512         /* longest stderr line logged */
#define SUN_PATH_PORTABLE 104 /* sizeof(sun_path) on macOS and the BSDs */
#define MASTER_TMP_SUFFIX 17  /* ssh binds "PATH.XXXXXXXXXXXXXXXX" first */
#define CTL_NAME_MAX 19       /* "/m-XXXXXXXX-NN.sock" */
#define CTL_CANDIDATES 16
#define TERM_GRACE_MS 1000 /* mux terminate → SIGTERM */
#define KILL_GRACE_MS 1000 /* SIGTERM → SIGKILL */
#define UNIX_LISTENERS_MAX 8
#define CMD_MAX 65536
#define STREAM_WBUF_MAX (16u * 1024u * 1024u)
/* The liveness probe's target: refused by any sshd at once (see above). */
#define LV_HOST "127.0.0.1"
#define LV_PORT 0u

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* macOS: SO_NOSIGPIPE is set on each socket instead */
#endif

/* A quoted path (known_hosts, identity_file) as ssh gets it. */
#define QPATH_MAX 1060

extern const struct rdhpf_host_api *H;

enum mstate {
	M_NONE = 0, /* no master */
	M_STARTING, /* spawned, waiting for its control socket to answer */
	M_UP,
	M_DYING, /* asked to exit; waiting for the child to be reaped */
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
	struct rsdk_op *op; /* the caller's done, if any (in o->pend) */
	struct fwd_key fk;
	struct ulisten *ul;
	struct mop *next;
};

struct ctl_conn {
	int fd;
	struct rdhpf_io *io;
	struct rsdk_buf r, w;
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

enum { S_EXEC = 1, S_UNIX };

struct ostream {
	struct oss *o;
	int kind;
	/* the opener's callbacks, copied (RDHPF_HAS-checked) at open */
	void (*on_data)(void *arg, const char *buf, size_t len);
	void (*on_close)(void *arg, int status, int exit_code, const char *detail);
	void *arg;
	/* exec: the session's control connection; unix: the data socket */
	int cfd;
	struct rdhpf_io *cio;
	struct rsdk_buf cr; /* exec: control bytes read */
	struct rsdk_buf w;  /* bytes for the remote (stdin / socket) */
	int in_fd;          /* exec: our end of stdin */
	struct rdhpf_io *in_io;
	int out_fd, err_fd;
	struct rdhpf_io *out_io, *err_io;
	int opened, exited, exit_code, ctl_eof, out_eof, err_eof;
	int status;
	char reason[400];
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
	char *user, *hostname, *identity, *known_hosts, *runtime_dir;
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
	unsigned warned; /* W_* limits already logged at warn for this master */
	char line[LINE_MAX_];
	size_t line_len;
	struct rdhpf_timer *poll_t, *deadline_t, *kill_t;
	int kill_stage;
	struct rsdk_op *cop; /* connect's caller, while it waits */
	int connect_queued;
	uint64_t connect_started_ms;
	struct ctl_conn cc;
	uint32_t next_rid;
	unsigned ul_seq;
	/* books and streams */
	struct fwd_entry *fw;
	struct ulisten *ul;
	struct ostream *streams;
	struct rsdk_pending pend; /* every caller's done waits here */
	/* end-to-end liveness (see the top of this file) */
	struct rdhpf_timer *lv_tick_t, *lv_dead_t;
	int lv_fd; /* the probe's control connection, -1 if none */
	struct rdhpf_io *lv_io;
	struct rsdk_buf lv_r;
	uint32_t lv_rid;
	struct rsdk_live live; /* the probes' answers (rdhpf/sdk.h) */
	int lv_off;            /* the master cannot do it: ServerAlive only */
	int lv_never;          /* option liveness = no */
};

/* sock.c: sockets and descriptors */
int fd_prepare(int fd, int nonblock);
int unix_connect(const char *path);
int pipe_pair(int *rd_end, int *wr_end, int ours_is_read);
int send_fd(int sock, int fd);
int sock_flush(int fd, struct rsdk_buf *b);
int unlink_if_stale(const char *path);

/* util.c: small helpers */
int complete_later(struct oss *o, rdhpf_done_fn done, void *arg, int status, const char *detail);
void op_answer(struct rsdk_op **op, int status, const char *detail);
void tail_add(char *tail, size_t *tail_len, const char *p, size_t k);
void tail_pick(const char *tail, const char *prefer, char *out, size_t len);
void stop_timer(struct rdhpf_timer **t);
void io_close(struct rdhpf_io **io, int *fd);

/* ctl.c: the persistent control connection */
void ctl_drop_ops(struct oss *o, int status, const char *detail, int call);
void ctl_forget_callers(struct oss *o);
void ctl_close(struct oss *o, int status, const char *detail, int call);
int ctl_open(struct oss *o);
int ctl_request(struct oss *o, int kind, uint32_t type, rdhpf_done_fn done, void *arg);
int ctl_request_fwd(struct oss *o, int kind, uint32_t type, const char *lhost, uint32_t lport,
                    const char *chost, uint32_t cport, const struct fwd_key *fk, struct ulisten *ul,
                    rdhpf_done_fn done, void *arg);

/* forward.c: forwards */
struct fwd_entry *fw_find(struct oss *o, const char *bind, uint16_t lport);
void fw_drop(struct oss *o, struct fwd_entry *e);
int fwkey_same_target(const struct fwd_key *a, const struct fwd_key *b);
int bind_probe(const char *addr, uint16_t port, char *why, size_t len);
int t_forward_add(void *state, const struct rdhpf_forward *f, rdhpf_done_fn done, void *arg);
int t_forward_remove(void *state, const struct rdhpf_forward *f, rdhpf_done_fn done, void *arg);

/* master.c: the master process */
void on_ready(struct oss *o, uint32_t type, uint32_t pid, const char *reason);
void master_stop(struct oss *o);
void deadline_cb(void *arg);
int cfg_quote_path(const char *in, char *out, size_t len);
int master_start(struct oss *o, char *err, size_t errlen);

/* liveness.c: end-to-end liveness */
void lv_stop(struct oss *o);
void lv_start(struct oss *o);

/* stream.c: streams: exec and open_unix */
void ul_drop_all(struct oss *o);
void ul_ready(struct oss *o, struct ulisten *ul, int status, const char *detail);
int t_exec(void *state, const char *const *argv, const struct rdhpf_stream_cbs *cbs, void *arg,
           void **stream);
int t_open_unix(void *state, const char *path, const struct rdhpf_stream_cbs *cbs, void *arg,
                void **stream);
int t_stream_write(void *state, void *stream, const void *buf, size_t len);
void t_stream_close(void *state, void *stream);
void close_streams(struct oss *o);

/* plugin.c: the link, create/destroy */
void link_broken(struct oss *o);

#endif
