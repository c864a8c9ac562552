/* test_hash.c - streaming MD5 (hash.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "floodshare/hash.h"

#define BIG_LEN (600 * 1024 + 17) /* more than two 256 KiB chunks, not a multiple */

static void test_hash_empty_buffer_has_known_md5(void **state)
{
    char hex[HASH_HEX_LEN + 1];

    (void)state;
    assert_int_equal(hash_md5_buf("", 0, hex), FS_OK);
    assert_string_equal(hex, "d41d8cd98f00b204e9800998ecf8427e");
}

static void test_hash_abc_has_known_md5(void **state)
{
    char hex[HASH_HEX_LEN + 1];

    (void)state;
    assert_int_equal(hash_md5_buf("abc", 3, hex), FS_OK);
    assert_string_equal(hex, "900150983cd24fb0d6963f7d28e17f72");
}

static unsigned char *pattern(size_t len)
{
    unsigned char *p = malloc(len);
    uint32_t x = 2463534242u;

    assert_non_null(p);
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)x;
    }
    return p;
}

static void test_hash_streaming_in_odd_pieces_equals_one_shot(void **state)
{
    static const size_t pieces[] = {1, 7, 63, 64, 65, 1000, 4099};
    size_t len = 100000;
    unsigned char *data = pattern(len);
    char whole[HASH_HEX_LEN + 1], streamed[HASH_HEX_LEN + 1];
    struct hash_md5 h;

    (void)state;
    assert_int_equal(hash_md5_buf(data, len, whole), FS_OK);
    assert_int_equal(hash_init(&h), FS_OK);
    for (size_t off = 0, i = 0; off < len; i++) {
        size_t n = pieces[i % (sizeof pieces / sizeof pieces[0])];
        if (n > len - off)
            n = len - off;
        hash_update(&h, data + off, n);
        off += n;
    }
    assert_int_equal(hash_final(&h, streamed), FS_OK);
    assert_null(h.ctx);
    assert_string_equal(streamed, whole);
    free(data);
}

static void test_hash_abort_frees_the_context(void **state)
{
    struct hash_md5 h;

    (void)state;
    assert_int_equal(hash_init(&h), FS_OK);
    hash_update(&h, "abc", 3);
    hash_abort(&h);
    assert_null(h.ctx);
}

static void test_hash_file_over_one_chunk_equals_buffer_hash(void **state)
{
    char path[] = "/tmp/test_hash.XXXXXX";
    unsigned char *data = pattern(BIG_LEN);
    char want[HASH_HEX_LEN + 1], got[HASH_HEX_LEN + 1];
    uint64_t size = 0;
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, BIG_LEN), BIG_LEN);
    close(fd);
    assert_int_equal(hash_md5_buf(data, BIG_LEN, want), FS_OK);
    assert_int_equal(hash_md5_file(path, got, &size), FS_OK);
    assert_string_equal(got, want);
    assert_int_equal(size, BIG_LEN);
    unlink(path);
    free(data);
}

static void test_hash_fd_hashes_from_the_current_offset(void **state)
{
    char path[] = "/tmp/test_hash.XXXXXX";
    char want[HASH_HEX_LEN + 1], got[HASH_HEX_LEN + 1];
    uint64_t size = 0;
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "xyzabc", 6), 6);
    assert_int_equal(lseek(fd, 3, SEEK_SET), 3);
    assert_int_equal(hash_md5_fd(fd, got, &size), FS_OK);
    assert_int_equal(hash_md5_buf("abc", 3, want), FS_OK);
    assert_string_equal(got, want);
    assert_int_equal(size, 3);
    close(fd);
    unlink(path);
}

static void test_hash_missing_file_is_eio(void **state)
{
    char hex[HASH_HEX_LEN + 1] = "x";
    uint64_t size = 99;

    (void)state;
    assert_int_equal(hash_md5_file("/nonexistent/floodshare/none", hex, &size), FS_EIO);
    assert_string_equal(hex, "");
    assert_int_equal(size, 0);
}

static void test_hash_directory_is_eio(void **state)
{
    char hex[HASH_HEX_LEN + 1];

    (void)state;
    assert_int_equal(hash_md5_file("/tmp", hex, NULL), FS_EIO);
}

static void test_hash_hex_valid_accepts_only_32_lower_hex(void **state)
{
    (void)state;
    assert_true(hash_hex_valid("d41d8cd98f00b204e9800998ecf8427e"));
    assert_true(hash_hex_valid("0123456789abcdef0123456789abcdef"));
    assert_false(hash_hex_valid("D41D8CD98F00B204E9800998ECF8427E"));
    assert_false(hash_hex_valid("d41d8cd98f00b204e9800998ecf8427"));
    assert_false(hash_hex_valid("d41d8cd98f00b204e9800998ecf8427e0"));
    assert_false(hash_hex_valid("g41d8cd98f00b204e9800998ecf8427e"));
    assert_false(hash_hex_valid("d41d8cd98f00b204e9800998ecf8427 "));
    assert_false(hash_hex_valid(""));
    assert_false(hash_hex_valid(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_empty_buffer_has_known_md5),
        cmocka_unit_test(test_hash_abc_has_known_md5),
        cmocka_unit_test(test_hash_streaming_in_odd_pieces_equals_one_shot),
        cmocka_unit_test(test_hash_abort_frees_the_context),
        cmocka_unit_test(test_hash_file_over_one_chunk_equals_buffer_hash),
        cmocka_unit_test(test_hash_fd_hashes_from_the_current_offset),
        cmocka_unit_test(test_hash_missing_file_is_eio),
        cmocka_unit_test(test_hash_directory_is_eio),
        cmocka_unit_test(test_hash_hex_valid_accepts_only_32_lower_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
