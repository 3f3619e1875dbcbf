/* Shared by the conformance suites: load a plugin through the real loader,
 * drive the real host API and loop, wait for conditions with a bound. */
#ifndef RDHPF_CONF_HARNESS_H
#define RDHPF_CONF_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "config.h"
#include "core.h"
#include "log.h"

static uint64_t
h_now(void)
{
	return uv_hrtime() / 1000000u;
}

static void
h_wake(uv_timer_t *t)
{
	(void)t;
}

/* Run the loop until *flag is true or timeout_ms passed; returns *flag. */
static bool
h_wait(const volatile bool *flag, uint64_t timeout_ms)
{
	uv_timer_t t;
	uint64_t end = h_now() + timeout_ms;

	uv_timer_init(core_loop(), &t);
	uv_timer_start(&t, h_wake, 10, 10);
	while (!*flag && h_now() < end)
		uv_run(core_loop(), UV_RUN_ONCE);
	uv_timer_stop(&t);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(core_loop(), UV_RUN_NOWAIT);
	return *flag;
}

static void
h_sleep(uint64_t ms)
{
	bool never = false;
	h_wait(&never, ms);
}

/* Load exactly the plugin at path (its directory is scanned; the entry
 * whose path matches is returned). */
static const struct plugin *
h_load(struct plugin_set *ps, const char *path, int kind)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');

	if (slash == NULL) {
		snprintf(dir, sizeof dir, ".");
	} else {
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
	}
	if (plugins_load_dir(dir, &core_host_api, ps) != 0) {
		fprintf(stderr, "cannot load %s: %s\n", dir, ps->dir_error);
		return NULL;
	}
	for (size_t i = 0; i < ps->n; i++) {
		const char *a = strrchr(ps->v[i].path, '/');
		if (strcmp(a ? a + 1 : ps->v[i].path, slash ? slash + 1 : path) == 0 &&
		    ps->v[i].info->kind == kind)
			return &ps->v[i];
	}
	for (size_t i = 0; i < ps->n_refused; i++)
		fprintf(stderr, "refused %s: %s\n", ps->refused[i].path, ps->refused[i].why);
	return NULL;
}

/* A host config from the environment:
 *   RDHPF_CONF_URL (default ssh://conformance), RDHPF_CONF_KEY,
 *   RDHPF_CONF_KNOWN_HOSTS, RDHPF_CONF_OPTS ("k=v;k=v" plugin options). */
static void
h_host_from_env(struct cfg *c)
{
	const char *url = getenv("RDHPF_CONF_URL");
	const char *opts = getenv("RDHPF_CONF_OPTS");
	struct cfg_host *h;

	memset(c, 0, sizeof *c);
	if (cfg_from_url(url ? url : "ssh://conformance", "RDHPF_CONF_URL", c) != 0 || c->n_hosts != 1) {
		for (size_t i = 0; i < c->n_errors; i++)
			fprintf(stderr, "%s\n", c->errors[i].text);
		abort();
	}
	h = &c->hosts[0];
	if (getenv("RDHPF_CONF_KEY"))
		h->identity_file = strdup(getenv("RDHPF_CONF_KEY"));
	if (getenv("RDHPF_CONF_KNOWN_HOSTS"))
		h->known_hosts = strdup(getenv("RDHPF_CONF_KNOWN_HOSTS"));
	h->pol.connect_timeout_ms = 10000;
	if (opts != NULL && *opts) {
		char *dup = strdup(opts), *save = NULL;
		for (char *kv = strtok_r(dup, ";", &save); kv; kv = strtok_r(NULL, ";", &save)) {
			char *eq = strchr(kv, '=');
			if (eq == NULL)
				continue;
			*eq = '\0';
			h->opts = realloc(h->opts, (h->n_opts + 1) * sizeof *h->opts);
			h->opts[h->n_opts].key = strdup(kv);
			h->opts[h->n_opts].value = strdup(eq + 1);
			h->opts[h->n_opts].line = 0;
			h->opts[h->n_opts].from_defaults = 0;
			h->n_opts++;
		}
		free(dup);
	}
}

struct h_done {
	bool called;
	bool called_inline; /* before the op returned: a contract breach */
	bool in_op;
	int status;
	char detail[1024];
};

static void
h_done_cb(void *arg, int status, const char *detail)
{
	struct h_done *d = arg;
	d->called_inline = d->in_op;
	d->called = true;
	d->status = status;
	snprintf(d->detail, sizeof d->detail, "%s", detail ? detail : "");
}

static size_t
h_ctx_handles(const struct rdhpf_ctx *ctx)
{
	return ctx->handles != NULL;
}

#endif
