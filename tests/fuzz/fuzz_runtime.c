/* libFuzzer targets for the runtimes' parsing of remote data (untrusted):
 * event lines through the SDK's line splitter, list and inspect bodies (with
 * their HostIp check and, for podman, port ranges × protocols), HTTP
 * response framing.  FUZZ_PODMAN selects the podman parsers. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rdhpf/sdk.h"
#include "rtparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
diag(void *arg, int level, const char *msg, const char *id, const char *detail)
{
	(void)arg;
	(void)level;
	(void)msg;
	(void)id;
	(void)detail;
}

static const struct rt_diag D = {.fn = diag, .arg = NULL};

static int
on_line(void *arg, const char *line, size_t len)
{
	struct rt_event ev;
	(void)arg;
#ifdef FUZZ_PODMAN
	rt_podman_event(line, len, &ev, &D);
	rt_event_clear(&ev);
	rt_podman_journal_event(line, len, &ev, &D);
#else
	rt_docker_event(line, len, &ev, &D);
#endif
	/* what passes holds a valid id */
	if (ev.c.id != NULL && !rt_valid_id(ev.c.id, strlen(ev.c.id)))
		abort();
	rt_event_clear(&ev);
	return 0;
}

#ifndef FUZZ_PODMAN
static int
on_body(void *arg, const char *buf, size_t len)
{
	(void)arg;
	(void)buf;
	(void)len;
	return 0;
}
#endif

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct rsdk_lines l;
	struct rsdk_cset cs = RSDK_CSET_INIT;

	/* events: fed in two pieces, so splits land mid-line */
	rsdk_lines_init(&l, 4096);
	rsdk_lines_feed(&l, s, size / 2, on_line, NULL);
	rsdk_lines_feed(&l, s + size / 2, size - size / 2, on_line, NULL);
	rsdk_lines_finish(&l, on_line, NULL);
	rsdk_lines_free(&l);

	{
		/* A HostIp as the engine would send it: what passes must be an
		 * address, never a name or an option. */
		char ip[RT_IP_MAX + 1];
		size_t k = size < RT_IP_MAX ? size : RT_IP_MAX;
		memcpy(ip, s, k);
		ip[k] = '\0';
		if (rt_host_ip_ok(ip) && ip[0] != '\0' &&
		    strspn(ip, "0123456789abcdefABCDEF.:") != strlen(ip))
			abort();
	}
#ifdef FUZZ_PODMAN
	if (rt_podman_ps(s, size, &cs, &D) == 0) {
		/* the caps hold, however large the ranges */
		for (size_t i = 0; i < cs.n; i++)
			if (cs.v[i].n_ports > RT_MAX_PORTS || cs.v[i].n_labels > RT_MAX_LABELS)
				abort();
	}
	rsdk_cset_free(&cs);
#else
	rt_docker_list(s, size, &cs, &D);
	rsdk_cset_free(&cs);
	{
		struct rt_http h;
		size_t off = 0, used = 0;
		const char *why = NULL;
		int r;
		rt_http_reset(&h);
		for (int iter = 0; iter < 100000 && off <= size; iter++) {
			r = rt_http_feed(&h, s + off, size - off, &used, on_body, NULL, &why);
			off += used;
			if (r == RT_HTTP_DONE)
				rt_http_reset(&h);
			else if (r != RT_HTTP_HEAD)
				break;
			if (off == size && r != RT_HTTP_HEAD)
				break;
		}
		rt_http_eof(&h);
	}
#endif
	rt_inspect(s, size, 0, &cs, &D);
	rsdk_cset_free(&cs);
	return 0;
}
