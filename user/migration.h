/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Live migration, the one case where a VM's clocks must move: the guest
 * must see, on the destination, the TSC and the kvmclock it would have seen
 * had it stayed on the source. This is the model and its arithmetic, one
 * implementation used by the daemon (a departure and an arrival on one
 * host) and by `hvguard migrations` (records joined from several hosts'
 * logs), and tested on its own (tests/unit/test_migration.c).
 *
 * A record is a *sample* of a guest's clocks as functions of the host's
 * CLOCK_REALTIME: at realtime_ns the guest's TSC (per vCPU) read tsc and
 * its kvmclock read kvmclock_ns. Between samples a guest TSC advances at
 * tsc_khz and its kvmclock at 1 ns/ns, whether the vCPUs run or not (KVM
 * applies a fixed offset to the host's clocks). So from a departure's
 * sample the source's clocks are known at any moment, and an arrival's
 * sample says where the guest's clocks are on the destination.
 *
 * - A departure: a VM left the process that ran it with its clocks saved
 *   (its VMM exited, or it was found paused when an arrival looked for its
 *   source). saved_by_ns: the latest moment the save can have happened.
 * - An arrival: a VM that never ran in its process had its TSC set by a
 *   host write before its first run. written_ns: that write; realtime_ns:
 *   its first guest entry, where the sample is taken.
 *
 * They match by the fingerprint itself, no name needed: the TSC value the
 * destination wrote (W, per vCPU) is one the source's TSC held (or would
 * have held) at some moment t_s. Either W is the value saved (QEMU 7.2:
 * t_s lies before the source's saved_by_ns) or W was advanced to the write
 * (the precise way: t_s is written_ns, within the slack); t_s lies within
 * the window before the write, the write within the window after
 * saved_by_ns, and the vCPUs' t_s agree. A VM's arrival and its later
 * departure from the same process (host, pid, vm) never match: they share
 * one clock line.
 */
#ifndef HVGUARD_USER_MIGRATION_H
#define HVGUARD_USER_MIGRATION_H

#include <stdbool.h>
#include <stdint.h>

#include "hvguard/clock.h" /* HV_MAX_VCPUS */

enum hv_mig_kind {
	HV_MIG_DEPARTURE = 1,
	HV_MIG_ARRIVAL,
};

#define HV_MIG_HOST_LEN 64
#define HV_MIG_NAME_LEN 64
#define HV_MIG_UUID_LEN 40

struct hv_mig_vcpu {
	uint32_t id;
	int64_t tsc; /* the guest TSC at the record's realtime_ns */
};

struct hv_mig_record {
	enum hv_mig_kind kind;
	char host[HV_MIG_HOST_LEN];
	char name[HV_MIG_NAME_LEN]; /* -name of the VMM's command line, "" if none */
	char uuid[HV_MIG_UUID_LEN]; /* -uuid, "" if none */
	int32_t pid;
	uint64_t vm;		/* the VM's id on its host */
	int64_t realtime_ns;	/* CLOCK_REALTIME when the sample holds */
	int64_t tai_ns;		/* CLOCK_TAI at the same moment */
	int64_t kvmclock_ns;	/* the guest's kvmclock then */
	uint32_t tsc_khz;	/* the guest's TSC frequency */
	uint32_t pvti_mul;	/* the guest's TSC->kvmclock scale (last PVTI) */
	int32_t pvti_shift;	/* 0/0 when unknown */
	int64_t clock_error_ns; /* the host clock's maximum error (adjtimex), -1 if unknown */
	int64_t saved_by_ns;	/* departure: latest the clocks can have been saved */
	int64_t written_ns;	/* arrival: realtime of the TSC write before the first run */
	uint32_t nr_vcpus;
	struct hv_mig_vcpu vcpu[HV_MAX_VCPUS]; /* sorted by id, no repeats */
};

/* How far apart things may be and still be one migration. */
struct hv_mig_limits {
	int64_t window_ns; /* save to the destination's TSC write, at most */
	int64_t spread_ns; /* the vCPUs' save moments, at most this far apart */
	int64_t slack_ns;  /* on each bound, plus the two hosts' clock errors */
};

#define HV_MIG_WINDOW_NS (10 * 60 * 1000000000ll) /* ten minutes */
#define HV_MIG_SPREAD_NS (100 * 1000000ll)	  /* QEMU reads the TSCs within ms */
#define HV_MIG_SLACK_NS	 (1000000ll)

extern const struct hv_mig_limits hv_mig_default_limits;

struct hv_mig_result {
	int64_t saved_ns;	  /* t_s: realtime the source's clocks were saved (at the latest) */
	int64_t downtime_ns;	  /* from t_s to the destination's first guest entry */
	int64_t kvmclock_warp_ns; /* destination kvmclock - the source's, extrapolated */
	int64_t tsc_warp_ns[HV_MAX_VCPUS]; /* the same per vCPU (arrival's order), in ns */
	int64_t worst_tsc_warp_ns;	   /* the largest in magnitude */
	int64_t pvti_changed_ns; /* change of the kvmclock over 1 s of guest TSC, 0 if unknown */
	bool pvti_known;
	int64_t uncertainty_ns; /* the two hosts' clock errors added (0 on one host) */
};

/* Why a pair is not one migration (hv_mig_match), for messages and tests. */
enum hv_mig_verdict {
	HV_MIG_MATCH = 0,
	HV_MIG_NOT_KINDS,    /* not a departure and an arrival */
	HV_MIG_NOT_KHZ,	     /* TSC frequencies differ (or unknown) */
	HV_MIG_NOT_VCPUS,    /* not the same vCPUs */
	HV_MIG_NOT_IN_TIME,  /* a save moment outside the bounds */
	HV_MIG_NOT_TOGETHER, /* the vCPUs' save moments too far apart */
	HV_MIG_NOT_SANE,     /* a value out of range (hostile or broken record) */
	HV_MIG_SAME_VM,	     /* d is the departure of the VM a brought (same host, pid, vm) */
	HV_MIG_NOT_UUID,     /* both uuids known, and different */
};

const char *hv_mig_verdict_name(enum hv_mig_verdict v);

/*
 * Is arrival a the destination of departure d? On a match, r holds the
 * downtime and the warps. Never overflows: every input is range-checked.
 */
enum hv_mig_verdict hv_mig_match(const struct hv_mig_record *d, const struct hv_mig_record *a,
				 const struct hv_mig_limits *lim, struct hv_mig_result *r);

/*
 * The realtime at which vCPU 0's guest TSC read 0, by a record's sample
 * (the guest's TSC origin). A matching arrival's origin is the departure's
 * plus (written_ns - t_s), so it lies in [departure's origin - slack,
 * departure's origin + window + slack], slack being the limits' plus both
 * hosts' clock errors (and a few ns of rounding): the join sorts
 * departures by it and looks only there. INT64_MIN if not sane.
 */
int64_t hv_mig_tsc_origin(const struct hv_mig_record *r);

/* A record's fields are within bounds (hostile input is refused whole). */
bool hv_mig_record_sane(const struct hv_mig_record *r);
/* NULL if sane, else which bound the record breaks (for messages). */
const char *hv_mig_record_insane(const struct hv_mig_record *r);

/* ns of guest TSC cycles at khz, and back; no overflow in range. */
int64_t hv_mig_cycles_to_ns(int64_t cycles, uint32_t khz);
int64_t hv_mig_ns_to_cycles(int64_t ns, uint32_t khz);

#endif
