/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Pure decode and policy for the Xen devices, compiled into bpf/xen.bpf.c
 * and into the userspace unit tests: one implementation, tested in
 * userspace, run in the kernel.
 *
 * The includer provides the one impure thing, reading user memory:
 *     static long hv_xen_read_user(void *dst, __u32 size, __u64 uptr,
 *                                  enum hv_xen_reader rd);
 * returning 0 or a negative errno (BPF: bpf_probe_read_user, or
 * bpf_copy_from_user where rd asks for faulting; tests: a fake address
 * space with holes and pages not faulted in). Every read is of a fixed,
 * small size, so a hostile caller (huge counts, bad pointers) costs a
 * bounded amount of work.
 *
 * rd (enum hv_xen_reader, hvguard/xen.h) is passed down from the entry
 * points (hv_xen_decode_by, hv_xen_verdict_by) to every read. In BPF every
 * function here is always inlined, so where an entry point is called with
 * a constant the compiler keeps only that reader: a program that may not
 * sleep must not contain a call to bpf_copy_from_user (the verifier refuses
 * it where reachable). The one function that is not inlined, bpf_loop's
 * callback, exists once per reader for the same reason, and each program
 * references only its own.
 */
#ifndef HVGUARD_XEN_LOGIC_H
#define HVGUARD_XEN_LOGIC_H

#include "hvguard/xen.h"

#ifdef __bpf__
#define HV_XEN_INLINE static __always_inline
/* Hides a value's known range from the compiler, so that a mask on it is
 * kept for the verifier to see (clang drops one it can prove redundant,
 * from a copy the verifier does not know the bound of). */
#define HV_XEN_OPAQUE(x) barrier_var(x)
#else
#define HV_XEN_INLINE	 static inline
#define HV_XEN_OPAQUE(x) ((void)0)
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
	__u32 word = domid / 64;

	if (cfg->n_allowed == 0)
		return true; /* no allowed set configured: nothing to check */
	if (domid >= HV_XEN_DOMID_LIMIT)
		return false;
	HV_XEN_OPAQUE(word);
	word &= HV_XEN_DOMID_WORDS - 1;
	return (cfg->allowed[word] >> (domid % 64)) & 1;
}

/* Reads one field of the user structure; on failure marks the call. */
#define HV_XEN_READ(c, rd, dst, off)                                                               \
	({                                                                                         \
		long __e = hv_xen_read_user(&(dst), sizeof(dst), (c)->uarg + (off), rd);           \
		if (__e)                                                                           \
			(c)->flags |= HV_XEN_F_UNREADABLE;                                         \
		__e;                                                                               \
	})

HV_XEN_INLINE void hv_xen_note_count(struct hv_xen_call *c, __u64 count)
{
	c->count = count;
	if (count > HV_XEN_HUGE_COUNT)
		c->flags |= HV_XEN_F_HUGE;
	if (count > HV_XEN_WALK_MAX)
		c->flags |= HV_XEN_F_TRUNCATED;
}

/* Keeps one grant side for the report (the first HV_XEN_MAX_REFS). */
HV_XEN_INLINE void hv_xen_keep_ref(struct hv_xen_call *c, __u32 ref, __u32 domid)
{
	if (c->n_refs >= HV_XEN_MAX_REFS)
		return;
	c->refs[c->n_refs & (HV_XEN_MAX_REFS - 1)] = ref;
	c->ref_domids[c->n_refs & (HV_XEN_MAX_REFS - 1)] = domid;
	if (c->domid == HV_XEN_DOMID_NONE)
		c->domid = (__s32)domid;
	c->n_refs++;
}

/* MAP_GRANT_REF: {u32 count; u32 pad; u64 index; {u32 domid; u32 ref} refs[]}.
 * Decode keeps the first refs for the report; the verdict checks them all. */
HV_XEN_INLINE void hv_xen_decode_map_grant_ref(struct hv_xen_call *c, enum hv_xen_reader rd)
{
	__u32 count = 0, i, pair[2];

	if (HV_XEN_READ(c, rd, count, 0))
		return;
	hv_xen_note_count(c, count);
	c->array = c->uarg + 16;
	for (i = 0; i < HV_XEN_MAX_REFS; i++) {
		if (i >= count)
			break;
		if (HV_XEN_READ(c, rd, pair, 16 + 8 * (__u64)i))
			break;
		hv_xen_keep_ref(c, pair[1], pair[0]);
	}
}

/* GRANT_COPY: {u32 count; u32 pad; segment *segments}, 24-byte segments
 * {union {u64 virt; {u32 ref; u16 offset; u16 domid}} source, dest;
 *  u16 len; u16 flags; s16 status}; flags bit 0/1: source/dest is a gref,
 * whose domid is the top 16 bits of its union. Both sides may be grefs. */
#define HV_XEN_COPY_SEG_SIZE	   24
#define HV_XEN_GNTCOPY_SOURCE_GREF 1u
#define HV_XEN_GNTCOPY_DEST_GREF   2u

HV_XEN_INLINE __u16 hv_xen_copy_flags(const __u64 seg[3])
{
	return (__u16)(seg[2] >> 16);
}

HV_XEN_INLINE void hv_xen_decode_grant_copy(struct hv_xen_call *c, enum hv_xen_reader rd)
{
	__u32 count = 0, i;
	__u64 segs = 0, seg[3];
	__u16 flags;
	long err;

	if (HV_XEN_READ(c, rd, count, 0) || HV_XEN_READ(c, rd, segs, 8))
		return;
	hv_xen_note_count(c, count);
	c->array = segs;
	for (i = 0; i < HV_XEN_MAX_REFS; i++) {
		if (i >= count || c->n_refs >= HV_XEN_MAX_REFS)
			break;
		err =
		    hv_xen_read_user(seg, sizeof(seg), segs + HV_XEN_COPY_SEG_SIZE * (__u64)i, rd);
		if (err) {
			c->flags |= HV_XEN_F_UNREADABLE;
			break;
		}
		flags = hv_xen_copy_flags(seg);
		if (flags & HV_XEN_GNTCOPY_SOURCE_GREF)
			hv_xen_keep_ref(c, (__u32)seg[0], (__u16)(seg[0] >> 48));
		if (flags & HV_XEN_GNTCOPY_DEST_GREF)
			hv_xen_keep_ref(c, (__u32)seg[1], (__u16)(seg[1] >> 48));
	}
}

/* DMABUF_EXP_FROM_REFS {u32 flags, count, fd, domid; u32 refs[]} and
 * DMABUF_IMP_TO_REFS {u32 fd, count, domid, reserved; u32 refs[] (out)}. */
HV_XEN_INLINE void hv_xen_decode_dmabuf(struct hv_xen_call *c, __u32 domid_word, bool has_refs,
					enum hv_xen_reader rd)
{
	__u32 hdr[4], i, ref;

	/* One read of the whole header, as the driver copies it. */
	if (HV_XEN_READ(c, rd, hdr, 0))
		return;
	hv_xen_note_count(c, hdr[1]);
	/* One domid for every ref: checking it checks them all. */
	c->flags &= ~HV_XEN_F_TRUNCATED;
	c->domid = (__s32)hdr[domid_word & 3];
	if (!has_refs)
		return;
	for (i = 0; i < HV_XEN_MAX_REFS; i++) {
		if (i >= hdr[1])
			break;
		if (HV_XEN_READ(c, rd, ref, 16 + 4 * (__u64)i))
			break;
		c->refs[i] = ref;
		c->ref_domids[i] = hdr[domid_word & 3];
		c->n_refs = i + 1;
	}
}

HV_XEN_INLINE void hv_xen_decode_privcmd(struct hv_xen_call *c, enum hv_xen_reader rd)
{
	__u64 u64v = 0;
	__u32 u32v = 0;
	__u16 dom = 0;

	switch (c->cmd) {
	case HV_PRIVCMD_HYPERCALL: /* {u64 op; u64 arg[5]} */
		c->op = HV_XEN_OP_PRIVCMD_HYPERCALL;
		if (!HV_XEN_READ(c, rd, u64v, 0))
			c->hypercall = u64v;
		break;
	case HV_PRIVCMD_MMAP:	      /* {int num; u16 dom; entry *} */
	case HV_PRIVCMD_MMAPBATCH:    /* {int num; u16 dom; u64 addr; xen_pfn_t *arr} */
	case HV_PRIVCMD_MMAPBATCH_V2: /* {u32 num; u16 dom; u64 addr; arr *; err *} */
		c->op = c->cmd == HV_PRIVCMD_MMAP	 ? HV_XEN_OP_PRIVCMD_MMAP
			: c->cmd == HV_PRIVCMD_MMAPBATCH ? HV_XEN_OP_PRIVCMD_MMAPBATCH
							 : HV_XEN_OP_PRIVCMD_MMAPBATCH_V2;
		if (HV_XEN_READ(c, rd, u32v, 0) || HV_XEN_READ(c, rd, dom, 4))
			break;
		/* MMAP's num is a signed int: a negative one is huge, not small. */
		hv_xen_note_count(c, c->cmd == HV_PRIVCMD_MMAPBATCH_V2 ? u32v
								       : (__u64)(__s64)(__s32)u32v);
		c->flags &= ~HV_XEN_F_TRUNCATED; /* no refs to check here */
		c->domid = dom;
		if (c->cmd != HV_PRIVCMD_MMAP && !HV_XEN_READ(c, rd, u64v, 8))
			c->addr = u64v;
		break;
	case HV_PRIVCMD_DM_OP: /* {u16 dom; u16 num; bufs *} */
		c->op = HV_XEN_OP_PRIVCMD_DM_OP;
		if (!HV_XEN_READ(c, rd, dom, 0))
			c->domid = dom;
		break;
	case HV_PRIVCMD_RESTRICT: /* u16 domid */
		c->op = HV_XEN_OP_PRIVCMD_RESTRICT;
		if (!HV_XEN_READ(c, rd, dom, 0))
			c->domid = dom;
		break;
	case HV_PRIVCMD_MMAP_RESOURCE: /* {u16 dom; u32 type, id, idx; u64 num, addr} */
		c->op = HV_XEN_OP_PRIVCMD_MMAP_RESOURCE;
		if (HV_XEN_READ(c, rd, dom, 0) || HV_XEN_READ(c, rd, c->resource_type, 4) ||
		    HV_XEN_READ(c, rd, c->resource_id, 8) || HV_XEN_READ(c, rd, u64v, 16))
			break;
		c->domid = dom;
		hv_xen_note_count(c, u64v);
		c->flags &= ~HV_XEN_F_TRUNCATED;
		if (!HV_XEN_READ(c, rd, u64v, 24))
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

HV_XEN_INLINE void hv_xen_decode_gntdev(struct hv_xen_call *c, enum hv_xen_reader rd)
{
	__u32 u32v = 0;

	switch (c->cmd) {
	case HV_GNTDEV_MAP_GRANT_REF:
		c->op = HV_XEN_OP_GNTDEV_MAP_GRANT_REF;
		hv_xen_decode_map_grant_ref(c, rd);
		break;
	case HV_GNTDEV_UNMAP_GRANT_REF: /* {u64 index; u32 count; u32 pad} */
		c->op = HV_XEN_OP_GNTDEV_UNMAP_GRANT_REF;
		if (!HV_XEN_READ(c, rd, c->addr, 0) && !HV_XEN_READ(c, rd, u32v, 8))
			hv_xen_note_count(c, u32v);
		c->flags &= ~HV_XEN_F_TRUNCATED;
		break;
	case HV_GNTDEV_GET_OFFSET_FOR_VADDR:
		c->op = HV_XEN_OP_GNTDEV_GET_OFFSET_FOR_VADDR;
		HV_XEN_READ(c, rd, c->addr, 0);
		break;
	case HV_GNTDEV_SET_MAX_GRANTS:
		c->op = HV_XEN_OP_GNTDEV_SET_MAX_GRANTS;
		if (!HV_XEN_READ(c, rd, u32v, 0))
			c->count = u32v;
		break;
	case HV_GNTDEV_SET_UNMAP_NOTIFY:
		c->op = HV_XEN_OP_GNTDEV_SET_UNMAP_NOTIFY;
		break;
	case HV_GNTDEV_GRANT_COPY:
		c->op = HV_XEN_OP_GNTDEV_GRANT_COPY;
		hv_xen_decode_grant_copy(c, rd);
		break;
	case HV_GNTDEV_DMABUF_EXP_FROM_REFS:
		c->op = HV_XEN_OP_GNTDEV_DMABUF_EXP_FROM_REFS;
		hv_xen_decode_dmabuf(c, 3, true, rd);
		break;
	case HV_GNTDEV_DMABUF_IMP_TO_REFS:
		c->op = HV_XEN_OP_GNTDEV_DMABUF_IMP_TO_REFS;
		hv_xen_decode_dmabuf(c, 2, false, rd);
		break;
	}
}

HV_XEN_INLINE void hv_xen_decode_gntalloc(struct hv_xen_call *c, enum hv_xen_reader rd)
{
	__u16 domid = 0;
	__u32 count = 0;

	switch (c->cmd) {
	case HV_GNTALLOC_ALLOC_GREF: /* {u16 domid; u16 flags; u32 count; u64 index; u32 ids[]} */
		c->op = HV_XEN_OP_GNTALLOC_ALLOC_GREF;
		if (HV_XEN_READ(c, rd, domid, 0) || HV_XEN_READ(c, rd, count, 4))
			break;
		c->domid = domid;
		hv_xen_note_count(c, count);
		c->flags &= ~HV_XEN_F_TRUNCATED;
		break;
	case HV_GNTALLOC_DEALLOC_GREF: /* {u64 index; u32 count} */
		c->op = HV_XEN_OP_GNTALLOC_DEALLOC_GREF;
		if (!HV_XEN_READ(c, rd, c->addr, 0) && !HV_XEN_READ(c, rd, count, 8))
			hv_xen_note_count(c, count);
		c->flags &= ~HV_XEN_F_TRUNCATED;
		break;
	case HV_GNTDEV_SET_UNMAP_NOTIFY: /* same number as gntdev's, other device */
		c->op = HV_XEN_OP_GNTALLOC_SET_UNMAP_NOTIFY;
		break;
	}
}

/* Decodes one ioctl on a recognised device into *c (which it clears),
 * reading its argument with rd. */
HV_XEN_INLINE void hv_xen_decode_by(struct hv_xen_call *c, __u8 dev, __u32 cmd, __u64 uarg,
				    enum hv_xen_reader rd)
{
	__builtin_memset(c, 0, sizeof(*c));
	c->cmd = cmd;
	c->dev = dev;
	c->uarg = uarg;
	c->domid = HV_XEN_DOMID_NONE;
	c->bad_domid = HV_XEN_DOMID_NONE;
	if (dev == HV_XEN_DEV_PRIVCMD)
		hv_xen_decode_privcmd(c, rd);
	else if (dev == HV_XEN_DEV_GNTDEV)
		hv_xen_decode_gntdev(c, rd);
	else if (dev == HV_XEN_DEV_GNTALLOC)
		hv_xen_decode_gntalloc(c, rd);
}

/* The same, with what any context can read. */
HV_XEN_INLINE void hv_xen_decode(struct hv_xen_call *c, __u8 dev, __u32 cmd, __u64 uarg)
{
	hv_xen_decode_by(c, dev, cmd, uarg, HV_XEN_READER_NOFAULT);
}

/* The first domid of the refs decode kept, or of the call, outside the
 * allowed set, or NONE. */
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

/*
 * Every ref of a MAP_GRANT_REF, both sides of every GRANT_COPY segment:
 * one step per ref or segment, so that BPF runs the walk under bpf_loop()
 * (up to HV_XEN_WALK_MAX steps) and userspace as a plain loop
 * (hv_xen_walk_all). The walk's results live in the call itself, which BPF
 * keeps in a map: verifiers before Linux 6.7 check a bpf_loop callback as
 * if it ran once, and must not prove anything about them from that.
 * Returns 1 to stop: all checked, a domain outside the set, or a read that
 * failed (the call is then marked unreadable).
 */
struct hv_xen_walk {
	struct hv_xen_call *c;
	const struct hv_xen_config *cfg;
};

/* Whether one side of a grant is outside the set: records it. */
HV_XEN_INLINE bool hv_xen_walk_bad(struct hv_xen_walk *w, __u32 domid)
{
	if (hv_xen_domid_allowed(w->cfg, domid))
		return false;
	w->c->bad_domid = (__s32)domid;
	return true;
}

HV_XEN_INLINE int hv_xen_walk_step(__u32 i, struct hv_xen_walk *w, enum hv_xen_reader rd)
{
	struct hv_xen_call *c = w->c;
	__u32 pair[2];
	__u64 seg[3];
	__u16 flags;

	if (i >= c->count || i >= HV_XEN_WALK_MAX)
		return 1;
	if (c->op == HV_XEN_OP_GNTDEV_MAP_GRANT_REF) {
		if (hv_xen_read_user(pair, sizeof(pair), c->array + 8 * (__u64)i, rd)) {
			c->flags |= HV_XEN_F_UNREADABLE;
			return 1;
		}
		c->checked = i + 1;
		return hv_xen_walk_bad(w, pair[0]);
	}
	if (hv_xen_read_user(seg, sizeof(seg), c->array + HV_XEN_COPY_SEG_SIZE * (__u64)i, rd)) {
		c->flags |= HV_XEN_F_UNREADABLE;
		return 1;
	}
	c->checked = i + 1;
	flags = hv_xen_copy_flags(seg);
	if ((flags & HV_XEN_GNTCOPY_SOURCE_GREF) && hv_xen_walk_bad(w, (__u16)(seg[0] >> 48)))
		return 1;
	if ((flags & HV_XEN_GNTCOPY_DEST_GREF) && hv_xen_walk_bad(w, (__u16)(seg[1] >> 48)))
		return 1;
	return 0;
}

#ifdef __bpf__
/* One callback per reader: each program references only its own. */
static long hv_xen_walk_cb(__u32 i, void *ctx)
{
	return hv_xen_walk_step(i, ctx, HV_XEN_READER_NOFAULT);
}

static long hv_xen_walk_cb_fault(__u32 i, void *ctx)
{
	return hv_xen_walk_step(i, ctx, HV_XEN_READER_FAULT);
}

static __always_inline void hv_xen_walk_all(struct hv_xen_walk *w, __u32 n, enum hv_xen_reader rd)
{
	if (rd == HV_XEN_READER_FAULT)
		bpf_loop(n, hv_xen_walk_cb_fault, w, 0);
	else
		bpf_loop(n, hv_xen_walk_cb, w, 0);
}
#else
static inline void hv_xen_walk_all(struct hv_xen_walk *w, __u32 n, enum hv_xen_reader rd)
{
	for (__u32 i = 0; i < n; i++)
		if (hv_xen_walk_step(i, w, rd))
			break;
}
#endif

/* grant-domain for the calls that carry grant refs: a domain outside the
 * set is a violation; so is a call it could not fully check, marked in
 * c->unchecked (what that leads to depends on the action: hv_xen_verdict). */
HV_XEN_INLINE int hv_xen_grant_domain(struct hv_xen_call *c, const struct hv_xen_config *cfg,
				      enum hv_xen_reader rd)
{
	struct hv_xen_walk w = {.c = c, .cfg = cfg};

	if (cfg->n_allowed == 0)
		return -1; /* no allowed set configured: nothing to check */
	/* A domain decode already saw is a violation whatever else is unknown. */
	c->bad_domid = hv_xen_first_bad_domid(c, cfg);
	if (c->bad_domid == HV_XEN_DOMID_NONE &&
	    !(c->flags & (HV_XEN_F_UNREADABLE | HV_XEN_F_TRUNCATED)) &&
	    (c->op == HV_XEN_OP_GNTDEV_MAP_GRANT_REF || c->op == HV_XEN_OP_GNTDEV_GRANT_COPY))
		hv_xen_walk_all(&w, (__u32)c->count, rd);
	if (c->bad_domid != HV_XEN_DOMID_NONE)
		return HV_RULE_GRANT_DOMAIN;
	if (c->flags & HV_XEN_F_UNREADABLE)
		c->unchecked = HV_XEN_UNCHECKED_UNREADABLE;
	else if (c->flags & HV_XEN_F_TRUNCATED)
		c->unchecked = HV_XEN_UNCHECKED_TRUNCATED;
	else
		return -1;
	c->unchecked_rule = HV_RULE_GRANT_DOMAIN;
	return HV_RULE_GRANT_DOMAIN;
}

/* The rule a designated backend's call violates, before the action filter:
 * -1 when none. Decisions by command number need no user memory (so they
 * cannot be raced); grant-domain and resource-map read user memory that the
 * caller could change between this read and the driver's own copy. */
HV_XEN_INLINE int hv_xen_rule_for(struct hv_xen_call *c, const struct hv_xen_config *cfg,
				  enum hv_xen_reader rd)
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
		/* Unreadable to us is not unreadable to the driver, which can
		 * fault the page in: fail closed. */
		if (c->flags & HV_XEN_F_UNREADABLE) {
			c->unchecked = HV_XEN_UNCHECKED_UNREADABLE;
			c->unchecked_rule = HV_RULE_RESOURCE_MAP;
			return HV_RULE_RESOURCE_MAP;
		}
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
		return hv_xen_grant_domain(c, cfg, rd);
	}
	return -1;
}

/*
 * The rule to report for this call as a violation, -1 when none or when
 * the rule is off. A call the rule could not fully check (c->unchecked) is
 * a violation where the rule's action is kill or deny: fail closed, or a
 * caller picks the unreadable path to pass. Where it is alert, it is not:
 * -1, with c->unchecked still set, for the caller to report as information
 * (an alert asserts a broken rule, which is not known here).
 */
HV_XEN_INLINE int hv_xen_verdict_by(struct hv_xen_call *c, const struct hv_xen_config *cfg,
				    enum hv_xen_reader rd)
{
	int rule;

	c->bad_domid = HV_XEN_DOMID_NONE;
	c->checked = 0;
	c->unchecked = HV_XEN_UNCHECKED_NONE;
	c->unchecked_rule = 0;
	rule = hv_xen_rule_for(c, cfg, rd);
	if (rule < 0 || rule >= HV_RULE_COUNT || cfg->action[rule] == HV_XEN_ACT_OFF) {
		c->unchecked = HV_XEN_UNCHECKED_NONE;
		return -1;
	}
	if (c->unchecked && cfg->action[rule] == HV_XEN_ACT_ALERT)
		return -1;
	return rule;
}

/* The same, with what any context can read. */
HV_XEN_INLINE int hv_xen_verdict(struct hv_xen_call *c, const struct hv_xen_config *cfg)
{
	return hv_xen_verdict_by(c, cfg, HV_XEN_READER_NOFAULT);
}

#endif
