/* See wake.h. */
#include <time.h>

#include "wake.h"

static uint64_t
clock_ms(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t
wake_gone_ms(uint64_t now, uint64_t due, int64_t off_before, int64_t off_after, const char **why)
{
	uint64_t slept = off_after > off_before ? (uint64_t)(off_after - off_before) : 0;
	uint64_t late = due != 0 && now > due ? now - due : 0;

	/* Suspended: monotonic time stood still, so timers fired "on time". */
	if (slept >= late) {
		*why = "sleep";
		return slept;
	}
	*why = "pause";
	return late;
}

static void
on_prepare(uv_prepare_t *p)
{
	struct wake *w = p->data;
	int timeout = uv_backend_timeout(p->loop);

	w->due_ms = timeout < 0 ? 0 : clock_ms(CLOCK_MONOTONIC) + (uint64_t)timeout;
	w->boot_minus_mono_ms =
	    (int64_t)clock_ms(CLOCK_BOOTTIME) - (int64_t)clock_ms(CLOCK_MONOTONIC);
}

static void
on_check(uv_check_t *c)
{
	struct wake *w = c->data;
	int64_t off = (int64_t)clock_ms(CLOCK_BOOTTIME) - (int64_t)clock_ms(CLOCK_MONOTONIC);
	const char *why;
	uint64_t gone =
	    wake_gone_ms(clock_ms(CLOCK_MONOTONIC), w->due_ms, w->boot_minus_mono_ms, off, &why);

	w->boot_minus_mono_ms = off;
	if (gone >= w->threshold_ms)
		w->fn(w->arg, gone, why);
}

void
wake_start(struct wake *w, uv_loop_t *loop, uint64_t threshold_ms, wake_fn fn, void *arg)
{
	w->threshold_ms = threshold_ms;
	w->fn = fn;
	w->arg = arg;
	w->due_ms = 0;
	w->boot_minus_mono_ms =
	    (int64_t)clock_ms(CLOCK_BOOTTIME) - (int64_t)clock_ms(CLOCK_MONOTONIC);
	uv_prepare_init(loop, &w->prep);
	uv_check_init(loop, &w->check);
	w->prep.data = w->check.data = w;
	uv_prepare_start(&w->prep, on_prepare);
	uv_check_start(&w->check, on_check);
	/* They watch the loop; they must not keep it alive. */
	uv_unref((uv_handle_t *)&w->prep);
	uv_unref((uv_handle_t *)&w->check);
}

static void
noop_close(uv_handle_t *h)
{
	(void)h;
}

void
wake_stop(struct wake *w)
{
	if (w->fn == NULL)
		return;
	uv_close((uv_handle_t *)&w->prep, noop_close);
	uv_close((uv_handle_t *)&w->check, noop_close);
	w->fn = NULL;
}
