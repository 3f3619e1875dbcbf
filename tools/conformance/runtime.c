/* Runtime conformance: what the core relies on from every runtime (see
 * plugin.h): create refuses bad option values that validate_option
 * refuses; list answers once with sane containers; a runtime with
 * RDHPF_RCAP_EVENTS has a watch that calls on_established, one without
 * has none; stop() and destroy() work from inside the plugin's own
 * callbacks; no callback follows stop or destroy; destroy leaves nothing
 * registered with the core. */
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "container.h"

#define LIST_WAIT_MS 15000
#define PORT_WAIT_MS 20000

static const struct rdhpf_runtime_ops *
R(void)
{
	return g_plugin->info->ops.runtime;
}

static bool
has_events(void)
{
	return (g_plugin->info->caps & RDHPF_RCAP_EVENTS) != 0;
}

/* One runtime instance over a connected transport instance. */
struct rinst {
	struct rdhpf_ctx *tctx, *rctx;
	struct rdhpf_host_params *thp, *rhp;
	struct pinst *tpi; /* the transport, through the core's slot wrappers */
	void *rs;
	bool destroyed;
	int create_rc;
};

struct done_res {
	bool called;
	int status;
	char detail[1024];
};

static void
done_cb(void *arg, int status, const char *detail)
{
	struct done_res *d = arg;

	d->called = true;
	d->status = status;
	snprintf(d->detail, sizeof d->detail, "%s", detail ? detail : "");
}

/* 0, or -1 with why filled. */
static int
transport_up(struct rinst *in, char *why, size_t len)
{
	char err[512] = "";
	struct done_res d = {0};
	int r;

	in->tctx = ctx_new(NULL, g_cfg.hosts[0].name, g_transport, &g_cfg.hosts[0]);
	in->thp = host_params_new(&g_cfg.hosts[0], g_transport, g_rundir);
	in->tpi = tp_create(g_transport, in->tctx, in->thp, &r, err, sizeof err);
	if (in->tpi == NULL) {
		snprintf(why, len, "transport %s: create: %d %s", g_transport->info->name, r, err);
		return -1;
	}
	if ((r = tp_connect(in->tpi, done_cb, &d)) != RDHPF_OK) {
		snprintf(why, len, "transport connect: %d", r);
		return -1;
	}
	if (!conf_wait(&d.called, 15000) || d.status != RDHPF_OK) {
		snprintf(why, len, "transport connect: %s",
		         d.called ? d.detail : "no answer in 15 s");
		return -1;
	}
	return 0;
}

static int
rinst_new(struct rinst **out, char *why, size_t len)
{
	struct rinst *in = calloc(1, sizeof *in);
	char err[512] = "";
	int r;

	*out = in;
	if (in == NULL || transport_up(in, why, len) != 0)
		return -1;
	in->rctx = ctx_new(NULL, g_cfg.hosts[0].name, g_plugin, &g_cfg.hosts[0]);
	in->rctx->tpi = in->tpi;
	in->rctx->tctx = in->tctx;
	in->rhp = host_params_new(&g_cfg.hosts[0], g_plugin, g_rundir);
	if ((r = R()->create(in->rctx, in->rhp, &in->rs, err, sizeof err)) != RDHPF_OK) {
		in->create_rc = r;
		snprintf(why, len, "create: %d %s", r, err);
		in->destroyed = true;
		return -1;
	}
	return 0;
}

/* Destroy (unless done already), then check the ctx holds nothing: leaks
 * named in why.  0 or -1. */
static int
rinst_free(struct rinst *in, char *why, size_t len)
{
	char leaks[4096] = "";
	int rc = 0;

	if (in == NULL)
		return 0;
	if (in->rctx != NULL) {
		if (!in->destroyed)
			R()->destroy(in->rs);
		conf_ctx_free(in->rctx, leaks, sizeof leaks);
		if (leaks[0]) {
			snprintf(why, len, "leak after destroy: %s", leaks);
			rc = -1;
		}
	}
	if (in->tpi != NULL)
		tp_destroy(in->tpi);
	if (in->tctx != NULL)
		conf_ctx_free(in->tctx, leaks, sizeof leaks);
	host_params_free(in->thp);
	host_params_free(in->rhp);
	free(in);
	conf_sleep(20);
	return rc;
}

/* ---- list ---- */

struct list_res {
	bool called;
	bool after_stop; /* called after stop/destroy */
	bool stopping;
	size_t calls;
	int status;
	char detail[512];
	size_t n, n_ports;
	bool has_port;
	char port_id[CONTAINER_ID_MAX + 1];
	char bad[512];   /* the first insane container, described */
	char seen[1024]; /* "id ip:port, …" for -v */
	/* re-entrancy: what to do inside the callback */
	struct rinst *in;
	int react; /* 0 nothing, 1 stop, 2 destroy */
};

static bool
id_ok(const char *id)
{
	static regex_t re;
	static bool ready;

	if (!ready) {
		regcomp(&re, "^[0-9A-Za-z_.-]{1,128}$", REG_EXTENDED | REG_NOSUB);
		ready = true;
	}
	return id != NULL && regexec(&re, id, 0, NULL, 0) == 0;
}

/* "" when c is sane, else what is wrong. */
static void
container_check(const struct rdhpf_container *c, char *bad, size_t len)
{
	if (c == NULL || !id_ok(c->id)) {
		snprintf(bad, len, "container with a bad id");
		return;
	}
	if (c->name == NULL) {
		snprintf(bad, len, "container %s: no name", c->id);
		return;
	}
	for (size_t k = 0; k < c->n_ports; k++) {
		const struct rdhpf_port *p = &c->ports[k];
		if (p->host_port == 0 || p->host_ip == NULL ||
		    (p->proto != RDHPF_PROTO_TCP && p->proto != RDHPF_PROTO_UDP &&
		     p->proto != RDHPF_PROTO_SCTP)) {
			snprintf(bad, len, "container %s: port %u (proto %d, ip %s) out of range",
			         c->id, p->host_port, p->proto, p->host_ip ? p->host_ip : "NULL");
			return;
		}
	}
}

static void
react(struct rinst *in, int what)
{
	if (what == 1) {
		R()->stop(in->rs);
	} else if (what == 2) {
		R()->destroy(in->rs);
		in->destroyed = true;
	}
}

static void
list_cb(void *arg, int status, const char *detail, struct rdhpf_container *const *cs, size_t n)
{
	struct list_res *l = arg;

	if (l->stopping)
		l->after_stop = true;
	l->called = true;
	l->calls++;
	l->status = status;
	snprintf(l->detail, sizeof l->detail, "%s", detail ? detail : "");
	l->n = n;
	l->n_ports = 0;
	l->has_port = false;
	for (size_t i = 0; i < n; i++) {
		if (l->bad[0] == '\0')
			container_check(cs[i], l->bad, sizeof l->bad);
		if (l->bad[0] == '\0')
			for (size_t j = 0; j < i; j++)
				if (strcmp(cs[i]->id, cs[j]->id) == 0)
					snprintf(l->bad, sizeof l->bad, "id %s twice in one list",
					         cs[i]->id);
		if (cs[i] == NULL || l->bad[0])
			continue;
		l->n_ports += cs[i]->n_ports;
		for (size_t k = 0; k < cs[i]->n_ports; k++) {
			const struct rdhpf_port *p = &cs[i]->ports[k];
			size_t o = strlen(l->seen);
			snprintf(l->seen + o, sizeof l->seen - o, "%s%s %s:%u", o ? ", " : "",
			         cs[i]->id, p->host_ip, p->host_port);
			if (g_args.expect_port && p->host_port == g_args.expect_port &&
			    p->proto == RDHPF_PROTO_TCP) {
				l->has_port = true;
				snprintf(l->port_id, sizeof l->port_id, "%s", cs[i]->id);
			}
		}
	}
	if (l->react && l->in != NULL)
		react(l->in, l->react);
}

/* List once and wait for the answer; 0 when it came, was OK and sane. */
static int
do_list(struct rinst *in, struct list_res *l, char *why, size_t len)
{
	int r;

	memset(l, 0, sizeof *l);
	if ((r = R()->list(in->rs, list_cb, l)) != RDHPF_OK) {
		snprintf(why, len, "list returned %d", r);
		return -1;
	}
	if (!conf_wait(&l->called, LIST_WAIT_MS)) {
		snprintf(why, len, "list: no answer in %d s", LIST_WAIT_MS / 1000);
		return -1;
	}
	conf_sleep(10);
	if (l->calls != 1) {
		snprintf(why, len, "list: callback called %zu times", l->calls);
		return -1;
	}
	if (l->status != RDHPF_OK) {
		snprintf(why, len, "list failed: %d %s", l->status, l->detail);
		return -1;
	}
	if (l->bad[0]) {
		snprintf(why, len, "list: %s", l->bad);
		return -1;
	}
	return 0;
}

/* ---- watch ---- */

struct watch_res {
	bool established, started, stopped, ended;
	bool stopping, after_stop;
	size_t n_established, events;
	char id[CONTAINER_ID_MAX + 1];
	char bad[512];
	struct rinst *in;
	int react_established; /* stop/destroy inside on_established */
};

static void
w_established(void *arg)
{
	struct watch_res *w = arg;

	if (w->stopping)
		w->after_stop = true;
	w->established = true;
	w->n_established++;
	if (w->react_established && w->in != NULL)
		react(w->in, w->react_established);
}

static void
w_event(void *arg, int type, int64_t time_ns, struct rdhpf_container *c)
{
	struct watch_res *w = arg;

	if (w->stopping)
		w->after_stop = true;
	w->events++;
	if (w->bad[0] == '\0')
		container_check(c, w->bad, sizeof w->bad);
	if (w->bad[0])
		return;
	if (type == RDHPF_EV_START) {
		for (size_t k = 0; k < c->n_ports; k++)
			if (g_args.expect_port && c->ports[k].host_port == g_args.expect_port &&
			    c->ports[k].proto == RDHPF_PROTO_TCP) {
				w->started = true;
				snprintf(w->id, sizeof w->id, "%s", c->id);
			}
	} else if (type == RDHPF_EV_STOP) {
		if (w->started && strcmp(c->id, w->id) == 0)
			w->stopped = true;
	} else {
		snprintf(w->bad, sizeof w->bad, "event of unknown type %d", type);
	}
}

static void
w_end(void *arg, int status, const char *detail)
{
	struct watch_res *w = arg;

	if (w->stopping)
		w->after_stop = true;
	w->ended = true;
}

static const struct rdhpf_watch_cbs wcbs = {
    RDHPF_INIT(rdhpf_watch_cbs),
    .on_established = w_established,
    .on_event = w_event,
    .on_end = w_end,
};

/* Start a watch and wait for on_established. */
static int
do_watch(struct rinst *in, struct watch_res *w, char *why, size_t len)
{
	int r = R()->watch(in->rs, &wcbs, w);

	if (r != RDHPF_OK) {
		snprintf(why, len, "watch returned %d", r);
		return -1;
	}
	if (!conf_wait(&w->established, 15000)) {
		snprintf(why, len,
		         "watch: on_established not called within 15 s%s "
		         "(the core would end the watch and resync)",
		         w->ended ? "; on_end came instead" : "");
		return -1;
	}
	return 0;
}

/* ---- tests ---- */

static int
t_info(struct tc *tc)
{
	const struct rdhpf_plugin_info *i = g_plugin->info;
	const struct rdhpf_option_desc *const *o = i->options;
	char why[256];
	int rc = T_PASS;

	CHECK(plugin_check_info(i, why, sizeof why) == 0, "%s", why);
	CHECK(i->kind == RDHPF_KIND_RUNTIME, "kind %d is not RDHPF_KIND_RUNTIME", i->kind);
	if (has_events())
		CHECK(RDHPF_SLOT(R(), watch) != NULL, "RDHPF_RCAP_EVENTS without a watch slot");
	else
		CHECK(RDHPF_SLOT(R(), watch) == NULL,
		      "a watch slot without RDHPF_RCAP_EVENTS: poll-only runtimes have none");
	for (size_t k = 0; o != NULL && o[k] != NULL; k++) {
		CHECK(o[k]->name != NULL &&
		          strspn(o[k]->name, "abcdefghijklmnopqrstuvwxyz0123456789_") ==
		              strlen(o[k]->name) &&
		          o[k]->name[0],
		      "option %zu: name is not [a-z0-9_]+", k);
		CHECK(o[k]->help != NULL && o[k]->help[0], "option %s: no help", o[k]->name);
	}
	CHECK(o == NULL || o[0] == NULL || i->validate_option != NULL,
	      "declares options but no validate_option: check-config cannot check them");
out:
	return rc;
}

static int
t_create_destroy(struct tc *tc)
{
	struct rinst *in = NULL;
	char why[2048] = "";
	int rc = T_PASS;

	if (rinst_new(&in, why, sizeof why) != 0)
		FAIL("%s", why);
out:
	if (rinst_free(in, why, sizeof why) != 0 && rc == T_PASS) {
		tc_why(tc, "%s", why);
		rc = T_FAIL;
	}
	return rc;
}

static int
t_options_accepted(struct tc *tc)
{
	int (*v)(const char *, const char *, char *, size_t) = g_plugin->info->validate_option;
	int rc = T_PASS;

	for (size_t i = 0; i < g_args.n_opts; i++) {
		char err[512] = "";
		if (v == NULL)
			break;
		CHECK(v(g_args.opts[i].key, g_args.opts[i].value, err, sizeof err) == RDHPF_OK,
		      "validate_option refuses --option %s=%s: %s", g_args.opts[i].key,
		      g_args.opts[i].value, err);
	}
out:
	return rc;
}

static int
t_bad_option_refused(struct tc *tc)
{
	int (*v)(const char *, const char *, char *, size_t) = g_plugin->info->validate_option;
	int rc = T_PASS;

	if (g_args.n_bad == 0)
		SKIP("no --bad-option KEY=VALUE given: name a value the plugin must refuse");
	for (size_t i = 0; i < g_args.n_bad; i++) {
		const struct conf_kv *b = &g_args.bad[i];
		char err[512] = "", why[2048] = "";
		char *old;
		struct rinst *in = NULL;
		int r;

		CHECK(v != NULL, "no validate_option");
		r = v(b->key, b->value, err, sizeof err);
		CHECK(r == RDHPF_ERR_INVAL,
		      "validate_option(%s, \"%s\") returned %d, not "
		      "RDHPF_ERR_INVAL",
		      b->key, b->value, r);
		CHECK(err[0] != '\0', "validate_option(%s, \"%s\") refused without a reason",
		      b->key, b->value);
		printf("# validate_option %s=%s: %s\n", b->key, b->value, err);
		old = conf_set_option(b->key, b->value);
		r = rinst_new(&in, why, sizeof why);
		conf_restore_option(b->key, old);
		if (in == NULL)
			FAIL("out of memory");
		if (r == 0) {
			rinst_free(in, why, sizeof why);
			FAIL("create accepted %s=%s that validate_option refuses", b->key,
			     b->value);
		}
		if (in->rctx == NULL) { /* the transport did not come up */
			tc_why(tc, "%s", why);
			rinst_free(in, why, sizeof why);
			rc = T_FAIL;
			goto out;
		}
		printf("# create with %s=%s: %s\n", b->key, b->value, why);
		r = in->create_rc;
		CHECK(strstr(why, b->key) != NULL,
		      "create refused %s=%s with a message not naming "
		      "the key: %s",
		      b->key, b->value, why);
		CHECK(rinst_free(in, why, sizeof why) == 0, "after the refused create: %s", why);
		CHECK(r == RDHPF_ERR_INVAL, "create refused %s=%s with %d, not RDHPF_ERR_INVAL",
		      b->key, b->value, r);
	}
out:
	return rc;
}

static int
t_list(struct tc *tc)
{
	struct rinst *in = NULL;
	struct list_res l;
	char why[2048] = "";
	int rc = T_PASS;

	if (rinst_new(&in, why, sizeof why) != 0)
		FAIL("%s", why);
	if (do_list(in, &l, why, sizeof why) != 0)
		FAIL("%s", why);
	printf("# list: %zu containers, %zu ports\n", l.n, l.n_ports);
	if (g_args.verbose)
		printf("# %s\n", l.seen);
	if (do_list(in, &l, why, sizeof why) != 0) /* may be called again */
		FAIL("second %s", why);
out:
	if (rinst_free(in, why, sizeof why) != 0 && rc == T_PASS) {
		tc_why(tc, "%s", why);
		rc = T_FAIL;
	}
	return rc;
}

static int
t_watch_contract(struct tc *tc)
{
	struct rinst *in = NULL;
	struct watch_res *w = calloc(1, sizeof *w);
	struct list_res l;
	char why[2048] = "";
	int rc = T_PASS;

	if (!has_events()) {
		/* poll-only: the core lists every poll_interval; t_info checked
		 * there is no watch slot. */
		free(w);
		return T_PASS;
	}
	if (rinst_new(&in, why, sizeof why) != 0)
		FAIL("%s", why);
	if (do_watch(in, w, why, sizeof why) != 0)
		FAIL("%s", why);
	/* As the core does: list after on_established. */
	if (do_list(in, &l, why, sizeof why) != 0)
		FAIL("%s", why);
	conf_sleep(200);
	CHECK(w->n_established == 1, "on_established called %zu times", w->n_established);
	CHECK(!w->ended, "the event stream ended by itself");
	CHECK(w->bad[0] == '\0', "event: %s", w->bad);
out:
	if (rinst_free(in, why, sizeof why) != 0 && rc == T_PASS) {
		tc_why(tc, "%s", why);
		rc = T_FAIL;
	}
	free(w); /* after destroy: no callback may follow */
	return rc;
}

/* Poll list until the expected port is there (want) or gone (!want). */
static int
poll_port(struct rinst *in, bool want, struct list_res *l, char *why, size_t len)
{
	uint64_t end = conf_now() + PORT_WAIT_MS;

	for (;;) {
		if (do_list(in, l, why, len) != 0)
			return -1;
		if (l->has_port == want)
			return 0;
		if (conf_now() >= end)
			break;
		conf_sleep(250);
	}
	snprintf(why, len, "port %u still %s after %d s of listing", g_args.expect_port,
	         want ? "missing" : "there", PORT_WAIT_MS / 1000);
	return -1;
}

static int
t_port_delivered(struct tc *tc)
{
	struct rinst *in = NULL;
	struct watch_res *w = calloc(1, sizeof *w);
	struct list_res l;
	char why[2048] = "";
	int rc = T_PASS;

	if (g_args.expect_port == 0) {
		free(w);
		SKIP("no --expect-port N: nothing to wait for (give a port the remote publishes, "
		     "with --start-cmd/--stop-cmd if it must be started)");
	}
	if (rinst_new(&in, why, sizeof why) != 0)
		FAIL("%s", why);
	if (has_events()) {
		if (do_watch(in, w, why, sizeof why) != 0)
			FAIL("%s", why);
		/* Events are owed from on_established; the list covers the time
		 * before it, so start the container only once the list answered. */
		if (do_list(in, &l, why, sizeof why) != 0)
			FAIL("%s", why);
	}
	if (g_args.start_cmd && conf_run(g_args.start_cmd) != 0)
		FAIL("--start-cmd failed: %s", g_args.start_cmd);
	if (has_events()) {
		CHECK(conf_wait(&w->started, PORT_WAIT_MS),
		      "no START event with port %u in %d s%s%s", g_args.expect_port,
		      PORT_WAIT_MS / 1000, w->bad[0] ? ": " : "", w->bad);
		if (do_list(in, &l, why, sizeof why) != 0)
			FAIL("%s", why);
		CHECK(l.has_port, "a START event had port %u, the list after it has not",
		      g_args.expect_port);
		CHECK(strcmp(l.port_id, w->id) == 0, "the event says container %s, the list %s",
		      w->id, l.port_id);
	} else if (poll_port(in, true, &l, why, sizeof why) != 0) {
		FAIL("%s", why);
	}
	printf("# port %u in container %s\n", g_args.expect_port, l.port_id);
	if (g_args.stop_cmd == NULL)
		goto out;
	if (conf_run(g_args.stop_cmd) != 0)
		FAIL("--stop-cmd failed: %s", g_args.stop_cmd);
	if (has_events()) {
		CHECK(conf_wait(&w->stopped, PORT_WAIT_MS), "no STOP event for %s in %d s", w->id,
		      PORT_WAIT_MS / 1000);
		if (do_list(in, &l, why, sizeof why) != 0)
			FAIL("%s", why);
		CHECK(!l.has_port, "a STOP event came, the list still has port %u",
		      g_args.expect_port);
		CHECK(!w->ended, "the event stream ended by itself");
	} else if (poll_port(in, false, &l, why, sizeof why) != 0) {
		FAIL("%s", why);
	}
out:
	if (rinst_free(in, why, sizeof why) != 0 && rc == T_PASS) {
		tc_why(tc, "%s", why);
		rc = T_FAIL;
	}
	free(w);
	return rc;
}

/* stop() and destroy() from inside the plugin's own callbacks (the core
 * does both, see plugin.h). */
static int
t_stop_in_callbacks(struct tc *tc)
{
	struct rinst *in = NULL;
	struct watch_res *w = calloc(1, sizeof *w);
	struct list_res *l = calloc(1, sizeof *l), l2;
	char why[2048] = "";
	int r, rc = T_PASS;

	if (rinst_new(&in, why, sizeof why) != 0)
		FAIL("%s", why);
	/* stop inside a list callback, then list again */
	l->in = in;
	l->react = 1;
	CHECK((r = R()->list(in->rs, list_cb, l)) == RDHPF_OK, "list returned %d", r);
	CHECK(conf_wait(&l->called, LIST_WAIT_MS), "list: no answer");
	l->stopping = true;
	conf_sleep(200);
	CHECK(l->calls == 1, "list callback called %zu times", l->calls);
	if (do_list(in, &l2, why, sizeof why) != 0)
		FAIL("after stop inside the list callback: %s", why);
	if (has_events()) {
		/* stop inside on_established, then watch again */
		w->in = in;
		w->react_established = 1;
		if (do_watch(in, w, why, sizeof why) != 0)
			FAIL("%s", why);
		w->stopping = true;
		conf_sleep(300);
		CHECK(!w->after_stop, "a watch callback after stop() inside on_established");
		memset(w, 0, sizeof *w);
		if (do_watch(in, w, why, sizeof why) != 0)
			FAIL("after stop inside on_established: %s", why);
		R()->stop(in->rs);
		/* destroy inside on_established */
		memset(w, 0, sizeof *w);
		w->in = in;
		w->react_established = 2;
		if (do_watch(in, w, why, sizeof why) != 0)
			FAIL("%s", why);
		w->stopping = true;
		conf_sleep(300);
		CHECK(!w->after_stop, "a watch callback after destroy() inside on_established");
	} else {
		/* destroy inside a list callback */
		memset(l, 0, sizeof *l);
		l->in = in;
		l->react = 2;
		CHECK((r = R()->list(in->rs, list_cb, l)) == RDHPF_OK, "list returned %d", r);
		CHECK(conf_wait(&l->called, LIST_WAIT_MS), "list: no answer");
		l->stopping = true;
		conf_sleep(300);
		CHECK(l->calls == 1, "list callback called %zu times", l->calls);
	}
	CHECK(in->destroyed, "destroy inside the callback did not run");
out:
	if (rinst_free(in, why, sizeof why) != 0 && rc == T_PASS) {
		tc_why(tc, "%s", why);
		rc = T_FAIL;
	}
	free(w);
	free(l);
	return rc;
}

static int
t_no_callback_after_stop(struct tc *tc)
{
	struct rinst *in = NULL;
	struct watch_res *w = calloc(1, sizeof *w);
	struct list_res *l = calloc(1, sizeof *l), l2;
	char why[2048] = "";
	int r, rc = T_PASS;

	if (rinst_new(&in, why, sizeof why) != 0)
		FAIL("%s", why);
	if (has_events())
		CHECK((r = R()->watch(in->rs, &wcbs, w)) == RDHPF_OK, "watch returned %d", r);
	CHECK((r = R()->list(in->rs, list_cb, l)) == RDHPF_OK, "list returned %d", r);
	/* A list answered inside the call (allowed) came before stop. */
	l->stopping = w->stopping = true;
	R()->stop(in->rs);
	conf_sleep(500);
	CHECK(!l->after_stop, "the list callback came after stop()");
	CHECK(!w->after_stop, "a watch callback came after stop()");
	/* watch and list may follow stop */
	if (has_events()) {
		memset(w, 0, sizeof *w);
		if (do_watch(in, w, why, sizeof why) != 0)
			FAIL("after stop: %s", why);
	}
	if (do_list(in, &l2, why, sizeof why) != 0)
		FAIL("after stop: %s", why);
	/* destroy with a list (and a watch) running */
	memset(l, 0, sizeof *l);
	CHECK((r = R()->list(in->rs, list_cb, l)) == RDHPF_OK, "list returned %d", r);
	l->stopping = w->stopping = true;
	R()->destroy(in->rs);
	in->destroyed = true;
	conf_sleep(500);
	CHECK(!l->after_stop, "the list callback came after destroy()");
	CHECK(!w->after_stop, "a watch callback came after destroy()");
out:
	if (rinst_free(in, why, sizeof why) != 0 && rc == T_PASS) {
		tc_why(tc, "%s", why);
		rc = T_FAIL;
	}
	free(w);
	free(l);
	return rc;
}

const struct conf_test runtime_tests[] = {
    {"info", t_info},
    {"create-destroy-no-leak", t_create_destroy},
    {"options-accepted", t_options_accepted},
    {"bad-option-refused", t_bad_option_refused},
    {"list", t_list},
    {"watch-contract", t_watch_contract},
    {"port-delivered", t_port_delivered},
    {"stop-destroy-inside-callbacks", t_stop_in_callbacks},
    {"no-callback-after-stop-or-destroy", t_no_callback_after_stop},
};
const size_t n_runtime_tests = sizeof runtime_tests / sizeof runtime_tests[0];
