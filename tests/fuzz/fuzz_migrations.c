// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the departure/arrival record reader (`hvguard
 * migrations` reads untrusted logs): one line in, as `hvguard migrations`
 * parses it, then hv_mig_record_from_json(). Beyond "no crash, no leak, no
 * undefined behaviour" it checks what the reader promises: a refusal says
 * why; an accepted record is sane, writes back (hv_mig_record_to_json) as
 * a record that reads the same, and goes through the arithmetic.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "migration.h"
#include "migration_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct hv_mig_record rec, again;

/* The envelope hvguard run writes around a record's fields. */
static struct json_object *event_of(const struct hv_mig_record *r)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "type", json_object_new_string("event"));
	json_object_object_add(
	    o, "event",
	    json_object_new_string(r->kind == HV_MIG_DEPARTURE ? "departure" : "arrival"));
	json_object_object_add(o, "pid", json_object_new_int(r->pid));
	json_object_object_add(o, "vm", json_object_new_int64((int64_t)r->vm));
	json_object_object_add(o, "vm_name", r->name[0] ? json_object_new_string(r->name) : NULL);
	hv_mig_record_to_json(r, o);
	return o;
}

static void check_round_trip(const struct hv_mig_record *r)
{
	struct json_object *o = event_of(r);
	char why[160] = "";
	size_t n = offsetof(struct hv_mig_record, vcpu);

	memset(&again, 0, sizeof(again));
	if (hv_mig_record_from_json(o, &again, why, sizeof(why))) {
		fprintf(stderr, "an accepted record does not read back: %s\n%s\n", why,
			json_object_to_json_string(o));
		abort();
	}
	if (memcmp(r, &again, n) || again.nr_vcpus != r->nr_vcpus ||
	    memcmp(r->vcpu, again.vcpu, r->nr_vcpus * sizeof(r->vcpu[0]))) {
		fprintf(stderr, "a record reads back different\n");
		abort();
	}
	json_object_put(o);
}

/* The arithmetic on it: against itself turned into the other kind. */
static void check_arithmetic(const struct hv_mig_record *r)
{
	static struct hv_mig_result res;
	struct hv_mig_record *other = &again;

	(void)hv_mig_tsc_origin(r);
	*other = *r;
	other->kind = r->kind == HV_MIG_DEPARTURE ? HV_MIG_ARRIVAL : HV_MIG_DEPARTURE;
	other->pid = r->pid == 1 ? 2 : 1;
	other->written_ns = other->realtime_ns;
	other->saved_by_ns = other->realtime_ns;
	if (r->kind == HV_MIG_DEPARTURE)
		(void)hv_mig_match(r, other, &hv_mig_default_limits, &res);
	else
		(void)hv_mig_match(other, r, &hv_mig_default_limits, &res);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_tokener *tok = json_tokener_new_ex(16);
	struct json_object *o;
	char why[160] = "";

	if (!tok || size > INT32_MAX)
		abort();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, (const char *)data, (int)size);
	json_tokener_free(tok);
	if (!o)
		return 0;
	memset(&rec, 0, sizeof(rec));
	if (hv_mig_record_from_json(o, &rec, why, sizeof(why))) {
		if (!why[0]) {
			fprintf(stderr, "a refusal without a reason\n");
			abort();
		}
	} else {
		if (!hv_mig_record_sane(&rec)) {
			fprintf(stderr, "an accepted record is not sane\n");
			abort();
		}
		check_round_trip(&rec);
		check_arithmetic(&rec);
	}
	json_object_put(o);
	return 0;
}
