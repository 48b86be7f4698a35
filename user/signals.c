// SPDX-License-Identifier: GPL-2.0
/*
 * Signals as data: blocked, then read from a signalfd by the event loop.
 */
#include <errno.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "signals.h"

static sigset_t handled;

int hv_signals_block(void)
{
	sigemptyset(&handled);
	sigaddset(&handled, SIGINT);
	sigaddset(&handled, SIGTERM);
	sigaddset(&handled, SIGHUP);
	sigaddset(&handled, SIGUSR1);
	sigaddset(&handled, SIGCHLD);
	signal(SIGUSR2, SIG_IGN); /* reserved; documented as ignored */
	signal(SIGPIPE, SIG_IGN); /* a gone reader of stdout or of a hook's stdin */
	if (sigprocmask(SIG_BLOCK, &handled, NULL))
		return -errno;
	return 0;
}

int hv_signals_fd(void)
{
	int fd = signalfd(-1, &handled, SFD_NONBLOCK | SFD_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

unsigned hv_signals_take(int fd)
{
	struct signalfd_siginfo si;
	unsigned bits = 0;

	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGINT:
		case SIGTERM:
			bits |= HV_SIG_STOP;
			break;
		case SIGHUP:
			bits |= HV_SIG_HUP;
			break;
		case SIGUSR1:
			bits |= HV_SIG_STATE;
			break;
		case SIGCHLD:
			bits |= HV_SIG_CHILD;
			break;
		}
	}
	return bits;
}
