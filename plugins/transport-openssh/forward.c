/* transport-openssh: forwards: the books, and asking the master to open and close them. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ossh.h"

struct fwd_entry *
fw_find(struct oss *o, const char *bind, uint16_t lport)
{
	for (struct fwd_entry *e = o->fw; e; e = e->next)
		if (e->k.lport == lport && strcmp(e->k.bind, bind) == 0)
			return e;
	return NULL;
}

void
fw_drop(struct oss *o, struct fwd_entry *e)
{
	for (struct fwd_entry **pp = &o->fw; *pp; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			free(e);
			return;
		}
	}
}

int
fwkey_same_target(const struct fwd_key *a, const struct fwd_key *b)
{
	return a->rport == b->rport && strcmp(a->rhost, b->rhost) == 0;
}

/* Why did the master refuse to listen?  It only says "Port forwarding
 * failed"; a bind of our own tells a taken port from other causes. */
int
bind_probe(const char *addr, uint16_t port, char *why, size_t len)
{
	struct addrinfo hints, *ai = NULL;
	char ps[8];
	int fd, r = RDHPF_ERR_GENERIC, one = 1;

	memset(&hints, 0, sizeof hints);
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(ps, sizeof ps, "%u", port);
	/* Numeric only: never a DNS lookup from the loop. */
	if (getaddrinfo(addr, ps, &hints, &ai) != 0 || ai == NULL) {
		snprintf(why, len, "bind address is not numeric; cause unknown");
		return RDHPF_ERR_GENERIC;
	}
	fd = socket(ai->ai_family, ai->ai_socktype, 0);
	if (fd >= 0) {
		/* As ssh does: SO_REUSEADDR, so TIME_WAIT does not count. */
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			snprintf(why, len, "the port is free now (it may have been taken briefly)");
			r = RDHPF_ERR_GENERIC;
		} else if (errno == EADDRINUSE) {
			snprintf(why, len, "%s:%u is already in use locally", addr, port);
			r = RDHPF_ERR_ADDRINUSE;
		} else if (errno == EACCES || errno == EPERM) {
			snprintf(why, len, "no permission to bind %s:%u", addr, port);
			r = RDHPF_ERR_IO;
		} else if (errno == EADDRNOTAVAIL) {
			snprintf(why, len, "bind address %s is not available on this machine",
			         addr);
			r = RDHPF_ERR_INVAL;
		} else {
			snprintf(why, len, "bind %s:%u: %s", addr, port, strerror(errno));
			r = RDHPF_ERR_IO;
		}
		close(fd);
	}
	freeaddrinfo(ai);
	return r;
}

/* The core's forward, read only inside its struct_size: every member we
 * use is 2.0, so a shorter struct is a broken caller. */
static int
fwd_key_make(const struct rdhpf_forward *f, struct fwd_key *k)
{
	if (f == NULL || !RDHPF_HAS(f, remote_port) || f->bind_address == NULL ||
	    f->remote_host == NULL || f->local_port == 0 || f->remote_port == 0 ||
	    strlen(f->bind_address) >= sizeof k->bind ||
	    strlen(f->remote_host) >= sizeof k->rhost || f->bind_address[0] == '\0' ||
	    f->remote_host[0] == '\0')
		return -1;
	memset(k, 0, sizeof *k);
	snprintf(k->bind, sizeof k->bind, "%s", f->bind_address);
	snprintf(k->rhost, sizeof k->rhost, "%s", f->remote_host);
	k->lport = f->local_port;
	k->rport = f->remote_port;
	return 0;
}

int
t_forward_add(void *state, const struct rdhpf_forward *f, rdhpf_done_fn done, void *arg)
{
	struct oss *o = state;
	struct fwd_key k;
	struct fwd_entry *e;

	if (fwd_key_make(f, &k) != 0)
		return RDHPF_ERR_INVAL;
	if (o->st != M_UP)
		return complete_later(o, done, arg, RDHPF_ERR_NOTCONN, "not connected");
	e = fw_find(o, k.bind, k.lport);
	if (e != NULL && !fwkey_same_target(&e->k, &k)) {
		/* Same local port, new target: the master would refuse to bind
		 * it twice, so close the old forward first (FIFO order). */
		if (ctl_request_fwd(o, MOP_CLOSE_QUIET, MUX_C_CLOSE_FWD, e->k.bind, e->k.lport,
		                    e->k.rhost, e->k.rport, &e->k, NULL, NULL, NULL) != 0) {
			link_broken(o);
			return complete_later(o, done, arg, RDHPF_ERR_CLOSED,
			                      "control socket unreachable");
		}
		e->k = k;
	} else if (e == NULL) {
		e = calloc(1, sizeof *e);
		if (e == NULL)
			return RDHPF_ERR_NOMEM;
		e->k = k;
		e->next = o->fw;
		o->fw = e;
	}
	/* Always asked of the master: it answers an identical forward with
	 * OK, and it is the one that knows. */
	if (ctl_request_fwd(o, MOP_OPEN, MUX_C_OPEN_FWD, k.bind, k.lport, k.rhost, k.rport, &k,
	                    NULL, done, arg) != 0) {
		link_broken(o);
		return complete_later(o, done, arg, RDHPF_ERR_CLOSED, "control socket unreachable");
	}
	return RDHPF_OK;
}

int
t_forward_remove(void *state, const struct rdhpf_forward *f, rdhpf_done_fn done, void *arg)
{
	struct oss *o = state;
	struct fwd_key k;
	struct fwd_entry *e;

	if (fwd_key_make(f, &k) != 0)
		return RDHPF_ERR_INVAL;
	e = fw_find(o, k.bind, k.lport);
	if (e != NULL) {
		k = e->k; /* what the master has: the target matters to it */
		fw_drop(o, e);
	}
	if (o->st != M_UP)
		return complete_later(o, done, arg, RDHPF_OK, NULL); /* gone with the master */
	/* Asked even when not in the books: "not forwarded" is success. */
	if (ctl_request_fwd(o, MOP_CLOSE, MUX_C_CLOSE_FWD, k.bind, k.lport, k.rhost, k.rport, &k,
	                    NULL, done, arg) != 0) {
		link_broken(o);
		return complete_later(o, done, arg, RDHPF_OK, NULL);
	}
	return RDHPF_OK;
}
