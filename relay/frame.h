/*
 * frame: what a client's text frame says (doc/protocol.md "WebSocket").
 *
 * relay_frame_parse() turns the bytes of one text frame into a typed frame
 * and checks every field against the protocol's rules, without touching a
 * socket: session.c acts on the result, and the frame fuzz target drives
 * the same function. What depends on the socket's state (the hello first,
 * an ack not above the last seq sent, the send rate) stays in session.c.
 */
#ifndef RELAY_FRAME_H
#define RELAY_FRAME_H

#include <jansson.h>
#include <stddef.h>

#include "err.h"
#include "post.h"

enum relay_frame_type {
	RELAY_FRAME_NONE,	/* not JSON, not an object, or no string "type" */
	RELAY_FRAME_HELLO,
	RELAY_FRAME_SEND,
	RELAY_FRAME_ACK,
	RELAY_FRAME_HEARTBEAT,
	RELAY_FRAME_TYPING,
	RELAY_FRAME_READ,
	RELAY_FRAME_UNKNOWN,	/* a "type" the protocol does not know */
};

/*
 * A parsed frame. Strings are borrowed from root and live until
 * relay_frame_release(). Fields a type does not carry stay zero.
 */
struct relay_frame {
	enum relay_frame_type type;
	const char *type_name;		/* "type"; NULL with RELAY_FRAME_NONE */
	json_t *root;			/* owned; NULL when the text is not JSON */
	const char *token;		/* hello; NULL when absent or not a string */
	long long cursor;		/* hello; -1 when absent or null */
	long long conversation_id;	/* send, typing, read */
	const char *client_msg_id;	/* send */
	const char *body;		/* send; body_len bytes, NUL-terminated */
	size_t body_len;
	struct pl_post_item extras;	/* send: reply_to, attachment_ids */
	long long seq;			/* ack */
	long long message_id;		/* read */
	const char *ref;		/* the client_msg_id an error answers, or NULL */
};

/*
 * Parses and validates text[0..len) into *f, which the caller releases with
 * relay_frame_release() whatever the result. Returns PL_OK; PL_BAD_REQUEST
 * or PL_TOO_LARGE with a message for the client in why (whylen bytes) when
 * the frame is malformed, of an unknown type, or a field breaks its rule.
 * On an error f->type still says what the frame claimed to be (NONE when it
 * said nothing), and a hello's token is filled even when its cursor is bad.
 */
enum pl_err relay_frame_parse(const char *text, size_t len,
			      struct relay_frame *f, char *why, size_t whylen);

/*
 * Reads the integer member name of object o (borrowed) into *out. Returns 0,
 * or -1 when o is not an object or the member is absent or not an integer.
 */
int relay_frame_get_int(json_t *o, const char *name, long long *out);

/* Frees what f owns; safe on a zeroed or released frame. */
void relay_frame_release(struct relay_frame *f);

#endif
