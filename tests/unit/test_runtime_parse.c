/* The runtime plugins' pure parsing layer (plugins/runtime-common/rtparse.c,
 * compiled in): recorded engine output from unit/samples, and crafted bytes
 * a hostile or broken remote could send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "rdhpf/sdk.h"
#include "rtparse.h"

#ifndef RT_SAMPLES
#error "RT_SAMPLES must name the samples directory"
#endif

#define ID_A "7c1d9e0b4f2a4c8e9d3b5a6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3"
#define ID_B "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* ---- helpers ---- */

struct diags {
	int warn, debug, other;
	char last[256];
	uint64_t dropped; /* port mappings past RT_MAX_PORTS */
};

static void
dropped_fn(void *arg, const char *id, uint64_t n)
{
	struct diags *d = arg;

	(void)id;
	d->dropped += n;
}

static void
diag_fn(void *arg, int level, const char *msg, const char *id, const char *detail)
{
	struct diags *d = arg;

	if (level == RDHPF_LOG_WARN)
		d->warn++;
	else if (level == RDHPF_LOG_DEBUG)
		d->debug++;
	else
		d->other++;
	snprintf(d->last, sizeof d->last, "%s [%s] %s", msg, id ? id : "-", detail ? detail : "-");
}

static struct rt_diag
mkdiag(struct diags *d)
{
	struct rt_diag r = {.fn = diag_fn, .arg = d, .dropped = dropped_fn};
	memset(d, 0, sizeof *d);
	return r;
}

static char *
slurp(const char *name, size_t *len)
{
	char path[1024];
	FILE *fp;
	char *buf;
	long n;

	snprintf(path, sizeof path, "%s/%s", RT_SAMPLES, name);
	fp = fopen(path, "rb");
	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	assert_true(n >= 0);
	rewind(fp);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	buf[n] = '\0';
	fclose(fp);
	*len = (size_t)n;
	return buf;
}

static const struct rsdk_port *
find_port(const struct rsdk_cont *c, const char *ip, int hp, int proto)
{
	for (size_t i = 0; i < c->n_ports; i++)
		if (c->ports[i].host_port == hp && c->ports[i].proto == proto &&
		    strcmp(c->ports[i].ip, ip) == 0)
			return &c->ports[i];
	return NULL;
}

static const struct rsdk_cont *
find_cont(const struct rsdk_cset *cs, const char *name)
{
	for (size_t i = 0; i < cs->n; i++)
		if (strcmp(cs->v[i].name, name) == 0)
			return &cs->v[i];
	return NULL;
}

static const char *
label(const struct rsdk_cont *c, const char *key)
{
	for (size_t i = 0; i < c->n_labels; i++)
		if (strcmp(c->labels[i].key, key) == 0)
			return c->labels[i].value;
	return NULL;
}

/* ---- ids, ports, time ---- */

static void
test_valid_id(void **s)
{
	(void)s;
	assert_true(rt_valid_id(ID_A, 64));
	assert_true(rt_valid_id("0123456789ab", 12));
	assert_false(rt_valid_id("0123456789a", 11));
	assert_false(rt_valid_id(ID_A "0", 65));
	assert_false(rt_valid_id("0123456789AB", 12));
	assert_false(rt_valid_id("../../etc/passwd", 16));
	assert_false(rt_valid_id("0123456789ab; rm -rf /", 22));
	assert_false(rt_valid_id("0123456789ab\n", 13));
	assert_false(rt_valid_id("", 0));
}

static void
test_port_str(void **s)
{
	(void)s;
	assert_int_equal(rt_port_str("1", 1), 1);
	assert_int_equal(rt_port_str("65535", 5), 65535);
	assert_int_equal(rt_port_str("0", 1), -1);
	assert_int_equal(rt_port_str("65536", 5), -1);
	assert_int_equal(rt_port_str("70000", 5), -1);
	assert_int_equal(rt_port_str("-1", 2), -1);
	assert_int_equal(rt_port_str("+80", 3), -1);
	assert_int_equal(rt_port_str("80 ", 3), -1);
	assert_int_equal(rt_port_str("0000080", 7), -1);
	assert_int_equal(rt_port_str("", 0), -1);
	assert_int_equal(rt_proto("tcp", 3), RDHPF_PROTO_TCP);
	assert_int_equal(rt_proto("udp", 3), RDHPF_PROTO_UDP);
	assert_int_equal(rt_proto("sctp", 4), RDHPF_PROTO_SCTP);
	assert_int_equal(rt_proto("TCP", 3), 0);
	assert_int_equal(rt_proto("tcpx", 4), 0);
}

static void
test_rfc3339(void **s)
{
	int64_t t;
	(void)s;
	assert_int_equal(rt_rfc3339_ns("1970-01-01T00:00:00Z", &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(rt_rfc3339_ns("2026-11-28T03:29:31.16979903Z", &t), 0);
	assert_int_equal(t, 1795836571169799030LL);
	/* podman 4.x prints local time with an offset */
	assert_int_equal(rt_rfc3339_ns("2026-11-27T22:29:31.16979903-05:00", &t), 0);
	assert_int_equal(t, 1795836571169799030LL);
	assert_int_equal(rt_rfc3339_ns("2026-11-28T05:29:31+02:00", &t), 0);
	assert_int_equal(t, 1795836571000000000LL);
	assert_int_equal(rt_rfc3339_ns("2024-02-29T12:00:00.123Z", &t), 0);
	assert_int_equal(t, 1709208000123000000LL);
	assert_int_equal(rt_rfc3339_ns("2023-02-29T12:00:00Z", &t), -1);
	assert_int_equal(rt_rfc3339_ns("2026-13-01T00:00:00Z", &t), -1);
	assert_int_equal(rt_rfc3339_ns("2026-11-28T03:29:31", &t), -1);
	assert_int_equal(rt_rfc3339_ns("2026-11-28T03:29:31.Z", &t), -1);
	assert_int_equal(rt_rfc3339_ns("2026-11-28T03:29:31Zjunk", &t), -1);
	assert_int_equal(rt_rfc3339_ns("yesterday", &t), -1);
	assert_int_equal(rt_rfc3339_ns(NULL, &t), -1);
}

static void
test_http_date(void **s)
{
	int64_t t;
	(void)s;
	assert_int_equal(rt_http_date("Sat, 28 Nov 2026 03:30:10 GMT", &t), 0);
	assert_int_equal(t, 1795836610);
	assert_int_equal(rt_http_date("Sun, 06 Nov 1994 08:49:37 GMT", &t), 0);
	assert_int_equal(t, 784111777);
	assert_int_equal(rt_http_date("Thu, 01 Jan 1970 00:00:00 GMT", &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(rt_http_date("Sat, 28 Nov 2026 03:30:10 UTC", &t), -1);
	assert_int_equal(rt_http_date("Sat, 28 Foo 2026 03:30:10 GMT", &t), -1);
	assert_int_equal(rt_http_date("Saturday, 28-Nov-26 03:30:10 GMT", &t), -1);
}

/* ---- line splitting ---- */

struct lines_seen {
	int n, stop_after;
	char last[64];
	size_t last_len;
};

static int
line_cb(void *arg, const char *line, size_t len)
{
	struct lines_seen *ls = arg;

	if (len == 0)
		return 0; /* the event readers skip empty lines */
	ls->n++;
	ls->last_len = len;
	snprintf(ls->last, sizeof ls->last, "%.*s", (int)(len < 63 ? len : 63), line);
	return ls->stop_after && ls->n >= ls->stop_after;
}

static void
test_lines_basic(void **s)
{
	struct rsdk_lines l;
	struct lines_seen ls = {0};
	(void)s;

	rsdk_lines_init(&l, 16);
	assert_int_equal(rsdk_lines_feed(&l, "a\nbb\r\n\n\nccc", 11, line_cb, &ls), 0);
	assert_int_equal(ls.n, 2);
	assert_string_equal(ls.last, "bb");
	assert_int_equal(rsdk_lines_feed(&l, "c", 1, line_cb, &ls), 0);
	assert_int_equal(ls.n, 2);
	assert_int_equal(rsdk_lines_feed(&l, "\n", 1, line_cb, &ls), 0);
	assert_int_equal(ls.n, 3);
	assert_string_equal(ls.last, "cccc");
	/* byte by byte */
	const char *t = "xyz\r\nq\n";
	for (size_t i = 0; i < strlen(t); i++)
		assert_int_equal(rsdk_lines_feed(&l, t + i, 1, line_cb, &ls), 0);
	assert_int_equal(ls.n, 5);
	assert_string_equal(ls.last, "q");
	/* the callback can stop the feed */
	ls.stop_after = 6;
	assert_int_equal(rsdk_lines_feed(&l, "1\n2\n3\n", 6, line_cb, &ls), 1);
	assert_int_equal(ls.n, 6);
	rsdk_lines_free(&l);
}

static void
test_lines_oversized(void **s)
{
	struct rsdk_lines l;
	struct lines_seen ls = {0};
	size_t big = 2u * 1024 * 1024;
	char *buf = malloc(big + 64);
	(void)s;

	assert_non_null(buf);
	rsdk_lines_init(&l, RT_LINE_MAX);
	/* A 2 MiB line in pieces, then a good one: dropped once, stream goes on. */
	memset(buf, 'x', big);
	for (size_t off = 0; off < big; off += 65536)
		assert_int_equal(rsdk_lines_feed(&l, buf + off, 65536, line_cb, &ls), 0);
	assert_int_equal(l.oversized, 1);
	assert_int_equal(rsdk_lines_feed(&l, "tail-of-big\n{\"ok\":1}\n", 21, line_cb, &ls), 0);
	assert_int_equal(l.oversized, 1);
	assert_int_equal(ls.n, 1);
	assert_string_equal(ls.last, "{\"ok\":1}");
	/* The same in one buffer with its newline. */
	memcpy(buf + big, "\nnext\n", 6);
	assert_int_equal(rsdk_lines_feed(&l, buf, big + 6, line_cb, &ls), 0);
	assert_int_equal(l.oversized, 2);
	assert_int_equal(ls.n, 2);
	assert_string_equal(ls.last, "next");
	/* Exactly the limit is fine. */
	memset(buf, 'y', RT_LINE_MAX);
	buf[RT_LINE_MAX] = '\n';
	assert_int_equal(rsdk_lines_feed(&l, buf, 10, line_cb, &ls), 0);
	assert_int_equal(rsdk_lines_feed(&l, buf + 10, RT_LINE_MAX + 1 - 10, line_cb, &ls), 0);
	assert_int_equal(l.oversized, 2);
	assert_int_equal(ls.n, 3);
	assert_int_equal(ls.last_len, RT_LINE_MAX);
	rsdk_lines_free(&l);
	free(buf);
}

/* ---- HTTP ---- */

struct resp {
	int status;
	int64_t date;
	char *body;
	size_t len;
};

static int
body_cb(void *arg, const char *buf, size_t len)
{
	struct resp *r = arg;
	r->body = realloc(r->body, r->len + len + 1);
	assert_non_null(r->body);
	memcpy(r->body + r->len, buf, len);
	r->len += len;
	r->body[r->len] = '\0';
	return 0;
}

/* Parse every response in buf, fed step bytes at a time. */
static size_t
parse_all(const char *buf, size_t len, size_t step, struct resp *out, size_t max)
{
	struct rt_http h;
	size_t n = 0, off = 0;

	rt_http_reset(&h);
	memset(out, 0, max * sizeof *out);
	while (off < len) {
		size_t chunk = len - off < step ? len - off : step;
		size_t c = 0;
		for (;;) {
			size_t used;
			const char *why;
			int rc = rt_http_feed(&h, buf + off + c, chunk - c, &used, body_cb, &out[n],
			                      &why);
			c += used;
			assert_int_not_equal(rc, RT_HTTP_ERR);
			if (rc == RT_HTTP_MORE)
				break;
			if (rc == RT_HTTP_HEAD) {
				out[n].status = h.status;
				out[n].date = h.date;
			}
			if (rc == RT_HTTP_DONE) {
				n++;
				assert_true(n <= max);
				rt_http_reset(&h);
			}
		}
		off += chunk;
	}
	return n;
}

static void
resps_free(struct resp *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(r[i].body);
}

static void
test_http_pipelined_sample(void **s)
{
	size_t len, steps[] = {1, 7, 4096, 1u << 20};
	char *raw = slurp("docker-20.10-api.http", &len);
	(void)s;

	for (size_t k = 0; k < sizeof steps / sizeof *steps; k++) {
		struct resp r[4];
		size_t n = parse_all(raw, len, steps[k], r, 4);
		assert_int_equal(n, 4);
		assert_int_equal(r[0].status, 200);
		assert_int_equal(r[0].date, 1795836610);
		assert_int_equal(r[0].len, 0xd06);
		assert_int_equal(r[1].status, 200);
		assert_int_equal(r[1].len, 0x154e);
		assert_int_equal(r[2].status, 404);
		assert_int_equal(r[2].len, 50);
		assert_int_equal(r[3].status, 200);
		assert_string_equal(r[3].body, "OK");
		resps_free(r, n);
	}
	free(raw);
}

static void
test_http_events_stream(void **s)
{
	size_t len;
	char *raw = slurp("docker-20.10-events.http", &len);
	struct resp r[1];
	struct rsdk_lines l;
	struct lines_seen ls = {0};
	(void)s;

	assert_int_equal(parse_all(raw, len, 13, r, 1), 1);
	assert_int_equal(r[0].status, 200);
	rsdk_lines_init(&l, RT_LINE_MAX);
	assert_int_equal(rsdk_lines_feed(&l, r[0].body, r[0].len, line_cb, &ls), 0);
	assert_int_equal(ls.n, 19);
	rsdk_lines_free(&l);
	resps_free(r, 1);
	free(raw);
}

static int
http_one(const char *text, struct rt_http *h, const char **why)
{
	size_t off = 0, len = strlen(text);
	int rc = RT_HTTP_MORE;

	rt_http_reset(h);
	for (;;) {
		size_t used;
		rc = rt_http_feed(h, text + off, len - off, &used, NULL, NULL, why);
		off += used;
		if (rc != RT_HTTP_HEAD)
			return rc;
	}
}

static void
test_http_malformed(void **s)
{
	struct rt_http h;
	const char *why;
	(void)s;

	assert_int_equal(http_one("HTTP/1.1 2x0 OK\r\n\r\n", &h, &why), RT_HTTP_ERR);
	assert_non_null(why);
	assert_int_equal(http_one("SSH-2.0-OpenSSH_9.2\r\n", &h, &why), RT_HTTP_ERR);
	assert_int_equal(http_one("HTTP/1.1 200 OK\r\nno colon\r\n\r\n", &h, &why), RT_HTTP_ERR);
	assert_int_equal(http_one("HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n", &h, &why),
	                 RT_HTTP_ERR);
	assert_int_equal(
	    http_one("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", &h,
	             &why),
	    RT_HTTP_ERR);
	assert_int_equal(
	    http_one("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", &h, &why),
	    RT_HTTP_ERR);
	assert_int_equal(
	    http_one("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", &h, &why),
	    RT_HTTP_ERR);
	assert_int_equal(
	    http_one("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n",
	             &h, &why),
	    RT_HTTP_ERR);
	assert_int_equal(
	    http_one("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n", &h, &why),
	    RT_HTTP_ERR);
	assert_int_equal(http_one("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", &h, &why),
	                 RT_HTTP_ERR);
	/* An endless head is refused, not buffered. */
	size_t big = RT_HTTP_HEAD_MAX + 100;
	char *t = malloc(big + 1);
	assert_non_null(t);
	memcpy(t, "HTTP/1.1 200 OK\r\n", 17);
	for (size_t i = 17; i < big; i += 10)
		memcpy(t + i, "X-A: bbbb\n", big - i < 10 ? big - i : 10);
	t[big] = '\0';
	assert_int_equal(http_one(t, &h, &why), RT_HTTP_ERR);
	/* A header line longer than the line buffer. */
	memset(t + 17, 'a', RT_HTTP_LINE_MAX + 10);
	t[17 + RT_HTTP_LINE_MAX + 10] = '\0';
	assert_int_equal(http_one(t, &h, &why), RT_HTTP_ERR);
	free(t);
}

static void
test_http_framing(void **s)
{
	struct rt_http h;
	const char *why;
	struct resp r[2];
	(void)s;

	/* 100 Continue, chunk extensions, trailers, HTTP/1.0 */
	const char *t = "HTTP/1.1 100 Continue\r\n\r\n"
	                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	                "3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n"
	                "HTTP/1.1 204 No Content\r\n\r\n";
	assert_int_equal(parse_all(t, strlen(t), 5, r, 2), 2);
	assert_int_equal(r[0].status, 200);
	assert_string_equal(r[0].body, "abcde");
	assert_int_equal(r[1].status, 204);
	assert_int_equal(r[1].len, 0);
	resps_free(r, 2);
	/* A body that runs to the end of the connection. */
	assert_int_equal(http_one("HTTP/1.0 200 OK\r\n\r\nhello", &h, &why), RT_HTTP_MORE);
	assert_true(h.until_eof);
	assert_true(h.conn_close);
	assert_int_equal(rt_http_eof(&h), RT_HTTP_DONE);
	/* A truncated response is not complete at EOF. */
	assert_int_equal(http_one("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel", &h, &why),
	                 RT_HTTP_MORE);
	assert_int_equal(rt_http_eof(&h), RT_HTTP_ERR);
	assert_int_equal(http_one("HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\n"
	                          "Content-Length: 0\r\n\r\n",
	                          &h, &why),
	                 RT_HTTP_DONE);
	assert_true(h.conn_close);
	rt_http_reset(&h);
	assert_true(rt_http_idle(&h));
}

/* ---- Docker ---- */

static void
test_docker_events_sample(void **s)
{
	size_t len;
	char *buf = slurp("docker-20.10-events.jsonl", &len);
	struct diags dg;
	struct rt_diag d = mkdiag(&dg);
	int starts = 0, stops = 0, ignored = 0;
	char *save = NULL;
	(void)s;

	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct rt_event ev = {0};
		assert_int_equal(
		    (rt_event_clear(&ev), rt_docker_event(line, strlen(line), &ev, &d)), 0);
		assert_true(rt_valid_id(ev.c.id, strlen(ev.c.id)));
		assert_true(ev.time_ns > 1795836600000000000LL);
		if (ev.kind == RT_EV_START)
			starts++;
		else if (ev.kind == RT_EV_STOP)
			stops++;
		else
			ignored++;
		if (strcmp(ev.action, "start") == 0 && strcmp(ev.c.name, "rtp-a") == 0)
			assert_string_equal(
			    ev.c.id,
			    "ec8f408c96a72b94a6195c61dfd692e310bc9a5d9e5bb4209ddca8d48817e805");
		rt_event_clear(&ev);
	}
	/* start ×8; die ×8 + stop ×2 + destroy ×7; kill, exec_*, restart, pause… ignored */
	assert_int_equal(starts, 8);
	assert_int_equal(stops, 17);
	assert_int_equal(ignored, 24);
	assert_int_equal(dg.warn, 0);
	free(buf);
}

static void
test_docker_events_crafted(void **s)
{
	struct diags dg;
	struct rt_diag d = mkdiag(&dg);
	struct rt_event ev = {0};
	const char *l;
	(void)s;

	/* Old style: only status/id/from, no Actor. */
	l = "{\"status\":\"die\",\"id\":\"" ID_A "\",\"from\":\"busybox\",\"time\":1700000000}";
	assert_int_equal((rt_event_clear(&ev), rt_docker_event(l, strlen(l), &ev, &d)), 0);
	assert_int_equal(ev.kind, RT_EV_STOP);
	assert_string_equal(ev.c.id, ID_A);
	assert_int_equal(ev.time_ns, 1700000000000000000LL);
	/* A leading "/" in a name goes. */
	l = "{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":\"" ID_B
	    "\",\"Attributes\":{\"name\":\"/web\"}},\"timeNano\":1700000000000000001}";
	assert_int_equal((rt_event_clear(&ev), rt_docker_event(l, strlen(l), &ev, &d)), 0);
	assert_int_equal(ev.kind, RT_EV_START);
	assert_string_equal(ev.c.name, "web");
	assert_int_equal(ev.time_ns, 1700000000000000001LL);
	/* Unknown actions and other types: valid, ignored. */
	l = "{\"Type\":\"container\",\"Action\":\"health_status: "
	    "healthy\",\"Actor\":{\"ID\":\"" ID_A "\"}}";
	assert_int_equal((rt_event_clear(&ev), rt_docker_event(l, strlen(l), &ev, &d)), 0);
	assert_int_equal(ev.kind, RT_EV_IGNORE);
	l = "{\"Type\":\"container\",\"Action\":\"teleport\",\"Actor\":{\"ID\":\"" ID_A "\"}}";
	assert_int_equal((rt_event_clear(&ev), rt_docker_event(l, strlen(l), &ev, &d)), 0);
	assert_int_equal(ev.kind, RT_EV_IGNORE);
	l = "{\"Type\":\"network\",\"Action\":\"connect\",\"Actor\":{\"ID\":\"not-hex!\"}}";
	assert_int_equal((rt_event_clear(&ev), rt_docker_event(l, strlen(l), &ev, &d)), 0);
	assert_int_equal(ev.kind, RT_EV_IGNORE);
	assert_int_equal(dg.warn, 0);
	/* Malformed: each logged, none fatal. */
	const char *bad[] = {
	    "{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":\"" ID_A, /* truncated
	                                                                               */
	    "{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":\"$(reboot)\"}}",
	    "{\"Type\":\"container\",\"Action\":\"start\",\"Actor\":{\"ID\":\"ABCDEF0123456789\"}}",
	    "{\"Type\":\"container\",\"Action\":\"start\"}",
	    "{\"Type\":\"container\",\"Actor\":{\"ID\":\"" ID_A "\"}}",
	    "[1,2,3]",
	    "\"start\"",
	    "",
	    "{\"Action\":\"start\",\"id\":12345678901234}",
	    "\xff\xfe{\"x\":1}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		int before = dg.warn;
		assert_int_equal(
		    (rt_event_clear(&ev), rt_docker_event(bad[i], strlen(bad[i]), &ev, &d)), -1);
		assert_int_equal(dg.warn, before + 1);
	}
	/* Deep nesting is refused by the parser's depth limit, not the stack. */
	size_t depth = 100000;
	char *deep = malloc(depth * 2 + 1);
	assert_non_null(deep);
	memset(deep, '[', depth);
	memset(deep + depth, ']', depth);
	assert_int_equal((rt_event_clear(&ev), rt_docker_event(deep, depth * 2, &ev, &d)), -1);
	free(deep);
	rt_event_clear(&ev);
}

/* The bodies of the pipelined sample: list, inspect, 404, ping. */
static void
sample_bodies(struct resp r[4])
{
	size_t len;
	char *raw = slurp("docker-20.10-api.http", &len);
	assert_int_equal(parse_all(raw, len, 1u << 20, r, 4), 4);
	free(raw);
}

static void
test_docker_list_sample(void **s)
{
	struct resp r[4];
	struct rsdk_cset cs = RSDK_CSET_INIT;
	struct diags dg;
	struct rt_diag d = mkdiag(&dg);
	const struct rsdk_cont *c;
	(void)s;

	sample_bodies(r);
	assert_int_equal(rt_docker_list(r[0].body, r[0].len, &cs, &d), 0);
	assert_int_equal(cs.n, 3);
	/* rtp-web: -p 18301:80, -p 18302 (ephemeral), 83/udp, 84-85, -P --expose 99 */
	c = find_cont(&cs, "rtp-web");
	assert_non_null(c);
	assert_string_equal(c->id,
	                    "eeff8470554df1a2c974a0dfda6f649ee17a7d39e132e59764112267eb529aee");
	assert_int_equal(c->n_ports, 11);
	/* dual-stack duplicates are both reported: the core dedupes */
	assert_non_null(find_port(c, "0.0.0.0", 18301, RDHPF_PROTO_TCP));
	assert_non_null(find_port(c, "::", 18301, RDHPF_PROTO_TCP));
	assert_int_equal(find_port(c, "::", 18301, RDHPF_PROTO_TCP)->container_port, 80);
	assert_non_null(find_port(c, "0.0.0.0", 32768, RDHPF_PROTO_TCP)); /* ephemeral */
	assert_non_null(find_port(c, "0.0.0.0", 32769, RDHPF_PROTO_TCP)); /* -P */
	assert_non_null(find_port(c, "127.0.0.1", 18303, RDHPF_PROTO_UDP));
	assert_non_null(find_port(c, "::", 18305, RDHPF_PROTO_TCP));
	/* exposed only: nothing */
	c = find_cont(&cs, "rtp-noport");
	assert_non_null(c);
	assert_int_equal(c->n_ports, 0);
	/* HostIp respected */
	c = find_cont(&cs, "rtp-v6");
	assert_non_null(c);
	assert_int_equal(c->n_ports, 2);
	assert_non_null(find_port(c, "::1", 18310, RDHPF_PROTO_TCP));
	assert_non_null(find_port(c, "127.0.0.1", 18311, RDHPF_PROTO_TCP));
	assert_int_equal(dg.warn, 0);
	assert_int_equal(dg.debug, 1); /* the UDP mapping */

	/* The image as listed; the sample's labels are empty. */
	assert_string_equal(c->image, "rdhpf-lab/busybox:latest");
	assert_int_equal(c->n_labels, 0);
	rsdk_cset_free(&cs);
	resps_free(r, 4);
}

static void
test_docker_inspect_sample(void **s)
{
	struct resp r[4];
	struct rsdk_cset cs = RSDK_CSET_INIT;
	struct diags dg;
	struct rt_diag d = mkdiag(&dg);
	char msg[128];
	(void)s;

	sample_bodies(r);
	assert_int_equal(rt_inspect(r[1].body, r[1].len, 1, &cs, &d), 0);
	assert_int_equal(cs.n, 1);
	assert_string_equal(cs.v[0].name, "rtp-web");
	assert_int_equal(cs.v[0].n_ports, 11);
	assert_non_null(find_port(&cs.v[0], "::", 32768, RDHPF_PROTO_TCP));
	assert_int_equal(find_port(&cs.v[0], "::", 32768, RDHPF_PROTO_TCP)->container_port, 18302);
	assert_non_null(find_port(&cs.v[0], "127.0.0.1", 18303, RDHPF_PROTO_UDP));
	rsdk_cset_free(&cs);
	/* The 404 body's reason. */
	rt_api_error(r[2].body, r[2].len, msg, sizeof msg);
	assert_string_equal(msg, "No such container: 0000000000000000");
	rt_api_error("plain text\n", 11, msg, sizeof msg);
	assert_string_equal(msg, "plain text");
	rt_api_error("\x1b[31mred", 8, msg, sizeof msg);
	assert_string_equal(msg, "?[31mred");
	resps_free(r, 4);
}

static void
test_docker_ports_crafted(void **s)
{
	struct rsdk_cset cs = RSDK_CSET_INIT;
	struct diags dg;
	struct rt_diag d = mkdiag(&dg);
	(void)s;

	const char *list =
	    "[{\"Id\":\"" ID_A "\",\"Names\":[\"/a\"],\"Ports\":["
	    "{\"IP\":\"0.0.0.0\",\"PrivatePort\":80,\"PublicPort\":0,\"Type\":\"tcp\"},"
	    "{\"IP\":\"0.0.0.0\",\"PrivatePort\":80,\"PublicPort\":70000,\"Type\":\"tcp\"},"
	    "{\"IP\":\"0.0.0.0\",\"PrivatePort\":0,\"PublicPort\":8080,\"Type\":\"tcp\"},"
	    "{\"IP\":\"0.0.0.0\",\"PrivatePort\":80,\"PublicPort\":-1,\"Type\":\"tcp\"},"
	    "{\"IP\":\"0.0.0.0\",\"PrivatePort\":80,\"PublicPort\":\"8081\",\"Type\":\"tcp\"},"
	    "{\"IP\":\"0.0.0.0\",\"PrivatePort\":80,\"PublicPort\":8082.5,\"Type\":\"tcp\"},"
	    "{\"IP\":\"0.0.0.0\",\"PrivatePort\":80,\"PublicPort\":8083,\"Type\":\"quic\"},"
	    "{\"PrivatePort\":80,\"PublicPort\":8084},"
	    "{\"IP\":\"0.0.0.0\",\"PrivatePort\":53,\"PublicPort\":5353,\"Type\":\"udp\"},"
	    "{\"IP\":\"0.0.0.0\",\"PrivatePort\":80,\"PublicPort\":8085,\"Type\":\"tcp\"},"
	    "{\"IP\":\"::\",\"PrivatePort\":80,\"PublicPort\":8085,\"Type\":\"tcp\"}]},"
	    "{\"Id\":\"../../x\",\"Names\":[\"/evil\"],\"Ports\":[]},"
	    "{\"Names\":[\"/noid\"]},"
	    "42,"
	    "{\"Id\":\"" ID_B "\",\"Names\":[],\"Ports\":null}]";
	assert_int_equal(rt_docker_list(list, strlen(list), &cs, &d), 0);
	assert_int_equal(cs.n, 2);
	assert_string_equal(cs.v[0].name, "a");
	/* kept: "8081" (string), 8084 (no IP/Type: tcp on ""), 5353/udp, 8085 twice */
	assert_int_equal(cs.v[0].n_ports, 5);
	assert_non_null(find_port(&cs.v[0], "0.0.0.0", 8081, RDHPF_PROTO_TCP));
	assert_non_null(find_port(&cs.v[0], "", 8084, RDHPF_PROTO_TCP));
	assert_non_null(find_port(&cs.v[0], "0.0.0.0", 5353, RDHPF_PROTO_UDP));
	assert_non_null(find_port(&cs.v[0], "0.0.0.0", 8085, RDHPF_PROTO_TCP));
	assert_non_null(find_port(&cs.v[0], "::", 8085, RDHPF_PROTO_TCP));
	assert_null(find_port(&cs.v[0], "0.0.0.0", 0, RDHPF_PROTO_TCP));
	/* port 0, 70000, private 0, -1, 8082.5; two bad ids */
	assert_int_equal(dg.warn, 7);
	assert_string_equal(cs.v[1].name, ID_B); /* no name: the id */
	assert_int_equal(cs.v[1].n_ports, 0);
	rsdk_cset_free(&cs);

	const char *insp = "{\"Id\":\"" ID_A "\",\"Name\":\"/i\",\"State\":{\"Running\":true},"
	                   "\"NetworkSettings\":{\"Ports\":{"
	                   "\"80/tcp\":[{\"HostIp\":\"0.0.0.0\",\"HostPort\":\"0\"},"
	                   "{\"HostIp\":\"0.0.0.0\",\"HostPort\":\"70000\"},"
	                   "{\"HostIp\":\"0.0.0.0\",\"HostPort\":\"\"},"
	                   "{\"HostIp\":\"0.0.0.0\",\"HostPort\":\"8080\"},"
	                   "{\"HostIp\":\"::\",\"HostPort\":\"8080\"}],"
	                   "\"81/tcp\":null,\"82/tcp\":[],"
	                   "\"0/tcp\":[{\"HostIp\":\"\",\"HostPort\":\"8086\"}],"
	                   "\"99999/tcp\":[{\"HostIp\":\"\",\"HostPort\":\"8087\"}],"
	                   "\"83/bogus\":[{\"HostIp\":\"\",\"HostPort\":\"8088\"}],"
	                   "\"84\":[{\"HostIp\":\"\",\"HostPort\":\"8089\"}],"
	                   "\"85/udp\":[{\"HostIp\":\"127.0.0.1\",\"HostPort\":\"5300\"}],"
	                   "\"86/tcp\":[7, null]}}}";
	dg.warn = dg.debug = 0;
	assert_int_equal(rt_inspect(insp, strlen(insp), 1, &cs, &d), 0);
	assert_int_equal(cs.n, 1);
	assert_string_equal(cs.v[0].name, "i");
	assert_int_equal(cs.v[0].n_ports, 4);
	assert_non_null(find_port(&cs.v[0], "0.0.0.0", 8080, RDHPF_PROTO_TCP));
	assert_non_null(find_port(&cs.v[0], "::", 8080, RDHPF_PROTO_TCP));
	assert_non_null(find_port(&cs.v[0], "", 8089, RDHPF_PROTO_TCP)); /* no /proto: tcp */
	assert_non_null(find_port(&cs.v[0], "127.0.0.1", 5300, RDHPF_PROTO_UDP));
	assert_int_equal(dg.warn, 5); /* 0, 70000, "", 0/tcp, 99999/tcp */
	rsdk_cset_free(&cs);

	/* Stopped, truncated, wrong shape. */
	const char *stopped = "{\"Id\":\"" ID_A "\",\"State\":{\"Running\":false},"
	                      "\"NetworkSettings\":{\"Ports\":{}}}";
	assert_int_equal(rt_inspect(stopped, strlen(stopped), 1, &cs, &d), 0);
	assert_int_equal(cs.n, 0); /* not running: no truth for a start */
	assert_int_equal(rt_inspect(stopped, strlen(stopped), 0, &cs, &d), 0);
	assert_int_equal(cs.n, 1); /* ports looked up ahead, at create */
	rsdk_cset_free(&cs);
	assert_int_equal(rt_inspect(insp, strlen(insp) / 2, 1, &cs, &d), -1);
	assert_int_equal(rt_inspect("42", 2, 1, &cs, &d), -1);
	assert_int_equal(rt_docker_list("{}", 2, &cs, &d), -1);
	assert_int_equal(rt_docker_list("[{\"Id\":", 7, &cs, &d), -1);
}

/* HostIp from the engine becomes the forward's target: only IP literals
 * pass; anything else is skipped with a reason naming the value. */
static void
test_host_ip_not_an_address(void **s)
{
	struct rsdk_cset cs = RSDK_CSET_INIT;
	struct diags dg;
	struct rt_diag d = mkdiag(&dg);
	(void)s;

	assert_true(rt_host_ip_ok(""));
	assert_true(rt_host_ip_ok("0.0.0.0"));
	assert_true(rt_host_ip_ok("::"));
	assert_true(rt_host_ip_ok("10.0.0.5"));
	assert_true(rt_host_ip_ok("2001:db8::1"));
	assert_false(rt_host_ip_ok("evil.example.com"));
	assert_false(rt_host_ip_ok("-oProxyCommand=x"));
	assert_false(rt_host_ip_ok("localhost"));
	assert_false(rt_host_ip_ok("10.0.0.5 "));
	assert_false(rt_host_ip_ok("[::1]"));
	assert_false(rt_host_ip_ok("1.2.3"));

	const char *list =
	    "[{\"Id\":\"" ID_A "\",\"Names\":[\"/a\"],\"Ports\":["
	    "{\"IP\":\"evil.example.com\",\"PrivatePort\":80,\"PublicPort\":8080,"
	    "\"Type\":\"tcp\"},"
	    "{\"IP\":\"-oProxyCommand=x\",\"PrivatePort\":80,\"PublicPort\":8081,"
	    "\"Type\":\"tcp\"},"
	    "{\"IP\":\"10.0.0.5\",\"PrivatePort\":80,\"PublicPort\":8082,"
	    "\"Type\":\"tcp\"},"
	    "{\"IP\":\"::1\",\"PrivatePort\":80,\"PublicPort\":8083,\"Type\":\"tcp\"}]}]";
	assert_int_equal(rt_docker_list(list, strlen(list), &cs, &d), 0);
	assert_int_equal(cs.n, 1);
	assert_int_equal(cs.v[0].n_ports, 2);
	assert_non_null(find_port(&cs.v[0], "10.0.0.5", 8082, RDHPF_PROTO_TCP));
	assert_non_null(find_port(&cs.v[0], "::1", 8083, RDHPF_PROTO_TCP));
	assert_int_equal(dg.warn, 2);
	assert_string_equal(dg.last, "port mapping skipped [" ID_A
	                             "] HostIp '-oProxyCommand=x' is not an IP address");
	rsdk_cset_free(&cs);

	const char *insp = "{\"Id\":\"" ID_A "\",\"Name\":\"/i\",\"State\":{\"Running\":true},"
	                   "\"NetworkSettings\":{\"Ports\":{"
	                   "\"80/tcp\":[{\"HostIp\":\"evil.example.com\",\"HostPort\":\"8080\"},"
	                   "{\"HostIp\":\"127.0.0.1\",\"HostPort\":\"8081\"}]}}}";
	dg.warn = 0;
	assert_int_equal(rt_inspect(insp, strlen(insp), 1, &cs, &d), 0);
	assert_int_equal(cs.n, 1);
	assert_int_equal(cs.v[0].n_ports, 1);
	assert_non_null(find_port(&cs.v[0], "127.0.0.1", 8081, RDHPF_PROTO_TCP));
	assert_int_equal(dg.warn, 1);
	assert_string_equal(dg.last, "port mapping skipped [" ID_A
	                             "] HostIp 'evil.example.com' is not an IP address");
	rsdk_cset_free(&cs);

	/* podman: one reason for a whole range, not one a port. */
	const char *ps =
	    "[{\"Id\":\"" ID_A "\",\"Names\":[\"p\"],\"State\":\"running\",\"Ports\":["
	    "{\"host_ip\":\"evil.example.com\",\"container_port\":80,\"host_port\":9000,"
	    "\"range\":1000,\"protocol\":\"tcp,udp\"},"
	    "{\"host_ip\":\"\\u001b]0;x\",\"container_port\":80,\"host_port\":9500,"
	    "\"range\":1,\"protocol\":\"tcp\"}]}]";
	dg.warn = 0;
	assert_int_equal(rt_podman_ps(ps, strlen(ps), &cs, &d), 0);
	assert_int_equal(cs.n, 1);
	assert_int_equal(cs.v[0].n_ports, 0);
	assert_int_equal(dg.warn, 2);
	/* the value is shown, its control bytes not */
	assert_string_equal(dg.last,
	                    "port mapping skipped [" ID_A "] HostIp '?]0;x' is not an IP address");
	rsdk_cset_free(&cs);
}

static void
test_too_many_ports(void **s)
{
	struct rsdk_cset cs = RSDK_CSET_INIT;
	size_t cap = 64u * (RT_MAX_PORTS + 10) + 256, len;
	struct diags dg;
	struct rt_diag d = mkdiag(&dg);
	char *buf = malloc(cap);
	(void)s;

	assert_non_null(buf);
	len = (size_t)snprintf(buf, cap, "[{\"Id\":\"%s\",\"Ports\":[", ID_A);
	for (unsigned i = 0; i < RT_MAX_PORTS + 10; i++)
		len += (size_t)snprintf(buf + len, cap - len,
		                        "%s{\"IP\":\"\",\"PrivatePort\":80,\"PublicPort\":%u}",
		                        i ? "," : "", 1 + i % 65535);
	len += (size_t)snprintf(buf + len, cap - len, "]}]");
	assert_int_equal(rt_docker_list(buf, len, &cs, &d), 0);
	assert_int_equal(cs.n, 1);
	assert_int_equal(cs.v[0].n_ports, RT_MAX_PORTS);
	/* said once, the rest counted (for ports_dropped_total) */
	assert_int_equal(dg.warn, 1);
	assert_int_equal(dg.dropped, 10);
	rsdk_cset_free(&cs);
	free(buf);
}

/* A crafted podman mapping: range 65535 × 64 protocols.  The work is bound
 * by the cap, not by range × protocols: each protocol once, the range walked
 * only up to RT_MAX_PORTS, one warning, the rest counted.  (The old loop
 * went on past the cap, once a port: 4.2 million calls, each a warning.)
 * The time it takes is printed, not asserted. */
static void
test_podman_range_flood(void **s)
{
	struct rsdk_cset cs = RSDK_CSET_INIT;
	size_t len;
	struct diags dg;
	struct rt_diag d = mkdiag(&dg);
	char protos[64 * 5 + 1], *buf;
	struct timespec t0, t1;
	(void)s;

	/* tcp,udp,sctp,tcp,… : 64 protocols */
	for (size_t i = 0, o = 0; i < 64; i++)
		o += (size_t)snprintf(protos + o, sizeof protos - o, "%s%s", i ? "," : "",
		                      i % 3 == 0   ? "tcp"
		                      : i % 3 == 1 ? "udp"
		                                   : "sctp");
	buf = malloc(4096);
	assert_non_null(buf);
	len = (size_t)snprintf(buf, 4096,
	                       "[{\"Id\":\"" ID_A "\",\"Names\":[\"flood\"],\"State\":\"running\","
	                       "\"Ports\":[{\"host_ip\":\"\",\"container_port\":1,\"host_port\":1,"
	                       "\"range\":65535,\"protocol\":\"%s\"}]}]",
	                       protos);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(rt_podman_ps(buf, len, &cs, &d), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	print_message("range 65535 x 64 protocols parsed in %.2f ms\n",
	              (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
	                  (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	assert_int_equal(cs.n, 1);
	assert_int_equal(cs.v[0].n_ports, RT_MAX_PORTS);
	/* tcp 1..RT_MAX_PORTS kept; udp and sctp ranges counted */
	assert_non_null(find_port(&cs.v[0], "", RT_MAX_PORTS, RDHPF_PROTO_TCP));
	assert_null(find_port(&cs.v[0], "", RT_MAX_PORTS + 1, RDHPF_PROTO_TCP));
	assert_null(find_port(&cs.v[0], "", 1, RDHPF_PROTO_UDP));
	assert_int_equal(dg.dropped, 3u * 65535u - RT_MAX_PORTS);
	assert_int_equal(dg.warn, 1);
	assert_true(dg.debug <= 1);
	rsdk_cset_free(&cs);
	free(buf);
}

/* ---- Podman ---- */

static void
count_podman(const char *file, int *starts, int *stops, int *ignored, int64_t *first_time)
{
	size_t len;
	char *buf = slurp(file, &len);
	struct diags dg;
	struct rt_diag d = mkdiag(&dg);
	char *save = NULL;

	*starts = *stops = *ignored = 0;
	*first_time = 0;
	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct rt_event ev = {0};
		assert_int_equal(
		    (rt_event_clear(&ev), rt_podman_event(line, strlen(line), &ev, &d)), 0);
		if (*first_time == 0)
			*first_time = ev.time_ns;
		if (ev.kind == RT_EV_START)
			(*starts)++;
		else if (ev.kind == RT_EV_STOP)
			(*stops)++;
		else
			(*ignored)++;
		if (ev.kind != RT_EV_IGNORE) {
			assert_true(rt_valid_id(ev.c.id, strlen(ev.c.id)));
			assert_true(ev.c.name != NULL);
			assert_true(ev.time_ns > 1795836000000000000LL);
		}
		rt_event_clear(&ev);
	}
	assert_int_equal(dg.warn, 0);
	free(buf);
}

static void
test_podman4_events_sample(void **s)
{
	int st, sp, ig;
	int64_t t0;
	(void)s;
	count_podman("podman-4.3-events.jsonl", &st, &sp, &ig, &t0);
	/* start ×5; died ×5 + stop ×4 + remove ×5; restart, exec_died, cleanup… ignored */
	assert_int_equal(st, 5);
	assert_int_equal(sp, 14);
	assert_int_equal(ig, 27);
	/* "Time":"2026-11-28T03:29:28.161091026Z" */
	assert_int_equal(t0, 1795836568161091026LL);
}

static void
test_podman5_events_sample(void **s)
{
	int st, sp, ig;
	int64_t t0;
	(void)s;
	count_podman("podman-5-events.jsonl", &st, &sp, &ig, &t0);
	assert_int_equal(st, 3);
	assert_int_equal(sp, 4);
	assert_int_equal(ig, 10);
	/* timeNano wins over time */
	assert_int_equal(t0, 1795836700000123457LL);
}

static void
test_podman_events_crafted(void **s)
{
	struct diags dg;
	struct rt_diag d = mkdiag(&dg);
	struct rt_event ev = {0};
	const char *l;
	(void)s;

	/* 5.x with only "time" (seconds) */
	l = "{\"ID\":\"" ID_A "\",\"Name\":\"w\",\"Status\":\"died\",\"time\":1700000000,"
	    "\"Type\":\"container\"}";
	assert_int_equal((rt_event_clear(&ev), rt_podman_event(l, strlen(l), &ev, &d)), 0);
	assert_int_equal(ev.kind, RT_EV_STOP);
	assert_int_equal(ev.time_ns, 1700000000000000000LL);
	/* 4.x with a local offset */
	l = "{\"ID\":\"" ID_A "\",\"Name\":\"w\",\"Status\":\"start\","
	    "\"Time\":\"2019-04-27T22:47:00.849932843-04:00\",\"Type\":\"container\"}";
	assert_int_equal((rt_event_clear(&ev), rt_podman_event(l, strlen(l), &ev, &d)), 0);
	assert_int_equal(ev.kind, RT_EV_START);
	assert_int_equal(ev.time_ns, 1556419620849932843LL);
	/* An unparseable time is not fatal: 0 means unknown. */
	l = "{\"ID\":\"" ID_A "\",\"Name\":\"w\",\"Status\":\"start\",\"Time\":\"soon\","
	    "\"Type\":\"container\"}";
	assert_int_equal((rt_event_clear(&ev), rt_podman_event(l, strlen(l), &ev, &d)), 0);
	assert_int_equal(ev.time_ns, 0);
	/* exec_died is an exec session, not the container */
	l = "{\"ID\":\"" ID_A "\",\"Name\":\"w\",\"Status\":\"exec_died\",\"Type\":\"container\"}";
	assert_int_equal((rt_event_clear(&ev), rt_podman_event(l, strlen(l), &ev, &d)), 0);
	assert_int_equal(ev.kind, RT_EV_IGNORE);
	l = "{\"ID\":\"sha256:abc\",\"Status\":\"pull\",\"Type\":\"image\"}";
	assert_int_equal((rt_event_clear(&ev), rt_podman_event(l, strlen(l), &ev, &d)), 0);
	assert_int_equal(ev.kind, RT_EV_IGNORE);
	assert_int_equal(dg.warn, 0);
	const char *bad[] = {
	    "{\"ID\":\"" ID_A "\",\"Name\":\"w\",\"Status\":\"start\",\"Ty",
	    "{\"ID\":\"" ID_A "\",\"Name\":\"w\",\"Type\":\"container\"}",
	    "{\"ID\":\"x y\",\"Status\":\"start\",\"Type\":\"container\"}",
	    "{\"ID\":7,\"Status\":\"start\",\"Type\":\"container\"}",
	    "null",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		int before = dg.warn;
		assert_int_equal(
		    (rt_event_clear(&ev), rt_podman_event(bad[i], strlen(bad[i]), &ev, &d)), -1);
		assert_int_equal(dg.warn, before + 1);
	}
	rt_event_clear(&ev);
}

/* The events log itself (events_logger = file), as the plugin's tail -F
 * reader reads it: recorded from the lab's podman 4.3.1 through run -p,
 * restart, stop and rm.  Non-container lines (the image "pull") are
 * ignored; the pull line is stamped before the create line above it. */
static void
test_podman4_events_file_sample(void **s)
{
	int st, sp, ig;
	int64_t t0;
	(void)s;
	count_podman("podman-4.3-events-file.log", &st, &sp, &ig, &t0);
	/* start ×2; died ×2 + stop + remove; create, pull, init ×2, restart,
	 * cleanup ×3 ignored */
	assert_int_equal(st, 2);
	assert_int_equal(sp, 4);
	assert_int_equal(ig, 8);
	/* "Time":"2026-12-01T03:14:56.338909752Z" */
	assert_int_equal(t0, 1796094896338909752LL);
}

static void
test_podman_journal_events(void **s)
{
	struct diags dg;
	struct rt_diag d = mkdiag(&dg);
	struct rt_event ev = {0};
	const char *l;
	(void)s;

	/* What journalctl -o json prints for podman's journald events logger
	 * (constructed from libpod/events/journal_linux.go: PODMAN_* fields). */
	l = "{\"__CURSOR\":\"s=1;i=2\",\"__REALTIME_TIMESTAMP\":\"1796094896499581\","
	    "\"SYSLOG_IDENTIFIER\":\"podman\",\"PODMAN_EVENT\":\"start\","
	    "\"PODMAN_TYPE\":\"container\",\"PODMAN_ID\":\"" ID_A "\",\"PODMAN_NAME\":\"web\","
	    "\"PODMAN_IMAGE\":\"localhost/bb:latest\","
	    "\"PODMAN_TIME\":\"2026-12-01T03:14:56.499581844Z\",\"MESSAGE\":\"x\"}";
	assert_int_equal((rt_event_clear(&ev), rt_podman_journal_event(l, strlen(l), &ev, &d)), 0);
	assert_int_equal(ev.kind, RT_EV_START);
	assert_string_equal(ev.c.id, ID_A);
	assert_string_equal(ev.c.name, "web");
	assert_int_equal(ev.time_ns, 1796094896499581844LL);
	/* No PODMAN_TIME: the journal's own timestamp (microseconds). */
	l = "{\"__REALTIME_TIMESTAMP\":\"1796094896499581\",\"PODMAN_EVENT\":\"died\","
	    "\"PODMAN_TYPE\":\"container\",\"PODMAN_ID\":\"" ID_A "\"}";
	assert_int_equal((rt_event_clear(&ev), rt_podman_journal_event(l, strlen(l), &ev, &d)), 0);
	assert_int_equal(ev.kind, RT_EV_STOP);
	assert_int_equal(ev.time_ns, 1796094896499581000LL);
	l = "{\"PODMAN_EVENT\":\"pull\",\"PODMAN_TYPE\":\"image\"}";
	assert_int_equal((rt_event_clear(&ev), rt_podman_journal_event(l, strlen(l), &ev, &d)), 0);
	assert_int_equal(ev.kind, RT_EV_IGNORE);
	assert_int_equal(dg.warn, 0);
	const char *bad[] = {
	    /* not UTF-8: journalctl prints the field as an array of bytes */
	    "{\"PODMAN_EVENT\":[115,116],\"PODMAN_TYPE\":\"container\"}",
	    "{\"PODMAN_EVENT\":\"start\",\"PODMAN_TYPE\":\"container\",\"PODMAN_ID\":\"../x\"}",
	    "{\"MESSAGE\":\"no podman fields\"}",
	    "[1]",
	    "{\"PODMAN_EV",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		int before = dg.warn;
		assert_int_equal(
		    (rt_event_clear(&ev), rt_podman_journal_event(bad[i], strlen(bad[i]), &ev, &d)),
		    -1);
		assert_int_equal(dg.warn, before + 1);
	}
	rt_event_clear(&ev);
}

static void
test_podman_reader_line(void **s)
{
	char rest[16];
	int kind = -1;
	const char *l;
	(void)s;

	l = "rdhpf-events file /var/tmp/rdhpf-lab/podman/events.log";
	assert_int_equal(rt_podman_reader_line(l, strlen(l), &kind, rest, sizeof rest), 0);
	assert_int_equal(kind, RT_PM_FILE);
	assert_string_equal(rest, "/var/tmp/rdhpf-"); /* truncated */
	l = "rdhpf-events journald";
	assert_int_equal(rt_podman_reader_line(l, strlen(l), &kind, rest, sizeof rest), 0);
	assert_int_equal(kind, RT_PM_JOURNALD);
	assert_string_equal(rest, "");
	l = "rdhpf-events podman no events log at \x01x";
	assert_int_equal(rt_podman_reader_line(l, strlen(l), &kind, rest, sizeof rest), 0);
	assert_int_equal(kind, RT_PM_EVENTS);
	assert_string_equal(rest, "no events log a");
	const char *bad[] = {
	    "rdhpf-events filex /p",
	    "rdhpf-events ",
	    "rdhpf-event file",
	    "",
	    "{\"ID\":\"" ID_A "\",\"Status\":\"start\",\"Type\":\"container\"}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_int_equal(
		    rt_podman_reader_line(bad[i], strlen(bad[i]), &kind, rest, sizeof rest), -1);
}

static void
test_podman4_ps_sample(void **s)
{
	size_t len;
	char *buf = slurp("podman-4.3-ps.json", &len);
	struct rsdk_cset cs = RSDK_CSET_INIT;
	struct diags dg;
	struct rt_diag d = mkdiag(&dg);
	(void)s;

	assert_int_equal(rt_podman_ps(buf, len, &cs, &d), 0);
	assert_int_equal(cs.n, 1);
	assert_string_equal(cs.v[0].name, "web");
	assert_string_equal(cs.v[0].id,
	                    "5fc9334b93fd19a5749cd0bef18c0dc0f407b0770b353071318956550e59d658");
	/* 80, 90-92 (range 3), 100/tcp, 81 → 33607 (ephemeral), 100/udp, 82/udp */
	assert_int_equal(cs.v[0].n_ports, 8);
	assert_non_null(find_port(&cs.v[0], "", 18080, RDHPF_PROTO_TCP));
	assert_non_null(find_port(&cs.v[0], "", 18090, RDHPF_PROTO_TCP));
	assert_int_equal(find_port(&cs.v[0], "", 18091, RDHPF_PROTO_TCP)->container_port, 91);
	assert_int_equal(find_port(&cs.v[0], "", 18092, RDHPF_PROTO_TCP)->container_port, 92);
	assert_null(find_port(&cs.v[0], "", 18093, RDHPF_PROTO_TCP));
	assert_non_null(find_port(&cs.v[0], "", 33607, RDHPF_PROTO_TCP));
	assert_non_null(find_port(&cs.v[0], "", 18100, RDHPF_PROTO_UDP));
	assert_non_null(find_port(&cs.v[0], "127.0.0.1", 18082, RDHPF_PROTO_UDP));
	assert_int_equal(dg.warn, 0);
	rsdk_cset_free(&cs);
	free(buf);
}

static void
test_podman5_ps_sample(void **s)
{
	size_t len;
	char *buf = slurp("podman-5-ps.json", &len);
	struct rsdk_cset cs = RSDK_CSET_INIT;
	struct diags dg;
	struct rt_diag d = mkdiag(&dg);
	const struct rsdk_cont *c;
	(void)s;

	assert_int_equal(rt_podman_ps(buf, len, &cs, &d), 0);
	assert_int_equal(cs.n, 2);
	c = find_cont(&cs, "web5");
	assert_non_null(c);
	/* 80; 53 "tcp,udp" → two; 90-92; [::1]:41234; 7/sctp */
	assert_int_equal(c->n_ports, 8);
	assert_non_null(find_port(c, "127.0.0.1", 18553, RDHPF_PROTO_TCP));
	assert_non_null(find_port(c, "127.0.0.1", 18553, RDHPF_PROTO_UDP));
	assert_non_null(find_port(c, "::1", 41234, RDHPF_PROTO_TCP));
	assert_non_null(find_port(c, "", 18592, RDHPF_PROTO_TCP));
	assert_non_null(find_port(c, "", 18507, RDHPF_PROTO_SCTP));
	c = find_cont(&cs, "db5");
	assert_non_null(c);
	assert_int_equal(c->n_ports, 0);
	assert_int_equal(dg.warn, 0);
	rsdk_cset_free(&cs);
	free(buf);
}

static void
test_podman_ps_crafted(void **s)
{
	struct rsdk_cset cs = RSDK_CSET_INIT;
	struct diags dg;
	struct rt_diag d = mkdiag(&dg);
	(void)s;

	const char *ps =
	    "[{\"Id\":\"" ID_A "\",\"Names\":[\"p\"],\"State\":\"running\",\"Ports\":["
	    "{\"host_ip\":\"\",\"container_port\":80,\"host_port\":0,\"range\":1,\"protocol\":"
	    "\"tcp\"},"
	    "{\"host_ip\":\"\",\"container_port\":80,\"host_port\":70000,\"range\":1,\"protocol\":"
	    "\"tcp\"},"
	    "{\"host_ip\":\"\",\"container_port\":80,\"host_port\":65534,\"range\":5,\"protocol\":"
	    "\"tcp\"},"
	    "{\"host_ip\":\"\",\"container_port\":80,\"host_port\":9000,\"range\":"
	    "9223372036854775807,"
	    "\"protocol\":\"tcp\"},"
	    "{\"host_ip\":\"\",\"container_port\":80,\"host_port\":9001,\"range\":\"2\","
	    "\"protocol\":\"tcp\"},"
	    "{\"host_ip\":\"\",\"container_port\":80,\"host_port\":9002,\"range\":0,\"protocol\":"
	    "\"\"},"
	    "{\"host_ip\":\"\",\"container_port\":81,\"host_port\":9003,\"protocol\":\"tcp,quic,"
	    "udp\"},"
	    "{\"hostIP\":\"10.0.0.1\",\"containerPort\":82,\"hostPort\":9004,\"protocol\":\"tcp\"}]"
	    "},"
	    "{\"Id\":\"" ID_B "\",\"Names\":[\"exited\"],\"State\":\"exited\",\"Ports\":["
	    "{\"host_ip\":\"\",\"container_port\":80,\"host_port\":9100,\"range\":1,\"protocol\":"
	    "\"tcp\"}]}]";
	assert_int_equal(rt_podman_ps(ps, strlen(ps), &cs, &d), 0);
	assert_int_equal(cs.n, 1);
	/* kept: 9002 (range 0 = 1, empty protocol = tcp), 9003 tcp+udp, 9004 (3.x names) */
	assert_int_equal(cs.v[0].n_ports, 4);
	assert_non_null(find_port(&cs.v[0], "", 9002, RDHPF_PROTO_TCP));
	assert_non_null(find_port(&cs.v[0], "", 9003, RDHPF_PROTO_TCP));
	assert_non_null(find_port(&cs.v[0], "", 9003, RDHPF_PROTO_UDP));
	assert_non_null(find_port(&cs.v[0], "10.0.0.1", 9004, RDHPF_PROTO_TCP));
	/* 0, 70000, range past 65535 twice, string range */
	assert_int_equal(dg.warn, 5);
	rsdk_cset_free(&cs);
	assert_int_equal(rt_podman_ps("null", 4, &cs, &d), 0);
	assert_int_equal(cs.n, 0);
	assert_int_equal(rt_podman_ps("[]", 2, &cs, &d), 0);
	assert_int_equal(cs.n, 0);
	rsdk_cset_free(&cs);
	assert_int_equal(rt_podman_ps("{\"Id\":1}", 8, &cs, &d), -1);
	assert_int_equal(rt_podman_ps("[{\"Id\":\"", 8, &cs, &d), -1);
}

static void
test_podman_inspect_sample(void **s)
{
	size_t len;
	char *buf = slurp("podman-4.3-inspect.json", &len);
	struct rsdk_cset cs = RSDK_CSET_INIT;
	struct diags dg;
	struct rt_diag d = mkdiag(&dg);
	(void)s;

	assert_int_equal(rt_inspect(buf, len, 1, &cs, &d), 0);
	assert_int_equal(cs.n, 1);
	assert_string_equal(cs.v[0].name, "web");
	assert_int_equal(cs.v[0].n_ports, 8);
	assert_non_null(find_port(&cs.v[0], "", 33607, RDHPF_PROTO_TCP));
	assert_int_equal(find_port(&cs.v[0], "", 18091, RDHPF_PROTO_TCP)->container_port, 91);
	assert_non_null(find_port(&cs.v[0], "127.0.0.1", 18082, RDHPF_PROTO_UDP));
	rsdk_cset_free(&cs);
	free(buf);
	/* Several ids in one inspect, one of them junk. */
	const char *two = "[{\"Id\":\"" ID_A "\",\"Name\":\"a\",\"State\":{\"Running\":true}},"
	                  "{\"Id\":\"nope\"},"
	                  "{\"Id\":\"" ID_B "\",\"Name\":\"b\",\"State\":{\"Running\":false}}]";
	assert_int_equal(rt_inspect(two, strlen(two), 1, &cs, &d), 0);
	assert_int_equal(cs.n, 1);
	assert_non_null(rsdk_cset_get(&cs, ID_A));
	assert_int_equal(rt_inspect(two, strlen(two), 0, &cs, &d), 0);
	assert_int_equal(cs.n, 2);
	assert_non_null(rsdk_cset_get(&cs, ID_B));
	rsdk_cset_free(&cs);
	assert_int_equal(rt_inspect("[]", 2, 1, &cs, &d), 0);
	assert_int_equal(cs.n, 0);
	rsdk_cset_free(&cs);
}

/* ---- images and labels ---- */

static void
test_image_labels(void **s)
{
	struct diags dg;
	struct rt_diag d = mkdiag(&dg);
	struct rsdk_cset cs = RSDK_CSET_INIT;
	struct rt_event ev = {0};
	const struct rsdk_cont *c;
	const char *l;
	size_t len;
	char *buf;
	(void)s;

	/* Docker events: the attributes are labels, but for those the engine
	 * adds (name, image, exitCode, signal…). */
	l = "{\"Type\":\"container\",\"Action\":\"die\",\"Actor\":{\"ID\":\"" ID_A "\","
	    "\"Attributes\":{\"name\":\"web\",\"image\":\"nginx:1\",\"exitCode\":\"0\","
	    "\"signal\":\"15\",\"tier\":\"front\",\"com.example.team\":\"ops\"}},"
	    "\"time\":1700000000}";
	assert_int_equal((rt_event_clear(&ev), rt_docker_event(l, strlen(l), &ev, &d)), 0);
	assert_int_equal(ev.kind, RT_EV_STOP);
	assert_string_equal(ev.c.name, "web");
	assert_string_equal(ev.c.image, "nginx:1");
	assert_int_equal(ev.c.n_labels, 2);
	assert_string_equal(label(&ev.c, "tier"), "front");
	assert_string_equal(label(&ev.c, "com.example.team"), "ops");
	assert_null(label(&ev.c, "exitCode"));
	assert_null(label(&ev.c, "name"));
	rt_event_clear(&ev);
	assert_null(ev.c.id);

	/* Docker inspect: Config.Image and Config.Labels are the truth. */
	l = "{\"Id\":\"" ID_A "\",\"Name\":\"/i\",\"State\":{\"Running\":true},"
	    "\"Image\":\"sha256:0123\",\"Config\":{\"Image\":\"nginx:1\","
	    "\"Labels\":{\"tier\":\"front\",\"n\":7}}}";
	assert_int_equal(rt_inspect(l, strlen(l), 1, &cs, &d), 0);
	c = rsdk_cset_get(&cs, ID_A);
	assert_non_null(c);
	assert_string_equal(c->image, "nginx:1");
	assert_int_equal(c->n_labels, 1); /* "n" is not a string */
	assert_string_equal(label(c, "tier"), "front");
	rsdk_cset_free(&cs);

	/* Docker list: Image and Labels. */
	l = "[{\"Id\":\"" ID_A "\",\"Names\":[\"/a\"],\"Image\":\"redis:7\","
	    "\"Labels\":{\"x\":\"1\",\"\":\"nokey\"},\"Ports\":[]}]";
	dg.warn = 0;
	assert_int_equal(rt_docker_list(l, strlen(l), &cs, &d), 0);
	assert_string_equal(cs.v[0].image, "redis:7");
	assert_int_equal(cs.v[0].n_labels, 1);
	assert_string_equal(label(&cs.v[0], "x"), "1");
	assert_int_equal(dg.warn, 1); /* the label without a key */
	rsdk_cset_free(&cs);

	/* Podman ps: Image and Labels (null for none). */
	buf = slurp("podman-5-ps.json", &len);
	assert_int_equal(rt_podman_ps(buf, len, &cs, &d), 0);
	c = find_cont(&cs, "db5");
	assert_non_null(c);
	assert_string_equal(c->image, "docker.io/library/busybox:latest");
	assert_string_equal(label(c, "app"), "db");
	c = find_cont(&cs, "web5");
	assert_non_null(c);
	assert_int_equal(c->n_labels, 0);
	rsdk_cset_free(&cs);
	free(buf);

	/* Podman events: Image, and Attributes are the labels. */
	l = "{\"ID\":\"" ID_A "\",\"Image\":\"localhost/bb:latest\",\"Name\":\"web\","
	    "\"Status\":\"start\",\"Type\":\"container\",\"Attributes\":{\"app\":\"web\"}}";
	assert_int_equal((rt_event_clear(&ev), rt_podman_event(l, strlen(l), &ev, &d)), 0);
	assert_string_equal(ev.c.image, "localhost/bb:latest");
	assert_string_equal(label(&ev.c, "app"), "web");
	rt_event_clear(&ev);
	/* The journal: PODMAN_IMAGE, PODMAN_LABELS (JSON in a string). */
	l = "{\"PODMAN_TYPE\":\"container\",\"PODMAN_EVENT\":\"start\",\"PODMAN_ID\":\"" ID_A
	    "\",\"PODMAN_NAME\":\"web\",\"PODMAN_IMAGE\":\"bb:1\","
	    "\"PODMAN_LABELS\":\"{\\\"app\\\":\\\"web\\\"}\"}";
	assert_int_equal((rt_event_clear(&ev), rt_podman_journal_event(l, strlen(l), &ev, &d)), 0);
	assert_string_equal(ev.c.image, "bb:1");
	assert_string_equal(label(&ev.c, "app"), "web");
	rt_event_clear(&ev);

	/* A control character in a label or an image: that one is skipped. */
	l = "[{\"Id\":\"" ID_A "\",\"Image\":\"x\\u001b[31m\",\"Labels\":{\"a\":\"1\\n2\","
	    "\"b\":\"2\"}}]";
	dg.warn = 0;
	assert_int_equal(rt_docker_list(l, strlen(l), &cs, &d), 0);
	assert_null(cs.v[0].image);
	assert_int_equal(cs.v[0].n_labels, 1);
	assert_string_equal(label(&cs.v[0], "b"), "2");
	assert_int_equal(dg.warn, 2);
	rsdk_cset_free(&cs);

	/* Bounds: RT_MAX_LABELS kept, the rest skipped, said once. */
	size_t cap = 64u * (RT_MAX_LABELS + 10) + 256;
	buf = malloc(cap);
	assert_non_null(buf);
	len = (size_t)snprintf(buf, cap, "[{\"Id\":\"%s\",\"Labels\":{", ID_A);
	for (unsigned i = 0; i < RT_MAX_LABELS + 10; i++)
		len += (size_t)snprintf(buf + len, cap - len, "%s\"k%u\":\"v\"", i ? "," : "", i);
	len += (size_t)snprintf(buf + len, cap - len, "}}]");
	dg.warn = 0;
	assert_int_equal(rt_docker_list(buf, len, &cs, &d), 0);
	assert_int_equal(cs.v[0].n_labels, RT_MAX_LABELS);
	assert_int_equal(dg.warn, 1);
	rsdk_cset_free(&cs);
	free(buf);
	rt_event_clear(&ev);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_id),
	    cmocka_unit_test(test_port_str),
	    cmocka_unit_test(test_rfc3339),
	    cmocka_unit_test(test_http_date),
	    cmocka_unit_test(test_lines_basic),
	    cmocka_unit_test(test_lines_oversized),
	    cmocka_unit_test(test_http_pipelined_sample),
	    cmocka_unit_test(test_http_events_stream),
	    cmocka_unit_test(test_http_malformed),
	    cmocka_unit_test(test_http_framing),
	    cmocka_unit_test(test_docker_events_sample),
	    cmocka_unit_test(test_docker_events_crafted),
	    cmocka_unit_test(test_docker_list_sample),
	    cmocka_unit_test(test_docker_inspect_sample),
	    cmocka_unit_test(test_docker_ports_crafted),
	    cmocka_unit_test(test_host_ip_not_an_address),
	    cmocka_unit_test(test_too_many_ports),
	    cmocka_unit_test(test_podman_range_flood),
	    cmocka_unit_test(test_podman4_events_sample),
	    cmocka_unit_test(test_podman5_events_sample),
	    cmocka_unit_test(test_podman_events_crafted),
	    cmocka_unit_test(test_podman4_events_file_sample),
	    cmocka_unit_test(test_podman_journal_events),
	    cmocka_unit_test(test_podman_reader_line),
	    cmocka_unit_test(test_podman4_ps_sample),
	    cmocka_unit_test(test_podman5_ps_sample),
	    cmocka_unit_test(test_podman_ps_crafted),
	    cmocka_unit_test(test_podman_inspect_sample),
	    cmocka_unit_test(test_image_labels),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
