/* test_share.c - the share index (share.h). Each test gets a fresh tree:
 *
 *   a/b/target.txt          "target\n"  (depth 3)
 *   a/b/target.txt.bak      partial-name decoys
 *   x/mytarget.txt
 *   docs/3.txt              "three\n"
 *   docs/empty/             an empty folder
 *   docs/sub/x.txt          "x"
 *   hollow/inner/           a folder holding only an empty folder
 *   .floodshare/secret.txt  floodshare's own state, hidden (as is the
 *                           index.cache that share_open() writes there)
 *   link_in  -> docs        symlinks, never indexed
 *   link_out -> /etc
 *   links/file_link -> ../docs/3.txt
 *   links/fifo              a FIFO, never indexed
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "floodshare/hash.h"
#include "floodshare/pieces.h"
#include "floodshare/share.h"

/* Bound on share_refresh_wait() in these tests: reached only when broken. */
#define FRESH_MS 10000

struct fixture {
    char dir[64];
    struct share *sh;
};

static void put(const char *dir, const char *rel, const char *content)
{
    char p[PATH_MAX];
    FILE *f;

    snprintf(p, sizeof p, "%s/%s", dir, rel);
    f = fopen(p, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, strlen(content), f), strlen(content));
    assert_int_equal(fclose(f), 0);
}

static void mkdir_p(const char *dir, const char *rel)
{
    char p[PATH_MAX];

    snprintf(p, sizeof p, "%s/%s", dir, rel);
    for (char *s = p + strlen(dir) + 1; (s = strchr(s, '/')) != NULL; s++) {
        *s = '\0';
        assert_true(mkdir(p, 0755) == 0 || errno == EEXIST);
        *s = '/';
    }
    assert_true(mkdir(p, 0755) == 0 || errno == EEXIST);
}

static void link_at(const char *dir, const char *rel, const char *target)
{
    char p[PATH_MAX];

    snprintf(p, sizeof p, "%s/%s", dir, rel);
    assert_int_equal(symlink(target, p), 0);
}

static void md5_of(const char *text, char hex[HASH_HEX_LEN + 1])
{
    assert_int_equal(hash_md5_buf(text, strlen(text), hex), FS_OK);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    char p[PATH_MAX];

    assert_non_null(fx);
    share_beneath_set_walk(0); /* a test that failed half-way may have left it on */
    strcpy(fx->dir, "/tmp/test_share.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    mkdir_p(fx->dir, "a/b");
    put(fx->dir, "a/b/target.txt", "target\n");
    put(fx->dir, "a/b/target.txt.bak", "bak\n");
    mkdir_p(fx->dir, "x");
    put(fx->dir, "x/mytarget.txt", "decoy\n");
    mkdir_p(fx->dir, "docs/empty");
    mkdir_p(fx->dir, "docs/sub");
    put(fx->dir, "docs/3.txt", "three\n");
    put(fx->dir, "docs/sub/x.txt", "x");
    mkdir_p(fx->dir, "hollow/inner");
    mkdir_p(fx->dir, ".floodshare");
    put(fx->dir, ".floodshare/secret.txt", "secret\n");
    link_at(fx->dir, "link_in", "docs");
    link_at(fx->dir, "link_out", "/etc");
    mkdir_p(fx->dir, "links");
    link_at(fx->dir, "links/file_link", "../docs/3.txt");
    snprintf(p, sizeof p, "%s/links/fifo", fx->dir);
    assert_int_equal(mkfifo(p, 0600), 0);
    *state = fx;
    return 0;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    share_close(fx->sh);
    nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static struct share *open_share(struct fixture *fx)
{
    fs_status st = FS_EIO;

    fx->sh = share_open(fx->dir, &st);
    assert_int_equal(st, FS_OK);
    assert_non_null(fx->sh);
    return fx->sh;
}

static void lookup_ok(struct share *sh, const char *path, struct share_item *it)
{
    assert_int_equal(share_lookup(sh, path, it), FS_OK);
}

/* Gives rel an mtime far in the past, so the index trusts its cached hash. */
static void set_old_mtime(const char *dir, const char *rel)
{
    const struct timespec ts[2] = {{1577836800, 123456789}, {1577836800, 123456789}};
    char p[PATH_MAX];

    snprintf(p, sizeof p, "%s/%s", dir, rel);
    assert_int_equal(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void test_share_finds_file_by_exact_name_at_depth_3(void **state)
{
    struct share *sh = open_share(*state);
    struct share_item it[4];
    char want[HASH_HEX_LEN + 1];

    assert_int_equal(share_find(sh, "target.txt", it, 4), 1);
    assert_string_equal(it[0].path, "a/b/target.txt");
    assert_string_equal(it[0].name, "target.txt");
    assert_int_equal(it[0].kind, MSG_KIND_FILE);
    assert_int_equal(it[0].size, 7);
    assert_int_equal(it[0].files, 1);
    md5_of("target\n", want);
    assert_string_equal(it[0].md5, want);
}

static void test_share_find_does_not_match_partial_names(void **state)
{
    struct share *sh = open_share(*state);
    struct share_item it[4];

    assert_int_equal(share_find(sh, "target", it, 4), 0);
    assert_int_equal(share_find(sh, "arget.txt", it, 4), 0);
    assert_int_equal(share_find(sh, "target.tx", it, 4), 0);
    assert_int_equal(share_find(sh, "b/target.txt", it, 4), 0);
}

static void test_share_find_returns_all_matches_sorted_by_path(void **state)
{
    struct fixture *fx = *state;
    struct share_item it[4];

    put(fx->dir, "x/target.txt", "another\n");
    put(fx->dir, "target.txt", "top\n");
    open_share(fx);
    assert_int_equal(share_find(fx->sh, "target.txt", it, 2), 3);
    assert_string_equal(it[0].path, "a/b/target.txt");
    assert_string_equal(it[1].path, "target.txt");
    assert_int_equal(share_find(fx->sh, "target.txt", it, 4), 3);
    assert_string_equal(it[2].path, "x/target.txt");
}

static void test_share_folder_digest_is_md5_of_documented_manifest(void **state)
{
    struct fixture *fx = *state;
    struct share *sh = open_share(fx);
    struct share_item it[2];
    char three[HASH_HEX_LEN + 1], x[HASH_HEX_LEN + 1], want[HASH_HEX_LEN + 1];
    char manifest[512], md5[MSG_MD5_LEN + 1], p[PATH_MAX];
    enum msg_kind kind;
    uint64_t size, files;

    md5_of("three\n", three);
    md5_of("x", x);
    snprintf(manifest, sizeof manifest, "F 6 %s 3.txt\nD empty\nD sub\nF 1 %s sub/x.txt\n",
             three, x);
    md5_of(manifest, want);

    assert_int_equal(share_find(sh, "docs", it, 2), 1);
    assert_string_equal(it[0].path, "docs");
    assert_int_equal(it[0].kind, MSG_KIND_FOLDER);
    assert_int_equal(it[0].size, 7);
    assert_int_equal(it[0].files, 2);
    assert_string_equal(it[0].md5, want);

    snprintf(p, sizeof p, "%s/docs", fx->dir);
    assert_int_equal(share_digest_at(AT_FDCWD, p, &kind, &size, &files, md5), FS_OK);
    assert_int_equal(kind, MSG_KIND_FOLDER);
    assert_int_equal(size, 7);
    assert_int_equal(files, 2);
    assert_string_equal(md5, want);
}

static void test_share_empty_subfolder_is_a_D_line(void **state)
{
    struct share *sh = open_share(*state);
    struct share_item it;
    char want[HASH_HEX_LEN + 1];

    lookup_ok(sh, "hollow", &it);
    md5_of("D inner\n", want);
    assert_string_equal(it.md5, want);
    assert_int_equal(it.size, 0);
    assert_int_equal(it.files, 0);

    lookup_ok(sh, "hollow/inner", &it);
    assert_int_equal(it.kind, MSG_KIND_FOLDER);
    md5_of("", want);
    assert_string_equal(it.md5, want);
}

static void test_share_hides_state_dir(void **state)
{
    struct share *sh = open_share(*state);
    struct share_item it;

    assert_int_equal(share_find(sh, SHARE_STATE_DIR, &it, 1), 0);
    assert_int_equal(share_find(sh, "secret.txt", &it, 1), 0);
    assert_int_equal(share_lookup(sh, ".floodshare/secret.txt", &it), FS_ENOTFOUND);
}

static void test_share_does_not_index_symlinks_or_fifos(void **state)
{
    struct share *sh = open_share(*state);
    struct share_item it[4];

    assert_int_equal(share_find(sh, "link_in", it, 4), 0);
    assert_int_equal(share_find(sh, "link_out", it, 4), 0);
    assert_int_equal(share_find(sh, "file_link", it, 4), 0);
    assert_int_equal(share_find(sh, "fifo", it, 4), 0);
    assert_int_equal(share_find(sh, "passwd", it, 4), 0);
    /* Reached only through link_in; the real one is found once. */
    assert_int_equal(share_find(sh, "3.txt", it, 4), 1);
    assert_int_equal(share_lookup(sh, "link_in/3.txt", it), FS_ENOTFOUND);
    lookup_ok(sh, "links", it);
    assert_int_equal(it[0].files, 0);
}

static void test_share_skips_invalid_names(void **state)
{
    struct fixture *fx = *state;
    struct share_item it;
    char want[HASH_HEX_LEN + 1];

    mkdir_p(fx->dir, "odd");
    put(fx->dir, "odd/bad\001name", "ctl\n");
    put(fx->dir, "odd/bad\xff", "utf8\n");
    put(fx->dir, "odd/back\\slash", "bs\n");
    open_share(fx);
    lookup_ok(fx->sh, "odd", &it);
    assert_int_equal(it.files, 0);
    md5_of("", want);
    assert_string_equal(it.md5, want);
}

static void test_share_finds_file_added_after_open_on_refresh(void **state)
{
    struct fixture *fx = *state;
    struct share *sh = open_share(fx);
    struct share_item it;

    assert_int_equal(share_find(sh, "fresh.txt", &it, 1), 0);
    mkdir_p(fx->dir, "a/b/new");
    put(fx->dir, "a/b/new/fresh.txt", "fresh\n");
    /* Well inside the 2 s polling fall-back: only inotify can notice. */
    assert_int_equal(share_refresh_wait(sh, FRESH_MS), FS_OK);
    assert_int_equal(share_find(sh, "fresh.txt", &it, 1), 1);
    assert_string_equal(it.path, "a/b/new/fresh.txt");
}

static void test_share_notices_removed_file_on_refresh(void **state)
{
    struct fixture *fx = *state;
    struct share *sh = open_share(fx);
    struct share_item it;
    char p[PATH_MAX];

    snprintf(p, sizeof p, "%s/docs/sub/x.txt", fx->dir);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(share_refresh_wait(sh, FRESH_MS), FS_OK);
    assert_int_equal(share_lookup(sh, "docs/sub/x.txt", &it), FS_ENOTFOUND);
    lookup_ok(sh, "docs", &it);
    assert_int_equal(it.files, 1);
}

static void test_share_modified_file_gets_new_md5_on_refresh(void **state)
{
    struct fixture *fx = *state;
    struct share *sh = open_share(fx);
    struct share_item before, after;
    char want[HASH_HEX_LEN + 1];

    lookup_ok(sh, "docs", &before);
    /* Same size and, very likely, the same mtime tick as the first write. */
    put(fx->dir, "docs/3.txt", "THREE\n");
    assert_int_equal(share_refresh_wait(sh, FRESH_MS), FS_OK);
    lookup_ok(sh, "docs/3.txt", &after);
    md5_of("THREE\n", want);
    assert_string_equal(after.md5, want);
    lookup_ok(sh, "docs", &after);
    assert_string_not_equal(after.md5, before.md5);
}

static void test_share_unchanged_file_is_not_rehashed(void **state)
{
    struct fixture *fx = *state;
    struct share *sh;
    struct share_item it;
    char old[HASH_HEX_LEN + 1], now[MSG_MD5_LEN + 1], p[PATH_MAX];

    set_old_mtime(fx->dir, "docs/3.txt");
    sh = open_share(fx);
    md5_of("three\n", old);
    lookup_ok(sh, "docs/3.txt", &it);
    assert_string_equal(it.md5, old);

    /* Content changes behind the cache's back: same size, mtime restored. */
    put(fx->dir, "docs/3.txt", "3hree\n");
    set_old_mtime(fx->dir, "docs/3.txt");
    share_mark_dirty(sh);
    assert_int_equal(share_refresh_wait(sh, FRESH_MS), FS_OK);
    lookup_ok(sh, "docs/3.txt", &it);
    assert_string_equal(it.md5, old);

    snprintf(p, sizeof p, "%s/docs/3.txt", fx->dir);
    assert_int_equal(share_digest_at(AT_FDCWD, p, NULL, NULL, NULL, now), FS_OK);
    assert_string_not_equal(now, old);
}

static void test_share_recent_file_is_rehashed_even_with_same_mtime(void **state)
{
    struct fixture *fx = *state;
    struct share *sh = open_share(fx);
    struct share_item it;
    struct stat sb;
    struct timespec ts[2];
    char want[HASH_HEX_LEN + 1], p[PATH_MAX];

    /* A rewrite within one timestamp tick keeps size and mtime: the index
     * must not have trusted a hash taken that close to the write. */
    snprintf(p, sizeof p, "%s/docs/3.txt", fx->dir);
    assert_int_equal(stat(p, &sb), 0);
    put(fx->dir, "docs/3.txt", "3hree\n");
    ts[0] = sb.st_atim;
    ts[1] = sb.st_mtim;
    assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
    share_mark_dirty(sh);
    assert_int_equal(share_refresh_wait(sh, FRESH_MS), FS_OK);
    lookup_ok(sh, "docs/3.txt", &it);
    md5_of("3hree\n", want);
    assert_string_equal(it.md5, want);
}

/* Runs each confinement check twice: with openat2(), and with the
 * component walk a kernel without it gets. */
#define BOTH_WAYS(walk) for (int walk = 0; walk < 2; share_beneath_set_walk(0), walk++) \
    if ((share_beneath_set_walk(walk), share_beneath_walks() == walk))

/* Opens rel below sh's root with flags: the status, and the fd closed. */
static fs_status try_open(struct share *sh, const char *rel, int flags)
{
    int fd = 12345;
    fs_status st = share_openat(sh, rel, flags, &fd);

    if (st == FS_OK) {
        assert_true(fd >= 0);
        close(fd);
    } else {
        assert_int_equal(fd, -1);
    }
    return st;
}

static void test_share_openat_refuses_escapes(void **state)
{
    struct share *sh = open_share(*state);

    BOTH_WAYS(walk) {
        assert_int_equal(try_open(sh, "../x", O_RDONLY), FS_EBADNAME);
        assert_int_equal(try_open(sh, "/etc/passwd", O_RDONLY), FS_EBADNAME);
        assert_int_equal(try_open(sh, "a/../../x", O_RDONLY), FS_EBADNAME);
        assert_int_equal(try_open(sh, "", O_RDONLY), FS_EBADNAME);
        assert_int_equal(try_open(sh, "docs//3.txt", O_RDONLY), FS_EBADNAME);
        assert_int_equal(try_open(sh, "docs/", O_RDONLY), FS_EBADNAME);
        assert_int_equal(try_open(sh, ".", O_RDONLY), FS_EBADNAME);
    }
}

static void test_share_openat_refuses_paths_through_symlinks(void **state)
{
    struct share *sh = open_share(*state);
    static const int flags[] = {O_RDONLY, O_RDONLY | O_NONBLOCK, O_PATH, O_RDONLY | O_DIRECTORY,
                                O_PATH | O_DIRECTORY};

    BOTH_WAYS(walk) {
        for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
            int f = flags[i];
            errno = 0;
            assert_int_equal(try_open(sh, "link_out/passwd", f), FS_EREFUSED);
            assert_int_equal(errno, ELOOP);
            assert_int_equal(try_open(sh, "link_out/nonexistent/x", f), FS_EREFUSED);
            assert_int_equal(try_open(sh, "link_out", f), FS_EREFUSED);
            assert_int_equal(try_open(sh, "link_in/3.txt", f), FS_EREFUSED);
            assert_int_equal(try_open(sh, "link_in", f), FS_EREFUSED);
            assert_int_equal(try_open(sh, "links/file_link", f), FS_EREFUSED);
        }
    }
}

static void test_share_openat_opens_what_is_inside(void **state)
{
    struct share *sh = open_share(*state);
    char buf[16] = "";
    struct stat sb;
    int fd;

    BOTH_WAYS(walk) {
        assert_int_equal(share_openat(sh, "docs/3.txt", O_RDONLY, &fd), FS_OK);
        assert_int_equal(read(fd, buf, sizeof buf - 1), 6);
        assert_memory_equal(buf, "three\n", 6);
        close(fd);
        assert_int_equal(share_openat(sh, "docs/sub", O_RDONLY | O_DIRECTORY, &fd), FS_OK);
        assert_int_equal(fstatat(fd, "x.txt", &sb, 0), 0);
        close(fd);
        assert_int_equal(share_openat(sh, "a/b/target.txt", O_PATH, &fd), FS_OK);
        assert_int_equal(fstat(fd, &sb), 0);
        assert_true(S_ISREG(sb.st_mode));
        close(fd);
    }
}

static void test_share_openat_missing_or_not_a_folder_is_not_found(void **state)
{
    struct share *sh = open_share(*state);

    BOTH_WAYS(walk) {
        assert_int_equal(try_open(sh, "docs/nope.txt", O_RDONLY), FS_ENOTFOUND);
        assert_int_equal(try_open(sh, "nodir/deeper/nope.txt", O_RDONLY), FS_ENOTFOUND);
        assert_int_equal(try_open(sh, "docs/3.txt/x", O_RDONLY), FS_ENOTFOUND);
        assert_int_equal(try_open(sh, "docs/3.txt", O_RDONLY | O_DIRECTORY), FS_ENOTFOUND);
    }
}

static void test_share_open_beneath_creates_only_where_asked(void **state)
{
    struct fixture *fx = *state;
    struct share *sh = open_share(fx);
    char p[PATH_MAX];
    struct stat sb;
    int fd;

    BOTH_WAYS(walk) {
        const char *rel = walk ? "docs/sub/made-walk.txt" : "docs/sub/made.txt";
        assert_int_equal(share_open_beneath(share_root_fd(sh), rel,
                                            O_WRONLY | O_CREAT | O_EXCL, 0600, &fd), FS_OK);
        close(fd);
        snprintf(p, sizeof p, "%s/%s", fx->dir, rel);
        assert_int_equal(lstat(p, &sb), 0);
        assert_int_equal(share_open_beneath(share_root_fd(sh), rel,
                                            O_WRONLY | O_CREAT | O_EXCL, 0600, &fd), FS_EEXIST);
        /* Never created at the far end of a link. */
        assert_int_equal(share_open_beneath(share_root_fd(sh), "link_in/made.txt",
                                            O_WRONLY | O_CREAT | O_EXCL, 0600, &fd), FS_EREFUSED);
        snprintf(p, sizeof p, "%s/docs/made.txt", fx->dir);
        assert_int_equal(lstat(p, &sb), -1);
    }
}

/* What the swap race does, one step at a time: a folder the index knows
 * becomes a link to a folder outside, holding a file of the same name. */
static void test_share_openat_refuses_a_folder_swapped_for_a_link(void **state)
{
    struct fixture *fx = *state;
    struct share *sh = open_share(fx);
    char out[64], p[PATH_MAX], q[PATH_MAX];
    struct share_item it;

    strcpy(out, "/tmp/test_share_out.XXXXXX");
    assert_non_null(mkdtemp(out));
    put(out, "3.txt", "outside secret\n");
    lookup_ok(sh, "docs/3.txt", &it);
    snprintf(p, sizeof p, "%s/docs", fx->dir);
    snprintf(q, sizeof q, "%s/docs.real", fx->dir);
    assert_int_equal(rename(p, q), 0);
    assert_int_equal(symlink(out, p), 0);
    BOTH_WAYS(walk) {
        errno = 0;
        assert_int_equal(try_open(sh, "docs/3.txt", O_RDONLY), FS_EREFUSED);
        assert_int_equal(errno, ELOOP);
        assert_int_equal(try_open(sh, "docs", O_RDONLY | O_DIRECTORY), FS_EREFUSED);
    }
    /* Nor does the next scan follow it. */
    assert_int_equal(share_refresh_wait(sh, FRESH_MS), FS_OK);
    assert_int_equal(share_lookup(sh, "docs/3.txt", &it), FS_ENOTFOUND);
    assert_int_equal(share_find(sh, "3.txt", &it, 1), 1);
    assert_string_equal(it.path, "docs.real/3.txt");
    snprintf(p, sizeof p, "%s/3.txt", out);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(rmdir(out), 0);
}

/* The share folder itself replaced by a link to another folder: the held
 * descriptor still sees the folder it opened (now under another name), and
 * nothing of the other folder is indexed or opened. */
static void test_share_root_replaced_by_a_link_shows_nothing_of_its_target(void **state)
{
    struct fixture *fx = *state;
    struct share *sh = open_share(fx);
    char other[64], moved[80];
    struct share_item it;

    strcpy(other, "/tmp/test_share_other.XXXXXX");
    assert_non_null(mkdtemp(other));
    put(other, "only_there.txt", "elsewhere\n");
    snprintf(moved, sizeof moved, "%s.moved", fx->dir);
    assert_int_equal(rename(fx->dir, moved), 0);
    assert_int_equal(symlink(other, fx->dir), 0);
    put(moved, "added_later.txt", "new\n");
    share_mark_dirty(sh);
    assert_int_equal(share_refresh_wait(sh, FRESH_MS), FS_OK);
    BOTH_WAYS(walk) {
        assert_int_equal(share_find(sh, "only_there.txt", &it, 1), 0);
        assert_int_equal(try_open(sh, "only_there.txt", O_RDONLY), FS_ENOTFOUND);
        assert_int_equal(try_open(sh, "docs/3.txt", O_RDONLY), FS_OK);
    }
    assert_int_equal(share_find(sh, "added_later.txt", &it, 1), 1);
    lookup_ok(sh, "docs/3.txt", &it);
    share_close(sh);
    fx->sh = NULL;
    assert_int_equal(unlink(fx->dir), 0);
    assert_int_equal(rename(moved, fx->dir), 0);
    snprintf(moved, sizeof moved, "%s/only_there.txt", other);
    assert_int_equal(unlink(moved), 0);
    assert_int_equal(rmdir(other), 0);
}

static void test_share_lookup_finds_item_by_path(void **state)
{
    struct share *sh = open_share(*state);
    struct share_item it;
    char want[HASH_HEX_LEN + 1];

    lookup_ok(sh, "docs/sub/x.txt", &it);
    assert_string_equal(it.path, "docs/sub/x.txt");
    assert_string_equal(it.name, "x.txt");
    assert_int_equal(it.kind, MSG_KIND_FILE);
    assert_int_equal(it.size, 1);
    md5_of("x", want);
    assert_string_equal(it.md5, want);
    assert_int_equal(share_lookup(sh, "docs/sub/y.txt", &it), FS_ENOTFOUND);
    assert_int_equal(share_lookup(sh, "docs/../docs", &it), FS_EBADNAME);
}

static void test_share_list_gives_top_level_items_sorted(void **state)
{
    struct share *sh = open_share(*state);
    static const char *want[] = {"a", "docs", "hollow", "links", "x"};
    struct share_item *v = NULL;
    long n = share_list(sh, &v);

    assert_int_equal(n, 5);
    for (long i = 0; i < n; i++) {
        assert_string_equal(v[i].name, want[i]);
        assert_string_equal(v[i].path, want[i]);
        assert_int_equal(v[i].kind, MSG_KIND_FOLDER);
    }
    free(v);
}

static void test_share_digest_refuses_symlink_inside(void **state)
{
    struct fixture *fx = *state;
    char p[PATH_MAX], md5[MSG_MD5_LEN + 1];
    uint64_t size = 1, files = 1;

    snprintf(p, sizeof p, "%s/links", fx->dir);
    assert_int_equal(share_digest_at(AT_FDCWD, p, NULL, &size, &files, md5), FS_EREFUSED);
    assert_string_equal(md5, "");
    assert_int_equal(size, 0);
    snprintf(p, sizeof p, "%s/link_in", fx->dir);
    assert_int_equal(share_digest_at(AT_FDCWD, p, NULL, NULL, NULL, md5), FS_EREFUSED);
}

static void test_share_stops_at_max_depth(void **state)
{
    struct fixture *fx = *state;
    char rel[256] = "deep", p[PATH_MAX], md5[MSG_MD5_LEN + 1];
    struct share_item it;

    for (int i = 1; i < 70; i++)
        strcat(rel, "/d");
    mkdir_p(fx->dir, rel);
    open_share(fx);
    /* "deep" is depth 1; "deep" + 63 "/d" is depth 64, the last indexed. */
    rel[4 + 63 * 2] = '\0';
    lookup_ok(fx->sh, rel, &it);
    strcat(rel, "/d");
    assert_int_equal(share_lookup(fx->sh, rel, &it), FS_ENOTFOUND);
    snprintf(p, sizeof p, "%s/deep", fx->dir);
    assert_int_equal(share_digest_at(AT_FDCWD, p, NULL, NULL, NULL, md5), FS_ETOOBIG);
    /* The same depth walked on the share's own, smaller stack. */
    rel[4 + 63 * 2] = '\0';
    strcat(rel, "/leaf.txt");
    put(fx->dir, rel, "leaf\n");
    share_mark_dirty(fx->sh);
    assert_int_equal(share_refresh_wait(fx->sh, FRESH_MS), FS_OK);
    lookup_ok(fx->sh, rel, &it);
}

struct reader {
    struct share *sh;
    int stop;
    int bad;
};

static void *read_loop(void *arg)
{
    struct reader *r = arg;
    struct share_item it[2];
    struct share_item *v;

    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        if (share_find(r->sh, "3.txt", it, 2) != 1 || share_lookup(r->sh, "docs", it) != FS_OK)
            r->bad = 1;
        long n = share_list(r->sh, &v);
        if (n < 5)
            r->bad = 1;
        free(v);
    }
    return NULL;
}

static void test_share_readers_see_whole_index_during_rescans(void **state)
{
    struct fixture *fx = *state;
    struct reader r = {.sh = open_share(fx)};
    pthread_t t;
    char name[32];

    assert_int_equal(pthread_create(&t, NULL, read_loop, &r), 0);
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof name, "docs/n%d.txt", i);
        put(fx->dir, name, name);
        assert_int_equal(share_refresh_wait(r.sh, FRESH_MS), FS_OK);
    }
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(r.bad, 0);
    assert_int_equal(share_find(r.sh, "n49.txt", NULL, 0), 1);
}

static void test_share_open_refuses_missing_or_non_folder(void **state)
{
    struct fixture *fx = *state;
    char p[PATH_MAX];
    fs_status st = FS_OK;

    snprintf(p, sizeof p, "%s/missing", fx->dir);
    assert_null(share_open(p, &st));
    assert_int_equal(st, FS_ENOTFOUND);
    snprintf(p, sizeof p, "%s/docs/3.txt", fx->dir);
    assert_null(share_open(p, &st));
    assert_int_equal(st, FS_EINVAL);
}

/* --- the persisted cache ------------------------------------------------- */

static void cache_path(const struct fixture *fx, char p[PATH_MAX])
{
    snprintf(p, PATH_MAX, "%s/%s/%s", fx->dir, SHARE_STATE_DIR, SHARE_CACHE_FILE);
}

/* Reads the whole file at p into a malloc'd NUL-terminated buffer. */
static char *slurp(const char *p, size_t *len)
{
    FILE *f = fopen(p, "rb");
    char *buf;
    long n;

    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    assert_int_equal(fclose(f), 0);
    *len = (size_t)n;
    return buf;
}

static void spill(const char *p, const void *data, size_t len)
{
    FILE *f = fopen(p, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Sets rel's mtime to sec (nanoseconds fixed), keeping it "old". */
static void set_mtime(const char *dir, const char *rel, time_t sec)
{
    const struct timespec ts[2] = {{sec, 5}, {sec, 5}};
    char p[PATH_MAX];

    snprintf(p, sizeof p, "%s/%s", dir, rel);
    assert_int_equal(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void reopen(struct fixture *fx)
{
    share_close(fx->sh);
    fx->sh = NULL;
    open_share(fx);
}

static void md5_is(struct share *sh, const char *path, const char *content)
{
    struct share_item it;
    char want[HASH_HEX_LEN + 1];

    lookup_ok(sh, path, &it);
    md5_of(content, want);
    assert_string_equal(it.md5, want);
}

static void test_share_restart_reuses_persisted_hashes_of_unchanged_files(void **state)
{
    struct fixture *fx = *state;
    char p[PATH_MAX], tmp[PATH_MAX];
    struct stat sb;

    set_old_mtime(fx->dir, "docs/3.txt");
    set_old_mtime(fx->dir, "docs/sub/x.txt");
    set_old_mtime(fx->dir, "a/b/target.txt");
    set_old_mtime(fx->dir, "x/mytarget.txt");
    open_share(fx);
    cache_path(fx, p);
    assert_int_equal(stat(p, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    share_close(fx->sh);
    fx->sh = NULL;

    /* Same size, same mtime, same inode: only the cache can tell, and it
     * must be believed (that is what makes restarts cheap). */
    put(fx->dir, "docs/3.txt", "3hree\n");
    set_old_mtime(fx->dir, "docs/3.txt");
    /* Size changed, mtime restored. */
    put(fx->dir, "docs/sub/x.txt", "xy");
    set_old_mtime(fx->dir, "docs/sub/x.txt");
    /* Same size, another (old) mtime. */
    put(fx->dir, "a/b/target.txt", "TARGET\n");
    set_mtime(fx->dir, "a/b/target.txt", 1500000000);
    /* Same size and mtime, but another inode. */
    put(fx->dir, "x/new.tmp", "DECOY\n");
    set_old_mtime(fx->dir, "x/new.tmp");
    snprintf(tmp, sizeof tmp, "%s/x/new.tmp", fx->dir);
    snprintf(p, sizeof p, "%s/x/mytarget.txt", fx->dir);
    assert_int_equal(rename(tmp, p), 0);

    open_share(fx);
    md5_is(fx->sh, "docs/3.txt", "three\n");
    md5_is(fx->sh, "docs/sub/x.txt", "xy");
    md5_is(fx->sh, "a/b/target.txt", "TARGET\n");
    md5_is(fx->sh, "x/mytarget.txt", "DECOY\n");
}

struct counter {
    pthread_mutex_t mu;
    int n; /* files the share's thread hashed */
};

static void count_hook(void *arg, const char *path)
{
    struct counter *c = arg;

    (void)path;
    pthread_mutex_lock(&c->mu);
    c->n++;
    pthread_mutex_unlock(&c->mu);
}

/* Files too fresh to cache at the first scan reach the cache file a few
 * seconds later on their own: without the recheck, a share copied just
 * before the peer started was hashed whole again at every restart, and its
 * cache file appeared only when some unrelated change caused a scan. */
static void test_share_fresh_files_reach_the_cache_file_without_any_call(void **state)
{
    struct fixture *fx = *state;
    char p[PATH_MAX];
    struct stat sb;
    int seen = 0;

    open_share(fx);
    cache_path(fx, p);
    assert_int_equal(stat(p, &sb), -1); /* every file was just written: nothing to keep yet */
    for (int i = 0; i < FRESH_MS / 50 && !seen; i++) {
        seen = stat(p, &sb) == 0;
        if (!seen)
            usleep(50 * 1000);
    }
    assert_true(seen);
    /* and then the share is idle: no further rechecks, nothing hashed */
    struct counter c = {.mu = PTHREAD_MUTEX_INITIALIZER};
    share_set_hash_hook(fx->sh, count_hook, &c);
    usleep(4500 * 1000);
    share_set_hash_hook(fx->sh, NULL, NULL);
    assert_int_equal(c.n, 0);
}

static void test_share_restart_rehashes_recent_files(void **state)
{
    struct fixture *fx = *state;
    char p[PATH_MAX];
    struct stat sb;
    struct timespec ts[2];

    /* docs/3.txt was just written: its hash must not have been persisted,
     * however the file is rewritten within its mtime tick later. */
    open_share(fx);
    share_close(fx->sh);
    fx->sh = NULL;
    snprintf(p, sizeof p, "%s/docs/3.txt", fx->dir);
    assert_int_equal(stat(p, &sb), 0);
    put(fx->dir, "docs/3.txt", "3hree\n");
    ts[0] = sb.st_atim;
    ts[1] = sb.st_mtim;
    assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
    open_share(fx);
    md5_is(fx->sh, "docs/3.txt", "3hree\n");
}

/* Replaces the version in a cache file and recomputes its end line, so that
 * only the version is wrong. */
static void cache_set_version(char *buf, size_t *len, char version)
{
    char *end = buf + *len - 1, md5[HASH_HEX_LEN + 1];
    size_t head;

    assert_int_equal(strncmp(buf, "floodshare-index 2\n", 19), 0);
    buf[17] = version;
    while (end > buf && end[-1] != '\n')
        end--;
    assert_int_equal(strncmp(end, "end ", 4), 0);
    head = (size_t)(end - buf);
    assert_int_equal(hash_md5_buf(buf, head, md5), FS_OK);
    end = strchr(end + 4, ' ');
    assert_non_null(end);
    memcpy(end + 1, md5, HASH_HEX_LEN);
}

/* Flips one hex digit of the first entry's md5, leaving the end line as is. */
static void cache_flip_entry(char *buf)
{
    char *line = strchr(buf, '\n') + 1, *nl = strchr(line, '\n');

    assert_non_null(nl);
    nl[-1] = nl[-1] == '0' ? '1' : '0';
}

enum corruption {
    C_NONE,
    C_GARBAGE,
    C_TEXT,
    C_EMPTY,
    C_HALF,
    C_NO_END_LINE,
    C_VERSION,
    C_CHECKSUM,
    C_TRAILING,
    C_HUGE,
    C_SYMLINK,
    C_COUNT
};

/* Writes good[0..len), damaged as c says, as the share's cache file. */
static void write_cache_as(const struct fixture *fx, const char *good, size_t len,
                           enum corruption c)
{
    char p[PATH_MAX], elsewhere[PATH_MAX], *buf = malloc(len + 32);
    static const char garbage[] = "\x7f" "ELF\x02\x01\x01\0\0\0 not an index\n";
    char *cut;

    assert_non_null(buf);
    memcpy(buf, good, len + 1);
    cache_path(fx, p);
    unlink(p);
    switch (c) {
    case C_GARBAGE:
        spill(p, garbage, sizeof garbage - 1);
        break;
    case C_TEXT:
        spill(p, "hello\n", 6);
        break;
    case C_EMPTY:
        spill(p, "", 0);
        break;
    case C_HALF:
        spill(p, buf, len / 2);
        break;
    case C_NO_END_LINE:
        cut = buf + len - 1;
        while (cut[-1] != '\n')
            cut--;
        spill(p, buf, (size_t)(cut - buf));
        break;
    case C_VERSION:
        cache_set_version(buf, &len, '1'); /* the version before piece roots */
        spill(p, buf, len);
        break;
    case C_CHECKSUM:
        cache_flip_entry(buf);
        spill(p, buf, len);
        break;
    case C_TRAILING:
        memcpy(buf + len, "1 2 3 4 5 x\n", 12);
        spill(p, buf, len + 12);
        break;
    case C_HUGE:
        spill(p, buf, len);
        assert_int_equal(truncate(p, 256L * 1024 * 1024 + 1), 0);
        break;
    case C_SYMLINK:
        /* A good cache, but reached through a symlink. */
        snprintf(elsewhere, sizeof elsewhere, "%s/a/cache.copy", fx->dir);
        spill(elsewhere, buf, len);
        assert_int_equal(symlink(elsewhere, p), 0);
        break;
    default:
        spill(p, buf, len);
        break;
    }
    free(buf);
}

static void test_share_corrupt_cache_file_is_ignored(void **state)
{
    struct fixture *fx = *state;
    char p[PATH_MAX], *good;
    size_t len;

    set_old_mtime(fx->dir, "docs/3.txt");
    open_share(fx);
    share_close(fx->sh);
    fx->sh = NULL;
    cache_path(fx, p);
    good = slurp(p, &len);
    /* Every good copy of this cache now vouches for a wrong md5. */
    put(fx->dir, "docs/3.txt", "3hree\n");
    set_old_mtime(fx->dir, "docs/3.txt");

    for (int c = C_NONE; c < C_COUNT; c++) {
        print_message("corruption %d\n", c);
        write_cache_as(fx, good, len, (enum corruption)c);
        open_share(fx);
        md5_is(fx->sh, "docs/3.txt", c == C_NONE ? "three\n" : "3hree\n");
        md5_is(fx->sh, "a/b/target.txt", "target\n");
        md5_is(fx->sh, "docs/sub/x.txt", "x");
        share_close(fx->sh);
        fx->sh = NULL;
    }
    /* The last open replaced the bad file with a good one. */
    open_share(fx);
    md5_is(fx->sh, "docs/3.txt", "3hree\n");
    free(good);
}

static void test_share_cache_file_is_not_an_item(void **state)
{
    struct fixture *fx = *state;
    struct share_item it, *v = NULL;
    long n;

    set_old_mtime(fx->dir, "docs/3.txt");
    open_share(fx);
    reopen(fx);
    assert_int_equal(share_find(fx->sh, SHARE_CACHE_FILE, &it, 1), 0);
    assert_int_equal(share_lookup(fx->sh, SHARE_STATE_DIR "/" SHARE_CACHE_FILE, &it),
                     FS_ENOTFOUND);
    n = share_list(fx->sh, &v);
    assert_int_equal(n, 5);
    for (long i = 0; i < n; i++)
        assert_string_not_equal(v[i].name, SHARE_STATE_DIR);
    free(v);
}

static int rm_state_dir(const struct fixture *fx)
{
    char p[PATH_MAX];

    snprintf(p, sizeof p, "%s/%s", fx->dir, SHARE_STATE_DIR);
    return nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void test_share_creates_private_state_dir_for_cache(void **state)
{
    struct fixture *fx = *state;
    char p[PATH_MAX];
    struct stat sb;
    struct dirent *de;
    DIR *d;
    int n = 0;

    assert_int_equal(rm_state_dir(fx), 0);
    set_old_mtime(fx->dir, "docs/3.txt");
    open_share(fx);
    snprintf(p, sizeof p, "%s/%s", fx->dir, SHARE_STATE_DIR);
    assert_int_equal(lstat(p, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0700);
    /* Only the cache and the piece lists' folder: no temporary left behind. */
    d = opendir(p);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.') {
            if (strcmp(de->d_name, SHARE_PIECES_DIR) != 0)
                assert_string_equal(de->d_name, SHARE_CACHE_FILE);
            n++;
        }
    closedir(d);
    assert_int_equal(n, 2);
}

static void test_share_close_saves_cache_that_lost_files(void **state)
{
    static const char *files[] = {"a/b/target.txt", "a/b/target.txt.bak", "x/mytarget.txt",
                                  "docs/3.txt", "docs/sub/x.txt"};
    struct fixture *fx = *state;
    struct share_item it;
    char p[PATH_MAX], gone[PATH_MAX], *before, *mid, *after;
    size_t len_before, len_mid, len_after;

    /* All old: a rescan then hashes nothing and so writes nothing. */
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        set_old_mtime(fx->dir, files[i]);
    open_share(fx);
    cache_path(fx, p);
    before = slurp(p, &len_before);
    snprintf(gone, sizeof gone, "%s/docs/sub/x.txt", fx->dir);
    assert_int_equal(unlink(gone), 0);
    share_mark_dirty(fx->sh);
    assert_int_equal(share_refresh_wait(fx->sh, FRESH_MS), FS_OK);
    assert_int_equal(share_lookup(fx->sh, "docs/sub/x.txt", &it), FS_ENOTFOUND);
    mid = slurp(p, &len_mid);
    assert_memory_equal(mid, before, len_before);
    assert_int_equal(len_mid, len_before);
    share_close(fx->sh);
    fx->sh = NULL;
    after = slurp(p, &len_after);
    assert_true(len_after < len_before);
    free(before);
    free(mid);
    free(after);
    open_share(fx);
    md5_is(fx->sh, "docs/3.txt", "three\n");
}

static void test_share_hard_links_do_not_spoil_the_saved_cache(void **state)
{
    struct fixture *fx = *state;
    char a[PATH_MAX], b[PATH_MAX];

    snprintf(a, sizeof a, "%s/docs/3.txt", fx->dir);
    snprintf(b, sizeof b, "%s/x/3-again.txt", fx->dir);
    assert_int_equal(link(a, b), 0);
    set_old_mtime(fx->dir, "docs/3.txt");
    set_old_mtime(fx->dir, "a/b/target.txt");
    open_share(fx);
    reopen(fx);
    /* Changed behind the cache's back: only a cache that was loaded keeps
     * the old md5 (one with the link's (dev, ino) twice was refused). */
    put(fx->dir, "a/b/target.txt", "TARGET\n");
    set_old_mtime(fx->dir, "a/b/target.txt");
    reopen(fx);
    md5_is(fx->sh, "a/b/target.txt", "target\n");
    md5_is(fx->sh, "x/3-again.txt", "three\n");
}

static int chown_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return lchown(p, 65534, 65534);
}

/* In a child: makes dir read-only to this process and indexes it. */
static int index_read_only(const char *dir)
{
    struct share_item it;
    struct share *sh;
    fs_status st;

    /* Root writes anywhere: become nobody, owning the tree, to be refused. */
    if (geteuid() == 0 && (nftw(dir, chown_one, 16, FTW_PHYS) != 0 || setgid(65534) != 0 ||
                           setuid(65534) != 0))
        return 2;
    if (chmod(dir, 0555) != 0)
        return 3;
    sh = share_open(dir, &st);
    if (!sh)
        return 4;
    if (share_lookup(sh, "docs/3.txt", &it) != FS_OK)
        return 5;
    share_close(sh);
    return 0;
}

static void test_share_read_only_share_is_indexed_without_cache(void **state)
{
    struct fixture *fx = *state;
    char p[PATH_MAX];
    struct stat sb;
    int status = -1;
    pid_t pid;

    assert_int_equal(rm_state_dir(fx), 0);
    set_old_mtime(fx->dir, "docs/3.txt");
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(index_read_only(fx->dir));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(chmod(fx->dir, 0700), 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    snprintf(p, sizeof p, "%s/%s", fx->dir, SHARE_STATE_DIR);
    assert_int_equal(lstat(p, &sb), -1);
    assert_int_equal(errno, ENOENT);
}

/* --- the share's own thread ------------------------------------------------ */

#define PROBE_WAIT_SEC 10 /* only reached when the behaviour is broken */

/* The share's thread parked in the hash hook just before it hashes
 * "big.bin"; the hook also records which threads hash anything. */
struct probe {
    struct share *sh;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t caller; /* the test's thread */
    int hashing;      /* the scan reached big.bin */
    int released;     /* the test lets it go on */
    int timed_out;
    int on_caller; /* something was hashed on the test's thread */
    int done;      /* the helper's call returned */
};

static void deadline_in(struct timespec *ts, int sec)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += sec;
}

/* Waits under p->mu until *flag is set; 0 if it was, -1 after the deadline. */
static int probe_wait(struct probe *p, const int *flag)
{
    struct timespec ts;
    int rc = 0;

    deadline_in(&ts, PROBE_WAIT_SEC);
    while (!*flag && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    return *flag ? 0 : -1;
}

static void probe_hook(void *arg, const char *path)
{
    struct probe *p = arg;

    pthread_mutex_lock(&p->mu);
    if (pthread_equal(pthread_self(), p->caller))
        p->on_caller = 1;
    if (strcmp(path, "big.bin") == 0) {
        p->hashing = 1;
        pthread_cond_broadcast(&p->cv);
        /* A deadline, not a plain wait: if a query needed a lock this scan
         * holds, the test must fail, not hang. */
        p->timed_out = probe_wait(p, &p->released) != 0;
    }
    pthread_mutex_unlock(&p->mu);
}

static void probe_init(struct fixture *fx, struct probe *p)
{
    p->sh = open_share(fx);
    p->caller = pthread_self();
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    share_set_hash_hook(p->sh, probe_hook, p);
}

/* Writes a file of mib MiB of real (non-sparse) data. */
static void put_big(const char *dir, const char *rel, int mib)
{
    static char chunk[1 << 20];
    char p[PATH_MAX];
    FILE *f;

    memset(chunk, 'z', sizeof chunk);
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    f = fopen(p, "wb");
    assert_non_null(f);
    for (int i = 0; i < mib; i++)
        assert_int_equal(fwrite(chunk, 1, sizeof chunk, f), sizeof chunk);
    assert_int_equal(fclose(f), 0);
}

/* Puts a big new file into the share, nudges it and returns once the
 * share's thread is about to hash it, holding it there. */
static void probe_start(struct fixture *fx, struct probe *p)
{
    probe_init(fx, p);
    put_big(fx->dir, "big.bin", 64);
    assert_int_equal(share_refresh(p->sh), FS_OK);
    pthread_mutex_lock(&p->mu);
    assert_int_equal(probe_wait(p, &p->hashing), 0);
    pthread_mutex_unlock(&p->mu);
}

/* Lets the scan go on, waits for a fresh index and checks it. */
static void probe_finish(struct probe *p)
{
    struct share_item it;

    pthread_mutex_lock(&p->mu);
    p->released = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    assert_int_equal(share_refresh_wait(p->sh, FRESH_MS), FS_OK);
    assert_int_equal(p->timed_out, 0);
    assert_int_equal(share_find(p->sh, "big.bin", &it, 1), 1);
    assert_int_equal(it.size, 64u << 20);
    share_set_hash_hook(p->sh, NULL, NULL);
    assert_int_equal(p->on_caller, 0);
}

static void probe_destroy(struct probe *p)
{
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
}

static void test_share_find_answers_from_old_index_while_thread_hashes(void **state)
{
    struct probe p = {0};
    struct share_item it[2], *v = NULL;

    probe_start(*state, &p);
    /* The scan is parked mid-hash; every query must answer now. */
    assert_int_equal(share_find(p.sh, "big.bin", it, 2), 0);
    assert_int_equal(share_find(p.sh, "3.txt", it, 2), 1);
    assert_int_equal(share_lookup(p.sh, "docs", it), FS_OK);
    assert_int_equal(share_list(p.sh, &v), 5);
    free(v);
    probe_finish(&p);
    probe_destroy(&p);
}

static void *refresh_in_helper(void *arg)
{
    struct probe *p = arg;

    share_refresh(p->sh);
    share_mark_dirty(p->sh);
    pthread_mutex_lock(&p->mu);
    p->done = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void test_share_refresh_returns_at_once_while_thread_hashes(void **state)
{
    struct fixture *fx = *state;
    struct probe p = {0};
    struct share_item it;
    pthread_t t;
    int done, released;

    probe_start(fx, &p);
    put(fx->dir, "late.txt", "late\n");
    /* In a helper, so that a refresh that waited for the parked scan
     * fails the test instead of hanging it. */
    assert_int_equal(pthread_create(&t, NULL, refresh_in_helper, &p), 0);
    pthread_mutex_lock(&p.mu);
    done = probe_wait(&p, &p.done) == 0;
    released = p.released;
    pthread_mutex_unlock(&p.mu);
    assert_true(done);
    assert_false(released);
    assert_int_equal(share_find(p.sh, "big.bin", &it, 1), 0);
    probe_finish(&p);
    assert_int_equal(pthread_join(t, NULL), 0);
    /* What changed during that scan is in the fresh index too. */
    assert_int_equal(share_find(p.sh, "late.txt", &it, 1), 1);
    probe_destroy(&p);
}

static void test_share_refresh_never_hashes_on_the_callers_thread(void **state)
{
    struct fixture *fx = *state;
    struct probe p = {0};
    struct share_item it;

    probe_init(fx, &p);
    put(fx->dir, "new.txt", "new\n");
    share_mark_dirty(p.sh);
    assert_int_equal(share_refresh(p.sh), FS_OK);
    assert_int_equal(share_refresh_wait(p.sh, FRESH_MS), FS_OK);
    assert_int_equal(share_find(p.sh, "new.txt", &it, 1), 1);
    share_set_hash_hook(p.sh, NULL, NULL);
    assert_int_equal(p.on_caller, 0);
    probe_destroy(&p);
}

static void test_share_new_file_appears_once_hashed_without_any_call(void **state)
{
    struct fixture *fx = *state;
    struct share *sh = open_share(fx);
    struct share_item it;
    char want[HASH_HEX_LEN + 1];
    int found = 0;

    put(fx->dir, "docs/unasked.txt", "unasked\n");
    /* No refresh of any kind: the thread sees the change through inotify. */
    for (int i = 0; i < FRESH_MS / 10 && !found; i++) {
        found = share_find(sh, "unasked.txt", &it, 1) == 1;
        if (!found)
            usleep(10 * 1000);
    }
    assert_true(found);
    md5_of("unasked\n", want);
    assert_string_equal(it.md5, want);
}

struct marker {
    pthread_mutex_t mu;
    int hashed; /* files named m<i>.txt the share's thread hashed */
};

static void marker_hook(void *arg, const char *path)
{
    struct marker *m = arg;

    if (path[0] != 'm' || !strstr(path, ".txt"))
        return;
    pthread_mutex_lock(&m->mu);
    m->hashed++;
    pthread_mutex_unlock(&m->mu);
}

/* Waits up to FRESH_MS for share_find(name) to say 1; 1 if it did. */
static int wait_found(struct share *sh, const char *name, struct share_item *it)
{
    for (int i = 0; i < FRESH_MS / 10; i++) {
        if (share_find(sh, name, it, 1) == 1)
            return 1;
        usleep(10 * 1000);
    }
    return 0;
}

static void test_share_file_being_written_is_not_advertised_before_it_settles(void **state)
{
    struct fixture *fx = *state;
    struct marker m = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct share *sh = open_share(fx);
    struct share_item it;
    char p[PATH_MAX], name[32], want[HASH_HEX_LEN + 1], text[64] = "";
    int fd, hashed, listed = 0;

    share_set_hash_hook(sh, marker_hook, &m);
    /* Like a slow cp: created empty, then written a little at a time. */
    snprintf(p, sizeof p, "%s/copying.bin", fx->dir);
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    for (int i = 0; i < 30; i++) {
        assert_int_equal(write(fd, "c", 1), 1);
        strcat(text, "c");
        /* Old files beside it, which the scans meanwhile do hash. */
        snprintf(name, sizeof name, "m%d.txt", i);
        put(fx->dir, name, name);
        set_old_mtime(fx->dir, name);
        usleep(50 * 1000);
        listed += share_find(sh, "copying.bin", &it, 1);
    }
    pthread_mutex_lock(&m.mu);
    hashed = m.hashed;
    pthread_mutex_unlock(&m.mu);
    print_message("%d markers hashed while copying.bin was written\n", hashed);
    assert_true(hashed >= 2);
    assert_int_equal(listed, 0);
    assert_int_equal(close(fd), 0);
    assert_true(wait_found(sh, "copying.bin", &it));
    md5_of(text, want);
    assert_string_equal(it.md5, want);
    share_set_hash_hook(sh, NULL, NULL);
}

/* Threads of this process, from /proc/self/task. */
static int thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *de;
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_share_close_joins_its_thread(void **state)
{
    struct fixture *fx = *state;
    int before = thread_count();

    open_share(fx);
    assert_int_equal(thread_count(), before + 1);
    share_close(fx->sh);
    fx->sh = NULL;
    assert_int_equal(thread_count(), before);
}

/* Threads of this process whose nice value is nice. */
static int threads_at_nice(int nice)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *de;
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        char p[PATH_MAX], buf[1024], *q;
        FILE *f;
        int field, v = 0;
        if (de->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "/proc/self/task/%s/stat", de->d_name);
        f = fopen(p, "r");
        if (!f)
            continue;
        q = fgets(buf, sizeof buf, f) ? strrchr(buf, ')') : NULL;
        fclose(f);
        /* After "pid (comm)": state is field 3, nice field 19. */
        for (field = 3, q = q ? q + 1 : NULL; q && field < 19; field++)
            q = strchr(q + 1, ' ');
        if (q && sscanf(q, " %d", &v) == 1 && v == nice)
            n++;
    }
    closedir(d);
    return n;
}

static void test_share_thread_runs_below_the_query_threads(void **state)
{
    int base, want, before;

    errno = 0;
    base = getpriority(PRIO_PROCESS, 0);
    assert_int_equal(errno, 0);
    want = base + 10 > 19 ? 19 : base + 10;
    assert_true(want > base); /* the test itself must not run at nice 19 */
    before = threads_at_nice(want);

    int now = before;

    open_share(*state);
    /* The thread lowers its own priority as it starts. */
    for (int i = 0; i < 100 && now == before; i++) {
        now = threads_at_nice(want);
        if (now == before)
            usleep(10 * 1000);
    }
    assert_int_equal(now, before + 1);
}

static void *close_in_helper(void *arg)
{
    struct probe *p = arg;

    share_close(p->sh);
    pthread_mutex_lock(&p->mu);
    p->done = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void test_share_close_abandons_a_hash_in_progress(void **state)
{
    struct fixture *fx = *state;
    struct probe p = {0};
    pthread_t t;
    int done;

    probe_start(fx, &p);
    fx->sh = NULL; /* the helper closes it */
    assert_int_equal(pthread_create(&t, NULL, close_in_helper, &p), 0);
    /* Close must wait for the parked scan: the thread is joined, not left
     * running on freed memory. */
    usleep(100 * 1000);
    pthread_mutex_lock(&p.mu);
    done = p.done;
    p.released = 1;
    pthread_cond_broadcast(&p.cv);
    pthread_mutex_unlock(&p.mu);
    assert_false(done);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(p.timed_out, 0);
    probe_destroy(&p);
}

/* Overwrites busy.bin with 'y' once the share's thread has read its first
 * chunk of 'z': whatever it reads from then on is of another version. */
struct overwrite {
    char path[PATH_MAX];
    int done;
};

#define BUSY_MIB 4

static void overwrite_hook(void *arg, const char *path, uint64_t done)
{
    struct overwrite *o = arg;
    static char chunk[1 << 20];
    int fd;

    if (__atomic_load_n(&o->done, __ATOMIC_ACQUIRE) || strcmp(path, "busy.bin") != 0 ||
        done >= (uint64_t)BUSY_MIB << 20)
        return;
    memset(chunk, 'y', sizeof chunk);
    fd = open(o->path, O_WRONLY);
    assert_true(fd >= 0);
    for (int i = 0; i < BUSY_MIB; i++)
        assert_int_equal(pwrite(fd, chunk, sizeof chunk, (off_t)i << 20), (ssize_t)sizeof chunk);
    assert_int_equal(close(fd), 0);
    __atomic_store_n(&o->done, 1, __ATOMIC_RELEASE);
}

/* MD5 of BUSY_MIB MiB that start with head bytes of a, the rest b. */
static void md5_of_split(size_t head, char a, char b, char hex[HASH_HEX_LEN + 1])
{
    size_t n = (size_t)BUSY_MIB << 20;
    char *buf = malloc(n);

    assert_non_null(buf);
    memset(buf, b, n);
    memset(buf, a, head);
    assert_int_equal(hash_md5_buf(buf, n, hex), FS_OK);
    free(buf);
}

static void test_share_file_written_while_hashed_is_not_advertised_with_a_torn_md5(void **state)
{
    struct fixture *fx = *state;
    struct overwrite o = {0};
    struct share_item it;
    char torn[HASH_HEX_LEN + 1], now[HASH_HEX_LEN + 1];
    struct share *sh = open_share(fx);
    int done = 0, seen_torn = 0;

    /* The hash reads 256 KiB at a time: the first read sees 'z' only. */
    md5_of_split(256 * 1024, 'z', 'y', torn);
    md5_of_split(0, 'z', 'y', now);
    snprintf(o.path, sizeof o.path, "%s/busy.bin", fx->dir);
    share_set_read_hook(sh, overwrite_hook, &o);
    put_big(fx->dir, "busy.bin", BUSY_MIB);
    /* Old, so that the scan hashes it at once and the overwrite is sure
     * to change its mtime. */
    set_old_mtime(fx->dir, "busy.bin");
    for (int i = 0; i < FRESH_MS / 10 && !done; i++) {
        done = __atomic_load_n(&o.done, __ATOMIC_ACQUIRE);
        if (!done)
            usleep(10 * 1000);
    }
    assert_true(done);
    /* A torn hash, if installed, would stay until the next scan at least
     * SHARE_SETTLE_MS later: watch the index for a second. */
    for (int i = 0; i < 500; i++) {
        if (share_lookup(sh, "busy.bin", &it) == FS_OK && strcmp(it.md5, torn) == 0)
            seen_torn++;
        usleep(2 * 1000);
    }
    assert_int_equal(seen_torn, 0);
    /* Once it holds still it is listed, with the md5 of what it holds. */
    assert_int_equal(share_refresh_wait(sh, FRESH_MS), FS_OK);
    assert_int_equal(share_lookup(sh, "busy.bin", &it), FS_OK);
    assert_string_equal(it.md5, now);
    share_set_read_hook(sh, NULL, NULL);
}

/* Counts the share thread's hashing of one path. */
struct named_counter {
    pthread_mutex_t mu;
    const char *path;
    int n;
};

static void named_count_hook(void *arg, const char *path)
{
    struct named_counter *c = arg;

    pthread_mutex_lock(&c->mu);
    c->n += strcmp(path, c->path) == 0;
    pthread_mutex_unlock(&c->mu);
}

/* Writes a 3 MiB file (pieces of 'a', 'b', ... per MiB) to the state
 * folder as a download would, with its md5 and piece list; returns its fd
 * (open for reading and writing). */
static int put_download(struct fixture *fx, const char *tmp, char md5[HASH_HEX_LEN + 1],
                        char root[PIECES_ROOT_HEX + 1], unsigned char **list, uint64_t *n,
                        uint64_t *piece)
{
    static char mib[1 << 20];
    char p[PATH_MAX];
    struct hash_md5 h;
    struct pieces_hash ph;

    snprintf(p, sizeof p, "%s/.floodshare/%s", fx->dir, tmp);
    int fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    *piece = pieces_size_for(3u << 20);
    assert_int_equal(hash_init(&h), FS_OK);
    assert_int_equal(pieces_hash_init(&ph, *piece), FS_OK);
    for (int i = 0; i < 3; i++) {
        memset(mib, 'a' + i, sizeof mib);
        assert_int_equal(write(fd, mib, sizeof mib), (ssize_t)sizeof mib);
        hash_update(&h, mib, sizeof mib);
        pieces_hash_update(&ph, mib, sizeof mib);
    }
    assert_int_equal(hash_final(&h, md5), FS_OK);
    assert_int_equal(pieces_hash_final(&ph, list, n, root), FS_OK);
    return fd;
}

/* A download hands its verified hashes to the share before it is renamed
 * into place (share_adopt()): the share indexes it, root and list
 * included, without reading it (a 1 GiB get cost its peer 1.7 s of CPU
 * hashing what it had just checked). */
static void test_share_adopted_download_is_indexed_without_being_read(void **state)
{
    struct fixture *fx = *state;
    struct named_counter c = {.mu = PTHREAD_MUTEX_INITIALIZER, .path = "got.bin"};
    char md5[HASH_HEX_LEN + 1], root[PIECES_ROOT_HEX + 1], from[PATH_MAX], to[PATH_MAX];
    unsigned char *list = NULL;
    uint64_t n = 0, piece = 0;
    struct share_item it;
    struct stat sb;
    struct share *sh = open_share(fx);

    share_set_hash_hook(sh, named_count_hook, &c);
    int fd = put_download(fx, "got.part", md5, root, &list, &n, &piece);
    share_adopt(sh, fd, md5, root, piece, list, n);
    snprintf(from, sizeof from, "%s/.floodshare/got.part", fx->dir);
    snprintf(to, sizeof to, "%s/got.bin", fx->dir);
    assert_int_equal(rename(from, to), 0);
    assert_int_equal(share_refresh_wait(sh, FRESH_MS), FS_OK);
    assert_int_equal(share_lookup(sh, "got.bin", &it), FS_OK);
    assert_string_equal(it.md5, md5);
    assert_string_equal(it.root, root);
    assert_int_equal(c.n, 0);
    /* HASHES can answer for the root: the list is where a scan keeps it */
    snprintf(from, sizeof from, "%s/.floodshare/pieces/%s", fx->dir, root);
    assert_int_equal(stat(from, &sb), 0);

    /* Written to afterwards: the adopted hash no longer holds, the file
     * is hashed again and listed with what it holds now. */
    assert_int_equal(pwrite(fd, "z", 1, 0), 1);
    assert_int_equal(share_refresh_wait(sh, FRESH_MS), FS_OK);
    assert_int_equal(share_lookup(sh, "got.bin", &it), FS_OK);
    assert_string_not_equal(it.md5, md5);
    assert_true(c.n >= 1);
    share_set_hash_hook(sh, NULL, NULL);
    close(fd);
    free(list);
}

/* Unlinks gone.bin once the share's thread has read its first chunk. */
struct remover {
    char path[PATH_MAX];
    int reads; /* reads of gone.bin seen */
};

static void remove_hook(void *arg, const char *path, uint64_t done)
{
    struct remover *r = arg;

    (void)done;
    if (strcmp(path, "gone.bin") != 0)
        return;
    if (__atomic_fetch_add(&r->reads, 1, __ATOMIC_ACQ_REL) == 0)
        assert_int_equal(unlink(r->path), 0);
}

/* A file removed while it is being hashed is given up at once: a deleted
 * 1 GiB download was read to its end, 1.7 s of CPU beside the next get. */
static void test_share_stops_hashing_a_file_that_was_removed(void **state)
{
    struct fixture *fx = *state;
    struct remover r = {0};
    struct share_item it;
    struct share *sh = open_share(fx);

    snprintf(r.path, sizeof r.path, "%s/gone.bin", fx->dir);
    share_set_read_hook(sh, remove_hook, &r);
    put_big(fx->dir, "gone.bin", 16); /* 64 reads of 256 KiB */
    set_old_mtime(fx->dir, "gone.bin"); /* hashed at once, not left to settle */
    assert_int_equal(share_refresh_wait(sh, FRESH_MS), FS_OK);
    share_set_read_hook(sh, NULL, NULL);
    assert_int_equal(__atomic_load_n(&r.reads, __ATOMIC_ACQUIRE), 1);
    assert_int_equal(share_lookup(sh, "gone.bin", &it), FS_ENOTFOUND);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_share_finds_file_by_exact_name_at_depth_3),
        T(test_share_adopted_download_is_indexed_without_being_read),
        T(test_share_stops_hashing_a_file_that_was_removed),
        T(test_share_find_does_not_match_partial_names),
        T(test_share_find_returns_all_matches_sorted_by_path),
        T(test_share_folder_digest_is_md5_of_documented_manifest),
        T(test_share_empty_subfolder_is_a_D_line),
        T(test_share_hides_state_dir),
        T(test_share_does_not_index_symlinks_or_fifos),
        T(test_share_skips_invalid_names),
        T(test_share_finds_file_added_after_open_on_refresh),
        T(test_share_notices_removed_file_on_refresh),
        T(test_share_modified_file_gets_new_md5_on_refresh),
        T(test_share_unchanged_file_is_not_rehashed),
        T(test_share_recent_file_is_rehashed_even_with_same_mtime),
        T(test_share_openat_refuses_escapes),
        T(test_share_openat_refuses_paths_through_symlinks),
        T(test_share_openat_opens_what_is_inside),
        T(test_share_openat_missing_or_not_a_folder_is_not_found),
        T(test_share_open_beneath_creates_only_where_asked),
        T(test_share_openat_refuses_a_folder_swapped_for_a_link),
        T(test_share_root_replaced_by_a_link_shows_nothing_of_its_target),
        T(test_share_lookup_finds_item_by_path),
        T(test_share_list_gives_top_level_items_sorted),
        T(test_share_digest_refuses_symlink_inside),
        T(test_share_stops_at_max_depth),
        T(test_share_readers_see_whole_index_during_rescans),
        T(test_share_open_refuses_missing_or_non_folder),
        T(test_share_restart_reuses_persisted_hashes_of_unchanged_files),
        T(test_share_fresh_files_reach_the_cache_file_without_any_call),
        T(test_share_restart_rehashes_recent_files),
        T(test_share_corrupt_cache_file_is_ignored),
        T(test_share_cache_file_is_not_an_item),
        T(test_share_creates_private_state_dir_for_cache),
        T(test_share_close_saves_cache_that_lost_files),
        T(test_share_read_only_share_is_indexed_without_cache),
        T(test_share_hard_links_do_not_spoil_the_saved_cache),
        T(test_share_find_answers_from_old_index_while_thread_hashes),
        T(test_share_refresh_returns_at_once_while_thread_hashes),
        T(test_share_refresh_never_hashes_on_the_callers_thread),
        T(test_share_new_file_appears_once_hashed_without_any_call),
        T(test_share_file_being_written_is_not_advertised_before_it_settles),
        T(test_share_close_joins_its_thread),
        T(test_share_thread_runs_below_the_query_threads),
        T(test_share_close_abandons_a_hash_in_progress),
        T(test_share_file_written_while_hashed_is_not_advertised_with_a_torn_md5),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
