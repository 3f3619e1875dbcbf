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

void
rt_base_init(struct rt *r, const struct rdhpf_host_api *H, struct rdhpf_ctx *ctx,
             void (*free_fn)(struct rt *r))
{
	memset(r, 0, sizeof *r);
	r->H = H;
	r->ctx = ctx;
	r->free_fn = free_fn;
	r->diag.fn = rt_diag_log;
	r->diag.arg = r;
}

void
rt_enter(struct rt *r)
{
	r->depth++;
}

int
rt_leave(struct rt *r)
{
	if (--r->depth == 0 && r->dead) {
		r->free_fn(r);
		return 0;
	}
	return 1;
}

void
rt_destroy(struct rt *r)
{
	if (r->depth > 0) {
		r->dead = 1;
		return;
	}
	r->free_fn(r);
}

/* ---- the event queue ---- */

struct rt_item *
rt_q_push(struct rt *r, int type, const struct rt_event *ev)
{
	struct rt_item *it = calloc(1, sizeof *it);

	if (it == NULL)
		return NULL;
	it->type = type;
	it->state = type == RDHPF_EV_START ? RT_ITEM_WAITING : RT_ITEM_READY;
	it->time_ns = ev->time_ns;
	it->t0_ms = r->H->now_ms(r->ctx);
	rt_cont_init(&it->c);
	memcpy(it->c.id, ev->id, sizeof it->c.id);
	memcpy(it->c.name, ev->name, sizeof it->c.name);
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
	r->H->counter_add(r->ctx, "events_dropped_total", 1);
	if (r->H->abi_minor >= 1 &&
	    r->H->struct_size >= offsetof(struct rdhpf_host_api, resync) + sizeof r->H->resync &&
	    r->H->resync != NULL)
		r->H->resync(r->ctx, reason);
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
	rt_cont_clear(&it->c);
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
rt_item_fill(struct rt *r, struct rt_item *it, struct rt_cont *c)
{
	if (c == NULL) {
		it->state = RT_ITEM_DROP;
		return;
	}
	free(it->c.ports);
	if (c->dropped_ports > 0)
		r->H->counter_add(r->ctx, "ports_dropped_total", c->dropped_ports);
	if (c->name[0] == '\0')
		memcpy(c->name, it->c.name, sizeof c->name);
	it->c = *c;
	rt_cont_init(c);
	it->state = RT_ITEM_READY;
	r->H->observe(r->ctx, "runtime_port_lookup_seconds",
	              (double)(r->H->now_ms(r->ctx) - it->t0_ms) / 1000.0);
}

int
rt_q_flush(struct rt *r)
{
	uint64_t gen = r->gen;

	while (r->q_head && r->q_head->state != RT_ITEM_WAITING) {
		struct rt_item *it = r->q_head;
		r->q_head = it->next;
		r->q_len--;
		if (r->q_head == NULL) {
			r->q_tail = NULL;
			r->q_overflowed = 0;
		}
		if (it->state == RT_ITEM_READY && r->wcbs != NULL) {
			struct rdhpf_port *ports = NULL;
			struct rdhpf_container c;
			struct rdhpf_event ev;

			if (it->c.n_ports > 0) {
				ports = calloc(it->c.n_ports, sizeof *ports);
				if (ports == NULL) {
					item_free(it);
					rt_end(r, RDHPF_ERR_NOMEM, "out of memory");
					return r->gen == gen;
				}
			}
			rt_cont_view(&it->c, &c, ports);
			if (it->type == RDHPF_EV_STOP) {
				c.ports = NULL;
				c.n_ports = 0;
			}
			memset(&ev, 0, sizeof ev);
			ev.type = it->type;
			ev.time_ns = it->time_ns;
			ev.container = &c;
			r->wcbs->on_event(r->warg, &ev);
			free(ports);
		}
		item_free(it);
		if (r->gen != gen)
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
	cbs->on_end(r->warg, status, detail);
}

void
rt_list_deliver(struct rt *r, rdhpf_list_fn done, void *arg, const struct rt_cont *cs, size_t n)
{
	struct rdhpf_container *v = calloc(n ? n : 1, sizeof *v);
	struct rdhpf_port **pv = calloc(n ? n : 1, sizeof *pv);
	int ok = v != NULL && pv != NULL;

	for (size_t i = 0; ok && i < n; i++) {
		if (cs[i].dropped_ports > 0)
			r->H->counter_add(r->ctx, "ports_dropped_total", cs[i].dropped_ports);
		if (cs[i].n_ports > 0) {
			pv[i] = calloc(cs[i].n_ports, sizeof **pv);
			if (pv[i] == NULL) {
				ok = 0;
				break;
			}
		}
		rt_cont_view(&cs[i], &v[i], pv[i]);
	}
	if (ok)
		done(arg, RDHPF_OK, NULL, v, n);
	else
		done(arg, RDHPF_ERR_NOMEM, "out of memory", NULL, 0);
	for (size_t i = 0; pv != NULL && i < n; i++)
		free(pv[i]);
	free(pv);
	free(v);
}

/* ---- collecting a command's output ---- */

struct rt_collect {
	struct rt *r;
	struct rdhpf_stream *s;
	rt_collect_fn fn;
	void *arg;
	char *buf;
	size_t len, cap;
	int over;
};

static void
collect_data(void *arg, const char *buf, size_t len)
{
	struct rt_collect *c = arg;

	if (c->over)
		return;
	if (c->len + len > RT_BODY_MAX) {
		c->over = 1;
		free(c->buf);
		c->buf = NULL;
		c->len = c->cap = 0;
		return;
	}
	if (c->len + len + 1 > c->cap) {
		size_t cap = c->cap ? c->cap : 4096;
		while (cap < c->len + len + 1)
			cap *= 2;
		char *v = realloc(c->buf, cap);
		if (v == NULL) {
			c->over = 1;
			free(c->buf);
			c->buf = NULL;
			c->len = c->cap = 0;
			return;
		}
		c->buf = v;
		c->cap = cap;
	}
	memcpy(c->buf + c->len, buf, len);
	c->len += len;
	c->buf[c->len] = '\0';
}

static void
collect_close(void *arg, int status, int exit_code, const char *detail)
{
	struct rt_collect *c = arg;
	struct rt *r = c->r;
	rt_collect_fn fn = c->fn;
	void *farg = c->arg;
	char *buf = c->buf;
	size_t len = c->len;
	int over = c->over;

	/* The core freed the stream; the collector goes before fn runs, so
	 * fn's owner must forget it first thing. */
	free(c);
	rt_enter(r);
	if (over)
		fn(farg, RDHPF_ERR_PROTO, exit_code, "output too large", NULL, 0);
	else
		fn(farg, status, exit_code, detail, buf ? buf : "", len);
	free(buf);
	rt_leave(r);
}

static const struct rdhpf_stream_cbs collect_cbs = {
    .on_data = collect_data,
    .on_close = collect_close,
};

int
rt_collect_start(struct rt *r, const char *const *argv, rt_collect_fn fn, void *arg,
                 struct rt_collect **out)
{
	struct rt_collect *c = calloc(1, sizeof *c);
	int rc;

	if (c == NULL)
		return RDHPF_ERR_NOMEM;
	c->r = r;
	c->fn = fn;
	c->arg = arg;
	rc = r->H->stream_exec(r->ctx, argv, &collect_cbs, c, &c->s);
	if (rc != RDHPF_OK) {
		free(c);
		return rc;
	}
	*out = c;
	return RDHPF_OK;
}

void
rt_collect_cancel(struct rt_collect *c)
{
	if (c == NULL)
		return;
	if (c->s)
		c->r->H->stream_close(c->s);
	free(c->buf);
	free(c);
}
