/* A remote command's whole stdout, bounded. */
#include <stdlib.h>

#include "rdhpf/sdk.h"

struct rsdk_collect {
	const struct rdhpf_host_api *H;
	struct rdhpf_stream *s;
	rsdk_collect_fn fn;
	void *arg;
	struct rsdk_buf out;
	size_t max;
	int over; /* past max, or out of memory: the output is dropped */
};

static void
collect_data(void *arg, const char *buf, size_t len)
{
	struct rsdk_collect *c = arg;

	if (c->over)
		return;
	if (len > c->max - rsdk_buf_size(&c->out) ||
	    rsdk_buf_append(&c->out, buf, len) != RDHPF_OK) {
		/* Keep reading to the end: the command's exit code and
		 * stderr still say what happened. */
		c->over = 1;
		rsdk_buf_free(&c->out);
	}
}

static void
collect_close(void *arg, int status, int exit_code, const char *detail)
{
	struct rsdk_collect *c = arg;
	rsdk_collect_fn fn = c->fn;
	void *farg = c->arg;
	struct rsdk_buf out = c->out;
	int over = c->over;

	/* The core frees the stream after on_close; the collector goes
	 * before fn runs, so fn's owner forgets its pointer first. */
	free(c);
	if (over)
		fn(farg, RDHPF_ERR_PROTO, exit_code, "output too large", NULL, 0);
	else
		fn(farg, status, exit_code, detail, rsdk_buf_str(&out), rsdk_buf_size(&out));
	rsdk_buf_free(&out);
}

int
rsdk_collect(const struct rdhpf_host_api *H, struct rdhpf_ctx *ctx, const char *const *argv,
             size_t max, rsdk_collect_fn fn, void *arg, struct rsdk_collect **out)
{
	static const struct rdhpf_stream_cbs cbs = {
	    RDHPF_INIT(rdhpf_stream_cbs),
	    .on_data = collect_data,
	    .on_close = collect_close,
	};
	struct rsdk_collect *c = calloc(1, sizeof *c);
	int rc;

	if (out != NULL)
		*out = NULL;
	if (c == NULL)
		return RDHPF_ERR_NOMEM;
	c->H = H;
	c->fn = fn;
	c->arg = arg;
	c->max = max;
	rsdk_buf_init(&c->out);
	rc = H->stream_exec(ctx, argv, &cbs, c, &c->s);
	if (rc != RDHPF_OK) {
		free(c);
		return rc;
	}
	if (out != NULL)
		*out = c;
	return RDHPF_OK;
}

void
rsdk_collect_cancel(struct rsdk_collect *c)
{
	if (c == NULL)
		return;
	c->H->stream_close(c->s);
	rsdk_buf_free(&c->out);
	free(c);
}
