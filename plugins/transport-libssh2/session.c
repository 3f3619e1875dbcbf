/* transport-libssh2, session: the ready session: the service loop that pulls libssh2 and
 * serves ready channels, and the teardown when the session ends. */
#include "ls2.h"

static void
kick_fire(void *arg)
{
	struct ls2 *ls = arg;

	ls2_H->timer_stop(ls->kick_t);
	ls->kick_t = NULL;
	ls2_service(ls);
}

/* Run ls2_service() from the loop, not from the caller's frame. */
void
ls2_kick(struct ls2 *ls)
{
	if (ls->kick_t == NULL && ls->phase == PH_READY)
		ls->kick_t = ls2_H->timer_start(ls->ctx, 0, 0, kick_fire, ls);
}

/* ---- the service loop ------------------------------------------------------- */

/* Which channels have something to do after bytes came in. */
static void
scan(struct ls2 *ls)
{
	for (struct chan *c = ls->chans; c; c = c->next) {
		bool need = false;

		if (c->ch == NULL || c->ready)
			continue;
		switch (c->kind) {
		case CK_RELAY: {
			struct relay *r = (struct relay *)c;
			if (c->state != CS_OPEN)
				break;
			if (!r->r_eof && rsdk_buf_size(&r->down) == 0 &&
			    (libssh2_poll_channel_read(c->ch, 0) != 0 ||
			     libssh2_channel_eof(c->ch)))
				need = true;
			else if (r->l_eof && !r->eof_sent)
				need = true;
			else if (r->r_eof && rsdk_buf_size(&r->down) == 0)
				need = true; /* waiting for the remote CLOSE */
			if (c->win_blocked && libssh2_channel_window_write_ex(c->ch, NULL) > 0)
				need = true;
			if (c->out_throttled && rsdk_buf_size(&ls->out) < OUT_RESUME)
				need = true;
			break;
		}
		case CK_EXEC:
		case CK_UNIX: {
			struct xstream *x = (struct xstream *)c;
			if (c->state == CS_STARTING || (x->out_eof && x->err_eof))
				need = true;
			else if ((!x->out_eof || !x->err_eof) &&
			         (libssh2_poll_channel_read(c->ch, 1) != 0 ||
			          libssh2_channel_eof(c->ch)))
				need = true;
			if (c->win_blocked && libssh2_channel_window_write_ex(c->ch, NULL) > 0)
				need = true;
			break;
		}
		default:
			break;
		}
		if (need)
			ls2_ready_push(ls, c);
	}
}

/* Let libssh2 read whatever arrived, through a channel read of 0 bytes (no
 * data is taken; any pending window adjust goes out).  The keepalive
 * channel never carries data, so it is the natural one to use. */
static int
pull(struct ls2 *ls)
{
	struct chan *c = ls2_pull_chan(ls);
	ssize_t n;

	if (c == NULL)
		return 0;
	n = libssh2_channel_read_ex(c->ch, 0, ls->scratch, 0);
	if (n < 0 && n != LIBSSH2_ERROR_EAGAIN)
		return (int)n; /* only the transport can fail a 0-byte read */
	return 0;
}

static void
zombies_drive(struct ls2 *ls)
{
	struct zombie **pp = &ls->zombies;

	ls->zombie_dirty = false;
	while (*pp) {
		struct zombie *z = *pp;
		int rc = libssh2_channel_free(z->ch);
		if (rc == LIBSSH2_ERROR_EAGAIN) {
			pp = &z->next;
			continue;
		}
		*pp = z->next;
		free(z);
	}
}

void
ls2_service(struct ls2 *ls)
{
	unsigned gen = ls->gen;
	int rounds = 0;

	if (ls->phase != PH_READY || ls->destroyed)
		return;
	ls->depth++;
	if (ls->depth == 1)
		ls->corked = true;
	for (;;) {
		uint64_t seq0 = ls->rx_seq;
		struct chan *c;
		bool pullable;

		if (++rounds > SERVICE_ROUNDS) {
			ls2_kick(ls);
			break;
		}
		ls->rx_budget = RX_BUDGET;
		/* Input nothing can read (no channel, no open: MaxSessions 0
		 * and no forwarded connection) is not work: it waits, or this
		 * loop would spin (measured: 100 % of a core). */
		pullable = ls2_can_pull(ls);
		if (pullable && ls2_rx_pending(ls) && pull(ls) < 0 && !ls->sock_failed) {
			ls->sock_failed = true;
			snprintf(ls->sock_why, sizeof ls->sock_why, "%s", ls2_sess_errmsg(ls));
		}
		if (ls->sock_failed)
			break;
		if (ls->open_busy || ls->openq)
			ls2_drive_opens(ls);
		if (ls->destroyed || gen != ls->gen || ls->phase != PH_READY)
			break;
		if (ls->rx_seq != ls->scan_seq) {
			ls->scan_seq = ls->rx_seq;
			if (ls->ka_inflight)
				ls2_ka_probe(ls);
			ls->zombie_dirty = true;
			if (ls->kal.fallback) /* libssh2 swallows the replies */
				rsdk_pending_settle_later(&ls->health, RDHPF_OK, NULL);
			scan(ls);
		}
		if (ls->zombies && ls->zombie_dirty)
			zombies_drive(ls);
		if (ls->ready == NULL && !(pullable && ls2_rx_pending(ls)) &&
		    ls->rx_seq == ls->scan_seq)
			break;
		while ((c = ls2_ready_pop(ls)) != NULL) {
			if (c->kind == CK_RELAY)
				ls2_relay_service((struct relay *)c);
			else if (c->kind == CK_EXEC || c->kind == CK_UNIX)
				ls2_x_service((struct xstream *)c);
			if (ls->destroyed || gen != ls->gen || ls->phase != PH_READY)
				goto out;
		}
		/* Send what this round produced (window adjusts above all): held
		 * back until ls2_service() ends, they would let the server run out of
		 * window while we work through a long batch. */
		if (rsdk_buf_size(&ls->out) > 0 && ls2_sess_flush(ls) != 0)
			break;
		if (ls->rx_seq == seq0 && !(ls2_can_pull(ls) && ls2_rx_pending(ls)) &&
		    ls->ready == NULL && ls->rx_seq == ls->scan_seq)
			break;
	}
out:
	if (!ls->destroyed && gen == ls->gen && ls->phase == PH_READY && ls->sock_failed) {
		char d[300];
		snprintf(d, sizeof d, "ssh connection to %s:%u lost: %s", ls->hostname, ls->port,
		         ls->sock_why);
		ls2_session_dead(ls, RDHPF_ERR_CLOSED, d);
	}
	if (ls->depth == 1) {
		ls->corked = false;
		if (!ls->destroyed && gen == ls->gen && ls->phase == PH_READY &&
		    rsdk_buf_size(&ls->out) > 0)
			ls2_sess_flush(ls);
		/* That flush may have woken writers: they run from the loop. */
		if (!ls->destroyed && gen == ls->gen && ls->ready != NULL)
			ls2_kick(ls);
	}
	ls->depth--;
	if (ls->destroyed) {
		if (ls->depth == 0)
			ls2_really_destroy(ls);
		return;
	}
	if (ls->phase == PH_READY && gen == ls->gen)
		ls2_sess_update_io(ls);
}

/* ---- teardown ---------------------------------------------------------------- */

void
ls2_session_teardown(struct ls2 *ls, int why)
{
	struct xstream *streams;
	int was = ls->phase;

	ls->gen++;
	ls->phase = PH_DOWN; /* first: nothing below may arm a kick */
	if (ls->ctimer) {
		ls2_H->timer_stop(ls->ctimer);
		ls->ctimer = NULL;
	}
	rsdk_keepalive_stop(&ls->kal);
	if (ls->kick_t) {
		ls2_H->timer_stop(ls->kick_t);
		ls->kick_t = NULL;
	}
	ls2_resolver_stop(ls);
	rsdk_buf_free(&ls->resbuf);

	/* Streams end (their owners hear of it only when the link was lost). */
	streams = ls->streams;
	ls->streams = NULL;
	/* Relays with a channel lose their connection; the others wait for
	 * the next session (HOLD_LISTENERS). */
	for (struct fwd *fw = ls->fwds; fw; fw = fw->next) {
		struct relay *r = fw->relays;
		while (r) {
			struct relay *next = r->fnext;
			if (r->c.state == CS_OPEN || r->c.ch != NULL) {
				ls2_relay_free(r);
			} else {
				r->c.queued = false;
				r->c.qnext = NULL;
				r->c.ready = false;
				r->c.rnext = NULL;
				r->c.state = CS_WAIT;
			}
			r = next;
		}
	}
	ls->openq = ls->openq_tail = NULL;
	ls->opening = NULL;
	ls->open_busy = ls->open_orphan = false;
	free(ls->open_msg);
	ls->open_msg = NULL;
	ls->ready = ls->ready_tail = NULL;
	ls->chans = NULL;
	while (ls->zombies) {
		struct zombie *z = ls->zombies;
		ls->zombies = z->next;
		free(z);
	}
	memset(&ls->ka, 0, sizeof ls->ka);
	ls->ka_inflight = false;

	if (ls->agent) {
		libssh2_agent_disconnect(ls->agent);
		libssh2_agent_free(ls->agent);
		ls->agent = NULL;
	}
	if (ls->kh) {
		libssh2_knownhost_free(ls->kh);
		ls->kh = NULL;
	}
	if (ls->kh_revoked) {
		libssh2_knownhost_free(ls->kh_revoked);
		ls->kh_revoked = NULL;
	}
	if (ls->s) {
		if (why == TD_DISCONNECT && was == PH_READY && !ls->sock_failed) {
			libssh2_session_disconnect(ls->s, "rdhpf: closing");
			ls2_sess_flush(ls);
		}
		/* From here every read sees EOF and every write fails, so freeing
		 * the channels and the session cannot wait on the network. */
		ls->io_dead = true;
		for (int i = 0; i < 100 && libssh2_session_free(ls->s) == LIBSSH2_ERROR_EAGAIN; i++)
			;
		ls->s = NULL;
	}
	if (ls->io) {
		ls2_H->io_stop(ls->io);
		ls->io = NULL;
	}
	ls->io_ev = 0;
	if (ls->fd >= 0) {
		close(ls->fd);
		ls->fd = -1;
	}
	rsdk_buf_free(&ls->out);
	free(ls->rx);
	ls->rx = NULL;
	ls->rx_off = ls->rx_len = 0;
	ls->corked = false;
	ls->io_dead = false;
	ls->rx_ready = false;
	ls->sock_failed = false;
	ls->sock_why[0] = '\0';
	ls->rx_total = 0;
	ls->first_line[0] = '\0';
	ls->zombie_dirty = false;

	/* Owners' on_close may call stream_close on streams still on this list
	 * (a runtime closing its other streams): mark them all first, so that
	 * such a close only flags the stream and this loop stays the one that
	 * frees it. */
	for (struct xstream *x = streams; x; x = x->snext) {
		x->torn = true;
		x->c.ch = NULL; /* freed with the session */
		x->c.linked = x->c.queued = x->c.ready = false;
	}
	while (streams) {
		struct xstream *x = streams;
		struct rdhpf_stream_cbs cbs = x->cbs;
		void *arg = x->arg;
		bool closed = x->user_closed;
		streams = x->snext;
		rsdk_buf_free(&x->in);
		free(x->req);
		free(x);
		if (why == TD_LOST && !closed && !ls->destroyed)
			cbs.on_close(arg, RDHPF_ERR_CLOSED, -1, "ssh session lost");
	}
	ls2_wait_timer_arm(ls);
}

/* The link died under us: tell the core (once) after cleaning up. */
void
ls2_session_dead(struct ls2 *ls, int status, const char *detail)
{
	char d[512];

	if (ls->phase != PH_READY)
		return;
	snprintf(d, sizeof d, "%s", detail);
	ls2_H->log(ls->ctx, RDHPF_LOG_WARN, "ssh session lost", "detail", d, NULL);
	rsdk_pending_settle_later(&ls->health, RDHPF_ERR_CLOSED, d);
	ls->depth++;
	ls2_session_teardown(ls, TD_LOST); /* streams' on_close run in here */
	ls->depth--;
	if (ls->destroyed) {
		if (ls->depth == 0)
			ls2_really_destroy(ls);
		return;
	}
	ls2_H->report_down(ls->ctx, status, d);
}
