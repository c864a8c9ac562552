/* pieces.c - per-piece SHA-256, the root over the list, and list files
 * (format and reasons in pieces.h and docs/DESIGN.md). */
#include "floodshare/pieces.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

static const char hexdig[] = "0123456789abcdef";

int pieces_size_valid(uint64_t piece)
{
    return piece >= PIECES_SIZE_MIN && piece <= PIECES_SIZE_MAX && (piece & (piece - 1)) == 0;
}

uint64_t pieces_size_for(uint64_t size)
{
    uint64_t piece = PIECES_SIZE;

    while (pieces_count(size, piece) > PIECES_MAX_COUNT && piece < PIECES_SIZE_MAX)
        piece *= 2;
    return pieces_count(size, piece) > PIECES_MAX_COUNT ? 0 : piece;
}

uint64_t pieces_count(uint64_t size, uint64_t piece)
{
    return size / piece + (size % piece != 0);
}

uint64_t pieces_list_len(uint64_t size, uint64_t piece, int *ok)
{
    uint64_t n = pieces_count(size, piece);

    *ok = n <= PIECES_LIST_MAX / PIECES_HASH_LEN;
    return *ok ? n * PIECES_HASH_LEN : 0;
}

int pieces_root_valid(const char *s)
{
    if (!s)
        return 0;
    for (size_t i = 0; i < PIECES_ROOT_HEX; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return s[PIECES_ROOT_HEX] == '\0';
}

static void to_hex(const unsigned char *md, size_t n, char *hex)
{
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = hexdig[md[i] >> 4];
        hex[2 * i + 1] = hexdig[md[i] & 15];
    }
    hex[2 * n] = '\0';
}

/* The SHA-256 of head[0..hl) followed by n digests of PIECES_HASH_LEN
 * bytes, as hex into root: both roots are made this way. */
static fs_status digest_root(const char *head, int hl, const unsigned char *list, uint64_t n,
                             char root[PIECES_ROOT_HEX + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    fs_status st = FS_EIO;
    EVP_MD_CTX *ctx;

    if (!(ctx = EVP_MD_CTX_new()))
        return FS_ENOMEM;
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
        EVP_DigestUpdate(ctx, head, (size_t)hl) == 1 &&
        (n == 0 || EVP_DigestUpdate(ctx, list, (size_t)(n * PIECES_HASH_LEN)) == 1) &&
        EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == PIECES_HASH_LEN) {
        to_hex(md, mdlen, root);
        st = FS_OK;
    }
    EVP_MD_CTX_free(ctx);
    return st;
}

fs_status pieces_root(uint64_t size, uint64_t piece, const unsigned char *list, uint64_t n,
                      char root[PIECES_ROOT_HEX + 1])
{
    char head[PIECES_HEADER_MAX];

    root[0] = '\0';
    if (!pieces_size_valid(piece) || n != pieces_count(size, piece))
        return FS_EINVAL;
    int hl = snprintf(head, sizeof head, "floodshare-pieces 1 %" PRIu64 " %" PRIu64 "\n", size,
                      piece);
    return digest_root(head, hl, list, n, root);
}

fs_status pieces_folder_root(const unsigned char *roots, uint64_t n,
                             char root[PIECES_ROOT_HEX + 1])
{
    char head[PIECES_HEADER_MAX];

    root[0] = '\0';
    int hl = snprintf(head, sizeof head, PIECES_ROOTS_MAGIC " %" PRIu64 "\n", n);
    return digest_root(head, hl, roots, n, root);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int pieces_root_bin(const char *hex, unsigned char out[PIECES_HASH_LEN])
{
    if (!pieces_root_valid(hex))
        return -1;
    for (size_t i = 0; i < PIECES_HASH_LEN; i++)
        out[i] = (unsigned char)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
    return 0;
}

static fs_status fail(const char **why, const char *text, fs_status st)
{
    *why = text;
    return st;
}

fs_status pieces_check_list(uint64_t size, uint64_t piece, const unsigned char *list, size_t len,
                            const char *root, const char **why)
{
    char got[PIECES_ROOT_HEX + 1];
    int ok;

    *why = NULL;
    if (!pieces_size_valid(piece))
        return fail(why, "piece size is not a power of two from 64 KiB to 4 MiB", FS_EPROTO);
    if (!pieces_root_valid(root))
        return fail(why, "root is not 64 lower-case hex digits", FS_EPROTO);
    uint64_t want = pieces_list_len(size, piece, &ok);
    if (!ok)
        return fail(why, "the list of a file this large exceeds 32 MiB", FS_ETOOBIG);
    if (len != want)
        return fail(why, "the list has the wrong length for the size", FS_EPROTO);
    fs_status st = pieces_root(size, piece, list, want / PIECES_HASH_LEN, got);
    if (st)
        return fail(why, "cannot hash the list", st);
    /* Not secret, but constant time costs nothing here. */
    if (CRYPTO_memcmp(got, root, PIECES_ROOT_HEX) != 0)
        return fail(why, "the list does not match the root", FS_EPROTO);
    return FS_OK;
}

int pieces_piece_ok(const unsigned char *list, uint64_t n, uint64_t idx, const void *data,
                    size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;

    if (idx >= n || EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
        mdlen != PIECES_HASH_LEN)
        return 0;
    return CRYPTO_memcmp(md, list + idx * PIECES_HASH_LEN, PIECES_HASH_LEN) == 0;
}

/* --- streaming ------------------------------------------------------------ */

fs_status pieces_hash_init(struct pieces_hash *ph, uint64_t piece)
{
    memset(ph, 0, sizeof *ph);
    if (!pieces_size_valid(piece))
        return FS_EINVAL;
    ph->piece = piece;
    if (!(ph->ctx = EVP_MD_CTX_new()))
        return FS_ENOMEM;
    if (EVP_DigestInit_ex(ph->ctx, EVP_sha256(), NULL) != 1) {
        pieces_hash_abort(ph);
        return FS_EIO;
    }
    return FS_OK;
}

/* Ends the piece in progress into the list and starts the next. */
static void close_piece(struct pieces_hash *ph)
{
    unsigned mdlen = 0;

    if (ph->n == ph->cap) {
        uint64_t cap = ph->cap ? ph->cap * 2 : 64;
        unsigned char *v;
        if (cap * PIECES_HASH_LEN > PIECES_LIST_MAX)
            cap = PIECES_LIST_MAX / PIECES_HASH_LEN;
        if (cap <= ph->n || !(v = realloc(ph->list, cap * PIECES_HASH_LEN))) {
            ph->failed = 1; /* too large a file, or no memory: no root */
            return;
        }
        ph->list = v;
        ph->cap = cap;
    }
    if (EVP_DigestFinal_ex(ph->ctx, ph->list + ph->n * PIECES_HASH_LEN, &mdlen) != 1 ||
        mdlen != PIECES_HASH_LEN || EVP_DigestInit_ex(ph->ctx, EVP_sha256(), NULL) != 1) {
        ph->failed = 1;
        return;
    }
    ph->n++;
    ph->in_piece = 0;
}

void pieces_hash_update(struct pieces_hash *ph, const void *data, size_t len)
{
    const unsigned char *p = data;

    while (len > 0 && !ph->failed && ph->ctx) {
        uint64_t room = ph->piece - ph->in_piece;
        size_t take = len < room ? len : (size_t)room;
        if (EVP_DigestUpdate(ph->ctx, p, take) != 1) {
            ph->failed = 1;
            return;
        }
        ph->in_piece += take;
        ph->total += take;
        p += take;
        len -= take;
        /* A full piece is closed at once; a short last one at final. */
        if (ph->in_piece == ph->piece)
            close_piece(ph);
    }
}

fs_status pieces_hash_final(struct pieces_hash *ph, unsigned char **list, uint64_t *n,
                            char root[PIECES_ROOT_HEX + 1])
{
    fs_status st;

    *list = NULL;
    *n = 0;
    root[0] = '\0';
    if (ph->ctx && !ph->failed && ph->in_piece > 0)
        close_piece(ph);
    if (!ph->ctx || ph->failed) {
        st = ph->total / ph->piece >= PIECES_LIST_MAX / PIECES_HASH_LEN ? FS_ETOOBIG : FS_EIO;
        pieces_hash_abort(ph);
        return st;
    }
    st = pieces_root(ph->total, ph->piece, ph->list, ph->n, root);
    if (st == FS_OK) {
        *list = ph->list;
        *n = ph->n;
        ph->list = NULL;
    }
    pieces_hash_abort(ph);
    return st;
}

void pieces_hash_abort(struct pieces_hash *ph)
{
    EVP_MD_CTX_free(ph->ctx);
    free(ph->list);
    ph->ctx = NULL;
    ph->list = NULL;
    ph->n = ph->cap = 0;
}

/* --- list files ----------------------------------------------------------- */

/* The decimal at *p, then sep; moves *p past both. 0 or -1. */
static int parse_u64(const char **p, const char *end, char sep, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;

    if (s >= end || *s < '0' || *s > '9' || (*s == '0' && s + 1 < end && s[1] != sep))
        return -1;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (s >= end || *s != sep)
        return -1;
    *p = s + 1;
    *out = v;
    return 0;
}

fs_status pieces_file_parse(const unsigned char *buf, size_t len, struct pieces_file *out,
                            const char **why)
{
    const char *s = (const char *)buf, *nl, *p;
    size_t scan = len < PIECES_HEADER_MAX ? len : PIECES_HEADER_MAX;

    memset(out, 0, sizeof *out);
    *why = NULL;
    nl = scan ? memchr(s, '\n', scan) : NULL;
    if (!nl)
        return fail(why, "no header line", FS_EPROTO);
    size_t ml = strlen(PIECES_MAGIC);
    if ((size_t)(nl - s) < ml + 1 || memcmp(s, PIECES_MAGIC " ", ml + 1) != 0)
        return fail(why, "not a piece list of version 1", FS_EPROTO);
    p = s + ml + 1;
    if (parse_u64(&p, nl, ' ', &out->size) || parse_u64(&p, nl, ' ', &out->piece))
        return fail(why, "malformed header", FS_EPROTO);
    if (nl - p != PIECES_ROOT_HEX)
        return fail(why, "root is not 64 lower-case hex digits", FS_EPROTO);
    memcpy(out->root, p, PIECES_ROOT_HEX);
    out->root[PIECES_ROOT_HEX] = '\0';
    size_t head = (size_t)(nl - s) + 1;
    out->list = buf + head;
    fs_status st = pieces_check_list(out->size, out->piece, out->list, len - head, out->root, why);
    if (st) {
        out->list = NULL;
        return st;
    }
    out->n = (len - head) / PIECES_HASH_LEN;
    return FS_OK;
}

static int write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;

    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

fs_status pieces_save_at(int dirfd, const char *name, uint64_t size, uint64_t piece,
                         const char *root, const unsigned char *list, uint64_t n)
{
    static atomic_uint seq;
    char tmp[160], head[PIECES_HEADER_MAX];
    int hl = snprintf(head, sizeof head, PIECES_MAGIC " %" PRIu64 " %" PRIu64 " %s\n", size,
                      piece, root);
    int fd, err = 0;

    if (hl < 0 || (size_t)hl >= sizeof head || !pieces_root_valid(root)) {
        errno = EINVAL;
        return FS_EIO;
    }
    snprintf(tmp, sizeof tmp, "%.100s.tmp-%ld-%u", name, (long)getpid(), atomic_fetch_add(&seq, 1));
    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return FS_EIO;
    if (write_all(fd, head, (size_t)hl) || write_all(fd, list, (size_t)(n * PIECES_HASH_LEN)))
        err = errno ? errno : EIO;
    if (close(fd) != 0 && !err)
        err = errno;
    if (!err && renameat(dirfd, tmp, dirfd, name) != 0)
        err = errno;
    if (err) {
        unlinkat(dirfd, tmp, 0);
        errno = err;
        return FS_EIO;
    }
    return FS_OK;
}

fs_status pieces_load_at(int dirfd, const char *name, uint64_t size, const char *root,
                         unsigned char **list, uint64_t *n, uint64_t *piece, const char **why)
{
    struct pieces_file pf;
    struct stat sb;
    unsigned char *buf = NULL;
    fs_status st = FS_EIO;
    size_t got = 0;
    int fd;

    *list = NULL;
    *n = 0;
    *piece = 0;
    *why = NULL;
    fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? FS_ENOTFOUND : FS_EIO;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        *why = "not a regular file";
        goto out;
    }
    /* Bounded before anything is read: header plus the largest list. */
    if ((uint64_t)sb.st_size > PIECES_HEADER_MAX + (uint64_t)PIECES_LIST_MAX) {
        *why = "larger than any list";
        st = FS_ETOOBIG;
        goto out;
    }
    if (!(buf = malloc((size_t)sb.st_size + 1))) {
        st = FS_ENOMEM;
        goto out;
    }
    while (got < (size_t)sb.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)sb.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    st = pieces_file_parse(buf, got, &pf, why);
    if (st == FS_OK && (pf.size != size || strcmp(pf.root, root) != 0)) {
        *why = "the list is of another file";
        st = FS_EPROTO;
    }
    if (st == FS_OK) {
        size_t bytes = (size_t)(pf.n * PIECES_HASH_LEN);
        memmove(buf, pf.list, bytes); /* the list moves to the front: one allocation */
        *list = buf;
        buf = NULL;
        *n = pf.n;
        *piece = pf.piece;
    }
out:
    free(buf);
    close(fd);
    return st;
}
