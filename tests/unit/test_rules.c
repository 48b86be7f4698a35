// SPDX-License-Identifier: GPL-2.0
/* The rules file: defaults, every key, and bad files rejected with
 * FILE:LINE:COL: message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "rules.h"

static char err[512];

static struct hv_rules *parse(const char *text)
{
	err[0] = '\0';
	return hv_rules_parse(text, strlen(text), "t.yaml", err, sizeof(err));
}

static void expect_error(const char *text, const char *where, const char *words)
{
	struct hv_rules *r = parse(text);

	if (r) {
		hv_rules_free(r);
		fail_msg("accepted a bad file:\n%s", text);
	}
	if (strncmp(err, where, strlen(where)) || !strstr(err, words))
		fail_msg("expected '%s...%s', got '%s'", where, words, err);
}

static void test_builtin_rules_parse_with_defaults(void **state)
{
	struct hv_rules *r = hv_rules_builtin();

	(void)state;
	assert_non_null(r);
	assert_string_equal(r->source, "built-in");
	for (int i = 0; i < HV_RULE_COUNT; i++) {
		assert_true(r->rule[i].enabled);
		assert_int_equal(r->rule[i].action, HV_ACT_ALERT);
	}
	assert_int_equal(r->rule[HV_RULE_KVMCLOCK_JUMP].tolerance_ns, 100000);
	assert_int_equal(r->rule[HV_RULE_PVCLOCK_DISCONTINUITY].severity, HV_SEV_WARNING);
	assert_int_equal(r->n_backends, 0);
	assert_int_equal(r->target_domain, -1);
	hv_rules_free(r);
}

static void test_empty_file_gives_defaults(void **state)
{
	struct hv_rules *r = parse("");

	(void)state;
	assert_non_null(r);
	assert_true(r->rule[HV_RULE_TSC_OFFSET_CHANGE].enabled);
	hv_rules_free(r);
}

static void test_every_key(void **state)
{
	struct hv_rules *r =
	    parse("version: 1\n"
		  "rules:\n"
		  "  kvmclock-jump: {enabled: true, severity: warning, action: correct,\n"
		  "                  tolerance_ns: 5000, max_corrections_per_min: 3}\n"
		  "  tsc-khz-change: {enabled: false}\n"
		  "  foreign-map: {action: kill}\n"
		  "  resource-map: {action: deny}\n"
		  "xen:\n"
		  "  backends:\n"
		  "    - {name: qemu-dm, exe: /usr/bin/qemu-*, uid: 1000}\n"
		  "    - {comm: 'vhost*', cgroup: /system.slice/backend-*}\n"
		  "  allowed_frontends: [1, 7]\n"
		  "  target_domain: 3\n"
		  "  grant_leak_after_ms: 250\n");

	(void)state;
	assert_non_null(r);
	assert_int_equal(r->rule[HV_RULE_KVMCLOCK_JUMP].severity, HV_SEV_WARNING);
	assert_int_equal(r->rule[HV_RULE_KVMCLOCK_JUMP].action, HV_ACT_CORRECT);
	assert_int_equal(r->rule[HV_RULE_KVMCLOCK_JUMP].tolerance_ns, 5000);
	assert_int_equal(r->rule[HV_RULE_KVMCLOCK_JUMP].max_corrections_per_min, 3);
	assert_false(r->rule[HV_RULE_TSC_KHZ_CHANGE].enabled);
	assert_int_equal(r->rule[HV_RULE_FOREIGN_MAP].action, HV_ACT_KILL);
	assert_int_equal(r->rule[HV_RULE_RESOURCE_MAP].action, HV_ACT_DENY);
	assert_int_equal(r->n_backends, 2);
	assert_string_equal(r->backends[0].name, "qemu-dm");
	assert_string_equal(r->backends[0].exe, "/usr/bin/qemu-*");
	assert_int_equal(r->backends[0].uid, 1000);
	assert_null(r->backends[0].comm);
	assert_string_equal(r->backends[1].comm, "vhost*");
	assert_int_equal(r->backends[1].uid, -1);
	assert_int_equal(r->n_allowed_frontends, 2);
	assert_int_equal(r->allowed_frontends[1], 7);
	assert_int_equal(r->target_domain, 3);
	assert_int_equal(r->grant_leak_after_ns, 250000000ull);
	hv_rules_free(r);
}

static void test_bad_files(void **state)
{
	(void)state;
	expect_error("rules:\n  kvmclock-jmp: {enabled: true}\n",
		     "t.yaml:2:3:", "unknown rule 'kvmclock-jmp'");
	expect_error("rules:\n  kvmclock-jump:\n    enable: true\n",
		     "t.yaml:3:5:", "unknown key 'enable'");
	expect_error("rules:\n  kvmclock-jump:\n    enabled: maybe\n",
		     "t.yaml:3:14:", "must be true or false");
	expect_error("rules:\n  kvmclock-jump:\n    tolerance_ns: 10us\n",
		     "t.yaml:3:19:", "must be an integer");
	expect_error("rules:\n  kvmclock-jump:\n    tolerance_ns: -5\n",
		     "t.yaml:3:19:", "between 0 and");
	expect_error("rules:\n  tsc-khz-change:\n    action: correct\n",
		     "t.yaml:3:13:", "cannot take action 'correct'");
	expect_error("rules:\n  foreign-map:\n    action: correct\n",
		     "t.yaml:3:13:", "cannot take action 'correct'");
	expect_error("rules:\n  kvmclock-jump:\n    severity: loud\n",
		     "t.yaml:3:15:", "one of info, warning, critical");
	/* tsc-offset-change has no tolerance: the key is unknown there */
	expect_error("rules:\n  tsc-offset-change: {tolerance_ns: 5}\n",
		     "t.yaml:2:23:", "unknown key 'tolerance_ns'");
	expect_error("version: 2\n", "t.yaml:1:10:", "between 1 and 1");
	expect_error("colour: blue\n", "t.yaml:1:1:", "unknown key 'colour'");
	expect_error("- a\n- b\n", "t.yaml:1:1:", "must be a mapping");
	expect_error("rules: [1, 2]\n", "t.yaml:1:8:", "must be a mapping");
	expect_error("rules:\n  kvmclock-jump: {enabled: [true]}\n",
		     "t.yaml:2:28:", "must be a single value");
	expect_error("xen:\n  backends:\n    - {name: x}\n",
		     "t.yaml:3:7:", "at least one of exe, cgroup, comm, uid");
	expect_error("xen:\n  backends:\n    - {exe: /bin/x, pid: 3}\n",
		     "t.yaml:3:21:", "unknown key 'pid'");
	expect_error("xen:\n  allowed_frontends: 3\n", "t.yaml:2:22:", "must be a list");
	expect_error("xen:\n  allowed_frontends: [1, 70000]\n", "t.yaml:2:26:", "between 0 and");
	expect_error("xen:\n  target_domain: x\n", "t.yaml:2:18:", "must be an integer");
	/* YAML syntax errors carry the parser's position too */
	expect_error("rules:\n  kvmclock-jump: {enabled: true\n", "t.yaml:3:1:", "");
	expect_error("rules:\n\tkvmclock-jump: {}\n", "t.yaml:2:1:", "");
}

static void test_load_missing_file(void **state)
{
	(void)state;
	assert_null(hv_rules_load("/nonexistent/rules.yaml", err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/rules.yaml:1:1: cannot open"));
}

static void test_rule_table_is_complete(void **state)
{
	(void)state;
	for (int i = 0; i < HV_RULE_COUNT; i++) {
		assert_non_null(hv_rule_table[i].id);
		assert_int_equal(hv_rule_by_id(hv_rule_table[i].id), i);
		assert_true(hv_rule_table[i].actions & (1u << HV_ACT_ALERT));
	}
	assert_int_equal(hv_rule_by_id("nope"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_builtin_rules_parse_with_defaults),
	    cmocka_unit_test(test_empty_file_gives_defaults),
	    cmocka_unit_test(test_every_key),
	    cmocka_unit_test(test_bad_files),
	    cmocka_unit_test(test_load_missing_file),
	    cmocka_unit_test(test_rule_table_is_complete),
	};

	return cmocka_run_group_tests_name("rules", tests, NULL, NULL);
}
