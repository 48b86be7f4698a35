// SPDX-License-Identifier: GPL-2.0
/*
 * sd_notify(3) for hvguard.service (Type=notify): systemd holds `systemctl
 * start`, and units ordered After=hvguard.service, until READY=1, which comes
 * only once every BPF program is attached, so "started" means "watching".
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <systemd/sd-daemon.h>

#include "notify.h"

static void notify_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=stopped");
}

void hv_notify_ready(const char *rules, bool correct)
{
	static bool registered;
	char msg[512];

	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=watching (rules: %s%s)",
		 rules ? rules : "built-in", correct ? ", correcting" : "");
	/* Best effort: without $NOTIFY_SOCKET this returns 0 and sends nothing. */
	sd_notify(0, msg);
	/* The summary is written and the programs detached by then; the
	 * process exits right after, so systemd sees deactivating, then dead. */
	if (!registered) {
		registered = true;
		atexit(notify_stopping);
	}
}

/* SIGHUP (ExecReload= sends it): RELOADING=1 with the monotonic time, as
 * Type=notify-reload wants it, then READY=1 once the new rules are in force. */
void hv_notify_reloading(void)
{
	struct timespec ts;
	char msg[96];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ULL + ts.tv_nsec / 1000);
	sd_notify(0, msg);
}

void hv_notify_reloaded(const char *rules, bool correct)
{
	hv_notify_ready(rules, correct);
}
