// SPDX-License-Identifier: GPL-2.0
/*
 * Live migration's arithmetic (migration.h): whether an arrival is a
 * departure's destination, and how far its clocks are from the source's.
 * Userspace only (128-bit intermediates), shared by the daemon and the
 * join, unit-tested on its own.
 */
#include <limits.h>
#include <stddef.h>
#include <string.h>

#include "hvguard/clock_logic.h" /* hv_pvclock_scale */
#include "migration.h"

#define NS_PER_MS 1000000ll
/* Bounds a sane record stays within (a record out of them is refused). */
#define MAX_TIME_NS (1ll << 62)
#define MAX_TSC	    (1ll << 62)
#define MIN_KHZ	    1000u      /* 1 MHz */
#define MAX_KHZ	    100000000u /* 100 GHz */
#define MAX_ERROR   (3600ll * 1000000000ll)

const struct hv_mig_limits hv_mig_default_limits = {
    .window_ns = HV_MIG_WINDOW_NS,
    .spread_ns = HV_MIG_SPREAD_NS,
    .slack_ns = HV_MIG_SLACK_NS,
};

static const char *const verdict_names[] = {
    [HV_MIG_MATCH] = "match",
    [HV_MIG_NOT_KINDS] = "not a departure and an arrival",
    [HV_MIG_NOT_KHZ] = "TSC frequencies differ",
    [HV_MIG_NOT_VCPUS] = "not the same vCPUs",
    [HV_MIG_NOT_IN_TIME] = "the save would lie outside the departure's time",
    [HV_MIG_NOT_TOGETHER] = "the vCPUs' saves are too far apart",
    [HV_MIG_NOT_SANE] = "a value out of range",
    [HV_MIG_SAME_VM] = "the same VM in the same process",
    [HV_MIG_NOT_UUID] = "the VMs' uuids differ",
};

const char *hv_mig_verdict_name(enum hv_mig_verdict v)
{
	if ((unsigned)v >= sizeof(verdict_names) / sizeof(verdict_names[0]))
		return "?";
	return verdict_names[v];
}

static int64_t clamp128(__int128 v)
{
	if (v > INT64_MAX)
		return INT64_MAX;
	if (v < INT64_MIN)
		return INT64_MIN;
	return (int64_t)v;
}

/* Symmetric, so that its value always has a magnitude (hv_abs64). */
static int64_t clamp128_sym(__int128 v)
{
	return v < -INT64_MAX ? -INT64_MAX : clamp128(v);
}

int64_t hv_mig_cycles_to_ns(int64_t cycles, uint32_t khz)
{
	if (!khz)
		return 0;
	return clamp128((__int128)cycles * 1000000 / khz);
}

int64_t hv_mig_ns_to_cycles(int64_t ns, uint32_t khz)
{
	return clamp128((__int128)ns * khz / 1000000);
}

static bool time_sane(int64_t t)
{
	return t >= 0 && t < MAX_TIME_NS;
}

static const char *vcpus_insane(const struct hv_mig_record *r)
{
	if (!r->nr_vcpus || r->nr_vcpus > HV_MAX_VCPUS)
		return "no vCPU, or more than HV_MAX_VCPUS";
	for (uint32_t i = 0; i < r->nr_vcpus; i++) {
		/* A TSC of more than 2^62 ns at its rate: no origin in range. */
		if (r->vcpu[i].tsc < 0 || r->vcpu[i].tsc >= MAX_TSC ||
		    hv_mig_cycles_to_ns(r->vcpu[i].tsc, r->tsc_khz) >= MAX_TIME_NS)
			return "a vCPU's TSC is negative or beyond 2^62 (cycles or ns)";
		if (i && r->vcpu[i].id <= r->vcpu[i - 1].id)
			return "vCPUs not sorted by id, or an id repeated";
	}
	return NULL;
}

const char *hv_mig_record_insane(const struct hv_mig_record *r)
{
	if (r->kind != HV_MIG_DEPARTURE && r->kind != HV_MIG_ARRIVAL)
		return "neither a departure nor an arrival";
	if (!time_sane(r->realtime_ns) || r->kvmclock_ns < 0 || r->kvmclock_ns >= MAX_TIME_NS)
		return "realtime_ns or kvmclock_ns negative or beyond 2^62";
	if (r->tsc_khz < MIN_KHZ || r->tsc_khz > MAX_KHZ)
		return "tsc_khz outside 1 MHz..100 GHz";
	if (r->clock_error_ns < -1 || r->clock_error_ns > MAX_ERROR)
		return "clock_error_ns negative or above an hour";
	if (r->pvti_shift < -32 || r->pvti_shift > 32)
		return "pvti_shift outside -32..32";
	if (r->kind == HV_MIG_DEPARTURE && !time_sane(r->saved_by_ns))
		return "saved_by_ns negative or beyond 2^62";
	if (r->kind == HV_MIG_ARRIVAL &&
	    (!time_sane(r->written_ns) || r->written_ns > r->realtime_ns))
		return "written_ns negative or after realtime_ns";
	return vcpus_insane(r);
}

bool hv_mig_record_sane(const struct hv_mig_record *r)
{
	return !hv_mig_record_insane(r);
}

int64_t hv_mig_tsc_origin(const struct hv_mig_record *r)
{
	if (!hv_mig_record_sane(r))
		return INT64_MIN;
	return r->realtime_ns - hv_mig_cycles_to_ns(r->vcpu[0].tsc, r->tsc_khz);
}

/* The guest TSC value the destination wrote before the first run: the
 * sample taken back to the write (the TSC has run since, at khz). Exact in
 * 128 bits: a sane record's values are below 2^62, the product below 2^90. */
static __int128 tsc_written(const struct hv_mig_record *a, uint32_t i)
{
	return a->vcpu[i].tsc - (__int128)(a->realtime_ns - a->written_ns) * a->tsc_khz / 1000000;
}

static int64_t error_of(const struct hv_mig_record *r)
{
	return r->clock_error_ns > 0 ? r->clock_error_ns : 0;
}

static bool same_vcpus(const struct hv_mig_record *d, const struct hv_mig_record *a)
{
	if (d->nr_vcpus != a->nr_vcpus)
		return false;
	for (uint32_t i = 0; i < d->nr_vcpus; i++)
		if (d->vcpu[i].id != a->vcpu[i].id)
			return false;
	return true;
}

/* When the source's TSC of vCPU i read what the destination wrote. */
static int64_t save_moment(const struct hv_mig_record *d, const struct hv_mig_record *a, uint32_t i)
{
	__int128 cycles = tsc_written(a, i) - d->vcpu[i].tsc;

	return clamp128(d->realtime_ns + cycles * 1000000 / d->tsc_khz);
}

/* The arrival's guest TSC of vCPU i less where the source's would be. */
static int64_t tsc_warp(const struct hv_mig_record *d, const struct hv_mig_record *a, uint32_t i)
{
	__int128 ns = ((__int128)a->vcpu[i].tsc - d->vcpu[i].tsc) * 1000000 / a->tsc_khz;

	return clamp128_sym(ns - ((__int128)a->realtime_ns - d->realtime_ns));
}

/* How much the kvmclock of 1 s of guest TSC changed from d's PVTI to a's. */
static int64_t pvti_change(const struct hv_mig_record *d, const struct hv_mig_record *a)
{
	uint64_t second = (uint64_t)a->tsc_khz * 1000;

	return clamp128_sym((__int128)hv_pvclock_scale(second, a->pvti_mul, (__s8)a->pvti_shift) -
			    hv_pvclock_scale(second, d->pvti_mul, (__s8)d->pvti_shift));
}

/* An arrival and a departure of one VM in one process: the VM arrived and
 * left later (A->B->C seen from B), never one migration. */
static bool same_vm(const struct hv_mig_record *d, const struct hv_mig_record *a)
{
	return d->pid == a->pid && d->vm == a->vm && !strcmp(d->host, a->host);
}

static void warps(const struct hv_mig_record *d, const struct hv_mig_record *a,
		  struct hv_mig_result *r)
{
	int64_t elapsed = a->realtime_ns - d->realtime_ns;

	r->kvmclock_warp_ns = (a->kvmclock_ns - d->kvmclock_ns) - elapsed;
	r->worst_tsc_warp_ns = 0;
	for (uint32_t i = 0; i < a->nr_vcpus; i++) {
		int64_t w = tsc_warp(d, a, i);

		r->tsc_warp_ns[i] = w;
		if (hv_abs64(w) > hv_abs64(r->worst_tsc_warp_ns))
			r->worst_tsc_warp_ns = w;
	}
	r->pvti_known = d->pvti_mul && a->pvti_mul;
	r->pvti_changed_ns = r->pvti_known ? pvti_change(d, a) : 0;
	r->uncertainty_ns = error_of(d) + error_of(a);
}

/*
 * Whether t, the moment the source's TSC read what the destination wrote,
 * makes one migration: the value as saved (t by the departure's saved_by:
 * QEMU 7.2 writes it unchanged) or advanced to the write (t at written_ns:
 * the precise way), nothing in between; within the window of the write,
 * itself within the window of the departure.
 */
static bool in_time(const struct hv_mig_record *d, const struct hv_mig_record *a,
		    const struct hv_mig_limits *lim, int64_t slack, int64_t t)
{
	if (t > a->written_ns + slack || t < a->written_ns - lim->window_ns - slack)
		return false;
	if (a->written_ns > d->saved_by_ns + lim->window_ns + slack)
		return false;
	return t <= d->saved_by_ns + slack || t >= a->written_ns - slack;
}

enum hv_mig_verdict hv_mig_match(const struct hv_mig_record *d, const struct hv_mig_record *a,
				 const struct hv_mig_limits *lim, struct hv_mig_result *r)
{
	int64_t slack, lo = INT64_MAX, hi = INT64_MIN;

	if (d->kind != HV_MIG_DEPARTURE || a->kind != HV_MIG_ARRIVAL)
		return HV_MIG_NOT_KINDS;
	if (!hv_mig_record_sane(d) || !hv_mig_record_sane(a))
		return HV_MIG_NOT_SANE;
	if (d->tsc_khz != a->tsc_khz)
		return HV_MIG_NOT_KHZ;
	if (!same_vcpus(d, a))
		return HV_MIG_NOT_VCPUS;
	if (same_vm(d, a))
		return HV_MIG_SAME_VM;
	/* The uuid goes with the VM through a migration (libvirt, QEMU's
	 * -uuid): two known and different ones are two VMs. */
	if (d->uuid[0] && a->uuid[0] && strcmp(d->uuid, a->uuid))
		return HV_MIG_NOT_UUID;
	slack = lim->slack_ns + error_of(d) + error_of(a);
	for (uint32_t i = 0; i < a->nr_vcpus; i++) {
		int64_t t = save_moment(d, a, i);

		if (!in_time(d, a, lim, slack, t))
			return HV_MIG_NOT_IN_TIME;
		lo = t < lo ? t : lo;
		hi = t > hi ? t : hi;
	}
	if (hi - lo > lim->spread_ns)
		return HV_MIG_NOT_TOGETHER;
	/* Advanced to the write, the values hide the save: saved_by bounds it. */
	r->saved_ns = lo < d->saved_by_ns ? lo : d->saved_by_ns;
	r->downtime_ns = a->realtime_ns - r->saved_ns;
	warps(d, a, r);
	return HV_MIG_MATCH;
}
