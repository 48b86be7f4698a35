/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The daemon's shared context and the interface every watcher family
 * (clock, xen) plugs into. A family owns its skeleton; the daemon owns the
 * one ring-buffer poll loop, the output, the metrics and the summary.
 */
#ifndef HVGUARD_USER_HVGUARD_H
#define HVGUARD_USER_HVGUARD_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "hvguard/rule_ids.h"
#include "listen_addr.h"

struct json_object;
struct ring_buffer;
struct hv_rules;
struct hv_metrics;
struct hv_http;

/* Exit codes shared by every subcommand (documented in README.md). */
enum hv_exit {
	HV_EXIT_OK = 0,
	HV_EXIT_VIOLATIONS = 1, /* audit found violations */
	HV_EXIT_ERROR = 2,	/* bad usage, bad rules file, runtime error */
	HV_EXIT_NOPERM = 3,	/* not root / missing capability */
	HV_EXIT_NOKERNEL = 4,	/* kernel lacks BTF, tracepoints, KVM... */
	HV_EXIT_NOFS = 5,	/* tracefs or bpffs not mountable */
	HV_EXIT_PINDIR = 6,	/* pin directory not root's alone, or its state not ours */
	HV_EXIT_BUSY = 7,	/* another hvguard holds the pin directory */
};

enum hv_severity {
	HV_SEV_INFO,
	HV_SEV_WARNING,
	HV_SEV_CRITICAL,
};

/* What the daemon does when a rule fires. */
enum hv_action {
	HV_ACT_ALERT,
	HV_ACT_CORRECT, /* clock rules: correcting write inside the VMM */
	HV_ACT_KILL,	/* xen rules: SIGKILL from BPF at the offending ioctl */
	HV_ACT_DENY,	/* xen rules: BPF LSM returns -EPERM */
};

/* --reset-pins: never, always (the pinned state is dropped first), or only
 * when it has another layout (left by another version: an upgrade). */
enum hv_reset { HV_RESET_NEVER, HV_RESET_ALWAYS, HV_RESET_OLD_LAYOUT };

struct hv_opts {
	bool json;
	bool correct; /* --correct: every clock rule with a correction */
	bool verbose;
	double duration; /* seconds, 0 = until signalled */
	const char *rules_path;
	const char *metrics_addr;	      /* --metrics as given, or NULL */
	struct hv_listen_addr metrics_listen; /* parsed from it */
	const char *output_path;
	const char *exec_cmd;
	const char *pin_root;	  /* bpffs directory for pinned state */
	const char *pin_at;	  /* "/proc/self/fd/N" of pin_root once checked (pindir.h) */
	enum hv_reset reset_pins; /* --reset-pins[=old-layout] */
	const char *hooks;	  /* --hooks: NULL (best available) or a tier name */
	const char *xen_hooks;	  /* --xen-hooks: NULL (best available), fentry or syscalls */
	const char *xen_deny;	  /* --xen-deny: NULL (best available) or a mechanism's name */
	bool no_pin;
	unsigned vms_per_vmm;  /* --max-vms-per-vmm: the VM table's per-process quota */
	unsigned vms_per_user; /* --max-vms-per-user: its per-user quota */
	bool journald;	       /* --log journald: entries in the journal, not lines */
	double exec_timeout;   /* --exec-timeout: seconds before a hook is killed */
	int exec_max;	       /* --exec-max: hooks running at once, more are dropped */
};

/* One alert as every family reports it. */
struct hv_alert {
	const char *rule; /* rule id, e.g. "kvmclock-jump" */
	enum hv_severity severity;
	enum hv_action action; /* what was configured */
	int pid;
	int tid;
	const char *comm;
	long long vm;		    /* stable VM id, -1 when not a VM */
	const char *vm_name;	    /* -name of the VMM, or NULL */
	bool vm_name_unread;	    /* "unknown": its /proc/PID/cmdline did not answer */
	int vcpu;		    /* -1 when not per-vCPU */
	uint64_t ts_ns;		    /* CLOCK_BOOTTIME of the event */
	struct json_object *fields; /* rule-specific, consumed by hv_emit_alert */
	char message[320];	    /* for a person on call */
};

struct bpf_object;

struct hv_ctx {
	struct hv_opts opts;
	struct hv_rules *rules;
	struct ring_buffer *rb;
	struct hv_metrics *metrics;
	struct hv_http *http; /* the exporter, or NULL */
	FILE *out;
	uint64_t alerts;
	uint64_t violations[HV_RULE_COUNT]; /* alerts by rule (the summary's) */
	uint64_t events_lost;
	volatile int stop;
};

/* A watcher family. Each callback returns 0 or a negative errno and, on
 * failure, has already said what went wrong through hv_err(). */
struct hv_family {
	const char *name;
	/* false when this host has nothing to watch for the family (no KVM,
	 * no Xen): the daemon then runs without it and says so. */
	bool (*present)(struct hv_ctx *ctx, char *why, size_t len);
	int (*load)(struct hv_ctx *ctx);  /* open, configure, load, attach, add ring */
	void (*poll)(struct hv_ctx *ctx); /* periodic work, once per loop turn */
	uint64_t (*lost)(struct hv_ctx *ctx);
	void (*summary)(struct hv_ctx *ctx, struct json_object *summary);
	void (*unload)(struct hv_ctx *ctx);
	/* Rules reload (SIGHUP), before next replaces ctx->rules: apply what
	 * can change at runtime; for what cannot, put the value in force back
	 * into next and append "rule.field" to restart (a JSON array). */
	void (*reload)(struct hv_ctx *ctx, struct hv_rules *next, struct json_object *restart);
	struct bpf_object *(*object)(void); /* its loaded programs (BPF stats) */
	/* The family's BPF object as its skeleton embeds it (bpftool's
	 * <name>__elf_bytes): audit opens it, never loads it, to know the
	 * family's programs by name in the kernel. */
	const void *(*elf_bytes)(size_t *size);
	bool loaded;
	const char *hooks; /* the hook tier attached, set by load */
};

extern struct hv_family hv_clock_family;
extern struct hv_family hv_xen_family;

/* Every watcher family, in load order, NULL-terminated (run.c). */
extern struct hv_family *const hv_families[];
/* f: a struct hv_family *, each family of hv_families in turn. */
#define for_each_family(f)                                                                         \
	for (struct hv_family *const *f##_at = hv_families; ((f) = *f##_at); f##_at++)

/* Each family adds its ring buffer map here (the daemon polls them all). */
typedef int (*hv_ring_fn)(void *ctx, void *data, size_t size);
int hv_ring_add(struct hv_ctx *ctx, int map_fd, hv_ring_fn fn);

/* Output (output.c). */
void hv_emit_alert(struct hv_ctx *ctx, struct hv_alert *a);
void hv_emit_json(struct hv_ctx *ctx, struct json_object *obj); /* consumes obj */
void hv_log(struct hv_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hv_emit_correction(struct hv_ctx *ctx, struct json_object *obj, const char *text);
int hv_output_open(struct hv_ctx *ctx);	   /* --output, appending, 0640 */
void hv_output_reopen(struct hv_ctx *ctx); /* SIGHUP: a new file at --output */
void hv_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void hv_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern bool hv_json_errors; /* errors as JSON objects on stdout */

/* Process, file and time facts (proc.c). */
uint64_t hv_now_ns(clockid_t id);
ssize_t hv_read_file(const char *path, char *buf, size_t len); /* NUL-terminated */
typedef int (*hv_pid_fn)(int pid, void *arg);
void hv_proc_for_each_pid(hv_pid_fn fn, void *arg); /* until fn returns non-zero */
int hv_proc_comm(int pid, char *buf, size_t len);
int hv_proc_vm_name(int pid, char *buf, size_t len);		      /* QEMU -name */
int hv_proc_vmm_arg(int pid, const char *opt, char *buf, size_t len); /* -uuid... */
/* How long a read of a VMM's /proc/PID/cmdline may take (proc.c): those two
 * return -ETIMEDOUT past it, and hv_proc_args_timeouts() counts it. */
#define HV_PROC_ARGS_DEADLINE_MS 100
unsigned long long hv_proc_args_timeouts(void);
void hv_proc_forget(int pid);	    /* it exec'd or exited: its command line is new */
char hv_proc_state(int pid);	    /* R, S, T..., 0 when gone */
uint64_t hv_proc_start_ns(int pid); /* CLOCK_BOOTTIME of its start, 0 when gone */
typedef int (*hv_fd_fn)(int fd, const char *link, void *arg);
int hv_proc_for_each_fd(int pid, hv_fd_fn fn, void *arg);

#endif
