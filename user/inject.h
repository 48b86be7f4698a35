/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Run syscalls (ioctls, mostly) inside another process with CRIU's libcompel.
 *
 * KVM refuses VM and vCPU ioctls from any process but the VM's creator
 * (kvm->mm != current->mm gives EIO), so a correcting KVM_SET_CLOCK must be
 * issued by the VMM itself: we seize one of its threads with ptrace, make it
 * execute the syscall, and let it go exactly as it was.
 *
 * One round:
 *
 *	hv_inject_begin(pid, &inj, err, sizeof(err));
 *	hv_inject_ioctl(inj, vm_fd, KVM_GET_CLOCK, &clk, sizeof(clk), &ret);
 *	hv_inject_ioctl(inj, vm_fd, KVM_SET_CLOCK, &clk, sizeof(clk), &ret);
 *	hv_inject_end(inj);
 *
 * Rules of use:
 * - Every call for one injector must come from the same thread (ptrace
 *   binds the tracee to the thread that seized it), and no other thread of
 *   the caller may wait for the target (waitpid(-1, ...) steals its stops).
 *   Each call blocks the caller's signals while it runs: libcompel's wait4()
 *   does not survive EINTR.
 * - The injected syscalls run in thread hv_inject_tid() of the target, so
 *   BPF programs watching the target see them like any other. While it is
 *   seized, that thread has task->ptrace != 0 and task->parent (the tracer)
 *   is the caller's process, task->real_parent its usual parent.
 * - A stop signal landing while a syscall is injected aborts that one
 *   injection (-EINTR; libcompel logs "Unexpected N task interruption").
 *   The stop is remembered and the task is left stopped at hv_inject_end().
 *   The injector stays usable.
 * - Inject nothing that can return -ERESTART_RESTARTBLOCK (nanosleep,
 *   clock_nanosleep, poll, futex with a timeout): it overwrites the thread's
 *   restart_block, which the syscall we interrupted may need to restart.
 *   ioctl, mmap and munmap are safe.
 * - hv_inject_begin() waits until the thread can be interrupted: a thread
 *   in uninterruptible sleep (state D) delays it, HV_INJECT_SEIZE_MS at
 *   most (see hv_inject_begin_within() for what a timeout leaves).
 * - compel swaps 8 bytes of code ("syscall; int3") in at the start of the
 *   target's first executable mapping during each injection: harmless when
 *   the process is stopped; when it runs, another thread executing exactly
 *   those bytes (ELF header or _init) would trap. No such thread exists in
 *   any VMM we know of.
 * - Not for 32-bit (compat) targets.
 */
#ifndef HVGUARD_USER_INJECT_H
#define HVGUARD_USER_INJECT_H

#include <stdbool.h>
#include <stddef.h>

struct hv_injector;

/* Log levels, the same numbers as libcompel's. */
enum hv_inject_log_level {
	HV_INJECT_LOG_ERROR = 1,
	HV_INJECT_LOG_WARN = 2,
	HV_INJECT_LOG_INFO = 3,
	HV_INJECT_LOG_DEBUG = 4,
};

/* One line (no trailing newline) from libcompel or from this module. */
typedef void (*hv_inject_log_fn)(unsigned int level, const char *msg, void *arg);

/*
 * Route libcompel's log (process-wide) and ours through fn, for messages up
 * to max_level. fn NULL restores the default: stderr, warnings and errors.
 */
void hv_inject_set_log(hv_inject_log_fn fn, unsigned int max_level, void *arg);

/*
 * Seize thread pid (a process id injects into its main thread) and prepare
 * the injection. The task may be running or already stopped (state T, e.g.
 * SIGSTOP sent by bpf_send_signal at an ioctl exit). A stop still in flight
 * (sent, state not yet T) is seen by libcompel and counts as stopped; still,
 * wait for T with hv_inject_wait_state() to know every thread has stopped.
 * Returns 0, or a negative errno with a message in err: -ESRCH (no such
 * process, or it exited), -EPERM (already traced, or not allowed),
 * -EOPNOTSUPP (32-bit task), -EIO (libcompel failed).
 */
int hv_inject_begin(int pid, struct hv_injector **out, char *err, size_t errlen);

/* How long hv_inject_begin() waits for the seized thread to stop. */
#define HV_INJECT_SEIZE_MS 250

/*
 * hv_inject_begin(), waiting at most timeout_ms for the thread to stop once
 * seized. -ETIMEDOUT when it did not (uninterruptible sleep, say: a vfork()
 * parent whose child never exits). The thread then stays attached to the
 * calling thread, with a ptrace stop pending (ptrace cannot detach a task
 * that is not stopped), until the calling thread exits and the kernel
 * detaches it: call from a thread of its own, which exits after the round.
 */
int hv_inject_begin_within(int pid, int timeout_ms, struct hv_injector **out, char *err,
			   size_t errlen);

/*
 * Run syscall nr with args inside the target; *ret gets its return value
 * (negative errno on failure). Returns 0 when the syscall ran, or a negative
 * errno when it could not be injected: -EINTR (a signal interrupted the
 * injection: the syscall may or may not have run; retry if idempotent),
 * -ESRCH (the target died), -EIO. hv_inject_error() says more.
 */
int hv_inject_syscall(struct hv_injector *inj, long nr, const unsigned long args[6], long *ret);

/*
 * ioctl(fd, cmd, buf) inside the target: len bytes of buf are copied to a
 * scratch mapping in the target (kept until hv_inject_end), the ioctl runs
 * on it and the bytes are copied back into buf. len 0 passes a NULL
 * argument. Return values as for hv_inject_syscall().
 */
int hv_inject_ioctl(struct hv_injector *inj, int fd, unsigned long cmd, void *buf, size_t len,
		    long *ret);

/* ioctl(fd, cmd, arg) inside the target, arg passed by value. */
int hv_inject_ioctl_val(struct hv_injector *inj, int fd, unsigned long cmd, unsigned long arg,
			long *ret);

/*
 * Unmap the scratch area, cure and detach, leaving the task as found: stopped
 * (state T, waited for) if it was stopped at begin or a stop signal arrived
 * meanwhile, running otherwise. Frees inj (NULL is fine). Returns 0, or a
 * negative errno if something could not be undone (the log says what).
 */
int hv_inject_end(struct hv_injector *inj);

/*
 * As hv_inject_end(), but detach the task into running whatever its state
 * at begin, without waiting for compel's re-stop. Other threads stopped by
 * a group stop stay stopped until the caller sends SIGCONT.
 */
int hv_inject_end_running(struct hv_injector *inj);

/*
 * The thread the injected syscalls run in: the pid given to
 * hv_inject_begin(), so it can be published to the BPF programs before the
 * round, that they skip the corrector's own ioctls (an injected
 * KVM_SET_CLOCK must not trigger another freeze).
 */
int hv_inject_tid(const struct hv_injector *inj);

/* Whether the task was stopped (T, or a stop signal pending) at begin. */
bool hv_inject_was_stopped(const struct hv_injector *inj);

/* The last error of this injector, "" if none. */
const char *hv_inject_error(const struct hv_injector *inj);

/* Address of the scratch area in the target, 0 if none is mapped (tests). */
unsigned long hv_inject_scratch(const struct hv_injector *inj);

/*
 * The state letter of /proc/PID/status ('R', 'S', 'T', 't', 'Z'...), or 0 if
 * there is no such task.
 */
char hv_inject_task_state(int pid);

/* Wait up to timeout_ms for task pid to reach state: 0, -ETIMEDOUT or -ESRCH. */
int hv_inject_wait_state(int pid, char state, int timeout_ms);

#endif
