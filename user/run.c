// SPDX-License-Identifier: GPL-2.0
/*
 * `hvguard run`: load every watcher family this host has, print a ready
 * line once all programs are attached, then turn ring-buffer events into
 * alerts until SIGINT/SIGTERM or --duration, and close with a summary.
 */
#include <bpf/libbpf.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "hvguard.h"
#include "metrics.h"
#include "notify.h"
#include "preflight.h"
#include "rules.h"

/* The Xen family is linked in where it is built (weak, so a tree without
 * it still links). */
extern struct hv_family hv_xen_family __attribute__((weak));

static volatile sig_atomic_t stop_requested;

int hv_ring_add(struct hv_ctx *ctx, int map_fd, hv_ring_fn fn)
{
	if (ctx->rb)
		return ring_buffer__add(ctx->rb, map_fd, fn, ctx);
	ctx->rb = ring_buffer__new(map_fd, fn, ctx, NULL);
	return ctx->rb ? 0 : -errno;
}

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static bool libbpf_verbose;

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG || (level == LIBBPF_INFO && !libbpf_verbose) ||
	    (level == LIBBPF_WARN && !libbpf_verbose))
		return 0;
	return vfprintf(stderr, fmt, args);
}

static void run_usage(FILE *f)
{
	fprintf(f,
		"Usage: hvguard run [OPTIONS]\n"
		"Watch every KVM VM (and Xen backend) on this host and report clock and memory\n"
		"access violations as they happen.\n"
		"\n"
		"  -j, --json              one JSON object per line (ready, alert, event,\n"
		"                          correction, summary); default: readable lines\n"
		"  -r, --rules FILE        rules file (YAML); default: " HV_ETC_RULES "\n"
		"                          if it exists, else the built-in rules\n"
		"  -m, --metrics ADDR:PORT serve Prometheus metrics at http://ADDR:PORT/metrics\n"
		"  -d, --duration SECONDS  stop after SECONDS (default: until SIGINT/SIGTERM)\n"
		"  -c, --correct           repair every clock violation that has a correcting\n"
		"                          write, inside the VMM, before the guest runs again\n"
		"                          (needs CAP_SYS_PTRACE)\n"
		"  -o, --output FILE       write alerts to FILE (appended) instead of stdout\n"
		"  -e, --exec CMD          run CMD (sh -c) per alert, the alert's JSON on stdin\n"
		"      --pin-dir DIR       where state is pinned (default " HV_PIN_ROOT ")\n"
		"      --no-pin            keep no state across restarts\n"
		"      --hooks TIER        where the clock checks hook: kvm-tracepoints (KVM's\n"
		"                          own tracepoints only: nothing else on the host pays)\n"
		"                          or syscalls (the ioctl syscall tracepoints: every\n"
		"                          thread of the host pays); default: the best that\n"
		"                          loads, said at start and in the ready line\n"
		"      --xen-hooks TIER    where the Xen checks hook: fentry (the privcmd,\n"
		"                          gntdev and gntalloc drivers' own functions: only\n"
		"                          calls into them pay) or syscalls (the ioctl, mmap\n"
		"                          and munmap syscall tracepoints: every thread of the\n"
		"                          host pays); default: the best that loads\n"
		"  -v, --verbose           also log pauses, resumes and libbpf warnings\n"
		"  -h, --help              this text\n"
		"\n"
		"Exit: 0 stopped cleanly, 2 bad usage or rules, 3 not root, 4 kernel lacks\n"
		"BTF/tracepoints, 5 tracefs/bpffs not mountable.\n");
}

static int parse_run_args(int argc, char **argv, struct hv_opts *o)
{
	static const struct option longopts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"rules", required_argument, NULL, 'r'},
	    {"metrics", required_argument, NULL, 'm'},
	    {"duration", required_argument, NULL, 'd'},
	    {"correct", no_argument, NULL, 'c'},
	    {"output", required_argument, NULL, 'o'},
	    {"exec", required_argument, NULL, 'e'},
	    {"pin-dir", required_argument, NULL, 'P'},
	    {"no-pin", no_argument, NULL, 'N'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {"hooks", required_argument, NULL, 'H'},
	    {"xen-hooks", required_argument, NULL, 'X'},
	    {},
	};
	char *end;
	int c;

	o->pin_root = HV_PIN_ROOT;
	optind = 1;
	while ((c = getopt_long(argc, argv, "jr:m:d:co:e:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			o->json = true;
			break;
		case 'r':
			o->rules_path = optarg;
			break;
		case 'm':
			o->metrics_addr = optarg;
			break;
		case 'd':
			o->duration = strtod(optarg, &end);
			if (*end || o->duration <= 0) {
				hv_err("--duration wants a positive number of seconds, not '%s'",
				       optarg);
				return HV_EXIT_ERROR;
			}
			break;
		case 'c':
			o->correct = true;
			break;
		case 'o':
			o->output_path = optarg;
			break;
		case 'e':
			o->exec_cmd = optarg;
			break;
		case 'P':
			o->pin_root = optarg;
			break;
		case 'N':
			o->no_pin = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'H':
			if (strcmp(optarg, "kvm-tracepoints") && strcmp(optarg, "syscalls")) {
				hv_err("--hooks wants kvm-tracepoints or syscalls, not '%s'",
				       optarg);
				return HV_EXIT_ERROR;
			}
			o->hooks = optarg;
			break;
		case 'X':
			if (strcmp(optarg, "fentry") && strcmp(optarg, "syscalls")) {
				hv_err("--xen-hooks wants fentry or syscalls, not '%s'", optarg);
				return HV_EXIT_ERROR;
			}
			o->xen_hooks = optarg;
			break;
		case 'h':
			run_usage(stdout);
			exit(HV_EXIT_OK);
		default:
			run_usage(stderr);
			return HV_EXIT_ERROR;
		}
	}
	if (optind < argc) {
		hv_err("unexpected argument '%s' (see hvguard run --help)", argv[optind]);
		return HV_EXIT_ERROR;
	}
	if (strchr(strrchr(o->pin_root, '/') ? strrchr(o->pin_root, '/') : o->pin_root, '.')) {
		hv_err("--pin-dir %s: bpffs does not allow '.' in names; pick another name",
		       o->pin_root);
		return HV_EXIT_ERROR;
	}
	return HV_EXIT_OK;
}

static bool rules_want_correction(const struct hv_ctx *ctx)
{
	if (ctx->opts.correct)
		return true;
	for (int i = 0; i < HV_RULE_COUNT; i++)
		if (ctx->rules->rule[i].enabled && ctx->rules->rule[i].action == HV_ACT_CORRECT)
			return true;
	return false;
}

static struct hv_family *families[2];

static int load_families(struct hv_ctx *ctx, struct json_object *status)
{
	char why[256];
	int loaded = 0;

	families[0] = &hv_clock_family;
	families[1] = &hv_xen_family ? &hv_xen_family : NULL;
	for (int i = 0; i < 2; i++) {
		struct hv_family *f = families[i];

		if (!f)
			continue;
		why[0] = '\0';
		if (!f->present(ctx, why, sizeof(why))) {
			json_object_object_add(status, f->name, json_object_new_string(why));
			hv_log(ctx, "%s checks off: %s", f->name, why);
			continue;
		}
		if (f->load(ctx))
			return -1;
		f->loaded = true;
		loaded++;
		json_object_object_add(status, f->name, json_object_new_string("attached"));
		hv_log(ctx, "%s checks attached on %s hooks", f->name, f->hooks ? f->hooks : "?");
	}
	if (!loaded) {
		hv_err("nothing to watch on this host: no KVM and no Xen");
		return -1;
	}
	return 0;
}

/* {"clock": "kvm-tracepoints", "xen": "syscalls"}: where each family hooks. */
static struct json_object *hooks_json(void)
{
	struct json_object *o = json_object_new_object();

	for (int i = 0; i < 2; i++)
		if (families[i] && families[i]->loaded)
			json_object_object_add(o, families[i]->name,
					       json_object_new_string(families[i]->hooks));
	return o;
}

static void print_ready(struct hv_ctx *ctx, struct json_object *status)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "type", json_object_new_string("ready"));
	json_object_object_add(o, "version", json_object_new_string(HVGUARD_VERSION));
	json_object_object_add(o, "pid", json_object_new_int(getpid()));
	json_object_object_add(o, "rules", json_object_new_string(ctx->rules->source));
	json_object_object_add(o, "correct", json_object_new_boolean(ctx->opts.correct));
	json_object_object_add(
	    o, "pin_dir", ctx->opts.no_pin ? NULL : json_object_new_string(ctx->opts.pin_root));
	json_object_object_add(
	    o, "metrics",
	    ctx->opts.metrics_addr ? json_object_new_string(ctx->opts.metrics_addr) : NULL);
	json_object_object_add(o, "families", json_object_get(status));
	json_object_object_add(o, "hooks", hooks_json());
	hv_log(ctx, "hvguard %s watching (rules: %s%s); Ctrl-C to stop", HVGUARD_VERSION,
	       ctx->rules->source, ctx->opts.correct ? ", correcting" : "");
	hv_emit_json(ctx, o);
	hv_notify_ready(ctx->rules->source, ctx->opts.correct);
}

static void check_lost(struct hv_ctx *ctx)
{
	uint64_t lost = 0;

	for (int i = 0; i < 2; i++)
		if (families[i] && families[i]->loaded && families[i]->lost)
			lost += families[i]->lost(ctx);
	if (lost == ctx->events_lost)
		return;
	hv_warn("%llu event(s) lost: the ring buffer was full (%llu in all)",
		(unsigned long long)(lost - ctx->events_lost), (unsigned long long)lost);
	ctx->events_lost = lost;
	hv_metrics_set(ctx->metrics, "hvguard_events_lost_total", HV_COUNTER, NULL, "", lost);
}

static void print_summary(struct hv_ctx *ctx, double elapsed)
{
	struct json_object *o = json_object_new_object();
	struct json_object *by_rule = json_object_new_object();
	char labels[96];

	for (int i = 0; i < HV_RULE_COUNT; i++) {
		snprintf(labels, sizeof(labels), "rule=\"%s\"", hv_rule_table[i].id);
		json_object_object_add(by_rule, hv_rule_table[i].id,
				       json_object_new_int64(hv_metrics_get(
					   ctx->metrics, "hvguard_violations_total", labels)));
	}
	json_object_object_add(o, "type", json_object_new_string("summary"));
	json_object_object_add(o, "duration_s", json_object_new_double(elapsed));
	json_object_object_add(o, "alerts", json_object_new_uint64(ctx->alerts));
	json_object_object_add(o, "violations", by_rule);
	json_object_object_add(o, "events_lost", json_object_new_uint64(ctx->events_lost));
	for (int i = 0; i < 2; i++)
		if (families[i] && families[i]->loaded && families[i]->summary)
			families[i]->summary(ctx, o);
	hv_log(ctx, "stopped after %.1f s: %llu alert(s), %llu event(s) lost", elapsed,
	       (unsigned long long)ctx->alerts, (unsigned long long)ctx->events_lost);
	hv_emit_json(ctx, o);
}

static int event_loop(struct hv_ctx *ctx)
{
	double start = (hv_now_ns(CLOCK_MONOTONIC) / 1e9);
	int err = 0;

	while (!stop_requested) {
		err = ring_buffer__poll(ctx->rb, 100);
		if (err < 0 && err != -EINTR) {
			hv_err("reading events failed: %s", strerror(-err));
			break;
		}
		err = 0;
		for (int i = 0; i < 2; i++)
			if (families[i] && families[i]->loaded && families[i]->poll)
				families[i]->poll(ctx);
		check_lost(ctx);
		hv_reap_children();
		if (ctx->opts.duration > 0 &&
		    (hv_now_ns(CLOCK_MONOTONIC) / 1e9) - start >= ctx->opts.duration)
			break;
	}
	ring_buffer__consume(ctx->rb); /* nothing queued is lost at exit */
	check_lost(ctx);
	print_summary(ctx, (hv_now_ns(CLOCK_MONOTONIC) / 1e9) - start);
	return err;
}

static int load_rules(struct hv_ctx *ctx)
{
	char err[512];

	/* The packaged config, where operators edit, wins over the built-in rules. */
	if (!ctx->opts.rules_path && access(HV_ETC_RULES, F_OK) == 0)
		ctx->opts.rules_path = HV_ETC_RULES;
	ctx->rules = ctx->opts.rules_path ? hv_rules_load(ctx->opts.rules_path, err, sizeof(err))
					  : hv_rules_builtin();
	if (!ctx->rules) {
		if (ctx->opts.rules_path)
			hv_err("%s", err);
		return -1;
	}
	return 0;
}

int cmd_run(int argc, char **argv)
{
	struct hv_ctx ctx = {.out = stdout};
	struct json_object *status = json_object_new_object();
	char err[256];
	int rc;

	rc = parse_run_args(argc, argv, &ctx.opts);
	if (rc)
		goto cleanup;
	hv_json_errors = ctx.opts.json;
	libbpf_verbose = ctx.opts.verbose;
	libbpf_set_print(libbpf_print);
	rc = HV_EXIT_ERROR;
	if (load_rules(&ctx))
		goto cleanup; /* a bad rules file loads nothing */
	rc = hv_preflight(rules_want_correction(&ctx), ctx.opts.no_pin ? NULL : ctx.opts.pin_root);
	if (rc)
		goto cleanup;
	rc = HV_EXIT_ERROR;
	if (ctx.opts.output_path && !(ctx.out = fopen(ctx.opts.output_path, "a"))) {
		ctx.out = stdout;
		hv_err("cannot open --output %s: %s", ctx.opts.output_path, strerror(errno));
		goto cleanup;
	}
	ctx.metrics = hv_metrics_new();
	if (ctx.opts.metrics_addr &&
	    hv_metrics_serve(ctx.metrics, ctx.opts.metrics_addr, err, sizeof(err))) {
		hv_err("%s", err);
		goto cleanup;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (load_families(&ctx, status))
		goto cleanup;
	print_ready(&ctx, status);
	rc = event_loop(&ctx) ? HV_EXIT_ERROR : HV_EXIT_OK;
cleanup:
	for (int i = 1; i >= 0; i--)
		if (families[i] && families[i]->loaded) {
			families[i]->unload(&ctx);
			families[i]->loaded = false;
		}
	ring_buffer__free(ctx.rb);
	hv_metrics_free(ctx.metrics);
	hv_rules_free(ctx.rules);
	json_object_put(status);
	if (ctx.out && ctx.out != stdout)
		fclose(ctx.out);
	return rc;
}
