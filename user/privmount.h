/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Pseudo-filesystems a one-shot command needs for its own reading
 * (debugfs, tracefs, securityfs): mounted where missing, but in a private
 * mount namespace of the process, so the host's mount table never changes.
 * Where no private namespace can be entered, a mount is made in the host's
 * namespace, said with hv_warn, and undone by hv_privmount_release.
 */
#ifndef HVGUARD_USER_PRIVMOUNT_H
#define HVGUARD_USER_PRIVMOUNT_H

#include <stdbool.h>

#define HV_PRIVMOUNT_MAX 4

struct hv_privmount {
	bool private_ns; /* entered a private mount namespace */
	bool ns_tried;	 /* tried to, whatever the outcome */
	int ns_errno;	 /* why not, when tried and failed */
	int nr_host;
	const char *host_mounts[HV_PRIVMOUNT_MAX]; /* to unmount at release */
};

/*
 * 0 when a filesystem of type (statfs magic) is on dir, already or mounted
 * now for this process; -1 when not (errno set, nothing said).
 */
int hv_privmount_ensure(struct hv_privmount *m, const char *type, const char *dir, long magic);

/* Unmounts what was mounted in the host's namespace. */
void hv_privmount_release(struct hv_privmount *m);

#endif
