// SPDX-License-Identifier: GPL-2.0
/*
 * --metrics ADDR:PORT, parsed once, before anything is loaded, so that a
 * typo is an error at start (exit 2) rather than after the BPF programs
 * are attached. A host name is resolved then, once (its first IPv4
 * address, else its first IPv6 one); the port is always a number.
 *
 *   127.0.0.1:9477   one IPv4 address
 *   localhost:9477   the address the name resolves to at start
 *   [::1]:9477       one IPv6 address
 *   :9477, 9477      every IPv4 address (0.0.0.0)
 */
#include <arpa/inet.h>
#include <netdb.h>
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

/* A host name: its first IPv4 address, else its first IPv6 one. */
static int resolve(const char *s, const char *host, unsigned short port, struct hv_listen_addr *a,
		   char *err, size_t errlen)
{
	static const int families[] = {AF_INET, AF_INET6};
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	char why[160];
	int rc = EAI_NONAME;

	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		hints.ai_family = families[i];
		rc = getaddrinfo(host, NULL, &hints, &res);
		if (!rc && res && res->ai_addrlen <= sizeof(a->ss))
			break;
		if (!rc)
			freeaddrinfo(res);
		res = NULL;
	}
	if (!res) {
		snprintf(why, sizeof(why), "cannot resolve '%s': %s", host,
			 rc == EAI_SYSTEM ? "system error" : gai_strerror(rc));
		return fail(err, errlen, s, why);
	}
	memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
	a->family = res->ai_family;
	a->len = res->ai_addrlen;
	if (a->family == AF_INET)
		((struct sockaddr_in *)&a->ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)&a->ss)->sin6_port = htons(port);
	freeaddrinfo(res);
	return 0;
}

static int parse_v4(const char *s, struct hv_listen_addr *a, char *err, size_t errlen)
{
	struct sockaddr_in *sa4 = (struct sockaddr_in *)&a->ss;
	const char *colon = strchr(s, ':');
	char host[256];
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
		return fail(err, errlen, s, "the host name is too long");
	snprintf(host, sizeof(host), "%.*s", (int)(colon - s), s);
	if (inet_pton(AF_INET, host, &sa4->sin_addr) == 1)
		return 0;
	/* Digits and dots that are no address (300.1.1.1) are a typo, not a name. */
	if (strspn(host, "0123456789.") == strlen(host))
		return fail(err, errlen, s, "not an IPv4 address");
	return resolve(s, host, port, a, err, errlen);
}

int hv_listen_addr_parse(const char *s, struct hv_listen_addr *a, char *err, size_t errlen)
{
	memset(a, 0, sizeof(*a));
	if (s[0] == '[')
		return parse_v6(s, a, err, errlen);
	return parse_v4(s, a, err, errlen);
}
