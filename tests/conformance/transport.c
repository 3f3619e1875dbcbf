/* Transport conformance suite: one binary, run once per transport plugin
 * (argv[1] = the plugin's path).  Host parameters come from the environment
 * (see harness.h); capability bits decide what is skipped.
 *
 * Optional environment:
 *   RDHPF_CONF_FWD_REMOTE=HOST:PORT   a TCP service reachable from the
 *                                     remote; when set, forwards are checked
 *                                     end to end (connect and read a byte). */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *g_path;
static struct plugin_set g_ps;
static const struct plugin *g_p;
static const struct rdhpf_transport_ops *T;
static struct cfg g_cfg;
static char g_rundir[256];

struct tinst {
	struct rdhpf_ctx *ctx;
	struct rdhpf_host_params *hp;
	void *st;
	bool down;
	int down_status;
};

static void
on_down(void *arg, int status, const char *detail)
{
	struct tinst *t = arg;
	(void)detail;
	t->down = true;
	t->down_status = status;
}

static void
t_new(struct tinst *t)
{
	char err[256] = "";
	int r;

	memset(t, 0, sizeof *t);
	t->ctx = ctx_new(NULL, g_cfg.hosts[0].name, g_p, &g_cfg.hosts[0]);
	t->ctx->down_cb = on_down;
	t->ctx->down_arg = t;
	t->hp = host_params_new(&g_cfg.hosts[0], g_p, g_rundir);
	r = T->create(t->ctx, t->hp, &t->st, err, sizeof err);
	if (r != RDHPF_OK)
		fail_msg("create failed: %d %s", r, err);
}

static void
t_free(struct tinst *t)
{
	T->destroy(t->st);
	/* destroy must leave nothing registered with the core. */
	assert_int_equal(h_ctx_handles(t->ctx), 0);
	ctx_free(t->ctx);
	host_params_free(t->hp);
	h_sleep(20);
}

static void
t_connect(struct tinst *t)
{
	struct h_done d = {0};
	int r;

	d.in_op = true;
	r = T->connect(t->st, h_done_cb, &d);
	d.in_op = false;
	assert_int_equal(r, RDHPF_OK);
	assert_true(h_wait(&d.called, 15000));
	assert_false(d.called_inline);
	if (d.status != RDHPF_OK)
		fail_msg("connect: %d %s", d.status, d.detail);
}

struct exec_res {
	bool closed;
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
	size_t k = len < sizeof e->out - 1 - e->out_len ? len : sizeof e->out - 1 - e->out_len;

	assert_false(e->closed);
	memcpy(e->out + e->out_len, buf, k);
	e->out_len += k;
	e->out[e->out_len] = '\0';
	if (e->close_on_data) {
		T->stream_close(e->t->st, e->stream);
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

static int
run_exec(struct tinst *t, struct exec_res *e, const char *const *argv)
{
	int r;

	memset(e, 0, sizeof *e);
	e->t = t;
	e->cbs.on_data = ex_data;
	e->cbs.on_close = ex_close;
	r = T->exec(t->st, argv, &e->cbs, e, &e->stream);
	if (r != RDHPF_OK)
		return r;
	assert_true(h_wait(&e->closed, 15000));
	return RDHPF_OK;
}

/* ---- tests ---- */

static void
test_info(void **s)
{
	(void)s;
	char why[256];
	assert_int_equal(plugin_check_info(g_p->info, why, sizeof why), 0);
	assert_int_equal(g_p->info->kind, RDHPF_KIND_TRANSPORT);
	assert_int_equal(g_p->info->abi_major, RDHPF_ABI_MAJOR);
	if (g_p->info->caps & RDHPF_TCAP_UNIX_STREAM)
		assert_non_null(T->open_unix);
}

static void
test_create_destroy_without_connect(void **s)
{
	struct tinst t;
	(void)s;
	t_new(&t);
	t_free(&t);
}

static void
test_exec_before_connect_fails_fast(void **s)
{
	struct tinst t;
	struct exec_res e;
	const char *argv[] = {"true", NULL};
	(void)s;
	t_new(&t);
	int r = run_exec(&t, &e, argv);
	if (r == RDHPF_OK) /* reported through on_close instead: must be an error */
		assert_int_not_equal(e.status, RDHPF_OK);
	else
		assert_true(r < 0);
	t_free(&t);
}

static void
test_connect_health_disconnect(void **s)
{
	struct tinst t;
	struct h_done d = {0};
	(void)s;
	t_new(&t);
	t_connect(&t);
	d.in_op = true;
	assert_int_equal(T->health_check(t.st, h_done_cb, &d), RDHPF_OK);
	d.in_op = false;
	assert_true(h_wait(&d.called, 10000));
	assert_false(d.called_inline);
	assert_int_equal(d.status, RDHPF_OK);
	assert_false(t.down);
	T->disconnect(t.st);
	/* connect may follow disconnect */
	t_connect(&t);
	t_free(&t);
}

static void
test_exec_output_and_exit_code(void **s)
{
	struct tinst t;
	struct exec_res e;
	const char *echo[] = {"echo", "hello world", NULL};
	const char *ex3[] = {"sh", "-c", "exit 3", NULL};
	const char *err[] = {"sh", "-c", "echo oops-on-stderr >&2; exit 1", NULL};
	(void)s;
	t_new(&t);
	t_connect(&t);
	assert_int_equal(run_exec(&t, &e, echo), RDHPF_OK);
	assert_string_equal(e.out, "hello world\n");
	assert_int_equal(e.code, 0);
	assert_int_equal(e.closes, 1);
	assert_int_equal(run_exec(&t, &e, ex3), RDHPF_OK);
	assert_int_equal(e.code, 3);
	assert_int_equal(run_exec(&t, &e, err), RDHPF_OK);
	assert_int_equal(e.code, 1);
	assert_non_null(strstr(e.detail, "oops-on-stderr"));
	t_free(&t);
}

static void
test_exec_words_are_never_parsed_by_a_shell(void **s)
{
	struct tinst t;
	struct exec_res e;
	const char *hostile = "a'b\"c $(echo INJECTED) `id` ; echo INJECTED2 | & > /x *";
	const char *argv[] = {"printf", "%s", hostile, NULL};
	(void)s;
	t_new(&t);
	t_connect(&t);
	assert_int_equal(run_exec(&t, &e, argv), RDHPF_OK);
	assert_string_equal(e.out, hostile);
	assert_int_equal(e.code, 0);
	t_free(&t);
}

static void
test_stream_write_roundtrip(void **s)
{
	struct tinst t;
	struct exec_res e;
	const char *cat[] = {"head", "-c", "11", NULL};
	(void)s;
	t_new(&t);
	t_connect(&t);
	memset(&e, 0, sizeof e);
	e.t = &t;
	e.cbs.on_data = ex_data;
	e.cbs.on_close = ex_close;
	assert_int_equal(T->exec(t.st, cat, &e.cbs, &e, &e.stream), RDHPF_OK);
	assert_int_equal(T->stream_write(t.st, e.stream, "ping pong\n!", 11), RDHPF_OK);
	assert_true(h_wait(&e.closed, 15000));
	assert_string_equal(e.out, "ping pong\n!");
	assert_int_equal(e.code, 0);
	t_free(&t);
}

static void
test_stream_close_from_callback_stops_callbacks(void **s)
{
	struct tinst t;
	struct exec_res e;
	const char *argv[] = {"sh", "-c", "while :; do echo spam; done", NULL};
	(void)s;
	t_new(&t);
	t_connect(&t);
	memset(&e, 0, sizeof e);
	e.t = &t;
	e.close_on_data = true;
	e.cbs.on_data = ex_data;
	e.cbs.on_close = ex_close;
	assert_int_equal(T->exec(t.st, argv, &e.cbs, &e, &e.stream), RDHPF_OK);
	assert_true(h_wait(&e.closed, 15000));
	h_sleep(300);
	/* ex_data asserts no data after close; no on_close either */
	assert_int_equal(e.closes, 0);
	t_free(&t);
}

static void
test_destroy_with_open_stream_leaves_nothing(void **s)
{
	struct tinst t;
	struct exec_res e;
	const char *argv[] = {"sleep", "30", NULL};
	(void)s;
	t_new(&t);
	t_connect(&t);
	memset(&e, 0, sizeof e);
	e.cbs.on_data = ex_data;
	e.cbs.on_close = ex_close;
	assert_int_equal(T->exec(t.st, argv, &e.cbs, &e, &e.stream), RDHPF_OK);
	h_sleep(100);
	t_free(&t); /* asserts no handles left */
	assert_int_equal(e.closes, 0);
}

static uint16_t
free_local_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	uint16_t p;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	p = ntohs(a.sin_port);
	close(fd);
	return p;
}

static int
fwd_op(struct tinst *t, int add, const struct rdhpf_forward *f)
{
	struct h_done d = {0};
	int r;

	d.in_op = true;
	r = add ? T->forward_add(t->st, f, h_done_cb, &d) : T->forward_remove(t->st, f, h_done_cb, &d);
	d.in_op = false;
	if (r != RDHPF_OK)
		return r;
	assert_true(h_wait(&d.called, 10000));
	assert_false(d.called_inline);
	return d.status;
}

/* Connect to 127.0.0.1:port while running the loop (the relay may live in
 * this process); returns 0 when a byte was read. */
static int
probe(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	uint64_t end = h_now() + 5000;
	char c;
	int ok = -1;

	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	(void)!write(fd, "GET / HTTP/1.0\r\n\r\n", 18);
	while (h_now() < end) {
		ssize_t n = read(fd, &c, 1);
		if (n == 1) {
			ok = 0;
			break;
		}
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != ENOTCONN))
			break;
		if (n < 0 && errno == ENOTCONN)
			(void)!write(fd, "GET / HTTP/1.0\r\n\r\n", 18);
		uv_run(core_loop(), UV_RUN_NOWAIT);
		usleep(2000);
	}
	close(fd);
	return ok;
}

static void
test_forward_add_remove_idempotent(void **s)
{
	struct tinst t;
	const char *remote = getenv("RDHPF_CONF_FWD_REMOTE");
	char rhost[64] = "127.0.0.1";
	uint16_t rport = 9;
	struct rdhpf_forward f;
	(void)s;

	if (remote != NULL) {
		const char *c = strrchr(remote, ':');
		assert_non_null(c);
		snprintf(rhost, sizeof rhost, "%.*s", (int)(c - remote), remote);
		rport = (uint16_t)atoi(c + 1);
	}
	t_new(&t);
	t_connect(&t);
	f.bind_address = "127.0.0.1";
	f.local_port = free_local_port();
	f.remote_host = rhost;
	f.remote_port = rport;
	assert_int_equal(fwd_op(&t, 1, &f), RDHPF_OK);
	assert_int_equal(fwd_op(&t, 1, &f), RDHPF_OK); /* idempotent */
	if (remote != NULL)
		assert_int_equal(probe(f.local_port), 0);
	assert_int_equal(fwd_op(&t, 0, &f), RDHPF_OK);
	assert_int_equal(fwd_op(&t, 0, &f), RDHPF_OK); /* idempotent */
	if (remote != NULL)
		assert_int_not_equal(probe(f.local_port), 0);
	t_free(&t);
}

static void
test_forward_on_taken_port_is_addrinuse(void **s)
{
	struct tinst t;
	struct rdhpf_forward f;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof a;
	int fd;
	(void)s;

	if (getenv("RDHPF_CONF_FWD_REMOTE") == NULL) {
		skip(); /* a recording transport binds nothing */
		return;
	}
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	t_new(&t);
	t_connect(&t);
	f.bind_address = "127.0.0.1";
	f.local_port = ntohs(a.sin_port);
	f.remote_host = "127.0.0.1";
	f.remote_port = 9;
	assert_int_equal(fwd_op(&t, 1, &f), RDHPF_ERR_ADDRINUSE);
	close(fd);
	t_free(&t);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_info),
		cmocka_unit_test(test_create_destroy_without_connect),
		cmocka_unit_test(test_exec_before_connect_fails_fast),
		cmocka_unit_test(test_connect_health_disconnect),
		cmocka_unit_test(test_exec_output_and_exit_code),
		cmocka_unit_test(test_exec_words_are_never_parsed_by_a_shell),
		cmocka_unit_test(test_stream_write_roundtrip),
		cmocka_unit_test(test_stream_close_from_callback_stops_callbacks),
		cmocka_unit_test(test_destroy_with_open_stream_leaves_nothing),
		cmocka_unit_test(test_forward_add_remove_idempotent),
		cmocka_unit_test(test_forward_on_taken_port_is_addrinuse),
	};
	int rc;

	if (argc < 2) {
		fprintf(stderr, "usage: %s PLUGIN.so\n", argv[0]);
		return 2;
	}
	if (getenv("RDHPF_CONF_NEEDS_LAB") != NULL && getenv("RDHPF_CONF_URL") == NULL) {
		printf("SKIP: no lab (RDHPF_CONF_URL unset)\n");
		return 77;
	}
	g_path = argv[1];
	log_init(stderr, LOG_LOGFMT, RDHPF_LOG_WARN, h_now);
	g_p = h_load(&g_ps, g_path, RDHPF_KIND_TRANSPORT);
	if (g_p == NULL) {
		fprintf(stderr, "%s: not loadable as a transport plugin\n", g_path);
		return 1;
	}
	T = g_p->info->ops.transport;
	h_host_from_env(&g_cfg);
	snprintf(g_rundir, sizeof g_rundir, "/tmp/rdhpf-conf-XXXXXX");
	if (mkdtemp(g_rundir) == NULL)
		return 1;
	printf("transport conformance: %s (%s %s)\n", g_path, g_p->info->name, g_p->info->version);
	rc = cmocka_run_group_tests_name(g_p->info->name, tests, NULL, NULL);
	rmdir(g_rundir);
	cfg_free(&g_cfg);
	plugins_unload(&g_ps);
	return rc;
}
