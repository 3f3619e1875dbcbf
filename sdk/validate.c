/* Option values: parsers and validators.  Each error names the bad part
 * of the value; the core adds FILE:LINE and the key. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdhpf/sdk.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* The value is the user's, but it goes into a log line: made printable. */
static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return RDHPF_ERR_INVAL;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	rsdk_printable(err, errlen, err, strlen(err));
	return RDHPF_ERR_INVAL;
}

static int
is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

/* Digits only, no sign, no spaces; *out up to max. */
static int
parse_uint(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (!is_digit(s[i]))
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > max)
			return -1;
	}
	*out = v;
	return 0;
}

static int
port_tok(const char *s, size_t len, uint16_t *out)
{
	uint64_t v;

	if (parse_uint(s, len, 65535, &v) != 0 || v == 0)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

int
rsdk_parse_port(const char *s, uint16_t *out, char *err, size_t errlen)
{
	if (s == NULL || port_tok(s, strlen(s), out) != 0)
		return fail(err, errlen, "\"%s\" is not a port (1..65535)", s != NULL ? s : "");
	return RDHPF_OK;
}

int
rsdk_parse_ranges(const char *s, struct rsdk_ranges *out, char *err, size_t errlen)
{
	struct rsdk_ranges r = {NULL, 0};
	const char *p = s != NULL ? s : "";

	out->v = NULL;
	out->n = 0;
	for (;;) {
		const char *tok, *dash;
		size_t len;
		char word[64];
		struct rsdk_range rg, *nv;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		tok = p;
		while (*p != '\0' && *p != ' ' && *p != '\t' && *p != ',')
			p++;
		len = (size_t)(p - tok);
		rsdk_printable(word, sizeof word, tok, len);
		dash = memchr(tok, '-', len);
		if (dash == NULL) {
			if (port_tok(tok, len, &rg.lo) != 0)
				goto bad_port;
			rg.hi = rg.lo;
		} else {
			if (port_tok(tok, (size_t)(dash - tok), &rg.lo) != 0 ||
			    port_tok(dash + 1, len - (size_t)(dash - tok) - 1, &rg.hi) != 0)
				goto bad_port;
			if (rg.hi < rg.lo) {
				rsdk_ranges_free(&r);
				return fail(err, errlen, "range \"%s\" ends before it starts",
				            word);
			}
		}
		nv = realloc(r.v, (r.n + 1) * sizeof *nv);
		if (nv == NULL) {
			rsdk_ranges_free(&r);
			if (err != NULL && errlen > 0)
				snprintf(err, errlen, "out of memory");
			return RDHPF_ERR_NOMEM;
		}
		r.v = nv;
		r.v[r.n++] = rg;
		continue;
	bad_port:
		rsdk_ranges_free(&r);
		return fail(err, errlen, "\"%s\" is not a port (1..65535) or a range LO-HI", word);
	}
	if (r.n == 0)
		return fail(err, errlen, "no port given");
	*out = r;
	return RDHPF_OK;
}

int
rsdk_ranges_has(const struct rsdk_ranges *r, uint16_t port)
{
	for (size_t i = 0; i < r->n; i++)
		if (port >= r->v[i].lo && port <= r->v[i].hi)
			return 1;
	return 0;
}

void
rsdk_ranges_free(struct rsdk_ranges *r)
{
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

int
rsdk_parse_bool(const char *s, int *out, char *err, size_t errlen)
{
	static const char *const yes[] = {"yes", "true", "on", "1", NULL};
	static const char *const no[] = {"no", "false", "off", "0", NULL};

	for (size_t i = 0; s != NULL && yes[i] != NULL; i++) {
		if (strcmp(s, yes[i]) == 0) {
			*out = 1;
			return RDHPF_OK;
		}
		if (strcmp(s, no[i]) == 0) {
			*out = 0;
			return RDHPF_OK;
		}
	}
	return fail(err, errlen, "\"%s\" is not a boolean (yes/no, true/false, on/off, 1/0)",
	            s != NULL ? s : "");
}

int
rsdk_parse_duration_ms(const char *s, uint64_t *out, char *err, size_t errlen)
{
	/* Up to about 100 years: no overflow in any unit. */
	static const uint64_t max = UINT64_C(3155760000000);
	const char *p = s != NULL ? s : "";
	size_t digits = 0;
	uint64_t v, mult;

	while (is_digit(p[digits]))
		digits++;
	if (digits == 0)
		return fail(err, errlen, "\"%s\" is not a duration (e.g. 250ms, 2s, 1m, 1h)", p);
	if (parse_uint(p, digits, max, &v) != 0)
		return fail(err, errlen, "\"%s\" is too large a duration", p);
	if (strcmp(p + digits, "") == 0 || strcmp(p + digits, "s") == 0)
		mult = 1000;
	else if (strcmp(p + digits, "ms") == 0)
		mult = 1;
	else if (strcmp(p + digits, "m") == 0)
		mult = 60 * 1000;
	else if (strcmp(p + digits, "h") == 0)
		mult = 3600 * 1000;
	else
		return fail(err, errlen, "\"%s\": unknown unit (ms, s, m or h)", p);
	if (v > max / mult)
		return fail(err, errlen, "\"%s\" is too large a duration", p);
	*out = v * mult;
	return RDHPF_OK;
}

int
rsdk_check_abs_path(const char *s, char *err, size_t errlen)
{
	const char *p;

	if (s == NULL || s[0] != '/')
		return fail(err, errlen, "\"%s\" is not an absolute path", s != NULL ? s : "");
	for (p = s; *p != '\0'; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch < 0x20 || ch == 0x7f)
			return fail(err, errlen, "path \"%s\" holds a control character", s);
	}
	/* ".." as a whole component only: "a..b" is a fine name. */
	for (p = s; (p = strstr(p, "..")) != NULL; p += 2) {
		if (p[-1] == '/' && (p[2] == '/' || p[2] == '\0'))
			return fail(err, errlen, "path \"%s\" holds \"..\"", s);
	}
	return RDHPF_OK;
}

int
rsdk_check_name(const char *s, char *err, size_t errlen)
{
	size_t n;

	if (s == NULL || s[0] == '\0')
		return fail(err, errlen, "empty name");
	for (n = 0; s[n] != '\0'; n++) {
		char ch = s[n];
		int alnum = is_digit(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
		if (n == 0 && !alnum)
			return fail(err, errlen, "\"%s\": a name starts with a letter or a digit",
			            s);
		if (!alnum && ch != '_' && ch != '.' && ch != '-')
			return fail(err, errlen,
			            "\"%s\": a name holds only letters, digits, '_', '.' and '-'",
			            s);
	}
	if (n > 128)
		return fail(err, errlen, "\"%s\" is longer than 128 characters", s);
	return RDHPF_OK;
}

int
rsdk_check_enum(const char *s, const char *const *words, char *err, size_t errlen)
{
	char list[256] = "";
	size_t used = 0;

	for (size_t i = 0; s != NULL && words[i] != NULL; i++)
		if (strcmp(s, words[i]) == 0)
			return RDHPF_OK;
	for (size_t i = 0; words[i] != NULL && used < sizeof list; i++) {
		int n = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", words[i]);
		if (n < 0)
			break;
		used += (size_t)n;
	}
	return fail(err, errlen, "\"%s\" is not one of: %s", s != NULL ? s : "", list);
}
