/* SPDX-License-Identifier: GPL-2.0 */
/* The address --metrics listens on: ADDR:PORT, [IPV6]:PORT, :PORT or PORT. */
#ifndef HVGUARD_USER_LISTEN_ADDR_H
#define HVGUARD_USER_LISTEN_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

struct hv_listen_addr {
	struct sockaddr_storage ss; /* sockaddr_in or sockaddr_in6, port set */
	socklen_t len;
	int family; /* AF_INET or AF_INET6 */
};

/* The forms accepted, for messages and --help. */
#define HV_LISTEN_FORMS                                                                            \
	"ADDR:PORT (an IPv4 address or a host name), [IPV6]:PORT, :PORT or PORT (e.g. "            \
	"127.0.0.1:9477)"

/* 0, or -1 with err saying what is wrong and the accepted forms. */
int hv_listen_addr_parse(const char *s, struct hv_listen_addr *a, char *err, size_t errlen);

#endif
