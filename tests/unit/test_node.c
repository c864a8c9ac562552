/* test_node.c - the node (node.h): the live configuration as a shared
 * immutable snapshot, reconfiguration as one call, and its listeners. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "floodshare/cfg.h"
#include "floodshare/log.h"
#include "floodshare/node.h"
#include "floodshare/share.h"

struct fixture {
    char dir[64];
    char ini[128];
    struct cfg *c;
    struct node *n;
};

/* What a listener saw. */
struct seen {
    int calls;
    unsigned ttl;
    size_t n_neighbours;
};

static void on_reconf(void *arg, const struct cfg *c)
{
    struct seen *s = arg;
    s->calls++;
    s->ttl = c->ttl;
    s->n_neighbours = c->n_neighbours;
}

static void write_ini(const struct fixture *fx, const char *share, unsigned ttl,
                      const char *peers)
{
    FILE *f = fopen(fx->ini, "w");
    assert_non_null(f);
    fprintf(f, "[peer]\nid = 3\nhost = 127.0.0.1\nport = 10813\nshare_dir = %s\nttl = %u\n"
               "[neighbours]\npeers = %s\n", share, ttl, peers);
    assert_int_equal(fclose(f), 0);
}

/* Loads fx->ini into a fresh cfg (the caller frees it). */
static struct cfg *load(const struct fixture *fx)
{
    char err[CFG_ERR_MAX];
    struct cfg *c = malloc(sizeof *c);
    assert_non_null(c);
    if (cfg_load(fx->ini, c, err, sizeof err) != FS_OK)
        fail_msg("cfg_load: %s", err);
    return c;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    char path[128], err[256];

    snprintf(fx->dir, sizeof fx->dir, "/tmp/fs_node_XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->ini, sizeof fx->ini, "%s/peer.ini", fx->dir);
    snprintf(path, sizeof path, "%s/share", fx->dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/other", fx->dir);
    assert_int_equal(mkdir(path, 0755), 0);
    write_ini(fx, "share", 3, "127.0.0.1:10812");
    fx->c = load(fx);
    fx->n = node_new(fx->c, fx->dir, err, sizeof err);
    if (!fx->n)
        fail_msg("node_new: %s", err);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    char cmd[160];

    node_free(fx->n);
    free(fx->c);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

static void test_fixed_parts_come_from_the_configuration(void **state)
{
    struct fixture *fx = *state;

    assert_int_equal(node_id(fx->n), 3);
    assert_string_equal(node_self(fx->n)->host, "127.0.0.1");
    assert_int_equal(node_self(fx->n)->port, 10813);
    assert_string_equal(node_run_dir(fx->n), fx->dir);
    assert_non_null(node_qcache(fx->n));
    assert_non_null(node_trace(fx->n));
    assert_non_null(node_stats(fx->n));
    assert_non_null(node_cut(fx->n));
    assert_false(node_stopping(fx->n));
}

/* A snapshot taken before a modify keeps its values until it is put back;
 * the next get sees the new ones, and the listener is told once. */
static void test_reconfigure_publishes_a_new_snapshot_and_keeps_the_old(void **state)
{
    struct fixture *fx = *state;
    struct seen seen = {0};
    char err[256];

    assert_int_equal(node_on_reconfigure(fx->n, on_reconf, &seen), FS_OK);
    const struct cfg *before = node_cfg_get(fx->n);
    assert_int_equal(before->ttl, 3);
    assert_int_equal(before->n_neighbours, 1);

    write_ini(fx, "share", 7, "127.0.0.1:10812, 127.0.0.1:10814");
    struct cfg *nc = load(fx);
    assert_int_equal(node_reconfigure(fx->n, nc, "ttl", err, sizeof err), FS_OK);
    free(nc);

    assert_int_equal(before->ttl, 3); /* untouched: still valid, still the old values */
    assert_int_equal(before->n_neighbours, 1);
    const struct cfg *after = node_cfg_get(fx->n);
    assert_ptr_not_equal(after, before);
    assert_int_equal(after->ttl, 7);
    assert_int_equal(after->n_neighbours, 2);
    assert_int_equal(after->port, 10813);
    assert_int_equal(seen.calls, 1);
    assert_int_equal(seen.ttl, 7);
    assert_int_equal(seen.n_neighbours, 2);
    node_cfg_put(before);
    node_cfg_put(after);
}

/* Only the keys `modify` may change move over: a [limits] key or the port
 * changed in the file wait for a restart. */
static void test_reconfigure_changes_only_the_live_keys(void **state)
{
    struct fixture *fx = *state;
    char err[256];

    struct cfg *nc = load(fx);
    nc->port = 20000;
    nc->workers = 1;
    nc->ttl = 5;
    assert_int_equal(node_reconfigure(fx->n, nc, "ttl", err, sizeof err), FS_OK);
    free(nc);
    const struct cfg *c = node_cfg_get(fx->n);
    assert_int_equal(c->ttl, 5);
    assert_int_equal(c->port, 10813);
    assert_int_equal(c->workers, fx->c->workers);
    node_cfg_put(c);
}

static void test_share_dir_moves_the_share(void **state)
{
    struct fixture *fx = *state;
    char err[256], want[PATH_MAX], path[128];

    struct share *sh = node_share_get(fx->n);
    assert_non_null(strstr(share_dir(sh), "/share"));
    node_share_put(fx->n);

    write_ini(fx, "other", 3, "127.0.0.1:10812");
    struct cfg *nc = load(fx);
    assert_int_equal(node_reconfigure(fx->n, nc, "share_dir", err, sizeof err), FS_OK);
    snprintf(want, sizeof want, "%s", nc->share_dir);
    free(nc);
    sh = node_share_get(fx->n);
    assert_string_equal(share_dir(sh), want);
    node_share_put(fx->n);
    /* the new share's state folder was prepared before it was taken */
    snprintf(path, sizeof path, "%s/other/%s", fx->dir, SHARE_STATE_DIR);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
}

/* A share that cannot be opened changes nothing: the error names it, and
 * neither the snapshot nor the share moved, nor was a listener told. */
static void test_a_failed_reconfigure_changes_nothing(void **state)
{
    struct fixture *fx = *state;
    struct seen seen = {0};
    char err[256] = "";

    assert_int_equal(node_on_reconfigure(fx->n, on_reconf, &seen), FS_OK);
    const struct cfg *before = node_cfg_get(fx->n);
    struct cfg *nc = load(fx);
    snprintf(nc->share_dir, sizeof nc->share_dir, "%s/missing", fx->dir);
    nc->ttl = 9;
    assert_int_not_equal(node_reconfigure(fx->n, nc, "share_dir", err, sizeof err), FS_OK);
    free(nc);
    assert_non_null(strstr(err, "missing"));
    const struct cfg *after = node_cfg_get(fx->n);
    assert_ptr_equal(after, before);
    assert_int_equal(after->ttl, 3);
    assert_int_equal(seen.calls, 0);
    struct share *sh = node_share_get(fx->n);
    assert_non_null(strstr(share_dir(sh), "/share"));
    node_share_put(fx->n);
    node_cfg_put(before);
    node_cfg_put(after);
}

static void test_listeners_are_bounded(void **state)
{
    struct fixture *fx = *state;
    struct seen seen = {0};

    for (int i = 0; i < NODE_MAX_LISTENERS; i++)
        assert_int_equal(node_on_reconfigure(fx->n, on_reconf, &seen), FS_OK);
    assert_int_equal(node_on_reconfigure(fx->n, on_reconf, &seen), FS_EBUSY);
}

static void test_stop_shuts_down_tracked_sockets(void **state)
{
    struct fixture *fx = *state;
    int sv[2], untracked[2];
    char c;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, untracked), 0);
    node_track(fx->n, sv[0]);
    node_track(fx->n, untracked[0]);
    node_untrack(fx->n, untracked[0]);
    node_stop(fx->n);
    assert_true(node_stopping(fx->n));
    /* a read that would block returns at once: the socket was shut down */
    assert_int_equal(read(sv[0], &c, 1), 0);
    assert_int_equal(write(untracked[1], "x", 1), 1);
    assert_int_equal(read(untracked[0], &c, 1), 1);
    node_untrack(fx->n, sv[0]);
    close(sv[0]);
    close(sv[1]);
    close(untracked[0]);
    close(untracked[1]);
}

int main(void)
{
    log_verbosity = L_ERROR;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fixed_parts_come_from_the_configuration, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reconfigure_publishes_a_new_snapshot_and_keeps_the_old,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconfigure_changes_only_the_live_keys, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_share_dir_moves_the_share, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_failed_reconfigure_changes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_listeners_are_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_shuts_down_tracked_sockets, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
