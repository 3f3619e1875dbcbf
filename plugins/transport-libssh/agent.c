/* transport-libssh: is ssh-agent there and answering?
 *
 * libssh 0.10 talks to the agent synchronously: agent.c's atomicio()
 * polls the agent socket with an infinite timeout, inside
 * ssh_userauth_publickey_auto().  A hung agent would freeze the core's
 * loop.  So before authentication we ask the agent for its identities
 * ourselves, without blocking (a non-blocking Unix socket watched by the
 * core, bounded by LSH_AGENT_PROBE_MS), and let libssh use the agent only
 * when it answered with at least one key; otherwise libssh is told there
 * is no agent (SSH_OPTIONS_IDENTITY_AGENT ""), so it never touches it.
 * What remains synchronous is libssh's own request/response with an agent
 * that has just answered us: a local socket, one round trip per key. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "lsh.h"

#define H lsh_H
#define AGENTC_REQUEST_IDENTITIES 11
#define AGENT_IDENTITIES_ANSWER 12
#define NO_AGENT "/proc/self/rdhpf-no-agent"

void
lsh_agent_stop(struct lsh *ls)
{
	if (ls->ag_io) {
		H->io_stop(ls->ag_io);
		ls->ag_io = NULL;
	}
	if (ls->ag_timer) {
		H->timer_stop(ls->ag_timer);
		ls->ag_timer = NULL;
	}
	if (ls->ag_fd >= 0) {
		close(ls->ag_fd);
		ls->ag_fd = -1;
	}
}

static void
probe_end(struct lsh *ls, int keys, const char *note)
{
	lsh_agent_stop(ls);
	ls->ag_keys = keys;
	snprintf(ls->ag_note, sizeof ls->ag_note, "%s", note);
	/* libssh uses the agent only when it answered with keys.  Otherwise it
	 * gets a socket path that cannot exist (nothing can be created under
	 * /proc/self): its agent connect fails at once with ENOENT, and it
	 * skips the agent.  ("" is refused by ssh_options_set, and leaving the
	 * option unset would make libssh fall back to SSH_AUTH_SOCK — the
	 * very agent that did not answer.) */
	if (ssh_options_set(ls->s, SSH_OPTIONS_IDENTITY_AGENT,
	                    keys > 0 ? getenv("SSH_AUTH_SOCK") : NO_AGENT) != SSH_OK) {
		lsh_connect_finish(ls, RDHPF_ERR_GENERIC,
		                   "cannot set libssh's agent socket (refusing to risk a blocking "
		                   "agent)");
		return;
	}
	lsh_agent_done(ls);
}

static void
probe_timeout(void *arg)
{
	struct lsh *ls = arg;

	H->log(ls->ctx, RDHPF_LOG_WARN, "ssh-agent did not answer in time; not using it", NULL);
	probe_end(ls, -1, "ssh-agent did not answer");
}

static void
probe_on_io(void *arg, int fd, unsigned rev)
{
	struct lsh *ls = arg;
	static const unsigned char req[5] = {0, 0, 0, 1, AGENTC_REQUEST_IDENTITIES};
	char note[120];

	if (rev & RDHPF_IO_WRITE) {
		ssize_t n = send(fd, req + ls->ag_tx_off, sizeof req - ls->ag_tx_off, MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			snprintf(note, sizeof note, "ssh-agent: %s", strerror(errno));
			probe_end(ls, -1, note);
			return;
		}
		if (n > 0)
			ls->ag_tx_off += (size_t)n;
		if (ls->ag_tx_off == sizeof req)
			H->io_update(ls->ag_io, RDHPF_IO_READ);
		return;
	}
	/* The answer: uint32 length, byte type, uint32 number of keys.  The
	 * keys themselves are libssh's business. */
	{
		ssize_t n =
		    recv(fd, ls->ag_rx + ls->ag_rx_len, sizeof ls->ag_rx - ls->ag_rx_len, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			probe_end(ls, -1, "ssh-agent closed the connection");
			return;
		}
		ls->ag_rx_len += (size_t)n;
	}
	if (ls->ag_rx_len < 5)
		return;
	if (ls->ag_rx[4] != AGENT_IDENTITIES_ANSWER) {
		probe_end(ls, -1, "ssh-agent refused to list keys");
		return;
	}
	if (ls->ag_rx_len < 9)
		return;
	{
		uint32_t k = (uint32_t)ls->ag_rx[5] << 24 | (uint32_t)ls->ag_rx[6] << 16 |
		             (uint32_t)ls->ag_rx[7] << 8 | ls->ag_rx[8];
		snprintf(note, sizeof note, "%u ssh-agent key(s)", k);
		probe_end(ls, k > 1000 ? 1000 : (int)k, note);
	}
}

/* Starts the probe; lsh_agent_done() follows (never from inside this call
 * when it returns early: a zero timer then). */
void
lsh_agent_probe(struct lsh *ls)
{
	const char *sock = getenv("SSH_AUTH_SOCK");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	ls->ag_rx_len = ls->ag_tx_off = 0;
	if (!ls->use_agent || sock == NULL || *sock == '\0' || strlen(sock) >= sizeof sa.sun_path) {
		probe_end(ls, -1, ls->use_agent ? "no ssh-agent" : "agent = no");
		return;
	}
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EAGAIN &&
	               errno != EINPROGRESS)) {
		char note[160];
		snprintf(note, sizeof note, "ssh-agent at SSH_AUTH_SOCK: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		probe_end(ls, -1, note);
		return;
	}
	ls->ag_fd = fd;
	ls->ag_io = H->io_start(ls->ctx, fd, RDHPF_IO_WRITE, probe_on_io, ls);
	ls->ag_timer = H->timer_start(ls->ctx, LSH_AGENT_PROBE_MS, 0, probe_timeout, ls);
	if (ls->ag_io == NULL || ls->ag_timer == NULL)
		probe_end(ls, -1, "cannot watch the ssh-agent socket");
}
