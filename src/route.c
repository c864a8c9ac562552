/* route.c - the flood's decisions (route.h). */
#include "floodshare/route.h"

#include <stdlib.h>
#include <string.h>

#include "floodshare/qcache.h"

/* A token bucket of GETs: query_rate a second, at most query_burst. */
struct bucket {
    struct fs_addr who; /* the neighbour it belongs to (port 0: the shared one) */
    double tokens;
    uint64_t last_ms;
    int used;
};

struct route {
    struct qcache *qc;
    struct route_cfg cfg;
    struct bucket buckets[CFG_MAX_NEIGHBOURS + 1]; /* the last: everything unproven */
};

struct route *route_new(struct qcache *qc)
{
    struct route *r = calloc(1, sizeof *r);

    if (r)
        r->qc = qc;
    return r;
}

void route_free(struct route *r)
{
    free(r);
}

int route_neighbour(const struct route *r, const struct fs_addr *addr)
{
    for (size_t i = 0; i < r->cfg.n_neighbours; i++)
        if (addr_equal(&r->cfg.neighbours[i], addr))
            return (int)i;
    return -1;
}

void route_set_cfg(struct route *r, const struct route_cfg *c)
{
    struct bucket old[CFG_MAX_NEIGHBOURS];

    memcpy(old, r->buckets, sizeof old);
    r->cfg = *c;
    for (size_t i = 0; i < CFG_MAX_NEIGHBOURS; i++) {
        memset(&r->buckets[i], 0, sizeof r->buckets[i]);
        if (i >= c->n_neighbours)
            continue;
        for (size_t j = 0; j < CFG_MAX_NEIGHBOURS; j++) /* a neighbour that stays keeps its */
            if (old[j].used && addr_equal(&old[j].who, &c->neighbours[i]))
                r->buckets[i] = old[j];
    }
}

/* Takes a token from b; 0 when it is empty. */
static int take_token(const struct route_cfg *c, struct bucket *b, uint64_t now)
{
    if (!b->used) {
        b->used = 1;
        b->tokens = c->query_burst;
        b->last_ms = now;
    }
    if (now > b->last_ms)
        b->tokens += (double)(now - b->last_ms) * c->query_rate / 1000.0;
    if (b->tokens > c->query_burst)
        b->tokens = c->query_burst;
    b->last_ms = now;
    if (b->tokens < 1.0)
        return 0;
    b->tokens -= 1.0;
    return 1;
}

/* The bucket a message over hop draws from: its neighbour's once the link
 * is proven, else the one everything unproven shares, so that neither a
 * claimed address nor a new one each time escapes the limit. */
static struct bucket *bucket_of(struct route *r, const struct route_hop *hop)
{
    int i = hop->proven ? route_neighbour(r, &hop->addr) : -1;

    if (i < 0)
        return &r->buckets[CFG_MAX_NEIGHBOURS];
    if (!addr_equal(&r->buckets[i].who, &hop->addr)) {
        memset(&r->buckets[i], 0, sizeof r->buckets[i]);
        r->buckets[i].who = hop->addr;
    }
    return &r->buckets[i];
}

static void drop(struct route_verdict *v, const char *reason)
{
    v->action = ROUTE_DROP;
    v->reason = reason;
}

void route_start(struct route *r, const char *qid, unsigned ttl, uint64_t now_ms)
{
    qcache_see(r->qc, qid, NULL, 0, ttl, now_ms);
}

void route_sent(struct route *r, const char *qid, uint32_t link, uint64_t now_ms)
{
    qcache_sent_link(r->qc, qid, link, now_ms);
}

void route_get(struct route *r, const struct msg *get, const struct route_hop *hop,
               uint64_t now_ms, struct route_verdict *v)
{
    memset(v, 0, sizeof *v);
    v->ttl = get->ttl;
    if (hop->refuted || !addr_equal(&get->from, &hop->addr))
        return drop(v, "spoofed");
    if (!take_token(&r->cfg, bucket_of(r, hop), now_ms))
        return drop(v, "throttle");
    if (get->ttl == 0)
        return drop(v, "ttl0");
    if (get->hops >= MSG_MAX_HOPS) /* neither a forward nor a FOUND could count one more */
        return drop(v, "max_hop_count");
    if (v->ttl > r->cfg.max_ttl) {
        v->ttl = r->cfg.max_ttl;
        v->clamped = 1;
    }
    switch (qcache_see(r->qc, get->qid, &hop->addr, hop->link, v->ttl, now_ms)) {
    case QCACHE_NEW: v->action = ROUTE_HANDLE; break;
    case QCACHE_MORE_TTL: v->action = ROUTE_FORWARD; break;
    default: drop(v, "duplicate"); break;
    }
    /* Only a proven neighbour's copy may keep us from sending to it
     * (route_wanted): a claim must not silence a peer's real neighbour. */
    if (hop->proven)
        qcache_heard(r->qc, get->qid, &hop->addr, v->ttl, now_ms);
}

int route_wanted(struct route *r, const char *qid, const struct fs_addr *to, unsigned ttl,
                 uint64_t now_ms)
{
    unsigned heard;

    /* `to` forwarded the query with `heard` left, so it handled a copy
     * with heard + 1 or more, and drops one with no more than that as a
     * duplicate: it has flooded at least as far as ours would. */
    return !qcache_heard_ttl(r->qc, qid, to, now_ms, &heard) || heard + 1 < ttl;
}

void route_found(struct route *r, const struct msg *found, const struct route_hop *hop,
                 uint64_t now_ms, struct route_verdict *v)
{
    int local = 0;

    memset(v, 0, sizeof *v);
    if (hop->refuted || !addr_equal(&found->from, &hop->addr))
        return drop(v, "spoofed");
    if (qcache_route_link(r->qc, found->qid, now_ms, &v->back, &v->back_link, &local) != FS_OK)
        return drop(v, "no_route");
    /* Only a link the query went out over can answer it: anyone else is
     * guessing query ids, or lying about where it stands. */
    if (!qcache_was_sent_link(r->qc, found->qid, hop->link, now_ms))
        return drop(v, "route_lost");
    v->action = local ? ROUTE_DELIVER : ROUTE_RELAY;
}
