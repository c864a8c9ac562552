/* flood.h - query flooding: GET in, search, forward, FOUND back.
 *
 * Incoming GETs are handled at most once per query id (qcache), searched in
 * the share, answered with one FOUND per matching item sent to the previous
 * hop, and forwarded with ttl-1 to every neighbour but the previous hop.
 * Incoming FOUNDs are relayed one hop back along the reverse path, or
 * delivered to the local query that started them. */
#ifndef FLOODSHARE_FLOOD_H
#define FLOODSHARE_FLOOD_H

#include <stdint.h>

#include "floodshare/msg.h"
#include "floodshare/status.h"

struct peer;
struct flood;
struct flood_query;

#define FLOOD_MAX_QUERIES 32 /* local queries running at once */
#define FLOOD_MAX_HITS 64    /* hits kept per local query */

/* NULL on allocation failure. */
struct flood *flood_new(void);
void flood_free(struct flood *f);

/* Wakes every local query waiting for hits (shutdown). */
void flood_shutdown(struct flood *f);

/* Handles a GET that arrived from the network. */
void flood_handle_get(struct peer *p, const struct msg *get);

/* Handles a FOUND that arrived from the network. */
void flood_handle_found(struct peer *p, const struct msg *found);

/* Starts a query for name with the peer's configured ttl: registers it,
 * records its id as local in the seen table, and sends GET to every
 * neighbour. *q is owned by the caller until flood_end(). FS_EBUSY when
 * FLOOD_MAX_QUERIES are already running. */
fs_status flood_start(struct peer *p, const char *name, struct flood_query **q);

/* The query's id (MSG_QID_LEN hex digits). */
const char *flood_query_id(const struct flood_query *q);

/* How many neighbours the GET went out to. */
unsigned flood_query_sent(const struct flood_query *q);

/* Waits until the next hit not yet returned arrives, or deadline_ms
 * (net_now_ms() clock) passes. FS_OK with *hit filled (a FOUND);
 * FS_ETIMEDOUT; FS_ECANCELED when the peer is stopping. */
fs_status flood_next_hit(struct peer *p, struct flood_query *q, uint64_t deadline_ms,
                         struct msg *hit);

/* Unregisters and frees q; later FOUNDs for it are dropped. */
void flood_end(struct peer *p, struct flood_query *q);

#endif
