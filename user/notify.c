// SPDX-License-Identifier: GPL-2.0
/*
 * sd_notify(3) for hvguard.service (Type=notify): systemd holds `systemctl
 * start`, and units ordered After=hvguard.service, until READY=1, which comes
 * only once every BPF program is attached, so "started" means "watching".
 */
#include <stdio.h>
#include <stdlib.h>
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
