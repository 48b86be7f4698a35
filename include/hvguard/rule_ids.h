/* SPDX-License-Identifier: GPL-2.0 */
/* Rule numbers shared by the BPF programs and userspace. Userspace maps
 * them to their ids, severities and fields in user/rules.c (the rule table). */
#ifndef HVGUARD_RULE_IDS_H
#define HVGUARD_RULE_IDS_H

enum hv_rule_id {
	HV_RULE_KVMCLOCK_JUMP,
	HV_RULE_TSC_OFFSET_CHANGE,
	HV_RULE_TSC_KHZ_CHANGE,
	HV_RULE_VCPU_TSC_MISMATCH,
	HV_RULE_PVCLOCK_DISCONTINUITY,
	HV_RULE_FOREIGN_MAP,
	HV_RULE_FORBIDDEN_HYPERCALL,
	HV_RULE_RESOURCE_MAP,
	HV_RULE_GRANT_DOMAIN,
	HV_RULE_GRANT_LEAK,
	HV_RULE_MIGRATION_CLOCK_WARP,  /* clock family, decided in userspace */
	HV_RULE_VCPU_TSC_KHZ_MISMATCH, /* clock family */
	HV_RULE_COUNT,
};

/* New rules of either family go at the end, so that no rule's number
 * moves; which family a rule is of, the rule table says (user/rules.c). */

#endif
