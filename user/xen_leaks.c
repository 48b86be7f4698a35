// SPDX-License-Identifier: GPL-2.0
/*
 * The Xen family's grant leaks (rule grant-leak, decided here, not by BPF):
 * reservations never mapped for longer than grant_leak_after, found by a
 * periodic scan of xen_grants, and what a backend still held at its exit.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <stdlib.h>
#include <time.h>

#include "hvguard/xen.h" /* before the skeleton, which uses its types */
#include "xen.skel.h"
#include "rules.h"
#include "xen_user.h"

static void leak_alert(struct hv_ctx *ctx, int pid, const char *comm, const char *why,
		       const struct hv_xen_grant *g, uint64_t index, int n_more)
{
	struct hv_alert a = {0};
	struct json_object *f = json_object_new_object();
	const struct hv_rule *rule = &ctx->rules->rule[HV_RULE_GRANT_LEAK];
	struct json_object *refs = json_object_new_array();

	json_object_array_add(refs, json_object_new_int64(g->first_ref));
	hv_json_add_str(f, "ioctl", "IOCTL_GNTDEV_MAP_GRANT_REF");
	hv_xen_json_add_domid(f, "domid", g->domid);
	hv_json_add_int(f, "pages", g->count);
	json_object_object_add(f, "refs", refs);
	hv_json_add_uint(f, "index", index);
	hv_json_add_str(f, "leak", why);
	hv_json_add_int(f, "other_leaks", n_more);
	hv_json_add_str(f, "enforcement", "none");
	a.rule = hv_rule_table[HV_RULE_GRANT_LEAK].id;
	a.severity = rule->severity;
	a.action = rule->action;
	a.pid = pid;
	a.tid = pid;
	a.comm = comm;
	a.vm = -1;
	a.vcpu = -1;
	a.ts_ns = hv_now_ns(CLOCK_BOOTTIME);
	a.fields = f;
	snprintf(a.message, sizeof(a.message),
		 "backend %s[%d]: grant ref %u of domain %d (%u page(s), index %llu) %s%s; the "
		 "frontend cannot reuse it until released",
		 comm, pid, g->first_ref, g->domid, g->count, (unsigned long long)index, why,
		 n_more ? " (and more, see other_leaks)" : "");
	hv_xen_st.leaks++;
	hv_emit_alert(ctx, &a);
}

static const char *leak_why(const struct hv_xen_grant *g)
{
	return g->state == HV_XEN_GRANT_MAPPED	   ? "was still mapped at exit"
	       : g->state == HV_XEN_GRANT_RESERVED ? "was reserved and never mapped"
						   : "was never released (no UNMAP_GRANT_REF)";
}

/* The "xen-backend-exit" record: the backend's final counts. */
static void emit_backend_exit(struct hv_ctx *ctx, const struct hv_xen_event *e, const char *comm,
			      int leaks)
{
	struct json_object *o = json_object_new_object();

	hv_json_add_str(o, "type", "xen-backend-exit");
	hv_json_add_int(o, "pid", e->pid);
	hv_json_add_str(o, "comm", comm);
	for (int op = 0; op < HV_XEN_GRANT_OP_COUNT; op++)
		hv_json_add_uint(o, hv_xen_grant_op_name(op), e->backend.ops[op]);
	hv_json_add_int(o, "reserved", e->backend.reserved);
	hv_json_add_int(o, "mapped", e->backend.mapped);
	hv_json_add_uint(o, "violations", e->backend.violations);
	hv_json_add_int(o, "leaks", leaks);
	hv_emit_json(ctx, o);
}

/* At exit: what the backend still held is a leak (the kernel cleans up after
 * it, but a backend that forgets grants starves its frontend while it lives). */
void hv_xen_handle_backend_exit(struct hv_ctx *ctx, const struct hv_xen_event *e)
{
	int fd = bpf_map__fd(hv_xen_skel->maps.xen_grants);
	struct hv_xen_grant_key key, *prev = NULL, *mine = NULL, *grown;
	struct hv_xen_grant g, first = {0};
	uint64_t first_index = 0;
	size_t n = 0, cap = 0;
	char comm[HV_XEN_COMM_LEN + 1];
	int leaks = 0;

	snprintf(comm, sizeof(comm), "%s", e->comm);
	/* Walk once, collect this process's keys, delete after the walk. */
	while (!bpf_map_get_next_key(fd, prev, &key)) {
		prev = &key;
		if (key.tgid != e->pid || bpf_map_lookup_elem(fd, &key, &g))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			grown = realloc(mine, cap * sizeof(*mine));
			if (!grown)
				break;
			mine = grown;
		}
		mine[n++] = key;
		if (g.leak_reported || leaks++)
			continue;
		first = g;
		first_index = key.index;
	}
	for (size_t i = 0; i < n; i++)
		bpf_map_delete_elem(fd, &mine[i]);
	free(mine);
	if (leaks && ctx->rules->rule[HV_RULE_GRANT_LEAK].enabled)
		leak_alert(ctx, e->pid, comm, leak_why(&first), &first, first_index, leaks - 1);
	emit_backend_exit(ctx, e, comm, leaks);
}

/* Reservations never mapped for longer than grant_leak_after: raised once. */
void hv_xen_scan_reserved_leaks(struct hv_ctx *ctx)
{
	int fd = bpf_map__fd(hv_xen_skel->maps.xen_grants);
	struct hv_xen_grant_key key, *prev = NULL;
	uint64_t now = hv_now_ns(CLOCK_BOOTTIME), after = ctx->rules->grant_leak_after_ns;
	struct hv_xen_grant g;
	char comm[64], why[96];

	if (!ctx->rules->rule[HV_RULE_GRANT_LEAK].enabled || !after)
		return;
	while (!bpf_map_get_next_key(fd, prev, &key)) {
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &g) || g.leak_reported ||
		    g.state != HV_XEN_GRANT_RESERVED || now - g.reserved_ns < after)
			continue;
		g.leak_reported = 1;
		bpf_map_update_elem(fd, &key, &g, BPF_EXIST);
		if (hv_proc_comm(key.tgid, comm, sizeof(comm)))
			snprintf(comm, sizeof(comm), "?");
		snprintf(why, sizeof(why), "was reserved %.1f s ago and never mapped",
			 (now - g.reserved_ns) / 1e9);
		leak_alert(ctx, key.tgid, comm, why, &g, key.index, 0);
	}
}
