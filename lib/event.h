/*
 * event: the format of what travels on Parley's pub/sub bus, written by
 * lib/publish.c and read by the relay's bus thread (doc/architecture.md
 * "How a message flows", step 4, and "Redis keys").
 *
 * Every event for a user is published on the user's channel
 * (PL_KEY_USER_CHANNEL_FMT). A "message" event goes out as one header line,
 * "M <seq> <created_at in epoch microseconds>\n", then the frame's JSON, so
 * that a relay delivers it (and a group's hundred copies of it) without
 * parsing the JSON; every other event is the frame's JSON alone. A revoked
 * session is announced on PL_KEY_REVOKE_CHANNEL as
 * {"session_id":N,"device_id":N}. This module is the one place that writes
 * and reads those layouts; it does no I/O.
 */
#ifndef PL_EVENT_H
#define PL_EVENT_H

#include <stddef.h>

#include "err.h"

/* Room for a user's channel name, NUL included. */
#define PL_EVENT_CHANNEL_BYTES 40

/* A decoded user event; frame is borrowed from the payload decoded. */
struct pl_event {
	long long seq;		/* > 0: a "message" with its header; 0: other */
	long long created_us;	/* a message's created_at; 0 when not given */
	const char *frame;	/* the frame's JSON, frame_len bytes */
	size_t frame_len;
};

/*
 * Writes user_id's channel name into out (PL_EVENT_CHANNEL_BYTES bytes).
 * Returns out.
 */
char *pl_event_channel(char *out, long long user_id);

/*
 * Reads the user id out of a channel name. Returns 0 with *user_id set, or
 * -1 when channel is not a user's channel.
 */
int pl_event_channel_user(const char *channel, long long *user_id);

/*
 * Encodes a "message" event: the header for seq and created_us, then frame
 * (borrowed, NUL-terminated). Returns a newly allocated NUL-terminated
 * string the caller frees, or NULL when out of memory or seq is not above 0.
 */
char *pl_event_encode_message(long long seq, long long created_us,
			      const char *frame);

/*
 * Decodes payload[0..len) (borrowed; *ev points into it). A payload that
 * does not start with "M " and a header line is another event: seq 0 and
 * the whole payload as the frame. Returns PL_OK, or PL_BAD_REQUEST when the
 * header line is malformed (no seq above 0, or text after the time).
 */
enum pl_err pl_event_decode(const char *payload, size_t len,
			    struct pl_event *ev);

/*
 * Encodes a revocation for PL_KEY_REVOKE_CHANNEL. Returns a newly
 * allocated string the caller frees, or NULL when out of memory.
 */
char *pl_event_encode_revoke(long long session_id, long long device_id);

/*
 * Reads a revocation's session id from payload[0..len) (borrowed). Returns
 * 0 with *session_id set (above 0), or -1 when the payload says none.
 */
int pl_event_decode_revoke(const char *payload, size_t len,
			   long long *session_id);

#endif
