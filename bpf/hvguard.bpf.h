/* SPDX-License-Identifier: GPL-2.0 */
/* Helpers shared by the BPF programs (clock.bpf.c, xen.bpf.c). */
#ifndef HVGUARD_BPF_H
#define HVGUARD_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define HV_SIGKILL 9
#define HV_SIGSTOP 19

/* The struct file behind fd in the current task, or NULL. */
static __always_inline struct file *hv_fd_to_file(struct task_struct *task, unsigned int fd)
{
	struct files_struct *files = BPF_CORE_READ(task, files);
	struct fdtable *fdt;
	struct file **fds;
	struct file *file = NULL;

	if (!files)
		return NULL;
	fdt = BPF_CORE_READ(files, fdt);
	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]))
		return NULL;
	return file;
}

/* The address of the ioctl handler of a file: what identifies KVM's VM,
 * vCPU and /dev/kvm files, and Xen's privcmd/gntdev/gntalloc, on kernels
 * where the file_operations objects themselves are not in kallsyms. */
static __always_inline __u64 hv_file_ioctl_handler(struct file *file)
{
	const struct file_operations *fops = BPF_CORE_READ(file, f_op);

	if (!fops)
		return 0;
	return (__u64)BPF_CORE_READ(fops, unlocked_ioctl);
}

static __always_inline __u32 hv_current_tgid(void)
{
	return bpf_get_current_pid_tgid() >> 32;
}

#endif
