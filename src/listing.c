/* listing.c - LISTING body lines: format and parse (listing.h).
 *
 * Every *why is a constant sentence naming the field and the rule it broke,
 * so a requester can say exactly what a holder got wrong. */
#include "floodshare/listing.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "floodshare/name.h"

static int hex_ok(const char *s, size_t n, size_t want)
{
    if (n != want)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* "" or exactly want lower-case hex digits. */
static int opt_hex_ok(const char *s, size_t cap, size_t want)
{
    size_t n = strnlen(s, cap);

    return n < cap && (n == 0 || hex_ok(s, n, want));
}

int listing_format(const struct listing_entry *e, char *out, size_t cap)
{
    char size[24], enc[3 * MSG_MAX_NAME + 1];
    size_t nlen = strnlen(e->name, sizeof e->name);

    if ((e->kind != MSG_KIND_FILE && e->kind != MSG_KIND_FOLDER) || nlen == sizeof e->name ||
        !name_valid(e->name, nlen) || !opt_hex_ok(e->md5, sizeof e->md5, MSG_MD5_LEN) ||
        !opt_hex_ok(e->root, sizeof e->root, MSG_ROOT_LEN) ||
        (e->kind == MSG_KIND_FOLDER && e->root[0]) ||
        (e->kind == MSG_KIND_FILE && !e->size_known))
        return -1;
    if (msg_pct_encode(e->name, nlen, enc, sizeof enc) < 0)
        return -1;
    if (e->size_known)
        snprintf(size, sizeof size, "%" PRIu64, e->size);
    else
        snprintf(size, sizeof size, "-");
    int w = snprintf(out, cap, "%c %s %s %" PRIu64 " %s %s\n",
                     e->kind == MSG_KIND_FILE ? 'f' : 'd', size, e->md5[0] ? e->md5 : "-",
                     e->mtime, e->root[0] ? e->root : "-", enc);
    return w < 0 || (size_t)w >= cap ? -1 : w;
}

/* Splits line[0..n) into exactly six fields at single spaces. */
static int split6(const char *line, size_t n, const char *f[6], size_t fl[6])
{
    size_t k = 0, start = 0;

    for (size_t i = 0; i <= n; i++) {
        if (i < n && line[i] != ' ')
            continue;
        if (k == 6)
            return 0;
        f[k] = line + start;
        fl[k++] = i - start;
        start = i + 1;
    }
    return k == 6;
}

static fs_status fail(const char **why, const char *text)
{
    *why = text;
    return FS_EPROTO;
}

static fs_status parse_line(const char *line, size_t n, struct listing_entry *e, const char **why)
{
    const char *f[6];
    size_t fl[6];

    memset(e, 0, sizeof *e);
    if (!split6(line, n, f, fl))
        return fail(why, "listing line is not six fields separated by single spaces");
    if (fl[0] == 1 && f[0][0] == 'f')
        e->kind = MSG_KIND_FILE;
    else if (fl[0] == 1 && f[0][0] == 'd')
        e->kind = MSG_KIND_FOLDER;
    else
        return fail(why, "listing kind is not f or d");
    if (fl[1] == 1 && f[1][0] == '-') {
        if (e->kind == MSG_KIND_FILE)
            return fail(why, "listing size of a file is not a number");
    } else if (msg_dec_u64(f[1], fl[1], &e->size)) {
        e->size_known = 1;
    } else {
        return fail(why, "listing size is not a number that fits in 64 bits, or -");
    }
    if (hex_ok(f[2], fl[2], MSG_MD5_LEN))
        memcpy(e->md5, f[2], MSG_MD5_LEN);
    else if (!(fl[2] == 1 && f[2][0] == '-'))
        return fail(why, "listing md5 is not 32 lower-case hex digits, or -");
    if (!msg_dec_u64(f[3], fl[3], &e->mtime))
        return fail(why, "listing mtime is not a number of seconds that fits in 64 bits");
    if (hex_ok(f[4], fl[4], MSG_ROOT_LEN)) {
        if (e->kind == MSG_KIND_FOLDER)
            return fail(why, "listing root given for a folder");
        memcpy(e->root, f[4], MSG_ROOT_LEN);
    } else if (!(fl[4] == 1 && f[4][0] == '-')) {
        return fail(why, "listing root is not 64 lower-case hex digits, or -");
    }
    int dl = msg_pct_decode(f[5], fl[5], e->name, sizeof e->name);
    if (dl < 0)
        return fail(why, "listing name has a bad escape, a NUL, or exceeds 255 bytes");
    /* Raw bytes other than 0x21..0x7e never come from our encoder: a name
     * with a raw space would already have split into more fields. */
    for (size_t i = 0; i < fl[5]; i++)
        if ((unsigned char)f[5][i] < 0x21 || (unsigned char)f[5][i] > 0x7e)
            return fail(why, "listing name has a raw byte that must be percent-encoded");
    if (!name_valid(e->name, (size_t)dl))
        return fail(why, "listing name is not a valid name (empty, . or .., '/', control "
                         "bytes, bad UTF-8)");
    return FS_OK;
}

fs_status listing_parse(const char *body, size_t len, uint64_t count, struct listing_entry *out,
                        size_t max, size_t *n, const char **why)
{
    const char *ignored;
    size_t pos = 0;

    if (!why)
        why = &ignored;
    *why = NULL;
    *n = 0;
    if (count > max)
        return fail(why, "listing count is larger than the page the requester takes");
    while (pos < len) {
        const char *nl = memchr(body + pos, '\n', len - pos);
        if (!nl)
            return fail(why, "listing ends without a newline");
        size_t ll = (size_t)(nl - (body + pos));
        if (*n == count)
            return fail(why, "listing has more lines than its count");
        if (ll > LISTING_LINE_MAX)
            return fail(why, "listing line is too long");
        fs_status st = parse_line(body + pos, ll, &out[*n], why);
        if (st)
            return st;
        if (*n > 0 && strcmp(out[*n - 1].name, out[*n].name) >= 0)
            return fail(why, "listing names are not in strictly increasing bytewise order");
        (*n)++;
        pos += ll + 1;
    }
    if (*n != count)
        return fail(why, "listing has fewer lines than its count");
    return FS_OK;
}
