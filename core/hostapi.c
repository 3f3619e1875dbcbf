/* The host API handed to plugins, on libuv.  Every io, timer and child a
 * plugin registers belongs to its ctx, so that a plugin torn down with
 * handles still open cannot leave callbacks pointing into freed state. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "log.h"
#include "util.h"

enum { HANDLE_IO = 1, HANDLE_TIMER, HANDLE_CHILD, HANDLE_STREAM, HANDLE_CONTAINER };

struct ctx_handle {
	int type;
	struct rdhpf_ctx *ctx;
	struct ctx_handle *prev, *next;
};

struct rdhpf_io {
	struct ctx_handle h;
	uv_poll_t poll;
	int fd;
	rdhpf_io_fn cb;
	void *arg;
};

struct rdhpf_timer {
	struct ctx_handle h;
	uv_timer_t t;
	rdhpf_timer_fn cb;
	void *arg;
};

struct rdhpf_child {
	struct ctx_handle h; /* h.ctx NULL once detached / orphaned */
	uv_process_t proc;
	rdhpf_child_exit_fn cb;
	void *arg;
	struct rdhpf_child *gnext, *gprev; /* every live child, for shutdown */
};

struct rdhpf_stream {
	struct ctx_handle h;
	struct rdhpf_ctx *tctx;
	struct pinst *tpi;
	void *ts;
	struct rdhpf_stream_cbs cbs; /* the runtime's, members it lacks NULL */
	void *arg;
	/* What the transport delivered inside exec/open_unix (or before that
	 * was handed on): kept, and handed to the runtime from a zero timer,
	 * so that no runtime callback runs inside the call that opened it. */
	int opening;
	struct rdhpf_timer *flush;
	char *early;
	size_t early_len;
	int early_closed; /* the transport ended the stream: ts is gone */
	int ec_status, ec_exit;
	char *ec_detail;
	int in_cb;        /* a runtime callback of this stream is running */
	int owner_closed; /* ... and the runtime closed the stream inside it */
};

/* A container a plugin built: the core object, tied to the plugin's ctx
 * until container_free. */
struct core_container {
	struct ctx_handle h;
	struct rdhpf_container c;
};

static uv_loop_t *g_loop;
static struct rdhpf_child *g_children;

uv_loop_t *
core_loop(void)
{
	if (g_loop == NULL)
		g_loop = uv_default_loop();
	return g_loop;
}

void
core_loop_set(uv_loop_t *loop)
{
	g_loop = loop;
}

static void
handle_link(struct rdhpf_ctx *ctx, struct ctx_handle *h, int type)
{
	h->type = type;
	if (ctx == NULL) { /* the core's own (a stream's flush timer) */
		h->ctx = NULL;
		h->prev = h->next = NULL;
		return;
	}
	h->ctx = ctx;
	h->prev = NULL;
	h->next = ctx->handles;
	if (ctx->handles)
		ctx->handles->prev = h;
	ctx->handles = h;
}

static void
handle_unlink(struct ctx_handle *h)
{
	if (h->ctx == NULL)
		return;
	if (h->prev)
		h->prev->next = h->next;
	else
		h->ctx->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	h->ctx = NULL;
	h->prev = h->next = NULL;
}

static const char *
ctx_plugin_name(const struct rdhpf_ctx *ctx)
{
	return ctx && ctx->plugin ? ctx->plugin->info->name : NULL;
}

static const char *
ctx_host_name(const struct rdhpf_ctx *ctx)
{
	return ctx ? ctx->host_name : NULL;
}

/* ---- log, clock ---- */

static void
api_log(struct rdhpf_ctx *ctx, int level, const char *msg, ...)
{
	va_list ap;

	va_start(ap, msg);
	log_vkv(level, ctx_host_name(ctx), ctx_plugin_name(ctx), msg, ap);
	va_end(ap);
}

static uint64_t
api_now_ms(struct rdhpf_ctx *ctx)
{
	(void)ctx;
	return uv_hrtime() / 1000000u;
}

static int64_t
api_wall_ns(struct rdhpf_ctx *ctx)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- io ---- */

static void
free_on_close(uv_handle_t *h)
{
	free(h->data);
}

static void
io_cb(uv_poll_t *p, int status, int events)
{
	struct rdhpf_io *io = p->data;
	unsigned rev = 0;

	if (events & UV_READABLE)
		rev |= RDHPF_IO_READ;
	if (events & UV_WRITABLE)
		rev |= RDHPF_IO_WRITE;
	if (status < 0 || (events & UV_DISCONNECT))
		rev |= RDHPF_IO_ERROR | RDHPF_IO_READ;
	io->cb(io->arg, io->fd, rev);
}

static int
uv_events(unsigned ev)
{
	int e = 0;

	if (ev & RDHPF_IO_READ)
		e |= UV_READABLE;
	if (ev & RDHPF_IO_WRITE)
		e |= UV_WRITABLE;
	return e;
}

static struct rdhpf_io *
api_io_start(struct rdhpf_ctx *ctx, int fd, unsigned events, rdhpf_io_fn cb, void *arg)
{
	struct rdhpf_io *io = xcalloc(1, sizeof *io);
	int r;

	io->fd = fd;
	io->cb = cb;
	io->arg = arg;
	r = uv_poll_init(core_loop(), &io->poll, fd);
	if (r != 0) {
		log_kv(RDHPF_LOG_ERROR, ctx_host_name(ctx), ctx_plugin_name(ctx), "cannot watch fd",
		       "err", uv_strerror(r), NULL);
		free(io);
		return NULL;
	}
	io->poll.data = io;
	handle_link(ctx, &io->h, HANDLE_IO);
	if (events)
		uv_poll_start(&io->poll, uv_events(events), io_cb);
	return io;
}

static int
api_io_update(struct rdhpf_io *io, unsigned events)
{
	if (events == 0)
		return uv_poll_stop(&io->poll) == 0 ? RDHPF_OK : RDHPF_ERR_IO;
	return uv_poll_start(&io->poll, uv_events(events), io_cb) == 0 ? RDHPF_OK : RDHPF_ERR_IO;
}

static void
api_io_stop(struct rdhpf_io *io)
{
	if (io == NULL)
		return;
	handle_unlink(&io->h);
	uv_poll_stop(&io->poll);
	uv_close((uv_handle_t *)&io->poll, free_on_close);
}

/* ---- timers ---- */

static void
timer_cb(uv_timer_t *t)
{
	struct rdhpf_timer *tm = t->data;
	tm->cb(tm->arg);
}

static struct rdhpf_timer *
api_timer_start(struct rdhpf_ctx *ctx, uint64_t after_ms, uint64_t repeat_ms, rdhpf_timer_fn cb,
                void *arg)
{
	struct rdhpf_timer *tm = xcalloc(1, sizeof *tm);

	tm->cb = cb;
	tm->arg = arg;
	uv_timer_init(core_loop(), &tm->t);
	tm->t.data = tm;
	handle_link(ctx, &tm->h, HANDLE_TIMER);
	uv_timer_start(&tm->t, timer_cb, after_ms, repeat_ms);
	return tm;
}

static void
api_timer_stop(struct rdhpf_timer *tm)
{
	if (tm == NULL)
		return;
	handle_unlink(&tm->h);
	uv_timer_stop(&tm->t);
	uv_close((uv_handle_t *)&tm->t, free_on_close);
}

/* ---- children ---- */

static void
child_gunlink(struct rdhpf_child *c)
{
	if (c->gprev)
		c->gprev->gnext = c->gnext;
	else if (g_children == c)
		g_children = c->gnext;
	if (c->gnext)
		c->gnext->gprev = c->gprev;
	c->gnext = c->gprev = NULL;
}

static void
child_exit_cb(uv_process_t *p, int64_t exit_status, int term_signal)
{
	struct rdhpf_child *c = p->data;
	rdhpf_child_exit_fn cb = c->cb;
	void *arg = c->arg;

	child_gunlink(c);
	handle_unlink(&c->h);
	c->cb = NULL;
	uv_close((uv_handle_t *)&c->proc, free_on_close);
	if (cb)
		cb(arg, term_signal ? -1 : (int)exit_status, term_signal);
}

static int
make_pipe(int *parent, int *child, int parent_reads)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) != 0)
		return -1;
	*parent = parent_reads ? p[0] : p[1];
	*child = parent_reads ? p[1] : p[0];
	fcntl(*parent, F_SETFL, fcntl(*parent, F_GETFL) | O_NONBLOCK);
	return 0;
}

/* Copy the members inside the writer's struct_size; the rest are NULL.
 * -1 when it is too small to hold even argv. */
static int
spawn_opts_copy(struct rdhpf_spawn_opts *dst, const struct rdhpf_spawn_opts *src)
{
	memset(dst, 0, sizeof *dst);
	dst->struct_size = sizeof *dst;
	if (src == NULL || !RDHPF_HAS(src, argv))
		return -1;
	dst->argv = src->argv;
	if (RDHPF_HAS(src, stdin_fd))
		dst->stdin_fd = src->stdin_fd;
	if (RDHPF_HAS(src, stdout_fd))
		dst->stdout_fd = src->stdout_fd;
	if (RDHPF_HAS(src, stderr_fd))
		dst->stderr_fd = src->stderr_fd;
	return 0;
}

static struct rdhpf_child *
api_spawn(struct rdhpf_ctx *ctx, const struct rdhpf_spawn_opts *uo, rdhpf_child_exit_fn cb,
          void *arg, char *err, size_t errlen)
{
	struct rdhpf_child *c;
	uv_process_options_t po;
	uv_stdio_container_t stdio[3];
	struct rdhpf_spawn_opts o;
	int *want[3];
	int parent[3] = {-1, -1, -1}, child[3] = {-1, -1, -1};
	int r;

	if (spawn_opts_copy(&o, uo) != 0) {
		snprintf(err, errlen, "spawn options: bad struct_size %u",
		         uo ? uo->struct_size : 0);
		return NULL;
	}
	want[0] = o.stdin_fd;
	want[1] = o.stdout_fd;
	want[2] = o.stderr_fd;
	if (o.argv == NULL || o.argv[0] == NULL) {
		snprintf(err, errlen, "empty argv");
		return NULL;
	}
	memset(&po, 0, sizeof po);
	for (int i = 0; i < 3; i++) {
		if (want[i] == NULL) {
			stdio[i].flags = UV_IGNORE;
			continue;
		}
		if (make_pipe(&parent[i], &child[i], i != 0) != 0) {
			snprintf(err, errlen, "pipe: %s", strerror(errno));
			goto fail;
		}
		stdio[i].flags = UV_INHERIT_FD;
		stdio[i].data.fd = child[i];
	}
	c = xcalloc(1, sizeof *c);
	po.file = o.argv[0];
	po.args = (char **)(uintptr_t)o.argv;
	po.exit_cb = child_exit_cb;
	po.stdio = stdio;
	po.stdio_count = 3;
	c->proc.data = c;
	r = uv_spawn(core_loop(), &c->proc, &po);
	for (int i = 0; i < 3; i++) {
		if (child[i] >= 0)
			close(child[i]);
		child[i] = -1;
	}
	if (r != 0) {
		snprintf(err, errlen, "cannot start %s: %s", o.argv[0], uv_strerror(r));
		/* uv_spawn failures still need the handle closed. */
		uv_close((uv_handle_t *)&c->proc, free_on_close);
		goto fail;
	}
	c->cb = cb;
	c->arg = arg;
	handle_link(ctx, &c->h, HANDLE_CHILD);
	c->gnext = g_children;
	if (g_children)
		g_children->gprev = c;
	g_children = c;
	for (int i = 0; i < 3; i++)
		if (want[i])
			*want[i] = parent[i];
	return c;
fail:
	for (int i = 0; i < 3; i++) {
		if (parent[i] >= 0)
			close(parent[i]);
		if (child[i] >= 0)
			close(child[i]);
	}
	return NULL;
}

static int
api_child_kill(struct rdhpf_child *c, int sig)
{
	return uv_process_kill(&c->proc, sig) == 0 ? RDHPF_OK : RDHPF_ERR_GENERIC;
}

static int
api_child_pid(struct rdhpf_child *c)
{
	return c->proc.pid;
}

static void
api_child_detach(struct rdhpf_child *c)
{
	handle_unlink(&c->h);
	c->cb = NULL;
}

void
core_kill_children(void)
{
	for (struct rdhpf_child *c = g_children; c; c = c->gnext) {
		c->cb = NULL;
		uv_process_kill(&c->proc, SIGKILL);
	}
}

size_t
core_live_children(void)
{
	size_t n = 0;
	for (struct rdhpf_child *c = g_children; c; c = c->gnext)
		n++;
	return n;
}

/* ---- metrics ---- */

static struct metric *g_metrics;
static size_t g_n_metrics;

static int
streq_null(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static struct metric *
metric_get(const char *host, const char *plugin, const char *name, int type)
{
	for (size_t i = 0; i < g_n_metrics; i++) {
		struct metric *m = &g_metrics[i];
		if (m->type == type && strcmp(m->name, name) == 0 && streq_null(m->host, host) &&
		    streq_null(m->plugin, plugin))
			return m;
	}
	g_metrics = xrealloc(g_metrics, (g_n_metrics + 1) * sizeof *g_metrics);
	struct metric *m = &g_metrics[g_n_metrics++];
	memset(m, 0, sizeof *m);
	m->name = xstrdup(name);
	m->host = host ? xstrdup(host) : NULL;
	m->plugin = plugin ? xstrdup(plugin) : NULL;
	m->type = type;
	return m;
}

void
metrics_counter_add(const char *host, const char *plugin, const char *name, uint64_t d)
{
	metric_get(host, plugin, name, 0)->value += (double)d;
}

void
metrics_gauge_set(const char *host, const char *plugin, const char *name, double v)
{
	metric_get(host, plugin, name, 1)->value = v;
}

void
metrics_observe(const char *host, const char *plugin, const char *name, double v)
{
	struct metric *m = metric_get(host, plugin, name, 2);
	m->sum += v;
	m->count++;
	m->value = v;
}

const struct metric *
metrics_all(size_t *n)
{
	*n = g_n_metrics;
	return g_metrics;
}

void
metrics_free(void)
{
	for (size_t i = 0; i < g_n_metrics; i++) {
		free(g_metrics[i].name);
		free(g_metrics[i].host);
		free(g_metrics[i].plugin);
	}
	free(g_metrics);
	g_metrics = NULL;
	g_n_metrics = 0;
}

static void
api_counter_add(struct rdhpf_ctx *ctx, const char *name, uint64_t d)
{
	metrics_counter_add(ctx_host_name(ctx), ctx_plugin_name(ctx), name, d);
}

static void
api_gauge_set(struct rdhpf_ctx *ctx, const char *name, double v)
{
	metrics_gauge_set(ctx_host_name(ctx), ctx_plugin_name(ctx), name, v);
}

static void
api_observe(struct rdhpf_ctx *ctx, const char *name, double v)
{
	metrics_observe(ctx_host_name(ctx), ctx_plugin_name(ctx), name, v);
}

/* ---- options, report_down ---- */

static int
plugin_declares(const struct plugin *p, const char *key)
{
	if (p == NULL || p->info->options == NULL)
		return 0;
	for (const struct rdhpf_option_desc *const *d = p->info->options; *d; d++)
		if ((*d)->name != NULL && strcmp((*d)->name, key) == 0)
			return 1;
	return 0;
}

static const char *
api_option(struct rdhpf_ctx *ctx, const char *key)
{
	if (ctx == NULL || ctx->cfg == NULL || !plugin_declares(ctx->plugin, key))
		return NULL;
	for (size_t i = 0; i < ctx->cfg->n_opts; i++)
		if (strcmp(ctx->cfg->opts[i].key, key) == 0)
			return ctx->cfg->opts[i].value;
	return NULL;
}

static void
api_report_down(struct rdhpf_ctx *ctx, int status, const char *detail)
{
	if (ctx != NULL && ctx->down_cb != NULL)
		ctx->down_cb(ctx->down_arg, status, detail);
}

/* ---- streams: the runtime's view of the transport ---- */

static void api_timer_stop(struct rdhpf_timer *tm);
static struct rdhpf_timer *api_timer_start(struct rdhpf_ctx *ctx, uint64_t after_ms,
                                           uint64_t repeat_ms, rdhpf_timer_fn cb, void *arg);

static void
stream_free(struct rdhpf_stream *s)
{
	handle_unlink(&s->h);
	api_timer_stop(s->flush);
	free(s->early);
	free(s->ec_detail);
	free(s);
}

/* Run the runtime's on_close once; s is freed after it (the runtime may
 * call stream_close on it inside: that is then a no-op). */
static void
stream_deliver_close(struct rdhpf_stream *s, int status, int exit_code, const char *detail)
{
	handle_unlink(&s->h);
	s->early_closed = 1; /* the transport's stream is gone: never close it again */
	s->in_cb = 1;
	if (s->cbs.on_close)
		s->cbs.on_close(s->arg, status, exit_code, detail);
	stream_free(s);
}

static void
stream_flush_cb(void *arg)
{
	struct rdhpf_stream *s = arg;

	api_timer_stop(s->flush);
	s->flush = NULL;
	if (s->early_len > 0 && s->cbs.on_data) {
		s->in_cb = 1;
		s->cbs.on_data(s->arg, s->early, s->early_len);
		s->in_cb = 0;
		if (s->owner_closed) {
			stream_free(s);
			return;
		}
	}
	free(s->early);
	s->early = NULL;
	s->early_len = 0;
	if (s->early_closed)
		stream_deliver_close(s, s->ec_status, s->ec_exit, s->ec_detail);
}

static void
stream_on_data(void *arg, const char *buf, size_t len)
{
	struct rdhpf_stream *s = arg;

	if (s->opening || s->flush != NULL) {
		s->early = xrealloc(s->early, s->early_len + len + 1);
		memcpy(s->early + s->early_len, buf, len);
		s->early_len += len;
		return;
	}
	if (s->cbs.on_data) {
		s->in_cb = 1;
		s->cbs.on_data(s->arg, buf, len);
		s->in_cb = 0;
		if (s->owner_closed)
			stream_free(s); /* the transport's stream was closed in api_stream_close */
	}
}

static void
stream_on_close(void *arg, int status, int exit_code, const char *detail)
{
	struct rdhpf_stream *s = arg;

	if (s->opening || s->flush != NULL) {
		s->early_closed = 1;
		s->ec_status = status;
		s->ec_exit = exit_code;
		s->ec_detail = detail != NULL ? xstrdup(detail) : NULL;
		return;
	}
	stream_deliver_close(s, status, exit_code, detail);
}

static const struct rdhpf_stream_cbs stream_wrap_cbs = {
    RDHPF_INIT(rdhpf_stream_cbs),
    .on_data = stream_on_data,
    .on_close = stream_on_close,
};

/* Copy the members inside the runtime's struct_size; the rest are NULL. */
static int
stream_cbs_copy(struct rdhpf_stream_cbs *dst, const struct rdhpf_stream_cbs *src)
{
	memset(dst, 0, sizeof *dst);
	dst->struct_size = sizeof *dst;
	if (src == NULL || src->struct_size < sizeof src->struct_size)
		return -1;
	if (RDHPF_HAS(src, on_data))
		dst->on_data = src->on_data;
	if (RDHPF_HAS(src, on_close))
		dst->on_close = src->on_close;
	return 0;
}

static int
stream_open(struct rdhpf_ctx *ctx, const char *const *argv, const char *path,
            const struct rdhpf_stream_cbs *cbs, void *arg, struct rdhpf_stream **out)
{
	struct rdhpf_stream *s;
	int r;

	if (ctx == NULL || ctx->tpi == NULL)
		return RDHPF_ERR_NOTCONN;
	if (path != NULL && !tp_can_open_unix(ctx->tpi))
		return RDHPF_ERR_UNSUPPORTED;
	s = xcalloc(1, sizeof *s);
	if (stream_cbs_copy(&s->cbs, cbs) != 0) {
		free(s);
		return RDHPF_ERR_INVAL;
	}
	s->tctx = ctx->tctx;
	s->tpi = ctx->tpi;
	s->arg = arg;
	s->opening = 1;
	if (path != NULL)
		r = tp_open_unix(ctx->tpi, path, &stream_wrap_cbs, s, &s->ts);
	else
		r = tp_exec(ctx->tpi, argv, &stream_wrap_cbs, s, &s->ts);
	s->opening = 0;
	if (r != RDHPF_OK) {
		/* An error means no callback: whatever came is dropped. */
		stream_free(s);
		return r;
	}
	handle_link(ctx, &s->h, HANDLE_STREAM);
	if (s->early_len > 0 || s->early_closed)
		s->flush = api_timer_start(NULL, 0, 0, stream_flush_cb, s);
	*out = s;
	return RDHPF_OK;
}

static int
api_stream_exec(struct rdhpf_ctx *ctx, const char *const *argv, const struct rdhpf_stream_cbs *cbs,
                void *arg, struct rdhpf_stream **out)
{
	if (argv == NULL || argv[0] == NULL)
		return RDHPF_ERR_INVAL;
	return stream_open(ctx, argv, NULL, cbs, arg, out);
}

static int
api_stream_open_unix(struct rdhpf_ctx *ctx, const char *path, const struct rdhpf_stream_cbs *cbs,
                     void *arg, struct rdhpf_stream **out)
{
	if (path == NULL || *path == '\0')
		return RDHPF_ERR_INVAL;
	return stream_open(ctx, NULL, path, cbs, arg, out);
}

static int
api_stream_write(struct rdhpf_stream *s, const void *buf, size_t len)
{
	return tp_stream_write(s->tpi, s->ts, buf, len);
}

static void
api_stream_close(struct rdhpf_stream *s)
{
	if (s == NULL || s->owner_closed)
		return;
	if (!s->early_closed)
		tp_stream_close(s->tpi, s->ts);
	if (s->in_cb) {
		/* Inside the stream's own callback: freed when it returns. */
		s->owner_closed = 1;
		s->early_closed = 1;
		handle_unlink(&s->h);
		return;
	}
	stream_free(s);
}

static char *
api_shell_join(const char *const *argv)
{
	return shell_join(argv);
}

static void
api_resync(struct rdhpf_ctx *ctx, const char *reason)
{
	if (ctx != NULL && ctx->host != NULL)
		host_relist(ctx->host, reason);
}

/* ---- containers ---- */

static struct rdhpf_container *
api_container_new(struct rdhpf_ctx *ctx, const char *id, const char *name)
{
	struct core_container *cc;
	struct rdhpf_container *c;

	if (ctx == NULL || (c = container_alloc(id, name)) == NULL)
		return NULL;
	cc = calloc(1, sizeof *cc);
	if (cc == NULL) {
		container_destroy(c);
		return NULL;
	}
	cc->c = *c;
	free(c);
	handle_link(ctx, &cc->h, HANDLE_CONTAINER);
	return &cc->c;
}

static struct core_container *
cc_of(struct rdhpf_container *c)
{
	return (struct core_container *)(void *)((char *)c - offsetof(struct core_container, c));
}

static int
api_container_set_image(struct rdhpf_container *c, const char *image)
{
	return container_image_set(c, image);
}

static int
api_container_add_label(struct rdhpf_container *c, const char *key, const char *value)
{
	return container_label_add(c, key, value);
}

static int
api_container_add_port(struct rdhpf_container *c, const struct rdhpf_port *p)
{
	return container_port_add(c, p);
}

static void
api_container_free(struct rdhpf_container *c)
{
	struct core_container *cc;

	if (c == NULL)
		return;
	cc = cc_of(c);
	handle_unlink(&cc->h);
	container_clear(&cc->c);
	free(cc);
}

const struct rdhpf_host_api core_host_api = {
    .abi_major = RDHPF_ABI_MAJOR,
    .abi_minor = RDHPF_ABI_MINOR,
    .struct_size = sizeof(struct rdhpf_host_api),
    .log = api_log,
    .now_ms = api_now_ms,
    .wall_ns = api_wall_ns,
    .io_start = api_io_start,
    .io_update = api_io_update,
    .io_stop = api_io_stop,
    .timer_start = api_timer_start,
    .timer_stop = api_timer_stop,
    .spawn = api_spawn,
    .child_kill = api_child_kill,
    .child_pid = api_child_pid,
    .child_detach = api_child_detach,
    .counter_add = api_counter_add,
    .gauge_set = api_gauge_set,
    .observe = api_observe,
    .option = api_option,
    .report_down = api_report_down,
    .stream_exec = api_stream_exec,
    .stream_open_unix = api_stream_open_unix,
    .stream_write = api_stream_write,
    .stream_close = api_stream_close,
    .shell_join = api_shell_join,
    .resync = api_resync,
    .container_new = api_container_new,
    .container_set_image = api_container_set_image,
    .container_add_label = api_container_add_label,
    .container_add_port = api_container_add_port,
    .container_free = api_container_free,
};

/* ---- ctx ---- */

struct rdhpf_ctx *
ctx_new(struct host *h, const char *host_name, const struct plugin *p, const struct cfg_host *cfg)
{
	struct rdhpf_ctx *ctx = xcalloc(1, sizeof *ctx);

	ctx->host = h;
	ctx->host_name = host_name;
	ctx->plugin = p;
	ctx->cfg = cfg;
	return ctx;
}

/* The symbol a callback points at when the object exports it; else the
 * object and offset (for addr2line), since plugins hide their statics and
 * dladdr would name the nearest exported symbol instead. */
static void
sym_name(const void *fn, char *buf, size_t len)
{
	Dl_info di;

	if (fn == NULL || dladdr(fn, &di) == 0) {
		snprintf(buf, len, "%p", fn);
		return;
	}
	if (di.dli_sname != NULL && di.dli_saddr == fn) {
		snprintf(buf, len, "%s", di.dli_sname);
		return;
	}
	{
		const char *base = di.dli_fname ? strrchr(di.dli_fname, '/') : NULL;
		snprintf(buf, len, "%s+0x%lx",
		         base           ? base + 1
		         : di.dli_fname ? di.dli_fname
		                        : "?",
		         (unsigned long)((uintptr_t)fn - (uintptr_t)di.dli_fbase));
	}
}

static void
handle_describe(const struct ctx_handle *h, char *buf, size_t len)
{
	char sym[128];

	switch (h->type) {
	case HANDLE_IO: {
		const struct rdhpf_io *io = (const struct rdhpf_io *)h;
		sym_name((const void *)(uintptr_t)io->cb, sym, sizeof sym);
		snprintf(buf, len, "io fd %d callback %s", io->fd, sym);
		break;
	}
	case HANDLE_TIMER: {
		const struct rdhpf_timer *t = (const struct rdhpf_timer *)h;
		sym_name((const void *)(uintptr_t)t->cb, sym, sizeof sym);
		snprintf(buf, len, "timer callback %s", sym);
		break;
	}
	case HANDLE_CHILD: {
		const struct rdhpf_child *c = (const struct rdhpf_child *)h;
		sym_name((const void *)(uintptr_t)c->cb, sym, sizeof sym);
		snprintf(buf, len, "child pid %d callback %s", c->proc.pid, sym);
		break;
	}
	case HANDLE_STREAM: {
		const struct rdhpf_stream *st = (const struct rdhpf_stream *)h;
		sym_name((const void *)(uintptr_t)st->cbs.on_data, sym, sizeof sym);
		snprintf(buf, len, "stream on_data %s", sym);
		break;
	}
	case HANDLE_CONTAINER: {
		const struct core_container *cc = (const struct core_container *)h;
		snprintf(buf, len, "container %s", cc->c.id);
		break;
	}
	default:
		snprintf(buf, len, "handle of unknown kind %d", h->type);
	}
}

size_t
ctx_describe_handles(const struct rdhpf_ctx *ctx, char *buf, size_t len)
{
	size_t n = 0, off = 0;

	if (len > 0)
		buf[0] = '\0';
	for (const struct ctx_handle *h = ctx ? ctx->handles : NULL; h; h = h->next, n++) {
		char one[256];
		int w;
		handle_describe(h, one, sizeof one);
		w = snprintf(buf + off, len > off ? len - off : 0, "%s\n", one);
		if (w > 0 && (size_t)w < len - off)
			off += (size_t)w;
		else
			off = len;
	}
	return n;
}

size_t
ctx_free(struct rdhpf_ctx *ctx)
{
	size_t leaked = 0;

	if (ctx == NULL)
		return 0;
	while (ctx->handles) {
		struct ctx_handle *h = ctx->handles;
		char what[256], msg[300];
		handle_describe(h, what, sizeof what);
		/* Named one by one, each its own message so that repeats do
		 * not collapse them: the conformance suite shows these. */
		snprintf(msg, sizeof msg, "leaked %s", what);
		log_kv(RDHPF_LOG_WARN, ctx->host_name, ctx_plugin_name(ctx), msg, NULL);
		leaked++;
		switch (h->type) {
		case HANDLE_IO:
			api_io_stop((struct rdhpf_io *)h);
			break;
		case HANDLE_TIMER:
			api_timer_stop((struct rdhpf_timer *)h);
			break;
		case HANDLE_CHILD: {
			struct rdhpf_child *c = (struct rdhpf_child *)h;
			api_child_detach(c);
			uv_process_kill(&c->proc, SIGKILL);
			break;
		}
		case HANDLE_STREAM:
			/* The transport was torn down first; its streams are gone. */
			stream_free((struct rdhpf_stream *)h);
			break;
		case HANDLE_CONTAINER:
			api_container_free(&((struct core_container *)h)->c);
			break;
		default:
			abort();
		}
	}
	free(ctx);
	return leaked;
}

/* ---- host params ---- */

struct rdhpf_host_params *
host_params_new(const struct cfg_host *h, const struct plugin *p, const char *runtime_dir)
{
	struct rdhpf_host_params *hp = xcalloc(1, sizeof *hp);

	(void)p;
	hp->struct_size = sizeof *hp;
	hp->host_name = h->name;
	hp->url = h->url;
	hp->user = h->u.user[0] ? h->u.user : NULL;
	hp->hostname = h->u.host;
	hp->port = h->u.port;
	hp->identity_file = h->identity_file;
	hp->known_hosts = h->known_hosts;
	hp->bind_address = h->bind_address;
	hp->connect_timeout_ms = h->pol.connect_timeout_ms;
	hp->keepalive_interval_ms = h->pol.keepalive_interval_ms;
	hp->keepalive_count = h->pol.keepalive_count;
	hp->health_interval_ms = h->pol.health_interval_ms;
	hp->poll_interval_ms = h->pol.poll_interval_ms;
	hp->runtime_dir = runtime_dir;
	return hp;
}

void
host_params_free(struct rdhpf_host_params *p)
{
	free(p);
}
