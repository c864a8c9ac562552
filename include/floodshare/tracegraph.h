/* tracegraph.h - the flood of one query, reconstructed from trace events.
 *
 * tracegraph_build() is a pure function from the events of one query (as
 * collected from every peer's ring by `floodshare trace QID`) and the
 * network's topology to a graph: who got the query from whom at which hop,
 * which copies were dropped as duplicates, the reverse path of each hit,
 * the transfer, and the message counts against flooding's bound. The
 * writers below are functions of that graph only. */
#ifndef FLOODSHARE_TRACEGRAPH_H
#define FLOODSHARE_TRACEGRAPH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "floodshare/json.h"
#include "floodshare/trace.h"

#define TG_MAX_PATH 256 /* peers on one reverse path (hops are at most 255) */

/* The network, as far as it is known (may be empty: the bound is then
 * unknown). Addresses map events' hops to peer ids. */
struct tg_peer {
    unsigned id;
    struct fs_addr addr;
};
struct tg_link {
    unsigned a, b; /* peer ids */
};
struct tg_topology {
    const struct tg_peer *peers;
    size_t n_peers;
    const struct tg_link *links;
    size_t n_links;
};

/* A peer the query reached. */
struct tg_node {
    unsigned peer;
    struct fs_addr addr;
    int origin;         /* started the query (the requester) */
    int holder;         /* answered it with at least one FOUND */
    int hop;            /* hops from the origin (0 for it); -1 when its first copy is unknown */
    unsigned parent;    /* the peer its first copy came from; 0 for the origin or unknown */
    unsigned ttl_in;    /* ttl of that copy (after clamping) */
    uint64_t first_us;  /* when it got the query (the origin: started it) */
    int searched;
    unsigned hits;
    unsigned dups_in;   /* copies that arrived here after the first (duplicates) */
    unsigned reforwards; /* of those, copies with more ttl left: forwarded again */
    unsigned gets_out;  /* GETs it sent */
};

enum tg_edge_kind {
    TG_TREE = 1,   /* the copy that was handled: the propagation tree */
    TG_DUPLICATE,  /* a copy dropped because the id was seen */
    TG_DROPPED,    /* a copy dropped for another reason (throttle, ttl0, ...) */
    TG_TRANSFER,   /* holder -> requester: the download */
};

/* One GET that arrived (from -> to), or the transfer. */
struct tg_edge {
    unsigned from, to;
    unsigned hop;       /* the hop this message made: its wire hops + 1 */
    enum tg_edge_kind kind;
    int reverse;        /* a FOUND came back over this link (bold) */
    uint64_t ts_us;
    char reason[32];    /* TG_DROPPED */
    uint64_t bytes;     /* TG_TRANSFER: what its source delivered (source_bytes), or
                           where the transfer got to when the events do not say */
};

/* One hit and the path its FOUND took back: path[0] is the holder, then
 * each relay, path[n_path-1] the origin when it arrived. */
struct tg_hit {
    unsigned holder;
    char name[TRACE_NAME_MAX + 1];
    uint64_t size;
    char md5[MSG_MD5_LEN + 1];
    unsigned path[TG_MAX_PATH];
    size_t n_path;
    int arrived;        /* found_received at the origin */
    char dropped[32];   /* the reason, when a peer on the way dropped it */
};

/* One download of the query's item from one holder (requester side,
 * joined with the holder's events for the same item when they are
 * there): a swarmed get has one per source. */
struct tg_transfer {
    unsigned requester, holder;
    char name[TRACE_NAME_MAX + 1];
    char md5[MSG_MD5_LEN + 1];
    uint64_t size, bytes, resumed_from;
    uint64_t source_bytes; /* what this source delivered, 0 when its events did not say */
    unsigned pieces;       /* and in how many pieces */
    uint64_t start_us, end_us; /* end 0: still running, or unknown */
    int done, failed;
    char detail[TRACE_DETAIL_MAX + 1];
    int holder_seen;    /* the holder's own events were found */
};

struct tg_counts {
    unsigned gets_sent;      /* GETs written to a neighbour */
    unsigned gets_failed;    /* GETs to a neighbour that was down */
    unsigned links_reached;  /* topology links with both ends reached */
    unsigned get_bound;      /* 2 x links_reached (0: topology unknown) */
    unsigned gets_expected;  /* sum over forwarding peers of their neighbours but the sender */
    unsigned reforwarded;    /* duplicates forwarded again because they had more ttl left */
    unsigned received;       /* copies handled (one per reached peer but the origin) */
    unsigned duplicates;
    unsigned dropped;
    unsigned founds_sent;
    unsigned founds_relayed;
    unsigned founds_received;
    unsigned founds_dropped;
};

struct tracegraph {
    char qid[MSG_QID_LEN + 1];
    char name[TRACE_NAME_MAX + 1];
    unsigned origin;  /* 0: not known (the origin's events are missing) */
    unsigned ttl;
    uint64_t start_us;
    int topology_known;
    struct tg_node *nodes; /* sorted by hop, then peer id */
    size_t n_nodes;
    struct tg_edge *edges;
    size_t n_edges;
    struct tg_hit *hits;
    size_t n_hits;
    struct tg_transfer *xfers;
    size_t n_xfers;
    struct tg_counts counts;
    unsigned unknown_hops; /* events naming an address no peer id is known for */
};

/* Builds g from events evs[0..n) (any order; those of other queries than
 * the first query id found are ignored) and topo (may be NULL). g owns
 * its arrays: free with tracegraph_free(). FS_ENOTFOUND when no event
 * belongs to a query, FS_ENOMEM. */
fs_status tracegraph_build(const struct trace_event *evs, size_t n, const struct tg_topology *topo,
                           struct tracegraph *g);
void tracegraph_free(struct tracegraph *g);

/* The node of peer id, or NULL when the query did not reach it. */
const struct tg_node *tracegraph_node(const struct tracegraph *g, unsigned id);

/* Writes g as Graphviz DOT: one node per reached peer labelled "peer N",
 * requester and holders marked (shape and fill, explained in a legend
 * that is the graph's label, so it adds no node), GET edges coloured by
 * hop (Okabe-Ito, colour-blind safe), duplicates dashed, the reverse path
 * bold, the transfer dotted. Returns 0, or -1 on a write error. */
int tracegraph_dot(const struct tracegraph *g, FILE *out);

/* Writes the readable report: the propagation tree, duplicates, the
 * reverse path of each hit, the transfer and the message counts. */
int tracegraph_text(const struct tracegraph *g, FILE *out);

/* Writes g as one JSON object into j (docs/TRACE.md). */
void tracegraph_json(const struct tracegraph *g, struct json *j);

#endif
