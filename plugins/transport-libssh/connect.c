/* transport-libssh: the connect state machine, one step per readiness
 * event of the session socket (or of the agent probe):
 *
 *   RESOLVING → TCP → HANDSHAKE → (host key) → AGENT → AUTH → READY
 *
 * Non-blocking, and why each step is:
 * - TCP: our own non-blocking socket (dial.c); libssh gets a dup of it via
 *   SSH_OPTIONS_FD, so ssh_connect() neither resolves nor connects.
 *   ProxyCommand/ProxyJump are refused in sshconf.c: ssh_connect would
 *   fork the proxy itself.
 * - HANDSHAKE: ssh_connect() in non-blocking mode returns SSH_AGAIN until
 *   key exchange is done; each call polls the socket with a zero timeout.
 * - Host key: local files only (hostkey.c).
 * - AGENT: our asynchronous probe (agent.c), because libssh's agent I/O
 *   blocks.
 * - AUTH: ssh_userauth_publickey_auto() returns SSH_AUTH_AGAIN; it tries
 *   the agent (only if the probe found keys), then the identity list in
 *   order: identity_file (prepended), ssh_config's IdentityFiles, then
 *   libssh's defaults (~/.ssh/id_ed25519, id_ecdsa, id_rsa).  RSA keys sign
 *   with rsa-sha2-256/512 (libssh 0.10 reads the server-sig-algs
 *   extension).  Encrypted keys are skipped (no_passphrase in sshconf.c). */
#include <stdio.h>
#include <string.h>

#include "lsh.h"

#define H lsh_H

void
lsh_connect_finish(struct lsh *ls, int status, const char *detail)
{
	rdhpf_done_fn done = ls->cdone;
	void *arg = ls->carg;

	ls->cdone = NULL;
	if (ls->ctimer) {
		H->timer_stop(ls->ctimer);
		ls->ctimer = NULL;
	}
	if (status != RDHPF_OK) {
		H->log(ls->ctx, RDHPF_LOG_DEBUG, "connect failed", "err", detail, NULL);
		lsh_teardown(ls, TD_FAILED);
	}
	if (done)
		done(arg, status, detail);
}

static void
auth_failed(struct lsh *ls, int rc)
{
	char d[900], *user = NULL;
	const char *why =
	    rc == SSH_AUTH_PARTIAL ? "needs another method after the public key" : "refused";

	if (ssh_options_get(ls->s, SSH_OPTIONS_USER, &user) != SSH_OK)
		user = NULL;
	snprintf(d, sizeof d,
	         "public key authentication as %s@%s %s (tried: %s; identity files: %s, then "
	         "ssh_config's IdentityFile and ~/.ssh/id_*)%s%s",
	         user ? user : "?", ls->target, why, ls->ag_note[0] ? ls->ag_note : "no agent",
	         ls->identity ? ls->identity : "no identity_file", rc == SSH_AUTH_ERROR ? ": " : "",
	         rc == SSH_AUTH_ERROR ? ssh_get_error(ls->s) : "");
	if (user)
		ssh_string_free_char(user);
	lsh_connect_finish(ls, rc == SSH_AUTH_ERROR ? RDHPF_ERR_CONNECT : RDHPF_ERR_AUTH, d);
}

/* The agent probe ended (agent.c): authenticate. */
void
lsh_agent_done(struct lsh *ls)
{
	if (ls->phase != PH_AGENT)
		return;
	ls->phase = PH_AUTH;
	/* When the probe ended inside lsh_conn_step (no agent), that frame
	 * goes on with AUTH itself. */
	if (ls->depth == 0) {
		ls->depth++;
		lsh_conn_step(ls);
		ls->depth--;
		if (ls->destroyed && ls->depth == 0) {
			lsh_really_destroy(ls);
			return;
		}
		if (ls->phase > PH_DOWN && ls->phase < PH_READY)
			lsh_sess_update_io(ls);
	}
}

/* Refused before the banner: sshd past MaxStartups (it may say "Exceeded
 * MaxStartups" first, which libssh skips as a pre-banner line), or a
 * per-source limiter. */
static void
refused_before_banner(struct lsh *ls, const char *then)
{
	char d[900];

	snprintf(d, sizeof d,
	         "sshd at %s:%u refused the connection before the handshake (%llu bytes and no "
	         "SSH banner, then: %s): likely its MaxStartups limit on unauthenticated "
	         "connections at once (default 10:30:100; sshd logs 'drop connection ... past "
	         "MaxStartups'), or a per-source limiter (PerSourcePenalties, a firewall)",
	         ls->target, ls->tport, (unsigned long long)ls->cnt_sock.in_bytes, then);
	H->counter_add(ls->ctx, "ssh_refused_before_banner_total", 1);
	lsh_connect_finish(ls, RDHPF_ERR_CONNECT, d);
}

/* The socket failed or hung up during the handshake or authentication and
 * the core stopped watching it (session.c): fail the connect now rather
 * than at the connect timeout. */
void
lsh_conn_sock_failed(struct lsh *ls)
{
	char e[120], d[600];

	lsh_sock_error(ls, e, sizeof e);
	if (!e[0])
		snprintf(e, sizeof e, "connection closed");
	if (ls->phase == PH_HANDSHAKE && ls->s != NULL && ssh_get_serverbanner(ls->s) == NULL) {
		refused_before_banner(ls, e);
		return;
	}
	snprintf(d, sizeof d, "ssh connection to %s:%u failed during the %s: %s", ls->target,
	         ls->tport, ls->phase == PH_HANDSHAKE ? "SSH handshake" : "authentication", e);
	lsh_connect_finish(ls, RDHPF_ERR_CONNECT, d);
}

void
lsh_conn_step(struct lsh *ls)
{
	char d[900];
	int rc;

	if (ls->phase == PH_TCP) {
		rc = lsh_tcp_check(ls);
		if (rc != 0)
			return;
		ls->phase = PH_HANDSHAKE;
	}
	if (ls->phase == PH_HANDSHAKE) {
		rc = ssh_connect(ls->s);
		if (rc == SSH_AGAIN)
			return;
		if (rc != SSH_OK && ssh_get_serverbanner(ls->s) == NULL) {
			refused_before_banner(ls, ssh_get_error(ls->s));
			return;
		}
		if (rc != SSH_OK) {
			snprintf(d, sizeof d, "SSH handshake with %s:%u failed: %s", ls->target,
			         ls->tport, ssh_get_error(ls->s));
			lsh_connect_finish(ls, RDHPF_ERR_CONNECT, d);
			return;
		}
		rc = lsh_hostkey_verify(ls, d, sizeof d);
		if (rc != RDHPF_OK) {
			lsh_connect_finish(ls, rc, d);
			return;
		}
		ls->phase = PH_AGENT;
		lsh_agent_probe(ls);
		if (ls->phase != PH_AUTH)
			return; /* lsh_agent_done continues */
	}
	if (ls->phase == PH_AUTH) {
		rc = ssh_userauth_publickey_auto(ls->s, NULL, NULL);
		if (rc == SSH_AUTH_AGAIN)
			return;
		if (rc != SSH_AUTH_SUCCESS) {
			auth_failed(ls, rc);
			return;
		}
		lsh_became_ready(ls);
	}
}
