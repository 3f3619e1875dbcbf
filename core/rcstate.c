/* Incremental reconciler (see rcstate.h).
 *
 * Two tables: containers by id, each with the candidate forwards it
 * claims and the skips that depend on it alone; keys by (bind,
 * local_port), each with its claimants, the forward installed there and
 * the RC_SKIP_TAKEN skips of its losers.  An event marks the keys it
 * touches dirty; rcs_flush settles only those. */
#include "rcstate.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "util.h"

struct rcs_cont {
	struct hnode node; /* in rcs.conts, by id */
	char *id;
	struct rc_forward *claims; /* local_port != 0: each in its key's claimants */
	size_t n_claims;
	struct rc_skip *skips; /* its own: label, rule, HostIp, proto, range, privileged */
	size_t n_skips;
	struct rc_skip *logged; /* skips as of the last flush (reported once) */
	size_t n_logged;
	bool dirty; /* in rcs.dirty_c */
	/* Stopped since the last flush: kept until then, so that a container
	 * that comes back before it is not new (its skips were reported). */
	bool gone;
};

struct rcs_key {
	struct hnode node; /* in rcs.keys, by (bind, port) */
	char bind[RC_ADDR_MAX];
	uint16_t port;
	const struct rc_forward **cl; /* claimants: into their containers' claims */
	size_t n_cl, cap_cl;
	struct rc_forward installed;
	bool has_installed;
	struct rc_skip *taken; /* the losers' skips as of the last flush */
	size_t n_taken;
	bool dirty;
};

struct rcs {
	const struct rc_policy *pol;
	struct hmap conts, keys;
	struct rcs_key **dirty; /* keys touched since the last flush */
	size_t n_dirty, cap_dirty;
	struct rcs_cont **dirty_c; /* containers upserted since the last flush */
	size_t n_dirty_c, cap_dirty_c;
};

static void
oom_check(int r)
{
	if (r != 0) {
		fprintf(stderr, "rdhpf: out of memory\n");
		abort();
	}
}

/* p, which a push that cannot fail here returned. */
static void *
must(void *p)
{
	oom_check(p == NULL ? -1 : 0);
	return p;
}

struct rcs *
rcs_new(const struct rc_policy *pol)
{
	struct rcs *st = xcalloc(1, sizeof *st);

	st->pol = pol;
	return st;
}

/* ---- lookups ------------------------------------------------------------ */

static struct rcs_cont *
cont_get(const struct rcs *st, const char *id)
{
	for (struct hnode *n = hmap_first(&st->conts, hash_str(id)); n; n = hmap_next(n)) {
		struct rcs_cont *c = HMAP_ENTRY(n, struct rcs_cont, node);
		if (strcmp(c->id, id) == 0)
			return c;
	}
	return NULL;
}

static struct rcs_key *
key_get(const struct rcs *st, const char *bind, uint16_t port)
{
	for (struct hnode *n = hmap_first(&st->keys, hash_addr_port(bind, port)); n;
	     n = hmap_next(n)) {
		struct rcs_key *k = HMAP_ENTRY(n, struct rcs_key, node);
		if (k->port == port && strcmp(k->bind, bind) == 0)
			return k;
	}
	return NULL;
}

static void
key_dirty(struct rcs *st, struct rcs_key *k)
{
	if (k->dirty)
		return;
	k->dirty = true;
	st->dirty = xgrow(st->dirty, st->n_dirty, &st->cap_dirty, sizeof *st->dirty);
	st->dirty[st->n_dirty++] = k;
}

static struct rcs_key *
key_make(struct rcs *st, const char *bind, uint16_t port)
{
	struct rcs_key *k = key_get(st, bind, port);

	if (k != NULL)
		return k;
	k = xcalloc(1, sizeof *k);
	str_copy(k->bind, bind, sizeof k->bind);
	k->port = port;
	hmap_insert(&st->keys, &k->node, hash_addr_port(bind, port));
	return k;
}

static void
key_free(struct rcs_key *k)
{
	free(k->cl);
	free(k->taken);
	free(k);
}

/* ---- claims ------------------------------------------------------------- */

static void
claims_drop(struct rcs *st, struct rcs_cont *c)
{
	for (size_t i = 0; i < c->n_claims; i++) {
		const struct rc_forward *f = &c->claims[i];
		struct rcs_key *k = key_get(st, f->bind, f->local_port);

		for (size_t j = 0; k != NULL && j < k->n_cl; j++)
			if (k->cl[j] == f) {
				k->cl[j] = k->cl[--k->n_cl];
				key_dirty(st, k);
				break;
			}
	}
	free(c->claims);
	c->claims = NULL;
	c->n_claims = 0;
	free(c->skips);
	c->skips = NULL;
	c->n_skips = 0;
}

static void
claims_add(struct rcs *st, struct rcs_cont *c)
{
	for (size_t i = 0; i < c->n_claims; i++) {
		const struct rc_forward *f = &c->claims[i];
		struct rcs_key *k = key_make(st, f->bind, f->local_port);

		k->cl = xgrow(k->cl, k->n_cl, &k->cap_cl, sizeof *k->cl);
		k->cl[k->n_cl++] = f;
		key_dirty(st, k);
	}
}

/* v (n entries of size) reallocated to just hold them; NULL when n is 0. */
static void *
shrink(void *v, size_t n, size_t size)
{
	void *nv;

	if (n == 0) {
		free(v);
		return NULL;
	}
	nv = realloc(v, n * size);
	return nv != NULL ? nv : v; /* shrinking failed: the larger block serves */
}

/* The container's candidates, split into claims (a local port to own) and
 * its own skips. */
static void
claims_build(const struct rcs *st, struct rcs_cont *c, const struct rc_container *rc,
             const struct rc_meta *meta)
{
	struct rc_fwd_vec cand = {0}, claims = {0};
	struct rc_skip_vec sk = {0};

	oom_check(rc_claims(rc, meta, st->pol, &cand, &sk));
	for (size_t i = 0; i < cand.n; i++) {
		const struct rc_forward *f = &cand.v[i];
		if (f->privileged)
			continue; /* rc_claims made its skip */
		if (f->local_port != 0)
			*(struct rc_forward *)must(rc_fwd_push(&claims)) = *f;
		else /* no local port: a skip of its own, as in rc_desired_full */
			rc_skip_of_fwd(must(rc_skip_push(&sk)), f, RC_SKIP_RANGE);
	}
	free(cand.v);
	/* Kept for the container's life: at their size, not the vectors'
	 * capacity (at least 16 entries of ~350 and ~650 bytes, where most
	 * containers have one or two ports: 5.6 KiB each, 280 KiB for 50). */
	c->claims = shrink(claims.v, claims.n, sizeof *claims.v);
	c->n_claims = claims.n;
	c->n_skips = rc_skips_unique(sk.v, sk.n);
	c->skips = shrink(sk.v, c->n_skips, sizeof *sk.v);
}

static void
cont_dirty(struct rcs *st, struct rcs_cont *c)
{
	if (c->dirty)
		return;
	c->dirty = true;
	st->dirty_c = xgrow(st->dirty_c, st->n_dirty_c, &st->cap_dirty_c, sizeof *st->dirty_c);
	st->dirty_c[st->n_dirty_c++] = c;
}

void
rcs_upsert(struct rcs *st, const struct rc_container *rc, const struct rc_meta *meta)
{
	const char *id = rc->c != NULL && rc->c->id != NULL ? rc->c->id : NULL;
	struct rcs_cont *c;

	if (id == NULL)
		return;
	if ((c = cont_get(st, id)) == NULL) {
		c = xcalloc(1, sizeof *c);
		c->id = xstrdup(id);
		hmap_insert(&st->conts, &c->node, hash_str(id));
	}
	claims_drop(st, c);
	c->gone = false;
	claims_build(st, c, rc, meta);
	claims_add(st, c);
	cont_dirty(st, c);
}

void
rcs_remove(struct rcs *st, const char *id)
{
	struct rcs_cont *c = id != NULL ? cont_get(st, id) : NULL;

	if (c == NULL || c->gone)
		return;
	claims_drop(st, c);
	c->gone = true;
	cont_dirty(st, c);
}

/* ---- flush -------------------------------------------------------------- */

static int
cmp_claimant(const void *pa, const void *pb)
{
	return rc_cmp_owner(*(const struct rc_forward *const *)pa,
	                    *(const struct rc_forward *const *)pb);
}

static int
cmp_dirty_key(const void *pa, const void *pb)
{
	const struct rcs_key *a = *(const struct rcs_key *const *)pa;
	const struct rcs_key *b = *(const struct rcs_key *const *)pb;
	int c = strcmp(a->bind, b->bind);

	return c ? c : (a->port > b->port) - (a->port < b->port);
}

/* Append to *out the skips of now that were not in before; both sorted
 * in rc_cmp_skip order, so one walk does (a container may publish
 * thousands of ports). */
static void
skips_fresh(struct rc_skip_vec *out, const struct rc_skip *now, size_t n_now,
            const struct rc_skip *before, size_t n_before)
{
	size_t j = 0;

	for (size_t i = 0; i < n_now; i++) {
		int c = 1;

		while (j < n_before && (c = rc_cmp_skip(&before[j], &now[i])) < 0)
			j++;
		if (j < n_before && c == 0)
			continue;
		*(struct rc_skip *)must(rc_skip_push(out)) = now[i];
	}
}

/* The key's claimants in owner order; the losers' skips replace the old
 * ones (as rc_desired_full: a duplicate claim of the one before is none). */
static void
key_settle(struct rcs_key *k, struct rc_skip_vec *fresh)
{
	struct rc_skip_vec taken = {0};

	if (k->n_cl > 1)
		qsort(k->cl, k->n_cl, sizeof *k->cl, cmp_claimant);
	for (size_t i = 1; i < k->n_cl; i++) {
		struct rc_skip *s;
		if (rc_same_claim(k->cl[i - 1], k->cl[i]))
			continue;
		s = must(rc_skip_push(&taken));
		rc_skip_of_fwd(s, k->cl[i], RC_SKIP_TAKEN);
		str_copy(s->holder, k->cl[0]->container_name, sizeof s->holder);
	}
	taken.n = rc_skips_unique(taken.v, taken.n);
	skips_fresh(fresh, taken.v, taken.n, k->taken, k->n_taken);
	free(k->taken);
	k->taken = taken.v;
	k->n_taken = taken.n;
}

static void
push_action(struct rc_action **v, size_t *n, size_t *cap, enum rc_action_type t,
            const struct rc_forward *f)
{
	*v = xgrow(*v, *n, cap, sizeof **v);
	(*v)[*n].type = t;
	(*v)[*n].fwd = *f;
	(*n)++;
}

/* Pass 0: removals; pass 1: additions and retags, which install. */
static void
key_actions(struct rcs_key *k, int pass, struct rc_action **v, size_t *n, size_t *cap)
{
	const struct rc_forward *owner = k->n_cl > 0 ? k->cl[0] : NULL;
	const struct rc_forward *inst = k->has_installed ? &k->installed : NULL;
	bool rm;
	enum rc_action_type add = rc_key_diff(owner, inst, &rm);

	if (pass == 0) {
		if (rm)
			push_action(v, n, cap, RC_REMOVE, inst);
		return;
	}
	if (add != 0) {
		push_action(v, n, cap, add, owner);
		k->installed = *owner;
	}
	k->has_installed = owner != NULL;
}

static void
cont_free(struct rcs_cont *c)
{
	free(c->claims);
	free(c->skips);
	free(c->logged);
	free(c->id);
	free(c);
}

static void
conts_settle(struct rcs *st, struct rc_skip_vec *fresh)
{
	for (size_t i = 0; i < st->n_dirty_c; i++) {
		struct rcs_cont *c = st->dirty_c[i];

		c->dirty = false;
		if (c->gone) {
			hmap_remove(&st->conts, &c->node);
			cont_free(c);
			continue;
		}
		skips_fresh(fresh, c->skips, c->n_skips, c->logged, c->n_logged);
		free(c->logged);
		c->logged = NULL;
		if (c->n_skips > 0) {
			c->logged = xmalloc(c->n_skips * sizeof *c->logged);
			memcpy(c->logged, c->skips, c->n_skips * sizeof *c->logged);
		}
		c->n_logged = c->n_skips;
	}
	st->n_dirty_c = 0;
}

void
rcs_flush(struct rcs *st, struct rc_action **acts, size_t *n_acts, struct rc_skip **fresh,
          size_t *n_fresh)
{
	struct rc_skip_vec fr = {0};
	size_t cap = 0;

	*acts = NULL;
	*n_acts = 0;
	if (st->n_dirty > 1)
		qsort(st->dirty, st->n_dirty, sizeof *st->dirty, cmp_dirty_key);
	for (size_t i = 0; i < st->n_dirty; i++)
		key_settle(st->dirty[i], &fr);
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < st->n_dirty; i++)
			key_actions(st->dirty[i], pass, acts, n_acts, &cap);
	for (size_t i = 0; i < st->n_dirty; i++) {
		struct rcs_key *k = st->dirty[i];
		k->dirty = false;
		if (k->n_cl == 0 && !k->has_installed) {
			hmap_remove(&st->keys, &k->node);
			key_free(k);
		}
	}
	st->n_dirty = 0;
	conts_settle(st, &fr);
	if (fr.n > 1)
		qsort(fr.v, fr.n, sizeof *fr.v, rc_cmp_skip);
	*fresh = fr.v;
	*n_fresh = fr.n;
}

void
rcs_uninstall(struct rcs *st, const char *bind, uint16_t port)
{
	struct rcs_key *k = key_get(st, bind, port);

	if (k == NULL || !k->has_installed)
		return;
	k->has_installed = false;
	key_dirty(st, k);
}

/* ---- views -------------------------------------------------------------- */

const struct rc_forward *
rcs_owner(const struct rcs *st, const char *bind, uint16_t port)
{
	const struct rcs_key *k = key_get(st, bind, port);
	const struct rc_forward *best = NULL;

	/* Not the first claimant: the claimants are sorted only by a flush. */
	for (size_t i = 0; k != NULL && i < k->n_cl; i++)
		if (best == NULL || rc_cmp_owner(k->cl[i], best) < 0)
			best = k->cl[i];
	return best;
}

static void
skips_append(struct rc_skip_vec *out, const struct rc_skip *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		*(struct rc_skip *)must(rc_skip_push(out)) = v[i];
}

size_t
rcs_skips(const struct rcs *st, struct rc_skip **out)
{
	struct rc_skip_vec v = {0};

	for (struct hnode *n = hmap_iter(&st->conts, NULL); n; n = hmap_iter(&st->conts, n)) {
		const struct rcs_cont *c = HMAP_ENTRY(n, struct rcs_cont, node);
		skips_append(&v, c->skips, c->n_skips);
	}
	for (struct hnode *n = hmap_iter(&st->keys, NULL); n; n = hmap_iter(&st->keys, n)) {
		const struct rcs_key *k = HMAP_ENTRY(n, struct rcs_key, node);
		skips_append(&v, k->taken, k->n_taken);
	}
	*out = v.v;
	return rc_skips_unique(v.v, v.n);
}

size_t
rcs_installed(const struct rcs *st, struct rc_forward **out)
{
	struct rc_fwd_vec v = {0};

	for (struct hnode *n = hmap_iter(&st->keys, NULL); n; n = hmap_iter(&st->keys, n)) {
		const struct rcs_key *k = HMAP_ENTRY(n, struct rcs_key, node);
		if (k->has_installed)
			*(struct rc_forward *)must(rc_fwd_push(&v)) = k->installed;
	}
	if (v.n > 1)
		qsort(v.v, v.n, sizeof *v.v, rc_cmp_owner);
	*out = v.v;
	return v.n;
}

void
rcs_free(struct rcs *st)
{
	struct hnode *n, *next;

	if (st == NULL)
		return;
	for (n = hmap_iter(&st->conts, NULL); n; n = next) {
		next = hmap_iter(&st->conts, n);
		cont_free(HMAP_ENTRY(n, struct rcs_cont, node));
	}
	for (n = hmap_iter(&st->keys, NULL); n; n = next) {
		next = hmap_iter(&st->keys, n);
		key_free(HMAP_ENTRY(n, struct rcs_key, node));
	}
	hmap_clear(&st->conts);
	hmap_clear(&st->keys);
	free(st->dirty);
	free(st->dirty_c);
	free(st);
}
