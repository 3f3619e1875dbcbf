/* Logging: logfmt (default) or JSON lines, secrets redacted, repeats
 * collapsed.  Single-threaded like the rest of the core. */
#ifndef RDHPF_LOG_H
#define RDHPF_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "rdhpf/plugin.h"

struct kv_pair {
	const char *key;
	const char *value;
};

enum log_format { LOG_LOGFMT = 0, LOG_JSON = 1 };

/* out: where lines go (stderr normally).  now_ms: monotonic clock (tests
 * pass their own; NULL: CLOCK_MONOTONIC).  window_ms: repeats of one
 * message within it are counted, not printed; default 10 min.  log_init
 * resets the window to the default and drops pending repeat counts
 * without printing them (the previous out may be closed). */
void log_init(FILE *out, enum log_format fmt, int level, uint64_t (*now_ms)(void));
void log_set_level(int level);
void log_set_format(enum log_format fmt);
void log_set_window(uint64_t window_ms);
/* Where ts= comes from: milliseconds since the epoch.  NULL (the default):
 * CLOCK_REALTIME.  Tests pass a fixed clock. */
void log_set_wall_clock(int64_t (*wall_ms)(void));
int log_level_parse(const char *s); /* -1 if unknown */
const char *log_level_name(int level);

/* host/plugin may be NULL.  kv pairs: values NULL are skipped.  Keys named
 * like secrets (password, passphrase, secret, token, private_key,
 * authorization) have their value replaced by "[redacted]", and a URL's
 * user:password@ loses its password.  Only warn and error lines collapse
 * when repeated; info and below always print. */
void log_emit(int level, const char *host, const char *plugin, const char *msg,
              const struct kv_pair *kv, size_t n);
/* Same, kv as NULL-terminated key, value varargs. */
void log_kv(int level, const char *host, const char *plugin, const char *msg, ...)
    __attribute__((sentinel));
void log_vkv(int level, const char *host, const char *plugin, const char *msg, va_list ap);
/* Never collapsed, even warn and error: for lines that an operator's own
 * action brings (a SIGHUP's report, the start's), bounded by those actions
 * and each one read in answer to it. */
void log_kv_each(int level, const char *host, const char *plugin, const char *msg, ...)
    __attribute__((sentinel));
void log_emit_ex(int level, const char *host, const char *plugin, const char *msg,
                 const struct kv_pair *kv, size_t n, bool collapse);

/* Call now and then (the daemon does every few seconds) and at exit: prints
 * "… repeated N times in 10m" for collapsed runs whose window has passed
 * (all of them when force). */
void log_flush_repeats(int force);

/* For a terminal: printable UTF-8 as is, newline, CR and tab as \n \r \t,
 * every other control (C0, C1, DEL, U+2028/9) and every byte that is not
 * valid UTF-8 as \xNN, so that text from a config or a remote engine can
 * neither retitle nor rewrite the user's terminal (ESC ] 0;…).  malloc'd. */
char *term_escape_dup(const char *s);
void term_fputs(const char *s, FILE *out);

#endif
