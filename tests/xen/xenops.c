// SPDX-License-Identifier: GPL-2.0
/*
 * xenops: the Xen device operations a backend performs, one command per run,
 * against the real drivers of a dom0 (gntalloc, gntdev, privcmd). The Xen
 * test stage runs it as a designated backend (through a symlink whose name is
 * the backend's comm) and as an ordinary process, and checks what hvguard
 * says. Every command prints one line "XENOPS <cmd> key=value..." on success
 * or failure, so the serial log tells what the kernel answered.
 *
 *   xenops grant-cycle            gntalloc self-grant, then gntdev
 *                                 MAP_GRANT_REF, mmap, check the data, munmap,
 *                                 UNMAP_GRANT_REF, release the gntalloc side
 *   xenops grant-leak             MAP_GRANT_REF and mmap, then exit as is
 *   xenops grant-reserve-leak     MAP_GRANT_REF, never mmap, sleep 3 s, exit
 *   xenops reserve DOMID REF      MAP_GRANT_REF of a grant of DOMID (only reserves;
 *                                 succeeds for any domid), then UNMAP_GRANT_REF
 *   xenops gnttab-frame           print the machine frame of dom0's grant table
 *                                 (GNTTABOP_setup_table through HYPERCALL)
 *   xenops mmapbatch FRAME PAGES [DOM] foreign-map FRAME PAGES times of DOM
 *                                 (default DOMID_SELF: Xen refuses dom0 naming itself) with
 *                                 MMAPBATCH_V2, then probe whether it is mapped
 *   xenops hypercall              HYPERCALL xen_version
 *   xenops resource TYPE          MMAP_RESOURCE of dom 0 (Xen says EPERM)
 *   xenops hostile                MAP_GRANT_REF with a huge count and bad pointers
 *   xenops many-refs N AT DOMID   MAP_GRANT_REF of N refs of domain 0, ref AT
 *                                 (from 0; -1: none) of DOMID instead, then
 *                                 UNMAP_GRANT_REF (the driver only reserves)
 *   xenops copy-to DOMID          GRANT_COPY of one segment from a self-granted
 *                                 gref to gref 8 of DOMID (both sides grefs)
 *   xenops unfaulted [DOMID]      MAP_GRANT_REF, its argument on a page of a
 *                                 memfd mapped but never touched (the driver
 *                                 faults it in; only a sleepable BPF program
 *                                 can): of a self-grant (DOMID 0, the default),
 *                                 else of gref 8 of DOMID (the driver only
 *                                 reserves), then UNMAP_GRANT_REF
 *   xenops spawn CMD [ARG...]     fork, exec CMD in the child, wait, print its status
 *                                 (a designated backend's children inherit it)
 *   xenops exec-thread CMD [ARG...] exec CMD from a thread that is not the leader
 *                                 (the kernel kills the leader first; the process
 *                                 goes on under its pid as CMD)
 *   (every bench-* runs its call N times in 15 batches and prints the
 *   median batch's ns per call, and the fastest and slowest batch's)
 *   xenops bench-grant N          N x (MAP_GRANT_REF + mmap + munmap + UNMAP): ns each
 *   xenops bench-privcmd N        N x privcmd DM_OP (num 0, no hypercall): ns each
 *   xenops bench-hypercall N      N x HYPERCALL xen_version: ns each
 *   xenops bench-ioctl N          N x an ordinary ioctl (FIONREAD on a pipe): ns each
 *   xenops bench-mmap N           N x mmap + munmap of a file (/dev/zero): ns each
 *   xenops bench-syscall N        N x getppid (neither ioctl nor mmap): ns each
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hvguard/xen.h"

#define PAGE 4096ul

struct gntalloc_alloc {
	uint16_t domid;
	uint16_t flags; /* 1: writable */
	uint32_t count;
	uint64_t index;
	uint32_t gref_ids[1];
};

struct gntalloc_dealloc {
	uint64_t index;
	uint32_t count;
	uint32_t pad;
};

struct gntdev_map {
	uint32_t count;
	uint32_t pad;
	uint64_t index;
	struct {
		uint32_t domid;
		uint32_t ref;
	} refs[1];
};

struct gntdev_unmap {
	uint64_t index;
	uint32_t count;
	uint32_t pad;
};

struct privcmd_hypercall {
	uint64_t op;
	uint64_t arg[5];
};

struct privcmd_mmapbatch_v2 {
	uint32_t num;
	uint16_t dom;
	uint64_t addr;
	const uint64_t *arr;
	int *err;
};

struct privcmd_mmap_resource {
	uint16_t dom;
	uint32_t type;
	uint32_t id;
	uint32_t idx;
	uint64_t num;
	uint64_t addr;
};

struct privcmd_dm_op {
	uint16_t dom;
	uint16_t num;
	const void *ubufs;
};

#define DOMID_SELF		  0x7ff0
#define HYPERVISOR_xen_version	  17
#define HYPERVISOR_grant_table_op 20
#define GNTTABOP_setup_table	  2

static const char *cmd_name = "?";

static int open_dev(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		printf("XENOPS %s ok=0 error=open-%s errno=%d\n", cmd_name, path, errno);
		exit(2);
	}
	return fd;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* A grant of one of our own pages to dom0 itself (no second domain needed). */
struct self_grant {
	int gntalloc;
	uint64_t index;
	uint32_t ref;
	volatile uint32_t *page;
};

static int self_grant(struct self_grant *g, uint32_t pattern)
{
	struct gntalloc_alloc a = {.domid = 0, .flags = 1, .count = 1};

	g->gntalloc = open_dev("/dev/xen/gntalloc");
	if (ioctl(g->gntalloc, HV_GNTALLOC_ALLOC_GREF, &a)) {
		printf("XENOPS %s ok=0 error=alloc-gref errno=%d\n", cmd_name, errno);
		return -1;
	}
	g->index = a.index;
	g->ref = a.gref_ids[0];
	g->page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, g->gntalloc, g->index);
	if (g->page == MAP_FAILED) {
		printf("XENOPS %s ok=0 error=mmap-gntalloc errno=%d\n", cmd_name, errno);
		return -1;
	}
	g->page[0] = pattern;
	return 0;
}

static void self_grant_release(struct self_grant *g)
{
	struct gntalloc_dealloc d = {.index = g->index, .count = 1};

	munmap((void *)g->page, PAGE);
	ioctl(g->gntalloc, HV_GNTALLOC_DEALLOC_GREF, &d);
	close(g->gntalloc);
}

/* gntdev side: reserve (MAP_GRANT_REF), returns the mmap offset. */
static int gntdev_reserve(int gntdev, uint32_t ref, uint64_t *index)
{
	struct gntdev_map m = {.count = 1, .refs = {{.domid = 0, .ref = ref}}};

	if (ioctl(gntdev, HV_GNTDEV_MAP_GRANT_REF, &m))
		return -errno;
	*index = m.index;
	return 0;
}

static int gntdev_release(int gntdev, uint64_t index)
{
	struct gntdev_unmap u = {.index = index, .count = 1};

	return ioctl(gntdev, HV_GNTDEV_UNMAP_GRANT_REF, &u) ? -errno : 0;
}

static int cmd_grant_cycle(void)
{
	struct self_grant g;
	uint64_t index = 0;
	volatile uint32_t *map;
	uint32_t seen;
	int gntdev, err;

	if (self_grant(&g, 0x5a5a1234))
		return 1;
	gntdev = open_dev("/dev/xen/gntdev");
	err = gntdev_reserve(gntdev, g.ref, &index);
	if (err) {
		printf("XENOPS %s ok=0 error=map-grant-ref errno=%d\n", cmd_name, -err);
		return 1;
	}
	map = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, gntdev, index);
	if (map == MAP_FAILED) {
		printf("XENOPS %s ok=0 error=mmap-gntdev errno=%d\n", cmd_name, errno);
		return 1;
	}
	seen = map[0];
	map[1] = 0xfeedbeef; /* and the other way round */
	munmap((void *)map, PAGE);
	err = gntdev_release(gntdev, index);
	printf("XENOPS %s ok=%d ref=%u index=%llu data=%s back=%s unmap=%d pid=%d\n", cmd_name,
	       seen == 0x5a5a1234 && !err, g.ref, (unsigned long long)index,
	       seen == 0x5a5a1234 ? "ok" : "bad", g.page[1] == 0xfeedbeef ? "ok" : "bad", err,
	       getpid());
	close(gntdev);
	self_grant_release(&g);
	return 0;
}

static int cmd_reserve(uint32_t domid, uint32_t ref)
{
	struct gntdev_map m = {.count = 1, .refs = {{.domid = domid, .ref = ref}}};
	int gntdev = open_dev("/dev/xen/gntdev");
	long r = ioctl(gntdev, HV_GNTDEV_MAP_GRANT_REF, &m);
	int e = r ? errno : 0;

	if (!r)
		gntdev_release(gntdev, m.index);
	printf("XENOPS %s ok=%d ret=%ld errno=%d domid=%u ref=%u pid=%d\n", cmd_name, r == 0, r, e,
	       domid, ref, getpid());
	return r == 0 ? 0 : 1;
}

/* Grants still reserved (and, with map_it, mapped) when the process exits. */
static int cmd_grant_leak(int map_it)
{
	struct self_grant g;
	uint64_t index = 0;
	int gntdev, err;

	if (self_grant(&g, 1))
		return 1;
	gntdev = open_dev("/dev/xen/gntdev");
	err = gntdev_reserve(gntdev, g.ref, &index);
	if (err) {
		printf("XENOPS %s ok=0 error=map-grant-ref errno=%d\n", cmd_name, -err);
		return 1;
	}
	if (map_it && mmap(NULL, PAGE, PROT_READ, MAP_SHARED, gntdev, index) == MAP_FAILED) {
		printf("XENOPS %s ok=0 error=mmap-gntdev errno=%d\n", cmd_name, errno);
		return 1;
	}
	printf("XENOPS %s ok=1 ref=%u index=%llu pid=%d\n", cmd_name, g.ref,
	       (unsigned long long)index, getpid());
	fflush(stdout);
	if (!map_it)
		sleep(3); /* longer than the test's grant_leak_after_ms */
	return 0;	  /* the kernel cleans up; the backend did not */
}

static long hypercall(int privcmd, uint64_t op, uint64_t a0, uint64_t a1, uint64_t a2)
{
	struct privcmd_hypercall h = {.op = op, .arg = {a0, a1, a2}};

	return ioctl(privcmd, HV_PRIVCMD_HYPERCALL, &h);
}

static int cmd_gnttab_frame(void)
{
	struct {
		uint16_t dom;
		uint32_t nr_frames;
		int16_t status;
		uint64_t *frame_list;
	} setup;
	static uint64_t frame;
	int privcmd = open_dev("/dev/xen/privcmd");
	long r;

	memset(&setup, 0, sizeof(setup));
	setup.dom = DOMID_SELF;
	setup.nr_frames = 1;
	setup.frame_list = &frame;
	mlock(&setup, sizeof(setup));
	mlock(&frame, sizeof(frame));
	r = hypercall(privcmd, HYPERVISOR_grant_table_op, GNTTABOP_setup_table, (uint64_t)&setup,
		      1);
	printf("XENOPS %s ok=%d ret=%ld errno=%d status=%d frame=%llu\n", cmd_name,
	       r == 0 && setup.status == 0, r, r ? errno : 0, setup.status,
	       (unsigned long long)frame);
	return r == 0 && setup.status == 0 ? 0 : 1;
}

static sigjmp_buf probe_jmp;

static void on_sigbus(int sig)
{
	(void)sig;
	siglongjmp(probe_jmp, 1);
}

/* Whether a page of a privcmd mapping is backed: an unfilled one raises SIGBUS. */
static int page_is_mapped(volatile uint8_t *p)
{
	struct sigaction sa = {.sa_handler = on_sigbus}, old_bus, old_segv;
	int mapped = 0;

	sigaction(SIGBUS, &sa, &old_bus);
	sigaction(SIGSEGV, &sa, &old_segv);
	if (!sigsetjmp(probe_jmp, 1)) {
		(void)p[0];
		mapped = 1;
	}
	sigaction(SIGBUS, &old_bus, NULL);
	sigaction(SIGSEGV, &old_segv, NULL);
	return mapped;
}

static int cmd_mmapbatch(uint64_t frame, uint32_t pages, uint16_t dom)
{
	uint64_t arr[64];
	int errs[64];
	struct privcmd_mmapbatch_v2 b;
	int privcmd = open_dev("/dev/xen/privcmd");
	void *area;
	long r;

	if (pages < 1 || pages > 64)
		pages = 1;
	area = mmap(NULL, pages * PAGE, PROT_READ, MAP_SHARED, privcmd, 0);
	if (area == MAP_FAILED) {
		printf("XENOPS %s ok=0 error=mmap-privcmd errno=%d mapped=0 pid=%d\n", cmd_name,
		       errno, getpid());
		return 1;
	}
	for (uint32_t i = 0; i < pages; i++) {
		arr[i] = frame;
		errs[i] = 12345;
	}
	b = (struct privcmd_mmapbatch_v2){
	    .num = pages, .dom = dom, .addr = (uint64_t)area, .arr = arr, .err = errs};
	r = ioctl(privcmd, HV_PRIVCMD_MMAPBATCH_V2, &b);
	printf("XENOPS %s ok=%d ret=%ld errno=%d err0=%d mapped=%d pages=%u dom=%u pid=%d\n",
	       cmd_name, r == 0, r, r ? errno : 0, errs[0], page_is_mapped(area), pages, dom,
	       getpid());
	return r == 0 ? 0 : 1;
}

static int cmd_hypercall(void)
{
	int privcmd = open_dev("/dev/xen/privcmd");
	long r = hypercall(privcmd, HYPERVISOR_xen_version, 0, 0, 0);

	printf("XENOPS %s ok=%d ret=%ld errno=%d version=%ld.%ld pid=%d\n", cmd_name, r >= 0, r,
	       r < 0 ? errno : 0, r >> 16, r & 0xffff, getpid());
	return r >= 0 ? 0 : 1;
}

static int cmd_resource(uint32_t type)
{
	int privcmd = open_dev("/dev/xen/privcmd");
	void *area = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, privcmd, 0);
	struct privcmd_mmap_resource res = {
	    .dom = 0, .type = type, .id = 0, .idx = 0, .num = 1, .addr = (uint64_t)area};
	long r;

	if (area == MAP_FAILED) {
		printf("XENOPS %s ok=0 error=mmap-privcmd errno=%d pid=%d\n", cmd_name, errno,
		       getpid());
		return 1;
	}
	r = ioctl(privcmd, HV_PRIVCMD_MMAP_RESOURCE, &res);
	/* Xen refuses dom0 acquiring its own resources: EPERM is expected. */
	printf("XENOPS %s ok=1 ret=%ld errno=%d type=%u pid=%d\n", cmd_name, r, r ? errno : 0, type,
	       getpid());
	return 0;
}

static int cmd_hostile(void)
{
	int gntdev = open_dev("/dev/xen/gntdev");
	int privcmd = open_dev("/dev/xen/privcmd");
	struct gntdev_map *huge;
	long r1, r2, r3;
	int e1, e2, e3;

	/* A huge count whose refs run into an unmapped page. */
	huge = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap((char *)huge + PAGE, PAGE);
	huge = (struct gntdev_map *)((char *)huge + PAGE - 32);
	huge->count = 0xffffffffu;
	r1 = ioctl(gntdev, HV_GNTDEV_MAP_GRANT_REF, huge);
	e1 = errno;
	r2 = ioctl(gntdev, HV_GNTDEV_MAP_GRANT_REF, (void *)8);
	e2 = errno;
	r3 = ioctl(privcmd, HV_PRIVCMD_MMAPBATCH_V2, (void *)-4096l);
	e3 = errno;
	printf("XENOPS %s ok=1 huge=%ld/%d nullish=%ld/%d kernelptr=%ld/%d pid=%d\n", cmd_name, r1,
	       e1, r2, e2, r3, e3, getpid());
	return 0;
}

static int cmd_many_refs(uint32_t n, long at, uint32_t domid)
{
	size_t size = 16 + 8 * (size_t)n;
	struct gntdev_map *m = calloc(1, size);
	int gntdev = open_dev("/dev/xen/gntdev");
	long r;
	int e;

	if (!m)
		return 1;
	m->count = n;
	for (uint32_t i = 0; i < n; i++) {
		m->refs[i].domid = i == at ? domid : 0;
		m->refs[i].ref = 100 + i;
	}
	r = ioctl(gntdev, HV_GNTDEV_MAP_GRANT_REF, m);
	e = r ? errno : 0;
	if (!r)
		gntdev_release(gntdev, m->index);
	printf("XENOPS %s ok=%d ret=%ld errno=%d count=%u at=%ld domid=%u pid=%d\n", cmd_name,
	       r == 0, r, e, n, at, domid, getpid());
	return r == 0 ? 0 : 1;
}

struct gntdev_copy_seg {
	union {
		uint64_t virt;
		struct {
			uint32_t ref;
			uint16_t offset;
			uint16_t domid;
		} foreign;
	} source, dest;
	uint16_t len;
	uint16_t flags; /* 1: source is a gref, 2: dest is a gref */
	int16_t status;
};

struct gntdev_copy {
	uint32_t count;
	uint32_t pad;
	struct gntdev_copy_seg *segments;
};

static int cmd_copy_to(uint16_t domid)
{
	struct gntdev_copy_seg seg = {.len = 8, .flags = 3, .status = 12345};
	struct gntdev_copy c = {.count = 1, .segments = &seg};
	struct self_grant g;
	int gntdev;
	long r;

	if (self_grant(&g, 0x600d))
		return 1;
	gntdev = open_dev("/dev/xen/gntdev");
	seg.source.foreign.ref = g.ref;
	seg.source.foreign.domid = 0;
	seg.dest.foreign.ref = 8;
	seg.dest.foreign.domid = domid;
	r = ioctl(gntdev, HV_GNTDEV_GRANT_COPY, &c);
	/* status 12345: the driver never saw the segment (denied before it) */
	printf("XENOPS %s ok=%d ret=%ld errno=%d status=%d domid=%u pid=%d\n", cmd_name, r == 0, r,
	       r ? errno : 0, seg.status, domid, getpid());
	self_grant_release(&g);
	return r == 0 ? 0 : 1;
}

static int cmd_unfaulted(uint16_t domid)
{
	struct gntdev_map m = {.count = 1};
	struct self_grant g;
	struct gntdev_map *arg;
	int gntdev, fd;
	long r;
	int e;

	if (self_grant(&g, 0xabcd))
		return 1;
	gntdev = open_dev("/dev/xen/gntdev");
	/* 0: an allowed domain, only unreadable to a reader that cannot fault */
	m.refs[0].domid = domid;
	m.refs[0].ref = domid ? 8 : g.ref;
	fd = memfd_create("xenops-arg", MFD_CLOEXEC);
	if (fd < 0 || write(fd, &m, sizeof(m)) != (ssize_t)sizeof(m)) {
		printf("XENOPS %s ok=0 error=memfd errno=%d\n", cmd_name, errno);
		return 1;
	}
	/* In the page cache, not in this process's page tables until touched. */
	arg = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (arg == MAP_FAILED) {
		printf("XENOPS %s ok=0 error=mmap-memfd errno=%d\n", cmd_name, errno);
		return 1;
	}
	r = ioctl(gntdev, HV_GNTDEV_MAP_GRANT_REF, arg);
	e = r ? errno : 0;
	if (!r)
		gntdev_release(gntdev, arg->index);
	printf("XENOPS %s ok=%d ret=%ld errno=%d domid=%u ref=%u arg=%llu pid=%d\n", cmd_name,
	       r == 0, r, e, domid, m.refs[0].ref, (unsigned long long)(uintptr_t)arg, getpid());
	self_grant_release(&g);
	return r == 0 ? 0 : 1;
}

/* --- benchmarks ---------------------------------------------------------- */

#define BENCH_BATCHES 15

/* One benchmark: the call measured, and the descriptors it works on. */
struct bench {
	int (*one)(struct bench *b); /* 0 or -1 */
	int fd, fd2;
	uint32_t ref;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Runs the call n times in BENCH_BATCHES batches and reports the median
 * batch's ns per call, and the fastest and slowest batch: under emulation
 * on a shared machine a run is often interrupted for milliseconds, and the
 * median batch leaves those interruptions out. */
static int measure(struct bench *b, unsigned long n)
{
	unsigned long per = n / BENCH_BATCHES ? n / BENCH_BATCHES : 1;
	uint64_t ns[BENCH_BATCHES], t0;

	for (int k = 0; k < BENCH_BATCHES; k++) {
		t0 = now_ns();
		for (unsigned long i = 0; i < per; i++)
			if (b->one(b))
				return 1;
		ns[k] = (now_ns() - t0) / per;
	}
	qsort(ns, BENCH_BATCHES, sizeof(ns[0]), cmp_u64);
	printf("XENOPS %s ok=1 n=%lu ns_per_op=%llu min=%llu max=%llu\n", cmd_name,
	       per * BENCH_BATCHES, (unsigned long long)ns[BENCH_BATCHES / 2],
	       (unsigned long long)ns[0], (unsigned long long)ns[BENCH_BATCHES - 1]);
	return 0;
}

/* MAP_GRANT_REF + mmap + munmap + UNMAP_GRANT_REF of a self-granted page. */
static int one_grant(struct bench *b)
{
	uint64_t index = 0;
	void *map;

	if (gntdev_reserve(b->fd, b->ref, &index))
		return -1;
	map = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, b->fd, index);
	if (map == MAP_FAILED)
		return -1;
	munmap(map, PAGE);
	return gntdev_release(b->fd, index) ? -1 : 0;
}

static int cmd_bench_grant(unsigned long n)
{
	struct bench b = {.one = one_grant};
	struct self_grant g;

	if (self_grant(&g, 7))
		return 1;
	b.fd = open_dev("/dev/xen/gntdev");
	b.ref = g.ref;
	return measure(&b, n);
}

/* DM_OP with no buffers: the driver's decode, no hypercall. */
static int one_privcmd(struct bench *b)
{
	struct privcmd_dm_op op = {.dom = 0, .num = 0};

	ioctl(b->fd, HV_PRIVCMD_DM_OP, &op);
	return 0;
}

static int cmd_bench_privcmd(unsigned long n)
{
	struct bench b = {.one = one_privcmd, .fd = open_dev("/dev/xen/privcmd")};

	return measure(&b, n);
}

static int one_hypercall(struct bench *b)
{
	hypercall(b->fd, HYPERVISOR_xen_version, 0, 0, 0);
	return 0;
}

static int cmd_bench_hypercall(unsigned long n)
{
	struct bench b = {.one = one_hypercall, .fd = open_dev("/dev/xen/privcmd")};

	return measure(&b, n);
}

/* What every other process does: the syscalls tier puts these on the
 * syscall slow path, the fentry tier leaves them alone. */
static int one_ioctl(struct bench *b)
{
	int avail;

	ioctl(b->fd, FIONREAD, &avail);
	return 0;
}

static int cmd_bench_ioctl(unsigned long n)
{
	struct bench b = {.one = one_ioctl};
	int fds[2];

	if (pipe(fds))
		return 1;
	b.fd = fds[0];
	b.fd2 = fds[1];
	return measure(&b, n);
}

/* A file mapping (not anonymous): the syscalls tier looks at its fd. */
static int one_mmap(struct bench *b)
{
	void *map = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, b->fd, 0);

	if (map == MAP_FAILED)
		return -1;
	munmap(map, PAGE);
	return 0;
}

static int cmd_bench_mmap(unsigned long n)
{
	struct bench b = {.one = one_mmap, .fd = open_dev("/dev/zero")};

	return measure(&b, n);
}

static int one_syscall(struct bench *b)
{
	(void)b;
	getppid();
	return 0;
}

static int cmd_bench_syscall(unsigned long n)
{
	struct bench b = {.one = one_syscall};

	return measure(&b, n);
}

static int cmd_spawn(char **argv)
{
	int status = 0;
	pid_t pid = fork();

	if (pid == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return 1;
	printf("XENOPS %s ok=1 child=%d status=%d pid=%d\n", cmd_name, pid, status, getpid());
	return 0;
}

static void *exec_thread(void *arg)
{
	char **argv = arg;

	execv(argv[0], argv);
	printf("XENOPS %s ok=0 error=exec errno=%d\n", cmd_name, errno);
	exit(1);
}

static int cmd_exec_thread(char **argv)
{
	pthread_t t;

	printf("XENOPS %s ok=1 leader=%d\n", cmd_name, getpid());
	fflush(stdout);
	if (pthread_create(&t, NULL, exec_thread, argv))
		return 1;
	pthread_join(t, NULL); /* never returns: the exec ends this program */
	return 1;
}

static int usage(void)
{
	fprintf(
	    stderr,
	    "usage: xenops grant-cycle | grant-leak | grant-reserve-leak | reserve DOMID REF |\n"
	    "       gnttab-frame |\n"
	    "       mmapbatch FRAME PAGES [DOM] | hypercall | resource TYPE | hostile |\n"
	    "       many-refs N AT DOMID | copy-to DOMID | unfaulted [DOMID] |\n"
	    "       spawn CMD [ARG...] | exec-thread CMD [ARG...] |\n"
	    "       bench-grant N | bench-privcmd N | bench-hypercall N |\n"
	    "       bench-ioctl N | bench-mmap N | bench-syscall N\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *c;

	if (argc < 2)
		return usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	c = cmd_name = argv[1];
	if (!strcmp(c, "grant-cycle"))
		return cmd_grant_cycle();
	if (!strcmp(c, "grant-leak"))
		return cmd_grant_leak(1);
	if (!strcmp(c, "grant-reserve-leak"))
		return cmd_grant_leak(0);
	if (!strcmp(c, "reserve") && argc == 4)
		return cmd_reserve(strtoul(argv[2], NULL, 0), strtoul(argv[3], NULL, 0));
	if (!strcmp(c, "gnttab-frame"))
		return cmd_gnttab_frame();
	if (!strcmp(c, "mmapbatch") && (argc == 4 || argc == 5))
		return cmd_mmapbatch(strtoull(argv[2], NULL, 0), strtoul(argv[3], NULL, 0),
				     argc == 5 ? strtoul(argv[4], NULL, 0) : DOMID_SELF);
	if (!strcmp(c, "hypercall"))
		return cmd_hypercall();
	if (!strcmp(c, "resource") && argc == 3)
		return cmd_resource(strtoul(argv[2], NULL, 0));
	if (!strcmp(c, "hostile"))
		return cmd_hostile();
	if (!strcmp(c, "many-refs") && argc == 5)
		return cmd_many_refs(strtoul(argv[2], NULL, 0), strtol(argv[3], NULL, 0),
				     strtoul(argv[4], NULL, 0));
	if (!strcmp(c, "copy-to") && argc == 3)
		return cmd_copy_to(strtoul(argv[2], NULL, 0));
	if (!strcmp(c, "unfaulted") && argc <= 3)
		return cmd_unfaulted(argc == 3 ? strtoul(argv[2], NULL, 0) : 0);
	if (!strcmp(c, "spawn") && argc >= 3)
		return cmd_spawn(argv + 2);
	if (!strcmp(c, "exec-thread") && argc >= 3)
		return cmd_exec_thread(argv + 2);
	if (!strcmp(c, "bench-grant") && argc == 3)
		return cmd_bench_grant(strtoul(argv[2], NULL, 0));
	if (!strcmp(c, "bench-privcmd") && argc == 3)
		return cmd_bench_privcmd(strtoul(argv[2], NULL, 0));
	if (!strcmp(c, "bench-hypercall") && argc == 3)
		return cmd_bench_hypercall(strtoul(argv[2], NULL, 0));
	if (!strcmp(c, "bench-ioctl") && argc == 3)
		return cmd_bench_ioctl(strtoul(argv[2], NULL, 0));
	if (!strcmp(c, "bench-mmap") && argc == 3)
		return cmd_bench_mmap(strtoul(argv[2], NULL, 0));
	if (!strcmp(c, "bench-syscall") && argc == 3)
		return cmd_bench_syscall(strtoul(argv[2], NULL, 0));
	return usage();
}
