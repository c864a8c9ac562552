/* flood.c - the query flood: dedupe, search, forward, and the reverse path. */
#include "floodshare/flood.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "floodshare/cut.h"
#include "floodshare/fplane.h"
#include "floodshare/gate.h"
#include "floodshare/log.h"
#include "floodshare/net.h"
#include "floodshare/node.h"
#include "floodshare/stats.h"
#include "floodshare/qcache.h"
#include "floodshare/route.h"
#include "floodshare/share.h"
#include "floodshare/trace.h"

_Static_assert(QCACHE_MAX_SENT >= CFG_MAX_NEIGHBOURS, "a query may go to every neighbour");

#define FLOOD_MAX_ITEMS_PER_GET 16 /* FOUNDs one peer sends for one query */
#define FLOOD_LINK_QUEUE (64 * 1024) /* bytes queued for one neighbour: ~300 GETs */
#define FLOOD_CHALLENGE_MS 3000      /* a neighbour must prove its link within this */

struct flood_query {
    char qid[MSG_QID_LEN + 1];
    char name[MSG_MAX_NAME + 1]; /* what was asked for: a hit must carry it */
    unsigned sent;
    /* Below: guarded by flood.lock. */
    struct msg hits[FLOOD_MAX_HITS];
    unsigned n_hits, next;
};

/* lock guards queries[] and the hit lists of every registered query, and
 * stopping; cond is broadcast when any query gets a hit, or at shutdown.
 * These are the only parts control threads touch. Everything else belongs
 * to the flood plane's loop thread: route, rcfg, ttl. */
struct flood {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct flood_query *queries[FLOOD_MAX_QUERIES];
    int stopping;
    /* Borrowed from the node, fixed from flood_new() on. */
    struct node *node;
    struct stats *stats;
    struct trace *trace;
    struct cut *cut;
    struct fs_addr self;
    struct gate *gate; /* set by flood_run(): where closed links go back */
    struct fplane *fp;
    struct route *route;
    struct route_cfg rcfg; /* a small copy of the configuration (route.h) */
    unsigned ttl, id;
};

static void on_msg(void *arg, const struct msg *m, const struct route_hop *hop);
static void on_lost(void *arg, const struct msg *m, const struct fs_addr *to, fs_status st);

static void release_conn(void *arg, struct conn *c)
{
    struct flood *f = arg;
    gate_done(f->gate, c);
}

struct flood *flood_new(struct node *n)
{
    struct flood *f = calloc(1, sizeof *f);
    pthread_condattr_t ca;

    if (!f)
        return NULL;
    const struct cfg *c = node_cfg_get(n);
    f->node = n;
    f->stats = node_stats(n);
    f->trace = node_trace(n);
    f->cut = node_cut(n);
    f->self = *node_self(n);
    f->route = route_new(node_qcache(n));
    struct fplane_opts o = {
        .self = f->self,
        .self_id = c->id,
        .connect_timeout_ms = (int)c->connect_timeout_ms,
        .max_queue_bytes = FLOOD_LINK_QUEUE,
        .down_ms = 1000,
        .challenge_ms = FLOOD_CHALLENGE_MS,
        .idle_ms = FLOOD_IDLE_MS,
        .stats = f->stats,
        .tls = node_tls(n),
        .on_msg = on_msg,
        .on_lost = on_lost,
        .release = release_conn,
        .arg = f,
    };
    f->fp = fplane_new(&o);
    node_cfg_put(c);
    if (!f->route || !f->fp) {
        route_free(f->route);
        fplane_free(f->fp);
        free(f);
        return NULL;
    }
    pthread_mutex_init(&f->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cond, &ca);
    pthread_condattr_destroy(&ca);
    return f;
}

void flood_free(struct flood *f)
{
    if (!f)
        return;
    fplane_stop(f->fp);
    fplane_free(f->fp);
    route_free(f->route);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

void flood_shutdown(struct flood *f)
{
    pthread_mutex_lock(&f->lock);
    f->stopping = 1;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    fplane_stop(f->fp);
}

void flood_adopt(struct flood *f, struct conn *c)
{
    fplane_adopt(f->fp, c);
}

int flood_is_flood_msg(enum msg_type t)
{
    return fplane_is_flood_msg(t);
}

struct reconf {
    struct flood *f;
    const struct cfg *c;
};

static void reconf_on_loop(void *arg)
{
    struct reconf *r = arg;
    struct flood *f = r->f;
    const struct cfg *c = r->c;

    f->rcfg.max_ttl = c->max_ttl;
    f->rcfg.query_rate = c->query_rate;
    f->rcfg.query_burst = c->query_burst;
    f->rcfg.n_neighbours = c->n_neighbours;
    memcpy(f->rcfg.neighbours, c->neighbours, sizeof f->rcfg.neighbours);
    f->ttl = c->ttl;
    f->id = c->id;
    route_set_cfg(f->route, &f->rcfg);
    fplane_set_neighbours(f->fp, c->neighbours, c->n_neighbours);
}

/* The node's listener: a `modify` published c (ttl, neighbours). */
static void reconfigure(void *arg, const struct cfg *c)
{
    struct flood *f = arg;
    struct reconf r = {.f = f, .c = c};

    fplane_call(f->fp, reconf_on_loop, &r);
}

fs_status flood_run(struct flood *f, struct gate *g)
{
    f->gate = g;
    if (fplane_start(f->fp) != FS_OK || node_on_reconfigure(f->node, reconfigure, f) != FS_OK)
        return FS_ENOMEM;
    const struct cfg *c = node_cfg_get(f->node);
    reconfigure(f, c);
    node_cfg_put(c);
    return FS_OK;
}

struct counts {
    struct fplane *fp;
    unsigned open, proven;
};

static void counts_on_loop(void *arg)
{
    struct counts *k = arg;
    fplane_counts(k->fp, &k->open, &k->proven);
}

struct proven {
    struct fplane *fp;
    const struct fs_addr *nb;
    struct fs_addr *sock;
    int yes;
};

static void proven_on_loop(void *arg)
{
    struct proven *p = arg;
    p->yes = fplane_proven_host(p->fp, p->nb, p->sock);
}

int flood_link_proven(struct flood *f, const struct fs_addr *nb, struct fs_addr *sock)
{
    struct proven p = {f->fp, nb, sock, 0};

    if (fplane_call(f->fp, proven_on_loop, &p) != FS_OK)
        return 0;
    return p.yes;
}

void flood_link_counts(struct flood *f, unsigned *open, unsigned *proven)
{
    struct counts k = {f->fp, 0, 0};

    fplane_call(f->fp, counts_on_loop, &k);
    *open = k.open;
    *proven = k.proven;
}

/* "10814" for a neighbour on our own host, else "host:port": short enough
 * for a student to follow a flood in the logs. */
static void hop_label(const struct fs_addr *self, const struct fs_addr *a, char *out, size_t cap)
{
    char text[ADDR_STR_MAX];

    if (strcmp(self->host, a->host) == 0)
        snprintf(out, cap, "%u", (unsigned)a->port);
    else
        snprintf(out, cap, "%s", addr_format(a, text));
}

/* Appends a hop label to a log list like " 10814 10815". */
static void list_add(char *list, size_t cap, const struct fs_addr *self, const struct fs_addr *a)
{
    char one[ADDR_STR_MAX];
    size_t len = strlen(list);

    hop_label(self, a, one, sizeof one);
    if (len < cap)
        snprintf(list + len, cap - len, " %s", one);
}

/* The labels of every neighbour but `skip` (may be NULL), for a log line
 * like " 10814 10815"; when m is given, those route_wanted() spares m are
 * named apart: " 10814 (not to 10815: it had the query with as much ttl)". */
static void target_list(const struct flood *f, const struct fs_addr *skip, const struct msg *m,
                        char *list, size_t cap)
{
    char spared[256] = "";
    uint64_t now = net_now_ms();

    list[0] = '\0';
    for (size_t i = 0; i < f->rcfg.n_neighbours; i++) {
        const struct fs_addr *n = &f->rcfg.neighbours[i];
        if (skip && addr_equal(n, skip))
            continue;
        if (m && !route_wanted(f->route, m->qid, n, m->ttl, now))
            list_add(spared, sizeof spared, &f->self, n);
        else
            list_add(list, cap, &f->self, n);
    }
    size_t len = strlen(list);
    if (spared[0] && len < cap)
        snprintf(list + len, cap - len, " (not to%s: it had the query with as much ttl)", spared);
}

/* Emits a trace event about GET m (its query, name, previous hop and
 * origin); ttl is the ttl it is handled with, reason why it was dropped. */
static void trace_get(struct flood *f, enum trace_type type, const struct msg *m, unsigned ttl,
                      const char *reason)
{
    struct trace_event ev;

    trace_init_event(&ev, type, m->qid);
    trace_set(ev.name, sizeof ev.name, m->name);
    ev.from = m->from;
    ev.origin = m->origin;
    ev.ttl = ttl;
    ev.hops = m->hops;
    trace_set(ev.reason, sizeof ev.reason, reason);
    trace_emit(f->trace, &ev);
}

/* Emits a trace event about FOUND fm (sent, relayed, received or dropped):
 * from/to are the hops it came from and goes to (either may be NULL). */
static void trace_found(struct flood *f, enum trace_type type, const struct msg *fm,
                        const struct fs_addr *from, const struct fs_addr *to, const char *reason)
{
    struct trace_event ev;

    trace_init_event(&ev, type, fm->qid);
    trace_set(ev.name, sizeof ev.name, fm->path);
    if (from) {
        ev.from = *from;
        if (addr_equal(from, &fm->holder)) /* straight from the holder: its id is known */
            ev.from_peer = fm->peer_id;
    }
    if (to)
        ev.to = *to;
    ev.holder = fm->peer_id;
    ev.hops = fm->hops;
    ev.size = fm->size;
    trace_set(ev.md5, sizeof ev.md5, fm->md5);
    trace_set(ev.reason, sizeof ev.reason, reason);
    trace_emit(f->trace, &ev);
}

/* A GET or FOUND that could not be written to `to`. */
static void trace_send_refused(struct flood *f, const char *qid, const char *what,
                               const struct fs_addr *to, const char *reason)
{
    struct trace_event ev;

    trace_init_event(&ev, TR_SEND_FAILED, qid);
    trace_set(ev.msg, sizeof ev.msg, what);
    ev.to = *to;
    trace_set(ev.reason, sizeof ev.reason, reason);
    trace_emit(f->trace, &ev);
}

/* The trace reason and the log's words for a send that failed with st. */
static const char *send_reason(fs_status st)
{
    switch (st) {
    case FS_EBUSY: return "flow_control";
    case FS_EREFUSED: return "recently_unreachable";
    case FS_ENOTFOUND: return "link_closed";
    default: return fs_status_name(st);
    }
}

/* Counts, traces and logs a GET or FOUND that did not go out. */
static void send_failed(struct flood *f, const char *qid, const char *what,
                        const struct fs_addr *to, fs_status st)
{
    char a[ADDR_STR_MAX];

    trace_send_refused(f, qid, what, to, send_reason(st));
    if (st == FS_EBUSY) { /* counted as flow_dropped by the plane */
        log_msg(L_DEBUG, "q%.4s: %s to %s dropped: its queue is full (flow control)", qid, what,
                addr_format(to, a));
        return;
    }
    stats_inc(f->stats, neighbours_skipped);
    log_msg(L_INFO, "neighbour %s is down (%s), %s skipped", addr_format(to, a),
            st == FS_EREFUSED ? "recently unreachable" : fs_strerror(st), what);
}

/* 1 (after recording it) when a teacher cut the link to `to` or paused
 * this peer (cut.h): the message is not sent. */
static int send_is_cut(struct flood *f, const char *qid, const char *what, const struct fs_addr *to)
{
    const char *why = cut_blocks(f->cut, to);
    if (!why)
        return 0;
    char a[ADDR_STR_MAX];
    stats_inc(f->stats, cut_dropped);
    trace_send_refused(f, qid, what, to, why);
    log_msg(L_INFO, "q%.4s: %s to %s not sent: %s", qid, what, addr_format(to, a), why);
    return 1;
}

/* Sends m to every neighbour except `skip` (may be NULL). Returns how many
 * sends were queued. Callers log what they send before calling this, so
 * that a hit coming back quickly is never logged before the query that
 * caused it. */
static unsigned send_to_neighbours(struct flood *f, const struct msg *m, const struct fs_addr *skip)
{
    unsigned ok = 0;
    uint64_t now = net_now_ms();

    for (size_t i = 0; i < f->rcfg.n_neighbours; i++) {
        const struct fs_addr *n = &f->rcfg.neighbours[i];
        if (skip && addr_equal(n, skip))
            continue;
        if (!route_wanted(f->route, m->qid, n, m->ttl, now))
            continue; /* it sent us a copy with as much ttl: ours would be a duplicate there */
        if (send_is_cut(f, m->qid, "GET", n))
            continue;
        struct trace_event ev; /* before the send: it precedes the receiver's `received` */
        trace_init_event(&ev, TR_FORWARDED, m->qid);
        trace_set(ev.name, sizeof ev.name, m->name);
        ev.to = *n;
        ev.ttl = m->ttl;
        ev.hops = m->hops;
        trace_emit(f->trace, &ev);
        uint32_t link = 0;
        fs_status st = fplane_send(f->fp, n, m, &link);
        if (st == FS_OK) {
            /* The loop reads the answer only after this returns. */
            route_sent(f->route, m->qid, link, net_now_ms());
            ok++;
        } else {
            send_failed(f, m->qid, "GET", n, st);
        }
    }
    return ok;
}

/* The holder's FOUND fm for get, before it is sent: it names the origin, so
 * that a later REQUEST/FETCH (which carries no query id) can be tied to
 * the query (trace_find_hit). */
static void trace_found_sent(struct flood *f, const struct msg *fm, const struct msg *get)
{
    struct trace_event ev;

    trace_init_event(&ev, TR_FOUND_SENT, fm->qid);
    trace_set(ev.name, sizeof ev.name, fm->path);
    ev.to = get->from;
    ev.origin = get->origin;
    ev.holder = fm->peer_id;
    ev.hops = fm->hops;
    ev.size = fm->size;
    trace_set(ev.md5, sizeof ev.md5, fm->md5);
    trace_emit(f->trace, &ev);
}

/* Searches the index as it stands (hashing runs elsewhere) and answers
 * each match with a FOUND back over the link the GET came in on. */
static void send_hits(struct flood *f, const struct msg *get, const struct route_hop *hop)
{
    struct share_item items[FLOOD_MAX_ITEMS_PER_GET];
    /* No share_refresh() here: the share's own thread follows changes
     * (inotify, or its poll period), so waking it for every GET is only
     * work on the loop's hottest path. */
    struct share *sh = node_share_get(f->node);
    size_t n = share_find(sh, get->name, items, FLOOD_MAX_ITEMS_PER_GET);
    node_share_put(f->node);

    if (n > FLOOD_MAX_ITEMS_PER_GET)
        n = FLOOD_MAX_ITEMS_PER_GET;
    struct trace_event ev;
    trace_init_event(&ev, TR_SEARCHED, get->qid);
    trace_set(ev.name, sizeof ev.name, get->name);
    ev.count = (unsigned)n;
    trace_emit(f->trace, &ev);
    for (size_t i = 0; i < n; i++) {
        struct msg fm;
        char to[ADDR_STR_MAX];
        memset(&fm, 0, sizeof fm);
        fm.type = MSG_FOUND;
        memcpy(fm.qid, get->qid, sizeof fm.qid);
        fm.hops = get->hops + 1;
        fm.from = f->self;
        fm.holder = f->self;
        fm.peer_id = f->id;
        fm.kind = items[i].kind;
        fm.size = items[i].size;
        memcpy(fm.md5, items[i].md5, sizeof fm.md5);
        memcpy(fm.root, items[i].root, sizeof fm.root);
        memcpy(fm.path, items[i].path, sizeof fm.path);
        memcpy(fm.name, items[i].name, sizeof fm.name);
        trace_found_sent(f, &fm, get);
        if (send_is_cut(f, get->qid, "FOUND", &hop->addr))
            continue;
        fs_status st = fplane_send_link(f->fp, hop->link, &fm);
        hop_label(&f->self, &hop->addr, to, sizeof to);
        if (st == FS_OK) {
            stats_inc(f->stats, hits_sent);
            log_msg(L_INFO, "hit q%.4s %s (%s, %llu bytes) -> found sent back to %s", get->qid,
                    items[i].path, msg_kind_name(items[i].kind),
                    (unsigned long long)items[i].size, to);
        } else {
            send_failed(f, get->qid, "FOUND", &hop->addr, st);
        }
    }
}

/* Counts a drop route decided on, under its reason's counter. */
static void count_drop(struct flood *f, const char *reason)
{
    static const struct {
        const char *reason;
        size_t off;
    } map[] = {
        {"spoofed", offsetof(struct stats, spoofed_dropped)},
        {"throttle", offsetof(struct stats, throttled)},
        {"ttl0", offsetof(struct stats, ttl_dropped)},
        {"max_hop_count", offsetof(struct stats, hops_dropped)},
        {"duplicate", offsetof(struct stats, duplicates_dropped)},
        {"no_route", offsetof(struct stats, found_dropped)},
        {"route_lost", offsetof(struct stats, wrong_route_dropped)},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strcmp(map[i].reason, reason) == 0) {
            _Atomic uint64_t *c = (_Atomic uint64_t *)((char *)f->stats + map[i].off);
            atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
        }
    }
}

/* The log's words for a GET dropped for reason. */
static const char *get_drop_words(const char *reason)
{
    if (strcmp(reason, "throttle") == 0)
        return "over that neighbour's query_rate, dropped";
    if (strcmp(reason, "ttl0") == 0)
        return "ttl=0: dropped";
    if (strcmp(reason, "max_hop_count") == 0)
        return "no hop left to count, dropped";
    if (strcmp(reason, "duplicate") == 0)
        return "duplicate, dropped";
    return "dropped";
}

/* Forwards GET with ttl-1, from this peer, to every neighbour but the one
 * it came from; logs the list. */
static void forward_get(struct flood *f, const struct msg *get, const struct route_hop *hop,
                        unsigned ttl, const char *what)
{
    char list[512], name[LOG_ESCAPE_BUF], from[ADDR_STR_MAX];
    struct msg fwd = *get;

    fwd.ttl = ttl > 0 ? ttl - 1 : 0;
    fwd.hops = get->hops + 1;
    fwd.from = f->self;
    target_list(f, &hop->addr, &fwd, list, sizeof list);
    log_msg(L_INFO, "get q%.4s %s from %s ttl=%u hops=%u%s ->%s", get->qid,
            log_escape_str(name, get->name), addr_format(&hop->addr, from), ttl, get->hops, what,
            ttl > 1 ? (list[0] ? list : " (no other neighbour)") : " (ttl 1: not forwarded)");
    if (ttl <= 1)
        return;
    stats_add(f->stats, queries_forwarded, send_to_neighbours(f, &fwd, &hop->addr));
}

static void handle_get(struct flood *f, const struct msg *get, const struct route_hop *hop)
{
    struct route_verdict v;
    char name[LOG_ESCAPE_BUF], from[ADDR_STR_MAX];

    log_escape_str(name, get->name);
    addr_format(&hop->addr, from);
    const char *cut = cut_blocks(f->cut, &hop->addr);
    if (cut) {
        stats_inc(f->stats, cut_dropped);
        trace_get(f, TR_DROPPED, get, get->ttl, cut);
        log_msg(L_INFO, "get q%.4s %s from %s: dropped (%s)", get->qid, name, from, cut);
        return;
    }
    route_get(f->route, get, hop, net_now_ms(), &v);
    if (v.clamped) {
        stats_inc(f->stats, ttl_clamped);
        log_msg(L_INFO, "get q%.4s: ttl %u above max_ttl, clamped to %u", get->qid, get->ttl,
                v.ttl);
    }
    if (v.action == ROUTE_DROP) {
        count_drop(f, v.reason);
        int dup = strcmp(v.reason, "duplicate") == 0;
        trace_get(f, dup ? TR_DUPLICATE : TR_DROPPED, get, v.ttl, dup ? NULL : v.reason);
        if (dup)
            log_msg(L_INFO, "get q%.4s %s from %s ttl=%u hops=%u: duplicate, dropped", get->qid,
                    name, from, v.ttl, get->hops);
        else
            log_msg(L_INFO, "get q%.4s %s from %s ttl=%u hops=%u: %s", get->qid, name, from,
                    v.ttl, get->hops, get_drop_words(v.reason));
        return;
    }
    if (v.action == ROUTE_FORWARD) {
        /* Seen already, but this copy has more ttl left than any before:
         * it goes on, so peers within its reach are reached; it is not
         * searched again and answers nothing. */
        stats_inc(f->stats, duplicates_forwarded);
        trace_get(f, TR_DUPLICATE, get, v.ttl, "more_ttl");
        forward_get(f, get, hop, v.ttl, " (duplicate with more ttl: forwarded again)");
        return;
    }
    stats_inc(f->stats, queries_handled);
    trace_get(f, TR_RECEIVED, get, v.ttl, NULL);
    /* Forward before searching: the flood spreads without waiting for this
     * peer's search, and the log reads in the order things happen. */
    forward_get(f, get, hop, v.ttl, "");
    send_hits(f, get, hop);
}

static struct flood_query *find_query(struct flood *f, const char *qid)
{
    for (int i = 0; i < FLOOD_MAX_QUERIES; i++)
        if (f->queries[i] && strcmp(f->queries[i]->qid, qid) == 0)
            return f->queries[i];
    return NULL;
}

/* Hits one relaying neighbour may fill in a query's table: a fair share,
 * so that a liar answering with a storm of FOUNDs leaves room for the
 * answers that come over the other links. */
static unsigned fair_share(const struct flood_query *q)
{
    unsigned share = FLOOD_MAX_HITS / (q->sent ? q->sent : 1);
    return share ? share : 1;
}

/* Why q must not keep hit h (NULL: keep it). Under f->lock. */
static const char *hit_refusal(const struct flood_query *q, const struct msg *h)
{
    unsigned via = 0;

    if (!q)
        return "finished";
    if (strcmp(q->name, h->name) != 0)
        return "other_name";
    for (unsigned i = 0; i < q->n_hits; i++) {
        const struct msg *k = &q->hits[i];
        /* One holder counts once per item: forged copies of one hit, or
         * the same answer come round two ways, take no second row. */
        if (addr_equal(&k->holder, &h->holder) && strcmp(k->path, h->path) == 0)
            return "same_holder";
        via += addr_equal(&k->from, &h->from);
    }
    if (via >= fair_share(q))
        return "fair_share";
    if (q->n_hits >= FLOOD_MAX_HITS)
        return "finished";
    return NULL;
}

static void deliver_hit(struct flood *f, const struct msg *found, const struct route_hop *hop)
{
    pthread_mutex_lock(&f->lock);
    struct flood_query *q = find_query(f, found->qid);
    const char *why = hit_refusal(q, found);
    unsigned share = q ? fair_share(q) : 0; /* q may be gone once unlocked */
    if (!why) {
        q->hits[q->n_hits++] = *found;
        pthread_cond_broadcast(&f->cond);
    }
    /* Under the lock: the query's thread may start the transfer as soon as
     * the hit is visible, and its events must come after this one. */
    trace_found(f, why ? TR_FOUND_DROPPED : TR_FOUND_RECEIVED, found, &hop->addr, NULL, why);
    pthread_mutex_unlock(&f->lock);

    char name[LOG_ESCAPE_BUF], at[ADDR_STR_MAX], via[ADDR_STR_MAX];
    log_escape_str(name, found->path);
    addr_format(&found->holder, at);
    if (!why) {
        stats_inc(f->stats, hits_received);
        log_msg(L_INFO, "found q%.4s %s at peer %u %s (%u hops): arrived at the origin",
                found->qid, name, found->peer_id, at, found->hops);
        return;
    }
    stats_inc(f->stats, found_dropped);
    if (strcmp(why, "other_name") == 0)
        /* A hit must be for the name asked: otherwise a lying peer could
         * make `get a.txt` download anything it likes into the share. */
        log_msg(L_INFO, "found q%.4s %s at peer %u: not the name that was asked for, dropped",
                found->qid, name, found->peer_id);
    else if (strcmp(why, "same_holder") == 0)
        log_msg(L_DEBUG, "found q%.4s %s at peer %u %s: that holder's hit is already in, dropped",
                found->qid, name, found->peer_id, at);
    else if (strcmp(why, "fair_share") == 0)
        log_msg(L_DEBUG, "found q%.4s %s at peer %u: %s already relayed its fair share of hits "
                "(%u), dropped", found->qid, name, found->peer_id,
                addr_format(&found->from, via), share);
    else
        log_msg(L_INFO, "found q%.4s %s at peer %u: query already finished, dropped", found->qid,
                name, found->peer_id);
}

static void handle_found(struct flood *f, const struct msg *found, const struct route_hop *hop)
{
    struct route_verdict v;
    char name[LOG_ESCAPE_BUF], to[ADDR_STR_MAX], sender[ADDR_STR_MAX];

    addr_format(&hop->addr, sender);
    const char *cut = cut_blocks(f->cut, &hop->addr);
    if (cut) {
        stats_inc(f->stats, cut_dropped);
        trace_found(f, TR_FOUND_DROPPED, found, &hop->addr, NULL, cut);
        log_msg(L_INFO, "found q%.4s from %s: dropped (%s)", found->qid, sender, cut);
        return;
    }
    route_found(f->route, found, hop, net_now_ms(), &v);
    if (v.action == ROUTE_DROP) {
        count_drop(f, v.reason);
        trace_found(f, TR_FOUND_DROPPED, found, &hop->addr, NULL, v.reason);
        log_msg(L_INFO, "found q%.4s from %s: %s, dropped", found->qid, sender,
                strcmp(v.reason, "no_route") == 0 ? "no such query forwarded here"
                : strcmp(v.reason, "route_lost") == 0 ? "the query was never sent there"
                                                      : v.reason);
        return;
    }
    if (v.action == ROUTE_DELIVER) {
        deliver_hit(f, found, hop);
        return;
    }
    log_escape_str(name, found->path);
    hop_label(&f->self, &v.back, to, sizeof to);
    struct msg relay = *found;
    relay.from = f->self;
    if (send_is_cut(f, found->qid, "FOUND", &v.back))
        return;
    trace_found(f, TR_FOUND_RELAYED, found, &hop->addr, &v.back, NULL);
    fs_status st = fplane_send_link(f->fp, v.back_link, &relay);
    if (st == FS_OK) {
        stats_inc(f->stats, hits_relayed);
        log_msg(L_INFO, "found q%.4s %s at peer %u: relayed back -> %s", found->qid, name,
                found->peer_id, to);
    } else {
        send_failed(f, found->qid, "FOUND", &v.back, st);
    }
}

/* The plane's callback: every GET and FOUND, on the loop's thread. */
static void on_msg(void *arg, const struct msg *m, const struct route_hop *hop)
{
    struct flood *f = arg;

    if (m->type == MSG_GET)
        handle_get(f, m, hop);
    else if (m->type == MSG_FOUND)
        handle_found(f, m, hop);
}

/* The plane's callback for a GET or FOUND that was queued on a link whose
 * dial then failed: a send that failed after all. */
static void on_lost(void *arg, const struct msg *m, const struct fs_addr *to, fs_status st)
{
    struct flood *f = arg;

    if (m->type != MSG_GET && m->type != MSG_FOUND)
        return;
    if (m->type == MSG_GET && m->from.port == f->self.port && m->hops > 0)
        atomic_fetch_sub_explicit(&f->stats->queries_forwarded, 1, memory_order_relaxed);
    send_failed(f, m->qid, msg_type_name(m->type), to, st);
}

static void new_qid(char out[MSG_QID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char r[MSG_QID_LEN / 2];

    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        /* getrandom on Linux >= 3.17 does not fail for 8 bytes; this is a
         * last resort that still gives distinct ids within one process. */
        uint64_t t = net_now_ms() ^ (uint64_t)(uintptr_t)out;
        memcpy(r, &t, sizeof r);
    }
    for (size_t i = 0; i < sizeof r; i++) {
        out[2 * i] = hex[r[i] >> 4];
        out[2 * i + 1] = hex[r[i] & 15];
    }
    out[MSG_QID_LEN] = '\0';
}

static fs_status register_query(struct flood *f, struct flood_query *q)
{
    fs_status st = FS_EBUSY;

    pthread_mutex_lock(&f->lock);
    for (int i = 0; i < FLOOD_MAX_QUERIES; i++) {
        if (!f->queries[i]) {
            f->queries[i] = q;
            st = FS_OK;
            break;
        }
    }
    pthread_mutex_unlock(&f->lock);
    return st;
}

struct start_job {
    struct flood *f;
    struct flood_query *q;
};

/* Starts q on the loop: its GET goes out like any forward. */
static void start_on_loop(void *arg)
{
    struct start_job *j = arg;
    struct flood *f = j->f;
    struct flood_query *q = j->q;
    char list[512], esc[LOG_ESCAPE_BUF];

    route_start(f->route, q->qid, f->ttl, net_now_ms());
    stats_inc(f->stats, queries_started);
    struct msg get;
    memset(&get, 0, sizeof get);
    get.type = MSG_GET;
    memcpy(get.qid, q->qid, sizeof get.qid);
    get.ttl = f->ttl;
    get.hops = 0;
    get.origin = f->self;
    get.from = f->self;
    snprintf(get.name, sizeof get.name, "%s", q->name);
    target_list(f, NULL, NULL, list, sizeof list);
    log_msg(L_INFO, "get q%.4s %s started ttl=%u ->%s", q->qid, log_escape_str(esc, q->name),
            f->ttl, list[0] ? list : " (no neighbours)");
    struct trace_event ev;
    trace_init_event(&ev, TR_QUERY_STARTED, q->qid);
    trace_set(ev.name, sizeof ev.name, q->name);
    ev.ttl = f->ttl;
    ev.count = (unsigned)f->rcfg.n_neighbours;
    trace_emit(f->trace, &ev);
    q->sent = send_to_neighbours(f, &get, NULL);
}

fs_status flood_start(struct flood *f, const char *name, struct flood_query **out)
{
    struct flood_query *q = calloc(1, sizeof *q);

    *out = NULL;
    if (!q)
        return FS_ENOMEM;
    new_qid(q->qid);
    snprintf(q->name, sizeof q->name, "%s", name);
    if (register_query(f, q) != FS_OK) {
        free(q);
        return FS_EBUSY;
    }
    struct start_job j = {f, q};
    if (fplane_call(f->fp, start_on_loop, &j) != FS_OK) {
        flood_end(f, q);
        return FS_ECANCELED;
    }
    *out = q;
    return FS_OK;
}

const char *flood_query_id(const struct flood_query *q)
{
    return q->qid;
}

unsigned flood_query_sent(const struct flood_query *q)
{
    return q->sent;
}

fs_status flood_next_hit(struct flood *f, struct flood_query *q, uint64_t deadline_ms,
                         struct msg *hit)
{
    struct timespec ts = {.tv_sec = (time_t)(deadline_ms / 1000),
                          .tv_nsec = (long)(deadline_ms % 1000) * 1000000L};
    fs_status st = FS_ETIMEDOUT;

    pthread_mutex_lock(&f->lock);
    for (;;) {
        if (f->stopping) {
            st = FS_ECANCELED;
            break;
        }
        if (q->next < q->n_hits) {
            *hit = q->hits[q->next++];
            st = FS_OK;
            break;
        }
        if (net_now_ms() >= deadline_ms)
            break;
        pthread_cond_timedwait(&f->cond, &f->lock, &ts);
    }
    pthread_mutex_unlock(&f->lock);
    return st;
}

void flood_end(struct flood *f, struct flood_query *q)
{
    pthread_mutex_lock(&f->lock);
    for (int i = 0; i < FLOOD_MAX_QUERIES; i++)
        if (f->queries[i] == q)
            f->queries[i] = NULL;
    pthread_mutex_unlock(&f->lock);
    free(q);
}
