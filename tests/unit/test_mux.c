/* The openssh transport's mux protocol module (plugins/transport-openssh/
 * mux.c): encoders and the decoder, round trips, and input a broken or
 * hostile master could send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mux.h"

/* ---- building raw packets by hand (what a master would send) ---------- */

struct raw {
	unsigned char b[4096];
	size_t n;
};

static void
raw_u32(struct raw *r, uint32_t v)
{
	r->b[r->n++] = (unsigned char)(v >> 24);
	r->b[r->n++] = (unsigned char)(v >> 16);
	r->b[r->n++] = (unsigned char)(v >> 8);
	r->b[r->n++] = (unsigned char)v;
}

static void
raw_bytes(struct raw *r, const void *p, size_t n)
{
	memcpy(r->b + r->n, p, n);
	r->n += n;
}

static void
raw_str(struct raw *r, const char *s)
{
	raw_u32(r, (uint32_t)strlen(s));
	raw_bytes(r, s, strlen(s));
}

/* Start a packet: a length placeholder; raw_end fills it in. */
static size_t
raw_begin(struct raw *r)
{
	size_t at = r->n;

	raw_u32(r, 0);
	return at;
}

static void
raw_end(struct raw *r, size_t at)
{
	uint32_t len = (uint32_t)(r->n - at - 4);

	r->b[at] = (unsigned char)(len >> 24);
	r->b[at + 1] = (unsigned char)(len >> 16);
	r->b[at + 2] = (unsigned char)(len >> 8);
	r->b[at + 3] = (unsigned char)len;
}

static int
str_is(const struct mux_str *s, const char *want)
{
	return s->len == strlen(want) && memcmp(s->p, want, s->len) == 0;
}

/* Decode exactly one packet that fills p[0..n). */
static void
decode_one(const void *p, size_t n, struct mux_msg *m)
{
	size_t used = 0;
	char err[200] = "";
	int r = mux_decode(p, n, m, &used, err, sizeof err);

	if (r != 1)
		fail_msg("mux_decode returned %d: %s", r, err);
	assert_int_equal(used, n);
}

/* ---- round trips --------------------------------------------------------- */

static void
test_hello_round_trip(void **state)
{
	struct rsdk_buf b = {0};
	struct mux_msg m;

	(void)state;
	assert_int_equal(mux_enc_hello(&b), 0);
	assert_int_equal(rsdk_buf_size(&b), 12);
	decode_one(rsdk_buf_str(&b), rsdk_buf_size(&b), &m);
	assert_int_equal(m.type, MUX_MSG_HELLO);
	assert_int_equal(m.version, MUX_VERSION);
	rsdk_buf_free(&b);
}

static void
test_request_round_trip(void **state)
{
	struct rsdk_buf b = {0};
	struct mux_msg m;

	(void)state;
	assert_int_equal(mux_enc_request(&b, MUX_C_ALIVE_CHECK, 0xdeadbeefu), 0);
	decode_one(rsdk_buf_str(&b), rsdk_buf_size(&b), &m);
	assert_int_equal(m.type, MUX_C_ALIVE_CHECK);
	assert_int_equal(m.id, 0xdeadbeefu);
	rsdk_buf_free(&b);
}

static void
test_fwd_round_trip(void **state)
{
	struct rsdk_buf b = {0};
	struct mux_msg m;

	(void)state;
	assert_int_equal(mux_enc_fwd(&b, MUX_C_OPEN_FWD, 7, "::1", 8080, "127.0.0.1", 80), 0);
	decode_one(rsdk_buf_str(&b), rsdk_buf_size(&b), &m);
	assert_int_equal(m.type, MUX_C_OPEN_FWD);
	assert_int_equal(m.id, 7);
	assert_int_equal(m.fwd_type, MUX_FWD_LOCAL);
	assert_true(str_is(&m.lhost, "::1"));
	assert_int_equal(m.lport, 8080);
	assert_true(str_is(&m.chost, "127.0.0.1"));
	assert_int_equal(m.cport, 80);
	rsdk_buf_free(&b);

	/* A streamlocal forward: paths, and the special port. */
	assert_int_equal(mux_enc_fwd(&b, MUX_C_CLOSE_FWD, 8, "/run/x/m.u0", MUX_PORT_STREAMLOCAL,
	                             "/var/run/docker.sock", MUX_PORT_STREAMLOCAL),
	                 0);
	decode_one(rsdk_buf_str(&b), rsdk_buf_size(&b), &m);
	assert_int_equal(m.type, MUX_C_CLOSE_FWD);
	assert_true(str_is(&m.lhost, "/run/x/m.u0"));
	assert_int_equal(m.lport, MUX_PORT_STREAMLOCAL);
	assert_true(str_is(&m.chost, "/var/run/docker.sock"));
	rsdk_buf_free(&b);
}

static void
test_session_round_trip(void **state)
{
	struct rsdk_buf b = {0};
	struct mux_msg m;
	const char *cmd = "'docker' 'ps' '--format' '{{json .}}'";

	(void)state;
	assert_int_equal(mux_enc_session(&b, 42, cmd), 0);
	decode_one(rsdk_buf_str(&b), rsdk_buf_size(&b), &m);
	assert_int_equal(m.type, MUX_C_NEW_SESSION);
	assert_int_equal(m.id, 42);
	assert_int_equal(m.want_tty, 0);
	assert_int_equal(m.escape, MUX_NO_ESCAPE);
	assert_true(str_is(&m.term, ""));
	assert_true(str_is(&m.cmd, cmd));
	rsdk_buf_free(&b);
}

static void
test_stdio_fwd_round_trip(void **state)
{
	struct rsdk_buf b = {0};
	struct mux_msg m;

	(void)state;
	assert_int_equal(mux_enc_stdio_fwd(&b, 9, "127.0.0.1", 0), 0);
	decode_one(rsdk_buf_str(&b), rsdk_buf_size(&b), &m);
	assert_int_equal(m.type, MUX_C_NEW_STDIO_FWD);
	assert_int_equal(m.id, 9);
	assert_true(str_is(&m.chost, "127.0.0.1"));
	assert_int_equal(m.cport, 0);
	rsdk_buf_free(&b);
}

/* Several packets back to back in one buffer come out one by one. */
static void
test_pipelined_packets(void **state)
{
	struct rsdk_buf b = {0};
	struct mux_msg m;
	size_t used, off = 0;
	char err[200];

	(void)state;
	assert_int_equal(mux_enc_hello(&b), 0);
	assert_int_equal(mux_enc_request(&b, MUX_C_ALIVE_CHECK, 1), 0);
	assert_int_equal(mux_enc_fwd(&b, MUX_C_OPEN_FWD, 2, "127.0.0.1", 1, "h", 2), 0);
	assert_int_equal(mux_decode(b.data + off, b.len - off, &m, &used, err, sizeof err), 1);
	assert_int_equal(m.type, MUX_MSG_HELLO);
	off += used;
	assert_int_equal(mux_decode(b.data + off, b.len - off, &m, &used, err, sizeof err), 1);
	assert_int_equal(m.type, MUX_C_ALIVE_CHECK);
	assert_int_equal(m.id, 1);
	off += used;
	assert_int_equal(mux_decode(b.data + off, b.len - off, &m, &used, err, sizeof err), 1);
	assert_int_equal(m.type, MUX_C_OPEN_FWD);
	assert_int_equal(m.id, 2);
	off += used;
	assert_int_equal(off, b.len);
	assert_int_equal(mux_decode(b.data + off, 0, &m, &used, err, sizeof err), 0);
	rsdk_buf_free(&b);
}

/* ---- the master's answers ------------------------------------------------ */

static void
test_server_answers(void **state)
{
	struct raw r = {0};
	struct mux_msg m;
	size_t at;

	(void)state;
	at = raw_begin(&r);
	raw_u32(&r, MUX_S_ALIVE);
	raw_u32(&r, 3);
	raw_u32(&r, 4242);
	raw_end(&r, at);
	decode_one(r.b, r.n, &m);
	assert_int_equal(m.type, MUX_S_ALIVE);
	assert_int_equal(m.id, 3);
	assert_int_equal(m.value, 4242);

	r.n = 0;
	at = raw_begin(&r);
	raw_u32(&r, MUX_S_FAILURE);
	raw_u32(&r, 5);
	raw_str(&r, "Port forwarding failed");
	raw_end(&r, at);
	decode_one(r.b, r.n, &m);
	assert_int_equal(m.type, MUX_S_FAILURE);
	assert_int_equal(m.id, 5);
	assert_true(str_is(&m.reason, "Port forwarding failed"));

	r.n = 0;
	at = raw_begin(&r);
	raw_u32(&r, MUX_S_EXIT_MESSAGE);
	raw_u32(&r, 11);
	raw_u32(&r, 3);
	raw_end(&r, at);
	decode_one(r.b, r.n, &m);
	assert_int_equal(m.type, MUX_S_EXIT_MESSAGE);
	assert_int_equal(m.id, 11);
	assert_int_equal(m.value, 3);

	/* A hello with an extension pair is still a hello. */
	r.n = 0;
	at = raw_begin(&r);
	raw_u32(&r, MUX_MSG_HELLO);
	raw_u32(&r, 4);
	raw_str(&r, "name@example.com");
	raw_str(&r, "value");
	raw_end(&r, at);
	decode_one(r.b, r.n, &m);
	assert_int_equal(m.type, MUX_MSG_HELLO);
	assert_int_equal(m.version, 4);

	/* An answer newer than version 4: accepted, its id read. */
	r.n = 0;
	at = raw_begin(&r);
	raw_u32(&r, 0x80000042u);
	raw_u32(&r, 77);
	raw_u32(&r, 1);
	raw_end(&r, at);
	decode_one(r.b, r.n, &m);
	assert_int_equal(m.type, 0x80000042u);
	assert_int_equal(m.id, 77);
	assert_true(mux_is_reply(m.type));
	assert_false(mux_is_reply(MUX_C_OPEN_FWD));
	assert_false(mux_is_reply(MUX_MSG_HELLO));
}

/* The reason comes out raw, every byte; rsdk_printable makes it fit for a
 * log line, as the plugin does. */
static void
test_reason_raw_then_printable(void **state)
{
	struct raw r = {0};
	struct mux_msg m;
	char out[16];
	size_t at;

	(void)state;
	at = raw_begin(&r);
	raw_u32(&r, MUX_S_PERMISSION_DENIED);
	raw_u32(&r, 1);
	raw_u32(&r, 9);
	raw_bytes(&r, "no\n\033[2Jx\x7f", 9);
	raw_end(&r, at);
	decode_one(r.b, r.n, &m);
	assert_int_equal(m.reason.len, 9);
	assert_memory_equal(m.reason.p, "no\n\033[2Jx\x7f", 9);
	rsdk_printable(out, sizeof out, m.reason.p, m.reason.len);
	assert_string_equal(out, "no??[2Jx?");
}

/* ---- incomplete, truncated, oversized and garbage input ------------------ */

/* Every proper prefix of a valid packet asks for more, never fails. */
static void
test_every_prefix_needs_more(void **state)
{
	struct rsdk_buf b = {0};
	struct mux_msg m;
	size_t used = 12345;
	char err[200];

	(void)state;
	assert_int_equal(mux_enc_session(&b, 1, "uname -a"), 0);
	for (size_t n = 0; n < rsdk_buf_size(&b); n++) {
		assert_int_equal(mux_decode(rsdk_buf_str(&b), n, &m, &used, err, sizeof err), 0);
		assert_int_equal(used, 12345); /* untouched */
	}
	assert_int_equal(
	    mux_decode(rsdk_buf_str(&b), rsdk_buf_size(&b), &m, &used, err, sizeof err), 1);
	rsdk_buf_free(&b);
}

static void
expect_malformed(const struct raw *r, const char *needle)
{
	struct mux_msg m;
	size_t used = 0;
	char err[200] = "";

	assert_int_equal(mux_decode(r->b, r->n, &m, &used, err, sizeof err), -1);
	if (strstr(err, needle) == NULL)
		fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
	assert_int_equal(m.type, 0); /* nothing half-filled */
}

/* The length says the packet is complete, but a field runs past its end. */
static void
test_truncated_body_rejected(void **state)
{
	struct raw r = {0};
	size_t at;

	(void)state;
	/* ALIVE without the pid. */
	at = raw_begin(&r);
	raw_u32(&r, MUX_S_ALIVE);
	raw_u32(&r, 3);
	raw_end(&r, at);
	expect_malformed(&r,
	                 "ALIVE message truncated: value needs 4 bytes at body offset 8, 0 left");

	/* FAILURE whose reason claims more bytes than the packet holds. */
	r.n = 0;
	at = raw_begin(&r);
	raw_u32(&r, MUX_S_FAILURE);
	raw_u32(&r, 3);
	raw_u32(&r, 100);
	raw_bytes(&r, "short", 5);
	raw_end(&r, at);
	expect_malformed(&r, "FAILURE message truncated: reason needs 100 bytes");

	/* OK without even its id. */
	r.n = 0;
	at = raw_begin(&r);
	raw_u32(&r, MUX_S_OK);
	raw_end(&r, at);
	expect_malformed(&r, "OK message truncated: id needs 4 bytes");

	/* A hello whose extension value is cut. */
	r.n = 0;
	at = raw_begin(&r);
	raw_u32(&r, MUX_MSG_HELLO);
	raw_u32(&r, 4);
	raw_str(&r, "ext");
	raw_u32(&r, 2);
	raw_end(&r, at);
	expect_malformed(&r, "HELLO message truncated: extension value");
}

static void
test_oversized_rejected_at_once(void **state)
{
	struct raw r = {0};

	(void)state;
	/* Only the length has arrived: no point waiting for 256 KiB + 1. */
	raw_u32(&r, MUX_PACKET_MAX + 1);
	expect_malformed(&r, "length 262145 exceeds the limit of 262144 bytes");
	r.n = 0;
	raw_u32(&r, 0xffffffffu);
	expect_malformed(&r, "length 4294967295 exceeds");
}

static void
test_garbage_rejected(void **state)
{
	struct raw r = {0};
	size_t at;

	(void)state;
	/* Too short to hold a type. */
	raw_u32(&r, 2);
	raw_bytes(&r, "xy", 2);
	expect_malformed(&r, "length 2 is too short for a message type");
	r.n = 0;
	raw_u32(&r, 0);
	expect_malformed(&r, "length 0 is too short");

	/* Text where a packet should be ("SSH-2.0-…" read as a length). */
	r.n = 0;
	raw_bytes(&r, "SSH-2.0-OpenSSH_9.2\r\n", 21);
	expect_malformed(&r, "exceeds the limit");

	/* A type that is neither a request nor an answer of the protocol. */
	r.n = 0;
	at = raw_begin(&r);
	raw_u32(&r, 0x12345678u);
	raw_u32(&r, 1);
	raw_end(&r, at);
	expect_malformed(&r, "type 0x12345678 is not a known message");
}

/* ---- encoders refuse what cannot be sent ---------------------------------- */

static void
test_encoder_refuses_oversized(void **state)
{
	struct rsdk_buf b = {0};
	char *big = malloc(MUX_PACKET_MAX + 1);

	(void)state;
	assert_non_null(big);
	memset(big, 'x', MUX_PACKET_MAX);
	big[MUX_PACKET_MAX] = '\0';
	assert_int_equal(mux_enc_hello(&b), 0);
	assert_int_equal(mux_enc_session(&b, 1, big), -1);
	/* All or nothing: the hello before it is intact, nothing after. */
	assert_int_equal(rsdk_buf_size(&b), 12);
	/* body = type 4 + id 4 + reserved 4 + 5 flags 20 + term 4 + cmd 4+len:
	 * one byte over, then exactly at the limit. */
	big[MUX_PACKET_MAX - 39] = '\0';
	assert_int_equal(mux_enc_session(&b, 1, big), -1);
	assert_int_equal(rsdk_buf_size(&b), 12);
	big[MUX_PACKET_MAX - 40] = '\0';
	assert_int_equal(mux_enc_session(&b, 1, big), 0);
	assert_int_equal(rsdk_buf_size(&b), 12 + 4 + MUX_PACKET_MAX);
	free(big);
	rsdk_buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hello_round_trip),
	    cmocka_unit_test(test_request_round_trip),
	    cmocka_unit_test(test_fwd_round_trip),
	    cmocka_unit_test(test_session_round_trip),
	    cmocka_unit_test(test_stdio_fwd_round_trip),
	    cmocka_unit_test(test_pipelined_packets),
	    cmocka_unit_test(test_server_answers),
	    cmocka_unit_test(test_reason_raw_then_printable),
	    cmocka_unit_test(test_every_prefix_needs_more),
	    cmocka_unit_test(test_truncated_body_rejected),
	    cmocka_unit_test(test_oversized_rejected_at_once),
	    cmocka_unit_test(test_garbage_rejected),
	    cmocka_unit_test(test_encoder_refuses_oversized),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
