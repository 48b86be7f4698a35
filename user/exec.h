/* SPDX-License-Identifier: GPL-2.0 */
/*
 * --exec hooks: one `sh -c CMD` per alert or correction, its JSON line on
 * stdin, in a process group of its own; its stdout and stderr never reach
 * hvguard's output. At most --exec-max run at once (more are dropped and
 * counted, never waited for); one running past --exec-timeout has its
 * whole process group killed.
 */
#ifndef HVGUARD_USER_EXEC_H
#define HVGUARD_USER_EXEC_H

#include "hvguard.h"

enum hv_exec_result {
	HV_EXEC_RAN,	 /* exited with status 0 */
	HV_EXEC_DROPPED, /* not started: --exec-max hooks were running */
	HV_EXEC_FAILED,	 /* non-zero exit, killed by a signal not ours, or no start */
	HV_EXEC_TIMEOUT, /* killed by hvguard after --exec-timeout */
	HV_EXEC_RESULT_COUNT,
};

#define HV_EXEC_TIMEOUT_DEFAULT 10.0
#define HV_EXEC_MAX_DEFAULT	8
#define HV_EXEC_MAX_LIMIT	1024

int hv_exec_init(struct hv_ctx *ctx);
/* Starts the hook on one JSON line (with its newline); never blocks. */
void hv_exec_run(struct hv_ctx *ctx, const char *line);
/* Reaps finished hooks, kills those past the timeout: once per loop turn. */
void hv_exec_poll(struct hv_ctx *ctx);
/* {"ran":N,"dropped":N,"failed":N,"timeout":N,"running":N}, or NULL
 * without --exec. */
struct json_object *hv_exec_json(void);
void hv_exec_fini(void);

#endif
