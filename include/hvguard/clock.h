/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Plain types shared by bpf/clock.bpf.c and the userspace clock family:
 * the ioctl numbers watched, the events sent through the ring buffer, the
 * configuration set before load, and the per-VM / per-vCPU state kept in
 * (pinned) maps.
 */
#ifndef HVGUARD_CLOCK_H
#define HVGUARD_CLOCK_H

#include "hvguard/compat.h"
#include "hvguard/rule_ids.h"

/* KVM ioctls (KVMIO = 0xAE), x86_64 values, from Linux's <linux/kvm.h>; what
 * they do and what hvguard relies on: docs/kvm-clock.md. */
#define HV_KVMIO	       0xAE
#define HV_KVM_CREATE_VM       0xAE01u
#define HV_KVM_CREATE_VCPU     0xAE41u
#define HV_KVM_RUN	       0xAE80u
#define HV_KVM_SET_CLOCK       0x4030AE7Bu
#define HV_KVM_GET_CLOCK       0x8030AE7Cu
#define HV_KVM_SET_MSRS	       0x4008AE89u
#define HV_KVM_SET_TSC_KHZ     0xAEA2u
#define HV_KVM_KVMCLOCK_CTRL   0xAEADu
#define HV_KVM_SET_DEVICE_ATTR 0x4018AEE1u

#define HV_KVM_CLOCK_TSC_STABLE 2
#define HV_KVM_CLOCK_REALTIME	4
#define HV_KVM_CLOCK_HOST_TSC	8

#define HV_MSR_IA32_TSC	       0x10
#define HV_MSR_IA32_TSC_ADJUST 0x3b
#define HV_KVM_VCPU_TSC_CTRL   0
#define HV_KVM_VCPU_TSC_OFFSET 0

#define HV_PVCLOCK_TSC_STABLE	 0x1
#define HV_PVCLOCK_GUEST_STOPPED 0x2

/* vCPUs per VM whose TSC offsets are tracked for vcpu-tsc-mismatch. */
#define HV_MAX_VCPUS 256
_Static_assert((HV_MAX_VCPUS & (HV_MAX_VCPUS - 1)) == 0, "indexes are masked with it");
/* A host TSC write below this restarts the guest's TSC: a reset (2^32
 * cycles is over a second at any real TSC frequency). */
#define HV_TSC_RESET_MAX (1ull << 32)
/* KVM_SET_MSRS entries scanned for a TSC write (QEMU puts ~30 per call). */
#define HV_MAX_MSR_SCAN 64

/*
 * Where the clock family hooks (hvguard run --hooks). kvm-tracepoints: KVM's
 * own tracepoints only, which fire only when KVM does clock work, so
 * nothing else on the host pays; the VM and the ioctl behind a tracepoint
 * come from the current task (vcpu_load's preempt notifier, the syscall's
 * saved registers). fentry: the same, plus fentry/fexit on KVM's VM ioctl
 * handler (kvm_arch_vm_ioctl: only a VMM's VM ioctls pay, never KVM_RUN),
 * which sees KVM_GET_CLOCK and KVM_SET_CLOCK, where the kernel allows
 * fentry. syscalls: the ioctl syscall tracepoints as well (every thread of
 * the host on the syscall slow path), for kernels where neither loads.
 * Tried best first: fentry, kvm-tracepoints, syscalls.
 */
enum hv_clock_tier {
	HV_HOOKS_KVM_TRACEPOINTS = 1,
	HV_HOOKS_SYSCALLS,
	HV_HOOKS_FENTRY,
};

/* The clock family's maps whose inserts can fail when full (counted). */
enum hv_clock_map {
	HV_CLOCK_MAP_VMS,
	HV_CLOCK_MAP_VCPUS,
	HV_CLOCK_MAP_VMMS,
	HV_CLOCK_MAP_FROZEN,
	HV_CLOCK_MAP_OWNERS,
	HV_CLOCK_MAP_COUNT,
};

/*
 * Quotas on the VM table (4096 VMs): no one VMM process, no one user, and
 * not all non-root users together can take the room another's VMs need.
 * Root's VMMs are bound only by the per-process quota (root is trusted;
 * the per-process bound still holds a compromised root VMM). A VM over a
 * quota is not tracked, its events are counted, and its VMM is named once.
 */
#define HV_VM_TABLE	    4096
#define HV_VMS_PER_VMM	    512	 /* defaults of hvguard run --max-vms-per-vmm */
#define HV_VMS_PER_USER	    1024 /* and --max-vms-per-user */
#define HV_VMS_NON_ROOT	    3072
#define HV_UID_ALL_NON_ROOT 0xffffffffu /* hv_clock_owners: the non-root total */

enum hv_clock_quota {
	HV_QUOTA_OK = 0,
	HV_QUOTA_VMM,	   /* the process holds HV_VMS_PER_VMM VMs */
	HV_QUOTA_USER,	   /* its user holds HV_VMS_PER_USER VMs */
	HV_QUOTA_NON_ROOT, /* non-root users hold HV_VMS_NON_ROOT VMs */
	HV_QUOTA_COUNT,
};

/* The daemon's reclaim of VMs destroyed while their VMM lives on: dead VMs
 * listed per pass (more wait for the next), and what one reclaim did. */
#define HV_RECLAIM_BATCH     64
#define HV_RECLAIM_PERIOD_MS 5000
enum hv_reclaim_result {
	HV_RECLAIM_GONE = 0, /* no such VM any more (or a new one at its key) */
	HV_RECLAIM_ALIVE,    /* linked again: never forgotten */
	HV_RECLAIM_DONE,     /* forgotten, its quota given back */
};

/* hv_clock_vmms: a VMM process, its VMs tracked and its user. */
struct hv_clock_vmm {
	__u32 vms;
	__u32 uid;
	__u32 refused; /* enum hv_clock_quota that refused it a VM first, said once */
	__u32 pad;
};

/* hv_clock_ev_khz.result when the tier did not see the ioctl's return value. */
#define HV_RESULT_UNKNOWN (-(1ll << 62))

enum hv_clock_event_type {
	HV_CLOCK_EV_ALERT = 1,
	HV_CLOCK_EV_GUEST_TSC_WRITE, /* legitimate, logged: the guest wrote its TSC */
	HV_CLOCK_EV_TSC_RESET,	     /* legitimate, logged: host reset write of 0 */
	HV_CLOCK_EV_VM_NEW,
	HV_CLOCK_EV_PAUSE,	       /* KVM_GET_CLOCK on a running VM */
	HV_CLOCK_EV_RESUME,	       /* first KVM_RUN after a pause */
	HV_CLOCK_EV_PROC_EXIT,	       /* a VMM process ended: its VMs are gone */
	HV_CLOCK_EV_GUEST_TSC_SUMMARY, /* guest TSC writes counted, not sent one by one */
	HV_CLOCK_EV_VM_UNTRACKED,      /* a VMM's VM is over a quota */
	HV_CLOCK_EV_ARRIVAL,	  /* first guest entry of a VM whose TSC was set before it ran */
	HV_CLOCK_EV_PROC_EXEC,	  /* a VMM exec'd (CPR's cpr-exec) */
	HV_CLOCK_EV_VM_DESTROYED, /* (the daemon's own) a VM gone while its VMM lives on */
};

/*
 * What a guest can trigger at will (its own TSC writes) is sent one record
 * at a time only up to HV_FLOOD_BURST per VM and HV_FLOOD_WINDOW_NS; the
 * rest of the window is counted and sent as one summary record when the
 * next window opens (or by the daemon when the VMM exits). A guest looping
 * wrmsr therefore costs the ring a few records a second, whatever its rate.
 */
#define HV_FLOOD_WINDOW_NS 1000000000ull
#define HV_FLOOD_BURST	   8

struct hv_clock_flood {
	__u64 window_start; /* CLOCK_BOOTTIME the window opened */
	__u64 sent;	    /* records sent one by one in this window */
	__u64 suppressed;   /* counted, not sent, in this window */
	__u64 total;	    /* every event ever seen for this VM */
};

/*
 * The record's payload, one struct per kind of record: its tag is type,
 * and rule for an alert. Every value is an __s64, as BPF writes them.
 */

/* Alert kvmclock-jump. */
struct hv_clock_ev_jump {
	__s64 ns;	     /* kvmclock_offset after - before */
	__s64 paused_ns;     /* -1 when the pause start was not seen */
	__s64 offset_before; /* kvm->arch.kvmclock_offset before KVM_SET_CLOCK */
	__s64 offset_after;
	__s64 set_flags; /* flags passed to KVM_SET_CLOCK, -1 if unknown */
	__s64 fd;	 /* the VM or vCPU fd the ioctl used, -1 if unknown */
};

/* Alert tsc-offset-change; HV_CLOCK_EV_GUEST_TSC_WRITE and HV_CLOCK_EV_TSC_RESET
 * carry before and after only. */
struct hv_clock_ev_tsc {
	__s64 before; /* the vCPU's TSC offset */
	__s64 after;
	__s64 written; /* MSR_IA32_TSC value written, -1 if by attribute */
	__s64 ioctl;   /* the ioctl that wrote it */
};

/* Alert tsc-khz-change. */
struct hv_clock_ev_khz {
	__s64 before;
	__s64 after;
	__s64 result; /* the ioctl's return value, HV_RESULT_UNKNOWN if not seen */
};

/* Alert vcpu-tsc-mismatch. */
struct hv_clock_ev_mismatch {
	__s64 offset; /* the vCPU's TSC offset */
	__s64 ref_offset;
	__s64 ref_vcpu;
	__s64 nr_different;
	__s64 nr_vcpus;
};

/* Alert vcpu-tsc-khz-mismatch. */
struct hv_clock_ev_khz_mismatch {
	__s64 tsc_khz;	    /* the vCPU's vcpu->arch.virtual_tsc_khz, new at this update */
	__s64 ref_vcpu;	    /* the first vCPU at another frequency */
	__s64 ref_tsc_khz;  /* its frequency */
	__s64 nr_different; /* other vCPUs at another frequency than this one */
};

/* Alert pvclock-discontinuity. */
struct hv_clock_ev_pvclock {
	__s64 residual_ns; /* discontinuity_ns: what no kvmclock write explains */
	__s64 raw_ns;	   /* D computed from the two PVTIs */
	__s64 explained_ns;
	__s64 flags; /* the PVTI's */
};

/* HV_CLOCK_EV_ARRIVAL (sent on the alert ring: migration-clock-warp is
 * decided on it). */
struct hv_clock_ev_arrival {
	__s64 kvmclock_offset; /* kvm->arch.kvmclock_offset at the first entry */
	__s64 written_ns;      /* CLOCK_BOOTTIME of the host TSC write before it */
	__s64 tsc_khz;	       /* vcpu->arch.virtual_tsc_khz */
	__s64 pvti_scale;      /* the PVTI's tsc_to_system_mul << 8 | (__u8)tsc_shift */
	__s64 tsc_ratio;       /* vcpu->arch.l1_tsc_scaling_ratio */
};

/* HV_CLOCK_EV_GUEST_TSC_SUMMARY. */
struct hv_clock_ev_flood {
	__s64 suppressed; /* events of the window not sent one by one */
	__s64 window_start_ns;
	__s64 window_end_ns;
	__s64 total; /* the VM's events so far, this one included */
};

/* HV_CLOCK_EV_PAUSE. */
struct hv_clock_ev_pause {
	__s64 kvmclock_offset; /* when the pause began */
};

/* HV_CLOCK_EV_RESUME. */
struct hv_clock_ev_resume {
	__s64 paused_ns; /* -1 when the pause start was not seen */
	__s64 jump_ns;	 /* how far kvmclock moved */
};

/* HV_CLOCK_EV_VM_UNTRACKED. */
struct hv_clock_ev_untracked {
	__s64 quota; /* enum hv_clock_quota that refused the VM */
	__s64 uid;   /* the VMM's user */
};

/* HV_CLOCK_EV_PROC_EXIT and HV_CLOCK_EV_PROC_EXEC. */
struct hv_clock_ev_vmm {
	__s64 tgid;
};

/* HV_CLOCK_EV_VM_DESTROYED: who saw the VM go. */
enum hv_destroyed_by {
	HV_DESTROYED_RECLAIM = 0, /* the daemon's pass found it off KVM's list */
	HV_DESTROYED_NEW_VM,	  /* a new VM of its VMM took its address first */
};

struct hv_clock_ev_destroyed {
	__s64 seen_by; /* enum hv_destroyed_by */
};

enum hv_clock_freeze {
	HV_NOT_FROZEN = 0,
	HV_FROZEN,	      /* stopped: the daemon corrects, then lets it go */
	HV_NOT_FROZEN_TRACED, /* to be corrected, but traced (a debugger): never stopped */
};

struct hv_clock_event {
	__u32 type;
	__u32 rule;
	__u32 pid;
	__u32 tid;
	__u64 vm_key; /* struct kvm * */
	__u64 vm_id;  /* stable id, survives daemon restarts */
	__s32 vcpu;   /* -1 when not per vCPU */
	__u32 frozen; /* enum hv_clock_freeze: did BPF stop the VMM for a correction */
	__u64 ts_ns;  /* CLOCK_BOOTTIME at the hook */
	union {	      /* by type, and by rule for HV_CLOCK_EV_ALERT */
		struct hv_clock_ev_jump jump; /* the largest: the whole payload */
		struct hv_clock_ev_tsc tsc;
		struct hv_clock_ev_khz khz;
		struct hv_clock_ev_mismatch mismatch;
		struct hv_clock_ev_khz_mismatch khz_mismatch;
		struct hv_clock_ev_pvclock pvclock;
		struct hv_clock_ev_arrival arrival;
		struct hv_clock_ev_flood flood;
		struct hv_clock_ev_pause pause;
		struct hv_clock_ev_resume resume;
		struct hv_clock_ev_untracked untracked;
		struct hv_clock_ev_vmm vmm;
		struct hv_clock_ev_destroyed destroyed;
	};
	char comm[16];
};

/* The ring record keeps its 112 bytes; jump, the largest kind, spans the
 * whole payload (fill_event() in clock.bpf.c zeroes it through jump). */
_Static_assert(sizeof(struct hv_clock_event) == 112, "the clock ring record's size");
_Static_assert(__builtin_offsetof(struct hv_clock_event, comm) -
		       __builtin_offsetof(struct hv_clock_event, jump) ==
		   sizeof(struct hv_clock_ev_jump),
	       "jump spans the whole payload");

/* The VM table's quotas in force (--max-vms-per-vmm, --max-vms-per-user). */
struct hv_clock_quotas {
	__u32 per_vmm;
	__u32 per_user;
	__u32 non_root;
	__u32 pad;
};

struct hv_clock_config {
	__u64 kvm_vm_ioctl;   /* addresses of the file_operations' unlocked_ioctl */
	__u64 kvm_vcpu_ioctl; /* handlers: how a struct file is recognised as a */
	__u64 kvm_dev_ioctl;  /* VM, vCPU or /dev/kvm fd */
	__u32 tier;	      /* enum hv_clock_tier */
	__u32 enabled_mask;   /* 1 << enum hv_rule_id */
	__u32 correct_mask;   /* rules whose violation freezes the VMM */
	__s64 tolerance_ns[HV_RULE_COUNT];
	struct hv_clock_quotas quotas; /* in force (HV_VMS_* unless set) */
};

enum hv_clock_vm_phase {
	VM_SETUP = 0, /* created, never ran here: writes are setup */
	VM_RUNNING,
	VM_PAUSED,  /* KVM_GET_CLOCK seen since it last ran */
	VM_RESUMED, /* KVM_SET_CLOCK seen, not run yet */
};

#define VM_F_OFFSETS_DIRTY 0x1	/* a host TSC write since the last mismatch check */
#define VM_F_MIGRATED_IN   0x4	/* its TSC came from elsewhere before it first ran */
#define VM_F_SEEN	   0x8	/* seen_offset holds what the guest last ran with */
#define VM_F_ARRIVED	   0x10 /* its arrival (first entry after migrating in) was sent */
#define VM_F_ARRIVING	   0x20 /* a host write moved its TSC ahead before it first ran */

struct hv_clock_vm {
	__u64 id;
	__u32 owner_tgid;
	__u32 phase;
	__u32 flags;
	__u32 nr_vcpus; /* slots taken below (vCPUs seen, at most HV_MAX_VCPUS) */
	__u64 pause_start_ns;
	__s64 pause_offset; /* kvmclock_offset when the pause began */
	__u64 last_clock_write_ns;
	__s64 seen_offset;    /* kvm-tracepoints: kvmclock_offset the guest last ran with */
	__u64 migrated_in_ns; /* CLOCK_BOOTTIME of the setup TSC write that made it VM_F_ARRIVING
			       */
	/* Per-vCPU state lives in slots, not at the vCPU id: ids are APIC ids,
	 * sparse and up to 4095, and must never share a slot. A vCPU takes
	 * the slot of its id when that is where the next free one is (dense
	 * ids: slot == id), else the next free one (hv_vcpu_slot_of()). */
	__u32 vcpu_ids[HV_MAX_VCPUS];	    /* slot -> vCPU id + 1, 0 when free */
	__u64 tsc_known[HV_MAX_VCPUS / 64]; /* bit per slot: offset below is known */
	__u64 tsc_guest[HV_MAX_VCPUS / 64]; /* bit per slot: the guest moved its own TSC */
	__s64 tsc_offset[HV_MAX_VCPUS];	    /* last L1 offset per slot */
	/* Host TSC writes since the slot's vCPU last ran (hv_tsc_reference()):
	 * a bit when tsc_ran holds the offset it ran with, valid while its
	 * exit count (low 32 bits) is still tsc_ran_exits. */
	__u64 tsc_ran_known[HV_MAX_VCPUS / 64];
	__u32 tsc_ran_exits[HV_MAX_VCPUS];
	__s64 tsc_ran[HV_MAX_VCPUS];
	/* Each slot's vcpu->arch.virtual_tsc_khz at its last clock update, 0
	 * before its first (vcpu-tsc-khz-mismatch). */
	__u32 tsc_khz[HV_MAX_VCPUS];
	struct hv_clock_flood guest_writes; /* the guest's own TSC writes */
};

struct hv_clock_vcpu_key {
	__u64 kvm;
	__u32 vcpu_id;
	__u32 pad;
};

/* The guest's struct pvclock_vcpu_time_info, as KVM writes it. */
struct hv_clock_pvti {
	__u32 version;
	__u32 pad0;
	__u64 tsc_timestamp;
	__u64 system_time;
	__u32 tsc_to_system_mul;
	__s8 tsc_shift;
	__u8 flags;
	__u8 pad[2];
};

struct hv_clock_vcpu {
	struct hv_clock_pvti pvti; /* the last one KVM wrote */
	__s64 kvmclock_offset;	   /* kvm->arch.kvmclock_offset at that moment */
	__s64 tsc_offset;	   /* the vCPU's offset at that moment */
	__u32 tsc_khz;		   /* its virtual TSC frequency then */
	__u32 tid;		   /* the thread that runs it (KVM_RUN's), at that update */
	__u64 tsc_ratio; /* vcpu->arch.l1_tsc_scaling_ratio: a power of two when unscaled */
};

/*
 * A VMM the daemon is correcting right now (hv_clock_correcting, keyed by
 * tgid; added before injecting): its ioctls are the corrector's own and
 * trip no rule.
 */
struct hv_clock_probe {
	__u64 since_ns;
};

/* Globals kept in a pinned array so they survive daemon restarts. */
struct hv_clock_global {
	__u64 next_vm_id;
	__u64 kvm_fd_gen; /* bumped at every VM/vCPU creation: invalidates caches */
};

/*
 * A VM that left the process that ran it (live migration's departure, see
 * user/migration.h), kept pinned (hv_clock_departures, by VM id) so that a
 * daemon restarted between a departure and its arrival still matches
 * them. Written and read by the daemon only; its samples are against
 * CLOCK_REALTIME.
 */
#define HV_DEPARTURES 128
struct hv_clock_departure {
	__u64 vm;
	__s64 realtime_ns; /* the sample's moment */
	__s64 tai_ns;
	__s64 kvmclock_ns; /* the guest's kvmclock then */
	__s64 saved_by_ns; /* latest realtime the clocks can have been saved */
	__s64 clock_error_ns;
	__u32 pid;
	__u32 tsc_khz;
	__u32 pvti_mul;
	__s32 pvti_shift;
	__u32 nr_vcpus;
	__u32 matched; /* arrivals matched to it so far */
	char name[64];
	char uuid[40];
	__u32 vcpu_ids[HV_MAX_VCPUS];
	__s64 tsc[HV_MAX_VCPUS]; /* each vCPU's guest TSC at realtime_ns */
};

/*
 * The layout of the pinned state: bump it whenever a struct a pinned map
 * holds (hv_clock_vm, hv_clock_vcpu_key, hv_clock_vcpu, hv_clock_probe,
 * hv_clock_global, hv_clock_departure) or a pinned map's definition changes, even at the same size.
 * A daemon refuses pinned state of another layout (user/pindir.c).
 */
#define HV_CLOCK_LAYOUT_VERSION 4

#endif
