/* SPDX-License-Identifier: GPL-2.0 */
#ifndef HVGUARD_USER_KALLSYMS_H
#define HVGUARD_USER_KALLSYMS_H
#include <stdint.h>

/* Addresses of the named text symbols from /proc/kallsyms; 0 where absent.
 * Returns how many were found, or -errno. Addresses read as 0 when the
 * caller lacks CAP_SYSLOG (kptr_restrict): that is reported as -EPERM. */
int hv_kallsyms_lookup(const char *const *names, uint64_t *addrs, int count);
#endif
