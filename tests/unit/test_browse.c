/* test_browse.c - the holder's page of a folder (browse_page(), browse.h):
 * order, paging bounds, confinement, and an entry the index has not hashed
 * yet listed without its MD5. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "floodshare/browse.h"
#include "floodshare/share.h"

struct fixture {
    char dir[64];
    struct share *sh;
};

static void put(const char *dir, const char *rel, const char *text)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void mk(const char *dir, const char *rel)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    assert_int_equal(mkdir(p, 0755), 0);
}

static void ln(const char *dir, const char *rel, const char *target)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    assert_int_equal(symlink(target, p), 0);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);

    assert_non_null(fx);
    strcpy(fx->dir, "/tmp/test_browse.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    mk(fx->dir, "docs");
    mk(fx->dir, "docs/sub");
    put(fx->dir, "docs/a.txt", "hello\n");
    put(fx->dir, "docs/sub/x.txt", "xy");
    put(fx->dir, "b.txt", "b\n");
    mk(fx->dir, ".floodshare");
    ln(fx->dir, "link_in", "docs");
    ln(fx->dir, "link_out", "/etc");
    ln(fx->dir, "docs/inner", "/etc");
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

    if (fx->sh)
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
    return fx->sh;
}

/* One page, parsed. */
struct page {
    struct listing_entry e[BROWSE_PAGE_ENTRIES];
    size_t n, len;
    uint64_t total, count, next;
};

static fs_status page_of(struct share *sh, const char *path, uint64_t offset, struct page *pg)
{
    char *body = NULL;
    const char *why = NULL;
    fs_status st = browse_page(sh, path, offset, &body, &pg->len, &pg->total, &pg->count,
                               &pg->next, &why);
    if (st) {
        assert_non_null(why);
        assert_null(body);
        return st;
    }
    assert_true(pg->len <= BROWSE_PAGE_BYTES && pg->count <= BROWSE_PAGE_ENTRIES);
    assert_int_equal(listing_parse(body, pg->len, pg->count, pg->e, BROWSE_PAGE_ENTRIES, &pg->n,
                                   &why),
                     FS_OK);
    free(body);
    return FS_OK;
}

static void test_browse_top_level_sorted_without_links_or_state_folder(void **state)
{
    struct fixture *fx = *state;
    struct page *pg = malloc(sizeof *pg);

    assert_non_null(pg);
    assert_int_equal(page_of(open_share(fx), "", 0, pg), FS_OK);
    assert_int_equal(pg->total, 2);
    assert_int_equal(pg->n, 2);
    assert_int_equal(pg->next, 2);
    assert_string_equal(pg->e[0].name, "b.txt");
    assert_string_equal(pg->e[1].name, "docs");
    assert_int_equal(pg->e[1].kind, MSG_KIND_FOLDER);
    assert_true(pg->e[1].size_known);
    assert_int_equal(pg->e[1].size, 8); /* a.txt and sub/x.txt */
    assert_int_equal(strlen(pg->e[1].md5), 32);
    assert_int_equal(page_of(fx->sh, "docs", 0, pg), FS_OK);
    assert_int_equal(pg->n, 2); /* a.txt, sub; not the link "inner" */
    assert_string_equal(pg->e[0].name, "a.txt");
    assert_int_equal(pg->e[0].size, 6);
    assert_string_equal(pg->e[1].name, "sub");
    free(pg);
}

static void test_browse_pages_by_entries_and_offset(void **state)
{
    struct fixture *fx = *state;
    struct page *pg = malloc(sizeof *pg);
    char rel[64];

    assert_non_null(pg);
    mk(fx->dir, "many");
    for (int i = 0; i < 2500; i++) {
        snprintf(rel, sizeof rel, "many/f%05d", i);
        put(fx->dir, rel, "");
    }
    open_share(fx);
    assert_int_equal(page_of(fx->sh, "many", 0, pg), FS_OK);
    assert_int_equal(pg->total, 2500);
    assert_int_equal(pg->count, BROWSE_PAGE_ENTRIES);
    assert_int_equal(pg->next, BROWSE_PAGE_ENTRIES);
    assert_string_equal(pg->e[0].name, "f00000");
    assert_int_equal(page_of(fx->sh, "many", 2000, pg), FS_OK);
    assert_int_equal(pg->count, 500);
    assert_int_equal(pg->next, 2500);
    assert_string_equal(pg->e[0].name, "f02000");
    assert_string_equal(pg->e[499].name, "f02499");
    assert_int_equal(page_of(fx->sh, "many", 2500, pg), FS_OK); /* the end: empty */
    assert_int_equal(pg->count, 0);
    assert_int_equal(pg->len, 0);
    assert_int_equal(page_of(fx->sh, "many", 2501, pg), FS_EINVAL);
    free(pg);
}

/* Lines of up to ~840 bytes: a page stops at BROWSE_PAGE_BYTES, not at
 * BROWSE_PAGE_ENTRIES, and next says where the following one starts. */
static void test_browse_pages_by_bytes(void **state)
{
    struct fixture *fx = *state;
    struct page *pg = malloc(sizeof *pg);
    char rel[PATH_MAX], name[256] = "";

    assert_non_null(pg);
    mk(fx->dir, "long");
    for (int i = 0; i < 125; i++)
        strcat(name, "\xc3\xa9"); /* 250 bytes, each escaped: 750 on the wire */
    for (int i = 0; i < 400; i++) {
        snprintf(rel, sizeof rel, "long/%s%03d", name, i);
        put(fx->dir, rel, "");
    }
    open_share(fx);
    uint64_t offset = 0, seen = 0;
    int pages = 0;
    while (offset < 400) {
        assert_int_equal(page_of(fx->sh, "long", offset, pg), FS_OK);
        assert_true(pg->count > 0 && pg->count < 400);
        assert_true(pg->len + LISTING_LINE_MAX > BROWSE_PAGE_BYTES || pg->next == 400);
        seen += pg->count;
        offset = pg->next;
        pages++;
    }
    assert_int_equal(seen, 400);
    assert_true(pages >= 3);
    free(pg);
}

static void test_browse_is_confined(void **state)
{
    struct fixture *fx = *state;
    struct page *pg = malloc(sizeof *pg);

    assert_non_null(pg);
    open_share(fx);
    assert_int_equal(page_of(fx->sh, "link_in", 0, pg), FS_EREFUSED);
    assert_int_equal(page_of(fx->sh, "link_out", 0, pg), FS_EREFUSED);
    assert_int_equal(page_of(fx->sh, "docs/inner", 0, pg), FS_EREFUSED);
    assert_int_equal(page_of(fx->sh, "link_in/sub", 0, pg), FS_EREFUSED);
    assert_int_equal(page_of(fx->sh, "../x", 0, pg), FS_EBADNAME);
    assert_int_equal(page_of(fx->sh, "docs/../..", 0, pg), FS_EBADNAME);
    assert_int_equal(page_of(fx->sh, "/etc", 0, pg), FS_EBADNAME);
    assert_int_equal(page_of(fx->sh, ".floodshare", 0, pg), FS_ENOTFOUND);
    assert_int_equal(page_of(fx->sh, "nope", 0, pg), FS_ENOTFOUND);
    assert_int_equal(page_of(fx->sh, "docs/a.txt", 0, pg), FS_EINVAL);
    free(pg);
}

/* Holds the share's thread just before it hashes anything, so the index
 * stays the one from before a change for as long as the test needs. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
};

static void hold_hook(void *arg, const char *path)
{
    struct gate *g = arg;
    (void)path;
    pthread_mutex_lock(&g->mu);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void test_browse_lists_a_changed_file_without_md5(void **state)
{
    struct fixture *fx = *state;
    struct page *pg = malloc(sizeof *pg);
    struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

    assert_non_null(pg);
    open_share(fx);
    assert_int_equal(page_of(fx->sh, "docs", 0, pg), FS_OK);
    assert_int_equal(strlen(pg->e[0].md5), 32);
    assert_int_equal(strlen(pg->e[0].root), 64);
    share_set_hash_hook(fx->sh, hold_hook, &g);
    put(fx->dir, "docs/a.txt", "hello, changed\n");
    assert_int_equal(page_of(fx->sh, "docs", 0, pg), FS_OK);
    assert_string_equal(pg->e[0].name, "a.txt");
    assert_int_equal(pg->e[0].size, 15); /* what the file is now */
    assert_string_equal(pg->e[0].md5, ""); /* ...whose hash nobody knows yet */
    assert_string_equal(pg->e[0].root, "");
    pthread_mutex_lock(&g.mu);
    g.open = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    share_set_hash_hook(fx->sh, NULL, NULL);
    free(pg);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_browse_top_level_sorted_without_links_or_state_folder),
        T(test_browse_pages_by_entries_and_offset),
        T(test_browse_pages_by_bytes),
        T(test_browse_is_confined),
        T(test_browse_lists_a_changed_file_without_md5),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
