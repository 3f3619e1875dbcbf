/* transport-openssh: the ControlMaster's mux protocol (OpenSSH
 * PROTOCOL.mux, version 4), both directions, in memory: encoders append a
 * whole packet to a buffer, mux_decode reads one from bytes received.  No
 * I/O, no host API: unit-tested on its own (tests/unit/test_mux.c). */
#ifndef OSSH_MUX_H
#define OSSH_MUX_H

#include <stddef.h>
#include <stdint.h>

#include "rdhpf/sdk.h"

#define MUX_MSG_HELLO 0x00000001u
#define MUX_C_NEW_SESSION 0x10000002u
#define MUX_C_ALIVE_CHECK 0x10000004u
#define MUX_C_TERMINATE 0x10000005u
#define MUX_C_OPEN_FWD 0x10000006u
#define MUX_C_CLOSE_FWD 0x10000007u
#define MUX_C_NEW_STDIO_FWD 0x10000008u
#define MUX_S_OK 0x80000001u
#define MUX_S_PERMISSION_DENIED 0x80000002u
#define MUX_S_FAILURE 0x80000003u
#define MUX_S_EXIT_MESSAGE 0x80000004u
#define MUX_S_ALIVE 0x80000005u
#define MUX_S_SESSION_OPENED 0x80000006u
#define MUX_S_REMOTE_PORT 0x80000007u
#define MUX_S_TTY_ALLOC_FAIL 0x80000008u
#define MUX_FWD_LOCAL 1u
#define MUX_VERSION 4u
#define MUX_PORT_STREAMLOCAL 0xfffffffeu
#define MUX_NO_ESCAPE 0xffffffffu
/* Longest packet body either side accepts (the master's own bound). */
#define MUX_PACKET_MAX (256u * 1024u)

/* A string inside the decoded packet: not NUL-terminated, valid as long
 * as the bytes given to mux_decode; raw (rsdk_printable before logging). */
struct mux_str {
	const char *p;
	uint32_t len;
};

/* One decoded message.  Which members are set depends on type:
 *   HELLO                     version
 *   S_OK                      id (the request's)
 *   S_FAILURE, S_PERMISSION_DENIED  id, reason
 *   S_ALIVE                   id, value = the master's pid
 *   S_SESSION_OPENED          id, value = session id
 *   S_REMOTE_PORT             id, value = allocated port
 *   S_EXIT_MESSAGE            id = session id, value = exit value
 *   S_TTY_ALLOC_FAIL          id = session id
 *   C_ALIVE_CHECK, C_TERMINATE  id
 *   C_OPEN_FWD, C_CLOSE_FWD   id, fwd_type, lhost, lport, chost, cport
 *   C_NEW_STDIO_FWD           id, chost, cport
 *   C_NEW_SESSION             id, want_tty, escape, term, cmd
 *   another S_ type (newer)   id (0 when the body has none)
 * Members not set are zero. */
struct mux_msg {
	uint32_t type;
	uint32_t id;
	uint32_t version;
	uint32_t value;
	struct mux_str reason;
	uint32_t fwd_type;
	struct mux_str lhost, chost;
	uint32_t lport, cport;
	uint32_t want_tty, escape;
	struct mux_str term, cmd;
};

/* Encoders: append one whole packet (length, then body) to out.  0, or -1
 * on ENOMEM or a packet over MUX_PACKET_MAX; out is unchanged then. */
int mux_enc_hello(struct rsdk_buf *out);
/* A request that carries only its id: C_ALIVE_CHECK, C_TERMINATE. */
int mux_enc_request(struct rsdk_buf *out, uint32_t type, uint32_t id);
/* C_OPEN_FWD / C_CLOSE_FWD of a local forward (MUX_FWD_LOCAL); a port of
 * MUX_PORT_STREAMLOCAL makes that side a Unix socket path. */
int mux_enc_fwd(struct rsdk_buf *out, uint32_t type, uint32_t id, const char *lhost, uint32_t lport,
                const char *chost, uint32_t cport);
/* C_NEW_SESSION running cmd: no tty, no X11, no agent, no escape
 * character; the three stdio fds follow the packet (SCM_RIGHTS). */
int mux_enc_session(struct rsdk_buf *out, uint32_t id, const char *cmd);
/* C_NEW_STDIO_FWD to host:port (`ssh -W`); two fds follow the packet. */
int mux_enc_stdio_fwd(struct rsdk_buf *out, uint32_t id, const char *host, uint32_t port);

/* Decode the packet at the start of p[0..n).  Returns 1 with *m filled
 * and *used = its size in bytes; 0 when p holds only part of it (read
 * more; a length over MUX_PACKET_MAX is rejected at once); -1 when it is
 * malformed, with err saying what and where.  After -1 the stream cannot
 * be resynchronised: close it. */
int mux_decode(const void *p, size_t n, struct mux_msg *m, size_t *used, char *err, size_t errlen);

/* Is type an answer of the master (S_*), as opposed to a request (C_*)
 * or the hello? */
int mux_is_reply(uint32_t type);

#endif
