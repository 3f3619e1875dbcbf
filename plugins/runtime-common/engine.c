/* Engine API client over host-API streams; see engine.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

enum { REQ_PING = 1, REQ_LIST, REQ_INSPECT, REQ_EVENTS, REQ_DISCARD };

/* A request sent (or to be resent) and waiting for its response. */
struct ereq {
	int kind;
	int tries;            /* sends so far */
	struct rt_item *item; /* REQ_INSPECT: the START waiting for it */
	struct ereq *next;
	char path[];
};

struct econn {
	struct eng *e;
	int events; /* the event stream, not the request connection */
	struct rdhpf_stream *s;
	struct rt_http http;
	int got_bytes; /* the engine has answered on this connection */
	int streaming; /* events: 200 seen, the body is the event lines */
	struct ereq *head, *tail;
	struct rsdk_buf body;
	int over; /* body went past RT_BODY_MAX: dropped */
	struct rsdk_lines lines;
};

struct eng {
	struct rt *r;
	int mode;     /* ENG_UNIX or ENG_EXEC */
	int fallback; /* auto: unix may still give way to exec */
	char *socket;
	char **argv;
	char *filters;
	int (*parse_event)(const char *, size_t, struct rt_event *, const struct rt_diag *);
	struct econn *api, *ev;
	rdhpf_list_fn list_done;
	void *list_arg;
};

static void econn_fail(struct econn *c, int status, const char *detail);

/* ---- requests ---- */

static struct ereq *
req_new(int kind, const char *path)
{
	size_t l = strlen(path);
	struct ereq *q = calloc(1, sizeof *q + l + 1);

	if (q == NULL)
		return NULL;
	q->kind = kind;
	memcpy(q->path, path, l + 1);
	return q;
}

static void
reqs_free(struct ereq *q)
{
	while (q) {
		struct ereq *n = q->next;
		free(q);
		q = n;
	}
}

/* ---- connections ---- */

static void econn_data(void *arg, const char *buf, size_t len);
static void econn_closed(void *arg, int status, int exit_code, const char *detail);

static const struct rdhpf_stream_cbs econn_cbs = {
    RDHPF_INIT(rdhpf_stream_cbs),
    .on_data = econn_data,
    .on_close = econn_closed,
};

static void
econn_free(struct econn *c)
{
	struct eng *e = c->e;

	if (e->api == c)
		e->api = NULL;
	if (e->ev == c)
		e->ev = NULL;
	if (c->s)
		e->r->H->stream_close(c->s);
	reqs_free(c->head);
	rsdk_buf_free(&c->body);
	rsdk_lines_free(&c->lines);
	free(c);
}

static int
econn_open(struct eng *e, int events, struct econn **out)
{
	const struct rdhpf_host_api *H = e->r->H;
	struct econn *c = calloc(1, sizeof *c);
	int rc;

	if (c == NULL)
		return RDHPF_ERR_NOMEM;
	c->e = e;
	c->events = events;
	rt_http_reset(&c->http);
	rsdk_buf_init(&c->body);
	rsdk_lines_init(&c->lines, RT_LINE_MAX);
	for (;;) {
		if (e->mode == ENG_UNIX) {
			rc = H->stream_open_unix(e->r->ctx, e->socket, &econn_cbs, c, &c->s);
			if (rc == RDHPF_ERR_UNSUPPORTED && e->fallback) {
				e->fallback = 0;
				e->mode = ENG_EXEC;
				RT_LOG(e->r, RDHPF_LOG_DEBUG,
				       "transport cannot open remote sockets; relaying through a "
				       "command",
				       "command", e->argv[0]);
				continue;
			}
		} else {
			rc = H->stream_exec(e->r->ctx, (const char *const *)e->argv, &econn_cbs, c,
			                    &c->s);
		}
		break;
	}
	if (rc != RDHPF_OK) {
		c->s = NULL;
		econn_free(c);
		return rc;
	}
	*out = c;
	return RDHPF_OK;
}

static int
econn_send(struct econn *c, struct ereq *q)
{
	char buf[1024];
	int n = snprintf(buf, sizeof buf,
	                 "GET %s HTTP/1.1\r\nHost: docker\r\nUser-Agent: rdhpf\r\n\r\n", q->path);
	int rc;

	if (n < 0 || (size_t)n >= sizeof buf)
		return RDHPF_ERR_INVAL;
	rc = c->e->r->H->stream_write(c->s, buf, (size_t)n);
	if (rc != RDHPF_OK)
		return rc;
	q->tries++;
	q->next = NULL;
	if (c->tail)
		c->tail->next = q;
	else
		c->head = q;
	c->tail = q;
	return RDHPF_OK;
}

/* Send on the request connection, opening it if needed.  On error q is
 * freed and no callback follows. */
static int
api_send(struct eng *e, struct ereq *q)
{
	int rc = RDHPF_OK;

	if (e->api == NULL)
		rc = econn_open(e, 0, &e->api);
	if (rc == RDHPF_OK)
		rc = econn_send(e->api, q);
	if (rc != RDHPF_OK)
		free(q);
	return rc;
}

/* ---- what a failed request means ---- */

/* Returns 0 when stop() ran meanwhile. */
static int
req_failed(struct eng *e, struct ereq *q, int status, const char *detail)
{
	struct rt *r = e->r;
	uint64_t gen = RT_GEN(r);
	char msg[300];

	switch (q->kind) {
	case REQ_LIST: {
		rdhpf_list_fn done = e->list_done;
		void *arg = e->list_arg;
		e->list_done = NULL;
		if (done) {
			snprintf(msg, sizeof msg, "container list: %s", detail ? detail : "failed");
			done(arg, status, msg, NULL, 0);
		}
		break;
	}
	case REQ_PING:
		snprintf(msg, sizeof msg, "engine API: %s", detail ? detail : "failed");
		rt_end(r, status, msg);
		break;
	case REQ_INSPECT:
		/* Its ports are unknown: only a resync can be sure of them. */
		snprintf(msg, sizeof msg, "container %.12s: %s",
		         q->item != NULL && q->item->c.id != NULL ? q->item->c.id : "?",
		         detail ? detail : "inspect failed");
		rt_end(r, status, msg);
		break;
	case REQ_EVENTS:
		snprintf(msg, sizeof msg, "event stream: %s", detail ? detail : "failed");
		rt_end(r, status, msg);
		break;
	default:
		break;
	}
	return RT_GEN(r) == gen;
}

/* The request connection died with requests outstanding: resend them on
 * a new one (each once; a Unix socket that never answered gives way to
 * the command in auto mode), else fail them. */
static void
requeue(struct eng *e, struct ereq *reqs, int fresh, int status, const char *detail)
{
	struct rt *r = e->r;
	int retry = 1;

	for (struct ereq *q = reqs; q; q = q->next)
		if (q->tries > 1)
			retry = 0;
	if (fresh && e->mode == ENG_UNIX && e->fallback) {
		e->fallback = 0;
		e->mode = ENG_EXEC;
		RT_LOG(r, RDHPF_LOG_INFO,
		       "engine socket did not answer; relaying through a command", "socket",
		       e->socket, "command", e->argv[0], "detail", detail);
		for (struct ereq *q = reqs; q; q = q->next)
			q->tries = 0;
		retry = 1;
	}
	while (reqs) {
		struct ereq *q = reqs;
		int rc = RDHPF_ERR_CLOSED;
		reqs = q->next;
		if (q->kind == REQ_DISCARD) {
			free(q);
			continue;
		}
		if (retry) {
			if (e->api == NULL)
				rc = econn_open(e, 0, &e->api);
			else
				rc = RDHPF_OK;
			if (rc == RDHPF_OK)
				rc = econn_send(e->api, q);
			if (rc == RDHPF_OK)
				continue;
			retry = 0;
		}
		if (!req_failed(e, q, status, detail)) {
			free(q);
			reqs_free(reqs);
			return;
		}
		free(q);
	}
}

/* ---- responses ---- */

int
eng_want_ports(struct eng *e, struct rt_item *it)
{
	char path[128];
	struct ereq *q;

	snprintf(path, sizeof path, "/containers/%s/json", it->c.id);
	q = req_new(REQ_INSPECT, path);
	if (q == NULL)
		return RDHPF_ERR_NOMEM;
	q->item = it;
	return api_send(e, q);
}

static void
inspect_done(struct eng *e, struct ereq *q, const char *body, size_t len)
{
	struct rt *r = e->r;
	struct rt_item *it = q->item;
	struct rsdk_cset cs = RSDK_CSET_INIT;
	struct rsdk_cont *c;

	if (rt_inspect(body, len, 1, &cs, &r->diag) != 0) {
		RT_LOG(r, RDHPF_LOG_WARN, "container skipped: malformed inspect data", "container",
		       it->c.id);
		rt_item_fill(r, it, NULL);
		return;
	}
	/* Inspect is the truth on a start: ports, image and labels. */
	if ((c = rsdk_cset_get(&cs, it->c.id)) == NULL) {
		RT_LOG(r, RDHPF_LOG_DEBUG, "container no longer runs; start ignored", "container",
		       it->c.id);
		rt_item_fill(r, it, NULL);
	} else {
		rt_item_fill(r, it, c);
	}
	rsdk_cset_free(&cs);
}

static void
list_done(struct eng *e, const char *body, size_t len)
{
	struct rt *r = e->r;
	rdhpf_list_fn done = e->list_done;
	void *arg = e->list_arg;
	struct rsdk_cset cs = RSDK_CSET_INIT;

	e->list_done = NULL;
	if (done == NULL)
		return;
	if (rt_docker_list(body, len, &cs, &r->diag) != 0) {
		done(arg, RDHPF_ERR_PROTO, "malformed container list", NULL, 0);
		return;
	}
	rt_list_deliver(r, done, arg, &cs);
	rsdk_cset_free(&cs);
}

static int open_events(struct eng *e, int64_t since);

/* A whole response to q arrived on c.  Returns 0 when stop() ran
 * meanwhile (c is gone then). */
static int
response(struct econn *c, struct ereq *q)
{
	struct eng *e = c->e;
	struct rt *r = e->r;
	uint64_t gen = RT_GEN(r);
	int status = c->http.status;
	char why[200], msg[256];

	if (q->kind == REQ_DISCARD)
		return 1;
	if (c->over) {
		snprintf(why, sizeof why, "response body over %u bytes", RT_BODY_MAX);
		RT_LOG(r, RDHPF_LOG_WARN, "engine response dropped", "request", q->path, "detail",
		       why);
		if (q->kind == REQ_INSPECT) {
			rt_item_fill(r, q->item, NULL);
			return rt_q_flush(r);
		}
		return req_failed(e, q, RDHPF_ERR_PROTO, why);
	}
	if (q->kind == REQ_INSPECT && status == 404) {
		RT_LOG(r, RDHPF_LOG_DEBUG, "container gone before its ports were read", "container",
		       q->item->c.id);
		rt_item_fill(r, q->item, NULL);
		return rt_q_flush(r);
	}
	if (status != 200) {
		rt_api_error(rsdk_buf_str(&c->body), rsdk_buf_size(&c->body), why, sizeof why);
		snprintf(msg, sizeof msg, "HTTP %d%s%s", status, why[0] ? ": " : "", why);
		return req_failed(e, q, RDHPF_ERR_REMOTE, msg);
	}
	switch (q->kind) {
	case REQ_PING:
		if (open_events(e, c->http.date) != RDHPF_OK)
			return RT_GEN(r) == gen;
		break;
	case REQ_LIST:
		list_done(e, rsdk_buf_str(&c->body), rsdk_buf_size(&c->body));
		break;
	case REQ_INSPECT:
		inspect_done(e, q, rsdk_buf_str(&c->body), rsdk_buf_size(&c->body));
		return rt_q_flush(r);
	case REQ_EVENTS:
		/* The engine ended the event stream (shutting down). */
		rt_end(r, RDHPF_ERR_CLOSED, "event stream ended by the engine");
		break;
	default:
		break;
	}
	return RT_GEN(r) == gen;
}

/* ---- the event stream ---- */

static int
ev_line(void *arg, const char *line, size_t len)
{
	struct econn *c = arg;
	struct eng *e = c->e;
	struct rt *r = e->r;
	struct rt_event ev;

	if (len == 0)
		return 0;
	if (e->parse_event(line, len, &ev, &r->diag) != 0)
		return 0;
	return rt_event_take(r, &ev);
}

static int
ev_body(void *arg, const char *buf, size_t len)
{
	struct econn *c = arg;

	return rt_lines_feed(c->e->r, &c->lines, buf, len, ev_line, c);
}

static int
collect_body(void *arg, const char *buf, size_t len)
{
	struct econn *c = arg;

	if (c->over)
		return 0;
	if (len > RT_BODY_MAX - rsdk_buf_size(&c->body) ||
	    rsdk_buf_append(&c->body, buf, len) != RDHPF_OK) {
		c->over = 1;
		rsdk_buf_free(&c->body);
	}
	return 0;
}

static int
open_events(struct eng *e, int64_t since)
{
	struct rt *r = e->r;
	uint64_t gen = RT_GEN(r);
	char path[512];
	struct ereq *q;
	int rc;

	if (r->wcbs == NULL)
		return RDHPF_OK; /* nobody watches */
	/* since= stays although the 200 now says "established": dockerd
	 * (moby, api/server/router/system getEvents) flushes the response
	 * head before it subscribes, so an event in between would be lost;
	 * since= makes the engine replay it from its event buffer.  The
	 * engine's own clock, read by the ping, avoids trusting ours. */
	if (since > 0)
		snprintf(path, sizeof path, "/events?since=%lld&filters=%s", (long long)since,
		         e->filters);
	else
		snprintf(path, sizeof path, "/events?filters=%s", e->filters);
	q = req_new(REQ_EVENTS, path);
	if (q == NULL) {
		rt_end(r, RDHPF_ERR_NOMEM, "out of memory");
		return RT_GEN(r) == gen ? RDHPF_ERR_NOMEM : RDHPF_ERR_CANCELLED;
	}
	rc = econn_open(e, 1, &e->ev);
	if (rc == RDHPF_OK)
		rc = econn_send(e->ev, q);
	if (rc != RDHPF_OK) {
		free(q);
		rt_end(r, rc, "cannot open the event stream");
		return rc;
	}
	return RDHPF_OK;
}

/* ---- stream callbacks ---- */

static void
econn_data(void *arg, const char *buf, size_t len)
{
	struct econn *c = arg;
	struct eng *e = c->e;
	struct rt *r = e->r;
	uint64_t gen = RT_GEN(r);

	rt_enter(r);
	if (!c->got_bytes) {
		c->got_bytes = 1;
		if (e->mode == ENG_UNIX)
			e->fallback = 0; /* the socket works */
	}
	for (;;) {
		size_t used = 0;
		const char *why = NULL;
		int rc = rt_http_feed(&c->http, buf, len, &used,
		                      c->streaming ? ev_body : collect_body, c, &why);
		buf += used;
		len -= used;
		if (rc == RT_HTTP_STOP || RT_GEN(r) != gen || rc == RT_HTTP_MORE)
			break;
		if (rc == RT_HTTP_ERR) {
			econn_fail(c, RDHPF_ERR_PROTO, why);
			break;
		}
		if (rc == RT_HTTP_HEAD) {
			if (c->events && c->http.status == 200) {
				c->streaming = 1;
				/* The engine subscribed us (with since=, from
				 * the ping's clock: see open_events). */
				if (!rt_established(r))
					break;
			}
			continue;
		}
		if (rc == RT_HTTP_DONE) {
			struct ereq *q = c->head;
			int close_after = c->http.conn_close;
			if (q == NULL) {
				econn_fail(c, RDHPF_ERR_PROTO, "response without a request");
				break;
			}
			c->head = q->next;
			if (c->head == NULL)
				c->tail = NULL;
			if (!response(c, q)) {
				free(q);
				break;
			}
			free(q);
			/* c may have been replaced or dropped by the response. */
			if (e->api != c && e->ev != c)
				break;
			rsdk_buf_free(&c->body);
			c->over = 0;
			rt_http_reset(&c->http);
			if (close_after) {
				econn_fail(c, RDHPF_ERR_CLOSED, "engine closed the connection");
				break;
			}
		}
	}
	rt_leave(r);
}

static void
econn_closed(void *arg, int status, int exit_code, const char *detail)
{
	struct econn *c = arg;
	struct rt *r = c->e->r;
	char msg[400];

	rt_enter(r);
	c->s = NULL; /* the core freed it */
	if (rt_http_eof(&c->http) == RT_HTTP_DONE && c->head != NULL) {
		/* A body that ran to the end of the connection. */
		struct ereq *q = c->head;
		c->head = q->next;
		if (c->head == NULL)
			c->tail = NULL;
		int alive = response(c, q);
		free(q);
		if (!alive || (c->e->api != c && c->e->ev != c)) {
			rt_leave(r);
			return;
		}
	}
	if (exit_code > 0)
		snprintf(msg, sizeof msg, "connection to the engine closed (exit %d)%s%s",
		         exit_code, detail ? ": " : "", detail ? detail : "");
	else
		snprintf(msg, sizeof msg, "connection to the engine closed%s%s", detail ? ": " : "",
		         detail ? detail : "");
	rt_detail_trim(msg);
	econn_fail(c, status == RDHPF_OK ? RDHPF_ERR_CLOSED : status, msg);
	rt_leave(r);
}

/* c is broken (or closed): drop it, then deal with what it owed. */
static void
econn_fail(struct econn *c, int status, const char *detail)
{
	struct eng *e = c->e;
	struct rt *r = e->r;
	struct ereq *reqs = c->head;
	int fresh = !c->got_bytes;
	int events = c->events;

	c->head = c->tail = NULL;
	econn_free(c);
	if (events) {
		reqs_free(reqs);
		RT_LOG(r, RDHPF_LOG_DEBUG, "event stream ended", "detail", detail);
		rt_end(r, status, detail);
		return;
	}
	if (reqs == NULL)
		return; /* an idle connection: the next request opens another */
	RT_LOG(r, RDHPF_LOG_DEBUG, "engine connection lost with requests outstanding", "detail",
	       detail);
	requeue(e, reqs, fresh, status, detail);
}

/* ---- ops ---- */

struct eng *
eng_new(struct rt *r, const struct eng_opts *o)
{
	struct eng *e = calloc(1, sizeof *e);
	size_t n = 0;

	if (e == NULL)
		return NULL;
	e->r = r;
	e->mode = o->mode == ENG_EXEC ? ENG_EXEC : ENG_UNIX;
	e->fallback = o->mode == ENG_AUTO;
	e->parse_event = o->parse_event;
	e->socket = rsdk_strdup(o->socket);
	e->filters = rsdk_strdup(o->events_filters);
	while (o->exec_argv[n])
		n++;
	e->argv = calloc(n + 1, sizeof *e->argv);
	if (e->socket == NULL || e->filters == NULL || e->argv == NULL) {
		eng_free(e);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		e->argv[i] = rsdk_strdup(o->exec_argv[i]);
		if (e->argv[i] == NULL) {
			eng_free(e);
			return NULL;
		}
	}
	return e;
}

void
eng_stop(struct eng *e)
{
	if (e->ev)
		econn_free(e->ev);
	if (e->api)
		econn_free(e->api);
	e->list_done = NULL;
	e->list_arg = NULL;
}

void
eng_unwatch(struct eng *e)
{
	if (e->ev)
		econn_free(e->ev);
	if (e->api)
		for (struct ereq *q = e->api->head; q; q = q->next)
			if (q->kind == REQ_PING || q->kind == REQ_INSPECT) {
				q->kind = REQ_DISCARD;
				q->item = NULL;
			}
}

void
eng_free(struct eng *e)
{
	if (e == NULL)
		return;
	eng_stop(e);
	if (e->argv)
		for (char **a = e->argv; *a; a++)
			free(*a);
	free(e->argv);
	free(e->socket);
	free(e->filters);
	free(e);
}

int
eng_watch(struct eng *e)
{
	struct ereq *q = req_new(REQ_PING, "/_ping");

	if (q == NULL)
		return RDHPF_ERR_NOMEM;
	return api_send(e, q);
}

int
eng_list(struct eng *e, rdhpf_list_fn done, void *arg)
{
	struct ereq *q;
	int rc;

	if (e->list_done != NULL)
		return RDHPF_ERR_BUSY;
	q = req_new(REQ_LIST, "/containers/json");
	if (q == NULL)
		return RDHPF_ERR_NOMEM;
	rc = api_send(e, q);
	if (rc == RDHPF_OK) {
		e->list_done = done;
		e->list_arg = arg;
	}
	return rc;
}
