/* Per-host supervisor.
 *
 *   connecting → syncing → steady
 *   any link failure → backoff (exponential, jitter, cap) → connecting
 *   breaker_threshold consecutive failures → breaker open for the cooldown,
 *   then one half-open try.
 *   While down after a connection-level failure (refused, unreachable,
 *   timed out, lost), the host's TCP port is probed every PROBE_MS
 *   (reconnect_probe): when a port seen closed accepts again, the handshake
 *   starts then, not at the next backoff step or at the end of the
 *   cooldown (measured: sshd back → forwards serving p99 2.7-3.0 s in the
 *   long A/B run, the breaker's 3 s cooldown after a 10 s outage).  Backoff
 *   still spaces the handshakes; a port open all along changes nothing, so
 *   a host refusing authentication is not tried more often.
 *
 * Every (re)connect does list-then-watch: start the event stream, list the
 * running containers, replace the container set with the list, apply the
 * events that arrived meanwhile, reconcile.  Reconciliation is pure and
 * idempotent, so re-adding everything after a reconnect is always safe.
 * It is also incremental (rcstate.h): an event updates the reconciler's
 * state for its container alone and the next reconcile settles only the
 * keys that container claims, so what an event costs does not grow with
 * the host's forwards; a list upserts each container it has (the known
 * ones change nothing) and removes the others.
 * An event stream that ends while the link is fine is retried with its own
 * backoff after a health check, without a new SSH connection.
 *
 * Nothing here ever exits the process: every failure becomes a state. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <jansson.h>
#include <time.h>

#include "backoff.h"
#include "core.h"
#include "engine_sock.h"
#include "events.h"
#include "hmap.h"
#include "rcstate.h"
#include "tcpprobe.h"
#include "labels.h"
#include "log.h"
#include "reconcile.h"
#include "util.h"

#define FWD_RETRY_MS 2000
#define CONNECT_GRACE_MS 2000
#define PROBE_MS 100

enum fwd_state { FWD_PENDING = 0, FWD_ACTIVE, FWD_CONFLICT, FWD_FAILED };

/* Owned by host.fwds (an array of pointers, so indexes below stay put). */
struct fwd {
	struct hnode by_key; /* host.fwd_keys, by (bind, local_port) */
	struct hnode by_id;  /* host.fwd_ids */
	size_t at;           /* index in host.fwds */
	uint64_t id;
	struct rc_forward f;
	enum fwd_state state;
	int in_flight;
	uint64_t since_ms;
	uint64_t add_started_ns;
	char err[160];
};

/* on_conflict = next-free moved the forward wanted at bind:want to got. */
struct remap {
	char bind[RC_ADDR_MAX];
	uint16_t want, got;
};

struct cont {
	struct rdhpf_container c; /* id, name, image, labels, ports */
	uint64_t seq;
	/* In host.conts only (a pending event's copy has none of these). */
	struct hnode node; /* host.cont_ids */
	size_t at;         /* index in host.conts */
	uint64_t listed;   /* the host.list_gen of the last list that had it */
};

struct pending_event {
	int type;
	struct cont c;
};

/* One asynchronous call into a plugin; its arg.  Kept on a list so a host
 * torn down with calls outstanding frees them. */
enum op_kind { OP_TP = 1, OP_RT_LIST };

struct op {
	struct host *h;
	uint64_t gen;
	uint64_t fwd_id;
	int kind; /* whose call: tp_disconnect / rt_stop drop them (slots.c) */
	struct op *next;
	struct op **pprev; /* &previous->next or &host.ops: unlinked in O(1) */
};

struct host {
	char *name;
	struct cfg_host *cfg; /* our own copy: a reload replaces the daemon's */
	const struct plugin *tp, *rp;
	struct rdhpf_ctx *tctx, *rctx;
	struct rdhpf_host_params *tparams, *rparams;
	struct pinst *tpi, *rpi; /* the plugin instances (slots.h) */

	enum host_state state;
	uint64_t gen; /* bumped on every link change; stale callbacks ignore */
	int listing;  /* list() outstanding: buffer events */
	int watching;
	int down_pending;
	int down_status;
	char down_detail[256];

	struct backoff bo;      /* link */
	struct backoff sync_bo; /* event stream, link fine */
	struct breaker br;
	uint64_t rng;

	uv_timer_t t_retry;    /* backoff / breaker / resync */
	uv_timer_t t_watchdog; /* connect timeout */
	uv_timer_t t_health;
	uv_timer_t t_fwd;         /* retry conflicted / failed forwards */
	uv_timer_t t_down;        /* deferred link failure */
	uv_timer_t t_reconcile;   /* deferred reconcile */
	uv_timer_t t_relist;      /* deferred list after a runtime lost an event */
	uv_timer_t t_established; /* watch started: on_established due within connect_timeout */
	uv_timer_t t_poll;        /* poll-only runtime: next list */
	int established;          /* the runtime confirmed its event stream */
	int polling;              /* poll-only runtime: listed every poll_interval */
	int relist_again;         /* lost one while a list ran: list once more */
	char relist_reason[128];
	struct tcp_probe *probe; /* while down: the TCP port watched */
	uint64_t last_try_ms;    /* the last handshake started */
	int health_in_flight;
	uint64_t health_started_ms;

	/* Containers and forwards are indexed so that an event costs the
	 * same whatever their number (issue 13): no scan of either on the
	 * event path. */
	struct cont **conts;
	size_t n_conts, cap_conts;
	struct hmap cont_ids;
	uint64_t list_gen;
	uint64_t seq;
	struct pending_event *pend;
	size_t n_pend;

	struct fwd **fwds;
	size_t n_fwds, cap_fwds;
	struct hmap fwd_keys, fwd_ids;
	size_t n_active; /* forwards in FWD_ACTIVE */
	uint64_t next_fwd_id;
	/* The desired forwards and the skips, kept up to date per event. */
	struct rcs *rcs;
	struct rc_policy pol; /* rcs's: from cfg, which a host never changes */
	struct rc_port_map *pol_map;
	struct remap *remaps; /* on_conflict = next-free: ports moved */
	size_t n_remaps;

	struct op *ops;
	struct engine_sock *engine; /* engine_socket = yes */
	char *rundir;

	/* figures */
	uint64_t connects, reconnects, link_failures, events, resyncs;
	/* event stream diagnostics */
	uint64_t stream_starts;
	uint64_t stream_started_ms;
	uint64_t first_event_after_ms; /* of the current stream; 0 none yet */
	uint64_t last_event_ms;
	uint64_t last_stream_ms; /* duration of the last ended stream */
	int last_stream_clean;
	int last_stream_ended;
	uint32_t stream_failures; /* consecutive */
	uint64_t health_ok, health_failed;
	uint64_t last_health_took_ms;
	uint64_t connected_since_ms, down_since_ms;
	char last_error[256];
	int closing_handles;
};

#define ENDED_MAX 100

/* The last forwards that ended, across hosts, for status. */
struct ended {
	char host[64];
	struct rc_forward f;
	char reason[64];
	int64_t wall_ms;
};
static struct ended g_ended[ENDED_MAX];
static size_t g_ended_next, g_ended_n;

static void try_connect(struct host *h);
static void probe_update(struct host *h, int status);
static void start_sync(struct host *h);
static void link_failed(struct host *h, int status, const char *detail);
static void reconcile_apply(struct host *h);
static struct rcs *host_rcs(struct host *h);

const char *
host_state_name(enum host_state s)
{
	switch (s) {
	case HOST_IDLE:
		return "idle";
	case HOST_CONNECTING:
		return "connecting";
	case HOST_SYNCING:
		return "syncing";
	case HOST_STEADY:
		return "steady";
	case HOST_BACKOFF:
		return "backoff";
	case HOST_BREAKER_OPEN:
		return "breaker-open";
	case HOST_STOPPED:
		return "stopped";
	case HOST_FAILED:
		return "failed";
	}
	return "?";
}

static uint64_t
now_ms(void)
{
	return uv_hrtime() / 1000000u;
}

static double
rnd(struct host *h)
{
	/* xorshift64*: jitter only, not security. */
	h->rng ^= h->rng >> 12;
	h->rng ^= h->rng << 25;
	h->rng ^= h->rng >> 27;
	return (double)((h->rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static void
hlog(struct host *h, int level, const char *msg, ...)
{
	va_list ap;

	va_start(ap, msg);
	log_vkv(level, h->name, NULL, msg, ap);
	va_end(ap);
}

static const char *
status_name(int st)
{
	switch (st) {
	case RDHPF_OK:
		return "ok";
	case RDHPF_ERR_NOMEM:
		return "out of memory";
	case RDHPF_ERR_INVAL:
		return "invalid";
	case RDHPF_ERR_ABI:
		return "abi mismatch";
	case RDHPF_ERR_IO:
		return "i/o error";
	case RDHPF_ERR_TIMEOUT:
		return "timeout";
	case RDHPF_ERR_CONNECT:
		return "cannot connect";
	case RDHPF_ERR_HOSTKEY:
		return "host key mismatch";
	case RDHPF_ERR_AUTH:
		return "authentication failed";
	case RDHPF_ERR_CLOSED:
		return "closed";
	case RDHPF_ERR_ADDRINUSE:
		return "address in use";
	case RDHPF_ERR_REMOTE:
		return "remote error";
	case RDHPF_ERR_PROTO:
		return "protocol error";
	case RDHPF_ERR_UNSUPPORTED:
		return "unsupported";
	case RDHPF_ERR_BUSY:
		return "busy";
	case RDHPF_ERR_CANCELLED:
		return "cancelled";
	case RDHPF_ERR_NOTCONN:
		return "not connected";
	default:
		return "error";
	}
}

static void
set_state(struct host *h, enum host_state s)
{
	if (h->state == s)
		return;
	hlog(h, RDHPF_LOG_DEBUG, "state", "from", host_state_name(h->state), "to",
	     host_state_name(s), NULL);
	events_host(h->name, host_state_name(h->state), host_state_name(s),
	            s == HOST_BACKOFF || s == HOST_BREAKER_OPEN || s == HOST_FAILED ? h->last_error
	                                                                            : NULL);
	h->state = s;
	metrics_gauge_set(h->name, h->tp->info->name, "host_state", (double)s);
}

/* ---- ops ---- */

static struct op *
op_new(struct host *h, int kind, uint64_t fwd_id)
{
	struct op *o = xcalloc(1, sizeof *o);

	o->h = h;
	o->gen = h->gen;
	o->kind = kind;
	o->fwd_id = fwd_id;
	o->next = h->ops;
	o->pprev = &h->ops;
	if (h->ops != NULL)
		h->ops->pprev = &o->next;
	h->ops = o;
	return o;
}

/* Unlink and free; returns whether the op is still current. */
static int
op_done(struct op *o)
{
	struct host *h = o->h;
	int current = o->gen == h->gen;

	*o->pprev = o->next;
	if (o->next != NULL)
		o->next->pprev = o->pprev;
	free(o);
	return current;
}

/* Free the ops of calls that tp_disconnect (OP_TP) or rt_stop (OP_RT_LIST)
 * just dropped: the wrapper guarantees no callback follows, so each would
 * otherwise stay on the list until the host is freed (one per link
 * failure). */
static void
ops_forget(struct host *h, int kind)
{
	struct op *o = h->ops, *next;

	for (; o != NULL; o = next) {
		next = o->next;
		if (o->kind == kind)
			(void)op_done(o);
	}
}

/* ---- containers ---- */

static void
cont_clear(struct cont *c)
{
	container_clear(&c->c);
	c->seq = 0;
}

static void
cont_copy(struct cont *dst, const struct rdhpf_container *src, uint64_t seq)
{
	if (container_copy(&dst->c, src) != 0) {
		fprintf(stderr, "rdhpf: out of memory\n");
		abort();
	}
	dst->seq = seq;
}

static struct cont *
cont_find(struct host *h, const char *id)
{
	for (struct hnode *n = hmap_first(&h->cont_ids, hash_str(id)); n; n = hmap_next(n)) {
		struct cont *c = HMAP_ENTRY(n, struct cont, node);
		if (strcmp(c->c.id, id) == 0)
			return c;
	}
	return NULL;
}

/* A new entry in the set, filled by cont_copy; cont_index links it. */
static struct cont *
cont_new(struct host *h)
{
	struct cont *c = xcalloc(1, sizeof *c);

	h->conts = xgrow(h->conts, h->n_conts, &h->cap_conts, sizeof *h->conts);
	c->at = h->n_conts;
	h->conts[h->n_conts++] = c;
	return c;
}

/* Out of the set and freed; the last entry takes its place. */
static void
cont_del(struct host *h, struct cont *c)
{
	hmap_remove(&h->cont_ids, &c->node);
	h->conts[c->at] = h->conts[--h->n_conts];
	h->conts[c->at]->at = c->at;
	cont_clear(c);
	free(c);
}

static void
conts_clear(struct host *h)
{
	for (size_t i = 0; i < h->n_conts; i++) {
		cont_clear(h->conts[i]);
		free(h->conts[i]);
	}
	free(h->conts);
	h->conts = NULL;
	h->n_conts = h->cap_conts = 0;
	hmap_clear(&h->cont_ids);
}

static void
pend_clear(struct host *h)
{
	for (size_t i = 0; i < h->n_pend; i++)
		cont_clear(&h->pend[i].c);
	free(h->pend);
	h->pend = NULL;
	h->n_pend = 0;
}

/* The incremental reconciler learns the container as the set holds it. */
static void
cont_tell(struct host *h, const struct cont *k)
{
	struct rc_container rc = {&k->c, k->seq};
	/* Rules with image= / label= match what the runtime reported. */
	struct rc_meta meta = {k->c.image, k->c.labels, k->c.n_labels};

	rcs_upsert(host_rcs(h), &rc, &meta);
}

static void
log_not_tcp(struct host *h, const struct rdhpf_container *c)
{
	for (size_t i = 0; i < c->n_ports; i++) {
		char pb[24];
		if (c->ports[i].proto == RDHPF_PROTO_TCP)
			continue;
		snprintf(pb, sizeof pb, "%u/%s", c->ports[i].host_port,
		         c->ports[i].proto == RDHPF_PROTO_UDP ? "udp" : "sctp");
		hlog(h, RDHPF_LOG_INFO, "port not forwarded: SSH forwards carry TCP only",
		     "container", c->name, "port", pb, NULL);
	}
}

/* Apply one event to the container set and tell the reconciler (which
 * acts on the next reconcile_apply).  listed: a list repeats it; if the
 * set holds it already, it is known: its skipped ports were logged when it
 * came, and it keeps its seq, so that a list (every poll_interval for a
 * poll-only runtime) never moves a port's owner. */
static void
apply_event_q(struct host *h, int type, const struct rdhpf_container *c, bool listed)
{
	struct cont *old;
	bool known;

	if (c == NULL || c->id == NULL || c->id[0] == '\0')
		return;
	old = cont_find(h, c->id);
	known = listed && old != NULL;
	if (type == RDHPF_EV_START) {
		uint64_t seq = known ? old->seq : ++h->seq;
		bool fresh = old == NULL;
		if (!known)
			log_not_tcp(h, c);
		if (fresh)
			old = cont_new(h);
		else
			cont_clear(old); /* same id: stays linked */
		cont_copy(old, c, seq);
		if (fresh)
			hmap_insert(&h->cont_ids, &old->node, hash_str(old->c.id));
		old->listed = h->list_gen;
		if (!known && h->cfg->labels && c->n_labels > 0) {
			struct labels_policy lp;
			/* Only the bad labels are lost; the rest of the
			 * container's ports go on (status: label_errors). */
			if (labels_parse(c->labels, c->n_labels, &lp) > 0)
				hlog(h, RDHPF_LOG_WARN, "container labels ignored", "container",
				     c->name, "err", lp.err, NULL);
		}
		cont_tell(h, old);
	} else if (type == RDHPF_EV_STOP && old != NULL) {
		rcs_remove(host_rcs(h), old->c.id);
		cont_del(h, old);
	}
}

/* After a list: the containers it did not have have stopped. */
static void
conts_sweep(struct host *h)
{
	for (size_t i = 0; i < h->n_conts;) {
		struct cont *k = h->conts[i];
		if (k->listed == h->list_gen) {
			i++;
			continue;
		}
		rcs_remove(host_rcs(h), k->c.id);
		cont_del(h, k); /* the last one moves to i */
	}
}

static void
apply_event(struct host *h, int type, const struct rdhpf_container *c)
{
	apply_event_q(h, type, c, false);
}

/* ---- forwards ---- */

/* Ids are handed out in sequence: they are their own hash. */
static struct fwd *
fwd_by_id(const struct host *h, uint64_t id)
{
	for (struct hnode *n = hmap_first(&h->fwd_ids, id); n; n = hmap_next(n)) {
		struct fwd *w = HMAP_ENTRY(n, struct fwd, by_id);
		if (w->id == id)
			return w;
	}
	return NULL;
}

static struct fwd *
fwd_by_key(const struct host *h, const char *bind, uint16_t port)
{
	for (struct hnode *n = hmap_first(&h->fwd_keys, hash_addr_port(bind, port)); n;
	     n = hmap_next(n)) {
		struct fwd *w = HMAP_ENTRY(n, struct fwd, by_key);
		if (w->f.local_port == port && strcmp(w->f.bind, bind) == 0)
			return w;
	}
	return NULL;
}

static struct fwd *
fwd_new(struct host *h, const struct rc_forward *f)
{
	struct fwd *w = xcalloc(1, sizeof *w);

	w->id = ++h->next_fwd_id;
	w->f = *f;
	w->state = FWD_PENDING;
	w->since_ms = now_ms();
	h->fwds = xgrow(h->fwds, h->n_fwds, &h->cap_fwds, sizeof *h->fwds);
	w->at = h->n_fwds;
	h->fwds[h->n_fwds++] = w;
	hmap_insert(&h->fwd_keys, &w->by_key, hash_addr_port(f->bind, f->local_port));
	hmap_insert(&h->fwd_ids, &w->by_id, w->id);
	return w;
}

/* The forward moves to another local port (on_conflict = next-free). */
static void
fwd_rekey(struct host *h, struct fwd *w, uint16_t port)
{
	hmap_remove(&h->fwd_keys, &w->by_key);
	w->f.local_port = port;
	hmap_insert(&h->fwd_keys, &w->by_key, hash_addr_port(w->f.bind, port));
}

/* Every state change goes through here: host_active_forwards is a count
 * kept up to date, not a scan. */
static void
fwd_state_set(struct host *h, struct fwd *w, enum fwd_state st)
{
	h->n_active += (st == FWD_ACTIVE) - (w->state == FWD_ACTIVE);
	w->state = st;
}

/* Out of the host and freed; the last forward takes its place. */
static void
fwd_free(struct host *h, struct fwd *w)
{
	fwd_state_set(h, w, FWD_PENDING);
	hmap_remove(&h->fwd_keys, &w->by_key);
	hmap_remove(&h->fwd_ids, &w->by_id);
	h->fwds[w->at] = h->fwds[--h->n_fwds];
	h->fwds[w->at]->at = w->at;
	free(w);
}

static void
fwds_clear(struct host *h)
{
	for (size_t i = 0; i < h->n_fwds; i++)
		free(h->fwds[i]);
	free(h->fwds);
	h->fwds = NULL;
	h->n_fwds = h->cap_fwds = 0;
	h->n_active = 0;
	hmap_clear(&h->fwd_keys);
	hmap_clear(&h->fwd_ids);
}

static void
fwd_to_plugin(const struct fwd *w, struct rdhpf_forward *pf)
{
	pf->bind_address = w->f.bind;
	pf->local_port = w->f.local_port;
	pf->remote_host = w->f.remote_host;
	pf->remote_port = w->f.remote_port;
}

static void
fwd_log(struct host *h, int level, const char *msg, const struct fwd *w, const char *err)
{
	char local[16], remote[16];

	snprintf(local, sizeof local, "%u", w->f.local_port);
	snprintf(remote, sizeof remote, "%u", w->f.remote_port);
	hlog(h, level, msg, "bind", w->f.bind, "local_port", local, "remote_host", w->f.remote_host,
	     "remote_port", remote, "container", w->f.container_name, "container_id",
	     w->f.container_id, "err", err, NULL);
}

static void
count_active(struct host *h)
{
	metrics_gauge_set(h->name, h->tp->info->name, "forwards_active", (double)h->n_active);
}

static void fwd_retry_cb(uv_timer_t *t);

static void
fwd_retry_arm(struct host *h)
{
	if (h->state != HOST_STOPPED && !uv_is_active((uv_handle_t *)&h->t_fwd))
		uv_timer_start(&h->t_fwd, fwd_retry_cb, FWD_RETRY_MS, FWD_RETRY_MS);
}

/* ---- conflicts across hosts ---- */

/* Every live host, so that a forward refused with "address in use" can
 * name the host of this daemon that holds the port, and next-free can
 * steer clear of ports other hosts hold. */
static struct host **g_hosts;
static size_t g_n_hosts;

static void
hosts_add(struct host *h)
{
	g_hosts = xrealloc(g_hosts, (g_n_hosts + 1) * sizeof *g_hosts);
	g_hosts[g_n_hosts++] = h;
}

static void
hosts_del(struct host *h)
{
	for (size_t i = 0; i < g_n_hosts; i++)
		if (g_hosts[i] == h) {
			g_hosts[i] = g_hosts[--g_n_hosts];
			break;
		}
	if (g_n_hosts == 0) {
		free(g_hosts);
		g_hosts = NULL;
	}
}

/* The forward of another host that holds (or is binding) bind:port. */
static const struct fwd *
held_by(const struct host *self, const char *addr, uint16_t port, const struct host **holder)
{
	for (size_t i = 0; i < g_n_hosts; i++) {
		const struct host *o = g_hosts[i];
		const struct fwd *w = o != self ? fwd_by_key(o, addr, port) : NULL;
		if (w != NULL && (w->state == FWD_ACTIVE || w->in_flight)) {
			*holder = o;
			return w;
		}
	}
	return NULL;
}

/* No forward of any host uses bind:port, and the kernel lets us bind it
 * now (a probe: the transport binds for real a moment later). */
static bool
port_free(const char *addr, uint16_t port)
{
	struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(port)};
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
	struct sockaddr *sa;
	socklen_t len;
	int fd, one = 1, ok;

	for (size_t i = 0; i < g_n_hosts; i++)
		if (fwd_by_key(g_hosts[i], addr, port) != NULL)
			return false;
	if (inet_pton(AF_INET, addr, &a4.sin_addr) == 1) {
		sa = (struct sockaddr *)&a4;
		len = sizeof a4;
	} else if (inet_pton(AF_INET6, addr, &a6.sin6_addr) == 1) {
		sa = (struct sockaddr *)&a6;
		len = sizeof a6;
	} else
		return false;
	if ((fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return false;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	ok = bind(fd, sa, len) == 0;
	close(fd);
	return ok;
}

#define NEXT_FREE_TRIES 100

static void fwd_retry_cb(uv_timer_t *t);

/* A forward refused with "address in use": say who holds the port; with
 * on_conflict = next-free, move it to the next free port instead and retry
 * at once (from the loop: this runs inside the transport's callback).
 * Returns true when it moved. */
static bool
on_port_taken(struct host *h, struct fwd *w)
{
	const struct host *ho = NULL;
	const struct fwd *hw = held_by(h, w->f.bind, w->f.local_port, &ho);
	char want[16], got[16];

	if (hw != NULL)
		snprintf(w->err, sizeof w->err,
		         "address in use: held by host %.40s (container %.60s)", ho->name,
		         hw->f.container_name);
	if (!h->cfg->on_conflict_next_free)
		return false;
	for (uint32_t p = (uint32_t)w->f.local_port + 1;
	     p <= 65535 && p <= (uint32_t)w->f.local_port + NEXT_FREE_TRIES; p++) {
		struct remap *m = NULL;
		if (!port_free(w->f.bind, (uint16_t)p))
			continue;
		for (size_t i = 0; i < h->n_remaps && m == NULL; i++)
			if (h->remaps[i].got == w->f.local_port &&
			    strcmp(h->remaps[i].bind, w->f.bind) == 0)
				m = &h->remaps[i]; /* moved before: move again */
		if (m == NULL) {
			h->remaps = xrealloc(h->remaps, (h->n_remaps + 1) * sizeof *h->remaps);
			m = &h->remaps[h->n_remaps++];
			str_copy(m->bind, w->f.bind, sizeof m->bind);
			m->want = w->f.local_port;
		}
		m->got = (uint16_t)p;
		snprintf(want, sizeof want, "%u", m->want);
		snprintf(got, sizeof got, "%u", m->got);
		hlog(h, RDHPF_LOG_INFO,
		     "local port taken; forward moved to the next free port (on_conflict = "
		     "next-free)",
		     "bind", w->f.bind, "wanted_port", want, "local_port", got, "container",
		     w->f.container_name, "held_by", ho != NULL ? ho->name : NULL, NULL);
		fwd_rekey(h, w, m->got);
		fwd_state_set(h, w, FWD_PENDING);
		w->err[0] = '\0';
		uv_timer_start(&h->t_fwd, fwd_retry_cb, 0, FWD_RETRY_MS);
		return true;
	}
	return false;
}

/* The next-free move of the forward that wants bind:want, or NULL.  A
 * scan, but of the moves only: forwards whose port was taken locally. */
static struct remap *
remap_by_want(const struct host *h, const char *bind, uint16_t want)
{
	for (size_t i = 0; i < h->n_remaps; i++)
		if (h->remaps[i].want == want && strcmp(h->remaps[i].bind, bind) == 0)
			return &h->remaps[i];
	return NULL;
}

static void
remap_forget(struct host *h, struct remap *m)
{
	*m = h->remaps[--h->n_remaps];
}

/* The port a moved forward wanted, or 0. */
static uint16_t
remap_wanted(const struct host *h, const struct rc_forward *f)
{
	for (size_t i = 0; i < h->n_remaps; i++)
		if (h->remaps[i].got == f->local_port && strcmp(h->remaps[i].bind, f->bind) == 0)
			return h->remaps[i].want;
	return 0;
}

static void
on_add_done(void *arg, int status, const char *detail)
{
	struct op *o = arg;
	struct host *h = o->h;
	uint64_t id = o->fwd_id;
	int current = op_done(o);
	struct fwd *w = fwd_by_id(h, id);

	if (w == NULL)
		return;
	w->in_flight = 0;
	if (!current)
		return; /* the link changed meanwhile; connect re-adds */
	if (status == RDHPF_OK) {
		if (w->state != FWD_ACTIVE) {
			fwd_state_set(h, w, FWD_ACTIVE);
			w->since_ms = now_ms();
			w->err[0] = '\0';
			metrics_observe(h->name, h->tp->info->name, "forward_add_seconds",
			                (double)(uv_hrtime() - w->add_started_ns) / 1e9);
			fwd_log(h, RDHPF_LOG_INFO, "forward active", w, NULL);
			events_forward(h->name, "active", &w->f, NULL);
		}
	} else if (status == RDHPF_ERR_NOTCONN) {
		fwd_state_set(h, w, FWD_PENDING);
	} else {
		fwd_state_set(h, w, status == RDHPF_ERR_ADDRINUSE ? FWD_CONFLICT : FWD_FAILED);
		w->since_ms = now_ms();
		snprintf(w->err, sizeof w->err, "%s%s%s", status_name(status), detail ? ": " : "",
		         detail ? detail : "");
		if (w->state == FWD_CONFLICT && on_port_taken(h, w)) {
			count_active(h);
			return;
		}
		fwd_log(h, RDHPF_LOG_WARN,
		        w->state == FWD_CONFLICT ? "forward conflict, will retry"
		                                 : "forward failed, will retry",
		        w, w->err);
		events_forward(h->name, w->state == FWD_CONFLICT ? "conflict" : "failed", &w->f,
		               w->err);
		fwd_retry_arm(h);
	}
	count_active(h);
}

static void
issue_add(struct host *h, struct fwd *w)
{
	struct rdhpf_forward pf;
	struct op *o;
	int r;

	if (w->in_flight)
		return;
	fwd_to_plugin(w, &pf);
	o = op_new(h, OP_TP, w->id);
	w->in_flight = 1;
	w->add_started_ns = uv_hrtime();
	r = tp_forward_add(h->tpi, &pf, on_add_done, o);
	if (r != RDHPF_OK) {
		(void)op_done(o);
		w->in_flight = 0;
		fwd_state_set(h, w, r == RDHPF_ERR_ADDRINUSE ? FWD_CONFLICT : FWD_FAILED);
		snprintf(w->err, sizeof w->err, "%s", status_name(r));
		if (w->state == FWD_CONFLICT && on_port_taken(h, w))
			return;
		fwd_log(h, RDHPF_LOG_WARN, "forward add refused, will retry", w, w->err);
		events_forward(h->name, w->state == FWD_CONFLICT ? "conflict" : "failed", &w->f,
		               w->err);
		fwd_retry_arm(h);
	}
}

static void
on_remove_done(void *arg, int status, const char *detail)
{
	struct op *o = arg;
	struct host *h = o->h;

	op_done(o);
	if (status != RDHPF_OK && status != RDHPF_ERR_NOTCONN)
		hlog(h, RDHPF_LOG_WARN, "forward remove failed", "err", status_name(status),
		     "detail", detail, NULL);
}

static int64_t
wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
ended_add(struct host *h, const struct fwd *w, const char *reason)
{
	struct ended *e = &g_ended[g_ended_next];

	snprintf(e->host, sizeof e->host, "%s", h->name);
	e->f = w->f;
	snprintf(e->reason, sizeof e->reason, "%s", reason);
	e->wall_ms = wall_ms();
	g_ended_next = (g_ended_next + 1) % ENDED_MAX;
	if (g_ended_n < ENDED_MAX)
		g_ended_n++;
}

static void
fwd_remove(struct host *h, struct fwd *w, const char *reason)
{
	struct rdhpf_forward pf;

	ended_add(h, w, reason);
	fwd_log(h, RDHPF_LOG_INFO, "forward removed", w, reason);
	events_forward(h->name, "removed", &w->f, reason);
	fwd_to_plugin(w, &pf);
	if (h->tpi != NULL) {
		struct op *o = op_new(h, OP_TP, 0);
		if (tp_forward_remove(h->tpi, &pf, on_remove_done, o) != RDHPF_OK)
			(void)op_done(o);
	}
	fwd_free(h, w);
}

static int
link_up(const struct host *h)
{
	return h->state == HOST_SYNCING || h->state == HOST_STEADY;
}

/* Why the forward of the key bind:want goes (asked after the flush, so
 * the reconciler's owner is the new one). */
static const char *
remove_reason(struct host *h, const struct fwd *w, uint16_t want)
{
	const struct rc_forward *owner;

	if (cont_find(h, w->f.container_id) == NULL)
		return "container stopped";
	owner = rcs_owner(h->rcs, w->f.bind, want);
	if (owner != NULL && strcmp(owner->container_id, w->f.container_id) != 0)
		return "port taken by another container";
	return "port no longer published";
}

/* Whether ::1 can be bound here (a kernel booted with ipv6.disable=1, a
 * container without IPv6 loopback).  Asked once; without it localhost means
 * 127.0.0.1 alone, said in one info line rather than an error per forward. */
static int
no_ipv6_loopback(void)
{
	static int known = 0, missing = 0;
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	int fd;

	if (known)
		return missing;
	known = 1;
	fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	missing = fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0;
	if (fd >= 0)
		close(fd);
	if (missing)
		log_kv(RDHPF_LOG_INFO, NULL, NULL,
		       "no IPv6 loopback (::1) on this machine: localhost forwards bind 127.0.0.1 "
		       "only",
		       NULL);
	return missing;
}

/* The lowest local port this process may bind: 0 with CAP_NET_BIND_SERVICE
 * (root has it), else Linux's net.ipv4.ip_unprivileged_port_start (1024
 * unless changed).  Asked once: neither changes under a running daemon in
 * practice, and a forward that cannot bind must not become a retry loop. */
static uint16_t
unpriv_port_start(void)
{
	static int known = 0;
	static uint16_t start = 1024;
	char line[256];
	FILE *f;

	if (known)
		return start;
	known = 1;
	if ((f = fopen("/proc/self/status", "re")) != NULL) {
		while (fgets(line, sizeof line, f) != NULL) {
			unsigned long long caps;
			if (sscanf(line, "CapEff: %llx", &caps) == 1) {
				if (caps & (1ULL << 10)) /* CAP_NET_BIND_SERVICE */
					start = 0;
				break;
			}
		}
		fclose(f);
	}
	if (start != 0 &&
	    (f = fopen("/proc/sys/net/ipv4/ip_unprivileged_port_start", "re")) != NULL) {
		unsigned v;
		if (fscanf(f, "%u", &v) == 1)
			start = v > 65535 ? 65535 : (uint16_t)v;
		fclose(f);
	}
	return start;
}

/* "FILE:LINE" of the rule written at line, or "" when none did. */
static void
rule_where(const struct host *h, int line, char *buf, size_t len)
{
	buf[0] = '\0';
	if (line == 0)
		return;
	for (size_t i = 0; i < h->cfg->n_rules; i++)
		if (h->cfg->rules[i].line == line) {
			snprintf(buf, len, "%s:%d",
			         h->cfg->rules[i].file ? h->cfg->rules[i].file : "-", line);
			return;
		}
}

static const char *
proto_name(int p)
{
	return p == RDHPF_PROTO_UDP ? "udp" : p == RDHPF_PROTO_SCTP ? "sctp" : "tcp";
}

/* Log the skips that appeared (rcs_flush says which), each once, so a
 * reconcile per event does not repeat them. */
static void
skips_log(struct host *h, const struct rc_skip *skips, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct rc_skip *s = &skips[i];
		char port[16], local[16], rule[512];

		snprintf(port, sizeof port, "%u", s->remote_port);
		snprintf(local, sizeof local, "%u", s->local_port);
		rule_where(h, s->rule_line, rule, sizeof rule);
		hlog(h,
		     s->why == RC_SKIP_RANGE || s->why == RC_SKIP_PRIVILEGED ||
		             s->why == RC_SKIP_HOSTIP
		         ? RDHPF_LOG_WARN
		         : RDHPF_LOG_INFO,
		     "port not forwarded", "container", s->container_name, "remote_port", port,
		     "proto", proto_name(s->proto), "reason", rc_skip_reason(s), "host_ip",
		     s->why == RC_SKIP_HOSTIP ? s->remote_host : NULL, "bind",
		     s->bind[0] ? s->bind : NULL, "local_port", s->local_port ? local : NULL,
		     "rule", rule[0] ? rule : NULL, "holder", s->holder[0] ? s->holder : NULL,
		     "label", s->label[0] ? s->label : NULL, NULL);
		if (events_subscribers() > 0) {
			struct rc_forward f;
			char why[700];
			memset(&f, 0, sizeof f);
			snprintf(f.bind, sizeof f.bind, "%s", s->bind);
			f.local_port = s->local_port;
			snprintf(f.remote_host, sizeof f.remote_host, "%s", s->remote_host);
			f.remote_port = s->remote_port;
			snprintf(f.container_id, sizeof f.container_id, "%s", s->container_id);
			snprintf(f.container_name, sizeof f.container_name, "%s",
			         s->container_name);
			snprintf(why, sizeof why, "%s%s%s%s%s", rc_skip_reason(s),
			         rule[0] ? " (rule " : "", rule, rule[0] ? ")" : "",
			         s->label[0] ? " (label)" : "");
			events_forward(h->name, "skipped", &f, why);
		}
	}
}

/* The reconciler's state, made on first use: the policy asks the kernel
 * (no_ipv6_loopback, unpriv_port_start) once. */
static struct rcs *
host_rcs(struct host *h)
{
	struct rc_policy *pol = &h->pol;

	if (h->rcs != NULL)
		return h->rcs;
	memset(pol, 0, sizeof *pol);
	pol->bind = h->cfg->bind_address;
	pol->no_ipv6_loopback = no_ipv6_loopback();
	pol->unpriv_port_start = unpriv_port_start();
	pol->privileged_skip = h->cfg->privileged_skip;
	pol->privileged_offset = h->cfg->privileged_offset;
	pol->port_offset = h->cfg->port_offset;
	h->pol_map = xcalloc(h->cfg->n_port_map ? h->cfg->n_port_map : 1, sizeof *h->pol_map);
	for (size_t i = 0; i < h->cfg->n_port_map; i++) {
		h->pol_map[i].remote_port = h->cfg->port_map[i].remote;
		h->pol_map[i].local_port = h->cfg->port_map[i].local;
	}
	pol->map = h->pol_map;
	pol->n_map = h->cfg->n_port_map;
	pol->rules = h->cfg->rules;
	pol->n_rules = h->cfg->n_rules;
	pol->labels = h->cfg->labels;
	h->rcs = rcs_new(pol);
	return h->rcs;
}

static void
fwd_add(struct host *h, const struct rc_forward *f)
{
	struct fwd *w = fwd_new(h, f);

	events_forward(h->name, "added", &w->f, NULL);
	if (link_up(h))
		issue_add(h, w);
}

/* The forward at w's key is now f's (same target): no transport call. */
static void
fwd_retag(struct host *h, struct fwd *w, const struct rc_forward *f)
{
	w->f = *f;
	fwd_log(h, RDHPF_LOG_INFO, "forward changed owner", w, NULL);
}

static void reconcile_soon(struct host *h);

/* A forward moved by next-free holds the port a container now claims as
 * its own: the claim wins and the moved forward goes, but its container
 * still owns the key it wanted: the reconciler counts that key
 * uninstalled, so the next pass adds it again (and next-free moves it to
 * another free port while its own is still taken). */
static void
fwd_displace(struct host *h, struct fwd *w)
{
	uint16_t want = remap_wanted(h, &w->f);
	struct remap *m = remap_by_want(h, w->f.bind, want);
	char bind[RC_ADDR_MAX];

	snprintf(bind, sizeof bind, "%s", w->f.bind);
	if (m != NULL)
		remap_forget(h, m);
	fwd_remove(h, w, "port taken by another container");
	if (want != 0) {
		rcs_uninstall(h->rcs, bind, want);
		reconcile_soon(h);
	}
}

/* One action of the reconciler, whose keys are the wanted ports: a
 * forward moved by next-free is found at the port it got. */
static void
action_apply(struct host *h, const struct rc_action *a)
{
	struct rc_forward f = a->fwd;
	uint16_t want = f.local_port;
	struct remap *m = remap_by_want(h, f.bind, want);
	struct fwd *w;

	if (m != NULL)
		f.local_port = m->got;
	w = fwd_by_key(h, f.bind, f.local_port);
	switch (a->type) {
	case RC_REMOVE:
		/* Only the forward the reconciler installed there. */
		if (w != NULL && strcmp(w->f.container_id, f.container_id) == 0)
			fwd_remove(h, w, remove_reason(h, w, want));
		/* A move is forgotten with the last claim on its port. */
		if (m != NULL && rcs_owner(h->rcs, f.bind, want) == NULL)
			remap_forget(h, m);
		break;
	case RC_ADD:
		if (w != NULL)
			fwd_displace(h, w);
		fwd_add(h, &f);
		break;
	case RC_RETAG:
		if (w != NULL)
			fwd_retag(h, w, &f);
		break;
	}
}

/* Settle what the events since the last call changed: O(the keys they
 * touched), not O(the host's forwards). */
static void
reconcile_apply(struct host *h)
{
	struct rc_action *acts;
	struct rc_skip *fresh;
	size_t n, n_fresh;

	rcs_flush(host_rcs(h), &acts, &n, &fresh, &n_fresh);
	for (size_t i = 0; i < n; i++)
		action_apply(h, &acts[i]);
	skips_log(h, fresh, n_fresh);
	count_active(h);
	free(acts);
	free(fresh);
}

static void
reconcile_cb(uv_timer_t *t)
{
	struct host *h = t->data;

	if (h->state != HOST_STOPPED)
		reconcile_apply(h);
}

/* Runtime callbacks arrive inside the transport's own frames (a stream's
 * on_data): reconcile from the loop instead, so that forward_add never
 * re-enters the transport from its own callback.  Costs one loop turn. */
static void
reconcile_soon(struct host *h)
{
	if (!uv_is_active((uv_handle_t *)&h->t_reconcile))
		uv_timer_start(&h->t_reconcile, reconcile_cb, 0, 0);
}

static void
fwd_retry_cb(uv_timer_t *t)
{
	struct host *h = t->data;
	size_t waiting = 0;

	for (size_t i = 0; i < h->n_fwds; i++) {
		struct fwd *w = h->fwds[i];
		if (w->state == FWD_CONFLICT || w->state == FWD_FAILED || w->state == FWD_PENDING) {
			waiting++;
			if (link_up(h))
				issue_add(h, w);
		}
	}
	/* Idle hosts get no wakeups from here: the timer runs only while a
	 * forward waits. */
	if (waiting == 0)
		uv_timer_stop(&h->t_fwd);
}

/* ---- runtime ---- */

static void
stream_ended(struct host *h, int clean)
{
	if (!h->watching)
		return;
	h->last_stream_ms = now_ms() - h->stream_started_ms;
	h->last_stream_clean = clean;
	h->last_stream_ended = 1;
}

static void
runtime_stop(struct host *h)
{
	if (h->rpi != NULL) {
		rt_stop(h->rpi);
		ops_forget(h, OP_RT_LIST);
	}
	h->watching = 0;
	h->established = 0;
	h->polling = 0;
	h->listing = 0;
	h->relist_again = 0;
	uv_timer_stop(&h->t_relist);
	uv_timer_stop(&h->t_established);
	uv_timer_stop(&h->t_poll);
	pend_clear(h);
}

static void
on_event(void *arg, int type, int64_t time_ns, struct rdhpf_container *c)
{
	struct host *h = arg;

	if (!h->watching || c == NULL)
		return;
	h->events++;
	h->last_event_ms = now_ms();
	/* How late the runtime hands events over (remote clock; a skew beyond
	 * a minute either way says nothing about lateness). */
	if (time_ns > 0) {
		int64_t lag = core_host_api.wall_ns(NULL) - time_ns;
		if (lag >= 0 && lag < (int64_t)60 * 1000000000)
			metrics_observe(h->name, h->rp->info->name, "event_remote_lag_seconds",
			                (double)lag / 1e9);
	}
	if (h->first_event_after_ms == 0)
		h->first_event_after_ms = h->last_event_ms - h->stream_started_ms + 1;
	metrics_counter_add(h->name, h->rp->info->name, "events_total", 1);
	/* Until the list that follows on_established is in, events wait. */
	if (h->listing || !h->established) {
		h->pend = xrealloc(h->pend, (h->n_pend + 1) * sizeof *h->pend);
		h->pend[h->n_pend].type = type;
		cont_copy(&h->pend[h->n_pend].c, c, 0);
		h->n_pend++;
		return;
	}
	apply_event(h, type, c);
	reconcile_soon(h);
}

static void sync_retry_cb(uv_timer_t *t);
static void relist_cb(uv_timer_t *t);
static void list_start(struct host *h);

static void
sync_failed(struct host *h, int status, const char *detail)
{
	uint64_t delay;
	char d[32];
	int polled = h->polling;

	stream_ended(h, 0);
	h->stream_failures++;
	runtime_stop(h);
	delay = backoff_next(&h->sync_bo, rnd(h));
	snprintf(d, sizeof d, "%llu", (unsigned long long)delay);
	snprintf(h->last_error, sizeof h->last_error, "%s: %s%s%s",
	         polled ? "container list" : "event stream", status_name(status),
	         detail ? ": " : "", detail ? detail : "");
	hlog(h, RDHPF_LOG_WARN,
	     polled ? "listing containers failed, resync after delay"
	            : "event stream failed, resync after delay",
	     "err", status_name(status), "detail", detail, "retry_ms", d, NULL);
	h->resyncs++;
	metrics_counter_add(h->name, h->rp->info->name, "resyncs_total", 1);
	set_state(h, HOST_SYNCING);
	h->t_retry.data = h;
	uv_timer_start(&h->t_retry, sync_retry_cb, delay, 0);
}

static void
on_watch_end(void *arg, int status, const char *detail)
{
	struct host *h = arg;

	if (!h->watching)
		return;
	stream_ended(h, status == RDHPF_OK);
	h->watching = 0;
	sync_failed(h, status == RDHPF_OK ? RDHPF_ERR_CLOSED : status,
	            detail ? detail : "event stream ended");
}

/* The stream is confirmed: list now; events from here on are owed. */
static void
on_established(void *arg)
{
	struct host *h = arg;

	if (!h->watching || h->established)
		return;
	h->established = 1;
	uv_timer_stop(&h->t_established);
	hlog(h, RDHPF_LOG_DEBUG, "event stream established", NULL);
	list_start(h);
}

static void
established_timeout_cb(uv_timer_t *t)
{
	struct host *h = t->data;
	char why[128];

	if (!h->watching || h->established)
		return;
	snprintf(why, sizeof why, "runtime did not confirm its event stream within %llu s",
	         (unsigned long long)((h->cfg->pol.connect_timeout_ms + 999) / 1000));
	/* sync_failed ends the watch (rt_stop) and resyncs. */
	h->watching = 0;
	sync_failed(h, RDHPF_ERR_TIMEOUT, why);
}

static const struct rdhpf_watch_cbs watch_cbs = {
    RDHPF_INIT(rdhpf_watch_cbs),
    .on_established = on_established,
    .on_event = on_event,
    .on_end = on_watch_end,
};

static void
poll_cb(uv_timer_t *t)
{
	struct host *h = t->data;

	if (!h->polling || !link_up(h) || h->listing)
		return;
	list_start(h);
}

static void
on_list_done(void *arg, int status, const char *detail, struct rdhpf_container *const *cs, size_t n)
{
	struct op *o = arg;
	struct host *h = o->h;
	char nb[24];
	int was_steady;

	if (!op_done(o) || !h->listing)
		return;
	h->listing = 0;
	if (status != RDHPF_OK) {
		sync_failed(h, status, detail);
		return;
	}
	/* The list is the truth; events that raced it are applied after it.
	 * The reconciler diffs, so containers that stayed cost no action. */
	h->list_gen++;
	for (size_t i = 0; i < n; i++)
		apply_event_q(h, RDHPF_EV_START, cs[i], true);
	conts_sweep(h);
	for (size_t i = 0; i < h->n_pend; i++)
		apply_event(h, h->pend[i].type, &h->pend[i].c.c);
	pend_clear(h);
	reconcile_soon(h);
	if (h->relist_again) {
		/* An event was lost while this list ran: it may not be in it. */
		h->relist_again = 0;
		uv_timer_start(&h->t_relist, relist_cb, 0, 0);
	}
	backoff_reset(&h->sync_bo);
	backoff_reset(&h->bo);
	breaker_success(&h->br);
	h->stream_failures = 0;
	was_steady = h->state == HOST_STEADY;
	snprintf(nb, sizeof nb, "%zu", n);
	hlog(h, was_steady ? RDHPF_LOG_DEBUG : RDHPF_LOG_INFO, "synced", "containers", nb, NULL);
	set_state(h, HOST_STEADY);
	if (h->polling)
		uv_timer_start(&h->t_poll, poll_cb, h->cfg->pol.poll_interval_ms, 0);
}

/* Ask the runtime for its containers; a refusal counts as a failed sync. */
static void
list_start(struct host *h)
{
	struct op *o;
	int r;

	h->listing = 1;
	o = op_new(h, OP_RT_LIST, 0);
	r = rt_list(h->rpi, on_list_done, o);
	if (r != RDHPF_OK) {
		(void)op_done(o);
		h->listing = 0;
		sync_failed(h, r, "cannot list containers");
	}
}

static void
relist_cb(uv_timer_t *t)
{
	struct host *h = t->data;

	if (!link_up(h))
		return; /* a stream that ended resyncs in full anyway */
	if (!(h->watching && h->established) && !h->polling)
		return;
	if (h->listing) {
		h->relist_again = 1;
		return;
	}
	h->resyncs++;
	metrics_counter_add(h->name, h->rp->info->name, "resyncs_total", 1);
	hlog(h, RDHPF_LOG_INFO, "runtime lost an event; listing containers again", "reason",
	     h->relist_reason, NULL);
	list_start(h);
}

void
host_relist(struct host *h, const char *reason)
{
	if (h == NULL || (!h->watching && !h->polling))
		return;
	snprintf(h->relist_reason, sizeof h->relist_reason, "%s", reason ? reason : "-");
	if (h->listing || !(h->established || h->polling))
		h->relist_again = h->listing;
	else
		uv_timer_start(&h->t_relist, relist_cb, 0, 0);
}

static void
start_sync(struct host *h)
{
	int r;

	runtime_stop(h);
	set_state(h, HOST_SYNCING);
	if (!rt_has_events(h->rpi)) {
		/* Poll-only: the list is all there is, every poll_interval. */
		h->polling = 1;
		list_start(h);
		return;
	}
	h->watching = 1;
	h->established = 0;
	h->stream_starts++;
	h->stream_started_ms = now_ms();
	h->first_event_after_ms = 0;
	r = rt_watch(h->rpi, &watch_cbs, h);
	if (r != RDHPF_OK) {
		h->watching = 0;
		sync_failed(h, r, "cannot start the event stream");
		return;
	}
	/* No list before on_established: events before it are not owed. */
	if (h->watching && !h->established)
		uv_timer_start(&h->t_established, established_timeout_cb,
		               h->cfg->pol.connect_timeout_ms, 0);
}

static void
on_sync_health(void *arg, int status, const char *detail)
{
	struct op *o = arg;
	struct host *h = o->h;

	if (!op_done(o))
		return;
	h->health_in_flight = 0;
	if (status != RDHPF_OK)
		link_failed(h, status, detail ? detail : "health check failed");
	else
		start_sync(h);
}

static void
sync_retry_cb(uv_timer_t *t)
{
	struct host *h = t->data;
	struct op *o;

	if (!link_up(h))
		return;
	/* Is it the engine or the link?  Ask the link first. */
	o = op_new(h, OP_TP, 0);
	h->health_in_flight = 1;
	h->health_started_ms = now_ms();
	if (tp_health(h->tpi, on_sync_health, o) != RDHPF_OK) {
		(void)op_done(o);
		h->health_in_flight = 0;
		link_failed(h, RDHPF_ERR_CLOSED, "health check refused");
	}
}

/* ---- health ---- */

static void
on_health(void *arg, int status, const char *detail)
{
	struct op *o = arg;
	struct host *h = o->h;
	uint64_t took;

	if (!op_done(o))
		return;
	h->health_in_flight = 0;
	took = now_ms() - h->health_started_ms;
	h->last_health_took_ms = took;
	if (status == RDHPF_OK)
		h->health_ok++;
	else
		h->health_failed++;
	metrics_observe(h->name, h->tp->info->name, "health_check_seconds", (double)took / 1000.0);
	if (status != RDHPF_OK)
		link_failed(h, status, detail ? detail : "health check failed");
}

static void
health_cb(uv_timer_t *t)
{
	struct host *h = t->data;
	struct op *o;

	if (h->state != HOST_STEADY)
		return;
	if (h->health_in_flight) {
		if (now_ms() - h->health_started_ms > h->cfg->pol.connect_timeout_ms)
			link_failed(h, RDHPF_ERR_TIMEOUT, "health check did not answer");
		return;
	}
	o = op_new(h, OP_TP, 0);
	h->health_in_flight = 1;
	h->health_started_ms = now_ms();
	if (tp_health(h->tpi, on_health, o) != RDHPF_OK) {
		(void)op_done(o);
		h->health_in_flight = 0;
		link_failed(h, RDHPF_ERR_CLOSED, "health check refused");
	}
}

/* ---- link ---- */

static void
retry_connect_cb(uv_timer_t *t)
{
	try_connect(t->data);
}

static void
probe_stop(struct host *h)
{
	tcp_probe_stop(h->probe);
	h->probe = NULL;
}

static void connect_start(struct host *h);

/* The port was seen closed and now accepts: connect now (or as soon as
 * backoff_initial has passed since the last handshake began).  A connect
 * under way that began before the port was last seen not answering sent
 * its SYN into the void: the kernel resends it only after 1, 3, 7 s
 * (measured: a blackhole lifted during such a connect cost up to
 * connect_timeout before the next try).  Start it again now; the probe
 * fires once per failure, so this adds at most one handshake. */
static void
on_probe_open(void *arg)
{
	struct host *h = arg;
	uint64_t now = now_ms(), since = now - h->last_try_ms, wait = 0;
	uint64_t closed = tcp_probe_closed_ms(h->probe);
	char w[24];

	probe_stop(h);
	if (h->state == HOST_CONNECTING) {
		if (closed < h->last_try_ms)
			return;
		snprintf(w, sizeof w, "%llu", (unsigned long long)since);
		hlog(h, RDHPF_LOG_INFO,
		     "port accepts again while a connect begun before waits: connecting anew",
		     "waited_ms", w, NULL);
		metrics_counter_add(h->name, h->tp->info->name, "reconnect_probe_hits_total", 1);
		uv_timer_stop(&h->t_watchdog);
		/* A failure the old attempt reported and the loop has not run
		 * yet belongs to it, not to the new one. */
		h->down_pending = 0;
		uv_timer_stop(&h->t_down);
		h->gen++; /* the old attempt's completion is stale */
		tp_disconnect(h->tpi);
		ops_forget(h, OP_TP);
		/* The same try again, not a new one: no breaker_allow (a
		 * half-open breaker allows one trial, and this is it). */
		connect_start(h);
		return;
	}
	if (h->state != HOST_BACKOFF && h->state != HOST_BREAKER_OPEN)
		return;
	if (since < h->cfg->pol.backoff_initial_ms)
		wait = h->cfg->pol.backoff_initial_ms - since;
	snprintf(w, sizeof w, "%llu", (unsigned long long)wait);
	hlog(h, RDHPF_LOG_INFO, "port accepts again: connecting", "wait_ms", w, NULL);
	metrics_counter_add(h->name, h->tp->info->name, "reconnect_probe_hits_total", 1);
	breaker_cool(&h->br);
	uv_timer_stop(&h->t_retry);
	h->t_retry.data = h;
	uv_timer_start(&h->t_retry, retry_connect_cb, wait, 0);
}

/* A name under .invalid (RFC 6761) never resolves: no lookup for it (the
 * test configurations use such names with the fake transport). */
static int
name_invalid(const char *host)
{
	size_t n = strlen(host);

	return n >= 8 && strcasecmp(host + n - 8, ".invalid") == 0;
}

/* After a failure: watch the port if the failure was the connection's
 * (its port may be closed now and open later); not after the server
 * answered and refused (authentication, host key, protocol). */
static void
probe_update(struct host *h, int status)
{
	int conn = status == RDHPF_ERR_CONNECT || status == RDHPF_ERR_TIMEOUT ||
	           status == RDHPF_ERR_CLOSED || status == RDHPF_ERR_NOTCONN;

	if (!h->cfg->pol.reconnect_probe || !conn || name_invalid(h->cfg->u.host)) {
		probe_stop(h);
		return;
	}
	if (h->probe == NULL)
		h->probe = tcp_probe_start(core_loop(), h->cfg->u.host,
		                           h->cfg->u.port ? h->cfg->u.port : 22, PROBE_MS,
		                           on_probe_open, h);
}

static void
link_failed(struct host *h, int status, const char *detail)
{
	uint64_t delay, now = now_ms();
	char d[32];
	bool permanent = false;

	if (h->state == HOST_STOPPED || h->state == HOST_BACKOFF || h->state == HOST_BREAKER_OPEN ||
	    h->state == HOST_FAILED)
		return;
	/* A connect refused as invalid: the host's configuration can never
	 * work, and retrying it with backoff forever would only hide that. */
	if (status == RDHPF_ERR_INVAL && h->state == HOST_CONNECTING)
		permanent = true;
	h->gen++;
	h->health_in_flight = 0;
	uv_timer_stop(&h->t_watchdog);
	uv_timer_stop(&h->t_retry);
	stream_ended(h, 0);
	runtime_stop(h);
	tp_disconnect(h->tpi);
	ops_forget(h, OP_TP);
	for (size_t i = 0; i < h->n_fwds; i++) {
		h->fwds[i]->in_flight = 0;
		if (h->fwds[i]->state == FWD_ACTIVE)
			fwd_state_set(h, h->fwds[i], FWD_PENDING);
	}
	count_active(h);
	if (h->connected_since_ms != 0) {
		h->link_failures++;
		h->down_since_ms = now;
		metrics_counter_add(h->name, h->tp->info->name, "disconnects_total", 1);
	}
	h->connected_since_ms = 0;
	snprintf(h->last_error, sizeof h->last_error, "%s%s%s%s", permanent ? "failed: " : "",
	         status_name(status), detail ? ": " : "", detail ? detail : "");
	if (permanent) {
		uv_timer_stop(&h->t_health);
		set_state(h, HOST_FAILED);
		hlog(h, RDHPF_LOG_ERROR,
		     "host failed: its configuration can never work; not retried until it changes "
		     "(fix it, then SIGHUP)",
		     "err", status_name(status), "detail", detail, NULL);
		return;
	}
	breaker_failure(&h->br, now);
	metrics_gauge_set(h->name, h->tp->info->name, "breaker_open", h->br.state == BREAKER_OPEN);
	if (h->br.state == BREAKER_OPEN) {
		delay = breaker_wait_ms(&h->br, now);
		set_state(h, HOST_BREAKER_OPEN);
		snprintf(d, sizeof d, "%llu", (unsigned long long)delay);
		hlog(h, RDHPF_LOG_ERROR, "link down, circuit breaker open", "err",
		     status_name(status), "detail", detail, "retry_ms", d, NULL);
	} else {
		delay = backoff_next(&h->bo, rnd(h));
		set_state(h, HOST_BACKOFF);
		snprintf(d, sizeof d, "%llu", (unsigned long long)delay);
		hlog(h, RDHPF_LOG_WARN, "link down, backing off", "err", status_name(status),
		     "detail", detail, "retry_ms", d, NULL);
	}
	h->t_retry.data = h;
	uv_timer_start(&h->t_retry, retry_connect_cb, delay, 0);
	probe_update(h, status);
}

static void
down_deferred_cb(uv_timer_t *t)
{
	struct host *h = t->data;

	if (!h->down_pending)
		return;
	h->down_pending = 0;
	link_failed(h, h->down_status, h->down_detail);
}

/* Called by the transport (report_down) or from inside plugin callbacks:
 * never re-enter the plugin from its own frame, so defer. */
static void
link_failed_later(struct host *h, int status, const char *detail)
{
	if (h->state == HOST_STOPPED || h->down_pending)
		return;
	h->down_pending = 1;
	h->down_status = status;
	snprintf(h->down_detail, sizeof h->down_detail, "%s", detail ? detail : "link lost");
	uv_timer_start(&h->t_down, down_deferred_cb, 0, 0);
}

static void
on_report_down(void *arg, int status, const char *detail)
{
	struct host *h = arg;

	if (h->state == HOST_CONNECTING || link_up(h))
		link_failed_later(h, status, detail);
}

static void
on_connect_done(void *arg, int status, const char *detail)
{
	struct op *o = arg;
	struct host *h = o->h;
	uint64_t now = now_ms();

	if (!op_done(o) || h->state != HOST_CONNECTING)
		return;
	uv_timer_stop(&h->t_watchdog);
	if (status != RDHPF_OK) {
		link_failed_later(h, status, detail);
		return;
	}
	probe_stop(h);
	h->connects++;
	if (h->down_since_ms != 0) {
		h->reconnects++;
		metrics_observe(h->name, h->tp->info->name, "reconnect_seconds",
		                (double)(now - h->down_since_ms) / 1000.0);
		h->down_since_ms = 0;
	}
	metrics_counter_add(h->name, h->tp->info->name, "connects_total", 1);
	h->connected_since_ms = now;
	hlog(h, RDHPF_LOG_INFO, "connected", "transport", h->tp->info->name, NULL);
	set_state(h, HOST_SYNCING);
	/* Forwards the transport may have lost: add each again (idempotent). */
	for (size_t i = 0; i < h->n_fwds; i++) {
		if (h->fwds[i]->state == FWD_ACTIVE)
			fwd_state_set(h, h->fwds[i], FWD_PENDING);
		issue_add(h, h->fwds[i]);
	}
	start_sync(h);
}

static void
watchdog_cb(uv_timer_t *t)
{
	struct host *h = t->data;

	if (h->state == HOST_CONNECTING)
		link_failed(h, RDHPF_ERR_TIMEOUT, "connect did not finish within connect_timeout");
}

static void
try_connect(struct host *h)
{
	uint64_t now = now_ms();

	if (h->state == HOST_STOPPED)
		return;
	if (!breaker_allow(&h->br, now)) {
		set_state(h, HOST_BREAKER_OPEN);
		uv_timer_start(&h->t_retry, retry_connect_cb, breaker_wait_ms(&h->br, now), 0);
		return;
	}
	connect_start(h);
}

/* One connect attempt, the breaker having allowed it. */
static void
connect_start(struct host *h)
{
	struct op *o;
	int r;

	h->gen++;
	set_state(h, HOST_CONNECTING);
	h->last_try_ms = now_ms();
	o = op_new(h, OP_TP, 0);
	r = tp_connect(h->tpi, on_connect_done, o);
	if (r != RDHPF_OK) {
		(void)op_done(o);
		link_failed(h, r,
		            r == RDHPF_ERR_INVAL ? "the transport refused the configuration at "
		                                   "connect (its log line says why)"
		                                 : "connect could not start");
		return;
	}
	uv_timer_start(&h->t_watchdog, watchdog_cb,
	               h->cfg->pol.connect_timeout_ms + CONNECT_GRACE_MS, 0);
}

/* The loop did not run for a while (the machine slept, or rdhpf was
 * frozen): the link may be dead without anyone having noticed.  Check it
 * now instead of waiting out the keepalive; a host waiting to retry retries
 * now (a breaker keeps its cooldown). */
void
host_wake(struct host *h)
{
	switch (h->state) {
	case HOST_STEADY:
		if (!h->health_in_flight)
			health_cb(&h->t_health);
		break;
	case HOST_BACKOFF:
		uv_timer_stop(&h->t_retry);
		try_connect(h);
		break;
	default:
		break;
	}
}

/* ---- lifecycle ---- */

static void
timer_init(struct host *h, uv_timer_t *t)
{
	uv_timer_init(core_loop(), t);
	t->data = h;
}

struct host *
host_new(const struct cfg_host *cfg, const struct plugin *tp, const struct plugin *rp,
         const char *runtime_dir, char *err, size_t errlen)
{
	struct host *h = xcalloc(1, sizeof *h);
	char perr[256] = "";
	int r;

	h->cfg = cfg_host_dup(cfg);
	cfg = h->cfg;
	h->name = xstrdup(cfg->name);
	h->tp = tp;
	h->rp = rp;
	h->rng = (uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)h) | 1;
	backoff_init(&h->bo, cfg->pol.backoff_initial_ms, cfg->pol.backoff_max_ms,
	             cfg->pol.backoff_multiplier, cfg->pol.backoff_jitter);
	backoff_init(&h->sync_bo, cfg->pol.backoff_initial_ms, cfg->pol.backoff_max_ms,
	             cfg->pol.backoff_multiplier, cfg->pol.backoff_jitter);
	breaker_init(&h->br, cfg->pol.breaker_threshold, cfg->pol.breaker_cooldown_ms);
	timer_init(h, &h->t_retry);
	timer_init(h, &h->t_watchdog);
	timer_init(h, &h->t_health);
	timer_init(h, &h->t_fwd);
	timer_init(h, &h->t_down);
	timer_init(h, &h->t_reconcile);
	timer_init(h, &h->t_relist);
	timer_init(h, &h->t_established);
	timer_init(h, &h->t_poll);

	h->tctx = ctx_new(h, h->name, tp, cfg);
	h->tctx->down_cb = on_report_down;
	h->tctx->down_arg = h;
	h->rundir = xstrdup(runtime_dir);
	h->tparams = host_params_new(cfg, tp, runtime_dir);
	h->tpi = tp_create(tp, h->tctx, h->tparams, &r, perr, sizeof perr);
	if (h->tpi == NULL) {
		snprintf(err, errlen, "transport %s: %s", tp->info->name,
		         perr[0] ? perr : status_name(r));
		goto fail;
	}
	h->rctx = ctx_new(h, h->name, rp, cfg);
	h->rctx->tpi = h->tpi;
	h->rctx->tctx = h->tctx;
	h->rparams = host_params_new(cfg, rp, runtime_dir);
	h->rpi = rt_create(rp, h->rctx, h->rparams, &r, perr, sizeof perr);
	if (h->rpi == NULL) {
		snprintf(err, errlen, "runtime %s: %s", rp->info->name,
		         perr[0] ? perr : status_name(r));
		goto fail;
	}
	hosts_add(h);
	return h;
fail:
	host_stop(h, "create failed");
	host_free(h);
	return NULL;
}

int
host_link(const struct host *h, struct pinst **tp)
{
	*tp = h->tpi;
	return link_up(h) && h->tpi != NULL;
}

static void
engine_start(struct host *h)
{
	char local[256], err[512];
	const char *sockopt = NULL;

	for (size_t i = 0; i < h->cfg->n_opts; i++)
		if (strcmp(h->cfg->opts[i].key, "socket") == 0)
			sockopt = h->cfg->opts[i].value;
	if (engine_local_path(local, sizeof local, h->rundir, h->name) != 0) {
		hlog(h, RDHPF_LOG_ERROR, "engine socket: path too long for a socket", "dir",
		     h->rundir, NULL);
		return;
	}
	h->engine = engine_sock_start(
	    h, h->name, local, engine_remote_path(h->cfg->engine_socket, h->cfg->runtime, sockopt),
	    err, sizeof err);
	if (h->engine == NULL)
		hlog(h, RDHPF_LOG_ERROR, "engine socket unavailable", "err", err, NULL);
	else
		hlog(h, RDHPF_LOG_INFO, "engine socket", "path", local, "remote",
		     engine_remote_path(h->cfg->engine_socket, h->cfg->runtime, sockopt), NULL);
}

void
host_start(struct host *h)
{
	set_state(h, HOST_IDLE);
	if (h->cfg->engine_socket != NULL && h->engine == NULL)
		engine_start(h);
	uv_timer_start(&h->t_health, health_cb, h->cfg->pol.health_interval_ms,
	               h->cfg->pol.health_interval_ms);
	try_connect(h);
}

void
host_stop(struct host *h, const char *reason)
{
	if (h->state == HOST_STOPPED)
		return;
	events_host(h->name, host_state_name(h->state), host_state_name(HOST_STOPPED), reason);
	h->state = HOST_STOPPED;
	h->gen++;
	/* Before the transport goes: its streams are closed from here. */
	engine_sock_stop(h->engine);
	h->engine = NULL;
	probe_stop(h);
	uv_timer_stop(&h->t_retry);
	uv_timer_stop(&h->t_watchdog);
	uv_timer_stop(&h->t_health);
	uv_timer_stop(&h->t_fwd);
	uv_timer_stop(&h->t_down);
	uv_timer_stop(&h->t_reconcile);
	uv_timer_stop(&h->t_relist);
	uv_timer_stop(&h->t_established);
	uv_timer_stop(&h->t_poll);
	if (h->rpi != NULL) {
		runtime_stop(h);
		rt_destroy(h->rpi);
		h->rpi = NULL;
	}
	for (size_t i = 0; i < h->n_fwds; i++) {
		fwd_log(h, RDHPF_LOG_INFO, "forward removed", h->fwds[i], reason);
		events_forward(h->name, "removed", &h->fwds[i]->f, reason);
		ended_add(h, h->fwds[i], reason);
	}
	if (h->tpi != NULL) {
		/* destroy removes every forward and closes the link. */
		tp_destroy(h->tpi);
		h->tpi = NULL;
	}
	ctx_free(h->rctx);
	h->rctx = NULL;
	ctx_free(h->tctx);
	h->tctx = NULL;
	fwds_clear(h);
}

static void
host_timer_closed(uv_handle_t *t)
{
	struct host *h = t->data;

	if (--h->closing_handles == 0)
		free(h);
}

void
host_free(struct host *h)
{
	uv_timer_t *timers[] = {&h->t_retry,  &h->t_watchdog,    &h->t_health,
	                        &h->t_fwd,    &h->t_down,        &h->t_reconcile,
	                        &h->t_relist, &h->t_established, &h->t_poll};

	if (h == NULL)
		return;
	hosts_del(h);
	host_stop(h, "host removed");
	while (h->ops) {
		struct op *o = h->ops;
		h->ops = o->next;
		free(o);
	}
	conts_clear(h);
	pend_clear(h);
	fwds_clear(h);
	rcs_free(h->rcs);
	free(h->pol_map);
	free(h->remaps);
	host_params_free(h->tparams);
	host_params_free(h->rparams);
	cfg_host_clear(h->cfg);
	free(h->cfg);
	free(h->name);
	free(h->rundir);
	h->closing_handles = (int)(sizeof timers / sizeof timers[0]);
	for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++)
		uv_close((uv_handle_t *)timers[i], host_timer_closed);
}

const struct cfg_host *
host_cfg(const struct host *h)
{
	return h->cfg;
}

enum host_state
host_state(const struct host *h)
{
	return h->state;
}

const char *
host_name(const struct host *h)
{
	return h->name;
}

size_t
host_active_forwards(const struct host *h)
{
	return h->n_active;
}

/* ---- status ---- */

static const char *
fwd_state_name(enum fwd_state s)
{
	switch (s) {
	case FWD_PENDING:
		return "pending";
	case FWD_ACTIVE:
		return "active";
	case FWD_CONFLICT:
		return "conflict";
	case FWD_FAILED:
		return "failed";
	}
	return "?";
}

void
host_events_replay(const struct host *h, struct ev_sub *to)
{
	static const char *what[] = {
	    [FWD_PENDING] = "added",
	    [FWD_ACTIVE] = "active",
	    [FWD_CONFLICT] = "conflict",
	    [FWD_FAILED] = "failed",
	};
	int down =
	    h->state == HOST_BACKOFF || h->state == HOST_BREAKER_OPEN || h->state == HOST_FAILED;

	events_host_to(to, h->name, host_state_name(h->state), down ? h->last_error : NULL);
	for (size_t i = 0; i < h->n_fwds; i++)
		events_forward_to(to, h->name, what[h->fwds[i]->state], &h->fwds[i]->f,
		                  h->fwds[i]->err[0] ? h->fwds[i]->err : NULL);
}

static void
short_id(char out[13], const char *id)
{
	size_t n = strnlen(id, 12);
	memcpy(out, id, n);
	out[n] = '\0';
}

/* A monotonic instant as wall-clock seconds (JSON numbers), or null. */
static json_t *
mono_to_wall(uint64_t mono)
{
	if (mono == 0)
		return json_null();
	return json_real((double)(wall_ms() - (int64_t)(now_ms() - mono)) / 1000.0);
}

static json_t *
ms_or_null(uint64_t ms, int valid)
{
	return valid ? json_real((double)ms / 1000.0) : json_null();
}

/* Every published port that has no forward, with why and what decided. */
static json_t *
skips_json(const struct host *h)
{
	json_t *a = json_array();
	struct rc_skip *sk = NULL;
	size_t n = h->rcs != NULL ? rcs_skips(h->rcs, &sk) : 0;

	for (size_t i = 0; i < n; i++) {
		const struct rc_skip *s = &sk[i];
		json_t *o = json_object();
		char shortid[13], rule[512];

		short_id(shortid, s->container_id);
		rule_where(h, s->rule_line, rule, sizeof rule);
		json_object_set_new(o, "container", json_string(s->container_name));
		json_object_set_new(o, "container_id", json_string(shortid));
		json_object_set_new(o, "remote_host", json_string(s->remote_host));
		json_object_set_new(o, "remote_port", json_integer(s->remote_port));
		json_object_set_new(o, "proto", json_string(proto_name(s->proto)));
		json_object_set_new(o, "bind", s->bind[0] ? json_string(s->bind) : json_null());
		json_object_set_new(o, "local_port",
		                    s->local_port ? json_integer(s->local_port) : json_null());
		json_object_set_new(o, "reason", json_string(rc_skip_reason(s)));
		json_object_set_new(o, "rule", rule[0] ? json_string(rule) : json_null());
		json_object_set_new(o, "holder",
		                    s->holder[0] ? json_string(s->holder) : json_null());
		json_object_set_new(o, "label", s->label[0] ? json_string(s->label) : json_null());
		json_array_append_new(a, o);
	}
	free(sk);
	return a;
}

static int
cmp_cont_name(const void *pa, const void *pb)
{
	const struct rdhpf_container *a = *(const struct rdhpf_container *const *)pa;
	const struct rdhpf_container *b = *(const struct rdhpf_container *const *)pb;
	int c = strcmp(a->name, b->name);

	return c ? c : strcmp(a->id, b->id);
}

/* Containers whose rdhpf.* labels were (partly) refused, and why; by name
 * and id, whatever order the set keeps them in. */
static json_t *
label_errors_json(const struct host *h)
{
	json_t *a = json_array();
	const struct rdhpf_container **v;
	size_t n = 0;

	if (!h->cfg->labels || h->n_conts == 0)
		return a;
	v = xcalloc(h->n_conts, sizeof *v);
	for (size_t i = 0; i < h->n_conts; i++)
		if (h->conts[i]->c.n_labels > 0)
			v[n++] = &h->conts[i]->c;
	if (n > 1)
		qsort(v, n, sizeof *v, cmp_cont_name);
	for (size_t i = 0; i < n; i++) {
		struct labels_policy lp;
		json_t *e;

		if (labels_parse(v[i]->labels, v[i]->n_labels, &lp) == 0)
			continue;
		e = json_object();
		json_object_set_new(e, "container",
		                    json_string(v[i]->name ? v[i]->name : v[i]->id));
		json_object_set_new(e, "container_id", json_string(v[i]->id));
		json_object_set_new(e, "error", json_string(lp.err));
		json_array_append_new(a, e);
	}
	free(v);
	return a;
}

json_t *
host_status_json(const struct host *h)
{
	json_t *o = json_object(), *fw = json_array(), *st = json_object();
	uint64_t now = now_ms();

	json_object_set_new(o, "name", json_string(h->name));
	json_object_set_new(o, "url", json_string(h->cfg->url ? h->cfg->url : ""));
	json_object_set_new(o, "state", json_string(host_state_name(h->state)));
	json_object_set_new(o, "transport", json_string(h->tp->info->name));
	json_object_set_new(o, "runtime", json_string(h->rp->info->name));
	json_object_set_new(o, "connected_since", mono_to_wall(h->connected_since_ms));
	json_object_set_new(o, "connects", json_integer((json_int_t)h->connects));
	json_object_set_new(o, "reconnects", json_integer((json_int_t)h->reconnects));
	json_object_set_new(o, "link_failures", json_integer((json_int_t)h->link_failures));
	json_object_set_new(o, "last_error",
	                    h->last_error[0] ? json_string(h->last_error) : json_null());
	json_object_set_new(o, "breaker", json_string(breaker_state_name(h->br.state)));
	json_object_set_new(o, "containers", json_integer((json_int_t)h->n_conts));

	json_object_set_new(st, "starts", json_integer((json_int_t)h->stream_starts));
	json_object_set_new(st, "open", json_boolean(h->watching));
	json_object_set_new(st, "first_event_after_s",
	                    ms_or_null(h->first_event_after_ms ? h->first_event_after_ms - 1 : 0,
	                               h->first_event_after_ms != 0));
	json_object_set_new(st, "events", json_integer((json_int_t)h->events));
	json_object_set_new(st, "since_last_event_s",
	                    ms_or_null(now - h->last_event_ms, h->last_event_ms != 0));
	json_object_set_new(st, "last_stream_s",
	                    ms_or_null(h->last_stream_ms, h->last_stream_ended));
	json_object_set_new(st, "last_close",
	                    h->last_stream_ended
	                        ? json_string(h->last_stream_clean ? "clean" : "failed")
	                        : json_null());
	json_object_set_new(st, "consecutive_failures", json_integer(h->stream_failures));
	json_object_set_new(st, "resyncs", json_integer((json_int_t)h->resyncs));
	json_object_set_new(st, "health_ok", json_integer((json_int_t)h->health_ok));
	json_object_set_new(st, "health_failed", json_integer((json_int_t)h->health_failed));
	json_object_set_new(
	    st, "last_health_s",
	    ms_or_null(h->last_health_took_ms, h->health_ok + h->health_failed > 0));
	json_object_set_new(o, "stream", st);

	for (size_t i = 0; i < h->n_fwds; i++) {
		const struct fwd *w = h->fwds[i];
		json_t *f = json_object();
		char shortid[13];
		struct rdhpf_forward pf;
		struct rdhpf_forward_stats fs;
		char rule[512];
		uint16_t wanted;

		short_id(shortid, w->f.container_id);
		json_object_set_new(f, "bind", json_string(w->f.bind));
		json_object_set_new(f, "local_port", json_integer(w->f.local_port));
		json_object_set_new(f, "remote_host", json_string(w->f.remote_host));
		json_object_set_new(f, "remote_port", json_integer(w->f.remote_port));
		json_object_set_new(f, "container", json_string(w->f.container_name));
		json_object_set_new(f, "container_id", json_string(shortid));
		json_object_set_new(f, "state", json_string(fwd_state_name(w->state)));
		json_object_set_new(f, "since", mono_to_wall(w->since_ms));
		json_object_set_new(f, "error", w->err[0] ? json_string(w->err) : json_null());
		rule_where(h, w->f.rule_line, rule, sizeof rule);
		json_object_set_new(f, "rule", rule[0] ? json_string(rule) : json_null());
		wanted = remap_wanted(h, &w->f);
		json_object_set_new(f, "wanted_port", wanted ? json_integer(wanted) : json_null());
		fwd_to_plugin(w, &pf);
		if (h->tpi != NULL && tp_forward_stats(h->tpi, &pf, &fs) == RDHPF_OK) {
			json_object_set_new(f, "connections",
			                    json_integer((json_int_t)fs.connections));
			json_object_set_new(f, "bytes_in", json_integer((json_int_t)fs.bytes_in));
			json_object_set_new(f, "bytes_out", json_integer((json_int_t)fs.bytes_out));
		} else {
			json_object_set_new(f, "connections", json_null());
			json_object_set_new(f, "bytes_in", json_null());
			json_object_set_new(f, "bytes_out", json_null());
		}
		json_array_append_new(fw, f);
	}
	json_object_set_new(o, "forwards", fw);
	json_object_set_new(o, "skipped", skips_json(h));
	json_object_set_new(o, "label_errors", label_errors_json(h));
	return o;
}

json_t *
ended_forwards_json(void)
{
	json_t *a = json_array();

	/* newest first */
	for (size_t k = 0; k < g_ended_n; k++) {
		const struct ended *e = &g_ended[(g_ended_next + ENDED_MAX - 1 - k) % ENDED_MAX];
		json_t *f = json_object();
		char shortid[13];
		short_id(shortid, e->f.container_id);
		json_object_set_new(f, "host", json_string(e->host));
		json_object_set_new(f, "bind", json_string(e->f.bind));
		json_object_set_new(f, "local_port", json_integer(e->f.local_port));
		json_object_set_new(f, "remote_host", json_string(e->f.remote_host));
		json_object_set_new(f, "remote_port", json_integer(e->f.remote_port));
		json_object_set_new(f, "container", json_string(e->f.container_name));
		json_object_set_new(f, "container_id", json_string(shortid));
		json_object_set_new(f, "reason", json_string(e->reason));
		json_object_set_new(f, "ended", json_real((double)e->wall_ms / 1000.0));
		json_array_append_new(a, f);
	}
	return a;
}
