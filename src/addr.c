/* addr.c - parse and format "host:port". */
#include "floodshare/addr.h"

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

fs_status addr_parse(const char *s, size_t len, struct fs_addr *out, const char **why)
{
    const char *colon = NULL;
    const char *dummy;

    if (!why)
        why = &dummy;
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < len; i++)
        if (s[i] == ':')
            colon = s + i; /* the last colon splits host from port */
    if (!colon) {
        *why = "expected host:port";
        return FS_EINVAL;
    }
    size_t hlen = (size_t)(colon - s);
    if (hlen == 0) {
        *why = "empty host";
        return FS_EINVAL;
    }
    if (hlen > ADDR_HOST_MAX) {
        *why = "host name too long";
        return FS_EINVAL;
    }
    for (size_t i = 0; i < hlen; i++) {
        if (!host_char_ok(s[i])) {
            *why = "host has a character other than letters, digits, '-' and '.'";
            return FS_EINVAL;
        }
    }
    if (parse_port_n(colon + 1, len - hlen - 1, &out->port) != FS_OK) {
        *why = "port is not a number from 1 to 65535";
        return FS_EINVAL;
    }
    memcpy(out->host, s, hlen);
    out->host[hlen] = '\0';
    return FS_OK;
}

char *addr_format(const struct fs_addr *a, char out[ADDR_STR_MAX])
{
    snprintf(out, ADDR_STR_MAX, "%s:%u", a->host, (unsigned)a->port);
    return out;
}

int addr_equal(const struct fs_addr *a, const struct fs_addr *b)
{
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}
