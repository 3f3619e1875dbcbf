/* runtime-docker: running containers and their published ports on a remote
 * Docker Engine, and their start/stop events, all over the Engine API.
 *
 * Per host, two long-lived byte streams to the engine's API socket (the
 * remote Unix socket where the transport can open one, else one
 * `docker system dial-stdio` each): one carries the event stream, the
 * other pipelines requests with keep-alive.  A container start costs one
 * request on an open connection (GET /containers/ID/json), and nothing is
 * started on the remote per event.  See runtime-common/engine.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdhpf/plugin.h"
#include "../runtime-common/engine.h"

static const struct rdhpf_host_api *H;

/* {"type":["container"],"event":["start","die","stop","destroy"]} */
#define DOCKER_EVENT_FILTERS                                                                       \
	"%7B%22type%22%3A%5B%22container%22%5D%2C%22event%22%3A%5B%22start%22%2C%22die%22"         \
	"%2C%22stop%22%2C%22destroy%22%5D%7D"

struct dk {
	struct rt r; /* first: rt_destroy frees through it */
	struct eng *e;
};

static void
dk_free(struct rt *r)
{
	struct dk *d = (struct dk *)r;

	eng_free(d->e);
	free(d);
}

static void
d_stop(void *state)
{
	struct dk *d = state;

	d->r.gen++;
	d->r.wcbs = NULL;
	eng_stop(d->e);
	rt_q_clear(&d->r);
}

static void
d_destroy(void *state)
{
	struct dk *d = state;

	if (d == NULL)
		return;
	d_stop(d);
	rt_destroy(&d->r);
}

static int
d_watch(void *state, const struct rdhpf_watch_cbs *cbs, void *arg)
{
	struct dk *d = state;
	int rc;

	if (d->r.wcbs != NULL)
		return RDHPF_ERR_BUSY;
	/* What is left of a watch that ended: its stream, its queue. */
	eng_unwatch(d->e);
	rt_q_clear(&d->r);
	d->r.wcbs = cbs;
	d->r.warg = arg;
	rc = eng_watch(d->e);
	if (rc != RDHPF_OK)
		d->r.wcbs = NULL;
	return rc;
}

static int
d_list(void *state, rdhpf_list_fn done, void *arg)
{
	struct dk *d = state;

	return eng_list(d->e, done, arg);
}

static int
d_create(struct rdhpf_ctx *ctx, const struct rdhpf_host_params *p, void **state, char *err,
         size_t errlen)
{
	const char *api = "auto", *socket = "/var/run/docker.sock", *docker = "docker";
	struct eng_opts o;
	struct dk *d;

	for (size_t i = 0; i < p->n_options; i++) {
		const char *k = p->options[i].key, *v = p->options[i].value;
		if (strcmp(k, "api") == 0)
			api = v;
		else if (strcmp(k, "socket") == 0)
			socket = v;
		else if (strcmp(k, "docker") == 0)
			docker = v;
	}
	memset(&o, 0, sizeof o);
	if (strcmp(api, "auto") == 0) {
		o.mode = ENG_AUTO;
	} else if (strcmp(api, "unix") == 0) {
		o.mode = ENG_UNIX;
	} else if (strcmp(api, "dial-stdio") == 0) {
		o.mode = ENG_EXEC;
	} else {
		snprintf(err, errlen, "api: '%s' is not auto, unix or dial-stdio", api);
		return RDHPF_ERR_INVAL;
	}
	if (socket[0] != '/' || strlen(socket) > 107) {
		snprintf(err, errlen, "socket: '%s' is not an absolute path of at most 107 bytes",
		         socket);
		return RDHPF_ERR_INVAL;
	}
	if (docker[0] == '\0') {
		snprintf(err, errlen, "docker: empty command");
		return RDHPF_ERR_INVAL;
	}
	const char *argv[] = {docker, "system", "dial-stdio", NULL};
	o.socket = socket;
	o.exec_argv = argv;
	o.events_filters = DOCKER_EVENT_FILTERS;
	o.parse_event = rt_docker_event;

	d = calloc(1, sizeof *d);
	if (d == NULL)
		return RDHPF_ERR_NOMEM;
	rt_base_init(&d->r, H, ctx, dk_free);
	d->e = eng_new(&d->r, &o);
	if (d->e == NULL) {
		free(d);
		return RDHPF_ERR_NOMEM;
	}
	*state = d;
	return RDHPF_OK;
}

static const struct rdhpf_runtime_ops ops = {
    .create = d_create,
    .destroy = d_destroy,
    .watch = d_watch,
    .list = d_list,
    .stop = d_stop,
};

static const struct rdhpf_option_desc options[] = {
    {"api", "auto (default): the remote socket if the transport can open it, else "
            "dial-stdio; unix; dial-stdio"},
    {"socket", "the Docker API socket on the remote (default /var/run/docker.sock)"},
    {"docker", "the docker command on the remote, for dial-stdio (default docker)"},
    {NULL, NULL},
};

static const struct rdhpf_plugin_info info = {
    .abi_major = RDHPF_ABI_MAJOR,
    .abi_minor = RDHPF_ABI_MINOR,
    .struct_size = sizeof(struct rdhpf_plugin_info),
    .kind = RDHPF_KIND_RUNTIME,
    .name = "docker",
    .version = "1.0.0",
    .description = "Docker Engine API: containers, published ports and events",
    .caps = RDHPF_RCAP_EVENTS,
    .options = options,
    .ops.runtime = &ops,
};

RDHPF_PLUGIN_DECLARE
{
	H = host;
	return &info;
}
