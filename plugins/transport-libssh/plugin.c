/* transport-libssh: the ops table, per-host options, instance lifetime,
 * deferred completions and health checks.  See lsh.h for the map. */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lsh.h"

const struct rdhpf_host_api *lsh_H;
#define H lsh_H

static bool g_ssh_ready;

/* ---- helpers ------------------------------------------------------------- */

uint64_t
lsh_now(struct lsh *ls)
{
	return H->now_ms(ls->ctx);
}

/* The ABI forbids calling back before the operation returned: results that
 * are known at once go out on a zero timer. */
int
lsh_complete_later(struct lsh *ls, rdhpf_done_fn done, void *arg, int status, const char *detail)
{
	struct rsdk_op *op = rsdk_op_start(&ls->pend, done, arg, 0, NULL);

	if (op == NULL)
		return RDHPF_ERR_NOMEM;
	rsdk_op_finish_later(op, status, detail);
	return RDHPF_OK;
}

/* ---- health ---------------------------------------------------------------- */

/* Health checks are answered through rsdk_pending_settle_later: from the
 * loop, never inside a service turn, where the core's callback may start or
 * close streams (the keepalive's answer is seen inside one). */

static int
t_health(void *state, rdhpf_done_fn done, void *arg)
{
	struct lsh *ls = state;
	uint64_t to, last;

	if (ls->phase != PH_READY)
		return lsh_complete_later(ls, done, arg, RDHPF_ERR_NOTCONN, "not connected");
	last = rsdk_keepalive_last(&ls->kal);
	if (lsh_now(ls) < last + 1000)
		return lsh_complete_later(ls, done, arg, RDHPF_OK, NULL);
	/* Ask the server something: its answer completes the check (live.c;
	 * in the keepalive fallback any byte, lsh_note_rx). */
	to = ls->ka_interval_ms ? ls->ka_interval_ms * (ls->ka_count ? ls->ka_count : 1)
	                        : ls->connect_timeout_ms;
	if (rsdk_op_start(&ls->health, done, arg, to, "no answer from the ssh server") == NULL)
		return RDHPF_ERR_NOMEM;
	/* Not through lsh_leave: a dead session found there would complete
	 * this very check before we returned.  The io watch sees it instead. */
	ls->depth++;
	lsh_ka_probe_now(ls);
	ls->depth--;
	lsh_kick_if_needed(ls);
	lsh_sess_update_io(ls);
	return RDHPF_OK;
}

/* ---- lifetime --------------------------------------------------------------- */

static void t_destroy(void *state);

/* Per-host options, in the order create applies them. */
static const struct rdhpf_option_desc *const options[] = {
    RDHPF_OPTION("ssh_config",
                 "ssh_config file to read (default: ~/.ssh/config then /etc/ssh/ssh_config; "
                 "none: no file)"),
    RDHPF_OPTION("ciphers", "cipher preference list (default: AES-GCM first where the CPU has "
                            "AES-NI, else chacha20-poly1305 first)"),
    RDHPF_OPTION("agent", "yes (default): try ssh-agent keys first; no: never use the agent"),
    RDHPF_OPTION("window", "receive window of each forwarded connection's channel (default 2M; "
                           "64K..64M; up to 1250K: libssh's own 1.28 MB)"),
    NULL,
};

/* "4M", "512K", "1048576" → bytes, 64K..64M. */
static int
parse_window(const char *s, uint32_t *out, char *err, size_t errlen)
{
	char *end;
	unsigned long long v, mul = 1;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (end == s || *s == '-' || *s == '+') {
		snprintf(err, errlen, "'%s' is not a size (a number, with K or M)", s);
		return RDHPF_ERR_INVAL;
	}
	if (*end == 'k' || *end == 'K')
		mul = 1024;
	else if (*end == 'm' || *end == 'M')
		mul = 1024 * 1024;
	if (mul > 1)
		end++;
	if (*end != '\0') {
		snprintf(err, errlen, "'%s': unexpected '%s' after the number (suffixes: K, M)", s,
		         end);
		return RDHPF_ERR_INVAL;
	}
	if (errno != 0 || v > (64ull << 20) / mul || v * mul < (64ull << 10)) {
		snprintf(err, errlen, "'%s' is outside 64K..64M", s);
		return RDHPF_ERR_INVAL;
	}
	*out = (uint32_t)(v * mul);
	return RDHPF_OK;
}

/* Check one option value and, with ls, apply it: the one place create and
 * validate_option share.  err gets a reason without the key. */
static int
option_apply(struct lsh *ls, const char *key, const char *v, char *err, size_t errlen)
{
	char **dst;
	int r;

	if (strcmp(key, "agent") == 0) {
		if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0) {
			snprintf(err, errlen, "'%s' is neither yes nor no", v);
			return RDHPF_ERR_INVAL;
		}
		if (ls)
			ls->use_agent = strcmp(v, "yes") == 0;
		return RDHPF_OK;
	}
	if (strcmp(key, "window") == 0) {
		uint32_t w;
		r = parse_window(v, &w, err, errlen);
		if (r == RDHPF_OK && ls)
			ls->window = w;
		return r;
	}
	if (strcmp(key, "ciphers") == 0) {
		if (*v == '\0') {
			snprintf(err, errlen, "empty; expected a comma-separated list");
			return RDHPF_ERR_INVAL;
		}
		r = lsh_check_ciphers(v, err, errlen);
		if (r != RDHPF_OK)
			return r;
		dst = ls ? &ls->ciphers : NULL;
	} else if (strcmp(key, "ssh_config") == 0) {
		if (*v == '\0') {
			snprintf(err, errlen, "empty (use 'none' for no file)");
			return RDHPF_ERR_INVAL;
		}
		dst = ls ? &ls->ssh_config : NULL;
	} else {
		snprintf(err, errlen, "not an option of the libssh transport");
		return RDHPF_ERR_INVAL;
	}
	if (dst == NULL)
		return RDHPF_OK;
	free(*dst);
	*dst = strdup(v);
	if (*dst == NULL) {
		snprintf(err, errlen, "out of memory");
		return RDHPF_ERR_NOMEM;
	}
	return RDHPF_OK;
}

/* ssh_init once per process: initialises libcrypto; starts no thread. */
static int
lib_init(char *err, size_t errlen)
{
	if (!g_ssh_ready) {
		if (ssh_init() != SSH_OK) {
			snprintf(err, errlen, "ssh_init failed");
			return RDHPF_ERR_GENERIC;
		}
		g_ssh_ready = true;
	}
	return RDHPF_OK;
}

static int
validate_option(const char *key, const char *value, char *err, size_t errlen)
{
	int r;

	if (key == NULL || value == NULL) {
		snprintf(err, errlen, "no key or value");
		return RDHPF_ERR_INVAL;
	}
	r = lib_init(err, errlen);
	if (r != RDHPF_OK)
		return r;
	return option_apply(NULL, key, value, err, errlen);
}

static int
t_create(struct rdhpf_ctx *ctx, const struct rdhpf_host_params *p, void **state, char *err,
         size_t errlen)
{
	struct lsh *ls;
	int r;

	if (p == NULL || !RDHPF_HAS(p, runtime_dir)) {
		snprintf(err, errlen, "host parameters from a core older than ABI 2.0");
		return RDHPF_ERR_INVAL;
	}
	r = lib_init(err, errlen);
	if (r != RDHPF_OK)
		return r;
	if (p->hostname == NULL || *p->hostname == '\0') {
		snprintf(err, errlen, "no host name");
		return RDHPF_ERR_INVAL;
	}
	ls = calloc(1, sizeof *ls);
	if (ls == NULL)
		return RDHPF_ERR_NOMEM;
	ls->ctx = ctx;
	rsdk_pending_init(&ls->pend, H, ctx);
	rsdk_pending_init(&ls->health, H, ctx);
	ls->fd = ls->res_fd = ls->ag_fd = -1;
	ls->use_agent = true;
	ls->window = LSH_WINDOW_DEFAULT;
	ls->host_name = strdup(p->host_name ? p->host_name : p->hostname);
	ls->alias = strdup(p->hostname);
	ls->user = p->user ? strdup(p->user) : NULL;
	ls->identity = p->identity_file ? strdup(p->identity_file) : NULL;
	ls->known_hosts = p->known_hosts ? strdup(p->known_hosts) : NULL;
	ls->bind_addr = strdup(p->bind_address ? p->bind_address : "127.0.0.1");
	ls->port = p->port;
	ls->connect_timeout_ms = p->connect_timeout_ms ? p->connect_timeout_ms : 10000;
	ls->ka_interval_ms = p->keepalive_interval_ms;
	ls->ka_count = p->keepalive_count;
	ls->scratch = malloc(LSH_SCRATCH + LSH_SCRATCH_SLACK);
	if (!ls->host_name || !ls->alias || (p->user && !ls->user) ||
	    (p->identity_file && !ls->identity) || (p->known_hosts && !ls->known_hosts) ||
	    !ls->bind_addr || !ls->scratch) {
		t_destroy(ls);
		return RDHPF_ERR_NOMEM;
	}
	for (size_t i = 0; options[i] != NULL; i++) {
		const char *k = options[i]->name;
		const char *v = H->option(ctx, k);
		char e[400];
		if (v == NULL)
			continue;
		r = option_apply(ls, k, v, e, sizeof e);
		if (r != RDHPF_OK) {
			snprintf(err, errlen, "%s: %s", k, e);
			t_destroy(ls);
			return r;
		}
	}
	*state = ls;
	return RDHPF_OK;
}

void
lsh_really_destroy(struct lsh *ls)
{
	free(ls->host_name);
	free(ls->alias);
	free(ls->user);
	free(ls->identity);
	free(ls->known_hosts);
	free(ls->bind_addr);
	free(ls->ciphers);
	free(ls->ssh_config);
	free(ls->scratch);
	free(ls);
}

static void
t_disconnect(void *state)
{
	struct lsh *ls = state;

	rsdk_pending_cancel_all(&ls->pend);
	rsdk_pending_cancel_all(&ls->health);
	ls->cdone = NULL;
	lsh_teardown(ls, TD_DISCONNECT);
}

static void
t_destroy(void *state)
{
	struct lsh *ls = state;

	if (ls == NULL)
		return;
	t_disconnect(ls);
	while (ls->fwds)
		lsh_fwd_free(ls, ls->fwds);
	if (ls->wait_timer) {
		H->timer_stop(ls->wait_timer);
		ls->wait_timer = NULL;
	}
	if (ls->depth > 0) {
		ls->destroyed = true; /* freed when the last frame returns */
		return;
	}
	lsh_really_destroy(ls);
}

static void
ctimer_fire(void *arg)
{
	struct lsh *ls = arg;
	static const char *const names[] = {
	    "down",          "resolving the host name", "TCP connect",
	    "SSH handshake", "ssh-agent probe",         "authentication",
	    "ready"};
	char d[600];

	snprintf(d, sizeof d, "connecting to %s:%u timed out after %llu ms (during %s)%s%s",
	         ls->target[0] ? ls->target : ls->alias, ls->tport,
	         (unsigned long long)ls->connect_timeout_ms,
	         ls->phase >= 0 && ls->phase <= PH_READY ? names[ls->phase] : "?",
	         ls->last_err[0] ? "; last error: " : "", ls->last_err);
	lsh_connect_finish(ls, RDHPF_ERR_TIMEOUT, d);
}

static int
t_connect(void *state, rdhpf_done_fn done, void *arg)
{
	struct lsh *ls = state;
	char err[700];
	int r;

	if (ls->phase == PH_READY)
		return lsh_complete_later(ls, done, arg, RDHPF_OK, NULL);
	if (ls->phase != PH_DOWN)
		return RDHPF_ERR_BUSY;
	ls->last_err[0] = '\0';
	ls->ag_note[0] = '\0';
	r = lsh_session_new(ls, err, sizeof err);
	if (r == RDHPF_OK)
		r = lsh_dial_start(ls, err, sizeof err);
	if (r != RDHPF_OK) {
		lsh_teardown(ls, TD_FAILED);
		return lsh_complete_later(ls, done, arg, r, err);
	}
	ls->cdone = done;
	ls->carg = arg;
	ls->ctimer = H->timer_start(ls->ctx, ls->connect_timeout_ms, 0, ctimer_fire, ls);
	return RDHPF_OK;
}

/* ---- forwards ----------------------------------------------------------------- */

/* The members read here must lie inside what the core wrote. */
static bool
fwd_ok(const struct rdhpf_forward *f)
{
	return f != NULL && RDHPF_HAS(f, remote_port);
}

static int
t_forward_add(void *state, const struct rdhpf_forward *f, rdhpf_done_fn done, void *arg)
{
	struct lsh *ls = state;
	struct lsh_fwd *fw;
	char err[300];
	int r;

	if (!fwd_ok(f) || f->local_port == 0 || f->remote_port == 0 || f->remote_host == NULL ||
	    *f->remote_host == '\0' || strlen(f->remote_host) >= sizeof fw->rhost ||
	    (f->bind_address && strlen(f->bind_address) >= sizeof fw->bind))
		return RDHPF_ERR_INVAL;
	fw = lsh_fwd_find(ls, f);
	if (fw != NULL) {
		/* Idempotent; a changed target applies to new connections. */
		snprintf(fw->rhost, sizeof fw->rhost, "%s", f->remote_host);
		fw->rport = f->remote_port;
		return lsh_complete_later(ls, done, arg, RDHPF_OK, NULL);
	}
	r = lsh_fwd_add(ls, f, err, sizeof err);
	return lsh_complete_later(ls, done, arg, r, r == RDHPF_OK ? NULL : err);
}

static int
t_forward_remove(void *state, const struct rdhpf_forward *f, rdhpf_done_fn done, void *arg)
{
	struct lsh *ls = state;
	struct lsh_fwd *fw = fwd_ok(f) ? lsh_fwd_find(ls, f) : NULL;

	/* The port is closed before the callback: a connect now is refused. */
	if (fw != NULL) {
		lsh_fwd_free(ls, fw);
		lsh_kick(ls);
	}
	return lsh_complete_later(ls, done, arg, RDHPF_OK, NULL);
}

static int
t_forward_stats(void *state, const struct rdhpf_forward *f, struct rdhpf_forward_stats *out)
{
	struct lsh *ls = state;
	struct lsh_fwd *fw = fwd_ok(f) ? lsh_fwd_find(ls, f) : NULL;

	if (fw == NULL || out == NULL)
		return RDHPF_ERR_INVAL;
	/* The core sized *out: write only what it knows. */
	if (RDHPF_HAS(out, connections))
		out->connections = fw->st.connections;
	if (RDHPF_HAS(out, active))
		out->active = fw->st.active;
	if (RDHPF_HAS(out, bytes_in))
		out->bytes_in = fw->st.bytes_in;
	if (RDHPF_HAS(out, bytes_out))
		out->bytes_out = fw->st.bytes_out;
	return RDHPF_OK;
}

/* ---- streams ---------------------------------------------------------------- */

static int
t_exec(void *state, const char *const *argv, const struct rdhpf_stream_cbs *cbs, void *arg,
       void **stream)
{
	return lsh_exec(state, argv, cbs, arg, stream);
}

static int
t_open_unix(void *state, const char *path, const struct rdhpf_stream_cbs *cbs, void *arg,
            void **stream)
{
	return lsh_open_unix(state, path, cbs, arg, stream);
}

static int
t_stream_write(void *state, void *stream, const void *buf, size_t len)
{
	return lsh_stream_write(state, stream, buf, len);
}

static void
t_stream_close(void *state, void *stream)
{
	lsh_stream_close(state, stream);
}

static const struct rdhpf_transport_ops ops = {
    RDHPF_INIT(rdhpf_transport_ops),
    .create = t_create,
    .destroy = t_destroy,
    .connect = t_connect,
    .disconnect = t_disconnect,
    .health_check = t_health,
    .forward_add = t_forward_add,
    .forward_remove = t_forward_remove,
    .exec = t_exec,
    .stream_write = t_stream_write,
    .stream_close = t_stream_close,
    .open_unix = t_open_unix,
    .forward_stats = t_forward_stats,
};

static const struct rdhpf_plugin_info info = {
    .abi_major = RDHPF_ABI_MAJOR,
    .abi_minor = RDHPF_ABI_MINOR,
    .struct_size = sizeof(struct rdhpf_plugin_info),
    .kind = RDHPF_KIND_TRANSPORT,
    .name = "libssh",
    .version = LSH_VERSION,
    .description = "in-process SSH (libssh): AEAD ciphers, ssh_config, own listeners relayed "
                   "on the core loop",
    .caps = RDHPF_TCAP_EXEC | RDHPF_TCAP_UNIX_STREAM | RDHPF_TCAP_FORWARD_STATS |
            RDHPF_TCAP_HOLD_LISTENERS,
    .options = options,
    .validate_option = validate_option,
    .ops.transport = &ops,
};

RDHPF_PLUGIN_DECLARE
{
	lsh_H = host;
	return &info;
}
