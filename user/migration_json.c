// SPDX-License-Identifier: GPL-2.0
/* Departure and arrival records as JSON (migration_json.h). */
#include <errno.h>
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "json_util.h"
#include "migration_json.h"

void hv_mig_record_to_json(const struct hv_mig_record *r, struct json_object *o)
{
	struct json_object *vcpus = json_object_new_array();

	hv_json_add_str(o, "host", r->host[0] ? r->host : NULL);
	hv_json_add_str(o, "vm_uuid", r->uuid[0] ? r->uuid : NULL);
	hv_json_add_int(o, "realtime_ns", r->realtime_ns);
	hv_json_add_int(o, "tai_ns", r->tai_ns);
	hv_json_add_int(o, "kvmclock_ns", r->kvmclock_ns);
	hv_json_add_int(o, "tsc_khz", r->tsc_khz);
	hv_json_add_int_or_null(o, "pvti_mul", r->pvti_mul, r->pvti_mul);
	hv_json_add_int_or_null(o, "pvti_shift", r->pvti_mul, r->pvti_shift);
	hv_json_add_int_or_null(o, "clock_error_ns", r->clock_error_ns >= 0, r->clock_error_ns);
	if (r->kind == HV_MIG_DEPARTURE)
		hv_json_add_int(o, "saved_by_ns", r->saved_by_ns);
	else
		hv_json_add_int(o, "written_ns", r->written_ns);
	for (uint32_t i = 0; i < r->nr_vcpus; i++) {
		struct json_object *v = json_object_new_object();

		hv_json_add_int(v, "vcpu", r->vcpu[i].id);
		hv_json_add_int(v, "tsc", r->vcpu[i].tsc);
		json_object_array_add(vcpus, v);
	}
	json_object_object_add(o, "vcpus", vcpus);
}

/* Reading back: every helper returns 0, or -EINVAL with why filled. */
#define REFUSE(...)                                                                                \
	do {                                                                                       \
		snprintf(why, len, __VA_ARGS__);                                                   \
		return -EINVAL;                                                                    \
	} while (0)

/* An integer in [min, max]. json-c saturates what int64 cannot hold to
 * INT64_MIN/MAX, so those two are never accepted. */
static int get_int(struct json_object *o, const char *k, int64_t min, int64_t max, int64_t *v,
		   char *why, size_t len)
{
	struct json_object *f;

	if (!json_object_object_get_ex(o, k, &f) || !f)
		REFUSE("'%s' missing", k);
	if (!json_object_is_type(f, json_type_int))
		REFUSE("'%s' must be an integer", k);
	*v = json_object_get_int64(f);
	if (*v == INT64_MIN || *v == INT64_MAX || *v < min || *v > max)
		REFUSE("'%s' out of range [%lld, %lld]", k, (long long)min, (long long)max);
	return 0;
}

/* The same, where null (or absence) means unknown: *v = unknown then. */
static int get_int_or_null(struct json_object *o, const char *k, int64_t min, int64_t max,
			   int64_t unknown, int64_t *v, char *why, size_t len)
{
	struct json_object *f;

	if (!json_object_object_get_ex(o, k, &f) || !f) {
		*v = unknown;
		return 0;
	}
	return get_int(o, k, min, max, v, why, len);
}

/* A string or null into dst (size n): too long, an embedded NUL or a
 * control character (a forged line in a report) refuses the record. */
static int get_str(struct json_object *o, const char *k, char *dst, size_t n, char *why, size_t len)
{
	struct json_object *f;
	const char *s;
	int l;

	dst[0] = '\0';
	if (!json_object_object_get_ex(o, k, &f) || !f)
		return 0;
	if (!json_object_is_type(f, json_type_string))
		REFUSE("'%s' must be a string or null", k);
	s = json_object_get_string(f);
	l = json_object_get_string_len(f);
	if (l < 0 || (size_t)l >= n)
		REFUSE("'%s' longer than %zu bytes", k, n - 1);
	for (int i = 0; i < l; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			REFUSE("'%s' holds a control character", k);
	memcpy(dst, s, l + 1);
	return 0;
}

static int get_kind(struct json_object *o, struct hv_mig_record *r, char *why, size_t len)
{
	struct json_object *f;
	const char *s;

	if (json_object_object_get_ex(o, "type", &f) &&
	    (!json_object_is_type(f, json_type_string) ||
	     strcmp(json_object_get_string(f), "event")))
		REFUSE("'type' is not \"event\"");
	if (!json_object_object_get_ex(o, "event", &f) || !json_object_is_type(f, json_type_string))
		REFUSE("'event' missing or not a string");
	s = json_object_get_string(f);
	if (!strcmp(s, "departure"))
		r->kind = HV_MIG_DEPARTURE;
	else if (!strcmp(s, "arrival"))
		r->kind = HV_MIG_ARRIVAL;
	else
		REFUSE("'event' is neither \"departure\" nor \"arrival\"");
	return 0;
}

static int get_who(struct json_object *o, struct hv_mig_record *r, char *why, size_t len)
{
	int64_t v;

	if (get_str(o, "host", r->host, sizeof(r->host), why, len) ||
	    get_str(o, "vm_name", r->name, sizeof(r->name), why, len) ||
	    get_str(o, "vm_uuid", r->uuid, sizeof(r->uuid), why, len))
		return -EINVAL;
	if (get_int(o, "pid", 1, INT32_MAX, &v, why, len))
		return -EINVAL;
	r->pid = (int32_t)v;
	if (get_int(o, "vm", 0, INT64_MAX, &v, why, len))
		return -EINVAL;
	r->vm = (uint64_t)v;
	return 0;
}

static int get_pvti(struct json_object *o, struct hv_mig_record *r, char *why, size_t len)
{
	int64_t mul, shift;

	if (get_int_or_null(o, "pvti_mul", 1, UINT32_MAX, 0, &mul, why, len) ||
	    get_int_or_null(o, "pvti_shift", -32, 32, INT64_MIN, &shift, why, len))
		return -EINVAL;
	if (!mul != (shift == INT64_MIN))
		REFUSE("'pvti_mul' and 'pvti_shift' must be both known or both null");
	r->pvti_mul = (uint32_t)mul;
	r->pvti_shift = mul ? (int32_t)shift : 0;
	return 0;
}

static int get_clocks(struct json_object *o, struct hv_mig_record *r, char *why, size_t len)
{
	int64_t khz;

	if (get_int(o, "realtime_ns", 0, INT64_MAX, &r->realtime_ns, why, len) ||
	    get_int(o, "tai_ns", 0, INT64_MAX, &r->tai_ns, why, len) ||
	    get_int(o, "kvmclock_ns", 0, INT64_MAX, &r->kvmclock_ns, why, len) ||
	    get_int(o, "tsc_khz", 1, UINT32_MAX, &khz, why, len) || get_pvti(o, r, why, len) ||
	    get_int_or_null(o, "clock_error_ns", 0, INT64_MAX, -1, &r->clock_error_ns, why, len))
		return -EINVAL;
	r->tsc_khz = (uint32_t)khz;
	if (r->kind == HV_MIG_DEPARTURE)
		return get_int(o, "saved_by_ns", 0, INT64_MAX, &r->saved_by_ns, why, len);
	return get_int(o, "written_ns", 0, INT64_MAX, &r->written_ns, why, len);
}

static int get_vcpu(struct json_object *v, struct hv_mig_record *r, size_t i, char *why, size_t len)
{
	char at[64];
	int64_t id;

	if (!json_object_is_type(v, json_type_object))
		REFUSE("vcpus[%zu] is not an object", i);
	if (get_int(v, "vcpu", 0, UINT32_MAX, &id, at, sizeof(at)) ||
	    get_int(v, "tsc", 0, INT64_MAX, &r->vcpu[i].tsc, at, sizeof(at)))
		REFUSE("vcpus[%zu]: %s", i, at);
	if (i && (uint32_t)id <= r->vcpu[i - 1].id)
		REFUSE("vcpus[%zu]: vCPU %lld %s", i, (long long)id,
		       (uint32_t)id == r->vcpu[i - 1].id ? "repeated" : "not sorted by id");
	r->vcpu[i].id = (uint32_t)id;
	return 0;
}

static int get_vcpus(struct json_object *o, struct hv_mig_record *r, char *why, size_t len)
{
	struct json_object *a;
	size_t n;

	if (!json_object_object_get_ex(o, "vcpus", &a) || !json_object_is_type(a, json_type_array))
		REFUSE("'vcpus' missing or not an array");
	n = json_object_array_length(a);
	if (!n || n > HV_MAX_VCPUS)
		REFUSE("'vcpus' holds %zu vCPUs (1 to %d)", n, HV_MAX_VCPUS);
	for (size_t i = 0; i < n; i++)
		if (get_vcpu(json_object_array_get_idx(a, i), r, i, why, len))
			return -EINVAL;
	r->nr_vcpus = (uint32_t)n;
	return 0;
}

int hv_mig_record_from_json(struct json_object *o, struct hv_mig_record *r, char *why, size_t len)
{
	const char *insane;

	memset(r, 0, offsetof(struct hv_mig_record, vcpu));
	if (!json_object_is_type(o, json_type_object))
		REFUSE("not a JSON object");
	if (get_kind(o, r, why, len) || get_who(o, r, why, len) || get_clocks(o, r, why, len) ||
	    get_vcpus(o, r, why, len))
		return -EINVAL;
	insane = hv_mig_record_insane(r);
	if (insane)
		REFUSE("%s", insane);
	return 0;
}
