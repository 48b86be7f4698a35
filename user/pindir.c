// SPDX-License-Identifier: GPL-2.0
/*
 * The pin directory (pindir.h). bpffs may be mounted 1777 (whoever mounted
 * it chose so), so anyone may create /sys/fs/bpf/hvguard before the first daemon
 * does, then delete hvguard's maps from it or plant maps of their own.
 * hvguard trusts a pin directory only when root owns it and no one else may
 * write to it, and every directory above it is root's and writable by no
 * one else (or sticky, as a 1777 bpffs root is: there only root may rename
 * or remove what root put). Every check is made on an fd opened one
 * component at a time with O_NOFOLLOW, and everything after goes through
 * that fd: libbpf, which wants a path, gets "/proc/self/fd/N/NAME", which
 * the kernel resolves through our open file to the very directory checked,
 * not by its name again. Inside a directory only root may write to, only
 * root put what is there; each hv_* entry is checked anyway (a directory
 * made safe after the fact may still hold what was planted before).
 *
 * The pinned structs' layout is recorded in a pinned array of its own
 * (HV_LAYOUT_MAP, frozen), and pinned state of another layout is refused,
 * never reused or silently dropped. The flock() on the directory itself
 * (bpffs holds no regular files) makes one daemon per pin directory.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "hvguard/clock.h"
#include "hvguard.h"
#include "pindir.h"

#define BPF_FS_MAGIC 0xcafe4a11
#define DIR_FLAGS    (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
#define GO_WRITE     (S_IWGRP | S_IWOTH)

/* The value of HV_LAYOUT_MAP's one entry. */
struct hv_layout {
	__u32 version; /* HV_CLOCK_LAYOUT_VERSION */
	__u32 sizes;   /* hash of the pinned structs' sizes */
};

/* hv_err for `run`, which refuses; hv_warn for `audit`, which goes on. */
static void (*say)(const char *fmt, ...) __attribute__((format(printf, 1, 2))) = hv_err;

static bool on_bpffs(int fd)
{
	struct statfs sfs;

	return fstatfs(fd, &sfs) == 0 && sfs.f_type == BPF_FS_MAGIC;
}

/* A directory above the pin directory: root's, and writable by no one
 * else unless sticky. */
static int check_above(int fd, const char *name, const char *dir)
{
	struct stat st;

	if (fstat(fd, &st)) {
		say("cannot stat %s: %s", name, strerror(errno));
		return HV_EXIT_PINDIR;
	}
	if (st.st_uid == 0 && (!(st.st_mode & GO_WRITE) || (st.st_mode & S_ISVTX)))
		return HV_EXIT_OK;
	say("%s, above the pin directory %s, is owned by uid %u with mode %04o: whoever may "
	    "write to it may replace the pin directory. Make it root's (chown root:root %s && "
	    "chmod go-w %s), or choose another --pin-dir",
	    name, dir, st.st_uid, st.st_mode & 07777, name, name);
	return HV_EXIT_PINDIR;
}

static int check_dir(int fd, const char *dir)
{
	struct stat st;

	if (fstat(fd, &st)) {
		say("cannot stat %s: %s", dir, strerror(errno));
		return HV_EXIT_PINDIR;
	}
	if (st.st_uid != 0 || (st.st_mode & GO_WRITE)) {
		say("pin directory %s is owned by uid %u with mode %04o: whoever may write to it "
		    "may delete or plant hvguard's state. Make it root's alone (chown root:root "
		    "%s && chmod 0700 %s), or choose another --pin-dir",
		    dir, st.st_uid, st.st_mode & 07777, dir, dir);
		return HV_EXIT_PINDIR;
	}
	if (!on_bpffs(fd)) {
		say("pin directory %s is not on bpffs: choose a --pin-dir under /sys/fs/bpf", dir);
		return HV_EXIT_PINDIR;
	}
	return HV_EXIT_OK;
}

/* One component below parent, never through a symlink; created 0700 when
 * absent, create is set and the parent is on bpffs. */
static int open_below(int parent, const char *comp, bool create)
{
	int fd = openat(parent, comp, DIR_FLAGS);

	if (fd >= 0 || errno != ENOENT || !create || !on_bpffs(parent))
		return fd;
	if (mkdirat(parent, comp, 0700) && errno != EEXIST)
		return -1;
	return openat(parent, comp, DIR_FLAGS);
}

static int open_failed(const char *name, const char *dir, int err)
{
	if (err == ELOOP || err == ENOTDIR)
		say("%s is a symlink or not a directory: hvguard does not follow symlinks to "
		    "its pin directory %s. Remove it, or choose another --pin-dir",
		    name, dir);
	else
		say("cannot open %s for hvguard's pinned state: %s", name, strerror(err));
	return err == ELOOP || err == ENOTDIR ? HV_EXIT_PINDIR : HV_EXIT_NOFS;
}

/* Opens dir one component at a time from "/", checking each directory
 * above it. *fdp is -1 when dir is absent and create is not set. */
static int walk(const char *dir, bool create, int *fdp)
{
	char path[PATH_MAX], name[PATH_MAX] = "", *comp, *save = NULL;
	int fd, next, rc = HV_EXIT_OK, depth = 0;

	*fdp = -1;
	if (dir[0] != '/' || strlen(dir) >= sizeof(path)) {
		say("--pin-dir %s: give an absolute path (under /sys/fs/bpf)", dir);
		return HV_EXIT_ERROR;
	}
	strcpy(path, dir);
	fd = open("/", DIR_FLAGS);
	if (fd < 0)
		return open_failed("/", dir, errno);
	for (comp = strtok_r(path, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
		if (!strcmp(comp, ".") || !strcmp(comp, "..")) {
			say("--pin-dir %s: give a path without '.' or '..'", dir);
			rc = HV_EXIT_ERROR;
			goto cleanup;
		}
		rc = check_above(fd, depth ? name : "/", dir);
		if (rc)
			goto cleanup;
		snprintf(name + strlen(name), sizeof(name) - strlen(name), "/%s", comp);
		next = open_below(fd, comp, create);
		if (next < 0) {
			if (errno != ENOENT || create)
				rc = open_failed(name, dir, errno);
			goto cleanup;
		}
		close(fd);
		fd = next;
		depth++;
	}
	if (!depth) {
		say("--pin-dir %s: give a directory under /sys/fs/bpf", dir);
		rc = HV_EXIT_ERROR;
		goto cleanup;
	}
	rc = check_dir(fd, dir);
	if (!rc) {
		*fdp = fd;
		fd = -1;
	}
cleanup:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* The pid holding the flock on fd, from /proc/locks; 0 when not found. */
static int lock_holder(int fd)
{
	char line[256], id[64], want[64], type[16];
	struct stat st;
	int pid, found = 0;
	FILE *f;

	if (fstat(fd, &st))
		return 0;
	snprintf(want, sizeof(want), "%02x:%02x:%lu", major(st.st_dev), minor(st.st_dev),
		 (unsigned long)st.st_ino);
	f = fopen("/proc/locks", "re");
	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f))
		if (sscanf(line, "%*d: %15s %*s %*s %d %63s", type, &pid, id) == 3 &&
		    !strcmp(type, "FLOCK") && !strcmp(id, want))
			found = pid;
	fclose(f);
	return found;
}

static int take_lock(struct hv_pindir *pd)
{
	int pid;

	if (!flock(pd->fd, LOCK_EX | LOCK_NB))
		return HV_EXIT_OK;
	if (errno != EWOULDBLOCK) {
		hv_err("cannot lock the pin directory %s: %s", pd->name, strerror(errno));
		return HV_EXIT_ERROR;
	}
	pid = lock_holder(pd->fd);
	hv_err("pin directory %s is in use by another hvguard (pid %d): one daemon per pin "
	       "directory, or they would release each other's frozen VMMs. Stop that one first "
	       "(systemctl stop hvguard, or kill %d), or give this one a --pin-dir of its own",
	       pd->name, pid, pid);
	return HV_EXIT_BUSY;
}

static __u32 layout_sizes(void)
{
	const __u32 sizes[] = {
	    sizeof(struct hv_clock_vm),	       sizeof(struct hv_clock_vcpu_key),
	    sizeof(struct hv_clock_vcpu),      sizeof(struct hv_clock_probe),
	    sizeof(struct hv_clock_global),    HV_MAX_VCPUS,
	    sizeof(struct hv_clock_departure),
	};
	const unsigned char *b = (const unsigned char *)sizes;
	__u32 h = 2166136261u; /* FNV-1a */

	for (size_t i = 0; i < sizeof(sizes); i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

struct pins {
	int count;   /* hv_* entries */
	bool layout; /* HV_LAYOUT_MAP among them */
	char bad[NAME_MAX + 1];
	struct stat bad_st;
};

/* hvguard's entries in the directory; an hv_* entry not a pinned object
 * of root's, writable by root alone, goes into bad. */
static int scan_pins(const struct hv_pindir *pd, struct pins *p)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd;

	*p = (struct pins){};
	fd = openat(pd->fd, ".", DIR_FLAGS);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		say("cannot list the pin directory %s: %s", pd->name, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "hv_", 3))
			continue;
		p->count++;
		p->layout |= !strcmp(de->d_name, HV_LAYOUT_MAP);
		if (fstatat(pd->fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && st.st_uid == 0 && !(st.st_mode & GO_WRITE))
			continue;
		if (!p->bad[0]) {
			snprintf(p->bad, sizeof(p->bad), "%s", de->d_name);
			p->bad_st = st;
		}
	}
	closedir(d);
	return 0;
}

static int read_layout(const struct hv_pindir *pd, struct hv_layout *l)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info), key = 0;
	char path[64];
	int fd, rc = -1;

	snprintf(path, sizeof(path), "%s/%s", pd->at, HV_LAYOUT_MAP);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -1;
	if (!bpf_obj_get_info_by_fd(fd, &info, &len) && info.type == BPF_MAP_TYPE_ARRAY &&
	    info.key_size == sizeof(key) && info.value_size == sizeof(*l) &&
	    info.max_entries == 1 && !bpf_map_lookup_elem(fd, &key, l))
		rc = 0;
	close(fd);
	return rc;
}

static int record_layout(const struct hv_pindir *pd)
{
	struct hv_layout l = {HV_CLOCK_LAYOUT_VERSION, layout_sizes()};
	char path[64];
	__u32 key = 0;
	int fd, rc = HV_EXIT_OK;

	snprintf(path, sizeof(path), "%s/%s", pd->at, HV_LAYOUT_MAP);
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, HV_LAYOUT_MAP, sizeof(key), sizeof(l), 1, NULL);
	if (fd < 0 || bpf_map_update_elem(fd, &key, &l, BPF_ANY) || bpf_map_freeze(fd) ||
	    bpf_obj_pin(fd, path)) {
		hv_err("cannot record the layout version in %s/%s: %s", pd->name, HV_LAYOUT_MAP,
		       strerror(errno));
		rc = HV_EXIT_ERROR;
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

/* HV_EXIT_OK when the pinned state is this hvguard's layout (*none when
 * nothing is pinned), else the exit code, the message said unless it is
 * state another version left (*old) and quiet_old. */
static int check_layout(const struct hv_pindir *pd, bool *none, bool *old, bool quiet_old)
{
	struct hv_layout want = {HV_CLOCK_LAYOUT_VERSION, layout_sizes()}, have;
	struct pins p;

	*none = false;
	*old = false;
	if (scan_pins(pd, &p))
		return HV_EXIT_ERROR;
	if (p.bad[0]) {
		say("%s/%s is not hvguard's (owned by uid %u, mode %06o): planted while someone "
		    "else could write to the directory? Nothing in it is trusted: remove it "
		    "(rm -r %s), or start with --reset-pins, or choose another --pin-dir",
		    pd->name, p.bad, p.bad_st.st_uid, p.bad_st.st_mode, pd->name);
		return HV_EXIT_PINDIR;
	}
	if (!p.count) {
		*none = true;
		return HV_EXIT_OK;
	}
	if (!p.layout || read_layout(pd, &have)) {
		say("%s holds pinned state without a readable layout version (left by an hvguard "
		    "older than layout versions, or not by hvguard): stop every hvguard using it, "
		    "then start with --reset-pins (the state is dropped), or choose another "
		    "--pin-dir",
		    pd->name);
		return HV_EXIT_PINDIR;
	}
	if (have.version != want.version || have.sizes != want.sizes) {
		*old = true;
		if (quiet_old)
			return HV_EXIT_PINDIR;
		say("the state pinned in %s has layout %u (sizes %08x), this hvguard %u (sizes "
		    "%08x): it was left by another version of hvguard. Stop every hvguard using "
		    "it, then start with --reset-pins (the state is dropped: VM ids restart, a "
		    "pause under way goes unmeasured), or choose another --pin-dir",
		    pd->name, have.version, have.sizes, want.version, want.sizes);
		return HV_EXIT_PINDIR;
	}
	return HV_EXIT_OK;
}

/* How many VMMs the pinned hv_clock_frozen says are frozen: a reset must
 * not forget them silently. -1 when it cannot be read. */
static int count_frozen(const struct hv_pindir *pd)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	__u64 key, *prev = NULL;
	char path[64];
	int fd, n = 0;

	snprintf(path, sizeof(path), "%s/hv_clock_frozen", pd->at);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return 0;
	if (bpf_obj_get_info_by_fd(fd, &info, &len) || info.key_size != sizeof(key)) {
		close(fd);
		return -1;
	}
	while (!bpf_map_get_next_key(fd, prev, &key)) {
		prev = &key;
		n++;
	}
	close(fd);
	return n;
}

/* --reset-pins, under the lock: every hv_* entry goes. */
static int reset_pins(const struct hv_pindir *pd)
{
	int frozen = count_frozen(pd), fd, n = 0;
	struct dirent *de;
	DIR *d;

	if (frozen)
		hv_warn("%s recorded %d VMM(s) frozen for a correction by a daemon that did not "
			"finish: after the reset no hvguard continues them. Look for VMMs "
			"stopped (state T in ps) and continue them with kill -CONT PID",
			pd->name, frozen);
	fd = openat(pd->fd, ".", DIR_FLAGS);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		hv_err("cannot list the pin directory %s: %s", pd->name, strerror(errno));
		if (fd >= 0)
			close(fd);
		return HV_EXIT_ERROR;
	}
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "hv_", 3))
			continue;
		if (unlinkat(pd->fd, de->d_name, 0)) {
			hv_err("--reset-pins: cannot remove %s/%s: %s", pd->name, de->d_name,
			       strerror(errno));
			closedir(d);
			return HV_EXIT_ERROR;
		}
		n++;
	}
	closedir(d);
	hv_warn("--reset-pins: dropped %d pinned object(s) from %s", n, pd->name);
	return HV_EXIT_OK;
}

/* --reset-pins=old-layout: state another version left goes, unless it
 * recorded VMMs frozen by a daemon that did not finish (they need a person). */
static int reset_old_layout(const struct hv_pindir *pd)
{
	int frozen = count_frozen(pd);

	if (frozen) {
		say("%s holds state of another version of hvguard that records %d VMM(s) "
		    "frozen for a correction (a daemon that did not finish): not dropped. "
		    "Continue them (state T in ps: kill -CONT PID), then start with "
		    "--reset-pins",
		    pd->name, frozen);
		return HV_EXIT_PINDIR;
	}
	hv_warn("%s holds state of another version of hvguard (an upgrade): dropping it "
		"(--reset-pins=old-layout); VM ids restart, a pause under way goes unmeasured",
		pd->name);
	return reset_pins(pd);
}

int hv_pindir_take(struct hv_pindir *pd, const char *dir, enum hv_reset reset)
{
	bool none, old;
	int rc;

	say = hv_err;
	*pd = (struct hv_pindir){.fd = -1, .name = dir};
	rc = walk(dir, true, &pd->fd);
	if (rc)
		return rc;
	snprintf(pd->at, sizeof(pd->at), "/proc/self/fd/%d", pd->fd);
	rc = take_lock(pd);
	if (!rc && reset == HV_RESET_ALWAYS)
		rc = reset_pins(pd);
	if (!rc)
		rc = check_layout(pd, &none, &old, reset == HV_RESET_OLD_LAYOUT);
	if (rc && old && reset == HV_RESET_OLD_LAYOUT) {
		rc = reset_old_layout(pd);
		if (!rc)
			rc = check_layout(pd, &none, &old, false);
	}
	if (!rc && none)
		rc = record_layout(pd);
	if (rc)
		hv_pindir_close(pd);
	return rc;
}

int hv_pindir_peek(struct hv_pindir *pd, const char *dir)
{
	bool none = true, old;
	int rc;

	say = hv_warn;
	*pd = (struct hv_pindir){.fd = -1, .name = dir};
	rc = walk(dir, false, &pd->fd);
	if (!rc && pd->fd >= 0) {
		snprintf(pd->at, sizeof(pd->at), "/proc/self/fd/%d", pd->fd);
		rc = check_layout(pd, &none, &old, false);
	}
	say = hv_err;
	if (rc)
		hv_warn("not reading hvguard's pinned state from %s", dir);
	if (rc || none) {
		hv_pindir_close(pd);
		return -1;
	}
	return 0;
}

int hv_pindir_check_maps(const char *dir, const char *at, struct bpf_object *obj)
{
	struct bpf_map_info info;
	struct bpf_map *m;
	char path[PATH_MAX];
	__u32 len;
	int fd, rc = 0;

	bpf_object__for_each_map(m, obj) {
		if (!bpf_map__pin_path(m))
			continue;
		snprintf(path, sizeof(path), "%s/%s", at, bpf_map__name(m));
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue;
		memset(&info, 0, sizeof(info));
		len = sizeof(info);
		if (bpf_obj_get_info_by_fd(fd, &info, &len) || info.type != bpf_map__type(m) ||
		    info.key_size != bpf_map__key_size(m) ||
		    info.value_size != bpf_map__value_size(m) ||
		    info.max_entries != bpf_map__max_entries(m)) {
			hv_err("pinned %s/%s does not fit this hvguard although its layout "
			       "version does (a map's definition changed without a version "
			       "bump?): stop every hvguard using %s, then start with "
			       "--reset-pins",
			       dir, bpf_map__name(m), dir);
			rc = -1;
		}
		close(fd);
		if (rc)
			break;
	}
	return rc;
}

void hv_pindir_close(struct hv_pindir *pd)
{
	if (pd->fd >= 0)
		close(pd->fd); /* and the lock with it */
	pd->fd = -1;
}
