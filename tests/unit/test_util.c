#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util.h"

static void
test_shell_join_quotes_every_word(void **s)
{
	const char *argv[] = {"docker", "inspect", "a'b; rm -rf /", "$(id)", NULL};
	char *j = shell_join(argv);
	assert_string_equal(j, "'docker' 'inspect' 'a'\\''b; rm -rf /' '$(id)'");
	free(j);
	const char *none[] = {NULL};
	assert_null(shell_join(none));
}

static void
test_parse_port_bounds(void **s)
{
	uint16_t p = 0;
	assert_int_equal(parse_port("1", &p), 0);
	assert_int_equal(p, 1);
	assert_int_equal(parse_port("65535", &p), 0);
	assert_int_equal(p, 65535);
	assert_int_equal(parse_port("0", &p), -1);
	assert_int_equal(parse_port("65536", &p), -1);
	assert_int_equal(parse_port("70000", &p), -1);
	assert_int_equal(parse_port("-1", &p), -1);
	assert_int_equal(parse_port("08", &p), -1);
	assert_int_equal(parse_port("8 ", &p), -1);
	assert_int_equal(parse_port("", &p), -1);
	assert_int_equal(parse_port("99999999999999999999999", &p), -1);
}

static void
test_str_copy_truncates(void **s)
{
	char b[4];
	assert_int_equal(str_copy(b, "abcdef", sizeof b), 6);
	assert_string_equal(b, "abc");
	assert_int_equal(str_copy(b, "ab", sizeof b), 2);
	assert_string_equal(b, "ab");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_shell_join_quotes_every_word),
	    cmocka_unit_test(test_parse_port_bounds),
	    cmocka_unit_test(test_str_copy_truncates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
