/* systemd readiness without libsystemd: the NOTIFY_SOCKET datagram protocol
 * (sd_notify(3)).  READY=1 once every host has synced or failed for the
 * first time, STATUS= with hosts up and forwards active, WATCHDOG=1 at half
 * of WATCHDOG_USEC, STOPPING=1 on shutdown.  Does nothing without
 * NOTIFY_SOCKET. */
#ifndef RDHPF_NOTIFY_H
#define RDHPF_NOTIFY_H

#include <stddef.h>

struct host;

/* Reads (and unsets, so that children do not inherit them) NOTIFY_SOCKET,
 * WATCHDOG_USEC and WATCHDOG_PID.  0 when there is nobody to tell. */
int notify_init(void);
/* hosts: the daemon's current hosts; called whenever a host or forward
 * changed.  Sends READY=1 the first time all are settled, STATUS= when it
 * changed. */
void notify_update(struct host *const *hosts, size_t n);
void notify_stopping(void);
void notify_close(void);
/* Pure: the datagram for the current state, e.g. "STATUS=2/3 hosts up, 14
 * forwards active".  For tests. */
void notify_status_text(char *buf, size_t len, size_t up, size_t hosts, size_t active);

#endif
