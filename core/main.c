/* rdhpf command line. */
#include <getopt.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "control.h"
#include "core.h"
#include "engine_sock.h"
#include "log.h"
#include "util.h"
#include "wait.h"

static void
usage(FILE *out)
{
	fputs("usage: rdhpf COMMAND [options]\n"
	      "\n"
	      "Keeps localhost:P forwarded over SSH to every port that a container publishes\n"
	      "on a remote Docker or Podman host.\n"
	      "\n"
	      "commands:\n"
	      "  run            run the daemon (foreground)\n"
	      "  check-config   validate the config and print each host's effective policy\n"
	      "  plugins        list the plugins found, and why any file was refused\n"
	      "  status         ask the running daemon: hosts, forwards, diagnostics\n"
	      "                 (--format table|json; json is documented in docs/status.md)\n"
	      "  metrics        ask the running daemon: Prometheus text exposition\n"
	      "  wait           until forwards are active and serving: PORT… and/or\n"
	      "                 --container NAME…; --timeout 30s; --host NAME (exit 1 at the\n"
	      "                 timeout, naming each one not ready and why)\n"
	      "  env [HOST]     print export DOCKER_HOST=unix://… (and CONTAINER_HOST for\n"
	      "                 podman) for the host's engine socket (engine_socket = yes)\n"
	      "  events         the daemon's live event stream (--format json|logfmt,\n"
	      "                 --host NAME, --since-start: the current state first)\n"
	      "  doctor         check a host step by step (--host NAME|URL), each failure with a "
	      "fix\n"
	      "  version        print the version and plugin ABI\n"
	      "\n"
	      "options (every command):\n"
	      "  --config FILE        config file (default $XDG_CONFIG_HOME/rdhpf/config.ini)\n"
	      "  --host ssh://U@H[:P] one host, defaults for everything (zero-config);\n"
	      "                       without --host and config file, DOCKER_HOST=ssh://… is used\n"
	      "  --runtime-dir DIR    private directory for sockets (default "
	      "$XDG_RUNTIME_DIR/rdhpf)\n"
	      "  --log-format FMT     logfmt (default) or json\n"
	      "  --log-level LEVEL    error, warn, info (default), debug, trace\n",
	      out);
}

static uint64_t
mono_ms(void)
{
	return uv_hrtime() / 1000000u;
}

static int
cmd_plugins(const struct run_opts *o)
{
	struct cfg c;
	struct plugin_set ps;
	const char *dir;
	int rc = 0;

	memset(&c, 0, sizeof c);
	/* A config is optional here: it only picks the directory. */
	if (o->config_path != NULL && cfg_parse_file(o->config_path, &c) != 0) {
		cfg_print_errors(&c, stderr);
		rc = 2;
	}
	dir = plugin_dir_choose(&c);
	printf("plugin directory: %s\n", dir);
	if (plugins_load_dir(dir, &core_host_api, &ps) != 0) {
		fprintf(stderr, "rdhpf: %s\n", ps.dir_error);
		plugins_unload(&ps);
		cfg_free(&c);
		return 1;
	}
	printf("%-10s %-12s %-10s %-6s %s\n", "KIND", "NAME", "VERSION", "ABI", "CAPABILITIES");
	for (size_t i = 0; i < ps.n; i++) {
		const struct rdhpf_plugin_info *in = ps.v[i]->info;
		char caps[128], abi[16];
		plugin_caps_string(in, caps, sizeof caps);
		snprintf(abi, sizeof abi, "%u.%u", in->abi_major, in->abi_minor);
		printf("%-10s %-12s %-10s %-6s %s\n", plugin_kind_name(in->kind), in->name,
		       in->version, abi, caps);
	}
	if (ps.n == 0)
		printf("(no plugins)\n");
	for (size_t i = 0; i < ps.n_refused; i++)
		printf("refused %s: %s\n", ps.refused[i].path, ps.refused[i].why);
	plugins_unload(&ps);
	cfg_free(&c);
	return rc;
}

static int
cmd_check_config(const struct run_opts *o, const char *file)
{
	struct cfg c;
	struct plugin_set ps;
	int rc = 0;

	/* Go on after errors: the plugin check below reports more of them. */
	config_load(file ? file : o->config_path, o->host_url, &c);
	if (plugins_load_dir(plugin_dir_choose(&c), &core_host_api, &ps) != 0) {
		fprintf(stderr, "rdhpf: %s\n", ps.dir_error);
		rc = 2;
	} else if (cfg_check_plugins_v(&c, plugins_lookup_options, plugins_validate_option, &ps) ==
	               0 &&
	           c.n_errors == 0) {
		/* What run would refuse when it starts: the plugins' own checks,
		 * against the runtime directory run would use. */
		char dir[512], err[768];
		if (runtime_dir_prepare(o->runtime_dir ? o->runtime_dir : c.runtime_dir, dir,
		                        sizeof dir, err, sizeof err) != 0)
			cfg_add_error(&c, 0, NULL, NULL, "%s", err);
		else
			cfg_check_hosts(&c, &ps, dir);
		uv_run(core_loop(), UV_RUN_NOWAIT); /* the instances' handles close */
	}
	if (c.n_errors > 0) {
		cfg_print_errors(&c, stderr);
		fprintf(stderr, "%zu error%s\n", c.n_errors, c.n_errors == 1 ? "" : "s");
		rc = 2;
	} else if (rc == 0) {
		cfg_print(&c, stdout);
		printf("config ok: %zu host%s\n", c.n_hosts, c.n_hosts == 1 ? "" : "s");
	}
	plugins_unload(&ps);
	cfg_free(&c);
	return rc;
}

static int
ask_daemon(const struct run_opts *o, const char *what, char **out)
{
	char dir[512], err[768];

	if (runtime_dir_prepare(o->runtime_dir, dir, sizeof dir, err, sizeof err) != 0 ||
	    control_request(dir, what, out, err, sizeof err) != 0) {
		fprintf(stderr, "rdhpf: %s\n", err);
		return -1;
	}
	return 0;
}

static int
cmd_status(const struct run_opts *o, const char *format)
{
	char *txt;
	json_t *j;
	json_error_t je;

	if (strcmp(format, "json") != 0 && strcmp(format, "table") != 0) {
		fprintf(stderr, "rdhpf: --format: '%s' is not table or json\n", format);
		return 2;
	}
	if (ask_daemon(o, "status", &txt) != 0)
		return 1;
	if (strcmp(format, "json") == 0) {
		fputs(txt, stdout);
		free(txt);
		return 0;
	}
	j = json_loads(txt, 0, &je);
	free(txt);
	if (j == NULL) {
		fprintf(stderr, "rdhpf: daemon sent bad status: %s\n", je.text);
		return 1;
	}
	status_table(j, stdout);
	json_decref(j);
	return 0;
}

static int
cmd_wait(const struct run_opts *o, const char *host, const char *timeout, char **names,
         size_t n_names, char **args, int nargs)
{
	char dir[512], err[768];
	struct wait_target *t = xcalloc((size_t)nargs + n_names + 1, sizeof *t);
	size_t n = 0;
	uint64_t ms = 30000;
	int rc;

	if (timeout != NULL && parse_duration(timeout, &ms, err, sizeof err) != 0) {
		fprintf(stderr, "rdhpf wait: --timeout: %s\n", err);
		free(t);
		return 2;
	}
	for (size_t i = 0; i < n_names; i++)
		t[n++].container = names[i];
	for (int i = 0; i < nargs; i++) {
		const char *a = args[i];
		size_t digits = strspn(a, "0123456789");
		if (digits > 0 && a[digits] == '\0' && n_names == 0) {
			long p = strtol(a, NULL, 10);
			if (p < 1 || p > 65535) {
				fprintf(stderr, "rdhpf wait: port %s is not in 1-65535\n", a);
				free(t);
				return 2;
			}
			t[n++].port = (int)p;
		} else {
			t[n++].container = a; /* after --container, every name is one */
		}
	}
	if (n == 0) {
		fprintf(stderr, "rdhpf wait: name at least one PORT or --container NAME\n");
		free(t);
		return 2;
	}
	if (runtime_dir_prepare(o->runtime_dir, dir, sizeof dir, err, sizeof err) != 0) {
		fprintf(stderr, "rdhpf: %s\n", err);
		free(t);
		return 1;
	}
	rc = wait_run(dir, host, (long)ms, t, n);
	free(t);
	return rc;
}

static int
cmd_events(const struct run_opts *o, const char *format, const char *host, int since_start)
{
	char dir[512], err[768];
	int logfmt;

	if (strcmp(format, "json") == 0 || strcmp(format, "table") == 0)
		logfmt = 0; /* table is --format's default for status; json here */
	else if (strcmp(format, "logfmt") == 0)
		logfmt = 1;
	else {
		fprintf(stderr, "rdhpf events: --format: '%s' is not json or logfmt\n", format);
		return 2;
	}
	if (runtime_dir_prepare(o->runtime_dir, dir, sizeof dir, err, sizeof err) != 0) {
		fprintf(stderr, "rdhpf: %s\n", err);
		return 1;
	}
	return events_run(dir, host, since_start, logfmt, stdout);
}

/* One shell word: single-quoted unless it is plain. */
static void
print_shell_word(const char *s)
{
	if (strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-:+@%=,") ==
	    strlen(s)) {
		fputs(s, stdout);
		return;
	}
	putchar('\'');
	for (; *s; s++) {
		if (*s == '\'')
			fputs("'\\''", stdout);
		else
			putchar(*s);
	}
	putchar('\'');
}

static int
cmd_env(const struct run_opts *o, const char *name)
{
	struct cfg c;
	const struct cfg_host *h = NULL;
	char dir[512], err[768], path[256], url[300];
	int rc = 1;

	if (config_load(o->config_path, o->host_url, &c) != 0) {
		cfg_print_errors(&c, stderr);
		cfg_free(&c);
		return 2;
	}
	for (size_t i = 0; i < c.n_hosts; i++)
		if (name == NULL ? c.n_hosts == 1 : strcmp(c.hosts[i].name, name) == 0)
			h = &c.hosts[i];
	if (h == NULL) {
		fprintf(stderr, "rdhpf env: %s\n",
		        name ? "no such host in the config"
		             : "name the host (the config has several)");
		goto out;
	}
	if (h->engine_socket == NULL) {
		fprintf(stderr,
		        "rdhpf env: host %s has no engine socket: set engine_socket = yes in its "
		        "section\n",
		        h->name);
		goto out;
	}
	if (runtime_dir_prepare(o->runtime_dir ? o->runtime_dir : c.runtime_dir, dir, sizeof dir,
	                        err, sizeof err) != 0) {
		fprintf(stderr, "rdhpf: %s\n", err);
		goto out;
	}
	if (engine_local_path(path, sizeof path, dir, h->name) != 0) {
		fprintf(stderr, "rdhpf env: the socket path under %s is too long\n", dir);
		goto out;
	}
	snprintf(url, sizeof url, "unix://%s", path);
	fputs("export DOCKER_HOST=", stdout);
	print_shell_word(url);
	putchar('\n');
	if (strcmp(h->runtime, "podman") == 0) {
		fputs("export CONTAINER_HOST=", stdout);
		print_shell_word(url);
		putchar('\n');
	}
	if (access(path, F_OK) != 0)
		fprintf(stderr, "rdhpf env: %s does not exist yet: it is there while rdhpf runs\n",
		        path);
	rc = 0;
out:
	cfg_free(&c);
	return rc;
}

static int
cmd_metrics(const struct run_opts *o)
{
	char *txt;

	if (ask_daemon(o, "metrics", &txt) != 0)
		return 1;
	fputs(txt, stdout);
	free(txt);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"host", required_argument, NULL, 'H'},
	    {"runtime-dir", required_argument, NULL, 'r'},
	    {"log-format", required_argument, NULL, 'f'},
	    {"log-level", required_argument, NULL, 'l'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {"format", required_argument, NULL, 'F'},
	    {"timeout", required_argument, NULL, 'T'},
	    {"container", required_argument, NULL, 'C'},
	    {"since-start", no_argument, NULL, 'S'},
	    {NULL, 0, NULL, 0},
	};
	const char *timeout = NULL;
	char **names = NULL; /* --container NAME, for wait */
	size_t n_names = 0;
	int since_start = 0;
	struct run_opts o = {.log_format = -1, .log_level = -1};
	const char *cmd;
	const char *format = "table";
	int ch;

	log_init(stderr, LOG_LOGFMT, RDHPF_LOG_INFO, mono_ms);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	cmd = argv[1];
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	optind = 2;
	while ((ch = getopt_long(argc, argv, "c:H:r:f:l:hVF:T:C:S", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o.config_path = optarg;
			break;
		case 'H':
			o.host_url = optarg;
			break;
		case 'r':
			o.runtime_dir = optarg;
			break;
		case 'f':
			if (strcmp(optarg, "logfmt") == 0)
				o.log_format = LOG_LOGFMT;
			else if (strcmp(optarg, "json") == 0)
				o.log_format = LOG_JSON;
			else {
				fprintf(stderr, "rdhpf: --log-format: '%s' is not logfmt or json\n",
				        optarg);
				return 2;
			}
			break;
		case 'l':
			o.log_level = log_level_parse(optarg);
			if (o.log_level < 0) {
				fprintf(stderr,
				        "rdhpf: --log-level: '%s' is not error, warn, info, debug "
				        "or trace\n",
				        optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			cmd = "version";
			break;
		case 'F':
			format = optarg;
			break;
		case 'T':
			timeout = optarg;
			break;
		case 'C':
			if (names == NULL)
				names = xcalloc((size_t)argc + 1, sizeof *names);
			names[n_names++] = optarg;
			break;
		case 'S':
			since_start = 1;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (o.log_format >= 0)
		log_set_format((enum log_format)o.log_format);
	if (o.log_level >= 0)
		log_set_level(o.log_level);

	if (strcmp(cmd, "run") == 0)
		return daemon_run(&o);
	if (strcmp(cmd, "doctor") == 0) {
		const char *sel = o.host_url;
		if (sel != NULL && strncmp(sel, "ssh://", 6) != 0)
			o.host_url = NULL; /* a host name of the config */
		return doctor_run(&o, sel);
	}
	if (strcmp(cmd, "status") == 0)
		return cmd_status(&o, format);
	if (strcmp(cmd, "metrics") == 0)
		return cmd_metrics(&o);
	if (strcmp(cmd, "env") == 0)
		return cmd_env(&o, optind < argc ? argv[optind] : NULL);
	if (strcmp(cmd, "wait") == 0 || strcmp(cmd, "events") == 0) {
		/* --host names a host of the daemon here, not a URL. */
		const char *h = o.host_url;
		int rc;
		o.host_url = NULL;
		if (strcmp(cmd, "wait") == 0)
			rc = cmd_wait(&o, h, timeout, names, n_names, argv + optind, argc - optind);
		else
			rc = cmd_events(&o, strcmp(format, "table") == 0 ? "json" : format, h,
			                since_start);
		free(names);
		return rc;
	}
	if (strcmp(cmd, "plugins") == 0)
		return cmd_plugins(&o);
	if (strcmp(cmd, "check-config") == 0)
		return cmd_check_config(&o, optind < argc ? argv[optind] : NULL);
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("rdhpf %s (plugin ABI %d.%d)\n", RDHPF_VERSION, RDHPF_ABI_MAJOR,
		       RDHPF_ABI_MINOR);
		return 0;
	}
	fprintf(stderr, "rdhpf: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
