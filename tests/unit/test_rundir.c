/* test_rundir.c - the run folder: which folder, its names, its peers. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "floodshare/rundir.h"

/* A fresh folder under /tmp, removed with everything in it. */
struct tmp {
    char dir[64];
    char names[32][64];
    size_t n;
    int fds[8];
    size_t n_fds;
};

static void tmp_make(struct tmp *t)
{
    memset(t, 0, sizeof *t);
    snprintf(t->dir, sizeof t->dir, "/tmp/fs_test_rundir_XXXXXX");
    assert_non_null(mkdtemp(t->dir));
}

static void tmp_file(struct tmp *t, const char *name)
{
    char path[256];

    assert_true(t->n < 32);
    snprintf(t->names[t->n++], sizeof t->names[0], "%s", name);
    snprintf(path, sizeof path, "%s/%s", t->dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    close(fd);
}

/* A listening Unix socket, as a running peer has. */
static void tmp_socket(struct tmp *t, const char *name)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};

    assert_true(t->n < 32 && t->n_fds < 8);
    snprintf(t->names[t->n++], sizeof t->names[0], "%s", name);
    int n = snprintf(sun.sun_path, sizeof sun.sun_path, "%s/%s", t->dir, name);
    assert_true(n > 0 && (size_t)n < sizeof sun.sun_path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
    assert_int_equal(listen(fd, 1), 0);
    t->fds[t->n_fds++] = fd;
}

static void tmp_subdir(struct tmp *t, const char *name)
{
    char path[256];

    assert_true(t->n < 32);
    snprintf(t->names[t->n++], sizeof t->names[0], "%s", name);
    snprintf(path, sizeof path, "%s/%s", t->dir, name);
    assert_int_equal(mkdir(path, 0700), 0);
}

static void tmp_remove(struct tmp *t)
{
    char path[256];

    for (size_t i = 0; i < t->n_fds; i++)
        close(t->fds[i]);
    for (size_t i = 0; i < t->n; i++) {
        snprintf(path, sizeof path, "%s/%s", t->dir, t->names[i]);
        if (unlink(path) != 0)
            rmdir(path);
    }
    assert_int_equal(rmdir(t->dir), 0);
}

/* --- which folder --- */

static void test_pick_is_option_then_env_then_run(void **state)
{
    (void)state;
    unsetenv(RUNDIR_ENV);
    assert_string_equal(rundir_pick(NULL), "run");
    assert_string_equal(rundir_pick("/tmp/x"), "/tmp/x");
    setenv(RUNDIR_ENV, "/srv/lab", 1);
    assert_string_equal(rundir_pick(NULL), "/srv/lab");
    assert_string_equal(rundir_pick("/tmp/x"), "/tmp/x");
    setenv(RUNDIR_ENV, "", 1); /* set but empty: as if unset */
    assert_string_equal(rundir_pick(NULL), "run");
    unsetenv(RUNDIR_ENV);
}

static void test_pick_keeps_an_empty_option(void **state)
{
    (void)state;
    setenv(RUNDIR_ENV, "/srv/lab", 1);
    assert_string_equal(rundir_pick(""), "");
    unsetenv(RUNDIR_ENV);
}

static void test_serve_dir_is_option_env_or_the_ini_folder(void **state)
{
    char out[RUNDIR_PATH_MAX], err[RUNDIR_ERR_MAX];

    (void)state;
    unsetenv(RUNDIR_ENV);
    assert_int_equal(rundir_for_serve("run/peer-1.ini", "/tmp/r", out, sizeof out, err,
                                      sizeof err), FS_OK);
    assert_string_equal(out, "/tmp/r");
    assert_int_equal(rundir_for_serve("run/peer-1.ini", NULL, out, sizeof out, err, sizeof err),
                     FS_OK);
    assert_string_equal(out, "run");
    assert_int_equal(rundir_for_serve("a/b/peer1.ini", "", out, sizeof out, err, sizeof err),
                     FS_OK); /* an empty --run is no --run */
    assert_string_equal(out, "a/b");
    assert_int_equal(rundir_for_serve("peer1.ini", NULL, out, sizeof out, err, sizeof err), FS_OK);
    assert_string_equal(out, ".");
    assert_int_equal(rundir_for_serve("/peer1.ini", NULL, out, sizeof out, err, sizeof err), FS_OK);
    assert_string_equal(out, "/");
    setenv(RUNDIR_ENV, "/srv/lab", 1);
    assert_int_equal(rundir_for_serve("run/peer-1.ini", NULL, out, sizeof out, err, sizeof err),
                     FS_OK);
    assert_string_equal(out, "/srv/lab");
    unsetenv(RUNDIR_ENV);
}

/* --- names --- */

static void test_sock_path_is_dir_slash_peer_id_sock(void **state)
{
    char out[RUNDIR_PATH_MAX], err[RUNDIR_ERR_MAX];

    (void)state;
    assert_int_equal(rundir_sock_path("run", 7, out, sizeof out, err, sizeof err), FS_OK);
    assert_string_equal(out, "run/peer-7.sock");
    assert_int_equal(rundir_sock_path("/a b/c", 65535, out, sizeof out, err, sizeof err), FS_OK);
    assert_string_equal(out, "/a b/c/peer-65535.sock");
}

static void test_too_long_a_path_is_an_error_naming_the_folder(void **state)
{
    char out[32], err[RUNDIR_ERR_MAX];
    const char *dir = "/tmp/a-folder-of-22";   /* 19 bytes; +"/peer-1.sock" = 31: fits */
    const char *longer = "/tmp/a-folder-of-222"; /* 32 with its socket name: does not */

    (void)state;
    assert_int_equal(rundir_sock_path(dir, 1, out, sizeof out, err, sizeof err), FS_OK);
    assert_string_equal(out, "/tmp/a-folder-of-22/peer-1.sock");
    memset(out, 'x', sizeof out);
    assert_int_equal(rundir_sock_path(longer, 1, out, sizeof out, err, sizeof err), FS_ETOOBIG);
    assert_string_equal(out, ""); /* never a cut path that names another file */
    assert_string_equal(err, "run directory path too long: /tmp/a-folder-of-222");

    /* "/peer-1.ini" is one byte shorter than "/peer-1.sock". */
    assert_int_equal(rundir_ini_path(longer, 1, out, sizeof out, err, sizeof err), FS_OK);
    memset(out, 'x', sizeof out);
    assert_int_equal(rundir_ini_path("/tmp/a-folder-of-2222", 1, out, sizeof out, err, sizeof err),
                     FS_ETOOBIG);
    assert_string_equal(out, "");
    assert_string_equal(err, "run directory path too long: /tmp/a-folder-of-2222");

    char big[RUNDIR_PATH_MAX + 10], ini[RUNDIR_PATH_MAX + 32], dirout[RUNDIR_PATH_MAX];
    memset(big, 'd', sizeof big - 1);
    big[0] = '/';
    big[sizeof big - 1] = '\0';
    snprintf(ini, sizeof ini, "%s/peer-1.ini", big);
    unsetenv(RUNDIR_ENV);
    assert_int_equal(rundir_for_serve(ini, NULL, dirout, sizeof dirout, err, sizeof err),
                     FS_ETOOBIG);
    assert_string_equal(dirout, "");
    assert_int_equal(strncmp(err, "run directory path too long: /ddd", 33), 0);
    assert_int_equal(strlen(err), strlen("run directory path too long: ") + strlen(big));
    assert_int_equal(rundir_for_serve("x.ini", big, dirout, sizeof dirout, err, sizeof err),
                     FS_ETOOBIG);
    assert_string_equal(dirout, "");
}

static void test_ini_path_prefers_the_topology_name(void **state)
{
    struct tmp t;
    char out[RUNDIR_PATH_MAX], want[RUNDIR_PATH_MAX], err[RUNDIR_ERR_MAX];

    (void)state;
    tmp_make(&t);
    /* Neither exists: the configs/ name, for the caller's load to refuse. */
    assert_int_equal(rundir_ini_path(t.dir, 3, out, sizeof out, err, sizeof err), FS_OK);
    snprintf(want, sizeof want, "%s/peer3.ini", t.dir);
    assert_string_equal(out, want);
    tmp_file(&t, "peer3.ini");
    assert_int_equal(rundir_ini_path(t.dir, 3, out, sizeof out, err, sizeof err), FS_OK);
    assert_string_equal(out, want);
    tmp_file(&t, "peer-3.ini");
    assert_int_equal(rundir_ini_path(t.dir, 3, out, sizeof out, err, sizeof err), FS_OK);
    snprintf(want, sizeof want, "%s/peer-3.ini", t.dir);
    assert_string_equal(out, want);
    tmp_remove(&t);
}

static void test_parse_name_accepts_the_three_forms(void **state)
{
    unsigned id = 0;

    (void)state;
    assert_true(rundir_parse_name("peer-1.sock", &id));
    assert_int_equal(id, 1);
    assert_true(rundir_parse_name("peer-65535.ini", &id));
    assert_int_equal(id, 65535);
    assert_true(rundir_parse_name("peer12.ini", &id));
    assert_int_equal(id, 12);
}

static void test_parse_name_refuses_junk(void **state)
{
    static const char *const junk[] = {
        "peer-3.sock.bak", "peer-3.ini~", "peer-3.log", "peer-3.pid", "peer-3", "peer-.sock",
        "peer-0.sock", "peer-03.ini", "peer-65536.sock", "peer-4294967297.sock", "peer--3.sock",
        "peer-+3.sock", "peer- 3.sock", "peer3.sock", "peer-3.SOCK", "xpeer-3.sock", "peer-3x.ini",
        "peer.ini", "peer0.ini", ".", "..", "", "run.ini", "peer-3.inix",
    };
    unsigned id = 77;

    (void)state;
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        if (rundir_parse_name(junk[i], &id))
            fail_msg("\"%s\" taken for a run folder name", junk[i]);
        assert_int_equal(id, 77); /* untouched */
    }
}

/* --- scanning --- */

static void test_ids_are_sorted_each_once_and_junk_is_ignored(void **state)
{
    struct tmp t;
    unsigned ids[16];

    (void)state;
    tmp_make(&t);
    tmp_socket(&t, "peer-12.sock");
    tmp_file(&t, "peer-12.ini");
    tmp_file(&t, "peer12.ini");
    tmp_file(&t, "peer-3.ini");  /* down: an INI only */
    tmp_socket(&t, "peer-7.sock"); /* a socket without an INI */
    tmp_file(&t, "peer2.ini");
    tmp_file(&t, "peer-3.log");
    tmp_file(&t, "peer-3.pid");
    tmp_file(&t, "peer-9.sock.old");
    tmp_file(&t, "peer-05.ini");
    tmp_file(&t, "notes.txt");
    tmp_subdir(&t, "peer-40.ini.d");
    long n = rundir_ids(t.dir, ids, 16);
    assert_int_equal(n, 4);
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 3);
    assert_int_equal(ids[2], 7);
    assert_int_equal(ids[3], 12);
    tmp_remove(&t);
}

static void test_ids_keep_the_smallest_when_there_are_more_than_cap(void **state)
{
    struct tmp t;
    unsigned ids[3];
    static const char *const names[] = {"peer-50.ini", "peer-4.sock", "peer-900.ini",
                                        "peer-2.ini",  "peer-77.ini", "peer-4.ini",
                                        "peer-1.sock"};

    (void)state;
    tmp_make(&t);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        tmp_file(&t, names[i]);
    assert_int_equal(rundir_ids(t.dir, ids, 3), 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 2);
    assert_int_equal(ids[2], 4);
    assert_int_equal(rundir_ids(t.dir, ids, 0), 0);
    tmp_remove(&t);
}

static void test_ids_of_an_empty_or_missing_folder(void **state)
{
    struct tmp t;
    unsigned ids[4];
    char missing[96];

    (void)state;
    tmp_make(&t);
    assert_int_equal(rundir_ids(t.dir, ids, 4), 0);
    snprintf(missing, sizeof missing, "%s/no-such-folder", t.dir);
    errno = 0;
    assert_int_equal(rundir_ids(missing, ids, 4), -1);
    assert_int_equal(errno, ENOENT);
    tmp_remove(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pick_is_option_then_env_then_run),
        cmocka_unit_test(test_pick_keeps_an_empty_option),
        cmocka_unit_test(test_serve_dir_is_option_env_or_the_ini_folder),
        cmocka_unit_test(test_sock_path_is_dir_slash_peer_id_sock),
        cmocka_unit_test(test_too_long_a_path_is_an_error_naming_the_folder),
        cmocka_unit_test(test_ini_path_prefers_the_topology_name),
        cmocka_unit_test(test_parse_name_accepts_the_three_forms),
        cmocka_unit_test(test_parse_name_refuses_junk),
        cmocka_unit_test(test_ids_are_sorted_each_once_and_junk_is_ignored),
        cmocka_unit_test(test_ids_keep_the_smallest_when_there_are_more_than_cap),
        cmocka_unit_test(test_ids_of_an_empty_or_missing_folder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
