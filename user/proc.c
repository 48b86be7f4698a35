// SPDX-License-Identifier: GPL-2.0
/* What /proc says about processes (names for people, start time for pid
 * reuse), and the small file and clock reads every part of the daemon uses. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hvguard.h"
#include "worker.h"

uint64_t hv_now_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

ssize_t hv_read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

int hv_proc_comm(int pid, char *buf, size_t len)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	n = hv_read_file(path, buf, len);
	if (n <= 0)
		return -1;
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/*
 * /proc/PID/cmdline is read out of the process's own memory
 * (access_remote_vm: under its mmap lock, faulting its pages in), and the
 * process is a VMM we do not trust: it can make that read wait (its mmap
 * lock held, argv on memory whose faults nobody resolves). So the read runs
 * in a thread of its own, and the caller waits HV_PROC_ARGS_DEADLINE_MS at
 * most. A read that did not answer leaves its thread behind, blocked in
 * the kernel, at most SLOW_READERS of them (past that, no read is tried);
 * the pid is then unreadable until it execs or exits. What was read is
 * kept per process (pid and start time): one read per VMM, not per event.
 */
#define ARGS_MAX     8192
#define ARGS_CACHE   64
#define SLOW_READERS 4

struct args_read {
	int pid;
	int refs; /* the caller's and the reader's, under read_lock */
	bool done, abandoned;
	ssize_t n;
	char buf[ARGS_MAX];
};

static struct {
	int pid;
	uint64_t start_ns;
	bool timed_out;
	size_t len;
	char *buf;
} args_cache[ARGS_CACHE];

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t read_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t read_done;
static pthread_once_t read_once = PTHREAD_ONCE_INIT;
static unsigned slow_readers;
static atomic_ullong args_timeouts;

static void read_init(void)
{
	hv_worker_cond_init(&read_done);
}

/* Under read_lock. */
static void put_read(struct args_read *r)
{
	if (!--r->refs)
		free(r);
}

static void *args_reader(void *arg)
{
	struct args_read *r = arg;
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", r->pid);
	n = hv_read_file(path, r->buf, sizeof(r->buf));
	pthread_mutex_lock(&read_lock);
	r->n = n;
	r->done = true;
	if (r->abandoned)
		slow_readers--;
	pthread_cond_broadcast(&read_done);
	put_read(r);
	pthread_mutex_unlock(&read_lock);
	return NULL;
}

/* pid's command line into buf (ARGS_MAX bytes): its length, -1 if unreadable,
 * -ETIMEDOUT if the read did not answer in time (or could not be tried). */
static ssize_t read_args(int pid, char *buf)
{
	struct args_read *r = calloc(1, sizeof(*r));
	struct timespec until;
	ssize_t n;
	int rc = 0;

	if (!r)
		return -1;
	pthread_once(&read_once, read_init);
	r->pid = pid;
	r->refs = 2;
	pthread_mutex_lock(&read_lock);
	n = slow_readers >= SLOW_READERS ? -ETIMEDOUT : 0;
	pthread_mutex_unlock(&read_lock);
	if (n || hv_worker_start(args_reader, r, 64 * 1024)) {
		free(r);
		return n ?: -1;
	}
	until = hv_worker_deadline(HV_PROC_ARGS_DEADLINE_MS);
	pthread_mutex_lock(&read_lock);
	while (!r->done && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&read_done, &read_lock, &until);
	if (r->done) {
		n = r->n;
		if (n > 0)
			memcpy(buf, r->buf, n);
	} else {
		r->abandoned = true;
		slow_readers++;
		n = -ETIMEDOUT;
	}
	put_read(r);
	pthread_mutex_unlock(&read_lock);
	return n;
}

/* pid's command line into buf (ARGS_MAX), read unless cached, its length
 * in *len: 0, -1 (gone, or empty) or -ETIMEDOUT. Under cache_lock. */
static int cached_args(int pid, char *buf, size_t *len)
{
	unsigned i = (unsigned)pid % ARGS_CACHE;
	uint64_t start = hv_proc_start_ns(pid);
	ssize_t n;

	if (!start)
		return -1;
	/* An empty or unreadable command line is not kept: read again. */
	if (args_cache[i].pid != pid || args_cache[i].start_ns != start ||
	    (!args_cache[i].timed_out && !args_cache[i].len)) {
		free(args_cache[i].buf);
		memset(&args_cache[i], 0, sizeof(args_cache[i]));
		n = read_args(pid, buf);
		args_cache[i].pid = pid;
		args_cache[i].start_ns = start;
		args_cache[i].timed_out = n == -ETIMEDOUT;
		if (n == -ETIMEDOUT)
			atomic_fetch_add(&args_timeouts, 1);
		args_cache[i].buf = n > 0 ? malloc(n) : NULL;
		if (args_cache[i].buf) {
			memcpy(args_cache[i].buf, buf, n);
			args_cache[i].len = n;
		}
	}
	if (args_cache[i].timed_out)
		return -ETIMEDOUT;
	*len = args_cache[i].len;
	if (*len)
		memcpy(buf, args_cache[i].buf, *len);
	return *len ? 0 : -1;
}

void hv_proc_forget(int pid)
{
	unsigned i = (unsigned)pid % ARGS_CACHE;

	pthread_mutex_lock(&cache_lock);
	if (args_cache[i].pid == pid) {
		free(args_cache[i].buf);
		memset(&args_cache[i], 0, sizeof(args_cache[i]));
	}
	pthread_mutex_unlock(&cache_lock);
}

unsigned long long hv_proc_args_timeouts(void)
{
	return atomic_load(&args_timeouts);
}

/* The value of a VMM's command-line option (QEMU's "-name NAME", "-uuid
 * UUID"), up to the first comma and without a "guest=" prefix: 0, -1 when
 * absent, -ETIMEDOUT when the command line could not be read in time. */
int hv_proc_vmm_arg(int pid, const char *opt, char *buf, size_t len)
{
	char cmdline[ARGS_MAX];
	size_t n = 0;
	int rc;

	pthread_mutex_lock(&cache_lock);
	rc = cached_args(pid, cmdline, &n);
	pthread_mutex_unlock(&cache_lock);
	if (rc)
		return rc;
	cmdline[n < sizeof(cmdline) ? n : sizeof(cmdline) - 1] = '\0';
	for (char *arg = cmdline; arg < cmdline + n; arg += strlen(arg) + 1) {
		char *val = arg + strlen(arg) + 1;

		if (strcmp(arg, opt) || val >= cmdline + n)
			continue;
		if (!strncmp(val, "guest=", 6))
			val += 6;
		snprintf(buf, len, "%.*s", (int)strcspn(val, ","), val);
		return buf[0] ? 0 : -1;
	}
	return -1;
}

/* QEMU's -name: "-name NAME" or "-name guest=NAME,debug-threads=on". */
int hv_proc_vm_name(int pid, char *buf, size_t len)
{
	return hv_proc_vmm_arg(pid, "-name", buf, len);
}

/* The state letter of /proc/PID/stat ('R', 'S', 'T'...), 0 if gone. */
char hv_proc_state(int pid)
{
	char path[64], stat[512], *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (hv_read_file(path, stat, sizeof(stat)) <= 0)
		return 0;
	p = strrchr(stat, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

/* When pid started, CLOCK_BOOTTIME ns rounded down to a clock tick (field
 * 22 of /proc/PID/stat); 0 if gone. */
uint64_t hv_proc_start_ns(int pid)
{
	char path[64], stat[1024], *p;
	unsigned long long ticks;
	long hz = sysconf(_SC_CLK_TCK);

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (hv_read_file(path, stat, sizeof(stat)) <= 0 || hz <= 0)
		return 0;
	p = strrchr(stat, ')');
	if (!p || sscanf(p + 1,
			 " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d"
			 " %*d %llu",
			 &ticks) != 1)
		return 0;
	return ticks * (1000000000ull / hz);
}

/* Calls fn(fd, link target) for each open fd of pid, until fn returns
 * non-zero (which is then returned). -ESRCH when pid is gone. */
int hv_proc_for_each_fd(int pid, hv_fd_fn fn, void *arg)
{
	char dir[64], path[320], link[128];
	struct dirent *d;
	int rc = 0;
	DIR *dp;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", pid);
	dp = opendir(dir);
	if (!dp)
		return -ESRCH;
	while (!rc && (d = readdir(dp))) {
		ssize_t n;

		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = '\0';
		rc = fn(atoi(d->d_name), link, arg);
	}
	closedir(dp);
	return rc;
}

void hv_proc_for_each_pid(hv_pid_fn fn, void *arg)
{
	struct dirent *d;
	DIR *proc = opendir("/proc");

	if (!proc)
		return;
	while ((d = readdir(proc))) {
		char *end;
		long pid = strtol(d->d_name, &end, 10);

		if (*end || end == d->d_name)
			continue;
		if (fn((int)pid, arg))
			break;
	}
	closedir(proc);
}
