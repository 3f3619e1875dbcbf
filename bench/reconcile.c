/* bench/reconcile — what one container event costs the reconciler as the
 * number of forwards grows, for both reconcilers side by side in one run:
 *   full:        rc_desired_full over all the host's containers, then
 *                rc_reconcile against the forwards it has (O(n) per event:
 *                issue 13 calls that a bug; the path the supervisor took);
 *   incremental: rcs_upsert / rcs_remove of the one container, then
 *                rcs_flush (rcstate.h; the path the supervisor takes now).
 * Each size starts from n containers with one published port each; the
 * event is one more container starting (full), or starting and stopping
 * again, timed together and counted as two events (incremental: a start
 * alone would leave the state one container bigger each time); then the
 * same with a container publishing the port another one holds (the key
 * changes owner: RETAG there and back).  Prints the cost per event, its
 * ratio to the smallest size, and full/incremental.
 * Pure part only: the supervisor's own lookups are hash tables now.
 *   build/bench/bench-reconcile [N...]   (default 10 100 1000 4000) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "container.h"
#include "rcstate.h"
#include "reconcile.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* cs[0..n-1] are running; the event starts cs[n] (a port of its own) or
 * cs[n+1] (the port of cs[0]: a contested key, whose owner changes). */
struct fleet {
	struct rdhpf_container **cs;
	struct rc_container *rcs;
	size_t n;
};

static void
fleet_make(struct fleet *fl, size_t n)
{
	fl->n = n;
	fl->cs = calloc(n + 2, sizeof *fl->cs);
	fl->rcs = calloc(n + 2, sizeof *fl->rcs);
	if (fl->cs == NULL || fl->rcs == NULL)
		abort();
	for (size_t i = 0; i <= n + 1; i++) {
		char id[32], name[32];
		uint16_t port = (uint16_t)(20000 + (i <= n ? i : 0));
		struct rdhpf_port p = {RDHPF_INIT(rdhpf_port), "0.0.0.0", port, 80,
		                       RDHPF_PROTO_TCP};
		snprintf(id, sizeof id, "c%030zu", i);
		snprintf(name, sizeof name, "bench-%zu", i);
		if ((fl->cs[i] = container_alloc(id, name)) == NULL ||
		    container_port_add(fl->cs[i], &p) != 0)
			abort();
		fl->rcs[i].c = fl->cs[i];
		fl->rcs[i].seq = i + 1;
	}
}

static void
fleet_free(struct fleet *fl)
{
	for (size_t i = 0; i <= fl->n + 1; i++)
		container_destroy(fl->cs[i]);
	free(fl->cs);
	free(fl->rcs);
}

static void
expect_one(size_t nact, const struct rc_action *acts, enum rc_action_type t)
{
	if (nact != 1 || acts[0].type != t) {
		fprintf(stderr, "bench-reconcile: expected one action %d, got %zu\n", (int)t, nact);
		exit(1);
	}
}

static double
full_per_event(const struct fleet *fl, int reps, size_t *n_fwd)
{
	const struct rc_policy pol = {.bind = "127.0.0.1"};
	struct rc_forward *actual = NULL, *desired = NULL;
	struct rc_action *acts = NULL;
	size_t na = 0, nd = 0, nact = 0;
	double t0, t;

	/* The forwards the host has before the event. */
	if (rc_desired_full(fl->rcs, NULL, fl->n, &pol, &actual, &na, NULL, NULL, NULL, NULL) != 0)
		abort();
	t0 = now_s();
	for (int r = 0; r < reps; r++) {
		if (rc_desired_full(fl->rcs, NULL, fl->n + 1, &pol, &desired, &nd, NULL, NULL, NULL,
		                    NULL) != 0 ||
		    rc_reconcile(desired, nd, actual, na, &acts, &nact) != 0)
			abort();
		expect_one(nact, acts, RC_ADD);
		free(desired);
		free(acts);
	}
	t = (now_s() - t0) / reps;
	*n_fwd = na;
	free(actual);
	return t;
}

static size_t
flush_expect(struct rcs *st, enum rc_action_type t)
{
	struct rc_action *acts;
	struct rc_skip *fresh;
	size_t nact, nfresh;

	rcs_flush(st, &acts, &nact, &fresh, &nfresh);
	if (t != 0)
		expect_one(nact, acts, t);
	free(acts);
	free(fresh);
	return nact;
}

/* ev starts (expect on) and stops (expect off), reps times. */
static double
incremental_per_event(const struct fleet *fl, const struct rc_container *ev, enum rc_action_type on,
                      enum rc_action_type off, int reps)
{
	const struct rc_policy pol = {.bind = "127.0.0.1"};
	struct rcs *st = rcs_new(&pol);
	double t0, t;

	for (size_t i = 0; i < fl->n; i++)
		rcs_upsert(st, &fl->rcs[i], NULL);
	if (flush_expect(st, 0) != fl->n)
		abort();
	t0 = now_s();
	for (int r = 0; r < reps; r++) {
		rcs_upsert(st, ev, NULL);
		flush_expect(st, on);
		rcs_remove(st, ev->c->id);
		flush_expect(st, off);
	}
	t = (now_s() - t0) / (2.0 * reps);
	rcs_free(st);
	return t;
}

int
main(int argc, char **argv)
{
	size_t def[] = {10, 100, 1000, 4000}, sizes[16], ns = 0;
	double base_full = 0, base_incr = 0, base_cont = 0;

	for (int i = 1; i < argc && ns < 16; i++)
		sizes[ns++] = (size_t)strtoul(argv[i], NULL, 10);
	if (ns == 0) {
		memcpy(sizes, def, sizeof def);
		ns = sizeof def / sizeof def[0];
	}
	printf("%10s %14s %8s %14s %8s %10s %16s %8s\n", "forwards", "full_us/event", "ratio",
	       "incr_us/event", "ratio", "full/incr", "contested_us/ev", "ratio");
	for (size_t i = 0; i < ns; i++) {
		struct fleet fl;
		size_t nf = 0;
		/* Bounded: about 0.2 s of work per size and path. */
		int reps = sizes[i] >= 1000 ? 20 : sizes[i] >= 100 ? 200 : 2000;
		double tf, ti, tc;

		fleet_make(&fl, sizes[i]);
		tf = full_per_event(&fl, reps, &nf);
		ti = incremental_per_event(&fl, &fl.rcs[fl.n], RC_ADD, RC_REMOVE, 20000);
		/* Same target, new owner and back: RETAG both ways. */
		tc = incremental_per_event(&fl, &fl.rcs[fl.n + 1], RC_RETAG, RC_RETAG, 20000);
		fleet_free(&fl);
		if (i == 0) {
			base_full = tf;
			base_incr = ti;
			base_cont = tc;
		}
		printf("%10zu %14.2f %7.1fx %14.2f %7.1fx %9.0fx %16.2f %7.1fx\n", nf, tf * 1e6,
		       tf / base_full, ti * 1e6, ti / base_incr, tf / ti, tc * 1e6, tc / base_cont);
	}
	return 0;
}
