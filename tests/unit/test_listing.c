/* test_listing.c - LISTING bodies (listing.h): format, parse, and every
 * refusal a holder's page can earn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "floodshare/listing.h"

#define MD5 "6f5902ac237024bdd0c176cb93063dc4"
#define ROOT "d689c5f75680e4654ef7b30cdeb7a12bd7fed4c22e7e164673846366d07b5595"

static fs_status parse_str(const char *body, uint64_t count, struct listing_entry *out,
                           size_t max, size_t *n, const char **why)
{
    return listing_parse(body, strlen(body), count, out, max, n, why);
}

static void test_listing_parses_files_folders_and_unknowns(void **state)
{
    (void)state;
    static const char body[] = "f 12 " MD5 " 1733400000 " ROOT " a.txt\n"
                               "f 0 - 0 - b%20c\n"
                               "d 99 " MD5 " 5 - docs\n"
                               "d - - 7 - new\n";
    struct listing_entry e[4];
    size_t n = 0;
    const char *why = NULL;

    assert_int_equal(parse_str(body, 4, e, 4, &n, &why), FS_OK);
    assert_null(why);
    assert_int_equal(n, 4);
    assert_int_equal(e[0].kind, MSG_KIND_FILE);
    assert_int_equal(e[0].size, 12);
    assert_true(e[0].size_known);
    assert_string_equal(e[0].md5, MD5);
    assert_int_equal(e[0].mtime, 1733400000);
    assert_string_equal(e[0].root, ROOT);
    assert_string_equal(e[0].name, "a.txt");
    assert_string_equal(e[1].md5, ""); /* not hashed yet */
    assert_string_equal(e[1].root, "");
    assert_string_equal(e[1].name, "b c");
    assert_int_equal(e[2].kind, MSG_KIND_FOLDER);
    assert_int_equal(e[2].size, 99);
    assert_false(e[3].size_known); /* a folder not indexed yet */
}

static void test_listing_format_round_trips(void **state)
{
    (void)state;
    struct listing_entry in[3], out[3];
    char body[3 * (LISTING_LINE_MAX + 1)];
    size_t len = 0, n = 0;

    memset(in, 0, sizeof in);
    in[0] = (struct listing_entry){.kind = MSG_KIND_FILE, .size = 5, .size_known = 1,
                                   .mtime = 42};
    strcpy(in[0].md5, MD5);
    strcpy(in[0].root, ROOT);
    strcpy(in[0].name, "caf\xc3\xa9 %.txt");
    in[1] = (struct listing_entry){.kind = MSG_KIND_FOLDER, .mtime = 1};
    strcpy(in[1].name, "dir");
    in[2] = (struct listing_entry){.kind = MSG_KIND_FILE, .size = UINT64_MAX, .size_known = 1,
                                   .mtime = UINT64_MAX};
    memset(in[2].name, 'z', MSG_MAX_NAME);
    for (int i = 0; i < 3; i++) {
        int w = listing_format(&in[i], body + len, sizeof body - len);
        assert_true(w > 0);
        len += (size_t)w;
    }
    /* The first name sorts first only because 'c' < 'd' < 'z'. */
    assert_int_equal(listing_parse(body, len, 3, out, 3, &n, NULL), FS_OK);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(out[i].kind, in[i].kind);
        assert_int_equal(out[i].size, in[i].size);
        assert_int_equal(out[i].size_known, in[i].size_known);
        assert_int_equal(out[i].mtime, in[i].mtime);
        assert_string_equal(out[i].md5, in[i].md5);
        assert_string_equal(out[i].root, in[i].root);
        assert_string_equal(out[i].name, in[i].name);
    }
}

static void test_listing_format_refuses_what_it_could_not_parse(void **state)
{
    (void)state;
    struct listing_entry e;
    char out[LISTING_LINE_MAX + 1];

    memset(&e, 0, sizeof e);
    e.kind = MSG_KIND_FILE;
    e.size_known = 1;
    strcpy(e.name, "..");
    assert_int_equal(listing_format(&e, out, sizeof out), -1);
    strcpy(e.name, "a/b");
    assert_int_equal(listing_format(&e, out, sizeof out), -1);
    strcpy(e.name, "ok");
    strcpy(e.md5, "XYZ");
    assert_int_equal(listing_format(&e, out, sizeof out), -1);
    e.md5[0] = '\0';
    e.size_known = 0; /* a file always has its size */
    assert_int_equal(listing_format(&e, out, sizeof out), -1);
    e.kind = MSG_KIND_FOLDER;
    strcpy(e.root, ROOT); /* folders have no root */
    assert_int_equal(listing_format(&e, out, sizeof out), -1);
    e.root[0] = '\0';
    assert_int_equal(listing_format(&e, out, 8), -1); /* no room */
    assert_true(listing_format(&e, out, sizeof out) > 0);
}

struct bad {
    const char *body;
    uint64_t count;
    const char *why;
};

static void test_listing_refuses_each_broken_page(void **state)
{
    (void)state;
    static const struct bad cases[] = {
        {"f 1 - 0 - a\n", 2, "listing has fewer lines than its count"},
        {"f 1 - 0 - a\nf 1 - 0 - b\n", 1, "listing has more lines than its count"},
        {"f 1 - 0 - a", 1, "listing ends without a newline"},
        {"\n", 1, "listing line is not six fields separated by single spaces"},
        {"f 1 - 0 -  a\n", 1, "listing line is not six fields separated by single spaces"},
        {"f 1 - 0 - a b\n", 1, "listing line is not six fields separated by single spaces"},
        {"x 1 - 0 - a\n", 1, "listing kind is not f or d"},
        {"f - - 0 - a\n", 1, "listing size of a file is not a number"},
        {"f 01 - 0 - a\n", 1, "listing size is not a number that fits in 64 bits, or -"},
        {"f 18446744073709551616 - 0 - a\n", 1,
         "listing size is not a number that fits in 64 bits, or -"},
        {"f 1 ABC 0 - a\n", 1, "listing md5 is not 32 lower-case hex digits, or -"},
        {"f 1 - -1 - a\n", 1, "listing mtime is not a number of seconds that fits in 64 bits"},
        {"d 1 - 0 " ROOT " a\n", 1, "listing root given for a folder"},
        {"f 1 - 0 abc a\n", 1, "listing root is not 64 lower-case hex digits, or -"},
        {"f 1 - 0 - ..\n", 1, "listing name is not a valid name (empty, . or .., '/', control "
                              "bytes, bad UTF-8)"},
        {"f 1 - 0 - a%2Fb\n", 1, "listing name is not a valid name (empty, . or .., '/', "
                                 "control bytes, bad UTF-8)"},
        {"f 1 - 0 - %2E%2E\n", 1, "listing name is not a valid name (empty, . or .., '/', "
                                  "control bytes, bad UTF-8)"},
        {"f 1 - 0 - a%00\n", 1, "listing name has a bad escape, a NUL, or exceeds 255 bytes"},
        {"f 1 - 0 - a%zz\n", 1, "listing name has a bad escape, a NUL, or exceeds 255 bytes"},
        {"f 1 - 0 - a\x01\n", 1, "listing name has a raw byte that must be percent-encoded"},
        {"f 1 - 0 - b\nf 1 - 0 - a\n", 2,
         "listing names are not in strictly increasing bytewise order"},
        {"f 1 - 0 - a\nd 1 - 0 - a\n", 2,
         "listing names are not in strictly increasing bytewise order"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct listing_entry e[2];
        size_t n = 99;
        const char *why = NULL;
        fs_status st = parse_str(cases[i].body, cases[i].count, e, 2, &n, &why);
        if (st != FS_EPROTO || !why || strcmp(why, cases[i].why) != 0)
            fail_msg("case %zu: got %s \"%s\", want \"%s\"", i, fs_status_name(st),
                     why ? why : "(null)", cases[i].why);
    }
}

/* A holder cannot make the requester write past the page it allocated. */
static void test_listing_refuses_a_count_above_the_room(void **state)
{
    (void)state;
    struct listing_entry e[1];
    size_t n = 99;
    const char *why = NULL;

    assert_int_equal(parse_str("f 1 - 0 - a\nf 1 - 0 - b\n", 2, e, 1, &n, &why), FS_EPROTO);
    assert_string_equal(why, "listing count is larger than the page the requester takes");
    assert_int_equal(n, 0);
}

static void test_listing_empty_page(void **state)
{
    (void)state;
    size_t n = 99;

    assert_int_equal(listing_parse("", 0, 0, NULL, 0, &n, NULL), FS_OK);
    assert_int_equal(n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listing_parses_files_folders_and_unknowns),
        cmocka_unit_test(test_listing_format_round_trips),
        cmocka_unit_test(test_listing_format_refuses_what_it_could_not_parse),
        cmocka_unit_test(test_listing_refuses_each_broken_page),
        cmocka_unit_test(test_listing_refuses_a_count_above_the_room),
        cmocka_unit_test(test_listing_empty_page),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
