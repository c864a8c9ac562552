/* xfer_int.h - private to xfer.c, xfer_serve.c and xfer_fetch.c: the
 * pieces both sides of a transfer use. Not part of any other module's
 * contract. */
#ifndef FLOODSHARE_XFER_INT_H
#define FLOODSHARE_XFER_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "floodshare/addr.h"
#include "floodshare/xfer.h"

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

/* An upload to host was cut for being slow: refuse it slots (BUSY) for
 * XFER_SLOW_PENALTY_MS. */
void xfer_slot_penalize(struct xfer_plane *x, const char *host);

#endif
