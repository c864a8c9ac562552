/* browse.c - BROWSE / LISTING: a page of a folder's listing, served and
 * fetched (browse.h, docs/PROTOCOL.md). */
#include "floodshare/browse.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "floodshare/cfg.h"
#include "floodshare/log.h"
#include "floodshare/name.h"
#include "floodshare/net.h"
#include "floodshare/node.h"
#include "floodshare/share.h"
#include "floodshare/stats.h"
#include "floodshare/tls.h"
#include "floodshare/trace.h"

/* --- the holder: one page of a folder ------------------------------------ */

/* A folder's names: one arena of NUL-terminated names and their offsets,
 * both bounded (BROWSE_NAMES_MAX bytes, MSG_MAX_ENTRIES names). */
struct names {
    char *arena;
    size_t used, cap;
    size_t *off;
    size_t n, ncap;
    const char **v; /* sorted, into arena, once reading is over */
};

static void names_free(struct names *ns)
{
    free(ns->arena);
    free(ns->off);
    free(ns->v);
}

/* FS_OK, FS_ETOOBIG past the bounds, FS_ENOMEM. */
static fs_status names_add(struct names *ns, const char *name, size_t len)
{
    if (ns->n == MSG_MAX_ENTRIES || len + 1 > BROWSE_NAMES_MAX - ns->used)
        return FS_ETOOBIG;
    if (ns->used + len + 1 > ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 64 * 1024;
        while (cap < ns->used + len + 1)
            cap *= 2;
        char *a = realloc(ns->arena, cap);
        if (!a)
            return FS_ENOMEM;
        ns->arena = a;
        ns->cap = cap;
    }
    if (ns->n == ns->ncap) {
        size_t cap = ns->ncap ? ns->ncap * 2 : 1024;
        size_t *o = realloc(ns->off, cap * sizeof *o);
        if (!o)
            return FS_ENOMEM;
        ns->off = o;
        ns->ncap = cap;
    }
    memcpy(ns->arena + ns->used, name, len + 1);
    ns->off[ns->n++] = ns->used;
    ns->used += len + 1;
    return FS_OK;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Is the entry d of the folder dfd one the index could list: a regular
 * file or a folder, not a link, with a valid name? Only d_type is looked
 * at when the file system gives it. */
static int listable(int dfd, const struct dirent *d, int top)
{
    size_t len = strlen(d->d_name);
    struct stat sb;

    if (!name_valid(d->d_name, len) || (top && strcmp(d->d_name, SHARE_STATE_DIR) == 0))
        return 0;
    if (d->d_type == DT_REG || d->d_type == DT_DIR)
        return 1;
    if (d->d_type != DT_UNKNOWN)
        return 0;
    return fstatat(dfd, d->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
           (S_ISREG(sb.st_mode) || S_ISDIR(sb.st_mode));
}

/* Reads every listable name of the folder dfd (not closed) into ns, sorted. */
static fs_status read_names(int dfd, int top, struct names *ns, const char **why)
{
    int fd = dup(dfd);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    fs_status st = FS_OK;
    struct dirent *d;

    if (!dir) {
        if (fd >= 0)
            close(fd);
        *why = "the folder cannot be read";
        return FS_EIO;
    }
    errno = 0;
    while (st == FS_OK && (d = readdir(dir)) != NULL)
        if (listable(dfd, d, top))
            st = names_add(ns, d->d_name, strlen(d->d_name));
    if (st == FS_OK && errno != 0)
        st = FS_EIO;
    closedir(dir);
    if (st == FS_OK && ns->n) {
        ns->v = malloc(ns->n * sizeof *ns->v);
        if (!ns->v)
            st = FS_ENOMEM;
        for (size_t i = 0; st == FS_OK && i < ns->n; i++)
            ns->v[i] = ns->arena + ns->off[i];
        if (st == FS_OK)
            qsort(ns->v, ns->n, sizeof *ns->v, name_cmp);
    }
    if (st == FS_ETOOBIG)
        *why = "the folder has too many entries to browse";
    else if (st)
        *why = "the folder cannot be read";
    return st;
}

/* Opens the folder to list: the root's own descriptor again for "", else
 * path beneath it without crossing a link. */
static fs_status open_folder(struct share *sh, const char *path, int *dfd, const char **why)
{
    struct stat sb;
    size_t first = strcspn(path, "/");
    fs_status st;

    *dfd = -1;
    if (!path[0]) {
        *dfd = openat(share_root_fd(sh), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        *why = "the share cannot be read";
        return *dfd < 0 ? FS_EIO : FS_OK;
    }
    if (!path_valid(path, strlen(path))) {
        *why = "path is outside the share or not allowed";
        return FS_EBADNAME;
    }
    /* The state folder is hidden from every answer, as from the index. */
    if (first == strlen(SHARE_STATE_DIR) && memcmp(path, SHARE_STATE_DIR, first) == 0) {
        *why = "no such folder in this share";
        return FS_ENOTFOUND;
    }
    /* O_NONBLOCK: a FIFO swapped in must not hold the worker. */
    st = share_openat(sh, path, O_RDONLY | O_NONBLOCK, dfd);
    if (st == FS_EREFUSED || st == FS_EBADNAME) {
        *why = "path is outside the share or not allowed";
        return st;
    }
    if (st) {
        *why = "no such folder in this share";
        return st == FS_ENOTFOUND ? FS_ENOTFOUND : FS_EIO;
    }
    if (fstat(*dfd, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        close(*dfd);
        *dfd = -1;
        *why = "not a folder: browse lists folders";
        return FS_EINVAL;
    }
    return FS_OK;
}

/* The entry name of the folder dfd (at path) as listed: what stat says
 * now, and the index's size, md5 and root when the index has this very
 * file (same size and mtime as when it was hashed) or folder. 0 when the
 * name is gone or no longer a file or folder (it is then skipped). */
static int make_entry(struct share *sh, int dfd, const char *path, const char *name,
                      struct listing_entry *e)
{
    char rel[PATH_MAX_LEN + 1];
    struct share_item it;
    struct stat sb;

    memset(e, 0, sizeof *e);
    if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
        !(S_ISREG(sb.st_mode) || S_ISDIR(sb.st_mode)))
        return 0;
    snprintf(e->name, sizeof e->name, "%s", name);
    e->kind = S_ISREG(sb.st_mode) ? MSG_KIND_FILE : MSG_KIND_FOLDER;
    e->mtime = sb.st_mtim.tv_sec > 0 ? (uint64_t)sb.st_mtim.tv_sec : 0;
    if (e->kind == MSG_KIND_FILE) {
        e->size = (uint64_t)sb.st_size;
        e->size_known = 1;
    }
    int w = path[0] ? snprintf(rel, sizeof rel, "%s/%s", path, name)
                    : snprintf(rel, sizeof rel, "%s", name);
    if (w < 0 || (size_t)w >= sizeof rel || share_lookup(sh, rel, &it) != FS_OK ||
        it.kind != e->kind)
        return 1; /* not indexed (yet): listed without md5 */
    if (e->kind == MSG_KIND_FOLDER) {
        e->size = it.size;
        e->size_known = 1;
        memcpy(e->md5, it.md5, sizeof e->md5);
    } else if (it.size == e->size && it.mtime.tv_sec == sb.st_mtim.tv_sec &&
               it.mtime.tv_nsec == sb.st_mtim.tv_nsec) {
        memcpy(e->md5, it.md5, sizeof e->md5);
        memcpy(e->root, it.root, sizeof e->root);
    }
    return 1;
}

fs_status browse_page(struct share *sh, const char *path, uint64_t offset, char **body,
                      size_t *len, uint64_t *total, uint64_t *count, uint64_t *next,
                      const char **why)
{
    struct names ns;
    char *out = NULL;
    size_t used = 0;
    int dfd;

    *body = NULL;
    *len = 0;
    *total = *count = *next = 0;
    memset(&ns, 0, sizeof ns);
    fs_status st = open_folder(sh, path, &dfd, why);
    if (st)
        return st;
    st = read_names(dfd, path[0] == '\0', &ns, why);
    if (st == FS_OK && offset > ns.n) {
        *why = "offset is past the end of the folder's listing";
        st = FS_EINVAL;
    }
    if (st == FS_OK && offset < ns.n && !(out = malloc(BROWSE_PAGE_BYTES))) {
        *why = "out of memory";
        st = FS_ENOMEM;
    }
    uint64_t i = offset;
    for (; st == FS_OK && i < ns.n && *count < BROWSE_PAGE_ENTRIES; i++) {
        struct listing_entry e;
        char line[LISTING_LINE_MAX + 1];
        if (!make_entry(sh, dfd, path, ns.v[i], &e))
            continue; /* gone since readdir: skipped, and counted as consumed */
        int w = listing_format(&e, line, sizeof line);
        if (w < 0)
            continue; /* cannot happen for a name_valid() name; never sent broken */
        if ((size_t)w > BROWSE_PAGE_BYTES - used)
            break;
        memcpy(out + used, line, (size_t)w);
        used += (size_t)w;
        (*count)++;
    }
    close(dfd);
    if (st == FS_OK) {
        *total = ns.n;
        *next = i;
        *len = used;
        *body = out;
        out = NULL;
    }
    free(out);
    names_free(&ns);
    return st;
}

/* [accept] browse: 1 when the requester on c, who names itself from, may
 * browse. `neighbours` wants from to be a configured neighbour and the
 * connection to come from from's own host: a peer that merely claims a
 * neighbour's address from another machine is refused. (Peers sharing one
 * address, as in a classroom on 127.0.0.1, cannot be told apart this way;
 * docs/PROTOCOL.md says so.) */
int browse_allowed(const struct cfg *c, int fd, const struct fs_addr *from)
{
    struct fs_addr src;

    if (c->accept_browse == CFG_ACCEPT_ANY)
        return 1;
    if (c->accept_browse == CFG_ACCEPT_NONE)
        return 0;
    net_peer_addr(fd, &src);
    if (strcmp(src.host, from->host) != 0)
        return 0;
    for (size_t i = 0; i < c->n_neighbours; i++)
        if (addr_equal(&c->neighbours[i], from))
            return 1;
    return 0;
}

static const char *error_code(fs_status st)
{
    switch (st) {
    case FS_ENOTFOUND: return "notfound";
    case FS_EIO:
    case FS_ENOMEM: return "internal";
    default: return "refused";
    }
}

/* browse_served (page, entries first..first+count of total) or
 * browse_refused (reason word, detail text) for req, on n's trace. */
static void browse_event(struct node *n, enum trace_type type, const struct msg *req,
                         uint64_t first, uint64_t count, uint64_t total, const char *reason,
                         const char *detail)
{
    struct trace_event ev;

    trace_init_event(&ev, type, NULL);
    trace_set(ev.name, sizeof ev.name, req->path);
    ev.from = req->from;
    ev.bytes = first;
    ev.count = (unsigned)count;
    ev.size = total;
    trace_set(ev.reason, sizeof ev.reason, reason);
    trace_set(ev.detail, sizeof ev.detail, detail);
    trace_emit(node_trace(n), &ev);
}

int browse_serve(struct node *n, struct conn *c, const struct msg *req)
{
    struct stats *stats = node_stats(n);
    char who[ADDR_STR_MAX], esc[LOG_ESCAPE_BUF], text[MSG_MAX_TEXT + 1];
    const char *why = NULL;

    addr_format(&req->from, who);
    log_escape_str(esc, req->path[0] ? req->path : "(top level)");
    const struct cfg *cf = node_cfg_get(n);
    int ok = browse_allowed(cf, c->fd, &req->from);
    enum cfg_accept policy = cf->accept_browse;
    node_cfg_put(cf);
    if (!ok) {
        stats_inc(stats, browse_refused);
        snprintf(text, sizeof text, "browsing not accepted from %s", who);
        log_msg(L_INFO, "browse %s from %s refused: [accept] browse = %s", esc, who,
                cfg_accept_name(policy));
        browse_event(n, TR_BROWSE_REFUSED, req, 0, 0, 0, "policy", text);
        conn_send_error(c, "refused", text, c->timeout_ms);
        return -1;
    }
    char *body = NULL;
    size_t len = 0;
    uint64_t total, count, next;
    struct share *sh = node_share_get(n);
    fs_status st = browse_page(sh, req->path, req->offset, &body, &len, &total, &count, &next,
                               &why);
    node_share_put(n);
    if (st) {
        if (st == FS_EREFUSED) {
            stats_inc(stats, symlinks_refused);
            log_msg(L_WARN, "browse %s from %s: the path crosses a symbolic link: refused, not "
                    "followed", esc, who);
        } else {
            log_msg(L_INFO, "browse %s from %s refused: %s", esc, who, why);
        }
        stats_inc(stats, browse_refused);
        browse_event(n, TR_BROWSE_REFUSED, req, 0, 0, 0,
                     st == FS_EREFUSED ? "link" : error_code(st), why);
        conn_send_error(c, error_code(st), why, c->timeout_ms);
        return -1;
    }
    struct msg m;
    memset(&m, 0, sizeof m);
    m.type = MSG_LISTING;
    m.peer_id = node_id(n);
    memcpy(m.path, req->path, sizeof m.path);
    m.total = total;
    m.offset = req->offset;
    m.count = count;
    m.next = next;
    m.len = len;
    st = conn_send_msg(c, &m, c->timeout_ms);
    if (st == FS_EINVAL) /* a path whose escapes do not fit one header */
        conn_send_error(c, "refused", "path too long to answer in one header", c->timeout_ms);
    if (st == FS_OK && len)
        st = conn_write_all(c, body, len, c->timeout_ms);
    free(body);
    if (st)
        return -1;
    stats_inc(stats, browses);
    browse_event(n, TR_BROWSE_SERVED, req, req->offset, count, total, NULL, NULL);
    log_msg(L_DEBUG, "browse %s from %s: entries %llu..%llu of %llu", esc, who,
            (unsigned long long)req->offset, (unsigned long long)next,
            (unsigned long long)total);
    return 0;
}

/* --- the requester ---------------------------------------------------------- */

fs_status browse_connect(struct node *n, const struct fs_addr *holder, struct browse_conn *bc,
                         char *err, size_t cap)
{
    const struct cfg *cf = node_cfg_get(n);
    int connect_ms = (int)cf->connect_timeout_ms, sock = -1;
    char h[ADDR_STR_MAX];

    memset(bc, 0, sizeof *bc);
    bc->node = n;
    bc->holder = *holder;
    addr_format(holder, h);
    /* From the address this peer listens on, as a transfer: per-address
     * limits and [accept] browse = neighbours see that address. */
    fs_status st = net_connect_tcp_from(holder, cf->host, connect_ms, &sock);
    node_cfg_put(cf);
    if (st) {
        snprintf(err, cap, "cannot connect to %s: %s", h, fs_strerror(st));
        return st;
    }
    node_track(n, sock);
    conn_init(&bc->c, sock, node_io_timeout_ms(n));
    bc->open = 1;
    struct tls_ctx *tls = node_tls(n);
    if (!tls)
        return FS_OK;
    struct ssl_st *ssl = tls_new_ssl(tls, sock, 0);
    if (ssl) {
        conn_set_tls(&bc->c, ssl);
        st = conn_handshake(&bc->c, connect_ms);
    }
    if (!ssl || st) {
        stats_inc(node_stats(n), auth_failed);
        snprintf(err, cap, "%s failed the TLS check: %s", h,
                 !ssl ? "cannot start TLS" : st == FS_ETIMEDOUT ? "no answer in time"
                                                                : tls_last_error());
        browse_close(bc);
        return FS_EAUTH;
    }
    return FS_OK;
}

void browse_close(struct browse_conn *bc)
{
    if (!bc->open)
        return;
    node_untrack(bc->node, bc->c.fd);
    conn_close(&bc->c);
    bc->open = 0;
}

void browse_result_free(struct browse_result *r)
{
    free(r->entries);
    r->entries = NULL;
}

/* The holder broke the protocol: it is not asked again on this connection. */
static fs_status cut_off(struct browse_conn *bc, char *err, size_t cap, const char *why)
{
    char h[ADDR_STR_MAX];

    snprintf(err, cap, "%s sent a bad listing: %s", addr_format(&bc->holder, h), why);
    browse_close(bc);
    return FS_EPROTO;
}

/* Checks a LISTING's header against the request before its body is read. */
static const char *listing_header_flaw(const struct msg *m, const char *path, uint64_t offset)
{
    if (strcmp(m->path, path) != 0)
        return "it names another folder than the one asked for";
    if (m->offset != offset)
        return "it starts at another offset than the one asked for";
    if (m->count > BROWSE_PAGE_ENTRIES_MAX || m->len > BROWSE_PAGE_BYTES_MAX)
        return "the page is larger than a requester takes";
    if (m->next < offset || m->next > m->total || m->count > m->next - offset)
        return "count, next and total disagree";
    if (m->next == offset && offset < m->total)
        return "the page does not move on (next = offset before the end)";
    if ((m->count == 0) != (m->len == 0))
        return "an empty page with a body, or entries without one";
    return NULL;
}

fs_status browse_fetch_page(struct browse_conn *bc, const char *path, uint64_t offset,
                            struct browse_result *out, char *err, size_t cap)
{
    struct msg m;
    const char *why = NULL;
    char h[ADDR_STR_MAX];
    char *body = NULL;

    memset(out, 0, sizeof *out);
    addr_format(&bc->holder, h);
    memset(&m, 0, sizeof m);
    m.type = MSG_BROWSE;
    m.from = *node_self(bc->node);
    m.offset = offset;
    snprintf(m.path, sizeof m.path, "%s", path);
    fs_status st = conn_send_msg(&bc->c, &m, bc->c.timeout_ms);
    if (st == FS_OK)
        st = conn_read_msg(&bc->c, &m, bc->c.timeout_ms, &why);
    if (st == FS_EPROTO)
        return cut_off(bc, err, cap, why);
    if (st) {
        snprintf(err, cap, "no answer from %s: %s", h, fs_strerror(st));
        return st;
    }
    if (m.type == MSG_ERROR) {
        snprintf(err, cap, "%s", m.text);
        if (strcmp(m.code, "unknown") == 0)
            snprintf(err, cap, "%s does not know BROWSE (an earlier floodshare)", h);
        return strcmp(m.code, "notfound") == 0 ? FS_ENOTFOUND : FS_EREFUSED;
    }
    if (m.type != MSG_LISTING)
        return cut_off(bc, err, cap, "it did not answer with LISTING");
    const char *flaw = listing_header_flaw(&m, path, offset);
    if (flaw)
        return cut_off(bc, err, cap, flaw);
    out->peer = m.peer_id;
    out->total = m.total;
    out->offset = m.offset;
    out->next = m.next;
    if (m.count == 0)
        return FS_OK;
    body = malloc((size_t)m.len);
    out->entries = calloc((size_t)m.count, sizeof *out->entries);
    if (!body || !out->entries) {
        free(body);
        browse_result_free(out);
        snprintf(err, cap, "out of memory");
        browse_close(bc);
        return FS_ENOMEM;
    }
    st = conn_read_body(&bc->c, body, (size_t)m.len);
    if (st) {
        free(body);
        browse_result_free(out);
        snprintf(err, cap, "%s stopped in the middle of a listing: %s", h, fs_strerror(st));
        browse_close(bc);
        return st;
    }
    st = listing_parse(body, (size_t)m.len, m.count, out->entries, (size_t)m.count, &out->count,
                       &why);
    free(body);
    if (st) {
        browse_result_free(out);
        return cut_off(bc, err, cap, why);
    }
    return FS_OK;
}
