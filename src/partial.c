/* partial.c - resumable download state: the .part bytes and the .state text. */
#include "floodshare/partial.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <linux/falloc.h>

#include "floodshare/name.h"

#define STATE_MAGIC "floodshare-partial 1"
#define STATE_MAGIC2 "floodshare-partial 2" /* pieces in any order: partial.h */
/* Most chunks a state file may describe: 64 TiB in 4 MiB chunks, a 64 MiB table. */
#define STATE_MAX_CHUNKS (UINT64_C(1) << 24)

/* --- the state text --- */

/* Copies line `key value` into val (NUL-terminated); 0 if the key differs. */
static int line_value(const char *line, size_t n, const char *key, char *val, size_t cap)
{
    size_t k = strlen(key);

    if (n <= k + 1 || memcmp(line, key, k) != 0 || line[k] != ' ' || n - k - 1 >= cap)
        return 0;
    memcpy(val, line + k + 1, n - k - 1);
    val[n - k - 1] = '\0';
    return 1;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;

    if (!*s || *s == '-' || *s == '+')
        return 0;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno)
        return 0;
    *out = v;
    return 1;
}

/* One "c IDX CRC" line: accepted only as the next chunk of the prefix. */
static int parse_chunk_line(const char *val, struct partial *pt)
{
    uint64_t idx;
    char *end;
    char num[32];
    const char *sp = strchr(val, ' ');

    if (!sp || (size_t)(sp - val) >= sizeof num || !pt->crc)
        return 0;
    memcpy(num, val, (size_t)(sp - val));
    num[sp - val] = '\0';
    if (!parse_u64(num, &idx) || idx != pt->have || idx >= pt->nchunks)
        return 0;
    unsigned long crc = strtoul(sp + 1, &end, 16);
    if (*end || end - (sp + 1) != 8)
        return 0;
    pt->crc[pt->have++] = (uint32_t)crc;
    return 1;
}

int partial_chunk_valid(uint64_t chunk)
{
    return chunk >= PARTIAL_CHUNK_MIN && chunk <= PARTIAL_CHUNK_MAX && (chunk & (chunk - 1)) == 0;
}

/* Sizes the chunk table once size and chunk are known. */
static fs_status size_table(struct partial *pt)
{
    if (pt->crc || !partial_chunk_valid(pt->chunk))
        return FS_EPROTO;
    if (pt->size / pt->chunk >= STATE_MAX_CHUNKS) /* a CRC each: a bounded table */
        return FS_ETOOBIG;
    pt->nchunks = pt->size / pt->chunk + (pt->size % pt->chunk != 0);
    pt->crc = calloc(pt->nchunks ? pt->nchunks : 1, sizeof *pt->crc);
    return pt->crc ? FS_OK : FS_ENOMEM;
}

/* Marks key bit in *seen; 0 if it was there already. A second "size"
 * after "chunk" would leave the chunk table sized for the first. */
static int first_time(unsigned *seen, unsigned bit)
{
    if (*seen & bit)
        return 0;
    *seen |= bit;
    return 1;
}

/* Bytes of piece idx of a version 2 partial: the last may be short. */
uint64_t partial_piece_len(const struct partial *pt, uint64_t idx)
{
    uint64_t off = idx * pt->piece;
    return pt->size - off < pt->piece ? pt->size - off : pt->piece;
}

int partial_has_piece(const struct partial *pt, uint64_t idx)
{
    return pt->bits && idx < pt->npieces && (pt->bits[idx / 8] >> (idx % 8) & 1);
}

void partial_set_piece(struct partial *pt, uint64_t idx)
{
    if (!pt->bits || idx >= pt->npieces || partial_has_piece(pt, idx))
        return;
    pt->bits[idx / 8] |= (uint8_t)(1u << (idx % 8));
    pt->nhave++;
}

void partial_clear_piece(struct partial *pt, uint64_t idx)
{
    if (!partial_has_piece(pt, idx))
        return;
    pt->bits[idx / 8] &= (uint8_t)~(1u << (idx % 8));
    pt->nhave--;
}

/* Sizes the piece map of a version 2 state once size and piece are known:
 * a bit a piece, at most PIECES_MAX_COUNT of them (128 KiB), so a state
 * claiming a huge size with tiny pieces cannot ask for more. */
static fs_status size_bits(struct partial *pt)
{
    if (pt->bits || !pieces_size_valid(pt->piece))
        return FS_EPROTO;
    if (pieces_count(pt->size, pt->piece) > PIECES_MAX_COUNT)
        return FS_ETOOBIG;
    pt->npieces = pieces_count(pt->size, pt->piece);
    pt->chunk = pt->piece; /* partial_writeback() serves both versions */
    pt->nchunks = pt->npieces;
    pt->nhave = 0;
    pt->bits = calloc(pt->npieces ? (size_t)(pt->npieces + 7) / 8 : 1, 1);
    return pt->bits ? FS_OK : FS_ENOMEM;
}

/* Forgets everything of version 2 (back to a version 1 partial's fields). */
static void drop_pieces(struct partial *pt)
{
    free(pt->bits);
    pt->bits = NULL;
    pt->version = 1;
    pt->piece = pt->npieces = pt->nhave = 0;
    pt->root[0] = '\0';
}

/* The lines only a version 2 state has: piece, root, p IDX. 1 when line
 * was one of them (*st then says whether it was valid), 0 otherwise. */
static int parse_line2(const char *line, size_t n, struct partial *pt, unsigned *seen,
                       fs_status *st)
{
    char val[3 * MSG_MAX_NAME + 8];
    uint64_t idx;

    *st = FS_EPROTO;
    if (line_value(line, n, "piece", val, sizeof val)) {
        if (first_time(seen, 8) && (*seen & 2) && parse_u64(val, &pt->piece) &&
            size_bits(pt) == FS_OK)
            *st = FS_OK;
        return 1;
    }
    if (line_value(line, n, "root", val, sizeof val)) {
        if (first_time(seen, 32) && pieces_root_valid(val)) {
            memcpy(pt->root, val, sizeof pt->root);
            *st = FS_OK;
        }
        return 1;
    }
    if (line_value(line, n, "p", val, sizeof val)) {
        /* A repeated index is harmless (the set already holds it); one
         * past the end is not a piece of this file: the state is invalid. */
        if (pt->bits && parse_u64(val, &idx) && idx < pt->npieces) {
            partial_set_piece(pt, idx);
            *st = FS_OK;
        }
        return 1;
    }
    return 0;
}

/* A state from before chunks were negotiated has no "chunk" line: its
 * chunks are PARTIAL_CHUNK. Decided at its first "c" line or at its end. */
static fs_status default_chunk(struct partial *pt, unsigned *seen)
{
    if (!(*seen & 2))
        return FS_EPROTO;
    *seen |= 8;
    pt->chunk = PARTIAL_CHUNK;
    return size_table(pt);
}

static fs_status parse_line(const char *line, size_t n, struct partial *pt, unsigned *seen)
{
    char val[3 * MSG_MAX_NAME + 8];

    /* We never write a NUL; the string functions below would stop at it. */
    if (memchr(line, '\0', n))
        return FS_EPROTO;
    if (line_value(line, n, "name", val, sizeof val)) {
        int len = msg_pct_decode(val, strlen(val), pt->name, sizeof pt->name);
        if (!first_time(seen, 1))
            return FS_EPROTO;
        return len > 0 && name_valid(pt->name, (size_t)len) ? FS_OK : FS_EPROTO;
    }
    if (line_value(line, n, "size", val, sizeof val)) {
        if (!first_time(seen, 2))
            return FS_EPROTO;
        return parse_u64(val, &pt->size) ? FS_OK : FS_EPROTO;
    }
    if (line_value(line, n, "md5", val, sizeof val)) {
        if (!first_time(seen, 4) || !hash_hex_valid(val))
            return FS_EPROTO;
        memcpy(pt->md5, val, sizeof pt->md5);
        return FS_OK;
    }
    if (pt->version == 2) {
        fs_status st;
        if (parse_line2(line, n, pt, seen, &st))
            return st;
    } else if (line_value(line, n, "chunk", val, sizeof val)) {
        if (!first_time(seen, 8) || !(*seen & 2) || !parse_u64(val, &pt->chunk))
            return FS_EPROTO;
        /* size_table() allocates a CRC per chunk: a tiny chunk under a huge
         * size would ask for terabytes. */
        if (!partial_chunk_valid(pt->chunk) || pt->size / pt->chunk >= STATE_MAX_CHUNKS)
            return FS_EPROTO;
        return size_table(pt) == FS_OK ? FS_OK : FS_EPROTO;
    }
    if (line_value(line, n, "mode", val, sizeof val)) {
        /* The holder's permission bits, 1 to 4 octal digits (RANGE mode). */
        size_t l = strlen(val);
        char *end;
        if (!first_time(seen, 16) || l == 0 || l > 4 || strspn(val, "01234567") != l)
            return FS_EPROTO;
        pt->mode = (mode_t)strtoul(val, &end, 8);
        pt->has_mode = 1;
        return FS_OK;
    }
    if (line_value(line, n, "holder", val, sizeof val))
        return addr_parse(val, strlen(val), &pt->holder, NULL) == FS_OK ? FS_OK : FS_EPROTO;
    if (pt->version == 1 && line_value(line, n, "c", val, sizeof val)) {
        if (!(*seen & 8) && default_chunk(pt, seen) != FS_OK)
            return FS_EPROTO;
        return parse_chunk_line(val, pt) ? FS_OK : FS_EPROTO;
    }
    return FS_EPROTO; /* unknown line: a newer version, or garbage */
}

fs_status partial_parse_state(const char *text, size_t len, struct partial *pt)
{
    unsigned seen = 0;
    size_t i = 0, magic = strlen(STATE_MAGIC);

    pt->crc = NULL;
    pt->bits = NULL;
    pt->have = pt->nchunks = 0;
    pt->has_mode = 0;
    pt->mode = 0;
    drop_pieces(pt);
    if (len <= magic || text[magic] != '\n')
        return FS_EPROTO;
    if (memcmp(text, STATE_MAGIC2, magic) == 0)
        pt->version = 2; /* same length as STATE_MAGIC */
    else if (memcmp(text, STATE_MAGIC, magic) != 0)
        return FS_EPROTO;
    i = magic + 1;
    while (i < len) {
        const char *nl = memchr(text + i, '\n', len - i);
        if (!nl)
            break; /* a torn last line (never written by us) is ignored */
        size_t n = (size_t)(nl - (text + i));
        if (n > 0 && parse_line(text + i, n, pt, &seen) != FS_OK)
            goto bad;
        i += n + 1;
    }
    if (pt->version == 2)
        return (seen & 47) == 47 ? FS_OK : (drop_pieces(pt), FS_EPROTO);
    if ((seen & 15) == 7 && default_chunk(pt, &seen) != FS_OK)
        goto bad;
    if ((seen & 15) != 15)
        goto bad;
    return FS_OK;
bad:
    free(pt->crc);
    pt->crc = NULL;
    pt->have = 0;
    drop_pieces(pt);
    return FS_EPROTO;
}

/* --- files: all reached through the state folder's descriptor --- */

static fs_status read_small(int dirfd, const char *name, char **text, size_t *len)
{
    struct stat sb;
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    fs_status st = FS_EIO;

    *text = NULL;
    if (fd < 0)
        return errno == ENOENT ? FS_ENOTFOUND : FS_EIO;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size <= PARTIAL_STATE_MAX) {
        *text = malloc((size_t)sb.st_size + 1);
        if (*text && read(fd, *text, (size_t)sb.st_size) == sb.st_size) {
            *len = (size_t)sb.st_size;
            st = FS_OK;
        }
    }
    close(fd);
    if (st) {
        free(*text);
        *text = NULL;
    }
    return st;
}

/* fsyncs the folder dirfd, so a rename or create there survives a crash.
 * Errors are ignored: the caller's data is already safe, only the name
 * might be lost, and nothing can be done about it here. */
static void sync_dir(int dirfd)
{
    int err = errno;

    (void)fsync(dirfd);
    errno = err;
}

fs_status partial_save(struct partial *pt)
{
    char tmp[sizeof pt->state_name + 8], enc[3 * MSG_MAX_NAME + 1], holder[ADDR_STR_MAX];
    /* a "c" line is at most 32 bytes, a "p" line 24 */
    size_t cap = 256 + PIECES_ROOT_HEX + sizeof enc + pt->have * 32 + pt->nhave * 24;
    char *text = malloc(cap);
    fs_status st = FS_EIO;
    int n;

    if (!text)
        return FS_ENOMEM;
    msg_pct_encode(pt->name, strlen(pt->name), enc, sizeof enc);
    if (pt->version == 2)
        n = snprintf(text, cap, STATE_MAGIC2 "\nname %s\nsize %" PRIu64 "\nmd5 %s\npiece %" PRIu64
                     "\nroot %s\n", enc, pt->size, pt->md5, pt->piece, pt->root);
    else
        n = snprintf(text, cap, STATE_MAGIC "\nname %s\nsize %" PRIu64 "\nmd5 %s\nchunk %" PRIu64
                     "\n", enc, pt->size, pt->md5, pt->chunk);
    if (pt->holder.port)
        n += snprintf(text + n, cap - (size_t)n, "holder %s\n", addr_format(&pt->holder, holder));
    if (pt->has_mode)
        n += snprintf(text + n, cap - (size_t)n, "mode %o\n", (unsigned)(pt->mode & 07777));
    for (uint64_t i = 0; pt->version != 2 && i < pt->have; i++)
        n += snprintf(text + n, cap - (size_t)n, "c %" PRIu64 " %08" PRIx32 "\n", i, pt->crc[i]);
    for (uint64_t i = 0; i < pt->npieces; i++)
        if (partial_has_piece(pt, i))
            n += snprintf(text + n, cap - (size_t)n, "p %" PRIu64 "\n", i);
    snprintf(tmp, sizeof tmp, "%s.tmp", pt->state_name);
    int fd = openat(pt->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
                    0600);
    if (fd >= 0) {
        /* durable: the new state is on disk before it takes the name, and
         * the rename is on disk before we go on (a crash leaves the old
         * state or the new one, never an empty file under the name). */
        if (write(fd, text, (size_t)n) == n && (!pt->durable || fsync(fd) == 0) &&
            renameat(pt->dirfd, tmp, pt->dirfd, pt->state_name) == 0) {
            if (pt->durable)
                sync_dir(pt->dirfd);
            /* Later "c"/"p" lines go to the file now under the state's name. */
            if (pt->state_fd >= 0)
                close(pt->state_fd);
            pt->state_fd = fd;
            fd = -1;
            st = FS_OK;
        } else {
            int saved = errno;
            unlinkat(pt->dirfd, tmp, 0);
            errno = saved;
        }
        if (fd >= 0)
            close(fd);
    }
    free(text);
    return st;
}

/* Two gets of the same item at once would write the same .part: the
 * second one is refused instead (the lock dies with the process). */
static fs_status lock_part(int fd)
{
    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
        return FS_OK;
    return errno == EWOULDBLOCK ? FS_EBUSY : FS_EIO;
}

/* A second descriptor for direct writes; -1 (buffered only) where the
 * file system has no O_DIRECT. Not locked: the lock is on pt->fd. Opened
 * through /proc/self/fd, so it is the very file pt->fd holds, whatever
 * became of its name. */
static void open_direct(struct partial *pt)
{
    char self[64];

    snprintf(self, sizeof self, "/proc/self/fd/%d", pt->fd);
    pt->dfd = open(self, O_RDWR | O_DIRECT | O_CLOEXEC); /* read: partial_read_piece() */
}

/* Creates (or takes over) the .part of a fresh download, empty, locked, and
 * saves its state: the end of open_fresh() and open_fresh_pieces(). */
static fs_status create_part(struct partial *pt)
{
    pt->fd = openat(pt->dirfd, pt->data_name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (pt->fd < 0)
        return FS_EIO;
    fs_status st = lock_part(pt->fd);
    if (st)
        return st;
    if (ftruncate(pt->fd, 0) < 0) /* only once we own it: never under another download */
        return FS_EIO;
    open_direct(pt);
    return partial_save(pt);
}

static fs_status open_fresh(struct partial *pt, const char *name, uint64_t size, const char *md5,
                            uint64_t chunk)
{
    free(pt->crc);
    pt->crc = NULL;
    drop_pieces(pt); /* a version 2 state of this md5 is not resumed here */
    snprintf(pt->name, sizeof pt->name, "%s", name);
    memcpy(pt->md5, md5, sizeof pt->md5);
    pt->size = size;
    pt->chunk = chunk;
    pt->has_mode = 0;
    pt->mode = 0;
    while (size / pt->chunk >= PARTIAL_CHUNKS_WANTED && pt->chunk < PARTIAL_CHUNK_MAX)
        pt->chunk *= 2;
    pt->have = 0;
    fs_status st = size_table(pt);
    return st ? st : create_part(pt);
}

/* A partial for md5 in state_dir with its own descriptor of the folder and
 * its file names, nothing else open: FS_OK, FS_ENOMEM or FS_EIO. */
static fs_status partial_new(int state_dir, const char *md5, struct partial **out)
{
    struct partial *pt = calloc(1, sizeof *pt);

    *out = NULL;
    if (!pt)
        return FS_ENOMEM;
    pt->fd = pt->dfd = pt->state_fd = -1;
    pt->dirfd = fcntl(state_dir, F_DUPFD_CLOEXEC, 0);
    if (pt->dirfd < 0) {
        free(pt);
        return FS_EIO;
    }
    snprintf(pt->data_name, sizeof pt->data_name, "%s.part", md5);
    snprintf(pt->state_name, sizeof pt->state_name, "%s.state", md5);
    *out = pt;
    return FS_OK;
}

/* Reads md5's state into pt and, when it describes this item (name, size,
 * md5; and version, unless 0) opens its .part into pt->fd: 1 if so. */
static int open_state_of(struct partial *pt, const char *name, uint64_t size, const char *md5,
                         int version)
{
    char *text = NULL;
    size_t len = 0;
    int ok = read_small(pt->dirfd, pt->state_name, &text, &len) == FS_OK &&
             partial_parse_state(text, len, pt) == FS_OK && pt->size == size &&
             strcmp(pt->md5, md5) == 0 && strcmp(pt->name, name) == 0 &&
             (!version || pt->version == version) &&
             (pt->fd = openat(pt->dirfd, pt->data_name, O_RDWR | O_CLOEXEC | O_NOFOLLOW)) >= 0;

    free(text);
    return ok;
}

/* The end of an open: pt into *out, or closed on failure with errno kept
 * (it says why, for the caller's message). */
static fs_status open_done(struct partial *pt, fs_status st, struct partial **out)
{
    if (st) {
        int saved = errno;
        partial_close(pt);
        errno = saved;
        return st;
    }
    *out = pt;
    return FS_OK;
}

fs_status partial_open_at(int state_dir, const char *name, uint64_t size, const char *md5,
                          uint64_t chunk, struct partial **out, int *resumed)
{
    struct partial *pt;
    fs_status st;

    *out = NULL;
    *resumed = 0;
    if (!partial_chunk_valid(chunk) || !hash_hex_valid(md5))
        return FS_EINVAL;
    if (size / PARTIAL_CHUNK_MAX >= STATE_MAX_CHUNKS) /* a FOUND may announce any size */
        return FS_ETOOBIG;
    if ((st = partial_new(state_dir, md5, &pt)) != FS_OK)
        return st;
    if (open_state_of(pt, name, size, md5, 1)) {
        *resumed = 1;
        st = lock_part(pt->fd);
        if (st == FS_OK) {
            open_direct(pt);
            st = partial_save(pt); /* a clean copy to append to (drops a torn line) */
        }
    } else {
        st = open_fresh(pt, name, size, md5, chunk);
    }
    return open_done(pt, st, out);
}

/* --- version 2: pieces in any order --- */

static void remove_pieces(const struct partial *pt);

/* Is byte range [a, b) wholly inside pieces the parsed state `old` names?
 * For a version 1 state: inside its chunk prefix. */
static int old_covers(const struct partial *old, uint64_t a, uint64_t b)
{
    if (old->version != 2) {
        uint64_t prefix = old->have * old->chunk < old->size ? old->have * old->chunk : old->size;
        return b <= prefix;
    }
    for (uint64_t i = a / old->piece; i * old->piece < b; i++)
        if (!partial_has_piece(old, i))
            return 0;
    return 1;
}

/* Turns the parsed earlier state in pt into a version 2 one of (piece,
 * root): every new piece wholly covered by what it named is claimed, none
 * other. A state of another root keeps its claims (each is re-checked
 * against the new list before it counts) but loses its list file. */
static fs_status convert_to_pieces(struct partial *pt, uint64_t piece, const char *root)
{
    struct partial old = *pt; /* its crc and bits move here; freed below */
    fs_status st;

    if (old.version == 2 && old.piece == piece) {
        if (strcmp(old.root, root) != 0) {
            memcpy(pt->root, root, sizeof pt->root);
            remove_pieces(pt);
        }
        return FS_OK; /* bits stay as they are */
    }
    if (old.version == 2)
        remove_pieces(pt); /* another piece size: another root's list */
    pt->crc = NULL;
    pt->bits = NULL;
    pt->have = 0;
    pt->version = 2;
    pt->piece = piece;
    memcpy(pt->root, root, sizeof pt->root);
    if ((st = size_bits(pt)) == FS_OK)
        for (uint64_t i = 0; i < pt->npieces; i++)
            if (old_covers(&old, i * piece, i * piece + partial_piece_len(pt, i)))
                partial_set_piece(pt, i);
    free(old.crc);
    free(old.bits);
    return st;
}

static fs_status open_fresh_pieces(struct partial *pt, const char *name, uint64_t size,
                                   const char *md5, uint64_t piece, const char *root)
{
    free(pt->crc);
    pt->crc = NULL;
    drop_pieces(pt);
    snprintf(pt->name, sizeof pt->name, "%s", name);
    memcpy(pt->md5, md5, sizeof pt->md5);
    memcpy(pt->root, root, sizeof pt->root);
    pt->size = size;
    pt->piece = piece;
    pt->version = 2;
    pt->has_mode = 0;
    pt->mode = 0;
    pt->have = 0;
    fs_status st = size_bits(pt);
    return st ? st : create_part(pt);
}

fs_status partial_open_pieces_at(int state_dir, const char *name, uint64_t size,
                                 const char *md5, uint64_t piece, const char *root,
                                 struct partial **out, int *resumed)
{
    struct partial *pt;
    fs_status st;

    *out = NULL;
    *resumed = 0;
    if (!pieces_size_valid(piece) || !pieces_root_valid(root) || !hash_hex_valid(md5))
        return FS_EINVAL;
    if (pieces_count(size, piece) > PIECES_MAX_COUNT) /* no list is that long */
        return FS_ETOOBIG;
    if ((st = partial_new(state_dir, md5, &pt)) != FS_OK)
        return st;
    if (open_state_of(pt, name, size, md5, 0)) {
        *resumed = 1;
        st = lock_part(pt->fd);
        if (st == FS_OK && (st = convert_to_pieces(pt, piece, root)) == FS_OK) {
            open_direct(pt);
            st = partial_save(pt); /* version 2 before any piece is written */
        }
    } else {
        st = open_fresh_pieces(pt, name, size, md5, piece, root);
    }
    return open_done(pt, st, out);
}

/* Gives the room of [off, off + len) of the .part back (a piece whose
 * write failed: its bytes are named nowhere). Errors are ignored: what
 * stays is only space, never a named piece. */
static void punch(int fd, uint64_t off, uint64_t len)
{
    int err = errno;

    (void)fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
    errno = err;
}

static fs_status write_at(int fd, const char *p, size_t len, uint64_t off);

/* Writes len bytes of p at off: whole blocks through dfd (O_DIRECT) when p
 * and off are aligned, the rest through fd. Where a direct write is refused
 * (EINVAL) the whole is written buffered; dfd is left as it is, since other
 * threads may be using it (partial_put() closes it instead). */
static fs_status write_piece(const struct partial *pt, const char *p, size_t len, uint64_t off)
{
    size_t direct = 0;

    if (pt->dfd >= 0 && (uintptr_t)p % PARTIAL_ALIGN == 0 && off % PARTIAL_ALIGN == 0)
        direct = len - len % PARTIAL_ALIGN;
    if (direct && write_at(pt->dfd, p, direct, off) != FS_OK) {
        if (errno != EINVAL)
            return FS_EIO;
        direct = 0;
    }
    return write_at(pt->fd, p + direct, len - direct, off + direct);
}

/* Appends "p IDX" to the state once the piece's bytes are in the .part.
 * One write of O_APPEND: lines of concurrent sources never mix. */
static fs_status append_piece_line(const struct partial *pt, uint64_t idx)
{
    char line[32];
    int n = snprintf(line, sizeof line, "p %" PRIu64 "\n", idx);
    ssize_t w = pt->state_fd >= 0 ? write(pt->state_fd, line, (size_t)n) : -1;

    if (w == n)
        return FS_OK;
    if (w >= 0)
        errno = ENOSPC; /* a short write to a regular file: the disk is full */
    else if (pt->state_fd < 0)
        errno = EBADF;
    return FS_EIO;
}

fs_status partial_put_piece(struct partial *pt, uint64_t idx, const void *data, size_t len)
{
    uint64_t off = idx * pt->piece;

    if (pt->version != 2 || idx >= pt->npieces || len != partial_piece_len(pt, idx))
        return FS_EINVAL;
    fs_status st = write_piece(pt, data, len, off);
    if (st == FS_OK)
        st = append_piece_line(pt, idx);
    if (st)
        punch(pt->fd, off, len);
    return st;
}

fs_status partial_read_piece(const struct partial *pt, uint64_t idx, void *buf, size_t len)
{
    uint64_t off = idx * pt->piece;
    size_t direct = 0;
    char *p = buf;

    if (pt->version != 2 || idx >= pt->npieces || len != partial_piece_len(pt, idx))
        return FS_EINVAL;
    if (pt->dfd >= 0 && (uintptr_t)p % PARTIAL_ALIGN == 0 && off % PARTIAL_ALIGN == 0)
        direct = len - len % PARTIAL_ALIGN;
    if (direct && partial_read_at(pt->dfd, p, direct, off) != FS_OK) {
        if (errno != EINVAL)
            return FS_EIO;
        direct = 0; /* no direct reads here after all: through the cache */
    }
    return partial_read_at(pt->fd, p + direct, len - direct, off + direct);
}

/* --- seeding from a local copy (a sync: docs/SYNC.md) --- */

#define SEED_BUF (256u * 1024) /* the pread/pwrite fallback's buffer */

/* Copies [off, off + len) of src to the same offset of the .part by the
 * pread/pwrite loop, for file systems copy_file_range() cannot span.
 * *buf is allocated on first use (SEED_BUF bytes; the caller frees it).
 * FS_OK; FS_ENOTFOUND when src ends before off + len (it shrank); FS_EIO
 * (errno) on a failed read or write. */
static fs_status seed_copy_rw(const struct partial *pt, int src, uint64_t off, uint64_t len,
                              char **buf)
{
    if (!*buf && !(*buf = malloc(SEED_BUF)))
        return FS_ENOMEM;
    while (len > 0) {
        size_t want = len < SEED_BUF ? (size_t)len : SEED_BUF;
        ssize_t r = pread(src, *buf, want, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return FS_EIO;
        if (r == 0)
            return FS_ENOTFOUND;
        if (write_at(pt->fd, *buf, (size_t)r, off) != FS_OK)
            return FS_EIO;
        off += (uint64_t)r;
        len -= (uint64_t)r;
    }
    return FS_OK;
}

/* Copies [off, off + len) of src to the same offset of the .part: in the
 * kernel (copy_file_range(): no user-space copy, a reflink where the file
 * system shares extents), or, once that is refused for this pair of files
 * (*rw set: another file system, an old kernel), by seed_copy_rw().
 * Returns as seed_copy_rw(). */
static fs_status seed_copy(const struct partial *pt, int src, uint64_t off, uint64_t len,
                           int *rw, char **buf)
{
    loff_t in = (loff_t)off, out = (loff_t)off;

    while (!*rw && len > 0) {
        ssize_t r = copy_file_range(src, &in, pt->fd, &out, (size_t)len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
                      errno == EOPNOTSUPP)) {
            *rw = 1; /* and the rest of this piece, from where it stopped */
            break;
        }
        if (r < 0)
            return FS_EIO;
        if (r == 0)
            return FS_ENOTFOUND;
        len -= (uint64_t)r;
    }
    return len > 0 ? seed_copy_rw(pt, src, (uint64_t)in, len, buf) : FS_OK;
}

/* 1 when piece idx of pt and of src have the same length and SHA-256. */
static int seed_same(const struct partial *pt, const unsigned char *list,
                     const struct partial_seed_src *src, uint64_t idx)
{
    uint64_t off = idx * pt->piece;

    if (idx >= src->n || off >= src->size)
        return 0;
    uint64_t mine = src->size - off < src->piece ? src->size - off : src->piece;
    return mine == partial_piece_len(pt, idx) &&
           memcmp(list + idx * PIECES_HASH_LEN, src->list + idx * PIECES_HASH_LEN,
                  PIECES_HASH_LEN) == 0;
}

static fs_status seed_check(const struct partial *pt, uint64_t n,
                            const struct partial_seed_src *src)
{
    struct stat sb;

    if (pt->version != 2 || n != pt->npieces || src->piece != pt->piece ||
        !pieces_size_valid(src->piece) || src->n != pieces_count(src->size, src->piece) ||
        (src->n && !src->list))
        return FS_EINVAL;
    if (fstat(src->fd, &sb) != 0)
        return FS_EIO;
    return S_ISREG(sb.st_mode) ? FS_OK : FS_EINVAL; /* a FIFO would block, a device lie */
}

fs_status partial_seed(struct partial *pt, const unsigned char *list, uint64_t n,
                       const struct partial_seed_src *src, uint64_t *pieces, uint64_t *bytes)
{
    char *buf = NULL;
    int rw = 0;
    fs_status st;

    *pieces = *bytes = 0;
    st = seed_check(pt, n, src);
    for (uint64_t i = 0; st == FS_OK && i < pt->npieces; i++) {
        if (partial_has_piece(pt, i) || !seed_same(pt, list, src, i))
            continue;
        uint64_t off = i * pt->piece, len = partial_piece_len(pt, i);
        st = seed_copy(pt, src->fd, off, len, &rw, &buf);
        if (st == FS_OK)
            st = append_piece_line(pt, i);
        if (st) {
            punch(pt->fd, off, len); /* named nowhere: its room comes back */
            if (st == FS_ENOTFOUND)
                st = FS_OK; /* the local file shrank: M sends this piece instead */
            continue;
        }
        partial_set_piece(pt, i);
        (*pieces)++;
        *bytes += len;
    }
    free(buf);
    return st;
}

static uint64_t chunk_len(const struct partial *pt, uint64_t idx)
{
    uint64_t off = idx * pt->chunk;
    return pt->size - off < pt->chunk ? pt->size - off : pt->chunk;
}

fs_status partial_read_at(int fd, void *dst, size_t n, uint64_t off)
{
    char *buf = dst;

    while (n > 0) {
        ssize_t r = pread(fd, buf, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return FS_EIO;
        buf += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return FS_OK;
}

fs_status partial_check(struct partial *pt, struct hash_md5 *md5, uint64_t *bad)
{
    char *buf;
    uint64_t i;

    *bad = 0;
    if (pt->version == 2)
        return FS_EINVAL; /* no CRCs: the caller checks pieces against the list */
    if (!(buf = malloc(pt->chunk ? pt->chunk : 1)))
        return FS_ENOMEM;
    posix_fadvise(pt->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    for (i = 0; i < pt->have; i++) {
        size_t n = (size_t)chunk_len(pt, i);
        if (partial_read_at(pt->fd, buf, n, i * pt->chunk) != FS_OK ||
            (uint32_t)crc32(0, (const Bytef *)buf, (uInt)n) != pt->crc[i])
            break;
        hash_update(md5, buf, n);
    }
    free(buf);
    if (i < pt->have) {
        *bad = pt->have - i;
        pt->have = i;
        return partial_save(pt);
    }
    return FS_OK;
}

fs_status partial_round(struct partial *pt, uint64_t bytes)
{
    if (pt->version == 2 || bytes == 0 || bytes % pt->chunk != 0)
        return FS_EINVAL;
    uint64_t per = bytes / pt->chunk, keep = pt->have - pt->have % per;
    if (keep == pt->have || pt->have == pt->nchunks) /* a complete file needs nothing */
        return FS_OK;
    pt->have = keep;
    return partial_save(pt);
}

fs_status partial_rechunk(struct partial *pt, uint64_t chunk)
{
    uint64_t old = pt->chunk, bytes = pt->have * old;

    if (chunk == old)
        return FS_OK;
    if (pt->version == 2 || !partial_chunk_valid(chunk) || bytes % chunk != 0 || bytes > pt->size)
        return FS_EINVAL;
    if (pt->size / chunk >= STATE_MAX_CHUNKS)
        return FS_ETOOBIG;
    uint64_t nchunks = pt->size / chunk + (pt->size % chunk != 0), have = bytes / chunk;
    uint32_t *crc = calloc(nchunks ? nchunks : 1, sizeof *crc);
    char *buf = chunk < old && have ? malloc(chunk) : NULL;
    fs_status st = FS_OK;

    if (!crc || (chunk < old && have && !buf)) {
        free(crc);
        return FS_ENOMEM;
    }
    for (uint64_t i = 0; i < have && st == FS_OK; i++) {
        if (chunk > old) { /* whole old chunks: combine their CRCs */
            uint64_t per = chunk / old;
            crc[i] = pt->crc[i * per];
            for (uint64_t k = 1; k < per; k++)
                crc[i] = (uint32_t)crc32_combine(crc[i], pt->crc[i * per + k], (z_off_t)old);
        } else if ((st = partial_read_at(pt->fd, buf, chunk, i * chunk)) == FS_OK) {
            crc[i] = (uint32_t)crc32(0, (const Bytef *)buf, (uInt)chunk);
        }
    }
    free(buf);
    if (st) {
        free(crc);
        return st;
    }
    free(pt->crc);
    pt->crc = crc;
    pt->chunk = chunk;
    pt->nchunks = nchunks;
    pt->have = have;
    return partial_save(pt);
}

static fs_status write_at(int fd, const char *p, size_t len, uint64_t off)
{
    while (len > 0) {
        ssize_t w = pwrite(fd, p, len, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return FS_EIO; /* errno says why */
        if (w == 0) {
            errno = EIO;
            return FS_EIO;
        }
        p += w;
        len -= (size_t)w;
        off += (uint64_t)w;
    }
    return FS_OK;
}

fs_status partial_put(struct partial *pt, uint64_t idx, const void *data, size_t len,
                      uint32_t crc)
{
    const char *p = data;
    uint64_t off = idx * pt->chunk;
    size_t direct = 0;

    if (pt->version == 2 || idx != pt->have || idx >= pt->nchunks || len != chunk_len(pt, idx))
        return FS_EINVAL;
    if (pt->dfd >= 0 && (uintptr_t)p % PARTIAL_ALIGN == 0 && off % PARTIAL_ALIGN == 0)
        direct = len - len % PARTIAL_ALIGN;
    if (direct && write_at(pt->dfd, p, direct, off) != FS_OK) {
        if (errno != EINVAL)
            return FS_EIO;
        close(pt->dfd); /* this file system takes no direct writes after all */
        pt->dfd = -1;
        direct = 0;
    }
    if (write_at(pt->fd, p + direct, len - direct, off + direct) != FS_OK)
        return FS_EIO;
    pt->crc[idx] = crc;
    pt->have = idx + 1;
    char line[48];
    int n = snprintf(line, sizeof line, "c %" PRIu64 " %08" PRIx32 "\n", idx, crc);
    if (pt->state_fd < 0)
        return FS_EIO;
    ssize_t w = write(pt->state_fd, line, (size_t)n);
    if (w != n) {
        if (w >= 0)
            errno = ENOSPC; /* a short write to a regular file: the disk is full */
        return FS_EIO;
    }
    return FS_OK;
}

void partial_writeback(const struct partial *pt, uint64_t idx)
{
    sync_file_range(pt->fd, (off_t)(idx * pt->chunk), (off_t)chunk_len(pt, idx),
                    SYNC_FILE_RANGE_WRITE);
}

fs_status partial_place_at(int from_dir, const char *from, int to_dir, const char *to,
                           int durable)
{
    if (renameat2(from_dir, from, to_dir, to, RENAME_NOREPLACE) < 0)
        return errno == EEXIST ? FS_EEXIST : FS_EIO;
    if (durable) /* the rename itself must survive a crash */
        sync_dir(to_dir);
    return FS_OK;
}

mode_t partial_umask(void)
{
    char line[128];
    unsigned long mask = 077; /* cannot tell: share with nobody */
    FILE *f = fopen("/proc/self/status", "re");

    if (!f)
        return (mode_t)mask;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Umask:", 6) == 0) {
            char *end;
            unsigned long v = strtoul(line + 6, &end, 8);
            if (end != line + 6 && v <= 0777)
                mask = v;
            break;
        }
    fclose(f);
    return (mode_t)mask;
}

/* Removes "<md5>.pieces", the piece list kept beside the partial. */
static void remove_pieces(const struct partial *pt)
{
    char name[MSG_MD5_LEN + sizeof PARTIAL_PIECES];

    snprintf(name, sizeof name, "%s" PARTIAL_PIECES, pt->md5);
    unlinkat(pt->dirfd, name, 0);
}

fs_status partial_finish_at(struct partial *pt, int to_dir, const char *to, int durable)
{
    mode_t mode = pt->has_mode ? pt->mode : 0644;

    /* The holder's permission bits, masked as if this process had created
     * the file with them: the .part was made 0600 while it was incomplete. */
    if (fchmod(pt->fd, mode & 0777 & ~partial_umask()) < 0)
        return FS_EIO;
    if (durable && fsync(pt->fd) < 0)
        return FS_EIO;
    fs_status st = partial_place_at(pt->dirfd, pt->data_name, to_dir, to, durable);
    if (st == FS_OK) {
        unlinkat(pt->dirfd, pt->state_name, 0);
        remove_pieces(pt);
    }
    return st;
}

fs_status partial_trim(struct partial *pt)
{
    uint64_t keep = pt->have * pt->chunk < pt->size ? pt->have * pt->chunk : pt->size;
    if (pt->version == 2)
        return FS_EINVAL;
    return ftruncate(pt->fd, (off_t)keep) == 0 ? FS_OK : FS_EIO;
}

/* Is name "<32 hex digits><suffix>"? */
static int md5_named(const char *name, const char *suffix)
{
    char hex[MSG_MD5_LEN + 1];

    if (strlen(name) != MSG_MD5_LEN + strlen(suffix) || strcmp(name + MSG_MD5_LEN, suffix) != 0)
        return 0;
    memcpy(hex, name, MSG_MD5_LEN);
    hex[MSG_MD5_LEN] = '\0';
    return hash_hex_valid(hex);
}

/* Does state_dir hold "<md5 of name>other_suffix"? */
static int sibling_exists(int dfd, const char *name, const char *other_suffix)
{
    char path[MSG_MD5_LEN + 16];
    struct stat sb;

    snprintf(path, sizeof path, "%.*s%s", MSG_MD5_LEN, name, other_suffix);
    return fstatat(dfd, path, &sb, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Is name "<32 hex digits>.pieces.tmp-..." (pieces_save_at() killed)? */
static int pieces_tmp_named(const char *name)
{
    static const char tail[] = PARTIAL_PIECES ".tmp-";
    char head[MSG_MD5_LEN + sizeof PARTIAL_PIECES];

    if (strlen(name) <= MSG_MD5_LEN + sizeof tail - 1 ||
        strncmp(name + MSG_MD5_LEN, tail, sizeof tail - 1) != 0)
        return 0;
    snprintf(head, sizeof head, "%.*s" PARTIAL_PIECES, MSG_MD5_LEN, name);
    return md5_named(head, PARTIAL_PIECES);
}

long partial_sweep_at(int state_dir)
{
    int fd = fcntl(state_dir, F_DUPFD_CLOEXEC, 0);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    struct dirent *e;
    long removed = 0;

    if (!d) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    rewinddir(d); /* the dup shares its reading position with state_dir */
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        int orphan = md5_named(n, ".state.tmp") ||
                     (md5_named(n, ".state") && !sibling_exists(dirfd(d), n, ".part")) ||
                     (md5_named(n, ".part") && !sibling_exists(dirfd(d), n, ".state")) ||
                     (md5_named(n, PARTIAL_PIECES) && !sibling_exists(dirfd(d), n, ".state")) ||
                     pieces_tmp_named(n);
        if (orphan && unlinkat(dirfd(d), n, 0) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}

void partial_discard(struct partial *pt)
{
    unlinkat(pt->dirfd, pt->data_name, 0);
    unlinkat(pt->dirfd, pt->state_name, 0);
    remove_pieces(pt);
}

void partial_close(struct partial *pt)
{
    if (!pt)
        return;
    if (pt->fd >= 0)
        close(pt->fd);
    if (pt->dfd >= 0)
        close(pt->dfd);
    if (pt->state_fd >= 0)
        close(pt->state_fd);
    if (pt->dirfd >= 0)
        close(pt->dirfd);
    free(pt->crc);
    free(pt->bits);
    free(pt);
}

long partial_list_at(int state_dir, struct partial_info **out)
{
    int fd = fcntl(state_dir, F_DUPFD_CLOEXEC, 0);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    struct dirent *e;
    size_t n = 0, cap = 0;

    *out = NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    rewinddir(d); /* the dup shares its reading position with state_dir */
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        char *text;
        size_t len;
        struct partial pt;
        if (l != MSG_MD5_LEN + 6 || strcmp(e->d_name + MSG_MD5_LEN, ".state") != 0)
            continue;
        memset(&pt, 0, sizeof pt);
        if (read_small(dirfd(d), e->d_name, &text, &len) != FS_OK)
            continue;
        fs_status st = partial_parse_state(text, len, &pt);
        free(text);
        if (st)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            struct partial_info *bigger = realloc(*out, cap * sizeof **out);
            if (!bigger) {
                free(pt.crc);
                free(pt.bits);
                break;
            }
            *out = bigger;
        }
        struct partial_info *pi = &(*out)[n++];
        memcpy(pi->name, pt.name, sizeof pi->name);
        memcpy(pi->md5, pt.md5, sizeof pi->md5);
        pi->size = pt.size;
        pi->have_bytes = pt.have ? (pt.have - 1) * pt.chunk + chunk_len(&pt, pt.have - 1) : 0;
        if (pt.version == 2) /* the pieces it names, wherever they are */
            pi->have_bytes = pt.nhave * pt.piece -
                (partial_has_piece(&pt, pt.npieces - 1) ? pt.piece -
                 partial_piece_len(&pt, pt.npieces - 1) : 0);
        pi->holder = pt.holder;
        free(pt.crc);
        free(pt.bits);
    }
    closedir(d);
    return (long)n;
}

long partial_list(const char *state_dir, struct partial_info **out)
{
    /* The state folder's own name is never a link (O_NOFOLLOW). */
    int fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    long n;

    *out = NULL;
    if (fd < 0)
        return 0;
    n = partial_list_at(fd, out);
    close(fd);
    return n;
}
