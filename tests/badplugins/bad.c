/* Deliberately broken plugins for the loader's tests.  BAD_KIND selects:
 *   1  ABI major 3 (from the future)
 *   2  a mandatory slot left NULL */
#include "rdhpf/plugin.h"

static int
nop_create(struct rdhpf_ctx *ctx, const struct rdhpf_host_params *p, void **state, char *err,
           size_t errlen)
{
	(void)ctx;
	(void)p;
	(void)state;
	(void)err;
	(void)errlen;
	return RDHPF_ERR_UNSUPPORTED;
}

static void
nop_destroy(void *state)
{
	(void)state;
}

static const struct rdhpf_runtime_ops ops = {
    RDHPF_INIT(rdhpf_runtime_ops), .create = nop_create, .destroy = nop_destroy,
    /* list, stop missing */
};

static const struct rdhpf_plugin_info info = {
#if BAD_KIND == 1
    .abi_major = RDHPF_ABI_MAJOR + 1,
#else
    .abi_major = RDHPF_ABI_MAJOR,
#endif
    .abi_minor = 0,
    .struct_size = sizeof(struct rdhpf_plugin_info),
    .kind = RDHPF_KIND_RUNTIME,
    .name = "broken",
    .version = "0",
    .ops.runtime = &ops,
};

RDHPF_PLUGIN_DECLARE
{
	(void)host;
	return &info;
}
