// SPDX-License-Identifier: GPL-2.0
/*
 * hostile: a VMM that works against hvguard, for tests/vmm/test_hostile.py.
 *
 * hostile unstoppable [--rewinds N] [--window-ms N] [--hold-max-ms N]
 *
 *   A one-vCPU VM that rewinds its kvmclock N times (KVM_GET_CLOCK, 20 ms,
 *   KVM_SET_CLOCK of the old value, KVM_RUN: a kvmclock-jump), and does its best not
 *   to be corrected. An accomplice process continues it (SIGCONT) whenever
 *   it is stopped; after each rewind, for --window-ms, its thread stops
 *   itself for an instant, then sleeps uninterruptibly (D: a vfork-style
 *   clone() whose child runs 50 ms). A corrector that saw it stopped and
 *   seizes it finds it in D; the child then notices the tracer
 *   (TracerPid) and keeps the thread in D until the tracer is gone, up to
 *   --hold-max-ms: without a deadline on the seize, the corrector waits
 *   that long.
 *
 *   Prints JSON lines: {"type":"ready","pid":P}, {"type":"rewind","n":I},
 *   then {"type":"done","pid":P,"seized_in_d":S,"held_ms":[..]} and, after
 *   --idle-ms (default 3000) of sleep, exits 0.
 *
 * hostile cmdline-hang --mnt DIR
 *
 *   A VMM whose /proc/PID/cmdline cannot be read: the kernel reads it
 *   under the VMM's mmap lock, and this VMM keeps that lock wanted by a
 *   writer (a thread of its own in mmap()) behind a reader that never gets
 *   its page (a helper reading /proc/PID/mem of the VMM on a mapping of a
 *   file of a FUSE file system, served here, that never answers a read).
 *   Since 4.17 cmdline itself is read only from anonymous memory, and a
 *   userfaultfd fault in that remote read fails at once instead of
 *   waiting, on Debian's 6.1; the mmap lock is what is left.
 *   Its command line is empty while it creates its VM (so that a name read
 *   then finds nothing), then restored. It prints {"type":"ready","pid":P}
 *   and reads stdin: "hang" sets the trap up and prints {"type":"hung"},
 *   "rewind" rewinds its kvmclock once (a kvmclock-jump) and prints
 *   {"type":"rewound"}, end of input exits. Whoever ends the test kills the
 *   FUSE server (pid in the ready line, "fuse"), which unblocks the rest,
 *   and unmounts DIR.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_HOLDS 64

static int rewinds = 8, window_ms = 1500, hold_max_ms = 10000, idle_ms = 3000;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void nap_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000};

	nanosleep(&ts, NULL);
}

static void die(const char *what)
{
	fprintf(stderr, "hostile: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* A field of /proc/PID/status, with no malloc (the clone child shares our
 * heap): "State:" gives the letter, "TracerPid:" the number. */
static long status_field(int pid, const char *field)
{
	char path[64], buf[4096], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strstr(buf, field);
	if (!p)
		return -1;
	p += strlen(field);
	while (*p == ' ' || *p == '\t')
		p++;
	return strcmp(field, "State:") ? strtol(p, NULL, 10) : *p;
}

/* ---- the accomplice: continues the VMM whenever it is stopped ---- */

static void accomplice(pid_t vmm)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	while (getppid() == vmm) {
		if (status_field(vmm, "State:") == 'T')
			kill(vmm, SIGCONT);
		nap_us(200);
	}
	_exit(0);
}

/* ---- the uninterruptible sleep ---- */

struct dsleep {
	pid_t vmm;
	bool seized;
	long long held_ms;
};

static char child_stack[64 * 1024] __attribute__((aligned(16)));

/* Runs while the VMM's thread waits in clone(CLONE_VFORK), in D. */
static int dsleep_child(void *arg)
{
	struct dsleep *d = arg;
	long long t0 = now_ms(), t;

	for (;;) {
		long tracer = status_field(d->vmm, "TracerPid:");

		t = now_ms() - t0;
		if (tracer > 0)
			d->seized = true;
		if (!d->seized && t >= 50)
			break;
		if (d->seized && tracer == 0)
			break; /* the corrector gave up */
		if (t >= hold_max_ms)
			break;
		nap_us(2000);
	}
	d->held_ms = d->seized ? now_ms() - t0 : 0;
	return 0;
}

static void dsleep(struct dsleep *d)
{
	pid_t c;

	d->seized = false;
	c = clone(dsleep_child, child_stack + sizeof(child_stack), CLONE_VM | CLONE_VFORK | SIGCHLD,
		  d);
	if (c < 0)
		die("clone");
	waitpid(c, NULL, __WALL);
}

/* ---- the VM ---- */

struct vm {
	int kvm, vm, vcpu;
	struct kvm_run *run;
};

/*
 * Real mode, at 0: enable kvmclock (MSR_KVM_SYSTEM_TIME_NEW, its PVTI at
 * 0x100), then hlt in a loop. Each KVM_RUN enters the guest once (KVM
 * updates its kvmclock there, where the kvm-tracepoints tier decides) and
 * comes back at the hlt.
 */
static const unsigned char guest_code[] = {
    0x66, 0xb9, 0x01, 0x4d, 0x56, 0x4b, /* mov ecx, 0x4b564d01 */
    0x66, 0xb8, 0x01, 0x01, 0x00, 0x00, /* mov eax, 0x101 */
    0x66, 0x31, 0xd2,			/* xor edx, edx */
    0x0f, 0x30,				/* wrmsr */
    0xf4,				/* hlt */
    0xeb, 0xfd,				/* jmp hlt */
};

static void vcpu_run(struct vm *v)
{
	do {
		if (ioctl(v->vcpu, KVM_RUN, 0) && errno != EINTR)
			die("KVM_RUN");
	} while (v->run->exit_reason != KVM_EXIT_HLT);
}

static void vm_create(struct vm *v)
{
	struct kvm_userspace_memory_region r = {.memory_size = 0x1000};
	struct kvm_regs regs = {.rip = 0, .rflags = 2};
	struct kvm_sregs s;
	unsigned char *mem;

	v->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (v->kvm < 0)
		die("/dev/kvm");
	v->vm = ioctl(v->kvm, KVM_CREATE_VM, 0);
	if (v->vm < 0)
		die("KVM_CREATE_VM");
	mem = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap");
	memcpy(mem, guest_code, sizeof(guest_code));
	r.userspace_addr = (unsigned long)mem;
	if (ioctl(v->vm, KVM_SET_USER_MEMORY_REGION, &r))
		die("KVM_SET_USER_MEMORY_REGION");
	v->vcpu = ioctl(v->vm, KVM_CREATE_VCPU, 0);
	if (v->vcpu < 0)
		die("KVM_CREATE_VCPU");
	if (ioctl(v->vcpu, KVM_GET_SREGS, &s))
		die("KVM_GET_SREGS");
	s.cs.base = 0;
	s.cs.selector = 0;
	if (ioctl(v->vcpu, KVM_SET_SREGS, &s) || ioctl(v->vcpu, KVM_SET_REGS, &regs))
		die("KVM_SET_REGS");
	v->run = mmap(NULL, ioctl(v->kvm, KVM_GET_VCPU_MMAP_SIZE, 0), PROT_READ | PROT_WRITE,
		      MAP_SHARED, v->vcpu, 0);
	if (v->run == MAP_FAILED)
		die("mmap kvm_run");
	vcpu_run(v); /* to the hlt: the VM runs, for hvguard */
}

static void rewind_clock(struct vm *v)
{
	struct kvm_clock_data clk = {0};

	if (ioctl(v->vm, KVM_GET_CLOCK, &clk))
		die("KVM_GET_CLOCK");
	nap_us(20000);
	clk.flags = 0;
	if (ioctl(v->vm, KVM_SET_CLOCK, &clk) && errno != EINTR)
		die("KVM_SET_CLOCK");
	vcpu_run(v); /* the guest would see it here */
}

static int unstoppable(void)
{
	long long held[MAX_HOLDS];
	struct dsleep d = {.vmm = getpid()};
	int nheld = 0;
	struct vm v;
	pid_t acc;

	acc = fork();
	if (acc < 0)
		die("fork");
	if (acc == 0)
		accomplice(d.vmm);
	vm_create(&v);
	printf("{\"type\":\"ready\",\"pid\":%d}\n", d.vmm);
	fflush(stdout);
	for (int i = 0; i < rewinds; i++) {
		long long t0;

		rewind_clock(&v);
		printf("{\"type\":\"rewind\",\"n\":%d}\n", i);
		fflush(stdout);
		for (t0 = now_ms(); now_ms() - t0 < window_ms;) {
			dsleep(&d);
			if (d.seized && nheld < MAX_HOLDS)
				held[nheld++] = d.held_ms;
			raise(SIGSTOP); /* an instant: the accomplice continues us */
		}
	}
	kill(acc, SIGKILL);
	waitpid(acc, NULL, 0);
	printf("{\"type\":\"done\",\"pid\":%d,\"seized_in_d\":%d,\"held_ms\":[", d.vmm, nheld);
	for (int i = 0; i < nheld; i++)
		printf("%s%lld", i ? "," : "", held[i]);
	printf("]}\n");
	fflush(stdout);
	nap_us(idle_ms * 1000L);
	return 0;
}

/* ---- cmdline-hang: a FUSE file system whose reads never answer ---- */

static char fuse_buf[1 << 20];

static void fuse_reply(int fd, const struct fuse_in_header *in, int error, const void *arg,
		       size_t len)
{
	struct fuse_out_header out = {
	    .len = sizeof(out) + len, .error = error, .unique = in->unique};
	struct iovec iov[2] = {{&out, sizeof(out)}, {(void *)arg, len}};

	if (writev(fd, iov, len ? 2 : 1) < 0 && errno != ENOENT)
		perror("hostile: fuse reply");
}

static void fuse_attr_of(uint64_t node, struct fuse_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = node;
	a->mode = node == 1 ? S_IFDIR | 0755 : S_IFREG | 0644;
	a->nlink = node == 1 ? 2 : 1;
	a->size = node == 1 ? 0 : 4096;
	a->blocks = node == 1 ? 0 : 8;
	a->blksize = 4096;
}

/* Serves DIR: one file "f" of 4096 bytes, whose reads are never answered.
 * Writes a byte to ping when the first read arrives. */
static void fuse_serve(int fd, int ping)
{
	for (;;) {
		ssize_t n = read(fd, fuse_buf, sizeof(fuse_buf));
		const struct fuse_in_header *in = (void *)fuse_buf;
		const void *arg = in + 1;

		if (n < 0 && (errno == EINTR || errno == ENOENT))
			continue;
		if (n < (ssize_t)sizeof(*in))
			_exit(0); /* unmounted, or aborted */
		switch (in->opcode) {
		case FUSE_INIT: {
			const struct fuse_init_in *ii = arg;
			struct fuse_init_out o = {.major = 7,
						  .minor = 31,
						  .max_readahead = ii->max_readahead,
						  .max_write = 4096,
						  .max_background = 16,
						  .congestion_threshold = 12};

			fuse_reply(fd, in, 0, &o, sizeof(o));
			break;
		}
		case FUSE_LOOKUP: {
			struct fuse_entry_out o = {
			    .nodeid = 2, .generation = 1, .entry_valid = 3600, .attr_valid = 3600};

			if (in->nodeid != 1 || strcmp(arg, "f")) {
				fuse_reply(fd, in, -ENOENT, NULL, 0);
				break;
			}
			fuse_attr_of(2, &o.attr);
			fuse_reply(fd, in, 0, &o, sizeof(o));
			break;
		}
		case FUSE_GETATTR: {
			struct fuse_attr_out o = {.attr_valid = 3600};

			fuse_attr_of(in->nodeid, &o.attr);
			fuse_reply(fd, in, 0, &o, sizeof(o));
			break;
		}
		case FUSE_OPEN:
		case FUSE_OPENDIR: {
			struct fuse_open_out o = {.fh = 1};

			fuse_reply(fd, in, 0, &o, sizeof(o));
			break;
		}
		case FUSE_READ:
			if (ping >= 0 && write(ping, "r", 1) == 1) {
				close(ping);
				ping = -1;
			}
			break; /* never answered */
		case FUSE_FORGET:
		case FUSE_BATCH_FORGET:
		case FUSE_INTERRUPT:
			break; /* no answer expected */
		case FUSE_FLUSH:
		case FUSE_RELEASE:
		case FUSE_RELEASEDIR:
			fuse_reply(fd, in, 0, NULL, 0);
			break;
		default:
			fuse_reply(fd, in, -ENOSYS, NULL, 0);
		}
	}
}

static pid_t fuse_start(const char *mnt, int ping)
{
	char opts[128];
	pid_t pid;
	int fd;

	fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		die("/dev/fuse");
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0", fd);
	if (mount("hostile", mnt, "fuse", MS_NOSUID | MS_NODEV, opts))
		die("mount fuse");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		fuse_serve(fd, ping);
		_exit(0);
	}
	close(fd);
	return pid;
}

/* Fields 48 and 49 of /proc/self/stat: where the kernel reads cmdline. */
static void arg_range(unsigned long *start, unsigned long *end)
{
	char buf[2048], *p;
	ssize_t n;
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC), i;

	n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		die("/proc/self/stat");
	buf[n] = '\0';
	p = strrchr(buf, ')');
	for (i = 2; p && i < 48; i++) /* p at the space before field i */
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p, " %lu %lu", start, end) != 2)
		die("arg_start");
}

extern char **environ;

static int writer_go[2];

/* Waits for the go, then wants the mmap lock for writing: blocks behind
 * the helper's read, and every later reader waits behind it. */
static void *lock_writer(void *arg)
{
	char c;

	(void)arg;
	if (read(writer_go[0], &c, 1) == 1)
		mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return NULL;
}

static void set_trap(const char *mnt, int ping_rd, pid_t self)
{
	char path[4096], page[64], pid_s[16], addr_s[32];
	char *argv[] = {"hostile", "mem-read", pid_s, addr_s, NULL};
	pid_t helper;
	void *map;
	int fd;

	snprintf(path, sizeof(path), "%s/f", mnt);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die(path);
	map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		die("mmap fuse file");
	/* Not fork(): that would make our pages copy-on-write, and our own
	 * next write would fault, which takes the lock we are about to jam. */
	snprintf(pid_s, sizeof(pid_s), "%d", self);
	snprintf(addr_s, sizeof(addr_s), "%lu", (unsigned long)map);
	if (posix_spawn(&helper, "/proc/self/exe", NULL, NULL, argv, environ))
		die("posix_spawn");
	if (read(ping_rd, page, 1) != 1) /* the helper's read is at the server */
		die("fuse read never came");
	if (write(writer_go[1], "w", 1) != 1)
		die("writer");
	nap_us(100000); /* the writer is queued: readers wait behind it */
}

static int cmdline_hang(const char *mnt)
{
	unsigned long arg_start, arg_end;
	char line[64];
	pthread_t writer;
	int ping[2];
	pid_t fuse, self = getpid();
	struct vm v;
	FILE *in = stdin;

	if (pipe(ping) || pipe(writer_go))
		die("pipe");
	fuse = fuse_start(mnt, ping[1]);
	close(ping[1]);
	arg_range(&arg_start, &arg_end);
	if (prctl(PR_SET_MM, PR_SET_MM_ARG_END, arg_start, 0, 0))
		die("PR_SET_MM_ARG_END (empty)");
	vm_create(&v);
	if (pthread_create(&writer, NULL, lock_writer, NULL))
		die("pthread_create");
	printf("{\"type\":\"ready\",\"pid\":%d,\"fuse\":%d}\n", self, fuse);
	fflush(stdout);
	while (fgets(line, sizeof(line), in)) {
		if (!strncmp(line, "hang", 4)) {
			if (prctl(PR_SET_MM, PR_SET_MM_ARG_END, arg_end, 0, 0))
				die("PR_SET_MM_ARG_END");
			/* Nothing below may fault a page in: that takes the lock. */
			if (mlockall(MCL_CURRENT))
				die("mlockall");
			set_trap(mnt, ping[0], self);
			printf("{\"type\":\"hung\"}\n");
		} else if (!strncmp(line, "rewind", 6)) {
			rewind_clock(&v);
			printf("{\"type\":\"rewound\"}\n");
		}
		fflush(stdout);
	}
	_exit(0); /* the writer thread is stuck in mmap(): no exit handlers */
}

/* The helper of cmdline-hang: reads 64 bytes of pid's memory at addr. */
static int mem_read(const char *pid, const char *addr)
{
	char path[64], page[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%s/mem", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pread(fd, page, sizeof(page), (off_t)strtoul(addr, NULL, 10)) < 0)
		perror("hostile: mem-read");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "mem-read"))
		return mem_read(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "cmdline-hang") && !strcmp(argv[2], "--mnt"))
		return cmdline_hang(argv[3]);
	if (argc < 2 || strcmp(argv[1], "unstoppable")) {
		fprintf(stderr, "usage: hostile unstoppable [--rewinds N] [--window-ms N] "
				"[--hold-max-ms N] [--idle-ms N]\n"
				"       hostile cmdline-hang --mnt DIR\n");
		return 2;
	}
	for (int i = 2; i + 1 < argc; i += 2) {
		int v = atoi(argv[i + 1]);

		if (!strcmp(argv[i], "--rewinds"))
			rewinds = v;
		else if (!strcmp(argv[i], "--window-ms"))
			window_ms = v;
		else if (!strcmp(argv[i], "--hold-max-ms"))
			hold_max_ms = v;
		else if (!strcmp(argv[i], "--idle-ms"))
			idle_ms = v;
	}
	return unstoppable();
}
