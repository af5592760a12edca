#include "api.h"
#include "banned.h"

/*
 * The one route table of parley-api (doc/protocol.md "REST"). Flags say what
 * request.c checks before the handler runs: API_AUTH a live session's
 * bearer token (and the per-user REST rate limit), API_JSON_BODY a JSON
 * object body; API_REPLICA lets the route's reads go to a standby that has
 * caught up; API_UPLOAD a raw body of up to [api] max_attachment_bytes that
 * the handler streams (fcgi/api.h).
 */
#define V1 "/api/v1"
#define AUTH API_AUTH
#define BODY API_JSON_BODY
#define READ API_REPLICA
#define UPLOAD API_UPLOAD

const struct api_route api_routes[] = {
	{ "GET", "/health", api_health_get, 0 },
	{ "GET", V1 "/health", api_health_get, 0 },

	{ "POST", V1 "/users", api_auth_signup, BODY },
	{ "POST", V1 "/sessions", api_auth_login, BODY },
	{ "POST", V1 "/sessions/refresh", api_auth_refresh, AUTH },
	{ "DELETE", V1 "/sessions/current", api_auth_logout, AUTH },

	{ "GET", V1 "/me", api_users_me, AUTH },
	{ "PATCH", V1 "/me", api_users_update_me, AUTH | BODY },
	{ "GET", V1 "/users", api_users_search, AUTH },
	{ "GET", V1 "/users/{id}", api_users_get, AUTH },

	{ "GET", V1 "/friends", api_friends_list, AUTH },
	{ "POST", V1 "/friends", api_friends_add, AUTH | BODY },
	{ "DELETE", V1 "/friends/{id}", api_friends_remove, AUTH },

	{ "POST", V1 "/conversations", api_conversations_create, AUTH | BODY },
	{ "GET", V1 "/conversations", api_conversations_list, AUTH },
	{ "GET", V1 "/conversations/{id}", api_conversations_get, AUTH },
	{ "PATCH", V1 "/conversations/{id}", api_conversations_update, AUTH | BODY },
	{ "POST", V1 "/conversations/{id}/members", api_conversations_add_member,
	  AUTH | BODY },
	{ "DELETE", V1 "/conversations/{id}/members/{id}",
	  api_conversations_remove_member, AUTH },
	{ "POST", V1 "/conversations/{id}/messages", api_messages_send, AUTH | BODY },
	{ "GET", V1 "/conversations/{id}/messages", api_messages_list,
	  AUTH | READ },
	{ "PATCH", V1 "/conversations/{id}/messages/{id}", api_messages_edit,
	  AUTH | BODY },
	{ "DELETE", V1 "/conversations/{id}/messages/{id}", api_messages_delete,
	  AUTH },
	{ "PUT", V1 "/conversations/{id}/messages/{id}/reactions/{text}",
	  api_reactions_put, AUTH },
	{ "DELETE", V1 "/conversations/{id}/messages/{id}/reactions/{text}",
	  api_reactions_delete, AUTH },
	{ "POST", V1 "/conversations/{id}/read", api_conversations_read, AUTH | BODY },

	{ "GET", V1 "/search", api_messages_search, AUTH | READ },
	{ "GET", V1 "/sync", api_sync_get, AUTH | READ },

	{ "POST", V1 "/devices", api_devices_register, AUTH | BODY },
	{ "GET", V1 "/devices", api_devices_list, AUTH },
	{ "DELETE", V1 "/devices/{id}", api_devices_remove, AUTH },

	{ "POST", V1 "/attachments", api_attachments_upload, AUTH | UPLOAD },
	{ "GET", V1 "/attachments/{id}", api_attachments_get, AUTH | READ },
	{ "GET", V1 "/attachments/{id}/thumbnail", api_attachments_thumbnail,
	  AUTH | READ },

	{ "POST", V1 "/blocks", api_blocks_add, AUTH | BODY },
	{ "GET", V1 "/blocks", api_blocks_list, AUTH },
	{ "DELETE", V1 "/blocks/{id}", api_blocks_remove, AUTH },

	{ "GET", V1 "/presence", api_presence_get, AUTH },
	/* Discovery comes before a client holds a connection: no token needed. */
	{ "GET", V1 "/discover", api_discover_get, 0 },
};

const size_t api_routes_count = sizeof(api_routes) / sizeof(api_routes[0]);
