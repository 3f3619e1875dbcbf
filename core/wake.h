/* Noticing that the loop did not run for a while: the machine slept
 * (CLOCK_BOOTTIME moved ahead of CLOCK_MONOTONIC) or rdhpf was frozen (the
 * loop woke far later than its next timer was due).  Costs no wakeup of its
 * own: it looks only when the loop runs anyway. */
#ifndef RDHPF_WAKE_H
#define RDHPF_WAKE_H

#include <stdint.h>

#include <uv.h>

/* Called with how long the loop was gone (ms) and why ("sleep"/"pause"). */
typedef void (*wake_fn)(void *arg, uint64_t gone_ms, const char *why);

struct wake {
	uv_prepare_t prep;
	uv_check_t check;
	uint64_t due_ms; /* when the loop should wake at the latest; 0 none */
	int64_t boot_minus_mono_ms;
	uint64_t threshold_ms;
	wake_fn fn;
	void *arg;
};

/* Pure: how long the loop was gone beyond what was due (0 if not late).
 * now and due are CLOCK_MONOTONIC ms (due 0: no timer was due); the two
 * offsets are CLOCK_BOOTTIME - CLOCK_MONOTONIC before and after. */
uint64_t wake_gone_ms(uint64_t now, uint64_t due, int64_t off_before, int64_t off_after,
                      const char **why);

void wake_start(struct wake *w, uv_loop_t *loop, uint64_t threshold_ms, wake_fn fn, void *arg);
void wake_stop(struct wake *w);

#endif
