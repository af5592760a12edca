#include "registry.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "banned.h"

struct pl_registry {
	const struct pl_registry_ops *ops;
	void *state;
};

/* Every backend [discovery] backend may name. */
static const struct pl_registry_ops *const backends[] = {
	&pl_registry_redis_ops,
	&pl_registry_zk_ops,
};

static const struct pl_registry_ops *find_backend(const char *name)
{
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (strcmp(backends[i]->name, name) == 0)
			return backends[i];
	return NULL;
}

int pl_registry_backend_known(const char *name)
{
	return name && find_backend(name) != NULL;
}

int pl_registry_is_shared(const struct pl_config *cfg)
{
	const struct pl_registry_ops *ops = find_backend(cfg->discovery_backend);

	return ops && ops->thread_safe;
}

int pl_registry_two_choices(const struct pl_config *cfg)
{
	const struct pl_registry_ops *ops = find_backend(cfg->discovery_backend);

	return ops && ops->two_choices;
}

long long pl_registry_unreachable_ms(struct pl_registry *reg)
{
	return reg->ops->unreachable_ms ? reg->ops->unreachable_ms(reg->state) : 0;
}

struct pl_registry *pl_registry_open(const struct pl_config *cfg,
				     struct pl_redis *redis)
{
	const struct pl_registry_ops *ops = find_backend(cfg->discovery_backend);
	struct pl_registry *reg;

	if (!ops) {
		pl_log(PL_LOG_ERR, "registry: unknown backend '%s'",
		       cfg->discovery_backend);
		return NULL;
	}
	reg = calloc(1, sizeof(*reg));
	if (!reg)
		return NULL;
	reg->ops = ops;
	reg->state = ops->open(cfg, redis);
	if (!reg->state) {
		free(reg);
		return NULL;
	}
	return reg;
}

void pl_registry_free(struct pl_registry *reg)
{
	if (!reg)
		return;
	reg->ops->close(reg->state);
	free(reg);
}

enum pl_err pl_registry_register(struct pl_registry *reg,
				 const struct pl_registry_entry *e)
{
	return reg->ops->add(reg->state, e);
}

enum pl_err pl_registry_refresh(struct pl_registry *reg,
				const struct pl_registry_entry *e)
{
	return reg->ops->refresh(reg->state, e);
}

enum pl_err pl_registry_deregister(struct pl_registry *reg, const char *id)
{
	return reg->ops->remove(reg->state, id);
}

enum pl_err pl_registry_list(struct pl_registry *reg, size_t max,
			     struct pl_registry_entry **out, size_t *n)
{
	enum pl_err rc;

	*out = NULL;
	*n = 0;
	rc = reg->ops->list(reg->state, max, out, n);
	if (rc) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return rc;
}
