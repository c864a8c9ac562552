/* route.h - the flood's decisions, as a function of what arrived, where,
 * when, and the state so far.
 *
 *   (message, arrival hop, time, state) -> drop (with a reason) | handle |
 *                                          forward again | deliver | relay
 *
 * No I/O, no clock, no threads: the flood plane asks and then acts, and the
 * unit tests ask the same questions without a process. The state is the
 * seen-query table (dedupe and reverse path, qcache.h) and one token bucket
 * per proven neighbour plus one shared by everything unproven. Not
 * thread-safe: one thread (the flood plane's loop) owns a route. */
#ifndef FLOODSHARE_ROUTE_H
#define FLOODSHARE_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "floodshare/addr.h"
#include "floodshare/cfg.h"
#include "floodshare/msg.h"
#include "floodshare/status.h"

struct route;
struct qcache;

/* Where a message came from: a connection, and what is known of it. */
struct route_hop {
    uint32_t link;       /* the connection's id (never 0) */
    struct fs_addr addr; /* its neighbour: proven, or only claimed */
    int proven;          /* we dialled addr, or addr answered our challenge */
    int refuted;         /* the claim is a lie: another link proved addr, or
                            the challenge went unanswered */
};

/* What routing needs of the configuration: a small copy, made when the
 * peer starts and on `modify`, never per message. */
struct route_cfg {
    unsigned max_ttl;
    unsigned query_rate, query_burst;
    size_t n_neighbours;
    struct fs_addr neighbours[CFG_MAX_NEIGHBOURS];
};

enum route_action {
    ROUTE_DROP,    /* reason says why */
    ROUTE_HANDLE,  /* GET, first copy: search it, forward it with ttl-1 */
    ROUTE_FORWARD, /* GET, a duplicate with more ttl: forward only */
    ROUTE_DELIVER, /* FOUND at the peer that started the query */
    ROUTE_RELAY,   /* FOUND: send it back over back_link */
};

struct route_verdict {
    enum route_action action;
    const char *reason;   /* ROUTE_DROP: a drop reason name (stats.h STATS_DROPS) */
    unsigned ttl;         /* GET: the ttl it is handled with (clamped to max_ttl) */
    int clamped;          /* GET: ttl was above max_ttl */
    uint32_t back_link;   /* ROUTE_RELAY: the link the GET came over */
    struct fs_addr back;  /* ROUTE_RELAY: that link's neighbour (for logs) */
};

/* Creates a route over qc (borrowed; outlives the route). NULL on
 * allocation failure. */
struct route *route_new(struct qcache *qc);
void route_free(struct route *r);

/* Replaces the configuration (copied). Buckets of neighbours that stay
 * keep their tokens. */
void route_set_cfg(struct route *r, const struct route_cfg *c);

/* Index of addr among the configured neighbours, or -1. */
int route_neighbour(const struct route *r, const struct fs_addr *addr);

/* A query this peer starts: recorded so its FOUNDs are delivered here. */
void route_start(struct route *r, const char *qid, unsigned ttl, uint64_t now_ms);

/* Records that GET qid went out over link (before it is sent). */
void route_sent(struct route *r, const char *qid, uint32_t link, uint64_t now_ms);

/* Decides what to do with a GET that arrived over hop at now_ms. Checks,
 * in order: spoofed (its `from` is not the link's neighbour, or the link's
 * claim was refuted), throttle (the link's bucket, or the shared one when
 * the link is unproven), ttl0, max_hop_count, then clamps to max_ttl and
 * deduplicates: a first copy is HANDLE, a copy with more ttl than any
 * before is FORWARD, others are dropped as `duplicate`. A copy over a
 * proven link that gets this far is remembered with its ttl, whatever the
 * verdict (route_wanted). */
void route_get(struct route *r, const struct msg *get, const struct route_hop *hop,
               uint64_t now_ms, struct route_verdict *v);

/* 1 if GET qid with ttl left should go to neighbour `to` now; 0 when `to`
 * itself already sent us a copy with ttl - 1 or more left (recorded by
 * route_get() for proven links): it handled the query with at least ttl,
 * so ours would be dropped there as a duplicate. This keeps a copy that
 * is forwarded again for its higher ttl (ROUTE_FORWARD) from going back
 * to the link it came on, or to neighbours that already flooded at least
 * as far. */
int route_wanted(struct route *r, const char *qid, const struct fs_addr *to, unsigned ttl,
                 uint64_t now_ms);

/* Decides what to do with a FOUND that arrived over hop: spoofed (its
 * `from` is not the link's neighbour), no_route (an unknown query),
 * route_lost (the query never went out over this link), else DELIVER or
 * RELAY over the link its GET came in on. */
void route_found(struct route *r, const struct msg *found, const struct route_hop *hop,
                 uint64_t now_ms, struct route_verdict *v);

#endif
