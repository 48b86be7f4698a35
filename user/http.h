/* SPDX-License-Identifier: GPL-2.0 */
/* The exporter's HTTP server (libmicrohttpd): /metrics, /healthz, /. */
#ifndef HVGUARD_USER_HTTP_H
#define HVGUARD_USER_HTTP_H

#include <stddef.h>

struct hv_http;
struct hv_metrics;
struct hv_listen_addr;

/* The limits a client of the exporter meets (README "Metrics"; the
 * reasons are in http.c). */
#define HV_HTTP_MAX_CONNECTIONS 64
#define HV_HTTP_MAX_PER_IP	8
#define HV_HTTP_TIMEOUT_S	5
#define HV_HTTP_LOG_BURST	5
#define HV_HTTP_LOG_EVERY_S	10
/* /healthz answers 503 once the main loop has not turned for this long. */
#define HV_HEALTHZ_STALE_S 5

/* Serves on a (shown as `name` in messages); NULL with err on failure. */
struct hv_http *hv_http_start(struct hv_metrics *m, const struct hv_listen_addr *a,
			      const char *name, char *err, size_t errlen);
/* Called by the main loop at every turn: what /healthz reports. */
void hv_http_loop_alive(struct hv_http *h);
/* What /healthz says after "ok": each family's state and hook tier, one
 * line each (set once the families are loaded; copied). */
void hv_http_set_families(struct hv_http *h, const char *text);
void hv_http_stop(struct hv_http *h);

#endif
