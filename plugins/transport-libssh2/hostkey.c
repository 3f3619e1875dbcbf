/* transport-libssh2, hostkey: strict host key checking against known_hosts (read line by
 * line), and key type sniffing for the RSA error message. */
#include "ls2.h"

static void
base64_enc(const unsigned char *in, size_t n, char *out, size_t outlen, bool pad)
{
	static const char tbl[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		size_t k = n - i < 3 ? n - i : 3;
		if (k > 1)
			v |= (uint32_t)in[i + 1] << 8;
		if (k > 2)
			v |= in[i + 2];
		char q[4] = {tbl[(v >> 18) & 63], tbl[(v >> 12) & 63], tbl[(v >> 6) & 63],
		             tbl[v & 63]};
		size_t emit = k + 1;
		for (size_t j = 0; j < 4; j++) {
			if (j >= emit && !pad)
				break;
			if (o + 1 >= outlen)
				goto end;
			out[o++] = j < emit ? q[j] : '=';
		}
	}
end:
	out[o < outlen ? o : outlen - 1] = '\0';
}

static int
b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decode base64, skipping line breaks; stops at '=' or anything else. */
static size_t
base64_dec(const char *in, unsigned char *out, size_t outlen)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;

	for (; *in && o < outlen; in++) {
		if (*in == '\n' || *in == '\r')
			continue;
		int v = b64val((unsigned char)*in);
		if (v < 0)
			break;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	return o;
}

/* ---- known_hosts ---------------------------------------------------------- */

struct ktype {
	int hk_type;      /* LIBSSH2_HOSTKEY_TYPE_* */
	int kh_mask;      /* LIBSSH2_KNOWNHOST_KEY_* */
	const char *name; /* algorithm / key type name */
};

/* Preference order when several are known (OpenSSH's). */
static const struct ktype ktypes[] = {
    {LIBSSH2_HOSTKEY_TYPE_ED25519, LIBSSH2_KNOWNHOST_KEY_ED25519, "ssh-ed25519"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_256, LIBSSH2_KNOWNHOST_KEY_ECDSA_256, "ecdsa-sha2-nistp256"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_384, LIBSSH2_KNOWNHOST_KEY_ECDSA_384, "ecdsa-sha2-nistp384"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_521, LIBSSH2_KNOWNHOST_KEY_ECDSA_521, "ecdsa-sha2-nistp521"},
    {LIBSSH2_HOSTKEY_TYPE_RSA, LIBSSH2_KNOWNHOST_KEY_SSHRSA, "ssh-rsa"},
    {LIBSSH2_HOSTKEY_TYPE_DSS, LIBSSH2_KNOWNHOST_KEY_SSHDSS, "ssh-dss"},
};

static const struct ktype *
ktype_by_hk(int t)
{
	for (size_t i = 0; i < sizeof ktypes / sizeof ktypes[0]; i++)
		if (ktypes[i].hk_type == t)
			return &ktypes[i];
	return NULL;
}

/* The name known_hosts files use for host:port ("[h]:p" unless port 22). */
static void
host_pattern(struct ls2 *ls, char *out, size_t len)
{
	if (ls->port == 22)
		snprintf(out, len, "%s", ls->hostname);
	else
		snprintf(out, len, "[%s]:%u", ls->hostname, ls->port);
}

/* Read known_hosts line by line: libssh2_knownhost_readfile stops at the
 * first line it cannot parse (markers, unsupported key types, …), which
 * would silently hide every key after it.  @revoked lines go to their own
 * collection; @cert-authority is not supported by libssh2 and is skipped. */
void
ls2_known_hosts_load(struct ls2 *ls)
{
	FILE *fp;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int bad = 0;

	ls->kh = libssh2_knownhost_init(ls->s);
	ls->kh_revoked = libssh2_knownhost_init(ls->s);
	ls->kh_lines = 0;
	ls->kh_readable = false;
	ls->kh_err[0] = '\0';
	fp = fopen(ls->known_hosts, "re");
	if (fp == NULL) {
		snprintf(ls->kh_err, sizeof ls->kh_err, "%s", strerror(errno));
		return;
	}
	ls->kh_readable = true;
	while ((n = getline(&line, &cap, fp)) >= 0) {
		char *p = line;
		LIBSSH2_KNOWNHOSTS *into = ls->kh;

		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || *p == '#')
			continue;
		if (*p == '@') {
			if (strncmp(p, "@revoked", 8) != 0 || (p[8] != ' ' && p[8] != '\t')) {
				bad++;
				continue;
			}
			p += 8;
			while (*p == ' ' || *p == '\t')
				p++;
			into = ls->kh_revoked;
		}
		if (libssh2_knownhost_readline(into, p, strlen(p),
		                               LIBSSH2_KNOWNHOST_FILE_OPENSSH) != 0) {
			bad++;
			continue;
		}
		if (into == ls->kh)
			ls->kh_lines++;
	}
	free(line);
	fclose(fp);
	{
		char nb[16], kb[16];
		snprintf(nb, sizeof nb, "%d", bad);
		snprintf(kb, sizeof kb, "%d", ls->kh_lines);
		ls2_H->log(ls->ctx, RDHPF_LOG_DEBUG, "known_hosts read", "file", ls->known_hosts,
		           "entries", kb, "skipped", nb, NULL);
	}
}

/* Host key algorithms worth offering: the types known_hosts has for this
 * host (OpenSSH does the same), so a server with several host keys shows
 * the one we can verify.  A deliberately wrong key makes check() answer
 * MISMATCH exactly when an entry of that type exists.  Empty when none. */
void
ls2_known_types(struct ls2 *ls, char *out, size_t len)
{
	char pat[300];
	size_t o = 0;

	out[0] = '\0';
	if (ls->kh == NULL)
		return;
	host_pattern(ls, pat, sizeof pat);
	for (size_t i = 0; i < sizeof ktypes / sizeof ktypes[0]; i++) {
		int r = libssh2_knownhost_check(
		    ls->kh, pat, "\x01", 1,
		    LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | ktypes[i].kh_mask,
		    NULL);
		if (r != LIBSSH2_KNOWNHOST_CHECK_MISMATCH && r != LIBSSH2_KNOWNHOST_CHECK_MATCH)
			continue;
		int w = snprintf(out + o, len - o, "%s%s", o ? "," : "", ktypes[i].name);
		if (w < 0 || (size_t)w >= len - o)
			break;
		o += (size_t)w;
	}
}

/* 0 when the host key is known; else RDHPF_ERR_HOSTKEY with detail. */
int
ls2_hostkey_verify(struct ls2 *ls, char *detail, size_t dlen)
{
	size_t klen = 0;
	int ktype = 0, r;
	const char *key = libssh2_session_hostkey(ls->s, &klen, &ktype);
	const struct ktype *kt = ktype_by_hk(ktype);
	const char *hash = libssh2_hostkey_hash(ls->s, LIBSSH2_HOSTKEY_HASH_SHA256);
	char fp[64] = "SHA256:?", pat[300];

	host_pattern(ls, pat, sizeof pat);
	if (hash != NULL) {
		memcpy(fp, "SHA256:", 7);
		base64_enc((const unsigned char *)hash, 32, fp + 7, sizeof fp - 7, false);
	}
	if (key == NULL || kt == NULL) {
		snprintf(detail, dlen,
		         "host %s presented a host key of a type libssh2 cannot check", pat);
		return RDHPF_ERR_HOSTKEY;
	}
	if (!ls->kh_readable) {
		snprintf(detail, dlen,
		         "cannot read known_hosts %s (%s): host %s (%s key %s) cannot be verified; "
		         "refusing to connect",
		         ls->known_hosts, ls->kh_err, pat, kt->name, fp);
		return RDHPF_ERR_HOSTKEY;
	}
	r = libssh2_knownhost_check(
	    ls->kh_revoked, pat, key, klen,
	    LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | kt->kh_mask, NULL);
	if (r == LIBSSH2_KNOWNHOST_CHECK_MATCH) {
		snprintf(detail, dlen,
		         "host key of %s (%s %s) is marked @revoked in %s; refusing to connect",
		         pat, kt->name, fp, ls->known_hosts);
		return RDHPF_ERR_HOSTKEY;
	}
	r = libssh2_knownhost_check(
	    ls->kh, pat, key, klen,
	    LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | kt->kh_mask, NULL);
	switch (r) {
	case LIBSSH2_KNOWNHOST_CHECK_MATCH:
		return RDHPF_OK;
	case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
		snprintf(detail, dlen,
		         "HOST KEY MISMATCH for %s: the server presented %s key %s, which differs "
		         "from the "
		         "%s key in %s; possible man-in-the-middle attack; refusing to connect",
		         pat, kt->name, fp, kt->name, ls->known_hosts);
		return RDHPF_ERR_HOSTKEY;
	case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
		snprintf(
		    detail, dlen,
		    "host %s is not in %s (the server presented %s key %s); refusing to connect: "
		    "verify the fingerprint, then add the key (ssh-keyscan -p %u %s)",
		    pat, ls->known_hosts, kt->name, fp, ls->port, ls->hostname);
		return RDHPF_ERR_HOSTKEY;
	default:
		snprintf(detail, dlen, "cannot check the host key of %s (%s %s) against %s", pat,
		         kt->name, fp, ls->known_hosts);
		return RDHPF_ERR_HOSTKEY;
	}
}

/* ---- key type sniffing (only for the RSA error message) ----------------- */

bool
ls2_blob_is_rsa(const unsigned char *blob, size_t len)
{
	uint32_t n;

	if (len < 4)
		return false;
	n = (uint32_t)blob[0] << 24 | (uint32_t)blob[1] << 16 | (uint32_t)blob[2] << 8 | blob[3];
	return n == 7 && len >= 11 && memcmp(blob + 4, "ssh-rsa", 7) == 0;
}

/* Is this identity file an RSA key?  Looks at FILE.pub, else the private
 * key's armour (PEM "RSA", or the public half of an openssh-key-v1). */
bool
ls2_idfile_is_rsa(const char *path)
{
	char pub[PATH_MAX + 8], head[4096];
	FILE *fp;
	size_t n;
	bool rsa = false;

	snprintf(pub, sizeof pub, "%s.pub", path);
	fp = fopen(pub, "re");
	if (fp != NULL) {
		n = fread(head, 1, 15, fp);
		fclose(fp);
		head[n] = '\0';
		return strncmp(head, "ssh-rsa ", 8) == 0;
	}
	fp = fopen(path, "re");
	if (fp == NULL)
		return false;
	n = fread(head, 1, sizeof head - 1, fp);
	fclose(fp);
	head[n] = '\0';
	if (strstr(head, "BEGIN RSA PRIVATE KEY") != NULL)
		rsa = true;
	else if (strstr(head, "BEGIN OPENSSH PRIVATE KEY") != NULL) {
		/* "openssh-key-v1\0" string cipher, string kdf, string kdfopts,
		 * uint32 nkeys, string pubkey (whose first string is the type) */
		unsigned char bin[1024];
		const char *b = strchr(head, '\n');
		size_t m = b ? base64_dec(b + 1, bin, sizeof bin) : 0, o = 15;
		for (int i = 0; i < 3 && o + 4 <= m; i++) {
			uint32_t l = (uint32_t)bin[o] << 24 | (uint32_t)bin[o + 1] << 16 |
			             (uint32_t)bin[o + 2] << 8 | bin[o + 3];
			o += 4 + (size_t)l;
		}
		o += 4; /* nkeys */
		if (m > 15 && memcmp(bin, "openssh-key-v1", 14) == 0 && o + 4 < m)
			rsa = ls2_blob_is_rsa(bin + o + 4, m - o - 4);
	}
	return rsa;
}
