/* tdriver: load one transport plugin and run a script of commands against
 * it on the core's loop, printing one result line per command with its
 * duration.  For e2e tests and benches, until a runtime plugin lets the
 * daemon itself be driven.
 *
 *   tdriver [options] [COMMAND ...]     (no COMMAND: one per line on stdin)
 *
 * options:
 *   --plugin-dir DIR     default $RDHPF_PLUGIN_DIR, else build/plugins
 *   --transport NAME     default openssh
 *   --url ssh://[user@]host[:port]
 *   --identity FILE  --known-hosts FILE  --bind ADDR (default 127.0.0.1)
 *   --runtime-dir DIR    created 0700 if missing (default /tmp/tdriver-PID,
 *                        removed at exit)
 *   --connect-timeout MS --keepalive MS --keepalive-count N --health MS
 *   --opt KEY=VALUE      a plugin option (repeatable)
 *   --supervise          on report_down: disconnect, reconnect after
 *                        --backoff MS (default 100), re-add the forwards
 *                        added so far (what the core's supervisor does)
 *   --log-level LEVEL    default warn; logs go to stderr
 *
 * commands:
 *   connect | disconnect | health
 *   add B:LP:RH:RP | remove B:LP:RH:RP
 *   exec CMD          sh -c CMD on the remote; prints "out| " lines
 *   execq CMD         the same, printing only the summary
 *   execin TEXT|CMD   exec CMD, write TEXT and a newline to its stdin
 *   unix PATH REQUEST open_unix, write REQUEST (\r \n escapes), print
 *                     the reply's first line and size
 *   sleep MS | wait-down MS | wait-up MS | print TEXT | stats | quit
 *   wait-file PATH    wait (polling every 10 ms) until PATH exists
 *   bench N B:LP:RH:RP    N add/remove cycles; median, p99, max in ms
 *   execs N CMD           N commands one after another; median, p99
 *
 * Every output line starts with t=<wall ms>. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "core.h"
#include "log.h"
#include "util.h"

#define MAX_OPTS 16
#define MAX_FWDS 256

struct fspec {
	char bind[64];
	uint16_t lport;
	char rhost[256];
	uint16_t rport;
};

struct drv {
	struct plugin_set ps;
	const struct plugin *p;
	struct rdhpf_ctx *ctx;
	struct rdhpf_host_params hp;
	struct cfg_host cfgh; /* only opts: what host->option() reads */
	struct cfg_opt kv[MAX_OPTS];
	struct ssh_url u;
	struct pinst *ti;

	char **cmds;
	size_t ncmd, ip;
	const char *cur; /* command being run */
	uv_timer_t step_t, wait_t, retry_t, poll_t;
	uint64_t t0_us; /* start of the current op */

	int supervise;
	uint64_t backoff_ms;
	int connected;
	int waiting_down, waiting_up;
	uint64_t down_at_us;
	unsigned long downs, ups;

	struct fspec books[MAX_FWDS];
	size_t nbooks;
	size_t restore_i; /* supervise: re-adding books[restore_i] */

	/* exec / unix */
	void *stream;
	int quiet;
	size_t out_bytes;
	char first_line[256];
	size_t fl_len;
	int fl_done;
	char linebuf[4096];
	size_t lb_len;

	/* bench / execs */
	unsigned long n, i;
	double *add_ms, *rm_ms;
	struct fspec bf;
	char *bcmd;
	int quit;
};

static struct drv D;

static void step_later(void);
static void supervise_reconnect(void);

static uint64_t
now_us(void)
{
	return uv_hrtime() / 1000u;
}

static long long
wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *
sname(int st)
{
	switch (st) {
	case RDHPF_OK:
		return "OK";
	case RDHPF_ERR_NOMEM:
		return "NOMEM";
	case RDHPF_ERR_INVAL:
		return "INVAL";
	case RDHPF_ERR_ABI:
		return "ABI";
	case RDHPF_ERR_IO:
		return "IO";
	case RDHPF_ERR_TIMEOUT:
		return "TIMEOUT";
	case RDHPF_ERR_CONNECT:
		return "CONNECT";
	case RDHPF_ERR_HOSTKEY:
		return "HOSTKEY";
	case RDHPF_ERR_AUTH:
		return "AUTH";
	case RDHPF_ERR_CLOSED:
		return "CLOSED";
	case RDHPF_ERR_ADDRINUSE:
		return "ADDRINUSE";
	case RDHPF_ERR_REMOTE:
		return "REMOTE";
	case RDHPF_ERR_PROTO:
		return "PROTO";
	case RDHPF_ERR_UNSUPPORTED:
		return "UNSUPPORTED";
	case RDHPF_ERR_BUSY:
		return "BUSY";
	case RDHPF_ERR_CANCELLED:
		return "CANCELLED";
	case RDHPF_ERR_NOTCONN:
		return "NOTCONN";
	default:
		return "GENERIC";
	}
}

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
out(const char *fmt, ...)
{
	va_list ap;

	printf("t=%lld ", wall_ms());
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static double
since_ms(uint64_t t0)
{
	return (double)(now_us() - t0) / 1000.0;
}

/* A result line: "<cmd> OK 1.234ms" or "<cmd> ERR <STATUS> 1.234ms <detail>". */
static void
result(const char *what, int status, const char *detail)
{
	double ms = since_ms(D.t0_us);

	if (status == RDHPF_OK)
		out("%s OK %.3fms%s%s", what, ms, detail ? " " : "", detail ? detail : "");
	else
		out("%s ERR %s %.3fms %s", what, sname(status), ms, detail ? detail : "-");
}

static int
parse_fspec(const char *s, struct fspec *f)
{
	char tmp[400], *a, *b, *c;
	uint64_t v;

	if (strlen(s) >= sizeof tmp)
		return -1;
	strcpy(tmp, s);
	a = strchr(tmp, ':');
	if (a == NULL)
		return -1;
	*a++ = '\0';
	b = strchr(a, ':');
	if (b == NULL)
		return -1;
	*b++ = '\0';
	c = strrchr(b, ':');
	if (c == NULL)
		return -1;
	*c++ = '\0';
	memset(f, 0, sizeof *f);
	str_copy(f->bind, tmp, sizeof f->bind);
	str_copy(f->rhost, b, sizeof f->rhost);
	if (parse_u64(a, 65535, &v) != 0 || v == 0)
		return -1;
	f->lport = (uint16_t)v;
	if (parse_u64(c, 65535, &v) != 0 || v == 0)
		return -1;
	f->rport = (uint16_t)v;
	return 0;
}

static void
to_fwd(const struct fspec *s, struct rdhpf_forward *f)
{
	f->bind_address = s->bind;
	f->local_port = s->lport;
	f->remote_host = s->rhost;
	f->remote_port = s->rport;
}

static void
books_add(const struct fspec *f)
{
	for (size_t i = 0; i < D.nbooks; i++) {
		if (D.books[i].lport == f->lport && strcmp(D.books[i].bind, f->bind) == 0) {
			D.books[i] = *f;
			return;
		}
	}
	if (D.nbooks < MAX_FWDS)
		D.books[D.nbooks++] = *f;
}

static void
books_remove(const struct fspec *f)
{
	for (size_t i = 0; i < D.nbooks; i++) {
		if (D.books[i].lport == f->lport && strcmp(D.books[i].bind, f->bind) == 0) {
			D.books[i] = D.books[--D.nbooks];
			return;
		}
	}
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void
print_stats(const char *what, double *v, unsigned long n)
{
	size_t p99;

	if (n == 0) {
		out("%s n=0", what);
		return;
	}
	qsort(v, n, sizeof *v, cmp_double);
	p99 = (size_t)((double)n * 0.99);
	if (p99 >= n)
		p99 = n - 1;
	out("%s n=%lu median=%.3fms p99=%.3fms min=%.3fms max=%.3fms", what, n, v[n / 2], v[p99],
	    v[0], v[n - 1]);
}

/* ---- plugin callbacks ---- */

static void
on_step_done(void *arg, int status, const char *detail)
{
	(void)arg;
	result(D.cur, status, detail);
	if (strcmp(D.cur, "connect") == 0) {
		if (status == RDHPF_OK) {
			D.connected = 1;
		} else if (D.supervise) {
			/* As the supervisor: back off, try again. */
			D.down_at_us = D.t0_us;
			tp_disconnect(D.ti);
			uv_timer_start(&D.retry_t, (uv_timer_cb)supervise_reconnect, D.backoff_ms,
			               0);
		}
	}
	step_later();
}

static void
on_add_done(void *arg, int status, const char *detail)
{
	(void)arg;
	result(D.cur, status, detail);
	step_later();
}

static void restore_next(void);

static void
on_restore_done(void *arg, int status, const char *detail)
{
	(void)arg;
	if (status != RDHPF_OK)
		out("restore-add ERR %s %s:%u %s", sname(status), D.books[D.restore_i].bind,
		    D.books[D.restore_i].lport, detail ? detail : "-");
	D.restore_i++;
	restore_next();
}

static void
restore_next(void)
{
	struct rdhpf_forward f;

	if (D.restore_i >= D.nbooks) {
		out("restored n=%zu since_down=%.3fms", D.nbooks, since_ms(D.down_at_us));
		D.ups++;
		if (D.waiting_up) {
			D.waiting_up = 0;
			uv_timer_stop(&D.wait_t);
			D.t0_us = D.down_at_us;
			result("wait-up", RDHPF_OK, NULL);
			step_later();
		}
		return;
	}
	to_fwd(&D.books[D.restore_i], &f);
	if (tp_forward_add(D.ti, &f, on_restore_done, NULL) != RDHPF_OK) {
		D.restore_i++;
		restore_next();
	}
}

static void
on_reconnect(void *arg, int status, const char *detail)
{
	(void)arg;
	if (status != RDHPF_OK) {
		out("reconnect ERR %s %s", sname(status), detail ? detail : "-");
		tp_disconnect(D.ti);
		uv_timer_start(&D.retry_t, (uv_timer_cb)supervise_reconnect, D.backoff_ms, 0);
		return;
	}
	D.connected = 1;
	out("reconnected since_down=%.3fms", since_ms(D.down_at_us));
	D.restore_i = 0;
	restore_next();
}

static void
supervise_reconnect(void)
{
	int r = tp_connect(D.ti, on_reconnect, NULL);

	if (r != RDHPF_OK) {
		out("reconnect ERR %s (refused)", sname(r));
		uv_timer_start(&D.retry_t, (uv_timer_cb)supervise_reconnect, D.backoff_ms, 0);
	}
}

static void
down_deferred(uv_timer_t *t)
{
	(void)t;
	tp_disconnect(D.ti);
	if (D.supervise)
		uv_timer_start(&D.retry_t, (uv_timer_cb)supervise_reconnect, D.backoff_ms, 0);
}

static uv_timer_t down_t;

static void
on_down(void *arg, int status, const char *detail)
{
	(void)arg;
	D.downs++;
	D.connected = 0;
	D.down_at_us = now_us();
	out("down %s %s", sname(status), detail ? detail : "-");
	if (D.waiting_down) {
		D.waiting_down = 0;
		uv_timer_stop(&D.wait_t);
		D.t0_us = D.down_at_us;
		result("wait-down", RDHPF_OK, NULL);
		step_later();
	}
	/* As the core does: never re-enter the plugin from its own frame. */
	uv_timer_start(&down_t, down_deferred, 0, 0);
}

/* exec / unix streams */

static void
stream_data(void *arg, const char *buf, size_t len)
{
	(void)arg;
	D.out_bytes += len;
	for (size_t i = 0; i < len; i++) {
		char c = buf[i];
		if (!D.fl_done) {
			if (c == '\n' || c == '\r' || D.fl_len + 1 >= sizeof D.first_line)
				D.fl_done = 1;
			else
				D.first_line[D.fl_len++] = c;
		}
		if (D.quiet)
			continue;
		if (c == '\n' || D.lb_len + 1 >= sizeof D.linebuf) {
			D.linebuf[D.lb_len] = '\0';
			out("out| %s", D.linebuf);
			D.lb_len = 0;
		} else {
			D.linebuf[D.lb_len++] = c;
		}
	}
}

static void
stream_close_cb(void *arg, int status, int code, const char *detail)
{
	char d[1400];
	(void)arg;

	D.stream = NULL;
	if (!D.quiet && D.lb_len > 0) {
		D.linebuf[D.lb_len] = '\0';
		out("out| %s", D.linebuf);
	}
	D.first_line[D.fl_len] = '\0';
	snprintf(d, sizeof d, "exit=%d bytes=%zu first=\"%s\"%s%s", code, D.out_bytes, D.first_line,
	         detail ? " stderr=" : "", detail ? detail : "");
	for (char *p = d; *p; p++)
		if (*p == '\n')
			*p = ' ';
	result(D.cur, status, d);
	step_later();
}

static const struct rdhpf_stream_cbs scbs = {
    RDHPF_INIT(rdhpf_stream_cbs),
    .on_data = stream_data,
    .on_close = stream_close_cb,
};

static void
stream_reset(void)
{
	D.out_bytes = 0;
	D.fl_len = 0;
	D.fl_done = 0;
	D.lb_len = 0;
	D.first_line[0] = '\0';
}

/* bench */

static void bench_step(void);

static void
bench_free(void)
{
	free(D.add_ms);
	free(D.rm_ms);
	D.add_ms = D.rm_ms = NULL;
}

static void
bench_rm_done(void *arg, int status, const char *detail)
{
	(void)arg;
	if (status != RDHPF_OK) {
		result("bench remove", status, detail);
		bench_free();
		step_later();
		return;
	}
	D.rm_ms[D.i] = since_ms(D.t0_us);
	D.i++;
	bench_step();
}

static void
bench_add_done(void *arg, int status, const char *detail)
{
	struct rdhpf_forward f;
	(void)arg;

	if (status != RDHPF_OK) {
		result("bench add", status, detail);
		bench_free();
		step_later();
		return;
	}
	D.add_ms[D.i] = since_ms(D.t0_us);
	to_fwd(&D.bf, &f);
	D.t0_us = now_us();
	if (tp_forward_remove(D.ti, &f, bench_rm_done, NULL) != RDHPF_OK) {
		result("bench remove", RDHPF_ERR_GENERIC, "refused");
		bench_free();
		step_later();
	}
}

static void
bench_step(void)
{
	struct rdhpf_forward f;

	if (D.i >= D.n) {
		print_stats("bench add", D.add_ms, D.n);
		print_stats("bench remove", D.rm_ms, D.n);
		bench_free();
		step_later();
		return;
	}
	to_fwd(&D.bf, &f);
	D.t0_us = now_us();
	if (tp_forward_add(D.ti, &f, bench_add_done, NULL) != RDHPF_OK) {
		result("bench add", RDHPF_ERR_GENERIC, "refused");
		bench_free();
		step_later();
	}
}

static void execs_step(void);

static void
execs_close(void *arg, int status, int code, const char *detail)
{
	(void)arg;
	D.stream = NULL;
	if (status != RDHPF_OK || code != 0) {
		char d[1200];
		snprintf(d, sizeof d, "i=%lu exit=%d %s", D.i, code, detail ? detail : "");
		result("execs", status != RDHPF_OK ? status : RDHPF_ERR_REMOTE, d);
		bench_free();
		step_later();
		return;
	}
	D.add_ms[D.i++] = since_ms(D.t0_us);
	execs_step();
}

static void
execs_data(void *arg, const char *buf, size_t len)
{
	(void)arg;
	(void)buf;
	D.out_bytes += len;
}

static const struct rdhpf_stream_cbs ecbs = {
    RDHPF_INIT(rdhpf_stream_cbs),
    .on_data = execs_data,
    .on_close = execs_close,
};

static void
execs_step(void)
{
	const char *argv[] = {"sh", "-c", D.bcmd, NULL};
	int r;

	if (D.i >= D.n) {
		print_stats("execs", D.add_ms, D.n);
		bench_free();
		step_later();
		return;
	}
	D.t0_us = now_us();
	r = tp_exec(D.ti, argv, &ecbs, NULL, &D.stream);
	if (r != RDHPF_OK) {
		char d[64];
		snprintf(d, sizeof d, "i=%lu refused", D.i);
		result("execs", r, d);
		bench_free();
		step_later();
	}
}

/* ---- the script ---- */

static void
wait_timeout(uv_timer_t *t)
{
	(void)t;
	if (D.waiting_down || D.waiting_up) {
		D.waiting_down = D.waiting_up = 0;
		result(D.cur, RDHPF_ERR_TIMEOUT, NULL);
		step_later();
	}
}

static char *wait_path;

static void
wait_file_cb(uv_timer_t *t)
{
	if (access(wait_path, F_OK) != 0)
		return;
	uv_timer_stop(t);
	result("wait-file", RDHPF_OK, NULL);
	step_later();
}

static void
sleep_done(uv_timer_t *t)
{
	(void)t;
	result("sleep", RDHPF_OK, NULL);
	step_later();
}

static void
unescape(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] == 'n') {
			*w++ = '\n';
			r++;
		} else if (r[0] == '\\' && r[1] == 'r') {
			*w++ = '\r';
			r++;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

static void
run_cmd(char *line)
{
	char *arg = strchr(line, ' ');
	struct fspec fs;
	struct rdhpf_forward f;
	uint64_t v;
	int r;

	if (arg) {
		*arg++ = '\0';
		while (*arg == ' ')
			arg++;
	} else {
		arg = line + strlen(line);
	}
	D.cur = line;
	D.t0_us = now_us();
	if (line[0] == '\0' || line[0] == '#') {
		step_later();
		return;
	}
	if (strcmp(line, "connect") == 0) {
		r = tp_connect(D.ti, on_step_done, NULL);
		if (r != RDHPF_OK) {
			result("connect", r, "refused");
			step_later();
		}
	} else if (strcmp(line, "disconnect") == 0) {
		tp_disconnect(D.ti);
		D.connected = 0;
		result("disconnect", RDHPF_OK, NULL);
		step_later();
	} else if (strcmp(line, "health") == 0) {
		r = tp_health(D.ti, on_step_done, NULL);
		if (r != RDHPF_OK) {
			result("health", r, "refused");
			step_later();
		}
	} else if (strcmp(line, "add") == 0 || strcmp(line, "remove") == 0) {
		if (parse_fspec(arg, &fs) != 0) {
			result(line, RDHPF_ERR_INVAL, "bad forward spec");
			step_later();
			return;
		}
		to_fwd(&fs, &f);
		if (line[0] == 'a') {
			books_add(&fs);
			r = tp_forward_add(D.ti, &f, on_add_done, NULL);
		} else {
			books_remove(&fs);
			r = tp_forward_remove(D.ti, &f, on_add_done, NULL);
		}
		if (r != RDHPF_OK) {
			result(line, r, "refused");
			step_later();
		}
	} else if (strcmp(line, "exec") == 0 || strcmp(line, "execq") == 0 ||
	           strcmp(line, "execin") == 0) {
		char *text = NULL;
		const char *argv[] = {"sh", "-c", arg, NULL};
		if (strcmp(line, "execin") == 0) {
			char *bar = strchr(arg, '|');
			if (bar == NULL) {
				result(line, RDHPF_ERR_INVAL, "execin TEXT|CMD");
				step_later();
				return;
			}
			*bar = '\0';
			text = arg;
			argv[2] = bar + 1;
		}
		stream_reset();
		D.quiet = strcmp(line, "execq") == 0;
		r = tp_exec(D.ti, argv, &scbs, NULL, &D.stream);
		if (r != RDHPF_OK) {
			result(line, r, "refused");
			step_later();
			return;
		}
		if (text != NULL) {
			unescape(text);
			if (tp_stream_write(D.ti, D.stream, text, strlen(text)) != RDHPF_OK ||
			    tp_stream_write(D.ti, D.stream, "\n", 1) != RDHPF_OK)
				out("execin write failed");
		}
	} else if (strcmp(line, "unix") == 0) {
		char *req = strchr(arg, ' ');
		if (req == NULL) {
			result(line, RDHPF_ERR_INVAL, "unix PATH REQUEST");
			step_later();
			return;
		}
		*req++ = '\0';
		unescape(req);
		stream_reset();
		D.quiet = 1;
		if (!tp_can_open_unix(D.ti)) {
			result(line, RDHPF_ERR_UNSUPPORTED, NULL);
			step_later();
			return;
		}
		r = tp_open_unix(D.ti, arg, &scbs, NULL, &D.stream);
		if (r != RDHPF_OK) {
			result(line, r, "refused");
			step_later();
			return;
		}
		if (tp_stream_write(D.ti, D.stream, req, strlen(req)) != RDHPF_OK)
			out("unix write failed");
	} else if (strcmp(line, "sleep") == 0) {
		if (parse_u64(arg, 3600000, &v) != 0)
			v = 0;
		uv_timer_start(&D.wait_t, sleep_done, v, 0);
	} else if (strcmp(line, "wait-down") == 0 || strcmp(line, "wait-up") == 0) {
		if (parse_u64(arg, 3600000, &v) != 0)
			v = 10000;
		if (line[5] == 'd')
			D.waiting_down = 1;
		else
			D.waiting_up = 1;
		uv_timer_start(&D.wait_t, wait_timeout, v, 0);
	} else if (strcmp(line, "wait-file") == 0) {
		wait_path = arg;
		uv_timer_start(&D.poll_t, wait_file_cb, 0, 10);
	} else if (strcmp(line, "print") == 0) {
		out("print %s", arg);
		step_later();
	} else if (strcmp(line, "stats") == 0) {
		size_t n;
		const struct metric *m = metrics_all(&n);
		for (size_t i = 0; i < n; i++) {
			if (m[i].type == 2)
				out("stat %s count=%llu sum=%.6f", m[i].name,
				    (unsigned long long)m[i].count, m[i].sum);
			else
				out("stat %s %.0f", m[i].name, m[i].value);
		}
		out("stat downs %lu", D.downs);
		out("stat ups %lu", D.ups);
		step_later();
	} else if (strcmp(line, "bench") == 0 || strcmp(line, "execs") == 0) {
		char *rest = strchr(arg, ' ');
		if (rest == NULL) {
			result(line, RDHPF_ERR_INVAL, "bench N SPEC / execs N CMD");
			step_later();
			return;
		}
		*rest++ = '\0';
		if (parse_u64(arg, 1000000, &v) != 0 || v == 0) {
			result(line, RDHPF_ERR_INVAL, "bad count");
			step_later();
			return;
		}
		D.n = v;
		D.i = 0;
		D.add_ms = calloc(v, sizeof(double));
		D.rm_ms = calloc(v, sizeof(double));
		if (line[0] == 'b') {
			if (parse_fspec(rest, &D.bf) != 0) {
				result(line, RDHPF_ERR_INVAL, "bad forward spec");
				bench_free();
				step_later();
				return;
			}
			bench_step();
		} else {
			D.bcmd = rest;
			execs_step();
		}
	} else if (strcmp(line, "quit") == 0) {
		D.quit = 1;
		out("quit");
		uv_stop(core_loop());
	} else {
		result(line, RDHPF_ERR_INVAL, "unknown command");
		step_later();
	}
}

static void
step_cb(uv_timer_t *t)
{
	(void)t;
	if (D.ip >= D.ncmd) {
		D.quit = 1;
		uv_stop(core_loop());
		return;
	}
	run_cmd(D.cmds[D.ip++]);
}

/* Never run the next command from inside a plugin callback. */
static void
step_later(void)
{
	uv_timer_start(&D.step_t, step_cb, 0, 0);
}

static void
usage(void)
{
	fprintf(stderr, "usage: tdriver [--url URL] [--identity F] [--known-hosts F] "
	                "[--runtime-dir D] [--opt K=V] [--supervise] [COMMAND ...]\n");
	exit(2);
}

static void
add_cmd(const char *s)
{
	D.cmds = xrealloc(D.cmds, (D.ncmd + 1) * sizeof *D.cmds);
	D.cmds[D.ncmd++] = xstrdup(s);
}

int
main(int argc, char **argv)
{
	const char *dir = getenv("RDHPF_PLUGIN_DIR"), *tname = "openssh", *url = NULL;
	const char *rundir = NULL;
	char uerr[256], perr[512], rd[512];
	int level = RDHPF_LOG_WARN, i, made_rundir = 0, status;
	size_t nkv = 0;
	uint64_t v;

	memset(&D, 0, sizeof D);
	D.backoff_ms = 100;
	D.hp.struct_size = sizeof D.hp;
	D.hp.bind_address = "127.0.0.1";
	D.hp.connect_timeout_ms = 10000;
	D.hp.keepalive_interval_ms = 5000;
	D.hp.keepalive_count = 3;
	D.hp.health_interval_ms = 15000;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV                                                                                      \
	do {                                                                                       \
		if (val == NULL)                                                                   \
			usage();                                                                   \
		i++;                                                                               \
	} while (0)
		if (strcmp(a, "--plugin-dir") == 0) {
			NEEDV;
			dir = val;
		} else if (strcmp(a, "--transport") == 0) {
			NEEDV;
			tname = val;
		} else if (strcmp(a, "--url") == 0) {
			NEEDV;
			url = val;
		} else if (strcmp(a, "--identity") == 0) {
			NEEDV;
			D.hp.identity_file = val;
		} else if (strcmp(a, "--known-hosts") == 0) {
			NEEDV;
			D.hp.known_hosts = val;
		} else if (strcmp(a, "--bind") == 0) {
			NEEDV;
			D.hp.bind_address = val;
		} else if (strcmp(a, "--runtime-dir") == 0) {
			NEEDV;
			rundir = val;
		} else if (strcmp(a, "--connect-timeout") == 0 || strcmp(a, "--keepalive") == 0 ||
		           strcmp(a, "--keepalive-count") == 0 || strcmp(a, "--health") == 0 ||
		           strcmp(a, "--backoff") == 0) {
			NEEDV;
			if (parse_u64(val, 86400000, &v) != 0)
				usage();
			if (a[2] == 'c')
				D.hp.connect_timeout_ms = v;
			else if (strcmp(a, "--keepalive") == 0)
				D.hp.keepalive_interval_ms = v;
			else if (a[2] == 'k')
				D.hp.keepalive_count = (uint32_t)v;
			else if (a[2] == 'h')
				D.hp.health_interval_ms = v;
			else
				D.backoff_ms = v;
		} else if (strcmp(a, "--opt") == 0) {
			char *eq;
			NEEDV;
			eq = strchr(val, '=');
			if (eq == NULL || nkv >= MAX_OPTS)
				usage();
			D.kv[nkv].key = xstrndup(val, (size_t)(eq - val));
			D.kv[nkv].value = (char *)(uintptr_t)(eq + 1);
			nkv++;
		} else if (strcmp(a, "--supervise") == 0) {
			D.supervise = 1;
		} else if (strcmp(a, "--log-level") == 0) {
			NEEDV;
			level = log_level_parse(val);
			if (level < 0)
				usage();
		} else if (a[0] == '-' && a[1] == '-') {
			usage();
		} else {
			add_cmd(a);
		}
	}
	if (D.ncmd == 0) {
		char line[8192];
		while (fgets(line, sizeof line, stdin)) {
			line[strcspn(line, "\r\n")] = '\0';
			add_cmd(line);
		}
	}
	log_init(stderr, LOG_LOGFMT, level, NULL);
	if (url == NULL || ssh_url_parse(url, &D.u, uerr, sizeof uerr) != 0) {
		fprintf(stderr, "tdriver: --url: %s\n", url ? uerr : "missing");
		return 2;
	}
	D.hp.host_name = "lab";
	D.hp.url = url;
	D.hp.user = D.u.user[0] ? D.u.user : NULL;
	D.hp.hostname = D.u.host;
	D.hp.port = D.u.port;
	D.hp.struct_size = sizeof D.hp;
	D.cfgh.name = (char *)(uintptr_t) "lab";
	D.cfgh.opts = D.kv;
	D.cfgh.n_opts = nkv;
	if (rundir == NULL) {
		snprintf(rd, sizeof rd, "/tmp/tdriver-%ld", (long)getpid());
		rundir = rd;
	}
	if (mkdir(rundir, 0700) == 0) {
		made_rundir = 1; /* ours: removed at exit */
	} else if (errno != EEXIST) {
		fprintf(stderr, "tdriver: mkdir %s: %s\n", rundir, strerror(errno));
		return 2;
	}
	D.hp.runtime_dir = rundir;
	if (dir == NULL)
		dir = "build/plugins";
	if (plugins_load_dir(dir, &core_host_api, &D.ps) != 0) {
		fprintf(stderr, "tdriver: %s\n", D.ps.dir_error);
		return 2;
	}
	D.p = plugins_find(&D.ps, RDHPF_KIND_TRANSPORT, tname);
	if (D.p == NULL) {
		fprintf(stderr, "tdriver: no transport plugin '%s' in %s\n", tname, dir);
		for (size_t k = 0; k < D.ps.n_refused; k++)
			fprintf(stderr, "  refused %s: %s\n", D.ps.refused[k].path,
			        D.ps.refused[k].why);
		return 2;
	}
	D.ctx = ctx_new(NULL, "lab", D.p, &D.cfgh);
	D.ctx->down_cb = on_down;
	D.ctx->down_arg = &D;
	D.ti = tp_create(D.p, D.ctx, &D.hp, &status, perr, sizeof perr);
	if (D.ti == NULL) {
		fprintf(stderr, "tdriver: create: %s\n", perr);
		return 2;
	}
	uv_timer_init(core_loop(), &D.step_t);
	uv_timer_init(core_loop(), &D.wait_t);
	uv_timer_init(core_loop(), &D.retry_t);
	uv_timer_init(core_loop(), &D.poll_t);
	uv_timer_init(core_loop(), &down_t);
	out("start pid=%ld transport=%s", (long)getpid(), tname);
	step_later();
	uv_run(core_loop(), UV_RUN_DEFAULT);

	/* Shut down as the daemon does: destroy, give children 1.5 s, kill. */
	uv_timer_stop(&D.retry_t);
	uv_timer_stop(&D.wait_t);
	uv_timer_stop(&down_t);
	tp_destroy(D.ti);
	ctx_free(D.ctx);
	{
		uint64_t t0 = now_us();
		while (core_live_children() > 0 && now_us() - t0 < 1500000)
			uv_run(core_loop(), UV_RUN_NOWAIT), usleep(5000);
		if (core_live_children() > 0) {
			out("children left after 1.5 s: %zu; SIGKILL", core_live_children());
			core_kill_children();
			for (int k = 0; k < 100 && core_live_children() > 0; k++)
				uv_run(core_loop(), UV_RUN_NOWAIT), usleep(5000);
		}
	}
	out("bye children=%zu", core_live_children());
	uv_close((uv_handle_t *)&D.step_t, NULL);
	uv_close((uv_handle_t *)&D.wait_t, NULL);
	uv_close((uv_handle_t *)&D.retry_t, NULL);
	uv_close((uv_handle_t *)&D.poll_t, NULL);
	uv_close((uv_handle_t *)&down_t, NULL);
	uv_run(core_loop(), UV_RUN_NOWAIT);
	plugins_unload(&D.ps);
	for (size_t k = 0; k < nkv; k++)
		free((void *)(uintptr_t)D.kv[k].key);
	for (size_t k = 0; k < D.ncmd; k++)
		free(D.cmds[k]);
	free(D.cmds);
	metrics_free();
	if (made_rundir && rmdir(rundir) != 0)
		fprintf(stderr, "tdriver: %s not removed: %s\n", rundir, strerror(errno));
	return 0;
}
