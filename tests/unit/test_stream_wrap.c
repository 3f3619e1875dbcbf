/* The host API's stream wrapper (core/hostapi.c) and the disconnect slot
 * (core/slots.c) against an in-process transport that calls back at the
 * worst moments, as plugin.h allows:
 *  - a runtime that closes its stream inside the stream's own on_close:
 *    the transport's stream is not closed again, nothing is freed twice;
 *  - a transport that delivers data and the end inside exec(): the
 *    runtime sees neither before stream_exec returned, then both, in order;
 *  - a transport that completes a pending connect inside disconnect(): the
 *    core never sees it (it is dropped before the slot runs).
 * The ASan build of the unit suite turns a use-after-free here into a
 * failure. */
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

/* ---- the transport ---- */

static struct rdhpf_stream_cbs t_cbs;
static void *t_arg;
static void *t_stream; /* the transport's handle of the last exec */
static int t_closes;   /* transport stream_close calls */
static int t_eager;    /* exec: deliver data and the end inside the call */
static rdhpf_done_fn t_cdone;
static void *t_carg;

static int
t_create(struct rdhpf_ctx *c, const struct rdhpf_host_params *p, void **s, char *e, size_t l)
{
	(void)c;
	(void)p;
	(void)e;
	(void)l;
	*s = (void *)(uintptr_t)1;
	return RDHPF_OK;
}

static void
t_void(void *s)
{
	(void)s;
}

static int
t_connect(void *s, rdhpf_done_fn d, void *a)
{
	(void)s;
	t_cdone = d;
	t_carg = a;
	return RDHPF_OK;
}

static void
t_disconnect(void *s)
{
	(void)s;
	/* Wrong, but it happens: finish the pending connect from inside. */
	if (t_cdone != NULL)
		t_cdone(t_carg, RDHPF_ERR_CANCELLED, "disconnected");
	t_cdone = NULL;
}

static int
t_exec(void *s, const char *const *argv, const struct rdhpf_stream_cbs *cbs, void *arg, void **out)
{
	(void)s;
	(void)argv;
	t_cbs = *cbs;
	t_arg = arg;
	*out = t_stream = malloc(1);
	if (t_eager) {
		cbs->on_data(arg, "hel", 3);
		cbs->on_data(arg, "lo", 2);
		cbs->on_close(arg, RDHPF_OK, 3, "tail");
		free(*out); /* ended: the transport forgets it */
	}
	return RDHPF_OK;
}

static void
t_stream_close(void *s, void *st)
{
	(void)s;
	t_closes++;
	free(st);
}

static int
t_stream_write(void *s, void *st, const void *b, size_t n)
{
	(void)s;
	(void)st;
	(void)b;
	(void)n;
	return RDHPF_OK;
}

static const struct rdhpf_transport_ops tops = {
    RDHPF_INIT(rdhpf_transport_ops),
    .create = t_create,
    .destroy = t_void,
    .connect = t_connect,
    .disconnect = t_disconnect,
    .exec = t_exec,
    .stream_write = t_stream_write,
    .stream_close = t_stream_close,
};

static const struct rdhpf_plugin_info tinfo = {
    .abi_major = RDHPF_ABI_MAJOR,
    .abi_minor = RDHPF_ABI_MINOR,
    .struct_size = sizeof(struct rdhpf_plugin_info),
    .kind = RDHPF_KIND_TRANSPORT,
    .name = "t",
    .version = "1",
    .caps = RDHPF_TCAP_EXEC,
    .ops.transport = &tops,
};

/* ---- the runtime side ---- */

static struct rdhpf_stream *r_stream;
static char r_data[64];
static size_t r_len;
static int r_closes, r_close_status, r_close_exit, r_close_inside;
static int r_close_in_cb; /* close the stream inside on_close */
static int r_in_exec;
static char r_detail[32];

static void
r_on_data(void *a, const char *b, size_t n)
{
	(void)a;
	assert_false(r_in_exec);
	assert_true(r_len + n < sizeof r_data);
	memcpy(r_data + r_len, b, n);
	r_len += n;
}

static void
r_on_close(void *a, int st, int code, const char *d)
{
	(void)a;
	r_closes++;
	r_close_inside = r_in_exec;
	r_close_status = st;
	r_close_exit = code;
	snprintf(r_detail, sizeof r_detail, "%s", d ? d : "");
	if (r_close_in_cb)
		core_host_api.stream_close(r_stream);
}

static const struct rdhpf_stream_cbs rcbs = {
    RDHPF_INIT(rdhpf_stream_cbs),
    .on_data = r_on_data,
    .on_close = r_on_close,
};

static struct pinst *
setup(struct plugin *tp, struct rdhpf_ctx **tctx, struct rdhpf_ctx **rctx)
{
	struct rdhpf_host_params hp = {RDHPF_INIT(rdhpf_host_params)};
	char err[64];
	int st;
	struct pinst *pi;

	*tctx = ctx_new(NULL, "h", tp, NULL);
	*rctx = ctx_new(NULL, "h", NULL, NULL);
	pi = tp_create(tp, *tctx, &hp, &st, err, sizeof err);
	assert_non_null(pi);
	(*rctx)->tpi = pi;
	(*rctx)->tctx = *tctx;
	r_len = 0;
	r_closes = 0;
	t_closes = 0;
	return pi;
}

static void
turns(int n)
{
	while (n-- > 0)
		uv_run(core_loop(), UV_RUN_NOWAIT);
}

static void
test_close_inside_on_close(void **s)
{
	struct plugin tp = {.path = (char *)(uintptr_t) "mem", .info = &tinfo};
	struct rdhpf_ctx *tctx, *rctx;
	const char *argv[] = {"true", NULL};
	struct pinst *pi = setup(&tp, &tctx, &rctx);

	(void)s;
	t_eager = 0;
	r_close_in_cb = 1;
	assert_int_equal(core_host_api.stream_exec(rctx, argv, &rcbs, NULL, &r_stream), RDHPF_OK);
	t_cbs.on_close(t_arg, RDHPF_OK, 0, NULL); /* the command ended */
	free(t_stream);                           /* ... and the transport forgot it */
	assert_int_equal(r_closes, 1);
	/* The transport ended that stream itself: never closed again. */
	assert_int_equal(t_closes, 0);
	r_close_in_cb = 0;
	assert_int_equal(ctx_free(rctx), 0); /* nothing leaked, nothing left */
	tp_destroy(pi);
	ctx_free(tctx);
}

static void
test_callbacks_inside_exec(void **s)
{
	struct plugin tp = {.path = (char *)(uintptr_t) "mem", .info = &tinfo};
	struct rdhpf_ctx *tctx, *rctx;
	const char *argv[] = {"true", NULL};
	struct pinst *pi = setup(&tp, &tctx, &rctx);

	(void)s;
	t_eager = 1;
	r_in_exec = 1;
	assert_int_equal(core_host_api.stream_exec(rctx, argv, &rcbs, NULL, &r_stream), RDHPF_OK);
	r_in_exec = 0;
	assert_int_equal(r_len, 0);
	assert_int_equal(r_closes, 0);
	turns(3);
	assert_int_equal(r_len, 5);
	assert_memory_equal(r_data, "hello", 5);
	assert_int_equal(r_closes, 1);
	assert_false(r_close_inside);
	assert_int_equal(r_close_status, RDHPF_OK);
	assert_int_equal(r_close_exit, 3);
	assert_string_equal(r_detail, "tail");
	assert_int_equal(t_closes, 0);
	t_eager = 0;
	assert_int_equal(ctx_free(rctx), 0);
	tp_destroy(pi);
	ctx_free(tctx);
}

static int c_calls;

static void
core_done(void *a, int st, const char *d)
{
	(void)a;
	(void)st;
	(void)d;
	c_calls++;
}

static void
test_done_inside_disconnect(void **s)
{
	struct plugin tp = {.path = (char *)(uintptr_t) "mem", .info = &tinfo};
	struct rdhpf_ctx *tctx, *rctx;
	struct pinst *pi = setup(&tp, &tctx, &rctx);

	(void)s;
	c_calls = 0;
	assert_int_equal(tp_connect(pi, core_done, NULL), RDHPF_OK);
	tp_disconnect(pi);
	turns(3);
	/* Pending callbacks are never called after disconnect. */
	assert_int_equal(c_calls, 0);
	ctx_free(rctx);
	tp_destroy(pi);
	ctx_free(tctx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_close_inside_on_close),
	    cmocka_unit_test(test_callbacks_inside_exec),
	    cmocka_unit_test(test_done_inside_disconnect),
	};
	log_init(stderr, LOG_LOGFMT, RDHPF_LOG_ERROR, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
