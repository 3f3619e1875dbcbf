/* Logging.  Three promises, each the lesson of a predecessor that wrote
 * 4.2 GB of logs in a reconnect loop:
 *  - one call is one line: no value, however hostile, can end a line or
 *    start a fake one (everything outside printable UTF-8 is escaped);
 *  - a line is bounded (LINE_CAP), whatever the size of the values;
 *  - a message repeating in a loop prints once per window plus a count.
 * No allocation on the logging path: it must work when memory is short. */
#include "log.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util.h"

#define DEFAULT_WINDOW_MS (10 * 60 * 1000)
#define LINE_CAP 16384 /* bytes of one output line, newline included */
#define LINE_TAIL 32   /* kept free for " truncated=true" and the end */
#define VALUE_CAP 2048 /* input bytes of one value before "..." */
#define KV_MAX 32      /* pairs taken by log_kv */
#define KEY_CAP 64

/* Repeat table: bounded, so a flood of distinct messages costs a fixed
 * amount of memory.  Stored strings are prefixes; the hash covers the full
 * strings, so two messages differing only past the prefix stay apart. */
#define SIG_SLOTS 64
#define SIG_HOST 64
#define SIG_PLUGIN 64
#define SIG_MSG 256
#define SIG_ERR 512

struct sig {
	bool used;
	bool has_host, has_plugin, has_err;
	int level;
	uint64_t hash;
	uint64_t first_ms; /* when the line that opened the window printed */
	uint64_t count;    /* suppressed since */
	uint64_t lru;
	char host[SIG_HOST];
	char plugin[SIG_PLUGIN];
	char msg[SIG_MSG];
	char err[SIG_ERR];
};

static struct {
	FILE *out;
	enum log_format fmt;
	int level;
	uint64_t (*now_ms)(void);
	int64_t (*wall_ms)(void);
	uint64_t window_ms;
	uint64_t tick;
	struct sig sigs[SIG_SLOTS];
} L = {
    .level = RDHPF_LOG_INFO,
    .window_ms = DEFAULT_WINDOW_MS,
};

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

/* ---- clocks ----------------------------------------------------------- */

static uint64_t
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int64_t
real_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t
now(void)
{
	return L.now_ms ? L.now_ms() : mono_ms();
}

/* ---- setup ------------------------------------------------------------ */

void
log_init(FILE *out, enum log_format fmt, int level, uint64_t (*now_ms)(void))
{
	/* The previous stream may be closed already: pending repeats are
	 * dropped, not flushed to it. */
	memset(L.sigs, 0, sizeof L.sigs);
	L.out = out;
	L.fmt = fmt;
	log_set_level(level);
	L.now_ms = now_ms;
	L.window_ms = DEFAULT_WINDOW_MS;
	L.tick = 0;
}

void
log_set_level(int level)
{
	L.level = level < RDHPF_LOG_ERROR   ? RDHPF_LOG_ERROR
	          : level > RDHPF_LOG_TRACE ? RDHPF_LOG_TRACE
	                                    : level;
}

void
log_set_format(enum log_format fmt)
{
	L.fmt = fmt;
}

void
log_set_window(uint64_t window_ms)
{
	L.window_ms = window_ms;
}

void
log_set_wall_clock(int64_t (*wall_ms)(void))
{
	L.wall_ms = wall_ms;
}

int
log_level_parse(const char *s)
{
	if (s == NULL)
		return -1;
	for (int i = 0; i <= RDHPF_LOG_TRACE; i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return i;
	if (strcasecmp(s, "warning") == 0)
		return RDHPF_LOG_WARN;
	return -1;
}

const char *
log_level_name(int level)
{
	if (level < RDHPF_LOG_ERROR || level > RDHPF_LOG_TRACE)
		return "unknown";
	return level_names[level];
}

/* ---- redaction -------------------------------------------------------- */

static char
key_fold(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c == '-' ? '_' : c;
}

/* Case-insensitive, and '-' counts as '_' ("Private-Key"). */
static bool
key_contains(const char *key, const char *word)
{
	size_t wn = strlen(word);

	for (; *key != '\0'; key++) {
		size_t i = 0;
		while (i < wn && key[i] != '\0' && key_fold(key[i]) == word[i])
			i++;
		if (i == wn)
			return true;
	}
	return false;
}

static bool
key_is_secret(const char *key)
{
	static const char *const words[] = {"password",    "passphrase",    "secret", "token",
	                                    "private_key", "authorization", "passwd"};

	for (size_t w = 0; w < sizeof words / sizeof words[0]; w++)
		if (key_contains(key, words[w]))
			return true;
	return false;
}

/* Copies v into buf (at most len - 1 bytes) with the password of every
 * scheme://user:password@ replaced by "***".  The authority ends at the
 * first '/', '?', '#' or white space: none may appear raw in userinfo. */
static const char *
redact_urls(const char *v, char *buf, size_t len)
{
	const char *p = v, *s;
	size_t k = 0;

	if (strstr(v, "://") == NULL)
		return v;
#define EMIT(src, n)                                                                               \
	do {                                                                                       \
		size_t n_ = (n);                                                                   \
		if (n_ > len - 1 - k)                                                              \
			n_ = len - 1 - k;                                                          \
		memcpy(buf + k, (src), n_);                                                        \
		k += n_;                                                                           \
	} while (0)
	while ((s = strstr(p, "://")) != NULL) {
		const char *auth = s + 3, *end = auth, *at = NULL, *colon = NULL;

		while (*end != '\0' && strchr("/?# \t\r\n", *end) == NULL)
			end++;
		for (const char *q = auth; q < end; q++)
			if (*q == '@')
				at = q;
		if (at != NULL)
			colon = memchr(auth, ':', (size_t)(at - auth));
		if (colon != NULL && colon + 1 < at) {
			EMIT(p, (size_t)(colon + 1 - p));
			EMIT("***", 3);
			p = at;
		} else {
			EMIT(p, (size_t)(auth - p));
			p = auth;
		}
	}
	EMIT(p, strlen(p));
#undef EMIT
	buf[k] = '\0';
	return buf;
}

/* The value as it may be printed.  buf holds more than VALUE_CAP bytes so
 * that a long value still reads as long (and gets its "..."). */
static const char *
prepare(const char *key, const char *v, char *buf, size_t len)
{
	if (key != NULL && key_is_secret(key))
		return "[redacted]";
	return redact_urls(v, buf, len);
}

/* ---- the line --------------------------------------------------------- */

struct line {
	char buf[LINE_CAP];
	size_t len;
	size_t cap;     /* LINE_CAP - LINE_TAIL until the tail is written */
	bool over;      /* the current field did not fit */
	bool truncated; /* a field was dropped */
	bool first;
};

static void
put(struct line *l, const char *s, size_t n)
{
	if (l->over || n > l->cap - l->len) {
		l->over = true;
		return;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

static void
puts_(struct line *l, const char *s)
{
	put(l, s, strlen(s));
}

static void
put_hex(struct line *l, const char *prefix, unsigned v, int digits)
{
	static const char hex[] = "0123456789abcdef";
	char b[8];
	size_t n = strlen(prefix);

	memcpy(b, prefix, n);
	for (int i = digits - 1; i >= 0; i--)
		b[n++] = hex[(v >> (4 * i)) & 0xf];
	put(l, b, n);
}

/* Length of the character at s (n > 0 bytes left), its code point, and
 * whether it may be printed as is.  Not safe: C0 and C1 controls, DEL,
 * U+2028/2029 (line breaks to some readers), and bytes that are not valid
 * UTF-8 (returned one at a time). */
static size_t
next_char(const unsigned char *s, size_t n, uint32_t *cp, bool *safe)
{
	unsigned c = s[0];
	size_t len;
	uint32_t v, min;

	*safe = false;
	*cp = c;
	if (c < 0x80) {
		*safe = c >= 0x20 && c != 0x7f;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2, v = c & 0x1f, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3, v = c & 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4, v = c & 0x07, min = 0x10000;
	} else {
		return 1;
	}
	if (len > n)
		return 1;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 1;
		v = (v << 6) | (s[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 1;
	*cp = v;
	*safe = !(v <= 0x9f || v == 0x2028 || v == 0x2029);
	return len;
}

char *
term_escape_dup(const char *s)
{
	const unsigned char *u = (const unsigned char *)(s ? s : "");
	size_t n = strlen((const char *)u), o = 0;
	/* "\xNN" is the longest a byte can become. */
	char *out = xmalloc(4 * n + 1);
	static const char hex[] = "0123456789abcdef";
	uint32_t cp;
	bool safe;

	for (size_t i = 0; i < n;) {
		size_t k = next_char(u + i, n - i, &cp, &safe);
		if (safe) {
			memcpy(out + o, u + i, k);
			o += k;
		} else if (u[i] == '\n' || u[i] == '\r' || u[i] == '\t') {
			out[o++] = '\\';
			out[o++] = u[i] == '\n' ? 'n' : u[i] == '\r' ? 'r' : 't';
		} else {
			for (size_t j = 0; j < k; j++) {
				out[o++] = '\\';
				out[o++] = 'x';
				out[o++] = hex[u[i + j] >> 4];
				out[o++] = hex[u[i + j] & 15];
			}
		}
		i += k;
	}
	out[o] = '\0';
	return out;
}

void
term_fputs(const char *s, FILE *out)
{
	char *e = term_escape_dup(s);

	fputs(e, out);
	free(e);
}

/* The input length to print, cut at VALUE_CAP on a character boundary. */
static size_t
value_len(const char *s, bool *cut)
{
	size_t n = strlen(s);

	*cut = n > VALUE_CAP;
	if (*cut) {
		n = VALUE_CAP;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	return n;
}

static bool
logfmt_needs_quotes(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	uint32_t cp;
	bool safe;

	if (n == 0)
		return true;
	for (size_t i = 0; i < n;) {
		size_t k = next_char(u + i, n - i, &cp, &safe);
		if (!safe || u[i] == ' ' || u[i] == '=' || u[i] == '"' || u[i] == '\\')
			return true;
		i += k;
	}
	return false;
}

static void
put_logfmt_value(struct line *l, const char *s, bool always_quote)
{
	const unsigned char *u = (const unsigned char *)s;
	bool cut, quote, safe;
	size_t n = value_len(s, &cut);
	uint32_t cp;

	quote = always_quote || cut || logfmt_needs_quotes(s, n);
	if (quote)
		put(l, "\"", 1);
	for (size_t i = 0; i < n;) {
		size_t k = next_char(u + i, n - i, &cp, &safe);
		if (safe) {
			if (u[i] == '"' || u[i] == '\\')
				put(l, "\\", 1);
			put(l, s + i, k);
		} else if (u[i] == '\n') {
			put(l, "\\n", 2);
		} else if (u[i] == '\r') {
			put(l, "\\r", 2);
		} else if (u[i] == '\t') {
			put(l, "\\t", 2);
		} else {
			for (size_t j = 0; j < k; j++)
				put_hex(l, "\\x", u[i + j], 2);
		}
		i += k;
	}
	if (cut)
		put(l, "...", 3);
	if (quote)
		put(l, "\"", 1);
}

static void
put_json_string(struct line *l, const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	bool cut, safe;
	size_t n = value_len(s, &cut);
	uint32_t cp;

	put(l, "\"", 1);
	for (size_t i = 0; i < n;) {
		size_t k = next_char(u + i, n - i, &cp, &safe);
		if (safe) {
			if (u[i] == '"' || u[i] == '\\')
				put(l, "\\", 1);
			put(l, s + i, k);
		} else if (u[i] == '\n') {
			put(l, "\\n", 2);
		} else if (u[i] == '\r') {
			put(l, "\\r", 2);
		} else if (u[i] == '\t') {
			put(l, "\\t", 2);
		} else if (k == 1 && u[i] >= 0x80) {
			put(l, "\\ufffd", 6); /* not UTF-8: JSON cannot carry it */
		} else {
			put_hex(l, "\\u", cp, 4);
		}
		i += k;
	}
	if (cut)
		put(l, "...", 3);
	put(l, "\"", 1);
}

/* Keys come from code, but plugins are code too: [A-Za-z0-9_.-] only, and
 * never one of the line's own keys. */
static void
sanitize_key(const char *key, char *buf, size_t len)
{
	static const char *const reserved[] = {"ts",     "level",    "msg",      "host",
	                                       "plugin", "repeated", "truncated"};
	size_t k = 0;

	for (size_t r = 0; r < sizeof reserved / sizeof reserved[0]; r++)
		if (strcmp(key, reserved[r]) == 0)
			buf[k++] = '_';
	for (const char *p = key; *p != '\0' && k < len - 1; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		          (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
		buf[k++] = ok ? c : '_';
	}
	if (k == 0)
		buf[k++] = '_';
	buf[k] = '\0';
}

static void
field_start(struct line *l, const char *key)
{
	if (L.fmt == LOG_JSON) {
		put(l, l->first ? "{\"" : ",\"", 2);
		puts_(l, key);
		put(l, "\":", 2);
	} else {
		if (!l->first)
			put(l, " ", 1);
		puts_(l, key);
		put(l, "=", 1);
	}
	l->first = false;
}

/* A field goes in whole or not at all, so the line stays well-formed. */
static bool
field_end(struct line *l, size_t mark, bool was_first)
{
	if (!l->over)
		return true;
	l->len = mark;
	l->over = false;
	l->first = was_first;
	l->truncated = true;
	return false;
}

static bool
field_str(struct line *l, const char *key, const char *v, bool always_quote)
{
	size_t mark = l->len;
	bool was_first = l->first;

	field_start(l, key);
	if (L.fmt == LOG_JSON)
		put_json_string(l, v);
	else
		put_logfmt_value(l, v, always_quote);
	return field_end(l, mark, was_first);
}

static void
field_u64(struct line *l, const char *key, uint64_t v)
{
	char b[24];
	size_t mark = l->len;
	bool was_first = l->first;
	int n = snprintf(b, sizeof b, "%llu", (unsigned long long)v);

	field_start(l, key);
	put(l, b, (size_t)n);
	field_end(l, mark, was_first);
}

static void
format_ts(char *buf, size_t len)
{
	int64_t ms = L.wall_ms ? L.wall_ms() : real_ms();
	int64_t sec = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
	time_t t = (time_t)sec;
	struct tm tm;
	size_t n;

	if (gmtime_r(&t, &tm) == NULL || (n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm)) == 0) {
		str_copy(buf, "1970-01-01T00:00:00.000Z", len);
		return;
	}
	snprintf(buf + n, len - n, ".%03dZ", (int)(ms - sec * 1000));
}

/* Writes one complete line.  kv values are printed as given (callers
 * prepare them); extra_key/extra (the repeat count) is appended when
 * extra_key is non-NULL. */
static void
write_line(int level, const char *host, const char *plugin, const char *msg,
           const struct kv_pair *kv, size_t n, const char *extra_key, uint64_t extra)
{
	static struct line line; /* 16 KiB: kept off the stack; one thread */
	struct line *l = &line;
	char ts[40], key[KEY_CAP + 2], vbuf[VALUE_CAP + 16];
	FILE *out = L.out ? L.out : stderr;

	l->len = 0;
	l->cap = LINE_CAP - LINE_TAIL;
	l->over = l->truncated = false;
	l->first = true;

	format_ts(ts, sizeof ts);
	field_str(l, "ts", ts, false);
	field_str(l, "level", log_level_name(level), false);
	field_str(l, "msg", prepare(NULL, msg, vbuf, sizeof vbuf), true);
	if (host != NULL)
		field_str(l, "host", prepare(NULL, host, vbuf, sizeof vbuf), false);
	if (plugin != NULL)
		field_str(l, "plugin", prepare(NULL, plugin, vbuf, sizeof vbuf), false);
	for (size_t i = 0; i < n && !l->truncated; i++) {
		if (kv[i].key == NULL || kv[i].value == NULL)
			continue;
		sanitize_key(kv[i].key, key, sizeof key);
		field_str(l, key, prepare(kv[i].key, kv[i].value, vbuf, sizeof vbuf), false);
	}
	if (extra_key != NULL)
		field_u64(l, extra_key, extra);

	l->cap = LINE_CAP;
	if (l->truncated)
		puts_(l, L.fmt == LOG_JSON ? ",\"truncated\":true" : " truncated=true");
	puts_(l, L.fmt == LOG_JSON ? "}\n" : "\n");
	fwrite(l->buf, 1, l->len, out);
	fflush(out);
}

/* ---- repeats ---------------------------------------------------------- */

static uint64_t
fnv(uint64_t h, const char *s)
{
	unsigned char present = s != NULL;

	h = (h ^ present) * UINT64_C(0x100000001b3);
	for (; s != NULL && *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * UINT64_C(0x100000001b3);
	return (h ^ 0xff) * UINT64_C(0x100000001b3); /* separator: "ab","c" ≠ "a","bc" */
}

static bool
prefix_eq(const char *stored, bool has, const char *s, size_t cap)
{
	size_t n;

	if (has != (s != NULL))
		return false;
	if (s == NULL)
		return true;
	n = strnlen(s, cap - 1);
	return strlen(stored) == n && memcmp(stored, s, n) == 0;
}

static void
format_span(uint64_t ms, char *buf, size_t len)
{
	uint64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60;
	size_t k = 0;

	buf[0] = '\0';
	if (ms < 1000) {
		snprintf(buf, len, "%llums", (unsigned long long)ms);
		return;
	}
	if (h > 0)
		k += (size_t)snprintf(buf + k, len - k, "%lluh", (unsigned long long)h);
	if (m > 0 && k < len)
		k += (size_t)snprintf(buf + k, len - k, "%llum", (unsigned long long)m);
	if (s > 0 && k < len)
		snprintf(buf + k, len - k, "%llus", (unsigned long long)s);
}

static void
print_summary(const struct sig *s, uint64_t t)
{
	char msg[SIG_MSG + 64], span[32];
	struct kv_pair kv = {"err", s->err};
	uint64_t el = t > s->first_ms ? t - s->first_ms : 0;

	if (s->level > L.level)
		return;
	format_span(el < L.window_ms ? el : L.window_ms, span, sizeof span);
	snprintf(msg, sizeof msg, "%s (repeated %llu times in %s)", s->msg,
	         (unsigned long long)s->count, span);
	write_line(s->level, s->has_host ? s->host : NULL, s->has_plugin ? s->plugin : NULL, msg,
	           &kv, s->has_err ? 1 : 0, "repeated", s->count);
}

static struct sig *
sig_find(int level, uint64_t hash, const char *host, const char *plugin, const char *msg,
         const char *err)
{
	for (size_t i = 0; i < SIG_SLOTS; i++) {
		struct sig *s = &L.sigs[i];
		if (s->used && s->hash == hash && s->level == level &&
		    prefix_eq(s->host, s->has_host, host, sizeof s->host) &&
		    prefix_eq(s->plugin, s->has_plugin, plugin, sizeof s->plugin) &&
		    prefix_eq(s->msg, true, msg, sizeof s->msg) &&
		    prefix_eq(s->err, s->has_err, err, sizeof s->err))
			return s;
	}
	return NULL;
}

static struct sig *
sig_slot(uint64_t t)
{
	struct sig *victim = &L.sigs[0];

	for (size_t i = 0; i < SIG_SLOTS; i++) {
		if (!L.sigs[i].used)
			return &L.sigs[i];
		if (L.sigs[i].lru < victim->lru)
			victim = &L.sigs[i];
	}
	if (victim->count > 0)
		print_summary(victim, t);
	victim->used = false;
	return victim;
}

void
log_flush_repeats(int force)
{
	uint64_t t = now();

	for (size_t i = 0; i < SIG_SLOTS; i++) {
		struct sig *s = &L.sigs[i];
		bool expired;

		if (!s->used)
			continue;
		expired = t >= s->first_ms && t - s->first_ms >= L.window_ms;
		if (s->count > 0 && (force || expired)) {
			print_summary(s, t);
			s->used = false; /* the next occurrence prints and opens a window */
		} else if (s->count == 0 && expired) {
			s->used = false; /* nothing to say, and nothing left to suppress */
		}
	}
}

/* ---- entry points ----------------------------------------------------- */

void
log_emit(int level, const char *host, const char *plugin, const char *msg, const struct kv_pair *kv,
         size_t n)
{
	log_emit_ex(level, host, plugin, msg, kv, n, true);
}

void
log_emit_ex(int level, const char *host, const char *plugin, const char *msg,
            const struct kv_pair *kv, size_t n, bool collapse)
{
	/* As large as what gets printed, so the hash sees all of it. */
	char mbuf[VALUE_CAP + 16], ebuf[VALUE_CAP + 16];
	const char *err = NULL, *m;
	struct sig *s;
	uint64_t t, hash;

	if (level < RDHPF_LOG_ERROR)
		level = RDHPF_LOG_ERROR;
	if (level > RDHPF_LOG_TRACE)
		level = RDHPF_LOG_TRACE;
	if (level > L.level)
		return;
	if (msg == NULL)
		msg = "";
	/* Only failures (warn, error) collapse: info lines each tell of a
	 * distinct change (a forward added, a host connected) and are bounded
	 * by what happens, not by how often something fails. */
	if (level > RDHPF_LOG_WARN || !collapse) {
		write_line(level, host, plugin, msg, kv, n, NULL, 0);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (kv[i].key != NULL && kv[i].value != NULL && strcmp(kv[i].key, "err") == 0) {
			err = prepare(kv[i].key, kv[i].value, ebuf, sizeof ebuf);
			break;
		}
	}
	/* The signature is taken from what would be printed: no secret is
	 * ever kept in the table. */
	m = prepare(NULL, msg, mbuf, sizeof mbuf);
	hash = fnv(fnv(fnv(fnv(UINT64_C(0xcbf29ce484222325) ^ (uint64_t)level, host), plugin), m),
	           err);
	t = now();

	s = sig_find(level, hash, host, plugin, m, err);
	if (s != NULL) {
		s->lru = ++L.tick;
		if (t < s->first_ms || t - s->first_ms < L.window_ms) {
			s->count++;
			return;
		}
		if (s->count > 0)
			print_summary(s, t);
		s->first_ms = t;
		s->count = 0;
	} else {
		s = sig_slot(t);
		memset(s, 0, sizeof *s);
		s->used = true;
		s->level = level;
		s->hash = hash;
		s->first_ms = t;
		s->lru = ++L.tick;
		s->has_host = host != NULL;
		s->has_plugin = plugin != NULL;
		s->has_err = err != NULL;
		str_copy(s->host, host ? host : "", sizeof s->host);
		str_copy(s->plugin, plugin ? plugin : "", sizeof s->plugin);
		str_copy(s->msg, m, sizeof s->msg);
		str_copy(s->err, err ? err : "", sizeof s->err);
	}
	write_line(level, host, plugin, msg, kv, n, NULL, 0);
}

static void
vkv(int level, const char *host, const char *plugin, const char *msg, va_list ap, bool collapse)
{
	struct kv_pair kv[KV_MAX];
	size_t n = 0;
	const char *k;

	while ((k = va_arg(ap, const char *)) != NULL) {
		const char *v = va_arg(ap, const char *);
		if (n < KV_MAX)
			kv[n++] = (struct kv_pair){k, v};
	}
	log_emit_ex(level, host, plugin, msg, kv, n, collapse);
}

void
log_vkv(int level, const char *host, const char *plugin, const char *msg, va_list ap)
{
	vkv(level, host, plugin, msg, ap, true);
}

void
log_kv_each(int level, const char *host, const char *plugin, const char *msg, ...)
{
	va_list ap;

	va_start(ap, msg);
	vkv(level, host, plugin, msg, ap, false);
	va_end(ap);
}

void
log_kv(int level, const char *host, const char *plugin, const char *msg, ...)
{
	va_list ap;

	va_start(ap, msg);
	log_vkv(level, host, plugin, msg, ap);
	va_end(ap);
}
