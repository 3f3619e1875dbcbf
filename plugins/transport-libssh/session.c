/* transport-libssh: the ready session — pumping libssh from the core's
 * loop, and teardown (the keepalive is live.c).
 *
 * Pumping: the core watches our fd; when it is readable (or writable while
 * libssh has output queued, ssh_get_poll_flags) we let libssh process
 * what is there with ssh_event_dopoll(ev, 0): one poll() with a zero
 * timeout over the session's own socket, never a wait, never a loop of
 * libssh's own.  libssh 0.10 reads at most 4 KiB per poll
 * (socket.c MAX_BUF_SIZE), so one turn repeats that up to
 * LSH_PUMP_ROUNDS times and stops at the first empty poll; the core's
 * watch is level-triggered, so what is left comes back next turn.
 *
 * TCP_USER_TIMEOUT backs the keepalive up (dial.c). */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lsh.h"

#define H lsh_H

void
lsh_note_rx(struct lsh *ls)
{
	if (ls->cnt_sock.in_bytes != ls->rx_seen) {
		ls->rx_seen = ls->cnt_sock.in_bytes;
		ls->last_rx_ms = lsh_now(ls);
		rsdk_keepalive_rx(&ls->kal, ls->last_rx_ms);
		if (ls->kal.fallback) /* libssh keeps the probes' replies */
			rsdk_pending_settle_later(&ls->health, RDHPF_OK, NULL);
	}
}

/* Is libssh's output backed up?  WRITE_PENDING alone only means "not
 * flushed yet"; one zero-timeout flush tells whether the kernel took it. */
bool
lsh_out_blocked(struct lsh *ls)
{
	if (ls->s == NULL || !(ssh_get_poll_flags(ls->s) & SSH_WRITE_PENDING))
		return false;
	ssh_blocking_flush(ls->s, 0);
	return (ssh_get_poll_flags(ls->s) & SSH_WRITE_PENDING) != 0;
}

void
lsh_sess_update_io(struct lsh *ls)
{
	unsigned ev = RDHPF_IO_READ;

	if (ls->io == NULL || ls->phase == PH_TCP || ls->phase == PH_DOWN)
		return;
	if (ls->s && (ssh_get_poll_flags(ls->s) & SSH_WRITE_PENDING))
		ev |= RDHPF_IO_WRITE;
	if (ev != ls->io_ev) {
		ls->io_ev = ev;
		H->io_update(ls->io, ev);
	}
}

static bool
sess_broken(struct lsh *ls)
{
	return ls->s == NULL || ls->sock_err || !ssh_is_connected(ls->s) ||
	       (ssh_get_status(ls->s) & (SSH_CLOSED | SSH_CLOSED_ERROR)) != 0;
}

/* The socket's pending error as text ("" when none: a hang-up). */
void
lsh_sock_error(struct lsh *ls, char *out, size_t outlen)
{
	int e = 0;
	socklen_t l = sizeof e;

	out[0] = '\0';
	if (ls->fd >= 0 && getsockopt(ls->fd, SOL_SOCKET, SO_ERROR, &e, &l) == 0 && e != 0)
		snprintf(out, outlen, "%s", strerror(e));
}

static void open_watch(struct lsh *ls);

bool
lsh_enter(struct lsh *ls)
{
	if (ls->phase != PH_READY)
		return false;
	ls->depth++;
	return true;
}

/* Leaving the outermost frame: notice a dead session, re-arm the io. */
void
lsh_leave(struct lsh *ls)
{
	ls->depth--;
	if (ls->depth > 0)
		return;
	if (ls->destroyed) {
		lsh_really_destroy(ls);
		return;
	}
	if (ls->phase != PH_READY)
		return;
	lsh_note_rx(ls);
	if (sess_broken(ls)) {
		char d[700], e[120];
		lsh_sock_error(ls, e, sizeof e);
		snprintf(d, sizeof d, "ssh session to %s:%u ended: %s", ls->target, ls->tport,
		         ls->sock_err ? (e[0] ? e : "socket error or hang-up")
		                      : ssh_get_error(ls->s));
		lsh_session_dead(ls, RDHPF_ERR_CLOSED, d);
		return;
	}
	if (ls->throttled)
		lsh_wake_drained(ls);
	lsh_kick_if_needed(ls);
	lsh_sess_update_io(ls);
}

/* Work a libssh call outside lsh_service may have left: chans it made
 * ready, or packets it read for opens in flight (no io event follows a
 * read that drained the socket). */
void
lsh_kick_if_needed(struct lsh *ls)
{
	if (ls->ready || (ls->opening && ls->cnt_sock.in_bytes != ls->rx_serviced))
		lsh_kick(ls);
	open_watch(ls);
}

/* Work through the ready list; a long one continues on a zero timer so that
 * other hosts and listeners get their turn. */
static void
service_body(struct lsh *ls)
{
	struct lsh_chan *c;
	uint64_t rx0 = ls->cnt_sock.in_bytes;
	int n = 0;

	lsh_drive_opens(ls);
	if (ls->ka_req && ls->phase == PH_READY)
		lsh_ka_step(ls); /* the probe's answer may have come */
	for (struct lsh_fwd *fw = ls->fwds; fw && ls->phase == PH_READY; fw = fw->next) {
		if (fw->open_more) {
			fw->open_more = false;
			lsh_fwd_open_waiting(fw);
		}
	}
	while (ls->phase == PH_READY && n++ < LSH_SERVICE_BATCH && (c = lsh_ready_pop(ls))) {
		if (c->kind == CK_RELAY)
			lsh_relay_service((struct lsh_relay *)c);
		else if (c->kind == CK_KA)
			lsh_ka_service(ls);
		else
			lsh_stream_service((struct lsh_stream *)c);
	}
	if (ls->phase == PH_READY && ls->throttled)
		lsh_unthrottle_all(ls, false);
	/* Any libssh call above may have read packets for others — an open
	 * confirmation, an exec reply — that no io event will announce (the
	 * socket is drained).  Another turn looks at them. */
	if (ls->phase == PH_READY && ls->cnt_sock.in_bytes != rx0 && ls->opening)
		lsh_kick(ls);
	ls->rx_serviced = rx0;
}

/* Nothing may touch ls after lsh_leave(): it may have freed it. */
void
lsh_service(struct lsh *ls)
{
	if (!lsh_enter(ls))
		return;
	service_body(ls);
	lsh_leave(ls);
}

static void
open_fire(void *arg)
{
	struct lsh *ls = arg;

	H->timer_stop(ls->open_t);
	ls->open_t = NULL;
	lsh_service(ls);
}

/* The backstop while opens are in flight: libssh 0.10 has no callback for
 * an open's answer, and any libssh call may read it, so the opens are
 * looked at again every LSH_OPEN_RECHECK_MS until none is left (measured:
 * without it, 2 of 21 opens sent at once after a reconnect waited for the
 * next keepalive tick).  No timer runs while no open is in flight. */
static void
open_watch(struct lsh *ls)
{
	if (ls->opening && ls->open_t == NULL && ls->phase == PH_READY)
		ls->open_t = H->timer_start(ls->ctx, LSH_OPEN_RECHECK_MS, 0, open_fire, ls);
}

static void
kick_fire(void *arg)
{
	struct lsh *ls = arg;

	H->timer_stop(ls->kick_t);
	ls->kick_t = NULL;
	lsh_service(ls);
}

void
lsh_kick(struct lsh *ls)
{
	if (ls->kick_t == NULL && ls->phase == PH_READY)
		ls->kick_t = H->timer_start(ls->ctx, 0, 0, kick_fire, ls);
}

void
lsh_sess_on_io(void *arg, int fd, unsigned rev)
{
	struct lsh *ls = arg;

	(void)fd;
	if (ls->phase < PH_READY) {
		ls->depth++;
		lsh_conn_step(ls);
		/* An error on the socket stops the core's watch (libuv does on
		 * POLLERR): nothing would wake us again, and libssh 0.10 may
		 * not have seen it (measured: sshd's "Exceeded MaxStartups"
		 * then RST left ssh_connect waiting for the connect timeout). */
		if ((rev & RDHPF_IO_ERROR) && !ls->destroyed &&
		    (ls->phase == PH_HANDSHAKE || ls->phase == PH_AUTH))
			lsh_conn_sock_failed(ls);
		ls->depth--;
		if (ls->destroyed) {
			if (ls->depth == 0)
				lsh_really_destroy(ls);
			return;
		}
		if (ls->phase > PH_DOWN)
			lsh_sess_update_io(ls);
		return;
	}
	if (!lsh_enter(ls))
		return;
	for (int i = 0; i < LSH_PUMP_ROUNDS; i++) {
		int rc = ssh_event_dopoll(ls->ev, 0);
		if (rc != SSH_OK || sess_broken(ls))
			break;
	}
	/* The watch is gone after an error (see above): the session too. */
	if (rev & RDHPF_IO_ERROR)
		ls->sock_err = true;
	if (ls->throttled)
		lsh_unthrottle_all(ls, true);
	lsh_note_rx(ls);
	if (ls->phase == PH_READY && !sess_broken(ls))
		service_body(ls);
	lsh_leave(ls);
}

void
lsh_became_ready(struct lsh *ls)
{
	ls->phase = PH_READY;
	ls->rx_seen = ls->cnt_sock.in_bytes;
	ls->last_rx_ms = lsh_now(ls);
	ls->ev = ssh_event_new();
	if (ls->ev == NULL || ssh_event_add_session(ls->ev, ls->s) != SSH_OK) {
		lsh_connect_finish(ls, RDHPF_ERR_NOMEM, "cannot make the libssh event");
		return;
	}
	lsh_ka_start(ls);
	H->log(ls->ctx, RDHPF_LOG_INFO, "ssh session up", "addr", ls->target, "cipher",
	       ssh_get_cipher_out(ls->s), NULL);
	lsh_wake_waiters(ls);
	lsh_connect_finish(ls, RDHPF_OK, NULL);
	if (ls->phase == PH_READY && !ls->destroyed)
		lsh_kick(ls);
}

void
lsh_teardown(struct lsh *ls, int why)
{
	int was = ls->phase;

	ls->phase = PH_DOWN; /* first: nothing below arms a kick */
	if (ls->ctimer) {
		H->timer_stop(ls->ctimer);
		ls->ctimer = NULL;
	}
	if (ls->kick_t) {
		H->timer_stop(ls->kick_t);
		ls->kick_t = NULL;
	}
	if (ls->open_t) {
		H->timer_stop(ls->open_t);
		ls->open_t = NULL;
	}
	lsh_dial_stop(ls);
	lsh_agent_stop(ls);
	lsh_ka_stop(ls);

	/* Relays with an open channel lose their connection; those waiting or
	 * mid-open wait for the next session (HOLD_LISTENERS). */
	for (struct lsh_fwd *fw = ls->fwds; fw; fw = fw->next) {
		struct lsh_relay *r = fw->relays;
		while (r) {
			struct lsh_relay *next = r->fnext;
			lsh_relay_lost(r);
			r = next;
		}
	}
	/* Streams' channels go before the session; their owners hear of it
	 * only when the link was lost (not on disconnect or destroy). */
	lsh_streams_teardown(ls, why == TD_LOST && !ls->destroyed);
	ls->ready = ls->ready_tail = NULL;
	ls->throttled = NULL;
	ls->opening = NULL;

	if (ls->s) {
		/* With SSH_OPTIONS_FD, ssh_disconnect does not close the socket;
		 * the message goes out on a non-blocking write or not at all. */
		if (why == TD_DISCONNECT && was == PH_READY && ssh_is_connected(ls->s))
			ssh_disconnect(ls->s);
		if (ls->ev) {
			ssh_event_remove_session(ls->ev, ls->s);
			ssh_event_free(ls->ev);
			ls->ev = NULL;
		}
		ssh_free(ls->s); /* closes libssh's dup of the socket */
		ls->s = NULL;
	}
	if (ls->io) {
		H->io_stop(ls->io);
		ls->io = NULL;
	}
	ls->io_ev = 0;
	if (ls->fd >= 0) {
		close(ls->fd);
		ls->fd = -1;
	}
	ls->sock_err = false; /* that socket's */
	lsh_wait_timer_arm(ls);
}

/* The link died under us: tell the core (once) after cleaning up. */
void
lsh_session_dead(struct lsh *ls, int status, const char *detail)
{
	char d[512];

	if (ls->phase != PH_READY)
		return;
	snprintf(d, sizeof d, "%s", detail);
	H->log(ls->ctx, RDHPF_LOG_WARN, "ssh session lost", "detail", d, NULL);
	rsdk_pending_settle_later(&ls->health, RDHPF_ERR_CLOSED, d);
	ls->depth++;
	lsh_teardown(ls, TD_LOST); /* streams' on_close run in here */
	ls->depth--;
	if (ls->destroyed) {
		if (ls->depth == 0)
			lsh_really_destroy(ls);
		return;
	}
	H->report_down(ls->ctx, status, d);
}
