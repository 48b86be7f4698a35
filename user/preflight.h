/* SPDX-License-Identifier: GPL-2.0 */
/* What must hold before BPF programs can be loaded, each failure with one
 * clear line and its own exit code (enum hv_exit). */
#ifndef HVGUARD_USER_PREFLIGHT_H
#define HVGUARD_USER_PREFLIGHT_H

#include <stdbool.h>

#define HV_PIN_ROOT "/sys/fs/bpf/hvguard"

/* Returns HV_EXIT_OK or the exit code to leave with (message printed). */
int hv_preflight(bool need_ptrace, bool want_bpffs);
bool hv_has_cap(int cap);
int hv_preflight_audit(void);

#endif
