/* sharecache.h - the on-disk hash cache of a share: its format, a pure
 * parser over bytes, the writer, and the crash-safe load and save.
 *
 * The cache lets a restarted peer re-hash only what changed while it was
 * down. It is a text file:
 *   "floodshare-index 2\n"
 *   "<dev> <ino> <size> <mtime_sec> <mtime_nsec> <md5> <root>\n"   one per file
 *   "end <count> <md5 of every byte before this line>\n"
 * in decimal (mtime_sec may be negative), md5 as lower-case hex, root the
 * piece root (pieces.h, 64 hex digits) or "-" for none, at most
 * SHARECACHE_LINE_MAX - 1 bytes a line, no two entries with the same
 * (dev, ino). The share (share.c) decides which hashes go in and when they
 * are trusted; this module only knows the bytes. */
#ifndef FLOODSHARE_SHARECACHE_H
#define FLOODSHARE_SHARECACHE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "floodshare/msg.h"
#include "floodshare/status.h"

#define SHARECACHE_FILE "index.cache" /* name inside the share's state folder */
/* Version 2 added the piece root; a version 1 file is refused as
 * "unsupported version", so the share hashes afresh (pieces included)
 * rather than trusting entries that lack them. */
#define SHARECACHE_MAGIC "floodshare-index 2"
/* A valid file never comes near the byte limit (SHARECACHE_MAX_ENTRIES
 * lines of at most 128 bytes), so a larger one is not ours to trust. */
#define SHARECACHE_MAX_BYTES (256L * 1024 * 1024)
#define SHARECACHE_MAX_ENTRIES 1000000
#define SHARECACHE_LINE_MAX 240 /* bytes of one line with its '\n', plus a NUL */

struct sharecache_ent {
    dev_t dev;
    ino_t ino;
    uint64_t size; /* at most INT64_MAX */
    struct timespec mtime;
    char md5[MSG_MD5_LEN + 1];
    char root[MSG_ROOT_LEN + 1]; /* "" when the file has none */
};

/* Orders entries by (dev, ino), the cache's key. */
int sharecache_cmp(const void *a, const void *b);

/* Parses the cache file held in buf[0..len) (no NUL needed). On FS_OK,
 * *out is a malloc'd array (the caller frees it; NULL when *n is 0) of the
 * *n entries sorted by (dev, ino). Otherwise *out is NULL, *n 0 and *why a
 * constant string naming what is wrong: FS_EPROTO for a malformed,
 * truncated or foreign file, FS_ETOOBIG past SHARECACHE_MAX_BYTES or
 * SHARECACHE_MAX_ENTRIES, FS_ENOMEM. Reads nothing outside buf. */
fs_status sharecache_parse(const char *buf, size_t len, struct sharecache_ent **out, size_t *n,
                           const char **why);

/* Writes c[0..n) in the format above to f, in the given order. Returns 0 or
 * an errno value. */
int sharecache_write(FILE *f, const struct sharecache_ent *c, size_t n);

/* Reads and parses SHARECACHE_FILE in the open folder sfd, never through a
 * symlink, and removes the temporaries of saves that a crash interrupted
 * (those older than 10 minutes). FS_OK with the entries as for
 * sharecache_parse(); FS_ENOTFOUND with *why NULL when there is no cache
 * yet; any other status with *why saying what is wrong with the file. */
fs_status sharecache_load(int sfd, struct sharecache_ent **out, size_t *n, const char **why);

/* Replaces SHARECACHE_FILE in the open folder sfd with c[0..n) so that a
 * crash at any point leaves the old file or the new one, never a torn one
 * (temporary, fsync, rename, fsync of the folder). 0 or an errno value. */
int sharecache_save(int sfd, const struct sharecache_ent *c, size_t n);

#endif
