/* Small helpers shared by the core (pure). */
#ifndef RDHPF_UTIL_H
#define RDHPF_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* strlcpy semantics: always NUL-terminates when size > 0; returns
 * strlen(src), so truncation is ret >= size. */
size_t str_copy(char *dst, const char *src, size_t size);

/* Abort on out of memory: the daemon cannot do anything useful then. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* Room for one more after the n elements of size sz in v: doubles *cap
 * when full, so appending costs O(1) amortized.  Returns v or its move. */
void *xgrow(void *v, size_t n, size_t *cap, size_t sz);
char *xstrndup(const char *s, size_t n);

/* "1".."65535" only, no sign, no spaces, no leading zeros beyond "0". */
int parse_port(const char *s, uint16_t *out);

/* Strict unsigned decimal with an upper bound; -1 on anything else. */
int parse_u64(const char *s, uint64_t max, uint64_t *out);

/* POSIX-shell quoting of each word ('…', with ' as '\''), joined by spaces.
 * malloc'd; NULL for an empty argv. */
char *shell_join(const char *const *argv);

#endif
