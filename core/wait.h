/* `rdhpf wait` and `rdhpf events`: clients of the daemon's event stream.
 *
 * The readiness logic is pure (wait_feed / wait_check / wait_explain) and
 * unit-tested; wait_run and events_run do the I/O. */
#ifndef RDHPF_WAIT_H
#define RDHPF_WAIT_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

struct wait_target {
	int port;              /* a local port, or 0 */
	const char *container; /* a container name, or NULL */
};

struct wait_fwd {
	char host[64];
	char bind[64];
	int local_port;
	int remote_port;
	char container[128];
	char event[16]; /* added, active, conflict, failed, skipped */
	char reason[200];
};

struct wait_host {
	char name[64];
	char state[24];
	char error[200];
};

struct wait_state {
	const char *host; /* --host, or NULL */
	const struct wait_target *targets;
	size_t n_targets;
	struct wait_fwd *fwds;
	size_t n_fwds;
	struct wait_host *hosts;
	size_t n_hosts;
	int replayed;     /* the replay of the current state is complete */
	char closed[200]; /* the daemon cut the stream, and why */
};

void wait_init(struct wait_state *w, const char *host, const struct wait_target *t, size_t n);
void wait_free(struct wait_state *w);
/* One event object of the stream (docs/events.md). */
void wait_feed(struct wait_state *w, const json_t *ev);
/* 1 when every target has forwards and all of them are active on a host
 * that is up; their addresses (bind, port) are then in *addrs (malloc'd,
 * *n_addrs of them) for the caller to connect to.  0 otherwise. */
struct wait_addr {
	char bind[64];
	int port;
};
int wait_check(const struct wait_state *w, struct wait_addr **addrs, size_t *n_addrs);
/* Why target i is not ready, one line. */
void wait_explain(const struct wait_state *w, size_t i, char *buf, size_t len);

struct run_opts;
/* rdhpf wait [--host H] [--timeout D] (PORT… | --container NAME…) */
int wait_run(const char *rundir, const char *host, long timeout_ms, const struct wait_target *t,
             size_t n);
/* rdhpf events [--format json|logfmt] [--host H] [--since-start] */
int events_run(const char *rundir, const char *host, int since_start, int logfmt, FILE *out);

#endif
