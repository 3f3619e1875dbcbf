/* runtime-podman: running containers and their published ports on a remote
 * Podman 4.x / 5.x, and their start/stop events.
 *
 * api = cli (default) drives the podman command, which needs no service:
 *   watch   one long-lived `podman events --format json --filter
 *           type=container --since 5s` (the replay window covers the time
 *           podman takes to start, so nothing that raced the list is missed;
 *           replayed events are harmless: a START is always answered with
 *           the container's current state)
 *   list    `podman ps --format json`, once per (re)sync
 *   start   `podman container inspect ID…`: one remote process per burst of
 *           starts (ids that arrive while one runs are batched into the next)
 * api = unix speaks Podman's Docker-compatible API over the remote socket
 * (podman.socket; the transport must open remote Unix sockets), with no
 * process started per event: see runtime-common/engine.h.
 * Ids reach argv only after validation as hex; no word passes a shell. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rdhpf/plugin.h"
#include "../runtime-common/engine.h"

static const struct rdhpf_host_api *H;

#define PM_REPLAY "5s"
#define PM_BATCH 64

/* {"type":["container"]} */
#define PODMAN_EVENT_FILTERS "%7B%22type%22%3A%5B%22container%22%5D%7D"

struct pm {
	struct rt r;   /* first: rt_destroy frees through it */
	struct eng *e; /* api = unix */
	char *podman;

	struct rdhpf_stream *ev;
	struct rt_lines lines;

	struct rt_collect *list_c;
	rdhpf_list_fn list_done;
	void *list_arg;

	struct rt_collect *insp_c; /* the inspect running */
	struct rt_item **insp;     /* its items */
	size_t n_insp;
	struct rt_item **want; /* starts waiting for the next inspect */
	size_t n_want, cap_want;
	uint64_t insp_started_ms;
};

static void unwatch(struct pm *p);

static void
pm_free(struct rt *r)
{
	struct pm *p = (struct pm *)r;

	eng_free(p->e);
	rt_lines_free(&p->lines);
	free(p->insp);
	free(p->want);
	free(p->podman);
	free(p);
}

static void
p_stop(void *state)
{
	struct pm *p = state;

	p->r.gen++;
	p->r.wcbs = NULL;
	unwatch(p);
	if (p->e)
		eng_stop(p->e);
	rt_collect_cancel(p->list_c);
	p->list_c = NULL;
	p->list_done = NULL;
}

static void
p_destroy(void *state)
{
	struct pm *p = state;

	if (p == NULL)
		return;
	p_stop(p);
	rt_destroy(&p->r);
}

/* ---- inspect ---- */

static int inspect_next(struct pm *p);

static int
detail_says_gone(const char *detail)
{
	return detail != NULL && (strcasestr(detail, "no such container") != NULL ||
	                          strcasestr(detail, "no such object") != NULL);
}

static void
inspect_done(void *arg, int status, int exit_code, const char *detail, const char *out, size_t len)
{
	struct pm *p = arg;
	struct rt *r = &p->r;
	uint64_t gen = r->gen;
	struct rt_cont *cs = NULL;
	size_t n = 0;
	int parsed;
	char msg[300];

	p->insp_c = NULL;
	if (status != RDHPF_OK) {
		snprintf(msg, sizeof msg, "podman inspect: %s", detail ? detail : "stream failed");
		rt_end(r, status, msg);
		return;
	}
	parsed = len > 0 && rt_inspect(out, len, &cs, &n, exit_code == 0 ? &r->diag : NULL) == 0;
	if (!parsed && exit_code != 0 && !detail_says_gone(detail)) {
		/* podman itself failed: the ports are unknown, resync. */
		snprintf(msg, sizeof msg, "podman inspect exited %d%s%s", exit_code,
		         detail ? ": " : "", detail ? detail : "");
		rt_end(r, RDHPF_ERR_REMOTE, msg);
		return;
	}
	if (!parsed && exit_code == 0)
		RT_LOG(r, RDHPF_LOG_WARN, "starts skipped: malformed podman inspect output");
	for (size_t i = 0; i < p->n_insp; i++) {
		struct rt_item *it = p->insp[i];
		size_t k;
		for (k = 0; k < n; k++)
			if (strcmp(cs[k].id, it->c.id) == 0)
				break;
		if (k < n && cs[k].running) {
			rt_item_fill(r, it, &cs[k]);
		} else {
			RT_LOG(r, RDHPF_LOG_DEBUG, "container no longer runs; start ignored",
			       "container", it->c.id);
			rt_item_fill(r, it, NULL);
		}
	}
	p->n_insp = 0;
	rt_conts_free(cs, n);
	if (!rt_q_flush(r) || r->gen != gen)
		return;
	if (p->n_want > 0 && inspect_next(p) != RDHPF_OK)
		rt_end(r, RDHPF_ERR_REMOTE, "cannot run podman inspect");
}

/* Start one inspect for (up to PM_BATCH of) the starts waiting. */
static int
inspect_next(struct pm *p)
{
	size_t n = p->n_want < PM_BATCH ? p->n_want : PM_BATCH;
	const char *argv[PM_BATCH + 5];
	int rc;

	if (p->insp_c != NULL || n == 0)
		return RDHPF_OK;
	argv[0] = p->podman;
	argv[1] = "container";
	argv[2] = "inspect";
	for (size_t i = 0; i < n; i++)
		argv[3 + i] = p->want[i]->c.id; /* validated hex */
	argv[3 + n] = NULL;
	rc = rt_collect_start(&p->r, argv, inspect_done, p, &p->insp_c);
	if (rc != RDHPF_OK)
		return rc;
	p->insp = realloc(p->insp, n * sizeof *p->insp);
	if (p->insp == NULL) {
		rt_collect_cancel(p->insp_c);
		p->insp_c = NULL;
		return RDHPF_ERR_NOMEM;
	}
	memcpy(p->insp, p->want, n * sizeof *p->insp);
	p->n_insp = n;
	memmove(p->want, p->want + n, (p->n_want - n) * sizeof *p->want);
	p->n_want -= n;
	return RDHPF_OK;
}

static int
want_inspect(struct pm *p, struct rt_item *it)
{
	if (p->n_want == p->cap_want) {
		size_t cap = p->cap_want ? p->cap_want * 2 : 16;
		struct rt_item **v = realloc(p->want, cap * sizeof *v);
		if (v == NULL)
			return RDHPF_ERR_NOMEM;
		p->want = v;
		p->cap_want = cap;
	}
	p->want[p->n_want++] = it;
	return inspect_next(p);
}

/* ---- events ---- */

static int
ev_line(void *arg, const char *line, size_t len)
{
	struct pm *p = arg;
	struct rt *r = &p->r;
	uint64_t gen = r->gen;
	struct rt_event ev;
	struct rt_item *it;
	char mb[24];

	if (line == NULL) {
		snprintf(mb, sizeof mb, "%zu", len);
		RT_LOG(r, RDHPF_LOG_WARN, "oversized event line dropped; listing again",
		       "max_bytes", mb);
		/* The line may have been a start or a stop: the list tells. */
		rt_resync(r, "oversized event line dropped");
		return r->gen != gen;
	}
	if (rt_podman_event(line, len, &ev, &r->diag) != 0)
		return 0;
	if (ev.kind == RT_EV_IGNORE) {
		RT_LOG(r, RDHPF_LOG_TRACE, "event ignored", "action", ev.action, "container",
		       ev.id[0] ? ev.id : NULL);
		return 0;
	}
	if (!rt_q_room(r))
		return r->gen != gen;
	it = rt_q_push(r, ev.kind == RT_EV_START ? RDHPF_EV_START : RDHPF_EV_STOP, &ev);
	if (it == NULL) {
		rt_end(r, RDHPF_ERR_NOMEM, "out of memory");
		return r->gen != gen;
	}
	if (ev.kind == RT_EV_START) {
		int rc = want_inspect(p, it);
		if (rc != RDHPF_OK) {
			rt_end(r, rc, "cannot run podman inspect");
			return r->gen != gen;
		}
		return 0;
	}
	return !rt_q_flush(r);
}

static void
ev_data(void *arg, const char *buf, size_t len)
{
	struct pm *p = arg;
	struct rt *r = &p->r;
	uint64_t gen = r->gen;
	int rc;

	rt_enter(r);
	rc = rt_lines_feed(&p->lines, buf, len, ev_line, p);
	if (rc < 0 && r->gen == gen)
		RT_LOG(r, RDHPF_LOG_WARN, "event line dropped: out of memory");
	rt_leave(r);
}

static void
ev_close(void *arg, int status, int exit_code, const char *detail)
{
	struct pm *p = arg;
	struct rt *r = &p->r;
	char msg[400];

	rt_enter(r);
	p->ev = NULL; /* the core freed it */
	snprintf(msg, sizeof msg, "podman events exited (%d)%s%s", exit_code, detail ? ": " : "",
	         detail ? detail : "");
	size_t l = strlen(msg);
	while (l > 0 && (msg[l - 1] == '\n' || msg[l - 1] == '\r'))
		msg[--l] = '\0';
	rt_end(r, status == RDHPF_OK ? RDHPF_ERR_CLOSED : status, msg);
	rt_leave(r);
}

static const struct rdhpf_stream_cbs ev_cbs = {
    .on_data = ev_data,
    .on_close = ev_close,
};

static void
unwatch(struct pm *p)
{
	if (p->e)
		eng_unwatch(p->e);
	if (p->ev) {
		H->stream_close(p->ev);
		p->ev = NULL;
	}
	rt_lines_free(&p->lines);
	rt_collect_cancel(p->insp_c);
	p->insp_c = NULL;
	p->n_insp = 0;
	p->n_want = 0;
	rt_q_clear(&p->r);
}

static int
p_watch(void *state, const struct rdhpf_watch_cbs *cbs, void *arg)
{
	struct pm *p = state;
	const char *argv[] = {p->podman,        "events",  "--format", "json", "--filter",
	                      "type=container", "--since", PM_REPLAY,  NULL};
	int rc;

	if (p->r.wcbs != NULL)
		return RDHPF_ERR_BUSY;
	/* What is left of a watch that ended: its stream, its queue. */
	unwatch(p);
	p->r.wcbs = cbs;
	p->r.warg = arg;
	if (p->e) {
		rc = eng_watch(p->e);
	} else {
		rc = H->stream_exec(p->r.ctx, argv, &ev_cbs, p, &p->ev);
		if (rc != RDHPF_OK)
			p->ev = NULL;
	}
	if (rc != RDHPF_OK)
		p->r.wcbs = NULL;
	return rc;
}

/* ---- list ---- */

static void
list_done(void *arg, int status, int exit_code, const char *detail, const char *out, size_t len)
{
	struct pm *p = arg;
	struct rt *r = &p->r;
	rdhpf_list_fn done = p->list_done;
	void *darg = p->list_arg;
	struct rt_cont *cs = NULL;
	size_t n = 0;
	char msg[300];

	p->list_c = NULL;
	p->list_done = NULL;
	if (done == NULL)
		return;
	if (status != RDHPF_OK || exit_code != 0) {
		snprintf(msg, sizeof msg, "podman ps exited %d%s%s", exit_code, detail ? ": " : "",
		         detail ? detail : "");
		done(darg, status != RDHPF_OK ? status : RDHPF_ERR_REMOTE, msg, NULL, 0);
		return;
	}
	if (rt_podman_ps(out, len, &cs, &n, &r->diag) != 0) {
		done(darg, RDHPF_ERR_PROTO, "malformed podman ps output", NULL, 0);
		return;
	}
	rt_list_deliver(r, done, darg, cs, n);
	rt_conts_free(cs, n);
}

static int
p_list(void *state, rdhpf_list_fn done, void *arg)
{
	struct pm *p = state;
	const char *argv[] = {p->podman, "ps", "--format", "json", NULL};
	int rc;

	if (p->e)
		return eng_list(p->e, done, arg);
	if (p->list_done != NULL)
		return RDHPF_ERR_BUSY;
	rc = rt_collect_start(&p->r, argv, list_done, p, &p->list_c);
	if (rc != RDHPF_OK)
		return rc;
	p->list_done = done;
	p->list_arg = arg;
	return RDHPF_OK;
}

/* ---- instance ---- */

static int
p_create(struct rdhpf_ctx *ctx, const struct rdhpf_host_params *hp, void **state, char *err,
         size_t errlen)
{
	const char *api = "cli", *socket = "/run/podman/podman.sock", *podman = "podman";
	struct pm *p;

	for (size_t i = 0; i < hp->n_options; i++) {
		const char *k = hp->options[i].key, *v = hp->options[i].value;
		if (strcmp(k, "api") == 0)
			api = v;
		else if (strcmp(k, "socket") == 0)
			socket = v;
		else if (strcmp(k, "podman") == 0)
			podman = v;
	}
	if (strcmp(api, "cli") != 0 && strcmp(api, "unix") != 0) {
		snprintf(err, errlen, "api: '%s' is not cli or unix", api);
		return RDHPF_ERR_INVAL;
	}
	if (socket[0] != '/' || strlen(socket) > 107) {
		snprintf(err, errlen, "socket: '%s' is not an absolute path of at most 107 bytes",
		         socket);
		return RDHPF_ERR_INVAL;
	}
	if (podman[0] == '\0') {
		snprintf(err, errlen, "podman: empty command");
		return RDHPF_ERR_INVAL;
	}
	p = calloc(1, sizeof *p);
	if (p == NULL)
		return RDHPF_ERR_NOMEM;
	rt_base_init(&p->r, H, ctx, pm_free);
	rt_lines_init(&p->lines, RT_LINE_MAX);
	p->podman = strdup(podman);
	if (p->podman == NULL) {
		free(p);
		return RDHPF_ERR_NOMEM;
	}
	if (strcmp(api, "unix") == 0) {
		const char *argv[] = {podman, NULL}; /* never run: no fallback in unix mode */
		struct eng_opts o = {
		    .mode = ENG_UNIX,
		    .socket = socket,
		    .exec_argv = argv,
		    .events_filters = PODMAN_EVENT_FILTERS,
		    .parse_event = rt_docker_event, /* the compat API speaks Docker's events */
		};
		p->e = eng_new(&p->r, &o);
		if (p->e == NULL) {
			free(p->podman);
			free(p);
			return RDHPF_ERR_NOMEM;
		}
	}
	*state = p;
	return RDHPF_OK;
}

static const struct rdhpf_runtime_ops ops = {
    .create = p_create,
    .destroy = p_destroy,
    .watch = p_watch,
    .list = p_list,
    .stop = p_stop,
};

static const struct rdhpf_option_desc options[] = {
    {"api", "cli (default): run the podman command; unix: Podman's Docker-compatible API "
            "on the remote socket (needs podman.socket and a transport that opens remote "
            "sockets)"},
    {"socket", "the Podman API socket on the remote, for api = unix (default "
               "/run/podman/podman.sock)"},
    {"podman", "the podman command on the remote (default podman)"},
    {NULL, NULL},
};

static const struct rdhpf_plugin_info info = {
    .abi_major = RDHPF_ABI_MAJOR,
    .abi_minor = RDHPF_ABI_MINOR,
    .struct_size = sizeof(struct rdhpf_plugin_info),
    .kind = RDHPF_KIND_RUNTIME,
    .name = "podman",
    .version = "1.0.0",
    .description = "Podman 4.x/5.x: containers, published ports and events",
    .caps = RDHPF_RCAP_EVENTS,
    .options = options,
    .ops.runtime = &ops,
};

RDHPF_PLUGIN_DECLARE
{
	H = host;
	return &info;
}
