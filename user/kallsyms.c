// SPDX-License-Identifier: GPL-2.0
/*
 * KVM's and Xen's file_operations objects are data symbols, absent from
 * kallsyms without CONFIG_KALLSYMS_ALL; their ioctl handlers are functions
 * and always present. The BPF side recognises files by those handlers.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "kallsyms.h"

int hv_kallsyms_lookup(const char *const *names, uint64_t *addrs, int count)
{
	char line[512], sym[256], type;
	unsigned long long addr;
	bool zero_seen = false;
	int found = 0;
	FILE *f;

	for (int i = 0; i < count; i++)
		addrs[i] = 0;
	f = fopen("/proc/kallsyms", "r");
	if (!f)
		return -errno;
	while (found < count && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx %c %255s", &addr, &type, sym) != 3)
			continue;
		if (type != 't' && type != 'T')
			continue;
		for (int i = 0; i < count; i++) {
			if (addrs[i] || strcmp(sym, names[i]))
				continue;
			if (!addr)
				zero_seen = true;
			addrs[i] = addr;
			found++;
		}
	}
	fclose(f);
	return zero_seen ? -EPERM : found;
}
