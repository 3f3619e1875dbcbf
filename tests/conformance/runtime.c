/* Runtime conformance suite: one binary, run once per runtime plugin.
 *   argv[1] = runtime plugin, argv[2] = transport plugin to reach the remote.
 * Host parameters come from the environment (harness.h), plus:
 *   RDHPF_CONF_EXPECT_PORT  a published TCP port the suite waits to see start
 *   RDHPF_CONF_START_CMD    local shell command that starts that container
 *                           (unset: the remote starts it by itself, as the
 *                           fake runtime's script does)
 *   RDHPF_CONF_STOP_CMD     local shell command that stops it (likewise) */
#include "harness.h"

#include <unistd.h>

static struct plugin_set g_rps, g_tps;
static const struct plugin *g_rp, *g_tp;
static const struct rdhpf_runtime_ops *R;
static const struct rdhpf_transport_ops *T;
static struct cfg g_cfg;
static char g_rundir[256];

struct inst {
	struct rdhpf_ctx *tctx, *rctx;
	struct rdhpf_host_params *thp, *rhp;
	void *ts, *rs;
};

static void
inst_new(struct inst *in)
{
	char err[256] = "";
	struct h_done d = {0};

	memset(in, 0, sizeof *in);
	in->tctx = ctx_new(NULL, g_cfg.hosts[0].name, g_tp, &g_cfg.hosts[0]);
	in->thp = host_params_new(&g_cfg.hosts[0], g_tp, g_rundir);
	if (T->create(in->tctx, in->thp, &in->ts, err, sizeof err) != RDHPF_OK)
		fail_msg("transport create: %s", err);
	assert_int_equal(T->connect(in->ts, h_done_cb, &d), RDHPF_OK);
	assert_true(h_wait(&d.called, 15000));
	if (d.status != RDHPF_OK)
		fail_msg("transport connect: %s", d.detail);
	in->rctx = ctx_new(NULL, g_cfg.hosts[0].name, g_rp, &g_cfg.hosts[0]);
	in->rctx->tops = T;
	in->rctx->tstate = in->ts;
	in->rctx->tctx = in->tctx;
	in->rhp = host_params_new(&g_cfg.hosts[0], g_rp, g_rundir);
	if (R->create(in->rctx, in->rhp, &in->rs, err, sizeof err) != RDHPF_OK)
		fail_msg("runtime create: %s", err);
}

static void
inst_free(struct inst *in)
{
	R->destroy(in->rs);
	assert_int_equal(h_ctx_handles(in->rctx), 0);
	T->destroy(in->ts);
	ctx_free(in->rctx);
	ctx_free(in->tctx);
	host_params_free(in->thp);
	host_params_free(in->rhp);
	h_sleep(20);
}

struct list_res {
	bool called;
	bool inline_call;
	bool in_op;
	int status;
	size_t n;
	bool has_port;
	char id_with_port[80];
	bool ports_valid;
};

static uint16_t
expect_port(void)
{
	const char *p = getenv("RDHPF_CONF_EXPECT_PORT");
	return p ? (uint16_t)atoi(p) : 0;
}

static void
list_cb(void *arg, int status, const char *detail, const struct rdhpf_container *cs, size_t n)
{
	struct list_res *l = arg;
	(void)detail;
	l->inline_call = l->in_op;
	l->called = true;
	l->status = status;
	l->n = n;
	l->ports_valid = true;
	for (size_t i = 0; i < n; i++) {
		if (cs[i].id == NULL || cs[i].id[0] == '\0')
			l->ports_valid = false;
		for (size_t k = 0; k < cs[i].n_ports; k++) {
			const struct rdhpf_port *p = &cs[i].ports[k];
			if (p->host_port == 0 || p->host_ip == NULL ||
			    (p->proto != RDHPF_PROTO_TCP && p->proto != RDHPF_PROTO_UDP &&
			     p->proto != RDHPF_PROTO_SCTP))
				l->ports_valid = false;
			if (p->host_port == expect_port() && p->proto == RDHPF_PROTO_TCP) {
				l->has_port = true;
				snprintf(l->id_with_port, sizeof l->id_with_port, "%s", cs[i].id);
			}
		}
	}
}

static void
do_list(struct inst *in, struct list_res *l)
{
	memset(l, 0, sizeof *l);
	l->in_op = true;
	assert_int_equal(R->list(in->rs, list_cb, l), RDHPF_OK);
	l->in_op = false;
	assert_true(h_wait(&l->called, 15000));
	assert_false(l->inline_call);
	assert_int_equal(l->status, RDHPF_OK);
	assert_true(l->ports_valid);
}

struct watch_res {
	bool started, stopped, ended;
	size_t events;
	bool after_stop;
	bool stopping;
	char id[80];
};

static void
w_event(void *arg, const struct rdhpf_event *ev)
{
	struct watch_res *w = arg;
	if (w->stopping)
		w->after_stop = true;
	w->events++;
	assert_non_null(ev->container);
	assert_non_null(ev->container->id);
	if (ev->type == RDHPF_EV_START) {
		for (size_t k = 0; k < ev->container->n_ports; k++) {
			const struct rdhpf_port *p = &ev->container->ports[k];
			assert_true(p->host_port >= 1);
			if (p->host_port == expect_port() && p->proto == RDHPF_PROTO_TCP) {
				w->started = true;
				snprintf(w->id, sizeof w->id, "%s", ev->container->id);
			}
		}
	} else if (ev->type == RDHPF_EV_STOP && w->started && strcmp(ev->container->id, w->id) == 0) {
		w->stopped = true;
	}
}

static void
w_end(void *arg, int status, const char *detail)
{
	struct watch_res *w = arg;
	(void)status;
	(void)detail;
	if (w->stopping)
		w->after_stop = true;
	w->ended = true;
}

static const struct rdhpf_watch_cbs wcbs = {.on_event = w_event, .on_end = w_end};

static void
run_cmd(const char *env)
{
	const char *c = getenv(env);
	if (c != NULL && *c) {
		int r = system(c); /* test harness only: a fixed command from the test */
		if (r != 0)
			fail_msg("%s failed: %s", env, c);
	}
}

static void
test_info(void **s)
{
	char why[256];
	(void)s;
	assert_int_equal(plugin_check_info(g_rp->info, why, sizeof why), 0);
	assert_int_equal(g_rp->info->kind, RDHPF_KIND_RUNTIME);
}

static void
test_create_destroy(void **s)
{
	struct inst in;
	(void)s;
	inst_new(&in);
	inst_free(&in);
}

static void
test_list_ok(void **s)
{
	struct inst in;
	struct list_res l;
	(void)s;
	inst_new(&in);
	do_list(&in, &l);
	do_list(&in, &l); /* may be called again */
	inst_free(&in);
}

static void
test_watch_start_stop_then_list(void **s)
{
	struct inst in;
	struct watch_res w = {0};
	struct list_res l;
	(void)s;
	if (expect_port() == 0) {
		skip();
		return;
	}
	inst_new(&in);
	assert_int_equal(R->watch(in.rs, &wcbs, &w), RDHPF_OK);
	/* As the core does: watch, then list.  Events are owed from the
	 * moment the stream is established; the list covers the time before,
	 * so start the container only once the list answered. */
	do_list(&in, &l);
	run_cmd("RDHPF_CONF_START_CMD");
	assert_true(h_wait(&w.started, 20000));
	/* the list agrees with the event */
	do_list(&in, &l);
	assert_true(l.has_port);
	assert_string_equal(l.id_with_port, w.id);
	run_cmd("RDHPF_CONF_STOP_CMD");
	assert_true(h_wait(&w.stopped, 20000));
	do_list(&in, &l);
	assert_false(l.has_port);
	assert_false(w.ended);
	inst_free(&in);
}

static void
test_stop_means_no_more_callbacks(void **s)
{
	struct inst in;
	struct watch_res w = {0};
	struct list_res l = {0};
	(void)s;
	inst_new(&in);
	assert_int_equal(R->watch(in.rs, &wcbs, &w), RDHPF_OK);
	assert_int_equal(R->list(in.rs, list_cb, &l), RDHPF_OK);
	R->stop(in.rs);
	w.stopping = true;
	h_sleep(500);
	assert_false(w.after_stop);
	assert_false(l.called);
	/* watch and list may follow stop */
	w.stopping = false;
	assert_int_equal(R->watch(in.rs, &wcbs, &w), RDHPF_OK);
	do_list(&in, &l);
	inst_free(&in);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_info),
		cmocka_unit_test(test_create_destroy),
		cmocka_unit_test(test_list_ok),
		cmocka_unit_test(test_watch_start_stop_then_list),
		cmocka_unit_test(test_stop_means_no_more_callbacks),
	};
	int rc;

	if (argc < 3) {
		fprintf(stderr, "usage: %s RUNTIME.so TRANSPORT.so\n", argv[0]);
		return 2;
	}
	if (getenv("RDHPF_CONF_NEEDS_LAB") != NULL && getenv("RDHPF_CONF_URL") == NULL) {
		printf("SKIP: no lab (RDHPF_CONF_URL unset)\n");
		return 77;
	}
	log_init(stderr, LOG_LOGFMT, RDHPF_LOG_WARN, h_now);
	g_rp = h_load(&g_rps, argv[1], RDHPF_KIND_RUNTIME);
	g_tp = h_load(&g_tps, argv[2], RDHPF_KIND_TRANSPORT);
	if (g_rp == NULL || g_tp == NULL) {
		fprintf(stderr, "cannot load %s / %s\n", argv[1], argv[2]);
		return 1;
	}
	R = g_rp->info->ops.runtime;
	T = g_tp->info->ops.transport;
	h_host_from_env(&g_cfg);
	snprintf(g_rundir, sizeof g_rundir, "/tmp/rdhpf-conf-XXXXXX");
	if (mkdtemp(g_rundir) == NULL)
		return 1;
	printf("runtime conformance: %s over %s\n", g_rp->info->name, g_tp->info->name);
	rc = cmocka_run_group_tests_name(g_rp->info->name, tests, NULL, NULL);
	rmdir(g_rundir);
	cfg_free(&g_cfg);
	plugins_unload(&g_tps);
	plugins_unload(&g_rps);
	return rc;
}
