/* runtime-fake: replays a scripted remote for testing the core.
 *
 * script=PATH holds one step a line, at a time since the instance was
 * created:
 *     0      start c1 web 18080:80 127.0.0.1:18081:81 5353:53/udp image:nginx label:k=v
 *     1500ms stop c1
 *     2s     restart-engine          (ends the event stream once)
 *     file:/tmp/x/go start c3 late 19090:90
 * A step timed "file:PATH" comes due once PATH exists: a test orders it
 * after something it has seen (the link down) instead of racing a clock.
 * PATH is absolute and has no blanks (a line splits at blanks).  A time
 * "+Nms" is N ms after the step before came due (a gate: when its file was
 * seen), so a burst can follow a gate with its own spacing.  Steps apply in
 * file order, so later steps wait for a gate too, and a step written after
 * a later-timed one waits for that one: write steps in time order.
 * The simulated remote moves on by the clock whether or not anyone
 * watches: list() returns what runs now, watch() emits steps as they come
 * due.  So containers that "start" while the link is down are found by the
 * next list, as on a real engine.  A malformed line is logged with its line
 * number and skipped.  Not installed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rdhpf/plugin.h"

#define MAX_PORTS 16
#define MAX_LABELS 8
#define TICK_MS 20

static const struct rdhpf_host_api *H;

enum { STEP_START = 1, STEP_STOP, STEP_RESTART };

struct step {
	uint64_t at_ms; /* since t0, or since the step before if rel */
	int rel;
	int kind;
	char id[72];
	char name[128];
	struct rdhpf_port ports[MAX_PORTS];
	char ips[MAX_PORTS][128];
	size_t n_ports;
	char image[128];
	char labels[MAX_LABELS][2][128];
	size_t n_labels;
	char gate[256]; /* "file:PATH" time: due once PATH exists */
};

struct running {
	const struct step *s;
};

struct fr {
	struct rdhpf_ctx *ctx;
	uint64_t t0;
	struct step *steps;
	size_t n_steps;
	size_t cap_steps;
	size_t applied;          /* steps applied to the remote state */
	uint64_t prev_due;       /* when the last applied step came due */
	const struct step **run; /* running containers (the start step) */
	size_t n_run;

	const struct rdhpf_watch_cbs *wcbs;
	void *warg;
	size_t emitted; /* steps already sent to the watcher */
	struct rdhpf_timer *tick;

	struct rdhpf_timer *est_t;
	int no_established;

	rdhpf_list_fn list_done;
	void *list_arg;
	struct rdhpf_timer *list_t;
};

static int
parse_ms(const char *s, uint64_t *ms)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	if (strcmp(end, "ms") == 0 || *end == '\0')
		*ms = v;
	else if (strcmp(end, "s") == 0)
		*ms = v * 1000;
	else
		return -1;
	return 0;
}

/* [ip:]hostport:ctrport[/proto]; ip may be [v6]. */
static int
parse_port(const char *spec, struct rdhpf_port *p, char ip[128])
{
	char buf[128], *proto, *last, *mid;
	unsigned long hp, cp;

	if (strlen(spec) >= sizeof buf)
		return -1;
	snprintf(buf, sizeof buf, "%s", spec);
	p->struct_size = sizeof *p;
	p->proto = RDHPF_PROTO_TCP;
	proto = strchr(buf, '/');
	if (proto) {
		*proto++ = '\0';
		if (strcmp(proto, "udp") == 0)
			p->proto = RDHPF_PROTO_UDP;
		else if (strcmp(proto, "sctp") == 0)
			p->proto = RDHPF_PROTO_SCTP;
		else if (strcmp(proto, "tcp") != 0)
			return -1;
	}
	last = strrchr(buf, ':');
	if (last == NULL)
		return -1;
	*last++ = '\0';
	mid = strrchr(buf, ':');
	ip[0] = '\0';
	if (mid != NULL && (buf[0] != '[' || mid > strchr(buf, ']'))) {
		*mid++ = '\0';
		if (buf[0] == '[') {
			size_t l = strlen(buf);
			if (l < 2 || buf[l - 1] != ']')
				return -1;
			buf[l - 1] = '\0';
			snprintf(ip, 128, "%s", buf + 1);
		} else {
			snprintf(ip, 128, "%s", buf);
		}
	} else {
		mid = buf;
		snprintf(ip, 128, "0.0.0.0");
	}
	hp = strtoul(mid, NULL, 10);
	cp = strtoul(last, NULL, 10);
	if (hp == 0 || hp > 65535 || cp == 0 || cp > 65535)
		return -1;
	p->host_port = (uint16_t)hp;
	p->container_port = (uint16_t)cp;
	return 0;
}

static int
load_script(struct fr *r, const char *path, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "r");
	char line[1024];
	int lineno = 0;

	if (fp == NULL) {
		snprintf(err, errlen, "script: %s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof line, fp)) {
		struct step st;
		char *save = NULL, *tok;
		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		tok = strtok_r(line, " \t", &save);
		if (tok == NULL || tok[0] == '#')
			continue;
		memset(&st, 0, sizeof st);
		if (strncmp(tok, "file:", 5) == 0) {
			if (tok[5] == '\0' || strlen(tok + 5) >= sizeof st.gate)
				goto bad;
			snprintf(st.gate, sizeof st.gate, "%s", tok + 5);
		} else if (tok[0] == '+') {
			st.rel = 1;
			if (parse_ms(tok + 1, &st.at_ms) != 0)
				goto bad;
		} else if (parse_ms(tok, &st.at_ms) != 0) {
			goto bad;
		}
		tok = strtok_r(NULL, " \t", &save);
		if (tok == NULL)
			goto bad;
		if (strcmp(tok, "start") == 0) {
			st.kind = STEP_START;
			char *id = strtok_r(NULL, " \t", &save),
			     *name = strtok_r(NULL, " \t", &save);
			if (id == NULL || name == NULL)
				goto bad;
			snprintf(st.id, sizeof st.id, "%s", id);
			snprintf(st.name, sizeof st.name, "%s", name);
			while ((tok = strtok_r(NULL, " \t", &save)) != NULL) {
				if (strncmp(tok, "image:", 6) == 0) {
					snprintf(st.image, sizeof st.image, "%s", tok + 6);
					continue;
				}
				if (strncmp(tok, "label:", 6) == 0) {
					char *eq = strchr(tok + 6, '=');
					if (eq == NULL || st.n_labels == MAX_LABELS)
						goto bad;
					*eq = '\0';
					snprintf(st.labels[st.n_labels][0], 128, "%s", tok + 6);
					snprintf(st.labels[st.n_labels][1], 128, "%s", eq + 1);
					st.n_labels++;
					continue;
				}
				if (st.n_ports == MAX_PORTS ||
				    parse_port(tok, &st.ports[st.n_ports], st.ips[st.n_ports]) != 0)
					goto bad;
				st.n_ports++;
			}
		} else if (strcmp(tok, "stop") == 0) {
			st.kind = STEP_STOP;
			char *id = strtok_r(NULL, " \t", &save);
			if (id == NULL)
				goto bad;
			snprintf(st.id, sizeof st.id, "%s", id);
		} else if (strcmp(tok, "restart-engine") == 0) {
			st.kind = STEP_RESTART;
		} else {
			goto bad;
		}
		if (r->n_steps == r->cap_steps) {
			/* Geometric: a step is several KiB (labels), and scripts
			 * of a thousand steps must not cost quadratic copying. */
			size_t cap = r->cap_steps ? r->cap_steps * 2 : 64;
			struct step *v = realloc(r->steps, cap * sizeof *v);
			if (v == NULL) {
				fclose(fp);
				return -1;
			}
			r->steps = v;
			r->cap_steps = cap;
		}
		r->steps[r->n_steps++] = st;
		continue;
	bad : {
		char ln[16];
		snprintf(ln, sizeof ln, "%d", lineno);
		H->log(r->ctx, RDHPF_LOG_WARN, "script line skipped: malformed", "file", path,
		       "line", ln, NULL);
	}
	}
	fclose(fp);
	/* Port pointers into the array are fixed only now. */
	for (size_t i = 0; i < r->n_steps; i++)
		for (size_t k = 0; k < r->steps[i].n_ports; k++)
			r->steps[i].ports[k].host_ip = r->steps[i].ips[k];
	return 0;
}

static uint64_t
elapsed(struct fr *r)
{
	return H->now_ms(r->ctx) - r->t0;
}

static void
remote_apply(struct fr *r, const struct step *s)
{
	for (size_t i = 0; i < r->n_run; i++) {
		if (strcmp(r->run[i]->id, s->id) == 0) {
			r->run[i] = r->run[--r->n_run];
			break;
		}
	}
	if (s->kind == STEP_START) {
		const struct step **v = realloc(r->run, (r->n_run + 1) * sizeof *v);
		if (v == NULL)
			return;
		r->run = v;
		r->run[r->n_run++] = s;
	}
}

/* A step is due at its time and, if gated, once its file exists; *at is
 * when it came due. */
static int
due(const struct fr *r, const struct step *s, uint64_t now, uint64_t *at)
{
	*at = s->rel ? r->prev_due + s->at_ms : s->at_ms;
	if (*at > now)
		return 0;
	if (s->gate[0] != '\0') {
		if (access(s->gate, F_OK) != 0)
			return 0;
		*at = now;
	}
	return 1;
}

/* Bring the simulated remote up to now. */
static void
remote_advance(struct fr *r)
{
	uint64_t now = elapsed(r), at;

	while (r->applied < r->n_steps && due(r, &r->steps[r->applied], now, &at)) {
		r->prev_due = at;
		remote_apply(r, &r->steps[r->applied++]);
	}
}

/* A core container for step s (ports only for a start); NULL on ENOMEM or
 * a port the core refuses (logged). */
static struct rdhpf_container *
to_container(struct fr *r, const struct step *s, int with_ports)
{
	struct rdhpf_container *c = H->container_new(r->ctx, s->id, s->name);

	if (c == NULL) {
		H->log(r->ctx, RDHPF_LOG_WARN, "container refused by the core", "container", s->id,
		       NULL);
		return NULL;
	}
	if (s->image[0] != '\0' && H->container_set_image(c, s->image) != RDHPF_OK)
		H->log(r->ctx, RDHPF_LOG_WARN, "image refused by the core", "container", s->id,
		       NULL);
	for (size_t i = 0; i < s->n_labels; i++)
		if (H->container_add_label(c, s->labels[i][0], s->labels[i][1]) != RDHPF_OK)
			H->log(r->ctx, RDHPF_LOG_WARN, "label refused by the core", "container",
			       s->id, "label", s->labels[i][0], NULL);
	for (size_t i = 0; with_ports && i < s->n_ports; i++)
		if (H->container_add_port(c, &s->ports[i]) != RDHPF_OK)
			H->log(r->ctx, RDHPF_LOG_WARN, "port refused by the core", "container",
			       s->id, NULL);
	return c;
}

static void
tick_cb(void *arg)
{
	struct fr *r = arg;

	remote_advance(r);
	while (r->wcbs != NULL && r->emitted < r->applied) {
		const struct step *s = &r->steps[r->emitted++];
		struct rdhpf_container *c;
		if (s->kind == STEP_RESTART) {
			const struct rdhpf_watch_cbs *cbs = r->wcbs;
			void *warg = r->warg;
			r->wcbs = NULL;
			cbs->on_end(warg, RDHPF_ERR_CLOSED, "engine restarted (scripted)");
			return;
		}
		c = to_container(r, s, s->kind == STEP_START);
		if (c == NULL)
			continue;
		r->wcbs->on_event(r->warg, s->kind == STEP_START ? RDHPF_EV_START : RDHPF_EV_STOP,
		                  H->wall_ns(r->ctx), c);
		H->container_free(c);
	}
}

#ifndef FAKE_POLL_ONLY
static void
est_fire(void *arg)
{
	struct fr *r = arg;

	H->timer_stop(r->est_t);
	r->est_t = NULL;
	if (r->wcbs != NULL)
		r->wcbs->on_established(r->warg);
}

static int
r_watch(void *state, const struct rdhpf_watch_cbs *cbs, void *arg)
{
	struct fr *r = state;

	remote_advance(r);
	r->wcbs = cbs;
	r->warg = arg;
	r->emitted = r->applied; /* only what happens from now on */
	/* Like an engine's HTTP 200, a loop turn later (or never, for
	 * tests of the core's timeout). */
	if (!r->no_established)
		r->est_t = H->timer_start(r->ctx, 0, 0, est_fire, r);
	return RDHPF_OK;
}

#endif

static void
list_fire(void *arg)
{
	struct fr *r = arg;
	struct rdhpf_container **cs;
	size_t n = 0;
	rdhpf_list_fn done = r->list_done;
	void *darg = r->list_arg;

	H->timer_stop(r->list_t);
	r->list_t = NULL;
	r->list_done = NULL;
	remote_advance(r);
	cs = calloc(r->n_run ? r->n_run : 1, sizeof *cs);
	if (cs == NULL) {
		done(darg, RDHPF_ERR_NOMEM, "out of memory", NULL, 0);
		return;
	}
	for (size_t i = 0; i < r->n_run; i++)
		if ((cs[n] = to_container(r, r->run[i], 1)) != NULL)
			n++;
	done(darg, RDHPF_OK, NULL, cs, n);
	for (size_t i = 0; i < n; i++)
		H->container_free(cs[i]);
	free(cs);
}

static int
r_list(void *state, rdhpf_list_fn done, void *arg)
{
	struct fr *r = state;

	if (r->list_done != NULL)
		return RDHPF_ERR_BUSY;
	r->list_done = done;
	r->list_arg = arg;
	r->list_t = H->timer_start(r->ctx, 1, 0, list_fire, r);
	return RDHPF_OK;
}

static void
r_stop(void *state)
{
	struct fr *r = state;

	r->wcbs = NULL;
	if (r->est_t) {
		H->timer_stop(r->est_t);
		r->est_t = NULL;
	}
	if (r->list_t) {
		H->timer_stop(r->list_t);
		r->list_t = NULL;
	}
	r->list_done = NULL;
}

static void
r_destroy(void *state)
{
	struct fr *r = state;

	if (r == NULL)
		return;
	r_stop(r);
	if (r->tick)
		H->timer_stop(r->tick);
	free(r->steps);
	free(r->run);
	free(r);
}

static int r_validate(const char *key, const char *value, char *err, size_t errlen);

static int
r_create(struct rdhpf_ctx *ctx, const struct rdhpf_host_params *p, void **state, char *err,
         size_t errlen)
{
	struct fr *r = calloc(1, sizeof *r);
	const char *script = NULL;

	if (r == NULL)
		return RDHPF_ERR_NOMEM;
	r->ctx = ctx;
	r->t0 = H->now_ms(ctx);
	(void)p;
	/* create checks what check-config checks (the conformance suite
	 * asserts the two agree). */
	for (const char *const *k = (const char *const[]){"script", "established", NULL}; *k; k++) {
		const char *v = H->option(ctx, *k);
		char why[200];
		if (v != NULL && r_validate(*k, v, why, sizeof why) != RDHPF_OK) {
			snprintf(err, errlen, "%s: %s", *k, why);
			free(r);
			return RDHPF_ERR_INVAL;
		}
	}
	script = H->option(ctx, "script");
	r->no_established = H->option(ctx, "established") != NULL &&
	                    strcmp(H->option(ctx, "established"), "never") == 0;
	if (script != NULL && load_script(r, script, err, errlen) != 0) {
		r_destroy(r);
		return RDHPF_ERR_INVAL;
	}
	r->tick = H->timer_start(ctx, TICK_MS, TICK_MS, tick_cb, r);
	*state = r;
	return RDHPF_OK;
}

static const struct rdhpf_runtime_ops ops = {
    RDHPF_INIT(rdhpf_runtime_ops),
    .create = r_create,
    .destroy = r_destroy,
#ifndef FAKE_POLL_ONLY
    .watch = r_watch,
#endif
    .list = r_list,
    .stop = r_stop,
};

static const struct rdhpf_option_desc *const options[] = {
    RDHPF_OPTION("script", "file of timed (or file:PATH-gated) start/stop steps to replay"),
    RDHPF_OPTION("established", "'never': the event stream is never confirmed"),
    NULL,
};

static int
r_validate(const char *key, const char *value, char *err, size_t errlen)
{
	if (strcmp(key, "established") == 0 && strcmp(value, "never") != 0 &&
	    strcmp(value, "yes") != 0) {
		snprintf(err, errlen, "bad value '%s' (expected yes or never)", value);
		return RDHPF_ERR_INVAL;
	}
	if (strcmp(key, "script") == 0 && value[0] == '\0') {
		snprintf(err, errlen, "empty path");
		return RDHPF_ERR_INVAL;
	}
	return RDHPF_OK;
}

static const struct rdhpf_plugin_info info = {
    .abi_major = RDHPF_ABI_MAJOR,
    .abi_minor = RDHPF_ABI_MINOR,
    .struct_size = sizeof(struct rdhpf_plugin_info),
    .kind = RDHPF_KIND_RUNTIME,
#ifdef FAKE_POLL_ONLY
    .name = "fake-poll",
    .version = "1.0.0",
    .description = "test runtime: replays a scripted remote, poll-only (no watch)",
    .caps = 0,
#else
    .name = "fake",
    .version = "1.0.0",
    .description = "test runtime: replays a scripted remote",
    .caps = RDHPF_RCAP_EVENTS,
#endif
    .options = options,
    .validate_option = r_validate,
    .ops.runtime = &ops,
};

RDHPF_PLUGIN_DECLARE
{
	H = host;
	return &info;
}
