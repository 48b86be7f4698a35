// SPDX-License-Identifier: GPL-2.0
/*
 * --metrics ADDR:PORT, parsed once, before anything is loaded, so that a
 * typo is an error at start (exit 2) rather than after the BPF programs
 * are attached. Numeric addresses only: nothing is resolved.
 *
 *   127.0.0.1:9477   one IPv4 address
 *   [::1]:9477       one IPv6 address
 *   :9477, 9477      every IPv4 address (0.0.0.0)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "listen_addr.h"

static int fail(char *err, size_t errlen, const char *s, const char *why)
{
	snprintf(err, errlen, "--metrics '%s': %s; accepted: " HV_LISTEN_FORMS, s, why);
	return -1;
}

/* Decimal digits only, 1-65535: no sign, no blank, no trailing text. */
static int parse_port(const char *p, unsigned short *port)
{
	unsigned long v = 0;

	if (!*p || strlen(p) > 5)
		return -1;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v < 1 || v > 65535)
		return -1;
	*port = (unsigned short)v;
	return 0;
}

static int parse_v6(const char *s, struct hv_listen_addr *a, char *err, size_t errlen)
{
	struct sockaddr_in6 *sa6 = (struct sockaddr_in6 *)&a->ss;
	const char *close = strchr(s, ']');
	char host[INET6_ADDRSTRLEN + 1];
	unsigned short port;

	if (!close)
		return fail(err, errlen, s, "no ']' after the IPv6 address");
	if (close[1] != ':' || parse_port(close + 2, &port))
		return fail(err, errlen, s, "a port (1-65535) must follow ']:'");
	if ((size_t)(close - s - 1) >= sizeof(host))
		return fail(err, errlen, s, "not an IPv6 address");
	snprintf(host, sizeof(host), "%.*s", (int)(close - s - 1), s + 1);
	sa6->sin6_family = AF_INET6;
	sa6->sin6_port = htons(port);
	if (inet_pton(AF_INET6, host, &sa6->sin6_addr) != 1)
		return fail(err, errlen, s, "not an IPv6 address");
	a->family = AF_INET6;
	a->len = sizeof(*sa6);
	return 0;
}

static int parse_v4(const char *s, struct hv_listen_addr *a, char *err, size_t errlen)
{
	struct sockaddr_in *sa4 = (struct sockaddr_in *)&a->ss;
	const char *colon = strchr(s, ':');
	char host[INET_ADDRSTRLEN + 1];
	unsigned short port;

	sa4->sin_family = AF_INET;
	sa4->sin_addr.s_addr = htonl(INADDR_ANY);
	a->family = AF_INET;
	a->len = sizeof(*sa4);
	if (!colon) { /* PORT */
		if (parse_port(s, &port))
			return fail(err, errlen, s, "not a port (1-65535)");
		sa4->sin_port = htons(port);
		return 0;
	}
	if (strchr(colon + 1, ':'))
		return fail(err, errlen, s, "an IPv6 address needs brackets, [::1]:9477");
	if (parse_port(colon + 1, &port))
		return fail(err, errlen, s, "the port must be 1-65535");
	sa4->sin_port = htons(port);
	if (colon == s) /* :PORT */
		return 0;
	if ((size_t)(colon - s) >= sizeof(host))
		return fail(err, errlen, s, "not an IPv4 address (names are not resolved)");
	snprintf(host, sizeof(host), "%.*s", (int)(colon - s), s);
	if (inet_pton(AF_INET, host, &sa4->sin_addr) != 1)
		return fail(err, errlen, s, "not an IPv4 address (names are not resolved)");
	return 0;
}

int hv_listen_addr_parse(const char *s, struct hv_listen_addr *a, char *err, size_t errlen)
{
	memset(a, 0, sizeof(*a));
	if (s[0] == '[')
		return parse_v6(s, a, err, errlen);
	return parse_v4(s, a, err, errlen);
}
