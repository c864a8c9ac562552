/* cut.h - links a teacher has taken down, and a peer that is paused.
 *
 * `peer N link down HOST:PORT` cuts the link between this peer and one
 * neighbour: nothing is sent to it (GET or FOUND) and every GET or FOUND
 * whose previous hop is that address is dropped on arrival. Cutting one end
 * is enough to cut the link both ways. `peer N pause` does the same for
 * every address at once (the peer is "down" for the flood, but its control
 * socket still answers, so `resume` brings it back and the dashboard can
 * still show it). Transfers are not affected: they are direct connections,
 * not links of the overlay. Nothing here is saved to the INI: a restart
 * brings every link back. */
#ifndef FLOODSHARE_CUT_H
#define FLOODSHARE_CUT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "floodshare/addr.h"
#include "floodshare/cfg.h"
#include "floodshare/status.h"

#define CUT_MAX CFG_MAX_NEIGHBOURS /* links down at once */

struct cut {
    pthread_mutex_t lock; /* guards down[] and n */
    struct fs_addr down[CUT_MAX];
    size_t n;
    atomic_int paused;
};

void cut_init(struct cut *c);
void cut_destroy(struct cut *c);

/* Takes the link to `a` down (down=1) or up (down=0). FS_OK (also when it
 * already was so), FS_ETOOBIG when CUT_MAX links are down already. */
fs_status cut_set_link(struct cut *c, const struct fs_addr *a, int down);

void cut_set_paused(struct cut *c, int paused);
int cut_paused(struct cut *c);

/* Why a message to or from `a` must not pass: "paused", "link_down", or
 * NULL when it may. Returns a string literal. */
const char *cut_blocks(struct cut *c, const struct fs_addr *a);

/* Copies at most cap addresses that are down into out; returns how many. */
size_t cut_list(struct cut *c, struct fs_addr *out, size_t cap);

#endif
