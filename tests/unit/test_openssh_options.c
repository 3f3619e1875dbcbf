/* The openssh transport's options, as check-config sees them: the built
 * plugin is loaded and its info block's option table and validate_option
 * are checked (no host API call is made: validation is pure). */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rdhpf/plugin.h"

static const struct rdhpf_plugin_info *info;

/* A value each declared option accepts.  An option added to the plugin
 * without a line here fails test_every_option_is_validated. */
static const struct {
	const char *key;
	const char *good;
} goods[] = {
    {"ssh_binary", "/usr/bin/ssh"},
    {"ssh_config", "/etc/ssh/ssh_config"},
    {"pdeathsig", "no"},
    {"liveness", "yes"},
};

static int
load(void **state)
{
	static struct rdhpf_host_api host = {
	    .abi_major = RDHPF_ABI_MAJOR,
	    .abi_minor = RDHPF_ABI_MINOR,
	    .struct_size = sizeof(struct rdhpf_host_api),
	};
	void *so = dlopen(OPENSSH_SO, RTLD_NOW | RTLD_LOCAL);
	rdhpf_plugin_init_fn init;

	(void)state;
	if (so == NULL) {
		print_error("dlopen %s: %s\n", OPENSSH_SO, dlerror());
		return -1;
	}
	*(void **)&init = dlsym(so, RDHPF_PLUGIN_ENTRY);
	if (init == NULL)
		return -1;
	info = init(&host);
	return info == NULL ? -1 : 0;
}

static void
expect(const char *key, const char *value, int want, const char *needle)
{
	char err[256] = "";
	int r = info->validate_option(key, value, err, sizeof err);

	if (r != want)
		fail_msg("%s = \"%s\": got %d, want %d (%s)", key, value, r, want, err);
	if (needle != NULL && strstr(err, needle) == NULL)
		fail_msg("%s = \"%s\": reason \"%s\" does not say \"%s\"", key, value, err, needle);
	if (want != RDHPF_OK && (err[0] == '\0' || err[strlen(err) - 1] == '\n'))
		fail_msg("%s = \"%s\": reason \"%s\" empty or ends in a newline", key, value, err);
}

static void
test_table_is_abi2(void **state)
{
	(void)state;
	assert_int_equal(info->abi_major, 2);
	assert_non_null(info->options);
	assert_non_null(info->validate_option);
	assert_non_null(info->ops.transport);
	assert_int_equal(info->ops.transport->struct_size, sizeof(struct rdhpf_transport_ops));
	for (size_t i = 0; info->options[i] != NULL; i++) {
		assert_int_equal(info->options[i]->struct_size, sizeof(struct rdhpf_option_desc));
		assert_non_null(info->options[i]->help);
		assert_int_equal(
		    strspn(info->options[i]->name, "abcdefghijklmnopqrstuvwxyz0123456789_"),
		    strlen(info->options[i]->name));
	}
}

/* Every declared option has a value it accepts and one it refuses. */
static void
test_every_option_is_validated(void **state)
{
	size_t n = 0;

	(void)state;
	for (size_t i = 0; info->options[i] != NULL; i++, n++) {
		const char *key = info->options[i]->name, *good = NULL;
		for (size_t j = 0; j < sizeof goods / sizeof goods[0]; j++)
			if (strcmp(goods[j].key, key) == 0)
				good = goods[j].good;
		if (good == NULL)
			fail_msg("option %s has no known-good value in this test", key);
		expect(key, good, RDHPF_OK, NULL);
		expect(key, "", RDHPF_ERR_INVAL, NULL);
	}
	assert_int_equal(n, sizeof goods / sizeof goods[0]);
}

static void
test_reasons_name_the_bad_part(void **state)
{
	(void)state;
	expect("ssh_binary", "", RDHPF_ERR_INVAL, "empty: a program expected");
	expect("ssh_binary", "-oProxyCommand=x", RDHPF_ERR_INVAL,
	       "'-oProxyCommand=x' starts with '-'");
	expect("ssh_binary", "ssh\tx", RDHPF_ERR_INVAL, "control character 0x09 at byte 4");
	expect("ssh_config", "-F", RDHPF_ERR_INVAL,
	       "starts with '-': ssh would take it for an "
	       "option, not a file");
	expect("ssh_config", "/etc/ssh/cfg\n", RDHPF_ERR_INVAL,
	       "control character 0x0a at byte 13");
	expect("pdeathsig", "maybe", RDHPF_ERR_INVAL, "\"maybe\" is not a boolean");
	expect("liveness", "nope", RDHPF_ERR_INVAL, "\"nope\" is not a boolean");
	expect("no_such_key", "1", RDHPF_ERR_INVAL, "not an option of the openssh transport");
	/* Accepted as create accepts them. */
	expect("ssh_binary", "ssh", RDHPF_OK, NULL);
	expect("ssh_config", "/home/u/my ssh config", RDHPF_OK, NULL);
	expect("pdeathsig", "yes", RDHPF_OK, NULL);
	expect("liveness", "off", RDHPF_OK, NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table_is_abi2),
	    cmocka_unit_test(test_every_option_is_validated),
	    cmocka_unit_test(test_reasons_name_the_bad_part),
	};

	return cmocka_run_group_tests(tests, load, NULL);
}
