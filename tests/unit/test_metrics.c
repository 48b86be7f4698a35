// SPDX-License-Identifier: GPL-2.0
/* The registry's exposition: counters, gauges and histograms in the
 * Prometheus text format, each family under one HELP/TYPE header. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "metrics.h"
#include "rules.h"

static const double le[] = {0.001, 0.1, 1};

static void assert_has(const char *text, const char *line)
{
	if (!strstr(text, line))
		fail_msg("no line \"%s\" in:\n%s", line, text);
}

static void test_histogram(void **state)
{
	struct hv_metrics *m = hv_metrics_new();
	char *text;

	(void)state;
	hv_metrics_observe(m, "h_seconds", "A histogram.", le, 3, NAN);
	hv_metrics_observe(m, "h_seconds", "A histogram.", le, 3, 0.05);
	hv_metrics_observe(m, "h_seconds", "A histogram.", le, 3, 2.5);
	text = hv_metrics_render(m);
	assert_has(text, "# TYPE h_seconds histogram\n");
	assert_has(text, "h_seconds_bucket{le=\"0.001\"} 0\n");
	assert_has(text, "h_seconds_bucket{le=\"0.1\"} 1\n");
	assert_has(text, "h_seconds_bucket{le=\"1\"} 1\n");
	assert_has(text, "h_seconds_bucket{le=\"+Inf\"} 2\n");
	assert_has(text, "h_seconds_sum 2.5499999999999998\n");
	assert_has(text, "h_seconds_count 2\n");
	/* One header for the family, not one per series. */
	assert_null(strstr(strstr(text, "# TYPE h_seconds") + 1, "# TYPE h_seconds"));
	free(text);
	hv_metrics_free(m);
}

static void test_counter_and_gauge(void **state)
{
	struct hv_metrics *m = hv_metrics_new();
	char *text;

	(void)state;
	hv_metrics_add(m, "c_total", HV_COUNTER, "A counter.", "k=\"a\"", 2);
	hv_metrics_add(m, "c_total", HV_COUNTER, "A counter.", "k=\"a\"", 3);
	hv_metrics_set(m, "g", HV_GAUGE, "A gauge.", "", 7);
	text = hv_metrics_render(m);
	assert_has(text, "# TYPE c_total counter\nc_total{k=\"a\"} 5\n");
	assert_has(text, "# TYPE g gauge\ng 7\n");
	free(text);
	hv_metrics_free(m);
}

/* hvguard_violations_total{rule,severity}: every rule from 0 at its
 * severity; a severity changed by a reload starts a series of its own and
 * the old one keeps its count. */
static void test_violations_by_rule_and_severity(void **state)
{
	struct hv_metrics *m = hv_metrics_new();
	struct hv_rules *rules = hv_rules_builtin();
	int jump = hv_rule_by_id("kvmclock-jump");
	char *text;

	(void)state;
	assert_non_null(rules);
	assert_true(jump >= 0);
	hv_metrics_rules(m, rules);
	text = hv_metrics_render(m);
	assert_has(text,
		   "hvguard_violations_total{rule=\"kvmclock-jump\",severity=\"critical\"} 0\n");
	assert_has(text, "hvguard_violations_total{rule=\"grant-leak\",severity=\"warning\"} 0\n");
	free(text);
	hv_metrics_alert(m, "kvmclock-jump", HV_SEV_CRITICAL);
	rules->rule[jump].severity = HV_SEV_INFO; /* what a reload did */
	hv_metrics_rules(m, rules);
	hv_metrics_alert(m, "kvmclock-jump", HV_SEV_INFO);
	hv_metrics_alert(m, "kvmclock-jump", HV_SEV_INFO);
	text = hv_metrics_render(m);
	assert_has(text,
		   "hvguard_violations_total{rule=\"kvmclock-jump\",severity=\"critical\"} 1\n");
	assert_has(text, "hvguard_violations_total{rule=\"kvmclock-jump\",severity=\"info\"} 2\n");
	free(text);
	hv_rules_free(rules);
	hv_metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_histogram),
	    cmocka_unit_test(test_counter_and_gauge),
	    cmocka_unit_test(test_violations_by_rule_and_severity),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
