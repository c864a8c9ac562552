/* partial.h - a download in progress, on disk, so it survives being killed.
 *
 * A partial download of a file is two files in the share's state folder:
 *   <md5>.part   the bytes received so far, at their final offsets
 *   <md5>.pieces the piece hash list (pieces.h), when the holder advertised a
 *                root: fetched once, checked against the root each time it
 *                is read, so a resume asks no holder for it again
 *   <md5>.state  what is known about them (text, docs/PROTOCOL.md):
 *                  floodshare-partial 1
 *                  name NAME (percent-encoded)   size N   md5 HEX
 *                  chunk BYTES   holder HOST:PORT   mode OCTAL (the holder's
 *                  permission bits; optional)
 *                  (no chunk line: PARTIAL_CHUNK, as before chunks were negotiated)
 *                  c IDX CRC      one line per chunk received
 * The state is written whole (temporary, fsync, rename, fsync of the folder:
 * partial_save()) when a download starts or forgets chunks, and a "c" line
 * is appended after each chunk's bytes are written, so it never names a
 * chunk before its bytes and costs O(1) per chunk however large the file.
 * The appended lines are not fsync'ed: after a crash, every chunk the state
 * names is checked against its CRC before it is trusted, so a lost write is
 * re-fetched, never believed; a torn last line is ignored.
 *
 * A partial made with a piece list (the hit had a root) has a state of
 * version 2 instead, whose pieces may arrive in any order (docs/SWARMING.md):
 *                  floodshare-partial 2
 *                  name NAME   size N   md5 HEX   piece BYTES   root HEX
 *                  holder HOST:PORT   mode OCTAL (both optional, as in 1)
 *                  p IDX          one line per piece written, any order
 * No CRC: the piece's SHA-256 in the list beside it checks more. Every
 * piece a resumed state names is only *claimed* (pt->bits) until the
 * caller re-reads it and checks it against the list, whatever its root.
 * An earlier floodshare refuses the magic "floodshare-partial 2" and
 * starts afresh: it loses progress, never mixes bytes. 
 * Nothing here ever holds the final name. Every file is reached through the
 * state folder's descriptor (and the final name through its folder's), by
 * names made of the item's MD5: never through a path string. */
#ifndef FLOODSHARE_PARTIAL_H
#define FLOODSHARE_PARTIAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "floodshare/addr.h"
#include "floodshare/hash.h"
#include "floodshare/msg.h"
#include "floodshare/pieces.h"
#include "floodshare/status.h"

/* Bytes per chunk (= per DATA frame) are negotiated per transfer: a power
 * of two from PARTIAL_CHUNK_MIN to PARTIAL_CHUNK_MAX (partial_chunk_valid()).
 * PARTIAL_CHUNK is the one size of peers and state files from before the
 * negotiation: what a FETCH without `chunk` gets and what a state file
 * without a "chunk" line means. Every valid size divides PARTIAL_CHUNK_MAX,
 * so a prefix of whole PARTIAL_CHUNK_MAX bytes is whole chunks of any. */
#define PARTIAL_PIECES ".pieces" /* "<md5>.pieces": the list beside a partial */
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
    int dirfd;                          /* the state folder (a dup, owned) */
    char data_name[MSG_MD5_LEN + 8];    /* "<md5>.part" in it */
    char state_name[MSG_MD5_LEN + 8];   /* "<md5>.state" in it */
    char name[MSG_MAX_NAME + 1];
    char md5[MSG_MD5_LEN + 1];
    uint64_t size;
    uint64_t chunk;
    uint64_t nchunks;
    uint64_t have;   /* chunks 0..have-1 are received (a contiguous prefix) */
    uint32_t *crc;   /* nchunks entries; valid below `have` */
    struct fs_addr holder;
    mode_t mode;     /* the holder's permission bits (RANGE mode), when has_mode */
    int has_mode;    /* else the finished file gets 0644 (& ~umask) */
    int fd;          /* the .part file, open for reading and writing */
    int dfd;         /* the same, opened O_DIRECT; -1 where unsupported */
    int state_fd;    /* the .state file, open for appending "c" lines */
    /* Set by the caller when the state must survive a power cut (a file
     * downloaded on its own): partial_save() then fsyncs the new state
     * before renaming it and the folder after. Files staged inside a
     * folder leave it 0: one syncfs covers them all at the end, and a
     * lost state there costs at most one file's progress. */
    int durable;
    /* Version 2 only (version == 2; all 0 / NULL in version 1). piece,
     * npieces and root are fixed at open; chunk == piece and nchunks ==
     * npieces too, so partial_writeback() serves both versions. bits has a
     * bit per piece, set for every piece the state names (nhave of them):
     * at open those a resumed state named (claimed, not yet re-checked),
     * later the ones the caller wrote with partial_put_piece() and marked
     * with partial_set_piece(). The caller guards bits and nhave with its
     * own lock when several threads write pieces. */
    int version;
    uint64_t piece;
    uint64_t npieces;
    uint64_t nhave;
    uint8_t *bits;
    char root[PIECES_ROOT_HEX + 1];
};

/* Opens the version 1 partial download of (name, size, md5) in the folder state_dir
 * (a descriptor, duplicated: the caller keeps its own), creating
 * it if none exists, with chunks of `chunk` bytes (a valid size, else
 * FS_EINVAL; doubled for a file of PARTIAL_CHUNKS_WANTED chunks or more).
 * *resumed is set to 1 when an earlier one was found; it keeps the chunk
 * size its state records (its `have` chunks are claimed, not yet checked:
 * see partial_check()).
 * A state file that does not parse, describes another item or is of
 * version 2 (no CRCs to resume a prefix with), is replaced by a fresh one. FS_EBUSY when another download of the same item
 * holds it (an exclusive flock on the .part file, released at close or
 * when the process dies); FS_ETOOBIG, with nothing created, for a size of
 * 2^24 chunks (64 TiB) or more, whose chunk table alone would be too big.
 * FS_EINVAL for an md5 that is not 32 lower-case hex digits (it names the
 * files). Caller frees with partial_close(). */
fs_status partial_open_at(int state_dir, const char *name, uint64_t size, const char *md5,
                          uint64_t chunk, struct partial **out, int *resumed);

/* Opens the version 2 partial of (name, size, md5) cut into pieces of
 * `piece` bytes whose list has root `root` (pieces_size_valid(), 64 hex
 * digits, else FS_EINVAL), creating it if none exists; locked, checked and
 * placed like partial_open_at(). What an earlier state of the same item
 * becomes (*resumed = 1), always saved as version 2 before this returns:
 *  - version 2 with this root and piece: its pieces are set in bits;
 *  - version 2 with another root (another content's list, or a liar's): the
 *    pieces it names are set too, since each is re-checked against this
 *    root's list before it counts; with another piece size, only the new
 *    pieces wholly covered by named old ones. The old root's list beside
 *    it ("<md5>.pieces") is removed: it describes other bytes;
 *  - version 1: the pieces wholly inside its chunk prefix.
 * Every set bit is a claim, never a verified piece: the caller checks each
 * against the list before it counts. FS_ETOOBIG, with nothing created, when
 * the file has more than PIECES_MAX_COUNT pieces. Caller frees with
 * partial_close(). */
fs_status partial_open_pieces_at(int state_dir, const char *name, uint64_t size,
                                 const char *md5, uint64_t piece, const char *root,
                                 struct partial **out, int *resumed);

/* Bytes of piece idx of a version 2 partial (the last may be short). */
uint64_t partial_piece_len(const struct partial *pt, uint64_t idx);

/* 1 when bit idx of a version 2 partial is set (named by its state). */
int partial_has_piece(const struct partial *pt, uint64_t idx);

/* Sets bit idx (after partial_put_piece() succeeded, or the caller checked
 * a claimed piece); nhave counts it once. Not thread-safe: under the
 * caller's lock. */
void partial_set_piece(struct partial *pt, uint64_t idx);

/* Clears bit idx (a claimed piece failed its check): a later save no
 * longer names it. Not thread-safe, like partial_set_piece(). */
void partial_clear_piece(struct partial *pt, uint64_t idx);

/* Writes piece idx of a version 2 partial (len must be its length, else
 * FS_EINVAL), in any order, then appends "p IDX" to the state with one
 * write(2) of O_APPEND, so lines of concurrent callers never interleave and
 * the state never names a piece before its bytes. Direct I/O as
 * partial_put(). Reads only fields fixed at open, so threads writing
 * distinct pieces need no lock; it does not touch bits (the caller sets
 * them with partial_set_piece() under its lock). On a failed write (a full
 * disk) or append, the piece's range is punched out of the .part
 * (FALLOC_FL_PUNCH_HOLE) so its room comes back, nothing names it, and
 * FS_EIO is returned with errno saying why. */
fs_status partial_put_piece(struct partial *pt, uint64_t idx, const void *data, size_t len);

/* Reads piece idx of a version 2 partial back into buf (len must be its
 * length, else FS_EINVAL), with O_DIRECT when buf is PARTIAL_ALIGN-aligned
 * (the pieces were written direct, so the page cache holds nothing of them
 * and should not fill with them now). Thread-safe like partial_put_piece().
 * FS_EIO when the bytes are not there. */
fs_status partial_read_piece(const struct partial *pt, uint64_t idx, void *buf, size_t len);

/* N's own copy of a file, as a sync reuses it (partial_seed()). All the
 * caller's: nothing here is freed or closed. */
struct partial_seed_src {
    int fd;                    /* N's file, opened for reading by the caller below the
                                  share's descriptor without following links (O_NOFOLLOW,
                                  as share.c opens what it hashes); must be a regular file */
    uint64_t size;             /* bytes the list describes */
    uint64_t piece;            /* its piece size (the list file's) */
    const unsigned char *list; /* n SHA-256 digests (pieces_load_at() from N's pieces folder) */
    uint64_t n;                /* pieces_count(size, piece) */
};

/* Seeds a version 2 partial of M's item from N's local copy: for every
 * piece idx not yet set whose SHA-256 in M's list (list, n pieces: checked
 * against pt->root by the caller) equals src's at the same index over the
 * same length, copies those bytes of src->fd to the same offset of the
 * .part (copy_file_range(): no user-space copy; a pread/pwrite loop where
 * the kernel refuses it with EXDEV, EINVAL, ENOSYS or EOPNOTSUPP), appends
 * its "p IDX" line and sets its bit. *pieces and *bytes get what was
 * reused. A piece src no longer holds (the file shrank) is skipped, its
 * room punched out: M sends it instead.
 *
 * Nothing is hashed here: N's list says what the file held when N's share
 * hashed it, and the file may have changed since, or while it is copied.
 * Every piece this sets is therefore a claim, like a resumed state's: the
 * caller must re-read and check each against M's list (partial_read_piece()
 * + pieces_piece_ok()) before it counts, as the swarm engine does for a
 * resumed partial. A changed local file costs a re-fetch, never a wrong byte.
 *
 * FS_EINVAL (nothing copied) when pt is not version 2, n is not
 * pt->npieces, src's piece size differs from pt's (the lists compare no
 * bytes then) or src's list does not fit its size, or src->fd is not a
 * regular file; FS_EIO (errno) when a copy or a line cannot be written
 * (the pieces before it stay seeded); FS_ENOMEM. Not thread-safe: call it
 * before any source writes into pt. */
fs_status partial_seed(struct partial *pt, const unsigned char *list, uint64_t n,
                       const struct partial_seed_src *src, uint64_t *pieces, uint64_t *bytes);

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
 * back. The partial stays resumable. Version 1 only (FS_EINVAL for 2,
 * whose pieces are not a prefix: partial_put_piece() punches instead). */
fs_status partial_trim(struct partial *pt);

/* Removes what a process killed at the wrong moment leaves in the folder
 * state_dir and nothing else can reach: "<md5>.state.tmp" files (killed in
 * partial_save()), a .state whose .part is gone (killed between
 * partial_finish_at()'s rename and its unlink: the item is complete) and a
 * .part without a .state (killed in partial_open_at() before the first
 * save), and a "<md5>.pieces" (or its temporary) without a .state. Only for
 * start-up, when no download runs. Returns how many. */
long partial_sweep_at(int state_dir);

/* Renames from (in the folder from_dir) to `to` (in the folder to_dir) with
 * renameat2(RENAME_NOREPLACE): never replacing anything there (FS_EEXIST;
 * FS_EIO for other failures, errno says why), then, when durable, fsyncs
 * to_dir so the rename survives a crash. The one way a verified download
 * (a file, a staged folder or an extracted archive) takes its name: to_dir
 * is the share's root descriptor (or a staging folder's), so the name is
 * taken where the share is, whatever path now leads there. */
fs_status partial_place_at(int from_dir, const char *from, int to_dir, const char *to,
                           int durable);

/* The whole file is here and verified: give it the holder's permission
 * bits (pt->mode if has_mode, else 0644; & 0777, masked by this process's
 * umask as a file it created would be: the .part itself is 0600 while it is
 * incomplete), fsync it (when durable), rename it to `to` in the
 * folder to_dir (never replacing anything: FS_EEXIST), fsync that folder
 * (when durable), and remove the state. A caller that passes durable = 0
 * must make the data durable itself before anyone relies on it (a folder
 * download syncs its staging area once at the end instead of once per
 * file). pt stays valid for partial_close(). */
fs_status partial_finish_at(struct partial *pt, int to_dir, const char *to, int durable);

/* This process's umask, read from /proc/self/status (umask(2) cannot be
 * read without changing it, which would race with other threads creating
 * files); 077 when it cannot be read. */
mode_t partial_umask(void);

/* Deletes both files and the piece list (the bytes cannot be trusted any
 * more). partial_finish_at() removes the list too. */
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

/* Lists the partial downloads in the folder state_dir (a descriptor, not
 * closed). *out is malloc'd (caller frees); returns the count, or a
 * negative fs_status. */
long partial_list_at(int state_dir, struct partial_info **out);

/* partial_list_at() of the folder at the path state_dir, opened with
 * O_NOFOLLOW: for `transfers`, which shows what is waiting locally. */
long partial_list(const char *state_dir, struct partial_info **out);

/* Parses a state file's text[0..len) into pt's fields (name, size, md5,
 * chunk, holder, mode, have, crc[] — crc is malloc'd). A state without a
 * "chunk" line (older versions) has chunks of PARTIAL_CHUNK; a chunk that
 * is not partial_chunk_valid() makes it invalid. A state of version 2 sets
 * version, piece, npieces, root, bits (malloc'd) and nhave instead (and
 * chunk = piece, nchunks = npieces; crc stays NULL): it needs the piece,
 * root, name, size and md5 lines, a valid piece size and at most
 * PIECES_MAX_COUNT pieces; a "p" line before the "piece" line, or with an
 * index past the last piece, makes it invalid; a repeated index is
 * harmless. Pure; used by partial_open_at() (which takes version 1 only),
 * partial_open_pieces_at() and partial_list_at(), and by the unit tests.
 * FS_EPROTO, with nothing allocated, when the text is neither. */
fs_status partial_parse_state(const char *text, size_t len, struct partial *pt);

#endif
