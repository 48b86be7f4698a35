/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The daemon's signals, read synchronously from a signalfd in the event
 * loop: no work is ever done in a handler. SIGINT/SIGTERM stop, SIGHUP
 * reopens --output and reloads the rules, SIGUSR1 dumps the state, SIGCHLD
 * reaps --exec hooks; SIGUSR2 and SIGPIPE are ignored.
 */
#ifndef HVGUARD_USER_SIGNALS_H
#define HVGUARD_USER_SIGNALS_H

enum {
	HV_SIG_STOP = 1 << 0,  /* SIGINT, SIGTERM */
	HV_SIG_HUP = 1 << 1,   /* SIGHUP */
	HV_SIG_STATE = 1 << 2, /* SIGUSR1 */
	HV_SIG_CHILD = 1 << 3, /* SIGCHLD */
};

/* Blocks the signals above in the calling thread, before any other thread
 * exists (threads inherit the mask: a signal must never find one that does
 * not block it), and ignores SIGUSR2 and SIGPIPE. Returns 0 or -errno. */
int hv_signals_block(void);
/* The signalfd (non-blocking) for the blocked signals, or -errno. */
int hv_signals_fd(void);
/* The HV_SIG_* bits of the signals pending on fd; 0 when none. */
unsigned hv_signals_take(int fd);

#endif
