/* transport-openssh: the ControlMaster's mux protocol (OpenSSH
 * PROTOCOL.mux, version 4): packets built and read in memory, no I/O. */
#ifndef OSSH_MUX_H
#define OSSH_MUX_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* PROTOCOL.mux */
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
#define MUX_FWD_LOCAL 1u
#define MUX_VERSION 4u
#define MUX_PORT_STREAMLOCAL 0xfffffffeu
#define MUX_PACKET_MAX (256u * 1024u)

/* A packet under construction: body only; pkt_finish prepends the length. */
struct pkt {
	struct buf b;
	int err;
};

/* Reading a received packet body, bounded. */
struct rd {
	const unsigned char *p;
	size_t n;
	int err;
};

uint32_t get_u32(const unsigned char *p);
void pkt_u32(struct pkt *p, uint32_t v);
void pkt_str(struct pkt *p, const char *s);
int pkt_finish(struct pkt *p, struct buf *out);
uint32_t rd_u32(struct rd *r);
void rd_str(struct rd *r, char *out, size_t outlen);
int mux_hello(struct buf *out);

#endif
