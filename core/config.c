/* Configuration: INI file → hosts with their effective policy (config.h).
 *
 * inih does the key = value splitting and inline comments; everything it
 * would do silently wrong is done before it sees a line, in our reader:
 *  - line numbers: inih's handler gets none (Debian builds without
 *    INI_HANDLER_LINENO), so the reader counts lines and the handler, which
 *    inih calls while it works on the line just read, uses that count;
 *  - continuation lines: inih joins an indented line to the previous key;
 *    the reader strips leading blanks, so an indented line is an ordinary one;
 *  - syntax errors: inih reports only the first, by line; the reader checks
 *    every line, reports each and hands inih an empty line instead;
 *  - section headers: inih truncates names at 50 bytes and ignores text
 *    after ']'; the reader parses headers itself and hands inih "[N]", N an
 *    index into its own table of sections;
 *  - long lines: inih splits a line longer than its buffer into two; the
 *    reader reports such a line instead.
 * Values are validated where they stand, so an error in [defaults] is
 * reported once, not once per host; defaults are applied after the whole
 * file is read, so a [defaults] section anywhere applies to every host. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "log.h"
#include "util.h"

#define CFG_MAX_FILE (1024 * 1024)
#define HOST_NAME_MAX_LEN 64
#define PLUGIN_NAME_MAX_LEN 64
#define KEY_MAX_LEN 64
#define DURATION_MAX_MS (8760ull * 3600 * 1000)
#define DURATION_HINT "(use 500ms, 15s, 2m, 1h)"

/* ---- small character classes (ASCII only, locale-independent) ---------- */

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_alnum(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* Letters, digits, '.', '_', '-': user names, host names, zones, keys. */
static bool
is_word(char c)
{
	return is_alnum(c) || c == '.' || c == '_' || c == '-';
}

static void
describe_char(char c, char *buf, size_t len)
{
	if (c > ' ' && c < 0x7f)
		snprintf(buf, len, "'%c'", c);
	else
		snprintf(buf, len, "byte 0x%02x", (unsigned)(unsigned char)c);
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* ---- ssh URLs ----------------------------------------------------------- */

static int
check_user(const char *s, size_t n, struct ssh_url *u, char *err, size_t errlen)
{
	char ch[16];

	if (n == 0)
		return fail(err, errlen, "empty user before '@'");
	if (s[0] == '-')
		return fail(err, errlen, "user starts with '-'");
	for (size_t i = 0; i < n; i++) {
		if (s[i] == ':')
			return fail(err, errlen, "password in url is not supported");
		if (!is_word(s[i])) {
			describe_char(s[i], ch, sizeof ch);
			return fail(err, errlen,
			            "user contains %s (allowed: letters, digits, . _ -)", ch);
		}
	}
	if (n >= sizeof u->user)
		return fail(err, errlen, "user longer than %zu characters", sizeof u->user - 1);
	memcpy(u->user, s, n);
	u->user[n] = '\0';
	return 0;
}

static int
check_name_host(const char *s, size_t n, struct ssh_url *u, char *err, size_t errlen)
{
	char ch[16];

	if (n == 0)
		return fail(err, errlen, "empty host");
	if (s[0] == '-')
		return fail(err, errlen, "host starts with '-'");
	for (size_t i = 0; i < n; i++) {
		if (!is_word(s[i])) {
			describe_char(s[i], ch, sizeof ch);
			return fail(
			    err, errlen,
			    "host contains %s (allowed: letters, digits, . - _; IPv6 in [ ])", ch);
		}
	}
	if (n > 253)
		return fail(err, errlen, "host longer than 253 characters");
	memcpy(u->host, s, n);
	u->host[n] = '\0';
	return 0;
}

/* s..s+n is what stands between [ and ]: an IPv6 address, maybe %zone. */
static int
check_ipv6_host(const char *s, size_t n, struct ssh_url *u, char *err, size_t errlen)
{
	char addr[INET6_ADDRSTRLEN + 1];
	unsigned char bin[16];
	const char *pct = memchr(s, '%', n);
	size_t an = pct ? (size_t)(pct - s) : n;
	char ch[16];

	if (n == 0)
		return fail(err, errlen, "empty host");
	for (size_t i = 0; i < an; i++) {
		if (!is_hex(s[i]) && s[i] != ':' && s[i] != '.') {
			describe_char(s[i], ch, sizeof ch);
			return fail(err, errlen, "IPv6 address contains %s", ch);
		}
	}
	if (an >= sizeof addr)
		return fail(err, errlen, "bad IPv6 address '%.*s'", (int)an, s);
	memcpy(addr, s, an);
	addr[an] = '\0';
	if (inet_pton(AF_INET6, addr, bin) != 1)
		return fail(err, errlen, "bad IPv6 address '%s'", addr);
	if (pct != NULL) {
		size_t zn = n - an - 1;
		if (zn == 0)
			return fail(err, errlen, "empty zone after '%%'");
		for (size_t i = an + 1; i < n; i++) {
			if (!is_word(s[i])) {
				describe_char(s[i], ch, sizeof ch);
				return fail(err, errlen,
				            "zone contains %s (allowed: letters, digits, . _ -)",
				            ch);
			}
		}
		if (zn > 64)
			return fail(err, errlen, "zone longer than 64 characters");
	}
	memcpy(u->host, s, n);
	u->host[n] = '\0';
	return 0;
}

int
ssh_url_parse(const char *s, struct ssh_url *u, char *err, size_t errlen)
{
	const char *sep, *auth, *end, *at, *hs, *he, *port = NULL;
	char ch[16];

	memset(u, 0, sizeof *u);
	if (s == NULL || *s == '\0')
		return fail(err, errlen, "empty");
	sep = strstr(s, "://");
	if (sep == NULL)
		return fail(err, errlen, "missing ssh:// scheme");
	if (sep - s != 3 || strncasecmp(s, "ssh", 3) != 0) {
		bool sane = sep > s && sep - s <= 16;
		for (const char *p = s; sane && p < sep; p++)
			sane = is_alnum(*p) || *p == '+' || *p == '.' || *p == '-';
		if (sane)
			return fail(err, errlen,
			            "unsupported scheme '%.*s' (only ssh:// is supported)",
			            (int)(sep - s), s);
		return fail(err, errlen, "missing ssh:// scheme");
	}
	auth = sep + 3;
	end = auth + strcspn(auth, "/?#");
	if (*end != '\0' && strcmp(end, "/") != 0)
		return fail(err, errlen,
		            "unexpected '%s' after the host (only ssh://[user@]host[:port])", end);

	at = memchr(auth, '@', (size_t)(end - auth));
	if (at != NULL) {
		if (check_user(auth, (size_t)(at - auth), u, err, errlen) != 0)
			return -1;
		hs = at + 1;
	} else {
		hs = auth;
	}
	if (hs == end)
		return fail(err, errlen, "empty host");

	if (*hs == '[') {
		he = memchr(hs, ']', (size_t)(end - hs));
		if (he == NULL)
			return fail(err, errlen, "unbalanced [ ]");
		if (check_ipv6_host(hs + 1, (size_t)(he - hs - 1), u, err, errlen) != 0)
			return -1;
		if (he + 1 < end) {
			if (he[1] != ':') {
				describe_char(he[1], ch, sizeof ch);
				return fail(err, errlen, "unexpected %s after ']'", ch);
			}
			port = he + 2;
		}
	} else {
		size_t colons = 0;
		for (const char *p = hs; p < end; p++) {
			if (*p == '[' || *p == ']')
				return fail(err, errlen, "unbalanced [ ]");
			colons += *p == ':';
		}
		if (colons > 1)
			return fail(err, errlen,
			            "IPv6 address must be in [ ], e.g. ssh://[::1]:22");
		he = memchr(hs, ':', (size_t)(end - hs));
		if (he == NULL)
			he = end;
		if (check_name_host(hs, (size_t)(he - hs), u, err, errlen) != 0)
			return -1;
		if (he < end)
			port = he + 1;
	}

	if (port != NULL) {
		char pb[8];
		size_t pn = (size_t)(end - port);
		if (pn >= sizeof pb)
			return fail(err, errlen, "bad port '%.*s' (1-65535)", (int)pn, port);
		memcpy(pb, port, pn);
		pb[pn] = '\0';
		if (parse_port(pb, &u->port) != 0)
			return fail(err, errlen, "bad port '%s' (1-65535)", pb);
	}
	return 0;
}

/* The URL for a message, without a password someone put in it. */
static char *
url_for_message(const char *url)
{
	const char *auth = strstr(url, "://"), *end, *at, *colon;
	size_t head, tail;
	char *r;

	if (auth == NULL)
		return xstrdup(url);
	auth += 3;
	end = auth + strcspn(auth, "/?#");
	at = memchr(auth, '@', (size_t)(end - auth));
	colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	if (colon == NULL)
		return xstrdup(url);
	head = (size_t)(colon + 1 - url);
	tail = strlen(at) + 1;
	r = xmalloc(head + 3 + tail);
	memcpy(r, url, head);
	memcpy(r + head, "***", 3);
	memcpy(r + head + 3, at, tail);
	return r;
}

/* ---- durations and numbers --------------------------------------------- */

int
parse_duration(const char *s, uint64_t *ms, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		uint64_t factor;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 3600 * 1000}};
	char digits[24];
	size_t n;
	const char *unit;
	uint64_t v, factor = 0;

	if (s == NULL || *s == '\0')
		return fail(err, errlen, "bad duration '': empty " DURATION_HINT);
	if (s[0] == '-')
		return fail(err, errlen, "bad duration '%s': negative " DURATION_HINT, s);
	n = strspn(s, "0123456789");
	if (n == 0)
		return fail(err, errlen, "bad duration '%s' " DURATION_HINT, s);
	unit = s + n;
	if (*unit == '.' || *unit == ',')
		return fail(
		    err, errlen,
		    "bad duration '%s': fractions are not supported (write 1500ms, not 1.5s)", s);
	if (*unit == '\0') {
		if (n == 1 && s[0] == '0') {
			*ms = 0;
			return 0;
		}
		return fail(err, errlen, "bad duration '%s': missing unit " DURATION_HINT, s);
	}
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcmp(unit, units[i].name) == 0)
			factor = units[i].factor;
	}
	if (factor == 0) {
		bool word = true;
		for (const char *p = unit; *p; p++)
			word = word && is_alnum(*p);
		if (word)
			return fail(err, errlen,
			            "bad duration '%s': unknown unit '%s' " DURATION_HINT, s, unit);
		return fail(err, errlen, "bad duration '%s' " DURATION_HINT, s);
	}
	if (n >= sizeof digits)
		return fail(err, errlen, "bad duration '%s': too large (at most 8760h)", s);
	memcpy(digits, s, n);
	digits[n] = '\0';
	if (n > 1 && digits[0] == '0')
		return fail(err, errlen, "bad duration '%s': leading zero " DURATION_HINT, s);
	if (parse_u64(digits, UINT64_MAX, &v) != 0 || v > DURATION_MAX_MS / factor)
		return fail(err, errlen, "bad duration '%s': too large (at most 8760h)", s);
	*ms = v * factor;
	return 0;
}

void
format_duration(uint64_t ms, char *buf, size_t len)
{
	if (ms == 0)
		snprintf(buf, len, "0");
	else if (ms % (3600 * 1000) == 0)
		snprintf(buf, len, "%" PRIu64 "h", ms / (3600 * 1000));
	else if (ms % (60 * 1000) == 0)
		snprintf(buf, len, "%" PRIu64 "m", ms / (60 * 1000));
	else if (ms % 1000 == 0)
		snprintf(buf, len, "%" PRIu64 "s", ms / 1000);
	else
		snprintf(buf, len, "%" PRIu64 "ms", ms);
}

/* "2", "1.5", "0.25": digits, optionally '.' and digits.  No sign, no
 * exponent, no locale: strtod would take "inf", "0x1p3" and "1,5". */
static int
parse_real(const char *s, double *out)
{
	uint64_t mant = 0, scale = 1;
	size_t ni = 0, nf = 0;
	const char *p = s;

	for (; is_digit(*p); p++, ni++) {
		if (ni >= 9)
			return -1;
		mant = mant * 10 + (uint64_t)(*p - '0');
	}
	if (ni == 0)
		return -1;
	if (*p == '.') {
		for (p++; is_digit(*p); p++, nf++) {
			if (nf >= 9)
				return -1;
			mant = mant * 10 + (uint64_t)(*p - '0');
			scale *= 10;
		}
		if (nf == 0)
			return -1;
	}
	if (*p != '\0')
		return -1;
	*out = (double)mant / (double)scale;
	return 0;
}

/* "-65535".."65535", optional sign. */
static int
parse_offset(const char *s, int32_t *out)
{
	uint64_t v;
	bool neg = false;

	if (*s == '-' || *s == '+') {
		neg = *s == '-';
		s++;
	}
	if (parse_u64(s, 65535, &v) != 0)
		return -1;
	*out = neg ? -(int32_t)v : (int32_t)v;
	return 0;
}

/* ---- errors ------------------------------------------------------------- */

void
cfg_add_error(struct cfg *c, int line, const char *section, const char *key, const char *fmt, ...)
{
	char prefix[512];
	size_t pn = 0;
	const char *path = c->path ? c->path : "config";
	va_list ap, ap2;
	int mn;
	char *text, *escaped;

	if (line > 0)
		snprintf(prefix, sizeof prefix, "%s:%d: ", path, line);
	else
		snprintf(prefix, sizeof prefix, "%s: ", path);
	pn = strlen(prefix);
	if (section != NULL && *section != '\0') {
		snprintf(prefix + pn, sizeof prefix - pn, "[%s]%s", section, key ? " " : ": ");
		pn = strlen(prefix);
	}
	if (key != NULL) {
		snprintf(prefix + pn, sizeof prefix - pn, "%s: ", key);
		pn = strlen(prefix);
	}

	va_start(ap, fmt);
	va_copy(ap2, ap);
	mn = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (mn < 0)
		mn = 0;
	text = xmalloc(pn + (size_t)mn + 1);
	memcpy(text, prefix, pn);
	vsnprintf(text + pn, (size_t)mn + 1, fmt, ap2);
	text[pn + (size_t)mn] = '\0';
	va_end(ap2);

	/* Errors quote the config's bytes and go to a terminal: no raw
	 * controls. */
	escaped = term_escape_dup(text);
	free(text);
	c->errors = xrealloc(c->errors, (c->n_errors + 1) * sizeof *c->errors);
	c->errors[c->n_errors].text = escaped;
	c->errors[c->n_errors].line = line;
	c->n_errors++;
}

/* Stable, so that errors of one line keep the order they were found in. */
static void
sort_errors(struct cfg *c)
{
	for (size_t i = 1; i < c->n_errors; i++) {
		struct cfg_error e = c->errors[i];
		size_t j = i;
		while (j > 0 && c->errors[j - 1].line > e.line) {
			c->errors[j] = c->errors[j - 1];
			j--;
		}
		c->errors[j] = e;
	}
}

/* ---- keys ---------------------------------------------------------------- */

enum key_id {
	K_URL,
	K_TRANSPORT,
	K_RUNTIME,
	K_IDENTITY_FILE,
	K_KNOWN_HOSTS,
	K_BIND_ADDRESS,
	K_HEALTH_INTERVAL,
	K_POLL_INTERVAL,
	K_KEEPALIVE_INTERVAL,
	K_KEEPALIVE_COUNT,
	K_CONNECT_TIMEOUT,
	K_BACKOFF_INITIAL,
	K_BACKOFF_MAX,
	K_BACKOFF_MULTIPLIER,
	K_BACKOFF_JITTER,
	K_BREAKER_THRESHOLD,
	K_BREAKER_COOLDOWN,
	K_RECONNECT_PROBE,
	K_LABELS,
	K_PORT_OFFSET,
	K_PORT_MAP,
	K_PRIVILEGED,
	K_ON_CONFLICT,
	K_PLUGIN_DIR,
	K_LOG_FORMAT,
	K_LOG_LEVEL,
	K_RUNTIME_DIR,
	K_METRICS_LISTEN,
	K_ENGINE_SOCKET,
	K__COUNT
};

enum key_where {
	W_HOST,   /* host sections only */
	W_BOTH,   /* host sections and [defaults] */
	W_GLOBAL, /* [defaults] (or before any section) only */
};

enum key_type {
	T_URL,
	T_PLUGIN,   /* a plugin name */
	T_PATH,     /* absolute, or ~/… */
	T_ADDR,     /* a list of IPv4 / IPv6 literals or "localhost" */
	T_DURATION, /* > 0 */
	T_UINT,     /* min..max */
	T_REAL,     /* dmin..dmax */
	T_OFFSET,
	T_PORTMAP,
	T_CHOICE,
	T_LISTEN,     /* IPv4:port or [IPv6]:port */
	T_PRIVILEGED, /* "skip" or "offset N" */
	T_ENGINE,     /* yes, no, or an absolute path on the remote */
};

struct key_def {
	const char *name;
	enum key_where where;
	enum key_type type;
	uint64_t min, max;
	double dmin, dmax;
	const char *const *choices;
	const char *choices_text;
};

static const char *const log_formats[] = {"logfmt", "json", NULL};
static const char *const log_levels[] = {"error", "warn", "info", "debug", "trace", NULL};
static const char *const on_conflicts[] = {"wait", "next-free", NULL};
static const char *const yes_no[] = {"yes", "no", NULL};

static const struct key_def keys[K__COUNT] = {
    [K_URL] = {.name = "url", .where = W_HOST, .type = T_URL},
    [K_TRANSPORT] = {.name = "transport", .where = W_BOTH, .type = T_PLUGIN},
    [K_RUNTIME] = {.name = "runtime", .where = W_BOTH, .type = T_PLUGIN},
    [K_IDENTITY_FILE] = {.name = "identity_file", .where = W_BOTH, .type = T_PATH},
    [K_KNOWN_HOSTS] = {.name = "known_hosts", .where = W_BOTH, .type = T_PATH},
    [K_BIND_ADDRESS] = {.name = "bind_address", .where = W_BOTH, .type = T_ADDR},
    [K_HEALTH_INTERVAL] = {.name = "health_interval", .where = W_BOTH, .type = T_DURATION},
    [K_POLL_INTERVAL] = {.name = "poll_interval",
                         .where = W_BOTH,
                         .type = T_DURATION,
                         .min = 100,
                         .max = 3600 * 1000},
    [K_KEEPALIVE_INTERVAL] = {.name = "keepalive_interval", .where = W_BOTH, .type = T_DURATION},
    [K_KEEPALIVE_COUNT] =
        {.name = "keepalive_count", .where = W_BOTH, .type = T_UINT, .min = 1, .max = 100},
    [K_CONNECT_TIMEOUT] = {.name = "connect_timeout", .where = W_BOTH, .type = T_DURATION},
    [K_BACKOFF_INITIAL] = {.name = "backoff_initial", .where = W_BOTH, .type = T_DURATION},
    [K_BACKOFF_MAX] = {.name = "backoff_max", .where = W_BOTH, .type = T_DURATION},
    [K_BACKOFF_MULTIPLIER] =
        {.name = "backoff_multiplier", .where = W_BOTH, .type = T_REAL, .dmin = 1.0, .dmax = 10.0},
    [K_BACKOFF_JITTER] =
        {.name = "backoff_jitter", .where = W_BOTH, .type = T_REAL, .dmin = 0.0, .dmax = 1.0},
    [K_BREAKER_THRESHOLD] =
        {.name = "breaker_threshold", .where = W_BOTH, .type = T_UINT, .min = 1, .max = 1000},
    [K_BREAKER_COOLDOWN] = {.name = "breaker_cooldown", .where = W_BOTH, .type = T_DURATION},
    [K_RECONNECT_PROBE] = {.name = "reconnect_probe",
                           .where = W_BOTH,
                           .type = T_CHOICE,
                           .choices = yes_no,
                           .choices_text = "yes or no"},
    [K_LABELS] = {.name = "labels",
                  .where = W_BOTH,
                  .type = T_CHOICE,
                  .choices = yes_no,
                  .choices_text = "yes or no"},
    [K_PORT_OFFSET] = {.name = "port_offset", .where = W_BOTH, .type = T_OFFSET},
    [K_PORT_MAP] = {.name = "port_map", .where = W_BOTH, .type = T_PORTMAP},
    [K_PRIVILEGED] = {.name = "privileged", .where = W_BOTH, .type = T_PRIVILEGED},
    [K_ON_CONFLICT] = {.name = "on_conflict",
                       .where = W_BOTH,
                       .type = T_CHOICE,
                       .choices = on_conflicts,
                       .choices_text = "wait or next-free"},
    [K_PLUGIN_DIR] = {.name = "plugin_dir", .where = W_GLOBAL, .type = T_PATH},
    [K_LOG_FORMAT] = {.name = "log_format",
                      .where = W_GLOBAL,
                      .type = T_CHOICE,
                      .choices = log_formats,
                      .choices_text = "logfmt or json"},
    [K_LOG_LEVEL] = {.name = "log_level",
                     .where = W_GLOBAL,
                     .type = T_CHOICE,
                     .choices = log_levels,
                     .choices_text = "error, warn, info, debug or trace"},
    [K_RUNTIME_DIR] = {.name = "runtime_dir", .where = W_GLOBAL, .type = T_PATH},
    [K_METRICS_LISTEN] = {.name = "metrics_listen", .where = W_GLOBAL, .type = T_LISTEN},
    [K_ENGINE_SOCKET] = {.name = "engine_socket", .where = W_BOTH, .type = T_ENGINE},
};

static int
key_lookup(const char *name)
{
	for (int k = 0; k < K__COUNT; k++) {
		if (strcmp(keys[k].name, name) == 0)
			return k;
	}
	return -1;
}

/* What one section (or all of [defaults]) set.  A key that was set but
 * failed validation has line[k] != 0 and ok[k] false: it counts for
 * duplicate and "missing url" checks, and the next level's value is used. */
struct scope {
	int line[K__COUNT];
	bool ok[K__COUNT];
	char *str[K__COUNT];
	uint64_t num[K__COUNT];
	double real[K__COUNT];
	int32_t offset;
	struct ssh_url u;
	struct cfg_port_map *pm;
	size_t n_pm;
	struct rule *rules; /* host sections only */
	size_t n_rules;
	struct cfg_opt *opts;
	size_t n_opts;
};

static void
scope_free(struct scope *s)
{
	for (int k = 0; k < K__COUNT; k++)
		free(s->str[k]);
	free(s->pm);
	for (size_t i = 0; i < s->n_rules; i++)
		rule_clear(&s->rules[i]);
	free(s->rules);
	for (size_t i = 0; i < s->n_opts; i++) {
		free(s->opts[i].key);
		free(s->opts[i].value);
	}
	free(s->opts);
}

/* ---- parser state --------------------------------------------------------- */

enum sec_kind { SEC_DEFAULTS, SEC_HOST, SEC_IGNORE };

struct section {
	enum sec_kind kind;
	size_t host;
};

struct phost {
	char *name;
	char *label; /* host "NAME" */
	int line;
	struct scope s;
};

struct parse {
	struct cfg *c;
	const char *p, *end; /* text not yet read */
	int lineno;          /* of the line inih works on */
	struct section *secs;
	size_t n_secs;
	struct scope defaults; /* before any section and every [defaults] */
	struct phost *hosts;
	size_t n_hosts;
};

static const char DEFAULTS_LABEL[] = "defaults";

static void perr(struct parse *ps, const char *label, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
perr(struct parse *ps, const char *label, const char *key, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	cfg_add_error(ps->c, ps->lineno, label, key, "%s", buf);
}

static bool
host_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > HOST_NAME_MAX_LEN || s[0] == '-' || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!is_word(s[i]))
			return false;
	}
	return true;
}

/* s..s+n is between [ and ], trimmed. */
static struct section
classify_section(struct parse *ps, const char *s, size_t n)
{
	struct section sec = {SEC_IGNORE, 0};
	const char *q;
	size_t qn;

	if (n == 8 && memcmp(s, "defaults", 8) == 0) {
		sec.kind = SEC_DEFAULTS;
		return sec;
	}
	if (n < 5 || memcmp(s, "host", 4) != 0 || !is_blank(s[4])) {
		perr(ps, NULL, NULL,
		     "unknown section [%.*s] (expected [defaults] or [host \"NAME\"])", (int)n, s);
		return sec;
	}
	q = s + 5;
	qn = n - 5;
	while (qn > 0 && is_blank(*q)) {
		q++;
		qn--;
	}
	if (qn < 2 || q[0] != '"' || q[qn - 1] != '"' || memchr(q + 1, '"', qn - 2) != NULL) {
		perr(ps, NULL, NULL, "bad section [%.*s] (expected [host \"NAME\"])", (int)n, s);
		return sec;
	}
	q++;
	qn -= 2;
	if (!host_name_ok(q, qn)) {
		perr(ps, NULL, NULL,
		     "[host \"%.*s\"]: bad host name (1-%d letters, digits, . _ -; "
		     "not starting with . or -)",
		     (int)qn, q, HOST_NAME_MAX_LEN);
		return sec;
	}
	for (size_t i = 0; i < ps->n_hosts; i++) {
		if (strlen(ps->hosts[i].name) == qn && memcmp(ps->hosts[i].name, q, qn) == 0) {
			perr(ps, ps->hosts[i].label, NULL,
			     "duplicate host (first defined at line %d)", ps->hosts[i].line);
			return sec;
		}
	}
	ps->hosts = xrealloc(ps->hosts, (ps->n_hosts + 1) * sizeof *ps->hosts);
	struct phost *h = &ps->hosts[ps->n_hosts];
	memset(h, 0, sizeof *h);
	h->name = xstrndup(q, qn);
	h->label = xmalloc(qn + 8);
	snprintf(h->label, qn + 8, "host \"%s\"", h->name);
	h->line = ps->lineno;
	sec.kind = SEC_HOST;
	sec.host = ps->n_hosts++;
	return sec;
}

/* A header line, trimmed; s[0] == '['.  Writes "[N]" for inih. */
static void
section_line(struct parse *ps, const char *s, size_t n, char *buf, int num)
{
	struct section sec = {SEC_IGNORE, 0};
	const char *close = memchr(s, ']', n);

	if (close == NULL) {
		perr(ps, NULL, NULL, "missing ']' in section header");
	} else {
		const char *rest = close + 1, *in = s + 1;
		size_t in_n = (size_t)(close - in);
		while (rest < s + n && is_blank(*rest))
			rest++;
		while (in_n > 0 && is_blank(*in)) {
			in++;
			in_n--;
		}
		while (in_n > 0 && is_blank(in[in_n - 1]))
			in_n--;
		if (rest < s + n && *rest != ';' && *rest != '#')
			perr(ps, NULL, NULL, "unexpected text after ']' in section header");
		else
			sec = classify_section(ps, in, in_n);
	}
	ps->secs = xrealloc(ps->secs, (ps->n_secs + 1) * sizeof *ps->secs);
	ps->secs[ps->n_secs] = sec;
	if (snprintf(buf, (size_t)num, "[%zu]", ps->n_secs) >= num)
		buf[0] = '\0'; /* inih's buffer is 200 bytes; cannot happen */
	ps->n_secs++;
}

/* fgets for inih, over ps->p..ps->end: one line per call, pre-checked. */
static char *
reader(char *buf, int num, void *stream)
{
	struct parse *ps = stream;
	const char *line, *lend, *nl, *sep;
	size_t n;

	if (ps->p >= ps->end || num < 2)
		return NULL;
	line = ps->p;
	nl = memchr(line, '\n', (size_t)(ps->end - line));
	lend = nl ? nl : ps->end;
	ps->p = nl ? nl + 1 : ps->end;
	ps->lineno++;
	buf[0] = '\0';

	if (ps->lineno == 1 && lend - line >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0)
		line += 3;
	if (memchr(line, '\0', (size_t)(lend - line)) != NULL) {
		perr(ps, NULL, NULL, "NUL byte in line");
		return buf;
	}
	while (line < lend && is_blank(*line))
		line++;
	while (lend > line && is_blank(lend[-1]))
		lend--;
	n = (size_t)(lend - line);
	if (n == 0 || *line == ';' || *line == '#')
		return buf;
	if (*line == '[') {
		section_line(ps, line, n, buf, num);
		return buf;
	}
	if (n >= (size_t)num) {
		perr(ps, NULL, NULL, "line too long (at most %d characters)", num - 1);
		return buf;
	}
	/* Where inih will split: the first '=' or ':', or an inline comment. */
	for (sep = line; sep < lend; sep++) {
		if (*sep == '=' || *sep == ':')
			break;
		if (*sep == ';' && sep > line && is_blank(sep[-1]))
			break;
	}
	if (sep == lend || *sep != '=') {
		perr(ps, NULL, NULL, "expected 'key = value', a [section] or a comment");
		return buf;
	}
	if (sep == line) {
		perr(ps, NULL, NULL, "missing key before '='");
		return buf;
	}
	memcpy(buf, line, n);
	buf[n] = '\0';
	return buf;
}

/* ---- values ----------------------------------------------------------- */

static bool
plugin_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > PLUGIN_NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!(is_digit(s[i]) || (s[i] >= 'a' && s[i] <= 'z') || s[i] == '-'))
			return false;
	}
	return true;
}

/* known_hosts and identity_file reach ssh (and libssh2) as ssh_config
 * values: quoted, where ", \ and ${ would end or expand the quote and a
 * control byte would end the line.  Refused here, at FILE:LINE, rather
 * than when a transport first connects. */
#define SSH_PATH_MAX 1000

static bool
ssh_path_ok(const char *p)
{
	if (strlen(p) > SSH_PATH_MAX)
		return false;
	for (; *p; p++)
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 ||
		    (unsigned char)*p == 0x7f || (p[0] == '$' && p[1] == '{'))
			return false;
	return true;
}

/* "~/x" → "$HOME/x"; the result must be absolute.  NULL + err on failure. */
static char *
expand_path(const char *v, char *err, size_t errlen)
{
	if (v[0] == '~') {
		const char *home = getenv("HOME");
		size_t hn;
		char *r;

		if (v[1] != '\0' && v[1] != '/') {
			fail(err, errlen, "'%s': only ~/ is expanded (~user is not)", v);
			return NULL;
		}
		if (home == NULL || home[0] != '/') {
			fail(err, errlen, "'%s': ~ needs $HOME to be an absolute path", v);
			return NULL;
		}
		hn = strlen(home);
		while (hn > 1 && home[hn - 1] == '/')
			hn--;
		r = xmalloc(hn + strlen(v + 1) + 1);
		memcpy(r, home, hn);
		memcpy(r + hn, v + 1, strlen(v + 1) + 1);
		return r;
	}
	if (v[0] != '/') {
		fail(err, errlen, "'%s' is not an absolute path (start it with / or ~/)", v);
		return NULL;
	}
	return xstrdup(v);
}

static bool
parse_port_map(struct parse *ps, struct scope *sc, const char *label, const char *name,
               const char *v)
{
	const char *p = v;
	struct cfg_port_map *pm = NULL;
	size_t n = 0;
	bool ok = true;

	for (;;) {
		char tok[16];
		size_t tn;
		const char *colon;
		struct cfg_port_map e;

		p += strspn(p, " \t,");
		if (*p == '\0')
			break;
		tn = strcspn(p, " \t,");
		colon = memchr(p, ':', tn);
		if (tn >= sizeof tok || colon == NULL) {
			perr(ps, label, name,
			     "bad port pair '%.*s' (use REMOTE:LOCAL, e.g. 8080:18080)", (int)tn,
			     p);
			ok = false;
			p += tn;
			continue;
		}
		memcpy(tok, p, tn);
		tok[tn] = '\0';
		tok[colon - p] = '\0';
		if (parse_port(tok, &e.remote) != 0 ||
		    parse_port(tok + (colon - p) + 1, &e.local) != 0) {
			perr(ps, label, name,
			     "bad port pair '%.*s' (use REMOTE:LOCAL, ports 1-65535, e.g. "
			     "8080:18080)",
			     (int)tn, p);
			ok = false;
			p += tn;
			continue;
		}
		p += tn;
		for (size_t i = 0; i < n; i++) {
			if (pm[i].remote == e.remote) {
				perr(ps, label, name, "remote port %u is mapped twice",
				     (unsigned)e.remote);
				ok = false;
			} else if (pm[i].local == e.local) {
				perr(ps, label, name, "local port %u is used twice",
				     (unsigned)e.local);
				ok = false;
			}
		}
		pm = xrealloc(pm, (n + 1) * sizeof *pm);
		pm[n++] = e;
	}
	if (ok && n == 0) {
		perr(ps, label, name, "no port pairs (use REMOTE:LOCAL, e.g. 8080:18080)");
		ok = false;
	}
	if (!ok) {
		free(pm);
		return false;
	}
	sc->pm = pm;
	sc->n_pm = n;
	return true;
}

/* Validate v for key k and store it in sc.  Reports and returns false on
 * a bad value. */
static bool
set_value(struct parse *ps, struct scope *sc, enum key_id k, const char *label, const char *v)
{
	const struct key_def *kd = &keys[k];
	char err[512];
	unsigned char addr[16];
	uint64_t u;
	double d;

	if (*v == '\0') {
		perr(ps, label, kd->name, "missing value");
		return false;
	}
	switch (kd->type) {
	case T_URL:
		if (ssh_url_parse(v, &sc->u, err, sizeof err) != 0) {
			char *shown = url_for_message(v);
			perr(ps, label, kd->name, "bad url '%s': %s", shown, err);
			free(shown);
			return false;
		}
		sc->str[k] = xstrdup(v);
		return true;
	case T_PLUGIN:
		if (!plugin_name_ok(v)) {
			perr(ps, label, kd->name, "bad name '%s' (lowercase letters, digits and -)",
			     v);
			return false;
		}
		sc->str[k] = xstrdup(v);
		return true;
	case T_PATH:
		sc->str[k] = expand_path(v, err, sizeof err);
		if (sc->str[k] == NULL) {
			perr(ps, label, kd->name, "%s", err);
			return false;
		}
		if ((k == K_KNOWN_HOSTS || k == K_IDENTITY_FILE) && !ssh_path_ok(sc->str[k])) {
			perr(
			    ps, label, kd->name,
			    "'%s' cannot be passed to ssh safely (no \", \\, control characters or "
			    "${ in these paths, at most %d bytes)",
			    v, SSH_PATH_MAX);
			free(sc->str[k]);
			sc->str[k] = NULL;
			return false;
		}
		return true;
	case T_ENGINE:
		if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0 &&
		    (v[0] != '/' || strlen(v) > 255 ||
		     strpbrk(v, " \t\n\r\"'\\$`;&|<>*?") != NULL)) {
			perr(ps, label, kd->name,
			     "bad value '%s' (yes, no, or the engine's socket path on the remote: "
			     "absolute, "
			     "no blanks, quotes or shell characters)",
			     v);
			return false;
		}
		sc->str[k] = xstrdup(v);
		return true;
	case T_ADDR: {
		/* A list: "localhost", "127.0.0.1, ::1".  Stored as written
		 * (the reconciler expands localhost). */
		const char *p = v;
		size_t n = 0;
		bool ok = true;
		for (;;) {
			char a[64];
			size_t len;
			p += strspn(p, ", \t");
			if (*p == '\0')
				break;
			len = strcspn(p, ", \t");
			if (len >= sizeof a) {
				perr(ps, label, kd->name, "bad address '%.*s' (too long)", (int)len,
				     p);
				ok = false;
			} else {
				memcpy(a, p, len);
				a[len] = '\0';
				if (strcmp(a, "localhost") != 0 &&
				    inet_pton(AF_INET, a, addr) != 1 &&
				    inet_pton(AF_INET6, a, addr) != 1) {
					perr(ps, label, kd->name,
					     "bad address '%s' (an IPv4 or IPv6 address without [ "
					     "], or "
					     "localhost)",
					     a);
					ok = false;
				}
			}
			p += len;
			n++;
		}
		if (ok && n > 8) {
			perr(ps, label, kd->name, "at most 8 addresses");
			ok = false;
		}
		if (!ok)
			return false;
		sc->str[k] = xstrdup(v);
		return true;
	}
	case T_LISTEN: {
		char hostpart[64];
		const char *colon = strrchr(v, ':');
		uint16_t port;
		size_t hl = colon ? (size_t)(colon - v) : 0;
		bool ok = colon != NULL && hl > 0 && hl < sizeof hostpart &&
		          parse_port(colon + 1, &port) == 0;
		if (ok) {
			memcpy(hostpart, v, hl);
			hostpart[hl] = '\0';
			if (hostpart[0] == '[' && hostpart[hl - 1] == ']') {
				hostpart[hl - 1] = '\0';
				ok = inet_pton(AF_INET6, hostpart + 1, addr) == 1;
			} else {
				ok = inet_pton(AF_INET, hostpart, addr) == 1;
			}
		}
		if (!ok) {
			perr(ps, label, kd->name,
			     "bad listen address '%s' (use 127.0.0.1:9464 or [::1]:9464)", v);
			return false;
		}
		sc->str[k] = xstrdup(v);
		return true;
	}
	case T_DURATION:
		if (parse_duration(v, &u, err, sizeof err) != 0) {
			perr(ps, label, kd->name, "%s", err);
			return false;
		}
		if (u == 0) {
			perr(ps, label, kd->name, "must be greater than 0");
			return false;
		}
		if (kd->max > 0 && (u < kd->min || u > kd->max)) {
			char lo[32], hi[32];
			format_duration(kd->min, lo, sizeof lo);
			format_duration(kd->max, hi, sizeof hi);
			perr(ps, label, kd->name, "'%s' is out of range (%s..%s)", v, lo, hi);
			return false;
		}
		sc->num[k] = u;
		return true;
	case T_UINT:
		if (parse_u64(v, UINT64_MAX, &u) != 0) {
			perr(ps, label, kd->name,
			     "bad number '%s' (a whole number %" PRIu64 "..%" PRIu64 ")", v,
			     kd->min, kd->max);
			return false;
		}
		if (u < kd->min || u > kd->max) {
			perr(ps, label, kd->name, "%s is out of range (%" PRIu64 "..%" PRIu64 ")",
			     v, kd->min, kd->max);
			return false;
		}
		sc->num[k] = u;
		return true;
	case T_REAL:
		if (parse_real(v, &d) != 0) {
			perr(ps, label, kd->name, "bad number '%s' (%g..%g, e.g. %g)", v, kd->dmin,
			     kd->dmax, kd->dmax > 1.0 ? 2.0 : 0.2);
			return false;
		}
		if (d < kd->dmin || d > kd->dmax) {
			perr(ps, label, kd->name, "%s is out of range (%g..%g)", v, kd->dmin,
			     kd->dmax);
			return false;
		}
		sc->real[k] = d;
		return true;
	case T_OFFSET:
		if (parse_offset(v, &sc->offset) != 0) {
			perr(ps, label, kd->name,
			     "bad port offset '%s' (a whole number -65535..65535)", v);
			return false;
		}
		return true;
	case T_PORTMAP:
		return parse_port_map(ps, sc, label, kd->name, v);
	case T_PRIVILEGED:
		if (strcmp(v, "skip") == 0) {
			sc->str[k] = xstrdup(v);
			return true;
		}
		if (strncmp(v, "offset", 6) == 0 && (v[6] == ' ' || v[6] == '\t')) {
			const char *n = v + 6 + strspn(v + 6, " \t");
			if (parse_u64(n, 64511, &u) == 0 && u >= 1) {
				sc->str[k] = xstrdup("offset");
				sc->num[k] = u;
				return true;
			}
		}
		perr(ps, label, kd->name,
		     "bad value '%s' (skip, or offset N with N 1-64511: e.g. offset 8000 moves 80 "
		     "to 8080)",
		     v);
		return false;
	case T_CHOICE:
		for (size_t i = 0; kd->choices[i]; i++) {
			if (strcmp(kd->choices[i], v) == 0) {
				sc->str[k] = xstrdup(v);
				return true;
			}
		}
		perr(ps, label, kd->name, "bad value '%s' (%s)", v, kd->choices_text);
		return false;
	}
	return false;
}

static int
handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse *ps = user;
	struct scope *sc = &ps->defaults;
	const char *label = DEFAULTS_LABEL;
	bool in_host = false;
	int k;

	if (*section != '\0') {
		uint64_t idx;
		if (parse_u64(section, ps->n_secs ? ps->n_secs - 1 : 0, &idx) != 0 ||
		    ps->n_secs == 0)
			return 1; /* cannot happen: the reader wrote the header */
		const struct section *sec = &ps->secs[idx];
		if (sec->kind == SEC_IGNORE)
			return 1; /* its header was reported */
		if (sec->kind == SEC_HOST) {
			struct phost *h = &ps->hosts[sec->host];
			sc = &h->s;
			label = h->label;
			in_host = true;
		}
	}

	size_t nn = strlen(name);
	bool good = nn > 0 && nn <= KEY_MAX_LEN;
	for (size_t i = 0; good && i < nn; i++)
		good = is_word(name[i]);
	if (!good) {
		perr(ps, label, NULL, "bad key name '%s' (letters, digits, . _ -)", name);
		return 1;
	}

	/* The one key that may repeat: rules are a list, in file order. */
	if (strcmp(name, "rule") == 0) {
		struct rule r;
		char err[512];
		if (!in_host) {
			perr(ps, label, name,
			     "rules belong to a host section (each [host \"NAME\"] has its own)");
			return 1;
		}
		if (rule_parse(value, ps->lineno, &r, err, sizeof err) != 0) {
			perr(ps, label, name, "%s", err);
			return 1;
		}
		r.file = ps->c->path ? xstrdup(ps->c->path) : NULL;
		sc->rules = xrealloc(sc->rules, (sc->n_rules + 1) * sizeof *sc->rules);
		sc->rules[sc->n_rules++] = r;
		return 1;
	}

	k = key_lookup(name);
	if (k < 0) {
		for (size_t i = 0; i < sc->n_opts; i++) {
			if (strcmp(sc->opts[i].key, name) == 0) {
				perr(ps, label, name, "duplicate key (first set at line %d)",
				     sc->opts[i].line);
				return 1;
			}
		}
		sc->opts = xrealloc(sc->opts, (sc->n_opts + 1) * sizeof *sc->opts);
		sc->opts[sc->n_opts] = (struct cfg_opt){
		    .key = xstrdup(name),
		    .value = xstrdup(value),
		    .line = ps->lineno,
		    .from_defaults = !in_host,
		};
		sc->n_opts++;
		return 1;
	}
	if (keys[k].where == W_GLOBAL && in_host) {
		perr(ps, label, name, "global setting, allowed only in [defaults]");
		return 1;
	}
	if (keys[k].where == W_HOST && !in_host) {
		perr(ps, label, name,
		     "not allowed in [defaults] (each [host \"NAME\"] has its own)");
		return 1;
	}
	if (sc->line[k] != 0) {
		perr(ps, label, name, "duplicate key (first set at line %d)", sc->line[k]);
		return 1;
	}
	sc->line[k] = ps->lineno;
	sc->ok[k] = set_value(ps, sc, (enum key_id)k, label, value);
	return 1;
}

/* ---- resolution: [defaults] + host → struct cfg_host ------------------- */

void
policy_defaults(struct rdhpf_policy *p)
{
	*p = (struct rdhpf_policy){
	    .health_interval_ms = 15 * 1000,
	    .poll_interval_ms = 2 * 1000,
	    .keepalive_interval_ms = 5 * 1000,
	    .keepalive_count = 3,
	    .connect_timeout_ms = 10 * 1000,
	    .backoff_initial_ms = 500,
	    .backoff_max_ms = 30 * 1000,
	    .backoff_multiplier = 2.0,
	    .backoff_jitter = 0.2,
	    .breaker_threshold = 10,
	    .breaker_cooldown_ms = 2 * 60 * 1000,
	    .reconnect_probe = 1,
	};
}

static void
host_defaults(struct cfg_host *h)
{
	h->transport = xstrdup("openssh");
	h->runtime = xstrdup("docker");
	/* 127.0.0.1 and ::1: clients that resolve localhost to ::1 first
	 * (Node, Java, macOS) connect too. */
	h->bind_address = xstrdup("localhost");
	policy_defaults(&h->pol);
}

/* The scope whose value of k applies: the host's, else [defaults]', else
 * none (the built-in default). */
static const struct scope *
pick(const struct scope *hs, const struct scope *ds, enum key_id k)
{
	if (hs != NULL && hs->ok[k])
		return hs;
	if (ds->ok[k])
		return ds;
	return NULL;
}

static void
pick_str(char **dst, const struct scope *hs, const struct scope *ds, enum key_id k)
{
	const struct scope *src = pick(hs, ds, k);

	if (src != NULL) {
		free(*dst);
		*dst = xstrdup(src->str[k]);
	}
}

static void
apply_policy(struct rdhpf_policy *p, const struct scope *hs, const struct scope *ds)
{
	static const enum key_id durations[] = {
	    K_HEALTH_INTERVAL, K_POLL_INTERVAL, K_KEEPALIVE_INTERVAL, K_CONNECT_TIMEOUT,
	    K_BACKOFF_INITIAL, K_BACKOFF_MAX,   K_BREAKER_COOLDOWN};
	uint64_t *fields[] = {&p->health_interval_ms,    &p->poll_interval_ms,
	                      &p->keepalive_interval_ms, &p->connect_timeout_ms,
	                      &p->backoff_initial_ms,    &p->backoff_max_ms,
	                      &p->breaker_cooldown_ms};
	const struct scope *src;

	for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
		if ((src = pick(hs, ds, durations[i])) != NULL)
			*fields[i] = src->num[durations[i]];
	}
	if ((src = pick(hs, ds, K_KEEPALIVE_COUNT)) != NULL)
		p->keepalive_count = (uint32_t)src->num[K_KEEPALIVE_COUNT];
	if ((src = pick(hs, ds, K_BREAKER_THRESHOLD)) != NULL)
		p->breaker_threshold = (uint32_t)src->num[K_BREAKER_THRESHOLD];
	if ((src = pick(hs, ds, K_BACKOFF_MULTIPLIER)) != NULL)
		p->backoff_multiplier = src->real[K_BACKOFF_MULTIPLIER];
	if ((src = pick(hs, ds, K_BACKOFF_JITTER)) != NULL)
		p->backoff_jitter = src->real[K_BACKOFF_JITTER];
	if ((src = pick(hs, ds, K_RECONNECT_PROBE)) != NULL)
		p->reconnect_probe = strcmp(src->str[K_RECONNECT_PROBE], "yes") == 0;
}

/* backoff_max >= backoff_initial, reported where the offending value was
 * set: once for [defaults] (hs NULL), or for a host that set either. */
static void
check_backoff(struct parse *ps, const struct scope *hs, const char *label,
              const struct rdhpf_policy *p)
{
	const struct scope *owner = hs ? hs : &ps->defaults;
	char a[32], b[32];

	if (p->backoff_max_ms >= p->backoff_initial_ms)
		return;
	if (!owner->ok[K_BACKOFF_MAX] && !owner->ok[K_BACKOFF_INITIAL])
		return; /* not this level's doing */
	format_duration(p->backoff_max_ms, a, sizeof a);
	format_duration(p->backoff_initial_ms, b, sizeof b);
	if (owner->ok[K_BACKOFF_MAX])
		cfg_add_error(ps->c, owner->line[K_BACKOFF_MAX], label, "backoff_max",
		              "%s is less than backoff_initial (%s)", a, b);
	else
		cfg_add_error(ps->c, owner->line[K_BACKOFF_INITIAL], label, "backoff_initial",
		              "%s is greater than backoff_max (%s)", b, a);
}

static void
add_opt(struct cfg_host *h, const struct cfg_opt *o)
{
	h->opts = xrealloc(h->opts, (h->n_opts + 1) * sizeof *h->opts);
	h->opts[h->n_opts] = (struct cfg_opt){
	    .key = xstrdup(o->key),
	    .value = xstrdup(o->value),
	    .line = o->line,
	    .from_defaults = o->from_defaults,
	};
	h->n_opts++;
}

static void
resolve_host(struct parse *ps, struct phost *ph, struct cfg_host *h)
{
	const struct scope *hs = &ph->s, *ds = &ps->defaults, *src;

	h->name = xstrdup(ph->name);
	h->line = ph->line;
	host_defaults(h);

	if (hs->line[K_URL] == 0)
		cfg_add_error(ps->c, ph->line, ph->label, "url",
		              "missing (every host needs url = ssh://[user@]host[:port])");
	else if (hs->ok[K_URL]) {
		h->url = xstrdup(hs->str[K_URL]);
		h->u = hs->u;
	}

	if ((src = pick(hs, ds, K_TRANSPORT)) != NULL) {
		h->transport_line = src->line[K_TRANSPORT];
		h->transport_from_defaults = src == ds;
	}
	if ((src = pick(hs, ds, K_RUNTIME)) != NULL) {
		h->runtime_line = src->line[K_RUNTIME];
		h->runtime_from_defaults = src == ds;
	}
	pick_str(&h->transport, hs, ds, K_TRANSPORT);
	pick_str(&h->runtime, hs, ds, K_RUNTIME);
	pick_str(&h->identity_file, hs, ds, K_IDENTITY_FILE);
	pick_str(&h->known_hosts, hs, ds, K_KNOWN_HOSTS);
	pick_str(&h->bind_address, hs, ds, K_BIND_ADDRESS);
	pick_str(&h->engine_socket, hs, ds, K_ENGINE_SOCKET);
	if (h->engine_socket != NULL && strcmp(h->engine_socket, "no") == 0) {
		free(h->engine_socket);
		h->engine_socket = NULL;
	}

	apply_policy(&h->pol, hs, ds);
	check_backoff(ps, hs, ph->label, &h->pol);

	if ((src = pick(hs, ds, K_PORT_OFFSET)) != NULL)
		h->port_offset = src->offset;
	if ((src = pick(hs, ds, K_PRIVILEGED)) != NULL) {
		h->privileged_skip = strcmp(src->str[K_PRIVILEGED], "skip") == 0;
		h->privileged_offset = h->privileged_skip ? 0 : (uint16_t)src->num[K_PRIVILEGED];
	}
	if ((src = pick(hs, ds, K_LABELS)) != NULL)
		h->labels = strcmp(src->str[K_LABELS], "yes") == 0;
	if ((src = pick(hs, ds, K_ON_CONFLICT)) != NULL)
		h->on_conflict_next_free = strcmp(src->str[K_ON_CONFLICT], "next-free") == 0;
	if ((src = pick(hs, ds, K_PORT_MAP)) != NULL) {
		h->port_map = xmalloc(src->n_pm * sizeof *h->port_map);
		memcpy(h->port_map, src->pm, src->n_pm * sizeof *h->port_map);
		h->n_port_map = src->n_pm;
	}

	if (hs->n_rules > 0) {
		h->rules = xcalloc(hs->n_rules, sizeof *h->rules);
		for (size_t i = 0; i < hs->n_rules; i++)
			rule_copy(&h->rules[i], &hs->rules[i]);
		h->n_rules = hs->n_rules;
	}
	/* A rule after one that matches all it would is a mistake: say so
	 * rather than let it sit there looking effective. */
	for (size_t i = 0; i < h->n_rules; i++) {
		long j = rules_shadowed_by(h->rules, i);
		if (j >= 0)
			cfg_add_error(
			    ps->c, h->rules[i].line, ph->label, "rule",
			    "can never match: the rule at line %d matches every port it does",
			    h->rules[j].line);
	}

	for (size_t i = 0; i < hs->n_opts; i++)
		add_opt(h, &hs->opts[i]);
	for (size_t i = 0; i < ds->n_opts; i++) {
		bool overridden = false;
		for (size_t j = 0; j < hs->n_opts && !overridden; j++)
			overridden = strcmp(hs->opts[j].key, ds->opts[i].key) == 0;
		if (!overridden)
			add_opt(h, &ds->opts[i]);
	}
}

static char *
take(char **p)
{
	char *r = *p;
	*p = NULL;
	return r;
}

static void
resolve(struct parse *ps)
{
	struct cfg *c = ps->c;
	struct scope *ds = &ps->defaults;
	struct rdhpf_policy p;

	if (ds->ok[K_PLUGIN_DIR])
		c->plugin_dir = take(&ds->str[K_PLUGIN_DIR]);
	if (ds->ok[K_LOG_FORMAT])
		c->log_format = take(&ds->str[K_LOG_FORMAT]);
	if (ds->ok[K_LOG_LEVEL])
		c->log_level = take(&ds->str[K_LOG_LEVEL]);
	if (ds->ok[K_RUNTIME_DIR])
		c->runtime_dir = take(&ds->str[K_RUNTIME_DIR]);
	if (ds->ok[K_METRICS_LISTEN])
		c->metrics_listen = take(&ds->str[K_METRICS_LISTEN]);

	policy_defaults(&p);
	apply_policy(&p, NULL, ds);
	check_backoff(ps, NULL, DEFAULTS_LABEL, &p);

	if (ps->n_hosts > 0)
		c->hosts = xcalloc(ps->n_hosts, sizeof *c->hosts);
	for (size_t i = 0; i < ps->n_hosts; i++)
		resolve_host(ps, &ps->hosts[i], &c->hosts[c->n_hosts++]);
}

static void
parse_text(struct cfg *c, const char *text, size_t len)
{
	struct parse ps = {.c = c, .p = text, .end = text + len};
	int r;

	r = ini_parse_stream(reader, &ps, handler, &ps);
	if (r < 0) {
		cfg_add_error(c, 0, NULL, NULL, "the INI parser failed (inih error %d)", r);
	} else if (r > 0) {
		/* The reader and handler report everything inih could; this is
		 * a safety net for a rule of some other inih version. */
		bool known = false;
		for (size_t i = 0; i < c->n_errors && !known; i++)
			known = c->errors[i].line == r;
		if (!known)
			cfg_add_error(c, r, NULL, NULL, "syntax error");
	}
	resolve(&ps);

	scope_free(&ps.defaults);
	for (size_t i = 0; i < ps.n_hosts; i++) {
		free(ps.hosts[i].name);
		free(ps.hosts[i].label);
		scope_free(&ps.hosts[i].s);
	}
	free(ps.hosts);
	free(ps.secs);
	sort_errors(c);
}

/* ---- public entry points ------------------------------------------------ */

int
cfg_parse_string(const char *name, const char *text, struct cfg *c)
{
	memset(c, 0, sizeof *c);
	c->path = xstrdup(name ? name : "config");
	parse_text(c, text ? text : "", text ? strlen(text) : 0);
	return c->n_errors == 0 ? 0 : -1;
}

/* The config names programs rdhpf runs as the user (ssh_binary) and files
 * it trusts (known_hosts): like ssh with ~/.ssh/config, refuse one that
 * someone else owns or may write.  Checked on the open file, so a rename
 * between the check and the read changes nothing. */
static int
file_trusted(struct cfg *c, FILE *f)
{
	struct stat st;

	if (fstat(fileno(f), &st) != 0) {
		cfg_add_error(c, 0, NULL, NULL, "cannot read: %s", strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode))
		return 0; /* reading it fails with the reason */
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		cfg_add_error(
		    c, 0, NULL, NULL,
		    "bad owner: owned by uid %u, neither you (uid %u) nor root; refusing a "
		    "config someone else controls",
		    (unsigned)st.st_uid, (unsigned)geteuid());
		return -1;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		cfg_add_error(
		    c, 0, NULL, NULL,
		    "bad permissions: mode %04o lets %s write it; refusing it (chmod go-w)",
		    (unsigned)(st.st_mode & 07777),
		    (st.st_mode & S_IWOTH) ? "everyone" : "its group");
		return -1;
	}
	return 0;
}

int
cfg_parse_file(const char *path, struct cfg *c)
{
	FILE *f;
	char *buf = NULL;
	size_t len = 0, cap = 0;

	memset(c, 0, sizeof *c);
	c->path = xstrdup(path);
	f = fopen(path, "r");
	if (f == NULL) {
		cfg_add_error(c, 0, NULL, NULL, "cannot read: %s", strerror(errno));
		return -1;
	}
	if (file_trusted(c, f) != 0) {
		fclose(f);
		return -1;
	}
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			buf = xrealloc(buf, cap);
		}
		size_t got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (len > CFG_MAX_FILE) {
			cfg_add_error(c, 0, NULL, NULL, "cannot read: larger than %d bytes",
			              CFG_MAX_FILE);
			break;
		}
		if (got == 0) {
			if (ferror(f))
				cfg_add_error(c, 0, NULL, NULL, "cannot read: %s", strerror(errno));
			break;
		}
	}
	fclose(f);
	if (c->n_errors == 0)
		parse_text(c, buf, len);
	free(buf);
	return c->n_errors == 0 ? 0 : -1;
}

int
cfg_from_url(const char *url, const char *source, struct cfg *c)
{
	struct ssh_url u;
	char err[512];

	memset(c, 0, sizeof *c);
	c->path = xstrdup(source ? source : "url");
	if (ssh_url_parse(url, &u, err, sizeof err) != 0) {
		char *shown = url_for_message(url ? url : "");
		cfg_add_error(c, 0, NULL, NULL, "bad url '%s': %s", shown, err);
		free(shown);
		return -1;
	}
	c->hosts = xcalloc(1, sizeof *c->hosts);
	c->n_hosts = 1;
	struct cfg_host *h = &c->hosts[0];
	host_defaults(h);
	h->name = xstrdup(u.host);
	h->url = xstrdup(url);
	h->u = u;
	return 0;
}

void
cfg_host_clear(struct cfg_host *h)
{
	free(h->name);
	free(h->url);
	free(h->transport);
	free(h->runtime);
	free(h->identity_file);
	free(h->known_hosts);
	free(h->bind_address);
	free(h->engine_socket);
	free(h->port_map);
	for (size_t j = 0; j < h->n_rules; j++)
		rule_clear(&h->rules[j]);
	free(h->rules);
	for (size_t j = 0; j < h->n_opts; j++) {
		free(h->opts[j].key);
		free(h->opts[j].value);
	}
	free(h->opts);
	memset(h, 0, sizeof *h);
}

static char *
dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

struct cfg_host *
cfg_host_dup(const struct cfg_host *h)
{
	struct cfg_host *d = xcalloc(1, sizeof *d);

	*d = *h;
	d->name = dup_or_null(h->name);
	d->url = dup_or_null(h->url);
	d->transport = dup_or_null(h->transport);
	d->runtime = dup_or_null(h->runtime);
	d->identity_file = dup_or_null(h->identity_file);
	d->known_hosts = dup_or_null(h->known_hosts);
	d->bind_address = dup_or_null(h->bind_address);
	d->engine_socket = dup_or_null(h->engine_socket);
	d->port_map = NULL;
	if (h->n_port_map > 0) {
		d->port_map = xcalloc(h->n_port_map, sizeof *d->port_map);
		memcpy(d->port_map, h->port_map, h->n_port_map * sizeof *d->port_map);
	}
	d->rules = NULL;
	if (h->n_rules > 0) {
		d->rules = xcalloc(h->n_rules, sizeof *d->rules);
		for (size_t i = 0; i < h->n_rules; i++)
			rule_copy(&d->rules[i], &h->rules[i]);
	}
	d->opts = NULL;
	if (h->n_opts > 0) {
		d->opts = xcalloc(h->n_opts, sizeof *d->opts);
		for (size_t i = 0; i < h->n_opts; i++) {
			d->opts[i] = h->opts[i];
			d->opts[i].key = xstrdup(h->opts[i].key);
			d->opts[i].value = xstrdup(h->opts[i].value);
		}
	}
	return d;
}

static bool
str_same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static const char *
opt_value(const struct cfg_host *h, const char *key)
{
	for (size_t i = 0; i < h->n_opts; i++)
		if (strcmp(h->opts[i].key, key) == 0)
			return h->opts[i].value;
	return NULL;
}

bool
cfg_host_same(const struct cfg_host *a, const struct cfg_host *b)
{
	const struct rdhpf_policy *p = &a->pol, *q = &b->pol;

	if (!str_same(a->name, b->name) || !str_same(a->url, b->url) ||
	    !str_same(a->transport, b->transport) || !str_same(a->runtime, b->runtime) ||
	    !str_same(a->identity_file, b->identity_file) ||
	    !str_same(a->known_hosts, b->known_hosts) ||
	    !str_same(a->bind_address, b->bind_address) ||
	    !str_same(a->engine_socket, b->engine_socket))
		return false;
	if (p->health_interval_ms != q->health_interval_ms ||
	    p->poll_interval_ms != q->poll_interval_ms ||
	    p->keepalive_interval_ms != q->keepalive_interval_ms ||
	    p->keepalive_count != q->keepalive_count ||
	    p->connect_timeout_ms != q->connect_timeout_ms ||
	    p->backoff_initial_ms != q->backoff_initial_ms ||
	    p->backoff_max_ms != q->backoff_max_ms ||
	    p->backoff_multiplier != q->backoff_multiplier ||
	    p->backoff_jitter != q->backoff_jitter ||
	    p->breaker_threshold != q->breaker_threshold ||
	    p->breaker_cooldown_ms != q->breaker_cooldown_ms ||
	    p->reconnect_probe != q->reconnect_probe)
		return false;
	if (a->port_offset != b->port_offset || a->n_port_map != b->n_port_map ||
	    (a->n_port_map > 0 &&
	     memcmp(a->port_map, b->port_map, a->n_port_map * sizeof *a->port_map) != 0))
		return false;
	if (a->privileged_skip != b->privileged_skip ||
	    a->privileged_offset != b->privileged_offset ||
	    a->on_conflict_next_free != b->on_conflict_next_free || a->labels != b->labels)
		return false;
	if (a->n_rules != b->n_rules)
		return false;
	for (size_t i = 0; i < a->n_rules; i++)
		if (!rule_same(&a->rules[i], &b->rules[i]))
			return false;
	if (a->n_opts != b->n_opts)
		return false;
	for (size_t i = 0; i < a->n_opts; i++)
		if (!str_same(a->opts[i].value, opt_value(b, a->opts[i].key)))
			return false;
	return true;
}

void
cfg_free(struct cfg *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n_hosts; i++)
		cfg_host_clear(&c->hosts[i]);
	free(c->hosts);
	for (size_t i = 0; i < c->n_errors; i++)
		free(c->errors[i].text);
	free(c->errors);
	free(c->path);
	free(c->plugin_dir);
	free(c->log_format);
	free(c->log_level);
	free(c->runtime_dir);
	free(c->metrics_listen);
	memset(c, 0, sizeof *c);
}

/* ---- plugins ---------------------------------------------------------- */

static bool
declares(const struct rdhpf_option_desc *const *d, const char *key)
{
	for (; d != NULL && *d != NULL; d++) {
		if ((*d)->name != NULL && strcmp((*d)->name, key) == 0)
			return true;
	}
	return false;
}

/* "Reported once" bookkeeping for values that came from [defaults]. */
static bool
seen_before(const char ***seen, size_t *n, const char *what)
{
	for (size_t i = 0; i < *n; i++) {
		if (strcmp((*seen)[i], what) == 0)
			return true;
	}
	*seen = xrealloc(*seen, (*n + 1) * sizeof **seen);
	(*seen)[(*n)++] = what;
	return false;
}

static bool
check_kind(struct cfg *c, const struct cfg_host *h, const char *label, int kind,
           cfg_plugin_lookup_fn lookup, void *arg, const struct rdhpf_option_desc *const **out,
           bool *reported_defaults)
{
	bool transport = kind == RDHPF_KIND_TRANSPORT;
	const char *key = transport ? "transport" : "runtime";
	const char *name = transport ? h->transport : h->runtime;
	int line = transport ? h->transport_line : h->runtime_line;
	bool from_defaults = transport ? h->transport_from_defaults : h->runtime_from_defaults;

	*out = lookup(arg, kind, name);
	if (*out != NULL)
		return true;
	if (from_defaults) {
		if (!*reported_defaults)
			cfg_add_error(c, line, DEFAULTS_LABEL, key, "unknown %s '%s'", key, name);
		*reported_defaults = true;
	} else {
		cfg_add_error(c, line ? line : h->line, label, key, "unknown %s '%s'", key, name);
	}
	return false;
}

size_t
cfg_check_plugins(struct cfg *c, cfg_plugin_lookup_fn lookup, void *arg)
{
	return cfg_check_plugins_v(c, lookup, NULL, arg);
}

/* A value the declaring plugin refuses: at the key's line. */
static void
check_value(struct cfg *c, const struct cfg_host *h, const char *label, const struct cfg_opt *o,
            int kind, cfg_plugin_validate_fn validate, void *arg, const char ***seen,
            size_t *n_seen)
{
	char err[512];
	const char *name = kind == RDHPF_KIND_TRANSPORT ? h->transport : h->runtime;

	if (validate(arg, kind, name, o->key, o->value, err, sizeof err) == 0)
		return;
	if (!o->from_defaults)
		cfg_add_error(c, o->line, label, o->key, "%s", err);
	else if (!seen_before(seen, n_seen, o->key))
		cfg_add_error(c, o->line, DEFAULTS_LABEL, o->key, "%s (%s '%s' of host \"%s\")",
		              err, kind == RDHPF_KIND_TRANSPORT ? "transport" : "runtime", name,
		              h->name);
}

size_t
cfg_check_plugins_v(struct cfg *c, cfg_plugin_lookup_fn lookup, cfg_plugin_validate_fn validate,
                    void *arg)
{
	size_t before = c->n_errors;
	const char **seen = NULL;
	size_t n_seen = 0;
	bool bad_default_transport = false, bad_default_runtime = false;

	for (size_t i = 0; i < c->n_hosts; i++) {
		const struct cfg_host *h = &c->hosts[i];
		const struct rdhpf_option_desc *const *t, *const *r;
		size_t ln = strlen(h->name) + 8;
		char *label = xmalloc(ln);
		bool tok, rok;

		snprintf(label, ln, "host \"%s\"", h->name);
		tok = check_kind(c, h, label, RDHPF_KIND_TRANSPORT, lookup, arg, &t,
		                 &bad_default_transport);
		rok = check_kind(c, h, label, RDHPF_KIND_RUNTIME, lookup, arg, &r,
		                 &bad_default_runtime);
		/* With a plugin missing nobody can say which keys are wrong. */
		for (size_t j = 0; tok && rok && j < h->n_opts; j++) {
			const struct cfg_opt *o = &h->opts[j];
			bool dt = declares(t, o->key), dr = declares(r, o->key);
			if (dt || dr) {
				if (validate != NULL && dt)
					check_value(c, h, label, o, RDHPF_KIND_TRANSPORT, validate,
					            arg, &seen, &n_seen);
				if (validate != NULL && dr)
					check_value(c, h, label, o, RDHPF_KIND_RUNTIME, validate,
					            arg, &seen, &n_seen);
				continue;
			}
			if (!o->from_defaults) {
				cfg_add_error(
				    c, o->line, label, o->key,
				    "unknown key (not a core key, and neither transport '%s' "
				    "nor runtime '%s' declares it)",
				    h->transport, h->runtime);
			} else if (!seen_before(&seen, &n_seen, o->key)) {
				cfg_add_error(
				    c, o->line, DEFAULTS_LABEL, o->key,
				    "unknown key (not a core key, and neither transport '%s' "
				    "nor runtime '%s' of host \"%s\" declares it)",
				    h->transport, h->runtime, h->name);
			}
		}
		free(label);
	}
	free(seen);
	sort_errors(c);
	return c->n_errors - before;
}

/* ---- printing ------------------------------------------------------------ */

/* Values and keys are the config's bytes: escaped for the terminal. */
static void
print_kv(FILE *out, const char *key, const char *value, const char *note)
{
	char *k = term_escape_dup(key), *v = term_escape_dup(value);

	fprintf(out, "  %-18s = %s%s%s\n", k, v, note ? "   " : "", note ? note : "");
	free(k);
	free(v);
}

static void
print_ms(FILE *out, const char *key, uint64_t ms)
{
	char b[32];

	format_duration(ms, b, sizeof b);
	print_kv(out, key, b, NULL);
}

static void print_num(FILE *out, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
print_num(FILE *out, const char *key, const char *fmt, ...)
{
	char b[64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b, sizeof b, fmt, ap);
	va_end(ap);
	print_kv(out, key, b, NULL);
}

/* The effective rule table, as the reconciler will try it. */
static void
print_rules(FILE *out, const struct cfg *c, const struct cfg_host *h)
{
	char text[RULE_TEXT_MAX];
	long catch_all = -1;

	/* Without rules the table is the default line alone: port_offset and
	 * port_map above already say it. */
	if (h->n_rules == 0)
		return;
	fprintf(out, "  rules (first match wins):\n");
	for (size_t j = 0; j < h->n_rules; j++) {
		rule_format(&h->rules[j], text, sizeof text);
		fprintf(out, "    %s:%d: %s\n", c->path ? c->path : "-", h->rules[j].line, text);
		const struct rule *r = &h->rules[j];
		if (catch_all < 0 && r->port_lo == 0 && r->proto == 0 && r->name == NULL &&
		    r->image == NULL && r->label_key == NULL)
			catch_all = (long)j;
	}
	if (catch_all >= 0)
		fprintf(out, "    (default): never reached (line %d matches every port)\n",
		        h->rules[catch_all].line);
	else
		fprintf(out, "    (default): forward%s\n",
		        h->n_port_map > 0 || h->port_offset != 0
		            ? " -> port_map, else remote port + port_offset"
		            : " (local port = remote port)");
}

void
cfg_print(const struct cfg *c, FILE *out)
{
	bool first = true;

	if (c->plugin_dir || c->log_format || c->log_level || c->runtime_dir || c->metrics_listen) {
		fprintf(out, "[defaults]\n");
		if (c->plugin_dir)
			print_kv(out, "plugin_dir", c->plugin_dir, NULL);
		if (c->log_format)
			print_kv(out, "log_format", c->log_format, NULL);
		if (c->log_level)
			print_kv(out, "log_level", c->log_level, NULL);
		if (c->runtime_dir)
			print_kv(out, "runtime_dir", c->runtime_dir, NULL);
		if (c->metrics_listen)
			print_kv(out, "metrics_listen", c->metrics_listen, NULL);
		first = false;
	}
	for (size_t i = 0; i < c->n_hosts; i++) {
		const struct cfg_host *h = &c->hosts[i];
		const struct rdhpf_policy *p = &h->pol;

		fputs(first ? "[host \"" : "\n[host \"", out);
		term_fputs(h->name, out);
		fputs("\"]\n", out);
		first = false;
		print_kv(out, "url", h->url ? h->url : "(missing)", NULL);
		print_kv(out, "transport", h->transport, NULL);
		print_kv(out, "runtime", h->runtime, NULL);
		if (h->identity_file)
			print_kv(out, "identity_file", h->identity_file, NULL);
		if (h->known_hosts)
			print_kv(out, "known_hosts", h->known_hosts, NULL);
		print_kv(out, "bind_address", h->bind_address, NULL);
		if (h->engine_socket)
			print_kv(out, "engine_socket", h->engine_socket, NULL);
		print_ms(out, "health_interval", p->health_interval_ms);
		print_ms(out, "poll_interval", p->poll_interval_ms);
		print_ms(out, "keepalive_interval", p->keepalive_interval_ms);
		print_num(out, "keepalive_count", "%" PRIu32, p->keepalive_count);
		print_ms(out, "connect_timeout", p->connect_timeout_ms);
		print_ms(out, "backoff_initial", p->backoff_initial_ms);
		print_ms(out, "backoff_max", p->backoff_max_ms);
		print_num(out, "backoff_multiplier", "%g", p->backoff_multiplier);
		print_num(out, "backoff_jitter", "%g", p->backoff_jitter);
		print_num(out, "breaker_threshold", "%" PRIu32, p->breaker_threshold);
		print_ms(out, "breaker_cooldown", p->breaker_cooldown_ms);
		print_kv(out, "reconnect_probe", p->reconnect_probe ? "yes" : "no", NULL);
		print_num(out, "port_offset", "%" PRId32, h->port_offset);
		if (h->n_port_map > 0) {
			fprintf(out, "  %-18s =", "port_map");
			for (size_t j = 0; j < h->n_port_map; j++)
				fprintf(out, " %u:%u", (unsigned)h->port_map[j].remote,
				        (unsigned)h->port_map[j].local);
			fputc('\n', out);
		}
		if (h->privileged_skip)
			print_kv(out, "privileged", "skip", NULL);
		else if (h->privileged_offset != 0)
			print_num(out, "privileged", "offset %u", (unsigned)h->privileged_offset);
		if (h->on_conflict_next_free)
			print_kv(out, "on_conflict", "next-free", NULL);
		if (h->labels)
			print_kv(out, "labels", "yes", NULL);
		print_rules(out, c, h);
		for (size_t j = 0; j < h->n_opts; j++)
			print_kv(out, h->opts[j].key, h->opts[j].value,
			         h->opts[j].from_defaults ? "(plugin, from [defaults])"
			                                  : "(plugin)");
	}
}
