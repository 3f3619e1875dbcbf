/* transport-libssh2, relay: forwards: a local listener per forward, and per accepted
 * connection a relay through a direct-tcpip channel. */
#include "ls2.h"

/* ---- forwards and relays ------------------------------------------------- */

static void
relay_update_io(struct relay *r)
{
	unsigned ev = 0;

	if (r->io == NULL)
		return;
	if (r->c.state == CS_OPEN) {
		if (!r->l_eof && !r->l_rd && rsdk_buf_size(&r->up) == 0 && !r->c.win_blocked &&
		    !r->c.out_throttled)
			ev |= RDHPF_IO_READ;
		if (rsdk_buf_size(&r->down) > 0)
			ev |= RDHPF_IO_WRITE;
	}
	if (ev != r->io_ev) {
		ls2_H->io_update(r->io, ev);
		r->io_ev = ev;
	}
}

void
ls2_relay_on_io(void *arg, int fd, unsigned rev)
{
	struct relay *r = arg;
	struct ls2 *ls = r->c.ls;

	(void)fd;
	if (rev & (RDHPF_IO_READ | RDHPF_IO_ERROR))
		r->l_rd = true;
	if (ls->phase != PH_READY || r->c.state != CS_OPEN)
		return;
	ls2_ready_push(ls, &r->c);
	ls2_service(ls);
}

void
ls2_relay_free(struct relay *r)
{
	struct ls2 *ls = r->c.ls;
	struct fwd *fw = r->fw;

	ls2_chan_detach(ls, &r->c);
	if (r->fprev)
		r->fprev->fnext = r->fnext;
	else if (fw->relays == r)
		fw->relays = r->fnext;
	if (r->fnext)
		r->fnext->fprev = r->fprev;
	if (r->io)
		ls2_H->io_stop(r->io);
	if (r->fd >= 0)
		close(r->fd);
	rsdk_buf_free(&r->up);
	rsdk_buf_free(&r->down);
	if (fw->st.active > 0)
		fw->st.active--;
	free(r);
}

/* Drop a connection hard: RST to the local client. */
void
ls2_relay_reset(struct relay *r, const char *why)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	struct ls2 *ls = r->c.ls;
	char pb[8], eb[160];

	snprintf(pb, sizeof pb, "%u", r->fw->lport);
	snprintf(eb, sizeof eb, "%s%s%s", why, ls->s ? ": " : "", ls->s ? ls2_sess_errmsg(ls) : "");
	ls2_H->log(ls->ctx, RDHPF_LOG_DEBUG, "forwarded connection reset", "port", pb, "why", eb,
	           NULL);

	if (r->fd >= 0)
		setsockopt(r->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	ls2_relay_free(r);
}

static void
relay_open_now(struct ls2 *ls, struct relay *r)
{
	ls2_openq_push(ls, &r->c);
}

static void
relay_new(struct fwd *fw, int cfd, uint16_t peer_port)
{
	struct ls2 *ls = fw->ls;
	struct relay *r = calloc(1, sizeof *r);

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
	r->t_accept = ls2_now_ms(ls);
	r->fnext = fw->relays;
	if (fw->relays)
		fw->relays->fprev = r;
	fw->relays = r;
	fw->st.connections++;
	fw->st.active++;
	if (ls->phase == PH_READY)
		relay_open_now(ls, r);
	else
		ls2_wait_timer_arm(ls);
}

static void
pause_fire(void *arg)
{
	struct fwd *fw = arg;

	ls2_H->timer_stop(fw->pause_t);
	fw->pause_t = NULL;
	if (fw->lio)
		ls2_H->io_update(fw->lio, RDHPF_IO_READ);
}

static void
listen_on_io(void *arg, int fd, unsigned rev)
{
	struct fwd *fw = arg;
	struct ls2 *ls = fw->ls;

	(void)rev;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage sa = {0};
		socklen_t sl = sizeof sa;
		uint16_t pp = 0;
		int cfd = accept4(fd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (cfd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			/* Out of fds or memory: the listener stays readable, so stop
			 * watching it for a moment instead of spinning. */
			char ebuf[64], pb[8];
			int e = errno;
			snprintf(ebuf, sizeof ebuf, "%s", strerror(e));
			snprintf(pb, sizeof pb, "%u", fw->lport);
			ls2_H->counter_add(ls->ctx, "listener_accept_failures_total", 1);
			ls2_H->log(
			    ls->ctx, RDHPF_LOG_WARN,
			    errno == EMFILE || errno == ENFILE
			        ? "accept failed: out of file descriptors (RLIMIT_NOFILE, see "
			          "status fds); pausing the listener"
			        : "accept failed; pausing the listener",
			    "port", pb, "err", ebuf, NULL);
			if (fw->pause_t == NULL) {
				ls2_H->io_update(fw->lio, 0);
				fw->pause_t =
				    ls2_H->timer_start(ls->ctx, ACCEPT_PAUSE_MS, 0, pause_fire, fw);
			}
			break;
		}
		if (fw->st.active >= ls->max_relays) {
			char pb[8], mb[16];
			close(cfd);
			ls2_H->counter_add(ls->ctx, "relays_dropped_total", 1);
			snprintf(pb, sizeof pb, "%u", fw->lport);
			snprintf(mb, sizeof mb, "%u", ls->max_relays);
			ls2_H->log(ls->ctx, RDHPF_LOG_WARN,
			           "too many connections on a forward; closing new ones", "port",
			           pb, "max_relays", mb, NULL);
			continue;
		}
		ls2_set_nodelay(cfd);
		if (sa.ss_family == AF_INET)
			pp = ntohs(((struct sockaddr_in *)&sa)->sin_port);
		else if (sa.ss_family == AF_INET6)
			pp = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
		relay_new(fw, cfd, pp);
	}
	ls2_service(ls);
}

static int
bind_listener(const char *addr, uint16_t port, int *out, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_NUMERICHOST | AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	char portstr[8];
	const char *a = addr;
	int fd, one = 1, r;

	if (a == NULL || *a == '\0' || strcmp(a, "localhost") == 0)
		a = "127.0.0.1";
	else if (strcmp(a, "*") == 0)
		a = "0.0.0.0";
	snprintf(portstr, sizeof portstr, "%u", port);
	r = getaddrinfo(a, portstr, &hints, &ai);
	if (r != 0 || ai == NULL) {
		snprintf(err, errlen, "bind address '%s' is not an IP address", addr ? addr : "");
		return RDHPF_ERR_INVAL;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		freeaddrinfo(ai);
		return RDHPF_ERR_IO;
	}
	/* SO_REUSEADDR only skips TIME_WAIT; on Linux no other socket can bind
	 * the port while we hold it (that would need SO_REUSEPORT on both). */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		int e = errno;
		close(fd);
		freeaddrinfo(ai);
		snprintf(err, errlen, "bind %s:%u: %s", a, port, strerror(e));
		return e == EADDRINUSE ? RDHPF_ERR_ADDRINUSE : RDHPF_ERR_IO;
	}
	freeaddrinfo(ai);
	if (listen(fd, SOMAXCONN) != 0) {
		int e = errno;
		close(fd);
		snprintf(err, errlen, "listen %s:%u: %s", a, port, strerror(e));
		return e == EADDRINUSE ? RDHPF_ERR_ADDRINUSE : RDHPF_ERR_IO;
	}
	*out = fd;
	return RDHPF_OK;
}

/* The members read here must lie inside what the core wrote. */
static bool
fwd_ok(const struct rdhpf_forward *f)
{
	return f != NULL && RDHPF_HAS(f, remote_port);
}

static struct fwd *
fwd_find(struct ls2 *ls, const struct rdhpf_forward *f)
{
	const char *b = f->bind_address ? f->bind_address : ls->bind_addr;

	for (struct fwd *fw = ls->fwds; fw; fw = fw->next)
		if (fw->lport == f->local_port && strcmp(fw->bind, b) == 0)
			return fw;
	return NULL;
}

void
ls2_fwd_free(struct ls2 *ls, struct fwd *fw)
{
	for (struct fwd **pp = &ls->fwds; *pp; pp = &(*pp)->next) {
		if (*pp == fw) {
			*pp = fw->next;
			break;
		}
	}
	while (fw->relays)
		ls2_relay_free(fw->relays);
	if (fw->pause_t)
		ls2_H->timer_stop(fw->pause_t);
	if (fw->lio)
		ls2_H->io_stop(fw->lio);
	if (fw->lfd >= 0)
		close(fw->lfd);
	free(fw);
}

/* Relays waiting for the session: those past connect_timeout are dropped. */
static void
wait_fire(void *arg)
{
	struct ls2 *ls = arg;
	uint64_t now = ls2_now_ms(ls);

	ls2_H->timer_stop(ls->wait_timer);
	ls->wait_timer = NULL;
	if (ls->phase == PH_READY)
		return;
	for (struct fwd *fw = ls->fwds; fw; fw = fw->next) {
		struct relay *r = fw->relays;
		while (r) {
			struct relay *next = r->fnext;
			if (r->c.state == CS_WAIT && now >= r->t_accept + ls->connect_timeout_ms)
				ls2_relay_reset(r, "waited connect_timeout for the session");
			r = next;
		}
	}
	ls2_wait_timer_arm(ls);
}

void
ls2_wait_timer_arm(struct ls2 *ls)
{
	uint64_t first = UINT64_MAX, now;

	if (ls->phase == PH_READY)
		return;
	for (struct fwd *fw = ls->fwds; fw; fw = fw->next)
		for (struct relay *r = fw->relays; r; r = r->fnext)
			if (r->c.state == CS_WAIT && r->t_accept < first)
				first = r->t_accept;
	if (ls->wait_timer) {
		ls2_H->timer_stop(ls->wait_timer);
		ls->wait_timer = NULL;
	}
	if (first == UINT64_MAX)
		return;
	now = ls2_now_ms(ls);
	first += ls->connect_timeout_ms;
	ls->wait_timer =
	    ls2_H->timer_start(ls->ctx, first > now ? first - now : 0, 0, wait_fire, ls);
}

/* The session is up: everyone who waited gets a channel, oldest first. */
void
ls2_wake_waiters(struct ls2 *ls)
{
	if (ls->wait_timer) {
		ls2_H->timer_stop(ls->wait_timer);
		ls->wait_timer = NULL;
	}
	for (struct fwd *fw = ls->fwds; fw; fw = fw->next) {
		/* relays are pushed at the head: walk to the tail for FIFO order */
		struct relay *r = fw->relays;
		while (r && r->fnext)
			r = r->fnext;
		for (; r; r = r->fprev)
			if (r->c.state == CS_WAIT)
				relay_open_now(ls, r);
	}
}

/* ---- relaying ------------------------------------------------------------- */

static int
relay_flush_down(struct relay *r)
{
	while (rsdk_buf_size(&r->down) > 0) {
		ssize_t n = send(r->fd, rsdk_buf_str(&r->down), rsdk_buf_size(&r->down),
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		rsdk_buf_consume(&r->down, (size_t)n);
	}
	ls2_buf_trim(&r->down);
	return 0;
}

/* Write p[0..n) to the channel; how much it took, or a libssh2 error when it
 * took nothing. */
static ssize_t
relay_chan_write(struct relay *r, const char *p, size_t n)
{
	struct ls2 *ls = r->c.ls;
	size_t off = 0;

	while (off < n) {
		ssize_t w;
		if (rsdk_buf_size(&ls->out) >= OUT_HIGH) {
			r->c.out_throttled = true;
			ls->any_throttled = true;
			break;
		}
		w = libssh2_channel_write(r->c.ch, p + off, n - off);
		if (w > 0) {
			off += (size_t)w;
			r->fw->st.bytes_out += (uint64_t)w;
			continue;
		}
		if (w == 0 || w == LIBSSH2_ERROR_EAGAIN) {
			if (libssh2_channel_window_write_ex(r->c.ch, NULL) == 0)
				r->c.win_blocked = true;
			break;
		}
		if (off == 0)
			return w;
		break;
	}
	return (ssize_t)off;
}

/* local → channel.  false when the relay is gone. */
static bool
relay_up(struct relay *r)
{
	struct ls2 *ls = r->c.ls;
	uint64_t budget = RELAY_BUDGET;

	r->c.win_blocked = false;
	r->c.out_throttled = false;
	while (rsdk_buf_size(&r->up) > 0) {
		ssize_t w = relay_chan_write(r, rsdk_buf_str(&r->up), rsdk_buf_size(&r->up));
		if (w < 0) {
			ls2_relay_reset(r, "channel write");
			return false;
		}
		if (w == 0)
			return true;
		rsdk_buf_consume(&r->up, (size_t)w);
	}
	ls2_buf_trim(&r->up);
	if (r->l_eof) {
		if (!r->eof_sent) {
			int rc = libssh2_channel_send_eof(r->c.ch);
			if (rc == LIBSSH2_ERROR_EAGAIN)
				return true; /* retried when bytes come in */
			r->eof_sent = true;
		}
		return true;
	}
	while (r->l_rd && budget > 0) {
		size_t room = libssh2_channel_window_write_ex(r->c.ch, NULL);
		ssize_t n, w;

		if (room == 0) {
			r->c.win_blocked = true;
			break;
		}
		if (rsdk_buf_size(&ls->out) >= OUT_HIGH) {
			r->c.out_throttled = true;
			ls->any_throttled = true;
			break;
		}
		if (room > SCRATCH_SIZE)
			room = SCRATCH_SIZE;
		n = recv(r->fd, ls->scratch, room, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				r->l_rd = false;
				break;
			}
			ls2_relay_reset(r, "local recv");
			return false;
		}
		if (n == 0) {
			r->l_eof = true;
			r->l_rd = false;
			int rc = libssh2_channel_send_eof(r->c.ch);
			if (rc != LIBSSH2_ERROR_EAGAIN)
				r->eof_sent = true;
			break;
		}
		budget -= (uint64_t)n < budget ? (uint64_t)n : budget;
		w = relay_chan_write(r, ls->scratch, (size_t)n);
		if (w < 0) {
			ls2_relay_reset(r, "channel write");
			return false;
		}
		if (w < n) {
			if (rsdk_buf_append(&r->up, ls->scratch + w, (size_t)(n - w)) != 0) {
				ls2_relay_reset(r, "out of memory");
				return false;
			}
			break;
		}
	}
	if (budget == 0 && r->l_rd)
		ls2_ready_push(ls, &r->c);
	return true;
}

void
ls2_relay_service(struct relay *r)
{
	struct ls2 *ls = r->c.ls;
	uint64_t budget = RELAY_BUDGET;

	if (r->c.state != CS_OPEN || r->c.ch == NULL)
		return;
	/* channel → local */
	if (rsdk_buf_size(&r->down) > 0 && relay_flush_down(r) != 0) {
		ls2_relay_reset(r, "local send");
		return;
	}
	while (!r->r_eof && rsdk_buf_size(&r->down) == 0 && budget > 0) {
		ssize_t n = libssh2_channel_read(r->c.ch, ls->scratch, SCRATCH_SIZE);
		if (n > 0) {
			ssize_t w;
			r->fw->st.bytes_in += (uint64_t)n;
			budget -= (uint64_t)n < budget ? (uint64_t)n : budget;
			w = send(r->fd, ls->scratch, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w < 0) {
				if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
					ls2_relay_reset(r, "local send");
					return;
				}
				w = 0;
			}
			if (w < n &&
			    rsdk_buf_append(&r->down, ls->scratch + w, (size_t)(n - w)) != 0) {
				ls2_relay_reset(r, "out of memory");
				return;
			}
			continue;
		}
		if (n == LIBSSH2_ERROR_EAGAIN)
			break;
		if (n == 0 || n == LIBSSH2_ERROR_CHANNEL_CLOSED ||
		    n == LIBSSH2_ERROR_CHANNEL_EOF_SENT) {
			r->r_eof = true;
			break;
		}
		/* transport failure: the session is gone, ls2_service() notices */
		ls2_relay_reset(r, "channel read");
		return;
	}
	if (budget == 0 && rsdk_buf_size(&r->down) == 0 && !r->r_eof)
		ls2_ready_push(ls, &r->c);
	if (r->r_eof && rsdk_buf_size(&r->down) == 0 && !r->shut_wr) {
		shutdown(r->fd, SHUT_WR);
		r->shut_wr = true;
	}
	/* local → channel */
	if (!relay_up(r))
		return;
	if (r->shut_wr && r->eof_sent) {
		ls2_relay_free(r); /* done both ways: the channel closes in the background */
		return;
	}
	/* The remote closed the channel (not just EOF): the local side is done. */
	if (r->r_eof && rsdk_buf_size(&r->down) == 0 && libssh2_channel_wait_closed(r->c.ch) == 0) {
		ls2_relay_free(r); /* done both ways: the channel closes in the background */
		return;
	}
	relay_update_io(r);
}

int
ls2_forward_add(void *state, const struct rdhpf_forward *f, rdhpf_done_fn done, void *arg)
{
	struct ls2 *ls = state;
	struct fwd *fw;
	char err[300];
	int r;

	if (!fwd_ok(f) || f->local_port == 0 || f->remote_port == 0 || f->remote_host == NULL ||
	    *f->remote_host == '\0' || strlen(f->remote_host) >= sizeof fw->rhost ||
	    (f->bind_address && strlen(f->bind_address) >= sizeof fw->bind))
		return RDHPF_ERR_INVAL;
	fw = fwd_find(ls, f);
	if (fw != NULL) {
		/* Idempotent; a changed target applies to new connections. */
		snprintf(fw->rhost, sizeof fw->rhost, "%s", f->remote_host);
		fw->rport = f->remote_port;
		return ls2_complete_later(ls, done, arg, RDHPF_OK, NULL);
	}
	fw = calloc(1, sizeof *fw);
	if (fw == NULL)
		return RDHPF_ERR_NOMEM;
	fw->ls = ls;
	fw->lfd = -1;
	snprintf(fw->bind, sizeof fw->bind, "%s",
	         f->bind_address ? f->bind_address : ls->bind_addr);
	fw->lport = f->local_port;
	snprintf(fw->rhost, sizeof fw->rhost, "%s", f->remote_host);
	fw->rport = f->remote_port;
	r = bind_listener(fw->bind, fw->lport, &fw->lfd, err, sizeof err);
	if (r != RDHPF_OK) {
		free(fw);
		return ls2_complete_later(ls, done, arg, r, err);
	}
	fw->lio = ls2_H->io_start(ls->ctx, fw->lfd, RDHPF_IO_READ, listen_on_io, fw);
	if (fw->lio == NULL) {
		close(fw->lfd);
		free(fw);
		return RDHPF_ERR_IO;
	}
	fw->next = ls->fwds;
	ls->fwds = fw;
	return ls2_complete_later(ls, done, arg, RDHPF_OK, NULL);
}

int
ls2_forward_remove(void *state, const struct rdhpf_forward *f, rdhpf_done_fn done, void *arg)
{
	struct ls2 *ls = state;
	struct fwd *fw = fwd_ok(f) ? fwd_find(ls, f) : NULL;

	/* The port is closed before the callback: a connect now is refused. */
	if (fw != NULL)
		ls2_fwd_free(ls, fw);
	ls2_kick(ls);
	return ls2_complete_later(ls, done, arg, RDHPF_OK, NULL);
}

int
ls2_forward_stats(void *state, const struct rdhpf_forward *f, struct rdhpf_forward_stats *out)
{
	struct ls2 *ls = state;
	struct fwd *fw = fwd_ok(f) ? fwd_find(ls, f) : NULL;

	if (fw == NULL || out == NULL)
		return RDHPF_ERR_INVAL;
	/* The core sized *out: write only what it knows. */
	if (RDHPF_HAS(out, connections))
		out->connections = fw->st.connections;
	if (RDHPF_HAS(out, active))
		out->active = fw->st.active;
	if (RDHPF_HAS(out, bytes_in))
		out->bytes_in = fw->st.bytes_in;
	if (RDHPF_HAS(out, bytes_out))
		out->bytes_out = fw->st.bytes_out;
	return RDHPF_OK;
}
