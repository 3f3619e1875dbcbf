#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "reconcile.h"

#define TCP RDHPF_PROTO_TCP
#define UDP RDHPF_PROTO_UDP
#define PORT_SZ ((uint32_t)sizeof(struct rdhpf_port))
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const struct rc_policy default_pol = {.bind = "127.0.0.1"};

/* ---- helpers ---------------------------------------------------------- */

struct desired {
	struct rc_forward *f;
	size_t n;
	struct rc_forward *conf;
	size_t n_conf;
	size_t udp;
};

static void
desired_of(const struct rc_container *cs, size_t n, const struct rc_policy *pol, struct desired *d)
{
	memset(d, 0xa5, sizeof *d); /* every out param must be written */
	assert_int_equal(rc_desired(cs, n, pol, &d->f, &d->n, &d->conf, &d->n_conf, &d->udp), 0);
	/* sorted by key, one forward per key */
	for (size_t i = 1; i < d->n; i++) {
		int c = strcmp(d->f[i - 1].bind, d->f[i].bind);
		assert_true(c < 0 || (c == 0 && d->f[i - 1].local_port < d->f[i].local_port));
	}
}

static void
desired_free(struct desired *d)
{
	free(d->f);
	free(d->conf);
}

static void
expect_fwd(const struct rc_forward *f, const char *bind, uint16_t lport, const char *rhost,
           uint16_t rport, const char *id)
{
	assert_string_equal(f->bind, bind);
	assert_int_equal(f->local_port, lport);
	assert_string_equal(f->remote_host, rhost);
	assert_int_equal(f->remote_port, rport);
	assert_string_equal(f->container_id, id);
}

static int
same_key(const struct rc_forward *a, const struct rc_forward *b)
{
	return strcmp(a->bind, b->bind) == 0 && a->local_port == b->local_port;
}

static int
same_target(const struct rc_forward *a, const struct rc_forward *b)
{
	return strcmp(a->remote_host, b->remote_host) == 0 && a->remote_port == b->remote_port;
}

/* What the supervisor does with the actions: a transport keyed by
 * (bind, local_port).  Asserts the contract: every REMOVE before any ADD,
 * REMOVE names an existing forward, ADD a free key, RETAG an existing
 * forward with the same target.  Returns the new actual (malloc'd). */
static struct rc_forward *
apply(const struct rc_forward *actual, size_t na, const struct rc_action *acts, size_t n,
      size_t *n_out)
{
	struct rc_forward *v = malloc((na + n + 1) * sizeof *v);
	size_t k = na;
	int seen_add = 0;

	assert_non_null(v);
	if (na > 0)
		memcpy(v, actual, na * sizeof *v);
	for (size_t i = 0; i < n; i++) {
		const struct rc_forward *f = &acts[i].fwd;
		size_t j;

		for (j = 0; j < k; j++)
			if (same_key(&v[j], f))
				break;
		switch (acts[i].type) {
		case RC_REMOVE:
			assert_false(seen_add);
			assert_true(j < k);
			assert_true(same_target(&v[j], f));
			v[j] = v[--k];
			break;
		case RC_ADD:
			seen_add = 1;
			assert_true(j == k);
			v[k++] = *f;
			break;
		case RC_RETAG:
			seen_add = 1;
			assert_true(j < k);
			assert_true(same_target(&v[j], f));
			assert_true(strcmp(v[j].container_id, f->container_id) != 0 ||
			            strcmp(v[j].container_name, f->container_name) != 0);
			v[j] = *f;
			break;
		default:
			fail_msg("bad action type %d", acts[i].type);
		}
	}
	*n_out = k;
	return v;
}

static size_t
count_type(const struct rc_action *a, size_t n, enum rc_action_type t)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += a[i].type == t;
	return c;
}

/* Reconcile, apply, check the result equals desired, reconcile again:
 * nothing to do. */
static void
check_converges(const struct rc_forward *d, size_t nd, const struct rc_forward *a, size_t na)
{
	struct rc_action *acts, *again;
	size_t n, n_again, nn;
	struct rc_forward *after;

	assert_int_equal(rc_reconcile(d, nd, a, na, &acts, &n), 0);
	assert_true((n == 0) == (acts == NULL));
	after = apply(a, na, acts, n, &nn);
	assert_int_equal(nn, nd);
	for (size_t i = 0; i < nd; i++) {
		size_t j;
		for (j = 0; j < nn; j++)
			if (same_key(&after[j], &d[i]))
				break;
		assert_true(j < nn);
		assert_true(same_target(&after[j], &d[i]));
		assert_string_equal(after[j].container_id, d[i].container_id);
		assert_string_equal(after[j].container_name, d[i].container_name);
	}
	assert_int_equal(rc_reconcile(d, nd, after, nn, &again, &n_again), 0);
	assert_int_equal(n_again, 0);
	assert_null(again);
	free(acts);
	free(after);
}

/* ---- rc_remote_host --------------------------------------------------- */

static void
test_remote_host(void **state)
{
	(void)state;
	assert_string_equal(rc_remote_host("0.0.0.0"), "127.0.0.1");
	assert_string_equal(rc_remote_host(""), "127.0.0.1");
	assert_string_equal(rc_remote_host(NULL), "127.0.0.1");
	assert_string_equal(rc_remote_host("::"), "::1");
	assert_string_equal(rc_remote_host("127.0.0.1"), "127.0.0.1");
	assert_string_equal(rc_remote_host("10.1.2.3"), "10.1.2.3");
	assert_string_equal(rc_remote_host("::1"), "::1");
	assert_string_equal(rc_remote_host("fd00::5"), "fd00::5");
}

/* ---- rc_desired ------------------------------------------------------- */

static void
test_empty_empty(void **state)
{
	struct desired d;
	struct rc_action *acts = (void *)1;
	size_t n = 99;

	(void)state;
	desired_of(NULL, 0, &default_pol, &d);
	assert_int_equal(d.n, 0);
	assert_int_equal(d.n_conf, 0);
	assert_int_equal(d.udp, 0);
	assert_int_equal(rc_reconcile(NULL, 0, NULL, 0, &acts, &n), 0);
	assert_null(acts);
	assert_int_equal(n, 0);
	desired_free(&d);
}

static void
test_adds_from_empty(void **state)
{
	const struct rdhpf_port pa[] = {
	    {PORT_SZ, "0.0.0.0", 9090, 90, TCP},
	    {PORT_SZ, "0.0.0.0", 8080, 80, TCP},
	};
	const struct rdhpf_port pb[] = {{PORT_SZ, "127.0.0.1", 5432, 5432, TCP}};
	const struct rdhpf_container a = {
	    .id = "aaaa", .name = "web", .ports = pa, .n_ports = NELEM(pa)};
	const struct rdhpf_container b = {
	    .id = "bbbb", .name = "db", .ports = pb, .n_ports = NELEM(pb)};
	const struct rc_container cs[] = {{&a, 1}, {&b, 2}};
	struct desired d;
	struct rc_action *acts;
	size_t n;

	(void)state;
	desired_of(cs, NELEM(cs), &default_pol, &d);
	assert_int_equal(d.n, 3);
	assert_int_equal(d.n_conf, 0);
	expect_fwd(&d.f[0], "127.0.0.1", 5432, "127.0.0.1", 5432, "bbbb");
	expect_fwd(&d.f[1], "127.0.0.1", 8080, "127.0.0.1", 8080, "aaaa");
	expect_fwd(&d.f[2], "127.0.0.1", 9090, "127.0.0.1", 9090, "aaaa");
	assert_string_equal(d.f[0].container_name, "db");
	assert_string_equal(d.f[1].container_name, "web");
	assert_int_equal(d.f[0].seq, 2);
	assert_int_equal(d.f[1].seq, 1);

	assert_int_equal(rc_reconcile(d.f, d.n, NULL, 0, &acts, &n), 0);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(acts[i].type, RC_ADD);
		assert_memory_equal(&acts[i].fwd, &d.f[i], sizeof d.f[i]);
	}
	free(acts);
	check_converges(d.f, d.n, NULL, 0);
	desired_free(&d);
}

static void
test_removes_to_empty(void **state)
{
	const struct rdhpf_port pa[] = {{PORT_SZ, "0.0.0.0", 8080, 80, TCP},
	                                {PORT_SZ, "0.0.0.0", 8443, 443, TCP}};
	const struct rdhpf_container a = {
	    .id = "aaaa", .name = "web", .ports = pa, .n_ports = NELEM(pa)};
	const struct rc_container cs[] = {{&a, 1}};
	struct desired d;
	struct rc_action *acts;
	size_t n;

	(void)state;
	desired_of(cs, NELEM(cs), &default_pol, &d);
	assert_int_equal(d.n, 2);
	assert_int_equal(rc_reconcile(NULL, 0, d.f, d.n, &acts, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(acts[0].type, RC_REMOVE);
	assert_int_equal(acts[1].type, RC_REMOVE);
	assert_int_equal(acts[0].fwd.local_port, 8080);
	assert_int_equal(acts[1].fwd.local_port, 8443);
	free(acts);
	check_converges(NULL, 0, d.f, d.n);
	desired_free(&d);
}

static void
test_dual_stack_dedupe(void **state)
{
	const struct rdhpf_port pa[] = {
	    {PORT_SZ, "0.0.0.0", 8080, 80, TCP},
	    {PORT_SZ, "::", 8080, 80, TCP}, /* docker's pair */
	    {PORT_SZ, "::", 8081, 81, TCP},
	    {PORT_SZ, "", 8081, 81, TCP},   /* podman-ish, reversed */
	    {PORT_SZ, "::", 8082, 82, TCP}, /* v6 only */
	};
	const struct rdhpf_container a = {
	    .id = "aaaa", .name = "web", .ports = pa, .n_ports = NELEM(pa)};
	const struct rc_container cs[] = {{&a, 1}};
	struct desired d;

	(void)state;
	desired_of(cs, NELEM(cs), &default_pol, &d);
	assert_int_equal(d.n, 3);
	assert_int_equal(d.n_conf, 0); /* a twin is not a conflict */
	expect_fwd(&d.f[0], "127.0.0.1", 8080, "127.0.0.1", 8080, "aaaa");
	expect_fwd(&d.f[1], "127.0.0.1", 8081, "127.0.0.1", 8081, "aaaa");
	expect_fwd(&d.f[2], "127.0.0.1", 8082, "::1", 8082, "aaaa");
	desired_free(&d);
}

static void
test_dual_stack_across_containers_is_a_conflict(void **state)
{
	/* The twin rule is per container: two containers are two claims. */
	const struct rdhpf_port pa[] = {{PORT_SZ, "0.0.0.0", 8080, 80, TCP}};
	const struct rdhpf_port pb[] = {{PORT_SZ, "::", 8080, 80, TCP}};
	const struct rdhpf_container a = {.id = "aaaa", .name = "v4", .ports = pa, .n_ports = 1};
	const struct rdhpf_container b = {.id = "bbbb", .name = "v6", .ports = pb, .n_ports = 1};
	const struct rc_container cs[] = {{&a, 1}, {&b, 2}};
	struct desired d;

	(void)state;
	desired_of(cs, NELEM(cs), &default_pol, &d);
	assert_int_equal(d.n, 1);
	expect_fwd(&d.f[0], "127.0.0.1", 8080, "::1", 8080, "bbbb");
	assert_int_equal(d.n_conf, 1);
	expect_fwd(&d.conf[0], "127.0.0.1", 8080, "127.0.0.1", 8080, "aaaa");
	desired_free(&d);
}

static void
test_udp_skipped_and_counted(void **state)
{
	const struct rdhpf_port pa[] = {
	    {PORT_SZ, "0.0.0.0", 53, 53, UDP},
	    {PORT_SZ, "::", 53, 53, UDP}, /* one dual-stack UDP port */
	    {PORT_SZ, "0.0.0.0", 53, 53, TCP},
	    {PORT_SZ, "::", 53, 53, TCP},
	    {PORT_SZ, "0.0.0.0", 9999, 9999, RDHPF_PROTO_SCTP},
	    {PORT_SZ, "127.0.0.1", 5000, 5000, UDP},
	};
	const struct rdhpf_container a = {
	    .id = "aaaa", .name = "dns", .ports = pa, .n_ports = NELEM(pa)};
	const struct rc_container cs[] = {{&a, 1}};
	struct desired d;
	struct rc_forward *out, *conf;
	size_t n, nc;

	(void)state;
	desired_of(cs, NELEM(cs), &default_pol, &d);
	assert_int_equal(d.n, 1);
	expect_fwd(&d.f[0], "127.0.0.1", 53, "127.0.0.1", 53, "aaaa");
	assert_int_equal(d.udp, 3);
	assert_int_equal(d.n_conf, 0);
	desired_free(&d);

	/* the optional out params may be NULL */
	assert_int_equal(rc_desired(cs, NELEM(cs), &default_pol, &out, &n, NULL, NULL, NULL), 0);
	assert_int_equal(n, 1);
	free(out);
	assert_int_equal(rc_desired(cs, NELEM(cs), &default_pol, &out, &n, &conf, &nc, NULL), 0);
	assert_int_equal(nc, 0);
	assert_null(conf);
	free(out);
}

static void
test_ephemeral_zero_skipped(void **state)
{
	const struct rdhpf_port pa[] = {{PORT_SZ, "0.0.0.0", 0, 80, TCP},
	                                {PORT_SZ, "0.0.0.0", 0, 53, UDP}};
	const struct rdhpf_container a = {
	    .id = "aaaa", .name = "x", .ports = pa, .n_ports = NELEM(pa)};
	const struct rc_container cs[] = {{&a, 1}};
	struct desired d;

	(void)state;
	desired_of(cs, NELEM(cs), &default_pol, &d);
	assert_int_equal(d.n, 0);
	assert_int_equal(d.n_conf, 0);
	assert_int_equal(d.udp, 0);
	desired_free(&d);
}

static void
test_specific_host_ip(void **state)
{
	const struct rdhpf_port pa[] = {
	    {PORT_SZ, "127.0.0.1", 8080, 80, TCP},
	    {PORT_SZ, "10.1.2.3", 8081, 81, TCP},
	    {PORT_SZ, "::1", 8082, 82, TCP},
	};
	const struct rdhpf_container a = {
	    .id = "aaaa", .name = "web", .ports = pa, .n_ports = NELEM(pa)};
	const struct rc_container cs[] = {{&a, 1}};
	struct desired d;

	(void)state;
	desired_of(cs, NELEM(cs), &default_pol, &d);
	assert_int_equal(d.n, 3);
	expect_fwd(&d.f[0], "127.0.0.1", 8080, "127.0.0.1", 8080, "aaaa");
	expect_fwd(&d.f[1], "127.0.0.1", 8081, "10.1.2.3", 8081, "aaaa");
	expect_fwd(&d.f[2], "127.0.0.1", 8082, "::1", 8082, "aaaa");
	desired_free(&d);
}

/* A HostIp that is not an IP literal never becomes a target, whatever the
 * runtime let through: skipped with its reason. */
static void
test_host_ip_must_be_an_address(void **state)
{
	const struct rdhpf_port pa[] = {
	    {PORT_SZ, "evil.example.com", 8080, 80, TCP},
	    {PORT_SZ, "-oProxyCommand=x", 8081, 81, TCP},
	    {PORT_SZ, "10.1.2.3", 8082, 82, TCP},
	    {PORT_SZ, "localhost", 8083, 83, TCP},
	    {PORT_SZ, "fe80::1", 8084, 84, TCP},
	    {PORT_SZ, "1.2.3", 8085, 85, TCP},
	};
	const struct rdhpf_container a = {
	    .id = "aaaa", .name = "web", .ports = pa, .n_ports = NELEM(pa)};
	const struct rc_container cs[] = {{&a, 1}};
	struct desired d;

	(void)state;
	assert_true(rc_host_ip_ok(""));
	assert_true(rc_host_ip_ok(NULL));
	assert_true(rc_host_ip_ok("::"));
	assert_true(rc_host_ip_ok("192.168.1.1"));
	assert_false(rc_host_ip_ok("evil.example.com"));
	assert_false(rc_host_ip_ok("127.0.0.1 "));
	desired_of(cs, NELEM(cs), &default_pol, &d);
	assert_int_equal(d.n, 2);
	expect_fwd(&d.f[0], "127.0.0.1", 8082, "10.1.2.3", 8082, "aaaa");
	expect_fwd(&d.f[1], "127.0.0.1", 8084, "fe80::1", 8084, "aaaa");
	desired_free(&d);
	/* The four others are skipped, each with the value and why. */
	{
		struct rc_forward *out = NULL, *conf = NULL;
		struct rc_skip *sk = NULL;
		size_t n_out = 0, n_conf = 0, n_sk = 0;
		assert_int_equal(rc_desired_full(cs, NULL, NELEM(cs), &default_pol, &out, &n_out,
		                                 &conf, &n_conf, &sk, &n_sk),
		                 0);
		assert_int_equal(n_out, 2);
		assert_int_equal(n_sk, 4);
		for (size_t i = 0; i < n_sk; i++) {
			assert_int_equal(sk[i].why, RC_SKIP_HOSTIP);
			assert_false(rc_host_ip_ok(sk[i].remote_host));
			assert_string_equal(rc_skip_reason(&sk[i]),
			                    "published on a HostIp that is not an IP address");
		}
		free(out);
		free(conf);
		free(sk);
	}
}

static void
test_same_port_two_addresses_in_one_container(void **state)
{
	/* -p 10.1.2.3:8080:80 -p 127.0.0.1:8080:81: one local key, loopback
	 * wins, the other is reported. */
	const struct rdhpf_port pa[] = {
	    {PORT_SZ, "10.1.2.3", 8080, 80, TCP},
	    {PORT_SZ, "127.0.0.1", 8080, 81, TCP},
	    {PORT_SZ, "127.0.0.1", 8080, 81, TCP}}; /* exact duplicate */
	const struct rdhpf_container a = {
	    .id = "aaaa", .name = "web", .ports = pa, .n_ports = NELEM(pa)};
	const struct rc_container cs[] = {{&a, 1}};
	struct desired d;

	(void)state;
	desired_of(cs, NELEM(cs), &default_pol, &d);
	assert_int_equal(d.n, 1);
	expect_fwd(&d.f[0], "127.0.0.1", 8080, "127.0.0.1", 8080, "aaaa");
	assert_int_equal(d.n_conf, 1);
	expect_fwd(&d.conf[0], "127.0.0.1", 8080, "10.1.2.3", 8080, "aaaa");
	desired_free(&d);
}

static void
test_port_offset_and_map(void **state)
{
	const struct rdhpf_port pa[] = {
	    {PORT_SZ, "0.0.0.0", 8080, 80, TCP},
	    {PORT_SZ, "0.0.0.0", 5432, 5432, TCP},
	    {PORT_SZ, "0.0.0.0", 60000, 1, TCP}, /* + 10000 is out of range */
	    {PORT_SZ, "0.0.0.0", 7000, 7000, TCP},
	};
	const struct rc_port_map map[] = {{8080, 80}, {7000, 0}};
	const struct rc_policy pol = {
	    .bind = "127.0.0.2", .port_offset = 10000, .map = map, .n_map = NELEM(map)};
	const struct rdhpf_container a = {
	    .id = "aaaa", .name = "web", .ports = pa, .n_ports = NELEM(pa)};
	const struct rc_container cs[] = {{&a, 1}};
	struct desired d;

	(void)state;
	desired_of(cs, NELEM(cs), &pol, &d);
	assert_int_equal(d.n, 2);
	expect_fwd(&d.f[0], "127.0.0.2", 80, "127.0.0.1", 8080, "aaaa");    /* map wins */
	expect_fwd(&d.f[1], "127.0.0.2", 15432, "127.0.0.1", 5432, "aaaa"); /* offset */
	/* unmappable ports are reported as conflicts with local_port 0 */
	assert_int_equal(d.n_conf, 2);
	expect_fwd(&d.conf[0], "127.0.0.2", 0, "127.0.0.1", 7000, "aaaa");
	expect_fwd(&d.conf[1], "127.0.0.2", 0, "127.0.0.1", 60000, "aaaa");
	desired_free(&d);
}

static void
test_negative_offset_and_default_policy(void **state)
{
	const struct rdhpf_port pa[] = {{PORT_SZ, "0.0.0.0", 80, 80, TCP},
	                                {PORT_SZ, "0.0.0.0", 81, 81, TCP}};
	const struct rc_policy pol = {.bind = "::1", .port_offset = -80};
	const struct rdhpf_container a = {
	    .id = "aaaa", .name = NULL, .ports = pa, .n_ports = NELEM(pa)};
	const struct rc_container cs[] = {{&a, 1}};
	struct desired d;

	(void)state;
	desired_of(cs, NELEM(cs), &pol, &d);
	assert_int_equal(d.n, 1);
	expect_fwd(&d.f[0], "::1", 1, "127.0.0.1", 81, "aaaa");
	assert_string_equal(d.f[0].container_name, "");
	assert_int_equal(d.n_conf, 1);
	assert_int_equal(d.conf[0].local_port, 0);
	assert_int_equal(d.conf[0].remote_port, 80);
	desired_free(&d);

	/* no policy: bind 127.0.0.1, no offset */
	desired_of(cs, NELEM(cs), NULL, &d);
	assert_int_equal(d.n, 2);
	expect_fwd(&d.f[0], "127.0.0.1", 80, "127.0.0.1", 80, "aaaa");
	desired_free(&d);
}

static void
test_map_can_collide_with_offset(void **state)
{
	/* 8080 mapped to 9000, 9000 itself forwarded as 9000: two claims on
	 * one key within one container, resolved deterministically. */
	const struct rdhpf_port pa[] = {{PORT_SZ, "0.0.0.0", 9000, 1, TCP},
	                                {PORT_SZ, "0.0.0.0", 8080, 2, TCP}};
	const struct rc_port_map map[] = {{8080, 9000}};
	const struct rc_policy pol = {.bind = "127.0.0.1", .map = map, .n_map = 1};
	const struct rdhpf_container a = {
	    .id = "aaaa", .name = "x", .ports = pa, .n_ports = NELEM(pa)};
	const struct rc_container cs[] = {{&a, 1}};
	struct desired d;

	(void)state;
	desired_of(cs, NELEM(cs), &pol, &d);
	assert_int_equal(d.n, 1);
	expect_fwd(&d.f[0], "127.0.0.1", 9000, "127.0.0.1", 8080, "aaaa");
	assert_int_equal(d.n_conf, 1);
	expect_fwd(&d.conf[0], "127.0.0.1", 9000, "127.0.0.1", 9000, "aaaa");
	desired_free(&d);
}

static void
test_last_event_wins_and_ties(void **state)
{
	const struct rdhpf_port p[] = {{PORT_SZ, "0.0.0.0", 8080, 80, TCP}};
	const struct rdhpf_container a = {.id = "aaaa", .name = "a", .ports = p, .n_ports = 1};
	const struct rdhpf_container b = {.id = "bbbb", .name = "b", .ports = p, .n_ports = 1};
	const struct rdhpf_container c = {.id = "cccc", .name = "c", .ports = p, .n_ports = 1};
	struct desired d;

	(void)state;
	{
		/* higher seq wins whatever the order */
		const struct rc_container cs1[] = {{&a, 5}, {&b, 7}, {&c, 6}};
		const struct rc_container cs2[] = {{&b, 7}, {&c, 6}, {&a, 5}};
		desired_of(cs1, 3, &default_pol, &d);
		assert_int_equal(d.n, 1);
		assert_string_equal(d.f[0].container_id, "bbbb");
		assert_int_equal(d.n_conf, 2);
		assert_string_equal(d.conf[0].container_id, "cccc"); /* by seq, descending */
		assert_string_equal(d.conf[1].container_id, "aaaa");
		desired_free(&d);
		desired_of(cs2, 3, &default_pol, &d);
		assert_string_equal(d.f[0].container_id, "bbbb");
		assert_string_equal(d.conf[0].container_id, "cccc");
		assert_string_equal(d.conf[1].container_id, "aaaa");
		desired_free(&d);
	}
	{
		/* equal seq: the lexically smaller id, whatever the order */
		const struct rc_container cs1[] = {{&c, 3}, {&b, 3}};
		const struct rc_container cs2[] = {{&b, 3}, {&c, 3}};
		desired_of(cs1, 2, &default_pol, &d);
		assert_int_equal(d.n, 1);
		assert_string_equal(d.f[0].container_id, "bbbb");
		assert_int_equal(d.n_conf, 1);
		assert_string_equal(d.conf[0].container_id, "cccc");
		desired_free(&d);
		desired_of(cs2, 2, &default_pol, &d);
		assert_string_equal(d.f[0].container_id, "bbbb");
		assert_string_equal(d.conf[0].container_id, "cccc");
		desired_free(&d);
	}
}

/* A starts, B starts later on the same port (B owns it), B stops (A owns it
 * again).  Same target → RETAG; different target → REMOVE + ADD. */
static void
test_ownership_moves(void **state)
{
	const struct rdhpf_port pa[] = {{PORT_SZ, "0.0.0.0", 8080, 80, TCP},
	                                {PORT_SZ, "0.0.0.0", 9000, 9000, TCP}};
	const struct rdhpf_port pb[] = {{PORT_SZ, "0.0.0.0", 8080, 80, TCP}};
	const struct rdhpf_port pc[] = {{PORT_SZ, "10.1.2.3", 8080, 80, TCP}};
	const struct rdhpf_container a = {
	    .id = "aaaa", .name = "a", .ports = pa, .n_ports = NELEM(pa)};
	const struct rdhpf_container b = {
	    .id = "bbbb", .name = "b", .ports = pb, .n_ports = NELEM(pb)};
	const struct rdhpf_container c = {
	    .id = "cccc", .name = "c", .ports = pc, .n_ports = NELEM(pc)};
	struct desired d0, d1, d2, d3;
	struct rc_action *acts;
	size_t n;

	(void)state;
	const struct rc_container only_a[] = {{&a, 1}};
	const struct rc_container a_b[] = {{&a, 1}, {&b, 2}};
	const struct rc_container a_c[] = {{&a, 1}, {&c, 3}};
	desired_of(only_a, 1, &default_pol, &d0);
	desired_of(a_b, 2, &default_pol, &d1);
	desired_of(a_c, 2, &default_pol, &d2);
	desired_of(only_a, 1, &default_pol, &d3); /* B (or C) stopped */

	assert_int_equal(d1.n, 2);
	assert_string_equal(d1.f[0].container_id, "bbbb");
	assert_int_equal(d1.n_conf, 1);
	assert_string_equal(d1.conf[0].container_id, "aaaa");

	/* A → B, same target: a retag, the forward is not touched */
	assert_int_equal(rc_reconcile(d1.f, d1.n, d0.f, d0.n, &acts, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(acts[0].type, RC_RETAG);
	expect_fwd(&acts[0].fwd, "127.0.0.1", 8080, "127.0.0.1", 8080, "bbbb");
	assert_string_equal(acts[0].fwd.container_name, "b");
	free(acts);
	check_converges(d1.f, d1.n, d0.f, d0.n);

	/* B stops: back to A */
	assert_int_equal(rc_reconcile(d3.f, d3.n, d1.f, d1.n, &acts, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(acts[0].type, RC_RETAG);
	assert_string_equal(acts[0].fwd.container_id, "aaaa");
	free(acts);
	check_converges(d3.f, d3.n, d1.f, d1.n);

	/* A → C on another address: remove the old target, add the new */
	assert_int_equal(rc_reconcile(d2.f, d2.n, d0.f, d0.n, &acts, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(acts[0].type, RC_REMOVE);
	expect_fwd(&acts[0].fwd, "127.0.0.1", 8080, "127.0.0.1", 8080, "aaaa");
	assert_int_equal(acts[1].type, RC_ADD);
	expect_fwd(&acts[1].fwd, "127.0.0.1", 8080, "10.1.2.3", 8080, "cccc");
	free(acts);
	check_converges(d2.f, d2.n, d0.f, d0.n);

	/* C stops: A's target comes back */
	assert_int_equal(rc_reconcile(d3.f, d3.n, d2.f, d2.n, &acts, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(acts[0].type, RC_REMOVE);
	assert_string_equal(acts[0].fwd.remote_host, "10.1.2.3");
	assert_int_equal(acts[1].type, RC_ADD);
	expect_fwd(&acts[1].fwd, "127.0.0.1", 8080, "127.0.0.1", 8080, "aaaa");
	free(acts);

	desired_free(&d0);
	desired_free(&d1);
	desired_free(&d2);
	desired_free(&d3);
}

static struct rc_forward
fwd(const char *bind, uint16_t lp, const char *rh, uint16_t rp, const char *id, const char *name)
{
	struct rc_forward f;
	memset(&f, 0, sizeof f);
	snprintf(f.bind, sizeof f.bind, "%s", bind);
	f.local_port = lp;
	snprintf(f.remote_host, sizeof f.remote_host, "%s", rh);
	f.remote_port = rp;
	snprintf(f.container_id, sizeof f.container_id, "%s", id);
	snprintf(f.container_name, sizeof f.container_name, "%s", name);
	return f;
}

static void
test_reconcile_mixed_removes_first(void **state)
{
	const struct rc_forward desired[] = {
	    fwd("127.0.0.1", 9000, "127.0.0.1", 9000, "new", "n"),        /* add */
	    fwd("127.0.0.1", 1000, "127.0.0.1", 1000, "keep", "k"),       /* nothing */
	    fwd("127.0.0.1", 3000, "127.0.0.1", 3001, "moved", "m"),      /* target change */
	    fwd("127.0.0.1", 4000, "127.0.0.1", 4000, "owner2", "o2"),    /* retag */
	    fwd("127.0.0.1", 5000, "127.0.0.1", 5000, "same", "renamed"), /* retag (name) */
	};
	const struct rc_forward actual[] = {
	    fwd("127.0.0.1", 5000, "127.0.0.1", 5000, "same", "old"),
	    fwd("127.0.0.1", 4000, "127.0.0.1", 4000, "owner1", "o1"),
	    fwd("127.0.0.1", 3000, "127.0.0.1", 3000, "moved", "m"),
	    fwd("127.0.0.1", 2000, "127.0.0.1", 2000, "gone", "g"), /* remove */
	    fwd("127.0.0.1", 1000, "127.0.0.1", 1000, "keep", "k"),
	    fwd("::1", 1000, "127.0.0.1", 1000, "other-bind", "b"), /* remove */
	};
	struct rc_action *acts;
	size_t n;

	(void)state;
	assert_int_equal(rc_reconcile(desired, NELEM(desired), actual, NELEM(actual), &acts, &n),
	                 0);
	assert_int_equal(n, 7);
	assert_int_equal(count_type(acts, n, RC_REMOVE), 3);
	assert_int_equal(count_type(acts, n, RC_ADD), 2);
	assert_int_equal(count_type(acts, n, RC_RETAG), 2);
	/* removes first, each group in key order */
	assert_int_equal(acts[0].type, RC_REMOVE);
	assert_int_equal(acts[0].fwd.local_port, 2000);
	assert_int_equal(acts[1].type, RC_REMOVE);
	assert_int_equal(acts[1].fwd.local_port, 3000);
	assert_int_equal(acts[1].fwd.remote_port, 3000); /* the old target */
	assert_int_equal(acts[2].type, RC_REMOVE);
	assert_string_equal(acts[2].fwd.bind, "::1");
	assert_int_equal(acts[3].type, RC_ADD);
	assert_int_equal(acts[3].fwd.local_port, 3000);
	assert_int_equal(acts[3].fwd.remote_port, 3001);
	assert_int_equal(acts[4].type, RC_RETAG);
	assert_string_equal(acts[4].fwd.container_id, "owner2");
	assert_int_equal(acts[5].type, RC_RETAG);
	assert_string_equal(acts[5].fwd.container_name, "renamed");
	assert_int_equal(acts[6].type, RC_ADD);
	assert_int_equal(acts[6].fwd.local_port, 9000);
	free(acts);
	check_converges(desired, NELEM(desired), actual, NELEM(actual));
}

static void
test_reconcile_remote_host_change_is_remove_add(void **state)
{
	const struct rc_forward d[] = {fwd("127.0.0.1", 80, "::1", 80, "x", "x")};
	const struct rc_forward a[] = {fwd("127.0.0.1", 80, "127.0.0.1", 80, "x", "x")};
	struct rc_action *acts;
	size_t n;

	(void)state;
	assert_int_equal(rc_reconcile(d, 1, a, 1, &acts, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(acts[0].type, RC_REMOVE);
	assert_string_equal(acts[0].fwd.remote_host, "127.0.0.1");
	assert_int_equal(acts[1].type, RC_ADD);
	assert_string_equal(acts[1].fwd.remote_host, "::1");
	free(acts);
}

/* ---- property: random inputs converge in one round -------------------- */

static uint64_t rng_state;

static uint32_t
rng(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state % n);
}

#define MAXC 8
#define MAXP 6

struct world {
	struct rdhpf_port ports[MAXC][MAXP];
	char ids[MAXC][8];
	char names[MAXC][8];
	struct rdhpf_container c[MAXC];
	struct rc_container rc[MAXC];
	size_t n;
};

static void
random_world(struct world *w)
{
	static const char *const ips[] = {"0.0.0.0", "::", "", "127.0.0.1", "10.1.2.3", "::1"};
	static const uint16_t hports[] = {1, 80, 443, 8080, 8081, 9000, 65535};
	int perm[MAXC];

	w->n = rng(MAXC + 1);
	for (int i = 0; i < MAXC; i++)
		perm[i] = i;
	for (int i = MAXC - 1; i > 0; i--) {
		int j = (int)rng((uint32_t)i + 1), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (size_t i = 0; i < w->n; i++) {
		size_t np = rng(MAXP + 1);
		snprintf(w->ids[i], sizeof w->ids[i], "c%d", perm[i]); /* unique ids */
		snprintf(w->names[i], sizeof w->names[i], "n%u", rng(3));
		for (size_t p = 0; p < np; p++) {
			w->ports[i][p].host_ip = ips[rng(NELEM(ips))];
			w->ports[i][p].host_port = hports[rng(NELEM(hports))];
			w->ports[i][p].container_port = (uint16_t)(1 + rng(100));
			w->ports[i][p].proto = rng(5) == 0 ? UDP : TCP;
		}
		w->c[i] = (struct rdhpf_container){
		    .id = w->ids[i], .name = w->names[i], .ports = w->ports[i], .n_ports = np};
		w->rc[i] = (struct rc_container){&w->c[i], rng(4)}; /* ties happen */
	}
}

static void
random_policy(struct rc_policy *pol)
{
	static const struct rc_port_map maps[] = {{8080, 9000}, {443, 8080}, {1, 0}};
	static const int32_t offsets[] = {0, 0, 1000, -79, 1, 60000};
	static const char *const binds[] = {"127.0.0.1", "::1"};

	*pol = (struct rc_policy){0}; /* fields it does not vary stay off */
	pol->bind = binds[rng(2)];
	pol->port_offset = offsets[rng(NELEM(offsets))];
	pol->map = maps;
	pol->n_map = rng(NELEM(maps) + 1);
}

/* Every desired forward beats every conflict on its key. */
static void
check_ownership(const struct desired *d)
{
	for (size_t i = 0; i < d->n_conf; i++) {
		const struct rc_forward *l = &d->conf[i];
		if (l->local_port == 0)
			continue;
		size_t j;
		for (j = 0; j < d->n; j++)
			if (same_key(&d->f[j], l))
				break;
		assert_true(j < d->n); /* a loser always has a winner */
		const struct rc_forward *w = &d->f[j];
		assert_true(w->seq > l->seq ||
		            (w->seq == l->seq && strcmp(w->container_id, l->container_id) <= 0));
	}
}

static void
test_property_converges(void **state)
{
	(void)state;
	rng_state = 0x9e3779b97f4a7c15ull;
	for (int iter = 0; iter < 3000; iter++) {
		struct world before, now;
		struct rc_policy pol;
		struct desired d_before, d_now, d_shuffled;

		random_policy(&pol);
		random_world(&before);
		random_world(&now);
		desired_of(before.rc, before.n, &pol, &d_before);
		desired_of(now.rc, now.n, &pol, &d_now);
		check_ownership(&d_now);

		/* the input order does not matter */
		for (size_t i = now.n; i > 1; i--) {
			size_t j = rng((uint32_t)i);
			struct rc_container t = now.rc[i - 1];
			now.rc[i - 1] = now.rc[j];
			now.rc[j] = t;
		}
		desired_of(now.rc, now.n, &pol, &d_shuffled);
		assert_int_equal(d_shuffled.n, d_now.n);
		assert_int_equal(d_shuffled.n_conf, d_now.n_conf);
		assert_int_equal(d_shuffled.udp, d_now.udp);
		if (d_now.n > 0)
			assert_memory_equal(d_shuffled.f, d_now.f, d_now.n * sizeof *d_now.f);
		if (d_now.n_conf > 0)
			assert_memory_equal(d_shuffled.conf, d_now.conf,
			                    d_now.n_conf * sizeof *d_now.conf);

		/* from the previous state, from nothing, to nothing */
		check_converges(d_now.f, d_now.n, d_before.f, d_before.n);
		check_converges(d_now.f, d_now.n, NULL, 0);
		check_converges(NULL, 0, d_now.f, d_now.n);
		check_converges(d_now.f, d_now.n, d_now.f, d_now.n);

		desired_free(&d_before);
		desired_free(&d_now);
		desired_free(&d_shuffled);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_remote_host),
	    cmocka_unit_test(test_empty_empty),
	    cmocka_unit_test(test_adds_from_empty),
	    cmocka_unit_test(test_removes_to_empty),
	    cmocka_unit_test(test_dual_stack_dedupe),
	    cmocka_unit_test(test_dual_stack_across_containers_is_a_conflict),
	    cmocka_unit_test(test_udp_skipped_and_counted),
	    cmocka_unit_test(test_ephemeral_zero_skipped),
	    cmocka_unit_test(test_specific_host_ip),
	    cmocka_unit_test(test_host_ip_must_be_an_address),
	    cmocka_unit_test(test_same_port_two_addresses_in_one_container),
	    cmocka_unit_test(test_port_offset_and_map),
	    cmocka_unit_test(test_negative_offset_and_default_policy),
	    cmocka_unit_test(test_map_can_collide_with_offset),
	    cmocka_unit_test(test_last_event_wins_and_ties),
	    cmocka_unit_test(test_ownership_moves),
	    cmocka_unit_test(test_reconcile_mixed_removes_first),
	    cmocka_unit_test(test_reconcile_remote_host_change_is_remove_add),
	    cmocka_unit_test(test_property_converges),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
