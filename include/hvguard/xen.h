/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Types shared by bpf/xen.bpf.c and user/xen*.c: the decoded form of a Xen
 * device ioctl, the configuration userspace writes before (and while) the
 * programs run, the per-process grant state and the ring-buffer event.
 * Plain C only (no kernel headers), so it compiles on both sides.
 * Ioctl numbers and layouts: Linux's include/uapi/xen/{privcmd,gntdev,gntalloc}.h (LP64);
 * what they do: docs/xen.md, section "The facts it relies on".
 */
#ifndef HVGUARD_XEN_H
#define HVGUARD_XEN_H

#include "hvguard/compat.h"
#include "hvguard/rule_ids.h"

/* The Xen devices we recognise, from struct file. */
enum hv_xen_dev {
	HV_XEN_DEV_NONE,
	HV_XEN_DEV_PRIVCMD, /* /dev/xen/privcmd and /proc/xen/privcmd */
	HV_XEN_DEV_GNTDEV,
	HV_XEN_DEV_GNTALLOC,
	HV_XEN_DEV_COUNT,
};

/* Ioctl numbers, _IOC(_IOC_NONE, 'P' or 'G', nr, size), LP64. */
#define HV_PRIVCMD_HYPERCALL	       0x00305000u
#define HV_PRIVCMD_MMAP		       0x00105002u
#define HV_PRIVCMD_MMAPBATCH	       0x00185003u
#define HV_PRIVCMD_MMAPBATCH_V2	       0x00205004u
#define HV_PRIVCMD_DM_OP	       0x00105005u
#define HV_PRIVCMD_RESTRICT	       0x00025006u
#define HV_PRIVCMD_MMAP_RESOURCE       0x00205007u
#define HV_PRIVCMD_IRQFD	       0x40185008u
#define HV_PRIVCMD_IOEVENTFD	       0x40305009u
#define HV_GNTDEV_MAP_GRANT_REF	       0x00184700u
#define HV_GNTDEV_UNMAP_GRANT_REF      0x00104701u
#define HV_GNTDEV_GET_OFFSET_FOR_VADDR 0x00184702u
#define HV_GNTDEV_SET_MAX_GRANTS       0x00044703u
#define HV_GNTDEV_SET_UNMAP_NOTIFY     0x00104707u
#define HV_GNTDEV_GRANT_COPY	       0x00104708u
#define HV_GNTDEV_DMABUF_EXP_FROM_REFS 0x00144709u
#define HV_GNTDEV_DMABUF_IMP_TO_REFS   0x0014470bu
#define HV_GNTALLOC_ALLOC_GREF	       0x00184705u
#define HV_GNTALLOC_DEALLOC_GREF       0x00104706u

#define HV_IOC_TYPE(cmd)    (((cmd) >> 8) & 0xffu)
#define HV_IOC_TYPE_PRIVCMD 'P'
#define HV_IOC_TYPE_GNT	    'G' /* gntdev and gntalloc share it */

/* MMAP_RESOURCE types (xen/include/public/memory.h). */
#define HV_XENMEM_RESOURCE_IOREQ_SERVER 0

/* The decoded operation, independent of which device number space it came from. */
enum hv_xen_op {
	HV_XEN_OP_OTHER,
	HV_XEN_OP_PRIVCMD_HYPERCALL,
	HV_XEN_OP_PRIVCMD_MMAP,
	HV_XEN_OP_PRIVCMD_MMAPBATCH,
	HV_XEN_OP_PRIVCMD_MMAPBATCH_V2,
	HV_XEN_OP_PRIVCMD_DM_OP,
	HV_XEN_OP_PRIVCMD_RESTRICT,
	HV_XEN_OP_PRIVCMD_MMAP_RESOURCE,
	HV_XEN_OP_PRIVCMD_IRQFD,
	HV_XEN_OP_PRIVCMD_IOEVENTFD,
	HV_XEN_OP_GNTDEV_MAP_GRANT_REF,
	HV_XEN_OP_GNTDEV_UNMAP_GRANT_REF,
	HV_XEN_OP_GNTDEV_GET_OFFSET_FOR_VADDR,
	HV_XEN_OP_GNTDEV_SET_MAX_GRANTS,
	HV_XEN_OP_GNTDEV_SET_UNMAP_NOTIFY,
	HV_XEN_OP_GNTDEV_GRANT_COPY,
	HV_XEN_OP_GNTDEV_DMABUF_EXP_FROM_REFS,
	HV_XEN_OP_GNTDEV_DMABUF_IMP_TO_REFS,
	HV_XEN_OP_GNTALLOC_ALLOC_GREF,
	HV_XEN_OP_GNTALLOC_DEALLOC_GREF,
	HV_XEN_OP_GNTALLOC_SET_UNMAP_NOTIFY,
	HV_XEN_OP_MMAP, /* mmap(2) of the device itself */
	HV_XEN_OP_COUNT,
};

/* How many grant refs of one call are kept for the report (refs[]). */
#define HV_XEN_MAX_REFS 16
/* How many refs (MAP_GRANT_REF) or copy segments (GRANT_COPY) of one call
 * have their domains checked, under bpf_loop: gntdev's own default bound on
 * a mapping request (its "limit" parameter, 64 Ki grants). A call claiming
 * more is not walked: it is unchecked ("truncated"), a violation where the
 * rule's action is deny or kill (docs/xen.md, "Fail closed"). */
#define HV_XEN_WALK_MAX	    65536u
#define HV_XEN_WALK_MAX_STR "65536"
/* A count beyond this is implausible (the drivers refuse far less). */
#define HV_XEN_HUGE_COUNT (1u << 20)
/* Domain ids of real domains are below DOMID_FIRST_RESERVED (0x7ff0). */
#define HV_XEN_DOMID_LIMIT 0x8000u
#define HV_XEN_DOMID_WORDS (HV_XEN_DOMID_LIMIT / 64)
#define HV_XEN_DOMID_NONE  (-1)

/* Decode flags. */
#define HV_XEN_F_UNREADABLE (1u << 0) /* a user structure could not be read */
#define HV_XEN_F_TRUNCATED  (1u << 1) /* more refs than HV_XEN_WALK_MAX: not checked */
#define HV_XEN_F_HUGE	    (1u << 2) /* count beyond HV_XEN_HUGE_COUNT */

/* One Xen device ioctl, decoded from its user arguments. */
struct hv_xen_call {
	__u32 cmd;
	__u8 dev;	     /* enum hv_xen_dev */
	__u8 op;	     /* enum hv_xen_op */
	__u8 flags;	     /* HV_XEN_F_* */
	__u8 n_refs;	     /* entries of refs[]/ref_domids[] actually read */
	__s32 domid;	     /* the call's domain, or HV_XEN_DOMID_NONE */
	__s32 bad_domid;     /* set by the verdict: first domid outside the allowed set */
	__u32 checked;	     /* set by the verdict: refs/segments whose domains it checked */
	__u8 unchecked;	     /* set by the verdict: enum hv_xen_unchecked */
	__u8 unchecked_rule; /* the rule that could not be decided, when unchecked */
	__u16 pad;
	__u64 count;	     /* pages / grants / segments as the caller claims */
	__u64 array;	     /* user address of refs[] (MAP_GRANT_REF) or segments (GRANT_COPY) */
	__u64 uarg;	     /* the ioctl's user pointer */
	__u64 addr;	     /* MMAPBATCH*: target address; MMAP_RESOURCE: addr */
	__u64 hypercall;     /* HYPERCALL: op number */
	__u32 resource_type; /* MMAP_RESOURCE */
	__u32 resource_id;
	__u32 refs[HV_XEN_MAX_REFS];
	__u32 ref_domids[HV_XEN_MAX_REFS];
};

/* Why a call's verdict could not be complete (fail closed: where the
 * rule's action is deny or kill, an unchecked call is a violation). */
enum hv_xen_unchecked {
	HV_XEN_UNCHECKED_NONE,
	HV_XEN_UNCHECKED_UNREADABLE, /* bpf_probe_read_user failed on part of it */
	HV_XEN_UNCHECKED_TRUNCATED,  /* more refs/segments than HV_XEN_WALK_MAX */
	HV_XEN_UNCHECKED_COUNT,
};

/* Per-rule action as the BPF side sees it. */
enum hv_xen_action {
	HV_XEN_ACT_OFF,
	HV_XEN_ACT_ALERT,
	HV_XEN_ACT_KILL,
	HV_XEN_ACT_DENY, /* only set when a deny hook (BPF LSM or fmod_ret) loaded; else KILL */
};

/* Written by userspace into the BPF program's .bss before load (and
 * updatable while it runs): what to recognise and what to enforce. */
struct hv_xen_config {
	/* Address of each driver's unlocked_ioctl handler (privcmd_ioctl,
	 * gntdev_ioctl, gntalloc_ioctl: functions, in kallsyms on every kernel;
	 * the file_operations objects need CONFIG_KALLSYMS_ALL), 0 unknown. */
	__u64 ioctl_fn[HV_XEN_DEV_COUNT];
	__u32 rdev[HV_XEN_DEV_COUNT];	   /* kernel dev_t (major << 20 | minor), 0 unknown */
	__u8 action[HV_RULE_COUNT];	   /* enum hv_xen_action per rule id */
	__s32 target_domain;		   /* device-model target, HV_XEN_DOMID_NONE if unset */
	__u32 n_allowed;		   /* 0: no allowed set given, grant-domain inactive */
	__u64 allowed[HV_XEN_DOMID_WORDS]; /* bitmap of allowed frontend domids */
};

/* Grant lifecycle. */
enum hv_xen_grant_op {
	HV_XEN_GRANT_MAP,  /* MAP_GRANT_REF: reserved */
	HV_XEN_GRANT_MMAP, /* mmap of the reservation: the grant is mapped */
	HV_XEN_GRANT_MUNMAP,
	HV_XEN_GRANT_UNMAP, /* UNMAP_GRANT_REF: released */
	HV_XEN_GRANT_OP_COUNT,
};

enum hv_xen_grant_state {
	HV_XEN_GRANT_RESERVED,
	HV_XEN_GRANT_MAPPED,
	HV_XEN_GRANT_UNMAPPED, /* munmapped, still reserved */
};

/* A designated backend process (key: tgid). */
struct hv_xen_backend {
	__u32 match;			  /* index of the rules' backend entry that matched */
	__u32 inherited_from;		  /* parent tgid when inherited, else 0 */
	__u64 ops[HV_XEN_GRANT_OP_COUNT]; /* lifecycle counts */
	__s64 reserved;			  /* grants reserved now (MAP minus UNMAP) */
	__s64 mapped;			  /* grants mmapped now */
	__u64 violations;
};

/* One gntdev reservation (key: tgid + index). */
struct hv_xen_grant_key {
	__u32 tgid;
	__u32 pad;
	__u64 index;
};

struct hv_xen_grant {
	__u64 reserved_ns;
	__u64 mapped_ns;
	__u64 addr; /* of the mmap, while mapped */
	__u32 count;
	__s32 domid; /* of the first ref */
	__u32 first_ref;
	__u8 state;	    /* enum hv_xen_grant_state */
	__u8 leak_reported; /* userspace: grant-leak already raised */
	__u16 pad;
};

struct hv_xen_addr_key {
	__u32 tgid;
	__u32 pad;
	__u64 addr;
};

/* Exact-match designation done in the kernel at exec, so a backend is
 * watched from its first instruction; globs are matched by userspace. */
#define HV_XEN_PATH_MAX 128
#define HV_XEN_COMM_LEN 16

struct hv_xen_match {
	__s64 uid;   /* -1: any */
	__u32 index; /* backend entry of the rules */
	__u32 pad;
};

enum hv_xen_event_type {
	HV_XEN_EV_VIOLATION,
	HV_XEN_EV_GRANT,      /* lifecycle step */
	HV_XEN_EV_EXIT,	      /* designated backend exited */
	HV_XEN_EV_EXEC,	      /* any exec: userspace matches globs */
	HV_XEN_EV_BADARG,     /* a backend's Xen ioctl with unreadable arguments */
	HV_XEN_EV_DESIGNATED, /* designated by the kernel (exec match or fork) */
	HV_XEN_EV_UNCHECKED,  /* a call not fully checked, its rule alert-only */
};

/* hv_xen_event.ret of a violation reported at the call's entry because
 * hvguard had no room to follow the call to its return (xen_pending full). */
#define HV_XEN_RET_UNSEEN (-(1ll << 62))

struct hv_xen_event {
	__u8 type;     /* enum hv_xen_event_type */
	__u8 rule;     /* enum hv_rule_id (violations) */
	__u8 action;   /* enum hv_xen_action taken */
	__u8 grant_op; /* enum hv_xen_grant_op */
	__u32 pid;     /* tgid */
	__u32 tid;
	__u32 ppid;  /* DESIGNATED by fork: the parent */
	__s64 ret;   /* syscall return, when known (else HV_XEN_RET_UNSEEN) */
	__u64 ts_ns; /* CLOCK_BOOTTIME (bpf_ktime_get_boot_ns) */
	char comm[HV_XEN_COMM_LEN];
	struct hv_xen_call call;
	__u64 index; /* grant: reservation index (mmap offset) */
	__u64 addr;  /* grant: mmap address */
	__u64 len;
	struct hv_xen_backend backend; /* EXIT: final counts */
	char path[HV_XEN_PATH_MAX];    /* EXEC: file name as exec'd */
};

/* Where detection hooks (docs/hooks.md): the drivers' own functions, or
 * the syscall tracepoints every thread of the host then pays for. */
enum hv_xen_tier {
	HV_XEN_TIER_FENTRY,
	HV_XEN_TIER_SYSCALLS,
	HV_XEN_TIER_COUNT,
};

/* How user memory is read. NOFAULT: only what is in the page tables now
 * (any context; a page not faulted in yet reads as unreadable). FAULT:
 * faults pages in like the driver's own copy does (sleepable programs).
 * The includer of xen_logic.h reads by it (see there). */
enum hv_xen_reader {
	HV_XEN_READER_NOFAULT,
	HV_XEN_READER_FAULT,
};

/* Kernel-side counters: xen.bpf.c's .bss array xen_stats[], index = enum. */
enum hv_xen_stat {
	HV_XEN_STAT_LOST,   /* ring buffer full */
	HV_XEN_STAT_IOCTLS, /* Xen device ioctls by backends */
	HV_XEN_STAT_VIOLATIONS,
	HV_XEN_STAT_KILLS,
	HV_XEN_STAT_DENIALS,
	HV_XEN_STAT_PENDING_FULL, /* no room to remember an in-flight call */
	/* Calls a rule could not fully check, by cause (whatever the action). */
	HV_XEN_STAT_UNCHECKED_UNREADABLE,
	HV_XEN_STAT_UNCHECKED_TRUNCATED,
	/* A deny program without scratch to decode a call in: refused where
	 * any rule denies, undecoded. */
	HV_XEN_STAT_NO_SCRATCH,
	HV_XEN_STAT_COUNT,
};

#endif
