/* The remote engine as a local socket (engine_socket = yes): a Unix socket
 * in the runtime directory (0600) whose every connection is relayed to the
 * engine's API socket on the remote, over the host's one SSH connection
 * (the transport's open_unix: direct-streamlocal).  `docker` pointed at it
 * pays no SSH handshake per command. */
#ifndef RDHPF_ENGINE_SOCK_H
#define RDHPF_ENGINE_SOCK_H

#include <stddef.h>

struct host;
struct engine_sock;

/* Where the remote engine's socket is: the engine_socket value when it is a
 * path; else the host's `socket` option (docker runtime); else the runtime's
 * usual place. */
const char *engine_remote_path(const char *engine_socket, const char *runtime,
                               const char *socket_option);
/* RUNDIR/engine-NAME.sock, NAME with anything but [A-Za-z0-9._-] as '_'.
 * -1 if it does not fit a socket path. */
int engine_local_path(char *buf, size_t len, const char *rundir, const char *host);

struct engine_sock *engine_sock_start(struct host *h, const char *host_name, const char *local_path,
                                      const char *remote_path, char *err, size_t errlen);
/* Closes the socket and every relayed connection; removes the file. */
void engine_sock_stop(struct engine_sock *e);

#endif
