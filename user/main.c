// SPDX-License-Identifier: GPL-2.0
/* hvguard: one binary, subcommands dispatched through a table (bpftool's way). */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "hvguard.h"

static int cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("hvguard %s\n", HVGUARD_VERSION);
	return HV_EXIT_OK;
}

static int cmd_help(int argc, char **argv);

static const struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} commands[] = {
    {"run", cmd_run, "watch the host: alert (and correct) as violations happen"},
    {"audit", cmd_audit, "one-shot look at the host now; exit 1 if violations"},
    {"rules", cmd_rules, "check or show a rules file (rules check FILE)"},
    {"migrations", cmd_migrations, "join hosts' logs into live migrations and their clock warps"},
    {"version", cmd_version, "print the version"},
    {"help", cmd_help, "this text"},
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hvguard COMMAND [OPTIONS]\n"
		"eBPF checks for hypervisor hosts: KVM clocks across pause/resume, Xen backends'\n"
		"memory mappings.\n\nCommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'hvguard COMMAND --help' for a command's options. Start with:\n"
		   "  sudo hvguard run            # readable alerts\n"
		   "  sudo hvguard run --json     # one JSON object per line\n");
}

static int cmd_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	usage(stdout);
	return HV_EXIT_OK;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return HV_EXIT_ERROR;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
		return cmd_help(0, NULL);
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version"))
		return cmd_version(0, NULL);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	hv_err("unknown command '%s' (commands: run, audit, rules, migrations, version, help)",
	       argv[1]);
	return HV_EXIT_ERROR;
}
