#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "backoff.h"

/* The largest double below 1: the top of what r may be. */
#define R_TOP 0.99999999999999989

static void
test_backoff_exact_sequence_without_jitter(void **state)
{
	static const uint64_t want[] = {500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000};
	struct backoff b;

	(void)state;
	backoff_init(&b, 500, 30000, 2.0, 0.0);
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		/* r must not matter when jitter is 0 */
		double r = (i % 3 == 0) ? 0.0 : (i % 3 == 1) ? 0.5 : R_TOP;
		assert_int_equal(backoff_next(&b, r), want[i]);
		assert_int_equal(b.attempt, i + 1);
	}
}

static void
test_backoff_fractional_multiplier(void **state)
{
	struct backoff b;

	(void)state;
	backoff_init(&b, 1000, 5000, 1.5, 0.0);
	assert_int_equal(backoff_next(&b, 0.5), 1000);
	assert_int_equal(backoff_next(&b, 0.5), 1500);
	assert_int_equal(backoff_next(&b, 0.5), 2250);
	assert_int_equal(backoff_next(&b, 0.5), 3375);
	assert_int_equal(backoff_next(&b, 0.5), 5000); /* 5062.5 capped */
	assert_int_equal(backoff_next(&b, 0.5), 5000);
}

static void
test_backoff_reset_starts_over(void **state)
{
	struct backoff b;

	(void)state;
	backoff_init(&b, 500, 30000, 2.0, 0.0);
	for (int i = 0; i < 5; i++)
		(void)backoff_next(&b, 0.5);
	assert_int_equal(backoff_next(&b, 0.5), 16000);
	backoff_reset(&b);
	assert_int_equal(b.attempt, 0);
	assert_int_equal(backoff_next(&b, 0.5), 500);
	assert_int_equal(backoff_next(&b, 0.5), 1000);
}

static void
test_backoff_jitter_endpoints(void **state)
{
	struct backoff b;

	(void)state;
	/* base 1000, jitter 0.2: r=0 → 800, r=0.5 → 1000, r→1 → just under 1200 */
	backoff_init(&b, 1000, 60000, 2.0, 0.2);
	assert_int_equal(backoff_next(&b, 0.0), 800);
	backoff_reset(&b);
	assert_int_equal(backoff_next(&b, 0.5), 1000);
	backoff_reset(&b);
	uint64_t top = backoff_next(&b, R_TOP); /* 1200 after double rounding */
	assert_true(top == 1199 || top == 1200);
	backoff_reset(&b);
	assert_int_equal(backoff_next(&b, 0.999), 1199); /* 1199.6, never rounded up */
	/* out-of-range r is clamped, never widens the interval */
	backoff_reset(&b);
	assert_int_equal(backoff_next(&b, -3.0), 800);
	backoff_reset(&b);
	assert_int_equal(backoff_next(&b, 7.0), 1200);
}

static void
test_backoff_jitter_bounds_many_r(void **state)
{
	struct backoff b;
	const double jit = 0.3;
	int seen_low = 0, seen_high = 0;

	(void)state;
	for (int attempt = 0; attempt < 12; attempt++) {
		double base = 500.0;
		for (int i = 0; i < attempt; i++)
			base *= 2.0;
		if (base > 20000.0)
			base = 20000.0;
		for (int k = 0; k <= 1000; k++) {
			double r = k == 1000 ? R_TOP : k / 1000.0;
			backoff_init(&b, 500, 20000, 2.0, jit);
			b.attempt = (uint32_t)attempt;
			uint64_t d = backoff_next(&b, r);
			double lo = base * (1.0 - jit), hi = base * (1.0 + jit);
			if (hi > 20000.0)
				hi = 20000.0;
			assert_true((double)d >= lo - 1.0);
			assert_true((double)d <= hi);
			assert_true(d >= 1);
			if ((double)d < base * 0.75)
				seen_low = 1;
			if ((double)d > base * 1.25 && base < 20000.0)
				seen_high = 1;
		}
	}
	/* the jitter actually spreads the delays both ways */
	assert_true(seen_low);
	assert_true(seen_high);
}

static void
test_backoff_full_jitter_never_below_1ms(void **state)
{
	struct backoff b;

	(void)state;
	backoff_init(&b, 1, 10, 2.0, 1.0);
	assert_int_equal(backoff_next(&b, 0.0), 1);
	assert_int_equal(backoff_next(&b, 0.0), 1);
	backoff_init(&b, 500, 1000, 2.0, 1.0);
	assert_int_equal(backoff_next(&b, 0.0), 1);
	/* initial 0 means "no delay" */
	backoff_init(&b, 0, 1000, 2.0, 0.5);
	assert_int_equal(backoff_next(&b, 0.0), 0);
	assert_int_equal(backoff_next(&b, R_TOP), 0);
}

static void
test_backoff_huge_attempts_do_not_overflow(void **state)
{
	struct backoff b;

	(void)state;
	backoff_init(&b, 500, 30000, 2.0, 0.0);
	b.attempt = 64;
	assert_int_equal(backoff_next(&b, 0.5), 30000);
	b.attempt = 1100; /* 2^1100 is beyond double range */
	assert_int_equal(backoff_next(&b, 0.5), 30000);
	b.attempt = UINT32_MAX - 1;
	assert_int_equal(backoff_next(&b, 0.5), 30000);
	assert_int_equal(b.attempt, UINT32_MAX);
	/* saturates instead of wrapping back to the initial delay */
	assert_int_equal(backoff_next(&b, 0.5), 30000);
	assert_int_equal(b.attempt, UINT32_MAX);

	/* a max near UINT64_MAX must not be exceeded through rounding */
	backoff_init(&b, 1000, UINT64_MAX / 2, 10.0, 0.5);
	b.attempt = 5000;
	uint64_t d = backoff_next(&b, R_TOP);
	assert_true(d == UINT64_MAX / 2);
	backoff_init(&b, 1000, UINT64_MAX, 10.0, 0.5);
	b.attempt = 5000;
	assert_true(backoff_next(&b, R_TOP) == UINT64_MAX);
	b.attempt = 5000;
	d = backoff_next(&b, 0.0); /* half of 2^64 as a double */
	assert_true(d >= UINT64_MAX / 2 - 4096 && d <= UINT64_MAX / 2 + 4096);

	/* huge multiplier at attempt 1 */
	backoff_init(&b, 500, 30000, 1e308, 0.0);
	assert_int_equal(backoff_next(&b, 0.5), 500);
	assert_int_equal(backoff_next(&b, 0.5), 30000);
	assert_int_equal(backoff_next(&b, 0.5), 30000);
}

static void
test_backoff_init_sanitizes(void **state)
{
	struct backoff b;

	(void)state;
	backoff_init(&b, 500, 30000, 0.5, -1.0); /* shrinking, negative jitter */
	assert_int_equal(backoff_next(&b, 0.0), 500);
	assert_int_equal(backoff_next(&b, 0.0), 500);
	backoff_init(&b, 500, 100, 2.0, 0.0); /* cap below initial */
	assert_int_equal(backoff_next(&b, 0.0), 500);
	assert_int_equal(backoff_next(&b, 0.0), 500);
	backoff_init(&b, 100, 1000, 2.0, 5.0); /* jitter > 1 is 1 */
	assert_int_equal(backoff_next(&b, 0.9), 180);
	backoff_reset(&b);
	assert_int_equal(backoff_next(&b, 0.0), 1);
}

/* ---- breaker ---------------------------------------------------------- */

static void
test_breaker_opens_after_threshold(void **state)
{
	struct breaker k;

	(void)state;
	breaker_init(&k, 3, 60000);
	assert_int_equal(k.state, BREAKER_CLOSED);
	assert_true(breaker_allow(&k, 0));
	breaker_failure(&k, 100);
	breaker_failure(&k, 200);
	assert_int_equal(k.state, BREAKER_CLOSED);
	assert_true(breaker_allow(&k, 250));
	assert_int_equal(breaker_wait_ms(&k, 250), 0);
	breaker_failure(&k, 300);
	assert_int_equal(k.state, BREAKER_OPEN);
	assert_int_equal(k.opened_ms, 300);
	assert_int_equal(k.opens, 1);
	assert_int_equal(k.failures, 3);
	assert_false(breaker_allow(&k, 300));
}

/* The port was seen closed, then open: the cooldown ends at once, for one
 * trial; a failed trial opens it for a full cooldown again. */
static void
test_breaker_cool(void **state)
{
	struct breaker k;

	(void)state;
	breaker_init(&k, 2, 60000);
	breaker_cool(&k); /* closed: no effect */
	assert_int_equal(k.state, BREAKER_CLOSED);
	assert_false(k.cooled);
	breaker_failure(&k, 100);
	breaker_failure(&k, 200);
	assert_int_equal(k.state, BREAKER_OPEN);
	assert_false(breaker_allow(&k, 300));
	assert_int_equal(breaker_wait_ms(&k, 300), 59900);
	breaker_cool(&k);
	assert_int_equal(breaker_wait_ms(&k, 300), 0);
	assert_true(breaker_allow(&k, 300));
	assert_int_equal(k.state, BREAKER_HALF_OPEN);
	assert_false(breaker_allow(&k, 301)); /* one trial */
	breaker_failure(&k, 400);
	assert_int_equal(k.state, BREAKER_OPEN);
	assert_false(k.cooled);
	assert_false(breaker_allow(&k, 500));
	assert_int_equal(breaker_wait_ms(&k, 500), 59900);
	assert_int_equal(k.opens, 2);
	/* half-open: cooling has nothing to end */
	assert_true(breaker_allow(&k, 60400));
	breaker_cool(&k);
	assert_false(breaker_allow(&k, 60401));
	breaker_success(&k);
	assert_int_equal(k.state, BREAKER_CLOSED);
}

static void
test_breaker_success_resets_consecutive_count(void **state)
{
	struct breaker k;

	(void)state;
	breaker_init(&k, 3, 1000);
	breaker_failure(&k, 1);
	breaker_failure(&k, 2);
	breaker_success(&k);
	assert_int_equal(k.failures, 0);
	breaker_failure(&k, 3);
	breaker_failure(&k, 4);
	assert_int_equal(k.state, BREAKER_CLOSED); /* not consecutive: still closed */
	breaker_failure(&k, 5);
	assert_int_equal(k.state, BREAKER_OPEN);
}

static void
test_breaker_cooldown_and_wait(void **state)
{
	struct breaker k;

	(void)state;
	breaker_init(&k, 1, 120000);
	breaker_failure(&k, 1000);
	assert_int_equal(k.state, BREAKER_OPEN);
	assert_int_equal(breaker_wait_ms(&k, 1000), 120000);
	assert_int_equal(breaker_wait_ms(&k, 61000), 60000);
	assert_int_equal(breaker_wait_ms(&k, 120999), 1);
	assert_int_equal(breaker_wait_ms(&k, 121000), 0);
	assert_int_equal(breaker_wait_ms(&k, 500000), 0);
	/* a clock that goes back only makes it wait longer */
	assert_int_equal(breaker_wait_ms(&k, 10), 120000);
	assert_false(breaker_allow(&k, 10));
	assert_false(breaker_allow(&k, 120999));
	assert_int_equal(k.state, BREAKER_OPEN);
	assert_true(breaker_allow(&k, 121000));
	assert_int_equal(k.state, BREAKER_HALF_OPEN);
}

static void
test_breaker_half_open_allows_one_trial(void **state)
{
	struct breaker k;

	(void)state;
	breaker_init(&k, 2, 5000);
	breaker_failure(&k, 0);
	breaker_failure(&k, 0);
	assert_true(breaker_allow(&k, 5000));
	assert_int_equal(k.state, BREAKER_HALF_OPEN);
	/* the trial is in flight: nobody else gets through */
	assert_false(breaker_allow(&k, 5001));
	assert_false(breaker_allow(&k, 999999));
	assert_int_equal(breaker_wait_ms(&k, 5001), 5000);
	assert_int_equal(k.state, BREAKER_HALF_OPEN);
}

static void
test_breaker_half_open_success_closes(void **state)
{
	struct breaker k;

	(void)state;
	breaker_init(&k, 2, 5000);
	breaker_failure(&k, 0);
	breaker_failure(&k, 0);
	assert_true(breaker_allow(&k, 6000));
	breaker_success(&k);
	assert_int_equal(k.state, BREAKER_CLOSED);
	assert_int_equal(k.failures, 0);
	assert_true(breaker_allow(&k, 6001));
	assert_true(breaker_allow(&k, 6002));
	assert_int_equal(breaker_wait_ms(&k, 6002), 0);
	/* closed again: needs the full threshold to reopen */
	breaker_failure(&k, 7000);
	assert_int_equal(k.state, BREAKER_CLOSED);
	breaker_failure(&k, 7001);
	assert_int_equal(k.state, BREAKER_OPEN);
	assert_int_equal(k.opens, 2);
}

static void
test_breaker_half_open_failure_reopens(void **state)
{
	struct breaker k;

	(void)state;
	breaker_init(&k, 3, 5000);
	for (int i = 0; i < 3; i++)
		breaker_failure(&k, 100);
	assert_int_equal(k.opens, 1);
	assert_true(breaker_allow(&k, 5100));
	breaker_failure(&k, 5300);
	assert_int_equal(k.state, BREAKER_OPEN);
	assert_int_equal(k.opened_ms, 5300);
	assert_int_equal(k.opens, 2);
	/* a fresh cooldown from the failed trial */
	assert_false(breaker_allow(&k, 10299));
	assert_int_equal(breaker_wait_ms(&k, 10299), 1);
	assert_true(breaker_allow(&k, 10300));
	assert_int_equal(k.state, BREAKER_HALF_OPEN);
}

static void
test_breaker_failure_while_open_keeps_cooldown(void **state)
{
	struct breaker k;

	(void)state;
	breaker_init(&k, 1, 1000);
	breaker_failure(&k, 0);
	breaker_failure(&k, 900); /* late result of an earlier try */
	assert_int_equal(k.state, BREAKER_OPEN);
	assert_int_equal(k.opened_ms, 0);
	assert_int_equal(k.opens, 1);
	assert_true(breaker_allow(&k, 1000));
}

static void
test_breaker_success_while_open_closes(void **state)
{
	struct breaker k;

	(void)state;
	breaker_init(&k, 1, 1000);
	breaker_failure(&k, 0);
	breaker_success(&k);
	assert_int_equal(k.state, BREAKER_CLOSED);
	assert_true(breaker_allow(&k, 1));
}

static void
test_breaker_zero_threshold_is_one(void **state)
{
	struct breaker k;

	(void)state;
	breaker_init(&k, 0, 1000);
	assert_true(breaker_allow(&k, 0));
	breaker_failure(&k, 0);
	assert_int_equal(k.state, BREAKER_OPEN);
}

static void
test_breaker_zero_cooldown(void **state)
{
	struct breaker k;

	(void)state;
	breaker_init(&k, 1, 0);
	breaker_failure(&k, 50);
	assert_int_equal(breaker_wait_ms(&k, 50), 0);
	assert_true(breaker_allow(&k, 50));
	assert_int_equal(k.state, BREAKER_HALF_OPEN);
	assert_false(breaker_allow(&k, 50));
}

static void
test_breaker_state_names(void **state)
{
	(void)state;
	assert_string_equal(breaker_state_name(BREAKER_CLOSED), "closed");
	assert_string_equal(breaker_state_name(BREAKER_OPEN), "open");
	assert_string_equal(breaker_state_name(BREAKER_HALF_OPEN), "half-open");
	assert_string_equal(breaker_state_name((enum breaker_state)42), "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_backoff_exact_sequence_without_jitter),
	    cmocka_unit_test(test_backoff_fractional_multiplier),
	    cmocka_unit_test(test_backoff_reset_starts_over),
	    cmocka_unit_test(test_backoff_jitter_endpoints),
	    cmocka_unit_test(test_backoff_jitter_bounds_many_r),
	    cmocka_unit_test(test_backoff_full_jitter_never_below_1ms),
	    cmocka_unit_test(test_backoff_huge_attempts_do_not_overflow),
	    cmocka_unit_test(test_backoff_init_sanitizes),
	    cmocka_unit_test(test_breaker_opens_after_threshold),
	    cmocka_unit_test(test_breaker_success_resets_consecutive_count),
	    cmocka_unit_test(test_breaker_cooldown_and_wait),
	    cmocka_unit_test(test_breaker_half_open_allows_one_trial),
	    cmocka_unit_test(test_breaker_half_open_success_closes),
	    cmocka_unit_test(test_breaker_half_open_failure_reopens),
	    cmocka_unit_test(test_breaker_failure_while_open_keeps_cooldown),
	    cmocka_unit_test(test_breaker_success_while_open_closes),
	    cmocka_unit_test(test_breaker_zero_threshold_is_one),
	    cmocka_unit_test(test_breaker_zero_cooldown),
	    cmocka_unit_test(test_breaker_state_names),
	    cmocka_unit_test(test_breaker_cool),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
