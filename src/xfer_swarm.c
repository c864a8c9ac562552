/* xfer_swarm.c - the requester's engine for a file with piece hashes
 * (docs/SWARMING.md): pieces fetched by source threads in the order `sched`
 * chooses, each checked against its SHA-256 and written where it belongs
 * (a version 2 partial), and one hasher thread that feeds the MD5 in order,
 * from memory when a piece arrives in order, else read back from the disk.
 *
 * Step 3 of SWARMING.md: one source (k = 1). A source asks the holder for
 * the whole run of missing pieces that starts at the span sched gave it
 * (one FETCH, with end= only when the run stops before the file's end),
 * and takes sched's next spans from the same stream while they continue
 * it, so a fresh download is one FETCH on the wire, as before.
 *
 * Threads: the get's own thread coordinates (progress, cancel, the end),
 * the source ("fs-src 1") owns its connection while it runs, the hasher
 * ("fs-md5") owns the MD5. The swarm lock guards everything in struct
 * swarm below it, the partial's bits and nhave, and the sched; it is a
 * leaf, held for a few table operations, never across I/O or hashing. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "floodshare/conn.h"
#include "floodshare/hash.h"
#include "floodshare/log.h"
#include "floodshare/net.h"
#include "floodshare/partial.h"
#include "floodshare/pieces.h"
#include "floodshare/sched.h"
#include "floodshare/stats.h"
#include "floodshare/share.h"
#include "floodshare/tpool.h"
#include "xfer_int.h"

#define SWARM_K 1          /* sources at once (step 3) */
#define SWARM_HASHQ 2      /* pieces handed to the hasher in memory, at most */
#define SWARM_POOL (SWARM_K + SWARM_HASHQ) /* piece buffers: one per source, the queue */
/* A source reads frames, hashes with SHA-256 and writes: a few KiB of its
 * own plus OpenSSL's and the TLS read path; the hasher only MD5. */
#define SWARM_SOURCE_STACK (256u * 1024 * TPOOL_STACK_SCALE)
#define SWARM_HASHER_STACK (128u * 1024 * TPOOL_STACK_SCALE)
#define SWARM_TICK_MS 200  /* the coordinator's progress and cancel period */

struct swarm;

struct source {
    struct swarm *sw;
    int row;           /* its row in sched */
    struct conn *c;    /* its connection (k = 1: the get's, borrowed) */
    int own;           /* c is own_conn, opened by this source (a reconnect) */
    struct conn own_conn;
    pthread_t thread;
    int running;       /* started and not yet joined */
    int exited;        /* the thread is done (under the lock) */
    int fd;            /* its socket, for a shutdown() from the coordinator */
    fs_status st;      /* how it ended */
    /* the stream of frames its last FETCH asked for: pieces [next, end) */
    uint32_t stream_next, stream_end;
    int streaming;
    int bad;           /* it sent a piece failing its SHA-256 */
    uint64_t chunk_frames; /* bytes per DATA frame of that stream (divides a piece) */
};

struct swarm {
    struct fetch *f;
    const struct file_job *j;
    const struct piece_list *pcs;
    struct partial *pt;
    struct hash_md5 md5;
    uint64_t piece;
    uint32_t npieces;
    pthread_mutex_t lock;
    pthread_cond_t wake;  /* sources waiting for work, the coordinator for an end */
    pthread_cond_t space; /* the pool and the hasher's queue */
    /* --- under lock --- */
    struct sched *sd;
    char *pool[SWARM_POOL]; /* free piece buffers */
    unsigned nfree;
    struct { char *buf; uint32_t idx; } hashq[SWARM_HASHQ]; /* pieces md5_next.. in order */
    unsigned qhead, qcount;
    uint32_t md5_next;   /* first piece not in the MD5 */
    uint8_t *claimed;    /* a bit a piece: named by the resumed state, not re-checked */
    uint64_t present;    /* bytes of the pieces the partial names */
    uint64_t delivered;  /* bytes of new pieces written by sources */
    uint64_t claims_bad; /* bytes of claimed pieces that failed their re-check */
    uint32_t nclaims_bad;
    int stop;            /* everyone ends: a failure or a cancel */
    int hasher_done;
    fs_status hasher_st;
    int has_mode;        /* the holder's mode, from its RANGE */
    mode_t mode;
    struct source src[SWARM_K];
};

static int bit(const uint8_t *m, uint32_t i)
{
    return m[i / 8] >> (i % 8) & 1;
}

/* Sets stop and wakes everyone: called with the lock held. */
static void stop_all(struct swarm *sw)
{
    sw->stop = 1;
    pthread_cond_broadcast(&sw->wake);
    pthread_cond_broadcast(&sw->space);
}

/* --- the source --- */

/* A free buffer from the pool, or NULL when the swarm stops meanwhile. */
static char *take_buffer(struct swarm *sw)
{
    char *buf = NULL;

    pthread_mutex_lock(&sw->lock);
    while (!sw->stop && sw->nfree == 0)
        pthread_cond_wait(&sw->space, &sw->lock);
    if (!sw->stop)
        buf = sw->pool[--sw->nfree];
    pthread_mutex_unlock(&sw->lock);
    return buf;
}

static void put_buffer_locked(struct swarm *sw, char *buf)
{
    sw->pool[sw->nfree++] = buf;
    pthread_cond_broadcast(&sw->space);
}

/* Is piece i missing and wanted by no one (for the length of a run)? */
static int run_continues(const struct swarm *sw, uint32_t i)
{
    return !partial_has_piece(sw->pt, i) && !bit(sw->claimed, i) && !sched_is_have(sw->sd, i) &&
           sched_copies(sw->sd, i) == 0;
}

/* Sends FETCH for pieces [a, end) (end= only when before the file's end)
 * on s's connection and checks the RANGE: the offset asked for, frames of
 * a valid size no larger than a piece (each piece is then whole frames). */
static fs_status ask(struct source *s, uint32_t a, uint32_t end)
{
    struct swarm *sw = s->sw;
    struct fetch *f = sw->f;
    struct msg m;
    char why[160];

    memset(&m, 0, sizeof m);
    m.type = MSG_FETCH;
    snprintf(m.path, sizeof m.path, "%s", sw->j->remote);
    memcpy(m.md5, sw->j->md5, sizeof m.md5);
    m.offset = (uint64_t)a * sw->piece;
    m.end = end < sw->npieces ? (uint64_t)end * sw->piece : 0;
    m.chunk = sw->piece;
    fs_status st = conn_send_msg(s->c, &m, s->c->timeout_ms);
    if (st) {
        snprintf(why, sizeof why, "sending the request failed: %s", fs_strerror(st));
        return xfer_fetch_fail(f, st, why);
    }
    if ((st = xfer_fetch_reply(f, s->c, &m, MSG_RANGE, sw->j->size, sw->j->md5)) != FS_OK)
        return st;
    if (!partial_chunk_valid(m.chunk) || m.chunk > sw->piece) {
        snprintf(why, sizeof why, "holder announced chunk=%llu, which is not a power of two "
                 "from %u to the piece size %llu", (unsigned long long)m.chunk,
                 PARTIAL_CHUNK_MIN, (unsigned long long)sw->piece);
        return xfer_fetch_cut(f, FS_EPROTO, why);
    }
    if (m.offset != (uint64_t)a * sw->piece)
        return xfer_fetch_fail(f, FS_EPROTO, "holder answered another range than asked");
    pthread_mutex_lock(&sw->lock);
    sw->has_mode = 1; /* its permission bits go into the state at the end */
    sw->mode = m.has_mode ? (mode_t)(m.mode & 0777) : 0644;
    pthread_mutex_unlock(&sw->lock);
    if (m.chunk < sw->piece && m.chunk != s->chunk_frames) /* a holder under upload_rate */
        log_msg(L_INFO, "partial %s: holder sends chunks of %llu bytes, %llu to a piece, "
                "each piece checked once whole", sw->j->name, (unsigned long long)m.chunk,
                (unsigned long long)(sw->piece / m.chunk));
    s->chunk_frames = m.chunk;
    s->stream_next = a;
    s->stream_end = end;
    s->streaming = 1;
    return FS_OK;
}

/* Receives piece i (the stream's next) into buf: its frames, each counted
 * for its rate; then its SHA-256, before a byte of it is written. */
static fs_status receive_piece(struct source *s, uint32_t i, char *buf)
{
    struct swarm *sw = s->sw;
    uint64_t off0 = (uint64_t)i * sw->piece, len = partial_piece_len(sw->pt, i);
    fs_status st = FS_OK;

    for (uint64_t o = 0; o < len && st == FS_OK; o += s->chunk_frames) {
        uint64_t want = len - o < s->chunk_frames ? len - o : s->chunk_frames;
        st = xfer_fetch_frame(sw->f, s->c, (off0 + o) / s->chunk_frames, s->chunk_frames, want,
                              buf + o);
        if (st == FS_OK) {
            pthread_mutex_lock(&sw->lock);
            sched_bytes(sw->sd, s->row, want, net_now_ms());
            pthread_mutex_unlock(&sw->lock);
        }
    }
    if (st == FS_OK && (st = xfer_fetch_check(sw->f, sw->pcs, off0, buf, len)) != FS_OK)
        s->bad = 1;
    return st;
}

/* A whole, checked piece i in buf: written when it is new, its line
 * appended, its bit set; handed to the hasher when it is the next the MD5
 * needs (the in-memory path), else its buffer goes back to the pool. With
 * one source, an in-order piece waits for room in the queue rather than be
 * read back later: today's pipeline, and what keeps k = 1 at its speed. */
static fs_status store_piece(struct source *s, uint32_t i, char *buf)
{
    struct swarm *sw = s->sw;
    uint64_t len = partial_piece_len(sw->pt, i);
    int closed[SCHED_SOURCES_MAX], nclosed = 0;
    char why[PATH_MAX + 128];

    pthread_mutex_lock(&sw->lock);
    int r = sched_piece_done(sw->sd, s->row, i, closed, &nclosed);
    pthread_mutex_unlock(&sw->lock);
    if (r != SCHED_PIECE_NEW) {
        pthread_mutex_lock(&sw->lock);
        put_buffer_locked(sw, buf); /* a second copy, or the source was closed */
        pthread_mutex_unlock(&sw->lock);
        return FS_OK;
    }
    fs_status st = partial_put_piece(sw->pt, i, buf, (size_t)len);
    pthread_mutex_lock(&sw->lock);
    if (st) {
        put_buffer_locked(sw, buf);
        pthread_mutex_unlock(&sw->lock);
        snprintf(why, sizeof why, "cannot write the download into %s/%s: %s", sw->f->share,
                 SHARE_STATE_DIR, strerror(errno));
        return xfer_fetch_fail_local(sw->f, st, why);
    }
    /* The wait comes before the bit: a piece whose bit is set is one the
     * hasher may read back, and then it must not also reach the queue. */
    while (SWARM_K == 1 && !sw->stop && i == sw->md5_next + sw->qcount &&
           sw->qcount == SWARM_HASHQ)
        pthread_cond_wait(&sw->space, &sw->lock);
    partial_set_piece(sw->pt, i);
    sw->present += len;
    sw->delivered += len;
    if (i == sw->md5_next + sw->qcount && sw->qcount < SWARM_HASHQ) {
        unsigned at = (sw->qhead + sw->qcount++) % SWARM_HASHQ;
        sw->hashq[at].buf = buf;
        sw->hashq[at].idx = i;
        pthread_cond_broadcast(&sw->space);
    } else {
        put_buffer_locked(sw, buf); /* the hasher reads it back in its turn */
    }
    pthread_mutex_unlock(&sw->lock);
    stats_add(sw->f->x->stats, bytes_received, len);
    return FS_OK;
}

/* Makes s's stream start at piece a: goes on reading the one under way
 * when it continues there, else asks anew (on a fresh connection when
 * frames of the old stream are still coming: FLOOD/1 cannot cancel them). */
static fs_status follow(struct source *s, uint32_t a, uint32_t run_end)
{
    fs_status st;

    if (s->streaming && s->stream_next == a && a < s->stream_end)
        return FS_OK;
    if (s->streaming && s->stream_next < s->stream_end) {
        /* The get's own connection is only shut (its owner closes it);
         * one this source opened is closed. The coordinator's shutdown()
         * must never reach a descriptor number reused meanwhile: s->fd
         * changes under the lock, before the close. */
        pthread_mutex_lock(&s->sw->lock);
        s->fd = -1;
        pthread_mutex_unlock(&s->sw->lock);
        if (s->own)
            xfer_fetch_disconnect(s->sw->f, &s->own_conn);
        else
            shutdown(s->c->fd, SHUT_RDWR);
        s->own = 0;
        s->c = &s->own_conn;
        if ((st = xfer_fetch_connect(s->sw->f, s->c)) != FS_OK)
            return st;
        pthread_mutex_lock(&s->sw->lock);
        s->own = 1;
        s->fd = s->c->fd;
        int stop = s->sw->stop;
        pthread_mutex_unlock(&s->sw->lock);
        if (stop)
            return FS_ECANCELED;
    }
    s->streaming = 0;
    return ask(s, a, run_end);
}

/* Fetches the span [a, b) sched gave s. */
static fs_status fetch_span(struct source *s, uint32_t a, uint32_t b, uint32_t run_end)
{
    struct swarm *sw = s->sw;
    fs_status st = follow(s, a, run_end);

    for (uint32_t i = a; i < b && st == FS_OK; i++) {
        /* a span may run past the stream (a claim failed just beyond it) */
        if (s->stream_next >= s->stream_end && (st = ask(s, i, b)) != FS_OK)
            return st;
        char *buf = take_buffer(sw);
        if (!buf)
            return FS_ECANCELED;
        st = receive_piece(s, i, buf);
        if (st) {
            pthread_mutex_lock(&sw->lock);
            put_buffer_locked(sw, buf);
            pthread_mutex_unlock(&sw->lock);
            return st;
        }
        s->stream_next = i + 1;
        st = store_piece(s, i, buf);
    }
    return st;
}

static void *source_main(void *arg)
{
    struct source *s = arg;
    struct swarm *sw = s->sw;
    struct sched_req req;
    fs_status st = FS_OK;
    enum sched_state end = SCHED_DONE;

    pthread_setname_np(pthread_self(), "fs-src 1");
    pthread_mutex_lock(&sw->lock);
    for (;;) {
        if (sw->stop) {
            st = FS_ECANCELED;
            break;
        }
        sched_next_from(sw->sd, s->row, net_now_ms(),
                        s->streaming && s->stream_next < s->stream_end ? s->stream_next
                                                                      : UINT32_MAX,
                        &req);
        if (req.kind == SCHED_FINISHED)
            break;
        if (req.kind == SCHED_NONE) { /* claims still being re-checked */
            pthread_cond_wait(&sw->wake, &sw->lock);
            continue;
        }
        uint32_t run_end = req.b;
        while (run_end < sw->npieces && run_continues(sw, run_end))
            run_end++;
        pthread_mutex_unlock(&sw->lock);
        st = fetch_span(s, req.a, req.b, run_end);
        pthread_mutex_lock(&sw->lock);
        if (st)
            break;
    }
    if (st && st != FS_ECANCELED)
        end = s->bad ? SCHED_BAD : SCHED_CUT;
    sched_end(sw->sd, s->row, end);
    s->st = st;
    s->exited = 1;
    if (st && st != FS_ECANCELED)
        stop_all(sw); /* one source: nobody else takes its pieces (step 4 will) */
    pthread_cond_broadcast(&sw->wake);
    pthread_mutex_unlock(&sw->lock);
    return NULL;
}

/* --- the hasher --- */

/* Piece md5_next, read back from the partial into a borrowed buffer (only
 * while at least two are free, so no source waits on it for more than one
 * piece); a claimed one is re-checked against the list first. Called with
 * the lock held; returns with it held. FS_OK, or FS_EIO (the disk). */
static fs_status read_back(struct swarm *sw, uint32_t i, int claim)
{
    uint64_t len = partial_piece_len(sw->pt, i);
    char *buf = sw->pool[--sw->nfree];

    pthread_mutex_unlock(&sw->lock);
    fs_status st = partial_read_piece(sw->pt, i, buf, (size_t)len);
    int ok = st == FS_OK &&
             (!claim || pieces_piece_ok(sw->pcs->list, sw->pcs->n, i, buf, (size_t)len));
    if (ok)
        hash_update(&sw->md5, buf, (size_t)len);
    pthread_mutex_lock(&sw->lock);
    put_buffer_locked(sw, buf);
    if (st)
        return st;
    if (claim) {
        sw->claimed[i / 8] &= (uint8_t)~(1u << (i % 8));
        sched_claim_checked(sw->sd, i, ok);
        if (!ok) { /* fetched like any missing piece; nobody knows who sent it */
            partial_clear_piece(sw->pt, i);
            sw->present -= len;
            sw->claims_bad += len;
            sw->nclaims_bad++;
        }
        pthread_cond_broadcast(&sw->wake);
    }
    if (ok)
        sw->md5_next++;
    return FS_OK;
}

static void *hasher_main(void *arg)
{
    struct swarm *sw = arg;
    fs_status st = FS_OK;

    pthread_setname_np(pthread_self(), "fs-md5");
    pthread_mutex_lock(&sw->lock);
    while (!sw->stop && sw->md5_next < sw->npieces && st == FS_OK) {
        uint32_t i = sw->md5_next;
        if (sw->qcount > 0) { /* in memory: stays queued while hashed, so the
                               * next in-order piece still finds its place */
            char *buf = sw->hashq[sw->qhead].buf;
            pthread_mutex_unlock(&sw->lock);
            hash_update(&sw->md5, buf, (size_t)partial_piece_len(sw->pt, i));
            partial_writeback(sw->pt, i); /* the buffered tail, if any */
            pthread_mutex_lock(&sw->lock);
            sw->qhead = (sw->qhead + 1) % SWARM_HASHQ;
            sw->qcount--;
            sw->md5_next++;
            put_buffer_locked(sw, buf);
        } else if (partial_has_piece(sw->pt, i) && sw->nfree >= 2) {
            st = read_back(sw, i, bit(sw->claimed, i));
        } else {
            pthread_cond_wait(&sw->space, &sw->lock);
        }
    }
    sw->hasher_done = 1;
    sw->hasher_st = st;
    if (st)
        stop_all(sw);
    pthread_cond_broadcast(&sw->wake);
    pthread_mutex_unlock(&sw->lock);
    return NULL;
}

/* --- the coordinator: the get's own thread --- */

/* Waits for the source and the hasher, reporting progress and watching
 * for a cancel; a stop (failure or cancel) shuts the source's socket so
 * that a blocking read ends at once. Returns 1 when cancelled. */
static int run(struct swarm *sw, int hasher_started)
{
    struct source *s = &sw->src[0];
    int was_cancelled = 0;

    pthread_mutex_lock(&sw->lock);
    while (!(s->exited && (!hasher_started || sw->hasher_done))) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += SWARM_TICK_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&sw->wake, &sw->lock, &ts);
        if (sw->stop && !s->exited && s->fd >= 0)
            shutdown(s->fd, SHUT_RDWR);
        uint64_t present = sw->present;
        pthread_mutex_unlock(&sw->lock);
        if (!was_cancelled && xfer_fetch_cancelled(sw->f)) {
            was_cancelled = 1;
            pthread_mutex_lock(&sw->lock);
            stop_all(sw);
            pthread_mutex_unlock(&sw->lock);
        }
        xfer_fetch_report(sw->f, sw->f->base + present, 0);
        pthread_mutex_lock(&sw->lock);
    }
    pthread_mutex_unlock(&sw->lock);
    return was_cancelled;
}

static void swarm_free(struct swarm *sw)
{
    for (unsigned i = 0; i < sw->nfree; i++)
        free(sw->pool[i]);
    for (unsigned i = 0; i < sw->qcount; i++) /* a stop leaves the queue as it was */
        free(sw->hashq[(sw->qhead + i) % SWARM_HASHQ].buf);
    sched_free(sw->sd);
    free(sw->claimed);
    pthread_cond_destroy(&sw->space);
    pthread_cond_destroy(&sw->wake);
    pthread_mutex_destroy(&sw->lock);
}

/* Sets up sched, the pool and the claims from the partial just opened. */
static fs_status swarm_init(struct swarm *sw, struct fetch *f, const struct file_job *j,
                            const struct piece_list *pcs, struct partial *pt)
{
    char holder[ADDR_STR_MAX];

    memset(sw, 0, sizeof *sw);
    sw->f = f;
    sw->j = j;
    sw->pcs = pcs;
    sw->pt = pt;
    sw->piece = pcs->piece;
    sw->npieces = (uint32_t)pt->npieces;
    pthread_mutex_init(&sw->lock, NULL);
    pthread_cond_init(&sw->wake, NULL);
    pthread_cond_init(&sw->space, NULL);
    sw->src[0].fd = -1;
    sw->sd = sched_new(j->size, (uint32_t)pcs->piece, SWARM_K);
    sw->claimed = calloc((size_t)sw->npieces / 8 + 1, 1);
    if (!sw->sd || !sw->claimed)
        return FS_ENOMEM;
    for (unsigned i = 0; i < SWARM_POOL; i++) /* aligned: written and read back direct */
        if (posix_memalign((void **)&sw->pool[sw->nfree], PARTIAL_ALIGN, (size_t)sw->piece))
            return FS_ENOMEM;
        else
            sw->nfree++;
    for (uint32_t i = 0; i < sw->npieces; i++)
        if (partial_has_piece(pt, i)) {
            sw->claimed[i / 8] |= (uint8_t)(1u << (i % 8));
            sched_set_claimed(sw->sd, i);
            sw->present += partial_piece_len(pt, i);
        }
    return sched_add(sw->sd, addr_format(&f->hit->holder, holder), 0, 0, &sw->src[0].row);
}

/* The end of a swarm that delivered every piece: the MD5, then the name. */
static fs_status finish(struct swarm *sw, uint64_t resumed, int *suspect)
{
    struct fetch *f = sw->f;
    const struct file_job *j = sw->j;
    char hex[HASH_HEX_LEN + 1], why[256];

    hash_final(&sw->md5, hex);
    if (strcmp(hex, j->md5) != 0) {
        partial_discard(sw->pt); /* every piece matched the list: the root lies */
        if (resumed > 0) {
            *suspect = 1;
            f->res->resumed_from -= resumed;
            log_msg(L_WARN, "partial %s: content MD5 mismatch over %llu resumed bytes: "
                    "fetching it whole from this holder", j->name, (unsigned long long)resumed);
            snprintf(why, sizeof why, "content MD5 mismatch of %s over a resumed partial",
                     j->name);
            return xfer_fetch_fail(f, FS_EMISMATCH, why);
        }
        snprintf(why, sizeof why, "content MD5 mismatch of %s (got %s): partial discarded",
                 j->name, hex);
        return xfer_fetch_cut(f, FS_EMISMATCH, why);
    }
    xfer_fetch_report(f, f->base + j->size, 1);
    fs_status st = partial_finish_at(sw->pt, j->dir, j->base, !j->staged);
    if (st == FS_EEXIST) {
        partial_discard(sw->pt);
        snprintf(why, sizeof why, "%s already exists, not overwritten", j->name);
        xfer_fetch_fail(f, st, why);
    } else if (st) {
        snprintf(why, sizeof why, "cannot move the download into place: %s", strerror(errno));
        xfer_fetch_fail(f, st, why);
    }
    return st;
}

/* Opens the version 2 partial of j: a message for each way it can fail. */
static fs_status open_partial(struct fetch *f, const struct file_job *j,
                              const struct piece_list *pcs, struct partial **pt, int *resumed)
{
    char why[PATH_MAX + 128];
    fs_status st = partial_open_pieces_at(f->state, j->name, j->size, j->md5, pcs->piece,
                                          f->hit->root, pt, resumed);

    if (st == FS_EBUSY) {
        snprintf(why, sizeof why, "another get is downloading %s right now", j->name);
        return xfer_fetch_fail(f, st, why);
    }
    if (st == FS_ETOOBIG) {
        snprintf(why, sizeof why, "holder announced %llu bytes for %s, more than a download "
                 "may hold", (unsigned long long)j->size, j->name);
        return xfer_fetch_cut(f, st, why);
    }
    if (st) {
        snprintf(why, sizeof why, "cannot keep a partial download in %s/%s: %s", f->share,
                 SHARE_STATE_DIR, st == FS_EIO ? strerror(errno) : fs_strerror(st));
        return xfer_fetch_fail(f, st, why);
    }
    return FS_OK;
}

fs_status xfer_swarm_file(struct fetch *f, const struct file_job *j, struct conn *c,
                          const struct piece_list *pcs, int *suspect)
{
    struct swarm sw;
    struct partial *pt;
    pthread_t hasher;
    int resumed, hasher_started = 0;
    fs_status st;

    *suspect = 0;
    if ((st = open_partial(f, j, pcs, &pt, &resumed)) != FS_OK)
        return st;
    pt->holder = f->hit->holder;
    pt->durable = !j->staged;
    partial_save(pt); /* records this holder; no source runs yet */
    xfer_fetch_keep_pieces(f, j, pcs);
    st = swarm_init(&sw, f, j, pcs, pt);
    if (st == FS_OK && hash_init(&sw.md5) != FS_OK)
        st = FS_ENOMEM;
    if (st) {
        swarm_free(&sw);
        partial_close(pt);
        return xfer_fetch_fail(f, st, "out of memory");
    }
    uint64_t resumed_bytes = sw.present;
    f->res->resumed_from += resumed_bytes;
    xfer_fetch_report(f, f->base + resumed_bytes, 1);
    if (sched_missing_count(sw.sd) > 0)
        st = xfer_fetch_room(f, pt);
    struct source *s = &sw.src[0];
    s->sw = &sw;
    s->c = c;
    s->fd = c->fd;
    if (st == FS_OK && xfer_start_thread(&hasher, SWARM_HASHER_STACK, hasher_main, &sw) == 0)
        hasher_started = 1;
    else if (st == FS_OK)
        st = xfer_fetch_fail(f, FS_ENOMEM, "cannot start the hasher thread");
    if (st == FS_OK && xfer_start_thread(&s->thread, SWARM_SOURCE_STACK, source_main, s) == 0)
        s->running = 1;
    else if (st == FS_OK)
        st = xfer_fetch_fail(f, FS_ENOMEM, "cannot start a source thread");
    if (!s->running) {
        pthread_mutex_lock(&sw.lock);
        s->exited = 1;
        stop_all(&sw);
        pthread_mutex_unlock(&sw.lock);
    }
    int was_cancelled = run(&sw, hasher_started);
    if (s->running)
        pthread_join(s->thread, NULL);
    if (hasher_started)
        pthread_join(hasher, NULL);
    if (s->own)
        xfer_fetch_disconnect(f, s->c);
    f->res->bytes += sw.delivered;
    f->res->resumed_from -= sw.claims_bad;
    if (sw.nclaims_bad)
        log_msg(L_WARN, "partial %s: %u claimed piece(s) failed their SHA-256 check against "
                "root %.16s...: fetched again", j->name, sw.nclaims_bad, f->hit->root);
    if (sw.has_mode) {
        pt->has_mode = 1;
        pt->mode = sw.mode;
    }
    char why[64];
    snprintf(why, sizeof why, "cancelled at byte %llu", (unsigned long long)sw.present);
    if (st == FS_OK && was_cancelled)
        st = xfer_fetch_fail(f, FS_ECANCELED, why);
    else if (st == FS_OK && sw.hasher_st)
        st = xfer_fetch_fail_local(f, sw.hasher_st, "cannot read the partial download back");
    else if (st == FS_OK && s->st)
        st = s->st; /* its why is in f->res already */
    else if (st == FS_OK && sw.md5_next < sw.npieces)
        st = xfer_fetch_fail(f, FS_EIO, "the download stopped before its end");
    if (st == FS_OK) {
        st = finish(&sw, resumed_bytes - sw.claims_bad, suspect);
    } else {
        hash_abort(&sw.md5);
        int saved = errno;
        if (pt->nhave == 0) {
            partial_discard(pt); /* nothing worth keeping */
        } else {
            partial_save(pt); /* every piece written, resumable from any holder */
        }
        errno = saved;
    }
    swarm_free(&sw);
    partial_close(pt);
    return st;
}
