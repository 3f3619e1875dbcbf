/* transport-openssh: the mux protocol (PROTOCOL.mux): packets built and read in memory, no I/O. */
#include <string.h>

#include "mux.h"

static void
put_u32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

uint32_t
get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

void
pkt_u32(struct pkt *p, uint32_t v)
{
	unsigned char x[4];

	put_u32(x, v);
	p->err |= buf_put(&p->b, x, 4);
}

void
pkt_str(struct pkt *p, const char *s)
{
	size_t n = strlen(s);

	pkt_u32(p, (uint32_t)n);
	p->err |= buf_put(&p->b, s, n);
}

/* Append the finished packet (length + body) to out.  0 or -1. */
int
pkt_finish(struct pkt *p, struct buf *out)
{
	unsigned char x[4];
	int r = -1;

	if (p->err == 0) {
		put_u32(x, (uint32_t)buf_avail(&p->b));
		if (buf_put(out, x, 4) == 0 && buf_put(out, p->b.d + p->b.off, buf_avail(&p->b)) == 0)
			r = 0;
	}
	buf_free(&p->b);
	return r;
}

uint32_t
rd_u32(struct rd *r)
{
	uint32_t v;

	if (r->n < 4) {
		r->err = 1;
		return 0;
	}
	v = get_u32(r->p);
	r->p += 4;
	r->n -= 4;
	return v;
}

/* Copy a string into out (truncated, NUL-terminated, control characters
 * replaced: the master's words end up in logs). */
void
rd_str(struct rd *r, char *out, size_t outlen)
{
	uint32_t n = rd_u32(r);
	size_t k = 0;

	out[0] = '\0';
	if (r->err || n > r->n) {
		r->err = 1;
		return;
	}
	for (uint32_t i = 0; i < n && k + 1 < outlen; i++) {
		unsigned char c = r->p[i];
		out[k++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	out[k] = '\0';
	r->p += n;
	r->n -= n;
}

int
mux_hello(struct buf *out)
{
	struct pkt p = {0};

	pkt_u32(&p, MUX_MSG_HELLO);
	pkt_u32(&p, MUX_VERSION);
	return pkt_finish(&p, out);
}
