/* slots.h - upload slots: how many uploads run at once, in all and per
 * requesting address ([limits] upload_slots, upload_slots_per_addr).
 *
 * Pure accounting behind one mutex: no I/O, no clock of its own (callers
 * pass the time), so every rule is a unit test. Memory is fixed at
 * creation: since at most `total` slots are taken, at most `total`
 * addresses hold one, and the per-address table has that many rows; the
 * penalty box has SLOTS_PENALTY_MAX rows. Any thread may call any function. */
#ifndef FLOODSHARE_SLOTS_H
#define FLOODSHARE_SLOTS_H

#include "floodshare/addr.h"

#include <stdint.h>

#define SLOTS_PENALTY_MAX 64 /* addresses kept in the penalty box at once */

struct slots;

enum slots_verdict {
    SLOTS_OK = 0,    /* taken: give it back with slots_give() */
    SLOTS_FULL,      /* every one of the `total` slots is taken */
    SLOTS_ADDR_FULL, /* this address already holds per_addr slots */
    SLOTS_PENALIZED, /* this address is in the penalty box (slots_penalize) */
};

/* A table of total slots (>= 1), at most per_addr (>= 1; more than total
 * acts as total) to one address. NULL when out of memory or on 0. */
struct slots *slots_new(unsigned total, unsigned per_addr);
void slots_free(struct slots *s);

/* Takes a slot for host (an address without port: a requester's many
 * connections count together) at time now_ms (any monotonic clock, the
 * same as slots_penalize()'s). */
enum slots_verdict slots_take(struct slots *s, const char *host, uint64_t now_ms);

/* Refuses host any slot until until_ms: an upload to it was just cut for
 * being too slow, and it must not take the freed slot straight back ahead
 * of everyone waiting. A full box forgets the row that expires first. */
void slots_penalize(struct slots *s, const char *host, uint64_t until_ms);

/* Gives back a slot slots_take() gave host. Giving one never taken is a
 * bug, and is ignored. */
void slots_give(struct slots *s, const char *host);

/* Slots taken now, in all and by host. */
unsigned slots_used(struct slots *s, const char *host);
unsigned slots_used_total(struct slots *s);

#endif
