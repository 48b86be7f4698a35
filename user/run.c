// SPDX-License-Identifier: GPL-2.0
/*
 * `hvguard run`: load every watcher family this host has, print a ready
 * line once all programs are attached, then turn ring-buffer events into
 * alerts until SIGINT/SIGTERM or --duration, and close with a summary.
 * Signals are read from a signalfd in the loop (signals.h): SIGHUP reopens
 * --output and reloads the rules, SIGUSR1 prints the state.
 */
#include <bpf/libbpf.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "bpfstats.h"
#include "commands.h"
#include "exec.h"
#include "fdlimit.h"
#include "http.h"
#include "hvguard/clock.h"
#include "hvguard.h"
#include "journal.h"
#include "json_util.h"
#include "metrics.h"
#include "notify.h"
#include "pindir.h"
#include "preflight.h"
#include "reload.h"
#include "rules.h"
#include "signals.h"

struct hv_family *const hv_families[] = {&hv_clock_family, &hv_xen_family, NULL};

int hv_ring_add(struct hv_ctx *ctx, int map_fd, hv_ring_fn fn)
{
	if (ctx->rb)
		return ring_buffer__add(ctx->rb, map_fd, fn, ctx);
	ctx->rb = ring_buffer__new(map_fd, fn, ctx, NULL);
	return ctx->rb ? 0 : -errno;
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
		"                          (and /healthz: the main loop's health, each family's\n"
		"                          hooks); ADDR an IPv4 address or a host name (resolved\n"
		"                          at start); also [IPV6]:PORT, or :PORT or PORT\n"
		"                          for every IPv4 address\n"
		"  -d, --duration SECONDS  stop after SECONDS (default: until SIGINT/SIGTERM)\n"
		"  -c, --correct           repair every clock violation that has a correcting\n"
		"                          write, inside the VMM, before the guest runs again\n"
		"                          (needs CAP_SYS_PTRACE)\n"
		"  -o, --output FILE       write alerts to FILE (appended, created 0640) instead\n"
		"                          of stdout; SIGHUP reopens it (logrotate)\n"
		"      --log journald      one journal entry per alert, correction and line,\n"
		"                          PRIORITY from the rule's severity, HVGUARD_* fields\n"
		"                          (not with --json or --output); default: stdout\n"
		"  -e, --exec CMD          run CMD (sh -c) per alert and correction, its JSON on\n"
		"                          stdin; its stdout/stderr go to /dev/null (to the\n"
		"                          journal with --log journald)\n"
		"      --exec-timeout SECONDS  kill a hook's process group after SECONDS\n"
		"                          (default 10)\n"
		"      --exec-max N        hooks running at once (default 8); more are dropped\n"
		"                          and counted, detection never waits\n"
		"      --pin-dir DIR       where state is pinned (default " HV_PIN_ROOT "):\n"
		"                          root's alone, one daemon at a time\n"
		"      --no-pin            keep no state across restarts (not with\n"
		"                          corrections: a frozen VMM must outlive the daemon)\n"
		"      --reset-pins        drop the state pinned in the pin directory, then\n"
		"                          run (after an upgrade changed its layout)\n"
		"      --reset-pins=old-layout  drop it only when another version of\n"
		"                          hvguard left it (the service's way through an\n"
		"                          upgrade); never when a VMM it froze is recorded\n"
		"      --hooks TIER        where the clock checks hook: fentry (KVM's own\n"
		"                          tracepoints and its VM ioctl handler: only a VMM's\n"
		"                          clock work and VM ioctls pay; sees the pause and\n"
		"                          KVM_SET_CLOCK's flags), kvm-tracepoints (KVM's own\n"
		"                          tracepoints only: nothing else on the host pays)\n"
		"                          or syscalls (the ioctl syscall tracepoints: every\n"
		"                          thread of the host pays); default: the best that\n"
		"                          loads, said at start and in the ready line\n"
		"      --xen-hooks TIER    where the Xen checks hook: fentry (the privcmd,\n"
		"                          gntdev and gntalloc drivers' own functions: only\n"
		"                          calls into them pay) or syscalls (the ioctl, mmap\n"
		"                          and munmap syscall tracepoints: every thread of the\n"
		"                          host pays); default: the best that loads\n"
		"      --xen-deny HOW      how the Xen action 'deny' is carried out:\n"
		"                          bpf-lsm-sleepable, bpf-lsm or fmod-ret (a\n"
		"                          mechanism that does not load is an error);\n"
		"                          default: the best that loads, in that order\n"
		"      --max-vms-per-vmm N VMs one VMM process may have checked (default %d);\n"
		"                          its VMs past that are not checked, and that is said\n"
		"      --max-vms-per-user N the same for all VMMs of one non-root user\n"
		"                          (default %d; non-root users together: %d of %d)\n"
		"  -v, --verbose           also log pauses, resumes and libbpf warnings\n"
		"  -h, --help              this text\n"
		"\n"
		"Signals: SIGHUP reopens --output and reloads the rules file (an invalid one\n"
		"keeps the rules in use), SIGUSR1 prints the state, SIGINT/SIGTERM stop;\n"
		"SIGUSR2 and SIGPIPE are ignored.\n"
		"Exit: 0 stopped cleanly, 2 bad usage or rules, 3 not root, 4 kernel lacks\n"
		"BTF/tracepoints, 5 tracefs/bpffs not mountable, 6 pin directory not root's\n"
		"alone or its state of another layout, 7 pin directory in use by another\n"
		"hvguard.\n",
		HV_VMS_PER_VMM, HV_VMS_PER_USER, HV_VMS_NON_ROOT, HV_VM_TABLE);
}

/* A VM quota: 1 to what the table (or, per user, non-root users) holds. */
static int parse_quota(const char *opt, const char *arg, unsigned long max, unsigned *out)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno || end == arg || *end || *arg == '-' || v < 1 || v > max) {
		hv_err("%s wants a number of VMs from 1 to %lu, not '%s'", opt, max, arg);
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_run_args(int argc, char **argv, struct hv_opts *o)
{
	/* One option a line, not packed in columns: */
	/* clang-format off */
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
	    {"reset-pins", optional_argument, NULL, 'R'},
	    {"max-vms-per-vmm", required_argument, NULL, 'Q'},
	    {"max-vms-per-user", required_argument, NULL, 'U'},
	    {"log", required_argument, NULL, 'L'},
	    {"exec-timeout", required_argument, NULL, 'T'},
	    {"exec-max", required_argument, NULL, 'X'},
	    {"xen-hooks", required_argument, NULL, 'Y'},
	    {"xen-deny", required_argument, NULL, 'Z'},
	    {},
	};
	/* clang-format on */
	char *end, err[256];
	int c;

	o->pin_root = HV_PIN_ROOT;
	o->exec_timeout = HV_EXEC_TIMEOUT_DEFAULT;
	o->exec_max = HV_EXEC_MAX_DEFAULT;
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
			if (hv_listen_addr_parse(optarg, &o->metrics_listen, err, sizeof(err))) {
				hv_err("%s", err);
				return HV_EXIT_ERROR;
			}
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
		case 'R':
			if (!optarg) {
				o->reset_pins = HV_RESET_ALWAYS;
			} else if (!strcmp(optarg, "old-layout")) {
				o->reset_pins = HV_RESET_OLD_LAYOUT;
			} else {
				hv_err("--reset-pins=%s: the only value is old-layout (drop the "
				       "state only when another version left it)",
				       optarg);
				return HV_EXIT_ERROR;
			}
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'H':
			if (strcmp(optarg, "fentry") && strcmp(optarg, "kvm-tracepoints") &&
			    strcmp(optarg, "syscalls")) {
				hv_err(
				    "--hooks wants fentry, kvm-tracepoints or syscalls, not '%s'",
				    optarg);
				return HV_EXIT_ERROR;
			}
			o->hooks = optarg;
			break;
		case 'Q':
		case 'U':
			if (c == 'Q' ? parse_quota("--max-vms-per-vmm", optarg, HV_VM_TABLE,
						   &o->vms_per_vmm)
				     : parse_quota("--max-vms-per-user", optarg, HV_VMS_NON_ROOT,
						   &o->vms_per_user))
				return HV_EXIT_ERROR;
			break;
		case 'L':
			if (strcmp(optarg, "journald") && strcmp(optarg, "stdout")) {
				hv_err("--log wants journald or stdout, not '%s'", optarg);
				return HV_EXIT_ERROR;
			}
			o->journald = !strcmp(optarg, "journald");
			break;
		case 'T':
			o->exec_timeout = strtod(optarg, &end);
			if (*end || !(o->exec_timeout > 0)) {
				hv_err(
				    "--exec-timeout wants a positive number of seconds, not '%s'",
				    optarg);
				return HV_EXIT_ERROR;
			}
			break;
		case 'X':
			o->exec_max = (int)strtol(optarg, &end, 10);
			if (*end || o->exec_max < 1 || o->exec_max > HV_EXEC_MAX_LIMIT) {
				hv_err("--exec-max wants a number from 1 to %d, not '%s'",
				       HV_EXEC_MAX_LIMIT, optarg);
				return HV_EXIT_ERROR;
			}
			break;
		case 'Y':
			if (strcmp(optarg, "fentry") && strcmp(optarg, "syscalls")) {
				hv_err("--xen-hooks wants fentry or syscalls, not '%s'", optarg);
				return HV_EXIT_ERROR;
			}
			o->xen_hooks = optarg;
			break;
		case 'Z':
			if (strcmp(optarg, "bpf-lsm-sleepable") && strcmp(optarg, "bpf-lsm") &&
			    strcmp(optarg, "fmod-ret")) {
				hv_err(
				    "--xen-deny wants bpf-lsm-sleepable, bpf-lsm or fmod-ret, not "
				    "'%s'",
				    optarg);
				return HV_EXIT_ERROR;
			}
			o->xen_deny = optarg;
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
	if (o->no_pin && o->reset_pins) {
		hv_err("--reset-pins resets the pin directory, --no-pin uses none: pick one");
		return HV_EXIT_ERROR;
	}
	if (o->journald && (o->json || o->output_path)) {
		hv_err("--log journald sends everything to the journal: not with %s",
		       o->json ? "--json" : "--output");
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

/* A VMM frozen for a correction is recorded in the pinned hv_clock_frozen
 * so that the next daemon continues it if this one dies mid-freeze; with
 * --no-pin that record would die with the daemon, and the VMM stay stopped. */
static int check_no_pin(const struct hv_ctx *ctx)
{
	if (!ctx->opts.no_pin || !rules_want_correction(ctx))
		return HV_EXIT_OK;
	hv_err("--no-pin cannot go with corrections (--correct, or action: correct in the "
	       "rules): a VMM frozen for a correction is recorded in the pin directory so that "
	       "the next hvguard lets it go if this one dies. Drop --no-pin (--pin-dir DIR gives "
	       "this daemon state of its own)");
	return HV_EXIT_ERROR;
}

/* The pin directory, checked and locked for the daemon's whole life. */
static struct hv_pindir pindir = {.fd = -1};

static int take_pindir(struct hv_ctx *ctx)
{
	int rc;

	if (ctx->opts.no_pin)
		return HV_EXIT_OK;
	rc = hv_pindir_take(&pindir, ctx->opts.pin_root, ctx->opts.reset_pins);
	ctx->opts.pin_at = pindir.at;
	return rc;
}

static int load_families(struct hv_ctx *ctx, struct json_object *status)
{
	struct hv_family *f;
	char why[256];
	int loaded = 0;

	for_each_family(f) {
		why[0] = '\0';
		if (!f->present(ctx, why, sizeof(why))) {
			hv_json_add_str(status, f->name, why);
			hv_log(ctx, "%s checks off: %s", f->name, why);
			continue;
		}
		if (f->load(ctx))
			return -1;
		f->loaded = true;
		loaded++;
		hv_json_add_str(status, f->name, "attached");
		hv_log(ctx, "%s checks attached on %s hooks", f->name, f->hooks ? f->hooks : "?");
	}
	if (!loaded) {
		hv_err("nothing to watch on this host: no KVM and no Xen");
		return -1;
	}
	return 0;
}

static struct hv_family *family_named(const char *name)
{
	struct hv_family *f;

	for_each_family(f)
		if (!strcmp(f->name, name))
			return f;
	return NULL;
}

/* Each family's state for the exporter: /healthz's lines and
 * hvguard_family_attached{family,hooks}. */
static void export_families(struct hv_ctx *ctx, struct json_object *status)
{
	char text[1024] = "", labels[96];
	size_t off = 0;

	json_object_object_foreach(status, name, state) {
		struct hv_family *f = family_named(name);
		bool on = f && f->loaded;

		if (off < sizeof(text) && on)
			off += snprintf(text + off, sizeof(text) - off, "%s: attached, hooks %s\n",
					name, f->hooks);
		else if (off < sizeof(text))
			off += snprintf(text + off, sizeof(text) - off, "%s: off: %s\n", name,
					json_object_get_string(state));
		snprintf(labels, sizeof(labels), "family=\"%s\",hooks=\"%s\"", name,
			 on ? f->hooks : "none");
		hv_metric_set(ctx->metrics, HV_METRIC_FAMILY_ATTACHED, labels, on);
	}
	hv_http_set_families(ctx->http, text);
}

/* {"clock": "kvm-tracepoints", "xen": "syscalls"}: where each family hooks. */
static struct json_object *hooks_json(void)
{
	struct json_object *o = json_object_new_object();
	struct hv_family *f;

	for_each_family(f)
		if (f->loaded)
			hv_json_add_str(o, f->name, f->hooks);
	return o;
}

static void print_ready(struct hv_ctx *ctx, struct json_object *status)
{
	struct json_object *o = json_object_new_object();

	hv_json_add_str(o, "type", "ready");
	hv_json_add_str(o, "version", HVGUARD_VERSION);
	hv_json_add_int(o, "pid", getpid());
	hv_json_add_str(o, "rules", ctx->rules->source);
	hv_json_add_bool(o, "correct", ctx->opts.correct);
	hv_json_add_str(o, "pin_dir", ctx->opts.no_pin ? NULL : ctx->opts.pin_root);
	hv_json_add_str(o, "metrics", ctx->opts.metrics_addr);
	json_object_object_add(o, "families", json_object_get(status));
	json_object_object_add(o, "hooks", hooks_json());
	hv_log(ctx, "hvguard %s watching (rules: %s%s); Ctrl-C to stop", HVGUARD_VERSION,
	       ctx->rules->source, ctx->opts.correct ? ", correcting" : "");
	hv_emit_json(ctx, o);
	hv_notify_ready(ctx->rules->source, ctx->opts.correct);
}

static void check_lost(struct hv_ctx *ctx)
{
	struct hv_family *f;
	uint64_t lost = 0;

	for_each_family(f)
		if (f->loaded && f->lost)
			lost += f->lost(ctx);
	if (lost == ctx->events_lost)
		return;
	hv_warn("%llu event(s) lost: the ring buffer was full (%llu in all)",
		(unsigned long long)(lost - ctx->events_lost), (unsigned long long)lost);
	ctx->events_lost = lost;
	hv_metric_set(ctx->metrics, HV_METRIC_EVENTS_LOST, "", lost);
}

/* The summary's counters: what SIGUSR1's state and the exit summary share. */
static struct json_object *counters_json(struct hv_ctx *ctx, const char *type, double elapsed)
{
	struct json_object *o = json_object_new_object();
	struct json_object *by_rule = json_object_new_object();
	struct json_object *exec = hv_exec_json();
	struct hv_family *f;

	for (int i = 0; i < HV_RULE_COUNT; i++)
		hv_json_add_uint(by_rule, hv_rule_table[i].id, ctx->violations[i]);
	hv_json_add_str(o, "type", type);
	hv_json_add_double(o, "duration_s", elapsed);
	hv_json_add_uint(o, "alerts", ctx->alerts);
	json_object_object_add(o, "violations", by_rule);
	hv_json_add_uint(o, "events_lost", ctx->events_lost);
	if (exec)
		json_object_object_add(o, "exec", exec);
	for_each_family(f)
		if (f->loaded && f->summary)
			f->summary(ctx, o);
	return o;
}

static void print_summary(struct hv_ctx *ctx, double elapsed)
{
	struct json_object *o = counters_json(ctx, "summary", elapsed);

	hv_log(ctx, "stopped after %.1f s: %llu alert(s), %llu event(s) lost", elapsed,
	       (unsigned long long)ctx->alerts, (unsigned long long)ctx->events_lost);
	hv_emit_json(ctx, o);
}

static int64_t get_int(struct json_object *o, const char *a, const char *b)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, a, &v) || (b && !json_object_object_get_ex(v, b, &v)))
		return -1;
	return json_object_get_int64(v);
}

/* SIGUSR1: one "state" object (the summary's fields, plus the rules, the
 * families and their hooks), or one line of text. */
static void print_state(struct hv_ctx *ctx, double elapsed)
{
	struct json_object *o = counters_json(ctx, "state", elapsed);
	struct json_object *hooks = hooks_json();
	char fams[128] = "", exec[160] = "", tracked[48] = "";
	size_t off = 0;
	int64_t vms;

	json_object_object_foreach(hooks, name, tier) {
		off += snprintf(fams + off, sizeof(fams) - off, "%s%s (%s)", off ? ", " : "", name,
				json_object_get_string(tier));
		if (off >= sizeof(fams))
			break;
	}
	if (ctx->opts.exec_cmd)
		snprintf(exec, sizeof(exec),
			 "; exec ran %lld, dropped %lld, failed %lld, timeout %lld, running %lld",
			 (long long)get_int(o, "exec", "ran"),
			 (long long)get_int(o, "exec", "dropped"),
			 (long long)get_int(o, "exec", "failed"),
			 (long long)get_int(o, "exec", "timeout"),
			 (long long)get_int(o, "exec", "running"));
	vms = get_int(o, "clock", "vms");
	if (vms >= 0)
		snprintf(tracked, sizeof(tracked), "; %lld KVM VM(s) tracked", (long long)vms);
	hv_log(ctx,
	       "state: up %.1f s, rules %s, families %s%s; %llu alert(s), %llu event(s) lost%s",
	       elapsed, ctx->rules->source, fams, tracked, (unsigned long long)ctx->alerts,
	       (unsigned long long)ctx->events_lost, exec);
	hv_json_add_int(o, "pid", getpid());
	hv_json_add_str(o, "rules", ctx->rules->source);
	json_object_object_add(o, "hooks", hooks);
	hv_emit_json(ctx, o);
}

/* The families' per-program BPF stats, once a second (with --metrics). */
static void export_bpf_stats(struct hv_ctx *ctx, double now)
{
	static double next;
	struct hv_family *f;

	if (now < next)
		return;
	next = now + 1;
	for_each_family(f)
		if (f->loaded && f->object)
			hv_bpf_stats_export(ctx, f->object());
}

/* SIGHUP: first the output (so what the reload says lands in the new
 * file), then the rules. */
static void on_hangup(struct hv_ctx *ctx)
{
	hv_output_reopen(ctx);
	hv_reload_rules(ctx);
}

static void poll_families(struct hv_ctx *ctx)
{
	struct hv_family *f;

	for_each_family(f)
		if (f->loaded && f->poll)
			f->poll(ctx);
}

static int watch(int ep, int fd)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};

	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

/* One wait for both the ring buffers (libbpf's epoll fd is itself
 * pollable) and the signals; at most 100 ms, for the families' periodic
 * work and the hooks' timeouts. */
static int event_loop(struct hv_ctx *ctx, int sfd)
{
	double start = (hv_now_ns(CLOCK_MONOTONIC) / 1e9), now;
	int ep = epoll_create1(EPOLL_CLOEXEC), err = 0;
	struct epoll_event evs[2];
	bool stop = false;
	unsigned sigs;

	if (ep < 0 || watch(ep, ring_buffer__epoll_fd(ctx->rb)) || watch(ep, sfd)) {
		hv_err("cannot wait for events: %s", strerror(errno));
		err = -errno;
		stop = true;
	}
	while (!stop) {
		hv_http_loop_alive(ctx->http);
		if (epoll_wait(ep, evs, 2, 100) < 0 && errno != EINTR) {
			hv_err("waiting for events failed: %s", strerror(errno));
			err = -errno;
			break;
		}
		err = ring_buffer__poll(ctx->rb, 0);
		if (err < 0 && err != -EINTR) {
			hv_err("reading events failed: %s", strerror(-err));
			break;
		}
		err = 0;
		now = hv_now_ns(CLOCK_MONOTONIC) / 1e9;
		sigs = hv_signals_take(sfd);
		stop = sigs & HV_SIG_STOP;
		if (sigs & HV_SIG_HUP)
			on_hangup(ctx);
		if (sigs & HV_SIG_STATE)
			print_state(ctx, now - start);
		poll_families(ctx);
		check_lost(ctx);
		hv_exec_poll(ctx);
		export_bpf_stats(ctx, now);
		if (ctx->opts.duration > 0 && now - start >= ctx->opts.duration)
			break;
	}
	if (ep >= 0)
		close(ep);
	ring_buffer__consume(ctx->rb); /* nothing queued is lost at exit */
	check_lost(ctx);
	hv_exec_poll(ctx);
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

/* In the reverse of load order: the first loaded goes last. */
static void unload_families(struct hv_ctx *ctx)
{
	size_t n = 0;

	while (hv_families[n])
		n++;
	while (n--) {
		struct hv_family *f = hv_families[n];

		if (f->loaded)
			f->unload(ctx);
		f->loaded = false;
	}
}

int cmd_run(int argc, char **argv)
{
	struct hv_ctx ctx = {.out = stdout};
	struct json_object *status = json_object_new_object();
	char err[256];
	int rc, sfd = -1;

	rc = parse_run_args(argc, argv, &ctx.opts);
	if (rc)
		goto cleanup;
	hv_json_errors = ctx.opts.json;
	hv_journal_on = ctx.opts.journald;
	libbpf_verbose = ctx.opts.verbose;
	libbpf_set_print(libbpf_print);
	hv_fdlimit_raise(&ctx); /* before anything opens a file */
	rc = HV_EXIT_ERROR;
	if (load_rules(&ctx))
		goto cleanup; /* a bad rules file loads nothing */
	rc = check_no_pin(&ctx);
	if (rc)
		goto cleanup;
	rc = hv_preflight(rules_want_correction(&ctx), !ctx.opts.no_pin);
	if (rc)
		goto cleanup;
	rc = HV_EXIT_ERROR;
	if (hv_output_open(&ctx))
		goto cleanup;
	/* Before any thread exists (the exporter's, the watchdog's). */
	sfd = hv_signals_block();
	if (!sfd)
		sfd = hv_signals_fd();
	if (sfd < 0) {
		hv_err("cannot set up signal handling: %s", strerror(-sfd));
		goto cleanup;
	}
	ctx.metrics = hv_metrics_new();
	hv_metrics_rules(ctx.metrics, ctx.rules);
	if (hv_exec_init(&ctx))
		goto cleanup;
	if (ctx.opts.metrics_addr &&
	    !(ctx.http = hv_http_start(ctx.metrics, &ctx.opts.metrics_listen, ctx.opts.metrics_addr,
				       err, sizeof(err)))) {
		hv_err("%s", err);
		goto cleanup;
	}
	rc = take_pindir(&ctx);
	if (rc)
		goto cleanup;
	rc = HV_EXIT_ERROR;
	if (load_families(&ctx, status))
		goto cleanup;
	export_families(&ctx, status);
	hv_bpf_stats_start(&ctx);
	print_ready(&ctx, status);
	rc = event_loop(&ctx, sfd) ? HV_EXIT_ERROR : HV_EXIT_OK;
cleanup:
	unload_families(&ctx);
	ring_buffer__free(ctx.rb);
	hv_bpf_stats_stop();
	hv_exec_fini();
	if (sfd >= 0)
		close(sfd);
	hv_http_stop(ctx.http);
	hv_pindir_close(&pindir); /* the lock goes once nothing is frozen */
	hv_metrics_free(ctx.metrics);
	hv_rules_free(ctx.rules);
	json_object_put(status);
	if (ctx.out && ctx.out != stdout)
		fclose(ctx.out);
	return rc;
}
