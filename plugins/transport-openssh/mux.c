/* transport-openssh: the mux protocol (PROTOCOL.mux): packets built and
 * read in memory, no I/O. */
#include <stdio.h>
#include <string.h>

#include "mux.h"

/* ---- encoding ------------------------------------------------------------ */

/* A packet under construction: length (filled in last), then the body. */
struct enc {
	struct rsdk_buf b;
	int err;
};

static void
put_u32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t
get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void
enc_u32(struct enc *e, uint32_t v)
{
	unsigned char x[4];

	put_u32(x, v);
	if (e->err == 0 && rsdk_buf_append(&e->b, x, 4) != 0)
		e->err = 1;
}

static void
enc_str(struct enc *e, const char *s)
{
	size_t n = strlen(s);

	if (n > MUX_PACKET_MAX) {
		e->err = 1;
		return;
	}
	enc_u32(e, (uint32_t)n);
	if (e->err == 0 && rsdk_buf_append(&e->b, s, n) != 0)
		e->err = 1;
}

/* Append the packet to out (one append: all or nothing) and free it. */
static int
enc_finish(struct enc *e, struct rsdk_buf *out)
{
	size_t n = rsdk_buf_size(&e->b);
	int r = -1;

	if (e->err == 0 && n >= 4 && n - 4 <= MUX_PACKET_MAX) {
		put_u32((unsigned char *)e->b.data + e->b.off, (uint32_t)(n - 4));
		r = rsdk_buf_append(out, rsdk_buf_str(&e->b), n) == 0 ? 0 : -1;
	}
	rsdk_buf_free(&e->b);
	return r;
}

/* Every packet starts with room for its length. */
static void
enc_begin(struct enc *e, uint32_t type)
{
	static const unsigned char len[4];

	memset(e, 0, sizeof *e);
	if (rsdk_buf_append(&e->b, len, 4) != 0)
		e->err = 1;
	enc_u32(e, type);
}

int
mux_enc_hello(struct rsdk_buf *out)
{
	struct enc e;

	enc_begin(&e, MUX_MSG_HELLO);
	enc_u32(&e, MUX_VERSION);
	return enc_finish(&e, out);
}

int
mux_enc_request(struct rsdk_buf *out, uint32_t type, uint32_t id)
{
	struct enc e;

	enc_begin(&e, type);
	enc_u32(&e, id);
	return enc_finish(&e, out);
}

int
mux_enc_fwd(struct rsdk_buf *out, uint32_t type, uint32_t id, const char *lhost, uint32_t lport,
            const char *chost, uint32_t cport)
{
	struct enc e;

	enc_begin(&e, type);
	enc_u32(&e, id);
	enc_u32(&e, MUX_FWD_LOCAL);
	enc_str(&e, lhost);
	enc_u32(&e, lport);
	enc_str(&e, chost);
	enc_u32(&e, cport);
	return enc_finish(&e, out);
}

int
mux_enc_session(struct rsdk_buf *out, uint32_t id, const char *cmd)
{
	struct enc e;

	enc_begin(&e, MUX_C_NEW_SESSION);
	enc_u32(&e, id);
	enc_str(&e, ""); /* reserved */
	enc_u32(&e, 0);  /* want tty */
	enc_u32(&e, 0);  /* want X11 forwarding */
	enc_u32(&e, 0);  /* want agent forwarding */
	enc_u32(&e, 0);  /* subsystem */
	enc_u32(&e, MUX_NO_ESCAPE);
	enc_str(&e, ""); /* terminal type */
	enc_str(&e, cmd);
	return enc_finish(&e, out);
}

int
mux_enc_stdio_fwd(struct rsdk_buf *out, uint32_t id, const char *host, uint32_t port)
{
	struct enc e;

	enc_begin(&e, MUX_C_NEW_STDIO_FWD);
	enc_u32(&e, id);
	enc_str(&e, ""); /* reserved */
	enc_str(&e, host);
	enc_u32(&e, port);
	return enc_finish(&e, out);
}

/* ---- decoding ------------------------------------------------------------ */

/* Reading a packet body, bounded; the first failure is kept in err. */
struct dec {
	const unsigned char *p;
	size_t n;
	size_t off; /* of p in the body, for messages */
	uint32_t type;
	char *err;
	size_t errlen;
	int bad;
};

static const char *
type_name(uint32_t type)
{
	switch (type) {
	case MUX_MSG_HELLO:
		return "HELLO";
	case MUX_C_NEW_SESSION:
		return "NEW_SESSION";
	case MUX_C_ALIVE_CHECK:
		return "ALIVE_CHECK";
	case MUX_C_TERMINATE:
		return "TERMINATE";
	case MUX_C_OPEN_FWD:
		return "OPEN_FWD";
	case MUX_C_CLOSE_FWD:
		return "CLOSE_FWD";
	case MUX_C_NEW_STDIO_FWD:
		return "NEW_STDIO_FWD";
	case MUX_S_OK:
		return "OK";
	case MUX_S_PERMISSION_DENIED:
		return "PERMISSION_DENIED";
	case MUX_S_FAILURE:
		return "FAILURE";
	case MUX_S_EXIT_MESSAGE:
		return "EXIT_MESSAGE";
	case MUX_S_ALIVE:
		return "ALIVE";
	case MUX_S_SESSION_OPENED:
		return "SESSION_OPENED";
	case MUX_S_REMOTE_PORT:
		return "REMOTE_PORT";
	case MUX_S_TTY_ALLOC_FAIL:
		return "TTY_ALLOC_FAIL";
	default:
		return NULL;
	}
}

static void
dec_fail(struct dec *d, const char *what, size_t need)
{
	const char *tn = type_name(d->type);

	if (d->bad)
		return;
	d->bad = 1;
	if (tn != NULL)
		snprintf(
		    d->err, d->errlen,
		    "mux %s message truncated: %s needs %zu bytes at body offset %zu, %zu left", tn,
		    what, need, d->off, d->n);
	else
		snprintf(
		    d->err, d->errlen,
		    "mux message 0x%08x truncated: %s needs %zu bytes at body offset %zu, %zu left",
		    (unsigned)d->type, what, need, d->off, d->n);
}

static uint32_t
dec_u32(struct dec *d, const char *what)
{
	uint32_t v;

	if (d->bad)
		return 0;
	if (d->n < 4) {
		dec_fail(d, what, 4);
		return 0;
	}
	v = get_u32(d->p);
	d->p += 4;
	d->n -= 4;
	d->off += 4;
	return v;
}

static struct mux_str
dec_str(struct dec *d, const char *what)
{
	struct mux_str s = {"", 0};
	uint32_t n = dec_u32(d, what);

	if (d->bad)
		return s;
	if (n > d->n) {
		dec_fail(d, what, n);
		return s;
	}
	s.p = (const char *)d->p;
	s.len = n;
	d->p += n;
	d->n -= n;
	d->off += n;
	return s;
}

int
mux_is_reply(uint32_t type)
{
	return (type & 0x80000000u) != 0;
}

int
mux_decode(const void *buf, size_t n, struct mux_msg *m, size_t *used, char *err, size_t errlen)
{
	const unsigned char *p = buf;
	struct dec d;
	uint32_t len;

	memset(m, 0, sizeof *m);
	if (n < 4)
		return 0;
	len = get_u32(p);
	if (len > MUX_PACKET_MAX) {
		snprintf(err, errlen, "mux packet length %u exceeds the limit of %u bytes",
		         (unsigned)len, MUX_PACKET_MAX);
		return -1;
	}
	if (len < 4) {
		snprintf(err, errlen, "mux packet length %u is too short for a message type",
		         (unsigned)len);
		return -1;
	}
	if (n - 4 < len)
		return 0;
	memset(&d, 0, sizeof d);
	d.p = p + 4;
	d.n = len;
	d.err = err;
	d.errlen = errlen;
	m->type = d.type = dec_u32(&d, "type");
	switch (m->type) {
	case MUX_MSG_HELLO:
		m->version = dec_u32(&d, "version");
		/* Extensions: name/value string pairs, to the end of the packet. */
		while (!d.bad && d.n > 0) {
			(void)dec_str(&d, "extension name");
			(void)dec_str(&d, "extension value");
		}
		break;
	case MUX_S_OK:
	case MUX_S_TTY_ALLOC_FAIL:
	case MUX_C_ALIVE_CHECK:
	case MUX_C_TERMINATE:
		m->id = dec_u32(&d, "id");
		break;
	case MUX_S_FAILURE:
	case MUX_S_PERMISSION_DENIED:
		m->id = dec_u32(&d, "id");
		m->reason = dec_str(&d, "reason");
		break;
	case MUX_S_ALIVE:
	case MUX_S_SESSION_OPENED:
	case MUX_S_REMOTE_PORT:
	case MUX_S_EXIT_MESSAGE:
		m->id = dec_u32(&d, "id");
		m->value = dec_u32(&d, "value");
		break;
	case MUX_C_OPEN_FWD:
	case MUX_C_CLOSE_FWD:
		m->id = dec_u32(&d, "id");
		m->fwd_type = dec_u32(&d, "forward type");
		m->lhost = dec_str(&d, "listen host");
		m->lport = dec_u32(&d, "listen port");
		m->chost = dec_str(&d, "connect host");
		m->cport = dec_u32(&d, "connect port");
		break;
	case MUX_C_NEW_STDIO_FWD:
		m->id = dec_u32(&d, "id");
		(void)dec_str(&d, "reserved");
		m->chost = dec_str(&d, "connect host");
		m->cport = dec_u32(&d, "connect port");
		break;
	case MUX_C_NEW_SESSION:
		m->id = dec_u32(&d, "id");
		(void)dec_str(&d, "reserved");
		m->want_tty = dec_u32(&d, "want tty");
		(void)dec_u32(&d, "want X11");
		(void)dec_u32(&d, "want agent");
		(void)dec_u32(&d, "subsystem");
		m->escape = dec_u32(&d, "escape character");
		m->term = dec_str(&d, "terminal type");
		m->cmd = dec_str(&d, "command");
		/* Environment strings may follow: not ours to read. */
		break;
	default:
		if (!mux_is_reply(m->type)) {
			snprintf(err, errlen, "mux message type 0x%08x is not a known message",
			         (unsigned)m->type);
			memset(m, 0, sizeof *m);
			return -1;
		}
		/* An answer newer than version 4: its id, if it has one. */
		if (d.n >= 4)
			m->id = dec_u32(&d, "id");
		break;
	}
	if (d.bad) {
		memset(m, 0, sizeof *m);
		return -1;
	}
	*used = 4 + (size_t)len;
	return 1;
}
