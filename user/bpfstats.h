/* SPDX-License-Identifier: GPL-2.0 */
/* Per-program run counts and run time from the kernel's BPF stats. */
#ifndef HVGUARD_USER_BPFSTATS_H
#define HVGUARD_USER_BPFSTATS_H

struct hv_ctx;
struct bpf_object;

/* With --metrics: turn the kernel's BPF run-time stats on (said). */
void hv_bpf_stats_start(struct hv_ctx *ctx);
void hv_bpf_stats_stop(void);
/* The series of obj's loaded programs (a family's poll). */
void hv_bpf_stats_export(struct hv_ctx *ctx, struct bpf_object *obj);

#endif
