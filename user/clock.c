// SPDX-License-Identifier: GPL-2.0
/*
 * The clock family, userspace side: configures and loads clock.bpf.c,
 * keeps its pinned state tidy, and turns its events into alerts a person
 * on call can act on.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hvguard/clock.h" /* before the skeleton, which uses its types */
#include "clock.skel.h"
#include "clock_user.h"
#include "format.h"
#include "hvguard.h"
#include "json_util.h"
#include "kallsyms.h"
#include "metrics.h"
#include "pindir.h"
#include "rules.h"

static struct clock_bpf *skel;

static const char *const kvm_tracepoints[] = {
    "kvm/kvm_write_tsc_offset",
    "kvm/kvm_pvclock_update",
    "kvm/kvm_msr",
};

static bool tracepoint_exists(const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "/sys/kernel/tracing/events/%s", name);
	return access(path, F_OK) == 0;
}

static bool clock_present(struct hv_ctx *ctx, char *why, size_t len)
{
	(void)ctx;
	if (access("/dev/kvm", F_OK)) {
		snprintf(why, len, "no /dev/kvm on this host (load kvm_intel or kvm_amd)");
		return false;
	}
	return true;
}

static const char *ioctl_name(long long cmd)
{
	switch ((unsigned)cmd) {
	case HV_KVM_SET_MSRS:
		return "KVM_SET_MSRS";
	case HV_KVM_SET_DEVICE_ATTR:
		return "KVM_SET_DEVICE_ATTR";
	case HV_KVM_CREATE_VCPU:
		return "KVM_CREATE_VCPU";
	case HV_KVM_SET_CLOCK:
		return "KVM_SET_CLOCK";
	case HV_KVM_SET_TSC_KHZ:
		return "KVM_SET_TSC_KHZ";
	}
	return "ioctl";
}

static void describe_kvmclock_jump(const struct hv_clock_event *e, struct hv_alert *a)
{
	char jump[32], paused[32];

	hv_json_add_int(a->fields, "jump_ns", e->jump.ns);
	hv_json_add_int_or_null(a->fields, "paused_ns", e->jump.paused_ns >= 0, e->jump.paused_ns);
	hv_json_add_int(a->fields, "kvmclock_offset_before", e->jump.offset_before);
	hv_json_add_int(a->fields, "kvmclock_offset_after", e->jump.offset_after);
	hv_json_add_int_or_null(a->fields, "set_clock_flags", e->jump.set_flags >= 0,
				e->jump.set_flags);
	hv_format_ns(jump, sizeof(jump), e->jump.ns < 0 ? -e->jump.ns : e->jump.ns);
	if (e->jump.paused_ns >= 0)
		hv_format_ns(paused, sizeof(paused), e->jump.paused_ns);
	snprintf(a->message, sizeof(a->message),
		 "KVM_SET_CLOCK %s the VM's kvmclock by %s%s%s%s: the guest's kvmclock and TSC now "
		 "disagree by that much. %s",
		 e->jump.ns < 0 ? "rewound" : "advanced", jump,
		 e->jump.paused_ns >= 0 ? " after a " : "", e->jump.paused_ns >= 0 ? paused : "",
		 e->jump.paused_ns >= 0 ? " pause" : "",
		 e->jump.ns < 0 &&
			 (e->jump.set_flags < 0 || !(e->jump.set_flags & HV_KVM_CLOCK_REALTIME))
		     ? "This is the stop/cont rewind of QEMU and crosvm; --correct repairs it "
		       "in place."
		     : "The VMM restored the clock to the wrong value; --correct repairs it.");
}

static void describe_tsc_offset(const struct hv_clock_event *e, struct hv_alert *a)
{
	hv_json_add_int(a->fields, "offset_before", e->tsc.before);
	hv_json_add_int(a->fields, "offset_after", e->tsc.after);
	hv_json_add_int_or_null(a->fields, "tsc_written", e->tsc.written >= 0, e->tsc.written);
	hv_json_add_str(a->fields, "ioctl", ioctl_name(e->tsc.ioctl));
	snprintf(a->message, sizeof(a->message),
		 "%s moved vCPU %d's TSC offset by %lld cycles after the VM ran: the guest's TSC "
		 "jumped. Across pause and resume the offset must stay bitwise the same; --correct "
		 "writes it back.",
		 ioctl_name(e->tsc.ioctl), e->vcpu, (long long)(e->tsc.after - e->tsc.before));
}

static void describe_tsc_khz(const struct hv_clock_event *e, struct hv_alert *a)
{
	long long result = e->khz.result;

	hv_json_add_int(a->fields, "khz_before", e->khz.before);
	hv_json_add_int(a->fields, "khz_after", e->khz.after);
	bool known = result != HV_RESULT_UNKNOWN;

	hv_json_add_bool_or_null(a->fields, "applied", known, result == 0);
	hv_json_add_str(a->fields, "error", known && result ? strerror(-result) : NULL);
	hv_json_add_str(a->fields, "correction", "none: no safe correction exists");
	snprintf(a->message, sizeof(a->message),
		 "KVM_SET_TSC_KHZ asked to change vCPU %d from %lld to %lld kHz after it ran (%s). "
		 "No safe correction exists: alert only. Fix the VMM; the VM may need a restart.",
		 e->vcpu, (long long)e->khz.before, (long long)e->khz.after,
		 !known	  ? "seen at its next clock update"
		 : result ? "KVM refused it"
			  : "KVM applied it");
}

static void describe_mismatch(const struct hv_clock_event *e, struct hv_alert *a)
{
	hv_json_add_int(a->fields, "offset", e->mismatch.offset);
	hv_json_add_int(a->fields, "reference_vcpu", e->mismatch.ref_vcpu);
	hv_json_add_int(a->fields, "reference_offset", e->mismatch.ref_offset);
	hv_json_add_int(a->fields, "vcpus_different", e->mismatch.nr_different);
	snprintf(a->message, sizeof(a->message),
		 "vCPU %d runs with TSC offset %lld but vCPU %lld with %lld (%lld vCPU(s) differ): "
		 "the guest's CPUs disagree on the time. --correct aligns them on vCPU %lld.",
		 e->vcpu, (long long)e->mismatch.offset, (long long)e->mismatch.ref_vcpu,
		 (long long)e->mismatch.ref_offset, (long long)e->mismatch.nr_different,
		 (long long)e->mismatch.ref_vcpu);
}

static void describe_khz_mismatch(const struct hv_clock_event *e, struct hv_alert *a)
{
	const struct hv_clock_ev_khz_mismatch *m = &e->khz_mismatch;

	hv_json_add_int(a->fields, "tsc_khz", m->tsc_khz);
	hv_json_add_int(a->fields, "reference_vcpu", m->ref_vcpu);
	hv_json_add_int(a->fields, "reference_tsc_khz", m->ref_tsc_khz);
	hv_json_add_int(a->fields, "vcpus_different", m->nr_different);
	hv_json_add_str(a->fields, "correction", "none: no safe correction exists");
	snprintf(
	    a->message, sizeof(a->message),
	    "vCPU %d runs its TSC at %lld kHz but vCPU %lld at %lld kHz (%lld vCPU(s) differ): "
	    "the guest's TSCs drift apart. No safe correction exists: alert only. Give every "
	    "vCPU the same KVM_SET_TSC_KHZ.",
	    e->vcpu, (long long)m->tsc_khz, (long long)m->ref_vcpu, (long long)m->ref_tsc_khz,
	    (long long)m->nr_different);
}

static void describe_pvclock(const struct hv_clock_event *e, struct hv_alert *a)
{
	char resid[32], raw[32];

	hv_json_add_int(a->fields, "discontinuity_ns", e->pvclock.residual_ns);
	hv_json_add_int(a->fields, "raw_discontinuity_ns", e->pvclock.raw_ns);
	hv_json_add_int(a->fields, "explained_ns", e->pvclock.explained_ns);
	hv_json_add_int(a->fields, "pvclock_flags", e->pvclock.flags);
	hv_format_ns(resid, sizeof(resid), e->pvclock.residual_ns);
	hv_format_ns(raw, sizeof(raw), e->pvclock.raw_ns);
	snprintf(a->message, sizeof(a->message),
		 "the kvmclock KVM published to vCPU %d jumped by %s that no clock write explains "
		 "(raw discontinuity %s) while the TSC was stable: look for host clocksource "
		 "changes or TSC scaling on this host.",
		 e->vcpu, resid, raw);
}

typedef void (*describe_fn)(const struct hv_clock_event *e, struct hv_alert *a);

static const describe_fn describers[HV_RULE_COUNT] = {
    [HV_RULE_KVMCLOCK_JUMP] = describe_kvmclock_jump,
    [HV_RULE_TSC_OFFSET_CHANGE] = describe_tsc_offset,
    [HV_RULE_TSC_KHZ_CHANGE] = describe_tsc_khz,
    [HV_RULE_VCPU_TSC_MISMATCH] = describe_mismatch,
    [HV_RULE_PVCLOCK_DISCONTINUITY] = describe_pvclock,
    [HV_RULE_VCPU_TSC_KHZ_MISMATCH] = describe_khz_mismatch,
};

static void handle_alert(struct hv_ctx *ctx, const struct hv_clock_event *e, const char *comm,
			 const char *vm_name, bool name_unread)
{
	struct hv_correction_report report = {};
	const struct hv_rule *rule;
	struct hv_alert a = {
	    .pid = e->pid,
	    .tid = e->tid,
	    .comm = comm,
	    .vm = (long long)e->vm_id,
	    .vm_name = vm_name,
	    .vm_name_unread = name_unread,
	    .vcpu = e->vcpu,
	    .ts_ns = e->ts_ns,
	};

	if (e->rule >= HV_RULE_COUNT || !describers[e->rule])
		return;
	rule = &ctx->rules->rule[e->rule];
	a.rule = hv_rule_table[e->rule].id;
	a.severity = rule->severity;
	a.action = rule->action;
	if (e->frozen == HV_FROZEN) {
		a.action = HV_ACT_CORRECT;
		hv_correct_frozen(ctx, e, &report);
	} else if (e->frozen == HV_NOT_FROZEN_TRACED) {
		a.action = HV_ACT_CORRECT;
		hv_correct_refused_traced(ctx, e, &report);
	}
	a.fields = json_object_new_object();
	describers[e->rule](e, &a);
	hv_emit_alert(ctx, &a);
	hv_correct_emit(ctx, &report);
}

static const char *const info_names[] = {
    [HV_CLOCK_EV_GUEST_TSC_WRITE] = "guest-tsc-write",
    [HV_CLOCK_EV_TSC_RESET] = "tsc-reset",
    [HV_CLOCK_EV_VM_NEW] = "vm-new",
    [HV_CLOCK_EV_PAUSE] = "pause",
    [HV_CLOCK_EV_RESUME] = "resume",
    [HV_CLOCK_EV_PROC_EXIT] = "vmm-exit",
    [HV_CLOCK_EV_PROC_EXEC] = "vmm-exec",
    [HV_CLOCK_EV_GUEST_TSC_SUMMARY] = "guest-tsc-writes",
    [HV_CLOCK_EV_VM_UNTRACKED] = "vm-untracked",
    [HV_CLOCK_EV_VM_DESTROYED] = "vm-destroyed",
};

static const char *const quota_names[HV_QUOTA_COUNT] = {
    [HV_QUOTA_VMM] = "per-vmm",
    [HV_QUOTA_USER] = "per-user",
    [HV_QUOTA_NON_ROOT] = "non-root",
};

/* A VMM was refused a VM by a quota: said once per VMM, as a warning. */
static void describe_untracked(const struct hv_clock_event *e, const char *comm,
			       struct json_object *o)
{
	const struct hv_clock_config *cfg = &skel->rodata->cfg;
	__s64 refused = e->untracked.quota;
	unsigned q = refused > 0 && refused < HV_QUOTA_COUNT ? refused : 0;
	const long quota_limits[HV_QUOTA_COUNT] = {
	    [HV_QUOTA_VMM] = cfg->quotas.per_vmm,
	    [HV_QUOTA_USER] = cfg->quotas.per_user,
	    [HV_QUOTA_NON_ROOT] = cfg->quotas.non_root,
	};

	hv_json_add_str(o, "quota", q ? quota_names[q] : NULL);
	hv_json_add_int_or_null(o, "limit", q, quota_limits[q]);
	hv_json_add_int(o, "uid", e->untracked.uid);
	hv_warn("%s[%u] (uid %lld) was refused a VM by the %s quota of %ld VMs: the clocks of its "
		"VMs past the quota are not checked (hvguard_quota_refused_total counts their "
		"events)",
		comm, e->pid, (long long)e->untracked.uid, q ? quota_names[q] : "?",
		q ? quota_limits[q] : 0);
}

static void describe_flood(struct hv_ctx *ctx, const struct hv_clock_event *e, const char *comm,
			   struct json_object *o)
{
	char window[32];

	hv_json_add_int(o, "suppressed", e->flood.suppressed);
	hv_json_add_int(o, "window_start_ns", e->flood.window_start_ns);
	hv_json_add_int(o, "window_end_ns", e->flood.window_end_ns);
	hv_json_add_int(o, "total", e->flood.total);
	hv_format_ns(window, sizeof(window), e->flood.window_end_ns - e->flood.window_start_ns);
	hv_log(ctx,
	       "info guest-tsc-writes %s[%u] vm %llu: %lld more guest TSC writes over %s, counted "
	       "and not logged one by one (%lld in all; legitimate, not an alert)",
	       comm, e->pid, (unsigned long long)e->vm_id, (long long)e->flood.suppressed, window,
	       (long long)e->flood.total);
}

static void handle_info(struct hv_ctx *ctx, const struct hv_clock_event *e, const char *comm,
			const char *vm_name)
{
	struct json_object *o = json_object_new_object();
	const char *name = info_names[e->type];
	char d[32];

	hv_json_add_str(o, "type", "event");
	hv_json_add_str(o, "event", name);
	hv_json_add_uint(o, "ts_ns", e->ts_ns);
	hv_json_add_int(o, "pid", e->pid);
	hv_json_add_str(o, "comm", comm);
	hv_json_add_int_or_null(o, "vm", e->vm_id, e->vm_id);
	hv_json_add_str(o, "vm_name", vm_name);
	hv_json_add_int_or_null(o, "vcpu", e->vcpu >= 0, e->vcpu);
	switch (e->type) {
	case HV_CLOCK_EV_GUEST_TSC_WRITE:
	case HV_CLOCK_EV_TSC_RESET:
		hv_json_add_int(o, "offset_before", e->tsc.before);
		hv_json_add_int(o, "offset_after", e->tsc.after);
		hv_log(ctx,
		       "info %s %s[%u] vm %llu vcpu %d: offset %lld -> %lld (legitimate, not an "
		       "alert)",
		       name, comm, e->pid, (unsigned long long)e->vm_id, e->vcpu,
		       (long long)e->tsc.before, (long long)e->tsc.after);
		break;
	case HV_CLOCK_EV_RESUME:
		hv_json_add_int_or_null(o, "paused_ns", e->resume.paused_ns >= 0,
					e->resume.paused_ns);
		hv_json_add_int(o, "jump_ns", e->resume.jump_ns);
		hv_format_ns(d, sizeof(d), e->resume.jump_ns);
		if (ctx->opts.verbose)
			hv_log(ctx, "info resume %s[%u] vm %llu: kvmclock moved by %s", comm,
			       e->pid, (unsigned long long)e->vm_id, d);
		break;
	case HV_CLOCK_EV_PROC_EXIT:
	case HV_CLOCK_EV_PROC_EXEC:
		hv_json_add_int(o, "vmm_pid", e->vmm.tgid);
		break;
	case HV_CLOCK_EV_GUEST_TSC_SUMMARY:
		describe_flood(ctx, e, comm, o);
		break;
	case HV_CLOCK_EV_VM_UNTRACKED:
		describe_untracked(e, comm, o);
		break;
	case HV_CLOCK_EV_VM_DESTROYED:
		hv_json_add_str(o, "seen_by",
				e->destroyed.seen_by == HV_DESTROYED_NEW_VM ? "new-vm" : "reclaim");
		if (ctx->opts.verbose)
			hv_log(ctx, "info vm-destroyed %s[%u] vm %llu: its VMM lives on", comm,
			       e->pid, (unsigned long long)e->vm_id);
		break;
	default:
		if (ctx->opts.verbose)
			hv_log(ctx, "info %s %s[%u] vm %llu", name, comm, e->pid,
			       (unsigned long long)e->vm_id);
	}
	hv_emit_json(ctx, o);
}

/* A record the daemon makes itself about a VM that is going, as the BPF
 * side would have. */
static struct hv_clock_event daemon_event(__u32 type, __u64 key, const struct hv_clock_vm *vm)
{
	return (struct hv_clock_event){
	    .type = type,
	    .pid = vm->owner_tgid,
	    .vm_key = key,
	    .vm_id = vm->id,
	    .vcpu = -1,
	    .ts_ns = hv_now_ns(CLOCK_BOOTTIME),
	};
}

/* A VM goes with guest TSC writes counted in a window not yet closed:
 * its summary is sent from here, so the counts still add up. */
static void flood_tail(struct hv_ctx *ctx, __u64 key, const struct hv_clock_vm *vm,
		       const char *comm)
{
	struct hv_clock_event e = daemon_event(HV_CLOCK_EV_GUEST_TSC_SUMMARY, key, vm);
	char own[17] = "?";

	if (!vm->guest_writes.suppressed)
		return;
	__atomic_add_fetch(&skel->bss->guest_writes_suppressed, vm->guest_writes.suppressed,
			   __ATOMIC_RELAXED);
	e.flood.suppressed = vm->guest_writes.suppressed;
	e.flood.window_start_ns = vm->guest_writes.window_start;
	e.flood.window_end_ns = e.ts_ns;
	e.flood.total = vm->guest_writes.total;
	if (!comm) {
		hv_proc_comm(e.pid, own, sizeof(own));
		comm = own;
	}
	handle_info(ctx, &e, comm, NULL);
}

/* Keys to delete, gathered first: deleting during a hash map walk can
 * restart it, and a walk restarted per delete is quadratic. */
struct key_list {
	void *keys;
	size_t n, cap, size;
};

static int key_list_add(struct key_list *l, const void *key)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		void *k = realloc(l->keys, cap * l->size);

		if (!k)
			return -ENOMEM;
		l->keys = k;
		l->cap = cap;
	}
	memcpy((char *)l->keys + l->n++ * l->size, key, l->size);
	return 0;
}

static void key_list_delete(struct key_list *l, int map_fd)
{
	for (size_t i = 0; i < l->n; i++)
		bpf_map_delete_elem(map_fd, (char *)l->keys + i * l->size);
	free(l->keys);
}

/* Forget the vCPU records whose VM is gone. */
static void sweep_vcpus(int vms, int vcpus)
{
	struct key_list gone = {.size = sizeof(struct hv_clock_vcpu_key)};
	struct hv_clock_vcpu_key vk, *prev = NULL;
	struct hv_clock_vm vm;

	while (!bpf_map_get_next_key(vcpus, prev, &vk)) {
		prev = &vk;
		if (bpf_map_lookup_elem(vms, &vk.kvm, &vm) && key_list_add(&gone, &vk))
			break;
	}
	key_list_delete(&gone, vcpus);
}

/* Give a VMM that exited while no daemon ran its VMs back to its user's
 * quotas (clock.h), and forget it. At start only: the kernel does this at
 * every VMM's exit while attached. */
static void sweep_vmms(void)
{
	int vmms = bpf_map__fd(skel->maps.hv_clock_vmms);
	int owners = bpf_map__fd(skel->maps.hv_clock_owners);
	struct key_list gone = {.size = sizeof(__u32)};
	__u32 tgid, *prev = NULL, all = HV_UID_ALL_NON_ROOT;
	struct hv_clock_vmm vmm;
	__u64 n;

	while (!bpf_map_get_next_key(vmms, prev, &tgid)) {
		prev = &tgid;
		if (bpf_map_lookup_elem(vmms, &tgid, &vmm) || !(kill(tgid, 0) && errno == ESRCH))
			continue;
		for (int i = 0; vmm.uid && i < 2; i++) {
			__u32 *uid = i ? &all : &vmm.uid;

			if (!bpf_map_lookup_elem(owners, uid, &n)) {
				n = n > vmm.vms ? n - vmm.vms : 0;
				bpf_map_update_elem(owners, uid, &n, BPF_EXIST);
			}
		}
		if (key_list_add(&gone, &tgid))
			break;
	}
	key_list_delete(&gone, vmms);
}

/* Forget the pinned state of VMs whose VMM is gone (in one linear walk);
 * returns how many VMs remain with a host TSC write not yet checked for a
 * mismatch. */
static int sweep_vms(struct hv_ctx *ctx, int only_tgid, const char *comm, uint64_t exit_ns,
		     const char *why)
{
	int vms = bpf_map__fd(skel->maps.hv_clock_vms);
	struct key_list gone = {.size = sizeof(__u64)};
	__u64 key, *prev = NULL;
	struct hv_clock_vm vm;
	int dirty = 0;

	while (!bpf_map_get_next_key(vms, prev, &key)) {
		prev = &key;
		if (bpf_map_lookup_elem(vms, &key, &vm))
			continue;
		bool is_gone = only_tgid ? (int)vm.owner_tgid == only_tgid
					 : (kill(vm.owner_tgid, 0) && errno == ESRCH);
		if (!is_gone) {
			dirty += !!(vm.flags & VM_F_OFFSETS_DIRTY);
			continue;
		}
		flood_tail(ctx, key, &vm, comm);
		hv_mig_vm_gone(ctx, key, &vm, exit_ns ?: hv_now_ns(CLOCK_BOOTTIME), comm, why);
		if (key_list_add(&gone, &key))
			break; /* out of memory: the next sweep goes on */
	}
	key_list_delete(&gone, vms);
	sweep_vcpus(vms, bpf_map__fd(skel->maps.hv_clock_vcpus));
	return dirty;
}

/* A VM destroyed while its VMM lives on: said, like a VMM's exit. */
static void say_destroyed(struct hv_ctx *ctx, __u64 key, const struct hv_clock_vm *vm)
{
	struct hv_clock_event e = daemon_event(HV_CLOCK_EV_VM_DESTROYED, key, vm);
	char comm[17] = "?";

	e.destroyed.seen_by = HV_DESTROYED_RECLAIM;
	hv_proc_comm((int)e.pid, comm, sizeof(comm));
	flood_tail(ctx, key, vm, comm);
	hv_mig_vm_gone(ctx, key, vm, e.ts_ns, comm, "vm-destroyed");
	handle_info(ctx, &e, comm, NULL);
}

static int run_reclaim_prog(struct bpf_program *prog, __u64 key, __u64 id)
{
	__u64 args[2] = {key, id};
	LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = args, .ctx_size_in = sizeof(args));

	return bpf_prog_test_run_opts(bpf_program__fd(prog), &opts) ? -errno : 0;
}

/* What the reclaim passes did, for the metrics and the summary. */
static struct {
	__u64 vms, failed;
} reclaim;

/*
 * Forget the VMs destroyed while their VMM lives on (clock.bpf.c: no hook
 * sees a destruction, the kernel's list of live VMs tells). Every
 * HV_RECLAIM_PERIOD_MS, and at once when a quota or the table refused a VM
 * since the last pass. Exits and execs go first (the ring is read after
 * the pass found its dead VMs): their VMs are departures of that VMM, said
 * as such.
 */
static void reclaim_destroyed(struct hv_ctx *ctx)
{
	static uint64_t next_ns;
	static __u64 pressure_seen;
	struct clock_bpf__bss *b = skel->bss;
	int vms = bpf_map__fd(skel->maps.hv_clock_vms);
	uint64_t now = hv_now_ns(CLOCK_MONOTONIC);
	__u64 pressure = b->map_full[HV_CLOCK_MAP_VMS];
	unsigned n, reclaimed = 0;
	struct hv_clock_vm vm;

	for (int q = 0; q < HV_QUOTA_COUNT; q++)
		pressure += b->quota_refused[q];
	if (now < next_ns && pressure == pressure_seen)
		return;
	next_ns = now + HV_RECLAIM_PERIOD_MS * 1000000ull;
	pressure_seen = pressure;
	if (run_reclaim_prog(skel->progs.hv_clock_find_dead, 0, 0)) {
		if (!reclaim.failed++)
			hv_warn("cannot look for destroyed VMs (%s): their state stays until their "
				"VMM exits (hvguard_vms_reclaim_failed_total counts)",
				strerror(errno));
		return;
	}
	/* A VM that went with its VMM's exit or exec went after the record of
	 * it was submitted: read now, after the VM was seen gone, that record
	 * takes its VMs first (as departures of that VMM; the keys below are
	 * then gone). Read before the pass, it could still be missing. */
	ring_buffer__consume(ctx->rb);
	n = b->dead_count < HV_RECLAIM_BATCH ? b->dead_count : HV_RECLAIM_BATCH;
	for (unsigned i = 0; i < n; i++) {
		__u64 key = b->dead_keys[i];

		if (bpf_map_lookup_elem(vms, &key, &vm) || vm.id != b->dead_ids[i] ||
		    run_reclaim_prog(skel->progs.hv_clock_reclaim, key, vm.id) ||
		    b->reclaim_result != HV_RECLAIM_DONE)
			continue;
		say_destroyed(ctx, key, &vm);
		reclaimed++;
	}
	if (b->dead_count > n) /* the rest at the next turn */
		next_ns = 0;
	if (!reclaimed)
		return;
	reclaim.vms += reclaimed;
	sweep_vcpus(vms, bpf_map__fd(skel->maps.hv_clock_vcpus));
}

static int clock_ring_event(void *data_ctx, void *data, size_t len)
{
	struct hv_ctx *ctx = data_ctx;
	const struct hv_clock_event *e = data;
	char comm[17] = "", vm_name[64];
	const char *name = NULL;
	int rc = -1;

	if (len < sizeof(*e))
		return 0;
	memcpy(comm, e->comm, sizeof(e->comm));
	if (!comm[0] && e->pid)
		hv_proc_comm((int)e->pid, comm, sizeof(comm));
	if (e->pid)
		rc = hv_proc_vm_name(e->pid, vm_name, sizeof(vm_name));
	if (!rc || rc == -ETIMEDOUT) /* a VMM whose /proc/PID/cmdline hangs */
		name = rc ? "unknown" : vm_name;
	if (e->type == HV_CLOCK_EV_VM_NEW)
		hv_mig_vmm_seen(e->pid);
	if (e->type == HV_CLOCK_EV_ALERT)
		handle_alert(ctx, e, comm, name, rc == -ETIMEDOUT);
	else if (e->type == HV_CLOCK_EV_ARRIVAL)
		hv_mig_arrival(ctx, e, comm);
	else if (e->type < sizeof(info_names) / sizeof(info_names[0]) && info_names[e->type])
		handle_info(ctx, e, comm, name);
	if (e->type == HV_CLOCK_EV_PROC_EXIT || e->type == HV_CLOCK_EV_PROC_EXEC)
		hv_proc_forget((int)e->vmm.tgid);
	if (e->type == HV_CLOCK_EV_PROC_EXIT)
		sweep_vms(ctx, (int)e->vmm.tgid, comm, e->ts_ns, "vmm-exit");
	else if (e->type == HV_CLOCK_EV_PROC_EXEC) /* its VMs went with the old image */
		sweep_vms(ctx, (int)e->vmm.tgid, comm, e->ts_ns, "exec");
	return 0;
}

static int configure(struct hv_ctx *ctx)
{
	static const char *const syms[] = {"kvm_vm_ioctl", "kvm_vcpu_ioctl", "kvm_dev_ioctl"};
	uint64_t addrs[3];
	int n = hv_kallsyms_lookup(syms, addrs, 3);

	if (n == -EPERM) {
		hv_err("/proc/kallsyms shows zero addresses: run as root (CAP_SYSLOG)");
		return -EPERM;
	}
	if (n < 3) {
		hv_err("KVM's ioctl handlers (kvm_vm_ioctl, kvm_vcpu_ioctl) are not in "
		       "/proc/kallsyms: "
		       "is the kvm module loaded?");
		return -ENOENT;
	}
	skel->rodata->cfg.kvm_vm_ioctl = addrs[0];
	skel->rodata->cfg.kvm_vcpu_ioctl = addrs[1];
	skel->rodata->cfg.kvm_dev_ioctl = addrs[2];
	skel->rodata->cfg.quotas.per_vmm = ctx->opts.vms_per_vmm ?: HV_VMS_PER_VMM;
	skel->rodata->cfg.quotas.per_user = ctx->opts.vms_per_user ?: HV_VMS_PER_USER;
	skel->rodata->cfg.quotas.non_root = HV_VMS_NON_ROOT;
	for_each_rule_of(i, HV_FAM_CLOCK) {
		const struct hv_rule *r = &ctx->rules->rule[i];

		if (!r->enabled)
			continue;
		skel->rodata->cfg.enabled_mask |= 1u << i;
		skel->rodata->cfg.tolerance_ns[i] = r->tolerance_ns;
		if (r->action == HV_ACT_CORRECT ||
		    (ctx->opts.correct && (hv_rule_table[i].actions & (1u << HV_ACT_CORRECT))))
			skel->rodata->cfg.correct_mask |= 1u << i;
	}
	return 0;
}

static int open_skel(struct hv_ctx *ctx)
{
	/* Through the fd of the pin directory checked and locked (pindir.h). */
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = ctx->opts.pin_at);

	skel = clock_bpf__open_opts(&opts);
	if (!skel) {
		hv_err("cannot open the clock BPF object: %s", strerror(errno));
		return -errno;
	}
	if (ctx->opts.no_pin) {
		struct bpf_map *m;

		bpf_object__for_each_map(m, skel->obj)
			bpf_map__set_pin_path(m, NULL);
	}
	return configure(ctx);
}

static const char *const tier_names[] = {
    [HV_HOOKS_KVM_TRACEPOINTS] = "kvm-tracepoints",
    [HV_HOOKS_SYSCALLS] = "syscalls",
    [HV_HOOKS_FENTRY] = "fentry",
};

/* The tiers, best first (the fewest callers pay, the most is seen). */
static const enum hv_clock_tier tier_order[] = {
    HV_HOOKS_FENTRY,
    HV_HOOKS_KVM_TRACEPOINTS,
    HV_HOOKS_SYSCALLS,
};

/* What the fentry tier attaches to: KVM's handler of the VM ioctls its
 * generic code passes on (KVM_GET_CLOCK, KVM_SET_CLOCK among them). In
 * the kvm module on most distributions: in kallsyms, and with BTF to
 * attach through, only while it is loaded. */
static const char *const fentry_fns[] = {"kvm_arch_vm_ioctl"};

static bool fentry_functions_present(char *why, size_t len)
{
	uint64_t addr = 0;
	int found = hv_kallsyms_lookup(fentry_fns, &addr, 1);

	if (found < 0) {
		snprintf(why, len, "cannot read /proc/kallsyms: %s", strerror(-found));
		return false;
	}
	if (!addr) {
		snprintf(why, len, "%s is not in /proc/kallsyms (module kvm not loaded?)",
			 fentry_fns[0]);
		return false;
	}
	return true;
}

/* Opens, configures, loads and attaches the programs of one tier. */
static int load_tier(struct hv_ctx *ctx, enum hv_clock_tier tier, char *why, size_t len)
{
	bool syscalls = tier == HV_HOOKS_SYSCALLS, fentry = tier == HV_HOOKS_FENTRY;
	int err;

	err = open_skel(ctx);
	if (err) {
		snprintf(why, len, "cannot open the clock BPF object");
		return err;
	}
	skel->rodata->cfg.tier = tier;
	bpf_program__set_autoload(skel->progs.hv_clock_ioctl_enter, syscalls);
	bpf_program__set_autoload(skel->progs.hv_clock_ioctl_exit, syscalls);
	bpf_program__set_autoload(skel->progs.hv_clock_vm_ioctl, fentry);
	bpf_program__set_autoload(skel->progs.hv_clock_vm_ioctl_ret, fentry);
	bpf_program__set_autoattach(skel->progs.hv_clock_resync, false);
	bpf_program__set_autoattach(skel->progs.hv_clock_find_dead, false);
	bpf_program__set_autoattach(skel->progs.hv_clock_reclaim, false);
	if (syscalls && !tracepoint_exists("syscalls/sys_enter_ioctl")) {
		snprintf(why, len,
			 "the kernel has no syscall tracepoints (CONFIG_FTRACE_SYSCALLS)");
		return -ENOENT;
	}
	if (fentry && !fentry_functions_present(why, len))
		return -ENOENT;
	/* Pinned maps that do not fit are refused, never dropped (pindir.h). */
	if (!ctx->opts.no_pin &&
	    hv_pindir_check_maps(ctx->opts.pin_root, ctx->opts.pin_at, skel->obj)) {
		snprintf(why, len, "pinned state in %s does not fit", ctx->opts.pin_root);
		return -EINVAL;
	}
	err = clock_bpf__load(skel);
	if (err) {
		snprintf(why, len, "cannot load the programs: %s (-v shows the verifier's log)",
			 strerror(-err));
		return err;
	}
	err = clock_bpf__attach(skel);
	if (err)
		snprintf(why, len, "cannot attach the programs: %s", strerror(-err));
	return err;
}

static void unload_skel(void)
{
	clock_bpf__destroy(skel);
	skel = NULL;
}

/* The tier asked for with --hooks, else the best that loads: fentry, else
 * KVM's tracepoints alone (said in the start log: only precision is lost),
 * else the syscall tracepoints (a warning: every thread of the host pays). */
static int load_best_tier(struct hv_ctx *ctx)
{
	enum hv_clock_tier want = 0;
	char why[256] = "";
	int err = -ENOENT;

	for (size_t i = 0; i < sizeof(tier_order) / sizeof(tier_order[0]); i++)
		if (ctx->opts.hooks && !strcmp(ctx->opts.hooks, tier_names[tier_order[i]]))
			want = tier_order[i];
	for (size_t i = 0; i < sizeof(tier_order) / sizeof(tier_order[0]); i++) {
		enum hv_clock_tier t = tier_order[i];

		if (want && t != want)
			continue;
		err = load_tier(ctx, t, why, sizeof(why));
		if (!err) {
			hv_clock_family.hooks = tier_names[t];
			return 0;
		}
		unload_skel();
		if (want) {
			hv_err("clock checks on --hooks %s: %s", tier_names[t], why);
			return err;
		}
		if (t == HV_HOOKS_FENTRY)
			hv_log(ctx,
			       "clock checks: fentry on KVM's VM ioctls did not load (%s); using "
			       "KVM's tracepoints alone: kvmclock-jump's paused_ns and "
			       "set_clock_flags will be null",
			       why);
		if (t == HV_HOOKS_KVM_TRACEPOINTS)
			hv_warn(
			    "clock checks: KVM's tracepoints alone did not load (%s); falling back "
			    "to the syscall tracepoints, which cost every thread of the host",
			    why);
	}
	hv_err("clock checks: no hook tier loads: %s", why);
	return err;
}

static int clock_load(struct hv_ctx *ctx)
{
	int err;

	for (size_t i = 0; i < sizeof(kvm_tracepoints) / sizeof(kvm_tracepoints[0]); i++) {
		if (!tracepoint_exists(kvm_tracepoints[i])) {
			hv_err("the kernel has no tracepoint %s: hvguard needs KVM's tracepoints "
			       "(CONFIG_KVM with tracing)",
			       kvm_tracepoints[i]);
			return -ENOENT;
		}
	}
	err = load_best_tier(ctx);
	if (err)
		return err;
	/* The alert ring first: read first when both have records. */
	err = hv_ring_add(ctx, bpf_map__fd(skel->maps.clock_alerts), clock_ring_event);
	if (!err)
		err = hv_ring_add(ctx, bpf_map__fd(skel->maps.clock_events), clock_ring_event);
	if (err) {
		hv_err("cannot read the clock ring buffer: %s", strerror(-err));
		goto fail;
	}
	/* The count of VMs awaiting a mismatch check lives in .bss, the flags
	 * in the pinned state: after a restart, count them again. */
	hv_mig_init(ctx, bpf_map__fd(skel->maps.hv_clock_vms),
		    bpf_map__fd(skel->maps.hv_clock_vcpus),
		    bpf_map__fd(skel->maps.hv_clock_departures));
	skel->bss->dirty_vms = sweep_vms(ctx, 0, NULL, 0, "vmm-exit");
	sweep_vmms();
	return hv_correct_init(ctx, skel);
fail:
	unload_skel();
	return err;
}

static uint64_t clock_lost(struct hv_ctx *ctx)
{
	(void)ctx;
	return skel ? skel->bss->events_lost : 0;
}

static int count_vms(void)
{
	int fd = bpf_map__fd(skel->maps.hv_clock_vms);
	__u64 key, *prev = NULL;
	int n = 0;

	while (!bpf_map_get_next_key(fd, prev, &key)) {
		prev = &key;
		n++;
	}
	return n;
}

/* The gauge: a walk of the table is a syscall per VM (4096 when full), so
 * once a second, not at every poll. */
static void report_vms(struct hv_ctx *ctx)
{
	static uint64_t next_ns;
	uint64_t now = hv_now_ns(CLOCK_MONOTONIC);

	if (now < next_ns)
		return;
	next_ns = now + 1000000000ull;
	hv_metric_set(ctx->metrics, HV_METRIC_VMS, "", count_vms());
}

static const char *const map_names[HV_CLOCK_MAP_COUNT] = {
    [HV_CLOCK_MAP_VMS] = "hv_clock_vms",       [HV_CLOCK_MAP_VCPUS] = "hv_clock_vcpus",
    [HV_CLOCK_MAP_VMMS] = "hv_clock_vmms",     [HV_CLOCK_MAP_FROZEN] = "hv_clock_frozen",
    [HV_CLOCK_MAP_OWNERS] = "hv_clock_owners",
};

static void report_quotas(struct hv_ctx *ctx)
{
	char labels[64];

	for (int q = HV_QUOTA_VMM; q < HV_QUOTA_COUNT; q++) {
		snprintf(labels, sizeof(labels), "quota=\"%s\"", quota_names[q]);
		hv_metric_set(ctx->metrics, HV_METRIC_QUOTA_REFUSED, labels,
			      skel->bss->quota_refused[q]);
	}
}

/* A full table is never silent: say so when the count grows, export it. */
static void report_map_full(struct hv_ctx *ctx)
{
	static __u64 said[HV_CLOCK_MAP_COUNT];
	char labels[64];

	for (int i = 0; i < HV_CLOCK_MAP_COUNT; i++) {
		__u64 n = skel->bss->map_full[i];

		snprintf(labels, sizeof(labels), "map=\"%s\"", map_names[i]);
		hv_metric_set(ctx->metrics, HV_METRIC_MAP_FULL, labels, n);
		if (n == said[i])
			continue;
		hv_warn("%llu insert(s) into %s refused: the map is full, so what they carried "
			"is not checked (%llu in all)",
			(unsigned long long)(n - said[i]), map_names[i], (unsigned long long)n);
		said[i] = n;
	}
}

/* An alert the alert ring had no room for is never silent either. */
static void report_alerts_missed(struct hv_ctx *ctx)
{
	static __u64 said[HV_RULE_COUNT];
	char labels[64];

	for_each_rule_of(i, HV_FAM_CLOCK) {
		__u64 n = skel->bss->alerts_missed[i];

		snprintf(labels, sizeof(labels), "rule=\"%s\"", hv_rule_table[i].id);
		hv_metric_set(ctx->metrics, HV_METRIC_ALERTS_MISSED, labels, n);
		if (n == said[i])
			continue;
		hv_warn("%llu %s alert(s) lost: the alert ring was full, so they were neither "
			"reported nor corrected (%llu in all); the daemon is not keeping up",
			(unsigned long long)(n - said[i]), hv_rule_table[i].id,
			(unsigned long long)n);
		said[i] = n;
	}
}

/* VMMs whose /proc/PID/cmdline did not answer: their VM name is unknown. */
static void report_args_timeouts(struct hv_ctx *ctx)
{
	static unsigned long long said;
	unsigned long long n = hv_proc_args_timeouts();

	hv_metric_set(ctx->metrics, HV_METRIC_PROC_READ_TIMEOUTS, "", n);
	if (n == said)
		return;
	hv_warn("%llu read(s) of a VMM's /proc/PID/cmdline did not answer within %d ms: its VM "
		"name is reported unknown (%llu in all)",
		n - said, HV_PROC_ARGS_DEADLINE_MS, n);
	said = n;
}

static void clock_poll(struct hv_ctx *ctx)
{
	struct clock_bpf__bss *b = skel->bss;

	report_map_full(ctx);
	report_args_timeouts(ctx);
	report_alerts_missed(ctx);
	report_quotas(ctx);
	reclaim_destroyed(ctx);
	hv_metric_set(ctx->metrics, HV_METRIC_VMS_RECLAIMED, "", reclaim.vms);
	hv_metric_set(ctx->metrics, HV_METRIC_VMS_RECLAIM_FAILED, "", reclaim.failed);
	hv_metric_set(ctx->metrics, HV_METRIC_GUEST_TSC_WRITES_SUPPRESSED, "",
		      b->guest_writes_suppressed);
	hv_metric_set(ctx->metrics, HV_METRIC_MIGRATION_ARRIVALS_DEMOTED, "", b->arrivals_demoted);
	report_vms(ctx);
	hv_metric_set(ctx->metrics, HV_METRIC_KVM_CLOCK_IOCTLS, "", b->kvm_ioctls_seen);
	hv_metric_set(ctx->metrics, HV_METRIC_PVCLOCK_UPDATES, "", b->pvclock_updates_seen);
	hv_metric_set(ctx->metrics, HV_METRIC_TSC_OFFSET_WRITES, "", b->tsc_writes_seen);
	hv_correct_poll(ctx);
}

static void clock_summary(struct hv_ctx *ctx, struct json_object *summary)
{
	struct json_object *o = json_object_new_object();
	struct clock_bpf__bss *b = skel->bss;

	(void)ctx;
	hv_json_add_str(o, "hooks", hv_clock_family.hooks);
	hv_json_add_int(o, "vms", count_vms());
	hv_json_add_uint(o, "vms_reclaimed", reclaim.vms);
	hv_json_add_uint(o, "kvm_ioctls", b->kvm_ioctls_seen);
	hv_json_add_uint(o, "pvclock_updates", b->pvclock_updates_seen);
	hv_json_add_uint(o, "tsc_offset_writes", b->tsc_writes_seen);
	hv_json_add_uint(o, "unattributed_tsc_writes", b->unattributed_tsc_writes);
	hv_json_add_uint(o, "tsc_record_stale", b->tsc_record_stale);
	hv_json_add_uint(o, "vcpus_untracked", b->vcpus_untracked);
	hv_json_add_uint(o, "events_lost", b->events_lost);
	struct json_object *full = json_object_new_object();

	for (int i = 0; i < HV_CLOCK_MAP_COUNT; i++)
		hv_json_add_uint(full, map_names[i], b->map_full[i]);
	json_object_object_add(o, "map_full", full);
	struct json_object *missed = json_object_new_object();

	for_each_rule_of(i, HV_FAM_CLOCK)
		hv_json_add_uint(missed, hv_rule_table[i].id, b->alerts_missed[i]);
	json_object_object_add(o, "alerts_missed", missed);
	struct json_object *quota = json_object_new_object();

	for (int q = HV_QUOTA_VMM; q < HV_QUOTA_COUNT; q++)
		hv_json_add_uint(quota, quota_names[q], b->quota_refused[q]);
	json_object_object_add(o, "quota_refused", quota);
	hv_json_add_uint(o, "guest_tsc_writes_suppressed", b->guest_writes_suppressed);
	hv_json_add_uint(o, "arrivals_demoted", b->arrivals_demoted);
	hv_mig_summary(o);
	json_object_object_add(summary, "clock", o);
}

static void clock_unload(struct hv_ctx *ctx)
{
	hv_correct_fini(ctx);
	clock_bpf__destroy(skel);
	skel = NULL;
}

static struct bpf_object *clock_object(void)
{
	return skel ? skel->obj : NULL;
}

struct hv_family hv_clock_family = {
    .name = "clock",
    .present = clock_present,
    .load = clock_load,
    .poll = clock_poll,
    .lost = clock_lost,
    .summary = clock_summary,
    .unload = clock_unload,
    .object = clock_object,
    .elf_bytes = clock_bpf__elf_bytes,
};
