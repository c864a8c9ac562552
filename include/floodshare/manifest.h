/* manifest.h - a folder's manifest, as a holder sends it (docs/PROTOCOL.md).
 *
 * The manifest is the text whose MD5 is the folder's md5, so a requester
 * that checked that MD5 knows the name, size and MD5 of every file before
 * it fetches any of them. The parser is pure, over (bytes, length). */
#ifndef FLOODSHARE_MANIFEST_H
#define FLOODSHARE_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "floodshare/msg.h"
#include "floodshare/status.h"

#define MANIFEST_MAX_BYTES (64u * 1024 * 1024) /* largest manifest accepted */
#define MANIFEST_MAX_ENTRIES 1000000

struct manifest_entry {
    enum msg_kind kind;
    uint64_t size;             /* files */
    char md5[MSG_MD5_LEN + 1]; /* files */
    char *path;                /* relative to the folder; points into the manifest's copy */
};

struct manifest {
    struct manifest_entry *v;
    size_t n;
    uint64_t total_bytes, files;
    char *text; /* owned copy the paths point into */
};

/* Parses text[0..len) into *out: one line per entry, "F SIZE MD5 PATH" or
 * "D PATH", each PATH path_valid(), the lines in strictly increasing
 * bytewise order of PATH (so no duplicates), and every PATH's parent a "D"
 * line before it (or the folder itself). FS_EPROTO with *why (a constant
 * sentence) otherwise; FS_ETOOBIG over the limits above. Free with
 * manifest_free(). */
fs_status manifest_parse(const char *text, size_t len, struct manifest *out, const char **why);

void manifest_free(struct manifest *m);

#endif
