// SPDX-License-Identifier: GPL-2.0
/*
 * Mounts for a command's own use, in a private mount namespace (privmount.h).
 * unshare(CLONE_NEWNS) copies the mount table; / is then made a recursive
 * slave, so mounts made here stay here while the host's still propagate in.
 * The namespace goes away with the process: nothing to undo.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "hvguard.h"
#include "privmount.h"

static bool is_fs(const char *dir, long magic)
{
	struct statfs st;

	return statfs(dir, &st) == 0 && st.f_type == magic;
}

static void enter_private_ns(struct hv_privmount *m)
{
	m->ns_tried = true;
	if (unshare(CLONE_NEWNS)) {
		m->ns_errno = errno;
		return;
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL)) {
		/* In a new namespace whose mounts would still propagate out:
		 * as if none was entered, every mount is undone at release. */
		m->ns_errno = errno;
		return;
	}
	m->private_ns = true;
}

static int mount_here(struct hv_privmount *m, const char *type, const char *dir)
{
	mkdir(dir, 0755);
	if (mount(type, dir, type, MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
		return -1;
	if (m->private_ns)
		return 0;
	hv_warn("could not enter a private mount namespace (%s): %s is mounted on %s in the "
		"host's namespace for this command, and unmounted when it ends",
		strerror(m->ns_errno), type, dir);
	if (m->nr_host < HV_PRIVMOUNT_MAX)
		m->host_mounts[m->nr_host++] = dir;
	return 0;
}

int hv_privmount_ensure(struct hv_privmount *m, const char *type, const char *dir, long magic)
{
	if (is_fs(dir, magic))
		return 0;
	if (!m->ns_tried)
		enter_private_ns(m);
	if (mount_here(m, type, dir)) {
		/* EBUSY: someone else mounted it meanwhile. */
		if (errno == EBUSY && is_fs(dir, magic))
			return 0;
		return -1;
	}
	if (is_fs(dir, magic))
		return 0;
	errno = ENODEV;
	return -1;
}

void hv_privmount_release(struct hv_privmount *m)
{
	while (m->nr_host > 0) {
		const char *dir = m->host_mounts[--m->nr_host];

		if (umount2(dir, 0) && umount2(dir, MNT_DETACH))
			hv_warn("could not unmount %s (%s): unmount it with 'umount %s'", dir,
				strerror(errno), dir);
	}
}
