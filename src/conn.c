/* conn.c - message framing over a socket, with deadlines. */
#include "floodshare/conn.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "floodshare/net.h"

void conn_init(struct conn *c, int fd, int timeout_ms)
{
    c->fd = fd;
    c->timeout_ms = timeout_ms;
    c->eof = 0;
    c->off = c->len = 0;
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
        st = net_read_some(c->fd, c->buf + c->len, sizeof c->buf - c->len, &got, wait);
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
    return net_read_some(c->fd, dst, cap, got, c->timeout_ms);
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

fs_status conn_send_msg(int fd, const struct msg *m, int timeout_ms)
{
    char line[MSG_MAX_HEADER];
    int n = msg_format(m, line, sizeof line);

    if (n < 0)
        return FS_EINVAL;
    return net_write_all(fd, line, (size_t)n, timeout_ms);
}

fs_status conn_send_error(int fd, const char *code, const char *text, int timeout_ms)
{
    struct msg m;

    memset(&m, 0, sizeof m);
    m.type = MSG_ERROR;
    strncpy(m.code, code, sizeof m.code - 1);
    strncpy(m.text, text ? text : "", sizeof m.text - 1);
    return conn_send_msg(fd, &m, timeout_ms);
}
