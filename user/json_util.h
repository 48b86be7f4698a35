/* SPDX-License-Identifier: GPL-2.0 */
/*
 * One way to add a field to a JSON object: hv_json_add_<type>(o, key, value).
 * The _or_null variants write null when the value is absent (present
 * false), so that a field keeps its place and its name in every record;
 * hv_json_add_str writes null for a NULL string. Nested objects and arrays
 * are added with json-c's json_object_object_add(), which takes them over.
 */
#ifndef HVGUARD_USER_JSON_UTIL_H
#define HVGUARD_USER_JSON_UTIL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

static inline void hv_json_add_int(struct json_object *o, const char *key, int64_t v)
{
	json_object_object_add(o, key, json_object_new_int64(v));
}

static inline void hv_json_add_uint(struct json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_uint64(v));
}

static inline void hv_json_add_double(struct json_object *o, const char *key, double v)
{
	json_object_object_add(o, key, json_object_new_double(v));
}

static inline void hv_json_add_bool(struct json_object *o, const char *key, bool v)
{
	json_object_object_add(o, key, json_object_new_boolean(v));
}

/* A NULL string is written as null. */
static inline void hv_json_add_str(struct json_object *o, const char *key, const char *v)
{
	json_object_object_add(o, key, v ? json_object_new_string(v) : NULL);
}

static inline void hv_json_add_null(struct json_object *o, const char *key)
{
	json_object_object_add(o, key, NULL);
}

static inline void hv_json_add_int_or_null(struct json_object *o, const char *key, bool present,
					   int64_t v)
{
	json_object_object_add(o, key, present ? json_object_new_int64(v) : NULL);
}

static inline void hv_json_add_uint_or_null(struct json_object *o, const char *key, bool present,
					    uint64_t v)
{
	json_object_object_add(o, key, present ? json_object_new_uint64(v) : NULL);
}

static inline void hv_json_add_bool_or_null(struct json_object *o, const char *key, bool present,
					    bool v)
{
	json_object_object_add(o, key, present ? json_object_new_boolean(v) : NULL);
}

#endif
