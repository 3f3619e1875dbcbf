/* transport-openssh: the plugin: info block, ops table, options, create/destroy, connect,
 * disconnect and health. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ossh.h"

const struct rdhpf_host_api *H;

/* The per-host options; opt_check has a case for each. */
static const struct rdhpf_option_desc *const options[] = {
    RDHPF_OPTION("ssh_binary", "the ssh client to run (default: ssh from PATH)"),
    RDHPF_OPTION("ssh_config",
                 "ssh_config file passed as -F (default: the user's and the system's)"),
    RDHPF_OPTION("pdeathsig",
                 "yes (default): on Linux, run ssh under setpriv --pdeathsig so that the master "
                 "dies with rdhpf even if rdhpf is killed; no: plain ssh"),
    RDHPF_OPTION("liveness",
                 "yes (default): every keepalive_interval, check through the master that sshd "
                 "answers (a channel open sshd refuses: one \"connect_to 127.0.0.1 port 0: "
                 "failed.\" line in its log each time); the link is dead after keepalive_count "
                 "intervals unanswered; no: ssh's ServerAlive only (slower under load)"),
    NULL,
};

/* A word ssh gets as one argument (a program, a file): not empty, not
 * taken for an option, no control characters.  The reason names the bad
 * part. */
static int
check_arg(const char *what, const char *v, char *err, size_t errlen)
{
	if (v[0] == '\0') {
		snprintf(err, errlen, "empty: %s expected", what);
		return RDHPF_ERR_INVAL;
	}
	if (v[0] == '-') {
		snprintf(err, errlen,
		         "'%.100s' starts with '-': ssh would take it for an option, not %s", v,
		         what);
		return RDHPF_ERR_INVAL;
	}
	for (size_t i = 0; v[i] != '\0'; i++) {
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) {
			snprintf(err, errlen, "control character 0x%02x at byte %zu",
			         (unsigned char)v[i], i + 1);
			return RDHPF_ERR_INVAL;
		}
	}
	return RDHPF_OK;
}

/* One option's value, without I/O: what create refuses, and why (the
 * caller adds the key). */
static int
opt_check(const char *key, const char *v, char *err, size_t errlen)
{
	int b;

	if (key == NULL || v == NULL) {
		snprintf(err, errlen, "no %s", key == NULL ? "key" : "value");
		return RDHPF_ERR_INVAL;
	}
	if (strcmp(key, "ssh_binary") == 0)
		return check_arg("a program", v, err, errlen);
	if (strcmp(key, "ssh_config") == 0)
		return check_arg("a file", v, err, errlen);
	if (strcmp(key, "pdeathsig") == 0 || strcmp(key, "liveness") == 0)
		return rsdk_parse_bool(v, &b, err, errlen);
	snprintf(
	    err, errlen,
	    "not an option of the openssh transport (ssh_binary, ssh_config, pdeathsig, liveness)");
	return RDHPF_ERR_INVAL;
}

static void t_destroy(void *state);

static int
t_connect(void *state, rdhpf_done_fn done, void *arg)
{
	struct oss *o = state;
	char err[256];
	int r;

	if (o->st == M_UP)
		return complete_later(o, done, arg, RDHPF_OK, NULL);
	if (o->st == M_STARTING || o->cop != NULL)
		return RDHPF_ERR_BUSY;
	o->cop = rsdk_op_start(&o->pend, done, arg, 0, NULL);
	if (o->cop == NULL)
		return RDHPF_ERR_NOMEM;
	if (o->st == M_DYING) {
		/* One master per host: the next starts when the last is reaped
		 * (its control socket is gone then). */
		o->connect_queued = 1;
		o->connect_started_ms = H->now_ms(o->ctx);
		stop_timer(&o->deadline_t);
		o->deadline_t = H->timer_start(o->ctx, o->connect_timeout_ms, 0, deadline_cb, o);
		return RDHPF_OK;
	}
	r = master_start(o, err, sizeof err);
	if (r != RDHPF_OK) {
		rsdk_op_cancel(o->cop);
		o->cop = NULL;
		H->log(o->ctx, RDHPF_LOG_ERROR, "cannot start the ssh master", "err", err, NULL);
		return r;
	}
	return RDHPF_OK;
}

static void
t_disconnect(void *state)
{
	struct oss *o = state;

	/* No callback follows disconnect/destroy: forget every caller. */
	ctl_forget_callers(o);
	o->cop = NULL;
	rsdk_pending_cancel_all(&o->pend);
	o->connect_queued = 0;
	close_streams(o);
	if (o->st == M_STARTING || o->st == M_UP) {
		H->log(o->ctx, RDHPF_LOG_INFO, "stopping the ssh master", "dest", o->where, NULL);
		master_stop(o);
	} else if (o->st == M_DYING) {
		stop_timer(&o->deadline_t);
	}
	ctl_drop_ops(o, RDHPF_ERR_CANCELLED, NULL, 0);
}

static int
t_health(void *state, rdhpf_done_fn done, void *arg)
{
	struct oss *o = state;
	struct stat st;

	if (o->st != M_UP)
		return complete_later(o, done, arg, RDHPF_ERR_NOTCONN, "not connected");
	if (lstat(o->ctl, &st) != 0 || !S_ISSOCK(st.st_mode)) {
		/* Removed under us (a tmp cleaner?): exec and open_unix cannot
		 * reach the master any more, though it lives.  A new one will. */
		char d[160];
		snprintf(d, sizeof d, "control socket %.100s was removed", o->ctl);
		return complete_later(o, done, arg, RDHPF_ERR_CLOSED, d);
	}
	if (ctl_request(o, MOP_HEALTH, MUX_C_ALIVE_CHECK, done, arg) != 0)
		return complete_later(o, done, arg, RDHPF_ERR_CLOSED,
		                      "ssh master's control socket cannot be reached");
	return RDHPF_OK;
}

/* The control socket is unreachable while the master lives: the link is
 * unusable.  Stop the master, tell the core. */
void
link_broken(struct oss *o)
{
	char d[256];

	snprintf(d, sizeof d, "ssh master's control socket %s cannot be reached", o->ctl);
	master_stop(o);
	H->report_down(o->ctx, RDHPF_ERR_CLOSED, d);
}

static uint32_t
fnv1a(uint32_t h, const char *s)
{
	if (s != NULL)
		for (; *s; s++)
			h = (h ^ (unsigned char)*s) * 16777619u;
	return (h ^ 0xffu) * 16777619u;
}

static int
word_ok(const char *s)
{
	if (s == NULL || s[0] == '\0' || s[0] == '-')
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

static char *
dup_or_null(const char *s, int *oom)
{
	char *d;

	if (s == NULL)
		return NULL;
	d = strdup(s);
	if (d == NULL)
		*oom = 1;
	return d;
}

static int
t_create(struct rdhpf_ctx *ctx, const struct rdhpf_host_params *p, void **state, char *err,
         size_t errlen)
{
	struct oss *o;
	struct stat st;
	int oom = 0, pdeath = 1, liveness = 1;
	const char *ssh_bin = "ssh", *ssh_config = NULL;
	char portb[8], qpath[QPATH_MAX];

	if (p == NULL || p->hostname == NULL || !word_ok(p->hostname)) {
		snprintf(err, errlen, "host name missing or unusable");
		return RDHPF_ERR_INVAL;
	}
	if (p->user != NULL && !word_ok(p->user)) {
		snprintf(err, errlen, "user '%s' cannot be passed to ssh", p->user);
		return RDHPF_ERR_INVAL;
	}
	if (p->runtime_dir == NULL || p->runtime_dir[0] != '/') {
		snprintf(err, errlen, "no private runtime directory for the control socket");
		return RDHPF_ERR_INVAL;
	}
	if (strlen(p->runtime_dir) + CTL_NAME_MAX > SUN_PATH_PORTABLE - 1 - MASTER_TMP_SUFFIX) {
		snprintf(
		    err, errlen,
		    "runtime_dir %s is too long for ssh's control socket (at most %d bytes: socket "
		    "paths are limited to %d bytes and ssh binds a name %d bytes longer first)",
		    p->runtime_dir, SUN_PATH_PORTABLE - 1 - MASTER_TMP_SUFFIX - CTL_NAME_MAX,
		    SUN_PATH_PORTABLE, MASTER_TMP_SUFFIX);
		return RDHPF_ERR_INVAL;
	}
	if (lstat(p->runtime_dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 077) != 0) {
		snprintf(err, errlen, "runtime_dir %s is not a private (0700) directory of ours",
		         p->runtime_dir);
		return RDHPF_ERR_INVAL;
	}
	for (size_t i = 0; options[i] != NULL; i++) {
		const char *k = options[i]->name, *v = H->option(ctx, k);
		char why[200];
		if (v == NULL)
			continue;
		if (opt_check(k, v, why, sizeof why) != RDHPF_OK) {
			snprintf(err, errlen, "%s: %s", k, why);
			return RDHPF_ERR_INVAL;
		}
		if (strcmp(k, "ssh_binary") == 0)
			ssh_bin = v;
		else if (strcmp(k, "ssh_config") == 0)
			ssh_config = v;
		else if (strcmp(k, "pdeathsig") == 0)
			(void)rsdk_parse_bool(v, &pdeath, why, sizeof why);
		else if (strcmp(k, "liveness") == 0)
			(void)rsdk_parse_bool(v, &liveness, why, sizeof why);
	}
	/* Refused now, not at every connect: a path that cannot be quoted
	 * never will be. */
	if (p->known_hosts != NULL && cfg_quote_path(p->known_hosts, qpath, sizeof qpath) != 0) {
		snprintf(err, errlen, "known_hosts: path cannot be passed to ssh safely");
		return RDHPF_ERR_INVAL;
	}
	if (p->identity_file != NULL &&
	    cfg_quote_path(p->identity_file, qpath, sizeof qpath) != 0) {
		snprintf(err, errlen, "identity_file: path cannot be passed to ssh safely");
		return RDHPF_ERR_INVAL;
	}
	o = calloc(1, sizeof *o);
	if (o == NULL)
		return RDHPF_ERR_NOMEM;
	o->ctx = ctx;
	rsdk_pending_init(&o->pend, H, ctx);
	o->err_fd = -1;
	o->lv_fd = -1;
	o->lv_never = !liveness;
	o->cc.fd = -1;
	o->user = dup_or_null(p->user, &oom);
	o->hostname = dup_or_null(p->hostname, &oom);
	o->identity = dup_or_null(p->identity_file, &oom);
	o->known_hosts = dup_or_null(p->known_hosts, &oom);
	o->runtime_dir = dup_or_null(p->runtime_dir, &oom);
	o->ssh_bin = dup_or_null(ssh_bin, &oom);
	o->ssh_config = dup_or_null(ssh_config, &oom);
	if (oom) {
		t_destroy(o);
		return RDHPF_ERR_NOMEM;
	}
	o->port = p->port;
	o->connect_timeout_ms = p->connect_timeout_ms ? p->connect_timeout_ms : 10000;
	o->keepalive_interval_ms = p->keepalive_interval_ms;
	o->keepalive_count = p->keepalive_count;
#ifdef __linux__
	if (pdeath) {
		if (access("/usr/bin/setpriv", X_OK) == 0)
			snprintf(o->setpriv, sizeof o->setpriv, "/usr/bin/setpriv");
		else if (access("/bin/setpriv", X_OK) == 0)
			snprintf(o->setpriv, sizeof o->setpriv, "/bin/setpriv");
	}
#else
	(void)pdeath;
#endif
	snprintf(portb, sizeof portb, "%u", p->port ? p->port : 22);
	o->hash =
	    fnv1a(fnv1a(fnv1a(fnv1a(2166136261u, p->host_name), p->user), p->hostname), portb);
	/* Without a port the real one is ssh_config's business: name none. */
	if (p->port == 0)
		snprintf(o->where, sizeof o->where, "%s", p->hostname);
	else if (strchr(p->hostname, ':') != NULL)
		snprintf(o->where, sizeof o->where, "[%s]:%s", p->hostname, portb);
	else
		snprintf(o->where, sizeof o->where, "%s:%s", p->hostname, portb);
	*state = o;
	return RDHPF_OK;
}

static void
t_destroy(void *state)
{
	struct oss *o = state;

	if (o == NULL)
		return;
	/* No callback follows disconnect/destroy: forget every caller. */
	ctl_forget_callers(o);
	o->cop = NULL;
	rsdk_pending_cancel_all(&o->pend);
	o->connect_queued = 0;
	close_streams(o);
	ul_drop_all(o);
	stop_timer(&o->poll_t);
	stop_timer(&o->deadline_t);
	stop_timer(&o->kill_t);
	lv_stop(o);
	if (o->child != NULL) {
		/* We cannot wait: a terminate is only safe to send and close at
		 * once on a connection whose hello the master has processed and
		 * that has nothing else queued; otherwise SIGTERM (ssh still
		 * removes its socket and stops its ProxyCommand).  The core reaps
		 * the child, and SIGKILLs it at shutdown if it lingers. */
		int idle = o->st != M_DYING && o->cc.fd >= 0 && o->cc.answers > 0 &&
		           o->cc.head == NULL && rsdk_buf_size(&o->cc.w) == 0;
		int sent = idle && mux_enc_request(&o->cc.w, MUX_C_TERMINATE, ++o->next_rid) == 0 &&
		           sock_flush(o->cc.fd, &o->cc.w) == 0 && rsdk_buf_size(&o->cc.w) == 0;
		if (!sent)
			H->child_kill(o->child, SIGTERM);
		H->child_detach(o->child);
		o->child = NULL;
	} else {
		unlink_if_stale(o->ctl);
	}
	ctl_close(o, RDHPF_ERR_CANCELLED, NULL, 0);
	if (o->err_io)
		H->io_stop(o->err_io);
	if (o->err_fd >= 0)
		close(o->err_fd);
	while (o->fw) {
		struct fwd_entry *e = o->fw;
		o->fw = e->next;
		free(e);
	}
	free(o->user);
	free(o->hostname);
	free(o->identity);
	free(o->known_hosts);
	free(o->runtime_dir);
	free(o->ssh_bin);
	free(o->ssh_config);
	free(o);
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
};

static const struct rdhpf_plugin_info info = {
    .abi_major = RDHPF_ABI_MAJOR,
    .abi_minor = RDHPF_ABI_MINOR,
    .struct_size = sizeof(struct rdhpf_plugin_info),
    .kind = RDHPF_KIND_TRANSPORT,
    .name = "openssh",
    .version = "1.0.0",
    .description = "system ssh as a ControlMaster; mux protocol over its control socket",
    .caps = RDHPF_TCAP_EXEC | RDHPF_TCAP_UNIX_STREAM,
    .options = options,
    .validate_option = opt_check,
    .ops.transport = &ops,
};

RDHPF_PLUGIN_DECLARE
{
	H = host;
	return &info;
}
