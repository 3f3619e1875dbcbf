/* transport-libssh: what relays, streams and the keepalive share — their libssh channel
 * and its callbacks, the ready list, the list of opens in flight, and the
 * list of writers waiting for the session socket to drain.
 *
 * libssh runs channel callbacks from inside whatever libssh call read the
 * packet; these only set flags and put the chan on the ready list, which
 * lsh_service() works through outside libssh. */
#include <stdio.h>
#include <string.h>

#include "lsh.h"

#define H lsh_H
/* Opens that are neither confirmed nor refused cost a poll each to ask
 * about (libssh 0.10 has no open-response callback): ask about at most
 * this many of the oldest per turn; confirmed ones are seen for free. */
#define OPEN_PROBE_MAX 64

void
lsh_chan_ready(struct lsh_chan *c)
{
	struct lsh *ls = c->ls;

	if (c->ready)
		return;
	c->ready = true;
	c->rnext = NULL;
	if (ls->ready_tail)
		ls->ready_tail->rnext = c;
	else
		ls->ready = c;
	ls->ready_tail = c;
}

struct lsh_chan *
lsh_ready_pop(struct lsh *ls)
{
	struct lsh_chan *c = ls->ready;

	if (c == NULL)
		return NULL;
	ls->ready = c->rnext;
	if (ls->ready == NULL)
		ls->ready_tail = NULL;
	c->ready = false;
	c->rnext = NULL;
	return c;
}

void
lsh_ready_remove(struct lsh_chan *c)
{
	struct lsh *ls = c->ls;
	struct lsh_chan *prev = NULL;

	if (!c->ready)
		return;
	for (struct lsh_chan *x = ls->ready; x; prev = x, x = x->rnext) {
		if (x != c)
			continue;
		if (prev)
			prev->rnext = x->rnext;
		else
			ls->ready = x->rnext;
		if (ls->ready_tail == x)
			ls->ready_tail = prev;
		break;
	}
	c->ready = false;
	c->rnext = NULL;
}

/* Park c until the session's output drained (out) or the peer's window
 * opened (c->win_wait): lsh_unthrottle_all, after every session io event. */
void
lsh_throttle(struct lsh_chan *c, bool out)
{
	if (out)
		c->out_wait = true;
	if (c->throttled)
		return;
	c->throttled = true;
	c->tnext = c->ls->throttled;
	c->ls->throttled = c;
}

/* Park c until libssh's output went to the kernel: woken by the write
 * event, or by lsh_wake_drained when another flush emptied it first. */
void
lsh_throttle_drain(struct lsh_chan *c)
{
	lsh_throttle(c, true);
	c->drain_wait = true;
}

/* libssh's output is empty: wake the chans that waited only for that.  Not
 * those parked by a short write (a key re-exchange): they wait for the
 * session's next io event, or they would spin. */
void
lsh_wake_drained(struct lsh *ls)
{
	struct lsh_chan **pp = &ls->throttled;

	if (ls->s == NULL || (ssh_get_poll_flags(ls->s) & SSH_WRITE_PENDING))
		return;
	while (*pp) {
		struct lsh_chan *c = *pp;
		if (!c->drain_wait || c->win_wait) {
			pp = &c->tnext;
			continue;
		}
		*pp = c->tnext;
		c->throttled = c->out_wait = c->drain_wait = false;
		c->tnext = NULL;
		lsh_chan_ready(c);
	}
}

static void
throttle_remove(struct lsh_chan *c)
{
	if (!c->throttled)
		return;
	for (struct lsh_chan **pp = &c->ls->throttled; *pp; pp = &(*pp)->tnext) {
		if (*pp == c) {
			*pp = c->tnext;
			break;
		}
	}
	c->throttled = c->out_wait = c->drain_wait = false;
	c->tnext = NULL;
}

/* After the session read or wrote: wake the parked chans that can go on —
 * those waiting for the session's output to drain (unless it is still
 * backed up) and those waiting for the peer's window (libssh 0.10 has no
 * callback for a window adjust: its write_wontblock callback is about the
 * socket, and runs for every channel on every flush).  Also after each
 * service turn: a window adjust may have been read by another channel's
 * libssh call, with no io event to follow. */
void
lsh_unthrottle_all(struct lsh *ls, bool io_event)
{
	/* Outside a session io event only windows are looked at: waking an
	 * out_wait chan then could spin through a key re-exchange. */
	bool blocked = !io_event || lsh_out_blocked(ls);
	struct lsh_chan **pp = &ls->throttled;

	while (*pp) {
		struct lsh_chan *c = *pp;
		if (c->win_wait && c->ch && ssh_channel_window_size(c->ch) > 0)
			c->win_wait = false;
		if (c->win_wait || (blocked && c->out_wait)) {
			pp = &c->tnext;
			continue;
		}
		*pp = c->tnext;
		c->throttled = c->out_wait = c->drain_wait = false;
		c->tnext = NULL;
		lsh_chan_ready(c);
	}
}

void
lsh_opening_add(struct lsh_chan *c)
{
	struct lsh *ls = c->ls;
	struct lsh_chan *t = ls->opening;

	/* Appended: the oldest open is asked about first. */
	c->opening = true;
	c->onext = NULL;
	c->oprev = NULL;
	if (t == NULL) {
		ls->opening = c;
		return;
	}
	while (t->onext)
		t = t->onext;
	t->onext = c;
	c->oprev = t;
}

void
lsh_opening_remove(struct lsh_chan *c)
{
	if (!c->opening)
		return;
	if (c->oprev)
		c->oprev->onext = c->onext;
	else
		c->ls->opening = c->onext;
	if (c->onext)
		c->onext->oprev = c->oprev;
	c->onext = c->oprev = NULL;
	c->opening = false;
}

/* ---- libssh channel callbacks (flags only) ---------------------------------- */

static void
cb_eof(ssh_session s, ssh_channel ch, void *ud)
{
	struct lsh_chan *c = ud;

	(void)s;
	(void)ch;
	c->r_eof = true;
	lsh_chan_ready(c);
}

static void
cb_close(ssh_session s, ssh_channel ch, void *ud)
{
	struct lsh_chan *c = ud;

	(void)s;
	(void)ch;
	c->r_eof = c->r_closed = true;
	lsh_chan_ready(c);
}

int relay_cb_data(ssh_session s, ssh_channel ch, void *data, uint32_t len, int is_stderr, void *ud);
int stream_cb_data(ssh_session s, ssh_channel ch, void *data, uint32_t len, int is_stderr,
                   void *ud);
void stream_cb_exit(ssh_session s, ssh_channel ch, int status, void *ud);

/* A new libssh channel for c, with c as the callbacks' userdata. */
int
lsh_chan_new(struct lsh_chan *c)
{
	c->ch = ssh_channel_new(c->ls->s);
	if (c->ch == NULL)
		return -1;
	memset(&c->cb, 0, sizeof c->cb);
	ssh_callbacks_init(&c->cb);
	c->cb.userdata = c;
	c->cb.channel_eof_function = cb_eof;
	c->cb.channel_close_function = cb_close;
	if (c->kind == CK_RELAY) {
		c->cb.channel_data_function = relay_cb_data;
	} else if (c->kind == CK_KA) {
		/* runs no command: nothing comes but eof and close */
	} else {
		c->cb.channel_data_function = stream_cb_data;
		c->cb.channel_exit_status_function = stream_cb_exit;
	}
	if (ssh_set_channel_callbacks(c->ch, &c->cb) != SSH_OK) {
		ssh_channel_free(c->ch);
		c->ch = NULL;
		return -1;
	}
	c->r_eof = c->r_closed = c->win_wait = false;
	return 0;
}

/* Drop c's channel (a close goes out if it was open) and take c off every
 * list.  The callbacks go first: libssh keeps a freed channel until the
 * server's close arrives, and must not call into c meanwhile. */
void
lsh_chan_release(struct lsh_chan *c)
{
	lsh_opening_remove(c);
	lsh_ready_remove(c);
	throttle_remove(c);
	if (c->ch) {
		ssh_remove_channel_callbacks(c->ch, &c->cb);
		ssh_channel_free(c->ch);
		c->ch = NULL;
	}
}

/* What a refused open most likely means, from the reason code libssh puts
 * in its error ("Channel opening failure: channel N error (CODE) TEXT").
 * sshd refuses a session channel past MaxSessions (per connection;
 * direct-tcpip channels do not count) as "connect failed" (2) or
 * "administratively prohibited" (1), a forward that AllowTcpForwarding or
 * PermitOpen forbid as 1, and one it cannot afford as "resource shortage"
 * (4).  Counted like the other transports' refusals. */
const char *
lsh_open_hint(struct lsh *ls, int kind, const char *err)
{
	const char *p = err != NULL ? strstr(err, "error (") : NULL;
	bool session = kind == CK_EXEC || kind == CK_KA;
	int code;

	if (p == NULL || sscanf(p, "error (%d)", &code) != 1)
		return "";
	H->counter_add(ls->ctx, "ssh_channels_refused_total", 1);
	if (session && (code == 1 || code == 2))
		return " (sshd refused a session channel on this connection: likely its "
		       "MaxSessions limit, default 10 per connection)";
	if (code == 1)
		return kind == CK_RELAY
		           ? " (sshd does not allow this forward: AllowTcpForwarding or PermitOpen)"
		           : " (sshd does not allow it: AllowStreamLocalForwarding or PermitOpen)";
	if (code == 4)
		return " (sshd is short of resources: file descriptors or memory on the remote)";
	return "";
}

void
lsh_drive_opens(struct lsh *ls)
{
	struct lsh_chan *c = ls->opening, *next;
	int probed = 0;

	for (; c && ls->phase == PH_READY; c = next) {
		next = c->onext;
		if (!ssh_channel_is_open(c->ch) && probed++ >= OPEN_PROBE_MAX)
			continue;
		if (c->kind == CK_RELAY)
			lsh_relay_open_step((struct lsh_relay *)c);
		else if (c->kind == CK_KA)
			lsh_ka_step(ls);
		else
			lsh_stream_open_step((struct lsh_stream *)c);
	}
}
