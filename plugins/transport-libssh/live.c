/* transport-libssh: the keepalive — a probe the remote must answer, on a
 * private session channel, counted by rsdk_live (the SDK's counting, the
 * same for every transport).
 *
 * The probe is a want-reply "env" request on a session channel that never
 * runs a command: sshd answers it (a refusal is an answer) after a round
 * trip, and libssh 0.10 lets us see that answer through the request's
 * non-blocking state (ssh_channel_request_env returns SSH_AGAIN until it
 * came).  keepalive@openssh.com (ssh_send_keepalive) cannot serve: libssh
 * swallows its reply.  So it is only the fallback when sshd refuses the
 * session channel (MaxSessions), and then any inbound byte counts, as
 * before.
 *
 * One probe per keepalive_interval, busy link or not: bytes the remote
 * sends by itself (events, data it had queued) prove nothing about the way
 * to it.  With ours not being lost (acknowledged, or no retransmission
 * timeout pending) they do (rsdk_live_tcp): that keeps alive a link whose probe answer
 * waits behind a long download or a busy sshd.  Dead
 * after interval x count plus half an interval without an answer; a
 * one-shot timer at that deadline finds it on time. */
#include <stdio.h>
#include <string.h>

/* ssh_send_keepalive is declared with the server API, but is a plain
 * keepalive@openssh.com global request that clients may send. */
#include <libssh/server.h>

#include "lsh.h"

#define H lsh_H
#define KA_ENV "RDHPF_KEEPALIVE"

static void
ka_answered(struct lsh *ls)
{
	uint32_t missed = ls->live.unanswered;
	int64_t rtt = rsdk_live_answered(&ls->live, lsh_now(ls));

	if (rtt >= 0)
		H->observe(ls->ctx, "ssh_liveness_seconds", (double)rtt / 1000.0);
	if (missed > 0) {
		char ms[24];
		snprintf(ms, sizeof ms, "%lld", (long long)rtt);
		H->log(ls->ctx, RDHPF_LOG_INFO, "ssh liveness: sshd answers again", "addr",
		       ls->target, "took_ms", ms, NULL);
	}
	rsdk_pending_settle_later(&ls->health, RDHPF_OK, NULL);
}

static void
ka_fall_back(struct lsh *ls, const char *why)
{
	lsh_chan_release(&ls->ka);
	ls->ka.state = CS_DONE;
	ls->ka_req = false;
	rsdk_live_lost(&ls->live);
	if (ls->ka_fallback)
		return;
	ls->ka_fallback = true;
	H->log(ls->ctx, RDHPF_LOG_WARN,
	       "the server refused the keepalive session channel (likely its MaxSessions); "
	       "using keepalive@openssh.com, whose replies libssh keeps to itself: any "
	       "inbound byte counts as an answer",
	       "addr", ls->target, "err", why, NULL);
}

/* The keepalive channel: opened when the session is ready, reopened when
 * it breaks; its open is a probe too (sshd answers it). */
static void
ka_open(struct lsh *ls)
{
	ls->ka.ls = ls;
	ls->ka.kind = CK_KA;
	ls->ka_req = false;
	if (lsh_chan_new(&ls->ka) != 0) {
		ka_fall_back(ls, "cannot make a channel");
		return;
	}
	ls->ka.state = CS_OPENING;
	if (!ls->live.out)
		rsdk_live_sent(&ls->live, lsh_now(ls));
	lsh_opening_add(&ls->ka);
	lsh_kick(ls);
}

/* Inside lsh_enter/leave.  Opens the channel, then sends a probe or looks
 * at the one out. */
void
lsh_ka_step(struct lsh *ls)
{
	int rc;

	if (ls->ka.state == CS_OPENING) {
		rc = ssh_channel_open_session(ls->ka.ch);
		if (rc == SSH_AGAIN)
			return;
		lsh_opening_remove(&ls->ka);
		if (rc != SSH_OK) {
			char why[400];
			snprintf(why, sizeof why, "%s", ssh_get_error(ls->s));
			snprintf(why + strlen(why), sizeof why - strlen(why), "%s",
			         lsh_open_hint(ls, CK_KA, why));
			ka_fall_back(ls, why);
			return;
		}
		ls->ka.state = CS_OPEN;
		ka_answered(ls);
		return;
	}
	if (ls->ka.state != CS_OPEN || !ls->ka_req)
		return;
	rc = ssh_channel_request_env(ls->ka.ch, KA_ENV, "1");
	if (rc == SSH_AGAIN)
		return;
	ls->ka_req = false;
	/* A refusal is an answer; the error code is the session's last, so
	 * it counts only while the session and channel are still up. */
	if (rc == SSH_OK || (ssh_get_error_code(ls->s) == SSH_REQUEST_DENIED &&
	                     ssh_is_connected(ls->s) && ssh_channel_is_open(ls->ka.ch))) {
		ka_answered(ls);
		return;
	}
	/* The channel broke under the request: a new one (whose open is the
	 * next probe).  A broken session is noticed by lsh_leave. */
	rsdk_live_lost(&ls->live);
	lsh_chan_release(&ls->ka);
	ka_open(ls);
}

/* The channel was closed by the server (service turn, from the ready
 * list): open another. */
void
lsh_ka_service(struct lsh *ls)
{
	if (ls->ka.state != CS_OPEN || !(ls->ka.r_eof || ls->ka.r_closed))
		return;
	rsdk_live_lost(&ls->live);
	lsh_chan_release(&ls->ka);
	ka_open(ls);
}

/* Send a probe now unless one is out (inside lsh_enter/leave). */
static void
ka_probe(struct lsh *ls)
{
	if (ls->ka_fallback) {
		/* libssh 0.10 keeps one global request in flight: a call while
		 * a reply is outstanding only polls; a call after the reply
		 * arrived only collects it.  Two calls send exactly one probe
		 * unless one is outstanding. */
		ssh_send_keepalive(ls->s);
		ssh_send_keepalive(ls->s);
		return;
	}
	if (ls->ka.state != CS_OPEN || ls->ka_req || ls->live.out)
		return;
	rsdk_live_sent(&ls->live, lsh_now(ls));
	ls->ka_req = true;
	lsh_ka_step(ls);
}

void
lsh_ka_probe_now(struct lsh *ls)
{
	ka_probe(ls);
}

/* What else proves the remote: the kernel's acknowledged bytes, or in the
 * fallback any inbound byte. */
static void
ka_observe(struct lsh *ls)
{
	uint64_t acked, received;
	bool losing;

	lsh_note_rx(ls);
	if (ls->ka_fallback) {
		if (ls->last_rx_ms > ls->live.last_ms)
			ls->live.last_ms = ls->last_rx_ms;
		return;
	}
	if (ls->fd >= 0 && rsdk_tcp_counts(ls->fd, &acked, &received, &losing) == 0)
		rsdk_live_tcp(&ls->live, acked, received, losing, lsh_now(ls));
}

static bool
ka_check_dead(struct lsh *ls)
{
	uint64_t now = lsh_now(ls);
	char why[200], d[600], n[16];

	ka_observe(ls);
	if (!rsdk_live_dead(&ls->live, now))
		return false;
	rsdk_live_describe(&ls->live, now, why, sizeof why);
	snprintf(d, sizeof d, "%s:%u: %s%s: ssh session is dead", ls->target, ls->tport, why,
	         ls->ka_fallback ? " (nothing received)" : "");
	snprintf(n, sizeof n, "%u", ls->live.unanswered);
	H->log(ls->ctx, RDHPF_LOG_WARN, "ssh link dead: liveness probes unanswered", "addr",
	       ls->target, "unanswered", n, NULL);
	H->counter_add(ls->ctx, "ssh_liveness_dead_total", 1);
	lsh_session_dead(ls, RDHPF_ERR_TIMEOUT, d);
	return true;
}

static void dead_fire(void *arg);

static void
dead_arm(struct lsh *ls)
{
	uint64_t now = lsh_now(ls), due = rsdk_live_deadline(&ls->live);

	if (ls->dead_timer) {
		H->timer_stop(ls->dead_timer);
		ls->dead_timer = NULL;
	}
	if (due <= now + ls->ka_interval_ms)
		ls->dead_timer =
		    H->timer_start(ls->ctx, due > now ? due - now : 0, 0, dead_fire, ls);
}

static void
dead_fire(void *arg)
{
	struct lsh *ls = arg;

	H->timer_stop(ls->dead_timer);
	ls->dead_timer = NULL;
	if (ls->phase == PH_READY && !ka_check_dead(ls))
		dead_arm(ls);
}

static void
ka_tick(void *arg)
{
	struct lsh *ls = arg;
	int act;

	if (ls->phase != PH_READY || ka_check_dead(ls))
		return;
	dead_arm(ls);
	act = ls->ka_fallback ? RSDK_LIVE_SEND : rsdk_live_tick(&ls->live, lsh_now(ls));
	if (act == RSDK_LIVE_WAIT) {
		char n[16], c[16];
		snprintf(n, sizeof n, "%u", ls->live.unanswered);
		snprintf(c, sizeof c, "%u", ls->ka_count);
		H->log(ls->ctx, RDHPF_LOG_INFO, "ssh liveness probe unanswered", "addr", ls->target,
		       "unanswered", n, "keepalive_count", c, NULL);
		H->counter_add(ls->ctx, "ssh_liveness_unanswered_total", 1);
		return;
	}
	/* Nothing may touch ls after lsh_leave(). */
	if (act == RSDK_LIVE_SEND && lsh_enter(ls)) {
		ka_probe(ls);
		lsh_leave(ls);
	}
}

/* The session is ready: the probe channel opens, the ticks start. */
void
lsh_ka_start(struct lsh *ls)
{
	memset(&ls->ka, 0, sizeof ls->ka);
	ls->ka_fallback = false;
	rsdk_live_start(&ls->live, ls->ka_interval_ms, ls->ka_count, lsh_now(ls));
	ka_open(ls);
	if (rsdk_live_on(&ls->live))
		ls->ka_timer =
		    H->timer_start(ls->ctx, ls->ka_interval_ms, ls->ka_interval_ms, ka_tick, ls);
}

/* The session goes: its channel with it (before ssh_free). */
void
lsh_ka_stop(struct lsh *ls)
{
	if (ls->ka_timer) {
		H->timer_stop(ls->ka_timer);
		ls->ka_timer = NULL;
	}
	if (ls->dead_timer) {
		H->timer_stop(ls->dead_timer);
		ls->dead_timer = NULL;
	}
	lsh_chan_release(&ls->ka);
	ls->ka.state = CS_DONE;
	ls->ka_req = false;
}
