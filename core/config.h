/* Configuration: INI file → hosts with their effective policy.  Pure: no
 * network, no plugins.  Plugin-specific keys are collected with their line
 * numbers and checked later against what the plugins declare
 * (cfg_check_plugins), so that check-config can report every error. */
#ifndef RDHPF_CONFIG_H
#define RDHPF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rdhpf/plugin.h"
#include "rules.h"

struct ssh_url {
	char user[64];  /* "" when not given */
	char host[256]; /* name or address; IPv6 without brackets */
	uint16_t port;  /* 0 when not given */
};

/* ssh://[user@]host[:port][/] — IPv6 as [addr].  Rejects anything that could
 * be taken for an ssh option or shell syntax.  0 or -1 with err filled. */
int ssh_url_parse(const char *s, struct ssh_url *u, char *err, size_t errlen);

/* "500ms", "15s", "2m", "1h", "0".  A unit is required except for 0; no
 * sign, no fraction ("1.5s": write 1500ms), at most 8760h. */
int parse_duration(const char *s, uint64_t *ms, char *err, size_t errlen);

/* Print ms back as the shortest exact unit: "500ms", "15s", "2m". */
void format_duration(uint64_t ms, char *buf, size_t len);

struct rdhpf_policy {
	uint64_t health_interval_ms; /* default 15s */
	uint64_t poll_interval_ms;   /* default 2s: runtimes without events are listed this often */
	uint64_t keepalive_interval_ms; /* default 5s */
	uint32_t keepalive_count;       /* default 3 */
	uint64_t connect_timeout_ms;    /* default 10s */
	uint64_t backoff_initial_ms;    /* default 500ms */
	uint64_t backoff_max_ms;        /* default 30s */
	double backoff_multiplier;      /* default 2.0, >= 1 */
	double backoff_jitter;          /* default 0.2, 0..1 */
	uint32_t breaker_threshold;     /* default 10, >= 1 */
	uint64_t breaker_cooldown_ms;   /* default 2m */
	int reconnect_probe;            /* default 1: probe the TCP port while down */
};

/* A port_map entry: remote port REMOTE is forwarded from local port LOCAL. */
struct cfg_port_map {
	uint16_t remote;
	uint16_t local;
};

struct cfg_opt {
	char *key;
	char *value;
	int line; /* 0 when not from a file */
	int from_defaults;
};

struct cfg_host {
	char *name;
	int line; /* line of the section header */
	char *url;
	struct ssh_url u;
	char *transport;                  /* default "openssh" */
	char *runtime;                    /* default "docker" */
	char *identity_file;              /* NULL unless set */
	char *known_hosts;                /* NULL unless set */
	char *bind_address;               /* default "127.0.0.1" */
	char *engine_socket;              /* NULL (no), "yes", or the remote socket path */
	int transport_line, runtime_line; /* where chosen, 0 if default */
	int transport_from_defaults;      /* chosen in [defaults], not here */
	int runtime_from_defaults;
	struct rdhpf_policy pol;
	int32_t port_offset;           /* local = remote + offset; default 0, |x| <= 65535 */
	struct cfg_port_map *port_map; /* exact overrides of the offset, file order */
	size_t n_port_map;
	int labels;                 /* labels = yes: rdhpf.* container labels apply */
	int privileged_skip;        /* privileged = skip */
	uint16_t privileged_offset; /* privileged = offset N; 0 when not set */
	int on_conflict_next_free;  /* on_conflict = next-free (default wait) */
	struct rule *rules;         /* `rule = …` lines of the host section, file order */
	size_t n_rules;
	struct cfg_opt *opts; /* plugin-specific keys, defaults merged in */
	size_t n_opts;
};

struct cfg_error {
	char *text; /* "FILE:LINE: [section] key: reason" */
	int line;
};

struct cfg {
	char *path;           /* as given, used in messages */
	char *plugin_dir;     /* NULL unless set */
	char *log_format;     /* NULL unless set: "logfmt" | "json" */
	char *log_level;      /* NULL unless set */
	char *runtime_dir;    /* NULL unless set */
	char *metrics_listen; /* NULL unless set: "127.0.0.1:9464" or "[::1]:9464" */
	struct cfg_host *hosts;
	size_t n_hosts;
	struct cfg_error *errors;
	size_t n_errors;
};

void policy_defaults(struct rdhpf_policy *p);

/* Parse; returns 0 when cfg->n_errors == 0.  Always fills *c (free with
 * cfg_free) unless out of memory. */
int cfg_parse_file(const char *path, struct cfg *c);
int cfg_parse_string(const char *name, const char *text, struct cfg *c);

/* A config with one host made from a URL (zero-config: --host or
 * DOCKER_HOST).  Errors go into c->errors. */
int cfg_from_url(const char *url, const char *source, struct cfg *c);

void cfg_free(struct cfg *c);

/* A host's config on its own (the daemon keeps one per running host, so a
 * reload can replace the file's). */
struct cfg_host *cfg_host_dup(const struct cfg_host *h);
void cfg_host_clear(struct cfg_host *h);
/* Same effective settings: a reload leaves such a host untouched. */
bool cfg_host_same(const struct cfg_host *a, const struct cfg_host *b);

/* Appends "PATH:LINE: [SECTION] KEY: message"; line 0, a NULL or empty
 * section and a NULL key leave their part out.  section is what stands
 * between the brackets, e.g. "defaults" or "host \"ci\"". */
void cfg_add_error(struct cfg *c, int line, const char *section, const char *key, const char *fmt,
                   ...) __attribute__((format(printf, 5, 6)));

/* Returns the plugin's declared options (a table of pointers ended by
 * NULL), or NULL if no plugin of that kind and name exists.  A plugin
 * without options returns a table holding only the NULL. */
typedef const struct rdhpf_option_desc *const *(*cfg_plugin_lookup_fn)(void *arg, int kind,
                                                                       const char *name);
/* Check one value of a key the plugin declares: 0, or -1 with err filled
 * (the plugin's reason, no trailing newline).  0 when the plugin has no
 * validator. */
typedef int (*cfg_plugin_validate_fn)(void *arg, int kind, const char *name, const char *key,
                                      const char *value, char *err, size_t errlen);

/* Check each host's transport and runtime exist and each plugin-specific key
 * is declared by one of them, and (validate non-NULL) that the plugin
 * declaring it accepts its value.  Appends errors; returns their number. */
size_t cfg_check_plugins(struct cfg *c, cfg_plugin_lookup_fn lookup, void *arg);
size_t cfg_check_plugins_v(struct cfg *c, cfg_plugin_lookup_fn lookup,
                           cfg_plugin_validate_fn validate, void *arg);

/* Write the effective policy of every host, one block per host. */
void cfg_print(const struct cfg *c, FILE *out);

#endif
