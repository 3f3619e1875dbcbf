/* The pure parts of rdhpf wait (readiness from the event stream) and of the
 * wake detector (how long the loop was gone). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "wait.h"
#include "wake.h"

static void
feed(struct wait_state *w, const char *json)
{
	json_error_t je;
	json_t *o = json_loads(json, 0, &je);
	assert_non_null(o);
	wait_feed(w, o);
	json_decref(o);
}

#define FWD(ev, port, cont, reason)                                                                \
	"{\"type\":\"forward\",\"host\":\"lab\",\"event\":\"" ev "\",\"container\":\"" cont        \
	"\",\"bind\":\"127.0.0.1\",\"local_port\":" port ",\"remote_port\":80,\"reason\":" reason  \
	"}"

static int
ready(const struct wait_state *w)
{
	struct wait_addr *a;
	size_t n;
	int r = wait_check(w, &a, &n);
	free(a);
	return r;
}

static void
test_port_ready_only_when_active_and_host_up(void **state)
{
	struct wait_target t[] = {{.port = 8080}};
	struct wait_state w;
	struct wait_addr *a;
	size_t n;
	char why[256];

	(void)state;
	wait_init(&w, NULL, t, 1);
	feed(&w, "{\"type\":\"host\",\"host\":\"lab\",\"state\":\"steady\",\"error\":null}");
	feed(&w, FWD("active", "8080", "web", "null"));
	assert_false(ready(&w)); /* the replay is not complete yet */
	feed(&w, "{\"type\":\"replay-end\"}");
	assert_true(wait_check(&w, &a, &n));
	assert_int_equal(n, 1);
	assert_string_equal(a[0].bind, "127.0.0.1");
	assert_int_equal(a[0].port, 8080);
	free(a);
	/* The host goes down: not ready, and the reason says so. */
	feed(
	    &w,
	    "{\"type\":\"host\",\"host\":\"lab\",\"state\":\"backoff\",\"error\":\"closed: eof\"}");
	assert_false(ready(&w));
	wait_explain(&w, 0, why, sizeof why);
	assert_non_null(strstr(why, "host lab is backoff: closed: eof"));
	feed(&w, "{\"type\":\"host\",\"host\":\"lab\",\"state\":\"steady\",\"error\":null}");
	assert_true(ready(&w));
	feed(&w, FWD("removed", "8080", "web", "\"container stopped\""));
	assert_false(ready(&w));
	wait_explain(&w, 0, why, sizeof why);
	assert_string_equal(why, "port 8080: no container publishes it");
	wait_free(&w);
}

static void
test_container_needs_all_its_ports(void **state)
{
	struct wait_target t[] = {{.container = "web"}, {.container = "db"}};
	struct wait_state w;
	char why[256];

	(void)state;
	wait_init(&w, NULL, t, 2);
	feed(&w, "{\"type\":\"host\",\"host\":\"lab\",\"state\":\"steady\",\"error\":null}");
	feed(&w, "{\"type\":\"replay-end\"}");
	wait_explain(&w, 1, why, sizeof why);
	assert_non_null(strstr(why, "container db: no such container running"));
	feed(&w, FWD("added", "8080", "web", "null"));
	feed(&w, FWD("added", "8081", "web", "null"));
	feed(&w, FWD("active", "8080", "web", "null"));
	feed(&w, FWD("active", "5432", "db", "null"));
	assert_false(ready(&w)); /* web:8081 still coming */
	wait_explain(&w, 0, why, sizeof why);
	assert_non_null(strstr(why, "127.0.0.1:8081 (web on lab) not active yet"));
	feed(&w, FWD("conflict", "8081", "web", "\"address in use\""));
	wait_explain(&w, 0, why, sizeof why);
	assert_non_null(strstr(why, "8081 (web on lab) conflict: address in use"));
	feed(&w, FWD("active", "8081", "web", "null"));
	assert_true(ready(&w));
	wait_free(&w);
}

static void
test_other_hosts_ignored_with_host_filter(void **state)
{
	struct wait_target t[] = {{.port = 8080}};
	struct wait_state w;

	(void)state;
	wait_init(&w, "ci", t, 1);
	feed(&w, "{\"type\":\"host\",\"host\":\"lab\",\"state\":\"steady\",\"error\":null}");
	feed(&w, FWD("active", "8080", "web", "null"));
	feed(&w, "{\"type\":\"replay-end\"}");
	assert_false(ready(&w));
	wait_free(&w);
}

static void
test_skipped_ports(void **state)
{
	struct wait_target t[] = {{.container = "dns"}, {.port = 5353}};
	struct wait_state w;
	char why[256];

	(void)state;
	wait_init(&w, NULL, t, 2);
	feed(&w, "{\"type\":\"host\",\"host\":\"lab\",\"state\":\"steady\",\"error\":null}");
	feed(&w, "{\"type\":\"replay-end\"}");
	feed(&w,
	     "{\"type\":\"forward\",\"host\":\"lab\",\"event\":\"skipped\",\"container\":\"dns\","
	     "\"bind\":\"\",\"local_port\":0,\"remote_port\":5353,\"reason\":\"udp: SSH forwards "
	     "carry TCP only\"}");
	wait_explain(&w, 0, why, sizeof why);
	assert_string_equal(
	    why, "container dns: remote port 5353 (dns on lab) skipped: udp: SSH forwards "
	         "carry TCP only");
	/* Its TCP port comes: the skipped UDP one does not hold the container up. */
	feed(&w, FWD("active", "5353", "dns", "null"));
	assert_true(ready(&w));
	wait_free(&w);
}

static void
test_wake_gone(void **state)
{
	const char *why = NULL;

	(void)state;
	/* On time: nothing. */
	assert_int_equal(wake_gone_ms(1000, 1000, 5, 5, &why), 0);
	/* Frozen: woke 7 s after the due timer (SIGSTOP). */
	assert_int_equal(wake_gone_ms(9000, 2000, 5, 5, &why), 7000);
	assert_string_equal(why, "pause");
	/* No timer due (poll without timeout): lateness cannot be told. */
	assert_int_equal(wake_gone_ms(9000, 0, 5, 5, &why), 0);
	/* Suspended 30 s: boottime moved ahead of monotonic. */
	assert_int_equal(wake_gone_ms(2001, 2000, 5, 30005, &why), 30000);
	assert_string_equal(why, "sleep");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_port_ready_only_when_active_and_host_up),
	    cmocka_unit_test(test_container_needs_all_its_ports),
	    cmocka_unit_test(test_other_hosts_ignored_with_host_filter),
	    cmocka_unit_test(test_skipped_ports),
	    cmocka_unit_test(test_wake_gone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
