/* transport-libssh2, chan: what relays, streams and the keepalive channel share: the
 * session's channel list, the ready list, the open FIFO (one open in flight)
 * and zombies (channels closing in the background). */
#include "ls2.h"

/* ---- lists --------------------------------------------------------------- */

static void
chan_link(struct ls2 *ls, struct chan *c)
{
	if (c->linked)
		return;
	c->prev = NULL;
	c->next = ls->chans;
	if (ls->chans)
		ls->chans->prev = c;
	ls->chans = c;
	c->linked = true;
}

void
ls2_chan_unlink(struct ls2 *ls, struct chan *c)
{
	if (!c->linked)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		ls->chans = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
	c->linked = false;
}

void
ls2_ready_push(struct ls2 *ls, struct chan *c)
{
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

struct chan *
ls2_ready_pop(struct ls2 *ls)
{
	struct chan *c = ls->ready;

	if (c == NULL)
		return NULL;
	ls->ready = c->rnext;
	if (ls->ready == NULL)
		ls->ready_tail = NULL;
	c->rnext = NULL;
	c->ready = false;
	return c;
}

static void
ready_remove(struct ls2 *ls, struct chan *c)
{
	struct chan *prev = NULL;

	if (!c->ready)
		return;
	for (struct chan *x = ls->ready; x; prev = x, x = x->rnext) {
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

void
ls2_openq_push(struct ls2 *ls, struct chan *c)
{
	if (c->queued)
		return;
	c->queued = true;
	c->state = CS_QUEUED;
	c->qnext = NULL;
	if (ls->openq_tail)
		ls->openq_tail->qnext = c;
	else
		ls->openq = c;
	ls->openq_tail = c;
}

/* The ka channel jumps the queue: liveness matters before anything else. */
void
ls2_openq_push_front(struct ls2 *ls, struct chan *c)
{
	if (c->queued)
		return;
	c->queued = true;
	c->state = CS_QUEUED;
	c->qnext = ls->openq;
	ls->openq = c;
	if (ls->openq_tail == NULL)
		ls->openq_tail = c;
}

static void
openq_remove(struct ls2 *ls, struct chan *c)
{
	struct chan *prev = NULL;

	if (!c->queued)
		return;
	for (struct chan *x = ls->openq; x; prev = x, x = x->qnext) {
		if (x != c)
			continue;
		if (prev)
			prev->qnext = x->qnext;
		else
			ls->openq = x->qnext;
		if (ls->openq_tail == x)
			ls->openq_tail = prev;
		break;
	}
	c->queued = false;
	c->qnext = NULL;
	if (ls->opening == c) {
		/* libssh2 is mid-open for it: finish the open, then close it. */
		ls->opening = NULL;
		ls->open_orphan = true;
	}
}

void
ls2_zombie_add(struct ls2 *ls, LIBSSH2_CHANNEL *ch)
{
	struct zombie *z;

	if (ch == NULL)
		return;
	z = calloc(1, sizeof *z);
	if (z == NULL) {
		/* Leave it to libssh2_session_free. */
		return;
	}
	z->ch = ch;
	z->next = ls->zombies;
	ls->zombies = z;
	ls->zombie_dirty = true;
	ls2_kick(ls);
}

/* Detach a chan from every session list and hand its channel to the
 * zombies (closed and freed in the background). */
void
ls2_chan_detach(struct ls2 *ls, struct chan *c)
{
	openq_remove(ls, c);
	ready_remove(ls, c);
	ls2_chan_unlink(ls, c);
	if (c->ch) {
		ls2_zombie_add(ls, c->ch);
		c->ch = NULL;
	}
	c->state = CS_CLOSED;
}

/* ---- opening channels ------------------------------------------------------ */

/* Fill the open parameters for c into ls (kept while libssh2 is mid-open,
 * even if c goes away). */
static int
open_params(struct ls2 *ls, struct chan *c)
{
	unsigned char msg[600];
	size_t m = 0;

	free(ls->open_msg);
	ls->open_msg = NULL;
	ls->open_msg_len = 0;
	switch (c->kind) {
	case CK_RELAY: {
		struct relay *r = (struct relay *)c;
		size_t hl = strlen(r->fw->rhost);
		const char *orig = "127.0.0.1";
		size_t ol = strlen(orig);
		/* string host, uint32 port, string originator, uint32 port */
		msg[m++] = (unsigned char)(hl >> 24);
		msg[m++] = (unsigned char)(hl >> 16);
		msg[m++] = (unsigned char)(hl >> 8);
		msg[m++] = (unsigned char)hl;
		memcpy(msg + m, r->fw->rhost, hl);
		m += hl;
		msg[m++] = 0;
		msg[m++] = 0;
		msg[m++] = (unsigned char)(r->fw->rport >> 8);
		msg[m++] = (unsigned char)r->fw->rport;
		msg[m++] = 0;
		msg[m++] = 0;
		msg[m++] = 0;
		msg[m++] = (unsigned char)ol;
		memcpy(msg + m, orig, ol);
		m += ol;
		msg[m++] = 0;
		msg[m++] = 0;
		msg[m++] = (unsigned char)(r->peer_port >> 8);
		msg[m++] = (unsigned char)r->peer_port;
		snprintf(ls->open_type, sizeof ls->open_type, "direct-tcpip");
		ls->open_window = ls->window;
		break;
	}
	case CK_UNIX: {
		struct xstream *x = (struct xstream *)c;
		memcpy(msg, x->req, x->req_len);
		m = x->req_len;
		snprintf(ls->open_type, sizeof ls->open_type, "direct-streamlocal@openssh.com");
		ls->open_window = WINDOW_STREAM;
		break;
	}
	case CK_EXEC:
		snprintf(ls->open_type, sizeof ls->open_type, "session");
		ls->open_window = WINDOW_STREAM;
		break;
	case CK_KA:
		snprintf(ls->open_type, sizeof ls->open_type, "session");
		ls->open_window = WINDOW_KA;
		break;
	default:
		return -1;
	}
	ls->open_type_len = (unsigned)strlen(ls->open_type);
	if (m > 0) {
		ls->open_msg = malloc(m);
		if (ls->open_msg == NULL)
			return -1;
		memcpy(ls->open_msg, msg, m);
		ls->open_msg_len = (unsigned)m;
	}
	return 0;
}

static void
open_done(struct ls2 *ls, struct chan *c, LIBSSH2_CHANNEL *ch)
{
	c->ch = ch;
	chan_link(ls, c);
	switch (c->kind) {
	case CK_RELAY: {
		struct relay *r = (struct relay *)c;
		c->state = CS_OPEN;
		r->io_ev = RDHPF_IO_READ;
		r->io = ls2_H->io_start(ls->ctx, r->fd, RDHPF_IO_READ, ls2_relay_on_io, r);
		if (r->io == NULL) {
			ls2_relay_reset(r, "cannot watch the socket");
			return;
		}
		/* The client may have written before the channel was there. */
		r->l_rd = true;
		ls2_ready_push(ls, c);
		break;
	}
	case CK_EXEC:
		c->state = CS_STARTING;
		ls2_ready_push(ls, c);
		break;
	case CK_UNIX:
		c->state = CS_OPEN;
		ls2_ready_push(ls, c);
		break;
	case CK_KA:
		c->state = CS_OPEN;
		ls2_ka_opened(ls);
		break;
	default:
		break;
	}
}

/* What a refused open most likely means, by channel type.  sshd refuses a
 * session past MaxSessions (per connection; direct-tcpip channels do not
 * count, sshd_config(5)) with its default reason, "connect failed" (libssh2
 * 1.10 drops the server's text, "open failed"), and a forward that
 * AllowTcpForwarding or PermitOpen forbid as "administratively prohibited". */
static const char *
open_hint(const struct chan *c, const char *why)
{
	bool session = c->kind == CK_EXEC || c->kind == CK_KA;

	if (session && (strstr(why, "connect failed") != NULL ||
	                strstr(why, "administratively prohibited") != NULL))
		return " (sshd refused a session channel on this connection: likely its "
		       "MaxSessions limit, default 10 per connection)";
	if (strstr(why, "administratively prohibited") != NULL)
		return c->kind == CK_RELAY
		           ? " (sshd does not allow this forward: AllowTcpForwarding or PermitOpen)"
		           : " (sshd does not allow it: AllowStreamLocalForwarding or PermitOpen)";
	if (strstr(why, "resource shortage") != NULL)
		return " (sshd is short of resources: file descriptors or memory on the remote)";
	return "";
}

static void
open_failed(struct ls2 *ls, struct chan *c, const char *why0)
{
	char d[768], why[400];

	snprintf(why, sizeof why, "%s%s", why0, open_hint(c, why0));

	switch (c->kind) {
	case CK_RELAY: {
		struct relay *r = (struct relay *)c;
		snprintf(d, sizeof d, "cannot open a channel to %s:%u: %s", r->fw->rhost,
		         r->fw->rport, why);
		ls2_H->log(ls->ctx, r->fw->warned_open ? RDHPF_LOG_DEBUG : RDHPF_LOG_WARN,
		           "forwarded connection refused by the remote", "detail", d, NULL);
		r->fw->warned_open = true;
		ls2_relay_free(r);
		break;
	}
	case CK_EXEC:
	case CK_UNIX: {
		struct xstream *x = (struct xstream *)c;
		snprintf(d, sizeof d, "cannot open %s channel: %s",
		         c->kind == CK_EXEC ? "a session" : "a unix-socket", why);
		ls2_stream_finish(ls, x, RDHPF_ERR_REMOTE, -1, d);
		break;
	}
	case CK_KA:
		c->state = CS_CLOSED;
		if (ls->kal.fallback) /* a retry (ka_on_tick): said already */
			break;
		rsdk_keepalive_set_fallback(&ls->kal, true);
		if (ls->ka_interval_ms == 0 || ls->ka_count == 0)
			break;
		ls2_H->log(ls->ctx, RDHPF_LOG_WARN,
		           "the server refused the keepalive session channel; using "
		           "libssh2_keepalive_send, "
		           "whose replies libssh2 1.10 keeps in memory for the life of the session",
		           "err", why, NULL);
		libssh2_keepalive_config(ls->s, 1, (unsigned)((ls->ka_interval_ms + 999) / 1000));
		break;
	default:
		break;
	}
}

/* One open in flight at a time (libssh2 1.10 keeps a single open state). */
void
ls2_drive_opens(struct ls2 *ls)
{
	unsigned gen = ls->gen;

	while (ls->phase == PH_READY && gen == ls->gen && (ls->open_busy || ls->openq != NULL)) {
		struct chan *c;
		LIBSSH2_CHANNEL *ch;

		if (!ls->open_busy) {
			c = ls->openq;
			if (open_params(ls, c) != 0) {
				openq_remove(ls, c);
				open_failed(ls, c, "out of memory");
				continue;
			}
			ls->opening = c;
			ls->open_busy = true;
			ls->open_orphan = false;
		}
		ch = libssh2_channel_open_ex(ls->s, ls->open_type, ls->open_type_len,
		                             ls->open_window, PACKET_SIZE, ls->open_msg,
		                             ls->open_msg_len);
		if (ch == NULL && libssh2_session_last_errno(ls->s) == LIBSSH2_ERROR_EAGAIN)
			return;
		c = ls->opening;
		ls->opening = NULL;
		ls->open_busy = false;
		if (c != NULL) {
			c->queued = false;
			ls->openq = c->qnext;
			if (ls->openq == NULL)
				ls->openq_tail = NULL;
			c->qnext = NULL;
		}
		if (ch == NULL) {
			char why[256];
			snprintf(why, sizeof why, "%s", ls2_sess_errmsg(ls));
			int e = libssh2_session_last_errno(ls->s);
			if (e != LIBSSH2_ERROR_CHANNEL_FAILURE && e != LIBSSH2_ERROR_ALLOC &&
			    e != LIBSSH2_ERROR_CHANNEL_UNKNOWN) {
				/* the transport itself failed */
				char d[300];
				snprintf(d, sizeof d, "ssh connection to %s:%u lost: %s",
				         ls->hostname, ls->port,
				         ls->sock_failed ? ls->sock_why : why);
				ls2_session_dead(ls, RDHPF_ERR_CLOSED, d);
				return;
			}
			if (e == LIBSSH2_ERROR_CHANNEL_FAILURE)
				ls2_H->counter_add(ls->ctx, "ssh_channels_refused_total", 1);
			if (c != NULL)
				open_failed(ls, c, why);
			continue;
		}
		if (c == NULL || ls->open_orphan) {
			ls2_zombie_add(ls, ch);
			ls->open_orphan = false;
			continue;
		}
		open_done(ls, c, ch);
	}
}
