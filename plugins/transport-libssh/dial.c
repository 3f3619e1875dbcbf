/* transport-libssh: reaching the server's TCP port without blocking.
 *
 * libssh's own connect path (ssh_connect without SSH_OPTIONS_FD) calls
 * getaddrinfo() and, in 0.10, connects the socket itself: both can block
 * the loop on DNS.  So we resolve (a `getent ahosts` child for names,
 * inet_pton for addresses), connect a non-blocking socket, and hand libssh
 * a dup of it (SSH_OPTIONS_FD) once it is connected: libssh closes its copy
 * whenever it likes, our fd — the one registered with the core — stays
 * valid until teardown closes it. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lsh.h"

#define H lsh_H
#define RESOLVE_MAX (64u * 1024u)

static bool
addr_set(struct lsh *ls, int i, const char *a)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ls->addr[i];
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ls->addr[i];

	memset(&ls->addr[i], 0, sizeof ls->addr[i]);
	if (inet_pton(AF_INET, a, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(ls->tport);
		ls->addrlen[i] = sizeof *s4;
		return true;
	}
	if (inet_pton(AF_INET6, a, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(ls->tport);
		ls->addrlen[i] = sizeof *s6;
		return true;
	}
	return false;
}

/* Try the addresses in order until one starts connecting. */
static int
tcp_next(struct lsh *ls)
{
	for (; ls->iaddr < ls->naddr; ls->iaddr++) {
		int fd = socket(ls->addr[ls->iaddr].ss_family,
		                SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			snprintf(ls->last_err, sizeof ls->last_err, "socket: %s", strerror(errno));
			continue;
		}
		if (connect(fd, (struct sockaddr *)&ls->addr[ls->iaddr], ls->addrlen[ls->iaddr]) !=
		        0 &&
		    errno != EINPROGRESS) {
			snprintf(ls->last_err, sizeof ls->last_err, "connect: %s", strerror(errno));
			close(fd);
			continue;
		}
		ls->fd = fd;
		ls->phase = PH_TCP;
		ls->io_ev = RDHPF_IO_WRITE;
		ls->io = H->io_start(ls->ctx, fd, RDHPF_IO_WRITE, lsh_sess_on_io, ls);
		if (ls->io == NULL) {
			close(fd);
			ls->fd = -1;
			snprintf(ls->last_err, sizeof ls->last_err, "cannot watch the socket");
			return -1;
		}
		return 0;
	}
	return -1;
}

static void
fail_connect(struct lsh *ls)
{
	char d[600];

	snprintf(d, sizeof d, "cannot connect to %s:%u: %s", ls->target, ls->tport,
	         ls->last_err[0] ? ls->last_err : "no address");
	lsh_connect_finish(ls, RDHPF_ERR_CONNECT, d);
}

/* Called on the socket's first writability: 0 connected, 1 still going
 * (next address started), -1 failed (connect_finish called). */
int
lsh_tcp_check(struct lsh *ls)
{
	int soerr = 0, dupfd;
	socklen_t sl = sizeof soerr;

	if (getsockopt(ls->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
		soerr = errno;
	if (soerr == EINPROGRESS || soerr == EALREADY)
		return 1;
	if (soerr != 0) {
		snprintf(ls->last_err, sizeof ls->last_err, "connect: %s", strerror(soerr));
		H->io_stop(ls->io);
		ls->io = NULL;
		close(ls->fd);
		ls->fd = -1;
		ls->iaddr++;
		if (tcp_next(ls) != 0) {
			fail_connect(ls);
			return -1;
		}
		return 1;
	}
	setsockopt(ls->fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
	/* TCP_USER_TIMEOUT backs the keepalive up: data unacknowledged for
	 * longer than the keepalive allows kills the socket. */
	if (ls->ka_interval_ms > 0 && ls->ka_count > 0) {
		uint64_t ut = ls->ka_interval_ms * (ls->ka_count + 1u);
		unsigned int v = ut > UINT_MAX ? UINT_MAX : (unsigned int)ut;
		setsockopt(ls->fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &v, sizeof v);
	}
	dupfd = fcntl(ls->fd, F_DUPFD_CLOEXEC, 0);
	if (dupfd < 0 || ssh_options_set(ls->s, SSH_OPTIONS_FD, &dupfd) != SSH_OK) {
		if (dupfd >= 0)
			close(dupfd);
		snprintf(ls->last_err, sizeof ls->last_err, "cannot hand the socket to libssh");
		fail_connect(ls);
		return -1;
	}
	return 0;
}

static void
resolve_parse(struct lsh *ls)
{
	char *save = NULL, *line;

	ls->naddr = ls->iaddr = 0;
	/* getent ahosts: "ADDRESS STREAM name" lines, one per address and
	 * socket type; only the STREAM ones, in order, deduplicated by getent. */
	/* rsdk_buf keeps its content NUL-ended; strtok_r needs it writable. */
	for (line = ls->resbuf.data ? strtok_r(ls->resbuf.data + ls->resbuf.off, "\n", &save)
	                            : NULL;
	     line && ls->naddr < LSH_MAX_ADDRS; line = strtok_r(NULL, "\n", &save)) {
		char a[INET6_ADDRSTRLEN + 1], kind[16];
		if (sscanf(line, "%46s %15s", a, kind) == 2 && strcmp(kind, "STREAM") == 0 &&
		    addr_set(ls, ls->naddr, a))
			ls->naddr++;
	}
	rsdk_buf_free(&ls->resbuf);
	if (ls->naddr == 0) {
		char d[400];
		snprintf(d, sizeof d, "cannot resolve host name %s", ls->target);
		lsh_connect_finish(ls, RDHPF_ERR_CONNECT, d);
		return;
	}
	if (tcp_next(ls) != 0)
		fail_connect(ls);
}

void
lsh_dial_stop(struct lsh *ls)
{
	if (ls->res_io) {
		H->io_stop(ls->res_io);
		ls->res_io = NULL;
	}
	if (ls->res_fd >= 0) {
		close(ls->res_fd);
		ls->res_fd = -1;
	}
	if (ls->resolver) {
		H->child_kill(ls->resolver, SIGKILL);
		H->child_detach(ls->resolver);
		ls->resolver = NULL;
	}
	rsdk_buf_free(&ls->resbuf);
}

static void
resolver_exit(void *arg, int code, int sig)
{
	struct lsh *ls = arg;

	(void)code;
	(void)sig;
	ls->resolver = NULL;
}

static void
resolver_on_io(void *arg, int fd, unsigned rev)
{
	struct lsh *ls = arg;
	char b[4096];
	ssize_t n = read(fd, b, sizeof b);

	(void)rev;
	if (n > 0) {
		if (rsdk_buf_size(&ls->resbuf) + (size_t)n <= RESOLVE_MAX)
			rsdk_buf_append(&ls->resbuf, b, (size_t)n);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	H->io_stop(ls->res_io);
	ls->res_io = NULL;
	close(ls->res_fd);
	ls->res_fd = -1;
	if (ls->resolver) {
		H->child_detach(ls->resolver); /* the core reaps it */
		ls->resolver = NULL;
	}
	resolve_parse(ls);
}

int
lsh_dial_start(struct lsh *ls, char *err, size_t errlen)
{
	const char *argv[] = {"getent", "ahosts", ls->target, NULL};
	struct rdhpf_spawn_opts o;
	char cerr[256];

	ls->naddr = ls->iaddr = 0;
	if (addr_set(ls, 0, ls->target)) {
		ls->naddr = 1;
		if (tcp_next(ls) != 0) {
			snprintf(err, errlen, "cannot connect to %s:%u: %s", ls->target, ls->tport,
			         ls->last_err);
			return RDHPF_ERR_CONNECT;
		}
		return RDHPF_OK;
	}
	/* A name: getaddrinfo() would block the loop, so a child resolves it.
	 * The name comes from rdhpf.conf or ssh_config, and is one argv word
	 * (no shell); a leading '-' would be an option to getent. */
	if (ls->target[0] == '-') {
		snprintf(err, errlen, "bad host name '%s'", ls->target);
		return RDHPF_ERR_INVAL;
	}
	memset(&o, 0, sizeof o);
	o.argv = argv;
	o.stdout_fd = &ls->res_fd;
	ls->resolver = H->spawn(ls->ctx, &o, resolver_exit, ls, cerr, sizeof cerr);
	if (ls->resolver == NULL) {
		snprintf(err, errlen, "cannot resolve %s: %s", ls->target, cerr);
		return RDHPF_ERR_CONNECT;
	}
	ls->res_io = H->io_start(ls->ctx, ls->res_fd, RDHPF_IO_READ, resolver_on_io, ls);
	ls->phase = PH_RESOLVING;
	return RDHPF_OK;
}
