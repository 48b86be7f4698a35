// SPDX-License-Identifier: GPL-2.0
/*
 * `hvguard migrations [--json] [--window S] [--tolerance NS] LOG...`: joins
 * the departures and arrivals of several hosts' JSON logs into live
 * migrations (migration.h has the model), and says how far each moved the
 * guest's clocks. Logs are untrusted: every record is checked whole
 * (hv_mig_record_from_json), lines are bounded, and a pair is only called
 * a migration when nothing else in the logs could be: an arrival that
 * matches two departures is "ambiguous", a departure two arrivals match is
 * a "conflict", and neither is ever matched.
 *
 * The join: departures sorted by their TSC origin; an arrival only looks at
 * those whose origin lies where a match can (hv_mig_tsc_origin), so it is
 * O(n log n) for logs of VMs created at different moments.
 * Exit codes: migrations_usage().
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "commands.h"
#include "format.h"
#include "hvguard.h"
#include "hvguard/clock_logic.h" /* hv_abs64 */
#include "json_util.h"
#include "migration_json.h"

#define MAX_LINE	  (64 * 1024) /* a record of 256 vCPUs is ~12 KiB */
#define ROUNDING_NS	  1000	      /* on the origin range: the divisions' truncations */
#define DEFAULT_TOLERANCE 100000
#define MAX_WINDOW_S	  (30 * 24 * 3600ll)
#define MAX_TOLERANCE_NS  (3600 * 1000000000ll)
#define LIST_MAX	  8 /* departures named in an "ambiguous" text line */

/* A record as read: where its fields are packed (header + its vCPUs only)
 * in the join's arena, and the join's state. */
struct rec {
	size_t packed;
	const char *file;
	unsigned long line;
	int64_t origin, saved_by, clock_error_ns;
	uint64_t uuid; /* uuid_hash() of vm_uuid */
	uint32_t tsc_khz, nr_vcpus;
	enum hv_mig_kind kind;
	uint32_t matches; /* arrival: departures it matches; departure: arrivals */
	size_t other;	  /* the last of those */
};

/* A departure in the index, with what rules most pairs out without
 * unpacking it. */
struct dep {
	int64_t origin, saved_by;
	uint64_t uuid; /* a hash of vm_uuid, 0 if none */
	uint32_t tsc_khz, nr_vcpus;
	size_t rec;
};

/* The arrival scan() is at: its bounds on the departures it can match. */
struct probe {
	int64_t origin, written, slack;
	__int128 tsc0_ns; /* vCPU 0's TSC written, in ns: t_s = a departure's origin + it */
	uint64_t uuid;
};

struct counts {
	unsigned long lines, ignored, malformed, too_long, unreadable;
	unsigned long migrations, warped, ambiguous, conflicts, lone_arrivals, lone_departures;
};

struct join {
	struct rec *recs;
	size_t n, cap;
	char *arena; /* the records' fields, packed one after the other */
	size_t arena_len, arena_cap;
	struct dep *deps, *by_uuid; /* the departures by origin; by uuid hash, then origin */
	size_t nr_deps;
	int64_t max_dep_error;
	struct hv_mig_limits lim;
	int64_t tolerance_ns;
	bool json;
	struct hv_mig_record *scratch_a, *scratch_d;
	struct json_tokener *tok;
	char *line, *block;
	struct counts c;
};

static void migrations_usage(FILE *f)
{
	fprintf(
	    f, "Usage: hvguard migrations [--json] [--window SECONDS] [--tolerance NS] LOG...\n"
	       "Joins the departure and arrival events of several hosts' JSON logs ('hvguard run\n"
	       "--json' lines; '-' is stdin) into live migrations, matched by the guest's clocks\n"
	       "alone, and prints one line per migration: source -> destination, downtime,\n"
	       "kvmclock warp, worst TSC warp, PVTI change and the two hosts' clock uncertainty.\n"
	       "Then the arrivals no departure matches, the departures never matched, and those\n"
	       "left unmatched because more than one pairing was possible (ambiguous, conflict).\n"
	       "\n"
	       "  -j, --json            one JSON object per line (README: migrations)\n"
	       "  -w, --window SECONDS  longest save-to-restore a migration may take (600)\n"
	       "  -t, --tolerance NS    the warp allowed, beside the clocks' uncertainty (100000)\n"
	       "  -h, --help            this text\n"
	       "\n"
	       "Exit: 0 every migration within tolerance, 1 some migration's guest clocks\n"
	       "warped beyond it, 2 bad usage, an unreadable LOG, or a malformed departure or\n"
	       "arrival (each named as FILE:LINE: reason on stderr; the rest is still joined).\n");
}

/* --- Reading ----------------------------------------------------------------- */

static size_t packed_size(uint32_t nr_vcpus)
{
	return offsetof(struct hv_mig_record, vcpu) + nr_vcpus * sizeof(struct hv_mig_vcpu);
}

static void unpack(const struct join *j, const struct rec *rec, struct hv_mig_record *r)
{
	memcpy(r, j->arena + rec->packed, packed_size(rec->nr_vcpus));
}

/* The arena's new pages faulted in at once, not one trap each as records
 * are written (where a fault is dear, in a VM, that was a sixth of the
 * run); the same for the recs. Best effort: MADV_POPULATE_WRITE is Linux 5.14's. */
static void prefault(char *p, size_t len)
{
	uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;

	if (len > a - (uintptr_t)p)
		madvise((void *)a, len - (a - (uintptr_t)p), MADV_POPULATE_WRITE);
}

/* Room for size more bytes in the arena (one allocation, not one per
 * record). */
static int arena_room(struct join *j, size_t size)
{
	size_t cap = j->arena_cap ? j->arena_cap : 1 << 20;
	char *arena;

	while (cap - j->arena_len < size)
		cap *= 2;
	if (cap == j->arena_cap)
		return 0;
	arena = realloc(j->arena, cap);
	if (!arena)
		return -ENOMEM;
	prefault(arena + j->arena_len, cap - j->arena_len);
	j->arena = arena;
	j->arena_cap = cap;
	return 0;
}

/* FNV-1a: two uuids that differ almost always hash apart; equal hashes are
 * compared whole. */
static uint64_t uuid_hash(const char *s)
{
	uint64_t h = 14695981039346656037ull;

	if (!*s)
		return 0;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h ? h : 1;
}

/* Where the next record is read: the arena's end, room for a whole one.
 * Kept (add_rec) with only its vCPUs, not the HV_MAX_VCPUS it may hold; so
 * every record in the arena stays aligned. */
_Static_assert(offsetof(struct hv_mig_record, vcpu) % _Alignof(struct hv_mig_record) == 0 &&
		   sizeof(struct hv_mig_vcpu) % _Alignof(struct hv_mig_record) == 0,
	       "packed records keep their alignment");

static struct hv_mig_record *next_rec(struct join *j)
{
	if (arena_room(j, sizeof(struct hv_mig_record)))
		return NULL;
	return (struct hv_mig_record *)(void *)(j->arena + j->arena_len);
}

static int add_rec(struct join *j, const struct hv_mig_record *r, const char *file,
		   unsigned long line)
{
	struct rec *rec;

	if (j->n == j->cap) {
		size_t cap = j->cap ? j->cap * 2 : 1024;
		struct rec *recs = realloc(j->recs, cap * sizeof(*recs));

		if (!recs)
			return -ENOMEM;
		prefault((char *)(recs + j->cap), (cap - j->cap) * sizeof(*recs));
		j->recs = recs;
		j->cap = cap;
	}
	rec = &j->recs[j->n];
	*rec = (struct rec){.packed = j->arena_len,
			    .file = file,
			    .line = line,
			    .origin = hv_mig_tsc_origin(r),
			    .saved_by = r->saved_by_ns,
			    .clock_error_ns = r->clock_error_ns,
			    .uuid = uuid_hash(r->uuid),
			    .tsc_khz = r->tsc_khz,
			    .nr_vcpus = r->nr_vcpus,
			    .kind = r->kind};
	j->arena_len += packed_size(r->nr_vcpus);
	j->n++;
	return 0;
}

static void malformed(struct join *j, const char *file, unsigned long line, const char *why)
{
	fprintf(stderr, "%s:%lu: %s\n", file, line, why);
	j->c.malformed++;
}

/* Whether a line that is no JSON object meant to be a record. */
static bool looks_like_record(const char *s)
{
	return strstr(s, "\"departure\"") || strstr(s, "\"arrival\"");
}

/* A line's JSON object: from its first '{' (a syslog or journal prefix is
 * allowed) to its end. NULL, with *bad set if it looked like a record. */
static struct json_object *parse_line(struct join *j, const char *s, size_t len, bool *bad)
{
	const char *start = memchr(s, '{', len);
	struct json_object *o;

	*bad = false;
	if (!start)
		return NULL;
	json_tokener_reset(j->tok);
	o = json_tokener_parse_ex(j->tok, start, (int)(len - (start - s)));
	if (o && json_tokener_get_parse_end(j->tok) == len - (size_t)(start - s))
		return o;
	json_object_put(o);
	*bad = looks_like_record(start);
	return NULL;
}

static bool is_str(struct json_object *o, const char *k, const char *v)
{
	struct json_object *f;

	return json_object_object_get_ex(o, k, &f) && json_object_is_type(f, json_type_string) &&
	       !strcmp(json_object_get_string(f), v);
}

static int take_line(struct join *j, const char *file, unsigned long line, size_t len)
{
	struct hv_mig_record *r = next_rec(j);
	struct json_object *o;
	char why[160];
	bool bad;
	int err = 0;

	if (!r)
		return -ENOMEM;
	while (len && strchr(" \t\r", j->line[len - 1]))
		j->line[--len] = '\0';
	if (!looks_like_record(j->line)) {
		j->c.ignored++;
		return 0;
	}
	if (memchr(j->line, '\0', len)) {
		malformed(j, file, line, "a departure or arrival with a NUL byte in its line");
		return 0;
	}
	o = parse_line(j, j->line, len, &bad);
	if (!o || !is_str(o, "type", "event") ||
	    (!is_str(o, "event", "departure") && !is_str(o, "event", "arrival"))) {
		if (bad)
			malformed(j, file, line, "a departure or arrival that is not valid JSON");
		else
			j->c.ignored++;
		json_object_put(o);
		return 0;
	}
	if (hv_mig_record_from_json(o, r, why, sizeof(why)))
		malformed(j, file, line, why);
	else
		err = add_rec(j, r, file, line);
	json_object_put(o);
	return err;
}

/* A LOG read in blocks, cut at newlines with memchr (getc per byte was a
 * tenth of the run). */
#define IN_BLOCK (1 << 20)

struct input {
	FILE *f;
	char *buf; /* IN_BLOCK */
	size_t pos, end;
};

/* One line into line (NUL-terminated, at most MAX_LINE bytes). false at
 * the end of the input. A longer line is consumed whole, *too_long set. */
static bool read_line(struct input *in, char *line, size_t *len, bool *too_long)
{
	bool got = false;
	size_t n = 0;

	*too_long = false;
	for (;;) {
		char *nl;
		size_t seg, take;

		if (in->pos == in->end) {
			in->pos = 0;
			in->end = fread(in->buf, 1, IN_BLOCK, in->f);
			if (!in->end)
				break;
		}
		got = true;
		nl = memchr(in->buf + in->pos, '\n', in->end - in->pos);
		seg = nl ? (size_t)(nl - (in->buf + in->pos)) : in->end - in->pos;
		take = seg < MAX_LINE - n ? seg : MAX_LINE - n;
		memcpy(line + n, in->buf + in->pos, take);
		n += take;
		*too_long |= take < seg;
		in->pos += seg + (nl ? 1 : 0);
		if (nl)
			break;
	}
	line[n] = '\0';
	*len = n;
	return got;
}

static int read_log(struct join *j, const char *path)
{
	struct input in = {.f = strcmp(path, "-") ? fopen(path, "r") : stdin, .buf = j->block};
	unsigned long line = 0;
	bool too_long;
	size_t len;
	int err = 0;

	if (!in.f) {
		fprintf(stderr, "hvguard: migrations: %s: %s\n", path, strerror(errno));
		j->c.unreadable++;
		return 0;
	}
	while (!err && read_line(&in, j->line, &len, &too_long)) {
		j->c.lines++;
		line++;
		if (too_long) {
			fprintf(stderr, "%s:%lu: a line longer than %d bytes, skipped\n", path,
				line, MAX_LINE);
			j->c.too_long++;
			continue;
		}
		err = take_line(j, path, line, len);
	}
	if (ferror(in.f)) {
		fprintf(stderr, "hvguard: migrations: %s: read error\n", path);
		j->c.unreadable++;
	}
	if (in.f != stdin)
		fclose(in.f);
	return err;
}

/* --- The join ---------------------------------------------------------------- */

static int by_origin(const void *x, const void *y)
{
	const struct dep *a = x, *b = y;

	if (a->origin != b->origin)
		return a->origin < b->origin ? -1 : 1;
	return a->rec < b->rec ? -1 : a->rec > b->rec;
}

static int by_uuid(const void *x, const void *y)
{
	const struct dep *a = x, *b = y;

	if (a->uuid != b->uuid)
		return a->uuid < b->uuid ? -1 : 1;
	return by_origin(x, y);
}

static int index_departures(struct join *j)
{
	j->deps = calloc(j->n ? j->n : 1, sizeof(*j->deps));
	if (!j->deps)
		return -ENOMEM;
	for (size_t i = 0; i < j->n; i++) {
		const struct rec *d = &j->recs[i];

		if (d->kind != HV_MIG_DEPARTURE)
			continue;
		if (d->clock_error_ns > j->max_dep_error)
			j->max_dep_error = d->clock_error_ns;
		j->deps[j->nr_deps++] = (struct dep){.origin = d->origin,
						     .saved_by = d->saved_by,
						     .uuid = d->uuid,
						     .tsc_khz = d->tsc_khz,
						     .nr_vcpus = d->nr_vcpus,
						     .rec = i};
	}
	qsort(j->deps, j->nr_deps, sizeof(*j->deps), by_origin);
	j->by_uuid = malloc((j->nr_deps ? j->nr_deps : 1) * sizeof(*j->by_uuid));
	if (!j->by_uuid)
		return -ENOMEM;
	memcpy(j->by_uuid, j->deps, j->nr_deps * sizeof(*j->deps));
	qsort(j->by_uuid, j->nr_deps, sizeof(*j->by_uuid), by_uuid);
	return 0;
}

static void probe_of(const struct join *j, size_t ai, struct probe *p)
{
	const struct hv_mig_record *a = j->scratch_a;
	int64_t err = a->clock_error_ns > 0 ? a->clock_error_ns : 0;
	__int128 w0 =
	    a->vcpu[0].tsc - (__int128)(a->realtime_ns - a->written_ns) * a->tsc_khz / 1000000;

	p->origin = j->recs[ai].origin;
	p->written = a->written_ns;
	p->slack = j->lim.slack_ns + err + j->max_dep_error + ROUNDING_NS;
	p->tsc0_ns = w0 * 1000000 / a->tsc_khz;
	p->uuid = j->recs[ai].uuid;
}

/* What hv_mig_match() would refuse on vCPU 0 alone (with the largest
 * slack, and a margin for rounding): most pairs end here. A departure of
 * another VM uuid (both known) is never a match either: the uuid goes with
 * the VM through a migration (libvirt, QEMU's -uuid). */
static bool ruled_out(const struct join *j, const struct probe *p, const struct dep *d)
{
	__int128 t = d->origin + p->tsc0_ns;

	if (d->tsc_khz != j->scratch_a->tsc_khz || d->nr_vcpus != j->scratch_a->nr_vcpus)
		return true;
	if (p->uuid && d->uuid && p->uuid != d->uuid)
		return true;
	if (p->written > d->saved_by + j->lim.window_ns + p->slack)
		return true;
	return t > d->saved_by + p->slack && t < p->written - p->slack;
}

/* The first departure whose origin is at least lo. */
/* The first of deps[from, to) whose origin is at least lo. */
static size_t first_from(const struct dep *deps, size_t from, size_t to, int64_t lo)
{
	while (from < to) {
		size_t m = from + (to - from) / 2;

		if (deps[m].origin < lo)
			from = m + 1;
		else
			to = m;
	}
	return from;
}

/* by_uuid[*from, *to): the departures of uuid hash u. */
static void uuid_group(const struct join *j, uint64_t u, size_t *from, size_t *to)
{
	size_t a = 0, b = j->nr_deps;

	while (a < b) {
		size_t m = a + (b - a) / 2;

		if (j->by_uuid[m].uuid < u)
			a = m + 1;
		else
			b = m;
	}
	*from = a;
	for (b = j->nr_deps; a < b;) {
		size_t m = a + (b - a) / 2;

		if (j->by_uuid[m].uuid <= u)
			a = m + 1;
		else
			b = m;
	}
	*to = a;
}

typedef void (*match_fn)(struct join *j, size_t arrival, size_t departure, void *arg);

struct scan {
	match_fn fn;
	void *arg;
	size_t ai;
	struct probe p;
};

/* The departures of deps[from, to) (sorted by origin) that the arrival
 * matches, to sc->fn. */
static void scan_range(struct join *j, struct scan *sc, const struct dep *deps, size_t from,
		       size_t to)
{
	const struct probe *p = &sc->p;
	struct hv_mig_result res;

	for (size_t k = first_from(deps, from, to, p->origin - j->lim.window_ns - p->slack);
	     k < to && deps[k].origin <= p->origin + p->slack; k++) {
		if (ruled_out(j, p, &deps[k]))
			continue;
		unpack(j, &j->recs[deps[k].rec], j->scratch_d);
		if (hv_mig_match(j->scratch_d, j->scratch_a, &j->lim, &res) == HV_MIG_MATCH)
			sc->fn(j, sc->ai, deps[k].rec, sc->arg);
	}
}

/* Calls fn for every departure that arrival ai (unpacked in scratch_a)
 * matches: with a uuid, those of no uuid and of the same one only. */
static void scan(struct join *j, size_t ai, match_fn fn, void *arg)
{
	struct scan sc = {.fn = fn, .arg = arg, .ai = ai};
	size_t from, to;

	probe_of(j, ai, &sc.p);
	if (!sc.p.uuid) {
		scan_range(j, &sc, j->deps, 0, j->nr_deps);
		return;
	}
	uuid_group(j, 0, &from, &to);
	scan_range(j, &sc, j->by_uuid, from, to);
	uuid_group(j, sc.p.uuid, &from, &to);
	scan_range(j, &sc, j->by_uuid, from, to);
}

static void count_match(struct join *j, size_t ai, size_t di, void *arg)
{
	(void)arg;
	j->recs[ai].matches++;
	j->recs[ai].other = di;
	j->recs[di].matches++;
	j->recs[di].other = ai;
}

static void run_join(struct join *j)
{
	for (size_t i = 0; i < j->n; i++) {
		if (j->recs[i].kind != HV_MIG_ARRIVAL)
			continue;
		unpack(j, &j->recs[i], j->scratch_a);
		scan(j, i, count_match, NULL);
	}
}

/* A migration: the arrival matches one departure, which no other arrival
 * matches. */
static bool joined(const struct join *j, size_t ai)
{
	const struct rec *a = &j->recs[ai];

	return a->matches == 1 && j->recs[a->other].matches == 1;
}

/* --- Reporting ---------------------------------------------------------------- */

static bool uncertainty_known(const struct hv_mig_record *d, const struct hv_mig_record *a)
{
	return d->clock_error_ns >= 0 && a->clock_error_ns >= 0;
}

static bool within(const struct join *j, const struct hv_mig_result *res)
{
	int64_t allowed = j->tolerance_ns + res->uncertainty_ns;

	return hv_abs64(res->kvmclock_warp_ns) <= allowed &&
	       hv_abs64(res->worst_tsc_warp_ns) <= allowed;
}

static uint32_t worst_vcpu(const struct hv_mig_record *a, const struct hv_mig_result *res)
{
	for (uint32_t i = 0; i < a->nr_vcpus; i++)
		if (res->tsc_warp_ns[i] == res->worst_tsc_warp_ns)
			return a->vcpu[i].id;
	return a->vcpu[0].id;
}

static void who_text(char *buf, size_t len, const struct hv_mig_record *r)
{
	int n = snprintf(buf, len, "%s pid %d vm %llu", r->host[0] ? r->host : "?", r->pid,
			 (unsigned long long)r->vm);

	if (r->name[0] && n > 0 && (size_t)n < len)
		snprintf(buf + n, len - n, " (%s)", r->name);
}

static struct json_object *who_json(const struct rec *rec, const struct hv_mig_record *r)
{
	struct json_object *o = json_object_new_object();

	hv_json_add_str(o, "host", r->host[0] ? r->host : NULL);
	hv_json_add_int(o, "pid", r->pid);
	hv_json_add_uint(o, "vm", r->vm);
	hv_json_add_str(o, "vm_name", r->name[0] ? r->name : NULL);
	hv_json_add_str(o, "vm_uuid", r->uuid[0] ? r->uuid : NULL);
	hv_json_add_int_or_null(o, "clock_error_ns", r->clock_error_ns >= 0, r->clock_error_ns);
	hv_json_add_str(o, "file", rec->file);
	hv_json_add_uint(o, "line", rec->line);
	return o;
}

static void print_json(struct json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

/* A JSON string (null if empty), written directly: a migration line is
 * printed 50,000 times where json-c's objects would cost a third of the run.
 * Record strings hold no control character (migration_json.c refuses
 * them); a LOG's name may. */
static void put_str(const char *s)
{
	if (!*s) {
		fputs("null", stdout);
		return;
	}
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20 || *s == 0x7f)
			printf("\\u%04x", (unsigned char)*s);
		else
			putchar(*s);
	}
	putchar('"');
}

/* who_json()'s object, written directly. */
static void put_who(const char *key, const struct rec *rec, const struct hv_mig_record *r)
{
	printf("\"%s\":{\"host\":", key);
	put_str(r->host);
	printf(",\"pid\":%d,\"vm\":%llu,\"vm_name\":", r->pid, (unsigned long long)r->vm);
	put_str(r->name);
	fputs(",\"vm_uuid\":", stdout);
	put_str(r->uuid);
	if (r->clock_error_ns >= 0)
		printf(",\"clock_error_ns\":%lld,\"file\":", (long long)r->clock_error_ns);
	else
		fputs(",\"clock_error_ns\":null,\"file\":", stdout);
	put_str(rec->file);
	printf(",\"line\":%lu}", rec->line);
}

static void put_i64(const char *key, int64_t v, bool known)
{
	if (known)
		printf(",\"%s\":%lld", key, (long long)v);
	else
		printf(",\"%s\":null", key);
}

static void migration_json(const struct join *j, size_t ai, const struct hv_mig_result *res)
{
	const struct hv_mig_record *d = j->scratch_d, *a = j->scratch_a;

	printf("{\"type\":\"migration\",\"within_tolerance\":%s,",
	       within(j, res) ? "true" : "false");
	put_who("source", &j->recs[j->recs[ai].other], d);
	putchar(',');
	put_who("destination", &j->recs[ai], a);
	put_i64("saved_ns", res->saved_ns, true);
	put_i64("downtime_ns", res->downtime_ns, true);
	put_i64("kvmclock_warp_ns", res->kvmclock_warp_ns, true);
	fputs(",\"tsc_warp_ns\":[", stdout);
	for (uint32_t i = 0; i < a->nr_vcpus; i++)
		printf("%s{\"vcpu\":%u,\"warp_ns\":%lld}", i ? "," : "", a->vcpu[i].id,
		       (long long)res->tsc_warp_ns[i]);
	putchar(']');
	put_i64("worst_tsc_warp_ns", res->worst_tsc_warp_ns, true);
	put_i64("pvti_changed_ns", res->pvti_changed_ns, res->pvti_known);
	put_i64("uncertainty_ns", res->uncertainty_ns, uncertainty_known(d, a));
	put_i64("tolerance_ns", j->tolerance_ns + res->uncertainty_ns, true);
	fputs("}\n", stdout);
}

static void migration_text(const struct join *j, size_t ai, const struct hv_mig_result *res)
{
	const struct hv_mig_record *d = j->scratch_d, *a = j->scratch_a;
	const struct rec *dr = &j->recs[j->recs[ai].other], *ar = &j->recs[ai];
	char src[200], dst[200], down[32], kvm[32], tsc[32], pvti[32] = "unknown",
							     unc[32] = "unknown", tol[32];

	who_text(src, sizeof(src), d);
	who_text(dst, sizeof(dst), a);
	hv_format_ns(down, sizeof(down), res->downtime_ns);
	hv_format_ns(kvm, sizeof(kvm), res->kvmclock_warp_ns);
	hv_format_ns(tsc, sizeof(tsc), res->worst_tsc_warp_ns);
	if (res->pvti_known)
		snprintf(pvti, sizeof(pvti), "%lld ns/s", (long long)res->pvti_changed_ns);
	if (uncertainty_known(d, a))
		hv_format_ns(unc, sizeof(unc), res->uncertainty_ns);
	hv_format_ns(tol, sizeof(tol), j->tolerance_ns + res->uncertainty_ns);
	printf("migration %s -> %s: downtime %s, kvmclock warp %s, TSC warp %s (vCPU %u), "
	       "pvti change %s, uncertainty %s: %s %s [%s:%lu -> %s:%lu]\n",
	       src, dst, down, kvm, tsc, worst_vcpu(a, res), pvti, unc,
	       within(j, res) ? "within" : "WARPED beyond", tol, dr->file, dr->line, ar->file,
	       ar->line);
}

static void report_migration(struct join *j, size_t ai)
{
	struct hv_mig_result res;

	unpack(j, &j->recs[j->recs[ai].other], j->scratch_d);
	if (hv_mig_match(j->scratch_d, j->scratch_a, &j->lim, &res) != HV_MIG_MATCH)
		abort(); /* matched in run_join, the same inputs */
	j->c.migrations++;
	if (!within(j, &res))
		j->c.warped++;
	if (j->json)
		migration_json(j, ai, &res);
	else
		migration_text(j, ai, &res);
}

/* The departures an ambiguous arrival matches, as a list. */
struct listing {
	struct json_object *json;
	char text[LIST_MAX * 48];
	size_t n;
};

static void list_match(struct join *j, size_t ai, size_t di, void *arg)
{
	struct listing *l = arg;
	size_t used = strlen(l->text);

	(void)ai;
	if (l->json) {
		unpack(j, &j->recs[di], j->scratch_d);
		json_object_array_add(l->json, who_json(&j->recs[di], j->scratch_d));
	} else if (l->n < LIST_MAX) {
		snprintf(l->text + used, sizeof(l->text) - used, "%s%s:%lu", l->n ? ", " : "",
			 j->recs[di].file, j->recs[di].line);
	} else if (l->n == LIST_MAX) {
		snprintf(l->text + used, sizeof(l->text) - used, ", ...");
	}
	l->n++;
}

static void report_ambiguous(struct join *j, size_t ai)
{
	const struct rec *a = &j->recs[ai];
	struct listing l = {.json = j->json ? json_object_new_array() : NULL};
	struct json_object *o;
	char who[200];

	j->c.ambiguous++;
	scan(j, ai, list_match, &l);
	if (!j->json) {
		who_text(who, sizeof(who), j->scratch_a);
		printf("ambiguous: the arrival of %s [%s:%lu] matches %u departures (%s): not "
		       "matched\n",
		       who, a->file, a->line, a->matches, l.text);
		return;
	}
	o = json_object_new_object();
	hv_json_add_str(o, "type", "ambiguous");
	json_object_object_add(o, "arrival", who_json(a, j->scratch_a));
	json_object_object_add(o, "departures", l.json);
	hv_json_add_int(o, "count", a->matches);
	print_json(o);
}

static void report_conflict(struct join *j, size_t ai)
{
	const struct rec *a = &j->recs[ai], *d = &j->recs[a->other];
	struct json_object *o;
	char who[200], src[200];

	j->c.conflicts++;
	unpack(j, d, j->scratch_d);
	if (!j->json) {
		who_text(who, sizeof(who), j->scratch_a);
		who_text(src, sizeof(src), j->scratch_d);
		printf("conflict: the arrival of %s [%s:%lu] matches the departure of %s "
		       "[%s:%lu], which %u arrivals match: not matched\n",
		       who, a->file, a->line, src, d->file, d->line, d->matches);
		return;
	}
	o = json_object_new_object();
	hv_json_add_str(o, "type", "conflict");
	json_object_object_add(o, "arrival", who_json(a, j->scratch_a));
	json_object_object_add(o, "departure", who_json(d, j->scratch_d));
	hv_json_add_int(o, "arrivals", d->matches);
	print_json(o);
}

/* A record left alone: an arrival with no departure, a departure never
 * matched (candidates: the arrivals that matched it, all left unmatched). */
static void report_lone(struct join *j, size_t i, const struct hv_mig_record *r)
{
	const struct rec *rec = &j->recs[i];
	bool arrival = rec->kind == HV_MIG_ARRIVAL;
	struct json_object *o;
	char who[200];

	if (!j->json) {
		who_text(who, sizeof(who), r);
		printf("%s: %s [%s:%lu]",
		       arrival ? "arrival with no departure in these logs"
			       : "departure never matched",
		       who, rec->file, rec->line);
		if (!arrival && rec->matches)
			printf(" (%u arrivals match it, each ambiguous or in conflict)",
			       rec->matches);
		printf("\n");
		return;
	}
	o = json_object_new_object();
	hv_json_add_str(o, "type", arrival ? "unmatched_arrival" : "unmatched_departure");
	json_object_object_add(o, arrival ? "arrival" : "departure", who_json(rec, r));
	if (!arrival)
		hv_json_add_int(o, "candidates", rec->matches);
	print_json(o);
}

static void report_arrival(struct join *j, size_t ai)
{
	const struct rec *a = &j->recs[ai];

	unpack(j, a, j->scratch_a);
	if (!a->matches) {
		j->c.lone_arrivals++;
		report_lone(j, ai, j->scratch_a);
	} else if (joined(j, ai)) {
		report_migration(j, ai);
	} else if (a->matches > 1) {
		report_ambiguous(j, ai);
	} else {
		report_conflict(j, ai);
	}
}

static void report(struct join *j)
{
	for (size_t i = 0; i < j->n; i++)
		if (j->recs[i].kind == HV_MIG_ARRIVAL)
			report_arrival(j, i);
	for (size_t i = 0; i < j->n; i++) {
		const struct rec *d = &j->recs[i];

		if (d->kind != HV_MIG_DEPARTURE || (d->matches == 1 && joined(j, d->other)))
			continue;
		j->c.lone_departures++;
		unpack(j, d, j->scratch_d);
		report_lone(j, i, j->scratch_d);
	}
}

static void summary(const struct join *j)
{
	const struct counts *c = &j->c;
	struct json_object *o;

	if (!j->json) {
		printf("# %lu migration(s), %lu beyond tolerance; %lu ambiguous, %lu in conflict; "
		       "%lu arrival(s) with no departure, %lu departure(s) never matched; %zu "
		       "record(s) from %lu line(s): %lu ignored, %lu malformed, %lu too long\n",
		       c->migrations, c->warped, c->ambiguous, c->conflicts, c->lone_arrivals,
		       c->lone_departures, j->n, c->lines, c->ignored, c->malformed, c->too_long);
		return;
	}
	o = json_object_new_object();
	hv_json_add_str(o, "type", "summary");
	hv_json_add_int(o, "migrations", c->migrations);
	hv_json_add_int(o, "warped", c->warped);
	hv_json_add_int(o, "ambiguous", c->ambiguous);
	hv_json_add_int(o, "conflicts", c->conflicts);
	hv_json_add_int(o, "unmatched_arrivals", c->lone_arrivals);
	hv_json_add_int(o, "unmatched_departures", c->lone_departures);
	hv_json_add_int(o, "records", j->n);
	hv_json_add_int(o, "lines", c->lines);
	hv_json_add_int(o, "ignored", c->ignored);
	hv_json_add_int(o, "malformed", c->malformed);
	hv_json_add_int(o, "too_long", c->too_long);
	hv_json_add_int(o, "unreadable", c->unreadable);
	print_json(o);
}

/* --- The command --------------------------------------------------------------- */

static int parse_num(const char *s, long long max, long long *v)
{
	char *end;

	errno = 0;
	*v = strtoll(s, &end, 10);
	return errno || end == s || *end || *v < 0 || *v > max ? -EINVAL : 0;
}

static int parse_args(struct join *j, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"window", required_argument, NULL, 'w'},
	    {"tolerance", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {},
	};
	long long v;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "jw:t:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			j->json = true;
			break;
		case 'w':
			if (parse_num(optarg, MAX_WINDOW_S, &v) || !v) {
				hv_err("--window takes whole seconds, 1 to %lld, not '%s'",
				       MAX_WINDOW_S, optarg);
				return HV_EXIT_ERROR;
			}
			j->lim.window_ns = v * 1000000000ll;
			break;
		case 't':
			if (parse_num(optarg, MAX_TOLERANCE_NS, &v)) {
				hv_err("--tolerance takes ns, 0 to %lld, not '%s'",
				       MAX_TOLERANCE_NS, optarg);
				return HV_EXIT_ERROR;
			}
			j->tolerance_ns = v;
			break;
		case 'h':
			migrations_usage(stdout);
			return -1;
		default:
			migrations_usage(stderr);
			return HV_EXIT_ERROR;
		}
	}
	if (optind == argc) {
		hv_err("migrations needs at least one LOG ('-' for stdin; see 'hvguard migrations "
		       "--help')");
		return HV_EXIT_ERROR;
	}
	return 0;
}

static int setup(struct join *j)
{
	j->scratch_a = malloc(sizeof(*j->scratch_a));
	j->scratch_d = malloc(sizeof(*j->scratch_d));
	j->line = malloc(MAX_LINE + 1);
	j->block = malloc(IN_BLOCK);
	j->tok = json_tokener_new_ex(16);
	if (!j->scratch_a || !j->scratch_d || !j->line || !j->block || !j->tok)
		return -ENOMEM;
	json_tokener_set_flags(j->tok, JSON_TOKENER_STRICT);
	return 0;
}

static void teardown(struct join *j)
{
	free(j->arena);
	free(j->recs);
	free(j->deps);
	free(j->by_uuid);
	free(j->scratch_a);
	free(j->scratch_d);
	free(j->line);
	free(j->block);
	if (j->tok)
		json_tokener_free(j->tok);
}

int cmd_migrations(int argc, char **argv)
{
	struct join j = {.lim = hv_mig_default_limits, .tolerance_ns = DEFAULT_TOLERANCE};
	int rc = parse_args(&j, argc, argv);

	if (rc)
		return rc < 0 ? HV_EXIT_OK : rc;
	if (setup(&j))
		goto oom;
	for (int i = optind; i < argc; i++)
		if (read_log(&j, argv[i]))
			goto oom;
	if (index_departures(&j))
		goto oom;
	run_join(&j);
	report(&j);
	summary(&j);
	if (j.c.malformed || j.c.unreadable)
		rc = HV_EXIT_ERROR;
	else
		rc = j.c.warped ? HV_EXIT_VIOLATIONS : HV_EXIT_OK;
	goto cleanup;
oom:
	hv_err("migrations: out of memory");
	rc = HV_EXIT_ERROR;
cleanup:
	fflush(stdout);
	teardown(&j);
	return rc;
}
