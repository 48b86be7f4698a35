// SPDX-License-Identifier: GPL-2.0
/*
 * minivmm: a scriptable mini VMM on /dev/kvm for hvguard's tests.
 *
 * It replays, on a real running vCPU, the exact KVM ioctl sequences that real
 * VMMs issue around VM setup, reset, pause/resume and migration, so that the
 * hvguard daemon can be tested against each of them; and it reports what the
 * guest itself observed across each pause, which is the ground truth a test
 * compares the daemon's verdict with.
 *
 * The guest is a few bytes of real-mode code per vCPU (CS base 0, code at
 * CODE_GPA). It enables kvmclock itself (wrmsr MSR_KVM_SYSTEM_TIME_NEW with
 * its own PVTI's address | 1, the address handed over in ESI), then loops:
 * rdtsc, out EAX on PORT_TSC_LO, out EDX on PORT_TSC_HI. At each sample the
 * VMM reads that vCPU's PVTI from guest memory and computes the kvmclock the
 * guest would compute for the TSC it just read:
 *	kvmclock = system_time + scale(tsc - tsc_timestamp)
 * KVM writes a vCPU's PVTI only on entry to that vCPU, and the vCPU is out of
 * KVM_RUN while we look, so the PVTI we read is the one the guest used.
 *
 * Usage: minivmm SCENARIO [N] [--pause-ms N] [--cycles N] [--vcpus N]
 *                 [--hold-ms N] [--tsc-delta CYCLES] [--flood-ms N]
 *                 [--vcpu-id-stride S]
 *                 [--last-vcpu-id ID]
 *                 [--traced-as NAME]
 *                 [-name NAME]
 *        minivmm migrate-save --state FILE [--vcpus N] [--run-ms N] [--hold-ms N]
 *        minivmm migrate-save --state FILE --exec-restore --how qemu|precise
 *                 [--downtime-ms N]   (cpr-exec: the restore in this pid)
 *        minivmm migrate-restore --state FILE --how qemu|precise [--downtime-ms N]
 *                 [--tsc-skew-ms N] [--run-ms N] [--save-to FILE] [--hold-ms N]
 *        minivmm --list | --help
 *
 * stdout carries one JSON object per line and nothing else:
 *   once a VM's stop ioctls are done: {"type":"stopped","pid":P,"vm":V}
 *   per pause cycle and VM:
 *	{"type":"cycle","scenario":S,"cycle":I,"pid":P,"vm":V,"vcpus":N,
 *	 "pause_ns":..,"guest_tsc_advance_ns":..,"guest_kvmclock_advance_ns":..,
 *	 "skew_ns":..,"pvti_flags":F}
 *     pause_ns is CLOCK_MONOTONIC from the first stop ioctl to the last resume
 *     ioctl; the two advances are what vCPU 0's guest saw from its last
 *     sample before the pause to its first sample after it; skew_ns is
 *     kvmclock advance - TSC advance (QEMU's stop/cont gives about -pause);
 *     pvti_flags are the PVTI flags of that first sample (2 = GUEST_STOPPED).
 *     Both advances also hold the time vCPU 0 sat idle next to the pause
 *     (in many-vms, while the other VMs ran); the skew does not.
 *   at the end:
 *	{"type":"done","scenario":S,"pid":P,"ok":true,"vms":..,"vcpus":..,
 *	 "tsc_khz":..,"kvm_run_exits":..,"exits_per_s":.., scenario fields...}
 *   migration, two processes (migrate-save, then migrate-restore):
 *	{"type":"saved","pid":P,"vm":V,"vcpus":N,"tsc_khz":..,"clock":..,
 *	 "clock_flags":..,"clock_realtime":..,"save_realtime_ns":..,
 *	 "tsc":[..],"tsc_offset":[..]|null,"guest_tsc":..,"guest_kvmclock":..,
 *	 "guest_realtime_ns":..}
 *     once the source's clocks are saved as QEMU 7.2 saves them at a
 *     migration's stop, and the state written to --state FILE: KVM_GET_CLOCK
 *     (clock, flags, realtime), each vCPU's TSC and TSC offset, the realtime
 *     of the save, vCPU 0's last sample and its realtime. The VM never
 *     resumes: done, --hold-ms paused, exit.
 *	{"type":"restored","how":"qemu"|"precise","pid":P,"vm":V,"vcpus":N,
 *	 "source_pid":..,"tsc_skew_ms":..,"downtime_ns":..,"entry_downtime_ns":..,
 *	 "guest_tsc_warp_ns":..,"guest_kvmclock_warp_ns":..,
 *	 "raw_tsc_warp_ns":..,"raw_kvmclock_warp_ns":..,"pvti_flags":F,
 *	 "clock_realtime_from":..,"guest_tsc_warps_ns":[per vCPU]}
 *     once the destination (which waited for the save's realtime +
 *     --downtime-ms, then created its VM) set its clocks the --how way and
 *     ran: downtime_ns is from the save's realtime to the guest's first
 *     TSC read, entry_downtime_ns to the VMM's first KVM_RUN; the warps
 *     are the guest's clocks minus where the source's would be at the
 *     same realtime, carried forward from the source's last samples (TSC
 *     at the guest's rate, kvmclock at 1 ns/ns): about -downtime the QEMU
 *     way, about 0 the precise way. Both sides are
 *     fitted on RUN_SAMPLES samples each (the one whose realtime stamp
 *     lagged its guest read least); raw_*: vCPU 0's first sample against
 *     the source's last, stamps' lag included (ms now and then under TCG).
 * The scenarios (--list) are a table below; ch-upstream-pause (what
 * cloud-hypervisor really does) is one more than the brief asked for, and
 * --tsc-delta sets what guest-tsc-write adds to the TSC it writes back.
 * Errors: a message on stderr, exit 1. Sleeps survive EINTR and SIGSTOP /
 * ptrace stops (absolute deadlines), KVM_RUN interrupted by a signal is
 * simply re-entered: the daemon may freeze us at any point.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <linux/kvm.h>

#define NSEC_PER_SEC 1000000000LL

/* Guest physical layout: one 64 KiB slot at 0. */
#define GUEST_MEM_SIZE 0x10000
#define CODE_GPA       0x1000
#define PVTI_GPA       0x3000 /* one 32-byte PVTI per vCPU, one page */
#define MAX_VCPUS      128    /* audit is tested past 64 */
#define MAX_VCPU_ID    1023   /* below KVM's KVM_MAX_VCPU_IDS on x86 */

#define PORT_TSC_LO	 0x10
#define PORT_TSC_HI	 0x11
#define PORT_TSC_WRITTEN 0x12
#define PORT_FLOOD_BATCH 0x13
/* guest-tsc-flood: TSC writes per batch (between two I/O exits). */
#define FLOOD_BATCH	 1000
#define FLOOD_MS_DEFAULT 5000
#define CHURN_DEFAULT	 100

#define MSR_IA32_TSC		0x10
#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01

#define PVCLOCK_TSC_STABLE    0x1
#define PVCLOCK_GUEST_STOPPED 0x2

/*
 * Samples per vCPU per run phase: 2 exits each, ~5 us per exit here, so a
 * few ms of guest time; enough for the daemon to see KVM_RUN between steps.
 */
#define RUN_SAMPLES 200
/* A guest TSC write must show up within this many exits. */
#define TSC_WRITE_MAX_EXITS 1000

/* KVM takes host TSC writes within ~1 s of the expected value for a sync. */
#define TSC_FAR_SECONDS 5
/* vcpu-mismatch: vCPU 1 (vcpu-mismatch-last: the last) runs this far ahead
 * of vCPU 0. */
#define MISMATCH_CYCLES 1000000000ULL
/* migrate-in: the "source host" state, arbitrary but large. */
#define MIGRATE_TSC	    (1ULL << 48)
#define MIGRATE_CLOCK_NS    (3ULL * 24 * 3600 * NSEC_PER_SEC)
#define TSC_KHZ_OTHER_DELTA 1000
/* vcpu-tsc-khz-*: a frequency KVM takes without TSC scaling (within its 250
 * ppm of the host's at any TSC over 800 MHz), so the run does not depend on
 * the host's scaling support. */
#define TSC_KHZ_SKEW_DELTA 200
/*
 * migrate-save runs the guest this long first: a destination's host TSC
 * write that lands within 1 s of KVM's expected value is taken as a vCPU
 * sync (the new VM's offset kept, the value ignored), so the saved TSC
 * must be past 1 s, as any real VM's is.
 */
#define MIGRATE_RUN_MS	 1500
#define MANY_VMS_DEFAULT 200

/*
 * The guest, 16-bit real mode. Entry points the VMM jumps to are offsets
 * into this blob; ESI = PVTI gpa | 1, EBP:EDI = delta for the TSC write.
 */
#define GUEST_ENTRY	0x00
#define GUEST_TSC_WRITE 0x1b
#define GUEST_TSC_FLOOD 0x2f

static const uint8_t guest_code[] = {
    0x66, 0xb9, 0x01, 0x4d, 0x56, 0x4b, /* 00: mov ecx, MSR_KVM_SYSTEM_TIME_NEW */
    0x66, 0x89, 0xf0,			/* 06: mov eax, esi */
    0x66, 0x31, 0xd2,			/* 09: xor edx, edx */
    0x0f, 0x30,				/* 0c: wrmsr (kvmclock on) */
    0x0f, 0x31,				/* 0e: loop: rdtsc */
    0x66, 0xe7, PORT_TSC_LO,		/* 10: out PORT_TSC_LO, eax */
    0x66, 0x89, 0xd0,			/* 13: mov eax, edx */
    0x66, 0xe7, PORT_TSC_HI,		/* 16: out PORT_TSC_HI, eax */
    0xeb, 0xf3,				/* 19: jmp loop */
    0x66, 0xb9, 0x10, 0x00, 0x00, 0x00, /* 1b: tsc_write: mov ecx, MSR_IA32_TSC */
    0x0f, 0x31,				/* 21: rdtsc */
    0x66, 0x01, 0xf8,			/* 23: add eax, edi */
    0x66, 0x11, 0xea,			/* 26: adc edx, ebp */
    0x0f, 0x30,				/* 29: wrmsr (guest TSC write) */
    0xe6, PORT_TSC_WRITTEN,		/* 2b: out PORT_TSC_WRITTEN, al */
    0xeb, 0xdf,				/* 2d: jmp loop */
    0x66, 0xb9, 0x10, 0x00, 0x00, 0x00, /* 2f: tsc_flood: mov ecx, MSR_IA32_TSC */
    0x66, 0xbb, FLOOD_BATCH & 0xff, FLOOD_BATCH >> 8, 0x00, 0x00,
    /* 35: batch: mov ebx, FLOOD_BATCH */
    0x0f, 0x31,		    /* 3b: again: rdtsc */
    0x0f, 0x30,		    /* 3d: wrmsr (guest TSC write) */
    0x66, 0x4b,		    /* 3f: dec ebx */
    0x75, 0xf8,		    /* 41: jnz again */
    0xe6, PORT_FLOOD_BATCH, /* 43: out PORT_FLOOD_BATCH, al */
    0xeb, 0xee,		    /* 45: jmp batch */
};

/* struct pvclock_vcpu_time_info, as the guest sees it. */
struct pvti {
	uint32_t version;
	uint32_t pad0;
	uint64_t tsc_timestamp;
	uint64_t system_time;
	uint32_t tsc_to_system_mul;
	int8_t tsc_shift;
	uint8_t flags;
	uint8_t pad[2];
};
_Static_assert(sizeof(struct pvti) == 32, "PVTI is 32 bytes");
_Static_assert(MAX_VCPUS * sizeof(struct pvti) <= 0x1000, "PVTIs fit a page");

struct sample {
	uint64_t tsc;
	uint64_t kvmclock;
	int64_t realtime_ns; /* CLOCK_REALTIME at the exit (migration only) */
	uint8_t pvti_flags;
	bool kvmclock_ok; /* false while the PVTI was never written */
};

struct vcpu {
	int fd;
	int id;	    /* its index: messages, its PVTI */
	int kvm_id; /* KVM_CREATE_VCPU's argument (--last-vcpu-id) */
	struct kvm_run *run;
	volatile struct pvti *pvti;
	uint32_t tsc_lo;
	bool have_lo;
	bool tsc_written;
	uint64_t flood_batches; /* guest-tsc-flood: batches of writes done */
	bool want_first;	/* record the next sample in first_after */
	bool stamp;		/* stamp samples with CLOCK_REALTIME */
	/*
	 * Stamped samples since fit_reset(): the largest guest TSC (in ns)
	 * and kvmclock minus the realtime stamp. The stamp lags the guest's
	 * read by the exits in between (milliseconds now and then under
	 * TCG); the largest difference is the sample that lagged least.
	 */
	int64_t fit_tsc_ns;
	int64_t fit_kvmclock_ns;
	uint64_t fit_n;
	uint64_t nsamples;
	struct sample last;
	struct sample first_after;
	uint64_t saved_tsc;
};

struct vm {
	int fd;
	int index;
	int nvcpus;
	uint8_t *mem;
	unsigned long tsc_khz;
	struct vcpu vcpus[MAX_VCPUS];
	struct kvm_clock_data saved_clock;
	struct sample before; /* vCPU 0's last sample before the pause */
	struct timespec t_stop;
	int64_t pause_ns;
	char extra[512]; /* scenario fields for the done line, ",..." */
};

struct opts {
	uint64_t pause_ms;
	uint64_t cycles;
	uint64_t hold_ms;
	uint64_t flood_ms;
	uint64_t churn;		 /* OP_CHURN: VMs created after the first */
	uint64_t vcpu_id_stride; /* vCPU i gets KVM id i * stride (default 1) */
	int64_t tsc_delta;
	const char *traced_as; /* a tracer child that names itself so */
	int vcpus;	       /* 0: the scenario's default */
	int nvms;	       /* 0: the scenario's default */
	int last_vcpu_id;      /* 0: the last vCPU's index */
	const char *state;     /* migrate-*: --state FILE */
	const char *save_to;   /* migrate-restore: then migrate-save to FILE */
	int how;	       /* migrate-restore: enum mig_how */
	uint64_t downtime_ms;  /* migrate-restore: from the save's realtime */
	int64_t tsc_skew_ms;   /* migrate-restore: TSC restored this far off */
	uint64_t run_ms;       /* OP_RUN_FOR: at least this long */
	bool run_ms_set;
	bool exec_restore; /* migrate-save: then exec migrate-restore in this pid (cpr-exec) */
};

/*
 * A migration's saved state (migrate-save writes it, migrate-restore reads
 * it): what QEMU 7.2 carries from source to destination for the clocks,
 * plus each vCPU's TSC offset (the precise way, one host) and the guest's
 * own last sample, the ground truth of where its clocks were.
 */
enum mig_how { HOW_NONE = 0, HOW_QEMU, HOW_PRECISE };

struct mig_vcpu {
	uint64_t tsc;	    /* KVM_GET_MSRS(IA32_TSC) at the save */
	uint64_t offset;    /* KVM_VCPU_TSC_OFFSET at the save */
	int64_t fit_tsc_ns; /* the guest's, over its last samples */
	int64_t fit_kvmclock_ns;
};

struct mig_state {
	int pid;
	int nvcpus;
	unsigned long tsc_khz;
	bool have_offsets;	     /* the kernel has KVM_VCPU_TSC_CTRL */
	struct kvm_clock_data clock; /* KVM_GET_CLOCK at the save */
	int64_t save_realtime_ns;    /* CLOCK_REALTIME just before the TSC reads */
	struct sample guest;	     /* vCPU 0's last sample before the save */
	struct mig_vcpu vcpu[MAX_VCPUS];
};

struct scenario;

struct ctx {
	int kvm_fd;
	size_t run_size;
	struct vm *vms;
	int nvms;
	int nvcpus;
	const struct scenario *sc;
	struct opts opt;
	uint64_t exits;
	int64_t run_ns;
	struct mig_state mig_in;   /* migrate-restore: the state read */
	const char *save_path;	   /* OP_MIGRATE_SAVE writes here, if set */
	const char *realtime_from; /* the precise restore's realtime: kvm, minivmm */
};

/*
 * A scenario is data: a script of steps run in order; PAUSE_CYCLES and
 * EXIT_MIDPAUSE use the scenario's stop and resume lists. Every step is
 * applied to every VM (there is more than one only in many-vms).
 */
enum op {
	OP_END = 0,
	OP_RUN,			 /* run every vCPU for RUN_SAMPLES samples */
	OP_SET_TSC_KHZ_CUR,	 /* KVM_SET_TSC_KHZ(current kHz), per vCPU */
	OP_QEMU_MSRS,		 /* KVM_SET_MSRS{TSC=0, SYSTEM_TIME_NEW=0}, per vCPU */
	OP_TSC0,		 /* KVM_SET_MSRS{TSC=0}, per vCPU */
	OP_RESET,		 /* QEMU system_reset: QEMU_MSRS + regs + sregs */
	OP_GET_TSC,		 /* KVM_GET_MSRS{TSC}, per vCPU, saved */
	OP_GET_CLOCK,		 /* KVM_GET_CLOCK, saved */
	OP_SET_CLOCK,		 /* KVM_SET_CLOCK{saved clock, flags 0} */
	OP_SET_CLOCK_REALTIME,	 /* KVM_SET_CLOCK{saved clock+realtime, REALTIME} */
	OP_SET_CLOCK_CH,	 /* KVM_SET_CLOCK{saved clock+realtime, flags 0} */
	OP_SET_CLOCK_COMPAT,	 /* OP_SET_CLOCK through int $0x80 (compat) */
	OP_KVMCLOCK_CTRL,	 /* KVM_KVMCLOCK_CTRL, per vCPU */
	OP_SET_TSC_FAR,		 /* KVM_SET_MSRS{TSC = saved - 5 s}, per vCPU */
	OP_SET_TSC_KHZ_OTHER,	 /* KVM_SET_TSC_KHZ(current - 1000) on vCPU 0 */
	OP_SET_TSC_KHZ_SKEW,	 /* KVM_SET_TSC_KHZ(current + 200) on vCPU 1 only */
	OP_SET_TSC_KHZ_SKEW_ALL, /* KVM_SET_TSC_KHZ(current + 200) on every vCPU */
	OP_TSC_OFFSET_SKEW,	 /* TSC_OFFSET attr: vCPU 0 = its own, vCPU 1 ahead */
	OP_TSC_OFFSET_SKEW_LAST, /* TSC_OFFSET attr: all = vCPU 0's, the last ahead */
	OP_MIGRATE_TSC,		 /* KVM_SET_MSRS{TSC = MIGRATE_TSC}, per vCPU */
	OP_MIGRATE_CLOCK,	 /* KVM_SET_CLOCK{MIGRATE_CLOCK_NS, flags 0} */
	OP_GUEST_TSC_WRITE,	 /* vCPU 0's guest does wrmsr(IA32_TSC) once */
	OP_GUEST_TSC_FLOOD,	 /* vCPU 0's guest loops wrmsr(IA32_TSC) */
	OP_RUN_FOR,		 /* OP_RUN, then run on until --run-ms passed */
	OP_MIGRATE_SAVE,	 /* QEMU's stop (TSCs, GET_CLOCK), offsets, write */
	OP_RESTORE_TSC,		 /* --how: TSC MSR = saved, or TSC_OFFSET = source's */
	OP_RESTORE_CLOCK,	 /* --how: SET_CLOCK{saved, 0} + KVMCLOCK_CTRL, or REALTIME */
	OP_RESTORE_RUN,		 /* first run; print what the guest saw */
	OP_CHURN,		 /* --churn N times: close the VM, create it anew, run */
	OP_PAUSE_CYCLES,	 /* --cycles x: stop, sleep, resume, run, report */
	OP_EXIT_MIDPAUSE,	 /* stop, sleep, report, exit(0) while paused */
	OP_COUNT,
};

#define MAX_OPS 8

struct scenario {
	const char *name;
	const char *help;
	int vcpus;		       /* default vCPUs per VM (0 means 1) */
	int vms;		       /* default VMs (0 means 1); many-vms takes N */
	bool realtime_samples;	       /* stamp every sample with CLOCK_REALTIME */
	uint64_t run_ms;	       /* OP_RUN_FOR's default for --run-ms */
	int (*prepare)(struct ctx *c); /* before the VMs are created */
	enum op script[MAX_OPS];
	enum op stop[MAX_OPS];
	enum op resume[MAX_OPS];
};

/*
 * What the VMMs do, from their sources:
 * - QEMU 7.2 (hw/i386/kvm/clock.c, target/i386/kvm/kvm.c; strace here):
 *   setup SET_TSC_KHZ per vCPU, then a reset-level MSR put that includes
 *   TSC=0 and the kvmclock MSR (0 until the guest enables it); stop reads
 *   the TSC of each vCPU, then GET_CLOCK; cont does SET_CLOCK{saved, 0}
 *   then KVMCLOCK_CTRL on each vCPU.
 * - crosvm (src/crosvm/sys/linux.rs, VmRequest::SuspendVm / ResumeVm):
 *   get_pvclock() (KVM_GET_CLOCK) right after the vCPUs stop, set_pvclock()
 *   (KVM_SET_CLOCK) with the saved state just before they run again, no
 *   KVMCLOCK_CTRL. Its hypervisor/src/kvm/x86_64.rs builds kvm_clock_data
 *   from the saved ClockState with realtime zeroed; replayed with flags 0.
 * - cloud-hypervisor (vmm/src/vm.rs, Pausable for Vm): pause does
 *   GET_CLOCK and then clock.reset_flags(), resume does SET_CLOCK with the
 *   saved clock and realtime but flags 0, i.e. the same rewind as QEMU.
 *   ch-pause-resume replays the corrected form (flags = REALTIME), which is
 *   what hvguard should not flag; ch-upstream-pause replays upstream.
 * - Firecracker (vstate/vcpu): plain pause/resume touch no clock state;
 *   KVMCLOCK_CTRL is issued on each vCPU after its state is restored.
 *   FC and CH also write TSC=0 among their boot MSRs.
 * - QEMU 7.2 live migration (the same files, migration/migration.c): the
 *   source stops as above (each vCPU's TSC, then GET_CLOCK) and sends
 *   them; the destination, set up and reset like any QEMU (SET_TSC_KHZ,
 *   TSC=0), loads the state: KVM_SET_MSRS with the TSC as saved and the
 *   kvmclock MSR, then at its start SET_CLOCK{saved, flags 0} and
 *   KVMCLOCK_CTRL on each vCPU. The guest's TSC and kvmclock both lose the
 *   downtime. The precise way (one host): the source's TSC offsets through
 *   KVM_VCPU_TSC_OFFSET, and SET_CLOCK with the save's realtime and
 *   KVM_CLOCK_REALTIME; the guest loses nothing.
 */
static int migrate_prepare_save(struct ctx *c);
static int migrate_prepare_restore(struct ctx *c);

static const struct scenario scenarios[] = {
    {
	.name = "create-reset",
	.help = "QEMU setup, run, system_reset (TSC=0, regs), run; no alert",
	.script = {OP_SET_TSC_KHZ_CUR, OP_QEMU_MSRS, OP_RUN, OP_RESET, OP_RUN},
    },
    {
	.name = "qemu-stopcont",
	.help = "QEMU 7.2 stop/cont: kvmclock rewound by the pause",
	.script = {OP_SET_TSC_KHZ_CUR, OP_QEMU_MSRS, OP_RUN, OP_PAUSE_CYCLES},
	.stop = {OP_GET_TSC, OP_GET_CLOCK},
	.resume = {OP_SET_CLOCK, OP_KVMCLOCK_CTRL},
    },
    {
	.name = "crosvm-resume",
	.help = "crosvm suspend/resume: GET_CLOCK, SET_CLOCK{saved, 0}",
	.script = {OP_RUN, OP_PAUSE_CYCLES},
	.stop = {OP_GET_CLOCK},
	.resume = {OP_SET_CLOCK},
    },
    {
	.name = "ch-pause-resume",
	.help = "cloud-hypervisor, corrected: SET_CLOCK with REALTIME; no jump",
	.script = {OP_TSC0, OP_RUN, OP_PAUSE_CYCLES},
	.stop = {OP_GET_CLOCK},
	.resume = {OP_SET_CLOCK_REALTIME},
    },
    {
	.name = "ch-upstream-pause",
	.help = "cloud-hypervisor as shipped: flags reset to 0, clock rewound",
	.script = {OP_TSC0, OP_RUN, OP_PAUSE_CYCLES},
	.stop = {OP_GET_CLOCK},
	.resume = {OP_SET_CLOCK_CH},
    },
    {
	.name = "compat-stopcont",
	.help = "QEMU's rewind, KVM_SET_CLOCK through int $0x80 (compat)",
	.script = {OP_SET_TSC_KHZ_CUR, OP_QEMU_MSRS, OP_RUN, OP_PAUSE_CYCLES},
	.stop = {OP_GET_TSC, OP_GET_CLOCK},
	.resume = {OP_SET_CLOCK_COMPAT, OP_KVMCLOCK_CTRL},
    },
    {
	.name = "firecracker-pause",
	.help = "pause/resume with only KVMCLOCK_CTRL per vCPU; nothing",
	.script = {OP_TSC0, OP_RUN, OP_PAUSE_CYCLES},
	.resume = {OP_KVMCLOCK_CTRL},
    },
    {
	.name = "tsc-msr-rewrite",
	.help = "QEMU stop, resume writes TSC 5 s back; tsc-offset-change",
	.script = {OP_SET_TSC_KHZ_CUR, OP_QEMU_MSRS, OP_RUN, OP_PAUSE_CYCLES},
	.stop = {OP_GET_TSC, OP_GET_CLOCK},
	.resume = {OP_SET_TSC_FAR},
    },
    {
	.name = "tsc-khz-after-run",
	.help = "run, then SET_TSC_KHZ(current - 1000) on vCPU 0, run",
	.script = {OP_RUN, OP_SET_TSC_KHZ_OTHER, OP_RUN},
    },
    {
	.name = "tsc-khz-then-cont",
	.help = "run, SET_TSC_KHZ(current - 1000) on vCPU 0, KVMCLOCK_CTRL, run",
	.script = {OP_RUN, OP_SET_TSC_KHZ_OTHER, OP_KVMCLOCK_CTRL, OP_RUN},
    },
    {
	.name = "vcpu-mismatch",
	.help = "2 vCPUs given different TSC offsets before the first run",
	.vcpus = 2,
	.script = {OP_TSC_OFFSET_SKEW, OP_RUN},
    },
    {
	.name = "vcpu-tsc-khz-mismatch",
	.help = "2 vCPUs, SET_TSC_KHZ(current + 200) on vCPU 1 only, run, KVMCLOCK_CTRL, run",
	.vcpus = 2,
	.script = {OP_SET_TSC_KHZ_SKEW, OP_RUN, OP_KVMCLOCK_CTRL, OP_RUN},
    },
    {
	.name = "vcpu-tsc-khz-agree",
	.help = "2 vCPUs, SET_TSC_KHZ(current + 200) on each, run, KVMCLOCK_CTRL, run",
	.vcpus = 2,
	.script = {OP_SET_TSC_KHZ_SKEW_ALL, OP_RUN, OP_KVMCLOCK_CTRL, OP_RUN},
    },
    {
	.name = "vcpu-mismatch-last",
	.help = "--vcpus N (default 2) given vCPU 0's TSC offset, the last one ahead",
	.vcpus = 2,
	.script = {OP_TSC_OFFSET_SKEW_LAST, OP_RUN},
    },
    {
	.name = "migrate-in",
	.help = "incoming migration: TSC kHz, TSC, clock set, first run",
	.script = {OP_SET_TSC_KHZ_CUR, OP_MIGRATE_TSC, OP_MIGRATE_CLOCK, OP_RUN},
    },
    {
	.name = "migrate-save",
	.help = "migration's source: run, QEMU 7.2's stop, --state FILE written, exit",
	.realtime_samples = true,
	.run_ms = MIGRATE_RUN_MS,
	.prepare = migrate_prepare_save,
	.script = {OP_SET_TSC_KHZ_CUR, OP_QEMU_MSRS, OP_RUN_FOR, OP_MIGRATE_SAVE},
    },
    {
	.name = "migrate-restore",
	.help = "migration's destination: --state FILE --how qemu|precise; the guest's warps",
	.realtime_samples = true,
	.prepare = migrate_prepare_restore,
	.script = {OP_SET_TSC_KHZ_CUR, OP_QEMU_MSRS, OP_RESTORE_TSC, OP_RESTORE_CLOCK,
		   OP_RESTORE_RUN, OP_RUN_FOR, OP_MIGRATE_SAVE},
    },
    {
	.name = "guest-tsc-write",
	.help = "the guest writes its own TSC once (wrmsr 0x10); logged only",
	.script = {OP_RUN, OP_GUEST_TSC_WRITE, OP_RUN},
    },
    {
	.name = "guest-tsc-flood",
	.help = "the guest loops wrmsr(IA32_TSC) for --flood-ms; logged only",
	.script = {OP_RUN, OP_GUEST_TSC_FLOOD},
    },
    {
	.name = "vm-exit-midpause",
	.help = "QEMU stop, then exit(0) without resuming",
	.script = {OP_SET_TSC_KHZ_CUR, OP_QEMU_MSRS, OP_RUN, OP_EXIT_MIDPAUSE},
	.stop = {OP_GET_TSC, OP_GET_CLOCK},
    },
    {
	.name = "vm-churn",
	.help = "--churn N VMs (default 100) one after another in one process, then stop/cont",
	.script = {OP_SET_TSC_KHZ_CUR, OP_QEMU_MSRS, OP_RUN, OP_CHURN, OP_PAUSE_CYCLES},
	.stop = {OP_GET_TSC, OP_GET_CLOCK},
	.resume = {OP_SET_CLOCK, OP_KVMCLOCK_CTRL},
    },
    {
	.name = "hold-vms",
	.help = "N VMs (default 200) created, never run, held --hold-ms",
	.vms = MANY_VMS_DEFAULT,
	.script = {OP_END},
    },
    {
	.name = "many-vms",
	.help = "N VMs (default 200): setup, run, QEMU stop/cont each, exit",
	.vms = MANY_VMS_DEFAULT,
	.script = {OP_SET_TSC_KHZ_CUR, OP_QEMU_MSRS, OP_RUN, OP_PAUSE_CYCLES},
	.stop = {OP_GET_TSC, OP_GET_CLOCK},
	.resume = {OP_SET_CLOCK, OP_KVMCLOCK_CTRL},
    },
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sys_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int fail(const char *fmt, ...)
{
	va_list ap;

	fputs("minivmm: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -1;
}

/* As fail(), with errno's text appended. */
static int sys_fail(const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	fputs("minivmm: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", strerror(err));
	return -1;
}

/*
 * Any of our ioctls may be interrupted while the daemon stops or ptraces us;
 * none of them has a partial effect then, so simply issue it again.
 */
static int kvm_ioctl(int fd, unsigned long req, void *arg)
{
	int r;

	do
		r = ioctl(fd, req, arg);
	while (r < 0 && (errno == EINTR || errno == EAGAIN));
	return r;
}

static int64_t ts_ns(const struct timespec *t)
{
	return t->tv_sec * NSEC_PER_SEC + t->tv_nsec;
}

static int64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return ts_ns(&t);
}

/* An absolute deadline: a stop or signal in the middle only shortens it. */
static void sleep_ms(uint64_t ms)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (ms % 1000) * 1000000;
	if (t.tv_nsec >= NSEC_PER_SEC) {
		t.tv_sec++;
		t.tv_nsec -= NSEC_PER_SEC;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR)
		;
}

static int64_t tsc_to_ns(int64_t cycles, unsigned long khz)
{
	return (int64_t)((__int128)cycles * 1000000 / (__int128)khz);
}

/* pvclock's scale: ((d << shift or >> -shift) * mul) >> 32, 128-bit product. */
static uint64_t pvclock_scale(uint64_t delta, uint32_t mul, int8_t shift)
{
	if (shift < 0)
		delta >>= -shift;
	else
		delta <<= shift;
	return (uint64_t)(((unsigned __int128)delta * mul) >> 32);
}

/* Seqlock read of a PVTI, as the guest does it. */
static bool pvti_read(volatile struct pvti *p, struct pvti *out)
{
	uint32_t v;
	int i;

	for (i = 0; i < 1000; i++) {
		v = p->version;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		out->tsc_timestamp = p->tsc_timestamp;
		out->system_time = p->system_time;
		out->tsc_to_system_mul = p->tsc_to_system_mul;
		out->tsc_shift = p->tsc_shift;
		out->flags = p->flags;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (!(v & 1) && p->version == v) {
			out->version = v;
			return true;
		}
	}
	return false;
}

static void sample_take(struct vm *vm, struct vcpu *v, uint64_t tsc)
{
	struct sample s = {.tsc = tsc};
	struct timespec t;
	struct pvti p;

	if (v->stamp) {
		clock_gettime(CLOCK_REALTIME, &t);
		s.realtime_ns = ts_ns(&t);
	}

	if (pvti_read(v->pvti, &p) && p.version) {
		if (tsc >= p.tsc_timestamp)
			s.kvmclock =
			    p.system_time +
			    pvclock_scale(tsc - p.tsc_timestamp, p.tsc_to_system_mul, p.tsc_shift);
		else
			s.kvmclock =
			    p.system_time -
			    pvclock_scale(p.tsc_timestamp - tsc, p.tsc_to_system_mul, p.tsc_shift);
		s.pvti_flags = p.flags;
		s.kvmclock_ok = true;
	}
	if (v->stamp && s.kvmclock_ok) {
		int64_t ft = tsc_to_ns((int64_t)tsc, vm->tsc_khz) - s.realtime_ns;
		int64_t fk = (int64_t)s.kvmclock - s.realtime_ns;

		if (!v->fit_n || ft > v->fit_tsc_ns)
			v->fit_tsc_ns = ft;
		if (!v->fit_n || fk > v->fit_kvmclock_ns)
			v->fit_kvmclock_ns = fk;
		v->fit_n++;
	}
	v->last = s;
	v->nsamples++;
	if (v->want_first) {
		v->first_after = s;
		v->want_first = false;
	}
}

static int handle_io(struct vm *vm, struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	uint32_t val = 0;

	if (run->io.direction != KVM_EXIT_IO_OUT || run->io.count != 1)
		return fail("vm %d vcpu %d: unexpected I/O on port %#x", vm->index, v->id,
			    run->io.port);
	memcpy(&val, data, run->io.size <= 4 ? run->io.size : 4);
	switch (run->io.port) {
	case PORT_TSC_LO:
		v->tsc_lo = val;
		v->have_lo = true;
		return 0;
	case PORT_TSC_HI:
		/* A high half without its low half: a step restarted the guest. */
		if (v->have_lo)
			sample_take(vm, v, (uint64_t)val << 32 | v->tsc_lo);
		v->have_lo = false;
		return 0;
	case PORT_TSC_WRITTEN:
		v->tsc_written = true;
		return 0;
	case PORT_FLOOD_BATCH:
		v->flood_batches++;
		return 0;
	}
	return fail("vm %d vcpu %d: I/O on unknown port %#x", vm->index, v->id, run->io.port);
}

/* One KVM_RUN and its exit. */
static int vcpu_step(struct ctx *c, struct vm *vm, struct vcpu *v)
{
	if (kvm_ioctl(v->fd, KVM_RUN, NULL) < 0)
		return sys_fail("vm %d vcpu %d: KVM_RUN", vm->index, v->id);
	c->exits++;
	switch (v->run->exit_reason) {
	case KVM_EXIT_IO:
		return handle_io(vm, v);
	case KVM_EXIT_HLT:
	case KVM_EXIT_INTR:
		return 0;
	case KVM_EXIT_FAIL_ENTRY:
		return fail("vm %d vcpu %d: KVM_RUN: entry failed, reason %#llx", vm->index, v->id,
			    (unsigned long long)v->run->fail_entry.hardware_entry_failure_reason);
	case KVM_EXIT_INTERNAL_ERROR:
		return fail("vm %d vcpu %d: KVM_RUN: internal error, suberror %u", vm->index, v->id,
			    v->run->internal.suberror);
	}
	return fail("vm %d vcpu %d: KVM_RUN: unexpected exit reason %u", vm->index, v->id,
		    v->run->exit_reason);
}

static int vcpu_run_samples(struct ctx *c, struct vm *vm, struct vcpu *v, uint64_t n)
{
	uint64_t goal = v->nsamples + n;

	while (v->nsamples < goal)
		if (vcpu_step(c, vm, v))
			return -1;
	return 0;
}

static int msrs_set(struct vm *vm, struct vcpu *v, const uint32_t *idx, const uint64_t *val, int n)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[2];
	} m = {.hdr.nmsrs = n};
	int i, r;

	for (i = 0; i < n; i++) {
		m.e[i].index = idx[i];
		m.e[i].data = val[i];
	}
	r = kvm_ioctl(v->fd, KVM_SET_MSRS, &m);
	if (r < 0)
		return sys_fail("vm %d vcpu %d: KVM_SET_MSRS", vm->index, v->id);
	if (r != n)
		return fail("vm %d vcpu %d: KVM_SET_MSRS: MSR %#x refused", vm->index, v->id,
			    idx[r]);
	return 0;
}

static int msr_get(struct vm *vm, struct vcpu *v, uint32_t idx, uint64_t *val)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[1];
	} m = {.hdr.nmsrs = 1, .e[0].index = idx};
	int r;

	r = kvm_ioctl(v->fd, KVM_GET_MSRS, &m);
	if (r < 0)
		return sys_fail("vm %d vcpu %d: KVM_GET_MSRS", vm->index, v->id);
	if (r != 1)
		return fail("vm %d vcpu %d: KVM_GET_MSRS: MSR %#x refused", vm->index, v->id, idx);
	*val = m.e[0].data;
	return 0;
}

static uint64_t pvti_gpa(int id)
{
	return PVTI_GPA + id * sizeof(struct pvti);
}

/* Real mode at CODE_GPA + rip_off, the guest's parameters in registers. */
static int vcpu_set_state(struct ctx *c, struct vm *vm, struct vcpu *v, uint64_t rip_off)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs = {
	    .rip = CODE_GPA + rip_off,
	    .rflags = 0x2,
	    .rsi = pvti_gpa(v->id) | 1,
	    .rdi = (uint32_t)c->opt.tsc_delta,
	    .rbp = (uint32_t)((uint64_t)c->opt.tsc_delta >> 32),
	};

	if (kvm_ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return sys_fail("vm %d vcpu %d: KVM_GET_SREGS", vm->index, v->id);
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (kvm_ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return sys_fail("vm %d vcpu %d: KVM_SET_SREGS", vm->index, v->id);
	if (kvm_ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return sys_fail("vm %d vcpu %d: KVM_SET_REGS", vm->index, v->id);
	v->have_lo = false;
	return 0;
}

static int vcpu_create(struct ctx *c, struct vm *vm, int id)
{
	struct vcpu *v = &vm->vcpus[id];
	void *run;

	/* KVM's vCPU id (an APIC id, sparse with --vcpu-id-stride); v->id,
	 * the index, places its PVTI. */
	unsigned long kvm_id = (unsigned long)id * c->opt.vcpu_id_stride;

	v->id = id;
	v->stamp = c->sc->realtime_samples;
	v->kvm_id = id == vm->nvcpus - 1 && c->opt.last_vcpu_id ? c->opt.last_vcpu_id : (int)kvm_id;
	v->fd = kvm_ioctl(vm->fd, KVM_CREATE_VCPU, (void *)(uintptr_t)v->kvm_id);
	if (v->fd < 0)
		return sys_fail("vm %d: KVM_CREATE_VCPU %d", vm->index, v->kvm_id);
	run = mmap(NULL, c->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (run == MAP_FAILED)
		return sys_fail("vm %d vcpu %d: mmap kvm_run", vm->index, id);
	v->run = run;
	v->pvti = (volatile struct pvti *)(vm->mem + pvti_gpa(id));
	return vcpu_set_state(c, vm, v, GUEST_ENTRY);
}

/* No fd, no memory: what vm_destroy() may be called on. */
static void vm_reset(struct vm *vm)
{
	int j;

	memset(vm, 0, sizeof(*vm));
	vm->fd = -1;
	for (j = 0; j < MAX_VCPUS; j++)
		vm->vcpus[j].fd = -1;
}

static int vm_create(struct ctx *c, struct vm *vm, int index)
{
	struct kvm_userspace_memory_region region = {
	    .slot = 0,
	    .guest_phys_addr = 0,
	    .memory_size = GUEST_MEM_SIZE,
	};
	void *mem;
	int i, r;

	vm->index = index;
	vm->nvcpus = c->nvcpus;
	vm->fd = kvm_ioctl(c->kvm_fd, KVM_CREATE_VM, NULL);
	if (vm->fd < 0)
		return sys_fail("vm %d: KVM_CREATE_VM", index);
	mem = mmap(NULL, GUEST_MEM_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		return sys_fail("vm %d: mmap guest memory", index);
	vm->mem = mem;
	memcpy(vm->mem + CODE_GPA, guest_code, sizeof(guest_code));
	region.userspace_addr = (uintptr_t)mem;
	if (kvm_ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return sys_fail("vm %d: KVM_SET_USER_MEMORY_REGION", index);
	for (i = 0; i < vm->nvcpus; i++)
		if (vcpu_create(c, vm, i))
			return -1;
	r = kvm_ioctl(vm->vcpus[0].fd, KVM_GET_TSC_KHZ, NULL);
	if (r <= 0)
		return sys_fail("vm %d: KVM_GET_TSC_KHZ", index);
	vm->tsc_khz = r;
	return 0;
}

static void vm_destroy(struct ctx *c, struct vm *vm)
{
	int i;

	for (i = 0; i < MAX_VCPUS; i++) {
		if (vm->vcpus[i].run)
			munmap(vm->vcpus[i].run, c->run_size);
		if (vm->vcpus[i].fd >= 0)
			close(vm->vcpus[i].fd);
	}
	if (vm->mem)
		munmap(vm->mem, GUEST_MEM_SIZE);
	if (vm->fd >= 0)
		close(vm->fd);
}

/* ---- steps, each applied to one VM ---- */

static int op_run(struct ctx *c, struct vm *vm)
{
	int64_t t0 = now_ns();
	int i;

	for (i = 0; i < vm->nvcpus; i++)
		if (vcpu_run_samples(c, vm, &vm->vcpus[i], RUN_SAMPLES))
			return -1;
	c->run_ns += now_ns() - t0;
	return 0;
}

static int op_set_tsc_khz_cur(struct ctx *c, struct vm *vm)
{
	int i;

	(void)c;
	for (i = 0; i < vm->nvcpus; i++)
		if (kvm_ioctl(vm->vcpus[i].fd, KVM_SET_TSC_KHZ, (void *)(uintptr_t)vm->tsc_khz) < 0)
			return sys_fail("vm %d vcpu %d: KVM_SET_TSC_KHZ %lu", vm->index, i,
					vm->tsc_khz);
	return 0;
}

static int set_msrs_all(struct vm *vm, const uint32_t *idx, const uint64_t *val, int n)
{
	int i;

	for (i = 0; i < vm->nvcpus; i++)
		if (msrs_set(vm, &vm->vcpus[i], idx, val, n))
			return -1;
	return 0;
}

static const uint32_t qemu_msr_idx[] = {MSR_IA32_TSC, MSR_KVM_SYSTEM_TIME_NEW};
static const uint64_t qemu_msr_val[] = {0, 0};

static int op_qemu_msrs(struct ctx *c, struct vm *vm)
{
	(void)c;
	return set_msrs_all(vm, qemu_msr_idx, qemu_msr_val, 2);
}

static int op_tsc0(struct ctx *c, struct vm *vm)
{
	(void)c;
	return set_msrs_all(vm, qemu_msr_idx, qemu_msr_val, 1);
}

/* QEMU's system_reset: the reset-level MSR put, then registers. */
static int op_reset(struct ctx *c, struct vm *vm)
{
	int i;

	if (op_qemu_msrs(c, vm))
		return -1;
	for (i = 0; i < vm->nvcpus; i++)
		if (vcpu_set_state(c, vm, &vm->vcpus[i], GUEST_ENTRY))
			return -1;
	return 0;
}

static int op_get_tsc(struct ctx *c, struct vm *vm)
{
	struct vcpu *v;
	int i;

	(void)c;
	for (i = 0; i < vm->nvcpus; i++) {
		v = &vm->vcpus[i];
		if (msr_get(vm, v, MSR_IA32_TSC, &v->saved_tsc))
			return -1;
	}
	return 0;
}

static int op_get_clock(struct ctx *c, struct vm *vm)
{
	(void)c;
	memset(&vm->saved_clock, 0, sizeof(vm->saved_clock));
	if (kvm_ioctl(vm->fd, KVM_GET_CLOCK, &vm->saved_clock) < 0)
		return sys_fail("vm %d: KVM_GET_CLOCK", vm->index);
	return 0;
}

static int set_clock(struct vm *vm, uint64_t clock, uint64_t realtime, uint32_t flags)
{
	struct kvm_clock_data d = {
	    .clock = clock,
	    .realtime = realtime,
	    .flags = flags,
	};

	if (kvm_ioctl(vm->fd, KVM_SET_CLOCK, &d) < 0)
		return sys_fail("vm %d: KVM_SET_CLOCK", vm->index);
	return 0;
}

static int op_set_clock(struct ctx *c, struct vm *vm)
{
	(void)c;
	return set_clock(vm, vm->saved_clock.clock, 0, 0);
}

static int op_set_clock_realtime(struct ctx *c, struct vm *vm)
{
	(void)c;
	/* Without it, realtime is 0 and KVM would add the whole epoch. */
	if (!(vm->saved_clock.flags & KVM_CLOCK_REALTIME))
		return fail(
		    "vm %d: KVM_GET_CLOCK gave no realtime (flags %#x): host clocksource not TSC?",
		    vm->index, vm->saved_clock.flags);
	return set_clock(vm, vm->saved_clock.clock, vm->saved_clock.realtime, KVM_CLOCK_REALTIME);
}

static int op_set_clock_ch(struct ctx *c, struct vm *vm)
{
	(void)c;
	return set_clock(vm, vm->saved_clock.clock, vm->saved_clock.realtime, 0);
}

/*
 * ioctl(2) through the 32-bit entry (int $0x80, i386 number 54), as an
 * attacker routing around syscall tracepoints would issue it: KVM's compat
 * handler passes KVM_SET_CLOCK through unchanged. Its argument must lie
 * below 4 GiB.
 */
static int op_set_clock_compat(struct ctx *c, struct vm *vm)
{
	struct kvm_clock_data *d;
	long ret;

	(void)c;
	d = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1,
		 0);
	if (d == MAP_FAILED)
		return sys_fail("vm %d: mmap below 4 GiB", vm->index);
	memset(d, 0, sizeof(*d));
	d->clock = vm->saved_clock.clock;
	do
		__asm__ volatile("int $0x80"
				 : "=a"(ret)
				 : "a"(54), "b"(vm->fd), "c"(KVM_SET_CLOCK), "d"(d)
				 : "memory");
	while (ret == -EINTR);
	munmap(d, 4096);
	if (ret == -ENOSYS)
		return fail("vm %d: int $0x80 is not available on this kernel (no IA-32 emulation)",
			    vm->index);
	if (ret < 0)
		return fail("vm %d: compat KVM_SET_CLOCK: %s", vm->index, strerror(-ret));
	return 0;
}

static int op_kvmclock_ctrl(struct ctx *c, struct vm *vm)
{
	int i;

	(void)c;
	for (i = 0; i < vm->nvcpus; i++)
		if (kvm_ioctl(vm->vcpus[i].fd, KVM_KVMCLOCK_CTRL, NULL) < 0)
			return sys_fail("vm %d vcpu %d: KVM_KVMCLOCK_CTRL", vm->index, i);
	return 0;
}

static int op_set_tsc_far(struct ctx *c, struct vm *vm)
{
	uint64_t far = (uint64_t)TSC_FAR_SECONDS * vm->tsc_khz * 1000;
	uint32_t idx = MSR_IA32_TSC;
	uint64_t val;
	int i;

	(void)c;
	for (i = 0; i < vm->nvcpus; i++) {
		val = vm->vcpus[i].saved_tsc - far;
		if (msrs_set(vm, &vm->vcpus[i], &idx, &val, 1))
			return -1;
	}
	snprintf(vm->extra, sizeof(vm->extra), ",\"tsc_rewrite_cycles\":-%" PRIu64, far);
	return 0;
}

/* This kernel may refuse TSC scaling: report what it said, never fail. */
static int op_set_tsc_khz_other(struct ctx *c, struct vm *vm)
{
	unsigned long to = vm->tsc_khz - TSC_KHZ_OTHER_DELTA;
	struct vcpu *v = &vm->vcpus[0];
	int r, err, after;

	(void)c;
	r = kvm_ioctl(v->fd, KVM_SET_TSC_KHZ, (void *)(uintptr_t)to);
	err = errno;
	after = kvm_ioctl(v->fd, KVM_GET_TSC_KHZ, NULL);
	if (after <= 0)
		return sys_fail("vm %d vcpu 0: KVM_GET_TSC_KHZ", vm->index);
	snprintf(vm->extra, sizeof(vm->extra),
		 ",\"set_tsc_khz\":{\"vcpu\":0,\"from\":%lu,\"to\":%lu,"
		 "\"accepted\":%s,\"error\":%s%s%s,\"tsc_khz_after\":%d}",
		 vm->tsc_khz, to, r == 0 ? "true" : "false", r == 0 ? "" : "\"",
		 r == 0 ? "null" : strerror(err), r == 0 ? "" : "\"", after);
	return 0;
}

/* vCPUs first..last-1 at current + TSC_KHZ_SKEW_DELTA; reports what KVM
 * said and then reads back (never fails on a refusal: KVM changes the
 * vCPU's frequency even when it refuses it). */
static int set_tsc_khz_skew(struct vm *vm, int first, int last)
{
	unsigned long to = vm->tsc_khz + TSC_KHZ_SKEW_DELTA;
	struct vcpu *v;
	int r = 0, i, after = 0;

	if (vm->nvcpus < 2)
		return fail("vcpu-tsc-khz-* needs at least 2 vCPUs");
	for (i = first; i < last && !r; i++)
		r = kvm_ioctl(vm->vcpus[i].fd, KVM_SET_TSC_KHZ, (void *)(uintptr_t)to);
	v = &vm->vcpus[last - 1];
	after = kvm_ioctl(v->fd, KVM_GET_TSC_KHZ, NULL);
	if (after <= 0)
		return sys_fail("vm %d vcpu %d: KVM_GET_TSC_KHZ", vm->index, v->id);
	snprintf(vm->extra, sizeof(vm->extra),
		 ",\"tsc_khz_skew\":{\"vcpus\":%d,\"last_vcpu\":%d,\"from\":%lu,"
		 "\"to\":%lu,\"accepted\":%s,\"tsc_khz_after\":%d}",
		 last - first, v->kvm_id, vm->tsc_khz, to, r == 0 ? "true" : "false", after);
	return 0;
}

static int op_set_tsc_khz_skew(struct ctx *c, struct vm *vm)
{
	(void)c;
	return set_tsc_khz_skew(vm, 1, 2);
}

static int op_set_tsc_khz_skew_all(struct ctx *c, struct vm *vm)
{
	(void)c;
	return set_tsc_khz_skew(vm, 0, vm->nvcpus);
}

static int tsc_offset_attr(struct vm *vm, struct vcpu *v, unsigned long req, uint64_t *offset)
{
	struct kvm_device_attr a = {
	    .group = KVM_VCPU_TSC_CTRL,
	    .attr = KVM_VCPU_TSC_OFFSET,
	    .addr = (uintptr_t)offset,
	};

	if (kvm_ioctl(v->fd, req, &a) < 0)
		return sys_fail("vm %d vcpu %d: KVM_%s_DEVICE_ATTR(TSC_OFFSET)", vm->index, v->id,
				req == KVM_SET_DEVICE_ATTR ? "SET" : "GET");
	return 0;
}

static int op_tsc_offset_skew(struct ctx *c, struct vm *vm)
{
	uint64_t off0, off1;

	(void)c;
	if (vm->nvcpus < 2)
		return fail("vcpu-mismatch needs at least 2 vCPUs");
	if (tsc_offset_attr(vm, &vm->vcpus[0], KVM_GET_DEVICE_ATTR, &off0))
		return -1;
	/*
	 * Both set, so that the two offsets KVM records differ by exactly
	 * MISMATCH_CYCLES: on this PVM kernel the GET reads 0 whatever the
	 * real offset is; on ordinary KVM the first SET changes nothing.
	 */
	off1 = off0 + MISMATCH_CYCLES;
	if (tsc_offset_attr(vm, &vm->vcpus[0], KVM_SET_DEVICE_ATTR, &off0) ||
	    tsc_offset_attr(vm, &vm->vcpus[1], KVM_SET_DEVICE_ATTR, &off1))
		return -1;
	snprintf(vm->extra, sizeof(vm->extra),
		 ",\"tsc_offset_vcpu0\":%" PRIu64 ",\"tsc_offset_vcpu1\":%" PRIu64, off0, off1);
	return 0;
}

/* Every vCPU set, so that exactly one, the last, differs from the rest. */
static int op_tsc_offset_skew_last(struct ctx *c, struct vm *vm)
{
	int last = vm->nvcpus - 1, i;
	uint64_t off0, off;

	(void)c;
	if (vm->nvcpus < 2)
		return fail("vcpu-mismatch-last needs at least 2 vCPUs");
	if (tsc_offset_attr(vm, &vm->vcpus[0], KVM_GET_DEVICE_ATTR, &off0))
		return -1;
	for (i = 0; i < vm->nvcpus; i++) {
		off = i == last ? off0 + MISMATCH_CYCLES : off0;
		if (tsc_offset_attr(vm, &vm->vcpus[i], KVM_SET_DEVICE_ATTR, &off))
			return -1;
	}
	snprintf(vm->extra, sizeof(vm->extra),
		 ",\"tsc_offset_vcpu0\":%" PRIu64 ",\"skewed_vcpu\":%d"
		 ",\"tsc_offset_skewed\":%" PRIu64,
		 off0, vm->vcpus[last].kvm_id, (uint64_t)(off0 + MISMATCH_CYCLES));
	return 0;
}

static int op_migrate_tsc(struct ctx *c, struct vm *vm)
{
	static const uint32_t idx = MSR_IA32_TSC;
	static const uint64_t val = MIGRATE_TSC;

	(void)c;
	return set_msrs_all(vm, &idx, &val, 1);
}

static int op_migrate_clock(struct ctx *c, struct vm *vm)
{
	(void)c;
	snprintf(vm->extra, sizeof(vm->extra), ",\"migrate_tsc\":%llu,\"migrate_clock_ns\":%llu",
		 (unsigned long long)MIGRATE_TSC, (unsigned long long)MIGRATE_CLOCK_NS);
	return set_clock(vm, MIGRATE_CLOCK_NS, 0, 0);
}

/* Send vCPU 0's guest through its wrmsr(IA32_TSC) path once. */
static int op_guest_tsc_write(struct ctx *c, struct vm *vm)
{
	struct vcpu *v = &vm->vcpus[0];
	struct kvm_regs regs;
	int i;

	if (kvm_ioctl(v->fd, KVM_GET_REGS, &regs) < 0)
		return sys_fail("vm %d vcpu 0: KVM_GET_REGS", vm->index);
	regs.rip = CODE_GPA + GUEST_TSC_WRITE;
	if (kvm_ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return sys_fail("vm %d vcpu 0: KVM_SET_REGS", vm->index);
	v->have_lo = false;
	v->tsc_written = false;
	for (i = 0; i < TSC_WRITE_MAX_EXITS && !v->tsc_written; i++)
		if (vcpu_step(c, vm, v))
			return -1;
	if (!v->tsc_written)
		return fail("vm %d vcpu 0: the guest's TSC write never happened", vm->index);
	snprintf(vm->extra, sizeof(vm->extra),
		 ",\"guest_tsc_write\":{\"vcpu\":0,\"delta_cycles\":%" PRId64 "}",
		 c->opt.tsc_delta);
	return 0;
}

/*
 * vCPU 0's guest writes its TSC as fast as it can for --flood-ms: batches
 * of FLOOD_BATCH wrmsr(IA32_TSC), each the value rdtsc just gave, with one
 * I/O exit between batches (where we check the clock). Every write is a
 * legitimate guest action KVM traces: what a hostile guest would do to
 * drown the daemon.
 */
static int op_guest_tsc_flood(struct ctx *c, struct vm *vm)
{
	struct vcpu *v = &vm->vcpus[0];
	int64_t end = now_ns() + (int64_t)c->opt.flood_ms * 1000000;
	struct kvm_regs regs;

	if (kvm_ioctl(v->fd, KVM_GET_REGS, &regs) < 0)
		return sys_fail("vm %d vcpu 0: KVM_GET_REGS", vm->index);
	regs.rip = CODE_GPA + GUEST_TSC_FLOOD;
	if (kvm_ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return sys_fail("vm %d vcpu 0: KVM_SET_REGS", vm->index);
	v->flood_batches = 0;
	while (now_ns() < end)
		if (vcpu_step(c, vm, v))
			return -1;
	snprintf(vm->extra, sizeof(vm->extra),
		 ",\"guest_tsc_writes\":%" PRIu64 ",\"flood_ms\":%" PRIu64,
		 v->flood_batches * FLOOD_BATCH, c->opt.flood_ms);
	return 0;
}

/* ---- migration: migrate-save and migrate-restore ---- */

static int64_t realtime_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return ts_ns(&t);
}

static void fit_reset(struct vm *vm)
{
	int i;

	for (i = 0; i < vm->nvcpus; i++)
		vm->vcpus[i].fit_n = 0;
}

/*
 * Keep the guest running for --run-ms, then one OP_RUN more: the samples
 * the guest's clocks are fitted on (fit_tsc_ns) before a save.
 */
static int op_run_for(struct ctx *c, struct vm *vm)
{
	int64_t end = now_ns() + (int64_t)c->opt.run_ms * 1000000;
	int i;

	while (now_ns() < end)
		for (i = 0; i < vm->nvcpus; i++)
			if (vcpu_run_samples(c, vm, &vm->vcpus[i], 20))
				return -1;
	fit_reset(vm);
	return op_run(c, vm);
}

/*
 * The state file: "key value..." lines, the vCPUs one line each. Written
 * under a temporary name and renamed, so a reader never sees half of it.
 */
static int mig_write(const char *path, const struct mig_state *s)
{
	char tmp[4096];
	FILE *f;
	int i;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return fail("%s: path too long", path);
	f = fopen(tmp, "w");
	if (!f)
		return sys_fail("%s", tmp);
	fprintf(f, "minivmm-migration 1\n");
	fprintf(f, "pid %d\nvcpus %d\ntsc_khz %lu\nhave_offsets %d\n", s->pid, s->nvcpus,
		s->tsc_khz, s->have_offsets);
	fprintf(f, "clock %llu %u %llu %llu\n", (unsigned long long)s->clock.clock, s->clock.flags,
		(unsigned long long)s->clock.realtime, (unsigned long long)s->clock.host_tsc);
	fprintf(f, "save_realtime_ns %" PRId64 "\n", s->save_realtime_ns);
	fprintf(f, "guest %" PRIu64 " %" PRIu64 " %" PRId64 "\n", s->guest.tsc, s->guest.kvmclock,
		s->guest.realtime_ns);
	for (i = 0; i < s->nvcpus; i++)
		fprintf(f, "vcpu %d %" PRIu64 " %" PRIu64 " %" PRId64 " %" PRId64 "\n", i,
			s->vcpu[i].tsc, s->vcpu[i].offset, s->vcpu[i].fit_tsc_ns,
			s->vcpu[i].fit_kvmclock_ns);
	if (ferror(f) | fclose(f))
		return sys_fail("writing %s", tmp);
	if (rename(tmp, path))
		return sys_fail("rename %s to %s", tmp, path);
	return 0;
}

static int mig_read(const char *path, struct mig_state *s)
{
	unsigned long long a, b, c, d;
	unsigned int flags;
	int seen = 0, nv = 0, version = 0, i, have;
	char line[256];
	long long r, ft, fk;
	FILE *f;

	memset(s, 0, sizeof(*s));
	f = fopen(path, "r");
	if (!f)
		return sys_fail("%s", path);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "minivmm-migration %d", &version) == 1) {
			seen |= 1;
		} else if (sscanf(line, "pid %d", &s->pid) == 1) {
			seen |= 2;
		} else if (sscanf(line, "vcpus %d", &s->nvcpus) == 1) {
			seen |= 4;
		} else if (sscanf(line, "tsc_khz %lu", &s->tsc_khz) == 1) {
			seen |= 8;
		} else if (sscanf(line, "have_offsets %d", &have) == 1) {
			s->have_offsets = have;
			seen |= 16;
		} else if (sscanf(line, "clock %llu %u %llu %llu", &a, &flags, &b, &c) == 4) {
			s->clock.clock = a;
			s->clock.flags = flags;
			s->clock.realtime = b;
			s->clock.host_tsc = c;
			seen |= 32;
		} else if (sscanf(line, "save_realtime_ns %lld", &r) == 1) {
			s->save_realtime_ns = r;
			seen |= 64;
		} else if (sscanf(line, "guest %llu %llu %lld", &a, &b, &r) == 3) {
			s->guest.tsc = a;
			s->guest.kvmclock = b;
			s->guest.realtime_ns = r;
			s->guest.kvmclock_ok = true;
			seen |= 128;
		} else if (sscanf(line, "vcpu %d %llu %llu %lld %lld", &i, &c, &d, &ft, &fk) == 5) {
			if (i != nv || i >= MAX_VCPUS) {
				fclose(f);
				return fail("%s: vcpu %d out of order", path, i);
			}
			s->vcpu[i].tsc = c;
			s->vcpu[i].offset = d;
			s->vcpu[i].fit_tsc_ns = ft;
			s->vcpu[i].fit_kvmclock_ns = fk;
			nv++;
		} else {
			fclose(f);
			return fail("%s: unexpected line '%.40s'", path, line);
		}
	}
	fclose(f);
	if (seen != 255 || version != 1)
		return fail("%s: not a minivmm migration state (fields %#x, version %d)", path,
			    seen, version);
	if (s->nvcpus < 1 || s->nvcpus > MAX_VCPUS || nv != s->nvcpus || !s->tsc_khz)
		return fail("%s: %d vCPUs, %d vcpu lines, tsc_khz %lu", path, s->nvcpus, nv,
			    s->tsc_khz);
	return 0;
}

static bool tsc_ctrl_available(struct vcpu *v)
{
	struct kvm_device_attr a = {
	    .group = KVM_VCPU_TSC_CTRL,
	    .attr = KVM_VCPU_TSC_OFFSET,
	};

	return kvm_ioctl(v->fd, KVM_HAS_DEVICE_ATTR, &a) == 0;
}

static void print_u64_list(const char *key, const struct mig_state *s, bool offsets)
{
	int i;

	printf(",\"%s\":[", key);
	for (i = 0; i < s->nvcpus; i++)
		printf("%s%" PRIu64, i ? "," : "", offsets ? s->vcpu[i].offset : s->vcpu[i].tsc);
	printf("]");
}

/*
 * The source's stop as QEMU 7.2 does it (each vCPU's TSC, then
 * KVM_GET_CLOCK; no resume follows), then what the precise way needs (each
 * vCPU's TSC offset), then the state written. The VM stays as it is:
 * paused, until the process exits (after --hold-ms).
 */
static int op_migrate_save(struct ctx *c, struct vm *vm)
{
	struct mig_state s = {.pid = getpid(), .nvcpus = vm->nvcpus, .tsc_khz = vm->tsc_khz};
	int i;

	if (!c->save_path)
		return 0;
	s.guest = vm->vcpus[0].last;
	if (!s.guest.kvmclock_ok)
		return fail("vm %d vcpu 0: guest kvmclock not enabled (PVTI never written)",
			    vm->index);
	s.save_realtime_ns = realtime_ns();
	if (op_get_tsc(c, vm) || op_get_clock(c, vm))
		return -1;
	s.clock = vm->saved_clock;
	s.have_offsets = tsc_ctrl_available(&vm->vcpus[0]);
	for (i = 0; i < vm->nvcpus; i++) {
		if (!vm->vcpus[i].fit_n)
			return fail("vm %d vcpu %d: no sample with kvmclock before the save",
				    vm->index, i);
		s.vcpu[i].fit_tsc_ns = vm->vcpus[i].fit_tsc_ns;
		s.vcpu[i].fit_kvmclock_ns = vm->vcpus[i].fit_kvmclock_ns;
		s.vcpu[i].tsc = vm->vcpus[i].saved_tsc;
		if (s.have_offsets &&
		    tsc_offset_attr(vm, &vm->vcpus[i], KVM_GET_DEVICE_ATTR, &s.vcpu[i].offset))
			return -1;
	}
	if (mig_write(c->save_path, &s))
		return -1;
	printf("{\"type\":\"saved\",\"scenario\":\"%s\",\"pid\":%d,\"vm\":%d,\"vcpus\":%d,"
	       "\"tsc_khz\":%lu,\"clock\":%llu,\"clock_flags\":%u,\"clock_realtime\":%llu,"
	       "\"save_realtime_ns\":%" PRId64,
	       c->sc->name, s.pid, vm->index, s.nvcpus, s.tsc_khz,
	       (unsigned long long)s.clock.clock, s.clock.flags,
	       (unsigned long long)s.clock.realtime, s.save_realtime_ns);
	print_u64_list("tsc", &s, false);
	if (s.have_offsets)
		print_u64_list("tsc_offset", &s, true);
	else
		printf(",\"tsc_offset\":null");
	printf(",\"guest_tsc\":%" PRIu64 ",\"guest_kvmclock\":%" PRIu64
	       ",\"guest_realtime_ns\":%" PRId64 "}\n",
	       s.guest.tsc, s.guest.kvmclock, s.guest.realtime_ns);
	return 0;
}

static int64_t skew_cycles(struct ctx *c)
{
	return c->opt.tsc_skew_ms * (int64_t)c->mig_in.tsc_khz;
}

/*
 * qemu: KVM_SET_MSRS{TSC = the TSC as saved, kvmclock MSR} per vCPU;
 * precise: KVM_VCPU_TSC_OFFSET = the source's offset, then the kvmclock
 * MSR. --tsc-skew-ms moves either by that much guest time.
 */
static int op_restore_tsc(struct ctx *c, struct vm *vm)
{
	static const uint32_t idx[] = {MSR_IA32_TSC, MSR_KVM_SYSTEM_TIME_NEW};
	const struct mig_state *s = &c->mig_in;
	uint64_t val[2], off;
	int i;

	if (vm->tsc_khz != s->tsc_khz)
		return fail("vm %d: TSC at %lu kHz here, %lu kHz in the saved state", vm->index,
			    vm->tsc_khz, s->tsc_khz);
	for (i = 0; i < vm->nvcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		val[1] = pvti_gpa(v->id) | 1;
		if (c->opt.how == HOW_QEMU) {
			val[0] = s->vcpu[i].tsc + skew_cycles(c);
			if (msrs_set(vm, v, idx, val, 2))
				return -1;
			continue;
		}
		off = s->vcpu[i].offset + skew_cycles(c);
		if (tsc_offset_attr(vm, v, KVM_SET_DEVICE_ATTR, &off) ||
		    msrs_set(vm, v, &idx[1], &val[1], 1))
			return -1;
	}
	return 0;
}

/*
 * qemu: KVM_SET_CLOCK{saved, flags 0}, then KVMCLOCK_CTRL per vCPU (QEMU's
 * start); precise: KVM_SET_CLOCK{saved, the save's realtime, REALTIME}:
 * KVM's own realtime when KVM_GET_CLOCK gave one, ours (taken just before
 * the TSC reads, microseconds earlier) otherwise.
 */
static int op_restore_clock(struct ctx *c, struct vm *vm)
{
	const struct mig_state *s = &c->mig_in;

	if (c->opt.how == HOW_QEMU) {
		if (set_clock(vm, s->clock.clock, 0, 0))
			return -1;
		return op_kvmclock_ctrl(c, vm);
	}
	if (s->clock.flags & KVM_CLOCK_REALTIME) {
		c->realtime_from = "kvm";
		return set_clock(vm, s->clock.clock, s->clock.realtime, KVM_CLOCK_REALTIME);
	}
	c->realtime_from = "minivmm";
	return set_clock(vm, s->clock.clock, s->save_realtime_ns, KVM_CLOCK_REALTIME);
}

/*
 * The destination's first run, and the guest's own view of the migration:
 * where its clocks are against where the source's would be at the same
 * realtime, carried forward from the source's last samples (TSC at the
 * guest's rate, kvmclock at 1 ns/ns). Negative: the guest is behind. Each
 * side is the fit over its samples (fit_tsc_ns): the first RUN_SAMPLES
 * here, the last ones on the source; "raw" is vCPU 0's first sample
 * against the source's last, with their realtime stamps' lag. downtime_ns:
 * from the save's realtime to the first sample's guest TSC read, placed in
 * realtime by the fit; entry_downtime_ns: to the first KVM_RUN (the first
 * entry takes milliseconds before the guest's first read under TCG).
 */
static int op_restore_run(struct ctx *c, struct vm *vm)
{
	const struct mig_state *s = &c->mig_in;
	const struct sample *b = &s->guest, *a;
	int64_t elapsed, raw_tsc, raw_kvm, first, entry;
	struct vcpu *v0 = &vm->vcpus[0];
	int i;

	fit_reset(vm);
	for (i = 0; i < vm->nvcpus; i++)
		vm->vcpus[i].want_first = true;
	entry = realtime_ns();
	if (op_run(c, vm))
		return -1;
	for (i = 0; i < vm->nvcpus; i++)
		if (!vm->vcpus[i].fit_n)
			return fail("vm %d vcpu %d: no kvmclock on the destination", vm->index, i);
	a = &v0->first_after;
	elapsed = a->realtime_ns - b->realtime_ns;
	raw_tsc = tsc_to_ns((int64_t)(a->tsc - b->tsc), vm->tsc_khz) - elapsed;
	raw_kvm = (int64_t)(a->kvmclock - b->kvmclock) - elapsed;
	first = tsc_to_ns((int64_t)a->tsc, vm->tsc_khz) - v0->fit_tsc_ns;
	printf("{\"type\":\"restored\",\"scenario\":\"%s\",\"how\":\"%s\",\"pid\":%d,"
	       "\"vm\":%d,\"vcpus\":%d,\"source_pid\":%d,\"tsc_skew_ms\":%" PRId64
	       ",\"downtime_ns\":%" PRId64 ",\"entry_downtime_ns\":%" PRId64
	       ",\"guest_tsc_warp_ns\":%" PRId64 ",\"guest_kvmclock_warp_ns\":%" PRId64
	       ",\"raw_tsc_warp_ns\":%" PRId64 ",\"raw_kvmclock_warp_ns\":%" PRId64
	       ",\"pvti_flags\":%u"
	       ",\"clock_realtime_from\":\"%s\",\"guest_tsc_warps_ns\":[",
	       c->sc->name, c->opt.how == HOW_QEMU ? "qemu" : "precise", getpid(), vm->index,
	       vm->nvcpus, s->pid, c->opt.tsc_skew_ms, first - s->save_realtime_ns,
	       entry - s->save_realtime_ns, v0->fit_tsc_ns - s->vcpu[0].fit_tsc_ns,
	       v0->fit_kvmclock_ns - s->vcpu[0].fit_kvmclock_ns, raw_tsc, raw_kvm, a->pvti_flags,
	       c->realtime_from ? c->realtime_from : "none");
	for (i = 0; i < vm->nvcpus; i++)
		printf("%s%" PRId64, i ? "," : "", vm->vcpus[i].fit_tsc_ns - s->vcpu[i].fit_tsc_ns);
	printf("]}\n");
	return 0;
}

static int migrate_prepare_save(struct ctx *c)
{
	if (!c->opt.state)
		return fail("%s needs --state FILE", c->sc->name);
	c->save_path = c->opt.state;
	return 0;
}

/* Read the state, take its vCPUs, wait for the downtime to pass. */
static int migrate_prepare_restore(struct ctx *c)
{
	struct mig_state *s = &c->mig_in;
	struct timespec t;
	int64_t until;

	if (!c->opt.state || !c->opt.how)
		return fail("%s needs --state FILE and --how qemu|precise", c->sc->name);
	if (mig_read(c->opt.state, s))
		return -1;
	if (c->opt.vcpus && c->opt.vcpus != s->nvcpus)
		return fail("--vcpus %d: the saved state has %d", c->opt.vcpus, s->nvcpus);
	if (c->opt.how == HOW_PRECISE && !s->have_offsets)
		return fail("--how precise: the source's kernel gave no TSC offsets");
	c->nvcpus = s->nvcpus;
	c->save_path = c->opt.save_to;
	until = s->save_realtime_ns + (int64_t)c->opt.downtime_ms * 1000000;
	t.tv_sec = until / NSEC_PER_SEC;
	t.tv_nsec = until % NSEC_PER_SEC;
	while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &t, NULL) == EINTR)
		;
	return 0;
}

typedef int (*vm_op_fn)(struct ctx *c, struct vm *vm);

/*
 * A VMM that lives on while its VMs come and go: each VM is closed (the
 * kernel destroys it, the process goes on) and a new one set up and run,
 * --churn times, as a long-lived VMM or a test harness does.
 */
static int op_churn(struct ctx *c, struct vm *vm)
{
	int index = vm->index;
	uint64_t k;

	for (k = 0; k < c->opt.churn; k++) {
		vm_destroy(c, vm);
		vm_reset(vm);
		if (vm_create(c, vm, index) || op_set_tsc_khz_cur(c, vm) || op_qemu_msrs(c, vm) ||
		    op_run(c, vm))
			return -1;
	}
	printf("{\"type\":\"churned\",\"pid\":%d,\"vm\":%d,\"vms\":%" PRIu64 "}\n", getpid(), index,
	       c->opt.churn + 1);
	return 0;
}

static const vm_op_fn vm_ops[OP_COUNT] = {
    [OP_RUN] = op_run,
    [OP_SET_TSC_KHZ_CUR] = op_set_tsc_khz_cur,
    [OP_QEMU_MSRS] = op_qemu_msrs,
    [OP_TSC0] = op_tsc0,
    [OP_RESET] = op_reset,
    [OP_GET_TSC] = op_get_tsc,
    [OP_GET_CLOCK] = op_get_clock,
    [OP_SET_CLOCK] = op_set_clock,
    [OP_SET_CLOCK_REALTIME] = op_set_clock_realtime,
    [OP_SET_CLOCK_CH] = op_set_clock_ch,
    [OP_SET_CLOCK_COMPAT] = op_set_clock_compat,
    [OP_KVMCLOCK_CTRL] = op_kvmclock_ctrl,
    [OP_SET_TSC_FAR] = op_set_tsc_far,
    [OP_SET_TSC_KHZ_OTHER] = op_set_tsc_khz_other,
    [OP_SET_TSC_KHZ_SKEW] = op_set_tsc_khz_skew,
    [OP_SET_TSC_KHZ_SKEW_ALL] = op_set_tsc_khz_skew_all,
    [OP_TSC_OFFSET_SKEW] = op_tsc_offset_skew,
    [OP_TSC_OFFSET_SKEW_LAST] = op_tsc_offset_skew_last,
    [OP_MIGRATE_TSC] = op_migrate_tsc,
    [OP_MIGRATE_CLOCK] = op_migrate_clock,
    [OP_GUEST_TSC_WRITE] = op_guest_tsc_write,
    [OP_GUEST_TSC_FLOOD] = op_guest_tsc_flood,
    [OP_RUN_FOR] = op_run_for,
    [OP_MIGRATE_SAVE] = op_migrate_save,
    [OP_RESTORE_TSC] = op_restore_tsc,
    [OP_RESTORE_CLOCK] = op_restore_clock,
    [OP_RESTORE_RUN] = op_restore_run,
    [OP_CHURN] = op_churn,
};

static int run_list(struct ctx *c, struct vm *vm, const enum op *list)
{
	int i;

	for (i = 0; i < MAX_OPS && list[i] != OP_END; i++)
		if (vm_ops[list[i]](c, vm))
			return -1;
	return 0;
}

/* ---- pauses ---- */

static int vm_stop(struct ctx *c, struct vm *vm)
{
	vm->before = vm->vcpus[0].last;
	if (!vm->before.kvmclock_ok)
		return fail("vm %d vcpu 0: guest kvmclock not enabled (PVTI never written)",
			    vm->index);
	clock_gettime(CLOCK_MONOTONIC, &vm->t_stop);
	if (run_list(c, vm, c->sc->stop))
		return -1;
	printf("{\"type\":\"stopped\",\"pid\":%d,\"vm\":%d}\n", getpid(), vm->index);
	return 0;
}

static int vm_resume(struct ctx *c, struct vm *vm)
{
	int i;

	if (run_list(c, vm, c->sc->resume))
		return -1;
	vm->pause_ns = now_ns() - ts_ns(&vm->t_stop);
	for (i = 0; i < vm->nvcpus; i++)
		vm->vcpus[i].want_first = true;
	return 0;
}

static int print_cycle(struct ctx *c, struct vm *vm, uint64_t cycle)
{
	const struct sample *b = &vm->before, *a = &vm->vcpus[0].first_after;
	int64_t tsc_ns, kvm_ns;

	if (!a->kvmclock_ok)
		return fail("vm %d vcpu 0: no kvmclock after resume", vm->index);
	tsc_ns = tsc_to_ns((int64_t)(a->tsc - b->tsc), vm->tsc_khz);
	kvm_ns = (int64_t)(a->kvmclock - b->kvmclock);
	printf("{\"type\":\"cycle\",\"scenario\":\"%s\",\"cycle\":%" PRIu64
	       ",\"pid\":%d,\"vm\":%d,\"vcpus\":%d,\"pause_ns\":%" PRId64
	       ",\"guest_tsc_advance_ns\":%" PRId64 ",\"guest_kvmclock_advance_ns\":%" PRId64
	       ",\"skew_ns\":%" PRId64 ",\"pvti_flags\":%u}\n",
	       c->sc->name, cycle, getpid(), vm->index, vm->nvcpus, vm->pause_ns, tsc_ns, kvm_ns,
	       kvm_ns - tsc_ns, a->pvti_flags);
	return 0;
}

/* Every VM is stopped, then all sleep one pause together, then resumed. */
static int pause_cycle(struct ctx *c, uint64_t cycle)
{
	int i;

	for (i = 0; i < c->nvms; i++)
		if (vm_stop(c, &c->vms[i]))
			return -1;
	sleep_ms(c->opt.pause_ms);
	for (i = 0; i < c->nvms; i++)
		if (vm_resume(c, &c->vms[i]))
			return -1;
	for (i = 0; i < c->nvms; i++)
		if (op_run(c, &c->vms[i]))
			return -1;
	for (i = 0; i < c->nvms; i++)
		if (print_cycle(c, &c->vms[i], cycle))
			return -1;
	return 0;
}

static int op_pause_cycles(struct ctx *c)
{
	uint64_t i;

	for (i = 0; i < c->opt.cycles; i++)
		if (pause_cycle(c, i))
			return -1;
	return 0;
}

static void print_done(struct ctx *c, const char *more)
{
	double rate = c->run_ns ? c->exits * 1e9 / c->run_ns : 0;

	printf("{\"type\":\"done\",\"scenario\":\"%s\",\"pid\":%d,\"ok\":true,"
	       "\"vms\":%d,\"vcpus\":%d,\"tsc_khz\":%lu,\"kvm_run_exits\":%" PRIu64
	       ",\"exits_per_s\":%.0f%s%s}\n",
	       c->sc->name, getpid(), c->nvms, c->nvcpus, c->vms[0].tsc_khz, c->exits, rate,
	       c->vms[0].extra, more);
	fflush(stdout);
}

/* The VMM dies while paused: the kernel, not us, tears the VMs down. */
static int op_exit_midpause(struct ctx *c)
{
	int i;

	for (i = 0; i < c->nvms; i++)
		if (vm_stop(c, &c->vms[i]))
			return -1;
	sleep_ms(c->opt.pause_ms);
	print_done(c, ",\"resumed\":false");
	sleep_ms(c->opt.hold_ms);
	exit(0);
}

static int run_script(struct ctx *c)
{
	const enum op *s = c->sc->script;
	int i, j;

	for (i = 0; i < MAX_OPS && s[i] != OP_END; i++) {
		if (s[i] == OP_PAUSE_CYCLES) {
			if (op_pause_cycles(c))
				return -1;
			continue;
		}
		if (s[i] == OP_EXIT_MIDPAUSE)
			return op_exit_midpause(c);
		for (j = 0; j < c->nvms; j++)
			if (vm_ops[s[i]](c, &c->vms[j]))
				return -1;
	}
	return 0;
}

/* ---- command line ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: minivmm SCENARIO [N] [--pause-ms N] [--cycles N] [--vcpus N]\n"
		"               [--hold-ms N] [--tsc-delta CYCLES] [--flood-ms N]\n"
		"               [--last-vcpu-id ID]\n"
		"       minivmm migrate-save --state FILE [--vcpus N] [--run-ms N] [--hold-ms N]\n"
		"       minivmm migrate-save --state FILE --exec-restore --how qemu|precise "
		"[--downtime-ms N]\n"
		"       minivmm migrate-restore --state FILE --how qemu|precise [--downtime-ms N]\n"
		"               [--tsc-skew-ms N] [--run-ms N] [--save-to FILE] [--hold-ms N]\n"
		"       minivmm --list | --help\n"
		"\n"
		"Replays a real VMM's KVM ioctl sequence on a running real-mode guest\n"
		"and prints, one JSON object per line, what the guest saw across each\n"
		"pause ({\"type\":\"cycle\",...}) and a final {\"type\":\"done\",...}.\n"
		"\n"
		"  --pause-ms N      length of each pause (default 1000)\n"
		"  --cycles N        pause/resume cycles (default 1)\n"
		"  --vcpus N         vCPUs per VM (default: the scenario's, 1..%d)\n"
		"  --hold-ms N       keep the VMs open N ms after the done line\n"
		"  --last-vcpu-id ID the last vCPU's KVM id (default its index; ids may be\n"
		"                    sparse, and past the 256 of hvguard's record)\n"
		"  --tsc-delta C     guest-tsc-write: write rdtsc + C (default 0)\n"
		"  --flood-ms N      guest-tsc-flood: how long the guest writes (default %d)\n"
		"  --churn N         vm-churn: VMs closed and created anew (default %d)\n"
		"  --vcpu-id-stride S  vCPU i gets KVM id i*S (sparse ids, as APIC ids are)\n"
		"  --traced-as NAME  run ptraced by a child that names itself NAME\n"
		"  --state FILE      migrate-*: the saved state, written or read\n"
		"  --how H           migrate-restore: qemu (TSC MSR, SET_CLOCK flags 0) or\n"
		"                    precise (source's TSC offsets, SET_CLOCK with REALTIME)\n"
		"  --downtime-ms N   migrate-restore: start N ms after the save (default 0)\n"
		"  --tsc-skew-ms N   migrate-restore: restore the TSC N ms of guest time off\n"
		"  --run-ms N        migrate-*: run the guest N ms before any save (migrate-save:\n"
		"                    default %d, past KVM's 1 s TSC sync window)\n"
		"  --save-to FILE    migrate-restore: then migrate-save to FILE (migrate again)\n"
		"  N                 many-vms, hold-vms: number of VMs (default %d)\n"
		"  --list            list the scenarios\n",
		MAX_VCPUS, FLOOD_MS_DEFAULT, CHURN_DEFAULT, MIGRATE_RUN_MS, MANY_VMS_DEFAULT);
}

static void list_scenarios(void)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(scenarios); i++)
		printf("%-20s %s\n", scenarios[i].name, scenarios[i].help);
}

static const struct scenario *scenario_find(const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(scenarios); i++)
		if (!strcmp(scenarios[i].name, name))
			return &scenarios[i];
	return NULL;
}

static int parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		return fail("%s: invalid value '%s' (%" PRIu64 "..%" PRIu64 ")", opt, s, min, max);
	*out = v;
	return 0;
}

static int parse_s64(const char *opt, const char *s, int64_t *out)
{
	long long v;
	char *end;

	errno = 0;
	v = strtoll(s, &end, 0);
	if (errno || end == s || *end)
		return fail("%s: invalid value '%s'", opt, s);
	*out = v;
	return 0;
}

enum {
	OPT_PAUSE = 256,
	OPT_CYCLES,
	OPT_VCPUS,
	OPT_HOLD,
	OPT_TSC_DELTA,
	OPT_LIST,
	OPT_TRACED_AS,
	OPT_FLOOD,
	OPT_ID_STRIDE,
	OPT_LAST_VCPU_ID,
	OPT_STATE,
	OPT_HOW,
	OPT_DOWNTIME,
	OPT_TSC_SKEW,
	OPT_RUN_MS,
	OPT_SAVE_TO,
	OPT_EXEC_RESTORE,
	OPT_CHURN
};

static const struct option long_opts[] = {
    {"pause-ms", required_argument, NULL, OPT_PAUSE},
    {"cycles", required_argument, NULL, OPT_CYCLES},
    {"vcpus", required_argument, NULL, OPT_VCPUS},
    {"hold-ms", required_argument, NULL, OPT_HOLD},
    {"tsc-delta", required_argument, NULL, OPT_TSC_DELTA},
    {"list", no_argument, NULL, OPT_LIST},
    {"traced-as", required_argument, NULL, OPT_TRACED_AS},
    {"flood-ms", required_argument, NULL, OPT_FLOOD},
    {"vcpu-id-stride", required_argument, NULL, OPT_ID_STRIDE},
    {"last-vcpu-id", required_argument, NULL, OPT_LAST_VCPU_ID},
    {"state", required_argument, NULL, OPT_STATE},
    {"how", required_argument, NULL, OPT_HOW},
    {"downtime-ms", required_argument, NULL, OPT_DOWNTIME},
    {"tsc-skew-ms", required_argument, NULL, OPT_TSC_SKEW},
    {"run-ms", required_argument, NULL, OPT_RUN_MS},
    {"save-to", required_argument, NULL, OPT_SAVE_TO},
    {"exec-restore", no_argument, NULL, OPT_EXEC_RESTORE},
    {"churn", required_argument, NULL, OPT_CHURN},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Returns 1 when the run is over (--help, --list), -1 on error. */
static int parse_opts(struct ctx *c, int argc, char **argv)
{
	uint64_t v;
	int o;

	c->opt.pause_ms = 1000;
	c->opt.cycles = 1;
	c->opt.flood_ms = FLOOD_MS_DEFAULT;
	c->opt.churn = CHURN_DEFAULT;
	c->opt.vcpu_id_stride = 1;
	while ((o = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		switch (o) {
		case OPT_PAUSE:
			if (parse_u64("--pause-ms", optarg, 0, 86400000, &c->opt.pause_ms))
				return -1;
			break;
		case OPT_CYCLES:
			if (parse_u64("--cycles", optarg, 0, 1000000, &c->opt.cycles))
				return -1;
			break;
		case OPT_VCPUS:
			if (parse_u64("--vcpus", optarg, 1, MAX_VCPUS, &v))
				return -1;
			c->opt.vcpus = v;
			break;
		case OPT_HOLD:
			if (parse_u64("--hold-ms", optarg, 0, 86400000, &c->opt.hold_ms))
				return -1;
			break;
		case OPT_TSC_DELTA:
			if (parse_s64("--tsc-delta", optarg, &c->opt.tsc_delta))
				return -1;
			break;
		case OPT_TRACED_AS:
			c->opt.traced_as = optarg;
			break;
		case OPT_ID_STRIDE:
			if (parse_u64("--vcpu-id-stride", optarg, 1, 1024, &c->opt.vcpu_id_stride))
				return -1;
			break;
		case OPT_FLOOD:
			if (parse_u64("--flood-ms", optarg, 1, 3600000, &c->opt.flood_ms))
				return -1;
			break;
		case OPT_CHURN:
			if (parse_u64("--churn", optarg, 1, 100000, &c->opt.churn))
				return -1;
			break;
		case OPT_LAST_VCPU_ID:
			if (parse_u64("--last-vcpu-id", optarg, 1, MAX_VCPU_ID, &v))
				return -1;
			c->opt.last_vcpu_id = v;
			break;
		case OPT_STATE:
			c->opt.state = optarg;
			break;
		case OPT_SAVE_TO:
			c->opt.save_to = optarg;
			break;
		case OPT_EXEC_RESTORE:
			c->opt.exec_restore = true;
			break;
		case OPT_HOW:
			if (!strcmp(optarg, "qemu"))
				c->opt.how = HOW_QEMU;
			else if (!strcmp(optarg, "precise"))
				c->opt.how = HOW_PRECISE;
			else
				return fail("--how: '%s' is neither qemu nor precise", optarg);
			break;
		case OPT_DOWNTIME:
			if (parse_u64("--downtime-ms", optarg, 0, 3600000, &c->opt.downtime_ms))
				return -1;
			break;
		case OPT_TSC_SKEW:
			if (parse_s64("--tsc-skew-ms", optarg, &c->opt.tsc_skew_ms))
				return -1;
			if (c->opt.tsc_skew_ms > 86400000 || c->opt.tsc_skew_ms < -86400000)
				return fail("--tsc-skew-ms: at most a day either way");
			break;
		case OPT_RUN_MS:
			if (parse_u64("--run-ms", optarg, 0, 3600000, &c->opt.run_ms))
				return -1;
			c->opt.run_ms_set = true;
			break;
		case OPT_LIST:
			list_scenarios();
			return 1;
		case 'h':
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return fail("no scenario given (see --list)");
	}
	c->sc = scenario_find(argv[optind]);
	if (!c->sc)
		return fail("unknown scenario '%s' (see --list)", argv[optind]);
	optind++;
	if (optind < argc && c->sc->vms) {
		if (parse_u64("many-vms N", argv[optind], 1, 4096, &v))
			return -1;
		c->opt.nvms = v;
		optind++;
	}
	if (optind < argc)
		return fail("unexpected argument '%s'", argv[optind]);
	return 0;
}

static int setup(struct ctx *c)
{
	int i, r;

	c->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (c->kvm_fd < 0)
		return sys_fail("/dev/kvm");
	r = kvm_ioctl(c->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, NULL);
	if (r <= 0)
		return sys_fail("KVM_GET_VCPU_MMAP_SIZE");
	c->run_size = r;
	c->vms = calloc(c->nvms, sizeof(*c->vms));
	if (!c->vms)
		return sys_fail("calloc");
	/* Before any VM exists, so that cleanup after a failure closes no fd 0. */
	for (i = 0; i < c->nvms; i++)
		vm_reset(&c->vms[i]);
	for (i = 0; i < c->nvms; i++)
		if (vm_create(c, &c->vms[i], i))
			return -1;
	return 0;
}

/*
 * --traced-as NAME: a child that names itself NAME (say "hvguard") ptraces
 * us for the whole run, passing every signal on: what a VMM can do to pass
 * its own writes for a corrector's, were a tracer's name trusted.
 */
static void tracer_loop(pid_t parent)
{
	int status;

	for (;;) {
		if (waitpid(parent, &status, __WALL) < 0 || WIFEXITED(status) ||
		    WIFSIGNALED(status))
			_exit(0);
		if (status >> 16 == PTRACE_EVENT_STOP)
			ptrace(PTRACE_LISTEN, parent, 0, 0);
		else
			ptrace(PTRACE_CONT, parent, 0, (void *)(long)WSTOPSIG(status));
	}
}

static int start_tracer(const char *name)
{
	pid_t parent = getpid(), child;
	char status[4096];
	int fd, i;

	child = fork();
	if (child < 0)
		return sys_fail("fork");
	if (child == 0) {
		prctl(PR_SET_NAME, name);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (ptrace(PTRACE_SEIZE, parent, 0, 0))
			_exit(1);
		tracer_loop(parent);
	}
	/* Until our TracerPid is the child's. */
	for (i = 0; i < 1000; i++) {
		ssize_t n;

		fd = open("/proc/self/status", O_RDONLY);
		n = fd < 0 ? -1 : read(fd, status, sizeof(status) - 1);
		if (fd >= 0)
			close(fd);
		if (n > 0) {
			char *t;

			status[n] = '\0';
			t = strstr(status, "TracerPid:");
			if (t && atoi(t + 10) == child)
				return 0;
		}
		sleep_ms(5);
	}
	return fail("the tracer named %s did not seize us", name);
}

/*
 * "-name NAME", as QEMU takes it, is accepted and ignored: it is only there
 * for hvguard to read back from /proc/PID/cmdline (the VM's name), as a
 * hostile VMM would set it. Dropped from argv before the options are parsed
 * (the command line itself keeps it).
 */
static int drop_qemu_name(int argc, char **argv)
{
	int i, j = 1;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-name") && i + 1 < argc) {
			i++;
			continue;
		}
		argv[j++] = argv[i];
	}
	argv[j] = NULL;
	return j;
}

/*
 * QEMU's cpr-exec, replayed: after migrate-save, the same pid execs itself
 * as migrate-restore (--how, --downtime-ms as given). KVM's VM and vCPU fds
 * are O_CLOEXEC: the VM goes with the old image, the new one creates its
 * own and restores the clocks saved.
 */
static int exec_restore(const struct ctx *c)
{
	char downtime[32];
	char *args[] = {"minivmm",
			"migrate-restore",
			"--state",
			(char *)c->opt.state,
			"--how",
			c->opt.how == HOW_PRECISE ? "precise" : "qemu",
			"--downtime-ms",
			downtime,
			NULL};

	snprintf(downtime, sizeof(downtime), "%" PRIu64, c->opt.downtime_ms);
	fflush(stdout);
	execv("/proc/self/exe", args);
	return sys_fail("exec /proc/self/exe migrate-restore");
}

int main(int argc, char **argv)
{
	struct ctx c = {.kvm_fd = -1};
	int ret = 1, r, i;

	/* Tests read us through a pipe, line by line, while we run. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	argc = drop_qemu_name(argc, argv);
	r = parse_opts(&c, argc, argv);
	if (r)
		return r > 0 ? 0 : 1;
	c.nvcpus = c.opt.vcpus ? c.opt.vcpus : (c.sc->vcpus ? c.sc->vcpus : 1);
	c.nvms = c.opt.nvms ? c.opt.nvms : (c.sc->vms ? c.sc->vms : 1);
	if (c.opt.traced_as && start_tracer(c.opt.traced_as))
		goto cleanup;
	if (!c.opt.run_ms_set)
		c.opt.run_ms = c.sc->run_ms;
	if (c.sc->prepare && c.sc->prepare(&c))
		goto cleanup;
	if (setup(&c))
		goto cleanup;
	if (run_script(&c))
		goto cleanup;
	print_done(&c, "");
	sleep_ms(c.opt.hold_ms);
	if (c.opt.exec_restore && !strcmp(c.sc->name, "migrate-save")) {
		exec_restore(&c);
		goto cleanup;
	}
	ret = 0;
cleanup:
	for (i = 0; c.vms && i < c.nvms; i++)
		vm_destroy(&c, &c.vms[i]);
	free(c.vms);
	if (c.kvm_fd >= 0)
		close(c.kvm_fd);
	return ret;
}
