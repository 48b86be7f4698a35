/* SPDX-License-Identifier: GPL-2.0 */
/* The rules file (YAML, parsed with libyaml): which rules run, how severe
 * they are, what is done about them, and which processes are Xen backends. */
#ifndef HVGUARD_USER_RULES_H
#define HVGUARD_USER_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hvguard.h"
#include "hvguard/rule_ids.h"

/* The operators' rules file (packaged as a conffile); `run` uses it when it
 * exists and no --rules is given, else the built-in rules. */
#define HV_ETC_RULES "/etc/hvguard/rules.yaml"

enum hv_family_id { HV_FAM_CLOCK, HV_FAM_XEN };

/* The rule table: one row per rule, data rather than scattered ifs. */
struct hv_rule_info {
	const char *id;
	enum hv_family_id family;
	enum hv_severity default_severity;
	int64_t default_tolerance_ns; /* -1: the rule has no tolerance */
	unsigned actions;	      /* bit mask of enum hv_action allowed */
	const char *summary;	      /* one line for --help and the README */
};

extern const struct hv_rule_info hv_rule_table[HV_RULE_COUNT];
int hv_rule_by_id(const char *id); /* -1 if unknown */

struct hv_rule {
	bool enabled;
	enum hv_severity severity;
	enum hv_action action;
	int64_t tolerance_ns;
	uint32_t max_corrections_per_min; /* rate limit of correcting writes */
};

/* A process designated "unprivileged Xen backend": every given field must
 * match (globs for strings); children inherit the designation. */
struct hv_backend_match {
	char *name;
	char *exe;    /* glob on /proc/PID/exe */
	char *cgroup; /* glob on the cgroup v2 path */
	char *comm;   /* glob on comm */
	int64_t uid;  /* -1: any */
};

#define HV_MAX_DOMIDS 64

struct hv_rules {
	struct hv_rule rule[HV_RULE_COUNT];
	struct hv_backend_match *backends;
	size_t n_backends;
	uint32_t allowed_frontends[HV_MAX_DOMIDS];
	size_t n_allowed_frontends;
	int32_t target_domain;	      /* device-model target domid, -1 when unset */
	uint64_t grant_leak_after_ns; /* reserved and never mapped for this long */
	char *source;		      /* file name, or "built-in" */
};

/* Parse a rules file. On error returns NULL and writes
 * "FILE:LINE:COL: message" into err. */
struct hv_rules *hv_rules_load(const char *path, char *err, size_t errlen);
struct hv_rules *hv_rules_parse(const char *text, size_t len, const char *name, char *err,
				size_t errlen);
struct hv_rules *hv_rules_builtin(void); /* rules/default.yaml, compiled in */
void hv_rules_free(struct hv_rules *r);

#endif
