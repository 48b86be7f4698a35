// SPDX-License-Identifier: GPL-2.0
/* Departure and arrival records as JSON (migration_json.h). */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>

#include "migration_json.h"

static void add_str(struct json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, v && *v ? json_object_new_string(v) : NULL);
}

static void add_int(struct json_object *o, const char *k, int64_t v)
{
	json_object_object_add(o, k, json_object_new_int64(v));
}

void hv_mig_record_to_json(const struct hv_mig_record *r, struct json_object *o)
{
	struct json_object *vcpus = json_object_new_array();

	add_str(o, "host", r->host);
	add_str(o, "vm_uuid", r->uuid);
	add_int(o, "realtime_ns", r->realtime_ns);
	add_int(o, "tai_ns", r->tai_ns);
	add_int(o, "kvmclock_ns", r->kvmclock_ns);
	add_int(o, "tsc_khz", r->tsc_khz);
	json_object_object_add(o, "pvti_mul",
			       r->pvti_mul ? json_object_new_int64(r->pvti_mul) : NULL);
	json_object_object_add(o, "pvti_shift",
			       r->pvti_mul ? json_object_new_int64(r->pvti_shift) : NULL);
	json_object_object_add(o, "clock_error_ns",
			       r->clock_error_ns >= 0 ? json_object_new_int64(r->clock_error_ns)
						      : NULL);
	if (r->kind == HV_MIG_DEPARTURE)
		add_int(o, "saved_by_ns", r->saved_by_ns);
	else
		add_int(o, "written_ns", r->written_ns);
	for (uint32_t i = 0; i < r->nr_vcpus; i++) {
		struct json_object *v = json_object_new_object();

		add_int(v, "vcpu", r->vcpu[i].id);
		add_int(v, "tsc", r->vcpu[i].tsc);
		json_object_array_add(vcpus, v);
	}
	json_object_object_add(o, "vcpus", vcpus);
}

int hv_mig_record_from_json(struct json_object *o, struct hv_mig_record *r, char *why, size_t len)
{
	(void)o;
	(void)r;
	snprintf(why, len, "not implemented yet");
	return -EINVAL;
}
