/*
 * http2: every request of the notifier on one libcurl multi handle.
 *
 * One easy handle per request, CURLOPT_PIPEWAIT so a burst waits for the
 * one HTTP/2 connection instead of opening more, and at most one connection
 * per host: APNs and FCM requests are streams of a single TLS connection
 * each (doc/architecture.md "Push").
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "notify.h"
#include "banned.h"

enum pl_err notify_http_init(struct notify_http *h, atomic_ulong *connects)
{
	memset(h, 0, sizeof(*h));
	h->connects = connects;
	h->multi = curl_multi_init();
	if (!h->multi)
		return PL_INTERNAL;
	curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
	curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 1L);
	curl_multi_setopt(h->multi, CURLMOPT_MAX_CONCURRENT_STREAMS, 100L);
	return PL_OK;
}

void notify_http_release(struct notify_http *h)
{
	if (h->multi)
		curl_multi_cleanup(h->multi);
	h->multi = NULL;
}

enum pl_err notify_req_header(struct notify_req *req, const char *fmt, ...)
{
	char line[4096];
	struct curl_slist *l;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		return PL_INTERNAL;
	l = curl_slist_append(req->headers, line);
	if (!l)
		return PL_INTERNAL;
	req->headers = l;
	return PL_OK;
}

void notify_req_release(struct notify_req *req)
{
	curl_slist_free_all(req->headers);
	req->headers = NULL;
	free(req->body);
	req->body = NULL;
}

size_t notify_req_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct notify_req *req = arg;
	size_t n = size * nmemb, room = NOTIFY_RESP_MAX - req->resp_len;
	size_t take = n < room ? n : room;

	memcpy(req->resp + req->resp_len, data, take);
	req->resp_len += take;
	req->resp[req->resp_len] = '\0';
	return n;
}

size_t notify_req_on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct notify_req *req = arg;
	size_t n = size * nmemb;
	static const char name[] = "retry-after:";

	if (n > sizeof(name) && strncasecmp(data, name, sizeof(name) - 1) == 0) {
		char value[32];
		char *end;
		long v;
		size_t len = n - (sizeof(name) - 1);

		if (len >= sizeof(value))
			len = sizeof(value) - 1;
		memcpy(value, data + sizeof(name) - 1, len);
		value[len] = '\0';
		v = strtol(value, &end, 10);
		if (end != value && v >= 0)
			req->retry_after_s = v > 3600 ? 3600 : v;
	}
	return n;
}

enum pl_err notify_http_start(struct notify_http *h, struct notify_req *req,
			      const char *url, const char *ca_file,
			      long timeout_ms, notify_req_fn done, void *arg)
{
	CURL *e = curl_easy_init();

	req->resp_len = 0;
	req->resp[0] = '\0';
	req->status = 0;
	req->retry_after_s = -1;
	req->result = CURLE_OK;
	if (!e)
		return PL_INTERNAL;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body ? req->body : "");
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, req->headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, notify_req_on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, req);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, notify_req_on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, req);
	curl_easy_setopt(e, CURLOPT_PRIVATE, req);
	if (ca_file && *ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
	if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
		curl_easy_cleanup(e);
		return PL_INTERNAL;
	}
	req->easy = e;
	req->done = done;
	req->arg = arg;
	h->running++;
	return PL_OK;
}

void notify_http_run(struct notify_http *h, int wait_ms)
{
	CURLMsg *msg;
	int still, left;

	curl_multi_perform(h->multi, &still);
	if (wait_ms > 0)
		curl_multi_poll(h->multi, NULL, 0, wait_ms, NULL);
	curl_multi_perform(h->multi, &still);
	while ((msg = curl_multi_info_read(h->multi, &left))) {
		struct notify_req *req = NULL;
		long connects = 0;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
				  (char **)&req);
		req->result = msg->data.result;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE,
				  &req->status);
		curl_easy_getinfo(msg->easy_handle, CURLINFO_NUM_CONNECTS,
				  &connects);
		if (h->connects && connects > 0)
			atomic_fetch_add(h->connects, (unsigned long)connects);
		if (req->result != CURLE_OK)
			pl_log(PL_LOG_DEBUG, "http2: request failed: %s",
			       curl_easy_strerror(req->result));
		curl_multi_remove_handle(h->multi, msg->easy_handle);
		curl_easy_cleanup(msg->easy_handle);
		req->easy = NULL;
		h->running--;
		req->done(req, req->arg);
	}
}
