/* pieces.h - per-piece SHA-256 hashes of a file, the root that binds them,
 * and the small file that keeps a list on disk.
 *
 * A file of `size` bytes is cut into pieces of PIECES_SIZE bytes (the last
 * may be shorter; an empty file has none). Each piece gets its SHA-256; the
 * list is those digests, 32 bytes each, in order. The root is
 *   SHA-256("floodshare-pieces 1 <size> <piece>\n" || h0 || h1 || ...)
 * as 64 lower-case hex digits: one hash over the whole list, so a list is
 * checked against a root in one pass, and size and piece size are bound
 * too (a list cannot be replayed for another length). docs/DESIGN.md says
 * why this flat list and not a Merkle tree.
 *
 * A list file (the holder's sidecar, the requester's copy beside its
 * partial download) is
 *   "floodshare-pieces 1 <size> <piece> <root>\n" then the list, binary
 * and is only ever trusted after pieces_file_parse() recomputed its root.
 * Everything but pieces_save_at()/pieces_load_at() is pure. */
#ifndef FLOODSHARE_PIECES_H
#define FLOODSHARE_PIECES_H

#include <stddef.h>
#include <stdint.h>

#include "floodshare/status.h"

/* Bytes per piece of a file up to PIECES_SIZE * PIECES_MAX_COUNT (512 GiB):
 * 1 GiB -> 2048 hashes, a 64 KiB list. The same as the frame a requester
 * asks for (XFER_FETCH_CHUNK), so each frame of a fresh download is one
 * piece, checked as it lands, at the memory measured for that frame size.
 * Larger files get larger pieces (pieces_size_for()). */
#define PIECES_SIZE (512u * 1024)
#define PIECES_MAX_COUNT (1u << 20) /* pieces a holder cuts a file into, at most */
#define PIECES_SIZE_MIN (64u * 1024)        /* a list with other sizes is refused */
/* At most a DATA frame's largest size, so that a requester can always ask
 * for frames of exactly one piece and check each frame as it lands. */
#define PIECES_SIZE_MAX (4u * 1024 * 1024)
#define PIECES_HASH_LEN 32 /* bytes of one SHA-256 */
#define PIECES_ROOT_HEX 64 /* hex digits of a root */
/* The largest list a holder makes or a requester accepts: PIECES_MAX_COUNT
 * hashes (32 MiB; a 4 TiB file at 4 MiB pieces). A larger file is shared
 * with its MD5 only (no root). A list's true length follows from size and
 * piece; this bounds memory before anything is allocated. */
#define PIECES_LIST_MAX (PIECES_MAX_COUNT * PIECES_HASH_LEN)
#define PIECES_MAGIC "floodshare-pieces 1"
#define PIECES_HEADER_MAX 128 /* bytes of a list file's header line, '\n' included */

/* 1 when piece is a power of two from PIECES_SIZE_MIN to PIECES_SIZE_MAX. */
int pieces_size_valid(uint64_t piece);

/* The piece size a holder uses for a file of size bytes: PIECES_SIZE,
 * doubled (up to PIECES_SIZE_MAX) until the file has at most
 * PIECES_MAX_COUNT pieces; 0 when even that is too many (over 4 TiB: no
 * root). */
uint64_t pieces_size_for(uint64_t size);

/* Pieces of a file of size bytes (ceil(size / piece)); piece must be valid. */
uint64_t pieces_count(uint64_t size, uint64_t piece);

/* Bytes of the list of a file of size bytes, or 0 with *ok 0 when it would
 * exceed PIECES_LIST_MAX. */
uint64_t pieces_list_len(uint64_t size, uint64_t piece, int *ok);

/* 1 if s is exactly 64 lower-case hex digits followed by NUL. */
int pieces_root_valid(const char *s);

/* A large folder's root (docs/PROTOCOL.md, Folder roots): SHA-256 of
 * "floodshare-roots 1 <n>\n" followed by roots[0..n*32), the binary piece
 * roots of its n files in manifest order, into root (65 bytes). Binds the
 * count, so a list cannot be cut or padded. FS_ENOMEM, FS_EIO (no SHA-256
 * provider). */
#define PIECES_ROOTS_MAGIC "floodshare-roots 1"
fs_status pieces_folder_root(const unsigned char *roots, uint64_t n,
                             char root[PIECES_ROOT_HEX + 1]);

/* The 32 bytes of a root given as 64 lower-case hex digits; -1 when hex is
 * not a valid root (pieces_root_valid()). */
int pieces_root_bin(const char *hex, unsigned char out[PIECES_HASH_LEN]);

/* The root of list[0..n*32) for a file of size bytes cut into pieces of
 * piece bytes, into root (65 bytes, NUL-terminated). n must be
 * pieces_count(size, piece) (FS_EINVAL otherwise). FS_ENOMEM, FS_EIO (no
 * SHA-256 provider). */
fs_status pieces_root(uint64_t size, uint64_t piece, const unsigned char *list, uint64_t n,
                      char root[PIECES_ROOT_HEX + 1]);

/* Checks a list received or read from disk, list[0..len): len must be
 * exactly what size and piece imply and its root must be root. FS_OK, or
 * FS_EPROTO with *why ("the list has the wrong length for the size", "the
 * list does not match the root", "piece size is not a power of two from
 * 64 KiB to 4 MiB"), FS_ETOOBIG past PIECES_LIST_MAX. Pure. */
fs_status pieces_check_list(uint64_t size, uint64_t piece, const unsigned char *list, size_t len,
                            const char *root, const char **why);

/* 1 when data[0..len) is piece idx of the list (n pieces): its SHA-256
 * equals list[idx]. 0 on a mismatch or idx >= n. */
int pieces_piece_ok(const unsigned char *list, uint64_t n, uint64_t idx, const void *data,
                    size_t len);

/* Hashes a file's bytes, as they stream past, into its piece list. Feed
 * every byte in order with pieces_hash_update(); pieces_hash_final() hands
 * the list and root over. Holds one SHA-256 context and the list so far
 * (32 bytes a piece), all malloc'd; pieces_hash_abort() frees them. */
struct pieces_hash {
    void *ctx;           /* EVP_MD_CTX * of the piece in progress, owned */
    uint64_t piece;      /* piece size */
    uint64_t in_piece;   /* bytes of the current piece hashed so far */
    uint64_t total;      /* bytes hashed */
    unsigned char *list; /* malloc'd, cap entries */
    uint64_t n, cap;
    int failed;
};

fs_status pieces_hash_init(struct pieces_hash *ph, uint64_t piece);
void pieces_hash_update(struct pieces_hash *ph, const void *data, size_t len);
/* Ends ph: *list (malloc'd, the caller frees; NULL for an empty file), *n
 * pieces and the root of the total bytes fed. ph is freed either way. */
fs_status pieces_hash_final(struct pieces_hash *ph, unsigned char **list, uint64_t *n,
                            char root[PIECES_ROOT_HEX + 1]);
void pieces_hash_abort(struct pieces_hash *ph);

/* A parsed list file. list points into the buffer that was parsed. */
struct pieces_file {
    uint64_t size, piece, n;
    char root[PIECES_ROOT_HEX + 1];
    const unsigned char *list;
};

/* Parses a list file held in buf[0..len) and checks the list against the
 * root in its header. FS_OK; FS_EPROTO (malformed, wrong length, root
 * mismatch) or FS_ETOOBIG with *why. Pure; never reads outside buf. */
fs_status pieces_file_parse(const unsigned char *buf, size_t len, struct pieces_file *out,
                            const char **why);

/* Writes the list file of (size, piece, root, list of n) as `name` in the
 * folder dirfd: a temporary, then rename, so a reader sees the old file or
 * the new one whole (no fsync: a torn file fails its root check and costs
 * a refetch or a rehash, never a wrong piece). FS_OK or FS_EIO (errno). */
fs_status pieces_save_at(int dirfd, const char *name, uint64_t size, uint64_t piece,
                         const char *root, const unsigned char *list, uint64_t n);

/* Reads the list file `name` in dirfd (never through a link) and checks it:
 * its size and root must be the ones given. *list is malloc'd (caller
 * frees), *n pieces, *piece the piece size. FS_ENOTFOUND when there is no
 * such file; FS_EPROTO/FS_ETOOBIG with *why when it is not a valid list of
 * that root; FS_EIO. */
fs_status pieces_load_at(int dirfd, const char *name, uint64_t size, const char *root,
                         unsigned char **list, uint64_t *n, uint64_t *piece, const char **why);

#endif
