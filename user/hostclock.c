// SPDX-License-Identifier: GPL-2.0
/* The host's clocks, read together (hostclock.h). */
#include <x86intrin.h>

#include "hostclock.h"
#include "hvguard.h"

#define READ_TRIES 8	 /* readings per sample, at most */
#define TIGHT_NS   20000 /* a reading this quick is taken at once */

static int64_t ts(clockid_t id)
{
	return (int64_t)hv_now_ns(id);
}

/* One reading of every clock, timed from its first paired read. The boot
 * offset (boot - mono) does not move with a preemption between them. */
static void read_once(struct hv_host_clocks *c)
{
	int64_t mono = ts(CLOCK_MONOTONIC), raw = ts(CLOCK_MONOTONIC_RAW);

	c->boot = ts(CLOCK_BOOTTIME);
	c->tsc = __rdtsc();
	c->real = ts(CLOCK_REALTIME);
	c->tai = ts(CLOCK_TAI);
	c->base = raw + (c->boot - mono);
	c->span_ns = ts(CLOCK_MONOTONIC_RAW) - raw;
}

void hv_host_clocks_read(struct hv_host_clocks *c)
{
	struct hv_host_clocks one;

	c->span_ns = INT64_MAX;
	for (int i = 0; i < READ_TRIES && c->span_ns > TIGHT_NS; i++) {
		read_once(&one);
		if (one.span_ns < c->span_ns)
			*c = one;
	}
}
