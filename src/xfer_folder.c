/* xfer_folder.c - a large folder spread over its holders (docs/DESIGN.md,
 * Transfers, "Large folders over many holders"; issue 12, SWARMING.md
 * step 7).
 *
 * A large folder whose hit carries a folder root is fetched file by file as
 * before (xfer_fetch.c, fetch_entries()), but each file as a hit of its
 * own: a file FOUND built from the folder's hit and the manifest line, with
 * the file's piece root from the holder's ROOTLIST, run through the same
 * per-file swarm engine as a single file (xfer_swarm.c), whose feed is the
 * folder's holder set. Why not one engine over (file, piece) units: the
 * per-file engine already has every rule (spans, endgame, cuts, resume, the
 * in-order MD5 and the rename) and its tests; a second scheduler over a
 * folder's units would have to grow them all again, and the swarm lock,
 * pool and threads would have to learn several partials at once.
 *
 * The holder set: the folder hit's holder first, then every hit of the
 * same key (size, md5, folder root) that cmd's feed hands over, at most k.
 * A holder joins only after its own ROOTLIST hashed to the folder root
 * (one ROOTS on a connection of its own); one whose list does not is cut
 * for this folder and never a source. Each file is started on one holder
 * (its first source: HASHES and the first span, on a connection opened
 * for that file, or kept from the last file while the holder is the only
 * one: the folder keeps its upload slot), taken in turn over the
 * set so that small files, one piece each, are spread too; the others join
 * its swarm through the file feed. A holder cut or bad in any file leaves
 * the set.
 *
 * Everything here runs on the get's thread; the feed hooks are called by
 * the engine from that thread only (xfer.h), so the set needs no lock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "floodshare/conn.h"
#include "floodshare/log.h"
#include "floodshare/pieces.h"
#include "xfer_int.h"

/* One holder of the folder: its FOUND, and its connection while a file
 * started on it is fetched (the folder's LIST connection for the first). */
struct fholder {
    struct msg hit;
    struct conn c;
    int connected;
    int gone; /* cut or bad: no longer a source of this folder */
};

struct xfer_folder {
    struct fetch *f;                /* the folder's get (borrowed) */
    const struct xfer_feed *feed;   /* cmd's: hits of the folder's key (borrowed) */
    unsigned char *roots;           /* nfiles binary roots, in manifest order */
    uint64_t nfiles;
    struct fholder h[XFER_SOURCES_MAX];
    unsigned nh;
    unsigned turn;                  /* whose turn it is to start a file */
    /* the file being fetched: its key and the hooks its swarm polls */
    struct xfer_feed file_feed;
    struct msg file_hit;
    struct msg scratch;             /* peek's answer, valid until the next hook */
    struct fs_addr started[XFER_SOURCES_MAX];
    unsigned nstarted;
    struct xfer_sources srcs;       /* per holder, summed over the files */
};

/* Reads the ROOTLIST answering ROOTS on c and checks it: the announced
 * length against the manifest's file count before anything is allocated,
 * then the hash of the list against the folder root. A holder whose list
 * fails is cut (vf's result says why). On success *out (malloc'd) holds
 * the list when out is not NULL. */
static fs_status read_roots(struct fetch *vf, struct conn *c, uint64_t nfiles,
                            unsigned char **out)
{
    const struct msg *hit = vf->hit;
    char got[PIECES_ROOT_HEX + 1], why[256];
    struct msg m;

    memset(&m, 0, sizeof m);
    m.type = MSG_ROOTS;
    snprintf(m.path, sizeof m.path, "%s", hit->path);
    memcpy(m.md5, hit->md5, sizeof m.md5);
    memcpy(m.root, hit->root, sizeof m.root);
    fs_status st = conn_send_msg(c, &m, c->timeout_ms);
    if (st) {
        snprintf(why, sizeof why, "sending ROOTS failed: %s", fs_strerror(st));
        return xfer_fetch_fail(vf, st, why);
    }
    if ((st = xfer_fetch_reply(vf, c, &m, MSG_ROOTLIST, 0, hit->md5)) != FS_OK)
        return st;
    if (strcmp(m.root, hit->root) != 0)
        return xfer_fetch_cut(vf, FS_EMISMATCH, "holder sent the roots of another folder root "
                              "than it found");
    if (m.len != nfiles * PIECES_HASH_LEN) {
        snprintf(why, sizeof why, "holder announced a root list of %llu bytes for %llu files "
                 "(%llu expected)", (unsigned long long)m.len, (unsigned long long)nfiles,
                 (unsigned long long)(nfiles * PIECES_HASH_LEN));
        return xfer_fetch_cut(vf, FS_ETOOBIG, why);
    }
    unsigned char *list = malloc(m.len ? (size_t)m.len : 1);
    if (!list)
        return xfer_fetch_fail(vf, FS_ENOMEM, "out of memory");
    st = m.len ? conn_read_body(c, list, (size_t)m.len) : FS_OK;
    if (st) {
        free(list);
        snprintf(why, sizeof why, "reading the root list failed: %s", fs_strerror(st));
        return xfer_fetch_fail(vf, st, why);
    }
    st = pieces_folder_root(list, nfiles, got);
    if (st == FS_OK && strcmp(got, hit->root) != 0) {
        free(list);
        return xfer_fetch_cut(vf, FS_EMISMATCH, "holder's ROOTLIST does not hash to the folder "
                              "root: cut for this folder");
    }
    if (st) {
        free(list);
        return xfer_fetch_fail(vf, st, "cannot hash the root list");
    }
    if (out)
        *out = list;
    else
        free(list);
    return FS_OK;
}

/* A fetch context for holder h of the folder, reporting into res. */
static void holder_fetch(const struct xfer_folder *fo, const struct fholder *h,
                         struct fetch *vf, struct xfer_result *res)
{
    *vf = *fo->f;
    vf->hit = &h->hit;
    vf->item = fo->f->hit;
    vf->res = res;
    memset(res, 0, sizeof *res);
}

static void drop_holder(struct xfer_folder *fo, struct fholder *h)
{
    struct fetch vf;
    struct xfer_result res;

    if (h->connected) {
        holder_fetch(fo, h, &vf, &res);
        xfer_fetch_disconnect(&vf, &h->c);
        h->connected = 0;
    }
}

/* Cuts holder h from the folder and tells the get (cmd prints it and
 * counts the try as failed); piece: the one that failed its SHA-256 (bad). */
static void cut_holder(struct xfer_folder *fo, struct fholder *h, enum xfer_source_state st,
                       const char *why, uint64_t piece)
{
    if (h->gone)
        return;
    h->gone = 1;
    drop_holder(fo, h);
    if (fo->feed && fo->feed->ended)
        fo->feed->ended(fo->feed->ctx, &h->hit, st, why, piece);
}

static unsigned live_holders(const struct xfer_folder *fo)
{
    unsigned n = 0;

    for (unsigned t = 0; t < fo->nh; t++)
        n += !fo->h[t].gone;
    return n;
}

/* A place for one more holder: a cut one's, else a new one; NULL when full. */
static struct fholder *free_place(struct xfer_folder *fo)
{
    for (unsigned t = 0; t < fo->nh; t++)
        if (fo->h[t].gone)
            return &fo->h[t];
    return fo->nh < XFER_SOURCES_MAX ? &fo->h[fo->nh] : NULL;
}

/* Takes in the hits of the folder's key that arrived since, while the set
 * has room: each must answer ROOTS with a list that hashes to the root. */
static void admit(struct xfer_folder *fo)
{
    const struct xfer_feed *fd = fo->feed;
    const struct msg *p;

    if (!fd || !fd->peek || !fd->started)
        return;
    struct fholder *h;

    /* A cut holder's place is taken by the next: k live holders at most. */
    while (live_holders(fo) < fd->k && (h = free_place(fo)) != NULL &&
           (p = fd->peek(fd->ctx, fo->f->hit, 0)) != NULL) {
        struct fetch vf;
        struct xfer_result res;

        memset(h, 0, sizeof *h);
        h->hit = *p; /* peek's pointer lasts until the next hook */
        if (h == &fo->h[fo->nh])
            fo->nh++;
        fd->started(fd->ctx, &h->hit, live_holders(fo), fd->k); /* tried: never peeked again */
        holder_fetch(fo, h, &vf, &res);
        fs_status st = xfer_fetch_connect(&vf, &h->c);
        if (st == FS_OK) {
            h->connected = 1;
            st = read_roots(&vf, &h->c, fo->nfiles, NULL);
        }
        if (st)
            cut_holder(fo, h, XFER_SRC_CUT, res.why, 0); /* "cut off: <why>": no piece of it */
        drop_holder(fo, h); /* a file it starts gets a connection of its own */
    }
}

fs_status xfer_folder_open(struct fetch *f, struct conn *c, uint64_t nfiles,
                           struct xfer_folder **out)
{
    struct xfer_folder *fo = calloc(1, sizeof *fo);

    *out = NULL;
    if (!fo)
        return xfer_fetch_fail(f, FS_ENOMEM, "out of memory");
    fo->f = f;
    fo->feed = f->watch ? f->watch->feed : NULL;
    fo->nfiles = nfiles;
    fs_status st = read_roots(f, c, nfiles, &fo->roots);
    if (st) {
        free(fo);
        return st;
    }
    fo->h[0].hit = *f->hit;
    fo->h[0].c = *c; /* the LIST connection is this holder's from now on */
    fo->h[0].connected = 1;
    fo->nh = 1;
    log_msg(L_INFO, "get %s: the roots of %llu files match the folder root; spreading its "
            "files over its holders", f->hit->name, (unsigned long long)nfiles);
    *out = fo;
    return FS_OK;
}

/* --- the file feed: the folder's holders, as hits of the file --- */

static int was_started(const struct xfer_folder *fo, const struct fs_addr *a)
{
    for (unsigned i = 0; i < fo->nstarted; i++)
        if (addr_equal(&fo->started[i], a))
            return 1;
    return 0;
}

static const struct msg *file_peek(void *ctx, const struct msg *key, unsigned i)
{
    struct xfer_folder *fo = ctx;

    for (unsigned t = 0; t < fo->nh; t++) {
        const struct fholder *h = &fo->h[t];
        if (h->gone || addr_equal(&h->hit.holder, &key->holder) ||
            was_started(fo, &h->hit.holder))
            continue;
        if (i-- > 0)
            continue;
        fo->scratch = fo->file_hit;
        fo->scratch.holder = h->hit.holder;
        fo->scratch.from = h->hit.from;
        fo->scratch.peer_id = h->hit.peer_id;
        return &fo->scratch;
    }
    return NULL;
}

static void file_started(void *ctx, const struct msg *hit, unsigned idx, unsigned k)
{
    struct xfer_folder *fo = ctx;

    (void)idx;
    (void)k;
    if (fo->nstarted < XFER_SOURCES_MAX)
        fo->started[fo->nstarted++] = hit->holder;
}

static struct fholder *holder_of(struct xfer_folder *fo, const struct fs_addr *a)
{
    for (unsigned t = 0; t < fo->nh; t++)
        if (addr_equal(&fo->h[t].hit.holder, a))
            return &fo->h[t];
    return NULL;
}

static void file_ended(void *ctx, const struct msg *hit, enum xfer_source_state st,
                       const char *why, uint64_t piece)
{
    struct xfer_folder *fo = ctx;
    struct fholder *h = holder_of(fo, &hit->holder);

    if (h && (st == XFER_SRC_CUT || st == XFER_SRC_BAD))
        cut_holder(fo, h, st, why, piece);
}

/* Adds one file's per-source figures to the folder's, by holder; a holder
 * that was cut or bad in any file stays so. */
static void sum_sources(struct xfer_folder *fo, const struct xfer_result *res,
                        const struct msg *primary)
{
    struct xfer_sources one = res->srcs;

    if (one.n == 0 && res->bytes) { /* a file fetched without the engine */
        one.n = 1;
        memset(&one.s[0], 0, sizeof one.s[0]);
        one.s[0].peer = (int)primary->peer_id;
        one.s[0].holder = primary->holder;
        one.s[0].bytes = res->bytes;
        one.s[0].state = XFER_SRC_DONE;
    }
    for (unsigned i = 0; i < one.n && i < XFER_SOURCES_MAX; i++) {
        const struct xfer_source_info *s = &one.s[i];
        unsigned t = 0;
        while (t < fo->srcs.n && !addr_equal(&fo->srcs.s[t].holder, &s->holder))
            t++;
        if (t == fo->srcs.n) {
            if (fo->srcs.n == XFER_SOURCES_MAX)
                continue;
            fo->srcs.s[fo->srcs.n++] = *s;
            continue;
        }
        struct xfer_source_info *o = &fo->srcs.s[t];
        o->bytes += s->bytes;
        o->chunks += s->chunks;
        if (o->state != XFER_SRC_BAD && s->state != XFER_SRC_DONE)
            o->state = s->state;
    }
}

/* The next holder, in turn, that is still in the set; NULL when none. */
static struct fholder *next_holder(struct xfer_folder *fo)
{
    for (unsigned n = 0; n < fo->nh; n++) {
        struct fholder *h = &fo->h[fo->turn++ % fo->nh];
        if (!h->gone)
            return h;
    }
    return NULL;
}

/* One try at file j (number idx in manifest order) started on holder h. */
static fs_status try_file(struct xfer_folder *fo, struct fholder *h, const struct file_job *j,
                          uint64_t idx, struct xfer_result *res)
{
    struct fetch *f = fo->f;
    struct fetch ff;
    struct xfer_watch w = {0};

    fo->file_hit = h->hit;
    fo->file_hit.kind = MSG_KIND_FILE;
    fo->file_hit.size = j->size;
    memcpy(fo->file_hit.md5, j->md5, sizeof fo->file_hit.md5);
    snprintf(fo->file_hit.path, sizeof fo->file_hit.path, "%s", j->remote);
    snprintf(fo->file_hit.name, sizeof fo->file_hit.name, "%s", j->name);
    for (size_t b = 0; b < PIECES_HASH_LEN; b++)
        snprintf(fo->file_hit.root + 2 * b, 3, "%02x", fo->roots[idx * PIECES_HASH_LEN + b]);
    fo->nstarted = 0;
    fo->file_feed = (struct xfer_feed){.k = fo->feed ? fo->feed->k : 1, .peek = file_peek,
                                       .started = file_started, .ended = file_ended,
                                       .ctx = fo};
    if (f->watch)
        w = *f->watch;
    w.feed = &fo->file_feed;
    ff = *f;
    ff.hit = &fo->file_hit;
    ff.item = f->hit;
    ff.watch = &w;
    ff.res = res;
    memset(res, 0, sizeof *res);
    if (!h->connected) {
        fs_status st = xfer_fetch_connect(&ff, &h->c);
        if (st)
            return st;
        h->connected = 1;
    }
    struct file_job fj = *j;
    fj.rooted = 1;
    fs_status st = xfer_fetch_file(&ff, &fj, &h->c);
    /* With one holder the next file starts on it at once, on this same
     * connection, so the folder keeps its upload slot between files (given
     * back, it could go to another requester, and the folder would wait out
     * a BUSY: test_slots). With several, the next file starts on another
     * holder, and a holder closes a connection left idle (its slot goes back
     * after XFER_SLOT_KEEP_MS), so this one is closed now. */
    if (st != FS_OK || live_holders(fo) > 1)
        drop_holder(fo, h);
    /* The get's progress and trace go on from where this file left them. */
    f->pos = ff.pos;
    f->last_report = ff.last_report;
    f->last_done = ff.last_done;
    f->last_trace = ff.last_trace;
    f->cuts += ff.cuts;
    f->sources = ff.sources;
    return st;
}

fs_status xfer_folder_file(struct xfer_folder *fo, const struct file_job *j, uint64_t idx)
{
    struct fetch *f = fo->f;
    struct xfer_result res;
    fs_status st = FS_EIO;
    unsigned tries = 0;

    if (idx >= fo->nfiles)
        return xfer_fetch_fail(f, FS_EPROTO, "the manifest has more files than roots");
    admit(fo);
    /* A holder joined: files take turns now, so the one kept connection
     * would sit idle until its holder closes it (try_file()). */
    if (live_holders(fo) > 1)
        for (unsigned t = 0; t < fo->nh; t++)
            drop_holder(fo, &fo->h[t]);
    for (;;) {
        struct fholder *h = ++tries <= 2 * XFER_SOURCES_MAX ? next_holder(fo) : NULL;
        if (!h) /* the last failure's why is in f->res */
            return st == FS_OK ? xfer_fetch_fail(f, FS_EIO, "no holder of the folder is left")
                               : st;
        st = try_file(fo, h, j, idx, &res);
        f->res->bytes += res.bytes;
        f->res->resumed_from += res.resumed_from;
        if (res.ttfb > 0 && (f->res->ttfb == 0 || res.ttfb < f->res->ttfb))
            f->res->ttfb = res.ttfb;
        sum_sources(fo, &res, &fo->file_hit);
        if (st == FS_OK)
            return FS_OK;
        memcpy(f->res->why, res.why, sizeof f->res->why);
        f->res->retry_ms = res.retry_ms;
        f->res->local |= res.local;
        /* This side's failure, a cancel or a name taken: no other holder helps. */
        if (res.local || st == FS_ECANCELED || st == FS_EEXIST || xfer_fetch_cancelled(f))
            return st;
        /* A BUSY holder is not cut, only passed over for this file; the
         * partial keeps what it sent. Anything else: cut for the folder. */
        if (st == FS_EBUSY)
            drop_holder(fo, h);
        else
            cut_holder(fo, h, res.srcs.n && res.srcs.s[0].state == XFER_SRC_BAD
                                  ? XFER_SRC_BAD : XFER_SRC_CUT, res.why, 0);
        if (st == FS_EBUSY && live_holders(fo) <= 1)
            return st; /* nobody else to ask: the get retries it */
        admit(fo);
    }
}

void xfer_folder_close(struct xfer_folder *fo)
{
    if (!fo)
        return;
    for (unsigned t = 0; t < fo->nh; t++)
        drop_holder(fo, &fo->h[t]);
    fo->f->res->srcs = fo->srcs;
    fo->f->sources = 0;
    free(fo->roots);
    free(fo);
}
