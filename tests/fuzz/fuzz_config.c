/* libFuzzer target: the config parser, URL and duration parsing, the
 * terminal escaping of what check-config and status print, and the core's
 * HostIp check.  Built with -Dfuzz=true by clang (scripts/fuzz). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "reconcile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
