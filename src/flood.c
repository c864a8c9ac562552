/* flood.c - the query flood: dedupe, search, forward, and the reverse path. */
#include "floodshare/flood.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "floodshare/link.h"
#include "floodshare/log.h"
#include "floodshare/net.h"
#include "floodshare/peer.h"
#include "floodshare/qcache.h"
#include "floodshare/share.h"
#include "floodshare/trace.h"

_Static_assert(QCACHE_MAX_SENT >= CFG_MAX_NEIGHBOURS, "a query may go to every neighbour");

#define FLOOD_MAX_ITEMS_PER_GET 16 /* FOUNDs one peer sends for one query */

struct flood_query {
    char qid[MSG_QID_LEN + 1];
    char name[MSG_MAX_NAME + 1]; /* what was asked for: a hit must carry it */
    unsigned sent;
    /* Below: guarded by flood.lock. */
    struct msg hits[FLOOD_MAX_HITS];
    unsigned n_hits, next;
};

/* A token bucket of GETs per neighbour: query_rate tokens a second, at
 * most query_burst. GETs whose `from` is none of this peer's neighbours
 * share one bucket (the last), so a peer cannot escape its limit by
 * claiming ever new addresses. */
struct bucket {
    struct fs_addr who; /* port 0: unused */
    double tokens;
    uint64_t last_ms;
};

/* lock guards queries[] and the hit lists of every registered query, and
 * stopping; cond is broadcast when any query gets a hit, or at shutdown.
 * bucket_lock guards buckets[]. */
struct flood {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct flood_query *queries[FLOOD_MAX_QUERIES];
    int stopping;
    pthread_mutex_t bucket_lock;
    struct bucket buckets[CFG_MAX_NEIGHBOURS + 1];
};

struct flood *flood_new(void)
{
    struct flood *f = calloc(1, sizeof *f);
    pthread_condattr_t ca;

    if (!f)
        return NULL;
    pthread_mutex_init(&f->lock, NULL);
    pthread_mutex_init(&f->bucket_lock, NULL);
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
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
    pthread_mutex_destroy(&f->bucket_lock);
    free(f);
}

void flood_shutdown(struct flood *f)
{
    pthread_mutex_lock(&f->lock);
    f->stopping = 1;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

/* "10814" for a neighbour on our own host, else "host:port": short enough
 * for a student to follow a flood in the logs. */
static void hop_label(const struct fs_addr *self, const struct fs_addr *a, char *out, size_t cap)
{
    if (strcmp(self->host, a->host) == 0)
        snprintf(out, cap, "%u", (unsigned)a->port);
    else
        snprintf(out, cap, "%s:%u", a->host, (unsigned)a->port);
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
 * like " 10814 10815". */
static void target_list(const struct peer *p, const struct cfg *c, const struct fs_addr *skip,
                        char *list, size_t cap)
{
    list[0] = '\0';
    for (size_t i = 0; i < c->n_neighbours; i++)
        if (!skip || !addr_equal(&c->neighbours[i], skip))
            list_add(list, cap, &p->self, &c->neighbours[i]);
}

/* Emits a trace event about GET m (its query, name, previous hop and
 * origin); ttl is the ttl it is handled with, reason why it was dropped. */
static void trace_get(struct peer *p, enum trace_type type, const struct msg *m, unsigned ttl,
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
    trace_emit(p->trace, &ev);
}

/* Emits a trace event about FOUND f (sent, relayed, received or dropped):
 * from/to are the hops it came from and goes to (either may be NULL). */
static void trace_found(struct peer *p, enum trace_type type, const struct msg *f,
                        const struct fs_addr *from, const struct fs_addr *to, const char *reason)
{
    struct trace_event ev;

    trace_init_event(&ev, type, f->qid);
    trace_set(ev.name, sizeof ev.name, f->path);
    if (from) {
        ev.from = *from;
        if (addr_equal(from, &f->holder)) /* straight from the holder: its id is known */
            ev.from_peer = f->peer_id;
    }
    if (to)
        ev.to = *to;
    ev.holder = f->peer_id;
    ev.hops = f->hops;
    ev.size = f->size;
    trace_set(ev.md5, sizeof ev.md5, f->md5);
    trace_set(ev.reason, sizeof ev.reason, reason);
    trace_emit(p->trace, &ev);
}

/* A GET or FOUND that could not be written to `to`. */
static void trace_send_refused(struct peer *p, const char *qid, const char *what,
                               const struct fs_addr *to, const char *reason)
{
    struct trace_event ev;

    trace_init_event(&ev, TR_SEND_FAILED, qid);
    trace_set(ev.msg, sizeof ev.msg, what);
    ev.to = *to;
    trace_set(ev.reason, sizeof ev.reason, reason);
    trace_emit(p->trace, &ev);
}

static void trace_send_failed(struct peer *p, const char *qid, const char *what,
                              const struct fs_addr *to, fs_status st)
{
    trace_send_refused(p, qid, what, to,
                       st == FS_EBUSY ? "recently_unreachable" : fs_status_name(st));
}

/* 1 (after recording it) when a teacher cut the link to `to` or paused
 * this peer (cut.h): the message is not sent. */
static int send_is_cut(struct peer *p, const char *qid, const char *what, const struct fs_addr *to)
{
    const char *why = cut_blocks(&p->cut, to);
    if (!why)
        return 0;
    char a[ADDR_STR_MAX];
    stats_inc(&p->stats, cut_dropped);
    trace_send_refused(p, qid, what, to, why);
    log_msg(L_INFO, "q%.4s: %s to %s not sent: %s", qid, what, addr_format(to, a), why);
    return 1;
}

/* Sends m to every neighbour except `skip` (may be NULL); a neighbour that
 * is down gets a log line of its own. Returns how many sends succeeded.
 * Callers log what they send before calling this, so that a hit coming
 * back quickly is never logged before the query that caused it. */
static unsigned send_to_neighbours(struct peer *p, const struct cfg *c, const struct msg *m,
                                   const struct fs_addr *skip)
{
    unsigned ok = 0;

    for (size_t i = 0; i < c->n_neighbours; i++) {
        const struct fs_addr *n = &c->neighbours[i];
        if (skip && addr_equal(n, skip))
            continue;
        if (send_is_cut(p, m->qid, "GET", n))
            continue;
        qcache_sent_to(p->qc, m->qid, n, net_now_ms()); /* before: a hit may come back fast */
        struct trace_event ev; /* before the send too: it precedes the receiver's `received` */
        trace_init_event(&ev, TR_FORWARDED, m->qid);
        trace_set(ev.name, sizeof ev.name, m->name);
        ev.to = *n;
        ev.ttl = m->ttl;
        ev.hops = m->hops;
        trace_emit(p->trace, &ev);
        fs_status st = links_send(p->links, n, m);
        if (st == FS_OK) {
            ok++;
            continue;
        }
        trace_send_failed(p, m->qid, "GET", n, st);
        char a[ADDR_STR_MAX];
        stats_inc(&p->stats, neighbours_skipped);
        log_msg(L_INFO, "neighbour %s is down (%s), skipped", addr_format(n, a),
                st == FS_EBUSY ? "recently unreachable" : fs_strerror(st));
    }
    return ok;
}

/* The holder's FOUND f for get, before it is sent: it names the origin, so
 * that a later REQUEST/FETCH (which carries no query id) can be tied to
 * the query (trace_find_hit). */
static void trace_found_sent(struct peer *p, const struct msg *f, const struct msg *get)
{
    struct trace_event ev;

    trace_init_event(&ev, TR_FOUND_SENT, f->qid);
    trace_set(ev.name, sizeof ev.name, f->path);
    ev.to = get->from;
    ev.origin = get->origin;
    ev.holder = f->peer_id;
    ev.hops = f->hops;
    ev.size = f->size;
    trace_set(ev.md5, sizeof ev.md5, f->md5);
    trace_emit(p->trace, &ev);
}

static void send_hits(struct peer *p, const struct cfg *c, const struct msg *get)
{
    struct share_item items[FLOOD_MAX_ITEMS_PER_GET];
    struct share *sh = peer_share_get(p);
    share_refresh(sh);
    size_t n = share_find(sh, get->name, items, FLOOD_MAX_ITEMS_PER_GET);
    peer_share_put(p);

    if (n > FLOOD_MAX_ITEMS_PER_GET)
        n = FLOOD_MAX_ITEMS_PER_GET;
    struct trace_event ev;
    trace_init_event(&ev, TR_SEARCHED, get->qid);
    trace_set(ev.name, sizeof ev.name, get->name);
    ev.count = (unsigned)n;
    trace_emit(p->trace, &ev);
    for (size_t i = 0; i < n; i++) {
        struct msg f;
        char to[ADDR_STR_MAX];
        memset(&f, 0, sizeof f);
        f.type = MSG_FOUND;
        memcpy(f.qid, get->qid, sizeof f.qid);
        f.hops = get->hops + 1;
        f.from = p->self;
        f.holder = p->self;
        f.peer_id = c->id;
        f.kind = items[i].kind;
        f.size = items[i].size;
        memcpy(f.md5, items[i].md5, sizeof f.md5);
        memcpy(f.path, items[i].path, sizeof f.path);
        memcpy(f.name, items[i].name, sizeof f.name);
        trace_found_sent(p, &f, get);
        if (send_is_cut(p, get->qid, "FOUND", &get->from))
            continue;
        fs_status st = links_send(p->links, &get->from, &f);
        hop_label(&p->self, &get->from, to, sizeof to);
        if (st == FS_OK) {
            stats_inc(&p->stats, hits_sent);
            log_msg(L_INFO, "hit q%.4s %s (%s, %llu bytes) -> found sent back to %s", get->qid,
                    items[i].path, msg_kind_name(items[i].kind),
                    (unsigned long long)items[i].size, to);
        } else {
            log_msg(L_WARN, "hit q%.4s: cannot send found to %s: %s", get->qid, to,
                    fs_strerror(st));
            trace_send_failed(p, get->qid, "FOUND", &get->from, st);
        }
    }
}

/* Takes one token from the bucket of `from` (see struct bucket); 0 when it
 * is empty and the GET must be dropped. */
static int take_token(struct flood *f, const struct cfg *c, const struct fs_addr *from,
                      uint64_t now)
{
    struct bucket *b = &f->buckets[CFG_MAX_NEIGHBOURS]; /* strangers */
    int ok;

    for (size_t i = 0; i < c->n_neighbours; i++) {
        if (addr_equal(&c->neighbours[i], from)) {
            b = &f->buckets[i];
            break;
        }
    }
    pthread_mutex_lock(&f->bucket_lock);
    if (b != &f->buckets[CFG_MAX_NEIGHBOURS] && !addr_equal(&b->who, from)) {
        b->who = *from; /* first GET from it, or `modify neighbours` moved it */
        b->tokens = c->query_burst;
        b->last_ms = now;
    } else if (b->who.port == 0) {
        b->who.port = 1; /* the strangers' bucket, first use */
        b->tokens = c->query_burst;
        b->last_ms = now;
    }
    b->tokens += (double)(now - b->last_ms) * c->query_rate / 1000.0;
    if (b->tokens > c->query_burst)
        b->tokens = c->query_burst;
    b->last_ms = now;
    ok = b->tokens >= 1.0;
    if (ok)
        b->tokens -= 1.0;
    pthread_mutex_unlock(&f->bucket_lock);
    return ok;
}

void flood_handle_get(struct peer *p, const struct msg *get)
{
    struct cfg c;
    char name[LOG_ESCAPE_BUF], from[ADDR_STR_MAX];
    unsigned ttl = get->ttl;

    peer_cfg_snapshot(p, &c);
    log_escape_str(name, get->name);
    addr_format(&get->from, from);
    const char *cut = cut_blocks(&p->cut, &get->from);
    if (cut) {
        stats_inc(&p->stats, cut_dropped);
        trace_get(p, TR_DROPPED, get, ttl, cut);
        log_msg(L_INFO, "get q%.4s %s from %s: dropped (%s)", get->qid, name, from, cut);
        return;
    }
    if (!take_token(p->flood, &c, &get->from, net_now_ms())) {
        stats_inc(&p->stats, throttled);
        trace_get(p, TR_DROPPED, get, ttl, "throttle");
        log_msg(L_INFO, "get q%.4s %s from %s: over that neighbour's query_rate, dropped",
                get->qid, name, from);
        return;
    }
    if (ttl == 0) {
        stats_inc(&p->stats, ttl_dropped);
        trace_get(p, TR_DROPPED, get, ttl, "ttl0");
        log_msg(L_INFO, "get q%.4s %s from %s ttl=0: dropped", get->qid, name, from);
        return;
    }
    if (get->hops >= MSG_MAX_HOPS) {
        /* Neither a forward nor a FOUND could count one hop more. */
        stats_inc(&p->stats, hops_dropped);
        trace_get(p, TR_DROPPED, get, ttl, "max_hop_count");
        log_msg(L_INFO, "get q%.4s %s from %s hops=%u: no hop left to count, dropped", get->qid,
                name, from, get->hops);
        return;
    }
    if (ttl > c.max_ttl) {
        stats_inc(&p->stats, ttl_clamped);
        log_msg(L_INFO, "get q%.4s: ttl %u above max_ttl, clamped to %u", get->qid, ttl, c.max_ttl);
        ttl = c.max_ttl;
    }
    if (!qcache_insert(p->qc, get->qid, &get->from, net_now_ms())) {
        stats_inc(&p->stats, duplicates_dropped);
        trace_get(p, TR_DUPLICATE, get, ttl, NULL);
        log_msg(L_INFO, "get q%.4s %s from %s ttl=%u hops=%u: duplicate, dropped", get->qid, name,
                from, ttl, get->hops);
        return;
    }
    stats_inc(&p->stats, queries_handled);
    trace_get(p, TR_RECEIVED, get, ttl, NULL);

    /* Forward before searching: the flood spreads without waiting for this
     * peer's search, and the log reads in the order things happen. */
    char list[512] = "";
    target_list(p, &c, &get->from, list, sizeof list);
    log_msg(L_INFO, "get q%.4s %s from %s ttl=%u hops=%u ->%s", get->qid, name, from, ttl,
            get->hops, ttl > 1 ? (list[0] ? list : " (no other neighbour)") : " (ttl 1: not forwarded)");
    if (ttl > 1) {
        struct msg fwd = *get;
        fwd.ttl = ttl - 1;
        fwd.hops = get->hops + 1;
        fwd.from = p->self;
        stats_add(&p->stats, queries_forwarded, send_to_neighbours(p, &c, &fwd, &get->from));
    }
    send_hits(p, &c, get);
}

static struct flood_query *find_query(struct flood *f, const char *qid)
{
    for (int i = 0; i < FLOOD_MAX_QUERIES; i++)
        if (f->queries[i] && strcmp(f->queries[i]->qid, qid) == 0)
            return f->queries[i];
    return NULL;
}

static void deliver_hit(struct peer *p, const struct msg *found)
{
    struct flood *f = p->flood;
    int kept = 0;

    pthread_mutex_lock(&f->lock);
    struct flood_query *q = find_query(f, found->qid);
    int other_name = q && strcmp(q->name, found->name) != 0;
    if (q && !other_name && q->n_hits < FLOOD_MAX_HITS) {
        q->hits[q->n_hits++] = *found;
        kept = 1;
        pthread_cond_broadcast(&f->cond);
    }
    /* Under the lock: the query's thread may start the transfer as soon as
     * the hit is visible, and its events must come after this one. */
    trace_found(p, other_name ? TR_FOUND_DROPPED : kept ? TR_FOUND_RECEIVED : TR_FOUND_DROPPED,
                found, &found->from, NULL, other_name ? "other_name" : kept ? NULL : "finished");
    pthread_mutex_unlock(&f->lock);

    char name[LOG_ESCAPE_BUF], at[ADDR_STR_MAX];
    log_escape_str(name, found->path);
    addr_format(&found->holder, at);
    if (other_name) {
        /* A hit must be for the name asked: otherwise a lying peer could
         * make `get a.txt` download anything it likes into the share. */
        stats_inc(&p->stats, found_dropped);
        log_msg(L_INFO, "found q%.4s %s at peer %u: not the name that was asked for, dropped",
                found->qid, name, found->peer_id);
    } else if (kept) {
        stats_inc(&p->stats, hits_received);
        log_msg(L_INFO, "found q%.4s %s at peer %u %s (%u hops): arrived at the origin",
                found->qid, name, found->peer_id, at, found->hops);
    } else {
        stats_inc(&p->stats, found_dropped);
        log_msg(L_INFO, "found q%.4s %s at peer %u: query already finished, dropped", found->qid,
                name, found->peer_id);
    }
}

void flood_handle_found(struct peer *p, const struct msg *found)
{
    struct fs_addr prev;
    int local = 0;
    char name[LOG_ESCAPE_BUF], to[ADDR_STR_MAX];

    char sender[ADDR_STR_MAX];

    addr_format(&found->from, sender);
    const char *cut = cut_blocks(&p->cut, &found->from);
    if (cut) {
        stats_inc(&p->stats, cut_dropped);
        trace_found(p, TR_FOUND_DROPPED, found, &found->from, NULL, cut);
        log_msg(L_INFO, "found q%.4s from %s: dropped (%s)", found->qid, sender, cut);
        return;
    }
    if (qcache_route(p->qc, found->qid, net_now_ms(), &prev, &local) != FS_OK) {
        stats_inc(&p->stats, found_dropped);
        trace_found(p, TR_FOUND_DROPPED, found, &found->from, NULL, "no_route");
        log_msg(L_INFO, "found q%.4s from %s: no such query forwarded here, dropped", found->qid,
                sender);
        return;
    }
    if (!qcache_was_sent_to(p->qc, found->qid, &found->from, net_now_ms())) {
        /* Only a hop the query went to can answer it: anyone else is
         * guessing query ids, or lying about where it stands. */
        stats_inc(&p->stats, wrong_route_dropped);
        trace_found(p, TR_FOUND_DROPPED, found, &found->from, NULL, "route_lost");
        log_msg(L_INFO, "found q%.4s from %s: the query was never sent there, dropped",
                found->qid, sender);
        return;
    }
    if (local) {
        deliver_hit(p, found);
        return;
    }
    log_escape_str(name, found->path);
    hop_label(&p->self, &prev, to, sizeof to);
    struct msg relay = *found;
    relay.from = p->self;
    if (send_is_cut(p, found->qid, "FOUND", &prev))
        return;
    trace_found(p, TR_FOUND_RELAYED, found, &found->from, &prev, NULL);
    fs_status st = links_send(p->links, &prev, &relay);
    if (st == FS_OK) {
        stats_inc(&p->stats, hits_relayed);
        log_msg(L_INFO, "found q%.4s %s at peer %u: relayed back -> %s", found->qid, name,
                found->peer_id, to);
    } else {
        log_msg(L_WARN, "found q%.4s: cannot relay to %s: %s", found->qid, to, fs_strerror(st));
        trace_send_failed(p, found->qid, "FOUND", &prev, st);
    }
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

fs_status flood_start(struct peer *p, const char *name, struct flood_query **out)
{
    struct cfg c;
    struct flood_query *q = calloc(1, sizeof *q);
    char list[512], esc[LOG_ESCAPE_BUF];

    *out = NULL;
    if (!q)
        return FS_ENOMEM;
    new_qid(q->qid);
    snprintf(q->name, sizeof q->name, "%s", name);
    if (register_query(p->flood, q) != FS_OK) {
        free(q);
        return FS_EBUSY;
    }
    peer_cfg_snapshot(p, &c);
    qcache_insert(p->qc, q->qid, NULL, net_now_ms());
    stats_inc(&p->stats, queries_started);

    struct msg get;
    memset(&get, 0, sizeof get);
    get.type = MSG_GET;
    memcpy(get.qid, q->qid, sizeof get.qid);
    get.ttl = c.ttl;
    get.hops = 0;
    get.origin = p->self;
    get.from = p->self;
    snprintf(get.name, sizeof get.name, "%s", name);
    target_list(p, &c, NULL, list, sizeof list);
    log_msg(L_INFO, "get q%.4s %s started ttl=%u ->%s", q->qid, log_escape_str(esc, name), c.ttl,
            list[0] ? list : " (no neighbours)");
    struct trace_event ev;
    trace_init_event(&ev, TR_QUERY_STARTED, q->qid);
    trace_set(ev.name, sizeof ev.name, name);
    ev.ttl = c.ttl;
    ev.count = (unsigned)c.n_neighbours;
    trace_emit(p->trace, &ev);
    q->sent = send_to_neighbours(p, &c, &get, NULL);
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

fs_status flood_next_hit(struct peer *p, struct flood_query *q, uint64_t deadline_ms,
                         struct msg *hit)
{
    struct flood *f = p->flood;
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

void flood_end(struct peer *p, struct flood_query *q)
{
    struct flood *f = p->flood;

    pthread_mutex_lock(&f->lock);
    for (int i = 0; i < FLOOD_MAX_QUERIES; i++)
        if (f->queries[i] == q)
            f->queries[i] = NULL;
    pthread_mutex_unlock(&f->lock);
    free(q);
}
