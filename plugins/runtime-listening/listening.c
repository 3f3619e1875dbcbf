/* runtime-listening: every TCP port that listens on the remote host, the way
 * editors auto-forward a remote dev server.
 *
 *     runtime = listening
 *     include = 3000-3999, 8080   (optional: only these ports)
 *     exclude = 22, 5432          (default 22; "none" forwards sshd too)
 *
 * Poll-only: each list() runs one remote command, `cat /proc/net/tcp
 * /proc/net/tcp6`, and reports one pseudo-container per listening port
 * (id "port-P"), so ports come and go independently.  A port is published
 * at the address it is bound to; the core forwards 0.0.0.0 to 127.0.0.1
 * and :: to ::1.  Written against the installed SDK only. */
#define _POSIX_C_SOURCE 200809L /* inet_ntop under -std=c17 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rdhpf/plugin.h>
#include <rdhpf/sdk.h>

/* Hosts with tens of thousands of sockets print a few MiB. */
#define LS_MAX_OUTPUT (16u << 20)
#define LS_STATE_LISTEN 0x0A

static const struct rdhpf_host_api *H;

struct ls {
	struct rdhpf_ctx *ctx;
	struct rsdk_ranges include; /* n == 0: every port */
	struct rsdk_ranges exclude;
	struct rsdk_collect *coll; /* the list running, if any */
	rdhpf_list_fn done;
	void *done_arg;
};

static int
ls_validate(const char *key, const char *value, char *err, size_t errlen)
{
	struct rsdk_ranges r = {0};
	int rc;

	if (strcmp(key, "exclude") == 0 && strcmp(value, "none") == 0)
		return RDHPF_OK;
	if (strcmp(key, "include") != 0 && strcmp(key, "exclude") != 0)
		return RDHPF_OK;
	rc = rsdk_parse_ranges(value, &r, err, errlen);
	rsdk_ranges_free(&r);
	return rc;
}

static int
ls_ranges(struct ls *l, const char *key, const char *dflt, struct rsdk_ranges *out, char *err,
          size_t errlen)
{
	const char *v = H->option(l->ctx, key);
	char why[200] = "";

	if (v == NULL)
		v = dflt;
	if (v == NULL || (strcmp(v, "none") == 0 && strcmp(key, "exclude") == 0))
		return RDHPF_OK;
	if (ls_validate(key, v, why, sizeof why) != RDHPF_OK ||
	    rsdk_parse_ranges(v, out, why, sizeof why) != RDHPF_OK) {
		snprintf(err, errlen, "%s: %s", key, why);
		return RDHPF_ERR_INVAL;
	}
	return RDHPF_OK;
}

static int
ls_create(struct rdhpf_ctx *ctx, const struct rdhpf_host_params *p, void **state, char *err,
          size_t errlen)
{
	struct ls *l = calloc(1, sizeof *l);
	(void)p; /* everything is in the options */

	if (l == NULL) {
		snprintf(err, errlen, "out of memory");
		return RDHPF_ERR_NOMEM;
	}
	l->ctx = ctx;
	if (ls_ranges(l, "include", NULL, &l->include, err, errlen) != RDHPF_OK ||
	    ls_ranges(l, "exclude", "22", &l->exclude, err, errlen) != RDHPF_OK) {
		rsdk_ranges_free(&l->include);
		rsdk_ranges_free(&l->exclude);
		free(l);
		return RDHPF_ERR_INVAL;
	}
	*state = l;
	return RDHPF_OK;
}

static void
ls_stop(void *state)
{
	struct ls *l = state;

	if (l->coll != NULL)
		rsdk_collect_cancel(l->coll);
	l->coll = NULL;
	l->done = NULL;
}

static void
ls_destroy(void *state)
{
	struct ls *l = state;

	if (l == NULL)
		return;
	ls_stop(l);
	rsdk_ranges_free(&l->include);
	rsdk_ranges_free(&l->exclude);
	free(l);
}

/* The kernel prints each 32-bit word of the address in its own byte order;
 * every Linux a dev server runs on today (x86, arm64, riscv) is
 * little-endian, so the bytes of each word come reversed. */
static int
ls_addr(const char *hex, size_t n, char *out, size_t outlen)
{
	unsigned char b[16];
	char w[9] = "";

	if (n != 8 && n != 32)
		return -1;
	for (size_t i = 0; i < n / 8; i++) {
		char *end;
		unsigned long v;

		memcpy(w, hex + 8 * i, 8);
		v = strtoul(w, &end, 16);
		if (*end != '\0')
			return -1;
		for (size_t k = 0; k < 4; k++)
			b[4 * i + k] = (unsigned char)(v >> (8 * k));
	}
	return inet_ntop(n == 8 ? AF_INET : AF_INET6, b, out, (socklen_t)outlen) ? 0 : -1;
}

/* One line "  0: 0100007F:1F90 00000000:0000 0A …".  0: not a listening
 * socket; 1: *ip and *port filled; 2: a table's header; -1: malformed. */
static int
ls_parse_line(const char *line, size_t len, char *ip, size_t iplen, uint16_t *port)
{
	char buf[256], addr[40];
	unsigned p, st;
	int n = 0;

	if (len >= sizeof buf)
		return -1;
	memcpy(buf, line, len);
	buf[len] = '\0';
	if (strstr(buf, "local_address") != NULL)
		return 2;
	if (sscanf(buf, " %*u: %39[0-9A-Fa-f]:%4x %*[0-9A-Fa-f]:%*4x %2x%n", addr, &p, &st, &n) !=
	        3 ||
	    n == 0)
		return -1;
	if (st != LS_STATE_LISTEN)
		return 0;
	if (p == 0 || p > 65535 || ls_addr(addr, strlen(addr), ip, iplen) != 0)
		return -1;
	*port = (uint16_t)p;
	return 1;
}

static int
ls_wanted(const struct ls *l, uint16_t port)
{
	if (l->include.n > 0 && !rsdk_ranges_has(&l->include, port))
		return 0;
	return !rsdk_ranges_has(&l->exclude, port);
}

/* Add a listening socket to the set: one container per port. */
static int
ls_add(struct rsdk_cset *set, const char *ip, uint16_t port)
{
	char id[16];
	struct rsdk_cont c = {0}, *have;
	int rc;

	snprintf(id, sizeof id, "port-%u", (unsigned)port);
	if ((have = rsdk_cset_get(set, id)) != NULL)
		return rsdk_cont_add_port(have, ip, port, port, RDHPF_PROTO_TCP);
	if ((rc = rsdk_cont_init(&c, id, id)) == RDHPF_OK &&
	    (rc = rsdk_cont_add_port(&c, ip, port, port, RDHPF_PROTO_TCP)) == RDHPF_OK)
		rc = rsdk_cset_put(set, &c);
	rsdk_cont_clear(&c);
	return rc;
}

/* Parse the whole output; a malformed line is logged and skipped.  Returns
 * the number of tables seen (header lines), or -1 on ENOMEM. */
static int
ls_parse(struct ls *l, const char *out, size_t len, struct rsdk_cset *set)
{
	const char *p = out, *end = out + len;
	int tables = 0, bad = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char ip[INET6_ADDRSTRLEN];
		uint16_t port;
		int r = ls_parse_line(p, n, ip, sizeof ip, &port);

		if (r == 2)
			tables++;
		else if (r < 0 && n > 0 && bad++ == 0) {
			char shown[120];
			rsdk_printable(shown, sizeof shown, p, n);
			RSDK_LOG(H, l->ctx, RDHPF_LOG_WARN,
			         "skipping a malformed /proc/net/tcp line", "line", shown);
		} else if (r == 1 && ls_wanted(l, port) && ls_add(set, ip, port) != RDHPF_OK)
			return -1;
		p += n + 1;
	}
	return tables;
}

static void
ls_collected(void *arg, int status, int exit_code, const char *detail, const char *out, size_t len)
{
	struct ls *l = arg;
	rdhpf_list_fn done = l->done;
	void *done_arg = l->done_arg;
	struct rsdk_cset set = RSDK_CSET_INIT;
	int tables = 0;

	l->coll = NULL;
	l->done = NULL;
	if (status == RDHPF_OK)
		tables = ls_parse(l, out, len, &set);
	/* tcp6 is missing where IPv6 is off: cat exits 1, tcp still counts. */
	if (status == RDHPF_OK && tables == 0) {
		status = RDHPF_ERR_REMOTE;
		if (detail == NULL)
			detail =
			    exit_code != 0 ? "cat /proc/net/tcp failed" : "no /proc/net/tcp table";
	}
	if (tables < 0) {
		rsdk_cset_free(&set);
		done(done_arg, RDHPF_ERR_NOMEM, "out of memory", NULL, 0);
		return;
	}
	/* The core may stop or destroy us inside done: only locals after it. */
	if (status != RDHPF_OK)
		done(done_arg, status, detail, NULL, 0);
	else
		rsdk_list_reply(H, l->ctx, done, done_arg, &set);
	rsdk_cset_free(&set);
}

static int
ls_list(void *state, rdhpf_list_fn done, void *arg)
{
	static const char *const argv[] = {"cat", "/proc/net/tcp", "/proc/net/tcp6", NULL};
	struct ls *l = state;
	int rc;

	if (l->coll != NULL)
		return RDHPF_ERR_BUSY;
	l->done = done;
	l->done_arg = arg;
	rc = rsdk_collect(H, l->ctx, argv, LS_MAX_OUTPUT, ls_collected, l, &l->coll);
	if (rc != RDHPF_OK) {
		l->coll = NULL;
		l->done = NULL;
	}
	return rc;
}

static const struct rdhpf_runtime_ops ls_ops = {
    RDHPF_INIT(rdhpf_runtime_ops),
    .create = ls_create,
    .destroy = ls_destroy,
    .watch = NULL, /* poll-only */
    .list = ls_list,
    .stop = ls_stop,
};

static const struct rdhpf_option_desc *const ls_options[] = {
    RDHPF_OPTION("include", "only these remote ports: 3000-3999, 8080 (default: all)"),
    RDHPF_OPTION("exclude", "never these remote ports (default 22; none: no exclusion)"),
    NULL,
};

static const struct rdhpf_plugin_info ls_info = {
    .abi_major = RDHPF_ABI_MAJOR,
    .abi_minor = RDHPF_ABI_MINOR,
    .struct_size = sizeof(struct rdhpf_plugin_info),
    .kind = RDHPF_KIND_RUNTIME,
    .name = "listening",
    .version = "1.0",
    .description = "every TCP port listening on the remote host (/proc/net/tcp), poll-only",
    .caps = 0,
    .options = ls_options,
    .validate_option = ls_validate,
    .ops.runtime = &ls_ops,
};

RDHPF_PLUGIN_DECLARE
{
	H = host;
	return &ls_info;
}
