/* transport-openssh: small helpers: strings, stderr tails, timers. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ossh.h"

/* Answer a slot's caller from a zero timer, never from inside the slot
 * (the core would defer it, but a direct driver need not). */
int
complete_later(struct oss *o, rdhpf_done_fn done, void *arg, int status, const char *detail)
{
	struct rsdk_op *op = rsdk_op_start(&o->pend, done, arg, 0, NULL);

	if (op == NULL)
		return RDHPF_ERR_NOMEM;
	rsdk_op_finish_later(op, status, detail);
	return RDHPF_OK;
}

/* Answer a waiting caller, on the next loop turn: we may be deep inside
 * a reply's handling, and the caller may disconnect. */
void
op_answer(struct rsdk_op **op, int status, const char *detail)
{
	if (*op != NULL)
		rsdk_op_finish_later(*op, status, detail);
	*op = NULL;
}

void
tail_add(char *tail, size_t *tail_len, const char *p, size_t k)
{
	if (k >= TAIL_MAX) {
		memcpy(tail, p + k - TAIL_MAX, TAIL_MAX);
		*tail_len = TAIL_MAX;
	} else {
		if (*tail_len + k > TAIL_MAX) {
			size_t drop = *tail_len + k - TAIL_MAX;
			memmove(tail, tail + drop, *tail_len - drop);
			*tail_len -= drop;
		}
		memcpy(tail + *tail_len, p, k);
		*tail_len += k;
	}
	tail[*tail_len] = '\0';
}

/* The most telling line of ssh's stderr, for a detail. */
void
tail_pick(const char *tail, const char *prefer, char *out, size_t len)
{
	const char *best = NULL, *p = tail, *last = NULL;
	size_t best_len = 0, last_len = 0;

	while (*p) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == ' '))
			n--;
		if (n > 0 && p[0] != '@') {
			last = p;
			last_len = n;
			if (prefer != NULL && best == NULL && strstr(p, prefer) != NULL &&
			    (size_t)(strstr(p, prefer) - p) < n) {
				best = p;
				best_len = n;
			}
		}
		if (e == NULL)
			break;
		p = e + 1;
	}
	if (best == NULL) {
		best = last;
		best_len = last_len;
	}
	if (best == NULL) {
		snprintf(out, len, "no message");
		return;
	}
	if (best_len > 5 && strncmp(best, "ssh: ", 5) == 0) {
		best += 5; /* ssh's own prefix: the caller adds one */
		best_len -= 5;
	}
	if (best_len >= len)
		best_len = len - 1;
	memcpy(out, best, best_len);
	out[best_len] = '\0';
}

void
stop_timer(struct rdhpf_timer **t)
{
	if (*t != NULL)
		H->timer_stop(*t);
	*t = NULL;
}

void
io_close(struct rdhpf_io **io, int *fd)
{
	if (*io)
		H->io_stop(*io);
	if (*fd >= 0)
		close(*fd);
	*io = NULL;
	*fd = -1;
}
