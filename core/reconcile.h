/* Reconciler: (desired, actual) → actions.  Pure and idempotent: applying
 * the actions to actual and reconciling again yields no action.
 *
 * Desired forwards are derived from the running containers of one host: each
 * published TCP port that the labels and rules (labels.h, rules.h) let
 * through becomes one forward per local address (rc_bind_expand), keyed by
 * (bind, local_port); every other published port becomes an rc_skip saying
 * why.  When two containers want the same key, the one with the higher seq
 * (the later event) owns it: last event wins.  The loser is reported as a
 * conflict. */
#ifndef RDHPF_RECONCILE_H
#define RDHPF_RECONCILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rdhpf/plugin.h"
#include "rules.h"
#include "container.h"

#define RC_ID_MAX 72
#define RC_NAME_MAX 128
#define RC_ADDR_MAX 64

struct rc_forward {
	char bind[RC_ADDR_MAX];
	uint16_t local_port;
	char remote_host[RC_ADDR_MAX];
	uint16_t remote_port;
	char container_id[RC_ID_MAX];
	char container_name[RC_NAME_MAX];
	uint64_t seq;
	int rule_line;  /* the rule that decided it, 0 when none did */
	int privileged; /* rc_desired_full internal: became a skip */
};

struct rc_port_map {
	uint16_t remote_port;
	uint16_t local_port;
};

struct rc_policy {
	const char *bind;              /* local bind addresses: "127.0.0.1", "localhost",
	                                * "127.0.0.1, ::1" (see rc_bind_expand) */
	int no_ipv6_loopback;          /* this machine has no ::1: localhost is 127.0.0.1 */
	int32_t port_offset;           /* added to the remote port */
	const struct rc_port_map *map; /* explicit remote → local, wins over offset */
	size_t n_map;
	const struct rule *rules; /* tried first, in order (see rules.h) */
	size_t n_rules;
	/* Local ports below this cannot be bound here (not root, no
	 * CAP_NET_BIND_SERVICE; Linux's ip_unprivileged_port_start, 1024 by
	 * default); 0 when every port can. */
	uint16_t unpriv_port_start;
	int privileged_skip;        /* privileged = skip: quietly skipped */
	int labels;                 /* labels = yes: rdhpf.* labels (labels.h) apply,
	                             * before the rules */
	uint16_t privileged_offset; /* privileged = offset N: such ports move up by N */
};

/* One container as the core holds it: runtime data plus the arrival seq. */
struct rc_container {
	const struct rdhpf_container *c;
	uint64_t seq;
};

/* What rules may match besides ports and names; one per rc_container. */
struct rc_meta {
	const char *image;               /* NULL when the runtime does not say */
	const struct rule_label *labels; /* likewise */
	size_t n_labels;
};

/* Why a published port has no forward. */
enum rc_skip_why {
	RC_SKIP_PROTO = 1,      /* UDP or SCTP: SSH forwards carry TCP only */
	RC_SKIP_RULE = 2,       /* an ignore rule matched (rule_line) */
	RC_SKIP_RANGE = 3,      /* its local port would fall outside 1..65535 */
	RC_SKIP_TAKEN = 4,      /* another container of this host owns the local port (holder) */
	RC_SKIP_PRIVILEGED = 5, /* local port < unpriv_port_start; never retried */
	RC_SKIP_PRIVILEGED_SKIP = 6, /* likewise, and privileged = skip says so */
	RC_SKIP_LABEL = 7,           /* the container's label rdhpf.ignore=true (label) */
	RC_SKIP_HOSTIP = 8,          /* the engine's HostIp is not an IP literal */
};

struct rc_skip {
	char container_id[RC_ID_MAX];
	char container_name[RC_NAME_MAX];
	char remote_host[RC_ADDR_MAX];
	uint16_t remote_port;
	int proto;
	char bind[RC_ADDR_MAX]; /* "" when no local port was chosen */
	uint16_t local_port;    /* 0 when none */
	enum rc_skip_why why;
	int rule_line;            /* the rule that decided, 0 when none did */
	char holder[RC_NAME_MAX]; /* RC_SKIP_TAKEN: the owning container's name */
	char label[RC_NAME_MAX];  /* the label that decided, "" when none did */
};

/* A short English reason: "ignored by rule", "udp: SSH forwards carry TCP
 * only", … (for status and logs). */
const char *rc_skip_reason(const struct rc_skip *s);

#define RC_BIND_MAX 8

/* The addresses a bind spec stands for, in order, without repeats: a list
 * separated by commas or blanks, where "localhost" is 127.0.0.1 and ::1
 * (only 127.0.0.1 when no6).  Each published port gets one forward per
 * address.  Returns how many were written (at most max; 0 for an empty or
 * bad spec, which config validation rules out). */
size_t rc_bind_expand(const char *spec, int no6, char out[][RC_ADDR_MAX], size_t max);

/* Where a port published on the remote's host_ip is reached from the remote
 * sshd: "0.0.0.0", "" → "127.0.0.1"; "::" → "::1"; anything else → itself. */
const char *rc_remote_host(const char *host_ip);
/* host_ip is "", NULL or an IPv4/IPv6 literal.  rc_desired refuses any
 * other port (to *conflicts, local_port 0): the target must never be a
 * name a runtime was handed by the engine. */
bool rc_host_ip_ok(const char *host_ip);

/* Build the desired set.  Skips non-TCP ports (counted in *skipped_udp if
 * non-NULL; a 0.0.0.0/:: pair counts once), deduplicates 0.0.0.0/:: pairs,
 * maps ports, resolves owners.  Losers go to *conflicts (may be NULL); so
 * does a port whose local port would fall outside 1..65535 (by offset, or
 * mapped to 0), with local_port 0.  Output and conflicts are sorted by
 * (bind, local_port), owner first.  Returns 0, or -1 on ENOMEM.  Arrays
 * are malloc'd (NULL when empty); free() them. */
int rc_desired(const struct rc_container *cs, size_t n, const struct rc_policy *pol,
               struct rc_forward **out, size_t *n_out, struct rc_forward **conflicts,
               size_t *n_conflicts, size_t *skipped_udp);

/* rc_desired, plus every published port that gets no forward and why,
 * sorted by container name, id, port, each skip once (rc_skips_unique;
 * skips malloc'd, NULL when none).
 * meta is NULL or parallel to cs. */
int rc_desired_full(const struct rc_container *cs, const struct rc_meta *meta, size_t n,
                    const struct rc_policy *pol, struct rc_forward **out, size_t *n_out,
                    struct rc_forward **conflicts, size_t *n_conflicts, struct rc_skip **skips,
                    size_t *n_skips);

/* ---- the pieces rc_desired_full is made of (rcstate.c reuses them) ---- */

/* Growable arrays; all zero is empty.  Push returns the new zeroed element,
 * or NULL on ENOMEM (the array is kept). */
struct rc_fwd_vec {
	struct rc_forward *v;
	size_t n, cap;
};
struct rc_skip_vec {
	struct rc_skip *v;
	size_t n, cap;
};
struct rc_forward *rc_fwd_push(struct rc_fwd_vec *vec);
struct rc_skip *rc_skip_push(struct rc_skip_vec *vec);

/* One container's part, before owners are chosen: appends its candidate
 * forwards to cand (local_port 0 when outside 1..65535; privileged set
 * when it became a privileged skip) and the skips that depend on it alone
 * (label, rule, HostIp, protocol, privileged) to sk.  0, or -1 on ENOMEM. */
int rc_claims(const struct rc_container *c, const struct rc_meta *meta, const struct rc_policy *pol,
              struct rc_fwd_vec *cand, struct rc_skip_vec *sk);

/* Order by key (bind, local_port). */
int rc_cmp_key(const struct rc_forward *a, const struct rc_forward *b);
/* Key, then the owner first (higher seq, smaller id, preferred target);
 * total (qsort comparator). */
int rc_cmp_owner(const void *a, const void *b);
/* Same container and same target: a duplicate, not a conflict. */
bool rc_same_claim(const struct rc_forward *a, const struct rc_forward *b);
/* The skip of candidate f (bind and local_port only when local_port != 0). */
void rc_skip_of_fwd(struct rc_skip *s, const struct rc_forward *f, enum rc_skip_why why);
/* Status order: container name, id, remote port, proto, remote host, and
 * the remaining fields so the order is total (qsort comparator). */
int rc_cmp_skip(const void *a, const void *b);
/* Every field equal (the same skip found again). */
bool rc_skip_same(const struct rc_skip *a, const struct rc_skip *b);
/* Sort v in rc_cmp_skip order and drop repeats (a port out of range is
 * one skip whatever the binds; a runtime may report a port twice);
 * returns how many are left. */
size_t rc_skips_unique(struct rc_skip *v, size_t n);

enum rc_action_type {
	RC_REMOVE = 1, /* transport forward_remove(fwd) */
	RC_ADD = 2,    /* transport forward_add(fwd) */
	RC_RETAG = 3,  /* same forward, new owner: no transport call */
};

struct rc_action {
	enum rc_action_type type;
	struct rc_forward fwd;
};

/* Actions turning actual into desired: every REMOVE before any ADD.  A key
 * whose target changed is REMOVE then ADD; same target but another
 * container id or name is RETAG.  Each group is in key order.  Returns 0
 * or -1 on ENOMEM; *out is malloc'd (NULL when none). */
/* One key's part of rc_reconcile; d (desired) and a (actual) have the same
 * key, either may be NULL.  Sets *remove when a must go first; returns
 * RC_ADD (of d), RC_RETAG (d is a's forward with a new owner) or 0. */
enum rc_action_type rc_key_diff(const struct rc_forward *d, const struct rc_forward *a,
                                bool *remove);

int rc_reconcile(const struct rc_forward *desired, size_t nd, const struct rc_forward *actual,
                 size_t na, struct rc_action **out, size_t *n_out);

#endif
