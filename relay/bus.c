/*
 * bus: the relay's Redis pub/sub connection, on its own thread.
 *
 * The service thread asks for a user's channel (parley:u:{id}) when the
 * user's first socket authenticates and gives it up with the last one; the
 * bus subscribes and reports the confirmation (EV_SUBSCRIBED), so a socket
 * is welcomed only once no event for it can be missed. Everything that
 * arrives is posted to the service thread. After a lost connection the bus
 * reconnects with backoff, subscribes again to every channel it held, and
 * posts EV_RESUBSCRIBED so every socket re-reads its inbox: events published
 * meanwhile are found there (doc/architecture.md step 5).
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "event.h"
#include "keys.h"
#include "log.h"
#include "relay.h"
#include "banned.h"

/* The channels the bus holds: a small open set of user ids. */
struct subs {
	long long *ids;
	size_t n, cap;
};

static int subs_find(const struct subs *s, long long id)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->ids[i] == id)
			return (int)i;
	return -1;
}

static void subs_add(struct subs *s, long long id)
{
	if (subs_find(s, id) >= 0)
		return;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		long long *ids = realloc(s->ids, cap * sizeof(*ids));

		if (!ids)
			return;
		s->ids = ids;
		s->cap = cap;
	}
	s->ids[s->n++] = id;
}

static void subs_remove(struct subs *s, long long id)
{
	int i = subs_find(s, id);

	if (i >= 0)
		s->ids[i] = s->ids[--s->n];
}

static redisContext *bus_connect(struct relay *r)
{
	const struct pl_config *cfg = r->cfg;
	struct timeval tv = { cfg->redis_timeout_ms / 1000,
			      (cfg->redis_timeout_ms % 1000) * 1000 };
	redisContext *c = cfg->redis_host[0] == '/' ?
		redisConnectUnixWithTimeout(cfg->redis_host, tv) :
		redisConnectWithTimeout(cfg->redis_host, (int)cfg->redis_port, tv);

	redisReply *pong;

	if (!c || c->err) {
		if (c)
			redisFree(c);
		return NULL;
	}
	/*
	 * A restarting Redis accepts connections while it loads its data and
	 * answers every command with -LOADING until it is ready: subscribe only
	 * once it answers PING.
	 */
	pong = redisCommand(c, "PING");
	if (!pong || pong->type != REDIS_REPLY_STATUS || strcmp(pong->str, "PONG")) {
		if (pong)
			freeReplyObject(pong);
		redisFree(c);
		return NULL;
	}
	freeReplyObject(pong);
	/* Reads happen only when poll() says so: no blocking, no timeout. */
	redisSetTimeout(c, (struct timeval){ 0, 0 });
	return c;
}

static void append_sub(redisContext *c, const char *verb, long long id)
{
	char ch[PL_EVENT_CHANNEL_BYTES];

	redisAppendCommand(c, "%s %s", verb, pl_event_channel(ch, id));
}

/* Takes the service thread's requests and queues the commands. */
static void take_requests(struct relay *r, redisContext *c, struct subs *subs)
{
	long long *cmds;
	size_t n;
	uint64_t v;

	if (read(r->bus_wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		pl_log_errno(PL_LOG_WARN, "bus: cannot read wake-up");
	pthread_mutex_lock(&r->bus_lock);
	cmds = r->bus_cmds;
	n = r->bus_ncmds;
	r->bus_cmds = NULL;
	r->bus_ncmds = r->bus_cap = 0;
	pthread_mutex_unlock(&r->bus_lock);
	for (size_t i = 0; i < n; i++) {
		long long id = cmds[i] > 0 ? cmds[i] : -cmds[i];

		if (cmds[i] > 0) {
			subs_add(subs, id);
			if (c)
				append_sub(c, "SUBSCRIBE", id);
		} else {
			subs_remove(subs, id);
			if (c)
				append_sub(c, "UNSUBSCRIBE", id);
		}
	}
	free(cmds);
}

/*
 * An event on a user's channel (lib/event.h): a "message" comes with its
 * header line, whose seq and creation time ride along as the event's a and
 * b so the service thread need not parse the JSON; other events are the
 * frame alone (a = 0).
 */
static void user_event(struct relay *r, long long user_id, const char *text,
		       size_t len)
{
	struct pl_event ev;

	if (pl_event_decode(text, len, &ev)) {
		pl_log(PL_LOG_WARN, "bus: bad message header on user %lld",
		       user_id);
		return;
	}
	relay_post_event(r, EV_USER_FRAME, 0, user_id, ev.seq, ev.created_us,
			 ev.frame, ev.frame_len);
}

/* Hands one pub/sub reply to the service thread. */
static void dispatch(struct relay *r, redisReply *rep)
{
	const char *kind, *ch;
	long long user_id;

	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
	    rep->element[0]->type != REDIS_REPLY_STRING ||
	    rep->element[1]->type != REDIS_REPLY_STRING)
		return;
	kind = rep->element[0]->str;
	ch = rep->element[1]->str;
	if (strcmp(kind, "subscribe") == 0 &&
	    pl_event_channel_user(ch, &user_id) == 0) {
		relay_post_event(r, EV_SUBSCRIBED, 0, user_id, 0, 0, NULL, 0);
	} else if (strcmp(kind, "message") == 0 &&
		   rep->element[2]->type == REDIS_REPLY_STRING) {
		if (strcmp(ch, PL_KEY_REVOKE_CHANNEL) == 0)
			relay_post_event(r, EV_REVOKE, 0, 0, 0, 0,
					 rep->element[2]->str, rep->element[2]->len);
		else if (pl_event_channel_user(ch, &user_id) == 0)
			user_event(r, user_id, rep->element[2]->str,
				   rep->element[2]->len);
	}
}

/* Writes what is queued. Returns -1 when the connection broke. */
static int flush_out(redisContext *c)
{
	int done = 0;

	while (!done)
		if (redisBufferWrite(c, &done) != REDIS_OK)
			return -1;
	return 0;
}

static void *bus_main(void *arg)
{
	struct relay *r = arg;
	struct subs subs = { 0 };
	redisContext *c = NULL;
	long delay_ms = 100;
	int was_down = 0;

	while (!r->bus_stop) {
		struct pollfd fds[2];
		int n;

		if (!c) {
			c = bus_connect(r);
			if (!c) {
				if (!was_down)
					pl_log(PL_LOG_ERR, "bus: cannot connect to redis "
					       "at '%s:%lld'", r->cfg->redis_host,
					       r->cfg->redis_port);
				was_down = 1;
				/* Requests still update the set while down. */
				take_requests(r, NULL, &subs);
				poll(NULL, 0, (int)delay_ms);
				delay_ms = delay_ms * 2 > 2000 ? 2000 : delay_ms * 2;
				continue;
			}
			delay_ms = 100;
			redisAppendCommand(c, "SUBSCRIBE " PL_KEY_REVOKE_CHANNEL);
			for (size_t i = 0; i < subs.n; i++)
				append_sub(c, "SUBSCRIBE", subs.ids[i]);
			if (was_down) {
				pl_log(PL_LOG_INFO, "bus: reconnected to redis, %zu "
				       "channels", subs.n);
				/* Once these subscriptions hold, sockets re-read. */
				redisAppendCommand(c, "PING");
			}
		}
		take_requests(r, c, &subs);
		if (flush_out(c)) {
			redisFree(c);
			c = NULL;
			was_down = 1;
			continue;
		}
		fds[0] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
		fds[1] = (struct pollfd){ .fd = r->bus_wake_fd, .events = POLLIN };
		n = poll(fds, 2, 1000);
		if (n < 0 && errno != EINTR)
			break;
		if (n <= 0 || !(fds[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if (redisBufferRead(c) != REDIS_OK) {
			pl_log(PL_LOG_WARN, "bus: lost redis: %s", c->errstr);
			redisFree(c);
			c = NULL;
			was_down = 1;
			continue;
		}
		for (;;) {
			void *rep = NULL;

			if (redisGetReplyFromReader(c, &rep) != REDIS_OK || !rep)
				break;
			/* A refused SUBSCRIBE: start over rather than miss events. */
			if (((redisReply *)rep)->type == REDIS_REPLY_ERROR) {
				pl_log(PL_LOG_WARN, "bus: redis refused a command: %s",
				       ((redisReply *)rep)->str);
				freeReplyObject(rep);
				redisFree(c);
				c = NULL;
				was_down = 1;
				break;
			}
			/* The PING after a reconnect: every channel is back. */
			if (((redisReply *)rep)->type == REDIS_REPLY_ARRAY &&
			    ((redisReply *)rep)->elements >= 1 &&
			    ((redisReply *)rep)->element[0]->str &&
			    strcmp(((redisReply *)rep)->element[0]->str, "pong") == 0) {
				was_down = 0;
				relay_post_event(r, EV_RESUBSCRIBED, 0, 0, 0, 0, NULL, 0);
			} else {
				dispatch(r, rep);
			}
			freeReplyObject(rep);
		}
	}
	if (c)
		redisFree(c);
	free(subs.ids);
	return NULL;
}

int relay_bus_start(struct relay *r)
{
	r->bus_wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->bus_wake_fd < 0)
		return -1;
	pthread_mutex_init(&r->bus_lock, NULL);
	return pthread_create(&r->bus, NULL, bus_main, r) ? -1 : 0;
}

void relay_bus_stop(struct relay *r)
{
	uint64_t one = 1;

	r->bus_stop = 1;
	if (write(r->bus_wake_fd, &one, sizeof(one)) < 0)
		pl_log_errno(PL_LOG_WARN, "bus: cannot wake the bus thread");
	pthread_join(r->bus, NULL);
	close(r->bus_wake_fd);
	free(r->bus_cmds);
	pthread_mutex_destroy(&r->bus_lock);
}

void relay_bus_request(struct relay *r, long long user_id, int subscribe)
{
	uint64_t one = 1;

	pthread_mutex_lock(&r->bus_lock);
	if (r->bus_ncmds == r->bus_cap) {
		size_t cap = r->bus_cap ? r->bus_cap * 2 : 64;
		long long *cmds = realloc(r->bus_cmds, cap * sizeof(*cmds));

		if (!cmds) {
			pthread_mutex_unlock(&r->bus_lock);
			return;
		}
		r->bus_cmds = cmds;
		r->bus_cap = cap;
	}
	r->bus_cmds[r->bus_ncmds++] = subscribe ? user_id : -user_id;
	pthread_mutex_unlock(&r->bus_lock);
	if (write(r->bus_wake_fd, &one, sizeof(one)) < 0)
		pl_log_errno(PL_LOG_WARN, "bus: cannot wake the bus thread");
}
