/* `rdhpf run`: config → plugins → one supervisor per host → the loop.
 * A host that cannot be set up is logged and skipped; the others run. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "core.h"
#include "events.h"
#include "log.h"
#include "notify.h"
#include "util.h"
#include "wake.h"

#define SHUTDOWN_GRACE_MS 1500
/* A loop gone this long (sleep, SIGSTOP) makes every host check its link. */
#define WAKE_THRESHOLD_MS 2000

struct daemon {
	struct cfg cfg;
	struct plugin_set plugins;
	struct host **hosts;
	size_t n_hosts;
	char rundir[512];
	char lockpath[600];
	int lockfd;
	uv_signal_t sig_int, sig_term, sig_hup;
	uv_timer_t t_logflush, t_shutdown;
	int stopping;
	uint64_t stop_started_ms;
	struct control *control;
	struct metrics_http *mhttp;
	int64_t started_wall;
	const struct run_opts *opts;
	char config_file[512]; /* "" when not from a file: nothing to reload */
	struct wake wake;
	/* systemd notification: host and forward events schedule an update */
	struct ev_sub *notify_sub;
	uv_timer_t t_notify;
};

static struct daemon *g_daemon;

int
runtime_dir_prepare(const char *want, char *out, size_t outlen, char *err, size_t errlen)
{
	char path[512];
	struct stat st;
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	const char *home = getenv("HOME");

	if (want != NULL && *want)
		snprintf(path, sizeof path, "%s", want);
	else if (xdg != NULL && *xdg == '/')
		snprintf(path, sizeof path, "%s/rdhpf", xdg);
	else if (home != NULL && *home == '/')
		snprintf(path, sizeof path, "%s/.rdhpf", home);
	else {
		snprintf(err, errlen,
		         "no runtime directory: set XDG_RUNTIME_DIR or HOME, or --runtime-dir");
		return -1;
	}
	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "runtime directory %s: %s", path, strerror(errno));
		return -1;
	}
	if (lstat(path, &st) != 0) {
		snprintf(err, errlen, "runtime directory %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "runtime directory %s is not a directory", path);
		return -1;
	}
	if (st.st_uid != geteuid()) {
		snprintf(err, errlen, "runtime directory %s belongs to uid %u, not us", path,
		         (unsigned)st.st_uid);
		return -1;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen,
		         "runtime directory %s has mode %04o; it must be private (0700)", path,
		         (unsigned)(st.st_mode & 07777));
		return -1;
	}
	snprintf(out, outlen, "%s", path);
	return 0;
}

/* One instance per runtime directory: an flock'd pid file. */
static int
lock_instance(struct daemon *d, char *err, size_t errlen)
{
	char buf[32];
	struct stat fst, pst;
	int fd, tries = 0;

	snprintf(d->lockpath, sizeof d->lockpath, "%s/rdhpf.pid", d->rundir);
again:
	fd = open(d->lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", d->lockpath, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		ssize_t n = read(fd, buf, sizeof buf - 1);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		snprintf(err, errlen,
		         "another rdhpf (pid %s) already runs with runtime directory %s",
		         buf[0] ? buf : "?", d->rundir);
		close(fd);
		return -1;
	}
	/* The previous holder unlinks the pid file as it exits: a lock taken on
	 * that unlinked file would let a third instance lock a new file beside
	 * us.  Only a lock on the file still at the path counts. */
	if (fstat(fd, &fst) != 0 || lstat(d->lockpath, &pst) != 0 || fst.st_dev != pst.st_dev ||
	    fst.st_ino != pst.st_ino) {
		close(fd);
		if (++tries < 5)
			goto again;
		snprintf(err, errlen, "%s keeps changing; another rdhpf is starting or stopping",
		         d->lockpath);
		return -1;
	}
	if (ftruncate(fd, 0) == 0) {
		int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
		if (write(fd, buf, (size_t)n) != n)
			log_kv(RDHPF_LOG_WARN, NULL, NULL, "cannot write pid file", "path",
			       d->lockpath, NULL);
	}
	d->lockfd = fd;
	return 0;
}

/* Open descriptors now and the soft limit: the first wall a thousand
 * forwards hit (libssh2 holds a listener per forward here), in status so
 * that "at the limit" is visible without the log.  null where unknown. */
static json_t *
fds_json(void)
{
	json_t *o = json_object();
	struct rlimit rl;
	DIR *dir = opendir("/proc/self/fd");
	long n = -1;

	if (dir == NULL)
		dir = opendir("/dev/fd");
	if (dir != NULL) {
		struct dirent *e;
		n = 0;
		while ((e = readdir(dir)) != NULL)
			if (e->d_name[0] != '.')
				n++;
		n--; /* the directory's own */
		closedir(dir);
	}
	json_object_set_new(o, "open", n >= 0 ? json_integer(n) : json_null());
	json_object_set_new(o, "limit",
	                    getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
	                        ? json_integer((json_int_t)rl.rlim_cur)
	                        : json_null());
	return o;
}

static char *
status_json_text(struct daemon *d)
{
	json_t *o = json_object(), *hosts = json_array();
	char *txt;

	json_object_set_new(o, "schema", json_integer(4));
	json_object_set_new(o, "version", json_string(RDHPF_VERSION));
	json_object_set_new(o, "pid", json_integer(getpid()));
	json_object_set_new(o, "started", json_integer(d->started_wall));
	json_object_set_new(o, "runtime_dir", json_string(d->rundir));
	json_object_set_new(o, "fds", fds_json());
	for (size_t i = 0; i < d->n_hosts; i++)
		json_array_append_new(hosts, host_status_json(d->hosts[i]));
	json_object_set_new(o, "hosts", hosts);
	json_object_set_new(o, "ended", ended_forwards_json());
	/* ENSURE_ASCII: jansson escapes C0 controls but not C1 (U+0080-009F),
	 * and this text is printed to terminals by `status --format json`. */
	txt = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15) |
	                        JSON_ENSURE_ASCII);
	json_decref(o);
	if (txt == NULL)
		return NULL;
	/* json_dumps allocates with jansson's allocator: copy to ours. */
	char *out = xmalloc(strlen(txt) + 2);
	memcpy(out, txt, strlen(txt));
	out[strlen(txt)] = '\n';
	out[strlen(txt) + 1] = '\0';
	free(txt);
	return out;
}

static char *
control_handler(const char *cmd, void *arg)
{
	struct daemon *d = arg;

	if (strcmp(cmd, "status") == 0)
		return status_json_text(d);
	if (strcmp(cmd, "metrics") == 0)
		return metrics_text();
	return NULL;
}

/* ---- events stream: "events [--since-start] [--host NAME]" ---- */

static void
events_sink(void *arg, const char *line, size_t len)
{
	control_stream_send(arg, line, len);
}

static void
events_closed(void *arg)
{
	events_unsubscribe(arg);
}

static int
stream_handler(const char *cmd, struct control_stream *cs, void *arg)
{
	struct daemon *d = arg;
	char buf[128], *save = NULL, *tok;
	const char *host = NULL;
	int replay = 0, known = 0;
	struct ev_sub *sub;
	json_t *hello, *names;

	if (strncmp(cmd, "events", 6) != 0 || (cmd[6] != '\0' && cmd[6] != ' '))
		return 0;
	snprintf(buf, sizeof buf, "%s", cmd + 6);
	for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		if (strcmp(tok, "--since-start") == 0) {
			replay = 1;
		} else if (strcmp(tok, "--host") == 0 &&
		           (tok = strtok_r(NULL, " ", &save)) != NULL) {
			host = tok;
		} else {
			control_stream_close(cs, "usage: events [--since-start] [--host NAME]");
			return 1;
		}
	}
	names = json_array();
	for (size_t i = 0; i < d->n_hosts; i++) {
		json_array_append_new(names, json_string(host_name(d->hosts[i])));
		if (host != NULL && strcmp(host, host_name(d->hosts[i])) == 0)
			known = 1;
	}
	if (host != NULL && !known) {
		char why[200];
		json_decref(names);
		snprintf(why, sizeof why, "no host named '%.100s' in this daemon", host);
		control_stream_close(cs, why);
		return 1;
	}
	sub = events_subscribe(host, events_sink, cs);
	control_stream_on_close(cs, events_closed, sub);
	hello =
	    json_pack("{s:s, s:s, s:o}", "type", "hello", "version", RDHPF_VERSION, "hosts", names);
	events_send_to(sub, hello);
	if (replay) {
		for (size_t i = 0; i < d->n_hosts; i++)
			host_events_replay(d->hosts[i], sub);
		events_send_to(sub, json_pack("{s:s}", "type", "replay-end"));
	}
	return 1;
}

static void
close_cb_noop(uv_handle_t *h)
{
	(void)h;
}

static void
on_wake(void *arg, uint64_t gone_ms, const char *why)
{
	struct daemon *d = arg;
	char gone[32];

	if (d->stopping)
		return;
	snprintf(gone, sizeof gone, "%llu", (unsigned long long)gone_ms);
	log_kv(RDHPF_LOG_INFO, NULL, NULL,
	       "the loop did not run for a while; checking every host now", "gone_ms", gone,
	       "cause", why, NULL);
	metrics_counter_add(NULL, NULL, "loop_pauses_total", 1);
	for (size_t i = 0; i < d->n_hosts; i++)
		host_wake(d->hosts[i]);
}

static void
notify_cb(uv_timer_t *t)
{
	struct daemon *d = t->data;

	if (!d->stopping)
		notify_update(d->hosts, d->n_hosts);
}

/* Events come from inside host transitions (even mid-reload): only schedule. */
static void
notify_sink(void *arg, const char *line, size_t len)
{
	struct daemon *d = arg;

	(void)line;
	(void)len;
	if (!uv_is_active((uv_handle_t *)&d->t_notify))
		uv_timer_start(&d->t_notify, notify_cb, 0, 0);
}

static void
finish(struct daemon *d)
{
	wake_stop(&d->wake);
	if (d->notify_sub != NULL) {
		events_unsubscribe(d->notify_sub);
		d->notify_sub = NULL;
		uv_timer_stop(&d->t_notify);
		uv_close((uv_handle_t *)&d->t_notify, close_cb_noop);
	}
	notify_close();
	uv_timer_stop(&d->t_shutdown);
	uv_close((uv_handle_t *)&d->t_shutdown, close_cb_noop);
	uv_close((uv_handle_t *)&d->t_logflush, close_cb_noop);
	uv_close((uv_handle_t *)&d->sig_int, close_cb_noop);
	uv_close((uv_handle_t *)&d->sig_term, close_cb_noop);
	uv_close((uv_handle_t *)&d->sig_hup, close_cb_noop);
}

static void
shutdown_tick(uv_timer_t *t)
{
	struct daemon *d = t->data;
	uint64_t waited = uv_hrtime() / 1000000u - d->stop_started_ms;

	if (core_live_children() == 0) {
		finish(d);
		return;
	}
	if (waited >= SHUTDOWN_GRACE_MS) {
		log_kv(RDHPF_LOG_WARN, NULL, NULL, "children did not exit in time; killing them",
		       NULL);
		core_kill_children();
		uv_timer_start(&d->t_shutdown, shutdown_tick, 50, 0);
		d->stop_started_ms = uv_hrtime() / 1000000u - SHUTDOWN_GRACE_MS + 200;
	}
}

static void
begin_shutdown(struct daemon *d, const char *why)
{
	if (d->stopping)
		return;
	d->stopping = 1;
	notify_stopping();
	log_kv(RDHPF_LOG_INFO, NULL, NULL, "shutting down", "reason", why, NULL);
	control_stop(d->control);
	d->control = NULL;
	metrics_http_stop(d->mhttp);
	d->mhttp = NULL;
	for (size_t i = 0; i < d->n_hosts; i++) {
		host_stop(d->hosts[i], "shutdown");
		host_free(d->hosts[i]);
	}
	d->n_hosts = 0;
	d->stop_started_ms = uv_hrtime() / 1000000u;
	uv_timer_start(&d->t_shutdown, shutdown_tick, 0, 50);
}

/* Only the instance that holds the lock owns the runtime files: a refused
 * second instance must leave the running daemon's socket and pid file be. */
static void
remove_runtime_files(struct daemon *d)
{
	char sock[600];

	if (d->lockfd < 0)
		return;
	snprintf(sock, sizeof sock, "%s/control.sock", d->rundir);
	unlink(sock);
	unlink(d->lockpath);
	close(d->lockfd);
	d->lockfd = -1;
}

size_t
cfg_check_hosts(struct cfg *c, const struct plugin_set *ps, const char *rundir)
{
	size_t before = c->n_errors;

	for (size_t i = 0; i < c->n_hosts; i++) {
		const struct cfg_host *ch = &c->hosts[i];
		const struct plugin *tp = plugins_find(ps, RDHPF_KIND_TRANSPORT, ch->transport);
		const struct plugin *rp = plugins_find(ps, RDHPF_KIND_RUNTIME, ch->runtime);
		char err[768], label[96];
		struct host *h;

		if (tp == NULL || rp == NULL)
			continue; /* cfg_check_plugins said so */
		h = host_new(ch, tp, rp, rundir, err, sizeof err);
		if (h == NULL) {
			snprintf(label, sizeof label, "host \"%s\"", ch->name);
			cfg_add_error(c, ch->line, label, NULL, "%s", err);
		} else {
			host_free(h);
		}
	}
	return c->n_errors - before;
}

static struct host *
start_host(struct daemon *d, const struct cfg_host *ch)
{
	char err[768];
	const struct plugin *tp = plugins_find(&d->plugins, RDHPF_KIND_TRANSPORT, ch->transport);
	const struct plugin *rp = plugins_find(&d->plugins, RDHPF_KIND_RUNTIME, ch->runtime);
	struct host *h = host_new(ch, tp, rp, d->rundir, err, sizeof err);

	if (h == NULL) {
		log_kv(RDHPF_LOG_ERROR, ch->name, NULL, "host not started", "err", err, NULL);
		return NULL;
	}
	host_start(h);
	return h;
}

/* Load the plugins c's hosts use, and no other: an openssh-only daemon maps
 * neither libssh nor libssh2 nor the libcrypto they bring.  On reload, the
 * ones the new config adds join those loaded. */
static int
load_used_plugins(const struct cfg *c, struct plugin_set *set)
{
	struct plugin_want *w = xcalloc(2 * c->n_hosts + 1, sizeof *w);
	size_t n = 0;
	int r;

	for (size_t i = 0; i < c->n_hosts; i++) {
		w[n++] = (struct plugin_want){RDHPF_KIND_TRANSPORT, c->hosts[i].transport};
		w[n++] = (struct plugin_want){RDHPF_KIND_RUNTIME, c->hosts[i].runtime};
	}
	r = plugins_load_wanted(set->dir != NULL ? set->dir : plugin_dir_choose(c), &core_host_api,
	                        set, w, n);
	free(w);
	return r;
}

static void report_refused(const struct plugin_set *ps);

static void
reload(struct daemon *d)
{
	struct cfg nc;
	struct host **nh;
	size_t n = 0, added = 0, removed = 0, changed = 0, kept = 0;
	char nb[4][24];

	if (d->config_file[0] == '\0') {
		log_kv_each(
		    RDHPF_LOG_WARN, NULL, NULL,
		    "SIGHUP: running from --host or DOCKER_HOST, not a config file; nothing to "
		    "reload",
		    NULL);
		return;
	}
	/* A plugin the new config names and the directory lacks is refused
	 * by cfg_check_plugins_v as unknown. */
	if (cfg_parse_file(d->config_file, &nc) == 0) {
		if (load_used_plugins(&nc, &d->plugins) != 0)
			log_kv_each(RDHPF_LOG_ERROR, NULL, NULL, "cannot load plugins", "err",
			            d->plugins.dir_error, NULL);
		report_refused(&d->plugins);
		if (cfg_check_plugins_v(&nc, plugins_lookup_options, plugins_validate_option,
		                        &d->plugins) == 0)
			cfg_check_hosts(&nc, &d->plugins, d->rundir);
	}
	if (nc.n_errors > 0) {
		for (size_t i = 0; i < nc.n_errors; i++)
			log_kv_each(RDHPF_LOG_ERROR, NULL, NULL, "config error", "err",
			            nc.errors[i].text, NULL);
		log_kv_each(RDHPF_LOG_ERROR, NULL, NULL, "reload refused; the running config stays",
		            "file", d->config_file, NULL);
		cfg_free(&nc);
		return;
	}
	if ((nc.plugin_dir == NULL) != (d->cfg.plugin_dir == NULL) ||
	    (nc.plugin_dir && strcmp(nc.plugin_dir, d->cfg.plugin_dir) != 0) ||
	    (nc.runtime_dir == NULL) != (d->cfg.runtime_dir == NULL) ||
	    (nc.runtime_dir && strcmp(nc.runtime_dir, d->cfg.runtime_dir) != 0))
		log_kv_each(RDHPF_LOG_WARN, NULL, NULL,
		            "plugin_dir and runtime_dir changes take effect at the next start",
		            NULL);
	apply_log_settings(&nc, d->opts->log_format, d->opts->log_level);
	nh = xcalloc(nc.n_hosts + 1, sizeof *nh);
	for (size_t i = 0; i < nc.n_hosts; i++) {
		struct host *old = NULL;
		for (size_t k = 0; k < d->n_hosts; k++) {
			if (d->hosts[k] != NULL &&
			    strcmp(host_name(d->hosts[k]), nc.hosts[i].name) == 0) {
				old = d->hosts[k];
				d->hosts[k] = NULL;
				break;
			}
		}
		if (old != NULL && cfg_host_same(host_cfg(old), &nc.hosts[i])) {
			nh[n++] = old;
			kept++;
			continue;
		}
		if (old != NULL) {
			log_kv(RDHPF_LOG_INFO, nc.hosts[i].name, NULL,
			       "host changed; restarting it", NULL);
			host_stop(old, "host changed");
			host_free(old);
			changed++;
		} else {
			log_kv(RDHPF_LOG_INFO, nc.hosts[i].name, NULL, "host added", NULL);
			added++;
		}
		struct host *h = start_host(d, &nc.hosts[i]);
		if (h != NULL)
			nh[n++] = h;
	}
	for (size_t k = 0; k < d->n_hosts; k++) {
		if (d->hosts[k] == NULL)
			continue;
		log_kv(RDHPF_LOG_INFO, host_name(d->hosts[k]), NULL, "host removed", NULL);
		host_stop(d->hosts[k], "host removed");
		host_free(d->hosts[k]);
		removed++;
	}
	free(d->hosts);
	d->hosts = nh;
	d->n_hosts = n;
	cfg_free(&d->cfg);
	d->cfg = nc;
	snprintf(nb[0], sizeof nb[0], "%zu", added);
	snprintf(nb[1], sizeof nb[1], "%zu", removed);
	snprintf(nb[2], sizeof nb[2], "%zu", changed);
	snprintf(nb[3], sizeof nb[3], "%zu", kept);
	log_kv(RDHPF_LOG_INFO, NULL, NULL, "config reloaded", "added", nb[0], "removed", nb[1],
	       "changed", nb[2], "unchanged", nb[3], NULL);
}

static void
on_signal(uv_signal_t *s, int signum)
{
	struct daemon *d = s->data;

	if (signum == SIGHUP) {
		if (!d->stopping)
			reload(d);
		return;
	}
	if (d->stopping && signum == SIGINT) {
		/* Second ^C: leave now, still cleaning up what is ours. */
		core_kill_children();
		remove_runtime_files(d);
		log_flush_repeats(1);
		_exit(130);
	}
	begin_shutdown(d, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static void
logflush_cb(uv_timer_t *t)
{
	(void)t;
	log_flush_repeats(0);
}

static void
report_refused(const struct plugin_set *ps)
{
	for (size_t i = 0; i < ps->n_refused; i++)
		log_kv_each(RDHPF_LOG_WARN, NULL, NULL, "plugin refused", "path",
		            ps->refused[i].path, "why", ps->refused[i].why, NULL);
}

/* Every forward costs a listening socket (libssh2: in rdhpf; openssh: in
 * the ssh master, which inherits the limit) and each connection through it
 * one or two more, so the soft limit (often 1024) is the first wall a
 * thousand forwards hit.  Raise it to the hard limit and say what it is,
 * so that running out is a number in the log, not a silent failure. */
static void
fd_limit_raise(void)
{
	struct rlimit rl;
	char cur[24], was[24];

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	snprintf(was, sizeof was, "%llu", (unsigned long long)rl.rlim_cur);
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t want = rl.rlim_max;
		if (want == RLIM_INFINITY || want > (rlim_t)1 << 20)
			want = (rlim_t)1 << 20; /* a sane bound for fd tables */
		if (want > rl.rlim_cur) {
			rl.rlim_cur = want;
			if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
				getrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	snprintf(cur, sizeof cur, "%llu", (unsigned long long)rl.rlim_cur);
	log_kv(RDHPF_LOG_INFO, NULL, NULL, "file descriptor limit", "nofile", cur, "was",
	       strcmp(cur, was) != 0 ? was : NULL, NULL);
}

int
daemon_run(const struct run_opts *o)
{
	struct daemon d;
	char err[768];
	int rc = 0;
	size_t started = 0;

	memset(&d, 0, sizeof d);
	d.lockfd = -1;
	d.opts = o;
	g_daemon = &d;
	if (o->host_url == NULL) {
		if (o->config_path != NULL)
			snprintf(d.config_file, sizeof d.config_file, "%s", o->config_path);
		else if (access(config_default_path(d.config_file, sizeof d.config_file), F_OK) !=
		         0)
			d.config_file[0] = '\0';
	}
	if (config_load(o->config_path, o->host_url, &d.cfg) != 0) {
		cfg_print_errors(&d.cfg, stderr);
		cfg_free(&d.cfg);
		return 2;
	}
	apply_log_settings(&d.cfg, o->log_format, o->log_level);
	fd_limit_raise();
	if (load_used_plugins(&d.cfg, &d.plugins) != 0) {
		log_kv(RDHPF_LOG_ERROR, NULL, NULL, "cannot load plugins", "err",
		       d.plugins.dir_error, NULL);
		rc = 2;
		goto out;
	}
	report_refused(&d.plugins);
	if (cfg_check_plugins_v(&d.cfg, plugins_lookup_options, plugins_validate_option,
	                        &d.plugins) != 0) {
		cfg_print_errors(&d.cfg, stderr);
		rc = 2;
		goto out;
	}
	if (runtime_dir_prepare(o->runtime_dir ? o->runtime_dir : d.cfg.runtime_dir, d.rundir,
	                        sizeof d.rundir, err, sizeof err) != 0 ||
	    lock_instance(&d, err, sizeof err) != 0) {
		log_kv(RDHPF_LOG_ERROR, NULL, NULL, err, NULL);
		rc = 1;
		goto out;
	}
	/* Every value a plugin refuses is refused now, before any host starts,
	 * as check-config refuses it. */
	if (cfg_check_hosts(&d.cfg, &d.plugins, d.rundir) != 0) {
		cfg_print_errors(&d.cfg, stderr);
		rc = 2;
		goto out;
	}

	d.started_wall = (int64_t)time(NULL);
	d.control = control_start(d.rundir, control_handler, &d, err, sizeof err);
	if (d.control != NULL)
		control_set_stream(d.control, stream_handler);
	if (d.control == NULL)
		log_kv(RDHPF_LOG_WARN, NULL, NULL,
		       "no control socket; status and metrics unavailable", "err", err, NULL);
	if (d.cfg.metrics_listen != NULL) {
		d.mhttp = metrics_http_start(d.cfg.metrics_listen, err, sizeof err);
		if (d.mhttp == NULL)
			log_kv(RDHPF_LOG_ERROR, NULL, NULL, "metrics over HTTP unavailable", "err",
			       err, NULL);
	}
	uv_signal_init(core_loop(), &d.sig_int);
	uv_signal_init(core_loop(), &d.sig_term);
	uv_signal_init(core_loop(), &d.sig_hup);
	d.sig_int.data = d.sig_term.data = d.sig_hup.data = &d;
	uv_signal_start(&d.sig_int, on_signal, SIGINT);
	uv_signal_start(&d.sig_term, on_signal, SIGTERM);
	uv_signal_start(&d.sig_hup, on_signal, SIGHUP);
	signal(SIGPIPE, SIG_IGN);
	uv_timer_init(core_loop(), &d.t_logflush);
	uv_timer_init(core_loop(), &d.t_shutdown);
	d.t_shutdown.data = &d;
	/* Summaries of collapsed failures are due every 10 min at most. */
	uv_timer_start(&d.t_logflush, logflush_cb, 30000, 30000);
	uv_unref((uv_handle_t *)&d.t_logflush);

	log_kv(RDHPF_LOG_INFO, NULL, NULL, "rdhpf started", "version", RDHPF_VERSION, "runtime_dir",
	       d.rundir, "plugin_dir", d.plugins.dir, NULL);
	d.hosts = xcalloc(d.cfg.n_hosts ? d.cfg.n_hosts : 1, sizeof *d.hosts);
	for (size_t i = 0; i < d.cfg.n_hosts; i++) {
		struct host *h = start_host(&d, &d.cfg.hosts[i]);
		if (h != NULL) {
			d.hosts[d.n_hosts++] = h;
			started++;
		}
	}
	if (started == 0)
		log_kv(RDHPF_LOG_WARN, NULL, NULL, "no host could be started; waiting for a signal",
		       NULL);
	wake_start(&d.wake, core_loop(), WAKE_THRESHOLD_MS, on_wake, &d);
	if (notify_init()) {
		uv_timer_init(core_loop(), &d.t_notify);
		d.t_notify.data = &d;
		d.notify_sub = events_subscribe(NULL, notify_sink, &d);
		notify_update(d.hosts, d.n_hosts); /* no hosts: ready at once */
	}
	uv_run(core_loop(), UV_RUN_DEFAULT);
	log_flush_repeats(1);
	log_kv(RDHPF_LOG_INFO, NULL, NULL, "stopped", NULL);
out:
	remove_runtime_files(&d);
	free(d.hosts);
	plugins_unload(&d.plugins);
	cfg_free(&d.cfg);
	metrics_free();
	/* Handles closed on the way out (hosts checked at startup) finish. */
	uv_run(core_loop(), UV_RUN_NOWAIT);
	uv_loop_close(core_loop());
	g_daemon = NULL;
	return rc;
}

const char *
config_default_path(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");

	if (xdg != NULL && *xdg == '/')
		snprintf(buf, len, "%s/rdhpf/config.ini", xdg);
	else
		snprintf(buf, len, "%s/.config/rdhpf/config.ini", home ? home : "");
	return buf;
}

int
config_load(const char *path, const char *host_url, struct cfg *c)
{
	char def[512];
	const char *dh;

	memset(c, 0, sizeof *c);
	if (host_url != NULL)
		return cfg_from_url(host_url, "--host", c);
	if (path != NULL)
		return cfg_parse_file(path, c);
	config_default_path(def, sizeof def);
	if (access(def, F_OK) == 0)
		return cfg_parse_file(def, c);
	dh = getenv("DOCKER_HOST");
	if (dh != NULL && strncmp(dh, "ssh://", 6) == 0)
		return cfg_from_url(dh, "DOCKER_HOST", c);
	cfg_add_error(
	    c, 0, NULL, NULL,
	    "no hosts: pass --host ssh://USER@HOST, write %s, or set DOCKER_HOST=ssh://…%s%s", def,
	    dh ? " (DOCKER_HOST is " : "", dh ? "not an ssh:// URL)" : "");
	return -1;
}

void
cfg_print_errors(const struct cfg *c, FILE *out)
{
	for (size_t i = 0; i < c->n_errors; i++)
		fprintf(out, "%s\n", c->errors[i].text);
}

void
apply_log_settings(const struct cfg *c, int fmt, int level)
{
	if (fmt < 0 && c->log_format != NULL)
		fmt = strcmp(c->log_format, "json") == 0 ? LOG_JSON : LOG_LOGFMT;
	if (fmt >= 0)
		log_set_format((enum log_format)fmt);
	if (level < 0 && c->log_level != NULL)
		level = log_level_parse(c->log_level);
	if (level >= 0)
		log_set_level(level);
}
