/* A one-request, one-answer server on the loop: the control socket and
 * metrics_listen.  Every connection is on its server's list, so that
 * stopping the server closes them all at once (shutdown never waits for a
 * client); each has a deadline (an idle client cannot hold an fd for ever);
 * and their number is capped, so that clients cannot take every fd of the
 * daemon.  At the cap a new connection takes the place of the oldest one
 * still waiting for its request: a real request gets through however many
 * idle connections are held open. */
#ifndef RDHPF_REQSRV_H
#define RDHPF_REQSRV_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/* req is NUL-terminated (len bytes).  NULL: not a whole request yet; else a
 * malloc'd answer, written before the connection closes. */
typedef char *(*reqsrv_answer_fn)(const char *req, size_t len, void *arg);

struct reqsrv_opts {
	const char *what;     /* metrics label (plugin="…") and log tag */
	size_t max_conns;     /* open connections at most */
	size_t max_request;   /* bytes; a longer request is dropped */
	uint64_t deadline_ms; /* from accept to close */
	reqsrv_answer_fn answer;
	void *arg;
};

struct reqsrv;

/* Listen on a Unix socket at path (bound, then chmod'ed to mode) or on a TCP
 * address.  NULL with err filled on failure. */
struct reqsrv *reqsrv_pipe(const char *path, int mode, const struct reqsrv_opts *o, char *err,
                           size_t errlen);
struct reqsrv *reqsrv_tcp(const struct sockaddr *sa, const struct reqsrv_opts *o, char *err,
                          size_t errlen);
/* Close the server and every connection now; frees s once the loop has
 * closed the handles. */
void reqsrv_stop(struct reqsrv *s);

#endif
