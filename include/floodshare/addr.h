/* addr.h - "host:port" addresses of peers. A leaf: no other module needed.
 *
 * One text form everywhere (INI, CLI, wire, logs, JSON): "host:port" for an
 * IPv4 address or a host name, "[v6addr]:port" for an IPv6 address. Inside
 * struct fs_addr the host is kept without brackets and, for IPv6, in the
 * canonical form of RFC 5952 (inet_ntop's), so that two spellings of one
 * address compare equal with addr_equal(). */
#ifndef FLOODSHARE_ADDR_H
#define FLOODSHARE_ADDR_H

#include <stddef.h>
#include <stdint.h>

#include "floodshare/status.h"

#define ADDR_HOST_MAX 63                  /* longest host we accept */
#define ADDR_STR_MAX (ADDR_HOST_MAX + 10) /* "[host]:65535" plus NUL */

struct fs_addr {
    char host[ADDR_HOST_MAX + 1]; /* numeric IPv4, canonical IPv6 (no brackets) or a host
                                     name; never empty */
    uint16_t port;                /* 1..65535 */
};

/* Parses "host:port" or "[v6]:port" (s[0..len), no NUL needed) into *out.
 * The host is a numeric IPv4 address, a name of letters, digits, '-' and
 * '.', or an IPv6 address in brackets (no zone id; an IPv4-mapped one,
 * [::ffff:a.b.c.d], is stored as the IPv4 address a.b.c.d); the port is
 * 1..65535 without sign or leading zeros. Returns FS_OK or FS_EINVAL with
 * *why (when why is not NULL) set to a constant description. Pure: no
 * lookup, no I/O. */
fs_status addr_parse(const char *s, size_t len, struct fs_addr *out, const char **why);

/* Parses a host alone (s[0..len)): what addr_parse() accepts before the
 * ":port", and also a bare IPv6 address ("::1", as an INI's [peer] host may
 * write it). Writes the stored form into out (ADDR_HOST_MAX + 1 bytes).
 * FS_OK, or FS_EINVAL with *why as for addr_parse(). */
fs_status addr_parse_host(const char *s, size_t len, char out[ADDR_HOST_MAX + 1],
                          const char **why);

/* Writes "host:port", or "[host]:port" for an IPv6 host, into out
 * (ADDR_STR_MAX bytes). Returns out. */
char *addr_format(const struct fs_addr *a, char out[ADDR_STR_MAX]);

/* 1 if both addresses name the same host string and port. */
int addr_equal(const struct fs_addr *a, const struct fs_addr *b);

/* 1 if host (stored form) is a wildcard a listener may bind, 0.0.0.0 or
 * "::": no neighbour can dial it. */
int addr_is_wildcard(const char *host);

/* Parses a port number "1".."65535" (NUL-terminated). FS_OK or FS_EINVAL. */
fs_status addr_parse_port(const char *s, uint16_t *port);

#endif
