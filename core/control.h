/* Control socket (server in the daemon, client for `status`/`metrics`) and
 * the renderers of what it answers. */
#ifndef RDHPF_CONTROL_H
#define RDHPF_CONTROL_H

#include <stdio.h>

#include <jansson.h>

struct control;

/* Returns a malloc'd reply for one command line, or NULL if unknown. */
typedef char *(*control_handler_fn)(const char *cmd, void *arg);

struct control *control_start(const char *rundir, control_handler_fn handler, void *arg,
                              char *err, size_t errlen);
/* Closes the server and removes the socket file. */
void control_stop(struct control *c);

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
