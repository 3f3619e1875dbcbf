/* A chained hash table of intrusive nodes: the reconciler's and the
 * supervisor's per-event lookups (container by id, forward by key or id)
 * cost O(1) instead of a scan of the host's containers or forwards.
 * The table owns only its bucket array; nodes live inside the caller's
 * structs (HMAP_ENTRY gets back to them) and must not move while linked.
 * Pure; aborts on out of memory like the rest of the core (util.h). */
#ifndef RDHPF_HMAP_H
#define RDHPF_HMAP_H

#include <stddef.h>
#include <stdint.h>

struct hnode {
	struct hnode *next;
	uint64_t hash;
};

/* All zero is an empty table. */
struct hmap {
	struct hnode **b;
	size_t nb; /* buckets: 0 or a power of two */
	size_t n;  /* nodes linked */
};

#define HMAP_ENTRY(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

/* Frees the buckets, not the nodes; the table is empty afterwards. */
void hmap_clear(struct hmap *m);
/* Grows the buckets as n passes nb, so a chain stays short on average. */
void hmap_insert(struct hmap *m, struct hnode *n, uint64_t hash);
/* n must be linked in m. */
void hmap_remove(struct hmap *m, struct hnode *n);
/* The first node linked with this hash, then the next one (NULL at the
 * end); the caller compares its own key, as hashes collide. */
struct hnode *hmap_first(const struct hmap *m, uint64_t hash);
struct hnode *hmap_next(const struct hnode *n);
/* Every node, bucket by bucket: pass NULL first, then the last node. */
struct hnode *hmap_iter(const struct hmap *m, const struct hnode *prev);

/* FNV-1a: cheap and good enough for ids and ports (no adversary chooses
 * them to collide beyond the runtime itself). */
uint64_t hash_str(const char *s);
uint64_t hash_addr_port(const char *addr, uint16_t port);

#endif
