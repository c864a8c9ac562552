/* test_ctl.c - the pure parsers of the control path: request lines, REPL lines and
 * progress lines (and how progress renders). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "floodshare/cli.h"
#include "floodshare/ctl.h"
#include "floodshare/progress.h"

static void test_request_line_decodes_percent_escaped_words(void **state)
{
    char storage[256], *argv[8];
    const char *why = NULL;
    const char line[] = "get my%20file.txt --json";

    (void)state;
    int n = ctl_parse_line(line, strlen(line), argv, 8, storage, sizeof storage, &why);
    assert_int_equal(n, 3);
    assert_string_equal(argv[0], "get");
    assert_string_equal(argv[1], "my file.txt");
    assert_string_equal(argv[2], "--json");
}

static void test_request_line_refuses_bad_escape_and_too_many_words(void **state)
{
    char storage[256], *argv[2];
    const char *why = NULL;

    (void)state;
    assert_int_equal(ctl_parse_line("get a%zz", 8, argv, 2, storage, sizeof storage, &why), -1);
    assert_non_null(why);
    why = NULL;
    assert_int_equal(ctl_parse_line("a b c", 5, argv, 2, storage, sizeof storage, &why), -1);
    assert_string_equal(why, "too many words in the command");
}

static void test_request_line_never_overflows_its_storage(void **state)
{
    char storage[8], *argv[4];
    const char *why = NULL;

    (void)state;
    assert_int_equal(ctl_parse_line("abcdefghijkl", 12, argv, 4, storage, sizeof storage, &why),
                     -1);
}

static void test_repl_line_honours_quotes_and_escapes(void **state)
{
    char storage[256], *argv[8];
    const char *why = NULL;

    (void)state;
    int n = cli_split("peer 1 get \"my file.txt\" 'it''s' a\\ b", argv, 8, storage,
                      sizeof storage, &why);
    assert_int_equal(n, 6);
    assert_string_equal(argv[3], "my file.txt");
    assert_string_equal(argv[4], "its");
    assert_string_equal(argv[5], "a b");
}

static void test_repl_line_refuses_unterminated_quote(void **state)
{
    char storage[256], *argv[8];
    const char *why = NULL;

    (void)state;
    assert_int_equal(cli_split("get 'oops", argv, 8, storage, sizeof storage, &why), -1);
    assert_string_equal(why, "unterminated quote");
}

static void test_repl_blank_line_has_no_words(void **state)
{
    char storage[16], *argv[4];
    const char *why = NULL;

    (void)state;
    assert_int_equal(cli_split("   \t ", argv, 4, storage, sizeof storage, &why), 0);
}

/* sources= is optional: a line without it (an older peer, a one-holder
 * get) means one source; with it, 1..CTL_SOURCES_MAX. */
static void test_progress_line_sources_is_optional_and_bounded(void **state)
{
    struct ctl_progress pr;
    const char old[] = "done=1 total=2 resumed=0 rate=3 peer=2 holder=127.0.0.1:10812 name=a";
    const char four[] = "done=1 total=2 resumed=0 rate=3 peer=2 holder=127.0.0.1:10812 "
                        "sources=4 name=a";

    (void)state;
    assert_int_equal(ctl_parse_progress(old, strlen(old), &pr), FS_OK);
    assert_int_equal(pr.sources, 1);
    assert_int_equal(ctl_parse_progress(four, strlen(four), &pr), FS_OK);
    assert_int_equal(pr.sources, 4);
    assert_string_equal(pr.name, "a");
    static const char *const bad[] = {
        "done=1 total=2 resumed=0 rate=3 peer=2 holder=h:1 sources=0 name=a",
        "done=1 total=2 resumed=0 rate=3 peer=2 holder=h:1 sources=65 name=a",
        "done=1 total=2 resumed=0 rate=3 peer=2 holder=h:1 sources=4x name=a",
        "done=1 total=2 resumed=0 rate=3 peer=2 holder=h:1 sources= name=a",
        "done=1 total=2 resumed=0 rate=3 peer=2 holder=h:1 sources=99999999999999999999 name=a",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(ctl_parse_progress(bad[i], strlen(bad[i]), &pr), FS_EPROTO);
}

/* What ctl_send_progress writes parses back the same; one source writes
 * today's line exactly (no sources= for an older client to meet). */
static void test_progress_line_round_trips_and_one_source_is_todays_line(void **state)
{
    struct ctl_progress pr, back;
    char line[4096];

    (void)state;
    memset(&pr, 0, sizeof pr);
    pr.done = 451000000;
    pr.total = 1100000000;
    pr.rate = 158300000;
    pr.peer = 2;
    pr.sources = 4;
    strcpy(pr.holder, "127.0.0.1:10812");
    strcpy(pr.name, "big file.iso");
    int n = ctl_format_progress(&pr, line, sizeof line);
    assert_true(n > 0);
    assert_non_null(strstr(line, " sources=4 "));
    assert_int_equal(ctl_parse_progress(line, (size_t)n, &back), FS_OK);
    assert_int_equal(back.sources, 4);
    assert_int_equal(back.rate, pr.rate);
    assert_string_equal(back.name, "big file.iso");
    pr.sources = 1;
    n = ctl_format_progress(&pr, line, sizeof line);
    assert_string_equal(line, "done=451000000 total=1100000000 resumed=0 rate=158300000 peer=2 "
                              "holder=127.0.0.1:10812 name=big%20file.iso");
    assert_int_equal(ctl_format_progress(&pr, line, 20), -1);
}

/* The tail names the holder for one source, the count for several. */
static void test_progress_tail_says_from_n_sources(void **state)
{
    struct ctl_progress pr;
    char out[512];

    (void)state;
    memset(&pr, 0, sizeof pr);
    pr.done = 451000000;
    pr.total = 1100000000;
    pr.rate = 158300000;
    pr.peer = 2;
    pr.sources = 4;
    strcpy(pr.holder, "127.0.0.1:10812");
    strcpy(pr.name, "big.iso");
    progress_format(out, sizeof out, &pr, 120, 0);
    assert_non_null(strstr(out, " 41% 451.0 MB / 1.1 GB  158.3 MB/s  ETA 4s  from 4 sources"));
    assert_null(strstr(out, "peer 2"));
    pr.sources = 1;
    progress_format(out, sizeof out, &pr, 120, 0);
    assert_non_null(strstr(out, "ETA 4s  from peer 2 127.0.0.1:10812"));
    assert_null(strstr(out, "sources"));
    pr.sources = 0; /* a struct filled by older code: one source */
    progress_format(out, sizeof out, &pr, 120, 0);
    assert_non_null(strstr(out, "from peer 2 127.0.0.1:10812"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_line_decodes_percent_escaped_words),
        cmocka_unit_test(test_request_line_refuses_bad_escape_and_too_many_words),
        cmocka_unit_test(test_request_line_never_overflows_its_storage),
        cmocka_unit_test(test_repl_line_honours_quotes_and_escapes),
        cmocka_unit_test(test_repl_line_refuses_unterminated_quote),
        cmocka_unit_test(test_repl_blank_line_has_no_words),
        cmocka_unit_test(test_progress_line_sources_is_optional_and_bounded),
        cmocka_unit_test(test_progress_line_round_trips_and_one_source_is_todays_line),
        cmocka_unit_test(test_progress_tail_says_from_n_sources),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
