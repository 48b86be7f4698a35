/* SPDX-License-Identifier: GPL-2.0 */
/* The Prometheus registry (served by http.c). */
#ifndef HVGUARD_USER_METRICS_H
#define HVGUARD_USER_METRICS_H

#include <stddef.h>

#include "hvguard.h"
#include "metric_defs.h"

struct hv_metrics;

struct hv_metrics *hv_metrics_new(void);
void hv_metrics_free(struct hv_metrics *m);

/* One of hvguard's series (metric_defs.h), by id. labels: the inside of
 * {...}, e.g. rule="kvmclock-jump", or "" for none. A series exists from
 * its first add or set, at the value given (0 makes it exist at zero). */
void hv_metric_add(struct hv_metrics *m, enum hv_metric_id id, const char *labels, double delta);
void hv_metric_set(struct hv_metrics *m, enum hv_metric_id id, const char *labels, double value);
/* A histogram's observation (its buckets are in its definition); with no
 * value (NAN), only makes its series exist. */
void hv_metric_observe(struct hv_metrics *m, enum hv_metric_id id, double value);

/* The registry underneath, by name: what hv_metric_*() are built on, and
 * what the unit tests drive with series of their own. hvguard's code names
 * its series by id. */
void hv_metrics_add(struct hv_metrics *m, const char *name, enum hv_metric_type type,
		    const char *help, const char *labels, double delta);
void hv_metrics_set(struct hv_metrics *m, const char *name, enum hv_metric_type type,
		    const char *help, const char *labels, double value);
double hv_metrics_get(struct hv_metrics *m, const char *name, const char *labels);
/* The exposition text; caller frees. */
char *hv_metrics_render(struct hv_metrics *m);

/* A histogram: buckets le[0..n-1] (ascending) and +Inf, _sum and _count.
 * hv_metrics_observe() with no value (NAN) only makes its series exist. */
void hv_metrics_observe(struct hv_metrics *m, const char *name, const char *help, const double *le,
			int n, double value);

void hv_metrics_alert(struct hv_metrics *m, const char *rule, enum hv_severity severity);
struct hv_rules;
void hv_metrics_rules(struct hv_metrics *m, const struct hv_rules *rules);
void hv_metrics_correction(struct hv_metrics *m, const char *rule, const char *result);

#endif
