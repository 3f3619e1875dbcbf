/* Pending operations: the core's done/arg held until the plugin finishes
 * the op, it times out, or the instance cancels every op. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdhpf/sdk.h"

struct rsdk_op {
	struct rsdk_pending *p;
	struct rsdk_op *next;
	rdhpf_done_fn done;
	void *arg;
	struct rdhpf_timer *timeout; /* NULL: none */
	struct rdhpf_timer *later;   /* finish_later's zero timer */
	int status;                  /* finish_later's result */
	char *detail;
	char *what;
	int failing; /* marked by fail_all */
};

void
rsdk_pending_init(struct rsdk_pending *p, const struct rdhpf_host_api *H, struct rdhpf_ctx *ctx)
{
	p->H = H;
	p->ctx = ctx;
	p->head = NULL;
	p->settle_t = NULL;
	p->settle_status = 0;
	p->settle_detail[0] = '\0';
}

static void
op_unlink(struct rsdk_op *op)
{
	struct rsdk_op **pp;

	for (pp = &op->p->head; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == op) {
			*pp = op->next;
			break;
		}
	}
	op->next = NULL;
}

static void
op_free(struct rsdk_op *op)
{
	const struct rdhpf_host_api *H = op->p->H;

	if (op->timeout != NULL)
		H->timer_stop(op->timeout);
	if (op->later != NULL)
		H->timer_stop(op->later);
	free(op->detail);
	free(op->what);
	free(op);
}

/* Unlink and free the op, then call done: the op is gone before the core
 * runs, so done may cancel or fail everything else. */
static void
op_deliver(struct rsdk_op *op, int status, const char *detail)
{
	rdhpf_done_fn done = op->done;
	void *arg = op->arg;

	op_unlink(op);
	op->done = NULL;
	/* detail may be op->detail: keep it until done returned. */
	if (detail != NULL && detail == op->detail) {
		char *d = op->detail;
		op->detail = NULL;
		op_free(op);
		done(arg, status, d);
		free(d);
		return;
	}
	op_free(op);
	done(arg, status, detail);
}

static void
op_timeout(void *arg)
{
	struct rsdk_op *op = arg;
	char msg[256];

	snprintf(msg, sizeof msg, "%s: timed out", op->what != NULL ? op->what : "operation");
	op_deliver(op, RDHPF_ERR_TIMEOUT, msg);
}

static void
op_later(void *arg)
{
	struct rsdk_op *op = arg;

	op_deliver(op, op->status, op->detail);
}

struct rsdk_op *
rsdk_op_start(struct rsdk_pending *p, rdhpf_done_fn done, void *arg, uint64_t timeout_ms,
              const char *what)
{
	struct rsdk_op *op = calloc(1, sizeof *op), **pp;

	if (op == NULL)
		return NULL;
	op->p = p;
	op->done = done;
	op->arg = arg;
	if (what != NULL && (op->what = strdup(what)) == NULL) {
		free(op);
		return NULL;
	}
	if (timeout_ms > 0) {
		op->timeout = p->H->timer_start(p->ctx, timeout_ms, 0, op_timeout, op);
		if (op->timeout == NULL) {
			free(op->what);
			free(op);
			return NULL;
		}
	}
	/* Appended: the list runs oldest first, as fail_all promises. */
	for (pp = &p->head; *pp != NULL; pp = &(*pp)->next)
		;
	*pp = op;
	return op;
}

void
rsdk_op_finish(struct rsdk_op *op, int status, const char *detail)
{
	if (op == NULL || op->done == NULL)
		return;
	op_deliver(op, status, detail);
}

void
rsdk_op_finish_later(struct rsdk_op *op, int status, const char *detail)
{
	const struct rdhpf_host_api *H;

	if (op == NULL || op->done == NULL || op->later != NULL)
		return;
	H = op->p->H;
	if (op->timeout != NULL) {
		H->timer_stop(op->timeout);
		op->timeout = NULL;
	}
	op->status = status;
	op->detail = rsdk_strdup(detail);
	if (detail != NULL && op->detail == NULL && status == RDHPF_OK)
		op->status = RDHPF_ERR_NOMEM;
	op->later = H->timer_start(op->p->ctx, 0, 0, op_later, op);
	/* No timer: the callback must still come once; now is the only
	 * choice left (the core's slot wrapper defers it if need be). */
	if (op->later == NULL)
		op_deliver(op, op->status, op->detail);
}

void
rsdk_op_cancel(struct rsdk_op *op)
{
	if (op == NULL)
		return;
	op_unlink(op);
	op_free(op);
}

void
rsdk_pending_fail_all(struct rsdk_pending *p, int status, const char *detail)
{
	struct rsdk_op *op;

	/* Mark first: ops started by the callbacks are not failed, and a
	 * callback may cancel any other op, so the list is walked afresh
	 * after each. */
	for (op = p->head; op != NULL; op = op->next)
		op->failing = op->later == NULL;
	for (;;) {
		for (op = p->head; op != NULL && !op->failing; op = op->next)
			;
		if (op == NULL)
			break;
		op->failing = 0;
		op_deliver(op, status, detail);
	}
}

static void
settle_fire(void *arg)
{
	struct rsdk_pending *p = arg;

	p->H->timer_stop(p->settle_t);
	p->settle_t = NULL;
	rsdk_pending_fail_all(p, p->settle_status, p->settle_detail[0] ? p->settle_detail : NULL);
}

void
rsdk_pending_settle_later(struct rsdk_pending *p, int status, const char *detail)
{
	if (p->head == NULL)
		return;
	if (p->settle_t == NULL || status != RDHPF_OK) {
		p->settle_status = status;
		snprintf(p->settle_detail, sizeof p->settle_detail, "%s", detail ? detail : "");
	}
	if (p->settle_t == NULL)
		p->settle_t = p->H->timer_start(p->ctx, 0, 0, settle_fire, p);
	if (p->settle_t == NULL) /* no timer: answering now beats never */
		rsdk_pending_fail_all(p, status, detail);
}

void
rsdk_pending_cancel_all(struct rsdk_pending *p)
{
	if (p->settle_t != NULL) {
		p->H->timer_stop(p->settle_t);
		p->settle_t = NULL;
	}
	while (p->head != NULL)
		rsdk_op_cancel(p->head);
}

size_t
rsdk_pending_count(const struct rsdk_pending *p)
{
	size_t n = 0;

	for (const struct rsdk_op *op = p->head; op != NULL; op = op->next)
		n++;
	return n;
}
