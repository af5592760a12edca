#include "event.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "banned.h"

#define CHANNEL_PREFIX PL_KEY_USER_CHANNEL_PREFIX

char *pl_event_channel(char *out, long long user_id)
{
	snprintf(out, PL_EVENT_CHANNEL_BYTES, PL_KEY_USER_CHANNEL_FMT, user_id);
	return out;
}

int pl_event_channel_user(const char *channel, long long *user_id)
{
	if (strncmp(channel, CHANNEL_PREFIX, strlen(CHANNEL_PREFIX)) != 0)
		return -1;
	*user_id = strtoll(channel + strlen(CHANNEL_PREFIX), NULL, 10);
	return 0;
}

char *pl_event_encode_message(long long seq, long long created_us,
			      const char *frame)
{
	char *payload = NULL;

	if (seq <= 0 || asprintf(&payload, "M %lld %lld\n%s", seq, created_us,
				 frame) < 0)
		return NULL;
	return payload;
}

enum pl_err pl_event_decode(const char *payload, size_t len,
			    struct pl_event *ev)
{
	const char *nl;
	char *end;

	memset(ev, 0, sizeof(*ev));
	ev->frame = payload;
	ev->frame_len = len;
	if (len <= 2 || payload[0] != 'M' || payload[1] != ' ')
		return PL_OK;
	nl = memchr(payload, '\n', len);
	if (!nl)
		return PL_OK;
	/* strtoll stops at the newline at the latest: the header is bounded. */
	ev->seq = strtoll(payload + 2, &end, 10);
	ev->created_us = end < nl ? strtoll(end, &end, 10) : 0;
	if (ev->seq <= 0 || end != nl) {
		memset(ev, 0, sizeof(*ev));
		return PL_BAD_REQUEST;
	}
	ev->frame = nl + 1;
	ev->frame_len = len - (size_t)(nl + 1 - payload);
	return PL_OK;
}

char *pl_event_encode_revoke(long long session_id, long long device_id)
{
	json_t *o = json_pack("{s:I,s:I}", "session_id", (json_int_t)session_id,
			      "device_id", (json_int_t)device_id);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	return text;
}

int pl_event_decode_revoke(const char *payload, size_t len,
			   long long *session_id)
{
	json_error_t jerr;
	json_t *o = json_loadb(payload, len, 0, &jerr);
	json_t *v = json_object_get(o, "session_id");

	*session_id = json_is_integer(v) ? json_integer_value(v) : 0;
	json_decref(o);
	return *session_id > 0 ? 0 : -1;
}
