/* See notify.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <uv.h>

#include "core.h"
#include "log.h"
#include "notify.h"
#include "util.h"

static int g_fd = -1;
static struct sockaddr_un g_sa;
static socklen_t g_salen;
static int g_ready;
static char g_last_status[160];
static uv_timer_t g_watchdog;
static int g_watchdog_on;
/* Hosts that have synced or failed once: settled for READY=1. */
static char **g_settled;
static size_t g_n_settled;

static void
send_msg(const char *msg)
{
	if (g_fd < 0)
		return;
	if (sendto(g_fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&g_sa, g_salen) < 0)
		log_kv(RDHPF_LOG_DEBUG, NULL, NULL, "NOTIFY_SOCKET send failed", "err",
		       strerror(errno), NULL);
}

static void
watchdog_cb(uv_timer_t *t)
{
	(void)t;
	send_msg("WATCHDOG=1");
}

int
notify_init(void)
{
	const char *p = getenv("NOTIFY_SOCKET");
	const char *wd = getenv("WATCHDOG_USEC"), *wpid = getenv("WATCHDOG_PID");
	size_t len;
	long long usec = 0;

	if (p == NULL || (*p != '/' && *p != '@') || (len = strlen(p)) >= sizeof g_sa.sun_path) {
		unsetenv("NOTIFY_SOCKET");
		return 0;
	}
	memset(&g_sa, 0, sizeof g_sa);
	g_sa.sun_family = AF_UNIX;
	memcpy(g_sa.sun_path, p, len);
	if (*p == '@')
		g_sa.sun_path[0] = '\0'; /* abstract namespace */
	g_salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (*p == '@' ? 0 : 1));
	g_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (wd != NULL && (wpid == NULL || strtol(wpid, NULL, 10) == (long)getpid()))
		usec = strtoll(wd, NULL, 10);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	if (g_fd < 0)
		return 0;
	if (usec > 0) {
		uint64_t every = (uint64_t)usec / 2000u;
		uv_timer_init(core_loop(), &g_watchdog);
		uv_timer_start(&g_watchdog, watchdog_cb, every ? every : 1, every ? every : 1);
		uv_unref((uv_handle_t *)&g_watchdog);
		g_watchdog_on = 1;
	}
	return 1;
}

void
notify_status_text(char *buf, size_t len, size_t up, size_t hosts, size_t active)
{
	snprintf(buf, len, "STATUS=%zu/%zu host%s up, %zu forward%s active", up, hosts,
	         hosts == 1 ? "" : "s", active, active == 1 ? "" : "s");
}

static int
settled(const char *name)
{
	for (size_t i = 0; i < g_n_settled; i++)
		if (strcmp(g_settled[i], name) == 0)
			return 1;
	return 0;
}

void
notify_update(struct host *const *hosts, size_t n)
{
	size_t up = 0, active = 0, n_settled = 0;
	char status[160];

	if (g_fd < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		enum host_state s = host_state(hosts[i]);
		const char *name = host_name(hosts[i]);
		if (s == HOST_STEADY)
			up++;
		active += host_active_forwards(hosts[i]);
		if (!settled(name) && (s == HOST_STEADY || s == HOST_BACKOFF ||
		                       s == HOST_BREAKER_OPEN || s == HOST_FAILED)) {
			g_settled = xrealloc(g_settled, (g_n_settled + 1) * sizeof *g_settled);
			g_settled[g_n_settled++] = xstrdup(name);
		}
		n_settled += settled(name);
	}
	notify_status_text(status, sizeof status, up, n, active);
	if (!g_ready && n_settled == n) {
		char msg[200];
		g_ready = 1;
		snprintf(msg, sizeof msg, "READY=1\n%s", status);
		send_msg(msg);
		snprintf(g_last_status, sizeof g_last_status, "%s", status);
		return;
	}
	if (strcmp(status, g_last_status) != 0) {
		send_msg(status);
		snprintf(g_last_status, sizeof g_last_status, "%s", status);
	}
}

void
notify_stopping(void)
{
	send_msg("STOPPING=1");
}

static void
noop_close(uv_handle_t *h)
{
	(void)h;
}

void
notify_close(void)
{
	if (g_watchdog_on) {
		uv_close((uv_handle_t *)&g_watchdog, noop_close);
		g_watchdog_on = 0;
	}
	if (g_fd >= 0)
		close(g_fd);
	g_fd = -1;
	for (size_t i = 0; i < g_n_settled; i++)
		free(g_settled[i]);
	free(g_settled);
	g_settled = NULL;
	g_n_settled = 0;
}
