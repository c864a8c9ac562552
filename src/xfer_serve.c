/* xfer_serve.c - the holder side: REQUEST (a zip archive), FETCH (DATA
 * frames from an offset) and LIST (a folder's manifest). */
#include "floodshare/xfer.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <linux/sockios.h>
#include <unistd.h>
#include <zlib.h>

#include "floodshare/hash.h"
#include "floodshare/log.h"
#include "floodshare/net.h"
#include "floodshare/partial.h"
#include "floodshare/pieces.h"
#include "floodshare/rate.h"
#include "floodshare/node.h"
#include "floodshare/stats.h"
#include "floodshare/share.h"
#include "floodshare/statedir.h"
#include "floodshare/trace.h"
#include "floodshare/zipio.h"
#include "xfer_int.h"

/* --- trace events of transfers --- */

/* The holder side of one upload (xfer.h struct xfer_uptrace): REQUEST,
 * FETCH and LIST carry no query id, so the query is the one this peer
 * last sent a FOUND for the item in (trace_find_hit); its origin is the
 * requester. */
static void up_begin(struct xfer_plane *x, struct xfer_uptrace *u, const struct msg *req,
                     const struct fs_addr *conn_from, uint64_t size, uint64_t offset)
{
    struct trace_event hit;
    int known = trace_find_hit(x->trace, req->md5, req->path, &hit);

    trace_init_event(&u->ev, TR_TRANSFER_STARTED, known ? hit.qid : NULL);
    u->ev.role = TR_ROLE_HOLDER;
    trace_set(u->ev.name, sizeof u->ev.name, req->path);
    u->ev.to = known ? hit.origin : *conn_from;
    u->ev.holder = hit.holder;
    u->ev.size = size;
    u->ev.bytes = offset;
    trace_set(u->ev.md5, sizeof u->ev.md5, req->md5);
    if (!known)
        u->ev.holder = 0;
    u->last_ms = net_now_ms();
    u->open = 1;
    trace_emit(x->trace, &u->ev);
}

/* 1 when req asks for the item u traces (its path as the event keeps it,
 * cut to TRACE_NAME_MAX, and its md5). */
static int up_same_item(const struct xfer_uptrace *u, const struct msg *req)
{
    return strncmp(u->ev.name, req->path, TRACE_NAME_MAX) == 0 &&
           strncmp(u->ev.md5, req->md5, MSG_MD5_LEN) == 0;
}

/* At most one progress event every TRACE_PROGRESS_MS, and only when
 * somebody listens (they are never kept in the ring). */
static void up_progress(struct xfer_plane *x, struct xfer_uptrace *u, uint64_t pos)
{
    uint64_t now = net_now_ms();

    if (!trace_listening(x->trace) || now - u->last_ms < TRACE_PROGRESS_MS)
        return;
    u->last_ms = now;
    u->ev.type = TR_TRANSFER_PROGRESS;
    u->ev.bytes = pos;
    trace_emit(x->trace, &u->ev);
}

void xfer_uptrace_end(struct xfer_plane *x, struct xfer_uptrace *u, fs_status st)
{
    if (!u->open)
        return;
    u->open = 0;
    u->ev.type = st == FS_OK ? TR_TRANSFER_DONE : TR_TRANSFER_FAILED;
    if (st)
        trace_set(u->ev.reason, sizeof u->ev.reason, fs_status_name(st));
    trace_emit(x->trace, &u->ev);
}

/* --- pacing: min_upload_rate over each XFER_RATE_WINDOW_MS, and the
 * peer's upload_rate bucket --- */

/* One upload's writes. The rate counts bytes the requester's TCP has
 * acknowledged (written minus what is still in our send queue, SIOCOUTQ):
 * a requester that stops reading would otherwise look fast for as long as
 * the socket buffers take bytes. Windows follow each other from the first
 * byte on; the last, partial one is not judged. Every byte is first taken
 * from the node's upload bucket (upload_rate, shared by all uploads); time
 * asleep there is our own doing, and is left out of the windows. */
struct pace {
    struct conn *c; /* borrowed: what is written, plain or TLS */
    int fd;
    struct rate *bucket; /* the node's upload_rate bucket */
    struct stats *stats; /* the node's: upload_wait_ms */
    uint64_t min_rate;  /* bytes/s; 0: never cut */
    uint64_t win_start; /* ms */
    uint64_t win_acked; /* acknowledged bytes when the window began */
    uint64_t written;   /* bytes handed to the socket */
    uint64_t moved;     /* on a cut: bytes acknowledged in the window that failed */
    int slow;           /* set when the upload was cut for being too slow */
};

static void pace_init(struct pace *pc, struct xfer_plane *x, struct conn *c)
{
    memset(pc, 0, sizeof *pc);
    pc->c = c;
    pc->fd = c->fd;
    conn_tls_bulk(c); /* an upload: big writes, not one per TLS record */
    pc->bucket = node_upload_rate(x->node);
    pc->stats = x->stats;
    pc->min_rate = x->min_rate;
    pc->win_start = net_now_ms();
}

static uint64_t pace_acked(const struct pace *pc)
{
    int queued = 0;

    if (ioctl(pc->fd, SIOCOUTQ, &queued) < 0 || queued < 0)
        queued = 0; /* cannot tell: count what was written */
    return pc->written > (uint64_t)queued ? pc->written - (uint64_t)queued : 0;
}

/* Judges the window when it is over. -1 (and pc->slow) when it moved too
 * little; 0 otherwise. */
static int pace_check(struct pace *pc, uint64_t now)
{
    if (pc->min_rate == 0 || now - pc->win_start < XFER_RATE_WINDOW_MS)
        return 0;
    uint64_t acked = pace_acked(pc), moved = acked - pc->win_acked;
    if (moved * 1000 < pc->min_rate * (now - pc->win_start)) {
        pc->slow = 1;
        pc->moved = moved;
        return -1;
    }
    pc->win_start = now;
    pc->win_acked = acked;
    return 0;
}

/* Writes all n bytes: each wait for buffer space at most timeout_ms, and
 * the upload as a whole kept to min_rate. FS_ETIMEDOUT (pc->slow tells
 * which), FS_ECLOSED, FS_EIO. */
static fs_status send_paced(struct pace *pc, const char *b, size_t n, int timeout_ms)
{
    uint64_t last = net_now_ms(); /* last progress */

    while (n > 0) {
        uint64_t now = net_now_ms();
        if (pace_check(pc, now) < 0)
            return FS_ETIMEDOUT;
        size_t w = 0;
        fs_status st = conn_write_some(pc->c, b, n, &w);
        if (st)
            return st;
        if (w > 0) {
            b += w;
            n -= w;
            pc->written += (uint64_t)w;
            last = now;
            continue;
        }
        if (now - last >= (uint64_t)timeout_ms)
            return FS_ETIMEDOUT;
        uint64_t wait = (uint64_t)timeout_ms - (now - last);
        if (pc->min_rate && pc->win_start + XFER_RATE_WINDOW_MS - now < wait)
            wait = pc->win_start + XFER_RATE_WINDOW_MS - now; /* wake to judge the window */
        struct pollfd pfd = {.fd = pc->fd, .events = pc->c->want_write ? POLLOUT : POLLIN};
        if (poll(&pfd, 1, (int)(wait ? wait : 1)) < 0 && errno != EINTR)
            return FS_EIO;
    }
    /* What a TLS bulk buffer still holds (conn_tls_bulk), within the same deadlines. */
    return conn_write_all(pc->c, NULL, 0, timeout_ms);
}

/* send_paced() of n bytes, in pieces taken from the upload bucket first
 * (small at low rates, so the rate is smooth). FS_ECANCELED when the peer
 * stops while it waits there; a piece that could not be sent gives its
 * tokens back. */
static fs_status pace_write(struct pace *pc, const void *buf, size_t n, int timeout_ms)
{
    const char *b = buf;

    while (n > 0) {
        size_t piece = rate_chunk(pc->bucket, n);
        uint64_t waited;
        fs_status st = rate_take(pc->bucket, piece, -1, &waited);
        if (st)
            return st;
        /* Held back by our own limit, not by the requester: the window
         * being judged starts that much later (the socket drained
         * meanwhile, so its bytes still count). */
        pc->win_start += waited;
        stats_add(pc->stats, upload_wait_ms, waited);
        uint64_t before = pc->written;
        st = send_paced(pc, b, piece, timeout_ms);
        if (st) {
            rate_refund(pc->bucket, piece - (size_t)(pc->written - before));
            return st;
        }
        b += piece;
        n -= piece;
    }
    return FS_OK;
}

/* Counts and logs how an upload ended badly. verb and esc name it
 * ("fetch", the escaped path); level is for failures other than a cut. */
static void upload_failed(struct xfer_plane *x, const struct pace *pc, const char *verb,
                          const char *esc, const struct fs_addr *who, fs_status st, int level)
{
    char h[ADDR_STR_MAX];

    stats_inc(x->stats, uploads_failed);
    if (pc->slow) {
        /* Close with a reset: the bytes still queued for a requester that does
         * not read would otherwise keep the socket, and its buffer, alive in
         * the kernel long after we closed it. */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(pc->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        xfer_slot_penalize(x, who->host);
        stats_inc(x->stats, uploads_slow);
        log_msg(L_INFO, "%s %s: cut: %s moved %llu bytes in %d s, under min_upload_rate %llu "
                "bytes/s", verb, esc, addr_format(who, h), (unsigned long long)pc->moved,
                XFER_RATE_WINDOW_MS / 1000, (unsigned long long)pc->min_rate);
    } else {
        if (st == FS_ETIMEDOUT) /* a requester that stopped reading for io_timeout_ms */
            stats_inc(x->stats, timeouts);
        log_msg(level, "%s %s: upload stopped: %s", verb, esc, fs_strerror(st));
    }
}

/* --- holder side --- */

/* Sends the first len bytes of the file fd (read with pread: its offset
 * does not matter). */
static fs_status stream_file(struct xfer_plane *x, struct pace *pc, int fd, uint64_t len,
                             int timeout_ms)
{
    char *buf = malloc(XFER_CHUNK);
    uint64_t off = 0;
    fs_status st = FS_OK;

    if (!buf)
        return FS_ENOMEM;
    while (off < len) {
        ssize_t n = pread(fd, buf, len - off < XFER_CHUNK ? (size_t)(len - off) : XFER_CHUNK,
                          (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            st = FS_EIO;
            break;
        }
        st = pace_write(pc, buf, (size_t)n, timeout_ms);
        if (st)
            break;
        stats_add(x->stats, bytes_sent, n);
        off += (uint64_t)n;
    }
    free(buf);
    return st;
}

static void refuse(struct xfer_plane *x, struct conn *c, const char *code, const char *why,
                   const char *path)
{
    char esc[LOG_ESCAPE_BUF];
    stats_inc(x->stats, uploads_failed);
    log_msg(L_INFO, "request %s refused: %s", log_escape_str(esc, path), why);
    conn_send_error(c, code, why, c->timeout_ms);
}

/* Finds the item a REQUEST, FETCH or LIST names in the index and opens it
 * beneath the share's root descriptor (share_openat(): no symbolic link is
 * followed anywhere on the way, whatever was renamed since the scan), as a
 * file or a folder like the index says. Returns 0 with *fd (the caller's
 * to close), or -1 after answering the requester with the refusal; a path
 * that crosses a link is also counted (symlinks_refused) and logged. */
static int find_item(struct xfer_plane *x, struct conn *c, const struct msg *req,
                     struct share_item *it, int *fd)
{
    struct share *sh = node_share_get(x->node);
    char esc[LOG_ESCAPE_BUF];
    struct stat sb;
    fs_status st;

    *fd = -1;
    share_refresh(sh);
    st = share_lookup(sh, req->path, it);
    /* O_NONBLOCK: a FIFO swapped in must not hold the worker; the type
     * check below refuses it. */
    if (st == FS_OK)
        st = share_openat(sh, req->path, O_RDONLY | O_NONBLOCK, fd);
    node_share_put(x->node);
    if (st == FS_EREFUSED) {
        stats_inc(x->stats, symlinks_refused);
        log_msg(L_WARN, "request %s: the path crosses a symbolic link: refused, not followed",
                log_escape_str(esc, req->path));
    }
    if (st == FS_EBADNAME || st == FS_EREFUSED) {
        refuse(x, c, "refused", "path is outside the share or not allowed", req->path);
        return -1;
    }
    if (st) {
        refuse(x, c, "notfound", "no such item in this share", req->path);
        return -1;
    }
    if (fstat(*fd, &sb) != 0 || (it->kind == MSG_KIND_FILE && !S_ISREG(sb.st_mode)) ||
        (it->kind == MSG_KIND_FOLDER && !S_ISDIR(sb.st_mode)) || strcmp(it->md5, req->md5) != 0) {
        close(*fd);
        *fd = -1;
        refuse(x, c, "changed", "the item has changed since it was found", req->path);
        return -1;
    }
    return 0;
}

/* What zipio_pack_fd() left out of a folder's archive: a link is counted
 * and logged (it is never followed, and not a reason to fail the item). */
struct pack_note {
    struct xfer_plane *x;
    const char *item; /* escaped, for the log */
};

static void pack_skipped(void *arg, const char *path, int is_link)
{
    struct pack_note *n = arg;
    char esc[LOG_ESCAPE_BUF];

    if (!is_link) {
        log_msg(L_DEBUG, "request %s: %s is neither a file nor a folder: left out",
                n->item, log_escape_str(esc, path));
        return;
    }
    stats_inc(n->x->stats, symlinks_refused);
    log_msg(L_INFO, "request %s: %s is a symbolic link: left out of the archive, not followed",
            n->item, log_escape_str(esc, path));
}

/* Packs the item open as fd into a new, nameless file in the share's state
 * folder (created there, then unlinked at once: nothing to clean up after
 * a kill). Returns its descriptor, or -1. */
static int pack_item(struct xfer_plane *x, int fd, const char *name, const char *esc_path)
{
    char tmp[64];
    int sfd = -1, zfd = -1;
    struct share *sh = node_share_get(x->node);
    fs_status st = statedir_open(share_root_fd(sh), &sfd);

    node_share_put(x->node);
    if (st) {
        log_msg(L_WARN, "request %s: cannot use the state folder %s: %s", esc_path,
                SHARE_STATE_DIR, strerror(errno));
        return -1;
    }
    statedir_tmp_name(tmp, sizeof tmp, "out", ".zip");
    zfd = openat(sfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (zfd >= 0)
        unlinkat(sfd, tmp, 0);
    close(sfd);
    if (zfd < 0)
        return -1;
    struct pack_note note = {.x = x, .item = esc_path};
    st = zipio_pack_fd(fd, name, zfd, pack_skipped, &note);
    if (st) {
        log_msg(L_WARN, "request %s: cannot pack the item: %s", esc_path, fs_strerror(st));
        close(zfd);
        return -1;
    }
    return zfd;
}

void xfer_serve(struct xfer_plane *x, struct conn *c, const struct msg *req)
{
    struct share_item it;
    char esc[LOG_ESCAPE_BUF];
    struct fs_addr who;
    fs_status st = FS_EIO;
    int fd, zfd;

    if (find_item(x, c, req, &it, &fd) < 0)
        return;
    log_escape_str(esc, req->path);
    zfd = pack_item(x, fd, it.name, esc);
    close(fd);

    struct msg item;
    memset(&item, 0, sizeof item);
    item.type = MSG_ITEM;
    item.kind = it.kind;
    item.size = it.size;
    memcpy(item.md5, it.md5, sizeof item.md5);
    if (zfd >= 0 && lseek(zfd, 0, SEEK_SET) == 0)
        st = hash_md5_fd(zfd, item.zmd5, &item.len);
    if (st) {
        if (zfd >= 0)
            close(zfd);
        refuse(x, c, "internal", "cannot pack the item", req->path);
        return;
    }
    log_msg(L_INFO, "request %s: sending %s of %llu bytes as a %llu-byte archive", esc,
            msg_kind_name(it.kind), (unsigned long long)it.size, (unsigned long long)item.len);
    net_peer_addr(c->fd, &who);
    int slot = xfer_table_add(x, 1, req->path, &who, item.len);
    struct xfer_uptrace ut;
    struct pace pc;
    up_begin(x, &ut, req, &who, item.len, 0);
    pace_init(&pc, x, c);
    st = conn_send_msg(c, &item, c->timeout_ms);
    if (st == FS_OK)
        st = stream_file(x, &pc, zfd, item.len, c->timeout_ms);
    ut.ev.bytes = st == FS_OK ? item.len : 0;
    xfer_uptrace_end(x, &ut, st);
    xfer_table_del(x, slot);
    close(zfd);
    if (st) {
        upload_failed(x, &pc, "request", esc, &who, st, L_WARN);
        return;
    }
    stats_inc(x->stats, uploads);
}

/* Sends DATA frames for the chunks of fd from offset on. Each chunk is
 * read whole first, because its CRC goes in the frame's header; with
 * nocrc (FETCH nocrc=1: the requester checks every piece by its SHA-256
 * and never looks at the CRC) the frame says crc=00000000 instead, which
 * saves the holder zlib's CRC-32, ~0.3 s of CPU per GiB. */
static fs_status send_chunks(struct xfer_plane *x, struct conn *c, struct pace *pc, int fd,
                             uint64_t size, uint64_t offset, uint64_t chunk, int nocrc,
                             int slot, struct xfer_uptrace *ut)
{
    char *buf = malloc(chunk);
    char head[MSG_MAX_HEADER];
    fs_status st = FS_OK;
    struct msg d;

    if (!buf)
        return FS_ENOMEM;
    memset(&d, 0, sizeof d);
    d.type = MSG_DATA;
    posix_fadvise(fd, (off_t)offset, 0, POSIX_FADV_SEQUENTIAL);
    for (uint64_t off = offset; off < size && st == FS_OK; off += d.len) {
        if (node_stopping(x->node))
            break;
        d.idx = off / chunk;
        d.len = size - off < chunk ? size - off : chunk;
        st = partial_read_at(fd, buf, (size_t)d.len, off);
        if (st)
            break;
        d.crc = nocrc ? 0 : (uint32_t)crc32(0, (const Bytef *)buf, (uInt)d.len);
        int n = msg_format(&d, head, sizeof head);
        st = n < 0 ? FS_EINVAL : pace_write(pc, head, (size_t)n, c->timeout_ms);
        if (st == FS_OK)
            st = pace_write(pc, buf, (size_t)d.len, c->timeout_ms);
        if (st == FS_OK) {
            stats_add(x->stats, bytes_sent, d.len);
            xfer_table_set(x, slot, off + d.len);
            up_progress(x, ut, off + d.len);
            ut->ev.bytes = off + d.len;
            ut->ev.source_bytes += d.len;
            ut->ev.count++;
        }
    }
    free(buf);
    return node_stopping(x->node) ? FS_ECANCELED : st;
}

/* A requester cuts a holder whose DATA frame takes longer than
 * XFER_FRAME_TIMEOUTS of its io timeouts (a trickle). Under our own
 * upload_rate, shared by every slot, a large chunk could take that long:
 * halve it (down to PARTIAL_CHUNK_MIN; the requester re-cuts its partial
 * to match) until one goes out within one io timeout at a slot's share of
 * the rate. */
static uint64_t chunk_for_rate(struct xfer_plane *x, uint64_t chunk, int timeout_ms)
{
    uint64_t bps = rate_get(node_upload_rate(x->node));

    if (bps == 0)
        return chunk;
    uint64_t fits = bps / x->slots * (uint64_t)timeout_ms / 1000;
    while (chunk > PARTIAL_CHUNK_MIN && chunk > fits)
        chunk /= 2;
    return chunk;
}

int xfer_serve_fetch(struct xfer_plane *x, struct conn *c, struct xfer_slot *s,
                     const struct msg *req)
{
    struct share_item it;
    char esc[LOG_ESCAPE_BUF];
    struct stat sb;
    struct fs_addr who;
    int fd;

    if (find_item(x, c, req, &it, &fd) < 0)
        return -1;
    if (it.kind != MSG_KIND_FILE) {
        close(fd);
        refuse(x, c, "refused", "FETCH is for files; ask for a folder with LIST or REQUEST",
               req->path);
        return -1;
    }
    /* The chunk: what was asked for, at most ours (and what our upload_rate
     * lets through in time); PARTIAL_CHUNK for a requester that asks for
     * none (it expects exactly that). */
    uint64_t chunk = req->chunk == 0 ? PARTIAL_CHUNK
                     : req->chunk < XFER_SERVE_CHUNK_MAX ? req->chunk : XFER_SERVE_CHUNK_MAX;
    if (req->chunk != 0)
        chunk = chunk_for_rate(x, chunk, c->timeout_ms);
    if (req->chunk != 0 && !partial_chunk_valid(req->chunk)) {
        char why[MSG_MAX_TEXT + 1];
        snprintf(why, sizeof why, "chunk=%llu is not a power of two from %u to %u",
                 (unsigned long long)req->chunk, PARTIAL_CHUNK_MIN, PARTIAL_CHUNK_MAX);
        close(fd);
        refuse(x, c, "refused", why, req->path);
        return -1;
    }
    if (req->offset > it.size || req->offset % chunk != 0) {
        close(fd);
        refuse(x, c, "refused", "offset is not a chunk boundary inside the file", req->path);
        return -1;
    }
    /* end: a range that stops before the file's end (swarming asks each
     * holder for its own pieces). It must leave whole chunks. */
    uint64_t end = req->end ? req->end : it.size;
    if (req->end && (end <= req->offset || end > it.size || (end % chunk && end != it.size))) {
        close(fd);
        refuse(x, c, "refused", "end is not a chunk boundary after offset inside the file",
               req->path);
        return -1;
    }
    if (fstat(fd, &sb) < 0 || (uint64_t)sb.st_size != it.size) {
        close(fd);
        refuse(x, c, "changed", "the item has changed since it was found", req->path);
        return -1;
    }
    struct msg r;
    memset(&r, 0, sizeof r);
    r.type = MSG_RANGE;
    r.size = it.size;
    memcpy(r.md5, it.md5, sizeof r.md5);
    r.offset = req->offset;
    r.chunk = chunk;
    r.mode = (unsigned)(sb.st_mode & 0777); /* the download gets these bits */
    r.has_mode = 1;
    log_msg(L_INFO, "fetch %s: sending bytes %llu..%llu of %llu", log_escape_str(esc, req->path),
            (unsigned long long)req->offset, (unsigned long long)end,
            (unsigned long long)it.size);
    net_peer_addr(c->fd, &who);
    int slot = xfer_table_add(x, 1, req->path, &who, it.size);
    xfer_table_set(x, slot, req->offset);
    struct xfer_uptrace *ut = &s->tr;
    struct pace pc;
    if (ut->open && !up_same_item(ut, req))
        xfer_uptrace_end(x, ut, FS_OK);
    int first = !ut->open; /* the item's first FETCH on this connection */
    if (first)
        up_begin(x, ut, req, &who, it.size, req->offset);
    pace_init(&pc, x, c);
    fs_status st = conn_send_msg(c, &r, c->timeout_ms);
    if (st == FS_OK)
        st = send_chunks(x, c, &pc, fd, end, req->offset, chunk, req->nocrc != 0, slot, ut);
    xfer_table_del(x, slot);
    close(fd);
    if (st) {
        xfer_uptrace_end(x, ut, st);
        upload_failed(x, &pc, "fetch", esc, &who, st, L_INFO);
        return -1;
    }
    if (first) /* one item served, however many spans a swarming requester asks */
        stats_inc(x->stats, uploads);
    return 0;
}

int xfer_serve_list(struct xfer_plane *x, struct conn *c, const struct msg *req)
{
    struct share_item it;
    char esc[LOG_ESCAPE_BUF];
    char *text = NULL;
    size_t len = 0;
    int fd;

    /* The manifest comes from the index, but the folder must still be
     * reachable beneath the root without a link: one swapped in since the
     * scan is refused (and counted) here, as for FETCH. */
    if (find_item(x, c, req, &it, &fd) < 0)
        return -1;
    close(fd);
    if (it.kind != MSG_KIND_FOLDER) {
        refuse(x, c, "refused", "LIST is for folders", req->path);
        return -1;
    }
    struct share *sh = node_share_get(x->node);
    fs_status st = share_manifest(sh, req->path, &text, &len);
    node_share_put(x->node);
    if (st) {
        refuse(x, c, "changed", "the item has changed since it was found", req->path);
        return -1;
    }
    struct msg m;
    memset(&m, 0, sizeof m);
    m.type = MSG_MANIFEST;
    memcpy(m.md5, it.md5, sizeof m.md5);
    m.len = len;
    log_msg(L_INFO, "list %s: sending the manifest of %llu files", log_escape_str(esc, req->path),
            (unsigned long long)it.files);
    struct pace pc;
    pace_init(&pc, x, c);
    st = conn_send_msg(c, &m, c->timeout_ms);
    if (st == FS_OK)
        st = pace_write(&pc, text, len, c->timeout_ms);
    free(text);
    if (st) {
        struct fs_addr who;
        net_peer_addr(c->fd, &who);
        upload_failed(x, &pc, "list", esc, &who, st, L_INFO);
        return -1;
    }
    return 0;
}

/* Reads the index's list of root (checked against it: a sidecar damaged on
 * disk is never served) into *list (malloc'd). FS_OK or why not. */
static fs_status load_sidecar(struct xfer_plane *x, const char *root, uint64_t size,
                              unsigned char **list, uint64_t *n, uint64_t *piece,
                              const char **why)
{
    struct share *sh = node_share_get(x->node);
    int sfd = -1, pfd = -1;
    fs_status st = statedir_open(share_root_fd(sh), &sfd);

    node_share_put(x->node);
    *why = "the piece list cannot be read";
    if (st == FS_OK) {
        pfd = openat(sfd, SHARE_PIECES_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        st = pfd < 0 ? FS_EIO : pieces_load_at(pfd, root, size, root, list, n, piece, why);
    }
    if (pfd >= 0)
        close(pfd);
    if (sfd >= 0)
        close(sfd);
    return st;
}

/* Sends m (a HASHLIST or ROOTLIST) and its body list (m->len bytes; freed
 * here), paced by the upload bucket like any upload. 0, or -1 after
 * logging why the upload failed (what: "hashes" or "roots"; esc: the
 * escaped path). */
static int send_list(struct xfer_plane *x, struct conn *c, const struct msg *m,
                     unsigned char *list, const char *what, const char *esc)
{
    struct pace pc;

    pace_init(&pc, x, c);
    fs_status st = conn_send_msg(c, m, c->timeout_ms);
    if (st == FS_OK && m->len)
        st = pace_write(&pc, list, (size_t)m->len, c->timeout_ms);
    free(list);
    if (st) {
        struct fs_addr who;
        net_peer_addr(c->fd, &who);
        upload_failed(x, &pc, what, esc, &who, st, L_INFO);
        return -1;
    }
    return 0;
}

int xfer_serve_hashes(struct xfer_plane *x, struct conn *c, const struct msg *req)
{
    struct share_item it;
    char esc[LOG_ESCAPE_BUF];
    unsigned char *list = NULL;
    uint64_t n = 0, piece = 0;
    const char *why = NULL;
    int fd;

    if (find_item(x, c, req, &it, &fd) < 0)
        return -1;
    close(fd);
    if (it.kind != MSG_KIND_FILE) {
        refuse(x, c, "refused", "HASHES is for files", req->path);
        return -1;
    }
    if (it.root[0] == '\0') {
        refuse(x, c, "nohashes", "this holder has no piece hashes for the file", req->path);
        return -1;
    }
    if (strcmp(it.root, req->root) != 0) {
        refuse(x, c, "changed", "the item has changed since it was found", req->path);
        return -1;
    }
    fs_status st = load_sidecar(x, it.root, it.size, &list, &n, &piece, &why);
    if (st) {
        log_msg(L_WARN, "hashes %s: %s", log_escape_str(esc, req->path),
                why ? why : fs_strerror(st));
        refuse(x, c, "nohashes", "this holder cannot read its piece hashes now", req->path);
        return -1;
    }
    struct msg m;
    memset(&m, 0, sizeof m);
    m.type = MSG_HASHLIST;
    m.size = it.size;
    memcpy(m.md5, it.md5, sizeof m.md5);
    memcpy(m.root, it.root, sizeof m.root);
    m.piece = piece;
    m.len = n * PIECES_HASH_LEN;
    log_msg(L_INFO, "hashes %s: sending %llu piece hashes", log_escape_str(esc, req->path),
            (unsigned long long)n);
    return send_list(x, c, &m, list, "hashes", esc);
}

int xfer_serve_roots(struct xfer_plane *x, struct conn *c, const struct msg *req)
{
    struct share_item it;
    char esc[LOG_ESCAPE_BUF];
    unsigned char *list = NULL;
    uint64_t n = 0;
    int fd;

    if (find_item(x, c, req, &it, &fd) < 0)
        return -1;
    close(fd);
    if (it.kind != MSG_KIND_FOLDER) {
        refuse(x, c, "refused", "ROOTS is for folders", req->path);
        return -1;
    }
    struct share *sh = node_share_get(x->node);
    fs_status st = share_folder_roots(sh, req->path, req->root, &list, &n);
    node_share_put(x->node);
    if (st == FS_EMISMATCH || st == FS_ENOTFOUND) {
        refuse(x, c, "changed", "the item has changed since it was found", req->path);
        return -1;
    }
    if (st) {
        refuse(x, c, "nohashes", "this holder has no piece roots for the folder", req->path);
        return -1;
    }
    struct msg m;
    memset(&m, 0, sizeof m);
    m.type = MSG_ROOTLIST;
    memcpy(m.md5, it.md5, sizeof m.md5);
    memcpy(m.root, it.root, sizeof m.root);
    m.len = n * PIECES_HASH_LEN;
    log_msg(L_INFO, "roots %s: sending the roots of %llu files", log_escape_str(esc, req->path),
            (unsigned long long)n);
    return send_list(x, c, &m, list, "roots", esc);
}
