/* transport-libssh: forwards' books and their local listeners.
 *
 * A forward's listener is bound when it is added and stays bound until it
 * is removed or the instance destroyed, through every outage
 * (RDHPF_TCAP_HOLD_LISTENERS): a client that connects while the session
 * is down is accepted and waits (CS_WAIT) for the next session, up to
 * connect_timeout. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lsh.h"

#define H lsh_H

/* Numeric addresses only ("localhost" and "*" as the usual shorthands):
 * a forward never waits on DNS. */
static int
listen_on(const char *addr, uint16_t port, int *out, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	const char *a = addr;
	socklen_t sl;
	int fd, e;

	if (a == NULL || *a == '\0' || strcmp(a, "localhost") == 0)
		a = "127.0.0.1";
	else if (strcmp(a, "*") == 0)
		a = "0.0.0.0";
	memset(&ss, 0, sizeof ss);
	if (inet_pton(AF_INET, a, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		sl = sizeof *s4;
	} else if (inet_pton(AF_INET6, a, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		sl = sizeof *s6;
	} else {
		snprintf(err, errlen, "bind address '%s' is not an IP address", addr ? addr : "");
		return RDHPF_ERR_INVAL;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return RDHPF_ERR_IO;
	}
	/* SO_REUSEADDR only skips TIME_WAIT (no SO_REUSEPORT: nobody else may
	 * bind the port while we hold it). */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){1}, sizeof(int));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &(int){1}, sizeof(int));
	if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, SOMAXCONN) != 0) {
		e = errno;
		close(fd);
		snprintf(err, errlen, "listen on %s:%u: %s", a, port, strerror(e));
		return e == EADDRINUSE ? RDHPF_ERR_ADDRINUSE : RDHPF_ERR_IO;
	}
	*out = fd;
	return RDHPF_OK;
}

static void
pause_fire(void *arg)
{
	struct lsh_fwd *fw = arg;

	H->timer_stop(fw->pause_t);
	fw->pause_t = NULL;
	if (fw->lio)
		H->io_update(fw->lio, RDHPF_IO_READ);
}

static void
accept_on_io(void *arg, int fd, unsigned rev)
{
	struct lsh_fwd *fw = arg;
	struct lsh *ls = fw->ls;

	(void)rev;
	for (int i = 0; i < LSH_ACCEPT_BATCH; i++) {
		struct sockaddr_storage sa;
		socklen_t sl = sizeof sa;
		uint16_t pp = 0;
		int cfd = accept4(fd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK && fw->pause_t == NULL) {
				/* Out of fds: the listener stays readable; rest a moment
				 * instead of spinning on it. */
				char e[64], p[8];
				snprintf(e, sizeof e, "%s", strerror(errno));
				snprintf(p, sizeof p, "%u", fw->lport);
				H->log(ls->ctx, RDHPF_LOG_WARN,
				       "accept failed; pausing the listener", "port", p, "err", e,
				       NULL);
				H->io_update(fw->lio, 0);
				fw->pause_t =
				    H->timer_start(ls->ctx, LSH_ACCEPT_PAUSE_MS, 0, pause_fire, fw);
			}
			break;
		}
		setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
		if (sa.ss_family == AF_INET)
			pp = ntohs(((struct sockaddr_in *)&sa)->sin_port);
		else if (sa.ss_family == AF_INET6)
			pp = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
		lsh_relay_new(fw, cfd, pp);
	}
	lsh_service(ls);
}

struct lsh_fwd *
lsh_fwd_find(struct lsh *ls, const struct rdhpf_forward *f)
{
	const char *b = f->bind_address ? f->bind_address : ls->bind_addr;

	for (struct lsh_fwd *fw = ls->fwds; fw; fw = fw->next)
		if (fw->lport == f->local_port && strcmp(fw->bind, b) == 0)
			return fw;
	return NULL;
}

int
lsh_fwd_add(struct lsh *ls, const struct rdhpf_forward *f, char *err, size_t errlen)
{
	struct lsh_fwd *fw = calloc(1, sizeof *fw);
	int r;

	if (fw == NULL)
		return RDHPF_ERR_NOMEM;
	fw->ls = ls;
	fw->lfd = -1;
	snprintf(fw->bind, sizeof fw->bind, "%s",
	         f->bind_address ? f->bind_address : ls->bind_addr);
	fw->lport = f->local_port;
	snprintf(fw->rhost, sizeof fw->rhost, "%s", f->remote_host);
	fw->rport = f->remote_port;
	r = listen_on(fw->bind, fw->lport, &fw->lfd, err, errlen);
	if (r != RDHPF_OK) {
		free(fw);
		return r;
	}
	fw->lio = H->io_start(ls->ctx, fw->lfd, RDHPF_IO_READ, accept_on_io, fw);
	if (fw->lio == NULL) {
		close(fw->lfd);
		free(fw);
		snprintf(err, errlen, "cannot watch the listener");
		return RDHPF_ERR_IO;
	}
	fw->next = ls->fwds;
	ls->fwds = fw;
	return RDHPF_OK;
}

void
lsh_fwd_free(struct lsh *ls, struct lsh_fwd *fw)
{
	for (struct lsh_fwd **pp = &ls->fwds; *pp; pp = &(*pp)->next) {
		if (*pp == fw) {
			*pp = fw->next;
			break;
		}
	}
	while (fw->relays)
		lsh_relay_free(fw->relays);
	if (fw->pause_t)
		H->timer_stop(fw->pause_t);
	if (fw->lio)
		H->io_stop(fw->lio);
	if (fw->lfd >= 0)
		close(fw->lfd);
	free(fw);
}

/* Clients waiting for a session longer than connect_timeout are let go. */
static void
wait_fire(void *arg)
{
	struct lsh *ls = arg;
	uint64_t now = lsh_now(ls);

	H->timer_stop(ls->wait_timer);
	ls->wait_timer = NULL;
	if (ls->phase == PH_READY)
		return;
	for (struct lsh_fwd *fw = ls->fwds; fw; fw = fw->next) {
		struct lsh_relay *r = fw->relays;
		while (r) {
			struct lsh_relay *next = r->fnext;
			if (r->c.state == CS_WAIT && now >= r->t_accept + ls->connect_timeout_ms)
				lsh_relay_free(r);
			r = next;
		}
	}
	lsh_wait_timer_arm(ls);
}

void
lsh_wait_timer_arm(struct lsh *ls)
{
	uint64_t first = UINT64_MAX, now;

	if (ls->wait_timer) {
		H->timer_stop(ls->wait_timer);
		ls->wait_timer = NULL;
	}
	if (ls->phase == PH_READY || ls->destroyed)
		return;
	for (struct lsh_fwd *fw = ls->fwds; fw; fw = fw->next)
		for (struct lsh_relay *r = fw->relays; r; r = r->fnext)
			if (r->c.state == CS_WAIT && r->t_accept < first)
				first = r->t_accept;
	if (first == UINT64_MAX)
		return;
	now = lsh_now(ls);
	first += ls->connect_timeout_ms;
	ls->wait_timer = H->timer_start(ls->ctx, first > now ? first - now : 0, 0, wait_fire, ls);
}

/* The session is up: those who waited get channels, oldest first. */
void
lsh_wake_waiters(struct lsh *ls)
{
	if (ls->wait_timer) {
		H->timer_stop(ls->wait_timer);
		ls->wait_timer = NULL;
	}
	for (struct lsh_fwd *fw = ls->fwds; fw; fw = fw->next)
		lsh_fwd_open_waiting(fw);
}
