/* The live event stream: see events.h. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "events.h"
#include "util.h"

struct ev_sub {
	char *host;
	events_sink_fn fn;
	void *arg;
	struct ev_sub *next;
};

static struct ev_sub *g_subs;
static size_t g_n_subs;

struct ev_sub *
events_subscribe(const char *host, events_sink_fn fn, void *arg)
{
	struct ev_sub *s = xcalloc(1, sizeof *s);

	s->host = host ? xstrdup(host) : NULL;
	s->fn = fn;
	s->arg = arg;
	s->next = g_subs;
	g_subs = s;
	g_n_subs++;
	return s;
}

void
events_unsubscribe(struct ev_sub *s)
{
	for (struct ev_sub **p = &g_subs; *p; p = &(*p)->next) {
		if (*p == s) {
			*p = s->next;
			g_n_subs--;
			free(s->host);
			free(s);
			return;
		}
	}
}

size_t
events_subscribers(void)
{
	return g_n_subs;
}

static double
wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)(ts.tv_nsec / 1000000) / 1000.0;
}

static void
deliver(struct ev_sub *s, const char *line)
{
	s->fn(s->arg, line, strlen(line));
}

/* To every subscriber that wants this host.  A sink may unsubscribe itself
 * (or be closed) while we walk: keep the next pointer first. */
static void
broadcast(const char *host, json_t *o)
{
	char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(13));

	json_decref(o);
	if (line == NULL)
		return;
	for (struct ev_sub *s = g_subs, *next; s; s = next) {
		next = s->next;
		if (s->host == NULL || host == NULL || strcmp(s->host, host) == 0)
			deliver(s, line);
	}
	free(line);
}

static json_t *
host_obj(const char *host, const char *state, const char *error)
{
	json_t *o = json_object();

	json_object_set_new(o, "time", json_real(wall_now()));
	json_object_set_new(o, "type", json_string("host"));
	json_object_set_new(o, "host", json_string(host));
	json_object_set_new(o, "state", json_string(state));
	json_object_set_new(o, "error", error && *error ? json_string(error) : json_null());
	return o;
}

static json_t *
forward_obj(const char *host, const char *what, const struct rc_forward *f, const char *reason)
{
	json_t *o = json_object();
	char shortid[13];

	memcpy(shortid, f->container_id, sizeof shortid - 1);
	shortid[sizeof shortid - 1] = '\0';
	json_object_set_new(o, "time", json_real(wall_now()));
	json_object_set_new(o, "type", json_string("forward"));
	json_object_set_new(o, "host", json_string(host));
	json_object_set_new(o, "event", json_string(what));
	json_object_set_new(o, "container", json_string(f->container_name));
	json_object_set_new(o, "container_id", json_string(shortid));
	json_object_set_new(o, "bind", json_string(f->bind));
	json_object_set_new(o, "local_port", json_integer(f->local_port));
	json_object_set_new(o, "remote_host", json_string(f->remote_host));
	json_object_set_new(o, "remote_port", json_integer(f->remote_port));
	json_object_set_new(o, "reason", reason && *reason ? json_string(reason) : json_null());
	return o;
}

void
events_host(const char *host, const char *from, const char *to, const char *error)
{
	json_t *o;

	if (g_subs == NULL)
		return;
	o = host_obj(host, to, error);
	json_object_set_new(o, "from", json_string(from));
	broadcast(host, o);
}

void
events_forward(const char *host, const char *what, const struct rc_forward *f, const char *reason)
{
	if (g_subs != NULL)
		broadcast(host, forward_obj(host, what, f, reason));
}

void
events_send_to(struct ev_sub *s, json_t *o)
{
	char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(13));

	json_decref(o);
	if (line != NULL)
		deliver(s, line);
	free(line);
}

void
events_host_to(struct ev_sub *s, const char *host, const char *state, const char *error)
{
	json_t *o;

	if (s->host != NULL && strcmp(s->host, host) != 0)
		return;
	o = host_obj(host, state, error);
	json_object_set_new(o, "replay", json_true());
	events_send_to(s, o);
}

void
events_forward_to(struct ev_sub *s, const char *host, const char *what, const struct rc_forward *f,
                  const char *reason)
{
	json_t *o;

	if (s->host != NULL && strcmp(s->host, host) != 0)
		return;
	o = forward_obj(host, what, f, reason);
	json_object_set_new(o, "replay", json_true());
	events_send_to(s, o);
}
