// SPDX-License-Identifier: GPL-2.0
/*
 * The name, type and HELP text of every series hvguard exports
 * (metric_defs.h). Names and HELP texts are an interface: dashboards,
 * alert rules (rules/prometheus-alerts.yaml) and the metrics stage's tests
 * read them.
 */
#include "metric_defs.h"

/* The warp of matched migrations, in seconds: a microsecond to minutes. */
static const double warp_le[] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1, 10, 100};

#define COUNTER(id, n, h) [id] = {.name = (n), .type = HV_COUNTER, .help = (h)}
#define GAUGE(id, n, h)	  [id] = {.name = (n), .type = HV_GAUGE, .help = (h)}

const struct hv_metric_def hv_metric_defs[HV_METRIC_COUNT] = {
    GAUGE(HV_METRIC_BUILD_INFO, "hvguard_build_info", "hvguard's version; always 1."),
    COUNTER(HV_METRIC_VIOLATIONS, "hvguard_violations_total",
	    "Rule violations seen, by rule and by the severity the rule had when it fired."),
    COUNTER(HV_METRIC_CORRECTIONS, "hvguard_corrections_total",
	    "Correcting writes, by rule and result."),
    COUNTER(HV_METRIC_EVENTS_LOST, "hvguard_events_lost_total",
	    "Events the BPF programs could not queue (ring buffer full)."),
    GAUGE(HV_METRIC_VMS, "hvguard_vms", "KVM VMs hvguard tracks now."),
    GAUGE(HV_METRIC_FAMILY_ATTACHED, "hvguard_family_attached",
	  "1 for each watcher family attached, with the hook tier it runs on; "
	  "0 for a family off on this host."),
    COUNTER(HV_METRIC_RULES_RELOADS, "hvguard_rules_reloads_total",
	    "Rules reloads on SIGHUP: ok (in force) or failed (old rules kept)."),
    COUNTER(HV_METRIC_EXEC, "hvguard_exec_total",
	    "--exec hook runs by outcome: ran (exit 0), dropped (--exec-max were "
	    "running), failed, timeout (killed)."),
    COUNTER(HV_METRIC_BPF_PROGRAM_RUNS, "hvguard_bpf_program_runs_total",
	    "Runs of each of hvguard's BPF programs (kernel BPF stats, on while "
	    "the exporter runs)."),
    COUNTER(HV_METRIC_BPF_PROGRAM_RUN_SECONDS, "hvguard_bpf_program_run_seconds_total",
	    "Time spent in each of hvguard's BPF programs (kernel BPF stats)."),

    COUNTER(HV_METRIC_HTTP_REFUSED, "hvguard_http_connections_refused_total",
	    "Connections the exporter closed at once: over its total or per-address limit."),
    COUNTER(HV_METRIC_HTTP_LOG_SUPPRESSED, "hvguard_http_log_suppressed_total",
	    "Exporter log lines dropped by its rate limit."),
    GAUGE(HV_METRIC_HTTP_CONNECTIONS, "hvguard_http_connections",
	  "Connections the exporter holds open now."),
    GAUGE(HV_METRIC_HTTP_ACCEPT_QUEUE, "hvguard_http_accept_queue",
	  "Connections waiting in the kernel's accept queue (the total limit was reached)."),

    COUNTER(HV_METRIC_QUOTA_REFUSED, "hvguard_quota_refused_total",
	    "Events of VMs left untracked because their VMM or user used up a "
	    "quota of the VM table."),
    COUNTER(HV_METRIC_MAP_FULL, "hvguard_map_full_total",
	    "Inserts refused because a BPF map was full: what was not tracked."),
    COUNTER(HV_METRIC_VMS_RECLAIMED, "hvguard_vms_reclaimed_total",
	    "VMs destroyed while their VMM lived on, whose state and quota "
	    "hvguard took back."),
    COUNTER(HV_METRIC_VMS_RECLAIM_FAILED, "hvguard_vms_reclaim_failed_total",
	    "Passes that could not look for destroyed VMs (their state stays "
	    "until their VMM exits)."),
    COUNTER(HV_METRIC_ALERTS_MISSED, "hvguard_alerts_missed_total",
	    "Violations decided in the kernel whose alert found no room in the "
	    "alert ring: not reported, not corrected."),
    COUNTER(HV_METRIC_GUEST_TSC_WRITES_SUPPRESSED, "hvguard_guest_tsc_writes_suppressed_total",
	    "Guest TSC writes counted in a per-VM summary instead of a record of "
	    "their own (a guest writing its TSC faster than the per-VM burst)."),
    COUNTER(HV_METRIC_MIGRATION_ARRIVALS_DEMOTED, "hvguard_migration_arrivals_demoted_total",
	    "Arrivals of non-root VMMs past 8 a second, sent on the information ring "
	    "instead of the alert ring."),
    COUNTER(HV_METRIC_KVM_CLOCK_IOCTLS, "hvguard_kvm_clock_ioctls_total",
	    "KVM ioctls inspected at the call: KVM_CREATE_VM, KVM_CREATE_VCPU, "
	    "KVM_GET_CLOCK, KVM_SET_CLOCK and KVM_SET_TSC_KHZ on the syscalls tier, "
	    "KVM_GET_CLOCK and KVM_SET_CLOCK on fentry, none on kvm-tracepoints."),
    COUNTER(HV_METRIC_PVCLOCK_UPDATES, "hvguard_pvclock_updates_total",
	    "PVTI updates KVM published that were checked."),
    COUNTER(HV_METRIC_TSC_OFFSET_WRITES, "hvguard_tsc_offset_writes_total",
	    "TSC offset writes seen."),
    COUNTER(HV_METRIC_PROC_READ_TIMEOUTS, "hvguard_proc_read_timeouts_total",
	    "Reads of a VMM's /proc/PID/cmdline (its VM name) that did not answer "
	    "within the deadline: its records say vm_name unknown."),

    [HV_METRIC_MIGRATION_CLOCK_WARP] =
	{
	    .name = "hvguard_migration_clock_warp_seconds",
	    .type = HV_HISTOGRAM,
	    .help = "The larger of a matched migration's kvmclock warp and worst TSC warp, in "
		    "seconds (where the guest's clocks are from where the source's would be).",
	    .le = warp_le,
	    .n_le = sizeof(warp_le) / sizeof(warp_le[0]),
	},
    COUNTER(HV_METRIC_MIGRATIONS, "hvguard_migrations_total",
	    "Arrivals of VMs on this host, by what their clocks' check found."),
    COUNTER(HV_METRIC_MIGRATION_UNCHECKED, "hvguard_migration_unchecked_total",
	    "Departures or arrivals whose clocks could not be checked, by reason."),
    COUNTER(HV_METRIC_MIGRATION_DEPARTURES_DROPPED, "hvguard_migration_departures_dropped_total",
	    "Departures forgotten before the window ended: the table was full."),

    COUNTER(HV_METRIC_WATCHDOG_RELEASES, "hvguard_watchdog_releases_total",
	    "Frozen VMMs the watchdog let go because the daemon was late."),

    COUNTER(HV_METRIC_XEN_GRANT_OPS, "hvguard_xen_grant_ops_total",
	    "Grant lifecycle steps of designated Xen backends"),
    COUNTER(HV_METRIC_XEN_UNCHECKED, "hvguard_xen_unchecked_total",
	    "Xen device calls of backends a rule could not fully check, by cause"),
    COUNTER(HV_METRIC_XEN_ENFORCEMENTS, "hvguard_xen_enforcements_total",
	    "Calls of designated Xen backends hvguard stopped, by how: kill (the "
	    "process was killed), deny (the call was refused)"),
};
