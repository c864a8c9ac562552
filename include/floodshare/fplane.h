/* fplane.h - the flood plane: neighbour links on one event loop.
 *
 * Every GET and FOUND a peer sends or receives travels over a link: a TCP
 * connection to or from a neighbour, kept open, read and written by one
 * thread running an event loop (ev.h). Nothing on that thread blocks, so a
 * neighbour that stops reading costs only its own link: each link has a
 * bounded output queue, and a message that does not fit is dropped
 * (`flow_control`, as gtk-gnutella's message queues do) while every other
 * neighbour is served as before.
 *
 * Links are proven, not claimed. A link this peer dialled belongs to the
 * neighbour it dialled. A link that came in names its neighbour in its
 * first message (HELLO, or the `from` of a GET or FOUND from an older
 * peer); when that is a configured neighbour, we send a CHALLENGE with a
 * random nonce over our own link to that address, and only the real
 * neighbour, which receives it, can send the nonce back as PROVE over the
 * link being proven. Unanswered within challenge_ms, or claiming an
 * address another link already proved, the claim is refuted. This works
 * when every peer shares 127.0.0.1. Nothing is ever sent to an address
 * because a message named it: challenges go only to configured neighbours.
 *
 * With TLS (opts.tls), a link this peer dials is usable only once its
 * handshake is over (done without blocking the loop, within
 * connect_timeout_ms); one that fails is counted as drop reason `auth`
 * and treated as a failed dial. Links that come in were checked by the
 * gate before they were adopted. The SSL of a link belongs to its conn.
 *
 * Threads: fplane_adopt() and fplane_call() from any thread; everything
 * else, and every callback, on the loop's thread only. */
#ifndef FLOODSHARE_FPLANE_H
#define FLOODSHARE_FPLANE_H

#include <stddef.h>
#include <stdint.h>

#include "floodshare/addr.h"
#include "floodshare/msg.h"
#include "floodshare/route.h"
#include "floodshare/stats.h"
#include "floodshare/status.h"

struct fplane;
struct conn;
struct tls_ctx;

struct fplane_opts {
    struct fs_addr self;      /* our listening address: HELLO, CHALLENGE, PROVE name it */
    unsigned self_id;         /* our peer id, in HELLO */
    int connect_timeout_ms;   /* a dial that takes longer fails */
    size_t max_queue_bytes;   /* a link's output queue; past it messages are dropped */
    uint32_t down_ms;         /* a neighbour whose dial failed is not redialled for this long */
    uint32_t challenge_ms;    /* a claim must be proven within this */
    uint32_t idle_ms;         /* an unproven link that sends nothing this long is closed */
    struct stats *stats;      /* borrowed: flow_dropped, spoofed_dropped, malformed_dropped,
                                 auth_failed */
    struct tls_ctx *tls;      /* borrowed; NULL: plain links */
    /* A message (GET or FOUND) arrived over hop: decide and act. */
    void (*on_msg)(void *arg, const struct msg *m, const struct route_hop *hop);
    /* A message queued on a link was lost: the dial it waited for failed
     * (st FS_ECONNECT), so whoever queued it hears of it after all. */
    void (*on_lost)(void *arg, const struct msg *m, const struct fs_addr *to, fs_status st);
    /* Gives an adopted conn back to its owner (the gate), which closes it. */
    void (*release)(void *arg, struct conn *c);
    void *arg;
};

/* NULL on failure. The options are copied. */
struct fplane *fplane_new(const struct fplane_opts *o);

/* Starts the loop's thread (stack sized explicitly). */
fs_status fplane_start(struct fplane *fp);

/* Stops the loop, joins its thread, closes every link. Idempotent. */
void fplane_stop(struct fplane *fp);

/* Frees fp (after fplane_stop). NULL is fine. */
void fplane_free(struct fplane *fp);

/* Takes c, an accepted connection whose buffered header is a flood
 * message (fplane_is_flood_msg): the plane owns it from now on and gives
 * it back through opts.release when the link closes. Any thread. */
void fplane_adopt(struct fplane *fp, struct conn *c);

/* 1 when type belongs on the flood plane (GET, FOUND, HELLO, CHALLENGE,
 * PROVE). */
int fplane_is_flood_msg(enum msg_type type);

/* Runs fn(arg) on the loop's thread and waits for it: how other threads
 * (control commands) act on the flood. FS_ECANCELED once stopped. */
fs_status fplane_call(struct fplane *fp, void (*fn)(void *arg), void *arg);

/* --- loop thread only --- */

/* The configured neighbours (copied): links to new ones are dialled,
 * links to removed ones closed. */
void fplane_set_neighbours(struct fplane *fp, const struct fs_addr *n, size_t count);

/* Queues m on our link to neighbour `to` (dialling it if needed). *link
 * gets the link's id. FS_OK; FS_EBUSY when its queue is full (dropped:
 * flow_control); FS_EREFUSED when it is unreachable (in its down period
 * after a failed dial; a dial failing later is reported through on_lost);
 * FS_ENOTFOUND when `to` is no configured neighbour; FS_EINVAL when m
 * does not format. */
fs_status fplane_send(struct fplane *fp, const struct fs_addr *to, const struct msg *m,
                      uint32_t *link);

/* Queues m on the link with this id (a reply goes back the way its
 * question came). FS_ENOTFOUND when that link has closed; else as above. */
fs_status fplane_send_link(struct fplane *fp, uint32_t link, const struct msg *m);

/* 1 when a proven link to neighbour nb (its advertised address) is open,
 * with *sock the socket address of that link's other end; else 0. On the
 * plane's thread (fplane_call). */
int fplane_proven_host(struct fplane *fp, const struct fs_addr *nb, struct fs_addr *sock);

/* Open links and how many of them are proven (for `stats`). */
void fplane_counts(struct fplane *fp, unsigned *open, unsigned *proven);

#endif
