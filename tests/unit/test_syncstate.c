/* test_syncstate.c - the sync state file, the decision table, conflict names. */
#include <errno.h>
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

#include <cmocka.h>

#include "floodshare/syncstate.h"
#include "floodshare/zipio.h"

#define MD5_A "0123456789abcdef0123456789abcdef"
#define MD5_B "fedcba9876543210fedcba9876543210"
#define MD5_C "00000000000000000000000000000000"

static const char GOOD[] = "floodshare-sync 1\n"
                           "from 127.0.0.1:4000\n"
                           MD5_A " 12 1700000000.000000001 music\n"
                           MD5_B " 0 -5.500000000 music/a%20b.txt\n"
                           MD5_C " 18446744073 0.000000000 music/sub/%C3%A9t%C3%A9\n";

static void test_parse_a_good_state(void **state)
{
    struct syncstate st;
    const char *why = NULL;

    (void)state;
    assert_int_equal(syncstate_parse(GOOD, strlen(GOOD), &st, &why), FS_OK);
    assert_string_equal(st.from.host, "127.0.0.1");
    assert_int_equal(st.from.port, 4000);
    assert_int_equal(st.n, 3);
    assert_string_equal(st.files[0].path, "music");
    assert_string_equal(st.files[0].v.md5, MD5_A);
    assert_int_equal(st.files[0].v.size, 12);
    assert_int_equal(st.files[0].v.mtime.tv_sec, 1700000000);
    assert_int_equal(st.files[0].v.mtime.tv_nsec, 1);
    assert_string_equal(st.files[1].path, "music/a b.txt");
    assert_int_equal(st.files[1].v.mtime.tv_sec, -5);
    assert_int_equal(st.files[1].v.mtime.tv_nsec, 500000000);
    assert_string_equal(st.files[2].path, "music/sub/\xc3\xa9t\xc3\xa9");
    assert_ptr_equal(syncstate_find(&st, "music/a b.txt"), &st.files[1]);
    assert_null(syncstate_find(&st, "music/a"));
    syncstate_free(&st);
    assert_null(st.files);
}

/* Format then parse gives the same state; and the text is the text. */
static void test_format_round_trips(void **state)
{
    struct syncstate st, back;
    char *text;
    size_t len;

    (void)state;
    assert_int_equal(syncstate_parse(GOOD, strlen(GOOD), &st, NULL), FS_OK);
    assert_int_equal(syncstate_format(&st, &text, &len), FS_OK);
    assert_int_equal(len, strlen(GOOD));
    assert_memory_equal(text, GOOD, len);
    assert_int_equal(syncstate_parse(text, len, &back, NULL), FS_OK);
    assert_int_equal(back.n, st.n);
    for (size_t i = 0; i < st.n; i++) {
        assert_string_equal(back.files[i].path, st.files[i].path);
        assert_memory_equal(&back.files[i].v, &st.files[i].v, sizeof st.files[i].v);
    }
    free(text);
    syncstate_free(&st);
    syncstate_free(&back);
}

/* Each line below breaks one rule; each is refused whole with a reason. */
static void test_parse_refuses_what_the_format_does_not_allow(void **state)
{
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"floodshare-sync 2\nfrom 127.0.0.1:4000\n", "not a sync state"},
        {"floodshare-sync 1\nfrom 127.0.0.1:4000", "torn"},
        {"floodshare-sync 1\n", "no from line"},
        {"floodshare-sync 1\nfrom nowhere\n", "HOST:PORT"},
        {"floodshare-sync 1\nhost 127.0.0.1:4000\n", "second line"},
        {"floodshare-sync 1\nfrom 127.0.0.1:4000\n" MD5_A " 1 0.000000000 ../etc/passwd\n",
         "relative path"},
        {"floodshare-sync 1\nfrom 127.0.0.1:4000\n" MD5_A " 1 0.000000000 a/%2E%2E/b\n",
         "relative path"},
        {"floodshare-sync 1\nfrom 127.0.0.1:4000\n" MD5_A " 1 0.000000000 /etc/passwd\n",
         "relative path"},
        {"floodshare-sync 1\nfrom 127.0.0.1:4000\n" MD5_A " 1 0.000000000 %2Fetc\n",
         "relative path"},
        {"floodshare-sync 1\nfrom 127.0.0.1:4000\n" MD5_A " 1 0.000000000 a//b\n",
         "relative path"},
        {"floodshare-sync 1\nfrom 127.0.0.1:4000\n" MD5_A " 1 0.000000000 a%0Ab\n",
         "relative path"},
        {"floodshare-sync 1\nfrom 127.0.0.1:4000\n" MD5_A " 1 0.000000000 a%00b\n", "escape"},
        {"floodshare-sync 1\nfrom 127.0.0.1:4000\n" MD5_A " 1 0.000000000 a%zz\n", "escape"},
        {"floodshare-sync 1\nfrom 127.0.0.1:4000\n" MD5_A " 1 0.000000000 \n", "path"},
        {"floodshare-sync 1\nfrom 127.0.0.1:4000\n0123456789ABCDEF0123456789ABCDEF 1 0.000000000 a\n",
         "md5"},
        {"floodshare-sync 1\nfrom 127.0.0.1:4000\n" MD5_A " 01 0.000000000 a\n", "size"},
        {"floodshare-sync 1\nfrom 127.0.0.1:4000\n" MD5_A " -1 0.000000000 a\n", "size"},
        {"floodshare-sync 1\nfrom 127.0.0.1:4000\n" MD5_A " 18446744073709551616 0.000000000 a\n",
         "size"},
        {"floodshare-sync 1\nfrom 127.0.0.1:4000\n" MD5_A " 1 0.5 a\n", "mtime"},
        {"floodshare-sync 1\nfrom 127.0.0.1:4000\n" MD5_A " 1 -0.000000000 a\n", "mtime"},
        {"floodshare-sync 1\nfrom 127.0.0.1:4000\n" MD5_A " 1 0 a\n", "mtime"},
        {"floodshare-sync 1\nfrom 127.0.0.1:4000\n" MD5_A " 1 0.00000000x a\n", "mtime"},
        {"floodshare-sync 1\nfrom 127.0.0.1:4000\n" MD5_A " 1 0.000000000 b\n" MD5_A
         " 1 0.000000000 a\n", "order"},
        {"floodshare-sync 1\nfrom 127.0.0.1:4000\n" MD5_A " 1 0.000000000 a\n" MD5_A
         " 1 0.000000000 a\n", "repeated"},
        {"floodshare-sync 1\nfrom 127.0.0.1:4000\n\n", "md5"},
    };
    struct syncstate st;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = NULL;
        fs_status rc = syncstate_parse(bad[i].text, strlen(bad[i].text), &st, &why);
        if (rc != FS_EPROTO || !why || !strstr(why, bad[i].why))
            fail_msg("case %zu: %s -> %d (%s)", i, bad[i].text, rc, why ? why : "no reason");
        assert_null(st.files);
        assert_null(st.paths);
    }
    /* a NUL inside: refused, not read as the end of a string */
    static const char nul[] = "floodshare-sync 1\nfrom 127.0.0.1:4000\n" MD5_A " 1 0.000000000 a\0b\n";
    assert_int_equal(syncstate_parse(nul, sizeof nul - 1, &st, NULL), FS_EPROTO);
}

/* The writer refuses what the parser would: it never writes a state
 * that cannot be read back. */
static void test_format_refuses_invalid_records(void **state)
{
    struct syncstate st;
    struct syncstate_file f[2] = {
        {.v = {.md5 = MD5_A, .size = 1}, .path = "b"},
        {.v = {.md5 = MD5_A, .size = 1}, .path = "a"},
    };
    char *text;
    size_t len;

    (void)state;
    memset(&st, 0, sizeof st);
    assert_int_equal(addr_parse("127.0.0.1:9", 11, &st.from, NULL), FS_OK);
    st.files = f;
    st.n = 2;
    assert_int_equal(syncstate_format(&st, &text, &len), FS_EINVAL); /* out of order */
    syncstate_sort(&st);
    assert_string_equal(f[0].path, "a");
    assert_int_equal(syncstate_format(&st, &text, &len), FS_OK);
    free(text);
    f[1].path = "../x";
    assert_int_equal(syncstate_format(&st, &text, &len), FS_EINVAL);
    f[1].path = "b";
    f[1].v.mtime.tv_nsec = 1000000000L;
    assert_int_equal(syncstate_format(&st, &text, &len), FS_EINVAL);
    assert_null(text);
}

struct fx {
    char dir[64];
    int dfd;
};

static int setup(void **state)
{
    struct fx *f = malloc(sizeof *f);

    strcpy(f->dir, "/tmp/fs_syncstate_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(f->dfd >= 0);
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

/* Saved, it loads back equal; a second save replaces it whole and leaves
 * no temporary; a link under the name is not followed; none: ENOTFOUND. */
static void test_save_and_load(void **state)
{
    struct fx *f = *state;
    struct syncstate st, back;
    char name[NAME_MAX_LEN + 1], path[400];
    struct stat sb;

    assert_int_equal(syncstate_file_name("music", name), FS_OK);
    assert_string_equal(name, "6d75736963.state");
    assert_int_equal(syncstate_load_at(f->dfd, name, &back, NULL), FS_ENOTFOUND);
    assert_int_equal(syncstate_parse(GOOD, strlen(GOOD), &st, NULL), FS_OK);
    assert_int_equal(syncstate_save_at(f->dfd, name, &st), FS_OK);
    assert_int_equal(syncstate_load_at(f->dfd, name, &back, NULL), FS_OK);
    assert_int_equal(back.n, 3);
    assert_string_equal(back.files[2].path, st.files[2].path);
    syncstate_free(&back);
    st.n = 1;
    assert_int_equal(syncstate_save_at(f->dfd, name, &st), FS_OK);
    assert_int_equal(syncstate_load_at(f->dfd, name, &back, NULL), FS_OK);
    assert_int_equal(back.n, 1);
    syncstate_free(&back);
    snprintf(path, sizeof path, "%s/%s.tmp", f->dir, name);
    assert_int_equal(stat(path, &sb), -1);

    snprintf(path, sizeof path, "%s/%s", f->dir, "link.state");
    assert_int_equal(symlink(name, path), 0);
    assert_int_equal(syncstate_load_at(f->dfd, "link.state", &back, NULL), FS_EIO);
    /* a save does not write through a link at the temporary's name either */
    snprintf(path, sizeof path, "%s/%s", f->dir, "x.state.tmp");
    assert_int_equal(symlink("/tmp/fs_syncstate_elsewhere", path), 0);
    assert_int_equal(syncstate_save_at(f->dfd, "x.state", &st), FS_EIO);
    assert_int_equal(stat("/tmp/fs_syncstate_elsewhere", &sb), -1);
    syncstate_free(&st);
}

/* Names up to SYNCSTATE_HEX_NAME_MAX bytes: their hex; longer: their MD5;
 * every result a valid name; an invalid NAME refused. */
static void test_file_names_stay_within_name_max(void **state)
{
    char name[NAME_MAX_LEN + 1], out[NAME_MAX_LEN + 1];

    (void)state;
    memset(name, 'x', SYNCSTATE_HEX_NAME_MAX);
    name[SYNCSTATE_HEX_NAME_MAX] = '\0';
    assert_int_equal(syncstate_file_name(name, out), FS_OK);
    assert_int_equal(strlen(out), 2 * SYNCSTATE_HEX_NAME_MAX + 6);
    memset(name, 'x', NAME_MAX_LEN);
    name[NAME_MAX_LEN] = '\0';
    assert_int_equal(syncstate_file_name(name, out), FS_OK);
    assert_int_equal(strncmp(out, "md5-", 4), 0);
    assert_true(name_valid(out, strlen(out)));
    assert_int_equal(syncstate_file_name("..", out), FS_EBADNAME);
    assert_int_equal(syncstate_file_name("a/b", out), FS_EBADNAME);
}

/* Every row of the table in docs/SYNC.md. R = the record, N and M the
 * versions at each end; "-" = none. A = one content, B and C others. */
static void test_decide_every_row(void **state)
{
    const struct syncstate_ver A = {.md5 = MD5_A, .size = 1};
    const struct syncstate_ver B = {.md5 = MD5_B, .size = 1};
    const struct syncstate_ver C = {.md5 = MD5_C, .size = 1};
    const struct syncstate_ver A_touched = {.md5 = MD5_A, .size = 1, .mtime = {.tv_sec = 99}};
    const struct syncstate_ver A_longer = {.md5 = MD5_A, .size = 2};
    static const struct {
        int r, n, m; /* 0 none, 1 A, 2 B, 3 C, 4 A touched, 5 A with another size */
        int del;
        enum syncstate_action want;
    } rows[] = {
        /* neither end has it */
        {0, 0, 0, 0, SYNCSTATE_SAME}, {1, 0, 0, 1, SYNCSTATE_SAME},
        /* only M: new, or removed on N (a pull puts it back) */
        {0, 0, 1, 0, SYNCSTATE_FETCH}, {1, 0, 1, 1, SYNCSTATE_FETCH}, {1, 0, 2, 0, SYNCSTATE_FETCH},
        /* both, the same content: whatever the record says */
        {0, 1, 1, 0, SYNCSTATE_SAME}, {2, 1, 1, 1, SYNCSTATE_SAME}, {1, 4, 1, 0, SYNCSTATE_SAME},
        /* both, different; N still the synced one: M changed */
        {1, 1, 2, 0, SYNCSTATE_FETCH}, {1, 4, 2, 1, SYNCSTATE_FETCH},
        /* both, different; N changed since (M too, or not), or never synced */
        {1, 2, 1, 0, SYNCSTATE_KEEP_CONFLICT_THEN_FETCH}, {1, 2, 3, 1, SYNCSTATE_KEEP_CONFLICT_THEN_FETCH},
        {0, 1, 2, 0, SYNCSTATE_KEEP_CONFLICT_THEN_FETCH}, {1, 5, 1, 0, SYNCSTATE_KEEP_CONFLICT_THEN_FETCH},
        /* only N, no --delete: extra, whatever the record */
        {0, 1, 0, 0, SYNCSTATE_EXTRA}, {1, 1, 0, 0, SYNCSTATE_EXTRA}, {1, 2, 0, 0, SYNCSTATE_EXTRA},
        /* only N, --delete: removed only when it is the synced one */
        {1, 1, 0, 1, SYNCSTATE_DELETE}, {1, 4, 0, 1, SYNCSTATE_DELETE},
        {1, 2, 0, 1, SYNCSTATE_CONFLICT}, {0, 1, 0, 1, SYNCSTATE_CONFLICT}, {1, 5, 0, 1, SYNCSTATE_CONFLICT},
    };
    const struct syncstate_ver *v[] = {NULL, &A, &B, &C, &A_touched, &A_longer};

    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        enum syncstate_action got =
            syncstate_decide(v[rows[i].r], v[rows[i].n], v[rows[i].m], rows[i].del);
        if (got != rows[i].want)
            fail_msg("row %zu: got %s, want %s", i, syncstate_action_name(got),
                     syncstate_action_name(rows[i].want));
    }
    assert_string_equal(syncstate_action_name(SYNCSTATE_KEEP_CONFLICT_THEN_FETCH),
                        "keep_conflict_then_fetch");
    assert_string_equal(syncstate_action_name(SYNCSTATE_EXTRA), "extra");
}

/* 2026-12-05 18:56:39 UTC */
#define WHEN ((time_t)1796496999)

static void test_conflict_name_keeps_the_extension_last(void **state)
{
    char out[NAME_MAX_LEN + 1];

    (void)state;
    assert_int_equal(syncstate_conflict_name("report.txt", WHEN, "127.0.0.1:4000", out), FS_OK);
    assert_string_equal(out, "report.sync-conflict-20261205-185639-127.0.0.1:4000.txt");
    assert_int_equal(syncstate_conflict_name("archive.tar.gz", WHEN, "3", out), FS_OK);
    assert_string_equal(out, "archive.tar.sync-conflict-20261205-185639-3.gz");
    assert_int_equal(syncstate_conflict_name("README", WHEN, "3", out), FS_OK);
    assert_string_equal(out, "README.sync-conflict-20261205-185639-3");
    assert_int_equal(syncstate_conflict_name(".bashrc", WHEN, "3", out), FS_OK);
    assert_string_equal(out, ".bashrc.sync-conflict-20261205-185639-3");
    assert_int_equal(syncstate_conflict_name("a.b", WHEN, "[::1]:4000", out), FS_OK);
    assert_string_equal(out, "a.sync-conflict-20261205-185639-[::1]:4000.b");
}

/* Long names are cut in the stem, on a character boundary, to exactly
 * NAME_MAX_LEN at most; the extension and suffix stay whole. */
static void test_conflict_name_is_bounded(void **state)
{
    char name[NAME_MAX_LEN + 1], out[NAME_MAX_LEN + 1];
    const char *peer = "peer-with-a-long-host-name.example.org:6553";

    (void)state;
    /* 250 bytes of 'é' (2 bytes each) then ".txt": cut inside the stem */
    size_t i = 0;
    for (; i + 2 <= 250; i += 2)
        memcpy(name + i, "\xc3\xa9", 2);
    memcpy(name + i, ".txt", 5);
    assert_int_equal(syncstate_conflict_name(name, WHEN, peer, out), FS_OK);
    size_t n = strlen(out);
    assert_true(n <= NAME_MAX_LEN && n >= NAME_MAX_LEN - 1);
    assert_true(name_valid(out, n));
    assert_string_equal(out + n - 4, ".txt");
    assert_non_null(strstr(out, ".sync-conflict-20261205-185639-"));
    /* an extension too long to keep beside the suffix is cut as stem */
    name[0] = 'a';
    name[1] = '.';
    memset(name + 2, 'e', 240);
    name[242] = '\0';
    assert_int_equal(syncstate_conflict_name(name, WHEN, peer, out), FS_OK);
    n = strlen(out);
    assert_true(n <= NAME_MAX_LEN && name_valid(out, n));
    assert_non_null(strstr(out, peer));
    assert_string_equal(out + n - strlen(peer), peer);
}

static void test_conflict_name_refuses_bad_input(void **state)
{
    char out[NAME_MAX_LEN + 1];

    (void)state;
    assert_int_equal(syncstate_conflict_name("a/b", WHEN, "3", out), FS_EBADNAME);
    assert_int_equal(syncstate_conflict_name("..", WHEN, "3", out), FS_EBADNAME);
    assert_int_equal(syncstate_conflict_name("a", WHEN, "", out), FS_EINVAL);
    assert_int_equal(syncstate_conflict_name("a", WHEN, "x/y", out), FS_EINVAL);
    assert_int_equal(syncstate_conflict_name("a", WHEN, "x y", out), FS_EINVAL);
    assert_int_equal(syncstate_conflict_name("a", (time_t)400000000000LL, "3", out), FS_EINVAL);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_a_good_state),
        cmocka_unit_test(test_format_round_trips),
        cmocka_unit_test(test_parse_refuses_what_the_format_does_not_allow),
        cmocka_unit_test(test_format_refuses_invalid_records),
        cmocka_unit_test_setup_teardown(test_save_and_load, setup, teardown),
        cmocka_unit_test(test_file_names_stay_within_name_max),
        cmocka_unit_test(test_decide_every_row),
        cmocka_unit_test(test_conflict_name_keeps_the_extension_last),
        cmocka_unit_test(test_conflict_name_is_bounded),
        cmocka_unit_test(test_conflict_name_refuses_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
