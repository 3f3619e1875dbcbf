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
	rsdk_keepalive_answered(&ls->kal);
	rsdk_pending_settle_later(&ls->health, RDHPF_OK, NULL);
}

static void
ka_fall_back(struct lsh *ls, const char *why)
{
	lsh_chan_release(&ls->ka);
	ls->ka.state = CS_DONE;
	ls->ka_req = false;
	rsdk_live_lost(&ls->kal.live);
	if (ls->kal.fallback)
		return;
	rsdk_keepalive_set_fallback(&ls->kal, true);
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
	if (!ls->kal.live.out)
		rsdk_keepalive_sent(&ls->kal);
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
	rsdk_live_lost(&ls->kal.live);
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
	rsdk_live_lost(&ls->kal.live);
	lsh_chan_release(&ls->ka);
	ka_open(ls);
}

/* Send a probe now unless one is out (inside lsh_enter/leave). */
static void
ka_probe(struct lsh *ls)
{
	if (ls->kal.fallback) {
		/* libssh 0.10 keeps one global request in flight: a call while
		 * a reply is outstanding only polls; a call after the reply
		 * arrived only collects it.  Two calls send exactly one probe
		 * unless one is outstanding. */
		ssh_send_keepalive(ls->s);
		ssh_send_keepalive(ls->s);
		return;
	}
	if (ls->ka.state != CS_OPEN || ls->ka_req || ls->kal.live.out)
		return;
	rsdk_keepalive_sent(&ls->kal);
	ls->ka_req = true;
	lsh_ka_step(ls);
}

void
lsh_ka_probe_now(struct lsh *ls)
{
	ka_probe(ls);
}

/* ---- the SDK's driver calls these ---------------------------------------- */

static void
ka_on_tick(void *ud, int act)
{
	struct lsh *ls = ud;

	/* Nothing may touch ls after lsh_leave(). */
	if (act == RSDK_LIVE_SEND && lsh_enter(ls)) {
		ka_probe(ls);
		lsh_leave(ls);
	}
}

static void
ka_on_dead(void *ud, const char *detail)
{
	struct lsh *ls = ud;

	if (ls->phase == PH_READY)
		lsh_session_dead(ls, RDHPF_ERR_TIMEOUT, detail);
}

static void
ka_on_observe(void *ud)
{
	lsh_note_rx(ud);
}

static const struct rsdk_keepalive_ops KA_OPS = {ka_on_tick, ka_on_dead, ka_on_observe};

/* The session is ready: the ticks start, the probe channel opens. */
void
lsh_ka_start(struct lsh *ls)
{
	memset(&ls->ka, 0, sizeof ls->ka);
	rsdk_keepalive_start(&ls->kal, H, ls->ctx, &KA_OPS, ls, ls->target, ls->tport, ls->fd,
	                     ls->ka_interval_ms, ls->ka_count);
	ka_open(ls);
}

/* The session goes: its channel with it (before ssh_free). */
void
lsh_ka_stop(struct lsh *ls)
{
	rsdk_keepalive_stop(&ls->kal);
	lsh_chan_release(&ls->ka);
	ls->ka.state = CS_DONE;
	ls->ka_req = false;
}
