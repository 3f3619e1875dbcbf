/* The keepalive driver: rsdk_live on the host's timers (see rdhpf/sdk.h). */
#include <stdio.h>
#include <string.h>

#include "rdhpf/sdk.h"

static void ka_tick(void *arg);
static void dead_fire(void *arg);

static uint64_t
ka_now(const struct rsdk_keepalive *ka)
{
	return ka->H->now_ms(ka->ctx);
}

static void
timer_clear(const struct rdhpf_host_api *H, struct rdhpf_timer **t)
{
	if (*t != NULL) {
		H->timer_stop(*t);
		*t = NULL;
	}
}

void
rsdk_keepalive_start(struct rsdk_keepalive *ka, const struct rdhpf_host_api *H,
                     struct rdhpf_ctx *ctx, const struct rsdk_keepalive_ops *ops, void *ud,
                     const char *addr, unsigned port, int fd, uint64_t interval_ms, uint32_t count)
{
	rsdk_keepalive_stop(ka);
	memset(ka, 0, sizeof *ka);
	ka->H = H;
	ka->ctx = ctx;
	ka->ops = ops;
	ka->ud = ud;
	ka->addr = addr;
	ka->port = port;
	ka->fd = fd;
	rsdk_live_start(&ka->live, interval_ms, count, ka_now(ka));
	ka->last_rx_ms = ka->live.last_ms;
	if (rsdk_live_on(&ka->live))
		ka->tick_t = H->timer_start(ctx, interval_ms, interval_ms, ka_tick, ka);
}

void
rsdk_keepalive_stop(struct rsdk_keepalive *ka)
{
	if (ka->H == NULL)
		return;
	timer_clear(ka->H, &ka->tick_t);
	timer_clear(ka->H, &ka->dead_t);
}

void
rsdk_keepalive_sent(struct rsdk_keepalive *ka)
{
	rsdk_live_sent(&ka->live, ka_now(ka));
}

void
rsdk_keepalive_answered(struct rsdk_keepalive *ka)
{
	uint32_t missed = ka->live.unanswered;
	int64_t rtt = rsdk_live_answered(&ka->live, ka_now(ka));

	if (rtt >= 0)
		ka->H->observe(ka->ctx, "ssh_liveness_seconds", (double)rtt / 1000.0);
	if (missed > 0) {
		char ms[24];
		snprintf(ms, sizeof ms, "%lld", (long long)rtt);
		ka->H->log(ka->ctx, RDHPF_LOG_INFO, "ssh liveness: sshd answers again", "addr",
		           ka->addr, "took_ms", ms, NULL);
	}
}

void
rsdk_keepalive_rx(struct rsdk_keepalive *ka, uint64_t now_ms)
{
	if (now_ms > ka->last_rx_ms)
		ka->last_rx_ms = now_ms;
}

void
rsdk_keepalive_set_fallback(struct rsdk_keepalive *ka, bool on)
{
	ka->fallback = on;
	rsdk_live_lost(&ka->live);
}

uint64_t
rsdk_keepalive_last(const struct rsdk_keepalive *ka)
{
	if (ka->fallback && ka->last_rx_ms > ka->live.last_ms)
		return ka->last_rx_ms;
	return ka->live.last_ms;
}

/* What else proves the remote: the kernel's counts, or in the fallback any
 * inbound byte. */
static void
ka_observe(struct rsdk_keepalive *ka)
{
	uint64_t acked, received;
	bool losing;

	if (ka->ops->observe != NULL)
		ka->ops->observe(ka->ud);
	if (ka->fallback) {
		if (ka->last_rx_ms > ka->live.last_ms)
			ka->live.last_ms = ka->last_rx_ms;
		return;
	}
	if (ka->fd >= 0 && rsdk_tcp_counts(ka->fd, &acked, &received, &losing) == 0)
		rsdk_live_tcp(&ka->live, acked, received, losing, ka_now(ka));
}

/* True when the link was found dead: ops->dead has been called and ka may
 * be gone. */
static bool
ka_check_dead(struct rsdk_keepalive *ka)
{
	uint64_t now;
	char why[200], d[700], n[16];

	ka_observe(ka);
	now = ka_now(ka);
	if (!rsdk_live_dead(&ka->live, now))
		return false;
	rsdk_live_describe(&ka->live, now, why, sizeof why);
	snprintf(d, sizeof d, "%s:%u: %s%s: ssh session is dead", ka->addr, ka->port, why,
	         ka->fallback ? " (nothing received)" : "");
	snprintf(n, sizeof n, "%u", ka->live.unanswered);
	ka->H->log(ka->ctx, RDHPF_LOG_WARN, "ssh link dead: liveness probes unanswered", "addr",
	           ka->addr, "unanswered", n, NULL);
	ka->H->counter_add(ka->ctx, "ssh_liveness_dead_total", 1);
	rsdk_keepalive_stop(ka);
	ka->ops->dead(ka->ud, d);
	return true;
}

/* The one-shot timer at the deadline, armed once it falls before the next
 * tick. */
static void
dead_arm(struct rsdk_keepalive *ka)
{
	uint64_t now = ka_now(ka), due = rsdk_live_deadline(&ka->live);

	timer_clear(ka->H, &ka->dead_t);
	if (due <= now + ka->live.interval_ms)
		ka->dead_t =
		    ka->H->timer_start(ka->ctx, due > now ? due - now : 0, 0, dead_fire, ka);
}

static void
dead_fire(void *arg)
{
	struct rsdk_keepalive *ka = arg;

	timer_clear(ka->H, &ka->dead_t);
	if (!ka_check_dead(ka))
		dead_arm(ka);
}

/* Every tick sends a probe unless one is out, busy link or not: bytes the
 * remote sends by itself prove nothing about the way to it. */
static void
ka_tick(void *arg)
{
	struct rsdk_keepalive *ka = arg;
	int act;

	if (ka_check_dead(ka))
		return;
	act = ka->fallback ? RSDK_LIVE_SEND : rsdk_live_tick(&ka->live, ka_now(ka));
	if (act == RSDK_LIVE_WAIT) {
		char n[16], c[16];
		snprintf(n, sizeof n, "%u", ka->live.unanswered);
		snprintf(c, sizeof c, "%u", ka->live.count);
		ka->H->log(ka->ctx, RDHPF_LOG_INFO, "ssh liveness probe unanswered", "addr",
		           ka->addr, "unanswered", n, "keepalive_count", c, NULL);
		ka->H->counter_add(ka->ctx, "ssh_liveness_unanswered_total", 1);
	}
	dead_arm(ka); /* RSDK_LIVE_DEAD (the deadline passed since the look above): due now */
	ka->ops->tick(ka->ud, act); /* last: the transport may tear down */
}
