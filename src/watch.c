/* watch.c - the CLI side of tracing: watch one or every peer, trace a query. */
#include "floodshare/watch.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "floodshare/cfg.h"
#include "floodshare/ctl.h"
#include "floodshare/json.h"
#include "floodshare/net.h"
#include "floodshare/rundir.h"
#include "floodshare/trace.h"
#include "floodshare/tracefmt.h"
#include "floodshare/tracegraph.h"

#define WATCH_MAX_PEERS 1024
#define WATCH_MAX_HOLES 32 /* gaps in one peer's seqs waiting to be filled or missed */

/* --- the run folder's peers, from their INI files --- */

struct runnet {
    struct tg_peer *peers;
    size_t n;
    struct tg_link *links;
    size_t n_links;
};

static void runnet_free(struct runnet *rn)
{
    free(rn->peers);
    free(rn->links);
    memset(rn, 0, sizeof *rn);
}

static unsigned runnet_id(const struct runnet *rn, const struct fs_addr *a)
{
    for (size_t i = 0; i < rn->n; i++)
        if (addr_equal(&rn->peers[i].addr, a))
            return rn->peers[i].id;
    return 0;
}

static unsigned resolve_cb(void *ctx, const struct fs_addr *a)
{
    return runnet_id(ctx, a);
}

static void add_link(struct runnet *rn, unsigned a, unsigned b, size_t cap)
{
    unsigned lo = a < b ? a : b, hi = a < b ? b : a;

    for (size_t i = 0; i < rn->n_links; i++)
        if (rn->links[i].a == lo && rn->links[i].b == hi)
            return;
    if (rn->n_links < cap)
        rn->links[rn->n_links++] = (struct tg_link){lo, hi};
}

/* Reads the run folder's peers (rundir_ids), and the INI of each that has
 * one (rundir_ini_path): ids, addresses and links. A folder that cannot be
 * read has no peers. Returns 0, -1 when out of memory. */
static int runnet_load(const char *run_dir, struct runnet *rn)
{
    struct cfg *c = malloc(sizeof *c);
    struct fs_addr (*nbs)[CFG_MAX_NEIGHBOURS] = NULL;
    size_t *n_nbs = NULL;
    unsigned *ids = NULL;
    int rc = -1;

    memset(rn, 0, sizeof *rn);
    rn->peers = calloc(WATCH_MAX_PEERS, sizeof *rn->peers);
    nbs = calloc(WATCH_MAX_PEERS, sizeof *nbs);
    n_nbs = calloc(WATCH_MAX_PEERS, sizeof *n_nbs);
    ids = calloc(WATCH_MAX_PEERS, sizeof *ids);
    if (!c || !rn->peers || !nbs || !n_nbs || !ids)
        goto out;
    long found = rundir_ids(run_dir, ids, WATCH_MAX_PEERS);
    for (long i = 0; i < found; i++) {
        char path[RUNDIR_PATH_MAX], why[RUNDIR_ERR_MAX], err[CFG_ERR_MAX];
        size_t k = rn->n++;
        rn->peers[k].id = ids[i];
        if (rundir_ini_path(run_dir, ids[i], path, sizeof path, why, sizeof why) == FS_OK &&
            cfg_load(path, c, err, sizeof err) == FS_OK && c->id == ids[i]) {
            rn->peers[k].addr = c->advertise; /* what its neighbours list */
            memcpy(nbs[k], c->neighbours, sizeof nbs[k]);
            n_nbs[k] = c->n_neighbours;
        }
    }
    size_t cap = (size_t)WATCH_MAX_PEERS * 8;
    rn->links = calloc(cap, sizeof *rn->links);
    if (!rn->links)
        goto out;
    for (size_t i = 0; i < rn->n; i++)
        for (size_t k = 0; k < n_nbs[i]; k++) {
            unsigned other = runnet_id(rn, &nbs[i][k]);
            if (other && other != rn->peers[i].id)
                add_link(rn, rn->peers[i].id, other, cap);
        }
    rc = 0; /* rundir_ids gave the peers sorted by id */
out:
    free(ids);
    free(c);
    free(nbs);
    free(n_nbs);
    if (rc)
        runnet_free(rn);
    return rc;
}

/* Peer id's control socket; FS_OK, or FS_ETOOBIG after saying so on err
 * (NULL: silently). */
static fs_status sock_of(const char *run_dir, unsigned id, char out[RUNDIR_PATH_MAX], FILE *err)
{
    char why[RUNDIR_ERR_MAX];
    fs_status st = rundir_sock_path(run_dir, id, out, RUNDIR_PATH_MAX, why, sizeof why);

    if (st != FS_OK && err)
        fprintf(err, "floodshare: %s\n", why);
    return st;
}

/* --- printing events --- */

struct printer {
    const struct runnet *rn;
    int json, color;
    int out_failed; /* stdout is gone (a closed pipe) */
};

/* Fills the hop ids the emitter could not know from the run folder. */
static void name_hops(const struct runnet *rn, struct trace_event *ev)
{
    if (!ev->from_peer && ev->from.port)
        ev->from_peer = runnet_id(rn, &ev->from);
    if (!ev->to_peer && ev->to.port)
        ev->to_peer = runnet_id(rn, &ev->to);
}

static void print_event(struct printer *pr, struct trace_event *ev)
{
    char line[8192];
    int n;

    name_hops(pr->rn, ev);
    if (pr->json)
        n = trace_format_json(ev, line, sizeof line);
    else
        n = trace_format_text(ev, resolve_cb, (void *)pr->rn, pr->color, line, sizeof line);
    if (n < 0)
        return;
    if (printf("%s\n", line) < 0 || fflush(stdout) != 0)
        pr->out_failed = 1;
}

static int use_color(void)
{
    const char *nc = getenv("NO_COLOR");
    return isatty(STDOUT_FILENO) && !(nc && *nc);
}

/* --- watching: one connection per peer, merged in time order --- */

struct merge {
    struct trace_event *ev;
    size_t n, cap;
};

static volatile sig_atomic_t watch_stop;

static void on_stop(int sig)
{
    (void)sig;
    watch_stop = 1;
}

static uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void merge_add(struct merge *m, const struct trace_event *ev)
{
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 256;
        struct trace_event *p = realloc(m->ev, nc * sizeof *p);
        if (!p)
            return; /* out of memory: this event is lost */
        m->ev = p;
        m->cap = nc;
    }
    m->ev[m->n++] = *ev;
}

static int cmp_ev(const void *a, const void *b)
{
    const struct trace_event *x = a, *y = b;
    if (x->ts_us != y->ts_us)
        return x->ts_us < y->ts_us ? -1 : 1;
    if (x->peer != y->peer)
        return x->peer < y->peer ? -1 : 1;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

static int cmp_seq(const void *a, const void *b)
{
    const struct trace_event *x = a, *y = b;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Prints the buffered events older than cutoff_us (all: UINT64_MAX), in
 * time order. Events from different peers arrive up to WATCH_MERGE_MS
 * apart; holding them that long puts them in order. */
static void merge_flush(struct merge *m, struct printer *pr, uint64_t cutoff_us)
{
    size_t k = 0;

    if (m->n == 0)
        return;
    qsort(m->ev, m->n, sizeof *m->ev, cmp_ev);
    while (k < m->n && m->ev[k].ts_us <= cutoff_us)
        print_event(pr, &m->ev[k++]);
    memmove(m->ev, m->ev + k, (m->n - k) * sizeof *m->ev);
    m->n -= k;
}

/* --- one peer's ring, as `events --raw` gives it --- */

struct collect {
    struct merge m;
    unsigned bad;
};

static void collect_event(void *ctx, const char *s, size_t len)
{
    struct collect *c = ctx;
    struct trace_event ev;

    if (trace_decode(s, len, &ev, NULL) == FS_OK)
        merge_add(&c->m, &ev);
    else
        c->bad++;
}

/* Runs `events --raw [QID]` on peer id and adds its events to c. */
static int collect_from(const char *run_dir, unsigned id, const char *qid, struct collect *c,
                        FILE *err)
{
    char sock[RUNDIR_PATH_MAX], *args[3] = {"events", "--raw", (char *)qid};
    struct ctl_view view = {.event = collect_event, .ctx = c};

    if (sock_of(run_dir, id, sock, err) != FS_OK)
        return CTL_EXIT_USAGE;
    return ctl_call(sock, qid ? 3 : 2, args, stdout, err, &view);
}

/* --- the watcher: every peer of the run folder, found again as it changes ---
 *
 * Each peer's events carry seq, 1, 2, 3... from its start (docs/TRACE.md).
 * A watcher remembers the last seq it showed of each peer; whatever it did
 * not see (its connection was down, the peer restarted, or its queue on the
 * peer overflowed: a `lost` event) it takes from the peer's ring with
 * `events --raw`, and what the ring no longer holds it reports as one
 * `lost` event, "missed N events from peer K". */

struct wconn {
    unsigned id;
    int fd;          /* -1: not connected */
    int ever;        /* was connected once */
    int late;        /* found in the run folder after the watch began */
    int saw_down;    /* its last event was its own peer_down */
    uint64_t retry_ms;
    uint64_t settle_ms; /* look in its ring once more then, and count what is still missing */
    uint64_t stream_seq; /* the highest seq its stream (this connection) brought */
    uint64_t settle_seq; /* stream_seq when settle_ms was set: the same then = silent */
    uint64_t last_seq, last_ts; /* the last event of it shown; 0: none yet */
    uint64_t run_us;     /* when the run we watch began (ping's started=); 0: unknown */
    /* Seqs below last_seq not shown yet: not in the ring when it was read.
     * An event can still come by the stream (transfer_progress is never in
     * a ring); once the stream has gone past a hole, or at settle_ms, the
     * hole's events are missed. */
    struct { uint64_t lo, hi, ts; } holes[WATCH_MAX_HOLES];
    size_t n_holes;
    char buf[CTL_MAX_LINE + 8];
    size_t len;
};

struct watcher {
    const char *run_dir;
    struct runnet rn;   /* ids, addresses and links from the INIs, reread when they change */
    uint64_t ini_sig;   /* of the INI files rn was read from */
    struct wconn *w;
    size_t n, cap;
    struct merge m;
    struct printer pr;
    uint64_t start_us;  /* events before this are history: not replayed */
    uint64_t scan_ms;   /* when to look at the run folder again */
    int single;         /* `peer N watch`: one peer, which ending ends the watch */
};

/* A number that changes when the run folder's INI files do (which ones,
 * their inode, size and time), so names are reread only then. */
static uint64_t ini_signature(const char *run_dir)
{
    unsigned ids[WATCH_MAX_PEERS];
    long n = rundir_ids(run_dir, ids, WATCH_MAX_PEERS);
    uint64_t h = 1469598103934665603ull;

    for (long i = 0; i < n; i++) {
        char path[RUNDIR_PATH_MAX], why[RUNDIR_ERR_MAX];
        struct stat st;
        uint64_t v[4] = {ids[i], 0, 0, 0};
        if (rundir_ini_path(run_dir, ids[i], path, sizeof path, why, sizeof why) == FS_OK &&
            stat(path, &st) == 0) {
            v[1] = (uint64_t)st.st_ino;
            v[2] = (uint64_t)st.st_size;
            v[3] = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
        }
        for (int k = 0; k < 4; k++)
            h = (h ^ v[k]) * 1099511628211ull;
    }
    return h;
}

/* Rereads the names (INI files) when they changed: after a restart the
 * peers listen on new ports, and a peer may have been added. */
static void watcher_names(struct watcher *wt)
{
    uint64_t sig = ini_signature(wt->run_dir);
    struct runnet fresh;

    if (sig == wt->ini_sig || runnet_load(wt->run_dir, &fresh) < 0)
        return;
    runnet_free(&wt->rn);
    wt->rn = fresh;
    wt->ini_sig = sig;
}

static struct wconn *watcher_add(struct watcher *wt, unsigned id, int late)
{
    if (wt->n == wt->cap) {
        size_t nc = wt->cap ? wt->cap * 2 : 16;
        struct wconn *p = realloc(wt->w, nc * sizeof *p);
        if (!p)
            return NULL;
        wt->w = p;
        wt->cap = nc;
    }
    struct wconn *w = &wt->w[wt->n++];
    memset(w, 0, sizeof *w);
    w->id = id;
    w->fd = -1;
    w->late = late;
    return w;
}

/* Looks at the run folder again: a peer added since is watched from now
 * on (its events since the watch began are replayed when it is reached);
 * one whose files are gone and that is not connected is forgotten. */
static void watcher_scan(struct watcher *wt)
{
    unsigned ids[WATCH_MAX_PEERS];
    long n = rundir_ids(wt->run_dir, ids, WATCH_MAX_PEERS);

    wt->scan_ms = net_now_ms() + WATCH_RETRY_MS;
    watcher_names(wt);
    if (wt->single || n < 0)
        return;
    for (long i = 0; i < n; i++) {
        size_t k = 0;
        while (k < wt->n && wt->w[k].id != ids[i])
            k++;
        if (k == wt->n)
            watcher_add(wt, ids[i], 1);
    }
    for (size_t k = 0; k < wt->n;) {
        long i = 0;
        while (i < n && ids[i] != wt->w[k].id)
            i++;
        if (i == n && wt->w[k].fd < 0)
            wt->w[k] = wt->w[--wt->n];
        else
            k++;
    }
}

/* An event the CLI makes itself: a peer it lost or reached again, or the
 * events of a peer it missed. */
static void synthetic(struct watcher *wt, unsigned id, enum trace_type type, const char *reason,
                      uint64_t ts_us, unsigned count)
{
    struct trace_event ev;

    trace_init_event(&ev, type, NULL);
    ev.ts_us = ts_us ? ts_us : wall_us();
    ev.peer = id;
    ev.count = count;
    for (size_t i = 0; i < wt->rn.n; i++)
        if (wt->rn.peers[i].id == id)
            ev.addr = wt->rn.peers[i].addr;
    trace_set(ev.reason, sizeof ev.reason, reason);
    merge_add(&wt->m, &ev);
}

/* Shows ev, an event of w's peer that was not shown yet. */
static void wconn_show(struct watcher *wt, struct wconn *w, struct trace_event *ev)
{
    name_hops(&wt->rn, ev); /* now: the names may change before it is printed */
    merge_add(&wt->m, ev);
    if (ev->seq > w->last_seq) {
        w->last_seq = ev->seq;
        w->last_ts = ev->ts_us;
    }
    w->saw_down = ev->type == TR_PEER_DOWN;
}

/* Reports as one "missed N events" line the holes of w below seq `below`
 * (UINT64_MAX: all of them), and forgets them. */
static void wconn_missed(struct watcher *wt, struct wconn *w, uint64_t below)
{
    uint64_t missed = 0, ts = 0;
    size_t k = 0;

    for (size_t i = 0; i < w->n_holes; i++) {
        if (w->holes[i].hi < below) {
            missed += w->holes[i].hi - w->holes[i].lo + 1;
            ts = ts ? ts : w->holes[i].ts;
        } else {
            w->holes[k++] = w->holes[i];
        }
    }
    w->n_holes = k;
    if (missed)
        synthetic(wt, w->id, TR_LOST, "not in its ring any more", ts,
                  missed > UINT32_MAX ? UINT32_MAX : (unsigned)missed);
}

/* Seqs lo..hi of w were not shown; ts: the time of the event after them. */
static void wconn_hole(struct watcher *wt, struct wconn *w, uint64_t lo, uint64_t hi, uint64_t ts)
{
    if (w->n_holes == WATCH_MAX_HOLES)
        wconn_missed(wt, w, w->holes[0].hi + 1); /* the oldest one will not be filled now */
    w->holes[w->n_holes].lo = lo;
    w->holes[w->n_holes].hi = hi;
    w->holes[w->n_holes].ts = ts;
    w->n_holes++;
}

/* 1 when seq is in one of w's holes, which then no longer holds it. */
static int wconn_fills_hole(struct wconn *w, uint64_t seq)
{
    for (size_t i = 0; i < w->n_holes; i++) {
        if (seq < w->holes[i].lo || seq > w->holes[i].hi)
            continue;
        if (w->holes[i].lo == w->holes[i].hi) {
            w->holes[i] = w->holes[--w->n_holes];
        } else if (seq == w->holes[i].lo) {
            w->holes[i].lo++;
        } else if (seq == w->holes[i].hi) {
            w->holes[i].hi--;
        } else if (w->n_holes < WATCH_MAX_HOLES) { /* split */
            w->holes[w->n_holes] = w->holes[i];
            w->holes[w->n_holes].lo = seq + 1;
            w->holes[i].hi = seq - 1;
            w->n_holes++;
        } else {
            w->holes[i].hi = seq - 1; /* no room: the rest counts as missed */
        }
        return 1;
    }
    return 0;
}

/* Takes from ring[0..n) (w's peer's ring, in seq order) the events after
 * w->last_seq and before upto (0: no bound), none older than floor_us, and
 * shows them; the seqs in between that the ring does not hold become holes. */
static void wconn_fill(struct watcher *wt, struct wconn *w, struct trace_event *ring, size_t n,
                       uint64_t upto, uint64_t floor_us, uint64_t upto_ts)
{
    uint64_t expected = w->last_seq + 1;

    for (size_t i = 0; i < n; i++) {
        struct trace_event *ev = &ring[i];
        if (ev->seq < expected || ev->seq == 0)
            continue;
        if (upto && ev->seq >= upto)
            break;
        if (ev->ts_us < floor_us) { /* before the watch began: history, not missed */
            expected = ev->seq + 1;
            w->last_seq = ev->seq;
            w->last_ts = ev->ts_us;
            continue;
        }
        if (ev->seq > expected)
            wconn_hole(wt, w, expected, ev->seq - 1, ev->ts_us);
        wconn_show(wt, w, ev);
        expected = ev->seq + 1;
    }
    if (upto && expected < upto)
        wconn_hole(wt, w, expected, upto - 1, upto_ts);
}

/* When the run of w's peer that answers now began (`ping`'s started=), or
 * 0 when it did not say. Two runs can end and start between two looks, and
 * the ring of a busy one need not go back to its start, so only this tells
 * a restart from a ring that moved on. */
static uint64_t wconn_run(struct watcher *wt, struct wconn *w)
{
    char sock[RUNDIR_PATH_MAX], *args[] = {"ping"}, *text = NULL;
    uint64_t run = 0;

    if (sock_of(wt->run_dir, w->id, sock, NULL) != FS_OK)
        return 0;
    if (ctl_capture(sock, 1, args, &text) == CTL_EXIT_OK) {
        const char *v = strstr(text, " started=");
        if (v)
            run = strtoull(v + 9, NULL, 10);
    }
    free(text);
    return run;
}

/* Reads w's peer's ring (`events --raw`), in seq order, into *c. 0, or -1
 * when the peer did not answer. */
static int wconn_ring(struct watcher *wt, struct wconn *w, struct collect *c)
{
    memset(c, 0, sizeof *c);
    FILE *null = fopen("/dev/null", "w");
    int rc = collect_from(wt->run_dir, w->id, NULL, c, null ? null : stderr);
    if (null)
        fclose(null);
    if (rc != CTL_EXIT_OK) {
        free(c->m.ev);
        memset(c, 0, sizeof *c);
        return -1;
    }
    qsort(c->m.ev, c->m.n, sizeof *c->m.ev, cmp_seq);
    return 0;
}

/* Shows what w's ring holds after the last event shown and before upto
 * (0: up to now). */
static void wconn_catch_up(struct watcher *wt, struct wconn *w, uint64_t upto, uint64_t upto_ts)
{
    struct collect c;

    if (wconn_ring(wt, w, &c) < 0)
        return;
    wconn_fill(wt, w, c.m.ev, c.m.n, upto, 0, upto_ts);
    free(c.m.ev);
}

/* Has the ring read again after WATCH_SETTLE_MS (wconn_settle). */
static void wconn_settle_later(struct wconn *w)
{
    w->settle_ms = net_now_ms() + WATCH_SETTLE_MS;
    w->settle_seq = w->stream_seq;
}

/* WATCH_SETTLE_MS after a (re)connect or a `lost`: if the stream has been
 * silent since, nothing is on its way: read the ring once more (events
 * missed while the peer subscribed us) and count every hole as missed;
 * else the stream has gone on, past some holes (missed: wconn_line) and
 * maybe not yet past others: look again later. */
static void wconn_settle(struct watcher *wt, struct wconn *w)
{
    w->settle_ms = 0;
    if (w->stream_seq == w->settle_seq) {
        wconn_catch_up(wt, w, 0, 0);
        wconn_missed(wt, w, UINT64_MAX);
    } else if (w->n_holes) {
        wconn_settle_later(w);
    }
}

/* Just (re)connected to w's peer: shows what happened there since the
 * last event shown (or, for a peer found after the watch began, since the
 * watch began), from its ring. A peer that restarted is a new run, whose
 * seqs start again from 1: run, when the run now answering began (0: it
 * did not say), differs from the one we watched. (For a peer that does not
 * say: it said peer_down, or its ring no longer goes back to the last
 * event shown and starts later.) */
static void wconn_reached(struct watcher *wt, struct wconn *w, uint64_t run)
{
    struct collect c;

    if (wconn_ring(wt, w, &c) < 0)
        return;
    const struct trace_event *ring = c.m.ev;
    uint64_t floor_us = 0;
    if (w->last_seq && run && w->run_us) {
        if (run != w->run_us) {
            wconn_missed(wt, w, UINT64_MAX); /* the old run's holes */
            w->last_seq = w->last_ts = 0;
        }
    } else if (w->last_seq) { /* a peer that does not say when it started */
        int same = 0;
        for (size_t i = 0; i < c.m.n && !same; i++)
            same = ring[i].seq == w->last_seq && ring[i].ts_us == w->last_ts;
        if (!same && !w->saw_down && c.m.n && ring[0].seq > w->last_seq &&
            ring[0].ts_us >= w->last_ts)
            same = 1; /* the same run, whose ring has moved on past what we saw */
        if (!same) {
            wconn_missed(wt, w, UINT64_MAX); /* the old run's holes */
            w->last_seq = w->last_ts = 0;
        }
    } else {
        floor_us = wt->start_us;
    }
    w->run_us = run;
    wconn_fill(wt, w, c.m.ev, c.m.n, 0, floor_us, 0);
    free(c.m.ev);
    wconn_settle_later(w);
}

static void wconn_close(struct watcher *wt, struct wconn *w)
{
    close(w->fd);
    w->fd = -1;
    w->len = 0;
    w->settle_ms = 0;
    w->retry_ms = net_now_ms() + WATCH_RETRY_MS;
    wconn_missed(wt, w, UINT64_MAX); /* nothing more comes by this stream */
    if (!w->saw_down)
        synthetic(wt, w->id, TR_PEER_DOWN, "watch: connection lost", 0, 0);
}

/* Handles one line from a peer's watch stream. 1 when the stream ended. */
static int wconn_line(struct watcher *wt, struct wconn *w, const char *s, size_t n)
{
    struct trace_event ev;
    const char *why = NULL;

    if (n >= 2 && s[0] == 'E' && s[1] == ' ') {
        if (trace_decode(s + 2, n - 2, &ev, &why) != FS_OK) {
            fprintf(stderr, "floodshare: watch: peer %u sent an event that does not parse (%s)\n",
                    w->id, why);
            return 0;
        }
        if (ev.type == TR_LOST || ev.seq == 0) {
            /* Its queue for us overflowed: the next event shows the gap in
             * the seqs; if none comes, the ring is read at settle_ms. */
            wconn_settle_later(w);
            return 0;
        }
        if (ev.seq > w->stream_seq)
            w->stream_seq = ev.seq;
        if (w->last_seq && ev.seq <= w->last_seq) {
            if (wconn_fills_hole(w, ev.seq)) /* e.g. a transfer_progress */
                wconn_show(wt, w, &ev);
            return 0; /* else shown already, from the ring */
        }
        if (w->last_seq && ev.seq > w->last_seq + 1)
            wconn_catch_up(wt, w, ev.seq, ev.ts_us);
        wconn_missed(wt, w, ev.seq); /* the stream is past them: they will not come */
        wconn_show(wt, w, &ev);
        return 0;
    }
    if (n >= 2 && s[0] == '2' && (s[1] == ' ' || s[1] == '+'))
        fprintf(stderr, "peer %u: %.*s\n", w->id, (int)(n - 2), s + 2);
    return n >= 2 && s[0] == '=' && s[1] == ' ';
}

/* Reads what w's peer sent; 1 when its stream ended. */
static int wconn_read(struct watcher *wt, struct wconn *w)
{
    ssize_t got = recv(w->fd, w->buf + w->len, sizeof w->buf - w->len, MSG_DONTWAIT);

    if (got < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (got <= 0)
        return 1;
    w->len += (size_t)got;
    char *nl;
    while ((nl = memchr(w->buf, '\n', w->len)) != NULL) {
        size_t n = (size_t)(nl - w->buf);
        int end = wconn_line(wt, w, w->buf, n);
        memmove(w->buf, nl + 1, w->len - n - 1);
        w->len -= n + 1;
        if (end)
            return 1;
    }
    return w->len == sizeof w->buf; /* a line longer than any peer sends */
}

static void wconn_try(struct watcher *wt, struct wconn *w)
{
    char sock[RUNDIR_PATH_MAX], *args[] = {"watch", "--raw"};

    if (w->fd >= 0 || net_now_ms() < w->retry_ms)
        return;
    if (sock_of(wt->run_dir, w->id, sock, NULL) != FS_OK ||
        ctl_open(sock, 2, args, &w->fd) != CTL_EXIT_OK) {
        w->fd = -1;
        w->retry_ms = net_now_ms() + WATCH_RETRY_MS;
        return;
    }
    w->stream_seq = 0;
    uint64_t run = wconn_run(wt, w);
    /* A peer that was down or is new: its INI may be newer than our names. */
    if (w->ever || w->retry_ms || w->late)
        watcher_names(wt);
    if (w->ever || w->retry_ms || w->late) { /* it was down, lost or new: say it is back */
        synthetic(wt, w->id, TR_PEER_UP, "watch: connected", 0, 0);
        wconn_reached(wt, w, run);
    } else {
        w->run_us = run;
    }
    w->ever = 1;
    w->saw_down = 0;
}

/* Watches the peers of wt until SIGINT/SIGTERM (or, single, until its one
 * peer's stream ends). */
static int watch_run(struct watcher *wt, int json)
{
    struct pollfd *pfd = NULL;
    size_t pfd_cap = 0;
    struct sigaction sa, old_int, old_term;
    int code = CTL_EXIT_OK;
    size_t up = 0;
    char sock[RUNDIR_PATH_MAX];

    for (size_t i = 0; i < wt->n; i++)
        if (sock_of(wt->run_dir, wt->w[i].id, sock, stderr) != FS_OK)
            return CTL_EXIT_USAGE;
    wt->pr = (struct printer){.rn = &wt->rn, .json = json, .color = !json && use_color()};
    wt->start_us = wall_us();
    wt->scan_ms = net_now_ms() + WATCH_RETRY_MS;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    watch_stop = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    for (size_t i = 0; i < wt->n; i++) {
        wconn_try(wt, &wt->w[i]);
        up += wt->w[i].fd >= 0;
    }
    if (wt->single && up == 0) {
        sock_of(wt->run_dir, wt->w[0].id, sock, NULL);
        fprintf(stderr, "floodshare: peer %u is not running (no answer on %s)\n", wt->w[0].id,
                sock);
        code = CTL_EXIT_NOPEER;
        goto out;
    }
    if (!json)
        fprintf(stderr, "watching %zu of %zu peer%s in %s (Ctrl-C to stop)\n", up, wt->n,
                wt->n == 1 ? "" : "s", wt->run_dir);
    while (!watch_stop && !wt->pr.out_failed) {
        uint64_t now = net_now_ms();
        if (now >= wt->scan_ms)
            watcher_scan(wt);
        if (wt->n > pfd_cap) {
            struct pollfd *p = realloc(pfd, wt->n * sizeof *p);
            if (!p) {
                code = CTL_EXIT_FAIL;
                break;
            }
            pfd = p;
            pfd_cap = wt->n;
        }
        for (size_t i = 0; i < wt->n; i++) {
            struct wconn *w = &wt->w[i];
            if (!wt->single)
                wconn_try(wt, w);
            pfd[i].fd = w->fd;
            pfd[i].events = POLLIN;
            pfd[i].revents = 0;
        }
        if (poll(pfd, wt->n, 50) < 0 && errno != EINTR)
            break;
        int ended = 0;
        now = net_now_ms();
        for (size_t i = 0; i < wt->n; i++) {
            struct wconn *w = &wt->w[i];
            if (w->fd >= 0 && pfd[i].revents && wconn_read(wt, w)) {
                wconn_close(wt, w);
                ended = wt->single;
            }
            /* After what the stream had (read just now). */
            if (w->fd >= 0 && w->settle_ms && now >= w->settle_ms)
                wconn_settle(wt, w);
        }
        merge_flush(&wt->m, &wt->pr, ended ? UINT64_MAX : wall_us() - WATCH_MERGE_MS * 1000u);
        if (ended)
            break;
    }
    merge_flush(&wt->m, &wt->pr, UINT64_MAX);
out:
    for (size_t i = 0; i < wt->n; i++)
        if (wt->w[i].fd >= 0)
            close(wt->w[i].fd);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    free(pfd);
    return code;
}

static void watcher_free(struct watcher *wt)
{
    free(wt->m.ev);
    free(wt->w);
    runnet_free(&wt->rn);
}

static int want_json(int argc, char **argv, const char *usage)
{
    int json = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") != 0) {
            fprintf(stderr, "usage: %s\n", usage);
            return -1;
        }
        json = 1;
    }
    return json;
}

int watch_all_cmd(const char *run_dir, int argc, char **argv)
{
    struct watcher wt = {.run_dir = run_dir};
    int json = want_json(argc, argv, "watch [--json]");
    int code = CTL_EXIT_FAIL;

    if (json < 0)
        return CTL_EXIT_USAGE;
    wt.ini_sig = ini_signature(run_dir);
    if (runnet_load(run_dir, &wt.rn) < 0)
        return CTL_EXIT_FAIL;
    if (wt.rn.n == 0) {
        fprintf(stderr, "floodshare: no peers in %s (start some with scripts/topology up)\n",
                run_dir);
        goto out;
    }
    for (size_t i = 0; i < wt.rn.n; i++)
        if (!watcher_add(&wt, wt.rn.peers[i].id, 0))
            goto out;
    code = watch_run(&wt, json);
out:
    watcher_free(&wt);
    return code;
}

/* --- one peer's events --- */

int watch_peer_cmd(const char *run_dir, unsigned id, int argc, char **argv)
{
    struct runnet rn;
    int code;

    if (strcmp(argv[0], "events") == 0) {
        const char *qid = NULL;
        for (int i = 1; i < argc; i++) {
            if (argv[i][0] == '-' || qid) {
                fprintf(stderr, "usage: peer N events [--json] [QID]\n");
                return CTL_EXIT_USAGE;
            }
            qid = argv[i];
        }
        if (runnet_load(run_dir, &rn) < 0)
            return CTL_EXIT_FAIL;
        struct collect c = {0};
        code = collect_from(run_dir, id, qid, &c, stderr);
        struct printer pr = {.rn = &rn, .color = use_color()};
        merge_flush(&c.m, &pr, UINT64_MAX);
        free(c.m.ev);
        runnet_free(&rn);
        return code;
    }
    int json = want_json(argc, argv, "peer N watch [--json]");
    if (json < 0)
        return CTL_EXIT_USAGE;
    struct watcher wt = {.run_dir = run_dir, .single = 1};
    wt.ini_sig = ini_signature(run_dir);
    if (runnet_load(run_dir, &wt.rn) < 0 || !watcher_add(&wt, id, 0)) {
        watcher_free(&wt);
        return CTL_EXIT_FAIL;
    }
    code = watch_run(&wt, json);
    watcher_free(&wt);
    return code;
}

/* --- trace QUERY-ID --- */

/* Runs `dot -TFORMAT -o file` with the DOT text on its standard input.
 * 0, or -1 after saying why. */
static int render(const char *dot_text, size_t len, const char *format, const char *file)
{
    int in[2];
    pid_t pid;
    int status;

    if (pipe(in) < 0)
        return -1;
    char fmt[16];
    snprintf(fmt, sizeof fmt, "-T%s", format);
    pid = fork();
    if (pid < 0) {
        close(in[0]);
        close(in[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(in[0], STDIN_FILENO);
        close(in[0]);
        close(in[1]);
        execlp("dot", "dot", fmt, "-o", file, (char *)NULL);
        _exit(errno == ENOENT ? 127 : 126);
    }
    close(in[0]);
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigaction(SIGPIPE, &ign, &old); /* dot may exit before reading everything */
    size_t off = 0;
    while (off < len) {
        ssize_t wr = write(in[1], dot_text + off, len - off);
        if (wr < 0 && errno == EINTR)
            continue;
        if (wr <= 0)
            break;
        off += (size_t)wr;
    }
    close(in[1]);
    sigaction(SIGPIPE, &old, NULL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
        fprintf(stderr, "floodshare: trace: cannot write %s: Graphviz `dot` is not installed "
                "(Debian: apt-get install graphviz); `floodshare trace QID --dot > flood.dot` "
                "writes the DOT source\n", file);
        return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "floodshare: trace: dot could not write %s\n", file);
        return -1;
    }
    fprintf(stderr, "wrote %s\n", file);
    return 0;
}

struct trace_opts {
    const char *qid, *svg, *png;
    int json, dot;
};

static int trace_args(int argc, char **argv, struct trace_opts *o)
{
    static const char usage[] = "usage: trace QUERY-ID [--json] [--dot] [--svg FILE] [--png FILE]";

    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            o->json = 1;
        } else if (strcmp(argv[i], "--dot") == 0) {
            o->dot = 1;
        } else if ((strcmp(argv[i], "--svg") == 0 || strcmp(argv[i], "--png") == 0) &&
                   i + 1 < argc) {
            *(argv[i][2] == 's' ? &o->svg : &o->png) = argv[i + 1];
            i++;
        } else if (argv[i][0] != '-' && !o->qid) {
            o->qid = argv[i];
        } else {
            fprintf(stderr, "%s\n", usage);
            return -1;
        }
    }
    if (!o->qid || (o->json && o->dot)) {
        fprintf(stderr, "%s\n", usage);
        return -1;
    }
    return 0;
}

/* The one query id among evs[0..n); 0 when none, -1 (after saying so)
 * when the prefix matched several. */
static int one_query(const struct trace_event *evs, size_t n, const char *prefix)
{
    const char *first = NULL;
    int many = 0;

    for (size_t i = 0; i < n; i++) {
        if (!first)
            first = evs[i].qid;
        else if (strcmp(first, evs[i].qid) != 0)
            many = 1;
    }
    if (!first)
        return 0;
    if (!many)
        return 1;
    fprintf(stderr, "floodshare: trace: \"%s\" names more than one query:", prefix);
    for (size_t i = 0; i < n; i++) {
        int seen = 0;
        for (size_t k = 0; k < i && !seen; k++)
            seen = strcmp(evs[k].qid, evs[i].qid) == 0;
        if (!seen)
            fprintf(stderr, " %s", evs[i].qid);
    }
    fputs("; give more of its digits\n", stderr);
    return -1;
}

/* Writes the outputs asked for from the graph. */
static int trace_output(const struct tracegraph *g, const struct trace_opts *o)
{
    int code = CTL_EXIT_OK;

    if (o->svg || o->png) {
        char *text = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&text, &len);
        if (!mem)
            return CTL_EXIT_FAIL;
        tracegraph_dot(g, mem);
        fclose(mem);
        if ((o->svg && render(text, len, "svg", o->svg) < 0) ||
            (o->png && render(text, len, "png", o->png) < 0))
            code = CTL_EXIT_FAIL;
        free(text);
    }
    if (o->dot) {
        tracegraph_dot(g, stdout);
    } else if (o->json) {
        struct json j;
        json_init(&j, (size_t)64 * 1024 * 1024);
        tracegraph_json(g, &j);
        const char *doc = json_result(&j, NULL);
        if (doc)
            printf("%s\n", doc);
        json_free(&j);
    } else if (!o->svg && !o->png) {
        tracegraph_text(g, stdout);
    }
    return fflush(stdout) == 0 ? code : CTL_EXIT_FAIL;
}

int watch_trace_cmd(const char *run_dir, int argc, char **argv)
{
    struct trace_opts o;
    struct runnet rn;
    struct collect c = {0};
    int code = CTL_EXIT_FAIL;

    if (trace_args(argc, argv, &o) < 0)
        return CTL_EXIT_USAGE;
    if (runnet_load(run_dir, &rn) < 0)
        return CTL_EXIT_FAIL;
    if (rn.n == 0) {
        fprintf(stderr, "floodshare: no peers in %s\n", run_dir);
        goto out;
    }
    for (size_t i = 0; i < rn.n; i++) {
        int rc = collect_from(run_dir, rn.peers[i].id, o.qid, &c, stderr);
        if (rc == CTL_EXIT_USAGE) { /* the peer refused the query id: it said why */
            code = rc;
            goto out;
        }
        if (rc != CTL_EXIT_OK) {
            fprintf(stderr, "floodshare: trace: peer %u is not running: its events are missing\n",
                    rn.peers[i].id);
        }
    }
    int one = one_query(c.m.ev, c.m.n, o.qid);
    if (one <= 0) {
        if (one == 0)
            fprintf(stderr, "floodshare: trace: no peer of %s has events of query %s (each "
                    "keeps its last %d events)\n", run_dir, o.qid, TRACE_RING);
        code = one < 0 ? CTL_EXIT_USAGE : CTL_EXIT_FAIL;
        goto out;
    }
    struct tg_topology topo = {rn.peers, rn.n, rn.links, rn.n_links};
    struct tracegraph g;
    if (tracegraph_build(c.m.ev, c.m.n, &topo, &g) != FS_OK)
        goto out;
    code = trace_output(&g, &o);
    tracegraph_free(&g);
out:
    free(c.m.ev);
    runnet_free(&rn);
    return code;
}
