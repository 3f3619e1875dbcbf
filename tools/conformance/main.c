/* rdhpf-conformance runtime|transport PLUGIN.so [options]: load one plugin
 * through the core's loader and check it against the ABI's contract, one
 * line per test (TAP-like), then a summary.  Exit 0 only when every test
 * ran and passed: a test that cannot run here is printed as `skip` with
 * the reason and fails the run unless --allow-skip. */
#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "conf.h"
#include "log.h"

extern char **environ;

struct conf_args g_args;
struct cfg g_cfg;
char g_rundir[256];
const struct plugin *g_plugin;
const struct plugin *g_transport;

static struct plugin_set g_ps, g_tps;
static struct plugin g_local;
static FILE *g_log;
static long g_log_off;

static const char usage[] =
    "usage: rdhpf-conformance runtime PLUGIN.so [--option K=V]... [--bad-option K=V]...\n"
    "                         [--expect-port N] [--start-cmd CMD] [--stop-cmd CMD]\n"
    "                         [--transport TRANSPORT.so] [--url ssh://...] [--identity FILE]\n"
    "                         [--known-hosts FILE] [--allow-skip] [-v]\n"
    "       rdhpf-conformance transport PLUGIN.so [--option K=V]... [--url ssh://...]\n"
    "                         [--identity FILE] [--known-hosts FILE]\n"
    "                         [--forward-remote HOST:PORT] [--allow-skip] [-v]\n"
    "\n"
    "  --option K=V       a plugin option of the test host (repeatable)\n"
    "  --bad-option K=V   a value the plugin must refuse, in validate_option and create\n"
    "  --expect-port N    a published TCP port the runtime reports (after --start-cmd)\n"
    "  --start-cmd CMD    local shell command that makes the port appear on the remote\n"
    "  --stop-cmd CMD     local shell command that makes it go (then the test waits for that)\n"
    "  --transport T.so   transport for a runtime (default: with --url the installed\n"
    "                     transport-openssh, else a built-in one running commands here)\n"
    "  --url URL          the remote host; transport tests that connect need it\n"
    "  --forward-remote H:P  a TCP service the remote reaches: forwards checked end to end\n"
    "  --allow-skip       a skipped test does not fail the run\n"
    "Exit: 0 all ran and passed, 1 a test failed or was skipped, 2 usage or load error.\n";

uint64_t
conf_now(void)
{
	return uv_hrtime() / 1000000u;
}

static void
wake(uv_timer_t *t)
{
	(void)t;
}

bool
conf_wait(const volatile bool *flag, uint64_t timeout_ms)
{
	uv_timer_t t;
	uint64_t end = conf_now() + timeout_ms;

	uv_timer_init(core_loop(), &t);
	uv_timer_start(&t, wake, 10, 10);
	while (!*flag && conf_now() < end)
		uv_run(core_loop(), UV_RUN_ONCE);
	uv_timer_stop(&t);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(core_loop(), UV_RUN_NOWAIT);
	return *flag;
}

void
conf_sleep(uint64_t ms)
{
	bool never = false;

	conf_wait(&never, ms);
}

void
conf_log_take(char *buf, size_t len)
{
	size_t n = 0;
	long end;

	buf[0] = '\0';
	fflush(g_log);
	end = ftell(g_log);
	if (end > g_log_off && fseek(g_log, g_log_off, SEEK_SET) == 0) {
		n = fread(buf, 1, len - 1, g_log);
		buf[n] = '\0';
	}
	fseek(g_log, 0, SEEK_END);
	g_log_off = ftell(g_log);
}

int
conf_run(const char *cmd)
{
	char *const argv[] = {"sh", "-c", (char *)cmd, NULL};
	pid_t pid;
	int st;

	if (posix_spawnp(&pid, "sh", NULL, NULL, argv, environ) != 0)
		return -1;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* The core names every handle a ctx holds (kind, and the callback's
 * symbol): that is the leak report. */
void
conf_ctx_free(struct rdhpf_ctx *ctx, char *leaks, size_t len)
{
	char logged[8192];
	size_t n;

	conf_log_take(logged, sizeof logged);
	if (logged[0])
		printf("# %s", logged);
	leaks[0] = '\0';
	n = ctx_describe_handles(ctx, leaks, len);
	ctx_free(ctx);
	conf_log_take(logged, sizeof logged); /* the core's own leak lines */
	if (n == 0)
		return;
	/* One line per handle: joined with "; ". */
	{
		char joined[4096];
		size_t o = 0;
		for (const char *p = leaks; *p && o + 3 < sizeof joined; p++) {
			if (*p != '\n')
				joined[o++] = *p;
			else if (p[1] != '\0')
				o += (size_t)snprintf(joined + o, sizeof joined - o, "; ");
		}
		joined[o] = '\0';
		snprintf(leaks, len, "%s", joined);
	}
	if (leaks[0] == '\0')
		snprintf(leaks, len, "%zu handles left registered with the ctx", n);
	conf_symbolize(leaks, len);
}

char *
conf_set_option(const char *key, const char *value)
{
	struct cfg_host *h = &g_cfg.hosts[0];

	for (size_t i = 0; i < h->n_opts; i++) {
		if (strcmp(h->opts[i].key, key) == 0) {
			char *old = h->opts[i].value;
			h->opts[i].value = strdup(value);
			return old;
		}
	}
	h->opts = realloc(h->opts, (h->n_opts + 1) * sizeof *h->opts);
	if (h->opts == NULL)
		abort();
	h->opts[h->n_opts] = (struct cfg_opt){strdup(key), strdup(value), 0, 0};
	h->n_opts++;
	return NULL;
}

void
conf_restore_option(const char *key, char *old)
{
	struct cfg_host *h = &g_cfg.hosts[0];

	for (size_t i = 0; i < h->n_opts; i++) {
		if (strcmp(h->opts[i].key, key) != 0)
			continue;
		free(h->opts[i].value);
		if (old != NULL) {
			h->opts[i].value = old;
		} else {
			free(h->opts[i].key);
			h->opts[i] = h->opts[--h->n_opts];
		}
		return;
	}
	free(old);
}

/* Load exactly the plugin at path, through the core's loader (its
 * directory is scanned with every check rdhpf makes). */
static const struct plugin *
load(struct plugin_set *ps, const char *path, int kind)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;

	snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
	if (dir[0] == '\0')
		snprintf(dir, sizeof dir, "/");
	if (plugins_load_dir(dir, &core_host_api, ps) != 0) {
		fprintf(stderr, "rdhpf-conformance: %s: %s\n", dir, ps->dir_error);
		return NULL;
	}
	for (size_t i = 0; i < ps->n; i++) {
		const char *a = strrchr(ps->v[i]->path, '/');
		if (strcmp(a ? a + 1 : ps->v[i]->path, base) == 0) {
			if (ps->v[i]->info->kind == kind)
				return ps->v[i];
			fprintf(stderr, "rdhpf-conformance: %s: a %s plugin, not a %s\n", path,
			        plugin_kind_name(ps->v[i]->info->kind), plugin_kind_name(kind));
			return NULL;
		}
	}
	for (size_t i = 0; i < ps->n_refused; i++) {
		const char *a = strrchr(ps->refused[i].path, '/');
		if (strcmp(a ? a + 1 : ps->refused[i].path, base) == 0) {
			fprintf(stderr, "rdhpf-conformance: %s: refused: %s\n", path,
			        ps->refused[i].why);
			return NULL;
		}
	}
	fprintf(stderr, "rdhpf-conformance: %s: not found (or not a .so)\n", path);
	return NULL;
}

static int
add_kv(struct conf_kv **v, size_t *n, const char *arg)
{
	const char *eq = strchr(arg, '=');

	if (eq == NULL || eq == arg) {
		fprintf(stderr, "rdhpf-conformance: %s: want KEY=VALUE\n", arg);
		return -1;
	}
	*v = realloc(*v, (*n + 1) * sizeof **v);
	if (*v == NULL)
		abort();
	(*v)[*n].key = strndup(arg, (size_t)(eq - arg));
	(*v)[*n].value = strdup(eq + 1);
	(*n)++;
	return 0;
}

static int
parse_args(int argc, char **argv)
{
	struct conf_args *a = &g_args;

	if (argc < 3 || (strcmp(argv[1], "runtime") != 0 && strcmp(argv[1], "transport") != 0))
		return -1;
	a->mode = argv[1];
	a->plugin = argv[2];
	for (int i = 3; i < argc; i++) {
		const char *o = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		int takes = 1;

		if (strcmp(o, "--allow-skip") == 0) {
			a->allow_skip = true;
			takes = 0;
		} else if (strcmp(o, "-v") == 0) {
			a->verbose = true;
			takes = 0;
		} else if (v == NULL) {
			fprintf(stderr, "rdhpf-conformance: %s: needs a value\n", o);
			return -1;
		} else if (strcmp(o, "--option") == 0) {
			if (add_kv(&a->opts, &a->n_opts, v) != 0)
				return -1;
		} else if (strcmp(o, "--bad-option") == 0) {
			if (add_kv(&a->bad, &a->n_bad, v) != 0)
				return -1;
		} else if (strcmp(o, "--expect-port") == 0) {
			char *end;
			long p = strtol(v, &end, 10);
			if (*end != '\0' || p < 1 || p > 65535) {
				fprintf(stderr,
				        "rdhpf-conformance: --expect-port %s: want 1..65535\n", v);
				return -1;
			}
			a->expect_port = (uint16_t)p;
		} else if (strcmp(o, "--transport") == 0) {
			a->transport = v;
		} else if (strcmp(o, "--url") == 0) {
			a->url = v;
		} else if (strcmp(o, "--identity") == 0) {
			a->identity = v;
		} else if (strcmp(o, "--known-hosts") == 0) {
			a->known_hosts = v;
		} else if (strcmp(o, "--forward-remote") == 0) {
			a->forward_remote = v;
		} else if (strcmp(o, "--start-cmd") == 0) {
			a->start_cmd = v;
		} else if (strcmp(o, "--stop-cmd") == 0) {
			a->stop_cmd = v;
		} else {
			fprintf(stderr, "rdhpf-conformance: %s: unknown option\n", o);
			return -1;
		}
		i += takes;
	}
	return 0;
}

static int
host_from_args(void)
{
	struct cfg_host *h;

	if (cfg_from_url(g_args.url ? g_args.url : "ssh://conformance", "--url", &g_cfg) != 0 ||
	    g_cfg.n_hosts != 1) {
		for (size_t i = 0; i < g_cfg.n_errors; i++)
			fprintf(stderr, "rdhpf-conformance: %s\n", g_cfg.errors[i].text);
		return -1;
	}
	h = &g_cfg.hosts[0];
	if (g_args.identity)
		h->identity_file = strdup(g_args.identity);
	if (g_args.known_hosts)
		h->known_hosts = strdup(g_args.known_hosts);
	h->pol.connect_timeout_ms = 10000;
	for (size_t i = 0; i < g_args.n_opts; i++)
		free(conf_set_option(g_args.opts[i].key, g_args.opts[i].value));
	return 0;
}

/* Is key declared by plugin p? */
static bool
declares(const struct plugin *p, const char *key)
{
	const struct rdhpf_option_desc *const *o = p->info->options;

	for (size_t i = 0; o != NULL && o[i] != NULL; i++)
		if (o[i]->name != NULL && strcmp(o[i]->name, key) == 0)
			return true;
	return false;
}

static int
load_transport_for_runtime(void)
{
	char path[4096];

	if (g_args.transport != NULL) {
		g_transport = load(&g_tps, g_args.transport, RDHPF_KIND_TRANSPORT);
		return g_transport ? 0 : -1;
	}
	if (g_args.url != NULL) {
		snprintf(path, sizeof path, "%s/transport-openssh.so", plugin_dir_choose(&g_cfg));
		g_transport = load(&g_tps, path, RDHPF_KIND_TRANSPORT);
		return g_transport ? 0 : -1;
	}
	g_local.path = (char *)"(built-in local transport)";
	g_local.fd = -1;
	g_local.info = conf_local_transport_init(&core_host_api);
	g_transport = &g_local;
	return 0;
}

static int
run(const struct conf_test *tests, size_t n)
{
	size_t pass = 0, fail = 0, skip = 0;
	char logbuf[8192];

	printf("1..%zu\n", n);
	for (size_t i = 0; i < n; i++) {
		struct tc tc = {""};
		int r;

		conf_log_take(logbuf, sizeof logbuf);
		r = tests[i].fn(&tc);
		conf_log_take(logbuf, sizeof logbuf);
		if (logbuf[0] && (r != T_PASS || g_args.verbose)) {
			for (char *l = strtok(logbuf, "\n"); l; l = strtok(NULL, "\n"))
				printf("# %s\n", l);
		}
		if (r == T_PASS) {
			printf("ok %zu - %s\n", i + 1, tests[i].name);
			pass++;
		} else if (r == T_SKIP) {
			printf("skip %zu - %s: %s\n", i + 1, tests[i].name, tc.why);
			skip++;
		} else {
			printf("not ok %zu - %s: %s\n", i + 1, tests[i].name, tc.why);
			fail++;
		}
		fflush(stdout);
	}
	printf("# %s %s: %zu tests, %zu passed, %zu failed, %zu skipped%s\n", g_args.mode,
	       g_plugin->info->name, n, pass, fail, skip,
	       skip && !g_args.allow_skip ? " (a skip fails the run: --allow-skip)" : "");
	return fail == 0 && (skip == 0 || g_args.allow_skip) ? 0 : 1;
}

void
tc_why(struct tc *tc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tc->why, sizeof tc->why, fmt, ap);
	va_end(ap);
}

int
main(int argc, char **argv)
{
	bool runtime;
	int rc;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(usage, stdout);
		return 0;
	}
	if (parse_args(argc, argv) != 0) {
		fputs(usage, stderr);
		return 2;
	}
	runtime = strcmp(g_args.mode, "runtime") == 0;
	signal(SIGPIPE, SIG_IGN);
	if ((g_log = tmpfile()) == NULL) {
		perror("rdhpf-conformance: tmpfile");
		return 2;
	}
	log_init(g_log, LOG_LOGFMT, g_args.verbose ? RDHPF_LOG_DEBUG : RDHPF_LOG_WARN, conf_now);
	if (host_from_args() != 0)
		return 2;
	g_plugin = load(&g_ps, g_args.plugin, runtime ? RDHPF_KIND_RUNTIME : RDHPF_KIND_TRANSPORT);
	if (g_plugin == NULL || (runtime && load_transport_for_runtime() != 0))
		return 2;
	for (size_t i = 0; i < g_args.n_opts; i++) {
		if (!declares(g_plugin, g_args.opts[i].key) &&
		    !(runtime && declares(g_transport, g_args.opts[i].key))) {
			fprintf(stderr, "rdhpf-conformance: --option %s: %s declares no such key\n",
			        g_args.opts[i].key, g_plugin->info->name);
			return 2;
		}
	}
	snprintf(g_rundir, sizeof g_rundir, "/tmp/rdhpf-conf-XXXXXX");
	if (mkdtemp(g_rundir) == NULL) {
		perror("rdhpf-conformance: mkdtemp");
		return 2;
	}
	printf("# rdhpf-conformance %s %s (%s %s, ABI %u.%u)", g_args.mode, g_args.plugin,
	       g_plugin->info->name, g_plugin->info->version ? g_plugin->info->version : "?",
	       g_plugin->info->abi_major, g_plugin->info->abi_minor);
	if (runtime && g_transport == &g_local)
		printf(" over the built-in local transport");
	else if (runtime)
		printf(" over %s", g_transport->path);
	printf("\n");
	rc =
	    runtime ? run(runtime_tests, n_runtime_tests) : run(transport_tests, n_transport_tests);
	rmdir(g_rundir);
	cfg_free(&g_cfg);
	plugins_unload(&g_tps);
	plugins_unload(&g_ps);
	return rc;
}
