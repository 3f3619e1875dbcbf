/* The docker and podman runtimes' options as check-config sees them: the
 * built plugin is loaded, and its option table and validate_option are
 * checked (validation is pure: no host API call is made).  The plugin is
 * named by RUNTIME_SO; RUNTIME_DOCKER selects docker's expectations. */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rdhpf/plugin.h"

static const struct rdhpf_plugin_info *info;

struct val {
	const char *key;
	const char *value;
	int want;
	const char *err; /* a part of the reason, or NULL */
};

/* Every declared option must have a good value here: an option added to
 * the plugin without one fails test_every_option_is_checked. */
#ifdef RUNTIME_DOCKER
static const char *const name = "docker";
static const struct val vals[] = {
    {"api", "auto", RDHPF_OK, NULL},
    {"api", "unix", RDHPF_OK, NULL},
    {"api", "dial-stdio", RDHPF_OK, NULL},
    {"api", "no-such-api", RDHPF_ERR_INVAL,
     "\"no-such-api\" is not one of: auto, unix, dial-stdio"},
    {"socket", "/var/run/docker.sock", RDHPF_OK, NULL},
    {"socket", "var/run/docker.sock", RDHPF_ERR_INVAL, "is not an absolute path"},
    {"socket", "/run/../etc/docker.sock", RDHPF_ERR_INVAL, "holds \"..\""},
    {"docker", "docker", RDHPF_OK, NULL},
    {"docker", "/usr/local/bin/docker", RDHPF_OK, NULL},
    {"docker", "docker; reboot", RDHPF_ERR_INVAL, "a name holds only"},
    {"docker", "", RDHPF_ERR_INVAL, "empty name"},
};
#else
static const char *const name = "podman";
static const struct val vals[] = {
    {"api", "cli", RDHPF_OK, NULL},
    {"api", "unix", RDHPF_OK, NULL},
    {"api", "auto", RDHPF_ERR_INVAL, "\"auto\" is not one of: cli, unix"},
    {"socket", "/run/podman/podman.sock", RDHPF_OK, NULL},
    {"socket", "podman.sock", RDHPF_ERR_INVAL, "is not an absolute path"},
    {"podman", "podman", RDHPF_OK, NULL},
    {"podman", "/usr/bin/podman", RDHPF_OK, NULL},
    {"podman", "bad ns!", RDHPF_ERR_INVAL, "\"bad ns!\": a name holds only"},
    {"events", "auto", RDHPF_OK, NULL},
    {"events", "file", RDHPF_OK, NULL},
    {"events", "journald", RDHPF_OK, NULL},
    {"events", "podman", RDHPF_OK, NULL},
    {"events", "inotify", RDHPF_ERR_INVAL, "is not one of: auto, file, journald, podman"},
    {"events_log", "/run/libpod/events/events.log", RDHPF_OK, NULL},
    {"events_log", "", RDHPF_OK, NULL},
    {"events_log", "events.log", RDHPF_ERR_INVAL, "is not an absolute path"},
};
#endif

static int
load(void **state)
{
	static struct rdhpf_host_api host = {
	    .abi_major = RDHPF_ABI_MAJOR,
	    .abi_minor = RDHPF_ABI_MINOR,
	    .struct_size = sizeof(struct rdhpf_host_api),
	};
	void *so = dlopen(RUNTIME_SO, RTLD_NOW | RTLD_LOCAL);
	rdhpf_plugin_init_fn init;

	(void)state;
	if (so == NULL) {
		print_error("dlopen %s: %s\n", RUNTIME_SO, dlerror());
		return -1;
	}
	*(void **)&init = dlsym(so, RDHPF_PLUGIN_ENTRY);
	if (init == NULL)
		return -1;
	info = init(&host);
	return info == NULL ? -1 : 0;
}

static void
test_info(void **state)
{
	(void)state;
	assert_int_equal(info->abi_major, RDHPF_ABI_MAJOR);
	assert_int_equal(info->struct_size, sizeof(struct rdhpf_plugin_info));
	assert_int_equal(info->kind, RDHPF_KIND_RUNTIME);
	assert_string_equal(info->name, name);
	assert_true(info->caps & RDHPF_RCAP_EVENTS);
	assert_non_null(info->validate_option);
	assert_non_null(info->ops.runtime);
	assert_int_equal(info->ops.runtime->struct_size, sizeof(struct rdhpf_runtime_ops));
	assert_non_null(info->ops.runtime->watch);
}

static void
test_values(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
		char err[256] = "";
		int r = info->validate_option(vals[i].key, vals[i].value, err, sizeof err);
		if (r != vals[i].want)
			fail_msg("%s = \"%s\": got %d, want %d (%s)", vals[i].key, vals[i].value, r,
			         vals[i].want, err);
		if (vals[i].err != NULL && strstr(err, vals[i].err) == NULL)
			fail_msg("%s = \"%s\": reason \"%s\" lacks \"%s\"", vals[i].key,
			         vals[i].value, err, vals[i].err);
		/* A reason is one line, for FILE:LINE: [host] key: reason. */
		assert_null(strchr(err, '\n'));
	}
}

static void
test_every_option_is_checked(void **state)
{
	size_t n = 0;
	char err[256];

	(void)state;
	for (const struct rdhpf_option_desc *const *o = info->options; *o != NULL; o++, n++) {
		size_t i;
		assert_int_equal((*o)->struct_size, sizeof(struct rdhpf_option_desc));
		assert_non_null((*o)->help);
		for (i = 0; i < sizeof vals / sizeof vals[0]; i++)
			if (strcmp(vals[i].key, (*o)->name) == 0 && vals[i].want == RDHPF_OK)
				break;
		if (i == sizeof vals / sizeof vals[0])
			fail_msg("option %s has no good value in this test", (*o)->name);
	}
	assert_true(n >= 3);
	assert_int_equal(info->validate_option("no_such_key", "x", err, sizeof err),
	                 RDHPF_ERR_INVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_info),
	    cmocka_unit_test(test_values),
	    cmocka_unit_test(test_every_option_is_checked),
	};

	return cmocka_run_group_tests(tests, load, NULL);
}
