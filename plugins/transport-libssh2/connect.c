/* transport-libssh2, connect: the connect state machine: resolve (a getent child), TCP
 * connect, SSH handshake, host key, public key authentication. */
#include "ls2.h"

/* ---- connecting ----------------------------------------------------------- */

static void
connect_finish(struct ls2 *ls, int status, const char *detail)
{
	rdhpf_done_fn done = ls->cdone;
	void *arg = ls->carg;

	ls->cdone = NULL;
	if (ls->ctimer) {
		ls2_H->timer_stop(ls->ctimer);
		ls->ctimer = NULL;
	}
	if (status != RDHPF_OK) {
		ls2_H->log(ls->ctx, RDHPF_LOG_DEBUG, "connect failed", "err", detail, NULL);
		ls2_session_teardown(ls, TD_FAILED);
	}
	if (done)
		done(arg, status, detail);
}

static const char *
phase_name(int ph)
{
	switch (ph) {
	case PH_RESOLVING:
		return "resolving the host name";
	case PH_TCP:
		return "TCP connect";
	case PH_HANDSHAKE:
		return "SSH handshake";
	case PH_AUTH:
		return "authentication";
	case PH_READY:
		return "ready";
	default:
		return "down";
	}
}

static void
ctimer_fire(void *arg)
{
	struct ls2 *ls = arg;
	char d[512];

	snprintf(d, sizeof d, "connecting to %s:%u timed out after %llu ms (during %s)%s%s",
	         ls->hostname, ls->port, (unsigned long long)ls->connect_timeout_ms,
	         phase_name(ls->phase), ls->last_conn_err[0] ? "; last error: " : "",
	         ls->last_conn_err);
	connect_finish(ls, RDHPF_ERR_TIMEOUT, d);
}

static int
tcp_start(struct ls2 *ls)
{
	while (ls->iaddr < ls->naddr) {
		struct sockaddr_storage *sa = &ls->addr[ls->iaddr];
		int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			snprintf(ls->last_conn_err, sizeof ls->last_conn_err, "socket: %s",
			         strerror(errno));
			ls->iaddr++;
			continue;
		}
		ls2_set_nodelay(fd);
		if (connect(fd, (struct sockaddr *)sa, ls->addrlen[ls->iaddr]) != 0 &&
		    errno != EINPROGRESS) {
			snprintf(ls->last_conn_err, sizeof ls->last_conn_err, "connect: %s",
			         strerror(errno));
			close(fd);
			ls->iaddr++;
			continue;
		}
		ls->fd = fd;
		ls->phase = PH_TCP;
		ls->io_ev = RDHPF_IO_WRITE;
		ls->io = ls2_H->io_start(ls->ctx, fd, RDHPF_IO_WRITE, ls2_sess_on_io, ls);
		if (ls->io == NULL) {
			close(fd);
			ls->fd = -1;
			snprintf(ls->last_conn_err, sizeof ls->last_conn_err,
			         "cannot watch the socket");
			return -1;
		}
		return 0;
	}
	return -1;
}

static void
resolve_done(struct ls2 *ls)
{
	char *save = NULL, *line;

	ls->naddr = 0;
	/* rsdk_buf keeps its content NUL-ended; strtok_r needs it writable. */
	for (line = ls->resbuf.data ? strtok_r(ls->resbuf.data + ls->resbuf.off, "\n", &save)
	                            : NULL;
	     line && ls->naddr < MAX_ADDRS; line = strtok_r(NULL, "\n", &save)) {
		char a[INET6_ADDRSTRLEN + 1], kind[16];
		struct sockaddr_storage *sa = &ls->addr[ls->naddr];
		if (sscanf(line, "%46s %15s", a, kind) != 2 || strcmp(kind, "STREAM") != 0)
			continue;
		memset(sa, 0, sizeof *sa);
		if (inet_pton(AF_INET, a, &((struct sockaddr_in *)sa)->sin_addr) == 1) {
			sa->ss_family = AF_INET;
			((struct sockaddr_in *)sa)->sin_port = htons(ls->port);
			ls->addrlen[ls->naddr++] = sizeof(struct sockaddr_in);
		} else if (inet_pton(AF_INET6, a, &((struct sockaddr_in6 *)sa)->sin6_addr) == 1) {
			sa->ss_family = AF_INET6;
			((struct sockaddr_in6 *)sa)->sin6_port = htons(ls->port);
			ls->addrlen[ls->naddr++] = sizeof(struct sockaddr_in6);
		}
	}
	rsdk_buf_free(&ls->resbuf);
	if (ls->naddr == 0) {
		char d[400];
		snprintf(d, sizeof d, "cannot resolve host name %s", ls->hostname);
		connect_finish(ls, RDHPF_ERR_CONNECT, d);
		return;
	}
	ls->iaddr = 0;
	if (tcp_start(ls) != 0) {
		char d[512];
		snprintf(d, sizeof d, "cannot connect to %s:%u: %s", ls->hostname, ls->port,
		         ls->last_conn_err);
		connect_finish(ls, RDHPF_ERR_CONNECT, d);
	}
}

void
ls2_resolver_stop(struct ls2 *ls)
{
	if (ls->res_io) {
		ls2_H->io_stop(ls->res_io);
		ls->res_io = NULL;
	}
	if (ls->res_fd >= 0) {
		close(ls->res_fd);
		ls->res_fd = -1;
	}
	if (ls->resolver) {
		ls2_H->child_kill(ls->resolver, SIGKILL);
		ls2_H->child_detach(ls->resolver);
		ls->resolver = NULL;
	}
}

static void
resolver_exit(void *arg, int code, int sig)
{
	struct ls2 *ls = arg;

	(void)code;
	(void)sig;
	ls->resolver = NULL;
}

static void
resolver_on_io(void *arg, int fd, unsigned rev)
{
	struct ls2 *ls = arg;
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
	ls2_H->io_stop(ls->res_io);
	ls->res_io = NULL;
	close(ls->res_fd);
	ls->res_fd = -1;
	if (ls->resolver) {
		ls2_H->child_detach(ls->resolver); /* the core reaps it */
		ls->resolver = NULL;
	}
	resolve_done(ls);
}

static int
resolve_start(struct ls2 *ls, char *err, size_t errlen)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ls->addr[0];
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ls->addr[0];
	const char *argv[] = {"getent", "ahosts", ls->hostname, NULL};
	struct rdhpf_spawn_opts o;
	char cerr[256];

	memset(&ls->addr[0], 0, sizeof ls->addr[0]);
	ls->naddr = ls->iaddr = 0;
	if (inet_pton(AF_INET, ls->hostname, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(ls->port);
		ls->addrlen[0] = sizeof *s4;
		ls->naddr = 1;
	} else if (inet_pton(AF_INET6, ls->hostname, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(ls->port);
		ls->addrlen[0] = sizeof *s6;
		ls->naddr = 1;
	}
	if (ls->naddr == 1) {
		if (tcp_start(ls) != 0) {
			snprintf(err, errlen, "cannot connect to %s:%u: %s", ls->hostname, ls->port,
			         ls->last_conn_err);
			return RDHPF_ERR_CONNECT;
		}
		return RDHPF_OK;
	}
	/* A name: getaddrinfo() would block the loop, so a child resolves it. */
	memset(&o, 0, sizeof o);
	o.argv = argv;
	o.stdout_fd = &ls->res_fd;
	ls->resolver = ls2_H->spawn(ls->ctx, &o, resolver_exit, ls, cerr, sizeof cerr);
	if (ls->resolver == NULL) {
		snprintf(err, errlen, "cannot resolve %s: %s", ls->hostname, cerr);
		return RDHPF_ERR_CONNECT;
	}
	ls->res_io = ls2_H->io_start(ls->ctx, ls->res_fd, RDHPF_IO_READ, resolver_on_io, ls);
	ls->phase = PH_RESOLVING;
	return RDHPF_OK;
}

/* Build the session and decide which host key algorithms to offer. */
static int
session_make(struct ls2 *ls, char *err, size_t errlen)
{
	char kt[256];

	ls->s = libssh2_session_init_ex(NULL, NULL, NULL, ls);
	if (ls->s == NULL) {
		snprintf(err, errlen, "libssh2_session_init failed");
		return RDHPF_ERR_NOMEM;
	}
	libssh2_session_set_blocking(ls->s, 0);
	/* libssh2 takes callbacks as void *; ISO C has no such cast, so copy
	 * the pointer's bytes (the same size on every target libssh2 runs on). */
	{
		LIBSSH2_SEND_FUNC((*sf)) = ls2_cb_send;
		LIBSSH2_RECV_FUNC((*rf)) = ls2_cb_recv;
		void *ps, *pr;
		_Static_assert(sizeof ps == sizeof sf, "function pointers fit in void *");
		memcpy(&ps, &sf, sizeof ps);
		memcpy(&pr, &rf, sizeof pr);
		libssh2_session_callback_set(ls->s, LIBSSH2_CALLBACK_SEND, ps);
		libssh2_session_callback_set(ls->s, LIBSSH2_CALLBACK_RECV, pr);
	}
	libssh2_session_flag(ls->s, LIBSSH2_FLAG_COMPRESS, 0);
	if (libssh2_session_method_pref(ls->s, LIBSSH2_METHOD_CRYPT_CS, ls->ciphers) != 0 ||
	    libssh2_session_method_pref(ls->s, LIBSSH2_METHOD_CRYPT_SC, ls->ciphers) != 0 ||
	    libssh2_session_method_pref(ls->s, LIBSSH2_METHOD_MAC_CS, ls->macs) != 0 ||
	    libssh2_session_method_pref(ls->s, LIBSSH2_METHOD_MAC_SC, ls->macs) != 0) {
		snprintf(err, errlen, "cipher/MAC preferences rejected: %s", ls2_sess_errmsg(ls));
		return RDHPF_ERR_INVAL;
	}
	ls2_known_hosts_load(ls);
	ls2_known_types(ls, kt, sizeof kt);
	if (kt[0] != '\0' && libssh2_session_method_pref(ls->s, LIBSSH2_METHOD_HOSTKEY, kt) != 0) {
		snprintf(err, errlen,
		         "known_hosts %s has only %s keys for %s, which libssh2 %s cannot use",
		         ls->known_hosts, kt, ls->hostname, libssh2_version(0));
		return RDHPF_ERR_HOSTKEY;
	}
	return RDHPF_OK;
}

static const char RSA_HINT[] =
    "; note: libssh2 1.10 can only sign with RSA keys using ssh-rsa (SHA-1), which OpenSSH 8.8 "
    "and later refuse, and it has no rsa-sha2-256/512: use an ed25519 or ECDSA key";

/* RDHPF_OK when authenticated, LIBSSH2_ERROR_EAGAIN to wait, else an
 * RDHPF error with ls->auth_err. */
static int
auth_run(struct ls2 *ls)
{
	int rc;

	if (ls->auth_step == AS_LIST) {
		char *list = libssh2_userauth_list(ls->s, ls->user, (unsigned)strlen(ls->user));
		if (list == NULL) {
			if (libssh2_userauth_authenticated(ls->s))
				return RDHPF_OK;
			if (libssh2_session_last_errno(ls->s) == LIBSSH2_ERROR_EAGAIN)
				return LIBSSH2_ERROR_EAGAIN;
			snprintf(ls->auth_err, sizeof ls->auth_err,
			         "cannot list authentication methods: %s", ls2_sess_errmsg(ls));
			return RDHPF_ERR_AUTH;
		}
		if (strstr(list, "publickey") == NULL) {
			snprintf(ls->auth_err, sizeof ls->auth_err,
			         "%s@%s does not accept public key authentication (offers: %.100s)",
			         ls->user, ls->hostname, list);
			return RDHPF_ERR_AUTH;
		}
		ls->auth_step = ls->use_agent && getenv("SSH_AUTH_SOCK") ? AS_AGENT : AS_FILE;
		ls->iid = 0;
	}
	if (ls->auth_step == AS_AGENT) {
		if (ls->agent == NULL) {
			ls->agent = libssh2_agent_init(ls->s);
			if (ls->agent == NULL || libssh2_agent_connect(ls->agent) != 0 ||
			    libssh2_agent_list_identities(ls->agent) != 0) {
				ls2_H->log(ls->ctx, RDHPF_LOG_DEBUG, "ssh-agent not usable", NULL);
				ls->auth_step = AS_FILE;
			}
			ls->agent_prev = NULL;
		}
		while (ls->auth_step == AS_AGENT) {
			struct libssh2_agent_publickey *id = NULL;
			rc = libssh2_agent_get_identity(ls->agent, &id, ls->agent_prev);
			if (rc != 0) {
				ls->auth_step = AS_FILE;
				break;
			}
			rc = libssh2_agent_userauth(ls->agent, ls->user, id);
			if (rc == LIBSSH2_ERROR_EAGAIN)
				return LIBSSH2_ERROR_EAGAIN; /* the same identity again */
			if (rc == 0)
				return RDHPF_OK;
			ls->agent_tried++;
			if (ls2_blob_is_rsa(id->blob, id->blob_len))
				ls->tried_rsa = true;
			ls->agent_prev = id;
		}
	}
	while (ls->iid < ls->nidfiles) {
		const char *f = ls->idfiles[ls->iid];
		if (access(f, R_OK) != 0) {
			if (ls->identity != NULL)
				snprintf(ls->auth_err, sizeof ls->auth_err,
				         "cannot read identity_file %s: %s", f, strerror(errno));
			ls->iid++;
			continue;
		}
		rc = libssh2_userauth_publickey_fromfile_ex(
		    ls->s, ls->user, (unsigned)strlen(ls->user), NULL, f, NULL);
		if (rc == LIBSSH2_ERROR_EAGAIN)
			return LIBSSH2_ERROR_EAGAIN;
		if (rc == 0)
			return RDHPF_OK;
		ls->tried_file = true;
		if (ls2_idfile_is_rsa(f))
			ls->tried_rsa = true;
		if (rc == LIBSSH2_ERROR_FILE || rc == LIBSSH2_ERROR_KEYFILE_AUTH_FAILED)
			snprintf(ls->auth_err, sizeof ls->auth_err,
			         "cannot use identity file %s: %s (encrypted keys need ssh-agent)",
			         f, ls2_sess_errmsg(ls));
		ls->iid++;
	}
	{
		char tried[1200];
		snprintf(tried, sizeof tried,
		         "public key authentication as %s@%s refused (tried: %d agent "
		         "key(s), %s)%s%s%s",
		         ls->user, ls->hostname, ls->agent_tried,
		         ls->nidfiles == 0 ? "no identity file"
		         : ls->tried_file ? (ls->identity ? ls->identity : "default identity files")
		                          : "no readable identity file",
		         ls->auth_err[0] ? "; " : "", ls->auth_err, ls->tried_rsa ? RSA_HINT : "");
		size_t n = strlen(tried);
		if (n >= sizeof ls->auth_err)
			n = sizeof ls->auth_err - 1;
		memcpy(ls->auth_err, tried, n);
		ls->auth_err[n] = '\0';
	}
	return RDHPF_ERR_AUTH;
}

static void
became_ready(struct ls2 *ls)
{
	ls->phase = PH_READY;
	ls->last_rx_ms = ls2_now_ms(ls);
	if (ls->agent) {
		libssh2_agent_disconnect(ls->agent);
		libssh2_agent_free(ls->agent);
		ls->agent = NULL;
	}
	if (ls->kh) {
		libssh2_knownhost_free(ls->kh);
		libssh2_knownhost_free(ls->kh_revoked);
		ls->kh = ls->kh_revoked = NULL;
	}
	ls2_ka_start(ls);
	ls2_wake_waiters(ls);
	ls2_H->log(ls->ctx, RDHPF_LOG_INFO, "ssh session up", "addr", ls->hostname, NULL);
	connect_finish(ls, RDHPF_OK, NULL);
	if (ls->phase == PH_READY && !ls->destroyed)
		ls2_service(ls);
}

void
ls2_conn_step(struct ls2 *ls)
{
	char d[1024];
	int rc;

	if (ls->phase == PH_TCP) {
		int soerr = 0;
		socklen_t sl = sizeof soerr;
		if (getsockopt(ls->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
			soerr = errno;
		if (soerr == EINPROGRESS || soerr == EALREADY)
			return;
		if (soerr != 0) {
			snprintf(ls->last_conn_err, sizeof ls->last_conn_err, "connect: %s",
			         strerror(soerr));
			ls2_H->io_stop(ls->io);
			ls->io = NULL;
			close(ls->fd);
			ls->fd = -1;
			ls->iaddr++;
			if (tcp_start(ls) != 0) {
				snprintf(d, sizeof d, "cannot connect to %s:%u: %s", ls->hostname,
				         ls->port, ls->last_conn_err);
				connect_finish(ls, RDHPF_ERR_CONNECT, d);
			}
			return;
		}
		/* TCP_USER_TIMEOUT backs the keepalive up: unacknowledged data
		 * older than this kills the socket even if we are not looking. */
		if (ls->ka_interval_ms > 0 && ls->ka_count > 0) {
			uint64_t ut = ls->ka_interval_ms * (ls->ka_count + 1u);
			unsigned int v = ut > UINT_MAX ? UINT_MAX : (unsigned int)ut;
			setsockopt(ls->fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &v, sizeof v);
		}
		ls->phase = PH_HANDSHAKE;
		ls->rx_ready = true;
		ls2_sess_update_io(ls);
	}
	if (ls->phase == PH_HANDSHAKE) {
		rc = libssh2_session_handshake(ls->s, ls->fd);
		if (rc == LIBSSH2_ERROR_EAGAIN && !ls->sock_failed)
			return;
		if (rc != 0 && ((ls->rx_total == 0 && ls->sock_failed) ||
		                (ls->rx_total > 0 && strncmp(ls->first_line, "SSH-", 4) != 0))) {
			/* Accepted, then closed before the banner: sshd's answer
			 * past MaxStartups (it may say "Exceeded MaxStartups"
			 * first), and that of per-source limiters. */
			snprintf(d, sizeof d,
			         "sshd at %s:%u refused the connection before the handshake (%s%s"
			         "before its SSH banner%s%s%s): likely its MaxStartups limit on "
			         "unauthenticated connections at once (default 10:30:100; sshd "
			         "logs 'drop connection ... past MaxStartups'), or a per-source "
			         "limiter (PerSourcePenalties, a firewall)",
			         ls->hostname, ls->port, ls->sock_why, ls->sock_why[0] ? " " : "",
			         ls->first_line[0] ? "; it said '" : "", ls->first_line,
			         ls->first_line[0] ? "'" : "");
			ls2_H->counter_add(ls->ctx, "ssh_refused_before_banner_total", 1);
			connect_finish(ls, RDHPF_ERR_CONNECT, d);
			return;
		}
		if (rc != 0) {
			char kt[256];
			ls2_known_types(ls, kt, sizeof kt);
			snprintf(
			    d, sizeof d, "SSH handshake with %s:%u failed: %s%s%s", ls->hostname,
			    ls->port, ls->sock_failed ? ls->sock_why : ls2_sess_errmsg(ls),
			    strcmp(kt, "ssh-rsa") == 0 ? "; known_hosts has only an ssh-rsa key "
			                                 "for this host, which libssh2 1.10 "
			                                 "can only verify with SHA-1 signatures "
			                                 "(no rsa-sha2-256/512): add the "
			                                 "host's ed25519 or ECDSA key"
			                               : "",
			    "");
			connect_finish(
			    ls, strcmp(kt, "ssh-rsa") == 0 ? RDHPF_ERR_HOSTKEY : RDHPF_ERR_CONNECT,
			    d);
			return;
		}
		rc = ls2_hostkey_verify(ls, d, sizeof d);
		if (rc != RDHPF_OK) {
			ls2_H->log(ls->ctx, RDHPF_LOG_ERROR, "host key verification failed",
			           "detail", d, NULL);
			connect_finish(ls, rc, d);
			return;
		}
		ls->phase = PH_AUTH;
		ls->auth_step = AS_LIST;
	}
	if (ls->phase == PH_AUTH) {
		rc = auth_run(ls);
		if (rc == LIBSSH2_ERROR_EAGAIN && ls->sock_failed) {
			snprintf(d, sizeof d,
			         "ssh connection to %s:%u failed during authentication: %s",
			         ls->hostname, ls->port, ls->sock_why);
			connect_finish(ls, RDHPF_ERR_CONNECT, d);
			return;
		}
		if (rc == LIBSSH2_ERROR_EAGAIN)
			return;
		if (rc != RDHPF_OK) {
			connect_finish(ls, rc, ls->auth_err);
			return;
		}
		became_ready(ls);
	}
}

int
ls2_connect(void *state, rdhpf_done_fn done, void *arg)
{
	struct ls2 *ls = state;
	char err[512];
	int r;

	if (ls->phase == PH_READY)
		return ls2_complete_later(ls, done, arg, RDHPF_OK, NULL);
	if (ls->phase != PH_DOWN)
		return RDHPF_ERR_BUSY;
	ls->last_conn_err[0] = '\0';
	ls->auth_err[0] = '\0';
	ls->tried_rsa = ls->tried_file = false;
	ls->agent_tried = 0;
	ls->iid = 0;
	r = session_make(ls, err, sizeof err);
	if (r == RDHPF_OK)
		r = resolve_start(ls, err, sizeof err);
	if (r != RDHPF_OK) {
		ls2_session_teardown(ls, TD_FAILED);
		return ls2_complete_later(ls, done, arg, r, err);
	}
	ls->cdone = done;
	ls->carg = arg;
	ls->ctimer = ls2_H->timer_start(ls->ctx, ls->connect_timeout_ms, 0, ctimer_fire, ls);
	return RDHPF_OK;
}
