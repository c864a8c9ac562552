/* fuzz_syncstate.c - syncstate_parse() over a sync's .state file.
 *
 * The state sits in the share's .floodshare/sync/ folder, where anything
 * with write access to the share can change it; the sync trusts what this
 * parser accepts to decide which of N's files it may overwrite or remove
 * without setting them aside (syncstate_decide()). So an accepted state
 * must be what the writer could have written: a peer address, at most
 * SYNCSTATE_MAX_FILES records in strictly increasing path order, every
 * path a valid relative path (no "..", not absolute), every md5 32
 * lower-case hex digits, size and nanoseconds in range; formatted back
 * with syncstate_format() it must parse to the same state, and the text
 * must then be a fixed point (format -> parse -> format gives the same
 * bytes). Every record's last name must also make a conflict name within
 * NAME_MAX_LEN that is itself a valid name. A refused one must say why
 * and leave nothing allocated. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "floodshare/hash.h"
#include "floodshare/name.h"
#include "floodshare/syncstate.h"

#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define YEAR_10000 ((time_t)253402300800) /* 10000-01-01 00:00:00 UTC */

static void check_records(const struct syncstate *st)
{
    CHECK(st->from.port != 0 && st->n <= SYNCSTATE_MAX_FILES);
    for (size_t i = 0; i < st->n; i++) {
        const struct syncstate_file *f = &st->files[i];
        CHECK(path_valid(f->path, strlen(f->path)));
        CHECK(hash_hex_valid(f->v.md5) && f->v.size <= INT64_MAX);
        CHECK(f->v.mtime.tv_nsec >= 0 && f->v.mtime.tv_nsec < 1000000000L);
        CHECK(i == 0 || strcmp(st->files[i - 1].path, f->path) < 0);
        CHECK(syncstate_find(st, f->path) == f);
    }
}

static void check_same(const struct syncstate *a, const struct syncstate *b)
{
    CHECK(addr_equal(&a->from, &b->from) && a->n == b->n);
    for (size_t i = 0; i < a->n; i++) {
        CHECK(!strcmp(a->files[i].path, b->files[i].path));
        CHECK(!strcmp(a->files[i].v.md5, b->files[i].v.md5));
        CHECK(a->files[i].v.size == b->files[i].v.size);
        CHECK(a->files[i].v.mtime.tv_sec == b->files[i].v.mtime.tv_sec);
        CHECK(a->files[i].v.mtime.tv_nsec == b->files[i].v.mtime.tv_nsec);
    }
}

/* The conflict name of every record's last path component. */
static void check_conflict_names(const struct syncstate *st)
{
    char out[NAME_MAX_LEN + 1];

    for (size_t i = 0; i < st->n && i < 16; i++) {
        const char *slash = strrchr(st->files[i].path, '/');
        const char *name = slash ? slash + 1 : st->files[i].path;
        /* any time from 1970 to 9999, from the record's mtime */
        time_t when = st->files[i].v.mtime.tv_sec % YEAR_10000;
        CHECK(syncstate_conflict_name(name, when < 0 ? when + YEAR_10000 : when, "3", out) ==
              FS_OK);
        CHECK(strlen(out) <= NAME_MAX_LEN && name_valid(out, strlen(out)));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct syncstate st, back, again;
    const char *why = NULL;
    char *text, *text2;
    size_t len, len2;

    fs_status rc = syncstate_parse((const char *)data, size, &st, &why);
    if (rc != FS_OK) {
        CHECK(rc == FS_EPROTO || rc == FS_ETOOBIG || rc == FS_ENOMEM);
        CHECK(why != NULL && st.files == NULL && st.paths == NULL && st.n == 0);
        return 0;
    }
    check_records(&st);
    check_conflict_names(&st);
    CHECK(syncstate_format(&st, &text, &len) == FS_OK);
    CHECK(syncstate_parse(text, len, &back, &why) == FS_OK);
    check_same(&st, &back);
    CHECK(syncstate_format(&back, &text2, &len2) == FS_OK);
    CHECK(len2 == len && !memcmp(text, text2, len));
    CHECK(syncstate_parse(text2, len2, &again, &why) == FS_OK);
    check_same(&back, &again);
    free(text);
    free(text2);
    syncstate_free(&st);
    syncstate_free(&back);
    syncstate_free(&again);
    return 0;
}
