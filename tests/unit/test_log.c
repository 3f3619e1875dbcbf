#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "log.h"

#define TS "ts=2026-11-28T03:15:50.123Z "
#define WALL_MS INT64_C(1795835750123) /* 2026-11-28T03:15:50.123Z */
#define MIN_MS (60 * 1000)

static FILE *out;
static char *buf;
static size_t buf_len;
static size_t mark; /* what take() has returned so far */
static uint64_t mono;

static uint64_t
fake_mono(void)
{
	return mono;
}

static int64_t
fake_wall(void)
{
	return WALL_MS;
}

static int
setup(void **state)
{
	(void)state;
	out = open_memstream(&buf, &buf_len);
	assert_non_null(out);
	mark = 0;
	mono = 5000000;
	log_init(out, LOG_LOGFMT, RDHPF_LOG_INFO, fake_mono);
	log_set_wall_clock(fake_wall);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	log_init(NULL, LOG_LOGFMT, RDHPF_LOG_INFO, NULL); /* forget out before closing it */
	log_set_wall_clock(NULL);
	fclose(out);
	free(buf);
	buf = NULL;
	return 0;
}

/* Output written since the last take(). */
static const char *
take(void)
{
	const char *s;

	fflush(out);
	s = buf + mark;
	mark = buf_len;
	return s;
}

static size_t
count_char(const char *s, char c)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == c;
	return n;
}

/* ---- format ----------------------------------------------------------- */

static void
test_logfmt_exact(void **state)
{
	(void)state;
	log_kv(RDHPF_LOG_INFO, "ci", "openssh", "connected", "key", "value", NULL);
	assert_string_equal(take(),
	                    TS "level=info msg=\"connected\" host=ci plugin=openssh key=value\n");

	/* host and plugin are optional; NULL values are skipped */
	log_kv(RDHPF_LOG_ERROR, NULL, NULL, "boot", "a", NULL, "b", "2", NULL);
	assert_string_equal(take(), TS "level=error msg=\"boot\" b=2\n");

	log_emit(RDHPF_LOG_WARN, "h", NULL, "kv array",
	         (const struct kv_pair[]){{"x", "1"}, {"y", "2"}}, 2);
	assert_string_equal(take(), TS "level=warn msg=\"kv array\" host=h x=1 y=2\n");
}

static void
test_logfmt_quoting(void **state)
{
	(void)state;
	log_kv(RDHPF_LOG_INFO, "ci", NULL, "q", "empty", "", "space", "a b", "eq", "a=b", "quote",
	       "say \"hi\"", "bs", "c:\\dir", "utf8", "h\xc3\xa9llo", "url", "ssh://u@h:22/x",
	       NULL);
	assert_string_equal(take(), TS "level=info msg=\"q\" host=ci empty=\"\" space=\"a b\" "
	                               "eq=\"a=b\" quote=\"say \\\"hi\\\"\" bs=\"c:\\\\dir\" "
	                               "utf8=h\xc3\xa9llo url=ssh://u@h:22/x\n");
	/* the message is always quoted and escaped */
	log_kv(RDHPF_LOG_INFO, NULL, NULL, "a \"b\"\\", NULL);
	assert_string_equal(take(), TS "level=info msg=\"a \\\"b\\\"\\\\\"\n");
}

static void
test_logfmt_hostile_values_cannot_forge_lines(void **state)
{
	const char *forged = "a\nlevel=error msg=forged";
	const char *s;

	(void)state;
	log_kv(RDHPF_LOG_WARN, "ci", "runtime-docker", "stream ended", "err", forged, NULL);
	assert_string_equal(take(),
	                    TS "level=warn msg=\"stream ended\" host=ci "
	                       "plugin=runtime-docker err=\"a\\nlevel=error msg=forged\"\n");

	/* in every position, with every kind of line break or control */
	log_kv(RDHPF_LOG_WARN, "h\nlevel=error", "p\r\n", "m\nts=0 level=error msg=x", "v",
	       "x\r\ny\x1b[31m\x7f\x01\tz", "c1", "\xc2\x85nel", "ls", "\xe2\x80\xa8ls", "bad",
	       "\xff\xfe\xc3", NULL);
	s = take();
	assert_int_equal(count_char(s, '\n'), 1);
	assert_int_equal(count_char(s, '\r'), 0);
	assert_null(strchr(s, 0x1b));
	assert_null(strchr(s, 0x7f));
	assert_null(strstr(s, "\xc2\x85"));
	assert_null(strstr(s, "\xe2\x80\xa8"));
	assert_string_equal(
	    s, TS "level=warn msg=\"m\\nts=0 level=error msg=x\" host=\"h\\nlevel=error\" "
	          "plugin=\"p\\r\\n\" v=\"x\\r\\ny\\x1b[31m\\x7f\\x01\\tz\" "
	          "c1=\"\\xc2\\x85nel\" ls=\"\\xe2\\x80\\xa8ls\" "
	          "bad=\"\\xff\\xfe\\xc3\"\n");
}

static void
test_key_sanitized(void **state)
{
	(void)state;
	log_kv(RDHPF_LOG_INFO, NULL, NULL, "k", "bad key=x\n", "1", "level", "error", "msg", "m",
	       "", "e", NULL);
	assert_string_equal(take(),
	                    TS "level=info msg=\"k\" bad_key_x_=1 _level=error _msg=m _=e\n");
}

static void
test_timestamp_format(void **state)
{
	(void)state;
	log_set_wall_clock(NULL); /* the real clock: just the shape */
	log_kv(RDHPF_LOG_INFO, NULL, NULL, "now", NULL);
	const char *s = take();
	assert_int_equal(strlen(s), strlen(TS "level=info msg=\"now\"\n"));
	assert_memory_equal(s, "ts=", 3);
	assert_int_equal(s[7], '-');
	assert_int_equal(s[10], '-');
	assert_int_equal(s[13], 'T');
	assert_int_equal(s[22], '.');
	assert_int_equal(s[26], 'Z');
}

static json_t *
parse_line(const char *line, size_t len)
{
	json_error_t e;
	json_t *j = json_loadb(line, len, 0, &e);
	if (j == NULL)
		fail_msg("not JSON: %s: %.*s", e.text, (int)len, line);
	assert_true(json_is_object(j));
	return j;
}

static void
test_json_valid_and_round_trips(void **state)
{
	const char *hostile = "a\nlevel=error msg=forged \"q\" \\ \t\x01\x7f \xc2\x85 \xe2\x80\xa8 "
	                      "h\xc3\xa9 \xf0\x9f\x90\xb3";
	const char *s, *nl;
	json_t *j;

	(void)state;
	log_set_format(LOG_JSON);
	log_kv(RDHPF_LOG_INFO, "ci", "openssh", "connected", "key", "value", NULL);
	s = take();
	assert_string_equal(
	    s, "{\"ts\":\"2026-11-28T03:15:50.123Z\",\"level\":\"info\",\"msg\":\"connected\","
	       "\"host\":\"ci\",\"plugin\":\"openssh\",\"key\":\"value\"}\n");

	log_kv(RDHPF_LOG_ERROR, "h\"x", NULL, hostile, "err", hostile, "bad",
	       "\xff"
	       "ok\xc3",
	       NULL);
	s = take();
	nl = strchr(s, '\n');
	assert_non_null(nl);
	assert_int_equal(nl[1], '\0'); /* one line */
	j = parse_line(s, (size_t)(nl - s));
	assert_string_equal(json_string_value(json_object_get(j, "level")), "error");
	assert_string_equal(json_string_value(json_object_get(j, "host")), "h\"x");
	assert_string_equal(json_string_value(json_object_get(j, "msg")), hostile);
	assert_string_equal(json_string_value(json_object_get(j, "err")), hostile);
	/* not UTF-8: replaced, still valid JSON */
	assert_string_equal(json_string_value(json_object_get(j, "bad")), "\xef\xbf\xbd"
	                                                                  "ok\xef\xbf\xbd");
	assert_null(json_object_get(j, "plugin"));
	json_decref(j);
}

static void
test_redaction(void **state)
{
	const char *s;

	(void)state;
	log_kv(RDHPF_LOG_INFO, "ci", NULL, "secrets", "password", "hunter2", "SSH_Passphrase",
	       "hunter2", "client_secret", "hunter2", "api-token", "hunter2", "Private-Key",
	       "hunter2", "private_key_file", "hunter2", "Authorization", "Bearer hunter2", "user",
	       "bob", NULL);
	s = take();
	assert_null(strstr(s, "hunter2"));
	assert_string_equal(s,
	                    TS "level=info msg=\"secrets\" host=ci password=[redacted] "
	                       "SSH_Passphrase=[redacted] client_secret=[redacted] "
	                       "api-token=[redacted] Private-Key=[redacted] "
	                       "private_key_file=[redacted] Authorization=[redacted] user=bob\n");

	log_kv(RDHPF_LOG_INFO, NULL, NULL, "fetch https://bob:hunter2@example.com/x failed", "url",
	       "https://bob:hunter2@example.com:8443/p?q=1#f", "two",
	       "a http://u:p1@h1 and ssh://v:p2@h2/ x", "nopass", "ssh://bob@host:22", "at_in_path",
	       "http://host/a:b@c", "empty_pw", "http://u:@h", NULL);
	s = take();
	assert_null(strstr(s, "hunter2"));
	assert_string_equal(s, TS "level=info msg=\"fetch https://bob:***@example.com/x failed\" "
	                          "url=\"https://bob:***@example.com:8443/p?q=1#f\" "
	                          "two=\"a http://u:***@h1 and ssh://v:***@h2/ x\" "
	                          "nopass=ssh://bob@host:22 at_in_path=http://host/a:b@c "
	                          "empty_pw=http://u:@h\n");

	log_set_format(LOG_JSON);
	log_kv(RDHPF_LOG_WARN, NULL, NULL, "m", "token", "hunter2", "err", "x://a:hunter2@b", NULL);
	s = take();
	assert_null(strstr(s, "hunter2"));
	json_t *j = parse_line(s, strlen(s) - 1);
	assert_string_equal(json_string_value(json_object_get(j, "token")), "[redacted]");
	assert_string_equal(json_string_value(json_object_get(j, "err")), "x://a:***@b");
	json_decref(j);
}

static void
test_level_filtering(void **state)
{
	(void)state;
	log_kv(RDHPF_LOG_DEBUG, NULL, NULL, "debug", NULL);
	log_kv(RDHPF_LOG_TRACE, NULL, NULL, "trace", NULL);
	assert_string_equal(take(), "");
	log_kv(RDHPF_LOG_INFO, NULL, NULL, "info", NULL);
	assert_string_equal(take(), TS "level=info msg=\"info\"\n");

	log_set_level(RDHPF_LOG_WARN);
	log_kv(RDHPF_LOG_INFO, NULL, NULL, "info2", NULL);
	assert_string_equal(take(), "");
	log_kv(RDHPF_LOG_WARN, NULL, NULL, "warn", NULL);
	log_kv(RDHPF_LOG_ERROR, NULL, NULL, "error", NULL);
	assert_string_equal(take(),
	                    TS "level=warn msg=\"warn\"\n" TS "level=error msg=\"error\"\n");

	log_set_level(RDHPF_LOG_ERROR);
	log_kv(RDHPF_LOG_WARN, NULL, NULL, "warn2", NULL);
	assert_string_equal(take(), "");

	/* a dropped line is not a repeat: it prints as soon as it may */
	log_set_level(RDHPF_LOG_TRACE);
	log_kv(RDHPF_LOG_DEBUG, NULL, NULL, "debug", NULL);
	log_kv(RDHPF_LOG_TRACE, NULL, NULL, "trace", NULL);
	assert_string_equal(take(),
	                    TS "level=debug msg=\"debug\"\n" TS "level=trace msg=\"trace\"\n");
}

static void
test_level_names(void **state)
{
	(void)state;
	assert_int_equal(log_level_parse("error"), RDHPF_LOG_ERROR);
	assert_int_equal(log_level_parse("WARN"), RDHPF_LOG_WARN);
	assert_int_equal(log_level_parse("warning"), RDHPF_LOG_WARN);
	assert_int_equal(log_level_parse("info"), RDHPF_LOG_INFO);
	assert_int_equal(log_level_parse("Debug"), RDHPF_LOG_DEBUG);
	assert_int_equal(log_level_parse("trace"), RDHPF_LOG_TRACE);
	assert_int_equal(log_level_parse("verbose"), -1);
	assert_int_equal(log_level_parse(""), -1);
	assert_int_equal(log_level_parse(NULL), -1);
	assert_string_equal(log_level_name(RDHPF_LOG_ERROR), "error");
	assert_string_equal(log_level_name(RDHPF_LOG_WARN), "warn");
	assert_string_equal(log_level_name(RDHPF_LOG_INFO), "info");
	assert_string_equal(log_level_name(RDHPF_LOG_DEBUG), "debug");
	assert_string_equal(log_level_name(RDHPF_LOG_TRACE), "trace");
	assert_string_equal(log_level_name(7), "unknown");
	assert_string_equal(log_level_name(-1), "unknown");
}

/* ---- bounds ----------------------------------------------------------- */

static void
test_huge_values_are_bounded(void **state)
{
	static char big[100001], mid[1001]; /* static: nothing leaks when an assert fails */
	const char *s;

	(void)state;
	memset(big, 'A', 100000);
	big[100000] = '\0';
	memset(mid, 'b', 1000);
	mid[1000] = '\0';

	log_kv(RDHPF_LOG_INFO, NULL, NULL, "big", "v", big, "after", "1", NULL);
	s = take();
	assert_int_equal(count_char(s, '\n'), 1);
	assert_true(strlen(s) < 3000);
	assert_non_null(strstr(s, "AAA...\" after=1\n"));

	/* many fields: whole fields are dropped, the line says so */
	log_kv(RDHPF_LOG_INFO, NULL, NULL, "many", "k1", mid, "k2", mid, "k3", mid, "k4", mid, "k5",
	       mid, "k6", mid, "k7", mid, "k8", mid, "k9", mid, "k10", mid, "k11", mid, "k12", mid,
	       "k13", mid, "k14", mid, "k15", mid, "k16", mid, "k17", mid, "k18", mid, "k19", mid,
	       "k20", mid, NULL);
	s = take();
	assert_int_equal(count_char(s, '\n'), 1);
	assert_true(strlen(s) <= 16384);
	assert_true(strlen(s) > 14000);
	assert_non_null(strstr(s, "bbb truncated=true\n"));
	assert_null(strstr(s, "k20="));

	log_set_format(LOG_JSON);
	log_kv(RDHPF_LOG_INFO, NULL, NULL, "many json", "k1", mid, "k2", mid, "k3", mid, "k4", mid,
	       "k5", mid, "k6", mid, "k7", mid, "k8", mid, "k9", mid, "k10", mid, "k11", mid, "k12",
	       mid, "k13", mid, "k14", mid, "k15", mid, "k16", mid, "k17", mid, "k18", mid, "k19",
	       mid, "k20", big, NULL);
	s = take();
	assert_true(strlen(s) <= 16384);
	json_t *j = parse_line(s, strlen(s) - 1);
	assert_true(json_is_true(json_object_get(j, "truncated")));
	json_decref(j);
	/* a cut value never splits a UTF-8 character */
	for (size_t i = 0; i + 1 < 100000; i += 2)
		memcpy(big + i, "\xc3\xa9", 2);
	big[99999] = '\0';
	log_kv(RDHPF_LOG_INFO, NULL, NULL, "utf8", "v", big + 1,
	       NULL); /* odd start: a stray byte */
	s = take();
	j = parse_line(s, strlen(s) - 1);
	const char *v = json_string_value(json_object_get(j, "v"));
	assert_non_null(v);
	assert_memory_equal(v, "\xef\xbf\xbd\xc3\xa9", 5);
	assert_memory_equal(v + strlen(v) - 5, "\xc3\xa9...", 5);
	json_decref(j);
}

/* ---- repeats ---------------------------------------------------------- */

static void
fail_once(const char *host, const char *err)
{
	static unsigned attempt;
	char a[16];

	snprintf(a, sizeof a, "%u", ++attempt); /* varies; not part of the signature */
	log_kv(RDHPF_LOG_WARN, host, "openssh", "connect failed", "err", err, "attempt", a, NULL);
}

static void
test_repeats_collapse_and_summarize(void **state)
{
	const char *s;

	(void)state;
	fail_once("ci", "Connection refused");
	s = take();
	assert_int_equal(count_char(s, '\n'), 1);
	for (int i = 0; i < 4; i++) {
		mono += 1000;
		fail_once("ci", "Connection refused");
	}
	assert_string_equal(take(), "");
	mono += 5 * MIN_MS;
	log_flush_repeats(0); /* window not over yet */
	assert_string_equal(take(), "");

	mono += 5 * MIN_MS - 4000; /* exactly 10 min after the first line */
	log_flush_repeats(0);
	assert_string_equal(take(),
	                    TS "level=warn msg=\"connect failed (repeated 4 times in 10m)\" "
	                       "host=ci plugin=openssh err=\"Connection refused\" repeated=4\n");
	log_flush_repeats(0);
	log_flush_repeats(1); /* nothing left */
	assert_string_equal(take(), "");

	/* reset: the next one prints and opens a new window */
	mono += 1;
	fail_once("ci", "Connection refused");
	assert_int_equal(count_char(take(), '\n'), 1);
	mono += 1;
	fail_once("ci", "Connection refused");
	assert_string_equal(take(), "");
}

static void
test_signature_fields(void **state)
{
	(void)state;
	fail_once("ci", "Connection refused");
	fail_once("ci", "Connection timed out"); /* other err */
	fail_once("ci2", "Connection refused");  /* other host */
	fail_once(NULL, "Connection refused");   /* no host */
	fail_once("", "Connection refused");     /* empty host is not no host */
	log_kv(RDHPF_LOG_ERROR, "ci", "openssh", "connect failed", "err", "Connection refused",
	       NULL);
	log_kv(RDHPF_LOG_WARN, "ci", "libssh2", "connect failed", "err", "Connection refused",
	       NULL);
	log_kv(RDHPF_LOG_WARN, "ci", "openssh", "connect failed", NULL); /* no err */
	log_kv(RDHPF_LOG_WARN, "ci", "openssh", "connect failed!", "err", "Connection refused",
	       NULL);
	assert_int_equal(count_char(take(), '\n'), 9);
	/* all of them again: all suppressed, whatever the other keys say */
	fail_once("ci", "Connection refused");
	fail_once("ci", "Connection timed out");
	fail_once("ci2", "Connection refused");
	fail_once(NULL, "Connection refused");
	fail_once("", "Connection refused");
	log_kv(RDHPF_LOG_ERROR, "ci", "openssh", "connect failed", "err", "Connection refused", "x",
	       "y", NULL);
	log_kv(RDHPF_LOG_WARN, "ci", "libssh2", "connect failed", "err", "Connection refused",
	       NULL);
	log_kv(RDHPF_LOG_WARN, "ci", "openssh", "connect failed", "other", "z", NULL);
	log_kv(RDHPF_LOG_WARN, "ci", "openssh", "connect failed!", "err", "Connection refused",
	       NULL);
	assert_string_equal(take(), "");
	log_flush_repeats(1);
	const char *s = take();
	assert_int_equal(count_char(s, '\n'), 9);
	/* forced before the window ends: the span is the real one */
	assert_non_null(strstr(s, "(repeated 1 times in 0ms)"));
}

static void
test_signature_beyond_stored_prefix(void **state)
{
	char a[1200], b[1200];

	(void)state;
	memset(a, 'e', sizeof a - 1);
	a[sizeof a - 1] = '\0';
	memcpy(b, a, sizeof b);
	b[1000] = 'X'; /* differs only far past what the table stores */
	log_kv(RDHPF_LOG_WARN, NULL, NULL, "m", "err", a, NULL);
	log_kv(RDHPF_LOG_WARN, NULL, NULL, "m", "err", b, NULL);
	log_kv(RDHPF_LOG_WARN, NULL, NULL, "m", "err", a, NULL);
	assert_int_equal(count_char(take(), '\n'), 2);
}

static void
test_late_occurrence_prints_summary_then_line(void **state)
{
	const char *s, *nl;

	(void)state;
	fail_once("ci", "boom");
	mono += 1000;
	fail_once("ci", "boom");
	mono += 1000;
	fail_once("ci", "boom");
	take();
	mono += 20 * MIN_MS; /* no flush meanwhile */
	fail_once("ci", "boom");
	s = take();
	assert_int_equal(count_char(s, '\n'), 2);
	nl = strchr(s, '\n');
	assert_true(strstr(s, "msg=\"connect failed (repeated 2 times in 10m)\"") < nl);
	assert_non_null(strstr(s, "repeated=2\n"));
	assert_non_null(strstr(nl + 1, "level=warn msg=\"connect failed\" host=ci"));
	/* and that line opened a new window */
	mono += 1000;
	fail_once("ci", "boom");
	assert_string_equal(take(), "");
}

static void
test_no_summary_without_repeats(void **state)
{
	(void)state;
	fail_once("ci", "once");
	take();
	mono += 11 * MIN_MS;
	log_flush_repeats(0);
	log_flush_repeats(1);
	assert_string_equal(take(), "");
	fail_once("ci", "once"); /* window over: prints, no summary */
	const char *s = take();
	assert_int_equal(count_char(s, '\n'), 1);
	assert_null(strstr(s, "repeated"));
}

static void
test_window_setting(void **state)
{
	(void)state;
	log_set_window(30000);
	fail_once("ci", "w");
	mono += 10000;
	fail_once("ci", "w");
	mono += 20000;
	log_flush_repeats(0);
	assert_non_null(strstr(take(), "(repeated 1 times in 30s)\""));
	log_set_window(90 * MIN_MS);
	fail_once("ci", "w");
	mono += 1;
	fail_once("ci", "w");
	mono += 90 * MIN_MS;
	log_flush_repeats(0);
	assert_non_null(strstr(take(), "(repeated 1 times in 1h30m)\""));
}

static void
test_table_is_bounded_lru(void **state)
{
	char msg[16];
	const char *s;

	(void)state;
	for (int i = 0; i < 64; i++) {
		snprintf(msg, sizeof msg, "m%d", i);
		log_kv(RDHPF_LOG_WARN, NULL, NULL, msg, NULL);
		log_kv(RDHPF_LOG_WARN, NULL, NULL, msg, NULL); /* suppressed: count 1 */
	}
	log_kv(RDHPF_LOG_WARN, NULL, NULL, "m0", NULL); /* m0 is now the most recent */
	assert_int_equal(count_char(take(), '\n'), 64);

	/* a 65th signature evicts the least recently used, m1, with its summary */
	log_kv(RDHPF_LOG_WARN, NULL, NULL, "m64", NULL);
	s = take();
	assert_string_equal(s, TS "level=warn msg=\"m1 (repeated 1 times in 0ms)\" repeated=1\n" TS
	                          "level=warn msg=\"m64\"\n");
	/* m1 forgot its window: prints again; that evicts m2 */
	log_kv(RDHPF_LOG_WARN, NULL, NULL, "m1", NULL);
	s = take();
	assert_string_equal(s, TS "level=warn msg=\"m2 (repeated 1 times in 0ms)\" repeated=1\n" TS
	                          "level=warn msg=\"m1\"\n");
	/* m0 is still there */
	log_kv(RDHPF_LOG_WARN, NULL, NULL, "m0", NULL);
	assert_string_equal(take(), "");
	log_flush_repeats(1);
	s = take();
	/* m0 (3), m3..m63 (1 each); m64 and m1 have nothing to report */
	assert_int_equal(count_char(s, '\n'), 62);
	assert_non_null(strstr(s, "msg=\"m0 (repeated 3 times in 0ms)\" repeated=3\n"));
}

static void
test_info_lines_never_collapse(void **state)
{
	(void)state;
	for (int i = 0; i < 5; i++)
		log_kv(RDHPF_LOG_INFO, "h", NULL, "forward active", "local_port", "80", NULL);
	assert_int_equal(count_char(take(), '\n'), 5);
	log_flush_repeats(1);
	assert_string_equal(take(), "");
}

/* A reload's report is read in answer to the operator's SIGHUP: each
 * line prints, though the same warning came a moment ago, and it does not
 * count towards a collapsed run of log_kv's. */
static void
test_each_lines_never_collapse(void **state)
{
	(void)state;
	for (int i = 0; i < 3; i++)
		log_kv_each(RDHPF_LOG_WARN, NULL, NULL, "plugin refused", "path",
		            i == 1 ? "/p/b.so" : "/p/a.so", NULL);
	assert_int_equal(count_char(take(), '\n'), 3);
	log_kv(RDHPF_LOG_ERROR, NULL, NULL, "reload refused", NULL);
	log_kv_each(RDHPF_LOG_ERROR, NULL, NULL, "reload refused", NULL);
	log_kv(RDHPF_LOG_ERROR, NULL, NULL, "reload refused", NULL); /* collapses */
	assert_int_equal(count_char(take(), '\n'), 2);
	log_flush_repeats(1);
	assert_non_null(strstr(take(), "(repeated 1 times"));
}

/* Sum of the occurrences a log text accounts for: 1 per line, N per
 * summary line. */
static uint64_t
occurrences(const char *s, size_t *lines)
{
	uint64_t total = 0;

	*lines = 0;
	for (const char *p = s; *p;) {
		const char *nl = strchr(p, '\n'), *r;
		assert_non_null(nl);
		(*lines)++;
		r = strstr(p, "repeated=");
		if (r == NULL)
			r = strstr(p, "\"repeated\":");
		if (r != NULL && r < nl) {
			char *end;
			unsigned long long v =
			    strtoull(strchr(r, r[8] == '=' ? '=' : ':') + 1, &end, 10);
			assert_true(end > r);
			total += v;
		} else {
			total += 1;
		}
		p = nl + 1;
	}
	return total;
}

/* The predecessor's failure: a reconnect loop for an hour.  One failure
 * every 2 s for 3600 s, the daemon flushing every 10 s. */
static void
outage(enum log_format fmt)
{
	const uint64_t start = mono;
	uint64_t n = 0;
	size_t lines;
	const char *s;

	log_set_format(fmt);
	for (uint64_t t = 0; t < 3600 * 1000; t += 1000) {
		mono = start + t;
		if (t % 2000 == 0) {
			fail_once("ci",
			          "ssh: connect to host 10.0.0.2 port 22: Connection refused");
			n++;
		}
		if (t % 10000 == 0)
			log_flush_repeats(0);
	}
	log_flush_repeats(1); /* exit */
	s = take();
	assert_int_equal(n, 1800);
	assert_int_equal(occurrences(s, &lines), n);
	assert_true(lines < 20);
	assert_true(strlen(s) < 4096);
	if (fmt == LOG_JSON) {
		for (const char *p = s; *p;) {
			const char *nl = strchr(p, '\n');
			json_decref(parse_line(p, (size_t)(nl - p)));
			p = nl + 1;
		}
	}
}

static void
test_hour_long_outage_logfmt(void **state)
{
	(void)state;
	outage(LOG_LOGFMT);
}

static void
test_hour_long_outage_json(void **state)
{
	(void)state;
	outage(LOG_JSON);
}

static void
test_outage_two_hosts_interleaved_with_info(void **state)
{
	const uint64_t start = mono;
	uint64_t n = 0;
	size_t lines;

	(void)state;
	for (uint64_t t = 0; t < 3600 * 1000; t += 500) {
		mono = start + t;
		fail_once("ci", "refused");
		fail_once("db", "timeout");
		log_kv(RDHPF_LOG_DEBUG, "ci", NULL, "retrying", NULL); /* filtered */
		n += 2;
		if (t % 10000 == 0)
			log_flush_repeats(0);
	}
	log_flush_repeats(1);
	const char *s = take();
	assert_int_equal(occurrences(s, &lines), n);
	assert_true(lines < 40);
}

/* Text shown on a terminal (status table, check-config): controls that
 * could retitle or rewrite it come out as visible escapes. */
static void
test_term_escape(void **st)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
	    {"web", "web"},
	    {"a\x1b]0;pwned\x07z", "a\\x1b]0;pwned\\x07z"}, /* OSC: set title */
	    {"\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"},           /* clear screen */
	    {"x\xc2\x9b"
	     "31m",
	     "x\\xc2\\x9b31m"}, /* C1 CSI, UTF-8 */
	    {"\x9b"
	     "31m",
	     "\\x9b31m"},                                             /* raw 8-bit CSI */
	    {"caf\xc3\xa9 \xe2\x82\xac", "caf\xc3\xa9 \xe2\x82\xac"}, /* UTF-8 kept */
	    {"l1\nl2\r\t", "l1\\nl2\\r\\t"},
	    {"\x7f\xff", "\\x7f\\xff"},
	    {"\xe2\x80\xa8", "\\xe2\\x80\\xa8"}, /* U+2028 */
	    {"", ""},
	};
	(void)st;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *e = term_escape_dup(cases[i].in);
		assert_string_equal(e, cases[i].want);
		free(e);
	}
	char *e = term_escape_dup(NULL);
	assert_string_equal(e, "");
	free(e);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_logfmt_exact),
	    T(test_logfmt_quoting),
	    T(test_logfmt_hostile_values_cannot_forge_lines),
	    T(test_key_sanitized),
	    T(test_timestamp_format),
	    T(test_json_valid_and_round_trips),
	    T(test_redaction),
	    T(test_level_filtering),
	    T(test_level_names),
	    T(test_huge_values_are_bounded),
	    T(test_repeats_collapse_and_summarize),
	    T(test_signature_fields),
	    T(test_signature_beyond_stored_prefix),
	    T(test_late_occurrence_prints_summary_then_line),
	    T(test_no_summary_without_repeats),
	    T(test_window_setting),
	    T(test_table_is_bounded_lru),
	    T(test_info_lines_never_collapse),
	    T(test_each_lines_never_collapse),
	    T(test_hour_long_outage_logfmt),
	    T(test_hour_long_outage_json),
	    T(test_outage_two_hosts_interleaved_with_info),
	    T(test_term_escape),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
