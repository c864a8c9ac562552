/* swatch.h - the holder side of WATCH: tell the sync pairs of other peers
 * when an item of this peer's share changes (docs/SYNC.md, PROTOCOL.md).
 *
 * A peer N with `[sync] NAME = M` keeps one connection open to M and sends
 * `WATCH from=N path=NAME` on it. M answers `CHANGED path=NAME md5=...` at
 * once (the item as M's index has it now; no md5: M has none) and again
 * whenever a rescan of M's share gives the item another md5 (or removes
 * it). N sends nothing more; bytes from N, or N closing, end the watch.
 *
 * The watchers live on one event loop (ev.h) of their own, started with
 * the first watcher and idle in epoll_wait without a timeout while nothing
 * changes: an idle watcher costs a descriptor and a few hundred bytes, no
 * CPU. Nothing on the loop blocks: each watcher has a small output queue
 * (SWATCH_OUT_MAX) and a small socket buffer (SWATCH_SNDBUF), and one whose queue is not drained within the peer's
 * io_timeout_ms, or would overflow, is dropped, never waited for. At most
 * XFER_WATCHERS_MAX (xfer.h) at once; more are refused ("busy").
 *
 * Threads: swatch_adopt() from the workers; swatch_new/stop/free from the
 * main thread. */
#ifndef FLOODSHARE_SWATCH_H
#define FLOODSHARE_SWATCH_H

#include "floodshare/status.h"

struct conn;
struct gate;
struct msg;
struct node;
struct swatch;

#define SWATCH_OUT_MAX 4096 /* bytes of CHANGED lines a watcher may owe */
/* A watcher's socket send buffer (the kernel doubles it): a few CHANGED
 * lines, not the megabytes autotuning would let a reader that never
 * reads pin in the kernel. */
#define SWATCH_SNDBUF 8192
#define SWATCH_STACK (128u * 1024) /* the loop's deepest frame: a share_item and a header */

/* Makes the hub for node n, whose connections belong to the gate g (both
 * borrowed, outliving the hub). No thread yet. NULL when out of memory
 * or descriptors. */
struct swatch *swatch_new(struct node *n, struct gate *g);

/* A worker's WATCH req arrived on c: refused with an ERROR (and 0
 * returned: the caller closes c) when [accept] browse does not let the
 * requester in ("refused"), when XFER_WATCHERS_MAX watchers are open
 * ("busy"), or when the hub is stopping; else 1: the hub owns c from now
 * on and gives it back with gate_done() when the watch ends. */
int swatch_adopt(struct swatch *sw, struct conn *c, const struct msg *req);

/* Watchers open now (for tests and `stats`). Any thread. */
unsigned swatch_count(struct swatch *sw);

/* Refuses new watchers, stops and joins the loop, and ends every watch
 * (gate_done()). After the workers have stopped, before gate_free(). */
void swatch_stop(struct swatch *sw);

/* Frees sw (after swatch_stop()). NULL is fine. */
void swatch_free(struct swatch *sw);

#endif
