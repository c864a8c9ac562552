/* statedir.h - a share's state folder (SHARE_STATE_DIR, ".floodshare"):
 * partial downloads, and the temporary archives and folders of transfers
 * under way, none of them ever visible under an item's final name. The
 * folder is reached from the share's root descriptor and everything in it
 * through its own descriptor: never through a path string. */
#ifndef FLOODSHARE_STATEDIR_H
#define FLOODSHARE_STATEDIR_H

#include <stddef.h>

#include "floodshare/status.h"

/* A fresh random name (no folder) for the state folder: prefix "out" for
 * archives being served, "in" for archives being received, "x" for
 * extraction folders; suffix "" or ".zip". */
void statedir_tmp_name(char *out, size_t cap, const char *prefix, const char *suffix);

/* Opens the state folder of the share whose root is open as root_fd,
 * creating it (mode 0700) if missing; never through a link (FS_EREFUSED,
 * errno ELOOP; a file of that name: errno ENOTDIR). A folder of that name
 * that this user does not own is
 * refused (FS_EREFUSED, errno EPERM): another user who can write the share
 * could otherwise read or swap the downloads under way; one of ours is
 * made 0700 again if it is not. On FS_OK *fd is the caller's to close;
 * FS_EIO (errno set) otherwise. */
fs_status statedir_open(int root_fd, int *fd);

/* statedir_open(), then removes the leftovers of interrupted transfers
 * from the folder; partial downloads (.part/.state) are kept, they are
 * resumed. Run when a share is opened. */
fs_status statedir_prepare(int root_fd);

#endif
