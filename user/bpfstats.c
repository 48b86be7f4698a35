// SPDX-License-Identifier: GPL-2.0
/*
 * What each of hvguard's BPF programs costs, from the kernel's own
 * accounting: run count and run time per program (bpf_prog_info's
 * run_cnt/run_time_ns), exported while the exporter is on. The kernel
 * keeps that account only while someone holds a BPF_ENABLE_STATS fd, and
 * then every BPF program on the host pays two clock reads per run (the
 * kernel.bpf_stats_enabled sysctl does the same host-wide): so hvguard
 * holds it only with --metrics, and says so.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bpfstats.h"
#include "hvguard.h"
#include "metrics.h"

static int stats_fd = -1;

void hv_bpf_stats_start(struct hv_ctx *ctx)
{
	if (!ctx->opts.metrics_addr || stats_fd >= 0)
		return;
	stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	if (stats_fd < 0)
		hv_warn("per-program BPF stats unavailable (%s): hvguard_bpf_program_* series "
			"stay absent",
			strerror(errno));
	else
		hv_log(ctx, "BPF run-time stats on while the exporter runs (every BPF program "
			    "on the host pays two clock reads per run)");
}

void hv_bpf_stats_stop(void)
{
	if (stats_fd >= 0)
		close(stats_fd);
	stats_fd = -1;
}

void hv_bpf_stats_export(struct hv_ctx *ctx, struct bpf_object *obj)
{
	struct bpf_prog_info info;
	struct bpf_program *p;
	char labels[128];
	__u32 len;

	if (stats_fd < 0 || !obj)
		return;
	bpf_object__for_each_program(p, obj) {
		int fd = bpf_program__fd(p);

		if (fd < 0)
			continue; /* not loaded on this tier */
		memset(&info, 0, sizeof(info));
		len = sizeof(info);
		if (bpf_obj_get_info_by_fd(fd, &info, &len))
			continue;
		snprintf(labels, sizeof(labels), "program=\"%s\"", bpf_program__name(p));
		hv_metric_set(ctx->metrics, HV_METRIC_BPF_PROGRAM_RUNS, labels, info.run_cnt);
		hv_metric_set(ctx->metrics, HV_METRIC_BPF_PROGRAM_RUN_SECONDS, labels,
			      info.run_time_ns / 1e9);
	}
}
