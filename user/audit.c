// SPDX-License-Identifier: GPL-2.0
#include "commands.h"
#include "hvguard.h"
int cmd_audit(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	hv_err("audit: in progress");
	return HV_EXIT_ERROR;
}
