// SPDX-License-Identifier: GPL-2.0
/*
 * Open files are the daemon's to spend on /proc, BPF objects and its own
 * work: raise RLIMIT_NOFILE's soft limit (1024 for most services) to
 * HV_NOFILE_WANT, or to the hard limit when that is lower, so that what
 * the exporter holds (at most HV_HTTP_MAX_CONNECTIONS, http.c) never
 * starves the rest; a warning when that leaves under HV_NOFILE_MIN (or the
 * limit cannot be raised at all). 65536, not the hard limit itself: it is
 * 1000 times what the daemon uses, and --exec hooks, which get the
 * original limit back, are not the only programs that walk every fd.
 */
#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#include "fdlimit.h"
#include "hvguard.h"

static struct rlimit started_with;
static int saved;

void hv_fdlimit_raise(struct hv_ctx *ctx)
{
	struct rlimit rl;
	rlim_t want = HV_NOFILE_WANT;

	if (getrlimit(RLIMIT_NOFILE, &rl)) {
		hv_warn("cannot read the open-files limit: %s", strerror(errno));
		return;
	}
	started_with = rl;
	saved = 1;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
		want = rl.rlim_max;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
		rl.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &rl)) {
			hv_warn("cannot raise the open-files limit from %llu to %llu: %s",
				(unsigned long long)started_with.rlim_cur, (unsigned long long)want,
				strerror(errno));
			return;
		}
	}
	if (rl.rlim_cur < HV_NOFILE_MIN) {
		hv_warn("open files limited to %llu by the hard limit (wanted %d, at least %d): "
			"raise LimitNOFILE or ulimit -Hn",
			(unsigned long long)rl.rlim_cur, HV_NOFILE_WANT, HV_NOFILE_MIN);
		return;
	}
	if (rl.rlim_cur != started_with.rlim_cur)
		hv_log(ctx, "open-files limit raised from %llu to %llu%s",
		       (unsigned long long)started_with.rlim_cur, (unsigned long long)rl.rlim_cur,
		       rl.rlim_cur < HV_NOFILE_WANT ? " (the hard limit)" : "");
}

unsigned long hv_fdlimit_started_with(void)
{
	return saved ? (unsigned long)started_with.rlim_cur : 0;
}
