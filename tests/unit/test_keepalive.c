/* The SDK's keepalive driver (sdk/keepalive.c) on a fake host with a clock:
 * ticks, the deadline timer, the log lines and counters every transport
 * reports, the fallback, stop.  No I/O (fd -1: no kernel proof). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "rdhpf/sdk.h"

#define MAX_TIMERS 8

struct rdhpf_timer {
	int live, fired;
	uint64_t due, repeat;
	rdhpf_timer_fn cb;
	void *arg;
};

static struct rdhpf_timer timers[MAX_TIMERS];
static uint64_t now;
static char last_log[128];
static int n_unanswered_log, n_again_log, n_dead_log;
static uint64_t unanswered_total, dead_total;
static int n_observed;
static double last_rtt;

static uint64_t
fake_now(struct rdhpf_ctx *ctx)
{
	(void)ctx;
	return now;
}

static void
fake_log(struct rdhpf_ctx *ctx, int level, const char *msg, ...)
{
	(void)ctx;
	(void)level;
	snprintf(last_log, sizeof last_log, "%s", msg);
	if (strcmp(msg, "ssh liveness probe unanswered") == 0)
		n_unanswered_log++;
	else if (strcmp(msg, "ssh liveness: sshd answers again") == 0)
		n_again_log++;
	else if (strcmp(msg, "ssh link dead: liveness probes unanswered") == 0)
		n_dead_log++;
}

static void
fake_counter(struct rdhpf_ctx *ctx, const char *name, uint64_t v)
{
	(void)ctx;
	if (strcmp(name, "ssh_liveness_unanswered_total") == 0)
		unanswered_total += v;
	else if (strcmp(name, "ssh_liveness_dead_total") == 0)
		dead_total += v;
}

static void
fake_observe(struct rdhpf_ctx *ctx, const char *name, double v)
{
	(void)ctx;
	assert_string_equal(name, "ssh_liveness_seconds");
	n_observed++;
	last_rtt = v;
}

static struct rdhpf_timer *
fake_timer_start(struct rdhpf_ctx *ctx, uint64_t after_ms, uint64_t repeat_ms, rdhpf_timer_fn cb,
                 void *arg)
{
	(void)ctx;
	for (int i = 0; i < MAX_TIMERS; i++) {
		if (!timers[i].live) {
			timers[i] = (struct rdhpf_timer){1, 0, now + after_ms, repeat_ms, cb, arg};
			return &timers[i];
		}
	}
	fail_msg("out of fake timers");
	return NULL;
}

static void
fake_timer_stop(struct rdhpf_timer *t)
{
	assert_true(t->live);
	t->live = 0;
}

static int
timers_live(void)
{
	int n = 0;
	for (int i = 0; i < MAX_TIMERS; i++)
		n += timers[i].live;
	return n;
}

/* Run the clock to `to`, firing due timers in time order. */
static void
advance(uint64_t to)
{
	for (;;) {
		struct rdhpf_timer *t = NULL;
		for (int i = 0; i < MAX_TIMERS; i++)
			if (timers[i].live && !timers[i].fired && timers[i].due <= to &&
			    (t == NULL || timers[i].due < t->due))
				t = &timers[i];
		if (t == NULL)
			break;
		now = t->due;
		if (t->repeat)
			t->due += t->repeat;
		else
			t->fired = 1;
		t->cb(t->arg);
	}
	now = to;
}

static const struct rdhpf_host_api H = {
    .abi_major = RDHPF_ABI_MAJOR,
    .abi_minor = RDHPF_ABI_MINOR,
    .struct_size = sizeof(struct rdhpf_host_api),
    .log = fake_log,
    .timer_start = fake_timer_start,
    .timer_stop = fake_timer_stop,
    .now_ms = fake_now,
    .counter_add = fake_counter,
    .observe = fake_observe,
};

/* The transport's side. */
static struct rsdk_keepalive KA;
static int n_send, n_wait, n_dead, n_obs_hook;
static char dead_detail[512];
static bool answer_sends; /* tick(SEND) marks a probe sent */

static void
t_tick(void *ud, int act)
{
	assert_ptr_equal(ud, &KA);
	if (act == RSDK_LIVE_SEND) {
		n_send++;
		if (answer_sends)
			rsdk_keepalive_sent(&KA);
	} else {
		assert_int_equal(act, RSDK_LIVE_WAIT);
		n_wait++;
	}
}

static void
t_dead(void *ud, const char *detail)
{
	assert_ptr_equal(ud, &KA);
	n_dead++;
	snprintf(dead_detail, sizeof dead_detail, "%s", detail);
	rsdk_keepalive_stop(&KA); /* as a teardown would: twice is fine */
}

static void
t_observe(void *ud)
{
	(void)ud;
	n_obs_hook++;
}

static const struct rsdk_keepalive_ops OPS = {t_tick, t_dead, t_observe};

static int
setup(void **state)
{
	(void)state;
	memset(timers, 0, sizeof timers);
	memset(&KA, 0, sizeof KA);
	now = 10000;
	n_unanswered_log = n_again_log = n_dead_log = 0;
	unanswered_total = dead_total = 0;
	n_observed = 0;
	n_send = n_wait = n_dead = n_obs_hook = 0;
	dead_detail[0] = '\0';
	answer_sends = true;
	return 0;
}

static void
start(uint64_t interval, uint32_t count)
{
	rsdk_keepalive_start(&KA, &H, NULL, &OPS, &KA, "lab", 22, -1, interval, count);
}

/* Answered probes keep it up; then silence: unanswered ticks are logged and
 * counted, and the deadline timer finds it dead at last answer + 3.5 s. */
static void
test_dead_on_time(void **state)
{
	(void)state;
	start(1000, 3);
	assert_int_equal(timers_live(), 1);
	advance(11000); /* tick: send */
	assert_int_equal(n_send, 1);
	advance(11100);
	rsdk_keepalive_answered(&KA);
	assert_int_equal(n_observed, 1);
	assert_true(last_rtt > 0.099 && last_rtt < 0.101);
	assert_int_equal(n_again_log, 0); /* nothing was missed */
	assert_int_equal(rsdk_keepalive_last(&KA), 11100);
	advance(12000); /* send, never answered */
	assert_int_equal(n_send, 2);
	advance(14000); /* two ticks find it out */
	assert_int_equal(n_wait, 2);
	assert_int_equal(n_unanswered_log, 2);
	assert_true(unanswered_total == 2);
	assert_int_equal(n_dead, 0);
	advance(14599);
	assert_int_equal(n_dead, 0);
	advance(14600); /* 11100 + 3 x 1000 + 500, not the 15000 tick */
	assert_int_equal(n_dead, 1);
	assert_int_equal(n_dead_log, 1);
	assert_true(dead_total == 1);
	assert_string_equal(dead_detail,
	                    "lab:22: no answer for 3500 ms (keepalive_interval 1000 ms x "
	                    "keepalive_count 3; 2 probes unanswered): ssh session is dead");
	assert_int_equal(timers_live(), 0);
	assert_true(n_obs_hook > 0);
	advance(30000);
	assert_int_equal(n_dead, 1);
}

/* An answer after unanswered ticks says so, with how long it took. */
static void
test_answers_again(void **state)
{
	(void)state;
	start(1000, 3);
	advance(11000);
	advance(13000); /* two ticks out */
	assert_int_equal(n_wait, 2);
	advance(13250);
	rsdk_keepalive_answered(&KA);
	assert_int_equal(n_again_log, 1);
	assert_true(last_rtt > 2.249 && last_rtt < 2.251);
	advance(14000);
	assert_int_equal(n_send, 2); /* a fresh probe at the next tick */
	advance(20000);
	rsdk_keepalive_stop(&KA);
	assert_int_equal(timers_live(), 0);
}

/* Fallback: answers cannot be seen; every tick asks to send, any inbound
 * byte counts, and a silent link is dead with "(nothing received)". */
static void
test_fallback(void **state)
{
	(void)state;
	answer_sends = false;
	start(1000, 2);
	rsdk_keepalive_set_fallback(&KA, true);
	for (uint64_t t = 11000; t <= 15000; t += 1000) {
		advance(t);
		rsdk_keepalive_rx(&KA, t);
	}
	assert_int_equal(n_send, 5);
	assert_int_equal(n_wait, 0);
	assert_int_equal(n_dead, 0);
	assert_int_equal(rsdk_keepalive_last(&KA), 15000);
	advance(17499);
	assert_int_equal(n_dead, 0);
	advance(17500); /* 15000 + 2 x 1000 + 500 */
	assert_int_equal(n_dead, 1);
	assert_non_null(strstr(dead_detail, "(nothing received): ssh session is dead"));
}

/* Probing off (count 0): no timer, never dead. */
static void
test_off(void **state)
{
	(void)state;
	start(1000, 0);
	assert_int_equal(timers_live(), 0);
	advance(100000);
	assert_int_equal(n_send + n_dead, 0);
	rsdk_keepalive_stop(&KA);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_dead_on_time, setup),
	    cmocka_unit_test_setup(test_answers_again, setup),
	    cmocka_unit_test_setup(test_fallback, setup),
	    cmocka_unit_test_setup(test_off, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
