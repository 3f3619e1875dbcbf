/* transport-libssh: the libssh session's options — ssh_config, ciphers,
 * identities, known_hosts — set before any I/O.
 *
 * Precedence, as with `ssh`: what rdhpf.conf says explicitly (user, port,
 * identity_file, known_hosts, the `ciphers` option) wins over ssh_config,
 * which wins over our defaults.  libssh 0.10's parser applies the first
 * value it meets for each keyword (like ssh), with one libssh quirk: a
 * HostName line changes the name later Host lines match against.
 *
 * Honoured from ssh_config (libssh 0.10's parser): Host, Match (not exec),
 * HostName, Port, User, IdentityFile, Ciphers, MACs, KexAlgorithms,
 * HostKeyAlgorithms, PubkeyAcceptedKeyTypes, UserKnownHostsFile,
 * GlobalKnownHostsFile, Include, Compression, RekeyLimit.
 * Not honoured: StrictHostKeyChecking (always strict here), ConnectTimeout
 * (connect_timeout is rdhpf's), IdentityAgent (SSH_AUTH_SOCK is probed),
 * ServerAlive* (keepalive_* are rdhpf's), BindAddress (dial.c makes the
 * socket, libssh never connects), and ProxyCommand / ProxyJump:
 * libssh would run the proxy itself, forked outside the core's loop and
 * with a blocking connect, so a host that needs one fails to connect with
 * an error saying so (use the openssh transport for it).
 *
 * Blocking: parsing reads local files only, except `Match exec CMD`, which
 * libssh 0.10 runs synchronously (fork, exec, waitpid) inside
 * ssh_options_parse_config, as ssh does: the loop waits for CMD once per
 * connect attempt.  Hosts whose config uses Match exec should point the
 * ssh_config option at a file without it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__aarch64__)
#include <sys/auxv.h>
#endif

#include "lsh.h"

#define H lsh_H

/* The fastest AEAD both sides offer: AES-GCM where the CPU has AES
 * instructions, else chacha20-poly1305 (faster than software AES).  The
 * CTR modes stay as fallbacks for old servers. */
static const char CIPHERS_AESNI[] = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,"
                                    "chacha20-poly1305@openssh.com,aes128-ctr,aes256-ctr";
static const char CIPHERS_SOFT[] = "chacha20-poly1305@openssh.com,aes128-gcm@openssh.com,"
                                   "aes256-gcm@openssh.com,aes128-ctr,aes256-ctr";

const char *
lsh_default_ciphers(void)
{
	bool aes = false;

#if defined(__x86_64__) || defined(__i386__)
	__builtin_cpu_init();
	aes = __builtin_cpu_supports("aes");
#elif defined(__aarch64__)
	aes = (getauxval(AT_HWCAP) & (1ul << 3)) != 0; /* HWCAP_AES */
#endif
	return aes ? CIPHERS_AESNI : CIPHERS_SOFT;
}

/* A throwaway session checks the list at create time (no I/O). */
int
lsh_check_ciphers(const char *list, char *err, size_t errlen)
{
	ssh_session s = ssh_new();
	int rc;

	if (s == NULL)
		return RDHPF_ERR_NOMEM;
	rc = ssh_options_set(s, SSH_OPTIONS_CIPHERS_C_S, list);
	ssh_free(s);
	if (rc != SSH_OK) {
		snprintf(err, errlen, "'%s' names no cipher libssh %s supports", list,
		         ssh_version(0));
		return RDHPF_ERR_INVAL;
	}
	return RDHPF_OK;
}

/* Encrypted identity files are skipped, never prompted for. */
static int
no_passphrase(const char *prompt, char *buf, size_t len, int echo, int verify, void *userdata)
{
	(void)prompt;
	(void)buf;
	(void)len;
	(void)echo;
	(void)verify;
	(void)userdata;
	return -1;
}

int
lsh_session_new(struct lsh *ls, char *err, size_t errlen)
{
	ssh_session s = ssh_new();
	const char *ciphers = ls->ciphers ? ls->ciphers : lsh_default_ciphers();
	char *str = NULL;
	unsigned int port = 0;

	if (s == NULL) {
		snprintf(err, errlen, "ssh_new failed");
		return RDHPF_ERR_NOMEM;
	}
	ls->s = s;
	ssh_set_blocking(s, 0);
	memset(&ls->scb, 0, sizeof ls->scb);
	ssh_callbacks_init(&ls->scb);
	ls->scb.userdata = ls;
	ls->scb.auth_function = no_passphrase;
	ssh_set_callbacks(s, &ls->scb);
	memset(&ls->cnt_sock, 0, sizeof ls->cnt_sock);
	memset(&ls->cnt_raw, 0, sizeof ls->cnt_raw);
	ssh_set_counters(s, &ls->cnt_sock, &ls->cnt_raw);

	/* Defaults first, so that ssh_config can override them. */
	if (ssh_options_set(s, SSH_OPTIONS_HOST, ls->alias) != SSH_OK ||
	    ssh_options_set(s, SSH_OPTIONS_CIPHERS_C_S, ciphers) != SSH_OK ||
	    ssh_options_set(s, SSH_OPTIONS_CIPHERS_S_C, ciphers) != SSH_OK) {
		snprintf(err, errlen, "cannot set host or ciphers: %s", ssh_get_error(s));
		return RDHPF_ERR_INVAL;
	}
	ssh_options_set(s, SSH_OPTIONS_COMPRESSION, "no");
	ssh_options_set(s, SSH_OPTIONS_NODELAY, &(int){1});
	/* ssh_config (local file reads, no network). */
	if (ls->ssh_config == NULL) {
		if (ssh_options_parse_config(s, NULL) != SSH_OK) {
			snprintf(err, errlen, "cannot parse ssh_config: %s", ssh_get_error(s));
			return RDHPF_ERR_INVAL;
		}
	} else if (strcmp(ls->ssh_config, "none") != 0) {
		if (ssh_options_parse_config(s, ls->ssh_config) != SSH_OK) {
			snprintf(err, errlen, "cannot parse ssh_config %s: %s", ls->ssh_config,
			         ssh_get_error(s));
			return RDHPF_ERR_INVAL;
		}
	}
	/* Never let ssh_connect parse a config on its own. */
	ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &(bool){false});

	/* Explicit rdhpf settings win. */
	if (ls->ciphers && (ssh_options_set(s, SSH_OPTIONS_CIPHERS_C_S, ls->ciphers) != SSH_OK ||
	                    ssh_options_set(s, SSH_OPTIONS_CIPHERS_S_C, ls->ciphers) != SSH_OK)) {
		snprintf(err, errlen, "ciphers '%s' rejected: %s", ls->ciphers, ssh_get_error(s));
		return RDHPF_ERR_INVAL;
	}
	if (ls->user && ssh_options_set(s, SSH_OPTIONS_USER, ls->user) != SSH_OK) {
		snprintf(err, errlen, "bad user '%s'", ls->user);
		return RDHPF_ERR_INVAL;
	}
	if (ls->port) {
		port = ls->port;
		ssh_options_set(s, SSH_OPTIONS_PORT, &port);
	}
	/* ADD_IDENTITY puts it first, before ssh_config's IdentityFiles and
	 * the default ~/.ssh/id_* files. */
	if (ls->identity && ssh_options_set(s, SSH_OPTIONS_ADD_IDENTITY, ls->identity) != SSH_OK) {
		snprintf(err, errlen, "bad identity_file '%s'", ls->identity);
		return RDHPF_ERR_INVAL;
	}
	if (ls->known_hosts &&
	    ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, ls->known_hosts) != SSH_OK) {
		snprintf(err, errlen, "bad known_hosts '%s'", ls->known_hosts);
		return RDHPF_ERR_INVAL;
	}
	/* Host keys are checked by us (hostkey.c); libssh never writes. */
	ssh_options_set(s, SSH_OPTIONS_STRICTHOSTKEYCHECK, &(int){1});

	if (ssh_options_get(s, SSH_OPTIONS_PROXYCOMMAND, &str) == SSH_OK && str != NULL) {
		snprintf(
		    err, errlen,
		    "ssh_config gives %s a ProxyCommand or ProxyJump (%.120s), which the libssh "
		    "transport does not support (libssh would run it outside rdhpf's event "
		    "loop); use transport = openssh for this host",
		    ls->alias, str);
		ssh_string_free_char(str);
		return RDHPF_ERR_UNSUPPORTED;
	}
	str = NULL;
	if (ssh_options_get(s, SSH_OPTIONS_HOST, &str) != SSH_OK || str == NULL ||
	    strlen(str) >= sizeof ls->target) {
		if (str)
			ssh_string_free_char(str);
		snprintf(err, errlen, "no usable host name for %s after ssh_config", ls->alias);
		return RDHPF_ERR_INVAL;
	}
	snprintf(ls->target, sizeof ls->target, "%s", str);
	ssh_string_free_char(str);
	if (ssh_options_get_port(s, &port) != SSH_OK || port == 0 || port > 65535)
		port = 22;
	ls->tport = (uint16_t)port;
	return RDHPF_OK;
}
