/* Containers as runtimes report them (see container.h). */
#include <stdlib.h>
#include <string.h>

#include "container.h"

#define UNCONST(p) ((void *)(uintptr_t)(p))

bool
container_id_ok(const char *id)
{
	size_t n = 0;

	if (id == NULL)
		return false;
	for (const char *p = id; *p; p++, n++) {
		char ch = *p;
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == '.' || ch == '-'))
			return false;
		if (n >= CONTAINER_ID_MAX)
			return false;
	}
	return n >= 1;
}

static bool
printable(const char *s, size_t max)
{
	size_t n = 0;

	for (; *s; s++, n++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f || n >= max)
			return false;
	return true;
}

bool
container_port_ok(const struct rdhpf_port *p)
{
	if (p == NULL || p->struct_size < offsetof(struct rdhpf_port, proto) + sizeof p->proto)
		return false;
	if (p->host_port == 0)
		return false;
	if (p->proto != RDHPF_PROTO_TCP && p->proto != RDHPF_PROTO_UDP &&
	    p->proto != RDHPF_PROTO_SCTP)
		return false;
	return p->host_ip == NULL || printable(p->host_ip, 63);
}

static char *
dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

struct rdhpf_container *
container_alloc(const char *id, const char *name)
{
	struct rdhpf_container *c;

	if (!container_id_ok(id))
		return NULL;
	if (name != NULL && name[0] == '/')
		name++;
	c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	c->id = strdup(id);
	c->name = strdup(name ? name : "");
	if (c->id == NULL || c->name == NULL) {
		container_destroy(c);
		return NULL;
	}
	return c;
}

int
container_image_set(struct rdhpf_container *c, const char *image)
{
	char *v;

	if (c == NULL || image == NULL || *image == '\0' || !printable(image, 4096))
		return RDHPF_ERR_INVAL;
	v = strdup(image);
	if (v == NULL)
		return RDHPF_ERR_NOMEM;
	free(UNCONST(c->image));
	c->image = v;
	return RDHPF_OK;
}

int
container_label_add(struct rdhpf_container *c, const char *key, const char *value)
{
	struct rule_label *v;
	char *k, *val;

	if (c == NULL || key == NULL || *key == '\0' || !printable(key, 1024) ||
	    (value != NULL && !printable(value, 65536)) || c->n_labels >= CONTAINER_LABELS_MAX)
		return RDHPF_ERR_INVAL;
	v = realloc(UNCONST(c->labels), (c->n_labels + 1) * sizeof *v);
	if (v == NULL)
		return RDHPF_ERR_NOMEM;
	c->labels = v;
	k = strdup(key);
	val = strdup(value ? value : "");
	if (k == NULL || val == NULL) {
		free(k);
		free(val);
		return RDHPF_ERR_NOMEM;
	}
	v[c->n_labels].key = k;
	v[c->n_labels].value = val;
	c->n_labels++;
	return RDHPF_OK;
}

int
container_port_add(struct rdhpf_container *c, const struct rdhpf_port *p)
{
	struct rdhpf_port *v, q;

	if (c == NULL || !container_port_ok(p) || c->n_ports >= CONTAINER_PORTS_MAX)
		return RDHPF_ERR_INVAL;
	memset(&q, 0, sizeof q);
	q.struct_size = sizeof q;
	q.host_port = p->host_port;
	q.container_port = p->container_port;
	q.proto = p->proto;
	q.host_ip = strdup(p->host_ip ? p->host_ip : "");
	if (q.host_ip == NULL)
		return RDHPF_ERR_NOMEM;
	v = realloc(UNCONST(c->ports), (c->n_ports + 1) * sizeof *v);
	if (v == NULL) {
		free(UNCONST(q.host_ip));
		return RDHPF_ERR_NOMEM;
	}
	c->ports = v;
	v[c->n_ports++] = q;
	return RDHPF_OK;
}

int
container_copy(struct rdhpf_container *dst, const struct rdhpf_container *src)
{
	char *id = strdup(src->id ? src->id : ""), *name = strdup(src->name ? src->name : "");

	memset(dst, 0, sizeof *dst);
	dst->id = id;
	dst->name = name;
	dst->image = dup_or_null(src->image);
	if (dst->id == NULL || dst->name == NULL || (src->image != NULL && dst->image == NULL))
		goto fail;
	for (size_t i = 0; i < src->n_labels; i++)
		if (container_label_add(dst, src->labels[i].key, src->labels[i].value) != RDHPF_OK)
			goto fail;
	for (size_t i = 0; i < src->n_ports; i++)
		if (container_port_add(dst, &src->ports[i]) != RDHPF_OK)
			goto fail;
	return 0;
fail:
	container_clear(dst);
	return -1;
}

void
container_clear(struct rdhpf_container *c)
{
	if (c == NULL)
		return;
	free(UNCONST(c->id));
	free(UNCONST(c->name));
	free(UNCONST(c->image));
	for (size_t i = 0; i < c->n_labels; i++) {
		free(UNCONST(c->labels[i].key));
		free(UNCONST(c->labels[i].value));
	}
	free(UNCONST(c->labels));
	for (size_t i = 0; i < c->n_ports; i++)
		free(UNCONST(c->ports[i].host_ip));
	free(UNCONST(c->ports));
	memset(c, 0, sizeof *c);
}

void
container_destroy(struct rdhpf_container *c)
{
	container_clear(c);
	free(c);
}
