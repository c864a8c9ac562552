/* stats.h - a peer's counters, shown by `peer N stats`.
 *
 * The names are part of the user contract (`stats --json` field names):
 * extend the list, never rename. Counters are atomics, so any thread may
 * bump them without a lock. */
#ifndef FLOODSHARE_STATS_H
#define FLOODSHARE_STATS_H

#include <stdatomic.h>
#include <stdint.h>

/* X(name, description) */
#define STATS_MAP(X)                                                            \
    X(queries_started, "queries this peer started (get, search)")              \
    X(queries_handled, "distinct query ids searched for other peers")          \
    X(queries_forwarded, "GET messages forwarded to neighbours")               \
    X(duplicates_dropped, "GETs dropped because their id was already seen")    \
    X(duplicates_forwarded, "GETs seen before but forwarded again: more ttl left") \
    X(ttl_dropped, "GETs dropped because their ttl was 0")                     \
    X(ttl_clamped, "GETs whose ttl was above max_ttl and was lowered")         \
    X(hits_sent, "FOUNDs this peer sent for its own items")                    \
    X(hits_relayed, "FOUNDs relayed one hop back along the reverse path")      \
    X(hits_received, "FOUNDs delivered to a query this peer started")          \
    X(found_dropped, "FOUNDs for a query id this peer never forwarded")        \
    X(neighbours_skipped, "sends skipped or failed because a peer was down")   \
    X(malformed_dropped, "connections closed for a malformed message")         \
    X(timeouts, "connections closed for a read or write timeout")              \
    X(busy_refused, "connections or uploads refused busy: no worker or slot free") \
    X(uploads, "items served to requesters")                                   \
    X(uploads_failed, "requests that failed or were refused")                  \
    X(downloads, "items downloaded and verified")                              \
    X(downloads_failed, "download attempts that failed verification or I/O")   \
    X(bytes_sent, "payload bytes sent in transfers")                           \
    X(bytes_received, "payload bytes received in transfers")                   \
    X(throttled, "GETs over a neighbour's rate limit, dropped")                \
    X(wrong_route_dropped, "FOUNDs from a peer the query was never sent to")   \
    X(limit_refused, "connections refused by max_conns or max_conns_per_addr") \
    X(archives_refused, "archives refused: unsafe names, links, bombs, lies")  \
    X(holders_cut, "holders cut off: wrong bytes, stalled, or too many bytes") \
    X(hops_dropped, "GETs that had travelled the most hops a message can count") \
    X(cut_dropped, "GETs/FOUNDs not sent or dropped: link down or peer paused") \
    X(flow_dropped, "GETs/FOUNDs dropped: the neighbour's output queue was full") \
    X(spoofed_dropped, "messages whose from disagreed with the link they came on") \
    X(uploads_slow, "uploads cut for moving less than min_upload_rate")        \
    X(symlinks_refused, "paths refused or entries left out: a symbolic link in the share") \
    X(upload_wait_ms, "ms uploads slept in the upload_rate bucket, all added up") \
    X(download_wait_ms, "ms downloads slept in the download_rate bucket, all added up") \
    X(bad_chunks, "received pieces that failed their SHA-256 (discarded, fetched again)") \
    X(auth_failed, "connections closed: no TLS, wrong passphrase, or an untrusted key") \
    X(browses, "pages of this peer's share listed for others (BROWSE)")        \
    X(browse_refused, "BROWSEs refused: [accept] browse, a bad path, no such folder")

/* The same counters by drop reason, named like gtk-gnutella's message drop
 * reasons (`stats` shows them as "drops"; `stats --json` as "drops": {}).
 * X(reason, counter) */
#define STATS_DROPS(X)                         \
    X(duplicate, duplicates_dropped)           \
    X(ttl0, ttl_dropped)                       \
    X(max_ttl_exceeded, ttl_clamped)           \
    X(max_hop_count, hops_dropped)             \
    X(throttle, throttled)                     \
    X(no_route, found_dropped)                 \
    X(route_lost, wrong_route_dropped)         \
    X(malformed, malformed_dropped)            \
    X(timeout, timeouts)                       \
    X(flow_control, flow_dropped)              \
    X(limit, limit_refused)                    \
    X(bad_archive, archives_refused)           \
    X(bad_holder, holders_cut)                 \
    X(link_down, cut_dropped)                  \
    X(spoofed, spoofed_dropped)                \
    X(busy, busy_refused)                      \
    X(slow, uploads_slow)                      \
    X(auth, auth_failed)

struct stats {
#define STATS_FIELD(name, text) _Atomic uint64_t name;
    STATS_MAP(STATS_FIELD)
#undef STATS_FIELD
};

#define stats_inc(s, field) atomic_fetch_add_explicit(&(s)->field, 1, memory_order_relaxed)
#define stats_add(s, field, n) \
    atomic_fetch_add_explicit(&(s)->field, (uint64_t)(n), memory_order_relaxed)
#define stats_get(s, field) atomic_load_explicit(&(s)->field, memory_order_relaxed)

#endif
