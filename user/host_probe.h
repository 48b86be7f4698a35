/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What this host offers hvguard, in the spirit of `bpftool feature probe`:
 * BTF, the tracepoints each clock hook tier needs, BPF LSM, and whether a
 * daemon's programs are attached now (seen through the kernel's BPF links,
 * not through pinned maps, which outlive a daemon).
 */
#ifndef HVGUARD_USER_HOST_PROBE_H
#define HVGUARD_USER_HOST_PROBE_H

#include <stdio.h>

struct json_object;
struct hv_privmount;

/* The "host" object of `hvguard audit --json` (README, docs/audit.schema.json).
 * Mounts tracefs and securityfs where missing, through m. */
struct json_object *hv_host_probe(struct hv_privmount *m);

/* The same for a person, a few lines. */
void hv_host_print(FILE *f, struct json_object *host);

#endif
