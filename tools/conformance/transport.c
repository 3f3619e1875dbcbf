/* Transport conformance: connect/health/disconnect, remote commands (output,
 * exit codes, stderr tail, words never parsed by a shell, stdin, close from
 * inside a callback), idempotent forwards and ADDRINUSE, and no handle left
 * after destroy.  Tests that connect need --url; forwards are checked end
 * to end with --forward-remote HOST:PORT (a TCP service the remote
 * reaches that sends a byte first, e.g. its own sshd). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "conf.h"

static const struct rdhpf_transport_ops *
T(void)
{
	return g_plugin->info->ops.transport;
}

struct tinst {
	struct rdhpf_ctx *ctx;
	struct rdhpf_host_params *hp;
	void *st;
	bool down;
};

struct done_res {
	bool called;
	bool in_op;
	bool inline_call;
	int status;
	char detail[1024];
};

static void
done_cb(void *arg, int status, const char *detail)
{
	struct done_res *d = arg;

	d->inline_call = d->in_op;
	d->called = true;
	d->status = status;
	snprintf(d->detail, sizeof d->detail, "%s", detail ? detail : "");
}

static void
on_down(void *arg, int status, const char *detail)
{
	struct tinst *t = arg;

	t->down = true;
}

static int
t_new(struct tinst **out, char *why, size_t len)
{
	struct tinst *t = calloc(1, sizeof *t);
	char err[512] = "";
	int r;

	*out = t;
	if (t == NULL)
		return -1;
	t->ctx = ctx_new(NULL, g_cfg.hosts[0].name, g_plugin, &g_cfg.hosts[0]);
	t->ctx->down_cb = on_down;
	t->ctx->down_arg = t;
	t->hp = host_params_new(&g_cfg.hosts[0], g_plugin, g_rundir);
	if ((r = T()->create(t->ctx, t->hp, &t->st, err, sizeof err)) != RDHPF_OK) {
		snprintf(why, len, "create: %d %s", r, err);
		t->st = NULL;
		return -1;
	}
	return 0;
}

/* Destroy, then name what the plugin left registered with its ctx. */
static int
t_free(struct tinst *t, char *why, size_t len)
{
	char leaks[4096] = "";

	if (t == NULL)
		return 0;
	if (t->st != NULL)
		T()->destroy(t->st);
	conf_ctx_free(t->ctx, leaks, sizeof leaks);
	host_params_free(t->hp);
	free(t);
	conf_sleep(20);
	if (leaks[0]) {
		snprintf(why, len, "leak after destroy: %s", leaks);
		return -1;
	}
	return 0;
}

static int
t_connect(struct tinst *t, char *why, size_t len)
{
	struct done_res d = {0};
	int r;

	d.in_op = true;
	r = T()->connect(t->st, done_cb, &d);
	d.in_op = false;
	if (r != RDHPF_OK) {
		snprintf(why, len, "connect returned %d", r);
		return -1;
	}
	if (!conf_wait(&d.called, 15000)) {
		snprintf(why, len, "connect: no answer in 15 s");
		return -1;
	}
	if (d.status != RDHPF_OK) {
		snprintf(why, len, "connect: %d %s", d.status, d.detail);
		return -1;
	}
	return 0;
}

struct exec_res {
	bool closed;
	bool data_after_close;
	int status, code;
	char out[65536];
	size_t out_len;
	char detail[1100];
	size_t closes;
	struct rdhpf_stream_cbs cbs;
	void *stream;
	struct tinst *t;
	bool close_on_data;
};

static void
ex_data(void *arg, const char *buf, size_t len)
{
	struct exec_res *e = arg;
	size_t room = sizeof e->out - 1 - e->out_len;
	size_t k = len < room ? len : room;

	if (e->closed)
		e->data_after_close = true;
	memcpy(e->out + e->out_len, buf, k);
	e->out_len += k;
	e->out[e->out_len] = '\0';
	if (e->close_on_data && !e->closed) {
		T()->stream_close(e->t->st, e->stream);
		e->closed = true; /* closed by us: no callback may follow */
	}
}

static void
ex_close(void *arg, int status, int code, const char *detail)
{
	struct exec_res *e = arg;

	e->closes++;
	e->closed = true;
	e->status = status;
	e->code = code;
	snprintf(e->detail, sizeof e->detail, "%s", detail ? detail : "");
}

static void
ex_init(struct exec_res *e, struct tinst *t)
{
	memset(e, 0, sizeof *e);
	e->t = t;
	e->cbs = (struct rdhpf_stream_cbs){RDHPF_INIT(rdhpf_stream_cbs), .on_data = ex_data,
	                                   .on_close = ex_close};
}

static int
run_exec(struct tinst *t, struct exec_res *e, const char *const *argv)
{
	int r;

	ex_init(e, t);
	if ((r = T()->exec(t->st, argv, &e->cbs, e, &e->stream)) != RDHPF_OK)
		return r;
	if (!conf_wait(&e->closed, 15000))
		return RDHPF_ERR_TIMEOUT;
	return RDHPF_OK;
}

static bool
has_exec(void)
{
	return (g_plugin->info->caps & RDHPF_TCAP_EXEC) != 0;
}

#define NEED_URL()                                                                                 \
	do {                                                                                       \
		if (g_args.url == NULL)                                                            \
			SKIP("no --url: nothing to connect to");                                   \
	} while (0)
#define NEED_EXEC()                                                                                \
	do {                                                                                       \
		if (!has_exec())                                                                   \
			SKIP("no RDHPF_TCAP_EXEC: no remote commands to check");                   \
	} while (0)
/* The common end of a test: destroy and check for leaks. */
#define FINISH()                                                                                   \
	do {                                                                                       \
		if (t_free(t, why, sizeof why) != 0 && rc == T_PASS) {                             \
			tc_why(tc, "%s", why);                                                     \
			rc = T_FAIL;                                                               \
		}                                                                                  \
	} while (0)

static int
t_info(struct tc *tc)
{
	const struct rdhpf_plugin_info *i = g_plugin->info;
	char why[256];
	int rc = T_PASS;

	CHECK(plugin_check_info(i, why, sizeof why) == 0, "%s", why);
	CHECK(i->kind == RDHPF_KIND_TRANSPORT, "kind %d is not RDHPF_KIND_TRANSPORT", i->kind);
	if (i->caps & RDHPF_TCAP_EXEC)
		CHECK(RDHPF_SLOT(T(), exec) != NULL, "RDHPF_TCAP_EXEC without exec");
	if (i->caps & RDHPF_TCAP_UNIX_STREAM)
		CHECK(RDHPF_SLOT(T(), open_unix) != NULL,
		      "RDHPF_TCAP_UNIX_STREAM without open_unix");
	if (i->caps & RDHPF_TCAP_FORWARD_STATS)
		CHECK(RDHPF_SLOT(T(), forward_stats) != NULL,
		      "RDHPF_TCAP_FORWARD_STATS without forward_stats");
	if (i->caps & (RDHPF_TCAP_EXEC | RDHPF_TCAP_UNIX_STREAM))
		CHECK(RDHPF_SLOT(T(), stream_write) != NULL &&
		          RDHPF_SLOT(T(), stream_close) != NULL,
		      "streams without stream_write/stream_close");
out:
	return rc;
}

static int
t_create_destroy(struct tc *tc)
{
	struct tinst *t = NULL;
	char why[2048] = "";
	int rc = T_PASS;

	if (t_new(&t, why, sizeof why) != 0)
		FAIL("%s", why);
out:
	FINISH();
	return rc;
}

static int
t_exec_before_connect(struct tc *tc)
{
	struct tinst *t = NULL;
	struct exec_res *e = malloc(sizeof *e);
	const char *argv[] = {"true", NULL};
	char why[2048] = "";
	int r, rc = T_PASS;

	if (!has_exec()) {
		free(e);
		SKIP("no RDHPF_TCAP_EXEC: no remote commands to check");
	}
	if (t_new(&t, why, sizeof why) != 0)
		FAIL("%s", why);
	r = run_exec(t, e, argv);
	if (r == RDHPF_OK) /* reported through on_close instead: must be an error */
		CHECK(e->status != RDHPF_OK, "exec before connect succeeded");
	else
		CHECK(r < 0 && r != RDHPF_ERR_TIMEOUT, "exec before connect: %d (no fast failure)",
		      r);
out:
	FINISH();
	free(e);
	return rc;
}

static int
t_connect_health(struct tc *tc)
{
	struct tinst *t = NULL;
	struct done_res d = {0};
	char why[2048] = "";
	int r, rc = T_PASS;

	NEED_URL();
	if (t_new(&t, why, sizeof why) != 0 || t_connect(t, why, sizeof why) != 0)
		FAIL("%s", why);
	d.in_op = true;
	r = T()->health_check(t->st, done_cb, &d);
	d.in_op = false;
	CHECK(r == RDHPF_OK, "health_check returned %d", r);
	CHECK(conf_wait(&d.called, 10000), "health_check: no answer in 10 s");
	CHECK(d.status == RDHPF_OK, "health_check: %d %s", d.status, d.detail);
	CHECK(!t->down, "report_down while the link is up");
	T()->disconnect(t->st);
	if (t_connect(t, why, sizeof why) != 0) /* connect may follow disconnect */
		FAIL("after disconnect: %s", why);
out:
	FINISH();
	return rc;
}

static int
t_exec_output(struct tc *tc)
{
	struct tinst *t = NULL;
	struct exec_res *e = malloc(sizeof *e);
	const char *echo[] = {"echo", "hello world", NULL};
	const char *ex3[] = {"sh", "-c", "exit 3", NULL};
	const char *err[] = {"sh", "-c", "echo oops-on-stderr >&2; exit 1", NULL};
	char why[2048] = "";
	int r, rc = T_PASS;

	if (g_args.url == NULL || !has_exec()) {
		free(e);
		NEED_URL();
		NEED_EXEC();
	}
	if (t_new(&t, why, sizeof why) != 0 || t_connect(t, why, sizeof why) != 0)
		FAIL("%s", why);
	CHECK((r = run_exec(t, e, echo)) == RDHPF_OK, "exec echo: %d", r);
	CHECK(strcmp(e->out, "hello world\n") == 0, "echo printed \"%.200s\"", e->out);
	CHECK(e->code == 0 && e->status == RDHPF_OK, "echo: status %d exit %d", e->status, e->code);
	CHECK(e->closes == 1, "on_close called %zu times", e->closes);
	CHECK((r = run_exec(t, e, ex3)) == RDHPF_OK, "exec exit 3: %d", r);
	CHECK(e->code == 3, "exit 3 gave exit code %d", e->code);
	CHECK(e->status == RDHPF_OK, "a non-zero exit is not a stream error (status %d)",
	      e->status);
	CHECK((r = run_exec(t, e, err)) == RDHPF_OK, "exec: %d", r);
	CHECK(e->code == 1, "exit 1 gave %d", e->code);
	CHECK(strstr(e->detail, "oops-on-stderr") != NULL,
	      "stderr tail missing from the detail "
	      "(got \"%s\")",
	      e->detail);
out:
	FINISH();
	free(e);
	return rc;
}

static int
t_exec_words(struct tc *tc)
{
	struct tinst *t = NULL;
	struct exec_res *e = malloc(sizeof *e);
	const char *hostile = "a'b\"c $(echo INJECTED) `id` ; echo INJECTED2 | & > /x *";
	const char *argv[] = {"printf", "%s", hostile, NULL};
	char why[2048] = "";
	int r, rc = T_PASS;

	if (g_args.url == NULL || !has_exec()) {
		free(e);
		NEED_URL();
		NEED_EXEC();
	}
	if (t_new(&t, why, sizeof why) != 0 || t_connect(t, why, sizeof why) != 0)
		FAIL("%s", why);
	CHECK((r = run_exec(t, e, argv)) == RDHPF_OK, "exec: %d", r);
	CHECK(strcmp(e->out, hostile) == 0, "a word was changed on the way: \"%.200s\"", e->out);
	CHECK(e->code == 0, "exit %d", e->code);
out:
	FINISH();
	free(e);
	return rc;
}

static int
t_stream_write(struct tc *tc)
{
	struct tinst *t = NULL;
	struct exec_res *e = malloc(sizeof *e);
	const char *head[] = {"head", "-c", "11", NULL};
	char why[2048] = "";
	int r, rc = T_PASS;

	if (g_args.url == NULL || !has_exec()) {
		free(e);
		NEED_URL();
		NEED_EXEC();
	}
	if (t_new(&t, why, sizeof why) != 0 || t_connect(t, why, sizeof why) != 0)
		FAIL("%s", why);
	ex_init(e, t);
	CHECK((r = T()->exec(t->st, head, &e->cbs, e, &e->stream)) == RDHPF_OK, "exec: %d", r);
	CHECK((r = T()->stream_write(t->st, e->stream, "ping pong\n!", 11)) == RDHPF_OK,
	      "stream_write: %d", r);
	CHECK(conf_wait(&e->closed, 15000), "no on_close in 15 s");
	CHECK(strcmp(e->out, "ping pong\n!") == 0, "read back \"%.200s\"", e->out);
	CHECK(e->code == 0, "exit %d", e->code);
out:
	FINISH();
	free(e);
	return rc;
}

static int
t_stream_close_in_callback(struct tc *tc)
{
	struct tinst *t = NULL;
	struct exec_res *e = malloc(sizeof *e);
	const char *argv[] = {"sh", "-c", "while :; do echo spam; done", NULL};
	char why[2048] = "";
	int r, rc = T_PASS;

	if (g_args.url == NULL || !has_exec()) {
		free(e);
		NEED_URL();
		NEED_EXEC();
	}
	if (t_new(&t, why, sizeof why) != 0 || t_connect(t, why, sizeof why) != 0)
		FAIL("%s", why);
	ex_init(e, t);
	e->close_on_data = true;
	CHECK((r = T()->exec(t->st, argv, &e->cbs, e, &e->stream)) == RDHPF_OK, "exec: %d", r);
	CHECK(conf_wait(&e->closed, 15000), "no data in 15 s");
	conf_sleep(300);
	CHECK(!e->data_after_close, "on_data after stream_close inside on_data");
	CHECK(e->closes == 0, "on_close after stream_close inside on_data");
out:
	FINISH();
	free(e);
	return rc;
}

static int
t_destroy_with_stream(struct tc *tc)
{
	struct tinst *t = NULL;
	struct exec_res *e = malloc(sizeof *e);
	const char *argv[] = {"sleep", "30", NULL};
	char why[2048] = "";
	int r, rc = T_PASS;

	if (g_args.url == NULL || !has_exec()) {
		free(e);
		NEED_URL();
		NEED_EXEC();
	}
	if (t_new(&t, why, sizeof why) != 0 || t_connect(t, why, sizeof why) != 0)
		FAIL("%s", why);
	ex_init(e, t);
	CHECK((r = T()->exec(t->st, argv, &e->cbs, e, &e->stream)) == RDHPF_OK, "exec: %d", r);
	conf_sleep(100);
out:
	FINISH();
	if (rc == T_PASS && e->closes != 0) {
		tc_why(tc, "on_close of a stream after destroy");
		rc = T_FAIL;
	}
	free(e);
	return rc;
}

static uint16_t
free_local_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	uint16_t p = 0;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &l) == 0)
		p = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return p;
}

static int
fwd_op(struct tinst *t, int add, struct rdhpf_forward *f, char *why, size_t len)
{
	struct done_res d = {0};
	int r;

	r = add ? T()->forward_add(t->st, f, done_cb, &d)
	        : T()->forward_remove(t->st, f, done_cb, &d);
	if (r != RDHPF_OK)
		return r;
	if (!conf_wait(&d.called, 10000)) {
		snprintf(why, len, "forward_%s: no answer in 10 s", add ? "add" : "remove");
		return RDHPF_ERR_TIMEOUT;
	}
	if (d.status != RDHPF_OK)
		snprintf(why, len, "%s", d.detail);
	return d.status;
}

/* Connect to 127.0.0.1:port while running the loop (the relay may live in
 * this process); 0 when a byte was read. */
static int
probe(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons(port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	uint64_t end = conf_now() + 5000;
	char c;
	int ok = -1;

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	while (conf_now() < end) {
		ssize_t n = read(fd, &c, 1);
		if (n == 1) {
			ok = 0;
			break;
		}
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != ENOTCONN))
			break;
		uv_run(core_loop(), UV_RUN_NOWAIT);
		usleep(2000);
	}
	close(fd);
	return ok;
}

static int
t_forward_idempotent(struct tc *tc)
{
	struct tinst *t = NULL;
	const char *remote = g_args.forward_remote;
	char rhost[64] = "127.0.0.1", why[2048] = "";
	struct rdhpf_forward f = {RDHPF_INIT(rdhpf_forward)};
	int r, rc = T_PASS;

	NEED_URL();
	f.remote_port = 9;
	if (remote != NULL) {
		const char *c = strrchr(remote, ':');
		if (c == NULL)
			FAIL("--forward-remote %s: want HOST:PORT", remote);
		snprintf(rhost, sizeof rhost, "%.*s", (int)(c - remote), remote);
		f.remote_port = (uint16_t)strtoul(c + 1, NULL, 10);
	}
	if (t_new(&t, why, sizeof why) != 0 || t_connect(t, why, sizeof why) != 0)
		FAIL("%s", why);
	f.bind_address = "127.0.0.1";
	f.local_port = free_local_port();
	f.remote_host = rhost;
	CHECK((r = fwd_op(t, 1, &f, why, sizeof why)) == RDHPF_OK, "forward_add: %d %s", r, why);
	CHECK((r = fwd_op(t, 1, &f, why, sizeof why)) == RDHPF_OK,
	      "forward_add of the same forward again (idempotent): %d %s", r, why);
	if (remote != NULL)
		CHECK(probe(f.local_port) == 0, "no byte through the forward to %s", remote);
	CHECK((r = fwd_op(t, 0, &f, why, sizeof why)) == RDHPF_OK, "forward_remove: %d %s", r, why);
	CHECK((r = fwd_op(t, 0, &f, why, sizeof why)) == RDHPF_OK,
	      "forward_remove of a removed forward (idempotent): %d %s", r, why);
	if (remote != NULL)
		CHECK(probe(f.local_port) != 0, "the forward still serves after forward_remove");
	if (remote == NULL)
		printf("# without --forward-remote: forwards not checked end to end\n");
out:
	FINISH();
	return rc;
}

static int
t_forward_addrinuse(struct tc *tc)
{
	struct tinst *t = NULL;
	struct rdhpf_forward f = {RDHPF_INIT(rdhpf_forward)};
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof a;
	char why[2048] = "";
	int fd = -1, r, rc = T_PASS;

	NEED_URL();
	fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 1) == 0 &&
	          getsockname(fd, (struct sockaddr *)&a, &l) == 0,
	      "local listener: %s", strerror(errno));
	if (t_new(&t, why, sizeof why) != 0 || t_connect(t, why, sizeof why) != 0)
		FAIL("%s", why);
	f.bind_address = "127.0.0.1";
	f.local_port = ntohs(a.sin_port);
	f.remote_host = "127.0.0.1";
	f.remote_port = 9;
	CHECK((r = fwd_op(t, 1, &f, why, sizeof why)) == RDHPF_ERR_ADDRINUSE,
	      "forward_add on a taken port: %d, not RDHPF_ERR_ADDRINUSE", r);
out:
	if (fd >= 0)
		close(fd);
	FINISH();
	return rc;
}

const struct conf_test transport_tests[] = {
    {"info", t_info},
    {"create-destroy-no-leak", t_create_destroy},
    {"exec-before-connect-fails-fast", t_exec_before_connect},
    {"connect-health-disconnect-reconnect", t_connect_health},
    {"exec-output-exit-code-stderr", t_exec_output},
    {"exec-words-never-parsed-by-a-shell", t_exec_words},
    {"stream-write-roundtrip", t_stream_write},
    {"stream-close-inside-callback", t_stream_close_in_callback},
    {"destroy-with-open-stream-no-leak", t_destroy_with_stream},
    {"forward-add-remove-idempotent", t_forward_idempotent},
    {"forward-on-taken-port-addrinuse", t_forward_addrinuse},
};
const size_t n_transport_tests = sizeof transport_tests / sizeof transport_tests[0];
