/* zipio.h - items as zip archives (minizip), and their safe extraction.
 *
 * An archive of item NAME holds "NAME" (a file) or "NAME/", "NAME/sub/",
 * "NAME/sub/f.txt", ... (a folder; empty folders kept as "dir/" entries).
 * Archives are always zip64-capable. Files are streamed in fixed chunks. */
#ifndef FLOODSHARE_ZIPIO_H
#define FLOODSHARE_ZIPIO_H

#include <stddef.h>
#include <stdint.h>

#include "floodshare/status.h"

struct zipio_limits {
    uint64_t max_total_bytes; /* sum of uncompressed sizes, counted while inflating */
    uint64_t max_entries;
    uint32_t max_ratio; /* uncompressed / compressed, per entry (0 = no check) */
};

/* Defaults suitable for a peer: 64 GiB, 1,000,000 entries, ratio 1000. */
extern const struct zipio_limits zipio_default_limits;

/* Called once for each entry a folder's archive leaves out: path is its
 * name as it would have been in the archive ("NAME/sub/link"), is_link 1
 * for a symbolic link, 0 for anything else that is neither a regular file
 * nor a folder (a FIFO, a socket, a device). */
typedef void (*zipio_skip_fn)(void *arg, const char *path, int is_link);

/* Writes an archive of the file or folder open as srcfd (O_RDONLY; a file
 * is read from offset 0) under the top-level name `name` (name_valid())
 * into outfd, an empty regular file open for reading and writing. A folder
 * is walked by descriptors only (openat, fdopendir, fstatat with
 * AT_SYMLINK_NOFOLLOW, O_NOFOLLOW), never by path strings, so nothing below
 * srcfd can lead the packer out of it. Inside a folder, symbolic links and
 * whatever is neither a regular file nor a folder are left out (reported
 * to skip(arg, ...) when skip is not NULL), as are names that are not
 * name_valid(): exactly what the share's index leaves out of the folder's
 * manifest. Entries keep their permission bits (& 0777). Small files are
 * deflated (level 1), large ones stored. FS_EREFUSED when srcfd is neither
 * a file nor a folder, or an entry changed type under the packer. On
 * failure outfd holds garbage; the caller removes it. */
fs_status zipio_pack_fd(int srcfd, const char *name, int outfd, zipio_skip_fn skip, void *arg);

/* Extracts zip_path into dest_dir (an existing, empty directory). The whole
 * central directory is checked before anything is written: every entry name
 * must be a relative '/'-separated path of name_valid() components under
 * one single top-level name (no "..", no absolute name, no backslash, no
 * drive letter, no empty component), no symlink entries, no duplicates, no
 * more than limits->max_entries, declared sizes and ratios within the
 * limits; every local header must carry its central record's name, lie in
 * the file with its data, and share no byte with another entry. While
 * inflating, the bytes that actually come out are counted against the
 * total limit and the declared size, the deflate stream must end exactly
 * at the declared compressed size, and the CRC must match. Created files
 * are never followed through links (O_NOFOLLOW|O_EXCL). A file gets the
 * permission bits its entry records (& 0777) when the archive was made on
 * Unix, else 0644, masked by the umask; folders get 0755 & ~umask. On success copies
 * the top-level name into top[0..topcap). On failure removes everything it
 * created under dest_dir and sets *why (may be NULL) to a constant
 * sentence; returns FS_EZIP for a bad archive, FS_ETOOBIG for limits,
 * FS_EIO for local write errors. Entry sizes and offsets must fit 32 bits:
 * the system minizip (1.1) does not read zip64 extra fields in the central
 * directory (zip64 end records it does read). */
fs_status zipio_unpack(const char *zip_path, const char *dest_dir,
                       const struct zipio_limits *limits, char *top, size_t topcap,
                       const char **why);

/* zipio_unpack() from descriptors: the archive open as zipfd (a regular
 * file, read with pread; not moved, not closed) into the folder destfd (not
 * closed). What a peer uses: both live in its share's state folder, reached
 * by descriptors. zipio_unpack() opens two paths and calls this; it is for
 * callers that own both paths (tests, fuzzing). */
fs_status zipio_unpack_at(int zipfd, int destfd, const struct zipio_limits *limits, char *top,
                          size_t topcap, const char **why);

/* Removes name (name_valid()) from the folder dirfd: a file, or a folder
 * with everything below it, walked by descriptors, no link followed (a link
 * is removed, not its target). Missing is not an error. */
fs_status zipio_remove_at(int dirfd, const char *name);

/* zipio_remove_at() for a path of the caller's own (tests, tools): the
 * path's own components are resolved as usual, only what lies below its
 * last one is walked by descriptors. */
fs_status zipio_remove_tree(const char *path);

#endif
