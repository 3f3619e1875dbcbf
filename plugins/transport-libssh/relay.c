/* transport-libssh: one accepted local connection relayed through its own
 * direct-tcpip channel.
 *
 * Backpressure, both ways:
 * - remote → local: libssh hands channel data to relay_cb_data, which
 *   sends straight to the local socket and returns how much the kernel
 *   took.  What it did not take stays in libssh's channel buffer, and
 *   libssh 0.10 grows the channel window only while
 *   window + buffered < 640 KB (and we top it up only while libssh holds
 *   nothing: relay_window_topup): a slow local reader stops the server.
 *   When the local socket becomes writable we take the held bytes with
 *   ssh_channel_read_timeout(…, 0) (a zero timeout: no wait) in 256 KiB
 *   steps and send them; what the socket does not take waits in r->down.
 * - local → remote: we read from the local socket only as much as the
 *   peer's window allows (so ssh_channel_write never waits for a window
 *   adjust; an empty window parks the relay until a session io event finds
 *   it open again, lsh_unthrottle_all), and only while the session's output is not backed up,
 *   looked at before every read (else the relay is throttled until the session socket drains).
 *
 * Relays never free themselves from a libssh callback: they are marked
 * and freed in lsh_relay_service. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lsh.h"

#define H lsh_H
#define DOWN_STEP LSH_SCRATCH

int relay_cb_data(ssh_session s, ssh_channel ch, void *data, uint32_t len, int is_stderr, void *ud);

void
lsh_relay_free(struct lsh_relay *r)
{
	struct lsh_fwd *fw = r->fw;

	if (r->c.state == CS_OPENING && fw->n_opening > 0)
		fw->n_opening--;
	lsh_chan_release(&r->c);
	if (r->io)
		H->io_stop(r->io);
	if (r->fd >= 0)
		close(r->fd);
	if (r->fprev)
		r->fprev->fnext = r->fnext;
	else
		fw->relays = r->fnext;
	if (r->fnext)
		r->fnext->fprev = r->fprev;
	if (fw->st.active > 0)
		fw->st.active--;
	rsdk_buf_free(&r->down);
	rsdk_buf_free(&r->up);
	free(r);
}

/* The session went away (teardown, before ssh_free).  A relay still
 * waiting for its channel waits for the next session; one that had a
 * channel loses its connection. */
void
lsh_relay_lost(struct lsh_relay *r)
{
	if (r->c.state == CS_WAIT)
		return;
	if (r->c.state == CS_OPENING) {
		lsh_chan_release(&r->c);
		r->c.state = CS_WAIT;
		if (r->fw->n_opening > 0)
			r->fw->n_opening--;
		return;
	}
	lsh_relay_free(r);
}

static void
relay_update_io(struct lsh_relay *r)
{
	unsigned ev = 0;

	if (r->c.state != CS_OPEN || r->io == NULL)
		return;
	if (!r->l_eof && rsdk_buf_size(&r->up) == 0 && !r->c.win_wait && !r->c.throttled &&
	    !r->c.r_closed)
		ev |= RDHPF_IO_READ;
	if (rsdk_buf_size(&r->down) > 0 || r->held)
		ev |= RDHPF_IO_WRITE;
	if (ev != r->io_ev) {
		r->io_ev = ev;
		H->io_update(r->io, ev);
	}
}

static void
relay_on_io(void *arg, int fd, unsigned rev)
{
	struct lsh_relay *r = arg;
	struct lsh *ls = r->c.ls;

	(void)fd;
	if (rev & (RDHPF_IO_READ | RDHPF_IO_ERROR))
		r->l_rd = true;
	if (!lsh_enter(ls))
		return;
	lsh_relay_service(r);
	lsh_leave(ls);
}

/* Bytes for the local side, from inside libssh's packet processing. */
int
relay_cb_data(ssh_session s, ssh_channel ch, void *data, uint32_t len, int is_stderr, void *ud)
{
	struct lsh_relay *r = ud;
	ssize_t n;

	(void)s;
	(void)ch;
	(void)is_stderr;
	if (r->c.state == CS_OPENING) {
		/* Data may follow the open confirmation in the same read, before
		 * lsh_relay_open_step saw it: libssh keeps it for relay_down. */
		r->held = true;
		return 0;
	}
	if (r->c.state != CS_OPEN || r->l_err || r->shut_wr)
		return (int)len; /* nobody to deliver to: drop, keep the window moving */
	if (rsdk_buf_size(&r->down) > 0) {
		/* Older bytes go first: libssh keeps these for later. */
		r->held = true;
		lsh_chan_ready(&r->c);
		return 0;
	}
	n = send(r->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			r->l_err = true;
			lsh_chan_ready(&r->c);
			return (int)len;
		}
		n = 0;
	}
	r->fw->st.bytes_in += (uint64_t)n;
	r->rx_unacked += (uint32_t)n;
	r->held = (uint32_t)n < len;
	if (r->held || r->rx_unacked >= r->c.ls->window / 4)
		lsh_chan_ready(&r->c);
	return (int)n;
}

/* libssh 0.10 opens a direct-tcpip channel with a 64,000-byte receive
 * window and then keeps it between 640 KB and 1.28 MB (channels.c
 * WINDOWBASE), less than one scheduling hiccup's worth of data at a few
 * Gbit/s, and has no option for it.  The one public way to grow it is a
 * read: ssh_channel_read_timeout(count) first raises the window to
 * count minus what it holds.  So once a quarter of our window has been
 * delivered, and only while libssh holds nothing for this channel (the
 * local side keeps up; a slow reader keeps the small window and with it
 * the backpressure), we read with count = the `window` option and a zero
 * timeout.  What that read returns is at most the packets completed by
 * libssh's one socket read (4 KiB) behind a partial packet: far below
 * the scratch buffer's slack (LSH_SCRATCH_SLACK). */
static int
relay_window_topup(struct lsh_relay *r)
{
	struct lsh *ls = r->c.ls;
	int n;

	if (r->held || rsdk_buf_size(&r->down) > 0 || r->c.r_eof || r->shut_wr)
		return 0;
	r->rx_unacked = 0;
	n = ssh_channel_read_timeout(r->c.ch, ls->scratch, ls->window, 0, 0);
	if (n <= 0)
		return 0; /* nothing, or the channel is closing: its callbacks said so */
	return rsdk_buf_append(&r->down, ls->scratch, (size_t)n);
}

void
lsh_relay_new(struct lsh_fwd *fw, int cfd, uint16_t peer_port)
{
	struct lsh *ls = fw->ls;
	struct lsh_relay *r = calloc(1, sizeof *r);

	if (r == NULL) {
		close(cfd);
		return;
	}
	r->c.ls = ls;
	r->c.kind = CK_RELAY;
	r->c.state = CS_WAIT;
	r->fw = fw;
	r->fd = cfd;
	r->peer_port = peer_port;
	r->t_accept = lsh_now(ls);
	r->fnext = fw->relays;
	if (fw->relays)
		fw->relays->fprev = r;
	fw->relays = r;
	fw->st.connections++;
	fw->st.active++;
	H->log(ls->ctx, RDHPF_LOG_TRACE, "relay accepted", "bind", fw->bind, "session",
	       ls->phase == PH_READY ? "up" : "waiting", NULL);
	if (ls->phase == PH_READY)
		lsh_fwd_open_waiting(fw);
	else
		lsh_wait_timer_arm(ls);
}

/* Open channels for the forward's waiting clients, oldest first, at most
 * LSH_OPENS_PER_FWD in flight: sshd connects to the target for each open
 * at once, and a burst (say twenty clients held through an outage) would
 * overflow a small accept backlog on the target (busybox httpd: 9), whose
 * dropped SYNs come back only after the kernel's 1 s retransmit.  Never
 * frees a relay. */
void
lsh_fwd_open_waiting(struct lsh_fwd *fw)
{
	struct lsh_relay *r = fw->relays;

	if (fw->ls->phase != PH_READY || fw->n_opening >= LSH_OPENS_PER_FWD)
		return;
	while (r && r->fnext) /* newest first: start from the tail */
		r = r->fnext;
	for (; r && fw->n_opening < LSH_OPENS_PER_FWD; r = r->fprev)
		if (r->c.state == CS_WAIT)
			lsh_relay_open(r);
}

/* Never frees r (callers walk relay lists): failures are marked CS_DONE
 * and freed by the next service turn. */
void
lsh_relay_open(struct lsh_relay *r)
{
	if (lsh_chan_new(&r->c) != 0) {
		r->c.state = CS_DONE;
		lsh_chan_ready(&r->c);
		return;
	}
	r->c.state = CS_OPENING;
	r->fw->n_opening++;
	lsh_opening_add(&r->c);
	lsh_relay_open_step(r);
}

int
lsh_relay_open_step(struct lsh_relay *r)
{
	struct lsh_fwd *fw = r->fw;
	struct lsh *ls = r->c.ls;
	int rc = ssh_channel_open_forward(r->c.ch, fw->rhost, fw->rport, "127.0.0.1", r->peer_port);

	if (rc == SSH_AGAIN)
		return 0;
	lsh_opening_remove(&r->c);
	if (fw->n_opening > 0)
		fw->n_opening--;
	fw->open_more = true; /* the next waiting client may go */
	if (rc != SSH_OK) {
		if (!fw->warned_open) {
			char p[8];
			snprintf(p, sizeof p, "%u", fw->rport);
			char e[600];
			snprintf(e, sizeof e, "%s", ssh_get_error(ls->s));
			snprintf(e + strlen(e), sizeof e - strlen(e), "%s",
			         lsh_open_hint(ls, CK_RELAY, e));
			H->log(ls->ctx, RDHPF_LOG_WARN, "remote refused a forwarded connection",
			       "remote_host", fw->rhost, "remote_port", p, "err", e, NULL);
			fw->warned_open = true;
		}
		r->c.state = CS_DONE;
		lsh_chan_ready(&r->c);
		return -1;
	}
	fw->warned_open = false;
	H->log(ls->ctx, RDHPF_LOG_TRACE, "relay channel open", "remote_host", fw->rhost, NULL);
	r->c.state = CS_OPEN;
	/* The first service turn grows the window (none: libssh's own). */
	r->rx_unacked = ls->window > LSH_WINDOW_LIBSSH ? ls->window : 0;
	r->l_rd = true; /* the client may have written while we waited */
	r->io_ev = RDHPF_IO_READ;
	r->io = H->io_start(ls->ctx, r->fd, RDHPF_IO_READ, relay_on_io, r);
	if (r->io == NULL)
		r->c.state = CS_DONE;
	lsh_chan_ready(&r->c);
	return 1;
}

/* Remote → local: our buffer first, then what libssh holds. */
static int
relay_down(struct lsh_relay *r)
{
	struct lsh *ls = r->c.ls;

	for (int i = 0; i < 64; i++) {
		if (rsdk_buf_size(&r->down) > 0) {
			ssize_t n = send(r->fd, rsdk_buf_str(&r->down), rsdk_buf_size(&r->down),
			                 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
					return 0;
				return -1;
			}
			r->fw->st.bytes_in += (uint64_t)n;
			lsh_buf_consume(&r->down, (size_t)n);
			if (rsdk_buf_size(&r->down) > 0)
				return 0;
		}
		if (!r->held)
			return 0;
		{
			/* Straight from the scratch buffer to the socket; only what
			 * the socket does not take is kept in r->down. */
			int n = ssh_channel_read_timeout(r->c.ch, ls->scratch, DOWN_STEP, 0, 0);
			ssize_t w;
			if (n <= 0) {
				r->held = false;
				return 0;
			}
			if ((uint32_t)n < DOWN_STEP)
				r->held = false;
			w = send(r->fd, ls->scratch, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w < 0) {
				if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
					return -1;
				w = 0;
			}
			r->fw->st.bytes_in += (uint64_t)w;
			if (w < n &&
			    rsdk_buf_append(&r->down, ls->scratch + w, (size_t)(n - w)) != 0)
				return -1;
			if (w < n)
				return 0;
		}
	}
	return 0;
}

/* Write to the channel what it takes now.  ssh_channel_write returns short
 * while a key re-exchange is in progress (libssh 0.10 does not queue
 * channel data then): the rest waits in r->up, and the relay waits on the
 * throttled list, which every session io event wakes. */
static int
chan_put(struct lsh_relay *r, const char *p, size_t n)
{
	int w = ssh_channel_write(r->c.ch, p, (uint32_t)n);

	if (w < 0)
		return -1;
	r->fw->st.bytes_out += (uint64_t)w;
	if ((size_t)w < n) {
		if (rsdk_buf_append(&r->up, p + w, n - (size_t)w) != 0)
			return -1;
		lsh_throttle(&r->c, true);
	} else if (lsh_out_blocked(r->c.ls)) {
		lsh_throttle_drain(&r->c);
	}
	return 0;
}

/* Local → remote, within the peer's window and the turn's budget. */
static int
relay_up(struct lsh_relay *r)
{
	struct lsh *ls = r->c.ls;
	size_t moved = 0;

	if (rsdk_buf_size(&r->up) > 0 && !r->c.throttled && !r->c.r_closed) {
		uint32_t win = ssh_channel_window_size(r->c.ch);
		struct rsdk_buf b = r->up;
		size_t n = rsdk_buf_size(&b) < win ? rsdk_buf_size(&b) : win;
		if (n == 0) {
			r->c.win_wait = true;
			lsh_throttle(&r->c, false);
			return 0;
		}
		rsdk_buf_init(&r->up);
		if (chan_put(r, rsdk_buf_str(&b), n) != 0 ||
		    rsdk_buf_append(&r->up, rsdk_buf_str(&b) + n, rsdk_buf_size(&b) - n) != 0) {
			rsdk_buf_free(&b);
			return -1;
		}
		rsdk_buf_free(&b);
		if (rsdk_buf_size(&r->up) > 0)
			return 0;
	}
	if (r->l_eof && rsdk_buf_size(&r->up) == 0 && !r->eof_sent) {
		if (ssh_channel_send_eof(r->c.ch) == SSH_ERROR)
			return -1;
		r->eof_sent = true;
	}
	while (r->l_rd && !r->l_eof && rsdk_buf_size(&r->up) == 0 && !r->c.win_wait &&
	       !r->c.throttled && !r->c.r_closed) {
		uint32_t win = ssh_channel_window_size(r->c.ch);
		size_t want = LSH_SCRATCH;
		ssize_t n;

		if (win == 0) {
			r->c.win_wait = true;
			lsh_throttle(&r->c, false);
			break;
		}
		if (moved >= LSH_RELAY_BUDGET) {
			lsh_chan_ready(&r->c); /* more next turn */
			break;
		}
		/* Before reading, not only after writing: with a thousand
		 * relays each writing once before it noticed, libssh buffered
		 * the whole upload (measured: 64 MB), sshd 9.2 took it all in
		 * and fell into a quadratic pass over its channels, silent for
		 * 13-22 s (peak 180 MB); checked first, its peak is 25-57 MB. */
		if (lsh_out_blocked(ls)) {
			lsh_throttle_drain(&r->c);
			break;
		}
		if (want > win)
			want = win;
		n = recv(r->fd, ls->scratch, want, 0);
		if (n > 0) {
			if (chan_put(r, ls->scratch, (size_t)n) != 0)
				return -1;
			moved += (size_t)n;
			continue;
		}
		if (n == 0) {
			r->l_eof = true;
			if (ssh_channel_send_eof(r->c.ch) == SSH_ERROR)
				return -1;
			r->eof_sent = true;
			break;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			r->l_rd = false;
			break;
		}
		if (errno == EINTR)
			continue;
		return -1;
	}
	return 0;
}

void
lsh_relay_service(struct lsh_relay *r)
{
	bool delivered;

	if (r->c.state == CS_DONE || r->l_err) {
		lsh_relay_free(r);
		return;
	}
	if (r->c.state != CS_OPEN)
		return;
	if (r->c.ls->window > LSH_WINDOW_LIBSSH && r->rx_unacked >= r->c.ls->window / 4 &&
	    relay_window_topup(r) != 0) {
		lsh_relay_free(r);
		return;
	}
	if (relay_down(r) != 0 || relay_up(r) != 0) {
		lsh_relay_free(r);
		return;
	}
	delivered = !r->held && rsdk_buf_size(&r->down) == 0;
	if (r->c.r_eof && delivered && !r->shut_wr) {
		shutdown(r->fd, SHUT_WR);
		r->shut_wr = true;
	}
	if (delivered && (r->c.r_closed || (r->eof_sent && r->shut_wr))) {
		lsh_relay_free(r);
		return;
	}
	relay_update_io(r);
}
