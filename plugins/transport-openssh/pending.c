/* transport-openssh: deferred completions: an operation that returned OK calls back from a zero
 * timer, never from inside itself. */
#include <stdlib.h>

#include "ossh.h"

static void
pending_fire(void *arg)
{
	struct pending *p = arg;
	struct oss *o = p->o;

	for (struct pending **pp = &o->pend; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	H->timer_stop(p->t);
	/* Nothing of ours is touched after the callback: it may disconnect. */
	p->done(p->arg, p->status, p->has_detail ? p->detail : NULL);
	free(p);
}

int
complete_later(struct oss *o, rdhpf_done_fn done, void *arg, int status, const char *detail)
{
	struct pending *p = calloc(1, sizeof *p);

	if (p == NULL)
		return RDHPF_ERR_NOMEM;
	p->o = o;
	p->done = done;
	p->arg = arg;
	p->status = status;
	if (detail != NULL) {
		p->has_detail = 1;
		copy_str(p->detail, sizeof p->detail, detail);
	}
	p->t = H->timer_start(o->ctx, 0, 0, pending_fire, p);
	if (p->t == NULL) {
		free(p);
		return RDHPF_ERR_NOMEM;
	}
	p->next = o->pend;
	o->pend = p;
	return RDHPF_OK;
}

/* From an event handler (not inside a slot): the op already returned OK,
 * so its callback must come; out of memory is the only way it cannot. */
void
complete_soon(struct oss *o, rdhpf_done_fn done, void *arg, int status, const char *detail)
{
	if (complete_later(o, done, arg, status, detail) != RDHPF_OK)
		done(arg, status, detail);
}

void
pending_cancel_all(struct oss *o)
{
	while (o->pend) {
		struct pending *p = o->pend;
		o->pend = p->next;
		H->timer_stop(p->t);
		free(p);
	}
}
