#include "program.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "banned.h"

volatile sig_atomic_t pl_stop_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	pl_stop_requested = 1;
}

static void print_usage(FILE *out, const char *program, const char *usage)
{
	fprintf(out, "usage: %s [-c FILE] [--check-config] [--help]%s%s\n",
		program, usage ? " " : "", usage ? usage : "");
	fprintf(out, "  -c FILE          read FILE (default: %s)\n",
		pl_config_default_path());
	fprintf(out, "  --check-config   validate the configuration and exit\n\n");
	pl_config_print_help(out);
}

int pl_program_start(int argc, char **argv, const char *program,
		     const char *usage, struct pl_config *cfg, int *next)
{
	const char *path = NULL;
	int check_only = 0;
	char err[1024];
	struct sigaction sa;
	int i;

	pl_config_init(cfg);
	pl_log_init(program, PL_LOG_INFO);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			path = argv[++i];
		} else if (strcmp(argv[i], "--check-config") == 0) {
			check_only = 1;
		} else if (strcmp(argv[i], "--help") == 0 ||
			   strcmp(argv[i], "-h") == 0) {
			print_usage(stdout, program, usage);
			return 0;
		} else if (strcmp(argv[i], "-c") == 0 ||
			   (argv[i][0] == '-' && !usage)) {
			fprintf(stderr, "%s: bad option '%s'\n", program, argv[i]);
			print_usage(stderr, program, usage);
			return 2;
		} else {
			break;
		}
	}
	*next = i;
	if (!path) {
		FILE *f;

		path = pl_config_default_path();
		/* Only an explicit -c file must exist; defaults work alone. */
		f = fopen(path, "r");
		if (f)
			fclose(f);
		else if (errno == ENOENT)
			path = NULL;
	}
	if (pl_config_load(cfg, path, err, sizeof(err))) {
		fprintf(stderr, "%s: configuration error: %s\n", program, err);
		return 2;
	}
	if (check_only) {
		printf("configuration OK\n");
		return 0;
	}
	pl_log_init(program, cfg->log_level_value);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	return -1;
}

int pl_program_sleep_ms(long ms)
{
	while (ms > 0 && !pl_stop_requested) {
		long step = ms < 100 ? ms : 100;
		struct timespec ts = { 0, step * 1000000L };

		nanosleep(&ts, NULL);
		ms -= step;
	}
	return pl_stop_requested ? 1 : 0;
}
