/*
 * fuzz_config: parley.conf as the programs read it (pl_config_parse(), the
 * function pl_config_load() runs on the file's text). Input: the file.
 */
#include <string.h>

#include "config.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pl_config cfg;
	char err[512];
	char *text = malloc(size + 1);
	int rc;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	pl_config_init(&cfg);
	rc = pl_config_parse(&cfg, text, "fuzz.conf", err, sizeof(err));
	/* A refusal always says why; an accepted file leaves every string set. */
	if (rc)
		FUZZ_ASSERT(err[0] != '\0');
	else
		FUZZ_ASSERT(cfg.log_level && cfg.db_conninfo && cfg.redis_host &&
			    cfg.api_listen && cfg.apns_url && cfg.fcm_url);
	pl_config_release(&cfg);
	free(text);
	return 0;
}
