/* flood.h - query flooding: GET in, search, forward, FOUND back.
 *
 * The flood runs on the flood plane's loop (fplane.h): incoming GETs are
 * judged by route.h (spoofed, throttle, ttl, dedupe), searched in the
 * share's index as it stands, answered with one FOUND per matching item
 * over the link the GET came in on, and forwarded with ttl-1 to every
 * neighbour but the one it came from; a duplicate with more ttl left than
 * any copy before is forwarded again. Incoming FOUNDs are relayed back
 * over the link their GET came in on, or delivered to the local query that
 * started them. Control threads start queries and wait for their hits. */
#ifndef FLOODSHARE_FLOOD_H
#define FLOODSHARE_FLOOD_H

#include <stdint.h>

#include "floodshare/msg.h"
#include "floodshare/status.h"

struct node;
struct gate;
struct flood;
struct flood_query;

#define FLOOD_MAX_QUERIES 32 /* local queries running at once */
#define FLOOD_MAX_HITS 64    /* hits kept per local query */
#define FLOOD_IDLE_MS 15000  /* a neighbour link idle this long is closed */

struct conn;

/* The flood of node n (its self, stats, trace, cut and query cache are
 * borrowed; n must outlive it), with the plane configured from n's
 * configuration (id, timeouts). NULL when out of memory. */
struct flood *flood_new(struct node *n);

/* Frees f; stops its plane first if flood_shutdown() did not. */
void flood_free(struct flood *f);

/* Starts the plane's thread, gives it the configuration and follows the
 * node's reconfigurations from then on (ttl, neighbours). Links adopted
 * from the gate g go back to it when they close. Start-up only. */
fs_status flood_run(struct flood *f, struct gate *g);

/* Wakes every local query waiting for hits and stops the plane (shutdown). */
void flood_shutdown(struct flood *f);

/* Hands an accepted connection whose first header is a flood message to
 * the plane (ownership moves; it goes back to the gate when it closes). */
void flood_adopt(struct flood *f, struct conn *c);

/* 1 when a message of this type belongs to the flood plane. */
int flood_is_flood_msg(enum msg_type t);

/* 1 when a proven link to the neighbour whose advertised address is nb is
 * open now, with *sock the socket address of its other end (the host it
 * really talks from); else 0. Any thread. */
int flood_link_proven(struct flood *f, const struct fs_addr *nb, struct fs_addr *sock);

/* Neighbour links open now, and how many of them are proven. */
void flood_link_counts(struct flood *f, unsigned *open, unsigned *proven);

/* Starts a query for name with the peer's configured ttl: registers it,
 * records its id as local in the seen table, and sends GET to every
 * neighbour. *q is owned by the caller until flood_end(). FS_EBUSY when
 * FLOOD_MAX_QUERIES are already running. */
fs_status flood_start(struct flood *f, const char *name, struct flood_query **q);

/* The query's id (MSG_QID_LEN hex digits). */
const char *flood_query_id(const struct flood_query *q);

/* How many neighbours the GET went out to. */
unsigned flood_query_sent(const struct flood_query *q);

/* Waits until the next hit not yet returned arrives, or deadline_ms
 * (net_now_ms() clock) passes. FS_OK with *hit filled (a FOUND);
 * FS_ETIMEDOUT; FS_ECANCELED when the peer is stopping. */
fs_status flood_next_hit(struct flood *f, struct flood_query *q, uint64_t deadline_ms,
                         struct msg *hit);

/* Unregisters and frees q; later FOUNDs for it are dropped. */
void flood_end(struct flood *f, struct flood_query *q);

#endif
