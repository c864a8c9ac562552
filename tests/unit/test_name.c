/* test_name.c - which names and paths from outside are accepted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "floodshare/name.h"

static int ok(const char *s) { return name_valid(s, strlen(s)); }

static void test_plain_and_unicode_names_are_valid(void **state)
{
    (void)state;
    assert_true(ok("3.txt"));
    assert_true(ok("caf\xc3\xa9 1.txt"));      /* é */
    assert_true(ok("\xc2\xa0nbsp"));           /* U+00A0, the first after C1 */
    assert_true(ok("\xe6\x96\x87\xe4\xbb\xb6")); /* 文件 */
    assert_true(ok("..."));
}

static void test_control_characters_are_refused(void **state)
{
    (void)state;
    assert_false(ok("a\tb"));
    assert_false(ok("a\x1b[31mb")); /* ESC: a terminal escape */
    assert_false(ok("a\x7f"));
    assert_false(ok("a\xc2\x80"));   /* U+0080 */
    assert_false(ok("a\xc2\x9b" "31m")); /* U+009B: CSI on some terminals */
    assert_false(ok("a\xc2\x9f"));   /* U+009F */
}

static void test_separators_dots_and_bad_utf8_are_refused(void **state)
{
    (void)state;
    assert_false(ok("a/b"));
    assert_false(ok("a\\b"));
    assert_false(ok("."));
    assert_false(ok(".."));
    assert_false(ok(""));
    assert_false(ok("\xc0\xaf"));     /* overlong '/' */
    assert_false(ok("\xed\xa0\x80")); /* a surrogate */
    assert_false(ok("\xe6\x96"));     /* truncated */
    assert_true(path_valid("a/b/c.txt", 9));
    assert_false(path_valid("a/../c", 6));
    assert_false(path_valid("/a", 2));
    assert_false(path_valid("a//b", 4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_and_unicode_names_are_valid),
        cmocka_unit_test(test_control_characters_are_refused),
        cmocka_unit_test(test_separators_dots_and_bad_utf8_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
