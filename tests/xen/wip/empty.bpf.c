// SPDX-License-Identifier: GPL-2.0
/* Empty programs on the hooks xen.bpf.c uses: the floor hostbench.c compares against. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
SEC("tp/syscalls/sys_enter_ioctl") int e1(void *c) { return 0; }
SEC("tp/syscalls/sys_exit_ioctl") int e2(void *c) { return 0; }
SEC("tp/syscalls/sys_enter_mmap") int e3(void *c) { return 0; }
SEC("tp/syscalls/sys_exit_mmap") int e4(void *c) { return 0; }
SEC("tp/syscalls/sys_enter_munmap") int e5(void *c) { return 0; }
SEC("tp/syscalls/sys_exit_munmap") int e6(void *c) { return 0; }
