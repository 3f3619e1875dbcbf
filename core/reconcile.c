/* Reconciler.  Everything here is sorting and merging of small arrays; the
 * orders below are total so that the output never depends on the input
 * order (or on qsort's instability). */
#include "reconcile.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "labels.h"
#include "util.h"

#define RC_LOOPBACK4 "127.0.0.1"
#define RC_LOOPBACK6 "::1"

static bool
is_any4(const char *ip)
{
	return ip == NULL || ip[0] == '\0' || strcmp(ip, "0.0.0.0") == 0;
}

static bool
is_any6(const char *ip)
{
	return ip != NULL && strcmp(ip, "::") == 0;
}

const char *
rc_remote_host(const char *host_ip)
{
	if (is_any4(host_ip))
		return RC_LOOPBACK4;
	if (is_any6(host_ip))
		return RC_LOOPBACK6;
	return host_ip;
}

static size_t
bind_add(char out[][RC_ADDR_MAX], size_t n, size_t max, const char *a)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(out[i], a) == 0)
			return n;
	if (n == max)
		return n;
	str_copy(out[n], a, RC_ADDR_MAX);
	return n + 1;
}

size_t
rc_bind_expand(const char *spec, int no6, char out[][RC_ADDR_MAX], size_t max)
{
	size_t n = 0;
	const char *p = spec != NULL ? spec : "";

	for (;;) {
		char a[RC_ADDR_MAX];
		size_t len;

		p += strspn(p, ", \t");
		if (*p == '\0')
			break;
		len = strcspn(p, ", \t");
		if (len < sizeof a) {
			memcpy(a, p, len);
			a[len] = '\0';
			if (strcmp(a, "localhost") == 0) {
				n = bind_add(out, n, max, RC_LOOPBACK4);
				if (!no6)
					n = bind_add(out, n, max, RC_LOOPBACK6);
			} else
				n = bind_add(out, n, max, a);
		}
		p += len;
	}
	return n;
}

bool
rc_host_ip_ok(const char *host_ip)
{
	unsigned char bin[16];

	return is_any4(host_ip) || inet_pton(AF_INET, host_ip, bin) == 1 ||
	       inet_pton(AF_INET6, host_ip, bin) == 1;
}

/* ---- orders ----------------------------------------------------------- */

static int
cmp_u64(uint64_t a, uint64_t b)
{
	return a < b ? -1 : a > b;
}

int
rc_cmp_key(const struct rc_forward *a, const struct rc_forward *b)
{
	int c = strcmp(a->bind, b->bind);
	return c ? c : cmp_u64(a->local_port, b->local_port);
}

static int
cmp_target(const struct rc_forward *a, const struct rc_forward *b)
{
	int c = strcmp(a->remote_host, b->remote_host);
	return c ? c : cmp_u64(a->remote_port, b->remote_port);
}

/* Within one container the same local port may be reachable through several
 * remote addresses; loopback is preferred because sshd can always reach it. */
static int
host_rank(const char *h)
{
	if (strcmp(h, RC_LOOPBACK4) == 0)
		return 0;
	if (strcmp(h, RC_LOOPBACK6) == 0)
		return 1;
	return 2;
}

/* Key, then the owner first: higher seq, then smaller container id, then the
 * preferred target.  The remaining fields only make the order total. */
int
rc_cmp_owner(const void *pa, const void *pb)
{
	const struct rc_forward *a = pa, *b = pb;
	int c;

	if ((c = rc_cmp_key(a, b)) != 0)
		return c;
	if ((c = cmp_u64(b->seq, a->seq)) != 0)
		return c;
	if ((c = strcmp(a->container_id, b->container_id)) != 0)
		return c;
	if ((c = host_rank(a->remote_host) - host_rank(b->remote_host)) != 0)
		return c;
	if ((c = cmp_target(a, b)) != 0)
		return c;
	return strcmp(a->container_name, b->container_name);
}

/* ---- desired ---------------------------------------------------------- */

struct rc_forward *
rc_fwd_push(struct rc_fwd_vec *vec)
{
	if (vec->n == vec->cap) {
		size_t cap = vec->cap ? vec->cap * 2 : 16;
		struct rc_forward *nv = realloc(vec->v, cap * sizeof *nv);
		if (nv == NULL)
			return NULL;
		vec->v = nv;
		vec->cap = cap;
	}
	struct rc_forward *f = &vec->v[vec->n++];
	memset(f, 0, sizeof *f);
	return f;
}

/* The local port for a remote one, or 0 when it falls outside 1..65535. */
static uint16_t
local_port_for(const struct rc_policy *pol, uint16_t remote)
{
	int64_t p;

	if (pol != NULL) {
		for (size_t i = 0; i < pol->n_map; i++)
			if (pol->map[i].remote_port == remote)
				return pol->map[i].local_port;
	}
	p = (int64_t)remote + (pol != NULL ? pol->port_offset : 0);
	return p >= 1 && p <= 65535 ? (uint16_t)p : 0;
}

/* Docker publishes `-p 8080:80` twice, on 0.0.0.0 and on ::.  It is one
 * service and one forward (through 127.0.0.1); the :: half is dropped. */
static bool
is_dual_stack_twin(const struct rdhpf_container *c, size_t i)
{
	const struct rdhpf_port *p = &c->ports[i];

	if (!is_any6(p->host_ip))
		return false;
	for (size_t j = 0; j < c->n_ports; j++) {
		const struct rdhpf_port *q = &c->ports[j];
		if (j != i && q->host_port == p->host_port && q->proto == p->proto &&
		    is_any4(q->host_ip))
			return true;
	}
	return false;
}

bool
rc_same_claim(const struct rc_forward *a, const struct rc_forward *b)
{
	return strcmp(a->container_id, b->container_id) == 0 && cmp_target(a, b) == 0;
}

struct rc_skip *
rc_skip_push(struct rc_skip_vec *vec)
{
	if (vec->n == vec->cap) {
		size_t cap = vec->cap ? vec->cap * 2 : 16;
		struct rc_skip *nv = realloc(vec->v, cap * sizeof *nv);
		if (nv == NULL)
			return NULL;
		vec->v = nv;
		vec->cap = cap;
	}
	struct rc_skip *s = &vec->v[vec->n++];
	memset(s, 0, sizeof *s);
	return s;
}

const char *
rc_skip_reason(const struct rc_skip *s)
{
	switch (s->why) {
	case RC_SKIP_PROTO:
		return s->proto == RDHPF_PROTO_SCTP ? "sctp: SSH forwards carry TCP only"
		                                    : "udp: SSH forwards carry TCP only";
	case RC_SKIP_RULE:
		return "ignored by rule";
	case RC_SKIP_RANGE:
		return "local port outside 1-65535 (port_offset/port_map/rule)";
	case RC_SKIP_TAKEN:
		return "local port taken by a later container of this host";
	case RC_SKIP_PRIVILEGED:
		return "privileged local port: needs root or CAP_NET_BIND_SERVICE, or a port_map "
		       "(or privileged = offset N)";
	case RC_SKIP_PRIVILEGED_SKIP:
		return "privileged local port skipped (privileged = skip)";
	case RC_SKIP_LABEL:
		return "ignored by label";
	case RC_SKIP_HOSTIP:
		return "published on a HostIp that is not an IP address";
	}
	return "skipped";
}

int
rc_cmp_skip(const void *pa, const void *pb)
{
	const struct rc_skip *a = pa, *b = pb;
	int c;

	if ((c = strcmp(a->container_name, b->container_name)) != 0)
		return c;
	if ((c = strcmp(a->container_id, b->container_id)) != 0)
		return c;
	if ((c = cmp_u64(a->remote_port, b->remote_port)) != 0)
		return c;
	if ((c = a->proto - b->proto) != 0)
		return c;
	if ((c = strcmp(a->remote_host, b->remote_host)) != 0)
		return c;
	/* The rest only makes the order total: the same port skipped for
	 * two binds is listed the same way however the skips were found. */
	if ((c = strcmp(a->bind, b->bind)) != 0)
		return c;
	if ((c = cmp_u64(a->local_port, b->local_port)) != 0)
		return c;
	if ((c = (int)a->why - (int)b->why) != 0)
		return c;
	if ((c = a->rule_line - b->rule_line) != 0)
		return c;
	if ((c = strcmp(a->holder, b->holder)) != 0)
		return c;
	return strcmp(a->label, b->label);
}

static struct rc_skip *
skip_from(struct rc_skip_vec *vec, const struct rdhpf_container *c, const struct rdhpf_port *p)
{
	struct rc_skip *s = rc_skip_push(vec);

	if (s == NULL)
		return NULL;
	str_copy(s->container_id, c->id ? c->id : "", sizeof s->container_id);
	str_copy(s->container_name, c->name ? c->name : "", sizeof s->container_name);
	str_copy(s->remote_host, rc_remote_host(p->host_ip), sizeof s->remote_host);
	s->remote_port = p->host_port;
	s->proto = p->proto;
	return s;
}

bool
rc_skip_same(const struct rc_skip *a, const struct rc_skip *b)
{
	return rc_cmp_skip(a, b) == 0; /* the order looks at every field */
}

size_t
rc_skips_unique(struct rc_skip *v, size_t n)
{
	size_t k = 0;

	if (n > 1)
		qsort(v, n, sizeof *v, rc_cmp_skip);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || !rc_skip_same(&v[k - 1], &v[i]))
			v[k++] = v[i];
	return k;
}

void
rc_skip_of_fwd(struct rc_skip *s, const struct rc_forward *f, enum rc_skip_why why)
{
	memset(s, 0, sizeof *s);
	str_copy(s->container_id, f->container_id, sizeof s->container_id);
	str_copy(s->container_name, f->container_name, sizeof s->container_name);
	str_copy(s->remote_host, f->remote_host, sizeof s->remote_host);
	s->remote_port = f->remote_port;
	s->proto = RDHPF_PROTO_TCP;
	s->why = why;
	s->rule_line = f->rule_line;
	if (f->local_port != 0) {
		str_copy(s->bind, f->bind, sizeof s->bind);
		s->local_port = f->local_port;
	}
}

static struct rc_skip *
skip_from_fwd(struct rc_skip_vec *vec, const struct rc_forward *f, enum rc_skip_why why)
{
	struct rc_skip *s = rc_skip_push(vec);

	if (s != NULL)
		rc_skip_of_fwd(s, f, why);
	return s;
}

/* A local port this process cannot bind: move it up (privileged = offset
 * N) or turn it into a skip rather than a forward that fails and retries
 * forever.  The candidate stays, with local_port 0 and privileged set, so
 * the owner pass drops it; false on ENOMEM. */
static bool
privileged_ok(const struct rc_policy *pol, struct rc_forward *f, struct rc_skip_vec *sk)
{
	struct rc_skip *s;

	if (pol == NULL || f->local_port >= pol->unpriv_port_start)
		return true;
	if (pol->privileged_offset != 0 && !pol->privileged_skip) {
		uint32_t p = (uint32_t)f->local_port + pol->privileged_offset;
		f->local_port = p <= 65535 ? (uint16_t)p : 0;
		if (f->local_port == 0 || f->local_port >= pol->unpriv_port_start)
			return true;
	}
	if ((s = rc_skip_push(sk)) == NULL)
		return false;
	/* local_port is 1..unpriv_port_start-1 here: the skip names it. */
	rc_skip_of_fwd(s, f, pol->privileged_skip ? RC_SKIP_PRIVILEGED_SKIP : RC_SKIP_PRIVILEGED);
	f->local_port = 0;
	f->privileged = 1;
	return true;
}

/* One candidate of port p for one local address; false on ENOMEM. */
static bool
candidate_push(struct rc_fwd_vec *cand, struct rc_skip_vec *sk, const struct rc_container *rc,
               const struct rdhpf_port *p, const char *bind, uint16_t local_port,
               const struct rule *r, const struct rc_policy *pol)
{
	const struct rdhpf_container *c = rc->c;
	struct rc_forward *f = rc_fwd_push(cand);

	if (f == NULL)
		return false;
	str_copy(f->bind, bind, sizeof f->bind);
	f->local_port = local_port != 0 ? local_port : local_port_for(pol, p->host_port);
	f->rule_line = r != NULL ? r->line : 0;
	f->remote_port = p->host_port;
	f->seq = rc->seq;
	str_copy(f->container_id, c->id ? c->id : "", sizeof f->container_id);
	str_copy(f->container_name, c->name ? c->name : "", sizeof f->container_name);
	/* A cut address would point somewhere else: refuse it like an
	 * unmappable port. */
	if (str_copy(f->remote_host, rc_remote_host(p->host_ip), sizeof f->remote_host) >=
	    sizeof f->remote_host)
		f->local_port = 0;
	return f->local_port == 0 || privileged_ok(pol, f, sk);
}

/* The skip that port p gets before any local port is chosen, or 0 when
 * it gets candidates; *rule is the rule that decides it (NULL if none). */
static enum rc_skip_why
port_verdict(const struct rc_container *rc, const struct rc_meta *m, const struct rc_policy *pol,
             const struct labels_policy *lp, const struct rdhpf_port *p, const struct rule **rule)
{
	const struct rdhpf_container *c = rc->c;
	struct rule_subject subj = {
	    .port = p->host_port,
	    .proto = p->proto,
	    .name = c->name,
	    .image = m != NULL ? m->image : NULL,
	    .labels = m != NULL ? m->labels : NULL,
	    .n_labels = m != NULL ? m->n_labels : 0,
	};
	long ri;

	*rule = NULL;
	if (lp != NULL && lp->ignore)
		return RC_SKIP_LABEL;
	/* A port the container's labels name is theirs: rules are for the
	 * rest. */
	if ((lp == NULL || labels_local_port(lp, p->host_port) == 0) && pol != NULL &&
	    pol->n_rules > 0 && (ri = rules_first(pol->rules, pol->n_rules, &subj)) >= 0)
		*rule = &pol->rules[ri];
	if (*rule != NULL && (*rule)->action == RULE_IGNORE)
		return RC_SKIP_RULE;
	/* A name (whatever a runtime let through) would point the forward
	 * anywhere sshd can reach. */
	if (!rc_host_ip_ok(p->host_ip))
		return RC_SKIP_HOSTIP;
	if (p->proto != RDHPF_PROTO_TCP)
		return RC_SKIP_PROTO;
	return 0;
}

static int
port_claims(const struct rc_container *rc, const struct rc_meta *m, const struct rc_policy *pol,
            const struct labels_policy *lp, const struct rdhpf_port *p, struct rc_fwd_vec *cand,
            struct rc_skip_vec *sk)
{
	const struct rule *r;
	enum rc_skip_why why = port_verdict(rc, m, pol, lp, p, &r);
	uint16_t label_port = lp != NULL ? labels_local_port(lp, p->host_port) : 0;
	char binds[RC_BIND_MAX][RC_ADDR_MAX];
	size_t nb;

	if (why != 0) {
		struct rc_skip *s = skip_from(sk, rc->c, p);
		if (s == NULL)
			return -1;
		s->why = why;
		s->rule_line = why == RC_SKIP_RULE ? r->line : 0;
		if (why == RC_SKIP_LABEL)
			str_copy(s->label, "rdhpf.ignore=true", sizeof s->label);
		return 0;
	}
	nb = rc_bind_expand(lp != NULL && lp->bind[0]          ? lp->bind
	                    : r != NULL && r->bind != NULL     ? r->bind
	                    : pol != NULL && pol->bind != NULL ? pol->bind
	                                                       : RC_LOOPBACK4,
	                    pol != NULL && pol->no_ipv6_loopback, binds, RC_BIND_MAX);
	for (size_t bi = 0; bi < nb; bi++)
		if (!candidate_push(cand, sk, rc, p, binds[bi],
		                    label_port != 0 ? label_port
		                    : r != NULL     ? rule_local_port(r, p->host_port)
		                                    : 0,
		                    r, pol))
			return -1;
	return 0;
}

int
rc_claims(const struct rc_container *rc, const struct rc_meta *m, const struct rc_policy *pol,
          struct rc_fwd_vec *cand, struct rc_skip_vec *sk)
{
	const struct rdhpf_container *c = rc->c;
	struct labels_policy lp;
	bool use_labels = pol != NULL && pol->labels && m != NULL && m->n_labels > 0;

	if (c == NULL)
		return 0;
	/* Bad labels are only left out here; the supervisor reports them
	 * (labels_parse again) for status and the log. */
	if (use_labels)
		labels_parse(m->labels, m->n_labels, &lp);
	for (size_t pi = 0; pi < c->n_ports; pi++) {
		/* An unresolved ephemeral port (0) is not published. */
		if (c->ports[pi].host_port == 0 || is_dual_stack_twin(c, pi))
			continue;
		if (port_claims(rc, m, pol, use_labels ? &lp : NULL, &c->ports[pi], cand, sk) != 0)
			return -1;
	}
	return 0;
}

int
rc_desired_full(const struct rc_container *cs, const struct rc_meta *meta, size_t n,
                const struct rc_policy *pol, struct rc_forward **out, size_t *n_out,
                struct rc_forward **conflicts, size_t *n_conflicts, struct rc_skip **skips,
                size_t *n_skips)
{
	struct rc_fwd_vec cand = {0}, won = {0}, lost = {0};
	struct rc_skip_vec sk = {0};
	const struct rc_forward *owner = NULL;

	*out = NULL;
	*n_out = 0;
	if (conflicts != NULL)
		*conflicts = NULL;
	if (n_conflicts != NULL)
		*n_conflicts = 0;
	if (skips != NULL)
		*skips = NULL;
	if (n_skips != NULL)
		*n_skips = 0;

	for (size_t ci = 0; ci < n; ci++)
		if (rc_claims(&cs[ci], meta != NULL ? &meta[ci] : NULL, pol, &cand, &sk) != 0)
			goto fail;

	if (cand.n > 1) /* qsort(NULL, 0, …) is undefined */
		qsort(cand.v, cand.n, sizeof *cand.v, rc_cmp_owner);
	for (size_t i = 0; i < cand.n; i++) {
		const struct rc_forward *f = &cand.v[i];
		struct rc_forward *dst;
		bool first = f->local_port != 0 && (i == 0 || rc_cmp_key(&cand.v[i - 1], f) != 0);

		if (f->privileged)
			continue; /* already a skip */
		if (first) {
			if ((dst = rc_fwd_push(&won)) == NULL)
				goto fail;
			owner = f;
		} else {
			/* The same container claiming the same target twice (a
			 * duplicate from the runtime) is no conflict. */
			if (i > 0 && rc_same_claim(&cand.v[i - 1], f))
				continue;
			if (skips != NULL) {
				struct rc_skip *s = skip_from_fwd(
				    &sk, f, f->local_port == 0 ? RC_SKIP_RANGE : RC_SKIP_TAKEN);
				if (s == NULL)
					goto fail;
				if (f->local_port != 0 && owner != NULL)
					str_copy(s->holder, owner->container_name,
					         sizeof s->holder);
			}
			if (conflicts == NULL)
				continue;
			if ((dst = rc_fwd_push(&lost)) == NULL)
				goto fail;
		}
		*dst = *f;
	}
	/* owner points into cand.v: done with it before the free. */
	free(cand.v);

	sk.n = rc_skips_unique(sk.v, sk.n);
	*out = won.v;
	*n_out = won.n;
	if (conflicts != NULL)
		*conflicts = lost.v;
	if (n_conflicts != NULL)
		*n_conflicts = lost.n;
	if (skips != NULL) {
		*skips = sk.v;
		*n_skips = sk.n;
	} else
		free(sk.v);
	return 0;

fail:
	free(cand.v);
	free(won.v);
	free(lost.v);
	free(sk.v);
	return -1;
}

int
rc_desired(const struct rc_container *cs, size_t n, const struct rc_policy *pol,
           struct rc_forward **out, size_t *n_out, struct rc_forward **conflicts,
           size_t *n_conflicts, size_t *skipped_udp)
{
	struct rc_skip *sk = NULL;
	size_t nsk = 0;

	if (skipped_udp != NULL)
		*skipped_udp = 0;
	if (rc_desired_full(cs, NULL, n, pol, out, n_out, conflicts, n_conflicts,
	                    skipped_udp != NULL ? &sk : NULL, &nsk) != 0)
		return -1;
	for (size_t i = 0; i < nsk; i++)
		if (sk[i].why == RC_SKIP_PROTO)
			(*skipped_udp)++;
	free(sk);
	return 0;
}

/* ---- reconcile -------------------------------------------------------- */

/* A sorted copy with one entry per key (the first in rc_cmp_owner order). */
static struct rc_forward *
sorted_unique(const struct rc_forward *in, size_t n, size_t *n_out)
{
	struct rc_forward *v;
	size_t k = 0;

	*n_out = 0;
	if (n == 0)
		return NULL;
	if ((v = malloc(n * sizeof *v)) == NULL)
		return NULL;
	memcpy(v, in, n * sizeof *v);
	qsort(v, n, sizeof *v, rc_cmp_owner);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || rc_cmp_key(&v[k - 1], &v[i]) != 0)
			v[k++] = v[i];
	*n_out = k;
	return v;
}

static void
push_action(struct rc_action *acts, size_t *n, enum rc_action_type t, const struct rc_forward *f)
{
	acts[*n].type = t;
	acts[*n].fwd = *f;
	(*n)++;
}

enum rc_action_type
rc_key_diff(const struct rc_forward *d, const struct rc_forward *a, bool *remove)
{
	bool moved = d != NULL && a != NULL && cmp_target(d, a) != 0;

	*remove = a != NULL && (d == NULL || moved);
	if (d != NULL && (a == NULL || moved))
		return RC_ADD;
	if (d != NULL && (strcmp(d->container_id, a->container_id) != 0 ||
	                  strcmp(d->container_name, a->container_name) != 0))
		return RC_RETAG;
	return 0;
}

int
rc_reconcile(const struct rc_forward *desired, size_t nd, const struct rc_forward *actual,
             size_t na, struct rc_action **out, size_t *n_out)
{
	struct rc_forward *d = NULL, *a = NULL;
	struct rc_action *acts = NULL;
	size_t dn, an, n = 0, i, j;
	int ret = -1;

	*out = NULL;
	*n_out = 0;
	d = sorted_unique(desired, nd, &dn);
	a = sorted_unique(actual, na, &an);
	if ((nd > 0 && d == NULL) || (na > 0 && a == NULL))
		goto done;
	if (dn + an == 0) {
		ret = 0;
		goto done;
	}
	/* Worst case: every actual removed and every desired added. */
	if ((acts = malloc((dn + an) * sizeof *acts)) == NULL)
		goto done;

	/* Pass 1: removals.  Pass 2: additions and retags.  Both walk the two
	 * key-sorted arrays in step. */
	for (int pass = 0; pass < 2; pass++) {
		for (i = 0, j = 0; i < dn || j < an;) {
			int c = i == dn ? 1 : j == an ? -1 : rc_cmp_key(&d[i], &a[j]);
			const struct rc_forward *dk = c <= 0 ? &d[i] : NULL,
			                        *ak = c >= 0 ? &a[j] : NULL;
			bool rm;
			enum rc_action_type add = rc_key_diff(dk, ak, &rm);

			if (pass == 0 && rm)
				push_action(acts, &n, RC_REMOVE, ak);
			else if (pass == 1 && add != 0)
				push_action(acts, &n, add, dk);
			i += dk != NULL;
			j += ak != NULL;
		}
	}
	if (n == 0) {
		free(acts);
		acts = NULL;
	}
	*out = acts;
	*n_out = n;
	ret = 0;
done:
	if (ret != 0)
		free(acts);
	free(d);
	free(a);
	return ret;
}
