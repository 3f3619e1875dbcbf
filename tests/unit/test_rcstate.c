/* The incremental reconciler (rcstate.h) against the full one: after every
 * batch of random container events, the actions, the installed forwards
 * and the skips must be exactly what rc_desired_full + rc_reconcile give
 * on the same container set.  Plus the cases the property test may not
 * hit often: a contested key handed back, RETAG, label changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "container.h"
#include "rcstate.h"
#include "reconcile.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define N_IDS 10

/* ---- a model of the host's containers --------------------------------- */

struct model {
	struct rdhpf_container *c[N_IDS]; /* NULL when not running */
	uint64_t seq[N_IDS];
	uint64_t last_seq;
};

static uint64_t
rnd(uint64_t *s)
{
	/* xorshift64*: a fixed seed gives the same run everywhere. */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static size_t
pick(uint64_t *s, size_t n)
{
	return (size_t)(rnd(s) >> 33) % n;
}

/* Few names, ports and addresses, so that keys are contested often. */
static struct rdhpf_container *
random_container(uint64_t *s, size_t slot)
{
	static const char *names[] = {"a", "b", "bb", "web"};
	static const uint16_t ports[] = {80, 81, 443, 1000, 8080, 9000, 5432};
	static const char *ips[] = {"",    "0.0.0.0",  "::",      "127.0.0.1",
	                            "::1", "10.0.0.5", "db.local"};
	static const char *labels[][2] = {{"rdhpf.ignore", "true"},  {"rdhpf.port.80", "9000"},
	                                  {"rdhpf.port.8080", "81"}, {"rdhpf.bind", "127.0.0.2"},
	                                  {"rdhpf.port.80", "nope"}, {"team", "x"}};
	char id[16];
	struct rdhpf_container *c;
	size_t np = pick(s, 4);

	snprintf(id, sizeof id, "c%zu", slot);
	c = container_alloc(id, names[pick(s, NELEM(names))]);
	assert_non_null(c);
	if (pick(s, 2))
		assert_int_equal(container_image_set(c, pick(s, 2) ? "nginx" : "postgres"), 0);
	for (size_t i = 0, nl = pick(s, 3); i < nl; i++) {
		size_t l = pick(s, NELEM(labels));
		assert_int_equal(container_label_add(c, labels[l][0], labels[l][1]), 0);
	}
	for (size_t i = 0; i < np; i++) {
		struct rdhpf_port p = {RDHPF_INIT(rdhpf_port), ips[pick(s, NELEM(ips))],
		                       ports[pick(s, NELEM(ports))], 80,
		                       pick(s, 5) == 0 ? RDHPF_PROTO_UDP : RDHPF_PROTO_TCP};
		assert_int_equal(container_port_add(c, &p), 0);
	}
	return c;
}

static void
model_clear(struct model *m)
{
	for (size_t i = 0; i < N_IDS; i++)
		container_destroy(m->c[i]);
	memset(m, 0, sizeof *m);
}

static size_t
model_arrays(const struct model *m, struct rc_container *rcs, struct rc_meta *meta)
{
	size_t n = 0;

	for (size_t i = 0; i < N_IDS; i++) {
		if (m->c[i] == NULL)
			continue;
		rcs[n].c = m->c[i];
		rcs[n].seq = m->seq[i];
		meta[n].image = m->c[i]->image;
		meta[n].labels = m->c[i]->labels;
		meta[n].n_labels = m->c[i]->n_labels;
		n++;
	}
	return n;
}

/* Tell the incremental state what the model now holds for slot i. */
static void
state_tell(struct rcs *st, const struct model *m, size_t i, const char *id)
{
	struct rc_container rc = {m->c[i], m->seq[i]};
	struct rc_meta meta = {0};

	if (m->c[i] == NULL) {
		rcs_remove(st, id);
		return;
	}
	meta.image = m->c[i]->image;
	meta.labels = m->c[i]->labels;
	meta.n_labels = m->c[i]->n_labels;
	rcs_upsert(st, &rc, &meta);
}

/* One random event: start, stop, or update (same id, new ports; the seq
 * is kept half the time, as a list keeps a known container's). */
static void
random_event(uint64_t *s, struct model *m, struct rcs *st)
{
	size_t i = pick(s, N_IDS);
	char id[16];

	snprintf(id, sizeof id, "c%zu", i);
	if (m->c[i] != NULL && pick(s, 3) == 0) {
		container_destroy(m->c[i]);
		m->c[i] = NULL;
	} else {
		bool keep_seq = m->c[i] != NULL && pick(s, 2) == 0;
		container_destroy(m->c[i]);
		m->c[i] = random_container(s, i);
		if (!keep_seq)
			m->seq[i] = ++m->last_seq;
	}
	state_tell(st, m, i, id);
}

/* ---- comparisons ------------------------------------------------------- */

static void
expect_same_fwd(const struct rc_forward *a, const struct rc_forward *b)
{
	assert_string_equal(a->bind, b->bind);
	assert_int_equal(a->local_port, b->local_port);
	assert_string_equal(a->remote_host, b->remote_host);
	assert_int_equal(a->remote_port, b->remote_port);
	assert_string_equal(a->container_id, b->container_id);
	assert_string_equal(a->container_name, b->container_name);
	assert_int_equal(a->seq, b->seq);
	assert_int_equal(a->rule_line, b->rule_line);
}

static void
expect_same_skips(const struct rc_skip *a, size_t na, const struct rc_skip *b, size_t nb)
{
	assert_int_equal(na, nb);
	for (size_t i = 0; i < na; i++) {
		if (!rc_skip_same(&a[i], &b[i]))
			fail_msg(
			    "skip %zu differs: %s:%u %s (why %d, holder '%s') vs %s:%u %s (why "
			    "%d, holder '%s')",
			    i, a[i].container_name, a[i].remote_port, a[i].bind, a[i].why,
			    a[i].holder, b[i].container_name, b[i].remote_port, b[i].bind, b[i].why,
			    b[i].holder);
	}
}

/* What the supervisor does with actions, on an array of forwards. */
static void
apply_actions(struct rc_forward **v, size_t *n, const struct rc_action *acts, size_t na)
{
	for (size_t i = 0; i < na; i++) {
		const struct rc_forward *f = &acts[i].fwd;
		size_t k = 0;

		while (k < *n && rc_cmp_key(&(*v)[k], f) != 0)
			k++;
		switch (acts[i].type) {
		case RC_REMOVE:
			assert_true(k < *n);
			(*v)[k] = (*v)[--*n];
			break;
		case RC_ADD:
			assert_true(k == *n); /* removed first, or never there */
			*v = realloc(*v, (*n + 1) * sizeof **v);
			assert_non_null(*v);
			(*v)[(*n)++] = *f;
			break;
		case RC_RETAG:
			assert_true(k < *n);
			(*v)[k] = *f;
			break;
		}
	}
}

/* The skips in now that were not in before (what the full path logs). */
static size_t
full_fresh(const struct rc_skip *now, size_t n, const struct rc_skip *before, size_t nb,
           struct rc_skip *out)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		bool known = false;
		for (size_t j = 0; j < nb && !known; j++)
			known = rc_skip_same(&now[i], &before[j]);
		if (!known)
			out[k++] = now[i];
	}
	return k;
}

struct side {
	struct rc_forward *actual; /* forwards as the supervisor would hold them */
	size_t n_actual;
	struct rc_skip *skips; /* as of the last flush, for the fresh ones */
	size_t n_skips;
};

/* Flush the incremental state and reconcile the model in full: both must
 * agree on every action, the forwards that result and every skip. */
static void
check_flush(const struct model *m, const struct rc_policy *pol, struct rcs *st, struct side *full,
            struct side *inc)
{
	struct rc_container rcs[N_IDS];
	struct rc_meta meta[N_IDS];
	size_t n = model_arrays(m, rcs, meta);
	struct rc_forward *desired, *inst;
	struct rc_skip *skips, *fresh, *want_fresh, *now;
	struct rc_action *fa, *ia;
	size_t nd, ns, nfa, nia, nfresh, nwant, ninst, nnow;

	assert_int_equal(rc_desired_full(rcs, meta, n, pol, &desired, &nd, NULL, NULL, &skips, &ns),
	                 0);
	assert_int_equal(rc_reconcile(desired, nd, full->actual, full->n_actual, &fa, &nfa), 0);
	rcs_flush(st, &ia, &nia, &fresh, &nfresh);

	assert_int_equal(nia, nfa);
	for (size_t i = 0; i < nia; i++) {
		assert_int_equal(ia[i].type, fa[i].type);
		expect_same_fwd(&ia[i].fwd, &fa[i].fwd);
	}
	apply_actions(&full->actual, &full->n_actual, fa, nfa);
	apply_actions(&inc->actual, &inc->n_actual, ia, nia);

	/* The installed view is the forwards the actions led to. */
	ninst = rcs_installed(st, &inst);
	assert_int_equal(ninst, inc->n_actual);
	if (inc->n_actual > 1)
		qsort(inc->actual, inc->n_actual, sizeof *inc->actual, rc_cmp_owner);
	for (size_t i = 0; i < ninst; i++)
		expect_same_fwd(&inst[i], &inc->actual[i]);

	nnow = rcs_skips(st, &now);
	expect_same_skips(now, nnow, skips, ns);
	want_fresh = malloc((ns ? ns : 1) * sizeof *want_fresh);
	assert_non_null(want_fresh);
	nwant = full_fresh(skips, ns, full->skips, full->n_skips, want_fresh);
	expect_same_skips(fresh, nfresh, want_fresh, nwant);

	free(full->skips);
	full->skips = skips;
	full->n_skips = ns;
	free(want_fresh);
	free(now);
	free(fresh);
	free(inst);
	free(ia);
	free(fa);
	free(desired);
}

static void
side_clear(struct side *s)
{
	free(s->actual);
	free(s->skips);
	memset(s, 0, sizeof *s);
}

/* ---- the property ------------------------------------------------------ */

static struct rule test_rules[3];

static void
rules_init(void)
{
	char err[128];

	assert_int_equal(rule_parse("ignore port=443", 10, &test_rules[0], err, sizeof err), 0);
	assert_int_equal(
	    rule_parse("forward port=5432 -> 8080", 11, &test_rules[1], err, sizeof err), 0);
	assert_int_equal(
	    rule_parse("forward name=b* bind=127.0.0.3", 12, &test_rules[2], err, sizeof err), 0);
}

static const struct rc_port_map test_map[] = {{9000, 8080}, {81, 80}};

/* Policies that exercise each branch: localhost binds, offsets out of
 * range, maps onto contested ports, rules, labels, privileged ports. */
static void
policies(struct rc_policy *p, size_t *n)
{
	memset(p, 0, 6 * sizeof *p);
	p[0].bind = "127.0.0.1";
	p[1].bind = "localhost";
	p[1].labels = 1;
	p[2].bind = "127.0.0.1, ::1";
	p[2].port_offset = 60000;
	p[2].unpriv_port_start = 1024;
	p[3].bind = "127.0.0.1";
	p[3].map = test_map;
	p[3].n_map = NELEM(test_map);
	p[3].rules = test_rules;
	p[3].n_rules = NELEM(test_rules);
	p[3].labels = 1;
	p[3].unpriv_port_start = 1024;
	p[3].privileged_skip = 1;
	p[4].bind = "localhost";
	p[4].no_ipv6_loopback = 1;
	p[4].unpriv_port_start = 1024;
	p[4].privileged_offset = 8000;
	p[4].map = test_map;
	p[4].n_map = NELEM(test_map);
	p[5].bind = "127.0.0.1";
	p[5].port_offset = -100; /* 80 → 0: out of range */
	p[5].rules = test_rules;
	p[5].n_rules = NELEM(test_rules);
	*n = 6;
}

static void
run_property(const struct rc_policy *pol, uint64_t seed, int steps)
{
	struct model m = {0};
	struct rcs *st = rcs_new(pol);
	struct side full = {0}, inc = {0};
	uint64_t s = seed;

	for (int step = 0; step < steps; step++) {
		/* A batch of 1-3 events before a flush, as events that arrive
		 * in one loop turn reconcile together. */
		for (size_t e = 0, ne = 1 + pick(&s, 3); e < ne; e++)
			random_event(&s, &m, st);
		check_flush(&m, pol, st, &full, &inc);
	}
	/* Everything stops: nothing is left installed or skipped. */
	for (size_t i = 0; i < N_IDS; i++) {
		char id[16];
		snprintf(id, sizeof id, "c%zu", i);
		container_destroy(m.c[i]);
		m.c[i] = NULL;
		state_tell(st, &m, i, id);
	}
	check_flush(&m, pol, st, &full, &inc);
	assert_int_equal(inc.n_actual, 0);
	assert_int_equal(full.n_skips, 0);
	side_clear(&full);
	side_clear(&inc);
	model_clear(&m);
	rcs_free(st);
}

static void
test_property_matches_full(void **state)
{
	struct rc_policy pols[6];
	size_t np;

	(void)state;
	rules_init();
	policies(pols, &np);
	for (size_t p = 0; p < np; p++)
		for (uint64_t seed = 1; seed <= 8; seed++)
			run_property(&pols[p], seed * 0x9e3779b97f4a7c15ull + p, 300);
	for (size_t i = 0; i < NELEM(test_rules); i++)
		rule_clear(&test_rules[i]);
}

/* ---- targeted cases ---------------------------------------------------- */

struct one {
	struct rdhpf_container *c;
	uint64_t seq;
};

static struct rdhpf_container *
make(const char *id, const char *name, uint16_t port, const char *label_key, const char *label_val)
{
	struct rdhpf_container *c = container_alloc(id, name);
	struct rdhpf_port p = {RDHPF_INIT(rdhpf_port), "0.0.0.0", port, 80, RDHPF_PROTO_TCP};

	assert_non_null(c);
	assert_int_equal(container_port_add(c, &p), 0);
	if (label_key != NULL)
		assert_int_equal(container_label_add(c, label_key, label_val), 0);
	return c;
}

static void
upsert(struct rcs *st, const struct rdhpf_container *c, uint64_t seq)
{
	struct rc_container rc = {c, seq};
	struct rc_meta meta = {c->image, c->labels, c->n_labels};

	rcs_upsert(st, &rc, &meta);
}

static void
flush(struct rcs *st, struct rc_action **a, size_t *n)
{
	struct rc_skip *fresh;
	size_t nf;

	free(*a);
	rcs_flush(st, a, n, &fresh, &nf);
	free(fresh);
}

static void
expect_action(const struct rc_action *a, enum rc_action_type t, uint16_t lport, uint16_t rport,
              const char *id)
{
	assert_int_equal(a->type, t);
	assert_int_equal(a->fwd.local_port, lport);
	assert_int_equal(a->fwd.remote_port, rport);
	assert_string_equal(a->fwd.container_id, id);
}

/* The owner of a contested key stops: the key goes back to the container
 * that held it before (RETAG for the same target, else REMOVE then ADD),
 * and its RC_SKIP_TAKEN skip goes away. */
static void
test_contested_key_handed_back(void **state)
{
	static const struct rc_port_map map[] = {{8081, 8080}};
	struct rc_policy pol = {.bind = "127.0.0.1", .map = map, .n_map = 1};
	struct rcs *st = rcs_new(&pol);
	struct rdhpf_container *a = make("a1", "a", 8080, NULL, NULL);
	struct rdhpf_container *b = make("b1", "b", 8080, NULL, NULL);
	struct rdhpf_container *c = make("c1", "c", 8081, NULL, NULL);
	struct rc_action *acts = NULL;
	struct rc_skip *sk;
	size_t n;

	(void)state;
	upsert(st, a, 1);
	flush(st, &acts, &n);
	assert_int_equal(n, 1);
	expect_action(&acts[0], RC_ADD, 8080, 8080, "a1");

	upsert(st, b, 2); /* last event wins: same target, new owner */
	flush(st, &acts, &n);
	assert_int_equal(n, 1);
	expect_action(&acts[0], RC_RETAG, 8080, 8080, "b1");
	assert_int_equal(rcs_skips(st, &sk), 1);
	assert_int_equal(sk[0].why, RC_SKIP_TAKEN);
	assert_string_equal(sk[0].container_id, "a1");
	assert_string_equal(sk[0].holder, "b");
	free(sk);

	upsert(st, c, 3); /* 8081 mapped onto 8080: another target */
	flush(st, &acts, &n);
	assert_int_equal(n, 2);
	expect_action(&acts[0], RC_REMOVE, 8080, 8080, "b1");
	expect_action(&acts[1], RC_ADD, 8080, 8081, "c1");
	assert_int_equal(rcs_skips(st, &sk), 2);
	free(sk);

	rcs_remove(st, "c1"); /* back to b, the later of the two left */
	flush(st, &acts, &n);
	assert_int_equal(n, 2);
	expect_action(&acts[0], RC_REMOVE, 8080, 8081, "c1");
	expect_action(&acts[1], RC_ADD, 8080, 8080, "b1");
	rcs_remove(st, "b1");
	flush(st, &acts, &n);
	assert_int_equal(n, 1);
	expect_action(&acts[0], RC_RETAG, 8080, 8080, "a1");
	assert_int_equal(rcs_skips(st, &sk), 0);
	assert_null(sk);
	assert_non_null(rcs_owner(st, "127.0.0.1", 8080));
	rcs_remove(st, "a1");
	flush(st, &acts, &n);
	assert_int_equal(n, 1);
	expect_action(&acts[0], RC_REMOVE, 8080, 8080, "a1");
	assert_null(rcs_owner(st, "127.0.0.1", 8080));
	free(acts);
	container_destroy(a);
	container_destroy(b);
	container_destroy(c);
	rcs_free(st);
}

/* A rename keeps the forward (RETAG); labels move or drop it. */
static void
test_rename_and_label_changes(void **state)
{
	struct rc_policy pol = {.bind = "127.0.0.1", .labels = 1};
	struct rcs *st = rcs_new(&pol);
	struct rdhpf_container *v1 = make("x1", "web", 8080, NULL, NULL);
	struct rdhpf_container *v2 = make("x1", "web2", 8080, NULL, NULL);
	struct rdhpf_container *v3 = make("x1", "web2", 8080, "rdhpf.port.8080", "9090");
	struct rdhpf_container *v4 = make("x1", "web2", 8080, "rdhpf.ignore", "true");
	struct rc_action *acts = NULL;
	struct rc_skip *sk, *fresh;
	size_t n, nf;

	(void)state;
	upsert(st, v1, 1);
	flush(st, &acts, &n);
	upsert(st, v2, 1);
	flush(st, &acts, &n);
	assert_int_equal(n, 1);
	expect_action(&acts[0], RC_RETAG, 8080, 8080, "x1");
	assert_string_equal(acts[0].fwd.container_name, "web2");

	upsert(st, v3, 1); /* rdhpf.port moves it to another key */
	flush(st, &acts, &n);
	assert_int_equal(n, 2);
	expect_action(&acts[0], RC_REMOVE, 8080, 8080, "x1");
	expect_action(&acts[1], RC_ADD, 9090, 8080, "x1");

	upsert(st, v4, 1); /* rdhpf.ignore: gone, and said once */
	free(acts);
	rcs_flush(st, &acts, &n, &fresh, &nf);
	assert_int_equal(n, 1);
	expect_action(&acts[0], RC_REMOVE, 9090, 8080, "x1");
	assert_int_equal(nf, 1);
	assert_int_equal(fresh[0].why, RC_SKIP_LABEL);
	free(fresh);
	upsert(st, v4, 1);
	free(acts);
	rcs_flush(st, &acts, &n, &fresh, &nf);
	assert_int_equal(n, 0);
	assert_int_equal(nf, 0); /* the same skip again is not fresh */
	assert_int_equal(rcs_skips(st, &sk), 1);
	free(sk);
	free(acts);
	container_destroy(v1);
	container_destroy(v2);
	container_destroy(v3);
	container_destroy(v4);
	rcs_free(st);
}

/* Events between two flushes collapse, as in one full reconcile: a
 * container that came and went leaves no action; one that went and came
 * back is not new. */
static void
test_events_collapse(void **state)
{
	struct rc_policy pol = {.bind = "127.0.0.1"};
	struct rcs *st = rcs_new(&pol);
	struct rdhpf_container *a = make("a1", "a", 8080, NULL, NULL);
	struct rdhpf_container *u = make("u1", "u", 8080, NULL, NULL);
	struct rdhpf_port udp = {RDHPF_INIT(rdhpf_port), "", 53, 53, RDHPF_PROTO_UDP};
	struct rc_action *acts = NULL;
	struct rc_skip *fresh;
	size_t n, nf;

	(void)state;
	assert_int_equal(container_port_add(u, &udp), 0);
	upsert(st, a, 1);
	rcs_remove(st, "a1");
	flush(st, &acts, &n);
	assert_int_equal(n, 0);
	assert_null(acts);

	upsert(st, u, 2);
	rcs_flush(st, &acts, &n, &fresh, &nf);
	assert_int_equal(n, 1);
	assert_int_equal(nf, 1); /* 53/udp */
	free(fresh);
	rcs_remove(st, "u1");
	upsert(st, u, 2);
	free(acts);
	rcs_flush(st, &acts, &n, &fresh, &nf);
	assert_int_equal(n, 0);
	assert_int_equal(nf, 0);
	rcs_remove(st, "nope"); /* unknown: ignored */
	free(acts);
	container_destroy(a);
	container_destroy(u);
	rcs_free(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_property_matches_full),
	    cmocka_unit_test(test_contested_key_handed_back),
	    cmocka_unit_test(test_rename_and_label_changes),
	    cmocka_unit_test(test_events_collapse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
