/* test_partial.c - the resumable download state: parse, append, resume, check. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "floodshare/partial.h"
#include "floodshare/zipio.h"

#define MD5_A "0123456789abcdef0123456789abcdef"

static const char GOOD[] = "floodshare-partial 1\n"
                           "name my%20file.bin\nsize 150000\nmd5 " MD5_A "\nchunk 65536\n"
                           "holder 127.0.0.1:4000\n"
                           "c 0 0000000a\nc 1 0000000b\n";

static void test_state_parses_with_its_chunk_prefix(void **state)
{
    struct partial pt;

    (void)state;
    memset(&pt, 0, sizeof pt);
    assert_int_equal(partial_parse_state(GOOD, strlen(GOOD), &pt), FS_OK);
    assert_string_equal(pt.name, "my file.bin");
    assert_int_equal(pt.size, 150000);
    assert_int_equal(pt.nchunks, 3);
    assert_int_equal(pt.have, 2);
    assert_int_equal(pt.crc[1], 0xb);
    assert_int_equal(pt.holder.port, 4000);
    free(pt.crc);
}

/* The holder's permission bits are kept in the state (mode OCTAL), so a
 * partial completed by one get and placed by the next still gets them. */
static void test_state_keeps_the_holders_mode(void **state)
{
    static const char *bad[] = {
        "floodshare-partial 1\nname a\nsize 1\nmd5 " MD5_A "\nmode 8\n",
        "floodshare-partial 1\nname a\nsize 1\nmd5 " MD5_A "\nmode 10000\n",
        "floodshare-partial 1\nname a\nsize 1\nmd5 " MD5_A "\nmode \n",
        "floodshare-partial 1\nname a\nsize 1\nmd5 " MD5_A "\nmode 644\nmode 644\n",
    };
    char text[300];
    struct partial pt;

    (void)state;
    memset(&pt, 0, sizeof pt);
    assert_int_equal(partial_parse_state(GOOD, strlen(GOOD), &pt), FS_OK);
    assert_int_equal(pt.has_mode, 0);
    free(pt.crc);
    snprintf(text, sizeof text, "floodshare-partial 1\nname a\nsize 1\nmd5 " MD5_A
             "\nmode 750\nc 0 0000000a\n");
    memset(&pt, 0, sizeof pt);
    assert_int_equal(partial_parse_state(text, strlen(text), &pt), FS_OK);
    assert_int_equal(pt.has_mode, 1);
    assert_int_equal(pt.mode, 0750);
    assert_int_equal(pt.have, 1);
    free(pt.crc);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&pt, 0, sizeof pt);
        assert_int_equal(partial_parse_state(bad[i], strlen(bad[i]), &pt), FS_EPROTO);
    }
}

static void test_state_torn_last_line_is_ignored(void **state)
{
    struct partial pt;
    char text[256];

    (void)state;
    snprintf(text, sizeof text, "%sc 2 0000", GOOD); /* killed while appending */
    memset(&pt, 0, sizeof pt);
    assert_int_equal(partial_parse_state(text, strlen(text), &pt), FS_OK);
    assert_int_equal(pt.have, 2);
    free(pt.crc);
}

static void test_state_refuses_gaps_garbage_and_other_versions(void **state)
{
    static const char *bad[] = {
        "floodshare-partial 2\nname a\nsize 1\nmd5 " MD5_A "\nchunk 65536\n",
        "floodshare-partial 1\nname a\nsize 150000\nmd5 " MD5_A "\nchunk 65536\nc 1 0000000a\n",
        "floodshare-partial 1\nname ..\nsize 1\nmd5 " MD5_A "\nchunk 65536\n",
        "floodshare-partial 1\nname a\nsize 1\nmd5 XYZ\nchunk 65536\n",
        "floodshare-partial 1\nname a\nsize 1\nmd5 " MD5_A "\nchunk 0\n",
        "floodshare-partial 1\nname a\nsize 1\nmd5 " MD5_A "\nchunk 3000\n",
        "floodshare-partial 1\nname a\nsize 1\nmd5 " MD5_A "\nchunk 32768\n",
        "floodshare-partial 1\nname a\nsize 1\nmd5 " MD5_A "\nchunk 8388608\n",
        "floodshare-partial 1\nname a\nmd5 " MD5_A "\nc 0 0000000a\n",
        "floodshare-partial 1\nname a\nsize 10\nmd5 " MD5_A "\nc 0 0000000a\nchunk 65536\n",
        "floodshare-partial 1\nname a\nsize 150000\nmd5 " MD5_A "\nchunk 65536\nc 0 zz\n",
        "floodshare-partial 1\nname a\nsize 150000\nmd5 " MD5_A "\nchunk 65536\nbogus line\n",
        "",
    };

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct partial pt;
        memset(&pt, 0, sizeof pt);
        assert_int_equal(partial_parse_state(bad[i], strlen(bad[i]), &pt), FS_EPROTO);
        assert_null(pt.crc);
    }
}

/* Found by fuzz/fuzz_state.c: a second "size" line after "chunk" changed
 * the size without resizing the chunk table, and a NUL byte cut a value
 * short ("10485\0junk" read as 10485). Either way the state no longer said
 * what its text did. */
static void test_state_refuses_repeated_keys_and_nul_bytes(void **state)
{
    static const char head[] = "floodshare-partial 1\nname a\nsize 150000\nmd5 " MD5_A
                               "\nchunk 65536\n";
    static const struct {
        const char *text;
        size_t len;
    } bad[] = {
#define T(s) {s, sizeof s - 1}
        T("floodshare-partial 1\nname a\nsize 150000\nmd5 " MD5_A "\nchunk 65536\nsize 10485\n"),
        T("floodshare-partial 1\nname a\nsize 150000\nmd5 " MD5_A "\nchunk 65536\nchunk 131072\n"),
        T("floodshare-partial 1\nname a\nname b\nsize 150000\nmd5 " MD5_A "\nchunk 65536\n"),
        T("floodshare-partial 1\nname a\nsize 150000\nmd5 " MD5_A "\nmd5 " MD5_A "\nchunk 65536\n"),
        T("floodshare-partial 1\nname a\nsize 150000\0junk\nmd5 " MD5_A "\nchunk 65536\n"),
        T("floodshare-partial 1\nname a\nsize 150000\nmd5 " MD5_A "\nchunk 65536\n"
          "c 0 0000000a\0\n"),
#undef T
    };
    struct partial pt;

    (void)state;
    memset(&pt, 0, sizeof pt);
    assert_int_equal(partial_parse_state(head, sizeof head - 1, &pt), FS_OK);
    free(pt.crc);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&pt, 0, sizeof pt);
        assert_int_equal(partial_parse_state(bad[i].text, bad[i].len, &pt), FS_EPROTO);
        assert_null(pt.crc);
    }
}

/* Found by fuzz/fuzz_state.c: "size" of a terabyte in chunks of 1 byte made
 * the parser calloc() a CRC table of 4 TiB. Chunks are now at least 64 KiB
 * and the table is bounded (2^24 chunks); just past the bound it is
 * refused, at it accepted. */
static void test_state_refuses_a_chunk_table_past_its_bound(void **state)
{
    static const char over[] = "floodshare-partial 1\nname a\nsize 1099511627777\nmd5 " MD5_A
                               "\nchunk 65536\n";
    static const char huge[] = "floodshare-partial 1\nname a\nsize 1125899906842624\nmd5 " MD5_A
                               "\nchunk 65536\n";
    static const char old_over[] = "floodshare-partial 1\nname a\nsize 70368744177664\nmd5 " MD5_A
                                   "\n";
    static const char tiny[] = "floodshare-partial 1\nname a\nsize 16777215\nmd5 " MD5_A
                               "\nchunk 1\n";
    static const char at[] = "floodshare-partial 1\nname a\nsize 1099511562240\nmd5 " MD5_A
                             "\nchunk 65536\n";
    struct partial pt;

    (void)state;
    memset(&pt, 0, sizeof pt);
    assert_int_equal(partial_parse_state(over, sizeof over - 1, &pt), FS_EPROTO);
    assert_null(pt.crc);
    assert_int_equal(partial_parse_state(huge, sizeof huge - 1, &pt), FS_EPROTO);
    assert_null(pt.crc);
    assert_int_equal(partial_parse_state(old_over, sizeof old_over - 1, &pt), FS_EPROTO);
    assert_null(pt.crc);
    assert_int_equal(partial_parse_state(tiny, sizeof tiny - 1, &pt), FS_EPROTO);
    assert_null(pt.crc);
    assert_int_equal(partial_parse_state(at, sizeof at - 1, &pt), FS_OK);
    assert_int_equal(pt.nchunks, 16777215);
    free(pt.crc);
}

/* A state written before chunks were negotiated has no "chunk" line: its
 * chunks are PARTIAL_CHUNK (4 MiB), and its "c" lines still count. */
static void test_state_without_a_chunk_line_means_4_mib(void **state)
{
    static const char old[] = "floodshare-partial 1\nname a\nsize 10000000\nmd5 " MD5_A
                              "\nholder 127.0.0.1:4000\nc 0 0000000a\n";
    static const char old_empty[] = "floodshare-partial 1\nname a\nsize 10000000\nmd5 " MD5_A
                                    "\n";
    struct partial pt;

    (void)state;
    memset(&pt, 0, sizeof pt);
    assert_int_equal(partial_parse_state(old, sizeof old - 1, &pt), FS_OK);
    assert_int_equal(pt.chunk, PARTIAL_CHUNK);
    assert_int_equal(pt.nchunks, 3);
    assert_int_equal(pt.have, 1);
    assert_int_equal(pt.crc[0], 0xa);
    free(pt.crc);
    memset(&pt, 0, sizeof pt);
    assert_int_equal(partial_parse_state(old_empty, sizeof old_empty - 1, &pt), FS_OK);
    assert_int_equal(pt.chunk, PARTIAL_CHUNK);
    assert_int_equal(pt.have, 0);
    free(pt.crc);
}

static void test_chunk_sizes_are_powers_of_two_from_64k_to_4m(void **state)
{
    (void)state;
    assert_true(partial_chunk_valid(65536));
    assert_true(partial_chunk_valid(1024 * 1024));
    assert_true(partial_chunk_valid(4 * 1024 * 1024));
    assert_false(partial_chunk_valid(0));
    assert_false(partial_chunk_valid(32768));
    assert_false(partial_chunk_valid(3 * 65536));
    assert_false(partial_chunk_valid(8 * 1024 * 1024));
    assert_false(partial_chunk_valid(UINT64_MAX));
}

struct fx {
    char dir[64];
    int dfd; /* dir, as the peer holds its state folder */
    char data[3 * PARTIAL_CHUNK + 100];
    char md5[33];
};

static int setup(void **state)
{
    struct fx *f = malloc(sizeof *f);
    struct hash_md5 h;

    strcpy(f->dir, "/tmp/fs_partial_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(f->dfd >= 0);
    for (size_t i = 0; i < sizeof f->data; i++)
        f->data[i] = (char)(i * 2654435761u >> 11);
    hash_init(&h);
    hash_update(&h, f->data, sizeof f->data);
    hash_final(&h, f->md5);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    close(f->dfd);
    zipio_remove_tree(f->dir);
    free(f);
    return 0;
}

static void put(struct partial *pt, const struct fx *f, uint64_t idx)
{
    size_t off = (size_t)(idx * PARTIAL_CHUNK);
    size_t n = sizeof f->data - off < PARTIAL_CHUNK ? sizeof f->data - off : PARTIAL_CHUNK;
    uint32_t crc = (uint32_t)crc32(0, (const Bytef *)f->data + off, (uInt)n);
    assert_int_equal(partial_put(pt, idx, f->data + off, n, crc), FS_OK);
}

/* Like put(), in the partial's own chunk size. */
static void put_sized(struct partial *pt, const struct fx *f, uint64_t idx)
{
    size_t off = (size_t)(idx * pt->chunk);
    size_t n = sizeof f->data - off < pt->chunk ? sizeof f->data - off : (size_t)pt->chunk;
    uint32_t crc = (uint32_t)crc32(0, (const Bytef *)f->data + off, (uInt)n);
    assert_int_equal(partial_put(pt, idx, f->data + off, n, crc), FS_OK);
}

/* Checks the prefix against its CRCs and that md5 covers exactly it. */
static void assert_prefix_checks(struct partial *pt, const struct fx *f, uint64_t bytes)
{
    struct hash_md5 h, want;
    char hex[33], want_hex[33];
    uint64_t bad = 99;

    assert_int_equal(pt->have * pt->chunk, bytes);
    hash_init(&h);
    assert_int_equal(partial_check(pt, &h, &bad), FS_OK);
    assert_int_equal(bad, 0);
    assert_int_equal(pt->have * pt->chunk, bytes);
    hash_final(&h, hex);
    hash_init(&want);
    hash_update(&want, f->data, (size_t)bytes);
    hash_final(&want, want_hex);
    assert_string_equal(hex, want_hex);
}

/* A partial keeps the chunk size it was made with: a resume asks for the
 * same, whatever the caller would pick for a new download. */
static void test_the_state_records_the_chunk_size_it_was_made_with(void **state)
{
    struct fx *f = *state;
    struct partial *pt;
    int resumed;

    assert_int_equal(partial_open_at(f->dfd, "x.bin", sizeof f->data, f->md5, 1000, &pt, &resumed),
                     FS_EINVAL);
    assert_null(pt);
    assert_int_equal(partial_open_at(f->dfd, "x.bin", sizeof f->data, f->md5, 1024 * 1024, &pt,
                                  &resumed), FS_OK);
    assert_int_equal(pt->chunk, 1024 * 1024);
    assert_int_equal(pt->nchunks, 13);
    for (uint64_t i = 0; i < 6; i++)
        put_sized(pt, f, i);
    partial_close(pt);

    assert_int_equal(partial_open_at(f->dfd, "x.bin", sizeof f->data, f->md5, PARTIAL_CHUNK, &pt,
                                  &resumed), FS_OK);
    assert_true(resumed);
    assert_int_equal(pt->chunk, 1024 * 1024);
    assert_int_equal(pt->have, 6);
    assert_prefix_checks(pt, f, 6 * 1024 * 1024);
    partial_close(pt);
}

/* A resume cuts the prefix back to whole 4 MiB, then re-cuts it to the
 * chunk a holder sends, bigger (CRCs combined) or smaller (read back):
 * the state stays checkable and no byte of the prefix is lost. */
static void test_round_and_rechunk_keep_the_prefix_checkable(void **state)
{
    struct fx *f = *state;
    struct partial *pt;
    int resumed;

    assert_int_equal(partial_open_at(f->dfd, "x.bin", sizeof f->data, f->md5, 1024 * 1024, &pt,
                                  &resumed), FS_OK);
    for (uint64_t i = 0; i < 6; i++)
        put_sized(pt, f, i);
    assert_int_equal(partial_rechunk(pt, PARTIAL_CHUNK), FS_EINVAL); /* 6 MiB: not whole */
    assert_int_equal(partial_rechunk(pt, 3 * 65536), FS_EINVAL);
    assert_int_equal(partial_round(pt, PARTIAL_CHUNK_MAX), FS_OK);
    assert_int_equal(pt->have, 4);
    assert_int_equal(partial_rechunk(pt, PARTIAL_CHUNK), FS_OK);
    assert_int_equal(pt->chunk, PARTIAL_CHUNK);
    assert_int_equal(pt->have, 1);
    assert_int_equal(pt->nchunks, 4);
    partial_close(pt);

    assert_int_equal(partial_open_at(f->dfd, "x.bin", sizeof f->data, f->md5, 1024 * 1024, &pt,
                                  &resumed), FS_OK);
    assert_true(resumed);
    assert_int_equal(pt->chunk, PARTIAL_CHUNK); /* saved */
    assert_prefix_checks(pt, f, PARTIAL_CHUNK);
    assert_int_equal(partial_rechunk(pt, 65536), FS_OK);
    assert_int_equal(pt->have, 64);
    put_sized(pt, f, 64); /* goes on in the new size */
    partial_close(pt);

    assert_int_equal(partial_open_at(f->dfd, "x.bin", sizeof f->data, f->md5, PARTIAL_CHUNK, &pt,
                                  &resumed), FS_OK);
    assert_int_equal(pt->chunk, 65536);
    assert_prefix_checks(pt, f, 65 * 65536);
    partial_close(pt);
}

static void test_reopen_resumes_and_check_rebuilds_the_md5(void **state)
{
    struct fx *f = *state;
    struct partial *pt;
    struct hash_md5 h;
    char hex[33];
    int resumed;
    uint64_t bad;

    assert_int_equal(partial_open_at(f->dfd, "x.bin", sizeof f->data, f->md5, PARTIAL_CHUNK,
                                  &pt, &resumed), FS_OK);
    assert_false(resumed);
    put(pt, f, 0);
    put(pt, f, 1);
    partial_close(pt); /* as a kill would leave it */

    assert_int_equal(partial_open_at(f->dfd, "x.bin", sizeof f->data, f->md5, PARTIAL_CHUNK,
                                  &pt, &resumed), FS_OK);
    assert_true(resumed);
    assert_int_equal(pt->have, 2);
    hash_init(&h);
    assert_int_equal(partial_check(pt, &h, &bad), FS_OK);
    assert_int_equal(bad, 0);
    put(pt, f, 2);
    put(pt, f, 3);
    hash_update(&h, f->data + 2 * PARTIAL_CHUNK, sizeof f->data - 2 * PARTIAL_CHUNK);
    hash_final(&h, hex);
    assert_string_equal(hex, f->md5);

    char final[128];
    snprintf(final, sizeof final, "%s/x.bin", f->dir);
    assert_int_equal(partial_finish_at(pt, f->dfd, "x.bin", 1), FS_OK);
    partial_close(pt);
    struct stat sb;
    assert_int_equal(stat(final, &sb), 0);
    assert_int_equal(sb.st_size, sizeof f->data);
}

/* Aligned buffers take the O_DIRECT path (whole blocks direct, the short
 * last chunk's tail buffered), misaligned ones the page cache: the bytes
 * on disk must be the same either way. */
static void put_all_from(struct fx *f, size_t misalign)
{
    struct partial *pt;
    int resumed;
    char *buf;

    assert_int_equal(posix_memalign((void **)&buf, PARTIAL_ALIGN, PARTIAL_CHUNK + PARTIAL_ALIGN),
                     0);
    assert_int_equal(partial_open_at(f->dfd, "x.bin", sizeof f->data, f->md5, PARTIAL_CHUNK,
                                  &pt, &resumed), FS_OK);
    if (misalign == 0 && pt->dfd < 0)
        print_message("note: %s takes no O_DIRECT; only the buffered path ran\n", f->dir);
    for (uint64_t idx = 0; idx < pt->nchunks; idx++) {
        size_t off = (size_t)(idx * PARTIAL_CHUNK);
        size_t n = sizeof f->data - off < PARTIAL_CHUNK ? sizeof f->data - off : PARTIAL_CHUNK;
        memcpy(buf + misalign, f->data + off, n);
        uint32_t crc = (uint32_t)crc32(0, (const Bytef *)buf + misalign, (uInt)n);
        assert_int_equal(partial_put(pt, idx, buf + misalign, n, crc), FS_OK);
    }
    char *back = malloc(sizeof f->data + 1);
    assert_int_equal(pread(pt->fd, back, sizeof f->data + 1, 0), (ssize_t)sizeof f->data);
    assert_memory_equal(back, f->data, sizeof f->data);
    free(back);
    partial_discard(pt);
    partial_close(pt);
    free(buf);
}

static void test_direct_and_buffered_writes_store_the_same_bytes(void **state)
{
    put_all_from(*state, 0);
    put_all_from(*state, 1);
}

static void test_check_forgets_a_tampered_chunk_and_all_after_it(void **state)
{
    struct fx *f = *state;
    struct partial *pt;
    struct hash_md5 h;
    int resumed;
    uint64_t bad;

    assert_int_equal(partial_open_at(f->dfd, "x.bin", sizeof f->data, f->md5, PARTIAL_CHUNK,
                                  &pt, &resumed), FS_OK);
    put(pt, f, 0);
    put(pt, f, 1);
    put(pt, f, 2);
    char path[128];
    snprintf(path, sizeof path, "%s/%s", f->dir, pt->data_name);
    partial_close(pt);
    int fd = open(path, O_WRONLY);
    assert_int_equal(pwrite(fd, "X", 1, PARTIAL_CHUNK + 5), 1);
    close(fd);

    assert_int_equal(partial_open_at(f->dfd, "x.bin", sizeof f->data, f->md5, PARTIAL_CHUNK,
                                  &pt, &resumed), FS_OK);
    hash_init(&h);
    assert_int_equal(partial_check(pt, &h, &bad), FS_OK);
    hash_abort(&h);
    assert_int_equal(pt->have, 1);
    assert_int_equal(bad, 2);
    partial_close(pt);
    /* and the state on disk says so too */
    assert_int_equal(partial_open_at(f->dfd, "x.bin", sizeof f->data, f->md5, PARTIAL_CHUNK,
                                  &pt, &resumed), FS_OK);
    assert_int_equal(pt->have, 1);
    partial_close(pt);
}

static void test_second_download_of_the_same_item_is_refused(void **state)
{
    struct fx *f = *state;
    struct partial *a, *b;
    int resumed;

    assert_int_equal(partial_open_at(f->dfd, "x.bin", sizeof f->data, f->md5, PARTIAL_CHUNK,
                                  &a, &resumed), FS_OK);
    put(a, f, 0);
    assert_int_equal(partial_open_at(f->dfd, "x.bin", sizeof f->data, f->md5, PARTIAL_CHUNK,
                                  &b, &resumed),
                     FS_EBUSY);
    assert_int_equal(a->have, 1);
    partial_close(a);
    assert_int_equal(partial_open_at(f->dfd, "x.bin", sizeof f->data, f->md5, PARTIAL_CHUNK,
                                  &b, &resumed), FS_OK);
    assert_true(resumed);
    partial_close(b);
}

static void test_list_reports_bytes_present(void **state)
{
    struct fx *f = *state;
    struct partial *pt;
    struct partial_info *list = NULL;
    int resumed;

    assert_int_equal(partial_open_at(f->dfd, "x.bin", sizeof f->data, f->md5, PARTIAL_CHUNK,
                                  &pt, &resumed), FS_OK);
    put(pt, f, 0);
    partial_close(pt);
    assert_int_equal(partial_list(f->dir, &list), 1);
    assert_string_equal(list[0].name, "x.bin");
    assert_int_equal(list[0].have_bytes, PARTIAL_CHUNK);
    assert_int_equal(list[0].size, sizeof f->data);
    free(list);
}

static void test_another_item_with_that_md5_starts_afresh(void **state)
{
    struct fx *f = *state;
    struct partial *pt;
    int resumed;

    assert_int_equal(partial_open_at(f->dfd, "x.bin", sizeof f->data, f->md5, PARTIAL_CHUNK,
                                  &pt, &resumed), FS_OK);
    put(pt, f, 0);
    partial_close(pt);
    assert_int_equal(partial_open_at(f->dfd, "y.bin", sizeof f->data, f->md5, PARTIAL_CHUNK,
                                  &pt, &resumed), FS_OK);
    assert_false(resumed);
    assert_int_equal(pt->have, 0);
    partial_close(pt);
}

static void touch(const char *dir, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    close(fd);
}

static int exists(const char *dir, const char *name)
{
    char path[256];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return lstat(path, &sb) == 0;
}

#define MD5_B "1123456789abcdef0123456789abcdef"
#define MD5_C "2123456789abcdef0123456789abcdef"
#define MD5_D "3123456789abcdef0123456789abcdef"

static void test_sweep_removes_what_a_kill_orphans_and_nothing_else(void **state)
{
    struct fx *f = *state;

    touch(f->dir, MD5_A ".state.tmp");            /* killed inside partial_save() */
    touch(f->dir, MD5_B ".state");                /* killed after the rename into place */
    touch(f->dir, MD5_C ".part");                 /* killed before the first save */
    touch(f->dir, MD5_D ".part");                 /* a partial download: kept */
    touch(f->dir, MD5_D ".state");
    touch(f->dir, "index.cache");                 /* not ours */
    touch(f->dir, "notes.state.tmp");             /* not an md5 name */
    touch(f->dir, "0123456789abcdef0123456789abcdeg.part");
    assert_int_equal(partial_sweep_at(f->dfd), 3);
    assert_false(exists(f->dir, MD5_A ".state.tmp"));
    assert_false(exists(f->dir, MD5_B ".state"));
    assert_false(exists(f->dir, MD5_C ".part"));
    assert_true(exists(f->dir, MD5_D ".part"));
    assert_true(exists(f->dir, MD5_D ".state"));
    assert_true(exists(f->dir, "index.cache"));
    assert_true(exists(f->dir, "notes.state.tmp"));
    assert_true(exists(f->dir, "0123456789abcdef0123456789abcdeg.part"));
    assert_int_equal(partial_sweep_at(f->dfd), 0);
}

static void test_trim_gives_back_the_room_of_a_torn_chunk(void **state)
{
    struct fx *f = *state;
    struct partial *pt;
    struct stat sb;
    int resumed;

    assert_int_equal(partial_open_at(f->dfd, "x.bin", sizeof f->data, f->md5, PARTIAL_CHUNK,
                                  &pt, &resumed), FS_OK);
    put(pt, f, 0);
    /* chunk 1 half written when the disk filled up */
    assert_int_equal(pwrite(pt->fd, f->data, PARTIAL_CHUNK / 2, PARTIAL_CHUNK),
                     PARTIAL_CHUNK / 2);
    assert_int_equal(partial_trim(pt), FS_OK);
    assert_int_equal(fstat(pt->fd, &sb), 0);
    assert_int_equal(sb.st_size, PARTIAL_CHUNK);
    partial_close(pt);
    assert_int_equal(partial_open_at(f->dfd, "x.bin", sizeof f->data, f->md5, PARTIAL_CHUNK,
                                  &pt, &resumed), FS_OK);
    assert_true(resumed);
    assert_int_equal(pt->have, 1);
    partial_close(pt);
}

static void test_failed_save_keeps_the_old_state_whole(void **state)
{
    struct fx *f = *state;
    struct partial *pt;
    char tmp[128];
    int resumed;

    assert_int_equal(partial_open_at(f->dfd, "x.bin", sizeof f->data, f->md5, PARTIAL_CHUNK,
                                  &pt, &resumed), FS_OK);
    pt->durable = 1;
    put(pt, f, 0);
    assert_int_equal(partial_save(pt), FS_OK);
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", f->dir, pt->state_name);
    struct stat sb;
    assert_int_equal(lstat(tmp, &sb), -1); /* renamed away */
    put(pt, f, 1);
    assert_int_equal(mkdir(tmp, 0700), 0); /* the temporary cannot be written */
    assert_int_equal(partial_save(pt), FS_EIO);
    partial_close(pt);
    assert_int_equal(rmdir(tmp), 0);
    assert_int_equal(partial_open_at(f->dfd, "x.bin", sizeof f->data, f->md5, PARTIAL_CHUNK,
                                  &pt, &resumed), FS_OK);
    assert_int_equal(pt->have, 2); /* the appended line of chunk 1 went to the old state */
    partial_close(pt);
}

/* Finishes the whole of f's data as name with umask mask; its mode. */
static mode_t finish_with(struct fx *f, const char *name, int has_mode, mode_t mode, mode_t mask)
{
    struct partial *pt;
    struct stat sb;
    int resumed;

    assert_int_equal(partial_open_at(f->dfd, name, sizeof f->data, f->md5, PARTIAL_CHUNK, &pt,
                                     &resumed), FS_OK);
    for (uint64_t i = 0; i < pt->nchunks; i++)
        put(pt, f, i);
    pt->has_mode = has_mode;
    pt->mode = mode;
    assert_int_equal(partial_save(pt), FS_OK);
    partial_close(pt);
    /* placed by a later open, as after a kill: the mode came from the state */
    assert_int_equal(partial_open_at(f->dfd, name, sizeof f->data, f->md5, PARTIAL_CHUNK, &pt,
                                     &resumed), FS_OK);
    assert_true(resumed);
    assert_int_equal(pt->has_mode, has_mode);
    mode_t old = umask(mask);
    assert_int_equal(partial_umask(), mask);
    fs_status st = partial_finish_at(pt, f->dfd, name, 0);
    umask(old);
    assert_int_equal(st, FS_OK);
    partial_close(pt);
    assert_int_equal(fstatat(f->dfd, name, &sb, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(unlinkat(f->dfd, name, 0), 0);
    return sb.st_mode & 07777;
}

/* Modes follow the holder: a file fetched in chunks gets the holder's
 * permission bits (never setuid/setgid/sticky), masked by the umask, not
 * the 0600 its partial had; 0644 when the holder sent none. */
static void test_finish_gives_the_holders_mode_masked_by_the_umask(void **state)
{
    struct fx *f = *state;

    assert_int_equal(finish_with(f, "run.sh", 1, 0755, 022), 0755);
    assert_int_equal(finish_with(f, "run.sh", 1, 0755, 027), 0750);
    assert_int_equal(finish_with(f, "private", 1, 0600, 022), 0600);
    assert_int_equal(finish_with(f, "suid", 1, 04755, 022), 0755);
    assert_int_equal(finish_with(f, "old-holder", 0, 0, 022), 0644);
    assert_int_equal(finish_with(f, "old-holder", 0, 0, 077), 0600);
}

static void test_an_md5_that_is_not_hex_names_no_file(void **state)
{
    struct fx *f = *state;
    struct partial *pt = (struct partial *)1;
    int resumed;

    assert_int_equal(partial_open_at(f->dfd, "x.bin", 1, "../../../../../../tmp/x_not_an_md5x",
                                     PARTIAL_CHUNK, &pt, &resumed), FS_EINVAL);
    assert_null(pt);
}

static void test_an_absurd_size_is_refused_before_anything_is_made(void **state)
{
    struct fx *f = *state;
    struct partial *pt = (struct partial *)1;
    int resumed;

    /* A FOUND may announce any size; a CRC per 4 MiB chunk of 2^63 bytes would be 8 TiB. */
    assert_int_equal(partial_open_at(f->dfd, "x.bin", UINT64_C(1) << 63, f->md5, PARTIAL_CHUNK,
                                  &pt, &resumed),
                     FS_ETOOBIG);
    assert_null(pt);
    struct partial_info *list = NULL;
    assert_int_equal(partial_list(f->dir, &list), 0);
    free(list);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_parses_with_its_chunk_prefix),
        cmocka_unit_test(test_state_torn_last_line_is_ignored),
        cmocka_unit_test(test_state_keeps_the_holders_mode),
        cmocka_unit_test_setup_teardown(test_finish_gives_the_holders_mode_masked_by_the_umask,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_md5_that_is_not_hex_names_no_file, setup,
                                        teardown),
        cmocka_unit_test(test_state_refuses_gaps_garbage_and_other_versions),
        cmocka_unit_test(test_state_refuses_repeated_keys_and_nul_bytes),
        cmocka_unit_test(test_state_refuses_a_chunk_table_past_its_bound),
        cmocka_unit_test(test_state_without_a_chunk_line_means_4_mib),
        cmocka_unit_test(test_chunk_sizes_are_powers_of_two_from_64k_to_4m),
        cmocka_unit_test_setup_teardown(test_reopen_resumes_and_check_rebuilds_the_md5, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_check_forgets_a_tampered_chunk_and_all_after_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_download_of_the_same_item_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_list_reports_bytes_present, setup, teardown),
        cmocka_unit_test_setup_teardown(test_the_state_records_the_chunk_size_it_was_made_with,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_and_rechunk_keep_the_prefix_checkable, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_an_absurd_size_is_refused_before_anything_is_made,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_and_buffered_writes_store_the_same_bytes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_another_item_with_that_md5_starts_afresh, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sweep_removes_what_a_kill_orphans_and_nothing_else,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim_gives_back_the_room_of_a_torn_chunk, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_failed_save_keeps_the_old_state_whole, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
