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

struct peer;

#define XFER_CHUNK (256 * 1024) /* bytes moved per read/write */
/* Archive bytes allowed beyond the item's own size (zip headers of up to
 * ~300,000 entries). */
#define XFER_ARCHIVE_SLACK (64ull * 1024 * 1024)

/* Serves one REQUEST that arrived on c: answers ITEM and the archive, or
 * ERROR. The caller closes the connection afterwards. */
void xfer_serve(struct peer *p, struct conn *c, const struct msg *req);

struct xfer_result {
    uint64_t bytes;  /* archive bytes received */
    double seconds;  /* request to verified item */
    char why[256];   /* on failure: one line naming what went wrong */
};

/* Downloads the item of hit (a FOUND) into the peer's share under
 * hit->name. FS_OK when the verified item is in place; FS_EEXIST when the
 * name already exists in the share (nothing written); other statuses with
 * res->why when this holder failed (everything written is removed). */
fs_status xfer_fetch(struct peer *p, const struct msg *hit, struct xfer_result *res);

/* Removes leftovers of interrupted transfers from share_dir/SHARE_STATE_DIR
 * (creating the folder if missing). Called at start-up. */
fs_status xfer_prepare_state_dir(const char *share_dir);

#endif
