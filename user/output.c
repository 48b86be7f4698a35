// SPDX-License-Identifier: GPL-2.0
/*
 * Everything the daemon says goes through here: one JSON object per line
 * with --json, one readable line otherwise, one journal entry each with
 * --log journald (journal.c); errors as "Error: ..." on stderr or, with
 * --json, as {"type":"error"} objects (bpftool's way). Alerts and
 * corrections also go to the --exec hook (exec.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "exec.h"
#include "hvguard.h"
#include "journal.h"
#include "json_util.h"
#include "metrics.h"
#include "rules.h"

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

/* The journal refused an entry (journald gone?): the line is printed
 * instead, and that is said once. */
static void journal_failed(int err)
{
	static bool said;

	if (said)
		return;
	said = true;
	fprintf(stderr, "Warning: the journal refused an entry (%s): printing to stdout instead\n",
		strerror(-err));
}

static void vsay(const char *prefix, const char *fmt, va_list ap)
{
	bool error = prefix[0] == 'E';
	char msg[1024];
	int err;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (hv_journal_on) {
		err = hv_journal_line(error ? LOG_ERR : LOG_WARNING, error ? "error" : "warning",
				      msg, NULL);
		/* On a terminal, said there too: under systemd, stderr is the
		 * journal already. */
		if (!err && !isatty(STDERR_FILENO))
			return;
		if (err)
			journal_failed(err);
	}
	if (hv_json_errors) {
		struct json_object *o = json_object_new_object();

		hv_json_add_str(o, "type", error ? "error" : "warning");
		hv_json_add_str(o, "message", msg);
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

/* The same escaping into a buffer, for journal entries. */
static void escape_text(char *dst, size_t len, const char *s)
{
	size_t n = 0;

	for (; *s && n + 5 < len; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f)
			n += snprintf(dst + n, len - n, "\\x%02x", c);
		else
			dst[n++] = c;
	}
	dst[n] = '\0';
}

static void text_line(struct hv_ctx *ctx, const char *text)
{
	char when[40];

	iso_time(when, sizeof(when));
	fprintf(ctx->out, "%s ", when);
	put_text_line(ctx->out, text);
	fflush(ctx->out);
}

/* A line of text output, or a journal entry (journald stamps the time). */
static void say_line(struct hv_ctx *ctx, int priority, const char *type, const char *text,
		     struct json_object *obj)
{
	char esc[2048];
	int err;

	if (hv_journal_on) {
		escape_text(esc, sizeof(esc), text);
		err = hv_journal_line(priority, type, esc, obj);
		if (!err)
			return;
		journal_failed(err);
	}
	text_line(ctx, text);
}

/* Informational lines: text mode only (JSON consumers get typed objects). */
void hv_log(struct hv_ctx *ctx, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	if (ctx->opts.json)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	say_line(ctx, LOG_INFO, "info", text, NULL);
}

static void exec_hook(struct hv_ctx *ctx, struct json_object *obj)
{
	char *line;

	if (!ctx->opts.exec_cmd)
		return;
	if (asprintf(&line, "%s\n", json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN)) <
	    0)
		return;
	hv_exec_run(ctx, line);
	free(line);
}

/* A correction: after its alert, in every output, and to the --exec hook.
 * In the journal at LOG_NOTICE when applied, LOG_WARNING otherwise. */
void hv_emit_correction(struct hv_ctx *ctx, struct json_object *obj, const char *text)
{
	struct json_object *r;
	bool applied = json_object_object_get_ex(obj, "result", &r) &&
		       !strcmp(json_object_get_string(r), "applied");

	if (!ctx->opts.json)
		say_line(ctx, applied ? LOG_NOTICE : LOG_WARNING, "correction", text, obj);
	exec_hook(ctx, obj);
	hv_emit_json(ctx, obj);
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

	hv_json_add_str(o, "type", "alert");
	hv_json_add_str(o, "time", when);
	hv_json_add_uint(o, "ts_ns", a->ts_ns);
	hv_json_add_str(o, "rule", a->rule);
	hv_json_add_str(o, "severity", hv_severity_name(a->severity));
	hv_json_add_str(o, "action", hv_action_name(a->action));
	hv_json_add_int(o, "pid", a->pid);
	hv_json_add_int(o, "tid", a->tid);
	hv_json_add_str(o, "comm", a->comm ? a->comm : "");
	hv_json_add_int_or_null(o, "vm", a->vm >= 0, a->vm);
	hv_json_add_str(o, "vm_name", a->vm_name);
	if (a->vm_name_unread)
		hv_json_add_int(o, "vm_name_unread_ms", HV_PROC_ARGS_DEADLINE_MS);
	hv_json_add_int_or_null(o, "vcpu", a->vcpu >= 0, a->vcpu);
	if (a->fields) {
		json_object_object_foreach(a->fields, key, val) {
			json_object_object_add(o, key, json_object_get(val));
		}
	}
	hv_json_add_str(o, "message", a->message);
	return o;
}

static void alert_text(char *buf, size_t len, const struct hv_alert *a)
{
	char vcpu[24] = "", vm[96] = "";

	if (a->vm >= 0)
		snprintf(vm, sizeof(vm), " vm %lld%s%s%s", a->vm, a->vm_name ? " (" : "",
			 a->vm_name ? a->vm_name : "", a->vm_name ? ")" : "");
	if (a->vcpu >= 0)
		snprintf(vcpu, sizeof(vcpu), " vcpu %d", a->vcpu);
	snprintf(buf, len, "%s %s %s[%d]%s%s: %s", hv_severity_name(a->severity), a->rule,
		 a->comm ? a->comm : "?", a->pid, vm, vcpu, a->message);
}

void hv_emit_alert(struct hv_ctx *ctx, struct hv_alert *a)
{
	char when[40], text[1024], esc[2048];
	struct json_object *o;
	const char *line;
	int err = -1, rule;

	iso_time(when, sizeof(when));
	o = alert_json(a, when);
	line = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	ctx->alerts++;
	rule = hv_rule_by_id(a->rule);
	if (rule >= 0)
		ctx->violations[rule]++;
	hv_metrics_alert(ctx->metrics, a->rule, a->severity);
	alert_text(text, sizeof(text), a);
	if (hv_journal_on) {
		escape_text(esc, sizeof(esc), text);
		err = hv_journal_alert(a, esc, line);
		if (err)
			journal_failed(err);
	}
	if (ctx->opts.json) {
		fprintf(ctx->out, "%s\n", line);
		fflush(ctx->out);
	} else if (err) {
		text_line(ctx, text);
	}
	exec_hook(ctx, o);
	json_object_put(o);
	json_object_put(a->fields);
	a->fields = NULL;
}

/* --output: appended to, created 0640 (alerts name the VMs of the host). */
static FILE *open_output(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	FILE *f;

	if (fd < 0)
		return NULL;
	f = fdopen(fd, "a");
	if (!f)
		close(fd);
	return f;
}

int hv_output_open(struct hv_ctx *ctx)
{
	FILE *f;

	if (!ctx->opts.output_path)
		return 0;
	f = open_output(ctx->opts.output_path);
	if (!f) {
		hv_err("cannot open --output %s: %s", ctx->opts.output_path, strerror(errno));
		return -1;
	}
	ctx->out = f;
	return 0;
}

/* After logrotate moved the file: everything written so far is in the old
 * one (flushed line by line), everything from here on in the new one. If
 * the new one cannot be opened, the old stays in use and that is said. */
void hv_output_reopen(struct hv_ctx *ctx)
{
	FILE *f;

	if (!ctx->opts.output_path)
		return;
	f = open_output(ctx->opts.output_path);
	if (!f) {
		hv_warn("SIGHUP: cannot reopen --output %s (%s): still writing to the file "
			"opened before",
			ctx->opts.output_path, strerror(errno));
		return;
	}
	fflush(ctx->out);
	if (ctx->out != stdout)
		fclose(ctx->out);
	ctx->out = f;
}
