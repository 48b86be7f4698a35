/* SPDX-License-Identifier: GPL-2.0 */
/* Between the clock family (clock.c) and its corrector (correct.c). */
#ifndef HVGUARD_USER_CLOCK_USER_H
#define HVGUARD_USER_CLOCK_USER_H

#include <stddef.h>

#include "hvguard.h"
#include "hvguard/clock.h"

struct clock_bpf;

int hv_correct_init(struct hv_ctx *ctx, struct clock_bpf *skel);
struct json_object;
struct hv_correction_report {
	struct json_object *json;
	char text[512];
};

/* The BPF side stopped the VMM at the offending ioctl (e->frozen): repair
 * the clock from inside it, let it go, and describe what was done in
 * report, printed with hv_correct_emit() after the alert. */
void hv_correct_frozen(struct hv_ctx *ctx, const struct hv_clock_event *e,
		       struct hv_correction_report *report);
/* The VMM was to be corrected but is traced, so BPF did not stop it:
 * report the correction refused, saying so. */
void hv_correct_refused_traced(struct hv_ctx *ctx, const struct hv_clock_event *e,
			       struct hv_correction_report *report);
/* migration-clock-warp's repair: the clocks an arriving VM must have. */
struct hv_mig_fix {
	__s64 kvmclock_offset_now, kvmclock_offset_wanted;
	int nr_vcpus;
	int vcpu_id[HV_MAX_VCPUS];
	__s64 tsc_offset_now[HV_MAX_VCPUS];
	__s64 tsc_offset_wanted[HV_MAX_VCPUS];
};
/* Like hv_correct_frozen, with the clocks wanted (fix NULL: refused). */
void hv_correct_migration(struct hv_ctx *ctx, const struct hv_clock_event *e,
			  const struct hv_mig_fix *fix, struct hv_correction_report *report);
/* Frozen at its arrival, nothing to repair: released as it is. */
void hv_correct_release(const struct hv_clock_event *e);
void hv_correct_emit(struct hv_ctx *ctx, struct hv_correction_report *report);
void hv_correct_poll(struct hv_ctx *ctx);
void hv_correct_fini(struct hv_ctx *ctx);

/* Live migration on this host (clock_migration.c). */
void hv_mig_init(struct hv_ctx *ctx, int vms_fd, int vcpus_fd, int departures_fd);
void hv_mig_vmm_seen(int pid); /* a VMM's first VM: its -name and -uuid kept */
void hv_mig_vm_gone(struct hv_ctx *ctx, __u64 key, const struct hv_clock_vm *vm,
		    uint64_t saved_by_boot, const char *comm, const char *why);
void hv_mig_arrival(struct hv_ctx *ctx, const struct hv_clock_event *e, const char *comm);
void hv_mig_summary(struct json_object *clock); /* arrivals by result */

#endif
