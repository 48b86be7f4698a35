// SPDX-License-Identifier: GPL-2.0
/*
 * Live migration's arithmetic (user/migration.c) on hand-computed cases,
 * and its JSON records read back (user/migration_json.c). Most cases run a
 * 1 GHz guest TSC, where a cycle is a nanosecond and the expected values
 * can be read off the setup.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "migration.h"
#include "migration_json.h"

#define SEC  1000000000ll
#define MS   1000000ll
#define T    (1764000000ll * SEC) /* the source's save, a realtime in 2025 */
#define GHZ  1000000u		  /* kHz: 1 cycle = 1 ns */
#define TSC0 (5000 * SEC)	  /* vCPU 0's TSC at the save */
#define KVM0 (4000 * SEC)	  /* the kvmclock at the save */
#define SKEW 10			  /* vCPU i's TSC is i * SKEW cycles ahead */

static struct hv_mig_record d, a, d2, a2;
static struct hv_mig_result r;

static void fill(struct hv_mig_record *x, enum hv_mig_kind kind, const char *host, int pid,
		 int64_t rt, int64_t tsc0, int64_t kvm)
{
	memset(x, 0, sizeof(*x));
	x->kind = kind;
	snprintf(x->host, sizeof(x->host), "%s", host);
	snprintf(x->name, sizeof(x->name), "web1");
	x->pid = pid;
	x->vm = 1;
	x->realtime_ns = rt;
	x->tai_ns = rt + 37 * SEC;
	x->kvmclock_ns = kvm;
	x->tsc_khz = GHZ;
	x->clock_error_ns = 1000;
	x->nr_vcpus = 2;
	for (uint32_t i = 0; i < 2; i++)
		x->vcpu[i] = (struct hv_mig_vcpu){.id = i, .tsc = tsc0 + i * SKEW};
}

/* The source saved at T (its sample), its VMM exited 5 ms later. */
static void source(struct hv_mig_record *x, const char *host, int pid, int64_t at, int64_t tsc0,
		   int64_t kvm)
{
	fill(x, HV_MIG_DEPARTURE, host, pid, at, tsc0, kvm);
	x->saved_by_ns = at + 5 * MS;
}

/* The destination wrote TSC w_tsc0 (and kvmclock w_kvm) at w, first ran
 * 1 ms later, where its sample is. */
static void destination(struct hv_mig_record *x, const char *host, int pid, int64_t w,
			int64_t w_tsc0, int64_t w_kvm)
{
	fill(x, HV_MIG_ARRIVAL, host, pid, w + MS, w_tsc0 + MS, w_kvm + MS);
	x->written_ns = w;
}

static void test_qemu_72_loses_the_downtime(void **state)
{
	(void)state;
	source(&d, "a", 100, T, TSC0, KVM0);
	destination(&a, "b", 200, T + 2 * SEC, TSC0, KVM0); /* the saved values, as saved */
	assert_int_equal(hv_mig_match(&d, &a, &hv_mig_default_limits, &r), HV_MIG_MATCH);
	assert_int_equal(r.saved_ns, T);
	assert_int_equal(r.downtime_ns, 2 * SEC + MS);
	assert_int_equal(r.kvmclock_warp_ns, -2 * SEC);
	assert_int_equal(r.tsc_warp_ns[0], -2 * SEC);
	assert_int_equal(r.tsc_warp_ns[1], -2 * SEC);
	assert_int_equal(r.worst_tsc_warp_ns, -2 * SEC);
	assert_true(r.pvti_known == false);
	assert_int_equal(r.uncertainty_ns, 2000);
}

static void test_precise_way_has_no_warp(void **state)
{
	(void)state;
	source(&d, "a", 100, T, TSC0, KVM0);
	/* Advanced by the 2 s between the save and the write. */
	destination(&a, "b", 200, T + 2 * SEC, TSC0 + 2 * SEC, KVM0 + 2 * SEC);
	assert_int_equal(hv_mig_match(&d, &a, &hv_mig_default_limits, &r), HV_MIG_MATCH);
	assert_int_equal(r.kvmclock_warp_ns, 0);
	assert_int_equal(r.worst_tsc_warp_ns, 0);
	/* Advanced to the write, the values hide the save: the downtime runs
	 * from saved_by (the VMM's exit, 5 ms after the save). */
	assert_int_equal(r.saved_ns, T + 5 * MS);
	assert_int_equal(r.downtime_ns, 2 * SEC - 4 * MS);
	/* Advanced half-way: neither the value saved nor the one of the write. */
	destination(&a, "b", 200, T + 2 * SEC, TSC0 + SEC, KVM0 + SEC);
	assert_int_equal(hv_mig_match(&d, &a, &hv_mig_default_limits, &r), HV_MIG_NOT_IN_TIME);
	/* Written 11 min after the source exited: beyond the window. */
	destination(&a, "b", 200, T + 660 * SEC, TSC0 + 660 * SEC, KVM0 + 660 * SEC);
	assert_int_equal(hv_mig_match(&d, &a, &hv_mig_default_limits, &r), HV_MIG_NOT_IN_TIME);
}

/* The uuid goes with the VM: two known and different ones never match,
 * one unknown leaves the fingerprint alone to decide. */
static void test_uuids_must_agree_when_known(void **state)
{
	(void)state;
	source(&d, "a", 100, T, TSC0, KVM0);
	destination(&a, "b", 200, T + 2 * SEC, TSC0, KVM0);
	snprintf(d.uuid, sizeof(d.uuid), "6a0a6c4e-0000-4000-8000-000000000001");
	snprintf(a.uuid, sizeof(a.uuid), "6a0a6c4e-0000-4000-8000-000000000002");
	assert_int_equal(hv_mig_match(&d, &a, &hv_mig_default_limits, &r), HV_MIG_NOT_UUID);
	snprintf(a.uuid, sizeof(a.uuid), "%s", d.uuid);
	assert_int_equal(hv_mig_match(&d, &a, &hv_mig_default_limits, &r), HV_MIG_MATCH);
	a.uuid[0] = '\0';
	assert_int_equal(hv_mig_match(&d, &a, &hv_mig_default_limits, &r), HV_MIG_MATCH);
}

static void test_wrong_fingerprint_never_matches(void **state)
{
	(void)state;
	source(&d, "a", 100, T, TSC0, KVM0);
	/* A TSC the source would only have read 20 min after it exited. */
	destination(&a, "b", 200, T + 2 * SEC, TSC0 + 1200 * SEC, KVM0);
	assert_int_equal(hv_mig_match(&d, &a, &hv_mig_default_limits, &r), HV_MIG_NOT_IN_TIME);
	/* One it read 20 min before the write: beyond the 10 min window. */
	destination(&a, "b", 200, T + 2 * SEC, TSC0 - 1200 * SEC, KVM0);
	assert_int_equal(hv_mig_match(&d, &a, &hv_mig_default_limits, &r), HV_MIG_NOT_IN_TIME);
	/* One it read after the write (beyond slack and clock errors). */
	destination(&a, "b", 200, T + 2 * SEC, TSC0 + 2 * SEC + 3 * MS, KVM0);
	assert_int_equal(hv_mig_match(&d, &a, &hv_mig_default_limits, &r), HV_MIG_NOT_IN_TIME);
	/* Swapped kinds. */
	assert_int_equal(hv_mig_match(&a, &d, &hv_mig_default_limits, &r), HV_MIG_NOT_KINDS);
}

/* A -> B -> C, QEMU's way both times, 100 s on B. */
static void test_vm_migrating_twice(void **state)
{
	int64_t w1 = T + 2 * SEC, t2 = T + 100 * SEC, w2 = t2 + 3 * SEC;

	(void)state;
	source(&d, "a", 100, T, TSC0, KVM0);
	destination(&a, "b", 200, w1, TSC0, KVM0);
	/* On B the guest's clocks run on from what was written at w1. */
	source(&d2, "b", 200, t2, TSC0 + (t2 - w1), KVM0 + (t2 - w1));
	destination(&a2, "c", 300, w2, d2.vcpu[0].tsc, d2.kvmclock_ns);
	assert_int_equal(hv_mig_match(&d, &a, &hv_mig_default_limits, &r), HV_MIG_MATCH);
	assert_int_equal(hv_mig_match(&d2, &a2, &hv_mig_default_limits, &r), HV_MIG_MATCH);
	assert_int_equal(r.kvmclock_warp_ns, -3 * SEC);
	/* A's clocks read a2's TSC 98 s after A's VMM exited: saved_by. */
	assert_int_equal(hv_mig_match(&d, &a2, &hv_mig_default_limits, &r), HV_MIG_NOT_IN_TIME);
	/* B's departure samples the line B's arrival wrote: only the identity
	 * (host, pid, vm) tells them apart. */
	assert_int_equal(hv_mig_match(&d2, &a, &hv_mig_default_limits, &r), HV_MIG_SAME_VM);
	d2.pid = 201;
	assert_int_equal(hv_mig_match(&d2, &a, &hv_mig_default_limits, &r), HV_MIG_MATCH);
	assert_int_equal(r.saved_ns, w1);
}

/* A -> B -> C, the precise way: one clock line throughout, so only the
 * window tells the first departure from the second. */
static void test_vm_migrating_twice_precisely(void **state)
{
	int64_t w1 = T + 2 * SEC, t2 = T + 1200 * SEC, w2 = t2 + 3 * SEC;

	(void)state;
	source(&d, "a", 100, T, TSC0, KVM0);
	destination(&a, "b", 200, w1, TSC0 + (w1 - T), KVM0 + (w1 - T));
	source(&d2, "b", 200, t2, TSC0 + (t2 - T), KVM0 + (t2 - T));
	destination(&a2, "c", 300, w2, TSC0 + (w2 - T), KVM0 + (w2 - T));
	assert_int_equal(hv_mig_match(&d, &a, &hv_mig_default_limits, &r), HV_MIG_MATCH);
	assert_int_equal(hv_mig_match(&d2, &a2, &hv_mig_default_limits, &r), HV_MIG_MATCH);
	assert_int_equal(r.worst_tsc_warp_ns, 0);
	assert_int_equal(hv_mig_match(&d, &a2, &hv_mig_default_limits, &r), HV_MIG_NOT_IN_TIME);
	assert_int_equal(hv_mig_match(&d2, &a, &hv_mig_default_limits, &r), HV_MIG_SAME_VM);
	/* 100 s on B, within the window: A's departure fits C's arrival as
	 * well as B's does (the join reports it ambiguous, never a guess). */
	t2 = T + 100 * SEC;
	w2 = t2 + 3 * SEC;
	destination(&a2, "c", 300, w2, TSC0 + (w2 - T), KVM0 + (w2 - T));
	assert_int_equal(hv_mig_match(&d, &a2, &hv_mig_default_limits, &r), HV_MIG_MATCH);
}

/* Two VMs whose TSCs started together: their fingerprints are one line. */
static void test_similar_fingerprints(void **state)
{
	int64_t t2 = T + 30 * SEC;

	(void)state;
	source(&d, "a", 100, T, TSC0, KVM0);			     /* X saved at T */
	source(&d2, "a", 101, t2, TSC0 + 30 * SEC, KVM0 + 30 * SEC); /* Y at T + 30 s */
	destination(&a, "b", 200, T + SEC, TSC0, KVM0);
	destination(&a2, "b", 201, t2 + SEC, d2.vcpu[0].tsc, d2.kvmclock_ns);
	assert_int_equal(hv_mig_match(&d, &a, &hv_mig_default_limits, &r), HV_MIG_MATCH);
	assert_int_equal(hv_mig_match(&d2, &a2, &hv_mig_default_limits, &r), HV_MIG_MATCH);
	/* Y's clocks held X's written values before Y was saved: a match the
	 * join must report ambiguous. X's never held Y's: no match. */
	assert_int_equal(hv_mig_match(&d2, &a, &hv_mig_default_limits, &r), HV_MIG_MATCH);
	assert_int_equal(hv_mig_match(&d, &a2, &hv_mig_default_limits, &r), HV_MIG_NOT_IN_TIME);
	/* An arrival's origin is its departure's plus (written - t_s): 1 s. */
	assert_int_equal(hv_mig_tsc_origin(&d), T - TSC0);
	assert_int_equal(hv_mig_tsc_origin(&a), T - TSC0 + SEC);
}

static void test_khz_and_vcpus_must_agree(void **state)
{
	(void)state;
	source(&d, "a", 100, T, TSC0, KVM0);
	destination(&a, "b", 200, T + SEC, TSC0, KVM0);
	a.tsc_khz = GHZ + 1;
	assert_int_equal(hv_mig_match(&d, &a, &hv_mig_default_limits, &r), HV_MIG_NOT_KHZ);
	a.tsc_khz = GHZ;
	a.vcpu[1].id = 2;
	assert_int_equal(hv_mig_match(&d, &a, &hv_mig_default_limits, &r), HV_MIG_NOT_VCPUS);
	a.vcpu[1].id = 1;
	a.nr_vcpus = 1;
	assert_int_equal(hv_mig_match(&d, &a, &hv_mig_default_limits, &r), HV_MIG_NOT_VCPUS);
}

static void test_saves_too_far_apart(void **state)
{
	(void)state;
	source(&d, "a", 100, T, TSC0, KVM0);
	destination(&a, "b", 200, T + SEC, TSC0, KVM0);
	a.vcpu[1].tsc -= 200 * MS; /* vCPU 1 written from 200 ms before vCPU 0 */
	assert_int_equal(hv_mig_match(&d, &a, &hv_mig_default_limits, &r), HV_MIG_NOT_TOGETHER);
	a.vcpu[1].tsc += 150 * MS; /* 50 ms apart: within QEMU's reading of them */
	assert_int_equal(hv_mig_match(&d, &a, &hv_mig_default_limits, &r), HV_MIG_MATCH);
	assert_int_equal(r.tsc_warp_ns[1], -SEC - 50 * MS);
	assert_int_equal(r.worst_tsc_warp_ns, -SEC - 50 * MS);
	assert_int_equal(r.saved_ns, T - 50 * MS);
}

static void test_pvti_change_and_three_ghz(void **state)
{
	(void)state;
	source(&d, "a", 100, T, TSC0, KVM0);
	destination(&a, "b", 200, T + SEC, TSC0 + SEC, KVM0 + SEC);
	d.pvti_mul = 1u << 31;
	d.pvti_shift = 1;
	a.pvti_mul = (1u << 31) + (1u << 21);
	a.pvti_shift = 1;
	assert_int_equal(hv_mig_match(&d, &a, &hv_mig_default_limits, &r), HV_MIG_MATCH);
	assert_true(r.pvti_known);
	assert_int_equal(r.pvti_changed_ns, 976562); /* (2e9 * 2^21) >> 32 */
	/* 3 GHz: 2 s of downtime lost is 6e9 cycles. */
	assert_int_equal(hv_mig_ns_to_cycles(2 * SEC, 3000000), 6 * SEC);
	assert_int_equal(hv_mig_cycles_to_ns(6 * SEC, 3000000), 2 * SEC);
	assert_int_equal(hv_mig_cycles_to_ns(5, 0), 0);
	assert_int_equal(hv_mig_ns_to_cycles(INT64_MAX, 100000000u), INT64_MAX);
	assert_int_equal(hv_mig_ns_to_cycles(INT64_MIN, 100000000u), INT64_MIN);
}

static void test_hostile_values_are_refused(void **state)
{
	(void)state;
	source(&d, "a", 100, T, TSC0, KVM0);
	destination(&a, "b", 200, T + SEC, TSC0, KVM0);
	a.vcpu[0].tsc = -1;
	assert_int_equal(hv_mig_match(&d, &a, &hv_mig_default_limits, &r), HV_MIG_NOT_SANE);
	assert_int_equal(hv_mig_tsc_origin(&a), INT64_MIN);
	a.vcpu[0].tsc = TSC0;
	a.vcpu[0].id = 5; /* 5, 1: unsorted */
	assert_false(hv_mig_record_sane(&a));
	a.vcpu[0].id = 1; /* 1, 1: repeated */
	assert_non_null(hv_mig_record_insane(&a));
	a.vcpu[0].id = 0;
	a.nr_vcpus = 0;
	assert_false(hv_mig_record_sane(&a));
	a.nr_vcpus = HV_MAX_VCPUS + 1;
	assert_false(hv_mig_record_sane(&a));
	a.nr_vcpus = 2;
	a.written_ns = a.realtime_ns + 1; /* written after the first run */
	assert_false(hv_mig_record_sane(&a));
	a.written_ns = T + SEC;
	a.tsc_khz = 999; /* below 1 MHz */
	assert_false(hv_mig_record_sane(&a));
	a.tsc_khz = 1000; /* 1 MHz: 2^61 cycles are 2^61 ms, beyond 2^62 ns */
	a.vcpu[1].tsc = 1ll << 61;
	assert_false(hv_mig_record_sane(&a));
	a.tsc_khz = GHZ;
	a.vcpu[1].tsc = TSC0 + SKEW;
	a.clock_error_ns = -2;
	assert_false(hv_mig_record_sane(&a));
	a.clock_error_ns = 1000;
	a.pvti_shift = 33;
	assert_false(hv_mig_record_sane(&a));
	d.saved_by_ns = -1;
	assert_false(hv_mig_record_sane(&d));
	d.kind = 7;
	assert_false(hv_mig_record_sane(&d));
	assert_string_equal(hv_mig_verdict_name(HV_MIG_SAME_VM), "the same VM in the same process");
	assert_string_equal(hv_mig_verdict_name(99), "?");
}

/* Every pairing of extreme but sane values: no overflow (UBSan aborts on
 * one in the sanitized build), a verdict, and a bounded result. */
static void test_extremes_never_overflow(void **state)
{
	static const int64_t times[] = {0, 1, T, (1ll << 62) - 1};
	static const int64_t tscs[] = {0, 1, TSC0, (1ll << 62) - 1};
	static const uint32_t khzs[] = {1000, GHZ, 100000000u};
	static const uint32_t muls[] = {0, 1, UINT32_MAX};
	const size_t nt = 4, nk = 3, nm = 3;

	(void)state;
	for (size_t i = 0; i < nt * nt * nt * nk * nm; i++) {
		size_t x = i;
		int64_t rt = times[x % nt], w = times[(x /= nt) % nt], tsc = tscs[(x /= nt) % nt];
		uint32_t khz = khzs[(x /= nt) % nk], mul = muls[(x / nk) % nm];

		source(&d, "a", 1, times[nt - 1 - i % nt], tscs[nt - 1 - i % nt], 0);
		destination(&a, "b", 2, w < rt ? w : rt, tsc, (1ll << 62) - 2 * MS);
		d.tsc_khz = a.tsc_khz = khz;
		d.pvti_mul = a.pvti_mul = mul;
		d.pvti_shift = -32;
		a.pvti_shift = 32;
		d.clock_error_ns = a.clock_error_ns = 3600 * SEC;
		if (hv_mig_match(&d, &a, &hv_mig_default_limits, &r) == HV_MIG_MATCH)
			assert_true(r.worst_tsc_warp_ns != INT64_MIN);
		(void)hv_mig_tsc_origin(&d);
	}
}

/* --- JSON records --------------------------------------------------------------- */

static struct json_object *event_of(const struct hv_mig_record *x)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "type", json_object_new_string("event"));
	json_object_object_add(
	    o, "event",
	    json_object_new_string(x->kind == HV_MIG_DEPARTURE ? "departure" : "arrival"));
	json_object_object_add(o, "pid", json_object_new_int(x->pid));
	json_object_object_add(o, "comm", json_object_new_string("qemu-system-x86"));
	json_object_object_add(o, "vm", json_object_new_int64((int64_t)x->vm));
	json_object_object_add(o, "vm_name", x->name[0] ? json_object_new_string(x->name) : NULL);
	json_object_object_add(o, "vcpu", NULL);
	json_object_object_add(o, "colour", json_object_new_string("an unknown field"));
	hv_mig_record_to_json(x, o);
	return o;
}

static int from_text(const char *text, struct hv_mig_record *x, char *why, size_t len)
{
	struct json_object *o = json_tokener_parse(text);
	int err;

	assert_non_null(o);
	err = hv_mig_record_from_json(o, x, why, len);
	json_object_put(o);
	return err;
}

static void test_json_round_trip(void **state)
{
	struct json_object *o;
	char why[160] = "";

	(void)state;
	source(&d, "a", 100, T, TSC0, KVM0);
	d.pvti_mul = 123456;
	d.pvti_shift = -1;
	o = event_of(&d);
	memset(&d2, 0, sizeof(d2));
	assert_int_equal(hv_mig_record_from_json(o, &d2, why, sizeof(why)), 0);
	json_object_put(o);
	assert_memory_equal(&d, &d2, offsetof(struct hv_mig_record, vcpu) + 2 * sizeof(d.vcpu[0]));
	/* Unknowns: no name, no uuid, no host, no PVTI, no clock error. */
	destination(&a, "", 200, T + SEC, TSC0, KVM0);
	memset(a.name, 0, sizeof(a.name));
	a.clock_error_ns = -1;
	o = event_of(&a);
	memset(&a2, 0, sizeof(a2));
	assert_int_equal(hv_mig_record_from_json(o, &a2, why, sizeof(why)), 0);
	json_object_put(o);
	assert_memory_equal(&a, &a2, offsetof(struct hv_mig_record, vcpu) + 2 * sizeof(a.vcpu[0]));
}

/* The record's JSON with one replacement made in its text. */
static int refused(const char *from, const char *to, const char *reason)
{
	struct json_object *o;
	char text[8192], why[160] = "";
	const char *s, *at;
	int err;

	source(&d, "a", 100, T, TSC0, KVM0);
	o = event_of(&d);
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	at = strstr(s, from);
	assert_non_null(at);
	snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
	json_object_put(o);
	err = from_text(text, &d2, why, sizeof(why));
	if (!err || !strstr(why, reason))
		fail_msg("'%s' -> '%s': err %d, why '%s', wanted '%s'", from, to, err, why, reason);
	return 0;
}

static void test_json_hostile_records(void **state)
{
	char why[160], big[6000];
	int n;

	(void)state;
	refused("\"tsc_khz\":1000000", "\"tsc_khz\":\"1000000\"", "'tsc_khz' must be an integer");
	refused("\"tsc_khz\":1000000", "\"tsc_khz\":1e6", "'tsc_khz' must be an integer");
	refused("\"tsc_khz\":1000000,", "", "'tsc_khz' missing");
	refused("\"tsc_khz\":1000000", "\"tsc_khz\":null", "'tsc_khz' missing");
	refused("\"tsc_khz\":1000000", "\"tsc_khz\":4294967296", "'tsc_khz' out of range");
	refused("\"tsc_khz\":1000000", "\"tsc_khz\":999", "tsc_khz outside");
	refused(
	    "\"realtime_ns\":", "\"realtime_ns\":99999999999999999999999,\"x\":", "out of range");
	refused("\"realtime_ns\":", "\"realtime_ns\":-1,\"x\":", "'realtime_ns' out of range");
	refused("\"pid\":100", "\"pid\":0", "'pid' out of range");
	refused("\"pid\":100", "\"pid\":2147483648", "'pid' out of range");
	refused("\"host\":\"a\"", "\"host\":\"a\\nmigration forged\"", "control character");
	refused("\"host\":\"a\"", "\"host\":\"a\\u0000b\"", "control character");
	refused("\"host\":\"a\"", "\"host\":7", "'host' must be a string or null");
	refused("\"vm_name\":\"web1\"",
		"\"vm_name\":\"0123456789012345678901234567890123456789012345678901234567890123\"",
		"'vm_name' longer than 63 bytes");
	refused("\"event\":\"departure\"", "\"event\":\"arrival\"", "'written_ns' missing");
	refused("\"event\":\"departure\"", "\"event\":\"pause\"", "neither");
	refused("\"type\":\"event\"", "\"type\":\"alert\"", "'type' is not");
	refused("\"pvti_mul\":null", "\"pvti_mul\":5", "both known or both null");
	refused("\"clock_error_ns\":1000", "\"clock_error_ns\":-1",
		"'clock_error_ns' out of range");
	refused("{\"vcpu\":1,", "{\"vcpu\":0,", "vCPU 0 repeated");
	refused("{\"vcpu\":0,", "{\"vcpu\":2,", "vCPU 1 not sorted by id");
	refused("{\"vcpu\":0,\"tsc\":", "{\"vcpu\":0,\"tsc\":-", "vcpus[0]: 'tsc' out of range");
	refused("{\"vcpu\":0,", "7,{\"vcpu\":0,", "vcpus[0] is not an object");
	refused("{\"vcpu\":0,", "{\"vcpu\":4294967296,", "vcpus[0]: 'vcpu' out of range");
	refused("\"vcpus\":[", "\"vcpus\":{},\"x\":[", "'vcpus' missing or not an array");
	refused("\"vcpus\":[", "\"vcpus\":[],\"x\":[", "holds 0 vCPUs");
	/* 257 vCPUs. */
	n = snprintf(big, sizeof(big),
		     "{\"type\":\"event\",\"event\":\"departure\",\"pid\":1,"
		     "\"vm\":1,\"realtime_ns\":1,\"tai_ns\":1,\"kvmclock_ns\":1,"
		     "\"tsc_khz\":1000000,\"saved_by_ns\":1,\"vcpus\":[");
	for (int i = 0; i <= HV_MAX_VCPUS; i++)
		n += snprintf(big + n, sizeof(big) - n, "%s{\"vcpu\":%d,\"tsc\":1}", i ? "," : "",
			      i);
	snprintf(big + n, sizeof(big) - n, "]}");
	assert_int_equal(from_text(big, &d2, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "holds 257 vCPUs"));
	assert_int_equal(from_text("[1]", &d2, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "not a JSON object");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_qemu_72_loses_the_downtime),
	    cmocka_unit_test(test_precise_way_has_no_warp),
	    cmocka_unit_test(test_wrong_fingerprint_never_matches),
	    cmocka_unit_test(test_uuids_must_agree_when_known),
	    cmocka_unit_test(test_vm_migrating_twice),
	    cmocka_unit_test(test_vm_migrating_twice_precisely),
	    cmocka_unit_test(test_similar_fingerprints),
	    cmocka_unit_test(test_khz_and_vcpus_must_agree),
	    cmocka_unit_test(test_saves_too_far_apart),
	    cmocka_unit_test(test_pvti_change_and_three_ghz),
	    cmocka_unit_test(test_hostile_values_are_refused),
	    cmocka_unit_test(test_extremes_never_overflow),
	    cmocka_unit_test(test_json_round_trip),
	    cmocka_unit_test(test_json_hostile_records),
	};

	return cmocka_run_group_tests_name("migration", tests, NULL, NULL);
}
