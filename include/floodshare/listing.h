/* listing.h - the body of a LISTING (docs/PROTOCOL.md, BROWSE / LISTING):
 * one line per entry of a folder, what `browse` shows and what a sync
 * compares.
 *
 *   KIND SIZE MD5 MTIME ROOT NAME\n
 *
 * KIND is `f` (file) or `d` (folder); SIZE the file's bytes or the sum of
 * the folder's files, `-` for a folder the holder has not indexed yet; MD5
 * 32 lower-case hex digits, or `-` when the holder has not hashed the entry
 * yet (it never hashes to answer); MTIME the modification time in whole
 * seconds since 1970; ROOT the file's piece root (64 lower-case hex
 * digits, pieces.h) or `-` (folders, and files without one); NAME
 * percent-encoded as header values are (msg.h) and name_valid() once
 * decoded. Fields are separated by exactly one space.
 *
 * Pure functions over (bytes, length): no I/O, no globals, fuzzed alone
 * (fuzz/fuzz_listing.c). */
#ifndef FLOODSHARE_LISTING_H
#define FLOODSHARE_LISTING_H

#include <stddef.h>
#include <stdint.h>

#include "floodshare/msg.h"
#include "floodshare/status.h"

/* The longest line: f, a 20-digit size, md5, a 20-digit mtime, a root and
 * a name of 255 bytes every one of which is percent-encoded. */
#define LISTING_LINE_MAX (2 + 21 + MSG_MD5_LEN + 1 + 21 + MSG_ROOT_LEN + 1 + 3 * MSG_MAX_NAME + 1)

struct listing_entry {
    enum msg_kind kind;
    uint64_t size;
    int size_known;             /* 0: a folder not indexed yet (SIZE `-`) */
    char md5[MSG_MD5_LEN + 1];  /* "" when not hashed yet (MD5 `-`) */
    uint64_t mtime;             /* seconds since 1970 */
    char root[MSG_ROOT_LEN + 1]; /* "" when none (ROOT `-`) */
    char name[MSG_MAX_NAME + 1];
};

/* Writes e as one line (with '\n') into out[0..cap). Returns its length, or
 * -1 when e has a field that is not valid (a name that is not
 * name_valid(), an md5 or root that is neither "" nor hex of the right
 * length, a folder with a root, an unknown size on a file) or out is too
 * small. listing_parse() of the result gives e back. */
int listing_format(const struct listing_entry *e, char *out, size_t cap);

/* Parses body[0..len), which must be exactly `count` lines, into
 * out[0..max). Names must be strictly increasing bytewise (the holder
 * sorts them), so no name is listed twice. Returns FS_OK with *n = count;
 * FS_EPROTO with *why a constant sentence naming the first problem (and
 * *n the entries parsed before it) when a line is malformed, there are more
 * or fewer lines than count, or count > max. Never reads past body[len-1];
 * body need not be NUL-terminated. */
fs_status listing_parse(const char *body, size_t len, uint64_t count, struct listing_entry *out,
                        size_t max, size_t *n, const char **why);

#endif
