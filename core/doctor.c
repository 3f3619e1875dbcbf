/* `rdhpf doctor`: run each check in order, one line per check, each failure
 * with a fix.  It drives the same plugins the daemon would, on its own loop,
 * so what it finds is what the daemon meets.  Blocking is fine here: this is
 * a command, not the daemon. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "control.h"
#include "core.h"
#include "log.h"
#include "util.h"

enum verdict { V_OK, V_FAIL, V_WARN, V_SKIP, V_INFO };

struct doc {
	int failed;
	struct cfg cfg;
	struct plugin_set ps;
	const struct cfg_host *h;
	const struct plugin *tp, *rp;
	struct rdhpf_ctx *tctx, *rctx;
	struct rdhpf_host_params *thp, *rhp;
	struct pinst *ts, *rs;
	int connected;
	char rundir[512];
};

static void say(struct doc *d, enum verdict v, const char *check, const char *fix, const char *fmt,
                ...) __attribute__((format(printf, 5, 6)));

static void
say(struct doc *d, enum verdict v, const char *check, const char *fix, const char *fmt, ...)
{
	static const char *tag[] = {"[ ok ]", "[FAIL]", "[warn]", "[skip]", "[info]"};
	va_list ap;

	char text[2048];

	/* Details quote the remote's errors and the config: escaped for the
	 * terminal. */
	printf("%s %-22s ", tag[v], check);
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	term_fputs(text, stdout);
	printf("\n");
	if (fix != NULL && (v == V_FAIL || v == V_WARN || v == V_INFO))
		printf("       fix: %s\n", fix);
	if (v == V_FAIL)
		d->failed++;
	fflush(stdout);
}

static uint64_t
mono_ms(void)
{
	return uv_hrtime() / 1000000u;
}

static void
wake(uv_timer_t *t)
{
	(void)t;
}

static int
run_until(const int *flag, uint64_t ms)
{
	uv_timer_t t;
	uint64_t end = mono_ms() + ms;

	uv_timer_init(core_loop(), &t);
	uv_timer_start(&t, wake, 20, 20);
	while (!*flag && mono_ms() < end)
		uv_run(core_loop(), UV_RUN_ONCE);
	uv_timer_stop(&t);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(core_loop(), UV_RUN_NOWAIT);
	return *flag;
}

struct done {
	int called;
	int status;
	char detail[1024];
};

static void
done_cb(void *arg, int status, const char *detail)
{
	struct done *x = arg;
	x->called = 1;
	x->status = status;
	snprintf(x->detail, sizeof x->detail, "%s", detail ? detail : "");
}

/* ---- checks ---- */

static int
check_config(struct doc *d, const struct run_opts *o, const char *sel)
{
	const char *url = o->host_url;

	if (url == NULL && sel != NULL && strncmp(sel, "ssh://", 6) == 0)
		url = sel;
	config_load(o->config_path, url, &d->cfg);
	if (d->cfg.n_errors > 0) {
		say(d, V_FAIL, "config valid",
		    "correct the lines above (rdhpf check-config shows them)", "%zu error%s",
		    d->cfg.n_errors, d->cfg.n_errors == 1 ? "" : "s");
		for (size_t i = 0; i < d->cfg.n_errors; i++)
			printf("       %s\n", d->cfg.errors[i].text);
		return -1;
	}
	for (size_t i = 0; i < d->cfg.n_hosts; i++) {
		if (sel == NULL || url == sel || strcmp(d->cfg.hosts[i].name, sel) == 0) {
			d->h = &d->cfg.hosts[i];
			break;
		}
	}
	if (d->h == NULL) {
		say(d, V_FAIL, "config valid", "name a host of the config, or give --host ssh://…",
		    "no host '%s' in %s", sel ? sel : "?",
		    d->cfg.path ? d->cfg.path : "the config");
		return -1;
	}
	say(d, V_OK, "config valid", NULL, "%s: host %s, %s over %s",
	    d->cfg.path ? d->cfg.path : "-", d->h->name, d->h->runtime, d->h->transport);
	return 0;
}

static int
check_plugins(struct doc *d)
{
	const char *dir = plugin_dir_choose(&d->cfg);

	if (plugins_load_dir(dir, &core_host_api, &d->ps) != 0) {
		say(d, V_FAIL, "plugins load",
		    "install rdhpf's plugins, or point plugin_dir= at them", "%s", d->ps.dir_error);
		return -1;
	}
	d->tp = plugins_find(&d->ps, RDHPF_KIND_TRANSPORT, d->h->transport);
	d->rp = plugins_find(&d->ps, RDHPF_KIND_RUNTIME, d->h->runtime);
	if (d->tp == NULL || d->rp == NULL) {
		say(d, V_FAIL, "plugins load",
		    "rdhpf plugins lists what is there and why files were refused",
		    "%s plugin '%s' not found in %s", d->tp == NULL ? "transport" : "runtime",
		    d->tp == NULL ? d->h->transport : d->h->runtime, dir);
		return -1;
	}
	if (cfg_check_plugins_v(&d->cfg, plugins_lookup_options, plugins_validate_option, &d->ps) >
	    0) {
		say(d, V_FAIL, "plugins load", "correct the keys named above",
		    "plugin options rejected");
		for (size_t i = 0; i < d->cfg.n_errors; i++)
			printf("       %s\n", d->cfg.errors[i].text);
		return -1;
	}
	say(d, V_OK, "plugins load", NULL, "transport %s %s, runtime %s %s", d->tp->info->name,
	    d->tp->info->version, d->rp->info->name, d->rp->info->version);
	return 0;
}

static void
waitpid_quiet(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
}

/* ssh -G tells where an ssh_config alias really goes. */
static void
ssh_resolve(const char *host, char *name, size_t nlen, char *port, size_t plen, int *jump)
{
	char line[512];
	FILE *fp;
	int fds[2];
	pid_t pid;

	*jump = 0;
	if (pipe(fds) != 0)
		return;
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		int nul = open("/dev/null", O_WRONLY);
		if (nul >= 0)
			dup2(nul, 2);
		execlp("ssh", "ssh", "-G", "--", host, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	fp = fdopen(fds[0], "r");
	if (fp == NULL) {
		close(fds[0]);
		return;
	}
	while (fgets(line, sizeof line, fp)) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "hostname ", 9) == 0)
			str_copy(name, line + 9, nlen);
		else if (strncmp(line, "port ", 5) == 0 && port[0] == '\0')
			str_copy(port, line + 5, plen);
		else if (strncmp(line, "proxyjump ", 10) == 0 ||
		         strncmp(line, "proxycommand ", 13) == 0)
			*jump = 1;
	}
	fclose(fp);
	if (pid > 0)
		waitpid_quiet(pid);
}

static int
check_tcp(struct doc *d)
{
	char name[256], port[16] = "";
	struct addrinfo hints, *res = NULL;
	int jump = 0, r, fd = -1, ok = 0;
	uint64_t t0;
	char why[256] = "";

	snprintf(name, sizeof name, "%s", d->h->u.host);
	if (d->h->u.port)
		snprintf(port, sizeof port, "%u", d->h->u.port);
	if (strcmp(d->tp->info->name, "openssh") == 0)
		ssh_resolve(d->h->u.host, name, sizeof name, port, sizeof port, &jump);
	if (port[0] == '\0')
		snprintf(port, sizeof port, "22");
	if (jump) {
		say(d, V_SKIP, "TCP reach", NULL,
		    "%s goes through ProxyJump/ProxyCommand (ssh_config)", d->h->u.host);
		return 0;
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	r = getaddrinfo(name, port, &hints, &res);
	if (r != 0) {
		say(d, V_FAIL, "TCP reach", "check the host name in url= (and ssh_config), and DNS",
		    "cannot resolve %s: %s", name, gai_strerror(r));
		return -1;
	}
	t0 = uv_hrtime();
	for (struct addrinfo *a = res; a && !ok; a = a->ai_next) {
		struct pollfd pfd;
		int err = 0;
		socklen_t el = sizeof err;
		fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		            a->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
			snprintf(why, sizeof why, "%s", strerror(errno));
			close(fd);
			continue;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, (int)d->h->pol.connect_timeout_ms) <= 0) {
			snprintf(why, sizeof why, "no answer within %llu ms",
			         (unsigned long long)d->h->pol.connect_timeout_ms);
		} else {
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
			if (err == 0)
				ok = 1;
			else
				snprintf(why, sizeof why, "%s", strerror(err));
		}
		close(fd);
	}
	freeaddrinfo(res);
	if (!ok) {
		say(d, V_FAIL, "TCP reach",
		    "is sshd running and reachable on that port? check firewalls and the port in "
		    "url=",
		    "%s port %s: %s", name, port, why);
		return -1;
	}
	say(d, V_OK, "TCP reach", NULL, "%s port %s (%.1f ms)", name, port,
	    (double)(uv_hrtime() - t0) / 1e6);
	return 0;
}

static int
check_ssh(struct doc *d)
{
	struct done x = {0};
	char err[512] = "";
	int r;

	d->tctx = ctx_new(NULL, d->h->name, d->tp, d->h);
	d->thp = host_params_new(d->h, d->tp, d->rundir);
	d->ts = tp_create(d->tp, d->tctx, d->thp, &r, err, sizeof err);
	if (d->ts == NULL) {
		say(d, V_FAIL, "host key", "correct the transport's options", "transport: %s", err);
		return -1;
	}
	r = tp_connect(d->ts, done_cb, &x);
	if (r == RDHPF_OK)
		run_until(&x.called, d->h->pol.connect_timeout_ms + 3000);
	else
		x.status = r;
	if (r == RDHPF_OK && !x.called)
		x.status = RDHPF_ERR_TIMEOUT, snprintf(x.detail, sizeof x.detail, "no answer");
	if (x.status == RDHPF_ERR_HOSTKEY) {
		say(d, V_FAIL, "host key known",
		    "the server's key is unknown or changed: verify it out of band, then fix "
		    "known_hosts "
		    "(ssh-keygen -R HOST; add the right key). rdhpf never accepts a key by itself",
		    "%s", x.detail);
		say(d, V_SKIP, "auth", NULL, "needs a trusted host key first");
		return -1;
	}
	if (x.status == RDHPF_ERR_AUTH) {
		say(d, V_OK, "host key known", NULL, "matches known_hosts");
		say(d, V_FAIL, "auth",
		    "load the key into ssh-agent or set identity_file=; check authorized_keys "
		    "on the server (an RSA key needs rsa-sha2 support on both sides)",
		    "%s", x.detail);
		return -1;
	}
	if (x.status != RDHPF_OK) {
		say(d, V_FAIL, "host key known", "see the detail; rdhpf doctor after fixing",
		    "SSH handshake did not complete: %s", x.detail);
		say(d, V_SKIP, "auth", NULL, "needs a completed handshake");
		return -1;
	}
	d->connected = 1;
	say(d, V_OK, "host key known", NULL, "matches %s",
	    d->h->known_hosts ? d->h->known_hosts : "the user's known_hosts");
	say(d, V_OK, "auth", NULL, "logged in%s%s", d->h->u.user[0] ? " as " : "", d->h->u.user);
	return 0;
}

static void
check_controlpath(struct doc *d)
{
	/* The master binds PATH plus a 17-byte suffix; macOS allows 104. */
	size_t len = strlen(d->rundir) + strlen("/m-0123456789abcdef.sock") + 17;

	if (strcmp(d->tp->info->name, "openssh") != 0) {
		say(d, V_SKIP, "ControlPath length", NULL, "transport %s has no control socket",
		    d->tp->info->name);
		return;
	}
	if (len >= 104)
		say(d, V_FAIL, "ControlPath length",
		    "set runtime_dir= (or XDG_RUNTIME_DIR) to a shorter path",
		    "%zu bytes with the master's temporary suffix; the limit is 104", len);
	else
		say(d, V_OK, "ControlPath length", NULL, "%zu of 104 bytes (%s)", len, d->rundir);
}

struct list_res {
	int called;
	int status;
	size_t n;
	char detail[512];
};

static void
list_cb(void *arg, int status, const char *detail, struct rdhpf_container *const *cs, size_t n)
{
	struct list_res *l = arg;
	(void)cs;
	l->called = 1;
	l->status = status;
	l->n = n;
	snprintf(l->detail, sizeof l->detail, "%s", detail ? detail : "");
}

struct watch_res {
	int established;
	int ended;
	size_t events;
	char detail[512];
};

static void
w_established(void *arg)
{
	struct watch_res *w = arg;
	w->established = 1;
}

static void
w_event(void *arg, int type, int64_t time_ns, struct rdhpf_container *c)
{
	struct watch_res *w = arg;
	(void)type;
	(void)time_ns;
	(void)c;
	w->events++;
}

static void
w_end(void *arg, int status, const char *detail)
{
	struct watch_res *w = arg;
	w->ended = 1;
	snprintf(w->detail, sizeof w->detail, "%s (%d)", detail ? detail : "stream ended", status);
}

static int
check_engine(struct doc *d)
{
	static const struct rdhpf_watch_cbs wcbs = {
	    RDHPF_INIT(rdhpf_watch_cbs),
	    .on_established = w_established,
	    .on_event = w_event,
	    .on_end = w_end,
	};
	int r;
	struct list_res l = {0};
	struct watch_res w = {0};
	char err[512] = "";
	int never = 0;
	const char *fix_engine =
	    d->rp->info->name[0] == 'p'
	        ? "is podman installed for the remote user? try: ssh HOST podman ps"
	        : "is dockerd running on the remote, and may the user use it? "
	          "try: ssh HOST docker info";

	d->rctx = ctx_new(NULL, d->h->name, d->rp, d->h);
	d->rctx->tpi = d->ts;
	d->rctx->tctx = d->tctx;
	d->rhp = host_params_new(d->h, d->rp, d->rundir);
	d->rs = rt_create(d->rp, d->rctx, d->rhp, &r, err, sizeof err);
	if (d->rs == NULL) {
		say(d, V_FAIL, "engine answers", "correct the runtime's options", "runtime: %s",
		    err);
		return -1;
	}
	if (rt_list(d->rs, list_cb, &l) == RDHPF_OK)
		run_until(&l.called, 15000);
	if (!l.called || l.status != RDHPF_OK) {
		say(d, V_FAIL, "engine answers", fix_engine, "listing containers failed: %s",
		    l.called ? l.detail : "no answer in 15 s");
		say(d, V_SKIP, "event stream", NULL, "needs the engine");
		return -1;
	}
	say(d, V_OK, "engine answers", NULL, "%s: %zu running container%s", d->rp->info->name, l.n,
	    l.n == 1 ? "" : "s");
	if (!rt_has_events(d->rs)) {
		say(d, V_SKIP, "event stream", NULL, "%s is poll-only: listed every %llu ms",
		    d->rp->info->name, (unsigned long long)d->h->pol.poll_interval_ms);
		return 0;
	}
	if (rt_watch(d->rs, &wcbs, &w) != RDHPF_OK) {
		say(d, V_FAIL, "event stream", fix_engine, "could not open it");
		return -1;
	}
	run_until(&w.established, d->h->pol.connect_timeout_ms);
	if (!w.established) {
		rt_stop(d->rs);
		say(d, V_FAIL, "event stream", fix_engine, "%s",
		    w.ended ? w.detail : "the runtime did not confirm its event stream in time");
		return -1;
	}
	run_until(&never, 5000);
	if (w.ended) {
		say(d, V_FAIL, "event stream", fix_engine, "closed within 5 s: %s", w.detail);
		return -1;
	}
	rt_stop(d->rs);
	say(d, V_OK, "event stream", NULL, "open and stayed open 5 s (%zu event%s)", w.events,
	    w.events == 1 ? "" : "s");
	return 0;
}

struct exec_res {
	int closed;
	int code;
	char out[8192];
	size_t len;
};

static void
ex_data(void *arg, const char *buf, size_t len)
{
	struct exec_res *e = arg;
	size_t k = len < sizeof e->out - 1 - e->len ? len : sizeof e->out - 1 - e->len;
	memcpy(e->out + e->len, buf, k);
	e->len += k;
	e->out[e->len] = '\0';
}

static void
ex_close(void *arg, int status, int code, const char *detail)
{
	struct exec_res *e = arg;
	(void)status;
	(void)detail;
	e->closed = 1;
	e->code = code;
}

static void
check_keepalive(struct doc *d)
{
	static const struct rdhpf_stream_cbs cbs = {
	    RDHPF_INIT(rdhpf_stream_cbs),
	    .on_data = ex_data,
	    .on_close = ex_close,
	};
	const char *argv[] = {"sshd", "-T", NULL};
	const char *hint = "set ClientAliveInterval 15 and ClientAliveCountMax 3 in the server's "
	                   "sshd_config, so that it drops sessions of dead clients";
	struct exec_res e = {0};
	void *st = NULL;
	long interval = -1, count = -1;
	char *p;

	if (tp_exec(d->ts, argv, &cbs, &e, &st) == RDHPF_OK)
		run_until(&e.closed, 10000);
	if (!e.closed || e.code != 0) {
		say(d, V_INFO, "server keepalive", hint,
		    "cannot read `sshd -T` on the remote (it needs root there)");
		return;
	}
	if ((p = strstr(e.out, "clientaliveinterval ")) != NULL)
		interval = strtol(p + 20, NULL, 10);
	if ((p = strstr(e.out, "clientalivecountmax ")) != NULL)
		count = strtol(p + 20, NULL, 10);
	if (interval <= 0)
		say(d, V_WARN, "server keepalive", hint,
		    "ClientAliveInterval is 0: the server never probes dead clients (rdhpf's own "
		    "keepalive still detects dead links)");
	else
		say(d, V_OK, "server keepalive", NULL,
		    "ClientAliveInterval %ld, ClientAliveCountMax %ld", interval, count);
}

/* Which known failure does the running daemon's record match? */
static void
check_pattern(struct doc *d)
{
	char *txt = NULL, err[512];
	json_t *st, *h, *hh;
	size_t i;
	const char *state, *last;
	json_int_t link_failures, stream_failures, resyncs;

	if (control_request(d->rundir, "status", &txt, err, sizeof err) != 0) {
		say(d, V_INFO, "failure pattern", NULL,
		    "no running rdhpf to read diagnostics from");
		return;
	}
	st = json_loads(txt, 0, NULL);
	free(txt);
	h = NULL;
	json_array_foreach(json_object_get(st, "hosts"), i, hh)
	{
		if (strcmp(json_string_value(json_object_get(hh, "name")), d->h->name) == 0)
			h = hh;
	}
	if (h == NULL) {
		say(d, V_INFO, "failure pattern", NULL, "the running rdhpf does not serve host %s",
		    d->h->name);
		json_decref(st);
		return;
	}
	state = json_string_value(json_object_get(h, "state"));
	last = json_string_value(json_object_get(h, "last_error"));
	link_failures = json_integer_value(json_object_get(h, "link_failures"));
	stream_failures = json_integer_value(
	    json_object_get(json_object_get(h, "stream"), "consecutive_failures"));
	resyncs = json_integer_value(json_object_get(json_object_get(h, "stream"), "resyncs"));
	if (last != NULL &&
	    (strstr(last, "control socket") || strstr(last, "stale") || strstr(last, "master"))) {
		say(d, V_WARN, "failure pattern",
		    "rdhpf removes stale sockets and restarts its master by itself; "
		    "if it repeats, look for another ssh using the same ControlPath",
		    "stale master socket: %s", last);
	} else if (stream_failures > 0 && state != NULL &&
	           (strcmp(state, "syncing") == 0 || strcmp(state, "steady") == 0)) {
		say(d, V_WARN, "failure pattern",
		    "the link is fine but the engine is not answering: check "
		    "the engine on the remote (systemctl status docker)",
		    "engine hang or restart: %lld event stream failures in a row (%s)",
		    (long long)stream_failures, last ? last : "-");
	} else if (link_failures > 0 || (state && strcmp(state, "steady") != 0)) {
		say(d, V_WARN, "failure pattern",
		    "check the network path and the server; rdhpf reconnects "
		    "by itself and restores every forward",
		    "network interruption: %lld link failures (last: %s), state %s",
		    (long long)link_failures, last ? last : "-", state ? state : "?");
	} else {
		say(d, V_OK, "failure pattern", NULL, "healthy: state %s, %lld resyncs",
		    state ? state : "?", (long long)resyncs);
	}
	json_decref(st);
}

int
doctor_run(const struct run_opts *o, const char *sel)
{
	struct doc d;
	char err[768];

	memset(&d, 0, sizeof d);
	log_set_level(RDHPF_LOG_ERROR);
	if (check_config(&d, o, sel) != 0 || check_plugins(&d) != 0)
		goto out;
	if (runtime_dir_prepare(o->runtime_dir ? o->runtime_dir : d.cfg.runtime_dir, d.rundir,
	                        sizeof d.rundir, err, sizeof err) != 0) {
		say(&d, V_FAIL, "runtime directory",
		    "fix its owner and mode (0700), or set runtime_dir=", "%s", err);
		goto out;
	}
	if (check_tcp(&d) == 0 && check_ssh(&d) == 0) {
		check_controlpath(&d);
		if (check_engine(&d) == 0 || d.connected)
			check_keepalive(&d);
	} else {
		check_controlpath(&d);
		say(&d, V_SKIP, "engine answers", NULL, "needs an SSH connection");
		say(&d, V_SKIP, "event stream", NULL, "needs an SSH connection");
		say(&d, V_SKIP, "server keepalive", NULL, "needs an SSH connection");
	}
	check_pattern(&d);
out:
	rt_destroy(d.rs);
	tp_destroy(d.ts);
	ctx_free(d.rctx);
	ctx_free(d.tctx);
	host_params_free(d.thp);
	host_params_free(d.rhp);
	/* let children (an ssh master) exit */
	for (int i = 0; i < 60 && core_live_children() > 0; i++) {
		int never = 0;
		run_until(&never, 25);
	}
	core_kill_children();
	uv_run(core_loop(), UV_RUN_NOWAIT);
	plugins_unload(&d.ps);
	printf("%s\n", d.failed ? "doctor: some checks failed; each says how to fix it"
	                        : "doctor: all checks passed");
	cfg_free(&d.cfg);
	return d.failed ? 1 : 0;
}
