/* runtime-static: a fixed list of remote ports, forwarded with all of
 * rdhpf's supervision (reconnect, backoff, health checks): an autossh
 * replacement for services that do not run in containers.
 *
 *     runtime = static
 *     ports = 5432, 6379, 8000-8010
 *     name = db            (optional; names the one pseudo-container)
 *
 * Poll-only (no RDHPF_RCAP_EVENTS): list() answers the same pseudo-container
 * every time, its ports published on the remote's 127.0.0.1, so nothing runs
 * on the remote.  Written against the installed SDK only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rdhpf/plugin.h>
#include <rdhpf/sdk.h>

/* A range like 1-65535 is a mistake, not a wish for 64k listeners. */
#define ST_MAX_PORTS 1024

static const struct rdhpf_host_api *H;

struct st {
	struct rdhpf_ctx *ctx;
	struct rsdk_cset set; /* the one pseudo-container */
};

static int
st_count_ports(const struct rsdk_ranges *r, char *err, size_t errlen)
{
	static unsigned char seen[65536 / 8];
	size_t n = 0;

	/* Distinct ports: overlapping ranges count once. */
	memset(seen, 0, sizeof seen);
	for (size_t i = 0; i < r->n; i++)
		for (unsigned p = r->v[i].lo; p <= r->v[i].hi; p++)
			if (!(seen[p / 8] & (1u << (p % 8)))) {
				seen[p / 8] |= (unsigned char)(1u << (p % 8));
				n++;
			}
	if (n > ST_MAX_PORTS) {
		snprintf(err, errlen, "%zu ports, at most %d", n, ST_MAX_PORTS);
		return RDHPF_ERR_INVAL;
	}
	return RDHPF_OK;
}

static int
st_validate(const char *key, const char *value, char *err, size_t errlen)
{
	struct rsdk_ranges r = {0};
	int rc;

	if (strcmp(key, "name") == 0)
		return rsdk_check_name(value, err, errlen);
	if (strcmp(key, "ports") != 0)
		return RDHPF_OK;
	rc = rsdk_parse_ranges(value, &r, err, errlen);
	if (rc == RDHPF_OK)
		rc = st_count_ports(&r, err, errlen);
	rsdk_ranges_free(&r);
	return rc;
}

/* Fill the pseudo-container from the options; err names the key. */
static int
st_build(struct st *s, const char *ports, const char *name, char *err, size_t errlen)
{
	struct rsdk_ranges r = {0};
	struct rsdk_cont c = {0};
	char why[200] = "";
	int rc;

	if (ports == NULL) {
		snprintf(err, errlen, "ports: required (e.g. ports = 5432, 6379, 8000-8010)");
		return RDHPF_ERR_INVAL;
	}
	if ((rc = st_validate("ports", ports, why, sizeof why)) != RDHPF_OK) {
		snprintf(err, errlen, "ports: %s", why);
		return rc;
	}
	if (name != NULL && (rc = st_validate("name", name, why, sizeof why)) != RDHPF_OK) {
		snprintf(err, errlen, "name: %s", why);
		return rc;
	}
	if ((rc = rsdk_parse_ranges(ports, &r, why, sizeof why)) != RDHPF_OK)
		return rc;
	rc = rsdk_cont_init(&c, "static", name != NULL ? name : "static");
	for (size_t i = 0; rc == RDHPF_OK && i < r.n; i++)
		for (uint32_t p = r.v[i].lo; rc == RDHPF_OK && p <= r.v[i].hi; p++)
			rc = rsdk_cont_add_port(&c, "127.0.0.1", (uint16_t)p, (uint16_t)p,
			                        RDHPF_PROTO_TCP);
	rsdk_ranges_free(&r);
	if (rc == RDHPF_OK)
		rc = rsdk_cset_put(&s->set, &c);
	rsdk_cont_clear(&c);
	if (rc != RDHPF_OK)
		snprintf(err, errlen, "out of memory");
	return rc;
}

static int
st_create(struct rdhpf_ctx *ctx, const struct rdhpf_host_params *p, void **state, char *err,
          size_t errlen)
{
	struct st *s = calloc(1, sizeof *s);
	int rc;
	(void)p; /* everything is in the options */

	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return RDHPF_ERR_NOMEM;
	}
	s->ctx = ctx;
	rsdk_cset_init(&s->set);
	rc = st_build(s, H->option(ctx, "ports"), H->option(ctx, "name"), err, errlen);
	if (rc != RDHPF_OK) {
		rsdk_cset_free(&s->set);
		free(s);
		return rc;
	}
	*state = s;
	return RDHPF_OK;
}

static void
st_stop(void *state)
{
	(void)state; /* nothing runs between calls: list answers at once */
}

static void
st_destroy(void *state)
{
	struct st *s = state;

	if (s == NULL)
		return;
	rsdk_cset_free(&s->set);
	free(s);
}

/* Answered inside the call, which the ABI allows (the core defers the
 * callback).  The core may destroy us inside done: touch nothing after. */
static int
st_list(void *state, rdhpf_list_fn done, void *arg)
{
	struct st *s = state;

	rsdk_list_reply(H, s->ctx, done, arg, &s->set);
	return RDHPF_OK;
}

static const struct rdhpf_runtime_ops st_ops = {
    RDHPF_INIT(rdhpf_runtime_ops),
    .create = st_create,
    .destroy = st_destroy,
    .watch = NULL, /* poll-only */
    .list = st_list,
    .stop = st_stop,
};

static const struct rdhpf_option_desc *const st_options[] = {
    RDHPF_OPTION("ports", "remote TCP ports to forward: 5432, 6379, 8000-8010 (required)"),
    RDHPF_OPTION("name", "name of the pseudo-container in status and logs (default static)"),
    NULL,
};

static const struct rdhpf_plugin_info st_info = {
    .abi_major = RDHPF_ABI_MAJOR,
    .abi_minor = RDHPF_ABI_MINOR,
    .struct_size = sizeof(struct rdhpf_plugin_info),
    .kind = RDHPF_KIND_RUNTIME,
    .name = "static",
    .version = "1.0",
    .description = "a fixed list of remote ports (autossh-style), poll-only",
    .caps = 0,
    .options = st_options,
    .validate_option = st_validate,
    .ops.runtime = &st_ops,
};

RDHPF_PLUGIN_DECLARE
{
	H = host;
	return &st_info;
}
