/*
 * rdhpf plugin ABI — the only header a plugin includes.
 *
 * A plugin is a shared object exporting exactly one symbol, RDHPF_PLUGIN_ENTRY
 * ("rdhpf_plugin_init"), of type rdhpf_plugin_init_fn.  The core calls it once
 * after dlopen(), handing in its host API table, and gets back a pointer to a
 * const info block.  The entry function must do nothing but remember the host
 * table and return the info block: the core checks abi_major before it calls
 * anything else, and refuses a plugin whose major differs from its own.
 *
 * Versioning (the SQLite VFS rule): abi_major changes only when an existing
 * slot or struct member changes meaning or position.  abi_minor grows when a
 * slot or member is appended.  Slots are never removed or reordered.  Each
 * slot says which minor added it; the core checks the plugin's abi_minor
 * before calling a slot newer than 1.0, and a plugin checks host->abi_minor
 * before calling a host slot newer than 1.0.
 *
 * Threading and blocking: plugins never block and never start threads.  The
 * core owns the event loop (one thread); plugins register their fds, timers
 * and child processes with it through the host API, and every callback, in
 * both directions, runs on that thread.
 *
 * Callbacks of asynchronous operations (rdhpf_done_fn and friends): an
 * operation that returns RDHPF_OK calls its callback exactly once, and never
 * before the operation has returned (use a zero timer for an immediate
 * result).  An operation that returns an error never calls its callback.
 *
 * Errors: RDHPF_OK (0) or a negative RDHPF_ERR_*, plus, where a slot has one,
 * a human-readable detail string (which must never contain a secret).
 *
 * Memory: strings and arrays handed to a callback are valid only during that
 * call; copy what you keep.  Allocations are the allocator's to free unless a
 * slot says otherwise.
 */
#ifndef RDHPF_PLUGIN_H
#define RDHPF_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RDHPF_ABI_MAJOR 1
#define RDHPF_ABI_MINOR 1
#define RDHPF_PLUGIN_ENTRY "rdhpf_plugin_init"

#if defined(__GNUC__)
#define RDHPF_EXPORT __attribute__((visibility("default")))
#else
#define RDHPF_EXPORT
#endif
/* gcc checks the NULL that ends a key/value list; clang only allows the
 * attribute on functions, not on function pointers. */
#if defined(__GNUC__) && !defined(__clang__)
#define RDHPF_SENTINEL __attribute__((sentinel))
#else
#define RDHPF_SENTINEL
#endif

enum rdhpf_status {
	RDHPF_OK = 0,
	RDHPF_ERR_GENERIC = -1,
	RDHPF_ERR_NOMEM = -2,
	RDHPF_ERR_INVAL = -3,       /* bad argument or option value */
	RDHPF_ERR_ABI = -4,         /* version mismatch */
	RDHPF_ERR_IO = -5,          /* local I/O failed */
	RDHPF_ERR_TIMEOUT = -6,
	RDHPF_ERR_CONNECT = -7,     /* the remote host could not be reached */
	RDHPF_ERR_HOSTKEY = -8,     /* host key unknown or not matching */
	RDHPF_ERR_AUTH = -9,        /* authentication refused */
	RDHPF_ERR_CLOSED = -10,     /* link or stream went away */
	RDHPF_ERR_ADDRINUSE = -11,  /* local bind address:port is taken */
	RDHPF_ERR_REMOTE = -12,     /* remote command or engine failed */
	RDHPF_ERR_PROTO = -13,      /* malformed data from the remote */
	RDHPF_ERR_UNSUPPORTED = -14,/* capability not present */
	RDHPF_ERR_BUSY = -15,       /* try again later */
	RDHPF_ERR_CANCELLED = -16,  /* operation cancelled by the caller */
	RDHPF_ERR_NOTCONN = -17,    /* transport is not connected */
};

enum rdhpf_log_level {
	RDHPF_LOG_ERROR = 0,
	RDHPF_LOG_WARN = 1,
	RDHPF_LOG_INFO = 2,
	RDHPF_LOG_DEBUG = 3,
	RDHPF_LOG_TRACE = 4,
};

enum rdhpf_plugin_kind {
	RDHPF_KIND_TRANSPORT = 1,
	RDHPF_KIND_RUNTIME = 2,
};

/* Opaque core objects.  A ctx is one plugin instance's handle on the core
 * (one per host and plugin); it tags logs and metrics with host and plugin
 * and owns every io, timer and child registered through it. */
struct rdhpf_ctx;
struct rdhpf_io;
struct rdhpf_timer;
struct rdhpf_child;
struct rdhpf_stream;

struct rdhpf_kv {
	const char *key;
	const char *value;
};

/* ---- callbacks ------------------------------------------------------- */

#define RDHPF_IO_READ 0x1u
#define RDHPF_IO_WRITE 0x2u
#define RDHPF_IO_ERROR 0x4u /* only in revents: poll error or hang-up */

typedef void (*rdhpf_io_fn)(void *arg, int fd, unsigned revents);
typedef void (*rdhpf_timer_fn)(void *arg);
/* exit_status is the child's exit code, or -1 when term_signal is set. */
typedef void (*rdhpf_child_exit_fn)(void *arg, int exit_status, int term_signal);
typedef void (*rdhpf_done_fn)(void *arg, int status, const char *detail);

/* A byte stream from the remote (a command's stdout, or a remote Unix
 * socket).  on_data may be called any number of times; on_close exactly once
 * when the stream ends by itself (EOF, command exit, link loss), with
 * status RDHPF_OK or an error, the command's exit code (-1 if none) and a
 * detail (for commands: the tail of stderr, at most 1 KiB, or NULL).  After
 * on_close, or after the owner closed the stream, no callback follows. */
struct rdhpf_stream_cbs {
	void (*on_data)(void *arg, const char *buf, size_t len);
	void (*on_close)(void *arg, int status, int exit_code, const char *detail);
};

/* ---- parameters a plugin instance is created with --------------------- */

struct rdhpf_host_params {
	uint32_t struct_size;      /* sizeof as the core knows it */
	const char *host_name;     /* the config section's name */
	const char *url;           /* ssh://[user@]host[:port] */
	const char *user;          /* NULL: the transport's default */
	const char *hostname;      /* host name or address, IPv6 without [] */
	uint16_t port;             /* 0: the transport's default (22) */
	const char *identity_file; /* NULL: agent / the user's defaults */
	const char *known_hosts;   /* NULL: the user's known_hosts */
	const char *bind_address;  /* local address forwards listen on */
	uint64_t connect_timeout_ms;
	uint64_t keepalive_interval_ms;
	uint32_t keepalive_count;
	uint64_t health_interval_ms;
	const char *runtime_dir;   /* private 0700 directory for sockets */
	const struct rdhpf_kv *options; /* plugin-specific keys of the host */
	size_t n_options;
};

/* ---- the host API: what the core offers every plugin ------------------ */

struct rdhpf_spawn_opts {
	const char *const *argv; /* argv[0] is searched in PATH */
	/* Each non-NULL pointer receives the parent's end of a new pipe to
	 * that stdio stream of the child: non-blocking, close-on-exec, owned
	 * by the caller (close it after io_stop).  NULL: /dev/null. */
	int *stdin_fd;
	int *stdout_fd;
	int *stderr_fd;
};

struct rdhpf_host_api {
	uint32_t abi_major;
	uint32_t abi_minor;
	uint32_t struct_size;

	/* -- valid for ABI 1.0 -- */

	/* Log a message with key/value string pairs, ended by NULL:
	 *   host->log(ctx, RDHPF_LOG_WARN, "stream ended", "err", d, NULL);
	 * The core adds host= and plugin=, redacts secret keys, and collapses
	 * repeats.  ctx may be NULL (global). */
	void (*log)(struct rdhpf_ctx *ctx, int level, const char *msg, ...) RDHPF_SENTINEL;

	/* Monotonic milliseconds, and wall-clock nanoseconds since the epoch
	 * (for comparing with remote event times). */
	uint64_t (*now_ms)(struct rdhpf_ctx *ctx);
	int64_t (*wall_ns)(struct rdhpf_ctx *ctx);

	/* Watch fd for events (RDHPF_IO_*).  The fd stays the caller's: stop
	 * the watch before closing it.  io_stop frees the handle; it is safe
	 * inside the io's own callback.  Returns NULL on failure. */
	struct rdhpf_io *(*io_start)(struct rdhpf_ctx *ctx, int fd, unsigned events,
	                             rdhpf_io_fn cb, void *arg);
	int (*io_update)(struct rdhpf_io *io, unsigned events);
	void (*io_stop)(struct rdhpf_io *io);

	/* One-shot (repeat_ms 0) or repeating timer.  timer_stop frees the
	 * handle, also from inside its own callback; a one-shot timer must
	 * still be stopped after it fired. */
	struct rdhpf_timer *(*timer_start)(struct rdhpf_ctx *ctx, uint64_t after_ms,
	                                   uint64_t repeat_ms, rdhpf_timer_fn cb, void *arg);
	void (*timer_stop)(struct rdhpf_timer *t);

	/* Start a local child process (no shell).  cb is called once when it
	 * exits; the core reaps it and frees the handle after cb returns.
	 * child_detach: the caller no longer wants cb (the handle is gone at
	 * once); the core still reaps it, and SIGKILLs it at shutdown.  A ctx
	 * destroyed with live children has them SIGKILLed and reaped.
	 * Returns NULL and fills err on failure. */
	struct rdhpf_child *(*spawn)(struct rdhpf_ctx *ctx, const struct rdhpf_spawn_opts *o,
	                             rdhpf_child_exit_fn cb, void *arg, char *err, size_t errlen);
	int (*child_kill)(struct rdhpf_child *c, int sig);
	int (*child_pid)(struct rdhpf_child *c);
	void (*child_detach)(struct rdhpf_child *c);

	/* Metrics, labelled by the core with host, plugin and kind.  name is a
	 * Prometheus metric name without the rdhpf_ prefix. */
	void (*counter_add)(struct rdhpf_ctx *ctx, const char *name, uint64_t delta);
	void (*gauge_set)(struct rdhpf_ctx *ctx, const char *name, double value);
	void (*observe)(struct rdhpf_ctx *ctx, const char *name, double seconds);

	/* A plugin-specific option of this host (declared in info->options),
	 * or NULL when not set.  Valid for the ctx's lifetime. */
	const char *(*option)(struct rdhpf_ctx *ctx, const char *key);

	/* The transport tells the core its link is gone (master died, session
	 * dead, keepalive timeout).  The core stops the runtime, backs off and
	 * calls connect() again; it never calls this slot's caller back from
	 * inside it. */
	void (*report_down)(struct rdhpf_ctx *ctx, int status, const char *detail);

	/* For runtimes: byte streams to the remote, served by this host's
	 * transport.  argv is passed as separate words; the transport quotes
	 * each for the remote shell, so no remote string is ever parsed by a
	 * shell.  stream_close may be called from inside the stream's own
	 * callbacks; no callback follows it.  stream_open_unix returns
	 * RDHPF_ERR_UNSUPPORTED when the transport cannot. */
	int (*stream_exec)(struct rdhpf_ctx *ctx, const char *const *argv,
	                   const struct rdhpf_stream_cbs *cbs, void *arg,
	                   struct rdhpf_stream **out);
	int (*stream_open_unix)(struct rdhpf_ctx *ctx, const char *path,
	                        const struct rdhpf_stream_cbs *cbs, void *arg,
	                        struct rdhpf_stream **out);
	int (*stream_write)(struct rdhpf_stream *s, const void *buf, size_t len);
	void (*stream_close)(struct rdhpf_stream *s);

	/* Quote argv for a POSIX shell as one command line ('…' per word).
	 * Returns a malloc'd string the caller frees with free(), or NULL. */
	char *(*shell_join)(const char *const *argv);

	/* -- valid for ABI 1.1 (check abi_minor >= 1 before calling) -- */

	/* For runtimes: the event stream goes on, but an event was lost (a
	 * line over the length bound, a full queue).  The core lists the
	 * containers again at once, keeping the stream, and applies the events
	 * that race that list after it, as at a sync.  Never calls back from
	 * inside; requests while a list runs are served by one more list. */
	void (*resync)(struct rdhpf_ctx *ctx, const char *reason);
};

/* ---- transports -------------------------------------------------------- */

/* Transport capability bits (info->caps). */
#define RDHPF_TCAP_EXEC (1u << 0)          /* exec() runs remote commands */
#define RDHPF_TCAP_UNIX_STREAM (1u << 1)   /* open_unix() works */
#define RDHPF_TCAP_FORWARD_STATS (1u << 2) /* forward_stats() knows bytes */
#define RDHPF_TCAP_HOLD_LISTENERS (1u << 3)/* listeners stay bound while down */

struct rdhpf_forward {
	const char *bind_address; /* local address, e.g. "127.0.0.1" */
	uint16_t local_port;
	const char *remote_host;  /* as seen from the remote, e.g. "127.0.0.1" */
	uint16_t remote_port;
};

struct rdhpf_forward_stats {
	uint64_t connections;  /* accepted since added */
	uint64_t active;       /* open now */
	uint64_t bytes_in;     /* remote → local */
	uint64_t bytes_out;    /* local → remote */
};

/* In every slot, `state` is what create() returned. */
struct rdhpf_transport_ops {
	/* -- valid for ABI 1.0 -- */

	/* Mandatory.  Make an instance for one host; no I/O yet.  Unknown or
	 * bad option values fail here with RDHPF_ERR_INVAL and a message in
	 * err naming the key.  On error *state is not set. */
	int (*create)(struct rdhpf_ctx *ctx, const struct rdhpf_host_params *p,
	              void **state, char *err, size_t errlen);

	/* Mandatory.  Free everything; implies disconnect.  May be called in
	 * any state, also after a failed connect. */
	void (*destroy)(void *state);

	/* Mandatory, asynchronous.  Establish the link.  May be called again
	 * after it failed or after report_down; forwards added before stay in
	 * the plugin's books, and the core adds each again (forward_add is
	 * idempotent) once connect succeeded. */
	int (*connect)(void *state, rdhpf_done_fn done, void *arg);

	/* Mandatory, synchronous, never fails.  Drop the link and close every
	 * stream (without their on_close).  Pending callbacks are never called
	 * after it.  Forwards stay in the plugin's books: one with
	 * RDHPF_TCAP_HOLD_LISTENERS keeps its listeners bound.  connect may
	 * follow; destroy removes everything. */
	void (*disconnect)(void *state);

	/* Mandatory, asynchronous.  Is the link alive right now? */
	int (*health_check)(void *state, rdhpf_done_fn done, void *arg);

	/* Mandatory, asynchronous, idempotent: adding a forward that exists
	 * succeeds without change; removing one that does not exist succeeds.
	 * A taken local port fails with RDHPF_ERR_ADDRINUSE.  When not
	 * connected, add fails with RDHPF_ERR_NOTCONN unless the plugin has
	 * RDHPF_TCAP_HOLD_LISTENERS (then it binds now and serves later). */
	int (*forward_add)(void *state, const struct rdhpf_forward *f,
	                   rdhpf_done_fn done, void *arg);
	int (*forward_remove)(void *state, const struct rdhpf_forward *f,
	                      rdhpf_done_fn done, void *arg);

	/* Mandatory (RDHPF_TCAP_EXEC).  Run argv on the remote; see
	 * rdhpf_stream_cbs.  *stream is the plugin's handle, valid until
	 * on_close or stream_close.  Never opens a second connection to the
	 * host: fails with RDHPF_ERR_NOTCONN when the link is down. */
	int (*exec)(void *state, const char *const *argv, const struct rdhpf_stream_cbs *cbs,
	            void *arg, void **stream);

	/* Mandatory.  Queue bytes to a stream's stdin / socket.  Never
	 * blocks; the plugin buffers. */
	int (*stream_write)(void *state, void *stream, const void *buf, size_t len);

	/* Mandatory.  Close a stream; no callback follows. */
	void (*stream_close)(void *state, void *stream);

	/* Optional (RDHPF_TCAP_UNIX_STREAM): a stream to a Unix socket on the
	 * remote host, e.g. /var/run/docker.sock.  NULL: unsupported. */
	int (*open_unix)(void *state, const char *path, const struct rdhpf_stream_cbs *cbs,
	                 void *arg, void **stream);

	/* Optional (RDHPF_TCAP_FORWARD_STATS), synchronous. */
	int (*forward_stats)(void *state, const struct rdhpf_forward *f,
	                     struct rdhpf_forward_stats *out);
};

/* ---- runtimes ---------------------------------------------------------- */

#define RDHPF_RCAP_EVENTS (1u << 0) /* watch() streams events */

enum rdhpf_proto {
	RDHPF_PROTO_TCP = 1,
	RDHPF_PROTO_UDP = 2,
	RDHPF_PROTO_SCTP = 3,
};

struct rdhpf_port {
	const char *host_ip;     /* as published on the remote: "0.0.0.0", "::", "127.0.0.1", "" */
	uint16_t host_port;      /* 1..65535, validated by the runtime */
	uint16_t container_port;
	int proto;               /* enum rdhpf_proto */
};

struct rdhpf_container {
	const char *id;          /* full id */
	const char *name;        /* without a leading '/' */
	const struct rdhpf_port *ports;
	size_t n_ports;
};

enum rdhpf_event_type {
	RDHPF_EV_START = 1, /* container runs; container->ports is complete */
	RDHPF_EV_STOP = 2,  /* container stopped, died or was destroyed; ports unset */
};

struct rdhpf_event {
	int type;
	int64_t time_ns;   /* remote time of the event, 0 if unknown */
	const struct rdhpf_container *container;
};

struct rdhpf_watch_cbs {
	void (*on_event)(void *arg, const struct rdhpf_event *ev);
	/* The event stream ended (engine restart, link loss, bad stream).
	 * Called once, unless stop() came first.  The core resyncs. */
	void (*on_end)(void *arg, int status, const char *detail);
};

typedef void (*rdhpf_list_fn)(void *arg, int status, const char *detail,
                              const struct rdhpf_container *containers, size_t n);

struct rdhpf_runtime_ops {
	/* -- valid for ABI 1.0 -- */

	/* Mandatory.  As for transports.  The runtime reaches the remote only
	 * through host->stream_exec / stream_open_unix with this ctx. */
	int (*create)(struct rdhpf_ctx *ctx, const struct rdhpf_host_params *p,
	              void **state, char *err, size_t errlen);

	/* Mandatory.  Implies stop().  Any state. */
	void (*destroy)(void *state);

	/* Mandatory (RDHPF_RCAP_EVENTS), asynchronous.  Start the event
	 * stream.  Returning RDHPF_OK means events may arrive from now on;
	 * the core calls list() right after (list-then-watch) and applies
	 * events that arrive meanwhile after the list.  Malformed remote
	 * data is logged with host and container and skipped; it never ends
	 * the stream by itself. */
	int (*watch)(void *state, const struct rdhpf_watch_cbs *cbs, void *arg);

	/* Mandatory, asynchronous.  Every running container with its
	 * published ports (TCP, UDP, SCTP: the core filters). */
	int (*list)(void *state, rdhpf_list_fn done, void *arg);

	/* Mandatory, synchronous.  Stop watching, cancel a pending list, close
	 * every stream.  No callback follows.  watch/list may follow. */
	void (*stop)(void *state);
};

/* ---- the plugin's info block ------------------------------------------ */

struct rdhpf_option_desc {
	const char *name;  /* NULL ends the array */
	const char *help;
};

struct rdhpf_plugin_info {
	uint32_t abi_major;  /* RDHPF_ABI_MAJOR the plugin was built with */
	uint32_t abi_minor;  /* RDHPF_ABI_MINOR the plugin was built with */
	uint32_t struct_size;/* sizeof(struct rdhpf_plugin_info) at build */
	int kind;            /* enum rdhpf_plugin_kind */
	const char *name;    /* [a-z0-9-]+, what `transport =` / `runtime =` name */
	const char *version;
	const char *description;
	uint64_t caps;       /* RDHPF_TCAP_* or RDHPF_RCAP_* */
	const struct rdhpf_option_desc *options; /* per-host keys it accepts */
	union {
		const struct rdhpf_transport_ops *transport;
		const struct rdhpf_runtime_ops *runtime;
	} ops;
};

typedef const struct rdhpf_plugin_info *(*rdhpf_plugin_init_fn)(const struct rdhpf_host_api *host);

/* The entry point every plugin defines (declared here so that its
 * signature is checked). */
RDHPF_EXPORT const struct rdhpf_plugin_info *rdhpf_plugin_init(const struct rdhpf_host_api *host);

/* Declare the entry point in a plugin:
 *   RDHPF_PLUGIN_DECLARE { g_host = host; return &info; }  */
#define RDHPF_PLUGIN_DECLARE \
	RDHPF_EXPORT const struct rdhpf_plugin_info *rdhpf_plugin_init( \
	    const struct rdhpf_host_api *host)

#ifdef __cplusplus
}
#endif

#endif /* RDHPF_PLUGIN_H */
