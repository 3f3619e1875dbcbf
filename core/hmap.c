/* Intrusive chained hash table (see hmap.h). */
#include "hmap.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define FNV_OFFSET 14695981039346656037ull
#define FNV_PRIME 1099511628211ull

void
hmap_clear(struct hmap *m)
{
	free(m->b);
	m->b = NULL;
	m->nb = 0;
	m->n = 0;
}

static void
rehash(struct hmap *m, size_t nb)
{
	struct hnode **b = xcalloc(nb, sizeof *b);

	for (size_t i = 0; i < m->nb; i++) {
		struct hnode *n = m->b[i], *next;
		for (; n != NULL; n = next) {
			next = n->next;
			n->next = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
		}
	}
	free(m->b);
	m->b = b;
	m->nb = nb;
}

void
hmap_insert(struct hmap *m, struct hnode *n, uint64_t hash)
{
	struct hnode **head;

	/* Doubling keeps the amortized cost per insert constant. */
	if (m->n >= m->nb)
		rehash(m, m->nb ? m->nb * 2 : 16);
	n->hash = hash;
	head = &m->b[hash & (m->nb - 1)];
	n->next = *head;
	*head = n;
	m->n++;
}

void
hmap_remove(struct hmap *m, struct hnode *n)
{
	struct hnode **pp;

	if (m->nb == 0)
		return;
	for (pp = &m->b[n->hash & (m->nb - 1)]; *pp != NULL; pp = &(*pp)->next)
		if (*pp == n) {
			*pp = n->next;
			n->next = NULL;
			m->n--;
			return;
		}
}

static struct hnode *
same_hash(struct hnode *n, uint64_t hash)
{
	while (n != NULL && n->hash != hash)
		n = n->next;
	return n;
}

struct hnode *
hmap_first(const struct hmap *m, uint64_t hash)
{
	return m->nb == 0 ? NULL : same_hash(m->b[hash & (m->nb - 1)], hash);
}

struct hnode *
hmap_next(const struct hnode *n)
{
	return same_hash(n->next, n->hash);
}

struct hnode *
hmap_iter(const struct hmap *m, const struct hnode *prev)
{
	size_t i = 0;

	if (prev != NULL) {
		if (prev->next != NULL)
			return prev->next;
		i = (prev->hash & (m->nb - 1)) + 1;
	}
	for (; i < m->nb; i++)
		if (m->b[i] != NULL)
			return m->b[i];
	return NULL;
}

static uint64_t
fnv(uint64_t h, const void *p, size_t len)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < len; i++) {
		h ^= s[i];
		h *= FNV_PRIME;
	}
	return h;
}

uint64_t
hash_str(const char *s)
{
	return fnv(FNV_OFFSET, s, strlen(s));
}

uint64_t
hash_addr_port(const char *addr, uint16_t port)
{
	unsigned char p[2] = {(unsigned char)(port >> 8), (unsigned char)port};

	return fnv(hash_str(addr), p, sizeof p);
}
