/* libFuzzer target: the config parser, URL and duration parsing.  Built
 * with -Dfuzz=true by clang (scripts/fuzz). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

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
	free(s);
	return 0;
}
