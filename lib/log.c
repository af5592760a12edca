#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "banned.h"

enum pl_log_level pl__log_level = PL_LOG_INFO;
static const char *program_name = "parley";

static const char *const level_names[] = { "err", "warn", "info", "debug" };

void pl_log_init(const char *program, enum pl_log_level level)
{
	const char *slash = strrchr(program, '/');

	program_name = slash ? slash + 1 : program;
	pl__log_level = level;
}

int pl_log_level_parse(const char *name, enum pl_log_level *out)
{
	for (int i = 0; i <= PL_LOG_DEBUG; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum pl_log_level)i;
			return 0;
		}
	}
	return -1;
}

void pl__log_write(enum pl_log_level level, int errnum, const char *fmt, ...)
{
	char line[2048];
	char stamp[32];
	struct timeval tv;
	struct tm tm;
	va_list ap;
	int n;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof(line), "%s.%03ldZ %s %s[%ld] ", stamp,
		     (long)(tv.tv_usec / 1000), level_names[level], program_name,
		     (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (errnum) {
		char buf[128];
		size_t len = strlen(line);

		snprintf(line + len, sizeof(line) - len, ": %s",
			 strerror_r(errnum, buf, sizeof(buf)));
	}
	/* One fprintf per line keeps concurrent threads' lines whole. */
	fprintf(stderr, "%s\n", line);
}
