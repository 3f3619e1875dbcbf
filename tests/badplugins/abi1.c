/* A runtime built for plugin ABI 1.1, as plugins were before 2.0: its own
 * copy of the 1.x info block (no struct_size in the ops tables, options as
 * an array), so that the loader's refusal is tested against the real
 * layout rather than a 2.0 block with a changed number. */
#include <stddef.h>
#include <stdint.h>

struct v1_option_desc {
	const char *name;
	const char *help;
};

struct v1_runtime_ops {
	int (*create)(void *ctx, const void *p, void **state, char *err, size_t errlen);
	void (*destroy)(void *state);
	int (*watch)(void *state, const void *cbs, void *arg);
	int (*list)(void *state, void *done, void *arg);
	void (*stop)(void *state);
};

struct v1_plugin_info {
	uint32_t abi_major;
	uint32_t abi_minor;
	uint32_t struct_size;
	int kind;
	const char *name;
	const char *version;
	const char *description;
	uint64_t caps;
	const struct v1_option_desc *options;
	union {
		const void *transport;
		const struct v1_runtime_ops *runtime;
	} ops;
};

static int
v1_create(void *ctx, const void *p, void **state, char *err, size_t errlen)
{
	(void)ctx;
	(void)p;
	(void)state;
	(void)err;
	(void)errlen;
	return -14;
}

static void
v1_destroy(void *state)
{
	(void)state;
}

static int
v1_watch(void *state, const void *cbs, void *arg)
{
	(void)state;
	(void)cbs;
	(void)arg;
	return -14;
}

static int
v1_list(void *state, void *done, void *arg)
{
	(void)state;
	(void)done;
	(void)arg;
	return -14;
}

static const struct v1_runtime_ops ops = {v1_create, v1_destroy, v1_watch, v1_list, v1_destroy};

static const struct v1_option_desc options[] = {{"namespace", "a 1.x option"}, {NULL, NULL}};

static const struct v1_plugin_info info = {
    .abi_major = 1,
    .abi_minor = 1,
    .struct_size = sizeof(struct v1_plugin_info),
    .kind = 2,
    .name = "old-runtime",
    .version = "1.0",
    .description = "built for ABI 1.1",
    .caps = 1,
    .options = options,
    .ops.runtime = &ops,
};

__attribute__((visibility("default"))) const struct v1_plugin_info *
rdhpf_plugin_init(const void *host);

__attribute__((visibility("default"))) const struct v1_plugin_info *
rdhpf_plugin_init(const void *host)
{
	(void)host;
	return &info;
}
