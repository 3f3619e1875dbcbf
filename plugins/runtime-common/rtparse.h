/* Pure parsing for the runtime plugins: no I/O, no host API.
 *
 * Everything here takes bytes from the remote engine, which are untrusted:
 * lines are bounded (RT_LINE_MAX), HTTP heads and bodies are bounded,
 * container ids are checked to be hex before they go anywhere, ports are
 * checked to be 1..65535.  What a parser skips it reports through an
 * rt_diag so the I/O layer can log it with the host; a parser never
 * prints.  Unit-tested directly by tests/unit/test_runtime_parse.c. */
#ifndef RDHPF_RTPARSE_H
#define RDHPF_RTPARSE_H

#include <stddef.h>
#include <stdint.h>

#include "rdhpf/plugin.h"
#include "rdhpf/sdk.h"

#define RT_LINE_MAX (1024u * 1024u)       /* one event line */
#define RT_BODY_MAX (16u * 1024u * 1024u) /* one non-streamed HTTP body / command output */
#define RT_HTTP_LINE_MAX 8192u            /* one status, header or chunk-size line */
#define RT_HTTP_HEAD_MAX 65536u           /* a response's whole head */
#define RT_MAX_PORTS 4096u                /* mappings kept per container (the core's own cap) */
#define RT_ID_MAX 64u
#define RT_NAME_MAX 255u
#define RT_IP_MAX 63u

/* ---- diagnostics ---- */

/* level is an RDHPF_LOG_*; id is the container (may be NULL); detail says
 * what was wrong (may be NULL).  dropped (optional): n port mappings of
 * container id were past RT_MAX_PORTS and skipped (a metric). */
struct rt_diag {
	void (*fn)(void *arg, int level, const char *msg, const char *id, const char *detail);
	void *arg;
	void (*dropped)(void *arg, const char *id, uint64_t n);
};

/* ---- containers ----
 *
 * Containers are the SDK's (rdhpf/sdk.h: id, name, image, labels, ports),
 * kept by id in an rsdk_cset.  The parsers bound what they keep of remote
 * data: RT_MAX_PORTS mappings, RT_MAX_LABELS labels, RT_TEXT_MAX bytes of
 * an image or a label's key or value (longer ones are skipped, said in a
 * diag). */
#define RT_MAX_LABELS 256
#define RT_TEXT_MAX 1024

/* [0-9a-f]{12,64}: the only ids that ever reach a URL or an argv. */
int rt_valid_id(const char *s, size_t len);

/* A HostIp the engine reports becomes the forward's target as sshd sees it:
 * only "" (every address) and IPv4/IPv6 literals pass, never a name
 * ("evil.example.com") nor anything else a crafted engine could send. */
int rt_host_ip_ok(const char *ip);

/* "tcp"/"udp"/"sctp" (exactly, lower case) → RDHPF_PROTO_*; 0 otherwise. */
int rt_proto(const char *s, size_t len);

/* Port from a JSON-ish token: digits only, 1..65535.  -1 when invalid. */
int rt_port_str(const char *s, size_t len);

/* ---- time ---- */

/* RFC 3339 ("2006-01-02T15:04:05.999999999Z07:00") → ns since the epoch.
 * -1 on error. */
int rt_rfc3339_ns(const char *s, int64_t *out);
/* An HTTP IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") → seconds.  -1 on
 * error. */
int rt_http_date(const char *s, int64_t *out);

/* ---- line splitting ----
 *
 * Event streams are split by the SDK's rsdk_lines (bounded by
 * RT_LINE_MAX); an oversized line is counted there and makes the plugin
 * list again. */

/* ---- HTTP/1.1 responses ---- */

enum {
	RT_HTTP_MORE = 0, /* all input consumed, response not complete */
	RT_HTTP_HEAD = 1, /* the head just ended: status and headers are known */
	RT_HTTP_DONE = 2, /* the response ended; bytes after it were not consumed */
	RT_HTTP_STOP = 3, /* the body callback asked to stop */
	RT_HTTP_ERR = -1, /* malformed; *why says how */
};

/* Body bytes as they arrive (chunked framing removed).  Nonzero: stop. */
typedef int (*rt_body_fn)(void *arg, const char *buf, size_t len);

struct rt_http {
	int state;
	int status; /* after RT_HTTP_HEAD */
	int chunked;
	int has_length;
	int conn_close;
	int until_eof; /* body ends with the connection */
	int64_t date;  /* Date header (seconds), -1 if absent */
	uint64_t left; /* body or chunk bytes still to come */
	size_t head_bytes;
	size_t line_len;
	char line[RT_HTTP_LINE_MAX];
};

void rt_http_reset(struct rt_http *h);
/* Parse what buf holds; *used says how much of it was consumed.  Call
 * again with the rest after RT_HTTP_HEAD or RT_HTTP_DONE (reset first
 * after DONE), also when nothing is left: a response without a body is
 * DONE right after its HEAD.  RT_HTTP_MORE means all of buf is used. */
int rt_http_feed(struct rt_http *h, const char *buf, size_t len, size_t *used, rt_body_fn fn,
                 void *arg, const char **why);
/* The connection ended: RT_HTTP_DONE if that completes the response (a
 * body running to EOF), RT_HTTP_ERR otherwise. */
int rt_http_eof(const struct rt_http *h);
/* Nonzero while no byte of the current response has arrived. */
int rt_http_idle(const struct rt_http *h);

/* ---- engine data ---- */

enum rt_ev_kind {
	RT_EV_IGNORE = 0, /* a valid event that does not concern forwards */
	RT_EV_START = 1,
	RT_EV_STOP = 2,
};

struct rt_event {
	int kind;
	char action[32]; /* as the engine said it (truncated), for logs */
	int64_t time_ns; /* 0 if unknown */
	/* The container as the event tells it: id (validated hex), name,
	 * image and labels.  Empty (c.id NULL) for an event of another type.
	 * A START is answered from inspect, which is the truth; these serve
	 * STOPs and logs.  Free with rt_event_clear. */
	struct rsdk_cont c;
};

void rt_event_clear(struct rt_event *ev);

/* One line of `docker events --format '{{json .}}'` or of GET /events
 * (Docker, and Podman's Docker-compatible API).  0 or -1 (malformed, with
 * a diag). */
int rt_docker_event(const char *line, size_t len, struct rt_event *ev, const struct rt_diag *d);
/* One line of `podman events --format json`, 4.x ("Time" string) or 5.x
 * ("time"/"timeNano" integers); also a line of podman's events log file
 * (events_logger = file), which holds the same object with "Time". */
int rt_podman_event(const char *line, size_t len, struct rt_event *ev, const struct rt_diag *d);
/* One entry of `journalctl -o json` written by podman's journald events
 * logger: PODMAN_TYPE, PODMAN_EVENT, PODMAN_ID, PODMAN_NAME, PODMAN_TIME
 * (else __REALTIME_TIMESTAMP).  0 or -1 (malformed, with a diag). */
int rt_podman_journal_event(const char *line, size_t len, struct rt_event *ev,
                            const struct rt_diag *d);

/* Which reader the podman plugin's remote events script chose. */
enum { RT_PM_NONE = 0, RT_PM_FILE, RT_PM_JOURNALD, RT_PM_EVENTS };
/* The script's first line, "rdhpf-events KIND[ REST]" with KIND file,
 * journald or podman; REST (what it follows, or why it fell back) is
 * copied printable and truncated into rest.  -1 if line is not one. */
int rt_podman_reader_line(const char *line, size_t len, int *kind, char *rest, size_t restlen);

/* GET /containers/json: running containers with Image, Labels and
 * Ports[{IP, PrivatePort, PublicPort, Type}].  Entries and ports that fail
 * validation are skipped with a diag.  Fills out (emptied first); -1 if
 * the body is not a JSON array or on ENOMEM. */
int rt_docker_list(const char *body, size_t len, struct rsdk_cset *out, const struct rt_diag *d);
/* `podman ps --format json`: Image, Labels, Ports[{host_ip,
 * container_port, host_port, range, protocol}] where protocol may be
 * "tcp,udp" and range > 1 means consecutive ports.  Only State "running". */
int rt_podman_ps(const char *body, size_t len, struct rsdk_cset *out, const struct rt_diag *d);
/* GET /containers/ID/json (an object) or `podman container inspect` (an
 * array of them): Config.Image, Config.Labels, NetworkSettings.Ports
 * {"80/tcp": [{HostIp, HostPort}]}.  With running_only, only the
 * containers whose State.Running is true go into out (a start's truth);
 * without, all (ports looked up ahead, at create).  -1 if the body is
 * neither. */
int rt_inspect(const char *body, size_t len, int running_only, struct rsdk_cset *out,
               const struct rt_diag *d);

/* The reason in an engine's error body ({"message": "..."}, or the text
 * itself), printable and truncated to outlen. */
void rt_api_error(const char *body, size_t len, char *out, size_t outlen);

#endif
