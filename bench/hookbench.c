// SPDX-License-Identifier: GPL-2.0
/*
 * hookbench: what a hook on the ioctl path costs a VMM, and how soon hvguard
 * reports a kvmclock rewind. bench/run drives it; the statistics live here
 * too so that the driver stays a plain loop.
 *
 *   hookbench calls [-n N] [-s SAMPLES] [-K]
 *	ns per call of getppid, FIONREAD on a pipe, KVM_CHECK_EXTENSION on a
 *	VM fd and KVM_RUN with an I/O exit: median of SAMPLES samples of N
 *	calls (N/10 for KVM_RUN); prints "TYPE NS" lines. -K: the first two
 *	only, for a host without /dev/kvm.
 *   hookbench latency [-c COUNT] [-p PAUSE_MS] [-t TIMEOUT_MS] [-o FILE]
 *		      [-r READY_PREFIX] -- CMD...
 *	starts CMD (hvguard run --json), waits for its ready line (JSON, or
 *	one starting with READY_PREFIX: bench/qemu-rewind.bt), replays
 *	QEMU's stop/cont COUNT times on a VM that has run and writes one line
 *	per cycle to FILE: "T_CALL T_RET T_READ TS_NS" (CLOCK_BOOTTIME ns:
 *	KVM_SET_CLOCK called, returned, its alert line read, the alert's ts_ns
 *	taken in the kernel at the ioctl's exit, -1 if the line has none).
 *   hookbench hold rawtp|rawtp-stats|kvm
 *	attaches an empty raw_tp program to sys_enter and sys_exit (rawtp;
 *	rawtp-stats: the same with the kernel's BPF run-time stats on, as
 *	hvguard's exporter turns them on), or to kvm_pvclock_update,
 *	kvm_write_tsc_offset and kvm_msr (kvm: the floor of hvguard's
 *	kvm-tracepoints tier), prints "attached" and holds them until
 *	SIGINT/SIGTERM.
 *   hookbench report [-j JSON] [-L HVGUARD_LATENCY] [-B BPFTRACE_LATENCY] CALLS
 *	CALLS lines "ROUND CONFIG TYPE NS [FOREIGN]" and the latency files
 *	-> markdown table and goals on stdout, the same numbers as JSON.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/bpf.h>
#include <linux/kvm.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NSEC_PER_SEC  1000000000ULL
#define NSEC_PER_MSEC 1000000ULL

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "hookbench: ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (fmt[strlen(fmt) - 1] == ':')
		fprintf(stderr, " %s", strerror(errno));
	fputc('\n', stderr);
	exit(1);
}

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Linear interpolation between order statistics; sorts v. */
static double quantile(double *v, int n, double q)
{
	double pos, frac;
	int i;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	pos = q * (n - 1);
	i = (int)pos;
	frac = pos - i;
	return i + 1 < n ? v[i] + frac * (v[i + 1] - v[i]) : v[i];
}

/* ---- A real-mode VM whose vCPU exits to us on every KVM_RUN ---- */

struct vm {
	int kvm, fd, vcpu;
	struct kvm_run *run;
	void *mem;
};

/*
 * At guest address 0: enable kvmclock once (wrmsr MSR_KVM_SYSTEM_TIME_NEW,
 * PVTI at 0x800 | enable), as every Linux guest does, so that KVM updates
 * the vCPU's clock after a KVM_SET_CLOCK as it would for a real guest; then
 * out 0x10, al; jmp back to the out: one KVM_EXIT_IO per KVM_RUN.
 */
static const uint8_t guest_code[] = {
    0x66, 0xb9, 0x01, 0x4d, 0x56, 0x4b, /* mov ecx, 0x4b564d01 */
    0x66, 0xb8, 0x01, 0x08, 0x00, 0x00, /* mov eax, 0x801 */
    0x66, 0x31, 0xd2,			/* xor edx, edx */
    0x0f, 0x30,				/* wrmsr */
    0xe6, 0x10,				/* 0x11: out 0x10, al */
    0xeb, 0xfc,				/* jmp 0x11 */
};

static void vm_set_real_mode(struct vm *vm)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs = {.rip = 0, .rflags = 0x2};

	if (ioctl(vm->vcpu, KVM_GET_SREGS, &sregs) < 0)
		die("KVM_GET_SREGS:");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(vm->vcpu, KVM_SET_SREGS, &sregs) < 0)
		die("KVM_SET_SREGS:");
	if (ioctl(vm->vcpu, KVM_SET_REGS, &regs) < 0)
		die("KVM_SET_REGS:");
}

static void vm_create(struct vm *vm)
{
	struct kvm_userspace_memory_region mr = {.memory_size = 0x1000};
	int run_size;

	vm->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm < 0)
		die("/dev/kvm:");
	vm->fd = ioctl(vm->kvm, KVM_CREATE_VM, 0);
	if (vm->fd < 0)
		die("KVM_CREATE_VM:");
	vm->mem = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (vm->mem == MAP_FAILED)
		die("mmap guest memory:");
	memcpy(vm->mem, guest_code, sizeof(guest_code));
	mr.userspace_addr = (uintptr_t)vm->mem;
	if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &mr) < 0)
		die("KVM_SET_USER_MEMORY_REGION:");
	vm->vcpu = ioctl(vm->fd, KVM_CREATE_VCPU, 0);
	if (vm->vcpu < 0)
		die("KVM_CREATE_VCPU:");
	run_size = ioctl(vm->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size < 0)
		die("KVM_GET_VCPU_MMAP_SIZE:");
	vm->run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu, 0);
	if (vm->run == MAP_FAILED)
		die("mmap kvm_run:");
	vm_set_real_mode(vm);
}

static void vm_run_once(struct vm *vm)
{
	if (ioctl(vm->vcpu, KVM_RUN, 0) < 0)
		die("KVM_RUN:");
	if (vm->run->exit_reason != KVM_EXIT_IO || vm->run->io.port != 0x10)
		die("KVM_RUN: exit %u, expected an I/O exit on port 0x10", vm->run->exit_reason);
}

/* ---- calls: ns per call, hooks attached or not ---- */

enum call_type { CALL_GETPPID, CALL_FIONREAD, CALL_KVM_CHECK, CALL_KVM_RUN, CALL_NR };

static const char *const call_names[CALL_NR] = {"getppid", "fionread", "kvm_check", "kvm_run"};

struct call_env {
	struct vm vm;
	int pipe_rd;
};

/* One sample: ns per call over n calls of type t. */
static double call_sample(struct call_env *env, enum call_type t, long n)
{
	uint64_t t0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
	int avail;
	long i;

	switch (t) {
	case CALL_GETPPID:
		for (i = 0; i < n; i++)
			syscall(SYS_getppid);
		break;
	case CALL_FIONREAD:
		for (i = 0; i < n; i++)
			if (ioctl(env->pipe_rd, FIONREAD, &avail) < 0)
				die("FIONREAD:");
		break;
	case CALL_KVM_CHECK:
		for (i = 0; i < n; i++)
			if (ioctl(env->vm.fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS) <= 0)
				die("KVM_CHECK_EXTENSION on the VM fd:");
		break;
	case CALL_KVM_RUN:
		for (i = 0; i < n; i++)
			vm_run_once(&env->vm);
		break;
	default:
		break;
	}
	return (double)(now_ns(CLOCK_THREAD_CPUTIME_ID) - t0) / n;
}

static long calls_per_sample(enum call_type t, long n)
{
	/*
	 * A KVM_RUN round trip costs ~40 getppid: N/10 makes its samples the
	 * longest of all, as its noise is the largest.
	 */
	return t == CALL_KVM_RUN ? (n / 10 ? n / 10 : 1) : n;
}

static int cmd_calls(int argc, char **argv)
{
	double ns[CALL_NR][256];
	struct call_env env;
	long n = 100000;
	int samples = 9, fds[2], opt, s, t, types = CALL_NR;

	while ((opt = getopt(argc, argv, "n:s:K")) != -1) {
		switch (opt) {
		case 'n':
			n = atol(optarg);
			break;
		case 's':
			samples = atoi(optarg);
			break;
		case 'K': /* no /dev/kvm: the calls any process makes, no KVM's */
			types = CALL_KVM_CHECK;
			break;
		default:
			return 2;
		}
	}
	if (n < 1 || samples < 1 || samples > 256)
		die("calls: -n must be >= 1 and -s in 1..256");
	if (pipe(fds) < 0)
		die("pipe:");
	env.pipe_rd = fds[0];
	if (types > CALL_KVM_CHECK)
		vm_create(&env.vm);

	/* Warm caches, page tables and the vCPU before the first sample counts. */
	for (t = 0; t < types; t++)
		call_sample(&env, t, calls_per_sample(t, n) / 4 + 1);
	/* Samples outermost: a burst of noise hits every type alike. */
	for (s = 0; s < samples; s++)
		for (t = 0; t < types; t++)
			ns[t][s] = call_sample(&env, t, calls_per_sample(t, n));
	for (t = 0; t < types; t++)
		printf("%s %.2f\n", call_names[t], quantile(ns[t], samples, 0.5));
	return 0;
}

/* ---- latency: offending ioctl -> alert line ---- */

struct lines {
	int fd;
	size_t len;
	char buf[65536];
};

/*
 * Next line from the daemon into out, waiting at most until deadline
 * (CLOCK_BOOTTIME ns). Returns 1 with a line, 0 on timeout, -1 at EOF.
 */
static int next_line(struct lines *l, char *out, size_t size, uint64_t deadline)
{
	for (;;) {
		char *nl = memchr(l->buf, '\n', l->len);
		struct pollfd pfd = {.fd = l->fd, .events = POLLIN};
		uint64_t now;
		ssize_t r;

		if (nl) {
			size_t n = nl - l->buf;

			snprintf(out, size, "%.*s", (int)n, l->buf);
			l->len -= n + 1;
			memmove(l->buf, nl + 1, l->len);
			return 1;
		}
		if (l->len == sizeof(l->buf))
			l->len = 0; /* a line longer than the buffer: not one of ours */
		now = now_ns(CLOCK_BOOTTIME);
		if (now >= deadline)
			return 0;
		r = poll(&pfd, 1, (deadline - now) / NSEC_PER_MSEC + 1);
		if (r < 0 && errno != EINTR)
			die("poll:");
		if (r <= 0)
			continue; /* nothing yet: a read now would block past the deadline */
		r = read(l->fd, l->buf + l->len, sizeof(l->buf) - l->len);
		if (r == 0)
			return -1;
		if (r < 0 && errno != EAGAIN && errno != EINTR)
			die("read daemon output:");
		if (r > 0)
			l->len += r;
	}
}

/* The value after "key": in a one-line JSON object, spaces allowed around ':'. */
static const char *json_value(const char *line, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\"", key);
	p = strstr(line, pat);
	if (!p)
		return NULL;
	p += strlen(pat);
	while (*p == ' ' || *p == ':')
		p++;
	return p;
}

static int json_is(const char *line, const char *key, const char *str)
{
	const char *v = json_value(line, key);
	size_t n = strlen(str);

	return v && *v == '"' && !strncmp(v + 1, str, n) && v[n + 1] == '"';
}

static int json_int(const char *line, const char *key, long long *out)
{
	const char *v = json_value(line, key);
	char *end;

	if (!v)
		return 0;
	*out = strtoll(v, &end, 10);
	return end != v;
}

/* Undo taskset for the daemon: it runs where the scheduler puts it, as in production. */
static void unpin(void)
{
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);
	cpu_set_t set;
	long c;

	CPU_ZERO(&set);
	for (c = 0; c < ncpu && c < CPU_SETSIZE; c++)
		CPU_SET(c, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static pid_t spawn(char **argv, int *out_fd)
{
	int fds[2];
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) < 0)
		die("pipe:");
	pid = fork();
	if (pid < 0)
		die("fork:");
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		unpin();
		execvp(argv[0], argv);
		fprintf(stderr, "hookbench: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	*out_fd = fds[0];
	return pid;
}

/* The daemon's JSON ready line, or a line starting with ready_prefix. */
static void wait_ready(struct lines *l, const char *ready_prefix)
{
	uint64_t deadline = now_ns(CLOCK_BOOTTIME) + 60 * NSEC_PER_SEC;
	char line[4096];
	int r;

	while ((r = next_line(l, line, sizeof(line), deadline)) > 0)
		if (ready_prefix ? !strncmp(line, ready_prefix, strlen(ready_prefix))
				 : json_is(line, "type", "ready"))
			return;
	die(r < 0 ? "the daemon exited before its ready line" : "no ready line within 60 s");
}

/*
 * Is this the kvmclock-jump alert of our VM's SET_CLOCK issued after 'since'?
 * Also takes the line of bench/qemu-rewind.bt, which has no timestamp.
 */
static int is_our_alert(const char *line, uint64_t since, long long *ts)
{
	long long pid;

	if (sscanf(line, "kvmclock rewind: pid %lld", &pid) == 1) {
		*ts = -1;
		return pid == getpid();
	}
	return json_is(line, "type", "alert") && json_is(line, "rule", "kvmclock-jump") &&
	       json_int(line, "pid", &pid) && pid == getpid() && json_int(line, "ts_ns", ts) &&
	       (uint64_t)*ts >= since;
}

/* QEMU's stop/cont: save the clock, pause, write the saved (now old) clock back. */
static void rewind_once(struct vm *vm, unsigned int pause_ms, uint64_t *before, uint64_t *ret)
{
	struct kvm_clock_data saved = {0}, old = {0};
	struct timespec pause = {pause_ms / 1000, (pause_ms % 1000) * NSEC_PER_MSEC};

	if (ioctl(vm->fd, KVM_GET_CLOCK, &saved) < 0)
		die("KVM_GET_CLOCK:");
	nanosleep(&pause, NULL);
	old.clock = saved.clock;
	*before = now_ns(CLOCK_BOOTTIME);
	if (ioctl(vm->fd, KVM_SET_CLOCK, &old) < 0)
		die("KVM_SET_CLOCK:");
	*ret = now_ns(CLOCK_BOOTTIME);
}

static void stop_daemon(pid_t pid, struct lines *l)
{
	uint64_t deadline;
	char line[4096];
	int status;

	kill(pid, SIGINT);
	/* Drain to EOF so that the daemon never blocks on a full pipe while exiting. */
	deadline = now_ns(CLOCK_BOOTTIME) + 10 * NSEC_PER_SEC;
	while (next_line(l, line, sizeof(line), deadline) > 0)
		;
	if (now_ns(CLOCK_BOOTTIME) >= deadline)
		kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
}

static int cmd_latency(int argc, char **argv)
{
	unsigned int pause_ms = 20, timeout_ms = 1000;
	int count = 200, opt, i, missed = 0;
	const char *out_path = NULL, *ready = NULL;
	static struct lines l;
	char line[4096];
	struct vm vm;
	FILE *out = stdout;
	pid_t pid;

	while ((opt = getopt(argc, argv, "c:p:o:t:r:")) != -1) {
		switch (opt) {
		case 'c':
			count = atoi(optarg);
			break;
		case 'p':
			pause_ms = atoi(optarg);
			break;
		case 't':
			timeout_ms = atoi(optarg);
			break;
		case 'o':
			out_path = optarg;
			break;
		case 'r':
			ready = optarg;
			break;
		default:
			return 2;
		}
	}
	if (optind >= argc)
		die("latency: the daemon's command line goes after --");
	if (out_path && !(out = fopen(out_path, "w")))
		die("%s:", out_path);
	signal(SIGPIPE, SIG_IGN);

	l.fd = -1;
	pid = spawn(argv + optind, &l.fd);
	wait_ready(&l, ready);
	/* The daemon checks VMs that have run: a pause is only a pause after a run. */
	vm_create(&vm);
	vm_run_once(&vm);

	for (i = 0; i < count; i++) {
		uint64_t before, ret, read_at = 0;
		long long ts = 0;
		int r;

		rewind_once(&vm, pause_ms, &before, &ret);
		/* cont: the guest runs again, as after a real resume (on the
		 * kvm-tracepoints tier the decision comes at this entry). */
		vm_run_once(&vm);
		while ((r = next_line(&l, line, sizeof(line), ret + timeout_ms * NSEC_PER_MSEC)) >
		       0)
			if (is_our_alert(line, before, &ts)) {
				read_at = now_ns(CLOCK_BOOTTIME);
				break;
			}
		if (r < 0)
			die("the daemon exited during the latency run");
		if (read_at)
			fprintf(out, "%llu %llu %llu %lld\n", (unsigned long long)before,
				(unsigned long long)ret, (unsigned long long)read_at, ts);
		else
			missed++;
	}
	stop_daemon(pid, &l);
	if (out != stdout)
		fclose(out);
	fprintf(stderr, "hookbench: latency: %d rewinds, %d alerts missed (none within %u ms)\n",
		count, missed, timeout_ms);
	return missed == count ? 1 : 0;
}

/* ---- hold: an empty raw_tp program on sys_enter and sys_exit ---- */

/*
 * The other floor: raw_tp sys_enter/sys_exit run for every syscall but skip
 * the per-syscall tracepoint machinery. Loaded with bpf(2) directly, as the
 * program is two instructions: r0 = 0; exit.
 */
static int rawtp_attach(const char *tp)
{
	struct bpf_insn insns[] = {
	    {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0},
	    {.code = BPF_JMP | BPF_EXIT},
	};
	union bpf_attr attr;
	int prog, link;

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_RAW_TRACEPOINT;
	attr.insns = (uintptr_t)insns;
	attr.insn_cnt = sizeof(insns) / sizeof(insns[0]);
	attr.license = (uintptr_t) "GPL";
	prog = syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
	if (prog < 0)
		die("BPF_PROG_LOAD raw_tp:");
	memset(&attr, 0, sizeof(attr));
	attr.raw_tracepoint.name = (uintptr_t)tp;
	attr.raw_tracepoint.prog_fd = prog;
	link = syscall(SYS_bpf, BPF_RAW_TRACEPOINT_OPEN, &attr, sizeof(attr));
	if (link < 0)
		die("BPF_RAW_TRACEPOINT_OPEN %s:", tp);
	return link;
}

static void on_signal(int sig)
{
	(void)sig;
}

static int stats_on(void)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.enable_stats.type = BPF_STATS_RUN_TIME;
	return syscall(SYS_bpf, BPF_ENABLE_STATS, &attr, sizeof(attr));
}

/* Attached until SIGINT/SIGTERM; "attached" on stdout once both are live. */
static int cmd_hold(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = on_signal};
	sigset_t set, old;

	bool stats;

	if (argc != 2 ||
	    (strcmp(argv[1], "rawtp") && strcmp(argv[1], "rawtp-stats") && strcmp(argv[1], "kvm")))
		die("usage: hookbench hold rawtp|rawtp-stats|kvm");
	stats = !strcmp(argv[1], "rawtp-stats");
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, &old);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (!strcmp(argv[1], "rawtp") || stats) {
		rawtp_attach("sys_enter");
		rawtp_attach("sys_exit");
		/* What hvguard's exporter does: the kernel's BPF run-time stats
		 * on, for every program on the host, while the fd is held. */
		if (stats && stats_on() < 0)
			die("BPF_ENABLE_STATS:");
	} else { /* the floor of the kvm-tracepoints tier */
		rawtp_attach("kvm_pvclock_update");
		rawtp_attach("kvm_write_tsc_offset");
		rawtp_attach("kvm_msr");
	}
	printf("attached\n");
	fflush(stdout);
	sigsuspend(&old); /* no race: the signals stay blocked until here */
	return 0;
}

/* ---- report: medians over rounds, added cost, goals ---- */

#define MAX_ROUNDS 64
#define MAX_CFG	   8

struct calls {
	char cfg[MAX_CFG][32];
	int ncfg, nround;
	double ns[MAX_CFG][CALL_NR][MAX_ROUNDS]; /* < 0: not measured */
	int foreign[MAX_ROUNDS];		 /* other tenants' programs were on the hooks */
	int dropped;				 /* rounds left out for that */
	int all_foreign;			 /* ... unless every round had them */
};

struct summary {
	int n;
	double median, spread; /* spread: half the interquartile range */
};

static int cfg_index(struct calls *c, const char *name)
{
	int i;

	for (i = 0; i < c->ncfg; i++)
		if (!strcmp(c->cfg[i], name))
			return i;
	if (c->ncfg == MAX_CFG)
		die("report: more than %d configurations", MAX_CFG);
	snprintf(c->cfg[c->ncfg], sizeof(c->cfg[0]), "%s", name);
	return c->ncfg++;
}

/* The index of a configuration measured, -1 when none was. */
static int cfg_find(const struct calls *c, const char *name)
{
	for (int i = 0; i < c->ncfg; i++)
		if (!strcmp(c->cfg[i], name))
			return i;
	return -1;
}

static int call_index(const char *name)
{
	int t;

	for (t = 0; t < CALL_NR; t++)
		if (!strcmp(call_names[t], name))
			return t;
	return -1;
}

/*
 * A round measured while someone else's programs sat on the same hooks is
 * worthless (their cost lands in "none" too): drop it, unless all are such.
 */
static void drop_foreign_rounds(struct calls *c)
{
	int r, i, t, n = 0;

	for (r = 0; r < c->nround; r++)
		n += c->foreign[r];
	if (n == c->nround) {
		c->all_foreign = n > 0;
		return;
	}
	for (r = 0; r < c->nround; r++) {
		if (!c->foreign[r])
			continue;
		for (i = 0; i < MAX_CFG; i++)
			for (t = 0; t < CALL_NR; t++)
				c->ns[i][t][r] = -1;
	}
	c->dropped = n;
}

/* Lines "ROUND CONFIG TYPE NS [FOREIGN]". */
static void read_calls(const char *path, struct calls *c)
{
	char line[256], cfg[32], type[32];
	int round, foreign, i, t, r;
	FILE *f = fopen(path, "r");
	double ns;

	if (!f)
		die("%s:", path);
	for (i = 0; i < MAX_CFG; i++)
		for (t = 0; t < CALL_NR; t++)
			for (r = 0; r < MAX_ROUNDS; r++)
				c->ns[i][t][r] = -1;
	cfg_index(c, "none"); /* the baseline comes first in every table */
	while (fgets(line, sizeof(line), f)) {
		foreign = 0;
		if (sscanf(line, "%d %31s %31s %lf %d", &round, cfg, type, &ns, &foreign) < 4)
			continue;
		t = call_index(type);
		if (t < 0 || round < 0 || round >= MAX_ROUNDS)
			die("%s: bad line: %s", path, line);
		c->ns[cfg_index(c, cfg)][t][round] = ns;
		c->foreign[round] |= foreign != 0;
		if (round + 1 > c->nround)
			c->nround = round + 1;
	}
	fclose(f);
	drop_foreign_rounds(c);
}

static struct summary summarize(double *v, int n)
{
	struct summary s = {.n = n};

	if (n) {
		s.median = quantile(v, n, 0.5);
		s.spread = (quantile(v, n, 0.75) - quantile(v, n, 0.25)) / 2;
	}
	return s;
}

/* ns per call of cfg (base < 0) or ns added to it over base, round by round. */
static struct summary calls_stat(struct calls *c, int cfg, int base, int t)
{
	double v[MAX_ROUNDS];
	int r, n = 0;

	for (r = 0; r < c->nround; r++) {
		if (c->ns[cfg][t][r] < 0 || (base >= 0 && c->ns[base][t][r] < 0))
			continue;
		v[n++] = c->ns[cfg][t][r] - (base >= 0 ? c->ns[base][t][r] : 0);
	}
	return summarize(v, n);
}

struct latency {
	int n;
	double p50, p99, max;	     /* us, offending ioctl -> alert line read */
	double ret_p50, ret_p99;     /* us, ioctl returned -> alert line read */
	double ioctl_p50, ioctl_p99; /* us, the KVM_SET_CLOCK as the VMM saw it */
	double late_p50, late_p99;   /* us, ioctl called -> the hook that decided */
};

/*
 * Lines "T_CALL T_RET T_READ TS_NS". The offending ioctl is the kernel's
 * ts_ns; without one (bpftrace), the call: a little early, never late. The
 * return alone would flatter a detector that preempts the VMM before it
 * returns: the line is then written before T_RET.
 */
static void read_latency(const char *path, struct latency *lat)
{
	static double e2e[100000], ret[100000], call[100000], late[100000];
	unsigned long long t_call, t_ret, t_read;
	FILE *f = fopen(path, "r");
	long long ts;
	int n = 0;

	if (!f)
		die("%s:", path);
	while (n < 100000 && fscanf(f, "%llu %llu %llu %lld", &t_call, &t_ret, &t_read, &ts) == 4) {
		e2e[n] = (double)((long long)t_read - (ts >= 0 ? ts : (long long)t_call)) / 1000;
		ret[n] = (double)(t_read - t_ret) / 1000;
		late[n] = ts >= 0 ? (double)(ts - (long long)t_call) / 1000 : 0;
		call[n++] = (double)(t_ret - t_call) / 1000;
	}
	fclose(f);
	lat->n = n;
	lat->p50 = quantile(e2e, n, 0.5);
	lat->p99 = quantile(e2e, n, 0.99);
	lat->max = n ? e2e[n - 1] : 0; /* sorted by quantile() */
	lat->ret_p50 = quantile(ret, n, 0.5);
	lat->ret_p99 = quantile(ret, n, 0.99);
	lat->ioctl_p50 = quantile(call, n, 0.5);
	lat->ioctl_p99 = quantile(call, n, 0.99);
	lat->late_p50 = quantile(late, n, 0.5);
	lat->late_p99 = quantile(late, n, 0.99);
}

static void print_table(struct calls *c)
{
	int bpf = cfg_find(c, "bpftrace"), hv = cfg_find(c, "hvguard"), i, t;
	bool ratio = bpf >= 0 && hv >= 0;

	printf("| call | none ns/call |");
	for (i = 1; i < c->ncfg; i++)
		printf(" %s +ns |", c->cfg[i]);
	printf("%s\n|---|---:|", ratio ? " hvguard/bpftrace |" : "");
	for (i = 1; i < c->ncfg; i++)
		printf("---:|");
	printf("%s\n", ratio ? "---:|" : "");
	for (t = 0; t < CALL_NR; t++) {
		struct summary none = calls_stat(c, 0, -1, t), sh, sb;

		if (!none.n)
			continue; /* not measured: no /dev/kvm (calls -K) */
		printf("| %s | %.0f |", call_names[t], none.median);
		for (i = 1; i < c->ncfg; i++) {
			struct summary s = calls_stat(c, i, 0, t);

			if (s.n)
				printf(" %+.0f ±%.0f |", s.median, s.spread);
			else
				printf(" n/a |");
		}
		if (!ratio) {
			printf("\n");
			continue;
		}
		sh = calls_stat(c, hv, 0, t);
		sb = calls_stat(c, bpf, 0, t);
		if (t != CALL_GETPPID && sh.n && sb.n && sb.median > 0)
			printf(" %.2f |\n", sh.median / sb.median);
		else
			printf(" |\n");
	}
}

static const char *verdict(int measured, int met)
{
	return !measured ? "not measured" : met ? "met" : "NOT met";
}

static void print_latency(const char *what, struct latency *lat)
{
	printf("- %s: p50 %.0f us, p99 %.0f us, max %.0f (%d alerts; from the ioctl's return: "
	       "p50 %.0f, p99 %.0f; the ioctl itself: p50 %.0f, p99 %.0f; the deciding hook "
	       "came after the ioctl's call by p50 %.0f, p99 %.0f)",
	       what, lat->p50, lat->p99, lat->max, lat->n, lat->ret_p50, lat->ret_p99,
	       lat->ioctl_p50, lat->ioctl_p99, lat->late_p50, lat->late_p99);
}

/* lat[0]: hvguard, lat[1]: the bpftrace reference. */
static void print_goals(struct calls *c, struct latency *lat)
{
	int bpf = cfg_index(c, "bpftrace"), hv = cfg_index(c, "hvguard");
	int empty = cfg_index(c, "empty"), t;
	struct summary sh;

	if (c->dropped)
		printf("\n%d of %d rounds left out: other BPF programs were loaded, or attached to "
		       "syscall or kvm tracepoints, meanwhile.\n",
		       c->dropped, c->nround);
	if (c->all_foreign)
		printf("\nWARNING: other programs were attached to syscall or kvm tracepoints in "
		       "every round: these numbers include their cost.\n");
	printf("\nGoals (hvguard on its default tier):\n");
	/* Processes that are not VMMs: +0 within the noise. */
	for (t = CALL_GETPPID; t <= CALL_FIONREAD; t++) {
		sh = calls_stat(c, hv, 0, t);
		printf("- %s (any process): %+.0f ±%.0f ns, at most +5 ns or the ±: %s\n",
		       call_names[t], sh.median, sh.spread,
		       verdict(sh.n, sh.median <= (sh.spread > 5 ? sh.spread : 5)));
	}
	for (t = CALL_FIONREAD; t <= CALL_KVM_CHECK; t++) {
		struct summary sb = calls_stat(c, bpf, 0, t);

		sh = calls_stat(c, hv, 0, t);
		printf("- %s: hvguard/bpftrace %.2f (%+.0f / %+.0f ns), at most 0.1: %s\n",
		       call_names[t], sb.median > 0 ? sh.median / sb.median : 0, sh.median,
		       sb.median,
		       /* A ratio to a cost lost in the noise says nothing. */
		       sb.n && sb.median <= 2 * sb.spread
			   ? "inconclusive (bpftrace's cost is within the noise)"
			   : verdict(sh.n && sb.n, sh.median <= sb.median / 10));
	}
	sh = calls_stat(c, hv, 0, CALL_KVM_RUN);
	printf("- kvm_run (a VMM's KVM_RUN, one I/O exit): %+.0f ±%.0f ns, at most +50: %s\n",
	       sh.median, sh.spread,
	       sh.n && sh.spread > 50 ? "inconclusive (the noise is over 50 ns)"
				      : verdict(sh.n, sh.median <= 50));
	/* The floor is the kernel's; what is left is what each program does. */
	printf("- over the empty syscall programs' floor, hvguard vs bpftrace:");
	for (t = CALL_FIONREAD; t < CALL_NR; t++)
		printf("%s %s %+.0f vs %+.0f", t == CALL_FIONREAD ? "" : ";", call_names[t],
		       calls_stat(c, hv, empty, t).median, calls_stat(c, bpf, empty, t).median);
	printf("\n");
	print_latency("alert latency, offending KVM_SET_CLOCK -> alert line read", &lat[0]);
	printf(", p99 under 1 ms: %s\n", verdict(lat[0].n, lat[0].p99 < 1000));
	if (lat[1].n) {
		print_latency("reference, bench/qemu-rewind.bt's line", &lat[1]);
		printf("\n");
	}
}

/*
 * The cost of the kernel's BPF run-time stats (hvguard's exporter turns
 * them on): the same empty programs on sys_enter and sys_exit with and
 * without, paired round by round. Two program runs per call.
 */
static void print_stats_cost(struct calls *c)
{
	int with = cfg_find(c, "rawtp-stats"), without = cfg_find(c, "rawtp");

	if (with < 0 || without < 0)
		return;
	printf("\nBPF_ENABLE_STATS (BPF_STATS_RUN_TIME), over the same empty programs on "
	       "sys_enter and sys_exit without it (two program runs per call):\n");
	for (int t = CALL_GETPPID; t <= CALL_FIONREAD; t++) {
		struct summary s = calls_stat(c, with, without, t);

		if (s.n)
			printf("- %s: %+.1f ±%.1f ns per call, %+.1f ns per program run (%d "
			       "rounds)\n",
			       call_names[t], s.median, s.spread, s.median / 2, s.n);
	}
}

static void json_summary(FILE *f, const char *key, struct summary s)
{
	if (s.n)
		fprintf(f, "\"%s\":{\"median\":%.2f,\"spread\":%.2f,\"rounds\":%d}", key, s.median,
			s.spread, s.n);
	else
		fprintf(f, "\"%s\":null", key);
}

static void json_latency(FILE *f, const char *key, struct latency *lat)
{
	fprintf(f, "\"%s\":", key);
	if (!lat->n) {
		fprintf(f, "null");
		return;
	}
	fprintf(f,
		"{\"count\":%d,\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f,"
		"\"from_return_p50\":%.1f,\"from_return_p99\":%.1f,"
		"\"ioctl_p50\":%.1f,\"ioctl_p99\":%.1f}",
		lat->n, lat->p50, lat->p99, lat->max, lat->ret_p50, lat->ret_p99, lat->ioctl_p50,
		lat->ioctl_p99);
}

static void write_json(const char *path, struct calls *c, struct latency *lat)
{
	FILE *f = fopen(path, "w");
	int i, t;

	if (!f)
		die("%s:", path);
	fprintf(f,
		"{\"rounds\":%d,\"rounds_dropped\":%d,\"foreign_hooks_in_all_rounds\":%s,"
		"\"unit\":\"ns per call\",\"configs\":{",
		c->nround, c->dropped, c->all_foreign ? "true" : "false");
	for (i = 0; i < c->ncfg; i++) {
		fprintf(f, "%s\"%s\":{", i ? "," : "", c->cfg[i]);
		for (t = 0; t < CALL_NR; t++) {
			fprintf(f, "%s\"%s\":{", t ? "," : "", call_names[t]);
			json_summary(f, "ns", calls_stat(c, i, -1, t));
			fputc(',', f);
			json_summary(f, "added_ns", calls_stat(c, i, 0, t));
			fputc(',', f);
			json_summary(f, "over_empty_ns",
				     calls_stat(c, i, cfg_index(c, "empty"), t));
			fputc('}', f);
		}
		fputc('}', f);
	}
	fprintf(f, "},\"alert_latency_us\":{");
	json_latency(f, "hvguard", &lat[0]);
	fputc(',', f);
	json_latency(f, "bpftrace", &lat[1]);
	fprintf(f, "}}\n");
	fclose(f);
}

static int cmd_report(int argc, char **argv)
{
	static struct calls c;
	struct latency lat[2] = {{0}};
	const char *json = NULL;
	int opt;

	while ((opt = getopt(argc, argv, "j:L:B:")) != -1) {
		switch (opt) {
		case 'j':
			json = optarg;
			break;
		case 'L':
			read_latency(optarg, &lat[0]);
			break;
		case 'B':
			read_latency(optarg, &lat[1]);
			break;
		default:
			return 2;
		}
	}
	if (optind >= argc)
		die("report: CALLS file missing");
	read_calls(argv[optind], &c);
	print_table(&c);
	print_stats_cost(&c);
	if (cfg_find(&c, "hvguard") >= 0)
		print_goals(&c, lat);
	if (json)
		write_json(json, &c, lat);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "calls"))
		return cmd_calls(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "latency"))
		return cmd_latency(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "hold"))
		return cmd_hold(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "report"))
		return cmd_report(argc - 1, argv + 1);
	fprintf(
	    stderr,
	    "usage: hookbench calls [-n N] [-s SAMPLES] [-K (no KVM calls)]\n"
	    "       hookbench latency [-c COUNT] [-p PAUSE_MS] [-t TIMEOUT_MS] "
	    "[-o FILE] [-r READY_PREFIX] -- CMD...\n"
	    "       hookbench hold rawtp|rawtp-stats|kvm\n"
	    "       hookbench report [-j JSON] [-L HVGUARD_LATENCY] [-B BPFTRACE_LATENCY] CALLS\n");
	return 2;
}
