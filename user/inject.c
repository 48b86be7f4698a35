// SPDX-License-Identifier: GPL-2.0
/*
 * Syscall injection with libcompel (see inject.h for the contract).
 *
 * We use compel_prepare_noctx() rather than compel_prepare(): the latter
 * sets up what a parasite blob needs (a unix socket made in the target's
 * network namespace, a register save area), which compel_cure() never
 * releases when no parasite was infected, so every round would leak an fd
 * and a few kilobytes. compel_syscall() needs only the saved registers, the
 * signal mask and syscall_ip, an executable address where it swaps in
 * "syscall; int3" for the duration of one call.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <compel/infect.h>
#include <compel/log.h>

#include "inject.h"

struct hv_injector {
	int pid;
	int orig_state; /* COMPEL_TASK_ALIVE or COMPEL_TASK_STOPPED */
	bool stop_seen; /* an aborted injection swallowed a stop signal */
	bool dead;	/* the target died under us */
	struct parasite_ctl *ctl;
	unsigned long scratch; /* remote address, 0 if none */
	size_t scratch_len;
	int mem_fd; /* /proc/PID/mem, opened on first need */
	char err[256];
};

/* ---- logging ---- */

static void default_log(unsigned int level, const char *msg, void *arg)
{
	(void)arg;
	(void)level;
	fprintf(stderr, "hvguard: inject: %s\n", msg);
}

static hv_inject_log_fn log_fn = default_log;
static void *log_arg;
static unsigned int log_level = HV_INJECT_LOG_WARN;

/* compel logs errors and returns -1: keep its last error for our messages. */
static __thread char compel_err[256];

static void vlog(unsigned int level, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;
	int saved = errno; /* compel's callers read errno after logging */

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	if (level <= HV_INJECT_LOG_ERROR)
		snprintf(compel_err, sizeof(compel_err), "%s", msg);
	if (level <= log_level)
		log_fn(level, msg, log_arg);
	errno = saved;
}

static void compel_log(unsigned int level, const char *fmt, va_list ap)
{
	vlog(level, fmt, ap);
}

static __attribute__((format(printf, 1, 2))) void dbg(const char *fmt, ...)
{
	va_list ap;

	if (log_level < HV_INJECT_LOG_DEBUG)
		return;
	va_start(ap, fmt);
	vlog(HV_INJECT_LOG_DEBUG, fmt, ap);
	va_end(ap);
}

static void log_apply(void)
{
	/* Errors always reach vlog() so that compel_err is filled. */
	compel_log_init(compel_log,
			log_level > HV_INJECT_LOG_ERROR ? log_level : HV_INJECT_LOG_ERROR);
}

static pthread_once_t log_once = PTHREAD_ONCE_INIT;

void hv_inject_set_log(hv_inject_log_fn fn, unsigned int max_level, void *arg)
{
	log_fn = fn ? fn : default_log;
	log_arg = fn ? arg : NULL;
	log_level = fn ? max_level : HV_INJECT_LOG_WARN;
	pthread_once(&log_once, log_apply);
	log_apply();
}

static __attribute__((format(printf, 2, 3))) void set_err(struct hv_injector *inj, const char *fmt,
							  ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(inj->err, sizeof(inj->err), fmt, ap);
	va_end(ap);
}

/* For errors the caller cannot read back: hv_inject_end() frees inj. */
static __attribute__((format(printf, 1, 2))) void warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(HV_INJECT_LOG_WARN, fmt, ap);
	va_end(ap);
}

/* ---- /proc ---- */

struct proc_status {
	char state;
	int tgid;
	int tracer;
	int seccomp;
	unsigned long long shdpnd, sigpnd; /* pending signals, shared and the thread's */
};

static int read_status(int pid, struct proc_status *ps)
{
	char path[64], line[256];
	FILE *f;

	memset(ps, 0, sizeof(*ps));
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "State:", 6))
			sscanf(line + 6, " %c", &ps->state);
		else if (!strncmp(line, "Tgid:", 5))
			sscanf(line + 5, "%d", &ps->tgid);
		else if (!strncmp(line, "TracerPid:", 10))
			sscanf(line + 10, "%d", &ps->tracer);
		else if (!strncmp(line, "Seccomp:", 8))
			sscanf(line + 8, "%d", &ps->seccomp);
		else if (!strncmp(line, "ShdPnd:", 7))
			sscanf(line + 7, "%llx", &ps->shdpnd);
		else if (!strncmp(line, "SigPnd:", 7))
			sscanf(line + 7, "%llx", &ps->sigpnd);
	}
	fclose(f);
	return ps->state ? 0 : -ESRCH;
}

char hv_inject_task_state(int pid)
{
	struct proc_status ps;

	if (pid <= 0 || read_status(pid, &ps))
		return 0;
	return ps.state;
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int hv_inject_wait_state(int pid, char state, int timeout_ms)
{
	long long start = now_ns(), t;
	struct timespec nap = {0, 50000};
	char s;

	for (;;) {
		s = hv_inject_task_state(pid);
		if (s == state)
			return 0;
		if (!s || s == 'X' || s == 'Z')
			return -ESRCH;
		t = now_ns() - start;
		if (t >= timeout_ms * 1000000LL)
			return -ETIMEDOUT;
		/* A stop takes tens of us: yield first, sleep (timer slack!) later. */
		if (t < 500000)
			sched_yield();
		else
			nanosleep(&nap, NULL);
	}
}

/*
 * Where compel swaps in its 8 bytes of "syscall; int3": the start of the
 * first executable mapping, usually the ELF header or _init of the main
 * binary, code no thread runs after start-up.
 */
static unsigned long find_syscall_ip(int pid)
{
	char path[64], line[512], perms[5];
	unsigned long start, end, ip = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx %4s", &start, &end, perms) != 3)
			continue;
		if (perms[2] == 'x' && !strstr(line, "[vsyscall]") && end - start >= 64) {
			ip = start;
			break;
		}
	}
	fclose(f);
	return ip;
}

/* ---- signals ---- */

/*
 * compel waits for the target with wait4() and does not retry on EINTR: a
 * signal handler running in the caller mid-injection would leave the target
 * executing our int3 with nobody to catch it. Block every signal for the
 * duration of each call; they are delivered when we return.
 */
static void block_signals(sigset_t *old)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, old);
}

static void restore_signals(const sigset_t *old)
{
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

/* ---- begin ---- */

static int check_target(int pid, char *err, size_t errlen)
{
	struct proc_status ps;

	if (pid <= 0) {
		snprintf(err, errlen, "invalid pid %d", pid);
		return -EINVAL;
	}
	if (read_status(pid, &ps)) {
		snprintf(err, errlen, "pid %d: no such process", pid);
		return -ESRCH;
	}
	if (ps.state == 'Z' || ps.state == 'X') {
		snprintf(err, errlen, "pid %d has exited (state %c)", pid, ps.state);
		return -ESRCH;
	}
	if (ps.tgid == getpid()) {
		snprintf(err, errlen, "pid %d is this process", pid);
		return -EINVAL;
	}
	if (ps.tracer) {
		snprintf(err, errlen, "pid %d is already traced by pid %d", pid, ps.tracer);
		return -EPERM;
	}
	return 0;
}

/* compel_stop_task() failed: say why in words. */
static int seize_error(int pid, int seize_errno, char *err, size_t errlen)
{
	struct proc_status ps;

	if (read_status(pid, &ps) || ps.state == 'Z' || ps.state == 'X') {
		snprintf(err, errlen, "pid %d exited while being seized", pid);
		return -ESRCH;
	}
	if (seize_errno == EPERM) {
		snprintf(err, errlen, "pid %d: ptrace seize not permitted%s", pid,
			 ps.tracer ? " (already traced)" : "");
		return -EPERM;
	}
	snprintf(err, errlen, "pid %d: cannot seize: %s", pid,
		 compel_err[0] ? compel_err : strerror(seize_errno));
	return -EIO;
}

/* compel_wait_task()'s view of the task, read as compel_stop_task() does. */
static int seize_status(int pid, struct seize_task_status *ss, void *data)
{
	struct proc_status ps;

	(void)data;
	memset(ss, 0, sizeof(*ss));
	ss->ppid = -1;
	if (read_status(pid, &ps))
		return -1;
	ss->state = ps.state;
	ss->seccomp_mode = ps.seccomp;
	ss->shdpnd = ps.shdpnd;
	ss->sigpnd = ps.sigpnd;
	return 0;
}

/*
 * Has the seized task something to report (a stop, or its exit)? Peeks
 * with WNOWAIT, so that compel_wait_task()'s wait4() then finds it at once.
 */
static bool stop_reported(int pid)
{
	siginfo_t si = {0};

	if (waitid(P_PID, pid, &si, WSTOPPED | WEXITED | __WALL | WNOHANG | WNOWAIT))
		return true; /* nothing to wait for: compel's wait4() fails at once */
	return si.si_pid == pid;
}

static bool wait_reported(int pid, int timeout_ms)
{
	long long start = now_ns(), t;
	struct timespec nap = {0, 100000};

	for (;;) {
		if (stop_reported(pid))
			return true;
		t = now_ns() - start;
		if (t >= timeout_ms * 1000000LL)
			return stop_reported(pid);
		if (t < 500000)
			sched_yield();
		else
			nanosleep(&nap, NULL);
	}
}

/*
 * compel_stop_task() with a deadline: COMPEL_TASK_* or a negative errno. compel waits for the
 * seized task's first stop with a wait4() that has no timeout, and a task that never gets to a stop
 * (uninterruptible sleep: a vfork() parent whose child never exits, a fault on memory nobody
 * provides) would hold us there: the wait starts only once the stop is reported. The later wait4()s
 * of compel_wait_task() are on a task already in a ptrace stop, which the kernel stops again
 * (PTRACE_INTERRUPT's trap is pending) before it returns to user space.
 *
 * On timeout the task stays seized with a stop pending: ptrace cannot
 * detach a task that is not stopped. The kernel detaches it when the
 * calling thread exits; until then it runs (or sleeps) as before and stops
 * in a ptrace stop if it gets there.
 */
static int seize(int pid, int timeout_ms, char *err, size_t errlen)
{
	struct seize_task_status ss;
	struct proc_status ps;
	int st;

	errno = 0;
	if (compel_interrupt_task(pid))
		return seize_error(pid, errno, err, errlen);
	if (!wait_reported(pid, timeout_ms)) {
		if (read_status(pid, &ps))
			ps.state = '?';
		snprintf(err, errlen,
			 "pid %d did not stop within %d ms of the seize (state %c): left to the "
			 "kernel to detach",
			 pid, timeout_ms, ps.state);
		return -ETIMEDOUT;
	}
	errno = 0;
	st = compel_wait_task(pid, -1, seize_status, NULL, &ss, NULL);
	return st < 0 ? seize_error(pid, errno, err, errlen) : st;
}

static int prepare(struct hv_injector *inj, char *err, size_t errlen)
{
	struct infect_ctx *ictx;
	unsigned long ip;

	inj->ctl = compel_prepare_noctx(inj->pid);
	if (!inj->ctl) {
		snprintf(err, errlen, "pid %d: cannot read registers: %s", inj->pid, compel_err);
		return -EIO;
	}
	if (!compel_mode_native(inj->ctl)) {
		snprintf(err, errlen, "pid %d is a 32-bit task, not supported", inj->pid);
		return -EOPNOTSUPP;
	}
	ip = find_syscall_ip(inj->pid);
	if (!ip) {
		snprintf(err, errlen, "pid %d: no executable mapping", inj->pid);
		return -EIO;
	}
	ictx = compel_infect_ctx(inj->ctl);
	ictx->syscall_ip = ip;
	ictx->task_size = compel_task_size();
	return 0;
}

/* Undo a half-done begin: free compel's context, let the task go as found. */
static void abort_begin(struct hv_injector *inj)
{
	if (inj->ctl && compel_cure(inj->ctl))
		warn("pid %d: cure failed: %s", inj->pid, compel_err);
	inj->ctl = NULL;
	if (compel_resume_task(inj->pid, inj->orig_state, inj->orig_state))
		warn("pid %d: detach failed: %s", inj->pid, compel_err);
}

int hv_inject_begin_within(int pid, int timeout_ms, struct hv_injector **out, char *err,
			   size_t errlen)
{
	struct hv_injector *inj;
	sigset_t old;
	int st, ret;

	*out = NULL;
	pthread_once(&log_once, log_apply);
	ret = check_target(pid, err, errlen);
	if (ret)
		return ret;
	inj = calloc(1, sizeof(*inj));
	if (!inj) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	inj->pid = pid;
	inj->mem_fd = -1;

	block_signals(&old);
	compel_err[0] = '\0';
	st = seize(pid, timeout_ms, err, errlen);
	if (st < 0) {
		ret = st;
		goto fail;
	}
	if (st != COMPEL_TASK_ALIVE && st != COMPEL_TASK_STOPPED) {
		snprintf(err, errlen, "pid %d exited while being seized", pid);
		ret = -ESRCH;
		goto fail;
	}
	inj->orig_state = st;
	ret = prepare(inj, err, errlen);
	if (ret) {
		abort_begin(inj);
		goto fail;
	}
	restore_signals(&old);
	dbg("pid %d seized (%s), syscall at %#lx", pid,
	    st == COMPEL_TASK_STOPPED ? "stopped" : "running",
	    compel_infect_ctx(inj->ctl)->syscall_ip);
	*out = inj;
	return 0;
fail:
	restore_signals(&old);
	free(inj);
	return ret;
}

int hv_inject_begin(int pid, struct hv_injector **out, char *err, size_t errlen)
{
	return hv_inject_begin_within(pid, HV_INJECT_SEIZE_MS, out, err, errlen);
}

/* ---- injection ---- */

static bool is_stop_signal(int sig)
{
	return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

/*
 * compel_syscall() failed. If the target is sitting in a signal stop, a
 * signal cut in ("Unexpected task interruption"): compel has put registers,
 * mask and code back, and the next PTRACE_CONT discards that signal, so a
 * stop signal is remembered and replayed at hv_inject_end().
 */
static int injection_failed(struct hv_injector *inj, long nr)
{
	siginfo_t si;
	char s;

	if (!ptrace(PTRACE_GETSIGINFO, inj->pid, NULL, &si) && si.si_signo != SIGTRAP) {
		if (is_stop_signal(si.si_signo))
			inj->stop_seen = true;
		set_err(inj,
			"syscall %ld interrupted by signal %d (%s); it may or may not have run", nr,
			si.si_signo, strsignal(si.si_signo));
		return -EINTR;
	}
	s = hv_inject_task_state(inj->pid);
	if (!s || s == 'Z' || s == 'X') {
		inj->dead = true;
		set_err(inj, "pid %d died during syscall %ld", inj->pid, nr);
		return -ESRCH;
	}
	set_err(inj, "syscall %ld: %s", nr, compel_err[0] ? compel_err : "compel failed");
	return -EIO;
}

static int do_syscall(struct hv_injector *inj, long nr, const unsigned long a[6], long *ret)
{
	long r = -ENOSYS;
	sigset_t old;
	int err;

	if (inj->dead) {
		set_err(inj, "pid %d has died", inj->pid);
		return -ESRCH;
	}
	block_signals(&old);
	compel_err[0] = '\0';
	err = compel_syscall(inj->ctl, nr, &r, a[0], a[1], a[2], a[3], a[4], a[5]);
	if (err)
		err = injection_failed(inj, nr);
	restore_signals(&old);
	if (!err)
		*ret = r;
	return err;
}

int hv_inject_syscall(struct hv_injector *inj, long nr, const unsigned long args[6], long *ret)
{
	static const unsigned long none[6];

	inj->err[0] = '\0';
	return do_syscall(inj, nr, args ? args : none, ret);
}

/* ---- scratch memory ---- */

static bool is_err_value(long v)
{
	return (unsigned long)v >= (unsigned long)-4095;
}

static int scratch_unmap(struct hv_injector *inj)
{
	unsigned long a[6] = {inj->scratch, inj->scratch_len};
	long r;
	int err;

	if (!inj->scratch)
		return 0;
	err = do_syscall(inj, SYS_munmap, a, &r);
	if (!err && r) {
		set_err(inj, "remote munmap(%#lx, %zu): %s", inj->scratch, inj->scratch_len,
			strerror((int)-r));
		err = (int)r;
	}
	if (!err) {
		inj->scratch = 0;
		inj->scratch_len = 0;
	}
	return err;
}

static int scratch_reserve(struct hv_injector *inj, size_t len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t need = (len + page - 1) & ~(page - 1);
	unsigned long a[6] = {
	    0, need, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, (unsigned long)-1, 0};
	long r;
	int err;

	if (inj->scratch_len >= need)
		return 0;
	err = scratch_unmap(inj);
	if (err)
		return err;
	err = do_syscall(inj, SYS_mmap, a, &r);
	if (err)
		return err;
	if (is_err_value(r)) {
		set_err(inj, "remote mmap(%zu): %s", need, strerror((int)-r));
		return (int)r;
	}
	inj->scratch = (unsigned long)r;
	inj->scratch_len = need;
	dbg("pid %d: scratch %#lx+%zu", inj->pid, inj->scratch, need);
	return 0;
}

/* process_vm_{readv,writev}, or /proc/PID/mem where they are not allowed. */
static int mem_xfer(struct hv_injector *inj, void *buf, size_t len, bool write)
{
	struct iovec local = {buf, len};
	struct iovec remote = {(void *)inj->scratch, len};
	char path[64];
	ssize_t n;
	int err;

	if (write)
		n = process_vm_writev(inj->pid, &local, 1, &remote, 1, 0);
	else
		n = process_vm_readv(inj->pid, &local, 1, &remote, 1, 0);
	if (n == (ssize_t)len)
		return 0;
	if (inj->mem_fd < 0) {
		snprintf(path, sizeof(path), "/proc/%d/mem", inj->pid);
		inj->mem_fd = open(path, O_RDWR | O_CLOEXEC);
	}
	if (inj->mem_fd >= 0) {
		if (write)
			n = pwrite(inj->mem_fd, buf, len, (off_t)inj->scratch);
		else
			n = pread(inj->mem_fd, buf, len, (off_t)inj->scratch);
		if (n == (ssize_t)len)
			return 0;
	}
	err = n < 0 ? errno : EIO;
	set_err(inj, "%s %zu bytes at %#lx in pid %d: %s", write ? "write" : "read", len,
		inj->scratch, inj->pid, n < 0 ? strerror(err) : "short transfer");
	return -err;
}

int hv_inject_ioctl_val(struct hv_injector *inj, int fd, unsigned long cmd, unsigned long arg,
			long *ret)
{
	unsigned long a[6] = {(unsigned long)(unsigned int)fd, cmd, arg};

	inj->err[0] = '\0';
	return do_syscall(inj, SYS_ioctl, a, ret);
}

int hv_inject_ioctl(struct hv_injector *inj, int fd, unsigned long cmd, void *buf, size_t len,
		    long *ret)
{
	unsigned long a[6] = {(unsigned long)(unsigned int)fd, cmd};
	int err;

	if (!len)
		return hv_inject_ioctl_val(inj, fd, cmd, 0, ret);
	if (!buf)
		return -EINVAL;
	inj->err[0] = '\0';
	err = scratch_reserve(inj, len);
	if (!err)
		err = mem_xfer(inj, buf, len, true);
	if (err)
		return err;
	a[2] = inj->scratch;
	err = do_syscall(inj, SYS_ioctl, a, ret);
	if (!err)
		err = mem_xfer(inj, buf, len, false);
	return err;
}

/* ---- end ---- */

/* Detach into the state found at begin, or stopped if a stop came
 * meanwhile; or, with run, into running whatever it was. */
static int resume(struct hv_injector *inj, bool run)
{
	int final = inj->stop_seen ? COMPEL_TASK_STOPPED : inj->orig_state;
	int err;

	if (run) {
		if (compel_resume_task(inj->pid, inj->orig_state, COMPEL_TASK_ALIVE)) {
			warn("pid %d: detach failed: %s", inj->pid, compel_err);
			return -EIO;
		}
		return 0;
	}
	if (compel_resume_task(inj->pid, inj->orig_state, final)) {
		warn("pid %d: detach failed: %s", inj->pid, compel_err);
		return -EIO;
	}
	if (final != COMPEL_TASK_STOPPED)
		return 0;
	/* compel re-sends SIGSTOP: be done only once the task sits in T. */
	err = hv_inject_wait_state(inj->pid, 'T', 1000);
	if (err)
		warn("pid %d: not stopped after detach: %s", inj->pid, strerror(-err));
	return err;
}

static int end(struct hv_injector *inj, bool run)
{
	sigset_t old;
	int ret = 0, err;

	if (!inj)
		return 0;
	block_signals(&old);
	if (inj->scratch && !inj->dead) {
		ret = scratch_unmap(inj);
		if (ret == -EINTR) /* munmap is idempotent: once more */
			ret = scratch_unmap(inj);
		if (ret)
			warn("pid %d: %s", inj->pid, inj->err);
	}
	/* Without a parasite, cure only frees compel's context. */
	if (compel_cure(inj->ctl) && !ret)
		ret = -EIO;
	if (!inj->dead) {
		err = resume(inj, run);
		if (err && !ret)
			ret = err;
	}
	restore_signals(&old);
	if (inj->mem_fd >= 0)
		close(inj->mem_fd);
	free(inj);
	return ret;
}

int hv_inject_end(struct hv_injector *inj)
{
	return end(inj, false);
}

int hv_inject_end_running(struct hv_injector *inj)
{
	return end(inj, true);
}

/* ---- accessors ---- */

int hv_inject_tid(const struct hv_injector *inj)
{
	return inj->pid;
}

bool hv_inject_was_stopped(const struct hv_injector *inj)
{
	return inj->orig_state == COMPEL_TASK_STOPPED;
}

const char *hv_inject_error(const struct hv_injector *inj)
{
	return inj->err;
}

unsigned long hv_inject_scratch(const struct hv_injector *inj)
{
	return inj->scratch;
}
