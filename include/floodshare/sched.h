/* sched.h - the swarming scheduler's rules alone (docs/SWARMING.md,
 * "Scheduling rules"): which piece goes to which free source, how many
 * pieces a request asks for, the endgame, which copy is dropped, what a cut
 * or bad source gives back, and when a slow source is retired.
 *
 * Pure: piece states, sources and the time in, decisions out, as `slots`
 * and `route` are. No I/O, no clock of its own (every call that needs the
 * time takes now_ms from the caller, any monotonic milliseconds), no lock:
 * the caller holds its swarm lock around every call, so each rule is a unit
 * test with a fake clock.
 *
 * Piece states. HAVE and CLAIMED are one bit each per piece; INFLIGHT is not
 * stored: a piece is in flight exactly when a live source's request still
 * covers it ([next, b) of that source), and MISSING is what is none of
 * these. Deriving INFLIGHT from the (at most SCHED_SOURCES_MAX) requests is
 * what makes "a cut source gives back its pieces" a single assignment, and
 * keeps memory at two bitmaps instead of a byte or two per piece.
 *
 * Memory, fixed at sched_new(): two bitmaps of ceil(npieces / 64) words,
 * plus a fixed table of SCHED_SOURCES_MAX rows (about 1 KiB). npieces is at
 * most SCHED_PIECES_MAX (a 64 TiB file at PIECES_SIZE_MAX), so at most
 * 2 x 2 MiB; 512 B for a 1 GiB file at 512 KiB pieces. */
#ifndef FLOODSHARE_SCHED_H
#define FLOODSHARE_SCHED_H

#include "floodshare/addr.h"
#include "floodshare/status.h"

#include <stdint.h>

#define SCHED_SOURCES_MAX 8          /* rows of the source table (max_sources 1..8) */
#define SCHED_PIECES_MAX (1u << 24)  /* 64 TiB at 4 MiB pieces */
#define SCHED_SPAN_MS 500            /* a request is this much of its source's rate */
#define SCHED_SPAN_MIN 1             /* pieces a request asks for, at least */
#define SCHED_SPAN_MAX 32            /* ... at most (16 MiB at 512 KiB pieces) */
#define SCHED_SPAN_NORATE 2          /* ... before the source has a rate */
#define SCHED_COPIES 2               /* copies of one piece in flight, at most */
#define SCHED_RATE_BUCKETS 8         /* a source's rate window: 8 x 500 ms = 4 s */
#define SCHED_RATE_BUCKET_MS 500
#define SCHED_SLOW_AFTER_MS 4000     /* service before a source may be called slow */
#define SCHED_SLOW_DIV 4             /* slow: under 1/4 of the others' median rate */

struct sched;

enum sched_state {
    SCHED_FREE = 0,   /* row unused */
    SCHED_CONNECTING, /* added, has not asked for work yet */
    SCHED_ACTIVE,     /* connected; has, or is asking for, a request */
    SCHED_BUSY,       /* waiting out a holder's BUSY: not free, holds nothing */
    SCHED_SRC_IDLE,   /* asked in the endgame and got nothing: connected, holds nothing */
    SCHED_DONE,       /* closed without fault (dropped copy, retired, finished) */
    SCHED_CUT,        /* closed by a fault of the connection */
    SCHED_BAD,        /* sent a piece failing its hash */
};

enum sched_kind {
    SCHED_NONE = 0,  /* nothing to hand out now: wait on the swarm's `wake` */
    SCHED_SPAN,      /* fetch pieces [a, b), all MISSING until now */
    SCHED_ENDGAME,   /* fetch the one piece [a, a + 1) as its second copy */
    SCHED_FINISHED,  /* every piece is HAVE */
};

struct sched_req {
    enum sched_kind kind;
    uint32_t a, b; /* pieces [a, b); 0, 0 unless SPAN or ENDGAME */
};

enum sched_piece {
    SCHED_PIECE_NEW = 1, /* first copy: write it, it is now HAVE */
    SCHED_PIECE_DUP,     /* already HAVE: drop its bytes (duplicate_bytes) */
};

/* A scheduler for a file of size bytes cut into pieces of piece bytes, for
 * at most k sources (1..SCHED_SOURCES_MAX) at once. Every piece starts
 * MISSING. NULL on out of memory, on k or piece 0, k over the table, or more
 * than SCHED_PIECES_MAX pieces. The caller owns the result and frees it with
 * sched_free(), after every source has stopped using it. */
struct sched *sched_new(uint64_t size, uint32_t piece, unsigned k);
void sched_free(struct sched *s);

/* At open, before any source runs (resume): piece i is HAVE (verified in
 * this state) or CLAIMED (named by a state, not yet re-checked: never handed
 * to a source). Out of range: FS_EINVAL. */
fs_status sched_set_have(struct sched *s, uint32_t i);
fs_status sched_set_claimed(struct sched *s, uint32_t i);
/* The hasher re-checked CLAIMED piece i: ok makes it HAVE, else MISSING
 * again (fetched like any other). FS_EINVAL if i is not CLAIMED. */
fs_status sched_claim_checked(struct sched *s, uint32_t i, int ok);

/* Takes a row for a hit of holder (an "host:port", copied; the caller keeps
 * its string) that came over neighbour link, as CONNECTING; *src is its row.
 * Refused with FS_EEXIST when holder is already a live source (one source
 * per holder), FS_ETOOBIG when k sources are live, FS_EREFUSED when
 * ceil(k / 2) live sources already came over link and other_link_waiting
 * says hits from another link wait (one liar's storm of forged holders
 * cannot take every source). Only live rows count: a DONE holder may come
 * back when a piece is MISSING again; keeping a BAD one out for the rest of
 * the get is the caller's (cmd marks its hit failed). A row that ended
 * (DONE, CUT, BAD) may be reused: copy out what you report about it before
 * adding another. */
fs_status sched_add(struct sched *s, const char *holder, unsigned link,
                    int other_link_waiting, int *src);

/* Source src is free (its previous request is done, or it has none) and asks
 * for work at now_ms. Writes *out; the source becomes ACTIVE (IDLE if
 * nothing was given). The lowest MISSING piece first; a run of consecutive
 * MISSING pieces of this source's own rate x SCHED_SPAN_MS, within
 * SCHED_SPAN_MIN..SCHED_SPAN_MAX (SCHED_SPAN_NORATE before it has a rate),
 * never more than ceil(missing / connected sources). With nothing MISSING,
 * the endgame: the single-copy piece in flight expected last. FS_EINVAL for
 * a row that is not live; whatever src still held goes back first. */
fs_status sched_next(struct sched *s, int src, uint64_t now_ms, struct sched_req *out);
/* sched_next() for a source whose stream (a FETCH still sending) goes on at
 * piece from: when from is MISSING the span starts there, not at the lowest
 * MISSING piece, which waits for the stream's end (FLOOD/1 cannot cancel a
 * stream, so a jump costs a reconnect and the frames in flight: a resume
 * whose claimed prefix fails its re-check behind a running stream did one
 * per piece). from >= npieces: exactly sched_next(). */
fs_status sched_next_from(struct sched *s, int src, uint64_t now_ms, uint32_t from,
                          struct sched_req *out);

/* src received n bytes of its request at now_ms: feeds its rate window (the
 * last 4 s) and its position inside the piece it is reading. */
void sched_bytes(struct sched *s, int src, uint64_t n, uint64_t now_ms);

/* src's piece i (the next of its request, in order) is whole and matched its
 * hash. Returns SCHED_PIECE_NEW (write it; it is HAVE now) or
 * SCHED_PIECE_DUP (another copy got there first: drop it), or FS_EINVAL
 * when i is not src's next piece or src was closed meanwhile (its socket is
 * being shut: drop the bytes). Each other live source whose request
 * covers i and holds nothing still needed (every remaining piece HAVE or in
 * flight elsewhere) is closed: state DONE, request cleared, its row written
 * to closed[] (room for SCHED_SOURCES_MAX), their count to *nclosed; the
 * caller shuts their sockets. FLOOD/1 has no CANCEL, so this is how the
 * slower copy is dropped. */
int sched_piece_done(struct sched *s, int src, uint32_t i, int *closed, int *nclosed);

/* src ended: why is SCHED_DONE, SCHED_CUT or SCHED_BAD. Its request is
 * cleared, so every piece it held that no other source covers is MISSING
 * again at once (else the get waits for get_timeout_ms). FS_EINVAL for
 * another why or a row that is not live. */
fs_status sched_end(struct sched *s, int src, enum sched_state why);

/* src got BUSY and waits its retry time: not free, and its request goes
 * back at once. It asks sched_next() again when the wait is over. */
fs_status sched_busy(struct sched *s, int src);

/* The slow-holder rule, asked by the coordinator at now_ms. With a spare hit
 * waiting (spare_waiting) and k sources live, a source with at least
 * SCHED_SLOW_AFTER_MS of service whose rate is under 1/SCHED_SLOW_DIV of
 * the median of the other ACTIVE sources is retired (sched_end(DONE)) and
 * its row returned, for the caller to close and start the spare; else -1.
 * Without a spare a slow source stays: its spans shrink with its rate and
 * the endgame covers its tail. */
int sched_retire_slow(struct sched *s, uint64_t now_ms, int spare_waiting);

/* Read-outs (under the same lock as every call). */
enum sched_state sched_source_state(const struct sched *s, int src);
/* src's rate in bytes/s over its window at now_ms; -1 before it has one
 * (less than SCHED_RATE_BUCKET_MS since its first byte). */
int64_t sched_source_rate(const struct sched *s, int src, uint64_t now_ms);
uint32_t sched_source_pieces(const struct sched *s, int src); /* NEW pieces delivered */
uint32_t sched_npieces(const struct sched *s);
uint32_t sched_have_count(const struct sched *s);
uint32_t sched_missing_count(const struct sched *s); /* none of HAVE, CLAIMED, in flight */
/* 1 when piece i is HAVE / in flight (copies: how many live requests cover it). */
int sched_is_have(const struct sched *s, uint32_t i);
unsigned sched_copies(const struct sched *s, uint32_t i);

#endif
