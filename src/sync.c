/* sync.c - one sync of an item with another peer M (sync.h, docs/SYNC.md):
 * M's listing against N's copy and the sync state, then each file fetched
 * (seeded from N's own copy) into the state folder and swapped in. */

#include "floodshare/sync.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "floodshare/browse.h"
#include "floodshare/cfg.h"
#include "floodshare/cmd_browse.h"
#include "floodshare/ctl.h"
#include "floodshare/json.h"
#include "floodshare/listing.h"
#include "floodshare/log.h"
#include "floodshare/name.h"
#include "floodshare/net.h"
#include "floodshare/node.h"
#include "floodshare/partial.h"
#include "floodshare/pieces.h"
#include "floodshare/share.h"
#include "floodshare/statedir.h"
#include "floodshare/syncstate.h"
#include "floodshare/trace.h"
#include "floodshare/xfer.h"

/* Entries (files and folders) one side of a sync may hold: M's listing is
 * outside input, so it is bounded before it is believed. */
#define SYNC_ENTRIES_MAX 100000u
/* N's copy is walked recursively, about 1.2 KiB of stack a level: bounded
 * so that a sync fits a worker's or a control thread's stack. */
#define SYNC_DEPTH_MAX 64
#define SYNC_WAIT_MS 300 /* between two listings while M is still hashing */
#define SYNC_JSON_MAX (32u * 1024 * 1024)
#define SYNC_TMP ".sync" /* "<md5>.sync": a verified file in the state folder, swapped in */

/* One entry of either side: path from NAME's parent folder ("NAME/a/b"). */
struct sitem {
    char *path;
    enum msg_kind kind;
    struct listing_entry e; /* M: as listed (name: the last component) */
    struct syncstate_ver v; /* N: md5 ("" unknown), size, mtime from the index */
    char root[MSG_ROOT_LEN + 1]; /* N: its piece root, "" none */
};

struct slist {
    struct sitem *v;
    size_t n, cap;
};

/* What one file did, for its line and --json. */
struct sfile {
    char *path;
    const char *action; /* "updated", "new", "removed", "conflict", "extra", "failed" */
    char kept[NAME_MAX_LEN + 1]; /* conflict: the name it was kept as */
    uint64_t bytes, reused;
};

struct sync_ctx {
    const struct cmd_env *e;
    const char *name;
    struct fs_addr from;
    char from_s[ADDR_STR_MAX];
    char peer[ADDR_STR_MAX]; /* M's id, else its address: the conflict names' PEER */
    unsigned peer_id;
    unsigned flags;
    struct ctl_out *o;
    struct sync_result *res;
    uint64_t t0, deadline;
    int root, state, syncdir;
    struct syncstate old;
    struct slist m, n;
    struct syncstate_file *recs; /* the new state's records (paths owned here) */
    size_t nrecs, caprecs;
    struct sfile *files;
    size_t nfiles, capfiles;
    uint64_t total, done_before; /* progress: bytes to move, and moved by earlier files */
    uint64_t seeded;             /* the file being fetched: bytes partial_seed() copied */
    int fetch_failed;            /* a fetch from M failed: the rest would wait on it too */
    int seed_fd;
    const unsigned char *seed_list;
    uint64_t seed_n, seed_size, seed_piece;
};

/* --- one sync of a name at a time per node: its records would race --- */

#define SYNC_RUNNING_MAX 64
static pthread_mutex_t running_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    const struct node *node;
    char name[NAME_MAX_LEN + 1];
} running[SYNC_RUNNING_MAX];

static int running_take(const struct node *n, const char *name)
{
    int slot = -1;
    pthread_mutex_lock(&running_lock);
    for (int i = 0; i < SYNC_RUNNING_MAX; i++) {
        if (running[i].node == n && strcmp(running[i].name, name) == 0) {
            slot = -2;
            break;
        }
        if (!running[i].node && slot == -1)
            slot = i;
    }
    if (slot >= 0) {
        running[slot].node = n;
        snprintf(running[slot].name, sizeof running[slot].name, "%s", name);
    }
    pthread_mutex_unlock(&running_lock);
    return slot;
}

static void running_give(int slot)
{
    if (slot < 0)
        return;
    pthread_mutex_lock(&running_lock);
    running[slot].node = NULL;
    running[slot].name[0] = '\0';
    pthread_mutex_unlock(&running_lock);
}

/* --- small helpers --- */

static int failf(struct sync_ctx *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records why the sync failed (the first reason wins) and returns -1. */
static int failf(struct sync_ctx *s, const char *fmt, ...)
{
    if (!s->res->error[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->res->error, sizeof s->res->error, fmt, ap);
        va_end(ap);
    }
    s->res->code = CTL_EXIT_FAIL;
    return -1;
}

static int slist_add(struct slist *l, const char *path, struct sitem **out)
{
    if (l->n >= SYNC_ENTRIES_MAX)
        return -1;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct sitem *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    struct sitem *it = &l->v[l->n];
    memset(it, 0, sizeof *it);
    if (!(it->path = strdup(path)))
        return -1;
    l->n++;
    *out = it;
    return 0;
}

static void slist_free(struct slist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].path);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int item_cmp(const void *a, const void *b)
{
    return strcmp(((const struct sitem *)a)->path, ((const struct sitem *)b)->path);
}

/* Joins dir and name into out; -1 when the result is not a path_valid()
 * path: M's names are outside input, and whatever the listing parser
 * accepted, no path a sync writes may leave NAME (no "..", nothing
 * absolute, no empty component). */
static int join(char *out, size_t cap, const char *dir, const char *name)
{
    int k = dir[0] ? snprintf(out, cap, "%s/%s", dir, name) : snprintf(out, cap, "%s", name);
    if (k < 0 || (size_t)k >= cap || !path_valid(out, (size_t)k))
        return -1;
    return 0;
}

static int add_file(struct sync_ctx *s, const char *path, const char *action, const char *kept,
                    uint64_t bytes, uint64_t reused)
{
    if (s->nfiles == s->capfiles) {
        size_t cap = s->capfiles ? s->capfiles * 2 : 32;
        struct sfile *v = realloc(s->files, cap * sizeof *v);
        if (!v)
            return -1;
        s->files = v;
        s->capfiles = cap;
    }
    struct sfile *f = &s->files[s->nfiles];
    memset(f, 0, sizeof *f);
    if (!(f->path = strdup(path)))
        return -1;
    f->action = action;
    snprintf(f->kept, sizeof f->kept, "%s", kept ? kept : "");
    f->bytes = bytes;
    f->reused = reused;
    s->nfiles++;
    if (!(s->flags & SYNC_JSON) && s->o) {
        if (kept)
            ctl_print(s->o, 1, "%-9s %s: kept as %s", "conflict", path, kept);
        else
            ctl_print(s->o, 1, "%-9s %s", action, path);
    }
    return 0;
}

/* Records that N's file at path is now v (the next sync compares with it). */
static int add_rec(struct sync_ctx *s, const char *path, const struct syncstate_ver *v)
{
    if (s->nrecs == s->caprecs) {
        size_t cap = s->caprecs ? s->caprecs * 2 : 32;
        struct syncstate_file *r = realloc(s->recs, cap * sizeof *r);
        if (!r)
            return -1;
        s->recs = r;
        s->caprecs = cap;
    }
    if (!(s->recs[s->nrecs].path = strdup(path)))
        return -1;
    s->recs[s->nrecs].v = *v;
    s->nrecs++;
    return 0;
}

/* Saves the records gathered so far: a sync cut off keeps what it
 * finished, and the next one compares with that. */
static void save_state(struct sync_ctx *s)
{
    char fname[NAME_MAX_LEN + 1];
    struct syncstate st = {.from = s->from, .files = s->recs, .n = s->nrecs};

    if (s->syncdir < 0 || syncstate_file_name(s->name, fname) != FS_OK)
        return;
    syncstate_sort(&st);
    if (syncstate_save_at(s->syncdir, fname, &st) != FS_OK)
        log_msg(L_WARN, "sync %s: cannot save its state: %s", s->name, strerror(errno));
}

/* Opens the folder at rel below the share (creating what is missing when
 * create), one component at a time with O_NOFOLLOW: a link anywhere on the
 * way is refused, never crossed, so nothing lands outside NAME. */
static int open_dir(struct sync_ctx *s, const char *rel, int create, int *out)
{
    char buf[PATH_MAX_LEN + 1];
    int fd = dup(s->root);

    *out = -1;
    if (fd < 0)
        return -1;
    snprintf(buf, sizeof buf, "%s", rel);
    for (char *p = buf, *slash; p && *p; p = slash ? slash + 1 : NULL) {
        slash = strchr(p, '/');
        if (slash)
            *slash = '\0';
        if (create && mkdirat(fd, p, 0755) < 0 && errno != EEXIST) {
            close(fd);
            return -1;
        }
        int next = openat(fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(fd);
        if (next < 0)
            return -1;
        fd = next;
    }
    *out = fd;
    return 0;
}

/* The parent folder of path and its last component. */
static int open_parent(struct sync_ctx *s, const char *path, int create, int *dir,
                       const char **base)
{
    char parent[PATH_MAX_LEN + 1];
    const char *slash = strrchr(path, '/');

    snprintf(parent, sizeof parent, "%.*s", slash ? (int)(slash - path) : 0, path);
    *base = slash ? slash + 1 : path;
    return open_dir(s, parent, create, dir);
}

/* --- M's side: the listing --- */

/* Appends every entry of M's folder dir (all its pages) under dir. An
 * entry added or removed at M between two pages shifts the offsets
 * (docs/PROTOCOL.md, BROWSE): when a page's total differs from the first
 * page's, the folder is listed again from its start, a few times at most. */
#define SYNC_RELIST_MAX 4
static int list_folder(struct sync_ctx *s, struct browse_conn *bc, const char *dir,
                       const char *only)
{
    char err[512], path[PATH_MAX_LEN + 1];
    uint64_t offset = 0, first_total = 0;
    size_t start = s->m.n;
    unsigned tries = 0;

    for (;;) {
        struct browse_result r;
        fs_status st = browse_fetch_page(bc, dir, offset, &r, err, sizeof err);
        if (st)
            return failf(s, "listing \"%s\" at %s: %s", dir[0] ? dir : "/", s->from_s, err);
        s->peer_id = r.peer;
        if (offset == 0) {
            first_total = r.total;
        } else if (r.total != first_total) { /* it moved under us: from the start again */
            browse_result_free(&r);
            while (s->m.n > start)
                free(s->m.v[--s->m.n].path);
            if (++tries >= SYNC_RELIST_MAX)
                return failf(s, "listing \"%s\" at %s: it keeps changing", dir, s->from_s);
            offset = 0;
            continue;
        }
        for (size_t i = 0; i < r.count; i++) {
            struct sitem *it;
            if (only && strcmp(r.entries[i].name, only) != 0)
                continue;
            if (join(path, sizeof path, dir, r.entries[i].name) < 0) {
                browse_result_free(&r);
                return failf(s, "listing \"%s\" at %s: \"%s\" is not a name a sync may write",
                             dir, s->from_s, r.entries[i].name);
            }
            if (slist_add(&s->m, path, &it) < 0) {
                browse_result_free(&r);
                return failf(s, "%s lists more than %u entries under %s", s->from_s,
                             SYNC_ENTRIES_MAX, s->name);
            }
            it->kind = r.entries[i].kind;
            it->e = r.entries[i];
        }
        offset = r.next;
        uint64_t total = r.total;
        browse_result_free(&r);
        if (offset >= total)
            return 0;
    }
}

/* M's item NAME and, for a folder, everything below it. 1 when some file
 * is not hashed yet at M (list again later), 0 when complete, -1. */
static int list_m(struct sync_ctx *s)
{
    struct browse_conn bc;
    char err[512];
    int pending = 0;

    slist_free(&s->m);
    if (browse_connect(s->e->node, &s->from, &bc, err, sizeof err) != FS_OK)
        return failf(s, "%s", err);
    int rc = list_folder(s, &bc, "", s->name);
    if (rc == 0 && s->m.n == 0)
        rc = failf(s, "not found: %s has no \"%s\"", s->from_s, s->name);
    for (size_t i = 0; rc == 0 && i < s->m.n; i++) /* grows while it walks */
        if (s->m.v[i].kind == MSG_KIND_FOLDER)
            rc = list_folder(s, &bc, s->m.v[i].path, NULL);
    browse_close(&bc);
    for (size_t i = 0; rc == 0 && i < s->m.n; i++)
        if (s->m.v[i].kind == MSG_KIND_FILE && !s->m.v[i].e.md5[0])
            pending = 1;
    if (rc == 0 && s->m.n)
        qsort(s->m.v, s->m.n, sizeof *s->m.v, item_cmp);
    return rc < 0 ? -1 : pending;
}

/* Lists M until every file has its MD5 (and so its root, computed in the
 * same pass), at most until the deadline: a file still hashing at M is
 * waited for rather than copied whole. */
static int wait_for_m(struct sync_ctx *s)
{
    for (;;) {
        int rc = list_m(s);
        if (rc <= 0)
            return rc;
        if (net_now_ms() + SYNC_WAIT_MS >= s->deadline)
            return failf(s, "%s has not hashed everything of \"%s\" yet: try again later",
                         s->from_s, s->name);
        if (s->o && ctl_client_gone(s->o))
            return failf(s, "cancelled");
        struct timespec ts = {0, SYNC_WAIT_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* --- N's side: its copy, from the disk walked without links, versions
 * from the share's index --- */

static void n_version(struct sync_ctx *s, struct share *sh, struct sitem *it,
                      const struct stat *sb)
{
    struct share_item si;

    it->v.size = (uint64_t)sb->st_size;
    it->v.mtime = sb->st_mtim;
    if (share_lookup(sh, it->path, &si) == FS_OK && si.kind == MSG_KIND_FILE &&
        si.size == (uint64_t)sb->st_size && si.mtime.tv_sec == sb->st_mtim.tv_sec &&
        si.mtime.tv_nsec == sb->st_mtim.tv_nsec) {
        memcpy(it->v.md5, si.md5, sizeof it->v.md5);
        memcpy(it->root, si.root, sizeof it->root);
    } /* else "": not what the index hashed, so unlike every version: never lost */
}

static int walk_n(struct sync_ctx *s, struct share *sh, const char *dir, int dfd, unsigned depth)
{
    int fd = dup(dfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;
    char path[PATH_MAX_LEN + 1];
    int rc = 0;

    if (!d) {
        if (fd >= 0)
            close(fd);
        return failf(s, "cannot read \"%s\" here: %s", dir, strerror(errno));
    }
    while (rc == 0 && (de = readdir(d)) != NULL) {
        struct stat sb;
        struct sitem *it;
        if (!name_valid(de->d_name, strlen(de->d_name)) || join(path, sizeof path, dir,
                                                                de->d_name) < 0)
            continue; /* ".", "..", and what the share never lists */
        if (fstatat(dfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
            !(S_ISREG(sb.st_mode) || S_ISDIR(sb.st_mode)))
            continue; /* links and special files: never synced, never followed */
        if (slist_add(&s->n, path, &it) < 0) {
            rc = failf(s, "more than %u entries under %s here", SYNC_ENTRIES_MAX, s->name);
            break;
        }
        it->kind = S_ISDIR(sb.st_mode) ? MSG_KIND_FOLDER : MSG_KIND_FILE;
        if (it->kind == MSG_KIND_FILE) {
            n_version(s, sh, it, &sb);
        } else if (depth >= SYNC_DEPTH_MAX) {
            rc = failf(s, "\"%s\" here is more than %d folders deep: not synced", path,
                       SYNC_DEPTH_MAX);
        } else {
            int sub = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) {
                rc = walk_n(s, sh, path, sub, depth + 1);
                close(sub);
            }
        }
    }
    closedir(d);
    return rc;
}

static int list_n(struct sync_ctx *s)
{
    struct stat sb;
    const struct cfg *c = node_cfg_get(s->e->node);
    int wait = c->get_timeout_ms ? (int)(c->get_timeout_ms > 30000 ? 30000 : c->get_timeout_ms)
                                 : 30000;
    node_cfg_put(c);
    struct share *sh = node_share_get(s->e->node);
    int rc = 0;

    /* The index must have seen every change made before the sync. */
    fs_status st = share_refresh_wait(sh, wait);
    if (st != FS_OK)
        log_msg(L_WARN, "sync %s: this share's index may be stale: %s", s->name,
                fs_strerror(st));
    if (fstatat(s->root, s->name, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
        struct sitem *it;
        if (S_ISLNK(sb.st_mode) || !(S_ISREG(sb.st_mode) || S_ISDIR(sb.st_mode))) {
            rc = failf(s, "\"%s\" here is a link or a special file: not synced", s->name);
        } else if (slist_add(&s->n, s->name, &it) < 0) {
            rc = failf(s, "out of memory");
        } else if (S_ISREG(sb.st_mode)) {
            it->kind = MSG_KIND_FILE;
            n_version(s, sh, it, &sb);
        } else {
            int dfd = openat(s->root, s->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            it->kind = MSG_KIND_FOLDER;
            rc = dfd < 0 ? failf(s, "cannot open \"%s\" here: %s", s->name, strerror(errno))
                         : walk_n(s, sh, s->name, dfd, 1);
            if (dfd >= 0)
                close(dfd);
        }
    }
    node_share_put(s->e->node);
    if (rc == 0 && s->n.n)
        qsort(s->n.v, s->n.n, sizeof *s->n.v, item_cmp);
    return rc;
}

static struct sitem *find(struct slist *l, const char *path)
{
    struct sitem key = {.path = (char *)path};
    return l->n ? bsearch(&key, l->v, l->n, sizeof *l->v, item_cmp) : NULL;
}

/* --- one file --- */

static void seed_hook(void *ctx, struct partial *pt, const unsigned char *list, uint64_t n)
{
    struct sync_ctx *s = ctx;
    uint64_t pieces = 0, bytes = 0;

    if (s->seed_fd < 0 || !s->seed_list)
        return;
    struct partial_seed_src src = {.fd = s->seed_fd, .size = s->seed_size,
                                   .piece = s->seed_piece, .list = s->seed_list,
                                   .n = s->seed_n};
    fs_status st = partial_seed(pt, list, n, &src, &pieces, &bytes);
    if (st != FS_OK)
        log_msg(L_INFO, "sync %s: this copy seeds nothing (%s): fetched whole", pt->name,
                fs_strerror(st));
    s->seeded = bytes;
}

static void progress_hook(void *ctx, const struct xfer_event *ev)
{
    struct sync_ctx *s = ctx;
    struct ctl_progress pr;

    if (!s->o || (s->flags & SYNC_JSON))
        return;
    memset(&pr, 0, sizeof pr);
    uint64_t fresh = ev->done > ev->resumed_from ? ev->done - ev->resumed_from : 0;
    pr.done = s->done_before + fresh;
    pr.total = s->total > pr.done ? s->total : pr.done;
    pr.rate = (uint64_t)ev->rate;
    pr.peer = ev->peer;
    pr.sources = ev->sources;
    addr_format(ev->holder, pr.holder);
    snprintf(pr.name, sizeof pr.name, "%s", s->name);
    ctl_send_progress(s->o, &pr);
}

static int cancelled_hook(void *ctx)
{
    struct sync_ctx *s = ctx;
    return (s->o && ctl_client_gone(s->o)) || net_now_ms() >= s->deadline;
}

/* The seed of a fetch: N's own file at base in dir and its piece list from
 * the share's pieces folder (by its root). Nothing on failure: the fetch
 * then takes every piece from M. */
static void seed_open(struct sync_ctx *s, int dir, const char *base, const struct sitem *nv,
                      unsigned char **list)
{
    struct stat sb;
    const char *why = NULL;
    int sfd = -1, pfd = -1;

    *list = NULL;
    s->seed_fd = -1;
    s->seed_list = NULL;
    if (!nv || !nv->root[0])
        return;
    int fd = openat(dir, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        if (fd >= 0)
            close(fd);
        return;
    }
    if (statedir_open(s->root, &sfd) == FS_OK)
        pfd = openat(sfd, SHARE_PIECES_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (pfd < 0 || pieces_load_at(pfd, nv->root, nv->v.size, nv->root, list, &s->seed_n,
                                  &s->seed_piece, &why) != FS_OK) {
        close(fd);
        *list = NULL;
    } else {
        s->seed_fd = fd;
        s->seed_list = *list;
        s->seed_size = nv->v.size;
    }
    if (pfd >= 0)
        close(pfd);
    if (sfd >= 0)
        close(sfd);
}

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static int conflict_name(struct sync_ctx *s, const char *base, char out[NAME_MAX_LEN + 1])
{
    if (syncstate_conflict_name(base, time(NULL), s->peer, out) != FS_OK)
        return failf(s, "no conflict name for \"%s\"", base);
    return 0;
}

/* Sets N's file at base in dir aside under its conflict name (never over
 * anything). */
static int keep_aside(struct sync_ctx *s, int dir, const char *path, const char *base)
{
    char kept[NAME_MAX_LEN + 1];

    if (conflict_name(s, base, kept) < 0)
        return -1;
    if (partial_place_at(dir, base, dir, kept, 1) != FS_OK)
        return failf(s, "cannot keep \"%s\" aside as %s: %s", path, kept, strerror(errno));
    s->res->conflicts++;
    s->res->files++;
    return add_file(s, path, "conflict", kept, 0, 0);
}

/* Fetches M's file m into place at its path: seeded from N's copy nv
 * (NULL: N has none there), verified, swapped with N's file only if that
 * is still the one looked at (inode, size, mtime, ctime), else kept aside
 * under its conflict name with N's copy left as it is. */
static int fetch_one(struct sync_ctx *s, const struct sitem *m, const struct sitem *nv,
                     int conflict_first)
{
    char tmp[MSG_MD5_LEN + sizeof SYNC_TMP], kept[NAME_MAX_LEN + 1];
    struct stat before, after;
    const char *base;
    unsigned char *nlist = NULL;
    struct xfer_result xr;
    struct msg hit;
    int dir, had = 0, rc = 0;

    if (open_parent(s, m->path, 1, &dir, &base) < 0)
        return failf(s, "cannot reach the folder of \"%s\" here (a link on the way?): %s",
                     m->path, strerror(errno));
    if (fstatat(dir, base, &before, AT_SYMLINK_NOFOLLOW) == 0) {
        if (!S_ISREG(before.st_mode)) {
            close(dir);
            return failf(s, "\"%s\" here is not a regular file: not replaced", m->path);
        }
        had = 1;
    }
    seed_open(s, dir, base, had ? nv : NULL, &nlist);
    if (had && conflict_first) { /* N's own changes first, under their own name */
        if (keep_aside(s, dir, m->path, base) < 0)
            goto out;
        had = 0;
    }
    snprintf(tmp, sizeof tmp, "%s" SYNC_TMP, m->e.md5);
    unlinkat(s->state, tmp, 0); /* an earlier sync's, killed before its swap: ours */
    cmd_browse_hit(&hit, &s->from, s->peer_id, m->path, &m->e);
    s->seeded = 0;
    struct xfer_watch w = {.progress = progress_hook, .cancelled = cancelled_hook, .ctx = s,
                           .seed = seed_hook};
    fs_status st = xfer_fetch_to(s->e->xfers, &hit, s->state, tmp, &w, &xr);
    uint64_t reused = s->seeded < xr.resumed_from ? s->seeded : xr.resumed_from;
    s->res->bytes += xr.bytes;
    s->res->reused += reused;
    s->done_before += m->e.size > reused ? m->e.size - reused : 0;
    if (st != FS_OK) {
        s->fetch_failed = 1;
        rc = failf(s, "\"%s\": %s", m->path, xr.why);
        goto out;
    }
    if (!had) {
        st = partial_place_at(s->state, tmp, dir, base, 1);
    } else if (fstatat(dir, base, &after, AT_SYMLINK_NOFOLLOW) == 0 &&
               same_file(&before, &after)) {
        /* Swapped, not renamed over: the old file lands under tmp and is
         * removed there, so a crash in between loses neither. */
        st = renameat2(s->state, tmp, dir, base, RENAME_EXCHANGE) == 0 ? FS_OK : FS_EIO;
        if (st == FS_OK) {
            unlinkat(s->state, tmp, 0);
            fsync(dir);
        }
    } else { /* changed here meanwhile: N's copy stays, M's is kept aside */
        if (conflict_name(s, base, kept) < 0 ||
            partial_place_at(s->state, tmp, dir, kept, 1) != FS_OK) {
            unlinkat(s->state, tmp, 0);
            rc = failf(s, "\"%s\" changed here during the sync and M's copy cannot be kept "
                       "aside: %s", m->path, strerror(errno));
            goto out;
        }
        s->res->conflicts++;
        s->res->files++;
        rc = add_file(s, m->path, "conflict", kept, xr.bytes, reused);
        goto out;
    }
    if (st != FS_OK) {
        unlinkat(s->state, tmp, 0);
        rc = failf(s, "cannot put \"%s\" in place: %s", m->path, strerror(errno));
        goto out;
    }
    s->res->files++;
    struct syncstate_ver v = {.size = m->e.size};
    memcpy(v.md5, m->e.md5, sizeof v.md5);
    if (fstatat(dir, base, &after, AT_SYMLINK_NOFOLLOW) == 0)
        v.mtime = after.st_mtim;
    rc = add_rec(s, m->path, &v) < 0 ? failf(s, "out of memory") : 0;
    if (rc == 0)
        rc = add_file(s, m->path, had ? "updated" : "new", NULL, xr.bytes, reused);
out:
    if (s->seed_fd >= 0)
        close(s->seed_fd);
    s->seed_fd = -1;
    s->seed_list = NULL;
    free(nlist);
    close(dir);
    return rc;
}

/* --- the decisions --- */

static int drop_one(struct sync_ctx *s, const struct sitem *nv, enum syncstate_action a)
{
    const char *base;
    struct stat sb;
    int dir, rc = 0;

    if (open_parent(s, nv->path, 0, &dir, &base) < 0)
        return failf(s, "cannot reach the folder of \"%s\" here: %s", nv->path,
                     strerror(errno));
    if (fstatat(dir, base, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode)) {
        close(dir);
        return 0; /* gone meanwhile: nothing to remove */
    }
    if (a == SYNCSTATE_CONFLICT) {
        rc = keep_aside(s, dir, nv->path, base);
    } else if (unlinkat(dir, base, 0) < 0) {
        rc = failf(s, "cannot remove \"%s\": %s", nv->path, strerror(errno));
    } else {
        fsync(dir);
        s->res->files++;
        rc = add_file(s, nv->path, "removed", NULL, 0, 0);
    }
    close(dir);
    return rc;
}

/* The action for a file at path: m or n may be NULL. */
static enum syncstate_action decide(struct sync_ctx *s, const char *path, const struct sitem *m,
                                    const struct sitem *n)
{
    const struct syncstate_file *r = syncstate_find(&s->old, path);
    struct syncstate_ver mv = {0};

    if (m) {
        memcpy(mv.md5, m->e.md5, sizeof mv.md5);
        mv.size = m->e.size;
        mv.mtime.tv_sec = (time_t)m->e.mtime;
    }
    return syncstate_decide(r ? &r->v : NULL, n ? &n->v : NULL, m ? &mv : NULL,
                            (s->flags & SYNC_DELETE) != 0);
}

static int is_file(const struct sitem *it)
{
    return it && it->kind == MSG_KIND_FILE;
}

static int apply(struct sync_ctx *s)
{
    size_t i = 0, j = 0;
    int failed = 0;

    /* Bytes to move, for the progress line: every file that differs. */
    for (size_t k = 0; k < s->m.n; k++) {
        struct sitem *nv = find(&s->n, s->m.v[k].path);
        if (is_file(&s->m.v[k]) &&
            (!is_file(nv) || strcmp(nv->v.md5, s->m.v[k].e.md5) != 0))
            s->total += s->m.v[k].e.size;
    }
    /* Both lists are sorted by path: one merge, files in path order. */
    while ((i < s->m.n || j < s->n.n) && !cancelled_hook(s)) {
        int c = i >= s->m.n ? 1 : j >= s->n.n ? -1 : strcmp(s->m.v[i].path, s->n.v[j].path);
        struct sitem *m = c <= 0 ? &s->m.v[i++] : NULL;
        struct sitem *n = c >= 0 ? &s->n.v[j++] : NULL;
        const char *path = m ? m->path : n->path;
        int dir;

        if (m && n && m->kind != n->kind) {
            failed |= failf(s, "\"%s\" is a %s at %s and a %s here: not synced", path,
                            msg_kind_name(m->kind), s->from_s, msg_kind_name(n->kind)) < 0;
            continue;
        }
        if ((m ? m : n)->kind == MSG_KIND_FOLDER) {
            if (m && !n) { /* empty folders too */
                if (open_dir(s, path, 1, &dir) < 0)
                    failed |= failf(s, "cannot make the folder \"%s\" here: %s", path,
                                    strerror(errno)) < 0;
                else
                    close(dir);
            }
            continue; /* N's folders M lacks: after their files (below) */
        }
        if (!m && strstr(strrchr(path, '/') ? strrchr(path, '/') : path, ".sync-conflict-"))
            continue; /* a copy an earlier sync kept aside: N's, never extra nor removed */
        enum syncstate_action a = decide(s, path, m, n);
        int rc = 0;
        switch (a) {
        case SYNCSTATE_SAME:
            if (m && n)
                rc = add_rec(s, path, &n->v);
            break;
        case SYNCSTATE_FETCH:
            rc = fetch_one(s, m, n, 0);
            break;
        case SYNCSTATE_KEEP_CONFLICT_THEN_FETCH:
            rc = fetch_one(s, m, n, 1);
            break;
        case SYNCSTATE_EXTRA: {
            const struct syncstate_file *r = syncstate_find(&s->old, path);
            if (r)
                add_rec(s, path, &r->v); /* still N's synced copy: a later --delete may go */
            rc = add_file(s, path, "extra", NULL, 0, 0);
            break;
        }
        case SYNCSTATE_DELETE:
        case SYNCSTATE_CONFLICT:
            rc = drop_one(s, n, a);
            break;
        }
        if (rc < 0) {
            failed = 1;
            if (s->fetch_failed)
                break; /* M or the way to it failed: the rest would wait on it too; a file
                          refused here (a link) does not stop the others */
        }
    }
    if (!failed && cancelled_hook(s) && i + j < s->m.n + s->n.n)
        failed = failf(s, "%s", s->o && ctl_client_gone(s->o) ? "cancelled"
                                                             : "timed out (get_timeout_ms)") < 0;
    /* --delete: N's folders M lacks, deepest first (reverse path order),
     * when empty: a folder holding anything N keeps stays. */
    for (size_t k = s->n.n; !failed && (s->flags & SYNC_DELETE) && k-- > 0;) {
        const char *base;
        int dir;
        if (s->n.v[k].kind != MSG_KIND_FOLDER || find(&s->m, s->n.v[k].path))
            continue;
        if (open_parent(s, s->n.v[k].path, 0, &dir, &base) < 0)
            continue;
        if (unlinkat(dir, base, AT_REMOVEDIR) == 0) {
            s->res->files++;
            add_file(s, s->n.v[k].path, "removed", NULL, 0, 0);
        }
        close(dir);
    }
    return failed ? -1 : 0;
}

/* --- the outcome --- */

static void emit(struct sync_ctx *s, enum trace_type type)
{
    struct trace_event ev;

    trace_init_event(&ev, type, NULL);
    trace_set(ev.name, sizeof ev.name, s->name);
    ev.from = s->from;
    ev.from_peer = s->peer_id;
    ev.holder = s->peer_id;
    ev.bytes = s->res->bytes;
    ev.source_bytes = s->res->reused;
    ev.count = s->res->files;
    if (type == TR_SYNC_FAILED) {
        trace_set(ev.reason, sizeof ev.reason, "sync");
        trace_set(ev.detail, sizeof ev.detail, s->res->error);
    }
    trace_emit(node_trace(s->e->node), &ev);
}

static void print_json(struct sync_ctx *s)
{
    struct json j;
    size_t len;

    json_init(&j, SYNC_JSON_MAX);
    json_obj_open(&j, NULL);
    json_str(&j, "name", s->name);
    json_str(&j, "from", s->from_s);
    json_bool(&j, "ok", s->res->code == CTL_EXIT_OK);
    json_arr_open(&j, "files");
    for (size_t i = 0; i < s->nfiles; i++) {
        json_obj_open(&j, NULL);
        json_str(&j, "path", s->files[i].path);
        json_str(&j, "action", s->files[i].action);
        if (s->files[i].kept[0])
            json_str(&j, "kept_as", s->files[i].kept);
        json_uint(&j, "bytes", s->files[i].bytes);
        json_uint(&j, "reused", s->files[i].reused);
        json_obj_close(&j);
    }
    json_arr_close(&j);
    json_uint(&j, "bytes", s->res->bytes);
    json_uint(&j, "reused", s->res->reused);
    json_double(&j, "seconds", (double)(net_now_ms() - s->t0) / 1000.0);
    json_uint(&j, "conflicts", s->res->conflicts);
    if (s->res->error[0])
        json_str(&j, "error", s->res->error);
    json_obj_close(&j);
    const char *doc = json_result(&j, &len);
    if (doc)
        ctl_write(s->o, 1, doc, len);
    else
        ctl_print(s->o, 2, "floodshare: sync: the result is too large for --json");
    json_free(&j);
}

static void print_outcome(struct sync_ctx *s)
{
    if (!s->o)
        return;
    if (s->flags & SYNC_JSON) {
        print_json(s);
    } else if (s->res->code == CTL_EXIT_OK) {
        double secs = (double)(net_now_ms() - s->t0) / 1000.0;
        ctl_print(s->o, 1, "synced \"%s\" from %s: %u file%s changed, %u conflict%s, %" PRIu64
                  " bytes moved, %" PRIu64 " bytes reused, in %.2f s",
                  s->name, s->from_s, s->res->files, s->res->files == 1 ? "" : "s",
                  s->res->conflicts, s->res->conflicts == 1 ? "" : "s", s->res->bytes,
                  s->res->reused, secs);
    } else {
        ctl_print(s->o, 2, "floodshare: sync: %s", s->res->error);
    }
}

static int open_dirs(struct sync_ctx *s)
{
    struct share *sh = node_share_get(s->e->node);
    s->root = fcntl(share_root_fd(sh), F_DUPFD_CLOEXEC, 0);
    node_share_put(s->e->node);
    if (s->root < 0)
        return failf(s, "cannot hold this peer's share: %s", strerror(errno));
    if (statedir_open(s->root, &s->state) != FS_OK)
        return failf(s, "cannot use this share's %s folder: %s", SHARE_STATE_DIR,
                     strerror(errno));
    if (mkdirat(s->state, SYNCSTATE_DIR, 0700) < 0 && errno != EEXIST)
        return failf(s, "cannot make %s/%s: %s", SHARE_STATE_DIR, SYNCSTATE_DIR,
                     strerror(errno));
    s->syncdir = openat(s->state, SYNCSTATE_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (s->syncdir < 0)
        return failf(s, "cannot open %s/%s: %s", SHARE_STATE_DIR, SYNCSTATE_DIR,
                     strerror(errno));
    return 0;
}

static void load_state(struct sync_ctx *s)
{
    char fname[NAME_MAX_LEN + 1];
    const char *why = NULL;

    if (syncstate_file_name(s->name, fname) != FS_OK)
        return;
    fs_status st = syncstate_load_at(s->syncdir, fname, &s->old, &why);
    if (st != FS_OK && st != FS_ENOTFOUND) /* refused whole: every difference a conflict */
        log_msg(L_WARN, "sync %s: its state is unusable (%s): no file counts as synced",
                s->name, why ? why : fs_strerror(st));
    if (st != FS_OK)
        memset(&s->old, 0, sizeof s->old);
}

int sync_run(const struct cmd_env *e, const char *name, const struct fs_addr *from,
             unsigned flags, struct ctl_out *o, struct sync_result *res)
{
    struct sync_ctx s = {.e = e, .name = name, .from = *from, .flags = flags, .o = o,
                         .res = res, .root = -1, .state = -1, .syncdir = -1, .seed_fd = -1};

    memset(res, 0, sizeof *res);
    s.t0 = net_now_ms();
    addr_format(from, s.from_s);
    const struct cfg *c = node_cfg_get(e->node);
    s.deadline = c->get_timeout_ms ? s.t0 + c->get_timeout_ms : UINT64_MAX;
    node_cfg_put(c);
    if (!name || !name_valid(name, strlen(name)) || strcmp(name, SHARE_STATE_DIR) == 0) {
        failf(&s, "\"%s\" is not a name of this share (one name, no '/', not \"..\")",
              name ? name : "");
        res->code = CTL_EXIT_USAGE;
        print_outcome(&s);
        return res->code;
    }
    int slot = running_take(e->node, name);
    if (slot < 0) {
        if (slot == -2)
            failf(&s, "a sync of \"%s\" is already running on this peer", name);
        else
            failf(&s, "%d syncs are running on this peer: try again later", SYNC_RUNNING_MAX);
        print_outcome(&s);
        return res->code;
    }
    emit(&s, TR_SYNC_STARTED);
    if (open_dirs(&s) == 0) {
        load_state(&s);
        if (wait_for_m(&s) == 0) {
            snprintf(s.peer, sizeof s.peer, "%u", s.peer_id);
            if (!s.peer_id) /* no id: its address, made of the characters a name may hold */
                snprintf(s.peer, sizeof s.peer, "%s", s.from_s);
            if (list_n(&s) == 0)
                apply(&s);
            save_state(&s);
        }
    }
    if (res->error[0])
        res->code = res->code ? res->code : CTL_EXIT_FAIL;
    emit(&s, res->code == CTL_EXIT_OK ? TR_SYNC_DONE : TR_SYNC_FAILED);
    if (res->files) {
        struct share *sh = node_share_get(e->node);
        share_mark_dirty(sh);
        node_share_put(e->node);
    }
    print_outcome(&s);
    running_give(slot);
    for (size_t i = 0; i < s.nrecs; i++)
        free(s.recs[i].path);
    free(s.recs);
    for (size_t i = 0; i < s.nfiles; i++)
        free(s.files[i].path);
    free(s.files);
    slist_free(&s.m);
    slist_free(&s.n);
    syncstate_free(&s.old);
    if (s.syncdir >= 0)
        close(s.syncdir);
    if (s.state >= 0)
        close(s.state);
    if (s.root >= 0)
        close(s.root);
    return res->code;
}
