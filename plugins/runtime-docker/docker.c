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

static int
d_want_ports(struct rt *r, struct rt_item *it)
{
	return eng_want_ports(((struct dk *)r)->e, it);
}

static void
d_stop(void *state)
{
	struct dk *d = state;

	rt_stop(&d->r);
	eng_stop(d->e);
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
	rt_watch_begin(&d->r, cbs, arg);
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

/* ---- options: the same checks for check-config and create ---- */

static const char *const apis[] = {"auto", "unix", "dial-stdio", NULL};

static int
d_validate_option(const char *key, const char *value, char *err, size_t errlen)
{
	if (strcmp(key, "api") == 0)
		return rsdk_check_enum(value, apis, err, errlen);
	if (strcmp(key, "socket") == 0) {
		/* sun_path holds 108 bytes with the NUL. */
		if (strlen(value) > 107) {
			snprintf(err, errlen, "longer than 107 bytes (a Unix socket path)");
			return RDHPF_ERR_INVAL;
		}
		return rsdk_check_abs_path(value, err, errlen);
	}
	if (strcmp(key, "docker") == 0) {
		/* A command name or path, passed as one argv word. */
		if (value[0] == '/')
			return rsdk_check_abs_path(value, err, errlen);
		return rsdk_check_name(value, err, errlen);
	}
	snprintf(err, errlen, "unknown option");
	return RDHPF_ERR_INVAL;
}

/* The value of key, checked; def when unset.  NULL with err filled. */
static const char *
opt(struct rdhpf_ctx *ctx, const char *key, const char *def, char *err, size_t errlen)
{
	const char *v = H->option(ctx, key);
	char why[200];

	if (v == NULL)
		return def;
	if (d_validate_option(key, v, why, sizeof why) != RDHPF_OK) {
		snprintf(err, errlen, "%s: %s", key, why);
		return NULL;
	}
	return v;
}

static int
d_create(struct rdhpf_ctx *ctx, const struct rdhpf_host_params *p, void **state, char *err,
         size_t errlen)
{
	const char *api, *socket, *docker;
	struct eng_opts o;
	struct dk *d;

	(void)p;
	if ((api = opt(ctx, "api", "auto", err, errlen)) == NULL ||
	    (socket = opt(ctx, "socket", "/var/run/docker.sock", err, errlen)) == NULL ||
	    (docker = opt(ctx, "docker", "docker", err, errlen)) == NULL)
		return RDHPF_ERR_INVAL;
	memset(&o, 0, sizeof o);
	if (strcmp(api, "unix") == 0)
		o.mode = ENG_UNIX;
	else if (strcmp(api, "dial-stdio") == 0)
		o.mode = ENG_EXEC;
	else
		o.mode = ENG_AUTO;
	const char *argv[] = {docker, "system", "dial-stdio", NULL};
	o.socket = socket;
	o.exec_argv = argv;
	o.events_filters = DOCKER_EVENT_FILTERS;
	o.parse_event = rt_docker_event;

	d = calloc(1, sizeof *d);
	if (d == NULL)
		return RDHPF_ERR_NOMEM;
	rt_base_init(&d->r, H, ctx, dk_free, d_want_ports);
	d->e = eng_new(&d->r, &o);
	if (d->e == NULL) {
		free(d);
		return RDHPF_ERR_NOMEM;
	}
	*state = d;
	return RDHPF_OK;
}

static const struct rdhpf_runtime_ops ops = {
    RDHPF_INIT(rdhpf_runtime_ops),
    .create = d_create,
    .destroy = d_destroy,
    .watch = d_watch,
    .list = d_list,
    .stop = d_stop,
};

static const struct rdhpf_option_desc *const options[] = {
    RDHPF_OPTION("api", "auto (default): the remote socket if the transport can open it, else "
                        "dial-stdio; unix; dial-stdio"),
    RDHPF_OPTION("socket", "the Docker API socket on the remote (default /var/run/docker.sock)"),
    RDHPF_OPTION("docker", "the docker command on the remote, for dial-stdio (default docker)"),
    NULL,
};

static const struct rdhpf_plugin_info info = {
    .abi_major = RDHPF_ABI_MAJOR,
    .abi_minor = RDHPF_ABI_MINOR,
    .struct_size = sizeof(struct rdhpf_plugin_info),
    .kind = RDHPF_KIND_RUNTIME,
    .name = "docker",
    .version = "2.0.0",
    .description = "Docker Engine API: containers, published ports, images, labels and events",
    .caps = RDHPF_RCAP_EVENTS,
    .options = options,
    .validate_option = d_validate_option,
    .ops.runtime = &ops,
};

RDHPF_PLUGIN_DECLARE
{
	H = host;
	return &info;
}
