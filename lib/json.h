/*
 * json: the contract's JSON shapes that more than one program builds.
 *
 * Built with jansson; every function returns a new reference (NULL when out
 * of memory) that the caller owns.
 */
#ifndef PL_JSON_H
#define PL_JSON_H

#include <jansson.h>
#include <stddef.h>

/* A stored message (doc/protocol.md "A message object"). Strings are borrowed. */
struct pl_message {
	long long conversation_id;
	long long message_id;
	long long sender_id;
	const char *body;
	size_t body_len;
	const char *created_at;		/* RFC 3339 */
	const char *client_msg_id;
	long long reply_to;		/* 0: none */
	const char *attachments;	/* their JSON array; NULL: none */
};

/*
 * A new message's object: {conversation_id, message_id, sender_id, body,
 * created_at, client_msg_id, reply_to, attachments, edited_at: null,
 * deleted_at: null, reactions: []}
 */
json_t *pl_json_message(const struct pl_message *m);

/*
 * The WebSocket/Redis "message" frame of m without its seq: the message
 * object with "type":"message" (NULL when out of memory). A message goes
 * to each recipient with that recipient's seq: pl_json_frame_with_seq()
 * then writes it, so the object is built once per message, not once per
 * recipient (a group of 100 would build it 100 times).
 */
json_t *pl_json_message_frame(const struct pl_message *m);

/*
 * frame (a frame object, borrowed) as compact text with "seq" set to seq:
 * a newly allocated string the caller frees, or NULL when out of memory.
 */
char *pl_json_frame_with_seq(json_t *frame, long long seq);

#endif
