// SPDX-License-Identifier: GPL-2.0
/* What /proc says about processes (names for people, start time for pid
 * reuse), and the small file and clock reads every part of the daemon uses. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hvguard.h"

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

/* The value of a VMM's command-line option (QEMU's "-name NAME", "-uuid
 * UUID"), up to the first comma and without a "guest=" prefix. */
int hv_proc_vmm_arg(int pid, const char *opt, char *buf, size_t len)
{
	char path[64], cmdline[8192];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	n = hv_read_file(path, cmdline, sizeof(cmdline));
	if (n <= 0)
		return -1;
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
