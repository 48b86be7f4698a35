/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Departure and arrival records as JSON: what the daemon writes (one event
 * per line; README.md's JSON table lists their fields) and what `hvguard
 * migrations` reads back from any host's log. One schema, one writer, one
 * reader.
 */
#ifndef HVGUARD_USER_MIGRATION_JSON_H
#define HVGUARD_USER_MIGRATION_JSON_H

#include "migration.h"

struct json_object;

/* Adds the record's fields to o (an "event" object the caller made). */
void hv_mig_record_to_json(const struct hv_mig_record *r, struct json_object *o);

/*
 * Reads a departure or arrival event back. Returns 0 and fills r, or
 * -EINVAL with a reason in why (any missing, mistyped or out-of-range
 * field refuses the whole record: logs are untrusted input).
 */
int hv_mig_record_from_json(struct json_object *o, struct hv_mig_record *r, char *why, size_t len);

#endif
