/* addr.h - "host:port" addresses of peers. A leaf: no other module needed. */
#ifndef FLOODSHARE_ADDR_H
#define FLOODSHARE_ADDR_H

#include <stddef.h>
#include <stdint.h>

#include "floodshare/status.h"

#define ADDR_HOST_MAX 63                 /* longest host we accept */
#define ADDR_STR_MAX (ADDR_HOST_MAX + 8) /* "host:65535" plus NUL */

struct fs_addr {
    char host[ADDR_HOST_MAX + 1]; /* numeric IPv4 or a host name; never empty */
    uint16_t port;                /* 1..65535 */
};

/* Parses "host:port" (s[0..len), no NUL needed) into *out. The host is a
 * numeric IPv4 address or a name of letters, digits, '-' and '.'; the port
 * is 1..65535 without sign or leading zeros. Returns FS_OK or FS_EINVAL with
 * *why (when why is not NULL) set to a constant description. */
fs_status addr_parse(const char *s, size_t len, struct fs_addr *out, const char **why);

/* Writes "host:port" into out (ADDR_STR_MAX bytes). Returns out. */
char *addr_format(const struct fs_addr *a, char out[ADDR_STR_MAX]);

/* 1 if both addresses name the same host string and port. */
int addr_equal(const struct fs_addr *a, const struct fs_addr *b);

/* Parses a port number "1".."65535" (NUL-terminated). FS_OK or FS_EINVAL. */
fs_status addr_parse_port(const char *s, uint16_t *port);

#endif
