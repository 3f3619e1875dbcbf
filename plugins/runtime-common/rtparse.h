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

#define RT_LINE_MAX (1024u * 1024u)       /* one event line */
#define RT_BODY_MAX (16u * 1024u * 1024u) /* one non-streamed HTTP body / command output */
#define RT_HTTP_LINE_MAX 8192u            /* one status, header or chunk-size line */
#define RT_HTTP_HEAD_MAX 65536u           /* a response's whole head */
#define RT_MAX_PORTS 8192u                /* mappings kept per container */
#define RT_ID_MAX 64u
#define RT_NAME_MAX 255u
#define RT_IP_MAX 63u

/* ---- diagnostics ---- */

/* level is an RDHPF_LOG_*; id is the container (may be NULL); detail says
 * what was wrong (may be NULL). */
struct rt_diag {
	void (*fn)(void *arg, int level, const char *msg, const char *id, const char *detail);
	void *arg;
};

/* ---- containers ---- */

struct rt_port {
	char ip[RT_IP_MAX + 1];
	uint16_t host_port;
	uint16_t container_port;
	int proto; /* enum rdhpf_proto */
};

struct rt_cont {
	char id[RT_ID_MAX + 1];
	char name[RT_NAME_MAX + 1];
	int running;           /* inspect: State.Running; lists: 1 */
	struct rt_port *ports; /* malloc'd */
	size_t n_ports;
	size_t cap_ports;
	uint64_t dropped_ports; /* mappings past RT_MAX_PORTS: counted, not kept */
};

void rt_cont_init(struct rt_cont *c);
void rt_cont_clear(struct rt_cont *c);
void rt_conts_free(struct rt_cont *cs, size_t n);
/* Append a port; the caller validated it.  -1 on ENOMEM or when the
 * container already holds RT_MAX_PORTS. */
int rt_cont_add_port(struct rt_cont *c, const char *ip, uint16_t host_port, uint16_t container_port,
                     int proto);
/* Fill an ABI view of c.  ports must hold c->n_ports entries; its host_ip
 * pointers point into c. */
void rt_cont_view(const struct rt_cont *c, struct rdhpf_container *out, struct rdhpf_port *ports);

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

/* ---- line splitting ---- */

/* Called per complete line without its "\n" (a trailing "\r" is removed);
 * empty lines are not reported.  line == NULL: a line longer than max was
 * dropped (len: max), reported once per such line.  Return nonzero to stop
 * feeding at once (the splitter may be gone). */
typedef int (*rt_line_fn)(void *arg, const char *line, size_t len);

struct rt_lines {
	char *buf;
	size_t len, cap, max;
	int skipping; /* inside an oversized line: drop up to the next "\n" */
};

void rt_lines_init(struct rt_lines *l, size_t max);
void rt_lines_free(struct rt_lines *l);
/* 0: all fed; 1: fn asked to stop; -1: ENOMEM (the partial line is lost). */
int rt_lines_feed(struct rt_lines *l, const char *buf, size_t n, rt_line_fn fn, void *arg);

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
	char id[RT_ID_MAX + 1];
	char name[RT_NAME_MAX + 1];
	char action[32]; /* as the engine said it (truncated), for logs */
	int64_t time_ns; /* 0 if unknown */
};

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

/* Remote text for a log: copied printable (others become '?'), truncated
 * to outlen - 1 bytes, terminated. */
void rt_printable(char *out, size_t outlen, const char *s, size_t len);

/* Which reader the podman plugin's remote events script chose. */
enum { RT_PM_NONE = 0, RT_PM_FILE, RT_PM_JOURNALD, RT_PM_EVENTS };
/* The script's first line, "rdhpf-events KIND[ REST]" with KIND file,
 * journald or podman; REST (what it follows, or why it fell back) is
 * copied printable and truncated into rest.  -1 if line is not one. */
int rt_podman_reader_line(const char *line, size_t len, int *kind, char *rest, size_t restlen);

/* GET /containers/json: running containers with Ports[{IP, PrivatePort,
 * PublicPort, Type}].  Entries and ports that fail validation are skipped
 * with a diag.  *out is malloc'd (rt_conts_free). -1 if the body is not a
 * JSON array. */
int rt_docker_list(const char *body, size_t len, struct rt_cont **out, size_t *n,
                   const struct rt_diag *d);
/* `podman ps --format json`: Ports[{host_ip, container_port, host_port,
 * range, protocol}] where protocol may be "tcp,udp" and range > 1 means
 * consecutive ports. */
int rt_podman_ps(const char *body, size_t len, struct rt_cont **out, size_t *n,
                 const struct rt_diag *d);
/* GET /containers/ID/json (an object) or `podman container inspect` (an
 * array of them): NetworkSettings.Ports {"80/tcp": [{HostIp, HostPort}]}
 * and State.Running.  Every object is returned; -1 if the body is neither. */
int rt_inspect(const char *body, size_t len, struct rt_cont **out, size_t *n,
               const struct rt_diag *d);

/* The reason in an engine's error body ({"message": "..."}, or the text
 * itself), printable and truncated to outlen. */
void rt_api_error(const char *body, size_t len, char *out, size_t outlen);

#endif
