/* runtime-portfile: the example runtime of docs/plugins.md, built out of
 * tree with only the installed SDK:
 *
 *     cc -shared -fPIC -fvisibility=hidden -o runtime-portfile.so portfile.c \
 *         $(pkg-config --cflags --libs rdhpf-plugin)
 *
 * The remote host keeps a file of the services to forward, one a line:
 *
 *     # name  port...
 *     web     8080 8443
 *     db      5432
 *
 * and rdhpf forwards them, following the file as it changes.  Poll-only: no
 * watch slot, so the core calls list() every poll_interval; each list runs
 * one remote command, `cat FILE`.  Each line is one pseudo-container (its
 * name is the id), its ports published on the remote's 127.0.0.1. */
#define _POSIX_C_SOURCE 200809L /* strtok_r, also under -std=c17 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rdhpf/plugin.h>
#include <rdhpf/sdk.h>

#define PF_MAX_FILE (1u << 20) /* bound what the remote can make us read */

static const struct rdhpf_host_api *H; /* the core's services */

struct pf {
	struct rdhpf_ctx *ctx;
	char *file;
	struct rsdk_collect *coll; /* the remote command of a running list */
	rdhpf_list_fn done;        /* whom to answer */
	void *done_arg;
};

/* What a list parses into. */
struct pf_parse {
	struct pf *f;
	struct rsdk_cset *set;
};

/* check-config calls this for every key the host sets: no I/O here. */
static int
pf_validate(const char *key, const char *value, char *err, size_t errlen)
{
	if (strcmp(key, "file") == 0)
		return rsdk_check_abs_path(value, err, errlen);
	return RDHPF_OK;
}

static int
pf_create(struct rdhpf_ctx *ctx, const struct rdhpf_host_params *p, void **state, char *err,
          size_t errlen)
{
	const char *file = H->option(ctx, "file");
	char why[200];
	struct pf *f;
	(void)p; /* everything is in the options */

	/* Bad values fail here too, with a message naming the key. */
	if (file == NULL) {
		snprintf(err, errlen, "file: required (the remote file listing the ports)");
		return RDHPF_ERR_INVAL;
	}
	if (pf_validate("file", file, why, sizeof why) != RDHPF_OK) {
		snprintf(err, errlen, "file: %s", why);
		return RDHPF_ERR_INVAL;
	}
	if ((f = calloc(1, sizeof *f)) == NULL || (f->file = rsdk_strdup(file)) == NULL) {
		free(f);
		snprintf(err, errlen, "out of memory");
		return RDHPF_ERR_NOMEM;
	}
	f->ctx = ctx;
	*state = f;
	return RDHPF_OK;
}

/* Synchronous; no callback may follow it. */
static void
pf_stop(void *state)
{
	struct pf *f = state;

	if (f->coll != NULL)
		rsdk_collect_cancel(f->coll);
	f->coll = NULL;
}

static void
pf_destroy(void *state)
{
	struct pf *f = state;

	if (f == NULL)
		return;
	pf_stop(f);
	free(f->file);
	free(f);
}

/* One line of the file: "name port...".  A bad line is logged, skipped. */
static int
pf_line(void *arg, const char *line, size_t len)
{
	struct pf_parse *pp = arg;
	char buf[512], why[200] = "", *save = NULL;
	struct rsdk_cont c = {0};
	const char *name;
	int rc = RDHPF_OK;

	if (len >= sizeof buf)
		len = sizeof buf - 1;
	memcpy(buf, line, len);
	buf[len] = '\0';
	if ((name = strtok_r(buf, " \t", &save)) == NULL || name[0] == '#')
		return 0;
	if (rsdk_cont_init(&c, name, name) != RDHPF_OK)
		snprintf(why, sizeof why, "bad name");
	for (char *w; why[0] == '\0' && (w = strtok_r(NULL, " \t", &save)) != NULL;) {
		uint16_t port;
		if (rsdk_parse_port(w, &port, why, sizeof why) == RDHPF_OK)
			rc = rsdk_cont_add_port(&c, "127.0.0.1", port, port, RDHPF_PROTO_TCP);
	}
	if (why[0] != '\0') {
		char shown[120];
		rsdk_printable(shown, sizeof shown, line, len);
		RSDK_LOG(H, pp->f->ctx, RDHPF_LOG_WARN, "skipping a bad line", "file", pp->f->file,
		         "line", shown, "err", why);
	} else if (rc == RDHPF_OK) {
		rc = rsdk_cset_put(pp->set, &c);
	}
	rsdk_cont_clear(&c);
	return rc == RDHPF_OK ? 0 : 1; /* out of memory: stop */
}

/* The remote command ended: parse, answer the core. */
static void
pf_collected(void *arg, int status, int exit_code, const char *detail, const char *out, size_t len)
{
	struct pf *f = arg;
	struct rsdk_cset set = RSDK_CSET_INIT;
	struct rsdk_lines lines;
	struct pf_parse pp = {f, &set};
	rdhpf_list_fn done = f->done;
	void *done_arg = f->done_arg;

	f->coll = NULL;
	/* A non-zero exit is not a stream error: status is OK, the exit code
	 * says cat failed (no such file), and detail holds its stderr. */
	if (status == RDHPF_OK && exit_code != 0)
		status = RDHPF_ERR_REMOTE;
	if (status == RDHPF_OK) {
		rsdk_lines_init(&lines, 512);
		if (rsdk_lines_feed(&lines, out, len, pf_line, &pp) != 0 ||
		    rsdk_lines_finish(&lines, pf_line, &pp) != 0)
			status = RDHPF_ERR_NOMEM;
		rsdk_lines_free(&lines);
	}
	/* The core may stop or even destroy us inside done: only locals after. */
	if (status == RDHPF_OK)
		rsdk_list_reply(H, f->ctx, done, done_arg, &set);
	else
		done(done_arg, status, detail ? detail : "cat failed", NULL, 0);
	rsdk_cset_free(&set);
}

static int
pf_list(void *state, rdhpf_list_fn done, void *arg)
{
	struct pf *f = state;
	const char *argv[] = {"cat", "--", f->file, NULL};

	f->done = done;
	f->done_arg = arg;
	return rsdk_collect(H, f->ctx, argv, PF_MAX_FILE, pf_collected, f, &f->coll);
}

static const struct rdhpf_runtime_ops pf_ops = {
    RDHPF_INIT(rdhpf_runtime_ops),
    .create = pf_create,
    .destroy = pf_destroy,
    .list = pf_list,
    .stop = pf_stop,
    /* no .watch: poll-only (and no RDHPF_RCAP_EVENTS in caps) */
};

static const struct rdhpf_option_desc *const pf_options[] = {
    RDHPF_OPTION("file", "the remote file listing \"name port...\" lines (absolute path)"),
    NULL,
};

static const struct rdhpf_plugin_info pf_info = {
    .abi_major = RDHPF_ABI_MAJOR,
    .abi_minor = RDHPF_ABI_MINOR,
    .struct_size = sizeof(struct rdhpf_plugin_info),
    .kind = RDHPF_KIND_RUNTIME,
    .name = "portfile",
    .version = "1.0",
    .description = "the ports listed in a file on the remote host (docs/plugins.md)",
    .options = pf_options,
    .validate_option = pf_validate,
    .ops.runtime = &pf_ops,
};

RDHPF_PLUGIN_DECLARE
{
	H = host;
	return &pf_info;
}
