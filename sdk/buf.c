/* Strings and the growable byte buffer. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdhpf/sdk.h"

char *
rsdk_strdup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

void
rsdk_printable(char *out, size_t outlen, const char *s, size_t len)
{
	size_t i;

	if (outlen == 0)
		return;
	for (i = 0; i < len && i + 1 < outlen; i++) {
		unsigned char ch = (unsigned char)s[i];
		out[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	out[i] = '\0';
}

void
rsdk_buf_init(struct rsdk_buf *b)
{
	b->data = NULL;
	b->off = b->len = b->cap = 0;
}

void
rsdk_buf_free(struct rsdk_buf *b)
{
	free(b->data);
	rsdk_buf_init(b);
}

void
rsdk_buf_reset(struct rsdk_buf *b)
{
	b->off = b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

/* Room for n more bytes plus the NUL.  Slides the content to the front
 * first when that is enough, so a buffer consumed from the front does not
 * grow forever. */
static int
buf_reserve(struct rsdk_buf *b, size_t n)
{
	size_t used = b->len - b->off;
	size_t need, cap;
	char *v;

	if (n > SIZE_MAX - used - 1)
		return RDHPF_ERR_NOMEM;
	need = used + n + 1;
	if (b->len + n + 1 <= b->cap)
		return RDHPF_OK;
	if (need <= b->cap) {
		memmove(b->data, b->data + b->off, used);
		b->off = 0;
		b->len = used;
		b->data[used] = '\0';
		return RDHPF_OK;
	}
	cap = b->cap ? b->cap : 256;
	while (cap < need) {
		if (cap > SIZE_MAX / 2) {
			cap = need;
			break;
		}
		cap *= 2;
	}
	if (b->off > 0) {
		memmove(b->data, b->data + b->off, used);
		b->off = 0;
		b->len = used;
	}
	v = realloc(b->data, cap);
	if (v == NULL)
		return RDHPF_ERR_NOMEM;
	b->data = v;
	b->cap = cap;
	b->data[b->len] = '\0';
	return RDHPF_OK;
}

int
rsdk_buf_append(struct rsdk_buf *b, const void *p, size_t n)
{
	int rc = buf_reserve(b, n);

	if (rc != RDHPF_OK)
		return rc;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return RDHPF_OK;
}

int
rsdk_buf_printf(struct rsdk_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return RDHPF_ERR_INVAL;
	rc = buf_reserve(b, (size_t)n);
	if (rc != RDHPF_OK)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return RDHPF_OK;
}

void
rsdk_buf_consume(struct rsdk_buf *b, size_t n)
{
	size_t used = b->len - b->off;

	if (n >= used) {
		rsdk_buf_reset(b);
		return;
	}
	b->off += n;
}

const char *
rsdk_buf_str(const struct rsdk_buf *b)
{
	return b->data != NULL ? b->data + b->off : "";
}

size_t
rsdk_buf_size(const struct rsdk_buf *b)
{
	return b->len - b->off;
}
