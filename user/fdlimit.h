/* SPDX-License-Identifier: GPL-2.0 */
/* The daemon's open-file budget (RLIMIT_NOFILE). */
#ifndef HVGUARD_USER_FDLIMIT_H
#define HVGUARD_USER_FDLIMIT_H

struct hv_ctx;

/* The soft limit hvguard run raises itself to (or to the hard limit,
 * when lower); below HV_NOFILE_MIN it warns. */
#define HV_NOFILE_WANT 65536
#define HV_NOFILE_MIN  4096

/* Raises the soft limit at start; says so, and warns when it cannot. */
void hv_fdlimit_raise(struct hv_ctx *ctx);
/* The soft limit hvguard was started with, 0 if it never raised it. */
unsigned long hv_fdlimit_started_with(void);

#endif
