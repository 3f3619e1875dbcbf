/* The line splitter: bounded, so a remote that never sends '\n' costs at
 * most max bytes. */
#include <string.h>

#include "rdhpf/sdk.h"

void
rsdk_lines_init(struct rsdk_lines *l, size_t max)
{
	rsdk_buf_init(&l->buf);
	l->max = max;
	l->skipping = 0;
	l->oversized = 0;
}

void
rsdk_lines_free(struct rsdk_lines *l)
{
	rsdk_buf_free(&l->buf);
	l->skipping = 0;
}

static int
lines_emit(struct rsdk_lines *l, const char *line, size_t len, rsdk_line_fn fn, void *arg)
{
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len > l->max) {
		l->oversized++;
		return 0;
	}
	return fn(arg, line, len);
}

int
rsdk_lines_feed(struct rsdk_lines *l, const char *buf, size_t n, rsdk_line_fn fn, void *arg)
{
	while (n > 0) {
		const char *nl = memchr(buf, '\n', n);
		size_t part = nl != NULL ? (size_t)(nl - buf) : n;
		int rc = 0;

		if (l->skipping) {
			if (nl != NULL)
				l->skipping = 0;
		} else if (nl != NULL && rsdk_buf_size(&l->buf) == 0) {
			/* The common case: a whole line in the input, no copy. */
			rc = lines_emit(l, buf, part, fn, arg);
		} else if (nl != NULL) {
			if (rsdk_buf_size(&l->buf) + part > l->max + 1) {
				l->oversized++;
				rsdk_buf_reset(&l->buf);
			} else {
				if (rsdk_buf_append(&l->buf, buf, part) != RDHPF_OK) {
					/* Out of memory: the line is lost like an
					 * oversized one, and counted so. */
					l->oversized++;
					rsdk_buf_reset(&l->buf);
				} else {
					struct rsdk_buf line = l->buf;
					rsdk_buf_init(&l->buf);
					rc = lines_emit(l, rsdk_buf_str(&line),
					                rsdk_buf_size(&line), fn, arg);
					if (rc != 0) {
						/* fn may have freed l: touch nothing. */
						rsdk_buf_free(&line);
						return rc;
					}
					/* Keep the allocation for the next line. */
					rsdk_buf_reset(&line);
					rsdk_buf_free(&l->buf);
					l->buf = line;
				}
			}
		} else if (rsdk_buf_size(&l->buf) + part > l->max + 1) {
			/* max + 1: a line of max bytes may still lose a '\r'. */
			l->oversized++;
			l->skipping = 1;
			rsdk_buf_reset(&l->buf);
		} else if (rsdk_buf_append(&l->buf, buf, part) != RDHPF_OK) {
			l->oversized++;
			l->skipping = 1;
			rsdk_buf_reset(&l->buf);
		}
		if (nl == NULL)
			return 0;
		buf += part + 1;
		n -= part + 1;
		if (rc != 0)
			return rc;
	}
	return 0;
}

int
rsdk_lines_finish(struct rsdk_lines *l, rsdk_line_fn fn, void *arg)
{
	struct rsdk_buf line = l->buf;
	int rc = 0;

	l->skipping = 0;
	rsdk_buf_init(&l->buf);
	if (rsdk_buf_size(&line) > 0)
		rc = lines_emit(l, rsdk_buf_str(&line), rsdk_buf_size(&line), fn, arg);
	rsdk_buf_free(&line);
	return rc;
}
