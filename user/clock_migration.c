// SPDX-License-Identifier: GPL-2.0
/*
 * Live migration on one host (user/migration.h has the model): records a
 * departure when a VMM exits with VMs that ran, and at an arrival's first
 * guest entry (a record BPF sends before the guest runs) finds its source
 * among the departures and the paused VMs of other processes, then decides
 * migration-clock-warp.
 *
 * A sample of a VM's clocks is taken here, against CLOCK_REALTIME: its
 * guest TSC is the host's TSC (rdtsc) plus the vCPU's TSC offset, its
 * kvmclock is KVM's clock base (CLOCK_MONOTONIC_RAW counted from boot,
 * docs/hooks.md) plus kvmclock_offset. Both hold at any moment, whether
 * the vCPUs run or not, so a sample taken a little after the event is
 * moved back to it exactly.
 */
#include <bpf/bpf.h>
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timex.h>
#include <time.h>
#include <unistd.h>

#include "clock_user.h"
#include "format.h"
#include "hostclock.h"
#include "hvguard/clock_logic.h" /* hv_abs64 */
#include "hvguard.h"
#include "json_util.h"
#include "metrics.h"
#include "migration.h"
#include "migration_json.h"
#include "rules.h"

#define LIVE_CANDIDATES_MAX 256 /* live VMs looked at per arrival */
#define NAME_CACHE	    256

static void unchecked(struct hv_ctx *ctx, const char *reason, const char *what);
static int vms_fd = -1, vcpus_fd = -1, deps_fd = -1;
static char host_name[HV_MIG_HOST_LEN];

/* -name and -uuid of VMMs, kept from their first VM: gone with /proc at exit. */
static struct {
	int pid;
	char name[HV_MIG_NAME_LEN];
	char uuid[HV_MIG_UUID_LEN];
} names[NAME_CACHE];

static int64_t realtime_of(const struct hv_host_clocks *c, int64_t boot_ns)
{
	return c->real - (c->boot - boot_ns);
}

/* The host clock's maximum error as NTP states it, -1 when unsynchronized. */
static int64_t clock_error_ns(void)
{
	struct timex tx = {};
	int st = adjtimex(&tx);

	if (st < 0 || st == TIME_ERROR || (tx.status & STA_UNSYNC))
		return -1;
	return (int64_t)tx.maxerror * 1000;
}

/* Arrivals by what their check found: the summary's and the metric's. */
static const char *const result_names[] = {"ok", "warped", "unmatched", "ambiguous", "conflict"};

static void observe_warp(struct hv_ctx *ctx, double seconds)
{
	hv_metric_observe(ctx->metrics, HV_METRIC_MIGRATION_CLOCK_WARP, seconds);
}

static const char *const unchecked_reasons[] = {"scaled-tsc", "vm-gone", "no-tsc-offset",
						"out-of-memory"};

/* Every series a dashboard queries exists from the start, at zero. */
static void series_at_zero(struct hv_ctx *ctx)
{
	char labels[48];

	observe_warp(ctx, NAN);
	for (size_t i = 0; i < sizeof(result_names) / sizeof(result_names[0]); i++) {
		snprintf(labels, sizeof(labels), "result=\"%s\"", result_names[i]);
		hv_metric_add(ctx->metrics, HV_METRIC_MIGRATIONS, labels, 0);
	}
	for (size_t i = 0; i < sizeof(unchecked_reasons) / sizeof(unchecked_reasons[0]); i++) {
		snprintf(labels, sizeof(labels), "reason=\"%s\"", unchecked_reasons[i]);
		hv_metric_add(ctx->metrics, HV_METRIC_MIGRATION_UNCHECKED, labels, 0);
	}
	hv_metric_add(ctx->metrics, HV_METRIC_MIGRATION_DEPARTURES_DROPPED, "", 0);
}

void hv_mig_init(struct hv_ctx *ctx, int vms, int vcpus, int departures)
{
	series_at_zero(ctx);
	vms_fd = vms;
	vcpus_fd = vcpus;
	deps_fd = departures;
	if (gethostname(host_name, sizeof(host_name)))
		host_name[0] = '\0';
	host_name[sizeof(host_name) - 1] = '\0';
}

/* A VMM's command line is its own to write: no control character of it
 * reaches a record (the join refuses records that hold one). */
static void vmm_arg(int pid, const char *opt, char *buf, size_t len)
{
	if (hv_proc_vmm_arg(pid, opt, buf, len))
		buf[0] = '\0';
	for (char *c = buf; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
}

void hv_mig_vmm_seen(int pid)
{
	unsigned i = (unsigned)pid % NAME_CACHE;

	if (names[i].pid == pid)
		return;
	names[i].pid = pid;
	vmm_arg(pid, "-name", names[i].name, sizeof(names[i].name));
	vmm_arg(pid, "-uuid", names[i].uuid, sizeof(names[i].uuid));
}

static void names_of(int pid, struct hv_mig_record *r)
{
	unsigned i = (unsigned)pid % NAME_CACHE;

	if (names[i].pid != pid)
		hv_mig_vmm_seen(pid);
	snprintf(r->name, sizeof(r->name), "%s", names[i].name);
	snprintf(r->uuid, sizeof(r->uuid), "%s", names[i].uuid);
}

/* The vCPU record KVM's last clock update left (khz, PVTI, ratio). */
static int vcpu_record(__u64 kvm, __u32 id, struct hv_clock_vcpu *out)
{
	struct hv_clock_vcpu_key k = {.kvm = kvm, .vcpu_id = id};

	return bpf_map_lookup_elem(vcpus_fd, &k, out);
}

static int cmp_vcpu(const void *a, const void *b)
{
	const struct hv_mig_vcpu *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/*
 * The VM's clocks now. Refused (-ENOTSUP) for a scaled TSC (the guest's
 * TSC is then not host TSC + offset) and for a VM without a known offset.
 */
static int sample_vm(const struct hv_clock_vm *vm, const struct hv_host_clocks *now,
		     __s64 kvmclock_offset, struct hv_mig_record *r)
{
	r->nr_vcpus = 0;
	for (int s = 0; s < HV_MAX_VCPUS; s++) {
		if (!vm->vcpu_ids[s] || !(vm->tsc_known[s / 64] & (1ull << (s % 64))))
			continue;
		r->vcpu[r->nr_vcpus].id = vm->vcpu_ids[s] - 1;
		r->vcpu[r->nr_vcpus].tsc = (int64_t)(now->tsc + (uint64_t)vm->tsc_offset[s]);
		r->nr_vcpus++;
	}
	if (!r->nr_vcpus)
		return -ENOENT;
	qsort(r->vcpu, r->nr_vcpus, sizeof(r->vcpu[0]), cmp_vcpu);
	r->realtime_ns = now->real;
	r->tai_ns = now->tai;
	r->kvmclock_ns = now->base + kvmclock_offset;
	r->clock_error_ns = clock_error_ns();
	snprintf(r->host, sizeof(r->host), "%s", host_name);
	r->vm = vm->id;
	r->pid = (int32_t)vm->owner_tgid;
	return 0;
}

static bool ratio_unscaled(__u64 ratio)
{
	return ratio && !(ratio & (ratio - 1));
}

/* A VM's departure sample now, from its pinned state. */
static int departure_now(__u64 key, const struct hv_clock_vm *vm, const struct hv_host_clocks *now,
			 struct hv_mig_record *d)
{
	struct hv_clock_vcpu vc;
	int err;

	memset(d, 0, sizeof(*d));
	d->kind = HV_MIG_DEPARTURE;
	for (int s = 0; s < HV_MAX_VCPUS; s++)
		if (vm->vcpu_ids[s] && !vcpu_record(key, vm->vcpu_ids[s] - 1, &vc))
			goto found;
	return -ENOENT; /* never had a clock update: never ran */
found:
	if (!ratio_unscaled(vc.tsc_ratio))
		return -ENOTSUP;
	d->tsc_khz = vc.tsc_khz;
	d->pvti_mul = vc.pvti.tsc_to_system_mul;
	d->pvti_shift = vc.pvti.tsc_shift;
	err = sample_vm(vm, now, vc.kvmclock_offset, d);
	names_of(d->pid, d);
	return err;
}

static void to_pinned(const struct hv_mig_record *d, struct hv_clock_departure *p)
{
	memset(p, 0, sizeof(*p));
	p->vm = d->vm;
	p->realtime_ns = d->realtime_ns;
	p->tai_ns = d->tai_ns;
	p->kvmclock_ns = d->kvmclock_ns;
	p->saved_by_ns = d->saved_by_ns;
	p->clock_error_ns = d->clock_error_ns;
	p->pid = d->pid;
	p->tsc_khz = d->tsc_khz;
	p->pvti_mul = d->pvti_mul;
	p->pvti_shift = d->pvti_shift;
	p->nr_vcpus = d->nr_vcpus;
	memcpy(p->name, d->name, sizeof(p->name));
	memcpy(p->uuid, d->uuid, sizeof(p->uuid));
	for (__u32 i = 0; i < d->nr_vcpus; i++) {
		p->vcpu_ids[i] = d->vcpu[i].id;
		p->tsc[i] = d->vcpu[i].tsc;
	}
}

static void from_pinned(const struct hv_clock_departure *p, struct hv_mig_record *d)
{
	memset(d, 0, sizeof(*d));
	d->kind = HV_MIG_DEPARTURE;
	d->vm = p->vm;
	d->realtime_ns = p->realtime_ns;
	d->tai_ns = p->tai_ns;
	d->kvmclock_ns = p->kvmclock_ns;
	d->saved_by_ns = p->saved_by_ns;
	d->clock_error_ns = p->clock_error_ns;
	d->pid = (int32_t)p->pid;
	d->tsc_khz = p->tsc_khz;
	d->pvti_mul = p->pvti_mul;
	d->pvti_shift = p->pvti_shift;
	d->nr_vcpus = p->nr_vcpus < HV_MAX_VCPUS ? p->nr_vcpus : HV_MAX_VCPUS;
	snprintf(d->name, sizeof(d->name), "%.*s", (int)sizeof(p->name), p->name);
	snprintf(d->uuid, sizeof(d->uuid), "%.*s", (int)sizeof(p->uuid), p->uuid);
	snprintf(d->host, sizeof(d->host), "%s", host_name);
	for (__u32 i = 0; i < d->nr_vcpus; i++) {
		d->vcpu[i].id = p->vcpu_ids[i];
		d->vcpu[i].tsc = p->tsc[i];
	}
}

/*
 * Room in the pinned departures: those past the window are forgotten, and
 * when it is still full the oldest goes (counted: a departure lost).
 */
static void departures_prune(struct hv_ctx *ctx, int64_t now_real)
{
	struct hv_clock_departure p;
	__u64 key, *prev = NULL, oldest = 0, gone[HV_DEPARTURES];
	int64_t oldest_t = INT64_MAX;
	int n = 0, ng = 0;

	while (!bpf_map_get_next_key(deps_fd, prev, &key) && ng < HV_DEPARTURES) {
		prev = &key;
		if (bpf_map_lookup_elem(deps_fd, &key, &p))
			continue;
		n++;
		if (now_real - p.saved_by_ns > HV_MIG_WINDOW_NS)
			gone[ng++] = key;
		else if (p.realtime_ns < oldest_t)
			oldest_t = p.realtime_ns, oldest = key;
	}
	for (int i = 0; i < ng; i++)
		bpf_map_delete_elem(deps_fd, &gone[i]);
	if (n - ng >= HV_DEPARTURES && oldest) {
		bpf_map_delete_elem(deps_fd, &oldest);
		hv_metric_add(ctx->metrics, HV_METRIC_MIGRATION_DEPARTURES_DROPPED, "", 1);
	}
}

static void emit_record(struct hv_ctx *ctx, const struct hv_mig_record *r, const char *comm,
			uint64_t ts_ns, struct json_object *more)
{
	struct json_object *o = json_object_new_object();

	hv_json_add_str(o, "type", "event");
	hv_json_add_str(o, "event", r->kind == HV_MIG_DEPARTURE ? "departure" : "arrival");
	hv_json_add_uint(o, "ts_ns", ts_ns);
	hv_json_add_int(o, "pid", r->pid);
	hv_json_add_str(o, "comm", comm ? comm : "");
	hv_json_add_int(o, "vm", (int64_t)r->vm);
	hv_json_add_str(o, "vm_name", r->name[0] ? r->name : NULL);
	hv_json_add_null(o, "vcpu");
	hv_mig_record_to_json(r, o);
	json_object_object_foreach(more, k, v) {
		json_object_object_add(o, k, json_object_get(v));
	}
	json_object_put(more);
	hv_emit_json(ctx, o);
}

static void depart(struct hv_ctx *ctx, struct hv_mig_record *d, const char *comm, uint64_t ts_ns,
		   const char *reason)
{
	struct hv_clock_departure p;
	struct json_object *more = json_object_new_object();
	__u64 key = d->vm;

	departures_prune(ctx, d->realtime_ns);
	to_pinned(d, &p);
	if (bpf_map_update_elem(deps_fd, &key, &p, BPF_ANY))
		hv_warn("migration: departure of VM %llu not kept (%s): an arrival from it will "
			"not be matched",
			(unsigned long long)d->vm, strerror(errno));
	hv_json_add_str(more, "reason", reason);
	emit_record(ctx, d, comm, ts_ns, more);
	if (ctx->opts.verbose || !strcmp(reason, "paused"))
		hv_log(ctx, "info departure %s[%d] vm %llu: its clocks left with it (%s)", comm,
		       d->pid, (unsigned long long)d->vm, reason);
}

/* A VM's VMM is gone: a VM that ran is a departure (a migration's source,
 * or a VM that ended; only an arrival tells which). saved_by_boot: the
 * VMM's exit, or now when it went while no daemon ran. */
void hv_mig_vm_gone(struct hv_ctx *ctx, __u64 key, const struct hv_clock_vm *vm,
		    uint64_t saved_by_boot, const char *comm, const char *why)
{
	struct hv_mig_record *d;
	struct hv_host_clocks now;
	struct hv_clock_departure p;
	__u64 id = vm->id;
	int err;

	if (deps_fd < 0 || vm->phase == VM_SETUP || !bpf_map_lookup_elem(deps_fd, &id, &p))
		return; /* never ran, or departed already (found paused by an arrival) */
	d = malloc(sizeof(*d));
	if (!d) {
		unchecked(ctx, "out-of-memory", "a departure");
		return;
	}
	hv_host_clocks_read(&now);
	err = departure_now(key, vm, &now, d);
	if (err == -ENOTSUP)
		unchecked(ctx, "scaled-tsc", "a departure");
	if (!err) {
		d->saved_by_ns = realtime_of(&now, (int64_t)saved_by_boot);
		depart(ctx, d, comm, saved_by_boot, why);
	}
	free(d);
}

/* Checked nothing, and says so: counted by reason, never silent. */
static void unchecked(struct hv_ctx *ctx, const char *reason, const char *what)
{
	char labels[64];

	snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
	hv_metric_add(ctx->metrics, HV_METRIC_MIGRATION_UNCHECKED, labels, 1);
	hv_warn("migration: %s not checked: %s", what, reason);
}

/* Is thread tid of pid inside KVM_RUN, or on a CPU (maybe in the guest)? */
static bool thread_in_run(int pid, const char *tid)
{
	char path[96], buf[256];
	unsigned long nr, fd, cmd;

	snprintf(path, sizeof(path), "/proc/%d/task/%.16s/syscall", pid, tid);
	if (hv_read_file(path, buf, sizeof(buf)) <= 0)
		return false; /* gone, or not ours to read: not running a guest */
	if (!strncmp(buf, "running", 7))
		return true;
	return sscanf(buf, "%lu 0x%lx 0x%lx", &nr, &fd, &cmd) == 3 && nr == 16 && cmd == HV_KVM_RUN;
}

/*
 * The threads that run the VM's vCPUs, as KVM's last clock update of each
 * saw them (a VMM's other threads, its main loop answering QMP or its
 * migration thread, are on a CPU now and then and say nothing about the
 * guest). 0 when no vCPU had one: then every thread is looked at.
 */
static int vcpu_threads(__u64 key, const struct hv_clock_vm *vm, __u32 *tids, int max)
{
	struct hv_clock_vcpu vc;
	int n = 0;

	for (__u32 i = 0; i < vm->nr_vcpus && i < HV_MAX_VCPUS && n < max; i++)
		if (vm->vcpu_ids[i] && !vcpu_record(key, vm->vcpu_ids[i] - 1, &vc) && vc.tid)
			tids[n++] = vc.tid;
	return n;
}

/* Is a vCPU thread of pid (every thread when none is known) inside
 * KVM_RUN, or on a CPU? 1 yes, 0 no, -1 cannot tell. */
static int vmm_in_run(int pid, const __u32 *tids, int ntids)
{
	char path[64], tid[16];
	struct dirent *de;
	int in = 0, n = 0;
	DIR *dir;

	for (int i = 0; i < ntids; i++) {
		snprintf(tid, sizeof(tid), "%u", tids[i]);
		if (thread_in_run(pid, tid))
			return 1;
	}
	if (ntids)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while (!in && (de = readdir(dir)) && n++ < 4096)
		if (de->d_name[0] != '.' && thread_in_run(pid, de->d_name))
			in = 1;
	closedir(dir);
	return in;
}

/* Paused: no vCPU thread in KVM_RUN or on a CPU, at one of three looks 2 ms
 * apart (a paused VMM's threads are on a CPU now and then: where its vCPU
 * threads are not known, any of them). */
static bool vmm_paused(int pid, __u64 key, const struct hv_clock_vm *vm)
{
	__u32 tids[HV_MAX_VCPUS];
	int ntids = vcpu_threads(key, vm, tids, HV_MAX_VCPUS);

	if (kill(pid, 0) && errno == ESRCH)
		return false;
	for (int i = 0; i < 3; i++) {
		int in = vmm_in_run(pid, tids, ntids);

		if (in == 0)
			return true;
		if (in < 0)
			return false;
		usleep(2000);
	}
	return false;
}

struct source {
	int found;	      /* departures matched */
	int looked;	      /* candidates compared */
	int live_skipped;     /* live VMs past LIVE_CANDIDATES_MAX */
	bool live;	      /* the match is a paused VM, not a pinned departure */
	__u32 matched_before; /* arrivals the pinned departure matched already */
	struct hv_mig_record d;
	struct hv_mig_result r;
};

/* A candidate source: a pinned departure, or a live VM (key, vm) that must
 * be paused in its VMM. */
static void consider(struct source *s, const struct hv_mig_record *d, const struct hv_mig_record *a,
		     __u64 key, const struct hv_clock_vm *live, __u32 matched_before,
		     struct hv_mig_result *tmp)
{
	s->looked++;
	if (hv_mig_match(d, a, &hv_mig_default_limits, tmp) != HV_MIG_MATCH)
		return;
	if (live && !vmm_paused(d->pid, key, live))
		return;
	if (s->found++)
		return; /* ambiguous: the first one is not reported as the source */
	s->d = *d;
	s->r = *tmp;
	s->live = live != NULL;
	s->matched_before = matched_before;
}

static void from_departures(struct source *s, const struct hv_mig_record *a,
			    struct hv_mig_record *d, struct hv_mig_result *tmp)
{
	struct hv_clock_departure p;
	__u64 key, *prev = NULL;

	while (!bpf_map_get_next_key(deps_fd, prev, &key)) {
		prev = &key;
		if (bpf_map_lookup_elem(deps_fd, &key, &p))
			continue;
		from_pinned(&p, d);
		consider(s, d, a, 0, NULL, p.matched, tmp);
	}
}

/* The VMs of other processes, if paused (a source QEMU stays paused after
 * the migration until it is told to quit). */
static void from_live(struct source *s, const struct hv_mig_record *a,
		      const struct hv_host_clocks *now, struct hv_mig_record *d,
		      struct hv_mig_result *tmp)
{
	struct hv_clock_departure p;
	struct hv_clock_vm vm;
	__u64 key, *prev = NULL;
	int n = 0;

	while (!bpf_map_get_next_key(vms_fd, prev, &key)) {
		prev = &key;
		if (bpf_map_lookup_elem(vms_fd, &key, &vm) || (int)vm.owner_tgid == a->pid ||
		    vm.phase == VM_SETUP)
			continue;
		__u64 id = vm.id;

		if (!bpf_map_lookup_elem(deps_fd, &id, &p))
			continue; /* a departure already: looked at above */
		if (n++ >= LIVE_CANDIDATES_MAX) {
			s->live_skipped++;
			continue;
		}
		if (departure_now(key, &vm, now, d))
			continue;
		d->saved_by_ns = now->real;
		consider(s, d, a, key, &vm, 0, tmp);
	}
}

static const char *match_name(const struct source *s)
{
	if (!s->found)
		return "none";
	if (s->found > 1)
		return "ambiguous";
	return s->matched_before ? "conflict" : "matched";
}

static struct json_object *source_json(const struct source *s)
{
	struct json_object *o;

	if (s->found != 1)
		return NULL;
	o = json_object_new_object();
	hv_json_add_int(o, "pid", s->d.pid);
	hv_json_add_int(o, "vm", (int64_t)s->d.vm);
	hv_json_add_str(o, "vm_name", s->d.name[0] ? s->d.name : NULL);
	hv_json_add_str(o, "host", s->d.host);
	return o;
}

/* The arrival's sample, moved back to its first guest entry. */
static int arrival_at_entry(const struct hv_clock_event *e, const struct hv_clock_vm *vm,
			    const struct hv_host_clocks *now, struct hv_mig_record *a)
{
	int64_t entry = realtime_of(now, (int64_t)e->ts_ns), back = now->real - entry;
	int err;

	memset(a, 0, sizeof(*a));
	a->kind = HV_MIG_ARRIVAL;
	a->tsc_khz = (uint32_t)e->arrival.tsc_khz;
	a->pvti_mul = (uint32_t)(e->arrival.pvti_scale >> 8);
	a->pvti_shift = (__s8)(e->arrival.pvti_scale & 0xff);
	err = sample_vm(vm, now, e->arrival.kvmclock_offset, a);
	if (err)
		return err;
	for (uint32_t i = 0; i < a->nr_vcpus; i++)
		a->vcpu[i].tsc -= hv_mig_ns_to_cycles(back, a->tsc_khz);
	a->realtime_ns = entry;
	a->tai_ns -= back;
	a->kvmclock_ns -= back;
	a->written_ns = realtime_of(now, e->arrival.written_ns);
	a->pid = (int32_t)e->pid;
	a->vm = e->vm_id;
	names_of(a->pid, a);
	return 0;
}

static void migration_fields(const struct source *s, const struct hv_mig_record *a,
			     struct json_object *o)
{
	const struct hv_mig_result *r = &s->r;
	struct json_object *vcpus = json_object_new_array();

	hv_json_add_int(o, "downtime_ns", r->downtime_ns);
	hv_json_add_int(o, "kvmclock_warp_ns", r->kvmclock_warp_ns);
	hv_json_add_int(o, "tsc_warp_ns", r->worst_tsc_warp_ns);
	for (uint32_t i = 0; i < a->nr_vcpus; i++) {
		struct json_object *v = json_object_new_object();

		hv_json_add_int(v, "vcpu", a->vcpu[i].id);
		hv_json_add_int(v, "tsc_warp_ns", r->tsc_warp_ns[i]);
		json_object_array_add(vcpus, v);
	}
	json_object_object_add(o, "vcpus", vcpus);
	hv_json_add_int_or_null(o, "pvti_changed_ns", r->pvti_known, r->pvti_changed_ns);
	hv_json_add_int(o, "saved_ns", r->saved_ns);
	json_object_object_add(o, "source", source_json(s));
}

static uint64_t results[sizeof(result_names) / sizeof(result_names[0])];

static void count_result(struct hv_ctx *ctx, const char *result)
{
	char labels[48];

	for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++)
		if (!strcmp(result_names[i], result))
			results[i]++;
	snprintf(labels, sizeof(labels), "result=\"%s\"", result);
	hv_metric_add(ctx->metrics, HV_METRIC_MIGRATIONS, labels, 1);
}

void hv_mig_summary(struct json_object *clock)
{
	struct json_object *o = json_object_new_object();

	for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++)
		hv_json_add_uint(o, result_names[i], results[i]);
	json_object_object_add(clock, "migrations", o);
}

static void warp_alert(struct hv_ctx *ctx, const struct hv_clock_event *e, const char *comm,
		       const struct source *s, const struct hv_mig_record *a)
{
	bool correcting = e->frozen == HV_FROZEN || e->frozen == HV_NOT_FROZEN_TRACED;
	const struct hv_rule *rule = &ctx->rules->rule[HV_RULE_MIGRATION_CLOCK_WARP];
	char down[32], kc[32], tsc[32];
	struct hv_alert al = {
	    .rule = hv_rule_table[HV_RULE_MIGRATION_CLOCK_WARP].id,
	    .severity = rule->severity,
	    .action = correcting ? HV_ACT_CORRECT : HV_ACT_ALERT,
	    .pid = e->pid,
	    .tid = e->tid,
	    .comm = comm,
	    .vm = (long long)e->vm_id,
	    .vm_name = a->name[0] ? a->name : NULL,
	    .vcpu = -1,
	    .ts_ns = e->ts_ns,
	    .fields = json_object_new_object(),
	};

	migration_fields(s, a, al.fields);
	hv_format_ns(down, sizeof(down), s->r.downtime_ns);
	hv_format_ns(kc, sizeof(kc), s->r.kvmclock_warp_ns);
	hv_format_ns(tsc, sizeof(tsc), s->r.worst_tsc_warp_ns);
	snprintf(al.message, sizeof(al.message),
		 "migrated from pid %d vm %llu after %s: its kvmclock is %s and its TSC %s off "
		 "where they would be had it stayed (negative: behind): restored as saved, not "
		 "advanced by the downtime.",
		 s->d.pid, (unsigned long long)s->d.vm, down, kc, tsc);
	hv_emit_alert(ctx, &al);
}

static void migration_event(struct hv_ctx *ctx, const char *comm, const struct source *s,
			    const struct hv_mig_record *a, const char *result, uint64_t ts_ns)
{
	struct json_object *o = json_object_new_object();
	char down[32];

	hv_json_add_str(o, "type", "event");
	hv_json_add_str(o, "event", "migration");
	hv_json_add_uint(o, "ts_ns", ts_ns);
	hv_json_add_int(o, "pid", a->pid);
	hv_json_add_str(o, "comm", comm);
	hv_json_add_int(o, "vm", (int64_t)a->vm);
	hv_json_add_str(o, "vm_name", a->name[0] ? a->name : NULL);
	hv_json_add_str(o, "result", result);
	migration_fields(s, a, o);
	hv_emit_json(ctx, o);
	hv_format_ns(down, sizeof(down), s->r.downtime_ns);
	hv_log(ctx, "info migration %s[%d] vm %llu from pid %d vm %llu: %s after %s", comm, a->pid,
	       (unsigned long long)a->vm, s->d.pid, (unsigned long long)s->d.vm, result, down);
}

static bool is_warped(const struct hv_ctx *ctx, const struct source *s)
{
	int64_t tol = ctx->rules->rule[HV_RULE_MIGRATION_CLOCK_WARP].tolerance_ns;

	return hv_abs64(s->r.kvmclock_warp_ns) > tol || hv_abs64(s->r.worst_tsc_warp_ns) > tol;
}

/* The source is known: is the guest where it would be on the source? */
static void decide(struct hv_ctx *ctx, const struct hv_clock_event *e, const char *comm,
		   const struct source *s, const struct hv_mig_record *a)
{
	const struct hv_rule *rule = &ctx->rules->rule[HV_RULE_MIGRATION_CLOCK_WARP];
	bool warped = is_warped(ctx, s);

	count_result(ctx, warped ? "warped" : "ok");
	observe_warp(ctx,
		     (double)(hv_abs64(s->r.kvmclock_warp_ns) > hv_abs64(s->r.worst_tsc_warp_ns)
				  ? hv_abs64(s->r.kvmclock_warp_ns)
				  : hv_abs64(s->r.worst_tsc_warp_ns)) /
			 1e9);
	if (warped && rule->enabled)
		warp_alert(ctx, e, comm, s, a);
	else
		migration_event(ctx, comm, s, a, warped ? "warped" : "ok", e->ts_ns);
}

/*
 * The offsets that put the arrival's clocks where the source's would be:
 * each moved by its warp (in TSC cycles for the TSC, exactly).
 */
static void build_fix(const struct hv_clock_vm *vm, const struct hv_clock_event *e,
		      const struct source *s, const struct hv_mig_record *a, struct hv_mig_fix *fix)
{
	int64_t elapsed = a->realtime_ns - s->d.realtime_ns;

	fix->kvmclock_offset_now = e->arrival.kvmclock_offset;
	fix->kvmclock_offset_wanted = fix->kvmclock_offset_now - s->r.kvmclock_warp_ns;
	fix->nr_vcpus = 0;
	for (uint32_t i = 0; i < a->nr_vcpus; i++) {
		int slot = hv_vcpu_slot_of(vm, a->vcpu[i].id);
		int64_t there, warp;

		if (slot < 0)
			continue;
		there = s->d.vcpu[i].tsc + hv_mig_ns_to_cycles(elapsed, a->tsc_khz);
		warp = a->vcpu[i].tsc - there;
		fix->vcpu_id[fix->nr_vcpus] = (int)a->vcpu[i].id;
		fix->tsc_offset_now[fix->nr_vcpus] = vm->tsc_offset[slot];
		fix->tsc_offset_wanted[fix->nr_vcpus++] = vm->tsc_offset[slot] - warp;
	}
}

/* While the VMM is frozen at the arrival: repair it when it is warped
 * (and the rule corrects), else let it go as it is. */
static void settle_freeze(struct hv_ctx *ctx, const struct hv_clock_event *e,
			  const struct hv_clock_vm *vm, const struct source *s,
			  const struct hv_mig_record *a, struct hv_correction_report *report)
{
	bool repair = s->found == 1 && !s->matched_before && is_warped(ctx, s) &&
		      ctx->rules->rule[HV_RULE_MIGRATION_CLOCK_WARP].enabled;
	struct hv_mig_fix *fix;

	if (e->frozen == HV_NOT_FROZEN_TRACED && repair)
		hv_correct_refused_traced(ctx, e, report);
	if (e->frozen != HV_FROZEN)
		return;
	fix = repair ? malloc(sizeof(*fix)) : NULL;
	if (!fix) {
		hv_correct_release(e);
		return;
	}
	build_fix(vm, e, s, a, fix);
	hv_correct_migration(ctx, e, fix, report);
	free(fix);
}

/* The source found paused is a departure now; a pinned one has one more
 * arrival (a second one is a conflict: never both believed). */
static void note_source(struct hv_ctx *ctx, struct source *s, uint64_t ts_ns)
{
	struct hv_clock_departure p;
	__u64 key = s->d.vm;
	char comm[17] = "";

	if (s->found != 1)
		return;
	if (s->live) {
		hv_proc_comm(s->d.pid, comm, sizeof(comm));
		depart(ctx, &s->d, comm, ts_ns, "paused");
	}
	if (!bpf_map_lookup_elem(deps_fd, &key, &p)) {
		p.matched++;
		bpf_map_update_elem(deps_fd, &key, &p, BPF_EXIST);
	}
}

static void arrival_json(struct hv_ctx *ctx, const struct source *s, const struct hv_mig_record *a,
			 const char *comm, uint64_t ts_ns)
{
	struct json_object *more = json_object_new_object();

	hv_json_add_str(more, "match", match_name(s));
	hv_json_add_int(more, "candidates", s->found);
	json_object_object_add(more, "source", source_json(s));
	if (s->live_skipped)
		hv_json_add_int(more, "live_vms_not_compared", s->live_skipped);
	emit_record(ctx, a, comm, ts_ns, more);
	hv_log(ctx,
	       "info arrival %s[%d] vm %llu: a VM that migrated in, source %s (%d candidate(s) "
	       "on this host)",
	       comm, a->pid, (unsigned long long)a->vm, match_name(s), s->found);
}

void hv_mig_arrival(struct hv_ctx *ctx, const struct hv_clock_event *e, const char *comm)
{
	struct hv_mig_record *a = malloc(sizeof(*a)), *d = malloc(sizeof(*d));
	struct hv_mig_result *tmp = malloc(sizeof(*tmp));
	struct source *s = calloc(1, sizeof(*s));
	struct hv_correction_report report = {};
	struct hv_host_clocks now;
	struct hv_clock_vm vm;

	if (!a || !d || !tmp || !s) {
		unchecked(ctx, "out-of-memory", "an arrival");
		goto release;
	}
	if ((__u64)e->arrival.tsc_ratio & ((__u64)e->arrival.tsc_ratio - 1)) {
		unchecked(ctx, "scaled-tsc", "an arrival");
		goto release;
	}
	if (bpf_map_lookup_elem(vms_fd, &e->vm_key, &vm)) {
		unchecked(ctx, "vm-gone", "an arrival");
		goto release;
	}
	hv_host_clocks_read(&now);
	if (arrival_at_entry(e, &vm, &now, a)) {
		unchecked(ctx, "no-tsc-offset", "an arrival");
		goto release;
	}
	from_departures(s, a, d, tmp);
	from_live(s, a, &now, d, tmp);
	settle_freeze(ctx, e, &vm, s, a, &report); /* the VMM runs again from here */
	note_source(ctx, s, e->ts_ns);
	arrival_json(ctx, s, a, comm, e->ts_ns);
	if (s->found == 1 && !s->matched_before)
		decide(ctx, e, comm, s, a);
	else
		count_result(ctx, !s->found	 ? "unmatched"
				  : s->found > 1 ? "ambiguous"
						 : "conflict");
	hv_correct_emit(ctx, &report);
	goto out;
release:
	if (e->frozen == HV_FROZEN)
		hv_correct_release(e);
out:
	free(a);
	free(d);
	free(tmp);
	free(s);
}
