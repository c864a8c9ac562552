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

/* Writes an archive of the file or folder at src_abs into out_path (created,
 * must not exist). Symlinks inside a folder are refused (FS_EREFUSED). Small
 * files are deflated (level 1), large ones stored. On failure out_path is
 * removed. */
fs_status zipio_pack(const char *src_abs, const char *out_path);

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
 * are never followed through links (O_NOFOLLOW|O_EXCL). On success copies
 * the top-level name into top[0..topcap). On failure removes everything it
 * created under dest_dir and sets *why (may be NULL) to a constant
 * sentence; returns FS_EZIP for a bad archive, FS_ETOOBIG for limits,
 * FS_EIO for local write errors. Entry sizes and offsets must fit 32 bits:
 * the system minizip (1.1) does not read zip64 extra fields in the central
 * directory (zip64 end records it does read). */
fs_status zipio_unpack(const char *zip_path, const char *dest_dir,
                       const struct zipio_limits *limits, char *top, size_t topcap,
                       const char **why);

/* Removes path: a file, or a folder with everything below it (no links
 * followed). Missing is not an error. */
fs_status zipio_remove_tree(const char *path);

#endif
