/* partial.h - a download in progress, on disk, so it survives being killed.
 *
 * A partial download of a file is two files in the share's state folder:
 *   <md5>.part   the bytes received so far, at their final offsets
 *   <md5>.state  what is known about them (text, docs/PROTOCOL.md):
 *                  floodshare-partial 1
 *                  name NAME (percent-encoded)   size N   md5 HEX
 *                  chunk BYTES   holder HOST:PORT
 *                  (no chunk line: PARTIAL_CHUNK, as before chunks were negotiated)
 *                  c IDX CRC      one line per chunk received
 * The state is written whole (temporary, fsync, rename, fsync of the folder:
 * partial_save()) when a download starts or forgets chunks, and a "c" line
 * is appended after each chunk's bytes are written, so it never names a
 * chunk before its bytes and costs O(1) per chunk however large the file.
 * The appended lines are not fsync'ed: after a crash, every chunk the state
 * names is checked against its CRC before it is trusted, so a lost write is
 * re-fetched, never believed; a torn last line is ignored.
 * Nothing here ever holds the final name. */
#ifndef FLOODSHARE_PARTIAL_H
#define FLOODSHARE_PARTIAL_H

#include <stddef.h>
#include <stdint.h>

#include "floodshare/addr.h"
#include "floodshare/hash.h"
#include "floodshare/msg.h"
#include "floodshare/status.h"

/* Bytes per chunk (= per DATA frame) are negotiated per transfer: a power
 * of two from PARTIAL_CHUNK_MIN to PARTIAL_CHUNK_MAX (partial_chunk_valid()).
 * PARTIAL_CHUNK is the one size of peers and state files from before the
 * negotiation: what a FETCH without `chunk` gets and what a state file
 * without a "chunk" line means. Every valid size divides PARTIAL_CHUNK_MAX,
 * so a prefix of whole PARTIAL_CHUNK_MAX bytes is whole chunks of any. */
#define PARTIAL_CHUNK_MIN (64u * 1024)
#define PARTIAL_CHUNK_MAX (4u * 1024 * 1024)
#define PARTIAL_CHUNK PARTIAL_CHUNK_MAX
/* A fresh partial's chunk is doubled (up to PARTIAL_CHUNK_MAX) until the
 * file has fewer than this many chunks, so its state file (~20 bytes a
 * chunk) stays well under PARTIAL_STATE_MAX. */
#define PARTIAL_CHUNKS_WANTED (UINT64_C(1) << 21)
#define PARTIAL_STATE_MAX (64u * 1024 * 1024) /* largest state file read */
/* Buffers handed to partial_put() at this alignment (and chunk offsets,
 * which are multiples of it) go to disk with O_DIRECT: see partial_put(). */
#define PARTIAL_ALIGN 4096u

/* 1 when chunk is a power of two from PARTIAL_CHUNK_MIN to PARTIAL_CHUNK_MAX. */
int partial_chunk_valid(uint64_t chunk);

struct partial {
    char data_path[4200];
    char state_path[4200];
    char name[MSG_MAX_NAME + 1];
    char md5[MSG_MD5_LEN + 1];
    uint64_t size;
    uint64_t chunk;
    uint64_t nchunks;
    uint64_t have;   /* chunks 0..have-1 are received (a contiguous prefix) */
    uint32_t *crc;   /* nchunks entries; valid below `have` */
    struct fs_addr holder;
    int fd;          /* the .part file, open for reading and writing */
    int dfd;         /* the same, opened O_DIRECT; -1 where unsupported */
    int state_fd;    /* the .state file, open for appending "c" lines */
    /* Set by the caller when the state must survive a power cut (a file
     * downloaded on its own): partial_save() then fsyncs the new state
     * before renaming it and the folder after. Files staged inside a
     * folder leave it 0: one syncfs covers them all at the end, and a
     * lost state there costs at most one file's progress. */
    int durable;
};

/* Opens the partial download of (name, size, md5) in state_dir, creating
 * it if none exists, with chunks of `chunk` bytes (a valid size, else
 * FS_EINVAL; doubled for a file of PARTIAL_CHUNKS_WANTED chunks or more).
 * *resumed is set to 1 when an earlier one was found; it keeps the chunk
 * size its state records (its `have` chunks are claimed, not yet checked:
 * see partial_check()).
 * A state file that does not parse, or describes another item, is
 * replaced by a fresh one. FS_EBUSY when another download of the same item
 * holds it (an exclusive flock on the .part file, released at close or
 * when the process dies); FS_ETOOBIG, with nothing created, for a size of
 * 2^24 chunks (64 TiB) or more, whose chunk table alone would be too big.
 * Caller frees with partial_close(). */
fs_status partial_open(const char *state_dir, const char *name, uint64_t size, const char *md5,
                       uint64_t chunk, struct partial **out, int *resumed);

/* Re-reads the claimed prefix, checking every chunk's CRC and feeding the
 * bytes into md5 (the running digest of the whole file). Stops at the first
 * chunk that does not match, and forgets it and everything after it (they
 * will be fetched again). *bad gets the number of chunks forgotten. */
fs_status partial_check(struct partial *pt, struct hash_md5 *md5, uint64_t *bad);

/* Forgets the chunks after the longest prefix of whole multiples of
 * `bytes` (a multiple of pt->chunk), so the prefix ends on a boundary of
 * every chunk size up to `bytes`; saves the state when that changed it.
 * Call before partial_check(), whose MD5 must cover exactly the prefix. */
fs_status partial_round(struct partial *pt, uint64_t bytes);

/* Re-cuts the received prefix into chunks of `chunk` bytes (valid, else
 * FS_EINVAL) and saves the state. The prefix must be a whole number of new
 * chunks (FS_EINVAL otherwise; partial_round() to PARTIAL_CHUNK_MAX first
 * makes sure): no byte is forgotten, so a running MD5 stays true. The new
 * CRCs are combined from the old ones (a larger chunk: no I/O) or read back
 * from the .part file (a smaller one: one buffer of `chunk` bytes). */
fs_status partial_rechunk(struct partial *pt, uint64_t chunk);

/* Writes chunk idx (== pt->have), then appends its line to the state.
 * When data is PARTIAL_ALIGN-aligned the chunk's whole blocks are written
 * with O_DIRECT (only a short tail through the page cache): on these
 * machines copying a download into fresh page-cache pages cost more CPU
 * than receiving and hashing it, and direct writes reach the disk at its
 * full speed, so the final fsync finds almost nothing left to do. Where
 * the file system refuses O_DIRECT (EINVAL), every write is buffered. */
fs_status partial_put(struct partial *pt, uint64_t idx, const void *data, size_t len,
                      uint32_t crc);

/* Starts writing chunk idx back to disk without waiting for it, so the
 * final fsync has little left to do and a large download never piles up
 * gigabytes of dirty pages. May block while the disk is congested, so
 * call it off the network's path. Reads only fields fixed at open: safe
 * from another thread than the one calling partial_put(). */
void partial_writeback(const struct partial *pt, uint64_t idx);

/* Replaces the state file with the current state: written to
 * "<md5>.state.tmp", then renamed over the state (so a reader or a crash
 * sees the old state or the new one, whole); with pt->durable, fsync of the
 * temporary before the rename and of the folder after it. On failure the
 * old state stays and errno says why. */
fs_status partial_save(struct partial *pt);

/* Cuts the .part file back to the chunks the state names (0..have-1), so
 * the bytes of a chunk whose write failed (a full disk) give their room
 * back. The partial stays resumable. */
fs_status partial_trim(struct partial *pt);

/* Removes what a process killed at the wrong moment leaves in state_dir
 * and nothing else can reach: "<md5>.state.tmp" files (killed in
 * partial_save()), a .state whose .part is gone (killed between
 * partial_finish()'s rename and its unlink: the item is complete) and a
 * .part without a .state (killed in partial_open() before the first
 * save). Only for start-up, when no download runs. Returns how many. */
long partial_sweep(const char *state_dir);

/* Renames from to final_path, never replacing anything there (FS_EEXIST;
 * FS_EIO for other failures), then, when durable, fsyncs final_path's
 * folder so the rename survives a crash. The one way a verified download
 * (a file, a staged folder or an extracted archive) takes its name. */
fs_status partial_place(const char *from, const char *final_path, int durable);

/* The whole file is here and verified: fsync it (when durable), rename it
 * to final_path (never replacing anything: FS_EEXIST), fsync the folder
 * (when durable), and remove the state. A caller that passes durable = 0
 * must make the data durable itself before anyone relies on it (a folder
 * download syncs its staging area once at the end instead of once per
 * file). pt stays valid for partial_close(). */
fs_status partial_finish(struct partial *pt, const char *final_path, int durable);

/* Deletes both files (the bytes cannot be trusted any more). */
void partial_discard(struct partial *pt);

/* Closes pt, keeping whatever is on disk. NULL is fine. */
void partial_close(struct partial *pt);

/* pread() until all n bytes are read: FS_EIO on an error or end of file. */
fs_status partial_read_at(int fd, void *buf, size_t n, uint64_t off);

/* What `transfers` shows of a partial download that is not running. */
struct partial_info {
    char name[MSG_MAX_NAME + 1];
    char md5[MSG_MD5_LEN + 1];
    uint64_t size, have_bytes;
    struct fs_addr holder;
};

/* Lists the partial downloads in state_dir. *out is malloc'd (caller
 * frees); returns the count, or a negative fs_status. */
long partial_list(const char *state_dir, struct partial_info **out);

/* Parses a state file's text[0..len) into pt's fields (name, size, md5,
 * chunk, holder, have, crc[] — crc is malloc'd). A state without a
 * "chunk" line (older versions) has chunks of PARTIAL_CHUNK; a chunk that
 * is not partial_chunk_valid() makes it invalid. Pure; used by
 * partial_open() and partial_list(), and by the unit tests. FS_EPROTO
 * when the text is not a valid state of version 1. */
fs_status partial_parse_state(const char *text, size_t len, struct partial *pt);

#endif
