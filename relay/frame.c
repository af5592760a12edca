/*
 * frame: parsing and validating client frames (see frame.h). Pure: no
 * socket, no clock, no allocation beyond jansson's.
 */
#include <stdio.h>
#include <string.h>

#include "frame.h"
#include "validate.h"
#include "banned.h"

static const struct {
	const char *name;
	enum relay_frame_type type;
} types[] = {
	{ "hello", RELAY_FRAME_HELLO },
	{ "send", RELAY_FRAME_SEND },
	{ "ack", RELAY_FRAME_ACK },
	{ "heartbeat", RELAY_FRAME_HEARTBEAT },
	{ "typing", RELAY_FRAME_TYPING },
	{ "read", RELAY_FRAME_READ },
};

int relay_frame_get_int(json_t *o, const char *name, long long *out)
{
	json_t *v = json_object_get(o, name);

	if (!json_is_integer(v))
		return -1;
	*out = json_integer_value(v);
	return 0;
}

static enum pl_err fail(char *why, size_t whylen, enum pl_err rc,
			const char *msg)
{
	snprintf(why, whylen, "%s", msg);
	return rc;
}

/* Names the valid types, so a client author sees the fix in the error. */
static enum pl_err unknown_type(const struct relay_frame *f, char *why,
				size_t whylen)
{
	size_t n = sizeof(types) / sizeof(types[0]), used;

	/* Quoted whole characters only: the error frame must stay UTF-8. */
	snprintf(why, whylen, "unknown frame type '%.*s'; the types are",
		 (int)pl_validate_utf8_prefix(f->type_name, 40), f->type_name);
	for (size_t i = 0; i < n; i++) {
		used = strlen(why);
		snprintf(why + used, whylen - used, "%s '%s'",
			 i == 0 ? "" : i + 1 == n ? " and" : ",", types[i].name);
	}
	return PL_BAD_REQUEST;
}

static enum pl_err parse_hello(struct relay_frame *f, char *why, size_t whylen)
{
	json_t *cursor = json_object_get(f->root, "cursor");

	f->token = json_string_value(json_object_get(f->root, "token"));
	f->cursor = -1;
	if (!cursor || json_is_null(cursor))
		return PL_OK;
	if (!json_is_integer(cursor) || json_integer_value(cursor) < 0)
		return fail(why, whylen, PL_BAD_REQUEST, "'cursor' must be a seq "
			    "(an integer, 0 or more)");
	f->cursor = json_integer_value(cursor);
	return PL_OK;
}

static enum pl_err parse_send(struct relay_frame *f, char *why, size_t whylen)
{
	json_t *body = json_object_get(f->root, "body");
	enum pl_err rc;

	f->client_msg_id = json_string_value(json_object_get(f->root,
							     "client_msg_id"));
	if (!f->client_msg_id)
		return fail(why, whylen, PL_BAD_REQUEST,
			    "'client_msg_id' must be a string");
	/* Every error answering a send names it, even a bad client_msg_id
	 * (doc/protocol.md "WebSocket"): the app finds it in its outbox. */
	f->ref = f->client_msg_id;
	rc = pl_validate_client_msg_id(f->client_msg_id, why, whylen);
	if (rc)
		return rc;
	if (relay_frame_get_int(f->root, "conversation_id", &f->conversation_id) ||
	    f->conversation_id <= 0)
		return fail(why, whylen, PL_BAD_REQUEST, "'conversation_id' must "
			    "be a conversation id");
	rc = pl_post_item_extras(f->root, &f->extras, why, whylen);
	if (rc)
		return rc;
	/* With attachments, the body may be empty or left out. */
	if ((!body || json_is_null(body)) && f->extras.n_attachments > 0) {
		f->body = "";
		f->body_len = 0;
		return PL_OK;
	}
	if (!json_is_string(body))
		return fail(why, whylen, PL_BAD_REQUEST, "'body' must be a string");
	f->body = json_string_value(body);
	f->body_len = json_string_length(body);
	if (f->body_len == 0 && f->extras.n_attachments > 0)
		return PL_OK;
	return pl_validate_body(f->body, f->body_len, why, whylen);
}

static enum pl_err parse_fields(struct relay_frame *f, char *why,
				size_t whylen)
{
	switch (f->type) {
	case RELAY_FRAME_HELLO:
		return parse_hello(f, why, whylen);
	case RELAY_FRAME_SEND:
		return parse_send(f, why, whylen);
	case RELAY_FRAME_ACK:
		if (relay_frame_get_int(f->root, "seq", &f->seq) || f->seq < 0)
			return fail(why, whylen, PL_BAD_REQUEST,
				    "'seq' must be an integer");
		return PL_OK;
	case RELAY_FRAME_TYPING:
		if (relay_frame_get_int(f->root, "conversation_id", &f->conversation_id) ||
		    f->conversation_id <= 0)
			return fail(why, whylen, PL_BAD_REQUEST, "'conversation_id' "
				    "must be a conversation id");
		return PL_OK;
	case RELAY_FRAME_READ:
		if (relay_frame_get_int(f->root, "conversation_id", &f->conversation_id) ||
		    f->conversation_id <= 0 ||
		    relay_frame_get_int(f->root, "message_id", &f->message_id) ||
		    f->message_id < 0)
			return fail(why, whylen, PL_BAD_REQUEST, "'conversation_id' "
				    "and 'message_id' must be integers");
		return PL_OK;
	case RELAY_FRAME_UNKNOWN:
		return unknown_type(f, why, whylen);
	default:
		return PL_OK;
	}
}

enum pl_err relay_frame_parse(const char *text, size_t len,
			      struct relay_frame *f, char *why, size_t whylen)
{
	json_error_t jerr;

	memset(f, 0, sizeof(*f));
	f->cursor = -1;
	if (whylen)
		why[0] = '\0';
	f->root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!f->root) {
		/* jansson quotes the bytes near the error, valid UTF-8 or not. */
		snprintf(why, whylen, "malformed JSON: %s", jerr.text);
		pl_validate_utf8_scrub(why);
		return PL_BAD_REQUEST;
	}
	f->type_name = json_is_object(f->root) ?
		       json_string_value(json_object_get(f->root, "type")) : NULL;
	if (!f->type_name)
		return fail(why, whylen, PL_BAD_REQUEST, "a frame needs a \"type\"");
	f->type = RELAY_FRAME_UNKNOWN;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(f->type_name, types[i].name) == 0)
			f->type = types[i].type;
	return parse_fields(f, why, whylen);
}

void relay_frame_release(struct relay_frame *f)
{
	json_decref(f->root);
	f->root = NULL;
}
