/* ctl.c - control socket transport: request line in, output lines out. */
#include "floodshare/ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "floodshare/log.h"
#include "floodshare/msg.h"
#include "floodshare/net.h"

#define CTL_IO_TIMEOUT_MS 5000        /* peer side: reading the request, writing output */
#define CTL_CLIENT_TIMEOUT_MS 3600000 /* client side: a command may run long (a big get) */

void ctl_write(struct ctl_out *o, int stream, const char *s, size_t len)
{
    char line[CTL_MAX_LINE + 4];

    while (len > 0 && !o->broken) {
        const char *nl = memchr(s, '\n', len);
        size_t n = nl ? (size_t)(nl - s) : len;
        /* A longer line (a big JSON document) goes out in pieces marked
         * "1+" (more of this line follows), the last one "1 ". */
        int more = n > CTL_MAX_LINE;
        size_t take = more ? CTL_MAX_LINE : n;
        line[0] = stream == 2 ? '2' : '1';
        line[1] = more ? '+' : ' ';
        memcpy(line + 2, s, take);
        line[2 + take] = '\n';
        if (net_write_all(o->fd, line, take + 3, CTL_IO_TIMEOUT_MS) != FS_OK)
            o->broken = 1;
        if (!more && nl)
            take++; /* the newline itself */
        s += take;
        len -= take;
    }
}

void ctl_print(struct ctl_out *o, int stream, const char *fmt, ...)
{
    char buf[CTL_MAX_LINE];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    ctl_write(o, stream, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

int ctl_parse_line(const char *buf, size_t len, char **argv, int max, char *storage, size_t cap,
                   const char **why)
{
    int argc = 0;
    size_t used = 0, i = 0;

    while (i < len) {
        while (i < len && buf[i] == ' ')
            i++;
        if (i == len)
            break;
        size_t start = i;
        while (i < len && buf[i] != ' ')
            i++;
        if (argc == max) {
            *why = "too many words in the command";
            return -1;
        }
        int n = msg_pct_decode(buf + start, i - start, storage + used, cap - used);
        if (n < 0) {
            *why = "bad percent escape, or the command is too long";
            return -1;
        }
        argv[argc++] = storage + used;
        used += (size_t)n + 1;
    }
    return argc;
}

volatile sig_atomic_t ctl_interrupted;

int ctl_format_progress(const struct ctl_progress *pr, char *out, size_t cap)
{
    char enc[3 * MSG_MAX_NAME + 1], src[24] = "";

    if (msg_pct_encode(pr->name, strlen(pr->name), enc, sizeof enc) < 0)
        return -1;
    if (pr->sources > 1)
        snprintf(src, sizeof src, " sources=%u", pr->sources);
    int n = snprintf(out, cap,
                     "done=%" PRIu64 " total=%" PRIu64 " resumed=%" PRIu64 " rate=%" PRIu64
                     " peer=%u holder=%s%s name=%s",
                     pr->done, pr->total, pr->resumed, pr->rate, pr->peer, pr->holder, src, enc);
    return n >= 0 && (size_t)n < cap ? n : -1;
}

void ctl_send_progress(struct ctl_out *o, const struct ctl_progress *pr)
{
    char line[CTL_MAX_LINE];

    if (o->broken)
        return;
    memcpy(line, "P ", 2);
    int n = ctl_format_progress(pr, line + 2, sizeof line - 3);
    if (n < 0)
        return;
    line[2 + n] = '\n';
    n += 3;
    if (n > 0 && (size_t)n < sizeof line &&
        net_write_all(o->fd, line, (size_t)n, CTL_IO_TIMEOUT_MS) != FS_OK)
        o->broken = 1;
}

void ctl_send_event(struct ctl_out *o, const char *text, size_t len)
{
    char line[CTL_MAX_LINE + 4];

    if (o->broken || len + 3 > sizeof line)
        return;
    memcpy(line, "E ", 2);
    memcpy(line + 2, text, len);
    line[len + 2] = '\n';
    if (net_write_all(o->fd, line, len + 3, CTL_IO_TIMEOUT_MS) != FS_OK)
        o->broken = 1;
}

int ctl_client_gone(struct ctl_out *o)
{
    char c;

    if (!o->broken && net_wait_readable(o->fd, 0) > 0 &&
        recv(o->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0)
        o->broken = 1;
    return o->broken;
}

/* The value of " key=" in s[0..len), copied into out; 0 if missing. */
static int progress_field(const char *s, size_t len, const char *key, char *out, size_t cap)
{
    size_t k = strlen(key);

    for (size_t i = 0; i + k < len; i++) {
        if ((i == 0 || s[i - 1] == ' ') && memcmp(s + i, key, k) == 0 && s[i + k] == '=') {
            size_t v = i + k + 1, e = v;
            while (e < len && s[e] != ' ')
                e++;
            if (e - v >= cap)
                return 0;
            memcpy(out, s + v, e - v);
            out[e - v] = '\0';
            return 1;
        }
    }
    return 0;
}

static int progress_u64(const char *s, size_t len, const char *key, uint64_t *out)
{
    char v[24], *end;

    if (!progress_field(s, len, key, v, sizeof v) || !v[0])
        return 0;
    *out = strtoull(v, &end, 10);
    return *end == '\0';
}

fs_status ctl_parse_progress(const char *s, size_t len, struct ctl_progress *out)
{
    char enc[3 * MSG_MAX_NAME + 1], v[24];
    uint64_t peer, sources = 1;

    memset(out, 0, sizeof *out);
    if (!progress_u64(s, len, "done", &out->done) || !progress_u64(s, len, "total", &out->total) ||
        !progress_u64(s, len, "resumed", &out->resumed) ||
        !progress_u64(s, len, "rate", &out->rate) || !progress_u64(s, len, "peer", &peer) ||
        !progress_field(s, len, "holder", out->holder, sizeof out->holder) ||
        !progress_field(s, len, "name", enc, sizeof enc) ||
        msg_pct_decode(enc, strlen(enc), out->name, sizeof out->name) < 0)
        return FS_EPROTO;
    /* Optional: absent means one source (an older peer, or a one-holder get). */
    if (progress_field(s, len, "sources", v, sizeof v) &&
        (!progress_u64(s, len, "sources", &sources) || sources < 1 || sources > CTL_SOURCES_MAX))
        return FS_EPROTO;
    out->peer = (unsigned)peer;
    out->sources = (unsigned)sources;
    return FS_OK;
}

static void finish(int fd, int code)
{
    char end[16];
    int n = snprintf(end, sizeof end, "= %d\n", code);
    net_write_all(fd, end, (size_t)n, CTL_IO_TIMEOUT_MS);
}

void ctl_refuse(int fd, const char *why)
{
    struct ctl_out o = {.fd = fd};
    ctl_print(&o, 2, "floodshare: %s", why);
    finish(fd, CTL_EXIT_FAIL);
}

/* Reads the request line (up to '\n') within the timeout. */
static int read_request(int fd, char *buf, size_t cap, size_t *len)
{
    uint64_t deadline = net_now_ms() + CTL_IO_TIMEOUT_MS;

    *len = 0;
    while (*len < cap) {
        uint64_t now = net_now_ms();
        size_t got = 0;
        if (now >= deadline)
            return -1;
        if (net_read_some(fd, buf + *len, cap - *len, &got, (int)(deadline - now)) != FS_OK)
            return -1;
        char *nl = memchr(buf + *len, '\n', got);
        *len += got;
        if (nl) {
            *len = (size_t)(nl - buf);
            return 0;
        }
    }
    return -1;
}

void ctl_serve(int fd, ctl_handler run, void *arg)
{
    char line[CTL_MAX_LINE], storage[CTL_MAX_LINE + CTL_MAX_ARGS];
    char *argv[CTL_MAX_ARGS];
    const char *why = "empty command";
    struct ctl_out o = {.fd = fd};
    size_t len;

    if (read_request(fd, line, sizeof line, &len) < 0) {
        ctl_refuse(fd, "no complete command line received in time (or longer than 4096 bytes)");
        return;
    }
    int argc = ctl_parse_line(line, len, argv, CTL_MAX_ARGS, storage, sizeof storage, &why);
    if (argc <= 0) {
        ctl_print(&o, 2, "floodshare: %s", why);
        finish(fd, CTL_EXIT_USAGE);
        return;
    }
    int code = run(arg, argc, argv, &o);
    if (!o.broken)
        finish(fd, code);
}

/* --- client side --- */

static int send_request(int fd, int argc, char **argv)
{
    char line[CTL_MAX_LINE];
    size_t used = 0;

    for (int i = 0; i < argc; i++) {
        if (i > 0 && used < sizeof line)
            line[used++] = ' ';
        int n = msg_pct_encode(argv[i], strlen(argv[i]), line + used, sizeof line - used);
        if (n < 0)
            return -1;
        used += (size_t)n;
    }
    if (used + 1 > sizeof line)
        return -1;
    line[used++] = '\n';
    return net_write_all(fd, line, used, CTL_IO_TIMEOUT_MS) == FS_OK ? 0 : -1;
}

/* Handles one complete response line; returns the exit code at "= N",
 * -1 to continue. */
static int relay_line(const char *s, size_t n, FILE *out, FILE *err, const struct ctl_view *v,
                      int *bar)
{
    if (n >= 2 && s[0] == '=' && s[1] == ' ')
        return atoi(s + 2);
    if (n >= 2 && s[0] == 'P' && s[1] == ' ') {
        struct ctl_progress pr;
        if (v && !v->quiet && v->progress && ctl_parse_progress(s + 2, n - 2, &pr) == FS_OK) {
            v->progress(v->ctx, &pr);
            *bar = 1;
        }
        return -1;
    }
    if (n >= 2 && s[0] == 'E' && s[1] == ' ') {
        if (v && v->event)
            v->event(v->ctx, s + 2, n - 2);
        return -1;
    }
    if (n >= 2 && (s[0] == '1' || s[0] == '2') && (s[1] == ' ' || s[1] == '+')) {
        if (s[0] == '1' && v && v->quiet)
            return -1;
        if (*bar && v && v->clear)
            v->clear(v->ctx);
        *bar = 0;
        FILE *f = s[0] == '1' ? out : err;
        fwrite(s + 2, 1, n - 2, f);
        if (s[1] == ' ') /* '+': the line goes on in the next piece */
            fputc('\n', f);
        fflush(f);
    }
    return -1;
}

/* Waits for the peer's output; returns 1 readable, 0 interrupted, -1 error.
 * poll() without a retry on EINTR, so that Ctrl-C is seen at once. */
static int wait_output(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};

    for (;;) {
        if (ctl_interrupted)
            return 0;
        int r = poll(&pfd, 1, CTL_CLIENT_TIMEOUT_MS);
        if (r > 0)
            return 1;
        if (r == 0 || errno != EINTR)
            return -1;
    }
}

int ctl_open(const char *sock_path, int argc, char **argv, int *fd)
{
    if (net_connect_unix(sock_path, 2000, fd) != FS_OK)
        return CTL_EXIT_NOPEER;
    if (send_request(*fd, argc, argv) < 0) {
        close(*fd);
        *fd = -1;
        return CTL_EXIT_USAGE;
    }
    return CTL_EXIT_OK;
}

int ctl_call(const char *sock_path, int argc, char **argv, FILE *out, FILE *err,
             const struct ctl_view *view)
{
    char buf[CTL_MAX_LINE + 8];
    size_t len = 0;
    int fd, code = -1, bar = 0, w = 1;

    if (net_connect_unix(sock_path, 2000, &fd) != FS_OK)
        return CTL_EXIT_NOPEER;
    if (send_request(fd, argc, argv) < 0) {
        close(fd);
        fprintf(err, "floodshare: the command is too long\n");
        return CTL_EXIT_USAGE;
    }
    while (code < 0 && (w = wait_output(fd)) > 0) {
        ssize_t got = recv(fd, buf + len, sizeof buf - len, 0);
        if (got <= 0)
            break;
        len += (size_t)got;
        char *nl;
        while (code < 0 && (nl = memchr(buf, '\n', len)) != NULL) {
            size_t n = (size_t)(nl - buf);
            code = relay_line(buf, n, out, err, view, &bar);
            memmove(buf, nl + 1, len - n - 1);
            len -= n + 1;
        }
        if (len == sizeof buf) /* a line longer than the peer ever sends */
            break;
    }
    close(fd); /* hanging up is what cancels a running command */
    if (bar && view && view->clear)
        view->clear(view->ctx);
    if (w == 0) {
        fprintf(err, "floodshare: interrupted\n");
        return 130;
    }
    if (code < 0) {
        fprintf(err, "floodshare: the peer closed the control connection without an answer\n");
        return CTL_EXIT_FAIL;
    }
    return code;
}

int ctl_capture(const char *sock_path, int argc, char **argv, char **text)
{
    size_t len = 0;
    *text = NULL;
    FILE *mem = open_memstream(text, &len);
    FILE *null = fopen("/dev/null", "w");
    int rc = CTL_EXIT_FAIL;

    if (mem && null)
        rc = ctl_call(sock_path, argc, argv, mem, null, NULL);
    if (mem)
        fclose(mem); /* sets *text */
    if (null)
        fclose(null);
    if (rc != CTL_EXIT_OK) {
        free(*text);
        *text = NULL;
    }
    return rc;
}
