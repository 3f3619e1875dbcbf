/* Port rules: parsing, matching, shadowing; the reconciler applying them;
 * the config file carrying them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "labels.h"
#include "reconcile.h"
#include "rules.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static struct rule
parsed(const char *text)
{
	struct rule r;
	char err[512] = "";

	if (rule_parse(text, 7, &r, err, sizeof err) != 0)
		fail_msg("rule '%s' refused: %s", text, err);
	return r;
}

static void
refused(const char *text, const char *why)
{
	struct rule r;
	char err[512] = "";

	assert_int_equal(rule_parse(text, 1, &r, err, sizeof err), -1);
	if (strstr(err, why) == NULL)
		fail_msg("rule '%s': error '%s' does not say '%s'", text, err, why);
}

/* ---- parsing ---------------------------------------------------------- */

static void
test_parse_forms(void **state)
{
	(void)state;
	struct rule r = parsed("forward port=8000-8099 -> 18000-18099");
	assert_int_equal(r.action, RULE_FORWARD);
	assert_int_equal(r.line, 7);
	assert_int_equal(r.port_lo, 8000);
	assert_int_equal(r.port_hi, 8099);
	assert_int_equal(r.to_lo, 18000);
	assert_int_equal(r.to_hi, 18099);
	rule_clear(&r);

	r = parsed("forward port=80->8080 name=web-* bind=::1");
	assert_int_equal(r.port_lo, 80);
	assert_int_equal(r.to_lo, 8080);
	assert_string_equal(r.name, "web-*");
	assert_string_equal(r.bind, "::1");
	rule_clear(&r);

	r = parsed("  ignore\tlabel=com.example.role=db  image=postgres:* proto=tcp ");
	assert_int_equal(r.action, RULE_IGNORE);
	assert_string_equal(r.label_key, "com.example.role");
	assert_string_equal(r.label_value, "db");
	assert_string_equal(r.image, "postgres:*");
	assert_int_equal(r.proto, RDHPF_PROTO_TCP);
	rule_clear(&r);

	r = parsed("ignore label=rdhpf.skip");
	assert_string_equal(r.label_key, "rdhpf.skip");
	assert_null(r.label_value);
	rule_clear(&r);

	r = parsed("ignore");
	assert_int_equal(r.port_lo, 0);
	assert_null(r.name);
	rule_clear(&r);
}

static void
test_parse_round_trip(void **state)
{
	(void)state;
	const char *texts[] = {
	    "forward port=8000-8099 -> 18000-18099",
	    "forward port=80 name=web-* -> 8080 bind=::1",
	    "ignore proto=udp",
	    "ignore port=1-1023 image=postgres:* label=a=b",
	    "forward label=rdhpf.expose",
	};
	for (size_t i = 0; i < NELEM(texts); i++) {
		struct rule r = parsed(texts[i]), back;
		char buf[RULE_TEXT_MAX];
		rule_format(&r, buf, sizeof buf);
		assert_string_equal(buf, texts[i]);
		back = parsed(buf);
		assert_true(rule_same(&r, &back));
		rule_clear(&r);
		rule_clear(&back);
	}
}

static void
test_parse_errors(void **state)
{
	(void)state;
	refused("", "empty rule");
	refused("allow port=80", "bad action 'allow'");
	refused("forward port=0", "bad port '0'");
	refused("forward port=90-80", "bad port '90-80'");
	refused("forward port=65536", "bad port");
	refused("forward port=80 port=81", "port given twice");
	refused("forward port=80 ->", "'->' without a local port");
	refused("forward -> 8080", "needs port=");
	refused("ignore port=80 -> 8080", "'->' only with forward");
	refused("forward port=80-89 -> 100-104", "ranges map one to one");
	refused("forward port=80-89 -> 100", "several remote ports cannot share one local port");
	refused("forward port=65000-65100 -> 65500-65600", "bad local port");
	refused("forward proto=udp", "SSH forwards carry TCP only");
	refused("forward proto=icmp", "bad proto 'icmp'");
	refused("forward bind=example.com", "bad bind 'example.com'");
	refused("ignore bind=127.0.0.1", "bind only with forward");
	refused("forward colour=red", "unknown matcher 'colour'");
	refused("forward 8080", "expected KEY=VALUE");
	refused("forward label==x", "bad label");
	refused("forward name=", "bad name");
	refused("forward name=a name=b", "name given twice");
	refused("forward name=\x7f", "bad name");
	refused("forward port=80 -> 81 -> 82", "'->' given twice");
}

/* ---- matching --------------------------------------------------------- */

static void
test_match(void **state)
{
	(void)state;
	struct rule_label labels[] = {{"com.example.role", "db"}, {"rdhpf.skip", ""}};
	struct rule_subject s = {
	    .port = 5432,
	    .proto = RDHPF_PROTO_TCP,
	    .name = "web-1",
	    .image = "postgres:16",
	    .labels = labels,
	    .n_labels = NELEM(labels),
	};
	struct {
		const char *rule;
		bool match;
	} cases[] = {
	    {"forward", true},
	    {"forward port=5432", true},
	    {"forward port=5000-5999", true},
	    {"forward port=5433-5999", false},
	    {"forward proto=tcp", true},
	    {"ignore proto=udp", false},
	    {"forward name=web-*", true},
	    {"forward name=api-*", false},
	    {"forward image=postgres:*", true},
	    {"forward image=redis*", false},
	    {"forward label=com.example.role", true},
	    {"forward label=com.example.role=db", true},
	    {"forward label=com.example.role=web", false},
	    {"forward label=rdhpf.skip", true},
	    {"forward label=absent", false},
	    {"forward port=5432 name=web-? image=postgres:16 label=com.example.role=db", true},
	    {"forward port=5432 name=web-? image=mysql", false},
	};
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct rule r = parsed(cases[i].rule);
		if (rule_matches(&r, &s) != cases[i].match)
			fail_msg("'%s' should %smatch", cases[i].rule,
			         cases[i].match ? "" : "not ");
		rule_clear(&r);
	}

	/* A runtime that reports neither image nor labels: rules asking for
	 * them do not match, the others still do. */
	struct rule_subject bare = {.port = 80, .proto = RDHPF_PROTO_TCP, .name = "x"};
	struct rule img = parsed("ignore image=*"), lab = parsed("ignore label=a"),
	            any = parsed("ignore port=80");
	assert_false(rule_matches(&img, &bare));
	assert_false(rule_matches(&lab, &bare));
	assert_true(rule_matches(&any, &bare));
	rule_clear(&img);
	rule_clear(&lab);
	rule_clear(&any);
}

static void
test_first_match_and_local_port(void **state)
{
	(void)state;
	struct rule rs[] = {
	    parsed("ignore port=8050"),
	    parsed("forward port=8000-8099 -> 18000-18099"),
	    parsed("forward port=9000 -> 9900"),
	    parsed("forward port=9000-9999"),
	};
	struct rule_subject s = {.proto = RDHPF_PROTO_TCP, .name = "c"};

	s.port = 8050;
	assert_int_equal(rules_first(rs, NELEM(rs), &s), 0);
	s.port = 8051;
	assert_int_equal(rules_first(rs, NELEM(rs), &s), 1);
	assert_int_equal(rule_local_port(&rs[1], 8051), 18051);
	assert_int_equal(rule_local_port(&rs[1], 8099), 18099);
	s.port = 9000;
	assert_int_equal(rules_first(rs, NELEM(rs), &s), 2);
	assert_int_equal(rule_local_port(&rs[2], 9000), 9900);
	s.port = 9001;
	assert_int_equal(rules_first(rs, NELEM(rs), &s), 3);
	assert_int_equal(rule_local_port(&rs[3], 9001), 0); /* no target: offset / port_map */
	s.port = 7999;
	assert_int_equal(rules_first(rs, NELEM(rs), &s), -1);
	for (size_t i = 0; i < NELEM(rs); i++)
		rule_clear(&rs[i]);
}

/* ---- shadowing -------------------------------------------------------- */

static void
test_covers(void **state)
{
	(void)state;
	struct {
		const char *a, *b;
		bool covers;
	} cases[] = {
	    {"ignore", "forward port=80", true},
	    {"forward port=1-1000", "ignore port=80-90", true},
	    {"forward port=80-90", "ignore port=1-1000", false},
	    {"forward port=80-90", "ignore", false},
	    {"ignore proto=udp", "ignore proto=udp port=53", true},
	    {"ignore proto=udp", "ignore port=53", false},
	    {"ignore name=web-*", "forward name=web-1", true},
	    {"ignore name=web-*", "forward name=web-?", false}, /* unsure: keep */
	    {"ignore name=*", "forward name=web-?", true},
	    {"ignore name=web-*", "forward name=web-*", true},
	    {"ignore image=redis*", "forward image=postgres", false},
	    {"ignore label=a", "forward label=a=1", true},
	    {"ignore label=a=1", "forward label=a", false},
	    {"ignore label=a=1", "forward label=a=2", false},
	    {"ignore label=a", "forward label=b", false},
	    {"ignore label=a", "forward", false},
	    {"forward port=80 -> 8080", "forward port=80 -> 9090", true},
	};
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct rule a = parsed(cases[i].a), b = parsed(cases[i].b);
		if (rule_covers(&a, &b) != cases[i].covers)
			fail_msg("'%s' should %scover '%s'", cases[i].a,
			         cases[i].covers ? "" : "not ", cases[i].b);
		rule_clear(&a);
		rule_clear(&b);
	}
}

/* ---- the reconciler with rules ---------------------------------------- */

static struct rdhpf_port web_ports[] = {
    {.host_ip = "0.0.0.0", .host_port = 8001, .container_port = 80, .proto = RDHPF_PROTO_TCP},
    {.host_ip = "::", .host_port = 8001, .container_port = 80, .proto = RDHPF_PROTO_TCP},
    {.host_ip = "0.0.0.0", .host_port = 53, .container_port = 53, .proto = RDHPF_PROTO_UDP},
    {.host_ip = "0.0.0.0", .host_port = 9229, .container_port = 9229, .proto = RDHPF_PROTO_TCP},
};
static struct rdhpf_port db_ports[] = {
    {.host_ip = "127.0.0.1", .host_port = 5432, .container_port = 5432, .proto = RDHPF_PROTO_TCP},
};
static struct rdhpf_port other_ports[] = {
    {.host_ip = "0.0.0.0", .host_port = 3000, .container_port = 3000, .proto = RDHPF_PROTO_TCP},
    {.host_ip = "0.0.0.0", .host_port = 8001, .container_port = 8001, .proto = RDHPF_PROTO_TCP},
};

static const struct rdhpf_container web = {
    .id = "aaaa", .name = "web-1", .ports = web_ports, .n_ports = NELEM(web_ports)};
static const struct rdhpf_container db = {
    .id = "bbbb", .name = "db", .ports = db_ports, .n_ports = NELEM(db_ports)};
static const struct rdhpf_container other = {
    .id = "cccc", .name = "other", .ports = other_ports, .n_ports = NELEM(other_ports)};

static const struct rc_forward *
find_fwd(const struct rc_forward *f, size_t n, uint16_t remote, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (f[i].remote_port == remote && strcmp(f[i].container_id, id) == 0)
			return &f[i];
	return NULL;
}

static const struct rc_skip *
find_skip(const struct rc_skip *s, size_t n, uint16_t remote, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (s[i].remote_port == remote && strcmp(s[i].container_id, id) == 0)
			return &s[i];
	return NULL;
}

static void
test_reconcile_rules(void **state)
{
	(void)state;
	struct rule rs[] = {
	    parsed("ignore port=9229"),
	    parsed("forward port=8000-8099 -> 18000-18099 bind=::1"),
	    parsed("forward image=postgres* port=5432 -> 1"), /* no image: never matches */
	    parsed("forward name=db"),
	};
	struct rule_label dblabels[] = {{"rdhpf.skip", "true"}};
	struct rule_label none[] = {{"x", "y"}};
	struct rc_meta meta[] = {
	    {.labels = none, .n_labels = 1}, {.labels = dblabels, .n_labels = 1}, {0}};
	rs[0].line = 10;
	rs[1].line = 11;
	rs[2].line = 12;
	rs[3].line = 13;
	struct rc_port_map map[] = {{.remote_port = 5432, .local_port = 15432}};
	struct rc_policy pol = {.bind = "127.0.0.1",
	                        .port_offset = 100,
	                        .map = map,
	                        .n_map = 1,
	                        .rules = rs,
	                        .n_rules = NELEM(rs)};
	struct rc_container cs[] = {{&web, 1}, {&db, 2}, {&other, 3}};
	struct rc_forward *f = NULL, *conf = NULL;
	struct rc_skip *sk = NULL;
	size_t nf = 0, nconf = 0, nsk = 0;
	const struct rc_forward *x;
	const struct rc_skip *s;

	assert_int_equal(
	    rc_desired_full(cs, meta, NELEM(cs), &pol, &f, &nf, &conf, &nconf, &sk, &nsk), 0);

	/* web 8001 → rule 11: ::1:18001 (other's 8001 wants the same key
	 * and, starting later, wins) */
	x = find_fwd(f, nf, 8001, "cccc");
	assert_non_null(x);
	assert_string_equal(x->bind, "::1");
	assert_int_equal(x->local_port, 18001);
	assert_int_equal(x->rule_line, 11);
	assert_null(find_fwd(f, nf, 8001, "aaaa"));
	s = find_skip(sk, nsk, 8001, "aaaa");
	assert_non_null(s);
	assert_int_equal(s->why, RC_SKIP_TAKEN);
	assert_string_equal(s->holder, "other");
	assert_int_equal(s->local_port, 18001);
	assert_int_equal(s->rule_line, 11);

	/* 9229 ignored by rule 10 */
	s = find_skip(sk, nsk, 9229, "aaaa");
	assert_non_null(s);
	assert_int_equal(s->why, RC_SKIP_RULE);
	assert_int_equal(s->rule_line, 10);
	assert_string_equal(rc_skip_reason(s), "ignored by rule");

	/* UDP: skipped for protocol, once, with no rule */
	s = find_skip(sk, nsk, 53, "aaaa");
	assert_non_null(s);
	assert_int_equal(s->why, RC_SKIP_PROTO);
	assert_int_equal(s->rule_line, 0);

	/* db: rule 13 without a target: port_map still decides */
	x = find_fwd(f, nf, 5432, "bbbb");
	assert_non_null(x);
	assert_int_equal(x->local_port, 15432);
	assert_string_equal(x->remote_host, "127.0.0.1");
	assert_int_equal(x->rule_line, 13);

	/* other 3000: no rule: offset */
	x = find_fwd(f, nf, 3000, "cccc");
	assert_non_null(x);
	assert_int_equal(x->local_port, 3100);
	assert_string_equal(x->bind, "127.0.0.1");
	assert_int_equal(x->rule_line, 0);

	/* every published port accounted for exactly once:
	 * web 8001 (dual stack = one), 53, 9229; db 5432; other 3000, 8001 */
	assert_int_equal(nf + nsk, 6);
	assert_int_equal(nf, 3);
	free(f);
	free(conf);
	free(sk);

	/* A label rule sees the labels of its own container only. */
	rule_clear(&rs[3]);
	rs[3] = parsed("ignore label=rdhpf.skip=true");
	assert_int_equal(
	    rc_desired_full(cs, meta, NELEM(cs), &pol, &f, &nf, &conf, &nconf, &sk, &nsk), 0);
	assert_null(find_fwd(f, nf, 5432, "bbbb"));
	s = find_skip(sk, nsk, 5432, "bbbb");
	assert_non_null(s);
	assert_int_equal(s->why, RC_SKIP_RULE);
	assert_non_null(find_fwd(f, nf, 3000, "cccc"));
	free(f);
	free(conf);
	free(sk);
	for (size_t i = 0; i < NELEM(rs); i++)
		rule_clear(&rs[i]);
}

/* "Only these ports": forwards first, then a catch-all ignore. */
static void
test_reconcile_allow_list(void **state)
{
	(void)state;
	struct rule rs[] = {parsed("forward port=3000"), parsed("ignore")};
	struct rc_policy pol = {.bind = "127.0.0.1", .rules = rs, .n_rules = NELEM(rs)};
	struct rc_container cs[] = {{&web, 1}, {&db, 2}, {&other, 3}};
	struct rc_forward *f = NULL;
	struct rc_skip *sk = NULL;
	size_t nf = 0, nsk = 0;

	assert_int_equal(rc_desired_full(cs, NULL, NELEM(cs), &pol, &f, &nf, NULL, NULL, &sk, &nsk),
	                 0);
	assert_int_equal(nf, 1);
	assert_int_equal(f[0].remote_port, 3000);
	assert_int_equal(nsk, 5);
	for (size_t i = 0; i < nsk; i++)
		assert_int_equal(sk[i].why, RC_SKIP_RULE);
	/* sorted by container name */
	assert_string_equal(sk[0].container_name, "db");
	assert_string_equal(sk[nsk - 1].container_name, "web-1");
	free(f);
	free(sk);
	rule_clear(&rs[0]);
	rule_clear(&rs[1]);
}

/* ---- bind addresses --------------------------------------------------- */

static void
test_bind_expand(void **state)
{
	(void)state;
	char out[RC_BIND_MAX][RC_ADDR_MAX];

	assert_int_equal(rc_bind_expand("localhost", 0, out, RC_BIND_MAX), 2);
	assert_string_equal(out[0], "127.0.0.1");
	assert_string_equal(out[1], "::1");
	assert_int_equal(rc_bind_expand("localhost", 1, out, RC_BIND_MAX), 1);
	assert_string_equal(out[0], "127.0.0.1");
	assert_int_equal(rc_bind_expand("::1, 127.0.0.1 localhost,,10.0.0.5", 0, out, RC_BIND_MAX),
	                 3);
	assert_string_equal(out[0], "::1");
	assert_string_equal(out[1], "127.0.0.1");
	assert_string_equal(out[2], "10.0.0.5");
	assert_int_equal(rc_bind_expand("", 0, out, RC_BIND_MAX), 0);
	assert_int_equal(rc_bind_expand("a b c", 0, out, 2), 2);
}

/* localhost: one forward per loopback; a later container takes both. */
static void
test_reconcile_localhost(void **state)
{
	(void)state;
	struct rule rs[] = {parsed("forward port=3000 bind=10.1.2.3")};
	struct rc_policy pol = {.bind = "localhost", .rules = rs, .n_rules = NELEM(rs)};
	struct rc_container cs[] = {{&web, 1}, {&other, 2}};
	struct rc_forward *f = NULL;
	struct rc_skip *sk = NULL;
	size_t nf = 0, nsk = 0, taken = 0;

	assert_int_equal(rc_desired_full(cs, NULL, NELEM(cs), &pol, &f, &nf, NULL, NULL, &sk, &nsk),
	                 0);
	/* web 8001 (lost), 9229; other 3000 (rule bind), 8001 */
	assert_int_equal(nf, 5);
	assert_string_equal(f[0].bind, "10.1.2.3");
	assert_int_equal(f[0].local_port, 3000);
	assert_string_equal(f[1].bind, "127.0.0.1");
	assert_int_equal(f[1].local_port, 8001);
	assert_string_equal(f[1].container_id, "cccc");
	assert_string_equal(f[2].bind, "127.0.0.1");
	assert_int_equal(f[2].local_port, 9229);
	assert_string_equal(f[3].bind, "::1");
	assert_int_equal(f[3].local_port, 8001);
	assert_string_equal(f[3].container_id, "cccc");
	assert_string_equal(f[4].bind, "::1");
	assert_int_equal(f[4].local_port, 9229);
	for (size_t i = 0; i < nsk; i++)
		if (sk[i].why == RC_SKIP_TAKEN) {
			taken++;
			assert_string_equal(sk[i].holder, "other");
		}
	assert_int_equal(taken, 2); /* one per address */

	free(f);
	free(sk);
	pol.no_ipv6_loopback = 1;
	assert_int_equal(rc_desired_full(cs, NULL, NELEM(cs), &pol, &f, &nf, NULL, NULL, &sk, &nsk),
	                 0);
	assert_int_equal(nf, 3);
	for (size_t i = 0; i < nf; i++)
		assert_string_not_equal(f[i].bind, "::1");
	free(f);
	free(sk);
	rule_clear(&rs[0]);
}

/* ---- privileged ports ------------------------------------------------ */

static struct rdhpf_port low_ports[] = {
    {.host_ip = "0.0.0.0", .host_port = 80, .container_port = 80, .proto = RDHPF_PROTO_TCP},
    {.host_ip = "0.0.0.0", .host_port = 65500, .container_port = 81, .proto = RDHPF_PROTO_TCP},
    {.host_ip = "0.0.0.0", .host_port = 1024, .container_port = 82, .proto = RDHPF_PROTO_TCP},
};
static const struct rdhpf_container low = {
    .id = "dddd", .name = "low", .ports = low_ports, .n_ports = NELEM(low_ports)};

static void
test_reconcile_privileged(void **state)
{
	(void)state;
	struct rc_container cs[] = {{&low, 1}};
	struct rc_policy pol = {.bind = "127.0.0.1", .unpriv_port_start = 1024};
	struct rc_forward *f = NULL;
	struct rc_skip *sk = NULL;
	size_t nf = 0, nsk = 0;

	/* default: 80 is skipped with the reason, never attempted */
	assert_int_equal(rc_desired_full(cs, NULL, 1, &pol, &f, &nf, NULL, NULL, &sk, &nsk), 0);
	assert_int_equal(nf, 2);
	assert_int_equal(f[0].local_port, 1024);
	assert_int_equal(f[1].local_port, 65500);
	assert_int_equal(nsk, 1);
	assert_int_equal(sk[0].why, RC_SKIP_PRIVILEGED);
	assert_int_equal(sk[0].local_port, 80);
	assert_non_null(strstr(rc_skip_reason(&sk[0]), "CAP_NET_BIND_SERVICE, or a port_map"));
	free(f);
	free(sk);

	/* privileged = offset 8000: 80 → 8080; others untouched */
	pol.privileged_offset = 8000;
	assert_int_equal(rc_desired_full(cs, NULL, 1, &pol, &f, &nf, NULL, NULL, &sk, &nsk), 0);
	assert_int_equal(nf, 3);
	assert_int_equal(f[0].local_port, 1024);
	assert_int_equal(f[1].local_port, 8080);
	assert_int_equal(f[1].remote_port, 80);
	assert_int_equal(nsk, 0);
	free(f);
	free(sk);

	/* an offset that stays privileged is still refused */
	pol.privileged_offset = 100;
	assert_int_equal(rc_desired_full(cs, NULL, 1, &pol, &f, &nf, NULL, NULL, &sk, &nsk), 0);
	assert_int_equal(nf, 2);
	assert_int_equal(nsk, 1);
	assert_int_equal(sk[0].local_port, 180);
	free(f);
	free(sk);

	/* privileged = skip */
	pol.privileged_offset = 0;
	pol.privileged_skip = 1;
	assert_int_equal(rc_desired_full(cs, NULL, 1, &pol, &f, &nf, NULL, NULL, &sk, &nsk), 0);
	assert_int_equal(nf, 2);
	assert_int_equal(nsk, 1);
	assert_int_equal(sk[0].why, RC_SKIP_PRIVILEGED_SKIP);
	free(f);
	free(sk);

	/* root / CAP_NET_BIND_SERVICE: everything forwards */
	pol.unpriv_port_start = 0;
	assert_int_equal(rc_desired_full(cs, NULL, 1, &pol, &f, &nf, NULL, NULL, &sk, &nsk), 0);
	assert_int_equal(nf, 3);
	assert_int_equal(nsk, 0);
	free(f);
	free(sk);
}

/* ---- container labels (labels = yes) ---------------------------------- */

static void
test_labels_parse(void **state)
{
	(void)state;
	struct labels_policy p;
	struct rule_label good[] = {
	    {"com.docker.compose.project", "x"}, {"rdhpf.ignore", "false"},
	    {"rdhpf.port.80", "8080"},           {"rdhpf.port.443", "8443"},
	    {"rdhpf.bind", "127.0.0.1, ::1"},
	};
	assert_int_equal(labels_parse(good, NELEM(good), &p), 0);
	assert_false(p.ignore);
	assert_string_equal(p.bind, "127.0.0.1, ::1");
	assert_int_equal(labels_local_port(&p, 80), 8080);
	assert_int_equal(labels_local_port(&p, 443), 8443);
	assert_int_equal(labels_local_port(&p, 81), 0);
	assert_string_equal(p.err, "");

	struct rule_label badl[] = {
	    {"rdhpf.ignore", "yes please"}, {"rdhpf.port.http", "8080"},
	    {"rdhpf.port.81", "99999"},     {"rdhpf.port.82", "9090"},
	    {"rdhpf.bind", "example.org"},  {"rdhpf.colour", "red"},
	    {"rdhpf.port.83", "9090"},
	};
	assert_int_equal(labels_parse(badl, NELEM(badl), &p), 6);
	/* the good one still applies */
	assert_int_equal(labels_local_port(&p, 82), 9090);
	assert_false(p.ignore);
	assert_string_equal(p.bind, "");
	assert_non_null(
	    strstr(p.err, "label rdhpf.ignore: bad value 'yes please' (true or false)"));
	assert_non_null(strstr(p.err, "label rdhpf.port.http: bad remote port 'http'"));
	assert_non_null(strstr(p.err, "label rdhpf.port.81: bad local port '99999'"));
	assert_non_null(strstr(p.err, "label rdhpf.bind: bad value 'example.org'"));
	assert_non_null(strstr(p.err, "unknown label rdhpf.colour"));

	/* a flood of bad labels stays bounded */
	struct rule_label many[200];
	for (size_t i = 0; i < NELEM(many); i++)
		many[i] = (struct rule_label){"rdhpf.ignore", "maybe"};
	assert_int_equal(labels_parse(many, NELEM(many), &p), NELEM(many));
	assert_true(strlen(p.err) < sizeof p.err);
}

static void
test_reconcile_labels(void **state)
{
	(void)state;
	struct rule rs[] = {parsed("ignore port=8001"), parsed("ignore port=3000")};
	struct rule_label web_l[] = {
	    {"rdhpf.port.8001", "28001"}, {"rdhpf.bind", "127.0.0.3"}, {"rdhpf.port.9229", "oops"}};
	struct rule_label db_l[] = {{"rdhpf.ignore", "true"}};
	struct rc_meta meta[] = {{.labels = web_l, .n_labels = NELEM(web_l)},
	                         {.labels = db_l, .n_labels = NELEM(db_l)},
	                         {0}};
	struct rc_policy pol = {
	    .bind = "127.0.0.1", .rules = rs, .n_rules = NELEM(rs), .labels = 1};
	struct rc_container cs[] = {{&web, 1}, {&db, 2}, {&other, 3}};
	struct rc_forward *f = NULL;
	struct rc_skip *sk = NULL;
	size_t nf = 0, nsk = 0;
	const struct rc_forward *x;
	const struct rc_skip *s;

	assert_int_equal(rc_desired_full(cs, meta, NELEM(cs), &pol, &f, &nf, NULL, NULL, &sk, &nsk),
	                 0);
	/* web: 8001 named by its label wins over the ignore rule, on its bind */
	x = find_fwd(f, nf, 8001, "aaaa");
	assert_non_null(x);
	assert_int_equal(x->local_port, 28001);
	assert_string_equal(x->bind, "127.0.0.3");
	/* the bad rdhpf.port.9229 is left out: 9229 forwards as usual */
	x = find_fwd(f, nf, 9229, "aaaa");
	assert_non_null(x);
	assert_int_equal(x->local_port, 9229);
	assert_string_equal(x->bind, "127.0.0.3");
	/* db: rdhpf.ignore=true */
	s = find_skip(sk, nsk, 5432, "bbbb");
	assert_non_null(s);
	assert_int_equal(s->why, RC_SKIP_LABEL);
	assert_string_equal(s->label, "rdhpf.ignore=true");
	assert_string_equal(rc_skip_reason(s), "ignored by label");
	/* other: no labels, the rules decide */
	assert_null(find_fwd(f, nf, 3000, "cccc"));
	assert_null(find_fwd(f, nf, 8001, "cccc"));
	s = find_skip(sk, nsk, 8001, "cccc");
	assert_non_null(s);
	assert_int_equal(s->why, RC_SKIP_RULE);
	free(f);
	free(sk);

	/* labels = no: labels are not read at all */
	pol.labels = 0;
	assert_int_equal(rc_desired_full(cs, meta, NELEM(cs), &pol, &f, &nf, NULL, NULL, &sk, &nsk),
	                 0);
	assert_non_null(find_fwd(f, nf, 5432, "bbbb"));
	assert_null(find_fwd(f, nf, 8001, "aaaa"));
	free(f);
	free(sk);
	rule_clear(&rs[0]);
	rule_clear(&rs[1]);
}

/* ---- the config file -------------------------------------------------- */

static void
test_config_rules(void **state)
{
	(void)state;
	struct cfg c;
	char *buf = NULL;
	size_t len = 0;
	FILE *out;

	assert_int_equal(cfg_parse_string("r.ini",
	                                  "[host \"a\"]\n"
	                                  "url = ssh://a\n"
	                                  "rule = ignore proto=udp\n"
	                                  "rule = forward port=8000-8099 -> 18000-18099\n"
	                                  "port_map = 5432:15432\n"
	                                  "rule = ignore\n",
	                                  &c),
	                 0);
	assert_int_equal(c.n_hosts, 1);
	assert_int_equal(c.hosts[0].n_rules, 3);
	assert_int_equal(c.hosts[0].rules[0].line, 3);
	assert_int_equal(c.hosts[0].rules[2].line, 6);
	assert_string_equal(c.hosts[0].rules[1].file, "r.ini");
	assert_string_equal(c.hosts[0].bind_address, "localhost"); /* the default */
	assert_int_equal(c.hosts[0].privileged_offset, 0);
	assert_int_equal(c.hosts[0].privileged_skip, 0);
	cfg_free(&c);
	assert_int_equal(cfg_parse_string("r.ini",
	                                  "[defaults]\nprivileged = offset 8000\n"
	                                  "[host \"a\"]\nurl = ssh://a\non_conflict = next-free\n"
	                                  "bind_address = 127.0.0.1, ::1\n"
	                                  "[host \"b\"]\nurl = ssh://b\nprivileged = skip\n",
	                                  &c),
	                 0);
	assert_int_equal(c.hosts[0].privileged_offset, 8000);
	assert_int_equal(c.hosts[0].on_conflict_next_free, 1);
	assert_string_equal(c.hosts[0].bind_address, "127.0.0.1, ::1");
	assert_int_equal(c.hosts[1].privileged_skip, 1);
	assert_int_equal(c.hosts[1].on_conflict_next_free, 0);
	cfg_free(&c);
	assert_int_equal(cfg_parse_string("r.ini",
	                                  "[host \"a\"]\n"
	                                  "url = ssh://a\n"
	                                  "rule = ignore proto=udp\n"
	                                  "rule = forward port=8000-8099 -> 18000-18099\n"
	                                  "port_map = 5432:15432\n"
	                                  "rule = ignore\n",
	                                  &c),
	                 0);

	/* a copy is the same host; one rule less is not */
	struct cfg_host *d = cfg_host_dup(&c.hosts[0]);
	assert_true(cfg_host_same(d, &c.hosts[0]));
	rule_clear(&d->rules[2]);
	d->n_rules--;
	assert_false(cfg_host_same(d, &c.hosts[0]));
	cfg_host_clear(d);
	free(d);

	out = open_memstream(&buf, &len);
	cfg_print(&c, out);
	fclose(out);
	assert_non_null(strstr(buf, "rules (first match wins):\n"
	                            "    r.ini:3: ignore proto=udp\n"
	                            "    r.ini:4: forward port=8000-8099 -> 18000-18099\n"
	                            "    r.ini:6: ignore\n"
	                            "    (default): never reached (line 6 matches every port)\n"));
	free(buf);
	cfg_free(&c);
}

static void
expect_error(const char *text, const char *want)
{
	struct cfg c;
	bool found = false;

	assert_int_not_equal(cfg_parse_string("r.ini", text, &c), 0);
	for (size_t i = 0; i < c.n_errors; i++)
		found = found || strstr(c.errors[i].text, want) != NULL;
	if (!found)
		fail_msg("no error '%s' (first: %s)", want, c.n_errors ? c.errors[0].text : "none");
	cfg_free(&c);
}

static void
test_config_rule_errors(void **state)
{
	(void)state;
	expect_error("[host \"a\"]\nurl = ssh://a\nrule = forward port=x\n",
	             "r.ini:3: [host \"a\"] rule: bad port 'x'");
	expect_error("[host \"a\"]\nurl = ssh://a\nbind_address = 127.0.0.1, example.org\n",
	             "r.ini:3: [host \"a\"] bind_address: bad address 'example.org'");
	expect_error("[host \"a\"]\nurl = ssh://a\nprivileged = offset\n",
	             "r.ini:3: [host \"a\"] privileged: bad value 'offset'");
	expect_error("[host \"a\"]\nurl = ssh://a\non_conflict = steal\n",
	             "r.ini:3: [host \"a\"] on_conflict: bad value 'steal' (wait or next-free)");
	expect_error("[defaults]\nrule = ignore\n[host \"a\"]\nurl = ssh://a\n",
	             "r.ini:2: [defaults] rule: rules belong to a host section");
	expect_error(
	    "[host \"a\"]\nurl = ssh://a\n"
	    "rule = forward port=1000-2000\n"
	    "rule = ignore port=1500\n",
	    "r.ini:4: [host \"a\"] rule: can never match: the rule at line 3 matches every "
	    "port it does");
	expect_error("[host \"a\"]\nurl = ssh://a\n"
	             "rule = ignore\n"
	             "rule = forward name=web\n",
	             "r.ini:4: [host \"a\"] rule: can never match: the rule at line 3");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_forms),
	    cmocka_unit_test(test_parse_round_trip),
	    cmocka_unit_test(test_parse_errors),
	    cmocka_unit_test(test_match),
	    cmocka_unit_test(test_first_match_and_local_port),
	    cmocka_unit_test(test_covers),
	    cmocka_unit_test(test_reconcile_rules),
	    cmocka_unit_test(test_reconcile_allow_list),
	    cmocka_unit_test(test_bind_expand),
	    cmocka_unit_test(test_reconcile_localhost),
	    cmocka_unit_test(test_reconcile_privileged),
	    cmocka_unit_test(test_labels_parse),
	    cmocka_unit_test(test_reconcile_labels),
	    cmocka_unit_test(test_config_rules),
	    cmocka_unit_test(test_config_rule_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
