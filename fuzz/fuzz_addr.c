/* fuzz_addr.c - addr_parse() and addr_parse_host() over any bytes: a
 * neighbour in an INI, a `link down HOST:PORT` argument, and the from=,
 * holder= and addr= values of every wire message and trace line.
 *
 * An accepted address has a NUL-terminated, non-empty host of the stored
 * form (no brackets; an IPv6 one canonical, so formatting and parsing it
 * again gives the same address, byte for byte), a port 1..65535, and its
 * text fits ADDR_STR_MAX. A refusal says why and leaves no host behind. */
#include <stdint.h>
#include <string.h>

#include "floodshare/addr.h"

#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_host(const char *h)
{
    size_t n = strnlen(h, ADDR_HOST_MAX + 1);
    CHECK(n > 0 && n <= ADDR_HOST_MAX);
    CHECK(!strchr(h, '[') && !strchr(h, ']') && !strchr(h, '%'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct fs_addr a, b;
    char text[ADDR_STR_MAX], host[ADDR_HOST_MAX + 1], again[ADDR_HOST_MAX + 1];
    const char *why = NULL;

    if (addr_parse(s, size, &a, &why) == FS_OK) {
        check_host(a.host);
        CHECK(a.port >= 1);
        addr_format(&a, text);
        CHECK(strlen(text) <= ADDR_STR_MAX - 1 && text[strlen(text) - 1] != ':');
        CHECK(addr_parse(text, strlen(text), &b, &why) == FS_OK);
        CHECK(addr_equal(&a, &b) && strcmp(a.host, b.host) == 0);
        /* a host that parsed inside host:port parses alone to the same */
        CHECK(addr_parse_host(a.host, strlen(a.host), again, &why) == FS_OK);
        CHECK(strcmp(again, a.host) == 0);
    } else {
        CHECK(why != NULL && a.host[0] == '\0');
    }
    why = NULL;
    if (addr_parse_host(s, size, host, &why) == FS_OK) {
        check_host(host);
        CHECK(addr_parse_host(host, strlen(host), again, &why) == FS_OK);
        CHECK(strcmp(again, host) == 0);
    } else {
        CHECK(why != NULL && host[0] == '\0');
    }
    return 0;
}
