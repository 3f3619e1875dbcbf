/* Control socket (server in the daemon, client for `status`/`metrics`) and
 * the renderers of what it answers. */
#ifndef RDHPF_CONTROL_H
#define RDHPF_CONTROL_H

#include <stdio.h>

#include <jansson.h>

struct control;

/* Returns a malloc'd reply for one command line, or NULL if unknown. */
typedef char *(*control_handler_fn)(const char *cmd, void *arg);

struct control *control_start(const char *rundir, control_handler_fn handler, void *arg, char *err,
                              size_t errlen);
/* Closes the server and every connection, and removes the socket file. */
void control_stop(struct control *c);

/* Streams: a command the stream function takes (it returns 1) keeps its
 * connection open; the daemon sends lines with control_stream_send.  Any
 * other command (0) goes to the ordinary handler. */
struct control_stream;
typedef int (*control_stream_fn)(const char *cmd, struct control_stream *s, void *arg);
void control_set_stream(struct control *c, control_stream_fn fn);
/* One line (without its newline).  Never blocks: a client with more than a
 * bounded amount unread is sent a last line and cut off. */
void control_stream_send(struct control_stream *s, const char *line, size_t len);
/* Called once when the connection closes, whoever closes it. */
void control_stream_on_close(struct control_stream *s, void (*fn)(void *arg), void *arg);
/* Send {"type":"closed","reason":…} (if reason) and close. */
void control_stream_close(struct control_stream *s, const char *reason);

/* Client: connect and send cmd; the fd to read the answer from, or -1. */
int control_connect(const char *rundir, const char *cmd, char *err, size_t errlen);
/* Client: send cmd, read the whole answer into *out (malloc'd). */
int control_request(const char *rundir, const char *cmd, char **out, char *err, size_t errlen);

/* metrics_listen: GET /metrics over HTTP on ADDR:PORT. */
struct metrics_http;
struct metrics_http *metrics_http_start(const char *listen, char *err, size_t errlen);
void metrics_http_stop(struct metrics_http *m);

/* Prometheus text exposition of the metrics registry. */
char *metrics_text(void);

/* Human-readable status from the JSON the daemon sends. */
void status_table(json_t *status, FILE *out);

#endif
