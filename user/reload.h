/* SPDX-License-Identifier: GPL-2.0 */
/*
 * SIGHUP's rules reload: the new file is parsed whole first; an invalid one
 * changes nothing and is reported with its FILE:LINE:COL. A valid one
 * replaces the rules between two events (the ring buffers stay: no event is
 * lost), with what cannot change without reloading the BPF programs kept
 * as it was and named in a warning.
 */
#ifndef HVGUARD_USER_RELOAD_H
#define HVGUARD_USER_RELOAD_H

#include "hvguard.h"

/* Each loaded family applies what it can (hv_family.reload). Returns 0
 * when the new rules are in force, -1 when the old ones stay. */
int hv_reload_rules(struct hv_ctx *ctx);

#endif
