/* trace.h - trace events: what a peer does, kept in a ring and streamed to
 * whoever listens (docs/TRACE.md is the contract of the event schema).
 *
 * Emitting an event packs it into a ring of the last TRACE_RING events
 * (fewer when they carry long names: the ring holds 128 bytes per event)
 * under one mutex; nothing is formatted and no I/O happens in the
 * emitting thread. When somebody listens (an atomic subscriber count is
 * checked first), the event is also copied into each subscriber's bounded
 * queue; the subscriber's own thread formats and writes it. A subscriber
 * that falls behind loses events (its queue is full: the newest are
 * dropped) and is told how many with a TR_LOST event; it never blocks the
 * peer. */
#ifndef FLOODSHARE_TRACE_H
#define FLOODSHARE_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "floodshare/addr.h"
#include "floodshare/msg.h"
#include "floodshare/status.h"

#define TRACE_RING 4096        /* events a peer keeps for `events` and `trace` */
#define TRACE_QUEUE 1024       /* events waiting for one subscriber */
#define TRACE_MAX_SUBS 8       /* subscribers (watchers) of one peer at once */
#define TRACE_DETAIL_MAX 127   /* bytes of a failure's detail text (longer: cut) */
#define TRACE_NAME_MAX 255     /* bytes of a name or path (longer paths: cut) */
#define TRACE_PROGRESS_MS 250  /* transfer_progress: at most 4 a second per transfer */
#define TRACE_SCHEMA 1         /* fields are added, never renamed: see docs/TRACE.md */

/* X(name, json type string). The names are the contract ("type" in JSON). */
#define TRACE_TYPES(X)                        \
    X(PEER_UP, "peer_up")                     \
    X(PEER_DOWN, "peer_down")                 \
    X(QUERY_STARTED, "query_started")         \
    X(RECEIVED, "received")                   \
    X(DUPLICATE, "duplicate")                 \
    X(DROPPED, "dropped")                     \
    X(FORWARDED, "forwarded")                 \
    X(SEND_FAILED, "send_failed")             \
    X(SEARCHED, "searched")                   \
    X(FOUND_SENT, "found_sent")               \
    X(FOUND_RELAYED, "found_relayed")         \
    X(FOUND_RECEIVED, "found_received")       \
    X(FOUND_DROPPED, "found_dropped")         \
    X(TRANSFER_STARTED, "transfer_started")   \
    X(TRANSFER_PROGRESS, "transfer_progress") \
    X(TRANSFER_DONE, "transfer_done")         \
    X(TRANSFER_FAILED, "transfer_failed")     \
    X(LOST, "lost")                           \
    X(PIECE_RECEIVED, "piece_received")       \
    X(OFFER_RECEIVED, "offer_received")       \
    X(OFFER_ACCEPTED, "offer_accepted")       \
    X(OFFER_REFUSED, "offer_refused")         \
    X(SYNC_STARTED, "sync_started")           \
    X(SYNC_DONE, "sync_done")                 \
    X(SYNC_FAILED, "sync_failed")

enum trace_type {
    TR_NONE = 0,
#define TRACE_ENUM(name, text) TR_##name,
    TRACE_TYPES(TRACE_ENUM)
#undef TRACE_ENUM
    TR_COUNT
};

enum trace_role { TR_ROLE_NONE = 0, TR_ROLE_REQUESTER, TR_ROLE_HOLDER };

/* One event. Fields that do not apply to its type are zero / empty (see
 * docs/TRACE.md for which apply to which type). A fixed struct: copying it
 * is all an emitter pays. */
struct trace_event {
    uint64_t ts_us;     /* wall clock, microseconds since the Unix epoch */
    uint64_t seq;       /* per peer, from 1; set by trace_emit */
    enum trace_type type;
    unsigned peer;      /* the emitting peer's id; set by trace_emit */
    struct fs_addr addr; /* the emitting peer's address; set by trace_emit */
    char qid[MSG_QID_LEN + 1]; /* "" when the event belongs to no query */
    char name[TRACE_NAME_MAX + 1]; /* what was asked for, or the item's path */
    struct fs_addr from;   /* the hop a message came from (port 0: none) */
    unsigned from_peer;    /* its id, when known (0: unknown) */
    struct fs_addr to;     /* the hop a message goes to (port 0: none) */
    unsigned to_peer;
    struct fs_addr origin; /* GET: the peer that started the query */
    unsigned holder;       /* FOUND and transfers: the holder's id */
    unsigned ttl, hops;
    unsigned count;        /* searched: hits; query_started: neighbours; lost: events lost;
                              transfers: pieces this source delivered; piece_received: the
                              piece's index */
    enum trace_role role;  /* transfers */
    uint64_t bytes, size;  /* transfers: bytes present so far, item size; FOUND: size;
                              piece_received: the piece's length */
    uint64_t source_bytes; /* transfers: bytes this source delivered (a holder: sent on
                              this connection); 0 when not told */
    char md5[MSG_MD5_LEN + 1];
    char reason[32];       /* drops and failures: a short word ("duplicate", "ttl0", ...) */
    char detail[TRACE_DETAIL_MAX + 1]; /* failures: one line of text */
    char msg[8];           /* send_failed: "GET" or "FOUND" */
};

struct trace;

/* A ring of at most `ring` (>= 1) events, packed into ring * 128 bytes
 * (at least a few of the longest events), for peer `peer` at `addr`. NULL
 * when out of memory. Free with trace_free() once no thread emits or
 * listens. */
struct trace *trace_new(size_t ring, unsigned peer, const struct fs_addr *addr);
void trace_free(struct trace *t);

/* Clears ev and sets its type and query id (qid may be NULL). */
void trace_init_event(struct trace_event *ev, enum trace_type type, const char *qid);

/* Copies src (may be NULL) into dst[0..cap), cut to fit, NUL-terminated:
 * for the event's name, reason and detail fields. */
void trace_set(char *dst, size_t cap, const char *src);

/* Stamps ev (ts_us, seq, peer, addr), keeps a copy in the ring (except
 * the live-only types, trace_live_only(), so a long transfer cannot push a
 * query's events out) and queues a copy for every subscriber. Never
 * blocks on a subscriber, never formats. t may be NULL (nothing happens).
 * A live-only event with nobody listening is dropped before the lock. */
void trace_emit(struct trace *t, struct trace_event *ev);

/* 1 for the types that are streamed to subscribers but never kept in the
 * ring: transfer_progress and piece_received (one per piece, 2048 per
 * GiB, would push a query's events out of TRACE_RING). */
int trace_live_only(enum trace_type type);

/* 1 if at least one subscriber listens (an atomic load): lets an emitter
 * skip building live-only events. */
int trace_listening(const struct trace *t);

/* Copies the ring's events, oldest first, whose qid starts with
 * qid_prefix (NULL or "": all) into a malloc'ed array *out (the caller
 * frees it). Returns how many (0 with *out NULL when none or out of
 * memory). */
size_t trace_dump(struct trace *t, const char *qid_prefix, struct trace_event **out);

/* Counters of the trace itself. */
struct trace_info {
    unsigned subscribers;
    uint64_t emitted;   /* events emitted so far (the last seq) */
    size_t in_ring, ring;
    uint64_t started_us; /* when this trace (the peer's run) began: tells one run from the next */
};
void trace_get_info(struct trace *t, struct trace_info *out);

/* The most recent found_sent event in the ring for an item: md5 equal, or
 * its path a folder above `path` ("dir" for "dir/a/b.txt"). Lets a holder
 * name the query a REQUEST/FETCH/LIST belongs to: those messages do not
 * carry the query id. 1 and *out filled when found, else 0. */
int trace_find_hit(struct trace *t, const char *md5, const char *path, struct trace_event *out);

/* --- subscribers --- */

struct trace_sub;

/* Subscribes to every event emitted from now on. NULL when TRACE_MAX_SUBS
 * subscribers already listen, or out of memory. */
struct trace_sub *trace_subscribe(struct trace *t);

/* Removes and frees s; the subscriber count drops at once. */
void trace_unsubscribe(struct trace *t, struct trace_sub *s);

/* Waits up to timeout_ms for the next event of s. 1 with *ev filled (a
 * TR_LOST event first when events were lost since the last call), 0 on
 * timeout. */
int trace_next(struct trace *t, struct trace_sub *s, int timeout_ms, struct trace_event *ev);

/* Waits up to timeout_ms until every subscriber's queue is empty (so that
 * peer_down reaches the watchers before the sockets close). */
void trace_drain(struct trace *t, int timeout_ms);

/* The formats of an event (names, JSON, text, the control socket's line
 * form) are tracefmt.h's; included here so that users of events have both. */
#include "floodshare/tracefmt.h"

#endif
