/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Work the event loop hands to a thread of its own so that a VMM cannot
 * hold the loop: a detached thread that takes none of the daemon's
 * signals, and a deadline to wait for it on a CLOCK_MONOTONIC condition.
 */
#ifndef HVGUARD_USER_WORKER_H
#define HVGUARD_USER_WORKER_H

#include <pthread.h>
#include <stddef.h>
#include <time.h>

/* fn(arg) in a detached thread with every signal blocked; stack 0: the
 * default size. 0 or a negative errno. */
int hv_worker_start(void *(*fn)(void *), void *arg, size_t stack);
/* A condition whose timed waits run on CLOCK_MONOTONIC. */
void hv_worker_cond_init(pthread_cond_t *cond);
/* The CLOCK_MONOTONIC time ms from now, for pthread_cond_timedwait(). */
struct timespec hv_worker_deadline(int ms);

#endif
