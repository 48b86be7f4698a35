// SPDX-License-Identifier: GPL-2.0
/*
 * user/inject.c against a real process that owns a KVM VM: a forked child
 * opens /dev/kvm, creates a VM, tells us its fd and then sleeps in a loop,
 * reading its own kvmclock every 10 ms and sending it to us as a heartbeat.
 * Needs root and /dev/kvm.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h> /* after setjmp.h, stdarg.h, stddef.h */

#include "inject.h"

#define NSEC_PER_SEC 1000000000LL
#define BEAT_NS	     10000000L /* child heartbeat period */
#define JUMP_NS	     (5 * NSEC_PER_SEC)

struct beat {
	uint64_t seq;
	uint64_t clock; /* the child's own KVM_GET_CLOCK */
	int64_t err;	/* its errno, 0 if fine */
};

struct vmm {
	pid_t pid;
	int vm_fd; /* the fd number inside the child */
	int beat_rd;
	struct beat last;
	long long spawned_ns; /* before fork */
	long long ready_ns;   /* after the child said its VM exists */
};

static struct vmm vmm;

static long long mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* ---- the child: a VMM that does nothing but own a VM ---- */

struct child {
	int vm;
	int beat_wr;
};

/* Like a vCPU thread: uses the VM, here by reading its clock every 10 ms. */
static void *vmm_beat(void *arg)
{
	struct child *c = arg;
	struct kvm_clock_data clk;
	struct beat b = {0};

	for (;;) {
		struct timespec ts = {0, BEAT_NS};

		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
		memset(&clk, 0, sizeof(clk));
		b.err = ioctl(c->vm, KVM_GET_CLOCK, &clk) ? errno : 0;
		b.clock = clk.clock;
		b.seq++;
		if (write(c->beat_wr, &b, sizeof(b)) < 0 && errno != EAGAIN)
			_exit(2);
	}
	return NULL;
}

/* Like a VMM's main loop: sleeps, and is the thread we inject into. */
static void __attribute__((noreturn)) vmm_child(int info_wr, int beat_wr)
{
	static struct child c;
	pthread_t th;
	int kvm;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	c.vm = kvm < 0 ? -errno : ioctl(kvm, KVM_CREATE_VM, 0);
	if (c.vm < 0 && kvm >= 0)
		c.vm = -errno;
	c.beat_wr = beat_wr;
	if (c.vm >= 0 && pthread_create(&th, NULL, vmm_beat, &c))
		c.vm = -EAGAIN;
	if (write(info_wr, &c.vm, sizeof(c.vm)) != sizeof(c.vm) || c.vm < 0)
		_exit(1);
	close(info_wr);
	for (;;) {
		struct timespec ts = {1, 0};

		/* Injections interrupt the sleep; a plain restart is fine. */
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
}

static int vmm_spawn(struct vmm *v)
{
	int info[2], beat[2], n;

	if (pipe2(info, O_CLOEXEC) || pipe2(beat, O_CLOEXEC | O_NONBLOCK))
		return -1;
	v->spawned_ns = mono_ns();
	v->pid = fork();
	if (v->pid < 0)
		return -1;
	if (v->pid == 0) {
		close(info[0]);
		close(beat[0]);
		vmm_child(info[1], beat[1]);
	}
	close(info[1]);
	close(beat[1]);
	n = read(info[0], &v->vm_fd, sizeof(v->vm_fd));
	close(info[0]);
	v->ready_ns = mono_ns();
	v->beat_rd = beat[0];
	if (n != sizeof(v->vm_fd) || v->vm_fd < 0) {
		fprintf(stderr, "child could not create a VM: %s\n",
			n == sizeof(v->vm_fd) ? strerror(-v->vm_fd) : "no answer");
		return -1;
	}
	return 0;
}

/* Read every heartbeat queued; returns how many. */
static int vmm_drain(struct vmm *v)
{
	struct beat b;
	int n = 0;

	while (read(v->beat_rd, &b, sizeof(b)) == sizeof(b)) {
		v->last = b;
		n++;
	}
	return n;
}

static int group_setup(void **state)
{
	(void)state;
	if (geteuid() != 0) {
		fprintf(stderr, "test_inject needs root\n");
		return -1;
	}
	return vmm_spawn(&vmm);
}

static int group_teardown(void **state)
{
	(void)state;
	if (vmm.pid > 0) {
		kill(vmm.pid, SIGKILL);
		waitpid(vmm.pid, NULL, 0);
	}
	return 0;
}

/* ---- helpers ---- */

static struct hv_injector *begin_ok(int pid)
{
	struct hv_injector *inj = NULL;
	char err[256] = "";
	int ret;

	ret = hv_inject_begin(pid, &inj, err, sizeof(err));
	if (ret)
		fail_msg("hv_inject_begin(%d) = %d: %s", pid, ret, err);
	assert_non_null(inj);
	return inj;
}

static void get_clock(struct hv_injector *inj, struct kvm_clock_data *clk)
{
	long ret = 1;
	int err;

	memset(clk, 0, sizeof(*clk));
	err = hv_inject_ioctl(inj, vmm.vm_fd, KVM_GET_CLOCK, clk, sizeof(*clk), &ret);
	if (err)
		fail_msg("inject KVM_GET_CLOCK: %d: %s", err, hv_inject_error(inj));
	assert_int_equal(ret, 0);
}

static int count_lines(const char *path)
{
	char line[512];
	FILE *f = fopen(path, "re");
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n;
}

static int count_maps(int pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	return count_lines(path);
}

/* Whether any mapping of pid covers addr. */
static bool is_mapped(int pid, unsigned long addr)
{
	char path[64], line[512];
	unsigned long lo, hi;
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	assert_non_null(f);
	while (!found && fgets(line, sizeof(line), f))
		found = sscanf(line, "%lx-%lx", &lo, &hi) == 2 && addr >= lo && addr < hi;
	fclose(f);
	return found;
}

/* Open fds of this process (the injector must not leak any). */
static int count_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		n += fcntl(fd, F_GETFD) != -1;
	return n;
}

/* ---- (a) KVM_GET_CLOCK injected into the VMM ---- */

static void test_get_clock(void **state)
{
	struct kvm_clock_data clk;
	struct hv_injector *inj;
	long long t0, t1;
	long tid = 0;

	(void)state;
	t0 = mono_ns();
	inj = begin_ok(vmm.pid);
	assert_int_equal(hv_inject_tid(inj), vmm.pid);
	assert_false(hv_inject_was_stopped(inj));
	assert_int_equal(hv_inject_syscall(inj, SYS_gettid, NULL, &tid), 0);
	assert_int_equal(tid, hv_inject_tid(inj));
	get_clock(inj, &clk);
	assert_int_equal(hv_inject_end(inj), 0);
	t1 = mono_ns();

	/* A new VM's kvmclock starts at 0 when the VM is created. */
	print_message("# kvmclock %llu ns, flags %#x; VM created %lld..%lld ns before\n",
		      (unsigned long long)clk.clock, clk.flags, t0 - vmm.ready_ns,
		      t1 - vmm.spawned_ns);
	assert_true((long long)clk.clock >= t0 - vmm.ready_ns - 1000000);
	assert_true((long long)clk.clock <= t1 - vmm.spawned_ns + 1000000);
}

/* ---- (b) why injection: the same ioctl on a copied fd gets EIO ---- */

static void test_foreign_fd_eio(void **state)
{
	struct kvm_clock_data clk = {0};
	int pidfd, fd, ret;

	(void)state;
	pidfd = syscall(SYS_pidfd_open, vmm.pid, 0);
	assert_true(pidfd >= 0);
	fd = syscall(SYS_pidfd_getfd, pidfd, vmm.vm_fd, 0);
	if (fd < 0)
		fail_msg("pidfd_getfd: %s", strerror(errno));
	ret = ioctl(fd, KVM_GET_CLOCK, &clk);
	assert_int_equal(ret, -1);
	assert_int_equal(errno, EIO);
	close(fd);
	close(pidfd);
}

/* ---- (c) freeze, correct, thaw: the clock moves 5 s ahead ---- */

static void stop_and_wait(int pid)
{
	assert_int_equal(kill(pid, SIGSTOP), 0);
	assert_int_equal(hv_inject_wait_state(pid, 'T', 2000), 0);
}

/* Whether every thread of pid is in state (a group stop reaches them all). */
static bool all_threads_in(int pid, char state)
{
	struct dirent *d;
	char path[64];
	int n = 0, bad = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	dir = opendir(path);
	if (!dir)
		return false;
	while ((d = readdir(dir))) {
		if (d->d_name[0] == '.')
			continue;
		n++;
		bad += hv_inject_task_state(atoi(d->d_name)) != state;
	}
	closedir(dir);
	return n > 1 && !bad;
}

static void test_stopped_set_clock(void **state)
{
	struct kvm_clock_data c0, c1, set;
	struct hv_injector *inj;
	long long set_lo, set_hi, get_lo, get_hi, moved, lo, hi;
	long ret = 1;
	bool rt;

	(void)state;
	stop_and_wait(vmm.pid);
	inj = begin_ok(vmm.pid);
	assert_true(hv_inject_was_stopped(inj));
	get_clock(inj, &c0);
	/* With REALTIME, KVM adds the time since c0 was sampled: exact. */
	rt = c0.flags & KVM_CLOCK_REALTIME;
	set = (struct kvm_clock_data){.clock = c0.clock + JUMP_NS};
	if (rt) {
		set.flags = KVM_CLOCK_REALTIME;
		set.realtime = c0.realtime;
	}
	set_lo = mono_ns();
	assert_int_equal(hv_inject_ioctl(inj, vmm.vm_fd, KVM_SET_CLOCK, &set, sizeof(set), &ret),
			 0);
	set_hi = mono_ns();
	assert_int_equal(ret, 0);
	assert_int_equal(hv_inject_end(inj), 0);

	/* Left as found: every thread still stopped, until we say so. */
	sleep_ms(20);
	assert_true(all_threads_in(vmm.pid, 'T'));
	assert_int_equal(kill(vmm.pid, SIGCONT), 0);
	sleep_ms(20);
	assert_int_not_equal(hv_inject_task_state(vmm.pid), 'T');

	inj = begin_ok(vmm.pid);
	assert_false(hv_inject_was_stopped(inj));
	get_lo = mono_ns();
	get_clock(inj, &c1);
	get_hi = mono_ns();
	assert_int_equal(hv_inject_end(inj), 0);

	/*
	 * The clock must have moved 5 s plus the real time in between: with
	 * REALTIME, the time between the two samples, as KVM saw it; without,
	 * the time from the SET to the second GET, both bracketed by our own
	 * timestamps (load on the machine widens the brackets, not the error).
	 */
	moved = (long long)(c1.clock - c0.clock) - JUMP_NS;
	if (rt) {
		lo = hi = (long long)(c1.realtime - c0.realtime);
	} else {
		lo = get_lo - set_hi;
		hi = get_hi - set_lo;
	}
	print_message("# clock moved 5 s + %lld ns; expected 5 s + [%lld, %lld] ns (%s)\n", moved,
		      lo, hi, rt ? "KVM realtime" : "our timestamps");
	assert_true(moved >= lo - 500000 && moved <= hi + 500000);
}

/* ---- (d) the VMM carries on: its own heartbeat sees the new clock ---- */

static void test_child_alive(void **state)
{
	uint64_t seq0;
	int n;

	(void)state;
	vmm_drain(&vmm);
	seq0 = vmm.last.seq;
	sleep_ms(300);
	n = vmm_drain(&vmm);
	print_message("# %d heartbeats in 300 ms, child clock %llu ns\n", n,
		      (unsigned long long)vmm.last.clock);
	assert_true(n >= 5);
	assert_true(vmm.last.seq > seq0);
	assert_int_equal(vmm.last.err, 0);
	/* The child's own KVM_GET_CLOCK includes our +5 s. */
	assert_true((long long)vmm.last.clock >= mono_ns() - vmm.ready_ns + JUMP_NS - 100000000LL);
	assert_true((long long)vmm.last.clock <= mono_ns() - vmm.spawned_ns + JUMP_NS + 1000000LL);
	assert_int_equal(waitpid(vmm.pid, NULL, WNOHANG), 0);
}

/* ---- (e) many rounds: no leak, and how long a round takes ---- */

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

static void report(const char *what, long long *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_ll);
	print_message("# %-30s p50 %6lld us  p99 %6lld us  max %6lld us\n", what, v[n / 2] / 1000,
		      v[(n * 99) / 100] / 1000, v[n - 1] / 1000);
}

#define ROUNDS 100

static void rounds(bool stopped, const char *label)
{
	static long long total[ROUNDS], tbegin[ROUNDS], tioctl[ROUNDS], tend[ROUNDS];
	struct kvm_clock_data clk;
	struct hv_injector *inj;
	unsigned long scratch;
	long long t0, t1, t2, t3, t4;
	int maps0, fds0;
	char name[64];

	if (stopped)
		stop_and_wait(vmm.pid);
	maps0 = count_maps(vmm.pid);
	fds0 = count_fds();
	for (int i = 0; i < ROUNDS; i++) {
		t0 = mono_ns();
		inj = begin_ok(vmm.pid);
		t1 = mono_ns();
		get_clock(inj, &clk); /* mmap, write, ioctl, read */
		t2 = mono_ns();
		scratch = hv_inject_scratch(inj);
		assert_true(is_mapped(vmm.pid, scratch));
		t3 = mono_ns();
		assert_int_equal(hv_inject_end(inj), 0); /* munmap, detach */
		t4 = mono_ns();
		assert_false(is_mapped(vmm.pid, scratch));
		if (stopped)
			assert_int_equal(hv_inject_task_state(vmm.pid), 'T');
		else
			assert_int_not_equal(hv_inject_task_state(vmm.pid), 't');
		tbegin[i] = t1 - t0;
		tioctl[i] = t2 - t1;
		tend[i] = t4 - t3;
		total[i] = tbegin[i] + tioctl[i] + tend[i];
	}
	assert_int_equal(count_maps(vmm.pid), maps0);
	assert_int_equal(count_fds(), fds0);
	if (stopped)
		kill(vmm.pid, SIGCONT);
	snprintf(name, sizeof(name), "%s: round (begin..end)", label);
	report(name, total, ROUNDS);
	snprintf(name, sizeof(name), "%s: begin", label);
	report(name, tbegin, ROUNDS);
	snprintf(name, sizeof(name), "%s: GET_CLOCK", label);
	report(name, tioctl, ROUNDS);
	snprintf(name, sizeof(name), "%s: end", label);
	report(name, tend, ROUNDS);
}

static void test_rounds(void **state)
{
	(void)state;
	rounds(false, "running");
	rounds(true, "stopped");
	vmm_drain(&vmm);
	sleep_ms(100);
	assert_true(vmm_drain(&vmm) >= 3);
	assert_int_equal(vmm.last.err, 0);
}

/* ---- (f) errors: no such pid, exited pid, death mid-injection ---- */

static char logged[1024];

static void capture_log(unsigned int level, const char *msg, void *arg)
{
	size_t n = strlen(logged);

	(void)level;
	(void)arg;
	snprintf(logged + n, sizeof(logged) - n, "%s\n", msg);
}

static void expect_begin_error(int pid, int want, const char *words)
{
	struct hv_injector *inj = (void *)1;
	char err[256] = "";
	int ret;

	ret = hv_inject_begin(pid, &inj, err, sizeof(err));
	print_message("# begin(%d): %d %s\n", pid, ret, err);
	assert_int_equal(ret, want);
	assert_null(inj);
	assert_non_null(strstr(err, words));
}

static pid_t spawn_exiting(bool reap)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	if (reap)
		waitpid(pid, NULL, 0);
	else
		assert_int_equal(hv_inject_wait_state(pid, 'Z', 2000), 0);
	return pid;
}

static void test_errors(void **state)
{
	struct hv_injector *inj;
	pid_t pid;
	long ret = 0;
	int err;

	(void)state;
	expect_begin_error(0, -EINVAL, "invalid pid");
	expect_begin_error(getpid(), -EINVAL, "this process");

	pid = spawn_exiting(true);
	expect_begin_error(pid, -ESRCH, "no such process");

	pid = spawn_exiting(false);
	expect_begin_error(pid, -ESRCH, "exited");
	waitpid(pid, NULL, 0);

	/* A second tracer is refused while we hold the VMM. */
	inj = begin_ok(vmm.pid);
	expect_begin_error(vmm.pid, -EPERM, "already traced");

	/* Failed ioctls are the target's answer, not injection failures. */
	assert_int_equal(hv_inject_ioctl_val(inj, 999, KVM_GET_API_VERSION, 0, &ret), 0);
	assert_int_equal(ret, -EBADF);
	assert_int_equal(hv_inject_ioctl_val(inj, vmm.vm_fd, _IO(KVMIO, 0xff), 0, &ret), 0);
	assert_int_equal(ret, -ENOTTY);
	assert_int_equal(hv_inject_end(inj), 0);

	/* The target dies during an injection: an error, then a clean end. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (;;)
			pause();
	}
	logged[0] = '\0';
	hv_inject_set_log(capture_log, HV_INJECT_LOG_WARN, NULL);
	inj = begin_ok(pid);
	{
		unsigned long args[6] = {3};

		err = hv_inject_syscall(inj, SYS_exit_group, args, &ret);
	}
	print_message("# exit_group injected: %d %s\n", err, hv_inject_error(inj));
	assert_int_equal(err, -ESRCH);
	assert_non_null(strstr(hv_inject_error(inj), "died"));
	assert_int_equal(hv_inject_ioctl_val(inj, 0, 0, 0, &ret), -ESRCH);
	hv_inject_end(inj);
	hv_inject_set_log(NULL, 0, NULL);
	print_message("# compel said: %s", logged);
	assert_true(logged[0] != '\0');
	waitpid(pid, NULL, WNOHANG);
	assert_int_equal(hv_inject_task_state(pid), 0);
}

/* ---- a stop signal during an injection (the freeze-loop pitfall) ---- */

static void *send_stop(void *arg)
{
	sleep_ms(50);
	kill(*(pid_t *)arg, SIGSTOP);
	return NULL;
}

static void test_stop_during_injection(void **state)
{
	/*
	 * pause(): blocks until a signal, and unlike poll() or nanosleep() it
	 * does not overwrite the thread's restart_block, which the sleep we
	 * interrupted still needs (see inject.h).
	 */
	struct hv_injector *inj;
	pthread_t th;
	long ret = 0;
	int err;

	(void)state;
	logged[0] = '\0';
	hv_inject_set_log(capture_log, HV_INJECT_LOG_WARN, NULL);
	inj = begin_ok(vmm.pid);
	assert_int_equal(pthread_create(&th, NULL, send_stop, &vmm.pid), 0);
	err = hv_inject_syscall(inj, SYS_pause, NULL, &ret);
	pthread_join(th, NULL);
	print_message("# pause injected, SIGSTOP at 50 ms: %d %s\n", err, hv_inject_error(inj));
	assert_int_equal(err, -EINTR);
	assert_non_null(strstr(hv_inject_error(inj), "signal 19"));

	/* The injector still works, and the stop is honoured at the end. */
	assert_int_equal(hv_inject_syscall(inj, SYS_getpid, NULL, &ret), 0);
	assert_int_equal(ret, vmm.pid);
	assert_int_equal(hv_inject_end(inj), 0);
	hv_inject_set_log(NULL, 0, NULL);
	print_message("# compel said: %s", logged);
	assert_int_equal(hv_inject_task_state(vmm.pid), 'T');
	kill(vmm.pid, SIGCONT);
	vmm_drain(&vmm);
	sleep_ms(100);
	assert_true(vmm_drain(&vmm) >= 3);
	assert_int_equal(vmm.last.err, 0);
}

/* ---- (h) a thread that does not stop: the seize has a deadline ---- */

#define SEIZE_MS     200
#define VFORK_D_MS   2500
#define SEIZE_MAX_MS 1500 /* the deadline, and slack for a loaded TCG guest */

struct seize_try {
	pid_t pid;
	int ret;
	long long took_ns;
	char err[256];
};

/* From a thread of its own, which exits after: see hv_inject_begin_within. */
static void *seize_from_thread(void *arg)
{
	struct seize_try *t = arg;
	struct hv_injector *inj = NULL;
	long long t0 = mono_ns();

	t->ret = hv_inject_begin_within(t->pid, SEIZE_MS, &inj, t->err, sizeof(t->err));
	t->took_ns = mono_ns() - t0;
	if (!t->ret)
		hv_inject_end(inj);
	return NULL;
}

/* A vfork() parent: in uninterruptible sleep (D) until its child exits, at
 * VFORK_D_MS; then it exits 0 itself. */
static pid_t spawn_vfork_parent(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct timespec d = {VFORK_D_MS / 1000, (VFORK_D_MS % 1000) * 1000000L};
		pid_t c = vfork();

		if (c == 0) {
			syscall(SYS_nanosleep, &d, NULL);
			_exit(0);
		}
		_exit(c > 0 ? 0 : 1);
	}
	return pid;
}

static int tracer_of(pid_t pid)
{
	char path[64], line[128];
	int tracer = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "TracerPid:", 10))
			tracer = atoi(line + 10);
	fclose(f);
	return tracer;
}

static void test_seize_deadline(void **state)
{
	struct seize_try t = {.ret = 1};
	long long t0;
	pthread_t th;
	int status, tracer = -1;

	(void)state;
	t.pid = spawn_vfork_parent();
	assert_int_equal(hv_inject_wait_state(t.pid, 'D', 2000), 0);
	assert_int_equal(pthread_create(&th, NULL, seize_from_thread, &t), 0);
	pthread_join(th, NULL);
	print_message("# seize of a task in D: %d after %lld ms: %s\n", t.ret, t.took_ns / 1000000,
		      t.err);
	assert_int_equal(t.ret, -ETIMEDOUT);
	assert_true(t.took_ns < SEIZE_MAX_MS * 1000000LL);
	assert_non_null(strstr(t.err, "did not stop within 200 ms"));

	/* The seizing thread has exited: the kernel let the task go, though it
	 * never stopped; it is still in D. */
	t0 = mono_ns();
	while (mono_ns() - t0 < 1000 * 1000000LL && (tracer = tracer_of(t.pid)) > 0)
		sleep_ms(10);
	assert_int_equal(tracer, 0);
	assert_int_equal(hv_inject_task_state(t.pid), 'D');

	/* Once its child exits it runs on, not stopped in a pending trap. */
	assert_int_equal(waitpid(t.pid, &status, 0), t.pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_clock),
		cmocka_unit_test(test_foreign_fd_eio),
		cmocka_unit_test(test_stopped_set_clock),
		cmocka_unit_test(test_child_alive),
		cmocka_unit_test(test_rounds),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_stop_during_injection),
		cmocka_unit_test(test_seize_deadline),
	};
	/* clang-format on */

	return cmocka_run_group_tests_name("inject", tests, group_setup, group_teardown);
}
