/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Between the files of the Xen family: xen.c (the family's interface),
 * xen_backend.c (which processes are backends), xen_config.c (the BPF
 * configuration, the deny mechanism and the hook tier), xen_events.c (the
 * ring's records), xen_leaks.c (grant leaks) and xen_names.c (names for
 * people).
 */
#ifndef HVGUARD_USER_XEN_USER_H
#define HVGUARD_USER_XEN_USER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hvguard.h"
#include "hvguard/xen.h"
#include "json_util.h"

struct xen_bpf;
struct hv_rules;

/* How "deny" is carried out on this host: decided once at load, best first. */
enum hv_xen_enforcement { ENF_NONE, ENF_LSM_SLEEPABLE, ENF_LSM, ENF_FMOD_RET, ENF_KILL_FALLBACK };

/* The family's state, from load to unload. */
struct hv_xen_state {
	enum hv_xen_tier tier;
	enum hv_xen_enforcement deny;
	bool want_deny;
	char deny_why[400];
	uint64_t grant_ops[HV_XEN_GRANT_OP_COUNT];
	uint64_t backends_seen;
	uint64_t leaks;
	double next_leak_scan, next_resolve;
};

extern struct xen_bpf *hv_xen_skel; /* NULL while not loaded */
extern struct hv_xen_state hv_xen_st;

/* Names for people (xen_names.c). */
const char *hv_xen_op_name(__u8 op);
const char *hv_xen_dev_name(__u8 dev);
const char *hv_xen_unchecked_name(__u8 why);
const char *hv_xen_grant_op_name(__u8 op);
const char *hv_xen_tier_name(enum hv_xen_tier tier);
const char *hv_xen_deny_name(enum hv_xen_enforcement deny);

/* A domain id, null when there is none. */
static inline void hv_xen_json_add_domid(struct json_object *o, const char *key, __s32 domid)
{
	hv_json_add_int_or_null(o, key, domid != HV_XEN_DOMID_NONE, domid);
}

/* Which processes are backends (xen_backend.c). */
int hv_xen_match_process(const struct hv_rules *r, int pid);
void hv_xen_emit_backend(struct hv_ctx *ctx, int pid, int match, const char *how, int parent);
void hv_xen_designate(struct hv_ctx *ctx, int pid, int match, const char *how);
void hv_xen_scan_processes(struct hv_ctx *ctx);
int hv_xen_configure_matches(struct hv_ctx *ctx);
/* A new backend list needs a restart: the one in force stays (reload). */
void hv_xen_keep_backends(struct hv_ctx *ctx, struct hv_rules *next, struct json_object *restart);

/* Configuration, deny mechanism and hook tier (xen_config.c). */
void hv_xen_allow_domid(struct hv_xen_config *cfg, __u32 domid);
void hv_xen_resolve_devices(struct hv_xen_config *cfg, bool quiet);
bool hv_xen_rules_want_deny(const struct hv_rules *r);
int hv_xen_load_best_tier(struct hv_ctx *ctx);
void hv_xen_reload(struct hv_ctx *ctx, struct hv_rules *next, struct json_object *restart);

/* The ring's records (xen_events.c): a ring_buffer_sample_fn. */
int hv_xen_ring_event(void *arg, void *data, size_t size);

/* Grant leaks (xen_leaks.c). */
void hv_xen_handle_backend_exit(struct hv_ctx *ctx, const struct hv_xen_event *e);
void hv_xen_scan_reserved_leaks(struct hv_ctx *ctx);

#endif
