// SPDX-License-Identifier: GPL-2.0
/*
 * The rules file. The document is built from libyaml's events, each node
 * with its position, so each complaint names FILE:LINE:COL. Unknown keys,
 * duplicate keys and wrong types are errors, never ignored: a typo in a safety
 * rule must not silently disable it. Hostile input (deep nesting, aliases,
 * huge lists or values) is refused at the first event past a limit, before
 * libyaml or this file can spend more than linear time or memory on it.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "rules.h"

#define A(x)	      (1u << (x))
#define CLOCK_FIXABLE (A(HV_ACT_ALERT) | A(HV_ACT_CORRECT))
#define XEN_ACTIONS   (A(HV_ACT_ALERT) | A(HV_ACT_KILL) | A(HV_ACT_DENY))

const struct hv_rule_info hv_rule_table[HV_RULE_COUNT] = {
    [HV_RULE_KVMCLOCK_JUMP] = {"kvmclock-jump", HV_FAM_CLOCK, HV_SEV_CRITICAL, 100000,
			       CLOCK_FIXABLE, "KVM_SET_CLOCK moved the kvmclock of a VM that ran"},
    [HV_RULE_TSC_OFFSET_CHANGE] = {"tsc-offset-change", HV_FAM_CLOCK, HV_SEV_CRITICAL, -1,
				   CLOCK_FIXABLE,
				   "a host write moved a vCPU's TSC offset after it ran"},
    [HV_RULE_TSC_KHZ_CHANGE] = {"tsc-khz-change", HV_FAM_CLOCK, HV_SEV_CRITICAL, -1,
				A(HV_ACT_ALERT), "KVM_SET_TSC_KHZ on a vCPU that already ran"},
    [HV_RULE_VCPU_TSC_MISMATCH] = {"vcpu-tsc-mismatch", HV_FAM_CLOCK, HV_SEV_CRITICAL, -1,
				   CLOCK_FIXABLE, "vCPUs of one VM run with different TSC offsets"},
    [HV_RULE_PVCLOCK_DISCONTINUITY] = {"pvclock-discontinuity", HV_FAM_CLOCK, HV_SEV_WARNING, 50000,
				       A(HV_ACT_ALERT),
				       "two PVTIs of a vCPU disagree beyond the tolerance"},
    [HV_RULE_FOREIGN_MAP] = {"foreign-map", HV_FAM_XEN, HV_SEV_CRITICAL, -1, XEN_ACTIONS,
			     "a Xen backend mapped foreign memory through privcmd"},
    [HV_RULE_FORBIDDEN_HYPERCALL] = {"forbidden-hypercall", HV_FAM_XEN, HV_SEV_CRITICAL, -1,
				     XEN_ACTIONS, "a Xen backend issued a raw hypercall (privcmd)"},
    [HV_RULE_RESOURCE_MAP] = {"resource-map", HV_FAM_XEN, HV_SEV_CRITICAL, -1, XEN_ACTIONS,
			      "a Xen backend mapped a resource other than ioreq_server"},
    [HV_RULE_GRANT_DOMAIN] = {"grant-domain", HV_FAM_XEN, HV_SEV_CRITICAL, -1, XEN_ACTIONS,
			      "a Xen backend mapped a grant of a domain not allowed"},
    [HV_RULE_GRANT_LEAK] = {"grant-leak", HV_FAM_XEN, HV_SEV_WARNING, -1, A(HV_ACT_ALERT),
			    "grants reserved and never mapped, or mapped at exit"},
    [HV_RULE_MIGRATION_CLOCK_WARP] = {"migration-clock-warp", HV_FAM_CLOCK, HV_SEV_CRITICAL, 100000,
				      CLOCK_FIXABLE,
				      "a migrated VM's clocks are not where the source's would be"},
    [HV_RULE_VCPU_TSC_KHZ_MISMATCH] = {"vcpu-tsc-khz-mismatch", HV_FAM_CLOCK, HV_SEV_CRITICAL, -1,
				       A(HV_ACT_ALERT),
				       "vCPUs of one VM run at different TSC frequencies"},
};

int hv_rule_by_id(const char *id)
{
	for (int i = 0; i < HV_RULE_COUNT; i++)
		if (!strcmp(hv_rule_table[i].id, id))
			return i;
	return -1;
}

static const char *const severity_names[] = {"info", "warning", "critical"};
static const char *const action_names[] = {"alert", "correct", "kill", "deny"};

const char *hv_severity_name(enum hv_severity s)
{
	return (unsigned)s < 3 ? severity_names[s] : "unknown";
}

const char *hv_action_name(enum hv_action a)
{
	return (unsigned)a < 4 ? action_names[a] : "unknown";
}

struct parser {
	yaml_document_t doc;
	const char *name;
	char *err;
	size_t errlen;
	struct hv_rules *rules;
};

static int vfail_at(struct parser *p, yaml_mark_t m, const char *fmt, va_list ap)
{
	char msg[256];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	snprintf(p->err, p->errlen, "%s:%zu:%zu: %s", p->name, m.line + 1, m.column + 1, msg);
	return -1;
}

static int fail_at(struct parser *p, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_at(struct parser *p, yaml_mark_t m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail_at(p, m, fmt, ap);
	va_end(ap);
	return -1;
}

static int fail(struct parser *p, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct parser *p, const yaml_node_t *n, const char *fmt, ...)
{
	yaml_mark_t m = n ? n->start_mark : (yaml_mark_t){0};
	va_list ap;

	va_start(ap, fmt);
	vfail_at(p, m, fmt, ap);
	va_end(ap);
	return -1;
}

static const char *scalar(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int want_scalar(struct parser *p, const yaml_node_t *n, const char *key, const char **out)
{
	*out = scalar(n);
	if (!*out)
		return fail(p, n, "'%s' must be a single value", key);
	return 0;
}

static int parse_bool(struct parser *p, const yaml_node_t *n, const char *key, bool *out)
{
	const char *s;

	if (want_scalar(p, n, key, &s))
		return -1;
	if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on")) {
		*out = true;
		return 0;
	}
	if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off")) {
		*out = false;
		return 0;
	}
	return fail(p, n, "'%s' must be true or false, not '%s'", key, s);
}

static int parse_int(struct parser *p, const yaml_node_t *n, const char *key, int64_t min,
		     int64_t max, int64_t *out)
{
	const char *s;
	char *end;
	long long v;

	if (want_scalar(p, n, key, &s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 0);
	if (errno || end == s || *end)
		return fail(p, n, "'%s' must be an integer, not '%s'", key, s);
	if (v < min || v > max)
		return fail(p, n, "'%s' must be between %" PRId64 " and %" PRId64 ", not %lld", key,
			    min, max, v);
	*out = v;
	return 0;
}

static int parse_enum(struct parser *p, const yaml_node_t *n, const char *key,
		      const char *const *names, int count, int *out)
{
	const char *s;
	char choices[128] = "";

	if (want_scalar(p, n, key, &s))
		return -1;
	for (int i = 0; i < count; i++) {
		if (!strcmp(s, names[i])) {
			*out = i;
			return 0;
		}
		snprintf(choices + strlen(choices), sizeof(choices) - strlen(choices), "%s%s",
			 i ? ", " : "", names[i]);
	}
	return fail(p, n, "'%s' must be one of %s, not '%s'", key, choices, s);
}

static int want_mapping(struct parser *p, const yaml_node_t *n, const char *what)
{
	if (!n || n->type != YAML_MAPPING_NODE)
		return fail(p, n, "%s must be a mapping (key: value lines)", what);
	return 0;
}

/* Calls fn for each key of a mapping; fn returns -1 (with fail()) to stop. */
typedef int (*key_fn)(struct parser *p, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg);

static int each_key(struct parser *p, yaml_node_t *map, const char *what, key_fn fn, void *arg)
{
	if (want_mapping(p, map, what))
		return -1;
	for (yaml_node_pair_t *pair = map->data.mapping.pairs.start;
	     pair < map->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = yaml_document_get_node(&p->doc, pair->key);
		yaml_node_t *v = yaml_document_get_node(&p->doc, pair->value);
		const char *key = scalar(k);

		if (!key)
			return fail(p, k, "keys must be plain words");
		if (fn(p, key, k, v, arg))
			return -1;
	}
	return 0;
}

struct rule_ctx {
	int id;
	struct hv_rule *rule;
};

static int rule_key(struct parser *p, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
	struct rule_ctx *rc = arg;
	const struct hv_rule_info *info = &hv_rule_table[rc->id];
	struct hv_rule *r = rc->rule;
	int64_t num;
	int e;

	if (!strcmp(key, "enabled"))
		return parse_bool(p, v, key, &r->enabled);
	if (!strcmp(key, "severity")) {
		if (parse_enum(p, v, key, severity_names, 3, &e))
			return -1;
		r->severity = e;
		return 0;
	}
	if (!strcmp(key, "action")) {
		if (parse_enum(p, v, key, action_names, 4, &e))
			return -1;
		if (!(info->actions & A(e)))
			return fail(p, v, "rule %s cannot take action '%s'", info->id,
				    action_names[e]);
		r->action = e;
		return 0;
	}
	if (!strcmp(key, "tolerance_ns") && info->default_tolerance_ns >= 0) {
		if (parse_int(p, v, key, 0, INT64_MAX / 2, &num))
			return -1;
		r->tolerance_ns = num;
		return 0;
	}
	if (!strcmp(key, "max_corrections_per_min") && (info->actions & A(HV_ACT_CORRECT))) {
		if (parse_int(p, v, key, 1, 100000, &num))
			return -1;
		r->max_corrections_per_min = num;
		return 0;
	}
	return fail(p, k, "unknown key '%s' for rule %s", key, info->id);
}

static int rules_key(struct parser *p, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
	struct rule_ctx rc = {.id = hv_rule_by_id(key)};

	(void)arg;
	if (rc.id < 0)
		return fail(p, k, "unknown rule '%s'", key);
	rc.rule = &p->rules->rule[rc.id];
	return each_key(p, v, hv_rule_table[rc.id].id, rule_key, &rc);
}

struct backend_ctx {
	struct hv_backend_match *b;
	bool any; /* a field that selects processes, not only a name */
};

static int backend_key(struct parser *p, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
	static const char *const str_keys[] = {"name", "exe", "cgroup", "comm"};
	struct backend_ctx *bc = arg;
	char **slots[] = {&bc->b->name, &bc->b->exe, &bc->b->cgroup, &bc->b->comm};
	const char *s;

	for (size_t i = 0; i < 4; i++) {
		if (strcmp(key, str_keys[i]))
			continue;
		if (want_scalar(p, v, key, &s))
			return -1;
		free(*slots[i]);
		*slots[i] = strdup(s);
		if (!*slots[i])
			return fail(p, v, "out of memory");
		bc->any |= i > 0;
		return 0;
	}
	if (!strcmp(key, "uid")) {
		bc->any = true;
		return parse_int(p, v, key, 0, UINT32_MAX - 1, &bc->b->uid);
	}
	return fail(p, k, "unknown key '%s' for a backend (name, exe, cgroup, comm, uid)", key);
}

static int parse_backend(struct parser *p, yaml_node_t *map, struct hv_backend_match *b)
{
	struct backend_ctx bc = {.b = b};

	b->uid = -1;
	if (each_key(p, map, "a backend", backend_key, &bc))
		return -1;
	if (!bc.any)
		return fail(p, map, "a backend needs at least one of exe, cgroup, comm, uid");
	return 0;
}

static int parse_domids(struct parser *p, yaml_node_t *seq, const char *key)
{
	struct hv_rules *r = p->rules;

	if (!seq || seq->type != YAML_SEQUENCE_NODE)
		return fail(p, seq, "'%s' must be a list of domain ids, e.g. [1, 2]", key);
	r->n_allowed_frontends = 0;
	for (yaml_node_item_t *it = seq->data.sequence.items.start;
	     it < seq->data.sequence.items.top; it++) {
		yaml_node_t *v = yaml_document_get_node(&p->doc, *it);
		int64_t dom;

		if (r->n_allowed_frontends >= HV_MAX_DOMIDS)
			return fail(p, v, "at most %d domains in '%s'", HV_MAX_DOMIDS, key);
		if (parse_int(p, v, key, 0, 0x7fef, &dom))
			return -1;
		r->allowed_frontends[r->n_allowed_frontends++] = dom;
	}
	return 0;
}

static void free_backends(struct hv_rules *r)
{
	for (size_t i = 0; i < r->n_backends; i++) {
		free(r->backends[i].name);
		free(r->backends[i].exe);
		free(r->backends[i].cgroup);
		free(r->backends[i].comm);
	}
	free(r->backends);
	r->backends = NULL;
	r->n_backends = 0;
}

/* n_backends always counts the entries of backends, whatever came before. */
static int parse_backends(struct parser *p, yaml_node_t *seq)
{
	struct hv_rules *r = p->rules;
	size_t n;

	if (!seq || seq->type != YAML_SEQUENCE_NODE)
		return fail(p, seq, "'backends' must be a list");
	n = seq->data.sequence.items.top - seq->data.sequence.items.start;
	if (n > HV_MAX_BACKENDS)
		return fail(p,
			    yaml_document_get_node(&p->doc,
						   seq->data.sequence.items.start[HV_MAX_BACKENDS]),
			    "at most %d backends", HV_MAX_BACKENDS);
	free_backends(r);
	r->backends = calloc(n ? n : 1, sizeof(*r->backends));
	if (!r->backends)
		return fail(p, seq, "out of memory");
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *v = yaml_document_get_node(&p->doc, seq->data.sequence.items.start[i]);

		r->n_backends = i + 1;
		if (parse_backend(p, v, &r->backends[i]))
			return -1;
	}
	return 0;
}

static int xen_key(struct parser *p, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
	int64_t num;

	(void)arg;
	if (!strcmp(key, "backends"))
		return parse_backends(p, v);
	if (!strcmp(key, "allowed_frontends"))
		return parse_domids(p, v, key);
	if (!strcmp(key, "target_domain")) {
		if (parse_int(p, v, key, 0, 0x7fef, &num))
			return -1;
		p->rules->target_domain = num;
		return 0;
	}
	if (!strcmp(key, "grant_leak_after_ms")) {
		if (parse_int(p, v, key, 1, 86400000, &num))
			return -1;
		p->rules->grant_leak_after_ns = num * 1000000ull;
		return 0;
	}
	return fail(p, k,
		    "unknown key '%s' in 'xen' (backends, allowed_frontends, target_domain, "
		    "grant_leak_after_ms)",
		    key);
}

static int root_key(struct parser *p, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
	int64_t version;

	(void)arg;
	if (!strcmp(key, "version"))
		return parse_int(p, v, key, 1, 1, &version);
	if (!strcmp(key, "rules"))
		return each_key(p, v, "'rules'", rules_key, NULL);
	if (!strcmp(key, "xen"))
		return each_key(p, v, "'xen'", xen_key, NULL);
	return fail(p, k, "unknown key '%s' (version, rules, xen)", key);
}

static int parse_root(struct parser *p, bool have_doc)
{
	yaml_node_t *root = have_doc ? yaml_document_get_root_node(&p->doc) : NULL;

	if (!root)
		return 0; /* an empty file: the defaults */
	return each_key(p, root, "the rules file", root_key, NULL);
}

static struct hv_rules *rules_defaults(void)
{
	struct hv_rules *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	for (int i = 0; i < HV_RULE_COUNT; i++) {
		r->rule[i].enabled = true;
		r->rule[i].severity = hv_rule_table[i].default_severity;
		r->rule[i].action = HV_ACT_ALERT;
		r->rule[i].tolerance_ns = hv_rule_table[i].default_tolerance_ns;
		r->rule[i].max_corrections_per_min = 30;
	}
	r->target_domain = -1;
	r->grant_leak_after_ns = 10000000000ull;
	return r;
}

/* The document, built from libyaml's event stream. yaml_parser_load would
 * read the whole stream first: refusing at the first event past a limit is
 * what keeps a megabyte of '[' from costing libyaml minutes. */
struct frame {
	int node;     /* the open list or mapping */
	int key;      /* mappings: the key waiting for its value, 0 if none */
	size_t count; /* items, or keys */
};

struct loader {
	struct parser *p;
	struct frame stack[HV_RULES_MAX_DEPTH];
	int depth;
	size_t nodes;
	bool have_doc;
};

static int syntax_error(struct parser *p, const yaml_parser_t *yp)
{
	snprintf(p->err, p->errlen, "%s:%zu:%zu: %s%s%s", p->name, yp->problem_mark.line + 1,
		 yp->problem_mark.column + 1, yp->problem ? yp->problem : "bad YAML",
		 yp->context ? " " : "", yp->context ? yp->context : "");
	return -1;
}

/* A key equal to one already in the mapping: the second would silently win
 * over (or, worse, add to) what the first set. */
static int check_duplicate(struct loader *l, const yaml_node_t *map, const yaml_node_t *key)
{
	if (key->type != YAML_SCALAR_NODE)
		return 0; /* refused later: keys must be plain words */
	for (yaml_node_pair_t *pair = map->data.mapping.pairs.start;
	     pair < map->data.mapping.pairs.top; pair++) {
		const yaml_node_t *k = yaml_document_get_node(&l->p->doc, pair->key);

		if (k->type == YAML_SCALAR_NODE &&
		    k->data.scalar.length == key->data.scalar.length &&
		    !memcmp(k->data.scalar.value, key->data.scalar.value, k->data.scalar.length))
			return fail(l->p, key, "duplicate key '%s' (first at %zu:%zu)",
				    (const char *)key->data.scalar.value, k->start_mark.line + 1,
				    k->start_mark.column + 1);
	}
	return 0;
}

/* Hangs node id under the open collection, if any (none: it is the root). */
static int attach(struct loader *l, int id)
{
	yaml_document_t *doc = &l->p->doc;
	yaml_node_t *node = yaml_document_get_node(doc, id);
	struct frame *f;
	yaml_node_t *parent;

	if (!l->depth)
		return 0;
	f = &l->stack[l->depth - 1];
	parent = yaml_document_get_node(doc, f->node);
	if (parent->type == YAML_SEQUENCE_NODE) {
		if (++f->count > HV_RULES_MAX_ITEMS)
			return fail(l->p, node, "more than %d items in a list", HV_RULES_MAX_ITEMS);
		if (!yaml_document_append_sequence_item(doc, f->node, id))
			return fail(l->p, node, "out of memory");
		return 0;
	}
	if (f->key) {
		if (!yaml_document_append_mapping_pair(doc, f->node, f->key, id))
			return fail(l->p, node, "out of memory");
		f->key = 0;
		return 0;
	}
	if (++f->count > HV_RULES_MAX_KEYS)
		return fail(l->p, node, "more than %d keys in a mapping", HV_RULES_MAX_KEYS);
	if (check_duplicate(l, parent, node))
		return -1;
	f->key = id;
	return 0;
}

static int add_scalar(struct loader *l, const yaml_event_t *ev)
{
	const yaml_char_t *v = ev->data.scalar.value;
	size_t len = ev->data.scalar.length;

	if (ev->data.scalar.anchor)
		return fail_at(l->p, ev->start_mark,
			       "anchors (&%s) are not allowed in a rules file",
			       (const char *)ev->data.scalar.anchor);
	if (len > HV_RULES_MAX_SCALAR)
		return fail_at(l->p, ev->start_mark, "a value longer than %d bytes",
			       HV_RULES_MAX_SCALAR);
	if (memchr(v, '\0', len))
		return fail_at(l->p, ev->start_mark, "a value with a NUL character");
	return yaml_document_add_scalar(&l->p->doc, NULL, v, (int)len, ev->data.scalar.style);
}

static int add_collection(struct loader *l, const yaml_event_t *ev)
{
	bool seq = ev->type == YAML_SEQUENCE_START_EVENT;
	const yaml_char_t *anchor =
	    seq ? ev->data.sequence_start.anchor : ev->data.mapping_start.anchor;

	if (anchor)
		return fail_at(l->p, ev->start_mark,
			       "anchors (&%s) are not allowed in a rules file",
			       (const char *)anchor);
	if (l->depth >= HV_RULES_MAX_DEPTH)
		return fail_at(l->p, ev->start_mark, "nested deeper than %d levels",
			       HV_RULES_MAX_DEPTH);
	return seq ? yaml_document_add_sequence(&l->p->doc, NULL, ev->data.sequence_start.style)
		   : yaml_document_add_mapping(&l->p->doc, NULL, ev->data.mapping_start.style);
}

static int add_node(struct loader *l, const yaml_event_t *ev)
{
	bool scalar = ev->type == YAML_SCALAR_EVENT;
	int id;

	if (++l->nodes > HV_RULES_MAX_NODES)
		return fail_at(l->p, ev->start_mark, "more than %d values in the file",
			       HV_RULES_MAX_NODES);
	id = scalar ? add_scalar(l, ev) : add_collection(l, ev);
	if (id < 0)
		return -1;
	if (!id)
		return fail_at(l->p, ev->start_mark, "out of memory");
	yaml_document_get_node(&l->p->doc, id)->start_mark = ev->start_mark;
	yaml_document_get_node(&l->p->doc, id)->end_mark = ev->end_mark;
	if (attach(l, id))
		return -1;
	if (!scalar)
		l->stack[l->depth++] = (struct frame){.node = id};
	return 0;
}

static int on_event(struct loader *l, const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (l->have_doc)
			return fail_at(l->p, ev->start_mark,
				       "a second YAML document: a rules file holds one");
		if (!yaml_document_initialize(&l->p->doc, NULL, NULL, NULL, 1, 1))
			return fail_at(l->p, ev->start_mark, "out of memory");
		l->have_doc = true;
		return 0;
	case YAML_ALIAS_EVENT:
		return fail_at(l->p, ev->start_mark,
			       "aliases (*%s) are not allowed in a rules file",
			       (const char *)ev->data.alias.anchor);
	case YAML_SCALAR_EVENT:
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		return add_node(l, ev);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		l->depth--;
		return 0;
	default:
		return 0;
	}
}

/* Fills p->doc; *have_doc tells the caller whether to delete it. */
static int load_document(struct parser *p, yaml_parser_t *yp, bool *have_doc)
{
	struct loader l = {.p = p};
	yaml_event_t ev;
	bool end;
	int rc;

	do {
		if (!yaml_parser_parse(yp, &ev)) {
			rc = syntax_error(p, yp);
			break;
		}
		rc = on_event(&l, &ev);
		end = ev.type == YAML_STREAM_END_EVENT;
		yaml_event_delete(&ev);
	} while (!rc && !end);
	*have_doc = l.have_doc;
	return rc;
}

struct hv_rules *hv_rules_parse(const char *text, size_t len, const char *name, char *err,
				size_t errlen)
{
	struct parser p = {.name = name, .err = err, .errlen = errlen};
	yaml_parser_t parser;
	bool have_doc = false;
	int rc = -1;

	if (len > HV_RULES_MAX_BYTES) {
		snprintf(err, errlen, "%s:1:1: larger than %d bytes (1 MiB)", name,
			 HV_RULES_MAX_BYTES);
		return NULL;
	}
	p.rules = rules_defaults();
	if (!p.rules || !yaml_parser_initialize(&parser)) {
		snprintf(err, errlen, "%s: out of memory", name);
		goto cleanup_rules;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	rc = load_document(&p, &parser, &have_doc);
	if (!rc)
		rc = parse_root(&p, have_doc);
	if (!rc) {
		p.rules->source = strdup(name);
		if (!p.rules->source)
			rc = fail_at(&p, (yaml_mark_t){0}, "out of memory");
	}
	if (have_doc)
		yaml_document_delete(&p.doc);
	yaml_parser_delete(&parser);
cleanup_rules:
	if (rc) {
		hv_rules_free(p.rules);
		return NULL;
	}
	return p.rules;
}

/* Reads at most HV_RULES_MAX_BYTES: a regular file that is larger is refused
 * by its size, before anything is read. */
struct hv_rules *hv_rules_load(const char *path, char *err, size_t errlen)
{
	struct hv_rules *r = NULL;
	char *text = NULL;
	struct stat st;
	size_t len = 0;
	FILE *f;

	f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s:1:1: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	if (!fstat(fileno(f), &st) && S_ISREG(st.st_mode) && st.st_size > HV_RULES_MAX_BYTES) {
		snprintf(err, errlen, "%s:1:1: larger than %d bytes (1 MiB)", path,
			 HV_RULES_MAX_BYTES);
		goto out;
	}
	text = malloc(HV_RULES_MAX_BYTES + 1);
	if (!text) {
		snprintf(err, errlen, "%s:1:1: out of memory", path);
		goto out;
	}
	len = fread(text, 1, HV_RULES_MAX_BYTES + 1, f);
	if (ferror(f))
		snprintf(err, errlen, "%s:1:1: cannot read: %s", path, strerror(errno));
	else
		r = hv_rules_parse(text, len, path, err, errlen); /* refuses len > max */
out:
	free(text);
	fclose(f);
	return r;
}

/* rules/default.yaml, embedded at build time (see the asm below). */
extern const char hv_default_rules[];
extern const char hv_default_rules_end[];
__asm__(".section .rodata\n"
	".global hv_default_rules\n"
	".global hv_default_rules_end\n"
	"hv_default_rules:\n"
	".incbin \"rules/default.yaml\"\n"
	"hv_default_rules_end:\n"
	".byte 0\n"
	".previous\n");

struct hv_rules *hv_rules_builtin(void)
{
	char err[512];
	struct hv_rules *r;

	r = hv_rules_parse(hv_default_rules, hv_default_rules_end - hv_default_rules, "built-in",
			   err, sizeof(err));
	if (!r)
		fprintf(stderr, "hvguard: the built-in rules do not parse: %s\n", err);
	return r;
}

void hv_rules_free(struct hv_rules *r)
{
	if (!r)
		return;
	free_backends(r);
	free(r->source);
	free(r);
}
