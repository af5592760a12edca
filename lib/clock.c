#include "clock.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include "banned.h"

static long long read_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long pl_clock_now_ms(void)
{
	return read_ms(CLOCK_REALTIME);
}

long long pl_clock_mono_ms(void)
{
	return read_ms(CLOCK_MONOTONIC);
}

long long pl_clock_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

char *pl_clock_rfc3339_ms(long long ms, char out[PL_CLOCK_RFC3339_BYTES])
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&secs, &tm);
	snprintf(out, PL_CLOCK_RFC3339_BYTES, "%04d-%02d-%02dT%02d:%02d:%02d.%03lldZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, ms % 1000);
	return out;
}

long long pl_clock_parse_rfc3339_us(const char *text)
{
	struct tm tm;
	char frac[8] = "";
	long long us = 0;

	if (!text)
		return 0;
	memset(&tm, 0, sizeof(tm));
	if (sscanf(text, "%d-%d-%dT%d:%d:%d.%6[0-9]Z", &tm.tm_year, &tm.tm_mon,
		   &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, frac) < 6)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	for (int i = 0; i < 6; i++)
		us = us * 10 + (frac[i] >= '0' && frac[i] <= '9' ? frac[i] - '0' : 0);
	return (long long)timegm(&tm) * 1000000 + us;
}
