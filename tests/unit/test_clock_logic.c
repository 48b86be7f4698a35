// SPDX-License-Identifier: GPL-2.0
/* The clock rules' decisions, as bpf/clock.bpf.c runs them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hvguard/clock_logic.h"

/* Reference scale with a real 128-bit product, to check the BPF-safe one. */
static uint64_t scale_ref(uint64_t delta, uint32_t mul, int8_t shift)
{
	if (shift < 0)
		delta >>= -shift;
	else
		delta <<= shift;
	return (uint64_t)(((unsigned __int128)delta * mul) >> 32);
}

static void test_scale_matches_128bit_product(void **state)
{
	static const uint64_t deltas[] = {
	    0, 1, 1000, 0xffffffffull, 0x100000000ull, 123456789012345ull, 0x00ffffffffffffffull};
	static const uint32_t muls[] = {1, 0x80000000u, 0xffffffffu, 0xa3d70a3du, 3u};
	static const int8_t shifts[] = {-2, -1, 0, 1, 2};

	(void)state;
	for (size_t d = 0; d < sizeof(deltas) / sizeof(deltas[0]); d++)
		for (size_t m = 0; m < sizeof(muls) / sizeof(muls[0]); m++)
			for (size_t s = 0; s < sizeof(shifts) / sizeof(shifts[0]); s++) {
				uint64_t delta = deltas[d];

				if (shifts[s] > 0 && delta > (UINT64_MAX >> shifts[s]))
					continue; /* KVM never shifts a delta out of range */
				assert_int_equal(hv_pvclock_scale(delta, muls[m], shifts[s]),
						 scale_ref(delta, muls[m], shifts[s]));
			}
}

/* A 2.5 GHz TSC as KVM encodes it: mul = 2^32 * 1e9 / (2.5e9 * 2^shift). */
static struct hv_clock_pvti pvti_2500mhz(uint64_t tsc, uint64_t ns)
{
	struct hv_clock_pvti p = {
	    .tsc_timestamp = tsc,
	    .system_time = ns,
	    .tsc_to_system_mul = 3435973836u, /* 0.8 * 2^32 at shift -1 */
	    .tsc_shift = -1,
	    .flags = HV_PVCLOCK_TSC_STABLE,
	};
	return p;
}

static void test_scale_converts_cycles_to_ns(void **state)
{
	struct hv_clock_pvti p = pvti_2500mhz(0, 0);

	(void)state;
	/* 2.5e9 cycles at 2.5 GHz are one second, to within a ns of rounding */
	assert_in_range(hv_pvclock_read(&p, 2500000000ull), 999999999, 1000000000);
}

static void test_discontinuity_zero_when_continuous(void **state)
{
	struct hv_clock_pvti old = pvti_2500mhz(1000000, 5000000000ull);
	struct hv_clock_pvti new = old;

	(void)state;
	new.tsc_timestamp += 2500000000ull;
	new.system_time = hv_pvclock_read(&old, new.tsc_timestamp);
	assert_int_equal(hv_pvclock_discontinuity(&old, &new), 0);
}

static void test_discontinuity_of_qemu_stopcont_is_minus_pause(void **state)
{
	/* The VM paused 2 s: the TSC ran on, the kvmclock was set back. */
	struct hv_clock_pvti old = pvti_2500mhz(1000000, 5000000000ull);
	struct hv_clock_pvti new = old;

	(void)state;
	new.tsc_timestamp += 5000000000ull; /* 2 s of cycles */
	new.system_time = old.system_time;  /* rewound to the pause */
	assert_true(hv_abs64(hv_pvclock_discontinuity(&old, &new) + 2000000000) <= 1);
}

static void test_discontinuity_with_tsc_backwards(void **state)
{
	struct hv_clock_pvti old = pvti_2500mhz(5000000000ull, 9000000000ull);
	struct hv_clock_pvti new = pvti_2500mhz(2500000000ull, 8000000000ull);

	(void)state;
	/* 1 s of cycles back, 1 s of ns back: consistent */
	assert_true(hv_abs64(hv_pvclock_discontinuity(&old, &new)) <= 1);
}

static void test_comparable_needs_tsc_stable_on_both(void **state)
{
	struct hv_clock_pvti a = pvti_2500mhz(0, 0), b = a;

	(void)state;
	assert_true(hv_pvclock_comparable(&a, &b));
	b.flags = HV_PVCLOCK_GUEST_STOPPED;
	assert_false(hv_pvclock_comparable(&a, &b));
	b.flags = HV_PVCLOCK_TSC_STABLE | HV_PVCLOCK_GUEST_STOPPED;
	assert_true(hv_pvclock_comparable(&a, &b));
}

static void test_residual_removes_the_kvmclock_write(void **state)
{
	(void)state;
	/* stop/cont: D = -2 s, and the offset moved by -2 s: nothing left */
	assert_int_equal(hv_pvclock_residual(-2000000000, 100, 100 - 2000000000), 0);
	/* a discontinuity with no clock write stays whole */
	assert_int_equal(hv_pvclock_residual(-70000, 5, 5), -70000);
}

static void test_kvmclock_jump(void **state)
{
	__s64 jump;

	(void)state;
	/* QEMU's rewind after a 1 s pause on a VM that ran */
	assert_true(hv_kvmclock_jump_violates(true, -5000, -5000 - 1000000000, 100000, &jump));
	assert_int_equal(jump, -1000000000);
	/* the same write before the VM first ran is setup */
	assert_false(hv_kvmclock_jump_violates(false, -5000, -5000 - 1000000000, 100000, &jump));
	/* a REALTIME restore within the tolerance */
	assert_false(hv_kvmclock_jump_violates(true, 0, 400, 100000, &jump));
	assert_int_equal(jump, 400);
	/* forward jumps count too, and the bound is exclusive */
	assert_true(hv_kvmclock_jump_violates(true, 0, 100001, 100000, &jump));
	assert_false(hv_kvmclock_jump_violates(true, 0, 100000, 100000, &jump));
}

/* The fentry tier's decision at KVM_SET_CLOCK's return, shared with the
 * vCPUs' clock updates: one decision per change. */
static void test_set_clock_claim(void **state)
{
	(void)state;
	/* QEMU's cont after a stop: the guest ran with -5000, rewound by 1 s */
	assert_int_equal(hv_set_clock_claim(true, -5000, -5000, -5000 - 1000000000),
			 HV_SET_CLOCK_DECIDE);
	/* decided from what the guest ran with, even when an earlier call,
	 * not run with yet, moved it (the guest sees the pair) */
	assert_int_equal(hv_set_clock_claim(true, -5000, 7, -5000 - 1000000000),
			 HV_SET_CLOCK_DECIDE);
	/* a vCPU entered between KVM's write and the return: it decided */
	assert_int_equal(hv_set_clock_claim(true, -1000005000, -5000, -1000005000),
			 HV_SET_CLOCK_CLAIMED);
	/* the same offset written back: nothing moved */
	assert_int_equal(hv_set_clock_claim(true, -5000, -5000, -5000), HV_SET_CLOCK_UNCHANGED);
	/* before the guest first ran here: setup, whatever the values */
	assert_int_equal(hv_set_clock_claim(false, 0, -5000, -5000 - 1000000000),
			 HV_SET_CLOCK_SETUP);
}

static void test_paused_ns(void **state)
{
	(void)state;
	assert_int_equal(hv_paused_ns(true, 1000, 301000), 300000);
	assert_int_equal(hv_paused_ns(true, 1000, 1000), 0);
	assert_int_equal(hv_paused_ns(false, 1000, 301000), -1); /* no KVM_GET_CLOCK seen */
	assert_int_equal(hv_paused_ns(true, 301000, 1000), -1);	 /* a clock read before it */
}

static void test_tsc_offset(void **state)
{
	(void)state;
	assert_true(hv_tsc_offset_violates(true, true, -100, -5000, false));
	assert_false(hv_tsc_offset_violates(false, true, -100, -5000, false)); /* setup */
	assert_false(hv_tsc_offset_violates(true, false, -100, -5000, false)); /* unknown */
	assert_false(hv_tsc_offset_violates(true, true, -100, -100, false));   /* a sync */
	assert_false(hv_tsc_offset_violates(true, true, -100, -5000, true));   /* reset */
}

/* QEMU's loadvm: a reset (TSC = 0), then the snapshot's TSC, the vCPU not
 * running in between: judged from the offset it ran with, not the reset's. */
static void test_tsc_reference_spans_writes_until_run(void **state)
{
	static struct hv_clock_vm vm;

	(void)state;
	memset(&vm, 0, sizeof(vm));
	/* before the first run: KVM's previous offset, nothing recorded */
	assert_int_equal(hv_tsc_reference(&vm, 3, 0, false, false, -7), -7);
	assert_false(hv_bit_test(vm.tsc_ran_known, 3));
	/* ran with -1000 (exit count 50); the reset's own reference is KVM's */
	assert_int_equal(hv_tsc_reference(&vm, 3, 50, true, true, -1000), -1000);
	/* the snapshot's write: previous is the reset's -250000, the guest ran with -1000 */
	assert_int_equal(hv_tsc_reference(&vm, 3, 50, true, false, -250000), -1000);
	/* a third write, still not run */
	assert_int_equal(hv_tsc_reference(&vm, 3, 50, true, false, -180000), -1000);
	/* it ran (exit count moved): KVM's previous offset again */
	assert_int_equal(hv_tsc_reference(&vm, 3, 51, true, false, -180000), -180000);
	/* another vCPU's slot is its own */
	assert_int_equal(hv_tsc_reference(&vm, 4, 50, true, false, -5), -5);
	assert_int_equal(hv_tsc_reference(&vm, 3, 51, true, false, -9), -180000);
	/* the slot index is masked, never out of bounds */
	assert_int_equal(hv_tsc_reference(&vm, HV_MAX_VCPUS + 3, 52, true, false, -11), -11);
	assert_int_equal(hv_tsc_reference(&vm, 3, 52, true, false, -12), -11);
}

static void test_tsc_khz(void **state)
{
	(void)state;
	assert_true(hv_tsc_khz_violates(true, 2445424, 2444424));
	assert_false(hv_tsc_khz_violates(true, 2445424, 2445424));
	assert_false(hv_tsc_khz_violates(false, 2445424, 2444424));
}

static struct hv_clock_vm *vm_with(int n, const int64_t *offsets, uint64_t guest_mask)
{
	static struct hv_clock_vm vm;

	memset(&vm, 0, sizeof(vm));
	vm.nr_vcpus = n;
	for (int i = 0; i < n; i++) {
		vm.tsc_offset[i] = offsets[i];
		hv_bit_set(vm.tsc_known, i, true);
		hv_bit_set(vm.tsc_guest, i, i < 64 && ((guest_mask >> i) & 1));
	}
	return &vm;
}

static void test_mismatch(void **state)
{
	static const int64_t same[] = {-7, -7, -7, -7};
	static const int64_t one_off[] = {-7, -7, 9, -7};
	struct hv_mismatch_result w;

	(void)state;
	assert_int_equal(hv_tsc_mismatch(vm_with(4, same, 0), &w), 0);

	assert_int_equal(hv_tsc_mismatch(vm_with(4, one_off, 0), &w), 1);
	assert_int_equal(w.bad_vcpu, 2);
	assert_int_equal(w.ref_vcpu, 0);
	assert_int_equal(w.ref_offset, -7);

	/* a vCPU whose guest moved its own TSC is not the host's doing */
	assert_int_equal(hv_tsc_mismatch(vm_with(4, one_off, 1u << 2), &w), 0);
}

static void test_mismatch_many_vcpus_and_bounds(void **state)
{
	static int64_t offsets[HV_MAX_VCPUS];
	struct hv_mismatch_result w;
	struct hv_clock_vm *vm;

	(void)state;
	for (int i = 0; i < HV_MAX_VCPUS; i++)
		offsets[i] = 42;
	offsets[HV_MAX_VCPUS - 1] = 43;
	vm = vm_with(HV_MAX_VCPUS, offsets, 0);
	assert_int_equal(hv_tsc_mismatch(vm, &w), 1);
	assert_int_equal(w.bad_vcpu, HV_MAX_VCPUS - 1);
	/* nr_vcpus beyond the tracked range never reads past the arrays */
	vm->nr_vcpus = 100000;
	assert_int_equal(hv_tsc_mismatch(vm, &w), 1);
}

/* One clock update of the vCPU in slot, as clock.bpf.c's check_khz_mismatch()
 * takes it: true when it raises vcpu-tsc-khz-mismatch. */
static bool khz_update(struct hv_clock_vm *vm, __u32 slot, __u32 khz, struct hv_khz_result *r)
{
	if (vm->nr_vcpus <= slot)
		vm->nr_vcpus = slot + 1;
	memset(r, 0, sizeof(*r));
	return hv_tsc_khz_record(vm, slot, khz) && hv_tsc_khz_mismatch(vm, slot, khz, r);
}

static void test_khz_mismatch(void **state)
{
	static struct hv_clock_vm vm;
	struct hv_khz_result r;

	(void)state;
	/* vCPUs that agree: nothing, whatever the order of their updates */
	memset(&vm, 0, sizeof(vm));
	assert_false(khz_update(&vm, 1, 2445424, &r));
	assert_false(khz_update(&vm, 0, 2445424, &r));
	assert_false(khz_update(&vm, 1, 2445424, &r));

	/* vCPU 1 at another frequency before the first run: said at its
	 * first update, against vCPU 0, then never again per clock update */
	memset(&vm, 0, sizeof(vm));
	assert_false(khz_update(&vm, 0, 2445424, &r));
	assert_true(khz_update(&vm, 1, 2445624, &r));
	assert_int_equal(r.ref_vcpu, 0);
	assert_int_equal(r.ref_khz, 2445424);
	assert_int_equal(r.different, 1);
	assert_false(khz_update(&vm, 1, 2445624, &r));
	assert_false(khz_update(&vm, 0, 2445424, &r));

	/* the same disagreement once per VM, not once per vCPU: vCPUs 2 and 3
	 * join vCPU 1's frequency; a third frequency is a new one */
	assert_false(khz_update(&vm, 2, 2445624, &r));
	assert_false(khz_update(&vm, 3, 2445624, &r));
	assert_true(khz_update(&vm, 4, 1000000, &r));
	assert_int_equal(r.ref_vcpu, 0);
	assert_int_equal(r.different, 4);

	/* a vCPU back to the others' frequency says nothing; away again, a
	 * new disagreement */
	assert_false(khz_update(&vm, 4, 2445624, &r));
	assert_true(khz_update(&vm, 4, 1000000, &r));

	/* unknown (0) is neither recorded nor compared */
	memset(&vm, 0, sizeof(vm));
	assert_false(khz_update(&vm, 0, 0, &r));
	assert_false(khz_update(&vm, 1, 2445424, &r));
	assert_false(khz_update(&vm, 2, 2445424, &r));
	assert_int_equal(r.same, 1);
}

static void test_khz_mismatch_many_vcpus_and_bounds(void **state)
{
	static struct hv_clock_vm vm;
	struct hv_khz_result r;

	(void)state;
	memset(&vm, 0, sizeof(vm));
	for (__u32 i = 0; i < HV_MAX_VCPUS - 1; i++)
		assert_false(khz_update(&vm, i, 2445424, &r));
	assert_true(khz_update(&vm, HV_MAX_VCPUS - 1, 2445425, &r));
	assert_int_equal(r.different, HV_MAX_VCPUS - 1);
	/* the reference is the lowest slot at another frequency */
	assert_int_equal(r.ref_vcpu, 0);
	/* nr_vcpus beyond the tracked range never reads past the arrays */
	vm.nr_vcpus = 100000;
	assert_false(hv_tsc_khz_mismatch(&vm, 0, 2445424, &r));
	assert_int_equal(r.same, HV_MAX_VCPUS - 2);
	assert_int_equal(r.ref_vcpu, HV_MAX_VCPUS - 1);
	assert_true(hv_tsc_khz_mismatch(&vm, 100000, 1, &r));
	assert_int_equal(r.different, HV_MAX_VCPUS);
}

/* A guest writing its TSC at will: a burst per window is sent, the rest
 * counted, and every event is accounted for exactly once. */
static void test_flood_burst_then_counted(void **state)
{
	struct hv_clock_flood f = {};
	__u64 closed, start, sent = 0, summed = 0, now = 5 * HV_FLOOD_WINDOW_NS;
	(void)state;

	for (int i = 0; i < 1000; i++) {
		sent += hv_flood_admit(&f, now + i, &closed, &start);
		summed += closed;
		assert_int_equal(closed, 0); /* one window: nothing closed yet */
	}
	assert_int_equal(sent, HV_FLOOD_BURST);
	assert_int_equal(f.suppressed, 1000 - HV_FLOOD_BURST);
	/* The next window sends its burst again and sums up the last one. */
	assert_true(hv_flood_admit(&f, now + HV_FLOOD_WINDOW_NS, &closed, &start));
	assert_int_equal(closed, 1000 - HV_FLOOD_BURST);
	assert_int_equal(start, now);
	summed += closed;
	assert_int_equal(sent + 1 + summed + f.suppressed, 1001);
	assert_int_equal(f.total, 1001);
}

/* Slower than the burst: every event is a record of its own, none summed. */
static void test_flood_slow_writer_sends_all(void **state)
{
	struct hv_clock_flood f = {};
	__u64 closed, start, now = HV_FLOOD_WINDOW_NS;
	(void)state;

	for (int i = 0; i < 100; i++) {
		assert_true(hv_flood_admit(&f, now, &closed, &start));
		assert_int_equal(closed, 0);
		now += HV_FLOOD_WINDOW_NS / HV_FLOOD_BURST;
	}
	assert_int_equal(f.suppressed, 0);
	assert_int_equal(f.total, 100);
}

/* The quotas: per process for everyone, per user and for all non-root
 * users together for everyone but root. */
static void test_vm_quota(void **state)
{
	const struct hv_clock_quotas q = {
	    .per_vmm = HV_VMS_PER_VMM,
	    .per_user = HV_VMS_PER_USER,
	    .non_root = HV_VMS_NON_ROOT,
	};
	const struct hv_clock_quotas *cfg = &q;
	(void)state;
	assert_int_equal(hv_vm_quota(cfg, 0, 0, 0, 0), HV_QUOTA_OK);
	assert_int_equal(hv_vm_quota(cfg, 0, HV_VMS_PER_VMM - 1, 0, 0), HV_QUOTA_OK);
	assert_int_equal(hv_vm_quota(cfg, 0, HV_VMS_PER_VMM, 0, 0), HV_QUOTA_VMM);
	/* Root is not counted per user, whatever the counts say. */
	assert_int_equal(hv_vm_quota(cfg, 0, 1, HV_VMS_PER_USER, HV_VMS_NON_ROOT), HV_QUOTA_OK);
	assert_int_equal(hv_vm_quota(cfg, 1000, 1, HV_VMS_PER_USER - 1, 0), HV_QUOTA_OK);
	assert_int_equal(hv_vm_quota(cfg, 1000, 1, HV_VMS_PER_USER, 0), HV_QUOTA_USER);
	assert_int_equal(hv_vm_quota(cfg, 1000, 1, 1, HV_VMS_NON_ROOT), HV_QUOTA_NON_ROOT);
	assert_int_equal(hv_vm_quota(cfg, 1000, HV_VMS_PER_VMM, 1, 1), HV_QUOTA_VMM);
	/* Root's VMMs always keep room: non-root users cannot fill the table. */
	assert_true(HV_VMS_NON_ROOT < HV_VM_TABLE);
	assert_true(HV_VMS_PER_USER <= HV_VMS_NON_ROOT);
}

/* vCPU ids are APIC ids, sparse: each has a slot of its own, never
 * another's (vCPU 256 once folded onto vCPU 0's). */
static void test_vcpu_slots(void **state)
{
	static struct hv_clock_vm vm;
	(void)state;
	memset(&vm, 0, sizeof(vm));
	vm.vcpu_ids[0] = 0 + 1;
	vm.vcpu_ids[1] = 256 + 1;
	vm.vcpu_ids[2] = 2 + 1; /* dense ids in order: slot == id */
	vm.nr_vcpus = 3;
	assert_int_equal(hv_vcpu_slot_of(&vm, 0), 0);
	assert_int_equal(hv_vcpu_slot_of(&vm, 256), 1);
	assert_int_equal(hv_vcpu_slot_of(&vm, 2), 2);
	assert_int_equal(hv_vcpu_slot_of(&vm, 1), -1);
	assert_int_equal(hv_vcpu_slot_of(&vm, 4095), -1);
	/* A mismatch between vCPUs 0 and 256 is seen, in their slots. */
	struct hv_mismatch_result r;

	hv_bit_set(vm.tsc_known, 0, true);
	hv_bit_set(vm.tsc_known, 1, true);
	vm.tsc_offset[0] = -1000;
	vm.tsc_offset[1] = -5000;
	assert_int_equal(hv_tsc_mismatch(&vm, &r), 1);
	assert_int_equal(vm.vcpu_ids[r.bad_vcpu] - 1, 256);
	assert_int_equal(vm.vcpu_ids[r.ref_vcpu] - 1, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_scale_matches_128bit_product),
	    cmocka_unit_test(test_scale_converts_cycles_to_ns),
	    cmocka_unit_test(test_discontinuity_zero_when_continuous),
	    cmocka_unit_test(test_discontinuity_of_qemu_stopcont_is_minus_pause),
	    cmocka_unit_test(test_discontinuity_with_tsc_backwards),
	    cmocka_unit_test(test_comparable_needs_tsc_stable_on_both),
	    cmocka_unit_test(test_residual_removes_the_kvmclock_write),
	    cmocka_unit_test(test_kvmclock_jump),
	    cmocka_unit_test(test_set_clock_claim),
	    cmocka_unit_test(test_paused_ns),
	    cmocka_unit_test(test_tsc_offset),
	    cmocka_unit_test(test_tsc_reference_spans_writes_until_run),
	    cmocka_unit_test(test_tsc_khz),
	    cmocka_unit_test(test_mismatch),
	    cmocka_unit_test(test_mismatch_many_vcpus_and_bounds),
	    cmocka_unit_test(test_khz_mismatch),
	    cmocka_unit_test(test_khz_mismatch_many_vcpus_and_bounds),
	    cmocka_unit_test(test_flood_burst_then_counted),
	    cmocka_unit_test(test_flood_slow_writer_sends_all),
	    cmocka_unit_test(test_vm_quota),
	    cmocka_unit_test(test_vcpu_slots),
	};

	return cmocka_run_group_tests_name("clock_logic", tests, NULL, NULL);
}
