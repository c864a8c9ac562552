/* syncstate.h - what the last sync of an item left behind, and what the
 * next sync does with each file (docs/SYNC.md, "Conflicts and the sync
 * state").
 *
 * One state file per synced item NAME, `.floodshare/sync/` +
 * syncstate_file_name(NAME), a text file:
 *   "floodshare-sync 1\n"
 *   "from HOST:PORT\n"                       the peer M synced from (addr.h)
 *   "MD5 SIZE SEC.NSEC PATH\n"               one per file, as it was right
 *                                            after the last sync
 * MD5 32 lower-case hex digits, SIZE decimal, the mtime in seconds (may be
 * negative) and exactly 9 digits of nanoseconds, PATH relative to NAME's
 * parent folder (so it starts with NAME), percent-encoded as partial
 * states encode names (msg_pct_encode(): every byte outside 0x21..0x7e,
 * and '%', as %XX), a path_valid() path once decoded (no "..", not
 * absolute, no empty part). Paths are in strictly increasing byte order
 * (strcmp), so a record is found by bsearch and no path appears twice;
 * every line ends in '\n' (a torn file is refused, not half-believed).
 * Anything else is refused whole: a state that does not parse costs a
 * sync without records, whose decisions are the careful ones (a file
 * differing from M's is set aside, never overwritten: syncstate_decide()).
 *
 * syncstate_parse() and syncstate_format() are pure; syncstate_save_at()
 * and syncstate_load_at() do the file, reached through a folder
 * descriptor, never through a link. */
#ifndef FLOODSHARE_SYNCSTATE_H
#define FLOODSHARE_SYNCSTATE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "floodshare/addr.h"
#include "floodshare/msg.h"
#include "floodshare/name.h"
#include "floodshare/status.h"

#define SYNCSTATE_MAGIC "floodshare-sync 1"
#define SYNCSTATE_DIR "sync"             /* the folder inside the share's .floodshare/ */
#define SYNCSTATE_MAX_FILES 1000000      /* records one state holds, at most */
#define SYNCSTATE_MAX_BYTES (256u << 20) /* largest state file read (256 MiB) */
/* Longest item name whose state file is named by its hex (2 digits a byte
 * plus ".state" within NAME_MAX_LEN); longer names get "md5-<md5 of NAME>". */
#define SYNCSTATE_HEX_NAME_MAX 120
/* Longest peer in a conflict name (an address: "[v6]:port" fits). */
#define SYNCSTATE_PEER_MAX (ADDR_STR_MAX - 1)

/* One version of a file: what the record, N's index or M's listing says. */
struct syncstate_ver {
    char md5[MSG_MD5_LEN + 1];
    uint64_t size;
    struct timespec mtime;
};

struct syncstate_file {
    struct syncstate_ver v;
    char *path; /* NUL-terminated, decoded; points into its syncstate's paths */
};

/* A parsed state. files (n of them, sorted by path) and paths are
 * malloc'd and freed by syncstate_free(). */
struct syncstate {
    struct fs_addr from;
    struct syncstate_file *files;
    size_t n;
    char *paths; /* every path, NUL-separated: one allocation */
};

/* Parses a state file held in text[0..len) (no NUL needed) into *out.
 * FS_OK; FS_EPROTO with *why (a constant naming what was wrong and, for
 * a line, which rule it broke) for anything the format above does not
 * allow; FS_ETOOBIG past SYNCSTATE_MAX_BYTES or SYNCSTATE_MAX_FILES;
 * FS_ENOMEM. On failure *out holds nothing to free. Pure. */
fs_status syncstate_parse(const char *text, size_t len, struct syncstate *out, const char **why);

/* Writes st as a state file's text: *text is malloc'd (the caller frees),
 * *len its length. st's files must be valid records in increasing path
 * order (FS_EINVAL otherwise: nothing this writes is refused by
 * syncstate_parse(), which gives back an equal state). FS_ENOMEM. */
fs_status syncstate_format(const struct syncstate *st, char **text, size_t *len);

/* Sorts st's files by path (before syncstate_format(), for a caller that
 * built them in another order). */
void syncstate_sort(struct syncstate *st);

/* The record of path in st, or NULL. */
const struct syncstate_file *syncstate_find(const struct syncstate *st, const char *path);

/* Frees what syncstate_parse() allocated and clears st. NULL is fine. */
void syncstate_free(struct syncstate *st);

/* The name of item NAME's state file in the sync folder, into out: the
 * hex of NAME's bytes and ".state" for a name of up to
 * SYNCSTATE_HEX_NAME_MAX bytes, else "md5-" + MD5 of NAME + ".state".
 * FS_EBADNAME when name is not name_valid(). Pure. */
fs_status syncstate_file_name(const char *name, char out[NAME_MAX_LEN + 1]);

/* Replaces the file `name` in the folder dirfd by st's text, atomically
 * and durably: written to "<name>.tmp" (O_NOFOLLOW), fsync'ed, renamed
 * over name, the folder fsync'ed. A crash leaves the old state or the
 * new one, whole. FS_OK; FS_EIO (errno says why; the old state stays and
 * no temporary is left); the errors of syncstate_format(). */
fs_status syncstate_save_at(int dirfd, const char *name, const struct syncstate *st);

/* Reads and parses the file `name` in dirfd (never through a link, at
 * most SYNCSTATE_MAX_BYTES). FS_ENOTFOUND when there is none (never
 * synced); otherwise as syncstate_parse(), *why set on FS_EPROTO. */
fs_status syncstate_load_at(int dirfd, const char *name, struct syncstate *out,
                            const char **why);

/* What a sync does with one path (the table in docs/SYNC.md). */
enum syncstate_action {
    SYNCSTATE_SAME,     /* N's copy is M's (or neither has it): nothing moves */
    SYNCSTATE_FETCH,    /* new or changed on M, N's copy untouched since the record: take M's */
    SYNCSTATE_CONFLICT, /* M lacks it, --delete, and N's copy is not the one synced: set it
                      aside under its conflict name instead of removing it */
    SYNCSTATE_DELETE,   /* M lacks it, --delete, N's copy is the one synced: remove it */
    SYNCSTATE_EXTRA,    /* M lacks it, no --delete: left alone and listed */
    SYNCSTATE_KEEP_CONFLICT_THEN_FETCH, /* M has another version and N's copy changed since
                                      the record (or was never synced): set N's aside,
                                      then take M's */
};

/* The action for a path from its record (NULL: never synced), N's current
 * version (NULL: N lacks it) and M's (NULL: M lacks it), with --delete or
 * not. Versions are compared by md5 and size only: a touched file with the
 * same bytes is the same file. Pure. */
enum syncstate_action syncstate_decide(const struct syncstate_ver *rec,
                                       const struct syncstate_ver *n,
                                       const struct syncstate_ver *m, int delete_extra);

/* The action's name as --json and the sync's lines show it: "same",
 * "fetch", "conflict", "delete", "extra", "keep_conflict_then_fetch". */
const char *syncstate_action_name(enum syncstate_action a);

/* The name N's changed file NAME (one path component) is kept under:
 * Syncthing's form, "STEM.sync-conflict-YYYYMMDD-HHMMSS-PEER.EXT", the
 * extension (from the last '.' not leading the name) kept last so the file
 * still opens with the same program; a name without one gets the suffix at
 * its end. when in UTC. When that is longer than NAME_MAX_LEN, the stem is
 * cut (at a UTF-8 character boundary, at least one character kept); an
 * extension too long to keep beside that is treated as part of the stem.
 * peer (M's id or address) is 1..SYNCSTATE_PEER_MAX bytes of letters,
 * digits and ".:-_[]". FS_OK; FS_EBADNAME for a name that is not
 * name_valid(); FS_EINVAL for a bad peer or a time outside years
 * 0..9999. Pure. */
fs_status syncstate_conflict_name(const char *name, time_t when, const char *peer,
                                  char out[NAME_MAX_LEN + 1]);

#endif
