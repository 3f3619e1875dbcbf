#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

/* ---- helpers ------------------------------------------------------------ */

static void
dump_errors(const struct cfg *c)
{
	for (size_t i = 0; i < c->n_errors; i++)
		print_message("  error %zu: %s\n", i, c->errors[i].text);
}

/* The errors, exactly and in order; NULL ends the list. */
static void
expect_errors(const struct cfg *c, const char *const *want)
{
	size_t n = 0;

	while (want[n] != NULL)
		n++;
	if (c->n_errors != n)
		dump_errors(c);
	assert_int_equal(c->n_errors, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(c->errors[i].text, want[i]);
}

static void
expect_one_error(const struct cfg *c, const char *want)
{
	const char *w[] = {want, NULL};
	expect_errors(c, w);
}

/* Field by field: the struct has padding. */
static void
expect_policy(const struct rdhpf_policy *a, const struct rdhpf_policy *b)
{
	assert_int_equal(a->health_interval_ms, b->health_interval_ms);
	assert_int_equal(a->keepalive_interval_ms, b->keepalive_interval_ms);
	assert_int_equal(a->keepalive_count, b->keepalive_count);
	assert_int_equal(a->connect_timeout_ms, b->connect_timeout_ms);
	assert_int_equal(a->backoff_initial_ms, b->backoff_initial_ms);
	assert_int_equal(a->backoff_max_ms, b->backoff_max_ms);
	assert_true(a->backoff_multiplier == b->backoff_multiplier);
	assert_true(a->backoff_jitter == b->backoff_jitter);
	assert_int_equal(a->breaker_threshold, b->breaker_threshold);
	assert_int_equal(a->breaker_cooldown_ms, b->breaker_cooldown_ms);
	assert_int_equal(a->reconnect_probe, b->reconnect_probe);
}

static const struct cfg_host *
host_named(const struct cfg *c, const char *name)
{
	for (size_t i = 0; i < c->n_hosts; i++) {
		if (strcmp(c->hosts[i].name, name) == 0)
			return &c->hosts[i];
	}
	fail_msg("no host '%s'", name);
	return NULL;
}

static const struct cfg_opt *
opt_named(const struct cfg_host *h, const char *key)
{
	for (size_t i = 0; i < h->n_opts; i++) {
		if (strcmp(h->opts[i].key, key) == 0)
			return &h->opts[i];
	}
	return NULL;
}

/* ---- URLs --------------------------------------------------------------- */

static void
test_url_plain_user_port(void **s)
{
	struct ssh_url u;
	char err[256];

	assert_int_equal(ssh_url_parse("ssh://build.example.net", &u, err, sizeof err), 0);
	assert_string_equal(u.host, "build.example.net");
	assert_string_equal(u.user, "");
	assert_int_equal(u.port, 0);

	assert_int_equal(ssh_url_parse("ssh://ci@build.example.net:2222", &u, err, sizeof err), 0);
	assert_string_equal(u.user, "ci");
	assert_string_equal(u.host, "build.example.net");
	assert_int_equal(u.port, 2222);

	assert_int_equal(ssh_url_parse("ssh://a.b_c-d@10.0.0.1:22/", &u, err, sizeof err), 0);
	assert_string_equal(u.user, "a.b_c-d");
	assert_string_equal(u.host, "10.0.0.1");
	assert_int_equal(u.port, 22);

	assert_int_equal(ssh_url_parse("SSH://h", &u, err, sizeof err), 0);
	assert_string_equal(u.host, "h");
}

static void
test_url_ipv6(void **s)
{
	struct ssh_url u;
	char err[256];

	assert_int_equal(ssh_url_parse("ssh://[::1]:2222", &u, err, sizeof err), 0);
	assert_string_equal(u.host, "::1");
	assert_int_equal(u.port, 2222);

	assert_int_equal(ssh_url_parse("ssh://root@[fe80::1%eth0]", &u, err, sizeof err), 0);
	assert_string_equal(u.user, "root");
	assert_string_equal(u.host, "fe80::1%eth0");
	assert_int_equal(u.port, 0);

	assert_int_equal(ssh_url_parse("ssh://[2001:db8::ffff:10.0.0.1]/", &u, err, sizeof err), 0);
	assert_string_equal(u.host, "2001:db8::ffff:10.0.0.1");
}

static void
test_url_rejects(void **s)
{
	static const struct {
		const char *url, *err;
	} cases[] = {
	    {"", "empty"},
	    {"build.example.net", "missing ssh:// scheme"},
	    {"tcp://h:2375", "unsupported scheme 'tcp' (only ssh:// is supported)"},
	    {"unix:///var/run/docker.sock", "unsupported scheme 'unix' (only ssh:// is supported)"},
	    {"ssh://h:0", "bad port '0' (1-65535)"},
	    {"ssh://h:70000", "bad port '70000' (1-65535)"},
	    {"ssh://h:abc", "bad port 'abc' (1-65535)"},
	    {"ssh://h:", "bad port '' (1-65535)"},
	    {"ssh://h:0022", "bad port '0022' (1-65535)"},
	    {"ssh://", "empty host"},
	    {"ssh://u@", "empty host"},
	    {"ssh://u@:22", "empty host"},
	    {"ssh://[]:22", "empty host"},
	    {"ssh://-oProxyCommand=x", "host starts with '-'"},
	    {"ssh://u@-h", "host starts with '-'"},
	    {"ssh://-u@h", "user starts with '-'"},
	    {"ssh://a;b@h", "user contains ';' (allowed: letters, digits, . _ -)"},
	    {"ssh://@h", "empty user before '@'"},
	    {"ssh://u:secret@h", "password in url is not supported"},
	    {"ssh://h$(id)", "host contains '$' (allowed: letters, digits, . - _; IPv6 in [ ])"},
	    {"ssh://h h", "host contains byte 0x20 (allowed: letters, digits, . - _; IPv6 in [ ])"},
	    {"ssh://a@b@c", "host contains '@' (allowed: letters, digits, . - _; IPv6 in [ ])"},
	    {"ssh://[::1", "unbalanced [ ]"},
	    {"ssh://::1]", "unbalanced [ ]"},
	    {"ssh://::1", "IPv6 address must be in [ ], e.g. ssh://[::1]:22"},
	    {"ssh://[::1]x", "unexpected 'x' after ']'"},
	    {"ssh://[zz::1]", "IPv6 address contains 'z'"},
	    {"ssh://[1.2.3.4]", "bad IPv6 address '1.2.3.4'"},
	    {"ssh://[fe80::1%]", "empty zone after '%'"},
	    {"ssh://[fe80::1%a;b]", "zone contains ';' (allowed: letters, digits, . _ -)"},
	    {"ssh://h/path", "unexpected '/path' after the host (only ssh://[user@]host[:port])"},
	    {"ssh://h?x=1", "unexpected '?x=1' after the host (only ssh://[user@]host[:port])"},
	};
	struct ssh_url u;
	char err[256];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		err[0] = '\0';
		if (ssh_url_parse(cases[i].url, &u, err, sizeof err) != -1)
			fail_msg("accepted '%s'", cases[i].url);
		if (strcmp(err, cases[i].err) != 0)
			fail_msg("'%s': got \"%s\", want \"%s\"", cases[i].url, err, cases[i].err);
	}
}

/* ---- durations ------------------------------------------------------------ */

static void
test_duration_good(void **s)
{
	static const struct {
		const char *in;
		uint64_t ms;
	} cases[] = {
	    {"500ms", 500}, {"15s", 15000}, {"2m", 120000}, {"1h", 3600000},
	    {"0", 0},       {"0s", 0},      {"1ms", 1},     {"8760h", 8760ull * 3600000},
	};
	char err[256];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint64_t ms = 12345;
		assert_int_equal(parse_duration(cases[i].in, &ms, err, sizeof err), 0);
		assert_int_equal(ms, cases[i].ms);
	}
}

static void
test_duration_bad(void **s)
{
	static const struct {
		const char *in, *err;
	} cases[] = {
	    {"15", "bad duration '15': missing unit (use 500ms, 15s, 2m, 1h)"},
	    {"-5s", "bad duration '-5s': negative (use 500ms, 15s, 2m, 1h)"},
	    {"1.5s", "bad duration '1.5s': fractions are not supported (write 1500ms, not 1.5s)"},
	    {"5 sec", "bad duration '5 sec' (use 500ms, 15s, 2m, 1h)"},
	    {"5sec", "bad duration '5sec': unknown unit 'sec' (use 500ms, 15s, 2m, 1h)"},
	    {"1d", "bad duration '1d': unknown unit 'd' (use 500ms, 15s, 2m, 1h)"},
	    {"s", "bad duration 's' (use 500ms, 15s, 2m, 1h)"},
	    {"+5s", "bad duration '+5s' (use 500ms, 15s, 2m, 1h)"},
	    {"", "bad duration '': empty (use 500ms, 15s, 2m, 1h)"},
	    {"05s", "bad duration '05s': leading zero (use 500ms, 15s, 2m, 1h)"},
	    {"8761h", "bad duration '8761h': too large (at most 8760h)"},
	    {"18446744073709551616ms",
	     "bad duration '18446744073709551616ms': too large (at most 8760h)"},
	    {"99999999999999999999999999h",
	     "bad duration '99999999999999999999999999h': too large (at most 8760h)"},
	};
	char err[256];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint64_t ms = 777;
		err[0] = '\0';
		if (parse_duration(cases[i].in, &ms, err, sizeof err) != -1)
			fail_msg("accepted '%s'", cases[i].in);
		assert_int_equal(ms, 777);
		if (strcmp(err, cases[i].err) != 0)
			fail_msg("'%s': got \"%s\", want \"%s\"", cases[i].in, err, cases[i].err);
	}
}

static void
test_format_duration_round_trip(void **s)
{
	static const struct {
		uint64_t ms;
		const char *text;
	} cases[] = {
	    {0, "0"},       {1, "1ms"},       {500, "500ms"},  {1500, "1500ms"},
	    {1000, "1s"},   {15000, "15s"},   {90000, "90s"},  {60000, "1m"},
	    {120000, "2m"}, {5400000, "90m"}, {3600000, "1h"}, {86400000, "24h"},
	};
	char buf[32], err[256];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint64_t back = 0;
		format_duration(cases[i].ms, buf, sizeof buf);
		assert_string_equal(buf, cases[i].text);
		assert_int_equal(parse_duration(buf, &back, err, sizeof err), 0);
		assert_int_equal(back, cases[i].ms);
	}
}

/* ---- defaults and resolution -------------------------------------------------- */

static void
test_builtin_defaults(void **s)
{
	struct cfg c;
	struct rdhpf_policy p;

	assert_int_equal(cfg_parse_string("t.ini", "[host \"a\"]\nurl = ssh://a\n", &c), 0);
	assert_int_equal(c.n_hosts, 1);
	const struct cfg_host *h = &c.hosts[0];
	assert_string_equal(h->name, "a");
	assert_int_equal(h->line, 1);
	assert_string_equal(h->url, "ssh://a");
	assert_string_equal(h->u.host, "a");
	assert_string_equal(h->transport, "openssh");
	assert_string_equal(h->runtime, "docker");
	assert_string_equal(h->bind_address, "localhost");
	assert_null(h->identity_file);
	assert_null(h->known_hosts);
	assert_int_equal(h->transport_line, 0);
	assert_int_equal(h->runtime_line, 0);
	assert_int_equal(h->port_offset, 0);
	assert_int_equal(h->n_port_map, 0);
	assert_int_equal(h->n_opts, 0);
	assert_null(c.plugin_dir);
	assert_null(c.log_format);
	assert_null(c.log_level);
	assert_null(c.runtime_dir);

	policy_defaults(&p);
	assert_int_equal(p.health_interval_ms, 15000);
	assert_int_equal(p.keepalive_interval_ms, 5000);
	assert_int_equal(p.keepalive_count, 3);
	assert_int_equal(p.connect_timeout_ms, 10000);
	assert_int_equal(p.backoff_initial_ms, 500);
	assert_int_equal(p.backoff_max_ms, 30000);
	assert_true(p.backoff_multiplier == 2.0);
	assert_true(p.backoff_jitter == 0.2);
	assert_int_equal(p.breaker_threshold, 10);
	assert_int_equal(p.breaker_cooldown_ms, 120000);
	assert_int_equal(p.reconnect_probe, 1);
	expect_policy(&h->pol, &p);
	cfg_free(&c);
}

static const char full_config[] =
    "# comments with # or ;\n"                                            /* 1 */
    "; another\n"                                                         /* 2 */
    "[host \"ci-linux\"]\n"                                               /* 3 */
    "url = ssh://ci@build.example.net:2222\n"                             /* 4 */
    "transport = libssh2\n"                                               /* 5 */
    "keepalive_interval = 7s\n"                                           /* 6 */
    "frobnicate = yes\n"                                                  /* 7 */
    "\n"                                                                  /* 8 */
    "[host \"plain\"]\n"                                                  /* 9 */
    "url = ssh://plain.example.net\n"                                     /* 10 */
    "\n"                                                                  /* 11 */
    "[defaults]\n"                                                        /* 12 */
    "plugin_dir = /usr/lib/x86_64-linux-gnu/rdhpf     ; inline comment\n" /* 13 */
    "log_format = json\n"                                                 /* 14 */
    "log_level = debug\n"                                                 /* 15 */
    "runtime_dir = /run/rdhpf\n"                                          /* 16 */
    "transport = openssh\n"                                               /* 17 */
    "runtime = podman\n"                                                  /* 18 */
    "keepalive_interval = 5s\n"                                           /* 19 */
    "keepalive_count = 4\n"                                               /* 20 */
    "health_interval = 1m\n"                                              /* 21 */
    "connect_timeout = 3s\n"                                              /* 22 */
    "backoff_initial = 250ms\n"                                           /* 23 */
    "backoff_max = 1m\n"                                                  /* 24 */
    "backoff_multiplier = 1.5\n"                                          /* 25 */
    "backoff_jitter = 0.25\n"                                             /* 26 */
    "breaker_threshold = 20\n"                                            /* 27 */
    "breaker_cooldown = 1h\n"                                             /* 28 */
    "bind_address = ::1\n"                                                /* 29 */
    "frobnicate = no\n"                                                   /* 30 */
    "some_plugin_key = value\n";                                          /* 31 */

static void
test_reconnect_probe(void **s)
{
	struct cfg c;

	(void)s;
	assert_int_equal(cfg_parse_string("t.ini",
	                                  "[defaults]\nreconnect_probe = no\n"
	                                  "[host \"a\"]\nurl = ssh://a\n"
	                                  "[host \"b\"]\nurl = ssh://b\nreconnect_probe = yes\n",
	                                  &c),
	                 0);
	assert_int_equal(host_named(&c, "a")->pol.reconnect_probe, 0);
	assert_int_equal(host_named(&c, "b")->pol.reconnect_probe, 1);
	cfg_free(&c);
	assert_int_not_equal(
	    cfg_parse_string("t.ini", "[host \"a\"]\nurl = ssh://a\nreconnect_probe = maybe\n", &c),
	    0);
	assert_int_equal(c.n_errors, 1);
	assert_non_null(strstr(c.errors[0].text, "yes or no"));
	cfg_free(&c);
}

static void
test_defaults_after_hosts_and_override(void **s)
{
	struct cfg c;

	if (cfg_parse_string("t.ini", full_config, &c) != 0)
		dump_errors(&c);
	assert_int_equal(c.n_errors, 0);
	assert_int_equal(c.n_hosts, 2);
	assert_string_equal(c.plugin_dir, "/usr/lib/x86_64-linux-gnu/rdhpf");
	assert_string_equal(c.log_format, "json");
	assert_string_equal(c.log_level, "debug");
	assert_string_equal(c.runtime_dir, "/run/rdhpf");

	/* [defaults] comes after both hosts and still applies to both. */
	const struct cfg_host *p = host_named(&c, "plain");
	assert_int_equal(p->line, 9);
	assert_string_equal(p->transport, "openssh");
	assert_int_equal(p->transport_line, 17);
	assert_int_equal(p->transport_from_defaults, 1);
	assert_string_equal(p->runtime, "podman");
	assert_int_equal(p->runtime_line, 18);
	assert_int_equal(p->runtime_from_defaults, 1);
	assert_string_equal(p->bind_address, "::1");
	assert_int_equal(p->pol.keepalive_interval_ms, 5000);
	assert_int_equal(p->pol.keepalive_count, 4);
	assert_int_equal(p->pol.health_interval_ms, 60000);
	assert_int_equal(p->pol.connect_timeout_ms, 3000);
	assert_int_equal(p->pol.backoff_initial_ms, 250);
	assert_int_equal(p->pol.backoff_max_ms, 60000);
	assert_true(p->pol.backoff_multiplier == 1.5);
	assert_true(p->pol.backoff_jitter == 0.25);
	assert_int_equal(p->pol.breaker_threshold, 20);
	assert_int_equal(p->pol.breaker_cooldown_ms, 3600000);
	assert_int_equal(p->n_opts, 2);
	const struct cfg_opt *o = opt_named(p, "frobnicate");
	assert_non_null(o);
	assert_string_equal(o->value, "no");
	assert_int_equal(o->line, 30);
	assert_int_equal(o->from_defaults, 1);

	/* The host's own values win over [defaults]. */
	const struct cfg_host *h = host_named(&c, "ci-linux");
	assert_string_equal(h->u.user, "ci");
	assert_int_equal(h->u.port, 2222);
	assert_string_equal(h->transport, "libssh2");
	assert_int_equal(h->transport_line, 5);
	assert_int_equal(h->transport_from_defaults, 0);
	assert_string_equal(h->runtime, "podman");
	assert_int_equal(h->pol.keepalive_interval_ms, 7000);
	assert_int_equal(h->pol.keepalive_count, 4);
	assert_int_equal(h->n_opts, 2);
	o = opt_named(h, "frobnicate");
	assert_string_equal(o->value, "yes");
	assert_int_equal(o->line, 7);
	assert_int_equal(o->from_defaults, 0);
	o = opt_named(h, "some_plugin_key");
	assert_string_equal(o->value, "value");
	assert_int_equal(o->line, 31);
	assert_int_equal(o->from_defaults, 1);
	cfg_free(&c);
}

static void
test_keys_before_any_section_are_defaults(void **s)
{
	struct cfg c;

	assert_int_equal(cfg_parse_string("t.ini",
	                                  "log_level = warn\n"
	                                  "keepalive_count = 9\n"
	                                  "[host \"a\"]\n"
	                                  "url = ssh://a\n",
	                                  &c),
	                 0);
	assert_string_equal(c.log_level, "warn");
	assert_int_equal(c.hosts[0].pol.keepalive_count, 9);
	cfg_free(&c);
}

static void
test_tilde_expansion_and_paths(void **s)
{
	struct cfg c;
	const char *old = getenv("HOME");
	char *saved = old ? strdup(old) : NULL;

	setenv("HOME", "/home/dev/", 1);
	assert_int_equal(cfg_parse_string("t.ini",
	                                  "[host \"a\"]\n"
	                                  "url = ssh://a\n"
	                                  "identity_file = ~/.ssh/id_ed25519\n"
	                                  "known_hosts = /etc/ssh/ssh_known_hosts\n",
	                                  &c),
	                 0);
	assert_string_equal(c.hosts[0].identity_file, "/home/dev/.ssh/id_ed25519");
	assert_string_equal(c.hosts[0].known_hosts, "/etc/ssh/ssh_known_hosts");
	cfg_free(&c);

	cfg_parse_string("t.ini",
	                 "[host \"a\"]\n"
	                 "url = ssh://a\n"
	                 "identity_file = ~bob/.ssh/id\n"
	                 "known_hosts = .ssh/known_hosts\n",
	                 &c);
	const char *want[] = {
	    "t.ini:3: [host \"a\"] identity_file: '~bob/.ssh/id': only ~/ is expanded (~user is "
	    "not)",
	    "t.ini:4: [host \"a\"] known_hosts: '.ssh/known_hosts' is not an absolute path "
	    "(start it with / or ~/)",
	    NULL};
	expect_errors(&c, want);
	cfg_free(&c);

	unsetenv("HOME");
	cfg_parse_string("t.ini", "[host \"a\"]\nurl = ssh://a\nidentity_file = ~/.ssh/id\n", &c);
	expect_one_error(&c,
	                 "t.ini:3: [host \"a\"] identity_file: '~/.ssh/id': ~ needs $HOME to be "
	                 "an absolute path");
	cfg_free(&c);
	if (saved) {
		setenv("HOME", saved, 1);
		free(saved);
	}
}

/* ---- errors --------------------------------------------------------------- */

static void
test_three_errors_exactly(void **s)
{
	struct cfg c;
	const char *text = "[defaults]\n"                       /* 1 */
	                   "keepalive_count = 2x\n"             /* 2 */
	                   "\n"                                 /* 3 */
	                   "[host \"ci\"]\n"                    /* 4 */
	                   "url = ssh://ci@build.example.net\n" /* 5 */
	                   "health_interval = 15s\n"            /* 6 */
	                   "keepalive_interval = 5 sec\n"       /* 7 */
	                   "backoff_jitter = 0.1\n"             /* 8 */
	                   "\n"                                 /* 9 */
	                   "[host \"web\"]\n"                   /* 10 */
	                   "url = ssh://web:70000\n";           /* 11 */
	const char *want[] = {
	    "config.ini:2: [defaults] keepalive_count: bad number '2x' (a whole number 1..100)",
	    "config.ini:7: [host \"ci\"] keepalive_interval: bad duration '5 sec' "
	    "(use 500ms, 15s, 2m, 1h)",
	    "config.ini:11: [host \"web\"] url: bad url 'ssh://web:70000': bad port '70000' "
	    "(1-65535)",
	    NULL};

	assert_int_equal(cfg_parse_string("config.ini", text, &c), -1);
	expect_errors(&c, want);
	assert_int_equal(c.errors[0].line, 2);
	assert_int_equal(c.errors[1].line, 7);
	assert_int_equal(c.errors[2].line, 11);
	/* Both hosts are still there, with what could be read. */
	assert_int_equal(c.n_hosts, 2);
	assert_int_equal(host_named(&c, "ci")->pol.keepalive_count, 3);
	assert_true(host_named(&c, "ci")->pol.backoff_jitter == 0.1);
	assert_null(host_named(&c, "web")->url);
	cfg_free(&c);
}

static void
test_duplicate_host_and_key(void **s)
{
	struct cfg c;
	const char *text = "[host \"ci\"]\n"    /* 1 */
	                   "url = ssh://a\n"    /* 2 */
	                   "url = ssh://b\n"    /* 3 */
	                   "opt = 1\n"          /* 4 */
	                   "opt = 2\n"          /* 5 */
	                   "[defaults]\n"       /* 6 */
	                   "log_level = info\n" /* 7 */
	                   "[defaults]\n"       /* 8 */
	                   "log_level = info\n" /* 9 */
	                   "[host \"ci\"]\n"    /* 10 */
	                   "url = ssh://c\n"    /* 11: ignored with its section */
	                   "bogus = =\n";       /* 12: ignored with its section */
	const char *want[] = {"t.ini:3: [host \"ci\"] url: duplicate key (first set at line 2)",
	                      "t.ini:5: [host \"ci\"] opt: duplicate key (first set at line 4)",
	                      "t.ini:9: [defaults] log_level: duplicate key (first set at line 7)",
	                      "t.ini:10: [host \"ci\"]: duplicate host (first defined at line 1)",
	                      NULL};

	cfg_parse_string("t.ini", text, &c);
	expect_errors(&c, want);
	assert_int_equal(c.n_hosts, 1);
	assert_string_equal(c.hosts[0].url, "ssh://a");
	cfg_free(&c);
}

static void
test_sections_and_placement(void **s)
{
	struct cfg c;
	const char *text = "url = ssh://top\n"           /* 1 */
	                   "[hosts \"x\"]\n"             /* 2 */
	                   "url = ssh://x\n"             /* 3: ignored */
	                   "[host x]\n"                  /* 4 */
	                   "[host \"bad name\"]\n"       /* 5 */
	                   "[host \"-x\"]\n"             /* 6 */
	                   "[host \"..\"]\n"             /* 7 */
	                   "[defaults] trailing\n"       /* 8 */
	                   "[defaults\n"                 /* 9 */
	                   "[ host  \"ok\" ]   ; fine\n" /* 10 */
	                   "log_level = debug\n"         /* 11 */
	                   "plugin_dir = /x\n"           /* 12 */
	                   "[defaults]\n"                /* 13 */
	                   "url = ssh://d\n"             /* 14 */
	                   "log_format = xml\n"          /* 15 */
	                   "log_level = loud\n"          /* 16 */
	                   "[host \"nourl\"]\n"          /* 17 */
	                   "transport = openssh\n";      /* 18 */
	const char *want[] = {
	    "t.ini:1: [defaults] url: not allowed in [defaults] (each [host \"NAME\"] has its own)",
	    "t.ini:2: unknown section [hosts \"x\"] (expected [defaults] or [host \"NAME\"])",
	    "t.ini:4: bad section [host x] (expected [host \"NAME\"])",
	    "t.ini:5: [host \"bad name\"]: bad host name (1-64 letters, digits, . _ -; "
	    "not starting with . or -)",
	    "t.ini:6: [host \"-x\"]: bad host name (1-64 letters, digits, . _ -; "
	    "not starting with . or -)",
	    "t.ini:7: [host \"..\"]: bad host name (1-64 letters, digits, . _ -; "
	    "not starting with . or -)",
	    "t.ini:8: unexpected text after ']' in section header",
	    "t.ini:9: missing ']' in section header",
	    "t.ini:10: [host \"ok\"] url: missing (every host needs url = "
	    "ssh://[user@]host[:port])",
	    "t.ini:11: [host \"ok\"] log_level: global setting, allowed only in [defaults]",
	    "t.ini:12: [host \"ok\"] plugin_dir: global setting, allowed only in [defaults]",
	    "t.ini:14: [defaults] url: not allowed in [defaults] (each [host \"NAME\"] has its "
	    "own)",
	    "t.ini:15: [defaults] log_format: bad value 'xml' (logfmt or json)",
	    "t.ini:16: [defaults] log_level: bad value 'loud' (error, warn, info, debug or trace)",
	    "t.ini:17: [host \"nourl\"] url: missing (every host needs url = "
	    "ssh://[user@]host[:port])",
	    NULL};

	cfg_parse_string("t.ini", text, &c);
	expect_errors(&c, want);
	assert_int_equal(c.n_hosts, 2);
	cfg_free(&c);
}

static void
test_syntax_errors_all_reported(void **s)
{
	struct cfg c;
	char long_line[300];
	char *text;
	size_t n;

	memset(long_line, 'x', sizeof long_line);
	memcpy(long_line, "opt = ", 6);
	long_line[sizeof long_line - 1] = '\0';
	n = strlen(long_line) + 512;
	text = malloc(n);
	snprintf(text, n,
	         "\xEF\xBB\xBF[host \"a\"]\r\n"      /* 1: BOM and CRLF */
	         "url = ssh://a\r\n"                 /* 2 */
	         "this line has no equals sign\n"    /* 3 */
	         "  indented = is an ordinary key\n" /* 4: not a continuation */
	         "    continued\n"                   /* 5: not joined to line 4 */
	         "name: value\n"                     /* 6: ':' is no separator here */
	         "= value\n"                         /* 7 */
	         "%s\n"                              /* 8 */
	         "bad key = 1\n"                     /* 9 */
	         "last = ok",                        /* 10: no final newline */
	         long_line);
	const char *want[] = {
	    "t.ini:3: expected 'key = value', a [section] or a comment",
	    "t.ini:5: expected 'key = value', a [section] or a comment",
	    "t.ini:6: expected 'key = value', a [section] or a comment",
	    "t.ini:7: missing key before '='",
	    "t.ini:8: line too long (at most 199 characters)",
	    "t.ini:9: [host \"a\"]: bad key name 'bad key' (letters, digits, . _ -)",
	    NULL};

	cfg_parse_string("t.ini", text, &c);
	expect_errors(&c, want);
	const struct cfg_host *h = &c.hosts[0];
	assert_string_equal(h->url, "ssh://a");
	assert_string_equal(opt_named(h, "indented")->value, "is an ordinary key");
	assert_int_equal(opt_named(h, "indented")->line, 4);
	assert_string_equal(opt_named(h, "last")->value, "ok");
	assert_int_equal(opt_named(h, "last")->line, 10);
	assert_int_equal(h->n_opts, 2);
	cfg_free(&c);
	free(text);
}

static void
test_numbers_strict(void **s)
{
	struct cfg c;
	const char *text = "[host \"a\"]\n"              /* 1 */
	                   "url = ssh://a\n"             /* 2 */
	                   "keepalive_count = 0\n"       /* 3 */
	                   "breaker_threshold = 1001\n"  /* 4 */
	                   "backoff_multiplier = 2x\n"   /* 5 */
	                   "backoff_jitter = 1.5\n"      /* 6 */
	                   "connect_timeout = 0\n"       /* 7 */
	                   "bind_address = [::1]\n"      /* 8 */
	                   "transport = ../evil\n"       /* 9 */
	                   "identity_file =\n"           /* 10 */
	                   "port_offset = 70000\n"       /* 11 */
	                   "[host \"b\"]\n"              /* 12 */
	                   "url = ssh://b\n"             /* 13 */
	                   "keepalive_count = -1\n"      /* 14 */
	                   "backoff_multiplier = 0.5\n"  /* 15 */
	                   "backoff_jitter = .5\n"       /* 16 */
	                   "backoff_multiplier = inf\n"; /* 17 */
	const char *want[] = {
	    "t.ini:3: [host \"a\"] keepalive_count: 0 is out of range (1..100)",
	    "t.ini:4: [host \"a\"] breaker_threshold: 1001 is out of range (1..1000)",
	    "t.ini:5: [host \"a\"] backoff_multiplier: bad number '2x' (1..10, e.g. 2)",
	    "t.ini:6: [host \"a\"] backoff_jitter: 1.5 is out of range (0..1)",
	    "t.ini:7: [host \"a\"] connect_timeout: must be greater than 0",
	    "t.ini:8: [host \"a\"] bind_address: bad address '[::1]' (an IPv4 or IPv6 address "
	    "without [ ], or localhost)",
	    "t.ini:9: [host \"a\"] transport: bad name '../evil' (lowercase letters, digits and -)",
	    "t.ini:10: [host \"a\"] identity_file: missing value",
	    "t.ini:11: [host \"a\"] port_offset: bad port offset '70000' (a whole number "
	    "-65535..65535)",
	    "t.ini:14: [host \"b\"] keepalive_count: bad number '-1' (a whole number 1..100)",
	    "t.ini:15: [host \"b\"] backoff_multiplier: 0.5 is out of range (1..10)",
	    "t.ini:16: [host \"b\"] backoff_jitter: bad number '.5' (0..1, e.g. 0.2)",
	    "t.ini:17: [host \"b\"] backoff_multiplier: duplicate key (first set at line 15)",
	    NULL};

	cfg_parse_string("t.ini", text, &c);
	expect_errors(&c, want);
	cfg_free(&c);

	/* The good forms. */
	assert_int_equal(cfg_parse_string("t.ini",
	                                  "[host \"a\"]\n"
	                                  "url = ssh://a\n"
	                                  "keepalive_count = 100\n"
	                                  "breaker_threshold = 1\n"
	                                  "backoff_multiplier = 10\n"
	                                  "backoff_jitter = 0\n"
	                                  "bind_address = localhost\n"
	                                  "port_offset = -1000\n",
	                                  &c),
	                 0);
	assert_int_equal(c.hosts[0].pol.keepalive_count, 100);
	assert_int_equal(c.hosts[0].pol.breaker_threshold, 1);
	assert_true(c.hosts[0].pol.backoff_multiplier == 10.0);
	assert_true(c.hosts[0].pol.backoff_jitter == 0.0);
	assert_string_equal(c.hosts[0].bind_address, "localhost");
	assert_int_equal(c.hosts[0].port_offset, -1000);
	cfg_free(&c);
}

static void
test_backoff_max_below_initial(void **s)
{
	struct cfg c;
	const char *text = "[defaults]\n"           /* 1 */
	                   "backoff_initial = 1m\n" /* 2: > built-in max 30s */
	                   "[host \"a\"]\n"         /* 3 */
	                   "url = ssh://a\n"        /* 4 */
	                   "[host \"b\"]\n"         /* 5 */
	                   "url = ssh://b\n"        /* 6 */
	                   "backoff_max = 2m\n"     /* 7: fine for b */
	                   "[host \"c\"]\n"         /* 8 */
	                   "url = ssh://c\n"        /* 9 */
	                   "backoff_max = 10s\n";   /* 10 */
	const char *want[] = {
	    "t.ini:2: [defaults] backoff_initial: 1m is greater than backoff_max (30s)",
	    "t.ini:10: [host \"c\"] backoff_max: 10s is less than backoff_initial (1m)", NULL};

	cfg_parse_string("t.ini", text, &c);
	expect_errors(&c, want);
	assert_int_equal(host_named(&c, "b")->pol.backoff_max_ms, 120000);
	cfg_free(&c);
}

static void
test_url_error_hides_password(void **s)
{
	struct cfg c;

	cfg_parse_string("t.ini", "[host \"a\"]\nurl = ssh://me:hunter2@a\n", &c);
	expect_one_error(&c, "t.ini:2: [host \"a\"] url: bad url 'ssh://me:***@a': "
	                     "password in url is not supported");
	cfg_free(&c);
}

/* ---- port_map ------------------------------------------------------------ */

static void
test_port_map(void **s)
{
	struct cfg c;

	assert_int_equal(cfg_parse_string("t.ini",
	                                  "[defaults]\n"
	                                  "port_map = 1:2\n"
	                                  "port_offset = 10000\n"
	                                  "[host \"a\"]\n"
	                                  "url = ssh://a\n"
	                                  "port_map = 8080:18080, 5432:15432 ,,  9000:9001\n"
	                                  "[host \"b\"]\n"
	                                  "url = ssh://b\n",
	                                  &c),
	                 0);
	const struct cfg_host *a = host_named(&c, "a");
	assert_int_equal(a->n_port_map, 3);
	assert_int_equal(a->port_map[0].remote, 8080);
	assert_int_equal(a->port_map[0].local, 18080);
	assert_int_equal(a->port_map[1].remote, 5432);
	assert_int_equal(a->port_map[1].local, 15432);
	assert_int_equal(a->port_map[2].remote, 9000);
	assert_int_equal(a->port_map[2].local, 9001);
	assert_int_equal(a->port_offset, 10000);
	const struct cfg_host *b = host_named(&c, "b");
	assert_int_equal(b->n_port_map, 1);
	assert_int_equal(b->port_map[0].remote, 1);
	assert_int_equal(b->port_map[0].local, 2);
	cfg_free(&c);

	cfg_parse_string("t.ini",
	                 "[host \"a\"]\n"                                  /* 1 */
	                 "url = ssh://a\n"                                 /* 2 */
	                 "port_map = 80:8080 80:8081 81:8080 x:1 0:5 90\n" /* 3 */
	                 "[host \"b\"]\n"                                  /* 4 */
	                 "url = ssh://b\n"                                 /* 5 */
	                 "port_map = , ,\n",                               /* 6 */
	                 &c);
	const char *want[] = {
	    "t.ini:3: [host \"a\"] port_map: remote port 80 is mapped twice",
	    "t.ini:3: [host \"a\"] port_map: local port 8080 is used twice",
	    "t.ini:3: [host \"a\"] port_map: bad port pair 'x:1' (use REMOTE:LOCAL, ports 1-65535, "
	    "e.g. 8080:18080)",
	    "t.ini:3: [host \"a\"] port_map: bad port pair '0:5' (use REMOTE:LOCAL, ports 1-65535, "
	    "e.g. 8080:18080)",
	    "t.ini:3: [host \"a\"] port_map: bad port pair '90' (use REMOTE:LOCAL, e.g. "
	    "8080:18080)",
	    "t.ini:6: [host \"b\"] port_map: no port pairs (use REMOTE:LOCAL, e.g. 8080:18080)",
	    NULL};
	expect_errors(&c, want);
	assert_int_equal(host_named(&c, "a")->n_port_map, 0);
	cfg_free(&c);
}

/* ---- plugins --------------------------------------------------------------- */

static const struct rdhpf_option_desc *const openssh_opts[] = {
    RDHPF_OPTION("ssh_binary", "path to ssh"), RDHPF_OPTION("frobnicate", "frob"), NULL};
static const struct rdhpf_option_desc *const libssh2_opts[] = {RDHPF_OPTION("window_size", "bytes"),
                                                               NULL};
static const struct rdhpf_option_desc *const docker_opts[] = {
    RDHPF_OPTION("docker_socket", "path"), RDHPF_OPTION("api", "engine API version"), NULL};
static const struct rdhpf_option_desc *const no_opts[] = {NULL};

static const struct rdhpf_option_desc *const *
fake_lookup(void *arg, int kind, const char *name)
{
	int *calls = arg;

	(*calls)++;
	if (kind == RDHPF_KIND_TRANSPORT) {
		if (strcmp(name, "openssh") == 0)
			return openssh_opts;
		if (strcmp(name, "libssh2") == 0)
			return libssh2_opts;
	} else if (kind == RDHPF_KIND_RUNTIME) {
		if (strcmp(name, "docker") == 0)
			return docker_opts;
		if (strcmp(name, "podman") == 0)
			return no_opts;
	}
	return NULL;
}

static void
test_check_plugins(void **s)
{
	struct cfg c;
	int calls = 0;
	const char *text = "[defaults]\n"                  /* 1 */
	                   "window_size = 65536\n"         /* 2: only libssh2 declares it */
	                   "docker_socket = /run/d.sock\n" /* 3: docker declares it */
	                   "[host \"a\"]\n"                /* 4: openssh + docker */
	                   "url = ssh://a\n"               /* 5 */
	                   "frobnicate = yes\n"            /* 6: declared by openssh */
	                   "colour = blue\n"               /* 7: nobody */
	                   "[host \"b\"]\n"                /* 8 */
	                   "url = ssh://b\n"               /* 9 */
	                   "transport = libssh2\n"         /* 10 */
	                   "runtime = podman\n"            /* 11 */
	                   "[host \"c\"]\n"                /* 12: default transport... */
	                   "url = ssh://c\n"               /* 13 */
	                   "runtime = crio\n"              /* 14: ...unknown runtime */
	                   "colour = red\n"                /* 15: not reported: plugin missing */
	                   "[host \"d\"]\n"                /* 16 */
	                   "url = ssh://d\n"               /* 17 */
	                   "transport = foo\n"             /* 18 */
	                   "[host \"e\"]\n"                /* 19: openssh + docker again */
	                   "url = ssh://e\n";              /* 20 */
	const char *want[] = {
	    "t.ini:2: [defaults] window_size: unknown key (not a core key, and neither transport "
	    "'openssh' nor runtime 'docker' of host \"a\" declares it)",
	    "t.ini:3: [defaults] docker_socket: unknown key (not a core key, and neither transport "
	    "'libssh2' nor runtime 'podman' of host \"b\" declares it)",
	    "t.ini:7: [host \"a\"] colour: unknown key (not a core key, and neither transport "
	    "'openssh' nor runtime 'docker' declares it)",
	    "t.ini:14: [host \"c\"] runtime: unknown runtime 'crio'",
	    "t.ini:18: [host \"d\"] transport: unknown transport 'foo'",
	    NULL};

	assert_int_equal(cfg_parse_string("t.ini", text, &c), 0);
	assert_int_equal(cfg_check_plugins(&c, fake_lookup, &calls), 5);
	assert_true(calls > 0);
	expect_errors(&c, want);
	cfg_free(&c);
}

static void
test_check_plugins_default_choices(void **s)
{
	struct cfg c;
	int calls = 0;

	/* A default transport that does not exist: its header line. */
	assert_int_equal(
	    cfg_parse_string("t.ini", "\n[host \"a\"]\nurl = ssh://a\nssh_binary = /x\n", &c), 0);
	assert_int_equal(cfg_check_plugins(&c, fake_lookup, &calls), 0);
	cfg_free(&c);

	assert_int_equal(
	    cfg_parse_string("t.ini", "\n[host \"a\"]\nurl = ssh://a\nruntime = podman\n", &c), 0);
	free(c.hosts[0].transport);
	c.hosts[0].transport = strdup("missing");
	assert_int_equal(cfg_check_plugins(&c, fake_lookup, &calls), 1);
	expect_one_error(&c, "t.ini:2: [host \"a\"] transport: unknown transport 'missing'");
	cfg_free(&c);

	/* An unknown transport set in [defaults] is reported once. */
	assert_int_equal(cfg_parse_string("t.ini",
	                                  "[defaults]\n"
	                                  "transport = nope\n"
	                                  "[host \"a\"]\nurl = ssh://a\n"
	                                  "[host \"b\"]\nurl = ssh://b\n",
	                                  &c),
	                 0);
	assert_int_equal(cfg_check_plugins(&c, fake_lookup, &calls), 1);
	expect_one_error(&c, "t.ini:2: [defaults] transport: unknown transport 'nope'");
	cfg_free(&c);
}

/* The docker runtime's validator, as a plugin's would be: api must look
 * like 1.NN; the transports have none. */
static int
fake_validate(void *arg, int kind, const char *name, const char *key, const char *value, char *err,
              size_t errlen)
{
	int *calls = arg;

	(*calls)++;
	if (kind == RDHPF_KIND_RUNTIME && strcmp(name, "docker") == 0 && strcmp(key, "api") == 0 &&
	    strncmp(value, "1.", 2) != 0) {
		snprintf(err, errlen, "'%s' is not an API version like 1.43", value);
		return -1;
	}
	return 0;
}

static void
test_check_plugins_validate(void **s)
{
	struct cfg c;
	int calls = 0;
	const char *text = "[defaults]\n"        /* 1 */
	                   "api = nope\n"        /* 2: docker refuses it, for hosts a and c */
	                   "[host \"a\"]\n"      /* 3 */
	                   "url = ssh://a\n"     /* 4 */
	                   "[host \"b\"]\n"      /* 5 */
	                   "url = ssh://b\n"     /* 6 */
	                   "api = no-such-api\n" /* 7: refused at its own line */
	                   "[host \"c\"]\n"      /* 8 */
	                   "url = ssh://c\n"     /* 9 */
	                   "[host \"d\"]\n"      /* 10 */
	                   "url = ssh://d\n"     /* 11 */
	                   "api = 1.43\n";       /* 12: fine */
	const char *want[] = {
	    "t.ini:2: [defaults] api: 'nope' is not an API version like 1.43 (runtime 'docker' of "
	    "host \"a\")",
	    "t.ini:7: [host \"b\"] api: 'no-such-api' is not an API version like 1.43", NULL};

	assert_int_equal(cfg_parse_string("t.ini", text, &c), 0);
	assert_int_equal(cfg_check_plugins_v(&c, fake_lookup, fake_validate, &calls), 2);
	expect_errors(&c, want);
	cfg_free(&c);

	/* Without a validator only declarations are checked. */
	assert_int_equal(cfg_parse_string("t.ini", text, &c), 0);
	assert_int_equal(cfg_check_plugins(&c, fake_lookup, &calls), 0);
	cfg_free(&c);
}

static void
test_poll_interval(void **s)
{
	struct cfg c;

	assert_int_equal(cfg_parse_string("t.ini", "[host \"a\"]\nurl = ssh://a\n", &c), 0);
	assert_int_equal(host_named(&c, "a")->pol.poll_interval_ms, 2000);
	cfg_free(&c);

	assert_int_equal(cfg_parse_string("t.ini",
	                                  "[defaults]\npoll_interval = 500ms\n"
	                                  "[host \"a\"]\nurl = ssh://a\n"
	                                  "[host \"b\"]\nurl = ssh://b\npoll_interval = 10s\n",
	                                  &c),
	                 0);
	assert_int_equal(host_named(&c, "a")->pol.poll_interval_ms, 500);
	assert_int_equal(host_named(&c, "b")->pol.poll_interval_ms, 10000);
	cfg_free(&c);

	assert_int_not_equal(
	    cfg_parse_string("t.ini", "[host \"a\"]\nurl = ssh://a\npoll_interval = 10ms\n", &c),
	    0);
	expect_one_error(&c,
	                 "t.ini:3: [host \"a\"] poll_interval: '10ms' is out of range (100ms..1h)");
	cfg_free(&c);
}

/* ---- zero-config, files, printing ------------------------------------------- */

static void
test_from_url(void **s)
{
	struct cfg c;
	struct rdhpf_policy p;

	assert_int_equal(cfg_from_url("ssh://ci@build.example.net:2222", "--host", &c), 0);
	assert_int_equal(c.n_errors, 0);
	assert_int_equal(c.n_hosts, 1);
	const struct cfg_host *h = &c.hosts[0];
	assert_string_equal(h->name, "build.example.net");
	assert_string_equal(h->url, "ssh://ci@build.example.net:2222");
	assert_string_equal(h->u.user, "ci");
	assert_int_equal(h->u.port, 2222);
	assert_string_equal(h->transport, "openssh");
	assert_string_equal(h->runtime, "docker");
	assert_string_equal(h->bind_address, "localhost");
	policy_defaults(&p);
	expect_policy(&h->pol, &p);
	cfg_free(&c);

	assert_int_equal(cfg_from_url("x", "DOCKER_HOST", &c), -1);
	assert_int_equal(c.n_hosts, 0);
	expect_one_error(&c, "DOCKER_HOST: bad url 'x': missing ssh:// scheme");
	cfg_free(&c);

	assert_int_equal(cfg_from_url("unix:///var/run/docker.sock", "DOCKER_HOST", &c), -1);
	expect_one_error(&c, "DOCKER_HOST: bad url 'unix:///var/run/docker.sock': unsupported "
	                     "scheme 'unix' (only ssh:// is supported)");
	cfg_free(&c);
}

static void
test_parse_file(void **s)
{
	char path[] = "/tmp/rdhpf-test-config-XXXXXX";
	struct cfg c;
	int fd = mkstemp(path);
	const char text[] = "[host \"a\"]\nurl = ssh://a\nkeepalive_count = 7\nbroken line\n";

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
	close(fd);
	assert_int_equal(cfg_parse_file(path, &c), -1);
	assert_int_equal(c.n_hosts, 1);
	assert_int_equal(c.hosts[0].pol.keepalive_count, 7);
	assert_int_equal(c.n_errors, 1);
	char want[128];
	snprintf(want, sizeof want, "%s:4: expected 'key = value', a [section] or a comment", path);
	assert_string_equal(c.errors[0].text, want);
	cfg_free(&c);
	unlink(path);

	assert_int_equal(cfg_parse_file("/nonexistent/rdhpf.ini", &c), -1);
	expect_one_error(&c, "/nonexistent/rdhpf.ini: cannot read: No such file or directory");
	cfg_free(&c);

	assert_int_equal(cfg_parse_file("/", &c), -1);
	expect_one_error(&c, "/: cannot read: Is a directory");
	cfg_free(&c);
}

/* Paths handed to ssh as ssh_config values are refused at FILE:LINE when
 * they could not be quoted, not when a transport first connects. */
static void
test_ssh_paths(void **s)
{
	static const char *const bad[] = {"/tmp/a\"b", "/tmp/a\\b", "/tmp/${HOME}", "/tmp/a\tb"};
	struct cfg c;
	char text[256], want[512];
	(void)s;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		for (int key = 0; key < 2; key++) {
			const char *k = key ? "identity_file" : "known_hosts";
			snprintf(text, sizeof text, "[host \"a\"]\nurl = ssh://a\n%s = %s\n", k,
			         bad[i]);
			assert_int_equal(cfg_parse_string("t.ini", text, &c), -1);
			assert_int_equal(c.n_errors, 1);
			snprintf(want, sizeof want, "t.ini:3: [host \"a\"] %s: '", k);
			assert_memory_equal(c.errors[0].text, want, strlen(want));
			assert_non_null(strstr(c.errors[0].text, "cannot be passed to ssh safely"));
			cfg_free(&c);
		}
	}
	assert_int_equal(
	    cfg_parse_string("t.ini", "[host \"a\"]\nurl = ssh://a\nknown_hosts = /tmp/k h%%'x\n",
	                     &c),
	    0);
	assert_string_equal(c.hosts[0].known_hosts, "/tmp/k h%%'x");
	cfg_free(&c);
}

/* A config someone else may write or owns is refused, naming the path and
 * the mode: its ssh_binary would run as the user. */
static void
test_parse_file_trust(void **s)
{
	char path[] = "/tmp/rdhpf-test-config-XXXXXX";
	struct cfg c;
	int fd = mkstemp(path);
	const char text[] = "[host \"a\"]\nurl = ssh://a\nssh_binary = /tmp/x\n";
	char want[256];
	(void)s;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
	close(fd);

	assert_int_equal(chmod(path, 0666), 0);
	assert_int_equal(cfg_parse_file(path, &c), -1);
	assert_int_equal(c.n_hosts, 0);
	snprintf(want, sizeof want,
	         "%s: bad permissions: mode 0666 lets everyone write it; refusing it (chmod go-w)",
	         path);
	expect_one_error(&c, want);
	cfg_free(&c);

	assert_int_equal(chmod(path, 0620), 0);
	assert_int_equal(cfg_parse_file(path, &c), -1);
	snprintf(want, sizeof want,
	         "%s: bad permissions: mode 0620 lets its group write it; refusing it (chmod go-w)",
	         path);
	expect_one_error(&c, want);
	cfg_free(&c);

	/* Readable by others is fine (as for ssh): only writing matters. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(cfg_parse_file(path, &c), 0);
	cfg_free(&c);

	/* A foreign owner: only root can make one here. */
	if (geteuid() == 0) {
		assert_int_equal(chown(path, 65534, 65534), 0);
		assert_int_equal(cfg_parse_file(path, &c), -1);
		snprintf(
		    want, sizeof want,
		    "%s: bad owner: owned by uid 65534, neither you (uid 0) nor root; refusing a "
		    "config someone else controls",
		    path);
		expect_one_error(&c, want);
		cfg_free(&c);
	}
	unlink(path);
}

static void
test_print(void **s)
{
	struct cfg c;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	assert_int_equal(cfg_parse_string("t.ini", full_config, &c), 0);
	f = open_memstream(&buf, &len);
	assert_non_null(f);
	cfg_print(&c, f);
	fclose(f);
	const char *want = "[defaults]\n"
	                   "  plugin_dir         = /usr/lib/x86_64-linux-gnu/rdhpf\n"
	                   "  log_format         = json\n"
	                   "  log_level          = debug\n"
	                   "  runtime_dir        = /run/rdhpf\n"
	                   "\n"
	                   "[host \"ci-linux\"]\n"
	                   "  url                = ssh://ci@build.example.net:2222\n"
	                   "  transport          = libssh2\n"
	                   "  runtime            = podman\n"
	                   "  bind_address       = ::1\n"
	                   "  health_interval    = 1m\n"
	                   "  poll_interval      = 2s\n"
	                   "  keepalive_interval = 7s\n"
	                   "  keepalive_count    = 4\n"
	                   "  connect_timeout    = 3s\n"
	                   "  backoff_initial    = 250ms\n"
	                   "  backoff_max        = 1m\n"
	                   "  backoff_multiplier = 1.5\n"
	                   "  backoff_jitter     = 0.25\n"
	                   "  breaker_threshold  = 20\n"
	                   "  breaker_cooldown   = 1h\n"
	                   "  reconnect_probe    = yes\n"
	                   "  port_offset        = 0\n"
	                   "  frobnicate         = yes   (plugin)\n"
	                   "  some_plugin_key    = value   (plugin, from [defaults])\n"
	                   "\n"
	                   "[host \"plain\"]\n"
	                   "  url                = ssh://plain.example.net\n"
	                   "  transport          = openssh\n"
	                   "  runtime            = podman\n"
	                   "  bind_address       = ::1\n"
	                   "  health_interval    = 1m\n"
	                   "  poll_interval      = 2s\n"
	                   "  keepalive_interval = 5s\n"
	                   "  keepalive_count    = 4\n"
	                   "  connect_timeout    = 3s\n"
	                   "  backoff_initial    = 250ms\n"
	                   "  backoff_max        = 1m\n"
	                   "  backoff_multiplier = 1.5\n"
	                   "  backoff_jitter     = 0.25\n"
	                   "  breaker_threshold  = 20\n"
	                   "  breaker_cooldown   = 1h\n"
	                   "  reconnect_probe    = yes\n"
	                   "  port_offset        = 0\n"
	                   "  frobnicate         = no   (plugin, from [defaults])\n"
	                   "  some_plugin_key    = value   (plugin, from [defaults])\n";
	assert_string_equal(buf, want);
	free(buf);
	cfg_free(&c);

	assert_int_equal(cfg_parse_string("t.ini",
	                                  "[host \"a\"]\nurl = ssh://a\n"
	                                  "identity_file = /k\nknown_hosts = /kh\n"
	                                  "port_map = 1:2 3:4\n",
	                                  &c),
	                 0);
	buf = NULL;
	f = open_memstream(&buf, &len);
	cfg_print(&c, f);
	fclose(f);
	assert_non_null(strstr(buf, "\n  identity_file      = /k\n"));
	assert_non_null(strstr(buf, "\n  known_hosts        = /kh\n"));
	assert_non_null(strstr(buf, "\n  port_map           = 1:2 3:4\n"));
	assert_null(strstr(buf, "[defaults]"));
	free(buf);
	cfg_free(&c);
}

static void
test_add_error_format(void **s)
{
	struct cfg c;

	memset(&c, 0, sizeof c);
	c.path = strdup("f.ini");
	cfg_add_error(&c, 3, "host \"x\"", "k", "bad %s", "thing");
	cfg_add_error(&c, 4, "defaults", NULL, "whole section");
	cfg_add_error(&c, 0, NULL, NULL, "file: %d", 5);
	const char *want[] = {"f.ini:3: [host \"x\"] k: bad thing",
	                      "f.ini:4: [defaults]: whole section", "f.ini: file: 5", NULL};
	expect_errors(&c, want);
	cfg_free(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_url_plain_user_port),
	    cmocka_unit_test(test_url_ipv6),
	    cmocka_unit_test(test_url_rejects),
	    cmocka_unit_test(test_duration_good),
	    cmocka_unit_test(test_duration_bad),
	    cmocka_unit_test(test_format_duration_round_trip),
	    cmocka_unit_test(test_builtin_defaults),
	    cmocka_unit_test(test_defaults_after_hosts_and_override),
	    cmocka_unit_test(test_reconnect_probe),
	    cmocka_unit_test(test_keys_before_any_section_are_defaults),
	    cmocka_unit_test(test_tilde_expansion_and_paths),
	    cmocka_unit_test(test_three_errors_exactly),
	    cmocka_unit_test(test_duplicate_host_and_key),
	    cmocka_unit_test(test_sections_and_placement),
	    cmocka_unit_test(test_syntax_errors_all_reported),
	    cmocka_unit_test(test_numbers_strict),
	    cmocka_unit_test(test_backoff_max_below_initial),
	    cmocka_unit_test(test_url_error_hides_password),
	    cmocka_unit_test(test_port_map),
	    cmocka_unit_test(test_check_plugins),
	    cmocka_unit_test(test_check_plugins_validate),
	    cmocka_unit_test(test_poll_interval),
	    cmocka_unit_test(test_check_plugins_default_choices),
	    cmocka_unit_test(test_from_url),
	    cmocka_unit_test(test_parse_file),
	    cmocka_unit_test(test_parse_file_trust),
	    cmocka_unit_test(test_ssh_paths),
	    cmocka_unit_test(test_print),
	    cmocka_unit_test(test_add_error_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
