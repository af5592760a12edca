/*
 * fuzz_frame: one WebSocket text frame from a client, through the relay's
 * parser and validator (relay_frame_parse()) and, for a hello, the token
 * check session.c runs next. Input: the frame's payload.
 */
#include <string.h>

#include "frame.h"
#include "fuzz.h"
#include "validate.h"

static struct pl_token_key key;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	fuzz_key(&key);
	return 0;
}

/* What session.c relies on when it acts on a frame that passed. */
static void check_valid(const struct relay_frame *f)
{
	char why[160];

	switch (f->type) {
	case RELAY_FRAME_HELLO:
		FUZZ_ASSERT(f->cursor >= -1);
		break;
	case RELAY_FRAME_SEND:
		FUZZ_ASSERT(f->client_msg_id && f->ref == f->client_msg_id);
		FUZZ_ASSERT(pl_validate_client_msg_id(f->client_msg_id, why,
						      sizeof(why)) == PL_OK);
		FUZZ_ASSERT(f->conversation_id > 0);
		FUZZ_ASSERT(f->body && f->body_len >= 1 && f->body_len <= 4096);
		FUZZ_ASSERT(strlen(f->body) == f->body_len);
		FUZZ_ASSERT(pl_validate_utf8(f->body, f->body_len));
		break;
	case RELAY_FRAME_ACK:
		FUZZ_ASSERT(f->seq >= 0);
		break;
	case RELAY_FRAME_TYPING:
		FUZZ_ASSERT(f->conversation_id > 0);
		break;
	case RELAY_FRAME_READ:
		FUZZ_ASSERT(f->conversation_id > 0 && f->message_id >= 0);
		break;
	case RELAY_FRAME_HEARTBEAT:
		break;
	default:
		FUZZ_ASSERT(!"a frame without a known type passed");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct relay_frame f;
	struct pl_token_claims claims;
	char why[256], twhy[128];
	enum pl_err rc;

	rc = relay_frame_parse((const char *)data, size, &f, why, sizeof(why));
	if (rc) {
		/* The error frame carries why as a JSON string: it must be one. */
		FUZZ_ASSERT(rc == PL_BAD_REQUEST || rc == PL_TOO_LARGE);
		FUZZ_ASSERT(fuzz_message_ok(why));
		/* A refused send names its client_msg_id, as sent, in "ref":
		 * a JSON string too. */
		FUZZ_ASSERT(!f.ref || (f.type == RELAY_FRAME_SEND &&
				       f.ref == f.client_msg_id &&
				       pl_validate_utf8(f.ref, strlen(f.ref))));
	} else {
		check_valid(&f);
	}
	FUZZ_ASSERT((f.type == RELAY_FRAME_NONE) == (f.type_name == NULL));
	if (f.type == RELAY_FRAME_HELLO && f.token &&
	    pl_token_verify(&key, f.token, FUZZ_NOW, &claims, twhy,
			    sizeof(twhy)) == PL_OK)
		FUZZ_ASSERT(claims.user_id > 0 && claims.session_id > 0 &&
			    claims.device_id > 0 && claims.expires_at > FUZZ_NOW);
	relay_frame_release(&f);
	return 0;
}
