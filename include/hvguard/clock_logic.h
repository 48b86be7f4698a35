/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The clock rules' decisions, as pure functions: compiled into
 * bpf/clock.bpf.c, where they run at the offending ioctl, and into
 * tests/unit/test_clock_logic.c, where they are tested. One implementation.
 * No 128-bit arithmetic: the BPF backend has none.
 */
#ifndef HVGUARD_CLOCK_LOGIC_H
#define HVGUARD_CLOCK_LOGIC_H

#include "hvguard/clock.h"

static __always_inline __s64 hv_abs64(__s64 v)
{
	return v < 0 ? -v : v;
}

/*
 * pvclock's scale: ((delta << shift or >> -shift) * mul) >> 32, with the
 * 96-bit product done in two 32-bit halves so that it stays exact.
 */
static __always_inline __u64 hv_pvclock_scale(__u64 delta, __u32 mul, __s8 shift)
{
	__u64 hi, lo;

	if (shift < 0)
		delta >>= -shift;
	else
		delta <<= shift;
	hi = delta >> 32;
	lo = delta & 0xffffffffull;
	return hi * mul + ((lo * mul) >> 32);
}

/* Signed scale, for a TSC that went backwards between two PVTIs. */
static __always_inline __s64 hv_pvclock_scale_signed(__u64 from, __u64 to, __u32 mul, __s8 shift)
{
	if (to >= from)
		return (__s64)hv_pvclock_scale(to - from, mul, shift);
	return -(__s64)hv_pvclock_scale(from - to, mul, shift);
}

/* The guest's kvmclock for a TSC reading, as the guest computes it. */
static __always_inline __u64 hv_pvclock_read(const struct hv_clock_pvti *p, __u64 tsc)
{
	return p->system_time +
	       hv_pvclock_scale_signed(p->tsc_timestamp, tsc, p->tsc_to_system_mul, p->tsc_shift);
}

/*
 * D = how far the clock the next PVTI defines is from where the old one
 * said it would be at next's TSC timestamp. 0 when nothing changed; QEMU's
 * stop/cont gives minus the pause.
 */
static __always_inline __s64 hv_pvclock_discontinuity(const struct hv_clock_pvti *old,
						      const struct hv_clock_pvti *next)
{
	__s64 old_view = (__s64)old->system_time +
			 hv_pvclock_scale_signed(old->tsc_timestamp, next->tsc_timestamp,
						 old->tsc_to_system_mul, old->tsc_shift);

	return (__s64)next->system_time - old_view;
}

/* Strict bounds only make sense while both PVTIs promise a stable TSC. */
static __always_inline bool hv_pvclock_comparable(const struct hv_clock_pvti *old,
						  const struct hv_clock_pvti *next)
{
	return (old->flags & HV_PVCLOCK_TSC_STABLE) && (next->flags & HV_PVCLOCK_TSC_STABLE);
}

/*
 * kvmclock-jump: KVM_SET_CLOCK moved kvm->arch.kvmclock_offset by jump_ns.
 * Had the VM simply kept running, the offset would not have moved at all,
 * so the change of the offset *is* the jump the guest sees. Before the VM
 * first ran here (creation, QEMU's prelaunch, an incoming migration) any
 * value is setup.
 */
static __always_inline bool hv_kvmclock_jump_violates(bool has_run, __s64 offset_before,
						      __s64 offset_after, __s64 tolerance_ns,
						      __s64 *jump_ns)
{
	*jump_ns = offset_after - offset_before;
	return has_run && hv_abs64(*jump_ns) > tolerance_ns;
}

/*
 * kvmclock-jump at KVM_SET_CLOCK's return, on the fentry tier, where the
 * vCPUs' clock updates watch the same offset (the kvm-tracepoints check):
 * one decision per change, by whoever sees it first. seen is the offset
 * the guest last ran with (seen_valid: it ran here, and its first clock
 * update gave the baseline); before and after are the VM's offset across
 * the call.
 */
enum hv_set_clock_claim {
	HV_SET_CLOCK_SETUP,	/* not run here yet: the first clock update takes it */
	HV_SET_CLOCK_UNCHANGED, /* the call left the guest's clock where it was */
	HV_SET_CLOCK_CLAIMED,	/* a vCPU's clock update already decided this change */
	HV_SET_CLOCK_DECIDE,	/* decide here, from seen to after */
};

static __always_inline enum hv_set_clock_claim hv_set_clock_claim(bool seen_valid, __s64 seen,
								  __s64 before, __s64 after)
{
	if (!seen_valid)
		return HV_SET_CLOCK_SETUP;
	if (after != seen)
		return HV_SET_CLOCK_DECIDE;
	/* The guest runs with after already: a vCPU entered between KVM's
	 * write and this return and decided; or nothing moved at all. */
	return before == after ? HV_SET_CLOCK_UNCHANGED : HV_SET_CLOCK_CLAIMED;
}

/* How long the VM was paused: from the KVM_GET_CLOCK that paused it to
 * now; -1 (null) when no pause was seen. */
static __always_inline __s64 hv_paused_ns(bool paused, __u64 pause_start_ns, __u64 now_ns)
{
	if (!paused || now_ns < pause_start_ns)
		return -1;
	return (__s64)(now_ns - pause_start_ns);
}

/*
 * tsc-offset-change: a write from the host (not the guest) that moved a
 * vCPU's TSC offset after the VM ran. Exempt: setup before the first run,
 * the guest's own TSC/TSC_ADJUST writes (decided by the caller), and a
 * reset, which QEMU performs by writing MSR_IA32_TSC = 0.
 */
static __always_inline bool hv_tsc_offset_violates(bool has_run, bool known, __s64 before,
						   __s64 after, bool is_reset)
{
	return has_run && known && before != after && !is_reset;
}

/* tsc-khz-change: any attempt to give a vCPU that ran another frequency. */
static __always_inline bool hv_tsc_khz_violates(bool has_run, __u32 khz_before, __u32 khz_requested)
{
	return has_run && khz_before != khz_requested;
}

/*
 * What part of a PVTI discontinuity no kvmclock write explains. A
 * KVM_SET_CLOCK that moved the kvmclock offset by X shifts every later PVTI
 * by exactly X: that part is kvmclock-jump's business, not this rule's.
 */
static __always_inline __s64 hv_pvclock_residual(__s64 discontinuity, __s64 offset_then,
						 __s64 offset_now)
{
	return discontinuity - (offset_now - offset_then);
}

static __always_inline bool hv_bit_test(const __u64 *words, __u32 bit)
{
	return (words[(bit / 64) % (HV_MAX_VCPUS / 64)] >> (bit % 64)) & 1;
}

static __always_inline void hv_bit_set(__u64 *words, __u32 bit, bool on)
{
	__u64 mask = 1ull << (bit % 64);
	__u64 *w = &words[(bit / 64) % (HV_MAX_VCPUS / 64)];

	*w = on ? (*w | mask) : (*w & ~mask);
}

/*
 * The offset a host TSC write is judged against: the one the vCPU last ran
 * with, however many host writes came since. QEMU's loadvm resets the VM
 * (TSC = 0 written, exempt) and then writes the snapshot's TSC: what the
 * guest sees is the pair, from the offset it ran with to the snapshot's.
 * Judged against the reset's offset instead, the write looks like a move by
 * the host's whole uptime, and restoring that offset puts the guest's TSC
 * where it never was. The vCPU's exit count, unchanged since the first of
 * the writes, says it has not run since. Returns the reference (a reset's
 * own is KVM's previous offset); records the first write in vm.
 */
static __always_inline __s64 hv_tsc_reference(struct hv_clock_vm *vm, __u32 idx, __u32 exits,
					      bool has_run, bool is_reset, __s64 before)
{
	__u32 i = idx % HV_MAX_VCPUS;

	if (!has_run)
		return before;
	if (!hv_bit_test(vm->tsc_ran_known, i) || vm->tsc_ran_exits[i] != exits) {
		vm->tsc_ran[i] = before;
		vm->tsc_ran_exits[i] = exits;
		hv_bit_set(vm->tsc_ran_known, i, true);
	}
	return is_reset ? before : vm->tsc_ran[i];
}

/*
 * vcpu-tsc-mismatch: all vCPUs whose offset the host set must share one,
 * the offset of the lowest such vCPU (the reference). One step per vCPU so
 * that BPF can run it under bpf_loop() (a plain loop over 256 vCPUs with
 * branches explodes the verifier's state space); hv_tsc_mismatch() is the
 * same walk for userspace. The result lives apart from the walk so that
 * BPF can keep it in a map: verifiers before Linux 6.7 check a bpf_loop
 * callback as if it ran once, and on 6.1 they proved "no vCPU differs" from
 * a stack copy and dropped the alert.
 */
struct hv_mismatch_result {
	__s64 ref_offset;
	__u32 ref_vcpu;
	__u32 bad_vcpu;
	__u32 different;
	__u32 have_ref;
};

struct hv_mismatch_walk {
	const struct hv_clock_vm *vm;
	struct hv_mismatch_result *res;
};

static __always_inline int hv_mismatch_step(__u32 i, struct hv_mismatch_walk *w)
{
	const struct hv_clock_vm *vm = w->vm;
	struct hv_mismatch_result *r = w->res;
	__u32 idx = i % HV_MAX_VCPUS;

	if (i >= vm->nr_vcpus || i >= HV_MAX_VCPUS)
		return 1; /* stop */
	if (!hv_bit_test(vm->tsc_known, idx) || hv_bit_test(vm->tsc_guest, idx))
		return 0;
	if (!r->have_ref) {
		r->have_ref = 1;
		r->ref_offset = vm->tsc_offset[idx];
		r->ref_vcpu = idx;
	} else if (vm->tsc_offset[idx] != r->ref_offset) {
		if (!r->different)
			r->bad_vcpu = idx;
		r->different++;
	}
	return 0;
}

/*
 * vcpu-tsc-khz-mismatch: the vCPUs of one VM must run at one TSC frequency
 * (vcpu->arch.virtual_tsc_khz), or their TSCs drift apart. Decided when a
 * vCPU's frequency is new (its first clock update, or a change), against
 * the other vCPUs' last known ones (vm->tsc_khz, 0: none yet). A new
 * disagreement is a frequency no other vCPU runs at while some other runs
 * at another: a vCPU joining others already at its frequency adds none (it
 * was said when the first of them got it), so a VM says each disagreement
 * once, not once per vCPU nor per clock update. One step per vCPU, under
 * bpf_loop() in BPF, with the result in a map: as for the offsets' walk.
 */
struct hv_khz_result {
	__u32 ref_vcpu;	 /* slot of the first other vCPU at another frequency */
	__u32 ref_khz;	 /* its frequency */
	__u32 different; /* other vCPUs at another frequency */
	__u32 same;	 /* other vCPUs at this one */
};

struct hv_khz_walk {
	const struct hv_clock_vm *vm;
	struct hv_khz_result *res;
	__u32 slot; /* the vCPU whose frequency is new */
	__u32 khz;  /* and that frequency */
};

static __always_inline int hv_khz_step(__u32 i, struct hv_khz_walk *w)
{
	const struct hv_clock_vm *vm = w->vm;
	struct hv_khz_result *r = w->res;
	__u32 idx = i % HV_MAX_VCPUS, khz;

	if (i >= vm->nr_vcpus || i >= HV_MAX_VCPUS)
		return 1; /* stop */
	khz = vm->tsc_khz[idx];
	if (idx == w->slot || !khz)
		return 0;
	if (khz == w->khz) {
		r->same++;
		return 0;
	}
	if (!r->different) {
		r->ref_vcpu = idx;
		r->ref_khz = khz;
	}
	r->different++;
	return 0;
}

/* Records slot's frequency at a clock update: true when it is new (its
 * first, or a change), i.e. when the walk must run. Exchanged: of two
 * vCPUs racing to their first update, at least one sees the other's. */
static __always_inline bool hv_tsc_khz_record(struct hv_clock_vm *vm, __u32 slot, __u32 khz)
{
	return khz && __sync_lock_test_and_set(&vm->tsc_khz[slot % HV_MAX_VCPUS], khz) != khz;
}

static __always_inline bool hv_tsc_khz_mismatch_violates(const struct hv_khz_result *r)
{
	return r->different && !r->same;
}

/* One step of the search for a vCPU id's slot (BPF runs it under
 * bpf_loop); the slot lands in *slot, which stays -1 while not found (in
 * a map in BPF, for the reason given for the mismatch walk below). */
struct hv_slot_search {
	const struct hv_clock_vm *vm;
	__u32 id;
	__s32 *slot;
};

static __always_inline int hv_slot_step(__u32 i, struct hv_slot_search *s)
{
	if (i >= s->vm->nr_vcpus || i >= HV_MAX_VCPUS)
		return 1;
	if (s->vm->vcpu_ids[i % HV_MAX_VCPUS] != s->id + 1)
		return 0;
	*s->slot = i;
	return 1;
}

#ifndef __bpf__
/* The slot of vCPU id in vm, -1 when it has none (never seen, or past
 * HV_MAX_VCPUS vCPUs). */
static inline int hv_vcpu_slot_of(const struct hv_clock_vm *vm, __u32 id)
{
	__s32 slot = -1;
	struct hv_slot_search s = {.vm = vm, .id = id, .slot = &slot};

	if (id < HV_MAX_VCPUS && vm->vcpu_ids[id] == id + 1)
		return id;
	for (__u32 i = 0; i < HV_MAX_VCPUS; i++)
		if (hv_slot_step(i, &s))
			break;
	return slot;
}

/* The walk of hv_khz_step() for userspace: true when slot's frequency
 * (khz) is a new disagreement in vm. */
static inline bool hv_tsc_khz_mismatch(const struct hv_clock_vm *vm, __u32 slot, __u32 khz,
				       struct hv_khz_result *res)
{
	struct hv_khz_walk w = {.vm = vm, .res = res, .slot = slot, .khz = khz};

	*res = (struct hv_khz_result){0};
	for (__u32 i = 0; i < HV_MAX_VCPUS; i++)
		if (hv_khz_step(i, &w))
			break;
	return hv_tsc_khz_mismatch_violates(res);
}

static inline __u32 hv_tsc_mismatch(const struct hv_clock_vm *vm, struct hv_mismatch_result *res)
{
	struct hv_mismatch_walk w = {.vm = vm, .res = res};

	*res = (struct hv_mismatch_result){0};
	for (__u32 i = 0; i < HV_MAX_VCPUS; i++)
		if (hv_mismatch_step(i, &w))
			break;
	return res->different;
}
#endif

/*
 * Rate limit of what a guest triggers at will (clock.h, struct hv_clock_flood):
 * true when this event is sent as a record of its own, false when it is
 * only counted. When a window closes, *closed is the count it suppressed
 * (to be sent as one summary, with *closed_start when it opened), else 0.
 * Atomic where vCPUs race: every event is either sent or counted in
 * exactly one window's summary, so the counts add up to the events seen.
 */
static __always_inline bool hv_flood_admit(struct hv_clock_flood *f, __u64 now, __u64 *closed,
					   __u64 *closed_start)
{
	__u64 start = f->window_start;

	*closed = 0;
	*closed_start = start;
	__sync_fetch_and_add(&f->total, 1);
	if (now - start >= HV_FLOOD_WINDOW_NS &&
	    __sync_bool_compare_and_swap(&f->window_start, start, now)) {
		f->sent = 0;
		*closed = __sync_lock_test_and_set(&f->suppressed, 0);
	}
	if (__sync_fetch_and_add(&f->sent, 1) < HV_FLOOD_BURST)
		return true;
	__sync_fetch_and_add(&f->suppressed, 1);
	return false;
}

/*
 * May a VMM process of this user have one more VM tracked (clock.h, the
 * quotas in force)? vmm_vms, user_vms and non_root_vms are what its
 * process, its user and all non-root users hold now.
 */
static __always_inline enum hv_clock_quota hv_vm_quota(const struct hv_clock_quotas *q, __u32 uid,
						       __u64 vmm_vms, __u64 user_vms,
						       __u64 non_root_vms)
{
	if (vmm_vms >= q->per_vmm)
		return HV_QUOTA_VMM;
	if (uid == 0)
		return HV_QUOTA_OK;
	if (user_vms >= q->per_user)
		return HV_QUOTA_USER;
	if (non_root_vms >= q->non_root)
		return HV_QUOTA_NON_ROOT;
	return HV_QUOTA_OK;
}

#endif
