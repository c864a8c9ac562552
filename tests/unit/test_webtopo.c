/* test_webtopo.c - which reshapes the dashboard may run (webtopo_check). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "floodshare/webtopo.h"

/* NULL-terminated words -> webtopo_check; returns why, or NULL. */
static const char *check(const char *const *words)
{
    static char why[256];
    int argc = 0;
    while (words[argc])
        argc++;
    return webtopo_check(argc, (char *const *)words, why, sizeof why);
}

#define ALLOWED(...) assert_null(check((const char *const[]){__VA_ARGS__, NULL}))
#define REFUSED(needle, ...)                                                   \
    do {                                                                       \
        const char *w = check((const char *const[]){__VA_ARGS__, NULL});        \
        assert_non_null(w);                                                    \
        assert_non_null(strstr(w, needle));                                    \
    } while (0)

static void test_the_four_reshapes_with_peer_numbers(void **state)
{
    (void)state;
    ALLOWED("link", "2", "5");
    ALLOWED("unlink", "65535", "1");
    ALLOWED("remove-peer", "3");
    ALLOWED("add-peer");
    ALLOWED("add-peer", "--files");
    ALLOWED("add-peer", "--files", "new.txt", "box/", "docs/my notes.txt");
}

static void test_ids_are_plain_numbers_in_range(void **state)
{
    (void)state;
    REFUSED("usage: link A B", "link", "1");
    REFUSED("usage: link A B", "link", "1", "2", "3");
    REFUSED("usage: link A B", "link", "1", "x");
    REFUSED("usage: link A B", "link", "1", "+2");
    REFUSED("usage: link A B", "link", "1", "65536");
    REFUSED("usage: link A B", "link", "1", "0");
    REFUSED("usage: remove-peer N", "remove-peer", "01");
    REFUSED("usage: remove-peer N", "remove-peer", "--run");
    REFUSED("usage: unlink A B", "unlink", "1", "2", "--run", "/tmp");
}

static void test_other_commands_and_options_are_refused(void **state)
{
    (void)state;
    REFUSED("not \"up\"", "up", "ring:4");
    REFUSED("not \"down\"", "down");
    REFUSED("not \"show\"", "show");
    REFUSED("usage: add-peer", "add-peer", "--bin", "/bin/sh");
    REFUSED("usage: add-peer", "add-peer", "new.txt");
    REFUSED("no topology command", NULL);
}

static void test_add_peer_items_stay_small_and_inside_the_share(void **state)
{
    (void)state;
    REFUSED("starts with '-'", "add-peer", "--files", "--run");
    REFUSED("starts with '-'", "add-peer", "--files", "-x");
    REFUSED("no :size=", "add-peer", "--files", "big.bin:size=100G");
    REFUSED("not a share path", "add-peer", "--files", "../escape.txt");
    REFUSED("not a share path", "add-peer", "--files", "/etc/passwd");
    REFUSED("not a share path", "add-peer", "--files", "a//b");
    REFUSED("not a share path", "add-peer", "--files", "");
    REFUSED("state folder", "add-peer", "--files", ".floodshare/x");
    REFUSED("state folder", "add-peer", "--files", ".floodshare/");
    ALLOWED("add-peer", "--files", ".floodsharex");
    REFUSED("at most 16", "add-peer", "--files", "1", "2", "3", "4", "5", "6", "7", "8", "9",
            "10", "11", "12", "13", "14", "15", "16", "17");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_four_reshapes_with_peer_numbers),
        cmocka_unit_test(test_ids_are_plain_numbers_in_range),
        cmocka_unit_test(test_other_commands_and_options_are_refused),
        cmocka_unit_test(test_add_peer_items_stay_small_and_inside_the_share),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
