// SPDX-License-Identifier: GPL-2.0
/* `hvguard rules check FILE`, `rules show [FILE]`, `rules list`, `rules default`. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "rules.h"

static void rules_usage(FILE *f)
{
	fprintf(f,
		"Usage: hvguard rules check FILE   validate FILE; exit 0 valid, 2 with\n"
		"                                  FILE:LINE:COL: message\n"
		"       hvguard rules show [FILE]  print the effective rules: the built-in ones\n"
		"                                  overridden by FILE (default: " HV_ETC_RULES "\n"
		"                                  when it exists), as a rules file\n"
		"       hvguard rules list         the rules, their defaults and actions\n"
		"       hvguard rules default      print the built-in rules file\n");
}

static int rules_list(void)
{
	printf("%-22s %-6s %-9s %-14s %s\n", "RULE", "FAMILY", "SEVERITY", "TOLERANCE_NS", "WHAT");
	for (int i = 0; i < HV_RULE_COUNT; i++) {
		const struct hv_rule_info *r = &hv_rule_table[i];
		char tol[24] = "-";

		if (r->default_tolerance_ns >= 0)
			snprintf(tol, sizeof(tol), "%lld", (long long)r->default_tolerance_ns);
		printf("%-22s %-6s %-9s %-14s %s\n", r->id,
		       r->family == HV_FAM_CLOCK ? "clock" : "xen",
		       hv_severity_name(r->default_severity), tol, r->summary);
	}
	return HV_EXIT_OK;
}

extern const char hv_default_rules[];

/* What `run` would use: FILE, else HV_ETC_RULES when it exists, else the
 * built-in rules. */
static int rules_show(const char *path)
{
	struct hv_rules *r;
	char err[512];

	if (!path && access(HV_ETC_RULES, F_OK) == 0)
		path = HV_ETC_RULES;
	r = path ? hv_rules_load(path, err, sizeof(err)) : hv_rules_builtin();
	if (!r) {
		if (path)
			fprintf(stderr, "%s\n", err);
		return HV_EXIT_ERROR;
	}
	if (hv_rules_write(r, stdout)) {
		fprintf(stderr, "hvguard: rules show: cannot write: %s\n", strerror(errno));
		hv_rules_free(r);
		return HV_EXIT_ERROR;
	}
	hv_rules_free(r);
	return HV_EXIT_OK;
}

int cmd_rules(int argc, char **argv)
{
	struct hv_rules *r;
	char err[512];

	if (argc >= 2 && !strcmp(argv[1], "list"))
		return rules_list();
	if (argc >= 2 && !strcmp(argv[1], "default")) {
		fputs(hv_default_rules, stdout);
		return HV_EXIT_OK;
	}
	if ((argc == 2 || argc == 3) && !strcmp(argv[1], "show"))
		return rules_show(argc == 3 ? argv[2] : NULL);
	if (argc == 3 && !strcmp(argv[1], "check")) {
		r = hv_rules_load(argv[2], err, sizeof(err));
		if (!r) {
			fprintf(stderr, "%s\n", err);
			return HV_EXIT_ERROR;
		}
		printf("%s: valid (%zu Xen backend pattern(s))\n", argv[2], r->n_backends);
		hv_rules_free(r);
		return HV_EXIT_OK;
	}
	rules_usage(argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) ? stdout
											: stderr);
	return argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) ? HV_EXIT_OK
										   : HV_EXIT_ERROR;
}
