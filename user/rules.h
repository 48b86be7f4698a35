/* SPDX-License-Identifier: GPL-2.0 */
/* The rules file (YAML, parsed with libyaml): which rules run, how severe
 * they are, what is done about them, and which processes are Xen backends. */
#ifndef HVGUARD_USER_RULES_H
#define HVGUARD_USER_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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

/* Every rule of one family, by its row in the table: a rule is appended
 * wherever its number falls, never inserted into a family's range. */
#define for_each_rule_of(i, fam)                                                                   \
	for (int i = 0; i < HV_RULE_COUNT; i++)                                                    \
		if (hv_rule_table[i].family != (fam)) {                                            \
		} else

/* The rules file's words for a severity and an action ("critical",
 * "correct"), which alerts and the journal print as they are. */
const char *hv_severity_name(enum hv_severity s);
const char *hv_action_name(enum hv_action a);

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

/* Limits on a rules file, so hostile input is refused early and cheaply
 * (README "Rules" lists them). A real file is a few KiB, 4 levels deep. */
#define HV_RULES_MAX_BYTES  (1 << 20) /* file size, checked before parsing */
#define HV_RULES_MAX_DEPTH  16	      /* nested lists and mappings */
#define HV_RULES_MAX_SCALAR 4096      /* bytes in one value or key */
#define HV_RULES_MAX_KEYS   64	      /* keys in one mapping */
#define HV_RULES_MAX_ITEMS  1024      /* items in any one list */
#define HV_RULES_MAX_NODES  65536     /* values in the whole file */
#define HV_MAX_BACKENDS	    256	      /* xen.backends (the kernel's match maps) */
#define HV_MAX_DOMIDS	    64	      /* xen.allowed_frontends */

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

/* Parse a rules file (from a file, or from memory: name is what errors call
 * it). Duplicate keys, a second document, anchors and aliases, and anything
 * past the limits above are errors. On error returns NULL and writes
 * "FILE:LINE:COL: message" into err. */
struct hv_rules *hv_rules_load(const char *path, char *err, size_t errlen);
struct hv_rules *hv_rules_parse(const char *text, size_t len, const char *name, char *err,
				size_t errlen);
struct hv_rules *hv_rules_builtin(void); /* rules/default.yaml, compiled in */
void hv_rules_free(struct hv_rules *r);

/* Writes r as a rules file that parses back to the same rules (every field,
 * strings double-quoted and escaped). Returns 0, or -1 if writing failed. */
int hv_rules_write(const struct hv_rules *r, FILE *f);

#endif
