#include "json.h"
#include "banned.h"

json_t *pl_json_message(const struct pl_message *m)
{
	json_t *attachments = m->attachments ?
		json_loads(m->attachments, 0, NULL) : json_array();

	if (!json_is_array(attachments)) {
		json_decref(attachments);
		attachments = json_array();
	}
	return json_pack("{s:I,s:I,s:I,s:s%,s:s,s:s,s:o,s:o,s:n,s:n,s:[]}",
			 "conversation_id", (json_int_t)m->conversation_id,
			 "message_id", (json_int_t)m->message_id,
			 "sender_id", (json_int_t)m->sender_id,
			 "body", m->body, m->body_len,
			 "created_at", m->created_at,
			 "client_msg_id", m->client_msg_id,
			 "reply_to", m->reply_to > 0 ?
				json_integer(m->reply_to) : json_null(),
			 "attachments", attachments,
			 "edited_at", "deleted_at", "reactions");
}

json_t *pl_json_message_frame(const struct pl_message *m)
{
	json_t *o = pl_json_message(m);

	if (o && json_object_set_new(o, "type", json_string("message"))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

char *pl_json_frame_with_seq(json_t *frame, long long seq)
{
	if (json_object_set_new(frame, "seq", json_integer(seq)))
		return NULL;
	return json_dumps(frame, JSON_COMPACT);
}
