/* libFuzzer target: the config parser, URL and duration parsing, the
 * terminal escaping of what check-config and status print, and the core's
 * HostIp check.  Built with -Dfuzz=true by clang (scripts/fuzz). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "rules.h"
#include "log.h"
#include "reconcile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A rule that parses prints back as text that parses to the same rule,
 * and covers itself. */
static void
fuzz_rule(const char *s)
{
	struct rule r, back;
	struct rule_label l = {"k", "v"};
	struct rule_subject subj = {.port = 80,
	                            .proto = RDHPF_PROTO_TCP,
	                            .name = "web-1",
	                            .image = "img",
	                            .labels = &l,
	                            .n_labels = 1};
	char err[256], text[RULE_TEXT_MAX];

	if (rule_parse(s, 1, &r, err, sizeof err) != 0)
		return;
	rule_format(&r, text, sizeof text);
	if (rule_parse(text, 1, &back, err, sizeof err) != 0)
		abort();
	if (!rule_same(&r, &back) || !rule_covers(&r, &r))
		abort();
	(void)rule_matches(&r, &subj);
	(void)rule_local_port(&r, r.port_lo);
	rule_clear(&r);
	rule_clear(&back);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	struct cfg c;
	struct ssh_url u;
	uint64_t ms;
	char err[256], buf[64];

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	cfg_parse_string("fuzz.ini", s, &c);
	if (c.n_errors == 0) {
		FILE *null = fopen("/dev/null", "w");
		if (null != NULL) {
			cfg_print(&c, null);
			fclose(null);
		}
	}
	cfg_free(&c);
	fuzz_rule(s);
	ssh_url_parse(s, &u, err, sizeof err);
	if (parse_duration(s, &ms, err, sizeof err) == 0)
		format_duration(ms, buf, sizeof buf);
	{
		/* Every byte that is not printable UTF-8 comes out as \xNN (or
		 * \n \r \t): nothing below 0x20, no DEL, no C1. */
		char *e = term_escape_dup(s);
		for (const unsigned char *p = (const unsigned char *)e; *p; p++)
			if (*p < 0x20 || *p == 0x7f)
				abort();
		free(e);
	}
	rc_host_ip_ok(s);
	free(s);
	return 0;
}
