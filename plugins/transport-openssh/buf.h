/* transport-openssh: a growable byte buffer with a read offset. */
#ifndef OSSH_BUF_H
#define OSSH_BUF_H

#include <stddef.h>

struct buf {
	unsigned char *d;
	size_t off, len, cap; /* live bytes are d[off..len) */
};

size_t buf_avail(const struct buf *b);
int buf_put(struct buf *b, const void *p, size_t n);
void buf_consume(struct buf *b, size_t n);
void buf_free(struct buf *b);

#endif
