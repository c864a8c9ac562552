/* net.c - sockets with deadlines, on top of poll(2). */
#include "floodshare/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

uint64_t net_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static fs_status resolve(const char *host, uint16_t port, int passive, struct addrinfo **res)
{
    struct addrinfo hints;
    char service[8];

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    snprintf(service, sizeof service, "%u", (unsigned)port);
    return getaddrinfo(host, service, &hints, res) == 0 ? FS_OK : FS_ECONNECT;
}

fs_status net_listen_tcp(const char *host, uint16_t port, int *fd, uint16_t *bound)
{
    struct addrinfo *res = NULL;
    fs_status st = resolve(host, port, 1, &res);
    int s = -1, one = 1;

    *fd = -1;
    if (st)
        return st;
    s = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    /* "::" serves IPv4 neighbours too (dual-stack), as 0.0.0.0 serves every
     * IPv4 address: one listener, whatever net.ipv6.bindv6only says. */
    int v6only = 0;
    if (s >= 0 && res->ai_family == AF_INET6 &&
        setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) < 0) {
        st = FS_ECONNECT;
        goto out;
    }
    if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(s, res->ai_addr, res->ai_addrlen) < 0 || listen(s, 128) < 0) {
        st = FS_ECONNECT;
        goto out;
    }
    if (bound) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        getsockname(s, (struct sockaddr *)&ss, &sl);
        *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                : ((struct sockaddr_in *)&ss)->sin_port);
    }
    *fd = s;
    s = -1;
out:
    if (s >= 0) {
        int saved = errno;
        close(s);
        errno = saved;
    }
    freeaddrinfo(res);
    return st;
}

static fs_status unix_addr(const char *path, struct sockaddr_un *sun)
{
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sun->sun_path)
        return FS_ETOOBIG;
    strcpy(sun->sun_path, path);
    return FS_OK;
}

fs_status net_listen_unix(const char *path, int *fd)
{
    struct sockaddr_un sun;
    int s, probe;

    *fd = -1;
    if (unix_addr(path, &sun))
        return FS_ETOOBIG;
    /* A socket file left by a killed peer would make bind() fail; replace
     * it, but only when nothing answers on it. */
    if (net_connect_unix(path, 500, &probe) == FS_OK) {
        close(probe);
        return FS_EEXIST;
    }
    unlink(path);
    s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return FS_EIO;
    /* umask makes the file 0600 from the start: no window where another
     * user could connect before a chmod. */
    mode_t old = umask(0177);
    int rc = bind(s, (struct sockaddr *)&sun, sizeof sun);
    umask(old);
    if (rc < 0 || listen(s, 16) < 0) {
        close(s);
        return FS_EIO;
    }
    *fd = s;
    return FS_OK;
}

/* Completes a non-blocking connect() within timeout_ms. */
static fs_status connect_wait(int s, const struct sockaddr *sa, socklen_t len, int timeout_ms)
{
    int flags = fcntl(s, F_GETFL);
    int err = 0;
    socklen_t el = sizeof err;

    fcntl(s, F_SETFL, flags | O_NONBLOCK);
    if (connect(s, sa, len) < 0) {
        if (errno != EINPROGRESS)
            return FS_ECONNECT;
        struct pollfd pfd = {.fd = s, .events = POLLOUT};
        int n;
        do {
            n = poll(&pfd, 1, timeout_ms);
        } while (n < 0 && errno == EINTR);
        if (n == 0)
            return FS_ETIMEDOUT;
        if (n < 0 || getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
            errno = err;
            return FS_ECONNECT;
        }
    }
    fcntl(s, F_SETFL, flags);
    return FS_OK;
}

fs_status net_connect_tcp(const struct fs_addr *to, int timeout_ms, int *fd)
{
    return net_connect_tcp_from(to, NULL, timeout_ms, fd);
}

/* Binds s to host (port 0) when host is a local address of s's family;
 * otherwise leaves the choice to the kernel. */
static void bind_source(int s, int family, const char *host)
{
    struct addrinfo *src = NULL;

    if (!host || !*host || !strcmp(host, "0.0.0.0") || !strcmp(host, "::") ||
        resolve(host, 0, 0, &src) != FS_OK)
        return;
    if (src->ai_family == family)
        (void)bind(s, src->ai_addr, src->ai_addrlen); /* not local: the kernel picks */
    freeaddrinfo(src);
}

fs_status net_connect_tcp_from(const struct fs_addr *to, const char *from, int timeout_ms,
                               int *fd)
{
    struct addrinfo *res = NULL;
    fs_status st = resolve(to->host, to->port, 0, &res);
    int s, one = 1;

    *fd = -1;
    if (st)
        return st;
    s = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        freeaddrinfo(res);
        return FS_EIO;
    }
    bind_source(s, res->ai_family, from);
    st = connect_wait(s, res->ai_addr, res->ai_addrlen, timeout_ms);
    freeaddrinfo(res);
    if (st) {
        close(s);
        return st;
    }
    /* Flood messages are small and latency is what a student watches. */
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    *fd = s;
    return FS_OK;
}

fs_status net_connect_unix(const char *path, int timeout_ms, int *fd)
{
    struct sockaddr_un sun;
    fs_status st;
    int s;

    *fd = -1;
    if (unix_addr(path, &sun))
        return FS_ETOOBIG;
    s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return FS_EIO;
    st = connect_wait(s, (struct sockaddr *)&sun, sizeof sun, timeout_ms);
    if (st) {
        close(s);
        return st;
    }
    *fd = s;
    return FS_OK;
}

static int wait_for(int fd, short events, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    int n;
    do {
        n = poll(&pfd, 1, timeout_ms);
    } while (n < 0 && errno == EINTR);
    return n;
}

int net_wait_readable(int fd, int timeout_ms)
{
    int n = wait_for(fd, POLLIN, timeout_ms);
    return n < 0 ? -1 : n;
}

fs_status net_write_all(int fd, const void *buf, size_t n, int timeout_ms)
{
    const char *p = buf;

    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int r = wait_for(fd, POLLOUT, timeout_ms);
            if (r == 0)
                return FS_ETIMEDOUT;
            if (r < 0)
                return FS_EIO;
            continue;
        }
        return (errno == EPIPE || errno == ECONNRESET) ? FS_ECLOSED : FS_EIO;
    }
    return FS_OK;
}

fs_status net_read_some(int fd, void *buf, size_t cap, size_t *got, int timeout_ms)
{
    *got = 0;
    for (;;) {
        int r = wait_for(fd, POLLIN, timeout_ms);
        if (r == 0)
            return FS_ETIMEDOUT;
        if (r < 0)
            return FS_EIO;
        ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);
        if (n > 0) {
            *got = (size_t)n;
            return FS_OK;
        }
        if (n == 0)
            return FS_ECLOSED;
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
            continue;
        return errno == ECONNRESET ? FS_ECLOSED : FS_EIO;
    }
}

void net_peer_addr(int fd, struct fs_addr *out)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;

    memset(out, 0, sizeof *out);
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
        return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, out->host, sizeof out->host);
        out->port = ntohs(in->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        /* An IPv4 peer on a dual-stack listener: named as IPv4, as addr_parse() does. */
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], out->host, sizeof out->host);
        else
            inet_ntop(AF_INET6, &in6->sin6_addr, out->host, sizeof out->host);
        out->port = ntohs(in6->sin6_port);
    }
}
