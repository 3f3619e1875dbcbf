/* Containers as runtimes build them (core/container.c): id and value
 * validation, the struct_size-aware port copy, deep copies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "container.h"

static void
test_id(void **s)
{
	char big[200];

	(void)s;
	assert_true(container_id_ok("a"));
	assert_true(container_id_ok("3f2a9c_web-1.x"));
	assert_false(container_id_ok(""));
	assert_false(container_id_ok(NULL));
	assert_false(container_id_ok("a b"));
	assert_false(container_id_ok("a/b"));
	assert_false(container_id_ok("ab\n"));
	assert_false(container_id_ok("é"));
	memset(big, 'a', 128);
	big[128] = '\0';
	assert_true(container_id_ok(big));
	big[128] = 'a';
	big[129] = '\0';
	assert_false(container_id_ok(big));
}

static void
test_ports(void **s)
{
	struct rdhpf_container *c = container_alloc("c1", "/web");
	struct rdhpf_port p = {RDHPF_INIT(rdhpf_port), .host_ip = "::", .host_port = 443,
	                       .container_port = 8443, .proto = RDHPF_PROTO_TCP};
	struct rdhpf_port q = p;

	(void)s;
	assert_non_null(c);
	assert_string_equal(c->name, "web");
	assert_int_equal(container_port_add(c, &p), RDHPF_OK);
	q.host_port = 0;
	assert_int_equal(container_port_add(c, &q), RDHPF_ERR_INVAL);
	q = p;
	q.proto = 9;
	assert_int_equal(container_port_add(c, &q), RDHPF_ERR_INVAL);
	q = p;
	q.host_ip = "1.2.3.4\n";
	assert_int_equal(container_port_add(c, &q), RDHPF_ERR_INVAL);
	/* A writer whose struct ends before proto: refused, not read past. */
	q = p;
	q.struct_size = offsetof(struct rdhpf_port, proto);
	assert_int_equal(container_port_add(c, &q), RDHPF_ERR_INVAL);
	/* NULL host_ip is "". */
	q = p;
	q.host_ip = NULL;
	q.host_port = 80;
	assert_int_equal(container_port_add(c, &q), RDHPF_OK);
	assert_int_equal(c->n_ports, 2);
	assert_string_equal(c->ports[0].host_ip, "::");
	assert_int_equal(c->ports[0].container_port, 8443);
	assert_string_equal(c->ports[1].host_ip, "");
	container_destroy(c);
}

static void
test_image_labels_copy(void **s)
{
	struct rdhpf_container *c = container_alloc("c2", NULL);
	struct rdhpf_container d;
	struct rdhpf_port p = {RDHPF_INIT(rdhpf_port), .host_ip = "0.0.0.0", .host_port = 5432,
	                       .proto = RDHPF_PROTO_TCP};

	(void)s;
	assert_string_equal(c->name, "");
	assert_null(c->image);
	assert_int_equal(container_image_set(c, ""), RDHPF_ERR_INVAL);
	assert_int_equal(container_image_set(c, "postgres:16"), RDHPF_OK);
	assert_int_equal(container_image_set(c, "postgres:17"), RDHPF_OK);
	assert_int_equal(container_label_add(c, "", "x"), RDHPF_ERR_INVAL);
	assert_int_equal(container_label_add(c, "tier", "db"), RDHPF_OK);
	assert_int_equal(container_label_add(c, "flag", NULL), RDHPF_OK);
	assert_int_equal(container_port_add(c, &p), RDHPF_OK);
	assert_int_equal(container_copy(&d, c), 0);
	container_destroy(c);
	assert_string_equal(d.id, "c2");
	assert_string_equal(d.image, "postgres:17");
	assert_int_equal(d.n_labels, 2);
	assert_string_equal(d.labels[0].key, "tier");
	assert_string_equal(d.labels[0].value, "db");
	assert_string_equal(d.labels[1].value, "");
	assert_int_equal(d.n_ports, 1);
	assert_string_equal(d.ports[0].host_ip, "0.0.0.0");
	container_clear(&d);
	assert_null(container_alloc("no way", "x"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_id),
		cmocka_unit_test(test_ports),
		cmocka_unit_test(test_image_labels_copy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
