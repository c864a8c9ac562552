/* test_cut.c - links taken down and the paused flag (cut.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "floodshare/cut.h"

static struct fs_addr addr(const char *s)
{
    struct fs_addr a;
    const char *why = NULL;
    assert_int_equal(addr_parse(s, strlen(s), &a, &why), FS_OK);
    return a;
}

static void test_down_up_and_blocks(void **state)
{
    struct cut c;
    struct fs_addr a = addr("127.0.0.1:9001"), b = addr("127.0.0.1:9002"), out[CUT_MAX];

    cut_init(&c);
    assert_null(cut_blocks(&c, &a));
    assert_int_equal(cut_set_link(&c, &a, 1), FS_OK);
    assert_int_equal(cut_set_link(&c, &a, 1), FS_OK); /* twice: still one entry */
    assert_int_equal(cut_list(&c, out, CUT_MAX), 1);
    assert_string_equal(cut_blocks(&c, &a), "link_down");
    assert_null(cut_blocks(&c, &b));
    cut_set_paused(&c, 1);
    assert_string_equal(cut_blocks(&c, &b), "paused"); /* paused wins over everything */
    cut_set_paused(&c, 0);
    assert_int_equal(cut_set_link(&c, &b, 0), FS_OK); /* up of a link that is up: fine */
    assert_int_equal(cut_set_link(&c, &a, 0), FS_OK);
    assert_null(cut_blocks(&c, &a));
    assert_int_equal(cut_list(&c, out, CUT_MAX), 0);
    cut_destroy(&c);
}

static void test_full_table_is_refused(void **state)
{
    struct cut c;
    char s[32];

    cut_init(&c);
    for (int i = 0; i < CUT_MAX; i++) {
        snprintf(s, sizeof s, "127.0.0.1:%d", 10000 + i);
        struct fs_addr a = addr(s);
        assert_int_equal(cut_set_link(&c, &a, 1), FS_OK);
    }
    struct fs_addr extra = addr("127.0.0.1:20000"), out[2];
    assert_int_equal(cut_set_link(&c, &extra, 1), FS_ETOOBIG);
    assert_null(cut_blocks(&c, &extra));
    assert_int_equal(cut_list(&c, out, 2), 2); /* cap respected */
    cut_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_down_up_and_blocks),
        cmocka_unit_test(test_full_table_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
