/* The loader's pure check of a plugin's info block. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core.h"

static int
nop_create(struct rdhpf_ctx *c, const struct rdhpf_host_params *p, void **s, char *e, size_t l)
{
	(void)c;
	(void)p;
	(void)s;
	(void)e;
	(void)l;
	return 0;
}
static void
nop_void(void *s)
{
	(void)s;
}
static int
nop_watch(void *s, const struct rdhpf_watch_cbs *c, void *a)
{
	(void)s;
	(void)c;
	(void)a;
	return 0;
}
static int
nop_list(void *s, rdhpf_list_fn d, void *a)
{
	(void)s;
	(void)d;
	(void)a;
	return 0;
}

static int
nop_done(void *s, rdhpf_done_fn d, void *a)
{
	(void)s;
	(void)d;
	(void)a;
	return 0;
}
static int
nop_fwd(void *s, const struct rdhpf_forward *f, rdhpf_done_fn d, void *a)
{
	(void)s;
	(void)f;
	(void)d;
	(void)a;
	return 0;
}
static int
nop_exec(void *s, const char *const *v, const struct rdhpf_stream_cbs *c, void *a, void **o)
{
	(void)s;
	(void)v;
	(void)c;
	(void)a;
	(void)o;
	return 0;
}
static int
nop_write(void *s, void *st, const void *b, size_t l)
{
	(void)s;
	(void)st;
	(void)b;
	(void)l;
	return 0;
}
static void
nop_close(void *s, void *st)
{
	(void)s;
	(void)st;
}

static struct rdhpf_runtime_ops rops;
static struct rdhpf_plugin_info info;

static int
setup(void **s)
{
	(void)s;
	memset(&rops, 0, sizeof rops);
	rops.struct_size = sizeof rops;
	rops.create = nop_create;
	rops.destroy = nop_void;
	rops.watch = nop_watch;
	rops.list = nop_list;
	rops.stop = nop_void;
	memset(&info, 0, sizeof info);
	info.abi_major = RDHPF_ABI_MAJOR;
	info.abi_minor = RDHPF_ABI_MINOR;
	info.struct_size = sizeof info;
	info.kind = RDHPF_KIND_RUNTIME;
	info.name = "good-one";
	info.version = "1";
	info.caps = RDHPF_RCAP_EVENTS;
	info.ops.runtime = &rops;
	return 0;
}

static void
test_good(void **s)
{
	char why[256] = "";
	(void)s;
	assert_int_equal(plugin_check_info(&info, why, sizeof why), 0);
}

static void
test_major_mismatch_names_both(void **s)
{
	char why[256] = "", want[64];
	(void)s;
	info.abi_major = RDHPF_ABI_MAJOR + 1;
	info.abi_minor = 7;
	rops.list = NULL; /* ABI is checked first, before anything else */
	assert_int_equal(plugin_check_info(&info, why, sizeof why), -1);
	snprintf(want, sizeof want, "built for plugin ABI %d.7; this rdhpf speaks %d.%d",
	         RDHPF_ABI_MAJOR + 1, RDHPF_ABI_MAJOR, RDHPF_ABI_MINOR);
	assert_non_null(strstr(why, want));
}

static void
test_newer_minor_accepted(void **s)
{
	char why[256] = "";
	(void)s;
	info.abi_minor = RDHPF_ABI_MINOR + 5;
	info.struct_size = sizeof info + 64; /* appended members */
	assert_int_equal(plugin_check_info(&info, why, sizeof why), 0);
}

static void
test_small_struct_refused(void **s)
{
	char why[256] = "";
	(void)s;
	info.struct_size = 8;
	assert_int_equal(plugin_check_info(&info, why, sizeof why), -1);
	assert_non_null(strstr(why, "info block is 8 bytes"));
}

static void
test_null_mandatory_slot(void **s)
{
	char why[256] = "";
	(void)s;
	rops.stop = NULL;
	assert_int_equal(plugin_check_info(&info, why, sizeof why), -1);
	assert_string_equal(why, "mandatory slot stop is NULL");
}

/* A slot outside the plugin's ops struct_size is absent, whatever the
 * memory after the table holds. */
static void
test_ops_size(void **s)
{
	char why[256] = "";
	(void)s;
	rops.struct_size = offsetof(struct rdhpf_runtime_ops, stop);
	assert_int_equal(plugin_check_info(&info, why, sizeof why), -1);
	assert_non_null(strstr(why, "runtime ops table is"));
	rops.struct_size = sizeof rops + 32; /* a newer minor: fine */
	assert_int_equal(plugin_check_info(&info, why, sizeof why), 0);
	assert_true(slot_present(&info, SLOT_R_STOP));
	rops.struct_size = offsetof(struct rdhpf_runtime_ops, stop);
	assert_false(slot_present(&info, SLOT_R_STOP));
	assert_true(slot_present(&info, SLOT_R_LIST));
}

static void
test_slot_inside(void **s)
{
	(void)s;
	assert_true(slot_inside(16, 8, 8));
	assert_false(slot_inside(15, 8, 8));
	assert_false(slot_inside(0, 0, 1));
	assert_true(slot_inside(UINT32_MAX, 8, 8));
	assert_string_equal(slot_name(SLOT_T_HEALTH), "health_check");
	assert_string_equal(slot_name(SLOT_R_LIST), "list");
}

/* RDHPF_RCAP_EVENTS and watch go together; without the cap, watch is
 * ignored (poll-only) and may be NULL. */
static void
test_events_cap(void **s)
{
	char why[256] = "";
	(void)s;
	rops.watch = NULL;
	assert_int_equal(plugin_check_info(&info, why, sizeof why), -1);
	assert_string_equal(why, "claims events but watch is NULL");
	info.caps = 0;
	assert_int_equal(plugin_check_info(&info, why, sizeof why), 0);
	rops.watch = nop_watch;
	assert_int_equal(plugin_check_info(&info, why, sizeof why), 0);
}

static const struct rdhpf_option_desc *const good[] = {RDHPF_OPTION("ports", "ports"),
                                                       RDHPF_OPTION("include_ports", "x"), NULL};
static const struct rdhpf_option_desc *const bad[] = {RDHPF_OPTION("ports", "ports"),
                                                      RDHPF_OPTION("Bad-Name", "x"), NULL};

static void
test_options_table(void **s)
{
	char why[256] = "";
	(void)s;
	info.options = good;
	assert_int_equal(plugin_check_info(&info, why, sizeof why), 0);
	info.options = bad;
	assert_int_equal(plugin_check_info(&info, why, sizeof why), -1);
	assert_string_equal(why, "option 2 has a bad name (want [a-z0-9_]+)");
}

static void
test_bad_name_kind(void **s)
{
	char why[256] = "";
	(void)s;
	info.name = "../evil";
	assert_int_equal(plugin_check_info(&info, why, sizeof why), -1);
	info.name = "ok";
	info.kind = 9;
	assert_int_equal(plugin_check_info(&info, why, sizeof why), -1);
	assert_non_null(strstr(why, "unknown plugin kind 9"));
	assert_int_equal(plugin_check_info(NULL, why, sizeof why), -1);
}

static void
test_claimed_cap_needs_slot(void **s)
{
	static struct rdhpf_transport_ops t;
	char why[256] = "";
	(void)s;
	memset(&t, 0, sizeof t);
	t.struct_size = sizeof t;
	t.create = nop_create;
	t.destroy = nop_void;
	t.connect = nop_done;
	t.disconnect = nop_void;
	t.health_check = nop_done;
	t.forward_add = nop_fwd;
	t.forward_remove = nop_fwd;
	t.exec = nop_exec;
	t.stream_write = nop_write;
	t.stream_close = nop_close;
	info.kind = RDHPF_KIND_TRANSPORT;
	info.ops.transport = &t;
	info.caps = RDHPF_TCAP_EXEC;
	assert_int_equal(plugin_check_info(&info, why, sizeof why), 0);
	info.caps = RDHPF_TCAP_UNIX_STREAM;
	assert_int_equal(plugin_check_info(&info, why, sizeof why), -1);
	assert_string_equal(why, "claims unix-stream but open_unix is NULL");
	info.caps = RDHPF_TCAP_FORWARD_STATS;
	assert_int_equal(plugin_check_info(&info, why, sizeof why), -1);
	assert_string_equal(why, "claims forward-stats but forward_stats is NULL");
	/* Without EXEC or UNIX_STREAM a transport needs no stream slots. */
	info.caps = 0;
	t.exec = NULL;
	t.stream_write = NULL;
	t.stream_close = NULL;
	assert_int_equal(plugin_check_info(&info, why, sizeof why), 0);
	info.caps = RDHPF_TCAP_EXEC;
	assert_int_equal(plugin_check_info(&info, why, sizeof why), -1);
	assert_string_equal(why, "claims exec but exec is NULL");
	t.exec = nop_exec;
	assert_int_equal(plugin_check_info(&info, why, sizeof why), -1);
	assert_string_equal(why, "claims exec but stream_write is NULL");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_good, setup),
	    cmocka_unit_test_setup(test_major_mismatch_names_both, setup),
	    cmocka_unit_test_setup(test_newer_minor_accepted, setup),
	    cmocka_unit_test_setup(test_small_struct_refused, setup),
	    cmocka_unit_test_setup(test_null_mandatory_slot, setup),
	    cmocka_unit_test_setup(test_bad_name_kind, setup),
	    cmocka_unit_test_setup(test_claimed_cap_needs_slot, setup),
	    cmocka_unit_test_setup(test_ops_size, setup),
	    cmocka_unit_test(test_slot_inside),
	    cmocka_unit_test_setup(test_events_cap, setup),
	    cmocka_unit_test_setup(test_options_table, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
