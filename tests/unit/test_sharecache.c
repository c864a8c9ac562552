/* test_sharecache.c - the on-disk hash cache of a share (sharecache.h): the
 * pure parser, the writer, and the crash-safe load and save. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "floodshare/hash.h"
#include "floodshare/sharecache.h"

#define MD5_A "6f5902ac237024bdd0c176cb93063dc4"
#define MD5_B "d41d8cd98f00b204e9800998ecf8427e"

/* A whole cache file: header, the entry lines given, and a correct end
 * line for count entries. Returns a malloc'd NUL-terminated text. */
static char *cache_text(const char *entries, size_t count)
{
    char head[4096], md5[HASH_HEX_LEN + 1], *out = malloc(4096 + 64);
    int n = snprintf(head, sizeof head, "floodshare-index 2\n%s", entries);

    assert_non_null(out);
    assert_true(n > 0 && (size_t)n < sizeof head);
    assert_int_equal(hash_md5_buf(head, (size_t)n, md5), FS_OK);
    snprintf(out, 4096 + 64, "%send %zu %s\n", head, count, md5);
    return out;
}

static const char two_lines[] = "2049 20 7 1764892800 5 " MD5_A " -\n"
                                "2049 10 0 -3 999999999 " MD5_B " -\n";

static fs_status parse_str(const char *text, struct sharecache_ent **v, size_t *n,
                           const char **why)
{
    return sharecache_parse(text, strlen(text), v, n, why);
}

/* Parses text, expects a refusal with st, and checks nothing was left. */
static void refused(const char *text, fs_status want, const char *why_part)
{
    struct sharecache_ent *v = (void *)1;
    const char *why = NULL;
    size_t n = 99;

    assert_int_equal(parse_str(text, &v, &n, &why), want);
    assert_null(v);
    assert_int_equal(n, 0);
    assert_non_null(why);
    if (!strstr(why, why_part))
        fail_msg("reason '%s' does not say '%s'", why, why_part);
}

static void test_sharecache_parses_entries_sorted_by_dev_ino(void **state)
{
    char *text = cache_text(two_lines, 2);
    struct sharecache_ent *v = NULL;
    const char *why = "unset";
    size_t n = 0;

    (void)state;
    assert_int_equal(parse_str(text, &v, &n, &why), FS_OK);
    assert_null(why);
    assert_int_equal(n, 2);
    assert_int_equal(v[0].ino, 10);
    assert_int_equal(v[0].size, 0);
    assert_int_equal(v[0].mtime.tv_sec, -3);
    assert_int_equal(v[0].mtime.tv_nsec, 999999999);
    assert_string_equal(v[0].md5, MD5_B);
    assert_int_equal(v[1].dev, 2049);
    assert_int_equal(v[1].ino, 20);
    assert_int_equal(v[1].size, 7);
    assert_int_equal(v[1].mtime.tv_sec, 1764892800);
    assert_int_equal(v[1].mtime.tv_nsec, 5);
    assert_string_equal(v[1].md5, MD5_A);
    free(v);
    free(text);
}

static void test_sharecache_empty_index_is_valid(void **state)
{
    char *text = cache_text("", 0);
    struct sharecache_ent *v = (void *)1;
    const char *why = NULL;
    size_t n = 7;

    (void)state;
    assert_int_equal(parse_str(text, &v, &n, &why), FS_OK);
    assert_null(v);
    assert_int_equal(n, 0);
    free(text);
}

static void test_sharecache_refuses_foreign_or_other_version(void **state)
{
    char *text = cache_text("", 0);

    (void)state;
    refused("", FS_EPROTO, "empty");
    refused("hello\n", FS_EPROTO, "not an index cache");
    text[17] = '3';
    refused(text, FS_EPROTO, "unsupported version");
    free(text);
    /* A version 1 cache (before piece roots) is refused, not misread: the
     * share then hashes every file again, pieces included. */
    refused("floodshare-index 1\n2049 20 7 1764892800 5 " MD5_A "\nend 1 "
            "00000000000000000000000000000000\n", FS_EPROTO, "unsupported version");
}

static void test_sharecache_refuses_truncated_files(void **state)
{
    char *text = cache_text(two_lines, 2);
    size_t len = strlen(text);
    char *end = strstr(text, "end ");

    (void)state;
    text[len - 1] = '\0'; /* the end line lacks its '\n' */
    refused(text, FS_EPROTO, "truncated");
    *end = '\0';
    refused(text, FS_EPROTO, "no end line");
    end[-5] = '\0'; /* the last entry line cut short */
    refused(text, FS_EPROTO, "truncated");
    free(text);
}

static void test_sharecache_keeps_the_piece_root(void **state)
{
    char *text = cache_text("1 2 3 4 5 " MD5_A " " MD5_A MD5_B "\n", 1);
    struct sharecache_ent *v = NULL;
    const char *why = NULL;
    size_t n = 0;

    (void)state;
    assert_int_equal(parse_str(text, &v, &n, &why), FS_OK);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].root, MD5_A MD5_B);
    free(v);
    free(text);
}

static void test_sharecache_refuses_malformed_entries(void **state)
{
    static const char *bad[] = {
        "2049 20 7 1764892800 " MD5_A " -\n",             /* a field missing */
        "2049 20 7 1764892800 1000000000 " MD5_A " -\n",  /* nsec out of range */
        "2049 20 7 1764892800 5 6F5902AC237024BDD0C176CB93063DC4\n", /* upper case */
        "2049 20 7 1764892800 5 " MD5_A " \n",          /* trailing space */
        "2049  20 7 1764892800 5 " MD5_A " -\n",          /* empty field */
        "2049 20 9223372036854775808 1 5 " MD5_A " -\n",  /* size past INT64_MAX */
        "18446744073709551616 20 7 1 5 " MD5_A " -\n",    /* dev past 64 bits */
        "2049 20 +7 1764892800 5 " MD5_A " -\n",          /* a sign on a size */
        "2049 20 7 1764892800 5 " MD5_A "\n",             /* no root (version 1) */
        "2049 20 7 1764892800 5 " MD5_A " abc\n",         /* a root too short */
        "2049 20 7 1764892800 5 " MD5_A " " MD5_A "6F5902AC237024BDD0C176CB93063DC4\n",
        /* ^ a root in upper case */
    };

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *text = cache_text(bad[i], 1);
        print_message("entry %zu\n", i);
        refused(text, FS_EPROTO, "malformed entry");
        free(text);
    }
}

static void test_sharecache_refuses_wrong_end_line(void **state)
{
    char *text = cache_text(two_lines, 2), *p;

    (void)state;
    p = strstr(text, "end 2 ");
    p[4] = '3';
    refused(text, FS_EPROTO, "count mismatch");
    p[4] = '2';
    p[6] = p[6] == '0' ? '1' : '0';
    refused(text, FS_EPROTO, "checksum mismatch");
    p[6] = 'X';
    refused(text, FS_EPROTO, "malformed end line");
    free(text);
}

static void test_sharecache_checksum_covers_every_entry_byte(void **state)
{
    char *text = cache_text(two_lines, 2);
    char *p = strstr(text, "1764892800");

    (void)state;
    p[0] = '2'; /* still a valid entry, but not what was written */
    refused(text, FS_EPROTO, "checksum mismatch");
    free(text);
}

static void test_sharecache_refuses_data_after_end_line(void **state)
{
    char *text = cache_text(two_lines, 2), buf[8192];

    (void)state;
    snprintf(buf, sizeof buf, "%s1 2 3 4 5 x\n", text);
    refused(buf, FS_EPROTO, "after the end line");
    free(text);
}

static void test_sharecache_refuses_duplicate_entries(void **state)
{
    char *text = cache_text("1 2 3 4 5 " MD5_A " -\n1 2 9 9 9 " MD5_B " -\n", 2);

    (void)state;
    refused(text, FS_EPROTO, "duplicate");
    free(text);
}

static void test_sharecache_refuses_nul_and_overlong_lines(void **state)
{
    char *text = cache_text(two_lines, 2), line[400];
    struct sharecache_ent *v = NULL;
    const char *why = NULL;
    size_t n = 0, len = strlen(text);

    (void)state;
    text[20] = '\0'; /* inside the first entry line */
    assert_int_equal(sharecache_parse(text, len, &v, &n, &why), FS_EPROTO);
    assert_null(v);
    assert_string_equal(why, "NUL byte in a line");
    free(text);
    memset(line, '7', sizeof line);
    line[sizeof line - 2] = '\n';
    line[sizeof line - 1] = '\0';
    text = cache_text(line, 1);
    refused(text, FS_EPROTO, "line too long");
    free(text);
}

static void test_sharecache_refuses_more_than_max_bytes_before_reading(void **state)
{
    size_t len = (size_t)SHARECACHE_MAX_BYTES + 1;
    /* Reserved, never touched: the length alone must refuse it. */
    char *big = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    struct sharecache_ent *v = NULL;
    const char *why = NULL;
    size_t n = 0;

    (void)state;
    assert_true(big != MAP_FAILED);
    assert_int_equal(sharecache_parse(big, len, &v, &n, &why), FS_ETOOBIG);
    assert_string_equal(why, "larger than 256 MiB");
    munmap(big, len);
}

static void test_sharecache_write_then_parse_gives_same_entries(void **state)
{
    struct sharecache_ent in[3] = {
        {.dev = 1, .ino = 2, .size = 0, .mtime = {-7, 0}, .md5 = MD5_A, .root = MD5_B MD5_A},
        {.dev = 1, .ino = 3, .size = INT64_MAX, .mtime = {1764892800, 999999999}, .md5 = MD5_B},
        {.dev = (dev_t)UINT64_MAX, .ino = (ino_t)UINT64_MAX, .size = 1, .mtime = {0, 1},
         .md5 = MD5_A},
    };
    struct sharecache_ent *v = NULL;
    const char *why = NULL;
    char *buf = NULL;
    size_t len = 0, n = 0;
    FILE *f = open_memstream(&buf, &len);

    (void)state;
    assert_non_null(f);
    assert_int_equal(sharecache_write(f, in, 3), 0);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(sharecache_parse(buf, len, &v, &n, &why), FS_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(v[i].dev, in[i].dev);
        assert_int_equal(v[i].ino, in[i].ino);
        assert_int_equal(v[i].size, in[i].size);
        assert_int_equal(v[i].mtime.tv_sec, in[i].mtime.tv_sec);
        assert_int_equal(v[i].mtime.tv_nsec, in[i].mtime.tv_nsec);
        assert_string_equal(v[i].md5, in[i].md5);
        assert_string_equal(v[i].root, in[i].root);
    }
    free(v);
    free(buf);
}

/* --- load and save ------------------------------------------------------- */

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    char *dir = malloc(64);

    assert_non_null(dir);
    strcpy(dir, "/tmp/test_sharecache.XXXXXX");
    assert_non_null(mkdtemp(dir));
    *state = dir;
    return 0;
}

static int teardown(void **state)
{
    nftw(*state, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(*state);
    return 0;
}

static int files_in(const char *dir)
{
    char cmd[PATH_MAX];
    int n = 0;
    FILE *p;

    snprintf(cmd, sizeof cmd, "ls -A %s | wc -l", dir);
    p = popen(cmd, "r");
    assert_non_null(p);
    assert_int_equal(fscanf(p, "%d", &n), 1);
    pclose(p);
    return n;
}

static void test_sharecache_save_then_load_round_trips_and_leaves_no_temporary(void **state)
{
    const char *dir = *state;
    struct sharecache_ent in[1] = {{.dev = 5, .ino = 6, .size = 7, .mtime = {8, 9}, .md5 = MD5_B}};
    struct sharecache_ent *v = NULL;
    const char *why = NULL;
    size_t n = 0;
    int sfd = open(dir, O_RDONLY | O_DIRECTORY);

    assert_true(sfd >= 0);
    assert_int_equal(sharecache_load(sfd, &v, &n, &why), FS_ENOTFOUND);
    assert_null(why);
    assert_int_equal(sharecache_save(sfd, in, 1), 0);
    assert_int_equal(files_in(dir), 1);
    assert_int_equal(sharecache_load(sfd, &v, &n, &why), FS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].ino, 6);
    assert_string_equal(v[0].md5, MD5_B);
    free(v);
    close(sfd);
}

static void test_sharecache_load_refuses_symlink_and_names_the_problem(void **state)
{
    const char *dir = *state;
    struct sharecache_ent *v = NULL;
    const char *why = NULL;
    char p[PATH_MAX];
    size_t n = 0;
    int sfd = open(dir, O_RDONLY | O_DIRECTORY);

    assert_true(sfd >= 0);
    snprintf(p, sizeof p, "%s/%s", dir, SHARECACHE_FILE);
    assert_int_equal(symlink("/etc/passwd", p), 0);
    assert_int_equal(sharecache_load(sfd, &v, &n, &why), FS_EREFUSED);
    assert_string_equal(why, "a symbolic link");
    assert_null(v);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(mkfifo(p, 0600), 0);
    assert_int_equal(sharecache_load(sfd, &v, &n, &why), FS_EREFUSED);
    assert_string_equal(why, "not a regular file");
    close(sfd);
}

static void test_sharecache_load_removes_only_stale_temporaries(void **state)
{
    const char *dir = *state;
    const struct timespec old[2] = {{1577836800, 0}, {1577836800, 0}};
    struct sharecache_ent *v = NULL;
    const char *why = NULL;
    char stale[PATH_MAX], fresh[PATH_MAX];
    size_t n = 0;
    int sfd = open(dir, O_RDONLY | O_DIRECTORY), fd;

    assert_true(sfd >= 0);
    snprintf(stale, sizeof stale, "%s/%s.tmp-1-1", dir, SHARECACHE_FILE);
    snprintf(fresh, sizeof fresh, "%s/%s.tmp-1-2", dir, SHARECACHE_FILE);
    fd = open(stale, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(utimensat(AT_FDCWD, stale, old, 0), 0);
    fd = open(fresh, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(sharecache_load(sfd, &v, &n, &why), FS_ENOTFOUND);
    assert_int_equal(access(stale, F_OK), -1);
    assert_int_equal(access(fresh, F_OK), 0);
    close(sfd);
}

#define T(f) cmocka_unit_test(f)
#define TD(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_sharecache_parses_entries_sorted_by_dev_ino),
        T(test_sharecache_empty_index_is_valid),
        T(test_sharecache_refuses_foreign_or_other_version),
        T(test_sharecache_refuses_truncated_files),
        T(test_sharecache_refuses_malformed_entries),
        T(test_sharecache_keeps_the_piece_root),
        T(test_sharecache_refuses_wrong_end_line),
        T(test_sharecache_checksum_covers_every_entry_byte),
        T(test_sharecache_refuses_data_after_end_line),
        T(test_sharecache_refuses_duplicate_entries),
        T(test_sharecache_refuses_nul_and_overlong_lines),
        T(test_sharecache_refuses_more_than_max_bytes_before_reading),
        T(test_sharecache_write_then_parse_gives_same_entries),
        TD(test_sharecache_save_then_load_round_trips_and_leaves_no_temporary),
        TD(test_sharecache_load_refuses_symlink_and_names_the_problem),
        TD(test_sharecache_load_removes_only_stale_temporaries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
