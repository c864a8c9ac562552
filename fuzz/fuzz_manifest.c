/* fuzz_manifest.c - manifest_parse() over a MANIFEST body from a peer.
 *
 * The requester fetches every file the manifest names, so an accepted
 * manifest must hold exactly what the text says: one entry per line, every
 * path path_valid(), strictly sorted (no duplicates), every parent a listed
 * folder, the totals the sum of the file lines, and the entries written back
 * in the manifest format give the very same bytes (its MD5 is the folder's
 * digest, so there is only one text for one folder). */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "floodshare/manifest.h"

#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Index of the entry among v[0..below) whose path is p[0..n), or -1. The
 * entries are checked to be sorted by strcmp() before this is used. */
static long find_path(const struct manifest *m, size_t below, const char *p, size_t n)
{
    char key[PATH_MAX_LEN + 1];
    size_t lo = 0, hi = below;

    if (n > PATH_MAX_LEN)
        return -1;
    memcpy(key, p, n);
    key[n] = '\0';
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->v[mid].path, key);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static void check_manifest(const struct manifest *m, const char *text, size_t len)
{
    uint64_t total = 0, files = 0;
    size_t lines = 0, off = 0;
    char md5[MSG_MD5_LEN + 1];

    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    CHECK(m->n == lines);
    CHECK(len == 0 || text[len - 1] == '\n');
    for (size_t i = 0; i < m->n; i++) {
        const struct manifest_entry *e = &m->v[i];
        char head[64];
        size_t plen = strlen(e->path);
        CHECK(path_valid(e->path, plen));
        CHECK(i == 0 || strcmp(m->v[i - 1].path, e->path) < 0);
        const char *slash = strrchr(e->path, '/');
        if (slash) {
            long p = find_path(m, i, e->path, (size_t)(slash - e->path));
            CHECK(p >= 0 && m->v[p].kind == MSG_KIND_FOLDER);
        }
        if (e->kind == MSG_KIND_FILE) {
            CHECK(strlen(e->md5) == MSG_MD5_LEN);
            snprintf(md5, sizeof md5, "%s", e->md5);
            snprintf(head, sizeof head, "F %" PRIu64 " %s ", e->size, md5);
            total += e->size;
            files++;
        } else {
            CHECK(e->kind == MSG_KIND_FOLDER);
            snprintf(head, sizeof head, "D ");
        }
        size_t hl = strlen(head);
        CHECK(off + hl + plen + 1 <= len);
        CHECK(memcmp(text + off, head, hl) == 0);
        CHECK(memcmp(text + off + hl, e->path, plen) == 0);
        CHECK(text[off + hl + plen] == '\n');
        off += hl + plen + 1;
    }
    CHECK(off == len);
    CHECK(m->total_bytes == total && m->files == files);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    struct manifest m;
    const char *why = NULL;

    if (!text)
        return 0;
    memcpy(text, data, size);
    fs_status st = manifest_parse(text, size, &m, &why);
    if (st == FS_OK) {
        check_manifest(&m, text, size);
        manifest_free(&m);
    } else {
        CHECK(st == FS_EPROTO || st == FS_ETOOBIG);
        CHECK(why != NULL && why[0] != '\0');
        CHECK(m.v == NULL && m.text == NULL && m.n == 0); /* nothing left to free */
    }
    free(text);
    return 0;
}
