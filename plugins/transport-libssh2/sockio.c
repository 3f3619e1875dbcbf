/* transport-libssh2, sockio: the session socket.  libssh2 sends and receives through our
 * callbacks (see ls2.h for why). */
#include "ls2.h"

void
ls2_set_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ---- the session socket: our send/recv callbacks for libssh2 ---------- */

static void
sock_fail(struct ls2 *ls, const char *what, int err)
{
	if (ls->sock_failed)
		return;
	ls->sock_failed = true;
	if (err == 0)
		snprintf(ls->sock_why, sizeof ls->sock_why, "connection closed by the server");
	else
		snprintf(ls->sock_why, sizeof ls->sock_why, "%s: %s", what, strerror(err));
}

ssize_t
ls2_cb_send(libssh2_socket_t fd, const void *buf, size_t len, int flags, void **abstract)
{
	struct ls2 *ls = *abstract;
	size_t done = 0;

	/* libssh2 also talks to ssh-agent through this callback (its own fd):
	 * pass that straight through. */
	if (fd != ls->fd) {
		ssize_t n = send(fd, buf, len, flags | MSG_NOSIGNAL);
		return n < 0 ? -errno : n;
	}
	if (ls->io_dead || ls->sock_failed)
		return -EPIPE;
	if (rsdk_buf_size(&ls->out) == 0 && !ls->corked) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				int e = errno;
				sock_fail(ls, "send", e);
				return -e;
			}
			n = 0;
		}
		done = (size_t)n;
	}
	if (done < len) {
		if (rsdk_buf_append(&ls->out, (const char *)buf + done, len - done) != 0)
			return -ENOMEM;
		if (rsdk_buf_size(&ls->out) >= TX_BATCH)
			ls2_sess_flush(ls);
		if (rsdk_buf_size(&ls->out) > 0 && !(ls->io_ev & RDHPF_IO_WRITE) && !ls->corked)
			ls2_sess_update_io(ls);
	}
	return (ssize_t)len;
}

ssize_t
ls2_cb_recv(libssh2_socket_t fd, void *buf, size_t len, int flags, void **abstract)
{
	struct ls2 *ls = *abstract;
	ssize_t n;

	if (fd != ls->fd) { /* ssh-agent, as in cb_send */
		n = recv(fd, buf, len, flags);
		return n < 0 ? -errno : n;
	}
	if (ls->io_dead)
		return 0;
	if (ls->phase == PH_READY) {
		if (ls->rx_budget == 0)
			return -EAGAIN; /* input stays pending: the next round goes on */
		if (len > ls->rx_budget)
			len = ls->rx_budget;
	}
	if (ls->rx_len == 0) {
		if (!ls->rx_ready)
			return -EAGAIN;
		if (ls->rx == NULL && (ls->rx = malloc(RX_AHEAD)) == NULL)
			return -ENOMEM;
		ls->rx_off = 0;
		n = recv(fd, ls->rx, RX_AHEAD, MSG_DONTWAIT);
		if (n == 0) {
			sock_fail(ls, "recv", 0);
			return 0;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
				ls->rx_ready = false;
				return -EAGAIN;
			}
			int e = errno;
			sock_fail(ls, "recv", e);
			return -e;
		}
		ls->rx_len = (size_t)n;
		if (ls->rx_total == 0) {
			/* Kept for the handshake's error: sshd past MaxStartups
			 * says "Exceeded MaxStartups" instead of its banner. */
			size_t k = 0;
			for (; k < (size_t)n && k + 1 < sizeof ls->first_line; k++) {
				char ch = ls->rx[k];
				if (ch == '\r' || ch == '\n')
					break;
				ls->first_line[k] = ch >= 0x20 && ch < 0x7f ? ch : '?';
			}
			ls->first_line[k] = '\0';
		}
		ls->rx_total += (uint64_t)n;
		ls->last_rx_ms = ls2_now_ms(ls);
		rsdk_keepalive_rx(&ls->kal, ls->last_rx_ms);
	}
	if (len > ls->rx_len)
		len = ls->rx_len;
	memcpy(buf, ls->rx + ls->rx_off, len);
	ls->rx_off += len;
	ls->rx_len -= len;
	if (ls->phase == PH_READY)
		ls->rx_budget -= len;
	ls->rx_seq++;
	return (ssize_t)len;
}

bool
ls2_rx_pending(struct ls2 *ls)
{
	return ls->rx_ready || ls->rx_len > 0;
}

/* Flush sess_out; -1 on a dead socket.  Writers that stopped because it was
 * full are woken here, wherever the flush happened. */
int
ls2_sess_flush(struct ls2 *ls)
{
	while (rsdk_buf_size(&ls->out) > 0) {
		ssize_t n = send(ls->fd, rsdk_buf_str(&ls->out), rsdk_buf_size(&ls->out),
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			sock_fail(ls, "send", errno);
			snprintf(ls->last_conn_err, sizeof ls->last_conn_err, "%s", ls->sock_why);
			return -1;
		}
		rsdk_buf_consume(&ls->out, (size_t)n);
	}
	if (ls->any_throttled && rsdk_buf_size(&ls->out) < OUT_RESUME) {
		ls->any_throttled = false;
		for (struct chan *c = ls->chans; c; c = c->next) {
			if (c->out_throttled) {
				c->out_throttled = false;
				ls2_ready_push(ls, c);
			}
		}
	}
	ls2_buf_trim(&ls->out);
	return 0;
}

/* A channel libssh2 can be asked to read through (ls2_service's pull), or an
 * open in flight (its state machine reads): without one, input waits. */
struct chan *
ls2_pull_chan(struct ls2 *ls)
{
	if (ls->ka.ch != NULL)
		return &ls->ka;
	for (struct chan *c = ls->chans; c != NULL; c = c->next)
		if (c->ch != NULL)
			return c;
	return NULL;
}

bool
ls2_can_pull(struct ls2 *ls)
{
	return ls->phase != PH_READY || ls->open_busy || ls2_pull_chan(ls) != NULL;
}

void
ls2_sess_update_io(struct ls2 *ls)
{
	unsigned ev = 0;

	if (ls->io == NULL)
		return;
	if (ls->phase == PH_TCP) {
		ev = RDHPF_IO_WRITE;
	} else {
		/* Without a channel nothing can pull the transport; the data waits
		 * in the kernel rather than waking us in a loop. */
		if (ls2_can_pull(ls))
			ev |= RDHPF_IO_READ;
		if (rsdk_buf_size(&ls->out) > 0)
			ev |= RDHPF_IO_WRITE;
	}
	if (ev != ls->io_ev) {
		ls2_H->io_update(ls->io, ev);
		ls->io_ev = ev;
	}
}

void
ls2_sess_on_io(void *arg, int fd, unsigned rev)
{
	struct ls2 *ls = arg;

	(void)fd;
	if (rev & (RDHPF_IO_READ | RDHPF_IO_ERROR))
		ls->rx_ready = true;
	if ((rev & RDHPF_IO_WRITE) && ls->phase != PH_TCP && ls2_sess_flush(ls) != 0)
		ls->rx_ready = true; /* let the read path report the error */
	ls->depth++;
	if (ls->phase < PH_READY)
		ls2_conn_step(ls);
	else
		ls2_service(ls);
	ls->depth--;
	if (ls->destroyed) {
		if (ls->depth == 0)
			ls2_really_destroy(ls);
		return;
	}
	ls2_sess_update_io(ls);
}
