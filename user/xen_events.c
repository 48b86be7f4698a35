// SPDX-License-Identifier: GPL-2.0
/*
 * The Xen family's ring records (xen.bpf.c's xen_events), turned into
 * alerts (violations), grant lifecycle records, backend designations and
 * the information records of calls it could not check.
 */
#include <string.h>

#include "hvguard/xen.h"
#include "metrics.h"
#include "rules.h"
#include "xen_user.h"

static struct json_object *refs_json(const struct hv_xen_call *c)
{
	struct json_object *a = json_object_new_array();

	for (unsigned i = 0; i < c->n_refs && i < HV_XEN_MAX_REFS; i++)
		json_object_array_add(a, json_object_new_int64(c->refs[i]));
	return a;
}

static const char *enforcement_name(__u8 action, __s64 ret)
{
	switch (action) {
	case HV_XEN_ACT_KILL:
		return "killed";
	case HV_XEN_ACT_DENY:
		return ret == -1 ? "denied" : "deny-failed";
	}
	return "none";
}

/* "domain 5", "itself (DOMID_SELF)", "an unreadable domain". */
static void domain_words(char *buf, size_t len, __s32 domid)
{
	if (domid == HV_XEN_DOMID_NONE)
		snprintf(buf, len, "an unknown domain (arguments unreadable)");
	else if (domid == 0x7ff0)
		snprintf(buf, len, "its own domain (DOMID_SELF)");
	else
		snprintf(buf, len, "domain %d", domid);
}

static void describe(char *buf, size_t len, const struct hv_xen_event *e, const char *ioctl)
{
	const struct hv_xen_call *c = &e->call;
	/* Killed at entry, or not followed to its return: the outcome is
	 * unknown; otherwise ret tells. */
	bool unseen = e->ret == HV_XEN_RET_UNSEEN;
	bool failed = e->action != HV_XEN_ACT_KILL && !unseen && e->ret < 0;
	const char *verb = failed ? "tried to map" : "mapped";
	const char *outcome =
	    e->action == HV_XEN_ACT_KILL
		? "; SIGKILL sent at the call (the call itself may have completed)"
	    : e->action == HV_XEN_ACT_DENY ? "; refused with EPERM before the driver ran"
	    : unseen ? "; its outcome unknown (too many calls in flight for hvguard to follow)"
	    : failed ? "; the call failed"
		     : "";
	char dom[64];

	domain_words(dom, sizeof(dom), e->rule == HV_RULE_GRANT_DOMAIN ? c->bad_domid : c->domid);
	switch (e->rule) {
	case HV_RULE_FOREIGN_MAP:
		if (c->op == HV_XEN_OP_MMAP)
			snprintf(
			    buf, len,
			    "backend %s[%u] mmapped privcmd, which only serves foreign mappings "
			    "when no target_domain is configured%s",
			    e->comm, e->pid, outcome);
		else
			snprintf(buf, len,
				 "backend %s[%u] %s foreign memory of %s through privcmd (%s, %llu "
				 "page(s)): it must use grants only; find the code path in it that "
				 "calls xenforeignmemory%s",
				 e->comm, e->pid, verb, dom, ioctl, (unsigned long long)c->count,
				 outcome);
		break;
	case HV_RULE_FORBIDDEN_HYPERCALL:
		snprintf(
		    buf, len,
		    "backend %s[%u] issued raw hypercall %llu through privcmd: an unprivileged "
		    "backend has no use for it (it can create foreign mappings)%s",
		    e->comm, e->pid, (unsigned long long)c->hypercall, outcome);
		break;
	case HV_RULE_RESOURCE_MAP:
		if (c->unchecked) {
			snprintf(buf, len,
				 "backend %s[%u] made %s with an argument hvguard could not read: "
				 "with action %s, what cannot be checked is refused%s",
				 e->comm, e->pid, ioctl,
				 e->action == HV_XEN_ACT_KILL ? "kill" : "deny", outcome);
			break;
		}
		snprintf(buf, len,
			 "backend %s[%u] %s resource type %u of %s (only ioreq_server pages of the "
			 "target domain are allowed)%s",
			 e->comm, e->pid, verb, c->resource_type, dom, outcome);
		break;
	case HV_RULE_GRANT_DOMAIN:
		if (c->unchecked) {
			snprintf(
			    buf, len,
			    "backend %s[%u] made %s with %llu grant(s) hvguard could not check "
			    "(%s): with action %s, what cannot be checked is refused%s",
			    e->comm, e->pid, ioctl, (unsigned long long)c->count,
			    c->unchecked == HV_XEN_UNCHECKED_TRUNCATED
				? "more than it walks, " HV_XEN_WALK_MAX_STR
				: "its argument was unreadable to it",
			    e->action == HV_XEN_ACT_KILL ? "kill" : "deny", outcome);
			break;
		}
		snprintf(
		    buf, len,
		    "backend %s[%u] used a grant of %s, which is not an allowed frontend (%s): "
		    "add it to allowed_frontends if it should be served%s",
		    e->comm, e->pid, dom, ioctl, outcome);
		break;
	default:
		snprintf(buf, len, "backend %s[%u]: %s", e->comm, e->pid, ioctl);
	}
}

/* A violation: the alert, with the call's fields. */
static void handle_violation(struct hv_ctx *ctx, const struct hv_xen_event *e)
{
	const struct hv_xen_call *c = &e->call;
	const char *ioctl = hv_xen_op_name(c->op);
	const struct hv_rule *rule;
	struct hv_alert a = {0};
	struct json_object *f;
	char comm[HV_XEN_COMM_LEN + 1];

	if (e->rule >= HV_RULE_COUNT)
		return;
	rule = &ctx->rules->rule[e->rule];
	snprintf(comm, sizeof(comm), "%s", e->comm);
	f = json_object_new_object();
	hv_json_add_str(f, "ioctl", ioctl);
	hv_json_add_str(f, "device", hv_xen_dev_name(c->dev));
	hv_xen_json_add_domid(f, "domid",
			      e->rule == HV_RULE_GRANT_DOMAIN ? c->bad_domid : c->domid);
	hv_json_add_uint(f, "pages", c->count);
	json_object_object_add(f, "refs", refs_json(c));
	if (c->op == HV_XEN_OP_PRIVCMD_HYPERCALL)
		hv_json_add_uint(f, "hypercall", c->hypercall);
	if (c->op == HV_XEN_OP_PRIVCMD_MMAP_RESOURCE)
		hv_json_add_int(f, "resource_type", c->resource_type);
	if (c->addr)
		hv_json_add_uint(f, "addr", c->addr);
	hv_json_add_int_or_null(f, "ret", e->ret != HV_XEN_RET_UNSEEN, e->ret);
	hv_json_add_str(f, "enforcement", enforcement_name(e->action, e->ret));
	if (c->unchecked) {
		hv_json_add_str(f, "unchecked", hv_xen_unchecked_name(c->unchecked));
		hv_json_add_int(f, "checked", c->checked);
	}
	if (c->flags & (HV_XEN_F_UNREADABLE | HV_XEN_F_TRUNCATED | HV_XEN_F_HUGE))
		hv_json_add_str(f, "decode",
				c->flags & HV_XEN_F_UNREADABLE ? "unreadable"
				: c->flags & HV_XEN_F_HUGE     ? "huge-count"
							       : "truncated");
	a.rule = hv_rule_table[e->rule].id;
	a.severity = rule->severity;
	a.action = rule->action;
	a.pid = e->pid;
	a.tid = e->tid;
	a.comm = comm;
	a.vm = -1;
	a.vcpu = -1;
	a.ts_ns = e->ts_ns;
	a.fields = f;
	describe(a.message, sizeof(a.message), e, ioctl);
	hv_emit_alert(ctx, &a);
}

/* A grant lifecycle step: counted, and the "grant" record. */
static void handle_grant(struct hv_ctx *ctx, const struct hv_xen_event *e)
{
	struct json_object *o = json_object_new_object();
	char comm[HV_XEN_COMM_LEN + 1], labels[64];
	const char *op = hv_xen_grant_op_name(e->grant_op);

	snprintf(comm, sizeof(comm), "%s", e->comm);
	if (e->grant_op < HV_XEN_GRANT_OP_COUNT)
		hv_xen_st.grant_ops[e->grant_op]++;
	snprintf(labels, sizeof(labels), "op=\"%s\"", op);
	hv_metric_add(ctx->metrics, HV_METRIC_XEN_GRANT_OPS, labels, 1);
	hv_json_add_str(o, "type", "grant");
	hv_json_add_str(o, "op", op);
	hv_json_add_uint(o, "ts_ns", e->ts_ns);
	hv_json_add_int(o, "pid", e->pid);
	hv_json_add_str(o, "comm", comm);
	hv_json_add_uint(o, "index", e->index);
	hv_json_add_uint_or_null(o, "addr", e->addr, e->addr);
	hv_xen_json_add_domid(o, "domid", e->call.domid);
	hv_json_add_uint(o, "pages", e->call.count);
	json_object_object_add(o, "refs", refs_json(&e->call));
	hv_log(ctx, "xen: %s[%u] grant %s index %llu", comm, e->pid, op,
	       (unsigned long long)e->index);
	hv_emit_json(ctx, o);
}

/*
 * The record of a call hvguard could not check, said as information, not
 * alerted: "xen-bad-argument" (a backend's Xen ioctl whose argument it could
 * not read) and "xen-unchecked" (a call a rule with action alert could not
 * fully check, docs/xen.md, "Fail closed"). One shape; the second also says
 * when, which rule and why, and how far the check went.
 */
static void emit_unchecked_call(struct hv_ctx *ctx, const struct hv_xen_event *e, const char *rule,
				const char *msg)
{
	bool unchecked = e->type == HV_XEN_EV_UNCHECKED;
	struct json_object *o = json_object_new_object();
	char comm[HV_XEN_COMM_LEN + 1];

	snprintf(comm, sizeof(comm), "%s", e->comm);
	hv_json_add_str(o, "type", unchecked ? "xen-unchecked" : "xen-bad-argument");
	if (unchecked)
		hv_json_add_uint(o, "ts_ns", e->ts_ns);
	hv_json_add_int(o, "pid", e->pid);
	hv_json_add_str(o, "comm", comm);
	if (unchecked)
		hv_json_add_str(o, "rule", rule);
	hv_json_add_str(o, "ioctl", hv_xen_op_name(e->call.op));
	if (unchecked)
		hv_json_add_str(o, "unchecked", hv_xen_unchecked_name(e->call.unchecked));
	hv_json_add_uint(o, "arg", e->call.uarg);
	hv_json_add_uint(o, "count", e->call.count);
	if (unchecked)
		hv_json_add_int(o, "checked", e->call.checked);
	else
		hv_json_add_int(o, "refs_read", e->call.n_refs);
	hv_json_add_str(o, "message", msg);
	hv_log(ctx, "xen: %s", msg);
	hv_emit_json(ctx, o);
}

static void handle_bad_argument(struct hv_ctx *ctx, const struct hv_xen_event *e)
{
	char comm[HV_XEN_COMM_LEN + 1], msg[256];

	snprintf(comm, sizeof(comm), "%s", e->comm);
	snprintf(msg, sizeof(msg),
		 "backend %s[%u] passed %s an argument hvguard could not read (pointer %#llx): the "
		 "driver will refuse it too; a working backend does not do this",
		 comm, e->pid, hv_xen_op_name(e->call.op), (unsigned long long)e->call.uarg);
	emit_unchecked_call(ctx, e, NULL, msg);
}

static void handle_unchecked(struct hv_ctx *ctx, const struct hv_xen_event *e)
{
	const char *why = hv_xen_unchecked_name(e->call.unchecked);
	const char *rule = e->rule < HV_RULE_COUNT ? hv_rule_table[e->rule].id : "?";
	char comm[HV_XEN_COMM_LEN + 1], msg[400];

	snprintf(comm, sizeof(comm), "%s", e->comm);
	snprintf(msg, sizeof(msg),
		 "backend %s[%u]: %s could not be fully checked for %s (%s: %s); the rule's "
		 "action is alert, so it went on; with deny or kill it would have been refused",
		 comm, e->pid, hv_xen_op_name(e->call.op), rule, why,
		 e->call.unchecked == HV_XEN_UNCHECKED_TRUNCATED
		     ? "more refs or segments than hvguard walks, " HV_XEN_WALK_MAX_STR
		     : "hvguard could not read its argument");
	emit_unchecked_call(ctx, e, rule, msg);
}

int hv_xen_ring_event(void *arg, void *data, size_t size)
{
	struct hv_ctx *ctx = arg;
	const struct hv_xen_event *e = data;
	int match;

	if (size < sizeof(*e))
		return 0;
	switch (e->type) {
	case HV_XEN_EV_VIOLATION:
		handle_violation(ctx, e);
		break;
	case HV_XEN_EV_GRANT:
		handle_grant(ctx, e);
		break;
	case HV_XEN_EV_EXIT:
		hv_xen_handle_backend_exit(ctx, e);
		break;
	case HV_XEN_EV_BADARG:
		handle_bad_argument(ctx, e);
		break;
	case HV_XEN_EV_UNCHECKED:
		handle_unchecked(ctx, e);
		break;
	case HV_XEN_EV_DESIGNATED:
		hv_xen_emit_backend(ctx, e->pid, e->backend.match, e->ppid ? "inherited" : "exec",
				    e->ppid);
		break;
	case HV_XEN_EV_EXEC:
		match = hv_xen_match_process(ctx->rules, e->pid);
		if (match >= 0)
			hv_xen_designate(ctx, e->pid, match, "exec");
		break;
	}
	return 0;
}
