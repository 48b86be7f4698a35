// SPDX-License-Identifier: GPL-2.0
/*
 * The Xen family, userspace side: decides which processes are designated
 * unprivileged backends, configures and loads xen.bpf.c (with the BPF LSM
 * programs where a rule asks for "deny" and BPF LSM is active), and turns
 * its events into alerts, grant lifecycle records and leak checks.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fnmatch.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "hvguard/xen.h" /* before the skeleton, which uses its types */

#include "xen.skel.h"
#include "hvguard.h"
#include "json_util.h"
#include "kallsyms.h"
#include "metrics.h"
#include "rules.h"
#include "xen_user.h"

static struct xen_bpf *skel;

static const char *const dev_paths[HV_XEN_DEV_COUNT] = {
    [HV_XEN_DEV_PRIVCMD] = "/dev/xen/privcmd",
    [HV_XEN_DEV_GNTDEV] = "/dev/xen/gntdev",
    [HV_XEN_DEV_GNTALLOC] = "/dev/xen/gntalloc",
};

static const char *const ioctl_fns[HV_XEN_DEV_COUNT - 1] = {
    "privcmd_ioctl",
    "gntdev_ioctl",
    "gntalloc_ioctl",
};

/* How "deny" is carried out on this host: decided once at load, best first. */
enum enforcement { ENF_NONE, ENF_LSM, ENF_FMOD_RET, ENF_KILL_FALLBACK };

static const char *const enforcement_names[] = {
    [ENF_NONE] = "unused",
    [ENF_LSM] = "bpf-lsm",
    [ENF_FMOD_RET] = "fmod-ret",
    [ENF_KILL_FALLBACK] = "kill-fallback",
};

static const char *const tier_names[HV_XEN_TIER_COUNT] = {
    [HV_XEN_TIER_FENTRY] = "fentry",
    [HV_XEN_TIER_SYSCALLS] = "syscalls",
};

/* What the fentry tier attaches to: in kallsyms once the modules are loaded
 * (libbpf then finds them in the module's BTF). */
static const char *const driver_fns[] = {
    "privcmd_ioctl", "privcmd_mmap",	 "gntdev_ioctl",
    "gntdev_mmap",   "gntdev_vma_close", "gntalloc_ioctl",
};

static const char *const driver_modules[] = {
    "xen-privcmd", "xen-privcmd", "xen-gntdev", "xen-gntdev", "xen-gntdev", "xen-gntalloc",
};

static struct {
	enum hv_xen_tier tier;
	enum enforcement deny;
	bool want_deny;
	char deny_why[400];
	uint64_t grant_ops[HV_XEN_GRANT_OP_COUNT];
	uint64_t backends_seen;
	uint64_t leaks;
	double next_leak_scan, next_resolve;
} st;

static bool xen_present(struct hv_ctx *ctx, char *why, size_t len)
{
	(void)ctx;
	if (!access("/dev/xen/privcmd", F_OK) || !access("/proc/xen", F_OK))
		return true;
	snprintf(why, len, "no Xen on this host (neither /dev/xen/privcmd nor /proc/xen)");
	return false;
}

/* --- which processes are backends ------------------------------------- */

static bool has_glob(const char *s)
{
	return s && strpbrk(s, "*?[") != NULL;
}

static int proc_uid(int pid, int64_t *uid)
{
	char path[64], buf[2048], *p;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if (hv_read_file(path, buf, sizeof(buf)) < 0)
		return -1;
	p = strstr(buf, "\nUid:");
	if (!p)
		return -1;
	*uid = strtoll(p + 5, NULL, 10); /* the real uid, as the BPF side sees it */
	return 0;
}

static int proc_cgroup(int pid, char *buf, size_t len)
{
	char path[64], raw[4096], *p;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
	if (hv_read_file(path, raw, sizeof(raw)) < 0)
		return -1;
	p = strstr(raw, "0::"); /* cgroup v2 */
	if (!p)
		return -1;
	p += 3;
	snprintf(buf, len, "%.*s", (int)strcspn(p, "\n"), p);
	return 0;
}

/* Index of the first backend entry of the rules this process matches
 * (every field given must match; globs as fnmatch without FNM_PATHNAME, so
 * '*' also spans '/'), or -1. */
static int match_process(const struct hv_rules *r, int pid)
{
	char path[64], exe[4096], comm[64], cg[4096];
	bool have_exe = false, have_comm = false, have_cg = false, have_uid = false;
	int64_t uid = -1;
	ssize_t n;

	for (size_t i = 0; i < r->n_backends; i++) {
		const struct hv_backend_match *b = &r->backends[i];

		if (b->exe && !have_exe) {
			snprintf(path, sizeof(path), "/proc/%d/exe", pid);
			n = readlink(path, exe, sizeof(exe) - 1);
			if (n <= 0)
				return -1; /* kernel thread or gone */
			exe[n] = '\0';
			have_exe = true;
		}
		if (b->comm && !have_comm) {
			if (hv_proc_comm(pid, comm, sizeof(comm)))
				return -1;
			have_comm = true;
		}
		if (b->cgroup && !have_cg) {
			if (proc_cgroup(pid, cg, sizeof(cg)))
				cg[0] = '\0';
			have_cg = true;
		}
		if (b->uid >= 0 && !have_uid) {
			if (proc_uid(pid, &uid))
				return -1;
			have_uid = true;
		}
		if (b->exe && fnmatch(b->exe, exe, 0))
			continue;
		if (b->comm && fnmatch(b->comm, comm, 0))
			continue;
		if (b->cgroup && fnmatch(b->cgroup, cg, 0))
			continue;
		if (b->uid >= 0 && b->uid != uid)
			continue;
		return (int)i;
	}
	return -1;
}

/* The "xen-backend" record: pid designated, how ("running", "exec",
 * "inherited") and, when inherited, from which parent. */
static void emit_backend(struct hv_ctx *ctx, int pid, int match, const char *how, int parent)
{
	struct json_object *o = json_object_new_object();
	const struct hv_backend_match *b = NULL;
	char comm[64] = "";

	if (match >= 0 && (size_t)match < ctx->rules->n_backends)
		b = &ctx->rules->backends[match];
	hv_proc_comm(pid, comm, sizeof(comm));
	st.backends_seen++;
	hv_json_add_str(o, "type", "xen-backend");
	hv_json_add_int(o, "pid", pid);
	hv_json_add_str(o, "comm", comm);
	hv_json_add_str(o, "backend", b ? b->name : NULL);
	hv_json_add_str(o, "how", how);
	hv_json_add_int_or_null(o, "parent", parent != 0, parent);
	hv_log(ctx, "xen: %s[%d] is a designated backend (%s%s%s)", comm, pid, how,
	       b && b->name ? ", " : "", b && b->name ? b->name : "");
	hv_emit_json(ctx, o);
}

static void designate(struct hv_ctx *ctx, int pid, int match, const char *how)
{
	struct hv_xen_backend be = {.match = (__u32)match};
	__u32 key = pid;

	if (bpf_map_update_elem(bpf_map__fd(skel->maps.xen_backends), &key, &be, BPF_NOEXIST))
		return; /* already designated (by the kernel at exec, or a fork) */
	emit_backend(ctx, pid, match, how, 0);
}

static int consider_process(int pid, void *arg)
{
	struct hv_ctx *ctx = arg;
	int match = match_process(ctx->rules, pid);

	if (match >= 0)
		designate(ctx, pid, match, "running");
	return 0;
}

static void scan_processes(struct hv_ctx *ctx)
{
	hv_proc_for_each_pid(consider_process, ctx);
}

/* Entries the kernel can decide alone at exec, so a backend is watched from
 * its first instruction: exact comm, or exact exe path, with an optional uid.
 * Everything else (globs, cgroups, combinations) goes through an exec event
 * and userspace, which leaves a short window (documented). */
static int configure_matches(struct hv_ctx *ctx)
{
	const struct hv_rules *r = ctx->rules;
	bool need_exec_events = false;

	for (size_t i = 0; i < r->n_backends; i++) {
		const struct hv_backend_match *b = &r->backends[i];
		struct hv_xen_match m = {.uid = b->uid, .index = (__u32)i};
		char key[HV_XEN_PATH_MAX] = "";
		int fd = -1;

		if (b->comm && !b->exe && !b->cgroup && !has_glob(b->comm) &&
		    strlen(b->comm) < HV_XEN_COMM_LEN) {
			strncpy(key, b->comm, HV_XEN_COMM_LEN - 1);
			fd = bpf_map__fd(skel->maps.xen_match_comm);
		} else if (b->exe && !b->comm && !b->cgroup && !has_glob(b->exe) &&
			   strlen(b->exe) < HV_XEN_PATH_MAX) {
			strncpy(key, b->exe, HV_XEN_PATH_MAX - 1);
			fd = bpf_map__fd(skel->maps.xen_match_exe);
			need_exec_events = true; /* exec'd through a relative path or link */
		} else {
			need_exec_events = true;
		}
		if (fd >= 0 && bpf_map_update_elem(fd, key, &m, BPF_ANY))
			return -errno;
	}
	skel->bss->xen_exec_events = need_exec_events;
	return 0;
}

/* --- configuration ---------------------------------------------------- */

static void resolve_devices(struct hv_xen_config *cfg, bool quiet)
{
	uint64_t addrs[HV_XEN_DEV_COUNT - 1];
	struct stat sb;
	int n;

	n = hv_kallsyms_lookup(ioctl_fns, addrs, HV_XEN_DEV_COUNT - 1);
	for (int d = HV_XEN_DEV_PRIVCMD; d < HV_XEN_DEV_COUNT; d++) {
		if (n >= 0)
			cfg->ioctl_fn[d] = addrs[d - 1];
		if (!stat(dev_paths[d], &sb) && S_ISCHR(sb.st_mode))
			cfg->rdev[d] = major(sb.st_rdev) << 20 | minor(sb.st_rdev);
		if (!quiet && !cfg->ioctl_fn[d])
			hv_warn("xen: %s not in /proc/kallsyms (module not loaded yet?): "
				"recognising %s by device number %s",
				ioctl_fns[d - 1], dev_paths[d],
				cfg->rdev[d] ? "" : "(absent too: retried every 5 s)");
	}
}

static bool bpf_lsm_active(char *why, size_t len)
{
	char buf[512], *tok, *save;

	if (hv_read_file("/sys/kernel/security/lsm", buf, sizeof(buf)) < 0) {
		snprintf(why, len,
			 "cannot read /sys/kernel/security/lsm (securityfs not mounted?)");
		return false;
	}
	buf[strcspn(buf, "\n")] = '\0';
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		if (!strcmp(tok, "bpf"))
			return true;
	snprintf(why, len, "BPF LSM is not active (boot with lsm=...,bpf)");
	return false;
}

static __u8 bpf_action(enum hv_action a)
{
	switch (a) {
	case HV_ACT_KILL:
		return HV_XEN_ACT_KILL;
	case HV_ACT_DENY:
		return st.deny == ENF_LSM || st.deny == ENF_FMOD_RET ? HV_XEN_ACT_DENY
								     : HV_XEN_ACT_KILL;
	default:
		return HV_XEN_ACT_ALERT;
	}
}

static void configure(struct hv_ctx *ctx, struct hv_xen_config *cfg)
{
	const struct hv_rules *r = ctx->rules;

	memset(cfg, 0, sizeof(*cfg));
	resolve_devices(cfg, false);
	for (int i = HV_RULE_FOREIGN_MAP; i < HV_XEN_RULES_END; i++) {
		if (!r->rule[i].enabled || i == HV_RULE_GRANT_LEAK)
			continue; /* grant-leak is decided by userspace */
		cfg->action[i] = bpf_action(r->rule[i].action);
	}
	cfg->target_domain = r->target_domain >= 0 ? r->target_domain : HV_XEN_DOMID_NONE;
	for (size_t i = 0; i < r->n_allowed_frontends; i++)
		hv_xen_allow_domid(cfg, r->allowed_frontends[i]);
	if (!r->n_allowed_frontends && r->rule[HV_RULE_GRANT_DOMAIN].enabled)
		hv_warn("xen: no allowed_frontends in the rules: grant-domain cannot fire");
	if (!r->n_backends)
		hv_warn("xen: no backends in the rules: nothing is watched (see "
			"rules/xen-example.yaml)");
}

void hv_xen_allow_domid(struct hv_xen_config *cfg, __u32 domid)
{
	if (domid >= HV_XEN_DOMID_LIMIT)
		return;
	cfg->allowed[domid / 64] |= 1ull << (domid % 64);
	cfg->n_allowed++;
}

static bool rules_want_deny(const struct hv_rules *r)
{
	for (int i = HV_RULE_FOREIGN_MAP; i < HV_XEN_RULES_END; i++)
		if (r->rule[i].enabled && r->rule[i].action == HV_ACT_DENY)
			return true;
	return false;
}

/* --- events ------------------------------------------------------------ */

static struct json_object *refs_json(const struct hv_xen_call *c)
{
	struct json_object *a = json_object_new_array();

	for (unsigned i = 0; i < c->n_refs && i < HV_XEN_MAX_REFS; i++)
		json_object_array_add(a, json_object_new_int64(c->refs[i]));
	return a;
}

/* A domain id, null when there is none. */
static void json_add_domid(struct json_object *o, const char *key, __s32 domid)
{
	hv_json_add_int_or_null(o, key, domid != HV_XEN_DOMID_NONE, domid);
}

static const char *enforcement_name(__u8 action, __s64 ret)
{
	switch (action) {
	case HV_XEN_ACT_KILL:
		return "killed";
	case HV_XEN_ACT_DENY:
		return ret == -1 ? "denied" : "deny-failed";
	}
	return "none";
}

/* "domain 5", "itself (DOMID_SELF)", "an unreadable domain". */
static void domain_words(char *buf, size_t len, __s32 domid)
{
	if (domid == HV_XEN_DOMID_NONE)
		snprintf(buf, len, "an unknown domain (arguments unreadable)");
	else if (domid == 0x7ff0)
		snprintf(buf, len, "its own domain (DOMID_SELF)");
	else
		snprintf(buf, len, "domain %d", domid);
}

static void describe(char *buf, size_t len, const struct hv_xen_event *e, const char *ioctl)
{
	const struct hv_xen_call *c = &e->call;
	/* Killed at entry: the outcome is unknown; otherwise ret tells. */
	bool failed = e->action != HV_XEN_ACT_KILL && e->ret < 0;
	const char *verb = failed ? "tried to map" : "mapped";
	const char *outcome =
	    e->action == HV_XEN_ACT_KILL
		? "; SIGKILL sent at the call (the call itself may have completed)"
	    : e->action == HV_XEN_ACT_DENY ? "; refused with EPERM before the driver ran"
	    : failed			   ? "; the call failed"
					   : "";
	char dom[64];

	domain_words(dom, sizeof(dom), e->rule == HV_RULE_GRANT_DOMAIN ? c->bad_domid : c->domid);
	switch (e->rule) {
	case HV_RULE_FOREIGN_MAP:
		if (c->op == HV_XEN_OP_MMAP)
			snprintf(
			    buf, len,
			    "backend %s[%u] mmapped privcmd, which only serves foreign mappings "
			    "when no target_domain is configured%s",
			    e->comm, e->pid, outcome);
		else
			snprintf(buf, len,
				 "backend %s[%u] %s foreign memory of %s through privcmd (%s, %llu "
				 "page(s)): it must use grants only; find the code path in it that "
				 "calls xenforeignmemory%s",
				 e->comm, e->pid, verb, dom, ioctl, (unsigned long long)c->count,
				 outcome);
		break;
	case HV_RULE_FORBIDDEN_HYPERCALL:
		snprintf(
		    buf, len,
		    "backend %s[%u] issued raw hypercall %llu through privcmd: an unprivileged "
		    "backend has no use for it (it can create foreign mappings)%s",
		    e->comm, e->pid, (unsigned long long)c->hypercall, outcome);
		break;
	case HV_RULE_RESOURCE_MAP:
		if (c->unchecked) {
			snprintf(buf, len,
				 "backend %s[%u] made %s with an argument hvguard could not read: "
				 "with action %s, what cannot be checked is refused%s",
				 e->comm, e->pid, ioctl,
				 e->action == HV_XEN_ACT_KILL ? "kill" : "deny", outcome);
			break;
		}
		snprintf(buf, len,
			 "backend %s[%u] %s resource type %u of %s (only ioreq_server pages of the "
			 "target domain are allowed)%s",
			 e->comm, e->pid, verb, c->resource_type, dom, outcome);
		break;
	case HV_RULE_GRANT_DOMAIN:
		if (c->unchecked) {
			snprintf(
			    buf, len,
			    "backend %s[%u] made %s with %llu grant(s) hvguard could not check "
			    "(%s): with action %s, what cannot be checked is refused%s",
			    e->comm, e->pid, ioctl, (unsigned long long)c->count,
			    c->unchecked == HV_XEN_UNCHECKED_TRUNCATED
				? "more than it walks, " HV_XEN_WALK_MAX_STR
				: "its argument was unreadable to it",
			    e->action == HV_XEN_ACT_KILL ? "kill" : "deny", outcome);
			break;
		}
		snprintf(
		    buf, len,
		    "backend %s[%u] used a grant of %s, which is not an allowed frontend (%s): "
		    "add it to allowed_frontends if it should be served%s",
		    e->comm, e->pid, dom, ioctl, outcome);
		break;
	default:
		snprintf(buf, len, "backend %s[%u]: %s", e->comm, e->pid, ioctl);
	}
}

/* A violation: the alert, with the call's fields. */
static void handle_violation(struct hv_ctx *ctx, const struct hv_xen_event *e)
{
	const struct hv_xen_call *c = &e->call;
	const char *ioctl = hv_xen_op_name(c->op);
	const struct hv_rule *rule;
	struct hv_alert a = {0};
	struct json_object *f;
	char comm[HV_XEN_COMM_LEN + 1];

	if (e->rule >= HV_RULE_COUNT)
		return;
	rule = &ctx->rules->rule[e->rule];
	snprintf(comm, sizeof(comm), "%s", e->comm);
	f = json_object_new_object();
	hv_json_add_str(f, "ioctl", ioctl);
	hv_json_add_str(f, "device", hv_xen_dev_name(c->dev));
	json_add_domid(f, "domid", e->rule == HV_RULE_GRANT_DOMAIN ? c->bad_domid : c->domid);
	hv_json_add_uint(f, "pages", c->count);
	json_object_object_add(f, "refs", refs_json(c));
	if (c->op == HV_XEN_OP_PRIVCMD_HYPERCALL)
		hv_json_add_uint(f, "hypercall", c->hypercall);
	if (c->op == HV_XEN_OP_PRIVCMD_MMAP_RESOURCE)
		hv_json_add_int(f, "resource_type", c->resource_type);
	if (c->addr)
		hv_json_add_uint(f, "addr", c->addr);
	hv_json_add_int(f, "ret", e->ret);
	hv_json_add_str(f, "enforcement", enforcement_name(e->action, e->ret));
	if (c->unchecked) {
		hv_json_add_str(f, "unchecked", hv_xen_unchecked_name(c->unchecked));
		hv_json_add_int(f, "checked", c->checked);
	}
	if (c->flags & (HV_XEN_F_UNREADABLE | HV_XEN_F_TRUNCATED | HV_XEN_F_HUGE))
		hv_json_add_str(f, "decode",
				c->flags & HV_XEN_F_UNREADABLE ? "unreadable"
				: c->flags & HV_XEN_F_HUGE     ? "huge-count"
							       : "truncated");
	a.rule = hv_rule_table[e->rule].id;
	a.severity = rule->severity;
	a.action = rule->action;
	a.pid = e->pid;
	a.tid = e->tid;
	a.comm = comm;
	a.vm = -1;
	a.vcpu = -1;
	a.ts_ns = e->ts_ns;
	a.fields = f;
	describe(a.message, sizeof(a.message), e, ioctl);
	hv_emit_alert(ctx, &a);
}

/* A grant lifecycle step: counted, and the "grant" record. */
static void handle_grant(struct hv_ctx *ctx, const struct hv_xen_event *e)
{
	struct json_object *o = json_object_new_object();
	char comm[HV_XEN_COMM_LEN + 1], labels[64];
	const char *op = hv_xen_grant_op_name(e->grant_op);

	snprintf(comm, sizeof(comm), "%s", e->comm);
	if (e->grant_op < HV_XEN_GRANT_OP_COUNT)
		st.grant_ops[e->grant_op]++;
	snprintf(labels, sizeof(labels), "op=\"%s\"", op);
	hv_metrics_add(ctx->metrics, "hvguard_xen_grant_ops_total", HV_COUNTER,
		       "Grant lifecycle steps of designated Xen backends", labels, 1);
	hv_json_add_str(o, "type", "grant");
	hv_json_add_str(o, "op", op);
	hv_json_add_uint(o, "ts_ns", e->ts_ns);
	hv_json_add_int(o, "pid", e->pid);
	hv_json_add_str(o, "comm", comm);
	hv_json_add_uint(o, "index", e->index);
	hv_json_add_uint_or_null(o, "addr", e->addr, e->addr);
	json_add_domid(o, "domid", e->call.domid);
	hv_json_add_uint(o, "pages", e->call.count);
	json_object_object_add(o, "refs", refs_json(&e->call));
	hv_log(ctx, "xen: %s[%u] grant %s index %llu", comm, e->pid, op,
	       (unsigned long long)e->index);
	hv_emit_json(ctx, o);
}

static void leak_alert(struct hv_ctx *ctx, int pid, const char *comm, const char *why,
		       const struct hv_xen_grant *g, uint64_t index, int n_more)
{
	struct hv_alert a = {0};
	struct json_object *f = json_object_new_object();
	const struct hv_rule *rule = &ctx->rules->rule[HV_RULE_GRANT_LEAK];
	struct json_object *refs = json_object_new_array();

	json_object_array_add(refs, json_object_new_int64(g->first_ref));
	hv_json_add_str(f, "ioctl", "IOCTL_GNTDEV_MAP_GRANT_REF");
	json_add_domid(f, "domid", g->domid);
	hv_json_add_int(f, "pages", g->count);
	json_object_object_add(f, "refs", refs);
	hv_json_add_uint(f, "index", index);
	hv_json_add_str(f, "leak", why);
	hv_json_add_int(f, "other_leaks", n_more);
	hv_json_add_str(f, "enforcement", "none");
	a.rule = hv_rule_table[HV_RULE_GRANT_LEAK].id;
	a.severity = rule->severity;
	a.action = rule->action;
	a.pid = pid;
	a.tid = pid;
	a.comm = comm;
	a.vm = -1;
	a.vcpu = -1;
	a.ts_ns = hv_now_ns(CLOCK_BOOTTIME);
	a.fields = f;
	snprintf(a.message, sizeof(a.message),
		 "backend %s[%d]: grant ref %u of domain %d (%u page(s), index %llu) %s%s; the "
		 "frontend cannot reuse it until released",
		 comm, pid, g->first_ref, g->domid, g->count, (unsigned long long)index, why,
		 n_more ? " (and more, see other_leaks)" : "");
	st.leaks++;
	hv_emit_alert(ctx, &a);
}

static const char *leak_why(const struct hv_xen_grant *g)
{
	return g->state == HV_XEN_GRANT_MAPPED	   ? "was still mapped at exit"
	       : g->state == HV_XEN_GRANT_RESERVED ? "was reserved and never mapped"
						   : "was never released (no UNMAP_GRANT_REF)";
}

/* The "xen-backend-exit" record: the backend's final counts. */
static void emit_backend_exit(struct hv_ctx *ctx, const struct hv_xen_event *e, const char *comm,
			      int leaks)
{
	struct json_object *o = json_object_new_object();

	hv_json_add_str(o, "type", "xen-backend-exit");
	hv_json_add_int(o, "pid", e->pid);
	hv_json_add_str(o, "comm", comm);
	for (int op = 0; op < HV_XEN_GRANT_OP_COUNT; op++)
		hv_json_add_uint(o, hv_xen_grant_op_name(op), e->backend.ops[op]);
	hv_json_add_int(o, "reserved", e->backend.reserved);
	hv_json_add_int(o, "mapped", e->backend.mapped);
	hv_json_add_uint(o, "violations", e->backend.violations);
	hv_json_add_int(o, "leaks", leaks);
	hv_emit_json(ctx, o);
}

/* At exit: what the backend still held is a leak (the kernel cleans up after
 * it, but a backend that forgets grants starves its frontend while it lives). */
static void handle_backend_exit(struct hv_ctx *ctx, const struct hv_xen_event *e)
{
	int fd = bpf_map__fd(skel->maps.xen_grants);
	struct hv_xen_grant_key key, *prev = NULL, *mine = NULL, *grown;
	struct hv_xen_grant g, first = {0};
	uint64_t first_index = 0;
	size_t n = 0, cap = 0;
	char comm[HV_XEN_COMM_LEN + 1];
	int leaks = 0;

	snprintf(comm, sizeof(comm), "%s", e->comm);
	/* Walk once, collect this process's keys, delete after the walk. */
	while (!bpf_map_get_next_key(fd, prev, &key)) {
		prev = &key;
		if (key.tgid != e->pid || bpf_map_lookup_elem(fd, &key, &g))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			grown = realloc(mine, cap * sizeof(*mine));
			if (!grown)
				break;
			mine = grown;
		}
		mine[n++] = key;
		if (g.leak_reported || leaks++)
			continue;
		first = g;
		first_index = key.index;
	}
	for (size_t i = 0; i < n; i++)
		bpf_map_delete_elem(fd, &mine[i]);
	free(mine);
	if (leaks && ctx->rules->rule[HV_RULE_GRANT_LEAK].enabled)
		leak_alert(ctx, e->pid, comm, leak_why(&first), &first, first_index, leaks - 1);
	emit_backend_exit(ctx, e, comm, leaks);
}

/*
 * The record of a call hvguard could not check, said as information, not
 * alerted: "xen-bad-argument" (a backend's Xen ioctl whose argument it could
 * not read) and "xen-unchecked" (a call a rule with action alert could not
 * fully check, docs/xen.md, "Fail closed"). One shape; the second also says
 * when, which rule and why, and how far the check went.
 */
static void emit_unchecked_call(struct hv_ctx *ctx, const struct hv_xen_event *e, const char *rule,
				const char *msg)
{
	bool unchecked = e->type == HV_XEN_EV_UNCHECKED;
	struct json_object *o = json_object_new_object();
	char comm[HV_XEN_COMM_LEN + 1];

	snprintf(comm, sizeof(comm), "%s", e->comm);
	hv_json_add_str(o, "type", unchecked ? "xen-unchecked" : "xen-bad-argument");
	if (unchecked)
		hv_json_add_uint(o, "ts_ns", e->ts_ns);
	hv_json_add_int(o, "pid", e->pid);
	hv_json_add_str(o, "comm", comm);
	if (unchecked)
		hv_json_add_str(o, "rule", rule);
	hv_json_add_str(o, "ioctl", hv_xen_op_name(e->call.op));
	if (unchecked)
		hv_json_add_str(o, "unchecked", hv_xen_unchecked_name(e->call.unchecked));
	hv_json_add_uint(o, "arg", e->call.uarg);
	hv_json_add_uint(o, "count", e->call.count);
	if (unchecked)
		hv_json_add_int(o, "checked", e->call.checked);
	else
		hv_json_add_int(o, "refs_read", e->call.n_refs);
	hv_json_add_str(o, "message", msg);
	hv_log(ctx, "xen: %s", msg);
	hv_emit_json(ctx, o);
}

static void handle_bad_argument(struct hv_ctx *ctx, const struct hv_xen_event *e)
{
	char comm[HV_XEN_COMM_LEN + 1], msg[256];

	snprintf(comm, sizeof(comm), "%s", e->comm);
	snprintf(msg, sizeof(msg),
		 "backend %s[%u] passed %s an argument hvguard could not read (pointer %#llx): the "
		 "driver will refuse it too; a working backend does not do this",
		 comm, e->pid, hv_xen_op_name(e->call.op), (unsigned long long)e->call.uarg);
	emit_unchecked_call(ctx, e, NULL, msg);
}

static void handle_unchecked(struct hv_ctx *ctx, const struct hv_xen_event *e)
{
	const char *why = hv_xen_unchecked_name(e->call.unchecked);
	const char *rule = e->rule < HV_RULE_COUNT ? hv_rule_table[e->rule].id : "?";
	char comm[HV_XEN_COMM_LEN + 1], msg[400];

	snprintf(comm, sizeof(comm), "%s", e->comm);
	snprintf(msg, sizeof(msg),
		 "backend %s[%u]: %s could not be fully checked for %s (%s: %s); the rule's "
		 "action is alert, so it went on; with deny or kill it would have been refused",
		 comm, e->pid, hv_xen_op_name(e->call.op), rule, why,
		 e->call.unchecked == HV_XEN_UNCHECKED_TRUNCATED
		     ? "more refs or segments than hvguard walks, " HV_XEN_WALK_MAX_STR
		     : "hvguard could not read its argument");
	emit_unchecked_call(ctx, e, rule, msg);
}

static int xen_ring_event(void *arg, void *data, size_t size)
{
	struct hv_ctx *ctx = arg;
	const struct hv_xen_event *e = data;
	int match;

	if (size < sizeof(*e))
		return 0;
	switch (e->type) {
	case HV_XEN_EV_VIOLATION:
		handle_violation(ctx, e);
		break;
	case HV_XEN_EV_GRANT:
		handle_grant(ctx, e);
		break;
	case HV_XEN_EV_EXIT:
		handle_backend_exit(ctx, e);
		break;
	case HV_XEN_EV_BADARG:
		handle_bad_argument(ctx, e);
		break;
	case HV_XEN_EV_UNCHECKED:
		handle_unchecked(ctx, e);
		break;
	case HV_XEN_EV_DESIGNATED:
		emit_backend(ctx, e->pid, e->backend.match, e->ppid ? "inherited" : "exec",
			     e->ppid);
		break;
	case HV_XEN_EV_EXEC:
		match = match_process(ctx->rules, e->pid);
		if (match >= 0)
			designate(ctx, e->pid, match, "exec");
		break;
	}
	return 0;
}

/* Reservations never mapped for longer than grant_leak_after: raised once. */
static void scan_reserved_leaks(struct hv_ctx *ctx)
{
	int fd = bpf_map__fd(skel->maps.xen_grants);
	struct hv_xen_grant_key key, *prev = NULL;
	uint64_t now = hv_now_ns(CLOCK_BOOTTIME), after = ctx->rules->grant_leak_after_ns;
	struct hv_xen_grant g;
	char comm[64], why[96];

	if (!ctx->rules->rule[HV_RULE_GRANT_LEAK].enabled || !after)
		return;
	while (!bpf_map_get_next_key(fd, prev, &key)) {
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &g) || g.leak_reported ||
		    g.state != HV_XEN_GRANT_RESERVED || now - g.reserved_ns < after)
			continue;
		g.leak_reported = 1;
		bpf_map_update_elem(fd, &key, &g, BPF_EXIST);
		if (hv_proc_comm(key.tgid, comm, sizeof(comm)))
			snprintf(comm, sizeof(comm), "?");
		snprintf(why, sizeof(why), "was reserved %.1f s ago and never mapped",
			 (now - g.reserved_ns) / 1e9);
		leak_alert(ctx, key.tgid, comm, why, &g, key.index, 0);
	}
}

/* --- family interface -------------------------------------------------- */

/* Which tier a program belongs to, by its section; -1: both (exec, fork,
 * exit, and the deny programs, chosen apart). */
static int program_tier(const struct bpf_program *prog)
{
	const char *sec = bpf_program__section_name(prog);

	if (!strncmp(sec, "tracepoint/syscalls/", 20))
		return HV_XEN_TIER_SYSCALLS;
	if (!strncmp(sec, "fentry/", 7) || !strncmp(sec, "fexit/", 6))
		return HV_XEN_TIER_FENTRY;
	return -1;
}

static int open_and_load(struct hv_ctx *ctx, enum enforcement deny)
{
	struct bpf_program *prog;
	int err;

	skel = xen_bpf__open();
	if (!skel) {
		hv_err("cannot open the Xen BPF programs: %s", strerror(errno));
		return -errno;
	}
	bpf_object__for_each_program(prog, skel->obj) {
		int tier = program_tier(prog);

		if (tier >= 0)
			bpf_program__set_autoload(prog, tier == (int)st.tier);
	}
	skel->rodata->xen_tier = st.tier;
	bpf_program__set_autoload(skel->progs.xen_lsm_file_ioctl, deny == ENF_LSM);
	bpf_program__set_autoload(skel->progs.xen_lsm_mmap_file, deny == ENF_LSM);
	bpf_program__set_autoload(skel->progs.xen_fmod_file_ioctl, deny == ENF_FMOD_RET);
	bpf_program__set_autoload(skel->progs.xen_fmod_mmap_file, deny == ENF_FMOD_RET);
	st.deny = deny;
	configure(ctx, &skel->bss->xen_cfg);
	err = xen_bpf__load(skel);
	if (err)
		goto fail;
	err = xen_bpf__attach(skel);
	if (err)
		goto fail;
	return 0;
fail:
	xen_bpf__destroy(skel);
	skel = NULL;
	return err;
}

/* Loads with the best way to deny this host offers: BPF LSM where it is
 * active (an attached LSM program of an inactive BPF LSM never runs, so the
 * attach proves nothing: /sys/kernel/security/lsm decides), else fmod_ret on
 * the security_* functions, else kill; all on the tier in st.tier, whose
 * programs alone are the last attempt (its failure is the tier's). */
static int load_with_deny(struct hv_ctx *ctx)
{
	char lsm_why[160];
	int err;

	if (!rules_want_deny(ctx->rules))
		return open_and_load(ctx, ENF_NONE);
	if (bpf_lsm_active(lsm_why, sizeof(lsm_why))) {
		err = open_and_load(ctx, ENF_LSM);
		if (!err)
			return 0;
		snprintf(lsm_why, sizeof(lsm_why), "the kernel refused the BPF LSM programs (%s)",
			 strerror(-err));
	}
	err = open_and_load(ctx, ENF_FMOD_RET);
	if (!err) {
		hv_warn("xen: %s; action 'deny' is enforced through fmod_ret programs on "
			"security_file_ioctl and security_mmap_file instead",
			lsm_why);
		return 0;
	}
	snprintf(st.deny_why, sizeof(st.deny_why), "%s, and fmod_ret programs do not load (%s)",
		 lsm_why, strerror(-err));
	err = open_and_load(ctx, ENF_KILL_FALLBACK);
	if (!err)
		hv_warn("xen: action 'deny' is not available: %s; offenders are killed instead "
			"(SIGKILL at the call: the call already entered may complete)",
			st.deny_why);
	return err;
}

/* The fentry tier needs every driver function it hooks: a module not
 * loaded yet has no BTF to attach to. */
static bool driver_functions_present(char *why, size_t len)
{
	size_t n = sizeof(driver_fns) / sizeof(driver_fns[0]);
	uint64_t addrs[sizeof(driver_fns) / sizeof(driver_fns[0])];
	int found = hv_kallsyms_lookup(driver_fns, addrs, (int)n);

	if (found < 0) {
		snprintf(why, len, "cannot read /proc/kallsyms: %s", strerror(-found));
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (addrs[i])
			continue;
		snprintf(why, len, "%s is not in /proc/kallsyms (module %s not loaded?)",
			 driver_fns[i], driver_modules[i]);
		return false;
	}
	return true;
}

static bool syscall_tracepoints_present(void)
{
	return !access("/sys/kernel/tracing/events/syscalls/sys_enter_ioctl", F_OK) ||
	       !access("/sys/kernel/debug/tracing/events/syscalls/sys_enter_ioctl", F_OK);
}

static int load_tier(struct hv_ctx *ctx, enum hv_xen_tier tier, char *why, size_t len)
{
	int err;

	if (tier == HV_XEN_TIER_FENTRY && !driver_functions_present(why, len))
		return -ENOENT;
	if (tier == HV_XEN_TIER_SYSCALLS && !syscall_tracepoints_present()) {
		snprintf(why, len,
			 "the kernel has no syscall tracepoints (CONFIG_FTRACE_SYSCALLS)");
		return -ENOENT;
	}
	st.tier = tier;
	err = load_with_deny(ctx);
	if (err)
		snprintf(why, len, "cannot load or attach the programs: %s (-v shows libbpf's log)",
			 strerror(-err));
	return err;
}

/* The tier asked for with --xen-hooks, else the best that loads: fentry on
 * the drivers, else the syscall tracepoints, and a fallback is said. */
static int load_best_tier(struct hv_ctx *ctx)
{
	int want = -1, err = -ENOENT;
	char why[400] = "";

	for (int t = 0; t < HV_XEN_TIER_COUNT; t++)
		if (ctx->opts.xen_hooks && !strcmp(ctx->opts.xen_hooks, tier_names[t]))
			want = t;
	for (int t = 0; t < HV_XEN_TIER_COUNT; t++) {
		if (want >= 0 && t != want)
			continue;
		err = load_tier(ctx, t, why, sizeof(why));
		if (!err) {
			hv_xen_family.hooks = tier_names[t];
			return 0;
		}
		if (want >= 0) {
			hv_err("xen checks on --xen-hooks %s: %s", tier_names[t], why);
			return err;
		}
		if (t == HV_XEN_TIER_FENTRY)
			hv_warn(
			    "xen checks: fentry on the Xen drivers did not load (%s); falling back "
			    "to the syscall tracepoints, which cost every thread of the host",
			    why);
	}
	hv_err("xen checks: no hook tier loads: %s", why);
	return err;
}

static int xen_load(struct hv_ctx *ctx)
{
	int err;

	memset(&st, 0, sizeof(st));
	st.want_deny = rules_want_deny(ctx->rules);
	err = load_best_tier(ctx);
	if (err)
		return err;
	err = configure_matches(ctx);
	if (!err)
		err = hv_ring_add(ctx, bpf_map__fd(skel->maps.xen_events), xen_ring_event);
	if (err) {
		hv_err("cannot set up the Xen checks: %s", strerror(-err));
		xen_bpf__destroy(skel);
		skel = NULL;
		return err;
	}
	scan_processes(ctx);
	st.next_leak_scan = st.next_resolve = (hv_now_ns(CLOCK_MONOTONIC) / 1e9) + 1;
	return 0;
}

/* The BPF side's counters (its .bss xen_stats[]), 0 while not loaded. */
static uint64_t xen_stat(enum hv_xen_stat which)
{
	return skel ? skel->bss->xen_stats[which] : 0;
}

static const enum hv_xen_stat unchecked_stats[HV_XEN_UNCHECKED_COUNT] = {
    [HV_XEN_UNCHECKED_UNREADABLE] = HV_XEN_STAT_UNCHECKED_UNREADABLE,
    [HV_XEN_UNCHECKED_TRUNCATED] = HV_XEN_STAT_UNCHECKED_TRUNCATED,
};

/* {"unreadable": N, "truncated": N}: calls a rule could not fully check. */
static struct json_object *unchecked_json(void)
{
	struct json_object *o = json_object_new_object();

	for (int why = HV_XEN_UNCHECKED_UNREADABLE; why < HV_XEN_UNCHECKED_COUNT; why++)
		hv_json_add_uint(o, hv_xen_unchecked_name(why), xen_stat(unchecked_stats[why]));
	return o;
}

static void export_unchecked(struct hv_ctx *ctx)
{
	char labels[64];

	for (int why = HV_XEN_UNCHECKED_UNREADABLE; why < HV_XEN_UNCHECKED_COUNT; why++) {
		snprintf(labels, sizeof(labels), "cause=\"%s\"", hv_xen_unchecked_name(why));
		hv_metrics_set(
		    ctx->metrics, "hvguard_xen_unchecked_total", HV_COUNTER,
		    "Xen device calls of backends a rule could not fully check, by cause", labels,
		    (double)xen_stat(unchecked_stats[why]));
	}
	/* Counted by the BPF side as it acts: none lost with the ring full. */
	hv_metrics_set(ctx->metrics, "hvguard_xen_enforcements_total", HV_COUNTER,
		       "Calls of designated Xen backends hvguard stopped, by how: kill (the "
		       "process was killed), deny (the call was refused)",
		       "action=\"kill\"", (double)xen_stat(HV_XEN_STAT_KILLS));
	hv_metrics_set(ctx->metrics, "hvguard_xen_enforcements_total", HV_COUNTER, NULL,
		       "action=\"deny\"", (double)xen_stat(HV_XEN_STAT_DENIALS));
}

static void xen_poll(struct hv_ctx *ctx)
{
	double now = (hv_now_ns(CLOCK_MONOTONIC) / 1e9);
	struct hv_xen_config *cfg;

	if (!skel)
		return;
	/* Grant records are submitted without a wakeup: collect them here. */
	ring_buffer__consume(ctx->rb);
	export_unchecked(ctx);
	if (now >= st.next_leak_scan) {
		/* Each scan walks the whole map (two syscalls an entry): as often as
		 * the leak delay needs, at least every 10 s, at most every second. */
		double every = ctx->rules->grant_leak_after_ns / 2e9;

		scan_reserved_leaks(ctx);
		st.next_leak_scan = now + (every < 1 ? 1 : every > 10 ? 10 : every);
	}
	cfg = &skel->bss->xen_cfg;
	if (now >= st.next_resolve) {
		st.next_resolve = now + 5;
		if (!cfg->ioctl_fn[HV_XEN_DEV_PRIVCMD] || !cfg->ioctl_fn[HV_XEN_DEV_GNTDEV] ||
		    !cfg->ioctl_fn[HV_XEN_DEV_GNTALLOC])
			resolve_devices(cfg, true); /* a module loaded after us */
	}
}

static uint64_t xen_lost(struct hv_ctx *ctx)
{
	(void)ctx;
	return xen_stat(HV_XEN_STAT_LOST);
}

static void xen_summary(struct hv_ctx *ctx, struct json_object *summary)
{
	struct json_object *o = json_object_new_object(), *ops = json_object_new_object();

	(void)ctx;
	for (int op = 0; op < HV_XEN_GRANT_OP_COUNT; op++)
		hv_json_add_uint(ops, hv_xen_grant_op_name(op), st.grant_ops[op]);
	hv_json_add_uint(o, "backends_seen", st.backends_seen);
	hv_json_add_uint(o, "ioctls", xen_stat(HV_XEN_STAT_IOCTLS));
	hv_json_add_uint(o, "violations", xen_stat(HV_XEN_STAT_VIOLATIONS));
	hv_json_add_uint(o, "kills", xen_stat(HV_XEN_STAT_KILLS));
	hv_json_add_uint(o, "denials", xen_stat(HV_XEN_STAT_DENIALS));
	json_object_object_add(o, "unchecked", unchecked_json());
	hv_json_add_uint(o, "leaks", st.leaks);
	json_object_object_add(o, "grant_ops", ops);
	hv_json_add_str(o, "deny", enforcement_names[st.deny]);
	hv_json_add_str(o, "hooks", tier_names[st.tier]);
	json_object_object_add(summary, "xen", o);
}

static void xen_unload(struct hv_ctx *ctx)
{
	(void)ctx;
	xen_bpf__destroy(skel);
	skel = NULL;
}

/* --- rules reload (SIGHUP) ------------------------------------------------ */

static bool str_differs(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a && strcmp(a, b));
}

static bool backends_differ(const struct hv_rules *a, const struct hv_rules *b)
{
	if (a->n_backends != b->n_backends)
		return true;
	for (size_t i = 0; i < a->n_backends; i++) {
		const struct hv_backend_match *x = &a->backends[i], *y = &b->backends[i];

		if (str_differs(x->name, y->name) || str_differs(x->exe, y->exe) ||
		    str_differs(x->cgroup, y->cgroup) || str_differs(x->comm, y->comm) ||
		    x->uid != y->uid)
			return true;
	}
	return false;
}

/* Backends were matched into the kernel's maps and designated at start:
 * a new list needs a restart, so the one in force moves into next. */
static void keep_backends(struct hv_ctx *ctx, struct hv_rules *next, struct json_object *restart)
{
	struct hv_backend_match *b = next->backends;
	size_t n = next->n_backends;

	if (!backends_differ(ctx->rules, next))
		return;
	json_object_array_add(restart, json_object_new_string("xen.backends"));
	next->backends = ctx->rules->backends;
	next->n_backends = ctx->rules->n_backends;
	ctx->rules->backends = b;
	ctx->rules->n_backends = n;
}

/* Actions, enabled, allowed_frontends and target_domain live in .bss
 * (xen_cfg), read by the programs at each call: rewritten in place. The
 * one change that needs a restart is a first 'deny' when no deny hook was
 * loaded (it would silently be a kill). */
static void xen_reload(struct hv_ctx *ctx, struct hv_rules *next, struct json_object *restart)
{
	struct hv_xen_config *live = &skel->bss->xen_cfg, cfg = *live;
	char name[96];

	keep_backends(ctx, next, restart);
	for (int i = HV_RULE_FOREIGN_MAP; i < HV_XEN_RULES_END; i++) {
		struct hv_rule *n = &next->rule[i];
		const struct hv_rule *c = &ctx->rules->rule[i];

		if (st.deny == ENF_NONE && n->enabled && n->action == HV_ACT_DENY &&
		    !(c->enabled && c->action == HV_ACT_DENY)) {
			snprintf(name, sizeof(name), "%s.action", hv_rule_table[i].id);
			json_object_array_add(restart, json_object_new_string(name));
			n->enabled = c->enabled;
			n->action = c->action;
		}
		cfg.action[i] =
		    n->enabled && i != HV_RULE_GRANT_LEAK ? bpf_action(n->action) : HV_XEN_ACT_OFF;
	}
	cfg.target_domain = next->target_domain >= 0 ? next->target_domain : HV_XEN_DOMID_NONE;
	cfg.n_allowed = 0;
	memset(cfg.allowed, 0, sizeof(cfg.allowed));
	for (size_t i = 0; i < next->n_allowed_frontends; i++)
		hv_xen_allow_domid(&cfg, next->allowed_frontends[i]);
	/* Not atomic as a whole: a call racing the update (microseconds) may
	 * be judged with some fields old and others new. */
	memcpy(live->action, cfg.action, sizeof(cfg.action));
	live->target_domain = cfg.target_domain;
	memcpy(live->allowed, cfg.allowed, sizeof(cfg.allowed));
	live->n_allowed = cfg.n_allowed;
}

static struct bpf_object *xen_object(void)
{
	return skel ? skel->obj : NULL;
}

/* hv_family.prog_names: opened only, never loaded. */
static void xen_prog_names(void (*fn)(const char *name, void *arg), void *arg)
{
	struct xen_bpf *obj = xen_bpf__open();
	struct bpf_program *p;

	if (!obj)
		return;
	bpf_object__for_each_program(p, obj->obj)
		fn(bpf_program__name(p), arg);
	xen_bpf__destroy(obj);
}

struct hv_family hv_xen_family = {
    .name = "xen",
    .present = xen_present,
    .load = xen_load,
    .poll = xen_poll,
    .lost = xen_lost,
    .summary = xen_summary,
    .unload = xen_unload,
    .reload = xen_reload,
    .object = xen_object,
    .prog_names = xen_prog_names,
    /* Set by load to the tier attached: "fentry" (the drivers' own
     * functions) or "syscalls" (deny adds BPF LSM or fmod_ret either way). */
    .hooks = "syscalls",
};
