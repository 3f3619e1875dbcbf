/* The one place the core calls plugin slots (see slots.h).
 *
 * Completions are matched by call id, not by pointer: the arg a plugin gets
 * for a done/list callback or a watch is a number the core looks up, so a
 * completion that comes twice, or after stop/destroy, finds nothing and is
 * reported instead of touching freed memory. */
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "log.h"
#include "slots.h"
#include "util.h"

struct pinst {
	const struct plugin *plugin;
	struct rdhpf_ctx *ctx;
	const struct rdhpf_transport_ops *t;
	const struct rdhpf_runtime_ops *r;
	void *state;
	const struct rdhpf_watch_cbs *wcbs;
	void *warg;
};

struct call {
	uint64_t id;
	struct pinst *pi;
	enum slot_id slot;
	rdhpf_done_fn done;
	rdhpf_list_fn ldone;
	void *arg;
	int in_slot;
	/* A result that came inside the slot, delivered on the next turn. */
	int has_result;
	int status;
	char *detail;
	struct rdhpf_container *cs;
	size_t n;
	/* watch */
	int established, est_deferred, ended;
	struct call *next;
};

struct deferred {
	uv_timer_t t;
	uint64_t id;
};

static struct call *g_calls;
static uint64_t g_next_id = 1;
static unsigned g_bugs;

/* Recently finished calls, to name the plugin and slot of a late second
 * completion. */
#define RING 256
static struct {
	uint64_t id;
	char plugin[40];
	enum slot_id slot;
} g_ring[RING];
static size_t g_ring_pos;

/* (plugin, slot) pairs already reported. */
#define WARNED_MAX 128
static struct {
	char plugin[40];
	enum slot_id slot;
} g_warned[WARNED_MAX];
static size_t g_n_warned;

static const char *const names[SLOT_COUNT] = {
    [SLOT_T_CREATE] = "create",
    [SLOT_T_DESTROY] = "destroy",
    [SLOT_T_CONNECT] = "connect",
    [SLOT_T_DISCONNECT] = "disconnect",
    [SLOT_T_HEALTH] = "health_check",
    [SLOT_T_FORWARD_ADD] = "forward_add",
    [SLOT_T_FORWARD_REMOVE] = "forward_remove",
    [SLOT_T_EXEC] = "exec",
    [SLOT_T_STREAM_WRITE] = "stream_write",
    [SLOT_T_STREAM_CLOSE] = "stream_close",
    [SLOT_T_OPEN_UNIX] = "open_unix",
    [SLOT_T_FORWARD_STATS] = "forward_stats",
    [SLOT_R_CREATE] = "create",
    [SLOT_R_DESTROY] = "destroy",
    [SLOT_R_WATCH] = "watch",
    [SLOT_R_LIST] = "list",
    [SLOT_R_STOP] = "stop",
};

const char *
slot_name(enum slot_id s)
{
	return s < SLOT_COUNT ? names[s] : "?";
}

bool
slot_inside(uint32_t struct_size, size_t off, size_t sz)
{
	return (size_t)struct_size >= off + sz;
}

#define T_SLOT(o, m) ((o) != NULL ? RDHPF_SLOT(o, m) != NULL : false)

bool
slot_present(const struct rdhpf_plugin_info *info, enum slot_id s)
{
	const struct rdhpf_transport_ops *t =
	    info->kind == RDHPF_KIND_TRANSPORT ? info->ops.transport : NULL;
	const struct rdhpf_runtime_ops *r =
	    info->kind == RDHPF_KIND_RUNTIME ? info->ops.runtime : NULL;

	switch (s) {
	case SLOT_T_CREATE:
		return T_SLOT(t, create);
	case SLOT_T_DESTROY:
		return T_SLOT(t, destroy);
	case SLOT_T_CONNECT:
		return T_SLOT(t, connect);
	case SLOT_T_DISCONNECT:
		return T_SLOT(t, disconnect);
	case SLOT_T_HEALTH:
		return T_SLOT(t, health_check);
	case SLOT_T_FORWARD_ADD:
		return T_SLOT(t, forward_add);
	case SLOT_T_FORWARD_REMOVE:
		return T_SLOT(t, forward_remove);
	case SLOT_T_EXEC:
		return T_SLOT(t, exec);
	case SLOT_T_STREAM_WRITE:
		return T_SLOT(t, stream_write);
	case SLOT_T_STREAM_CLOSE:
		return T_SLOT(t, stream_close);
	case SLOT_T_OPEN_UNIX:
		return T_SLOT(t, open_unix);
	case SLOT_T_FORWARD_STATS:
		return T_SLOT(t, forward_stats);
	case SLOT_R_CREATE:
		return T_SLOT(r, create);
	case SLOT_R_DESTROY:
		return T_SLOT(r, destroy);
	case SLOT_R_WATCH:
		return T_SLOT(r, watch);
	case SLOT_R_LIST:
		return T_SLOT(r, list);
	case SLOT_R_STOP:
		return T_SLOT(r, stop);
	default:
		return false;
	}
}

unsigned
slots_bug_count(void)
{
	return g_bugs;
}

const struct plugin *
pinst_plugin(const struct pinst *i)
{
	return i ? i->plugin : NULL;
}

static const char *
pi_host(const struct pinst *pi)
{
	return pi && pi->ctx ? pi->ctx->host_name : NULL;
}

/* ---- plugin bugs ---- */

static void
bug(const char *host, const char *plugin, enum slot_id slot, const char *what)
{
	g_bugs++;
	for (size_t i = 0; i < g_n_warned; i++)
		if (g_warned[i].slot == slot && strcmp(g_warned[i].plugin, plugin) == 0)
			return;
	if (g_n_warned < WARNED_MAX) {
		snprintf(g_warned[g_n_warned].plugin, sizeof g_warned[0].plugin, "%s", plugin);
		g_warned[g_n_warned].slot = slot;
		g_n_warned++;
	}
	log_kv(RDHPF_LOG_ERROR, host, plugin, "plugin bug: ignored; logged once", "slot",
	       slot_name(slot), "bug", what, NULL);
}

static void
bug_unknown(uint64_t id, const char *what)
{
	for (size_t i = 0; i < RING; i++) {
		if (g_ring[i].id == id && id != 0) {
			bug(NULL, g_ring[i].plugin, g_ring[i].slot, what);
			return;
		}
	}
	bug(NULL, "unknown", SLOT_COUNT, what);
}

/* ---- calls ---- */

static struct call *
call_new(struct pinst *pi, enum slot_id slot, void *arg)
{
	struct call *c = xcalloc(1, sizeof *c);

	c->id = g_next_id++;
	c->pi = pi;
	c->slot = slot;
	c->arg = arg;
	c->next = g_calls;
	g_calls = c;
	return c;
}

static struct call *
call_find(uint64_t id)
{
	for (struct call *c = g_calls; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

static void
call_free_result(struct call *c)
{
	free(c->detail);
	c->detail = NULL;
	for (size_t i = 0; i < c->n; i++)
		container_clear(&c->cs[i]);
	free(c->cs);
	c->cs = NULL;
	c->n = 0;
}

/* Unlink and free; remember it as finished. */
static void
call_end(struct call *c)
{
	for (struct call **pp = &g_calls; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	g_ring[g_ring_pos].id = c->id;
	snprintf(g_ring[g_ring_pos].plugin, sizeof g_ring[0].plugin, "%s",
	         c->pi->plugin->info->name);
	g_ring[g_ring_pos].slot = c->slot;
	g_ring_pos = (g_ring_pos + 1) % RING;
	call_free_result(c);
	free(c);
}

/* Drop every call of pi (or only those of one slot when slot is not
 * SLOT_COUNT): no completion of them reaches the core any more. */
static void
calls_drop(struct pinst *pi, enum slot_id slot)
{
	struct call **pp = &g_calls;

	while (*pp) {
		struct call *c = *pp;
		if (c->pi == pi && (slot == SLOT_COUNT || c->slot == slot))
			call_end(c);
		else
			pp = &c->next;
	}
}

static void
idof(uint64_t id, void **arg)
{
	*arg = (void *)(uintptr_t)id;
}

static uint64_t
argid(void *arg)
{
	return (uint64_t)(uintptr_t)arg;
}

static void deliver(struct call *c);

static void
deferred_close(uv_handle_t *h)
{
	free(h->data);
}

static void
deferred_cb(uv_timer_t *t)
{
	struct deferred *d = t->data;
	struct call *c = call_find(d->id);

	uv_close((uv_handle_t *)t, deferred_close);
	if (c != NULL)
		deliver(c);
}

static void
defer(struct call *c)
{
	struct deferred *d = xcalloc(1, sizeof *d);

	d->id = c->id;
	uv_timer_init(core_loop(), &d->t);
	d->t.data = d;
	uv_timer_start(&d->t, deferred_cb, 0, 0);
}

/* Hand a stored result to the core and end the call (watch: established
 * and end as they came). */
static void
deliver(struct call *c)
{
	if (c->slot == SLOT_R_WATCH) {
		struct pinst *pi = c->pi;
		uint64_t id = c->id;
		if (c->est_deferred) {
			c->est_deferred = 0;
			if (pi->wcbs && pi->wcbs->on_established)
				pi->wcbs->on_established(pi->warg);
			/* The core may have stopped the watch in there. */
			c = call_find(id);
			if (c == NULL)
				return;
		}
		if (c->has_result) {
			const struct rdhpf_watch_cbs *w = pi->wcbs;
			void *warg = pi->warg;
			char *detail = c->detail;
			int status = c->status;
			c->detail = NULL;
			call_end(c);
			pi->wcbs = NULL;
			if (w && w->on_end)
				w->on_end(warg, status, detail);
			free(detail);
		}
		return;
	}
	if (c->slot == SLOT_R_LIST) {
		rdhpf_list_fn fn = c->ldone;
		void *arg = c->arg;
		int status = c->status;
		char *detail = c->detail;
		struct rdhpf_container *cs = c->cs;
		size_t n = c->n;
		struct rdhpf_container **ptrs = xcalloc(n ? n : 1, sizeof *ptrs);
		for (size_t i = 0; i < n; i++)
			ptrs[i] = &cs[i];
		c->detail = NULL;
		c->cs = NULL;
		c->n = 0;
		call_end(c);
		fn(arg, status, detail, ptrs, n);
		free(ptrs);
		for (size_t i = 0; i < n; i++)
			container_clear(&cs[i]);
		free(cs);
		free(detail);
		return;
	}
	{
		rdhpf_done_fn fn = c->done;
		void *arg = c->arg;
		int status = c->status;
		char *detail = c->detail;
		c->detail = NULL;
		call_end(c);
		fn(arg, status, detail);
		free(detail);
	}
}

static void
tramp_done(void *arg, int status, const char *detail)
{
	struct call *c = call_find(argid(arg));

	if (c == NULL || c->has_result) {
		if (c != NULL)
			bug(pi_host(c->pi), c->pi->plugin->info->name, c->slot,
			    "completion called twice");
		else
			bug_unknown(argid(arg), "completion called twice or after stop");
		return;
	}
	if (c->in_slot) {
		c->has_result = 1;
		c->status = status;
		c->detail = detail ? xstrdup(detail) : NULL;
		return;
	}
	{
		rdhpf_done_fn fn = c->done;
		void *carg = c->arg;
		call_end(c);
		fn(carg, status, detail);
	}
}

static void
tramp_list(void *arg, int status, const char *detail, struct rdhpf_container *const *cs, size_t n)
{
	struct call *c = call_find(argid(arg));

	if (c == NULL || c->has_result) {
		if (c != NULL)
			bug(pi_host(c->pi), c->pi->plugin->info->name, c->slot,
			    "list callback called twice");
		else
			bug_unknown(argid(arg), "list callback called twice or after stop");
		return;
	}
	if (c->in_slot) {
		c->has_result = 1;
		c->status = status;
		c->detail = detail ? xstrdup(detail) : NULL;
		c->cs = xcalloc(n ? n : 1, sizeof *c->cs);
		for (size_t i = 0; i < n; i++) {
			if (cs[i] == NULL)
				continue;
			if (container_copy(&c->cs[c->n], cs[i]) != 0) {
				/* A list is the whole truth: one with a container
				 * missing would remove its forwards.  Fail it. */
				for (size_t k = 0; k < c->n; k++)
					container_clear(&c->cs[k]);
				c->n = 0;
				if (c->status == RDHPF_OK) {
					free(c->detail);
					c->status = RDHPF_ERR_NOMEM;
					c->detail = xstrdup("out of memory copying the list");
				}
				break;
			}
			c->n++;
		}
		return;
	}
	{
		rdhpf_list_fn fn = c->ldone;
		void *carg = c->arg;
		call_end(c);
		fn(carg, status, detail, cs, n);
	}
}

/* Start an asynchronous slot: the call's arg is its id.  Returns the
 * slot's status; a result that came inside is deferred, one that came
 * with an error return is dropped as a plugin bug. */
static int
async_finish(uint64_t id, int r)
{
	struct call *c = call_find(id);

	if (c == NULL)
		return r;
	c->in_slot = 0;
	if (r != RDHPF_OK) {
		if (c->has_result || c->established)
			bug(pi_host(c->pi), c->pi->plugin->info->name, c->slot,
			    "callback called although the slot failed");
		call_end(c);
		return r;
	}
	if (c->has_result || c->est_deferred)
		defer(c);
	return r;
}

/* ---- transports ---- */

static struct pinst *
inst_new(const struct plugin *p, struct rdhpf_ctx *ctx)
{
	struct pinst *pi = xcalloc(1, sizeof *pi);

	pi->plugin = p;
	pi->ctx = ctx;
	if (p->info->kind == RDHPF_KIND_TRANSPORT)
		pi->t = p->info->ops.transport;
	else
		pi->r = p->info->ops.runtime;
	return pi;
}

/* create, for either kind: the slot is the same in both ops tables. */
static struct pinst *
inst_create(const struct plugin *p, struct rdhpf_ctx *ctx, const struct rdhpf_host_params *hp,
            int *status, char *err, size_t errlen)
{
	struct pinst *pi = inst_new(p, ctx);
	int (*fn)(struct rdhpf_ctx *, const struct rdhpf_host_params *, void **, char *, size_t) =
	    pi->t != NULL ? RDHPF_SLOT(pi->t, create) : RDHPF_SLOT(pi->r, create);
	int r;

	err[0] = '\0';
	r = fn != NULL ? fn(ctx, hp, &pi->state, err, errlen) : RDHPF_ERR_UNSUPPORTED;
	if (r != RDHPF_OK) {
		*status = r;
		free(pi);
		return NULL;
	}
	*status = RDHPF_OK;
	return pi;
}

struct pinst *
tp_create(const struct plugin *p, struct rdhpf_ctx *ctx, const struct rdhpf_host_params *hp,
          int *status, char *err, size_t errlen)
{
	return inst_create(p, ctx, hp, status, err, errlen);
}

void
tp_destroy(struct pinst *t)
{
	void (*fn)(void *);

	if (t == NULL)
		return;
	calls_drop(t, SLOT_COUNT);
	fn = RDHPF_SLOT(t->t, destroy);
	if (fn != NULL)
		fn(t->state);
	free(t);
}

#define ASYNC_T(t, slot, member, done, arg, ...)                                                   \
	do {                                                                                       \
		struct call *c_;                                                                   \
		void *id_;                                                                         \
		uint64_t n_;                                                                       \
		if (RDHPF_SLOT((t)->t, member) == NULL)                                            \
			return RDHPF_ERR_UNSUPPORTED;                                              \
		c_ = call_new((t), (slot), (arg));                                                 \
		c_->done = (done);                                                                 \
		c_->in_slot = 1;                                                                   \
		n_ = c_->id;                                                                       \
		idof(n_, &id_);                                                                    \
		return async_finish(n_, (t)->t->member((t)->state, __VA_ARGS__, tramp_done, id_)); \
	} while (0)

int
tp_connect(struct pinst *t, rdhpf_done_fn done, void *arg)
{
	struct call *c;
	void *id;

	if (RDHPF_SLOT(t->t, connect) == NULL)
		return RDHPF_ERR_UNSUPPORTED;
	c = call_new(t, SLOT_T_CONNECT, arg);
	c->done = done;
	c->in_slot = 1;
	idof(c->id, &id);
	return async_finish(c->id, t->t->connect(t->state, tramp_done, id));
}

void
tp_disconnect(struct pinst *t)
{
	void (*fn)(void *) = RDHPF_SLOT(t->t, disconnect);

	/* No pending callback may come after it: what is still pending is
	 * dropped first, so that one the plugin makes from inside disconnect
	 * never reaches the core re-entrantly (it is reported as a plugin
	 * bug instead). */
	calls_drop(t, SLOT_COUNT);
	if (fn != NULL)
		fn(t->state);
}

int
tp_health(struct pinst *t, rdhpf_done_fn done, void *arg)
{
	struct call *c;
	void *id;

	if (RDHPF_SLOT(t->t, health_check) == NULL)
		return RDHPF_ERR_UNSUPPORTED;
	c = call_new(t, SLOT_T_HEALTH, arg);
	c->done = done;
	c->in_slot = 1;
	idof(c->id, &id);
	return async_finish(c->id, t->t->health_check(t->state, tramp_done, id));
}

int
tp_forward_add(struct pinst *t, struct rdhpf_forward *f, rdhpf_done_fn done, void *arg)
{
	f->struct_size = sizeof *f;
	ASYNC_T(t, SLOT_T_FORWARD_ADD, forward_add, done, arg, f);
}

int
tp_forward_remove(struct pinst *t, struct rdhpf_forward *f, rdhpf_done_fn done, void *arg)
{
	f->struct_size = sizeof *f;
	ASYNC_T(t, SLOT_T_FORWARD_REMOVE, forward_remove, done, arg, f);
}

int
tp_exec(struct pinst *t, const char *const *argv, const struct rdhpf_stream_cbs *cbs, void *arg,
        void **stream)
{
	int (*fn)(void *, const char *const *, const struct rdhpf_stream_cbs *, void *, void **) =
	    RDHPF_SLOT(t->t, exec);

	if (fn == NULL || !(t->plugin->info->caps & RDHPF_TCAP_EXEC))
		return RDHPF_ERR_UNSUPPORTED;
	return fn(t->state, argv, cbs, arg, stream);
}

bool
tp_can_open_unix(const struct pinst *t)
{
	return t != NULL && RDHPF_SLOT(t->t, open_unix) != NULL &&
	       (t->plugin->info->caps & RDHPF_TCAP_UNIX_STREAM);
}

int
tp_open_unix(struct pinst *t, const char *path, const struct rdhpf_stream_cbs *cbs, void *arg,
             void **stream)
{
	if (!tp_can_open_unix(t))
		return RDHPF_ERR_UNSUPPORTED;
	return t->t->open_unix(t->state, path, cbs, arg, stream);
}

int
tp_stream_write(struct pinst *t, void *stream, const void *buf, size_t len)
{
	int (*fn)(void *, void *, const void *, size_t) = RDHPF_SLOT(t->t, stream_write);

	return fn != NULL ? fn(t->state, stream, buf, len) : RDHPF_ERR_UNSUPPORTED;
}

void
tp_stream_close(struct pinst *t, void *stream)
{
	void (*fn)(void *, void *) = RDHPF_SLOT(t->t, stream_close);

	if (fn != NULL)
		fn(t->state, stream);
}

int
tp_forward_stats(struct pinst *t, struct rdhpf_forward *f, struct rdhpf_forward_stats *out)
{
	int (*fn)(void *, const struct rdhpf_forward *, struct rdhpf_forward_stats *) =
	    RDHPF_SLOT(t->t, forward_stats);

	memset(out, 0, sizeof *out);
	out->struct_size = sizeof *out;
	f->struct_size = sizeof *f;
	if (fn == NULL || !(t->plugin->info->caps & RDHPF_TCAP_FORWARD_STATS))
		return RDHPF_ERR_UNSUPPORTED;
	return fn(t->state, f, out);
}

/* ---- runtimes ---- */

struct pinst *
rt_create(const struct plugin *p, struct rdhpf_ctx *ctx, const struct rdhpf_host_params *hp,
          int *status, char *err, size_t errlen)
{
	return inst_create(p, ctx, hp, status, err, errlen);
}

void
rt_destroy(struct pinst *r)
{
	void (*fn)(void *);

	if (r == NULL)
		return;
	calls_drop(r, SLOT_COUNT);
	r->wcbs = NULL;
	fn = RDHPF_SLOT(r->r, destroy);
	if (fn != NULL)
		fn(r->state);
	free(r);
}

bool
rt_has_events(const struct pinst *r)
{
	return r != NULL && (r->plugin->info->caps & RDHPF_RCAP_EVENTS) &&
	       RDHPF_SLOT(r->r, watch) != NULL;
}

static struct call *
watch_call(void *arg, const char *what)
{
	struct call *c = call_find(argid(arg));

	if (c == NULL || c->slot != SLOT_R_WATCH) {
		bug_unknown(argid(arg), what);
		return NULL;
	}
	return c;
}

static void
tramp_established(void *arg)
{
	struct call *c = watch_call(arg, "on_established after stop or on_end");
	struct pinst *pi;

	if (c == NULL)
		return;
	pi = c->pi;
	if (c->established) {
		bug(pi_host(pi), pi->plugin->info->name, SLOT_R_WATCH,
		    "on_established called twice");
		return;
	}
	c->established = 1;
	if (c->in_slot) {
		c->est_deferred = 1;
		return;
	}
	if (pi->wcbs && pi->wcbs->on_established)
		pi->wcbs->on_established(pi->warg);
}

static void
tramp_event(void *arg, int type, int64_t time_ns, struct rdhpf_container *ct)
{
	struct call *c = watch_call(arg, "on_event after stop or on_end");
	struct pinst *pi;

	if (c == NULL || c->has_result)
		return;
	pi = c->pi;
	if (pi->wcbs && pi->wcbs->on_event)
		pi->wcbs->on_event(pi->warg, type, time_ns, ct);
}

static void
tramp_end(void *arg, int status, const char *detail)
{
	struct call *c = watch_call(arg, "on_end after stop or called twice");
	struct pinst *pi;
	const struct rdhpf_watch_cbs *w;
	void *warg;

	if (c == NULL)
		return;
	pi = c->pi;
	if (c->has_result) {
		bug(pi_host(pi), pi->plugin->info->name, SLOT_R_WATCH, "on_end called twice");
		return;
	}
	if (c->in_slot || c->est_deferred) {
		c->has_result = 1;
		c->status = status;
		c->detail = detail ? xstrdup(detail) : NULL;
		return;
	}
	w = pi->wcbs;
	warg = pi->warg;
	pi->wcbs = NULL;
	call_end(c);
	if (w && w->on_end)
		w->on_end(warg, status, detail);
}

static const struct rdhpf_watch_cbs tramp_watch = {
    RDHPF_INIT(rdhpf_watch_cbs),
    .on_established = tramp_established,
    .on_event = tramp_event,
    .on_end = tramp_end,
};

int
rt_watch(struct pinst *r, const struct rdhpf_watch_cbs *cbs, void *arg)
{
	struct call *c;
	void *id;

	if (!rt_has_events(r))
		return RDHPF_ERR_UNSUPPORTED;
	calls_drop(r, SLOT_R_WATCH);
	r->wcbs = cbs;
	r->warg = arg;
	c = call_new(r, SLOT_R_WATCH, arg);
	c->in_slot = 1;
	idof(c->id, &id);
	return async_finish(c->id, r->r->watch(r->state, &tramp_watch, id));
}

int
rt_list(struct pinst *r, rdhpf_list_fn done, void *arg)
{
	struct call *c;
	void *id;

	if (RDHPF_SLOT(r->r, list) == NULL)
		return RDHPF_ERR_UNSUPPORTED;
	c = call_new(r, SLOT_R_LIST, arg);
	c->ldone = done;
	c->in_slot = 1;
	idof(c->id, &id);
	return async_finish(c->id, r->r->list(r->state, tramp_list, id));
}

void
rt_stop(struct pinst *r)
{
	void (*fn)(void *);

	if (r == NULL)
		return;
	calls_drop(r, SLOT_R_WATCH);
	calls_drop(r, SLOT_R_LIST);
	r->wcbs = NULL;
	fn = RDHPF_SLOT(r->r, stop);
	if (fn != NULL)
		fn(r->state);
}
