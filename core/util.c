#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t
str_copy(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);

	if (size > 0) {
		size_t k = n < size - 1 ? n : size - 1;
		memcpy(dst, src, k);
		dst[k] = '\0';
	}
	return n;
}

static void
oom(void)
{
	fputs("rdhpf: out of memory\n", stderr);
	abort();
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		oom();
	return p;
}

void *
xcalloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);
	if (p == NULL)
		oom();
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (q == NULL)
		oom();
	return q;
}

void *
xgrow(void *v, size_t n, size_t *cap, size_t sz)
{
	if (n < *cap)
		return v;
	*cap = *cap ? *cap * 2 : 8;
	return xrealloc(v, *cap * sz);
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

int
parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (s == NULL || *s == '\0')
		return -1;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		unsigned d = (unsigned)(*p - '0');
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (s[0] == '0' && s[1] != '\0')
		return -1;
	*out = v;
	return 0;
}

int
parse_port(const char *s, uint16_t *out)
{
	uint64_t v;

	if (parse_u64(s, 65535, &v) != 0 || v == 0)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

char *
shell_join(const char *const *argv)
{
	size_t len = 0;
	char *buf, *p;

	if (argv == NULL || argv[0] == NULL)
		return NULL;
	for (size_t i = 0; argv[i]; i++) {
		len += 3; /* quotes and separator */
		for (const char *c = argv[i]; *c; c++)
			len += *c == '\'' ? 4 : 1;
	}
	buf = malloc(len + 1);
	if (buf == NULL)
		return NULL;
	p = buf;
	for (size_t i = 0; argv[i]; i++) {
		if (i > 0)
			*p++ = ' ';
		*p++ = '\'';
		for (const char *c = argv[i]; *c; c++) {
			if (*c == '\'') {
				memcpy(p, "'\\''", 4);
				p += 4;
			} else {
				*p++ = *c;
			}
		}
		*p++ = '\'';
	}
	*p = '\0';
	return buf;
}
