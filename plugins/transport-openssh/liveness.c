/* transport-openssh: the end-to-end liveness probe (see ossh.h) and its keepalive counting. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ossh.h"

static void
lv_close(struct oss *o)
{
	io_close(&o->lv_io, &o->lv_fd);
	rsdk_buf_free(&o->lv_r);
}

void
lv_stop(struct oss *o)
{
	stop_timer(&o->lv_tick_t);
	stop_timer(&o->lv_dead_t);
	lv_close(o);
}

/* The counting is the SDK's (rsdk_live), the same as the in-process
 * transports': dead when nothing answered for interval x count plus half an
 * interval. */
static void
lv_dead_cb(void *arg)
{
	struct oss *o = arg;
	uint64_t now = H->now_ms(o->ctx);
	char d[640], n[16], why[200];

	stop_timer(&o->lv_dead_t);
	if (o->st != M_UP || o->lv_off)
		return;
	if (!rsdk_live_dead(&o->live, now)) {
		o->lv_dead_t =
		    H->timer_start(o->ctx, rsdk_live_deadline(&o->live) - now, 0, lv_dead_cb, o);
		return;
	}
	rsdk_live_describe(&o->live, now, why, sizeof why);
	snprintf(d, sizeof d, "sshd at %s through the ssh master: %s: the link is dead", o->where,
	         why);
	snprintf(n, sizeof n, "%u", o->live.unanswered);
	H->log(o->ctx, RDHPF_LOG_WARN, "ssh link dead: liveness probes unanswered", "dest",
	       o->where, "unanswered", n, "err", d, NULL);
	H->counter_add(o->ctx, "ssh_liveness_dead_total", 1);
	master_stop(o);
	H->report_down(o->ctx, RDHPF_ERR_TIMEOUT, d);
}

/* An answer from the master on the probe's connection.  1: sshd answered;
 * 0: not yet; -1: this master cannot probe (it answered by itself). */
static int
lv_parse(struct oss *o, char *why, size_t whylen)
{
	struct mux_msg msg;
	size_t used;
	char err[200];
	int r;

	while ((r = mux_decode(rsdk_buf_str(&o->lv_r), rsdk_buf_size(&o->lv_r), &msg, &used, err,
	                       sizeof err)) == 1) {
		if (msg.type == MUX_S_SESSION_OPENED && msg.id == o->lv_rid)
			return 1; /* something listens on port 0?  sshd answered anyway */
		if ((msg.type == MUX_S_FAILURE || msg.type == MUX_S_PERMISSION_DENIED) &&
		    msg.id == o->lv_rid) {
			rsdk_printable(why, whylen, msg.reason.p, msg.reason.len);
			/* "Session open refused by peer": sshd's refusal, sent after
			 * the round trip.  Anything else the master said itself. */
			return strstr(why, "refused by peer") != NULL ? 1 : -1;
		}
		rsdk_buf_consume(&o->lv_r, used); /* the hello */
	}
	if (r < 0) {
		snprintf(why, whylen, "malformed packet from the ssh master: %.150s", err);
		return -1;
	}
	return 0;
}

static void
lv_io_cb(void *arg, int fd, unsigned rev)
{
	struct oss *o = arg;
	unsigned char buf[512];
	char why[200] = "";
	int got = 0;

	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n > 0) {
			if (rsdk_buf_append(&o->lv_r, buf, (size_t)n) != 0)
				break;
			got = lv_parse(o, why, sizeof why);
			if (got != 0)
				break;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		/* After an error callback the watch is stopped (plugin.h):
		 * nothing more will come on it. */
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !(rev & RDHPF_IO_ERROR))
			return;
		break; /* EOF or error before an answer: a new probe at the next tick */
	}
	lv_close(o);
	if (got == 1) {
		char ms[24];
		uint32_t missed = o->live.unanswered;
		int64_t rtt = rsdk_live_answered(&o->live, H->now_ms(o->ctx));
		snprintf(ms, sizeof ms, "%lld", (long long)rtt);
		if (missed > 0)
			H->log(o->ctx, RDHPF_LOG_INFO, "ssh liveness: sshd answers again", "dest",
			       o->where, "took_ms", ms, NULL);
		if (rtt >= 0)
			H->observe(o->ctx, "ssh_liveness_seconds", (double)rtt / 1000.0);
	} else if (got == 0) {
		rsdk_live_lost(&o->live); /* a new probe at the next tick */
	} else {
		o->lv_off = 1;
		stop_timer(&o->lv_tick_t);
		stop_timer(&o->lv_dead_t);
		H->log(o->ctx, RDHPF_LOG_WARN,
		       "ssh liveness probe not possible through this master: dead links are found "
		       "by ServerAlive only",
		       "dest", o->where, "err", why, NULL);
	}
}

/* Send one probe on a connection of its own (the master ties a stdio
 * forward to its control connection and closes both together). */
static void
lv_send(struct oss *o)
{
	struct rsdk_buf out = {0};
	int sv[2] = {-1, -1}, fd;
	ssize_t n;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return;
	fd = unix_connect(o->ctl);
	if (fd < 0) {
		close(sv[0]);
		close(sv[1]);
		/* Nobody listens there any more: the link is unusable (as for
		 * exec); a full backlog is tried again at the next tick. */
		if (fd == -ENOENT || fd == -ECONNREFUSED)
			link_broken(o);
		return;
	}
	o->lv_rid = ++o->next_rid;
	if (mux_enc_hello(&out) != 0 || mux_enc_stdio_fwd(&out, o->lv_rid, LV_HOST, LV_PORT) != 0)
		goto out;
	/* The stdio fds: the master owns its copies and closes them when the
	 * open is refused. */
	n = send(fd, rsdk_buf_str(&out), rsdk_buf_size(&out), MSG_NOSIGNAL);
	if (n < 0 || (size_t)n != rsdk_buf_size(&out) || send_fd(fd, sv[1]) != 0 ||
	    send_fd(fd, sv[1]) != 0)
		goto out;
	o->lv_io = H->io_start(o->ctx, fd, RDHPF_IO_READ, lv_io_cb, o);
	if (o->lv_io == NULL)
		goto out;
	o->lv_fd = fd;
	fd = -1;
	rsdk_live_sent(&o->live, H->now_ms(o->ctx));
out:
	rsdk_buf_free(&out);
	if (fd >= 0)
		close(fd);
	close(sv[0]);
	close(sv[1]);
}

static void
lv_tick(void *arg)
{
	struct oss *o = arg;
	char n[16], c[16];

	if (o->st != M_UP || o->lv_off)
		return;
	switch (rsdk_live_tick(&o->live, H->now_ms(o->ctx))) {
	case RSDK_LIVE_SEND:
		lv_send(o);
		break;
	case RSDK_LIVE_WAIT:
		/* The last probe is still out: one more interval unanswered.  It
		 * stays out (an answer late under load still counts). */
		snprintf(n, sizeof n, "%u", o->live.unanswered);
		snprintf(c, sizeof c, "%u", o->keepalive_count);
		H->log(o->ctx, RDHPF_LOG_INFO, "ssh liveness probe unanswered", "dest", o->where,
		       "unanswered", n, "keepalive_count", c, NULL);
		H->counter_add(o->ctx, "ssh_liveness_unanswered_total", 1);
		break;
	default:
		break;
	}
	if (o->lv_dead_t == NULL)
		lv_dead_cb(o); /* arms itself for the deadline, or finds it passed */
}

void
lv_start(struct oss *o)
{
	lv_stop(o);
	o->lv_off = 0;
	rsdk_live_start(&o->live, o->keepalive_interval_ms, o->keepalive_count, H->now_ms(o->ctx));
	if (o->lv_never || o->keepalive_interval_ms == 0 || o->keepalive_count == 0)
		return;
	/* The first probe goes at the first tick: this runs inside the mux
	 * reply that brought the master up. */
	o->lv_tick_t =
	    H->timer_start(o->ctx, o->keepalive_interval_ms, o->keepalive_interval_ms, lv_tick, o);
}
