// SPDX-License-Identifier: GPL-2.0
/*
 * The Xen decode and policy of include/hvguard/xen_logic.h, the very code the
 * BPF program runs, against well-formed, truncated and hostile user
 * structures. User memory is a fake address space: one buffer at FAKE_BASE;
 * any read that is not entirely inside it fails like bpf_probe_read_user on
 * an unmapped page. From fake_faulted on, the buffer is mapped but not
 * faulted in: only the reader that faults pages in (bpf_copy_from_user's
 * stand-in) reads it. Every read is counted, by reader, to prove hostile
 * counts cost a bounded number of reads and that every read of a decode
 * uses the reader it was asked for.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <linux/types.h>

#include "hvguard/xen.h"

/* Room for a MAP_GRANT_REF of HV_XEN_WALK_MAX + 1 refs. */
static uint8_t fake_mem[16 + 8 * (HV_XEN_WALK_MAX + 1)];
static size_t fake_len;	    /* readable bytes from FAKE_BASE */
static size_t fake_faulted; /* of those, faulted in (the rest: FAULT only) */
static unsigned fake_reads;
static unsigned fake_reads_by[2]; /* by enum hv_xen_reader */
#define FAKE_BASE 0x7f0000001000ull

static long hv_xen_read_user(void *dst, __u32 size, __u64 uptr, enum hv_xen_reader rd)
{
	size_t len = rd == HV_XEN_READER_FAULT ? fake_len
		     : fake_faulted < fake_len ? fake_faulted
					       : fake_len;

	fake_reads++;
	fake_reads_by[rd == HV_XEN_READER_FAULT]++;
	if (uptr < FAKE_BASE || uptr - FAKE_BASE > len || size > len - (uptr - FAKE_BASE)) {
		memset(dst, 0, size); /* as both BPF readers do on failure */
		return -EFAULT;
	}
	memcpy(dst, fake_mem + (uptr - FAKE_BASE), size);
	return 0;
}

#include "hvguard/xen_logic.h"
#include "xen_user.h" /* the names and hv_xen_allow_domid, from user/ */

static struct hv_xen_config cfg;

static int setup(void **state)
{
	(void)state;
	memset(fake_mem, 0, sizeof(fake_mem));
	fake_len = fake_faulted = sizeof(fake_mem);
	fake_reads = 0;
	memset(fake_reads_by, 0, sizeof(fake_reads_by));
	memset(&cfg, 0, sizeof(cfg));
	cfg.ioctl_fn[HV_XEN_DEV_PRIVCMD] = 0xffffffffc0208140ull;
	cfg.ioctl_fn[HV_XEN_DEV_GNTDEV] = 0xffffffffc02151c0ull;
	cfg.ioctl_fn[HV_XEN_DEV_GNTALLOC] = 0xffffffffc021c100ull;
	cfg.target_domain = HV_XEN_DOMID_NONE;
	for (int r = 0; r < HV_RULE_COUNT; r++)
		cfg.action[r] = HV_XEN_ACT_ALERT;
	hv_xen_allow_domid(&cfg, 0);
	return 0;
}

static void put32(size_t off, uint32_t v)
{
	memcpy(fake_mem + off, &v, 4);
}
static void put16(size_t off, uint16_t v)
{
	memcpy(fake_mem + off, &v, 2);
}
static void put64(size_t off, uint64_t v)
{
	memcpy(fake_mem + off, &v, 8);
}

static void map_grant_ref(uint32_t count, uint32_t domid, uint32_t first_ref, uint32_t n)
{
	put32(0, count);
	for (uint32_t i = 0; i < n; i++) {
		put32(16 + 8 * i, domid);
		put32(20 + 8 * i, first_ref + i);
	}
}

static void test_classify_by_ioctl_handler(void **state)
{
	(void)state;
	assert_int_equal(hv_xen_classify(0xffffffffc0208140ull, 0, &cfg), HV_XEN_DEV_PRIVCMD);
	assert_int_equal(hv_xen_classify(0xffffffffc02151c0ull, 0, &cfg), HV_XEN_DEV_GNTDEV);
	assert_int_equal(hv_xen_classify(0xffffffffc021c100ull, 0, &cfg), HV_XEN_DEV_GNTALLOC);
	assert_int_equal(hv_xen_classify(0xffffffff81000000ull, 0, &cfg), HV_XEN_DEV_NONE);
	assert_int_equal(hv_xen_classify(0, 0, &cfg), HV_XEN_DEV_NONE);
}

static void test_classify_by_rdev_only_when_handler_unknown(void **state)
{
	(void)state;
	cfg.rdev[HV_XEN_DEV_GNTDEV] = 10u << 20 | 119;
	/* handler known: a matching rdev with another handler is not gntdev */
	assert_int_equal(hv_xen_classify(0xdead, 10u << 20 | 119, &cfg), HV_XEN_DEV_NONE);
	cfg.ioctl_fn[HV_XEN_DEV_GNTDEV] = 0;
	assert_int_equal(hv_xen_classify(0xdead, 10u << 20 | 119, &cfg), HV_XEN_DEV_GNTDEV);
	assert_int_equal(hv_xen_classify(0xdead, 10u << 20 | 118, &cfg), HV_XEN_DEV_NONE);
}

static void test_map_grant_ref_allowed(void **state)
{
	struct hv_xen_call c;

	(void)state;
	map_grant_ref(2, 0, 100, 2);
	hv_xen_decode(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_MAP_GRANT_REF, FAKE_BASE);
	assert_int_equal(c.op, HV_XEN_OP_GNTDEV_MAP_GRANT_REF);
	assert_int_equal(c.count, 2);
	assert_int_equal(c.n_refs, 2);
	assert_int_equal(c.refs[0], 100);
	assert_int_equal(c.refs[1], 101);
	assert_int_equal(c.domid, 0);
	assert_int_equal(c.flags, 0);
	assert_int_equal(hv_xen_verdict(&c, &cfg), -1);
}

static void test_map_grant_ref_from_other_domain(void **state)
{
	struct hv_xen_call c;

	(void)state;
	map_grant_ref(3, 0, 7, 3);
	put32(16 + 8 * 2, 5); /* third ref from domain 5 */
	hv_xen_decode(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_MAP_GRANT_REF, FAKE_BASE);
	assert_int_equal(hv_xen_verdict(&c, &cfg), HV_RULE_GRANT_DOMAIN);
	assert_int_equal(c.bad_domid, 5);
}

static void test_verdict_is_repeatable(void **state)
{
	struct hv_xen_call c;

	(void)state;
	map_grant_ref(1, 4, 7, 1);
	hv_xen_decode(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_MAP_GRANT_REF, FAKE_BASE);
	assert_int_equal(hv_xen_verdict(&c, &cfg), HV_RULE_GRANT_DOMAIN);
	/* the configuration changes (rules reloaded): the same call is judged anew */
	hv_xen_allow_domid(&cfg, 4);
	assert_int_equal(hv_xen_verdict(&c, &cfg), -1);
	cfg.action[HV_RULE_GRANT_DOMAIN] = HV_XEN_ACT_OFF;
	memset(cfg.allowed, 0, sizeof(cfg.allowed));
	assert_int_equal(hv_xen_verdict(&c, &cfg), -1);
}

static void test_map_grant_ref_no_allowed_set_is_inactive(void **state)
{
	struct hv_xen_call c;

	(void)state;
	memset(cfg.allowed, 0, sizeof(cfg.allowed));
	cfg.n_allowed = 0;
	map_grant_ref(1, 42, 7, 1);
	hv_xen_decode(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_MAP_GRANT_REF, FAKE_BASE);
	assert_int_equal(hv_xen_verdict(&c, &cfg), -1);
}

static void test_map_grant_ref_huge_count_bounded(void **state)
{
	struct hv_xen_call c;

	(void)state;
	map_grant_ref(0xffffffffu, 0, 1, 64);
	hv_xen_decode(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_MAP_GRANT_REF, FAKE_BASE);
	assert_int_equal(c.count, 0xffffffffu);
	assert_int_equal(c.n_refs, HV_XEN_MAX_REFS);
	assert_true(c.flags & HV_XEN_F_HUGE);
	assert_true(c.flags & HV_XEN_F_TRUNCATED);
	assert_false(c.flags & HV_XEN_F_UNREADABLE);
	assert_true(fake_reads <= 1 + HV_XEN_MAX_REFS);
	/* past the bound: not walked at all, so a huge count costs nothing */
	fake_reads = 0;
	cfg.action[HV_RULE_GRANT_DOMAIN] = HV_XEN_ACT_DENY;
	assert_int_equal(hv_xen_verdict(&c, &cfg), HV_RULE_GRANT_DOMAIN);
	assert_int_equal(c.unchecked, HV_XEN_UNCHECKED_TRUNCATED);
	assert_int_equal(fake_reads, 0);
}

static void test_map_grant_ref_refs_run_off_the_page(void **state)
{
	struct hv_xen_call c;

	(void)state;
	map_grant_ref(1000, 0, 1, 3);
	fake_len = 16 + 8 * 3 + 4; /* three refs and half of the fourth */
	hv_xen_decode(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_MAP_GRANT_REF, FAKE_BASE);
	assert_int_equal(c.n_refs, 3);
	assert_true(c.flags & HV_XEN_F_UNREADABLE);
	assert_false(c.flags & HV_XEN_F_TRUNCATED);
	/* alert: not a violation, but marked for the information event */
	assert_int_equal(hv_xen_verdict(&c, &cfg), -1);
	assert_int_equal(c.unchecked, HV_XEN_UNCHECKED_UNREADABLE);
	assert_int_equal(c.unchecked_rule, HV_RULE_GRANT_DOMAIN);
	/* deny or kill: a violation */
	cfg.action[HV_RULE_GRANT_DOMAIN] = HV_XEN_ACT_KILL;
	assert_int_equal(hv_xen_verdict(&c, &cfg), HV_RULE_GRANT_DOMAIN);
	assert_int_equal(c.unchecked, HV_XEN_UNCHECKED_UNREADABLE);
	assert_int_equal(c.bad_domid, HV_XEN_DOMID_NONE);
	/* off: nothing at all */
	cfg.action[HV_RULE_GRANT_DOMAIN] = HV_XEN_ACT_OFF;
	assert_int_equal(hv_xen_verdict(&c, &cfg), -1);
	assert_int_equal(c.unchecked, HV_XEN_UNCHECKED_NONE);
}

/* The case: more refs than decode keeps, a foreign one last. */
static void test_map_grant_ref_every_ref_checked(void **state)
{
	struct hv_xen_call c;

	(void)state;
	map_grant_ref(20, 0, 1, 20);
	put32(16 + 8 * 16, 7); /* the 17th ref, from domain 7 */
	hv_xen_decode(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_MAP_GRANT_REF, FAKE_BASE);
	assert_int_equal(c.n_refs, HV_XEN_MAX_REFS);
	assert_false(c.flags & (HV_XEN_F_TRUNCATED | HV_XEN_F_UNREADABLE));
	assert_int_equal(hv_xen_verdict(&c, &cfg), HV_RULE_GRANT_DOMAIN);
	assert_int_equal(c.bad_domid, 7);
	assert_int_equal(c.checked, 17);
	assert_int_equal(c.unchecked, HV_XEN_UNCHECKED_NONE);
	/* the last of 20 */
	put32(16 + 8 * 16, 0);
	put32(16 + 8 * 19, 9);
	hv_xen_decode(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_MAP_GRANT_REF, FAKE_BASE);
	assert_int_equal(hv_xen_verdict(&c, &cfg), HV_RULE_GRANT_DOMAIN);
	assert_int_equal(c.bad_domid, 9);
	assert_int_equal(c.checked, 20);
	/* all allowed: every one checked, nothing past the count read */
	put32(16 + 8 * 19, 0);
	put32(16 + 8 * 20, 9); /* beyond the count: not the call's */
	hv_xen_decode(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_MAP_GRANT_REF, FAKE_BASE);
	assert_int_equal(hv_xen_verdict(&c, &cfg), -1);
	assert_int_equal(c.checked, 20);
	assert_int_equal(c.unchecked, HV_XEN_UNCHECKED_NONE);
}

/* Up to the bound every ref is walked; one past it, none is. */
static void test_map_grant_ref_walk_bound(void **state)
{
	struct hv_xen_call c;

	(void)state;
	map_grant_ref(HV_XEN_WALK_MAX, 0, 1, HV_XEN_WALK_MAX);
	put32(16 + 8 * (HV_XEN_WALK_MAX - 1), 3); /* the very last */
	hv_xen_decode(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_MAP_GRANT_REF, FAKE_BASE);
	assert_false(c.flags & HV_XEN_F_TRUNCATED);
	assert_int_equal(hv_xen_verdict(&c, &cfg), HV_RULE_GRANT_DOMAIN);
	assert_int_equal(c.bad_domid, 3);
	assert_int_equal(c.checked, HV_XEN_WALK_MAX);
	put32(16 + 8 * (HV_XEN_WALK_MAX - 1), 0);
	hv_xen_decode(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_MAP_GRANT_REF, FAKE_BASE);
	assert_int_equal(hv_xen_verdict(&c, &cfg), -1);
	assert_int_equal(c.unchecked, HV_XEN_UNCHECKED_NONE);
	/* one more: truncated, an alert-only rule says so, deny refuses */
	map_grant_ref(HV_XEN_WALK_MAX + 1, 0, 1, HV_XEN_WALK_MAX + 1);
	hv_xen_decode(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_MAP_GRANT_REF, FAKE_BASE);
	assert_true(c.flags & HV_XEN_F_TRUNCATED);
	assert_false(c.flags & HV_XEN_F_HUGE);
	assert_int_equal(hv_xen_verdict(&c, &cfg), -1);
	assert_int_equal(c.unchecked, HV_XEN_UNCHECKED_TRUNCATED);
	assert_int_equal(c.checked, 0);
	cfg.action[HV_RULE_GRANT_DOMAIN] = HV_XEN_ACT_DENY;
	assert_int_equal(hv_xen_verdict(&c, &cfg), HV_RULE_GRANT_DOMAIN);
	assert_int_equal(c.unchecked, HV_XEN_UNCHECKED_TRUNCATED);
	/* a foreign ref among those decode kept is a plain violation still */
	put32(16 + 8 * 2, 5);
	hv_xen_decode(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_MAP_GRANT_REF, FAKE_BASE);
	cfg.action[HV_RULE_GRANT_DOMAIN] = HV_XEN_ACT_ALERT;
	assert_int_equal(hv_xen_verdict(&c, &cfg), HV_RULE_GRANT_DOMAIN);
	assert_int_equal(c.bad_domid, 5);
	assert_int_equal(c.unchecked, HV_XEN_UNCHECKED_NONE);
}

/* Refs readable at decode, a later one not: unchecked, never "allowed". */
static void test_map_grant_ref_walk_hits_a_hole(void **state)
{
	struct hv_xen_call c;

	(void)state;
	map_grant_ref(40, 0, 1, 40);
	fake_len = 16 + 8 * 30; /* refs 30..39 unreadable */
	hv_xen_decode(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_MAP_GRANT_REF, FAKE_BASE);
	assert_false(c.flags & HV_XEN_F_UNREADABLE);
	cfg.action[HV_RULE_GRANT_DOMAIN] = HV_XEN_ACT_DENY;
	assert_int_equal(hv_xen_verdict(&c, &cfg), HV_RULE_GRANT_DOMAIN);
	assert_true(c.flags & HV_XEN_F_UNREADABLE);
	assert_int_equal(c.unchecked, HV_XEN_UNCHECKED_UNREADABLE);
	assert_int_equal(c.checked, 30);
}

/* An argument on pages not faulted in yet: unreadable to the reader that
 * cannot fault (fail closed under deny), a real verdict from the one that
 * can, which every read of its decode and walk then uses. The foreign ref
 * is past those decode keeps: only the walk finds it. */
static void test_unfaulted_argument_by_reader(void **state)
{
	struct hv_xen_call c;

	(void)state;
	map_grant_ref(20, 0, 1, 20);
	put32(16 + 8 * 17, 7);
	fake_faulted = 0;
	cfg.action[HV_RULE_GRANT_DOMAIN] = HV_XEN_ACT_DENY;
	hv_xen_decode(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_MAP_GRANT_REF, FAKE_BASE);
	assert_int_equal(hv_xen_verdict(&c, &cfg), HV_RULE_GRANT_DOMAIN);
	assert_int_equal(c.unchecked, HV_XEN_UNCHECKED_UNREADABLE);
	assert_int_equal(c.bad_domid, HV_XEN_DOMID_NONE);
	assert_int_equal(fake_reads_by[HV_XEN_READER_FAULT], 0);

	fake_reads_by[HV_XEN_READER_NOFAULT] = 0;
	hv_xen_decode_by(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_MAP_GRANT_REF, FAKE_BASE,
			 HV_XEN_READER_FAULT);
	assert_false(c.flags & HV_XEN_F_UNREADABLE);
	assert_int_equal(c.count, 20);
	assert_int_equal(hv_xen_verdict_by(&c, &cfg, HV_XEN_READER_FAULT), HV_RULE_GRANT_DOMAIN);
	assert_int_equal(c.unchecked, HV_XEN_UNCHECKED_NONE);
	assert_int_equal(c.bad_domid, 7);
	assert_int_equal(c.checked, 18);
	assert_int_equal(fake_reads_by[HV_XEN_READER_NOFAULT], 0);

	put32(16 + 8 * 17, 0); /* every grant from an allowed domain: allowed */
	hv_xen_decode_by(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_MAP_GRANT_REF, FAKE_BASE,
			 HV_XEN_READER_FAULT);
	assert_int_equal(hv_xen_verdict_by(&c, &cfg, HV_XEN_READER_FAULT), -1);
	assert_int_equal(c.unchecked, HV_XEN_UNCHECKED_NONE);
	assert_int_equal(c.checked, 20);
	assert_int_equal(fake_reads_by[HV_XEN_READER_NOFAULT], 0);
	/* past the end of the buffer, faulting does not help */
	fake_len = 16 + 8 * 10;
	hv_xen_decode_by(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_MAP_GRANT_REF, FAKE_BASE,
			 HV_XEN_READER_FAULT);
	assert_int_equal(hv_xen_verdict_by(&c, &cfg, HV_XEN_READER_FAULT), HV_RULE_GRANT_DOMAIN);
	assert_int_equal(c.unchecked, HV_XEN_UNCHECKED_UNREADABLE);
}

/* No allowed set: grant-domain is inactive, nothing is unchecked either. */
static void test_unchecked_needs_an_allowed_set(void **state)
{
	struct hv_xen_call c;

	(void)state;
	memset(cfg.allowed, 0, sizeof(cfg.allowed));
	cfg.n_allowed = 0;
	cfg.action[HV_RULE_GRANT_DOMAIN] = HV_XEN_ACT_DENY;
	hv_xen_decode(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_MAP_GRANT_REF, 8);
	assert_int_equal(hv_xen_verdict(&c, &cfg), -1);
	assert_int_equal(c.unchecked, HV_XEN_UNCHECKED_NONE);
}

static void test_bad_pointer_every_op(void **state)
{
	static const struct {
		__u8 dev;
		__u32 cmd;
	} calls[] = {
	    {HV_XEN_DEV_PRIVCMD, HV_PRIVCMD_HYPERCALL},
	    {HV_XEN_DEV_PRIVCMD, HV_PRIVCMD_MMAP},
	    {HV_XEN_DEV_PRIVCMD, HV_PRIVCMD_MMAPBATCH},
	    {HV_XEN_DEV_PRIVCMD, HV_PRIVCMD_MMAPBATCH_V2},
	    {HV_XEN_DEV_PRIVCMD, HV_PRIVCMD_DM_OP},
	    {HV_XEN_DEV_PRIVCMD, HV_PRIVCMD_RESTRICT},
	    {HV_XEN_DEV_PRIVCMD, HV_PRIVCMD_MMAP_RESOURCE},
	    {HV_XEN_DEV_GNTDEV, HV_GNTDEV_MAP_GRANT_REF},
	    {HV_XEN_DEV_GNTDEV, HV_GNTDEV_UNMAP_GRANT_REF},
	    {HV_XEN_DEV_GNTDEV, HV_GNTDEV_GET_OFFSET_FOR_VADDR},
	    {HV_XEN_DEV_GNTDEV, HV_GNTDEV_SET_MAX_GRANTS},
	    {HV_XEN_DEV_GNTDEV, HV_GNTDEV_GRANT_COPY},
	    {HV_XEN_DEV_GNTDEV, HV_GNTDEV_DMABUF_EXP_FROM_REFS},
	    {HV_XEN_DEV_GNTDEV, HV_GNTDEV_DMABUF_IMP_TO_REFS},
	    {HV_XEN_DEV_GNTALLOC, HV_GNTALLOC_ALLOC_GREF},
	    {HV_XEN_DEV_GNTALLOC, HV_GNTALLOC_DEALLOC_GREF},
	};
	const __u64 end = FAKE_BASE + sizeof(fake_mem) - 1;
	const __u64 pointers[] = {0, 8, FAKE_BASE - 4, end, ~0ull, ~0ull - 3};
	struct hv_xen_call c;

	(void)state;
	for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
		for (size_t p = 0; p < sizeof(pointers) / sizeof(pointers[0]); p++) {
			fake_reads = 0;
			hv_xen_decode(&c, calls[i].dev, calls[i].cmd, pointers[p]);
			if (!(c.flags & HV_XEN_F_UNREADABLE))
				fail_msg("cmd %#x at %#llx decoded without a failed read",
					 calls[i].cmd, (unsigned long long)pointers[p]);
			assert_int_equal(c.n_refs, 0);
			assert_true(fake_reads <= 4);
			assert_int_equal(c.uarg, pointers[p]);
			/* by-number rules still fire; memory-based ones do not
			 * guess: unchecked, which alert reports as information
			 * and deny or kill refuses */
			int memory_based = c.op == HV_XEN_OP_PRIVCMD_MMAP_RESOURCE ||
					   c.op == HV_XEN_OP_GNTDEV_MAP_GRANT_REF ||
					   c.op == HV_XEN_OP_GNTDEV_GRANT_COPY ||
					   c.op == HV_XEN_OP_GNTDEV_DMABUF_EXP_FROM_REFS ||
					   c.op == HV_XEN_OP_GNTDEV_DMABUF_IMP_TO_REFS ||
					   c.op == HV_XEN_OP_GNTALLOC_ALLOC_GREF;
			for (int act = HV_XEN_ACT_ALERT; act <= HV_XEN_ACT_DENY; act++) {
				for (int r = 0; r < HV_RULE_COUNT; r++)
					cfg.action[r] = act;
				int rule = hv_xen_verdict(&c, &cfg);
				if (calls[i].cmd == HV_PRIVCMD_HYPERCALL)
					assert_int_equal(rule, HV_RULE_FORBIDDEN_HYPERCALL);
				else if (c.op == HV_XEN_OP_PRIVCMD_MMAP ||
					 c.op == HV_XEN_OP_PRIVCMD_MMAPBATCH ||
					 c.op == HV_XEN_OP_PRIVCMD_MMAPBATCH_V2)
					assert_int_equal(rule, HV_RULE_FOREIGN_MAP);
				else if (memory_based && act != HV_XEN_ACT_ALERT)
					assert_int_equal(rule, c.unchecked_rule);
				else
					assert_int_equal(rule, -1);
				assert_int_equal(c.unchecked, memory_based
								  ? HV_XEN_UNCHECKED_UNREADABLE
								  : HV_XEN_UNCHECKED_NONE);
			}
		}
	}
}

static void test_mmapbatch_v2(void **state)
{
	struct hv_xen_call c;

	(void)state;
	put32(0, 3);
	put16(4, 7);
	put64(8, 0x7f1234560000ull);
	hv_xen_decode(&c, HV_XEN_DEV_PRIVCMD, HV_PRIVCMD_MMAPBATCH_V2, FAKE_BASE);
	assert_int_equal(c.op, HV_XEN_OP_PRIVCMD_MMAPBATCH_V2);
	assert_int_equal(c.count, 3);
	assert_int_equal(c.domid, 7);
	assert_int_equal(c.addr, 0x7f1234560000ull);
	assert_int_equal(c.flags, 0);
	assert_int_equal(hv_xen_verdict(&c, &cfg), HV_RULE_FOREIGN_MAP);
	/* a foreign map of an allowed domain is still a foreign map */
	put16(4, 0);
	hv_xen_decode(&c, HV_XEN_DEV_PRIVCMD, HV_PRIVCMD_MMAPBATCH_V2, FAKE_BASE);
	assert_int_equal(hv_xen_verdict(&c, &cfg), HV_RULE_FOREIGN_MAP);
}

static void test_mmapbatch_truncated_struct(void **state)
{
	struct hv_xen_call c;

	(void)state;
	put32(0, 9);
	put16(4, 2);
	fake_len = 6; /* num and dom readable, addr beyond the end */
	hv_xen_decode(&c, HV_XEN_DEV_PRIVCMD, HV_PRIVCMD_MMAPBATCH, FAKE_BASE);
	assert_int_equal(c.count, 9);
	assert_int_equal(c.domid, 2);
	assert_true(c.flags & HV_XEN_F_UNREADABLE);
	assert_int_equal(c.addr, 0);
	assert_int_equal(hv_xen_verdict(&c, &cfg), HV_RULE_FOREIGN_MAP);
}

static void test_privcmd_mmap_negative_num_is_huge(void **state)
{
	struct hv_xen_call c;

	(void)state;
	put32(0, (uint32_t)-1);
	put16(4, 1);
	hv_xen_decode(&c, HV_XEN_DEV_PRIVCMD, HV_PRIVCMD_MMAP, FAKE_BASE);
	assert_true(c.flags & HV_XEN_F_HUGE);
	assert_false(c.flags & HV_XEN_F_TRUNCATED);
	assert_int_equal(hv_xen_verdict(&c, &cfg), HV_RULE_FOREIGN_MAP);
}

static void test_hypercall(void **state)
{
	struct hv_xen_call c;

	(void)state;
	put64(0, 12); /* memory_op */
	hv_xen_decode(&c, HV_XEN_DEV_PRIVCMD, HV_PRIVCMD_HYPERCALL, FAKE_BASE);
	assert_int_equal(c.hypercall, 12);
	assert_int_equal(hv_xen_verdict(&c, &cfg), HV_RULE_FORBIDDEN_HYPERCALL);
	cfg.action[HV_RULE_FORBIDDEN_HYPERCALL] = HV_XEN_ACT_OFF;
	assert_int_equal(hv_xen_verdict(&c, &cfg), -1);
}

static void test_mmap_resource(void **state)
{
	struct hv_xen_call c;

	(void)state;
	cfg.target_domain = 5;
	put16(0, 5);
	put32(4, HV_XENMEM_RESOURCE_IOREQ_SERVER);
	put32(8, 1);
	put64(16, 2);
	hv_xen_decode(&c, HV_XEN_DEV_PRIVCMD, HV_PRIVCMD_MMAP_RESOURCE, FAKE_BASE);
	assert_int_equal(c.count, 2);
	assert_int_equal(c.resource_id, 1);
	assert_int_equal(hv_xen_verdict(&c, &cfg), -1); /* ioreq pages of the target */
	put16(0, 6);
	hv_xen_decode(&c, HV_XEN_DEV_PRIVCMD, HV_PRIVCMD_MMAP_RESOURCE, FAKE_BASE);
	assert_int_equal(hv_xen_verdict(&c, &cfg), HV_RULE_RESOURCE_MAP); /* not the target */
	put16(0, 5);
	put32(4, 1); /* grant table */
	hv_xen_decode(&c, HV_XEN_DEV_PRIVCMD, HV_PRIVCMD_MMAP_RESOURCE, FAKE_BASE);
	assert_int_equal(c.resource_type, 1);
	assert_int_equal(hv_xen_verdict(&c, &cfg), HV_RULE_RESOURCE_MAP);
}

static void test_privcmd_mmap_needs_a_target(void **state)
{
	struct hv_xen_call c = {.dev = HV_XEN_DEV_PRIVCMD, .op = HV_XEN_OP_MMAP};

	(void)state;
	assert_int_equal(hv_xen_verdict(&c, &cfg), HV_RULE_FOREIGN_MAP);
	cfg.target_domain = 3;
	assert_int_equal(hv_xen_verdict(&c, &cfg), -1);
	c.dev = HV_XEN_DEV_GNTDEV;
	cfg.target_domain = HV_XEN_DOMID_NONE;
	assert_int_equal(hv_xen_verdict(&c, &cfg), -1);
}

static void test_gntalloc_alloc_gref(void **state)
{
	struct hv_xen_call c;

	(void)state;
	put16(0, 0);
	put32(4, 1);
	hv_xen_decode(&c, HV_XEN_DEV_GNTALLOC, HV_GNTALLOC_ALLOC_GREF, FAKE_BASE);
	assert_int_equal(c.op, HV_XEN_OP_GNTALLOC_ALLOC_GREF);
	assert_int_equal(c.domid, 0);
	assert_int_equal(c.count, 1);
	assert_int_equal(hv_xen_verdict(&c, &cfg), -1);
	put16(0, 3);
	hv_xen_decode(&c, HV_XEN_DEV_GNTALLOC, HV_GNTALLOC_ALLOC_GREF, FAKE_BASE);
	assert_int_equal(hv_xen_verdict(&c, &cfg), HV_RULE_GRANT_DOMAIN);
	assert_int_equal(c.bad_domid, 3);
}

static void test_shared_number_decoded_per_device(void **state)
{
	struct hv_xen_call c;

	(void)state;
	hv_xen_decode(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_SET_UNMAP_NOTIFY, FAKE_BASE);
	assert_int_equal(c.op, HV_XEN_OP_GNTDEV_SET_UNMAP_NOTIFY);
	hv_xen_decode(&c, HV_XEN_DEV_GNTALLOC, HV_GNTDEV_SET_UNMAP_NOTIFY, FAKE_BASE);
	assert_int_equal(c.op, HV_XEN_OP_GNTALLOC_SET_UNMAP_NOTIFY);
	/* a privcmd number on gntdev means nothing */
	hv_xen_decode(&c, HV_XEN_DEV_GNTDEV, HV_PRIVCMD_MMAPBATCH_V2, FAKE_BASE);
	assert_int_equal(c.op, HV_XEN_OP_OTHER);
	assert_int_equal(hv_xen_verdict(&c, &cfg), -1);
}

static void test_grant_copy(void **state)
{
	struct hv_xen_call c;
	const uint64_t segs = FAKE_BASE + 1024;

	(void)state;
	put32(0, 2);
	put64(8, segs);
	/* segment 0: local -> foreign (dest gref 11 of domain 0) */
	put64(1024 + 0, 0x7f0000009000ull);
	put64(1024 + 8, (uint64_t)0 << 48 | 11);
	put16(1024 + 18, 2);
	/* segment 1: foreign (source gref 12 of domain 9) -> local */
	put64(1024 + 24, (uint64_t)9 << 48 | 12);
	put64(1024 + 32, 0x7f000000a000ull);
	put16(1024 + 42, 1);
	hv_xen_decode(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_GRANT_COPY, FAKE_BASE);
	assert_int_equal(c.count, 2);
	assert_int_equal(c.n_refs, 2);
	assert_int_equal(c.refs[0], 11);
	assert_int_equal(c.refs[1], 12);
	assert_int_equal(c.ref_domids[1], 9);
	assert_int_equal(hv_xen_verdict(&c, &cfg), HV_RULE_GRANT_DOMAIN);
	assert_int_equal(c.bad_domid, 9);
	/* segments pointer into nothing */
	put64(8, 0x10);
	hv_xen_decode(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_GRANT_COPY, FAKE_BASE);
	assert_true(c.flags & HV_XEN_F_UNREADABLE);
	assert_int_equal(c.n_refs, 0);
}

/* The case: gref to gref, the dest of a forbidden domain. */
static void test_grant_copy_both_sides(void **state)
{
	struct hv_xen_call c;
	const uint64_t segs = FAKE_BASE + 1024;

	(void)state;
	put32(0, 1);
	put64(8, segs);
	put64(1024 + 0, (uint64_t)0 << 48 | 21); /* source: gref 21 of domain 0 */
	put64(1024 + 8, (uint64_t)7 << 48 | 8);	 /* dest: gref 8 of domain 7 */
	put16(1024 + 18, 3);
	hv_xen_decode(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_GRANT_COPY, FAKE_BASE);
	assert_int_equal(c.n_refs, 2);
	assert_int_equal(c.refs[0], 21);
	assert_int_equal(c.refs[1], 8);
	assert_int_equal(c.ref_domids[1], 7);
	assert_int_equal(hv_xen_verdict(&c, &cfg), HV_RULE_GRANT_DOMAIN);
	assert_int_equal(c.bad_domid, 7);
	/* the same segment as the 20th, past what decode keeps: the walk */
	put32(0, 20);
	for (int i = 0; i < 19; i++) {
		put64(1024 + 24 * i, (uint64_t)0 << 48 | 21);
		put64(1024 + 24 * i + 8, (uint64_t)0 << 48 | 22);
		put16(1024 + 24 * i + 18, 3);
	}
	put64(1024 + 24 * 19, (uint64_t)0 << 48 | 21);
	put64(1024 + 24 * 19 + 8, (uint64_t)7 << 48 | 8);
	put16(1024 + 24 * 19 + 18, 3);
	hv_xen_decode(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_GRANT_COPY, FAKE_BASE);
	assert_int_equal(c.n_refs, HV_XEN_MAX_REFS);
	assert_int_equal(hv_xen_verdict(&c, &cfg), HV_RULE_GRANT_DOMAIN);
	assert_int_equal(c.bad_domid, 7);
	assert_int_equal(c.checked, 20);
	/* the dest flag off: that side is a local address, not a gref */
	put16(1024 + 24 * 19 + 18, 1);
	hv_xen_decode(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_GRANT_COPY, FAKE_BASE);
	assert_int_equal(hv_xen_verdict(&c, &cfg), -1);
	assert_int_equal(c.checked, 20);
}

static void test_dmabuf_export(void **state)
{
	struct hv_xen_call c;

	(void)state;
	put32(4, 2);  /* count */
	put32(12, 4); /* domid */
	put32(16, 30);
	put32(20, 31);
	hv_xen_decode(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_DMABUF_EXP_FROM_REFS, FAKE_BASE);
	assert_int_equal(c.domid, 4);
	assert_int_equal(c.n_refs, 2);
	assert_int_equal(c.refs[1], 31);
	assert_int_equal(hv_xen_verdict(&c, &cfg), HV_RULE_GRANT_DOMAIN);
	hv_xen_allow_domid(&cfg, 4);
	assert_int_equal(hv_xen_verdict(&c, &cfg), -1);
}

static void test_domid_out_of_range(void **state)
{
	struct hv_xen_call c;

	(void)state;
	map_grant_ref(1, 0x12345678u, 1, 1);
	hv_xen_decode(&c, HV_XEN_DEV_GNTDEV, HV_GNTDEV_MAP_GRANT_REF, FAKE_BASE);
	assert_int_equal(hv_xen_verdict(&c, &cfg), HV_RULE_GRANT_DOMAIN);
	assert_int_equal(c.bad_domid, 0x12345678);
	assert_false(hv_xen_domid_allowed(&cfg, 0xffffffffu));
	hv_xen_allow_domid(&cfg, 0xffffffffu); /* ignored, no write out of bounds */
	assert_false(hv_xen_domid_allowed(&cfg, 0xffffffffu));
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(hv_xen_op_name(HV_XEN_OP_PRIVCMD_MMAPBATCH_V2),
			    "IOCTL_PRIVCMD_MMAPBATCH_V2");
	assert_string_equal(hv_xen_op_name(200), "unknown");
	assert_string_equal(hv_xen_grant_op_name(HV_XEN_GRANT_MUNMAP), "munmap");
	assert_string_equal(hv_xen_dev_name(HV_XEN_DEV_GNTALLOC), "gntalloc");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_classify_by_ioctl_handler, setup),
	    cmocka_unit_test_setup(test_classify_by_rdev_only_when_handler_unknown, setup),
	    cmocka_unit_test_setup(test_map_grant_ref_allowed, setup),
	    cmocka_unit_test_setup(test_map_grant_ref_from_other_domain, setup),
	    cmocka_unit_test_setup(test_map_grant_ref_no_allowed_set_is_inactive, setup),
	    cmocka_unit_test_setup(test_verdict_is_repeatable, setup),
	    cmocka_unit_test_setup(test_map_grant_ref_huge_count_bounded, setup),
	    cmocka_unit_test_setup(test_map_grant_ref_refs_run_off_the_page, setup),
	    cmocka_unit_test_setup(test_map_grant_ref_every_ref_checked, setup),
	    cmocka_unit_test_setup(test_map_grant_ref_walk_bound, setup),
	    cmocka_unit_test_setup(test_map_grant_ref_walk_hits_a_hole, setup),
	    cmocka_unit_test_setup(test_unchecked_needs_an_allowed_set, setup),
	    cmocka_unit_test_setup(test_bad_pointer_every_op, setup),
	    cmocka_unit_test_setup(test_mmapbatch_v2, setup),
	    cmocka_unit_test_setup(test_mmapbatch_truncated_struct, setup),
	    cmocka_unit_test_setup(test_privcmd_mmap_negative_num_is_huge, setup),
	    cmocka_unit_test_setup(test_hypercall, setup),
	    cmocka_unit_test_setup(test_mmap_resource, setup),
	    cmocka_unit_test_setup(test_privcmd_mmap_needs_a_target, setup),
	    cmocka_unit_test_setup(test_gntalloc_alloc_gref, setup),
	    cmocka_unit_test_setup(test_shared_number_decoded_per_device, setup),
	    cmocka_unit_test_setup(test_grant_copy, setup),
	    cmocka_unit_test_setup(test_grant_copy_both_sides, setup),
	    cmocka_unit_test_setup(test_dmabuf_export, setup),
	    cmocka_unit_test_setup(test_domid_out_of_range, setup),
	    cmocka_unit_test_setup(test_unfaulted_argument_by_reader, setup),
	    cmocka_unit_test_setup(test_names, setup),
	};
	return cmocka_run_group_tests_name("xen_decode", tests, NULL, NULL);
}
