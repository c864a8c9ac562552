/* test_ctl.c - the pure parsers of the control path: request lines and REPL lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "floodshare/cli.h"
#include "floodshare/ctl.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_line_decodes_percent_escaped_words),
        cmocka_unit_test(test_request_line_refuses_bad_escape_and_too_many_words),
        cmocka_unit_test(test_request_line_never_overflows_its_storage),
        cmocka_unit_test(test_repl_line_honours_quotes_and_escapes),
        cmocka_unit_test(test_repl_line_refuses_unterminated_quote),
        cmocka_unit_test(test_repl_blank_line_has_no_words),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
