/* Daemon internals shared by loader.c, hostapi.c, supervisor.c, daemon.c. */
#ifndef RDHPF_CORE_H
#define RDHPF_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include <jansson.h>
#include <uv.h>

#include "config.h"
#include "container.h"
#include "rdhpf/plugin.h"
#include "slots.h"

/* ---- loader.c ---------------------------------------------------------- */

struct plugin {
	char *path;
	void *dl;
	int fd; /* the file loaded through /proc/self/fd/N; held while loaded (see loader.c) */
	const struct rdhpf_plugin_info *info;
};

struct refused {
	char *path;
	char *why;
	int held_fd; /* refused after dlopen: its fd in held_fds, else -1 */
	dev_t dev;   /* with held_fd: the file as it was when refused */
	ino_t ino;
	struct timespec ctim;
};

struct plugin_set {
	char *dir;
	struct plugin **v; /* each allocated alone: stable while more are loaded */
	size_t n;
	struct refused *refused;
	size_t n_refused;
	char *dir_error; /* the directory itself could not be used */
	int *held_fds;   /* of files refused after dlopen (see loader.c) */
	size_t n_held_fds;
};

/* Pure check of an info block handed back by a plugin's entry: ABI major
 * first (the message names both versions), then size, kind, name and the
 * mandatory slots.  0, or -1 with why filled. */
int plugin_check_info(const struct rdhpf_plugin_info *info, char *why, size_t len);

/* Plugin directory: plugin_dir= from config, else $RDHPF_PLUGIN_DIR, else
 * the installed one. */
const char *plugin_dir_choose(const struct cfg *c);

/* Load every *.so in dir that passes the checks; refuse the rest with a
 * reason.  Returns 0 unless the directory itself is unusable (-1,
 * dir_error set). */
int plugins_load_dir(const char *dir, const struct rdhpf_host_api *api, struct plugin_set *set);
/* A plugin the configuration names. */
struct plugin_want {
	int kind;
	const char *name;
};
/* Load only the named plugins, each from "<kind>-<name>.so" (the daemon:
 * what it does not use it does not map, nor the libraries those bring);
 * when one is not found by that file name, the rest of the directory too.
 * set may hold plugins already (a reload): those are kept and not loaded
 * again, and the files refused before are tried again (but one refused
 * after dlopen that has not changed since: its refusal stays listed). */
int plugins_load_wanted(const char *dir, const struct rdhpf_host_api *api, struct plugin_set *set,
                        const struct plugin_want *w, size_t n);
const struct plugin *plugins_find(const struct plugin_set *set, int kind, const char *name);
void plugins_unload(struct plugin_set *set);
const struct rdhpf_option_desc *const *plugins_lookup_options(void *set, int kind,
                                                              const char *name);
/* The plugin's validate_option on one value (cfg_plugin_validate_fn). */
int plugins_validate_option(void *set, int kind, const char *name, const char *key,
                            const char *value, char *err, size_t errlen);
const char *plugin_kind_name(int kind);
/* "exec,unix-stream" etc.; buf always terminated. */
void plugin_caps_string(const struct rdhpf_plugin_info *info, char *buf, size_t len);

/* ---- hostapi.c --------------------------------------------------------- */

extern const struct rdhpf_host_api core_host_api;

struct host;

/* One plugin instance's handle on the core. */
struct rdhpf_ctx {
	struct host *host; /* NULL for contexts outside a host (tests) */
	const char *host_name;
	const struct plugin *plugin;
	const struct cfg_host *cfg;
	struct ctx_handle *handles; /* ios, timers, children, streams, containers */
	/* For runtime contexts: the transport that serves stream_exec. */
	struct pinst *tpi;
	struct rdhpf_ctx *tctx;
	/* For transport contexts: report_down goes here. */
	void (*down_cb)(void *arg, int status, const char *detail);
	void *down_arg;
};

uv_loop_t *core_loop(void);
void core_loop_set(uv_loop_t *loop);
struct rdhpf_ctx *ctx_new(struct host *h, const char *host_name, const struct plugin *p,
                          const struct cfg_host *cfg);
/* Closes every handle the plugin left behind (logging each as a leak, by
 * kind and, for ios and timers, the callback's symbol), SIGKILLs its live
 * children, frees ctx.  Returns how many were left. */
size_t ctx_free(struct rdhpf_ctx *ctx);
/* One line per handle the ctx holds now ("timer tick_cb", "container c1"),
 * into buf; returns how many. */
size_t ctx_describe_handles(const struct rdhpf_ctx *ctx, char *buf, size_t len);
/* SIGKILL and reap every child still known to the core (shutdown). */
void core_kill_children(void);
size_t core_live_children(void);

/* Build the host params of a host for a plugin (options filtered to those
 * the plugin declares).  Free with host_params_free. */
struct rdhpf_host_params *host_params_new(const struct cfg_host *h, const struct plugin *p,
                                          const char *runtime_dir);
void host_params_free(struct rdhpf_host_params *p);

/* Metrics registry, filled through the host API and by the core. */
struct metric {
	char *name;
	char *host;
	char *plugin;
	int type; /* 0 counter, 1 gauge, 2 summary (sum, count) */
	double value;
	double sum;
	uint64_t count;
};
void metrics_counter_add(const char *host, const char *plugin, const char *name, uint64_t d);
void metrics_gauge_set(const char *host, const char *plugin, const char *name, double v);
void metrics_observe(const char *host, const char *plugin, const char *name, double v);
const struct metric *metrics_all(size_t *n);
void metrics_free(void);

/* ---- supervisor.c ------------------------------------------------------ */

enum host_state {
	HOST_IDLE = 0,
	HOST_CONNECTING,
	HOST_SYNCING,
	HOST_STEADY,
	HOST_BACKOFF,
	HOST_BREAKER_OPEN,
	HOST_STOPPED,
	HOST_FAILED, /* the configuration can never work: not retried */
};
const char *host_state_name(enum host_state s);

struct host *host_new(const struct cfg_host *cfg, const struct plugin *tp, const struct plugin *rp,
                      const char *runtime_dir, char *err, size_t errlen);
void host_start(struct host *h);
/* Remove every forward, stop the runtime, destroy the plugin instances.
 * Synchronous; the host may be freed afterwards. */
void host_stop(struct host *h, const char *reason);
void host_free(struct host *h);
/* A runtime lost an event: list again soon (deferred), keeping the
 * stream.  Ignored unless the host is watching. */
void host_relist(struct host *h, const char *reason);
enum host_state host_state(const struct host *h);
const char *host_name(const struct host *h);
/* The host's transport instance; 1 while its link is up. */
int host_link(const struct host *h, struct pinst **tp);
/* After a pause of the loop (sleep, SIGSTOP): check the link now. */
void host_wake(struct host *h);
const struct cfg_host *host_cfg(const struct host *h);
size_t host_active_forwards(const struct host *h);
/* Status as documented in docs/status.md (stable). */
json_t *host_status_json(const struct host *h);
/* --since-start: the host's state and every forward's, to one subscriber. */
struct ev_sub;
void host_events_replay(const struct host *h, struct ev_sub *to);
json_t *ended_forwards_json(void);

/* ---- daemon.c ---------------------------------------------------------- */

struct run_opts {
	const char *config_path; /* NULL: default path or zero-config */
	const char *host_url;    /* --host */
	const char *runtime_dir; /* --runtime-dir */
	int log_format;          /* -1: from config */
	int log_level;           /* -1: from config */
};

/* SIGHUP: re-read the config file; added hosts start, removed hosts stop,
 * changed hosts restart, unchanged hosts keep their forwards untouched. */

int daemon_run(const struct run_opts *o);
/* `rdhpf doctor [--host NAME|URL]`; 0 when every check passed. */
int doctor_run(const struct run_opts *o, const char *host);

/* $XDG_CONFIG_HOME/rdhpf/config.ini, else ~/.config/rdhpf/config.ini. */
const char *config_default_path(char *buf, size_t len);
/* Which config: --host URL; else the file given; else the default file if
 * it exists; else DOCKER_HOST=ssh://…  0, or -1 with c->errors filled. */
int config_load(const char *path, const char *host_url, struct cfg *c);
void cfg_print_errors(const struct cfg *c, FILE *out);
/* Make and destroy each host's plugin instances (create does no I/O) so
 * that every value a plugin would refuse at run time is an error now, at
 * the host's section line.  Hosts whose plugins are missing are skipped
 * (cfg_check_plugins reports them).  Returns the errors added. */
size_t cfg_check_hosts(struct cfg *c, const struct plugin_set *ps, const char *rundir);
/* Command-line values (>= 0) win over the config's. */
void apply_log_settings(const struct cfg *c, int fmt, int level);
/* The private runtime directory: created 0700 if missing, refused if it is
 * not ours or not private.  0, or -1 with err filled. */
int runtime_dir_prepare(const char *want, char *out, size_t outlen, char *err, size_t errlen);

#endif
