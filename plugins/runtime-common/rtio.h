/* What both runtime plugins share on the I/O side, on top of the SDK
 * (rdhpf/sdk.h): the instance base (host API, watch callbacks, the
 * re-entrancy guard), the ordered event queue and the event intake that
 * the engine API client and the podman CLI reader both use.
 *
 * Re-entrancy: any call into the core (on_established, on_event, on_end, a
 * list's done) may come back into the plugin's stop() or destroy() before
 * it returns.  So every entry from a stream or timer callback is bracketed
 * by rt_enter() / rt_leave() (an rsdk_guard), and after each call into the
 * core the caller checks the guard's gen: stop() bumps it and frees
 * streams and queues; destroy() inside such a frame only marks the
 * instance dead, and the outermost rt_leave() frees it. */
#ifndef RDHPF_RTIO_H
#define RDHPF_RTIO_H

#include <stddef.h>
#include <stdint.h>

#include "rdhpf/plugin.h"
#include "rdhpf/sdk.h"
#include "rtparse.h"

enum { RT_ITEM_WAITING = 0, RT_ITEM_READY, RT_ITEM_DROP };

/* One event on its way to the core.  A START waits for its ports; what
 * comes after it waits behind it, so the core sees the engine's order. */
struct rt_item {
	int type;  /* RDHPF_EV_START / RDHPF_EV_STOP */
	int state; /* RT_ITEM_* */
	int64_t time_ns;
	uint64_t t0_ms; /* when the event arrived, for the latency metric */
	struct rsdk_cont c;
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
	int established; /* on_established was called for this watch */
	struct rt_item *q_head, *q_tail;
	size_t q_len;
	int q_overflowed; /* since the queue last drained: one resync asked */
	struct rsdk_guard g;
	void (*free_fn)(struct rt *r); /* frees the instance once dead and idle */
	/* Look up a START's ports (the plugin's inspect); RDHPF_OK or an
	 * error that ends the watch. */
	int (*want_ports)(struct rt *r, struct rt_item *it);
	struct rt_diag diag;
};

void rt_base_init(struct rt *r, const struct rdhpf_host_api *H, struct rdhpf_ctx *ctx,
                  void (*free_fn)(struct rt *r),
                  int (*want_ports)(struct rt *r, struct rt_item *it));

void rt_enter(struct rt *r);
/* Returns 0 when the instance was freed (do not touch it). */
int rt_leave(struct rt *r);
/* destroy(): free now, or when the outermost frame leaves. */
void rt_destroy(struct rt *r);
/* stop(): frames below see the gen change; the watch is forgotten and the
 * queue dropped.  The plugin closes its streams. */
void rt_stop(struct rt *r);
/* The gen to compare with after a call into the core. */
#define RT_GEN(r) ((r)->g.gen)

/* Begin a watch (cbs stay valid until stop). */
void rt_watch_begin(struct rt *r, const struct rdhpf_watch_cbs *cbs, void *arg);
/* The engine confirmed the stream: on_established, once per watch.
 * Returns 0 when stop() ran meanwhile. */
int rt_established(struct rt *r);

/* Queue an event, taking ev->c.  NULL on ENOMEM. */
struct rt_item *rt_q_push(struct rt *r, int type, struct rt_event *ev);
/* 1 when one more event fits; else the event is dropped: counted, and a
 * resync asked once per overflow. */
int rt_q_room(struct rt *r);
/* An event was lost (oversized line, full queue): count it and have the
 * core list again, keeping the stream (or, with a core that lacks resync,
 * end the watch so that it resyncs in full). */
void rt_resync(struct rt *r, const char *reason);
/* Hand every ready event at the head to the core.  Returns 0 when stop()
 * ran meanwhile (the queue is gone). */
int rt_q_flush(struct rt *r);
void rt_q_clear(struct rt *r);
/* Give a waiting START its container (taken over: c is left empty), or
 * drop it (c NULL). */
void rt_item_fill(struct rt *r, struct rt_item *it, struct rsdk_cont *c);

/* One parsed event (ev->c is taken or cleared): ignored ones logged, a
 * START queued and its ports asked for, a STOP queued; then the queue is
 * flushed.  Returns nonzero when stop() ran meanwhile (stop feeding). */
int rt_event_take(struct rt *r, struct rt_event *ev);
/* Feed event-stream bytes through l to fn, and have the core list again
 * when a line was over the bound.  Returns nonzero when stop() ran. */
int rt_lines_feed(struct rt *r, struct rsdk_lines *l, const char *buf, size_t len, rsdk_line_fn fn,
                  void *arg);

/* End the watch once (on_end), if one runs. */
void rt_end(struct rt *r, int status, const char *detail);

/* Answer a list with the containers of s. */
void rt_list_deliver(struct rt *r, rdhpf_list_fn done, void *arg, const struct rsdk_cset *s);

/* A remote command's stderr tail for a message: trailing newlines cut. */
void rt_detail_trim(char *msg);

/* Log, with key/value pairs ended by NULL. */
#define RT_LOG(r, level, ...) (r)->H->log((r)->ctx, (level), __VA_ARGS__, NULL)

#endif
