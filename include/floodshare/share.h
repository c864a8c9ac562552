/* share.h - the share directory: its index, name search, and confinement.
 *
 * The index lists every regular file and folder under the share directory
 * (recursively) with its size and MD5. A folder's MD5 is the MD5 of its
 * manifest (see share_digest_at()). Hashes are cached by (device, inode, size,
 * mtime), so a rescan re-hashes only what changed and a query never hashes.
 * Symbolic links are never followed nor listed, the top-level state folder
 * SHARE_STATE_DIR is hidden, and names that are not name_valid() are
 * skipped.
 *
 * Confinement: share_open() opens the share folder once, as a descriptor
 * held until share_close(), and everything below it is reached through that
 * descriptor only (share_openat(), share_open_beneath()): openat2() with
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, or, where
 * the kernel has no openat2, a walk that opens one component at a time with
 * O_NOFOLLOW. A path that crosses a symbolic link anywhere is refused
 * (FS_EREFUSED), never followed, and replacing the share folder or one of
 * its parents with a link changes nothing the share reads. The cache is kept across restarts in SHARE_CACHE_FILE, so a
 * restarted peer re-hashes only what changed while it was down.
 *
 * Each open share has one thread of its own that rescans and hashes when the
 * directory changes (inotify; without it, every 2 s). No other thread ever
 * scans or hashes: queries answer from the
 * index as it stands, and a file appears in it once it is hashed, and only
 * if it held still (same size and mtime) while it was read. Thread-safe. */
#ifndef FLOODSHARE_SHARE_H
#define FLOODSHARE_SHARE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "floodshare/msg.h"
#include "floodshare/sharecache.h"
#include "floodshare/status.h"

/* floodshare's own folder inside each share directory: partial downloads,
 * extraction and archive temporaries. Hidden from the index and queries. */
#define SHARE_STATE_DIR ".floodshare"

/* The persisted hash cache, inside SHARE_STATE_DIR; format in sharecache.h.
 * Written atomically by a rescan that hashed something new and by
 * share_close(); a file that is malformed, truncated, of another version, or
 * larger than 256 MiB is ignored with a warning (the share is then hashed
 * afresh). Entries are trusted only while device, inode, size and mtime all
 * still match. */
#define SHARE_CACHE_FILE SHARECACHE_FILE

/* The index's piece lists (pieces.h), inside SHARE_STATE_DIR: one file per
 * distinct content, named by its root, written by the share's thread in
 * the pass that computes the MD5, removed by a later scan once no file has
 * that root. HASHES is answered from it. */
#define SHARE_PIECES_DIR "pieces"

struct share_item {
    char path[MSG_MAX_PATH + 1]; /* relative to the share dir, e.g. "docs/3.txt" */
    char name[MSG_MAX_NAME + 1]; /* last component of path */
    enum msg_kind kind;
    uint64_t size;  /* file bytes; for a folder, the sum of its files */
    uint64_t files; /* 1 for a file; files inside a folder (recursively) */
    char md5[MSG_MD5_LEN + 1];
    char root[MSG_ROOT_LEN + 1]; /* files: the piece root (pieces.h); folders:
                                    the folder root (pieces_folder_root()), ""
                                    when a file below has none; "" for a
                                    read-only share, a file > 4 TiB */
    struct timespec mtime; /* files: the mtime the hash was taken at (browse
                              lists an md5 only while the file still has it) */
};

struct share;

/* Opens the share at dir (which must exist and be a directory; the one
 * time it is reached by name: links in dir are resolved now, once), builds the
 * index on the calling thread, hashing only files the persisted cache
 * (SHARE_CACHE_FILE) does not vouch for, then starts the share's thread.
 * Creates SHARE_STATE_DIR (mode 0700) when it has hashes to save; a
 * read-only share works, only without the persisted cache. Returns NULL
 * with *st set on failure. */
struct share *share_open(const char *dir, fs_status *st);

/* Stops and joins the share's thread (a hash in progress is abandoned at
 * its next read), saves the hash cache if it changed since it was last
 * saved, then frees sh. No other call on sh may be running or follow. */
void share_close(struct share *sh);

/* The share folder's absolute name as it was when opened, for messages
 * only: never open a path built from it (use share_openat()). Valid until
 * close. */
const char *share_dir(const struct share *sh);

/* The descriptor of the share folder (O_RDONLY | O_DIRECTORY), held from
 * share_open() to share_close(). Borrowed: do not close it; dup() it to
 * keep it beyond the share (a `modify share_dir` closes the old share). */
int share_root_fd(const struct share *sh);

/* Nudges the share's thread to look for changes (and, without inotify, to
 * rescan if the last scan is 2 s old) and returns at once: it
 * never scans or hashes on the caller's thread, so the flood plane may call
 * it before every search. Always FS_OK. */
fs_status share_refresh(struct share *sh);

/* For control paths that want a fresh index (`ls`, a finished download):
 * nudges the thread and waits up to timeout_ms until a check that began
 * after this call is over, so that the index reflects every change made
 * before the call (a file still being written is left out until it holds
 * still). FS_OK, FS_ETIMEDOUT, or why that rescan failed. Never call it
 * from the flood plane. */
fs_status share_refresh_wait(struct share *sh, int timeout_ms);

/* Makes the thread rescan soon even if nothing seems changed (e.g. after a
 * download). Returns at once. */
void share_mark_dirty(struct share *sh);

/* Removes the top-level item name (a file, or a folder with everything
 * below it) from the share, so that a demo's `get` can be repeated. name
 * must be name_valid() (one component: nothing outside the share can be
 * named) and not SHARE_STATE_DIR; it is reached through the share's
 * descriptor only, and a symbolic link is refused, never followed nor
 * removed (the share never lists links). On FS_OK *kind says what it was
 * and the index forgets it at the next rescan (share_mark_dirty()).
 * FS_EBADNAME, FS_EREFUSED (the state folder, a link, or neither a file nor
 * a folder), FS_ENOTFOUND, or FS_EIO (errno says why). */
fs_status share_remove(struct share *sh, const char *name, enum msg_kind *kind);

/* Copies up to max items whose name equals name exactly into out[], files
 * and folders alike, sorted by path. Returns how many matched in total (may
 * exceed max). */
size_t share_find(struct share *sh, const char *name, struct share_item *out, size_t max);

/* Looks up the item at path exactly. FS_OK, FS_ENOTFOUND, or FS_EBADNAME if
 * path is not path_valid(). */
fs_status share_lookup(struct share *sh, const char *path, struct share_item *out);

/* The manifest of the folder at path, exactly the text its md5 is the MD5
 * of (see share_digest_at()), from the index (no hashing). *text is malloc'd
 * and NUL-terminated, caller frees; *len excludes the NUL. FS_ENOTFOUND
 * when path is not a folder of the index, FS_EBADNAME for a bad path. */
fs_status share_manifest(struct share *sh, const char *path, char **text, size_t *len);

/* The binary piece roots (32 bytes each) of the files of the folder at
 * path, in its manifest's order, the ones its folder root is the hash of
 * (pieces_folder_root()), from the index. *out is malloc'd (caller frees),
 * *n the file count. FS_ENOTFOUND: no such folder; FS_ENOTSUP: the folder
 * has no root; FS_EMISMATCH: its root is not root (it changed since it was
 * found); FS_EBADNAME, FS_ENOMEM. */
fs_status share_folder_roots(struct share *sh, const char *path, const char *root,
                            unsigned char **out, uint64_t *n);

/* A snapshot of the top-level items (depth 1) sorted by name. *out is
 * malloc'd, caller frees. Returns the count, or FS_ENOMEM (negative). */
long share_list(struct share *sh, struct share_item **out);

/* Files adopted and not yet merged by a scan, at most (share_adopt()). */
#define SHARE_ADOPT_MAX 64

/* A file this peer has just written below the share and verified whole (a
 * finished download, before it is renamed into place): its MD5 and, when
 * it has piece hashes, its root and list (n pieces of `piece` bytes; root
 * "" and list NULL otherwise), so the next scan indexes it without reading
 * it again (a 1 GiB download cost its peer 1.7 s of CPU hashing what it
 * had just checked). fd is the file: its dev, inode, size and mtime are
 * taken now, and the hashes are trusted only while they still match, like
 * any cached hash (a later write moves the mtime: Linux's multigrain
 * timestamps give a write after this fstat a newer one). The list is
 * stored in the pieces folder as a scan would store it. Bounded: past
 * SHARE_ADOPT_MAX files not yet scanned, or when the list cannot be
 * stored, the scan hashes the file as before. Never waits for a scan.
 * Borrows every argument. */
void share_adopt(struct share *sh, int fd, const char *md5, const char *root, uint64_t piece,
                 const unsigned char *list, uint64_t n);

/* For tests: fn(arg, path) is called by every later rescan of sh just before
 * it hashes the file at path (share-relative), on the share's thread, with
 * the index lock not held. fn may call share_find(), share_lookup() and
 * share_list() (they answer from the old index) and share_refresh() (which
 * returns at once), but not share_refresh_wait(). NULL removes the hook.
 * Waits for a running rescan. */
typedef void (*share_hash_hook)(void *arg, const char *path);
void share_set_hash_hook(struct share *sh, share_hash_hook fn, void *arg);

/* For tests, like share_set_hash_hook(): fn(arg, path, done) is called
 * after each read of the file at path that a later rescan hashes, done
 * being the bytes read so far, before the rescan checks that the file held
 * still. */
typedef void (*share_read_hook)(void *arg, const char *path, uint64_t done);
void share_set_read_hook(struct share *sh, share_read_hook fn, void *arg);

/* fn(arg) is called on the share's thread after every rescan that put a
 * new index in place (something under the share changed), with no lock of
 * the share held: it may read the index (share_lookup(), share_find()) but
 * must not wait (it holds up the next scan). How the sync pairs hear of a
 * change (node_on_share_change()). NULL removes it; one hook per share. */
typedef void (*share_change_fn)(void *arg);
void share_set_change_hook(struct share *sh, share_change_fn fn, void *arg);

/* Opens rel, a path_valid() path relative to the folder dirfd, without
 * following a symbolic link in any component and without leaving dirfd:
 * openat2() with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_MAGICLINKS, or, where the kernel has no openat2 (ENOSYS), a
 * walk opening each component with O_NOFOLLOW | O_DIRECTORY from the one
 * before. flags are open(2) flags for the last component (O_NOFOLLOW and
 * O_CLOEXEC are added; O_PATH is fine; mode is for O_CREAT). On FS_OK *out
 * is the new descriptor, the caller's to close. FS_EBADNAME when rel is not
 * path_valid() (absolute, "..", empty components); FS_EREFUSED (errno
 * ELOOP) when a component, the last one included, is a symbolic link;
 * FS_ENOTFOUND when a component is missing or not a folder; FS_EEXIST for
 * O_CREAT | O_EXCL on an existing name; FS_EIO otherwise (errno says why).
 * *out is -1 on failure. */
fs_status share_open_beneath(int dirfd, const char *rel, int flags, mode_t mode, int *out);

/* share_open_beneath() from the share's root descriptor. Creates nothing
 * (O_CREAT is dropped). */
fs_status share_openat(const struct share *sh, const char *rel, int flags, int *fd);

/* For tests: 1 makes share_open_beneath() walk without trying openat2(),
 * as on a kernel without it; 0 goes back to openat2() (unless the kernel
 * lacks it). The environment variable FLOODSHARE_TEST_NO_OPENAT2 (non-empty,
 * not "0") sets it for a whole process, so integration tests can run a
 * peer on the fall-back. share_beneath_walks() says which is in use. */
void share_beneath_set_walk(int on);
int share_beneath_walks(void);

/* Computes the digest of the file or folder name in the folder dirfd
 * (opened with O_NOFOLLOW: a link there is FS_EREFUSED) exactly as the
 * index does, without the cache. For a folder, md5 is the MD5 of its
 * manifest: one line per entry below it, sorted bytewise by relative path,
 * "F <size> <md5> <relpath>\n" for a file and "D <relpath>\n" for a folder
 * (relpath relative to the folder itself, '/'-separated); size is the sum
 * of file sizes and *files the number of files. The folder is walked by
 * descriptors; symlinks anywhere in it make it FS_EREFUSED. Tests may pass
 * AT_FDCWD and a path of their own. */
fs_status share_digest_at(int dirfd, const char *name, enum msg_kind *kind, uint64_t *size,
                          uint64_t *files, char md5[MSG_MD5_LEN + 1]);

#endif
