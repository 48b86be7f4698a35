// SPDX-License-Identifier: GPL-2.0
/*
 * What a real Linux guest sees of its own clocks (the realguest stage's
 * L2 guest; static, started by tests/realguest/init).
 *
 * It calibrates its TSC against CLOCK_MONOTONIC (kvm-clock here) once, then
 * samples every PERIOD ms:
 *   skew = CLOCK_MONOTONIC - the TSC's time        (kvm-clock against TSC)
 *   off  = CLOCK_REALTIME - the host's realtime    (through /dev/ptp0, KVM's
 *          clock-pairing hypercall: ptp_kvm)
 * Both are constant while the VM runs as it should. Across a pause that
 * QEMU resumes with the kvm-clock it saved, skew and off fall by the pause;
 * a resume that also rewrites the TSC to its saved value leaves skew and
 * moves off only. Printed on the console (the serial port the host reads):
 *   RG ready tsc_hz=N calib_ms=N ptp=precise|sys-offset|none
 *   RG s seq=N ev=0|1 mono_ms=N skew_ns=N off_ns=N dskew_ns=N doff_ns=N
 *        gap_tsc_ms=N gap_mono_ms=N      (off and doff: "none" without ptp)
 * deltas against the sample before it (in this guest's memory: after a
 * loadvm, the last sample before the snapshot). ev=1 marks a sample where
 * something happened: a delta past THRESH_NS, or more than GAP_MS of TSC
 * or kvm-clock time since the previous sample. Other samples are printed
 * once every HEARTBEAT samples. The last sample line printed before and
 * after a pause carry everything the host needs.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/ptp_clock.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define PERIOD_MS    100
#define HEARTBEAT    20
#define THRESH_NS    100000
#define GAP_MS	     1000
#define CALIB_MS     10000
#define PTP_NSAMPLES 5

static int ptp_fd = -1;
static const char *ptp_mode = "none";

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

static int64_t ptp_ns(const struct ptp_clock_time *t)
{
	return t->sec * 1000000000 + t->nsec;
}

/* One (TSC, CLOCK_MONOTONIC) pair: the tightest of a few reads. */
static void tsc_mono(uint64_t *tsc, int64_t *mono)
{
	uint64_t best = UINT64_MAX;

	for (int i = 0; i < 5; i++) {
		struct timespec t;
		uint64_t a = rdtsc();

		clock_gettime(CLOCK_MONOTONIC, &t);
		uint64_t b = rdtsc();

		if (b - a < best) {
			best = b - a;
			*tsc = a + (b - a) / 2;
			*mono = ts_ns(&t);
		}
	}
}

/* CLOCK_REALTIME - the host's realtime, in ns; 0 with ok = 0 if unknown. */
static int64_t realtime_offset(int *ok)
{
	*ok = 0;
	if (ptp_fd < 0)
		return 0;
	if (strcmp(ptp_mode, "precise") == 0) {
		struct ptp_sys_offset_precise p;

		memset(&p, 0, sizeof(p));
		if (ioctl(ptp_fd, PTP_SYS_OFFSET_PRECISE, &p) == 0) {
			*ok = 1;
			return ptp_ns(&p.sys_realtime) - ptp_ns(&p.device);
		}
		return 0;
	}
	struct ptp_sys_offset s;
	int64_t best = INT64_MAX, off = 0;

	memset(&s, 0, sizeof(s));
	s.n_samples = PTP_NSAMPLES;
	if (ioctl(ptp_fd, PTP_SYS_OFFSET, &s) != 0)
		return 0;
	for (int i = 0; i < PTP_NSAMPLES; i++) {
		int64_t a = ptp_ns(&s.ts[2 * i]), d = ptp_ns(&s.ts[2 * i + 1]);
		int64_t b = ptp_ns(&s.ts[2 * i + 2]);

		if (b - a < best) {
			best = b - a;
			off = a + (b - a) / 2 - d;
		}
	}
	*ok = 1;
	return off;
}

static void ptp_open(void)
{
	struct ptp_sys_offset_precise p;

	ptp_fd = open("/dev/ptp0", O_RDWR);
	if (ptp_fd < 0) {
		printf("RG ptp-missing errno=%d\n", errno);
		return;
	}
	memset(&p, 0, sizeof(p));
	if (ioctl(ptp_fd, PTP_SYS_OFFSET_PRECISE, &p) == 0)
		ptp_mode = "precise";
	else
		ptp_mode = "sys-offset";
}

int main(void)
{
	uint64_t tsc0, tsc1, tsc, prev_tsc;
	int64_t mono0, mono1, mono, prev_mono, prev_skew, prev_off;
	long double hz;
	int ok, prev_ok;

	setvbuf(stdout, NULL, _IOLBF, 0);
	ptp_open();
	tsc_mono(&tsc0, &mono0);
	usleep(CALIB_MS * 1000);
	tsc_mono(&tsc1, &mono1);
	hz = (long double)(tsc1 - tsc0) * 1e9L / (long double)(mono1 - mono0);
	printf("RG ready tsc_hz=%.0Lf calib_ms=%" PRId64 " ptp=%s\n", hz, (mono1 - mono0) / 1000000,
	       ptp_mode);

/* The TSC's time since the calibration's start, in ns. */
#define TSC_NS(t) ((int64_t)((long double)(int64_t)((t)-tsc0) * 1e9L / hz))
	prev_tsc = tsc1;
	prev_mono = mono1;
	prev_skew = mono1 - mono0 - TSC_NS(tsc1);
	prev_off = realtime_offset(&prev_ok);
	for (uint64_t seq = 1;; seq++) {
		usleep(PERIOD_MS * 1000);
		tsc_mono(&tsc, &mono);
		int64_t skew = mono - mono0 - TSC_NS(tsc);
		int64_t off = realtime_offset(&ok);
		int64_t dskew = skew - prev_skew;
		int64_t doff = ok && prev_ok ? off - prev_off : 0;
		int64_t gap_tsc = TSC_NS(tsc) - TSC_NS(prev_tsc), gap_mono = mono - prev_mono;
		int ev = llabs(dskew) > THRESH_NS || llabs(doff) > THRESH_NS ||
			 gap_tsc > GAP_MS * 1000000LL || gap_mono > GAP_MS * 1000000LL;

		if (ev || seq % HEARTBEAT == 0) {
			char o[32] = "none", d[32] = "none";

			if (ok)
				snprintf(o, sizeof(o), "%" PRId64, off);
			if (ok && prev_ok)
				snprintf(d, sizeof(d), "%" PRId64, doff);
			printf("RG s seq=%" PRIu64 " ev=%d mono_ms=%" PRId64 " skew_ns=%" PRId64
			       " off_ns=%s dskew_ns=%" PRId64 " doff_ns=%s gap_tsc_ms=%" PRId64
			       " gap_mono_ms=%" PRId64 "\n",
			       seq, ev, mono / 1000000, skew, o, dskew, d, gap_tsc / 1000000,
			       gap_mono / 1000000);
		}
		prev_tsc = tsc;
		prev_mono = mono;
		prev_skew = skew;
		prev_off = off;
		prev_ok = ok;
	}
}
