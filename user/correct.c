// SPDX-License-Identifier: GPL-2.0
/*
 * Correcting writes. KVM answers EIO to VM and vCPU ioctls from any process
 * but the VMM, so the repair runs inside the VMM: the BPF side stopped it
 * (SIGSTOP) at the offending write, before any vCPU re-entered the guest;
 * here the correcting ioctls are injected with libcompel (inject.c), the
 * result is read back from the BPF side, and the VMM is let go.
 *
 * Never when unsure: every doubt (VM fd gone, VMM exited or exec'd, a VM
 * that arrived by migration, another clock write since the violation, vCPU
 * count changed, rate limit hit) refuses the correction, says why, and
 * leaves the VMM running exactly as before.
 */
#include <bpf/bpf.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <json-c/json.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hvguard/clock.h"
#include "clock.skel.h"
#include "clock_user.h"
#include "format.h"
#include "hostclock.h"
#include "hvguard/clock_logic.h"
#include "inject.h"
#include "json_util.h"
#include "metrics.h"
#include "rules.h"
#include "worker.h"

#define FREEZE_WAIT_MS 500
/* From the seize to the VMM's stop: microseconds on a stopped VMM, a few
 * milliseconds nested under TCG. */
#define SEIZE_DEADLINE_MS HV_INJECT_SEIZE_MS
/* From the seize to the release (see run_round). */
#define ROUND_DEADLINE_MS 2000
#define STUCK_ROUNDS_MAX  4
#define MAX_TRACKED_VMS	  256
/* See the watchdog, below. */
#define FREEZE_DEADLINE_MS 500
#define WATCHDOG_PERIOD_MS 20

static pthread_t watchdog;
static bool watchdog_running;
static atomic_bool watchdog_stop;
static atomic_ullong working_on; /* struct kvm * being corrected, or 0 */
static atomic_uint working_pid;	 /* its VMM */
/* Held while the watchdog decides on a freeze and while a correction claims
 * one: a freeze is either released or claimed, never both. */
static pthread_mutex_t freeze_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_ullong watchdog_releases;
static atomic_ullong not_continued; /* see release_stale_one */

static struct clock_bpf *skel;

/* A token bucket per VM (max_corrections_per_min tokens, refilled at that
 * rate): a burst up to the limit passes, a correction loop does not. Keyed
 * by the VM's stable id; when the table is full, the bucket left alone the
 * longest goes (it has refilled by then, unless hundreds of VMs correct at
 * once). */
static struct {
	uint64_t vm_id;
	double tokens;
	uint64_t last_ns;
} buckets[MAX_TRACKED_VMS];

struct correction {
	const char *result; /* applied | refused | failed */
	char reason[256];
	struct json_object *before;
	struct json_object *after;
	long long residual_ns; /* kvmclock: achieved - wanted offset */
	bool has_residual;
	char text[512];
	/* Where the freeze time went, CLOCK_BOOTTIME ns since the freeze. */
	const struct hv_clock_event *event;
	const struct hv_mig_fix *mig; /* migration-clock-warp: the clocks wanted */
	uint64_t noticed, stopped, seized, repaired;
	const atomic_bool *abandoned; /* set when the event loop gave up on the round */
};

/*
 * Ends a freeze. Whoever deletes its record (the correction, or the
 * watchdog when the daemon was late) sends the one SIGCONT: a second one
 * could cancel the VMM's next freeze. The record goes before the signal:
 * once the VMM runs, its next violation may freeze it under the same key.
 */
static void release_frozen(__u64 kvm, int pid)
{
	if (!bpf_map_delete_elem(bpf_map__fd(skel->maps.hv_clock_frozen), &kvm))
		kill(pid, SIGCONT);
}

static uint64_t since_freeze(const struct correction *c)
{
	return hv_now_ns(CLOCK_BOOTTIME) - c->event->ts_ns;
}

/* refuse(): not done because unsure or not possible, VMM untouched;
 * failed(): tried and did not work. Both say why, and return -1. */
#define refuse(c, ...) verdict((c), "refused", __VA_ARGS__)
#define failed(c, ...) verdict((c), "failed", __VA_ARGS__)

static int verdict(struct correction *c, const char *result, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int verdict(struct correction *c, const char *result, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
	va_end(ap);
	c->result = result;
	return -1;
}

static unsigned bucket_of(uint64_t vm_id, uint32_t per_min, uint64_t now)
{
	unsigned oldest = 0;

	for (unsigned i = 0; i < MAX_TRACKED_VMS; i++) {
		if (buckets[i].vm_id == vm_id)
			return i;
		if (buckets[i].last_ns < buckets[oldest].last_ns)
			oldest = i;
	}
	buckets[oldest].vm_id = vm_id;
	buckets[oldest].tokens = per_min;
	buckets[oldest].last_ns = now;
	return oldest;
}

/* true when one more correction of this VM stays within the rate limit */
static bool rate_ok(uint64_t vm_id, uint32_t per_min)
{
	uint64_t now = hv_now_ns(CLOCK_MONOTONIC);
	unsigned slot = bucket_of(vm_id, per_min, now);

	buckets[slot].tokens += (now - buckets[slot].last_ns) / 60e9 * per_min;
	if (buckets[slot].tokens > per_min)
		buckets[slot].tokens = per_min;
	buckets[slot].last_ns = now;
	if (buckets[slot].tokens < 1)
		return false;
	buckets[slot].tokens -= 1;
	return true;
}

/* Does fd in pid still name the expected KVM object ("kvm-vm", "kvm-vcpu:N")? */
static bool fd_is(int pid, long long fd, const char *what)
{
	char path[64], link[64], want[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/fd/%lld", pid, fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return false;
	link[n] = '\0';
	snprintf(want, sizeof(want), "anon_inode:%s", what);
	return !strcmp(link, want);
}

static int lookup_vm(const struct hv_clock_event *e, struct hv_clock_vm *vm, struct correction *c)
{
	if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.hv_clock_vms), &e->vm_key, vm))
		return refuse(c, "the VM is gone");
	if (vm->owner_tgid != e->pid)
		return refuse(c, "the VM now belongs to another process");
	if ((vm->flags & VM_F_MIGRATED_IN) && e->rule != HV_RULE_MIGRATION_CLOCK_WARP)
		return refuse(c,
			      "the VM arrived by migration: its clocks came from the source host");
	return 0;
}

/* The VMM must be stopped (T) by the BPF side's SIGSTOP before we touch it. */
static int wait_frozen(int pid, struct correction *c)
{
	char state;

	if (hv_inject_wait_state(pid, 'T', FREEZE_WAIT_MS) == 0)
		return 0;
	state = hv_inject_task_state(pid);
	if (!state)
		return refuse(c, "the VMM exited before it could be corrected");
	return refuse(c, "the VMM did not stop within %d ms (state %c)", FREEZE_WAIT_MS, state);
}

static int probe_map_fd(void)
{
	return bpf_map__fd(skel->maps.hv_clock_correcting);
}

static int inject_begin(int pid, struct hv_injector **inj, struct correction *c)
{
	struct hv_clock_probe zero = {.since_ns = hv_now_ns(CLOCK_BOOTTIME)};
	char err[256];
	__u32 key = pid;
	int rc;

	/* Mark the VMM first: our injected ioctls must not trip the rules. */
	if (bpf_map_update_elem(probe_map_fd(), &key, &zero, BPF_ANY))
		return failed(c, "cannot mark the VMM as being corrected: %s", strerror(errno));
	rc = hv_inject_begin_within(pid, SEIZE_DEADLINE_MS, inj, err, sizeof(err));
	if (rc) {
		bpf_map_delete_elem(probe_map_fd(), &key);
		if (rc == -ETIMEDOUT)
			return refuse(c, "the VMM did not stop within %d ms of the seize: %s",
				      SEIZE_DEADLINE_MS, err);
		return rc == -ESRCH ? refuse(c, "the VMM exited: %s", err)
				    : failed(c, "cannot seize the VMM: %s", err);
	}
	return 0;
}

/*
 * Unmark the VMM while it is still seized and stopped, then release it
 * running. In the other order a vCPU thread released first could make its
 * own next clock write (another violation) before the unmark, and it would
 * pass for one of ours.
 */
static void inject_end(int pid, struct hv_injector *inj)
{
	__u32 key = pid;

	bpf_map_delete_elem(probe_map_fd(), &key);
	hv_inject_end_running(inj);
}

/*
 * The VM's kvmclock_offset now, read in the kernel by the resync program
 * (BPF_PROG_TEST_RUN on the VM's struct kvm *, which KVM gave the BPF
 * side), which also makes it the offset the guest is known to run with:
 * the corrector's own repair is not a jump.
 */
static int kvmclock_offset_now(__u64 kvm, __s64 *offset)
{
	__u64 args[1] = {kvm};
	LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = args, .ctx_size_in = sizeof(args));

	if (bpf_prog_test_run_opts(bpf_program__fd(skel->progs.hv_clock_resync), &opts))
		return -errno;
	if (!skel->bss->resync_found)
		return -ENOENT;
	*offset = skel->bss->resync_offset;
	return 0;
}

/* A VMM's KVM fds, from /proc/PID/fd ("anon_inode:kvm-vm", "kvm-vcpu:N"). */
struct vcpu_scan {
	struct {
		int id, fd;
	} vcpu[HV_MAX_VCPUS];
	int vms;
	int vm_fd;
	int found;    /* vCPU fds in vcpu[] */
	int too_many; /* vCPU fds past HV_MAX_VCPUS */
};

static int note_vcpu_fd(int fd, const char *link, void *arg)
{
	struct vcpu_scan *vs = arg;
	int id;

	if (!strcmp(link, "anon_inode:kvm-vm")) {
		vs->vms++;
		vs->vm_fd = fd;
	} else if (sscanf(link, "anon_inode:kvm-vcpu:%d", &id) == 1 && id >= 0) {
		if (vs->found == HV_MAX_VCPUS) {
			vs->too_many++;
			return 0;
		}
		vs->vcpu[vs->found].id = id;
		vs->vcpu[vs->found++].fd = fd;
	}
	return 0;
}

/* The fd of vCPU id (any id: they are APIC ids, sparse), -1 if none. */
static int vcpu_fd(const struct vcpu_scan *vs, int id)
{
	for (int i = 0; i < vs->found; i++)
		if (vs->vcpu[i].id == id)
			return vs->vcpu[i].fd;
	return -1;
}

/* The fds of the only VM in pid and of its vCPUs. With several VMs in one
 * process a vCPU fd does not say which VM it belongs to: refuse. */
static int scan_fds(int pid, struct vcpu_scan *vs, struct correction *c)
{
	*vs = (struct vcpu_scan){.vm_fd = -1};
	if (hv_proc_for_each_fd(pid, note_vcpu_fd, vs) == -ESRCH)
		return refuse(c, "the VMM exited");
	if (vs->vms != 1)
		return refuse(c, "the VMM holds %d VMs: its fds cannot be told apart", vs->vms);
	if (vs->too_many)
		return refuse(c, "the VM has over %d vCPUs, more than hvguard tracks",
			      HV_MAX_VCPUS);
	return 0;
}

/*
 * kvmclock: put kvm->arch.kvmclock_offset back where it was before the
 * rewind, with one injected KVM_SET_CLOCK{clock, realtime, REALTIME}.
 * KVM sets offset = clock + (its realtime now - realtime) - its base now,
 * where base is CLOCK_MONOTONIC_RAW + the boot offset (x86's
 * get_kvmclock_base_ns, or the master clock's snapshot of it taken in the
 * same call). Read base and realtime here, just before injecting, and pass
 * clock = wanted offset + base: the time the injection takes then cancels
 * out, up to the drift between the raw and the real clock over it (NTP's
 * frequency correction, under 500 ppm) and KVM's own gap between its two
 * samples. No KVM_GET_CLOCK is needed, so no hook on the ioctl either.
 */
static void host_clock_pair(__u64 *base, __u64 *real)
{
	struct hv_host_clocks c;

	hv_host_clocks_read(&c);
	*real = (__u64)c.real;
	*base = (__u64)c.base;
}

/* The VM's kvmclock_offset from `from` to `wanted`, through fd. */
/*
 * KVM_SET_CLOCK lands ahead of the offset wanted by KVM's own gap between
 * its two clock samples: microseconds, but a preemption between them (a
 * host under load, an emulated CPU) puts milliseconds into the guest's
 * clock. The offset reached is read back, so a write that landed more than
 * SET_CLOCK_RETRY_NS off is made again, SET_CLOCK_TRIES times at most,
 * while the VMM is still held: the gap does not repeat.
 */
#define SET_CLOCK_RETRY_NS 50000
#define SET_CLOCK_TRIES	   3

static int set_kvmclock_offset(__u64 kvm, int fd, __s64 from, __s64 wanted, struct hv_injector *inj,
			       struct correction *c)
{
	struct kvm_clock_data data = {.flags = KVM_CLOCK_REALTIME};
	__u64 base, real;
	__s64 now;
	long ret;
	int rc, tries = 0;

	rc = kvmclock_offset_now(kvm, &now);
	if (rc)
		return refuse(c, "the VM is gone: %s", strerror(-rc));
	if (now != from)
		return refuse(c, "the kvmclock offset moved since the violation (%lld, not %lld)",
			      (long long)now, (long long)from);
	do {
		host_clock_pair(&base, &real);
		data.clock = base + wanted;
		data.realtime = real;
		rc = hv_inject_ioctl(inj, fd, KVM_SET_CLOCK, &data, sizeof(data), &ret);
		if (rc || ret)
			return failed(c, "KVM_SET_CLOCK inside the VMM: %s",
				      strerror(rc ? -rc : -ret));
		rc = kvmclock_offset_now(kvm, &now);
		if (rc)
			return failed(c, "cannot read the offset back: %s", strerror(-rc));
	} while (++tries < SET_CLOCK_TRIES && llabs(now - wanted) > SET_CLOCK_RETRY_NS &&
		 !atomic_load(c->abandoned));
	hv_json_add_int(c->before, "kvmclock_offset", from);
	hv_json_add_int(c->after, "kvmclock_offset", now);
	hv_json_add_int(c->after, "wanted_kvmclock_offset", wanted);
	hv_json_add_int(c->after, "set_clock_writes", tries);
	c->residual_ns = now - wanted;
	c->has_residual = true;
	return 0;
}

static int fix_kvmclock(const struct hv_clock_event *e, struct hv_injector *inj,
			struct correction *c)
{
	int fd = (int)e->jump.fd;
	struct vcpu_scan vs;

	if (fd < 0) { /* not seen on the kvm-tracepoints tier */
		if (scan_fds(e->pid, &vs, c))
			return -1;
		fd = vs.vm_fd;
	}
	return set_kvmclock_offset(e->vm_key, fd, e->jump.offset_after, e->jump.offset_before, inj,
				   c);
}

/* KVM_SET_DEVICE_ATTR(KVM_VCPU_TSC_CTRL, KVM_VCPU_TSC_OFFSET) with a
 * pointer into the VMM: the attribute and the value share one scratch
 * buffer, whose address is known once KVM_HAS_DEVICE_ATTR mapped it. */
static int set_tsc_offset(struct hv_injector *inj, int fd, __s64 offset, struct correction *c)
{
	struct {
		struct kvm_device_attr attr;
		__u64 value;
	} buf = {.attr = {.group = KVM_VCPU_TSC_CTRL, .attr = KVM_VCPU_TSC_OFFSET}};
	long ret;
	int rc;

	rc = hv_inject_ioctl(inj, fd, KVM_HAS_DEVICE_ATTR, &buf, sizeof(buf), &ret);
	if (rc || ret)
		return failed(c, "this KVM has no TSC offset attribute: %s",
			      strerror(rc ? -rc : -ret));
	buf.attr.addr = hv_inject_scratch(inj) + offsetof(typeof(buf), value);
	buf.value = offset;
	rc = hv_inject_ioctl(inj, fd, KVM_SET_DEVICE_ATTR, &buf, sizeof(buf), &ret);
	if (rc || ret)
		return failed(c, "KVM_SET_DEVICE_ATTR(TSC_OFFSET) inside the VMM: %s",
			      strerror(rc ? -rc : -ret));
	return 0;
}

static int recorded_offset(const struct hv_clock_event *e, int vcpu, __s64 *offset)
{
	struct hv_clock_vm vm;

	int slot;

	if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.hv_clock_vms), &e->vm_key, &vm))
		return -1;
	slot = hv_vcpu_slot_of(&vm, vcpu);
	if (slot < 0)
		return -1;
	*offset = vm.tsc_offset[slot];
	return 0;
}

static int fix_tsc_offset(const struct hv_clock_event *e, struct hv_injector *inj,
			  struct correction *c)
{
	struct vcpu_scan vs;
	int fd;
	__s64 now;

	if (scan_fds(e->pid, &vs, c))
		return -1;
	fd = vcpu_fd(&vs, e->vcpu);
	if (fd < 0)
		return refuse(c, "vCPU %d has no fd in the VMM", e->vcpu);
	/* Another host write since the alert has an alert of its own, judged
	 * from the same offset the vCPU ran with: that one restores it. */
	if (recorded_offset(e, e->vcpu, &now))
		return refuse(c, "the VM is gone");
	if (now != e->tsc.after)
		return refuse(c, "vCPU %d's offset moved again since the alert (%lld, not %lld)",
			      e->vcpu, (long long)now, (long long)e->tsc.after);
	if (set_tsc_offset(inj, fd, e->tsc.before, c))
		return -1;
	/* On kernels where the offset reads back as 0 the tracepoint's value,
	 * recorded by the BPF side, is the proof. */
	if (recorded_offset(e, e->vcpu, &now))
		return failed(c, "the VM vanished during the correction");
	hv_json_add_int(c->before, "offset", e->tsc.after);
	hv_json_add_int(c->after, "offset", now);
	if (now != e->tsc.before)
		return failed(c, "vCPU %d's offset is %lld after the write, not %lld", e->vcpu,
			      (long long)now, (long long)e->tsc.before);
	return 0;
}

static int fix_mismatch(const struct hv_clock_event *e, struct hv_injector *inj,
			struct correction *c)
{
	struct vcpu_scan vs;
	struct hv_clock_vm vm;
	__s64 ref = e->mismatch.ref_offset;
	int n, fixed = 0;

	if (scan_fds(e->pid, &vs, c))
		return -1;
	n = vs.found;
	if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.hv_clock_vms), &e->vm_key, &vm))
		return refuse(c, "the VM is gone");
	if ((long long)vm.nr_vcpus != e->mismatch.nr_vcpus || n != (int)vm.nr_vcpus)
		return refuse(c, "the vCPU count changed (%u now, %lld then, %d fds)", vm.nr_vcpus,
			      (long long)e->mismatch.nr_vcpus, n);
	hv_json_add_int(c->before, "reference_offset", ref);
	for (__u32 i = 0; i < vm.nr_vcpus && i < HV_MAX_VCPUS; i++) {
		int id = (int)vm.vcpu_ids[i] - 1, fd = vcpu_fd(&vs, id);

		if (!hv_bit_test(vm.tsc_known, i) || hv_bit_test(vm.tsc_guest, i) ||
		    vm.tsc_offset[i] == ref)
			continue;
		if (fd < 0)
			return refuse(c, "vCPU %d has no fd in the VMM", id);
		if (set_tsc_offset(inj, fd, ref, c))
			return -1;
		fixed++;
	}
	if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.hv_clock_vms), &e->vm_key, &vm))
		return failed(c, "the VM vanished during the correction");
	for (__u32 i = 0; i < vm.nr_vcpus && i < HV_MAX_VCPUS; i++)
		if (hv_bit_test(vm.tsc_known, i) && !hv_bit_test(vm.tsc_guest, i) &&
		    vm.tsc_offset[i] != ref)
			return failed(c, "vCPU %d's offset is still %lld", (int)vm.vcpu_ids[i] - 1,
				      (long long)vm.tsc_offset[i]);
	hv_json_add_int(c->after, "vcpus_aligned", fixed);
	return 0;
}

/*
 * migration-clock-warp: every vCPU's TSC offset and the kvmclock offset
 * moved to where the source's clocks would be now (c->mig, from the
 * departure matched), before the guest's first instruction here.
 */
static int fix_migration(const struct hv_clock_event *e, struct hv_injector *inj,
			 struct correction *c)
{
	const struct hv_mig_fix *m = c->mig;
	struct vcpu_scan vs;
	struct json_object *before = json_object_new_array(), *after = json_object_new_array();
	__s64 now;

	json_object_object_add(c->before, "tsc_offsets", before);
	json_object_object_add(c->after, "tsc_offsets", after);
	if (scan_fds(e->pid, &vs, c))
		return -1;
	for (int i = 0; i < m->nr_vcpus; i++)
		if (vcpu_fd(&vs, m->vcpu_id[i]) < 0)
			return refuse(c, "vCPU %d has no fd in the VMM", m->vcpu_id[i]);
	for (int i = 0; i < m->nr_vcpus; i++) {
		if (set_tsc_offset(inj, vcpu_fd(&vs, m->vcpu_id[i]), m->tsc_offset_wanted[i], c))
			return -1;
		json_object_array_add(before, json_object_new_int64(m->tsc_offset_now[i]));
		if (recorded_offset(e, m->vcpu_id[i], &now))
			return failed(c, "the VM vanished during the correction");
		json_object_array_add(after, json_object_new_int64(now));
		if (now != m->tsc_offset_wanted[i])
			return failed(c, "vCPU %d's offset is %lld after the write, not %lld",
				      m->vcpu_id[i], (long long)now,
				      (long long)m->tsc_offset_wanted[i]);
	}
	return set_kvmclock_offset(e->vm_key, vs.vm_fd, m->kvmclock_offset_now,
				   m->kvmclock_offset_wanted, inj, c);
}

/* Claims the freeze for this correction: from here on the watchdog keeps
 * off. False when the watchdog released it already. */
static bool still_frozen(const struct hv_clock_event *e)
{
	__u64 since;
	bool frozen;

	pthread_mutex_lock(&freeze_lock);
	atomic_store(&working_pid, e->pid);
	atomic_store(&working_on, e->vm_key);
	frozen = !bpf_map_lookup_elem(bpf_map__fd(skel->maps.hv_clock_frozen), &e->vm_key, &since);
	pthread_mutex_unlock(&freeze_lock);
	return frozen;
}

/* The round itself, in a thread of its own (see run_round). */
static int round_in_vmm(const struct hv_clock_event *e, struct correction *c)
{
	struct hv_injector *inj = NULL;
	int rc;

	if (inject_begin(e->pid, &inj, c))
		return -1;
	c->seized = since_freeze(c);
	if (atomic_load(c->abandoned)) /* too late: the daemon reported it failed */
		goto release;
	switch (e->rule) {
	case HV_RULE_KVMCLOCK_JUMP:
		rc = fix_kvmclock(e, inj, c);
		break;
	case HV_RULE_TSC_OFFSET_CHANGE:
		rc = fix_tsc_offset(e, inj, c);
		break;
	case HV_RULE_VCPU_TSC_MISMATCH:
		rc = fix_mismatch(e, inj, c);
		break;
	case HV_RULE_MIGRATION_CLOCK_WARP:
		rc = c->mig ? fix_migration(e, inj, c) : refuse(c, "no source to correct from");
		break;
	default:
		rc = refuse(c, "no safe correction exists for this rule");
	}
	c->repaired = since_freeze(c);
	inject_end(e->pid, inj);
	return rc;
release:
	inject_end(e->pid, inj);
	return -1;
}

/*
 * A round's copies of what it works on: the event lives in the ring and the
 * correction on the caller's stack, and a round past its deadline goes on
 * without its caller.
 */
struct round {
	struct hv_clock_event e;
	struct hv_mig_fix mig;
	struct correction c;
	atomic_bool abandoned;
	bool done;
	int rc;
};

static pthread_mutex_t round_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t round_done;
static pthread_once_t round_once = PTHREAD_ONCE_INIT;
static unsigned stuck_rounds;

static void round_init(void)
{
	hv_worker_cond_init(&round_done);
}

static void round_free(struct round *r)
{
	json_object_put(r->c.before);
	json_object_put(r->c.after);
	free(r);
}

static void *round_main(void *arg)
{
	struct round *r = arg;
	int rc = round_in_vmm(&r->e, &r->c);

	pthread_mutex_lock(&round_lock);
	r->rc = rc;
	r->done = true;
	if (atomic_load(&r->abandoned)) {
		stuck_rounds--;
		pthread_mutex_unlock(&round_lock);
		round_free(r);
		return NULL;
	}
	pthread_cond_broadcast(&round_done);
	pthread_mutex_unlock(&round_lock);
	return NULL;
}

static struct round *round_new(const struct hv_clock_event *e, const struct correction *c)
{
	struct round *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->e = *e;
	r->c = *c;
	r->c.event = &r->e;
	if (c->mig) {
		r->mig = *c->mig;
		r->c.mig = &r->mig;
	}
	r->c.abandoned = &r->abandoned;
	r->c.before = json_object_new_object();
	r->c.after = json_object_new_object();
	return r;
}

/* The round's verdict and findings into the caller's correction. */
static int round_take(struct round *r, struct correction *c)
{
	struct json_object *before = c->before, *after = c->after;
	const struct hv_clock_event *e = c->event;
	const struct hv_mig_fix *mig = c->mig;
	int rc = r->rc;

	*c = r->c;
	c->event = e;
	c->mig = mig;
	c->abandoned = NULL;
	r->c.before = before; /* freed with r */
	r->c.after = after;
	round_free(r);
	return rc;
}

/*
 * The seize, the repair and the release run in a thread that exits after
 * the round: a VMM that does not stop within SEIZE_DEADLINE_MS stays
 * seized by the thread that tried (ptrace cannot detach a task that is not
 * stopped), and the kernel detaches it, stop pending and all, as that
 * thread exits. The event loop waits ROUND_DEADLINE_MS for the round, no
 * longer: past it the round was held up in the VMM's memory (its mmap lock
 * kept taken: /proc/PID/maps, process_vm_writev and the injected mmap all
 * wait on it), and its thread is left to finish when the VMM lets it, which
 * then changes nothing in the VMM (c->abandoned). STUCK_ROUNDS_MAX such
 * threads at most; past that no correction is tried.
 */
static int run_round(const struct hv_clock_event *e, struct correction *c)
{
	struct timespec until;
	struct round *r;
	int err, rc = 0;

	pthread_once(&round_once, round_init);
	pthread_mutex_lock(&round_lock);
	err = stuck_rounds >= STUCK_ROUNDS_MAX;
	pthread_mutex_unlock(&round_lock);
	if (err)
		return refuse(c,
			      "%d earlier corrections are still held up in VMMs that do not answer",
			      STUCK_ROUNDS_MAX);
	r = round_new(e, c);
	if (!r || !r->c.before || !r->c.after) {
		if (r)
			round_free(r);
		return failed(c, "out of memory");
	}
	err = hv_worker_start(round_main, r, 0);
	if (err) {
		round_free(r);
		return failed(c, "cannot start the correction's thread: %s", strerror(-err));
	}
	until = hv_worker_deadline(ROUND_DEADLINE_MS);
	pthread_mutex_lock(&round_lock);
	while (!r->done && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&round_done, &round_lock, &until);
	if (!r->done) {
		atomic_store(&r->abandoned, true);
		stuck_rounds++;
		pthread_mutex_unlock(&round_lock);
		return failed(
		    c,
		    "the correction did not finish within %d ms: the VMM's memory does not "
		    "answer (its mmap lock kept taken?); it stays seized until it does, and "
		    "is then let go unchanged",
		    ROUND_DEADLINE_MS);
	}
	pthread_mutex_unlock(&round_lock);
	return round_take(r, c);
}

static int correct_one(struct hv_ctx *ctx, const struct hv_clock_event *e, struct correction *c)
{
	const struct hv_rule *rule = &ctx->rules->rule[e->rule];
	struct hv_clock_vm vm;

	if (lookup_vm(e, &vm, c))
		return -1;
	if (!still_frozen(e)) {
		return refuse(c,
			      "the watchdog already let the VMM go: the daemon came over %d ms "
			      "late",
			      FREEZE_DEADLINE_MS);
	}
	if (e->rule == HV_RULE_KVMCLOCK_JUMP && vm.last_clock_write_ns != e->ts_ns)
		return refuse(c, "another clock write happened since the violation");
	if (!rate_ok(e->vm_id, rule->max_corrections_per_min))
		return refuse(c, "rate limit: %u corrections of this VM in the last minute",
			      rule->max_corrections_per_min);
	if (wait_frozen(e->pid, c))
		return -1;
	c->stopped = since_freeze(c);
	/* The syscalls tier saw the VM's fd at KVM_SET_CLOCK: is it still
	 * that VM's? (Otherwise the fds are found in /proc at the repair.) */
	if (e->rule == HV_RULE_KVMCLOCK_JUMP && e->jump.fd >= 0 &&
	    !fd_is(e->pid, e->jump.fd, "kvm-vm"))
		return refuse(c, "the VM's fd is gone from the VMM (closed, or the VMM exec'd)");
	return run_round(e, c);
}

static struct json_object *correction_json(struct hv_ctx *ctx, const struct hv_clock_event *e,
					   struct correction *c, uint64_t frozen_ns)
{
	const char *rule = hv_rule_table[e->rule].id;
	struct json_object *o = json_object_new_object();
	char comm[17] = "", d[32], r[32] = "";

	memcpy(comm, e->comm, sizeof(e->comm));
	hv_json_add_str(o, "type", "correction");
	hv_json_add_str(o, "rule", rule);
	hv_json_add_int(o, "pid", e->pid);
	hv_json_add_str(o, "comm", comm);
	hv_json_add_int(o, "vm", e->vm_id);
	hv_json_add_int_or_null(o, "vcpu", e->vcpu >= 0, e->vcpu);
	json_object_object_add(o, "before", c->before);
	json_object_object_add(o, "after", c->after);
	hv_json_add_str(o, "result", c->result);
	hv_json_add_str(o, "reason", c->reason[0] ? c->reason : NULL);
	hv_json_add_uint(o, "frozen_ns", frozen_ns);
	hv_json_add_int_or_null(o, "residual_ns", c->has_residual, c->residual_ns);
	struct json_object *t = json_object_new_object();
	hv_json_add_int(t, "noticed", c->noticed / 1000);
	hv_json_add_int(t, "stopped", c->stopped / 1000);
	hv_json_add_int(t, "seized", c->seized / 1000);
	hv_json_add_int(t, "repaired", c->repaired / 1000);
	hv_json_add_int(t, "released", frozen_ns / 1000);
	json_object_object_add(o, "timeline_us", t);
	hv_metrics_correction(ctx->metrics, rule, c->result);
	hv_format_ns(d, sizeof(d), frozen_ns);
	if (c->has_residual)
		hv_format_ns(r, sizeof(r), c->residual_ns);
	snprintf(c->text, sizeof(c->text),
		 "correction %s %s[%u] vm %llu: %s%s%s%s%s (VMM frozen %s)", rule, comm, e->pid,
		 (unsigned long long)e->vm_id, c->result, c->reason[0] ? ": " : "", c->reason,
		 c->has_residual ? ", residual " : "", r, d);
	return o;
}

/* Emitted after the alert it repairs; built while the VMM is frozen, but
 * printed only once it runs again, so that output never lengthens a freeze. */
void hv_correct_emit(struct hv_ctx *ctx, struct hv_correction_report *report)
{
	if (!report->json)
		return;
	hv_emit_correction(ctx, report->json, report->text);
	report->json = NULL;
}

void hv_correct_frozen(struct hv_ctx *ctx, const struct hv_clock_event *e,
		       struct hv_correction_report *report)
{
	hv_correct_migration(ctx, e, NULL, report);
}

/* A VM frozen at its arrival with nothing to repair: let it go as it is. */
void hv_correct_release(const struct hv_clock_event *e)
{
	release_frozen(e->vm_key, e->pid);
}

void hv_correct_migration(struct hv_ctx *ctx, const struct hv_clock_event *e,
			  const struct hv_mig_fix *fix, struct hv_correction_report *report)
{
	struct correction c = {.result = "applied", .event = e, .mig = fix};
	uint64_t frozen_ns;

	c.noticed = since_freeze(&c);
	c.before = json_object_new_object();
	c.after = json_object_new_object();
	if (e->rule >= HV_RULE_COUNT)
		refuse(&c, "unknown rule");
	else
		correct_one(ctx, e, &c);
	/* Whatever happened, the VMM runs again: a refused or failed
	 * correction leaves it as it was. The freeze ends as SIGCONT goes out:
	 * timed before, since the woken VMM may preempt us inside kill(). */
	frozen_ns = hv_now_ns(CLOCK_BOOTTIME) - e->ts_ns;
	release_frozen(e->vm_key, e->pid);
	atomic_store(&working_on, 0);
	atomic_store(&working_pid, 0);
	report->json = correction_json(ctx, e, &c, frozen_ns);
	snprintf(report->text, sizeof(report->text), "%s", c.text);
}

void hv_correct_refused_traced(struct hv_ctx *ctx, const struct hv_clock_event *e,
			       struct hv_correction_report *report)
{
	struct correction c = {.event = e};

	c.before = json_object_new_object();
	c.after = json_object_new_object();
	refuse(&c, "the VMM is traced (a debugger or another tracer): hvguard never stops a traced "
		   "process, whose tracer would pass the stop on after the release");
	report->json = correction_json(ctx, e, &c, 0);
	snprintf(report->text, sizeof(report->text), "%s", c.text);
}

static void inject_log(unsigned int level, const char *msg, void *arg)
{
	(void)arg;
	hv_warn("correction: %s%s", level <= HV_INJECT_LOG_ERROR ? "error: " : "", msg);
}

/*
 * The watchdog: a VMM the BPF side froze must never stay frozen because the
 * daemon is late (its output blocked on a full pipe, the host overloaded).
 * A thread of its own, independent of the event loop, continues every VMM
 * frozen longer than FREEZE_DEADLINE_MS that no correction is working on.
 * The event loop, when it gets to that event, finds the freeze gone and
 * reports the correction refused.
 */

/*
 * The watchdog releases a VMM found through its pinned VM state. That pid
 * may no longer be the VMM frozen (it died while no daemon ran, and the pid
 * went to another process, which may be stopped for reasons of its own): a
 * process that started after the freeze (since, CLOCK_BOOTTIME, the clock
 * of /proc's start times) is not it. Its record goes, and no SIGCONT.
 */
static bool release_stale_one(__u64 kvm, __u64 since)
{
	struct hv_clock_vm vm;
	uint64_t start;

	if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.hv_clock_vms), &kvm, &vm)) {
		bpf_map_delete_elem(bpf_map__fd(skel->maps.hv_clock_frozen), &kvm);
		return false;
	}
	start = hv_proc_start_ns(vm.owner_tgid);
	if (start && start <= since) {
		release_frozen(kvm, vm.owner_tgid);
		return true;
	}
	if (!bpf_map_delete_elem(bpf_map__fd(skel->maps.hv_clock_frozen), &kvm) && start)
		atomic_fetch_add(&not_continued, 1);
	return false;
}

/* Said from the event loop's thread, never the watchdog's. */
static void say_not_continued(void)
{
	unsigned long long n = atomic_exchange(&not_continued, 0);

	if (n)
		hv_warn("dropped %llu frozen record(s) whose VMM pid now names a process started "
			"after the freeze: not the VMM frozen, so not continued",
			n);
}

/*
 * Is the freeze recorded at since (CLOCK_BOOTTIME) older than max_age_ns
 * (0: every freeze is)? The clock is read after the record: a freeze made
 * while the walk ran is younger than any "now" read before it, and an
 * unsigned now - since would have made it the oldest of all.
 */
static bool freeze_expired(__u64 since, uint64_t max_age_ns)
{
	__u64 now = hv_now_ns(CLOCK_BOOTTIME);

	return !max_age_ns || (now > since && now - since >= max_age_ns);
}

/* Releases one frozen VMM if it is older than max_age_ns and no
 * correction claimed it. */
static bool release_if_stale(int fd, __u64 key, uint64_t max_age_ns)
{
	bool released = false;
	__u64 since;

	pthread_mutex_lock(&freeze_lock);
	if (!bpf_map_lookup_elem(fd, &key, &since) && key != atomic_load(&working_on) &&
	    freeze_expired(since, max_age_ns))
		released = release_stale_one(key, since);
	pthread_mutex_unlock(&freeze_lock);
	return released;
}

/* Releases every frozen VMM older than max_age_ns (0: all). */
static unsigned release_stale(uint64_t max_age_ns)
{
	int fd = bpf_map__fd(skel->maps.hv_clock_frozen);
	__u64 key, next, *prev = NULL;
	unsigned n = 0;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if (release_if_stale(fd, key, max_age_ns)) {
			n++;
			prev = NULL; /* the walk restarts after a delete */
		}
	}
	return n;
}

/*
 * Marks of VMMs being corrected (pinned, shared by the daemons of one pin
 * directory) that a daemon killed mid-correction left behind: no correction
 * takes this long, and a stale mark would make the VMM's writes pass for
 * injected ones. Keyed by the VMM's pid; the one being corrected here is
 * skipped.
 */
#define MARK_MAX_AGE_NS (2 * 1000000000ull)

static void drop_stale_marks(void)
{
	int fd = probe_map_fd();
	__u32 key, next, *prev = NULL, busy = atomic_load(&working_pid);
	struct hv_clock_probe p;
	__u64 now = hv_now_ns(CLOCK_BOOTTIME);

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if (key == busy || bpf_map_lookup_elem(fd, &key, &p))
			continue;
		if (now - p.since_ns > MARK_MAX_AGE_NS)
			bpf_map_delete_elem(fd, &key);
	}
}

static void *watchdog_main(void *arg)
{
	struct timespec period = {0, WATCHDOG_PERIOD_MS * 1000000L};

	(void)arg;
	while (!atomic_load(&watchdog_stop)) {
		atomic_fetch_add(&watchdog_releases,
				 release_stale(FREEZE_DEADLINE_MS * 1000000ull));
		drop_stale_marks();
		nanosleep(&period, NULL);
	}
	return NULL;
}

int hv_correct_init(struct hv_ctx *ctx, struct clock_bpf *s)
{
	sigset_t all, old;
	unsigned left;
	int err;

	skel = s;
	hv_inject_set_log(inject_log, ctx->opts.verbose ? HV_INJECT_LOG_WARN : HV_INJECT_LOG_ERROR,
			  NULL);
	/* A daemon that died with a VMM frozen left it stopped: let it go. */
	left = release_stale(0);
	drop_stale_marks();
	say_not_continued();
	if (left)
		hv_warn("continued %u VMM(s) a previous hvguard left frozen for a correction",
			left);
	if (!skel->rodata->cfg.correct_mask)
		return 0;
	/* The watchdog must not take the signals meant for the event loop. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = pthread_create(&watchdog, NULL, watchdog_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		hv_err("cannot start the correction watchdog: %s", strerror(err));
		return -err;
	}
	watchdog_running = true;
	return 0;
}

void hv_correct_poll(struct hv_ctx *ctx)
{
	unsigned long long n = atomic_exchange(&watchdog_releases, 0);

	if (n)
		hv_warn("the watchdog continued %llu VMM(s) frozen over %d ms: the daemon was late "
			"(output blocked? host overloaded?)",
			n, FREEZE_DEADLINE_MS);
	say_not_continued();
	hv_metric_add(ctx->metrics, HV_METRIC_WATCHDOG_RELEASES, "", n);
}

void hv_correct_fini(struct hv_ctx *ctx)
{
	(void)ctx;
	if (watchdog_running) {
		atomic_store(&watchdog_stop, true);
		pthread_join(watchdog, NULL);
		watchdog_running = false;
	}
	/* No VMM stays frozen behind a daemon that stops. */
	if (skel)
		release_stale(0);
	skel = NULL;
}
