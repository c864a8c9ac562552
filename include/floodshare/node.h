/* node.h - one peer's service context: what every plane of the daemon shares.
 *
 * The node owns the live configuration, the share, the query cache, the
 * trace, the stats, the cut (the teacher's link scissors) and the two rate
 * buckets of [limits] upload_rate and download_rate, and knows
 * whether the peer is stopping. The planes borrow it: the flood plane
 * (flood.h) and the transfer plane (xfer.h) are given the node when they
 * are made, the control commands (cmd.h) reach it through their cmd_env.
 * None of them sees inside it, and the node knows none of them: a plane
 * that must follow a `modify` registers a listener (node_on_reconfigure).
 *
 * Threads: every call here may be made from any thread, unless it says
 * otherwise. The node outlives every thread that uses it. */
#ifndef FLOODSHARE_NODE_H
#define FLOODSHARE_NODE_H

#include <stddef.h>

#include "floodshare/addr.h"
#include "floodshare/status.h"

struct cfg;
struct cut;
struct qcache;
struct rate;
struct share;
struct stats;
struct trace;
struct tls_ctx;
struct node;

#define NODE_MAX_TRACKED 512 /* sockets shut down at exit to wake their threads */
#define NODE_MAX_LISTENERS 4 /* planes that follow a `modify` */

/* Makes the node of the configuration c (copied: it becomes the first
 * live snapshot): prepares the share's state folder, indexes the share,
 * and makes the query cache and the trace ring. run_dir is the run folder
 * ("" when there is none). On failure returns NULL with err (cap bytes)
 * naming what failed. The caller owns the node: node_free(). */
struct node *node_new(const struct cfg *c, const char *run_dir, char *err, size_t cap);

/* Frees n and all it owns. No thread may use n any more. NULL is a no-op. */
void node_free(struct node *n);

/* --- the configuration --- */

/* The live configuration: an immutable snapshot, valid until
 * node_cfg_put(). Never copied (53 KiB, 26 of them [sync]'s 64 pairs); a `modify` meanwhile
 * publishes a new snapshot and leaves this one alone. Never NULL. */
const struct cfg *node_cfg_get(struct node *n);
void node_cfg_put(const struct cfg *c);

/* Called after a new configuration is published, on the thread that
 * called node_reconfigure(), with the node's listeners' lock held: it must
 * not reconfigure again. */
typedef void (*node_listener)(void *arg, const struct cfg *c);

/* Adds a listener (at most NODE_MAX_LISTENERS; FS_EBUSY beyond). Start-up
 * only, before any node_reconfigure(). */
fs_status node_on_reconfigure(struct node *n, node_listener fn, void *arg);

/* Applies a changed configuration nc (from `modify KEY`: ttl, neighbours,
 * share_dir, log_level, upload_rate or download_rate): opens the new share first when it moved, then
 * publishes the live snapshot (the start-up one with those keys from nc),
 * sets the rate buckets, and tells the listeners. The one way the node's live state changes.
 * FS_OK, or an error with err (cap bytes) saying what failed; nothing
 * changed then. */
fs_status node_reconfigure(struct node *n, const struct cfg *nc, const char *key, char *err,
                           size_t cap);

/* Called on the share's thread after each rescan that changed the index of
 * the current share (share_set_change_hook()), and once on the `modify`
 * thread when `modify share_dir` swapped the share. It must only wake its
 * own thread (write an eventfd): it holds up the scanner, under the node's
 * change lock (a leaf). */
typedef void (*node_share_listener)(void *arg);

/* Adds a listener (at most NODE_MAX_LISTENERS; FS_EBUSY beyond). Any
 * time; never removed (the node outlives its planes' threads). */
fs_status node_on_share_change(struct node *n, node_share_listener fn, void *arg);

/* --- what the node owns; the pointers are valid while n lives --- */

/* The address this peer advertises in GET/FOUND, HELLO, CHALLENGE and PROVE:
 * [peer] advertise, else host and port. Fixed for the node's life. */
const struct fs_addr *node_self(const struct node *n);
unsigned node_id(const struct node *n);
/* [limits] io_timeout_ms as started (a [limits] key: fixed until a restart). */
int node_io_timeout_ms(const struct node *n);
/* The run folder, "" when none; the control socket's path, "" until set. */
const char *node_run_dir(const struct node *n);
const char *node_sock_path(const struct node *n);
void node_set_sock_path(struct node *n, const char *path); /* start-up only */

struct qcache *node_qcache(struct node *n);
struct trace *node_trace(struct node *n);
struct stats *node_stats(struct node *n);
/* The TLS context of [security] (tls.h), NULL for a plain peer. Fixed from
 * node_new() on; the node owns it. */
struct tls_ctx *node_tls(struct node *n);
/* Makes the TLS context c asks for: *out NULL for a plain peer. Used by
 * node_new(); err names what was wrong. */
fs_status node_tls_open(const struct cfg *c, struct tls_ctx **out, char *err, size_t cap);
struct cut *node_cut(struct node *n);
/* The buckets every upload, and every download, of this peer takes its
 * bytes from (rate.h); node_stop() closes them. */
struct rate *node_upload_rate(struct node *n);
struct rate *node_download_rate(struct node *n);

/* The current share, read-locked: it stays valid (and is not swapped by
 * `modify share_dir`) until node_share_put(). Never NULL. Do not nest,
 * and do not call node_reconfigure() in between. */
struct share *node_share_get(struct node *n);
void node_share_put(struct node *n);

/* --- stopping --- */

/* 1 once node_stop() was called: long work should end soon. */
int node_stopping(const struct node *n);

/* Marks the node stopping and shuts down every tracked socket, so the
 * threads blocked in I/O on them return at once. */
void node_stop(struct node *n);

/* Registers fd so that node_stop() wakes the thread blocked on it; untrack
 * before closing it. Best effort: a full table is ignored. */
void node_track(struct node *n, int fd);
void node_untrack(struct node *n, int fd);

#endif
