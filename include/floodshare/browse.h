/* browse.h - looking into another peer's share: BROWSE / LISTING
 * (docs/PROTOCOL.md), both sides.
 *
 * The holder answers one page of a folder's direct children at a time,
 * bounded in entries (BROWSE_PAGE_ENTRIES) and in body bytes
 * (BROWSE_PAGE_BYTES), sorted bytewise by name, so a requester walks any
 * folder with `offset` and never holds more than a page. The names come
 * from reading the folder itself through the share's descriptor (confined
 * like FETCH and LIST: share_openat(), no link on the way); sizes, MD5s and
 * roots come from the share's index, never from hashing on this thread, so
 * an entry not hashed yet is listed without its MD5. Who may browse is
 * [accept] browse (cfg.h). */
#ifndef FLOODSHARE_BROWSE_H
#define FLOODSHARE_BROWSE_H

#include <stddef.h>
#include <stdint.h>

#include "floodshare/conn.h"
#include "floodshare/listing.h"
#include "floodshare/msg.h"
#include "floodshare/status.h"

struct cfg;
struct node;
struct share;

/* A holder's page: at most this many entries, and at most this many body
 * bytes (a line is at most LISTING_LINE_MAX, so a page always holds at
 * least one entry). A requester accepts pages up to the _MAX values, so a
 * later holder may send larger ones. */
#define BROWSE_PAGE_ENTRIES 1000
#define BROWSE_PAGE_BYTES (128 * 1024)
#define BROWSE_PAGE_ENTRIES_MAX 4096
#define BROWSE_PAGE_BYTES_MAX (1024 * 1024)
/* A folder is read whole for each page (to sort its names): one with more
 * than MSG_MAX_ENTRIES entries, or whose names take more than this many
 * bytes, is refused rather than read ("too many entries to browse"). */
#define BROWSE_NAMES_MAX (32u * 1024 * 1024)

/* One page of the listing of path ("" for the share's top level, else a
 * path_valid() folder below it) from offset on, built from the share sh:
 * the folder is opened beneath its root descriptor without crossing a link
 * (share_openat()), the state folder SHARE_STATE_DIR is never listed nor
 * browsable, and entries that are links, special files or names that are
 * not name_valid() are left out, as the index leaves them out. On FS_OK
 * *body (malloc'd, the caller frees; NULL when the page is empty) holds
 * *count lines of listing.h, *len bytes, *total the folder's entries and
 * *next the offset of the entry after the page's last (== *total at the
 * end). Otherwise *why is a constant sentence for the requester:
 * FS_EBADNAME (a bad path), FS_EREFUSED (a link on the way, or the state
 * folder), FS_ENOTFOUND (no such folder), FS_EINVAL (not a folder, or an
 * offset past the end), FS_ETOOBIG (too many entries), FS_EIO, FS_ENOMEM. */
fs_status browse_page(struct share *sh, const char *path, uint64_t offset, char **body,
                      size_t *len, uint64_t *total, uint64_t *count, uint64_t *next,
                      const char **why);

/* 1 when [accept] browse of c lets the requester on the socket fd, who
 * names itself from (its advertised address), in: any; neighbours (from
 * is a configured neighbour and fd comes from from's host); none: never.
 * BROWSE and WATCH (swatch.h) both ask it. */
int browse_allowed(const struct cfg *c, int fd, const struct fs_addr *from);

/* The holder side: answers the BROWSE req that arrived on c (from a worker
 * of the peer port) with a LISTING and its body, or an ERROR: refused when
 * [accept] browse does not let the requester in ("browsing not accepted
 * from ADDR", counted browse_refused), or for browse_page()'s reasons (a
 * link on the way also counts symlinks_refused). Returns 0 when c may carry
 * another request (the next page), -1 when it must be closed. */
int browse_serve(struct node *n, struct conn *c, const struct msg *req);

/* --- the requester side --- */

/* A connection to a holder for browsing: made from this peer's host (like a
 * transfer, so per-address limits see it), with TLS when the node has it. */
struct browse_conn {
    struct node *node;
    struct conn c;
    int open;
    struct fs_addr holder;
};

/* Connects bc to holder. FS_OK, or why not with err (cap bytes) saying it. */
fs_status browse_connect(struct node *n, const struct fs_addr *holder, struct browse_conn *bc,
                         char *err, size_t cap);

/* Closes bc (a no-op when it is not open). */
void browse_close(struct browse_conn *bc);

/* One page as the requester got it. entries is malloc'd by
 * browse_fetch_page() (BROWSE_PAGE_ENTRIES_MAX at most), freed by
 * browse_page_free(). */
struct browse_result {
    unsigned peer;                /* the holder's id */
    uint64_t total, offset, next;
    size_t count;
    struct listing_entry *entries;
};

/* Sends BROWSE path offset on bc and reads the LISTING: checks, before
 * reading the body, that it names the same path and offset, that count,
 * next and total agree (offset + count <= next <= total, and next > offset
 * while entries remain) and that len fits BROWSE_PAGE_BYTES_MAX; then parses
 * the body (listing_parse()). FS_OK with *out filled; FS_EREFUSED when the
 * holder answered ERROR (err holds its message, e.g. "browsing not accepted
 * from 127.0.0.1:10811"); FS_ENOTFOUND for its notfound; FS_EPROTO when the
 * holder broke the rules above (the connection is then closed); other
 * statuses for I/O. err (cap bytes) says why on any failure. */
fs_status browse_fetch_page(struct browse_conn *bc, const char *path, uint64_t offset,
                            struct browse_result *out, char *err, size_t cap);

void browse_result_free(struct browse_result *r);

#endif
