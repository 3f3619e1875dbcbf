/* Small jansson helpers for engine JSON. */
#include <stdio.h>
#include <string.h>

#include "rdhpf/sdk-json.h"

json_t *
rsdk_json_parse(const char *s, size_t len, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j = json_loadb(s, len, 0, &je);

	if (j == NULL && err != NULL && errlen > 0) {
		snprintf(err, errlen, "line %d, column %d: %s", je.line, je.column, je.text);
		rsdk_printable(err, errlen, err, strlen(err));
	}
	return j;
}

const char *
rsdk_json_str(const json_t *o, const char *key)
{
	json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;

	return json_is_string(v) ? json_string_value(v) : NULL;
}

int
rsdk_json_int(const json_t *o, const char *key, int64_t *out)
{
	json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;

	if (!json_is_integer(v))
		return RDHPF_ERR_INVAL;
	*out = (int64_t)json_integer_value(v);
	return RDHPF_OK;
}

json_t *
rsdk_json_obj(const json_t *o, const char *key)
{
	json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;

	return json_is_object(v) ? v : NULL;
}

json_t *
rsdk_json_path(const json_t *o, const char *path)
{
	json_t *cur = (json_t *)o;
	const char *p = path;

	for (;;) {
		const char *dot = strchr(p, '.');
		size_t len = dot != NULL ? (size_t)(dot - p) : strlen(p);
		char key[256];

		/* json_object_getn is jansson 2.14+; a copy works everywhere. */
		if (!json_is_object(cur) || len >= sizeof key)
			return NULL;
		memcpy(key, p, len);
		key[len] = '\0';
		cur = json_object_get(cur, key);
		if (cur == NULL || dot == NULL)
			return cur;
		p = dot + 1;
	}
}

const char *
rsdk_json_path_str(const json_t *o, const char *path)
{
	json_t *v = rsdk_json_path(o, path);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

int
rsdk_json_path_int(const json_t *o, const char *path, int64_t *out)
{
	json_t *v = rsdk_json_path(o, path);

	if (!json_is_integer(v))
		return RDHPF_ERR_INVAL;
	*out = (int64_t)json_integer_value(v);
	return RDHPF_OK;
}

json_t *
rsdk_json_path_obj(const json_t *o, const char *path)
{
	json_t *v = rsdk_json_path(o, path);

	return json_is_object(v) ? v : NULL;
}

int
rsdk_json_labels(struct rsdk_cont *c, const json_t *obj)
{
	const char *key;
	json_t *v;

	if (!json_is_object(obj))
		return RDHPF_OK;
	json_object_foreach((json_t *)obj, key, v)
	{
		int rc;
		if (!json_is_string(v))
			continue;
		rc = rsdk_cont_add_label(c, key, json_string_value(v));
		if (rc != RDHPF_OK)
			return rc;
	}
	return RDHPF_OK;
}
