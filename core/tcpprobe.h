/* While a host is down: try its TCP port cheaply and often (a connect, no
 * SSH handshake) and say when it accepts, so the supervisor can start the
 * handshake then instead of at its next backoff step.  Only a port seen
 * closed (refused, unreachable, no answer) and then open is reported, so a
 * port that is open all along (sshd up but refusing us, or dropping us at
 * MaxStartups) never shortens a backoff or a breaker cooldown. */
#ifndef RDHPF_TCPPROBE_H
#define RDHPF_TCPPROBE_H

#include <stdint.h>

#include <uv.h>

struct tcp_probe;
typedef void (*tcp_probe_fn)(void *arg);

/* Each connect of a probe is given at most every_ms times this. */
#define TCP_PROBE_TRY_FACTOR 5

/* Probe host:port every every_ms (one connect at a time, each given at
 * most every_ms × TCP_PROBE_TRY_FACTOR).  on_open runs at most once, after which the probe
 * is idle until tcp_probe_stop.  NULL when out of memory. */
struct tcp_probe *tcp_probe_start(uv_loop_t *loop, const char *host, uint16_t port,
                                  uint64_t every_ms, tcp_probe_fn on_open, void *arg);
/* When the port was last seen not answering (a refusal, or no answer
 * within the budget), in uv_hrtime() milliseconds; 0 if never. */
uint64_t tcp_probe_closed_ms(const struct tcp_probe *p);

/* No callback after this; the memory goes when libuv has closed the
 * handles.  NULL is fine. */
void tcp_probe_stop(struct tcp_probe *p);

#endif
