/* syncpair.h - the automatic sync pairs of `[sync]` (docs/SYNC.md,
 * "Automatic"): each `NAME = PEER` line keeps this peer's item NAME
 * identical to PEER's (M's) with sync_run() (sync.h), the very sync the
 * `sync` command runs.
 *
 * One thread per peer (`fs-sync`, made only when [sync] has pairs) does
 * every pair, one at a time, in turn. A pair runs: on start; when M says
 * CHANGED for NAME over the pair's WATCH connection (swatch.h) with an md5
 * other than this peer's; when this peer's own index of NAME changes (the
 * node's share listener: a local edit is set aside as a conflict at once);
 * and every [sync] interval seconds as a backstop. A WATCH that breaks, or
 * cannot be made, is tried again with a growing delay (1 s, doubling, at
 * most SYNCPAIR_BACKOFF_MAX_MS); meanwhile the pair is `waiting`. Idle, the
 * thread sleeps in poll(2) until a watch, the share or the interval wakes
 * it: no CPU.
 *
 * Threads: syncpairs_start/stop/free on the main thread; cmd_sync_status()
 * on a control thread (it reads each pair's status under the set's lock). */
#ifndef FLOODSHARE_SYNCPAIR_H
#define FLOODSHARE_SYNCPAIR_H

#include "floodshare/status.h"

struct cfg;
struct cmd_env;
struct ctl_out;
struct syncpairs;

#define SYNCPAIR_STACK (512u * 1024) /* sync_run() fetches as a get does: a worker's stack */
#define SYNCPAIR_BACKOFF_MAX_MS 30000 /* the longest wait before redialling a WATCH */

/* Starts the sync thread for the pairs of c ([sync], copied), acting on
 * e (borrowed: it outlives the set). *out is NULL, and no thread made,
 * when c has no pairs. FS_OK, or FS_ENOMEM. The caller owns *out:
 * syncpairs_stop(), then syncpairs_free() once the node's share can no
 * longer call it (after node_free()). */
fs_status syncpairs_start(struct syncpairs **out, const struct cmd_env *e, const struct cfg *c);

/* Ends the thread: it finishes the sync in progress (node_stop() cuts its
 * sockets) and returns. Joins it. NULL is fine. */
void syncpairs_stop(struct syncpairs *sp);

/* Frees sp. NULL is fine. */
void syncpairs_free(struct syncpairs *sp);

/* `sync status [--json]`: each pair's name, peer, state (`idle`,
 * `syncing`, `waiting`: for M, unreachable or its watch down, `conflict`:
 * the last sync set files aside), last sync time, bytes moved and result.
 * argv[0] is "sync", argv[1] "status". Returns a CTL_EXIT_* code; a peer
 * without pairs says so and exits 0. */
int cmd_sync_status(const struct cmd_env *e, int argc, char **argv, struct ctl_out *o);

#endif
