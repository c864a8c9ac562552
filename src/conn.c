/* conn.c - message framing over a socket, plain or TLS, with deadlines. */
#include "floodshare/conn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "floodshare/net.h"

void conn_init(struct conn *c, int fd, int timeout_ms)
{
    c->fd = fd;
    c->ssl = NULL;
    c->want_write = 0;
    c->timeout_ms = timeout_ms;
    c->eof = 0;
    c->off = c->len = 0;
}

void conn_set_tls(struct conn *c, SSL *ssl)
{
    int fl = fcntl(c->fd, F_GETFL);

    if (fl >= 0)
        fcntl(c->fd, F_SETFL, fl | O_NONBLOCK);
    c->ssl = ssl;
}

/* What an SSL call's result r means for a non-blocking caller: FS_OK (r >
 * 0), FS_NEED_MORE (c->want_write set to the direction), FS_ECLOSED, or
 * fail for a TLS error. The thread's OpenSSL error queue is left clean. */
static fs_status ssl_result(struct conn *c, int r, fs_status fail)
{
    if (r > 0)
        return FS_OK;
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        c->want_write = e == SSL_ERROR_WANT_WRITE;
        return FS_NEED_MORE;
    }
    if (e == SSL_ERROR_SYSCALL && errno == EINTR)
        return FS_NEED_MORE; /* nothing to wait for: poll returns at once */
    if (e != SSL_ERROR_SSL) /* keep the reason for tls_last_error() */
        ERR_clear_error();
    return e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && r == 0) ? FS_ECLOSED : fail;
}

fs_status conn_handshake_step(struct conn *c)
{
    ERR_clear_error();
    fs_status st = ssl_result(c, SSL_do_handshake(c->ssl), FS_EAUTH);
    return st == FS_ECLOSED || st == FS_EIO ? FS_EAUTH : st;
}

/* Waits for c's socket in the direction its last TLS call asked, or for
 * reading (plain), at most ms. 1 ready, 0 timed out, -1 error. */
static int wait_io(struct conn *c, int want_write, int ms)
{
    struct pollfd pfd = {.fd = c->fd, .events = want_write ? POLLOUT : POLLIN};
    int n;

    do {
        n = poll(&pfd, 1, ms); /* ms < 0: no deadline */
    } while (n < 0 && errno == EINTR);
    return n;
}

/* ms left until deadline (0 when past). */
static int left_ms(uint64_t deadline)
{
    uint64_t now = net_now_ms();
    return now >= deadline ? 0 : (int)(deadline - now);
}

fs_status conn_handshake(struct conn *c, int timeout_ms)
{
    uint64_t deadline = net_now_ms() + (uint64_t)timeout_ms;

    for (;;) {
        fs_status st = conn_handshake_step(c);
        if (st != FS_NEED_MORE)
            return st;
        int n = wait_io(c, c->want_write, left_ms(deadline));
        if (n == 0)
            return FS_ETIMEDOUT;
        if (n < 0)
            return FS_EIO;
    }
}

void conn_tls_bulk(struct conn *c)
{
    if (!c->ssl)
        return;
    BIO *wbio = SSL_get_wbio(c->ssl);
    if (BIO_method_type(wbio) == BIO_TYPE_BUFFER)
        return;
    BIO *buf = BIO_new(BIO_f_buffer());
    if (!buf || BIO_set_write_buffer_size(buf, CONN_BULK_BUF) != 1) {
        BIO_free(buf);
        return; /* one write per record: slower, not wrong */
    }
    SSL_clear_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS); /* busy: keep its record buffers */
    BIO_up_ref(wbio); /* SSL_set0_wbio takes the one it is given */
    SSL_set0_wbio(c->ssl, BIO_push(buf, wbio));
}

fs_status conn_flush(struct conn *c)
{
    BIO *wbio = c->ssl ? SSL_get_wbio(c->ssl) : NULL;

    if (!wbio || BIO_wpending(wbio) == 0)
        return FS_OK;
    if (BIO_flush(wbio) == 1)
        return FS_OK;
    c->want_write = 1;
    return BIO_should_retry(wbio) ? FS_NEED_MORE : FS_EIO;
}

int conn_pending(const struct conn *c)
{
    return c->ssl && SSL_pending(c->ssl) > 0;
}

int conn_wait_readable(struct conn *c, int ms)
{
    if (conn_pending(c))
        return 1;
    return net_wait_readable(c->fd, ms);
}

void conn_close(struct conn *c)
{
    if (c->ssl) {
        SSL_shutdown(c->ssl); /* one close_notify if the socket takes it now; never waits */
        SSL_free(c->ssl);
        ERR_clear_error();
        c->ssl = NULL;
    }
    close(c->fd);
}

fs_status conn_write_some(struct conn *c, const void *buf, size_t n, size_t *done)
{
    *done = 0;
    if (n == 0)
        return FS_OK;
    if (c->ssl) {
        size_t w = 0;
        /* A bulk conn's records gather in its buffer, which writes itself
         * out when full; the caller flushes the rest (conn_flush). */
        ERR_clear_error();
        fs_status st = ssl_result(c, SSL_write_ex(c->ssl, buf, n, &w), FS_EIO);
        *done = st == FS_OK ? w : 0;
        return st == FS_NEED_MORE ? FS_OK : st;
    }
    for (;;) {
        ssize_t w = send(c->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w >= 0) {
            *done = (size_t)w;
            return FS_OK;
        }
        if (errno == EINTR)
            continue;
        c->want_write = 1;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return FS_OK;
        return errno == EPIPE || errno == ECONNRESET ? FS_ECLOSED : FS_EIO;
    }
}

fs_status conn_write_all(struct conn *c, const void *buf, size_t n, int timeout_ms)
{
    const char *p = buf;

    if (!c->ssl)
        return net_write_all(c->fd, buf, n, timeout_ms);
    while (n > 0) {
        size_t w = 0;
        fs_status st = conn_write_some(c, p, n, &w);
        if (st)
            return st;
        if (w == 0) {
            int r = wait_io(c, c->want_write, timeout_ms);
            if (r == 0)
                return FS_ETIMEDOUT;
            if (r < 0)
                return FS_EIO;
        }
        p += w;
        n -= w;
    }
    fs_status st;
    while ((st = conn_flush(c)) == FS_NEED_MORE) {
        int r = wait_io(c, 1, timeout_ms);
        if (r == 0)
            return FS_ETIMEDOUT;
        if (r < 0)
            return FS_EIO;
    }
    return st;
}

/* Reads 1..cap bytes within timeout_ms, through the SSL when there is one. */
static fs_status read_some(struct conn *c, void *dst, size_t cap, size_t *got, int timeout_ms)
{
    if (!c->ssl)
        return net_read_some(c->fd, dst, cap, got, timeout_ms);
    uint64_t deadline = net_now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);

    *got = 0;
    for (;;) {
        ERR_clear_error();
        fs_status st = ssl_result(c, SSL_read_ex(c->ssl, dst, cap, got), FS_EIO);
        if (st != FS_NEED_MORE)
            return st;
        int n = wait_io(c, c->want_write, timeout_ms < 0 ? -1 : left_ms(deadline));
        if (n == 0)
            return FS_ETIMEDOUT;
        if (n < 0)
            return FS_EIO;
    }
}

static void compact(struct conn *c)
{
    if (c->off > 0) {
        memmove(c->buf, c->buf + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
}

int conn_ready(const struct conn *c)
{
    struct msg m;
    size_t used;

    /* Whatever msg_parse() can already decide, including a refusal of
     * bytes that no later byte could make a header (e.g. "hello"). */
    return msg_parse(c->buf + c->off, c->len - c->off, &m, &used, NULL) != FS_NEED_MORE;
}

fs_status conn_fill(struct conn *c)
{
    compact(c);
    if (c->len == sizeof c->buf)
        return FS_OK;
    if (c->ssl) {
        size_t got = 0;
        ERR_clear_error();
        fs_status st = ssl_result(c, SSL_read_ex(c->ssl, c->buf + c->len, sizeof c->buf - c->len,
                                                 &got), FS_EIO);
        if (st == FS_OK)
            c->len += got;
        else if (st == FS_ECLOSED)
            c->eof = 1;
        return st;
    }
    for (;;) {
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, MSG_DONTWAIT);
        if (r > 0) {
            c->len += (size_t)r;
            return FS_OK;
        }
        if (r == 0) {
            c->eof = 1;
            return FS_ECLOSED;
        }
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? FS_NEED_MORE : FS_EIO;
    }
}

fs_status conn_read_msg(struct conn *c, struct msg *m, int idle_ms, const char **why)
{
    uint64_t deadline = 0;
    fs_status st;

    *why = NULL;
    compact(c);
    for (;;) {
        size_t used = 0;
        if (c->len > 0) {
            st = msg_parse(c->buf, c->len, m, &used, why);
            if (st == FS_OK) {
                c->off = used;
                return FS_OK;
            }
            if (st != FS_NEED_MORE)
                return st;
            if (deadline == 0)
                deadline = net_now_ms() + (uint64_t)c->timeout_ms;
        }
        int wait = idle_ms;
        if (deadline) {
            uint64_t now = net_now_ms();
            wait = now >= deadline ? 0 : (int)(deadline - now);
        }
        size_t got = 0;
        st = read_some(c, c->buf + c->len, sizeof c->buf - c->len, &got, wait);
        if (st == FS_ECLOSED && c->len > 0) {
            *why = "connection closed in the middle of a header";
            return FS_EPROTO;
        }
        if (st)
            return st;
        c->len += got;
    }
}

fs_status conn_read_body_some(struct conn *c, void *dst, size_t cap, size_t *got)
{
    if (c->off < c->len) {
        size_t n = c->len - c->off;
        if (n > cap)
            n = cap;
        memcpy(dst, c->buf + c->off, n);
        c->off += n;
        *got = n;
        return FS_OK;
    }
    return read_some(c, dst, cap, got, c->timeout_ms);
}

fs_status conn_read_body(struct conn *c, void *dst, size_t n)
{
    char *p = dst;

    while (n > 0) {
        size_t got = 0;
        fs_status st = conn_read_body_some(c, p, n, &got);
        if (st)
            return st;
        p += got;
        n -= got;
    }
    return FS_OK;
}

fs_status conn_send_msg(struct conn *c, const struct msg *m, int timeout_ms)
{
    char line[MSG_MAX_HEADER];
    int n = msg_format(m, line, sizeof line);

    if (n < 0)
        return FS_EINVAL;
    return conn_write_all(c, line, (size_t)n, timeout_ms);
}

fs_status conn_send_error(struct conn *c, const char *code, const char *text, int timeout_ms)
{
    struct msg m;

    memset(&m, 0, sizeof m);
    m.type = MSG_ERROR;
    strncpy(m.code, code, sizeof m.code - 1);
    strncpy(m.text, text ? text : "", sizeof m.text - 1);
    return conn_send_msg(c, &m, timeout_ms);
}
