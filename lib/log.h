/*
 * log: one line per event on stderr.
 *
 * Lines read "2026-11-28T02:30:00.123Z info parley-api[123] db: message k=v".
 * The level test happens before any formatting, so DEBUG lines cost one
 * comparison when disabled. The program name and level are set once at startup
 * by pl_log_init() and are read-only afterwards, so logging is thread-safe.
 * Never log tokens, passwords, push tokens or message bodies.
 */
#ifndef PL_LOG_H
#define PL_LOG_H

enum pl_log_level {
	PL_LOG_ERR = 0,
	PL_LOG_WARN = 1,
	PL_LOG_INFO = 2,
	PL_LOG_DEBUG = 3,
};

/* The current level; written only by pl_log_init(). */
extern enum pl_log_level pl__log_level;

/*
 * Sets the program name (borrowed: it must outlive the program, a string
 * literal or argv[0]) and the level. Call before any thread starts.
 */
void pl_log_init(const char *program, enum pl_log_level level);

/*
 * Parses "err", "warn", "info" or "debug". Returns 0 and sets *out, or -1 for
 * any other string.
 */
int pl_log_level_parse(const char *name, enum pl_log_level *out);

/* Formats and writes one line; use the pl_log() macros instead. */
void pl__log_write(enum pl_log_level level, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define pl_log(level, ...)                                      \
	do {                                                    \
		if ((level) <= pl__log_level)                   \
			pl__log_write((level), 0, __VA_ARGS__); \
	} while (0)

/* Like pl_log(), and appends ": " and strerror(errno). */
#define pl_log_errno(level, ...)                                    \
	do {                                                        \
		int pl__saved_errno = errno;                        \
		if ((level) <= pl__log_level)                       \
			pl__log_write((level), pl__saved_errno, __VA_ARGS__); \
	} while (0)

#endif
