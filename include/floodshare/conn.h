/* conn.h - FLOOD/1 messages over one TCP connection.
 *
 * A conn owns a small read buffer so that bytes read past one header (the
 * next message, or the start of an ITEM body) are kept for the next call:
 * that is what makes framing exact ("sticky packets" cannot happen). */
#ifndef FLOODSHARE_CONN_H
#define FLOODSHARE_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "floodshare/msg.h"
#include "floodshare/status.h"

struct conn {
    int fd;         /* borrowed: conn never closes it */
    int timeout_ms; /* deadline for a whole header once its first byte came */
    int eof;        /* conn_fill() saw the other side close */
    size_t off, len;
    char buf[MSG_MAX_HEADER];
};

void conn_init(struct conn *c, int fd, int timeout_ms);

/* 1 when conn_read_msg() would not wait: a whole header is buffered, or
 * the bytes so far are already refused (too long, not FLOOD/1, ...). */
int conn_ready(const struct conn *c);

/* One read without waiting into the free part of the buffer. FS_OK when
 * bytes came, FS_NEED_MORE when none were there, FS_ECLOSED at end of
 * stream (c->eof is set), FS_EIO on a socket error. */
fs_status conn_fill(struct conn *c);

/* Reads the next message. Waits at most idle_ms for its first byte, then at
 * most c->timeout_ms for the whole header, so a peer that trickles one byte
 * a second cannot hold a worker. FS_OK; FS_ECLOSED on end of stream between
 * messages; FS_ETIMEDOUT; FS_EPROTO with *why (a constant sentence, the text
 * of the error reply) for a malformed header or a stream cut mid-header. */
fs_status conn_read_msg(struct conn *c, struct msg *m, int idle_ms, const char **why);

/* Reads exactly n body bytes into dst (buffered bytes first), each wait
 * bounded by c->timeout_ms. */
fs_status conn_read_body(struct conn *c, void *dst, size_t n);

/* Reads up to cap body bytes (at least 1): buffered bytes first, else one
 * read from the socket. */
fs_status conn_read_body_some(struct conn *c, void *dst, size_t cap, size_t *got);

/* Formats and sends one message. FS_EINVAL if m does not format. */
fs_status conn_send_msg(int fd, const struct msg *m, int timeout_ms);

/* Sends "ERROR code=... msg=..." (text is truncated to fit). */
fs_status conn_send_error(int fd, const char *code, const char *text, int timeout_ms);

#endif
