/* transport-openssh: byte buffers. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"

size_t
buf_avail(const struct buf *b)
{
	return b->len - b->off;
}

int
buf_put(struct buf *b, const void *p, size_t n)
{
	if (b->off > 0 && b->len + n > b->cap) {
		memmove(b->d, b->d + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		unsigned char *d;
		while (cap < b->len + n)
			cap *= 2;
		d = realloc(b->d, cap);
		if (d == NULL)
			return -1;
		b->d = d;
		b->cap = cap;
	}
	memcpy(b->d + b->len, p, n);
	b->len += n;
	return 0;
}

void
buf_consume(struct buf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len)
		b->off = b->len = 0;
}

void
buf_free(struct buf *b)
{
	free(b->d);
	memset(b, 0, sizeof *b);
}
