// SPDX-License-Identifier: GPL-2.0
/* The rules file: defaults, every key, and bad files rejected with
 * FILE:LINE:COL: message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
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

/* The crash a fuzzer found: the second 'backends' replaced the list but not
 * its count, and hv_rules_free read past the new one (ASan: heap overflow). */
static void test_duplicate_backends_regression(void **state)
{
	(void)state;
	expect_error("version: 1\n"
		     "xen:\n"
		     "  backends:\n"
		     "    - comm: a\n"
		     "    - comm: b\n"
		     "  allowed_frontends: [1]\n"
		     "  backends: []\n",
		     "t.yaml:7:3:", "duplicate key 'backends' (first at 3:3)");
}

static void test_duplicate_keys(void **state)
{
	(void)state;
	expect_error("version: 1\nversion: 1\n", "t.yaml:2:1:", "duplicate key 'version'");
	expect_error("rules:\n  kvmclock-jump: {enabled: true, severity: info, enabled: false}\n",
		     "t.yaml:2:50:", "duplicate key 'enabled' (first at 2:19)");
	expect_error("xen:\n  allowed_frontends: [1]\n  allowed_frontends: [2]\n",
		     "t.yaml:3:3:", "duplicate key 'allowed_frontends'");
	expect_error("xen:\n  backends:\n    - {comm: a, 'comm': b}\n",
		     "t.yaml:3:17:", "duplicate key 'comm' (first at 3:8)");
	/* any mapping, even one the schema would refuse anyway */
	expect_error("colour: {a: 1, a: 2}\n", "t.yaml:1:16:", "duplicate key 'a'");
}

static void test_second_document(void **state)
{
	(void)state;
	expect_error("version: 1\n---\nversion: 1\n", "t.yaml:2:1:", "a second YAML document");
	expect_error("---\nversion: 1\n...\n---\nrules: {}\n",
		     "t.yaml:4:1:", "a second YAML document");
	expect_error("version: 1\n--- # nothing\n", "t.yaml:2:1:", "a second YAML document");
}

static char *repeat(char c, size_t n, const char *prefix)
{
	size_t plen = strlen(prefix);
	char *s = malloc(plen + n + 1);

	assert_non_null(s);
	memcpy(s, prefix, plen);
	memset(s + plen, c, n);
	s[plen + n] = '\0';
	return s;
}

static void test_too_deep(void **state)
{
	char *text = repeat('[', HV_RULES_MAX_BYTES, "");

	(void)state;
	expect_error("rules: [[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]\n",
		     "t.yaml:1:23:", "nested deeper than 16 levels");
	expect_error("xen:\n  backends:\n    - {comm: {a: {b: {c: {d: {e: {f: {g: {h: {i: {j: "
		     "{k: {l: {m: 1}}}}}}}}}}}}}\n",
		     "t.yaml:3:62:", "nested deeper than 16 levels");
	/* 1 MiB of '[': refused at the 17th, in linear time (libyaml's own
	 * loader took minutes on it) */
	assert_null(hv_rules_parse(text, HV_RULES_MAX_BYTES, "t.yaml", err, sizeof(err)));
	assert_non_null(strstr(err, "t.yaml:1:17: nested deeper than 16 levels"));
	free(text);
}

static void test_aliases_and_anchors(void **state)
{
	(void)state;
	expect_error("xen:\n  backends: &b [{comm: a}]\n  allowed_frontends: *b\n",
		     "t.yaml:2:13:", "anchors (&b) are not allowed");
	expect_error("rules: *x\n", "t.yaml:1:8:", "aliases (*x) are not allowed");
	expect_error("version: &v 1\n", "t.yaml:1:10:", "anchors (&v) are not allowed");
}

static void test_too_long_lists(void **state)
{
	char text[40000] = "xen:\n  backends:\n";
	char num[32];

	(void)state;
	for (int i = 0; i <= HV_MAX_BACKENDS; i++)
		strcat(text, "    - {comm: x}\n");
	snprintf(num, sizeof(num), "t.yaml:%d:7:", 3 + HV_MAX_BACKENDS);
	expect_error(text, num, "at most 256 backends");

	strcpy(text, "xen:\n  allowed_frontends: [0");
	for (int i = 1; i <= HV_MAX_DOMIDS; i++)
		strcat(text, ", 1");
	strcat(text, "]\n");
	expect_error(text, "t.yaml:2:215:", "at most 64 domains");

	/* any list, any mapping */
	strcpy(text, "version: [1");
	for (int i = 1; i <= HV_RULES_MAX_ITEMS; i++)
		strcat(text, ",1");
	strcat(text, "]\n");
	snprintf(num, sizeof(num), "t.yaml:1:%d:", 11 + 2 * HV_RULES_MAX_ITEMS);
	expect_error(text, num, "more than 1024 items in a list");

	strcpy(text, "rules: {");
	for (int i = 0; i <= HV_RULES_MAX_KEYS; i++) {
		snprintf(num, sizeof(num), "%sk%02d: 1", i ? ", " : "", i);
		strcat(text, num);
	}
	strcat(text, "}\n");
	expect_error(text, "t.yaml:1:", "more than 64 keys in a mapping");
}

static void test_too_long_value(void **state)
{
	char *text = repeat('x', HV_RULES_MAX_SCALAR + 1, "xen:\n  backends:\n    - exe: ");

	(void)state;
	expect_error(text, "t.yaml:3:12:", "a value longer than 4096 bytes");
	text[strlen(text) - 1] = '\0'; /* exactly the limit: fine */
	hv_rules_free(parse(text));
	assert_string_equal(err, "");
	free(text);
	expect_error("xen:\n  backends:\n    - comm: \"a\\0b\"\n", "t.yaml:3:13:", "NUL");
}

static void test_too_big_file(void **state)
{
	char path[] = "/tmp/hvguard-test-rules-XXXXXX";
	char *text = repeat('#', HV_RULES_MAX_BYTES + 1, "");
	struct hv_rules *r;
	int fd;

	(void)state;
	assert_null(hv_rules_parse(text, HV_RULES_MAX_BYTES + 1, "t.yaml", err, sizeof(err)));
	assert_non_null(strstr(err, "t.yaml:1:1: larger than 1048576 bytes"));
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, HV_RULES_MAX_BYTES + 1), HV_RULES_MAX_BYTES + 1);
	close(fd);
	assert_null(hv_rules_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, ":1:1: larger than 1048576 bytes"));
	assert_int_equal(truncate(path, HV_RULES_MAX_BYTES), 0); /* exactly 1 MiB: fine */
	r = hv_rules_load(path, err, sizeof(err));
	assert_non_null(r);
	hv_rules_free(r);
	unlink(path);
	free(text);
}

static char *show(const struct hv_rules *r)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(hv_rules_write(r, f), 0);
	fclose(f);
	return buf;
}

/* `rules show` prints what parses back to the same rules, and printing
 * that again gives the same text. */
static void test_show_round_trips(void **state)
{
	struct hv_rules *r =
	    parse("rules:\n"
		  "  kvmclock-jump: {severity: warning, action: correct, tolerance_ns: 0x10}\n"
		  "  grant-domain: {enabled: no, action: deny}\n"
		  "xen:\n"
		  "  backends:\n"
		  "    - {name: \"q\\\"uo\\\\te\\n# not: a comment\", exe: '*: x', uid: 0}\n"
		  "    - {comm: \"\\u00e9\\U0001F600\\x01\\t\", cgroup: '[a]'}\n"
		  "  allowed_frontends: [0, 32751]\n"
		  "  target_domain: 0\n"
		  "  grant_leak_after_ms: 1\n");
	struct hv_rules *again, *builtin = hv_rules_builtin(), *empty = parse("");
	char *text, *text2, *t_builtin, *t_empty;

	(void)state;
	assert_non_null(r);
	text = show(r);
	again = hv_rules_parse(text, strlen(text), "shown.yaml", err, sizeof(err));
	if (!again)
		fail_msg("show output does not parse: %s\n%s", err, text);
	text2 = show(again);
	assert_string_equal(text, text2);
	assert_memory_equal(r->rule, again->rule, sizeof(r->rule));
	assert_string_equal(again->backends[0].name, "q\"uo\\te\n# not: a comment");
	assert_string_equal(again->backends[0].exe, "*: x");
	assert_string_equal(again->backends[1].comm, "\u00e9\U0001F600\x01\t");
	assert_int_equal(again->n_allowed_frontends, 2);
	assert_int_equal(again->allowed_frontends[1], 32751);
	assert_int_equal(again->target_domain, 0);
	assert_int_equal(again->grant_leak_after_ns, 1000000);
	assert_int_equal(again->rule[HV_RULE_KVMCLOCK_JUMP].tolerance_ns, 16);
	/* rules/default.yaml says what the code's defaults are */
	t_builtin = show(builtin);
	t_empty = show(empty);
	assert_string_equal(t_builtin, t_empty);
	free(text);
	free(text2);
	free(t_builtin);
	free(t_empty);
	hv_rules_free(r);
	hv_rules_free(again);
	hv_rules_free(builtin);
	hv_rules_free(empty);
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
	    cmocka_unit_test(test_duplicate_backends_regression),
	    cmocka_unit_test(test_duplicate_keys),
	    cmocka_unit_test(test_second_document),
	    cmocka_unit_test(test_too_deep),
	    cmocka_unit_test(test_aliases_and_anchors),
	    cmocka_unit_test(test_too_long_lists),
	    cmocka_unit_test(test_too_long_value),
	    cmocka_unit_test(test_too_big_file),
	    cmocka_unit_test(test_show_round_trips),
	    cmocka_unit_test(test_load_missing_file),
	    cmocka_unit_test(test_rule_table_is_complete),
	};

	return cmocka_run_group_tests_name("rules", tests, NULL, NULL);
}
