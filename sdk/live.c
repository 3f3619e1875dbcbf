/* Liveness bookkeeping shared by the transports (see rdhpf/sdk.h). */
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "rdhpf/sdk.h"

void
rsdk_live_start(struct rsdk_live *lv, uint64_t interval_ms, uint32_t count, uint64_t now_ms)
{
	memset(lv, 0, sizeof *lv);
	lv->interval_ms = interval_ms;
	lv->count = count;
	lv->last_ms = now_ms;
}

bool
rsdk_live_on(const struct rsdk_live *lv)
{
	return lv->interval_ms > 0 && lv->count > 0;
}

uint64_t
rsdk_live_deadline(const struct rsdk_live *lv)
{
	return lv->last_ms + lv->interval_ms * lv->count + lv->interval_ms / 2;
}

bool
rsdk_live_dead(const struct rsdk_live *lv, uint64_t now_ms)
{
	return rsdk_live_on(lv) && now_ms >= rsdk_live_deadline(lv);
}

int
rsdk_live_tick(struct rsdk_live *lv, uint64_t now_ms)
{
	if (rsdk_live_dead(lv, now_ms))
		return RSDK_LIVE_DEAD;
	if (lv->out) {
		lv->unanswered++;
		return RSDK_LIVE_WAIT;
	}
	return RSDK_LIVE_SEND;
}

void
rsdk_live_sent(struct rsdk_live *lv, uint64_t now_ms)
{
	lv->out = true;
	lv->sent_ms = now_ms;
}

int64_t
rsdk_live_answered(struct rsdk_live *lv, uint64_t now_ms)
{
	int64_t rtt = -1;

	if (lv->out)
		rtt = now_ms >= lv->sent_ms ? (int64_t)(now_ms - lv->sent_ms) : 0;
	lv->out = false;
	lv->unanswered = 0;
	if (now_ms > lv->last_ms)
		lv->last_ms = now_ms;
	return rtt;
}

void
rsdk_live_lost(struct rsdk_live *lv)
{
	lv->out = false;
}

void
rsdk_live_tcp(struct rsdk_live *lv, uint64_t acked, uint64_t received, bool losing, uint64_t now_ms)
{
	if (lv->tcp_ms != 0 && received > lv->received && (acked > lv->acked || !losing) &&
	    lv->tcp_ms > lv->last_ms)
		lv->last_ms = lv->tcp_ms;
	lv->acked = acked;
	lv->received = received;
	lv->tcp_ms = now_ms;
}

void
rsdk_live_describe(const struct rsdk_live *lv, uint64_t now_ms, char *out, size_t outlen)
{
	snprintf(out, outlen,
	         "no answer for %llu ms (keepalive_interval %llu ms x keepalive_count %u; %u "
	         "probes unanswered)",
	         (unsigned long long)(now_ms > lv->last_ms ? now_ms - lv->last_ms : 0),
	         (unsigned long long)lv->interval_ms, lv->count, lv->unanswered);
}

int
rsdk_tcp_counts(int fd, uint64_t *acked, uint64_t *received, bool *losing)
{
	struct tcp_info ti;
	socklen_t len = sizeof ti;

	memset(&ti, 0, sizeof ti);
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
		return -1;
	if (len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received)
		return -1;
	*acked = ti.tcpi_bytes_acked;
	*received = ti.tcpi_bytes_received;
	/* A retransmission timeout fired and is not recovered: what we sent
	 * last is not getting through. */
	*losing = ti.tcpi_retransmits > 0 || ti.tcpi_backoff > 0;
	return 0;
}
