/* Container labels → how that container's ports are forwarded. */
#include "labels.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define PREFIX "rdhpf."
#define PORT_PREFIX "rdhpf.port."

static void bad(struct labels_policy *p, size_t *n_bad, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
bad(struct labels_policy *p, size_t *n_bad, const char *fmt, ...)
{
	size_t len = strlen(p->err);
	va_list ap;

	(*n_bad)++;
	if (len > 0 && len + 2 < sizeof p->err) {
		memcpy(p->err + len, "; ", 3);
		len += 2;
	}
	if (len + 1 >= sizeof p->err)
		return;
	va_start(ap, fmt);
	vsnprintf(p->err + len, sizeof p->err - len, fmt, ap);
	va_end(ap);
}

/* A comma- or blank-separated list of IP literals or "localhost". */
static bool
bind_list_ok(const char *v)
{
	const char *s = v;
	size_t n = 0;

	for (;;) {
		char a[64];
		unsigned char buf[16];
		size_t len;

		s += strspn(s, ", \t");
		if (*s == '\0')
			break;
		len = strcspn(s, ", \t");
		if (len >= sizeof a)
			return false;
		memcpy(a, s, len);
		a[len] = '\0';
		if (strcmp(a, "localhost") != 0 && inet_pton(AF_INET, a, buf) != 1 &&
		    inet_pton(AF_INET6, a, buf) != 1)
			return false;
		s += len;
		n++;
	}
	return n > 0 && n <= 8;
}

size_t
labels_parse(const struct rule_label *labels, size_t n, struct labels_policy *p)
{
	size_t n_bad = 0;

	memset(p, 0, sizeof *p);
	for (size_t i = 0; i < n; i++) {
		const char *k = labels[i].key, *v = labels[i].value ? labels[i].value : "";
		uint16_t remote, local;

		if (k == NULL || strncmp(k, PREFIX, sizeof PREFIX - 1) != 0)
			continue;
		if (strcmp(k, "rdhpf.ignore") == 0) {
			if (strcmp(v, "true") == 0)
				p->ignore = true;
			else if (strcmp(v, "false") != 0)
				bad(p, &n_bad,
				    "label rdhpf.ignore: bad value '%.40s' (true or false)", v);
		} else if (strcmp(k, "rdhpf.bind") == 0) {
			if (strlen(v) < sizeof p->bind && bind_list_ok(v))
				str_copy(p->bind, v, sizeof p->bind);
			else
				bad(p, &n_bad,
				    "label rdhpf.bind: bad value '%.40s' (IP addresses or "
				    "localhost)",
				    v);
		} else if (strncmp(k, PORT_PREFIX, sizeof PORT_PREFIX - 1) == 0) {
			const char *rp = k + sizeof PORT_PREFIX - 1;
			bool dup = false;
			if (parse_port(rp, &remote) != 0) {
				bad(p, &n_bad, "label %.60s: bad remote port '%.20s' (1-65535)", k,
				    rp);
				continue;
			}
			if (parse_port(v, &local) != 0) {
				bad(p, &n_bad, "label %.60s: bad local port '%.20s' (1-65535)", k,
				    v);
				continue;
			}
			for (size_t j = 0; j < p->n_ports; j++)
				dup = dup || p->ports[j].local == local;
			if (dup) {
				bad(p, &n_bad, "label %.60s: local port %u given twice", k, local);
				continue;
			}
			if (p->n_ports == LABELS_PORTS_MAX) {
				bad(p, &n_bad, "label %.60s: more than %d rdhpf.port labels", k,
				    LABELS_PORTS_MAX);
				continue;
			}
			p->ports[p->n_ports].remote = remote;
			p->ports[p->n_ports].local = local;
			p->n_ports++;
		} else {
			bad(p, &n_bad,
			    "unknown label %.60s (rdhpf.ignore, rdhpf.port.<remote>, rdhpf.bind)",
			    k);
		}
	}
	return n_bad;
}

uint16_t
labels_local_port(const struct labels_policy *p, uint16_t remote)
{
	for (size_t i = 0; i < p->n_ports; i++)
		if (p->ports[i].remote == remote)
			return p->ports[i].local;
	return 0;
}
