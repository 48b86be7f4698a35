// SPDX-License-Identifier: GPL-2.0
/*
 * The host clocks of one sample are read together (user/hostclock.c),
 * against a thread that competes for the reader's CPU: the scheduler then
 * preempts the reader every few milliseconds, sometimes between two of its
 * reads. A reading that paired clocks across a preemption would pair them
 * milliseconds apart; hvguard would count that as a guest's clock warp.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <cmocka.h>

#include "hostclock.h"
#include "hvguard.h"

#define RUN_NS	     (2 * 1000000000ll) /* long enough for hundreds of preemptions */
#define PAIRED_NS    100000		/* what a reading may pair apart, at worst */
#define EST_NS	     1000		/* the offset's own error, as estimated */
#define PREEMPTED_NS 500000		/* a plain pair this far apart was preempted */

static atomic_bool stop;

static void *spin(void *arg)
{
	(void)arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed))
		;
	return NULL;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* CLOCK_REALTIME - CLOCK_BOOTTIME, as the median of quick plain pairs. */
static int64_t real_minus_boot(void)
{
	int64_t d[101];

	for (int i = 0; i < 101; i++) {
		int64_t boot = (int64_t)hv_now_ns(CLOCK_BOOTTIME);

		d[i] = (int64_t)hv_now_ns(CLOCK_REALTIME) - boot;
	}
	qsort(d, 101, sizeof(d[0]), cmp64);
	return d[50];
}

/* Both threads on the reader's CPU, so that they take turns on it. */
static void share_cpu(pthread_t *t)
{
	cpu_set_t one;

	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);
	atomic_store(&stop, false);
	assert_int_equal(pthread_create(t, NULL, spin, NULL), 0);
}

static void test_readings_stay_paired_under_preemption(void **state)
{
	int64_t offset = real_minus_boot(), worst = 0, end;
	long readings = 0, preempted = 0, beyond_span = 0;
	pthread_t t;

	(void)state;
	share_cpu(&t);
	end = (int64_t)hv_now_ns(CLOCK_MONOTONIC) + RUN_NS;
	while ((int64_t)hv_now_ns(CLOCK_MONOTONIC) < end) {
		struct hv_host_clocks c;
		int64_t boot = (int64_t)hv_now_ns(CLOCK_BOOTTIME);
		int64_t err;

		/* The plain pair beside it shows the competitor preempts. */
		preempted += (int64_t)hv_now_ns(CLOCK_REALTIME) - boot - offset > PREEMPTED_NS;
		hv_host_clocks_read(&c);
		err = c.real - c.boot - offset;
		err = err < 0 ? -err : err;
		worst = err > worst ? err : worst;
		beyond_span += err > c.span_ns + EST_NS;
		readings++;
	}
	atomic_store(&stop, true);
	pthread_join(t, NULL);
	print_message("# %ld readings, %ld plain pairs preempted, worst pairing %lld ns\n",
		      readings, preempted, (long long)worst);
	/* Without a competitor at work the test would prove nothing. */
	assert_true(preempted > 0);
	/* A reading is never further apart than it says, and the quickest
	 * of its tries is never one that was preempted. */
	assert_int_equal(beyond_span, 0);
	assert_true(worst <= PAIRED_NS);
}

static void test_reading_says_its_span(void **state)
{
	struct hv_host_clocks c;
	int64_t before = (int64_t)hv_now_ns(CLOCK_MONOTONIC_RAW), after;

	(void)state;
	hv_host_clocks_read(&c);
	after = (int64_t)hv_now_ns(CLOCK_MONOTONIC_RAW);
	assert_true(c.span_ns >= 0);
	assert_true(c.span_ns <= after - before);
	assert_true(c.base > 0 && c.real > 0 && c.tai >= c.real && c.tsc > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reading_says_its_span),
	    cmocka_unit_test(test_readings_stay_paired_under_preemption),
	};

	return cmocka_run_group_tests_name("hostclock", tests, NULL, NULL);
}
