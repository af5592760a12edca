/*
 * heartbeat: a connection's presence jobs (see heartbeat.h).
 */
#include "clock.h"
#include "conn.h"
#include "heartbeat.h"
#include "jobs.h"
#include "relay.h"
#include "banned.h"

static void submit_presence(struct conn *c, int online)
{
	struct relay_job *j = relay_job_new(JOB_PRESENCE, c->id, c->user_id);

	if (!j)
		return;
	j->as.presence = (struct relay_job_presence){ c->device_id, online };
	relay_job_submit(&c->r->jobs, j);
	if (online)
		c->presence_ms = pl_clock_mono_ms();
}

void relay_heartbeat_welcome(struct conn *c)
{
	/* The socket counts as a heartbeat from the start. */
	submit_presence(c, 1);
}

void relay_heartbeat_gone(struct conn *c)
{
	submit_presence(c, 0);
}

/* At most one presence write per socket per heartbeat interval: the
 * deadline it sets is presence_timeout away, so extra heartbeats add
 * nothing but Redis work. */
void relay_heartbeat(struct conn *c)
{
	long long now = pl_clock_mono_ms();
	long long every = c->r->cfg->presence_heartbeat_interval_s * 1000;
	struct relay_job *j;

	/* A heartbeat sent on the interval may come a little early. */
	if (now - c->presence_ms < every - (every / 4 < 250 ? every / 4 : 250))
		return;
	j = relay_job_new(JOB_PRESENCE, c->id, c->user_id);
	if (!j)
		return;
	j->as.presence = (struct relay_job_presence){ c->device_id, 1 };
	if (relay_conn_submit(c, j, NULL) == 0)
		c->presence_ms = now;
}
