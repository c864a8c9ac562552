/* xfer_int.h - private to xfer.c, xfer_serve.c, xfer_fetch.c and
 * xfer_swarm.c: the pieces both sides of a transfer use, and the requester
 * helpers the swarm engine shares with xfer_fetch.c. Not part of any other
 * module's contract. */
#ifndef FLOODSHARE_XFER_INT_H
#define FLOODSHARE_XFER_INT_H

#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "floodshare/addr.h"
#include "floodshare/msg.h"
#include "floodshare/status.h"
#include "floodshare/xfer.h"

struct partial;

struct conn;
struct node;
struct slots;
struct stats;
struct trace;

struct xfer_row {
    int used;
    struct xfer_active a;
    uint64_t start_ms;
};

/* The transfer plane. node, stats, trace, up, slots and min_rate are set by
 * xfer_plane_new() and only read after that (up has its own lock); lock
 * guards rows[]. */
struct xfer_plane {
    struct node *node;   /* borrowed: shutdown, share, tracked sockets */
    struct stats *stats; /* the node's */
    struct trace *trace; /* the node's */
    struct slots *up;    /* upload slots */
    unsigned slots;      /* [limits] upload_slots: how many share upload_rate */
    unsigned min_rate;   /* [limits] min_upload_rate, bytes/s; 0: never cut */
    pthread_mutex_t lock;
    struct xfer_row rows[XFER_MAX_ACTIVE];
};

/* The table of running transfers. xfer_table_add() returns a
 * row, or -1 when the table is full (the transfer still runs, it is just
 * not listed); set and del take -1 too and then do nothing. */
int xfer_table_add(struct xfer_plane *x, int upload, const char *name,
                   const struct fs_addr *other, uint64_t total);
void xfer_table_set(struct xfer_plane *x, int row, uint64_t done);
void xfer_table_del(struct xfer_plane *x, int row);

/* Ends tr's transfer if one is open: transfer_done for FS_OK, else
 * transfer_failed naming st (xfer_serve.c). */
void xfer_uptrace_end(struct xfer_plane *x, struct xfer_uptrace *tr, fs_status st);

/* An upload to host was cut for being slow: refuse it slots (BUSY) for
 * XFER_SLOW_PENALTY_MS. */
void xfer_slot_penalize(struct xfer_plane *x, const char *host);

/* --- the requester side (xfer_fetch.c), shared with xfer_swarm.c --- */

/* Everything a download writes is reached through root (the share's
 * folder, a descriptor of its own: a `modify share_dir` meanwhile does not
 * close it) and state (its state folder): never through a path string, so
 * a link swapped in anywhere cannot redirect a byte. */
struct fetch {
    struct xfer_plane *x;
    const struct msg *hit;
    const struct msg *item; /* the item the get is for, when hit is one file of it (a
                               large folder's file): progress and trace name it; NULL:
                               the hit itself */
    const struct xfer_watch *watch;
    struct xfer_result *res;
    char share[PATH_MAX]; /* the share's name, for messages only */
    int root;             /* the share's folder */
    int state;            /* its SHARE_STATE_DIR */
    char xdir[64];        /* the extraction folder's name in state */
    int fd;               /* the received archive (nameless) */
    int slot;
    uint64_t base; /* bytes of the item before the file being fetched (folders) */
    uint64_t t0, last_report, last_done;
    uint64_t last_trace; /* when the last transfer_progress event went out */
    uint64_t pos;        /* bytes of the item present, as last reported */
    unsigned cuts;       /* holders cut through this context (counted in holders_cut) */
    unsigned sources;    /* holders fetching now, for the progress line (0: one); the
                            swarm engine sets it, xfer_fetch_report() passes it on */
};

/* One file to fetch by FETCH: the item itself, or a file inside a folder. */
struct file_job {
    const char *name;   /* the file's own name (partial state, messages) */
    const char *remote; /* its path in the holder's share */
    uint64_t size;
    const char *md5;
    int dir;            /* the folder the verified file goes into ... */
    const char *base;   /* ... under this name */
    int staged;         /* part of a folder: synced with the folder, not alone */
    int rooted;         /* part of a folder, yet fetched with the piece hashes of the
                           root in f->hit (a folder spread over holders) */
};

/* The checked piece hashes of the file being fetched, when its FOUND
 * carried a root (list NULL otherwise: the CRCs and the MD5 alone). */
struct piece_list {
    unsigned char *list; /* n * PIECES_HASH_LEN bytes, malloc'd */
    uint64_t n, piece;
    int fresh; /* fetched from the holder now, not read from beside the partial */
    int refused; /* the holder answered HASHES with ERROR, and closed the connection */
};

/* What xfer_fetch.c does for one holder, for the swarm engine. Each
 * records why in f->res->why (fail: this holder failed; fail_local: this
 * side did, so no other holder is tried; cut: the holder sent something
 * wrong, counted in holders_cut and logged) and returns st. The bodies
 * stay in xfer_fetch.c beside the code that uses them. */
fs_status xfer_fetch_fail(struct fetch *f, fs_status st, const char *why);
fs_status xfer_fetch_fail_local(struct fetch *f, fs_status st, const char *why);
fs_status xfer_fetch_cut(struct fetch *f, fs_status st, const char *why);
/* The verified file in fd (job j, piece list pl) is about to be renamed
 * into place: hands its hashes to the share it goes into (share_adopt()),
 * so its peer does not read it all again to index it. Nothing without a
 * list (the scan makes one), nor when the share was swapped meanwhile
 * (`modify share_dir`). */
void xfer_fetch_adopt(struct fetch *f, int fd, const struct file_job *j,
                      const struct piece_list *pl);
/* Connects to f->hit's holder (TLS when the node has it), tracked so that
 * node_stop() unblocks it; disconnect untracks and closes. */
fs_status xfer_fetch_connect(struct fetch *f, struct conn *c);
void xfer_fetch_disconnect(struct fetch *f, struct conn *c);
/* Reads the reply to a request: want, for the item (size, md5). */
fs_status xfer_fetch_reply(struct fetch *f, struct conn *c, struct msg *m, enum msg_type want,
                           uint64_t size, const char *md5);
/* Reads the DATA frame idx (of chunk bytes each) of want bytes into buf,
 * the holder cut for anything else, a stall or a trickle; its CRC is not
 * recomputed (the piece's SHA-256 checks it). */
fs_status xfer_fetch_frame(struct fetch *f, struct conn *c, uint64_t idx, uint64_t chunk,
                           uint64_t want, char *buf);
/* Checks the pieces in buf[0..want), at byte off, against the list: a
 * failing one is counted (bad_chunks) and its holder cut. */
fs_status xfer_fetch_check(struct fetch *f, const struct piece_list *pl, uint64_t off,
                           const char *buf, uint64_t want);
/* Starts fn(arg) on a joinable thread with a stack of `stack` bytes (the
 * hashers and sources: a few KiB deep, not glibc's 8 MiB). 0 or an errno. */
int xfer_start_thread(pthread_t *t, size_t stack, void *(*fn)(void *), void *arg);
/* Progress (the table, trace, the watcher): from the get's thread only. */
void xfer_fetch_report(struct fetch *f, uint64_t done, int force);
int xfer_fetch_cancelled(const struct fetch *f);
/* Refuses to start what cannot fit beside the partial (fail_local). */
fs_status xfer_fetch_room(struct fetch *f, const struct partial *pt);
/* Keeps a list fetched now beside the partial, once its state exists. */
void xfer_fetch_keep_pieces(struct fetch *f, const struct file_job *j,
                            const struct piece_list *pcs);

/* Fetches file j from f->hit's holder through a resumable partial, on c
 * (connected, borrowed) or a connection of its own when c is NULL; with
 * the piece hashes of f->hit->root when it has one (and j is not a
 * folder's file, unless j->rooted), through the swarm engine. The whole
 * MD5 failing over resumed bytes fetches it once more, whole. */
fs_status xfer_fetch_file(struct fetch *f, const struct file_job *j, struct conn *c);

/* A large folder spread over its holders (xfer_folder.c). Open: after the
 * folder's MANIFEST on c (f->hit's holder; c is the folder's from then on,
 * closed by xfer_folder_close()), asks ROOTS and checks the ROOTLIST
 * against f->hit->root (a holder that answers ERROR code=unknown gives
 * FS_ENOTSUP with c closed by the holder: fetch the folder as before; one
 * whose list does not hash to the root is cut). nfiles: the manifest's
 * file count. File: fetches file j, the idx-th file in manifest order,
 * started on the folder's holders in turn and swarmed over all of them,
 * adding f->res's bytes; a holder that fails it is cut for the folder and
 * the next tries. Close: gives the folder's per-holder figures to f->res
 * (srcs) and closes every connection. All on the get's thread. */
struct xfer_folder;
fs_status xfer_folder_open(struct fetch *f, struct conn *c, uint64_t nfiles,
                           struct xfer_folder **out);
fs_status xfer_folder_file(struct xfer_folder *fo, const struct file_job *j, uint64_t idx);
void xfer_folder_close(struct xfer_folder *fo);

/* Fetches file j, whose hit carried a root and whose checked list is pcs
 * (pcs->list set), from the holder on c (connected, its HASHES done;
 * borrowed: the caller closes it) into a version 2 partial: a source
 * thread ("fs-src 1") asks the holder for each run of missing pieces that
 * `sched` chooses, checks each piece's SHA-256 and writes it; a hasher
 * thread ("fs-md5") feeds the MD5 in order, from memory or read back, and
 * re-checks every piece a resumed state claims. Then the MD5, the rename.
 * *suspect as fetch_file_once(). docs/SWARMING.md. */
fs_status xfer_swarm_file(struct fetch *f, const struct file_job *j, struct conn *c,
                          const struct piece_list *pcs, int *suspect);

#endif
