// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "hvguard.h"
#include "preflight.h"

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif
#define TRACEFS_MAGIC 0x74726163
#define BPF_FS_MAGIC  0xcafe4a11

bool hv_has_cap(int cap)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2] = {};

	if (syscall(SYS_capget, &hdr, data))
		return false;
	return data[cap / 32].effective & (1u << (cap % 32));
}

static bool is_fs(const char *dir, long magic)
{
	struct statfs st;

	return statfs(dir, &st) == 0 && st.f_type == magic;
}

/* data: mount options, or NULL. */
static int ensure_mounted(const char *type, const char *dir, long magic, const char *data)
{
	if (is_fs(dir, magic))
		return 0;
	mkdir(dir, 0755);
	if (mount(type, dir, type, 0, data) && errno != EBUSY) {
		hv_err("%s is not mounted on %s and mounting it failed (%s): mount it with "
		       "'mount -t %s %s %s'",
		       type, dir, strerror(errno), type, type, dir);
		return -1;
	}
	return is_fs(dir, magic) ? 0 : -1;
}

static int need_root(void)
{
	if (!hv_has_cap(CAP_SYS_ADMIN) && !(hv_has_cap(CAP_BPF) && hv_has_cap(CAP_PERFMON))) {
		hv_err("hvguard needs root (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN) to load its "
		       "BPF programs and read KVM's state: run it with sudo");
		return HV_EXIT_NOPERM;
	}
	return HV_EXIT_OK;
}

/* audit reads /proc of every process, KVM's debugfs and the pinned state;
 * it mounts what it needs itself, for its own use only (privmount.h). */
int hv_preflight_audit(void)
{
	return need_root();
}

int hv_preflight(bool need_ptrace, bool want_bpffs)
{
	int rc = need_root();

	if (rc)
		return rc;
	if (need_ptrace && !hv_has_cap(CAP_SYS_PTRACE)) {
		hv_err(
		    "correcting writes (--correct, or action: correct) need CAP_SYS_PTRACE to run "
		    "ioctls inside the VMM: run as root, or without corrections");
		return HV_EXIT_NOPERM;
	}
	if (access("/sys/kernel/btf/vmlinux", R_OK)) {
		hv_err(
		    "this kernel has no BTF (/sys/kernel/btf/vmlinux): hvguard needs a kernel "
		    "built with CONFIG_DEBUG_INFO_BTF=y (Debian, Ubuntu, Fedora kernels have it)");
		return HV_EXIT_NOKERNEL;
	}
	if (ensure_mounted("tracefs", "/sys/kernel/tracing", TRACEFS_MAGIC, NULL))
		return HV_EXIT_NOFS;
	if (access("/sys/kernel/tracing/events/syscalls/sys_enter_ioctl", F_OK)) {
		hv_err("the kernel has no syscalls:sys_enter_ioctl tracepoint: hvguard needs "
		       "CONFIG_FTRACE_SYSCALLS=y");
		return HV_EXIT_NOKERNEL;
	}
	/* Mounted by hvguard, bpffs is root's alone (mode=0700); mounted by
	 * someone else, it may be 1777: pindir.c checks the pin directory. */
	if (want_bpffs && ensure_mounted("bpf", "/sys/fs/bpf", BPF_FS_MAGIC, "mode=0700"))
		return HV_EXIT_NOFS;
	return HV_EXIT_OK;
}
