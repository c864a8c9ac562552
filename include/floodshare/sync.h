/* sync.h - keeping a file or folder of this peer's share in step with the
 * same item on another peer M (docs/SYNC.md). A sync is a pull: it reads
 * M's listing (BROWSE), piece lists (HASHES) and pieces (FETCH) as a get
 * does, reuses every piece N's own copy already has (partial_seed()), and
 * decides per file with the sync state (syncstate.h). Used by the `sync`
 * command on a control thread and by the automatic pairs of `[sync]` on
 * the peer's sync thread, so both do exactly the same thing.
 *
 * This header is the contract between the command and the automatic
 * pairs; docs/SYNC.md is the design. */
#ifndef FLOODSHARE_SYNC_H
#define FLOODSHARE_SYNC_H

#include <stdint.h>

#include "floodshare/addr.h"
#include "floodshare/cmd.h"

struct ctl_out;

#define SYNC_DELETE 0x1u /* --delete: files N has and M lacks are removed */
#define SYNC_JSON 0x2u   /* --json: one JSON document to o instead of text */

/* What one sync did, for `sync status` and the automatic pairs. Filled by
 * sync_run() whatever the outcome; the caller owns it (no pointers). */
struct sync_result {
    int code;            /* the exit code (get's: CTL_EXIT_*) */
    uint64_t bytes;      /* bytes fetched from M */
    uint64_t reused;     /* bytes taken from N's own copy instead */
    unsigned files;      /* files fetched, removed or set aside */
    unsigned conflicts;  /* files kept aside as NAME.sync-conflict-... */
    char error[256];     /* why it failed; "" when code is 0 */
};

/* Makes this peer's item NAME (a top-level file or folder of its share)
 * identical to M's item of that name, M reached at *from. Runs on the
 * calling thread until done or failed (bounded by get_timeout_ms per
 * file). Progress lines, per-file lines and the summary (or, with
 * SYNC_JSON, the one JSON document) go to o; o may be NULL (the automatic
 * pairs: nothing printed). *res is always filled. Returns res->code.
 * Never overwrites a file changed on this peer since the last sync (it is
 * set aside under its conflict name first), and never leaves a partial
 * under a final name. */
int sync_run(const struct cmd_env *e, const char *name, const struct fs_addr *from,
             unsigned flags, struct ctl_out *o, struct sync_result *res);

#endif
