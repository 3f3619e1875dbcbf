/* Backoff and circuit breaker.  Pure: the caller passes time and
 * randomness, so every sequence is reproducible in tests. */
#include "backoff.h"

void
backoff_init(struct backoff *b, uint64_t initial_ms, uint64_t max_ms, double multiplier,
             double jitter)
{
	b->initial_ms = initial_ms;
	/* A cap below the first delay would make the first delay meaningless;
	 * the cap wins only over growth. */
	b->max_ms = max_ms < initial_ms ? initial_ms : max_ms;
	/* NaN fails both comparisons, so it lands on the safe side too. */
	b->multiplier = multiplier >= 1.0 ? multiplier : 1.0;
	if (!(jitter >= 0.0))
		jitter = 0.0;
	b->jitter = jitter > 1.0 ? 1.0 : jitter;
	b->attempt = 0;
}

/* m^n by squaring: log2(n) steps, +inf once it overflows.  (Not pow():
 * the daemon links no libm for one call, and with it 0.3 MiB of mapped
 * pages.) */
static double
pow_u32(double m, uint32_t n)
{
	double r = 1.0;

	while (n != 0) {
		if (n & 1u)
			r *= m;
		m *= m;
		n >>= 1;
	}
	return r;
}

uint64_t
backoff_next(struct backoff *b, double r)
{
	double base, v, max = (double)b->max_ms;
	uint64_t out;

	if (b->initial_ms == 0) {
		if (b->attempt < UINT32_MAX)
			b->attempt++;
		return 0;
	}
	/* Done in double on purpose: multiplier^attempt may be +inf for a huge
	 * attempt, and the comparison folds that into max before anything is
	 * converted back to an integer (where it would be undefined). */
	base = (double)b->initial_ms * pow_u32(b->multiplier, b->attempt);
	if (!(base < max))
		base = max;
	if (!(r >= 0.0))
		r = 0.0;
	if (r > 1.0)
		r = 1.0;
	v = base * (1.0 + b->jitter * (2.0 * r - 1.0));
	/* max itself comes from the integer: (double)max_ms may round up, and
	 * converting 2^64 back would be undefined.  Truncation never exceeds
	 * the upper bound; the floor of 1 ms keeps a retry loop from spinning
	 * when jitter is 1. */
	if (!(v < max))
		out = b->max_ms;
	else
		out = v >= 1.0 ? (uint64_t)v : 1;
	/* Saturate: wrapping to 0 would silently restart at the initial delay. */
	if (b->attempt < UINT32_MAX)
		b->attempt++;
	return out;
}

void
backoff_reset(struct backoff *b)
{
	b->attempt = 0;
}

void
breaker_init(struct breaker *k, uint32_t threshold, uint64_t cooldown_ms)
{
	/* 0 would mean "open before the first failure"; the config rejects
	 * it, and here it behaves like 1. */
	k->threshold = threshold ? threshold : 1;
	k->cooldown_ms = cooldown_ms;
	k->state = BREAKER_CLOSED;
	k->failures = 0;
	k->opened_ms = 0;
	k->opens = 0;
	k->cooled = false;
}

void
breaker_success(struct breaker *k)
{
	k->state = BREAKER_CLOSED;
	k->failures = 0;
	k->cooled = false;
}

static void
breaker_open(struct breaker *k, uint64_t now_ms)
{
	k->state = BREAKER_OPEN;
	k->opened_ms = now_ms;
	k->cooled = false;
	if (k->opens < UINT32_MAX)
		k->opens++;
}

void
breaker_failure(struct breaker *k, uint64_t now_ms)
{
	if (k->failures < UINT32_MAX)
		k->failures++;
	switch (k->state) {
	case BREAKER_CLOSED:
		if (k->failures >= k->threshold)
			breaker_open(k, now_ms);
		break;
	case BREAKER_HALF_OPEN:
		breaker_open(k, now_ms);
		break;
	case BREAKER_OPEN:
		/* A late failure of a try that started before the breaker
		 * opened: it does not extend the cooldown. */
		break;
	}
}

static uint64_t
elapsed(uint64_t from, uint64_t now)
{
	return now > from ? now - from : 0; /* a clock going back waits longer */
}

bool
breaker_allow(struct breaker *k, uint64_t now_ms)
{
	switch (k->state) {
	case BREAKER_CLOSED:
		return true;
	case BREAKER_OPEN:
		if (!k->cooled && elapsed(k->opened_ms, now_ms) < k->cooldown_ms)
			return false;
		k->state = BREAKER_HALF_OPEN;
		k->cooled = false;
		return true;
	case BREAKER_HALF_OPEN:
		return false; /* the one trial is in flight */
	}
	return false;
}

uint64_t
breaker_wait_ms(const struct breaker *k, uint64_t now_ms)
{
	uint64_t e;

	switch (k->state) {
	case BREAKER_CLOSED:
		return 0;
	case BREAKER_OPEN:
		e = elapsed(k->opened_ms, now_ms);
		return k->cooled || e >= k->cooldown_ms ? 0 : k->cooldown_ms - e;
	case BREAKER_HALF_OPEN:
		/* Unknown until the trial ends; if it fails the breaker opens
		 * for a full cooldown, so that is the honest upper bound. */
		return k->cooldown_ms;
	}
	return 0;
}

void
breaker_cool(struct breaker *k)
{
	if (k->state == BREAKER_OPEN)
		k->cooled = true;
}

const char *
breaker_state_name(enum breaker_state s)
{
	switch (s) {
	case BREAKER_CLOSED:
		return "closed";
	case BREAKER_OPEN:
		return "open";
	case BREAKER_HALF_OPEN:
		return "half-open";
	}
	return "unknown";
}
