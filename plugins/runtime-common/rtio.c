/* Shared I/O pieces of the runtime plugins; see rtio.h. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtio.h"

static void
rt_diag_log(void *arg, int level, const char *msg, const char *id, const char *detail)
{
	struct rt *r = arg;

	r->H->log(r->ctx, level, msg, "container", id, "detail", detail, NULL);
}

static void
rt_diag_dropped(void *arg, const char *id, uint64_t n)
{
	struct rt *r = arg;

	(void)id;
	r->H->counter_add(r->ctx, "ports_dropped_total", n);
}

void
rt_base_init(struct rt *r, const struct rdhpf_host_api *H, struct rdhpf_ctx *ctx,
             void (*free_fn)(struct rt *r), int (*want_ports)(struct rt *r, struct rt_item *it))
{
	memset(r, 0, sizeof *r);
	r->H = H;
	r->ctx = ctx;
	r->free_fn = free_fn;
	r->want_ports = want_ports;
	r->diag.fn = rt_diag_log;
	r->diag.arg = r;
	r->diag.dropped = rt_diag_dropped;
}

void
rt_enter(struct rt *r)
{
	rsdk_guard_enter(&r->g);
}

int
rt_leave(struct rt *r)
{
	if (rsdk_guard_leave(&r->g)) {
		r->free_fn(r);
		return 0;
	}
	return 1;
}

void
rt_destroy(struct rt *r)
{
	if (rsdk_guard_destroy(&r->g))
		r->free_fn(r);
}

void
rt_stop(struct rt *r)
{
	rsdk_guard_bump(&r->g);
	r->wcbs = NULL;
	r->established = 0;
	rt_q_clear(r);
}

void
rt_watch_begin(struct rt *r, const struct rdhpf_watch_cbs *cbs, void *arg)
{
	rt_q_clear(r);
	r->wcbs = cbs;
	r->warg = arg;
	r->established = 0;
}

int
rt_established(struct rt *r)
{
	uint64_t gen = RT_GEN(r);

	if (r->wcbs == NULL || r->established)
		return 1;
	r->established = 1;
	RT_LOG(r, RDHPF_LOG_DEBUG, "event stream established");
	r->wcbs->on_established(r->warg);
	return RT_GEN(r) == gen;
}

/* ---- the event queue ---- */

struct rt_item *
rt_q_push(struct rt *r, int type, struct rt_event *ev)
{
	struct rt_item *it = calloc(1, sizeof *it);

	if (it == NULL)
		return NULL;
	it->type = type;
	it->state = type == RDHPF_EV_START ? RT_ITEM_WAITING : RT_ITEM_READY;
	it->time_ns = ev->time_ns;
	it->t0_ms = r->H->now_ms(r->ctx);
	rsdk_cont_move(&it->c, &ev->c);
	if (r->q_tail)
		r->q_tail->next = it;
	else
		r->q_head = it;
	r->q_tail = it;
	r->q_len++;
	return it;
}

void
rt_resync(struct rt *r, const char *reason)
{
	void (*resync)(struct rdhpf_ctx *, const char *) = RDHPF_SLOT(r->H, resync);

	r->H->counter_add(r->ctx, "events_dropped_total", 1);
	if (resync != NULL)
		resync(r->ctx, reason);
	else
		rt_end(r, RDHPF_ERR_PROTO, reason);
}

int
rt_q_room(struct rt *r)
{
	char nb[24];

	if (r->q_len < RT_QUEUE_MAX)
		return 1;
	if (r->q_overflowed) {
		r->H->counter_add(r->ctx, "events_dropped_total", 1);
		return 0;
	}
	r->q_overflowed = 1;
	snprintf(nb, sizeof nb, "%u", RT_QUEUE_MAX);
	RT_LOG(r, RDHPF_LOG_WARN, "event queue full; dropping events and listing again", "max", nb);
	rt_resync(r, "event queue full");
	return 0;
}

static void
item_free(struct rt_item *it)
{
	rsdk_cont_clear(&it->c);
	free(it);
}

void
rt_q_clear(struct rt *r)
{
	while (r->q_head) {
		struct rt_item *it = r->q_head;
		r->q_head = it->next;
		item_free(it);
	}
	r->q_tail = NULL;
	r->q_len = 0;
	r->q_overflowed = 0;
}

void
rt_item_fill(struct rt *r, struct rt_item *it, struct rsdk_cont *c)
{
	if (c == NULL) {
		it->state = RT_ITEM_DROP;
		return;
	}
	rsdk_cont_clear(&it->c);
	rsdk_cont_move(&it->c, c);
	it->state = RT_ITEM_READY;
	r->H->observe(r->ctx, "runtime_port_lookup_seconds",
	              (double)(r->H->now_ms(r->ctx) - it->t0_ms) / 1000.0);
}

int
rt_q_flush(struct rt *r)
{
	uint64_t gen = RT_GEN(r);

	while (r->q_head && r->q_head->state != RT_ITEM_WAITING) {
		struct rt_item *it = r->q_head;
		int rc = RDHPF_OK;

		r->q_head = it->next;
		r->q_len--;
		if (r->q_head == NULL) {
			r->q_tail = NULL;
			r->q_overflowed = 0;
		}
		if (it->state == RT_ITEM_READY && r->wcbs != NULL)
			rc = rsdk_emit(r->H, r->ctx, r->wcbs, r->warg, it->type, it->time_ns,
			               &it->c);
		item_free(it);
		if (RT_GEN(r) != gen)
			return 0;
		/* The core did not get it (memory, or a value it refused): only
		 * a list can tell it what runs now. */
		if (rc != RDHPF_OK)
			rt_resync(r, "an event could not be handed over");
		if (RT_GEN(r) != gen)
			return 0;
	}
	return 1;
}

void
rt_end(struct rt *r, int status, const char *detail)
{
	const struct rdhpf_watch_cbs *cbs = r->wcbs;

	if (cbs == NULL)
		return;
	r->wcbs = NULL;
	r->established = 0;
	cbs->on_end(r->warg, status, detail);
}

/* ---- the event intake ---- */

int
rt_event_take(struct rt *r, struct rt_event *ev)
{
	uint64_t gen = RT_GEN(r);
	struct rt_item *it;

	if (ev->kind == RT_EV_IGNORE) {
		RT_LOG(r, RDHPF_LOG_TRACE, "event ignored", "action", ev->action, "container",
		       ev->c.id);
		rt_event_clear(ev);
		return 0;
	}
	if (!rt_q_room(r)) {
		rt_event_clear(ev);
		return RT_GEN(r) != gen;
	}
	it = rt_q_push(r, ev->kind == RT_EV_START ? RDHPF_EV_START : RDHPF_EV_STOP, ev);
	rt_event_clear(ev);
	if (it == NULL) {
		rt_end(r, RDHPF_ERR_NOMEM, "out of memory");
		return RT_GEN(r) != gen;
	}
	if (it->type == RDHPF_EV_START) {
		int rc = r->want_ports(r, it);
		if (RT_GEN(r) != gen)
			return 1;
		if (rc != RDHPF_OK) {
			rt_end(r, rc, "cannot ask the engine for a container's ports");
			return RT_GEN(r) != gen;
		}
	}
	return !rt_q_flush(r);
}

int
rt_lines_feed(struct rt *r, struct rsdk_lines *l, const char *buf, size_t len, rsdk_line_fn fn,
              void *arg)
{
	uint64_t gen = RT_GEN(r);
	uint64_t before = l->oversized;
	char mb[24];
	int rc = rsdk_lines_feed(l, buf, len, fn, arg);

	if (rc != 0 || RT_GEN(r) != gen)
		return 1;
	if (l->oversized != before) {
		snprintf(mb, sizeof mb, "%zu", l->max);
		RT_LOG(r, RDHPF_LOG_WARN, "oversized event line dropped; listing again",
		       "max_bytes", mb);
		/* The line may have been a start or a stop: the list tells. */
		rt_resync(r, "oversized event line dropped");
	}
	return RT_GEN(r) != gen;
}

void
rt_list_deliver(struct rt *r, rdhpf_list_fn done, void *arg, const struct rsdk_cset *s)
{
	rsdk_list_reply(r->H, r->ctx, done, arg, s);
}

void
rt_detail_trim(char *msg)
{
	size_t l = strlen(msg);

	while (l > 0 && (msg[l - 1] == '\n' || msg[l - 1] == '\r'))
		msg[--l] = '\0';
}
