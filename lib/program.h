/*
 * program: what every Parley program does before its real work.
 *
 * Parses the common options (-c FILE, --check-config, --help), loads the
 * configuration, starts logging and installs the SIGTERM/SIGINT handlers that
 * set the stop flag. The stop flag is the one piece of global mutable state:
 * signal handlers write it and each program's loop reads it.
 */
#ifndef PL_PROGRAM_H
#define PL_PROGRAM_H

#include <signal.h>

#include "config.h"

/* Set to 1 by SIGTERM or SIGINT. */
extern volatile sig_atomic_t pl_stop_requested;

/*
 * Handles argv for program (borrowed name) and fills cfg (initialized here;
 * the caller releases it). usage names the program's own extra arguments for
 * --help (may be NULL). On return *next is the index of the first argument the
 * common options did not consume.
 * Returns -1 when the program should go on, or an exit status when it should
 * exit now (0 after --help or --check-config, 2 on a usage or configuration
 * error, which has been printed).
 */
int pl_program_start(int argc, char **argv, const char *program,
		     const char *usage, struct pl_config *cfg, int *next);

/*
 * Sleeps up to ms milliseconds, returning early (1) once a stop is requested;
 * returns 0 otherwise.
 */
int pl_program_sleep_ms(long ms);

#endif
