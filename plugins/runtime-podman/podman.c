/* runtime-podman: running containers and their published ports on a remote
 * Podman 4.x / 5.x, and their start/stop events.
 *
 * api = cli (default) drives the podman command, which needs no service:
 *   watch   one long-lived remote command, PM_SCRIPT below, that picks the
 *           reader at each sync and says which on its first line.  Which
 *           events logger podman uses, `podman info` tells, but it costs
 *           ~0.5 s (podman gathers all its host facts) and holds podman's
 *           locks: when the containers.conf files podman reads say "file",
 *           the file reader starts at once ("rdhpf-events-check" follows
 *           the first line) and the plugin asks `podman info`
 *           PM_CHECK_DELAY_MS after the sync's list; any answer but "file"
 *           ends this watch and the next one follows podman's logger.
 *           Otherwise `podman info` first, as the reader depends on it
 *           ("rdhpf-events-logger X" follows).  Either way the answer is
 *           kept: the host's next watches pass it as the mode and ask
 *           podman no more.
 *           - events_logger = file: `tail -F` on the events log, from the
 *             byte where the log ended when the reader started.  GNU tail
 *             follows a local file with inotify, so a line is read the
 *             moment podman appends it; `podman events` polls the file
 *             instead (it handed lines over 48-229 ms late).
 *           - journald: `journalctl -f -o json` on podman's fields, from one
 *             second before the reader started.
 *           - else (or when the above are missing): `podman events --format
 *             json --filter type=container --since 5s`, as before.
 *           That first line is the watch's on_established for file and
 *           journald: each reader starts where the log stood before the
 *           line was printed (a byte offset; one second back), so nothing
 *           written after it is missed.  `podman events` has no such line
 *           of its own: on_established comes with its first output or
 *           after PM_SETTLE_MS, whichever is first, and its --since
 *           overlap covers what was written before it subscribed.  The
 *           core lists only after on_established (the replay windows only
 *           repeat events, which is harmless: a START is always answered
 *           with the container's current state).
 *   list    `podman ps --format json`, once per (re)sync
 *   start   `podman container inspect ID…`: one remote process per burst of
 *           starts (ids that arrive while one runs are batched into the next),
 *           run ahead at the container's "create" or "init" event: podman
 *           fixes a container's published ports (ephemeral ones too) when it
 *           creates it, and writes "init" before "start", so by the start
 *           its ports are usually known and the START goes out at once
 *           instead of waiting a podman process (~40-100 ms).
 * api = unix speaks Podman's Docker-compatible API over the remote socket
 * (podman.socket; the transport must open remote Unix sockets), with no
 * process started per event: see runtime-common/engine.h.
 * Ids reach argv only after validation as hex; no remote string is ever
 * part of a shell's program text (PM_SCRIPT is constant; what it reads
 * stays in quoted variables). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rdhpf/plugin.h"
#include "../runtime-common/engine.h"

static const struct rdhpf_host_api *H;

#define PM_REPLAY "5s"
/* `podman events` prints nothing until an event: the stream counts as
 * established this long after the reader line (podman subscribes well
 * within it, and --since PM_REPLAY replays what it missed). */
#define PM_SETTLE_MS 1000
/* containers.conf's word on the events logger is checked with `podman
 * info` this long after the sync's list: not during the sync burst, where
 * 20 hosts' infos (0.5 s of CPU each, podman's locks held) on one remote
 * doubled the time to sync them all.  Wrong, it costs one resync (its list
 * makes up for what the wrong reader missed). */
#define PM_CHECK_DELAY_MS 10000
#define PM_BATCH 64
#define PM_PRE_MAX 256 /* containers whose ports are known ahead of their start */
/* A log line older than the newest one read by more than this means the
 * log was rotated and tail reads the retained part again: resync instead
 * of replaying it.  The slack absorbs two podman processes appending out
 * of order (each stamps its event before it takes the file lock). */
#define PM_ROTATE_SLACK_NS (1000LL * 1000 * 1000)

/* The events reader, run as `sh -c PM_SCRIPT rdhpf-podman PODMAN MODE LOG`
 * (MODE auto|file|journald|podman; LOG the events log, "" to find it as
 * podman does: events_logfile_path, else tmp_dir/events/events.log, from
 * the containers.conf files podman reads).  The first line it prints is
 * "rdhpf-events KIND[ DETAIL]" (for file: the remote's clock in seconds,
 * then the path); with MODE auto, a second: "rdhpf-events-check" (the file
 * reader runs on containers.conf's word) or "rdhpf-events-logger X" (what
 * `podman info` said); then the reader's own output. */
static const char PM_SCRIPT[] =
    "p=$1 mode=$2 log=$3\n"
    "hdr() { printf 'rdhpf-events %s\\n' \"$*\"; }\n"
    "events() {\n"
    "\thdr podman \"$1\"\n"
    "\texec \"$p\" events --format json --filter type=container --since " PM_REPLAY "\n"
    "}\n"
    "conf() {\n"
    "\tk=$1; shift; v=\n"
    "\tfor f in \"$@\"; do\n"
    "\t\t[ -r \"$f\" ] || continue\n"
    "\t\tx=$(sed -n "
    "\"s/^[[:space:]]*$k[[:space:]]*=[[:space:]]*[\\\"']\\([^\\\"']*\\)[\\\"'].*/\\1/p\" "
    "\"$f\" | tail -n 1)\n"
    "\t\t[ -n \"$x\" ] && v=$x\n"
    "\tdone\n"
    "\tprintf '%s' \"$v\"\n"
    "}\n"
    "if [ -n \"${CONTAINERS_CONF:-}\" ]; then\n"
    "\tset -- \"$CONTAINERS_CONF\"\n"
    "else\n"
    "\tu=${XDG_CONFIG_HOME:-$HOME/.config}/containers\n"
    "\tset -- /usr/share/containers/containers.conf /etc/containers/containers.conf "
    "/etc/containers/containers.conf.d/*.conf\n"
    "\t[ \"$(id -u)\" = 0 ] || set -- \"$@\" \"$u/containers.conf\" "
    "\"$u\"/containers.conf.d/*.conf\n"
    "fi\n"
    "[ -n \"${CONTAINERS_CONF_OVERRIDE:-}\" ] && set -- \"$@\" \"$CONTAINERS_CONF_OVERRIDE\"\n"
    "check= told=\n"
    "if [ \"$mode\" = auto ]; then\n"
    "\tif [ \"$(conf events_logger \"$@\")\" = file ]; then mode=file check=1\n"
    "\telse\n"
    "\t\tmode=$(\"$p\" info --format '{{.Host.EventLogger}}' 2>/dev/null) || "
    "events 'podman info failed'\n"
    "\t\ttold=1\n"
    "\tfi\n"
    "fi\n"
    "case $mode in\n"
    "file)\n"
    "\tif [ -z \"$log\" ]; then\n"
    "\t\tlog=$(conf events_logfile_path \"$@\")\n"
    "\t\tif [ -z \"$log\" ]; then\n"
    "\t\t\tt=$(conf tmp_dir \"$@\")\n"
    "\t\t\tif [ -n \"$t\" ]; then :\n"
    "\t\t\telif [ \"$(id -u)\" = 0 ]; then t=/run/libpod\n"
    "\t\t\telse t=${XDG_RUNTIME_DIR:-/run/user/$(id -u)}/libpod/tmp\n"
    "\t\t\tfi\n"
    "\t\t\tlog=$t/events/events.log\n"
    "\t\tfi\n"
    "\tfi\n"
    "\tsize=$(stat -c %s -- \"$log\" 2>/dev/null) || events \"no events log at $log\"\n"
    "\thdr file \"$(date +%s)\" \"$log\"\n"
    "\tif [ -n \"$check\" ]; then printf 'rdhpf-events-check\\n'\n"
    "\telif [ -n \"$told\" ]; then printf 'rdhpf-events-logger file\\n'\n"
    "\tfi\n"
    "\texec tail -c \"+$((size + 1))\" -F -- \"$log\"\n"
    "\t;;\n"
    "journald)\n"
    "\tcommand -v journalctl >/dev/null 2>&1 || events 'no journalctl'\n"
    "\tnow=$(date +%s)\n"
    "\thdr journald\n"
    "\t[ -n \"$told\" ] && printf 'rdhpf-events-logger journald\\n'\n"
    "\texec journalctl -q -f -o json --since \"@$((now - 1))\" PODMAN_TYPE=container\n"
    "\t;;\n"
    "*)\n"
    "\tevents \"events_logger is '$mode'\"\n"
    "\t;;\n"
    "esac\n";

/* {"type":["container"]} */
#define PODMAN_EVENT_FILTERS "%7B%22type%22%3A%5B%22container%22%5D%7D"

/* A container's ports looked up ahead of its start. */
enum { PRE_WANT = 0, PRE_RUNNING, PRE_READY };
struct pm_pre {
	struct rsdk_cont c; /* id; ports, image, labels once PRE_READY */
	int state;
	uint64_t stamp; /* for eviction: the oldest goes first */
};

struct pm {
	struct rt r;   /* first: rt_destroy frees through it */
	struct eng *e; /* api = unix */
	char *podman;

	struct rdhpf_stream *ev;
	struct rsdk_lines lines;
	struct rdhpf_timer *settle; /* podman events: on_established after PM_SETTLE_MS */

	struct rsdk_collect *list_c;
	rdhpf_list_fn list_done;
	void *list_arg;

	struct rsdk_collect *insp_c; /* the inspect running */
	struct rt_item **insp;       /* its items */
	size_t n_insp;
	struct rt_item **want; /* starts waiting for the next inspect */
	size_t n_want, cap_want;
	uint64_t insp_started_ms;

	char *events_mode; /* auto, file, journald or podman */
	/* events = auto: the logger `podman info` named (at the first sync,
	 * or in the check of containers.conf's word); the watches after pass
	 * it as the mode ("" until then). */
	char logger[24];
	bool check;                 /* the reader runs on containers.conf's word */
	struct rsdk_collect *chk_c; /* the podman info that checks it */
	struct rdhpf_timer *chk_t;  /* ... PM_CHECK_DELAY_MS after the list */
	char *events_log;           /* "" to find it */
	int reader;                 /* RT_PM_*: RT_PM_NONE until the script's first line */
	int64_t newest_ns;          /* the newest event time read from the log file */

	struct pm_pre *pre; /* PM_PRE_MAX entries, n_pre used */
	size_t n_pre;
	uint64_t pre_stamp;
	struct rsdk_collect *pre_c; /* the look-ahead inspect running */
	struct rt_item **pre_wait;  /* starts waiting for a look-ahead */
	size_t n_pre_wait, cap_pre_wait;
};

static void unwatch(struct pm *p);

static void
pm_free(struct rt *r)
{
	struct pm *p = (struct pm *)r;

	eng_free(p->e);
	rsdk_lines_free(&p->lines);
	free(p->insp);
	free(p->want);
	free(p->podman);
	free(p->events_mode);
	free(p->events_log);
	free(p->pre);
	free(p->pre_wait);
	free(p);
}

static void
p_stop(void *state)
{
	struct pm *p = state;

	rt_stop(&p->r);
	unwatch(p);
	if (p->e)
		eng_stop(p->e);
	rsdk_collect_cancel(p->list_c);
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

/* A deep copy (a container stays in its set, which is sorted by id). */
static int
cont_copy(struct rsdk_cont *dst, const struct rsdk_cont *src)
{
	if (rsdk_cont_init(dst, src->id, src->name) != RDHPF_OK ||
	    rsdk_cont_set_image(dst, src->image) != RDHPF_OK)
		goto fail;
	for (size_t i = 0; i < src->n_labels; i++)
		if (rsdk_cont_add_label(dst, src->labels[i].key, src->labels[i].value) != RDHPF_OK)
			goto fail;
	for (size_t i = 0; i < src->n_ports; i++) {
		const struct rsdk_port *q = &src->ports[i];
		if (rsdk_cont_add_port(dst, q->ip, q->host_port, q->container_port, q->proto) !=
		    RDHPF_OK)
			goto fail;
	}
	return 0;
fail:
	rsdk_cont_clear(dst);
	return -1;
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
	uint64_t gen = RT_GEN(r);
	struct rsdk_cset cs = RSDK_CSET_INIT;
	int parsed;
	char msg[300];

	p->insp_c = NULL;
	rt_enter(r);
	if (status != RDHPF_OK) {
		snprintf(msg, sizeof msg, "podman inspect: %s", detail ? detail : "stream failed");
		rt_end(r, status, msg);
		goto out;
	}
	parsed = len > 0 && rt_inspect(out, len, 1, &cs, exit_code == 0 ? &r->diag : NULL) == 0;
	if (!parsed && exit_code != 0 && !detail_says_gone(detail)) {
		/* podman itself failed: the ports are unknown, resync. */
		snprintf(msg, sizeof msg, "podman inspect exited %d%s%s", exit_code,
		         detail ? ": " : "", detail ? detail : "");
		rt_end(r, RDHPF_ERR_REMOTE, msg);
		goto out;
	}
	if (!parsed && exit_code == 0)
		RT_LOG(r, RDHPF_LOG_WARN, "starts skipped: malformed podman inspect output");
	for (size_t i = 0; i < p->n_insp; i++) {
		struct rt_item *it = p->insp[i];
		struct rsdk_cont *c = rsdk_cset_get(&cs, it->c.id), copy;
		if (c == NULL) {
			RT_LOG(r, RDHPF_LOG_DEBUG, "container no longer runs; start ignored",
			       "container", it->c.id);
			rt_item_fill(r, it, NULL);
		} else if (cont_copy(&copy, c) != 0) {
			/* Its ports are unknown: only a list can tell. */
			rt_item_fill(r, it, NULL);
			rt_resync(r, "out of memory");
		} else {
			rt_item_fill(r, it, &copy);
		}
	}
	p->n_insp = 0;
	rsdk_cset_free(&cs);
	if (!rt_q_flush(r) || RT_GEN(r) != gen)
		goto out;
	if (p->n_want > 0 && inspect_next(p) != RDHPF_OK)
		rt_end(r, RDHPF_ERR_REMOTE, "cannot run podman inspect");
out:
	rsdk_cset_free(&cs);
	rt_leave(r);
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
	rc = rsdk_collect(H, p->r.ctx, argv, RT_BODY_MAX, inspect_done, p, &p->insp_c);
	if (rc != RDHPF_OK)
		return rc;
	p->insp = realloc(p->insp, n * sizeof *p->insp);
	if (p->insp == NULL) {
		rsdk_collect_cancel(p->insp_c);
		p->insp_c = NULL;
		return RDHPF_ERR_NOMEM;
	}
	memcpy(p->insp, p->want, n * sizeof *p->insp);
	p->n_insp = n;
	memmove(p->want, p->want + n, (p->n_want - n) * sizeof *p->want);
	p->n_want -= n;
	return RDHPF_OK;
}

static int pre_take(struct pm *p, struct rt_item *it);

static int
want_inspect(struct pm *p, struct rt_item *it)
{
	if (pre_take(p, it))
		return RDHPF_OK;
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

/* ---- ports looked up ahead ---- */

static struct pm_pre *
pre_find(struct pm *p, const char *id)
{
	for (size_t i = 0; i < p->n_pre; i++)
		if (strcmp(p->pre[i].c.id, id) == 0)
			return &p->pre[i];
	return NULL;
}

static void
pre_drop(struct pm *p, struct pm_pre *e)
{
	rsdk_cont_clear(&e->c);
	*e = p->pre[--p->n_pre];
}

static void
pre_clear(struct pm *p)
{
	rsdk_collect_cancel(p->pre_c);
	p->pre_c = NULL;
	while (p->n_pre > 0)
		pre_drop(p, &p->pre[0]);
	p->n_pre_wait = 0;
}

static void pre_done(void *arg, int status, int exit_code, const char *detail, const char *out,
                     size_t len);

/* Start one inspect for the entries that want one.  Failing is not an
 * error: their starts are looked up as before. */
static void
pre_next(struct pm *p)
{
	const char *argv[PM_BATCH + 4];
	size_t n = 0;

	if (p->pre_c != NULL)
		return;
	argv[n++] = p->podman;
	argv[n++] = "container";
	argv[n++] = "inspect";
	for (size_t i = 0; i < p->n_pre && n < PM_BATCH + 3; i++)
		if (p->pre[i].state == PRE_WANT)
			argv[n++] = p->pre[i].c.id; /* validated hex */
	if (n == 3)
		return;
	argv[n] = NULL;
	if (rsdk_collect(H, p->r.ctx, argv, RT_BODY_MAX, pre_done, p, &p->pre_c) != RDHPF_OK) {
		p->pre_c = NULL;
		return;
	}
	for (size_t i = 3; i < n; i++)
		pre_find(p, argv[i])->state = PRE_RUNNING;
}

/* A container was created or initialised: look its ports up now. */
static void
pre_want(struct pm *p, const char *id)
{
	struct pm_pre *e = pre_find(p, id);

	if (e != NULL) {
		if (e->state != PRE_READY)
			return;
		/* "init" again (a restart): the ports are the same, keep them. */
		e->stamp = ++p->pre_stamp;
		return;
	}
	if (p->pre == NULL) {
		p->pre = calloc(PM_PRE_MAX, sizeof *p->pre);
		if (p->pre == NULL)
			return;
	}
	if (p->n_pre == PM_PRE_MAX) {
		/* Full: forget the oldest known one (never one being looked up,
		 * a start may wait for it). */
		struct pm_pre *old = NULL;
		for (size_t i = 0; i < p->n_pre; i++)
			if (p->pre[i].state == PRE_READY &&
			    (old == NULL || p->pre[i].stamp < old->stamp))
				old = &p->pre[i];
		if (old == NULL)
			return;
		pre_drop(p, old);
	}
	e = &p->pre[p->n_pre];
	if (rsdk_cont_init(&e->c, id, NULL) != RDHPF_OK)
		return;
	p->n_pre++;
	e->state = PRE_WANT;
	e->stamp = ++p->pre_stamp;
	pre_next(p);
}

/* Give a START its ports if they were looked up ahead: 1 when done (or
 * waiting for the look-ahead), 0 when the start needs its own inspect. */
static int
pre_take(struct pm *p, struct rt_item *it)
{
	struct pm_pre *e = pre_find(p, it->c.id);
	struct rsdk_cont c;

	if (e == NULL)
		return 0;
	if (e->state != PRE_READY) {
		if (p->n_pre_wait == p->cap_pre_wait) {
			size_t cap = p->cap_pre_wait ? p->cap_pre_wait * 2 : 16;
			struct rt_item **v = realloc(p->pre_wait, cap * sizeof *v);
			if (v == NULL)
				return 0;
			p->pre_wait = v;
			p->cap_pre_wait = cap;
		}
		p->pre_wait[p->n_pre_wait++] = it;
		return 1;
	}
	if (cont_copy(&c, &e->c) != 0)
		return 0;
	e->stamp = ++p->pre_stamp;
	rt_item_fill(&p->r, it, &c);
	rsdk_cont_clear(&c);
	return 1;
}

static void
pre_done(void *arg, int status, int exit_code, const char *detail, const char *out, size_t len)
{
	struct pm *p = arg;
	struct rt *r = &p->r;
	uint64_t gen = RT_GEN(r);
	struct rsdk_cset cs = RSDK_CSET_INIT;
	size_t nw;
	struct rt_item **w;

	(void)detail;
	(void)exit_code; /* a container gone meanwhile only makes podman exit 125 */
	p->pre_c = NULL;
	rt_enter(r);
	/* Not running yet (create, init): all of them. */
	if (status == RDHPF_OK && len > 0)
		rt_inspect(out, len, 0, &cs, NULL);
	for (size_t i = 0; i < p->n_pre;) {
		struct pm_pre *e = &p->pre[i];
		struct rsdk_cont *c;
		if (e->state != PRE_RUNNING) {
			i++;
			continue;
		}
		if ((c = rsdk_cset_get(&cs, e->c.id)) == NULL) {
			pre_drop(p, e); /* its start, if any, is looked up as before */
			continue;
		}
		struct rsdk_cont copy;
		if (cont_copy(&copy, c) != 0) {
			pre_drop(p, e);
			continue;
		}
		rsdk_cont_clear(&e->c);
		rsdk_cont_move(&e->c, &copy);
		e->state = PRE_READY;
		i++;
	}
	rsdk_cset_free(&cs);
	/* The starts that waited: take their ports, or look them up. */
	w = p->pre_wait;
	nw = p->n_pre_wait;
	p->pre_wait = NULL;
	p->n_pre_wait = p->cap_pre_wait = 0;
	for (size_t i = 0; i < nw; i++) {
		if (want_inspect(p, w[i]) != RDHPF_OK) {
			free(w);
			rt_end(r, RDHPF_ERR_REMOTE, "cannot run podman inspect");
			goto out;
		}
	}
	free(w);
	if (!rt_q_flush(r) || RT_GEN(r) != gen)
		goto out;
	pre_next(p);
out:
	rt_leave(r);
}

/* ---- events ---- */

static void
settle_stop(struct pm *p)
{
	if (p->settle != NULL) {
		H->timer_stop(p->settle);
		p->settle = NULL;
	}
}

/* The stream is read where events are written: on_established.  Returns
 * nonzero when stop() ran meanwhile. */
static int
established(struct pm *p)
{
	settle_stop(p);
	return !rt_established(&p->r);
}

static void
settle_fired(void *arg)
{
	struct pm *p = arg;
	struct rt *r = &p->r;

	rt_enter(r);
	settle_stop(p);
	if (r->wcbs != NULL)
		rt_established(r);
	rt_leave(r);
}

/* The script's first line: which reader runs, now reading. */
static int
reader_started(struct pm *p, const char *line, size_t len)
{
	static const char *const names[] = {
	    [RT_PM_FILE] = "file",
	    [RT_PM_JOURNALD] = "journald",
	    [RT_PM_EVENTS] = "podman-events",
	};
	struct rt *r = &p->r;
	char rest[300];
	int kind;

	if (rt_podman_reader_line(line, len, &kind, rest, sizeof rest) != 0) {
		rsdk_printable(rest, sizeof rest, line, len);
		RT_LOG(r, RDHPF_LOG_WARN, "podman events reader: unexpected first line", "line",
		       rest);
		rt_end(r, RDHPF_ERR_PROTO, "podman events reader: unexpected first line");
		return 1;
	}
	p->reader = kind;
	p->newest_ns = 0;
	if (kind == RT_PM_FILE) {
		/* Every line read from now on was appended after this moment (by
		 * the remote's clock): one older by more than the slack is the
		 * log read again after a rotation, even before any other line. */
		int64_t t = 0;
		size_t i = 0;
		for (; rest[i] >= '0' && rest[i] <= '9' && i < 12; i++)
			t = t * 10 + (rest[i] - '0');
		if (rest[i] == ' ') {
			p->newest_ns = t * 1000000000LL;
			memmove(rest, rest + i + 1, strlen(rest + i + 1) + 1);
		}
	}
	/* Which reader runs decides the event latency: say it once per sync. */
	if (kind == RT_PM_FILE)
		RT_LOG(r, RDHPF_LOG_INFO, "podman events: following the events log", "reader",
		       names[kind], "path", rest);
	else if (kind == RT_PM_JOURNALD)
		RT_LOG(r, RDHPF_LOG_INFO, "podman events: following the journal", "reader",
		       names[kind]);
	else
		RT_LOG(r, RDHPF_LOG_INFO, "podman events: running podman events", "reader",
		       names[kind], "why", rest[0] ? rest : NULL);
	if (kind != RT_PM_EVENTS)
		return established(p);
	p->settle = H->timer_start(r->ctx, PM_SETTLE_MS, 0, settle_fired, p);
	if (p->settle == NULL)
		return established(p);
	return 0;
}

#define LOGGER_LINE "rdhpf-events-logger "
#define CHECK_LINE "rdhpf-events-check"

/* `podman info`'s word on the events logger (the script's line after
 * `podman info` ran first, or check_done's answer): kept for the next
 * watches (they ask no more).  Anything but the running reader's logger
 * ends this watch; the next one follows podman's. */
static int
logger_line(struct pm *p, const char *v, size_t len)
{
	struct rt *r = &p->r;
	char shown[64];
	size_t i;

	for (i = 0; i < len && i < sizeof p->logger - 1; i++) {
		char ch = v[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		      ch == '_'))
			break;
	}
	rsdk_printable(shown, sizeof shown, v, len);
	if (i == 0 || i != len) {
		/* Not a logger name podman has: its own events command copes. */
		snprintf(p->logger, sizeof p->logger, "podman");
	} else {
		memcpy(p->logger, v, len);
		p->logger[len] = '\0';
	}
	if (strcmp(p->logger, p->reader == RT_PM_FILE ? "file" : "journald") == 0) {
		RT_LOG(r, RDHPF_LOG_INFO, "podman events: podman info names the reader's logger",
		       "logger", shown);
		return 0;
	}
	RT_LOG(r, RDHPF_LOG_WARN,
	       "podman events: containers.conf names the file logger but podman uses another; "
	       "following podman's",
	       "logger", shown);
	rt_end(r, RDHPF_ERR_CLOSED, "podman events: the events logger is not the file");
	return 1;
}

static void
check_done(void *arg, int status, int exit_code, const char *detail, const char *out, size_t len)
{
	struct pm *p = arg;
	struct rt *r = &p->r;

	(void)detail;
	p->chk_c = NULL;
	if (status != RDHPF_OK || exit_code != 0 || p->reader != RT_PM_FILE)
		return; /* unchecked: the next sync asks again */
	while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == '\r' || out[len - 1] == ' '))
		len--;
	rt_enter(r);
	(void)logger_line(p, out, len);
	rt_leave(r);
}

static void
check_fired(void *arg)
{
	struct pm *p = arg;
	const char *argv[] = {p->podman, "info", "--format", "{{.Host.EventLogger}}", NULL};

	H->timer_stop(p->chk_t);
	p->chk_t = NULL;
	if (p->reader != RT_PM_FILE || p->chk_c != NULL)
		return;
	if (rsdk_collect(H, p->r.ctx, argv, 256, check_done, p, &p->chk_c) != RDHPF_OK)
		p->chk_c = NULL;
}

/* The sync's list is in: ask podman which logger it writes, soon. */
static void
check_start(struct pm *p)
{
	if (!p->check || p->chk_t != NULL || p->chk_c != NULL || p->logger[0] != '\0')
		return;
	p->check = false;
	p->chk_t = H->timer_start(p->r.ctx, PM_CHECK_DELAY_MS, 0, check_fired, p);
}

static int
ev_line(void *arg, const char *line, size_t len)
{
	struct pm *p = arg;
	struct rt *r = &p->r;
	struct rt_event ev;

	if (len == 0)
		return 0;
	if (p->reader == RT_PM_NONE)
		return reader_started(p, line, len);
	if (p->settle != NULL && established(p))
		return 1;
	if (p->reader == RT_PM_FILE && len == sizeof CHECK_LINE - 1 &&
	    memcmp(line, CHECK_LINE, len) == 0) {
		p->check = true;
		return 0;
	}
	if ((p->reader == RT_PM_FILE || p->reader == RT_PM_JOURNALD) &&
	    len > sizeof LOGGER_LINE - 1 && memcmp(line, LOGGER_LINE, sizeof LOGGER_LINE - 1) == 0)
		return logger_line(p, line + sizeof LOGGER_LINE - 1,
		                   len - (sizeof LOGGER_LINE - 1));
	if (p->reader == RT_PM_JOURNALD) {
		if (rt_podman_journal_event(line, len, &ev, &r->diag) != 0)
			return 0;
	} else if (rt_podman_event(line, len, &ev, &r->diag) != 0) {
		return 0;
	}
	if (p->reader == RT_PM_FILE && ev.time_ns > 0) {
		if (p->newest_ns > 0 && ev.time_ns < p->newest_ns - PM_ROTATE_SLACK_NS) {
			rt_event_clear(&ev);
			rt_end(r, RDHPF_ERR_CLOSED,
			       "podman events log rotated (an older event was read again)");
			return 1;
		}
		if (ev.time_ns > p->newest_ns)
			p->newest_ns = ev.time_ns;
	}
	if (ev.kind == RT_EV_IGNORE && ev.c.id != NULL &&
	    (strcmp(ev.action, "create") == 0 || strcmp(ev.action, "init") == 0))
		pre_want(p, ev.c.id);
	if (ev.kind == RT_EV_STOP && strcmp(ev.action, "remove") == 0) {
		struct pm_pre *e = pre_find(p, ev.c.id);
		if (e != NULL && e->state == PRE_READY)
			pre_drop(p, e);
	}
	return rt_event_take(r, &ev);
}

static void
ev_data(void *arg, const char *buf, size_t len)
{
	struct pm *p = arg;
	struct rt *r = &p->r;

	rt_enter(r);
	rt_lines_feed(r, &p->lines, buf, len, ev_line, p);
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
	settle_stop(p);
	snprintf(msg, sizeof msg, "podman events reader exited (%d)%s%s", exit_code,
	         detail ? ": " : "", detail ? detail : "");
	rt_detail_trim(msg);
	rt_end(r, status == RDHPF_OK ? RDHPF_ERR_CLOSED : status, msg);
	rt_leave(r);
}

static const struct rdhpf_stream_cbs ev_cbs = {
    RDHPF_INIT(rdhpf_stream_cbs),
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
	settle_stop(p);
	rsdk_lines_free(&p->lines);
	p->reader = RT_PM_NONE;
	p->check = false;
	rsdk_collect_cancel(p->chk_c);
	p->chk_c = NULL;
	if (p->chk_t != NULL) {
		H->timer_stop(p->chk_t);
		p->chk_t = NULL;
	}
	pre_clear(p);
	rsdk_collect_cancel(p->insp_c);
	p->insp_c = NULL;
	p->n_insp = 0;
	p->n_want = 0;
	rt_q_clear(&p->r);
}

static int
p_watch(void *state, const struct rdhpf_watch_cbs *cbs, void *arg)
{
	struct pm *p = state;
	const char *mode = strcmp(p->events_mode, "auto") == 0 && p->logger[0] != '\0'
	                       ? p->logger
	                       : p->events_mode;
	const char *argv[] = {"sh",      "-c", PM_SCRIPT,     "rdhpf-podman",
	                      p->podman, mode, p->events_log, NULL};
	int rc;

	if (p->r.wcbs != NULL)
		return RDHPF_ERR_BUSY;
	/* What is left of a watch that ended: its stream, its queue. */
	unwatch(p);
	rt_watch_begin(&p->r, cbs, arg);
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
	struct rsdk_cset cs = RSDK_CSET_INIT;
	char msg[300];

	p->list_c = NULL;
	p->list_done = NULL;
	if (done == NULL)
		return;
	rt_enter(r);
	if (status != RDHPF_OK || exit_code != 0) {
		snprintf(msg, sizeof msg, "podman ps exited %d%s%s", exit_code, detail ? ": " : "",
		         detail ? detail : "");
		rt_detail_trim(msg);
		done(darg, status != RDHPF_OK ? status : RDHPF_ERR_REMOTE, msg, NULL, 0);
	} else if (rt_podman_ps(out, len, &cs, &r->diag) != 0) {
		done(darg, RDHPF_ERR_PROTO, "malformed podman ps output", NULL, 0);
	} else {
		rt_list_deliver(r, done, darg, &cs);
		check_start(p);
	}
	rsdk_cset_free(&cs);
	rt_leave(r);
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
	rc = rsdk_collect(H, p->r.ctx, argv, RT_BODY_MAX, list_done, p, &p->list_c);
	if (rc != RDHPF_OK)
		return rc;
	p->list_done = done;
	p->list_arg = arg;
	return RDHPF_OK;
}

/* ---- instance ---- */

static int
p_want_ports(struct rt *r, struct rt_item *it)
{
	struct pm *p = (struct pm *)r;

	if (p->e)
		return eng_want_ports(p->e, it);
	return want_inspect(p, it);
}

/* ---- options: the same checks for check-config and create ---- */

static int
command_ok(const char *value, char *err, size_t errlen)
{
	/* A command name or path, passed as one argv word. */
	if (value[0] == '/')
		return rsdk_check_abs_path(value, err, errlen);
	return rsdk_check_name(value, err, errlen);
}

static int
p_validate_option(const char *key, const char *value, char *err, size_t errlen)
{
	static const char *const apis[] = {"cli", "unix", NULL};
	static const char *const events[] = {"auto", "file", "journald", "podman", NULL};

	if (strcmp(key, "api") == 0)
		return rsdk_check_enum(value, apis, err, errlen);
	if (strcmp(key, "socket") == 0) {
		/* sun_path holds 108 bytes with the NUL. */
		if (strlen(value) > 107) {
			snprintf(err, errlen, "longer than 107 bytes (a Unix socket path)");
			return RDHPF_ERR_INVAL;
		}
		return rsdk_check_abs_path(value, err, errlen);
	}
	if (strcmp(key, "podman") == 0)
		return command_ok(value, err, errlen);
	if (strcmp(key, "events") == 0)
		return rsdk_check_enum(value, events, err, errlen);
	if (strcmp(key, "events_log") == 0)
		return value[0] == '\0' ? RDHPF_OK : rsdk_check_abs_path(value, err, errlen);
	snprintf(err, errlen, "unknown option");
	return RDHPF_ERR_INVAL;
}

/* The value of key, checked; def when unset.  NULL with err filled. */
static const char *
opt(struct rdhpf_ctx *ctx, const char *key, const char *def, char *err, size_t errlen)
{
	const char *v = H->option(ctx, key);
	char why[200];

	if (v == NULL)
		return def;
	if (p_validate_option(key, v, why, sizeof why) != RDHPF_OK) {
		snprintf(err, errlen, "%s: %s", key, why);
		return NULL;
	}
	return v;
}

static int
p_create(struct rdhpf_ctx *ctx, const struct rdhpf_host_params *hp, void **state, char *err,
         size_t errlen)
{
	const char *api, *socket, *podman, *events, *events_log;
	struct pm *p;

	(void)hp;
	if ((api = opt(ctx, "api", "cli", err, errlen)) == NULL ||
	    (socket = opt(ctx, "socket", "/run/podman/podman.sock", err, errlen)) == NULL ||
	    (podman = opt(ctx, "podman", "podman", err, errlen)) == NULL ||
	    (events = opt(ctx, "events", "auto", err, errlen)) == NULL ||
	    (events_log = opt(ctx, "events_log", "", err, errlen)) == NULL)
		return RDHPF_ERR_INVAL;
	p = calloc(1, sizeof *p);
	if (p == NULL)
		return RDHPF_ERR_NOMEM;
	rt_base_init(&p->r, H, ctx, pm_free, p_want_ports);
	rsdk_lines_init(&p->lines, RT_LINE_MAX);
	p->podman = strdup(podman);
	p->events_mode = strdup(events);
	p->events_log = strdup(events_log);
	if (p->podman == NULL || p->events_mode == NULL || p->events_log == NULL) {
		pm_free(&p->r);
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
			pm_free(&p->r);
			return RDHPF_ERR_NOMEM;
		}
	}
	*state = p;
	return RDHPF_OK;
}

static const struct rdhpf_runtime_ops ops = {
    RDHPF_INIT(rdhpf_runtime_ops),
    .create = p_create,
    .destroy = p_destroy,
    .watch = p_watch,
    .list = p_list,
    .stop = p_stop,
};

static const struct rdhpf_option_desc *const options[] = {
    RDHPF_OPTION("api", "cli (default): run the podman command; unix: Podman's "
                        "Docker-compatible API on the remote socket (needs podman.socket and "
                        "a transport that opens remote sockets)"),
    RDHPF_OPTION("socket", "the Podman API socket on the remote, for api = unix (default "
                           "/run/podman/podman.sock)"),
    RDHPF_OPTION("podman", "the podman command on the remote (default podman)"),
    RDHPF_OPTION("events", "api = cli: how events are read: auto (default: as podman info's "
                           "eventLogger says), file (tail -F on the events log), journald "
                           "(journalctl -f) or podman (podman events, which polls the file)"),
    RDHPF_OPTION("events_log", "the events log for events = file/auto, when podman's "
                               "containers.conf files do not say it (default: found as podman "
                               "does)"),
    NULL,
};

static const struct rdhpf_plugin_info info = {
    .abi_major = RDHPF_ABI_MAJOR,
    .abi_minor = RDHPF_ABI_MINOR,
    .struct_size = sizeof(struct rdhpf_plugin_info),
    .kind = RDHPF_KIND_RUNTIME,
    .name = "podman",
    .version = "2.0.0",
    .description = "Podman 4.x/5.x: containers, published ports, images, labels and events",
    .caps = RDHPF_RCAP_EVENTS,
    .options = options,
    .validate_option = p_validate_option,
    .ops.runtime = &ops,
};

RDHPF_PLUGIN_DECLARE
{
	H = host;
	return &info;
}
