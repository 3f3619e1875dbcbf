/* Port rules: parsing, matching, and the "can never match" check. */
#include "rules.h"

#include <arpa/inet.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdhpf/plugin.h"
#include "util.h"

static void fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* "N" or "N-M", 1..65535, N <= M. */
static int
parse_range(const char *s, uint16_t *lo, uint16_t *hi)
{
	char buf[16];
	const char *dash = strchr(s, '-');

	if (dash == NULL) {
		if (parse_port(s, lo) != 0)
			return -1;
		*hi = *lo;
		return 0;
	}
	if ((size_t)(dash - s) >= sizeof buf)
		return -1;
	memcpy(buf, s, (size_t)(dash - s));
	buf[dash - s] = '\0';
	if (parse_port(buf, lo) != 0 || parse_port(dash + 1, hi) != 0 || *lo > *hi)
		return -1;
	return 0;
}

/* Values come from the config file, but end up in logs, status and globs:
 * printable ASCII only, and bounded. */
static bool
value_ok(const char *v)
{
	size_t n = strlen(v);

	if (n == 0 || n >= RULE_GLOB_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] >= 0x7f)
			return false;
	return true;
}

static bool
addr_ok(const char *v)
{
	unsigned char a[16];

	return strcmp(v, "localhost") == 0 || inet_pton(AF_INET, v, a) == 1 ||
	       inet_pton(AF_INET6, v, a) == 1;
}

static const char *
proto_name(int p)
{
	switch (p) {
	case RDHPF_PROTO_TCP:
		return "tcp";
	case RDHPF_PROTO_UDP:
		return "udp";
	case RDHPF_PROTO_SCTP:
		return "sctp";
	}
	return "any";
}

#define TOKENS_MAX 16

int
rule_parse(const char *text, int line, struct rule *out, char *err, size_t errlen)
{
	char buf[RULE_TEXT_MAX];
	char *tok[TOKENS_MAX];
	size_t nt = 0, len = strlen(text);
	struct rule r = {.line = line};
	bool arrow = false, seen_port = false;

	if (len >= sizeof buf) {
		fail(err, errlen, "rule too long (at most %zu characters)", sizeof buf - 1);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)text[i] < 0x20 && text[i] != '\t') {
			fail(err, errlen, "control character in rule");
			return -1;
		}
	}
	memcpy(buf, text, len + 1);
	/* "->" may be glued to its neighbours ("80->8080"): give it room. */
	for (char *p = buf; *p != '\0'; p++) {
		if (p[0] == '-' && p[1] == '>') {
			p[0] = ' ';
			p[1] = '\x01';
		}
	}
	for (char *p = buf; *p != '\0';) {
		p += strspn(p, " \t");
		if (*p == '\0')
			break;
		if (nt == TOKENS_MAX) {
			fail(err, errlen, "too many words (at most %d)", TOKENS_MAX);
			return -1;
		}
		if (*p == '\x01') {
			*p = '\0';
			tok[nt++] = p; /* "" stands for -> */
			p++;
			continue;
		}
		tok[nt++] = p;
		p += strcspn(p, " \t\x01");
		if (*p == ' ' || *p == '\t')
			*p++ = '\0';
		else if (*p == '\x01') {
			/* cannot happen: '\x01' follows a space we wrote */
			fail(err, errlen, "bad '->'");
			return -1;
		}
	}
	if (nt == 0) {
		fail(
		    err, errlen,
		    "empty rule (use: forward|ignore [port=N[-M]] [proto=tcp|udp|sctp] "
		    "[name=GLOB] [image=GLOB] [label=KEY[=VALUE]] [-> LOCAL[-LOCAL]] [bind=ADDR])");
		return -1;
	}
	if (strcmp(tok[0], "forward") == 0)
		r.action = RULE_FORWARD;
	else if (strcmp(tok[0], "ignore") == 0)
		r.action = RULE_IGNORE;
	else {
		fail(err, errlen, "bad action '%.40s' (forward or ignore)", tok[0]);
		return -1;
	}

	for (size_t i = 1; i < nt; i++) {
		const char *t = tok[i], *eq, *v;
		size_t kn;

		if (arrow) {
			arrow = false;
			if (t[0] == '\0' || parse_range(t, &r.to_lo, &r.to_hi) != 0) {
				fail(err, errlen,
				     "bad local port '%.40s' after '->' (N or N-M, 1-65535)", t);
				goto bad;
			}
			continue;
		}
		if (t[0] == '\0') {
			if (r.action != RULE_FORWARD) {
				fail(err, errlen, "'->' only with forward");
				goto bad;
			}
			if (r.to_lo != 0) {
				fail(err, errlen, "'->' given twice");
				goto bad;
			}
			arrow = true;
			continue;
		}
		if ((eq = strchr(t, '=')) == NULL) {
			fail(err, errlen, "bad word '%.40s' (expected KEY=VALUE or '->')", t);
			goto bad;
		}
		kn = (size_t)(eq - t);
		v = eq + 1;
#define KEY_IS(s) (kn == sizeof(s) - 1 && memcmp(t, s, kn) == 0)
		if (KEY_IS("port")) {
			if (seen_port) {
				fail(err, errlen, "port given twice");
				goto bad;
			}
			seen_port = true;
			if (parse_range(v, &r.port_lo, &r.port_hi) != 0) {
				fail(err, errlen, "bad port '%.40s' (N or N-M, 1-65535)", v);
				goto bad;
			}
		} else if (KEY_IS("proto")) {
			if (r.proto != 0) {
				fail(err, errlen, "proto given twice");
				goto bad;
			}
			if (strcmp(v, "tcp") == 0)
				r.proto = RDHPF_PROTO_TCP;
			else if (strcmp(v, "udp") == 0)
				r.proto = RDHPF_PROTO_UDP;
			else if (strcmp(v, "sctp") == 0)
				r.proto = RDHPF_PROTO_SCTP;
			else {
				fail(err, errlen, "bad proto '%.40s' (tcp, udp or sctp)", v);
				goto bad;
			}
		} else if (KEY_IS("name") || KEY_IS("image") || KEY_IS("bind")) {
			char **dst = KEY_IS("name")    ? &r.name
			             : KEY_IS("image") ? &r.image
			                               : &r.bind;
			if (*dst != NULL) {
				fail(err, errlen, "%.*s given twice", (int)kn, t);
				goto bad;
			}
			if (!value_ok(v)) {
				fail(err, errlen,
				     "bad %.*s '%.40s' (1-%d printable characters, no spaces)",
				     (int)kn, t, v, RULE_GLOB_MAX - 1);
				goto bad;
			}
			if (KEY_IS("bind")) {
				if (r.action != RULE_FORWARD) {
					fail(err, errlen, "bind only with forward");
					goto bad;
				}
				if (!addr_ok(v)) {
					fail(err, errlen,
					     "bad bind '%.40s' (an IPv4 or IPv6 address, or "
					     "localhost)",
					     v);
					goto bad;
				}
			}
			*dst = xstrdup(v);
		} else if (KEY_IS("label")) {
			const char *veq = strchr(v, '=');
			size_t keyn = veq ? (size_t)(veq - v) : strlen(v);
			if (r.label_key != NULL) {
				fail(err, errlen, "label given twice");
				goto bad;
			}
			if (!value_ok(v) || keyn == 0) {
				fail(err, errlen,
				     "bad label '%.40s' (KEY or KEY=VALUE, printable, no spaces)",
				     v);
				goto bad;
			}
			r.label_key = xstrndup(v, keyn);
			if (veq != NULL)
				r.label_value = xstrdup(veq + 1);
		} else {
			fail(err, errlen,
			     "unknown matcher '%.*s' (port, proto, name, image, label, bind)",
			     (int)kn, t);
			goto bad;
		}
#undef KEY_IS
	}
	if (arrow) {
		fail(err, errlen, "'->' without a local port");
		goto bad;
	}
	if (r.action == RULE_FORWARD && r.proto != 0 && r.proto != RDHPF_PROTO_TCP) {
		fail(err, errlen,
		     "SSH forwards carry TCP only: forward proto=%s can never work (use ignore)",
		     proto_name(r.proto));
		goto bad;
	}
	if (r.to_lo != 0) {
		unsigned want = r.port_lo ? (unsigned)(r.port_hi - r.port_lo) : 0;
		unsigned got = (unsigned)(r.to_hi - r.to_lo);
		if (r.port_lo == 0) {
			fail(err, errlen, "'-> %u' needs port=: which remote port goes there?",
			     r.to_lo);
			goto bad;
		}
		if (got != want && got != 0) {
			fail(err, errlen,
			     "local range %u-%u has %u ports but port=%u-%u has %u (ranges map one "
			     "to one)",
			     r.to_lo, r.to_hi, got + 1, r.port_lo, r.port_hi, want + 1);
			goto bad;
		}
		if (got == 0 && want != 0) {
			fail(err, errlen,
			     "'-> %u' for the %u ports of port=%u-%u: several remote ports cannot "
			     "share "
			     "one local port (give a range: -> %u-%u)",
			     r.to_lo, want + 1, r.port_lo, r.port_hi, r.to_lo,
			     r.to_lo + want > 65535 ? 65535 : r.to_lo + want);
			goto bad;
		}
	}
	*out = r;
	return 0;
bad:
	rule_clear(&r);
	return -1;
}

void
rule_clear(struct rule *r)
{
	free(r->file);
	free(r->name);
	free(r->image);
	free(r->label_key);
	free(r->label_value);
	free(r->bind);
	memset(r, 0, sizeof *r);
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

void
rule_copy(struct rule *dst, const struct rule *src)
{
	*dst = *src;
	dst->file = dup_or_null(src->file);
	dst->name = dup_or_null(src->name);
	dst->image = dup_or_null(src->image);
	dst->label_key = dup_or_null(src->label_key);
	dst->label_value = dup_or_null(src->label_value);
	dst->bind = dup_or_null(src->bind);
}

static bool
str_eq(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

bool
rule_same(const struct rule *a, const struct rule *b)
{
	return a->action == b->action && a->line == b->line && str_eq(a->file, b->file) &&
	       a->port_lo == b->port_lo && a->port_hi == b->port_hi && a->proto == b->proto &&
	       str_eq(a->name, b->name) && str_eq(a->image, b->image) &&
	       str_eq(a->label_key, b->label_key) && str_eq(a->label_value, b->label_value) &&
	       a->to_lo == b->to_lo && a->to_hi == b->to_hi && str_eq(a->bind, b->bind);
}

/* Appends to buf at *off, never past len. */
static void put(char *buf, size_t len, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
put(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*off >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *off, len - *off, fmt, ap);
	va_end(ap);
	if (n > 0)
		*off += (size_t)n;
}

static void
put_range(char *buf, size_t len, size_t *off, uint16_t lo, uint16_t hi)
{
	if (lo == hi)
		put(buf, len, off, "%u", lo);
	else
		put(buf, len, off, "%u-%u", lo, hi);
}

void
rule_format(const struct rule *r, char *buf, size_t len)
{
	size_t off = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	put(buf, len, &off, "%s", r->action == RULE_FORWARD ? "forward" : "ignore");
	if (r->port_lo != 0) {
		put(buf, len, &off, " port=");
		put_range(buf, len, &off, r->port_lo, r->port_hi);
	}
	if (r->proto != 0)
		put(buf, len, &off, " proto=%s", proto_name(r->proto));
	if (r->name != NULL)
		put(buf, len, &off, " name=%s", r->name);
	if (r->image != NULL)
		put(buf, len, &off, " image=%s", r->image);
	if (r->label_key != NULL)
		put(buf, len, &off, " label=%s%s%s", r->label_key, r->label_value ? "=" : "",
		    r->label_value ? r->label_value : "");
	if (r->to_lo != 0) {
		put(buf, len, &off, " -> ");
		put_range(buf, len, &off, r->to_lo, r->to_hi);
	}
	if (r->bind != NULL)
		put(buf, len, &off, " bind=%s", r->bind);
}

static bool
glob_match(const char *glob, const char *s)
{
	return glob == NULL || (s != NULL && fnmatch(glob, s, 0) == 0);
}

bool
rule_matches(const struct rule *r, const struct rule_subject *s)
{
	if (r->port_lo != 0 && (s->port < r->port_lo || s->port > r->port_hi))
		return false;
	if (r->proto != 0 && r->proto != s->proto)
		return false;
	if (!glob_match(r->name, s->name) || !glob_match(r->image, s->image))
		return false;
	if (r->label_key != NULL) {
		bool found = false;
		for (size_t i = 0; i < s->n_labels && !found; i++) {
			const struct rule_label *l = &s->labels[i];
			found = l->key != NULL && strcmp(l->key, r->label_key) == 0 &&
			        (r->label_value == NULL ||
			         (l->value != NULL && strcmp(l->value, r->label_value) == 0));
		}
		if (!found)
			return false;
	}
	return true;
}

long
rules_first(const struct rule *rs, size_t n, const struct rule_subject *s)
{
	for (size_t i = 0; i < n; i++)
		if (rule_matches(&rs[i], s))
			return (long)i;
	return -1;
}

uint16_t
rule_local_port(const struct rule *r, uint16_t p)
{
	if (r->action != RULE_FORWARD || r->to_lo == 0)
		return 0;
	if (r->to_lo == r->to_hi)
		return r->to_lo;
	/* parse_range and the same-size check keep this inside 1..65535 */
	return (uint16_t)(r->to_lo + (p - r->port_lo));
}

static bool
has_glob_chars(const char *s)
{
	return strpbrk(s, "*?[\\") != NULL;
}

/* Every string glob b matches, glob a matches too (conservatively). */
static bool
glob_covers(const char *a, const char *b)
{
	if (a == NULL || strcmp(a, "*") == 0)
		return true;
	if (b == NULL)
		return false;
	if (strcmp(a, b) == 0)
		return true;
	return !has_glob_chars(b) && fnmatch(a, b, 0) == 0;
}

bool
rule_covers(const struct rule *a, const struct rule *b)
{
	if (a->port_lo != 0 &&
	    (b->port_lo == 0 || b->port_lo < a->port_lo || b->port_hi > a->port_hi))
		return false;
	if (a->proto != 0 && a->proto != b->proto)
		return false;
	if (!glob_covers(a->name, b->name) || !glob_covers(a->image, b->image))
		return false;
	if (a->label_key != NULL) {
		if (b->label_key == NULL || strcmp(a->label_key, b->label_key) != 0)
			return false;
		if (a->label_value != NULL && !str_eq(a->label_value, b->label_value))
			return false;
	}
	return true;
}

long
rules_shadowed_by(const struct rule *rs, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (rule_covers(&rs[j], &rs[i]))
			return (long)j;
	return -1;
}
