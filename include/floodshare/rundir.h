/* rundir.h - the run folder: where the CLI, the dashboard and the peers
 * find each other.
 *
 * A run folder holds each running peer's control socket, DIR/peer-N.sock
 * (the peer creates it, `serve`), and the INI files of its peers:
 * DIR/peer-N.ini as scripts/topology writes them, or DIR/peerN.ini as
 * configs/ ships them. These three names are the contract between the
 * peers and their clients; besides them, `floodshare web` keeps its token in
 * DIR/web-PORT.token (mode 0600, web.c) while it runs, and scripts/topology
 * keeps peer-N.log and peer-N.pid there for itself.
 *
 * Nothing here allocates or keeps state. Paths are written into the
 * caller's buffers; a path that does not fit is FS_ETOOBIG with the text
 * "run directory path too long: DIR" in the caller's err buffer. */
#ifndef FLOODSHARE_RUNDIR_H
#define FLOODSHARE_RUNDIR_H

#include <limits.h>
#include <stddef.h>

#include "floodshare/status.h"

#define RUNDIR_ENV "FLOODSHARE_RUN" /* the run folder when --run is not given */
#define RUNDIR_DEFAULT "run"        /* ... and when that is not set either */
#define RUNDIR_PATH_MAX PATH_MAX    /* bytes of any path built here, with its NUL */
#define RUNDIR_ERR_MAX (RUNDIR_PATH_MAX + 64) /* an err buffer that holds any message */
#define RUNDIR_ID_MAX 65535u        /* peer ids are 1..RUNDIR_ID_MAX */

/* The run folder of a client command (peer, peers, watch, trace, web, the
 * REPL): opt (--run) when it is not NULL, even "", else $FLOODSHARE_RUN
 * when set and not empty, else "run". Returns opt, the environment's string
 * or a literal: never NULL, never to be freed, valid while the environment
 * is not changed. */
const char *rundir_pick(const char *opt);

/* The run folder of `serve INI`: opt (--run) when not NULL and not empty,
 * else $FLOODSHARE_RUN when set and not empty, else the INI's folder ("."
 * for a bare file name, "/" for a file at the root). Written into out[cap].
 * FS_OK, or FS_ETOOBIG (out is "" and err says so) when it does not fit. */
fs_status rundir_for_serve(const char *ini, const char *opt, char *out, size_t cap, char *err,
                           size_t errcap);

/* Writes the control socket path of peer id in dir, "DIR/peer-ID.sock",
 * into out[cap]. dir is used as given (even ""). FS_OK, or FS_ETOOBIG (out
 * is "" and err says so). Whether a Unix socket can have that long a path
 * is net_listen_unix's / net_connect_unix's business. */
fs_status rundir_sock_path(const char *dir, unsigned id, char *out, size_t cap, char *err,
                           size_t errcap);

/* Writes the INI path of peer id in dir into out[cap]: DIR/peer-ID.ini
 * when that exists, else DIR/peerID.ini (which may not exist either: the
 * caller's load says so). FS_OK, or FS_ETOOBIG (out is "" and err says so). */
fs_status rundir_ini_path(const char *dir, unsigned id, char *out, size_t cap, char *err,
                          size_t errcap);

/* 1 with *id set when name is one of the run folder's names, "peer-N.sock",
 * "peer-N.ini" or "peerN.ini" with N a peer id written in plain decimal
 * (no sign, no leading zero, 1..RUNDIR_ID_MAX); 0 for any other name
 * ("peer-3.sock.bak", "peer-03.ini", "peer-3.log", "peer-0.sock"). Pure. */
int rundir_parse_name(const char *name, unsigned *id);

/* Fills ids[0..cap) with the peer ids named in dir (rundir_parse_name),
 * each once, in increasing order: the smallest cap of them when there are
 * more. Returns how many, or -1 with errno set when dir cannot be read.
 * Whether a named peer is running is not looked at: its socket may be
 * stale, or it may have only an INI. */
long rundir_ids(const char *dir, unsigned *ids, size_t cap);

#endif
