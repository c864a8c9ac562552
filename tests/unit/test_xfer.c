/* test_xfer.c - what `transfers` shows of a swarmed download: the
 * per-source snapshot a coordinator publishes into the transfer table
 * (xfer_table_set_sources), and its text and JSON forms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "floodshare/cfg.h"
#include "floodshare/json.h"
#include "floodshare/node.h"
#include "floodshare/xfer.h"
/* xfer_table_add(): the row a download registers, private to the xfer
 * module; the test plays the coordinator that owns such a row. */
#include "../../src/xfer_int.h"

struct fixture {
    char dir[64];
    struct cfg c;
    struct node *n;
    struct xfer_plane *x;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    char ini[128], path[128], err[256];

    assert_non_null(fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/fs_xfer_XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(path, sizeof path, "%s/share", fx->dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(ini, sizeof ini, "%s/peer.ini", fx->dir);
    FILE *f = fopen(ini, "w");
    assert_non_null(f);
    fprintf(f, "[peer]\nid = 1\nhost = 127.0.0.1\nport = 10811\nshare_dir = share\nttl = 3\n"
               "[neighbours]\npeers = 127.0.0.1:10812\n");
    assert_int_equal(fclose(f), 0);
    if (cfg_load(ini, &fx->c, err, sizeof err) != FS_OK)
        fail_msg("cfg_load: %s", err);
    fx->n = node_new(&fx->c, fx->dir, err, sizeof err);
    if (!fx->n)
        fail_msg("node_new: %s", err);
    struct xfer_limits lim = {.slots = 2, .slots_per_addr = 1, .min_rate = 0};
    fx->x = xfer_plane_new(fx->n, &lim);
    assert_non_null(fx->x);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    char cmd[160];

    xfer_plane_free(fx->x);
    node_free(fx->n);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

static void four_sources(struct xfer_sources *s)
{
    static const enum xfer_source_state st[] = {XFER_SRC_ACTIVE, XFER_SRC_BUSY, XFER_SRC_CUT,
                                                XFER_SRC_BAD};
    memset(s, 0, sizeof *s);
    s->n = 4;
    for (unsigned i = 0; i < 4; i++) {
        s->s[i].peer = (int)i + 2;
        snprintf(s->s[i].holder.host, sizeof s->s[i].holder.host, "127.0.0.1");
        s->s[i].holder.port = (uint16_t)(10812 + i);
        s->s[i].bytes = 112721920ull * (i + 1);
        s->s[i].chunks = 215 * (i + 1);
        s->s[i].rate = 40100000;
        s->s[i].state = st[i];
    }
}

/* The snapshot comes back out of `transfers`' listing as published, on
 * the download's row only. */
static void test_published_sources_are_listed_with_their_row(void **state)
{
    struct fixture *fx = *state;
    struct fs_addr h = {"127.0.0.1", 10812};
    struct xfer_sources s;
    struct xfer_active *act = calloc(XFER_MAX_ACTIVE, sizeof *act);

    assert_non_null(act);
    int up = xfer_table_add(fx->x, 1, "other.bin", &h, 10);
    int down = xfer_table_add(fx->x, 0, "big.iso", &h, 1 << 30);
    assert_true(up >= 0 && down >= 0);
    four_sources(&s);
    xfer_table_set_sources(fx->x, down, &s);
    xfer_table_set_sources(fx->x, -1, &s); /* an unlisted download: nothing happens */
    assert_int_equal(xfer_active_list(fx->x, act, XFER_MAX_ACTIVE), 2);
    assert_int_equal(act[0].srcs.n, 0);
    assert_int_equal(act[1].srcs.n, 4);
    assert_memory_equal(&act[1].srcs.s[3], &s.s[3], sizeof s.s[3]);
    /* A later snapshot replaces the earlier one whole. */
    s.n = 2;
    s.s[0].state = XFER_SRC_DONE;
    xfer_table_set_sources(fx->x, down, &s);
    xfer_active_list(fx->x, act, XFER_MAX_ACTIVE);
    assert_int_equal(act[1].srcs.n, 2);
    assert_int_equal(act[1].srcs.s[0].state, XFER_SRC_DONE);
    /* A row used again starts with no sources. */
    xfer_table_del(fx->x, down);
    down = xfer_table_add(fx->x, 0, "next.iso", &h, 1);
    xfer_active_list(fx->x, act, XFER_MAX_ACTIVE);
    assert_int_equal(act[1].srcs.n, 0);
    free(act);
}

/* An engine that says more sources than the array holds is read no
 * further than XFER_SOURCES_MAX (ASan would see the overread). */
static void test_a_count_past_the_array_is_cut_to_it(void **state)
{
    struct fixture *fx = *state;
    struct fs_addr h = {"127.0.0.1", 10812};
    struct xfer_sources *s = calloc(1, sizeof *s);
    struct xfer_active *act = calloc(XFER_MAX_ACTIVE, sizeof *act);
    struct json j;
    size_t len;

    assert_non_null(s);
    assert_non_null(act);
    int row = xfer_table_add(fx->x, 0, "big.iso", &h, 1);
    s->n = 1000;
    xfer_table_set_sources(fx->x, row, s);
    xfer_active_list(fx->x, act, XFER_MAX_ACTIVE);
    assert_int_equal(act[0].srcs.n, XFER_SOURCES_MAX);
    act[0].srcs.n = 1000; /* and the JSON writer does not trust it either */
    json_init(&j, 1 << 16);
    json_obj_open(&j, NULL);
    xfer_sources_json(&j, "sources", &act[0].srcs);
    json_obj_close(&j);
    const char *doc = json_result(&j, &len);
    assert_non_null(doc);
    unsigned objs = 0;
    for (const char *p = doc; (p = strstr(p, "\"state\"")) != NULL; p++)
        objs++;
    assert_int_equal(objs, XFER_SOURCES_MAX);
    json_free(&j);
    free(act);
    free(s);
}

static void test_source_line_and_json_name_every_field(void **state)
{
    struct xfer_sources s;
    char line[160];
    struct json j;
    size_t len;

    (void)state;
    four_sources(&s);
    assert_string_equal(xfer_source_format(&s.s[0], line, sizeof line),
                        "  source   peer 2 127.0.0.1:10812   active  215 pieces  112721920 bytes"
                        "  40.1 MB/s");
    s.s[3].peer = 0;
    assert_non_null(strstr(xfer_source_format(&s.s[3], line, sizeof line),
                           "peer ? 127.0.0.1:10815   bad "));
    json_init(&j, 1 << 16);
    json_obj_open(&j, NULL);
    xfer_sources_json(&j, "sources", &s);
    json_obj_close(&j);
    const char *doc = json_result(&j, &len);
    assert_non_null(doc);
    assert_non_null(strstr(doc, "\"sources\":[{\"peer\":2,\"holder\":\"127.0.0.1:10812\","
                                "\"bytes\":112721920,\"chunks\":215,\"rate\":40100000,"
                                "\"state\":\"active\"}"));
    assert_non_null(strstr(doc, "\"state\":\"busy\""));
    assert_non_null(strstr(doc, "\"state\":\"cut\""));
    assert_non_null(strstr(doc, "\"peer\":0,\"holder\":\"127.0.0.1:10815\""));
    json_free(&j);
    assert_string_equal(xfer_source_state_name(XFER_SRC_DONE), "done");
    assert_string_equal(xfer_source_state_name((enum xfer_source_state)99), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_published_sources_are_listed_with_their_row, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_count_past_the_array_is_cut_to_it, setup, teardown),
        cmocka_unit_test(test_source_line_and_json_name_every_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
