/* transport-openssh: the persistent control connection to the master: alive checks and forward
 * requests, pipelined, replies matched by request id. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ossh.h"

static void ctl_io_cb(void *arg, int fd, unsigned rev);

static void
ctl_watch(struct oss *o)
{
	if (o->cc.io != NULL)
		H->io_update(o->cc.io,
		             RDHPF_IO_READ | (rsdk_buf_size(&o->cc.w) ? RDHPF_IO_WRITE : 0));
}

void
ctl_drop_ops(struct oss *o, int status, const char *detail, int call)
{
	struct mop *m = o->cc.head;

	o->cc.head = o->cc.tail = NULL;
	while (m) {
		struct mop *next = m->next;
		if (call)
			op_answer(&m->op, status, detail);
		else
			rsdk_op_cancel(m->op);
		if (call && m->kind == MOP_UNIX_OPEN && m->ul != NULL)
			ul_ready(o, m->ul, status, detail);
		free(m);
		m = next;
	}
}

/* Close the control connection; outstanding requests fail with status
 * (call) or are dropped silently (!call). */
void
ctl_close(struct oss *o, int status, const char *detail, int call)
{
	if (o->cc.io)
		H->io_stop(o->cc.io);
	if (o->cc.fd >= 0)
		close(o->cc.fd);
	o->cc.io = NULL;
	o->cc.fd = -1;
	o->cc.answers = 0;
	rsdk_buf_free(&o->cc.r);
	rsdk_buf_free(&o->cc.w);
	ctl_drop_ops(o, status, detail, call);
}

/* Connect the control connection: 0, or -errno (-ENOENT, -ECONNREFUSED:
 * no master listening there). */
int
ctl_open(struct oss *o)
{
	int fd = unix_connect(o->ctl);

	if (fd < 0)
		return fd;
	o->cc.fd = fd;
	o->cc.io = H->io_start(o->ctx, fd, RDHPF_IO_READ, ctl_io_cb, o);
	if (o->cc.io == NULL || mux_enc_hello(&o->cc.w) != 0) {
		ctl_close(o, RDHPF_ERR_IO, NULL, 0);
		return -ENOMEM;
	}
	return 0;
}

/* The connection, opened if needed.  0, or -1 (logged). */
static int
ctl_ensure(struct oss *o)
{
	int r;

	if (o->cc.fd >= 0)
		return 0;
	r = ctl_open(o);
	if (r != 0) {
		H->log(o->ctx, RDHPF_LOG_WARN, "cannot reach the ssh control socket", "path",
		       o->ctl, "err", strerror(-r), NULL);
		return -1;
	}
	return 0;
}

/* Queue the op (taken over) whose packet is in the write buffer. */
static void
ctl_queue(struct oss *o, struct mop *m)
{
	int r;

	m->next = NULL;
	if (o->cc.tail)
		o->cc.tail->next = m;
	else
		o->cc.head = m;
	o->cc.tail = m;
	r = sock_flush(o->cc.fd, &o->cc.w);
	if (r != 0) {
		/* The op is queued: it fails with the connection, later. */
		H->log(o->ctx, RDHPF_LOG_WARN, "ssh control socket write failed", "err",
		       strerror(-r), NULL);
	}
	ctl_watch(o);
}

static struct mop *
mop_new(struct oss *o, int kind, rdhpf_done_fn done, void *arg)
{
	struct mop *m = calloc(1, sizeof *m);

	if (m == NULL)
		return NULL;
	if (done != NULL && (m->op = rsdk_op_start(&o->pend, done, arg, 0, NULL)) == NULL) {
		free(m);
		return NULL;
	}
	m->rid = ++o->next_rid;
	m->kind = kind;
	return m;
}

/* A request that was never sent: its caller hears nothing (the slot
 * fails instead). */
static void
mop_free(struct mop *m)
{
	if (m != NULL)
		rsdk_op_cancel(m->op);
	free(m);
}

/* disconnect/destroy: no callback may follow, but the requests stay
 * queued (destroy looks at whether any are). */
void
ctl_forget_callers(struct oss *o)
{
	for (struct mop *m = o->cc.head; m; m = m->next) {
		rsdk_op_cancel(m->op);
		m->op = NULL;
	}
}

/* A request that carries only its id.  0, or -1 when the connection
 * cannot be had. */
int
ctl_request(struct oss *o, int kind, uint32_t type, rdhpf_done_fn done, void *arg)
{
	struct mop *m;

	if (ctl_ensure(o) != 0)
		return -1;
	m = mop_new(o, kind, done, arg);
	if (m == NULL || mux_enc_request(&o->cc.w, type, m->rid) != 0) {
		mop_free(m);
		return -1;
	}
	ctl_queue(o, m);
	return 0;
}

int
ctl_request_fwd(struct oss *o, int kind, uint32_t type, const char *lhost, uint32_t lport,
                const char *chost, uint32_t cport, const struct fwd_key *fk, struct ulisten *ul,
                rdhpf_done_fn done, void *arg)
{
	struct mop *m;

	if (ctl_ensure(o) != 0)
		return -1;
	m = mop_new(o, kind, done, arg);
	if (m == NULL || mux_enc_fwd(&o->cc.w, type, m->rid, lhost, lport, chost, cport) != 0) {
		mop_free(m);
		return -1;
	}
	if (fk != NULL)
		m->fk = *fk;
	m->ul = ul;
	ctl_queue(o, m);
	return 0;
}

static void
on_reply(struct oss *o, struct mop *m, const struct mux_msg *msg)
{
	char reason[256] = "", d[512];
	uint32_t type = msg->type, pid = msg->value;
	int st;

	rsdk_printable(reason, sizeof reason, msg->reason.p, msg->reason.len);
	switch (m->kind) {
	case MOP_READY:
		on_ready(o, type, pid, reason);
		break;
	case MOP_HEALTH:
		if (type == MUX_S_ALIVE && (int)pid == o->pid)
			op_answer(&m->op, RDHPF_OK, NULL);
		else {
			snprintf(d, sizeof d, "ssh master alive check: unexpected answer 0x%08x %s",
			         type, reason);
			op_answer(&m->op, RDHPF_ERR_PROTO, d);
		}
		break;
	case MOP_OPEN:
		if (type == MUX_S_OK) {
			op_answer(&m->op, RDHPF_OK, NULL);
			break;
		}
		{
			char why[160];
			struct fwd_entry *e = fw_find(o, m->fk.bind, m->fk.lport);
			st = type == MUX_S_FAILURE
			         ? bind_probe(m->fk.bind, m->fk.lport, why, sizeof why)
			         : RDHPF_ERR_GENERIC;
			if (type != MUX_S_FAILURE)
				snprintf(why, sizeof why, "refused by the master");
			if (e != NULL && fwkey_same_target(&e->k, &m->fk))
				fw_drop(o, e);
			snprintf(d, sizeof d, "ssh master: %s (%s)", reason[0] ? reason : "failed",
			         why);
			op_answer(&m->op, st, d);
		}
		break;
	case MOP_CLOSE:
	case MOP_CLOSE_QUIET:
		/* Not forwarded (any more) is what was asked for. */
		if (type == MUX_S_OK || strstr(reason, "not forwarded") ||
		    strstr(reason, "not found"))
			st = RDHPF_OK;
		else
			st = RDHPF_ERR_GENERIC;
		if (st != RDHPF_OK)
			snprintf(d, sizeof d, "ssh master: %s", reason);
		if (m->kind == MOP_CLOSE)
			op_answer(&m->op, st, st == RDHPF_OK ? NULL : d);
		else if (st != RDHPF_OK)
			H->log(o->ctx, RDHPF_LOG_WARN,
			       "replacing a forward: closing the old one failed", "err", d, NULL);
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
ctl_parse(struct oss *o)
{
	struct mux_msg msg;
	size_t used;
	char err[200];
	int r;

	while ((r = mux_decode(rsdk_buf_str(&o->cc.r), rsdk_buf_size(&o->cc.r), &msg, &used, err,
	                       sizeof err)) == 1) {
		if (msg.type == MUX_MSG_HELLO) {
			if (msg.version != MUX_VERSION) {
				char d[96];
				snprintf(d, sizeof d, "ssh master speaks mux protocol %u, not %u",
				         msg.version, MUX_VERSION);
				rsdk_buf_consume(&o->cc.r, used);
				ctl_close(o, RDHPF_ERR_PROTO, d, 1);
				return;
			}
		} else if (mux_is_reply(msg.type)) {
			struct mop *m, *prev = NULL;
			o->cc.answers++;
			for (m = o->cc.head; m; prev = m, m = m->next)
				if (m->rid == msg.id)
					break;
			if (m != NULL) {
				if (prev)
					prev->next = m->next;
				else
					o->cc.head = m->next;
				if (o->cc.tail == m)
					o->cc.tail = prev;
				on_reply(o, m, &msg);
				free(m);
			}
		} else {
			snprintf(err, sizeof err,
			         "mux request 0x%08x sent by the master to its client", msg.type);
			r = -1;
			break;
		}
		/* on_reply may have closed the connection (master_stop keeps it,
		 * but be safe). */
		if (o->cc.fd < 0)
			return;
		rsdk_buf_consume(&o->cc.r, used);
	}
	if (r < 0) {
		char d[260];
		snprintf(d, sizeof d, "malformed packet from the ssh master: %.150s", err);
		H->log(o->ctx, RDHPF_LOG_ERROR, "malformed packet from the ssh master", "err", err,
		       NULL);
		ctl_close(o, RDHPF_ERR_PROTO, d, 1);
	}
}

static void
ctl_io_cb(void *arg, int fd, unsigned rev)
{
	struct oss *o = arg;
	unsigned char tmp[4096];

	if (rev & RDHPF_IO_WRITE) {
		int r = sock_flush(fd, &o->cc.w);
		if (r != 0) {
			ctl_close(o, RDHPF_ERR_CLOSED, "ssh control connection lost", 1);
			return;
		}
		ctl_watch(o);
	}
	if (!(rev & (RDHPF_IO_READ | RDHPF_IO_ERROR)))
		return;
	for (;;) {
		ssize_t n = recv(fd, tmp, sizeof tmp, 0);
		if (n > 0) {
			if (rsdk_buf_append(&o->cc.r, tmp, (size_t)n) != 0) {
				ctl_close(o, RDHPF_ERR_NOMEM, "out of memory", 1);
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
		ctl_parse(o);
		if (o->cc.fd >= 0)
			ctl_close(o, RDHPF_ERR_CLOSED, "ssh master closed the control connection",
			          1);
		return;
	}
	ctl_parse(o);
}
