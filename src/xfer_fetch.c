/* xfer_fetch.c - the requester side: fetch a hit into the share through a
 * resumable partial (files, large folders file by file) or a zip archive,
 * verify it, and rename it into place. */
#include "floodshare/xfer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <zlib.h>

#include "floodshare/hash.h"
#include "floodshare/cfg.h"
#include "floodshare/log.h"
#include "floodshare/manifest.h"
#include "floodshare/net.h"
#include "floodshare/partial.h"
#include "floodshare/pieces.h"
#include "floodshare/rate.h"
#include "floodshare/node.h"
#include "floodshare/stats.h"
#include "floodshare/share.h"
#include "floodshare/statedir.h"
#include "floodshare/tls.h"
#include "floodshare/tpool.h"
#include "floodshare/trace.h"
#include "floodshare/zipio.h"
#include "xfer_int.h"

/* Bytes of the regular files below the folder open as fd (closed here),
 * links not followed, at most `depth` levels down. */
static uint64_t staged_bytes(int fd, unsigned depth)
{
    DIR *d = fdopendir(fd);
    struct dirent *e;
    uint64_t sum = 0;

    if (!d) {
        close(fd);
        return 0;
    }
    while ((e = readdir(d)) != NULL) {
        struct stat sb;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (S_ISREG(sb.st_mode))
            sum += (uint64_t)sb.st_size;
        else if (S_ISDIR(sb.st_mode) && depth > 0) {
            int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0)
                sum += staged_bytes(sub, depth - 1);
        }
    }
    closedir(d);
    return sum;
}

uint64_t xfer_partial_bytes(const char *share_dir, const char *name, uint64_t size,
                            const char *md5)
{
    char staging[MSG_MD5_LEN + 8];
    struct partial_info *list = NULL;
    uint64_t have = 0;
    int root, sfd;

    if (!hash_hex_valid(md5))
        return 0;
    /* Only counts what is waiting, for a progress line: read below the
     * share's folder by descriptors, the state folder never through a link. */
    root = open(share_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return 0;
    sfd = openat(root, SHARE_STATE_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    close(root);
    if (sfd < 0)
        return 0;
    /* A large folder being fetched file by file: what is staged so far. */
    snprintf(staging, sizeof staging, "d-%s", md5);
    int fd = openat(sfd, staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        close(sfd);
        return staged_bytes(fd, 64);
    }
    long n = partial_list_at(sfd, &list);
    close(sfd);
    for (long i = 0; i < n; i++)
        if (list[i].size == size && strcmp(list[i].md5, md5) == 0 &&
            strcmp(list[i].name, name) == 0)
            have = list[i].have_bytes;
    free(list);
    return have;
}

/* The requester side: started, progress, done or failed. */
static void down_event(struct xfer_plane *x, enum trace_type type, const struct msg *hit,
                       uint64_t pos, fs_status st, const char *why)
{
    struct trace_event ev;

    trace_init_event(&ev, type, hit->qid);
    ev.role = TR_ROLE_REQUESTER;
    trace_set(ev.name, sizeof ev.name, hit->name);
    ev.from = hit->holder;
    ev.from_peer = hit->peer_id;
    ev.holder = hit->peer_id;
    ev.size = hit->size;
    ev.bytes = pos;
    trace_set(ev.md5, sizeof ev.md5, hit->md5);
    if (type == TR_TRANSFER_FAILED) {
        trace_set(ev.reason, sizeof ev.reason, st == FS_ECANCELED ? "cancelled"
                                                                  : fs_status_name(st));
        trace_set(ev.detail, sizeof ev.detail, why);
    }
    trace_emit(x->trace, &ev);
}

/* --- requester side --- */




/* Records why this holder failed (truncated to fit) and returns st. */
static fs_status fail(struct fetch *f, fs_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static fs_status fail(struct fetch *f, fs_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->res->why, sizeof f->res->why, fmt, ap);
    va_end(ap);
    return st;
}

/* Like fail(), for a failure on this side (the disk): another holder
 * would fail the same way, so the get stops trying (res->local). */
static fs_status fail_local(struct fetch *f, fs_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static fs_status fail_local(struct fetch *f, fs_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->res->why, sizeof f->res->why, fmt, ap);
    va_end(ap);
    f->res->local = 1;
    return st;
}

/* Like fail(), for a holder cut off because of what it sent: wrong bytes,
 * a stall, or bytes beyond what it announced. Counts it (holders_cut) and
 * logs it; the download then moves on to the next holder. */
static fs_status cut(struct fetch *f, fs_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static fs_status cut(struct fetch *f, fs_status st, const char *fmt, ...)
{
    char h[ADDR_STR_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(f->res->why, sizeof f->res->why, fmt, ap);
    va_end(ap);
    f->cuts++;
    stats_inc(f->x->stats, holders_cut);
    log_msg(L_WARN, "cut off holder %s (peer %u): %s", addr_format(&f->hit->holder, h),
            f->hit->peer_id, f->res->why);
    return st;
}

static int cancelled(const struct fetch *f)
{
    return node_stopping(f->x->node) ||
           (f->watch && f->watch->cancelled && f->watch->cancelled(f->watch->ctx));
}

/* Reports progress at most every 200 ms (and always when force is set). */
static void report(struct fetch *f, uint64_t done, int force)
{
    uint64_t now = net_now_ms();

    xfer_table_set(f->x, f->slot, done);
    f->pos = done;
    if (trace_listening(f->x->trace) && now - f->last_trace >= TRACE_PROGRESS_MS) {
        f->last_trace = now;
        down_event(f->x, TR_TRANSFER_PROGRESS, f->hit, done, FS_OK, NULL);
    }
    if (!f->watch || !f->watch->progress || (!force && now - f->last_report < 200))
        return;
    double dt = (double)(now - f->last_report) / 1000.0;
    struct xfer_event ev = {
        .name = f->hit->name,
        .done = done,
        .total = f->hit->size,
        .resumed_from = f->res->resumed_from,
        .rate = dt > 0 && done >= f->last_done ? (double)(done - f->last_done) / dt : 0,
        .peer = f->hit->peer_id,
        .holder = &f->hit->holder,
        .sources = f->sources,
    };
    f->watch->progress(f->watch->ctx, &ev);
    f->last_report = now;
    f->last_done = done;
}

static void note_first_byte(struct fetch *f)
{
    if (f->res->ttfb == 0)
        f->res->ttfb = (double)(net_now_ms() - f->t0) / 1000.0;
}

static void disconnect(struct fetch *f, struct conn *c);

static fs_status connect_holder(struct fetch *f, struct conn *c)
{
    const struct cfg *cf = node_cfg_get(f->x->node);
    int sock;

    /* From the address this peer advertises: upload slots are per address. */
    int connect_ms = (int)cf->connect_timeout_ms;
    fs_status st = net_connect_tcp_from(&f->hit->holder, cf->host, connect_ms, &sock);
    node_cfg_put(cf);
    if (st)
        return fail(f, st, "cannot connect to the holder: %s", fs_strerror(st));
    node_track(f->x->node, sock);
    conn_init(c, sock, node_io_timeout_ms(f->x->node));
    struct tls_ctx *tls = node_tls(f->x->node);
    if (!tls)
        return FS_OK;
    struct ssl_st *ssl = tls_new_ssl(tls, sock, 0);
    if (ssl) {
        conn_set_tls(c, ssl);
        tls_read_ahead(ssl); /* bodies: fewer, larger reads */
        st = conn_handshake(c, connect_ms); /* connecting includes proving who we are */
    }
    if (!ssl || st) {
        const char *why = !ssl ? "cannot start TLS" : st == FS_ETIMEDOUT
                                                       ? "no answer in time" : tls_last_error();
        char h[ADDR_STR_MAX];
        stats_inc(f->x->stats, auth_failed);
        log_msg(L_INFO, "connection to %s: TLS handshake failed (%s): closed",
                addr_format(&f->hit->holder, h), why);
        disconnect(f, c);
        return fail(f, FS_EAUTH, "the holder failed the TLS check: %s", why);
    }
    return FS_OK;
}

static void disconnect(struct fetch *f, struct conn *c)
{
    node_untrack(f->x->node, c->fd);
    conn_close(c);
}

/* Reads the reply to REQUEST, FETCH or LIST: FS_OK with *m, or a failure
 * with res->why; a holder that does not know FETCH or LIST gives
 * FS_ENOTSUP; one with no upload slot free, FS_EBUSY and res->retry_ms.
 * The reply must describe the item asked for: md5, and size
 * unless it is a MANIFEST. */
static fs_status read_reply(struct fetch *f, struct conn *c, struct msg *m, enum msg_type want,
                            uint64_t size, const char *md5)
{
    const char *why = NULL;
    fs_status st = conn_read_msg(c, m, c->timeout_ms, &why);

    if (st == FS_EPROTO)
        return cut(f, st, "holder sent a malformed reply: %s", why);
    if (st == FS_ETIMEDOUT)
        return cut(f, st, "holder stalled: no reply within %d ms", c->timeout_ms);
    if (st)
        return fail(f, st, "no reply from the holder: %s", fs_strerror(st));
    if (m->type == MSG_BUSY) {
        f->res->retry_ms = (unsigned)m->retry;
        return fail(f, FS_EBUSY, "holder busy: every upload slot it has is taken; it asks to "
                    "be tried again in %u ms", f->res->retry_ms);
    }
    if (m->type == MSG_ERROR && want != MSG_ITEM && strcmp(m->code, "unknown") == 0)
        return fail(f, FS_ENOTSUP, "holder does not know %s",
                    want == MSG_RANGE      ? "FETCH"
                    : want == MSG_HASHLIST ? "HASHES"
                                           : "LIST");
    if (m->type == MSG_ERROR)
        return fail(f, FS_EREFUSED, "holder refused: %s", m->text);
    if (m->type != want)
        return cut(f, FS_EPROTO, "holder sent %s instead of %s", msg_type_name(m->type),
                   msg_type_name(want));
    if ((want != MSG_MANIFEST && m->size != size) || strcmp(m->md5, md5) != 0 ||
        (want == MSG_ITEM && m->kind != f->hit->kind))
        return cut(f, FS_EMISMATCH, "holder announced another item than it found");
    return FS_OK;
}

/* --- files: FETCH, RANGE, DATA frames into a resumable partial --- */

/* The receiving side of a file runs as two threads, so that MD5 (the
 * slowest step, ~0.9 GB/s) overlaps with everything else: the connection's
 * thread reads each DATA frame, checks its CRC and writes it into the
 * partial; a hasher thread feeds the chunks, in order, to the running MD5
 * and starts their writeback to disk.
 * They pass chunk buffers through a small ring (PIPE_DEPTH chunks: memory
 * stays bounded). Writing stays with the reader so that the two threads'
 * work is about even (profiling showed MD5 plus pwrite on one thread to be
 * the bottleneck). */
#define PIPE_DEPTH 3

struct pipe_slot {
    char *buf;
    uint64_t idx;
    size_t len;
    uint32_t crc;
};

/* lock guards everything below it; cond signals any change. md5 belongs
 * to the hasher thread while it runs; pt is only read by it. */
struct pipeline {
    struct hash_md5 *md5;
    const struct partial *pt;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct pipe_slot queue[PIPE_DEPTH]; /* full chunks, FIFO */
    unsigned head, count;
    char *spare[PIPE_DEPTH]; /* empty buffers */
    unsigned nspare;
    int closed; /* the reader will queue nothing more */
};

static void *pipe_hasher(void *arg)
{
    struct pipeline *pl = arg;

    pthread_mutex_lock(&pl->lock);
    for (;;) {
        while (pl->count == 0 && !pl->closed)
            pthread_cond_wait(&pl->cond, &pl->lock);
        if (pl->count == 0)
            break;
        struct pipe_slot sl = pl->queue[pl->head];
        pthread_mutex_unlock(&pl->lock);
        hash_update(pl->md5, sl.buf, sl.len);
        partial_writeback(pl->pt, sl.idx); /* here, not in the reader: it can block */
        pthread_mutex_lock(&pl->lock);
        pl->head = (pl->head + 1) % PIPE_DEPTH;
        pl->count--;
        pl->spare[pl->nspare++] = sl.buf;
        pthread_cond_broadcast(&pl->cond);
    }
    pthread_mutex_unlock(&pl->lock);
    return NULL;
}

/* An empty buffer for the reader (waits for the hasher to free one). */
static char *pipe_take(struct pipeline *pl)
{
    pthread_mutex_lock(&pl->lock);
    while (pl->nspare == 0)
        pthread_cond_wait(&pl->cond, &pl->lock);
    char *buf = pl->spare[--pl->nspare];
    pthread_mutex_unlock(&pl->lock);
    return buf;
}

static void pipe_give(struct pipeline *pl, char *buf, int queue, const struct pipe_slot *sl)
{
    pthread_mutex_lock(&pl->lock);
    if (queue) {
        pl->queue[(pl->head + pl->count) % PIPE_DEPTH] = *sl;
        pl->count++;
    } else {
        pl->spare[pl->nspare++] = buf;
    }
    pthread_cond_broadcast(&pl->cond);
    pthread_mutex_unlock(&pl->lock);
}

/* Reads n body bytes into buf, all of them before deadline (net_now_ms()),
 * each wait also bounded by c->timeout_ms. *done gets the bytes read;
 * *late is set when it was the deadline, not one wait, that ran out. */
static fs_status read_body_by(struct conn *c, char *buf, size_t n, uint64_t deadline,
                              size_t *done, int *late)
{
    int io = c->timeout_ms;
    fs_status st = FS_OK;

    *done = 0;
    *late = 0;
    while (*done < n && st == FS_OK) {
        uint64_t now = net_now_ms(), left = now < deadline ? deadline - now : 0;
        size_t got = 0;
        if (left == 0) {
            *late = 1;
            st = FS_ETIMEDOUT;
            break;
        }
        c->timeout_ms = left < (uint64_t)io ? (int)left : io;
        st = conn_read_body_some(c, buf + *done, n - *done, &got);
        if (st == FS_ETIMEDOUT && left < (uint64_t)io)
            *late = 1;
        *done += got;
    }
    c->timeout_ms = io;
    return st;
}

/* read_body_by() in pieces taken from the node's download bucket first
 * (download_rate, shared by every download). Time asleep there is our own
 * doing, not the holder's slowness: the frame's deadline moves by it.
 * FS_ECANCELED when the peer stops while it waits; what a failed read did
 * not use goes back to the bucket. */
static fs_status read_body_rated(struct fetch *f, struct conn *c, char *buf, size_t n,
                                 uint64_t deadline, size_t *done, int *late)
{
    struct rate *r = node_download_rate(f->x->node);

    *done = 0;
    *late = 0;
    while (*done < n) {
        size_t piece = rate_chunk(r, n - *done), got = 0;
        uint64_t waited;
        fs_status st = rate_take(r, piece, -1, &waited);
        if (st)
            return st;
        deadline += waited;
        stats_add(f->x->stats, download_wait_ms, waited);
        st = read_body_by(c, buf + *done, piece, deadline, &got, late);
        *done += got;
        if (st) {
            rate_refund(r, piece - got);
            return st;
        }
    }
    return FS_OK;
}

/* Reads one DATA frame for chunk idx into buf and checks its CRC (unless
 * hashed: the piece hashes check it, see below). A holder
 * that sends anything else, stalls (no byte for io_timeout_ms), or takes
 * longer than XFER_FRAME_TIMEOUTS io timeouts for the whole frame (a
 * trickle) is cut off. The frame's length is checked before its body is
 * read, so a body that never ends is never read. */
static fs_status read_frame(struct fetch *f, struct conn *c, uint64_t idx, uint64_t size,
                            uint64_t want, char *buf, uint32_t *crc, int hashed)
{
    struct msg d;
    const char *why = NULL;
    unsigned long long off = idx * size, chunk = idx;
    uint64_t deadline = net_now_ms() + (uint64_t)c->timeout_ms * XFER_FRAME_TIMEOUTS;
    size_t done = 0;
    int late = 0;
    fs_status st = conn_read_msg(c, &d, c->timeout_ms, &why);

    if (st == FS_OK && d.type != MSG_DATA)
        return cut(f, FS_EPROTO, "holder sent %s where DATA for chunk %llu was due",
                   msg_type_name(d.type), chunk);
    if (st == FS_OK && d.idx != idx)
        return cut(f, FS_EPROTO, "holder sent chunk %llu where chunk %llu was due",
                   (unsigned long long)d.idx, chunk);
    if (st == FS_OK && d.len != want)
        return cut(f, FS_ETOOBIG, "holder announced %llu bytes for chunk %llu, which has %llu",
                   (unsigned long long)d.len, chunk, (unsigned long long)want);
    if (st == FS_OK)
        st = read_body_rated(f, c, buf, (size_t)want, deadline, &done, &late);
    if (st == FS_ETIMEDOUT && late)
        return cut(f, st, "holder too slow: chunk %llu not complete within %d ms (%zu of %llu "
                   "bytes)", chunk, c->timeout_ms * XFER_FRAME_TIMEOUTS, done,
                   (unsigned long long)want);
    if (st == FS_ETIMEDOUT)
        return cut(f, st, "holder stalled: nothing for %d ms at byte %llu", c->timeout_ms,
                   off + done);
    if (st == FS_EPROTO)
        return cut(f, st, "holder sent a malformed frame at byte %llu: %s", off,
                   why ? why : fs_strerror(st));
    if (st == FS_ECLOSED)
        return fail(f, st, "holder closed the connection at byte %llu", off + done);
    if (st == FS_ECANCELED)
        return fail(f, st, "cancelled at byte %llu", off + done);
    if (st)
        return fail(f, st, "transfer interrupted at byte %llu: %s", off + done, fs_strerror(st));
    note_first_byte(f);
    /* hashed: every byte of this frame is about to be checked against its
     * piece's SHA-256 (check_pieces()), which proves more than the CRC, so
     * the CRC the frame announces is recorded as it is instead of being
     * recomputed: zlib's CRC-32 (~500 MB/s here) was the receiving thread's
     * costliest step. A wrong one only makes a resume fetch that chunk
     * again (partial_check()). */
    if (hashed) {
        *crc = d.crc;
        return FS_OK;
    }
    *crc = (uint32_t)crc32(0, (const Bytef *)buf, (uInt)want);
    if (*crc != d.crc)
        return cut(f, FS_EMISMATCH, "chunk %llu failed its CRC check", chunk);
    return FS_OK;
}

/* The hasher runs MD5 and sync_file_range on buffers it is handed: a few
 * KB of stack (gcc -fstack-usage: pipe_hasher 64 bytes, plus OpenSSL's MD5
 * and the syscall), so it gets XFER_HASHER_STACK, not glibc's 8 MiB. */
#define XFER_HASHER_STACK (128u * 1024 * TPOOL_STACK_SCALE)

int xfer_start_thread(pthread_t *t, size_t stack, void *(*fn)(void *), void *arg)
{
    pthread_attr_t at;
    int rc = pthread_attr_init(&at);

    if (rc != 0)
        return rc;
    rc = pthread_attr_setstacksize(&at, stack);
    if (rc == 0)
        rc = pthread_create(t, &at, fn, arg);
    pthread_attr_destroy(&at);
    return rc;
}

/* Checks every piece in a frame of want bytes at byte off against its
 * hash, before the frame is written: frames are whole pieces (accept_chunk()
 * made the chunk a multiple of the piece size), so a piece is complete the
 * moment its frame is. A piece that fails is counted (bad_chunks) and the
 * holder cut: nothing of the frame reaches the partial, and the next holder
 * resumes at this piece. */
static fs_status check_pieces(struct fetch *f, const struct piece_list *pl, uint64_t off,
                              const char *buf, uint64_t want)
{
    if (!pl->list)
        return FS_OK;
    for (uint64_t at = 0; at < want; at += pl->piece) {
        uint64_t len = want - at < pl->piece ? want - at : pl->piece;
        uint64_t idx = (off + at) / pl->piece;
        if (!pieces_piece_ok(pl->list, pl->n, idx, buf + at, (size_t)len)) {
            stats_inc(f->x->stats, bad_chunks);
            return cut(f, FS_EMISMATCH, "piece %llu (bytes %llu..%llu) failed its SHA-256 check: "
                       "discarded", (unsigned long long)idx, (unsigned long long)(off + at),
                       (unsigned long long)(off + at + len));
        }
    }
    return FS_OK;
}

/* Hands a checked frame (chunk idx, want bytes in buf, its crc) to the
 * pipeline: the partial gets it, the hasher's MD5 follows. */
static fs_status put_frame(struct fetch *f, struct partial *pt, struct pipeline *pl,
                           struct pipe_slot *sl)
{
    uint64_t off = sl->idx * pt->chunk;
    fs_status st = partial_put(pt, sl->idx, sl->buf, sl->len, sl->crc);

    if (st != FS_OK)
        fail_local(f, st, "cannot write the download into %s/%s: %s", f->share,
                   SHARE_STATE_DIR, strerror(errno));
    pipe_give(pl, sl->buf, st == FS_OK, sl);
    if (st)
        return st;
    f->res->bytes += sl->len;
    stats_add(f->x->stats, bytes_received, sl->len);
    report(f, f->base + off + sl->len, 0);
    return FS_OK;
}

/* Receives DATA frames for every chunk the partial lacks, feeding md5. */
static fs_status receive_chunks(struct fetch *f, struct conn *c, struct partial *pt,
                                struct hash_md5 *md5, const struct piece_list *pcs)
{
    struct pipeline pl = {.md5 = md5, .pt = pt};
    pthread_t hasher;
    fs_status st = FS_OK;

    for (unsigned i = 0; i < PIPE_DEPTH; i++) /* aligned: partial_put() writes them direct */
        if (posix_memalign((void **)&pl.spare[pl.nspare], PARTIAL_ALIGN, pt->chunk) == 0)
            pl.nspare++;
    pthread_mutex_init(&pl.lock, NULL);
    pthread_cond_init(&pl.cond, NULL);
    if (pl.nspare < PIPE_DEPTH || xfer_start_thread(&hasher, XFER_HASHER_STACK, pipe_hasher, &pl) != 0) {
        st = fail(f, FS_ENOMEM, "out of memory");
        goto out;
    }
    while (pt->have < pt->nchunks && st == FS_OK) {
        uint64_t idx = pt->have, off = idx * pt->chunk;
        uint64_t want = pt->size - off < pt->chunk ? pt->size - off : pt->chunk;
        struct pipe_slot sl = {.idx = idx, .len = (size_t)want};
        if (cancelled(f)) {
            st = fail(f, FS_ECANCELED, "cancelled at byte %llu", (unsigned long long)off);
            break;
        }
        sl.buf = pipe_take(&pl);
        st = read_frame(f, c, idx, pt->chunk, want, sl.buf, &sl.crc, 0);
        if (st == FS_OK)
            st = put_frame(f, pt, &pl, &sl);
        else
            pipe_give(&pl, sl.buf, 0, &sl);
    }
    pthread_mutex_lock(&pl.lock);
    pl.closed = 1;
    pthread_cond_broadcast(&pl.cond);
    pthread_mutex_unlock(&pl.lock);
    pthread_join(hasher, NULL);
out:
    for (unsigned i = 0; i < pl.nspare; i++)
        free(pl.spare[i]);
    pthread_cond_destroy(&pl.cond);
    pthread_mutex_destroy(&pl.lock);
    return st;
}

/* Checks a RANGE against the FETCH that asked for it. Its chunk may differ
 * from the one asked for (an older holder sends PARTIAL_CHUNK, a newer one
 * may send less): the partial is then re-cut to it (partial_rechunk();
 * the offset asked for is a multiple of every valid size, see
 * resume_prefix()). A chunk that is no valid size cuts the holder off. */
static fs_status accept_chunk(struct fetch *f, struct partial *pt, const struct msg *m,
                              const struct piece_list *pcs)
{
    if (!partial_chunk_valid(m->chunk))
        return cut(f, FS_EPROTO, "holder announced chunk=%llu, which is not a power of two "
                   "from %u to %u", (unsigned long long)m->chunk, PARTIAL_CHUNK_MIN,
                   PARTIAL_CHUNK_MAX);
    (void)pcs; /* a file with piece hashes is fetched by xfer_swarm.c */
    if (m->offset != pt->have * pt->chunk)
        return fail(f, FS_EPROTO, "holder answered another range than asked");
    /* The holder's permission bits go into the state, so that a partial
     * completed now and placed by a later get still gets them. */
    mode_t mode = m->has_mode ? (mode_t)(m->mode & 0777) : 0644;
    if (!pt->has_mode || pt->mode != mode) {
        pt->mode = mode;
        pt->has_mode = 1;
        if (m->chunk == pt->chunk && partial_save(pt) != FS_OK)
            return fail_local(f, FS_EIO, "cannot save the state of %s: %s", pt->name,
                              strerror(errno));
    }
    if (m->chunk == pt->chunk)
        return FS_OK;
    fs_status st = partial_rechunk(pt, m->chunk);
    if (st == FS_EINVAL) /* the prefix is not whole chunks of that size: not ours to fix */
        return fail(f, FS_EPROTO, "holder sends chunks of %llu bytes; the %llu bytes kept are "
                    "not a whole number of them", (unsigned long long)m->chunk,
                    (unsigned long long)m->offset);
    if (st)
        return fail_local(f, st, "cannot re-cut %s into chunks of %llu bytes: %s", pt->name,
                          (unsigned long long)m->chunk, strerror(errno));
    log_msg(L_INFO, "partial %s: holder sends chunks of %llu bytes, partial re-cut to match",
            pt->name, (unsigned long long)m->chunk);
    return FS_OK;
}

/* Asks the holder for everything from the partial's first missing chunk,
 * on c (a connection to the holder that stays open for more requests), or
 * on a connection of its own when c is NULL. */
static fs_status fetch_missing(struct fetch *f, const struct file_job *j, struct conn *c,
                               struct partial *pt, struct hash_md5 *md5,
                               const struct piece_list *pcs)
{
    struct conn own;
    struct msg m;
    fs_status st = FS_OK;

    if (!c) {
        if ((st = connect_holder(f, &own)) != FS_OK)
            return st;
        c = &own;
    }
    memset(&m, 0, sizeof m);
    m.type = MSG_FETCH;
    snprintf(m.path, sizeof m.path, "%s", j->remote);
    memcpy(m.md5, j->md5, sizeof m.md5);
    m.offset = pt->have * pt->chunk;
    m.chunk = pt->chunk;
    st = conn_send_msg(c, &m, c->timeout_ms);
    if (st)
        fail(f, st, "sending the request failed: %s", fs_strerror(st));
    else
        st = read_reply(f, c, &m, MSG_RANGE, j->size, j->md5);
    if (st == FS_OK)
        st = accept_chunk(f, pt, &m, pcs);
    if (st == FS_OK)
        st = receive_chunks(f, c, pt, md5, pcs);
    if (c == &own)
        disconnect(f, &own);
    return st;
}

/* Refuses to start writing what cannot fit: the bytes still missing
 * against the space free where the partial lives. A FOUND can announce
 * any size; without this, a liar could make us fill the disk. Writes can
 * still fail later (others write too); receive_chunks() reports those. */
static fs_status check_room(struct fetch *f, const struct partial *pt, const char *dir)
{
    struct statvfs sv;
    struct stat sb;

    if (fstatvfs(pt->fd, &sv) != 0 || fstat(pt->fd, &sb) != 0)
        return FS_OK; /* cannot tell: the writes will */
    uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
    uint64_t used = (uint64_t)sb.st_blocks * 512; /* room the .part already holds */
    uint64_t need = pt->size > used ? pt->size - used : 0;
    if (need <= avail)
        return FS_OK;
    errno = ENOSPC;
    return fail_local(f, FS_EIO, "%s: %s needs %llu more bytes, %s has %llu free",
                      strerror(ENOSPC), pt->name, (unsigned long long)need, dir,
                      (unsigned long long)avail);
}

/* Checks a resumed partial's prefix (partial_check(), feeding md5) cut
 * back to whole multiples of PARTIAL_CHUNK_MAX: a boundary of every chunk
 * size, so any holder accepts the offset asked for (an older one refuses
 * an offset that is not a multiple of its PARTIAL_CHUNK), and the prefix
 * can be re-cut to whatever chunk it answers with. Costs at most 4 MiB
 * fetched again per resume. */
static fs_status resume_prefix(struct partial *pt, struct hash_md5 *md5, uint64_t *bad)
{
    uint64_t more = 0;
    fs_status st = partial_round(pt, PARTIAL_CHUNK_MAX);

    if (st == FS_OK)
        st = partial_check(pt, md5, bad);
    if (st || *bad == 0 || (pt->have * pt->chunk) % PARTIAL_CHUNK_MAX == 0)
        return st;
    /* A chunk failed its CRC mid-way: the prefix before it is unaligned
     * again and md5 covers it all. Cut it back and hash it afresh. */
    hash_abort(md5);
    if (hash_init(md5) != FS_OK)
        return FS_ENOMEM;
    if ((st = partial_round(pt, PARTIAL_CHUNK_MAX)) == FS_OK)
        st = partial_check(pt, md5, &more);
    *bad += more;
    return st;
}

/* Reads a HASHLIST's body (m the header, already checked by read_reply())
 * and checks it against the hit's root. Its length is checked against the
 * size before anything is allocated. A list that does not match cuts the
 * holder. */
static fs_status read_hashlist(struct fetch *f, struct conn *c, const struct file_job *j,
                               const struct msg *m, struct piece_list *pl)
{
    const char *why = NULL;
    int ok = 0;
    uint64_t want = pieces_size_valid(m->piece) ? pieces_list_len(j->size, m->piece, &ok) : 0;

    if (strcmp(m->root, f->hit->root) != 0)
        return cut(f, FS_EMISMATCH, "holder sent the hash list of another root than it found");
    if (!pieces_size_valid(m->piece))
        return cut(f, FS_EPROTO, "holder announced pieces of %llu bytes, not a power of two "
                   "from %u to %u", (unsigned long long)m->piece, PIECES_SIZE_MIN,
                   PIECES_SIZE_MAX);
    if (!ok || m->len != want)
        return cut(f, FS_ETOOBIG, "holder announced a hash list of %llu bytes for %llu bytes in "
                   "pieces of %llu (%llu expected)", (unsigned long long)m->len,
                   (unsigned long long)j->size, (unsigned long long)m->piece,
                   (unsigned long long)want);
    unsigned char *list = malloc(want ? (size_t)want : 1);
    if (!list)
        return fail(f, FS_ENOMEM, "out of memory");
    fs_status st = want ? conn_read_body(c, list, (size_t)want) : FS_OK;
    if (st) {
        free(list);
        return fail(f, st, "reading the hash list failed: %s", fs_strerror(st));
    }
    st = pieces_check_list(j->size, m->piece, list, (size_t)want, f->hit->root, &why);
    if (st) {
        free(list);
        return cut(f, FS_EMISMATCH, "hash list refused: %s", why);
    }
    pl->list = list;
    pl->n = want / PIECES_HASH_LEN;
    pl->piece = m->piece;
    return FS_OK;
}

/* Gets the piece hashes of j when the hit carried a root: from the list
 * kept beside its partial ("<md5>.pieces", checked against the root again),
 * else by HASHES on c, then kept there for a resume. A holder that has no
 * list to give (an older holder, or none on disk) costs nothing but the
 * early checks: the CRCs and the MD5 still guard the file. Files inside a
 * folder have no root of their own in the hit: none. */
static fs_status get_pieces(struct fetch *f, const struct file_job *j, struct conn *c,
                            struct piece_list *pl)
{
    char name[MSG_MD5_LEN + sizeof PARTIAL_PIECES];
    const char *why = NULL;
    struct msg m;
    fs_status st;

    memset(pl, 0, sizeof *pl);
    if (!f->hit->root[0] || j->staged)
        return FS_OK;
    snprintf(name, sizeof name, "%s" PARTIAL_PIECES, j->md5);
    st = pieces_load_at(f->state, name, j->size, f->hit->root, &pl->list, &pl->n, &pl->piece,
                        &why);
    if (st == FS_OK) {
        log_msg(L_INFO, "partial %s: using its cached piece list (%llu pieces)", j->name,
                (unsigned long long)pl->n);
        return FS_OK;
    }
    if (st != FS_ENOTFOUND)
        log_msg(L_WARN, "partial %s: cached piece list unusable (%s); asking the holder",
                j->name, why ? why : fs_strerror(st));
    memset(&m, 0, sizeof m);
    m.type = MSG_HASHES;
    snprintf(m.path, sizeof m.path, "%s", j->remote);
    memcpy(m.md5, j->md5, sizeof m.md5);
    memcpy(m.root, f->hit->root, sizeof m.root);
    st = conn_send_msg(c, &m, c->timeout_ms);
    if (st)
        return fail(f, st, "sending the request failed: %s", fs_strerror(st));
    st = read_reply(f, c, &m, MSG_HASHLIST, j->size, j->md5);
    if (st == FS_ENOTSUP || st == FS_EREFUSED) {
        /* The holder said why (an ERROR: it has closed the connection). */
        log_msg(L_INFO, "get %s: no piece hashes from the holder (%s); checking the whole MD5 "
                "only", j->name, f->res->why);
        f->res->why[0] = '\0';
        pl->refused = 1;
        return FS_OK;
    }
    if (st == FS_OK)
        st = read_hashlist(f, c, j, &m, pl);
    if (st)
        return st;
    pl->fresh = 1;
    log_msg(L_INFO, "partial %s: %llu piece hashes of %llu bytes from the holder, root %s",
            j->name, (unsigned long long)pl->n, (unsigned long long)pl->piece, f->hit->root);
    return FS_OK; /* kept once the partial exists: keep_pieces() */
}

/* Keeps a list fetched now beside the partial ("<md5>.pieces"), for a
 * resume. Only once the partial's state exists: a list saved before it, by
 * a get killed in between, would be an orphan until the next start's
 * sweep (test_faults saw one). */
static void keep_pieces(struct fetch *f, const struct file_job *j, const struct piece_list *pcs)
{
    char name[MSG_MD5_LEN + sizeof PARTIAL_PIECES];

    if (!pcs->list || !pcs->fresh)
        return;
    snprintf(name, sizeof name, "%s" PARTIAL_PIECES, j->md5);
    if (pieces_save_at(f->state, name, j->size, pcs->piece, f->hit->root, pcs->list, pcs->n))
        log_msg(L_WARN, "partial %s: cannot keep its piece list: %s", j->name, strerror(errno));
}

/* fetch_file_once() for a file without piece hashes (pcs->list NULL: its
 * hit had no root, or its holder gave no list): a version 1 partial, one
 * FETCH from the first missing chunk, checked by CRC and the MD5. */
static fs_status fetch_with_pieces(struct fetch *f, const struct file_job *j, struct conn *c,
                                   const struct piece_list *pcs, int *suspect)
{
    char dir[PATH_MAX + 32];
    struct partial *pt;
    struct hash_md5 md5;
    char hex[HASH_HEX_LEN + 1];
    int resumed;
    uint64_t bad = 0;

    *suspect = 0;
    snprintf(dir, sizeof dir, "%s/%s", f->share, SHARE_STATE_DIR); /* for messages */
    fs_status st = partial_open_at(f->state, j->name, j->size, j->md5, XFER_FETCH_CHUNK, &pt,
                                   &resumed);
    if (st == FS_EBUSY)
        return fail(f, st, "another get is downloading %s right now", j->name);
    if (st == FS_ETOOBIG)
        return cut(f, st, "holder announced %llu bytes for %s, more than a download may hold "
                   "(64 TiB)", (unsigned long long)j->size, j->name);
    if (st)
        return fail(f, st, "cannot keep a partial download in %s: %s", dir,
                    st == FS_EIO ? strerror(errno) : fs_strerror(st));
    pt->holder = f->hit->holder;
    pt->durable = !j->staged;
    partial_save(pt); /* records this holder */
    keep_pieces(f, j, pcs);
    if (hash_init(&md5) != FS_OK) {
        partial_close(pt);
        return fail(f, FS_ENOMEM, "out of memory");
    }
    if (resumed && pt->have > 0)
        st = resume_prefix(pt, &md5, &bad); /* also rebuilds the MD5 of what is there */
    uint64_t have = pt->have * pt->chunk < pt->size ? pt->have * pt->chunk : pt->size;
    f->res->resumed_from += have;
    if (bad)
        log_msg(L_WARN, "partial %s: %llu chunk(s) failed their CRC check, fetching them again",
                j->name, (unsigned long long)bad);
    report(f, f->base + have, 1);
    if (st == FS_OK && pt->have < pt->nchunks && (st = check_room(f, pt, dir)) == FS_OK)
        st = fetch_missing(f, j, c, pt, &md5, pcs);
    if (st) {
        int saved = errno;
        hash_abort(&md5);
        if (pt->have == 0) {
            partial_discard(pt); /* nothing worth keeping */
        } else {
            partial_trim(pt); /* a torn chunk gives its room back (a full disk) */
            partial_save(pt); /* resumable from any holder of this item */
        }
        partial_close(pt);
        errno = saved;
        return st;
    }
    hash_final(&md5, hex);
    if (strcmp(hex, j->md5) != 0) {
        partial_discard(pt); /* every chunk passed its CRC: some holder lied */
        partial_close(pt);
        if (have > 0) {
            *suspect = 1;
            f->res->resumed_from -= have;
            log_msg(L_WARN, "partial %s: content MD5 mismatch over %llu resumed bytes: "
                    "fetching it whole from this holder", j->name, (unsigned long long)have);
            return fail(f, FS_EMISMATCH, "content MD5 mismatch of %s over a resumed partial",
                        j->name);
        }
        return cut(f, FS_EMISMATCH, "content MD5 mismatch of %s (got %s): partial discarded",
                   j->name, hex);
    }
    report(f, f->base + j->size, 1);
    st = partial_finish_at(pt, j->dir, j->base, !j->staged);
    if (st == FS_EEXIST) {
        partial_discard(pt);
        fail(f, st, "%s already exists, not overwritten", j->name);
    } else if (st) {
        fail(f, st, "cannot move the download into place: %s", strerror(errno));
    }
    partial_close(pt);
    return st;
}

/* One try at fetching j from this holder; see fetch_file(). *suspect is
 * set when the whole MD5 failed over bytes kept from an earlier attempt
 * (maybe another holder's): the partial is then discarded. */
static fs_status fetch_file_once(struct fetch *f, const struct file_job *j, struct conn *c,
                                 int *suspect)
{
    struct piece_list pcs = {0};
    struct conn own;
    int owned = 0;
    fs_status st;

    *suspect = 0;
    /* The HASHES and the FETCH go on one connection (and one upload slot). */
    if (f->hit->root[0] && !j->staged && !c) {
        if ((st = connect_holder(f, &own)) != FS_OK)
            return st;
        c = &own;
        owned = 1;
    }
    st = get_pieces(f, j, c, &pcs);
    if (st == FS_OK && pcs.refused && owned) { /* FETCH goes on a connection of its own */
        disconnect(f, &own);
        owned = 0;
        c = NULL;
    }
    if (st == FS_OK && pcs.list && j->size > 0)
        st = xfer_swarm_file(f, j, c, &pcs, suspect); /* pieces in any order: v2 state */
    else if (st == FS_OK)
        st = fetch_with_pieces(f, j, c, &pcs, suspect);
    free(pcs.list);
    if (owned)
        disconnect(f, &own);
    return st;
}

/* Fetches one file into j->dir/j->base through a resumable partial; c as for
 * fetch_missing(). The partial may hold chunks from another holder; each
 * passed its CRC, but a liar sends CRCs that match its own bytes, and only
 * the whole MD5 can tell. When that fails over resumed bytes, the fault
 * may be theirs, not this holder's: the file is fetched once more, whole,
 * from this holder, which is cut off only if it fails on its own. */
static fs_status fetch_file(struct fetch *f, const struct file_job *j, struct conn *c)
{
    int suspect;
    fs_status st = fetch_file_once(f, j, c, &suspect);

    if (suspect && !cancelled(f))
        st = fetch_file_once(f, j, c, &suspect);
    return st;
}

/* --- large folders: LIST, then each file by FETCH, staged and resumable --- */

/* Reads the MANIFEST body and checks it against the folder's md5. */
static fs_status read_manifest(struct fetch *f, struct conn *c, const struct msg *m,
                               struct manifest *man)
{
    char hex[HASH_HEX_LEN + 1];
    const char *why = "?";

    if (m->len > MANIFEST_MAX_BYTES)
        return fail(f, FS_ETOOBIG, "holder announced a manifest of %llu bytes",
                    (unsigned long long)m->len);
    char *text = malloc(m->len + 1);
    if (!text)
        return fail(f, FS_ENOMEM, "out of memory");
    fs_status st = conn_read_body(c, text, (size_t)m->len);
    if (st == FS_OK)
        st = hash_md5_buf(text, (size_t)m->len, hex);
    if (st)
        fail(f, st, "reading the manifest failed: %s", fs_strerror(st));
    else if (strcmp(hex, f->hit->md5) != 0)
        st = fail(f, FS_EMISMATCH, "manifest MD5 mismatch (got %s)", hex);
    else if ((st = manifest_parse(text, (size_t)m->len, man, &why)) != FS_OK)
        fail(f, st, "bad manifest: %s", why);
    else if (man->total_bytes != f->hit->size)
        st = fail(f, FS_EMISMATCH, "manifest adds up to another size than announced");
    free(text);
    if (st && man->v)
        manifest_free(man);
    return st;
}

/* Flushes the file system that holds the folder fd (every file written
 * below it, and their folders) to disk: one call for a whole extracted or
 * staged item, instead of one fsync per file. */
static fs_status sync_fs_of(int fd)
{
    return syncfs(fd) == 0 ? FS_OK : FS_EIO;
}

/* Creates the folder name in dirfd (and finds it usable if it exists as a
 * real folder, never a link), and opens it into *out. */
static fs_status ensure_dir_at(int dirfd, const char *name, int *out)
{
    *out = -1;
    if (mkdirat(dirfd, name, 0755) != 0 && errno != EEXIST)
        return FS_EIO;
    *out = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    return *out < 0 ? (errno == ELOOP || errno == ENOTDIR ? FS_EREFUSED : FS_EIO) : FS_OK;
}

/* Opens the folder that holds path (path_valid(), relative to topfd) below
 * topfd without following a link, into *dir, and points *base at path's
 * last component. */
static fs_status open_parent(int topfd, const char *path, int *dir, const char **base)
{
    char parent[MSG_MAX_PATH + 1];
    const char *slash = strrchr(path, '/');

    *base = slash ? slash + 1 : path;
    if (!slash) {
        *dir = fcntl(topfd, F_DUPFD_CLOEXEC, 0);
        return *dir < 0 ? FS_EIO : FS_OK;
    }
    snprintf(parent, sizeof parent, "%.*s", (int)(slash - path), path);
    return share_open_beneath(topfd, parent, O_RDONLY | O_DIRECTORY, 0, dir);
}

/* A file already in the staging folder counts only if its bytes match. */
static int staged_ok(int dir, const char *base, const struct manifest_entry *e)
{
    struct stat sb;
    char hex[HASH_HEX_LEN + 1];
    int ok = 0, fd;

    if (fstatat(dir, base, &sb, AT_SYMLINK_NOFOLLOW) != 0)
        return 0;
    if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != e->size) {
        zipio_remove_at(dir, base);
        return 0;
    }
    fd = openat(dir, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
        ok = hash_md5_fd(fd, hex, NULL) == FS_OK && strcmp(hex, e->md5) == 0;
        close(fd);
    }
    if (!ok)
        unlinkat(dir, base, 0);
    return ok;
}

static fs_status fetch_entries(struct fetch *f, struct conn *c, const struct manifest *man,
                               int topfd)
{
    char remote[MSG_MAX_PATH + 1], esc[LOG_ESCAPE_BUF];
    fs_status st = FS_OK;

    f->base = 0;
    for (size_t i = 0; i < man->n && st == FS_OK; i++) {
        const struct manifest_entry *e = &man->v[i];
        const char *base;
        int dir = -1;
        /* The manifest is sorted and lists every folder before what is in
         * it, so the parent exists: made by this loop, below topfd. */
        st = open_parent(topfd, e->path, &dir, &base);
        if (st) {
            st = fail(f, st == FS_EREFUSED ? FS_EREFUSED : FS_EIO, "cannot open the folder of %s "
                      "in the staging folder: %s", log_escape_str(esc, e->path), fs_strerror(st));
            break;
        }
        if (e->kind == MSG_KIND_FOLDER) {
            int sub = -1;
            if (ensure_dir_at(dir, base, &sub) != FS_OK)
                st = fail(f, FS_EIO, "cannot create %s: %s", log_escape_str(esc, e->path),
                          strerror(errno));
            if (sub >= 0)
                close(sub);
            close(dir);
            continue;
        }
        if (cancelled(f)) {
            close(dir);
            return fail(f, FS_ECANCELED, "cancelled");
        }
        if (staged_ok(dir, base, e)) {
            f->res->resumed_from += e->size;
        } else if (snprintf(remote, sizeof remote, "%s/%s", f->hit->path, e->path) >=
                   (int)sizeof remote) {
            st = fail(f, FS_ETOOBIG, "path too long inside the folder");
        } else {
            struct file_job j = {.name = base, .remote = remote, .size = e->size, .md5 = e->md5,
                                 .dir = dir, .base = base, .staged = 1};
            st = fetch_file(f, &j, c);
        }
        close(dir);
        f->base += e->size;
    }
    return st;
}

static fs_status fetch_folder(struct fetch *f)
{
    char staging[MSG_MD5_LEN + 8];
    struct manifest man;
    struct conn c;
    struct msg m;
    int stagefd = -1, topfd = -1;

    snprintf(staging, sizeof staging, "d-%s", f->hit->md5);
    fs_status st = connect_holder(f, &c);
    if (st)
        return st;
    memset(&m, 0, sizeof m);
    m.type = MSG_LIST;
    memcpy(m.path, f->hit->path, sizeof m.path);
    memcpy(m.md5, f->hit->md5, sizeof m.md5);
    st = conn_send_msg(&c, &m, c.timeout_ms);
    if (st == FS_OK)
        st = read_reply(f, &c, &m, MSG_MANIFEST, 0, f->hit->md5);
    if (st == FS_OK)
        st = read_manifest(f, &c, &m, &man);
    if (st) {
        disconnect(f, &c);
        return st;
    }
    if (ensure_dir_at(f->state, staging, &stagefd) != FS_OK ||
        ensure_dir_at(stagefd, f->hit->name, &topfd) != FS_OK)
        st = fail_local(f, FS_EIO, "cannot create %s/%s/%s/%s: %s", f->share, SHARE_STATE_DIR,
                        staging, f->hit->name, strerror(errno));
    if (st == FS_OK)
        st = fetch_entries(f, &c, &man, topfd);
    disconnect(f, &c);
    manifest_free(&man);
    if (topfd >= 0)
        close(topfd);
    /* On failure the staging folder stays: the next get resumes it. One
     * sync for every file of the folder (partial_finish_at() skipped its
     * per-file fsync), before the folder takes its name. */
    if (st == FS_OK && sync_fs_of(stagefd) != FS_OK)
        st = fail(f, FS_EIO, "cannot sync the downloaded folder: %s", strerror(errno));
    if (st == FS_OK) {
        st = partial_place_at(stagefd, f->hit->name, f->root, f->hit->name, 1);
        if (st == FS_EEXIST)
            fail(f, st, "%s already exists in the share, not overwritten", f->hit->name);
        else if (st)
            fail(f, st, "cannot move the folder into place: %s", strerror(errno));
    }
    if (stagefd >= 0)
        close(stagefd);
    if (st == FS_OK)
        unlinkat(f->state, staging, AT_REMOVEDIR);
    return st;
}

/* --- folders (and holders without FETCH): a zip archive --- */

/* Sends REQUEST and reads the ITEM header, checking it matches the hit. */
static fs_status ask(struct fetch *f, struct conn *c, struct msg *item)
{
    struct msg req;

    memset(&req, 0, sizeof req);
    req.type = MSG_REQUEST;
    memcpy(req.path, f->hit->path, sizeof req.path);
    memcpy(req.md5, f->hit->md5, sizeof req.md5);
    fs_status st = conn_send_msg(c, &req, c->timeout_ms);
    if (st)
        return fail(f, st, "sending the request failed: %s", fs_strerror(st));
    st = read_reply(f, c, item, MSG_ITEM, f->hit->size, f->hit->md5);
    if (st)
        return st;
    /* A zip of n content bytes is n plus per-entry headers (a few hundred
     * bytes each); a holder announcing much more is lying or broken, and
     * must not be allowed to fill the disk. */
    uint64_t limit = f->hit->size + f->hit->size / 8 + XFER_ARCHIVE_SLACK;
    if (item->len > limit) {
        stats_inc(f->x->stats, archives_refused);
        return fail(f, FS_ETOOBIG, "holder announced an archive far larger than the item");
    }
    return FS_OK;
}

/* Receives len body bytes into a nameless file in the state folder (made
 * there and unlinked at once: a kill leaves nothing behind), hashing as
 * they arrive. */
static fs_status receive(struct fetch *f, struct conn *c, const struct msg *item)
{
    struct hash_md5 h;
    char hex[HASH_HEX_LEN + 1], tmp[64];
    char *buf = malloc(XFER_CHUNK);
    uint64_t left = item->len;
    struct rate *bucket = node_download_rate(f->x->node); /* download_rate */
    fs_status st = FS_OK;

    if (!buf)
        return fail(f, FS_ENOMEM, "out of memory");
    statedir_tmp_name(tmp, sizeof tmp, "in", ".zip");
    f->fd = openat(f->state, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (f->fd >= 0)
        unlinkat(f->state, tmp, 0);
    if (f->fd < 0 || hash_init(&h) != FS_OK) {
        free(buf);
        return fail_local(f, FS_EIO, "cannot create an archive in %s/%s: %s", f->share,
                          SHARE_STATE_DIR, strerror(errno));
    }
    while (left > 0 && st == FS_OK) {
        size_t got = 0;
        if (cancelled(f)) {
            st = fail(f, FS_ECANCELED, "cancelled");
            break;
        }
        size_t piece = rate_chunk(bucket, left < XFER_CHUNK ? (size_t)left : XFER_CHUNK);
        uint64_t waited;
        if ((st = rate_take(bucket, piece, -1, &waited)) != FS_OK) {
            fail(f, st, "cancelled");
            break;
        }
        stats_add(f->x->stats, download_wait_ms, waited);
        st = conn_read_body_some(c, buf, piece, &got);
        rate_refund(bucket, piece - got);
        if (st) {
            fail(f, st, "transfer interrupted: %s", fs_strerror(st));
            break;
        }
        note_first_byte(f);
        hash_update(&h, buf, got);
        if (write(f->fd, buf, got) != (ssize_t)got)
            st = fail_local(f, FS_EIO, "writing the download failed: %s", strerror(errno));
        left -= got;
        f->res->bytes += got;
        stats_add(f->x->stats, bytes_received, got);
        /* archive bytes stand in for content bytes: close enough for a bar */
        uint64_t done = item->len - left;
        report(f, done < f->hit->size ? done : f->hit->size, 0);
    }
    free(buf);
    if (st) {
        hash_abort(&h);
        return st;
    }
    hash_final(&h, hex);
    if (strcmp(hex, item->zmd5) != 0)
        return fail(f, FS_EMISMATCH, "archive MD5 mismatch (received %s)", hex);
    return FS_OK;
}

/* Extracts, verifies the item against the hit, and renames it into place. */
static fs_status install(struct fetch *f)
{
    char top[MSG_MAX_NAME + 1];
    const char *why = NULL;
    struct zipio_limits lim = zipio_default_limits;
    enum msg_kind kind;
    uint64_t size, files;
    char md5[MSG_MD5_LEN + 1];
    int xfd;

    statedir_tmp_name(f->xdir, sizeof f->xdir, "x", "");
    if (mkdirat(f->state, f->xdir, 0700) < 0 ||
        (xfd = openat(f->state, f->xdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
        return fail_local(f, FS_EIO, "cannot create %s/%s/%s: %s", f->share, SHARE_STATE_DIR,
                          f->xdir, strerror(errno));
    lim.max_total_bytes = f->hit->size; /* the FOUND said how much content there is */
    fs_status st = zipio_unpack_at(f->fd, xfd, &lim, top, sizeof top, &why);
    if (st) {
        if (st == FS_EZIP || st == FS_ETOOBIG) /* the archive's fault, not ours */
            stats_inc(f->x->stats, archives_refused);
        fail(f, st, "archive refused: %s", why ? why : fs_strerror(st));
        goto out;
    }
    if (strcmp(top, f->hit->name) != 0) {
        stats_inc(f->x->stats, archives_refused);
        st = fail(f, FS_EZIP, "archive holds another name than the item");
        goto out;
    }
    st = share_digest_at(xfd, top, &kind, &size, &files, md5);
    if (st) {
        fail(f, st, "cannot verify the extracted item: %s", fs_strerror(st));
        goto out;
    }
    if (kind != f->hit->kind || size != f->hit->size || strcmp(md5, f->hit->md5) != 0) {
        st = fail(f, FS_EMISMATCH, "content MD5 mismatch (got %s)", md5);
        goto out;
    }
    if (sync_fs_of(xfd) != FS_OK) { /* the files reach the disk before their name */
        st = fail(f, FS_EIO, "cannot sync the extracted item: %s", strerror(errno));
        goto out;
    }
    st = partial_place_at(xfd, top, f->root, f->hit->name, 1);
    if (st == FS_EEXIST)
        fail(f, st, "%s already exists in the share, not overwritten", top);
    else if (st)
        fail(f, st, "cannot move the item into place: %s", strerror(errno));
out:
    close(xfd);
    return st;
}

static fs_status fetch_archive(struct fetch *f)
{
    struct conn c;
    struct msg item;

    f->xdir[0] = '\0';
    fs_status st = connect_holder(f, &c);
    if (st)
        return st;
    st = ask(f, &c, &item);
    if (st == FS_OK)
        st = receive(f, &c, &item);
    disconnect(f, &c);
    if (st == FS_OK)
        st = install(f);
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    if (f->xdir[0])
        zipio_remove_at(f->state, f->xdir);
    return st;
}

/* xfer_fetch() and xfer_fetch_to(): to_dir -1 puts the item under
 * hit->name in the share, else a file goes to `to` in to_dir. */
static fs_status fetch_item(struct xfer_plane *x, const struct msg *hit, int to_dir,
                            const char *to, const struct xfer_watch *watch,
                            struct xfer_result *res)
{
    struct fetch f = {.x = x, .hit = hit, .watch = watch, .res = res, .fd = -1, .slot = -1,
                      .root = -1, .state = -1};
    struct stat sb;
    fs_status st;

    memset(res, 0, sizeof *res);
    f.t0 = f.last_report = net_now_ms();
    if (to_dir >= 0 && hit->kind != MSG_KIND_FILE)
        return fail_local(&f, FS_EINVAL, "only a file can be fetched to another name");
    struct share *sh = node_share_get(x->node);
    snprintf(f.share, sizeof f.share, "%s", share_dir(sh));
    f.root = fcntl(share_root_fd(sh), F_DUPFD_CLOEXEC, 0);
    node_share_put(x->node);
    if (f.root < 0)
        return fail_local(&f, FS_EIO, "cannot hold the share %s: %s", f.share, strerror(errno));
    int dest = to_dir >= 0 ? to_dir : f.root;
    const char *base = to_dir >= 0 ? to : hit->name;
    if (fstatat(dest, base, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
        close(f.root);
        return fail(&f, FS_EEXIST, "%s already exists in the share, not overwritten", base);
    }
    st = statedir_open(f.root, &f.state);
    if (st) {
        close(f.root);
        return fail_local(&f, st, "cannot use %s/%s: %s", f.share, SHARE_STATE_DIR,
                          strerror(errno));
    }

    f.slot = xfer_table_add(x, 0, hit->name, &hit->holder, hit->size);
    down_event(x, TR_TRANSFER_STARTED, hit, 0, FS_OK, NULL);
    f.last_trace = net_now_ms();
    st = FS_ENOTSUP;
    if (hit->kind == MSG_KIND_FILE) {
        struct file_job j = {.name = hit->name, .remote = hit->path, .size = hit->size,
                             .md5 = hit->md5, .dir = dest, .base = base};
        st = fetch_file(&f, &j, NULL);
    } else if (hit->size >= XFER_STREAM_FOLDER_MIN) {
        st = fetch_folder(&f);
    }
    if (st == FS_ENOTSUP)
        st = fetch_archive(&f);
    close(f.state);
    close(f.root);
    xfer_table_del(x, f.slot);
    down_event(x, st == FS_OK ? TR_TRANSFER_DONE : TR_TRANSFER_FAILED, hit,
               st == FS_OK ? hit->size : f.pos, st, res->why);
    res->seconds = (double)(net_now_ms() - f.t0) / 1000.0;
    if (st == FS_OK) {
        stats_inc(x->stats, downloads);
        sh = node_share_get(x->node);
        share_mark_dirty(sh);
        node_share_put(x->node);
    } else if (st != FS_EEXIST && st != FS_ECANCELED && !res->retry_ms) {
        stats_inc(x->stats, downloads_failed); /* a BUSY is not a failure: it is retried */
    }
    return st;
}

fs_status xfer_fetch(struct xfer_plane *x, const struct msg *hit, const struct xfer_watch *watch,
                     struct xfer_result *res)
{
    return fetch_item(x, hit, -1, NULL, watch, res);
}

fs_status xfer_fetch_to(struct xfer_plane *x, const struct msg *hit, int dirfd, const char *to,
                        const struct xfer_watch *watch, struct xfer_result *res)
{
    if (dirfd < 0 || !to) {
        memset(res, 0, sizeof *res);
        snprintf(res->why, sizeof res->why, "no folder to fetch into");
        res->local = 1;
        return FS_EINVAL;
    }
    return fetch_item(x, hit, dirfd, to, watch, res);
}

/* --- for xfer_swarm.c (declared in xfer_int.h) --- */

fs_status xfer_fetch_fail(struct fetch *f, fs_status st, const char *why)
{
    return fail(f, st, "%s", why);
}

fs_status xfer_fetch_fail_local(struct fetch *f, fs_status st, const char *why)
{
    return fail_local(f, st, "%s", why);
}

fs_status xfer_fetch_cut(struct fetch *f, fs_status st, const char *why)
{
    return cut(f, st, "%s", why);
}

fs_status xfer_fetch_connect(struct fetch *f, struct conn *c)
{
    return connect_holder(f, c);
}

void xfer_fetch_disconnect(struct fetch *f, struct conn *c)
{
    disconnect(f, c);
}

fs_status xfer_fetch_reply(struct fetch *f, struct conn *c, struct msg *m, enum msg_type want,
                           uint64_t size, const char *md5)
{
    return read_reply(f, c, m, want, size, md5);
}

fs_status xfer_fetch_frame(struct fetch *f, struct conn *c, uint64_t idx, uint64_t chunk,
                           uint64_t want, char *buf)
{
    uint32_t crc;

    return read_frame(f, c, idx, chunk, want, buf, &crc, 1);
}

fs_status xfer_fetch_check(struct fetch *f, const struct piece_list *pl, uint64_t off,
                           const char *buf, uint64_t want)
{
    return check_pieces(f, pl, off, buf, want);
}

void xfer_fetch_report(struct fetch *f, uint64_t done, int force)
{
    report(f, done, force);
}

int xfer_fetch_cancelled(const struct fetch *f)
{
    return cancelled(f);
}

fs_status xfer_fetch_room(struct fetch *f, const struct partial *pt)
{
    char dir[PATH_MAX + 32];

    snprintf(dir, sizeof dir, "%s/%s", f->share, SHARE_STATE_DIR); /* for messages */
    return check_room(f, pt, dir);
}

void xfer_fetch_keep_pieces(struct fetch *f, const struct file_job *j,
                            const struct piece_list *pcs)
{
    keep_pieces(f, j, pcs);
}
