// SPDX-License-Identifier: GPL-2.0
/*
 * What a reload may change. Live: every rule's severity and
 * max_corrections_per_min (both read by userspace at each event), and
 * whatever a family's reload callback applies (Xen: actions, enabled,
 * allowed_frontends, target_domain, grant_leak_after_ns, in its .bss).
 * Needs a restart: a clock rule's enabled, action and tolerance_ns, frozen
 * into the clock programs' .rodata at load (and deciding whether the
 * correction machinery runs at all).
 */
#include <json-c/json.h>
#include <string.h>

#include "json_util.h"
#include "metrics.h"
#include "notify.h"
#include "reload.h"
#include "rules.h"

static void add_name(struct json_object *list, const char *rule, const char *field)
{
	char name[96];

	snprintf(name, sizeof(name), "%s.%s", rule, field);
	json_object_array_add(list, json_object_new_string(name));
}

/* Clock rules: the .rodata fields keep the value in force. */
static void keep_clock_rodata(const struct hv_rules *cur, struct hv_rules *next,
			      struct json_object *restart)
{
	for_each_rule_of(i, HV_FAM_CLOCK) {
		const struct hv_rule *c = &cur->rule[i];
		struct hv_rule *n = &next->rule[i];
		const char *id = hv_rule_table[i].id;

		if (n->enabled != c->enabled)
			add_name(restart, id, "enabled");
		if (n->action != c->action)
			add_name(restart, id, "action");
		if (n->tolerance_ns != c->tolerance_ns)
			add_name(restart, id, "tolerance_ns");
		n->enabled = c->enabled;
		n->action = c->action;
		n->tolerance_ns = c->tolerance_ns;
	}
}

/* What differs between the rules in force and the new ones, once the
 * fields that need a restart were put back. */
static struct json_object *changes(const struct hv_rules *cur, const struct hv_rules *next)
{
	struct json_object *list = json_object_new_array();

	for (int i = 0; i < HV_RULE_COUNT; i++) {
		const struct hv_rule *c = &cur->rule[i], *n = &next->rule[i];
		const char *id = hv_rule_table[i].id;

		if (n->enabled != c->enabled)
			add_name(list, id, "enabled");
		if (n->severity != c->severity)
			add_name(list, id, "severity");
		if (n->action != c->action)
			add_name(list, id, "action");
		if (n->tolerance_ns != c->tolerance_ns)
			add_name(list, id, "tolerance_ns");
		if (n->max_corrections_per_min != c->max_corrections_per_min)
			add_name(list, id, "max_corrections_per_min");
	}
	if (next->n_allowed_frontends != cur->n_allowed_frontends ||
	    memcmp(next->allowed_frontends, cur->allowed_frontends,
		   next->n_allowed_frontends * sizeof(next->allowed_frontends[0])))
		add_name(list, "xen", "allowed_frontends");
	if (next->target_domain != cur->target_domain)
		add_name(list, "xen", "target_domain");
	if (next->grant_leak_after_ns != cur->grant_leak_after_ns)
		add_name(list, "xen", "grant_leak_after_ns");
	return list;
}

static void list_text(char *buf, size_t len, struct json_object *list)
{
	size_t n = json_object_array_length(list), off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && off < len; i++)
		off += snprintf(buf + off, len - off, "%s%s", i ? ", " : "",
				json_object_get_string(json_object_array_get_idx(list, i)));
	if (!n)
		snprintf(buf, len, "nothing");
}

static void count_reload(struct hv_ctx *ctx, const char *result)
{
	char labels[32];

	snprintf(labels, sizeof(labels), "result=\"%s\"", result);
	hv_metric_add(ctx->metrics, HV_METRIC_RULES_RELOADS, labels, 1);
}

static void report(struct hv_ctx *ctx, struct json_object *changed, struct json_object *restart)
{
	struct json_object *o = json_object_new_object();
	char what[1024], kept[1024];

	list_text(what, sizeof(what), changed);
	list_text(kept, sizeof(kept), restart);
	if (json_object_array_length(restart))
		hv_warn("rules reload: %s changed in %s but take(s) effect only at a restart "
			"(the clock programs are configured once, at load): the previous "
			"value(s) stay in force",
			kept, ctx->rules->source);
	hv_log(ctx, "rules reloaded from %s: changed %s", ctx->rules->source, what);
	hv_json_add_str(o, "type", "reload");
	hv_json_add_str(o, "rules", ctx->rules->source);
	json_object_object_add(o, "changed", changed);
	json_object_object_add(o, "restart_needed", restart);
	hv_emit_json(ctx, o);
}

int hv_reload_rules(struct hv_ctx *ctx)
{
	struct json_object *restart, *changed;
	struct hv_rules *next, *old;
	struct hv_family *f;
	char err[512];

	if (!ctx->opts.rules_path) {
		hv_warn("rules reload: the built-in rules are in use (no --rules, no " HV_ETC_RULES
			" at start): nothing to reload");
		return -1;
	}
	next = hv_rules_load(ctx->opts.rules_path, err, sizeof(err));
	if (!next) {
		hv_warn("rules reload failed, the rules in use are unchanged: %s", err);
		count_reload(ctx, "failed");
		return -1;
	}
	hv_notify_reloading();
	restart = json_object_new_array();
	keep_clock_rodata(ctx->rules, next, restart);
	for_each_family(f)
		if (f->loaded && f->reload)
			f->reload(ctx, next, restart);
	changed = changes(ctx->rules, next);
	old = ctx->rules;
	ctx->rules = next;
	hv_rules_free(old);
	hv_metrics_rules(ctx->metrics, ctx->rules);
	report(ctx, changed, restart);
	count_reload(ctx, "ok");
	hv_notify_reloaded(ctx->rules->source, ctx->opts.correct);
	return 0;
}
