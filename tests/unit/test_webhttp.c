/* test_webhttp.c - the dashboard's HTTP request parser: what it accepts, what it refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "floodshare/webhttp.h"

static fs_status parse(const char *s, struct web_req *r, const char **why)
{
    return webhttp_parse(s, strlen(s), r, why);
}

static void test_a_post_with_every_header_we_read(void **state)
{
    const char *s = "POST /api/cmd?token=abc&x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
                    "content-length: 12\r\nX-Floodshare: 1\r\nX-Floodshare-Token:  t0k \r\n"
                    "Accept: */*\r\n\r\npeer 1 pause";
    struct web_req r;
    const char *why;
    char v[16];

    assert_int_equal(parse(s, &r, &why), FS_OK);
    assert_string_equal(r.method, "POST");
    assert_string_equal(r.path, "/api/cmd");
    assert_string_equal(r.query, "token=abc&x=1");
    assert_string_equal(r.host, "127.0.0.1:8080");
    assert_string_equal(r.token, "t0k");
    assert_true(r.csrf_header);
    assert_int_equal(r.content_length, 12);
    assert_string_equal(s + r.head_len, "peer 1 pause");
    assert_true(webhttp_query(r.query, "token", v, sizeof v));
    assert_string_equal(v, "abc");
    assert_false(webhttp_query(r.query, "tok", v, sizeof v));
    assert_true(webhttp_query(r.query, "x", v, sizeof v));
    assert_string_equal(v, "1");
}

static void test_incomplete_heads_ask_for_more_at_every_cut(void **state)
{
    const char *s = "GET /app.js HTTP/1.1\r\nHost: localhost:8080\r\n\r\n";
    struct web_req r;
    const char *why;

    for (size_t n = 0; n < strlen(s); n++)
        assert_int_equal(webhttp_parse(s, n, &r, &why), FS_NEED_MORE);
    assert_int_equal(webhttp_parse(s, strlen(s), &r, &why), FS_OK);
    assert_false(r.csrf_header);
    assert_string_equal(r.query, "");
    /* bare \n line ends are accepted too */
    assert_int_equal(parse("GET / HTTP/1.0\nHost: x\n\n", &r, &why), FS_OK);
    assert_string_equal(r.host, "x");
}

static void test_malformed_and_unsupported_are_refused_with_a_reason(void **state)
{
    static const struct {
        const char *req, *why;
        fs_status st;
    } cases[] = {
        {"PUT / HTTP/1.1\r\n\r\n", "method not supported", FS_EPROTO},
        {"GET / HTTP/2\r\n\r\n", "HTTP version not supported", FS_EPROTO},
        {"GET x HTTP/1.1\r\n\r\n", "must start with /", FS_EPROTO},
        {"GET\r\n\r\n", "bad request line", FS_EPROTO},
        {"GET / HTTP/1.1\r\nno colon\r\n\r\n", "bad header line", FS_EPROTO},
        {"GET / HTTP/1.1\r\n: v\r\n\r\n", "bad header line", FS_EPROTO},
        {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "bad Content-Length", FS_EPROTO},
        {"POST / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", "bad Content-Length", FS_EPROTO},
        {"POST / HTTP/1.1\r\nContent-Length: 4097\r\n\r\n", "body too large", FS_ETOOBIG},
        {"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", "body too large",
         FS_ETOOBIG}, /* strtoull saturates: still refused */
        {"POST / HTTP/1.1\r\nContent-Length: 999999999999999999999999999\r\n\r\n",
         "bad Content-Length", FS_EPROTO}, /* longer than any length we read */
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding", FS_EPROTO},
        {"GET /\x01 HTTP/1.1\r\n\r\n", "control or non-ASCII", FS_EPROTO},
        {"\r\n\r\n", "empty request", FS_EPROTO},
    };
    struct web_req r;
    const char *why;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fs_status st = parse(cases[i].req, &r, &why);
        if (st != cases[i].st || !why || !strstr(why, cases[i].why))
            fail_msg("case %zu (%s): got %d \"%s\"", i, cases[i].req, st, why ? why : "(null)");
    }
}

static void test_limits_on_the_head_and_its_fields(void **state)
{
    static char big[WEB_MAX_HEAD + 64];
    struct web_req r;
    const char *why;

    /* a head that never ends within WEB_MAX_HEAD */
    memset(big, 'a', sizeof big);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    assert_int_equal(webhttp_parse(big, sizeof big, &r, &why), FS_ETOOBIG);
    assert_non_null(strstr(why, "head too large"));
    /* a path longer than WEB_MAX_PATH, inside a head that fits */
    int n = snprintf(big, sizeof big, "GET /%0*d HTTP/1.1\r\n\r\n", WEB_MAX_PATH, 0);
    assert_int_equal(webhttp_parse(big, (size_t)n, &r, &why), FS_EPROTO);
    assert_non_null(strstr(why, "too long"));
    n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nX-Floodshare-Token: %0*d\r\n\r\n",
                 WEB_TOKEN_MAX + 1, 0);
    assert_int_equal(webhttp_parse(big, (size_t)n, &r, &why), FS_EPROTO);
    /* a NUL inside the head */
    static const char nul[] = "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n";
    assert_int_equal(webhttp_parse(nul, sizeof nul - 1, &r, &why), FS_EPROTO);
}

static void test_a_bearer_token_is_read_and_other_schemes_are_ignored(void **state)
{
    struct web_req r;
    const char *why;
    static char big[256];

    assert_int_equal(parse("GET / HTTP/1.1\r\nauthorization: bearer \t abc123 \r\n\r\n", &r, &why),
                     FS_OK);
    assert_string_equal(r.bearer, "abc123");
    assert_int_equal(parse("GET / HTTP/1.1\r\nAuthorization: Basic YTpi\r\n\r\n", &r, &why),
                     FS_OK);
    assert_string_equal(r.bearer, "");
    /* "Bearer" must be the whole scheme, followed by a space */
    assert_int_equal(parse("GET / HTTP/1.1\r\nAuthorization: Bearerabc\r\n\r\n", &r, &why),
                     FS_OK);
    assert_string_equal(r.bearer, "");
    assert_int_equal(parse("GET / HTTP/1.1\r\nAuthorization: Bearer\r\n\r\n", &r, &why), FS_OK);
    assert_string_equal(r.bearer, "");
    int n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nAuthorization: Bearer %0*d\r\n\r\n",
                     WEB_TOKEN_MAX, 7);
    assert_int_equal(webhttp_parse(big, (size_t)n, &r, &why), FS_OK);
    assert_int_equal(strlen(r.bearer), WEB_TOKEN_MAX);
    n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nAuthorization: Bearer %0*d\r\n\r\n",
                 WEB_TOKEN_MAX + 1, 7);
    assert_int_equal(webhttp_parse(big, (size_t)n, &r, &why), FS_EPROTO);
    assert_non_null(strstr(why, "Bearer token too long"));
}

static void test_cookies_are_found_by_exact_name_in_every_cookie_header(void **state)
{
    const char *s = "GET / HTTP/1.1\r\nCookie: fs=1\r\nHost: h\r\n"
                    "cookie: a=b;fs_web=\"q1\" ; fs_web=two;FS_WEB=caps; x\r\n"
                    "Cookie:fs_web= three \r\n\r\nCookie: fs_web=body\r\n";
    size_t head = strstr(s, "\r\n\r\n") + 4 - s;
    char v[8];

    assert_int_equal(webhttp_cookie(s, head, "fs_web", 0, v, sizeof v), 1);
    assert_string_equal(v, "q1"); /* quotes removed */
    assert_int_equal(webhttp_cookie(s, head, "fs_web", 1, v, sizeof v), 1);
    assert_string_equal(v, "two");
    assert_int_equal(webhttp_cookie(s, head, "fs_web", 2, v, sizeof v), 1);
    assert_string_equal(v, "three");
    /* not after the head, not by another case, not a prefix of a name */
    assert_int_equal(webhttp_cookie(s, head, "fs_web", 3, v, sizeof v), 0);
    assert_string_equal(v, "");
    assert_int_equal(webhttp_cookie(s, head, "fs", 0, v, sizeof v), 1);
    assert_string_equal(v, "1");
    assert_int_equal(webhttp_cookie(s, head, "fs", 1, v, sizeof v), 0);
    assert_int_equal(webhttp_cookie(s, head, "FS_WEB", 0, v, sizeof v), 1);
    assert_string_equal(v, "caps");
    assert_int_equal(webhttp_cookie(s, head, "x", 0, v, sizeof v), 0); /* no '=': no cookie */
    assert_int_equal(webhttp_cookie(s, head, "", 0, v, sizeof v), 0);
    /* the request line is not a header */
    assert_int_equal(webhttp_cookie("Cookie: a=1\r\n\r\n", 15, "a", 0, v, sizeof v), 0);
}

static void test_a_cookie_too_long_for_the_buffer_is_reported_not_cut(void **state)
{
    const char *s = "GET / HTTP/1.1\r\nCookie: t=12345678; u=1234567\r\n\r\n";
    char v[8];

    assert_int_equal(webhttp_cookie(s, strlen(s), "t", 0, v, sizeof v), -1);
    assert_string_equal(v, "");
    assert_int_equal(webhttp_cookie(s, strlen(s), "u", 0, v, sizeof v), 1);
    assert_string_equal(v, "1234567");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_post_with_every_header_we_read),
        cmocka_unit_test(test_incomplete_heads_ask_for_more_at_every_cut),
        cmocka_unit_test(test_malformed_and_unsupported_are_refused_with_a_reason),
        cmocka_unit_test(test_limits_on_the_head_and_its_fields),
        cmocka_unit_test(test_a_bearer_token_is_read_and_other_schemes_are_ignored),
        cmocka_unit_test(test_cookies_are_found_by_exact_name_in_every_cookie_header),
        cmocka_unit_test(test_a_cookie_too_long_for_the_buffer_is_reported_not_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
