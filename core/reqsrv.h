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

/* Streams: a request the stream function takes (it returns 1; -1: not a
 * whole request yet; 0: not a stream, answer it) keeps its connection, past
 * the deadline and out of eviction, and the owner sends lines on it.  A
 * client that does not read never slows the daemon: past stream_queue_max
 * unsent bytes it is sent a last line saying so and closed within a second. */
struct reqsrv_stream;
typedef int (*reqsrv_stream_fn)(const char *req, size_t len, struct reqsrv_stream *s, void *arg);

struct reqsrv_opts {
	const char *what;     /* metrics label (plugin="…") and log tag */
	size_t max_conns;     /* open connections at most */
	size_t max_request;   /* bytes; a longer request is dropped */
	uint64_t deadline_ms; /* from accept to close */
	reqsrv_answer_fn answer;
	reqsrv_stream_fn stream; /* NULL: no streams */
	size_t stream_queue_max;
	void *arg;
};

/* One line (the newline is added). */
void reqsrv_stream_send(struct reqsrv_stream *s, const char *line, size_t len);
/* Called once when the stream's connection closes, whoever closes it. */
void reqsrv_stream_on_close(struct reqsrv_stream *s, void (*fn)(void *arg), void *arg);
/* Send {"type":"closed","reason":…} (if reason), then close. */
void reqsrv_stream_close(struct reqsrv_stream *s, const char *reason);

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
