/* xfer_int.h - private to xfer.c, xfer_serve.c and xfer_fetch.c: the
 * pieces both sides of a transfer use. Not part of any other module's
 * contract. */
#ifndef FLOODSHARE_XFER_INT_H
#define FLOODSHARE_XFER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "floodshare/addr.h"

struct peer;

/* A fresh random name under share_dir/SHARE_STATE_DIR: "out-*" archives
 * being served, "in-*" archives being received, "x-*" extraction folders. */
void xfer_tmp_name(char *out, size_t cap, const char *share_dir, const char *prefix,
                   const char *suffix);

/* share_dir/SHARE_STATE_DIR into out. */
void xfer_state_dir(char *out, size_t cap, const char *share_dir);

/* The table of running transfers (p->xfers). xfer_table_add() returns a
 * row, or -1 when the table is full (the transfer still runs, it is just
 * not listed); set and del take -1 too and then do nothing. */
int xfer_table_add(struct peer *p, int upload, const char *name, const struct fs_addr *other,
                   uint64_t total);
void xfer_table_set(struct peer *p, int row, uint64_t done);
void xfer_table_del(struct peer *p, int row);

/* [limits] min_upload_rate as set by xfer_set_limits() (0 before). */
unsigned xfer_min_rate(struct peer *p);

/* An upload to host was cut for being slow: refuse it slots (BUSY) for
 * XFER_SLOW_PENALTY_MS. */
void xfer_slot_penalize(struct peer *p, const char *host);

#endif
