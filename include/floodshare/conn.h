/* conn.h - FLOOD/1 messages over one TCP connection, plain or under TLS.
 *
 * A conn owns a small read buffer so that bytes read past one header (the
 * next message, or the start of an ITEM body) are kept for the next call:
 * that is what makes framing exact ("sticky packets" cannot happen).
 *
 * Under TLS (conn_set_tls) every read and write goes through the conn's
 * SSL, on a non-blocking socket; the calls that wait do so with poll(2)
 * and the same deadlines as plain ones. Decrypted bytes can wait inside
 * the SSL where poll(2) does not see them: conn_pending() says so, and
 * whoever polls the socket must ask it first. A plain conn sends exactly
 * the bytes it did before TLS existed. */
#ifndef FLOODSHARE_CONN_H
#define FLOODSHARE_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "floodshare/msg.h"
#include "floodshare/status.h"

struct ssl_st;

struct conn {
    int fd;         /* borrowed by a plain conn; conn_close() closes it */
    struct ssl_st *ssl; /* NULL: plain; else owned, freed by conn_close() */
    int want_write; /* the last TLS call that could not go on waits to write */
    int timeout_ms; /* deadline for a whole header once its first byte came */
    int eof;        /* conn_fill() saw the other side close */
    size_t off, len;
    char buf[MSG_MAX_HEADER];
};

void conn_init(struct conn *c, int fd, int timeout_ms);

/* Puts c under TLS: c owns ssl from now on (made by tls_new_ssl() for
 * c->fd), and c->fd becomes non-blocking. Before any byte is read. */
void conn_set_tls(struct conn *c, struct ssl_st *ssl);

/* One step of the TLS handshake without waiting: FS_OK once done,
 * FS_NEED_MORE while it waits for the socket (c->want_write says which
 * way), FS_EAUTH when the other side failed the check (or is not TLS). */
fs_status conn_handshake_step(struct conn *c);

/* The whole handshake within timeout_ms: FS_OK, FS_EAUTH, FS_ETIMEDOUT. */
fs_status conn_handshake(struct conn *c, int timeout_ms);

/* 1 when decrypted bytes wait inside c's SSL (poll(2) would not wake). */
int conn_pending(const struct conn *c);

/* TLS bulk sending (an upload): TLS records are gathered in a buffer of
 * CONN_BULK_BUF bytes and leave in big writes instead of one write(2) per
 * 16 KiB record. Costs that buffer until conn_close(); no-op when plain or
 * already bulk. What a write leaves in it is sent by the next write, or by
 * conn_flush(); conn_write_all() returns only once it is all sent. */
#define CONN_BULK_BUF (256 * 1024)
void conn_tls_bulk(struct conn *c);

/* Sends what waits in c's TLS buffer without waiting: FS_OK when nothing
 * is left, FS_NEED_MORE while some is (wait for POLLOUT), FS_EIO. */
fs_status conn_flush(struct conn *c);

/* Waits until c has something to read (1) or ms passed (0); -1 on error. */
int conn_wait_readable(struct conn *c, int ms);

/* Frees c's SSL (after a close_notify it does not wait for) and closes
 * c->fd. */
void conn_close(struct conn *c);

/* Writes what it can of n bytes without waiting: *done gets the count.
 * FS_OK (maybe 0 bytes: wait for POLLOUT, or POLLIN when c->want_write is
 * 0), FS_ECLOSED, FS_EIO. A TLS write that wrote nothing must be repeated
 * with the same bytes first (the flood plane's queue keeps them). */
fs_status conn_write_some(struct conn *c, const void *buf, size_t n, size_t *done);

/* Writes all n bytes, each wait bounded by timeout_ms. */
fs_status conn_write_all(struct conn *c, const void *buf, size_t n, int timeout_ms);

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
fs_status conn_send_msg(struct conn *c, const struct msg *m, int timeout_ms);

/* Sends "ERROR code=... msg=..." (text is truncated to fit). */
fs_status conn_send_error(struct conn *c, const char *code, const char *text, int timeout_ms);

#endif
