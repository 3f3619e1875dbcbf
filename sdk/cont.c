/* Plugin-side containers, container sets and the diff between two sets;
 * export to the core's opaque containers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdhpf/sdk.h"

#define RSDK_ID_MAX 128u

static int
id_ok(const char *id)
{
	size_t n = 0;

	if (id == NULL)
		return 0;
	for (; id[n] != '\0'; n++) {
		char ch = id[n];
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == '.' || ch == '-'))
			return 0;
		if (n >= RSDK_ID_MAX)
			return 0;
	}
	return n > 0;
}

int
rsdk_cont_init(struct rsdk_cont *c, const char *id, const char *name)
{
	memset(c, 0, sizeof *c);
	if (!id_ok(id))
		return RDHPF_ERR_INVAL;
	/* Docker names come with a leading '/'; the core wants none. */
	if (name != NULL && name[0] == '/')
		name++;
	if (name == NULL || name[0] == '\0')
		name = id;
	c->id = strdup(id);
	c->name = strdup(name);
	if (c->id == NULL || c->name == NULL) {
		rsdk_cont_clear(c);
		return RDHPF_ERR_NOMEM;
	}
	return RDHPF_OK;
}

void
rsdk_cont_clear(struct rsdk_cont *c)
{
	free(c->id);
	free(c->name);
	free(c->image);
	free(c->ports);
	for (size_t i = 0; i < c->n_labels; i++) {
		free(c->labels[i].key);
		free(c->labels[i].value);
	}
	free(c->labels);
	memset(c, 0, sizeof *c);
}

int
rsdk_cont_set_image(struct rsdk_cont *c, const char *image)
{
	char *v = NULL;

	if (image != NULL && (v = strdup(image)) == NULL)
		return RDHPF_ERR_NOMEM;
	free(c->image);
	c->image = v;
	return RDHPF_OK;
}

int
rsdk_cont_add_label(struct rsdk_cont *c, const char *key, const char *value)
{
	char *v;
	struct rsdk_label *nl;

	if (key == NULL || value == NULL)
		return RDHPF_ERR_INVAL;
	if ((v = strdup(value)) == NULL)
		return RDHPF_ERR_NOMEM;
	/* A key is there once; the last value wins. */
	for (size_t i = 0; i < c->n_labels; i++) {
		if (strcmp(c->labels[i].key, key) == 0) {
			free(c->labels[i].value);
			c->labels[i].value = v;
			return RDHPF_OK;
		}
	}
	nl = realloc(c->labels, (c->n_labels + 1) * sizeof *nl);
	if (nl == NULL) {
		free(v);
		return RDHPF_ERR_NOMEM;
	}
	c->labels = nl;
	if ((nl[c->n_labels].key = strdup(key)) == NULL) {
		free(v);
		return RDHPF_ERR_NOMEM;
	}
	nl[c->n_labels].value = v;
	c->n_labels++;
	return RDHPF_OK;
}

static int
port_equal(const struct rsdk_port *a, const struct rsdk_port *b)
{
	return a->host_port == b->host_port && a->container_port == b->container_port &&
	       a->proto == b->proto && strcmp(a->ip, b->ip) == 0;
}

int
rsdk_cont_add_port(struct rsdk_cont *c, const char *ip, uint16_t host_port, uint16_t container_port,
                   int proto)
{
	struct rsdk_port p, *np;

	memset(&p, 0, sizeof p);
	if (ip != NULL) {
		if (strlen(ip) >= sizeof p.ip)
			return RDHPF_ERR_INVAL;
		strncpy(p.ip, ip, sizeof p.ip - 1);
	}
	p.host_port = host_port;
	p.container_port = container_port;
	p.proto = proto;
	for (size_t i = 0; i < c->n_ports; i++)
		if (port_equal(&c->ports[i], &p))
			return RDHPF_OK;
	np = realloc(c->ports, (c->n_ports + 1) * sizeof *np);
	if (np == NULL)
		return RDHPF_ERR_NOMEM;
	c->ports = np;
	np[c->n_ports++] = p;
	return RDHPF_OK;
}

void
rsdk_cont_move(struct rsdk_cont *dst, struct rsdk_cont *src)
{
	*dst = *src;
	memset(src, 0, sizeof *src);
}

static int
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static const char *
label_get(const struct rsdk_cont *c, const char *key)
{
	for (size_t i = 0; i < c->n_labels; i++)
		if (strcmp(c->labels[i].key, key) == 0)
			return c->labels[i].value;
	return NULL;
}

/* Every port of a is in b (ports are unique within a container). */
static int
ports_in(const struct rsdk_cont *a, const struct rsdk_cont *b)
{
	for (size_t i = 0; i < a->n_ports; i++) {
		size_t j;
		for (j = 0; j < b->n_ports; j++)
			if (port_equal(&a->ports[i], &b->ports[j]))
				break;
		if (j == b->n_ports)
			return 0;
	}
	return 1;
}

int
rsdk_cont_equal(const struct rsdk_cont *a, const struct rsdk_cont *b)
{
	if (a->n_ports != b->n_ports || a->n_labels != b->n_labels || !str_eq(a->image, b->image))
		return 0;
	if (!ports_in(a, b))
		return 0;
	for (size_t i = 0; i < a->n_labels; i++)
		if (!str_eq(a->labels[i].value, label_get(b, a->labels[i].key)))
			return 0;
	return 1;
}

/* A value the core refused: left out, said with the container. */
static void
refused(const struct rdhpf_host_api *H, struct rdhpf_ctx *ctx, const struct rsdk_cont *c,
        const char *field, const char *what)
{
	char shown[80];

	rsdk_printable(shown, sizeof shown, what, strlen(what));
	RSDK_LOG(H, ctx, RDHPF_LOG_WARN, "value left out: refused by the core", "container", c->id,
	         "field", field, "value", shown);
}

/* *rcp: RDHPF_ERR_NOMEM, or RDHPF_ERR_INVAL for an id the core refused
 * (logged). */
static struct rdhpf_container *
cont_export(const struct rdhpf_host_api *H, struct rdhpf_ctx *ctx, const struct rsdk_cont *c,
            int *rcp)
{
	struct rdhpf_container *x;
	int rc;

	/* container_new fails for a bad id or memory; the id is checked
	 * here so that the two can be told apart. */
	if (!id_ok(c->id)) {
		RSDK_LOG(H, ctx, RDHPF_LOG_WARN, "container id refused", "container",
		         c->id != NULL ? c->id : "(none)");
		*rcp = RDHPF_ERR_INVAL;
		return NULL;
	}
	if ((x = H->container_new(ctx, c->id, c->name)) == NULL) {
		*rcp = RDHPF_ERR_NOMEM;
		return NULL;
	}
	if (c->image != NULL && (rc = H->container_set_image(x, c->image)) != RDHPF_OK) {
		if (rc == RDHPF_ERR_NOMEM)
			goto nomem;
		refused(H, ctx, c, "image", c->image);
	}
	for (size_t i = 0; i < c->n_labels; i++) {
		rc = H->container_add_label(x, c->labels[i].key, c->labels[i].value);
		if (rc == RDHPF_ERR_NOMEM)
			goto nomem;
		if (rc != RDHPF_OK)
			refused(H, ctx, c, "label", c->labels[i].key);
	}
	for (size_t i = 0; i < c->n_ports; i++) {
		struct rdhpf_port p = {
		    RDHPF_INIT(rdhpf_port),
		    .host_ip = c->ports[i].ip,
		    .host_port = c->ports[i].host_port,
		    .container_port = c->ports[i].container_port,
		    .proto = c->ports[i].proto,
		};
		char pn[8];
		rc = H->container_add_port(x, &p);
		if (rc == RDHPF_ERR_NOMEM)
			goto nomem;
		if (rc != RDHPF_OK) {
			snprintf(pn, sizeof pn, "%u", (unsigned)p.host_port);
			refused(H, ctx, c, "port", pn);
		}
	}
	*rcp = RDHPF_OK;
	return x;
nomem:
	H->container_free(x);
	*rcp = RDHPF_ERR_NOMEM;
	return NULL;
}

struct rdhpf_container *
rsdk_cont_export(const struct rdhpf_host_api *H, struct rdhpf_ctx *ctx, const struct rsdk_cont *c)
{
	int rc;

	return cont_export(H, ctx, c, &rc);
}

/* ---- sets ---- */

void
rsdk_cset_init(struct rsdk_cset *s)
{
	s->v = NULL;
	s->n = s->cap = 0;
}

void
rsdk_cset_free(struct rsdk_cset *s)
{
	for (size_t i = 0; i < s->n; i++)
		rsdk_cont_clear(&s->v[i]);
	free(s->v);
	rsdk_cset_init(s);
}

/* The index of id, or where it would go (*found 0). */
static size_t
cset_find(const struct rsdk_cset *s, const char *id, int *found)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = strcmp(s->v[mid].id, id);
		if (cmp == 0) {
			*found = 1;
			return mid;
		}
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return lo;
}

int
rsdk_cset_put(struct rsdk_cset *s, struct rsdk_cont *c)
{
	int found;
	size_t i;

	if (c->id == NULL)
		return RDHPF_ERR_INVAL;
	i = cset_find(s, c->id, &found);
	if (found) {
		rsdk_cont_clear(&s->v[i]);
		rsdk_cont_move(&s->v[i], c);
		return RDHPF_OK;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct rsdk_cont *v = realloc(s->v, cap * sizeof *v);
		if (v == NULL)
			return RDHPF_ERR_NOMEM;
		s->v = v;
		s->cap = cap;
	}
	memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof *s->v);
	s->n++;
	rsdk_cont_move(&s->v[i], c);
	return RDHPF_OK;
}

struct rsdk_cont *
rsdk_cset_get(const struct rsdk_cset *s, const char *id)
{
	int found;
	size_t i = cset_find(s, id, &found);

	return found ? &s->v[i] : NULL;
}

int
rsdk_cset_del(struct rsdk_cset *s, const char *id)
{
	int found;
	size_t i = cset_find(s, id, &found);

	if (!found)
		return 0;
	rsdk_cont_clear(&s->v[i]);
	memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof *s->v);
	s->n--;
	return 1;
}

void
rsdk_cset_move(struct rsdk_cset *dst, struct rsdk_cset *src)
{
	rsdk_cset_free(dst);
	*dst = *src;
	rsdk_cset_init(src);
}

void
rsdk_cset_diff(const struct rsdk_cset *old, const struct rsdk_cset *now, rsdk_diff_fn fn, void *arg)
{
	size_t i, j;

	/* Two merge walks over the sorted sets: every STOP before any START,
	 * so a port that moves from one container to another is free again
	 * before it is taken. */
	for (i = 0, j = 0; i < old->n;) {
		int cmp = j < now->n ? strcmp(old->v[i].id, now->v[j].id) : -1;
		if (cmp < 0) {
			fn(arg, RDHPF_EV_STOP, &old->v[i++]);
		} else if (cmp > 0) {
			j++;
		} else {
			if (!rsdk_cont_equal(&old->v[i], &now->v[j]))
				fn(arg, RDHPF_EV_STOP, &old->v[i]);
			i++;
			j++;
		}
	}
	for (i = 0, j = 0; j < now->n;) {
		int cmp = i < old->n ? strcmp(old->v[i].id, now->v[j].id) : 1;
		if (cmp > 0) {
			fn(arg, RDHPF_EV_START, &now->v[j++]);
		} else if (cmp < 0) {
			i++;
		} else {
			if (!rsdk_cont_equal(&old->v[i], &now->v[j]))
				fn(arg, RDHPF_EV_START, &now->v[j]);
			i++;
			j++;
		}
	}
}

/* ---- answering the core ---- */

void
rsdk_list_reply(const struct rdhpf_host_api *H, struct rdhpf_ctx *ctx, rdhpf_list_fn done,
                void *arg, const struct rsdk_cset *s)
{
	struct rdhpf_container **xs = NULL;
	size_t n = 0;

	if (s->n > 0 && (xs = calloc(s->n, sizeof *xs)) == NULL) {
		done(arg, RDHPF_ERR_NOMEM, "out of memory", NULL, 0);
		return;
	}
	for (size_t i = 0; i < s->n; i++) {
		int rc;
		struct rdhpf_container *x = cont_export(H, ctx, &s->v[i], &rc);
		/* A container the core refused is logged and left out; only
		 * memory running out fails the list. */
		if (rc == RDHPF_ERR_NOMEM) {
			for (size_t k = 0; k < n; k++)
				H->container_free(xs[k]);
			free(xs);
			done(arg, RDHPF_ERR_NOMEM, "out of memory", NULL, 0);
			return;
		}
		if (x != NULL)
			xs[n++] = x;
	}
	done(arg, RDHPF_OK, NULL, (struct rdhpf_container *const *)xs, n);
	for (size_t i = 0; i < n; i++)
		H->container_free(xs[i]);
	free(xs);
}

int
rsdk_emit(const struct rdhpf_host_api *H, struct rdhpf_ctx *ctx, const struct rdhpf_watch_cbs *cbs,
          void *arg, int type, int64_t time_ns, const struct rsdk_cont *c)
{
	int rc;
	struct rdhpf_container *x = cont_export(H, ctx, c, &rc);

	if (x == NULL)
		return rc;
	cbs->on_event(arg, type, time_ns, x);
	H->container_free(x);
	return RDHPF_OK;
}
