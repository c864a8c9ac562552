/* cfg.h - a peer's INI file: load, validate, and edit in place.
 *
 * Keys (docs and README list them with their defaults):
 *   [peer]       id host port advertise share_dir ttl log_level
 *   [neighbours] peers = host:port, host:port, ...
 *   [limits]     workers max_queue io_timeout_ms connect_timeout_ms
 *                hit_window_ms query_cache_size query_cache_ttl_ms max_ttl
 *                max_conns max_conns_per_addr query_rate query_burst
 *                upload_slots upload_slots_per_addr min_upload_rate get_timeout_ms
 *                max_sources upload_rate download_rate
 *   [security]   passphrase key trusted keylog (all off by default; tls.h)
 *   [accept]     browse (any|neighbours|none: who may list the share; browse.h)
 *                send_from quota max_item (what a send's offer may bring; offer.h)
 *   [sync]       NAME = PEER ... (pairs kept in step automatically; syncpair.h)
 *                interval (seconds between backstop syncs)
 * Relative paths are relative to the INI file's folder. */
#ifndef FLOODSHARE_CFG_H
#define FLOODSHARE_CFG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "floodshare/addr.h"
#include "floodshare/fp.h"
#include "floodshare/name.h"
#include "floodshare/status.h"

#define CFG_MAX_NEIGHBOURS 64
#define CFG_ERR_MAX 512 /* size of the error buffers below */
#define CFG_PASSPHRASE_MAX 1024
#define CFG_SIZE_MAX (1ull << 50) /* [accept] quota and max_item: 1024T at most */
#define CFG_MAX_SYNC 64              /* [sync] pairs: each costs M a watcher */
#define CFG_SYNC_INTERVAL_DEF 300    /* [sync] interval, seconds */
#define CFG_SYNC_INTERVAL_MAX 604800 /* a week: a longer backstop is no backstop */

/* One [sync] line, NAME = PEER: this peer's top-level item NAME is kept
 * identical to PEER's item of that name (docs/SYNC.md, syncpair.h). */
struct cfg_sync_pair {
    char name[NAME_MAX_LEN + 1]; /* name_valid(), as written (case kept) */
    char peer[ADDR_STR_MAX];     /* as written: a peer id or HOST:PORT */
    unsigned peer_id;            /* 1..65535: an id of the run folder, resolved
                                    when the pair runs; 0: addr is PEER */
    struct fs_addr addr;         /* when peer_id is 0 */
};

/* [accept]: whom a peer lets do something to it: browse its share, or send
 * it an item (send_from; offer.h says what each value proves). */
enum cfg_accept { CFG_ACCEPT_ANY, CFG_ACCEPT_NEIGHBOURS, CFG_ACCEPT_NONE };

struct cfg {
    char path[PATH_MAX];      /* the INI file as given */
    unsigned id;              /* 1..65535 */
    char host[ADDR_HOST_MAX + 1]; /* where the peer port listens (addr_parse_host()'s
                                     stored form: IPv6 without brackets); may be a
                                     wildcard, 0.0.0.0 or "::", when advertise is set */
    uint16_t port;            /* 1..65535 */
    /* [peer] advertise: the address neighbours dial and this peer names as
     * itself on the wire (GET from=, FOUND holder=, HELLO, CHALLENGE, PROVE).
     * Always filled: host:port when the key is absent. Read at start only. */
    struct fs_addr advertise;
    int advertise_set;        /* 1 when the INI has the key */
    char share_dir[PATH_MAX]; /* absolute, resolved against the INI's folder */
    char share_dir_raw[PATH_MAX]; /* as written in the file */
    unsigned ttl;             /* 1..max_ttl */
    int log_level;            /* L_ERROR..L_DEBUG, default L_INFO */
    struct fs_addr neighbours[CFG_MAX_NEIGHBOURS];
    size_t n_neighbours;
    /* [limits], each with a default */
    unsigned workers;            /* default 16, 1..256 */
    unsigned max_queue;          /* accepted connections waiting for a worker: 64, 1..4096 */
    unsigned io_timeout_ms;      /* every socket read/write: 10000, 100..600000 */
    unsigned connect_timeout_ms; /* 2000, 100..60000 */
    unsigned hit_window_ms;      /* how long search collects hits: 2000, 10..60000 */
    unsigned query_cache_size;   /* 4096, 16..1048576 */
    unsigned query_cache_ttl_ms; /* 120000, 1000..3600000 */
    unsigned max_ttl;            /* incoming TTLs are clamped to it: 15, 1..15 */
    unsigned max_conns;          /* open peer-port connections in all: 1024, 16..65536 */
    unsigned max_conns_per_addr; /* ...from one remote address: 256, 1..65536 */
    unsigned query_rate;         /* GETs per second accepted from one neighbour: 100 */
    unsigned query_burst;        /* ...and the bucket's depth: 200 */
    unsigned upload_slots;       /* uploads served at once: 8, 1..1024 */
    unsigned upload_slots_per_addr; /* ...to one requesting address: 2, 1..1024 */
    unsigned min_upload_rate;    /* bytes/s an upload must move over each 10 s, else it is
                                    cut: 16384, 0 (never cut)..1073741824 */
    unsigned get_timeout_ms;     /* a whole `get`: finding, trying holders, downloading:
                                    120000, 0 (no deadline)..86400000 */
    unsigned max_sources;        /* holders one get fetches from at once (swarming,
                                    docs/DESIGN.md Transfers): 4, 1..8 */
    uint64_t upload_rate;        /* bytes/s of all uploads together (rate.h), K/M/G
                                    suffixes of 1024: 0 (no limit, the default) or 1K..64G */
    uint64_t download_rate;      /* ...of all downloads together */
    /* [security]: read at start only (`modify` refuses them). A passphrase
     * and a key together are refused: one mode at a time. */
    char passphrase[CFG_PASSPHRASE_MAX + 1]; /* "": none; 8..1024 bytes */
    char key_file[PATH_MAX];  /* "": none; else absolute (resolved like share_dir) */
    unsigned char trusted[FP_MAX_TRUSTED][FP_LEN]; /* required with key_file */
    size_t n_trusted;
    char keylog[PATH_MAX];    /* "": off; NSS key log lines appended (mode 0600) */
    /* [accept] browse: who may list this peer's share (BROWSE); default any.
     * `modify browse` changes it live. */
    enum cfg_accept accept_browse;
    /* [accept]: `modify` changes them live. */
    enum cfg_accept send_from; /* default CFG_ACCEPT_NEIGHBOURS */
    uint64_t quota;           /* most bytes the share may hold; 0: unlimited (default) */
    uint64_t max_item;        /* largest item an offer may bring; 0: unlimited (default) */
    /* [sync]: read at start only (`modify` has no key for it: restart the
     * peer). Names are unique; a peer is never this peer itself. */
    struct cfg_sync_pair sync[CFG_MAX_SYNC];
    size_t n_sync;
    unsigned sync_interval; /* seconds, 1..CFG_SYNC_INTERVAL_MAX, default 300 */
};

/* Loads and validates path into *out. On failure returns FS_ECONFIG (or
 * FS_EIO if the file cannot be read) and writes into err one line naming the
 * file, the section, the key and what is wrong, e.g.
 *   peer3.ini: [peer] port: "70000" is not a port number (1..65535)
 * Checked: required keys present, numbers in range, share_dir exists and is
 * a directory, each neighbour parses, no neighbour equals this peer's own
 * host:port or advertise address, no duplicate neighbour, no unknown section
 * or key, a wildcard host only with an advertise address. */
fs_status cfg_load(const char *path, struct cfg *out, char *err, size_t errcap);

/* Sets [section] key = value in the INI at path, keeping every other line,
 * comment and the order as they are (a trailing "; comment" on the edited
 * line is kept too); adds the key (and the section) at the end if missing.
 * The result is validated with cfg_load() before it replaces the file; the
 * replacement is atomic (temporary file in the same folder, fsync, rename,
 * fsync of the folder). On a validation failure the file is unchanged and
 * err says why. */
/* "any", "neighbours", "none" -> enum cfg_accept; -1 for anything else. */
int cfg_accept_parse(const char *s);
/* The INI spelling of a (a constant string). */
const char *cfg_accept_name(enum cfg_accept a);

fs_status cfg_set(const char *path, const char *section, const char *key, const char *value,
                  char *err, size_t errcap);

#endif
