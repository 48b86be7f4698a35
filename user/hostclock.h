/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The host's clocks, read together: what a clock sample pairs (the host
 * TSC with CLOCK_REALTIME, the kvmclock base with either) must come from
 * one moment, or a preemption between two reads shows as that much warp.
 */
#ifndef HVGUARD_USER_HOSTCLOCK_H
#define HVGUARD_USER_HOSTCLOCK_H

#include <stdint.h>

struct hv_host_clocks {
	int64_t boot;	 /* CLOCK_BOOTTIME */
	int64_t real;	 /* CLOCK_REALTIME */
	int64_t tai;	 /* CLOCK_TAI */
	int64_t base;	 /* KVM's kvmclock base: CLOCK_MONOTONIC_RAW + the boot offset */
	uint64_t tsc;	 /* the host TSC */
	int64_t span_ns; /* how long the reading took */
};

/* The quickest of a few readings (the first one under 20 us). */
void hv_host_clocks_read(struct hv_host_clocks *c);

#endif
