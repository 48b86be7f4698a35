/* SPDX-License-Identifier: GPL-2.0 */
/* Between the clock family (clock.c) and its corrector (correct.c). */
#ifndef HVGUARD_USER_CLOCK_USER_H
#define HVGUARD_USER_CLOCK_USER_H

#include <stddef.h>

#include "hvguard.h"
#include "hvguard/clock.h"

struct clock_bpf;

void hv_format_ns(char *buf, size_t len, long long ns);

int hv_correct_init(struct hv_ctx *ctx, struct clock_bpf *skel);
/* The BPF side stopped the VMM at the offending ioctl (e->frozen): repair
 * the clock from inside it, then let it go. */
void hv_correct_frozen(struct hv_ctx *ctx, const struct clock_event *e);
void hv_correct_poll(struct hv_ctx *ctx);
void hv_correct_fini(struct hv_ctx *ctx);

#endif
