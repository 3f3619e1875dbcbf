/* rdhpf-conformance: the installed conformance suites.  The plugin under
 * test is loaded through the core's own loader and driven through the
 * core's own host API and loop (the static core libraries are linked in),
 * so it meets exactly what rdhpf gives it; nothing of the source tree is
 * needed at run time. */
#ifndef RDHPF_CONFORMANCE_H
#define RDHPF_CONFORMANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "core.h"

enum { T_PASS = 0, T_FAIL = 1, T_SKIP = 2 };

/* One test's verdict: why it failed or was skipped. */
struct tc {
	char why[2048];
};

/* Set the verdict's reason (truncated to fit: a reason quotes plugin
 * details of any length). */
void tc_why(struct tc *tc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Fail (or skip) the test with a reason, and go to its cleanup. */
#define FAIL(...)                                                                                  \
	do {                                                                                       \
		tc_why(tc, __VA_ARGS__);                                                           \
		rc = T_FAIL;                                                                       \
		goto out;                                                                          \
	} while (0)
#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond))                                                                       \
			FAIL(__VA_ARGS__);                                                         \
	} while (0)
#define SKIP(...)                                                                                  \
	do {                                                                                       \
		tc_why(tc, __VA_ARGS__);                                                           \
		return T_SKIP;                                                                     \
	} while (0)

struct conf_test {
	const char *name;
	int (*fn)(struct tc *tc);
};

struct conf_kv {
	char *key;
	char *value;
};

/* The command line. */
struct conf_args {
	const char *mode;      /* "runtime" or "transport" */
	const char *plugin;    /* the .so under test */
	const char *transport; /* runtime mode: transport .so (NULL: see main.c) */
	const char *url;       /* NULL: not given */
	const char *identity;
	const char *known_hosts;
	const char *forward_remote; /* HOST:PORT reachable from the remote */
	const char *start_cmd;
	const char *stop_cmd;
	uint16_t expect_port;
	struct conf_kv *opts; /* --option */
	size_t n_opts;
	struct conf_kv *bad; /* --bad-option */
	size_t n_bad;
	bool allow_skip;
	bool verbose;
};

extern struct conf_args g_args;
extern struct cfg g_cfg; /* one host, from the arguments */
extern char g_rundir[256];

uint64_t conf_now(void);
/* Run the core's loop until *flag or timeout_ms; returns *flag. */
bool conf_wait(const volatile bool *flag, uint64_t timeout_ms);
void conf_sleep(uint64_t ms);
/* What the core logged since the last call (NUL-ended, maybe truncated). */
void conf_log_take(char *buf, size_t len);
/* Run a local shell command (--start-cmd, --stop-cmd); 0 when it exited 0. */
int conf_run(const char *cmd);
/* Free ctx and say what the plugin left registered with it (""
 * when nothing), as the core names each leak. */
void conf_ctx_free(struct rdhpf_ctx *ctx, char *leaks, size_t len);
/* Replace each callback address in a leak report by its function's name
 * from the plugin's symbol table (and file+offset). */
void conf_symbolize(char *text, size_t len);
/* Replace (or add) one option of the test host; restore with the value
 * returned (NULL: it was not set). */
char *conf_set_option(const char *key, const char *value);
void conf_restore_option(const char *key, char *old);

/* The plugin under test; the transport a runtime is tested over. */
extern const struct plugin *g_plugin;
extern const struct plugin *g_transport;

extern const struct conf_test runtime_tests[];
extern const size_t n_runtime_tests;
extern const struct conf_test transport_tests[];
extern const size_t n_transport_tests;

/* The built-in local transport ("the remote is this machine"). */
const struct rdhpf_plugin_info *conf_local_transport_init(const struct rdhpf_host_api *host);

#endif
