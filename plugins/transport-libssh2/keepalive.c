/* transport-libssh2, keepalive: the keepalive probe on a private session channel, liveness
 * from its answers (rsdk_live), and health_check. */
#include "ls2.h"

/* ---- keepalive ------------------------------------------------------------ */

/* The remote answered a probe (or proved itself some other way): count it,
 * and answer the health checks waiting for it. */
static void
ka_answered(struct ls2 *ls)
{
	rsdk_keepalive_answered(&ls->kal);
	rsdk_pending_settle_later(&ls->health, RDHPF_OK, NULL);
}

/* The keepalive channel is open: sshd answered its open. */
void
ls2_ka_opened(struct ls2 *ls)
{
	rsdk_keepalive_set_fallback(&ls->kal, false);
	ka_answered(ls);
}

void
ls2_ka_probe(struct ls2 *ls)
{
	int rc;

	if (ls->ka.ch == NULL || ls->ka.state != CS_OPEN)
		return;
	if (!ls->ka_inflight)
		rsdk_keepalive_sent(&ls->kal);
	rc = libssh2_channel_setenv_ex(ls->ka.ch, KA_ENV, (unsigned)strlen(KA_ENV), "1", 1);
	/* EAGAIN: waiting for the reply (retried as bytes come in); any answer,
	 * success or refusal, completes the probe. */
	ls->ka_inflight = rc == LIBSSH2_ERROR_EAGAIN;
	if (rc == 0 || rc == LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED) {
		ka_answered(ls);
	} else if (rc != LIBSSH2_ERROR_EAGAIN) {
		/* The probe channel broke: reopen it (its open is the next
		 * answer). */
		rsdk_live_lost(&ls->kal.live);
		ls2_zombie_add(ls, ls->ka.ch);
		ls->ka.ch = NULL;
		ls2_chan_unlink(ls, &ls->ka);
		ls2_openq_push_front(ls, &ls->ka);
	}
}

/* ---- the SDK's driver calls these ---------------------------------------- */

/* Every tick: a probe when one is due (in the fallback, where libssh2
 * swallows the replies, libssh2's own keepalive and any inbound byte
 * counts), then a service turn. */
static void
ka_on_tick(void *ud, int act)
{
	struct ls2 *ls = ud;

	if (ls->phase != PH_READY)
		return;
	if (ls->kal.fallback) {
		int next = 0;
		libssh2_keepalive_send(ls->s, &next);
		/* Its reply is read only through a channel: with none (no session
		 * channel allowed, no forwarded connection), ask for the probe
		 * channel again.  The open is read through, its refusal is an
		 * answer, and if sshd now allows it, probing is exact again. */
		if (!ls2_can_pull(ls) && !ls->ka.queued)
			ls2_openq_push_front(ls, &ls->ka);
	} else if (act == RSDK_LIVE_SEND) {
		ls2_ka_probe(ls);
	}
	ls2_service(ls);
}

static void
ka_on_dead(void *ud, const char *detail)
{
	struct ls2 *ls = ud;

	if (ls->phase == PH_READY)
		ls2_session_dead(ls, RDHPF_ERR_TIMEOUT, detail);
}

static const struct rsdk_keepalive_ops KA_OPS = {ka_on_tick, ka_on_dead, NULL};

void
ls2_ka_start(struct ls2 *ls)
{
	memset(&ls->ka, 0, sizeof ls->ka);
	ls->ka.ls = ls;
	ls->ka.kind = CK_KA;
	ls->ka_inflight = false;
	rsdk_keepalive_start(&ls->kal, ls2_H, ls->ctx, &KA_OPS, ls, ls->hostname, ls->port, ls->fd,
	                     ls->ka_interval_ms, ls->ka_count);
	ls2_openq_push_front(ls, &ls->ka);
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
	last = rsdk_keepalive_last(&ls->kal);
	if (ls2_now_ms(ls) < last + 1000)
		return ls2_complete_later(ls, done, arg, RDHPF_OK, NULL);
	/* Ask the server something and wait for its answer. */
	to = ls->ka_interval_ms ? ls->ka_interval_ms * (ls->ka_count ? ls->ka_count : 1)
	                        : ls->connect_timeout_ms;
	if (rsdk_op_start(&ls->health, done, arg, to, "no answer from the ssh server") == NULL)
		return RDHPF_ERR_NOMEM;
	if (ls->kal.fallback || ls->ka.ch == NULL) {
		int next = 0;
		libssh2_keepalive_send(ls->s, &next);
	} else if (!ls->ka_inflight) {
		ls2_ka_probe(ls);
	}
	ls2_sess_update_io(ls);
	return RDHPF_OK;
}
