/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Pure decode and policy for the Xen devices, compiled into bpf/xen.bpf.c
 * and into the userspace unit tests: one implementation, tested in
 * userspace, run in the kernel.
 *
 * The includer provides the one impure thing, reading user memory:
 *     static long hv_xen_read_user(void *dst, __u32 size, __u64 uptr);
 * returning 0 or a negative errno (BPF: bpf_probe_read_user; tests: a fake
 * address space with holes). Every read is of a fixed, small size, so a
 * hostile caller (huge counts, bad pointers) costs a bounded amount of work.
 */
#ifndef HVGUARD_XEN_LOGIC_H
#define HVGUARD_XEN_LOGIC_H

#include "hvguard/xen.h"

#ifdef __bpf__
#define HV_XEN_INLINE static __always_inline
#else
#define HV_XEN_INLINE static inline
#endif

/* Which device a struct file is: by the ioctl handler of its file_operations
 * first (misc_open installs the driver's fops, and xenfs' /proc/xen/privcmd
 * uses the same ones), by the character device number when the handler's
 * address is unknown. */
HV_XEN_INLINE __u8 hv_xen_classify(__u64 ioctl_fn, __u32 rdev, const struct hv_xen_config *cfg)
{
	__u8 dev;

	for (dev = HV_XEN_DEV_PRIVCMD; dev < HV_XEN_DEV_COUNT; dev++) {
		if (ioctl_fn && cfg->ioctl_fn[dev] == ioctl_fn)
			return dev;
	}
	for (dev = HV_XEN_DEV_PRIVCMD; dev < HV_XEN_DEV_COUNT; dev++) {
		if (!cfg->ioctl_fn[dev] && rdev && cfg->rdev[dev] == rdev)
			return dev;
	}
	return HV_XEN_DEV_NONE;
}

HV_XEN_INLINE bool hv_xen_domid_allowed(const struct hv_xen_config *cfg, __u32 domid)
{
	if (cfg->n_allowed == 0)
		return true; /* no allowed set configured: nothing to check */
	if (domid >= HV_XEN_DOMID_LIMIT)
		return false;
	return (cfg->allowed[(domid / 64) & (HV_XEN_DOMID_WORDS - 1)] >> (domid % 64)) & 1;
}

/* Reads one field of the user structure; on failure marks the call. */
#define HV_XEN_READ(c, dst, off)                                                                   \
	({                                                                                         \
		long __e = hv_xen_read_user(&(dst), sizeof(dst), (c)->uarg + (off));               \
		if (__e)                                                                           \
			(c)->flags |= HV_XEN_F_UNREADABLE;                                         \
		__e;                                                                               \
	})

HV_XEN_INLINE void hv_xen_note_count(struct hv_xen_call *c, __u64 count)
{
	c->count = count;
	if (count > HV_XEN_HUGE_COUNT)
		c->flags |= HV_XEN_F_HUGE;
	if (count > HV_XEN_MAX_REFS)
		c->flags |= HV_XEN_F_TRUNCATED;
}

/* MAP_GRANT_REF: {u32 count; u32 pad; u64 index; {u32 domid; u32 ref} refs[]} */
HV_XEN_INLINE void hv_xen_decode_map_grant_ref(struct hv_xen_call *c)
{
	__u32 count = 0, i, pair[2];

	if (HV_XEN_READ(c, count, 0))
		return;
	hv_xen_note_count(c, count);
	for (i = 0; i < HV_XEN_MAX_REFS; i++) {
		if (i >= count)
			break;
		if (HV_XEN_READ(c, pair, 16 + 8 * (__u64)i))
			break;
		c->ref_domids[i] = pair[0];
		c->refs[i] = pair[1];
		c->n_refs = i + 1;
		if (i == 0)
			c->domid = (__s32)pair[0];
	}
}

/* GRANT_COPY: {u32 count; u32 pad; segment *segments}, 24-byte segments
 * {union {u64 virt; {u32 ref; u16 offset; u16 domid}} source, dest;
 *  u16 len; u16 flags; s16 status}; flags bit 0/1: source/dest is a gref. */
HV_XEN_INLINE void hv_xen_decode_grant_copy(struct hv_xen_call *c)
{
	__u32 count = 0, i;
	__u64 segs = 0, seg[3];
	__u16 flags, domid;
	long err;

	if (HV_XEN_READ(c, count, 0) || HV_XEN_READ(c, segs, 8))
		return;
	hv_xen_note_count(c, count);
	for (i = 0; i < HV_XEN_MAX_REFS; i++) {
		if (i >= count)
			break;
		err = hv_xen_read_user(seg, sizeof(seg), segs + 24 * (__u64)i);
		if (err) {
			c->flags |= HV_XEN_F_UNREADABLE;
			break;
		}
		flags = (__u16)(seg[2] >> 16);
		/* The foreign side: its domid is the top 16 bits of the union. */
		if (flags & 1) {
			domid = (__u16)(seg[0] >> 48);
			c->refs[c->n_refs & (HV_XEN_MAX_REFS - 1)] = (__u32)seg[0];
		} else if (flags & 2) {
			domid = (__u16)(seg[1] >> 48);
			c->refs[c->n_refs & (HV_XEN_MAX_REFS - 1)] = (__u32)seg[1];
		} else {
			continue; /* local to local: no grant involved */
		}
		c->ref_domids[c->n_refs & (HV_XEN_MAX_REFS - 1)] = domid;
		if (c->domid == HV_XEN_DOMID_NONE)
			c->domid = domid;
		c->n_refs++;
	}
}

/* DMABUF_EXP_FROM_REFS {u32 flags, count, fd, domid; u32 refs[]} and
 * DMABUF_IMP_TO_REFS {u32 fd, count, domid, reserved; u32 refs[] (out)}. */
HV_XEN_INLINE void hv_xen_decode_dmabuf(struct hv_xen_call *c, __u32 domid_word, bool has_refs)
{
	__u32 hdr[4], i, ref;

	/* One read of the whole header, as the driver copies it. */
	if (HV_XEN_READ(c, hdr, 0))
		return;
	hv_xen_note_count(c, hdr[1]);
	c->domid = (__s32)hdr[domid_word & 3];
	if (!has_refs)
		return;
	for (i = 0; i < HV_XEN_MAX_REFS; i++) {
		if (i >= hdr[1])
			break;
		if (HV_XEN_READ(c, ref, 16 + 4 * (__u64)i))
			break;
		c->refs[i] = ref;
		c->ref_domids[i] = hdr[domid_word & 3];
		c->n_refs = i + 1;
	}
}

HV_XEN_INLINE void hv_xen_decode_privcmd(struct hv_xen_call *c)
{
	__u64 u64v = 0;
	__u32 u32v = 0;
	__u16 dom = 0;

	switch (c->cmd) {
	case HV_PRIVCMD_HYPERCALL: /* {u64 op; u64 arg[5]} */
		c->op = HV_XEN_OP_PRIVCMD_HYPERCALL;
		if (!HV_XEN_READ(c, u64v, 0))
			c->hypercall = u64v;
		break;
	case HV_PRIVCMD_MMAP:	      /* {int num; u16 dom; entry *} */
	case HV_PRIVCMD_MMAPBATCH:    /* {int num; u16 dom; u64 addr; xen_pfn_t *arr} */
	case HV_PRIVCMD_MMAPBATCH_V2: /* {u32 num; u16 dom; u64 addr; arr *; err *} */
		c->op = c->cmd == HV_PRIVCMD_MMAP	 ? HV_XEN_OP_PRIVCMD_MMAP
			: c->cmd == HV_PRIVCMD_MMAPBATCH ? HV_XEN_OP_PRIVCMD_MMAPBATCH
							 : HV_XEN_OP_PRIVCMD_MMAPBATCH_V2;
		if (HV_XEN_READ(c, u32v, 0) || HV_XEN_READ(c, dom, 4))
			break;
		/* MMAP's num is a signed int: a negative one is huge, not small. */
		hv_xen_note_count(c, c->cmd == HV_PRIVCMD_MMAPBATCH_V2 ? u32v
								       : (__u64)(__s64)(__s32)u32v);
		c->flags &= ~HV_XEN_F_TRUNCATED; /* no refs to check here */
		c->domid = dom;
		if (c->cmd != HV_PRIVCMD_MMAP && !HV_XEN_READ(c, u64v, 8))
			c->addr = u64v;
		break;
	case HV_PRIVCMD_DM_OP: /* {u16 dom; u16 num; bufs *} */
		c->op = HV_XEN_OP_PRIVCMD_DM_OP;
		if (!HV_XEN_READ(c, dom, 0))
			c->domid = dom;
		break;
	case HV_PRIVCMD_RESTRICT: /* u16 domid */
		c->op = HV_XEN_OP_PRIVCMD_RESTRICT;
		if (!HV_XEN_READ(c, dom, 0))
			c->domid = dom;
		break;
	case HV_PRIVCMD_MMAP_RESOURCE: /* {u16 dom; u32 type, id, idx; u64 num, addr} */
		c->op = HV_XEN_OP_PRIVCMD_MMAP_RESOURCE;
		if (HV_XEN_READ(c, dom, 0) || HV_XEN_READ(c, c->resource_type, 4) ||
		    HV_XEN_READ(c, c->resource_id, 8) || HV_XEN_READ(c, u64v, 16))
			break;
		c->domid = dom;
		hv_xen_note_count(c, u64v);
		c->flags &= ~HV_XEN_F_TRUNCATED;
		if (!HV_XEN_READ(c, u64v, 24))
			c->addr = u64v;
		break;
	case HV_PRIVCMD_IRQFD:
		c->op = HV_XEN_OP_PRIVCMD_IRQFD;
		break;
	case HV_PRIVCMD_IOEVENTFD:
		c->op = HV_XEN_OP_PRIVCMD_IOEVENTFD;
		break;
	}
}

HV_XEN_INLINE void hv_xen_decode_gntdev(struct hv_xen_call *c)
{
	__u32 u32v = 0;

	switch (c->cmd) {
	case HV_GNTDEV_MAP_GRANT_REF:
		c->op = HV_XEN_OP_GNTDEV_MAP_GRANT_REF;
		hv_xen_decode_map_grant_ref(c);
		break;
	case HV_GNTDEV_UNMAP_GRANT_REF: /* {u64 index; u32 count; u32 pad} */
		c->op = HV_XEN_OP_GNTDEV_UNMAP_GRANT_REF;
		if (!HV_XEN_READ(c, c->addr, 0) && !HV_XEN_READ(c, u32v, 8))
			hv_xen_note_count(c, u32v);
		c->flags &= ~HV_XEN_F_TRUNCATED;
		break;
	case HV_GNTDEV_GET_OFFSET_FOR_VADDR:
		c->op = HV_XEN_OP_GNTDEV_GET_OFFSET_FOR_VADDR;
		HV_XEN_READ(c, c->addr, 0);
		break;
	case HV_GNTDEV_SET_MAX_GRANTS:
		c->op = HV_XEN_OP_GNTDEV_SET_MAX_GRANTS;
		if (!HV_XEN_READ(c, u32v, 0))
			c->count = u32v;
		break;
	case HV_GNTDEV_SET_UNMAP_NOTIFY:
		c->op = HV_XEN_OP_GNTDEV_SET_UNMAP_NOTIFY;
		break;
	case HV_GNTDEV_GRANT_COPY:
		c->op = HV_XEN_OP_GNTDEV_GRANT_COPY;
		hv_xen_decode_grant_copy(c);
		break;
	case HV_GNTDEV_DMABUF_EXP_FROM_REFS:
		c->op = HV_XEN_OP_GNTDEV_DMABUF_EXP_FROM_REFS;
		hv_xen_decode_dmabuf(c, 3, true);
		break;
	case HV_GNTDEV_DMABUF_IMP_TO_REFS:
		c->op = HV_XEN_OP_GNTDEV_DMABUF_IMP_TO_REFS;
		hv_xen_decode_dmabuf(c, 2, false);
		break;
	}
}

HV_XEN_INLINE void hv_xen_decode_gntalloc(struct hv_xen_call *c)
{
	__u16 domid = 0;
	__u32 count = 0;

	switch (c->cmd) {
	case HV_GNTALLOC_ALLOC_GREF: /* {u16 domid; u16 flags; u32 count; u64 index; u32 ids[]} */
		c->op = HV_XEN_OP_GNTALLOC_ALLOC_GREF;
		if (HV_XEN_READ(c, domid, 0) || HV_XEN_READ(c, count, 4))
			break;
		c->domid = domid;
		hv_xen_note_count(c, count);
		c->flags &= ~HV_XEN_F_TRUNCATED;
		break;
	case HV_GNTALLOC_DEALLOC_GREF: /* {u64 index; u32 count} */
		c->op = HV_XEN_OP_GNTALLOC_DEALLOC_GREF;
		if (!HV_XEN_READ(c, c->addr, 0) && !HV_XEN_READ(c, count, 8))
			hv_xen_note_count(c, count);
		c->flags &= ~HV_XEN_F_TRUNCATED;
		break;
	case HV_GNTDEV_SET_UNMAP_NOTIFY: /* same number as gntdev's, other device */
		c->op = HV_XEN_OP_GNTALLOC_SET_UNMAP_NOTIFY;
		break;
	}
}

/* Decodes one ioctl on a recognised device into *c (which it clears). */
HV_XEN_INLINE void hv_xen_decode(struct hv_xen_call *c, __u8 dev, __u32 cmd, __u64 uarg)
{
	__builtin_memset(c, 0, sizeof(*c));
	c->cmd = cmd;
	c->dev = dev;
	c->uarg = uarg;
	c->domid = HV_XEN_DOMID_NONE;
	c->bad_domid = HV_XEN_DOMID_NONE;
	if (dev == HV_XEN_DEV_PRIVCMD)
		hv_xen_decode_privcmd(c);
	else if (dev == HV_XEN_DEV_GNTDEV)
		hv_xen_decode_gntdev(c);
	else if (dev == HV_XEN_DEV_GNTALLOC)
		hv_xen_decode_gntalloc(c);
}

/* The first domid of the call outside the allowed set, or NONE. */
HV_XEN_INLINE __s32 hv_xen_first_bad_domid(struct hv_xen_call *c, const struct hv_xen_config *cfg)
{
	__u32 i;

	for (i = 0; i < HV_XEN_MAX_REFS; i++) {
		if (i >= c->n_refs)
			break;
		if (!hv_xen_domid_allowed(cfg, c->ref_domids[i]))
			return c->ref_domids[i];
	}
	if (c->domid != HV_XEN_DOMID_NONE && !hv_xen_domid_allowed(cfg, (__u32)c->domid))
		return c->domid;
	return HV_XEN_DOMID_NONE;
}

/* The rule a designated backend's call violates, before the action filter:
 * -1 when none. Decisions by command number need no user memory (so they
 * cannot be raced); grant-domain and resource-map read user memory that the
 * caller could change between this read and the driver's own copy. */
HV_XEN_INLINE int hv_xen_rule_for(struct hv_xen_call *c, const struct hv_xen_config *cfg)
{
	switch (c->op) {
	case HV_XEN_OP_PRIVCMD_MMAP:
	case HV_XEN_OP_PRIVCMD_MMAPBATCH:
	case HV_XEN_OP_PRIVCMD_MMAPBATCH_V2:
		return HV_RULE_FOREIGN_MAP;
	case HV_XEN_OP_MMAP:
		/* privcmd mmap() only reserves room for a foreign mapping or for
		 * ioreq pages of the target; with no target there is no
		 * legitimate use. */
		if (c->dev == HV_XEN_DEV_PRIVCMD && cfg->target_domain == HV_XEN_DOMID_NONE)
			return HV_RULE_FOREIGN_MAP;
		return -1;
	case HV_XEN_OP_PRIVCMD_HYPERCALL:
		return HV_RULE_FORBIDDEN_HYPERCALL;
	case HV_XEN_OP_PRIVCMD_MMAP_RESOURCE:
		if (c->flags & HV_XEN_F_UNREADABLE)
			return -1; /* the driver fails with EFAULT as well */
		if (c->resource_type != HV_XENMEM_RESOURCE_IOREQ_SERVER)
			return HV_RULE_RESOURCE_MAP;
		if (cfg->target_domain != HV_XEN_DOMID_NONE && c->domid != cfg->target_domain)
			return HV_RULE_RESOURCE_MAP;
		return -1;
	case HV_XEN_OP_GNTDEV_MAP_GRANT_REF:
	case HV_XEN_OP_GNTDEV_GRANT_COPY:
	case HV_XEN_OP_GNTDEV_DMABUF_EXP_FROM_REFS:
	case HV_XEN_OP_GNTDEV_DMABUF_IMP_TO_REFS:
	case HV_XEN_OP_GNTALLOC_ALLOC_GREF:
		c->bad_domid = hv_xen_first_bad_domid(c, cfg);
		return c->bad_domid != HV_XEN_DOMID_NONE ? HV_RULE_GRANT_DOMAIN : -1;
	}
	return -1;
}

/* The rule to report for this call, -1 when none or when the rule is off. */
HV_XEN_INLINE int hv_xen_verdict(struct hv_xen_call *c, const struct hv_xen_config *cfg)
{
	int rule = hv_xen_rule_for(c, cfg);

	if (rule < 0 || rule >= HV_RULE_COUNT)
		return -1;
	if (cfg->action[rule] == HV_XEN_ACT_OFF)
		return -1;
	return rule;
}

#ifndef __bpf__
/* Names for people (userspace only). */
static inline const char *hv_xen_op_name(__u8 op)
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

static inline const char *hv_xen_dev_name(__u8 dev)
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

static inline const char *hv_xen_grant_op_name(__u8 op)
{
	static const char *const names[HV_XEN_GRANT_OP_COUNT] = {"map", "mmap", "munmap", "unmap"};
	return op < HV_XEN_GRANT_OP_COUNT ? names[op] : "unknown";
}

static inline void hv_xen_allow_domid(struct hv_xen_config *cfg, __u32 domid)
{
	if (domid >= HV_XEN_DOMID_LIMIT)
		return;
	cfg->allowed[domid / 64] |= 1ull << (domid % 64);
	cfg->n_allowed++;
}
#endif

#endif
