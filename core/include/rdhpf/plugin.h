/*
 * rdhpf plugin ABI 2.0 — the one header every plugin includes.
 *
 * A plugin is a shared object exporting exactly one symbol, RDHPF_PLUGIN_ENTRY
 * ("rdhpf_plugin_init"), of type rdhpf_plugin_init_fn.  The core calls it once
 * after dlopen(), handing in its host API table, and gets back a pointer to a
 * const info block.  The entry function must do nothing but remember the host
 * table and return the info block: the core checks abi_major before it reads
 * anything else, and refuses a plugin whose major differs from its own with
 * an error naming both versions.
 *
 * ---- How the ABI grows (the SQLite VFS rule, with sizes) -----------------
 *
 * abi_major changes only when an existing slot or member changes meaning or
 * position.  abi_minor grows when a slot or member is appended at the end of
 * a struct.  Nothing is ever removed or reordered within a major.
 *
 * Every struct that crosses the boundary, in either direction, begins with
 * `uint32_t struct_size`: the sizeof() the writer was built with.  A reader
 * uses a member only when it lies inside struct_size (RDHPF_HAS()); a member
 * outside is "absent" and means its documented default.  So a newer core
 * reads an older plugin's tables without reading past their end, and a
 * newer plugin checks the core's tables the same way.  The one exception is
 * the data a runtime reports (containers): it is never a struct at all, but
 * an opaque core object built through host API calls, so it can gain fields
 * (image, labels, …) forever.  No array of ABI structs crosses the boundary.
 *
 * Writers set struct_size = sizeof(the struct).  RDHPF_INIT(type) does it:
 *     struct rdhpf_stream_cbs cbs = { RDHPF_INIT(rdhpf_stream_cbs), .on_data = … };
 *
 * ---- Threading, blocking, callbacks --------------------------------------
 *
 * Plugins never block and never start threads.  The core owns the event loop
 * (one thread); plugins register fds, timers and child processes through the
 * host API, and every callback in both directions runs on that thread.
 *
 * Asynchronous operations (a slot or host call taking a done/list callback):
 * one that returns RDHPF_OK calls its callback exactly once; one that
 * returns an error never calls it.  The callback MAY be called before the
 * operation returned (synchronously): the core's wrapper around every slot
 * defers such a call to the next loop turn, so the core never sees it
 * re-entrantly.  (The one exception: an on_event made inside watch() is
 * taken as it comes: the core only buffers events until on_established.)
 * A plugin calling a host operation gets the same guarantee from the core:
 * host callbacks never run inside the call that started them.  A callback
 * the core would see twice is a plugin bug: logged once with the slot's
 * name and ignored.
 *
 * Re-entrancy (what the core may do inside a callback a plugin calls):
 *   - inside a runtime's watch callbacks (on_established, on_event, on_end)
 *     and inside a list callback, the core may call the runtime's stop() and
 *     even destroy() before the callback returns.  A runtime that touches
 *     its state after calling the core must check it is still alive (the
 *     SDK's rsdk_guard does this).
 *   - inside a transport's done callbacks the core may call any transport
 *     slot, including disconnect(); never destroy().
 *   - inside a stream's on_data/on_close the runtime may call stream_close
 *     on that stream; no callback of it follows.
 *   - the core never calls a plugin back from inside a host API call,
 *     except stream_close/io_stop/timer_stop freeing what they were given.
 *
 * Errors: RDHPF_OK (0) or a negative RDHPF_ERR_*, plus, where a slot has one,
 * a human-readable detail (never a secret: the core logs it).
 *
 * Memory: strings and objects handed to a callback are valid only during
 * that call; copy what you keep.  What a slot's caller allocates, it frees,
 * unless the slot says it takes it.
 *
 * Logging: the core adds host= and plugin= to each line, redacts keys that
 * look secret (password, passphrase, token, secret, key-material), and
 * collapses repeats: a line equal to the previous one of this ctx in
 * (level, msg, value of "err") within 60 s is counted, not printed.
 *
 * Remote commands: a non-zero exit of a remote command is NOT a stream
 * error: on_close gets status RDHPF_OK and the exit code; status is an error
 * only when the stream itself failed (link lost, command not started).
 */
#ifndef RDHPF_PLUGIN_H
#define RDHPF_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RDHPF_ABI_MAJOR 2
#define RDHPF_ABI_MINOR 0
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

/* Initialise struct_size in a designated initializer. */
#define RDHPF_INIT(type) .struct_size = (uint32_t)sizeof(struct type)
/* Is `member` inside what the writer of *p knew (p non-NULL)? */
#define RDHPF_HAS(p, member)                                                                       \
	((size_t)(p)->struct_size >= offsetof(__typeof__(*(p)), member) + sizeof((p)->member))
/* A function slot that is inside struct_size and set. */
#define RDHPF_SLOT(p, member) (RDHPF_HAS(p, member) ? (p)->member : NULL)

enum rdhpf_status {
	RDHPF_OK = 0,
	RDHPF_ERR_GENERIC = -1,
	RDHPF_ERR_NOMEM = -2,
	RDHPF_ERR_INVAL = -3, /* bad argument or option value */
	RDHPF_ERR_ABI = -4,   /* version mismatch */
	RDHPF_ERR_IO = -5,    /* local I/O failed */
	RDHPF_ERR_TIMEOUT = -6,
	RDHPF_ERR_CONNECT = -7,      /* the remote host could not be reached */
	RDHPF_ERR_HOSTKEY = -8,      /* host key unknown or not matching */
	RDHPF_ERR_AUTH = -9,         /* authentication refused */
	RDHPF_ERR_CLOSED = -10,      /* link or stream went away */
	RDHPF_ERR_ADDRINUSE = -11,   /* local bind address:port is taken */
	RDHPF_ERR_REMOTE = -12,      /* remote command or engine failed */
	RDHPF_ERR_PROTO = -13,       /* malformed data from the remote */
	RDHPF_ERR_UNSUPPORTED = -14, /* capability not present */
	RDHPF_ERR_BUSY = -15,        /* try again later */
	RDHPF_ERR_CANCELLED = -16,   /* operation cancelled by the caller */
	RDHPF_ERR_NOTCONN = -17,     /* transport is not connected */
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
 * and owns every io, timer, child, stream and container made through it:
 * destroying the instance frees what is left (and the conformance suite
 * names each such leak). */
struct rdhpf_ctx;
struct rdhpf_io;
struct rdhpf_timer;
struct rdhpf_child;
struct rdhpf_stream;
struct rdhpf_container;

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
 * socket).  Written by whoever opens the stream (a runtime through the host
 * API; the core when it calls a transport's exec/open_unix).
 * on_data may be called any number of times; on_close exactly once when the
 * stream ends by itself (EOF, command exit, link loss), with status
 * RDHPF_OK (ended normally, whatever the exit code) or an error, the
 * command's exit code (-1 if none) and a detail (for commands: the tail of
 * stderr, at most 1 KiB, or NULL).  After on_close, or after the owner
 * closed the stream, no callback follows. */
struct rdhpf_stream_cbs {
	uint32_t struct_size;
	void (*on_data)(void *arg, const char *buf, size_t len);
	void (*on_close)(void *arg, int status, int exit_code, const char *detail);
};

/* ---- parameters a plugin instance is created with (core → plugin) ----- */

struct rdhpf_host_params {
	uint32_t struct_size;      /* sizeof as the core knows it */
	const char *host_name;     /* the config section's name */
	const char *url;           /* ssh://[user@]host[:port] */
	const char *user;          /* NULL: the transport's default */
	const char *hostname;      /* host name or address, IPv6 without [] */
	uint16_t port;             /* 0: the transport's default (22) */
	const char *identity_file; /* NULL: agent / the user's defaults */
	const char *known_hosts;   /* NULL: the user's known_hosts */
	const char *bind_address;  /* first local address forwards listen on */
	uint64_t connect_timeout_ms;
	uint64_t keepalive_interval_ms;
	uint32_t keepalive_count;
	uint64_t health_interval_ms;
	uint64_t poll_interval_ms; /* runtimes without watch are listed this often */
	const char *runtime_dir;   /* private 0700 directory for sockets */
	                           /* Plugin options: host->option(ctx, key). */
};

/* ---- the host API: what the core offers every plugin ------------------ */

struct rdhpf_spawn_opts {
	uint32_t struct_size;
	const char *const *argv; /* argv[0] is searched in PATH */
	/* Each non-NULL pointer receives the parent's end of a new pipe to
	 * that stdio stream of the child: non-blocking, close-on-exec, owned
	 * by the caller (close it after io_stop).  NULL: /dev/null. */
	int *stdin_fd;
	int *stdout_fd;
	int *stderr_fd;
};

/* One published port, as a runtime reports it (plugin → core; copied). */
struct rdhpf_port {
	uint32_t struct_size;
	const char *host_ip;     /* as published on the remote: "0.0.0.0", "::", "127.0.0.1", "" */
	uint16_t host_port;      /* 1..65535 */
	uint16_t container_port; /* 0 when not known */
	int proto;               /* enum rdhpf_proto */
};

enum rdhpf_proto {
	RDHPF_PROTO_TCP = 1,
	RDHPF_PROTO_UDP = 2,
	RDHPF_PROTO_SCTP = 3,
};

struct rdhpf_host_api {
	uint32_t abi_major;
	uint32_t abi_minor;
	uint32_t struct_size;

	/* -- ABI 2.0 -- */

	/* Log a message with key/value string pairs, ended by NULL:
	 *   host->log(ctx, RDHPF_LOG_WARN, "stream ended", "err", d, NULL);
	 * ctx may be NULL (global). */
	void (*log)(struct rdhpf_ctx *ctx, int level, const char *msg, ...) RDHPF_SENTINEL;

	/* Monotonic milliseconds, and wall-clock nanoseconds since the epoch
	 * (for comparing with remote event times). */
	uint64_t (*now_ms)(struct rdhpf_ctx *ctx);
	int64_t (*wall_ns)(struct rdhpf_ctx *ctx);

	/* Watch fd for events (RDHPF_IO_*).  The fd stays the caller's: stop
	 * the watch before closing it.  io_stop frees the handle; it is safe
	 * inside the io's own callback.  Returns NULL on failure.  A callback
	 * with RDHPF_IO_ERROR set (a poll error, e.g. a reset connection) is
	 * the last: the watch is stopped then, and only io_update starts it
	 * again, so act on the error in that callback. */
	struct rdhpf_io *(*io_start)(struct rdhpf_ctx *ctx, int fd, unsigned events, rdhpf_io_fn cb,
	                             void *arg);
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
	 * calls connect() again, never from inside this call. */
	void (*report_down)(struct rdhpf_ctx *ctx, int status, const char *detail);

	/* For runtimes: byte streams to the remote, served by this host's
	 * transport.  argv is passed as separate words; the transport quotes
	 * each for the remote shell, so no remote string is ever parsed by a
	 * shell.  stream_close may be called from inside the stream's own
	 * callbacks; no callback follows it.  stream_open_unix returns
	 * RDHPF_ERR_UNSUPPORTED when the transport cannot.  cbs is copied. */
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

	/* For runtimes: the event stream goes on, but an event was lost (a
	 * line over the length bound, a full queue).  The core lists the
	 * containers again at once, keeping the stream, and applies the events
	 * that race that list after it, as at a sync.  Never calls back from
	 * inside; requests while a list runs are served by one more list. */
	void (*resync)(struct rdhpf_ctx *ctx, const char *reason);

	/* Containers, for runtimes: an opaque object the core owns, built
	 * field by field.  container_new copies id (the engine's full id;
	 * [0-9A-Za-z_.-]{1,128}) and name (without a leading '/'); NULL on
	 * ENOMEM or a bad id.  The setters copy; they return RDHPF_ERR_INVAL
	 * naming nothing for a bad value (the runtime logs it with host and
	 * container) and RDHPF_ERR_NOMEM.  A container is handed to the core
	 * by a list or event callback, which only borrows it: free it after
	 * with container_free.  Ports are filtered by the core (UDP, SCTP are
	 * reported as skipped), so report every published port. */
	struct rdhpf_container *(*container_new)(struct rdhpf_ctx *ctx, const char *id,
	                                         const char *name);
	int (*container_set_image)(struct rdhpf_container *c, const char *image);
	int (*container_add_label)(struct rdhpf_container *c, const char *key, const char *value);
	int (*container_add_port)(struct rdhpf_container *c, const struct rdhpf_port *p);
	void (*container_free)(struct rdhpf_container *c);
};

/* ---- transports -------------------------------------------------------- */

/* Transport capability bits (info->caps). */
#define RDHPF_TCAP_EXEC (1u << 0)           /* exec() runs remote commands */
#define RDHPF_TCAP_UNIX_STREAM (1u << 1)    /* open_unix() works */
#define RDHPF_TCAP_FORWARD_STATS (1u << 2)  /* forward_stats() knows bytes */
#define RDHPF_TCAP_HOLD_LISTENERS (1u << 3) /* listeners stay bound while down */

/* core → plugin; valid during the call (copy what you keep). */
struct rdhpf_forward {
	uint32_t struct_size;
	const char *bind_address; /* local address, e.g. "127.0.0.1" or "::1" */
	uint16_t local_port;
	const char *remote_host; /* as seen from the remote, e.g. "127.0.0.1" */
	uint16_t remote_port;
};

/* Filled by the plugin; the core sets struct_size, and the plugin writes
 * only the members inside it. */
struct rdhpf_forward_stats {
	uint32_t struct_size;
	uint64_t connections; /* accepted since added */
	uint64_t active;      /* open now */
	uint64_t bytes_in;    /* remote → local */
	uint64_t bytes_out;   /* local → remote */
};

/* In every slot, `state` is what create() returned.  The core calls each
 * slot through one wrapper (core/slots.c) that checks it is present. */
struct rdhpf_transport_ops {
	uint32_t struct_size;

	/* -- ABI 2.0 -- */

	/* Mandatory.  Make an instance for one host; no I/O yet.  Bad option
	 * values fail here with RDHPF_ERR_INVAL and a message in err naming
	 * the key (check-config uses validate_option instead).  On error
	 * *state is not set. */
	int (*create)(struct rdhpf_ctx *ctx, const struct rdhpf_host_params *p, void **state,
	              char *err, size_t errlen);

	/* Mandatory.  Free everything; implies disconnect.  May be called in
	 * any state, also after a failed connect, never inside a callback the
	 * plugin is running. */
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

	/* Mandatory, asynchronous.  Is the link alive right now?  It should
	 * need the remote to answer (end to end), not only a local process;
	 * the core runs it every health_interval and before each sync. */
	int (*health_check)(void *state, rdhpf_done_fn done, void *arg);

	/* Mandatory, asynchronous, idempotent: adding a forward that exists
	 * succeeds without change; removing one that does not exist succeeds.
	 * A taken local port fails with RDHPF_ERR_ADDRINUSE.  When not
	 * connected, add fails with RDHPF_ERR_NOTCONN unless the plugin has
	 * RDHPF_TCAP_HOLD_LISTENERS (then it binds now and serves later). */
	int (*forward_add)(void *state, const struct rdhpf_forward *f, rdhpf_done_fn done,
	                   void *arg);
	int (*forward_remove)(void *state, const struct rdhpf_forward *f, rdhpf_done_fn done,
	                      void *arg);

	/* Mandatory with RDHPF_TCAP_EXEC.  Run argv on the remote; see
	 * rdhpf_stream_cbs.  *stream is the plugin's handle, valid until
	 * on_close or stream_close.  Never opens a second connection to the
	 * host: fails with RDHPF_ERR_NOTCONN when the link is down. */
	int (*exec)(void *state, const char *const *argv, const struct rdhpf_stream_cbs *cbs,
	            void *arg, void **stream);

	/* Mandatory with EXEC or UNIX_STREAM.  Queue bytes to a stream's
	 * stdin / socket.  Never blocks; the plugin buffers. */
	int (*stream_write)(void *state, void *stream, const void *buf, size_t len);

	/* Mandatory with EXEC or UNIX_STREAM.  Close a stream; no callback
	 * follows. */
	void (*stream_close)(void *state, void *stream);

	/* Mandatory with RDHPF_TCAP_UNIX_STREAM: a stream to a Unix socket on
	 * the remote host, e.g. /var/run/docker.sock. */
	int (*open_unix)(void *state, const char *path, const struct rdhpf_stream_cbs *cbs,
	                 void *arg, void **stream);

	/* Mandatory with RDHPF_TCAP_FORWARD_STATS, synchronous. */
	int (*forward_stats)(void *state, const struct rdhpf_forward *f,
	                     struct rdhpf_forward_stats *out);
};

/* ---- runtimes ---------------------------------------------------------- */

/* watch() streams events.  Without it the runtime is poll-only: watch may
 * be NULL, and the core calls list() every poll_interval and applies the
 * difference. */
#define RDHPF_RCAP_EVENTS (1u << 0)

enum rdhpf_event_type {
	RDHPF_EV_START = 1, /* container runs; its ports are complete */
	RDHPF_EV_STOP = 2,  /* container stopped, died or was destroyed */
};

/* core → plugin: the core's side of a watch.  The plugin checks
 * RDHPF_HAS() before using a member newer than 2.0. */
struct rdhpf_watch_cbs {
	uint32_t struct_size;
	/* The stream is established: every event from now on will be
	 * delivered.  Call it once, after watch() returned OK, when the
	 * engine confirmed the subscription (an HTTP 200 for the events
	 * request; the first line of a reader that prints one; for a source
	 * with no such signal, after it started reading where events are
	 * written, e.g. a tail that has opened the file).  The core lists
	 * containers only after it and applies the events that race that
	 * list after it; until it, events are buffered.  If it does not come
	 * within connect_timeout the core ends the watch and resyncs. */
	void (*on_established)(void *arg);
	/* One event.  For STOP only the container's id (and name, when known)
	 * matter.  c is borrowed: free it after the call. */
	void (*on_event)(void *arg, int type, int64_t time_ns, struct rdhpf_container *c);
	/* The event stream ended (engine restart, link loss, bad stream).
	 * Called once, unless stop() came first.  The core resyncs.
	 * Malformed remote data must not end the stream: log it with host
	 * and container and skip it (or ask host->resync). */
	void (*on_end)(void *arg, int status, const char *detail);
};

/* The containers running now (status RDHPF_OK) or the failure.  cs[i] are
 * borrowed: free them after the call. */
typedef void (*rdhpf_list_fn)(void *arg, int status, const char *detail,
                              struct rdhpf_container *const *cs, size_t n);

struct rdhpf_runtime_ops {
	uint32_t struct_size;

	/* -- ABI 2.0 -- */

	/* Mandatory.  As for transports.  The runtime reaches the remote only
	 * through host->stream_exec / stream_open_unix with this ctx. */
	int (*create)(struct rdhpf_ctx *ctx, const struct rdhpf_host_params *p, void **state,
	              char *err, size_t errlen);

	/* Mandatory.  Implies stop().  Any state. */
	void (*destroy)(void *state);

	/* Mandatory with RDHPF_RCAP_EVENTS, else NULL.  Asynchronous start of
	 * the event stream; see rdhpf_watch_cbs (cbs stays valid until stop).
	 * The core calls list() after on_established. */
	int (*watch)(void *state, const struct rdhpf_watch_cbs *cbs, void *arg);

	/* Mandatory, asynchronous.  Every running container with its
	 * published ports.  At most one list runs at a time. */
	int (*list)(void *state, rdhpf_list_fn done, void *arg);

	/* Mandatory, synchronous.  Stop watching, cancel a pending list, close
	 * every stream.  No callback follows.  watch/list may follow.  May be
	 * called from inside the plugin's own watch and list callbacks. */
	void (*stop)(void *state);
};

/* ---- the plugin's info block ------------------------------------------ */

struct rdhpf_option_desc {
	uint32_t struct_size;
	const char *name; /* [a-z0-9_]+ */
	const char *help;
};

/* One entry of info->options:
 *   static const struct rdhpf_option_desc *const opts[] = {
 *       RDHPF_OPTION("ports", "remote ports to forward"), NULL };  */
#define RDHPF_OPTION(name_, help_)                                                                 \
	(&(const struct rdhpf_option_desc){RDHPF_INIT(rdhpf_option_desc), (name_), (help_)})

struct rdhpf_plugin_info {
	uint32_t abi_major;   /* RDHPF_ABI_MAJOR the plugin was built with */
	uint32_t abi_minor;   /* RDHPF_ABI_MINOR the plugin was built with */
	uint32_t struct_size; /* sizeof(struct rdhpf_plugin_info) at build */
	int kind;             /* enum rdhpf_plugin_kind */
	const char *name;     /* [a-z0-9-]+, what `transport =` / `runtime =` name */
	const char *version;
	const char *description;
	uint64_t caps; /* RDHPF_TCAP_* or RDHPF_RCAP_* */
	/* The per-host keys it accepts: a table of pointers ended by NULL
	 * (pointers, so that rdhpf_option_desc can grow). */
	const struct rdhpf_option_desc *const *options;
	/* Optional.  Check one option value without any I/O; `check-config`
	 * and the daemon call it for every key the host sets, and print a
	 * failure as FILE:LINE: [host] key: err.  Return RDHPF_OK or
	 * RDHPF_ERR_INVAL with err filled (no trailing newline). */
	int (*validate_option)(const char *key, const char *value, char *err, size_t errlen);
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
#define RDHPF_PLUGIN_DECLARE                                                                       \
	RDHPF_EXPORT const struct rdhpf_plugin_info *rdhpf_plugin_init(                            \
	    const struct rdhpf_host_api *host)

#ifdef __cplusplus
}
#endif

#endif /* RDHPF_PLUGIN_H */
