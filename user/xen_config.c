// SPDX-License-Identifier: GPL-2.0
/*
 * The Xen family's configuration: what xen.bpf.c is told (devices, actions,
 * allowed domains), how "deny" is carried out on this host (BPF LSM,
 * fmod_ret, else kill) and where detection hooks (the fentry tier or the
 * syscall tracepoints), at load and on a rules reload.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "hvguard/xen.h" /* before the skeleton, which uses its types */
#include "xen.skel.h"
#include "kallsyms.h"
#include "rules.h"
#include "xen_user.h"

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

/* What the fentry tier attaches to: in kallsyms once the modules are loaded
 * (libbpf then finds them in the module's BTF). */
static const char *const driver_fns[] = {
    "privcmd_ioctl", "privcmd_mmap",	 "gntdev_ioctl",
    "gntdev_mmap",   "gntdev_vma_close", "gntalloc_ioctl",
};

static const char *const driver_modules[] = {
    "xen-privcmd", "xen-privcmd", "xen-gntdev", "xen-gntdev", "xen-gntdev", "xen-gntalloc",
};

/* --- what the programs are told ----------------------------------------- */

/* Adds a frontend domain to the allowed set (an id past the real domains'
 * is ignored). */
void hv_xen_allow_domid(struct hv_xen_config *cfg, __u32 domid)
{
	if (domid >= HV_XEN_DOMID_LIMIT)
		return;
	cfg->allowed[domid / 64] |= 1ull << (domid % 64);
	cfg->n_allowed++;
}

void hv_xen_resolve_devices(struct hv_xen_config *cfg, bool quiet)
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

static __u8 bpf_action(enum hv_action a)
{
	switch (a) {
	case HV_ACT_KILL:
		return HV_XEN_ACT_KILL;
	case HV_ACT_DENY:
		return hv_xen_st.deny == ENF_NONE || hv_xen_st.deny == ENF_KILL_FALLBACK
			   ? HV_XEN_ACT_KILL
			   : HV_XEN_ACT_DENY;
	default:
		return HV_XEN_ACT_ALERT;
	}
}

static void configure(struct hv_ctx *ctx, struct hv_xen_config *cfg)
{
	const struct hv_rules *r = ctx->rules;

	memset(cfg, 0, sizeof(*cfg));
	hv_xen_resolve_devices(cfg, false);
	for_each_rule_of(i, HV_FAM_XEN) {
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

bool hv_xen_rules_want_deny(const struct hv_rules *r)
{
	for_each_rule_of(i, HV_FAM_XEN)
		if (r->rule[i].enabled && r->rule[i].action == HV_ACT_DENY)
			return true;
	return false;
}

/* --- how "deny" is carried out ----------------------------------------- */

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

static int open_and_load(struct hv_ctx *ctx, enum hv_xen_enforcement deny)
{
	struct bpf_program *prog;
	struct xen_bpf *skel;
	int err;

	skel = xen_bpf__open();
	if (!skel) {
		hv_err("cannot open the Xen BPF programs: %s", strerror(errno));
		return -errno;
	}
	bpf_object__for_each_program(prog, skel->obj) {
		int tier = program_tier(prog);

		if (tier >= 0)
			bpf_program__set_autoload(prog, tier == (int)hv_xen_st.tier);
	}
	skel->rodata->xen_tier = hv_xen_st.tier;
	bpf_program__set_autoload(skel->progs.xen_lsm_s_file_ioctl, deny == ENF_LSM_SLEEPABLE);
	bpf_program__set_autoload(skel->progs.xen_lsm_file_ioctl, deny == ENF_LSM);
	bpf_program__set_autoload(skel->progs.xen_lsm_mmap_file,
				  deny == ENF_LSM_SLEEPABLE || deny == ENF_LSM);
	bpf_program__set_autoload(skel->progs.xen_fmod_file_ioctl, deny == ENF_FMOD_RET);
	bpf_program__set_autoload(skel->progs.xen_fmod_mmap_file, deny == ENF_FMOD_RET);
	hv_xen_st.deny = deny;
	configure(ctx, &skel->bss->xen_cfg);
	err = xen_bpf__load(skel);
	if (err)
		goto fail;
	err = xen_bpf__attach(skel);
	if (err)
		goto fail;
	hv_xen_skel = skel;
	return 0;
fail:
	xen_bpf__destroy(skel);
	return err;
}

/* The mechanism --xen-deny asked for, alone: an error where it does not
 * load (BPF LSM's programs also where BPF LSM is not active, since they
 * would attach and never run). */
static int load_forced_deny(struct hv_ctx *ctx)
{
	enum hv_xen_enforcement enf = ENF_LSM_SLEEPABLE;
	char why[160];
	int err;

	while (enf < ENF_KILL_FALLBACK && strcmp(ctx->opts.xen_deny, hv_xen_deny_name(enf)))
		enf++;
	if (enf != ENF_FMOD_RET && !bpf_lsm_active(why, sizeof(why))) {
		hv_err("xen: --xen-deny %s: %s", ctx->opts.xen_deny, why);
		return -EOPNOTSUPP;
	}
	err = open_and_load(ctx, enf);
	if (err)
		hv_err("xen: --xen-deny %s: the kernel refused its programs (%s)",
		       ctx->opts.xen_deny, strerror(-err));
	return err;
}

/* Loads with the best way to deny this host offers: BPF LSM where it is
 * active (an attached LSM program of an inactive BPF LSM never runs, so the
 * attach proves nothing: /sys/kernel/security/lsm decides), its file_ioctl
 * program sleepable where the kernel allows it there (it then faults the
 * ioctl's argument in), else not; else fmod_ret on the security_*
 * functions, else kill; all on the tier in hv_xen_st.tier, whose programs
 * alone are the last attempt (its failure is the tier's). */
static int load_with_deny(struct hv_ctx *ctx)
{
	char lsm_why[160];
	int err;

	if (!hv_xen_rules_want_deny(ctx->rules))
		return open_and_load(ctx, ENF_NONE);
	if (ctx->opts.xen_deny)
		return load_forced_deny(ctx);
	if (bpf_lsm_active(lsm_why, sizeof(lsm_why))) {
		err = open_and_load(ctx, ENF_LSM_SLEEPABLE);
		if (!err)
			return 0;
		hv_warn("xen: the kernel refused a sleepable BPF LSM program on file_ioctl (%s); "
			"action 'deny' reads ioctl arguments without faulting pages in instead: "
			"one on a page not yet faulted in is refused (fail closed)",
			strerror(-err));
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
	snprintf(hv_xen_st.deny_why, sizeof(hv_xen_st.deny_why),
		 "%s, and fmod_ret programs do not load (%s)", lsm_why, strerror(-err));
	err = open_and_load(ctx, ENF_KILL_FALLBACK);
	if (!err)
		hv_warn("xen: action 'deny' is not available: %s; offenders are killed instead "
			"(SIGKILL at the call: the call already entered may complete)",
			hv_xen_st.deny_why);
	return err;
}

/* --- where detection hooks --------------------------------------------- */

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
	hv_xen_st.tier = tier;
	err = load_with_deny(ctx);
	if (err)
		snprintf(why, len, "cannot load or attach the programs: %s (-v shows libbpf's log)",
			 strerror(-err));
	return err;
}

/* The tier asked for with --xen-hooks, else the best that loads: fentry on
 * the drivers, else the syscall tracepoints, and a fallback is said. */
int hv_xen_load_best_tier(struct hv_ctx *ctx)
{
	int want = -1, err = -ENOENT;
	char why[400] = "";

	for (int t = 0; t < HV_XEN_TIER_COUNT; t++)
		if (ctx->opts.xen_hooks && !strcmp(ctx->opts.xen_hooks, hv_xen_tier_name(t)))
			want = t;
	for (int t = 0; t < HV_XEN_TIER_COUNT; t++) {
		if (want >= 0 && t != want)
			continue;
		err = load_tier(ctx, t, why, sizeof(why));
		if (!err) {
			hv_xen_family.hooks = hv_xen_tier_name(t);
			return 0;
		}
		if (want >= 0) {
			hv_err("xen checks on --xen-hooks %s: %s", hv_xen_tier_name(t), why);
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

/* --- rules reload (SIGHUP) ---------------------------------------------- */

/* Actions, enabled, allowed_frontends and target_domain live in .bss
 * (xen_cfg), read by the programs at each call: rewritten in place. The
 * one change that needs a restart is a first 'deny' when no deny hook was
 * loaded (it would silently be a kill). */
void hv_xen_reload(struct hv_ctx *ctx, struct hv_rules *next, struct json_object *restart)
{
	struct hv_xen_config *live = &hv_xen_skel->bss->xen_cfg, cfg = *live;
	char name[96];

	hv_xen_keep_backends(ctx, next, restart);
	for_each_rule_of(i, HV_FAM_XEN) {
		struct hv_rule *n = &next->rule[i];
		const struct hv_rule *c = &ctx->rules->rule[i];

		if (hv_xen_st.deny == ENF_NONE && n->enabled && n->action == HV_ACT_DENY &&
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
