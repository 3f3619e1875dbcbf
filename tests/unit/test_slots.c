/* The slot wrappers (core/slots.c) against an in-process plugin that
 * misbehaves on purpose: completions called inside the slot are deferred
 * to the next loop turn, a second completion is logged once naming plugin
 * and slot and ignored, a slot outside the ops' struct_size is absent, and
 * a list's containers called back inside the slot survive the deferral. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core.h"
#include "log.h"

static rdhpf_done_fn g_done;
static void *g_done_arg;
static int g_twice;

static int
p_create(struct rdhpf_ctx *c, const struct rdhpf_host_params *p, void **s, char *e, size_t l)
{
	(void)c;
	(void)p;
	(void)e;
	(void)l;
	*s = (void *)(uintptr_t)1;
	return RDHPF_OK;
}

static void
p_void(void *s)
{
	(void)s;
}

/* connect: completes inside the slot (twice when g_twice). */
static int
p_connect(void *s, rdhpf_done_fn done, void *arg)
{
	(void)s;
	done(arg, RDHPF_OK, "inside");
	if (g_twice)
		done(arg, RDHPF_ERR_GENERIC, "again");
	return RDHPF_OK;
}

/* health: completes later, by the test. */
static int
p_health(void *s, rdhpf_done_fn done, void *arg)
{
	(void)s;
	g_done = done;
	g_done_arg = arg;
	return RDHPF_OK;
}

/* forward_add: calls done and then fails: the done must not reach the core. */
static int
p_fwd(void *s, const struct rdhpf_forward *f, rdhpf_done_fn done, void *arg)
{
	(void)s;
	assert_int_equal(f->struct_size, sizeof *f);
	done(arg, RDHPF_OK, NULL);
	return RDHPF_ERR_BUSY;
}

static const struct rdhpf_transport_ops tops = {
	RDHPF_INIT(rdhpf_transport_ops),
	.create = p_create,
	.destroy = p_void,
	.connect = p_connect,
	.disconnect = p_void,
	.health_check = p_health,
	.forward_add = p_fwd,
	.forward_remove = p_fwd,
};

static const struct rdhpf_plugin_info tinfo = {
	.abi_major = RDHPF_ABI_MAJOR,
	.abi_minor = RDHPF_ABI_MINOR,
	.struct_size = sizeof(struct rdhpf_plugin_info),
	.kind = RDHPF_KIND_TRANSPORT,
	.name = "misbehaving",
	.version = "1",
	.ops.transport = &tops,
};

static struct rdhpf_ctx *g_rctx;

/* list: answers inside the slot with one container it frees at once. */
static int
r_list(void *s, rdhpf_list_fn done, void *arg)
{
	struct rdhpf_container *c = core_host_api.container_new(g_rctx, "c1", "/web");
	struct rdhpf_port p = {RDHPF_INIT(rdhpf_port), .host_ip = "0.0.0.0", .host_port = 8080,
	                       .container_port = 80, .proto = RDHPF_PROTO_TCP};
	struct rdhpf_container *const cs[] = {c};

	(void)s;
	assert_non_null(c);
	assert_int_equal(core_host_api.container_add_port(c, &p), RDHPF_OK);
	assert_int_equal(core_host_api.container_set_image(c, "nginx:1"), RDHPF_OK);
	assert_int_equal(core_host_api.container_add_label(c, "app", "web"), RDHPF_OK);
	done(arg, RDHPF_OK, NULL, cs, 1);
	core_host_api.container_free(c);
	return RDHPF_OK;
}

static const struct rdhpf_watch_cbs *g_wcbs;
static void *g_warg;

static int
r_watch(void *s, const struct rdhpf_watch_cbs *cbs, void *arg)
{
	(void)s;
	g_wcbs = cbs;
	g_warg = arg;
	cbs->on_established(arg);
	return RDHPF_OK;
}

/* A 2.0 runtime table cut before stop: stop is absent. */
static const struct rdhpf_runtime_ops rops = {
	.struct_size = offsetof(struct rdhpf_runtime_ops, stop),
	.create = p_create,
	.destroy = p_void,
	.watch = r_watch,
	.list = r_list,
	.stop = p_void,
};

static const struct rdhpf_plugin_info rinfo = {
	.abi_major = RDHPF_ABI_MAJOR,
	.abi_minor = RDHPF_ABI_MINOR,
	.struct_size = sizeof(struct rdhpf_plugin_info),
	.kind = RDHPF_KIND_RUNTIME,
	.name = "lister",
	.version = "1",
	.caps = RDHPF_RCAP_EVENTS,
	.ops.runtime = &rops,
};

struct got {
	int calls;
	int status;
	char detail[64];
	char id[64], name[64], image[64], label[64];
	size_t n, n_ports;
	uint16_t port;
};

static void
core_done(void *arg, int status, const char *detail)
{
	struct got *g = arg;

	g->calls++;
	g->status = status;
	snprintf(g->detail, sizeof g->detail, "%s", detail ? detail : "");
}

static void
core_list(void *arg, int status, const char *detail, struct rdhpf_container *const *cs, size_t n)
{
	struct got *g = arg;

	(void)detail;
	g->calls++;
	g->status = status;
	g->n = n;
	if (n > 0) {
		snprintf(g->id, sizeof g->id, "%s", cs[0]->id);
		snprintf(g->name, sizeof g->name, "%s", cs[0]->name);
		snprintf(g->image, sizeof g->image, "%s", cs[0]->image ? cs[0]->image : "");
		if (cs[0]->n_labels == 1)
			snprintf(g->label, sizeof g->label, "%s=%s", cs[0]->labels[0].key,
			         cs[0]->labels[0].value);
		g->n_ports = cs[0]->n_ports;
		g->port = cs[0]->n_ports ? cs[0]->ports[0].host_port : 0;
	}
}

static int g_established;

static void
core_established(void *arg)
{
	(void)arg;
	g_established++;
}

static void
turn(void)
{
	uv_run(core_loop(), UV_RUN_NOWAIT);
}

static char *g_logbuf;
static size_t g_loglen;
static FILE *g_log;

static size_t
log_count(const char *needle)
{
	size_t n = 0;

	fflush(g_log);
	for (const char *p = g_logbuf; p && (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static void
test_async_completions(void **s)
{
	struct plugin tp = {.path = (char *)(uintptr_t)"mem", .info = &tinfo};
	struct rdhpf_host_params hp = {RDHPF_INIT(rdhpf_host_params)};
	struct rdhpf_ctx *ctx = ctx_new(NULL, "h", &tp, NULL);
	struct rdhpf_forward f = {0};
	struct got g = {0};
	char err[64];
	int st;
	unsigned bugs0 = slots_bug_count();
	struct pinst *t = tp_create(&tp, ctx, &hp, &st, err, sizeof err);

	(void)s;
	assert_non_null(t);
	/* Completed inside connect: not before it returned. */
	assert_int_equal(tp_connect(t, core_done, &g), RDHPF_OK);
	assert_int_equal(g.calls, 0);
	turn();
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.status, RDHPF_OK);
	assert_string_equal(g.detail, "inside");

	/* Twice inside connect: one reaches the core, one bug logged. */
	g_twice = 1;
	memset(&g, 0, sizeof g);
	assert_int_equal(tp_connect(t, core_done, &g), RDHPF_OK);
	turn();
	turn();
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.status, RDHPF_OK);
	assert_int_equal(slots_bug_count(), bugs0 + 1);
	g_twice = 0;

	/* Later, then again: the second is ignored and logged once only. */
	memset(&g, 0, sizeof g);
	assert_int_equal(tp_health(t, core_done, &g), RDHPF_OK);
	g_done(g_done_arg, RDHPF_OK, NULL);
	assert_int_equal(g.calls, 1);
	g_done(g_done_arg, RDHPF_ERR_CLOSED, NULL);
	g_done(g_done_arg, RDHPF_ERR_CLOSED, NULL);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.status, RDHPF_OK);
	assert_int_equal(slots_bug_count(), bugs0 + 3);
	assert_int_equal(log_count("slot=health_check"), 1);
	assert_int_equal(log_count("plugin=misbehaving"), 2); /* connect's, health's */

	/* Done inside a slot that then failed: dropped. */
	memset(&g, 0, sizeof g);
	assert_int_equal(tp_forward_add(t, &f, core_done, &g), RDHPF_ERR_BUSY);
	turn();
	assert_int_equal(g.calls, 0);

	/* Absent slots answer UNSUPPORTED. */
	assert_int_equal(tp_exec(t, NULL, NULL, NULL, NULL), RDHPF_ERR_UNSUPPORTED);
	assert_false(tp_can_open_unix(t));
	{
		struct rdhpf_forward_stats fs;
		assert_int_equal(tp_forward_stats(t, &f, &fs), RDHPF_ERR_UNSUPPORTED);
		assert_int_equal(fs.struct_size, sizeof fs);
	}
	tp_destroy(t);
	assert_int_equal(ctx_free(ctx), 0);
	turn();
}

static void
test_list_and_watch(void **s)
{
	struct plugin rp = {.path = (char *)(uintptr_t)"mem", .info = &rinfo};
	struct rdhpf_host_params hp = {RDHPF_INIT(rdhpf_host_params)};
	static const struct rdhpf_watch_cbs wcbs = {
		RDHPF_INIT(rdhpf_watch_cbs),
		.on_established = core_established,
	};
	struct got g = {0};
	char err[64];
	int st;
	struct pinst *r;

	(void)s;
	g_rctx = ctx_new(NULL, "h", &rp, NULL);
	r = rt_create(&rp, g_rctx, &hp, &st, err, sizeof err);
	assert_non_null(r);
	assert_true(slot_present(&rinfo, SLOT_R_LIST));
	assert_false(slot_present(&rinfo, SLOT_R_STOP));
	assert_int_equal(rt_list(r, core_list, &g), RDHPF_OK);
	assert_int_equal(g.calls, 0);
	turn();
	/* The plugin freed its container inside the slot; the core got a copy. */
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.id, "c1");
	assert_string_equal(g.name, "web");
	assert_string_equal(g.image, "nginx:1");
	assert_string_equal(g.label, "app=web");
	assert_int_equal(g.n_ports, 1);
	assert_int_equal(g.port, 8080);

	/* on_established inside watch: the next turn; a second is a bug. */
	g_established = 0;
	assert_true(rt_has_events(r));
	assert_int_equal(rt_watch(r, &wcbs, NULL), RDHPF_OK);
	assert_int_equal(g_established, 0);
	turn();
	assert_int_equal(g_established, 1);
	g_wcbs->on_established(g_warg);
	assert_int_equal(g_established, 1);
	assert_int_equal(log_count("on_established called twice"), 1);

	/* stop is absent (outside struct_size): rt_stop still ends the
	 * watch on the core's side. */
	rt_stop(r);
	g_wcbs->on_end(g_warg, RDHPF_OK, NULL);
	rt_destroy(r);
	/* No container left behind: the plugin freed its own. */
	assert_int_equal(ctx_free(g_rctx), 0);
	turn();
}

static void
never_cb(void *arg)
{
	(void)arg;
}

static void
test_leak_report(void **s)
{
	struct plugin rp = {.path = (char *)(uintptr_t)"mem", .info = &rinfo};
	struct rdhpf_ctx *ctx = ctx_new(NULL, "h", &rp, NULL);
	char buf[512];

	(void)s;
	assert_null(core_host_api.container_new(ctx, "bad id!", "x"));
	assert_non_null(core_host_api.container_new(ctx, "abc123", "x"));
	assert_int_equal(ctx_describe_handles(ctx, buf, sizeof buf), 1);
	assert_string_equal(buf, "container abc123\n");
	/* A static callback is named by object and offset, never by the
	 * nearest exported symbol. */
	assert_non_null(core_host_api.timer_start(ctx, 100000, 0, never_cb, NULL));
	assert_int_equal(ctx_describe_handles(ctx, buf, sizeof buf), 2);
	assert_non_null(strstr(buf, "timer callback test-slots+0x"));
	assert_int_equal(ctx_free(ctx), 2);
	assert_int_equal(log_count("leaked container abc123"), 1);
	assert_int_equal(log_count("leaked timer callback test-slots+0x"), 1);
	turn();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_async_completions),
		cmocka_unit_test(test_list_and_watch),
		cmocka_unit_test(test_leak_report),
	};
	int r;

	g_log = open_memstream(&g_logbuf, &g_loglen);
	log_init(g_log, LOG_LOGFMT, RDHPF_LOG_DEBUG, NULL);
	r = cmocka_run_group_tests(tests, NULL, NULL);
	fclose(g_log);
	free(g_logbuf);
	return r;
}
