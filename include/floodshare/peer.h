/* peer.h - the peer daemon: its threads, its sockets and its lifecycle.
 *
 * A running peer is a node (node.h: configuration, share, query cache,
 * trace, stats, cut) and the planes that borrow it: the flood plane's loop
 * (flood.h, fplane.h), the gate that accepts connections on the peer port
 * and holds each one until a whole header has come (gate.h), a pool of
 * workers for transfers, made on demand and gone when idle (tpool.h,
 * xfer.h), the control socket's acceptor with one thread per client
 * (ctl.h, cmd.h), the share's scanner (share.h), and the main thread,
 * which only waits for SIGINT/SIGTERM (every other thread blocks them).
 * docs/DESIGN.md lists them, their locks and who owns what. */
#ifndef FLOODSHARE_PEER_H
#define FLOODSHARE_PEER_H

/* Runs the peer of ini_path in the foreground until SIGINT/SIGTERM.
 * run_dir may be NULL ($FLOODSHARE_RUN, else the INI's folder). Returns
 * the process exit code: 0, 1 (runtime failure), 78 (bad config). */
int peer_main(const char *ini_path, const char *run_dir);

#endif
