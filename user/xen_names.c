// SPDX-License-Identifier: GPL-2.0
/* The Xen family's names for people: in its records, logs and metrics. */
#include "xen_user.h"

const char *hv_xen_op_name(__u8 op)
{
	static const char *const names[HV_XEN_OP_COUNT] = {
	    [HV_XEN_OP_OTHER] = "other",
	    [HV_XEN_OP_PRIVCMD_HYPERCALL] = "IOCTL_PRIVCMD_HYPERCALL",
	    [HV_XEN_OP_PRIVCMD_MMAP] = "IOCTL_PRIVCMD_MMAP",
	    [HV_XEN_OP_PRIVCMD_MMAPBATCH] = "IOCTL_PRIVCMD_MMAPBATCH",
	    [HV_XEN_OP_PRIVCMD_MMAPBATCH_V2] = "IOCTL_PRIVCMD_MMAPBATCH_V2",
	    [HV_XEN_OP_PRIVCMD_DM_OP] = "IOCTL_PRIVCMD_DM_OP",
	    [HV_XEN_OP_PRIVCMD_RESTRICT] = "IOCTL_PRIVCMD_RESTRICT",
	    [HV_XEN_OP_PRIVCMD_MMAP_RESOURCE] = "IOCTL_PRIVCMD_MMAP_RESOURCE",
	    [HV_XEN_OP_PRIVCMD_IRQFD] = "IOCTL_PRIVCMD_IRQFD",
	    [HV_XEN_OP_PRIVCMD_IOEVENTFD] = "IOCTL_PRIVCMD_IOEVENTFD",
	    [HV_XEN_OP_GNTDEV_MAP_GRANT_REF] = "IOCTL_GNTDEV_MAP_GRANT_REF",
	    [HV_XEN_OP_GNTDEV_UNMAP_GRANT_REF] = "IOCTL_GNTDEV_UNMAP_GRANT_REF",
	    [HV_XEN_OP_GNTDEV_GET_OFFSET_FOR_VADDR] = "IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR",
	    [HV_XEN_OP_GNTDEV_SET_MAX_GRANTS] = "IOCTL_GNTDEV_SET_MAX_GRANTS",
	    [HV_XEN_OP_GNTDEV_SET_UNMAP_NOTIFY] = "IOCTL_GNTDEV_SET_UNMAP_NOTIFY",
	    [HV_XEN_OP_GNTDEV_GRANT_COPY] = "IOCTL_GNTDEV_GRANT_COPY",
	    [HV_XEN_OP_GNTDEV_DMABUF_EXP_FROM_REFS] = "IOCTL_GNTDEV_DMABUF_EXP_FROM_REFS",
	    [HV_XEN_OP_GNTDEV_DMABUF_IMP_TO_REFS] = "IOCTL_GNTDEV_DMABUF_IMP_TO_REFS",
	    [HV_XEN_OP_GNTALLOC_ALLOC_GREF] = "IOCTL_GNTALLOC_ALLOC_GREF",
	    [HV_XEN_OP_GNTALLOC_DEALLOC_GREF] = "IOCTL_GNTALLOC_DEALLOC_GREF",
	    [HV_XEN_OP_GNTALLOC_SET_UNMAP_NOTIFY] = "IOCTL_GNTALLOC_SET_UNMAP_NOTIFY",
	    [HV_XEN_OP_MMAP] = "mmap",
	};
	return op < HV_XEN_OP_COUNT && names[op] ? names[op] : "unknown";
}

const char *hv_xen_dev_name(__u8 dev)
{
	switch (dev) {
	case HV_XEN_DEV_PRIVCMD:
		return "privcmd";
	case HV_XEN_DEV_GNTDEV:
		return "gntdev";
	case HV_XEN_DEV_GNTALLOC:
		return "gntalloc";
	}
	return "none";
}

const char *hv_xen_unchecked_name(__u8 why)
{
	switch (why) {
	case HV_XEN_UNCHECKED_UNREADABLE:
		return "unreadable";
	case HV_XEN_UNCHECKED_TRUNCATED:
		return "truncated";
	}
	return "none";
}

const char *hv_xen_grant_op_name(__u8 op)
{
	static const char *const names[HV_XEN_GRANT_OP_COUNT] = {"map", "mmap", "munmap", "unmap"};
	return op < HV_XEN_GRANT_OP_COUNT ? names[op] : "unknown";
}

/* As --xen-hooks and the summary's "hooks" say it. */
const char *hv_xen_tier_name(enum hv_xen_tier tier)
{
	static const char *const names[HV_XEN_TIER_COUNT] = {
	    [HV_XEN_TIER_FENTRY] = "fentry",
	    [HV_XEN_TIER_SYSCALLS] = "syscalls",
	};
	return (unsigned)tier < HV_XEN_TIER_COUNT ? names[tier] : "unknown";
}

/* How "deny" is carried out, as the summary's "deny" says it. */
const char *hv_xen_deny_name(enum hv_xen_enforcement deny)
{
	static const char *const names[] = {
	    [ENF_NONE] = "unused",
	    [ENF_LSM_SLEEPABLE] = "bpf-lsm-sleepable",
	    [ENF_LSM] = "bpf-lsm",
	    [ENF_FMOD_RET] = "fmod-ret",
	    [ENF_KILL_FALLBACK] = "kill-fallback",
	};
	return (unsigned)deny < sizeof(names) / sizeof(names[0]) ? names[deny] : "unknown";
}
