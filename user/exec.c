// SPDX-License-Identifier: GPL-2.0
/*
 * --exec hooks. Detection never waits for a hook: a hook is spawned
 * (posix_spawn, no fork of the daemon's threads), handed its JSON line
 * through a pipe that cannot fill (one line, far below the pipe's size),
 * and reaped by pid once per loop turn. Never waitpid(-1): that would steal
 * the ptrace stops of a correction.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <syslog.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include "exec.h"
#include "fdlimit.h"
#include "json_util.h"
#include "metrics.h"

extern char **environ;

struct hook {
	pid_t pid; /* 0: free slot */
	uint64_t started_ns;
	bool killed; /* by us, at the timeout */
};

static struct hook *hooks;
static int n_hooks;
static int out_fd = -1; /* the hooks' stdout and stderr */
static uint64_t counts[HV_EXEC_RESULT_COUNT];
static bool dropping; /* said so once per run of drops */

static const char *const result_names[HV_EXEC_RESULT_COUNT] = {
    [HV_EXEC_RAN] = "ran",
    [HV_EXEC_DROPPED] = "dropped",
    [HV_EXEC_FAILED] = "failed",
    [HV_EXEC_TIMEOUT] = "timeout",
};

static void export(struct hv_ctx *ctx, enum hv_exec_result r)
{
	char labels[32];

	snprintf(labels, sizeof(labels), "result=\"%s\"", result_names[r]);
	hv_metric_set(ctx->metrics, HV_METRIC_EXEC, labels, counts[r]);
}

static void count(struct hv_ctx *ctx, enum hv_exec_result r)
{
	counts[r]++;
	export(ctx, r);
}

/* With --log journald the hooks' output goes to the journal (identifier
 * hvguard-exec), else to /dev/null: never into hvguard's own stream. */
static int open_output(struct hv_ctx *ctx)
{
	int fd = -1;

	if (ctx->opts.journald) {
		fd = sd_journal_stream_fd("hvguard-exec", LOG_INFO, 1);
		if (fd >= 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) == 0)
			return fd;
		if (fd >= 0)
			close(fd);
	}
	return open("/dev/null", O_WRONLY | O_CLOEXEC);
}

int hv_exec_init(struct hv_ctx *ctx)
{
	if (!ctx->opts.exec_cmd)
		return 0;
	n_hooks = ctx->opts.exec_max;
	hooks = calloc(n_hooks, sizeof(*hooks));
	out_fd = open_output(ctx);
	if (!hooks || out_fd < 0) {
		hv_err("--exec: cannot set up the hooks: %s", strerror(errno));
		return -1;
	}
	for (int r = 0; r < HV_EXEC_RESULT_COUNT; r++)
		export(ctx, r); /* every outcome exported from the start, at 0 */
	return 0;
}

static struct hook *free_slot(void)
{
	for (int i = 0; i < n_hooks; i++)
		if (!hooks[i].pid)
			return &hooks[i];
	return NULL;
}

/* sh -c CMD in a new process group, every signal at its default and
 * unblocked (the daemon blocks them for its signalfd and ignores SIGPIPE:
 * both would be inherited), stdin the pipe, stdout and stderr out_fd. */
static int spawn(const char *cmd, int in_fd, pid_t *pid)
{
	/* The hook gets the open-files limit hvguard was started with (it
	 * raised its own, fdlimit.c): posix_spawn cannot set it, a shell can. */
	char limit[32];
	unsigned long was = hv_fdlimit_started_with();
	char *const plain[] = {"sh", "-c", (char *)cmd, NULL};
	char *const limited[] = {
	    "sh",	 "-c",	"ulimit -S -n \"$1\" 2>/dev/null; exec /bin/sh -c \"$0\"",
	    (char *)cmd, limit, NULL};
	char *const *argv = was ? limited : plain;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, dfl;
	int err;

	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGUSR2);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
					    POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dfl);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in_fd, STDIN_FILENO);
	posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, out_fd, STDERR_FILENO);
	snprintf(limit, sizeof(limit), "%lu", was);
	err = posix_spawn(pid, "/bin/sh", &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	return err;
}

void hv_exec_run(struct hv_ctx *ctx, const char *line)
{
	struct hook *h;
	int fds[2], err;

	if (!hooks)
		return;
	hv_exec_poll(ctx);
	h = free_slot();
	if (!h) {
		count(ctx, HV_EXEC_DROPPED);
		if (!dropping)
			hv_warn("--exec: %d hook(s) still running: dropping this run and any "
				"other until one ends (hvguard_exec_total{result=\"dropped\"})",
				n_hooks);
		dropping = true;
		return;
	}
	dropping = false;
	if (pipe2(fds, O_CLOEXEC)) {
		count(ctx, HV_EXEC_FAILED);
		return;
	}
	err = spawn(ctx->opts.exec_cmd, fds[0], &h->pid);
	close(fds[0]);
	if (err) {
		h->pid = 0;
		count(ctx, HV_EXEC_FAILED);
		hv_warn("--exec: cannot start /bin/sh: %s", strerror(err));
		close(fds[1]);
		return;
	}
	h->started_ns = hv_now_ns(CLOCK_MONOTONIC);
	h->killed = false;
	/* Non-blocking: a hook that never reads must not hold the daemon. */
	fcntl(fds[1], F_SETFL, O_NONBLOCK);
	if (write(fds[1], line, strlen(line)) < 0 && errno != EPIPE)
		hv_warn("--exec: cannot hand the line to the hook: %s", strerror(errno));
	close(fds[1]);
}

static void reap(struct hv_ctx *ctx, struct hook *h, int status)
{
	if (h->killed)
		count(ctx, HV_EXEC_TIMEOUT);
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		count(ctx, HV_EXEC_RAN);
	else
		count(ctx, HV_EXEC_FAILED);
	h->pid = 0;
}

void hv_exec_poll(struct hv_ctx *ctx)
{
	uint64_t now = hv_now_ns(CLOCK_MONOTONIC);
	uint64_t limit = (uint64_t)(ctx->opts.exec_timeout * 1e9);
	int status;

	for (int i = 0; i < n_hooks; i++) {
		struct hook *h = &hooks[i];
		pid_t r;

		if (!h->pid)
			continue;
		r = waitpid(h->pid, &status, WNOHANG);
		if (r == h->pid || (r < 0 && errno == ECHILD)) {
			reap(ctx, h, r < 0 ? -1 : status); /* -1: lost, counted failed */
			continue;
		}
		if (!h->killed && now - h->started_ns >= limit) {
			/* The group: the shell and whatever it started. */
			kill(-h->pid, SIGKILL);
			h->killed = true;
		}
	}
}

struct json_object *hv_exec_json(void)
{
	struct json_object *o;
	int running = 0;

	if (!hooks)
		return NULL;
	o = json_object_new_object();
	for (int r = 0; r < HV_EXEC_RESULT_COUNT; r++)
		hv_json_add_uint(o, result_names[r], counts[r]);
	for (int i = 0; i < n_hooks; i++)
		running += !!hooks[i].pid;
	hv_json_add_int(o, "running", running);
	return o;
}

/* Hooks still running at exit are left to finish (each in its own group,
 * with its own timeout gone): they are reported as running in the summary. */
void hv_exec_fini(void)
{
	free(hooks);
	hooks = NULL;
	n_hooks = 0;
	if (out_fd >= 0)
		close(out_fd);
	out_fd = -1;
}
