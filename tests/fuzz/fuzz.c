/* fuzz: helpers shared by the targets (see fuzz.h). */
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "log.h"
#include "validate.h"

extern char **environ;

void fuzz_key(struct pl_token_key *key)
{
	memset(key, 0, sizeof(*key));
	key->len = sizeof(FUZZ_KEY) - 1;
	memcpy(key->secret, FUZZ_KEY, key->len);
}

void fuzz_setup(void)
{
	char name[256];

	pl_log_init("fuzz", PL_LOG_ERR);
	/* Unsetting shifts environ: start over after each removal. */
	for (size_t i = 0; environ && environ[i];) {
		const char *eq = strchr(environ[i], '=');
		size_t n = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);

		if (strncmp(environ[i], "PARLEY_", 7) == 0 && n < sizeof(name)) {
			memcpy(name, environ[i], n);
			name[n] = '\0';
			unsetenv(name);
			i = 0;
			continue;
		}
		i++;
	}
}

int fuzz_message_ok(const char *s)
{
	return s[0] != '\0' && pl_validate_utf8(s, strlen(s));
}
