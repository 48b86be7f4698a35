// SPDX-License-Identifier: GPL-2.0
/*
 * The clock checker: decides the clock rules in the kernel, before the
 * guest runs with a changed clock, at one of two hook tiers (clock.h):
 *
 * - kvm-tracepoints (default): KVM's own tracepoints only. They fire when
 *   KVM does clock work (a vCPU's clock update before it enters the guest,
 *   a TSC offset write, a guest TSC MSR write) and never elsewhere, so
 *   nothing else on the host pays. The VM behind a tracepoint is the vCPU
 *   that vcpu_load() registered as the current task's preempt notifier; the
 *   ioctl in flight is in the syscall's saved user registers. kvmclock-jump
 *   is decided at the first kvm_pvclock_update after the clock moved: the
 *   change of kvm->arch.kvmclock_offset since the guest last ran is the
 *   jump, exactly as at the ioctl, and the vCPU has not entered yet.
 * - fentry (where the kernel allows it): the kvm-tracepoints programs, plus
 *   fentry/fexit on kvm_arch_vm_ioctl, KVM's handler of the VM ioctls that
 *   its generic code does not handle itself: KVM_GET_CLOCK and KVM_SET_CLOCK
 *   among them, never KVM_RUN nor any other file's ioctl. kvmclock-jump is
 *   then decided at KVM_SET_CLOCK's return, with the pause start from
 *   KVM_GET_CLOCK and the call's flags; the clock update's check stays, for
 *   a change that comes any other way.
 * - syscalls: the ioctl syscall tracepoints as well, which put every thread
 *   of the host on the syscall slow path; kvmclock-jump is then decided at
 *   the KVM_SET_CLOCK itself, with the pause start from KVM_GET_CLOCK.
 */
#include "hvguard.bpf.h"
#include "hvguard/clock_logic.h"

char LICENSE[] SEC("license") = "GPL";

const volatile struct hv_clock_config cfg = {};

/* Counters read through the skeleton: proof the hooks ran, and loss. */
__u64 events_lost = 0; /* information records the ring had no room for */
/* Alerts the alert ring had no room for, by rule: never silent. */
__u64 alerts_missed[HV_RULE_COUNT] = {};
/* Guest TSC writes counted in a summary instead of a record of their own. */
__u64 guest_writes_suppressed = 0;
__u64 kvm_ioctls_seen = 0;
__u64 pvclock_updates_seen = 0;
__u64 tsc_writes_seen = 0;
__u64 unattributed_tsc_writes = 0;
/* TSC offset writes whose previous offset (KVM's) was not the one recorded. */
__u64 tsc_record_stale = 0;
/* Events of vCPUs past the HV_MAX_VCPUS slots of their VM (not tracked). */
__u64 vcpus_untracked = 0;
/* Inserts refused because a map was full, by map (enum hv_clock_map): a
 * full table is counted and reported, never silent. */
__u64 map_full[HV_CLOCK_MAP_COUNT] = {};
/* Arrivals of non-root VMMs beyond HV_FLOOD_BURST a second, sent on the
 * information ring instead of the alert ring (arrival_flood). */
__u64 arrivals_demoted = 0;
struct hv_clock_flood arrival_flood = {};
/* Events of VMs left untracked because a quota was used up, by quota. */
__u64 quota_refused[HV_QUOTA_COUNT] = {};

/* Information records (vm-new, pause, resume, guest TSC writes...). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} clock_events SEC(".maps");

/* Alerts only, in a ring of their own: no flood of information records,
 * whoever causes it, can take the room an alert (and its freeze) needs.
 * 256 KiB holds over 2000 alerts not yet read. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18);
} clock_alerts SEC(".maps");

/* Per-VM state, keyed by struct kvm *. Pinned: survives daemon restarts. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HV_VM_TABLE);
	__type(key, __u64);
	__type(value, struct hv_clock_vm);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hv_clock_vms SEC(".maps");

/* The last PVTI KVM wrote per vCPU. Pinned. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct hv_clock_vcpu_key);
	__type(value, struct hv_clock_vcpu);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hv_clock_vcpus SEC(".maps");

/* VMM processes by tgid: process exit looks up one key; their quota. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HV_VM_TABLE);
	__type(key, __u32);
	__type(value, struct hv_clock_vmm);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hv_clock_vmms SEC(".maps");

/* VMs tracked per non-root user (uid), and for all of them together
 * (HV_UID_ALL_NON_ROOT): the quotas' counts. Pinned with the VM table. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hv_clock_owners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hv_clock_global);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hv_clock_globals SEC(".maps");

/* Processes a daemon is correcting right now: their ioctls are the
 * corrector's own injected calls and must not trigger the rules again.
 * Pinned: shared by the daemons of one pin directory. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct hv_clock_probe);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hv_clock_correcting SEC(".maps");

/* Departures of VMs (live migration): written and read by the daemon,
 * pinned so that a restart between a departure and its arrival loses
 * nothing (clock.h, user/migration.h). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HV_DEPARTURES);
	__type(key, __u64);
	__type(value, struct hv_clock_departure);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hv_clock_departures SEC(".maps");

/* The slot search's result (see clock_logic.h: not on the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __s32);
} hv_clock_slot SEC(".maps");

/* The mismatch walk's result (see clock_logic.h: not on the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hv_mismatch_result);
} hv_clock_mismatch SEC(".maps");

/* The frequency walk's result (vcpu-tsc-khz-mismatch; not on the stack,
 * for the same reason). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hv_khz_result);
} hv_clock_khz SEC(".maps");

/* VMMs stopped for a correction and not yet released, by struct kvm *:
 * what `hvguard audit` reads to find a VMM left frozen. Pinned. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u64); /* CLOCK_BOOTTIME of the freeze */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hv_clock_frozen SEC(".maps");

/* Watched ioctls in flight host-wide (KVM_RUN not counted): while zero,
 * the exit program returns at its first instruction, which is nearly
 * always, since the clock ioctls are rare and short. */
__s64 watched_in_flight = 0;

/* Number of VMs with a host TSC write not yet checked for a mismatch:
 * lets KVM_RUN skip the VM lookup while it is zero, i.e. nearly always. */
__s64 dirty_vms = 0;

struct hv_clock_vm zero_vm = {};

/* The KVM ioctl a thread is in, and its KVM_RUN cache. */
struct thread_ctx {
	__u64 kvm;     /* struct kvm * of the ioctl in flight */
	__u64 arg;     /* its argument */
	__s64 before;  /* a value sampled at entry */
	__u32 cmd;     /* 0 when no watched ioctl is in flight */
	__s32 vcpu_id; /* -1 on a VM fd */
	__u32 fd;
	__u32 ignore;	      /* injected by a corrector (this watched ioctl only) */
	__s32 pending_vcpu;   /* an offset write in KVM_RUN not yet explained */
	__u64 guest_msr_exit; /* vcpu->stat.exits when the guest wrote its TSC */
	__u64 pending_exit;   /* ... and when the unexplained offset write came */
	__s64 pending_before;
	__s64 pending_after;
	__u32 run_fd; /* KVM_RUN cache: fd, generation, and its VM */
	__u64 run_gen;
	__u64 run_kvm;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct thread_ctx);
} hv_clock_threads SEC(".maps");

enum hv_kvm_file_kind { KVM_FILE_NONE, KVM_FILE_DEV, KVM_FILE_VM, KVM_FILE_VCPU };

struct hv_kvm_fd {
	__u64 kvm;
	__u64 vcpu; /* struct kvm_vcpu * on a vCPU fd */
	__s32 vcpu_id;
	__u32 kind;
};

/* x86: the syscall numbers of ioctl(2), and thread_info's TS_COMPAT. */
#define HV_NR_IOCTL	       16
#define HV_NR_IOCTL_X32	       (0x40000000 | 514)
#define HV_NR_IOCTL_COMPAT     54
#define HV_TS_COMPAT	       0x0002
#define HV_SIGNAL_STOP_STOPPED 0x1 /* signal->flags: the group stop completed */

/* What a KVM tracepoint was called under: the VM, the vCPU, and the
 * ioctl the current thread is in (cmd 0 when none could be read). */
struct kvm_call {
	__u64 kvm;
	struct kvm_vcpu *vcpu;
	__u64 arg;
	__u32 cmd;
};

/*
 * The vCPU the current thread works on: during every vCPU ioctl (KVM_RUN
 * included) vcpu_load() has registered vcpu->preempt_notifier on it, so
 * the vCPU is a container_of away; NULL outside a vCPU ioctl.
 */
static __always_inline struct kvm_vcpu *task_vcpu(struct task_struct *task)
{
	struct hlist_node *first = BPF_CORE_READ(task, preempt_notifiers.first);

	if (!first)
		return NULL;
	return (void *)first - bpf_core_field_offset(struct kvm_vcpu, preempt_notifier) -
	       bpf_core_field_offset(struct preempt_notifier, link);
}

/* The same, checked against the tracepoint's vcpu_id. */
static __always_inline struct kvm_vcpu *current_vcpu(unsigned int vcpu_id)
{
	struct kvm_vcpu *vcpu = task_vcpu(bpf_get_current_task_btf());

	if (!vcpu || BPF_CORE_READ(vcpu, vcpu_id) != (int)vcpu_id)
		return NULL;
	return vcpu;
}

/* The ioctl the current thread is in, from the registers its syscall
 * saved: any entry path (64-bit, x32, int $0x80) reaches KVM's code. */
static __always_inline void current_ioctl(struct kvm_call *c)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	long nr = BPF_CORE_READ(regs, orig_ax);

	c->cmd = 0;
	c->arg = 0;
	if (BPF_CORE_READ(task, thread_info.status) & HV_TS_COMPAT) {
		if (nr != HV_NR_IOCTL_COMPAT)
			return;
		c->cmd = (__u32)BPF_CORE_READ(regs, cx);
		c->arg = (__u32)BPF_CORE_READ(regs, dx);
		return;
	}
	if (nr != HV_NR_IOCTL && nr != HV_NR_IOCTL_X32)
		return;
	c->cmd = (__u32)BPF_CORE_READ(regs, si);
	c->arg = BPF_CORE_READ(regs, dx);
}

/* The vCPU and VM of a KVM tracepoint about vcpu_id; -1 when it cannot
 * be attributed (then counted as unattributed by the caller). */
static __always_inline int current_vm(unsigned int vcpu_id, struct kvm_call *c)
{
	struct kvm_vcpu *vcpu = current_vcpu(vcpu_id);

	/* (Local pointers only inside CO-RE reads: never our own structs.) */
	if (!vcpu)
		return -1;
	c->vcpu = vcpu;
	c->kvm = (__u64)BPF_CORE_READ(vcpu, kvm);
	return c->kvm ? 0 : -1;
}

/* ... and the ioctl it came through (cmd 0 when none could be read). */
static __always_inline int current_call(unsigned int vcpu_id, struct kvm_call *c)
{
	if (current_vm(vcpu_id, c))
		return -1;
	current_ioctl(c);
	return 0;
}

/* Has this vCPU ever entered the guest? (It exits at least once.) */
static __always_inline __u64 vcpu_exits(struct kvm_vcpu *vcpu)
{
	return BPF_CORE_READ(vcpu, stat.exits);
}

static __always_inline bool vcpu_has_run(struct kvm_vcpu *vcpu)
{
	return vcpu_exits(vcpu) > 0;
}

static __always_inline struct hv_clock_global *globals(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&hv_clock_globals, &zero);
}

static __always_inline bool rule_on(enum hv_rule_id rule)
{
	return cfg.enabled_mask & (1u << rule);
}

/* What the fd of the current task is, as far as KVM goes. */
static __always_inline int resolve_kvm_fd(unsigned int fd, struct hv_kvm_fd *t)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file *file = hv_fd_to_file(task, fd);
	__u64 handler;

	t->kind = KVM_FILE_NONE;
	t->vcpu_id = -1;
	t->kvm = 0;
	t->vcpu = 0;
	if (!file)
		return -1;
	handler = hv_file_ioctl_handler(file);
	if (handler == cfg.kvm_vm_ioctl) {
		t->kind = KVM_FILE_VM;
		t->kvm = (__u64)BPF_CORE_READ(file, private_data);
	} else if (handler == cfg.kvm_vcpu_ioctl) {
		struct kvm_vcpu *vcpu = BPF_CORE_READ(file, private_data);

		t->kind = KVM_FILE_VCPU;
		t->kvm = (__u64)BPF_CORE_READ(vcpu, kvm);
		t->vcpu_id = BPF_CORE_READ(vcpu, vcpu_id);
		t->vcpu = (__u64)vcpu;
	} else if (handler == cfg.kvm_dev_ioctl) {
		t->kind = KVM_FILE_DEV;
	} else {
		return -1;
	}
	return 0;
}

static __always_inline __s64 read_kvmclock_offset(__u64 kvm_ptr)
{
	struct kvm *kvm = (struct kvm *)kvm_ptr;

	return BPF_CORE_READ(kvm, arch.kvmclock_offset);
}

static __always_inline void fill_event(struct hv_clock_event *e, __u32 type, __u32 rule, __u64 kvm,
				       const struct hv_clock_vm *vm, __s32 vcpu)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	e->type = type;
	e->rule = rule;
	e->pid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->vm_key = kvm;
	e->vm_id = vm ? vm->id : 0;
	e->vcpu = vcpu;
	e->frozen = 0;
	e->ts_ns = bpf_ktime_get_boot_ns();
	__builtin_memset(&e->jump, 0, sizeof(e->jump)); /* the whole payload */
	bpf_get_current_comm(e->comm, sizeof(e->comm));
}

static __always_inline struct hv_clock_event *reserve_event(void)
{
	struct hv_clock_event *e = bpf_ringbuf_reserve(&clock_events, sizeof(*e), 0);

	if (!e)
		__sync_fetch_and_add(&events_lost, 1);
	return e;
}

/* An alert's record, from the alert ring; filled for its rule. */
static __always_inline struct hv_clock_event *
reserve_alert(enum hv_rule_id rule, __u64 kvm, const struct hv_clock_vm *vm, __s32 vcpu)
{
	struct hv_clock_event *e = bpf_ringbuf_reserve(&clock_alerts, sizeof(*e), 0);

	if (!e) {
		if (rule < HV_RULE_COUNT)
			__sync_fetch_and_add(&alerts_missed[rule], 1);
		return NULL;
	}
	fill_event(e, HV_CLOCK_EV_ALERT, rule, kvm, vm, vcpu);
	return e;
}

/* An information record's, from the information ring; its payload zero. */
static __always_inline struct hv_clock_event *reserve_info(__u32 type, __u64 kvm,
							   const struct hv_clock_vm *vm, __s32 vcpu)
{
	struct hv_clock_event *e = reserve_event();

	if (e)
		fill_event(e, type, 0, kvm, vm, vcpu);
	return e;
}

/* A legitimate TSC write, logged: HV_CLOCK_EV_GUEST_TSC_WRITE or _TSC_RESET. */
static __always_inline void emit_tsc_write(__u32 type, __u64 kvm, const struct hv_clock_vm *vm,
					   __s32 vcpu, __s64 before, __s64 after)
{
	struct hv_clock_event *e = reserve_info(type, kvm, vm, vcpu);

	if (!e)
		return;
	e->tsc.before = before;
	e->tsc.after = after;
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void emit_resume(__u64 kvm, const struct hv_clock_vm *vm, __s64 paused_ns,
					__s64 jump_ns)
{
	struct hv_clock_event *e = reserve_info(HV_CLOCK_EV_RESUME, kvm, vm, -1);

	if (!e)
		return;
	e->resume.paused_ns = paused_ns;
	e->resume.jump_ns = jump_ns;
	bpf_ringbuf_submit(e, 0);
}

/* A VMM process exited or exec'd: HV_CLOCK_EV_PROC_EXIT or _PROC_EXEC. */
static __always_inline void emit_vmm(__u32 type, __u32 tgid)
{
	struct hv_clock_event *e = reserve_info(type, 0, NULL, -1);

	if (!e)
		return;
	e->vmm.tgid = tgid;
	bpf_ringbuf_submit(e, 0);
}

/*
 * The guest wrote its own TSC: legitimate, and something a guest can do
 * millions of times a second. Sent one by one up to the VM's burst, then
 * counted (hv_flood_admit); a closed window's count goes out as one record.
 */
static __always_inline void emit_guest_write(__u64 kvm, struct hv_clock_vm *vm, __s32 vcpu,
					     __s64 before, __s64 after)
{
	__u64 now = bpf_ktime_get_boot_ns(), closed, closed_start;
	struct hv_clock_event *e;
	bool send = hv_flood_admit(&vm->guest_writes, now, &closed, &closed_start);

	if (closed) {
		__sync_fetch_and_add(&guest_writes_suppressed, closed);
		e = reserve_info(HV_CLOCK_EV_GUEST_TSC_SUMMARY, kvm, vm, -1);
		if (e) {
			e->flood.suppressed = closed;
			e->flood.window_start_ns = closed_start;
			e->flood.window_end_ns = now;
			e->flood.total = vm->guest_writes.total;
			bpf_ringbuf_submit(e, 0);
		}
	}
	if (send)
		emit_tsc_write(HV_CLOCK_EV_GUEST_TSC_WRITE, kvm, vm, vcpu, before, after);
}

/* The VM's host TSC writes need no mismatch check (any more): false when
 * none was pending. */
static __always_inline bool vm_clear_dirty(struct hv_clock_vm *vm)
{
	if (!(__sync_fetch_and_and(&vm->flags, ~VM_F_OFFSETS_DIRTY) & VM_F_OFFSETS_DIRTY))
		return false;
	__sync_fetch_and_sub(&dirty_vms, 1);
	return true;
}

/* One VM of the VMM tgid goes back to its quotas (never below zero: its
 * exit may be returning them all at this moment). */
static __always_inline void vm_quota_return_one(__u32 tgid)
{
	struct hv_clock_vmm *vmm = bpf_map_lookup_elem(&hv_clock_vmms, &tgid);
	__u32 all = HV_UID_ALL_NON_ROOT, n, seen;
	__u64 *c;

	if (!vmm)
		return;
	n = vmm->vms;
	for (int i = 0; i < 4 && n; i++) {
		seen = __sync_val_compare_and_swap(&vmm->vms, n, n - 1);
		if (seen == n)
			goto taken;
		n = seen;
	}
	return;
taken:
	if (!vmm->uid)
		return;
	c = bpf_map_lookup_elem(&hv_clock_owners, &vmm->uid);
	if (c)
		__sync_fetch_and_sub(c, 1);
	c = bpf_map_lookup_elem(&hv_clock_owners, &all);
	if (c)
		__sync_fetch_and_sub(c, 1);
}

/*
 * A new VM at a destroyed one's address (struct kvm is vmalloc'd), before
 * the daemon's reclaim saw the old one go: the old one is said destroyed,
 * and given back to its VMM's quotas when that is another process (the
 * same process keeps the count for its new VM).
 */
static __always_inline void say_replaced(__u64 kvm, struct hv_clock_vm *old, __u32 tgid)
{
	struct hv_clock_event *e = reserve_info(HV_CLOCK_EV_VM_DESTROYED, kvm, old, -1);

	if (e) {
		if (e->pid != old->owner_tgid) /* the daemon names the old owner */
			__builtin_memset(e->comm, 0, sizeof(e->comm));
		e->pid = old->owner_tgid;
		e->destroyed.seen_by = HV_DESTROYED_NEW_VM;
		bpf_ringbuf_submit(e, 0);
	}
	if (old->owner_tgid != tgid)
		vm_quota_return_one(old->owner_tgid);
	vm_clear_dirty(old);
}

/* A new VM state, replacing whatever stale one had the same key; says so
 * with a vm-new event (at KVM_CREATE_VM on the syscall tier, at the first
 * vCPU's creation on the kvm-tracepoints tier). */
/* A key's entry in a map of counts (inserted at 0), NULL when full. */
static __always_inline void *map_entry(void *map, const void *key, const void *zero,
				       enum hv_clock_map which)
{
	void *v = bpf_map_lookup_elem(map, key);

	if (v)
		return v;
	/* NOEXIST: another CPU may have inserted it meanwhile; keep theirs. */
	bpf_map_update_elem(map, key, zero, BPF_NOEXIST);
	v = bpf_map_lookup_elem(map, key);
	if (!v)
		__sync_fetch_and_add(&map_full[which], 1);
	return v;
}

/* A VMM was refused a VM by quota q: said once per VMM. */
static __always_inline void emit_untracked(__u64 kvm, enum hv_clock_quota q, __u32 uid)
{
	struct hv_clock_event *e = reserve_info(HV_CLOCK_EV_VM_UNTRACKED, kvm, NULL, -1);

	if (!e)
		return;
	e->untracked.quota = q;
	e->untracked.uid = uid;
	bpf_ringbuf_submit(e, 0);
}

/*
 * Takes one VM of the quotas for the current process and its user (clock.h),
 * or says which quota refused it: counted, and the VMM named once (a
 * vm-untracked event). A count that cannot be kept (a full map) refuses.
 */
static __always_inline bool vm_quota_take(__u64 kvm)
{
	__u32 tgid = hv_current_tgid(), uid = (__u32)bpf_get_current_uid_gid();
	__u32 all = HV_UID_ALL_NON_ROOT;
	struct hv_clock_vmm fresh = {.uid = uid}, *vmm;
	__u64 zero = 0, *user = NULL, *non_root = NULL;
	enum hv_clock_quota q;

	vmm = map_entry(&hv_clock_vmms, &tgid, &fresh, HV_CLOCK_MAP_VMMS);
	if (!vmm)
		return false;
	if (uid) {
		user = map_entry(&hv_clock_owners, &uid, &zero, HV_CLOCK_MAP_OWNERS);
		non_root = map_entry(&hv_clock_owners, &all, &zero, HV_CLOCK_MAP_OWNERS);
		if (!user || !non_root)
			return false;
	}
	/* Read from cfg one by one: it is const volatile (set before load),
	 * and a plain pointer to it would be folded to its zero initializer. */
	struct hv_clock_quotas limits = {
	    .per_vmm = cfg.quotas.per_vmm,
	    .per_user = cfg.quotas.per_user,
	    .non_root = cfg.quotas.non_root,
	};

	q = hv_vm_quota(&limits, uid, vmm->vms, user ? *user : 0, non_root ? *non_root : 0);
	if (q != HV_QUOTA_OK) {
		__sync_fetch_and_add(&quota_refused[q], 1);
		if (!vmm->refused && __sync_bool_compare_and_swap(&vmm->refused, 0, q))
			emit_untracked(kvm, q, uid);
		return false;
	}
	__sync_fetch_and_add(&vmm->vms, 1);
	if (user && non_root) {
		__sync_fetch_and_add(user, 1);
		__sync_fetch_and_add(non_root, 1);
	}
	return true;
}

static __always_inline struct hv_clock_vm *vm_init(__u64 kvm)
{
	struct hv_clock_global *g = globals();
	struct hv_clock_vm *vm = bpf_map_lookup_elem(&hv_clock_vms, &kvm);
	__u32 tgid = hv_current_tgid();
	struct hv_clock_event *e;

	if (!g)
		return NULL;
	/* A key this process already holds (a recycled struct kvm *) is
	 * already counted; any other takes one VM of the quotas. */
	if ((!vm || vm->owner_tgid != tgid) && !vm_quota_take(kvm))
		return NULL;
	if (vm)
		say_replaced(kvm, vm, tgid);
	if (bpf_map_update_elem(&hv_clock_vms, &kvm, &zero_vm, BPF_ANY)) {
		__sync_fetch_and_add(&map_full[HV_CLOCK_MAP_VMS], 1);
		return NULL;
	}
	vm = bpf_map_lookup_elem(&hv_clock_vms, &kvm);
	if (!vm)
		return NULL;
	vm->id = __sync_fetch_and_add(&g->next_vm_id, 1) + 1;
	vm->owner_tgid = tgid;
	vm->phase = VM_SETUP;
	e = reserve_info(HV_CLOCK_EV_VM_NEW, kvm, vm, -1);
	if (e)
		bpf_ringbuf_submit(e, 0);
	return vm;
}

/* Is the current process the VM's owner (the one KVM lets use it)? */
static __always_inline bool owns_vm(__u64 kvm_ptr)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct kvm *kvm = (struct kvm *)kvm_ptr;

	return BPF_CORE_READ(kvm, mm) == BPF_CORE_READ(task, mm);
}

/*
 * The state of a VM seen before, or a fresh one when it is new to us or the
 * key is a recycled struct kvm * now owned by another process. A process
 * that is not the VM's owner (it got the fd passed; KVM will answer EIO)
 * gets nothing: it must not reset the owner's state.
 */
static __always_inline struct hv_clock_vm *vm_get(__u64 kvm)
{
	struct hv_clock_vm *vm = bpf_map_lookup_elem(&hv_clock_vms, &kvm);

	if (vm && vm->owner_tgid == hv_current_tgid())
		return vm;
	if (!owns_vm(kvm))
		return NULL;
	return vm_init(kvm);
}

/*
 * Stop the whole VMM at the offending write, before any vCPU re-enters the
 * guest; the daemon repairs the clock from inside it and lets it go. A VM
 * that arrived by migration is not frozen for these rules: its clocks came
 * from elsewhere; migration-clock-warp freezes it at its arrival instead.
 */
static __always_inline void freeze_vmm(struct hv_clock_event *e)
{
	__u64 kvm = e->vm_key, since = e->ts_ns; /* no ring-buffer pointers as map args */

	struct task_struct *task = bpf_get_current_task_btf();

	/* A traced VMM (gdb, strace) is never stopped: its tracer sees our
	 * SIGSTOP first and passes it on when it likes, after the daemon has
	 * sent SIGCONT, and the VMM would stay stopped for good. */
	if (BPF_CORE_READ(task, ptrace) || BPF_CORE_READ(task, group_leader, ptrace)) {
		e->frozen = HV_NOT_FROZEN_TRACED;
		return;
	}
	/* The record first: the daemon releases only what it finds recorded. */
	if (bpf_map_update_elem(&hv_clock_frozen, &kvm, &since, BPF_ANY)) {
		__sync_fetch_and_add(&map_full[HV_CLOCK_MAP_FROZEN], 1);
		return;
	}
	if (bpf_send_signal(HV_SIGSTOP))
		bpf_map_delete_elem(&hv_clock_frozen, &kvm);
	else
		e->frozen = HV_FROZEN;
}

static __always_inline void freeze_for_correction(struct hv_clock_event *e, struct hv_clock_vm *vm,
						  enum hv_rule_id rule)
{
	if (!(cfg.correct_mask & (1u << rule)) || (vm->flags & VM_F_MIGRATED_IN))
		return;
	freeze_vmm(e);
}

static __always_inline void vm_mark_dirty(struct hv_clock_vm *vm)
{
	if (!(__sync_fetch_and_or(&vm->flags, VM_F_OFFSETS_DIRTY) & VM_F_OFFSETS_DIRTY))
		__sync_fetch_and_add(&dirty_vms, 1);
}

static long mismatch_step_cb(__u32 i, void *ctx)
{
	return hv_mismatch_step(i, ctx);
}

static long khz_step_cb(__u32 i, void *ctx)
{
	return hv_khz_step(i, ctx);
}

static long slot_step_cb(__u32 i, void *ctx)
{
	return hv_slot_step(i, ctx);
}

/*
 * The slot of vCPU id in vm's per-vCPU arrays (clock.h), taking the next
 * free one for a vCPU seen first: its own id when the ids are dense, so
 * the search runs only for sparse ids. -1 past HV_MAX_VCPUS vCPUs: such a
 * vCPU is not tracked (counted), never folded onto another's slot.
 */
static __always_inline int vcpu_slot(struct hv_clock_vm *vm, __u32 id)
{
	struct hv_slot_search s = {.vm = vm, .id = id};
	__u32 zero = 0, n, at = id;

	/* Masked, not only compared: the compare is on a 32-bit copy the
	 * verifier does not carry over to the 64-bit index, and the barrier
	 * keeps clang from dropping a mask it knows to be a no-op. */
	barrier_var(at);
	at &= HV_MAX_VCPUS - 1;
	if (id < HV_MAX_VCPUS && vm->vcpu_ids[at] == id + 1)
		return at; /* the masked copy: the 6.1 verifier needs its bound */
	s.slot = bpf_map_lookup_elem(&hv_clock_slot, &zero);
	if (!s.slot)
		return -1;
	*s.slot = -1;
	bpf_loop(HV_MAX_VCPUS, slot_step_cb, &s, 0);
	if (*s.slot >= 0)
		return *s.slot % HV_MAX_VCPUS;
	n = __sync_fetch_and_add(&vm->nr_vcpus, 1);
	if (n >= HV_MAX_VCPUS) {
		vm->nr_vcpus = HV_MAX_VCPUS;
		__sync_fetch_and_add(&vcpus_untracked, 1);
		return -1;
	}
	barrier_var(n);
	vm->vcpu_ids[n & (HV_MAX_VCPUS - 1)] = id + 1;
	return n;
}

/* The id of the vCPU in slot (for people: alerts name vCPU ids). */
static __always_inline __s32 slot_vcpu_id(const struct hv_clock_vm *vm, __u32 slot)
{
	return (__s32)vm->vcpu_ids[slot % HV_MAX_VCPUS] - 1;
}

/* vcpu-tsc-mismatch, checked at the first KVM_RUN after a host TSC write:
 * QEMU writes vCPUs one at a time, so only then is the set complete. */
static __always_inline void check_mismatch(__u64 kvm)
{
	struct hv_clock_vm *vm = bpf_map_lookup_elem(&hv_clock_vms, &kvm);
	struct hv_mismatch_walk w = {};
	struct hv_mismatch_result *r;
	struct hv_clock_event *e;
	__u32 zero = 0;

	if (!vm || !vm_clear_dirty(vm))
		return;
	if (!rule_on(HV_RULE_VCPU_TSC_MISMATCH))
		return;
	r = bpf_map_lookup_elem(&hv_clock_mismatch, &zero);
	if (!r)
		return;
	__builtin_memset(r, 0, sizeof(*r));
	w.vm = vm;
	w.res = r;
	bpf_loop(HV_MAX_VCPUS, mismatch_step_cb, &w, 0);
	if (!r->different)
		return;
	e = reserve_alert(HV_RULE_VCPU_TSC_MISMATCH, kvm, vm, slot_vcpu_id(vm, r->bad_vcpu));
	if (!e)
		return;
	e->mismatch.offset = vm->tsc_offset[r->bad_vcpu % HV_MAX_VCPUS];
	e->mismatch.ref_offset = r->ref_offset;
	e->mismatch.ref_vcpu = slot_vcpu_id(vm, r->ref_vcpu);
	e->mismatch.nr_different = r->different;
	e->mismatch.nr_vcpus = vm->nr_vcpus;
	freeze_for_correction(e, vm, HV_RULE_VCPU_TSC_MISMATCH);
	bpf_ringbuf_submit(e, 0);
}

/* vcpu-tsc-khz-mismatch, at every clock update, on every tier: a vCPU's
 * first update, or one after its frequency changed, records it in its slot
 * and checks it against the other vCPUs' (clock_logic.h). */
static __always_inline void check_khz_mismatch(__u64 kvm, struct hv_clock_vm *vm, __u32 vcpu_id,
					       __u32 slot, __u32 khz)
{
	struct hv_khz_walk w = {.vm = vm, .slot = slot % HV_MAX_VCPUS, .khz = khz};
	struct hv_khz_result *r;
	struct hv_clock_event *e;
	__u32 zero = 0;

	if (!hv_tsc_khz_record(vm, w.slot, khz) || !rule_on(HV_RULE_VCPU_TSC_KHZ_MISMATCH))
		return;
	r = bpf_map_lookup_elem(&hv_clock_khz, &zero);
	if (!r)
		return;
	__builtin_memset(r, 0, sizeof(*r));
	w.res = r;
	bpf_loop(HV_MAX_VCPUS, khz_step_cb, &w, 0);
	if (!hv_tsc_khz_mismatch_violates(r))
		return;
	e = reserve_alert(HV_RULE_VCPU_TSC_KHZ_MISMATCH, kvm, vm, vcpu_id);
	if (!e)
		return;
	e->khz_mismatch.tsc_khz = khz;
	e->khz_mismatch.ref_vcpu = slot_vcpu_id(vm, r->ref_vcpu);
	e->khz_mismatch.ref_tsc_khz = r->ref_khz;
	e->khz_mismatch.nr_different = r->different;
	bpf_ringbuf_submit(e, 0);
}

/* First KVM_RUN of this thread on this fd: resolve it and mark the VM as
 * having run here (from now on clock writes are no longer setup). */
static __always_inline int run_slow_path(struct thread_ctx *tc, unsigned int fd, __u64 gen)
{
	struct hv_kvm_fd t;
	struct hv_clock_vm *vm;

	if (resolve_kvm_fd(fd, &t) || t.kind != KVM_FILE_VCPU)
		return -1;
	vm = vm_get(t.kvm);
	if (vm && vm->phase == VM_SETUP)
		vm->phase = VM_RUNNING;
	tc->run_fd = fd;
	tc->run_gen = gen;
	tc->run_kvm = t.kvm;
	return 0;
}

static __always_inline int on_run_enter(unsigned int fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct hv_clock_global *g = globals();
	struct thread_ctx *tc;
	__u64 gen;

	if (!g)
		return 0;
	gen = g->kvm_fd_gen;
	tc = bpf_task_storage_get(&hv_clock_threads, task, 0, 0);
	if (!tc || tc->run_fd != fd || tc->run_gen != gen || !tc->run_kvm) {
		tc = bpf_task_storage_get(&hv_clock_threads, task, 0,
					  BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (!tc || run_slow_path(tc, fd, gen))
			return 0;
	}
	if (dirty_vms > 0)
		check_mismatch(tc->run_kvm);
	return 0;
}

/* The corrector's own injected ioctls trip no rule. The daemon marks the
 * VMM in hv_clock_correcting, pinned so that every hvguard sharing the pin
 * directory knows; nothing a process can set itself (a comm, a tracer's
 * name) is trusted. */
static __always_inline bool injected(void)
{
	__u32 tgid = hv_current_tgid();

	return bpf_map_lookup_elem(&hv_clock_correcting, &tgid);
}

static __always_inline bool watched_cmd(__u32 cmd)
{
	switch (cmd) {
	case HV_KVM_CREATE_VM:
	case HV_KVM_CREATE_VCPU:
	case HV_KVM_GET_CLOCK:
	case HV_KVM_SET_CLOCK:
	case HV_KVM_SET_TSC_KHZ:
		return true;
	}
	return false;
}

static __always_inline int on_kvm_ioctl_enter(unsigned int fd, __u32 cmd, __u64 arg)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct thread_ctx *tc;
	struct hv_kvm_fd t;

	if (!watched_cmd(cmd) || resolve_kvm_fd(fd, &t))
		return 0;
	__sync_fetch_and_add(&kvm_ioctls_seen, 1);
	tc = bpf_task_storage_get(&hv_clock_threads, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!tc)
		return 0;
	if (!tc->cmd || tc->cmd == HV_KVM_RUN)
		__sync_fetch_and_add(&watched_in_flight, 1);
	tc->cmd = cmd;
	tc->kvm = t.kvm;
	tc->vcpu_id = t.vcpu_id;
	tc->fd = fd;
	tc->arg = arg;
	tc->ignore = injected();
	tc->before = 0;
	if (cmd == HV_KVM_SET_CLOCK && t.kvm)
		tc->before = read_kvmclock_offset(t.kvm);
	else if (cmd == HV_KVM_SET_TSC_KHZ && t.vcpu) {
		/* Outside the macro: CO-RE must not relocate our own struct. */
		struct kvm_vcpu *vcpu = (struct kvm_vcpu *)t.vcpu;

		tc->before = BPF_CORE_READ(vcpu, arch.virtual_tsc_khz);
	}
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_ioctl")
int hv_clock_ioctl_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u32 cmd = (__u32)ctx->args[1];

	if (((cmd >> 8) & 0xff) != HV_KVMIO)
		return 0;
	if (cmd == HV_KVM_RUN)
		return on_run_enter((unsigned int)ctx->args[0]);
	return on_kvm_ioctl_enter((unsigned int)ctx->args[0], cmd, ctx->args[2]);
}

static __always_inline void on_created(long ret, __u32 cmd, struct thread_ctx *tc)
{
	struct hv_clock_global *g = globals();
	struct hv_kvm_fd t;

	if (!g || ret < 0)
		return;
	__sync_fetch_and_add(&g->kvm_fd_gen, 1);
	if (cmd == HV_KVM_CREATE_VM) {
		if (resolve_kvm_fd((unsigned int)ret, &t) || t.kind != KVM_FILE_VM)
			return;
		vm_init(t.kvm);
	}
	/* A new vCPU's slot is taken at KVM's first write of its TSC offset,
	 * inside KVM_CREATE_VCPU (vcpu_slot()). */
}

/* kvmclock-jump, from either tier: the offset moved from before to after;
 * stamped with the VM's last clock change, which the corrector checks. */
static __always_inline void alert_kvmclock_jump(__u64 kvm, struct hv_clock_vm *vm, __s64 before,
						__s64 after, __s64 paused_ns, __s64 flags, __s64 fd)
{
	struct hv_clock_event *e = reserve_alert(HV_RULE_KVMCLOCK_JUMP, kvm, vm, -1);

	if (!e)
		return;
	e->ts_ns = vm->last_clock_write_ns;
	e->jump.ns = after - before;
	e->jump.paused_ns = paused_ns;
	e->jump.offset_before = before;
	e->jump.offset_after = after;
	e->jump.set_flags = flags;
	e->jump.fd = fd;
	freeze_for_correction(e, vm, HV_RULE_KVMCLOCK_JUMP);
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void on_get_clock(struct thread_ctx *tc)
{
	struct hv_clock_vm *vm = vm_get(tc->kvm);
	struct hv_clock_event *e;

	if (!vm || vm->phase != VM_RUNNING)
		return;
	vm->phase = VM_PAUSED;
	vm->pause_start_ns = bpf_ktime_get_boot_ns();
	vm->pause_offset = read_kvmclock_offset(tc->kvm);
	e = reserve_info(HV_CLOCK_EV_PAUSE, tc->kvm, vm, -1);
	if (!e)
		return;
	e->pause.kvmclock_offset = vm->pause_offset;
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void on_set_clock(struct thread_ctx *tc)
{
	struct hv_clock_vm *vm = vm_get(tc->kvm);
	__s64 after = read_kvmclock_offset(tc->kvm), jump, paused_ns;
	__u32 flags = 0;
	bool violates;

	if (!vm)
		return;
	paused_ns =
	    vm->phase == VM_PAUSED ? (__s64)(bpf_ktime_get_boot_ns() - vm->pause_start_ns) : -1;
	bpf_probe_read_user(&flags, sizeof(flags), (void *)(tc->arg + 8));
	violates = hv_kvmclock_jump_violates(vm->phase != VM_SETUP, tc->before, after,
					     cfg.tolerance_ns[HV_RULE_KVMCLOCK_JUMP], &jump);
	if (tc->ignore)
		return; /* the corrector's own write: no phase change, no alert */
	vm->last_clock_write_ns = bpf_ktime_get_boot_ns();
	__sync_fetch_and_and(&vm->flags, ~VM_F_SEEN); /* for a kvm-tracepoints daemon later */
	if (vm->phase != VM_SETUP)
		vm->phase = VM_RUNNING;
	if (!violates || !rule_on(HV_RULE_KVMCLOCK_JUMP)) {
		/* An alert says all a resume event would: one wakeup, not two. */
		if (paused_ns >= 0)
			emit_resume(tc->kvm, vm, paused_ns, jump);
		return;
	}
	alert_kvmclock_jump(tc->kvm, vm, tc->before, after, paused_ns, flags, tc->fd);
}

static __always_inline void on_set_tsc_khz(struct thread_ctx *tc, long ret)
{
	struct hv_clock_vm *vm = vm_get(tc->kvm);
	__u32 requested = (__u32)tc->arg;
	struct hv_clock_event *e;

	if (!vm || tc->ignore || !rule_on(HV_RULE_TSC_KHZ_CHANGE))
		return;
	if (!hv_tsc_khz_violates(vm->phase != VM_SETUP, (__u32)tc->before, requested))
		return;
	e = reserve_alert(HV_RULE_TSC_KHZ_CHANGE, tc->kvm, vm, tc->vcpu_id);
	if (!e)
		return;
	e->khz.before = tc->before;
	e->khz.after = requested;
	e->khz.result = ret;
	bpf_ringbuf_submit(e, 0);
}

SEC("tracepoint/syscalls/sys_exit_ioctl")
int hv_clock_ioctl_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct thread_ctx *tc;
	__u32 cmd;

	if (!watched_in_flight)
		return 0;
	tc = bpf_task_storage_get(&hv_clock_threads, bpf_get_current_task_btf(), 0, 0);
	if (!tc || !tc->cmd || tc->cmd == HV_KVM_RUN)
		return 0;
	cmd = tc->cmd;
	tc->cmd = 0;
	__sync_fetch_and_sub(&watched_in_flight, 1);
	switch (cmd) {
	case HV_KVM_CREATE_VM:
	case HV_KVM_CREATE_VCPU:
		on_created(ctx->ret, cmd, tc);
		break;
	case HV_KVM_GET_CLOCK:
		if (!tc->ignore && ctx->ret == 0)
			on_get_clock(tc);
		break;
	case HV_KVM_SET_CLOCK:
		if (ctx->ret == 0)
			on_set_clock(tc);
		break;
	case HV_KVM_SET_TSC_KHZ:
		on_set_tsc_khz(tc, ctx->ret);
		break;
	}
	return 0;
}

/* Is the KVM_SET_MSRS in flight a reset, i.e. does it restart the guest's
 * TSC from (nearly) zero as real hardware does? QEMU's system_reset writes
 * MSR_IA32_TSC = env->tsc, which is 0 or a handful of cycles. */
static __always_inline bool msrs_write_tsc_reset(__u64 arg, __s64 *written)
{
	__u32 nmsrs = 0;

	*written = -1;
	if (bpf_probe_read_user(&nmsrs, sizeof(nmsrs), (void *)arg))
		return false;
	for (__u32 i = 0; i < HV_MAX_MSR_SCAN; i++) {
		struct {
			__u32 index;
			__u32 reserved;
			__u64 data;
		} entry;

		if (i >= nmsrs)
			break;
		if (bpf_probe_read_user(&entry, sizeof(entry), (void *)(arg + 8 + i * 16)))
			break;
		if (entry.index == HV_MSR_IA32_TSC) {
			*written = entry.data;
			return entry.data < HV_TSC_RESET_MAX;
		}
	}
	return false;
}

static __always_inline void alert_tsc_offset(const struct kvm_call *c, struct hv_clock_vm *vm,
					     __u32 vcpu, __s64 before, __s64 after, __s64 written)
{
	struct hv_clock_event *e = reserve_alert(HV_RULE_TSC_OFFSET_CHANGE, c->kvm, vm, vcpu);

	if (!e)
		return;
	e->tsc.before = before;
	e->tsc.after = after;
	e->tsc.written = written;
	e->tsc.ioctl = c->cmd; /* (the corrector finds the vCPU's fd itself) */
	freeze_for_correction(e, vm, HV_RULE_TSC_OFFSET_CHANGE);
	bpf_ringbuf_submit(e, 0);
}

/* Inside KVM_RUN: the guest's own TSC write, or KVM's catch-up. KVM traces
 * the guest's MSR write (kvm_msr) after applying it, during the handling
 * of the same exit: the exit count pairs the two events. */
static __always_inline void guest_offset_write(const struct kvm_call *c, struct hv_clock_vm *vm,
					       __u32 vcpu_id, __u32 idx, __s64 before, __s64 after)
{
	struct kvm_vcpu *vcpu = c->vcpu;
	struct thread_ctx *tc;
	__u64 exits = BPF_CORE_READ(vcpu, stat.exits);

	hv_bit_set(vm->tsc_guest, idx, true);
	tc = bpf_task_storage_get(&hv_clock_threads, bpf_get_current_task_btf(), 0,
				  BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!tc)
		return;
	if (tc->guest_msr_exit == exits) {
		emit_guest_write(c->kvm, vm, vcpu_id, before, after);
		return;
	}
	tc->kvm = c->kvm;
	tc->pending_vcpu = vcpu_id;
	tc->pending_exit = exits;
	tc->pending_before = before;
	tc->pending_after = after;
}

/*
 * Is a host TSC write before the first run an arrival's (the TSC set to
 * where it was on another host, or in another process)? Only when it moved
 * the vCPU's TSC ahead, by over a second, of the count it kept since its
 * creation. A VMM's own setup writes back a TSC it read before (QEMU with
 * -S: read at start, written at cont): that moves it back, or nowhere (KVM
 * keeps the offset for a write within a second of its count). A migration's
 * source is older than its destination, so its TSC is ahead. Missed: a
 * destination VM older than its source, or within a second of it.
 */
static __always_inline bool arrival_write(const struct kvm_call *c, __s64 written, __s64 before,
					  __s64 next)
{
	struct kvm_vcpu *vcpu = c->vcpu;
	__s64 second = (__s64)BPF_CORE_READ(vcpu, arch.virtual_tsc_khz) * 1000;

	if (written <= 0 && c->cmd != HV_KVM_SET_DEVICE_ATTR)
		return false;
	return next - before > second;
}

/*
 * Is this KVM's write at the creation of a VM's first vCPU (index 0, given
 * once per VM)? Then a state already under this struct kvm * with vCPUs
 * of its own is a destroyed VM's whose VMM lived on and got a new VM at
 * the same address: it must not be taken for the new one's history.
 */
static __always_inline bool first_vcpu_created(const struct kvm_call *c)
{
	struct kvm_vcpu *vcpu = c->vcpu; /* (not our struct inside a CO-RE read) */

	return c->cmd == HV_KVM_CREATE_VCPU && BPF_CORE_READ(vcpu, vcpu_idx) == 0;
}

static __always_inline void mark_arriving(struct hv_clock_vm *vm)
{
	vm->migrated_in_ns = bpf_ktime_get_boot_ns();
	__sync_fetch_and_or(&vm->flags, VM_F_ARRIVING);
}

SEC("raw_tp/kvm_write_tsc_offset")
int BPF_PROG(hv_clock_write_tsc_offset, unsigned int vcpu_id, __u64 previous, __u64 next)
{
	struct kvm_call c;
	struct hv_clock_vm *vm;
	__s64 before, written = -1;
	bool known, reset = false;
	int slot;
	__u32 idx;

	__sync_fetch_and_add(&tsc_writes_seen, 1);
	if (current_call(vcpu_id, &c)) {
		__sync_fetch_and_add(&unattributed_tsc_writes, 1);
		return 0;
	}
	vm = vm_get(c.kvm);
	if (vm && vm->nr_vcpus && first_vcpu_created(&c))
		vm = vm_init(c.kvm); /* a new VM at a destroyed one's address */
	if (!vm)
		return 0;
	slot = vcpu_slot(vm, vcpu_id);
	if (slot < 0)
		return 0;
	idx = slot % HV_MAX_VCPUS;
	if (vm->phase == VM_SETUP && vcpu_has_run(c.vcpu))
		vm->phase = VM_RUNNING;
	known = hv_bit_test(vm->tsc_known, idx);
	/* KVM's own previous offset is the reference. Some kernels (this
	 * project's PVM flavour) report 0 always: then our record of the
	 * last value written is. A record KVM disagrees with missed a write
	 * (counted): restoring it would put the guest's TSC where it never
	 * was. */
	if (known && previous && (__s64)previous != vm->tsc_offset[idx])
		__sync_fetch_and_add(&tsc_record_stale, 1);
	before = previous ? (__s64)previous : known ? vm->tsc_offset[idx] : 0;
	vm->tsc_offset[idx] = (__s64)next;
	hv_bit_set(vm->tsc_known, idx, true);
	if (c.cmd == HV_KVM_RUN) {
		guest_offset_write(&c, vm, vcpu_id, idx, before, next);
		return 0;
	}
	if (c.cmd == HV_KVM_SET_MSRS)
		reset = msrs_write_tsc_reset(c.arg, &written);
	before = hv_tsc_reference(vm, idx, (__u32)vcpu_exits(c.vcpu), vm->phase != VM_SETUP, reset,
				  before);
	hv_bit_set(vm->tsc_guest, idx, false);
	vm_mark_dirty(vm);
	if (vm->phase == VM_SETUP && written >= 0 && !reset)
		__sync_fetch_and_or(&vm->flags, VM_F_MIGRATED_IN);
	if (vm->phase == VM_SETUP && !(vm->flags & VM_F_ARRIVING) &&
	    arrival_write(&c, written, before, (__s64)next))
		mark_arriving(vm);
	if (reset && vm->phase != VM_SETUP && before != (__s64)next)
		emit_tsc_write(HV_CLOCK_EV_TSC_RESET, c.kvm, vm, vcpu_id, before, next);
	if (!rule_on(HV_RULE_TSC_OFFSET_CHANGE) || injected())
		return 0;
	if (hv_tsc_offset_violates(vm->phase != VM_SETUP, known || previous, before, next, reset))
		alert_tsc_offset(&c, vm, vcpu_id, before, next, written);
	return 0;
}

SEC("raw_tp/kvm_msr")
int BPF_PROG(hv_clock_guest_msr, unsigned int write, __u32 ecx, __u64 data, bool exception)
{
	struct task_struct *task;
	struct kvm_vcpu *vcpu;
	struct thread_ctx *tc;
	__u64 exits;

	if (!write || (ecx != HV_MSR_IA32_TSC && ecx != HV_MSR_IA32_TSC_ADJUST))
		return 0;
	task = bpf_get_current_task_btf();
	vcpu = task_vcpu(task);
	if (!vcpu)
		return 0;
	tc = bpf_task_storage_get(&hv_clock_threads, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!tc)
		return 0;
	exits = BPF_CORE_READ(vcpu, stat.exits);
	if (tc->pending_vcpu >= 0 && tc->pending_exit == exits) {
		struct hv_clock_vm *vm = bpf_map_lookup_elem(&hv_clock_vms, &tc->kvm);

		if (vm)
			emit_guest_write(tc->kvm, vm, tc->pending_vcpu, tc->pending_before,
					 tc->pending_after);
		tc->pending_vcpu = -1;
		return 0;
	}
	tc->guest_msr_exit = exits;
	return 0;
}

static __always_inline void alert_pvclock(__u64 kvm, struct hv_clock_vm *vm, __u32 vcpu,
					  __s64 residual, __s64 raw, __s64 explained, __u32 flags)
{
	struct hv_clock_event *e = reserve_alert(HV_RULE_PVCLOCK_DISCONTINUITY, kvm, vm, vcpu);

	if (!e)
		return;
	e->pvclock.residual_ns = residual;
	e->pvclock.raw_ns = raw;
	e->pvclock.explained_ns = explained;
	e->pvclock.flags = flags;
	bpf_ringbuf_submit(e, 0);
}

/*
 * kvm-tracepoints tier, kvmclock-jump: this vCPU is about to enter the
 * guest with kvmclock_offset now; the guest last ran with seen_offset. The
 * first vCPU to see a change claims it (one alert per change) and decides.
 * When the pause began is not seen on this tier (no hook on KVM_GET_CLOCK,
 * and KVM's own record of the last exit, last_guest_tsc, is overwritten by
 * the very clock update being traced): paused_ns is null.
 */
static __always_inline void check_kvmclock_jump(const struct kvm_call *c, struct hv_clock_vm *vm,
						__s64 offset_now)
{
	__s64 seen = vm->seen_offset, jump;

	if (offset_now == seen || !__sync_bool_compare_and_swap(&vm->seen_offset, seen, offset_now))
		return;
	vm->last_clock_write_ns = bpf_ktime_get_boot_ns();
	if (!hv_kvmclock_jump_violates(true, seen, offset_now,
				       cfg.tolerance_ns[HV_RULE_KVMCLOCK_JUMP], &jump) ||
	    !rule_on(HV_RULE_KVMCLOCK_JUMP)) {
		emit_resume(c->kvm, vm, -1, jump);
		return;
	}
	/* KVM_SET_CLOCK's argument and fd are not seen on this tier. */
	alert_kvmclock_jump(c->kvm, vm, seen, offset_now, -1, -1, -1);
}

/* kvm-tracepoints tier, tsc-khz-change: the vCPU's frequency changed since
 * its last clock update (KVM_SET_TSC_KHZ updates it even when it fails). */
static __always_inline void check_tsc_khz(const struct kvm_call *c, struct hv_clock_vm *vm,
					  __u32 vcpu_id, __u32 khz_then, __u32 khz_now)
{
	struct hv_clock_event *e;

	if (!khz_then || khz_then == khz_now || !rule_on(HV_RULE_TSC_KHZ_CHANGE))
		return;
	e = reserve_alert(HV_RULE_TSC_KHZ_CHANGE, c->kvm, vm, vcpu_id);
	if (!e)
		return;
	e->khz.before = khz_then;
	e->khz.after = khz_now;
	e->khz.result = HV_RESULT_UNKNOWN;
	bpf_ringbuf_submit(e, 0);
}

/*
 * Is the VMM's group stop already on its way (every thread told to stop)?
 * Then a stop signal of our own would only stay pending, and interrupt the
 * corrector's injection later.
 */
static __always_inline bool group_stop_under_way(void)
{
	struct task_struct *task = bpf_get_current_task_btf();

	return BPF_CORE_READ(task, signal, group_stop_count) > 0 ||
	       (BPF_CORE_READ(task, signal, flags) & HV_SIGNAL_STOP_STOPPED);
}

/*
 * Before this vCPU enters the guest, on the kvm-tracepoints tier: the VM's
 * first clock update is its baseline (setup, an incoming migration: any
 * clock is legitimate then); later ones are checked. A VM frozen for a
 * correction keeps every vCPU out: each stops here, before entry (KVM
 * checks for pending signals after processing requests).
 */
static __always_inline void before_entry(const struct kvm_call *c, struct hv_clock_vm *vm,
					 unsigned int vcpu_id, __s64 offset_now,
					 const struct hv_clock_vcpu *st)
{
	struct kvm_vcpu *vcpu = c->vcpu;
	/* Frozen by another vCPU's update: this one must not enter either. A
	 * freeze decided here needs no more: the process-wide SIGSTOP sent
	 * from this thread marks this thread's signal pending first. */
	bool frozen_before = bpf_map_lookup_elem(&hv_clock_frozen, &c->kvm);

	if (vm->phase == VM_SETUP || !(vm->flags & VM_F_SEEN)) {
		/* The first update, or state a syscall-tier daemon left. */
		vm->phase = VM_RUNNING;
		vm->seen_offset = offset_now;
		__sync_fetch_and_or(&vm->flags, VM_F_SEEN);
	} else {
		check_kvmclock_jump(c, vm, offset_now);
		if (st)
			check_tsc_khz(c, vm, vcpu_id, st->tsc_khz,
				      BPF_CORE_READ(vcpu, arch.virtual_tsc_khz));
	}
	if (dirty_vms > 0)
		check_mismatch(c->kvm);
	if (frozen_before && !group_stop_under_way())
		bpf_send_signal_thread(HV_SIGSTOP);
}

/* Frozen for another rule's correction at this entry: one freeze at a
 * time (the other correction goes first; the arrival is then not repaired). */
static __always_inline bool frozen_already(__u64 kvm)
{
	return bpf_map_lookup_elem(&hv_clock_frozen, &kvm);
}

/*
 * An arrival's record: on the alert ring, but a local user creating VMs
 * that "arrive" at will must not fill it: beyond HV_FLOOD_BURST arrivals a
 * second from non-root VMMs (all of them together), they go on the
 * information ring, counted. Root's VMMs always use the alert ring.
 */
static __always_inline struct hv_clock_event *
arrival_reserve(__u64 kvm, const struct hv_clock_vm *vm, __u32 vcpu_id)
{
	__u64 closed, closed_start;
	struct hv_clock_event *e;

	if (!(__u32)bpf_get_current_uid_gid() ||
	    hv_flood_admit(&arrival_flood, bpf_ktime_get_boot_ns(), &closed, &closed_start))
		e = reserve_alert(HV_RULE_MIGRATION_CLOCK_WARP, kvm, vm, vcpu_id);
	else {
		__sync_fetch_and_add(&arrivals_demoted, 1);
		e = reserve_event();
		if (e)
			fill_event(e, HV_CLOCK_EV_ALERT, HV_RULE_MIGRATION_CLOCK_WARP, kvm, vm,
				   vcpu_id);
	}
	if (e)
		e->type = HV_CLOCK_EV_ARRIVAL;
	return e;
}

/*
 * The first guest entry of a VM that arrived (its TSC set before it ran):
 * the daemon decides migration-clock-warp on it, so it goes on the alert
 * ring, never crowded out by information records. Once per VM (the first
 * vCPU to claim it). The guest has not run yet: the record holds the
 * clocks it is about to run with. The other vCPUs stop before their own
 * first entry while the freeze lasts (before_entry, frozen_check).
 */
static __always_inline void send_arrival(const struct kvm_call *c, struct hv_clock_vm *vm,
					 __u32 vcpu_id, __s64 offset_now,
					 const struct hv_clock_pvti *pvti)
{
	struct kvm_vcpu *vcpu = c->vcpu;
	__u32 flags = vm->flags;
	struct hv_clock_event *e;

	if ((flags & VM_F_ARRIVED) ||
	    !__sync_bool_compare_and_swap(&vm->flags, flags, flags | VM_F_ARRIVED))
		return;
	e = arrival_reserve(c->kvm, vm, vcpu_id);
	if (!e)
		return;
	e->arrival.kvmclock_offset = offset_now;
	e->arrival.written_ns = vm->migrated_in_ns;
	e->arrival.tsc_khz = BPF_CORE_READ(vcpu, arch.virtual_tsc_khz);
	e->arrival.pvti_scale = ((__s64)pvti->tsc_to_system_mul << 8) | (__u8)pvti->tsc_shift;
	e->arrival.tsc_ratio = BPF_CORE_READ(vcpu, arch.l1_tsc_scaling_ratio);
	/* Correcting: stopped until the daemon has compared it with its
	 * source (and repaired it, or let it go as it is). */
	if ((cfg.correct_mask & (1u << HV_RULE_MIGRATION_CLOCK_WARP)) && !frozen_already(c->kvm))
		freeze_vmm(e);
	bpf_ringbuf_submit(e, 0);
}

/* syscalls tier: a VM frozen at its arrival keeps every vCPU out (the
 * kvm-tracepoints tier does this in before_entry). */
static __always_inline void frozen_check(__u64 kvm)
{
	if (bpf_map_lookup_elem(&hv_clock_frozen, &kvm) && !group_stop_under_way())
		bpf_send_signal_thread(HV_SIGSTOP);
}

SEC("raw_tp/kvm_pvclock_update")
int BPF_PROG(hv_clock_pvclock_update, unsigned int vcpu_id, struct pvclock_vcpu_time_info *pvclock)
{
	struct hv_clock_vcpu_key key = {};
	struct hv_clock_vcpu *st, fresh = {};
	struct kvm_call c;
	struct kvm_vcpu *vcpu;
	struct hv_clock_vm *vm;
	__s64 offset_now, tsc_offset, raw, residual;
	__u32 khz;
	int slot;

	__sync_fetch_and_add(&pvclock_updates_seen, 1);
	if (current_vm(vcpu_id, &c)) /* no ioctl needed: a clock update */
		return 0;
	vcpu = c.vcpu;
	vm = cfg.tier != HV_HOOKS_SYSCALLS ? vm_get(c.kvm)
					   : bpf_map_lookup_elem(&hv_clock_vms, &c.kvm);
	if (!vm)
		return 0;
	if (bpf_probe_read_kernel(&fresh.pvti, sizeof(fresh.pvti), pvclock))
		return 0;
	offset_now = read_kvmclock_offset(c.kvm);
	/* A vCPU past the slots has no recorded offset: KVM's own is read. */
	slot = vcpu_slot(vm, vcpu_id);
	tsc_offset = slot >= 0 ? vm->tsc_offset[slot % HV_MAX_VCPUS]
			       : BPF_CORE_READ(vcpu, arch.l1_tsc_offset);
	khz = BPF_CORE_READ(vcpu, arch.virtual_tsc_khz);
	if (slot >= 0)
		check_khz_mismatch(c.kvm, vm, vcpu_id, slot, khz);
	key.kvm = c.kvm;
	key.vcpu_id = vcpu_id;
	st = bpf_map_lookup_elem(&hv_clock_vcpus, &key);
	if (cfg.tier != HV_HOOKS_SYSCALLS) /* kvm-tracepoints, and fentry */
		before_entry(&c, vm, vcpu_id, offset_now, st);
	else
		frozen_check(c.kvm);
	if (st && st->tsc_offset == tsc_offset && hv_pvclock_comparable(&st->pvti, &fresh.pvti) &&
	    vm->phase != VM_SETUP && rule_on(HV_RULE_PVCLOCK_DISCONTINUITY)) {
		raw = hv_pvclock_discontinuity(&st->pvti, &fresh.pvti);
		residual = hv_pvclock_residual(raw, st->kvmclock_offset, offset_now);
		/* No corrector exemption: its repair moves the kvmclock offset,
		 * which the residual already takes out. */
		if (hv_abs64(residual) > cfg.tolerance_ns[HV_RULE_PVCLOCK_DISCONTINUITY])
			alert_pvclock(c.kvm, vm, vcpu_id, residual, raw,
				      offset_now - st->kvmclock_offset, fresh.pvti.flags);
	}
	if ((vm->flags & VM_F_ARRIVING) && !(vm->flags & VM_F_ARRIVED))
		send_arrival(&c, vm, vcpu_id, offset_now, &fresh.pvti);
	fresh.kvmclock_offset = offset_now;
	fresh.tsc_offset = tsc_offset;
	fresh.tsc_khz = khz;
	fresh.tsc_ratio = BPF_CORE_READ(vcpu, arch.l1_tsc_scaling_ratio);
	fresh.tid = (__u32)bpf_get_current_pid_tgid(); /* clock updates run before an entry */
	if (bpf_map_update_elem(&hv_clock_vcpus, &key, &fresh, BPF_ANY))
		__sync_fetch_and_add(&map_full[HV_CLOCK_MAP_VCPUS], 1);
	return 0;
}

/* --- fentry tier: KVM's VM ioctl handler, where the kernel allows it ------ */

/* The fd of the ioctl the current thread is in (fentry is given the file,
 * not the fd), from the syscall's saved registers as in current_ioctl();
 * -1 when they do not hold this ioctl. */
static __always_inline __s64 current_ioctl_fd(__u32 cmd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	struct kvm_call c;

	current_ioctl(&c);
	if (c.cmd != cmd)
		return -1;
	if (BPF_CORE_READ(task, thread_info.status) & HV_TS_COMPAT)
		return (__u32)BPF_CORE_READ(regs, bx);
	return (__u32)BPF_CORE_READ(regs, di);
}

/*
 * KVM_SET_CLOCK returned 0: decide kvmclock-jump here, with what only the
 * ioctl shows (the pause's start at KVM_GET_CLOCK, the flags), unless a
 * vCPU's clock update already did (hv_set_clock_claim): seen_offset is
 * claimed by compare-and-swap from either side, one alert per change.
 */
static __always_inline void fentry_set_clock(struct thread_ctx *tc)
{
	struct hv_clock_vm *vm = vm_get(tc->kvm);
	__s64 after, seen, jump, paused_ns;
	__u32 flags = 0;
	bool seen_valid;

	/* The corrector's own write: hv_clock_resync records it. */
	if (!vm || tc->ignore)
		return;
	after = read_kvmclock_offset(tc->kvm);
	seen = vm->seen_offset;
	seen_valid = vm->phase != VM_SETUP && (vm->flags & VM_F_SEEN);
	paused_ns =
	    hv_paused_ns(vm->phase == VM_PAUSED, vm->pause_start_ns, bpf_ktime_get_boot_ns());
	if (vm->phase == VM_PAUSED)
		vm->phase = VM_RUNNING;
	switch (hv_set_clock_claim(seen_valid, seen, tc->before, after)) {
	case HV_SET_CLOCK_SETUP:
	case HV_SET_CLOCK_CLAIMED:
		return;
	case HV_SET_CLOCK_UNCHANGED:
		if (paused_ns >= 0)
			emit_resume(tc->kvm, vm, paused_ns, 0);
		return;
	case HV_SET_CLOCK_DECIDE:
		break;
	}
	if (!__sync_bool_compare_and_swap(&vm->seen_offset, seen, after))
		return; /* a vCPU's clock update took it meanwhile */
	vm->last_clock_write_ns = bpf_ktime_get_boot_ns();
	if (!hv_kvmclock_jump_violates(true, seen, after, cfg.tolerance_ns[HV_RULE_KVMCLOCK_JUMP],
				       &jump) ||
	    !rule_on(HV_RULE_KVMCLOCK_JUMP)) {
		emit_resume(tc->kvm, vm, paused_ns, jump);
		return;
	}
	bpf_probe_read_user(&flags, sizeof(flags), (void *)(tc->arg + 8));
	alert_kvmclock_jump(tc->kvm, vm, seen, after, paused_ns, flags, (__s32)tc->fd);
}

/* Only a VM fd's ioctls that KVM's generic code passes on reach this
 * function: every other call returns after one compare. */
SEC("fentry/kvm_arch_vm_ioctl")
int BPF_PROG(hv_clock_vm_ioctl, struct file *filp, unsigned int ioctl, unsigned long arg)
{
	struct thread_ctx *tc;
	__u64 kvm;

	if (ioctl != HV_KVM_GET_CLOCK && ioctl != HV_KVM_SET_CLOCK)
		return 0;
	kvm = (__u64)BPF_CORE_READ(filp, private_data);
	if (!kvm)
		return 0;
	__sync_fetch_and_add(&kvm_ioctls_seen, 1);
	tc = bpf_task_storage_get(&hv_clock_threads, bpf_get_current_task_btf(), 0,
				  BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!tc)
		return 0;
	tc->cmd = ioctl;
	tc->kvm = kvm;
	tc->vcpu_id = -1;
	tc->arg = arg;
	tc->fd = (__u32)current_ioctl_fd(ioctl);
	tc->ignore = injected();
	tc->before = read_kvmclock_offset(kvm);
	return 0;
}

SEC("fexit/kvm_arch_vm_ioctl")
int BPF_PROG(hv_clock_vm_ioctl_ret, struct file *filp, unsigned int ioctl, unsigned long arg,
	     long ret)
{
	struct thread_ctx *tc;

	if (ioctl != HV_KVM_GET_CLOCK && ioctl != HV_KVM_SET_CLOCK)
		return 0;
	tc = bpf_task_storage_get(&hv_clock_threads, bpf_get_current_task_btf(), 0, 0);
	if (!tc || tc->cmd != ioctl)
		return 0;
	tc->cmd = 0;
	if (ret)
		return 0;
	if (ioctl == HV_KVM_SET_CLOCK)
		fentry_set_clock(tc);
	else if (!tc->ignore)
		on_get_clock(tc);
	return 0;
}

/*
 * Run by the daemon (BPF_PROG_TEST_RUN, args[0] = struct kvm *), never
 * attached: reads the VM's kvmclock_offset for the corrector, and makes it
 * the offset the guest runs with from now on (its own repair is not a
 * jump). Only for a VM in hv_clock_vms: the pointer is one KVM gave us.
 */
__s64 resync_offset = 0;
__u32 resync_found = 0;

SEC("raw_tp")
int hv_clock_resync(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 kvm = ctx->args[0];
	struct hv_clock_vm *vm = bpf_map_lookup_elem(&hv_clock_vms, &kvm);

	resync_found = 0;
	if (!vm)
		return 0;
	resync_offset = read_kvmclock_offset(kvm);
	vm->seen_offset = resync_offset;
	resync_found = 1;
	return 0;
}

/* --- VMs destroyed while their VMM lives on --------------------------------
 *
 * No hook of any tier sees a VM's destruction, and a VMM may close a VM and
 * live on (or create VMs one after another for days): its VMs' state would
 * hold the table and its quota until it exits. KVM keeps every live VM on
 * its vm_list, from before the VM's fd is installed until early in its
 * destruction; so a struct kvm whose list successor does not point back at
 * it is destroyed (its memory freed, unmapped, or reused). Three tries: a
 * neighbour unlinked between our two reads fails one.
 */
static __always_inline bool vm_linked(__u64 kvm_ptr)
{
	struct kvm *kvm = (struct kvm *)kvm_ptr;
	struct list_head *node = &kvm->vm_list, *next, *back;

	for (int i = 0; i < 3; i++) {
		if (bpf_probe_read_kernel(&next, sizeof(next), &node->next))
			return false; /* unmapped: freed */
		if (!bpf_probe_read_kernel(&back, sizeof(back), &next->prev) && back == node)
			return true;
	}
	return false;
}

/* Run by the daemon (never attached): which tracked VMs are destroyed. */
__u64 dead_keys[HV_RECLAIM_BATCH] = {};
__u64 dead_ids[HV_RECLAIM_BATCH] = {};
__u32 dead_count = 0; /* all found; the first HV_RECLAIM_BATCH listed */

static long find_dead_cb(struct bpf_map *map, __u64 *key, struct hv_clock_vm *vm, void *ctx)
{
	__u32 n = dead_count;

	if (vm_linked(*key))
		return 0;
	if (n < HV_RECLAIM_BATCH) {
		dead_keys[n % HV_RECLAIM_BATCH] = *key;
		dead_ids[n % HV_RECLAIM_BATCH] = vm->id;
	}
	dead_count = n + 1;
	return 0;
}

SEC("raw_tp")
int hv_clock_find_dead(void *ctx)
{
	dead_count = 0;
	bpf_for_each_map_elem(&hv_clock_vms, find_dead_cb, NULL, 0);
	return 0;
}

/*
 * Run by the daemon (args[0] = struct kvm *, args[1] = the VM's id as
 * hv_clock_find_dead saw it): forgets the VM if it is still that one and
 * still destroyed, and gives it back to its VMM's quotas. The daemon has
 * read what it reports of the VM before.
 */
__u32 reclaim_result = 0; /* enum hv_reclaim_result */

SEC("raw_tp")
int hv_clock_reclaim(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 kvm = ctx->args[0];
	struct hv_clock_vm *vm = bpf_map_lookup_elem(&hv_clock_vms, &kvm);

	reclaim_result = HV_RECLAIM_GONE;
	if (!vm || vm->id != ctx->args[1])
		return 0;
	if (vm_linked(kvm)) {
		reclaim_result = HV_RECLAIM_ALIVE;
		return 0;
	}
	vm_clear_dirty(vm);
	vm_quota_return_one(vm->owner_tgid);
	bpf_map_delete_elem(&hv_clock_vms, &kvm);
	reclaim_result = HV_RECLAIM_DONE;
	return 0;
}

/*
 * Not hooked on purpose: kvm_update_master_clock. It fires inside
 * KVM_SET_CLOCK between KVM's two clock samples (the master clock snapshot,
 * then the realtime that KVM_CLOCK_REALTIME adds), so any program there
 * lengthens that gap and every clock restore, ours included, lands that
 * much off: under nested TCG it raised the repaired guest's skew from ~5
 * to ~20 us. What it would tell (master clock off) shows in the PVTIs'
 * missing TSC_STABLE flag, which pvclock-discontinuity already honours.
 */

/* A VMM's VMs are gone: give them back to its user's quotas. */
static __always_inline void vmm_quota_return(struct hv_clock_vmm *vmm)
{
	__u32 all = HV_UID_ALL_NON_ROOT;
	__u64 *n, vms = __sync_lock_test_and_set(&vmm->vms, 0);

	if (!vmm->uid || !vms)
		return;
	n = bpf_map_lookup_elem(&hv_clock_owners, &vmm->uid);
	if (n)
		__sync_fetch_and_sub(n, vms);
	n = bpf_map_lookup_elem(&hv_clock_owners, &all);
	if (n)
		__sync_fetch_and_sub(n, vms);
}

/*
 * A VMM exec'd: its VMs' fds are closed on exec (KVM makes them
 * O_CLOEXEC), so they leave the process, as with QEMU's cpr-exec, where
 * the new image creates a VM again and restores its clocks in the same
 * pid. One hash lookup per exec on the host (per process, not per call).
 */
SEC("tracepoint/sched/sched_process_exec")
int hv_clock_process_exec(void *ctx)
{
	__u32 tgid = hv_current_tgid();
	struct hv_clock_vmm *vmm = bpf_map_lookup_elem(&hv_clock_vmms, &tgid);

	if (!vmm)
		return 0;
	vmm_quota_return(vmm);
	emit_vmm(HV_CLOCK_EV_PROC_EXEC, tgid);
	return 0;
}

/* The last thread of a VMM is gone: its VMs are being destroyed. */
SEC("tracepoint/sched/sched_process_exit")
int hv_clock_process_exit(void *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 tgid = hv_current_tgid();
	struct hv_clock_vmm *vmm;

	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	vmm = bpf_map_lookup_elem(&hv_clock_vmms, &tgid);
	if (!vmm)
		return 0;
	vmm_quota_return(vmm);
	bpf_map_delete_elem(&hv_clock_vmms, &tgid);
	emit_vmm(HV_CLOCK_EV_PROC_EXIT, tgid);
	return 0;
}
