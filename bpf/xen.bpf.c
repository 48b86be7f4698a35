// SPDX-License-Identifier: GPL-2.0
/*
 * The Xen checker: proves that designated backend processes use gntdev grant
 * mappings and never privcmd foreign mappings, and stops them when told to.
 *
 * Detection comes in two tiers, one loaded (userspace picks, see
 * docs/hooks.md), both running the same bodies below:
 * - fentry: fentry/fexit on the drivers' own ioctl and mmap file ops
 *   (privcmd, gntdev, gntalloc) and on gntdev's vma close. Only calls into
 *   those drivers run a program; nothing else on the host pays.
 * - syscalls: the ioctl, mmap and munmap syscall tracepoints, for kernels
 *   that refuse fentry. Enabling any syscall tracepoint puts every thread
 *   of the host on the syscall slow path; every ioctl then pays the
 *   type-byte compare ('P' or 'G') and every file mmap a compare on the fd.
 * Both: exec/fork/exit for who is a backend (one hash lookup each).
 *
 * Enforcement adds BPF LSM programs, loaded only where the daemon found BPF
 * LSM active: best a sleepable file_ioctl program, which reads the ioctl's
 * argument with bpf_copy_from_user and so faults in what the driver would
 * (a page not touched yet is no reason to refuse a call), with mmap_file
 * beside it; else both non-sleepable. Else the same bodies as fmod_ret
 * programs on security_file_ioctl/security_mmap_file (fentry-class, works
 * where BPF LSM is not in lsm=); where neither loads, "deny" degrades to
 * "kill", which stops the process but cannot stop the call already entered.
 */
#include "hvguard.bpf.h"
#include "hvguard/xen.h"

/* rd is a constant wherever this is inlined (xen_logic.h): a program that
 * may not sleep keeps only bpf_probe_read_user. */
static __always_inline long hv_xen_read_user(void *dst, __u32 size, __u64 uptr,
					     enum hv_xen_reader rd)
{
	if (rd == HV_XEN_READER_FAULT)
		return bpf_copy_from_user(dst, size, (const void *)uptr);
	return bpf_probe_read_user(dst, size, (const void *)uptr);
}

#include "hvguard/xen_logic.h"

char LICENSE[] SEC("license") = "GPL";

#define EPERM	      1
#define HV_PAGE_SHIFT 12
#define HV_PF_EXITING 0x00000004 /* task->flags: in do_exit() */

/* enum hv_xen_tier, set by userspace before load: which tier's programs
 * are loaded (the deny programs report differently on each). */
const volatile __u32 xen_tier = HV_XEN_TIER_SYSCALLS;

/* Written by userspace before load and while running (module addresses
 * resolved late, rules reloaded). */
struct hv_xen_config xen_cfg = {};
/* Non-zero: emit an exec event for userspace to match globs/cgroups. */
__u32 xen_exec_events = 0;
/* Calls remembered at entry and not yet seen at exit: while zero (nearly
 * always), the exit hooks of every other ioctl and mmap skip their lookup. */
__s64 xen_inflight = 0;
/* Counters by enum hv_xen_stat, read by userspace from the skeleton's bss. */
__u64 xen_stats[HV_XEN_STAT_COUNT] = {};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} xen_events SEC(".maps");

/* Designated backends, by tgid. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct hv_xen_backend);
} xen_backends SEC(".maps");

/* Exact designations decided in the kernel at exec. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, char[HV_XEN_COMM_LEN]);
	__type(value, struct hv_xen_match);
} xen_match_comm SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, char[HV_XEN_PATH_MAX]);
	__type(value, struct hv_xen_match);
} xen_match_exe SEC(".maps");

/* gntdev reservations and their mappings. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct hv_xen_grant_key);
	__type(value, struct hv_xen_grant);
} xen_grants SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct hv_xen_addr_key);
	__type(value, __u64);
} xen_grant_addrs SEC(".maps");

enum pending_kind { PEND_IOCTL, PEND_MMAP, PEND_MUNMAP };

/* A call of a backend between syscall entry and exit, by thread. */
struct pending {
	struct hv_xen_call call;
	__s8 rule; /* -1: none */
	__u8 action;
	__u8 emitted; /* the violation already went out (kill at entry) */
	__u8 kind;    /* enum pending_kind */
	__u32 pad;
	__u64 index; /* mmap offset / munmap: reservation */
	__u64 addr;
	__u64 len;
};

/* Not LRU: an evicted call would take its violation with it. A full map
 * refuses the insert instead (counted), and the violation goes out at once. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct pending);
} xen_pending SEC(".maps");

/* Scratch, off the 512-byte stack: slot 0 syscall tracepoints and exec,
 * 1 LSM hooks, 2 the driver hooks of the fentry tier. Trampoline programs
 * run with migration, not preemption, disabled: a slot of their own keeps a
 * tracepoint on the same CPU from writing over one preempted midway. */
enum { SLOT_TRACEPOINT, SLOT_DENY, SLOT_DRIVER, SLOT_COUNT };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLOT_COUNT);
	__type(key, __u32);
	__type(value, struct pending);
} xen_scratch SEC(".maps");

static __always_inline struct pending *scratch(__u32 slot)
{
	return bpf_map_lookup_elem(&xen_scratch, &slot);
}

/* The sleepable deny program's scratch, by thread: it may sleep while
 * faulting a page in, and another thread on the same CPU may then run it
 * too, so a per-CPU slot could be written over under it. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct pending);
} xen_deny_task SEC(".maps");

/* The slot of the detection bodies, by tier (decided at load). */
static __always_inline struct pending *body_scratch(void)
{
	return scratch(xen_tier == HV_XEN_TIER_FENTRY ? SLOT_DRIVER : SLOT_TRACEPOINT);
}

static __always_inline struct hv_xen_backend *current_backend(void)
{
	__u32 tgid = hv_current_tgid();

	return bpf_map_lookup_elem(&xen_backends, &tgid);
}

/* Which Xen device a file is: by its ioctl handler (kallsyms always has the
 * functions), by device number where a handler is unknown. */
static __always_inline __u8 classify_file(struct file *file)
{
	__u32 rdev = 0;
	__u64 fn;

	if (!file)
		return HV_XEN_DEV_NONE;
	fn = hv_file_ioctl_handler(file);
	if (!xen_cfg.ioctl_fn[HV_XEN_DEV_PRIVCMD] || !xen_cfg.ioctl_fn[HV_XEN_DEV_GNTDEV] ||
	    !xen_cfg.ioctl_fn[HV_XEN_DEV_GNTALLOC])
		rdev = BPF_CORE_READ(file, f_inode, i_rdev);
	return hv_xen_classify(fn, rdev, &xen_cfg);
}

static __always_inline __u8 classify_fd(int fd)
{
	if (fd < 0)
		return HV_XEN_DEV_NONE;
	return classify_file(hv_fd_to_file((struct task_struct *)bpf_get_current_task(), fd));
}

static __always_inline struct hv_xen_event *event_new(__u8 type)
{
	struct hv_xen_event *e = bpf_ringbuf_reserve(&xen_events, sizeof(*e), 0);
	__u64 id = bpf_get_current_pid_tgid();

	if (!e) {
		__sync_fetch_and_add(&xen_stats[HV_XEN_STAT_LOST], 1);
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->type = type;
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->ts_ns = bpf_ktime_get_boot_ns();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	return e;
}

static __always_inline void emit_violation(struct pending *p, __s64 ret)
{
	struct hv_xen_event *e = event_new(HV_XEN_EV_VIOLATION);

	if (!e)
		return;
	e->rule = (__u8)p->rule;
	e->action = p->action;
	e->ret = ret;
	e->addr = p->addr;
	e->len = p->len;
	__builtin_memcpy(&e->call, &p->call, sizeof(e->call));
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void emit_grant(__u8 op, struct pending *p, __u64 index, __u64 addr,
				       __s64 ret)
{
	struct hv_xen_event *e = event_new(HV_XEN_EV_GRANT);

	if (!e)
		return;
	e->grant_op = op;
	e->index = index;
	e->addr = addr;
	e->len = p->len;
	e->ret = ret;
	__builtin_memcpy(&e->call, &p->call, sizeof(e->call));
	/* Routine records: no wakeup, the daemon drains them every loop turn
	 * (at most 100 ms later) instead of switching in four times per cycle. */
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

/* A call a rule could not fully check, counted by cause, once per call
 * (wherever its violation, or its information event, is counted). */
static __always_inline void count_unchecked(const struct hv_xen_call *call)
{
	if (call->unchecked == HV_XEN_UNCHECKED_UNREADABLE)
		__sync_fetch_and_add(&xen_stats[HV_XEN_STAT_UNCHECKED_UNREADABLE], 1);
	else if (call->unchecked == HV_XEN_UNCHECKED_TRUNCATED)
		__sync_fetch_and_add(&xen_stats[HV_XEN_STAT_UNCHECKED_TRUNCATED], 1);
}

/* Not fully checked, and the rule only alerts: said, not alerted. */
static __always_inline void emit_unchecked(const struct hv_xen_call *call)
{
	struct hv_xen_event *e;

	count_unchecked(call);
	e = event_new(HV_XEN_EV_UNCHECKED);
	if (!e)
		return;
	e->rule = call->unchecked_rule;
	e->action = HV_XEN_ACT_ALERT;
	__builtin_memcpy(&e->call, call, sizeof(e->call));
	bpf_ringbuf_submit(e, 0);
}

/* A backend's call broke a rule: act at once where the action is kill (the
 * signal is delivered on the way back to userspace: the call itself may
 * still complete, which the exit event then shows). */
static __always_inline void judge(struct pending *p, struct hv_xen_backend *be)
{
	int rule = hv_xen_verdict(&p->call, &xen_cfg);

	p->rule = -1;
	if (rule < 0 || rule >= HV_RULE_COUNT) {
		if (p->call.unchecked)
			emit_unchecked(&p->call);
		return;
	}
	/* Not fully checked here, and its rule denies: the deny program, which
	 * every such call passes, decides it and reports it (the sleepable one
	 * reads what could not be read here). */
	if (p->call.unchecked && xen_cfg.action[rule] == HV_XEN_ACT_DENY)
		return;
	p->rule = rule;
	p->action = xen_cfg.action[rule];
	__sync_fetch_and_add(&be->violations, 1);
	__sync_fetch_and_add(&xen_stats[HV_XEN_STAT_VIOLATIONS], 1);
	count_unchecked(&p->call);
	if (p->action == HV_XEN_ACT_KILL) {
		bpf_send_signal(HV_SIGKILL);
		__sync_fetch_and_add(&xen_stats[HV_XEN_STAT_KILLS], 1);
		emit_violation(p, 0);
		p->emitted = 1;
	}
}

static __always_inline void remember(struct pending *p)
{
	__u64 id = bpf_get_current_pid_tgid();

	if (!bpf_map_update_elem(&xen_pending, &id, p, BPF_ANY)) {
		__sync_fetch_and_add(&xen_inflight, 1);
		return;
	}
	/* No room to follow the call to its return: a violation is reported
	 * now, its outcome unknown (deny's program reports its own). */
	__sync_fetch_and_add(&xen_stats[HV_XEN_STAT_PENDING_FULL], 1);
	if (p->rule >= 0 && !p->emitted && p->action != HV_XEN_ACT_DENY) {
		emit_violation(p, HV_XEN_RET_UNSEEN);
		p->emitted = 1;
	}
}

/* The call remembered at entry by this thread, if any. */
static __always_inline struct pending *recall(__u64 id, __u8 kind)
{
	struct pending *p;

	if (!xen_inflight)
		return NULL;
	p = bpf_map_lookup_elem(&xen_pending, &id);
	if (!p || p->kind != kind)
		return NULL;
	return p;
}

static __always_inline void forget(__u64 id)
{
	if (!bpf_map_delete_elem(&xen_pending, &id))
		__sync_fetch_and_add(&xen_inflight, -1);
}

/* --- the bodies both tiers run ------------------------------------------ */

static __always_inline void emit_bad_argument(const struct hv_xen_call *call)
{
	struct hv_xen_event *e = event_new(HV_XEN_EV_BADARG);

	if (!e)
		return;
	__builtin_memcpy(&e->call, call, sizeof(e->call));
	bpf_ringbuf_submit(e, 0);
}

/* A backend's ioctl on a Xen device, before the driver runs. */
static __always_inline void ioctl_enter(struct hv_xen_backend *be, __u8 dev, __u32 cmd, __u64 arg)
{
	struct pending *p = body_scratch();

	if (!p)
		return;
	__sync_fetch_and_add(&xen_stats[HV_XEN_STAT_IOCTLS], 1);
	p->kind = PEND_IOCTL;
	p->emitted = 0;
	p->index = p->addr = p->len = 0;
	hv_xen_decode(&p->call, dev, cmd, arg);
	if (p->call.flags & HV_XEN_F_UNREADABLE)
		emit_bad_argument(&p->call);
	judge(p, be);
	if ((p->rule >= 0 && !p->emitted) || p->call.op == HV_XEN_OP_GNTDEV_MAP_GRANT_REF ||
	    p->call.op == HV_XEN_OP_GNTDEV_UNMAP_GRANT_REF)
		remember(p);
}

static __always_inline void grant_reserved(struct pending *p, struct hv_xen_backend *be)
{
	struct hv_xen_grant_key key = {.tgid = hv_current_tgid()};
	struct hv_xen_grant g = {};

	/* The index (mmap offset) is an output of MAP_GRANT_REF. */
	if (bpf_probe_read_user(&key.index, sizeof(key.index), (void *)(p->call.uarg + 8)))
		return;
	g.reserved_ns = bpf_ktime_get_boot_ns();
	g.count = (__u32)p->call.count;
	g.domid = p->call.domid;
	g.first_ref = p->call.refs[0];
	g.state = HV_XEN_GRANT_RESERVED;
	bpf_map_update_elem(&xen_grants, &key, &g, BPF_ANY);
	__sync_fetch_and_add(&be->ops[HV_XEN_GRANT_MAP], 1);
	__sync_fetch_and_add(&be->reserved, 1);
	emit_grant(HV_XEN_GRANT_MAP, p, key.index, 0, 0);
}

static __always_inline void grant_released(struct pending *p, struct hv_xen_backend *be)
{
	struct hv_xen_grant_key key = {.tgid = hv_current_tgid(), .index = p->call.addr};
	struct hv_xen_grant *g = bpf_map_lookup_elem(&xen_grants, &key);
	__u64 addr = 0;

	__sync_fetch_and_add(&be->ops[HV_XEN_GRANT_UNMAP], 1);
	if (g) {
		if (g->state == HV_XEN_GRANT_MAPPED) {
			/* gntdev defers the unmap to munmap: still counts as mapped. */
			struct hv_xen_addr_key ak = {.tgid = key.tgid, .addr = g->addr};

			bpf_map_delete_elem(&xen_grant_addrs, &ak);
			__sync_fetch_and_add(&be->mapped, -1);
		}
		addr = g->addr;
		p->call.domid = g->domid;
		p->call.refs[0] = g->first_ref;
		p->call.n_refs = 1;
		bpf_map_delete_elem(&xen_grants, &key);
		__sync_fetch_and_add(&be->reserved, -1);
	}
	emit_grant(HV_XEN_GRANT_UNMAP, p, p->call.addr, addr, 0);
}

/* The ioctl remembered at entry, on its way back with the driver's answer
 * (the syscall's on the syscalls tier: the same but for ENOIOCTLCMD). */
static __always_inline void ioctl_exit(__s64 ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct hv_xen_backend *be;
	struct pending *p;

	p = recall(id, PEND_IOCTL);
	if (!p)
		return;
	if (p->rule >= 0 && !p->emitted)
		emit_violation(p, ret);
	be = current_backend();
	if (be && ret == 0) {
		if (p->call.op == HV_XEN_OP_GNTDEV_MAP_GRANT_REF)
			grant_reserved(p, be);
		else if (p->call.op == HV_XEN_OP_GNTDEV_UNMAP_GRANT_REF)
			grant_released(p, be);
	}
	forget(id);
}

/* A backend's mmap of privcmd or gntdev, before the mapping is made:
 * offset in bytes (gntdev: the reservation's index), len in bytes. */
static __always_inline void mmap_enter(struct hv_xen_backend *be, __u8 dev, __u64 offset, __u64 len)
{
	struct pending *p = body_scratch();

	if (!p)
		return;
	__builtin_memset(&p->call, 0, sizeof(p->call));
	p->call.dev = dev;
	p->call.op = HV_XEN_OP_MMAP;
	p->call.domid = HV_XEN_DOMID_NONE;
	p->call.bad_domid = HV_XEN_DOMID_NONE;
	p->kind = PEND_MMAP;
	p->emitted = 0;
	p->index = offset;
	p->len = len;
	p->addr = 0;
	p->call.count = p->len / 4096;
	judge(p, be);
	if (dev == HV_XEN_DEV_GNTDEV || (p->rule >= 0 && !p->emitted))
		remember(p);
}

/* The same mmap done: err 0 or -errno, addr the mapping's start when 0. */
static __always_inline void mmap_exit(__s64 err, __u64 addr)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct hv_xen_grant_key key = {.tgid = id >> 32};
	struct hv_xen_backend *be;
	struct hv_xen_grant *g;
	struct pending *p;

	p = recall(id, PEND_MMAP);
	if (!p)
		return;
	if (p->rule >= 0 && !p->emitted) {
		p->addr = err ? 0 : addr;
		emit_violation(p, err);
	}
	be = current_backend();
	key.index = p->index;
	g = bpf_map_lookup_elem(&xen_grants, &key);
	if (be && g && p->call.dev == HV_XEN_DEV_GNTDEV && !err) {
		struct hv_xen_addr_key ak = {.tgid = key.tgid, .addr = addr};
		__u64 index = p->index;

		g->state = HV_XEN_GRANT_MAPPED;
		g->addr = ak.addr;
		g->mapped_ns = bpf_ktime_get_boot_ns();
		bpf_map_update_elem(&xen_grant_addrs, &ak, &index, BPF_ANY);
		__sync_fetch_and_add(&be->ops[HV_XEN_GRANT_MMAP], 1);
		__sync_fetch_and_add(&be->mapped, 1);
		p->call.count = g->count;
		p->call.domid = g->domid;
		p->call.refs[0] = g->first_ref;
		p->call.n_refs = 1;
		emit_grant(HV_XEN_GRANT_MMAP, p, index, ak.addr, 0);
	}
	forget(id);
}

/* An unmap of addr: only of mappings we saw made. The record to carry it,
 * or NULL when addr is not the start of one. */
static __always_inline struct pending *munmap_prepare(__u32 tgid, __u64 addr, __u64 len)
{
	struct hv_xen_addr_key ak = {.tgid = tgid, .addr = addr};
	struct pending *p;
	__u64 *index;

	index = bpf_map_lookup_elem(&xen_grant_addrs, &ak);
	if (!index)
		return NULL;
	p = body_scratch();
	if (!p)
		return NULL;
	__builtin_memset(&p->call, 0, sizeof(p->call));
	p->call.dev = HV_XEN_DEV_GNTDEV;
	p->call.domid = HV_XEN_DOMID_NONE;
	p->kind = PEND_MUNMAP;
	p->rule = -1;
	p->emitted = 0;
	p->index = *index;
	p->addr = addr;
	p->len = len;
	return p;
}

/* The mapping in p is gone (a munmap that succeeded, or its vma closed). */
static __always_inline void grant_munmapped(struct pending *p, struct hv_xen_backend *be,
					    __u32 tgid)
{
	struct hv_xen_grant_key key = {.tgid = tgid, .index = p->index};
	struct hv_xen_addr_key ak = {.tgid = tgid, .addr = p->addr};
	struct hv_xen_grant *g = bpf_map_lookup_elem(&xen_grants, &key);

	bpf_map_delete_elem(&xen_grant_addrs, &ak);
	__sync_fetch_and_add(&be->ops[HV_XEN_GRANT_MUNMAP], 1);
	if (g && g->state == HV_XEN_GRANT_MAPPED) {
		g->state = HV_XEN_GRANT_UNMAPPED;
		__sync_fetch_and_add(&be->mapped, -1);
	}
	if (g) {
		p->call.count = g->count;
		p->call.domid = g->domid;
		p->call.refs[0] = g->first_ref;
		p->call.n_refs = 1;
	}
	emit_grant(HV_XEN_GRANT_MUNMAP, p, p->index, p->addr, 0);
}

/* --- syscalls tier: every thread of the host pays ----------------------- */

SEC("tracepoint/syscalls/sys_enter_ioctl")
int xen_ioctl_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u32 cmd = (__u32)ctx->args[1], type = HV_IOC_TYPE(cmd);
	struct hv_xen_backend *be;
	__u8 dev;

	if (type != HV_IOC_TYPE_PRIVCMD && type != HV_IOC_TYPE_GNT)
		return 0;
	be = current_backend();
	if (!be)
		return 0;
	dev = classify_fd((int)ctx->args[0]);
	if (dev != HV_XEN_DEV_NONE)
		ioctl_enter(be, dev, cmd, ctx->args[2]);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_ioctl")
int xen_ioctl_exit(struct trace_event_raw_sys_exit *ctx)
{
	ioctl_exit(ctx->ret);
	return 0;
}

/* mmap(addr, len, prot, flags, fd, off) */
SEC("tracepoint/syscalls/sys_enter_mmap")
int xen_mmap_enter(struct trace_event_raw_sys_enter *ctx)
{
	struct hv_xen_backend *be;
	__u8 dev;

	if ((int)ctx->args[4] < 0)
		return 0; /* anonymous: nearly every mmap */
	be = current_backend();
	if (!be)
		return 0;
	dev = classify_fd((int)ctx->args[4]);
	if (dev == HV_XEN_DEV_GNTDEV || dev == HV_XEN_DEV_PRIVCMD)
		mmap_enter(be, dev, ctx->args[5], ctx->args[1]);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_mmap")
int xen_mmap_exit(struct trace_event_raw_sys_exit *ctx)
{
	/* User addresses are positive as a long; errors are -4095..-1. */
	if (ctx->ret < 0)
		mmap_exit(ctx->ret, 0);
	else
		mmap_exit(0, (__u64)ctx->ret);
	return 0;
}

/* munmap(addr, len) */
SEC("tracepoint/syscalls/sys_enter_munmap")
int xen_munmap_enter(struct trace_event_raw_sys_enter *ctx)
{
	struct pending *p;

	if (!current_backend())
		return 0;
	p = munmap_prepare(hv_current_tgid(), ctx->args[0], ctx->args[1]);
	if (p)
		remember(p);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_munmap")
int xen_munmap_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct hv_xen_backend *be;
	struct pending *p;

	p = recall(id, PEND_MUNMAP);
	if (!p)
		return 0;
	be = current_backend();
	if (be && ctx->ret == 0)
		grant_munmapped(p, be, id >> 32);
	forget(id);
	return 0;
}

/* --- fentry tier: only calls into the Xen drivers pay ------------------- */

/* The device is known from the function hooked: no file to classify. */
static __always_inline void driver_ioctl(__u8 dev, __u32 cmd, __u64 arg)
{
	struct hv_xen_backend *be = current_backend();

	if (be)
		ioctl_enter(be, dev, cmd, arg);
}

SEC("fentry/privcmd_ioctl")
int BPF_PROG(xen_drv_privcmd_ioctl, struct file *file, unsigned int cmd, unsigned long arg)
{
	driver_ioctl(HV_XEN_DEV_PRIVCMD, cmd, arg);
	return 0;
}

SEC("fexit/privcmd_ioctl")
int BPF_PROG(xen_drv_privcmd_ioctl_ret, struct file *file, unsigned int cmd, unsigned long arg,
	     long ret)
{
	ioctl_exit(ret);
	return 0;
}

SEC("fentry/gntdev_ioctl")
int BPF_PROG(xen_drv_gntdev_ioctl, struct file *file, unsigned int cmd, unsigned long arg)
{
	driver_ioctl(HV_XEN_DEV_GNTDEV, cmd, arg);
	return 0;
}

SEC("fexit/gntdev_ioctl")
int BPF_PROG(xen_drv_gntdev_ioctl_ret, struct file *file, unsigned int cmd, unsigned long arg,
	     long ret)
{
	ioctl_exit(ret);
	return 0;
}

SEC("fentry/gntalloc_ioctl")
int BPF_PROG(xen_drv_gntalloc_ioctl, struct file *file, unsigned int cmd, unsigned long arg)
{
	driver_ioctl(HV_XEN_DEV_GNTALLOC, cmd, arg);
	return 0;
}

SEC("fexit/gntalloc_ioctl")
int BPF_PROG(xen_drv_gntalloc_ioctl_ret, struct file *file, unsigned int cmd, unsigned long arg,
	     long ret)
{
	ioctl_exit(ret);
	return 0;
}

/* The driver's mmap file op runs with the vma already placed: its start is
 * the address mmap(2) returns, vm_pgoff the offset it was given. */
static __always_inline void driver_mmap(__u8 dev, struct vm_area_struct *vma)
{
	struct hv_xen_backend *be = current_backend();
	__u64 start, end;

	if (!be)
		return;
	start = BPF_CORE_READ(vma, vm_start);
	end = BPF_CORE_READ(vma, vm_end);
	mmap_enter(be, dev, BPF_CORE_READ(vma, vm_pgoff) << HV_PAGE_SHIFT, end - start);
}

static __always_inline void driver_mmap_ret(struct vm_area_struct *vma, int ret)
{
	mmap_exit(ret, ret ? 0 : BPF_CORE_READ(vma, vm_start));
}

SEC("fentry/privcmd_mmap")
int BPF_PROG(xen_drv_privcmd_mmap, struct file *file, struct vm_area_struct *vma)
{
	driver_mmap(HV_XEN_DEV_PRIVCMD, vma);
	return 0;
}

SEC("fexit/privcmd_mmap")
int BPF_PROG(xen_drv_privcmd_mmap_ret, struct file *file, struct vm_area_struct *vma, int ret)
{
	driver_mmap_ret(vma, ret);
	return 0;
}

SEC("fentry/gntdev_mmap")
int BPF_PROG(xen_drv_gntdev_mmap, struct file *file, struct vm_area_struct *vma)
{
	driver_mmap(HV_XEN_DEV_GNTDEV, vma);
	return 0;
}

SEC("fexit/gntdev_mmap")
int BPF_PROG(xen_drv_gntdev_mmap_ret, struct file *file, struct vm_area_struct *vma, int ret)
{
	driver_mmap_ret(vma, ret);
	return 0;
}

/* A gntdev mapping's vma goes away: munmap (whole or its start), mremap's
 * move, exec, or the process's exit. At exit the mapping counts as still
 * mapped, as on the syscalls tier, which sees no munmap there: the leak
 * check at exit reports it so. */
SEC("fentry/gntdev_vma_close")
int BPF_PROG(xen_drv_gntdev_vma_close, struct vm_area_struct *vma)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct hv_xen_backend *be;
	struct pending *p;
	__u64 start;

	if (task->flags & HV_PF_EXITING)
		return 0;
	be = current_backend();
	if (!be)
		return 0;
	start = BPF_CORE_READ(vma, vm_start);
	p = munmap_prepare(hv_current_tgid(), start, BPF_CORE_READ(vma, vm_end) - start);
	if (p)
		grant_munmapped(p, be, hv_current_tgid());
	return 0;
}

static __always_inline void designate(__u32 tgid, __u32 match, __u32 parent)
{
	struct hv_xen_backend be = {.match = match, .inherited_from = parent};
	struct hv_xen_event *e;

	if (bpf_map_update_elem(&xen_backends, &tgid, &be, BPF_NOEXIST))
		return; /* already one */
	e = event_new(HV_XEN_EV_DESIGNATED);
	if (!e)
		return;
	e->pid = tgid;
	e->ppid = parent;
	e->backend.match = match;
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

static __always_inline bool uid_ok(const struct hv_xen_match *m)
{
	return m->uid < 0 || m->uid == (__s64)(__u32)bpf_get_current_uid_gid();
}

SEC("tracepoint/sched/sched_process_exec")
int xen_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	__u32 tgid = hv_current_tgid();
	struct hv_xen_match *m;
	struct pending *p;
	char *path;

	if (bpf_map_lookup_elem(&xen_backends, &tgid))
		return 0; /* a backend stays one across exec */
	p = scratch(SLOT_TRACEPOINT);
	if (!p)
		return 0;
	/* Scratch space for the keys: the comm, then the path. */
	path = (char *)p;
	__builtin_memset(path, 0, HV_XEN_PATH_MAX);
	bpf_get_current_comm(path, HV_XEN_COMM_LEN);
	m = bpf_map_lookup_elem(&xen_match_comm, path);
	if (m && uid_ok(m)) {
		designate(tgid, m->index, 0);
		return 0;
	}
	__builtin_memset(path, 0, HV_XEN_PATH_MAX);
	bpf_probe_read_kernel_str(path, HV_XEN_PATH_MAX,
				  (char *)ctx + (ctx->__data_loc_filename & 0xffff));
	m = bpf_map_lookup_elem(&xen_match_exe, path);
	if (m && uid_ok(m)) {
		designate(tgid, m->index, 0);
		return 0;
	}
	if (xen_exec_events) {
		struct hv_xen_event *e = event_new(HV_XEN_EV_EXEC);

		if (!e)
			return 0;
		__builtin_memcpy(e->path, path, HV_XEN_PATH_MAX);
		bpf_ringbuf_submit(e, 0);
	}
	return 0;
}

/* Children of a backend are backends: a new process (not a thread). */
SEC("raw_tp/sched_process_fork")
int BPF_PROG(xen_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	__u32 ctgid = BPF_CORE_READ(child, tgid);
	struct hv_xen_backend *be;

	if (ptgid == ctgid)
		return 0;
	be = bpf_map_lookup_elem(&xen_backends, &ptgid);
	if (be)
		designate(ctgid, be->match, ptgid);
	return 0;
}

/* A backend's last words: its counts; userspace checks its grants for leaks.
 * The process ends with its last thread, not with its leader: a leader can
 * exit first, and an exec from another thread kills the leader (de_thread)
 * while the process goes on, under the same tgid, as the new program. The
 * tracepoint runs after do_exit() counted this thread out of signal->live. */
SEC("tracepoint/sched/sched_process_exit")
int xen_exit(void *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 tgid = hv_current_tgid();
	struct hv_xen_backend *be;
	struct hv_xen_event *e;

	if (xen_inflight) /* a thread that never returned from its call */
		forget(bpf_get_current_pid_tgid());
	be = bpf_map_lookup_elem(&xen_backends, &tgid);
	if (!be)
		return 0;
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0; /* other threads live on: not the process's end */
	e = event_new(HV_XEN_EV_EXIT);
	if (e) {
		__builtin_memcpy(&e->backend, be, sizeof(e->backend));
		bpf_ringbuf_submit(e, 0);
	}
	bpf_map_delete_elem(&xen_backends, &tgid);
	return 0;
}

/* --- enforcement: deny, where BPF LSM or fmod_ret loads ------------------ */

/* Whether the call's exit reports it: on the syscalls tier the tracepoint
 * saw the call first, and remembered a violation it decided itself (it
 * leaves those it could not check to the deny program: judge()). On the
 * fentry tier a refused call never reaches the driver's hooks. */
static __always_inline bool exit_reports(__u8 kind)
{
	struct pending *q;

	if (xen_tier == HV_XEN_TIER_FENTRY)
		return false;
	q = recall(bpf_get_current_pid_tgid(), kind);
	return q && q->rule >= 0 && !q->emitted;
}

/* A refused call, reported here unless its exit does, with the EPERM the
 * caller gets. */
static __always_inline void report_denied(struct pending *p, struct hv_xen_backend *be, int rule,
					  __u8 kind)
{
	if (exit_reports(kind))
		return;
	p->rule = rule;
	p->action = HV_XEN_ACT_DENY;
	p->addr = p->len = 0;
	__sync_fetch_and_add(&be->violations, 1);
	__sync_fetch_and_add(&xen_stats[HV_XEN_STAT_VIOLATIONS], 1);
	count_unchecked(&p->call);
	emit_violation(p, -EPERM);
}

/* No scratch to decode the call in: refused where any rule denies (fail
 * closed), and counted either way. */
static __always_inline int deny_no_scratch(void)
{
	__u32 r;

	__sync_fetch_and_add(&xen_stats[HV_XEN_STAT_NO_SCRATCH], 1);
	for (r = 0; r < HV_RULE_COUNT; r++) {
		if (xen_cfg.action[r] == HV_XEN_ACT_DENY) {
			__sync_fetch_and_add(&xen_stats[HV_XEN_STAT_DENIALS], 1);
			return -EPERM;
		}
	}
	return 0;
}

/* Scratch by reader: the sleepable program's by thread, the others' by
 * CPU. rd is a constant at every call. */
static __always_inline struct pending *deny_scratch(enum hv_xen_reader rd)
{
	if (rd == HV_XEN_READER_FAULT)
		return bpf_task_storage_get(&xen_deny_task, bpf_get_current_task_btf(), NULL,
					    BPF_LOCAL_STORAGE_GET_F_CREATE);
	return scratch(SLOT_DENY);
}

/* An allowed call on the syscalls tier: the tracepoint remembered it before
 * the sleepable program faulted its argument in. What the tracepoint could
 * not read, the grant records at its exit take from here. */
static __always_inline void share_decode(const struct pending *p)
{
	struct pending *q;

	if (xen_tier == HV_XEN_TIER_FENTRY || (p->call.flags & HV_XEN_F_UNREADABLE))
		return;
	q = recall(bpf_get_current_pid_tgid(), PEND_IOCTL);
	if (q && q->rule < 0 && (q->call.flags & HV_XEN_F_UNREADABLE))
		__builtin_memcpy(&q->call, &p->call, sizeof(q->call));
}

/* Enforcement: the same decode and verdict, at the LSM hook that runs just
 * before the driver, reading user memory with rd. The user structure is
 * read again here; a caller that rewrites it between this read and the
 * driver's copy could slip a memory-based rule (grant-domain,
 * resource-map); rules decided by the command number (foreign-map,
 * forbidden-hypercall) cannot be raced. */
static __always_inline int deny_ioctl(struct file *file, unsigned int cmd, unsigned long arg,
				      enum hv_xen_reader rd)
{
	__u32 type = HV_IOC_TYPE(cmd);
	struct hv_xen_backend *be;
	struct pending *p;
	__u8 dev;
	int rule;

	if (type != HV_IOC_TYPE_PRIVCMD && type != HV_IOC_TYPE_GNT)
		return 0;
	be = current_backend();
	if (!be)
		return 0;
	dev = classify_file(file);
	if (dev == HV_XEN_DEV_NONE)
		return 0;
	p = deny_scratch(rd);
	if (!p)
		return deny_no_scratch();
	hv_xen_decode_by(&p->call, dev, cmd, arg, rd);
	rule = hv_xen_verdict_by(&p->call, &xen_cfg, rd);
	if (rule < 0 || rule >= HV_RULE_COUNT || xen_cfg.action[rule] != HV_XEN_ACT_DENY) {
		if (rd == HV_XEN_READER_FAULT)
			share_decode(p);
		return 0;
	}
	__sync_fetch_and_add(&xen_stats[HV_XEN_STAT_DENIALS], 1);
	if (xen_tier == HV_XEN_TIER_FENTRY) {
		__sync_fetch_and_add(&xen_stats[HV_XEN_STAT_IOCTLS], 1);
		if (p->call.flags & HV_XEN_F_UNREADABLE)
			emit_bad_argument(&p->call);
	}
	report_denied(p, be, rule, PEND_IOCTL);
	return -EPERM;
}

static __always_inline int deny_mmap(struct file *file)
{
	struct hv_xen_backend *be = current_backend();
	struct pending *p;
	__u8 dev;
	int rule;

	if (!be)
		return 0;
	dev = classify_file(file);
	if (dev != HV_XEN_DEV_PRIVCMD)
		return 0;
	p = scratch(SLOT_DENY);
	if (!p)
		return deny_no_scratch();
	__builtin_memset(&p->call, 0, sizeof(p->call));
	p->call.dev = dev;
	p->call.op = HV_XEN_OP_MMAP;
	p->call.domid = HV_XEN_DOMID_NONE;
	p->call.bad_domid = HV_XEN_DOMID_NONE;
	rule = hv_xen_verdict(&p->call, &xen_cfg);
	if (rule < 0 || rule >= HV_RULE_COUNT || xen_cfg.action[rule] != HV_XEN_ACT_DENY)
		return 0;
	__sync_fetch_and_add(&xen_stats[HV_XEN_STAT_DENIALS], 1);
	report_denied(p, be, rule, PEND_MMAP);
	return -EPERM;
}

/* Where the kernel lets a file_ioctl program sleep (Linux 6.1 lists it in
 * bpf_lsm.c's sleepable_lsm_hooks): the argument is read as the driver
 * reads it, faulting pages in. mmap_file reads no user memory: it stays
 * the non-sleepable program below in every LSM case. */
SEC("lsm.s/file_ioctl")
int BPF_PROG(xen_lsm_s_file_ioctl, struct file *file, unsigned int cmd, unsigned long arg, int ret)
{
	if (ret)
		return ret;
	return deny_ioctl(file, cmd, arg, HV_XEN_READER_FAULT);
}

SEC("lsm/file_ioctl")
int BPF_PROG(xen_lsm_file_ioctl, struct file *file, unsigned int cmd, unsigned long arg, int ret)
{
	if (ret)
		return ret;
	return deny_ioctl(file, cmd, arg, HV_XEN_READER_NOFAULT);
}

SEC("lsm/mmap_file")
int BPF_PROG(xen_lsm_mmap_file, struct file *file, unsigned long reqprot, unsigned long prot,
	     unsigned long flags, int ret)
{
	if (ret)
		return ret;
	return deny_mmap(file);
}

/* The same, where BPF LSM is off but fentry-class programs load. */
SEC("fmod_ret/security_file_ioctl")
int BPF_PROG(xen_fmod_file_ioctl, struct file *file, unsigned int cmd, unsigned long arg, int ret)
{
	if (ret)
		return ret;
	return deny_ioctl(file, cmd, arg, HV_XEN_READER_NOFAULT);
}

SEC("fmod_ret/security_mmap_file")
int BPF_PROG(xen_fmod_mmap_file, struct file *file, unsigned long prot, unsigned long flags,
	     int ret)
{
	if (ret)
		return ret;
	return deny_mmap(file);
}
