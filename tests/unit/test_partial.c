/* test_partial.c - the resumable download state: parse, append, resume, check. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "floodshare/partial.h"
#include "floodshare/pieces.h"
#include "floodshare/zipio.h"

#define MD5_A "0123456789abcdef0123456789abcdef"
#define ROOT_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ROOT_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define ROOT_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

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

/* --- version 2: pieces in any order (docs/SWARMING.md) --- */

#define PIECE (512u * 1024)

static struct partial *open_v2(struct fx *f, uint64_t piece, const char *root, int *resumed)
{
    struct partial *pt = NULL;

    assert_int_equal(partial_open_pieces_at(f->dfd, "x.bin", sizeof f->data, f->md5, piece, root,
                                            &pt, resumed), FS_OK);
    assert_int_equal(pt->version, 2);
    assert_int_equal(pt->npieces, (sizeof f->data + piece - 1) / piece);
    return pt;
}

/* Writes piece idx of f's data from an aligned copy (the direct path), or
 * from an unaligned one (buffered), and marks it. */
static void put_piece(struct partial *pt, const struct fx *f, uint64_t idx, int aligned)
{
    size_t off = (size_t)(idx * pt->piece), n = (size_t)partial_piece_len(pt, idx);
    char *buf;

    assert_int_equal(posix_memalign((void **)&buf, PARTIAL_ALIGN, pt->piece + 1), 0);
    memcpy(buf + !aligned, f->data + off, n);
    assert_int_equal(partial_put_piece(pt, idx, buf + !aligned, n), FS_OK);
    partial_set_piece(pt, idx);
    free(buf);
}

/* Reads piece idx back (direct when aligned) and compares it with f's data. */
static void assert_piece_reads_back(const struct partial *pt, const struct fx *f, uint64_t idx,
                                    int aligned)
{
    size_t off = (size_t)(idx * pt->piece), n = (size_t)partial_piece_len(pt, idx);
    char *buf;

    assert_int_equal(posix_memalign((void **)&buf, PARTIAL_ALIGN, pt->piece + 1), 0);
    assert_int_equal(partial_read_piece(pt, idx, buf + !aligned, n), FS_OK);
    assert_memory_equal(buf + !aligned, f->data + off, n);
    free(buf);
}

static char *state_text(const struct fx *f)
{
    char path[128];
    static char text[65536];

    snprintf(path, sizeof path, "%s/%s.state", f->dir, f->md5);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = read(fd, text, sizeof text - 1);
    assert_true(n > 0);
    text[n] = '\0';
    close(fd);
    return text;
}

/* Pieces written in any order are named by the appended "p" lines alone (no
 * save in between), come back from a reopen exactly, and read back whole;
 * the state text round-trips, a repeated or torn line changes nothing. */
static void test_v2_roundtrip_any_order(void **state)
{
    static const uint64_t order[] = {7, 0, 24, 3};
    struct fx *f = *state;
    struct partial_info *list = NULL;
    struct partial back;
    int resumed;

    struct partial *pt = open_v2(f, PIECE, ROOT_A, &resumed);
    assert_false(resumed);
    assert_int_equal(pt->npieces, 25); /* 24 whole pieces and 100 bytes */
    for (size_t i = 0; i < 4; i++)
        put_piece(pt, f, order[i], i % 2);
    partial_close(pt); /* killed: only the appended lines name them */
    pt = open_v2(f, PIECE, ROOT_A, &resumed);
    assert_true(resumed);
    assert_int_equal(pt->nhave, 4);
    for (uint64_t i = 0; i < pt->npieces; i++)
        assert_int_equal(partial_has_piece(pt, i), i == 0 || i == 3 || i == 7 || i == 24);
    for (size_t i = 0; i < 4; i++)
        assert_piece_reads_back(pt, f, order[i], !(i % 2));
    assert_string_equal(pt->root, ROOT_A);
    partial_close(pt);
    assert_int_equal(partial_list(f->dir, &list), 1);
    assert_int_equal(list[0].have_bytes, 3 * PIECE + 100);
    free(list);

    /* the saved text parses to the same state; a repeated "p" and a torn
     * last line are harmless */
    char text[4096];
    snprintf(text, sizeof text, "%sp 7\np 2", state_text(f));
    memset(&back, 0, sizeof back);
    assert_int_equal(partial_parse_state(text, strlen(text), &back), FS_OK);
    assert_int_equal(back.version, 2);
    assert_int_equal(back.nhave, 4);
    assert_int_equal(back.piece, PIECE);
    assert_int_equal(back.size, sizeof f->data);
    assert_null(back.crc);
    assert_false(partial_has_piece(&back, 2));
    free(back.bits);
}

/* A "p" line naming a piece past the last one, a "p" before the piece size
 * is known, a v1 line in a v2 state or a piece size no list has: refused,
 * with nothing allocated. The writer refuses such an index too. */
static void test_v2_index_past_end_refused(void **state)
{
#define HDR2 "floodshare-partial 2\nname a\nsize 150000\nmd5 " MD5_A "\n"
    static const char *bad[] = {
        HDR2 "piece 65536\nroot " ROOT_A "\np 3\n",        /* 3 pieces: 0..2 */
        HDR2 "piece 65536\nroot " ROOT_A "\np 18446744073709551615\n",
        HDR2 "piece 65536\nroot " ROOT_A "\np -1\n",
        HDR2 "root " ROOT_A "\np 0\npiece 65536\n",         /* p before piece */
        HDR2 "piece 65536\nroot " ROOT_A "\nc 0 0000000a\n", /* a v1 line */
        HDR2 "piece 65536\nchunk 65536\nroot " ROOT_A "\n",
        HDR2 "piece 65536\n",                                /* no root */
        HDR2 "piece 65536\nroot " ROOT_A "\nroot " ROOT_B "\n",
        HDR2 "piece 100000\nroot " ROOT_A "\n",
        HDR2 "piece 65536\nroot AAAA\n",
        "floodshare-partial 2\nname a\nsize 68719476737\nmd5 " MD5_A
        "\npiece 65536\nroot " ROOT_A "\n", /* 2^20 + 1 pieces: no list is that long */
        "floodshare-partial 1\nname a\nsize 150000\nmd5 " MD5_A "\nchunk 65536\np 0\n",
    };
    static const char good[] = HDR2 "piece 65536\nroot " ROOT_A "\np 2\np 0\n";
    struct fx *f = *state;
    struct partial pt;
    int resumed;
    char buf[100] = {0};

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&pt, 0, sizeof pt);
        assert_int_equal(partial_parse_state(bad[i], strlen(bad[i]), &pt), FS_EPROTO);
        assert_null(pt.bits);
        assert_null(pt.crc);
        assert_int_equal(pt.nhave, 0);
    }
    memset(&pt, 0, sizeof pt);
    assert_int_equal(partial_parse_state(good, strlen(good), &pt), FS_OK);
    assert_int_equal(pt.npieces, 3);
    assert_int_equal(pt.nhave, 2);
    free(pt.bits);

    struct partial *p2 = open_v2(f, PIECE, ROOT_A, &resumed);
    assert_int_equal(partial_put_piece(p2, p2->npieces, buf, 100), FS_EINVAL);
    assert_int_equal(partial_read_piece(p2, p2->npieces, buf, 100), FS_EINVAL);
    assert_int_equal(partial_put_piece(p2, 0, buf, 100), FS_EINVAL); /* not its length */
    partial_close(p2);
#undef HDR2
}

/* A v1 partial resumed with a root: the pieces wholly inside its chunk
 * prefix are claimed, the one it ends inside is not, and the state is
 * version 2 on disk before anything else happens. */
static void test_v1_prefix_becomes_claimed(void **state)
{
    struct fx *f = *state;
    struct partial *pt;
    int resumed;

    assert_int_equal(partial_open_at(f->dfd, "x.bin", sizeof f->data, f->md5, PARTIAL_CHUNK_MIN,
                                     &pt, &resumed), FS_OK);
    for (uint64_t i = 0; i < 11; i++) /* 704 KiB: piece 0 and 3/8 of piece 1 */
        put_sized(pt, f, i);
    partial_close(pt);
    pt = open_v2(f, PIECE, ROOT_A, &resumed);
    assert_true(resumed);
    assert_int_equal(pt->nhave, 1);
    assert_true(partial_has_piece(pt, 0));
    assert_false(partial_has_piece(pt, 1));
    assert_null(pt->crc);
    assert_int_equal(strncmp(state_text(f), "floodshare-partial 2\n", 21), 0);
    assert_non_null(strstr(state_text(f), "\np 0\n"));
    assert_piece_reads_back(pt, f, 0, 1);
    assert_int_equal(partial_trim(pt), FS_EINVAL); /* v1 only */
    partial_close(pt);
    /* a rootless get (v1) does not resume a v2 state: it starts afresh */
    assert_int_equal(partial_open_at(f->dfd, "x.bin", sizeof f->data, f->md5, PARTIAL_CHUNK_MIN,
                                     &pt, &resumed), FS_OK);
    assert_false(resumed);
    assert_int_equal(pt->have, 0);
    assert_int_equal(pt->version, 1);
    partial_close(pt);
}

/* A v2 state made under another root: every piece it names is claimed
 * (to be re-checked against the new list), the state takes the new root
 * and the old root's list goes; under another piece size, only the new
 * pieces wholly made of named old ones are claimed. */
static void test_other_root_claims_everything(void **state)
{
    struct fx *f = *state;
    char pieces[128];
    struct stat sb;
    int resumed;

    struct partial *pt = open_v2(f, PIECE, ROOT_A, &resumed);
    for (uint64_t i = 0; i < 6; i++)
        if (i != 3)
            put_piece(pt, f, i, 1);
    partial_close(pt);
    snprintf(pieces, sizeof pieces, "%s" PARTIAL_PIECES, f->md5);
    touch(f->dir, pieces); /* root A's list */

    pt = open_v2(f, PIECE, ROOT_B, &resumed);
    assert_true(resumed);
    assert_string_equal(pt->root, ROOT_B);
    assert_int_equal(pt->nhave, 5);
    for (uint64_t i = 0; i < 6; i++)
        assert_int_equal(partial_has_piece(pt, i), i != 3);
    assert_non_null(strstr(state_text(f), "\nroot " ROOT_B "\n"));
    assert_int_equal(fstatat(f->dfd, pieces, &sb, 0), -1); /* A's list is gone */
    partial_close(pt);

    pt = open_v2(f, 2 * PIECE, ROOT_C, &resumed); /* 1 MiB pieces */
    assert_true(resumed);
    assert_int_equal(pt->nhave, 2);
    assert_true(partial_has_piece(pt, 0));  /* old 0 and 1 */
    assert_false(partial_has_piece(pt, 1)); /* old 2 and 3: 3 missing */
    assert_true(partial_has_piece(pt, 2));  /* old 4 and 5 */
    assert_non_null(strstr(state_text(f), "\npiece 1048576\nroot " ROOT_C "\n"));
    partial_close(pt);
}

struct writer {
    struct partial *pt;
    const struct fx *f;
    pthread_mutex_t *lock;
    uint64_t first; /* writes first, first + 2, ... */
};

static void *write_every_other(void *arg)
{
    struct writer *w = arg;
    char *buf;

    if (posix_memalign((void **)&buf, PARTIAL_ALIGN, w->pt->piece))
        return (void *)1;
    for (uint64_t i = w->first; i < w->pt->npieces; i += 2) {
        size_t n = (size_t)partial_piece_len(w->pt, i);
        memcpy(buf, w->f->data + i * w->pt->piece, n);
        if (partial_put_piece(w->pt, i, buf, n) != FS_OK)
            return (void *)1;
        pthread_mutex_lock(w->lock); /* as the swarm lock does */
        partial_set_piece(w->pt, i);
        pthread_mutex_unlock(w->lock);
    }
    free(buf);
    return NULL;
}

/* Two threads write alternate pieces with no lock around the writes
 * (only around the bits, as a swarm does): every byte lands, every line of
 * the state is whole, and a reopen names every piece. Run under TSan. */
static void test_put_piece_from_two_threads(void **state)
{
    struct fx *f = *state;
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_t t[2];
    struct writer w[2];
    int resumed;
    void *ret;

    /* 64 KiB pieces: 193 of them, many appends to race */
    struct partial *pt = open_v2(f, PARTIAL_CHUNK_MIN, ROOT_A, &resumed);
    for (int i = 0; i < 2; i++) {
        w[i] = (struct writer){pt, f, &lock, (uint64_t)i};
        assert_int_equal(pthread_create(&t[i], NULL, write_every_other, &w[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(t[i], &ret), 0);
        assert_null(ret);
    }
    assert_int_equal(pt->nhave, pt->npieces);
    partial_close(pt);
    pt = open_v2(f, PARTIAL_CHUNK_MIN, ROOT_A, &resumed);
    assert_true(resumed);
    assert_int_equal(pt->nhave, pt->npieces);
    for (uint64_t i = 0; i < pt->npieces; i++)
        assert_piece_reads_back(pt, f, i, (int)(i % 2));
    partial_close(pt);
}

/* A piece whose write fails (the disk full: here RLIMIT_FSIZE) or whose
 * line cannot be appended gives its room back and is named nowhere. */
static void test_failed_put_piece_punches_its_range(void **state)
{
    struct fx *f = *state;
    struct rlimit old, lim;
    struct stat sb;
    char *buf;
    int resumed;

    struct partial *pt = open_v2(f, PIECE, ROOT_A, &resumed);
    assert_int_equal(posix_memalign((void **)&buf, PARTIAL_ALIGN, PIECE), 0);
    memcpy(buf, f->data + 2 * PIECE, PIECE);
    void (*was)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 2 * PIECE + PIECE / 2; /* piece 2 is half written */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    fs_status st = partial_put_piece(pt, 2, buf, PIECE);
    int err = errno;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, was);
    assert_int_equal(st, FS_EIO);
    assert_int_equal(err, EFBIG);
    assert_int_equal(lseek(pt->fd, 2 * PIECE, SEEK_DATA), -1); /* no data left there */
    assert_int_equal(errno, ENXIO);

    /* the state cannot take the line: the piece's bytes go as well */
    int wr = pt->state_fd;
    pt->state_fd = openat(f->dfd, pt->state_name, O_RDONLY);
    assert_int_equal(partial_put_piece(pt, 2, buf, PIECE), FS_EIO);
    close(pt->state_fd);
    pt->state_fd = wr;
    assert_int_equal(fstat(pt->fd, &sb), 0);
    assert_int_equal(lseek(pt->fd, 2 * PIECE, SEEK_DATA), -1);
    partial_close(pt);
    pt = open_v2(f, PIECE, ROOT_A, &resumed);
    assert_int_equal(pt->nhave, 0);
    partial_close(pt);
    free(buf);
}

/* --- seeding a partial from N's own copy (a sync: docs/SYNC.md) --- */

/* The piece list of data[0..len) in pieces of `piece` bytes (malloc'd). */
static unsigned char *list_of(const char *data, size_t len, uint64_t piece, uint64_t *n,
                              char root[PIECES_ROOT_HEX + 1])
{
    struct pieces_hash ph;
    unsigned char *list = NULL;

    assert_int_equal(pieces_hash_init(&ph, piece), FS_OK);
    pieces_hash_update(&ph, data, len);
    assert_int_equal(pieces_hash_final(&ph, &list, n, root), FS_OK);
    return list;
}

/* N's local copy: data[0..len) written as `name` in dir, opened for
 * reading without following links, with its piece list. */
struct local {
    struct partial_seed_src src;
    unsigned char *list;
};

static void local_open(struct local *l, const char *dir, const char *data, size_t len,
                       uint64_t piece)
{
    char path[128], root[PIECES_ROOT_HEX + 1];

    snprintf(path, sizeof path, "%s/local.bin", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    l->list = list_of(data, len, piece, &l->src.n, root);
    l->src.fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    assert_true(l->src.fd >= 0);
    l->src.size = len;
    l->src.piece = piece;
    l->src.list = l->list;
}

static void local_close(struct local *l)
{
    close(l->src.fd);
    free(l->list);
}

/* M's item is f->data: a version 2 partial of it and M's list. */
static struct partial *open_m(struct fx *f, unsigned char **mlist, uint64_t *mn)
{
    char root[PIECES_ROOT_HEX + 1];
    int resumed;

    *mlist = list_of(f->data, sizeof f->data, PIECE, mn, root);
    return open_v2(f, PIECE, root, &resumed);
}

/* Every piece whose bit is set reads back as M's piece and checks against
 * M's list; a reopen names exactly those pieces (their "p" lines). Closes pt. */
static void assert_seeded(struct fx *f, struct partial *pt, const unsigned char *mlist,
                          uint64_t mn)
{
    uint64_t set = 0;
    int resumed;
    char root[PIECES_ROOT_HEX + 1];

    memcpy(root, pt->root, sizeof root);

    for (uint64_t i = 0; i < pt->npieces; i++) {
        if (!partial_has_piece(pt, i))
            continue;
        set++;
        assert_piece_reads_back(pt, f, i, 1);
        char *buf = malloc(PIECE);
        size_t n = (size_t)partial_piece_len(pt, i);
        assert_int_equal(partial_read_piece(pt, i, buf, n), FS_OK);
        assert_true(pieces_piece_ok(mlist, mn, i, buf, n));
        free(buf);
    }
    assert_int_equal(set, pt->nhave);
    uint8_t *bits = malloc((size_t)(pt->npieces + 7) / 8);
    memcpy(bits, pt->bits, (size_t)(pt->npieces + 7) / 8);
    partial_close(pt); /* its lock: the reopen below would be refused */
    struct partial *again = open_v2(f, PIECE, root, &resumed);
    assert_true(resumed);
    assert_int_equal(again->nhave, set);
    assert_memory_equal(again->bits, bits, (size_t)(again->npieces + 7) / 8);
    partial_close(again);
    free(bits);
}

/* N's copy is M's item: every piece is reused, the short last one too. */
static void test_seed_all_equal(void **state)
{
    struct fx *f = *state;
    struct local l;
    unsigned char *mlist;
    uint64_t mn, pieces = 99, bytes = 99;

    local_open(&l, f->dir, f->data, sizeof f->data, PIECE);
    struct partial *pt = open_m(f, &mlist, &mn);
    assert_int_equal(partial_seed(pt, mlist, mn, &l.src, &pieces, &bytes), FS_OK);
    assert_int_equal(pieces, pt->npieces);
    assert_int_equal(bytes, sizeof f->data);
    assert_int_equal(partial_piece_len(pt, pt->npieces - 1), 100); /* the short last piece */
    assert_true(partial_has_piece(pt, pt->npieces - 1));
    partial_close(pt); /* the lock: assert_seeded() reopens */
    free(mlist);
    pt = open_m(f, &mlist, &mn);
    assert_seeded(f, pt, mlist, mn);
    free(mlist);
    local_close(&l);
}

/* A byte changed in every piece of N's copy: nothing is reused. */
static void test_seed_none_equal(void **state)
{
    struct fx *f = *state;
    struct local l;
    unsigned char *mlist;
    uint64_t mn, pieces = 99, bytes = 99;
    char *mine = malloc(sizeof f->data);

    memcpy(mine, f->data, sizeof f->data);
    for (size_t off = 0; off < sizeof f->data; off += PIECE)
        mine[off] ^= 1;
    local_open(&l, f->dir, mine, sizeof f->data, PIECE);
    struct partial *pt = open_m(f, &mlist, &mn);
    assert_int_equal(partial_seed(pt, mlist, mn, &l.src, &pieces, &bytes), FS_OK);
    assert_int_equal(pieces, 0);
    assert_int_equal(bytes, 0);
    assert_int_equal(pt->nhave, 0);
    assert_int_equal(lseek(pt->fd, 0, SEEK_END), 0); /* not a byte written */
    assert_seeded(f, pt, mlist, mn);
    free(mlist);
    free(mine);
    local_close(&l);
}

/* Every odd piece changed on N: the even ones are reused (the short last
 * one among them), the odd ones left for M to send. A piece already set
 * (a resumed claim) is not copied again. */
static void test_seed_every_other_piece(void **state)
{
    struct fx *f = *state;
    struct local l;
    unsigned char *mlist;
    uint64_t mn, pieces, bytes;
    char *mine = malloc(sizeof f->data);

    memcpy(mine, f->data, sizeof f->data);
    for (size_t off = PIECE; off < sizeof f->data; off += 2 * PIECE)
        mine[off + 7] ^= 0x40;
    local_open(&l, f->dir, mine, sizeof f->data, PIECE);
    struct partial *pt = open_m(f, &mlist, &mn);
    assert_int_equal(pt->npieces, 25);
    put_piece(pt, f, 0, 1); /* as a resumed download would have it */
    assert_int_equal(partial_seed(pt, mlist, mn, &l.src, &pieces, &bytes), FS_OK);
    assert_int_equal(pieces, 12); /* 2, 4, ..., 24 */
    assert_int_equal(bytes, 11 * (uint64_t)PIECE + 100);
    for (uint64_t i = 0; i < pt->npieces; i++)
        assert_int_equal(partial_has_piece(pt, i), i % 2 == 0);
    partial_close(pt);
    free(mlist);
    pt = open_m(f, &mlist, &mn);
    assert_int_equal(pt->nhave, 13);
    assert_seeded(f, pt, mlist, mn);
    free(mlist);
    free(mine);
    local_close(&l);
}

/* N's copy is shorter (its first 10 pieces and 1000 bytes of the 11th):
 * the 10 whole pieces are reused; the 11th, equal as far as it goes, is
 * not (another length); nothing past N's end is touched. */
static void test_seed_a_shorter_local_file(void **state)
{
    struct fx *f = *state;
    struct local l;
    unsigned char *mlist;
    uint64_t mn, pieces, bytes;

    local_open(&l, f->dir, f->data, 10 * (size_t)PIECE + 1000, PIECE);
    struct partial *pt = open_m(f, &mlist, &mn);
    assert_int_equal(partial_seed(pt, mlist, mn, &l.src, &pieces, &bytes), FS_OK);
    assert_int_equal(pieces, 10);
    assert_int_equal(bytes, 10 * (uint64_t)PIECE);
    assert_false(partial_has_piece(pt, 10));
    assert_seeded(f, pt, mlist, mn);
    free(mlist);
    local_close(&l);
}

/* The length is compared as well as the hash: N's list claims M's hash for
 * its last piece, but N's file is a byte longer there, so that piece of N
 * is 101 bytes, not M's 100. It is not taken (its first 100 bytes are not
 * "the same piece" whatever N's list says). */
static void test_seed_needs_the_same_length_not_only_the_hash(void **state)
{
    struct fx *f = *state;
    struct local l;
    unsigned char *mlist;
    uint64_t mn, pieces, bytes;
    char *mine = malloc(sizeof f->data + 1);

    memcpy(mine, f->data, sizeof f->data);
    mine[sizeof f->data] = 'x';
    local_open(&l, f->dir, mine, sizeof f->data + 1, PIECE);
    struct partial *pt = open_m(f, &mlist, &mn);
    assert_int_equal(l.src.n, mn);
    memcpy(l.list + (mn - 1) * PIECES_HASH_LEN, mlist + (mn - 1) * PIECES_HASH_LEN,
           PIECES_HASH_LEN);
    assert_int_equal(partial_seed(pt, mlist, mn, &l.src, &pieces, &bytes), FS_OK);
    assert_int_equal(pieces, mn - 1);
    assert_false(partial_has_piece(pt, mn - 1));
    partial_close(pt);
    free(mlist);
    free(mine);
    local_close(&l);
}

/* Lists of another piece size compare no bytes: refused, nothing copied;
 * so are a list that does not fit its size and a descriptor that is not a
 * regular file (a FIFO would block the copy, a folder has no bytes). */
static void test_seed_refuses_what_it_cannot_compare(void **state)
{
    struct fx *f = *state;
    struct local l;
    unsigned char *mlist;
    uint64_t mn, pieces = 99, bytes = 99;

    local_open(&l, f->dir, f->data, sizeof f->data, 2 * PIECE);
    struct partial *pt = open_m(f, &mlist, &mn);
    assert_int_equal(partial_seed(pt, mlist, mn, &l.src, &pieces, &bytes), FS_EINVAL);
    assert_int_equal(pieces, 0);
    assert_int_equal(bytes, 0);
    local_close(&l);

    local_open(&l, f->dir, f->data, sizeof f->data, PIECE);
    l.src.n--; /* a list one short of its size */
    assert_int_equal(partial_seed(pt, mlist, mn, &l.src, &pieces, &bytes), FS_EINVAL);
    l.src.n++;
    assert_int_equal(partial_seed(pt, mlist, mn - 1, &l.src, &pieces, &bytes), FS_EINVAL);
    int fd = l.src.fd;
    l.src.fd = f->dfd; /* a folder */
    assert_int_equal(partial_seed(pt, mlist, mn, &l.src, &pieces, &bytes), FS_EINVAL);
    l.src.fd = fd;
    assert_int_equal(pt->nhave, 0);
    assert_int_equal(lseek(pt->fd, 0, SEEK_END), 0);
    partial_close(pt);
    free(mlist);
    local_close(&l);
}

/* N's file changed after N's share hashed it (here: a piece overwritten,
 * and then the file cut short): what partial_seed() copies is only a
 * claim. Piece 3 carries the changed bytes under a "p 3" line; the check
 * every claimed piece gets (partial_read_piece + pieces_piece_ok against
 * M's list) catches it. The pieces past N's new end are skipped, their
 * room punched, no line written. The same check catches a .part changed
 * after seeding (piece 5 corrupted in place). */
static void test_seed_a_changed_local_file_costs_a_refetch_only(void **state)
{
    struct fx *f = *state;
    struct local l;
    unsigned char *mlist;
    uint64_t mn, pieces, bytes;
    char *buf = malloc(PIECE);

    local_open(&l, f->dir, f->data, sizeof f->data, PIECE);
    char path[128];
    snprintf(path, sizeof path, "%s/local.bin", f->dir);
    int w = open(path, O_WRONLY);
    assert_int_equal(pwrite(w, "changed", 7, 3 * PIECE + 11), 7);
    assert_int_equal(ftruncate(w, 20 * PIECE + 5), 0);
    close(w);
    struct partial *pt = open_m(f, &mlist, &mn);
    assert_int_equal(partial_seed(pt, mlist, mn, &l.src, &pieces, &bytes), FS_OK);
    assert_int_equal(pieces, 20); /* 0..19: the list still says they are equal */
    assert_false(partial_has_piece(pt, 20));
    assert_int_equal(lseek(pt->fd, 20 * PIECE, SEEK_DATA), -1); /* piece 20's room is back */
    assert_int_equal(pwrite(pt->fd, "corrupt", 7, 5 * PIECE), 7);
    for (uint64_t i = 0; i < 20; i++) {
        assert_int_equal(partial_read_piece(pt, i, buf, PIECE), FS_OK);
        assert_int_equal(pieces_piece_ok(mlist, mn, i, buf, PIECE), i != 3 && i != 5);
    }
    partial_close(pt);
    free(mlist);
    free(buf);
    local_close(&l);
}

/* N's copy on another file system (tmpfs under /dev/shm, the partial on
 * /tmp's): copy_file_range() says EXDEV and the bytes go by pread/pwrite. */
static void test_seed_across_file_systems(void **state)
{
    struct fx *f = *state;
    struct local l;
    struct stat a, b;
    unsigned char *mlist;
    uint64_t mn, pieces, bytes;
    char dir[64] = "/dev/shm/fs_seed_XXXXXX";

    if (!mkdtemp(dir))
        skip();
    assert_int_equal(stat(dir, &a), 0);
    assert_int_equal(stat(f->dir, &b), 0);
    if (a.st_dev == b.st_dev) {
        rmdir(dir);
        skip();
    }
    local_open(&l, dir, f->data, sizeof f->data, PIECE);
    struct partial *pt = open_m(f, &mlist, &mn);
    assert_int_equal(partial_seed(pt, mlist, mn, &l.src, &pieces, &bytes), FS_OK);
    assert_int_equal(pieces, mn);
    assert_int_equal(bytes, sizeof f->data);
    partial_close(pt);
    free(mlist);
    pt = open_m(f, &mlist, &mn);
    assert_seeded(f, pt, mlist, mn);
    free(mlist);
    local_close(&l);
    zipio_remove_tree(dir);
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
        cmocka_unit_test_setup_teardown(test_v2_roundtrip_any_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_index_past_end_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_prefix_becomes_claimed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_root_claims_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_piece_from_two_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_put_piece_punches_its_range, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_seed_all_equal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seed_none_equal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seed_every_other_piece, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seed_a_shorter_local_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seed_needs_the_same_length_not_only_the_hash, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_seed_refuses_what_it_cannot_compare, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_seed_a_changed_local_file_costs_a_refetch_only,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_seed_across_file_systems, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
