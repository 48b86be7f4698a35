// SPDX-License-Identifier: GPL-2.0
/*
 * The host section of `hvguard audit` (host_probe.h). Every probe reads
 * what the kernel says now; an answer that cannot be had is null, never a
 * guess.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "host_probe.h"
#include "hvguard.h"
#include "json_util.h"
#include "privmount.h"

#define TRACEFS_DIR	 "/sys/kernel/tracing"
#define TRACEFS_MAGIC	 0x74726163
#define SECURITYFS_DIR	 "/sys/kernel/security"
#define SECURITYFS_MAGIC 0x73636673
#define MAX_PROG_NAMES	 64

/* What each clock hook tier attaches to (user/clock.c, bpf/clock.bpf.c). */
static const char *const kvm_tier_tps[] = {
    "kvm/kvm_pvclock_update",
    "kvm/kvm_write_tsc_offset",
    "kvm/kvm_msr",
    "sched/sched_process_exit",
};
static const char *const syscall_tier_tps[] = {
    "syscalls/sys_enter_ioctl",
    "syscalls/sys_exit_ioctl",
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* 1, 0, or -1 when tracefs is not readable. */
static int tracepoint_state(bool tracefs, const char *name)
{
	char path[256];

	if (!tracefs)
		return -1;
	snprintf(path, sizeof(path), TRACEFS_DIR "/events/%s", name);
	return access(path, F_OK) == 0;
}

static int add_tracepoints(struct json_object *tps, bool tracefs, const char *const *names,
			   size_t n)
{
	int all = 1;

	for (size_t i = 0; i < n; i++) {
		int st = tracepoint_state(tracefs, names[i]);

		hv_json_add_bool_or_null(tps, names[i], st >= 0, st);
		if (st < 0)
			all = -1;
		else if (!st && all > 0)
			all = 0;
	}
	return all;
}

/* Both tiers need BTF (CO-RE) and KVM's tracepoints; syscalls adds the
 * ioctl syscall tracepoints. */
static void probe_tiers(struct json_object *host, struct hv_privmount *m, bool btf)
{
	bool tracefs = !hv_privmount_ensure(m, "tracefs", TRACEFS_DIR, TRACEFS_MAGIC);
	struct json_object *tps = json_object_new_object(), *tiers = json_object_new_object();
	int kvm, sys;

	kvm = add_tracepoints(tps, tracefs, kvm_tier_tps, ARRAY_SIZE(kvm_tier_tps));
	sys = add_tracepoints(tps, tracefs, syscall_tier_tps, ARRAY_SIZE(syscall_tier_tps));
	if (sys >= 0 && kvm >= 0)
		sys = sys && kvm;
	else
		sys = -1;
	hv_json_add_bool(host, "tracefs", tracefs);
	json_object_object_add(host, "tracepoints", tps);
	hv_json_add_bool_or_null(tiers, "kvm-tracepoints", kvm >= 0, kvm && btf);
	hv_json_add_bool_or_null(tiers, "syscalls", sys >= 0, sys && btf);
	json_object_object_add(host, "hook_tiers", tiers);
}

static void probe_lsm(struct json_object *host, struct hv_privmount *m)
{
	char buf[512];
	int active = -1;

	if (!hv_privmount_ensure(m, "securityfs", SECURITYFS_DIR, SECURITYFS_MAGIC) &&
	    hv_read_file(SECURITYFS_DIR "/lsm", buf, sizeof(buf)) >= 0) {
		char *save = NULL, *tok;

		buf[strcspn(buf, "\n")] = '\0';
		hv_json_add_str(host, "lsm", buf);
		active = 0;
		for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
			if (!strcmp(tok, "bpf"))
				active = 1;
	} else {
		hv_json_add_null(host, "lsm");
	}
	hv_json_add_bool_or_null(host, "bpf_lsm", active >= 0, active);
}

struct prog_names {
	char *name[MAX_PROG_NAMES];
	int n;
};

/* The names of a family's programs, from its object opened, not loaded. */
static void note_family_progs(const struct hv_family *f, struct prog_names *pn)
{
	struct bpf_object *obj;
	struct bpf_program *p;
	const void *elf;
	size_t size;

	elf = f->elf_bytes(&size);
	obj = bpf_object__open_mem(elf, size, NULL);
	if (!obj)
		return;
	bpf_object__for_each_program(p, obj) {
		if (pn->n < MAX_PROG_NAMES)
			pn->name[pn->n++] = strdup(bpf_program__name(p));
	}
	bpf_object__close(obj);
}

/* The kernel keeps BPF_OBJ_NAME_LEN - 1 characters of a program's name. */
static const char *hvguard_prog(const struct prog_names *pn, const char *kname)
{
	for (int i = 0; i < pn->n; i++)
		if (pn->name[i] && !strncmp(pn->name[i], kname, BPF_OBJ_NAME_LEN - 1) &&
		    strlen(kname) == strnlen(pn->name[i], BPF_OBJ_NAME_LEN - 1))
			return pn->name[i];
	return NULL;
}

static int prog_name_by_id(__u32 id, char *name, size_t len)
{
	struct bpf_prog_info info = {};
	__u32 ilen = sizeof(info);
	int fd = bpf_prog_get_fd_by_id(id), rc;

	if (fd < 0)
		return -1;
	rc = bpf_obj_get_info_by_fd(fd, &info, &ilen);
	close(fd);
	if (rc)
		return -1;
	snprintf(name, len, "%s", info.name);
	return 0;
}

static struct json_object *link_json(__u32 id, const struct bpf_link_info *info, const char *prog)
{
	struct json_object *o = json_object_new_object();
	const char *type = libbpf_bpf_link_type_str(info->type);

	hv_json_add_int(o, "id", id);
	hv_json_add_str(o, "type", type ? type : "unknown");
	hv_json_add_int(o, "prog_id", info->prog_id);
	hv_json_add_str(o, "program", prog);
	return o;
}

/* Every BPF link of the kernel whose program is one of hvguard's. -1 with
 * errno when the links cannot be listed. */
static int scan_links(const struct prog_names *pn, struct json_object *links)
{
	__u32 id = 0;

	for (;;) {
		struct bpf_link_info info = {};
		__u32 len = sizeof(info);
		char kname[BPF_OBJ_NAME_LEN];
		const char *prog;
		int fd;

		if (bpf_link_get_next_id(id, &id))
			return errno == ENOENT ? 0 : -1;
		fd = bpf_link_get_fd_by_id(id);
		if (fd < 0)
			continue; /* gone meanwhile */
		if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
			close(fd);
			continue;
		}
		close(fd);
		if (prog_name_by_id(info.prog_id, kname, sizeof(kname)))
			continue;
		prog = hvguard_prog(pn, kname);
		if (prog)
			json_object_array_add(links, link_json(id, &info, prog));
	}
}

static void probe_daemon(struct json_object *host)
{
	struct json_object *d = json_object_new_object(), *links = json_object_new_array();
	struct prog_names pn = {};
	struct hv_family *f;

	for_each_family(f)
		note_family_progs(f, &pn);
	if (!pn.n) {
		hv_json_add_null(d, "attached");
		hv_json_add_str(d, "error", "cannot open hvguard's BPF objects");
	} else if (scan_links(&pn, links)) {
		char why[160];

		snprintf(why, sizeof(why), "cannot list the kernel's BPF links: %s",
			 strerror(errno));
		hv_json_add_null(d, "attached");
		hv_json_add_str(d, "error", why);
	} else {
		hv_json_add_bool(d, "attached", json_object_array_length(links) > 0);
		hv_json_add_null(d, "error");
	}
	json_object_object_add(d, "links", links);
	json_object_object_add(host, "daemon", d);
	for (int i = 0; i < pn.n; i++)
		free(pn.name[i]);
}

struct json_object *hv_host_probe(struct hv_privmount *m)
{
	struct json_object *host = json_object_new_object();
	struct utsname u;
	bool btf = access("/sys/kernel/btf/vmlinux", R_OK) == 0;

	hv_json_add_str(host, "kernel", uname(&u) ? NULL : u.release);
	hv_json_add_bool(host, "btf", btf);
	probe_tiers(host, m, btf);
	probe_lsm(host, m);
	probe_daemon(host);
	return host;
}

/* ---- text ---- */

static const char *yes_no(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !v)
		return "unknown";
	return json_object_get_boolean(v) ? "yes" : "no";
}

static struct json_object *get(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	json_object_object_get_ex(o, key, &v);
	return v;
}

static void print_missing_tracepoints(FILE *f, struct json_object *tps)
{
	const char *sep = " (missing:";

	json_object_object_foreach(tps, name, v) {
		if (v && !json_object_get_boolean(v)) {
			fprintf(f, "%s %s", sep, name);
			sep = ",";
		}
	}
	if (sep[0] == ',')
		fprintf(f, ")");
}

static void print_daemon(FILE *f, struct json_object *d)
{
	struct json_object *links = get(d, "links"), *err = get(d, "error");
	size_t n = links ? json_object_array_length(links) : 0;

	if (err) {
		fprintf(f, "  %-20s unknown (%s)\n", "daemon attached",
			json_object_get_string(err));
		return;
	}
	if (!n) {
		fprintf(f, "  %-20s no (no BPF link to an hvguard program)\n", "daemon attached");
		return;
	}
	fprintf(f, "  %-20s yes (%zu BPF links to hvguard's programs:", "daemon attached", n);
	for (size_t i = 0; i < n; i++)
		fprintf(
		    f, "%s %s", i ? "," : "",
		    json_object_get_string(get(json_object_array_get_idx(links, i), "program")));
	fprintf(f, ")\n");
}

void hv_host_print(FILE *f, struct json_object *host)
{
	struct json_object *tiers = get(host, "hook_tiers"), *lsm = get(host, "lsm");

	fprintf(f, "host: kernel %s\n",
		get(host, "kernel") ? json_object_get_string(get(host, "kernel")) : "?");
	fprintf(f, "  %-20s %s\n", "BTF", yes_no(host, "btf"));
	fprintf(f, "  %-20s kvm-tracepoints: %s, syscalls: %s", "clock hook tiers",
		yes_no(tiers, "kvm-tracepoints"), yes_no(tiers, "syscalls"));
	if (!json_object_get_boolean(get(host, "tracefs")))
		fprintf(f, " (tracefs not readable)");
	else
		print_missing_tracepoints(f, get(host, "tracepoints"));
	fprintf(f, "\n  %-20s %s", "BPF LSM", yes_no(host, "bpf_lsm"));
	if (lsm)
		fprintf(f, " (lsm=%s)", json_object_get_string(lsm));
	fprintf(f, "\n");
	print_daemon(f, get(host, "daemon"));
}
