/* SPDX-License-Identifier: GPL-2.0 */
/* Between the files of the Xen family: xen.c and xen_names.c. */
#ifndef HVGUARD_USER_XEN_USER_H
#define HVGUARD_USER_XEN_USER_H

#include "hvguard/xen.h"

/* Names for people (xen_names.c). */
const char *hv_xen_op_name(__u8 op);
const char *hv_xen_dev_name(__u8 dev);
const char *hv_xen_unchecked_name(__u8 why);
const char *hv_xen_grant_op_name(__u8 op);

/* Adds a frontend domain to the allowed set (an id past the real domains'
 * is ignored). */
void hv_xen_allow_domid(struct hv_xen_config *cfg, __u32 domid);

#endif
