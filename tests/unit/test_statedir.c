/* test_statedir.c - a share's state folder (statedir.h): reached from the
 * share's descriptor, never through a link, never someone else's; and the
 * sweep of what interrupted transfers left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "floodshare/share.h"
#include "floodshare/statedir.h"
#include "floodshare/zipio.h"

#define MD5 "0123456789abcdef0123456789abcdef"

struct fx {
    char root[64];
    int rfd; /* the share's root, as share_open() holds it */
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);

    if (!f)
        return -1;
    strcpy(f->root, "/tmp/fs_statedir_XXXXXX");
    if (!mkdtemp(f->root))
        return -1;
    f->rfd = open(f->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (f->rfd < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    int rc = zipio_remove_tree(f->root) == FS_OK ? 0 : -1;

    close(f->rfd);
    free(f);
    return rc;
}

static void path_of(const struct fx *f, const char *rel, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", f->root, rel);
}

static void touch(const struct fx *f, const char *rel)
{
    char p[256];
    int fd;

    path_of(f, rel, p, sizeof p);
    fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    close(fd);
}

static int exists(const struct fx *f, const char *rel)
{
    char p[256];
    struct stat sb;

    path_of(f, rel, p, sizeof p);
    return lstat(p, &sb) == 0;
}

static void test_open_creates_a_private_folder(void **state)
{
    struct fx *f = *state;
    struct stat sb;
    int fd = -1;

    assert_int_equal(statedir_open(f->rfd, &fd), FS_OK);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(sb.st_mode & 07777, 0700);
    close(fd);
}

static void test_open_makes_our_folder_private_again(void **state)
{
    struct fx *f = *state;
    char p[256];
    struct stat sb;
    int fd = -1;

    path_of(f, SHARE_STATE_DIR, p, sizeof p);
    assert_int_equal(mkdir(p, 0777), 0);
    assert_int_equal(chmod(p, 0777), 0);
    assert_int_equal(statedir_open(f->rfd, &fd), FS_OK);
    close(fd);
    assert_int_equal(lstat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0700);
}

/* A link in its place (to a folder the attacker chose) is never entered. */
static void test_open_refuses_a_link(void **state)
{
    struct fx *f = *state;
    char p[256], elsewhere[256];
    int fd = 123;

    path_of(f, "elsewhere", elsewhere, sizeof elsewhere);
    assert_int_equal(mkdir(elsewhere, 0700), 0);
    path_of(f, SHARE_STATE_DIR, p, sizeof p);
    assert_int_equal(symlink(elsewhere, p), 0);
    errno = 0;
    assert_int_equal(statedir_open(f->rfd, &fd), FS_EREFUSED);
    assert_int_equal(errno, ELOOP);
    assert_int_equal(fd, -1);
}

/* Another user who can write the share could make .floodshare first, and
 * then read or swap the partial downloads inside it. */
static void test_open_refuses_a_folder_someone_else_owns(void **state)
{
    struct fx *f = *state;
    char p[256];
    int fd = 123;

    if (geteuid() != 0) {
        print_message("note: not root, cannot make a folder another user owns; skipped\n");
        skip();
    }
    path_of(f, SHARE_STATE_DIR, p, sizeof p);
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(chown(p, 65534, 65534), 0);
    errno = 0;
    assert_int_equal(statedir_open(f->rfd, &fd), FS_EREFUSED);
    assert_int_equal(errno, EPERM);
    assert_int_equal(fd, -1);
}

static void test_prepare_sweeps_leftovers_and_keeps_partials(void **state)
{
    struct fx *f = *state;
    char p[256];
    int fd = -1;

    assert_int_equal(statedir_open(f->rfd, &fd), FS_OK);
    close(fd);
    touch(f, SHARE_STATE_DIR "/out-0a0b0c0d0e0f.zip");
    touch(f, SHARE_STATE_DIR "/in-0a0b0c0d0e0f.zip");
    path_of(f, SHARE_STATE_DIR "/x-0a0b0c0d0e0f", p, sizeof p);
    assert_int_equal(mkdir(p, 0700), 0);
    touch(f, SHARE_STATE_DIR "/x-0a0b0c0d0e0f/half.txt");
    path_of(f, SHARE_STATE_DIR "/d-" MD5, p, sizeof p);
    assert_int_equal(mkdir(p, 0700), 0); /* empty: its item took its name */
    touch(f, SHARE_STATE_DIR "/" MD5 ".part");
    touch(f, SHARE_STATE_DIR "/" MD5 ".state");
    touch(f, SHARE_STATE_DIR "/index.cache");
    assert_int_equal(statedir_prepare(f->rfd), FS_OK);
    assert_false(exists(f, SHARE_STATE_DIR "/out-0a0b0c0d0e0f.zip"));
    assert_false(exists(f, SHARE_STATE_DIR "/in-0a0b0c0d0e0f.zip"));
    assert_false(exists(f, SHARE_STATE_DIR "/x-0a0b0c0d0e0f"));
    assert_false(exists(f, SHARE_STATE_DIR "/d-" MD5));
    assert_true(exists(f, SHARE_STATE_DIR "/" MD5 ".part"));
    assert_true(exists(f, SHARE_STATE_DIR "/" MD5 ".state"));
    assert_true(exists(f, SHARE_STATE_DIR "/index.cache"));
}

static void test_tmp_names_are_bare_and_random(void **state)
{
    char a[64], b[64];

    (void)state;
    statedir_tmp_name(a, sizeof a, "out", ".zip");
    statedir_tmp_name(b, sizeof b, "out", ".zip");
    assert_int_equal(strlen(a), strlen("out-") + 12 + strlen(".zip"));
    assert_null(strchr(a, '/'));
    assert_memory_equal(a, "out-", 4);
    assert_string_not_equal(a, b);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_open_creates_a_private_folder),
        T(test_open_makes_our_folder_private_again),
        T(test_open_refuses_a_link),
        T(test_open_refuses_a_folder_someone_else_owns),
        T(test_prepare_sweeps_leftovers_and_keeps_partials),
        cmocka_unit_test(test_tmp_names_are_bare_and_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
