/* webtopo.h - the dashboard's reshaping buttons: which `scripts/topology`
 * commands the page may run, and running one.
 *
 * The page may add and remove peers and links of its own run folder, the
 * teacher's action (docs/SECURITY.md, "The dashboard"): `add-peer [--files
 * ITEM ...]`, `remove-peer N`, `link A B`, `unlink A B`. Peers are named by
 * id only, so a token holder can rewire the folder's peers among themselves
 * but never attach one to another address, and the run folder and binary
 * are the dashboard's own, never taken from the request. */
#ifndef FLOODSHARE_WEBTOPO_H
#define FLOODSHARE_WEBTOPO_H

#include <stddef.h>

#define WEBTOPO_MAX_FILES 16         /* ITEMs of one add-peer from the page */
#define WEBTOPO_TIMEOUT_MS 60000     /* a reshape that takes longer is killed */
#define WEBTOPO_OUT_MAX (64 * 1024)  /* bytes of its stdout and of its stderr kept */

/* Whether the page may run argv[0..argc) ("link", "2", "5"): NULL if so,
 * else why not, written into why[cap]. Pure. Peer ids are plain decimal
 * 1..65535; add-peer's ITEMs are share paths (path_valid(), an optional
 * trailing '/' for a folder) of generated text files: no ':' (so no
 * `:size=` that could fill the disk) and nothing that starts with '-' (so
 * no option of the script can be smuggled in). */
const char *webtopo_check(int argc, char *const *argv, char *why, size_t cap);

/* Runs `script VERB ARGS... --run run_dir --bin bin` (argv[0..argc), which
 * webtopo_check() accepted), with no shell, stdin from /dev/null and no
 * descriptor of ours but stdout and stderr, which are collected into
 * malloc'd NUL-terminated strings (*out, *err: the caller frees both; each
 * cut at WEBTOPO_OUT_MAX). A run past WEBTOPO_TIMEOUT_MS is killed (its
 * process group; the peers it started have sessions of their own). Returns
 * its exit status, 124 when it was killed for time, or -1 when it could
 * not be started (*err says why). */
int webtopo_run(const char *script, const char *bin, const char *run_dir, int argc,
                char *const *argv, char **out, char **err);

#endif
