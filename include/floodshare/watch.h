/* watch.h - the CLI side of tracing: `peer N watch`, `peer N events`,
 * `watch` (every peer of a run folder, merged in time order) and
 * `trace QUERY-ID` (one query's flood, reconstructed; DOT, SVG, PNG).
 *
 * The CLI asks peers for events in the control socket's line form
 * (`watch --raw`, `events --raw`), so it can merge streams, name hops by
 * peer id (from the run folder's INI files) and print text or JSON. */
#ifndef FLOODSHARE_WATCH_H
#define FLOODSHARE_WATCH_H

#define WATCH_MERGE_MS 150 /* events are held this long to order those of different peers */
#define WATCH_RETRY_MS 1000 /* a peer that is down is tried again, and the run folder read
                               again (peers added, INIs changed), this often */
#define WATCH_SETTLE_MS 500 /* after reaching a peer, its ring is read once more then, unless
                               its stream spoke (an event missed while it subscribed us) */

/* `peer ID watch [--json]` and `peer ID events [--json] [QID]`: argv[0] is
 * "watch" or "events". Returns the exit code. */
int watch_peer_cmd(const char *run_dir, unsigned id, int argc, char **argv);

/* `watch [--json]`: argv[0] is "watch". Runs until SIGINT/SIGTERM;
 * returns the exit code. */
int watch_all_cmd(const char *run_dir, int argc, char **argv);

/* `trace QUERY-ID [--json] [--dot] [--svg FILE] [--png FILE]`: argv[0] is
 * "trace". Returns the exit code. */
int watch_trace_cmd(const char *run_dir, int argc, char **argv);

#endif
