// SPDX-License-Identifier: GPL-2.0
/*
 * The rules as a rules file (`hvguard rules show`): every field, in a fixed
 * order, so what it prints parses back to the same rules and printing that
 * again gives the same text. Strings are double-quoted and escaped to ASCII:
 * a glob, a '#' or a newline in a process name cannot change the structure.
 */
#include <stdbool.h>
#include <stdio.h>

#include "rules.h"

/* Length of the UTF-8 sequence at s and its code point, or 0 if invalid. */
static size_t utf8_decode(const unsigned char *s, uint32_t *cp)
{
	size_t n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 0;

	if (!n || s[0] >= 0xf8)
		return 0;
	*cp = s[0] & (0x7f >> n);
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		*cp = *cp << 6 | (s[i] & 0x3f);
	}
	return n;
}

static void put_escaped_char(const unsigned char **s, FILE *f)
{
	uint32_t cp;
	size_t n;

	if (**s == '"' || **s == '\\') {
		fprintf(f, "\\%c", **s);
	} else if (**s >= 0x20 && **s < 0x7f) {
		fputc(**s, f);
	} else if (**s < 0x80 || !(n = utf8_decode(*s, &cp))) {
		fprintf(f, "\\x%02x", **s);
	} else {
		fprintf(f, cp > 0xffff ? "\\U%08x" : "\\u%04x", (unsigned)cp);
		*s += n - 1;
	}
	(*s)++;
}

/* A backend's field; the first one opens the list item. */
static const char *field(bool *first)
{
	const char *indent = *first ? "    - " : "      ";

	*first = false;
	return indent;
}

static void put_string(const char *indent, const char *key, const char *v, FILE *f)
{
	const unsigned char *s = (const unsigned char *)v;

	fprintf(f, "%s%s: \"", indent, key);
	while (*s)
		put_escaped_char(&s, f);
	fputs("\"\n", f);
}

static void write_rule(const struct hv_rules *r, int i, FILE *f)
{
	const struct hv_rule_info *info = &hv_rule_table[i];
	const struct hv_rule *rule = &r->rule[i];

	fprintf(f, "  %s:\n", info->id);
	fprintf(f, "    enabled: %s\n", rule->enabled ? "true" : "false");
	fprintf(f, "    severity: %s\n", hv_severity_name(rule->severity));
	fprintf(f, "    action: %s\n", hv_action_name(rule->action));
	if (info->default_tolerance_ns >= 0)
		fprintf(f, "    tolerance_ns: %lld\n", (long long)rule->tolerance_ns);
	if (info->actions & (1u << HV_ACT_CORRECT))
		fprintf(f, "    max_corrections_per_min: %u\n", rule->max_corrections_per_min);
}

static void write_backend(const struct hv_backend_match *b, FILE *f)
{
	const char *keys[] = {"name", "exe", "cgroup", "comm"};
	const char *vals[] = {b->name, b->exe, b->cgroup, b->comm};
	bool first = true;

	for (size_t i = 0; i < 4; i++)
		if (vals[i])
			put_string(field(&first), keys[i], vals[i], f);
	if (b->uid >= 0)
		fprintf(f, "%suid: %lld\n", field(&first), (long long)b->uid);
}

static void write_xen(const struct hv_rules *r, FILE *f)
{
	fputs("xen:\n", f);
	fputs(r->n_backends ? "  backends:\n" : "  backends: []\n", f);
	for (size_t i = 0; i < r->n_backends; i++)
		write_backend(&r->backends[i], f);
	fputs("  allowed_frontends: [", f);
	for (size_t i = 0; i < r->n_allowed_frontends; i++)
		fprintf(f, "%s%u", i ? ", " : "", r->allowed_frontends[i]);
	fputs("]\n", f);
	if (r->target_domain >= 0)
		fprintf(f, "  target_domain: %d\n", r->target_domain);
	fprintf(f, "  grant_leak_after_ms: %llu\n",
		(unsigned long long)(r->grant_leak_after_ns / 1000000));
}

int hv_rules_write(const struct hv_rules *r, FILE *f)
{
	fputs("# hvguard rules show: the effective rules (built-in defaults, then the\n"
	      "# rules file). `hvguard rules check` accepts this file as it is.\n"
	      "version: 1\n"
	      "rules:\n",
	      f);
	for (int i = 0; i < HV_RULE_COUNT; i++)
		write_rule(r, i, f);
	write_xen(r, f);
	return fflush(f) || ferror(f) ? -1 : 0;
}
