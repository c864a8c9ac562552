/* ctl.c - control socket transport: request line in, output lines out. */
#include "floodshare/ctl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "floodshare/cmd.h"
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
        size_t take = n < CTL_MAX_LINE ? n : CTL_MAX_LINE;
        line[0] = stream == 2 ? '2' : '1';
        line[1] = ' ';
        memcpy(line + 2, s, take);
        line[2 + take] = '\n';
        if (net_write_all(o->fd, line, take + 3, CTL_IO_TIMEOUT_MS) != FS_OK)
            o->broken = 1;
        n = nl ? n + 1 : n;
        s += n;
        len -= n;
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

void ctl_serve(struct peer *p, int fd)
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
    int code = cmd_run(p, argc, argv, &o);
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
static int relay_line(const char *s, size_t n, FILE *out, FILE *err)
{
    if (n >= 2 && s[0] == '=' && s[1] == ' ')
        return atoi(s + 2);
    if (n >= 2 && (s[0] == '1' || s[0] == '2') && s[1] == ' ') {
        FILE *f = s[0] == '1' ? out : err;
        fwrite(s + 2, 1, n - 2, f);
        fputc('\n', f);
        fflush(f);
    }
    return -1;
}

int ctl_call(const char *sock_path, int argc, char **argv, FILE *out, FILE *err)
{
    char buf[CTL_MAX_LINE + 8];
    size_t len = 0;
    int fd, code = -1;

    if (net_connect_unix(sock_path, 2000, &fd) != FS_OK)
        return CTL_EXIT_NOPEER;
    if (send_request(fd, argc, argv) < 0) {
        close(fd);
        fprintf(err, "floodshare: the command is too long\n");
        return CTL_EXIT_USAGE;
    }
    while (code < 0) {
        size_t got = 0;
        fs_status st = net_read_some(fd, buf + len, sizeof buf - len, &got, CTL_CLIENT_TIMEOUT_MS);
        if (st)
            break;
        len += got;
        char *nl;
        while (code < 0 && (nl = memchr(buf, '\n', len)) != NULL) {
            size_t n = (size_t)(nl - buf);
            code = relay_line(buf, n, out, err);
            memmove(buf, nl + 1, len - n - 1);
            len -= n + 1;
        }
        if (len == sizeof buf) /* a line longer than the peer ever sends */
            break;
    }
    close(fd);
    if (code < 0) {
        fprintf(err, "floodshare: the peer closed the control connection without an answer\n");
        return CTL_EXIT_FAIL;
    }
    return code;
}
