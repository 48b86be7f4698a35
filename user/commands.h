/* SPDX-License-Identifier: GPL-2.0 */
/* The subcommands (bpftool-style dispatch in main.c). */
#ifndef HVGUARD_USER_COMMANDS_H
#define HVGUARD_USER_COMMANDS_H

int cmd_run(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_rules(int argc, char **argv);
int cmd_migrations(int argc, char **argv);

#endif
