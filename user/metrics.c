// SPDX-License-Identifier: GPL-2.0
/*
 * A small registry of series, rendered in Prometheus' text format; the
 * exporter (http.c) reads it from its own thread, hence the mutex.
 */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hvguard.h"
#include "metrics.h"
#include "rules.h"

#define MAX_SERIES 512

struct series {
	char name[64];
	char suffix[8]; /* histograms: _bucket, _sum, _count */
	char labels[160];
	const char *help;
	enum hv_metric_type type;
	double value;
};

struct hv_metrics {
	pthread_mutex_t lock;
	struct series series[MAX_SERIES];
	int count;
};

static struct series *find_sub(struct hv_metrics *m, const char *name, const char *suffix,
			       enum hv_metric_type type, const char *help, const char *labels)
{
	struct series *s;

	for (int i = 0; i < m->count; i++) {
		s = &m->series[i];
		if (!strcmp(s->name, name) && !strcmp(s->suffix, suffix) &&
		    !strcmp(s->labels, labels))
			return s;
	}
	if (m->count == MAX_SERIES)
		return NULL;
	s = &m->series[m->count++];
	snprintf(s->name, sizeof(s->name), "%s", name);
	snprintf(s->suffix, sizeof(s->suffix), "%s", suffix);
	snprintf(s->labels, sizeof(s->labels), "%s", labels);
	s->help = help;
	s->type = type;
	return s;
}

static struct series *find(struct hv_metrics *m, const char *name, enum hv_metric_type type,
			   const char *help, const char *labels)
{
	return find_sub(m, name, "", type, help, labels);
}

static void observe_one(struct hv_metrics *m, const char *name, const char *suffix,
			const char *help, const char *labels, double add)
{
	struct series *s = find_sub(m, name, suffix, HV_HISTOGRAM, help, labels);

	if (s)
		s->value += add;
}

void hv_metrics_observe(struct hv_metrics *m, const char *name, const char *help, const double *le,
			int n, double value)
{
	bool seen = !isnan(value);
	char labels[48];

	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	for (int i = 0; i <= n; i++) {
		if (i < n)
			snprintf(labels, sizeof(labels), "le=\"%g\"", le[i]);
		else
			snprintf(labels, sizeof(labels), "le=\"+Inf\"");
		observe_one(m, name, "_bucket", help, labels, seen && (i == n || value <= le[i]));
	}
	observe_one(m, name, "_sum", help, "", seen ? value : 0);
	observe_one(m, name, "_count", help, "", seen);
	pthread_mutex_unlock(&m->lock);
}

static void update(struct hv_metrics *m, const char *name, enum hv_metric_type type,
		   const char *help, const char *labels, double value, bool add)
{
	struct series *s;

	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	s = find(m, name, type, help, labels);
	if (s)
		s->value = add ? s->value + value : value;
	pthread_mutex_unlock(&m->lock);
}

void hv_metrics_add(struct hv_metrics *m, const char *name, enum hv_metric_type type,
		    const char *help, const char *labels, double delta)
{
	update(m, name, type, help, labels, delta, true);
}

void hv_metrics_set(struct hv_metrics *m, const char *name, enum hv_metric_type type,
		    const char *help, const char *labels, double value)
{
	update(m, name, type, help, labels, value, false);
}

double hv_metrics_get(struct hv_metrics *m, const char *name, const char *labels)
{
	double v = 0;

	if (!m)
		return 0;
	pthread_mutex_lock(&m->lock);
	for (int i = 0; i < m->count; i++)
		if (!strcmp(m->series[i].name, name) && !strcmp(m->series[i].labels, labels))
			v = m->series[i].value;
	pthread_mutex_unlock(&m->lock);
	return v;
}

void hv_metric_add(struct hv_metrics *m, enum hv_metric_id id, const char *labels, double delta)
{
	const struct hv_metric_def *d = &hv_metric_defs[id];

	hv_metrics_add(m, d->name, d->type, d->help, labels, delta);
}

void hv_metric_set(struct hv_metrics *m, enum hv_metric_id id, const char *labels, double value)
{
	const struct hv_metric_def *d = &hv_metric_defs[id];

	hv_metrics_set(m, d->name, d->type, d->help, labels, value);
}

void hv_metric_observe(struct hv_metrics *m, enum hv_metric_id id, double value)
{
	const struct hv_metric_def *d = &hv_metric_defs[id];

	hv_metrics_observe(m, d->name, d->help, d->le, d->n_le, value);
}

static void violations(struct hv_metrics *m, const char *rule, enum hv_severity severity,
		       double add)
{
	char labels[128];

	snprintf(labels, sizeof(labels), "rule=\"%s\",severity=\"%s\"", rule,
		 hv_severity_name(severity));
	hv_metric_add(m, HV_METRIC_VIOLATIONS, labels, add);
}

void hv_metrics_alert(struct hv_metrics *m, const char *rule, enum hv_severity severity)
{
	violations(m, rule, severity, 1);
}

/* Every rule's series at the severity it has now, from 0: a dashboard finds
 * them before the first violation, and again after a reload that changed a
 * severity (the old series keeps its count). */
void hv_metrics_rules(struct hv_metrics *m, const struct hv_rules *rules)
{
	for (int i = 0; i < HV_RULE_COUNT; i++)
		violations(m, hv_rule_table[i].id, rules->rule[i].severity, 0);
}

void hv_metrics_correction(struct hv_metrics *m, const char *rule, const char *result)
{
	char labels[128];

	snprintf(labels, sizeof(labels), "rule=\"%s\",result=\"%s\"", rule, result);
	hv_metric_add(m, HV_METRIC_CORRECTIONS, labels, 1);
}

struct hv_metrics *hv_metrics_new(void)
{
	struct hv_metrics *m = calloc(1, sizeof(*m));
	char labels[160];

	if (!m)
		return NULL;
	pthread_mutex_init(&m->lock, NULL);
	snprintf(labels, sizeof(labels), "version=\"%s\"", HVGUARD_VERSION);
	hv_metric_set(m, HV_METRIC_BUILD_INFO, labels, 1);
	/* Every series a dashboard expects exists from the start, at zero. */
	for (int i = 0; i < HV_RULE_COUNT; i++) {
		if (!(hv_rule_table[i].actions & (1u << HV_ACT_CORRECT)))
			continue;
		for (int r = 0; r < 3; r++) {
			static const char *const results[] = {"applied", "refused", "failed"};

			snprintf(labels, sizeof(labels), "rule=\"%s\",result=\"%s\"",
				 hv_rule_table[i].id, results[r]);
			hv_metric_add(m, HV_METRIC_CORRECTIONS, labels, 0);
		}
	}
	hv_metric_set(m, HV_METRIC_EVENTS_LOST, "", 0);
	hv_metric_set(m, HV_METRIC_VMS, "", 0);
	return m;
}

static int render_one(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int render_one(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -1;
		if ((size_t)n < *cap - *len)
			break;
		char *grown = realloc(*buf, *cap * 2);
		if (!grown)
			return -1;
		*buf = grown;
		*cap *= 2;
	}
	*len += n;
	return 0;
}

static bool first_of_name(struct hv_metrics *m, int i)
{
	for (int j = 0; j < i; j++)
		if (!strcmp(m->series[j].name, m->series[i].name))
			return false;
	return true;
}

char *hv_metrics_render(struct hv_metrics *m)
{
	size_t len = 0, cap = 8192;
	char *buf = malloc(cap);

	if (!buf)
		return NULL;
	buf[0] = '\0';
	pthread_mutex_lock(&m->lock);
	/* Series of one name stay together under one HELP/TYPE header. */
	for (int i = 0; i < m->count; i++) {
		struct series *s = &m->series[i];

		if (!first_of_name(m, i))
			continue;
		render_one(&buf, &len, &cap, "# HELP %s %s\n# TYPE %s %s\n", s->name,
			   s->help ? s->help : "", s->name,
			   s->type == HV_COUNTER ? "counter"
			   : s->type == HV_GAUGE ? "gauge"
						 : "histogram");
		for (int j = i; j < m->count; j++) {
			struct series *t = &m->series[j];

			if (strcmp(t->name, s->name))
				continue;
			render_one(&buf, &len, &cap, "%s%s%s%s%s %.17g\n", t->name, t->suffix,
				   t->labels[0] ? "{" : "", t->labels, t->labels[0] ? "}" : "",
				   t->value);
		}
	}
	pthread_mutex_unlock(&m->lock);
	return buf;
}

void hv_metrics_free(struct hv_metrics *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->lock);
	free(m);
}
