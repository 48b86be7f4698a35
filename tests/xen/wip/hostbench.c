// SPDX-License-Identifier: GPL-2.0
/*
 * Native cost of xen.bpf.c's hooks on a host without Xen: /dev/null stands
 * in for privcmd and /dev/zero for gntdev (recognised by device number), so
 * every hook runs its full decode path; the real drivers answer ENOTTY.
 * Compared with empty programs on the same tracepoints (empty.bpf.c).
 * Not built by the Makefile (it needs libbpf); by hand, as root:
 *   clang -g -O2 -target bpf -D__TARGET_ARCH_x86 -Ivmlinux/x86 -Iinclude -Ibpf \
 *       -c bpf/xen.bpf.c -o /tmp/xen.bpf.o && bpftool gen skeleton /tmp/xen.bpf.o >/tmp/xen.skel.h
 *   clang -g -O2 -target bpf -D__TARGET_ARCH_x86 -Ivmlinux/x86 \
 *       -c tests/xen/wip/empty.bpf.c -o /tmp/empty.bpf.o && bpftool gen skeleton /tmp/empty.bpf.o >/tmp/empty.skel.h
 *   gcc -O2 -Iinclude -I/tmp tests/xen/wip/hostbench.c -lbpf -lpthread -o /tmp/hostbench
 *   taskset -c 1 /tmp/hostbench
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "hvguard/xen.h"
static inline long hv_xen_read_user(void *d, __u32 s, __u64 u) { (void)d; (void)s; (void)u; return -1; }
#include "hvguard/xen_logic.h"
#include "xen.skel.h"
#include "empty.skel.h"

static uint64_t now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000ull + t.tv_nsec; }
static int nul, zero;
struct { uint16_t dom, num; void *bufs; } dmop;
struct { uint64_t op, arg[5]; } hc = { .op = 17 };
struct { uint32_t count, pad; uint64_t index; uint32_t domid, ref; } mg = { .count = 1 };

static double b_ioctl(int n) { uint64_t t = now(); for (int i = 0; i < n; i++) ioctl(nul, HV_PRIVCMD_DM_OP, &dmop); return (double)(now() - t) / n; }
static double b_hyper(int n) { uint64_t t = now(); for (int i = 0; i < n; i++) ioctl(nul, HV_PRIVCMD_HYPERCALL, &hc); return (double)(now() - t) / n; }
static double b_other(int n) { uint64_t t = now(); for (int i = 0; i < n; i++) ioctl(nul, 0x5401 /* TCGETS */, &dmop); return (double)(now() - t) / n; }
static double b_grant(int n) {
	uint64_t t = now();
	for (int i = 0; i < n; i++) {
		ioctl(zero, HV_GNTDEV_MAP_GRANT_REF, &mg);
		void *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, zero, 0);
		munmap(p, 4096);
		ioctl(zero, HV_GNTDEV_UNMAP_GRANT_REF, &mg);
	}
	return (double)(now() - t) / n;
}
static double b_getppid(int n) { uint64_t t = now(); for (int i = 0; i < n; i++) getppid(); return (double)(now() - t) / n; }
static volatile int stop; static struct ring_buffer *rb;
static int on_ev(void *c, void *d, size_t s) { (void)c; (void)d; (void)s; return 0; }
static void *drain(void *a) { (void)a; while (!stop) ring_buffer__poll(rb, 50); return NULL; }
static int cmp(const void *a, const void *b) { double x = *(double *)a, y = *(double *)b; return x < y ? -1 : x > y; }

#define ROUNDS 31
int main(void)
{
	struct stat sb;
	nul = open("/dev/null", O_RDWR); zero = open("/dev/zero", O_RDWR);
	struct xen_bpf *s = xen_bpf__open();
	bpf_program__set_autoload(s->progs.xen_lsm_file_ioctl, false);
	bpf_program__set_autoload(s->progs.xen_lsm_mmap_file, false);
	bpf_program__set_autoload(s->progs.xen_fmod_file_ioctl, false);
	bpf_program__set_autoload(s->progs.xen_fmod_mmap_file, false);
	struct hv_xen_config *c = &s->bss->xen_cfg;
	fstat(nul, &sb); c->rdev[HV_XEN_DEV_PRIVCMD] = major(sb.st_rdev) << 20 | minor(sb.st_rdev);
	fstat(zero, &sb); c->rdev[HV_XEN_DEV_GNTDEV] = major(sb.st_rdev) << 20 | minor(sb.st_rdev);
	c->target_domain = 0; hv_xen_allow_domid(c, 0);
	for (int r = HV_RULE_FOREIGN_MAP; r < HV_RULE_COUNT; r++) c->action[r] = HV_XEN_ACT_ALERT;
	if (xen_bpf__load(s)) { fprintf(stderr, "load failed\n"); return 1; }
	rb = ring_buffer__new(bpf_map__fd(s->maps.xen_events), on_ev, NULL, NULL);
	pthread_t th; pthread_create(&th, NULL, drain, NULL);
	const char *names[] = { "privcmd DM_OP ioctl", "privcmd HYPERCALL (violation, alert event)", "non-Xen ioctl (TCGETS)", "gntdev MAP+mmap+munmap+UNMAP", "getppid" };
	double (*fns[])(int) = { b_ioctl, b_hyper, b_other, b_grant, b_getppid };
	int ns[] = { 200000, 200000, 200000, 50000, 200000 };
	/* modes: 0 detached, 1 attached not a backend, 2 attached backend, 3 empty programs */
	struct empty_bpf *em = empty_bpf__open_and_load();
	double res[5][4][ROUNDS];
	__u32 me = getpid(); struct hv_xen_backend be = {};
	for (int round = 0; round < ROUNDS; round++)
		for (int mode = 0; mode < 4; mode++) {
			if (mode == 3) empty_bpf__attach(em);
			if (mode == 1) xen_bpf__attach(s);
			if (mode == 2) bpf_map_update_elem(bpf_map__fd(s->maps.xen_backends), &me, &be, BPF_ANY);
			for (int f = 0; f < 5; f++) res[f][mode][round] = fns[f](ns[f] / 10);
			if (mode == 2) { bpf_map_delete_elem(bpf_map__fd(s->maps.xen_backends), &me); xen_bpf__detach(s); }
			if (mode == 3) empty_bpf__detach(em);
		}
	printf("%-45s %9s %8s %13s %9s  (fastest of %d interleaved rounds, ns/op)\n", "operation", "detached", "+empty", "+non-backend", "+backend", ROUNDS);
	for (int f = 0; f < 5; f++) {
		double m[4];
		/* The fastest round: on a shared machine, the least disturbed. */
		for (int mode = 0; mode < 4; mode++) { qsort(res[f][mode], ROUNDS, sizeof(double), cmp); m[mode] = res[f][mode][0]; }
		printf("%-45s %9.0f %+8.0f %+13.0f %+9.0f\n", names[f], m[0], m[3] - m[0], m[1] - m[0], m[2] - m[0]);
	}
	stop = 1; pthread_join(th, NULL);
	return 0;
}
