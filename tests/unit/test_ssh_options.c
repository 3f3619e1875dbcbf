/* The in-process SSH transports without a server: the info block's option
 * table (RDHPF_OPTION pointers) and validate_option, which check-config
 * calls; and, on a stub host API, the ABI 2.0 size rules of forward_add,
 * forward_stats and exec.  Each plugin is dlopen'ed from the build tree
 * (argv[1]: libssh2 or libssh, argv[2]: its .so). */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "rdhpf/plugin.h"

static const struct rdhpf_plugin_info *info;
static const char *which;

/* A host API that never calls back: timers and io watches are recorded
 * handles that never fire, so every operation stays pending. */
static int n_timers, n_ios;
static char handle;

static void
h_log(struct rdhpf_ctx *ctx, int level, const char *msg, ...)
{
	(void)ctx;
	(void)level;
	(void)msg;
}

static uint64_t
h_now_ms(struct rdhpf_ctx *ctx)
{
	(void)ctx;
	return 1000;
}

static struct rdhpf_io *
h_io_start(struct rdhpf_ctx *ctx, int fd, unsigned ev, rdhpf_io_fn cb, void *arg)
{
	(void)ctx;
	(void)fd;
	(void)ev;
	(void)cb;
	(void)arg;
	n_ios++;
	return (struct rdhpf_io *)&handle;
}

static int
h_io_update(struct rdhpf_io *io, unsigned ev)
{
	(void)io;
	(void)ev;
	return RDHPF_OK;
}

static void
h_io_stop(struct rdhpf_io *io)
{
	(void)io;
	n_ios--;
}

static struct rdhpf_timer *
h_timer_start(struct rdhpf_ctx *ctx, uint64_t after, uint64_t rep, rdhpf_timer_fn cb, void *arg)
{
	(void)ctx;
	(void)after;
	(void)rep;
	(void)cb;
	(void)arg;
	n_timers++;
	return (struct rdhpf_timer *)&handle;
}

static void
h_timer_stop(struct rdhpf_timer *t)
{
	(void)t;
	n_timers--;
}

static const char *
h_option(struct rdhpf_ctx *ctx, const char *key)
{
	(void)ctx;
	(void)key;
	return NULL;
}

static const struct rdhpf_host_api host = {
    .abi_major = RDHPF_ABI_MAJOR,
    .abi_minor = RDHPF_ABI_MINOR,
    .struct_size = sizeof(struct rdhpf_host_api),
    .log = h_log,
    .now_ms = h_now_ms,
    .io_start = h_io_start,
    .io_update = h_io_update,
    .io_stop = h_io_stop,
    .timer_start = h_timer_start,
    .timer_stop = h_timer_stop,
    .option = h_option,
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
	expect_bad("ciphers", "no-such-cipher", "'no-such-cipher' names nothing libssh2");
	expect_bad("ciphers", "no-such-cipher", "aes128-ctr"); /* and says what it has */
	expect_bad("ciphers", "", "empty");
	expect_ok("macs", "hmac-sha2-256");
	expect_bad("macs", "hmac-nope", "'hmac-nope' names nothing libssh2");
}

static void
test_libssh(void **s)
{
	(void)s;
	expect_ok("agent", "yes");
	expect_ok("agent", "no");
	expect_bad("agent", "on", "'on' is neither yes nor no");
	expect_ok("ciphers", "aes128-ctr");
	expect_bad("ciphers", "no-such-cipher", "'no-such-cipher' names no cipher libssh");
	expect_bad("ciphers", "", "empty");
	expect_ok("ssh_config", "none");
	expect_ok("ssh_config", "/etc/ssh/ssh_config");
	expect_bad("ssh_config", "", "empty");
	expect_ok("window", "2M");
	expect_ok("window", "1250K");
	expect_ok("window", "65536");
	expect_bad("window", "1K", "outside 64K..64M");
	expect_bad("window", "65M", "outside 64K..64M");
	expect_bad("window", "2G", "unexpected 'G'");
	expect_bad("window", "-1M", "not a size");
	expect_bad("window", "", "not a size");
}

static void
never_done(void *arg, int status, const char *detail)
{
	(void)arg;
	(void)status;
	(void)detail;
	fail_msg("a callback ran on a host whose timers never fire");
}

static void
on_data(void *arg, const char *buf, size_t len)
{
	(void)arg;
	(void)buf;
	(void)len;
}

static void
on_close(void *arg, int status, int code, const char *detail)
{
	(void)arg;
	(void)status;
	(void)code;
	(void)detail;
}

static uint16_t
free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* forward_add binds at once (HOLD_LISTENERS), with no session; stats are
 * written only inside the caller's struct_size; a forward or stream
 * table too small for what the plugin reads is refused. */
static void
test_sizes(void **s)
{
	const struct rdhpf_transport_ops *ops = info->ops.transport;
	struct rdhpf_host_params hp = {
	    .struct_size = sizeof hp,
	    .host_name = "t",
	    .hostname = "127.0.0.1",
	    .connect_timeout_ms = 1000,
	};
	struct rdhpf_forward f = {
	    RDHPF_INIT(rdhpf_forward), .bind_address = "127.0.0.1",
	    .local_port = free_port(), .remote_host = "127.0.0.1",
	    .remote_port = 9,
	};
	struct rdhpf_forward_stats st;
	const struct rdhpf_stream_cbs cbs0 = {
	    .struct_size = 0, .on_data = on_data, .on_close = on_close};
	const char *argv[] = {"true", NULL};
	char err[300] = "";
	void *state = NULL, *stream = NULL;

	(void)s;
	assert_int_equal(ops->create((struct rdhpf_ctx *)&handle, &hp, &state, err, sizeof err),
	                 RDHPF_OK);
	assert_int_equal(ops->forward_add(state, &f, never_done, NULL), RDHPF_OK);
	assert_true(n_ios > 0); /* the listener */

	/* A core that knows only connections and active. */
	memset(&st, 0xab, sizeof st);
	st.struct_size =
	    (uint32_t)(offsetof(struct rdhpf_forward_stats, active) + sizeof st.active);
	assert_int_equal(ops->forward_stats(state, &f, &st), RDHPF_OK);
	assert_int_equal(st.connections, 0);
	assert_int_equal(st.active, 0);
	assert_true(st.bytes_in == 0xababababababababull);
	assert_true(st.bytes_out == 0xababababababababull);
	st.struct_size = sizeof st;
	assert_int_equal(ops->forward_stats(state, &f, &st), RDHPF_OK);
	assert_int_equal(st.bytes_in, 0);
	assert_int_equal(st.bytes_out, 0);

	/* remote_port outside struct_size: refused, not read. */
	f.struct_size = (uint32_t)offsetof(struct rdhpf_forward, remote_port);
	assert_int_equal(ops->forward_add(state, &f, never_done, NULL), RDHPF_ERR_INVAL);
	assert_int_equal(ops->forward_stats(state, &f, &st), RDHPF_ERR_INVAL);
	f.struct_size = sizeof f;

	/* Stream callbacks with no size: neither mandatory member is there. */
	assert_int_equal(ops->exec(state, argv, &cbs0, NULL, &stream), RDHPF_ERR_INVAL);
	assert_int_equal(ops->open_unix(state, "/x.sock", &cbs0, NULL, &stream), RDHPF_ERR_INVAL);

	assert_int_equal(ops->forward_remove(state, &f, never_done, NULL), RDHPF_OK);
	ops->destroy(state);
	/* destroy stopped every io and timer it started (completions too). */
	assert_int_equal(n_ios, 0);
	assert_int_equal(n_timers, 0);
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
	const struct CMUnitTest common[] = {cmocka_unit_test(test_tables),
	                                    cmocka_unit_test(test_sizes)};
	const struct CMUnitTest ls2[] = {cmocka_unit_test(test_libssh2)};
	const struct CMUnitTest lsh[] = {cmocka_unit_test(test_libssh)};
	int r = cmocka_run_group_tests_name("tables", common, NULL, NULL);
	if (strcmp(which, "libssh2") == 0)
		r |= cmocka_run_group_tests_name("libssh2 options", ls2, NULL, NULL);
	else
		r |= cmocka_run_group_tests_name("libssh options", lsh, NULL, NULL);
	return r;
}
