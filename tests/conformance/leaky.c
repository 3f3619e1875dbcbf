/* runtime-leaky: a runtime that breaks two rules on purpose, for
 * rdhpf-conformance's own test (selftest.sh): each list starts a timer
 * that nothing stops (a leak the program must name by its callback), and
 * validate_option refuses a value create accepts.  Not installed. */
#include <stdlib.h>
#include <string.h>

#include <rdhpf/plugin.h>
#include <rdhpf/sdk.h>

static const struct rdhpf_host_api *H;

struct lk {
	struct rdhpf_ctx *ctx;
	struct rsdk_cset set;
};

static void
leaky_tick(void *arg)
{
	(void)arg;
}

static int
lk_validate(const char *key, const char *value, char *err, size_t errlen)
{
	if (strcmp(key, "mode") == 0 && strcmp(value, "ok") != 0)
		return rsdk_check_enum(value, (const char *const[]){"ok", NULL}, err, errlen);
	return RDHPF_OK;
}

static int
lk_create(struct rdhpf_ctx *ctx, const struct rdhpf_host_params *p, void **state, char *err,
          size_t errlen)
{
	struct lk *l = calloc(1, sizeof *l);
	struct rsdk_cont c = {0};

	(void)p;
	(void)err;
	(void)errlen;
	if (l == NULL)
		return RDHPF_ERR_NOMEM;
	l->ctx = ctx;
	rsdk_cset_init(&l->set);
	if (rsdk_cont_init(&c, "leaky", "leaky") != RDHPF_OK ||
	    rsdk_cont_add_port(&c, "127.0.0.1", 18555, 18555, RDHPF_PROTO_TCP) != RDHPF_OK ||
	    rsdk_cset_put(&l->set, &c) != RDHPF_OK) {
		rsdk_cont_clear(&c);
		rsdk_cset_free(&l->set);
		free(l);
		return RDHPF_ERR_NOMEM;
	}
	*state = l;
	return RDHPF_OK;
}

static void
lk_stop(void *state)
{
	(void)state;
}

static void
lk_destroy(void *state)
{
	struct lk *l = state;

	rsdk_cset_free(&l->set);
	free(l);
}

static int
lk_list(void *state, rdhpf_list_fn done, void *arg)
{
	struct lk *l = state;

	H->timer_start(l->ctx, 60000, 0, leaky_tick, NULL); /* never stopped */
	rsdk_list_reply(H, l->ctx, done, arg, &l->set);
	return RDHPF_OK;
}

static const struct rdhpf_runtime_ops lk_ops = {
    RDHPF_INIT(rdhpf_runtime_ops),
    .create = lk_create,
    .destroy = lk_destroy,
    .list = lk_list,
    .stop = lk_stop,
};

static const struct rdhpf_option_desc *const lk_options[] = {
    RDHPF_OPTION("mode", "ok"),
    NULL,
};

static const struct rdhpf_plugin_info lk_info = {
    .abi_major = RDHPF_ABI_MAJOR,
    .abi_minor = RDHPF_ABI_MINOR,
    .struct_size = sizeof(struct rdhpf_plugin_info),
    .kind = RDHPF_KIND_RUNTIME,
    .name = "leaky",
    .version = "0",
    .description = "breaks rules on purpose (rdhpf-conformance's own test)",
    .options = lk_options,
    .validate_option = lk_validate,
    .ops.runtime = &lk_ops,
};

RDHPF_PLUGIN_DECLARE
{
	H = host;
	return &lk_info;
}
