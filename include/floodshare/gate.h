/* gate.h - the peer port's front door: accept, wait for a whole header,
 * then hand the connection to a worker.
 *
 * A connection waits at the gate until a complete message header has
 * arrived (or its buffer is full, or the other side closed); only then does
 * a worker see it. Waiting costs a descriptor and one conn buffer, not a
 * thread, so a thousand idle or byte-a-second connections cannot starve the
 * workers. Workers give kept-alive connections back (gate_park) when no
 * complete message is buffered, so an idle neighbour link holds no thread
 * either.
 *
 * Limits: at most max_conns open connections in all, and max_per_addr from
 * one remote address. A new connection over a limit makes room by closing
 * the connection that has waited longest at the gate (from the same address
 * for the per-address limit): an idle or trickling one, never one a worker
 * is serving. Only when none is waiting is the new one refused. A waiting
 * connection is closed header_ms after its first byte if its header is not
 * complete, and idle_ms after it arrived (or was parked) if it sent nothing.
 *
 * With TLS (lim.tls), a connection first completes its handshake here,
 * without blocking: one that fails it, or has not finished it within
 * handshake_ms (silent, or speaking plain FLOOD/1), is closed and counted
 * as drop reason `auth` before any message is read from it.
 *
 * Threads: gate_run() is the acceptor thread's body; gate_park() and
 * gate_done() are called by workers; everything else from one thread. */
#ifndef FLOODSHARE_GATE_H
#define FLOODSHARE_GATE_H

#include "floodshare/conn.h"
#include "floodshare/stats.h"
#include "floodshare/status.h"

struct gate;
struct tls_ctx;

struct gate_limits {
    unsigned max_conns;    /* open connections in all, waiting or served */
    unsigned max_per_addr; /* ...from one remote address */
    int header_ms;         /* a started header must complete within this */
    int idle_ms;           /* a connection that sends nothing is closed after this */
    struct tls_ctx *tls;   /* borrowed; NULL: plain connections */
    int handshake_ms;      /* with tls: the handshake must be over within this */
};

/* Called on the gate's thread with a connection whose header is ready: the
 * callee owns c until it calls gate_park() or gate_done() (from any thread). */
typedef void (*gate_ready_fn)(void *arg, struct conn *c);

/* Creates a gate for listen_fd (borrowed). stats (borrowed) receives the
 * limit_refused and timeouts counts. FS_ENOMEM or FS_EIO on failure. */
fs_status gate_open(struct gate **out, int listen_fd, const struct gate_limits *lim,
                    struct stats *stats, gate_ready_fn ready, void *arg);

/* Accepts and waits until gate_stop(). */
void gate_run(struct gate *g);

/* Makes gate_run() return soon; connections given back after this are closed. */
void gate_stop(struct gate *g);

/* A worker gives c back to wait for its next message. */
void gate_park(struct gate *g, struct conn *c);

/* A worker is done with c: its socket is closed and its place freed. */
void gate_done(struct gate *g, struct conn *c);

/* How many connections are open (waiting or being served). */
unsigned gate_count(struct gate *g);

/* Closes every connection still waiting and frees the gate. Call after
 * gate_run() has returned and no worker holds a connection. NULL is fine. */
void gate_free(struct gate *g);

#endif
