/*
 * rdhpf plugin SDK — the helpers every plugin would otherwise write again.
 *
 * A static library (librdhpf-plugin.a, `pkg-config --cflags --libs
 * rdhpf-plugin`) built on rdhpf/plugin.h only: it calls the core solely
 * through the host API table a plugin got in rdhpf_plugin_init, so it adds
 * no ABI of its own and a plugin links it in.  Nothing here blocks or
 * allocates behind the caller's back; every function that allocates
 * returns RDHPF_ERR_NOMEM (or NULL) on failure.  Prefix: rsdk_.
 *
 * JSON helpers (jansson) are in rdhpf/sdk-json.h.
 */
#ifndef RDHPF_SDK_H
#define RDHPF_SDK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rdhpf/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Log with key/value pairs, ended by NULL added by the macro. */
#define RSDK_LOG(H, ctx, level, ...) (H)->log((ctx), (level), __VA_ARGS__, NULL)

/* ---- strings ---------------------------------------------------------- */

/* strdup that accepts NULL (returns NULL then). */
char *rsdk_strdup(const char *s);
/* Copy at most outlen-1 bytes of s (len bytes, need not be NUL-ended),
 * replacing every byte that is not printable ASCII by '?': for putting
 * remote data into a log line. */
void rsdk_printable(char *out, size_t outlen, const char *s, size_t len);

/* ---- growable byte buffer --------------------------------------------- */

struct rsdk_buf {
	char *data; /* data[off .. len) is the content; always NUL-ended */
	size_t off;
	size_t len;
	size_t cap;
};

#define RSDK_BUF_INIT                                                                              \
	{                                                                                          \
		NULL, 0, 0, 0                                                                      \
	}
void rsdk_buf_init(struct rsdk_buf *b);
void rsdk_buf_free(struct rsdk_buf *b);
/* Empty it, keeping the allocation. */
void rsdk_buf_reset(struct rsdk_buf *b);
int rsdk_buf_append(struct rsdk_buf *b, const void *p, size_t n);
int rsdk_buf_printf(struct rsdk_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Drop n bytes from the front (n <= rsdk_buf_size). */
void rsdk_buf_consume(struct rsdk_buf *b, size_t n);
/* The content, NUL-ended ("" when empty), and its length. */
const char *rsdk_buf_str(const struct rsdk_buf *b);
size_t rsdk_buf_size(const struct rsdk_buf *b);

/* ---- pending operations: deferred completion, timeouts, cancel-all ----- */

/* The books of a plugin instance's asynchronous operations.  An op holds
 * the core's done/arg until the plugin finishes it (once), it times out
 * (done gets RDHPF_ERR_TIMEOUT and `what` as detail), or the instance
 * cancels every op (disconnect/stop: no callback, as the ABI requires). */
struct rsdk_op;
struct rsdk_pending {
	const struct rdhpf_host_api *H;
	struct rdhpf_ctx *ctx;
	struct rsdk_op *head;
	struct rdhpf_timer *settle_t; /* rsdk_pending_settle_later's zero timer */
	int settle_status;
	char settle_detail[512];
};

void rsdk_pending_init(struct rsdk_pending *p, const struct rdhpf_host_api *H,
                       struct rdhpf_ctx *ctx);
/* timeout_ms 0: none.  what: names the operation in the timeout detail.
 * NULL on ENOMEM. */
struct rsdk_op *rsdk_op_start(struct rsdk_pending *p, rdhpf_done_fn done, void *arg,
                              uint64_t timeout_ms, const char *what);
/* Call done now and free the op.  Safe to call from inside the slot that
 * started it (the core's wrapper defers such a call). */
void rsdk_op_finish(struct rsdk_op *op, int status, const char *detail);
/* Call done on the next loop turn (a zero timer) and free the op then. */
void rsdk_op_finish_later(struct rsdk_op *op, int status, const char *detail);
/* Forget the op: no callback. */
void rsdk_op_cancel(struct rsdk_op *op);
/* Finish every op with status/detail, oldest first (e.g. link lost). */
void rsdk_pending_fail_all(struct rsdk_pending *p, int status, const char *detail);
/* Finish every op waiting then with status/detail, from a zero timer: for
 * answers found inside the plugin's own processing (a keepalive reply read
 * during a service turn, a session found dead in a teardown), where the
 * core's callback must not run.  Calls before the timer fires are one
 * answer; an error overrides an OK (the link died after all).  Nothing when
 * no op waits. */
void rsdk_pending_settle_later(struct rsdk_pending *p, int status, const char *detail);
/* Forget every op, no callbacks (a settle_later not yet fired included). */
void rsdk_pending_cancel_all(struct rsdk_pending *p);
size_t rsdk_pending_count(const struct rsdk_pending *p);

/* ---- line splitter ---------------------------------------------------- */

/* Return 0 to go on, non-zero to stop feeding (returned by feed). */
typedef int (*rsdk_line_fn)(void *arg, const char *line, size_t len);

struct rsdk_lines {
	struct rsdk_buf buf;
	size_t max;         /* longest line kept; longer ones are skipped */
	int skipping;       /* inside an over-long line */
	uint64_t oversized; /* lines skipped so far */
};

void rsdk_lines_init(struct rsdk_lines *l, size_t max);
void rsdk_lines_free(struct rsdk_lines *l);
/* Split on '\n' (a '\r' before it is dropped) and call fn per complete
 * line, without the newline.  A line longer than max is skipped and
 * counted in oversized (the caller should log and resync: an event was
 * lost).  Returns 0, or the first non-zero fn returned. */
int rsdk_lines_feed(struct rsdk_lines *l, const char *buf, size_t n, rsdk_line_fn fn, void *arg);
/* At EOF: a last line without '\n' is passed to fn.  Returns as feed. */
int rsdk_lines_finish(struct rsdk_lines *l, rsdk_line_fn fn, void *arg);

/* ---- a remote command's whole output ---------------------------------- */

struct rsdk_collect;
/* status: the stream's (RDHPF_OK when the command ran, whatever its exit
 * code), or RDHPF_ERR_PROTO when stdout went past max (out NULL then).
 * detail: the tail of stderr or NULL.  out is NUL-ended. */
typedef void (*rsdk_collect_fn)(void *arg, int status, int exit_code, const char *detail,
                                const char *out, size_t len);
/* Run argv on the remote through host->stream_exec and collect stdout up
 * to max bytes.  The collector frees itself before fn runs.  Returns
 * RDHPF_OK (fn follows, never inside this call) or stream_exec's error. */
int rsdk_collect(const struct rdhpf_host_api *H, struct rdhpf_ctx *ctx, const char *const *argv,
                 size_t max, rsdk_collect_fn fn, void *arg, struct rsdk_collect **out);
/* Cancel: no callback follows. */
void rsdk_collect_cancel(struct rsdk_collect *c);

/* ---- containers, container sets, port diffing -------------------------- */

struct rsdk_port {
	char ip[46]; /* host_ip as published ("" = all) */
	uint16_t host_port;
	uint16_t container_port;
	int proto; /* enum rdhpf_proto */
};

struct rsdk_label {
	char *key;
	char *value;
};

/* A plugin-side container: plain data, owned by whoever holds it. */
struct rsdk_cont {
	char *id;
	char *name;
	char *image; /* NULL: unknown */
	struct rsdk_port *ports;
	size_t n_ports;
	struct rsdk_label *labels;
	size_t n_labels;
};

/* id is required ([0-9A-Za-z_.-]{1,128}, else RDHPF_ERR_INVAL); name may be
 * NULL (then the id). */
int rsdk_cont_init(struct rsdk_cont *c, const char *id, const char *name);
void rsdk_cont_clear(struct rsdk_cont *c);
int rsdk_cont_set_image(struct rsdk_cont *c, const char *image);
int rsdk_cont_add_label(struct rsdk_cont *c, const char *key, const char *value);
/* A port equal to one already there is not added again. */
int rsdk_cont_add_port(struct rsdk_cont *c, const char *ip, uint16_t host_port,
                       uint16_t container_port, int proto);
/* Move: dst takes src's contents, src is left empty. */
void rsdk_cont_move(struct rsdk_cont *dst, struct rsdk_cont *src);
/* Same ports (order ignored), image and labels. */
int rsdk_cont_equal(const struct rsdk_cont *a, const struct rsdk_cont *b);

/* Build the core's object for c (host->container_new and setters).
 * NULL on ENOMEM or when the core refused the id.  An image, label or
 * port the core refuses (a control character, past its limits) is left
 * out and logged with host, container and field: one odd label must not
 * cost a container its forwards. */
struct rdhpf_container *rsdk_cont_export(const struct rdhpf_host_api *H, struct rdhpf_ctx *ctx,
                                         const struct rsdk_cont *c);

/* A set of containers, by id. */
struct rsdk_cset {
	struct rsdk_cont *v; /* sorted by id */
	size_t n;
	size_t cap;
};

#define RSDK_CSET_INIT                                                                             \
	{                                                                                          \
		NULL, 0, 0                                                                         \
	}
void rsdk_cset_init(struct rsdk_cset *s);
void rsdk_cset_free(struct rsdk_cset *s);
/* Take c (moved in; c is left empty), replacing a container of that id. */
int rsdk_cset_put(struct rsdk_cset *s, struct rsdk_cont *c);
struct rsdk_cont *rsdk_cset_get(const struct rsdk_cset *s, const char *id);
/* Remove and clear; 1 when it was there. */
int rsdk_cset_del(struct rsdk_cset *s, const char *id);
/* Move everything of src into dst (dst emptied first). */
void rsdk_cset_move(struct rsdk_cset *dst, struct rsdk_cset *src);

/* What changed from old to new: fn(STOP, c) for every container of old
 * that is gone from new or changed (ports, image or labels), then
 * fn(START, c) for every container of new that is new or changed.  Cost
 * O(n + m). */
typedef void (*rsdk_diff_fn)(void *arg, int type, const struct rsdk_cont *c);
void rsdk_cset_diff(const struct rsdk_cset *old, const struct rsdk_cset *now, rsdk_diff_fn fn,
                    void *arg);

/* Answer a list: export every container of s, call done(arg, RDHPF_OK,
 * NULL, cs, n) and free the exports.  On ENOMEM calls done with
 * RDHPF_ERR_NOMEM instead.  The set is left as it was. */
void rsdk_list_reply(const struct rdhpf_host_api *H, struct rdhpf_ctx *ctx, rdhpf_list_fn done,
                     void *arg, const struct rsdk_cset *s);
/* Hand one event to the core through a watch's callbacks (exports c,
 * calls cbs->on_event, frees).  Returns RDHPF_ERR_NOMEM (or
 * RDHPF_ERR_INVAL: the id was refused) when it could not (the caller
 * should ask host->resync). */
int rsdk_emit(const struct rdhpf_host_api *H, struct rdhpf_ctx *ctx,
              const struct rdhpf_watch_cbs *cbs, void *arg, int type, int64_t time_ns,
              const struct rsdk_cont *c);

/* ---- re-entrancy guard -------------------------------------------------- */

/* The core may stop() or destroy() an instance inside any callback the
 * plugin calls (see plugin.h).  Bracket each entry from the loop (an io,
 * timer or stream callback) by rsdk_guard_enter/leave; after each call
 * into the core check rsdk_guard_alive(g, gen) with the gen you read on
 * entry.  stop() calls rsdk_guard_bump; destroy() calls
 * rsdk_guard_destroy, which returns 1 when the caller may free now (no
 * frame is running), else 0 and the outermost leave returns 1 (free then). */
struct rsdk_guard {
	int depth;
	int dead;
	uint64_t gen;
};

void rsdk_guard_enter(struct rsdk_guard *g);
/* 1: the instance is dead and no frame is left: free it now. */
int rsdk_guard_leave(struct rsdk_guard *g);
void rsdk_guard_bump(struct rsdk_guard *g);
int rsdk_guard_destroy(struct rsdk_guard *g);
int rsdk_guard_alive(const struct rsdk_guard *g, uint64_t gen);

/* ---- liveness: keepalive probes the remote must answer ------------------ */

/* How every transport counts its keepalive, so that keepalive_interval and
 * keepalive_count mean the same whatever the transport.  A probe goes out
 * at each interval tick unless one is still out (an answer late under load
 * still counts); each tick that finds it out is one probe unanswered.  The
 * link is dead when nothing answered for interval x count plus half an
 * interval (the half keeps a count of 1 from racing the answer to the
 * probe sent at that very tick), so a link that goes dark is reported
 * within interval x (count + 1).
 *
 * Only answers to our own probes count, and one proof from the kernel
 * (rsdk_live_tcp): bytes received from the remote since the last reading
 * while ours are not being lost (acknowledged since, or no retransmission
 * timeout pending).  Bytes the remote sends on its own prove nothing
 * alone: a link can fail one way only (the lab's blackhole drops only what
 * goes to the remote), and then our probe times out and is retransmitted.
 * The kernel's proof keeps alive a link whose probe answer waits behind a
 * long download or a busy sshd.  A server that sends nothing at all for
 * the whole deadline is dead by this count, busy or hung: sshd 9.2 can go
 * that quiet when a client floods it across many channels at once (see
 * transport-libssh's relay: why it stops reading its sockets while the
 * session's output is backed up).  Pure bookkeeping: the caller sends probes, owns timers and
 * decides what "answered" means (rsdk_keepalive below drives it on the host's timers). */
struct rsdk_live {
	uint64_t interval_ms;
	uint32_t count;
	uint64_t last_ms;    /* the last answer (or proof), or the start */
	uint64_t sent_ms;    /* when the probe out now was sent */
	uint32_t unanswered; /* ticks that found the probe still out */
	bool out;            /* a probe is out */
	uint64_t acked;      /* the remote TCP's acknowledged bytes, last read */
	uint64_t received;   /* bytes received from it, last read */
	uint64_t tcp_ms;     /* when they were read (0: never) */
};

enum { RSDK_LIVE_SEND = 0, RSDK_LIVE_WAIT, RSDK_LIVE_DEAD };

/* A new link at now_ms: nothing out, counted as answered now. */
void rsdk_live_start(struct rsdk_live *lv, uint64_t interval_ms, uint32_t count, uint64_t now_ms);
/* Probing is off when interval or count is 0. */
bool rsdk_live_on(const struct rsdk_live *lv);
/* At an interval tick: RSDK_LIVE_DEAD (report the link dead),
 * RSDK_LIVE_WAIT (a probe is still out: counted unanswered) or
 * RSDK_LIVE_SEND (send one and call rsdk_live_sent). */
int rsdk_live_tick(struct rsdk_live *lv, uint64_t now_ms);
void rsdk_live_sent(struct rsdk_live *lv, uint64_t now_ms);
/* The remote answered the probe out (or any probe: any answer proves the
 * way both ways).  Returns the round trip of the probe out in ms, or -1
 * when none was out. */
int64_t rsdk_live_answered(struct rsdk_live *lv, uint64_t now_ms);
/* The probe out can never be answered (its channel broke): the next tick
 * sends a new one.  Unanswered ticks stay counted. */
void rsdk_live_lost(struct rsdk_live *lv);
/* The kernel's counts for the link's TCP socket (rsdk_tcp_counts): our
 * bytes the remote acknowledged, bytes received from it, and whether a
 * retransmission timeout is pending (losing).  Bytes received since the
 * last reading, with ours acknowledged since or none being lost, show the
 * link working both ways at some time after that reading, so the last
 * answer moves to it (never later: the proof may be as old as that). */
void rsdk_live_tcp(struct rsdk_live *lv, uint64_t acked, uint64_t received, bool losing,
                   uint64_t now_ms);
/* When the link is dead unless an answer comes first. */
uint64_t rsdk_live_deadline(const struct rsdk_live *lv);
bool rsdk_live_dead(const struct rsdk_live *lv, uint64_t now_ms);
/* "no answer for N ms (keepalive_interval I ms x keepalive_count C; U
 * probes unanswered)" */
void rsdk_live_describe(const struct rsdk_live *lv, uint64_t now_ms, char *out, size_t outlen);
/* TCP_INFO's tcpi_bytes_acked and tcpi_bytes_received of a connected TCP
 * socket, and whether a retransmission timeout is pending (tcpi_retransmits
 * or tcpi_backoff): 0 and all set, or -1 (not TCP, or a kernel too old). */
int rsdk_tcp_counts(int fd, uint64_t *acked, uint64_t *received, bool *losing);

/* ---- the keepalive driver: rsdk_live on the host's timers -------------- */

/* What an SSH transport's keepalive shares: a tick every keepalive_interval
 * (rsdk_live_tick), a one-shot timer at the deadline once it falls before
 * the next tick (the tick alone would find a dead link up to an interval
 * late), the kernel's proof read before each look (rsdk_live_tcp), and the
 * log lines and counters every transport reports the same way: "ssh
 * liveness probe unanswered" (ssh_liveness_unanswered_total), "ssh link
 * dead: liveness probes unanswered" (ssh_liveness_dead_total), "ssh
 * liveness: sshd answers again", ssh_liveness_seconds (probe round trips).
 * The transport sends probes and says when one was answered. */
struct rsdk_keepalive_ops {
	/* After each tick that found the link alive: act is RSDK_LIVE_SEND
	 * (send a probe and call rsdk_keepalive_sent; in fallback, whatever
	 * the transport sends instead), RSDK_LIVE_WAIT (one is still out,
	 * already counted and logged) or, rarely, RSDK_LIVE_DEAD (the
	 * deadline passed during the tick: send nothing, the deadline timer
	 * reports it next). */
	void (*tick)(void *ud, int act);
	/* The link is dead; detail says why ("HOST:PORT: no answer for …: ssh
	 * session is dead").  The driver's timers are stopped and it touches
	 * nothing after this call: the transport may tear down and free. */
	void (*dead)(void *ud, const char *detail);
	/* Optional: called before each look, to bring rx up to date. */
	void (*observe)(void *ud);
};

struct rsdk_keepalive {
	struct rsdk_live live;
	const struct rdhpf_host_api *H;
	struct rdhpf_ctx *ctx;
	const struct rsdk_keepalive_ops *ops;
	void *ud;
	const char *addr; /* the host, for logs (the transport's string) */
	unsigned port;
	int fd;              /* the link's TCP socket, for the kernel's proof; -1: none */
	bool fallback;       /* answers cannot be seen: any inbound byte counts */
	uint64_t last_rx_ms; /* the last inbound byte (rsdk_keepalive_rx), for the fallback */
	struct rdhpf_timer *tick_t, *dead_t;
};

/* A ready link: probing starts (no timer when interval or count is 0).  ka
 * must be zeroed or stopped before. */
void rsdk_keepalive_start(struct rsdk_keepalive *ka, const struct rdhpf_host_api *H,
                          struct rdhpf_ctx *ctx, const struct rsdk_keepalive_ops *ops, void *ud,
                          const char *addr, unsigned port, int fd, uint64_t interval_ms,
                          uint32_t count);
/* The link goes: timers stopped (safe when never started). */
void rsdk_keepalive_stop(struct rsdk_keepalive *ka);
/* A probe went out. */
void rsdk_keepalive_sent(struct rsdk_keepalive *ka);
/* The remote answered a probe: counted, its round trip observed, "answers
 * again" logged after unanswered ticks. */
void rsdk_keepalive_answered(struct rsdk_keepalive *ka);
/* Inbound bytes seen at now_ms (what counts in fallback). */
void rsdk_keepalive_rx(struct rsdk_keepalive *ka, uint64_t now_ms);
/* on: from now on answers cannot be seen (e.g. the probe channel was
 * refused): every tick asks the transport to send, and any inbound byte
 * counts.  off: probes are answered again (the channel opened after all). */
void rsdk_keepalive_set_fallback(struct rsdk_keepalive *ka, bool on);
/* When the remote last answered or proved itself (fallback included). */
uint64_t rsdk_keepalive_last(const struct rsdk_keepalive *ka);

/* ---- option values: parsers and validators ------------------------------ */

/* Each returns RDHPF_OK, or RDHPF_ERR_INVAL with a reason in err that
 * names the bad part of the value (the core adds FILE:LINE and key). */

/* 1..65535 */
int rsdk_parse_port(const char *s, uint16_t *out, char *err, size_t errlen);

/* "5432, 6379, 8000-8010": ports and inclusive ranges, comma or space
 * separated; empty is an error.  Ranges are kept as given. */
struct rsdk_range {
	uint16_t lo;
	uint16_t hi;
};
struct rsdk_ranges {
	struct rsdk_range *v;
	size_t n;
};
int rsdk_parse_ranges(const char *s, struct rsdk_ranges *out, char *err, size_t errlen);
int rsdk_ranges_has(const struct rsdk_ranges *r, uint16_t port);
void rsdk_ranges_free(struct rsdk_ranges *r);

/* yes/no/true/false/on/off/1/0 */
int rsdk_parse_bool(const char *s, int *out, char *err, size_t errlen);
/* "250ms", "2s", "1m", "1h"; a bare number is seconds. */
int rsdk_parse_duration_ms(const char *s, uint64_t *out, char *err, size_t errlen);
/* An absolute path of printable characters, no "..". */
int rsdk_check_abs_path(const char *s, char *err, size_t errlen);
/* [A-Za-z0-9][A-Za-z0-9_.-]* up to 128 (names, namespaces). */
int rsdk_check_name(const char *s, char *err, size_t errlen);
/* One of words (NULL-ended). */
int rsdk_check_enum(const char *s, const char *const *words, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* RDHPF_SDK_H */
