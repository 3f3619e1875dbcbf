/* transport-openssh: the ssh master process: its control path in the private runtime directory,
 * spawn, stderr, readiness, exit and stop. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ossh.h"

static void master_gone(struct oss *o, int code, int sig);

void
on_ready(struct oss *o, uint32_t type, uint32_t pid, const char *reason)
{
	char d[256];

	if (o->st != M_STARTING)
		return;
	if (type != MUX_S_ALIVE) {
		snprintf(d, sizeof d, "ssh master refused the alive check: %.200s", reason);
	} else if ((int)pid != o->pid) {
		/* Someone else's master answers on our path: ours runs without a
		 * control socket.  Never use it; never touch theirs. */
		snprintf(d, sizeof d,
		         "control socket %s is answered by pid %u, not by our ssh master (pid %d)",
		         o->ctl, pid, o->pid);
	} else {
		char ms[24];
		uint64_t took = H->now_ms(o->ctx) - o->connect_started_ms;
		struct rsdk_op *op = o->cop;

		o->st = M_UP;
		H->timer_stop(o->poll_t);
		H->timer_stop(o->deadline_t);
		o->poll_t = o->deadline_t = NULL;
		o->cop = NULL;
		lv_start(o);
		snprintf(ms, sizeof ms, "%llu", (unsigned long long)took);
		H->log(o->ctx, RDHPF_LOG_INFO, "ssh master connected", "dest", o->where, "pid",
		       (snprintf(d, sizeof d, "%d", o->pid), d), "took_ms", ms, NULL);
		H->observe(o->ctx, "ssh_master_connect_seconds", (double)took / 1000.0);
		op_answer(&op, RDHPF_OK, NULL);
		return;
	}
	{
		struct rsdk_op *op = o->cop;
		o->cop = NULL;
		H->log(o->ctx, RDHPF_LOG_ERROR, "ssh master unusable", "err", d, NULL);
		master_stop(o);
		op_answer(&op, RDHPF_ERR_GENERIC, d);
	}
}

/* Lines of a running master that name a limit: sshd refusing channels,
 * the master out of file descriptors.  Said at warn once per master (and
 * counted each time), not left in the debug log. */
static const struct {
	const char *needle, *what, *counter;
	unsigned bit;
} master_limits[] = {
    /* sshd's default reason when it refuses a session channel (past
     * MaxSessions), with its default text */
    {"open failed: connect failed: open failed",
     "sshd refused a session channel of this connection: likely its MaxSessions limit "
     "(default 10 per connection; forwards do not count)",
     "ssh_channels_refused_total", 1u},
    {"open failed: administratively prohibited",
     "sshd refused a forward as administratively prohibited: AllowTcpForwarding or PermitOpen",
     "ssh_channels_refused_total", 8u},
    {"open failed: resource shortage",
     "sshd refused a channel for lack of resources (file descriptors or memory on the "
     "remote)",
     "ssh_channels_refused_total", 2u},
    {"Too many open files",
     "the ssh master is out of file descriptors (RLIMIT_NOFILE): connections to its "
     "forwards are not accepted; raise the limit rdhpf runs with",
     "ssh_master_fd_exhausted_total", 4u},
};

static void
master_err_line(struct oss *o, const char *line)
{
	if (line[0] == '\0')
		return;
	for (size_t i = 0; i < sizeof master_limits / sizeof master_limits[0]; i++) {
		if (strstr(line, master_limits[i].needle) == NULL)
			continue;
		H->counter_add(o->ctx, master_limits[i].counter, 1);
		if (o->warned & master_limits[i].bit)
			break;
		o->warned |= master_limits[i].bit;
		H->log(o->ctx, RDHPF_LOG_WARN, master_limits[i].what, "dest", o->where, "ssh", line,
		       NULL);
		return;
	}
	/* Debug only: the failure's warn line already carries the line that
	 * matters, and info lines are never collapsed, so a host key banner
	 * per retry would grow the log without bound. */
	H->log(o->ctx, RDHPF_LOG_DEBUG, "ssh master says", "err", line, NULL);
}

static void
master_err_drain(struct oss *o)
{
	char buf[2048];

	if (o->err_fd < 0)
		return;
	for (;;) {
		ssize_t n = read(o->err_fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
				H->io_stop(o->err_io);
				o->err_io = NULL;
				close(o->err_fd);
				o->err_fd = -1;
			}
			return;
		}
		tail_add(o->tail, &o->tail_len, buf, (size_t)n);
		for (ssize_t i = 0; i < n; i++) {
			char c = buf[i];
			if (c == '\n') {
				o->line[o->line_len] = '\0';
				master_err_line(o, o->line);
				o->line_len = 0;
			} else if (c != '\r' && o->line_len + 1 < sizeof o->line) {
				o->line[o->line_len++] = (unsigned char)c < 0x20 ? '?' : c;
			}
		}
	}
}

static void
master_err_cb(void *arg, int fd, unsigned rev)
{
	(void)fd;
	(void)rev;
	master_err_drain(arg);
}

/* ssh exited while connecting: why, as a status and a detail naming the
 * host. */
static int
master_classify(struct oss *o, int code, int sig, char *d, size_t len)
{
	const char *t = o->tail;
	const char *kh = o->known_hosts ? o->known_hosts : "the user's known_hosts";
	char line[300];

	if (strstr(t, "IDENTIFICATION HAS CHANGED") ||
	    strstr(t, "has changed and you have requested")) {
		tail_pick(t, "Offending", line, sizeof line);
		snprintf(d, len,
		         "host key mismatch for %.120s: the key the server offers differs from the "
		         "one in %.200s "
		         "(the host was reinstalled, or someone is in between); not connecting "
		         "(ssh: %.200s)",
		         o->where, kh, line);
		return RDHPF_ERR_HOSTKEY;
	}
	if (strstr(t, "host key is known for") || strstr(t, "Host key verification failed")) {
		tail_pick(t, "host key", line, sizeof line);
		snprintf(d, len,
		         "host key for %.120s is not in %.200s and StrictHostKeyChecking=yes; "
		         "verify the key "
		         "and add it (ssh: %.200s)",
		         o->where, kh, line);
		return RDHPF_ERR_HOSTKEY;
	}
	if (strstr(t, "Permission denied") || strstr(t, "Too many authentication failures")) {
		tail_pick(t, "Permission denied", line, sizeof line);
		snprintf(d, len, "authentication refused by %.120s%s%.64s (ssh: %.200s)", o->where,
		         o->user ? " for user " : "", o->user ? o->user : "", line);
		return RDHPF_ERR_AUTH;
	}
	if (strstr(t, "kex_exchange_identification") != NULL) {
		/* sshd accepted the TCP connection and closed it before its
		 * banner: what it does past MaxStartups. */
		tail_pick(t, "kex_exchange_identification", line, sizeof line);
		snprintf(d, len,
		         "sshd at %.120s refused the connection before the handshake: likely its "
		         "MaxStartups limit on unauthenticated connections at once (default "
		         "10:30:100; sshd logs 'drop connection ... past MaxStartups'), or a "
		         "per-source limiter (PerSourcePenalties, a firewall) (ssh: %.200s)",
		         o->where, line);
		H->counter_add(o->ctx, "ssh_refused_before_banner_total", 1);
		return RDHPF_ERR_CONNECT;
	}
	if (strstr(t, "setpriv:") != NULL || (code == 127 && o->tail_len == 0)) {
		tail_pick(t, "setpriv:", line, sizeof line);
		snprintf(d, len, "could not run %.200s (%.200s)", o->ssh_bin,
		         o->tail_len ? line : "exit status 127");
		return RDHPF_ERR_IO;
	}
	if (strstr(t, "unix_listener") != NULL || strstr(t, "ControlSocket") != NULL) {
		tail_pick(t, NULL, line, sizeof line);
		snprintf(d, len, "ssh cannot create its control socket %.120s (%.200s)", o->ctl,
		         line);
		return RDHPF_ERR_IO;
	}
	if (strstr(t, "Bad configuration option") || strstr(t, "command-line line") ||
	    strstr(t, "Bad owner or permissions") || strstr(t, "Bad port") ||
	    strstr(t, "no argument after keyword")) {
		tail_pick(t, NULL, line, sizeof line);
		snprintf(d, len, "ssh refused its configuration for %.120s (ssh: %.200s)", o->where,
		         line);
		return RDHPF_ERR_INVAL;
	}
	tail_pick(t, NULL, line, sizeof line);
	if (sig != 0)
		snprintf(d, len, "ssh master for %.120s was killed by signal %d (ssh: %.200s)",
		         o->where, sig, line);
	else
		snprintf(d, len,
		         "cannot connect to %.120s: ssh exited with status %d (ssh: %.200s)",
		         o->where, code, line);
	return RDHPF_ERR_CONNECT;
}

static void
master_exit_cb(void *arg, int code, int sig)
{
	struct oss *o = arg;

	o->child = NULL;
	master_gone(o, code, sig);
}

/* The child is gone (reaped): clean up whatever it left, then tell whoever
 * waits. */
static void
master_gone(struct oss *o, int code, int sig)
{
	enum mstate was = o->st;
	char d[768], cs[16], ss[16];
	struct rsdk_op *op = o->cop;

	master_err_drain(o);
	if (o->line_len > 0) {
		o->line[o->line_len] = '\0';
		master_err_line(o, o->line);
		o->line_len = 0;
	}
	if (o->err_io)
		H->io_stop(o->err_io);
	if (o->err_fd >= 0)
		close(o->err_fd);
	o->err_io = NULL;
	o->err_fd = -1;
	stop_timer(&o->poll_t);
	stop_timer(&o->deadline_t);
	stop_timer(&o->kill_t);
	lv_stop(o);
	o->st = M_NONE;
	o->pid = 0;
	ctl_close(o, RDHPF_ERR_CLOSED, "ssh master exited", 1);
	ul_drop_all(o);
	/* kill -9 leaves the socket behind; nobody listens on it now. */
	if (unlink_if_stale(o->ctl))
		H->log(o->ctx, RDHPF_LOG_DEBUG, "removed the dead master's control socket", "path",
		       o->ctl, NULL);
	snprintf(cs, sizeof cs, "%d", code);
	snprintf(ss, sizeof ss, "%d", sig);

	if (was == M_STARTING) {
		int st = master_classify(o, code, sig, d, sizeof d);
		o->cop = NULL;
		H->log(o->ctx, RDHPF_LOG_WARN, "ssh master failed to connect", "dest", o->where,
		       "status", cs, "signal", ss, "err", d, NULL);
		op_answer(&op, st, d);
		return;
	}
	if (was == M_UP) {
		char line[300];
		tail_pick(o->tail, NULL, line, sizeof line);
		snprintf(d, sizeof d, "ssh master for %s exited (status %d, signal %d): %s",
		         o->where, code, sig, o->tail_len ? line : "no message");
		H->log(o->ctx, RDHPF_LOG_WARN, "ssh master exited", "dest", o->where, "status", cs,
		       "signal", ss, "err", d, NULL);
		H->counter_add(o->ctx, "ssh_master_exits_total", 1);
		H->report_down(o->ctx, RDHPF_ERR_CLOSED, d);
		return;
	}
	if (was == M_DYING && o->connect_queued) {
		char err[256];
		int r;
		o->connect_queued = 0;
		r = master_start(o, err, sizeof err);
		if (r != RDHPF_OK) {
			o->cop = NULL;
			op_answer(&op, r, err);
		}
	}
}

static void
kill_cb(void *arg)
{
	struct oss *o = arg;

	stop_timer(&o->kill_t);
	if (o->child == NULL)
		return;
	if (o->kill_stage == 0) {
		H->log(o->ctx, RDHPF_LOG_WARN, "ssh master did not exit on request; SIGTERM", NULL);
		H->child_kill(o->child, SIGTERM);
		o->kill_stage = 1;
		o->kill_t = H->timer_start(o->ctx, KILL_GRACE_MS, 0, kill_cb, o);
	} else {
		H->log(o->ctx, RDHPF_LOG_WARN, "ssh master ignored SIGTERM; SIGKILL", NULL);
		H->child_kill(o->child, SIGKILL);
	}
}

/* Ask the master to exit: mux terminate, then SIGTERM after a grace, then
 * SIGKILL.  Requests outstanding are dropped without callbacks (callers
 * decide what their callers hear). */
void
master_stop(struct oss *o)
{
	int sent = 0;

	stop_timer(&o->poll_t);
	stop_timer(&o->deadline_t);
	lv_stop(o);
	ul_drop_all(o);
	if (o->child == NULL) {
		o->st = M_NONE;
		return;
	}
	if (o->st == M_DYING)
		return;
	/* Requests in flight get their answer now (disconnect forgot their
	 * callers already). */
	ctl_drop_ops(o, RDHPF_ERR_CLOSED, "the ssh master is being stopped", 1);
	if (o->st == M_UP) {
		/* The connection stays open until the master is gone: it drops a
		 * terminate followed at once by EOF. */
		if (o->cc.fd >= 0 || ctl_open(o) == 0)
			sent = ctl_request(o, MOP_TERMINATE, MUX_C_TERMINATE, NULL, NULL) == 0;
	}
	if (!sent)
		H->child_kill(o->child, SIGTERM);
	o->kill_stage = sent ? 0 : 1;
	o->st = M_DYING;
	stop_timer(&o->kill_t);
	o->kill_t = H->timer_start(o->ctx, sent ? TERM_GRACE_MS : KILL_GRACE_MS, 0, kill_cb, o);
}

static void
poll_cb(void *arg)
{
	struct oss *o = arg;
	int r;

	if (o->st != M_STARTING || o->cc.fd >= 0)
		return;
	r = ctl_open(o);
	if (r == -ENOENT || r == -ECONNREFUSED || r == -EAGAIN)
		return; /* not listening yet */
	if (r == 0) {
		stop_timer(&o->poll_t);
		if (ctl_request(o, MOP_READY, MUX_C_ALIVE_CHECK, NULL, NULL) == 0)
			return;
		r = -EIO;
	}
	{
		char d[256];
		struct rsdk_op *op = o->cop;
		snprintf(d, sizeof d, "cannot use the control socket %s: %s", o->ctl, strerror(-r));
		o->cop = NULL;
		master_stop(o);
		op_answer(&op, RDHPF_ERR_IO, d);
	}
}

void
deadline_cb(void *arg)
{
	struct oss *o = arg;
	char d[640], line[300];
	struct rsdk_op *op = o->cop;

	stop_timer(&o->deadline_t);
	if (o->st != M_STARTING && o->st != M_DYING)
		return;
	master_err_drain(o);
	tail_pick(o->tail, NULL, line, sizeof line);
	snprintf(d, sizeof d, "ssh master for %.120s not ready within %llu ms (ssh: %.300s)",
	         o->where, (unsigned long long)o->connect_timeout_ms,
	         o->tail_len ? line : "no message");
	o->cop = NULL;
	o->connect_queued = 0;
	H->log(o->ctx, RDHPF_LOG_WARN, "ssh master connect timed out", "err", d, NULL);
	master_stop(o);
	op_answer(&op, RDHPF_ERR_TIMEOUT, d);
}

/* Pick the control path: our name if free or stale, else the next one.  A
 * live socket is another process's master (another rdhpf, or a user's
 * ssh): never touched, never used. */
static int
master_ctl_path(struct oss *o, char *err, size_t errlen)
{
	for (unsigned i = 0; i < CTL_CANDIDATES; i++) {
		char path[SUN_PATH_PORTABLE];
		struct stat st;

		if (i == 0)
			snprintf(path, sizeof path, "%s/m-%08x.sock", o->runtime_dir, o->hash);
		else
			snprintf(path, sizeof path, "%s/m-%08x-%u.sock", o->runtime_dir, o->hash,
			         i);
		if (lstat(path, &st) != 0) {
			if (errno != ENOENT)
				continue;
			snprintf(o->ctl, sizeof o->ctl, "%s", path);
			return 0;
		}
		if (!S_ISSOCK(st.st_mode)) {
			H->log(o->ctx, RDHPF_LOG_WARN,
			       "not a socket where a control socket goes; skipped", "path", path,
			       NULL);
			continue;
		}
		if (unlink_if_stale(path)) {
			H->log(o->ctx, RDHPF_LOG_INFO, "removed a stale control socket", "path",
			       path, NULL);
			snprintf(o->ctl, sizeof o->ctl, "%s", path);
			return 0;
		}
		H->log(o->ctx, RDHPF_LOG_WARN,
		       "control socket in use by another live process; leaving it alone", "path",
		       path, NULL);
	}
	snprintf(err, errlen, "no free control socket name in %s (all %d in use)", o->runtime_dir,
	         CTL_CANDIDATES);
	return -1;
}

/* ssh_config syntax for a path value: quoted, % escaped. */
int
cfg_quote_path(const char *in, char *out, size_t len)
{
	size_t k = 0;

	if (k + 1 >= len)
		return -1;
	out[k++] = '"';
	for (const char *p = in; *p; p++) {
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 ||
		    (p[0] == '$' && p[1] == '{'))
			return -1;
		if (*p == '%') {
			if (k + 2 >= len)
				return -1;
			out[k++] = '%';
		}
		if (k + 2 >= len)
			return -1;
		out[k++] = *p;
	}
	if (k + 2 > len)
		return -1;
	out[k++] = '"';
	out[k] = '\0';
	return 0;
}

int
master_start(struct oss *o, char *err, size_t errlen)
{
	const char *argv[64];
	size_t n = 0;
	char o_alive[48], o_count[48], o_ct[48], o_kh[QPATH_MAX + 40], kh[QPATH_MAX],
	    idf[QPATH_MAX], o_id[QPATH_MAX + 40], portb[8];
	struct rdhpf_spawn_opts so = {RDHPF_INIT(rdhpf_spawn_opts)};
	char serr[256];
	int efd = -1;

	if (master_ctl_path(o, err, errlen) != 0)
		return RDHPF_ERR_BUSY;
	if (o->setpriv[0]) {
		/* Linux: the master dies with us even if we are SIGKILLed. */
		argv[n++] = o->setpriv;
		argv[n++] = "--pdeathsig";
		argv[n++] = "TERM";
		argv[n++] = "--";
	}
	argv[n++] = o->ssh_bin;
	argv[n++] = "-M";
	argv[n++] = "-N";
	argv[n++] = "-S";
	argv[n++] = o->ctl;
	if (o->ssh_config) {
		argv[n++] = "-F";
		argv[n++] = o->ssh_config;
	}
	argv[n++] = "-o";
	argv[n++] = "ControlMaster=yes";
	argv[n++] = "-o";
	argv[n++] = "ControlPersist=no";
	argv[n++] = "-o";
	argv[n++] = "BatchMode=yes";
	argv[n++] = "-o";
	argv[n++] = "StrictHostKeyChecking=yes";
	argv[n++] = "-o";
	argv[n++] = "UpdateHostKeys=no";
	argv[n++] = "-o";
	argv[n++] = "ExitOnForwardFailure=no";
	argv[n++] = "-o";
	argv[n++] = "ClearAllForwardings=yes";
	argv[n++] = "-o";
	argv[n++] = "PermitLocalCommand=no";
	argv[n++] = "-o";
	argv[n++] = "StreamLocalBindMask=0177";
	/* Our error details come from ssh's messages: a LogLevel QUIET in
	 * ssh_config would hide a host key mismatch. */
	argv[n++] = "-o";
	argv[n++] = "LogLevel=INFO";
	snprintf(o_alive, sizeof o_alive, "ServerAliveInterval=%llu",
	         (unsigned long long)((o->keepalive_interval_ms + 999) / 1000));
	/* With the liveness probe, ServerAlive is the backstop, not a racer:
	 * two more misses, so that the probe's bound (interval × count + 1/2)
	 * is what finds a dead link, idle or loaded, every time. */
	snprintf(o_count, sizeof o_count, "ServerAliveCountMax=%u",
	         o->keepalive_count + (o->lv_never ? 0u : 2u));
	snprintf(o_ct, sizeof o_ct, "ConnectTimeout=%llu",
	         (unsigned long long)((o->connect_timeout_ms + 999) / 1000));
	argv[n++] = "-o";
	argv[n++] = o_alive;
	argv[n++] = "-o";
	argv[n++] = o_count;
	argv[n++] = "-o";
	argv[n++] = o_ct;
	if (o->known_hosts) {
		if (cfg_quote_path(o->known_hosts, kh, sizeof kh) != 0) {
			snprintf(err, errlen, "known_hosts path cannot be passed to ssh safely");
			return RDHPF_ERR_INVAL;
		}
		snprintf(o_kh, sizeof o_kh, "UserKnownHostsFile=%s", kh);
		argv[n++] = "-o";
		argv[n++] = o_kh;
	}
	if (o->identity) {
		/* As -o, not -i: -i drops a file whose name holds '%' (it stats
		 * the name before expanding it). */
		if (cfg_quote_path(o->identity, idf, sizeof idf) != 0) {
			snprintf(err, errlen, "identity_file path cannot be passed to ssh safely");
			return RDHPF_ERR_INVAL;
		}
		snprintf(o_id, sizeof o_id, "IdentityFile=%s", idf);
		argv[n++] = "-o";
		argv[n++] = o_id;
		argv[n++] = "-o";
		argv[n++] = "IdentitiesOnly=yes";
	}
	if (o->port) {
		snprintf(portb, sizeof portb, "%u", o->port);
		argv[n++] = "-p";
		argv[n++] = portb;
	}
	if (o->user) {
		argv[n++] = "-l";
		argv[n++] = o->user;
	}
	argv[n++] = "--";
	argv[n++] = o->hostname;
	argv[n] = NULL;

	so.argv = argv;
	so.stderr_fd = &efd;
	o->tail_len = 0;
	o->tail[0] = '\0';
	o->line_len = 0;
	o->warned = 0;
	o->child = H->spawn(o->ctx, &so, master_exit_cb, o, serr, sizeof serr);
	if (o->child == NULL) {
		snprintf(err, errlen, "cannot start ssh: %.200s", serr);
		return RDHPF_ERR_IO;
	}
	o->pid = H->child_pid(o->child);
	o->err_fd = efd;
	o->err_io = H->io_start(o->ctx, efd, RDHPF_IO_READ, master_err_cb, o);
	if (o->err_io == NULL) {
		/* Undrained, the pipe would stall ssh once full; closed, its
		 * writes just fail (ssh ignores SIGPIPE).  Only details are lost. */
		close(efd);
		o->err_fd = -1;
	}
	o->st = M_STARTING;
	o->kill_stage = 0;
	o->connect_started_ms = H->now_ms(o->ctx);
	o->poll_t = H->timer_start(o->ctx, POLL_MS, POLL_MS, poll_cb, o);
	if (o->deadline_t == NULL)
		o->deadline_t = H->timer_start(o->ctx, o->connect_timeout_ms, 0, deadline_cb, o);
	H->counter_add(o->ctx, "ssh_masters_started_total", 1);
	{
		char ps[16];
		snprintf(ps, sizeof ps, "%d", o->pid);
		H->log(o->ctx, RDHPF_LOG_INFO, "ssh master starting", "dest", o->where,
		       "control_path", o->ctl, "pid", ps, NULL);
	}
	return RDHPF_OK;
}
