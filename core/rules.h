/* Port rules: which published ports a host forwards, and where.  Pure: no
 * I/O, no plugins; config.c parses them, reconcile.c applies them.
 *
 * One rule is one line of text (a `rule = …` value in a host section):
 *
 *   ACTION [port=N|N-M] [proto=tcp|udp|sctp] [name=GLOB] [image=GLOB]
 *          [label=KEY|KEY=VALUE] [-> LOCAL|LOCAL_LO-LOCAL_HI] [bind=ADDR]
 *
 * ACTION is `forward` or `ignore`.  Every matcher given must match; a rule
 * without matchers matches every port.  Rules are tried in file order and
 * the first that matches decides; a port no rule matches is forwarded as
 * before rules existed (port_map, else remote + port_offset). */
#ifndef RDHPF_RULES_H
#define RDHPF_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RULE_GLOB_MAX 128 /* name, image, label key/value, bind */
#define RULE_TEXT_MAX 640 /* rule_format's output, always enough */

enum rule_action {
	RULE_FORWARD = 1,
	RULE_IGNORE = 2,
};

struct rule {
	enum rule_action action;
	int line;                  /* where it was written; 0 when not from a file */
	char *file;                /* the file it was written in, NULL when unknown */
	uint16_t port_lo, port_hi; /* remote (published) port range; 0 = any */
	int proto;                 /* 0 = any, else enum rdhpf_proto */
	char *name;                /* container name glob (fnmatch), NULL = any */
	char *image;               /* image glob, NULL = any */
	char *label_key;           /* NULL = any */
	char *label_value;         /* NULL = the key only has to be present */
	uint16_t to_lo, to_hi;     /* local port (range); 0 = port_map / port_offset */
	char *bind;                /* local bind address; NULL = the host's */
};

/* A label as the runtime reports it. */
struct rule_label {
	const char *key;
	const char *value;
};

/* What a rule is matched against: one published port of one container.
 * image and labels are NULL/0 when the runtime does not report them; a rule
 * that asks for them then does not match. */
struct rule_subject {
	uint16_t port; /* published (remote) port */
	int proto;
	const char *name;
	const char *image;
	const struct rule_label *labels;
	size_t n_labels;
};

/* Parse one rule.  0, or -1 with err filled ("bad port '80-'…"); *r is
 * untouched on failure.  line is stored as given. */
int rule_parse(const char *text, int line, struct rule *r, char *err, size_t errlen);

void rule_clear(struct rule *r);
/* Deep copy; aborts on out of memory like the rest of the core's xmalloc. */
void rule_copy(struct rule *dst, const struct rule *src);
bool rule_same(const struct rule *a, const struct rule *b);

/* The canonical text of a rule, as rule_parse reads it back. */
void rule_format(const struct rule *r, char *buf, size_t len);

bool rule_matches(const struct rule *r, const struct rule_subject *s);

/* Index of the first rule that matches, or -1. */
long rules_first(const struct rule *rs, size_t n, const struct rule_subject *s);

/* The local port a forward rule with a target gives remote port p (which it
 * matched), or 0 when the rule has no target. */
uint16_t rule_local_port(const struct rule *r, uint16_t p);

/* True when every port b matches is also matched by a: b placed after a can
 * never match.  Conservative: false when unsure (globs are compared as
 * text, except a literal against a glob). */
bool rule_covers(const struct rule *a, const struct rule *b);

/* Index of the first rule before rs[i] that covers it (rs[i] can never
 * match), or -1. */
long rules_shadowed_by(const struct rule *rs, size_t i);

#endif
