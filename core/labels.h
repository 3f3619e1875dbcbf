/* Container labels that say how a container's ports are forwarded (a host
 * opts in with labels = yes).  Pure: the reconciler applies the result.
 *
 *   rdhpf.ignore=true            none of this container's ports
 *   rdhpf.port.<remote>=<local>  remote (published) port → local port
 *   rdhpf.bind=<addr>[,<addr>]   local addresses (IP literals or localhost)
 *
 * Label values come from the remote engine: untrusted, bounded, and a bad
 * one only loses that label, never the container's other ports. */
#ifndef RDHPF_LABELS_H
#define RDHPF_LABELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rules.h"

#define LABELS_PORTS_MAX 64
#define LABELS_BIND_MAX 128
#define LABELS_ERR_MAX 512

struct labels_policy {
	bool ignore;                /* rdhpf.ignore=true */
	char bind[LABELS_BIND_MAX]; /* rdhpf.bind, "" when not given */
	struct {
		uint16_t remote, local;
	} ports[LABELS_PORTS_MAX]; /* rdhpf.port.<remote>=<local> */
	size_t n_ports;
	char err[LABELS_ERR_MAX]; /* "" or every bad label, "; "-joined */
};

/* Read the rdhpf.* labels of one container into *p (always filled: the
 * good labels apply even when some are bad).  Returns the number of bad
 * labels; their descriptions are in p->err (truncated when long). */
size_t labels_parse(const struct rule_label *labels, size_t n, struct labels_policy *p);

/* The local port the labels give a remote port, or 0. */
uint16_t labels_local_port(const struct labels_policy *p, uint16_t remote);

#endif
