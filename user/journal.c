// SPDX-License-Identifier: GPL-2.0
/*
 * Journal entries through libsystemd (sd_journal_sendv): the native
 * protocol, so values may hold any byte and each field is indexed.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <syslog.h>
/* No CODE_FILE/CODE_LINE of this file in every entry. */
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#include "journal.h"
#include "rules.h"

bool hv_journal_on;

#define MAX_FIELDS 16

struct entry {
	struct iovec iov[MAX_FIELDS];
	char *mem[MAX_FIELDS];
	int n;
};

static void field(struct entry *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void field(struct entry *e, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int len;

	if (e->n >= MAX_FIELDS)
		return;
	va_start(ap, fmt);
	len = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (len < 0)
		return;
	e->mem[e->n] = s;
	e->iov[e->n].iov_base = s;
	e->iov[e->n].iov_len = len;
	e->n++;
}

static int send_entry(struct entry *e)
{
	int err = sd_journal_sendv(e->iov, e->n);

	for (int i = 0; i < e->n; i++)
		free(e->mem[i]);
	return err;
}

int hv_journal_priority(enum hv_severity s)
{
	switch (s) {
	case HV_SEV_CRITICAL:
		return LOG_CRIT;
	case HV_SEV_WARNING:
		return LOG_WARNING;
	default:
		return LOG_INFO;
	}
}

int hv_journal_alert(const struct hv_alert *a, const char *text, const char *json)
{
	struct entry e = {};

	field(&e, "MESSAGE=%s", text);
	field(&e, "PRIORITY=%d", hv_journal_priority(a->severity));
	field(&e, "SYSLOG_IDENTIFIER=hvguard");
	field(&e, "HVGUARD_TYPE=alert");
	field(&e, "HVGUARD_RULE=%s", a->rule);
	field(&e, "HVGUARD_SEVERITY=%s", hv_severity_name(a->severity));
	field(&e, "HVGUARD_ACTION=%s", hv_action_name(a->action));
	field(&e, "HVGUARD_PID=%d", a->pid);
	if (a->comm)
		field(&e, "HVGUARD_COMM=%s", a->comm);
	if (a->vm >= 0)
		field(&e, "HVGUARD_VM=%lld", a->vm);
	if (a->vm_name)
		field(&e, "HVGUARD_VM_NAME=%s", a->vm_name);
	if (a->vcpu >= 0)
		field(&e, "HVGUARD_VCPU=%d", a->vcpu);
	field(&e, "HVGUARD_JSON=%s", json);
	return send_entry(&e);
}

/* The fields a correction shares with its alert, when obj has them. */
static void object_fields(struct entry *e, struct json_object *obj)
{
	static const char *const keys[][2] = {
	    {"rule", "HVGUARD_RULE"},	    {"pid", "HVGUARD_PID"},	  {"vm", "HVGUARD_VM"},
	    {"vm_name", "HVGUARD_VM_NAME"}, {"result", "HVGUARD_RESULT"},
	};
	struct json_object *v;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (json_object_object_get_ex(obj, keys[i][0], &v) && v)
			field(e, "%s=%s", keys[i][1], json_object_get_string(v));
	field(e, "HVGUARD_JSON=%s", json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN));
}

int hv_journal_line(int priority, const char *type, const char *text, struct json_object *obj)
{
	struct entry e = {};

	field(&e, "MESSAGE=%s", text);
	field(&e, "PRIORITY=%d", priority);
	field(&e, "SYSLOG_IDENTIFIER=hvguard");
	field(&e, "HVGUARD_TYPE=%s", type);
	if (obj)
		object_fields(&e, obj);
	return send_entry(&e);
}
