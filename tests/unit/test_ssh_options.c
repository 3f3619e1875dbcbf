/* The in-process SSH transports' per-host options: the info block's table
 * (RDHPF_OPTION pointers) and validate_option, which check-config calls.
 * Each plugin is dlopen'ed from the build tree (argv[1]: libssh2 or libssh,
 * argv[2]: its .so); validate_option does no I/O and needs no host API. */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "rdhpf/plugin.h"

static const struct rdhpf_plugin_info *info;
static const char *which;

/* Not called: the entry function only stores the table. */
static const struct rdhpf_host_api host = {
    .abi_major = RDHPF_ABI_MAJOR,
    .abi_minor = RDHPF_ABI_MINOR,
    .struct_size = sizeof(struct rdhpf_host_api),
};

/* validate_option(key, value) must fail with a reason containing want. */
static void
expect_bad(const char *key, const char *value, const char *want)
{
	char err[600] = "";
	int r = info->validate_option(key, value, err, sizeof err);

	if (r != RDHPF_ERR_INVAL || strstr(err, want) == NULL)
		fail_msg("%s: %s = '%s': got %d '%s', want RDHPF_ERR_INVAL naming '%s'", which, key,
		         value, r, err, want);
	assert_null(strchr(err, '\n'));
}

static void
expect_ok(const char *key, const char *value)
{
	char err[600] = "";
	int r = info->validate_option(key, value, err, sizeof err);

	if (r != RDHPF_OK)
		fail_msg("%s: %s = '%s': got %d '%s', want RDHPF_OK", which, key, value, r, err);
}

static void
test_tables(void **s)
{
	size_t n = 0;

	(void)s;
	assert_int_equal(info->abi_major, RDHPF_ABI_MAJOR);
	assert_int_equal(info->kind, RDHPF_KIND_TRANSPORT);
	assert_non_null(info->ops.transport);
	assert_int_equal(info->ops.transport->struct_size, sizeof(struct rdhpf_transport_ops));
	assert_non_null(info->validate_option);
	assert_non_null(info->options);
	for (const struct rdhpf_option_desc *const *o = info->options; *o; o++, n++) {
		char err[600] = "";
		assert_int_equal((*o)->struct_size, sizeof(struct rdhpf_option_desc));
		assert_non_null((*o)->help);
		assert_int_equal(strspn((*o)->name, "abcdefghijklmnopqrstuvwxyz0123456789_"),
		                 strlen((*o)->name));
		/* Every declared key is one validate_option knows. */
		info->validate_option((*o)->name, "", err, sizeof err);
		assert_null(strstr(err, "not an option"));
	}
	assert_true(n >= 3);
	expect_bad("no_such_key", "1", "not an option");
}

static void
test_libssh2(void **s)
{
	(void)s;
	expect_ok("window", "2M");
	expect_ok("window", "65536");
	expect_ok("window", "1G");
	expect_bad("window", "", "empty");
	expect_bad("window", "big", "'big' does not start with a number");
	expect_bad("window", "4X", "unexpected 'X'");
	expect_bad("window", "32K", "below the minimum 64K");
	expect_bad("window", "2G", "above the maximum 1G");
	expect_bad("window", "99999999999999999999", "above the maximum 1G");
	expect_ok("max_relays", "100");
	expect_bad("max_relays", "0", "below the minimum 1");
	expect_bad("max_relays", "1000001", "above the maximum 1000000");
	expect_ok("agent", "yes");
	expect_ok("agent", "no");
	expect_bad("agent", "maybe", "'maybe' is neither yes nor no");
	expect_ok("ciphers", "aes256-ctr,aes128-ctr");
	expect_ok("ciphers", "no-such-cipher,aes128-ctr"); /* libssh2 drops unknown names */
	expect_bad("ciphers", "no-such-cipher", "none of 'no-such-cipher'");
	expect_bad("ciphers", "no-such-cipher", "aes128-ctr"); /* and says what it has */
	expect_bad("ciphers", "", "empty");
	expect_ok("macs", "hmac-sha2-256");
	expect_bad("macs", "hmac-nope", "none of 'hmac-nope'");
}

static void
test_libssh(void **s)
{
	(void)s;
	expect_ok("agent", "yes");
	expect_ok("agent", "no");
	expect_bad("agent", "on", "'on' is neither yes nor no");
	expect_ok("ciphers", "aes128-ctr");
	expect_bad("ciphers", "no-such-cipher", "none of 'no-such-cipher'");
	expect_bad("ciphers", "", "empty");
	expect_ok("ssh_config", "none");
	expect_ok("ssh_config", "/etc/ssh/ssh_config");
	expect_bad("ssh_config", "", "empty");
}

int
main(int argc, char **argv)
{
	rdhpf_plugin_init_fn init;
	void *h;

	if (argc != 3) {
		fprintf(stderr, "usage: %s libssh2|libssh PLUGIN.so\n", argv[0]);
		return 2;
	}
	which = argv[1];
	h = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		fprintf(stderr, "dlopen %s: %s\n", argv[2], dlerror());
		return 1;
	}
	*(void **)&init = dlsym(h, RDHPF_PLUGIN_ENTRY);
	if (init == NULL || (info = init(&host)) == NULL) {
		fprintf(stderr, "%s: no %s\n", argv[2], RDHPF_PLUGIN_ENTRY);
		return 1;
	}
	const struct CMUnitTest common[] = {cmocka_unit_test(test_tables)};
	const struct CMUnitTest ls2[] = {cmocka_unit_test(test_libssh2)};
	const struct CMUnitTest lsh[] = {cmocka_unit_test(test_libssh)};
	int r = cmocka_run_group_tests_name("tables", common, NULL, NULL);
	if (strcmp(which, "libssh2") == 0)
		r |= cmocka_run_group_tests_name("libssh2 options", ls2, NULL, NULL);
	else
		r |= cmocka_run_group_tests_name("libssh options", lsh, NULL, NULL);
	return r;
}
