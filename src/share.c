/* share.c - the share index: scan and hash on the share's own thread, reuse
 * of cached hashes (their file is sharecache.c's), change detection, name
 * search and confinement of share-relative paths. */
#include "floodshare/share.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "floodshare/hash.h"
#include "floodshare/log.h"
#include "floodshare/name.h"
#include "floodshare/pieces.h"
#include "floodshare/sharecache.h"
#include "floodshare/zipio.h"

#define SHARE_MAX_DEPTH 64         /* folder levels below the scanned root */
#define SHARE_MAX_ENTRIES 1000000  /* items in one scan */
#define SHARE_POLL_SEC 2           /* without inotify, a scan this old is dirty */
#define SHARE_HASH_CHUNK (256 * 1024) /* bytes per read(2) while hashing */
/* After a scan that saw the tree move under it (a file still being written),
 * the thread lets it settle this long before it looks again, so that a
 * long copy costs a few short scans a second, not one per write. */
#define SHARE_SETTLE_MS 300
/* Between two scans, so that a burst of changes costs one scan. */
#define SHARE_SCAN_GAP_MS 50
/* How much nicer than the rest of the peer the share thread runs (Linux
 * applies it to the one thread; at most 19): on a busy machine, hashing
 * yields the CPU to the threads that answer queries (a weight of about a
 * tenth of theirs), but is never starved. */
#define SHARE_THREAD_NICE 10
/* The share thread's stack. Its deepest path is a walk SHARE_MAX_DEPTH
 * folders down: gcc -O2 -fstack-usage gives walk_dir + walk_child about
 * 660 bytes a level (42 KiB for 64), and the deepest leaves (walk_watch or
 * index_drain_events with a 4 KiB buffer, log_emit 2.4 KiB, stdio, MD5)
 * add under 16 KiB; file contents are read into the heap (struct walk's
 * buf). Sanitizers grow every frame several times over. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SHARE_THREAD_STACK (1024 * 1024)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SHARE_THREAD_STACK (1024 * 1024)
#endif
#endif
#ifndef SHARE_THREAD_STACK
#define SHARE_THREAD_STACK (256 * 1024)
#endif
/* A file whose mtime is this close to the scan start may be rewritten within
 * the same timestamp tick without its mtime changing, so its hash is not
 * trusted by the next scan (git's "racy clean" problem). */
#define SHARE_RACY_SEC 2
#define SHARE_WATCH_MASK                                                                   \
    (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB |    \
     IN_DELETE_SELF | IN_MODIFY | IN_ONLYDIR)
/* "F " size ' ' md5 ' ' relpath '\n' */
#define MANIFEST_LINE_MAX (2 + 20 + 1 + MSG_MD5_LEN + 1 + PATH_MAX_LEN + 1 + 1)

/* One scanned file or folder. */
struct entry {
    char *path;       /* relative to the scanned root, malloc'd */
    const char *name; /* last component, points into path */
    enum msg_kind kind;
    uint64_t size, files;
    char md5[MSG_MD5_LEN + 1];
    char root[PIECES_ROOT_HEX + 1]; /* files only: piece root, "" when none */
    dev_t dev; /* files only: the cache key and what it was checked against */
    ino_t ino;
    struct timespec mtime;
    int cacheable; /* files only: hash may be reused by the next scan */
};

/* Lock order: scan_mu, then mu; wait_mu is never held with either. Queries
 * take only mu, which a rescan holds just to swap in the finished index, so
 * hashing never makes a query wait.
 *
 * Every scan after share_open()'s first runs on the share's own thread
 * (share_thread()), which sleeps in poll(2) on the inotify fd and wake_fd.
 * Callers only nudge it through wake_fd; nothing they call scans. */
struct share {
    /* The share folder, opened once by share_open() and held until
     * share_close(): every path below it is reached through this descriptor
     * (share_open_beneath()), never through a path string, so replacing the
     * folder or a parent with a link changes nothing the peer reads. */
    int root_fd;
    char *dir;        /* the folder's name when opened, for messages only */
    atomic_int dirty; /* rescan at the next chance; set by anyone, cleared by a scan */
    atomic_int stop;  /* share_close(): the thread ends, a running scan gives up */
    int wake_fd;      /* eventfd: written to nudge the thread */
    pthread_t thread;
    int thread_started;
    /* Held by the thread around each check and scan, and by
     * share_set_hash_hook(); guards every field down to mu. */
    pthread_mutex_t scan_mu;
    struct sharecache_ent *cache; /* the hashes the next scan may reuse, sorted by (dev, ino) */
    size_t n_cache;
    int cache_unsaved;         /* cache differs from what SHARE_CACHE_FILE holds */
    int save_logged;           /* a failure to save was reported (until a success) */
    int fail_logged;           /* a failed scan was reported (until a success) */
    int ifd;                   /* inotify on every indexed folder, -1 if unavailable */
    int polling_logged;        /* the fall-back to polling was reported */
    struct timespec last_scan; /* CLOCK_MONOTONIC */
    /* When the last scan left racy files (hashed, too fresh to cache): the
     * monotonic ms after which the thread scans again, so that their hashes
     * reach the cache file once they are trustworthy; 0 if none. Otherwise
     * a freshly copied share kept re-hashing those files at every restart,
     * and its cache file appeared whenever some later change happened to
     * cause a scan. Owned by the thread. */
    _Atomic int64_t recheck_at;
    share_hash_hook hook;      /* tests only, see share_set_hash_hook() */
    void *hook_arg;
    share_read_hook read_hook; /* tests only, see share_set_read_hook() */
    void *read_hook_arg;
    share_change_fn change_fn; /* share_set_change_hook() */
    void *change_arg;
    int installed; /* a scan since the last check installed a new index */
    /* Guards the published index below. Readers see the old index or the
     * new one, never a mix; it is written only with scan_mu held too. */
    pthread_mutex_t mu;
    struct entry *items; /* sorted bytewise by path */
    size_t n_items;
    const struct entry **by_name; /* items sorted by (name, path) */
    /* share_refresh_wait(): a waiter takes the ticket ++wait_req and sleeps
     * on wait_cv until wait_done reaches it; the thread sets wait_done to the
     * wait_req it read before a check once that check is over. Guarded by
     * wait_mu. */
    pthread_mutex_t wait_mu;
    pthread_cond_t wait_cv; /* on CLOCK_MONOTONIC */
    uint64_t wait_req, wait_done;
    fs_status wait_st; /* how the check that set wait_done ended */
    /* share_adopt(): hashes of files this peer just wrote and verified,
     * merged into cache by the next scan (so it never reads them). Guarded
     * by adopt_mu, a leaf: taken alone by share_adopt(), and by the thread
     * under scan_mu for the merge (order: scan_mu, then adopt_mu). */
    pthread_mutex_t adopt_mu;
    struct sharecache_ent adopted[SHARE_ADOPT_MAX];
    size_t n_adopted;
};

/* State of one recursive scan, for the index or for share_digest_at(). */
struct walk {
    struct entry *v;
    size_t n, cap;
    const struct sharecache_ent *cache; /* NULL: hash everything */
    size_t n_cache;
    const char *root; /* the scanned folder's name, for messages */
    int ifd;          /* -1: add no watches */
    int watch_err;    /* why watching failed (ifd was then closed) */
    int strict;       /* share_digest_at(): a symlink or a limit fails the scan */
    int hide_state;   /* skip SHARE_STATE_DIR at the top */
    share_hash_hook hook;
    void *hook_arg;
    share_read_hook read_hook;
    void *read_hook_arg;
    const atomic_int *stop; /* NULL, or give up (FS_ECANCELED) once it is set */
    unsigned char *buf;     /* SHARE_HASH_CHUNK bytes for reading files, malloc'd */
    /* The index's piece lists folder (SHARE_PIECES_DIR), or -1: hash no
     * pieces (share_digest_at(), a share whose state folder is read-only). */
    int pieces_fd;
    time_t racy_from; /* files with mtime at or after this are not cacheable */
    /* Unless eager, a file written to in [settle_from, settle_to] may still
     * be being written: it is left for a later scan (changed is set). */
    int eager;
    struct timespec settle_from, settle_to;
    const struct entry *prev; /* the index this scan replaces, sorted by path */
    size_t n_prev;
    /* Cache entries of files left for a later scan, kept for it. */
    struct sharecache_ent *keep;
    size_t n_keep, cap_keep;
    size_t hashed;
    size_t racy; /* of those, too fresh to cache */
    int changed; /* the tree moved under the scan: scan again later */
    int full;    /* SHARE_MAX_ENTRIES reached: stop */
    int warned;  /* a limit was logged for this scan */
    fs_status st;
};

/* --- entries -------------------------------------------------------------- */

static void entries_free(struct entry *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].path);
    free(v);
}

static int entry_path_cmp(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->path, ((const struct entry *)b)->path);
}

/* First entry of v[0..n) (sorted by path) whose path is not below key. */
static size_t entries_lower_bound(const struct entry *v, size_t n, const char *key)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(v[mid].path, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void entry_to_item(const struct entry *e, struct share_item *out)
{
    memset(out, 0, sizeof *out);
    /* Both fit: the scan keeps only path_valid() paths and name_valid() names. */
    snprintf(out->path, sizeof out->path, "%s", e->path);
    snprintf(out->name, sizeof out->name, "%s", e->name);
    out->kind = e->kind;
    out->size = e->size;
    out->files = e->files;
    memcpy(out->md5, e->md5, sizeof out->md5);
    memcpy(out->root, e->root, sizeof out->root);
    out->mtime = e->mtime;
}

/* --- manifests ------------------------------------------------------------ */

/* One manifest line for e, its path with strip leading bytes ("folder/")
 * removed, into line. Returns its length, or -1 if it does not fit. */
static int manifest_line(const struct entry *e, size_t strip, char line[MANIFEST_LINE_MAX])
{
    int len;

    if (e->kind == MSG_KIND_FILE)
        len = snprintf(line, MANIFEST_LINE_MAX, "F %llu %s %s\n", (unsigned long long)e->size,
                       e->md5, e->path + strip);
    else
        len = snprintf(line, MANIFEST_LINE_MAX, "D %s\n", e->path + strip);
    return len < 0 || len >= MANIFEST_LINE_MAX ? -1 : len;
}

/* Digest of the manifest of v[0..n), the entries below one folder sorted by
 * path, with strip leading bytes ("folder/") removed from each path. */
static fs_status manifest_digest(const struct entry *v, size_t n, size_t strip,
                                 char md5[MSG_MD5_LEN + 1], uint64_t *size, uint64_t *files)
{
    struct hash_md5 h;
    char line[MANIFEST_LINE_MAX];
    fs_status st = hash_init(&h);

    *size = 0;
    *files = 0;
    if (st)
        return st;
    for (size_t i = 0; i < n; i++) {
        int len = manifest_line(&v[i], strip, line);
        if (len < 0) {
            hash_abort(&h);
            return FS_ETOOBIG;
        }
        if (v[i].kind == MSG_KIND_FILE) {
            *size += v[i].size;
            *files += 1;
        }
        hash_update(&h, line, (size_t)len);
    }
    return hash_final(&h, md5);
}

/* The folder root of v[0..n), the entries below one folder (pieces.h,
 * pieces_folder_root(): its files' binary roots in manifest order), into
 * root; "" when a file has no root (a read-only share, a file too large, one
 * not hashed yet) or there is no file: such a folder is fetched as before,
 * one holder at a time. Only a failure to allocate or hash is an error. */
static fs_status folder_root(const struct entry *v, size_t n, char root[PIECES_ROOT_HEX + 1])
{
    size_t files = 0, k = 0;

    root[0] = '\0';
    for (size_t i = 0; i < n; i++)
        if (v[i].kind == MSG_KIND_FILE) {
            if (!v[i].root[0])
                return FS_OK;
            files++;
        }
    if (files == 0)
        return FS_OK;
    unsigned char *bin = malloc(files * PIECES_HASH_LEN);
    if (!bin)
        return FS_ENOMEM;
    int ok = 1;
    for (size_t i = 0; ok && i < n; i++)
        if (v[i].kind == MSG_KIND_FILE)
            ok = pieces_root_bin(v[i].root, bin + k++ * PIECES_HASH_LEN) == 0;
    /* a malformed root (never from the scan): none for the folder */
    fs_status st = ok ? pieces_folder_root(bin, files, root) : FS_OK;
    free(bin);
    return st;
}

/* Fills size, files and md5 of every folder in v[0..n), sorted by path. The
 * entries below folder P are exactly those starting with "P/", and they are
 * contiguous in bytewise order. */
static fs_status folder_digests(struct entry *v, size_t n)
{
    char prefix[PATH_MAX_LEN + 2];

    for (size_t i = 0; i < n; i++) {
        if (v[i].kind != MSG_KIND_FOLDER)
            continue;
        int plen = snprintf(prefix, sizeof prefix, "%s/", v[i].path);
        if (plen < 0 || (size_t)plen >= sizeof prefix)
            return FS_ETOOBIG;
        size_t lo = entries_lower_bound(v, n, prefix), hi = lo;
        while (hi < n && strncmp(v[hi].path, prefix, (size_t)plen) == 0)
            hi++;
        fs_status st =
            manifest_digest(v + lo, hi - lo, (size_t)plen, v[i].md5, &v[i].size, &v[i].files);
        if (st == FS_OK)
            st = folder_root(v + lo, hi - lo, v[i].root);
        if (st)
            return st;
    }
    return FS_OK;
}

/* --- scanning ------------------------------------------------------------- */

static void walk_fail(struct walk *w, fs_status st)
{
    if (w->st == FS_OK)
        w->st = st;
}

static int walk_stopped(struct walk *w)
{
    if (w->stop && atomic_load(w->stop))
        walk_fail(w, FS_ECANCELED);
    return w->st != FS_OK || w->full;
}

/* A scan limit was hit at rel: share_digest_at() fails, the index goes on
 * without that part and says so once per scan. */
static void walk_limit(struct walk *w, const char *what, const char *rel)
{
    char esc[LOG_ESCAPE_BUF];

    if (w->strict) {
        walk_fail(w, FS_ETOOBIG);
        return;
    }
    if (!w->warned)
        log_msg(L_WARN, "share: %s at %s, part of %s is not indexed", what,
                log_escape_str(esc, rel), w->root);
    w->warned = 1;
}

/* An entry could not be read. Vanishing is a normal race with the user; a
 * permission problem only loses that entry from the index. */
static void walk_unreadable(struct walk *w, int err, const char *rel)
{
    char esc[LOG_ESCAPE_BUF];

    if (err == ENOENT || err == ENOTDIR || err == ELOOP) {
        w->changed = 1;
        if (w->strict && err == ELOOP)
            walk_fail(w, FS_EREFUSED);
        return;
    }
    if (w->strict) {
        walk_fail(w, FS_EIO);
        return;
    }
    log_msg(L_WARN, "share: cannot read %s: %s", log_escape_str(esc, rel), strerror(err));
}

static struct entry *walk_push(struct walk *w, const char *rel, size_t name_len,
                               enum msg_kind kind)
{
    if (w->n >= SHARE_MAX_ENTRIES) {
        walk_limit(w, "too many entries", rel);
        w->full = 1;
        return NULL;
    }
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 256;
        struct entry *v = realloc(w->v, cap * sizeof *v);
        if (!v) {
            walk_fail(w, FS_ENOMEM);
            return NULL;
        }
        w->v = v;
        w->cap = cap;
    }
    struct entry *e = &w->v[w->n];
    memset(e, 0, sizeof *e);
    e->path = strdup(rel);
    if (!e->path) {
        walk_fail(w, FS_ENOMEM);
        return NULL;
    }
    e->name = e->path + strlen(rel) - name_len;
    e->kind = kind;
    w->n++;
    return e;
}

static int same_mtime(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/* The cached hash of the file st describes, if size and mtime still match. */
static const struct sharecache_ent *walk_cached(const struct walk *w, const struct stat *st)
{
    struct sharecache_ent key = {.dev = st->st_dev, .ino = st->st_ino};
    const struct sharecache_ent *c;

    if (!w->cache)
        return NULL;
    c = bsearch(&key, w->cache, w->n_cache, sizeof key, sharecache_cmp);
    if (!c || c->size != (uint64_t)st->st_size || !same_mtime(&c->mtime, &st->st_mtim))
        return NULL;
    return c;
}

/* 1 if the file fd is no longer what before described: it grew, shrank,
 * was written to, or was removed (no name is left for it to be indexed
 * under: reading a deleted 1 GiB download to its end cost 1.7 s of CPU
 * beside the next get). */
static int file_moved(int fd, const struct stat *before)
{
    struct stat now;

    return fstat(fd, &now) != 0 || now.st_nlink == 0 || now.st_size != before->st_size ||
           !same_mtime(&now.st_mtim, &before->st_mtim);
}

/* Ends ph and keeps its list as the sidecar named by its root in the
 * pieces folder; e->root is set only once the list is on disk, so a root
 * is never advertised that HASHES cannot answer. A file too large for a
 * list (PIECES_LIST_MAX) or a failed write leaves e->root empty: the file
 * is still shared, with its MD5 alone. */
static void walk_save_pieces(struct walk *w, struct pieces_hash *ph, struct entry *e)
{
    unsigned char *list = NULL;
    uint64_t n = 0, ph_piece = ph->piece;
    char root[PIECES_ROOT_HEX + 1];
    struct stat sb;

    if (pieces_hash_final(ph, &list, &n, root) != FS_OK)
        return;
    /* Same root, same bytes: a sidecar already there (a copy of this file,
     * a rehash after a touch) is kept. */
    if (fstatat(w->pieces_fd, root, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode))
        memcpy(e->root, root, sizeof e->root);
    else if (pieces_save_at(w->pieces_fd, root, e->size, ph_piece, root, list, n) == FS_OK)
        memcpy(e->root, root, sizeof e->root);
    free(list);
}

static int ts_before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Hashes what fd holds into e->md5 and e->size, in SHARE_HASH_CHUNK reads.
 * Gives up as soon as the file moves away from before (EAGAIN: a copy still
 * in progress is not worth reading to its end) or the scan is stopped
 * (ECANCELED). 0 or an errno. */
static int walk_hash_fd(struct walk *w, int fd, const char *rel, const struct stat *before,
                        struct entry *e)
{
    struct hash_md5 h;
    struct pieces_hash ph = {0};
    uint64_t total = 0;
    int pieces = w->pieces_fd >= 0;

    e->root[0] = '\0';
    if (!w->buf && !(w->buf = malloc(SHARE_HASH_CHUNK)))
        return ENOMEM;
    if (hash_init(&h) != FS_OK)
        return ENOMEM;
    /* The piece hashes come from the same reads as the MD5: one pass. */
    uint64_t piece = pieces_size_for((uint64_t)before->st_size);
    if (pieces && (piece == 0 || pieces_hash_init(&ph, piece) != FS_OK))
        pieces = 0;
    /* Advice only: its failure changes nothing. */
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    for (;;) {
        if (w->stop && atomic_load(w->stop)) {
            hash_abort(&h);
            pieces_hash_abort(&ph);
            return ECANCELED;
        }
        ssize_t n = read(fd, w->buf, SHARE_HASH_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            hash_abort(&h);
            pieces_hash_abort(&ph);
            return err;
        }
        if (n == 0)
            break;
        hash_update(&h, w->buf, (size_t)n);
        if (pieces)
            pieces_hash_update(&ph, w->buf, (size_t)n);
        total += (uint64_t)n;
        if (w->read_hook)
            w->read_hook(w->read_hook_arg, rel, total);
        if (file_moved(fd, before)) {
            hash_abort(&h);
            pieces_hash_abort(&ph);
            return EAGAIN;
        }
    }
    e->size = total;
    if (pieces)
        walk_save_pieces(w, &ph, e);
    return hash_final(&h, e->md5) == FS_OK ? 0 : ENOMEM;
}

/* Hashes the regular file name in dfd that fstatat() described as *st into
 * e (md5, size = bytes hashed, mtime, cacheable). Returns 0 or an errno:
 * EAGAIN when the file was written to while it was read, so that the hash
 * may match no version of it (it must not be advertised with that hash),
 * ECANCELED when the scan was stopped. */
static int walk_hash(struct walk *w, int dfd, const char *name, const char *rel,
                     const struct stat *st, struct entry *e)
{
    struct stat before;
    int fd, err = 0;

    /* O_NONBLOCK: if a FIFO replaced the file since fstatat(), open must not
     * wait for a writer; the inode check below then rejects it. */
    fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return errno;
    if (fstat(fd, &before) != 0) {
        err = errno;
        goto out;
    }
    if (!S_ISREG(before.st_mode) || before.st_dev != st->st_dev || before.st_ino != st->st_ino) {
        err = ENOENT;
        goto out;
    }
    err = walk_hash_fd(w, fd, rel, &before, e);
    /* The last read may end before a write that changes neither size nor
     * the coarse mtime seen so far: compare once more after it. */
    if (!err && (e->size != (uint64_t)before.st_size || file_moved(fd, &before)))
        err = EAGAIN;
    if (err)
        goto out;
    w->hashed++;
    e->cacheable = before.st_mtim.tv_sec < w->racy_from;
    /* One dated in the future stays racy until that day: no recheck for it,
     * or the share would re-hash it every few seconds. */
    if (!e->cacheable && !ts_before(&w->settle_to, &before.st_mtim))
        w->racy++;
    e->mtime = before.st_mtim;
out:
    close(fd);
    return err;
}

/* Keeps the cache entry of the file st describes (if any, whatever its size
 * and mtime) for the next scan, which may find the file as it was. */
static void walk_keep_cached(struct walk *w, const struct stat *st)
{
    struct sharecache_ent key = {.dev = st->st_dev, .ino = st->st_ino};
    const struct sharecache_ent *c;

    if (!w->cache)
        return;
    c = bsearch(&key, w->cache, w->n_cache, sizeof key, sharecache_cmp);
    if (!c)
        return;
    if (w->n_keep == w->cap_keep) {
        size_t cap = w->cap_keep ? w->cap_keep * 2 : 16;
        struct sharecache_ent *v = realloc(w->keep, cap * sizeof *v);
        if (!v)
            return; /* only costs a hash later */
        w->keep = v;
        w->cap_keep = cap;
    }
    w->keep[w->n_keep++] = *c;
}

/* 1 if the file st describes was written to so recently that whoever wrote
 * it may not be done (a copy that just created it is still empty). */
static int walk_unsettled(const struct walk *w, const struct stat *st)
{
    return !w->eager && !ts_before(&st->st_mtim, &w->settle_from) &&
           !ts_before(&w->settle_to, &st->st_mtim);
}

static void walk_file(struct walk *w, int dfd, const char *name, size_t name_len,
                      const char *rel, const struct stat *st)
{
    const struct sharecache_ent *c = walk_cached(w, st);
    struct entry *e = walk_push(w, rel, name_len, MSG_KIND_FILE);
    int err;

    if (!e)
        return;
    e->files = 1;
    e->dev = st->st_dev;
    e->ino = st->st_ino;
    if (c) {
        e->size = c->size;
        e->mtime = c->mtime;
        memcpy(e->md5, c->md5, sizeof e->md5);
        memcpy(e->root, c->root, sizeof e->root);
        e->cacheable = 1;
        return;
    }
    if (walk_unsettled(w, st)) {
        /* Look again once it settled. Meanwhile a file the index already
         * holds stays as it was hashed if nothing seen changed since (it
         * must not flicker out of answers); a new or changed one waits. */
        size_t i = entries_lower_bound(w->prev, w->n_prev, rel);
        const struct entry *p = i < w->n_prev ? &w->prev[i] : NULL;
        w->changed = 1;
        if (p && strcmp(p->path, rel) == 0 && p->kind == MSG_KIND_FILE && p->dev == st->st_dev &&
            p->ino == st->st_ino && p->size == (uint64_t)st->st_size &&
            same_mtime(&p->mtime, &st->st_mtim)) {
            e->size = p->size;
            e->mtime = p->mtime;
            memcpy(e->md5, p->md5, sizeof e->md5);
            memcpy(e->root, p->root, sizeof e->root);
            return;
        }
        free(e->path);
        w->n--;
        walk_keep_cached(w, st);
        return;
    }
    if (w->hook)
        w->hook(w->hook_arg, rel);
    err = walk_hash(w, dfd, name, rel, st, e);
    if (!err)
        return;
    free(e->path);
    w->n--;
    if (err == ECANCELED)
        walk_fail(w, FS_ECANCELED);
    else if (err == EAGAIN && w->strict)
        walk_fail(w, FS_EIO); /* share_digest_at(): no digest of a moving target */
    else if (err == EAGAIN)
        w->changed = 1; /* still being written: left out until it holds still */
    else
        walk_unreadable(w, err, rel);
}

/* Watches the folder about to be read (open as fd), before reading it, so
 * that a change made while the scan runs is seen by the next
 * share_refresh(). The watch goes through /proc/self/fd, which names the
 * very folder fd holds: a path string from the root could meanwhile lead
 * through a link to somewhere else. */
static void walk_watch(struct walk *w, int fd)
{
    char self[64];

    if (w->ifd < 0)
        return;
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    if (inotify_add_watch(w->ifd, self, SHARE_WATCH_MASK) >= 0)
        return;
    w->watch_err = errno;
    /* A partly watched tree would miss changes: poll instead. */
    close(w->ifd);
    w->ifd = -1;
}

static void walk_dir(struct walk *w, int fd, char *rel, size_t rlen, unsigned depth);

static void walk_subdir(struct walk *w, int dfd, const char *name, size_t name_len,
                        char *rel, size_t rlen, unsigned depth, const struct stat *st)
{
    struct stat now;
    int fd;

    if (depth > SHARE_MAX_DEPTH) {
        walk_limit(w, "folders nested too deep", rel);
        return;
    }
    fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        walk_unreadable(w, errno, rel);
        return;
    }
    if (fstat(fd, &now) != 0 || now.st_dev != st->st_dev || now.st_ino != st->st_ino) {
        close(fd);
        walk_unreadable(w, ENOENT, rel);
        return;
    }
    if (!walk_push(w, rel, name_len, MSG_KIND_FOLDER)) {
        close(fd);
        return;
    }
    walk_dir(w, fd, rel, rlen, depth);
}

/* Handles entry name of the folder dfd, whose path is rel[0..rlen); rel has
 * room for PATH_MAX_LEN bytes and is restored before returning. */
static void walk_child(struct walk *w, int dfd, const char *name, char *rel, size_t rlen,
                       unsigned depth)
{
    size_t name_len = strlen(name), len = rlen + (rlen ? 1 : 0) + name_len;
    struct stat st;

    if (!name_valid(name, name_len))
        return;
    if (depth == 1 && w->hide_state && strcmp(name, SHARE_STATE_DIR) == 0)
        return;
    if (len > PATH_MAX_LEN) {
        walk_limit(w, "path too long", rel);
        return;
    }
    snprintf(rel + rlen, PATH_MAX_LEN + 1 - rlen, "%s%s", rlen ? "/" : "", name);
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        walk_unreadable(w, errno, rel);
    else if (S_ISLNK(st.st_mode) && w->strict)
        walk_fail(w, FS_EREFUSED);
    else if (S_ISREG(st.st_mode))
        walk_file(w, dfd, name, name_len, rel, &st);
    else if (S_ISDIR(st.st_mode))
        walk_subdir(w, dfd, name, name_len, rel, len, depth, &st);
    rel[rlen] = '\0';
}

/* Scans the open folder fd (consumed), whose path is rel[0..rlen), at depth. */
static void walk_dir(struct walk *w, int fd, char *rel, size_t rlen, unsigned depth)
{
    DIR *d = fdopendir(fd);
    struct dirent *de;

    if (!d) {
        int err = errno;
        close(fd);
        if (err == ENOMEM)
            walk_fail(w, FS_ENOMEM);
        else
            walk_unreadable(w, err, rel);
        return;
    }
    walk_watch(w, dirfd(d));
    while (!walk_stopped(w)) {
        errno = 0;
        de = readdir(d);
        if (!de) {
            if (errno)
                walk_unreadable(w, errno, rel);
            break;
        }
        walk_child(w, dirfd(d), de->d_name, rel, rlen, depth + 1);
    }
    closedir(d);
}

/* Scans the folder fd (consumed) into w->v, sorted by path, with every
 * folder's digest filled in. */
static fs_status walk_tree(struct walk *w, int fd)
{
    char rel[PATH_MAX_LEN + 1] = "";
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    w->racy_from = now.tv_sec - SHARE_RACY_SEC;
    w->settle_from = now;
    w->settle_from.tv_nsec -= (long)SHARE_SETTLE_MS * 1000000;
    while (w->settle_from.tv_nsec < 0) {
        w->settle_from.tv_nsec += 1000000000;
        w->settle_from.tv_sec--;
    }
    /* A clock that stepped back, or a date set in the future, must not
     * keep a file unsettled (and the thread rescanning) for ever. */
    w->settle_to = now;
    w->settle_to.tv_sec += 1;
    walk_dir(w, fd, rel, 0, 0);
    free(w->buf);
    w->buf = NULL;
    if (w->st)
        return w->st;
    if (w->n)
        qsort(w->v, w->n, sizeof *w->v, entry_path_cmp);
    return folder_digests(w->v, w->n);
}

/* --- the persisted cache -------------------------------------------------- */

/* Opens the state folder of the share root rfd without following a
 * symlink, creating it (0700) first if create and it is missing. Returns an
 * fd, or -1 with errno set. */
static int state_dir_open(int rfd, int create)
{
    int fd;

    fd = openat(rfd, SHARE_STATE_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
        int made = mkdirat(rfd, SHARE_STATE_DIR, 0700) == 0;
        /* EEXIST: another writer made it since the openat() above. */
        if (made || errno == EEXIST)
            fd = openat(rfd, SHARE_STATE_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        /* The new folder's name must be durable before the cache inside it. */
        if (made && fd >= 0) {
            int err = errno;
            (void)fsync(rfd);
            errno = err;
        }
    }
    /* Another user's folder under that name (one who can write the share)
     * would feed us hashes: not ours, not used (statedir_open() says so too). */
    struct stat sb;
    if (fd >= 0 && (fstat(fd, &sb) != 0 || sb.st_uid != geteuid())) {
        close(fd);
        errno = EPERM;
        return -1;
    }
    return fd;
}

/* Opens (creating it and the state folder when missing) the folder of the
 * index's piece lists, or -1 (errno set): a read-only share hashes no
 * pieces and advertises no roots. */
static int pieces_dir_open(int rfd)
{
    int sfd = state_dir_open(rfd, 1), fd = -1;

    if (sfd < 0)
        return -1;
    if (mkdirat(sfd, SHARE_PIECES_DIR, 0700) == 0 || errno == EEXIST)
        fd = openat(sfd, SHARE_PIECES_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int err = errno;
    close(sfd);
    errno = err;
    return fd;
}

static int root_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Removes the lists no item of the index nor entry of the cache names any
 * more (their files changed or left), and temporaries of writes a crash
 * interrupted (older than 10 minutes: a younger one may be another open
 * share's write). On the share's thread, after a scan that changed
 * something; the roots in use are sorted once, each list name is looked up. */
static void pieces_sweep(int pfd, const struct entry *v, size_t n, const struct sharecache_ent *c,
                         size_t nc)
{
    const char **roots = malloc((n + nc + 1) * sizeof *roots);
    int fd = roots ? openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    struct dirent *de;
    struct stat sb;
    time_t now = time(NULL);
    size_t k = 0;

    if (!d) {
        if (fd >= 0)
            close(fd);
        free(roots);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (v[i].kind == MSG_KIND_FILE && v[i].root[0])
            roots[k++] = v[i].root;
    for (size_t i = 0; i < nc; i++)
        if (c[i].root[0])
            roots[k++] = c[i].root;
    if (k)
        qsort(roots, k, sizeof *roots, root_cmp);
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (name[0] == '.')
            continue;
        if (pieces_root_valid(name)) {
            if (!k || !bsearch(&name, roots, k, sizeof *roots, root_cmp))
                unlinkat(pfd, name, 0);
        } else if (fstatat(pfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
                   sb.st_mtime < now - 600) {
            unlinkat(pfd, name, 0);
        }
    }
    closedir(d);
    free(roots);
}

/* Drops from v[0..*n) the entries whose piece list is gone from the pieces
 * folder (removed by hand, a crash before the rename): such a file is
 * hashed again, never advertised with a root nobody can serve. */
static void cache_drop_listless(int rfd, struct sharecache_ent *v, size_t *n)
{
    int pfd = pieces_dir_open(rfd);
    struct stat sb;
    size_t k = 0;

    for (size_t i = 0; i < *n; i++)
        if (v[i].root[0] == '\0' || (pfd >= 0 && fstatat(pfd, v[i].root, &sb,
                                                          AT_SYMLINK_NOFOLLOW) == 0 &&
                                      S_ISREG(sb.st_mode)))
            v[k++] = v[i];
    if (k != *n)
        log_msg(L_INFO, "share: %zu cached hash(es) lost their piece list; hashing them again",
                *n - k);
    *n = k;
    if (pfd >= 0)
        close(pfd);
}

static int cache_equal(const struct sharecache_ent *a, size_t na, const struct sharecache_ent *b,
                       size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (sharecache_cmp(&a[i], &b[i]) != 0 || a[i].size != b[i].size ||
            !same_mtime(&a[i].mtime, &b[i].mtime) || strcmp(a[i].md5, b[i].md5) != 0 ||
            strcmp(a[i].root, b[i].root) != 0)
            return 0;
    return 1;
}


/* Saves sh->cache. A read-only share is a normal setup, not a fault: it
 * only costs re-hashing after a restart, so it is said once, at debug
 * level. Called by the scanning thread with scan_mu held, or from
 * share_close() once that thread is gone. */
static void cache_save(struct share *sh)
{
    int sfd = state_dir_open(sh->root_fd, 1);
    int err = sfd < 0 ? errno : sharecache_save(sfd, sh->cache, sh->n_cache);

    if (sfd >= 0)
        close(sfd);
    if (!err) {
        sh->cache_unsaved = 0;
        sh->save_logged = 0;
        return;
    }
    if (sh->save_logged)
        return;
    sh->save_logged = 1;
    if (err == EROFS || err == EACCES || err == EPERM)
        log_msg(L_DEBUG, "share: %s is read-only (%s); hashes are not kept across restarts",
                sh->dir, strerror(err));
    else
        log_msg(L_WARN, "share: cannot save %s/%s/%s: %s", sh->dir, SHARE_STATE_DIR,
                SHARE_CACHE_FILE, strerror(err));
}

/* Loads the persisted cache into sh->cache (empty). A missing file is the
 * first start; any other problem is logged and the file ignored, so every
 * file is hashed, and the cache is marked unsaved so that the next save
 * replaces the bad file. */
static void cache_load(struct share *sh)
{
    struct sharecache_ent *v = NULL;
    const char *why = NULL;
    size_t n = 0;
    int sfd = state_dir_open(sh->root_fd, 0);
    fs_status st;

    if (sfd < 0) {
        if (errno == ENOENT)
            return;
        why = strerror(errno);
        st = FS_EIO;
    } else {
        st = sharecache_load(sfd, &v, &n, &why);
        close(sfd);
        if (st == FS_ENOTFOUND)
            return;
    }
    if (st) {
        log_msg(L_WARN, "share: ignoring %s/%s/%s (%s); hashing every file again", sh->dir,
                SHARE_STATE_DIR, SHARE_CACHE_FILE, why ? why : fs_strerror(st));
        sh->cache_unsaved = 1;
        return;
    }
    cache_drop_listless(sh->root_fd, v, &n);
    sh->cache = v;
    sh->n_cache = n;
    log_msg(L_DEBUG, "share: loaded %zu cached hashes for %s", n, sh->dir);
}

/* --- the index ------------------------------------------------------------ */

static int by_name_cmp(const void *a, const void *b)
{
    const struct entry *x = *(const struct entry *const *)a;
    const struct entry *y = *(const struct entry *const *)b;
    int c = strcmp(x->name, y->name);

    return c ? c : strcmp(x->path, y->path);
}

static fs_status index_build_names(const struct entry *v, size_t n, const struct entry ***out)
{
    const struct entry **p = malloc((n ? n : 1) * sizeof *p);

    *out = NULL;
    if (!p)
        return FS_ENOMEM;
    for (size_t i = 0; i < n; i++)
        p[i] = &v[i];
    if (n)
        qsort(p, n, sizeof *p, by_name_cmp);
    *out = p;
    return FS_OK;
}

/* The cache for the next scan: exactly the trusted hashes of this one, and
 * those kept for files it left for later, so it forgets vanished files and
 * never outgrows the index. One entry per (dev, ino): hard links are one
 * file, and the cache file refuses duplicates. */
static fs_status index_build_cache(const struct walk *w, struct sharecache_ent **out,
                                   size_t *n_out)
{
    size_t n = w->n + w->n_keep, k = 0, u = 0;
    struct sharecache_ent *c = malloc((n ? n : 1) * sizeof *c);

    *out = NULL;
    *n_out = 0;
    if (!c)
        return FS_ENOMEM;
    for (size_t i = 0; i < w->n; i++) {
        const struct entry *e = &w->v[i];
        if (e->kind != MSG_KIND_FILE || !e->cacheable)
            continue;
        c[k].dev = e->dev;
        c[k].ino = e->ino;
        c[k].size = e->size;
        c[k].mtime = e->mtime;
        memcpy(c[k].md5, e->md5, sizeof c[k].md5);
        memcpy(c[k].root, e->root, sizeof c[k].root);
        k++;
    }
    for (size_t i = 0; i < w->n_keep; i++)
        c[k++] = w->keep[i];
    if (k)
        qsort(c, k, sizeof *c, sharecache_cmp);
    for (size_t i = 0; i < k; i++)
        if (u == 0 || sharecache_cmp(&c[u - 1], &c[i]) != 0)
            c[u++] = c[i];
    *out = c;
    *n_out = u;
    return FS_OK;
}

/* Makes cache the one the next scan reuses, noting whether it needs saving. */
static void index_take_cache(struct share *sh, struct sharecache_ent *cache, size_t n)
{
    if (!cache_equal(sh->cache, sh->n_cache, cache, n))
        sh->cache_unsaved = 1;
    free(sh->cache);
    sh->cache = cache;
    sh->n_cache = n;
}

/* Moves the scan result w and its inotify fd into sh. Called with scan_mu
 * held. Everything slow (sorting, building the cache, freeing the old index)
 * happens outside mu, which covers only the pointer swap. */
static fs_status index_install(struct share *sh, struct walk *w)
{
    const struct entry **by_name, **old_by_name;
    struct entry *old_items;
    size_t old_n, n_cache;
    struct sharecache_ent *cache;
    fs_status st = index_build_cache(w, &cache, &n_cache);

    if (!st)
        st = index_build_names(w->v, w->n, &by_name);
    if (st) {
        free(cache);
        return st;
    }
    pthread_mutex_lock(&sh->mu);
    old_items = sh->items;
    old_n = sh->n_items;
    old_by_name = sh->by_name;
    sh->items = w->v;
    sh->n_items = w->n;
    sh->by_name = by_name;
    pthread_mutex_unlock(&sh->mu);
    entries_free(old_items, old_n);
    free(old_by_name);
    index_take_cache(sh, cache, n_cache);
    if (sh->ifd >= 0)
        close(sh->ifd);
    sh->ifd = w->ifd;
    w->v = NULL;
    w->n = 0;
    w->ifd = -1;
    sh->installed = 1;
    return FS_OK;
}

/* Says once per fall-back that changes are now found by polling. Called
 * with scan_mu held. */
static void index_note_polling(struct share *sh, int err)
{
    if (sh->ifd >= 0) {
        sh->polling_logged = 0;
        return;
    }
    if (!sh->polling_logged)
        log_msg(L_WARN, "share: cannot watch %s for changes (%s); rescanning every %d s instead",
                sh->dir, strerror(err), SHARE_POLL_SEC);
    sh->polling_logged = 1;
}

/* Moves the adopted hashes into sh->cache, where the scan about to run
 * finds them like any cached hash: by (dev, ino), trusted only while size
 * and mtime still match. An adopted entry replaces a cached one of the same
 * file; one whose piece list is not on disk (swept meanwhile) is dropped,
 * so a root is never advertised that HASHES cannot answer: that file is
 * hashed instead. Called with scan_mu held. */
static void adopt_merge(struct share *sh)
{
    struct sharecache_ent got[SHARE_ADOPT_MAX];
    size_t n, k = 0;

    pthread_mutex_lock(&sh->adopt_mu);
    n = sh->n_adopted;
    memcpy(got, sh->adopted, n * sizeof got[0]);
    sh->n_adopted = 0;
    pthread_mutex_unlock(&sh->adopt_mu);
    if (n == 0)
        return;
    struct sharecache_ent *c = realloc(sh->cache, (sh->n_cache + n) * sizeof *c);
    if (!c)
        return; /* only costs the hashes */
    sh->cache = c;
    int pfd = pieces_dir_open(sh->root_fd);
    for (size_t i = 0; i < n; i++) {
        struct stat sb;
        if (got[i].root[0] && (pfd < 0 || fstatat(pfd, got[i].root, &sb,
                                                    AT_SYMLINK_NOFOLLOW) != 0 ||
                               !S_ISREG(sb.st_mode)))
            continue;
        struct sharecache_ent *old = bsearch(&got[i], c, sh->n_cache, sizeof *c, sharecache_cmp);
        if (old)
            *old = got[i];
        else
            c[sh->n_cache + k++] = got[i];
    }
    if (pfd >= 0)
        close(pfd);
    sh->n_cache += k;
    qsort(sh->cache, sh->n_cache, sizeof *sh->cache, sharecache_cmp);
    /* two adoptions of one file: keep one (the cache refuses duplicates) */
    size_t u = 0;
    for (size_t i = 0; i < sh->n_cache; i++)
        if (u == 0 || sharecache_cmp(&sh->cache[u - 1], &sh->cache[i]) != 0)
            sh->cache[u++] = sh->cache[i];
    sh->n_cache = u;
    sh->cache_unsaved = 1;
}

void share_adopt(struct share *sh, int fd, const char *md5, const char *root, uint64_t piece,
                 const unsigned char *list, uint64_t n)
{
    struct sharecache_ent e = {0};
    struct stat sb;

    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || strlen(md5) != MSG_MD5_LEN)
        return;
    e.dev = sb.st_dev;
    e.ino = sb.st_ino;
    e.size = (uint64_t)sb.st_size;
    e.mtime = sb.st_mtim;
    memcpy(e.md5, md5, MSG_MD5_LEN);
    if (root && root[0] && list && strlen(root) == MSG_ROOT_LEN) {
        /* The list goes where a scan would put it, before the entry is
         * offered: the merge drops an entry whose list is not there. */
        int pfd = pieces_dir_open(sh->root_fd);
        struct stat ps;
        if (pfd >= 0 && (fstatat(pfd, root, &ps, AT_SYMLINK_NOFOLLOW) == 0 ||
                         pieces_save_at(pfd, root, e.size, piece, root, list, n) == FS_OK))
            memcpy(e.root, root, MSG_ROOT_LEN);
        if (pfd >= 0)
            close(pfd);
        if (!e.root[0])
            return; /* no list, no root: the scan hashes it, pieces included */
    }
    pthread_mutex_lock(&sh->adopt_mu);
    if (sh->n_adopted < SHARE_ADOPT_MAX)
        sh->adopted[sh->n_adopted++] = e;
    pthread_mutex_unlock(&sh->adopt_mu);
}

/* Rescans the whole share. Called with scan_mu held and mu not: the walk
 * and the hashing read only scan-side state, and queries go on answering
 * from the old index meanwhile. On failure the old index stays and the
 * share stays dirty. Unless eager (share_open(), a waiter: someone wants
 * the share as it is now), files written to in the last SHARE_SETTLE_MS
 * wait for the next scan. */
static fs_status index_rescan(struct share *sh, int eager)
{
    adopt_merge(sh);
    struct walk w = {.cache = sh->cache, .n_cache = sh->n_cache, .root = sh->dir,
                     .hide_state = 1, .hook = sh->hook, .hook_arg = sh->hook_arg,
                     .read_hook = sh->read_hook, .read_hook_arg = sh->read_hook_arg,
                     .stop = &sh->stop, .eager = eager, .prev = sh->items,
                     .n_prev = sh->n_items, .pieces_fd = pieces_dir_open(sh->root_fd)};
    fs_status st = FS_EIO;
    int fd;

    /* A fresh inotify instance per scan drops the watches of folders that
     * are gone and re-adds every current one. */
    w.ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w.ifd < 0)
        w.watch_err = errno;
    atomic_store(&sh->dirty, 0);
    /* A fresh descriptor of the held root: the walk reads and closes it. */
    fd = openat(sh->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        goto out;
    st = walk_tree(&w, fd);
    if (!st)
        st = index_install(sh, &w);
    if (!st) {
        index_note_polling(sh, w.watch_err);
        clock_gettime(CLOCK_MONOTONIC, &sh->last_scan);
        atomic_store(&sh->recheck_at,
                     w.racy ? (int64_t)sh->last_scan.tv_sec * 1000 +
                                  sh->last_scan.tv_nsec / 1000000 + (SHARE_RACY_SEC + 1) * 1000
                            : 0);
        log_msg(L_DEBUG, "share: scanned %s: %zu items, %zu files hashed", sh->dir, sh->n_items,
                w.hashed);
        /* Only new hashes are worth the write; a cache that merely lost
         * vanished files is saved by share_close(). */
        if (w.hashed && sh->cache_unsaved)
            cache_save(sh);
        if (w.pieces_fd >= 0 && (w.hashed || w.n_prev != w.n))
            pieces_sweep(w.pieces_fd, sh->items, sh->n_items, sh->cache, sh->n_cache);
    }
out:
    if (st || w.changed)
        atomic_store(&sh->dirty, 1);
    if (w.ifd >= 0)
        close(w.ifd);
    if (w.pieces_fd >= 0)
        close(w.pieces_fd);
    entries_free(w.v, w.n);
    free(w.keep);
    return st;
}

/* Consumes pending inotify events; 1 if there were any. Called with scan_mu
 * held. */
static int index_drain_events(struct share *sh)
{
    char buf[4096]; /* events are only counted, never parsed */
    int any = 0;

    for (;;) {
        ssize_t n = read(sh->ifd, buf, sizeof buf);
        if (n > 0) {
            any = 1;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        /* EAGAIN: drained. Anything else: treat as a change rather than
         * risk a stale index. */
        return any || (n < 0 && errno != EAGAIN);
    }
}

/* Called with scan_mu held. */
static int index_is_stale(struct share *sh)
{
    struct timespec now;

    if (atomic_load(&sh->dirty))
        return 1;
    if (sh->ifd >= 0)
        return index_drain_events(sh);
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - sh->last_scan.tv_sec) * 1000 +
               (now.tv_nsec - sh->last_scan.tv_nsec) / 1000000 >=
           SHARE_POLL_SEC * 1000;
}

/* --- the scanning thread -------------------------------------------------- */

static int64_t mono_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void share_wake(struct share *sh)
{
    uint64_t one = 1;

    /* Cannot block or fail in practice: the counter would have to reach
     * 2^64 - 1 first. A lost nudge would only delay a rescan. */
    if (write(sh->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_msg(L_DEBUG, "share: cannot wake the scanner: %s", strerror(errno));
}

static void share_drain_wake(struct share *sh)
{
    uint64_t n;

    while (read(sh->wake_fd, &n, sizeof n) < 0 && errno == EINTR)
        ;
}

/* One check on the thread: rescans if the share changed, or if a waiter
 * asks and only a rescan can tell (no inotify). Returns how it went. */
static fs_status share_check(struct share *sh, int waiter)
{
    fs_status st = FS_OK;

    pthread_mutex_lock(&sh->scan_mu);
    if (index_is_stale(sh) || (waiter && sh->ifd < 0))
        st = index_rescan(sh, waiter);
    share_change_fn fn = sh->installed ? sh->change_fn : NULL;
    void *fn_arg = sh->change_arg;
    sh->installed = 0;
    pthread_mutex_unlock(&sh->scan_mu);
    /* Outside scan_mu: the hook may read the index (share_lookup()). */
    if (fn)
        fn(fn_arg);
    if (st && st != FS_ECANCELED && !sh->fail_logged) {
        log_msg(L_WARN, "share: cannot scan %s: %s; answering from the last index", sh->dir,
                fs_strerror(st));
        sh->fail_logged = 1;
    } else if (!st) {
        sh->fail_logged = 0;
    }
    return st;
}

/* The share's thread: sleeps until the share changes (inotify), someone
 * nudges it (wake_fd) or, without inotify, SHARE_POLL_SEC pass; then checks
 * and rescans. An idle share costs no CPU: with inotify poll(2) has no
 * timeout at all. */
static void *share_thread(void *arg)
{
    struct share *sh = arg;
    int64_t hold_until = 0; /* no scan before this (monotonic ms) but for a waiter */
    uint64_t done = 0;      /* wait_done as this thread last set it */

    /* Relative to what the peer runs at (it may itself run under nice).
     * Raising one's own nice value needs no privilege; failing it only
     * costs the queries some CPU. */
    errno = 0;
    int prio = getpriority(PRIO_PROCESS, (id_t)gettid());
    if (errno == 0 && setpriority(PRIO_PROCESS, (id_t)gettid(),
                                  prio + SHARE_THREAD_NICE > 19 ? 19 : prio + SHARE_THREAD_NICE) != 0)
        log_msg(L_DEBUG, "share: cannot lower the scanner's priority: %s", strerror(errno));
    int pending = 0; /* a nudge or a change came while a hold lasted: check after it */
    while (!atomic_load(&sh->stop)) {
        struct pollfd pf[2] = {{.fd = sh->wake_fd, .events = POLLIN},
                               {.fd = -1, .events = POLLIN}};
        int64_t now = mono_ms(), timeout = -1;

        if (now < hold_until) {
            timeout = hold_until - now; /* changes wait; only a nudge gets through */
        } else if (pending || atomic_load(&sh->dirty)) {
            timeout = 0;
        } else if (sh->ifd >= 0) {
            pf[1].fd = sh->ifd;
        } else {
            timeout = (int64_t)sh->last_scan.tv_sec * 1000 + sh->last_scan.tv_nsec / 1000000 +
                      SHARE_POLL_SEC * 1000 - now;
            if (timeout < 0)
                timeout = 0;
        }
        int64_t recheck = atomic_load(&sh->recheck_at);
        if (recheck && now >= hold_until) {
            int64_t t = recheck > now ? recheck - now : 0;
            if (timeout < 0 || t < timeout)
                timeout = t;
        }
        int n = poll(pf, 2, (int)timeout);
        if (n < 0 && errno != EINTR) {
            log_msg(L_ERROR, "share: poll: %s; the index of %s is no longer updated",
                    strerror(errno), sh->dir);
            break;
        }
        if (atomic_load(&sh->stop))
            break;
        if (pf[0].revents) {
            share_drain_wake(sh);
            pending = 1;
        }
        if (pf[1].revents)
            pending = 1;
        pthread_mutex_lock(&sh->wait_mu);
        uint64_t ticket = sh->wait_req;
        pthread_mutex_unlock(&sh->wait_mu);
        int waiter = ticket != done;
        if (recheck && mono_ms() >= recheck &&
            atomic_compare_exchange_strong(&sh->recheck_at, &recheck, 0))
            atomic_store(&sh->dirty, 1); /* the racy files are trustworthy now */
        /* A hold that merely ran out is no reason to look again: only a
         * nudge, a change, a waiter or (without inotify) the poll period is.
         * Checking every time a hold ends kept an idle share polling at
         * 20 Hz after its first nudge. */
        int due = pending || atomic_load(&sh->dirty) ||
                  (sh->ifd < 0 && n == 0 && now >= hold_until); /* the poll period is up */
        if (!waiter && (mono_ms() < hold_until || !due))
            continue;
        pending = 0;
        fs_status st = share_check(sh, waiter);
        now = mono_ms();
        if (st && st != FS_ECANCELED)
            hold_until = now + SHARE_POLL_SEC * 1000; /* retry, but not in a loop */
        else
            hold_until = now + (atomic_load(&sh->dirty) ? SHARE_SETTLE_MS : SHARE_SCAN_GAP_MS);
        if (waiter) {
            pthread_mutex_lock(&sh->wait_mu);
            sh->wait_done = done = ticket;
            sh->wait_st = st;
            pthread_cond_broadcast(&sh->wait_cv);
            pthread_mutex_unlock(&sh->wait_mu);
        }
    }
    return NULL;
}

/* Starts share_thread() with a small stack and every signal blocked (the
 * daemon's sigwait() thread handles them). FS_OK or FS_ENOMEM. */
static fs_status share_start_thread(struct share *sh)
{
    pthread_attr_t at;
    sigset_t all, old;
    int rc;

    if (pthread_attr_init(&at) != 0)
        return FS_ENOMEM;
    rc = pthread_attr_setstacksize(&at, SHARE_THREAD_STACK);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if (!rc)
        rc = pthread_create(&sh->thread, &at, share_thread, sh);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&at);
    if (rc) {
        log_msg(L_ERROR, "share: cannot start the scanner of %s: %s", sh->dir, strerror(rc));
        return FS_ENOMEM;
    }
    sh->thread_started = 1;
    return FS_OK;
}

/* Stops and joins the thread, if it runs; a scan in progress gives up at
 * its next read. */
static void share_stop_thread(struct share *sh)
{
    if (!sh->thread_started)
        return;
    atomic_store(&sh->stop, 1);
    share_wake(sh);
    pthread_join(sh->thread, NULL);
    sh->thread_started = 0;
}

/* --- open, close, refresh -------------------------------------------------- */

/* Frees sh without saving anything. Its thread must be gone. */
static void share_free(struct share *sh)
{
    if (!sh)
        return;
    if (sh->ifd >= 0)
        close(sh->ifd);
    if (sh->wake_fd >= 0)
        close(sh->wake_fd);
    if (sh->root_fd >= 0)
        close(sh->root_fd);
    entries_free(sh->items, sh->n_items);
    free(sh->by_name);
    free(sh->cache);
    pthread_mutex_destroy(&sh->mu);
    pthread_mutex_destroy(&sh->scan_mu);
    pthread_mutex_destroy(&sh->wait_mu);
    pthread_mutex_destroy(&sh->adopt_mu);
    pthread_cond_destroy(&sh->wait_cv);
    free(sh->dir);
    free(sh);
}

/* Initialises the locks, the condition variable and wake_fd of sh. */
static fs_status share_init_sync(struct share *sh)
{
    pthread_condattr_t ca;

    pthread_mutex_init(&sh->scan_mu, NULL);
    pthread_mutex_init(&sh->mu, NULL);
    pthread_mutex_init(&sh->wait_mu, NULL);
    pthread_mutex_init(&sh->adopt_mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sh->wait_cv, &ca);
    pthread_condattr_destroy(&ca);
    sh->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return sh->wake_fd < 0 ? FS_EIO : FS_OK;
}

/* The name of the folder fd holds, malloc'd: what /proc says it is now
 * (exact, whatever links dir went through), else dir made absolute. For
 * messages only; nothing is ever opened by it. */
static char *root_name(int fd, const char *dir)
{
    char self[64], buf[PATH_MAX];
    ssize_t n;

    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    n = readlink(self, buf, sizeof buf - 1);
    if (n > 0 && buf[0] == '/') {
        buf[n] = '\0';
        return strdup(buf);
    }
    char *real = realpath(dir, NULL);
    return real ? real : strdup(dir);
}

struct share *share_open(const char *dir, fs_status *st)
{
    struct share *sh = NULL;
    int fd;

    /* The one time the share is reached by its name: from here on it is
     * this descriptor (the configured path was resolved once, now). */
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        *st = errno == ENOENT ? FS_ENOTFOUND : errno == ENOTDIR ? FS_EINVAL : FS_EIO;
        return NULL;
    }
    *st = FS_ENOMEM;
    sh = calloc(1, sizeof *sh);
    if (!sh) {
        close(fd);
        return NULL;
    }
    sh->root_fd = fd;
    sh->ifd = -1;
    sh->wake_fd = -1;
    atomic_init(&sh->dirty, 1);
    atomic_init(&sh->stop, 0);
    *st = share_init_sync(sh);
    if (*st)
        goto fail;
    *st = FS_ENOMEM;
    sh->dir = root_name(fd, dir);
    if (!sh->dir)
        goto fail;
    cache_load(sh);
    /* The first index is built here, so that a share that cannot be read
     * fails to open and an opened one answers at once. */
    pthread_mutex_lock(&sh->scan_mu);
    *st = index_rescan(sh, 1);
    pthread_mutex_unlock(&sh->scan_mu);
    if (!*st)
        *st = share_start_thread(sh);
    if (*st)
        goto fail;
    log_msg(L_INFO, "share: %s is held open; paths below it are opened %s", sh->dir,
            share_beneath_walks() ? "one component at a time with O_NOFOLLOW (no openat2)"
                                  : "with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)");
    return sh;
fail:
    /* Not share_close(): a failed open must not overwrite a good cache
     * with what little it loaded. */
    share_free(sh);
    return NULL;
}

void share_close(struct share *sh)
{
    if (!sh)
        return;
    share_stop_thread(sh);
    if (sh->cache_unsaved)
        cache_save(sh);
    share_free(sh);
}

const char *share_dir(const struct share *sh)
{
    return sh->dir;
}

int share_root_fd(const struct share *sh)
{
    return sh->root_fd;
}

fs_status share_refresh(struct share *sh)
{
    share_wake(sh);
    return FS_OK;
}

fs_status share_refresh_wait(struct share *sh, int timeout_ms)
{
    struct timespec dl;
    fs_status st = FS_ETIMEDOUT;
    uint64_t ticket;
    int rc = 0;

    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&sh->wait_mu);
    ticket = ++sh->wait_req;
    pthread_mutex_unlock(&sh->wait_mu);
    share_wake(sh);
    pthread_mutex_lock(&sh->wait_mu);
    while (sh->wait_done < ticket && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&sh->wait_cv, &sh->wait_mu, &dl);
    if (sh->wait_done >= ticket)
        st = sh->wait_st;
    pthread_mutex_unlock(&sh->wait_mu);
    return st;
}

void share_set_hash_hook(struct share *sh, share_hash_hook fn, void *arg)
{
    pthread_mutex_lock(&sh->scan_mu);
    sh->hook = fn;
    sh->hook_arg = arg;
    pthread_mutex_unlock(&sh->scan_mu);
}

void share_set_change_hook(struct share *sh, share_change_fn fn, void *arg)
{
    pthread_mutex_lock(&sh->scan_mu);
    sh->change_fn = fn;
    sh->change_arg = arg;
    pthread_mutex_unlock(&sh->scan_mu);
}

void share_set_read_hook(struct share *sh, share_read_hook fn, void *arg)
{
    pthread_mutex_lock(&sh->scan_mu);
    sh->read_hook = fn;
    sh->read_hook_arg = arg;
    pthread_mutex_unlock(&sh->scan_mu);
}

void share_mark_dirty(struct share *sh)
{
    atomic_store(&sh->dirty, 1);
    share_wake(sh);
}

fs_status share_remove(struct share *sh, const char *name, enum msg_kind *kind)
{
    struct stat st;

    if (!name || !name_valid(name, strlen(name)))
        return FS_EBADNAME;
    /* The state folder holds partial downloads and the hash cache: it is
     * not an item, and hidden from the index, so it is not removable either. */
    if (strcmp(name, SHARE_STATE_DIR) == 0)
        return FS_EREFUSED;
    if (fstatat(sh->root_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT || errno == ENOTDIR ? FS_ENOTFOUND : FS_EIO;
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
        errno = S_ISLNK(st.st_mode) ? ELOOP : EINVAL;
        return FS_EREFUSED;
    }
    *kind = S_ISDIR(st.st_mode) ? MSG_KIND_FOLDER : MSG_KIND_FILE;
    /* Renamed or replaced since the fstatat? zipio_remove_at() follows no
     * link either, and stays beneath root_fd whatever it meets. */
    fs_status rs = zipio_remove_at(sh->root_fd, name);
    int err = errno; /* why it failed, past the wake-up's write */
    share_mark_dirty(sh);
    errno = err;
    return rs;
}

/* First position in by_name whose item's name is not below name. Called
 * with mu held. */
static size_t names_lower_bound(const struct share *sh, const char *name)
{
    size_t lo = 0, hi = sh->n_items;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(sh->by_name[mid]->name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

size_t share_find(struct share *sh, const char *name, struct share_item *out, size_t max)
{
    size_t total = 0;

    if (!name)
        return 0;
    pthread_mutex_lock(&sh->mu);
    for (size_t i = names_lower_bound(sh, name); i < sh->n_items; i++) {
        const struct entry *e = sh->by_name[i];
        if (strcmp(e->name, name) != 0)
            break;
        if (total < max)
            entry_to_item(e, &out[total]);
        total++;
    }
    pthread_mutex_unlock(&sh->mu);
    return total;
}

fs_status share_lookup(struct share *sh, const char *path, struct share_item *out)
{
    fs_status st = FS_ENOTFOUND;
    size_t i;

    memset(out, 0, sizeof *out);
    if (!path || !path_valid(path, strlen(path)))
        return FS_EBADNAME;
    pthread_mutex_lock(&sh->mu);
    i = entries_lower_bound(sh->items, sh->n_items, path);
    if (i < sh->n_items && strcmp(sh->items[i].path, path) == 0) {
        entry_to_item(&sh->items[i], out);
        st = FS_OK;
    }
    pthread_mutex_unlock(&sh->mu);
    return st;
}

/* The entries below folder index i: [i + 1, end). Called with mu held. */
static size_t folder_end(const struct share *sh, size_t i)
{
    size_t plen = strlen(sh->items[i].path), j = i + 1;

    while (j < sh->n_items && strncmp(sh->items[j].path, sh->items[i].path, plen) == 0 &&
           sh->items[j].path[plen] == '/')
        j++;
    return j;
}

fs_status share_folder_roots(struct share *sh, const char *path, const char *root,
                            unsigned char **out, uint64_t *n)
{
    fs_status st = FS_ENOTFOUND;
    size_t i, files = 0, k = 0;

    *out = NULL;
    *n = 0;
    if (!path || !path_valid(path, strlen(path)))
        return FS_EBADNAME;
    pthread_mutex_lock(&sh->mu);
    i = entries_lower_bound(sh->items, sh->n_items, path);
    if (i < sh->n_items && strcmp(sh->items[i].path, path) == 0 &&
        sh->items[i].kind == MSG_KIND_FOLDER) {
        size_t end = folder_end(sh, i);
        st = !sh->items[i].root[0] ? FS_ENOTSUP
             : strcmp(sh->items[i].root, root) != 0 ? FS_EMISMATCH : FS_OK;
        for (size_t j = i + 1; st == FS_OK && j < end; j++)
            files += sh->items[j].kind == MSG_KIND_FILE;
        if (st == FS_OK && !(*out = malloc(files ? files * PIECES_HASH_LEN : 1)))
            st = FS_ENOMEM;
        for (size_t j = i + 1; st == FS_OK && j < end; j++)
            if (sh->items[j].kind == MSG_KIND_FILE &&
                pieces_root_bin(sh->items[j].root, *out + k++ * PIECES_HASH_LEN))
                st = FS_ENOTSUP; /* cannot happen: the folder root needed them all */
    }
    pthread_mutex_unlock(&sh->mu);
    if (st) {
        free(*out);
        *out = NULL;
        return st;
    }
    *n = files;
    return FS_OK;
}

fs_status share_manifest(struct share *sh, const char *path, char **text, size_t *len)
{
    char line[MANIFEST_LINE_MAX];
    fs_status st = FS_ENOTFOUND;
    size_t cap = 0, used = 0;
    char *buf = NULL;

    *text = NULL;
    *len = 0;
    if (!path || !path_valid(path, strlen(path)))
        return FS_EBADNAME;
    pthread_mutex_lock(&sh->mu);
    size_t i = entries_lower_bound(sh->items, sh->n_items, path);
    if (i < sh->n_items && strcmp(sh->items[i].path, path) == 0 &&
        sh->items[i].kind == MSG_KIND_FOLDER) {
        size_t strip = strlen(path) + 1, end = folder_end(sh, i);
        st = FS_OK;
        for (size_t j = i + 1; j < end && st == FS_OK; j++) {
            int n = manifest_line(&sh->items[j], strip, line);
            if (n < 0) {
                st = FS_ETOOBIG;
                break;
            }
            if (used + (size_t)n + 1 > cap) {
                size_t ncap = cap ? cap * 2 : 4096;
                while (ncap < used + (size_t)n + 1)
                    ncap *= 2;
                char *bigger = realloc(buf, ncap);
                if (!bigger) {
                    st = FS_ENOMEM;
                    break;
                }
                buf = bigger;
                cap = ncap;
            }
            memcpy(buf + used, line, (size_t)n);
            used += (size_t)n;
        }
    }
    pthread_mutex_unlock(&sh->mu);
    if (st) {
        free(buf);
        return st;
    }
    if (!buf && !(buf = malloc(1)))
        return FS_ENOMEM;
    buf[used] = '\0';
    *text = buf;
    *len = used;
    return FS_OK;
}

long share_list(struct share *sh, struct share_item **out)
{
    struct share_item *v = NULL;
    size_t n = 0;

    *out = NULL;
    pthread_mutex_lock(&sh->mu);
    for (size_t i = 0; i < sh->n_items; i++)
        n += strchr(sh->items[i].path, '/') == NULL;
    if (n) {
        v = malloc(n * sizeof *v);
        if (!v) {
            pthread_mutex_unlock(&sh->mu);
            return FS_ENOMEM;
        }
    }
    /* At depth 1 path and name are equal, so path order is name order. */
    n = 0;
    for (size_t i = 0; i < sh->n_items; i++)
        if (!strchr(sh->items[i].path, '/'))
            entry_to_item(&sh->items[i], &v[n++]);
    pthread_mutex_unlock(&sh->mu);
    *out = v;
    return (long)n;
}

/* --- confinement ---------------------------------------------------------- */

/* 1: never call openat2(), walk instead. Set for good the first time the
 * kernel says it has no openat2 (ENOSYS), or from the start when the
 * environment has FLOODSHARE_TEST_NO_OPENAT2 set (tests run the fallback
 * with it; both ways are confined, so it weakens nothing). */
static atomic_int beneath_walk_only;
static pthread_once_t beneath_once = PTHREAD_ONCE_INIT;

static void beneath_init(void)
{
    const char *v = getenv("FLOODSHARE_TEST_NO_OPENAT2");
    struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC};
    long fd;

    if (v && *v && strcmp(v, "0") != 0) {
        atomic_store(&beneath_walk_only, 1);
        return;
    }
    /* Ask once, so that the share can say which way it is confined. */
    fd = syscall(SYS_openat2, AT_FDCWD, ".", &how, sizeof how);
    if (fd >= 0)
        close((int)fd);
    else if (errno == ENOSYS)
        atomic_store(&beneath_walk_only, 1);
}

void share_beneath_set_walk(int on)
{
    pthread_once(&beneath_once, beneath_init);
    atomic_store(&beneath_walk_only, on ? 1 : 0);
}

int share_beneath_walks(void)
{
    pthread_once(&beneath_once, beneath_init);
    return atomic_load(&beneath_walk_only);
}

/* The status of an open of name in dfd that failed with err: FS_EREFUSED
 * (errno ELOOP) when name is a symbolic link, FS_ENOTFOUND when it is
 * missing or its parent was no folder, FS_EEXIST for O_EXCL, FS_EIO
 * otherwise (errno err). */
static fs_status beneath_why(int dfd, const char *name, int err)
{
    struct stat sb;

    if (err == ELOOP || err == ENOTDIR || err == EXDEV) {
        /* ENOTDIR: O_DIRECTORY | O_NOFOLLOW on a link says that. */
        if (err != ENOTDIR ||
            (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(sb.st_mode))) {
            errno = ELOOP;
            return FS_EREFUSED;
        }
    }
    errno = err;
    if (err == ENOENT || err == ENOTDIR)
        return FS_ENOTFOUND;
    if (err == EEXIST)
        return FS_EEXIST;
    return FS_EIO;
}

/* An O_PATH | O_NOFOLLOW open of a link gives the link itself: refuse it. */
static fs_status beneath_not_link(int fd, int flags)
{
    struct stat sb;

    if (!(flags & O_PATH))
        return FS_OK;
    if (fstat(fd, &sb) != 0) {
        int err = errno;
        close(fd);
        errno = err;
        return FS_EIO;
    }
    if (S_ISLNK(sb.st_mode)) {
        close(fd);
        errno = ELOOP;
        return FS_EREFUSED;
    }
    return FS_OK;
}

/* The kernel's own confinement (Linux 5.6+). 1 when it answered (*st set,
 * *out on FS_OK), 0 when the walk must answer: the kernel has no openat2,
 * or only the walk can tell what an ENOTDIR was about. */
static int beneath_openat2(int dirfd, const char *rel, int flags, mode_t mode, int *out,
                           fs_status *st)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
        .mode = (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (uint64_t)mode : 0,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    long fd;

    /* EAGAIN: a rename raced the lookup and the kernel would rather we
     * asked again than guess; EINTR: a signal. */
    for (int tries = 0;; tries++) {
        fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
        if (fd >= 0 || (errno != EAGAIN && errno != EINTR) || tries >= 16)
            break;
    }
    if (fd < 0 && errno == ENOSYS) {
        atomic_store(&beneath_walk_only, 1);
        return 0;
    }
    /* ENOTDIR may be a file where a folder was expected or, for an
     * O_DIRECTORY open, a link at the end: the walk tells which
     * (it is confined too). */
    if (fd < 0 && errno == ENOTDIR)
        return 0;
    if (fd < 0) {
        int err = errno;
        if (err == ELOOP || err == EXDEV) {
            errno = ELOOP;
            *st = FS_EREFUSED;
        } else {
            *st = beneath_why(dirfd, rel, err);
        }
        return 1;
    }
    *st = beneath_not_link((int)fd, flags);
    if (*st == FS_OK)
        *out = (int)fd;
    return 1;
}

/* The fall-back: one component at a time, each opened with O_NOFOLLOW
 * relative to the folder before it, so no link is ever followed, and what
 * is opened last is below dirfd whatever is renamed meanwhile. */
static fs_status beneath_walk(int dirfd, const char *rel, int flags, mode_t mode, int *out)
{
    char comp[NAME_MAX_LEN + 1];
    int cur = dirfd, fd;
    fs_status st;

    for (const char *p = rel;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        memcpy(comp, p, len);
        comp[len] = '\0';
        if (!slash) {
            fd = openat(cur, comp, flags | O_NOFOLLOW | O_CLOEXEC, mode);
            st = fd < 0 ? beneath_why(cur, comp, errno) : beneath_not_link(fd, flags);
            if (st == FS_OK)
                *out = fd;
            break;
        }
        fd = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            st = beneath_why(cur, comp, errno);
            break;
        }
        if (cur != dirfd)
            close(cur);
        cur = fd;
        p = slash + 1;
    }
    if (cur != dirfd) {
        int err = errno;
        close(cur);
        errno = err;
    }
    return st;
}

fs_status share_open_beneath(int dirfd, const char *rel, int flags, mode_t mode, int *out)
{
    fs_status st = FS_EIO;

    *out = -1;
    if (!rel || !path_valid(rel, strlen(rel)))
        return FS_EBADNAME;
    if (dirfd < 0) {
        errno = EBADF;
        return FS_EINVAL;
    }
    if (!share_beneath_walks() && beneath_openat2(dirfd, rel, flags, mode, out, &st))
        return st;
    return beneath_walk(dirfd, rel, flags, mode, out);
}

fs_status share_openat(const struct share *sh, const char *rel, int flags, int *fd)
{
    return share_open_beneath(sh->root_fd, rel, flags & ~O_CREAT, 0, fd);
}

/* --- share_digest --------------------------------------------------------- */

static fs_status digest_folder(int fd, const char *name, uint64_t *size, uint64_t *files,
                               char md5[MSG_MD5_LEN + 1])
{
    struct walk w = {.root = name, .ifd = -1, .strict = 1, .eager = 1, .pieces_fd = -1};
    fs_status st = walk_tree(&w, fd);

    if (!st)
        st = manifest_digest(w.v, w.n, 0, md5, size, files);
    entries_free(w.v, w.n);
    return st;
}

fs_status share_digest_at(int dirfd, const char *name, enum msg_kind *kind, uint64_t *size,
                          uint64_t *files, char md5[MSG_MD5_LEN + 1])
{
    uint64_t sz = 0, nf = 0;
    struct stat sb;
    fs_status st = FS_EIO;
    enum msg_kind k = MSG_KIND_FILE;
    int fd;

    md5[0] = '\0';
    fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        st = errno == ENOENT ? FS_ENOTFOUND : errno == ELOOP ? FS_EREFUSED : FS_EIO;
        goto out;
    }
    if (fstat(fd, &sb) != 0)
        goto out;
    if (S_ISREG(sb.st_mode)) {
        st = hash_md5_fd(fd, md5, &sz);
        nf = 1;
    } else if (S_ISDIR(sb.st_mode)) {
        k = MSG_KIND_FOLDER;
        st = digest_folder(fd, name, &sz, &nf, md5);
        fd = -1;
    } else {
        st = FS_EINVAL;
    }
out:
    if (fd >= 0)
        close(fd);
    if (st)
        md5[0] = '\0';
    if (kind)
        *kind = st ? 0 : k;
    if (size)
        *size = st ? 0 : sz;
    if (files)
        *files = st ? 0 : nf;
    return st;
}
