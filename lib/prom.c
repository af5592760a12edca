#include "prom.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "banned.h"

#define FIRST_CAP 4096

void pl_prom_init(struct pl_prom *p, size_t max_bytes)
{
	p->buf = NULL;
	p->len = 0;
	p->cap = 0;
	p->max_bytes = max_bytes ? max_bytes : PL_PROM_MAX_BYTES;
	p->failed = 0;
}

/* Makes room for need more bytes and the NUL; 0, or -1 (p failed). */
static int reserve(struct pl_prom *p, size_t need)
{
	size_t cap = p->cap ? p->cap : FIRST_CAP;
	char *bigger;

	if (p->len + need + 1 > p->max_bytes) {
		p->failed = 1;
		return -1;
	}
	while (cap < p->len + need + 1)
		cap *= 2;
	if (cap > p->max_bytes)
		cap = p->max_bytes;
	if (cap == p->cap)
		return 0;
	bigger = realloc(p->buf, cap);
	if (!bigger) {
		p->failed = 1;
		return -1;
	}
	p->buf = bigger;
	p->cap = cap;
	return 0;
}

static void put(struct pl_prom *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void put(struct pl_prom *p, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (p->failed)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		p->failed = 1;
		return;
	}
	if (reserve(p, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(p->buf + p->len, p->cap - p->len, fmt, ap);
	va_end(ap);
	p->len += (size_t)n;
}

static void family(struct pl_prom *p, const char *name, const char *help,
		   const char *type)
{
	put(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Appends "<name><suffix> <sum as seconds>\n" from the fixed-point sum. */
static void put_sum(struct pl_prom *p, const char *name,
		    unsigned long long sum, int sum_digits)
{
	unsigned long long scale = 1;

	for (int i = 0; i < sum_digits; i++)
		scale *= 10;
	if (sum_digits > 0)
		put(p, "%s_sum %llu.%0*llu\n", name, sum / scale, sum_digits,
		    sum % scale);
	else
		put(p, "%s_sum %llu\n", name, sum);
}

void pl_prom_counter(struct pl_prom *p, const char *name, const char *help,
		     unsigned long value)
{
	family(p, name, help, "counter");
	put(p, "%s %lu\n", name, value);
}

void pl_prom_gauge(struct pl_prom *p, const char *name, const char *help,
		   long long value)
{
	family(p, name, help, "gauge");
	put(p, "%s %lld\n", name, value);
}

void pl_prom_histogram(struct pl_prom *p, const char *name, const char *help,
		       const double *bounds, const unsigned long *counts,
		       size_t nbuckets, unsigned long count,
		       unsigned long long sum, int sum_digits)
{
	unsigned long cumulative = 0;

	family(p, name, help, "histogram");
	for (size_t i = 0; i < nbuckets; i++) {
		cumulative += counts[i];
		put(p, "%s_bucket{le=\"%g\"} %lu\n", name, bounds[i], cumulative);
	}
	put(p, "%s_bucket{le=\"+Inf\"} %lu\n", name, count);
	put_sum(p, name, sum, sum_digits);
	put(p, "%s_count %lu\n", name, count);
}

void pl_prom_family(struct pl_prom *p, const char *name, const char *help,
		    const char *type)
{
	family(p, name, help, type);
}

void pl_prom_series(struct pl_prom *p, const char *name, const char *labels,
		    unsigned long value)
{
	put(p, "%s{%s} %lu\n", name, labels, value);
}

void pl_prom_histogram_series(struct pl_prom *p, const char *name,
			      const char *labels, const double *bounds,
			      const unsigned long *counts, size_t nbuckets,
			      unsigned long count, unsigned long long sum,
			      int sum_digits)
{
	unsigned long long scale = 1;
	unsigned long cumulative = 0;

	for (size_t i = 0; i < nbuckets; i++) {
		cumulative += counts[i];
		put(p, "%s_bucket{%s,le=\"%g\"} %lu\n", name, labels, bounds[i],
		    cumulative);
	}
	put(p, "%s_bucket{%s,le=\"+Inf\"} %lu\n", name, labels, count);
	for (int i = 0; i < sum_digits; i++)
		scale *= 10;
	put(p, "%s_sum{%s} %llu.%0*llu\n", name, labels, sum / scale,
	    sum_digits, sum % scale);
	put(p, "%s_count{%s} %lu\n", name, labels, count);
}

void pl_prom_summary(struct pl_prom *p, const char *name, const char *help,
		     unsigned long count, unsigned long long sum,
		     int sum_digits)
{
	family(p, name, help, "summary");
	put_sum(p, name, sum, sum_digits);
	put(p, "%s_count %lu\n", name, count);
}

char *pl_prom_finish(struct pl_prom *p)
{
	char *text;

	if (!p->failed && !p->buf)
		reserve(p, 0);
	if (p->failed) {
		pl_prom_release(p);
		return NULL;
	}
	p->buf[p->len] = '\0';
	text = p->buf;
	p->buf = NULL;
	p->len = p->cap = 0;
	return text;
}

void pl_prom_release(struct pl_prom *p)
{
	free(p->buf);
	p->buf = NULL;
	p->len = p->cap = 0;
}
