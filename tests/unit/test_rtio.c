/* The runtimes' event queue (plugins/runtime-common/rtio.c, compiled in):
 * bounded, and what it drops is counted and makes the core list again.
 * The host API is a stub that records the calls: the queue is pure logic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rtio.h"

static uint64_t dropped_counted;
static int resyncs, ends, end_status;

static void
stub_log(struct rdhpf_ctx *ctx, int level, const char *msg, ...)
{
	(void)ctx;
	(void)level;
	(void)msg;
}

static uint64_t
stub_now_ms(struct rdhpf_ctx *ctx)
{
	(void)ctx;
	return 0;
}

static void
stub_counter_add(struct rdhpf_ctx *ctx, const char *name, uint64_t d)
{
	(void)ctx;
	if (strcmp(name, "events_dropped_total") == 0)
		dropped_counted += d;
}

static void
stub_observe(struct rdhpf_ctx *ctx, const char *name, double v)
{
	(void)ctx;
	(void)name;
	(void)v;
}

static void
stub_resync(struct rdhpf_ctx *ctx, const char *reason)
{
	(void)ctx;
	(void)reason;
	resyncs++;
}

static int events, established;
static char last_id[80];

static void
on_event(void *arg, int type, int64_t time_ns, struct rdhpf_container *c)
{
	(void)arg;
	(void)type;
	(void)time_ns;
	(void)c;
	events++;
}

static void
on_established(void *arg)
{
	(void)arg;
	established++;
}

static void
on_end(void *arg, int status, const char *detail)
{
	(void)arg;
	(void)detail;
	ends++;
	end_status = status;
}

/* Containers: the id is all this test looks at. */
struct rdhpf_container {
	char id[80];
};

static struct rdhpf_container *
stub_container_new(struct rdhpf_ctx *ctx, const char *id, const char *name)
{
	struct rdhpf_container *c = calloc(1, sizeof *c);

	(void)ctx;
	(void)name;
	assert_non_null(c);
	snprintf(c->id, sizeof c->id, "%s", id);
	snprintf(last_id, sizeof last_id, "%s", id);
	return c;
}

static int
stub_set_image(struct rdhpf_container *c, const char *image)
{
	(void)c;
	(void)image;
	return RDHPF_OK;
}

static int
stub_add_label(struct rdhpf_container *c, const char *k, const char *v)
{
	(void)c;
	(void)k;
	(void)v;
	return RDHPF_OK;
}

static int
stub_add_port(struct rdhpf_container *c, const struct rdhpf_port *p)
{
	(void)c;
	(void)p;
	return RDHPF_OK;
}

static void
stub_container_free(struct rdhpf_container *c)
{
	free(c);
}

static const struct rdhpf_watch_cbs cbs = {
    RDHPF_INIT(rdhpf_watch_cbs),
    .on_established = on_established,
    .on_event = on_event,
    .on_end = on_end,
};

static int ports_asked;

static int
want_ports(struct rt *r, struct rt_item *it)
{
	(void)r;
	(void)it;
	ports_asked++;
	return RDHPF_OK;
}

static void
nop_free(struct rt *r)
{
	(void)r;
}

static struct rdhpf_host_api api;

static int
setup(void **s)
{
	(void)s;
	memset(&api, 0, sizeof api);
	api.abi_major = RDHPF_ABI_MAJOR;
	api.struct_size = sizeof api;
	api.log = stub_log;
	api.now_ms = stub_now_ms;
	api.counter_add = stub_counter_add;
	api.observe = stub_observe;
	api.resync = stub_resync;
	api.container_new = stub_container_new;
	api.container_set_image = stub_set_image;
	api.container_add_label = stub_add_label;
	api.container_add_port = stub_add_port;
	api.container_free = stub_container_free;
	dropped_counted = 0;
	resyncs = ends = end_status = 0;
	events = established = ports_asked = 0;
	return 0;
}

/* A START waiting for its ports at the head; an engine flooding events
 * behind it.  Return 1 when the event was queued. */
static int
offer(struct rt *r, int type, unsigned i)
{
	struct rt_event ev;
	char id[65];

	memset(&ev, 0, sizeof ev);
	snprintf(id, sizeof id, "%064x", i);
	assert_int_equal(rsdk_cont_init(&ev.c, id, NULL), RDHPF_OK);
	if (!rt_q_room(r)) {
		rt_event_clear(&ev);
		return 0;
	}
	assert_non_null(rt_q_push(r, type, &ev));
	assert_null(ev.c.id); /* taken */
	return 1;
}

static void
test_queue_bounded(void **s)
{
	struct rt r;
	unsigned queued = 0;
	(void)s;

	rt_base_init(&r, &api, NULL, nop_free, want_ports);
	r.wcbs = &cbs;
	for (unsigned i = 0; i < RT_QUEUE_MAX + 100; i++)
		queued += (unsigned)offer(&r, i == 0 ? RDHPF_EV_START : RDHPF_EV_STOP, i);
	assert_int_equal(queued, RT_QUEUE_MAX);
	assert_int_equal(r.q_len, RT_QUEUE_MAX);
	assert_int_equal(dropped_counted, 100);
	assert_int_equal(resyncs, 1); /* once per overflow, not once an event */
	assert_int_equal(ends, 0);    /* the stream goes on */

	/* Drained (the START got its ports): the next overflow asks again. */
	rt_item_fill(&r, r.q_head, NULL);
	assert_int_equal(rt_q_flush(&r), 1);
	assert_int_equal(r.q_len, 0);
	for (unsigned i = 0; i < RT_QUEUE_MAX + 1; i++)
		offer(&r, i == 0 ? RDHPF_EV_START : RDHPF_EV_STOP, i);
	assert_int_equal(resyncs, 2);
	assert_int_equal(dropped_counted, 101);
	rt_q_clear(&r);
	assert_int_equal(r.q_len, 0);
}

/* A host table without resync (struct_size short of it): the watch ends
 * instead, so that the core resyncs in full. */
static void
test_resync_falls_back_to_ending_the_watch(void **s)
{
	struct rt r;
	(void)s;

	api.struct_size = (uint32_t)offsetof(struct rdhpf_host_api, resync);
	rt_base_init(&r, &api, NULL, nop_free, want_ports);
	r.wcbs = &cbs;
	rt_resync(&r, "oversized event line dropped");
	assert_int_equal(resyncs, 0);
	assert_int_equal(ends, 1);
	assert_int_equal(end_status, RDHPF_ERR_PROTO);
	assert_int_equal(dropped_counted, 1);

	api.struct_size = sizeof api;
	r.wcbs = &cbs;
	rt_resync(&r, "oversized event line dropped");
	assert_int_equal(resyncs, 1);
	assert_int_equal(ends, 1);
}
/* The intake: a START waits for its ports and holds up the STOP behind
 * it; filled, both go out in order; on_established comes once. */
static void
test_event_take_order(void **s)
{
	struct rt r;
	struct rt_event ev;
	const char *start = "{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":"
	                    "\"aaaaaaaaaaaa\"}}";
	const char *stop = "{\"Type\":\"container\",\"Action\":\"die\",\"Actor\":{\"ID\":"
	                   "\"bbbbbbbbbbbb\"}}";
	struct rsdk_cont c;
	(void)s;

	rt_base_init(&r, &api, NULL, nop_free, want_ports);
	rt_watch_begin(&r, &cbs, NULL);
	assert_int_equal(rt_established(&r), 1);
	assert_int_equal(rt_established(&r), 1);
	assert_int_equal(established, 1);
	assert_int_equal(rt_docker_event(start, strlen(start), &ev, NULL), 0);
	assert_int_equal(rt_event_take(&r, &ev), 0);
	assert_int_equal(ports_asked, 1);
	assert_int_equal(rt_docker_event(stop, strlen(stop), &ev, NULL), 0);
	assert_int_equal(rt_event_take(&r, &ev), 0);
	assert_int_equal(events, 0); /* the STOP waits behind the START */
	assert_int_equal(r.q_len, 2);
	assert_int_equal(rsdk_cont_init(&c, "aaaaaaaaaaaa", "web"), RDHPF_OK);
	rt_item_fill(&r, r.q_head, &c);
	assert_null(c.id);
	assert_int_equal(rt_q_flush(&r), 1);
	assert_int_equal(events, 2);
	assert_string_equal(last_id, "bbbbbbbbbbbb");
	assert_int_equal(r.q_len, 0);
	rt_stop(&r);
	assert_null(r.wcbs);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_queue_bounded, setup),
	    cmocka_unit_test_setup(test_resync_falls_back_to_ending_the_watch, setup),
	    cmocka_unit_test_setup(test_event_take_order, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
