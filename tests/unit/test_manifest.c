/* test_manifest.c - parsing a folder manifest that came from another peer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "floodshare/manifest.h"

#define M1 "0123456789abcdef0123456789abcdef"

static void test_manifest_parses_files_folders_and_totals(void **state)
{
    static const char text[] = "D a\nD a/empty\nF 3 " M1 " a/x.txt\nF 0 " M1 " b c.bin\n";
    struct manifest m;
    const char *why = NULL;

    (void)state;
    assert_int_equal(manifest_parse(text, strlen(text), &m, &why), FS_OK);
    assert_int_equal(m.n, 4);
    assert_int_equal(m.files, 2);
    assert_int_equal(m.total_bytes, 3);
    assert_string_equal(m.v[2].path, "a/x.txt");
    assert_string_equal(m.v[3].path, "b c.bin");
    assert_int_equal(m.v[1].kind, MSG_KIND_FOLDER);
    manifest_free(&m);
}

static void test_manifest_empty_folder_is_valid(void **state)
{
    struct manifest m;
    const char *why = NULL;

    (void)state;
    assert_int_equal(manifest_parse("", 0, &m, &why), FS_OK);
    assert_int_equal(m.n, 0);
    manifest_free(&m);
}

static void test_manifest_refuses_what_a_lying_holder_could_send(void **state)
{
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"F 1 " M1 " ../x\n", "manifest path is not a valid relative path"},
        {"F 1 " M1 " /etc/passwd\n", "manifest path is not a valid relative path"},
        {"D a\nD a/../../b\n", "manifest path is not a valid relative path"},
        {"F 1 " M1 " b\nF 1 " M1 " a\n", "manifest is not sorted, or lists a path twice"},
        {"F 1 " M1 " a\nF 1 " M1 " a\n", "manifest is not sorted, or lists a path twice"},
        {"F 1 " M1 " a/x\n", "manifest path is inside something that is not a listed folder"},
        {"F 1 " M1 " a\nF 1 " M1 " a/x\n",
         "manifest path is inside something that is not a listed folder"},
        {"X a\n", "manifest line is neither F nor D"},
        {"F x " M1 " a\n", "manifest file line has no size"},
        {"F 01 " M1 " a\n", "manifest file line has a bad size"},
        {"F 1 0123 a\n", "manifest file line has no MD5"},
        {"F 1 " "0123456789ABCDEF0123456789ABCDEF" " a\n", "manifest file line has a bad MD5"},
        {"D a", "manifest does not end with a newline"},
        {"F 18446744073709551615 " M1 " a\nF 1 " M1 " b\n", "manifest sizes overflow"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct manifest m;
        const char *why = NULL;
        assert_int_equal(manifest_parse(bad[i].text, strlen(bad[i].text), &m, &why), FS_EPROTO);
        assert_string_equal(why, bad[i].why);
        assert_null(m.v);
    }
}

static void test_manifest_refuses_a_nul_byte(void **state)
{
    static const char text[] = "D a\0b\n";
    struct manifest m;
    const char *why = NULL;

    (void)state;
    assert_int_equal(manifest_parse(text, sizeof text - 1, &m, &why), FS_EPROTO);
    assert_string_equal(why, "manifest contains a NUL byte");
}

/* Found by fuzz/fuzz_manifest.c: strtoull() saturates, so a size past
 * 2^64-1 was taken as 2^64-1, and the entry no longer said what its line did. */
static void test_manifest_refuses_a_size_beyond_64_bits(void **state)
{
    static const char text[] = "F 18446744073950571615 " M1 " huge.bin\n";
    static const char max[] = "F 18446744073709551615 " M1 " huge.bin\n";
    struct manifest m;
    const char *why = NULL;

    (void)state;
    assert_int_equal(manifest_parse(text, sizeof text - 1, &m, &why), FS_EPROTO);
    assert_string_equal(why, "manifest file line has a bad size");
    assert_null(m.v);
    assert_int_equal(manifest_parse(max, sizeof max - 1, &m, &why), FS_OK);
    assert_true(m.v[0].size == UINT64_MAX);
    manifest_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manifest_parses_files_folders_and_totals),
        cmocka_unit_test(test_manifest_empty_folder_is_valid),
        cmocka_unit_test(test_manifest_refuses_what_a_lying_holder_could_send),
        cmocka_unit_test(test_manifest_refuses_a_nul_byte),
        cmocka_unit_test(test_manifest_refuses_a_size_beyond_64_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
