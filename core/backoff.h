/* Backoff and circuit breaker: pure logic, time and randomness passed in. */
#ifndef RDHPF_BACKOFF_H
#define RDHPF_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

struct backoff {
	uint64_t initial_ms;
	uint64_t max_ms;
	double multiplier;
	double jitter;    /* 0..1: delay is base × (1 ± jitter), capped at max */
	uint32_t attempt; /* failures since the last reset */
};

void backoff_init(struct backoff *b, uint64_t initial_ms, uint64_t max_ms, double multiplier,
                  double jitter);
/* The delay before the next try, given r uniform in [0,1).  Increments
 * attempt.  base = min(max, initial × multiplier^attempt); result within
 * [base × (1 - jitter), min(max, base × (1 + jitter))]. */
uint64_t backoff_next(struct backoff *b, double r);
void backoff_reset(struct backoff *b);

enum breaker_state { BREAKER_CLOSED = 0, BREAKER_OPEN = 1, BREAKER_HALF_OPEN = 2 };

struct breaker {
	uint32_t threshold; /* consecutive failures that open it */
	uint64_t cooldown_ms;
	enum breaker_state state;
	uint32_t failures; /* consecutive */
	uint64_t opened_ms;
	uint32_t opens; /* times it opened, for metrics */
	bool cooled;    /* open, but the cooldown was ended early */
};

void breaker_init(struct breaker *k, uint32_t threshold, uint64_t cooldown_ms);
void breaker_success(struct breaker *k);                  /* → closed, failures 0 */
void breaker_failure(struct breaker *k, uint64_t now_ms); /* may open; half-open → open */
/* May a try start now?  Open and cooled down → half-open, true (one trial). */
bool breaker_allow(struct breaker *k, uint64_t now_ms);
/* ms until an open breaker lets a try through (0 if it does now). */
uint64_t breaker_wait_ms(const struct breaker *k, uint64_t now_ms);
/* End an open breaker's cooldown now: the next breaker_allow starts the
 * one half-open trial.  For when the host was seen unreachable and then
 * reachable again (its TCP port refused, then accepted): the failures that
 * opened it said nothing about the host as it is now.  A failed trial
 * opens it again for a full cooldown.  No effect unless open. */
void breaker_cool(struct breaker *k);
const char *breaker_state_name(enum breaker_state s);

#endif
