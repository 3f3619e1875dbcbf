/* One wrapper per plugin slot (the vtls pattern): every call the core makes
 * into a plugin goes through here, so that slot presence (RDHPF_SLOT: inside
 * the plugin's ops struct_size and set) is checked in one place, and so that
 * asynchronous completions are owned by the core:
 *   - a done/list callback the plugin calls inside the slot is deferred to
 *     the next loop turn (the core never sees it re-entrantly);
 *   - a second completion of one call is a plugin bug: logged once per
 *     plugin and slot, and ignored.
 * An instance (struct pinst) is one plugin's state for one host. */
#ifndef RDHPF_SLOTS_H
#define RDHPF_SLOTS_H

#include <stdbool.h>
#include <stddef.h>

#include "rdhpf/plugin.h"

struct plugin;
struct pinst;

enum slot_id {
	SLOT_T_CREATE = 0,
	SLOT_T_DESTROY,
	SLOT_T_CONNECT,
	SLOT_T_DISCONNECT,
	SLOT_T_HEALTH,
	SLOT_T_FORWARD_ADD,
	SLOT_T_FORWARD_REMOVE,
	SLOT_T_EXEC,
	SLOT_T_STREAM_WRITE,
	SLOT_T_STREAM_CLOSE,
	SLOT_T_OPEN_UNIX,
	SLOT_T_FORWARD_STATS,
	SLOT_R_CREATE,
	SLOT_R_DESTROY,
	SLOT_R_WATCH,
	SLOT_R_LIST,
	SLOT_R_STOP,
	SLOT_COUNT
};

/* "health_check", "list", … */
const char *slot_name(enum slot_id s);

/* Pure: is the slot at byte offset off (of size sz) inside a struct of
 * struct_size bytes?  What RDHPF_HAS decides, for tests. */
bool slot_inside(uint32_t struct_size, size_t off, size_t sz);

/* Is slot s present in plugin p's ops (inside struct_size and non-NULL)? */
bool slot_present(const struct rdhpf_plugin_info *info, enum slot_id s);

/* ---- transports ---- */

/* Make an instance; NULL with *status and err set on failure. */
struct pinst *tp_create(const struct plugin *p, struct rdhpf_ctx *ctx,
                        const struct rdhpf_host_params *hp, int *status, char *err, size_t errlen);
/* Also drops every pending completion and deferred callback. */
void tp_destroy(struct pinst *t);
int tp_connect(struct pinst *t, rdhpf_done_fn done, void *arg);
void tp_disconnect(struct pinst *t);
int tp_health(struct pinst *t, rdhpf_done_fn done, void *arg);
/* f->struct_size is set by the wrapper. */
int tp_forward_add(struct pinst *t, struct rdhpf_forward *f, rdhpf_done_fn done, void *arg);
int tp_forward_remove(struct pinst *t, struct rdhpf_forward *f, rdhpf_done_fn done, void *arg);
/* RDHPF_ERR_UNSUPPORTED when the slot is absent. */
int tp_exec(struct pinst *t, const char *const *argv, const struct rdhpf_stream_cbs *cbs, void *arg,
            void **stream);
int tp_open_unix(struct pinst *t, const char *path, const struct rdhpf_stream_cbs *cbs, void *arg,
                 void **stream);
bool tp_can_open_unix(const struct pinst *t);
int tp_stream_write(struct pinst *t, void *stream, const void *buf, size_t len);
void tp_stream_close(struct pinst *t, void *stream);
/* Sets out->struct_size; RDHPF_ERR_UNSUPPORTED without the slot. */
int tp_forward_stats(struct pinst *t, struct rdhpf_forward *f, struct rdhpf_forward_stats *out);

/* ---- runtimes ---- */

struct pinst *rt_create(const struct plugin *p, struct rdhpf_ctx *ctx,
                        const struct rdhpf_host_params *hp, int *status, char *err, size_t errlen);
void rt_destroy(struct pinst *r);
/* Has RDHPF_RCAP_EVENTS and a watch slot (else the runtime is poll-only). */
bool rt_has_events(const struct pinst *r);
/* cbs is the core's; it must stay valid until rt_stop.  on_established and
 * on_end called inside watch() are deferred; a second one of either is
 * logged and ignored. */
int rt_watch(struct pinst *r, const struct rdhpf_watch_cbs *cbs, void *arg);
/* The containers handed to done are borrowed for the call. */
int rt_list(struct pinst *r, rdhpf_list_fn done, void *arg);
/* No callback of the watch or a pending list follows. */
void rt_stop(struct pinst *r);

const struct plugin *pinst_plugin(const struct pinst *i);

/* Plugin-bug reports so far (for tests). */
unsigned slots_bug_count(void);

#endif
