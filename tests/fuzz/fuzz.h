/*
 * fuzz: what the libFuzzer targets in tests/fuzz/ share.
 *
 * Each target feeds its input to the same parsing and validation functions
 * the daemons call, then checks what those functions promise. An invariant
 * that does not hold aborts, which libFuzzer reports like a crash.
 */
#ifndef PL_FUZZ_H
#define PL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "token.h"

/* The clock the targets verify tokens against, and the key that signs them
 * (the seed corpus' tokens are signed with it and expire in 2030). */
#define FUZZ_NOW 1800000000
#define FUZZ_KEY "parley-fuzz-key-0123456789abcdef"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Aborts with a message when an invariant fails. */
#define FUZZ_ASSERT(cond)                                               \
	do {                                                            \
		if (!(cond)) {                                          \
			fprintf(stderr, "%s:%d: invariant failed: %s\n",  \
				__FILE__, __LINE__, #cond);             \
			abort();                                        \
		}                                                       \
	} while (0)

/* Fills key with FUZZ_KEY. */
void fuzz_key(struct pl_token_key *key);

/* Quiets logging and drops PARLEY_* variables so runs are reproducible. */
void fuzz_setup(void);

/* Returns 1 if the NUL-terminated s is non-empty valid UTF-8, else 0. */
int fuzz_message_ok(const char *s);

#endif
