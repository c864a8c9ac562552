/* link.h - outgoing connections for flood traffic (GET and FOUND).
 *
 * Each destination address gets one cached TCP connection that many
 * messages reuse, instead of one connection per message. A link unused for
 * idle_ms is reconnected on next use (the receiver closes idle links after a
 * longer time, so a reused link is normally still open). A destination that
 * refused a connection is skipped for down_ms, then retried: a neighbour that
 * is down costs one failed connect every down_ms, not one per message. */
#ifndef FLOODSHARE_LINK_H
#define FLOODSHARE_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "floodshare/addr.h"
#include "floodshare/msg.h"
#include "floodshare/status.h"

struct links;

struct links_opts {
    size_t max_links;     /* cached destinations; the least recently used is closed */
    int connect_timeout_ms;
    int io_timeout_ms;
    uint32_t idle_ms;     /* reconnect a link unused for this long */
    uint32_t down_ms;     /* skip a destination this long after a failed connect */
};

/* NULL on allocation failure. */
struct links *links_new(const struct links_opts *opts);

/* Closes every link. No other call may be running. */
void links_free(struct links *l);

/* Sends one header-only message to `to`, connecting if needed, retrying
 * once on a fresh connection if a cached one turns out closed. FS_OK;
 * FS_EBUSY when `to` is in its down period, or every cached link is busy
 * sending (not tried); FS_ECONNECT,
 * FS_ETIMEDOUT, FS_EIO on failure. Thread-safe; sends to different
 * destinations run in parallel. */
fs_status links_send(struct links *l, const struct fs_addr *to, const struct msg *m);

/* Shuts every cached connection down so blocked senders return (shutdown). */
void links_shutdown(struct links *l);

#endif
