/* fuzz_http.c - the dashboard's HTTP request parser, webhttp_parse(), and
 * its cookie finder, webhttp_cookie(), over whatever a browser (or anything
 * else on the listening address) sends.
 *
 * Besides not crashing: an accepted head ends with the blank line within
 * WEB_MAX_HEAD bytes and inside the input, its method is GET or POST, its
 * strings are NUL-terminated inside their fields, and the body it announces
 * is within WEB_MAX_BODY. Parsing is a pure function of the bytes: the
 * same bytes with anything appended after the head parse the same, and any
 * prefix that stops before the blank line is NEED_MORE or the same refusal
 * class, never a different acceptance. A refusal names what was wrong.
 *
 * Cookies (which carry the dashboard's token): webhttp_cookie reads nothing
 * outside the bytes it is given, accepted head or not; a value it returns is
 * shorter than the buffer, holds no ';', and is found again, the same, when
 * the head is all it is given; the nth cookie of a name exists only if the
 * (n-1)th does. The Bearer token is a NUL-terminated field without leading
 * blanks.
 *
 * The same bytes as a POST /api/topology body (split as the server splits
 * it, then webtopo_check()): a refusal says why; what is accepted is one
 * of the four reshapes, with peer ids of digits only, and add-peer's ITEMs
 * hold no ':' and none starts with '-' (no option reaches the script). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "floodshare/cli.h"
#include "floodshare/ctl.h"
#include "floodshare/webhttp.h"
#include "floodshare/webtopo.h"

#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_terminated(const char *field, size_t cap)
{
    CHECK(memchr(field, '\0', cap) != NULL);
}

/* The cookies called name in buf[0..len): every nth until there is none.
 * The input is copied to a buffer of exactly len bytes so that ASan sees a
 * read past it. */
static void check_cookies(const char *buf, size_t len, const char *name)
{
    char *copy = malloc(len ? len : 1);
    char v[WEB_TOKEN_MAX + 1];

    if (!copy)
        return;
    if (len)
        memcpy(copy, buf, len);
    for (size_t nth = 0; nth < WEB_MAX_COOKIES; nth++) {
        memset(v, 0x5a, sizeof v);
        int r = webhttp_cookie(copy, len, name, nth, v, sizeof v);
        CHECK(r == -1 || r == 0 || r == 1);
        check_terminated(v, sizeof v);
        if (r <= 0)
            CHECK(v[0] == '\0');
        if (r == 1)
            CHECK(strchr(v, ';') == NULL);
        if (r == 0) {
            CHECK(webhttp_cookie(copy, len, name, nth + 1, v, sizeof v) == 0);
            break;
        }
    }
    free(copy);
}

static void check_topology_body(const char *buf, size_t size)
{
    char line[WEB_MAX_BODY + 1], storage[WEB_MAX_BODY + CTL_MAX_ARGS + 8], why[256];
    char *argv[CTL_MAX_ARGS + 2];
    const char *split_why = NULL;

    if (size > WEB_MAX_BODY || memchr(buf, '\0', size))
        return; /* the server refuses these before splitting */
    memcpy(line, buf, size);
    line[size] = '\0';
    int argc = cli_split(line, argv, CTL_MAX_ARGS + 2, storage, sizeof storage, &split_why);
    if (argc < 0)
        return;
    const char *no = webtopo_check(argc, argv, why, sizeof why);
    if (no) {
        CHECK(no == why && why[0] != '\0' && memchr(why, '\0', sizeof why));
        return;
    }
    CHECK(argc >= 1);
    int add = strcmp(argv[0], "add-peer") == 0;
    CHECK(add || strcmp(argv[0], "remove-peer") == 0 || strcmp(argv[0], "link") == 0 ||
          strcmp(argv[0], "unlink") == 0);
    for (int i = 1; i < argc; i++) {
        if (add && i == 1) {
            CHECK(strcmp(argv[1], "--files") == 0);
            continue;
        }
        CHECK(argv[i][0] != '-' && strchr(argv[i], ':') == NULL);
        if (!add)
            CHECK(strspn(argv[i], "0123456789") == strlen(argv[i]) && argv[i][0] != '0');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_topology_body((const char *)data, size);
    const char *buf = (const char *)data;
    struct web_req req, again;
    const char *why = NULL;

    check_cookies(buf, size, "floodshare_web_8080");
    memset(&req, 0x5a, sizeof req); /* nothing may be left unset on success */
    fs_status st = webhttp_parse(buf, size, &req, &why);
    if (st == FS_NEED_MORE) {
        CHECK(size < WEB_MAX_HEAD); /* at the limit without a blank line: ETOOBIG */
        return 0;
    }
    if (st != FS_OK) {
        CHECK(st == FS_EPROTO || st == FS_ETOOBIG);
        CHECK(st != FS_EPROTO || (why != NULL && why[0] != '\0'));
        return 0;
    }
    CHECK(req.head_len >= 4 && req.head_len <= size && req.head_len <= WEB_MAX_HEAD);
    CHECK(buf[req.head_len - 1] == '\n');
    CHECK(strcmp(req.method, "GET") == 0 || strcmp(req.method, "POST") == 0);
    check_terminated(req.path, sizeof req.path);
    check_terminated(req.query, sizeof req.query);
    check_terminated(req.host, sizeof req.host);
    check_terminated(req.token, sizeof req.token);
    check_terminated(req.bearer, sizeof req.bearer);
    CHECK(req.bearer[0] != ' ' && req.bearer[0] != '\t');
    CHECK(req.path[0] == '/');
    CHECK(req.content_length <= WEB_MAX_BODY);

    /* The head alone parses the same: nothing after it was looked at. */
    memset(&again, 0, sizeof again);
    why = NULL;
    CHECK(webhttp_parse(buf, req.head_len, &again, &why) == FS_OK);
    CHECK(again.head_len == req.head_len && again.content_length == req.content_length);
    CHECK(strcmp(again.method, req.method) == 0 && strcmp(again.path, req.path) == 0 &&
          strcmp(again.query, req.query) == 0 && strcmp(again.host, req.host) == 0 &&
          strcmp(again.token, req.token) == 0 && strcmp(again.bearer, req.bearer) == 0 &&
          again.csrf_header == req.csrf_header);
    /* The cookies of the head are those of the head with its body: the finder
     * stops at the blank line. */
    char a[WEB_TOKEN_MAX + 1], b[WEB_TOKEN_MAX + 1];
    for (size_t nth = 0; nth < 4; nth++) {
        int ra = webhttp_cookie(buf, req.head_len, "floodshare_web_8080", nth, a, sizeof a);
        int rb = webhttp_cookie(buf, size, "floodshare_web_8080", nth, b, sizeof b);
        CHECK(ra == rb && strcmp(a, b) == 0);
        if (ra == 0)
            break;
    }
    check_cookies(buf, req.head_len, "a");
    /* A head cut before its end is never accepted. */
    why = NULL;
    CHECK(webhttp_parse(buf, req.head_len - 1, &again, &why) != FS_OK);
    return 0;
}
