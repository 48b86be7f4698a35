// SPDX-License-Identifier: GPL-2.0
/*
 * `hvguard audit`: a one-shot look at the host now, without attaching
 * anything. It finds every KVM VM (the kvm-vm fds in /proc), reads each
 * vCPU's TSC offset from KVM's debugfs and hvguard's own record of the
 * offsets KVM reported (the pinned state of a daemon that ran here: on
 * kernels whose readbacks show 0 it is the only truth), and checks the
 * invariants that can be checked at rest: all vCPUs of a VM share one TSC
 * offset; no VMM is left frozen by an unfinished correction.
 * Exit 0 clean, 1 violations found, 2 error.
 */
#include <bpf/bpf.h>
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
#include "hvguard/clock_logic.h"
#include "pindir.h"
#include "preflight.h"
#include "rules.h"

#define MAX_VMS	    1024
#define AUDIT_VCPUS 64

struct found_vm {
	int pid;
	int fd;
	char comm[32];
	char name[64];
	int nr_vcpus;
	long long debugfs_offset[AUDIT_VCPUS];
	bool have_record;
	bool frozen; /* frozen for a correction and not released */
	__u64 kvm;
	struct vm_state record;
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

/* KVM's debugfs: /sys/kernel/debug/kvm/PID-FD/vcpuN/tsc-offset */
static void read_debugfs(struct found_vm *vm)
{
	char path[128];

	for (int i = 0; i < AUDIT_VCPUS; i++) {
		FILE *f;

		snprintf(path, sizeof(path), "/sys/kernel/debug/kvm/%d-%d/vcpu%d/tsc-offset",
			 vm->pid, vm->fd, i);
		f = fopen(path, "r");
		if (!f)
			break;
		if (fscanf(f, "%lld", &vm->debugfs_offset[i]) == 1)
			vm->nr_vcpus = i + 1;
		fclose(f);
	}
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
	struct vm_state st;
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
	json_object_object_add(o, "rule", json_object_new_string(rule));
	json_object_object_add(o, "severity", json_object_new_string(hv_severity_name(sev)));
	json_object_object_add(o, "pid", json_object_new_int(vm->pid));
	json_object_object_add(o, "comm", json_object_new_string(vm->comm));
	json_object_object_add(o, "vm_name", vm->name[0] ? json_object_new_string(vm->name) : NULL);
	json_object_object_add(o, "message", json_object_new_string(msg));
	json_object_array_add(a->findings, o);
	if (sev >= HV_SEV_WARNING)
		a->violations++;
}

/* One finding per VM and rule: true when KVM's own debugfs files show the
 * vCPUs disagree (where they read back, as on ordinary KVM). */
static bool check_debugfs_offsets(struct audit *a, const struct found_vm *vm)
{
	for (int i = 1; i < vm->nr_vcpus; i++) {
		if (vm->debugfs_offset[i] == vm->debugfs_offset[0])
			continue;
		struct json_object *f = json_object_new_object();

		json_object_object_add(f, "vcpu", json_object_new_int(i));
		json_object_object_add(f, "offset", json_object_new_int64(vm->debugfs_offset[i]));
		json_object_object_add(f, "reference_offset",
				       json_object_new_int64(vm->debugfs_offset[0]));
		json_object_object_add(f, "source", json_object_new_string("debugfs"));
		add_finding(a, vm, "vcpu-tsc-mismatch", HV_SEV_CRITICAL, f,
			    "vCPU %d runs with TSC offset %lld, vCPU 0 with %lld (KVM debugfs)", i,
			    vm->debugfs_offset[i], vm->debugfs_offset[0]);
		return true;
	}
	return false;
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

		json_object_object_add(f, "vcpu", json_object_new_int(bad));
		json_object_object_add(f, "offset",
				       json_object_new_int64(vm->record.tsc_offset[w.bad_vcpu]));
		json_object_object_add(f, "reference_offset", json_object_new_int64(w.ref_offset));
		json_object_object_add(f, "source", json_object_new_string("hvguard-record"));
		add_finding(a, vm, "vcpu-tsc-mismatch", HV_SEV_CRITICAL, f,
			    "vCPU %d's last TSC offset KVM reported is %lld, vCPU %d's %lld "
			    "(%u differ)",
			    bad, (long long)vm->record.tsc_offset[w.bad_vcpu], ref,
			    (long long)w.ref_offset, w.different);
	}
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

	json_object_object_add(o, "pid", json_object_new_int(vm->pid));
	json_object_object_add(o, "comm", json_object_new_string(vm->comm));
	json_object_object_add(o, "vm_name", vm->name[0] ? json_object_new_string(vm->name) : NULL);
	json_object_object_add(o, "fd", json_object_new_int(vm->fd));
	json_object_object_add(o, "vm",
			       vm->have_record ? json_object_new_int64(vm->record.id) : NULL);
	json_object_object_add(o, "phase", json_object_new_string(phase_name(vm)));
	for (int i = 0; i < vm->nr_vcpus; i++) {
		struct json_object *c = json_object_new_object();
		int slot = vm->have_record ? hv_vcpu_slot_of(&vm->record, i) : -1;

		json_object_object_add(c, "vcpu", json_object_new_int(i));
		json_object_object_add(c, "debugfs_tsc_offset",
				       json_object_new_int64(vm->debugfs_offset[i]));
		json_object_object_add(c, "recorded_tsc_offset",
				       slot >= 0 && hv_bit_test(vm->record.tsc_known, slot)
					   ? json_object_new_int64(vm->record.tsc_offset[slot])
					   : NULL);
		json_object_array_add(v, c);
	}
	json_object_object_add(o, "vcpus", v);
	return o;
}

static void print_text(struct audit *a)
{
	size_t n = json_object_array_length(a->findings);

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
	fprintf(f, "Usage: hvguard audit [--json] [--pin-dir DIR]\n"
		   "A one-shot look at the KVM VMs on this host now: vCPUs' TSC offsets (KVM\n"
		   "debugfs and hvguard's pinned record), VMMs left frozen.\n"
		   "Exit: 0 clean, 1 violations found, 2 error, 3 not root.\n");
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
	struct hv_pindir pd = {.fd = -1};
	struct json_object *out;
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
	rc = hv_preflight_audit();
	if (rc)
		return rc;
	a.vms = calloc(MAX_VMS, sizeof(*a.vms));
	a.findings = json_object_new_array();
	if (!a.vms) {
		hv_err("out of memory");
		return HV_EXIT_ERROR;
	}
	find_vms(&a);
	for (int i = 0; i < a.nr_vms; i++)
		read_debugfs(&a.vms[i]);
	/* Read only, never locked: audit runs beside a daemon. */
	if (!hv_pindir_peek(&pd, a.pin_root))
		a.pin_at = pd.at;
	read_records(&a);
	for (int i = 0; i < a.nr_vms; i++) {
		check_record(&a, &a.vms[i], check_debugfs_offsets(&a, &a.vms[i]));
	}
	if (a.json) {
		struct json_object *vms = json_object_new_array();

		out = json_object_new_object();
		json_object_object_add(out, "type", json_object_new_string("audit"));
		json_object_object_add(out, "version", json_object_new_string(HVGUARD_VERSION));
		for (int i = 0; i < a.nr_vms; i++)
			json_object_array_add(vms, vm_json(&a.vms[i]));
		json_object_object_add(out, "vms", vms);
		json_object_object_add(out, "findings", json_object_get(a.findings));
		json_object_object_add(out, "violations", json_object_new_int(a.violations));
		json_object_object_add(out, "pinned_state",
				       json_object_new_boolean(a.pinned_state));
		printf("%s\n", json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN));
		json_object_put(out);
	} else {
		print_text(&a);
	}
	hv_pindir_close(&pd);
	json_object_put(a.findings);
	free(a.vms);
	return a.violations ? HV_EXIT_VIOLATIONS : HV_EXIT_OK;
}
