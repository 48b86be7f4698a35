// SPDX-License-Identifier: GPL-2.0
/*
 * The Xen family, userspace side: its interface to the daemon (load, poll,
 * summary, metrics, unload). Which processes are backends: xen_backend.c;
 * the configuration, deny mechanism and hook tier: xen_config.c; the ring's
 * records: xen_events.c; grant leaks: xen_leaks.c.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hvguard/xen.h" /* before the skeleton, which uses its types */
#include "xen.skel.h"
#include "metrics.h"
#include "rules.h"
#include "xen_user.h"

struct xen_bpf *hv_xen_skel;
struct hv_xen_state hv_xen_st;

static bool xen_present(struct hv_ctx *ctx, char *why, size_t len)
{
	(void)ctx;
	if (!access("/dev/xen/privcmd", F_OK) || !access("/proc/xen", F_OK))
		return true;
	snprintf(why, len, "no Xen on this host (neither /dev/xen/privcmd nor /proc/xen)");
	return false;
}

static int xen_load(struct hv_ctx *ctx)
{
	int err;

	memset(&hv_xen_st, 0, sizeof(hv_xen_st));
	hv_xen_st.want_deny = hv_xen_rules_want_deny(ctx->rules);
	err = hv_xen_load_best_tier(ctx);
	if (err)
		return err;
	err = hv_xen_configure_matches(ctx);
	if (!err)
		err =
		    hv_ring_add(ctx, bpf_map__fd(hv_xen_skel->maps.xen_events), hv_xen_ring_event);
	if (err) {
		hv_err("cannot set up the Xen checks: %s", strerror(-err));
		xen_bpf__destroy(hv_xen_skel);
		hv_xen_skel = NULL;
		return err;
	}
	hv_xen_scan_processes(ctx);
	hv_xen_st.next_leak_scan = hv_xen_st.next_resolve = (hv_now_ns(CLOCK_MONOTONIC) / 1e9) + 1;
	return 0;
}

/* The BPF side's counters (its .bss xen_stats[]), 0 while not loaded. */
static uint64_t xen_stat(enum hv_xen_stat which)
{
	return hv_xen_skel ? hv_xen_skel->bss->xen_stats[which] : 0;
}

static const enum hv_xen_stat unchecked_stats[HV_XEN_UNCHECKED_COUNT] = {
    [HV_XEN_UNCHECKED_UNREADABLE] = HV_XEN_STAT_UNCHECKED_UNREADABLE,
    [HV_XEN_UNCHECKED_TRUNCATED] = HV_XEN_STAT_UNCHECKED_TRUNCATED,
};

/* {"unreadable": N, "truncated": N}: calls a rule could not fully check. */
static struct json_object *unchecked_json(void)
{
	struct json_object *o = json_object_new_object();

	for (int why = HV_XEN_UNCHECKED_UNREADABLE; why < HV_XEN_UNCHECKED_COUNT; why++)
		hv_json_add_uint(o, hv_xen_unchecked_name(why), xen_stat(unchecked_stats[why]));
	return o;
}

static void export_unchecked(struct hv_ctx *ctx)
{
	char labels[64];

	for (int why = HV_XEN_UNCHECKED_UNREADABLE; why < HV_XEN_UNCHECKED_COUNT; why++) {
		snprintf(labels, sizeof(labels), "cause=\"%s\"", hv_xen_unchecked_name(why));
		hv_metric_set(ctx->metrics, HV_METRIC_XEN_UNCHECKED, labels,
			      (double)xen_stat(unchecked_stats[why]));
	}
	/* Counted by the BPF side as it acts: none lost with the ring full. */
	hv_metric_set(ctx->metrics, HV_METRIC_XEN_ENFORCEMENTS, "action=\"kill\"",
		      (double)xen_stat(HV_XEN_STAT_KILLS));
	hv_metric_set(ctx->metrics, HV_METRIC_XEN_ENFORCEMENTS, "action=\"deny\"",
		      (double)xen_stat(HV_XEN_STAT_DENIALS));
}

/* Calls of backends hvguard had no room to follow to their return: their
 * violations went out at entry, outcome unknown. Said when it grows. */
static void report_pending_full(struct hv_ctx *ctx)
{
	static uint64_t said;
	uint64_t n = xen_stat(HV_XEN_STAT_PENDING_FULL);

	hv_metric_set(ctx->metrics, HV_METRIC_MAP_FULL, "map=\"xen_pending\"", (double)n);
	if (n == said)
		return;
	hv_warn("%llu backend call(s) not followed to their return: xen_pending is full (more "
		"calls in flight than it holds); their violations were reported at the call, "
		"with ret null (%llu in all)",
		(unsigned long long)(n - said), (unsigned long long)n);
	said = n;
}

static void xen_poll(struct hv_ctx *ctx)
{
	double now = (hv_now_ns(CLOCK_MONOTONIC) / 1e9);
	struct hv_xen_config *cfg;

	if (!hv_xen_skel)
		return;
	/* Grant records are submitted without a wakeup: collect them here. */
	ring_buffer__consume(ctx->rb);
	export_unchecked(ctx);
	report_pending_full(ctx);
	if (now >= hv_xen_st.next_leak_scan) {
		/* Each scan walks the whole map (two syscalls an entry): as often as
		 * the leak delay needs, at least every 10 s, at most every second. */
		double every = ctx->rules->grant_leak_after_ns / 2e9;

		hv_xen_scan_reserved_leaks(ctx);
		hv_xen_st.next_leak_scan = now + (every < 1 ? 1 : every > 10 ? 10 : every);
	}
	cfg = &hv_xen_skel->bss->xen_cfg;
	if (now >= hv_xen_st.next_resolve) {
		hv_xen_st.next_resolve = now + 5;
		if (!cfg->ioctl_fn[HV_XEN_DEV_PRIVCMD] || !cfg->ioctl_fn[HV_XEN_DEV_GNTDEV] ||
		    !cfg->ioctl_fn[HV_XEN_DEV_GNTALLOC])
			hv_xen_resolve_devices(cfg, true); /* a module loaded after us */
	}
}

static uint64_t xen_lost(struct hv_ctx *ctx)
{
	(void)ctx;
	return xen_stat(HV_XEN_STAT_LOST);
}

static void xen_summary(struct hv_ctx *ctx, struct json_object *summary)
{
	struct json_object *o = json_object_new_object(), *ops = json_object_new_object();

	(void)ctx;
	for (int op = 0; op < HV_XEN_GRANT_OP_COUNT; op++)
		hv_json_add_uint(ops, hv_xen_grant_op_name(op), hv_xen_st.grant_ops[op]);
	hv_json_add_uint(o, "backends_seen", hv_xen_st.backends_seen);
	hv_json_add_uint(o, "ioctls", xen_stat(HV_XEN_STAT_IOCTLS));
	hv_json_add_uint(o, "violations", xen_stat(HV_XEN_STAT_VIOLATIONS));
	hv_json_add_uint(o, "kills", xen_stat(HV_XEN_STAT_KILLS));
	hv_json_add_uint(o, "denials", xen_stat(HV_XEN_STAT_DENIALS));
	hv_json_add_uint(o, "deny_no_scratch", xen_stat(HV_XEN_STAT_NO_SCRATCH));
	hv_json_add_uint(o, "calls_unfollowed", xen_stat(HV_XEN_STAT_PENDING_FULL));
	json_object_object_add(o, "unchecked", unchecked_json());
	hv_json_add_uint(o, "leaks", hv_xen_st.leaks);
	json_object_object_add(o, "grant_ops", ops);
	hv_json_add_str(o, "deny", hv_xen_deny_name(hv_xen_st.deny));
	hv_json_add_str(o, "hooks", hv_xen_tier_name(hv_xen_st.tier));
	json_object_object_add(summary, "xen", o);
}

static void xen_unload(struct hv_ctx *ctx)
{
	(void)ctx;
	xen_bpf__destroy(hv_xen_skel);
	hv_xen_skel = NULL;
}

static struct bpf_object *xen_object(void)
{
	return hv_xen_skel ? hv_xen_skel->obj : NULL;
}

struct hv_family hv_xen_family = {
    .name = "xen",
    .present = xen_present,
    .load = xen_load,
    .poll = xen_poll,
    .lost = xen_lost,
    .summary = xen_summary,
    .unload = xen_unload,
    .reload = hv_xen_reload,
    .object = xen_object,
    .elf_bytes = xen_bpf__elf_bytes,
    /* Set by load to the tier attached: "fentry" (the drivers' own
     * functions) or "syscalls" (deny adds BPF LSM or fmod_ret either way). */
    .hooks = "syscalls",
};
