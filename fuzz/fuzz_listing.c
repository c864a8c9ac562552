/* fuzz_listing.c - listing_parse() over a LISTING body from any holder.
 *
 * The body comes from the peer a user browses, who may be anyone. The
 * count is taken from the input (its number of newlines) so that most
 * inputs get past the count check. Checks: an accepted page has exactly
 * count entries; every name is name_valid() and strictly after the one
 * before it (so none twice); md5 empty or 32 lower-case hex digits, root
 * empty or 64, none on a folder, every file with a size; written back with
 * listing_format() it parses to the same entries; the same bytes with one
 * line more or fewer claimed are refused; a refusal has a *why* and never
 * claims more entries than it was given room for. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "floodshare/listing.h"
#include "floodshare/name.h"

#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ENTRIES 64

static int hex_of_len(const char *s, size_t want)
{
    if (strlen(s) != want)
        return 0;
    for (size_t i = 0; i < want; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static int same(const struct listing_entry *a, const struct listing_entry *b)
{
    return a->kind == b->kind && a->size == b->size && a->size_known == b->size_known &&
           a->mtime == b->mtime && strcmp(a->md5, b->md5) == 0 &&
           strcmp(a->root, b->root) == 0 && strcmp(a->name, b->name) == 0;
}

static void check_accepted(const struct listing_entry *e, size_t n)
{
    static char out[MAX_ENTRIES * (LISTING_LINE_MAX + 1)];
    static struct listing_entry back[MAX_ENTRIES];
    size_t len = 0, n2 = 0;

    for (size_t i = 0; i < n; i++) {
        CHECK(name_valid(e[i].name, strlen(e[i].name)));
        CHECK(i == 0 || strcmp(e[i - 1].name, e[i].name) < 0);
        CHECK(e[i].md5[0] == '\0' || hex_of_len(e[i].md5, 32));
        CHECK(e[i].root[0] == '\0' || hex_of_len(e[i].root, 64));
        CHECK(e[i].kind == MSG_KIND_FILE || e[i].kind == MSG_KIND_FOLDER);
        CHECK(e[i].kind == MSG_KIND_FILE || e[i].root[0] == '\0');
        CHECK(e[i].kind == MSG_KIND_FOLDER || e[i].size_known);
        int w = listing_format(&e[i], out + len, sizeof out - len);
        CHECK(w > 0 && (size_t)w <= LISTING_LINE_MAX + 1);
        len += (size_t)w;
    }
    CHECK(listing_parse(out, len, n, back, MAX_ENTRIES, &n2, NULL) == FS_OK);
    CHECK(n2 == n);
    for (size_t i = 0; i < n; i++)
        CHECK(same(&e[i], &back[i]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct listing_entry e[MAX_ENTRIES];
    const char *body = (const char *)data;
    const char *why = NULL;
    uint64_t count = 0;
    size_t n = 0;

    for (size_t i = 0; i < size; i++)
        count += data[i] == '\n';
    fs_status st = listing_parse(body, size, count, e, MAX_ENTRIES, &n, &why);
    if (st == FS_OK) {
        CHECK(why == NULL && n == count);
        check_accepted(e, n);
        CHECK(listing_parse(body, size, count + 1, e, MAX_ENTRIES, &n, &why) == FS_EPROTO);
        if (count > 0)
            CHECK(listing_parse(body, size, count - 1, e, MAX_ENTRIES, &n, &why) == FS_EPROTO);
    } else {
        CHECK(st == FS_EPROTO);
        CHECK(why != NULL && why[0] != '\0');
        CHECK(n <= count && n <= MAX_ENTRIES);
    }
    return 0;
}
