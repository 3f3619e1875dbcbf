/* transport-libssh: strict host key checking.
 *
 * The server's key must be in known_hosts (the host's known_hosts key, or
 * the user's file, plus the system's global file, as libssh reads them;
 * hashed names and [host]:port entries included).  Unknown, changed, or
 * known only with another key type: no connection, and an error naming
 * host, port, key type and SHA256 fingerprint, so the user can compare it
 * out of band.  Nothing here ever writes known_hosts
 * (ssh_session_update_known_hosts is never called).
 *
 * Blocking: ssh_session_is_known_server() reads local files only; the key
 * itself arrived during the (non-blocking) handshake. */
#include <stdio.h>
#include <string.h>

#include "lsh.h"

#define H lsh_H

int
lsh_hostkey_verify(struct lsh *ls, char *detail, size_t dlen)
{
	ssh_key key = NULL;
	unsigned char *hash = NULL;
	size_t hlen = 0;
	char *fp = NULL, *kh = NULL;
	const char *type = "unknown";
	enum ssh_known_hosts_e st;
	const char *what;
	int rc = RDHPF_ERR_HOSTKEY;

	if (ssh_get_server_publickey(ls->s, &key) != SSH_OK) {
		snprintf(detail, dlen, "%s:%u sent no host key", ls->target, ls->tport);
		return RDHPF_ERR_HOSTKEY;
	}
	type = ssh_key_type_to_char(ssh_key_type(key));
	if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) == 0)
		fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
	st = ssh_session_is_known_server(ls->s);
	if (ssh_options_get(ls->s, SSH_OPTIONS_KNOWNHOSTS, &kh) != SSH_OK)
		kh = NULL;
	switch (st) {
	case SSH_KNOWN_HOSTS_OK:
		rc = RDHPF_OK;
		what = NULL;
		break;
	case SSH_KNOWN_HOSTS_CHANGED:
		what = "CHANGED: known_hosts has a different key of this type (possible "
		       "man-in-the-middle, or the host was reinstalled)";
		break;
	case SSH_KNOWN_HOSTS_OTHER:
		what = "not known: known_hosts has keys of other types only for this host";
		break;
	case SSH_KNOWN_HOSTS_NOT_FOUND:
		what = "not known: the known_hosts file does not exist";
		break;
	case SSH_KNOWN_HOSTS_UNKNOWN:
		what = "not known: no entry in known_hosts";
		break;
	default:
		what = "could not be checked (known_hosts unreadable or malformed)";
		break;
	}
	if (rc != RDHPF_OK) {
		snprintf(
		    detail, dlen,
		    "host key of %s port %u (%s %s) %s; known_hosts: %s (rdhpf never adds keys; "
		    "add it with ssh-keyscan after checking the fingerprint)",
		    ls->target, ls->tport, type ? type : "?", fp ? fp : "?", what,
		    kh ? kh : "the user's default");
		H->log(ls->ctx, RDHPF_LOG_ERROR, "host key verification failed", "detail", detail,
		       NULL);
	}
	if (kh)
		ssh_string_free_char(kh);
	if (fp)
		ssh_string_free_char(fp);
	if (hash)
		ssh_clean_pubkey_hash(&hash);
	ssh_key_free(key);
	return rc;
}
