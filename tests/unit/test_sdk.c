/* The plugin SDK (sdk/): buffer, line splitter, validators, container sets
 * and their diff, pending operations, collector, export.  The host API is
 * a small fake: timers sit in a table the test fires by hand, streams and
 * containers are records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rdhpf/sdk-json.h"
#include "rdhpf/sdk.h"

/* ---- the fake host ---- */

#define MAX_TIMERS 64

struct rdhpf_timer {
	int live;
	int fired;
	uint64_t after_ms;
	rdhpf_timer_fn cb;
	void *arg;
};

static struct rdhpf_timer timers[MAX_TIMERS];
static int timers_live;
static int logs;

static void
fake_log(struct rdhpf_ctx *ctx, int level, const char *msg, ...)
{
	(void)ctx;
	(void)level;
	(void)msg;
	logs++;
}

static struct rdhpf_timer *
fake_timer_start(struct rdhpf_ctx *ctx, uint64_t after_ms, uint64_t repeat_ms, rdhpf_timer_fn cb,
                 void *arg)
{
	(void)ctx;
	(void)repeat_ms;
	for (int i = 0; i < MAX_TIMERS; i++) {
		if (!timers[i].live) {
			timers[i] = (struct rdhpf_timer){1, 0, after_ms, cb, arg};
			timers_live++;
			return &timers[i];
		}
	}
	return NULL;
}

static void
fake_timer_stop(struct rdhpf_timer *t)
{
	assert_true(t->live);
	t->live = 0;
	timers_live--;
}

/* Fire, once each, the live timers due within ms; those started by a
 * callback wait for the next call.  Returns how many fired. */
static int
timers_run(uint64_t ms)
{
	struct rdhpf_timer *due[MAX_TIMERS];
	int n = 0;

	for (int i = 0; i < MAX_TIMERS; i++)
		if (timers[i].live && !timers[i].fired && timers[i].after_ms <= ms)
			due[n++] = &timers[i];
	for (int i = 0; i < n; i++) {
		if (!due[i]->live || due[i]->fired)
			continue;
		due[i]->fired = 1;
		due[i]->cb(due[i]->arg);
	}
	return n;
}

/* Streams: one at a time, driven by the test. */
struct rdhpf_stream {
	int open;
	struct rdhpf_stream_cbs cbs;
	void *arg;
	char argv0[64];
};
static struct rdhpf_stream the_stream;
static int exec_fail;

static int
fake_stream_exec(struct rdhpf_ctx *ctx, const char *const *argv, const struct rdhpf_stream_cbs *cbs,
                 void *arg, struct rdhpf_stream **out)
{
	(void)ctx;
	if (exec_fail)
		return RDHPF_ERR_NOTCONN;
	assert_false(the_stream.open);
	the_stream.open = 1;
	the_stream.cbs = *cbs;
	the_stream.arg = arg;
	snprintf(the_stream.argv0, sizeof the_stream.argv0, "%s", argv[0]);
	*out = &the_stream;
	return RDHPF_OK;
}

static void
fake_stream_close(struct rdhpf_stream *s)
{
	assert_true(s->open);
	s->open = 0;
}

static void
stream_data(const char *s)
{
	the_stream.cbs.on_data(the_stream.arg, s, strlen(s));
}

static void
stream_end(int status, int exit_code, const char *detail)
{
	the_stream.open = 0;
	the_stream.cbs.on_close(the_stream.arg, status, exit_code, detail);
}

/* Containers: a record of what was set, and a count of live ones. */
struct rdhpf_container {
	char id[129];
	char name[256];
	char image[256];
	char labels[512]; /* "k=v;" … */
	char ports[512];  /* "ip:host:cont/proto;" … */
};
static int conts_live;
static int refuse_label; /* container_add_label says INVAL */

static struct rdhpf_container *
fake_container_new(struct rdhpf_ctx *ctx, const char *id, const char *name)
{
	struct rdhpf_container *c = calloc(1, sizeof *c);

	(void)ctx;
	assert_non_null(c);
	snprintf(c->id, sizeof c->id, "%s", id);
	snprintf(c->name, sizeof c->name, "%s", name);
	conts_live++;
	return c;
}

static int
fake_set_image(struct rdhpf_container *c, const char *image)
{
	snprintf(c->image, sizeof c->image, "%s", image);
	return RDHPF_OK;
}

static int
fake_add_label(struct rdhpf_container *c, const char *k, const char *v)
{
	size_t n = strlen(c->labels);

	if (refuse_label)
		return RDHPF_ERR_INVAL;
	snprintf(c->labels + n, sizeof c->labels - n, "%s=%s;", k, v);
	return RDHPF_OK;
}

static int
fake_add_port(struct rdhpf_container *c, const struct rdhpf_port *p)
{
	size_t n = strlen(c->ports);

	assert_int_equal(p->struct_size, sizeof(struct rdhpf_port));
	snprintf(c->ports + n, sizeof c->ports - n, "%s:%u:%u/%d;", p->host_ip,
	         (unsigned)p->host_port, (unsigned)p->container_port, p->proto);
	return RDHPF_OK;
}

static void
fake_container_free(struct rdhpf_container *c)
{
	conts_live--;
	free(c);
}

static const struct rdhpf_host_api H = {
    .abi_major = RDHPF_ABI_MAJOR,
    .abi_minor = RDHPF_ABI_MINOR,
    .struct_size = sizeof(struct rdhpf_host_api),
    .log = fake_log,
    .timer_start = fake_timer_start,
    .timer_stop = fake_timer_stop,
    .stream_exec = fake_stream_exec,
    .stream_close = fake_stream_close,
    .container_new = fake_container_new,
    .container_set_image = fake_set_image,
    .container_add_label = fake_add_label,
    .container_add_port = fake_add_port,
    .container_free = fake_container_free,
};

static int
setup(void **state)
{
	(void)state;
	memset(timers, 0, sizeof timers);
	timers_live = 0;
	memset(&the_stream, 0, sizeof the_stream);
	exec_fail = 0;
	conts_live = 0;
	refuse_label = 0;
	logs = 0;
	return 0;
}

/* ---- buffer ---- */

static void
test_buf(void **state)
{
	struct rsdk_buf b = RSDK_BUF_INIT;
	char big[1000];

	(void)state;
	assert_string_equal(rsdk_buf_str(&b), "");
	assert_int_equal(rsdk_buf_size(&b), 0);
	assert_int_equal(rsdk_buf_append(&b, "hello ", 6), RDHPF_OK);
	assert_int_equal(rsdk_buf_printf(&b, "%s %d", "world", 42), RDHPF_OK);
	assert_string_equal(rsdk_buf_str(&b), "hello world 42");
	rsdk_buf_consume(&b, 6);
	assert_string_equal(rsdk_buf_str(&b), "world 42");
	assert_int_equal(rsdk_buf_size(&b), 8);
	/* Growing after a consume keeps the content in order. */
	memset(big, 'x', sizeof big);
	assert_int_equal(rsdk_buf_append(&b, big, sizeof big), RDHPF_OK);
	assert_int_equal(rsdk_buf_size(&b), 8 + sizeof big);
	assert_memory_equal(rsdk_buf_str(&b), "world 42xx", 10);
	assert_int_equal(rsdk_buf_str(&b)[rsdk_buf_size(&b)], '\0');
	rsdk_buf_consume(&b, rsdk_buf_size(&b));
	assert_int_equal(rsdk_buf_size(&b), 0);
	assert_string_equal(rsdk_buf_str(&b), "");
	assert_int_equal(rsdk_buf_append(&b, "ab", 2), RDHPF_OK);
	rsdk_buf_reset(&b);
	assert_string_equal(rsdk_buf_str(&b), "");
	rsdk_buf_free(&b);
	assert_null(b.data);
}

static void
test_printable(void **state)
{
	char out[8];

	(void)state;
	rsdk_printable(out, sizeof out,
	               "a\nb\x01\x7f"
	               "cdefgh",
	               10);
	assert_string_equal(out, "a?b??cd");
	assert_null(rsdk_strdup(NULL));
}

/* ---- lines ---- */

struct got_lines {
	char v[8][64];
	int n;
	int stop_at; /* return 1 at this line (1-based), 0: never */
};

static int
on_line(void *arg, const char *line, size_t len)
{
	struct got_lines *g = arg;

	assert_true(g->n < 8);
	assert_true(len < 64);
	memcpy(g->v[g->n], line, len);
	g->v[g->n][len] = '\0';
	g->n++;
	return g->stop_at == g->n ? 7 : 0;
}

static void
test_lines_crlf_and_split(void **state)
{
	struct rsdk_lines l;
	struct got_lines g = {.n = 0};

	(void)state;
	rsdk_lines_init(&l, 16);
	assert_int_equal(rsdk_lines_feed(&l, "one\r\ntw", 7, on_line, &g), 0);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.v[0], "one");
	assert_int_equal(rsdk_lines_feed(&l, "o\r", 2, on_line, &g), 0);
	assert_int_equal(g.n, 1);
	assert_int_equal(rsdk_lines_feed(&l, "\n\nthree\n", 8, on_line, &g), 0);
	assert_int_equal(g.n, 4);
	assert_string_equal(g.v[1], "two");
	assert_string_equal(g.v[2], "");
	assert_string_equal(g.v[3], "three");
	assert_int_equal(l.oversized, 0);
	rsdk_lines_free(&l);
}

static void
test_lines_oversized(void **state)
{
	struct rsdk_lines l;
	struct got_lines g = {.n = 0};
	char longl[40];

	(void)state;
	memset(longl, 'z', sizeof longl);
	rsdk_lines_init(&l, 8);
	/* Exactly max is kept, also with a CR; max + 1 is not. */
	assert_int_equal(rsdk_lines_feed(&l, "12345678\r\n123456789\n", 20, on_line, &g), 0);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.v[0], "12345678");
	assert_int_equal(l.oversized, 1);
	/* A long line over several feeds is skipped to its end, once. */
	assert_int_equal(rsdk_lines_feed(&l, "ab", 2, on_line, &g), 0);
	assert_int_equal(rsdk_lines_feed(&l, longl, sizeof longl, on_line, &g), 0);
	assert_int_equal(rsdk_lines_feed(&l, longl, sizeof longl, on_line, &g), 0);
	assert_int_equal(rsdk_lines_feed(&l, "zz\nok\n", 6, on_line, &g), 0);
	assert_int_equal(l.oversized, 2);
	assert_int_equal(g.n, 2);
	assert_string_equal(g.v[1], "ok");
	rsdk_lines_free(&l);
}

static void
test_lines_finish_and_stop(void **state)
{
	struct rsdk_lines l;
	struct got_lines g = {.n = 0};

	(void)state;
	g.stop_at = 2;
	rsdk_lines_init(&l, 64);
	/* fn's non-zero stops the feed and is returned. */
	assert_int_equal(rsdk_lines_feed(&l, "a\nb\nc\n", 6, on_line, &g), 7);
	assert_int_equal(g.n, 2);
	rsdk_lines_free(&l);

	rsdk_lines_init(&l, 64);
	g.n = 0;
	g.stop_at = 0;
	assert_int_equal(rsdk_lines_feed(&l, "x\nlast\r", 7, on_line, &g), 0);
	assert_int_equal(g.n, 1);
	assert_int_equal(rsdk_lines_finish(&l, on_line, &g), 0);
	assert_int_equal(g.n, 2);
	assert_string_equal(g.v[1], "last");
	/* Nothing left: finish again passes nothing. */
	assert_int_equal(rsdk_lines_finish(&l, on_line, &g), 0);
	assert_int_equal(g.n, 2);
	rsdk_lines_free(&l);
}

/* ---- validators ---- */

static void
test_parse_port(void **state)
{
	char err[128];
	uint16_t p = 0;

	(void)state;
	assert_int_equal(rsdk_parse_port("65535", &p, err, sizeof err), RDHPF_OK);
	assert_int_equal(p, 65535);
	assert_int_equal(rsdk_parse_port("65536", &p, err, sizeof err), RDHPF_ERR_INVAL);
	assert_string_equal(err, "\"65536\" is not a port (1..65535)");
	assert_int_equal(rsdk_parse_port("0", &p, err, sizeof err), RDHPF_ERR_INVAL);
	assert_int_equal(rsdk_parse_port("+80", &p, err, sizeof err), RDHPF_ERR_INVAL);
	assert_int_equal(rsdk_parse_port("", &p, err, sizeof err), RDHPF_ERR_INVAL);
}

static void
test_parse_ranges(void **state)
{
	struct rsdk_ranges r;
	char err[128];

	(void)state;
	assert_int_equal(rsdk_parse_ranges("5432, 6379 8000-8010,", &r, err, sizeof err), RDHPF_OK);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.v[2].lo, 8000);
	assert_int_equal(r.v[2].hi, 8010);
	assert_true(rsdk_ranges_has(&r, 5432));
	assert_true(rsdk_ranges_has(&r, 8000));
	assert_true(rsdk_ranges_has(&r, 8010));
	assert_false(rsdk_ranges_has(&r, 8011));
	assert_false(rsdk_ranges_has(&r, 5433));
	rsdk_ranges_free(&r);

	assert_int_equal(rsdk_parse_ranges("80, 9000-8000", &r, err, sizeof err), RDHPF_ERR_INVAL);
	assert_string_equal(err, "range \"9000-8000\" ends before it starts");
	assert_null(r.v);
	assert_int_equal(rsdk_parse_ranges("80, http", &r, err, sizeof err), RDHPF_ERR_INVAL);
	assert_string_equal(err, "\"http\" is not a port (1..65535) or a range LO-HI");
	assert_int_equal(rsdk_parse_ranges("1-70000", &r, err, sizeof err), RDHPF_ERR_INVAL);
	assert_int_equal(rsdk_parse_ranges("80-", &r, err, sizeof err), RDHPF_ERR_INVAL);
	assert_int_equal(rsdk_parse_ranges(" , ", &r, err, sizeof err), RDHPF_ERR_INVAL);
	assert_string_equal(err, "no port given");
}

static void
test_parse_duration(void **state)
{
	uint64_t ms = 0;
	char err[128];

	(void)state;
	assert_int_equal(rsdk_parse_duration_ms("250ms", &ms, err, sizeof err), RDHPF_OK);
	assert_int_equal(ms, 250);
	assert_int_equal(rsdk_parse_duration_ms("2s", &ms, err, sizeof err), RDHPF_OK);
	assert_int_equal(ms, 2000);
	assert_int_equal(rsdk_parse_duration_ms("3", &ms, err, sizeof err), RDHPF_OK);
	assert_int_equal(ms, 3000);
	assert_int_equal(rsdk_parse_duration_ms("1m", &ms, err, sizeof err), RDHPF_OK);
	assert_int_equal(ms, 60000);
	assert_int_equal(rsdk_parse_duration_ms("1h", &ms, err, sizeof err), RDHPF_OK);
	assert_int_equal(ms, 3600000);
	assert_int_equal(rsdk_parse_duration_ms("5d", &ms, err, sizeof err), RDHPF_ERR_INVAL);
	assert_string_equal(err, "\"5d\": unknown unit (ms, s, m or h)");
	assert_int_equal(rsdk_parse_duration_ms("soon", &ms, err, sizeof err), RDHPF_ERR_INVAL);
	assert_string_equal(err, "\"soon\" is not a duration (e.g. 250ms, 2s, 1m, 1h)");
	assert_int_equal(rsdk_parse_duration_ms("99999999999999999999h", &ms, err, sizeof err),
	                 RDHPF_ERR_INVAL);
	assert_int_equal(rsdk_parse_duration_ms("-1s", &ms, err, sizeof err), RDHPF_ERR_INVAL);
}

static void
test_parse_bool(void **state)
{
	int v = -1;
	char err[128];

	(void)state;
	assert_int_equal(rsdk_parse_bool("yes", &v, err, sizeof err), RDHPF_OK);
	assert_int_equal(v, 1);
	assert_int_equal(rsdk_parse_bool("off", &v, err, sizeof err), RDHPF_OK);
	assert_int_equal(v, 0);
	assert_int_equal(rsdk_parse_bool("1", &v, err, sizeof err), RDHPF_OK);
	assert_int_equal(v, 1);
	assert_int_equal(rsdk_parse_bool("Yes!", &v, err, sizeof err), RDHPF_ERR_INVAL);
	assert_string_equal(err, "\"Yes!\" is not a boolean (yes/no, true/false, on/off, 1/0)");
}

static void
test_check_name_path_enum(void **state)
{
	static const char *const apis[] = {"auto", "unix", "exec", NULL};
	char err[128];
	char longname[140];

	(void)state;
	assert_int_equal(rsdk_check_name("my-ns_1.a", err, sizeof err), RDHPF_OK);
	assert_int_equal(rsdk_check_name("bad ns!", err, sizeof err), RDHPF_ERR_INVAL);
	assert_string_equal(err,
	                    "\"bad ns!\": a name holds only letters, digits, '_', '.' and '-'");
	assert_int_equal(rsdk_check_name("-x", err, sizeof err), RDHPF_ERR_INVAL);
	assert_string_equal(err, "\"-x\": a name starts with a letter or a digit");
	assert_int_equal(rsdk_check_name("", err, sizeof err), RDHPF_ERR_INVAL);
	assert_string_equal(err, "empty name");
	memset(longname, 'a', sizeof longname);
	longname[129] = '\0';
	assert_int_equal(rsdk_check_name(longname, err, sizeof err), RDHPF_ERR_INVAL);
	longname[128] = '\0';
	assert_int_equal(rsdk_check_name(longname, err, sizeof err), RDHPF_OK);

	assert_int_equal(rsdk_check_abs_path("/var/run/docker.sock", err, sizeof err), RDHPF_OK);
	assert_int_equal(rsdk_check_abs_path("/a..b/c", err, sizeof err), RDHPF_OK);
	assert_int_equal(rsdk_check_abs_path("run/docker.sock", err, sizeof err), RDHPF_ERR_INVAL);
	assert_string_equal(err, "\"run/docker.sock\" is not an absolute path");
	assert_int_equal(rsdk_check_abs_path("/var/../etc", err, sizeof err), RDHPF_ERR_INVAL);
	assert_string_equal(err, "path \"/var/../etc\" holds \"..\"");
	assert_int_equal(rsdk_check_abs_path("/x/..", err, sizeof err), RDHPF_ERR_INVAL);
	assert_int_equal(rsdk_check_abs_path("/x\ny", err, sizeof err), RDHPF_ERR_INVAL);
	assert_string_equal(err, "path \"/x?y\" holds a control character");

	assert_int_equal(rsdk_check_enum("unix", apis, err, sizeof err), RDHPF_OK);
	assert_int_equal(rsdk_check_enum("no-such-api", apis, err, sizeof err), RDHPF_ERR_INVAL);
	assert_string_equal(err, "\"no-such-api\" is not one of: auto, unix, exec");
}

/* ---- containers, sets, diff ---- */

static void
mk(struct rsdk_cont *c, const char *id, uint16_t port)
{
	assert_int_equal(rsdk_cont_init(c, id, NULL), RDHPF_OK);
	if (port != 0)
		assert_int_equal(rsdk_cont_add_port(c, "0.0.0.0", port, 80, RDHPF_PROTO_TCP),
		                 RDHPF_OK);
}

static void
test_cont(void **state)
{
	struct rsdk_cont a, b;

	(void)state;
	assert_int_equal(rsdk_cont_init(&a, "bad id", "x"), RDHPF_ERR_INVAL);
	assert_int_equal(rsdk_cont_init(&a, "", "x"), RDHPF_ERR_INVAL);
	assert_int_equal(rsdk_cont_init(&a, "abc", "/web"), RDHPF_OK);
	assert_string_equal(a.name, "web");
	assert_int_equal(rsdk_cont_add_port(&a, "", 8080, 80, RDHPF_PROTO_TCP), RDHPF_OK);
	assert_int_equal(rsdk_cont_add_port(&a, "", 8080, 80, RDHPF_PROTO_TCP), RDHPF_OK);
	assert_int_equal(a.n_ports, 1);
	assert_int_equal(rsdk_cont_add_port(&a, "::", 8080, 80, RDHPF_PROTO_TCP), RDHPF_OK);
	assert_int_equal(rsdk_cont_add_label(&a, "k", "v1"), RDHPF_OK);
	assert_int_equal(rsdk_cont_add_label(&a, "k", "v2"), RDHPF_OK);
	assert_int_equal(a.n_labels, 1);
	assert_string_equal(a.labels[0].value, "v2");

	/* Equal ignores port order; image and labels count. */
	assert_int_equal(rsdk_cont_init(&b, "abc", NULL), RDHPF_OK);
	assert_string_equal(b.name, "abc");
	assert_int_equal(rsdk_cont_add_port(&b, "::", 8080, 80, RDHPF_PROTO_TCP), RDHPF_OK);
	assert_int_equal(rsdk_cont_add_port(&b, "", 8080, 80, RDHPF_PROTO_TCP), RDHPF_OK);
	assert_false(rsdk_cont_equal(&a, &b));
	assert_int_equal(rsdk_cont_add_label(&b, "k", "v2"), RDHPF_OK);
	assert_true(rsdk_cont_equal(&a, &b));
	assert_int_equal(rsdk_cont_set_image(&b, "busybox"), RDHPF_OK);
	assert_false(rsdk_cont_equal(&a, &b));
	assert_int_equal(rsdk_cont_set_image(&a, "busybox"), RDHPF_OK);
	assert_true(rsdk_cont_equal(&a, &b));
	assert_int_equal(rsdk_cont_add_label(&a, "k", "v3"), RDHPF_OK);
	assert_false(rsdk_cont_equal(&a, &b));
	rsdk_cont_clear(&a);
	rsdk_cont_clear(&b);
	assert_null(a.id);
}

static void
test_cset(void **state)
{
	struct rsdk_cset s = RSDK_CSET_INIT;
	struct rsdk_cont c;
	const char *ids[] = {"m", "c", "x", "a", "q"};

	(void)state;
	for (size_t i = 0; i < 5; i++) {
		mk(&c, ids[i], (uint16_t)(1000 + i));
		assert_int_equal(rsdk_cset_put(&s, &c), RDHPF_OK);
		assert_null(c.id);
	}
	assert_int_equal(s.n, 5);
	/* Sorted by id. */
	for (size_t i = 1; i < s.n; i++)
		assert_true(strcmp(s.v[i - 1].id, s.v[i].id) < 0);
	assert_non_null(rsdk_cset_get(&s, "x"));
	assert_int_equal(rsdk_cset_get(&s, "x")->ports[0].host_port, 1002);
	assert_null(rsdk_cset_get(&s, "b"));
	/* Put of an id there replaces it. */
	mk(&c, "x", 2000);
	assert_int_equal(rsdk_cset_put(&s, &c), RDHPF_OK);
	assert_int_equal(s.n, 5);
	assert_int_equal(rsdk_cset_get(&s, "x")->ports[0].host_port, 2000);
	assert_int_equal(rsdk_cset_del(&s, "c"), 1);
	assert_int_equal(rsdk_cset_del(&s, "c"), 0);
	assert_int_equal(s.n, 4);
	assert_null(rsdk_cset_get(&s, "c"));
	assert_non_null(rsdk_cset_get(&s, "a"));
	assert_non_null(rsdk_cset_get(&s, "q"));

	struct rsdk_cset t = RSDK_CSET_INIT;
	mk(&c, "zz", 1);
	assert_int_equal(rsdk_cset_put(&t, &c), RDHPF_OK);
	rsdk_cset_move(&t, &s);
	assert_int_equal(s.n, 0);
	assert_int_equal(t.n, 4);
	assert_null(rsdk_cset_get(&t, "zz"));
	rsdk_cset_free(&t);
	rsdk_cset_free(&s);
}

struct diff_log {
	char v[16][16];
	int n;
};

static void
on_diff(void *arg, int type, const struct rsdk_cont *c)
{
	struct diff_log *d = arg;

	assert_true(d->n < 16);
	snprintf(d->v[d->n++], sizeof d->v[0], "%s %s", type == RDHPF_EV_STOP ? "stop" : "start",
	         c->id);
}

static void
test_cset_diff(void **state)
{
	struct rsdk_cset old = RSDK_CSET_INIT, now = RSDK_CSET_INIT;
	struct rsdk_cont c;
	struct diff_log d = {.n = 0};

	(void)state;
	/* old: a b c d; now: b c' d e f (c's port changed; a gone; e, f new). */
	mk(&c, "a", 1), rsdk_cset_put(&old, &c);
	mk(&c, "b", 2), rsdk_cset_put(&old, &c);
	mk(&c, "c", 3), rsdk_cset_put(&old, &c);
	mk(&c, "d", 4), rsdk_cset_put(&old, &c);
	mk(&c, "b", 2), rsdk_cset_put(&now, &c);
	mk(&c, "c", 33), rsdk_cset_put(&now, &c);
	mk(&c, "d", 4), rsdk_cset_put(&now, &c);
	mk(&c, "e", 5), rsdk_cset_put(&now, &c);
	mk(&c, "f", 1), rsdk_cset_put(&now, &c);
	rsdk_cset_diff(&old, &now, on_diff, &d);
	assert_int_equal(d.n, 5);
	/* Every STOP first: f takes a's port 1, which must be free by then. */
	assert_string_equal(d.v[0], "stop a");
	assert_string_equal(d.v[1], "stop c");
	assert_string_equal(d.v[2], "start c");
	assert_string_equal(d.v[3], "start e");
	assert_string_equal(d.v[4], "start f");
	assert_int_equal(rsdk_cset_get(&now, "c")->ports[0].host_port, 33);

	/* Against an empty set: everything starts, or stops. */
	struct rsdk_cset none = RSDK_CSET_INIT;
	d.n = 0;
	rsdk_cset_diff(&none, &now, on_diff, &d);
	assert_int_equal(d.n, 5);
	assert_string_equal(d.v[0], "start b");
	d.n = 0;
	rsdk_cset_diff(&old, &none, on_diff, &d);
	assert_int_equal(d.n, 4);
	assert_string_equal(d.v[3], "stop d");
	d.n = 0;
	rsdk_cset_diff(&now, &now, on_diff, &d);
	assert_int_equal(d.n, 0);
	rsdk_cset_free(&old);
	rsdk_cset_free(&now);
}

/* ---- export, list reply, emit ---- */

struct list_got {
	int calls, status;
	size_t n;
	char first[2048];
};

static void
on_list(void *arg, int status, const char *detail, struct rdhpf_container *const *cs, size_t n)
{
	struct list_got *g = arg;

	(void)detail;
	g->calls++;
	g->status = status;
	g->n = n;
	if (n > 0)
		snprintf(g->first, sizeof g->first, "%s|%s|%s|%s|%s", cs[0]->id, cs[0]->name,
		         cs[0]->image, cs[0]->labels, cs[0]->ports);
}

static void
test_list_reply(void **state)
{
	struct rsdk_cset s = RSDK_CSET_INIT;
	struct rsdk_cont c;
	struct list_got g = {0};

	(void)state;
	assert_int_equal(rsdk_cont_init(&c, "abc", "/web"), RDHPF_OK);
	assert_int_equal(rsdk_cont_set_image(&c, "nginx:1"), RDHPF_OK);
	assert_int_equal(rsdk_cont_add_label(&c, "tier", "front"), RDHPF_OK);
	assert_int_equal(rsdk_cont_add_port(&c, "127.0.0.1", 8080, 80, RDHPF_PROTO_TCP), RDHPF_OK);
	assert_int_equal(rsdk_cset_put(&s, &c), RDHPF_OK);
	mk(&c, "def", 9), rsdk_cset_put(&s, &c);
	rsdk_list_reply(&H, NULL, on_list, &g, &s);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.status, RDHPF_OK);
	assert_int_equal(g.n, 2);
	assert_string_equal(g.first, "abc|web|nginx:1|tier=front;|127.0.0.1:8080:80/1;");
	assert_int_equal(conts_live, 0);
	assert_int_equal(s.n, 2);

	/* A label the core refuses is left out, logged; the container stays
	 * with its ports. */
	refuse_label = 1;
	g.calls = 0;
	rsdk_list_reply(&H, NULL, on_list, &g, &s);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.n, 2);
	assert_string_equal(g.first, "abc|web|nginx:1||127.0.0.1:8080:80/1;");
	assert_int_equal(logs, 1);
	assert_int_equal(conts_live, 0);

	/* An id the core would refuse: that container is left out. */
	struct rsdk_cont bad = {0};
	bad.id = (char *)"bad id";
	bad.name = (char *)"x";
	struct rsdk_cset one = {&bad, 1, 1};
	g.calls = 0;
	rsdk_list_reply(&H, NULL, on_list, &g, &one);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.status, RDHPF_OK);
	assert_int_equal(g.n, 0);
	rsdk_cset_free(&s);
}

static int events_seen;
static char event_id[160];

static void
on_event(void *arg, int type, int64_t time_ns, struct rdhpf_container *c)
{
	(void)arg;
	assert_int_equal(type, RDHPF_EV_START);
	assert_int_equal(time_ns, 42);
	snprintf(event_id, sizeof event_id, "%s", c->id);
	events_seen++;
}

static void
test_emit(void **state)
{
	struct rdhpf_watch_cbs cbs = {RDHPF_INIT(rdhpf_watch_cbs), .on_event = on_event};
	struct rsdk_cont c;

	(void)state;
	mk(&c, "e1", 80);
	events_seen = 0;
	assert_int_equal(rsdk_emit(&H, NULL, &cbs, NULL, RDHPF_EV_START, 42, &c), RDHPF_OK);
	assert_int_equal(events_seen, 1);
	assert_string_equal(event_id, "e1");
	assert_int_equal(conts_live, 0);
	rsdk_cont_clear(&c);
}

/* ---- pending operations ---- */

#define MAX_DONE 16
static struct {
	int arg;
	int status;
	char detail[96];
} dones[MAX_DONE];
static int n_done;
static struct rsdk_pending *reenter; /* on_done starts an op here */

static void
on_done(void *arg, int status, const char *detail)
{
	assert_true(n_done < MAX_DONE);
	dones[n_done].arg = (int)(intptr_t)arg;
	dones[n_done].status = status;
	snprintf(dones[n_done].detail, sizeof dones[0].detail, "%s", detail ? detail : "");
	n_done++;
	if (reenter != NULL) {
		struct rsdk_pending *p = reenter;
		reenter = NULL;
		assert_non_null(rsdk_op_start(p, on_done, (void *)99, 0, "late"));
	}
}

static void
test_pending_finish(void **state)
{
	struct rsdk_pending p;
	struct rsdk_op *a, *b;

	(void)state;
	n_done = 0;
	rsdk_pending_init(&p, &H, NULL);
	a = rsdk_op_start(&p, on_done, (void *)1, 5000, "connect");
	b = rsdk_op_start(&p, on_done, (void *)2, 0, "list");
	assert_int_equal(rsdk_pending_count(&p), 2);
	assert_int_equal(timers_live, 1);
	rsdk_op_finish(a, RDHPF_OK, NULL);
	assert_int_equal(n_done, 1);
	assert_int_equal(dones[0].arg, 1);
	assert_int_equal(dones[0].status, RDHPF_OK);
	assert_int_equal(timers_live, 0);
	assert_int_equal(rsdk_pending_count(&p), 1);

	/* finish_later: nothing until the loop turns. */
	char detail[] = "engine said no";
	rsdk_op_finish_later(b, RDHPF_ERR_REMOTE, detail);
	detail[0] = 'X'; /* the op copied it */
	assert_int_equal(n_done, 1);
	assert_int_equal(rsdk_pending_count(&p), 1);
	assert_int_equal(timers_run(0), 1);
	assert_int_equal(n_done, 2);
	assert_int_equal(dones[1].arg, 2);
	assert_int_equal(dones[1].status, RDHPF_ERR_REMOTE);
	assert_string_equal(dones[1].detail, "engine said no");
	assert_int_equal(rsdk_pending_count(&p), 0);
	assert_int_equal(timers_live, 0);
}

static void
test_pending_timeout(void **state)
{
	struct rsdk_pending p;

	(void)state;
	n_done = 0;
	rsdk_pending_init(&p, &H, NULL);
	assert_non_null(rsdk_op_start(&p, on_done, (void *)1, 100, "inspect abc"));
	assert_non_null(rsdk_op_start(&p, on_done, (void *)2, 300, "list"));
	assert_int_equal(timers_run(99), 0);
	assert_int_equal(timers_run(100), 1);
	assert_int_equal(n_done, 1);
	assert_int_equal(dones[0].arg, 1);
	assert_int_equal(dones[0].status, RDHPF_ERR_TIMEOUT);
	assert_string_equal(dones[0].detail, "inspect abc: timed out");
	assert_int_equal(rsdk_pending_count(&p), 1);
	assert_int_equal(timers_live, 1);
	rsdk_pending_cancel_all(&p);
	assert_int_equal(timers_live, 0);
	assert_int_equal(timers_run(1000), 0);
	assert_int_equal(n_done, 1);
}

static void
test_pending_cancel_all(void **state)
{
	struct rsdk_pending p;
	struct rsdk_op *a;

	(void)state;
	n_done = 0;
	rsdk_pending_init(&p, &H, NULL);
	a = rsdk_op_start(&p, on_done, (void *)1, 100, "a");
	assert_non_null(rsdk_op_start(&p, on_done, (void *)2, 0, "b"));
	assert_non_null(rsdk_op_start(&p, on_done, (void *)3, 0, "c"));
	/* An op already finished for later is cancelled too: no callback
	 * after a disconnect. */
	rsdk_op_finish_later(a, RDHPF_OK, NULL);
	assert_int_equal(rsdk_pending_count(&p), 3);
	rsdk_pending_cancel_all(&p);
	assert_int_equal(rsdk_pending_count(&p), 0);
	assert_int_equal(timers_live, 0);
	timers_run(UINT64_MAX);
	assert_int_equal(n_done, 0);
	/* A single cancel. */
	a = rsdk_op_start(&p, on_done, (void *)4, 10, "d");
	rsdk_op_cancel(a);
	assert_int_equal(timers_run(UINT64_MAX), 0);
	assert_int_equal(n_done, 0);
	assert_int_equal(rsdk_pending_count(&p), 0);
}

static void
test_pending_settle_later(void **state)
{
	struct rsdk_pending p;

	(void)state;
	n_done = 0;
	rsdk_pending_init(&p, &H, NULL);
	/* Nobody waits: no timer. */
	rsdk_pending_settle_later(&p, RDHPF_OK, NULL);
	assert_int_equal(timers_live, 0);
	assert_non_null(rsdk_op_start(&p, on_done, (void *)1, 0, "health"));
	assert_non_null(rsdk_op_start(&p, on_done, (void *)2, 0, "health"));
	/* An OK, then the link dies in the same turn: one answer, the error. */
	rsdk_pending_settle_later(&p, RDHPF_OK, NULL);
	char detail[] = "ssh session ended";
	rsdk_pending_settle_later(&p, RDHPF_ERR_CLOSED, detail);
	detail[0] = 'X';                               /* copied */
	rsdk_pending_settle_later(&p, RDHPF_OK, NULL); /* does not undo it */
	assert_int_equal(n_done, 0);
	assert_int_equal(timers_live, 1);
	assert_int_equal(timers_run(0), 1);
	assert_int_equal(n_done, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(dones[i].arg, i + 1);
		assert_int_equal(dones[i].status, RDHPF_ERR_CLOSED);
		assert_string_equal(dones[i].detail, "ssh session ended");
	}
	assert_int_equal(rsdk_pending_count(&p), 0);
	/* A later turn starts afresh: an OK is an OK again. */
	assert_non_null(rsdk_op_start(&p, on_done, (void *)3, 0, "health"));
	rsdk_pending_settle_later(&p, RDHPF_OK, NULL);
	assert_int_equal(timers_run(0), 1);
	assert_int_equal(n_done, 3);
	assert_int_equal(dones[2].status, RDHPF_OK);
	assert_string_equal(dones[2].detail, "");
	/* cancel_all takes the timer with it: no callback after a disconnect. */
	assert_non_null(rsdk_op_start(&p, on_done, (void *)4, 0, "health"));
	rsdk_pending_settle_later(&p, RDHPF_OK, NULL);
	rsdk_pending_cancel_all(&p);
	assert_int_equal(timers_live, 0);
	assert_int_equal(timers_run(UINT64_MAX), 0);
	assert_int_equal(n_done, 3);
}

static void
test_pending_fail_all(void **state)
{
	struct rsdk_pending p;

	(void)state;
	n_done = 0;
	rsdk_pending_init(&p, &H, NULL);
	assert_non_null(rsdk_op_start(&p, on_done, (void *)1, 100, "a"));
	assert_non_null(rsdk_op_start(&p, on_done, (void *)2, 0, "b"));
	assert_non_null(rsdk_op_start(&p, on_done, (void *)3, 0, "c"));
	/* The first callback starts an op: it is not failed with the rest. */
	reenter = &p;
	rsdk_pending_fail_all(&p, RDHPF_ERR_CLOSED, "link lost");
	assert_int_equal(n_done, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(dones[i].arg, i + 1); /* oldest first */
		assert_int_equal(dones[i].status, RDHPF_ERR_CLOSED);
		assert_string_equal(dones[i].detail, "link lost");
	}
	assert_int_equal(rsdk_pending_count(&p), 1);
	assert_int_equal(timers_live, 0);
	rsdk_pending_cancel_all(&p);
}

/* ---- collector ---- */

static struct {
	int calls, status, exit_code;
	char out[64];
	size_t len;
	char detail[64];
} col;

static void
on_collect(void *arg, int status, int exit_code, const char *detail, const char *out, size_t len)
{
	(void)arg;
	col.calls++;
	col.status = status;
	col.exit_code = exit_code;
	col.len = len;
	snprintf(col.out, sizeof col.out, "%s", out ? out : "(null)");
	snprintf(col.detail, sizeof col.detail, "%s", detail ? detail : "");
}

static void
test_collect(void **state)
{
	const char *argv[] = {"podman", "ps", NULL};
	struct rsdk_collect *c = NULL;

	(void)state;
	memset(&col, 0, sizeof col);
	assert_int_equal(rsdk_collect(&H, NULL, argv, 16, on_collect, NULL, &c), RDHPF_OK);
	assert_non_null(c);
	assert_string_equal(the_stream.argv0, "podman");
	stream_data("[{\"Id\":");
	stream_data("1}]");
	assert_int_equal(col.calls, 0);
	stream_end(RDHPF_OK, 3, "warning: x");
	assert_int_equal(col.calls, 1);
	assert_int_equal(col.status, RDHPF_OK);
	assert_int_equal(col.exit_code, 3);
	assert_string_equal(col.out, "[{\"Id\":1}]");
	assert_int_equal(col.len, 10);
	assert_string_equal(col.detail, "warning: x");

	/* Past max: PROTO and no output. */
	memset(&col, 0, sizeof col);
	assert_int_equal(rsdk_collect(&H, NULL, argv, 16, on_collect, NULL, &c), RDHPF_OK);
	stream_data("0123456789");
	stream_data("0123456789");
	stream_end(RDHPF_OK, 0, NULL);
	assert_int_equal(col.calls, 1);
	assert_int_equal(col.status, RDHPF_ERR_PROTO);
	assert_string_equal(col.out, "(null)");

	/* Cancel: the stream closes, no callback. */
	memset(&col, 0, sizeof col);
	assert_int_equal(rsdk_collect(&H, NULL, argv, 16, on_collect, NULL, &c), RDHPF_OK);
	stream_data("abc");
	rsdk_collect_cancel(c);
	assert_false(the_stream.open);
	assert_int_equal(col.calls, 0);

	exec_fail = 1;
	assert_int_equal(rsdk_collect(&H, NULL, argv, 16, on_collect, NULL, &c), RDHPF_ERR_NOTCONN);
	assert_null(c);
}

/* ---- guard ---- */

static void
test_guard(void **state)
{
	struct rsdk_guard g = {0};
	uint64_t gen;

	(void)state;
	rsdk_guard_enter(&g);
	gen = g.gen;
	assert_true(rsdk_guard_alive(&g, gen));
	rsdk_guard_bump(&g); /* stop() inside a callback */
	assert_false(rsdk_guard_alive(&g, gen));
	rsdk_guard_enter(&g);
	gen = g.gen;
	assert_int_equal(rsdk_guard_destroy(&g), 0); /* frames run: not yet */
	assert_false(rsdk_guard_alive(&g, gen));
	assert_int_equal(rsdk_guard_leave(&g), 0);
	assert_int_equal(rsdk_guard_leave(&g), 1); /* the outermost frees */

	struct rsdk_guard h = {0};
	assert_int_equal(rsdk_guard_destroy(&h), 1);
}

/* ---- JSON ---- */

static void
test_json(void **state)
{
	const char *doc = "{\"Id\":\"abc\",\"Config\":{\"Image\":\"nginx\",\"Labels\":{\"a\":\"1\","
	                  "\"n\":5,\"b\":\"2\"}},\"State\":{\"Pid\":42},\"Labels\":null}";
	char err[128];
	json_t *j;
	int64_t v = 0;
	struct rsdk_cont c;

	(void)state;
	j = rsdk_json_parse(doc, strlen(doc), err, sizeof err);
	assert_non_null(j);
	assert_string_equal(rsdk_json_str(j, "Id"), "abc");
	assert_null(rsdk_json_str(j, "Config"));
	assert_null(rsdk_json_str(NULL, "Id"));
	assert_non_null(rsdk_json_obj(j, "Config"));
	assert_null(rsdk_json_obj(j, "Labels"));
	assert_string_equal(rsdk_json_path_str(j, "Config.Image"), "nginx");
	assert_null(rsdk_json_path_str(j, "Config.Image.X"));
	assert_null(rsdk_json_path_str(j, "Config.Nope"));
	assert_int_equal(rsdk_json_path_int(j, "State.Pid", &v), RDHPF_OK);
	assert_int_equal(v, 42);
	assert_int_equal(rsdk_json_path_int(j, "Config.Image", &v), RDHPF_ERR_INVAL);
	assert_int_equal(rsdk_json_int(rsdk_json_obj(j, "State"), "Pid", &v), RDHPF_OK);

	assert_int_equal(rsdk_cont_init(&c, "abc", NULL), RDHPF_OK);
	assert_int_equal(rsdk_json_labels(&c, rsdk_json_path_obj(j, "Config.Labels")), RDHPF_OK);
	assert_int_equal(c.n_labels, 2); /* "n" is not a string */
	assert_int_equal(rsdk_json_labels(&c, json_object_get(j, "Labels")), RDHPF_OK);
	assert_int_equal(c.n_labels, 2);
	rsdk_cont_clear(&c);
	json_decref(j);

	assert_null(rsdk_json_parse("{\"a\":\n  [1,}", 13, err, sizeof err));
	assert_true(strncmp(err, "line 2, column ", 15) == 0);
}

/* Liveness: only answers count; probes go out once per tick; the deadline
 * is interval x count + interval/2 after the last answer; the kernel's
 * acknowledged bytes move the last answer only to the previous reading. */
static void
test_live(void **state)
{
	struct rsdk_live lv;
	char d[200];

	(void)state;
	rsdk_live_start(&lv, 1000, 3, 10000);
	assert_true(rsdk_live_on(&lv));
	assert_int_equal(rsdk_live_deadline(&lv), 13500);
	/* Idle link, answers come: one probe per tick, never dead. */
	for (uint64_t t = 11000; t <= 20000; t += 1000) {
		assert_int_equal(rsdk_live_tick(&lv, t), RSDK_LIVE_SEND);
		rsdk_live_sent(&lv, t);
		assert_int_equal(rsdk_live_answered(&lv, t + 7), 7);
	}
	assert_int_equal(rsdk_live_deadline(&lv), 20007 + 3500);
	/* The link goes dark at 20500: one probe out, then three ticks that
	 * find it out, dead at the deadline, within interval x (count + 1). */
	assert_int_equal(rsdk_live_tick(&lv, 21000), RSDK_LIVE_SEND);
	rsdk_live_sent(&lv, 21000);
	assert_int_equal(rsdk_live_tick(&lv, 22000), RSDK_LIVE_WAIT);
	assert_int_equal(rsdk_live_tick(&lv, 23000), RSDK_LIVE_WAIT);
	assert_false(rsdk_live_dead(&lv, 23506));
	assert_true(rsdk_live_dead(&lv, 23507));
	assert_true(23507 - 20500 <= 4000);
	assert_int_equal(rsdk_live_tick(&lv, 24000), RSDK_LIVE_DEAD);
	assert_int_equal(lv.unanswered, 2);
	rsdk_live_describe(&lv, 24000, d, sizeof d);
	assert_string_equal(d, "no answer for 3993 ms (keepalive_interval 1000 ms x "
	                       "keepalive_count 3; 2 probes unanswered)");
	/* A late answer still counts, and resets the unanswered count. */
	assert_int_equal(rsdk_live_answered(&lv, 24100), 3100);
	assert_int_equal(lv.unanswered, 0);
	assert_false(rsdk_live_dead(&lv, 24100));
	/* An answer with no probe out: -1, but it is an answer. */
	assert_int_equal(rsdk_live_answered(&lv, 25000), -1);
	assert_int_equal(rsdk_live_deadline(&lv), 28500);
	/* A lost probe: the next tick sends again. */
	rsdk_live_sent(&lv, 26000);
	rsdk_live_lost(&lv);
	assert_int_equal(rsdk_live_tick(&lv, 27000), RSDK_LIVE_SEND);

	/* TCP counts: the first reading proves nothing; bytes received since
	 * the last reading, with ours acknowledged since or none being lost,
	 * move the last answer to that reading, not to now; bytes received
	 * while ours time out (a one-way link) or ours acknowledged with
	 * nothing received prove nothing. */
	rsdk_live_start(&lv, 1000, 3, 0);
	rsdk_live_tcp(&lv, 100, 100, false, 1000);
	assert_int_equal(lv.last_ms, 0);
	rsdk_live_tcp(&lv, 100, 900, true, 2000); /* received, ours timing out */
	assert_int_equal(lv.last_ms, 0);
	rsdk_live_tcp(&lv, 500, 900, false, 3000); /* only acked grew */
	assert_int_equal(lv.last_ms, 0);
	rsdk_live_tcp(&lv, 600, 1000, true, 4000); /* both grew, after the 3000 reading */
	assert_int_equal(lv.last_ms, 3000);
	rsdk_live_tcp(&lv, 600, 1000, false, 5000); /* nothing new */
	assert_int_equal(lv.last_ms, 3000);
	rsdk_live_tcp(&lv, 600, 1200, false, 6000); /* received, nothing lost */
	assert_int_equal(lv.last_ms, 5000);
	assert_true(rsdk_live_dead(&lv, 8500));
	/* An answer later than a reading wins; an older proof never moves
	 * the last answer back. */
	rsdk_live_answered(&lv, 6500);
	rsdk_live_tcp(&lv, 700, 1300, false, 6600); /* proof at 6000 < 6500 */
	assert_int_equal(lv.last_ms, 6500);

	/* Off: never dead, whatever the time. */
	rsdk_live_start(&lv, 0, 3, 0);
	assert_false(rsdk_live_on(&lv));
	assert_false(rsdk_live_dead(&lv, 1000000));
	rsdk_live_start(&lv, 1000, 0, 0);
	assert_false(rsdk_live_dead(&lv, 1000000));
}

/* rsdk_tcp_counts on a real loopback TCP pair: acked grows as the peer's
 * kernel acknowledges what we send, received as we receive; on a Unix
 * socket it says -1. */
static void
test_tcp_counts(void **state)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	int l, c, s, sv[2];
	uint64_t a0 = 0, a1 = 0, r0 = 0, r1 = 0;
	bool u = true;
	char buf[4096];

	(void)state;
	memset(buf, 'x', sizeof buf);
	l = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
	c = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof a), 0);
	s = accept(l, NULL, NULL);
	assert_true(s >= 0);
	assert_int_equal(rsdk_tcp_counts(c, &a0, &r0, &u), 0);
	assert_int_equal(send(c, buf, sizeof buf, 0), (ssize_t)sizeof buf);
	/* The receiver's kernel acknowledges once it has the bytes. */
	assert_int_equal(recv(s, buf, sizeof buf, MSG_WAITALL), (ssize_t)sizeof buf);
	for (int i = 0; i < 200 && a1 < a0 + sizeof buf; i++) {
		assert_int_equal(rsdk_tcp_counts(c, &a1, &r1, &u), 0);
		if (a1 < a0 + sizeof buf)
			usleep(5000);
	}
	assert_true(a1 >= a0 + sizeof buf);
	assert_int_equal(send(s, buf, 100, 0), 100);
	assert_int_equal(recv(c, buf, 100, MSG_WAITALL), 100);
	assert_int_equal(rsdk_tcp_counts(c, &a1, &r1, &u), 0);
	assert_true(r1 >= r0 + 100);
	assert_false(u); /* nothing lost on loopback */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(rsdk_tcp_counts(sv[0], &a1, &r1, &u), -1);
	close(sv[0]);
	close(sv[1]);
	close(s);
	close(c);
	close(l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_buf, setup),
	    cmocka_unit_test_setup(test_printable, setup),
	    cmocka_unit_test_setup(test_lines_crlf_and_split, setup),
	    cmocka_unit_test_setup(test_lines_oversized, setup),
	    cmocka_unit_test_setup(test_lines_finish_and_stop, setup),
	    cmocka_unit_test_setup(test_parse_port, setup),
	    cmocka_unit_test_setup(test_parse_ranges, setup),
	    cmocka_unit_test_setup(test_parse_duration, setup),
	    cmocka_unit_test_setup(test_parse_bool, setup),
	    cmocka_unit_test_setup(test_check_name_path_enum, setup),
	    cmocka_unit_test_setup(test_cont, setup),
	    cmocka_unit_test_setup(test_cset, setup),
	    cmocka_unit_test_setup(test_cset_diff, setup),
	    cmocka_unit_test_setup(test_list_reply, setup),
	    cmocka_unit_test_setup(test_emit, setup),
	    cmocka_unit_test_setup(test_pending_finish, setup),
	    cmocka_unit_test_setup(test_pending_timeout, setup),
	    cmocka_unit_test_setup(test_pending_cancel_all, setup),
	    cmocka_unit_test_setup(test_pending_fail_all, setup),
	    cmocka_unit_test_setup(test_pending_settle_later, setup),
	    cmocka_unit_test_setup(test_collect, setup),
	    cmocka_unit_test_setup(test_guard, setup),
	    cmocka_unit_test_setup(test_json, setup),
	    cmocka_unit_test_setup(test_live, setup),
	    cmocka_unit_test_setup(test_tcp_counts, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
