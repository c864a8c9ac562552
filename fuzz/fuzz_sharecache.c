/* fuzz_sharecache.c - sharecache_parse() over a share's index.cache.
 *
 * The cache lives in the share, so anyone who can write the share can write
 * it; an accepted cache decides which files are never hashed again, so it
 * must hold exactly what its lines say. Checks: entries sorted strictly by
 * (dev, ino) (so no duplicates), every md5 32 lower-case hex digits, every
 * root empty or 64 of them, sizes
 * and nsec in range, at most SHARECACHE_MAX_ENTRIES, one entry per line;
 * written back with sharecache_write() it parses to the same entries, in no
 * more bytes than the input.
 * A refusal sets a reason and leaves nothing allocated. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "floodshare/hash.h"
#include "floodshare/pieces.h"
#include "floodshare/sharecache.h"

#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_entries(const struct sharecache_ent *a, const struct sharecache_ent *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i].dev != b[i].dev || a[i].ino != b[i].ino || a[i].size != b[i].size ||
            a[i].mtime.tv_sec != b[i].mtime.tv_sec || a[i].mtime.tv_nsec != b[i].mtime.tv_nsec ||
            strcmp(a[i].md5, b[i].md5) != 0 || strcmp(a[i].root, b[i].root) != 0)
            return 0;
    return 1;
}

/* 1 if text is exactly a header, n entry lines and an end line. */
static int lines_match(const char *text, size_t len, size_t n)
{
    size_t lines = 0;

    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    /* header + entries + end line, and nothing else */
    return lines == n + 2;
}

static void check_accepted(const char *text, size_t len, const struct sharecache_ent *v,
                           size_t n)
{
    char *out = NULL;
    size_t out_len = 0, n2 = 0;
    struct sharecache_ent *v2 = NULL;
    const char *why = NULL;
    FILE *f;

    CHECK(n <= SHARECACHE_MAX_ENTRIES);
    CHECK(n == 0 || v != NULL);
    for (size_t i = 0; i < n; i++) {
        CHECK(hash_hex_valid(v[i].md5));
        CHECK(v[i].root[0] == '\0' || pieces_root_valid(v[i].root));
        CHECK(v[i].size <= INT64_MAX);
        CHECK(v[i].mtime.tv_nsec >= 0 && v[i].mtime.tv_nsec <= 999999999);
        CHECK(i == 0 || sharecache_cmp(&v[i - 1], &v[i]) < 0);
    }
    CHECK(lines_match(text, len, n));
    f = open_memstream(&out, &out_len);
    CHECK(f != NULL);
    CHECK(sharecache_write(f, v, n) == 0);
    CHECK(fclose(f) == 0);
    CHECK(sharecache_parse(out, out_len, &v2, &n2, &why) == FS_OK);
    CHECK(why == NULL && n2 == n && same_entries(v, v2, n));
    /* The writer spells every number in its shortest form, so an accepted
     * input is never shorter than the same entries written back (a shorter
     * one would have been missing a field). */
    CHECK(out_len <= len);
    free(v2);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    struct sharecache_ent *v = NULL;
    const char *why = NULL;
    size_t n = 12345;

    if (!text)
        return 0;
    memcpy(text, data, size);
    fs_status st = sharecache_parse(text, size, &v, &n, &why);
    if (st == FS_OK) {
        CHECK(why == NULL);
        check_accepted(text, size, v, n);
        free(v);
    } else {
        CHECK(st == FS_EPROTO || st == FS_ETOOBIG || st == FS_ENOMEM);
        CHECK(why != NULL && why[0] != '\0');
        CHECK(v == NULL && n == 0);
    }
    free(text);
    return 0;
}
