/* transport-libssh2, keepalive: the keepalive probe on a private session channel, liveness
 * from its answers (rsdk_live), and health_check. */
#include "ls2.h"

/* ---- keepalive ------------------------------------------------------------ */

/* The remote answered a probe (or proved itself some other way): count it,
 * and answer the health checks waiting for it. */
static void
ka_answered(struct ls2 *ls)
{
	uint32_t missed = ls->live.unanswered;
	int64_t rtt = rsdk_live_answered(&ls->live, ls2_now_ms(ls));

	if (rtt >= 0)
		ls2_H->observe(ls->ctx, "ssh_liveness_seconds", (double)rtt / 1000.0);
	if (missed > 0) {
		char ms[24];
		snprintf(ms, sizeof ms, "%lld", (long long)rtt);
		ls2_H->log(ls->ctx, RDHPF_LOG_INFO, "ssh liveness: sshd answers again", "addr",
		           ls->hostname, "took_ms", ms, NULL);
	}
	rsdk_pending_settle_later(&ls->health, RDHPF_OK, NULL);
}

/* The keepalive channel is open: sshd answered its open. */
void
ls2_ka_opened(struct ls2 *ls)
{
	ka_answered(ls);
}

void
ls2_ka_probe(struct ls2 *ls)
{
	int rc;

	if (ls->ka.ch == NULL || ls->ka.state != CS_OPEN)
		return;
	if (!ls->ka_inflight)
		rsdk_live_sent(&ls->live, ls2_now_ms(ls));
	rc = libssh2_channel_setenv_ex(ls->ka.ch, KA_ENV, (unsigned)strlen(KA_ENV), "1", 1);
	/* EAGAIN: waiting for the reply (retried as bytes come in); any answer,
	 * success or refusal, completes the probe. */
	ls->ka_inflight = rc == LIBSSH2_ERROR_EAGAIN;
	if (rc == 0 || rc == LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED) {
		ka_answered(ls);
	} else if (rc != LIBSSH2_ERROR_EAGAIN) {
		/* The probe channel broke: reopen it (its open is the next
		 * answer). */
		rsdk_live_lost(&ls->live);
		ls2_zombie_add(ls, ls->ka.ch);
		ls->ka.ch = NULL;
		ls2_chan_unlink(ls, &ls->ka);
		ls2_openq_push_front(ls, &ls->ka);
	}
}

static void dead_fire(void *arg);

/* Read the kernel's counts (rsdk_live_tcp, see rdhpf/sdk.h); in
 * the fallback, where libssh2 swallows the replies, any inbound byte is
 * taken as the answer, as before. */
static void
ka_observe(struct ls2 *ls)
{
	uint64_t acked, received;
	bool losing;

	if (ls->ka_fallback) {
		if (ls->last_rx_ms > ls->live.last_ms)
			ls->live.last_ms = ls->last_rx_ms;
		return;
	}
	if (ls->fd >= 0 && rsdk_tcp_counts(ls->fd, &acked, &received, &losing) == 0)
		rsdk_live_tcp(&ls->live, acked, received, losing, ls2_now_ms(ls));
}

/* The one-shot timer at the deadline, armed once it falls before the next
 * tick: the tick alone would find it up to an interval late. */
static void
dead_arm(struct ls2 *ls)
{
	uint64_t now = ls2_now_ms(ls), due = rsdk_live_deadline(&ls->live);

	if (ls->dead_timer) {
		ls2_H->timer_stop(ls->dead_timer);
		ls->dead_timer = NULL;
	}
	if (due <= now + ls->ka_interval_ms)
		ls->dead_timer =
		    ls2_H->timer_start(ls->ctx, due > now ? due - now : 0, 0, dead_fire, ls);
}

static bool
ka_check_dead(struct ls2 *ls)
{
	uint64_t now = ls2_now_ms(ls);
	char why[200], d[400], n[16];

	ka_observe(ls);
	if (!rsdk_live_dead(&ls->live, now))
		return false;
	rsdk_live_describe(&ls->live, now, why, sizeof why);
	snprintf(d, sizeof d, "%s:%u: %s%s: ssh session is dead", ls->hostname, ls->port, why,
	         ls->ka_fallback ? " (nothing received)" : "");
	snprintf(n, sizeof n, "%u", ls->live.unanswered);
	ls2_H->log(ls->ctx, RDHPF_LOG_WARN, "ssh link dead: liveness probes unanswered", "addr",
	           ls->hostname, "unanswered", n, NULL);
	ls2_H->counter_add(ls->ctx, "ssh_liveness_dead_total", 1);
	ls2_session_dead(ls, RDHPF_ERR_TIMEOUT, d);
	return true;
}

static void
dead_fire(void *arg)
{
	struct ls2 *ls = arg;

	ls2_H->timer_stop(ls->dead_timer);
	ls->dead_timer = NULL;
	if (ls->phase == PH_READY && !ka_check_dead(ls))
		dead_arm(ls);
}

/* Every tick sends a probe unless one is out, busy link or not: bytes the
 * remote sends by itself prove nothing about the way to it. */
static void
ka_tick(void *arg)
{
	struct ls2 *ls = arg;
	uint64_t now = ls2_now_ms(ls);

	if (ls->phase != PH_READY)
		return;
	if (ka_check_dead(ls))
		return;
	if (ls->ka_fallback) {
		int next = 0;
		libssh2_keepalive_send(ls->s, &next);
	} else {
		switch (rsdk_live_tick(&ls->live, now)) {
		case RSDK_LIVE_SEND:
			ls2_ka_probe(ls);
			break;
		case RSDK_LIVE_WAIT: {
			char n[16], c[16];
			snprintf(n, sizeof n, "%u", ls->live.unanswered);
			snprintf(c, sizeof c, "%u", ls->ka_count);
			ls2_H->log(ls->ctx, RDHPF_LOG_INFO, "ssh liveness probe unanswered", "addr",
			           ls->hostname, "unanswered", n, "keepalive_count", c, NULL);
			ls2_H->counter_add(ls->ctx, "ssh_liveness_unanswered_total", 1);
			break;
		}
		default:
			break;
		}
	}
	dead_arm(ls);
	ls2_service(ls);
}

void
ls2_ka_start(struct ls2 *ls)
{
	memset(&ls->ka, 0, sizeof ls->ka);
	ls->ka.ls = ls;
	ls->ka.kind = CK_KA;
	ls->ka_inflight = false;
	ls->ka_fallback = false;
	rsdk_live_start(&ls->live, ls->ka_interval_ms, ls->ka_count, ls2_now_ms(ls));
	ls2_openq_push_front(ls, &ls->ka);
	if (!rsdk_live_on(&ls->live))
		return;
	ls->ka_timer =
	    ls2_H->timer_start(ls->ctx, ls->ka_interval_ms, ls->ka_interval_ms, ka_tick, ls);
}

/* Health checks are answered through rsdk_pending_settle_later: from the
 * loop, never from inside ls2_service() or a teardown, where the core's
 * callback could call a slot. */

int
ls2_health(void *state, rdhpf_done_fn done, void *arg)
{
	struct ls2 *ls = state;
	uint64_t to, last;

	if (ls->phase != PH_READY)
		return ls2_complete_later(ls, done, arg, RDHPF_ERR_NOTCONN, "not connected");
	last = ls->ka_fallback && ls->last_rx_ms > ls->live.last_ms ? ls->last_rx_ms
	                                                            : ls->live.last_ms;
	if (ls2_now_ms(ls) < last + 1000)
		return ls2_complete_later(ls, done, arg, RDHPF_OK, NULL);
	/* Ask the server something and wait for its answer. */
	to = ls->ka_interval_ms ? ls->ka_interval_ms * (ls->ka_count ? ls->ka_count : 1)
	                        : ls->connect_timeout_ms;
	if (rsdk_op_start(&ls->health, done, arg, to, "no answer from the ssh server") == NULL)
		return RDHPF_ERR_NOMEM;
	if (ls->ka_fallback || ls->ka.ch == NULL) {
		int next = 0;
		libssh2_keepalive_send(ls->s, &next);
	} else if (!ls->ka_inflight) {
		ls2_ka_probe(ls);
	}
	ls2_sess_update_io(ls);
	return RDHPF_OK;
}
