/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Telling systemd (Type=notify) how the daemon is doing. Outside systemd
 * ($NOTIFY_SOCKET unset) every call is a no-op.
 */
#ifndef HVGUARD_USER_NOTIFY_H
#define HVGUARD_USER_NOTIFY_H

#include <stdbool.h>

/* READY=1 once every program is attached, with a STATUS= naming the rules
 * in use; also arranges for STOPPING=1 to be sent when the daemon exits. */
void hv_notify_ready(const char *rules, bool correct);
/* Around a rules reload: RELOADING=1, then READY=1 with the new STATUS=. */
void hv_notify_reloading(void);
void hv_notify_reloaded(const char *rules, bool correct);

#endif
