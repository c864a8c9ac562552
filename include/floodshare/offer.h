/* offer.h - the receiving side of a send: an OFFER on the peer port.
 *
 * A send is an offer; the receiver pulls (docs/DESIGN.md, "Send"). The
 * sender N connects to this peer M and sends OFFER (the item's name, kind,
 * size, md5, piece root, and N's advertised address as holder). M decides
 * by its [accept] section and answers at once: ACCEPT, or
 * ERROR code=refused naming the reason. Once accepted, M downloads the item
 * from the holder with xfer_fetch() (FETCH/LIST/REQUEST, verified,
 * resumable), reports PROGRESS on the offer's connection, and ends with
 * DONE or ERROR code=failed. Every defence of a get applies: the item is
 * checked against the offer's md5 (so the holder cannot send other bytes
 * than offered), nothing partial is under its final name, nothing existing
 * is replaced, a full disk is refused before a byte is written. */
#ifndef FLOODSHARE_OFFER_H
#define FLOODSHARE_OFFER_H

#include <stddef.h>
#include <stdint.h>

#include "floodshare/addr.h"
#include "floodshare/cfg.h"
#include "floodshare/msg.h"

struct conn;
struct flood;
struct node;
struct xfer_plane;

#define OFFER_MAX_ACTIVE 8 /* offers being pulled at once; more are refused */
/* A receiver reports progress at least this often, so that the sender can
 * tell a slow pull from a dead receiver. */
#define OFFER_KEEPALIVE_MS 1000
/* The sender gives up on a receiver silent this long (several keep-alives). */
#define OFFER_SILENCE_MS 15000

/* What an offer is judged by: the receiver's [accept] values and the state
 * of its share, gathered by offer_serve(). */
struct offer_view {
    enum cfg_accept send_from; /* [accept] send_from */
    uint64_t quota, max_item; /* 0: unlimited */
    uint64_t used;           /* bytes the share holds now, plus offers being pulled */
    int exists;              /* the name is taken in the share (or being received) */
    int neighbour;           /* a proven neighbour link to the offer's holder is open */
    struct fs_addr source;   /* the address the offer's connection came from */
};

/* Decides an offer m (an OFFER) against v. Returns NULL when it is
 * accepted, else the word of its trace event ("send_from", "exists",
 * "max_item", "quota", "holder") with why[0..cap) the refusal's text, e.g.
 * "not accepted from 127.0.0.1:10811 (send_from = none)" or
 * "over quota: 9.8 GiB of 10 GiB used, item is 500 MiB". Pure. */
const char *offer_judge(const struct offer_view *v, const struct msg *m, char *why, size_t cap);

/* "500 MiB", "9.8 GiB", "12 B": powers of 1024, as quota and max_item are
 * written. Pure; returns out. */
char *offer_iec(char *out, size_t cap, uint64_t n);

/* Serves one OFFER that arrived on c (node n, its flood and transfer
 * planes borrowed): judges it, and when accepted pulls the item, reporting
 * on c. Runs on a worker thread for as long as the pull lasts (bounded by
 * [limits] get_timeout_ms). The caller closes c afterwards. */
void offer_serve(struct node *n, struct flood *f, struct xfer_plane *x, struct conn *c,
                 const struct msg *m);

#endif
