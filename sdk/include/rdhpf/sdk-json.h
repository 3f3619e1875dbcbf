/*
 * rdhpf plugin SDK — small helpers over jansson for engine JSON.
 *
 * Lookups never fail loudly: a member that is missing or of another type
 * gives NULL / -1, so a parser skips what it does not understand and logs
 * it.  Dotted paths ("Config.Labels") walk objects only.
 */
#ifndef RDHPF_SDK_JSON_H
#define RDHPF_SDK_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "rdhpf/sdk.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Parse len bytes (need not be NUL-ended).  NULL on error, with err
 * "line L, column C: reason". */
json_t *rsdk_json_parse(const char *s, size_t len, char *err, size_t errlen);

/* Member key of object o: a string, an integer (RDHPF_OK or
 * RDHPF_ERR_INVAL), an object.  o may be NULL or not an object. */
const char *rsdk_json_str(const json_t *o, const char *key);
int rsdk_json_int(const json_t *o, const char *key, int64_t *out);
json_t *rsdk_json_obj(const json_t *o, const char *key);

/* The same by dotted path, e.g. "State.Running". */
json_t *rsdk_json_path(const json_t *o, const char *path);
const char *rsdk_json_path_str(const json_t *o, const char *path);
int rsdk_json_path_int(const json_t *o, const char *path, int64_t *out);
json_t *rsdk_json_path_obj(const json_t *o, const char *path);

/* Add every string member of obj (labels: {"k": "v", …}) to c; members of
 * other types are skipped.  obj may be NULL or null (no labels).
 * RDHPF_OK or RDHPF_ERR_NOMEM. */
int rsdk_json_labels(struct rsdk_cont *c, const json_t *obj);

#ifdef __cplusplus
}
#endif

#endif /* RDHPF_SDK_JSON_H */
