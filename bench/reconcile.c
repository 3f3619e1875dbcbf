/* bench/reconcile — what one container start costs the reconciler as the
 * number of forwards grows.  The supervisor answers every event by
 * computing the desired forwards of all the host's containers
 * (rc_desired_full) and diffing them with the forwards it has
 * (rc_reconcile); this measures that pure part alone, at several sizes in
 * one run, and prints the cost per event and its ratio to the smallest size.
 * A cost that grows with n is O(n) work per event (issue 13 calls that a
 * bug); the supervisor's own lookups come on top.
 *   build/bench/bench-reconcile [N...]   (default 10 100 1000 4000) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "container.h"
#include "reconcile.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* n containers with one published port each, then one more (the start). */
static double
cost_per_event(size_t n, int reps, size_t *n_fwd)
{
	struct rdhpf_container **cs = calloc(n + 1, sizeof *cs);
	struct rc_container *rcs = calloc(n + 1, sizeof *rcs);
	struct rc_policy pol = {.bind = "127.0.0.1"};
	struct rc_forward *actual = NULL, *desired = NULL;
	struct rc_action *acts = NULL;
	size_t na = 0, nd = 0, nact = 0;
	double t0, t;

	if (cs == NULL || rcs == NULL)
		abort();
	for (size_t i = 0; i <= n; i++) {
		char id[32], name[32];
		struct rdhpf_port p = {RDHPF_INIT(rdhpf_port), "0.0.0.0", (uint16_t)(20000 + i), 80,
		                       RDHPF_PROTO_TCP};
		snprintf(id, sizeof id, "c%030zu", i);
		snprintf(name, sizeof name, "bench-%zu", i);
		if ((cs[i] = container_alloc(id, name)) == NULL ||
		    container_port_add(cs[i], &p) != 0)
			abort();
		rcs[i].c = cs[i];
		rcs[i].seq = i + 1;
	}
	/* The forwards the host has before the event. */
	if (rc_desired_full(rcs, NULL, n, &pol, &actual, &na, NULL, NULL, NULL, NULL) != 0)
		abort();
	t0 = now_s();
	for (int r = 0; r < reps; r++) {
		if (rc_desired_full(rcs, NULL, n + 1, &pol, &desired, &nd, NULL, NULL, NULL,
		                    NULL) != 0 ||
		    rc_reconcile(desired, nd, actual, na, &acts, &nact) != 0)
			abort();
		if (nact != 1 || acts[0].type != RC_ADD) {
			fprintf(stderr, "bench-reconcile: expected one add, got %zu actions\n",
			        nact);
			exit(1);
		}
		free(desired);
		free(acts);
	}
	t = (now_s() - t0) / reps;
	*n_fwd = na;
	free(actual);
	for (size_t i = 0; i <= n; i++)
		container_destroy(cs[i]);
	free(cs);
	free(rcs);
	return t;
}

int
main(int argc, char **argv)
{
	size_t def[] = {10, 100, 1000, 4000}, sizes[16], ns = 0;
	double base = 0;

	for (int i = 1; i < argc && ns < 16; i++)
		sizes[ns++] = (size_t)strtoul(argv[i], NULL, 10);
	if (ns == 0) {
		memcpy(sizes, def, sizeof def);
		ns = sizeof def / sizeof def[0];
	}
	printf("%10s %14s %10s %12s\n", "forwards", "us_per_event", "ratio", "us_per_fwd");
	for (size_t i = 0; i < ns; i++) {
		size_t nf = 0;
		/* Bounded: about 0.2 s of work per size. */
		int reps = sizes[i] >= 1000 ? 20 : sizes[i] >= 100 ? 200 : 2000;
		double t = cost_per_event(sizes[i], reps, &nf);
		if (i == 0)
			base = t;
		printf("%10zu %14.1f %9.1fx %12.3f\n", nf, t * 1e6, t / base,
		       nf ? t * 1e6 / (double)nf : 0.0);
	}
	return 0;
}
