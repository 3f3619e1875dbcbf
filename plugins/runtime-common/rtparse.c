/* Pure parsing for the runtime plugins; see rtparse.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "rdhpf/sdk-json.h"
#include "rtparse.h"

#define RT_STR_(x) #x
#define RT_STR(x) RT_STR_(x)

/* ---- diagnostics ---- */

static void
diag(const struct rt_diag *d, int level, const char *msg, const char *id, const char *detail)
{
	if (d != NULL && d->fn != NULL)
		d->fn(d->arg, level, msg, id, detail);
}

/* ---- containers ---- */

int
rt_valid_id(const char *s, size_t len)
{
	if (s == NULL || len < 12 || len > RT_ID_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

int
rt_proto(const char *s, size_t len)
{
	if (len == 3 && memcmp(s, "tcp", 3) == 0)
		return RDHPF_PROTO_TCP;
	if (len == 3 && memcmp(s, "udp", 3) == 0)
		return RDHPF_PROTO_UDP;
	if (len == 4 && memcmp(s, "sctp", 4) == 0)
		return RDHPF_PROTO_SCTP;
	return 0;
}

int
rt_port_str(const char *s, size_t len)
{
	unsigned v = 0;

	if (s == NULL || len == 0 || len > 5)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	return v >= 1 && v <= 65535 ? (int)v : -1;
}

/* ---- time ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int
digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

static int
valid_ymdhms(int y, int mo, int d, int h, int mi, int s)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	if (y < 1970 || y > 2261 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 60)
		return 0;
	return d <= mdays[mo - 1] + (mo == 2 && leap);
}

int
rt_rfc3339_ns(const char *s, int64_t *out)
{
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	int64_t frac = 0, t;
	const char *p;

	if (s == NULL || strlen(s) < 20)
		return -1;
	if (digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
	    digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
	    digits(s + 17, 2, &sec))
		return -1;
	if (!valid_ymdhms(y, mo, d, h, mi, sec))
		return -1;
	p = s + 19;
	if (*p == '.') {
		int n = 0;
		p++;
		while (*p >= '0' && *p <= '9') {
			if (n < 9) {
				frac = frac * 10 + (*p - '0');
				n++;
			}
			p++;
		}
		if (n == 0)
			return -1;
		while (n++ < 9)
			frac *= 10;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '-' ? -1 : 1;
		if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 ||
		    om > 59)
			return -1;
		p += 6;
	} else {
		return -1;
	}
	if (*p != '\0')
		return -1;
	t = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec;
	t -= (int64_t)sign * (oh * 3600 + om * 60);
	*out = t * 1000000000 + frac;
	return 0;
}

int
rt_http_date(const char *s, int64_t *out)
{
	static const char *const mons[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	int d, y, h, mi, sec, mo = 0;

	/* "Sun, 06 Nov 1994 08:49:37 GMT" */
	if (s == NULL || strlen(s) != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' ||
	    s[11] != ' ' || s[16] != ' ' || s[19] != ':' || s[22] != ':' ||
	    strcmp(s + 25, " GMT") != 0)
		return -1;
	for (int i = 0; i < 12; i++)
		if (memcmp(s + 8, mons[i], 3) == 0)
			mo = i + 1;
	if (mo == 0 || digits(s + 5, 2, &d) || digits(s + 12, 4, &y) || digits(s + 17, 2, &h) ||
	    digits(s + 20, 2, &mi) || digits(s + 23, 2, &sec) ||
	    !valid_ymdhms(y, mo, d, h, mi, sec))
		return -1;
	*out = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec;
	return 0;
}

/* ---- HTTP/1.1 responses ---- */

enum {
	HS_STATUS = 0,
	HS_HEADER,
	HS_BODY_LEN,
	HS_BODY_EOF,
	HS_CHUNK_SIZE,
	HS_CHUNK_DATA,
	HS_CHUNK_CRLF,
	HS_TRAILER,
	HS_DONE,
};

void
rt_http_reset(struct rt_http *h)
{
	h->state = HS_STATUS;
	h->status = 0;
	h->chunked = h->has_length = h->conn_close = h->until_eof = 0;
	h->date = -1;
	h->left = 0;
	h->head_bytes = 0;
	h->line_len = 0;
}

int
rt_http_idle(const struct rt_http *h)
{
	return h->state == HS_STATUS && h->line_len == 0 && h->head_bytes == 0;
}

int
rt_http_eof(const struct rt_http *h)
{
	return h->state == HS_BODY_EOF ? RT_HTTP_DONE : RT_HTTP_ERR;
}

static int
ieq(const char *a, const char *b)
{
	return strcasecmp(a, b) == 0;
}

/* Does a comma-separated header value hold token (case-insensitive)? */
static int
has_token(const char *v, const char *token)
{
	size_t tl = strlen(token);

	while (*v) {
		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		const char *e = v;
		while (*e && *e != ',')
			e++;
		const char *t = e;
		while (t > v && (t[-1] == ' ' || t[-1] == '\t'))
			t--;
		if ((size_t)(t - v) == tl && strncasecmp(v, token, tl) == 0)
			return 1;
		v = e;
	}
	return 0;
}

static int
parse_u64(const char *s, int base, uint64_t *out)
{
	uint64_t v = 0;
	int n = 0;

	for (; *s; s++, n++) {
		int dgt;
		if (*s >= '0' && *s <= '9')
			dgt = *s - '0';
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			dgt = *s - 'a' + 10;
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			dgt = *s - 'A' + 10;
		else
			return -1;
		if (v > (UINT64_MAX - (uint64_t)dgt) / (uint64_t)base)
			return -1;
		v = v * (uint64_t)base + (uint64_t)dgt;
	}
	if (n == 0)
		return -1;
	*out = v;
	return 0;
}

/* One complete line (without CRLF) in h->line. */
static int
http_line(struct rt_http *h, const char **why)
{
	char *line = h->line;

	switch (h->state) {
	case HS_STATUS: {
		/* "HTTP/1.1 200 OK" */
		if (strncmp(line, "HTTP/1.", 7) != 0 || (line[7] != '0' && line[7] != '1') ||
		    line[8] != ' ' || line[9] < '1' || line[9] > '5' || line[10] < '0' ||
		    line[10] > '9' || line[11] < '0' || line[11] > '9' ||
		    (line[12] != ' ' && line[12] != '\0')) {
			*why = "bad status line";
			return RT_HTTP_ERR;
		}
		h->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
		h->conn_close = line[7] == '0';
		h->state = HS_HEADER;
		return RT_HTTP_MORE;
	}
	case HS_HEADER: {
		if (line[0] == '\0')
			break; /* end of head */
		char *colon = strchr(line, ':');
		if (colon == NULL || colon == line) {
			*why = "bad header line";
			return RT_HTTP_ERR;
		}
		*colon = '\0';
		char *v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		size_t vl = strlen(v);
		while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
			v[--vl] = '\0';
		if (ieq(line, "Content-Length")) {
			uint64_t cl;
			if (parse_u64(v, 10, &cl) != 0 || (h->has_length && cl != h->left)) {
				*why = "bad Content-Length";
				return RT_HTTP_ERR;
			}
			h->has_length = 1;
			h->left = cl;
		} else if (ieq(line, "Transfer-Encoding")) {
			if (has_token(v, "chunked"))
				h->chunked = 1;
			else {
				*why = "unsupported Transfer-Encoding";
				return RT_HTTP_ERR;
			}
		} else if (ieq(line, "Connection")) {
			if (has_token(v, "close"))
				h->conn_close = 1;
		} else if (ieq(line, "Date")) {
			int64_t t;
			if (rt_http_date(v, &t) == 0)
				h->date = t;
		}
		return RT_HTTP_MORE;
	}
	case HS_CHUNK_SIZE: {
		char *semi = strchr(line, ';');
		if (semi)
			*semi = '\0';
		size_t l = strlen(line);
		while (l > 0 && (line[l - 1] == ' ' || line[l - 1] == '\t'))
			line[--l] = '\0';
		if (l > 16 || parse_u64(line, 16, &h->left) != 0) {
			*why = "bad chunk size";
			return RT_HTTP_ERR;
		}
		h->state = h->left ? HS_CHUNK_DATA : HS_TRAILER;
		return RT_HTTP_MORE;
	}
	case HS_CHUNK_CRLF:
		if (line[0] != '\0') {
			*why = "chunk not followed by CRLF";
			return RT_HTTP_ERR;
		}
		h->state = HS_CHUNK_SIZE;
		return RT_HTTP_MORE;
	case HS_TRAILER:
		if (line[0] == '\0') {
			h->state = HS_DONE;
			return RT_HTTP_DONE;
		}
		return RT_HTTP_MORE;
	default:
		*why = "parser state";
		return RT_HTTP_ERR;
	}

	/* The head ended. */
	if (h->status >= 100 && h->status < 200) {
		/* Interim response: the real one follows. */
		rt_http_reset(h);
		return RT_HTTP_MORE;
	}
	if (h->status == 204 || h->status == 304) {
		h->state = HS_DONE;
	} else if (h->chunked) {
		h->state = HS_CHUNK_SIZE;
		h->has_length = 0;
	} else if (h->has_length) {
		h->state = h->left ? HS_BODY_LEN : HS_DONE;
	} else {
		h->state = HS_BODY_EOF;
		h->until_eof = 1;
		h->conn_close = 1;
	}
	return RT_HTTP_HEAD;
}

int
rt_http_feed(struct rt_http *h, const char *buf, size_t len, size_t *used, rt_body_fn fn, void *arg,
             const char **why)
{
	size_t i = 0;
	int r;

	*why = NULL;
	while (i < len) {
		switch (h->state) {
		case HS_DONE:
			*used = i;
			return RT_HTTP_DONE;
		case HS_BODY_LEN:
		case HS_CHUNK_DATA:
		case HS_BODY_EOF: {
			size_t n = len - i;
			if (h->state != HS_BODY_EOF && (uint64_t)n > h->left)
				n = (size_t)h->left;
			if (h->state != HS_BODY_EOF)
				h->left -= n;
			if (h->left == 0 && h->state == HS_BODY_LEN)
				h->state = HS_DONE;
			else if (h->left == 0 && h->state == HS_CHUNK_DATA)
				h->state = HS_CHUNK_CRLF;
			const char *p = buf + i;
			i += n;
			if (fn != NULL && n > 0 && fn(arg, p, n)) {
				*used = i;
				return RT_HTTP_STOP;
			}
			continue;
		}
		default:
			break;
		}
		/* Line-oriented states: collect up to "\n". */
		char c = buf[i++];
		if (h->state == HS_STATUS || h->state == HS_HEADER) {
			if (++h->head_bytes > RT_HTTP_HEAD_MAX) {
				*why = "response head too large";
				*used = i;
				return RT_HTTP_ERR;
			}
		}
		if (c != '\n') {
			if (h->line_len + 1 >= sizeof h->line) {
				*why = "line too long";
				*used = i;
				return RT_HTTP_ERR;
			}
			h->line[h->line_len++] = c;
			continue;
		}
		if (h->line_len > 0 && h->line[h->line_len - 1] == '\r')
			h->line_len--;
		h->line[h->line_len] = '\0';
		h->line_len = 0;
		r = http_line(h, why);
		if (r != RT_HTTP_MORE) {
			*used = i;
			return r;
		}
	}
	*used = i;
	return h->state == HS_DONE ? RT_HTTP_DONE : RT_HTTP_MORE;
}

/* ---- JSON helpers ---- */

static const char *
jstr(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A port from a JSON integer or digit string: 1..65535, -1 when invalid,
 * -2 when absent, null or "" (so callers can tell "not published" from
 * "bad"). */
static int
jport(const json_t *v)
{
	if (v == NULL || json_is_null(v))
		return -2;
	if (json_is_integer(v)) {
		json_int_t x = json_integer_value(v);
		return x >= 1 && x <= 65535 ? (int)x : -1;
	}
	if (json_is_string(v)) {
		if (json_string_length(v) == 0)
			return -2;
		return rt_port_str(json_string_value(v), json_string_length(v));
	}
	return -1;
}

static void
port_text(char *buf, size_t n, const json_t *v)
{
	if (json_is_integer(v))
		snprintf(buf, n, "%lld", (long long)json_integer_value(v));
	else if (json_is_string(v))
		snprintf(buf, n, "\"%.24s\"", json_string_value(v));
	else
		snprintf(buf, n, "(not a number)");
}

/* A container being parsed: the SDK's container and what the parse
 * counts about it. */
struct pcont {
	struct rsdk_cont c;
	uint64_t dropped; /* mappings past RT_MAX_PORTS */
	int labels_said;  /* a label was skipped: said once */
};

static void
short_text(char *buf, size_t n, const char *s, size_t len)
{
	rsdk_printable(buf, n, s, len);
}

static json_t *
load(const char *buf, size_t len, const struct rt_diag *d, const char *what)
{
	json_error_t e;
	json_t *j = json_loadb(buf, len, JSON_DECODE_ANY, &e);

	if (j == NULL) {
		char detail[200];
		snprintf(detail, sizeof detail, "%s: %s at byte %d", what, e.text, e.position);
		diag(d, RDHPF_LOG_WARN, "malformed JSON skipped", NULL, detail);
	}
	return j;
}

/* id validated as hex (the only ids that reach a URL or an argv), name
 * without its '/' and bounded.  -1 (said in a diag) for a bad id. */
static int
cont_start(struct rsdk_cont *c, const char *id, const char *name, const char *what,
           const struct rt_diag *d)
{
	char nb[RT_NAME_MAX + 1];

	memset(c, 0, sizeof *c);
	if (id == NULL || !rt_valid_id(id, strlen(id))) {
		char detail[96];
		short_text(detail, 64, id ? id : "(none)", id ? strlen(id) : 6);
		diag(d, RDHPF_LOG_WARN, what, NULL, detail);
		return -1;
	}
	if (name != NULL && name[0] == '/')
		name++;
	if (name != NULL) {
		snprintf(nb, sizeof nb, "%s", name);
		name = nb;
	}
	if (rsdk_cont_init(c, id, name) != RDHPF_OK) {
		diag(d, RDHPF_LOG_WARN, what, id, "out of memory");
		return -1;
	}
	return 0;
}

/* No control characters: they would reach logs and rule matching. */
static int
text_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

static void
set_image(struct rsdk_cont *c, const char *image, const struct rt_diag *d)
{
	if (image == NULL || image[0] == '\0')
		return;
	if (strlen(image) > RT_TEXT_MAX || !text_ok(image)) {
		diag(d, RDHPF_LOG_WARN, "image name skipped", c->id,
		     "too long, or holds a control character");
		return;
	}
	if (rsdk_cont_set_image(c, image) != RDHPF_OK)
		diag(d, RDHPF_LOG_WARN, "image name skipped", c->id, "out of memory");
}

/* One label, bounded; *said: a skip was already said for this container. */
static void
add_label(struct rsdk_cont *c, const char *k, const char *v, int *said, const struct rt_diag *d)
{
	const char *why = NULL;

	if (c->n_labels >= RT_MAX_LABELS)
		why = "more labels than " RT_STR(RT_MAX_LABELS) ": the rest are skipped";
	else if (strlen(k) > RT_TEXT_MAX || strlen(v) > RT_TEXT_MAX)
		why = "a label longer than " RT_STR(RT_TEXT_MAX) " bytes skipped";
	else if (k[0] == '\0')
		why = "a label without a key skipped";
	else if (!text_ok(k) || !text_ok(v))
		why = "a label with a control character skipped";
	else if (rsdk_cont_add_label(c, k, v) != RDHPF_OK)
		why = "out of memory";
	if (why != NULL && !*said) {
		*said = 1;
		diag(d, RDHPF_LOG_WARN, "label skipped", c->id, why);
	}
}

/* {"k": "v", …}; null or absent: none.  skip: keys that are not labels
 * (an event's attributes), NULL-ended, or NULL. */
static void
add_labels(struct rsdk_cont *c, const json_t *obj, const char *const *skip, const struct rt_diag *d)
{
	const char *key;
	json_t *v;
	int said = 0;

	if (!json_is_object(obj))
		return;
	json_object_foreach((json_t *)(uintptr_t)obj, key, v)
	{
		size_t i;
		if (!json_is_string(v))
			continue;
		for (i = 0; skip != NULL && skip[i] != NULL; i++)
			if (strcmp(key, skip[i]) == 0)
				break;
		if (skip != NULL && skip[i] != NULL)
			continue;
		add_label(c, key, json_string_value(v), &said, d);
	}
}

int
rt_host_ip_ok(const char *ip)
{
	unsigned char bin[16];

	return ip[0] == '\0' || inet_pton(AF_INET, ip, bin) == 1 ||
	       inet_pton(AF_INET6, ip, bin) == 1;
}

static void
host_ip_refused(const struct pcont *c, const char *ip, const struct rt_diag *d)
{
	char detail[120], shown[72];

	short_text(shown, sizeof shown, ip, strlen(ip));
	snprintf(detail, sizeof detail, "HostIp '%s' is not an IP address", shown);
	diag(d, RDHPF_LOG_WARN, "port mapping skipped", c->c.id, detail);
}

/* Past RT_MAX_PORTS: said once per container, the rest only counted. */
static void
port_cap_hit(struct pcont *c, uint64_t n, const struct rt_diag *d)
{
	char detail[96];

	if (c->dropped == 0) {
		snprintf(detail, sizeof detail,
		         "more than %u published ports: the rest are skipped", RT_MAX_PORTS);
		diag(d, RDHPF_LOG_WARN, "port mapping skipped", c->c.id, detail);
	}
	c->dropped += n;
}

/* Add one validated mapping, or report why not. */
static void
add_mapping(struct pcont *c, const char *ip, int hp, int cp, int proto, const json_t *hpv,
            const struct rt_diag *d)
{
	char detail[96], pt[40];

	if (hp < 0 || cp < 0) {
		port_text(pt, sizeof pt, hpv);
		snprintf(detail, sizeof detail, "host port %s%s: not in 1..65535", pt,
		         cp < 0 ? " (or its container port)" : "");
		diag(d, RDHPF_LOG_WARN, "port mapping skipped", c->c.id, detail);
		return;
	}
	if (ip == NULL)
		ip = "";
	if (strlen(ip) > RT_IP_MAX) {
		diag(d, RDHPF_LOG_WARN, "port mapping skipped", c->c.id, "host address too long");
		return;
	}
	if (!rt_host_ip_ok(ip)) {
		host_ip_refused(c, ip, d);
		return;
	}
	if (proto != RDHPF_PROTO_TCP) {
		snprintf(detail, sizeof detail, "%d/%s: only TCP is forwarded", hp,
		         proto == RDHPF_PROTO_UDP ? "udp" : "sctp");
		diag(d, RDHPF_LOG_DEBUG, "port mapping not forwarded", c->c.id, detail);
	}
	if (c->c.n_ports >= RT_MAX_PORTS) {
		port_cap_hit(c, 1, d);
		return;
	}
	if (rsdk_cont_add_port(&c->c, ip, (uint16_t)hp, (uint16_t)cp, proto) != RDHPF_OK)
		diag(d, RDHPF_LOG_WARN, "port mapping skipped", c->c.id, "out of memory");
}

/* The container is complete: into the set (c is emptied).  -1 on ENOMEM. */
static int
pcont_put(struct rsdk_cset *out, struct pcont *c, const struct rt_diag *d)
{
	if (c->dropped > 0 && d != NULL && d->dropped != NULL)
		d->dropped(d->arg, c->c.id, c->dropped);
	if (rsdk_cset_put(out, &c->c) != RDHPF_OK) {
		rsdk_cont_clear(&c->c);
		return -1;
	}
	return 0;
}

/* ---- events ---- */

void
rt_event_clear(struct rt_event *ev)
{
	rsdk_cont_clear(&ev->c);
	memset(ev, 0, sizeof *ev);
}

static int64_t
ev_time(const json_t *o, int podman)
{
	const json_t *v = json_object_get(o, "timeNano");
	int64_t t;

	if (json_is_integer(v) && json_integer_value(v) > 0)
		return json_integer_value(v);
	v = json_object_get(o, "time");
	if (json_is_integer(v) && json_integer_value(v) > 0 &&
	    json_integer_value(v) < INT64_MAX / 1000000000)
		return json_integer_value(v) * 1000000000;
	if (podman) {
		const char *s = jstr(o, "Time");
		if (s != NULL && rt_rfc3339_ns(s, &t) == 0)
			return t;
	}
	return 0;
}

/* Docker's Actor.Attributes of a container event: the container's labels
 * plus these, which the engine adds (a label of the same name cannot be
 * told apart and is dropped with them; a START takes its labels from
 * inspect, which has them all). */
static const char *const docker_not_labels[] = {
    "name",        "image",     "exitCode",          "signal", "execDuration", "execID",
    "destination", "container", "containerExitCode", "podId",  NULL, /* the last two: podman's
                                                                        compat API */
};

int
rt_docker_event(const char *line, size_t len, struct rt_event *ev, const struct rt_diag *d)
{
	json_t *o;
	const char *type, *action, *id = NULL, *name = NULL, *image = NULL;
	const json_t *actor, *attrs = NULL;
	int r = -1;

	memset(ev, 0, sizeof *ev);
	if ((o = load(line, len, d, "event")) == NULL)
		return -1;
	if (!json_is_object(o)) {
		diag(d, RDHPF_LOG_WARN, "event skipped: not an object", NULL, NULL);
		goto out;
	}
	type = jstr(o, "Type");
	action = jstr(o, "Action");
	if (action == NULL)
		action = jstr(o, "status");
	if (action == NULL) {
		diag(d, RDHPF_LOG_WARN, "event skipped: no Action", NULL, NULL);
		goto out;
	}
	snprintf(ev->action, sizeof ev->action, "%s", action);
	if (type != NULL && strcmp(type, "container") != 0) {
		ev->kind = RT_EV_IGNORE;
		r = 0;
		goto out;
	}
	actor = json_object_get(o, "Actor");
	if (json_is_object(actor)) {
		id = jstr(actor, "ID");
		attrs = json_object_get(actor, "Attributes");
		if (json_is_object(attrs)) {
			name = jstr(attrs, "name");
			image = jstr(attrs, "image");
		}
	}
	if (id == NULL || id[0] == '\0')
		id = jstr(o, "id");
	if (image == NULL)
		image = jstr(o, "from");
	if (cont_start(&ev->c, id, name, "event skipped: bad container id", d) != 0)
		goto out;
	set_image(&ev->c, image, d);
	add_labels(&ev->c, attrs, docker_not_labels, d);
	ev->time_ns = ev_time(o, 0);
	/* kill does not mean stopped (SIGHUP), restart is followed by start,
	 * exec_die concerns an exec session, not the container. */
	if (strcmp(action, "start") == 0)
		ev->kind = RT_EV_START;
	else if (strcmp(action, "die") == 0 || strcmp(action, "died") == 0 ||
	         strcmp(action, "stop") == 0 || strcmp(action, "destroy") == 0 ||
	         strcmp(action, "remove") == 0)
		ev->kind = RT_EV_STOP;
	else
		ev->kind = RT_EV_IGNORE;
	r = 0;
out:
	json_decref(o);
	return r;
}

/* 4.x sends "restart" before stop/died/start; "cleanup" follows "died";
 * "exec_died" concerns an exec session. */
static int
podman_kind(const char *status)
{
	if (strcmp(status, "start") == 0 || strcmp(status, "restore") == 0)
		return RT_EV_START;
	if (strcmp(status, "died") == 0 || strcmp(status, "die") == 0 ||
	    strcmp(status, "stop") == 0 || strcmp(status, "remove") == 0)
		return RT_EV_STOP;
	return RT_EV_IGNORE;
}

/* Where a podman event keeps its fields: the events JSON / log file
 * (labels: the object "Attributes"), or podman's journal entry (labels:
 * PODMAN_LABELS, a JSON object in a string). */
struct pm_keys {
	const char *what, *type, *status, *id, *name, *image, *labels, *missing;
	int journal;
};

static const struct pm_keys pm_json = {
    "event", "Type",  "Status",     "ID",
    "Name",  "Image", "Attributes", "event skipped: no Status or Type",
    0};
static const struct pm_keys pm_journal = {"journal entry",
                                          "PODMAN_TYPE",
                                          "PODMAN_EVENT",
                                          "PODMAN_ID",
                                          "PODMAN_NAME",
                                          "PODMAN_IMAGE",
                                          "PODMAN_LABELS",
                                          "event skipped: no PODMAN_EVENT or PODMAN_TYPE",
                                          1};

/* A journal entry's time: PODMAN_TIME, else __REALTIME_TIMESTAMP
 * (microseconds since the epoch, a decimal string); 0 if neither. */
static int64_t
journal_time(const json_t *o)
{
	const char *s = jstr(o, "PODMAN_TIME");
	uint64_t us = 0;
	int64_t t;
	size_t i;

	if (s != NULL && rt_rfc3339_ns(s, &t) == 0)
		return t;
	if ((s = jstr(o, "__REALTIME_TIMESTAMP")) == NULL)
		return 0;
	for (i = 0; s[i] >= '0' && s[i] <= '9' && i < 17; i++)
		us = us * 10 + (uint64_t)(s[i] - '0');
	return s[i] == '\0' && i > 0 ? (int64_t)us * 1000 : 0;
}

static int
podman_event(const struct pm_keys *k, const char *line, size_t len, struct rt_event *ev,
             const struct rt_diag *d)
{
	json_t *o;
	const char *type, *status;
	int r = -1;

	memset(ev, 0, sizeof *ev);
	if ((o = load(line, len, d, k->what)) == NULL)
		return -1;
	if (!json_is_object(o)) {
		diag(d, RDHPF_LOG_WARN, "event skipped: not an object", NULL, NULL);
		goto out;
	}
	/* journalctl prints a field that is not valid UTF-8 as an array of
	 * bytes: jstr() then sees no string and the entry is skipped. */
	type = jstr(o, k->type);
	status = jstr(o, k->status);
	if (status == NULL || type == NULL) {
		diag(d, RDHPF_LOG_WARN, k->missing, NULL, NULL);
		goto out;
	}
	snprintf(ev->action, sizeof ev->action, "%s", status);
	if (strcmp(type, "container") != 0) {
		r = 0;
		goto out;
	}
	if (cont_start(&ev->c, jstr(o, k->id), jstr(o, k->name), "event skipped: bad container id",
	               d) != 0)
		goto out;
	set_image(&ev->c, jstr(o, k->image), d);
	if (k->journal) {
		const char *lj = jstr(o, k->labels);
		json_t *l = lj != NULL ? json_loads(lj, 0, NULL) : NULL;
		add_labels(&ev->c, l, NULL, d);
		json_decref(l);
	} else {
		add_labels(&ev->c, json_object_get(o, k->labels), NULL, d);
	}
	ev->time_ns = k->journal ? journal_time(o) : ev_time(o, 1);
	ev->kind = podman_kind(status);
	r = 0;
out:
	json_decref(o);
	return r;
}

int
rt_podman_event(const char *line, size_t len, struct rt_event *ev, const struct rt_diag *d)
{
	return podman_event(&pm_json, line, len, ev, d);
}

int
rt_podman_journal_event(const char *line, size_t len, struct rt_event *ev, const struct rt_diag *d)
{
	return podman_event(&pm_journal, line, len, ev, d);
}

int
rt_podman_reader_line(const char *line, size_t len, int *kind, char *rest, size_t restlen)
{
	static const struct {
		const char *word;
		int kind;
	} kinds[] = {
	    {"file", RT_PM_FILE},
	    {"journald", RT_PM_JOURNALD},
	    {"podman", RT_PM_EVENTS},
	};
	static const char tag[] = "rdhpf-events ";
	size_t tl = sizeof tag - 1;

	if (restlen > 0)
		rest[0] = '\0';
	if (len < tl || memcmp(line, tag, tl) != 0)
		return -1;
	line += tl;
	len -= tl;
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		size_t wl = strlen(kinds[i].word);
		if (len < wl || memcmp(line, kinds[i].word, wl) != 0 ||
		    (len > wl && line[wl] != ' '))
			continue;
		*kind = kinds[i].kind;
		if (len > wl && restlen > 0)
			short_text(rest, restlen, line + wl + 1, len - wl - 1);
		return 0;
	}
	return -1;
}

/* ---- lists ---- */

static const char *
first_name(const json_t *o)
{
	const json_t *names = json_object_get(o, "Names");
	if (json_is_array(names) && json_array_size(names) > 0 &&
	    json_is_string(json_array_get(names, 0)))
		return json_string_value(json_array_get(names, 0));
	if (json_is_string(names)) /* podman 1.x/2.x */
		return json_string_value(names);
	return NULL;
}

static int
cont_begin(struct pcont *c, const json_t *o, const char *name, const struct rt_diag *d)
{
	memset(c, 0, sizeof *c);
	return cont_start(&c->c, jstr(o, "Id"), name, "container skipped: bad id", d);
}

static void
docker_list_ports(struct pcont *c, const json_t *ports, const struct rt_diag *d)
{
	size_t i;
	const json_t *p;

	if (!json_is_array(ports))
		return;
	json_array_foreach(ports, i, p)
	{
		const char *type = jstr(p, "Type");
		const json_t *pub = json_object_get(p, "PublicPort");
		int hp = jport(pub), cp = jport(json_object_get(p, "PrivatePort"));
		int proto = type ? rt_proto(type, strlen(type)) : RDHPF_PROTO_TCP;

		if (hp == -2)
			continue; /* exposed, not published */
		if (proto == 0) {
			diag(d, RDHPF_LOG_DEBUG, "port mapping skipped: unknown protocol", c->c.id,
			     type);
			continue;
		}
		add_mapping(c, jstr(p, "IP"), hp, cp, proto, pub, d);
	}
}

int
rt_docker_list(const char *body, size_t len, struct rsdk_cset *out, const struct rt_diag *d)
{
	json_t *a = load(body, len, d, "container list");
	size_t i;
	const json_t *o;

	rsdk_cset_free(out);
	if (a == NULL)
		return -1;
	if (!json_is_array(a)) {
		diag(d, RDHPF_LOG_WARN, "container list is not an array", NULL, NULL);
		json_decref(a);
		return -1;
	}
	json_array_foreach(a, i, o)
	{
		struct pcont c;
		if (!json_is_object(o) || cont_begin(&c, o, first_name(o), d) != 0)
			continue;
		set_image(&c.c, jstr(o, "Image"), d);
		add_labels(&c.c, json_object_get(o, "Labels"), NULL, d);
		docker_list_ports(&c, json_object_get(o, "Ports"), d);
		if (pcont_put(out, &c, d) != 0) {
			rsdk_cset_free(out);
			json_decref(a);
			return -1;
		}
	}
	json_decref(a);
	return 0;
}

/* One podman PortMapping: consecutive ports for range > 1, and a
 * protocol list like "tcp,udp". */
static void
podman_mapping(struct pcont *c, const json_t *p, const struct rt_diag *d)
{
	const json_t *hpv = json_object_get(p, "host_port");
	const json_t *cpv = json_object_get(p, "container_port");
	const json_t *rv = json_object_get(p, "range");
	const char *ip = jstr(p, "host_ip");
	const char *protos = jstr(p, "protocol");
	json_int_t range = 1;
	int hp, cp;

	if (hpv == NULL && cpv == NULL) { /* podman 3.x field names */
		hpv = json_object_get(p, "hostPort");
		cpv = json_object_get(p, "containerPort");
		ip = jstr(p, "hostIP");
	}
	if (protos == NULL || protos[0] == '\0')
		protos = "tcp";
	hp = jport(hpv);
	cp = jport(cpv);
	if (hp == -2)
		return; /* not published */
	if (json_is_integer(rv) && json_integer_value(rv) > 1)
		range = json_integer_value(rv);
	else if (rv != NULL && !json_is_null(rv) && !json_is_integer(rv)) {
		diag(d, RDHPF_LOG_WARN, "port mapping skipped", c->c.id, "range is not a number");
		return;
	}
	if (range > 65535 || (hp > 0 && hp + range - 1 > 65535) ||
	    (cp > 0 && cp + range - 1 > 65535)) {
		diag(d, RDHPF_LOG_WARN, "port mapping skipped", c->c.id, "range runs past 65535");
		return;
	}
	if (hp < 0 || cp < 0) {
		add_mapping(c, ip, hp, cp, RDHPF_PROTO_TCP, hpv, d);
		return;
	}
	/* Once for the whole range, not once a port. */
	if (ip != NULL && strlen(ip) <= RT_IP_MAX && !rt_host_ip_ok(ip)) {
		host_ip_refused(c, ip, d);
		return;
	}
	/* Each protocol once, however often it is listed ("tcp,tcp,…"), and
	 * the range only up to the container's cap: the rest is counted, not
	 * walked, so a crafted range × protocols costs no more than the cap. */
	unsigned seen = 0;
	int protos_v[3], n_protos = 0, unknown_said = 0;
	for (const char *s = protos; *s;) {
		const char *e = strchr(s, ',');
		size_t l = e ? (size_t)(e - s) : strlen(s);
		int proto = rt_proto(s, l);
		if (proto == 0 && !unknown_said) {
			char detail[40];
			short_text(detail, sizeof detail, s, l);
			diag(d, RDHPF_LOG_DEBUG, "port mapping skipped: unknown protocol", c->c.id,
			     detail);
			unknown_said = 1;
		} else if (proto != 0 && !(seen & (1u << proto)) && n_protos < 3) {
			seen |= 1u << proto;
			protos_v[n_protos++] = proto;
		}
		s += l;
		if (*s == ',')
			s++;
	}
	for (int i = 0; i < n_protos; i++) {
		for (json_int_t k = 0; k < range; k++) {
			if (c->c.n_ports >= RT_MAX_PORTS) {
				port_cap_hit(c,
				             (uint64_t)(range - k) +
				                 (uint64_t)range * (uint64_t)(n_protos - 1 - i),
				             d);
				return;
			}
			add_mapping(c, ip, hp + (int)k, cp + (int)k, protos_v[i], hpv, d);
		}
	}
}

int
rt_podman_ps(const char *body, size_t len, struct rsdk_cset *out, const struct rt_diag *d)
{
	json_t *a = load(body, len, d, "podman ps");
	size_t i, k;
	const json_t *o, *p;

	rsdk_cset_free(out);
	if (a == NULL)
		return -1;
	if (json_is_null(a)) { /* some versions print null for none */
		json_decref(a);
		return 0;
	}
	if (!json_is_array(a)) {
		diag(d, RDHPF_LOG_WARN, "podman ps output is not an array", NULL, NULL);
		json_decref(a);
		return -1;
	}
	json_array_foreach(a, i, o)
	{
		struct pcont c;
		const char *state;
		if (!json_is_object(o))
			continue;
		state = jstr(o, "State");
		if (state != NULL && strcmp(state, "running") != 0)
			continue;
		if (cont_begin(&c, o, first_name(o), d) != 0)
			continue;
		set_image(&c.c, jstr(o, "Image"), d);
		add_labels(&c.c, json_object_get(o, "Labels"), NULL, d);
		const json_t *ports = json_object_get(o, "Ports");
		if (json_is_array(ports))
			json_array_foreach(ports, k, p) if (json_is_object(p))
			    podman_mapping(&c, p, d);
		if (pcont_put(out, &c, d) != 0) {
			rsdk_cset_free(out);
			json_decref(a);
			return -1;
		}
	}
	json_decref(a);
	return 0;
}

/* NetworkSettings.Ports: {"80/tcp": [{"HostIp": "", "HostPort": "8080"}] | null} */
static void
inspect_ports(struct pcont *c, const json_t *ports, const struct rt_diag *d)
{
	const char *key;
	const json_t *binds;

	if (!json_is_object(ports))
		return;
	json_object_foreach((json_t *)(uintptr_t)ports, key, binds)
	{
		const char *slash = strchr(key, '/');
		size_t kl = slash ? (size_t)(slash - key) : strlen(key);
		int cp = rt_port_str(key, kl);
		int proto = slash ? rt_proto(slash + 1, strlen(slash + 1)) : RDHPF_PROTO_TCP;
		size_t i;
		const json_t *b;

		if (!json_is_array(binds) || json_array_size(binds) == 0)
			continue; /* exposed, not published */
		if (proto == 0) {
			diag(d, RDHPF_LOG_DEBUG, "port mapping skipped: unknown protocol", c->c.id,
			     key);
			continue;
		}
		json_array_foreach(binds, i, b)
		{
			const json_t *hpv;
			int hp;
			if (!json_is_object(b))
				continue;
			hpv = json_object_get(b, "HostPort");
			hp = jport(hpv);
			if (hp == -2)
				hp = -1; /* a binding without a port is not valid */
			add_mapping(c, jstr(b, "HostIp"), hp, cp, proto, hpv, d);
		}
	}
}

/* 1: put into out; 0: skipped (bad, or not running when running_only);
 * -1: ENOMEM. */
static int
inspect_one(const json_t *o, struct rsdk_cset *out, int running_only, const struct rt_diag *d)
{
	const json_t *state, *ns;
	struct pcont c;

	if (!json_is_object(o) || cont_begin(&c, o, jstr(o, "Name"), d) != 0)
		return 0;
	state = json_object_get(o, "State");
	if (running_only &&
	    (!json_is_object(state) || !json_is_true(json_object_get(state, "Running")))) {
		rsdk_cont_clear(&c.c);
		return 0;
	}
	set_image(&c.c, rsdk_json_path_str(o, "Config.Image"), d);
	add_labels(&c.c, rsdk_json_path_obj(o, "Config.Labels"), NULL, d);
	ns = json_object_get(o, "NetworkSettings");
	if (json_is_object(ns))
		inspect_ports(&c, json_object_get(ns, "Ports"), d);
	return pcont_put(out, &c, d) == 0 ? 1 : -1;
}

int
rt_inspect(const char *body, size_t len, int running_only, struct rsdk_cset *out,
           const struct rt_diag *d)
{
	json_t *j = load(body, len, d, "inspect");
	size_t i;
	const json_t *o;
	int rc = 0;

	rsdk_cset_free(out);
	if (j == NULL)
		return -1;
	if (json_is_object(j)) {
		rc = inspect_one(j, out, running_only, d) < 0 ? -1 : 0;
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, o)
		{
			if (inspect_one(o, out, running_only, d) < 0) {
				rc = -1;
				break;
			}
		}
	} else {
		diag(d, RDHPF_LOG_WARN, "inspect output is neither object nor array", NULL, NULL);
		rc = -1;
	}
	json_decref(j);
	if (rc != 0)
		rsdk_cset_free(out);
	return rc;
}

void
rt_api_error(const char *body, size_t len, char *out, size_t outlen)
{
	json_t *j;

	if (outlen == 0)
		return;
	out[0] = '\0';
	if (body == NULL || len == 0)
		return;
	j = json_loadb(body, len, 0, NULL);
	if (json_is_object(j) && jstr(j, "message") != NULL) {
		const char *m = jstr(j, "message");
		short_text(out, outlen, m, strlen(m));
	} else if (j == NULL || !json_is_object(j)) {
		size_t l = len;
		while (l > 0 && (body[l - 1] == '\n' || body[l - 1] == '\r'))
			l--;
		short_text(out, outlen, body, l);
	}
	json_decref(j);
}
