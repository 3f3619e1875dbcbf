/* What both runtime plugins share on the I/O side: the instance base
 * (host API, watch callbacks, re-entrancy guard), the ordered event queue
 * and a collector for a command's whole output.
 *
 * Re-entrancy: any call into the core (on_event, on_end, a list's done)
 * may come back into the plugin's stop() or destroy() before it returns.
 * So every entry from a transport callback is bracketed by rt_enter() /
 * rt_leave(), and after each call into the core the caller checks
 * rt_alive(): stop() bumps gen and frees streams and queues; destroy()
 * inside such a frame only marks the instance dead, and the outermost
 * rt_leave() frees it. */
#ifndef RDHPF_RTIO_H
#define RDHPF_RTIO_H

#include <stddef.h>
#include <stdint.h>

#include "rdhpf/plugin.h"
#include "rtparse.h"

enum { RT_ITEM_WAITING = 0, RT_ITEM_READY, RT_ITEM_DROP };

/* One event on its way to the core.  A START waits for its ports; what
 * comes after it waits behind it, so the core sees the engine's order. */
struct rt_item {
	int type;  /* RDHPF_EV_START / RDHPF_EV_STOP */
	int state; /* RT_ITEM_* */
	int64_t time_ns;
	uint64_t t0_ms; /* when the event arrived, for the latency metric */
	struct rt_cont c;
	struct rt_item *next;
};

/* Events queued at most: a START waiting for its ports holds up what comes
 * after it, and an engine that floods events meanwhile must not grow the
 * queue without bound.  Past it events are dropped, counted
 * (events_dropped_total) and the core lists again. */
#define RT_QUEUE_MAX 8192u

struct rt {
	const struct rdhpf_host_api *H;
	struct rdhpf_ctx *ctx;
	const struct rdhpf_watch_cbs *wcbs;
	void *warg;
	struct rt_item *q_head, *q_tail;
	size_t q_len;
	int q_overflowed; /* since the queue last drained: one resync asked */
	uint64_t gen; /* bumped by stop(): frames that see it change return */
	int depth;
	int dead;
	void (*free_fn)(struct rt *r); /* frees the instance once dead and idle */
	struct rt_diag diag;
};

void rt_base_init(struct rt *r, const struct rdhpf_host_api *H, struct rdhpf_ctx *ctx,
                  void (*free_fn)(struct rt *r));

void rt_enter(struct rt *r);
/* Returns 0 when the instance was freed (do not touch it). */
int rt_leave(struct rt *r);
/* destroy(): free now, or when the outermost frame leaves. */
void rt_destroy(struct rt *r);

/* Queue an event.  NULL on ENOMEM. */
struct rt_item *rt_q_push(struct rt *r, int type, const struct rt_event *ev);
/* 1 when one more event fits; else the event is dropped: counted, and a
 * resync asked once per overflow.  Returns 0 then; the caller drops the
 * event and checks gen (the fallback of rt_resync may end the watch). */
int rt_q_room(struct rt *r);
/* An event was lost (oversized line, full queue): count it and have the
 * core list again, keeping the stream (host API 1.1), or, with an older
 * core, end the watch so that it resyncs in full. */
void rt_resync(struct rt *r, const char *reason);
/* Hand every ready event at the head to the core.  Returns 0 when stop()
 * ran meanwhile (the queue is gone). */
int rt_q_flush(struct rt *r);
void rt_q_clear(struct rt *r);
/* Give a waiting START its container (taken over: c is left empty), or
 * drop it (c NULL). */
void rt_item_fill(struct rt *r, struct rt_item *it, struct rt_cont *c);

/* End the watch once (on_end), if one runs. */
void rt_end(struct rt *r, int status, const char *detail);

/* Call a list's done with containers. */
void rt_list_deliver(struct rt *r, rdhpf_list_fn done, void *arg, const struct rt_cont *cs,
                     size_t n);

/* Log, with key/value pairs ended by NULL. */
#define RT_LOG(r, level, ...) (r)->H->log((r)->ctx, (level), __VA_ARGS__, NULL)

/* ---- a command's whole stdout ---- */

struct rt_collect;
/* exit_code as in rdhpf_stream_cbs; status is RDHPF_ERR_PROTO when the
 * output went past RT_BODY_MAX (out is then NULL). */
typedef void (*rt_collect_fn)(void *arg, int status, int exit_code, const char *detail,
                              const char *out, size_t len);

/* Run argv on the remote and collect its stdout.  Returns RDHPF_OK or the
 * stream_exec error (no callback then).  The collector is freed before fn
 * runs: fn's owner forgets its pointer first thing. */
int rt_collect_start(struct rt *r, const char *const *argv, rt_collect_fn fn, void *arg,
                     struct rt_collect **out);
/* Cancel: no callback follows. */
void rt_collect_cancel(struct rt_collect *c);

#endif
