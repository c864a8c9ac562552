/* qcache.h - the seen-query table: duplicate suppression and reverse routes.
 *
 * Every query id a peer handles is remembered, with the previous hop it came
 * from, for ttl_ms or until `capacity` newer ids push it out (oldest first).
 * That one table answers both "have I handled this id?" (flood dedupe) and
 * "where does a FOUND for this id go back to?" (reverse path). Thread-safe:
 * one mutex inside guards the whole table. */
#ifndef FLOODSHARE_QCACHE_H
#define FLOODSHARE_QCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "floodshare/addr.h"
#include "floodshare/status.h"

struct qcache;

/* Creates a table of at most capacity (>= 1) entries that live ttl_ms.
 * Returns NULL on allocation failure. Free with qcache_free(). */
struct qcache *qcache_new(size_t capacity, uint32_t ttl_ms);
void qcache_free(struct qcache *qc);

/* Records qid (MSG_QID_LEN hex chars, NUL-terminated) as handled at now_ms.
 * prev is the hop it came from, or NULL for a query this peer started
 * (a "local" query). Returns 1 if qid was new (now recorded), 0 if it is
 * already present and not expired (a duplicate: nothing changes). Expired
 * entries are dropped first; when still full, the oldest entry is evicted. */
int qcache_insert(struct qcache *qc, const char *qid, const struct fs_addr *prev,
                  uint64_t now_ms);

/* What qcache_see() found. */
#define QCACHE_DUP 0      /* seen before with as much ttl or more: drop it */
#define QCACHE_NEW 1      /* first copy: now recorded */
#define QCACHE_MORE_TTL 2 /* seen before, but this copy has more ttl left: the
                             entry now remembers ttl; forward it again */

/* Like qcache_insert(), for a copy that arrived over link prev_link (an id
 * the caller gives its connections; 0 for none) with ttl left. A duplicate
 * whose ttl is higher than any copy before it is QCACHE_MORE_TTL (never for
 * a local query): a copy that took a long way round and came first must not
 * keep the query from peers a shorter way still reaches (gtk-gnutella
 * forwards such duplicates too). The reverse route stays the first copy's. */
int qcache_see(struct qcache *qc, const char *qid, const struct fs_addr *prev,
               uint32_t prev_link, unsigned ttl, uint64_t now_ms);

/* qcache_route() that also gives the link the first copy came over. */
fs_status qcache_route_link(struct qcache *qc, const char *qid, uint64_t now_ms,
                            struct fs_addr *prev, uint32_t *prev_link, int *local);

/* Remembers that qid was sent over link; qcache_was_sent_link() asks. A
 * table is used with links or with addresses (below), never both. At most
 * QCACHE_MAX_SENT links per query. */
void qcache_sent_link(struct qcache *qc, const char *qid, uint32_t link, uint64_t now_ms);
int qcache_was_sent_link(struct qcache *qc, const char *qid, uint32_t link, uint64_t now_ms);

/* Neighbours whose copies a query remembers: as many as a peer may have. */
#define QCACHE_MAX_HEARD 64

/* Remembers that neighbour `from` sent a copy of qid with ttl left, keeping
 * the highest ttl per neighbour (at most QCACHE_MAX_HEARD neighbours per
 * query). Nothing happens for an unknown or expired qid: call it after
 * qcache_see(). qcache_heard_ttl() gives that highest ttl: 1 with *ttl
 * set when `from` sent a copy, else 0 (and *ttl 0). */
void qcache_heard(struct qcache *qc, const char *qid, const struct fs_addr *from, unsigned ttl,
                  uint64_t now_ms);
int qcache_heard_ttl(struct qcache *qc, const char *qid, const struct fs_addr *from,
                     uint64_t now_ms, unsigned *ttl);

/* Looks up the reverse route of qid at now_ms. FS_OK: *local is 1 for a
 * query this peer started, else 0 and *prev holds the previous hop.
 * FS_ENOTFOUND when qid was never recorded, or has expired or been evicted. */
fs_status qcache_route(struct qcache *qc, const char *qid, uint64_t now_ms,
                       struct fs_addr *prev, int *local);

/* Destinations remembered per query: as many as a peer may have neighbours. */
#define QCACHE_MAX_SENT 64

/* Remembers that qid was sent to `to`. Call before sending, so a reply can
 * never arrive first. Nothing happens for an unknown or expired qid, or
 * past QCACHE_MAX_SENT destinations. */
void qcache_sent_to(struct qcache *qc, const char *qid, const struct fs_addr *to, uint64_t now_ms);

/* 1 if qid is live and was sent to `from` (a FOUND for it may come from
 * there), else 0. Host names are not resolved: a name on either side
 * matches any host with the same port; numeric hosts must be equal. */
int qcache_was_sent_to(struct qcache *qc, const char *qid, const struct fs_addr *from,
                       uint64_t now_ms);

/* Live (unexpired at now_ms) entries. */
size_t qcache_count(struct qcache *qc, uint64_t now_ms);

#endif
