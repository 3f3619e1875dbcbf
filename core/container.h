/* The container a runtime reports: a core object plugins build through the
 * host API (container_new/set_image/add_label/add_port), opaque to them so
 * that it can grow.  Pure: no loop, no ctx; hostapi.c ties each one a plugin
 * makes to its ctx. */
#ifndef RDHPF_CONTAINER_H
#define RDHPF_CONTAINER_H

#include <stdbool.h>
#include <stddef.h>

#include "rdhpf/plugin.h"
#include "rules.h"

#define CONTAINER_ID_MAX 128
#define CONTAINER_PORTS_MAX 4096
#define CONTAINER_LABELS_MAX 1024

/* Read-only once built: every pointer is owned by the container (const
 * only so that tests and the reconciler can point at static data). */
struct rdhpf_container {
	const char *id;                 /* [0-9A-Za-z_.-]{1,128} */
	const char *name;               /* "" when not known */
	const struct rdhpf_port *ports; /* host_ip never NULL ("" when none) */
	size_t n_ports;
	const char *image; /* NULL when not reported */
	const struct rule_label *labels;
	size_t n_labels;
};

/* id is [0-9A-Za-z_.-]{1,128}. */
bool container_id_ok(const char *id);
/* A port a runtime may report: host_port 1..65535, proto TCP/UDP/SCTP,
 * host_ip NULL or shorter than 64 bytes and printable. */
bool container_port_ok(const struct rdhpf_port *p);

/* NULL on a bad id; name NULL is "", a leading '/' is dropped. */
struct rdhpf_container *container_alloc(const char *id, const char *name);
/* RDHPF_OK, RDHPF_ERR_INVAL or RDHPF_ERR_NOMEM. */
int container_image_set(struct rdhpf_container *c, const char *image);
int container_label_add(struct rdhpf_container *c, const char *key, const char *value);
/* Copies the members inside p->struct_size; absent ones are 0/NULL. */
int container_port_add(struct rdhpf_container *c, const struct rdhpf_port *p);
/* Deep copy into dst (a struct the caller owns); 0 or -1 (ENOMEM). */
int container_copy(struct rdhpf_container *dst, const struct rdhpf_container *src);
/* Free what c holds, not c itself. */
void container_clear(struct rdhpf_container *c);
void container_destroy(struct rdhpf_container *c);

#endif
