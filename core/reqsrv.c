/* One request, one answer, on the loop (see reqsrv.h). */
#include "reqsrv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "core.h"
#include "log.h"
#include "util.h"

union stream {
	uv_handle_t h;
	uv_stream_t s;
	uv_tcp_t tcp;
	uv_pipe_t pipe;
};

struct conn {
	union stream u;
	uv_timer_t deadline;
	struct reqsrv *srv;
	struct conn *prev, *next; /* the server's list, oldest first */
	char *buf;
	size_t len;
	uv_write_t wr;
	char *reply;
	int answering; /* the request is in: writing the answer */
	int closing;
	int open_handles;
	/* a stream (reqsrv_stream_fn took the request) */
	int streaming;
	int stream_ending; /* its last line is queued: close once written */
	void (*on_close)(void *arg);
	void *close_arg;
};

/* A cut-off stream client that does not even take its last line. */
#define STREAM_LINGER_MS 1000

struct stream_write {
	uv_write_t req;
	struct conn *k;
	char data[];
};

struct reqsrv {
	union stream u;
	int is_pipe;
	struct reqsrv_opts o;
	struct conn *head, *tail;
	size_t n;
};

static void
dropped(struct reqsrv *s, const char *why)
{
	metrics_counter_add(NULL, s->o.what, "connections_dropped_total", 1);
	log_kv(RDHPF_LOG_DEBUG, NULL, NULL, "connection dropped", "server", s->o.what, "why", why,
	       NULL);
}

static void
conn_handle_closed(uv_handle_t *h)
{
	struct conn *k = h->data;

	if (--k->open_handles > 0)
		return;
	free(k->buf);
	free(k->reply);
	free(k);
}

static void
conn_close(struct conn *k)
{
	struct reqsrv *s = k->srv;

	if (k->closing)
		return;
	k->closing = 1;
	if (k->on_close != NULL) {
		void (*fn)(void *) = k->on_close;
		k->on_close = NULL;
		fn(k->close_arg);
	}
	if (k->prev != NULL)
		k->prev->next = k->next;
	else
		s->head = k->next;
	if (k->next != NULL)
		k->next->prev = k->prev;
	else
		s->tail = k->prev;
	s->n--;
	k->srv = NULL;
	uv_close(&k->u.h, conn_handle_closed);
	uv_close((uv_handle_t *)&k->deadline, conn_handle_closed);
}

static void
conn_deadline(uv_timer_t *t)
{
	struct conn *k = t->data;

	dropped(k->srv, k->streaming ? "stream client took not even its last line" : "deadline");
	conn_close(k);
}

static void
conn_written(uv_write_t *w, int status)
{
	(void)status;
	conn_close(w->data);
}

static void
conn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct conn *k = h->data;

	(void)hint;
	b->base = k->buf + k->len;
	b->len = k->srv->o.max_request - k->len;
}

static void
conn_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct conn *k = st->data;
	uv_buf_t out;

	(void)b;
	if (n < 0) {
		conn_close(k);
		return;
	}
	if (k->streaming) {
		k->len = 0; /* reading only tells us when the client goes away */
		return;
	}
	k->len += (size_t)n;
	k->buf[k->len] = '\0';
	if (k->srv->o.stream != NULL) {
		int r = k->srv->o.stream(k->buf, k->len, (struct reqsrv_stream *)k, k->srv->o.arg);
		if (r == 1) {
			if (!k->closing) {
				k->streaming = 1;
				k->answering = 1; /* never evicted for an idle one */
				if (!k->stream_ending)
					uv_timer_stop(&k->deadline); /* else: its linger */
			}
			k->len = 0;
			return;
		}
	}
	k->reply = k->srv->o.answer(k->buf, k->len, k->srv->o.arg);
	if (k->reply == NULL) {
		if (k->len == k->srv->o.max_request) {
			dropped(k->srv, "request too long");
			conn_close(k);
		}
		return;
	}
	uv_read_stop(st);
	k->answering = 1;
	out = uv_buf_init(k->reply, (unsigned)strlen(k->reply));
	k->wr.data = k;
	if (uv_write(&k->wr, st, &out, 1, conn_written) != 0)
		conn_close(k);
}

/* ---- streams ---- */

static void
stream_written(uv_write_t *w, int status)
{
	struct stream_write *sw = w->data;
	struct conn *k = sw->k;

	free(sw);
	if (status == UV_ECANCELED)
		return; /* closing already */
	if (status < 0 || (k->stream_ending && uv_stream_get_write_queue_size(&k->u.s) == 0))
		conn_close(k);
}

static int
stream_queue(struct conn *k, const char *line, size_t len)
{
	struct stream_write *sw = xmalloc(sizeof *sw + len + 1);
	uv_buf_t b;

	memcpy(sw->data, line, len);
	sw->data[len] = '\n';
	sw->k = k;
	sw->req.data = sw;
	b = uv_buf_init(sw->data, (unsigned)(len + 1));
	if (uv_write(&sw->req, &k->u.s, &b, 1, stream_written) != 0) {
		free(sw);
		return -1;
	}
	return 0;
}

void
reqsrv_stream_close(struct reqsrv_stream *rs, const char *reason)
{
	struct conn *k = (struct conn *)rs;

	if (k->closing || k->stream_ending)
		return;
	k->stream_ending = 1;
	if (reason != NULL) {
		json_t *o = json_pack("{s:s, s:s}", "type", "closed", "reason", reason);
		char *txt = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
		int r = txt != NULL ? stream_queue(k, txt, strlen(txt)) : -1;
		free(txt);
		json_decref(o);
		if (r != 0) {
			conn_close(k);
			return;
		}
	}
	if (uv_stream_get_write_queue_size(&k->u.s) == 0) {
		conn_close(k);
		return;
	}
	uv_timer_start(&k->deadline, conn_deadline, STREAM_LINGER_MS, 0);
}

void
reqsrv_stream_send(struct reqsrv_stream *rs, const char *line, size_t len)
{
	struct conn *k = (struct conn *)rs;
	size_t queued;
	char why[160];

	if (k->closing || k->stream_ending)
		return;
	queued = uv_stream_get_write_queue_size(&k->u.s);
	if (queued + len + 1 > k->srv->o.stream_queue_max) {
		snprintf(why, sizeof why, "client too slow: %zu bytes unread (limit %zu); cut off",
		         queued, k->srv->o.stream_queue_max);
		log_kv(RDHPF_LOG_WARN, NULL, NULL, "control stream client cut off", "server",
		       k->srv->o.what, "reason", why, NULL);
		metrics_counter_add(NULL, k->srv->o.what, "stream_clients_cut_total", 1);
		reqsrv_stream_close(rs, why);
		return;
	}
	if (stream_queue(k, line, len) != 0)
		conn_close(k);
}

void
reqsrv_stream_on_close(struct reqsrv_stream *rs, void (*fn)(void *arg), void *arg)
{
	struct conn *k = (struct conn *)rs;

	k->on_close = fn;
	k->close_arg = arg;
}

/* At the cap: the oldest connection still waiting for its request makes
 * room.  One whose answer is being written is left to finish. */
static int
evict_one(struct reqsrv *s)
{
	for (struct conn *k = s->head; k != NULL; k = k->next) {
		if (!k->answering) {
			dropped(s, "connection cap reached; oldest idle one closed");
			conn_close(k);
			return 0;
		}
	}
	return -1;
}

static void
on_connection(uv_stream_t *server, int status)
{
	struct reqsrv *s = server->data;
	struct conn *k;
	int full;

	if (status < 0)
		return;
	full = s->n >= s->o.max_conns && evict_one(s) != 0;
	k = xcalloc(1, sizeof *k);
	k->buf = xmalloc(s->o.max_request + 1);
	k->srv = s;
	k->open_handles = 2;
	if (s->is_pipe)
		uv_pipe_init(core_loop(), &k->u.pipe, 0);
	else
		uv_tcp_init(core_loop(), &k->u.tcp);
	k->u.h.data = k;
	uv_timer_init(core_loop(), &k->deadline);
	k->deadline.data = k;
	k->prev = s->tail;
	if (s->tail != NULL)
		s->tail->next = k;
	else
		s->head = k;
	s->tail = k;
	s->n++;
	/* Accepted even when full, to be closed: left in the backlog, it would
	 * stop the server from accepting anything else. */
	if (uv_accept(server, &k->u.s) != 0 || full) {
		if (full)
			dropped(s, "connection cap reached; every connection is answering");
		conn_close(k);
		return;
	}
	uv_timer_start(&k->deadline, conn_deadline, s->o.deadline_ms, 0);
	if (uv_read_start(&k->u.s, conn_alloc, conn_read) != 0)
		conn_close(k);
}

static void
server_closed(uv_handle_t *h)
{
	free(h->data);
}

static struct reqsrv *
srv_new(int is_pipe, const struct reqsrv_opts *o)
{
	struct reqsrv *s = xcalloc(1, sizeof *s);

	s->is_pipe = is_pipe;
	s->o = *o;
	if (is_pipe)
		uv_pipe_init(core_loop(), &s->u.pipe, 0);
	else
		uv_tcp_init(core_loop(), &s->u.tcp);
	s->u.h.data = s;
	return s;
}

static struct reqsrv *
srv_listen(struct reqsrv *s, int r, const char *where, char *err, size_t errlen)
{
	if (r == 0)
		r = uv_listen(&s->u.s, 64, on_connection);
	if (r != 0) {
		snprintf(err, errlen, "%s %s: %s", s->o.what, where, uv_strerror(r));
		uv_close(&s->u.h, server_closed);
		return NULL;
	}
	return s;
}

struct reqsrv *
reqsrv_pipe(const char *path, int mode, const struct reqsrv_opts *o, char *err, size_t errlen)
{
	struct reqsrv *s = srv_new(1, o);
	int r = uv_pipe_bind(&s->u.pipe, path);

	if (r == 0 && chmod(path, (mode_t)mode) != 0)
		r = uv_translate_sys_error(errno);
	return srv_listen(s, r, path, err, errlen);
}

struct reqsrv *
reqsrv_tcp(const struct sockaddr *sa, const struct reqsrv_opts *o, char *err, size_t errlen)
{
	struct reqsrv *s = srv_new(0, o);
	char where[64] = "";

	if (sa->sa_family == AF_INET6)
		uv_ip6_name((const struct sockaddr_in6 *)sa, where, sizeof where);
	else
		uv_ip4_name((const struct sockaddr_in *)sa, where, sizeof where);
	return srv_listen(s, uv_tcp_bind(&s->u.tcp, sa, 0), where, err, errlen);
}

void
reqsrv_stop(struct reqsrv *s)
{
	if (s == NULL)
		return;
	while (s->head != NULL)
		conn_close(s->head);
	uv_close(&s->u.h, server_closed);
}
