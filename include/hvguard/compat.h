/* SPDX-License-Identifier: GPL-2.0 */
/* Lets the shared headers compile both in BPF objects (where vmlinux.h has
 * already defined the kernel types) and in userspace (unit tests, daemon). */
#ifndef HVGUARD_COMPAT_H
#define HVGUARD_COMPAT_H

#ifndef __bpf__
#include <linux/types.h>
#include <stdbool.h>
#include <stddef.h>
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#endif

#endif
