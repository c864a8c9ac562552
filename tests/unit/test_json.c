/* test_json.c - the JSON writer: structure, escaping, numbers, limits. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "floodshare/json.h"

#define BIG 65536

/* Asserts that j holds exactly want, then frees it. */
static void assert_doc(struct json *j, const char *want)
{
    size_t len = 99;
    const char *doc = json_result(j, &len);

    assert_non_null(doc);
    assert_string_equal(doc, want);
    assert_int_equal(len, strlen(want));
    json_free(j);
}

/* The document made of one top-level string. */
static void assert_str_doc(const char *in, size_t n, const char *want)
{
    struct json j;

    json_init(&j, BIG);
    json_strn(&j, NULL, in, n);
    assert_doc(&j, want);
}

static void test_json_writes_nested_object_and_array(void **state)
{
    struct json j;

    json_init(&j, BIG);
    json_obj_open(&j, NULL);
    json_str(&j, "name", "3.txt");
    json_arr_open(&j, "hits");
    json_obj_open(&j, NULL);
    json_uint(&j, "peer", 3);
    json_obj_close(&j);
    json_obj_open(&j, NULL);
    json_obj_close(&j);
    json_arr_close(&j);
    json_obj_open(&j, "empty");
    json_obj_close(&j);
    json_arr_open(&j, "none");
    json_arr_close(&j);
    json_obj_close(&j);
    assert_doc(&j, "{\"name\":\"3.txt\",\"hits\":[{\"peer\":3},{}],\"empty\":{},\"none\":[]}");
}

static void test_json_inserts_commas_between_values(void **state)
{
    struct json j;

    json_init(&j, BIG);
    json_arr_open(&j, NULL);
    json_int(&j, NULL, 1);
    json_int(&j, NULL, 2);
    json_arr_open(&j, NULL);
    json_int(&j, NULL, 3);
    json_arr_close(&j);
    json_int(&j, NULL, 4);
    json_arr_close(&j);
    assert_doc(&j, "[1,2,[3],4]");
}

static void test_json_ignores_keys_in_arrays_and_at_top_level(void **state)
{
    struct json j;

    json_init(&j, BIG);
    json_arr_open(&j, "ignored");
    json_bool(&j, "also", 1);
    json_str(&j, "and", "x");
    json_arr_close(&j);
    assert_doc(&j, "[true,\"x\"]");
}

static void test_json_writes_scalar_document(void **state)
{
    struct json j;

    json_init(&j, BIG);
    json_bool(&j, NULL, 0);
    assert_doc(&j, "false");
}

static void test_json_str_null_writes_null(void **state)
{
    struct json j;

    json_init(&j, BIG);
    json_obj_open(&j, NULL);
    json_str(&j, "a", NULL);
    json_strn(&j, "b", NULL, 5);
    json_obj_close(&j);
    assert_doc(&j, "{\"a\":null,\"b\":null}");
}

static void test_json_escapes_quote_and_backslash(void **state)
{
    assert_str_doc("a\"b\\c/d", 7, "\"a\\\"b\\\\c/d\"");
}

static void test_json_escapes_control_chars_as_u00xx(void **state)
{
    assert_str_doc("\n\t\x01\x1f\r", 5, "\"\\u000a\\u0009\\u0001\\u001f\\u000d\"");
}

static void test_json_strn_escapes_embedded_nul(void **state)
{
    assert_str_doc("a\0b", 3, "\"a\\u0000b\"");
}

static void test_json_strn_stops_at_len(void **state)
{
    assert_str_doc("abcdef", 3, "\"abc\"");
}

static void test_json_escapes_keys(void **state)
{
    struct json j;

    json_init(&j, BIG);
    json_obj_open(&j, NULL);
    json_int(&j, "k\"\n", 1);
    json_obj_close(&j);
    assert_doc(&j, "{\"k\\\"\\u000a\":1}");
}

static void test_json_passes_valid_utf8_through(void **state)
{
    /* 2-, 3- and 4-byte forms at the edges of the valid ranges */
    static const char s[] = "\xc3\xa9 \xe4\xb8\xad \xef\xbf\xbd \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf";

    assert_str_doc(s, sizeof s - 1,
                   "\"\xc3\xa9 \xe4\xb8\xad \xef\xbf\xbd \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"");
}

static void test_json_replaces_invalid_utf8_bytes_with_fffd(void **state)
{
    assert_str_doc("a\x80z", 3, "\"a\\ufffdz\"");                       /* lone continuation */
    assert_str_doc("\xc0\xaf", 2, "\"\\ufffd\\ufffd\"");                /* overlong '/' */
    assert_str_doc("\xe0\x80\xaf", 3, "\"\\ufffd\\ufffd\\ufffd\"");     /* overlong, 3 bytes */
    assert_str_doc("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"");     /* surrogate D800 */
    assert_str_doc("\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > U+10FFFF */
    assert_str_doc("\xff", 1, "\"\\ufffd\"");
    assert_str_doc("x\xe4\xb8", 3, "\"x\\ufffd\\ufffd\"");              /* truncated at end */
    assert_str_doc("\xe4\x41", 2, "\"\\ufffdA\"");                      /* bad continuation */
}

static void test_json_writes_int64_extremes(void **state)
{
    struct json j;

    json_init(&j, BIG);
    json_arr_open(&j, NULL);
    json_int(&j, NULL, INT64_MIN);
    json_int(&j, NULL, INT64_MAX);
    json_uint(&j, NULL, UINT64_MAX);
    json_int(&j, NULL, 0);
    json_arr_close(&j);
    assert_doc(&j, "[-9223372036854775808,9223372036854775807,18446744073709551615,0]");
}

static void test_json_double_has_three_decimals(void **state)
{
    struct json j;

    json_init(&j, BIG);
    json_arr_open(&j, NULL);
    json_double(&j, NULL, 1.5);
    json_double(&j, NULL, -0.0004);
    json_double(&j, NULL, 12345.6789);
    json_arr_close(&j);
    assert_doc(&j, "[1.500,-0.000,12345.679]");
}

static void test_json_double_non_finite_is_null(void **state)
{
    struct json j;

    json_init(&j, BIG);
    json_arr_open(&j, NULL);
    json_double(&j, NULL, NAN);
    json_double(&j, NULL, INFINITY);
    json_double(&j, NULL, -INFINITY);
    json_arr_close(&j);
    assert_doc(&j, "[null,null,null]");
}

static void test_json_fails_over_max_size(void **state)
{
    struct json j;
    size_t len = 7;

    json_init(&j, 10);
    json_str(&j, NULL, "0123456789"); /* 12 bytes with the quotes */
    assert_null(json_result(&j, &len));
    assert_int_equal(len, 0);
    assert_int_equal(j.err, FS_ETOOBIG);
    json_free(&j);
}

static void test_json_accepts_document_of_exactly_max_size(void **state)
{
    struct json j;

    json_init(&j, 12);
    json_str(&j, NULL, "0123456789");
    assert_doc(&j, "\"0123456789\"");
}

static void test_json_grows_past_first_allocation(void **state)
{
    struct json j;
    size_t len;
    const char *doc;

    json_init(&j, BIG);
    json_arr_open(&j, NULL);
    for (int i = 0; i < 1000; i++)
        json_int(&j, NULL, 1000 + i);
    json_arr_close(&j);
    doc = json_result(&j, &len);
    assert_non_null(doc);
    assert_int_equal(len, 2 + 1000 * 4 + 999);
    assert_memory_equal(doc, "[1000,1001,", 11);
    assert_string_equal(doc + len - 6, ",1999]");
    json_free(&j);
}

static void test_json_accepts_max_depth(void **state)
{
    struct json j;
    size_t len;

    json_init(&j, BIG);
    for (int i = 0; i < JSON_MAX_DEPTH; i++)
        json_arr_open(&j, NULL);
    for (int i = 0; i < JSON_MAX_DEPTH; i++)
        json_arr_close(&j);
    assert_non_null(json_result(&j, &len));
    assert_int_equal(len, 2 * JSON_MAX_DEPTH);
    json_free(&j);
}

static void test_json_fails_when_nesting_too_deep(void **state)
{
    struct json j;

    json_init(&j, BIG);
    for (int i = 0; i <= JSON_MAX_DEPTH; i++)
        json_obj_open(&j, "k");
    for (int i = 0; i <= JSON_MAX_DEPTH; i++)
        json_obj_close(&j);
    assert_null(json_result(&j, NULL));
    assert_int_equal(j.err, FS_ETOOBIG);
    json_free(&j);
}

static void test_json_error_is_sticky(void **state)
{
    struct json j;

    json_init(&j, 4);
    json_arr_open(&j, NULL);
    json_str(&j, NULL, "too long for four bytes");
    json_arr_close(&j);
    json_int(&j, NULL, 1);
    assert_null(json_result(&j, NULL));
    assert_int_equal(j.err, FS_ETOOBIG);
    json_free(&j);
}

static void test_json_rejects_close_without_open(void **state)
{
    struct json j;

    json_init(&j, BIG);
    json_obj_close(&j);
    assert_null(json_result(&j, NULL));
    assert_int_equal(j.err, FS_EINVAL);
    json_free(&j);
}

static void test_json_rejects_mismatched_close(void **state)
{
    struct json j;

    json_init(&j, BIG);
    json_arr_open(&j, NULL);
    json_obj_close(&j);
    assert_null(json_result(&j, NULL));
    assert_int_equal(j.err, FS_EINVAL);
    json_free(&j);
}

static void test_json_rejects_missing_key_in_object(void **state)
{
    struct json j;

    json_init(&j, BIG);
    json_obj_open(&j, NULL);
    json_int(&j, NULL, 1);
    json_obj_close(&j);
    assert_null(json_result(&j, NULL));
    assert_int_equal(j.err, FS_EINVAL);
    json_free(&j);
}

static void test_json_rejects_second_top_level_value(void **state)
{
    struct json j;

    json_init(&j, BIG);
    json_int(&j, NULL, 1);
    json_int(&j, NULL, 2);
    assert_null(json_result(&j, NULL));
    assert_int_equal(j.err, FS_EINVAL);
    json_free(&j);
}

static void test_json_result_is_null_while_unclosed(void **state)
{
    struct json j;

    json_init(&j, BIG);
    json_obj_open(&j, NULL);
    assert_null(json_result(&j, NULL));
    json_obj_close(&j);
    assert_doc(&j, "{}");
}

static void test_json_empty_document_is_empty_string(void **state)
{
    struct json j;

    json_init(&j, BIG);
    assert_doc(&j, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_writes_nested_object_and_array),
        cmocka_unit_test(test_json_inserts_commas_between_values),
        cmocka_unit_test(test_json_ignores_keys_in_arrays_and_at_top_level),
        cmocka_unit_test(test_json_writes_scalar_document),
        cmocka_unit_test(test_json_str_null_writes_null),
        cmocka_unit_test(test_json_escapes_quote_and_backslash),
        cmocka_unit_test(test_json_escapes_control_chars_as_u00xx),
        cmocka_unit_test(test_json_strn_escapes_embedded_nul),
        cmocka_unit_test(test_json_strn_stops_at_len),
        cmocka_unit_test(test_json_escapes_keys),
        cmocka_unit_test(test_json_passes_valid_utf8_through),
        cmocka_unit_test(test_json_replaces_invalid_utf8_bytes_with_fffd),
        cmocka_unit_test(test_json_writes_int64_extremes),
        cmocka_unit_test(test_json_double_has_three_decimals),
        cmocka_unit_test(test_json_double_non_finite_is_null),
        cmocka_unit_test(test_json_fails_over_max_size),
        cmocka_unit_test(test_json_accepts_document_of_exactly_max_size),
        cmocka_unit_test(test_json_grows_past_first_allocation),
        cmocka_unit_test(test_json_accepts_max_depth),
        cmocka_unit_test(test_json_fails_when_nesting_too_deep),
        cmocka_unit_test(test_json_error_is_sticky),
        cmocka_unit_test(test_json_rejects_close_without_open),
        cmocka_unit_test(test_json_rejects_mismatched_close),
        cmocka_unit_test(test_json_rejects_missing_key_in_object),
        cmocka_unit_test(test_json_rejects_second_top_level_value),
        cmocka_unit_test(test_json_result_is_null_while_unclosed),
        cmocka_unit_test(test_json_empty_document_is_empty_string),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
