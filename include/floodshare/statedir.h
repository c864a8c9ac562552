/* statedir.h - a share's state folder (SHARE_STATE_DIR, ".floodshare"):
 * partial downloads, and the temporary archives and folders of transfers
 * under way, none of them ever visible under an item's final name. */
#ifndef FLOODSHARE_STATEDIR_H
#define FLOODSHARE_STATEDIR_H

#include <stddef.h>

#include "floodshare/status.h"

/* share_dir/SHARE_STATE_DIR into out (cap bytes). */
void statedir_path(char *out, size_t cap, const char *share_dir);

/* A fresh random name under share_dir/SHARE_STATE_DIR: prefix "out" for
 * archives being served, "in" for archives being received, "x" for
 * extraction folders; suffix "" or ".zip". */
void statedir_tmp_name(char *out, size_t cap, const char *share_dir, const char *prefix,
                       const char *suffix);

/* Creates share_dir/SHARE_STATE_DIR (mode 0700) if missing and removes the
 * leftovers of interrupted transfers from it; partial downloads
 * (.part/.state) are kept, they are resumed. Run when a share is opened.
 * FS_EIO (errno set) when the folder cannot be made or read. */
fs_status statedir_prepare(const char *share_dir);

#endif
