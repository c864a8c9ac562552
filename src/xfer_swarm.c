/* xfer_swarm.c - the requester's engine for a file with piece hashes
 * (docs/DESIGN.md, Transfers): pieces fetched by up to k source threads in
 * the order `sched` chooses, each checked against its SHA-256 (by one
 * checker thread, beside the sources' next receives) and written where it
 * belongs (a version 2 partial), and one hasher thread that feeds
 * the MD5 in order, from memory when a piece arrives in order, else read
 * back from the disk.
 *
 * One source (k = 1, today's get): it asks the holder for the whole run of
 * missing pieces that starts at the span sched gave it (one FETCH, with
 * end= only when the run stops before the file's end), and takes sched's
 * next spans from the same stream while they continue it, so a fresh
 * download is one FETCH on the wire. Several (k > 1): each source asks for
 * sched's spans exactly (end= each span's end), on its own connection to
 * its own holder; holders of the same key are added as their hits arrive
 * (xfer_feed), one source per holder, at most ceil(k / 2) over one
 * neighbour link while hits from another wait. A source that fails (cut)
 * or sends a bad piece (bad) gives its pieces back to the others.
 *
 * Threads: the get's own thread coordinates (adds sources, progress,
 * cancel, joins, the end), each source ("fs-src N") owns its connection
 * while it runs and only receives, the checker ("fs-sha") checks each
 * whole piece's SHA-256 and writes it, the hasher ("fs-md5") owns the MD5. The swarm lock guards
 * everything in struct swarm below it, each source's fields marked so, the
 * partial's bits and nhave, and the sched; it is a leaf, held for a few
 * table operations, never across I/O, hashing or a callback into cmd. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

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

#define SWARM_HASHQ 2      /* pieces handed to the hasher in memory, at most */
#define SWARM_CHECKING 1   /* the piece the checker is hashing and writing */
/* Piece buffers: one per source, the checker's and the queue's, at most
 * this many bytes in all; a get uses min(k, POOL_MAX / piece - HASHQ -
 * CHECKING) sources, at least 1 (8 at 512 KiB pieces, 1 at 2 and 4 MiB). */
#define SWARM_POOL_MAX (8u * 1024 * 1024)
#define SWARM_POOL_CAP (XFER_SOURCES_MAX + SWARM_CHECKING + SWARM_HASHQ)
/* Sources one get may start over its life (cut ones replaced by spares):
 * the per-source report (struct xfer_sources) holds this many. */
#define SWARM_STARTS_MAX XFER_SOURCES_MAX
#define SWARM_LINKS_MAX XFER_SOURCES_MAX /* distinct neighbour links of its sources */
/* A source reads frames: a few KiB of its own plus OpenSSL's and the TLS
 * read path; the checker SHA-256 and a write, the hasher only MD5. */
#define SWARM_SOURCE_STACK (256u * 1024 * TPOOL_STACK_SCALE)
#define SWARM_CHECKER_STACK (128u * 1024 * TPOOL_STACK_SCALE)
#define SWARM_HASHER_STACK (128u * 1024 * TPOOL_STACK_SCALE)
#define SWARM_TICK_MS 200  /* the coordinator's progress, cancel and new-hit period */
#define SWARM_BUSY_MAX_MS 60000 /* a BUSY's retry time is followed up to this long */

struct swarm;

struct source {
    struct swarm *sw;
    unsigned idx;      /* 1-based, in start order */
    struct msg hit;    /* its holder's FOUND */
    struct fetch f;    /* the get's, with this hit and this result: the helpers'
                          messages, cuts and first byte are this source's */
    struct xfer_result res;
    struct conn *c;    /* its connection (source 1: the get's, borrowed) */
    int own;           /* c is own_conn, opened by this source */
    struct conn own_conn;
    pthread_t thread;
    int running;       /* started and not yet joined (coordinator's) */
    fs_status st;      /* how it ended */
    /* the stream of frames its last FETCH asked for: pieces [next, end) */
    uint32_t stream_next, stream_end;
    int streaming;
    int bad;           /* it sent a piece failing its SHA-256 */
    uint64_t bad_piece;
    uint64_t chunk_frames; /* bytes per DATA frame of that stream (divides a piece) */
    unsigned busy_tries;
    /* --- under the swarm lock --- */
    int row;           /* its row in sched, while live */
    int fd;            /* its socket, for a shutdown() from another thread; -1: none */
    int exited;        /* the thread is done */
    int dropped;       /* sched ended its row (slower copy, retired): it ends DONE and
                          never touches the row again (it may be another source's) */
    enum xfer_source_state state;
    uint64_t bytes, pieces; /* verified new pieces it delivered */
    uint64_t rate;
    /* its pieces handed to the checker, not yet stored or refused, and the
     * checker's verdict on the first it refused (FS_OK: none); the source
     * turns a verdict into its failure (settle()), so s->f and s->res stay
     * its own thread's */
    unsigned queued;
    fs_status verdict;
    int verdict_bad;       /* the piece failed its SHA-256 (else: the disk) */
    uint32_t verdict_piece;
    int verdict_errno;
};

struct swarm {
    struct fetch *f;
    const struct file_job *j;
    const struct piece_list *pcs;
    const struct xfer_feed *feed; /* NULL or k <= 1: one source */
    struct partial *pt;
    struct hash_md5 md5;
    uint64_t piece;
    uint32_t npieces;
    unsigned k;          /* sources at once */
    unsigned npool;
    struct fs_addr links[SWARM_LINKS_MAX]; /* the neighbour links its sources came over */
    unsigned nlinks;
    unsigned nsrc;       /* sources started (coordinator's) */
    int last_failed;     /* the source whose failure ended the get, -1 */
    pthread_mutex_t lock;
    pthread_cond_t wake;  /* sources waiting for work, the coordinator for an end */
    pthread_cond_t space; /* the pool and the hasher's queue */
    pthread_cond_t put;   /* the checker's queue, and sources waiting for their pieces */
    /* --- under lock --- */
    struct sched *sd;
    char *pool[SWARM_POOL_CAP]; /* free piece buffers */
    unsigned nfree;
    struct { char *buf; uint32_t idx; } hashq[SWARM_HASHQ]; /* pieces md5_next.. in order */
    /* whole pieces received, for the checker, in the order they came */
    struct { char *buf; uint32_t idx; struct source *s; } putq[SWARM_POOL_CAP];
    unsigned phead, pcount;
    int checker_quit;    /* every source has been joined: the checker ends */
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
    struct source src[SWARM_STARTS_MAX];
};

static int bit(const uint8_t *m, uint32_t i)
{
    return m[i / 8] >> (i % 8) & 1;
}

static int many(const struct swarm *sw)
{
    return sw->k > 1;
}

static unsigned live_sources(const struct swarm *sw)
{
    unsigned n = 0;
    for (unsigned t = 0; t < sw->nsrc; t++)
        n += !sw->src[t].exited;
    return n;
}

/* One source at work, whatever k allows (a get of max_sources 4 that found
 * one holder): it takes the one-holder path, a FETCH for each whole run of
 * missing pieces and in-order pieces waiting for room in the MD5's queue,
 * so a single holder's speed does not depend on max_sources. A source
 * added later finds the pieces past the first one's span missing in
 * sched; the first then jumps, on a new connection (follow()). Lock held. */
static int solo(const struct swarm *sw)
{
    return !many(sw) || live_sources(sw) <= 1;
}

/* Sets stop and wakes everyone: called with the lock held. */
static void stop_all(struct swarm *sw)
{
    sw->stop = 1;
    pthread_cond_broadcast(&sw->wake);
    pthread_cond_broadcast(&sw->space);
    pthread_cond_broadcast(&sw->put);
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
    struct fetch *f = &s->f;
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
 * for its rate. The checker hashes and writes it (checker_main). */
static fs_status receive_piece(struct source *s, uint32_t i, char *buf)
{
    struct swarm *sw = s->sw;
    uint64_t off0 = (uint64_t)i * sw->piece, len = partial_piece_len(sw->pt, i);
    fs_status st = FS_OK;

    for (uint64_t o = 0; o < len && st == FS_OK; o += s->chunk_frames) {
        uint64_t want = len - o < s->chunk_frames ? len - o : s->chunk_frames;
        st = xfer_fetch_frame(&s->f, s->c, (off0 + o) / s->chunk_frames, s->chunk_frames, want,
                              buf + o);
        if (st == FS_OK) {
            pthread_mutex_lock(&sw->lock);
            if (!s->dropped)
                sched_bytes(sw->sd, s->row, want, net_now_ms());
            if (s->verdict) /* the checker refused an earlier piece: settle() says why */
                st = FS_ECANCELED;
            pthread_mutex_unlock(&sw->lock);
        }
    }
    return st;
}

/* Shuts the sockets of the sources sched just closed (rows[0..n)): each
 * ends DONE. FLOOD/1 has no CANCEL, so this is how a request no longer
 * needed stops. Called with the lock held. */
static void drop_rows_locked(struct swarm *sw, const int *rows, int n)
{
    for (int r = 0; r < n; r++)
        for (unsigned t = 0; t < sw->nsrc; t++) {
            struct source *o = &sw->src[t];
            if (o->exited || o->dropped || o->row != rows[r])
                continue;
            o->dropped = 1;
            o->state = XFER_SRC_DONE;
            if (o->fd >= 0)
                shutdown(o->fd, SHUT_RDWR);
        }
}

/* A whole, checked piece i in buf (the checker's thread): written when it
 * is new, its line appended, its bit set; handed to the hasher when it is
 * the next the MD5 needs (the in-memory path), else its buffer goes back
 * to the pool; buf is taken whatever the result. FS_OK, or the write's
 * failure with errno set (settle() turns it into s's failure). With
 * one source, an in-order piece waits for room in the queue rather than be
 * read back later: today's pipeline, and what keeps k = 1 at its speed.
 * With several, a source never waits for the MD5 (the piece is read back
 * in its turn), so one source's piece cannot hold up the others. */
static fs_status store_piece(struct source *s, uint32_t i, char *buf)
{
    struct swarm *sw = s->sw;
    uint64_t len = partial_piece_len(sw->pt, i);
    int closed[SCHED_SOURCES_MAX], nclosed = 0;

    pthread_mutex_lock(&sw->lock);
    int r = s->dropped ? FS_EINVAL : sched_piece_done(sw->sd, s->row, i, closed, &nclosed);
    drop_rows_locked(sw, closed, nclosed);
    if (r != SCHED_PIECE_NEW) {
        if (r == SCHED_PIECE_DUP)
            stats_add(sw->f->x->stats, duplicate_bytes, len);
        put_buffer_locked(sw, buf); /* a second copy, or the source was closed */
        pthread_mutex_unlock(&sw->lock);
        return FS_OK;
    }
    pthread_mutex_unlock(&sw->lock);
    fs_status st = partial_put_piece(sw->pt, i, buf, (size_t)len);
    int saved = errno;
    pthread_mutex_lock(&sw->lock);
    if (st) {
        put_buffer_locked(sw, buf);
        pthread_mutex_unlock(&sw->lock);
        errno = saved;
        return st;
    }
    /* The wait comes before the bit: a piece whose bit is set is one the
     * hasher may read back, and then it must not also reach the queue. */
    while (solo(sw) && !sw->stop && i == sw->md5_next + sw->qcount &&
           sw->qcount == SWARM_HASHQ)
        pthread_cond_wait(&sw->space, &sw->lock);
    partial_set_piece(sw->pt, i);
    sw->present += len;
    sw->delivered += len;
    s->bytes += len;
    s->pieces++;
    if (i == sw->md5_next + sw->qcount && sw->qcount < SWARM_HASHQ) {
        unsigned at = (sw->qhead + sw->qcount++) % SWARM_HASHQ;
        sw->hashq[at].buf = buf;
        sw->hashq[at].idx = i;
        pthread_cond_broadcast(&sw->space);
    } else {
        put_buffer_locked(sw, buf); /* the hasher reads it back in its turn */
    }
    if (many(sw)) /* a source waiting in the endgame may be finished now */
        pthread_cond_broadcast(&sw->wake);
    pthread_mutex_unlock(&sw->lock);
    stats_add(sw->f->x->stats, bytes_received, len);
    return FS_OK;
}

/* Queues the whole piece i in buf for the checker (buf goes with it), so
 * that s receives its next piece while this one is hashed and written.
 * FS_ECANCELED, buf returned, when the swarm stops or the checker has
 * refused one of s's pieces. */
static fs_status hand_over(struct source *s, uint32_t i, char *buf)
{
    struct swarm *sw = s->sw;
    fs_status st = FS_OK;

    pthread_mutex_lock(&sw->lock);
    if (sw->stop || s->verdict) {
        put_buffer_locked(sw, buf);
        st = FS_ECANCELED;
    } else { /* never full: it holds at most the pool's buffers */
        unsigned at = (sw->phead + sw->pcount++) % SWARM_POOL_CAP;
        sw->putq[at].buf = buf;
        sw->putq[at].idx = i;
        sw->putq[at].s = s;
        s->queued++;
        pthread_cond_broadcast(&sw->put);
    }
    pthread_mutex_unlock(&sw->lock);
    return st;
}

/* Waits until the checker has stored or refused every piece s handed it:
 * before s asks sched for more (sched takes a source's pieces in order, and
 * a new request gives the old one's pieces back) and before it ends.
 * Returns FS_OK, or the checker's verdict turned into s's failure here, on
 * s's own thread: a bad piece cuts its holder (bad_chunks, holders_cut), a
 * failed write is this side's (res->local). */
static fs_status settle(struct source *s)
{
    struct swarm *sw = s->sw;
    char why[PATH_MAX + 128];

    pthread_mutex_lock(&sw->lock);
    while (s->queued > 0)
        pthread_cond_wait(&sw->put, &sw->lock);
    fs_status v = s->verdict;
    pthread_mutex_unlock(&sw->lock);
    if (!v)
        return FS_OK;
    if (s->verdict_bad) {
        uint64_t a = (uint64_t)s->verdict_piece * sw->piece;
        s->bad = 1;
        s->bad_piece = s->verdict_piece;
        stats_inc(sw->f->x->stats, bad_chunks);
        snprintf(why, sizeof why, "piece %" PRIu32 " (bytes %" PRIu64 "..%" PRIu64 ") failed "
                 "its SHA-256 check: discarded", s->verdict_piece, a,
                 a + partial_piece_len(sw->pt, s->verdict_piece));
        return xfer_fetch_cut(&s->f, v, why);
    }
    snprintf(why, sizeof why, "cannot write the download into %s/%s: %s", sw->f->share,
             SHARE_STATE_DIR, strerror(s->verdict_errno));
    return xfer_fetch_fail_local(&s->f, v, why);
}

/* Closes s's connection if it opened it (the get's own is only shut: its
 * owner closes it). The fd changes under the lock before the close, so a
 * shutdown() from another thread never reaches a number reused meanwhile. */
static void let_go(struct source *s)
{
    pthread_mutex_lock(&s->sw->lock);
    s->fd = -1;
    pthread_mutex_unlock(&s->sw->lock);
    if (s->own)
        xfer_fetch_disconnect(&s->f, &s->own_conn);
    else if (s->c)
        shutdown(s->c->fd, SHUT_RDWR);
    s->own = 0;
    s->c = NULL;
    s->streaming = 0;
}

/* Opens a connection of s's own to its holder. */
static fs_status reconnect(struct source *s)
{
    fs_status st;

    if (s->c)
        let_go(s);
    if ((st = xfer_fetch_connect(&s->f, &s->own_conn)) != FS_OK)
        return st;
    pthread_mutex_lock(&s->sw->lock);
    s->c = &s->own_conn;
    s->own = 1;
    s->fd = s->c->fd;
    int stop = s->sw->stop || s->dropped;
    pthread_mutex_unlock(&s->sw->lock);
    return stop ? FS_ECANCELED : FS_OK;
}

/* Makes s's stream start at piece a: goes on reading the one under way
 * when it continues there, else asks anew (on a fresh connection when
 * frames of the old stream are still coming: FLOOD/1 cannot cancel them). */
static fs_status follow(struct source *s, uint32_t a, uint32_t run_end)
{
    fs_status st;

    if (s->streaming && s->stream_next == a && a < s->stream_end)
        return FS_OK;
    if (!s->c || (s->streaming && s->stream_next < s->stream_end))
        if ((st = reconnect(s)) != FS_OK)
            return st;
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
        st = hand_over(s, i, buf);
    }
    return st;
}

/* s's holder answered BUSY (with several sources): its request goes back
 * at once, and it waits the retry time the holder named (at most
 * SWARM_BUSY_MAX_MS, XFER_BUSY_TRIES times) in state BUSY, then connects
 * again. Called with the lock held; returns with it held. 1: try again. */
static int busy_wait_locked(struct source *s)
{
    struct swarm *sw = s->sw;
    unsigned ms = s->res.retry_ms < SWARM_BUSY_MAX_MS ? s->res.retry_ms : SWARM_BUSY_MAX_MS;
    struct timespec ts;

    if (!many(sw) || !ms || s->busy_tries >= XFER_BUSY_TRIES || s->dropped)
        return 0;
    s->busy_tries++;
    sched_busy(sw->sd, s->row);
    s->state = XFER_SRC_BUSY;
    pthread_cond_broadcast(&sw->wake); /* its pieces are the others' now */
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    while (!sw->stop && !s->dropped &&
           pthread_cond_timedwait(&sw->wake, &sw->lock, &ts) != ETIMEDOUT)
        ;
    if (sw->stop || s->dropped)
        return 0;
    s->state = XFER_SRC_ACTIVE;
    s->res.retry_ms = 0;
    s->res.why[0] = '\0';
    pthread_mutex_unlock(&sw->lock);
    let_go(s); /* a BUSY holder has closed the connection */
    pthread_mutex_lock(&sw->lock);
    return 1;
}

static void *source_main(void *arg)
{
    struct source *s = arg;
    struct swarm *sw = s->sw;
    struct sched_req req;
    fs_status st = FS_OK;
    char name[16];

    snprintf(name, sizeof name, "fs-src %u", s->idx);
    pthread_setname_np(pthread_self(), name);
    pthread_mutex_lock(&sw->lock);
    for (;;) {
        if (sw->stop || s->dropped) {
            st = FS_ECANCELED;
            break;
        }
        sched_next_from(sw->sd, s->row, net_now_ms(),
                        s->streaming && s->stream_next < s->stream_end ? s->stream_next
                                                                      : UINT32_MAX,
                        &req);
        if (req.kind == SCHED_FINISHED)
            break;
        if (req.kind == SCHED_NONE) { /* claims being re-checked, or the others' tails */
            pthread_cond_wait(&sw->wake, &sw->lock);
            continue;
        }
        if (req.kind == SCHED_ENDGAME)
            stats_inc(sw->f->x->stats, endgame_requests);
        uint32_t run_end = req.b;
        while (solo(sw) && run_end < sw->npieces && run_continues(sw, run_end))
            run_end++;
        pthread_mutex_unlock(&sw->lock);
        st = fetch_span(s, req.a, req.b, run_end);
        fs_status v = settle(s); /* its pieces are sched's HAVE before it asks again */
        if (v)
            st = v;
        pthread_mutex_lock(&sw->lock);
        if (st == FS_EBUSY && busy_wait_locked(s))
            st = FS_OK;
        else if (st)
            break;
    }
    enum xfer_source_state end = XFER_SRC_DONE;
    int count_cut = 0;
    if (s->dropped || st == FS_ECANCELED) {
        st = s->dropped ? FS_OK : st;
    } else if (st) {
        end = s->bad ? XFER_SRC_BAD : XFER_SRC_CUT;
        /* closed, reset or refused: a cut all the same when others carry on */
        count_cut = many(sw) && !s->f.cuts && !s->res.local && st != FS_EBUSY;
    }
    if (!s->dropped)
        sched_end(sw->sd, s->row, end == XFER_SRC_DONE ? SCHED_DONE
                                  : end == XFER_SRC_BAD ? SCHED_BAD : SCHED_CUT);
    s->state = end;
    s->st = st;
    s->exited = 1;
    if (st && st != FS_ECANCELED && (!many(sw) || s->res.local))
        stop_all(sw); /* one source: nobody else takes its pieces; the disk: nobody can */
    pthread_cond_broadcast(&sw->wake);
    pthread_mutex_unlock(&sw->lock);
    if (count_cut) { /* s->res is this thread's until the coordinator joins it */
        char h[ADDR_STR_MAX];
        stats_inc(sw->f->x->stats, holders_cut);
        log_msg(L_WARN, "cut off holder %s (peer %u): %s", addr_format(&s->hit.holder, h),
                s->hit.peer_id, s->res.why);
    }
    return NULL;
}

/* --- the checker --- */

/* Checks each received piece against its SHA-256 and stores it, in the
 * order the sources handed them over (so each source's pieces reach sched
 * in order). Why a thread of its own: the hash and the write (a direct
 * write waits for the disk) then run beside the sources' next receives,
 * and with TLS beside their decryption, instead of after them on the same
 * thread; a one-holder get's critical path was receive + SHA-256 + write
 * in series. A refused piece makes its verdict the source's (its later
 * pieces are dropped unstored, as a bad source's were); the source stops
 * at its next frame and settle() says why. Ends when the coordinator has
 * joined every source (checker_quit) and the queue is empty. */
static void *checker_main(void *arg)
{
    struct swarm *sw = arg;

    pthread_setname_np(pthread_self(), "fs-sha");
    pthread_mutex_lock(&sw->lock);
    for (;;) {
        while (sw->pcount == 0 && !sw->checker_quit)
            pthread_cond_wait(&sw->put, &sw->lock);
        if (sw->pcount == 0)
            break;
        struct source *s = sw->putq[sw->phead].s;
        uint32_t i = sw->putq[sw->phead].idx;
        char *buf = sw->putq[sw->phead].buf;
        sw->phead = (sw->phead + 1) % SWARM_POOL_CAP;
        sw->pcount--;
        int skip = sw->stop || s->verdict;
        pthread_mutex_unlock(&sw->lock);
        fs_status st = FS_OK;
        int bad = 0, err = 0;
        if (skip) {
            pthread_mutex_lock(&sw->lock);
            put_buffer_locked(sw, buf);
        } else if (!pieces_piece_ok(sw->pcs->list, sw->pcs->n, i, buf,
                                    (size_t)partial_piece_len(sw->pt, i))) {
            st = FS_EMISMATCH; /* discarded before a byte of it is written */
            bad = 1;
            pthread_mutex_lock(&sw->lock);
            put_buffer_locked(sw, buf);
        } else {
            st = store_piece(s, i, buf);
            err = errno;
            pthread_mutex_lock(&sw->lock);
        }
        if (st && !s->verdict) {
            s->verdict = st;
            s->verdict_bad = bad;
            s->verdict_piece = i;
            s->verdict_errno = err;
        }
        s->queued--;
        pthread_cond_broadcast(&sw->put);
    }
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

/* The index of neighbour link `from` among the swarm's links (a new one
 * is added; beyond SWARM_LINKS_MAX, which more starts than that never
 * need, the last). */
static unsigned link_of(struct swarm *sw, const struct fs_addr *from)
{
    for (unsigned i = 0; i < sw->nlinks; i++)
        if (addr_equal(&sw->links[i], from))
            return i;
    if (sw->nlinks == SWARM_LINKS_MAX)
        return SWARM_LINKS_MAX - 1;
    sw->links[sw->nlinks] = *from;
    return sw->nlinks++;
}

/* Starts source s (its row taken) on its thread. */
static fs_status start_source(struct swarm *sw, struct source *s)
{
    if (xfer_start_thread(&s->thread, SWARM_SOURCE_STACK, source_main, s) == 0) {
        s->running = 1;
        return FS_OK;
    }
    pthread_mutex_lock(&sw->lock);
    sched_end(sw->sd, s->row, SCHED_DONE);
    s->exited = 1;
    s->state = XFER_SRC_DONE;
    pthread_mutex_unlock(&sw->lock);
    return FS_ENOMEM;
}

/* Sets up source number sw->nsrc for hit, over its fetch context. */
static struct source *new_source(struct swarm *sw, const struct msg *hit)
{
    struct source *s = &sw->src[sw->nsrc];

    memset(s, 0, sizeof *s);
    s->sw = sw;
    s->idx = ++sw->nsrc;
    s->hit = *hit;
    s->f = *sw->f;
    s->f.hit = &s->hit;
    s->f.res = &s->res;
    s->fd = -1;
    s->row = -1;
    s->state = XFER_SRC_ACTIVE;
    return s;
}

/* Adds a source from the hits waiting, when there is room: the first in
 * the get's order that sched accepts (one source per holder; at most
 * ceil(k / 2) over one link while a hit from another link waits). */
static void add_source(struct swarm *sw)
{
    const struct xfer_feed *fd = sw->feed;
    char holder[ADDR_STR_MAX];
    const struct msg *h;

    if (sw->nsrc >= SWARM_STARTS_MAX)
        return;
    for (unsigned i = 0; (h = fd->peek(fd->ctx, sw->f->hit, i)) != NULL; i++) {
        int other = 0, row = -1;
        const struct msg *o;
        for (unsigned t = 0; !other && (o = fd->peek(fd->ctx, sw->f->hit, t)) != NULL; t++)
            other = !addr_equal(&o->from, &h->from);
        h = fd->peek(fd->ctx, sw->f->hit, i); /* peek's pointer lasts until the next call */
        unsigned link = link_of(sw, &h->from);
        pthread_mutex_lock(&sw->lock);
        /* nothing missing: a new source could only ask for second copies */
        fs_status st = sw->stop || sched_missing_count(sw->sd) == 0
                           ? FS_ETOOBIG
                           : sched_add(sw->sd, addr_format(&h->holder, holder), link, other,
                                       &row);
        struct source *s = NULL;
        if (st == FS_OK) {
            s = new_source(sw, h);
            s->row = row;
        }
        pthread_mutex_unlock(&sw->lock);
        if (st == FS_ETOOBIG)
            return;
        if (st)
            continue; /* that holder is a source already, or its link has its share */
        stats_inc(sw->f->x->stats, swarm_sources);
        fd->started(fd->ctx, &s->hit, s->idx, sw->k);
        start_source(sw, s);
        return;
    }
}

/* Joins the sources that ended and tells the get (ended()). Called with
 * the lock held; returns with it held. */
static void reap(struct swarm *sw)
{
    for (unsigned t = 0; t < sw->nsrc; t++) {
        struct source *s = &sw->src[t];
        if (!s->running || !s->exited)
            continue;
        pthread_mutex_unlock(&sw->lock);
        pthread_join(s->thread, NULL);
        s->running = 0;
        if (s->own)
            xfer_fetch_disconnect(&s->f, s->c);
        s->own = 0;
        if (s->st && s->st != FS_ECANCELED)
            sw->last_failed = (int)t;
        if (many(sw) && sw->feed->ended)
            sw->feed->ended(sw->feed->ctx, &s->hit, s->state, s->res.why, s->bad_piece);
        pthread_mutex_lock(&sw->lock);
    }
}

/* The slow-holder rule (sched_retire_slow): with a spare hit waiting and
 * every source running, one clearly slower than the others is closed
 * (DONE: it lied about nothing), its pieces go back, and the spare starts
 * in its place on the next pass. Without a spare it stays: its spans
 * shrink with its rate and the endgame covers its tail. Lock held. */
static void retire_slow_locked(struct swarm *sw, int spare)
{
    int row = sched_retire_slow(sw->sd, net_now_ms(), spare);

    if (row < 0)
        return;
    drop_rows_locked(sw, &row, 1);
    pthread_cond_broadcast(&sw->wake); /* its pieces are the others' now */
}

/* The sources as they are now, in start order (lock held). */
static void snapshot_locked(const struct swarm *sw, struct xfer_sources *out)
{
    out->n = sw->nsrc;
    for (unsigned t = 0; t < sw->nsrc; t++) {
        const struct source *s = &sw->src[t];
        struct xfer_source_info *o = &out->s[t];
        o->peer = (int)s->hit.peer_id;
        o->holder = s->hit.holder;
        o->bytes = s->bytes;
        o->chunks = s->pieces;
        o->rate = s->rate;
        o->state = s->state;
    }
}

/* Waits for the sources and the hasher, adding sources from the feed,
 * reporting progress and watching for a cancel; a stop (failure or
 * cancel) shuts every source's socket so that a blocking read ends at
 * once. With several sources, when every one has ended and no hit is
 * left to start, the swarm stops: the get fails like a one-holder get and
 * goes on to other hits. Returns 1 when cancelled. */
static int run(struct swarm *sw, int hasher_started)
{
    struct xfer_sources snap;
    int was_cancelled = 0;

    pthread_mutex_lock(&sw->lock);
    for (;;) {
        reap(sw);
        unsigned nlive = live_sources(sw);
        int finished = sched_have_count(sw->sd) == sw->npieces;
        if (nlive == 0 && (!hasher_started || sw->hasher_done || sw->stop))
            break;
        if (many(sw) && !sw->stop && !finished && nlive == sw->k &&
            sw->nsrc < SWARM_STARTS_MAX) {
            pthread_mutex_unlock(&sw->lock);
            int spare = sw->feed->peek(sw->feed->ctx, sw->f->hit, 0) != NULL;
            pthread_mutex_lock(&sw->lock);
            retire_slow_locked(sw, spare);
            nlive = live_sources(sw);
        }
        if (many(sw) && !sw->stop && !finished && nlive < sw->k) {
            pthread_mutex_unlock(&sw->lock);
            add_source(sw);
            pthread_mutex_lock(&sw->lock);
            nlive = live_sources(sw);
        }
        if (nlive == 0 && !finished && !sw->stop)
            stop_all(sw); /* every source gone, none waiting: the get moves on */
        if (sw->stop)
            for (unsigned t = 0; t < sw->nsrc; t++)
                if (!sw->src[t].exited && sw->src[t].fd >= 0)
                    shutdown(sw->src[t].fd, SHUT_RDWR);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += SWARM_TICK_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&sw->wake, &sw->lock, &ts);
        uint64_t present = sw->present;
        for (unsigned t = 0; t < sw->nsrc; t++) {
            struct source *s = &sw->src[t];
            int64_t r = s->exited || s->dropped ? 0 : sched_source_rate(sw->sd, s->row,
                                                                          net_now_ms());
            s->rate = r > 0 ? (uint64_t)r : 0;
        }
        if (many(sw))
            snapshot_locked(sw, &snap);
        nlive = live_sources(sw);
        pthread_mutex_unlock(&sw->lock);
        if (many(sw)) { /* `transfers` and the progress line: copied out, then published */
            sw->f->sources = nlive > 0 ? nlive : 1;
            xfer_table_set_sources(sw->f->x, sw->f->slot, &snap);
        }
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
    pthread_cond_destroy(&sw->put);
    pthread_cond_destroy(&sw->space);
    pthread_cond_destroy(&sw->wake);
    pthread_mutex_destroy(&sw->lock);
    free(sw);
}

/* Sources at once for pieces of `piece` bytes: the get's k, bounded by the
 * pool (SWARM_POOL_MAX), at least 1. */
static unsigned sources_for(const struct xfer_feed *feed, uint64_t piece)
{
    unsigned k = feed && feed->peek && feed->started && feed->k > 1 ? feed->k : 1;
    uint64_t fit = SWARM_POOL_MAX / piece;

    if (k > XFER_SOURCES_MAX)
        k = XFER_SOURCES_MAX;
    if (fit < SWARM_CHECKING + SWARM_HASHQ + 1)
        return 1;
    fit -= SWARM_CHECKING + SWARM_HASHQ;
    return k < fit ? k : (unsigned)fit;
}

/* Sets up sched, the pool and the claims from the partial just opened. */
static fs_status swarm_init(struct swarm *sw, struct fetch *f, const struct file_job *j,
                            const struct piece_list *pcs, struct partial *pt)
{
    sw->f = f;
    sw->j = j;
    sw->pcs = pcs;
    sw->pt = pt;
    sw->piece = pcs->piece;
    sw->npieces = (uint32_t)pt->npieces;
    sw->last_failed = -1;
    sw->feed = f->watch ? f->watch->feed : NULL;
    sw->k = sources_for(sw->feed, sw->piece);
    sw->npool = sw->k + SWARM_CHECKING + SWARM_HASHQ;
    pthread_mutex_init(&sw->lock, NULL);
    pthread_cond_init(&sw->wake, NULL);
    pthread_cond_init(&sw->space, NULL);
    pthread_cond_init(&sw->put, NULL);
    sw->sd = sched_new(j->size, (uint32_t)pcs->piece, sw->k);
    sw->claimed = calloc((size_t)sw->npieces / 8 + 1, 1);
    if (!sw->sd || !sw->claimed)
        return FS_ENOMEM;
    for (unsigned i = 0; i < sw->npool; i++) /* aligned: written and read back direct */
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
    return FS_OK;
}

/* The per-source report, in start order, and the result of a failed
 * swarm: why the source whose failure ended it failed. */
static void report_sources(struct swarm *sw, struct xfer_result *res, int why)
{
    res->srcs.n = sw->nsrc;
    for (unsigned t = 0; t < sw->nsrc; t++) {
        const struct source *s = &sw->src[t];
        struct xfer_source_info *o = &res->srcs.s[t];
        o->peer = (int)s->hit.peer_id;
        o->holder = s->hit.holder;
        o->bytes = s->bytes;
        o->chunks = s->pieces;
        o->rate = 0;
        o->state = s->state;
        if (s->res.ttfb > 0 && (res->ttfb == 0 || s->res.ttfb < res->ttfb))
            res->ttfb = s->res.ttfb;
        res->local |= s->res.local;
    }
    if (why && sw->last_failed >= 0) {
        const struct source *s = &sw->src[sw->last_failed];
        memcpy(res->why, s->res.why, sizeof res->why);
        res->retry_ms = s->res.retry_ms;
        res->local |= s->res.local;
    }
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
    struct swarm *sw;
    struct partial *pt;
    pthread_t hasher, checker;
    int resumed, hasher_started = 0, checker_started = 0;
    fs_status st;
    char holder[ADDR_STR_MAX];

    *suspect = 0;
    if ((st = open_partial(f, j, pcs, &pt, &resumed)) != FS_OK)
        return st;
    pt->holder = f->hit->holder;
    pt->durable = !j->staged;
    partial_save(pt); /* records this holder; no source runs yet */
    xfer_fetch_keep_pieces(f, j, pcs);
    if (f->watch && f->watch->seed && !j->staged) /* a sync: claims, checked like a resume's */
        f->watch->seed(f->watch->ctx, pt, pcs->list, pcs->n);
    /* On the heap: 8 sources' hits and contexts are some 80 KiB. */
    sw = calloc(1, sizeof *sw);
    st = sw ? swarm_init(sw, f, j, pcs, pt) : FS_ENOMEM;
    if (st == FS_OK && hash_init(&sw->md5) != FS_OK)
        st = FS_ENOMEM;
    if (st) {
        if (sw)
            swarm_free(sw);
        partial_close(pt);
        return xfer_fetch_fail(f, st, "out of memory");
    }
    uint64_t resumed_bytes = sw->present;
    f->res->resumed_from += resumed_bytes;
    xfer_fetch_report(f, f->base + resumed_bytes, 1);
    if (sched_missing_count(sw->sd) > 0)
        st = xfer_fetch_room(f, pt);
    /* Source 1 is the get's own hit, on the connection its HASHES went on. */
    struct source *s = new_source(sw, f->hit);
    s->c = c;
    s->fd = c->fd;
    if (st == FS_OK)
        st = sched_add(sw->sd, addr_format(&f->hit->holder, holder), link_of(sw, &f->hit->from),
                       0, &s->row);
    if (st == FS_OK && many(sw))
        stats_inc(f->x->stats, swarm_sources);
    if (st == FS_OK && xfer_start_thread(&hasher, SWARM_HASHER_STACK, hasher_main, sw) == 0)
        hasher_started = 1;
    else if (st == FS_OK)
        st = xfer_fetch_fail(f, FS_ENOMEM, "cannot start the hasher thread");
    if (st == FS_OK && xfer_start_thread(&checker, SWARM_CHECKER_STACK, checker_main, sw) == 0)
        checker_started = 1;
    else if (st == FS_OK)
        st = xfer_fetch_fail(f, FS_ENOMEM, "cannot start the checker thread");
    if (st == FS_OK && start_source(sw, s) != FS_OK)
        st = xfer_fetch_fail(f, FS_ENOMEM, "cannot start a source thread");
    if (!s->running) {
        pthread_mutex_lock(&sw->lock);
        s->exited = 1;
        stop_all(sw);
        pthread_mutex_unlock(&sw->lock);
    }
    int was_cancelled = run(sw, hasher_started);
    for (unsigned t = 0; t < sw->nsrc; t++) /* run() joined them all; a stop's last ones here */
        if (sw->src[t].running) {
            pthread_join(sw->src[t].thread, NULL);
            sw->src[t].running = 0;
        }
    if (checker_started) { /* every source is joined: nothing more comes */
        pthread_mutex_lock(&sw->lock);
        sw->checker_quit = 1;
        pthread_cond_broadcast(&sw->put);
        pthread_mutex_unlock(&sw->lock);
        pthread_join(checker, NULL);
    }
    if (hasher_started)
        pthread_join(hasher, NULL);
    for (unsigned t = 0; t < sw->nsrc; t++)
        if (sw->src[t].own)
            xfer_fetch_disconnect(&sw->src[t].f, sw->src[t].c);
    f->res->bytes += sw->delivered;
    f->res->resumed_from -= sw->claims_bad;
    if (sw->nclaims_bad)
        log_msg(L_WARN, "partial %s: %u claimed piece(s) failed their SHA-256 check against "
                "root %.16s...: fetched again", j->name, sw->nclaims_bad, f->hit->root);
    if (sw->has_mode) {
        pt->has_mode = 1;
        pt->mode = sw->mode;
    }
    report_sources(sw, f->res, st == FS_OK);
    char why[64];
    snprintf(why, sizeof why, "cancelled at byte %llu", (unsigned long long)sw->present);
    if (st == FS_OK && was_cancelled)
        st = xfer_fetch_fail(f, FS_ECANCELED, why);
    else if (st == FS_OK && sw->hasher_st)
        st = xfer_fetch_fail_local(f, sw->hasher_st, "cannot read the partial download back");
    else if (st == FS_OK && sw->last_failed >= 0 && sw->md5_next < sw->npieces)
        st = sw->src[sw->last_failed].st; /* its why is in f->res already */
    else if (st == FS_OK && sw->md5_next < sw->npieces)
        st = xfer_fetch_fail(f, FS_EIO, "the download stopped before its end");
    if (st == FS_OK) {
        st = finish(sw, resumed_bytes - sw->claims_bad, suspect);
        if (st == FS_EMISMATCH && !*suspect) /* the root itself lies: its every holder */
            for (unsigned t = 0; t < f->res->srcs.n; t++)
                f->res->srcs.s[t].state = XFER_SRC_BAD;
    } else {
        hash_abort(&sw->md5);
        int saved = errno;
        if (pt->nhave == 0) {
            partial_discard(pt); /* nothing worth keeping */
        } else {
            partial_save(pt); /* every piece written, resumable from any holder */
        }
        errno = saved;
    }
    swarm_free(sw);
    partial_close(pt);
    return st;
}
