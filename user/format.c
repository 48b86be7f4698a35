// SPDX-License-Identifier: GPL-2.0
/* Numbers as a person on call reads them (format.h). */
#include <stdio.h>

#include "format.h"

void hv_format_ns(char *buf, size_t len, long long ns)
{
	long long a = ns < 0 ? -ns : ns;

	if (a >= 1000000000LL)
		snprintf(buf, len, "%.3f s", ns / 1e9);
	else if (a >= 1000000)
		snprintf(buf, len, "%.3f ms", ns / 1e6);
	else if (a >= 1000)
		snprintf(buf, len, "%.1f us", ns / 1e3);
	else
		snprintf(buf, len, "%lld ns", ns);
}
