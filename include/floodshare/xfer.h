/* xfer.h - item transfers: serving REQUESTs and fetching hits.
 *
 * The receiving side never lets a partial or unverified item appear under
 * its final name: the archive is written under SHARE_STATE_DIR, its MD5
 * checked, extracted into a temporary folder there, the extracted item's
 * digest checked against the FOUND, and only then renamed into place,
 * refusing to replace anything that exists. */
#ifndef FLOODSHARE_XFER_H
#define FLOODSHARE_XFER_H

#include <stddef.h>
#include <stdint.h>

#include "floodshare/conn.h"
#include "floodshare/msg.h"
#include "floodshare/status.h"
#include "floodshare/trace.h"

struct json;
struct node;
struct xfer_plane;

#define XFER_CHUNK (256 * 1024) /* bytes moved per read/write of an archive */
/* Archive bytes allowed beyond the item's own size (zip headers of up to
 * ~300,000 entries). */
#define XFER_ARCHIVE_SLACK (64ull * 1024 * 1024)
#define XFER_MAX_ACTIVE 64 /* transfers `transfers` can show at once */
#define XFER_WATCHERS_MAX 64 /* WATCH connections a holder keeps at once (swatch.h) */
/* Chunk sizes (bytes per DATA frame, see partial.h and PROTOCOL.md FETCH):
 * a requester asks for XFER_FETCH_CHUNK for a new download (a resumed one
 * asks for the size its partial was made with); a holder sends
 * min(asked, XFER_SERVE_CHUNK_MAX), or PARTIAL_CHUNK to a FETCH that asks
 * for none (older requesters). The requester holds 3 chunk buffers, the
 * holder one: measured in bench/RESULTS.md ("transfer memory"). */
#define XFER_FETCH_CHUNK (512u * 1024)
#define XFER_SERVE_CHUNK_MAX (4u * 1024 * 1024)
/* A DATA frame (one chunk, at most 4 MiB) must arrive whole within this many
 * io_timeout_ms (and no wait inside it may last one io_timeout_ms): a
 * holder that trickles bytes is cut off like one that stalls. With the
 * default 10 s, a holder slower than ~100 KiB/s is cut off. */
#define XFER_FRAME_TIMEOUTS 4
/* Folders of at least this many bytes travel file by file (LIST, then
 * FETCH each file: resumable, no archive copy); smaller ones as one zip
 * archive, which is faster for many small files. */
#define XFER_STREAM_FOLDER_MIN (64ull * 1024 * 1024)

/* --- the holder side: upload slots and pacing ---
 *
 * An upload (a REQUEST, FETCH or LIST being served) holds one of
 * [limits] upload_slots, at most upload_slots_per_addr of them per
 * requesting address. A requester beyond these gets BUSY with a retry time
 * and its connection is closed (stats busy_refused). A requester fetching
 * a folder file by file keeps its slot between FETCHes on the same
 * connection, for at most XFER_SLOT_KEEP_MS of waiting each time; after
 * that the slot goes back and its next FETCH must win one again.
 * An upload that moves less than min_upload_rate bytes/s over any
 * XFER_RATE_WINDOW_MS (counting bytes the requester's TCP acknowledged,
 * not bytes merely queued in our socket buffer) is cut (stats
 * uploads_slow): this bounds the whole transfer, where io_timeout_ms
 * only bounds each wait. Its address then gets BUSY for
 * XFER_SLOW_PENALTY_MS, so that it cannot take the freed slot straight
 * back ahead of the requesters it was keeping waiting. */
#define XFER_RATE_WINDOW_MS 10000
#define XFER_SLOT_KEEP_MS 2000
#define XFER_SLOW_PENALTY_MS XFER_RATE_WINDOW_MS
#define XFER_BUSY_RETRY_MS 2000 /* a BUSY asks for this, plus up to 1 s of jitter */
#define XFER_BUSY_TRIES 8       /* a get asks a BUSY holder again at most this often */

struct xfer_limits {
    unsigned slots, slots_per_addr; /* >= 1 */
    unsigned min_rate;              /* bytes/s; 0: never cut */
};

/* Makes the transfer plane of node n with the limits above ([limits] keys,
 * fixed until a restart). n is borrowed and must outlive it. NULL when out
 * of memory or lim has 0 slots. */
struct xfer_plane *xfer_plane_new(struct node *n, const struct xfer_limits *lim);

/* Frees x; no transfer may be running. NULL is a no-op. */
void xfer_plane_free(struct xfer_plane *x);

/* What the holder traces of one requester's connection: one transfer per
 * connection and item, however many FETCHes (spans, end=) it takes, so a
 * swarming requester cannot flood the 4096-event ring. transfer_started
 * at the item's first FETCH; transfer_done when the connection ends, is
 * parked idle or asks for another item, transfer_failed when a FETCH of
 * it fails (the connection is then closed). Its bytes: the position after
 * the last byte sent; source_bytes and count: bytes and DATA frames sent
 * of it on this connection. */
struct xfer_uptrace {
    int open;
    struct trace_event ev;
    uint64_t last_ms; /* the last event, for transfer_progress's pace */
};

/* The upload slot of one requester's connection and its trace; zero it
 * before use, give it back (xfer_slot_give) when the connection ends or
 * is parked. */
struct xfer_slot {
    int held;
    char host[ADDR_HOST_MAX + 1]; /* the requester's address, while held */
    struct xfer_uptrace tr;
};

/* Takes a slot for the requester on c unless s already holds one. 0 when
 * s holds one; -1 when none was free: BUSY was sent (counted busy_refused)
 * and the caller must close c. */
int xfer_slot_take(struct xfer_plane *x, struct conn *c, struct xfer_slot *s);

/* Gives s's slot back if it holds one, and ends its traced transfer if
 * one is open (transfer_done). */
void xfer_slot_give(struct xfer_plane *x, struct xfer_slot *s);

/* Serves one REQUEST (an item as a zip archive) or FETCH (a file's bytes
 * from an offset, in DATA frames) that arrived on c. The caller closes the
 * connection afterwards. */
void xfer_serve(struct xfer_plane *x, struct conn *c, const struct msg *req);

/* Serve FETCH (a file's bytes from an offset, in DATA frames) and LIST (a
 * folder's manifest). Return 0 when the connection may carry another
 * request, -1 when it must be closed. A FETCH is traced in s->tr (the
 * connection's slot, as xfer_slot_take() took it). */
int xfer_serve_fetch(struct xfer_plane *x, struct conn *c, struct xfer_slot *s,
                     const struct msg *req);
int xfer_serve_list(struct xfer_plane *x, struct conn *c, const struct msg *req);
/* Serves HASHES: the piece hash list of a file whose FOUND carried a root,
 * from the index's sidecar (share.h SHARE_PIECES_DIR), checked against the
 * root before it is sent (a damaged sidecar is refused, never served).
 * Same return as above. */
int xfer_serve_hashes(struct xfer_plane *x, struct conn *c, const struct msg *req);

/* Serves ROOTS: the piece roots of a large folder's files, in manifest
 * order (share_folder_roots()), when its root is still the one asked for.
 * Same return as above. */
int xfer_serve_roots(struct xfer_plane *x, struct conn *c, const struct msg *req);

/* What a download reports while it runs. */
struct xfer_event {
    const char *name;
    uint64_t done, total;  /* bytes of the item present, and its size */
    uint64_t resumed_from; /* bytes already there when this attempt began */
    double rate;           /* bytes per second, recent */
    unsigned peer;         /* holder's id */
    const struct fs_addr *holder;
    unsigned sources;      /* holders fetching at once (rate is their sum); 0 means 1.
                              The swarm engine sets it: the progress line says
                              "from N sources" when N > 1 */
};

struct xfer_feed;
struct partial;

/* Optional hooks for a download: progress (called about 5 times a second)
 * and cancellation (polled between chunks; non-zero stops the download,
 * which stays resumable). Any member may be NULL. feed: more holders of
 * the same file while it downloads (swarming); NULL: one holder. */
struct xfer_watch {
    void (*progress)(void *ctx, const struct xfer_event *ev);
    int (*cancelled)(void *ctx);
    void *ctx;
    const struct xfer_feed *feed;
    /* A sync (sync.h): called once, on the get's thread, when the version 2
     * partial of a file fetched with a piece list is open and before any
     * source runs, with the holder's list (n digests, already checked
     * against the hit's root), so that the caller may seed the partial
     * from a local copy (partial_seed()). Every piece it sets is a claim:
     * the engine re-checks each against the list as it does a resumed
     * state's, so a wrong seed costs a re-fetch, never a wrong byte. NULL:
     * none. pt and list are borrowed for the call only. */
    void (*seed)(void *ctx, struct partial *pt, const unsigned char *list, uint64_t n);
};

/* One holder's share of a swarmed get (docs/SWARMING.md, What the user sees). */
enum xfer_source_state {
    XFER_SRC_ACTIVE, /* connected and fetching */
    XFER_SRC_BUSY,   /* waiting out the holder's BUSY */
    XFER_SRC_DONE,   /* finished, or closed with nothing left for it */
    XFER_SRC_CUT,    /* failed: closed, reset, stalled, refused */
    XFER_SRC_BAD     /* sent a piece failing its SHA-256: cut for this item */
};

#define XFER_SOURCES_MAX 8

struct xfer_source_info {
    int peer;                   /* the holder's peer id from its FOUND, 0 when unknown */
    struct fs_addr holder;      /* where it was fetched from */
    uint64_t bytes;             /* verified bytes it delivered (no duplicates, no bad) */
    uint64_t chunks;            /* verified pieces it delivered */
    uint64_t rate;              /* bytes per second over its last 4 s */
    enum xfer_source_state state;
};

struct xfer_sources {
    unsigned n;                 /* entries used, in the order the sources started */
    struct xfer_source_info s[XFER_SOURCES_MAX];
};

/* The state's name as users and --json see it: "active", "busy", "done", "cut", "bad". */
const char *xfer_source_state_name(enum xfer_source_state st);

/* More holders for one get (docs/DESIGN.md, Transfers, "Many sources"): a
 * file whose hit carried a root is fetched from up to k holders at once,
 * each a source thread with its own connection; the first is the hit
 * xfer_fetch() was given, the others come from here as their hits arrive.
 * Every hook is called from the thread running xfer_fetch() only, never
 * under a lock of the engine, so the get's own state needs no lock. */
struct xfer_feed {
    unsigned k; /* holders at once, 1..XFER_SOURCES_MAX; 1: today's get, one holder */
    /* The i-th (from 0) hit waiting that may become a source, in the order
     * the get would try them: a FOUND of the same item as key (a file of
     * the same size, md5 and root) whose holder was not tried in this get.
     * NULL past the last. The pointer is the get's, valid until the next
     * call of any hook. */
    const struct msg *(*peek)(void *ctx, const struct msg *key, unsigned i);
    /* hit became source idx (1-based) of at most k: the get counts its
     * holder as tried (never a source again in this get). */
    void (*started)(void *ctx, const struct msg *hit, unsigned idx, unsigned k);
    /* A source of a get with k > 1 ended: st XFER_SRC_DONE, or CUT / BAD
     * with why (one line). piece: the piece that failed its SHA-256 (BAD). */
    void (*ended)(void *ctx, const struct msg *hit, enum xfer_source_state st,
                  const char *why, uint64_t piece);
    void *ctx;
};

struct xfer_result {
    uint64_t bytes;        /* bytes received from the holder */
    uint64_t resumed_from; /* bytes that were already there (a resumed download) */
    double seconds;        /* request to verified item */
    double ttfb;           /* request to the first byte of content */
    char why[256];         /* on failure: one line naming what went wrong */
    int local;             /* on failure: 1 when it was this side's (a full disk), so
                              another holder would fail the same way */
    unsigned retry_ms;     /* on failure: the holder answered BUSY (every upload slot
                              taken) and asks to be tried again after this long */
    struct xfer_sources srcs; /* per source, in start order (one entry for a one-holder FETCH get) */
};

/* Downloads the item of hit (a FOUND) into the peer's share under
 * hit->name. Files travel as FETCH/DATA and resume from a partial left by
 * an earlier attempt (any holder of the same item); folders as a zip
 * archive. FS_OK when the verified item is in place; FS_EEXIST when the
 * name already exists in the share (nothing written); FS_ECANCELED when
 * watch cancelled it (a file stays resumable); FS_EBUSY with
 * res->retry_ms when the holder had no upload slot free (nothing lost: a
 * partial stays resumable); other statuses with res->why when this holder
 * failed.
 * A file whose hit carries a root is fetched from up to watch->feed->k
 * holders of the same key at once (struct xfer_feed); res->srcs then names
 * each (one entry for one holder).
 * A holder that sends other bytes than it announced, stalls, trickles
 * (XFER_FRAME_TIMEOUTS) or sends more than was asked is cut off at once
 * (stats holders_cut) and res->why says which.
 * A full disk: a file that cannot fit in the space left is refused before
 * a byte is written ("No space left on device: ..."); when a write fails
 * anyway, the partial is cut back to its last whole chunk and kept, so a
 * `get` after space was freed resumes it. watch may be NULL. */
fs_status xfer_fetch(struct xfer_plane *x, const struct msg *hit, const struct xfer_watch *watch,
                     struct xfer_result *res);

/* xfer_fetch() of a file hit whose verified bytes take the name `to` in
 * the folder dirfd (borrowed; on the share's file system) instead of
 * hit->name in the share: a sync (sync.c) fetches beside the state folder
 * and swaps the result in itself. Never replaces anything: FS_EEXIST when
 * `to` exists there. FS_EINVAL for a folder hit. Otherwise as xfer_fetch(),
 * whose partial (keyed by md5) it shares, so either resumes the other. */
fs_status xfer_fetch_to(struct xfer_plane *x, const struct msg *hit, int dirfd, const char *to,
                        const struct xfer_watch *watch, struct xfer_result *res);

/* Bytes of (name, size, md5) already downloaded in share_dir's partial
 * state (for a large folder: the files already staged), 0 when none. */
uint64_t xfer_partial_bytes(const char *share_dir, const char *name, uint64_t size,
                            const char *md5);

/* Transfers running now, for `transfers`. */
struct xfer_active {
    int upload;                  /* 1: serving a requester; 0: downloading */
    char name[MSG_MAX_NAME + 1]; /* item name (uploads: its path) */
    struct fs_addr other;        /* holder, or requester */
    uint64_t done, total;
    double seconds;              /* since it started */
    struct xfer_sources srcs;    /* a download's sources as its coordinator last published
                                    them (xfer_table_set_sources); n 0: none published */
};


/* Copies up to max running transfers into out; returns how many. An
 * entry is about 1 KiB: callers keep XFER_MAX_ACTIVE of them on the heap. */
size_t xfer_active_list(struct xfer_plane *x, struct xfer_active *out, size_t max);

/* The coordinator of a swarmed get publishes its sources for `transfers`
 * (a snapshot, copied under the table lock). row is what xfer_table_add()
 * (xfer_int.h) returned for the download: -1 (not listed) does nothing.
 * At most XFER_SOURCES_MAX entries are kept, whatever src->n says. */
void xfer_table_set_sources(struct xfer_plane *x, int row, const struct xfer_sources *src);

/* `transfers`' line of one source, without a newline:
 * "  source   peer 2 127.0.0.1:10812   active  215 pieces  112721920 bytes  40.1 MB/s".
 * Pure. Returns out. */
char *xfer_source_format(const struct xfer_source_info *s, char *out, size_t cap);

/* Writes s as the array `key`: [{"peer", "holder", "bytes", "chunks",
 * "rate", "state"}, ...] in start order (`transfers --json`). */
void xfer_sources_json(struct json *j, const char *key, const struct xfer_sources *s);

#endif
