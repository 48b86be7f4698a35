// SPDX-License-Identifier: GPL-2.0
/*
 * The exporter's HTTP server, for clients hvguard does not trust: any local
 * user can connect to the metrics port. libmicrohttpd serves it from one
 * thread of its own, with epoll (no select(): fds above 1024 are fine), and
 * these limits (http.h), so that no client can take from the daemon more
 * than a few dozen fds, a bounded log and a bounded share of that thread:
 *
 * - HV_HTTP_MAX_CONNECTIONS (64) in all: a Prometheus server keeps one
 *   connection per target, so an HA pair, a federation and a few curls
 *   use under 10; 64 fds are nothing against the daemon's 65536
 *   (fdlimit.c) and would still leave 960 of an unraised 1024. At the
 *   limit libmicrohttpd stops accepting; newcomers wait in the kernel's
 *   accept queue (hvguard_http_accept_queue) until a slot frees.
 * - HV_HTTP_MAX_PER_IP (8) per client address: one address cannot take
 *   every slot; libmicrohttpd accepts and closes at once what is over.
 * - HV_HTTP_TIMEOUT_S (5 s) without traffic closes a connection: a scrape
 *   sends its request as soon as it connects and is answered from memory
 *   in milliseconds; an idle connection only holds a slot. A scraper that
 *   polls more often keeps its keep-alive connection (and slot); others
 *   reconnect, as Prometheus does when its connection was closed.
 * - libmicrohttpd's log goes through a token bucket (HV_HTTP_LOG_BURST
 *   lines, then one per HV_HTTP_LOG_EVERY_S), which counts what it drops
 *   and says how many: a flood costs a handful of lines, not one a
 *   connection. It goes to stderr, never to the alert stream, so that the
 *   HTTP thread never waits for whoever reads the alerts.
 */
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "http.h"
#include "hvguard.h"
#include "listen_addr.h"
#include "metrics.h"

#define NS_PER_S 1000000000ull

struct hv_http {
	struct MHD_Daemon *d;
	struct hv_metrics *m;
	_Atomic uint64_t loop_ns; /* CLOCK_MONOTONIC of the main loop's last turn; 0: not yet */
	pthread_mutex_t log_lock; /* the token bucket: */
	unsigned tokens;
	uint64_t refilled_ns;
	unsigned long long suppressed; /* since the last line that said so */
	_Atomic(char *) families;      /* for /healthz, set once after load */
};

/* libmicrohttpd's message for a connection it accepted and closed at once
 * because of MHD_OPTION_CONNECTION_LIMIT or _PER_IP_CONNECTION_LIMIT: the
 * only place where it tells, hence the count. */
static const char MHD_REFUSAL[] = "Server reached connection limit";

static bool take_token(struct hv_http *h)
{
	uint64_t now = hv_now_ns(CLOCK_MONOTONIC);
	uint64_t every = HV_HTTP_LOG_EVERY_S * NS_PER_S;
	uint64_t earned = (now - h->refilled_ns) / every;

	if (earned) {
		h->tokens = h->tokens + earned > HV_HTTP_LOG_BURST ? HV_HTTP_LOG_BURST
								   : h->tokens + (unsigned)earned;
		h->refilled_ns += earned * every;
	}
	if (!h->tokens)
		return false;
	h->tokens--;
	return true;
}

/* Under log_lock, with a token taken. */
static void say_suppressed(struct hv_http *h)
{
	if (!h->suppressed)
		return;
	fprintf(stderr,
		"Warning: metrics exporter: %llu message(s) suppressed (rate limit: %d, then one "
		"per %d s)\n",
		h->suppressed, HV_HTTP_LOG_BURST, HV_HTTP_LOG_EVERY_S);
	h->suppressed = 0;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct hv_http *h = cls;
	char msg[512];

	if (!strncmp(fmt, MHD_REFUSAL, sizeof(MHD_REFUSAL) - 1))
		hv_metric_add(h->m, HV_METRIC_HTTP_REFUSED, "", 1);
	pthread_mutex_lock(&h->log_lock);
	if (!take_token(h)) {
		h->suppressed++;
		pthread_mutex_unlock(&h->log_lock);
		hv_metric_add(h->m, HV_METRIC_HTTP_LOG_SUPPRESSED, "", 1);
		return;
	}
	say_suppressed(h);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	for (char *c = msg; *c; c++) /* one line, whatever a client sent */
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = *c == '\n' && !c[1] ? '\0' : '?';
	fprintf(stderr, "Warning: metrics exporter: %s\n", msg);
	pthread_mutex_unlock(&h->log_lock);
}

void hv_http_set_families(struct hv_http *h, const char *text)
{
	char *copy, *old;

	if (!h || !(copy = strdup(text)))
		return;
	old = atomic_exchange(&h->families, copy);
	free(old); /* only ever NULL: set once, before the loop runs */
}

void hv_http_loop_alive(struct hv_http *h)
{
	if (!h)
		return;
	atomic_store(&h->loop_ns, hv_now_ns(CLOCK_MONOTONIC));
	/* What the bucket dropped is said as soon as it may, not at the next
	 * message. Never waits: the HTTP thread may be writing to stderr. */
	if (pthread_mutex_trylock(&h->log_lock))
		return;
	if (h->suppressed && take_token(h))
		say_suppressed(h);
	pthread_mutex_unlock(&h->log_lock);
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, char *body,
			     const char *type, const char *allow)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (!body)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	ret = MHD_queue_response(conn, code, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* The exporter's own gauges, read when scraped. */
static void update_gauges(struct hv_http *h)
{
	const union MHD_DaemonInfo *info;
	struct tcp_info ti = {0};
	socklen_t len = sizeof(ti);

	info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	if (info)
		hv_metric_set(h->m, HV_METRIC_HTTP_CONNECTIONS, "", info->num_connections);
	/* On a listening socket, tcpi_unacked is the accept queue's length. */
	info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_LISTEN_FD);
	if (info && !getsockopt(info->listen_fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		hv_metric_set(h->m, HV_METRIC_HTTP_ACCEPT_QUEUE, "", ti.tcpi_unacked);
}

static char *healthz(struct hv_http *h, unsigned *code)
{
	uint64_t last = atomic_load(&h->loop_ns);
	uint64_t now = hv_now_ns(CLOCK_MONOTONIC);
	char *body = NULL, *fams;

	*code = MHD_HTTP_SERVICE_UNAVAILABLE;
	if (!last)
		return strdup("starting: the main loop has not run yet\n");
	if (now - last > HV_HEALTHZ_STALE_S * NS_PER_S) {
		if (asprintf(&body, "stalled: the main loop last ran %.1f s ago\n",
			     (double)(now - last) / NS_PER_S) < 0)
			return NULL;
		return body;
	}
	*code = MHD_HTTP_OK;
	fams = atomic_load(&h->families);
	if (asprintf(&body, "ok\n%s", fams ? fams : "") < 0)
		return NULL;
	return body;
}

static enum MHD_Result serve(void *cls, struct MHD_Connection *conn, const char *url,
			     const char *method, const char *version, const char *upload_data,
			     size_t *upload_size, void **state)
{
	static const char PROM[] = "text/plain; version=0.0.4; charset=utf-8";
	static const char TEXT[] = "text/plain; charset=utf-8";
	struct hv_http *h = cls;
	unsigned code;
	char *body;

	(void)version;
	(void)upload_data;
	/* Another method is answered at once, its body unread (libmicrohttpd
	 * then closes the connection). A GET or HEAD is answered at the call
	 * after the headers, once the request is read: answered earlier, it
	 * would lose its keep-alive connection too. A body is dropped. */
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, strdup("GET or HEAD only\n"), TEXT,
			     "GET, HEAD");
	if (!*state) {
		*state = h;
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0;
		return MHD_YES;
	}
	if (!strcmp(url, "/metrics")) {
		update_gauges(h);
		return reply(conn, MHD_HTTP_OK, hv_metrics_render(h->m), PROM, NULL);
	}
	if (!strcmp(url, "/healthz")) {
		body = healthz(h, &code);
		return reply(conn, code, body, TEXT, NULL);
	}
	return reply(conn, strcmp(url, "/") ? MHD_HTTP_NOT_FOUND : MHD_HTTP_OK,
		     strdup("hvguard exporter: metrics at /metrics\n"), PROM, NULL);
}

/* Every series of the exporter exists from the start, at zero. */
static void register_series(struct hv_metrics *m)
{
	hv_metric_add(m, HV_METRIC_HTTP_REFUSED, "", 0);
	hv_metric_add(m, HV_METRIC_HTTP_LOG_SUPPRESSED, "", 0);
	hv_metric_set(m, HV_METRIC_HTTP_CONNECTIONS, "", 0);
	hv_metric_set(m, HV_METRIC_HTTP_ACCEPT_QUEUE, "", 0);
}

struct hv_http *hv_http_start(struct hv_metrics *m, const struct hv_listen_addr *a,
			      const char *name, char *err, size_t errlen)
{
	struct hv_http *h = calloc(1, sizeof(*h));
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
	const struct sockaddr_in *sa = (const struct sockaddr_in *)&a->ss;

	if (!h) {
		snprintf(err, errlen, "cannot serve metrics: out of memory");
		return NULL;
	}
	h->m = m;
	h->tokens = HV_HTTP_LOG_BURST;
	h->refilled_ns = hv_now_ns(CLOCK_MONOTONIC);
	pthread_mutex_init(&h->log_lock, NULL);
	register_series(m);
	if (a->family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* The logger first: libmicrohttpd's own would print what comes before.
	 * The port argument is ignored with MHD_OPTION_SOCK_ADDR (sin_port and
	 * sin6_port sit at the same offset). */
	h->d = MHD_start_daemon(
	    flags, ntohs(sa->sin_port), NULL, NULL, serve, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
	    h, MHD_OPTION_SOCK_ADDR, &a->ss, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned)HV_HTTP_MAX_CONNECTIONS, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	    (unsigned)HV_HTTP_MAX_PER_IP, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned)HV_HTTP_TIMEOUT_S, MHD_OPTION_END);
	if (!h->d) {
		snprintf(err, errlen,
			 "cannot serve metrics on %s (in use? an address of this host?)", name);
		hv_http_stop(h);
		return NULL;
	}
	return h;
}

void hv_http_stop(struct hv_http *h)
{
	if (!h)
		return;
	if (h->d)
		MHD_stop_daemon(h->d);
	if (h->suppressed)
		fprintf(stderr, "Warning: metrics exporter: %llu message(s) suppressed\n",
			h->suppressed);
	pthread_mutex_destroy(&h->log_lock);
	free(atomic_load(&h->families));
	free(h);
}
