/* transport-libssh2, keepalive: the keepalive probe on a private session channel, liveness
 * from the last inbound byte, and health_check. */
#include "ls2.h"

/* ---- keepalive ------------------------------------------------------------ */

void
ls2_ka_probe(struct ls2 *ls)
{
	int rc;

	if (ls->ka.ch == NULL || ls->ka.state != CS_OPEN)
		return;
	rc = libssh2_channel_setenv_ex(ls->ka.ch, KA_ENV, (unsigned)strlen(KA_ENV), "1", 1);
	/* EAGAIN: waiting for the reply (retried as bytes come in); any answer,
	 * success or refusal, completes the probe. */
	ls->ka_inflight = rc == LIBSSH2_ERROR_EAGAIN;
	if (rc != LIBSSH2_ERROR_EAGAIN && rc != 0 && rc != LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED) {
		/* The probe channel broke: reopen it. */
		ls2_zombie_add(ls, ls->ka.ch);
		ls->ka.ch = NULL;
		ls2_chan_unlink(ls, &ls->ka);
		ls2_openq_push_front(ls, &ls->ka);
	}
}

static void dead_fire(void *arg);

/* Dead when nothing came in for keepalive_interval × keepalive_count, plus
 * half an interval of grace: probes go out on interval ticks, so with
 * keepalive_count 1 the deadline would otherwise race the reply to the
 * probe sent at that very moment.  A blackhole is still reported within
 * interval × (count + 1/2) of its start. */
static uint64_t
ka_threshold(const struct ls2 *ls)
{
	return ls->ka_interval_ms * ls->ka_count + ls->ka_interval_ms / 2;
}

static void
dead_arm(struct ls2 *ls)
{
	uint64_t thr = ka_threshold(ls), now = ls2_now_ms(ls), due;

	if (ls->dead_timer) {
		ls2_H->timer_stop(ls->dead_timer);
		ls->dead_timer = NULL;
	}
	due = ls->last_rx_ms + thr;
	if (due <= now + ls->ka_interval_ms)
		ls->dead_timer =
		    ls2_H->timer_start(ls->ctx, due > now ? due - now : 0, 0, dead_fire, ls);
}

static bool
ka_check_dead(struct ls2 *ls)
{
	uint64_t thr = ka_threshold(ls), now = ls2_now_ms(ls);
	char d[256];

	if (now < ls->last_rx_ms + thr)
		return false;
	snprintf(
	    d, sizeof d,
	    "no reply from %s:%u for %llu ms (keepalive_interval %llu ms x keepalive_count %u): "
	    "ssh session is dead",
	    ls->hostname, ls->port, (unsigned long long)(now - ls->last_rx_ms),
	    (unsigned long long)ls->ka_interval_ms, ls->ka_count);
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

static void
ka_tick(void *arg)
{
	struct ls2 *ls = arg;
	uint64_t now = ls2_now_ms(ls);

	if (ls->phase != PH_READY)
		return;
	if (ka_check_dead(ls))
		return;
	/* Probe only a quiet link: traffic already proves it alive.  Half an
	 * interval, so that a tick landing a millisecond early still probes. */
	if (now >= ls->last_rx_ms + ls->ka_interval_ms / 2) {
		if (ls->ka_fallback) {
			int next = 0;
			libssh2_keepalive_send(ls->s, &next);
		} else if (!ls->ka_inflight) {
			ls2_ka_probe(ls);
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
	ls2_openq_push_front(ls, &ls->ka);
	if (ls->ka_interval_ms == 0 || ls->ka_count == 0)
		return;
	ls->ka_timer =
	    ls2_H->timer_start(ls->ctx, ls->ka_interval_ms, ls->ka_interval_ms, ka_tick, ls);
}

static void
health_fire(void *arg)
{
	struct ls2 *ls = arg;

	ls2_H->timer_stop(ls->health_t);
	ls->health_t = NULL;
	rsdk_pending_fail_all(&ls->health, ls->health_status,
	                      ls->health_detail[0] ? ls->health_detail : NULL);
}

/* Answer every health check waiting now, from the loop: never from inside
 * ls2_service() or a teardown, where the core's callback could call a slot.
 * An error in the same turn overrides an OK (the session died after all). */
void
ls2_health_complete(struct ls2 *ls, int status, const char *detail)
{
	if (rsdk_pending_count(&ls->health) == 0)
		return;
	if (ls->health_t == NULL || status != RDHPF_OK) {
		ls->health_status = status;
		snprintf(ls->health_detail, sizeof ls->health_detail, "%s", detail ? detail : "");
	}
	if (ls->health_t == NULL)
		ls->health_t = ls2_H->timer_start(ls->ctx, 0, 0, health_fire, ls);
	if (ls->health_t == NULL) /* no timer: answering now beats never */
		rsdk_pending_fail_all(&ls->health, status, detail);
}

int
ls2_health(void *state, rdhpf_done_fn done, void *arg)
{
	struct ls2 *ls = state;
	uint64_t to;

	if (ls->phase != PH_READY)
		return ls2_complete_later(ls, done, arg, RDHPF_ERR_NOTCONN, "not connected");
	if (ls2_now_ms(ls) < ls->last_rx_ms + 1000)
		return ls2_complete_later(ls, done, arg, RDHPF_OK, NULL);
	/* Ask the server something and wait for any byte back. */
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
