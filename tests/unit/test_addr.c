/* test_addr.c - "host:port" and "[v6]:port" (addr.h): what is accepted, in
 * which stored form, what is refused and why, and that formatting parses
 * back to the same address. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "floodshare/addr.h"

/* s must parse to host and port, and format back to want. */
static void ok(const char *s, const char *host, unsigned port, const char *want)
{
    struct fs_addr a, b;
    const char *why = NULL;
    char text[ADDR_STR_MAX];

    assert_int_equal(addr_parse(s, strlen(s), &a, &why), FS_OK);
    assert_string_equal(a.host, host);
    assert_int_equal(a.port, port);
    assert_string_equal(addr_format(&a, text), want);
    assert_int_equal(addr_parse(text, strlen(text), &b, &why), FS_OK);
    assert_true(addr_equal(&a, &b));
}

/* s must be refused, with a why that contains part. */
static void bad(const char *s, const char *part)
{
    struct fs_addr a;
    const char *why = NULL;

    assert_int_equal(addr_parse(s, strlen(s), &a, &why), FS_EINVAL);
    assert_non_null(why);
    if (!strstr(why, part))
        fail_msg("\"%s\": why \"%s\" lacks \"%s\"", s, why, part);
    assert_string_equal(a.host, ""); /* nothing half-filled */
}

static void test_ipv4_and_names(void **state)
{
    (void)state;
    ok("127.0.0.1:10801", "127.0.0.1", 10801, "127.0.0.1:10801");
    ok("localhost:1", "localhost", 1, "localhost:1");
    ok("lab-pc-07.example.org:65535", "lab-pc-07.example.org", 65535,
       "lab-pc-07.example.org:65535");
}

static void test_ipv6_in_brackets_is_canonical(void **state)
{
    (void)state;
    ok("[::1]:10801", "::1", 10801, "[::1]:10801");
    ok("[0:0:0:0:0:0:0:1]:10801", "::1", 10801, "[::1]:10801");
    ok("[2001:DB8:0:0::1]:80", "2001:db8::1", 80, "[2001:db8::1]:80");
    ok("[::]:1", "::", 1, "[::]:1");
    /* v4-mapped: one endpoint, one name, as a dual-stack listener sees it */
    ok("[::ffff:127.0.0.1]:5", "127.0.0.1", 5, "127.0.0.1:5");
    ok("[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535",
       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535,
       "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");

    struct fs_addr a, b;
    assert_int_equal(addr_parse("[::1]:7", 7, &a, NULL), FS_OK);
    assert_int_equal(addr_parse("[0::0:1]:7", 10, &b, NULL), FS_OK);
    assert_true(addr_equal(&a, &b));
}

static void test_bad_forms(void **state)
{
    (void)state;
    bad("127.0.0.1", "expected host:port");
    bad("", "expected host:port");
    bad(":10801", "empty host");
    bad("127.0.0.1:", "port");
    bad("127.0.0.1:0", "port");
    bad("127.0.0.1:65536", "port");
    bad("127.0.0.1:080", "port");
    bad("127.0.0.1:+80", "port");
    bad("host_name:80", "character");
    bad("::1:10801", "[addr]:port");    /* v6 without brackets: ambiguous */
    bad("[::1]10801", "[addr]:port");   /* no colon after ']' */
    bad("[::1]", "[addr]:port");
    bad("[::1:10801", "without ']'");
    bad("[]:80", "empty IPv6");
    bad("[127.0.0.1]:80", "not a valid IPv6");
    bad("[::1::2]:80", "not a valid IPv6");
    bad("[12345::1]:80", "not a valid IPv6");
    bad("[fe80::1%eth0]:80", "zone");
    bad("[::1]:0", "port");
    bad("[00000000000000000000000000000000000000000000000000]:80", "too long");
    bad("[::1]:80]", "port");
}

static void test_length_is_the_callers(void **state)
{
    struct fs_addr a;
    (void)state;
    /* no NUL needed, none read past len */
    assert_int_equal(addr_parse("[::1]:80xyz", 8, &a, NULL), FS_OK);
    assert_int_equal(a.port, 80);
    assert_int_equal(addr_parse("[::1]:80", 4, &a, NULL), FS_EINVAL);
}

static void test_host_alone(void **state)
{
    char h[ADDR_HOST_MAX + 1];
    const char *why = NULL;
    (void)state;

    assert_int_equal(addr_parse_host("::1", 3, h, &why), FS_OK);
    assert_string_equal(h, "::1");
    assert_int_equal(addr_parse_host("[::1]", 5, h, &why), FS_OK);
    assert_string_equal(h, "::1");
    assert_int_equal(addr_parse_host("0.0.0.0", 7, h, &why), FS_OK);
    assert_true(addr_is_wildcard(h));
    assert_int_equal(addr_parse_host("::", 2, h, &why), FS_OK);
    assert_true(addr_is_wildcard(h));
    assert_int_equal(addr_parse_host("0::0", 4, h, &why), FS_OK); /* canonical: still "::" */
    assert_true(addr_is_wildcard(h));
    assert_false(addr_is_wildcard("127.0.0.1"));
    assert_int_equal(addr_parse_host("::1::2", 6, h, &why), FS_EINVAL);
    assert_string_equal(h, "");
    assert_int_equal(addr_parse_host("", 0, h, &why), FS_EINVAL);
    assert_int_equal(addr_parse_host("a b", 3, h, &why), FS_EINVAL);
}

static void test_format_fits(void **state)
{
    struct fs_addr a = {.port = 65535};
    char text[ADDR_STR_MAX];
    (void)state;

    memset(a.host, 'a', ADDR_HOST_MAX);
    a.host[ADDR_HOST_MAX] = '\0';
    assert_int_equal(strlen(addr_format(&a, text)), ADDR_HOST_MAX + 6);
    memcpy(a.host, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 40);
    assert_string_equal(addr_format(&a, text), "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4_and_names),
        cmocka_unit_test(test_ipv6_in_brackets_is_canonical),
        cmocka_unit_test(test_bad_forms),
        cmocka_unit_test(test_length_is_the_callers),
        cmocka_unit_test(test_host_alone),
        cmocka_unit_test(test_format_fits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
