/* SPDX-License-Identifier: GPL-2.0 */
/*
 * --log journald: every alert, correction, warning and informational line
 * is one journal entry (sd_journal_sendv), with a PRIORITY from what it is
 * and HVGUARD_* fields to select on (journalctl HVGUARD_RULE=kvmclock-jump).
 */
#ifndef HVGUARD_USER_JOURNAL_H
#define HVGUARD_USER_JOURNAL_H

#include "hvguard.h"

extern bool hv_journal_on; /* set once --log journald is in force */

/* syslog(3) priorities: critical LOG_CRIT, warning LOG_WARNING, info LOG_INFO. */
int hv_journal_priority(enum hv_severity s);
/* Each returns 0, or a negative errno when the journal took nothing (the
 * caller then prints the line instead, so nothing is lost). */
int hv_journal_alert(const struct hv_alert *a, const char *text, const char *json);
/* type: "correction", "warning", "error", "info", ...; obj (may be NULL)
 * adds HVGUARD_JSON and the HVGUARD_RULE/PID/VM fields it has. */
int hv_journal_line(int priority, const char *type, const char *text, struct json_object *obj);

#endif
