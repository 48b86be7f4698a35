// SPDX-License-Identifier: GPL-2.0
/*
 * Everything the daemon says goes through here: one JSON object per line
 * with --json, one readable line otherwise; errors as "Error: ..." on
 * stderr or, with --json, as {"type":"error"} objects (bpftool's way).
 */
#include <json-c/json.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fdlimit.h"
#include "hvguard.h"
#include "metrics.h"

bool hv_json_errors;

static void iso_time(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + strlen(buf), len - strlen(buf), ".%03ldZ", ts.tv_nsec / 1000000);
}

static void vsay(const char *prefix, const char *fmt, va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (hv_json_errors) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(
		    o, "type", json_object_new_string(prefix[0] == 'E' ? "error" : "warning"));
		json_object_object_add(o, "message", json_object_new_string(msg));
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		fflush(stdout);
		json_object_put(o);
		return;
	}
	fprintf(stderr, "%s%s\n", prefix, msg);
}

void hv_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay("Error: ", fmt, ap);
	va_end(ap);
}

void hv_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay("Warning: ", fmt, ap);
	va_end(ap);
}

/*
 * One line of text output. Names come from the processes watched (comm,
 * QEMU's -name, paths): a control character in one must not start a forged
 * line or move the cursor, so every one is printed as \xHH.
 */
static void put_text_line(FILE *f, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);
	}
	fputc('\n', f);
}

/* Informational lines: text mode only (JSON consumers get typed objects). */
void hv_log(struct hv_ctx *ctx, const char *fmt, ...)
{
	char when[40], text[1024];
	va_list ap;

	if (ctx->opts.json)
		return;
	iso_time(when, sizeof(when));
	fprintf(ctx->out, "%s ", when);
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	put_text_line(ctx->out, text);
	fflush(ctx->out);
}

void hv_emit_json(struct hv_ctx *ctx, struct json_object *obj)
{
	if (ctx->opts.json) {
		fprintf(ctx->out, "%s\n",
			json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN));
		fflush(ctx->out);
	}
	json_object_put(obj);
}

static struct json_object *alert_json(const struct hv_alert *a, const char *when)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "type", json_object_new_string("alert"));
	json_object_object_add(o, "time", json_object_new_string(when));
	json_object_object_add(o, "ts_ns", json_object_new_uint64(a->ts_ns));
	json_object_object_add(o, "rule", json_object_new_string(a->rule));
	json_object_object_add(o, "severity",
			       json_object_new_string(hv_severity_name(a->severity)));
	json_object_object_add(o, "action", json_object_new_string(hv_action_name(a->action)));
	json_object_object_add(o, "pid", json_object_new_int(a->pid));
	json_object_object_add(o, "tid", json_object_new_int(a->tid));
	json_object_object_add(o, "comm", json_object_new_string(a->comm ? a->comm : ""));
	json_object_object_add(o, "vm", a->vm >= 0 ? json_object_new_int64(a->vm) : NULL);
	json_object_object_add(o, "vm_name",
			       a->vm_name ? json_object_new_string(a->vm_name) : NULL);
	json_object_object_add(o, "vcpu", a->vcpu >= 0 ? json_object_new_int(a->vcpu) : NULL);
	if (a->fields) {
		json_object_object_foreach(a->fields, key, val)
		{
			json_object_object_add(o, key, json_object_get(val));
		}
	}
	json_object_object_add(o, "message", json_object_new_string(a->message));
	return o;
}

/* --exec children still running. They are reaped by pid, never with
 * waitpid(-1), which would steal the ptrace stops of a correction. */
#define MAX_EXEC_CHILDREN 64
static pid_t exec_children[MAX_EXEC_CHILDREN];

void hv_reap_children(void)
{
	for (int i = 0; i < MAX_EXEC_CHILDREN; i++)
		if (exec_children[i] > 0 && waitpid(exec_children[i], NULL, WNOHANG) != 0)
			exec_children[i] = 0;
}

static bool track_child(pid_t pid)
{
	for (int i = 0; i < MAX_EXEC_CHILDREN; i++) {
		if (exec_children[i] <= 0) {
			exec_children[i] = pid;
			return true;
		}
	}
	return false;
}

/* --exec: the command gets the alert as one JSON line on stdin. It runs
 * detached so that a slow hook never delays the next alert. */
static void run_exec(const char *cmd, const char *line)
{
	int fds[2];
	pid_t pid;

	hv_reap_children();
	if (pipe(fds))
		return;
	pid = fork();
	if (pid == 0) {
		dup2(fds[0], STDIN_FILENO);
		close(fds[0]);
		close(fds[1]);
		hv_fdlimit_restore();
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(fds[0]);
	if (pid > 0 && !track_child(pid)) {
		/* 64 hooks still running: wait for this one rather than leak it */
		if (write(fds[1], line, strlen(line)) < 0)
			hv_warn("--exec: cannot write the alert to '%s'", cmd);
		close(fds[1]);
		waitpid(pid, NULL, 0);
		return;
	}
	if (pid > 0 && write(fds[1], line, strlen(line)) < 0)
		hv_warn("--exec: cannot write the alert to '%s'", cmd);
	close(fds[1]);
}

void hv_emit_alert(struct hv_ctx *ctx, struct hv_alert *a)
{
	char when[40];
	struct json_object *o;
	const char *line;

	iso_time(when, sizeof(when));
	o = alert_json(a, when);
	line = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	ctx->alerts++;
	hv_metrics_alert(ctx->metrics, a->rule);
	if (ctx->opts.json) {
		fprintf(ctx->out, "%s\n", line);
	} else {
		char text[1024], vcpu[24] = "";
		char vm[96] = "";

		if (a->vm >= 0)
			snprintf(vm, sizeof(vm), " vm %lld%s%s%s", a->vm, a->vm_name ? " (" : "",
				 a->vm_name ? a->vm_name : "", a->vm_name ? ")" : "");
		if (a->vcpu >= 0)
			snprintf(vcpu, sizeof(vcpu), " vcpu %d", a->vcpu);
		snprintf(text, sizeof(text), "%s %s %s %s[%d]%s%s: %s", when,
			 hv_severity_name(a->severity), a->rule, a->comm ? a->comm : "?", a->pid,
			 vm, vcpu, a->message);
		put_text_line(ctx->out, text);
	}
	fflush(ctx->out);
	if (ctx->opts.exec_cmd) {
		char buf[4096];

		snprintf(buf, sizeof(buf), "%s\n", line);
		run_exec(ctx->opts.exec_cmd, buf);
	}
	json_object_put(o);
	json_object_put(a->fields);
	a->fields = NULL;
}
