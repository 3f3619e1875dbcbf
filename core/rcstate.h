/* Incremental reconciler: what one container event changes, at a cost
 * independent of the number of forwards the host has.
 *
 * rc_desired_full recomputes every container's forwards for each event;
 * that is O(n) per event.  This state keeps, per host, the containers' own
 * claims (by id), the claimants of each key (bind, local_port) and the
 * forward installed at each key, so an event only touches the keys the
 * changed container claims (before or after): ownership of any other key
 * cannot change, because it depends on that key's claimants alone.
 *
 * The outcome is exactly rc_desired_full + rc_reconcile on the same
 * container set (tests/unit/test_rcstate.c checks it on random event
 * sequences): the same owners (last event wins), the same actions in the
 * same order (every REMOVE before any ADD, each group in key order, RETAG
 * for a new owner of the same target), the same skips.
 *
 * Events are recorded at once and turned into actions by rcs_flush, so
 * several events before a flush collapse as they would in one full
 * reconcile.  Pure; aborts on out of memory (util.h). */
#ifndef RDHPF_RCSTATE_H
#define RDHPF_RCSTATE_H

#include <stddef.h>
#include <stdint.h>

#include "reconcile.h"

struct rcs;

/* pol is kept (not copied): it must outlive the state. */
struct rcs *rcs_new(const struct rc_policy *pol);
void rcs_free(struct rcs *st);

/* The container started or changed: its claims replace those it had.
 * Its id is c->c->id; c->seq orders it against the others (last wins).
 * Cost: its ports, plus the claimants of the keys it claims. */
void rcs_upsert(struct rcs *st, const struct rc_container *c, const struct rc_meta *meta);
/* The container stopped (unknown ids are ignored). */
void rcs_remove(struct rcs *st, const char *id);

/* The actions that bring the installed forwards to the desired ones for
 * every key touched since the last flush, as rc_reconcile orders them; the
 * caller applies them all (the state now counts them installed).  fresh:
 * the skips that were not there at the last flush, in rc_cmp_skip order
 * (to log each once).  Both malloc'd, NULL when none. */
void rcs_flush(struct rcs *st, struct rc_action **acts, size_t *n_acts, struct rc_skip **fresh,
               size_t *n_fresh);

/* The forward installed at bind:port went away outside the reconciler
 * (the caller dropped it): count the key uninstalled and touched, so the
 * next flush adds its owner's forward again. */
void rcs_uninstall(struct rcs *st, const char *bind, uint16_t port);

/* The container that owns bind:port now, or NULL. */
const struct rc_forward *rcs_owner(const struct rcs *st, const char *bind, uint16_t port);

/* Whole-state views (status, tests): O(n log n), malloc'd, NULL when none.
 * Skips in rc_cmp_skip order; installed forwards in key order. */
size_t rcs_skips(const struct rcs *st, struct rc_skip **out);
size_t rcs_installed(const struct rcs *st, struct rc_forward **out);

#endif
