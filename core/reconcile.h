/* Reconciler: (desired, actual) → actions.  Pure and idempotent: applying
 * the actions to actual and reconciling again yields no action.
 *
 * Desired forwards are derived from the running containers of one host: each
 * published TCP port becomes one forward keyed by (bind, local_port).  When
 * two containers want the same key, the one with the higher seq (the later
 * event) owns it: last event wins.  The loser is reported as a conflict. */
#ifndef RDHPF_RECONCILE_H
#define RDHPF_RECONCILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rdhpf/plugin.h"

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
};

struct rc_port_map {
	uint16_t remote_port;
	uint16_t local_port;
};

struct rc_policy {
	const char *bind;             /* local bind address, e.g. "127.0.0.1" */
	int32_t port_offset;          /* added to the remote port */
	const struct rc_port_map *map;/* explicit remote → local, wins over offset */
	size_t n_map;
};

/* One container as the core holds it: runtime data plus the arrival seq. */
struct rc_container {
	const struct rdhpf_container *c;
	uint64_t seq;
};

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
               struct rc_forward **out, size_t *n_out,
               struct rc_forward **conflicts, size_t *n_conflicts, size_t *skipped_udp);

enum rc_action_type {
	RC_REMOVE = 1,  /* transport forward_remove(fwd) */
	RC_ADD = 2,     /* transport forward_add(fwd) */
	RC_RETAG = 3,   /* same forward, new owner: no transport call */
};

struct rc_action {
	enum rc_action_type type;
	struct rc_forward fwd;
};

/* Actions turning actual into desired: every REMOVE before any ADD.  A key
 * whose target changed is REMOVE then ADD; same target but another
 * container id or name is RETAG.  Each group is in key order.  Returns 0
 * or -1 on ENOMEM; *out is malloc'd (NULL when none). */
int rc_reconcile(const struct rc_forward *desired, size_t nd,
                 const struct rc_forward *actual, size_t na,
                 struct rc_action **out, size_t *n_out);

#endif
