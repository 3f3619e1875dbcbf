/* The live event stream (`rdhpf events`, `rdhpf wait`): host state changes
 * and the life of each forward, as one JSON object a line.  Documented in
 * docs/events.md; docs/events.schema.json is its schema.
 *
 * Emitting costs nothing while nobody listens: the JSON is built only when
 * there is a subscriber.  A subscriber is a sink (the control socket's
 * connection) that must never block: it bounds its own queue. */
#ifndef RDHPF_EVENTS_H
#define RDHPF_EVENTS_H

#include <stddef.h>

#include <jansson.h>

#include "reconcile.h"

/* Receives one line (no newline) of a malloc'd-by-nobody buffer: copy it. */
typedef void (*events_sink_fn)(void *arg, const char *line, size_t len);

struct ev_sub;

/* host: only this host's events (NULL: all). */
struct ev_sub *events_subscribe(const char *host, events_sink_fn fn, void *arg);
void events_unsubscribe(struct ev_sub *s);
size_t events_subscribers(void);

/* A host went from one state to another; error is its last error or NULL. */
void events_host(const char *host, const char *from, const char *to, const char *error);

/* A forward's life: what is "added", "active", "removed", "conflict",
 * "failed" or "skipped"; reason says why (NULL when there is nothing to say). */
void events_forward(const char *host, const char *what, const struct rc_forward *f,
                    const char *reason);

/* For a replay (--since-start): the same objects, sent to one subscriber
 * only and marked "replay": true. */
void events_host_to(struct ev_sub *s, const char *host, const char *state, const char *error);
void events_forward_to(struct ev_sub *s, const char *host, const char *what,
                       const struct rc_forward *f, const char *reason);
/* Any object (the caller's reference is taken) to one subscriber. */
void events_send_to(struct ev_sub *s, json_t *o);

#endif
