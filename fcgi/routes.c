#include "api.h"

/*
 * The one route table of parley-api (PROTOCOL.md "REST"). Flags say what
 * request.c checks before the handler runs.
 */
const struct api_route api_routes[] = {
	{ "GET", "/health", api_health_get, 0 },
	{ "GET", "/api/v1/health", api_health_get, 0 },
};

const size_t api_routes_count = sizeof(api_routes) / sizeof(api_routes[0]);
