/* addr.c - parse and format "host:port" and "[v6]:port". */
#include "floodshare/addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static int host_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.';
}

static fs_status parse_port_n(const char *s, size_t n, uint16_t *port)
{
    unsigned long v = 0;

    if (n == 0 || n > 5 || s[0] == '0')
        return FS_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return FS_EINVAL;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > 65535)
        return FS_EINVAL;
    *port = (uint16_t)v;
    return FS_OK;
}

fs_status addr_parse_port(const char *s, uint16_t *port)
{
    return parse_port_n(s, strlen(s), port);
}

/* An IPv6 literal s[0..n) (no brackets) into its canonical text. The
 * canonical form is what makes "::1" and "0:0::1" one neighbour, one link,
 * one per-address limit. A v4-mapped address becomes the IPv4 address: it
 * is how a dual-stack listener sees an IPv4 peer, and one endpoint must
 * have one name. */
static fs_status parse_v6(const char *s, size_t n, char out[ADDR_HOST_MAX + 1],
                          const char **why)
{
    char text[INET6_ADDRSTRLEN];
    struct in6_addr a6;

    if (n == 0) {
        *why = "empty IPv6 address in brackets";
        return FS_EINVAL;
    }
    if (n >= sizeof text) {
        *why = "IPv6 address too long";
        return FS_EINVAL;
    }
    memcpy(text, s, n);
    text[n] = '\0';
    if (memchr(text, '%', n)) {
        *why = "IPv6 zone ids (%) are not supported";
        return FS_EINVAL;
    }
    if (inet_pton(AF_INET6, text, &a6) != 1) {
        *why = "not a valid IPv6 address";
        return FS_EINVAL;
    }
    if (IN6_IS_ADDR_V4MAPPED(&a6)) {
        if (!inet_ntop(AF_INET, &a6.s6_addr[12], out, ADDR_HOST_MAX + 1))
            goto bad;
        return FS_OK;
    }
    if (!inet_ntop(AF_INET6, &a6, out, ADDR_HOST_MAX + 1))
        goto bad;
    return FS_OK;
bad:
    *why = "not a valid IPv6 address";
    return FS_EINVAL;
}

/* A name or IPv4 host s[0..n) (no colon) into out. */
static fs_status parse_name(const char *s, size_t n, char out[ADDR_HOST_MAX + 1],
                            const char **why)
{
    if (n == 0) {
        *why = "empty host";
        return FS_EINVAL;
    }
    if (n > ADDR_HOST_MAX) {
        *why = "host name too long";
        return FS_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!host_char_ok(s[i])) {
            *why = "host has a character other than letters, digits, '-' and '.'";
            return FS_EINVAL;
        }
    }
    memcpy(out, s, n);
    out[n] = '\0';
    return FS_OK;
}

fs_status addr_parse_host(const char *s, size_t len, char out[ADDR_HOST_MAX + 1],
                          const char **why)
{
    const char *dummy;

    if (!why)
        why = &dummy;
    out[0] = '\0';
    if (len >= 2 && s[0] == '[' && s[len - 1] == ']')
        return parse_v6(s + 1, len - 2, out, why);
    if (memchr(s, ':', len))
        return parse_v6(s, len, out, why);
    return parse_name(s, len, out, why);
}

fs_status addr_parse(const char *s, size_t len, struct fs_addr *out, const char **why)
{
    const char *dummy, *colon;
    fs_status st;

    if (!why)
        why = &dummy;
    memset(out, 0, sizeof *out);
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close) {
            *why = "'[' without ']' (IPv6 is written [addr]:port)";
            return FS_EINVAL;
        }
        colon = close + 1;
        if ((size_t)(colon - s) == len || *colon != ':') {
            *why = "expected [addr]:port";
            return FS_EINVAL;
        }
        st = parse_v6(s + 1, (size_t)(close - s - 1), out->host, why);
    } else {
        colon = memchr(s, ':', len);
        if (!colon) {
            *why = "expected host:port";
            return FS_EINVAL;
        }
        if (memchr(colon + 1, ':', len - (size_t)(colon - s) - 1)) {
            *why = "more than one ':' (IPv6 is written [addr]:port)";
            return FS_EINVAL;
        }
        st = parse_name(s, (size_t)(colon - s), out->host, why);
    }
    if (st != FS_OK) {
        out->host[0] = '\0';
        return st;
    }
    size_t plen = len - (size_t)(colon - s) - 1;
    if (parse_port_n(colon + 1, plen, &out->port) != FS_OK) {
        out->host[0] = '\0';
        *why = "port is not a number from 1 to 65535";
        return FS_EINVAL;
    }
    return FS_OK;
}

char *addr_format(const struct fs_addr *a, char out[ADDR_STR_MAX])
{
    if (strchr(a->host, ':'))
        snprintf(out, ADDR_STR_MAX, "[%s]:%u", a->host, (unsigned)a->port);
    else
        snprintf(out, ADDR_STR_MAX, "%s:%u", a->host, (unsigned)a->port);
    return out;
}

int addr_equal(const struct fs_addr *a, const struct fs_addr *b)
{
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}

int addr_is_wildcard(const char *host)
{
    return strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
}
