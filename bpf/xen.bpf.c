// SPDX-License-Identifier: GPL-2.0
/*
 * The Xen checker: proves that designated backend processes use gntdev grant
 * mappings and never privcmd foreign mappings, and stops them when told to.
 *
 * Detection runs on syscall tracepoints only (every kernel with BTF has them):
 * ioctl entry/exit on privcmd, gntdev and gntalloc files, mmap/munmap of
 * those files, and exec/fork/exit for who is a backend. Enforcement adds BPF
 * LSM programs (file_ioctl, mmap_file), loaded only where the daemon found
 * BPF LSM active; else the same bodies as fmod_ret programs on
 * security_file_ioctl/security_mmap_file (fentry-class, works where BPF LSM
 * is not in lsm=); where neither loads, "deny" degrades to "kill", which
 * stops the process but cannot stop the call already entered.
 *
 * Cost model: every ioctl on the host passes the type-byte compare ('P' or
 * 'G'); only designated backends go further (one hash lookup), and only
 * their calls on Xen devices are decoded. mmap costs a compare on the fd for
 * everyone; exec and fork one hash lookup.
 */
#include "hvguard.bpf.h"

static __always_inline long hv_xen_read_user(void *dst, __u32 size, __u64 uptr)
{
	return bpf_probe_read_user(dst, size, (const void *)uptr);
}

#include "hvguard/xen_logic.h"

char LICENSE[] SEC("license") = "GPL";

#define EPERM 1

/* Written by userspace before load and while running (module addresses
 * resolved late, rules reloaded). */
struct hv_xen_config xen_cfg = {};
/* Non-zero: emit an exec event for userspace to match globs/cgroups. */
__u32 xen_exec_events = 0;
/* Calls remembered at entry and not yet seen at exit: while zero (nearly
 * always), the exit hooks of every other ioctl and mmap skip their lookup. */
__s64 xen_inflight = 0;

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

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct pending);
} xen_pending SEC(".maps");

/* Scratch, off the 512-byte stack: slot 0 syscall entries, 1 LSM hooks. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct pending);
} xen_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HV_XEN_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} xen_stats SEC(".maps");

static __always_inline void stat_inc(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&xen_stats, &which);

	if (v)
		(*v)++;
}

static __always_inline struct pending *scratch(__u32 slot)
{
	return bpf_map_lookup_elem(&xen_scratch, &slot);
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

static __always_inline struct hv_xen_event *event_new(__u8 kind)
{
	struct hv_xen_event *e = bpf_ringbuf_reserve(&xen_events, sizeof(*e), 0);
	__u64 id = bpf_get_current_pid_tgid();

	if (!e) {
		stat_inc(HV_XEN_STAT_LOST);
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->kind = kind;
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

/* A backend's call broke a rule: act at once where the action is kill (the
 * signal is delivered on the way back to userspace: the call itself may
 * still complete, which the exit event then shows). */
static __always_inline void judge(struct pending *p, struct hv_xen_backend *be)
{
	int rule = hv_xen_verdict(&p->call, &xen_cfg);

	p->rule = -1;
	if (rule < 0 || rule >= HV_RULE_COUNT)
		return;
	p->rule = rule;
	p->action = xen_cfg.action[rule];
	__sync_fetch_and_add(&be->violations, 1);
	stat_inc(HV_XEN_STAT_VIOLATIONS);
	if (p->action == HV_XEN_ACT_KILL) {
		bpf_send_signal(HV_SIGKILL);
		stat_inc(HV_XEN_STAT_KILLS);
		emit_violation(p, 0);
		p->emitted = 1;
	}
}

static __always_inline void remember(struct pending *p)
{
	__u64 id = bpf_get_current_pid_tgid();

	if (bpf_map_update_elem(&xen_pending, &id, p, BPF_ANY))
		stat_inc(HV_XEN_STAT_PENDING_FULL);
	else
		__sync_fetch_and_add(&xen_inflight, 1);
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

SEC("tp/syscalls/sys_enter_ioctl")
int xen_ioctl_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u32 cmd = (__u32)ctx->args[1], type = HV_IOC_TYPE(cmd);
	struct hv_xen_backend *be;
	struct pending *p;
	__u8 dev;

	if (type != HV_IOC_TYPE_PRIVCMD && type != HV_IOC_TYPE_GNT)
		return 0;
	be = current_backend();
	if (!be)
		return 0;
	dev = classify_fd((int)ctx->args[0]);
	if (dev == HV_XEN_DEV_NONE)
		return 0;
	p = scratch(0);
	if (!p)
		return 0;
	stat_inc(HV_XEN_STAT_IOCTLS);
	p->kind = PEND_IOCTL;
	p->emitted = 0;
	p->index = p->addr = p->len = 0;
	hv_xen_decode(&p->call, dev, cmd, ctx->args[2]);
	if (p->call.flags & HV_XEN_F_UNREADABLE) {
		struct hv_xen_event *e = event_new(HV_XEN_EV_BADARG);

		if (e) {
			__builtin_memcpy(&e->call, &p->call, sizeof(e->call));
			bpf_ringbuf_submit(e, 0);
		}
	}
	judge(p, be);
	if ((p->rule >= 0 && !p->emitted) || p->call.op == HV_XEN_OP_GNTDEV_MAP_GRANT_REF ||
	    p->call.op == HV_XEN_OP_GNTDEV_UNMAP_GRANT_REF)
		remember(p);
	return 0;
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

SEC("tp/syscalls/sys_exit_ioctl")
int xen_ioctl_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct hv_xen_backend *be;
	struct pending *p;

	p = recall(id, PEND_IOCTL);
	if (!p)
		return 0;
	if (p->rule >= 0 && !p->emitted)
		emit_violation(p, ctx->ret);
	be = current_backend();
	if (be && ctx->ret == 0) {
		if (p->call.op == HV_XEN_OP_GNTDEV_MAP_GRANT_REF)
			grant_reserved(p, be);
		else if (p->call.op == HV_XEN_OP_GNTDEV_UNMAP_GRANT_REF)
			grant_released(p, be);
	}
	forget(id);
	return 0;
}

/* mmap(addr, len, prot, flags, fd, off) */
SEC("tp/syscalls/sys_enter_mmap")
int xen_mmap_enter(struct trace_event_raw_sys_enter *ctx)
{
	struct hv_xen_backend *be;
	struct pending *p;
	__u8 dev;

	if ((int)ctx->args[4] < 0)
		return 0; /* anonymous: nearly every mmap */
	be = current_backend();
	if (!be)
		return 0;
	dev = classify_fd((int)ctx->args[4]);
	if (dev != HV_XEN_DEV_GNTDEV && dev != HV_XEN_DEV_PRIVCMD)
		return 0;
	p = scratch(0);
	if (!p)
		return 0;
	__builtin_memset(&p->call, 0, sizeof(p->call));
	p->call.dev = dev;
	p->call.op = HV_XEN_OP_MMAP;
	p->call.domid = HV_XEN_DOMID_NONE;
	p->call.bad_domid = HV_XEN_DOMID_NONE;
	p->kind = PEND_MMAP;
	p->emitted = 0;
	p->index = ctx->args[5];
	p->len = ctx->args[1];
	p->addr = 0;
	p->call.count = p->len / 4096;
	judge(p, be);
	if (dev == HV_XEN_DEV_GNTDEV || (p->rule >= 0 && !p->emitted))
		remember(p);
	return 0;
}

SEC("tp/syscalls/sys_exit_mmap")
int xen_mmap_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct hv_xen_grant_key key = {.tgid = id >> 32};
	struct hv_xen_backend *be;
	struct hv_xen_grant *g;
	struct pending *p;

	p = recall(id, PEND_MMAP);
	if (!p)
		return 0;
	if (p->rule >= 0 && !p->emitted) {
		p->addr = ctx->ret >= 0 ? (__u64)ctx->ret : 0;
		emit_violation(p, ctx->ret < 0 ? ctx->ret : 0);
	}
	be = current_backend();
	key.index = p->index;
	g = bpf_map_lookup_elem(&xen_grants, &key);
	/* User addresses are positive as a long; errors are -4095..-1. */
	if (be && g && p->call.dev == HV_XEN_DEV_GNTDEV && ctx->ret >= 0) {
		struct hv_xen_addr_key ak = {.tgid = key.tgid, .addr = (__u64)ctx->ret};
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
	return 0;
}

/* munmap(addr, len): only mappings we saw made. */
SEC("tp/syscalls/sys_enter_munmap")
int xen_munmap_enter(struct trace_event_raw_sys_enter *ctx)
{
	struct hv_xen_addr_key ak = {.tgid = hv_current_tgid(), .addr = ctx->args[0]};
	struct pending *p;
	__u64 *index;

	if (!current_backend())
		return 0;
	index = bpf_map_lookup_elem(&xen_grant_addrs, &ak);
	if (!index)
		return 0;
	p = scratch(0);
	if (!p)
		return 0;
	__builtin_memset(&p->call, 0, sizeof(p->call));
	p->call.dev = HV_XEN_DEV_GNTDEV;
	p->call.domid = HV_XEN_DOMID_NONE;
	p->kind = PEND_MUNMAP;
	p->rule = -1;
	p->emitted = 0;
	p->index = *index;
	p->addr = ak.addr;
	p->len = ctx->args[1];
	remember(p);
	return 0;
}

SEC("tp/syscalls/sys_exit_munmap")
int xen_munmap_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct hv_xen_grant_key key = {.tgid = id >> 32};
	struct hv_xen_addr_key ak = {.tgid = id >> 32};
	struct hv_xen_backend *be;
	struct hv_xen_grant *g;
	struct pending *p;

	p = recall(id, PEND_MUNMAP);
	if (!p)
		return 0;
	be = current_backend();
	key.index = p->index;
	g = bpf_map_lookup_elem(&xen_grants, &key);
	if (be && ctx->ret == 0) {
		ak.addr = p->addr;
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
	forget(id);
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

SEC("tp/sched/sched_process_exec")
int xen_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	__u32 tgid = hv_current_tgid();
	struct hv_xen_match *m;
	struct pending *p;
	char *path;

	if (bpf_map_lookup_elem(&xen_backends, &tgid))
		return 0; /* a backend stays one across exec */
	p = scratch(0);
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

/* A backend's last words: its counts; userspace checks its grants for leaks. */
SEC("tp/sched/sched_process_exit")
int xen_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct hv_xen_backend *be;
	struct hv_xen_event *e;

	if ((__u32)id != tgid)
		return 0;
	be = bpf_map_lookup_elem(&xen_backends, &tgid);
	if (!be)
		return 0;
	e = event_new(HV_XEN_EV_EXIT);
	if (e) {
		__builtin_memcpy(&e->backend, be, sizeof(e->backend));
		bpf_ringbuf_submit(e, 0);
	}
	bpf_map_delete_elem(&xen_backends, &tgid);
	return 0;
}

/* Enforcement: the same decode and verdict, at the LSM hook that runs just
 * before the driver. The user structure is read again here; a caller that
 * rewrites it between this read and the driver's copy could slip a
 * memory-based rule (grant-domain, resource-map); rules decided by the
 * command number (foreign-map, forbidden-hypercall) cannot be raced. */
static __always_inline int deny_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
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
	p = scratch(1);
	if (!p)
		return 0;
	hv_xen_decode(&p->call, dev, cmd, arg);
	rule = hv_xen_verdict(&p->call, &xen_cfg);
	if (rule < 0 || rule >= HV_RULE_COUNT || xen_cfg.action[rule] != HV_XEN_ACT_DENY)
		return 0;
	stat_inc(HV_XEN_STAT_DENIALS);
	return -EPERM;
}

static __always_inline int deny_mmap(struct file *file)
{
	struct hv_xen_backend *be = current_backend();
	struct hv_xen_call call = {};
	int rule;

	if (!be)
		return 0;
	call.dev = classify_file(file);
	if (call.dev != HV_XEN_DEV_PRIVCMD)
		return 0;
	call.op = HV_XEN_OP_MMAP;
	call.domid = HV_XEN_DOMID_NONE;
	call.bad_domid = HV_XEN_DOMID_NONE;
	rule = hv_xen_verdict(&call, &xen_cfg);
	if (rule < 0 || rule >= HV_RULE_COUNT || xen_cfg.action[rule] != HV_XEN_ACT_DENY)
		return 0;
	stat_inc(HV_XEN_STAT_DENIALS);
	return -EPERM;
}

SEC("lsm/file_ioctl")
int BPF_PROG(xen_lsm_file_ioctl, struct file *file, unsigned int cmd, unsigned long arg, int ret)
{
	if (ret)
		return ret;
	return deny_ioctl(file, cmd, arg);
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
	return deny_ioctl(file, cmd, arg);
}

SEC("fmod_ret/security_mmap_file")
int BPF_PROG(xen_fmod_mmap_file, struct file *file, unsigned long prot, unsigned long flags,
	     int ret)
{
	if (ret)
		return ret;
	return deny_mmap(file);
}
