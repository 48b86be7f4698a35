/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The pin directory: where the clock family's state outlives the daemon.
 * Opened once, checked on the open fd, and from then on reached only
 * through that fd ("/proc/self/fd/N", what libbpf is given), so a later
 * rename or symlink of the path changes nothing.
 */
#ifndef HVGUARD_USER_PINDIR_H
#define HVGUARD_USER_PINDIR_H

#include <stdbool.h>

#include "hvguard.h"

struct bpf_object;

struct hv_pindir {
	int fd;		  /* O_DIRECTORY|O_NOFOLLOW, -1 when not open */
	const char *name; /* as the operator gave it, for messages */
	char at[32];	  /* "/proc/self/fd/N" */
};

/* The name of the pinned map holding the layout version. */
#define HV_LAYOUT_MAP "hv_layout"

/*
 * For `hvguard run`: opens DIR (creating it and missing components 0700),
 * refuses it unless root owns it and no one else may write to it, takes
 * its lock (flock on the directory: one daemon per pin directory), drops
 * hvguard's pins when reset, and checks or records the layout version.
 * Returns HV_EXIT_OK or the exit code to leave with (message printed).
 */
int hv_pindir_take(struct hv_pindir *pd, const char *dir, enum hv_reset reset);

/*
 * For `hvguard audit`: the same checks without creating, locking or
 * recording anything. 0 when the pinned state may be read; -1 when there
 * is none (absent directory, or nothing pinned), or it must not be read
 * (said with hv_warn).
 */
int hv_pindir_peek(struct hv_pindir *pd, const char *dir);

/* Before libbpf reuses a pinned map of obj (pinned under at, the
 * directory's "/proc/self/fd/N"; dir names it in messages): does it fit
 * what obj wants? Refuses (hv_err) the first that does not. 0 or -1. */
int hv_pindir_check_maps(const char *dir, const char *at, struct bpf_object *obj);

void hv_pindir_close(struct hv_pindir *pd);

#endif
