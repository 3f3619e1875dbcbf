/* A client of the Docker Engine API (and of Podman's Docker-compatible
 * API) over byte streams from the host API, never blocking.
 *
 * Two connections, each one long-lived stream to the engine's API socket:
 *   api     requests pipelined FIFO with keep-alive: GET /_ping (arms the
 *           watch and reads the engine's clock), GET /containers/json (list),
 *           GET /containers/ID/json (ports, image and labels of a started
 *           container)
 *   events  one GET /events?since=…&filters=… whose chunked body never ends;
 *           its HTTP 200 is the watch's on_established
 * A stream is the remote Unix socket where the transport can open one, or
 * a long-lived remote command that relays stdio to it (`docker system
 * dial-stdio`).  Nothing is started on the remote per event. */
#ifndef RDHPF_ENGINE_H
#define RDHPF_ENGINE_H

#include "rtio.h"

enum eng_mode {
	ENG_AUTO = 0, /* the Unix socket, else (unsupported, or it fails before answering) exec */
	ENG_UNIX = 1,
	ENG_EXEC = 2,
};

struct eng_opts {
	int mode;                     /* enum eng_mode */
	const char *socket;           /* remote path of the API socket */
	const char *const *exec_argv; /* relays stdio to the API socket */
	const char *events_filters;   /* URL-encoded JSON for GET /events */
	int (*parse_event)(const char *line, size_t len, struct rt_event *ev,
	                   const struct rt_diag *d);
};

struct eng;

/* Copies what o points to.  NULL on ENOMEM. */
struct eng *eng_new(struct rt *r, const struct eng_opts *o);
void eng_free(struct eng *e);

/* The runtime ops, with r->wcbs already set for watch. */
int eng_watch(struct eng *e);
int eng_list(struct eng *e, rdhpf_list_fn done, void *arg);
/* A START's ports: GET /containers/ID/json, pipelined; the item is filled
 * when the answer comes (the runtime's rt.want_ports). */
int eng_want_ports(struct eng *e, struct rt_item *it);
/* Drop what a previous watch left: the event stream, and the answers
 * still due to its ping and inspects (they will be discarded). */
void eng_unwatch(struct eng *e);
/* Close both connections; no callback follows. */
void eng_stop(struct eng *e);

#endif
