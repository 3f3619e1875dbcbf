/* transport-libssh2, plugin: the info block, the ops table and its options; create, destroy,
 * disconnect; deferred completions. */
#include "ls2.h"

const struct rdhpf_host_api *ls2_H;
static bool g_ssh2_ready;

/* ---- helpers ------------------------------------------------------------ */

uint64_t
ls2_now_ms(struct ls2 *ls)
{
	return ls2_H->now_ms(ls->ctx);
}

const char *
ls2_sess_errmsg(struct ls2 *ls)
{
	char *msg = NULL;

	if (ls->s == NULL)
		return "no session";
	libssh2_session_last_error(ls->s, &msg, NULL, 0);
	return msg && *msg ? msg : "unknown libssh2 error";
}

/* Per-host options, in the order create applies them. */
static const struct rdhpf_option_desc *const options[] = {
    RDHPF_OPTION("window",
                 "receive window of each forwarded connection's channel (default 2M; 64K..1G)"),
    RDHPF_OPTION("ciphers", "libssh2 cipher preference list (default " DEFAULT_CIPHERS ")"),
    RDHPF_OPTION("macs", "libssh2 MAC preference list (default " DEFAULT_MACS ")"),
    RDHPF_OPTION("agent", "yes (default): try ssh-agent keys before identity_file; no: never"),
    RDHPF_OPTION("max_relays",
                 "open connections per forward at most (default 4096); more are closed at once"),
    NULL,
};

/* "4M", "512K", "1048576" → bytes within [lo, hi] (lo_s, hi_s: the same
 * for the reason). */
static int
parse_size(const char *s, uint64_t lo, uint64_t hi, const char *lo_s, const char *hi_s,
           uint64_t *out, char *err, size_t errlen)
{
	char *end;
	unsigned long long v, mul = 1;

	if (*s == '\0') {
		snprintf(err, errlen, "empty; expected a number between %s and %s", lo_s, hi_s);
		return RDHPF_ERR_INVAL;
	}
	if (!isdigit((unsigned char)*s)) {
		snprintf(err, errlen, "'%s' does not start with a number", s);
		return RDHPF_ERR_INVAL;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end == 'k' || *end == 'K')
		mul = 1024ull;
	else if (*end == 'm' || *end == 'M')
		mul = 1024ull * 1024ull;
	else if (*end == 'g' || *end == 'G')
		mul = 1024ull * 1024ull * 1024ull;
	if (mul > 1)
		end++;
	if (*end != '\0') {
		snprintf(err, errlen, "'%s': unexpected '%s' after the number (suffixes: K, M, G)",
		         s, end);
		return RDHPF_ERR_INVAL;
	}
	if (errno != 0 || v > hi / mul || v * mul > hi) {
		snprintf(err, errlen, "'%s' is above the maximum %s", s, hi_s);
		return RDHPF_ERR_INVAL;
	}
	if (v * mul < lo) {
		snprintf(err, errlen, "'%s' is below the minimum %s", s, lo_s);
		return RDHPF_ERR_INVAL;
	}
	*out = v * mul;
	return RDHPF_OK;
}

/* libssh2_init once per process (no I/O, no thread). */
static int
lib_init(char *err, size_t errlen)
{
	if (!g_ssh2_ready) {
		if (libssh2_init(0) != 0) {
			snprintf(err, errlen, "libssh2_init failed");
			return RDHPF_ERR_GENERIC;
		}
		g_ssh2_ready = true;
	}
	return RDHPF_OK;
}

/* Does libssh2 take this cipher or MAC preference list?  It drops the names
 * it does not know and refuses a list with none left; say which it knows. */
static int
check_methods(int method, const char *list, char *err, size_t errlen)
{
	LIBSSH2_SESSION *s;
	const char **algs = NULL;
	int r = RDHPF_OK;

	if (*list == '\0') {
		snprintf(err, errlen, "empty; expected a comma-separated list");
		return RDHPF_ERR_INVAL;
	}
	if (lib_init(err, errlen) != RDHPF_OK)
		return RDHPF_ERR_GENERIC;
	s = libssh2_session_init();
	if (s == NULL) {
		snprintf(err, errlen, "libssh2_session_init failed");
		return RDHPF_ERR_NOMEM;
	}
	if (libssh2_session_method_pref(s, method, list) != 0) {
		char known[512] = "";
		size_t o = 0;
		int n = libssh2_session_supported_algs(s, method, &algs);
		for (int i = 0; i < n && o < sizeof known; i++) {
			int w =
			    snprintf(known + o, sizeof known - o, "%s%s", i ? "," : "", algs[i]);
			if (w < 0)
				break;
			o += (size_t)w;
		}
		if (n > 0)
			libssh2_free(s, algs);
		snprintf(err, errlen, "'%s' names nothing libssh2 %s supports (it has: %s)", list,
		         libssh2_version(0), known);
		r = RDHPF_ERR_INVAL;
	}
	libssh2_session_free(s);
	return r;
}

/* Check one option value and, with ls, apply it: the one place create and
 * validate_option share.  err gets a reason without the key. */
static int
option_apply(struct ls2 *ls, const char *key, const char *v, char *err, size_t errlen)
{
	uint64_t n;
	int r;

	if (strcmp(key, "window") == 0) {
		r = parse_size(v, 64 * 1024, 1024ull * 1024 * 1024, "64K", "1G", &n, err, errlen);
		if (r == RDHPF_OK && ls)
			ls->window = (uint32_t)n;
		return r;
	}
	if (strcmp(key, "max_relays") == 0) {
		r = parse_size(v, 1, 1000000, "1", "1000000", &n, err, errlen);
		if (r == RDHPF_OK && ls)
			ls->max_relays = (uint32_t)n;
		return r;
	}
	if (strcmp(key, "agent") == 0) {
		if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0) {
			snprintf(err, errlen, "'%s' is neither yes nor no", v);
			return RDHPF_ERR_INVAL;
		}
		if (ls)
			ls->use_agent = strcmp(v, "yes") == 0;
		return RDHPF_OK;
	}
	if (strcmp(key, "ciphers") == 0 || strcmp(key, "macs") == 0) {
		bool c = key[0] == 'c';
		char **dst;
		r = check_methods(c ? LIBSSH2_METHOD_CRYPT_CS : LIBSSH2_METHOD_MAC_CS, v, err,
		                  errlen);
		if (r != RDHPF_OK || ls == NULL)
			return r;
		dst = c ? &ls->ciphers : &ls->macs;
		free(*dst);
		*dst = strdup(v);
		if (*dst == NULL) {
			snprintf(err, errlen, "out of memory");
			return RDHPF_ERR_NOMEM;
		}
		return RDHPF_OK;
	}
	snprintf(err, errlen, "not an option of the libssh2 transport");
	return RDHPF_ERR_INVAL;
}

static int
validate_option(const char *key, const char *value, char *err, size_t errlen)
{
	if (key == NULL || value == NULL) {
		snprintf(err, errlen, "no key or value");
		return RDHPF_ERR_INVAL;
	}
	return option_apply(NULL, key, value, err, errlen);
}

/* ---- deferred completions (never call back before the op returned) --- */

int
ls2_complete_later(struct ls2 *ls, rdhpf_done_fn done, void *arg, int status, const char *detail)
{
	struct rsdk_op *op = rsdk_op_start(&ls->pend, done, arg, 0, NULL);

	if (op == NULL)
		return RDHPF_ERR_NOMEM;
	rsdk_op_finish_later(op, status, detail);
	return RDHPF_OK;
}

/* ---- ops ------------------------------------------------------------------- */

static void t_destroy(void *state);

static int
t_create(struct rdhpf_ctx *ctx, const struct rdhpf_host_params *p, void **state, char *err,
         size_t errlen)
{
	struct ls2 *ls;
	struct passwd *pw = getpwuid(getuid());
	const char *home = getenv("HOME");
	char path[PATH_MAX];

	if (p == NULL || !RDHPF_HAS(p, runtime_dir)) {
		snprintf(err, errlen, "host parameters from a core older than ABI 2.0");
		return RDHPF_ERR_INVAL;
	}
	if (lib_init(err, errlen) != RDHPF_OK)
		return RDHPF_ERR_GENERIC;
	if (p->hostname == NULL || *p->hostname == '\0') {
		snprintf(err, errlen, "no host name");
		return RDHPF_ERR_INVAL;
	}
	ls = calloc(1, sizeof *ls);
	if (ls == NULL)
		return RDHPF_ERR_NOMEM;
	ls->ctx = ctx;
	rsdk_pending_init(&ls->pend, ls2_H, ctx);
	rsdk_pending_init(&ls->health, ls2_H, ctx);
	ls->fd = -1;
	ls->res_fd = -1;
	ls->window = WINDOW_DEFAULT;
	ls->max_relays = RELAYS_MAX_DEFAULT;
	ls->use_agent = true;
	if (home == NULL || *home == '\0')
		home = pw ? pw->pw_dir : "/";
	ls->host_name = strdup(p->host_name ? p->host_name : p->hostname);
	ls->hostname = strdup(p->hostname);
	ls->port = p->port ? p->port : 22;
	ls->user = strdup(p->user ? p->user : (pw ? pw->pw_name : "root"));
	ls->identity = rsdk_strdup(p->identity_file);
	if (p->known_hosts) {
		ls->known_hosts = strdup(p->known_hosts);
	} else {
		snprintf(path, sizeof path, "%s/.ssh/known_hosts", home);
		ls->known_hosts = strdup(path);
	}
	ls->bind_addr = strdup(p->bind_address ? p->bind_address : "127.0.0.1");
	ls->connect_timeout_ms = p->connect_timeout_ms ? p->connect_timeout_ms : 10000;
	ls->ka_interval_ms = p->keepalive_interval_ms;
	ls->ka_count = p->keepalive_count;
	ls->ciphers = strdup(DEFAULT_CIPHERS);
	ls->macs = strdup(DEFAULT_MACS);
	ls->scratch = malloc(SCRATCH_SIZE);
	if (!ls->host_name || !ls->hostname || !ls->user || !ls->known_hosts || !ls->bind_addr ||
	    !ls->ciphers || !ls->macs || !ls->scratch) {
		t_destroy(ls);
		return RDHPF_ERR_NOMEM;
	}
	for (size_t i = 0; options[i] != NULL; i++) {
		const char *k = options[i]->name;
		const char *v = ls2_H->option(ctx, k);
		char e[400];
		int r;
		if (v == NULL)
			continue;
		r = option_apply(ls, k, v, e, sizeof e);
		if (r != RDHPF_OK) {
			snprintf(err, errlen, "%s: %s", k, e);
			t_destroy(ls);
			return r;
		}
	}
	if (ls->identity) {
		ls->idfiles[ls->nidfiles++] = strdup(ls->identity);
	} else {
		static const char *const defs[] = {"id_ed25519", "id_ecdsa", "id_rsa"};
		for (size_t i = 0; i < 3; i++) {
			snprintf(path, sizeof path, "%s/.ssh/%s", home, defs[i]);
			ls->idfiles[ls->nidfiles++] = strdup(path);
		}
	}
	*state = ls;
	return RDHPF_OK;
}

void
ls2_really_destroy(struct ls2 *ls)
{
	for (int i = 0; i < ls->nidfiles; i++)
		free(ls->idfiles[i]);
	free(ls->host_name);
	free(ls->hostname);
	free(ls->user);
	free(ls->identity);
	free(ls->known_hosts);
	free(ls->bind_addr);
	free(ls->ciphers);
	free(ls->macs);
	free(ls->scratch);
	free(ls);
}

static void
t_disconnect(void *state)
{
	struct ls2 *ls = state;

	rsdk_pending_cancel_all(&ls->pend);
	rsdk_pending_cancel_all(&ls->health);
	ls->cdone = NULL;
	ls2_session_teardown(ls, TD_DISCONNECT);
}

static void
t_destroy(void *state)
{
	struct ls2 *ls = state;

	if (ls == NULL)
		return;
	t_disconnect(ls);
	while (ls->fwds)
		ls2_fwd_free(ls, ls->fwds);
	if (ls->wait_timer) {
		ls2_H->timer_stop(ls->wait_timer);
		ls->wait_timer = NULL;
	}
	if (ls->depth > 0) {
		ls->destroyed = true; /* freed when the last ls2_service() frame returns */
		return;
	}
	ls2_really_destroy(ls);
}

static const struct rdhpf_transport_ops ops = {
    RDHPF_INIT(rdhpf_transport_ops),
    .create = t_create,
    .destroy = t_destroy,
    .connect = ls2_connect,
    .disconnect = t_disconnect,
    .health_check = ls2_health,
    .forward_add = ls2_forward_add,
    .forward_remove = ls2_forward_remove,
    .exec = ls2_exec,
    .stream_write = ls2_stream_write,
    .stream_close = ls2_stream_close,
    .open_unix = ls2_open_unix,
    .forward_stats = ls2_forward_stats,
};

static const struct rdhpf_plugin_info info = {
    .abi_major = RDHPF_ABI_MAJOR,
    .abi_minor = RDHPF_ABI_MINOR,
    .struct_size = sizeof(struct rdhpf_plugin_info),
    .kind = RDHPF_KIND_TRANSPORT,
    .name = "libssh2",
    .version = PLUGIN_VERSION,
    .description = "in-process SSH (libssh2): own listeners, channels relayed on the core loop",
    .caps = RDHPF_TCAP_EXEC | RDHPF_TCAP_UNIX_STREAM | RDHPF_TCAP_FORWARD_STATS |
            RDHPF_TCAP_HOLD_LISTENERS,
    .options = options,
    .validate_option = validate_option,
    .ops.transport = &ops,
};

RDHPF_PLUGIN_DECLARE
{
	ls2_H = host;
	return &info;
}
