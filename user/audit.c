// SPDX-License-Identifier: GPL-2.0
/*
 * `hvguard audit`: a one-shot look at the host now, without attaching
 * anything. It finds every KVM VM (the kvm-vm fds in /proc), reads each
 * vCPU's TSC offset from KVM's debugfs and hvguard's own record of the
 * offsets KVM reported (the pinned state of a daemon that ran here: on
 * kernels whose readbacks show 0 it is the only truth), and checks the
 * invariants that can be checked at rest: all vCPUs of a VM share one TSC
 * offset; no VMM is left frozen by an unfinished correction. It also says
 * what the host offers hvguard (host_probe.h).
 * debugfs (and tracefs, securityfs for the host section) are mounted where
 * missing for audit's own reading only, in a private mount namespace
 * (privmount.h): the host's mount table is left as it was.
 * Exit codes: audit_usage().
 */
#include <bpf/bpf.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "hvguard.h"
#include "host_probe.h"
#include "hvguard/clock_logic.h"
#include "json_util.h"
#include "pindir.h"
#include "preflight.h"
#include "privmount.h"
#include "rules.h"

#define MAX_VMS	      1024
#define DEBUGFS_DIR   "/sys/kernel/debug"
#define DEBUGFS_MAGIC 0x64626720

/* One vCPU as KVM's debugfs shows it: its id (KVM_CREATE_VCPU's argument,
 * not necessarily dense) and its TSC offset. */
struct audit_vcpu {
	int id;
	long long offset;
};

struct found_vm {
	int pid;
	int fd;
	char comm[32];
	char name[64];
	int nr_vcpus;
	struct audit_vcpu *vcpus; /* sorted by id */
	bool have_record;
	bool frozen; /* frozen for a correction and not released */
	__u64 kvm;
	struct hv_clock_vm record;
};

struct audit {
	struct found_vm *vms;
	int nr_vms;
	struct json_object *findings;
	int violations;
	bool json;
	const char *pin_root;
	const char *pin_at; /* pin_root checked (pindir.h), NULL: not to be read */
	bool pinned_state;
};

struct scan {
	struct audit *a;
	int pid;
};

static int note_vm_fd(int fd, const char *link, void *arg)
{
	struct scan *sc = arg;
	struct audit *a = sc->a;
	struct found_vm *vm;

	if (strcmp(link, "anon_inode:kvm-vm"))
		return 0;
	if (a->nr_vms >= MAX_VMS)
		return 1;
	vm = &a->vms[a->nr_vms++];
	memset(vm, 0, sizeof(*vm));
	vm->pid = sc->pid;
	vm->fd = fd;
	if (hv_proc_comm(sc->pid, vm->comm, sizeof(vm->comm)))
		snprintf(vm->comm, sizeof(vm->comm), "?");
	if (hv_proc_vm_name(sc->pid, vm->name, sizeof(vm->name)))
		vm->name[0] = '\0';
	return 0;
}

static int scan_process(int pid, void *arg)
{
	struct scan sc = {.a = arg, .pid = pid};

	if (pid != getpid())
		hv_proc_for_each_fd(pid, note_vm_fd, &sc);
	return 0;
}

static void find_vms(struct audit *a)
{
	hv_proc_for_each_pid(scan_process, a);
}

/* "vcpuN": N, else -1. */
static int vcpu_dir_id(const char *name)
{
	char *end;
	long id;

	if (strncmp(name, "vcpu", 4) || name[4] < '0' || name[4] > '9')
		return -1;
	errno = 0;
	id = strtol(name + 4, &end, 10);
	return errno || *end || id > INT32_MAX ? -1 : (int)id;
}

static int add_vcpu(struct found_vm *vm, int *cap, int id, long long offset)
{
	if (vm->nr_vcpus == *cap) {
		int n = *cap ? *cap * 2 : 64;
		struct audit_vcpu *v = realloc(vm->vcpus, n * sizeof(*v));

		if (!v)
			return -1;
		vm->vcpus = v;
		*cap = n;
	}
	vm->vcpus[vm->nr_vcpus++] = (struct audit_vcpu){.id = id, .offset = offset};
	return 0;
}

static int by_vcpu_id(const void *a, const void *b)
{
	const struct audit_vcpu *x = a, *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

/* KVM's debugfs: every /sys/kernel/debug/kvm/PID-FD/vcpuN/tsc-offset. */
static void read_debugfs(struct found_vm *vm)
{
	char dir[128], path[192], buf[32];
	struct dirent *de;
	int cap = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), DEBUGFS_DIR "/kvm/%d-%d", vm->pid, vm->fd);
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		int id = vcpu_dir_id(de->d_name);
		char *end;
		long long off;

		if (id < 0)
			continue;
		snprintf(path, sizeof(path), "%s/vcpu%d/tsc-offset", dir, id);
		if (hv_read_file(path, buf, sizeof(buf)) <= 0)
			continue;
		errno = 0;
		off = strtoll(buf, &end, 10);
		if (errno || end == buf)
			continue;
		if (add_vcpu(vm, &cap, id, off)) {
			hv_warn("out of memory reading %s: its vCPUs are not all listed", dir);
			break;
		}
	}
	closedir(d);
	if (vm->nr_vcpus > 1)
		qsort(vm->vcpus, vm->nr_vcpus, sizeof(*vm->vcpus), by_vcpu_id);
}

static void read_frozen(struct audit *a)
{
	char path[512];
	__u64 since;
	int fd;

	if (!a->pin_at)
		return;
	snprintf(path, sizeof(path), "%s/hv_clock_frozen", a->pin_at);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return;
	for (int i = 0; i < a->nr_vms; i++)
		if (a->vms[i].have_record && !bpf_map_lookup_elem(fd, &a->vms[i].kvm, &since))
			a->vms[i].frozen = true;
	close(fd);
}

/* hvguard's pinned record, matched by owner pid (one VM per VMM is the
 * norm; with several, the record is not attributed). */
static void read_records(struct audit *a)
{
	char path[512];
	__u64 key, *prev = NULL;
	struct hv_clock_vm st;
	int fd;

	if (!a->pin_at)
		return;
	snprintf(path, sizeof(path), "%s/hv_clock_vms", a->pin_at);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return;
	a->pinned_state = true;
	while (!bpf_map_get_next_key(fd, prev, &key)) {
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &st))
			continue;
		int owned = 0;
		struct found_vm *match = NULL;

		for (int i = 0; i < a->nr_vms; i++)
			if (a->vms[i].pid == (int)st.owner_tgid) {
				owned++;
				match = &a->vms[i];
			}
		if (owned == 1) {
			match->have_record = true;
			match->record = st;
			match->kvm = key;
		}
	}
	close(fd);
	read_frozen(a);
}

static void add_finding(struct audit *a, const struct found_vm *vm, const char *rule,
			enum hv_severity sev, struct json_object *fields, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void add_finding(struct audit *a, const struct found_vm *vm, const char *rule,
			enum hv_severity sev, struct json_object *fields, const char *fmt, ...)
{
	struct json_object *o = fields ? fields : json_object_new_object();
	char msg[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	hv_json_add_str(o, "rule", rule);
	hv_json_add_str(o, "severity", hv_severity_name(sev));
	hv_json_add_int(o, "pid", vm->pid);
	hv_json_add_str(o, "comm", vm->comm);
	hv_json_add_str(o, "vm_name", vm->name[0] ? vm->name : NULL);
	hv_json_add_str(o, "message", msg);
	json_object_array_add(a->findings, o);
	if (sev >= HV_SEV_WARNING)
		a->violations++;
}

/* One finding per VM and rule: true when KVM's own debugfs files show the
 * vCPUs disagree (where they read back, as on ordinary KVM). */
static bool check_debugfs_offsets(struct audit *a, const struct found_vm *vm)
{
	const struct audit_vcpu *ref = vm->vcpus;

	for (int i = 1; i < vm->nr_vcpus; i++) {
		const struct audit_vcpu *v = &vm->vcpus[i];

		if (v->offset == ref->offset)
			continue;
		struct json_object *f = json_object_new_object();

		hv_json_add_int(f, "vcpu", v->id);
		hv_json_add_int(f, "offset", v->offset);
		hv_json_add_int(f, "reference_vcpu", ref->id);
		hv_json_add_int(f, "reference_offset", ref->offset);
		hv_json_add_str(f, "source", "debugfs");
		add_finding(a, vm, "vcpu-tsc-mismatch", HV_SEV_CRITICAL, f,
			    "vCPU %d runs with TSC offset %lld, vCPU %d with %lld (KVM debugfs)",
			    v->id, v->offset, ref->id, ref->offset);
		return true;
	}
	return false;
}

/* hvguard's record holds HV_MAX_VCPUS vCPUs, whatever their ids (each
 * takes a slot): the rest of a bigger VM is not checked by the daemon. */
static void check_record_room(struct audit *a, const struct found_vm *vm)
{
	int beyond = vm->nr_vcpus - HV_MAX_VCPUS;

	if (beyond <= 0)
		return;
	struct json_object *f = json_object_new_object();

	hv_json_add_int(f, "vcpus", vm->nr_vcpus);
	hv_json_add_int(f, "beyond_record", beyond);
	hv_json_add_int(f, "record_vcpus", HV_MAX_VCPUS);
	add_finding(a, vm, "vcpus-beyond-record", HV_SEV_INFO, f,
		    "%d of the VM's %d vCPUs are past the %d hvguard's record holds: the daemon "
		    "does not check their TSC offsets (audit reads them from KVM's debugfs)",
		    beyond, vm->nr_vcpus, HV_MAX_VCPUS);
}

/* vcpu-tsc-khz-mismatch in hvguard's record: each vCPU's frequency at its
 * last clock update, against the first vCPU's with one (debugfs does not
 * show the frequency KVM_SET_TSC_KHZ set). */
static void check_record_khz(struct audit *a, const struct found_vm *vm)
{
	const struct hv_clock_vm *r = &vm->record;
	struct hv_khz_result w;
	__u32 ref = 0;

	while (ref < HV_MAX_VCPUS && ref < r->nr_vcpus && !r->tsc_khz[ref])
		ref++;
	if (ref >= HV_MAX_VCPUS || ref >= r->nr_vcpus)
		return;
	hv_tsc_khz_mismatch(r, ref, r->tsc_khz[ref], &w);
	if (!w.different)
		return;
	struct json_object *f = json_object_new_object();
	/* The walk gives slots; people read vCPU ids. */
	int bad = (int)r->vcpu_ids[w.ref_vcpu] - 1, good = (int)r->vcpu_ids[ref] - 1;

	hv_json_add_int(f, "vcpu", bad);
	hv_json_add_int(f, "tsc_khz", w.ref_khz);
	hv_json_add_int(f, "reference_vcpu", good);
	hv_json_add_int(f, "reference_tsc_khz", r->tsc_khz[ref]);
	hv_json_add_str(f, "source", "hvguard-record");
	add_finding(a, vm, "vcpu-tsc-khz-mismatch", HV_SEV_CRITICAL, f,
		    "vCPU %d's TSC runs at %u kHz, vCPU %d's at %u kHz (%u differ)", bad, w.ref_khz,
		    good, r->tsc_khz[ref], w.different);
}

/* hvguard's own record, where debugfs did not already show a mismatch
 * (on kernels whose debugfs offsets read 0 it is the only witness). */
static void check_record(struct audit *a, const struct found_vm *vm, bool mismatch_found)
{
	struct hv_mismatch_result w;

	if (!vm->have_record)
		return;
	if (!mismatch_found && hv_tsc_mismatch(&vm->record, &w)) {
		struct json_object *f = json_object_new_object();
		/* The walk gives slots; people read vCPU ids. */
		int bad = (int)vm->record.vcpu_ids[w.bad_vcpu] - 1;
		int ref = (int)vm->record.vcpu_ids[w.ref_vcpu] - 1;

		hv_json_add_int(f, "vcpu", bad);
		hv_json_add_int(f, "offset", vm->record.tsc_offset[w.bad_vcpu]);
		hv_json_add_int(f, "reference_vcpu", ref);
		hv_json_add_int(f, "reference_offset", w.ref_offset);
		hv_json_add_str(f, "source", "hvguard-record");
		add_finding(a, vm, "vcpu-tsc-mismatch", HV_SEV_CRITICAL, f,
			    "vCPU %d's last TSC offset KVM reported is %lld, vCPU %d's %lld "
			    "(%u differ)",
			    bad, (long long)vm->record.tsc_offset[w.bad_vcpu], ref,
			    (long long)w.ref_offset, w.different);
	}
	check_record_khz(a, vm);
	if (vm->frozen && hv_proc_state(vm->pid) == 'T')
		add_finding(a, vm, "correction-stuck", HV_SEV_CRITICAL, NULL,
			    "the VMM is stopped and hvguard froze it for a correction: if no "
			    "daemon runs, 'kill -CONT %d' lets it go",
			    vm->pid);
	if (vm->record.phase == VM_PAUSED)
		add_finding(a, vm, "paused", HV_SEV_INFO, NULL,
			    "the VM is paused (KVM_GET_CLOCK seen); its resume will be checked");
}

static const char *phase_name(const struct found_vm *vm)
{
	static const char *const names[] = {"setup", "running", "paused", "resumed"};

	if (!vm->have_record)
		return "unknown";
	return vm->record.phase < 4 ? names[vm->record.phase] : "?";
}

static struct json_object *vm_json(const struct found_vm *vm)
{
	struct json_object *o = json_object_new_object(), *v = json_object_new_array();

	hv_json_add_int(o, "pid", vm->pid);
	hv_json_add_str(o, "comm", vm->comm);
	hv_json_add_str(o, "vm_name", vm->name[0] ? vm->name : NULL);
	hv_json_add_int(o, "fd", vm->fd);
	hv_json_add_int_or_null(o, "vm", vm->have_record, vm->record.id);
	hv_json_add_str(o, "phase", phase_name(vm));
	for (int i = 0; i < vm->nr_vcpus; i++) {
		struct json_object *c = json_object_new_object();
		int id = vm->vcpus[i].id;
		int slot = vm->have_record ? hv_vcpu_slot_of(&vm->record, id) : -1;
		bool recorded = slot >= 0 && hv_bit_test(vm->record.tsc_known, slot);
		__s64 recorded_offset = recorded ? vm->record.tsc_offset[slot] : 0;

		hv_json_add_int(c, "vcpu", id);
		hv_json_add_int(c, "debugfs_tsc_offset", vm->vcpus[i].offset);
		hv_json_add_int_or_null(c, "recorded_tsc_offset", recorded, recorded_offset);
		json_object_array_add(v, c);
	}
	json_object_object_add(o, "vcpus", v);
	return o;
}

static void print_text(struct audit *a, struct json_object *host)
{
	size_t n = json_object_array_length(a->findings);

	hv_host_print(stdout, host);
	printf("hvguard audit: %d KVM VM(s) on this host%s\n", a->nr_vms,
	       a->pinned_state ? "" : " (no hvguard state pinned here: offsets from debugfs only)");
	if (a->nr_vms)
		printf("  %-8s %-16s %-16s %-4s %-5s %s\n", "PID", "COMM", "NAME", "FD", "VCPUS",
		       "PHASE");
	for (int i = 0; i < a->nr_vms; i++) {
		const struct found_vm *vm = &a->vms[i];

		printf("  %-8d %-16s %-16s %-4d %-5d %s\n", vm->pid, vm->comm,
		       vm->name[0] ? vm->name : "-", vm->fd, vm->nr_vcpus, phase_name(vm));
	}
	for (size_t i = 0; i < n; i++) {
		struct json_object *f = json_object_array_get_idx(a->findings, i), *v;

		json_object_object_get_ex(f, "severity", &v);
		printf("%s ", json_object_get_string(v));
		json_object_object_get_ex(f, "rule", &v);
		printf("%s ", json_object_get_string(v));
		json_object_object_get_ex(f, "comm", &v);
		printf("%s", json_object_get_string(v));
		json_object_object_get_ex(f, "pid", &v);
		printf("[%d]: ", json_object_get_int(v));
		json_object_object_get_ex(f, "message", &v);
		printf("%s\n", json_object_get_string(v));
	}
	printf("%d violation(s)\n", a->violations);
}

static void audit_usage(FILE *f)
{
	fprintf(f,
		"Usage: hvguard audit [--json] [--pin-dir DIR]\n"
		"A one-shot look at this host now: what it offers hvguard (BTF, the clock hook\n"
		"tiers, BPF LSM, a daemon attached), and its KVM VMs: every vCPU's TSC offset\n"
		"(KVM's debugfs and hvguard's pinned record), VMMs left frozen. debugfs is\n"
		"mounted where missing, for the audit alone (a private mount namespace).\n"
		"\n"
		"  --json          one JSON object (docs/audit.schema.json); warnings before it\n"
		"  --pin-dir DIR   hvguard's pinned state (default %s)\n"
		"  -h, --help      this text\n"
		"\n"
		"Exit status:\n"
		"  0  nothing found\n"
		"  1  violations found (a finding of severity warning or critical)\n"
		"  2  bad usage (an unknown option, an argument), or a runtime error\n"
		"  3  not root (needs CAP_SYS_ADMIN, or CAP_BPF and CAP_PERFMON)\n"
		"  5  debugfs is not mounted and cannot be mounted\n",
		HV_PIN_ROOT);
}

static int mount_debugfs(struct hv_privmount *m)
{
	if (!hv_privmount_ensure(m, "debugfs", DEBUGFS_DIR, DEBUGFS_MAGIC))
		return HV_EXIT_OK;
	hv_err("debugfs is not mounted on %s and mounting it failed (%s): mount it with "
	       "'mount -t debugfs debugfs %s'",
	       DEBUGFS_DIR, strerror(errno), DEBUGFS_DIR);
	return HV_EXIT_NOFS;
}

static void print_json(struct audit *a, struct json_object *host)
{
	struct json_object *out = json_object_new_object(), *vms = json_object_new_array();

	hv_json_add_str(out, "type", "audit");
	hv_json_add_str(out, "version", HVGUARD_VERSION);
	json_object_object_add(out, "host", json_object_get(host));
	for (int i = 0; i < a->nr_vms; i++)
		json_object_array_add(vms, vm_json(&a->vms[i]));
	json_object_object_add(out, "vms", vms);
	json_object_object_add(out, "findings", json_object_get(a->findings));
	hv_json_add_int(out, "violations", a->violations);
	hv_json_add_bool(out, "pinned_state", a->pinned_state);
	printf("%s\n", json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN));
	json_object_put(out);
}

static void audit_vms(struct audit *a)
{
	struct hv_pindir pd = {.fd = -1};

	find_vms(a);
	for (int i = 0; i < a->nr_vms; i++)
		read_debugfs(&a->vms[i]);
	/* Read only, never locked: audit runs beside a daemon. */
	if (!hv_pindir_peek(&pd, a->pin_root))
		a->pin_at = pd.at;
	read_records(a);
	for (int i = 0; i < a->nr_vms; i++) {
		check_record(a, &a->vms[i], check_debugfs_offsets(a, &a->vms[i]));
		check_record_room(a, &a->vms[i]);
	}
	hv_pindir_close(&pd);
	a->pin_at = NULL;
}

int cmd_audit(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"pin-dir", required_argument, NULL, 'P'},
	    {"help", no_argument, NULL, 'h'},
	    {},
	};
	struct audit a = {.pin_root = HV_PIN_ROOT};
	struct hv_privmount mounts = {};
	struct json_object *host;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "jh", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			a.json = hv_json_errors = true;
			break;
		case 'P':
			a.pin_root = optarg;
			break;
		case 'h':
			audit_usage(stdout);
			return HV_EXIT_OK;
		default:
			audit_usage(stderr);
			return HV_EXIT_ERROR;
		}
	}
	if (optind < argc) {
		hv_err("audit takes no arguments, got '%s' (see 'hvguard audit --help')",
		       argv[optind]);
		return HV_EXIT_ERROR;
	}
	rc = hv_preflight_audit();
	if (rc)
		return rc;
	rc = mount_debugfs(&mounts);
	if (rc)
		goto cleanup;
	a.vms = calloc(MAX_VMS, sizeof(*a.vms));
	a.findings = json_object_new_array();
	if (!a.vms || !a.findings) {
		hv_err("out of memory");
		rc = HV_EXIT_ERROR;
		goto cleanup;
	}
	host = hv_host_probe(&mounts);
	audit_vms(&a);
	if (a.json)
		print_json(&a, host);
	else
		print_text(&a, host);
	json_object_put(host);
	rc = a.violations ? HV_EXIT_VIOLATIONS : HV_EXIT_OK;
cleanup:
	hv_privmount_release(&mounts);
	for (int i = 0; a.vms && i < a.nr_vms; i++)
		free(a.vms[i].vcpus);
	json_object_put(a.findings);
	free(a.vms);
	return rc;
}
