/* See tcpprobe.h.  One timer; per attempt a getaddrinfo (first time only)
 * and a uv_tcp_t connect that is closed as soon as it completes, so the
 * remote sees a connection opened and closed at once when its port is open
 * (sshd logs it as closed before the banner), nothing otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcpprobe.h"

struct attempt {
	uv_tcp_t tcp;
	uv_connect_t req;
	struct tcp_probe *p; /* NULL once the probe stopped or gave up on it */
	uint64_t started_ms;
};

struct tcp_probe {
	uv_loop_t *loop;
	uv_timer_t timer;
	uv_getaddrinfo_t gai;
	char host[256];
	char port[8];
	uint64_t every_ms;
	tcp_probe_fn on_open;
	void *arg;
	struct sockaddr_storage addr;
	int have_addr;
	int resolving;
	uint64_t
	    closed_ms; /* when a connect last failed or got no answer (uv_hrtime ms), 0: never */
	int done;      /* reported, or stopped */
	struct attempt *cur;
	int refs; /* the timer + a resolve in flight + attempts alive */
};

static void
probe_unref(struct tcp_probe *p)
{
	if (--p->refs == 0)
		free(p);
}

static void
timer_closed(uv_handle_t *h)
{
	probe_unref(h->data);
}

static void
attempt_closed(uv_handle_t *h)
{
	struct attempt *a = h->data;
	struct tcp_probe *owner = a->p;

	free(a);
	if (owner != NULL)
		probe_unref(owner);
}

static void
attempt_end(struct attempt *a)
{
	if (a->p != NULL && a->p->cur == a)
		a->p->cur = NULL;
	if (!uv_is_closing((uv_handle_t *)&a->tcp))
		uv_close((uv_handle_t *)&a->tcp, attempt_closed);
}

static void
on_connect(uv_connect_t *req, int status)
{
	struct attempt *a = req->data;
	struct tcp_probe *p = a->p;

	attempt_end(a);
	if (p == NULL || p->done || status == UV_ECANCELED)
		return;
	if (status != 0) {
		p->closed_ms = uv_hrtime() / 1000000u;
		return;
	}
	if (p->closed_ms == 0)
		return; /* open all along: not news */
	p->done = 1;
	uv_timer_stop(&p->timer);
	p->on_open(p->arg);
}

static void
attempt_start(struct tcp_probe *p)
{
	struct attempt *a = calloc(1, sizeof *a);

	if (a == NULL)
		return;
	a->p = p;
	a->started_ms = uv_now(p->loop);
	uv_tcp_init(p->loop, &a->tcp);
	a->tcp.data = a;
	a->req.data = a;
	p->refs++;
	p->cur = a;
	if (uv_tcp_connect(&a->req, &a->tcp, (const struct sockaddr *)&p->addr, on_connect) != 0) {
		p->closed_ms = uv_hrtime() / 1000000u; /* no route and the like */
		attempt_end(a);
	}
}

static void
on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct tcp_probe *p = req->data;

	p->resolving = 0;
	if (status == 0 && res != NULL && !p->done && res->ai_addrlen <= sizeof p->addr) {
		memcpy(&p->addr, res->ai_addr, res->ai_addrlen);
		p->have_addr = 1;
	}
	if (res != NULL)
		uv_freeaddrinfo(res);
	probe_unref(p);
}

static void
tick(uv_timer_t *t)
{
	struct tcp_probe *p = t->data;

	if (p->done)
		return;
	if (p->cur != NULL) {
		/* No answer within the budget: a filtered port counts as closed. */
		if (uv_now(p->loop) - p->cur->started_ms < p->every_ms * TCP_PROBE_TRY_FACTOR)
			return;
		struct attempt *a = p->cur;
		p->closed_ms = uv_hrtime() / 1000000u;
		p->cur = NULL;
		a->p = NULL;
		attempt_end(a);
		probe_unref(p);
	}
	if (!p->have_addr) {
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
		if (p->resolving)
			return;
		p->gai.data = p;
		p->refs++;
		p->resolving = 1;
		if (uv_getaddrinfo(p->loop, &p->gai, on_resolved, p->host, p->port, &hints) != 0) {
			p->resolving = 0;
			probe_unref(p);
		}
		return;
	}
	attempt_start(p);
}

struct tcp_probe *
tcp_probe_start(uv_loop_t *loop, const char *host, uint16_t port, uint64_t every_ms,
                tcp_probe_fn on_open, void *arg)
{
	struct tcp_probe *p = calloc(1, sizeof *p);

	if (p == NULL)
		return NULL;
	p->loop = loop;
	snprintf(p->host, sizeof p->host, "%s", host);
	snprintf(p->port, sizeof p->port, "%u", (unsigned)port);
	p->every_ms = every_ms > 0 ? every_ms : 1;
	p->on_open = on_open;
	p->arg = arg;
	p->refs = 1; /* the timer */
	uv_timer_init(loop, &p->timer);
	p->timer.data = p;
	uv_timer_start(&p->timer, tick, 0, p->every_ms);
	return p;
}

void
tcp_probe_stop(struct tcp_probe *p)
{
	if (p == NULL)
		return;
	p->done = 1;
	if (p->cur != NULL) {
		struct attempt *a = p->cur;
		p->cur = NULL;
		a->p = NULL;
		attempt_end(a);
		probe_unref(p);
	}
	if (p->resolving)
		uv_cancel((uv_req_t *)&p->gai); /* on_resolved still runs (UV_ECANCELED) */
	uv_timer_stop(&p->timer);
	uv_close((uv_handle_t *)&p->timer, timer_closed);
}

uint64_t
tcp_probe_closed_ms(const struct tcp_probe *p)
{
	return p != NULL ? p->closed_ms : 0;
}
