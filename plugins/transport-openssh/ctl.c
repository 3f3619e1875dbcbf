/* transport-openssh: the persistent control connection to the master: alive checks and forward
 * requests, pipelined, replies matched by request id. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ossh.h"

static void mux_io_cb(void *arg, int fd, unsigned rev);

static void
mux_watch(struct oss *o)
{
	if (o->mux.io != NULL)
		H->io_update(o->mux.io, RDHPF_IO_READ | (buf_avail(&o->mux.w) ? RDHPF_IO_WRITE : 0));
}

void
mux_drop_ops(struct oss *o, int status, const char *detail, int call)
{
	struct mop *m = o->mux.head;

	o->mux.head = o->mux.tail = NULL;
	while (m) {
		struct mop *next = m->next;
		if (call && m->done != NULL)
			complete_soon(o, m->done, m->arg, status, detail);
		if (call && m->kind == MOP_UNIX_OPEN && m->ul != NULL)
			ul_ready(o, m->ul, status, detail);
		free(m);
		m = next;
	}
}

/* Close the control connection; outstanding requests fail with status
 * (call) or are dropped silently (!call). */
void
mux_close(struct oss *o, int status, const char *detail, int call)
{
	if (o->mux.io)
		H->io_stop(o->mux.io);
	if (o->mux.fd >= 0)
		close(o->mux.fd);
	o->mux.io = NULL;
	o->mux.fd = -1;
	o->mux.hello = 0;
	o->mux.answers = 0;
	buf_free(&o->mux.r);
	buf_free(&o->mux.w);
	mux_drop_ops(o, status, detail, call);
}

/* Connect the control connection: 0, or -errno (-ENOENT, -ECONNREFUSED:
 * no master listening there). */
int
mux_open(struct oss *o)
{
	int fd = unix_connect(o->ctl);

	if (fd < 0)
		return fd;
	o->mux.fd = fd;
	o->mux.io = H->io_start(o->ctx, fd, RDHPF_IO_READ, mux_io_cb, o);
	if (o->mux.io == NULL || mux_hello(&o->mux.w) != 0) {
		mux_close(o, RDHPF_ERR_IO, NULL, 0);
		return -ENOMEM;
	}
	return 0;
}

/* Queue one request: the op (taken over) and its packet.  0, or -1 when
 * the connection cannot be had (m freed). */
static int
mux_send(struct oss *o, struct mop *m, struct pkt *p)
{
	int r;

	if (o->mux.fd < 0 && (r = mux_open(o)) != 0) {
		H->log(o->ctx, RDHPF_LOG_WARN, "cannot reach the ssh control socket", "path", o->ctl,
		       "err", strerror(-r), NULL);
		buf_free(&p->b);
		free(m);
		return -1;
	}
	if (pkt_finish(p, &o->mux.w) != 0) {
		free(m);
		return -1;
	}
	m->next = NULL;
	if (o->mux.tail)
		o->mux.tail->next = m;
	else
		o->mux.head = m;
	o->mux.tail = m;
	r = sock_flush(o->mux.fd, &o->mux.w);
	if (r != 0) {
		/* The op is queued: it fails with the connection, later. */
		H->log(o->ctx, RDHPF_LOG_WARN, "ssh control socket write failed", "err", strerror(-r),
		       NULL);
	}
	mux_watch(o);
	return 0;
}

static struct mop *
mop_new(struct oss *o, int kind, rdhpf_done_fn done, void *arg)
{
	struct mop *m = calloc(1, sizeof *m);

	if (m == NULL)
		return NULL;
	m->rid = ++o->next_rid;
	m->kind = kind;
	m->done = done;
	m->arg = arg;
	return m;
}

int
mux_request_simple(struct oss *o, int kind, uint32_t type, rdhpf_done_fn done, void *arg)
{
	struct mop *m = mop_new(o, kind, done, arg);
	struct pkt p = {0};

	if (m == NULL)
		return -1;
	pkt_u32(&p, type);
	pkt_u32(&p, m->rid);
	return mux_send(o, m, &p);
}

int
mux_request_fwd(struct oss *o, int kind, uint32_t type, const char *lhost, uint32_t lport,
                const char *chost, uint32_t cport, const struct fwd_key *fk, struct ulisten *ul,
                rdhpf_done_fn done, void *arg)
{
	struct mop *m = mop_new(o, kind, done, arg);
	struct pkt p = {0};

	if (m == NULL)
		return -1;
	if (fk != NULL)
		m->fk = *fk;
	m->ul = ul;
	pkt_u32(&p, type);
	pkt_u32(&p, m->rid);
	pkt_u32(&p, MUX_FWD_LOCAL);
	pkt_str(&p, lhost);
	pkt_u32(&p, lport);
	pkt_str(&p, chost);
	pkt_u32(&p, cport);
	return mux_send(o, m, &p);
}

static void
on_reply(struct oss *o, struct mop *m, uint32_t type, struct rd *r)
{
	char reason[256] = "", d[512];
	uint32_t pid = 0;
	int st;

	if (type == MUX_S_FAILURE || type == MUX_S_PERMISSION_DENIED)
		rd_str(r, reason, sizeof reason);
	else if (type == MUX_S_ALIVE || type == MUX_S_REMOTE_PORT)
		pid = rd_u32(r);
	switch (m->kind) {
	case MOP_READY:
		on_ready(o, type, pid, reason);
		break;
	case MOP_HEALTH:
		if (type == MUX_S_ALIVE && (int)pid == o->pid)
			complete_soon(o, m->done, m->arg, RDHPF_OK, NULL);
		else {
			snprintf(d, sizeof d, "ssh master alive check: unexpected answer 0x%08x %s", type,
			         reason);
			complete_soon(o, m->done, m->arg, RDHPF_ERR_PROTO, d);
		}
		break;
	case MOP_OPEN:
		if (type == MUX_S_OK) {
			complete_soon(o, m->done, m->arg, RDHPF_OK, NULL);
			break;
		}
		{
			char why[160];
			struct fwd_entry *e = fw_find(o, m->fk.bind, m->fk.lport);
			st = type == MUX_S_FAILURE ? bind_probe(m->fk.bind, m->fk.lport, why, sizeof why)
			                           : RDHPF_ERR_GENERIC;
			if (type != MUX_S_FAILURE)
				snprintf(why, sizeof why, "refused by the master");
			if (e != NULL && fwkey_same_target(&e->k, &m->fk))
				fw_drop(o, e);
			snprintf(d, sizeof d, "ssh master: %s (%s)", reason[0] ? reason : "failed", why);
			complete_soon(o, m->done, m->arg, st, d);
		}
		break;
	case MOP_CLOSE:
	case MOP_CLOSE_QUIET:
		/* Not forwarded (any more) is what was asked for. */
		if (type == MUX_S_OK || strstr(reason, "not forwarded") || strstr(reason, "not found"))
			st = RDHPF_OK;
		else
			st = RDHPF_ERR_GENERIC;
		if (st != RDHPF_OK)
			snprintf(d, sizeof d, "ssh master: %s", reason);
		if (m->kind == MOP_CLOSE)
			complete_soon(o, m->done, m->arg, st, st == RDHPF_OK ? NULL : d);
		else if (st != RDHPF_OK)
			H->log(o->ctx, RDHPF_LOG_WARN, "replacing a forward: closing the old one failed",
			       "err", d, NULL);
		break;
	case MOP_UNIX_OPEN:
		if (type == MUX_S_OK)
			ul_ready(o, m->ul, RDHPF_OK, NULL);
		else {
			snprintf(d, sizeof d, "ssh master refused the forward to remote socket: %s",
			         reason[0] ? reason : "failed");
			ul_ready(o, m->ul, RDHPF_ERR_REMOTE, d);
		}
		break;
	case MOP_TERMINATE:
	default:
		break;
	}
}

static void
mux_parse(struct oss *o)
{
	while (buf_avail(&o->mux.r) >= 4) {
		const unsigned char *p = o->mux.r.d + o->mux.r.off;
		uint32_t len = get_u32(p);
		struct rd r;
		uint32_t type, rid;

		if (len < 4 || len > MUX_PACKET_MAX) {
			H->log(o->ctx, RDHPF_LOG_ERROR, "malformed packet from the ssh master", NULL);
			mux_close(o, RDHPF_ERR_PROTO, "malformed packet from the ssh master", 1);
			return;
		}
		if (buf_avail(&o->mux.r) < 4 + (size_t)len)
			return;
		r.p = p + 4;
		r.n = len;
		r.err = 0;
		type = rd_u32(&r);
		if (type == MUX_MSG_HELLO) {
			uint32_t v = rd_u32(&r);
			if (v != MUX_VERSION) {
				char d[96];
				snprintf(d, sizeof d, "ssh master speaks mux protocol %u, not %u", v,
				         MUX_VERSION);
				buf_consume(&o->mux.r, 4 + (size_t)len);
				mux_close(o, RDHPF_ERR_PROTO, d, 1);
				return;
			}
			o->mux.hello = 1;
		} else {
			struct mop *m, *prev = NULL;
			rid = rd_u32(&r);
			o->mux.answers++;
			for (m = o->mux.head; m; prev = m, m = m->next)
				if (m->rid == rid)
					break;
			if (m != NULL) {
				if (prev)
					prev->next = m->next;
				else
					o->mux.head = m->next;
				if (o->mux.tail == m)
					o->mux.tail = prev;
				on_reply(o, m, type, &r);
				free(m);
			}
		}
		/* on_reply may have closed the connection (master_stop keeps it,
		 * but be safe). */
		if (o->mux.fd < 0)
			return;
		buf_consume(&o->mux.r, 4 + (size_t)len);
	}
}

static void
mux_io_cb(void *arg, int fd, unsigned rev)
{
	struct oss *o = arg;
	unsigned char tmp[4096];

	if (rev & RDHPF_IO_WRITE) {
		int r = sock_flush(fd, &o->mux.w);
		if (r != 0) {
			mux_close(o, RDHPF_ERR_CLOSED, "ssh control connection lost", 1);
			return;
		}
		mux_watch(o);
	}
	if (!(rev & (RDHPF_IO_READ | RDHPF_IO_ERROR)))
		return;
	for (;;) {
		ssize_t n = recv(fd, tmp, sizeof tmp, 0);
		if (n > 0) {
			if (buf_put(&o->mux.r, tmp, (size_t)n) != 0) {
				mux_close(o, RDHPF_ERR_NOMEM, "out of memory", 1);
				return;
			}
			if ((size_t)n < sizeof tmp)
				break;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		/* EOF or error: the master closed the connection or is gone.
		 * Its exit (if that is it) is seen by the child watch. */
		mux_parse(o);
		if (o->mux.fd >= 0)
			mux_close(o, RDHPF_ERR_CLOSED, "ssh master closed the control connection", 1);
		return;
	}
	mux_parse(o);
}
