// SPDX-License-Identifier: GPL-2.0
/*
 * The Xen family: which processes are designated unprivileged backends.
 * Exact entries of the rules are matched by the kernel at exec; the rest
 * (globs, cgroups, combinations) here, on the processes running at start
 * and on the exec events the kernel then sends.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hvguard/xen.h" /* before the skeleton, which uses its types */
#include "xen.skel.h"
#include "rules.h"
#include "xen_user.h"

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
int hv_xen_match_process(const struct hv_rules *r, int pid)
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
void hv_xen_emit_backend(struct hv_ctx *ctx, int pid, int match, const char *how, int parent)
{
	struct json_object *o = json_object_new_object();
	const struct hv_backend_match *b = NULL;
	char comm[64] = "";

	if (match >= 0 && (size_t)match < ctx->rules->n_backends)
		b = &ctx->rules->backends[match];
	hv_proc_comm(pid, comm, sizeof(comm));
	hv_xen_st.backends_seen++;
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

void hv_xen_designate(struct hv_ctx *ctx, int pid, int match, const char *how)
{
	struct hv_xen_backend be = {.match = (__u32)match};
	__u32 key = pid;

	if (bpf_map_update_elem(bpf_map__fd(hv_xen_skel->maps.xen_backends), &key, &be,
				BPF_NOEXIST))
		return; /* already designated (by the kernel at exec, or a fork) */
	hv_xen_emit_backend(ctx, pid, match, how, 0);
}

static int consider_process(int pid, void *arg)
{
	struct hv_ctx *ctx = arg;
	int match = hv_xen_match_process(ctx->rules, pid);

	if (match >= 0)
		hv_xen_designate(ctx, pid, match, "running");
	return 0;
}

void hv_xen_scan_processes(struct hv_ctx *ctx)
{
	hv_proc_for_each_pid(consider_process, ctx);
}

/* Entries the kernel can decide alone at exec, so a backend is watched from
 * its first instruction: exact comm, or exact exe path, with an optional uid.
 * Everything else (globs, cgroups, combinations) goes through an exec event
 * and userspace, which leaves a short window (documented). */
int hv_xen_configure_matches(struct hv_ctx *ctx)
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
			fd = bpf_map__fd(hv_xen_skel->maps.xen_match_comm);
		} else if (b->exe && !b->comm && !b->cgroup && !has_glob(b->exe) &&
			   strlen(b->exe) < HV_XEN_PATH_MAX) {
			strncpy(key, b->exe, HV_XEN_PATH_MAX - 1);
			fd = bpf_map__fd(hv_xen_skel->maps.xen_match_exe);
			need_exec_events = true; /* exec'd through a relative path or link */
		} else {
			need_exec_events = true;
		}
		if (fd >= 0 && bpf_map_update_elem(fd, key, &m, BPF_ANY))
			return -errno;
	}
	hv_xen_skel->bss->xen_exec_events = need_exec_events;
	return 0;
}

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
void hv_xen_keep_backends(struct hv_ctx *ctx, struct hv_rules *next, struct json_object *restart)
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
