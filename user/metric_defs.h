/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Every series hvguard exports, by id: its name, type and HELP text live
 * once, in metric_defs.c, and every registration and update names the id
 * (hv_metric_add() and friends, metrics.h). The labels stay with the code
 * that counts.
 */
#ifndef HVGUARD_USER_METRIC_DEFS_H
#define HVGUARD_USER_METRIC_DEFS_H

enum hv_metric_type { HV_COUNTER, HV_GAUGE, HV_HISTOGRAM };

enum hv_metric_id {
	/* The daemon (metrics.c, run.c, reload.c, exec.c, bpfstats.c). */
	HV_METRIC_BUILD_INFO,
	HV_METRIC_VIOLATIONS,
	HV_METRIC_CORRECTIONS,
	HV_METRIC_EVENTS_LOST,
	HV_METRIC_VMS,
	HV_METRIC_FAMILY_ATTACHED,
	HV_METRIC_RULES_RELOADS,
	HV_METRIC_EXEC,
	HV_METRIC_BPF_PROGRAM_RUNS,
	HV_METRIC_BPF_PROGRAM_RUN_SECONDS,
	/* The exporter (http.c). */
	HV_METRIC_HTTP_REFUSED,
	HV_METRIC_HTTP_LOG_SUPPRESSED,
	HV_METRIC_HTTP_CONNECTIONS,
	HV_METRIC_HTTP_ACCEPT_QUEUE,
	/* The clock family (clock.c). */
	HV_METRIC_QUOTA_REFUSED,
	HV_METRIC_MAP_FULL,
	HV_METRIC_VMS_RECLAIMED,
	HV_METRIC_VMS_RECLAIM_FAILED,
	HV_METRIC_ALERTS_MISSED,
	HV_METRIC_GUEST_TSC_WRITES_SUPPRESSED,
	HV_METRIC_MIGRATION_ARRIVALS_DEMOTED,
	HV_METRIC_KVM_CLOCK_IOCTLS,
	HV_METRIC_PVCLOCK_UPDATES,
	HV_METRIC_TSC_OFFSET_WRITES,
	HV_METRIC_PROC_READ_TIMEOUTS,
	/* Migrations (clock_migration.c). */
	HV_METRIC_MIGRATION_CLOCK_WARP,
	HV_METRIC_MIGRATIONS,
	HV_METRIC_MIGRATION_UNCHECKED,
	HV_METRIC_MIGRATION_DEPARTURES_DROPPED,
	/* Corrections (correct.c). */
	HV_METRIC_WATCHDOG_RELEASES,
	/* The Xen family (xen.c, xen_events.c). */
	HV_METRIC_XEN_GRANT_OPS,
	HV_METRIC_XEN_UNCHECKED,
	HV_METRIC_XEN_ENFORCEMENTS,
	HV_METRIC_COUNT
};

struct hv_metric_def {
	const char *name;
	enum hv_metric_type type;
	const char *help;
	const double *le; /* a histogram's bucket bounds, ascending */
	int n_le;
};

extern const struct hv_metric_def hv_metric_defs[HV_METRIC_COUNT];

#endif
