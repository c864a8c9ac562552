/* cmd_browse.h - the peer-side commands that look into another peer's
 * share: `browse M [PATH] [--json]` and `get PATH from M [--json]`
 * (browse.h is the wire). cmd_run() dispatches to them. M is a peer id of
 * the peer's run folder (the address its INI advertises) or HOST:PORT
 * ([v6]:PORT), so the CLI, the REPL and the dashboard name peers alike. */
#ifndef FLOODSHARE_CMD_BROWSE_H
#define FLOODSHARE_CMD_BROWSE_H

#include "floodshare/cmd.h"

struct ctl_out;
struct fs_addr;
struct listing_entry;
struct msg;

/* Lists PATH (the top level without it) of M's share, every page of it,
 * to o: text, or one JSON document with --json. Returns the exit code:
 * 0; 1 when M cannot be reached, refuses, or has no such folder; 64 for
 * bad arguments. */
int cmd_browse(const struct cmd_env *e, int argc, char **argv, struct ctl_out *o);

/* M of `browse M`, `get PATH from M` and `send NAME to M`: a peer id of the
 * peer's run folder (the address its INI advertises; *id set to it) or
 * HOST:PORT ([v6]:PORT; *id 0). id may be NULL. 0, or -1 after printing
 * why, naming cmd. */
int cmd_peer_addr(const struct cmd_env *e, struct ctl_out *o, const char *cmd, const char *s,
                  struct fs_addr *out, unsigned *id);

/* The hit a FOUND from holder (peer id `peer`) would carry for the entry
 * e of its listing at path: what `get PATH from M` and a sync (sync.c)
 * hand to xfer_fetch(), with a fresh random query id naming the download
 * in the trace. Fills *hit whole. */
void cmd_browse_hit(struct msg *hit, const struct fs_addr *holder, unsigned peer,
                    const char *path, const struct listing_entry *e);

/* 1 when argv is `get PATH from M ...` (a get from one peer, no flood). */
int cmd_is_get_from(int argc, char **argv);

/* `get PATH from M [--json]`: finds PATH in M's listing (BROWSE of its
 * folder), makes the hit a FOUND would have given (holder M, path, kind,
 * size, md5, root) and downloads it with xfer_fetch(), verified and
 * resumable like any get, under PATH's last name in this peer's share;
 * never over an existing name. Sends no GET. Exit codes as get's. */
int cmd_get_from(const struct cmd_env *e, int argc, char **argv, struct ctl_out *o);

#endif
