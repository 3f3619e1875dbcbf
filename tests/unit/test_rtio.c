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

static void
on_event(void *arg, const struct rdhpf_event *ev)
{
	(void)arg;
	(void)ev;
}

static void
on_end(void *arg, int status, const char *detail)
{
	(void)arg;
	(void)detail;
	ends++;
	end_status = status;
}

static const struct rdhpf_watch_cbs cbs = {.on_event = on_event, .on_end = on_end};

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
	api.abi_minor = RDHPF_ABI_MINOR;
	api.struct_size = sizeof api;
	api.log = stub_log;
	api.now_ms = stub_now_ms;
	api.counter_add = stub_counter_add;
	api.observe = stub_observe;
	api.resync = stub_resync;
	dropped_counted = 0;
	resyncs = ends = end_status = 0;
	return 0;
}

/* A START waiting for its ports at the head; an engine flooding events
 * behind it.  Return 1 when the event was queued. */
static int
offer(struct rt *r, int type, unsigned i)
{
	struct rt_event ev;

	memset(&ev, 0, sizeof ev);
	snprintf(ev.id, sizeof ev.id, "%064x", i);
	if (!rt_q_room(r))
		return 0;
	assert_non_null(rt_q_push(r, type, &ev));
	return 1;
}

static void
test_queue_bounded(void **s)
{
	struct rt r;
	unsigned queued = 0;
	(void)s;

	rt_base_init(&r, &api, NULL, nop_free);
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

/* With a core older than host API 1.1 there is no resync slot: the watch
 * ends instead, so that the core resyncs in full. */
static void
test_resync_falls_back_to_ending_the_watch(void **s)
{
	struct rt r;
	(void)s;

	api.abi_minor = 0;
	api.struct_size = (uint32_t)offsetof(struct rdhpf_host_api, resync);
	rt_base_init(&r, &api, NULL, nop_free);
	r.wcbs = &cbs;
	rt_resync(&r, "oversized event line dropped");
	assert_int_equal(resyncs, 0);
	assert_int_equal(ends, 1);
	assert_int_equal(end_status, RDHPF_ERR_PROTO);
	assert_int_equal(dropped_counted, 1);

	api.abi_minor = RDHPF_ABI_MINOR;
	api.struct_size = sizeof api;
	r.wcbs = &cbs;
	rt_resync(&r, "oversized event line dropped");
	assert_int_equal(resyncs, 1);
	assert_int_equal(ends, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_queue_bounded, setup),
	    cmocka_unit_test_setup(test_resync_falls_back_to_ending_the_watch, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
