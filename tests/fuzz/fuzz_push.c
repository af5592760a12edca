/*
 * fuzz_push: a provider's answer to a push, as the notifier reads it:
 * libcurl hands the header lines and body chunks to notify_req_on_header()
 * and notify_req_on_body() (notify/http2.c), then notify_apns_outcome(),
 * notify_fcm_outcome() and, for the token endpoint, notify_fcm_token_answer()
 * decide what it means.
 *
 * Input: the status line ("HTTP/2 410"; an empty one means the transfer
 * failed without an answer), header lines, an empty line, then the body,
 * which is fed in chunks of up to 1000 bytes as a network would.
 */
#include <string.h>

#include "fuzz.h"
#include "notify.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	return 0;
}

/* Feeds the header block; returns the bytes it took. */
static size_t feed_headers(struct notify_req *req, const uint8_t *data,
			   size_t size)
{
	size_t at = 0;
	int first = 1, end;

	while (at < size) {
		const uint8_t *nl = memchr(data + at, '\n', size - at);
		size_t n = nl ? (size_t)(nl - (data + at)) + 1 : size - at;
		char *line = malloc(n + 1);

		if (!line)
			break;
		memcpy(line, data + at, n);
		line[n] = '\0';
		if (first) {
			/* What CURLINFO_RESPONSE_CODE reports for the status line. */
			const char *sp = strchr(line, ' ');

			req->status = sp ? strtol(sp + 1, NULL, 10) : 0;
			req->result = req->status > 0 ? CURLE_OK : CURLE_RECV_ERROR;
			first = 0;
		}
		FUZZ_ASSERT(notify_req_on_header(line, 1, n, req) == n);
		end = n <= 2 && (line[0] == '\n' || line[0] == '\r');
		free(line);
		at += n;
		if (end)
			break;
	}
	return at;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct notify_req req;
	enum notify_outcome a, f;
	char *token;
	long long expires_in, refresh_ms;
	size_t at;

	memset(&req, 0, sizeof(req));
	req.retry_after_s = -1;
	req.result = CURLE_RECV_ERROR;
	at = feed_headers(&req, data, size);
	while (at < size) {
		size_t n = size - at < 1000 ? size - at : 1000;
		char *chunk = malloc(n);

		if (!chunk)
			break;
		memcpy(chunk, data + at, n);
		FUZZ_ASSERT(notify_req_on_body(chunk, 1, n, &req) == n);
		free(chunk);
		at += n;
	}
	FUZZ_ASSERT(req.resp_len <= NOTIFY_RESP_MAX);
	FUZZ_ASSERT(req.resp[req.resp_len] == '\0');
	FUZZ_ASSERT(req.retry_after_s >= -1 && req.retry_after_s <= 3600);

	a = notify_apns_outcome(&req);
	f = notify_fcm_outcome(&req);
	if (req.result != CURLE_OK)
		FUZZ_ASSERT(a == NOTIFY_RETRY && f == NOTIFY_RETRY);
	if (req.result == CURLE_OK && req.status == 200)
		FUZZ_ASSERT(a == NOTIFY_SENT && f == NOTIFY_SENT);
	if (notify_fcm_token_answer(&req, &token, &expires_in, &refresh_ms) ==
	    PL_OK) {
		FUZZ_ASSERT(token && expires_in > 0);
		FUZZ_ASSERT(refresh_ms >= 0 && refresh_ms / 1000 <= expires_in);
		free(token);
	} else {
		FUZZ_ASSERT(token == NULL);
	}
	return 0;
}
