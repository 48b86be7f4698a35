/* SPDX-License-Identifier: GPL-2.0 */
/* Numbers as a person on call reads them, for messages and text output. */
#ifndef HVGUARD_USER_FORMAT_H
#define HVGUARD_USER_FORMAT_H

#include <stddef.h>

/* Prints "-1.000 s", "150.2 us", "12 ns": sizes a person reads at a glance. */
void hv_format_ns(char *buf, size_t len, long long ns);

#endif
