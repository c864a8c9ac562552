/* xfer.c - REQUEST/ITEM: zip the item, stream it, verify, rename in place. */
#include "floodshare/xfer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "floodshare/hash.h"
#include "floodshare/log.h"
#include "floodshare/net.h"
#include "floodshare/peer.h"
#include "floodshare/share.h"
#include "floodshare/zipio.h"

/* Temporary names under SHARE_STATE_DIR: "out-*" archives being served,
 * "in-*" archives being received, "x-*" extraction folders. */
static void tmp_name(char *out, size_t cap, const char *share_dir, const char *prefix,
                     const char *suffix)
{
    unsigned char r[6];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        memset(r, 0, sizeof r);
    snprintf(out, cap, "%s/%s/%s-%02x%02x%02x%02x%02x%02x%s", share_dir, SHARE_STATE_DIR, prefix,
             r[0], r[1], r[2], r[3], r[4], r[5], suffix);
}

fs_status xfer_prepare_state_dir(const char *share_dir)
{
    char dir[PATH_MAX + 32], path[PATH_MAX + 300];

    snprintf(dir, sizeof dir, "%s/%s", share_dir, SHARE_STATE_DIR);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return FS_EIO;
    DIR *d = opendir(dir);
    if (!d)
        return FS_EIO;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "out-", 4) && strncmp(e->d_name, "in-", 3) &&
            strncmp(e->d_name, "x-", 2))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        zipio_remove_tree(path);
        log_msg(L_INFO, "removed leftover of an interrupted transfer: %s/%s", SHARE_STATE_DIR,
                e->d_name);
    }
    closedir(d);
    return FS_OK;
}

/* --- holder side --- */

static fs_status stream_file(struct peer *p, int fd_out, const char *path, uint64_t len,
                             int timeout_ms)
{
    char *buf = malloc(XFER_CHUNK);
    int in = open(path, O_RDONLY | O_CLOEXEC);
    fs_status st = FS_OK;

    if (!buf || in < 0) {
        st = buf ? FS_EIO : FS_ENOMEM;
        goto out;
    }
    while (len > 0) {
        ssize_t n = read(in, buf, len < XFER_CHUNK ? (size_t)len : XFER_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            st = FS_EIO;
            break;
        }
        st = net_write_all(fd_out, buf, (size_t)n, timeout_ms);
        if (st)
            break;
        stats_add(&p->stats, bytes_sent, n);
        len -= (uint64_t)n;
    }
out:
    if (in >= 0)
        close(in);
    free(buf);
    return st;
}

static void refuse(struct peer *p, struct conn *c, const char *code, const char *why,
                   const char *path)
{
    char esc[LOG_ESCAPE_BUF];
    stats_inc(&p->stats, uploads_failed);
    log_msg(L_INFO, "request %s refused: %s", log_escape_str(esc, path), why);
    conn_send_error(c->fd, code, why, c->timeout_ms);
}

void xfer_serve(struct peer *p, struct conn *c, const struct msg *req)
{
    struct share_item it;
    char abs[PATH_MAX], zip[PATH_MAX + 64], esc[LOG_ESCAPE_BUF];
    struct share *sh = peer_share_get(p);
    fs_status st;

    share_refresh(sh);
    st = share_lookup(sh, req->path, &it);
    if (st == FS_OK)
        st = share_resolve(sh, req->path, 1, abs, sizeof abs);
    tmp_name(zip, sizeof zip, share_dir(sh), "out", ".zip");
    peer_share_put(p);
    if (st == FS_EBADNAME || st == FS_EREFUSED) {
        refuse(p, c, "refused", "path is outside the share or not allowed", req->path);
        return;
    }
    if (st) {
        refuse(p, c, "notfound", "no such item in this share", req->path);
        return;
    }
    if (strcmp(it.md5, req->md5) != 0) {
        refuse(p, c, "changed", "the item has changed since it was found", req->path);
        return;
    }

    struct msg item;
    memset(&item, 0, sizeof item);
    item.type = MSG_ITEM;
    item.kind = it.kind;
    item.size = it.size;
    memcpy(item.md5, it.md5, sizeof item.md5);
    st = zipio_pack(abs, zip);
    if (st == FS_OK)
        st = hash_md5_file(zip, item.zmd5, &item.len);
    if (st) {
        unlink(zip);
        refuse(p, c, "internal", "cannot pack the item", req->path);
        return;
    }
    log_msg(L_INFO, "request %s: sending %s of %llu bytes as a %llu-byte archive",
            log_escape_str(esc, req->path), msg_kind_name(it.kind), (unsigned long long)it.size,
            (unsigned long long)item.len);
    st = conn_send_msg(c->fd, &item, c->timeout_ms);
    if (st == FS_OK)
        st = stream_file(p, c->fd, zip, item.len, c->timeout_ms);
    unlink(zip);
    if (st) {
        stats_inc(&p->stats, uploads_failed);
        log_msg(L_WARN, "request %s: upload failed: %s", esc, fs_strerror(st));
        return;
    }
    stats_inc(&p->stats, uploads);
}

/* --- requester side --- */

struct fetch {
    struct peer *p;
    const struct msg *hit;
    struct xfer_result *res;
    char share[PATH_MAX];
    char zip[PATH_MAX + 64];
    char xdir[PATH_MAX + 64];
    int fd;
};

/* Records why this holder failed (truncated to fit) and returns st. */
static fs_status fail(struct fetch *f, fs_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static fs_status fail(struct fetch *f, fs_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->res->why, sizeof f->res->why, fmt, ap);
    va_end(ap);
    return st;
}

/* Sends REQUEST and reads the ITEM header, checking it matches the hit. */
static fs_status ask(struct fetch *f, struct conn *c, struct msg *item)
{
    const char *why = NULL;
    struct msg req;

    memset(&req, 0, sizeof req);
    req.type = MSG_REQUEST;
    memcpy(req.path, f->hit->path, sizeof req.path);
    memcpy(req.md5, f->hit->md5, sizeof req.md5);
    fs_status st = conn_send_msg(c->fd, &req, c->timeout_ms);
    if (st)
        return fail(f, st, "sending the request failed: %s", fs_strerror(st));
    st = conn_read_msg(c, item, c->timeout_ms, &why);
    if (st == FS_EPROTO)
        return fail(f, st, "holder sent a malformed reply: %s", why);
    if (st)
        return fail(f, st, "no reply from the holder: %s", fs_strerror(st));
    if (item->type == MSG_ERROR)
        return fail(f, FS_EREFUSED, "holder refused: %s", item->text);
    if (item->type != MSG_ITEM)
        return fail(f, FS_EPROTO, "holder sent %s instead of ITEM", msg_type_name(item->type));
    if (item->kind != f->hit->kind || item->size != f->hit->size ||
        strcmp(item->md5, f->hit->md5) != 0)
        return fail(f, FS_EMISMATCH, "holder announced another item than it found");
    /* A zip of n content bytes is n plus per-entry headers (a few hundred
     * bytes each); a holder announcing much more is lying or broken, and
     * must not be allowed to fill the disk. */
    uint64_t limit = f->hit->size + f->hit->size / 8 + XFER_ARCHIVE_SLACK;
    if (item->len > limit)
        return fail(f, FS_ETOOBIG, "holder announced an archive far larger than the item");
    return FS_OK;
}

/* Receives len body bytes into f->zip, hashing as they arrive. */
static fs_status receive(struct fetch *f, struct conn *c, const struct msg *item)
{
    struct hash_md5 h;
    char hex[HASH_HEX_LEN + 1];
    char *buf = malloc(XFER_CHUNK);
    uint64_t left = item->len;
    fs_status st = FS_OK;

    if (!buf)
        return fail(f, FS_ENOMEM, "out of memory");
    f->fd = open(f->zip, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (f->fd < 0 || hash_init(&h) != FS_OK) {
        free(buf);
        return fail(f, FS_EIO, "cannot create %s", f->zip);
    }
    while (left > 0 && st == FS_OK) {
        size_t got = 0;
        st = conn_read_body_some(c, buf, left < XFER_CHUNK ? (size_t)left : XFER_CHUNK, &got);
        if (st) {
            fail(f, st, "transfer interrupted: %s", fs_strerror(st));
            break;
        }
        hash_update(&h, buf, got);
        if (write(f->fd, buf, got) != (ssize_t)got)
            st = fail(f, FS_EIO, "writing the download failed: %s", strerror(errno));
        left -= got;
        f->res->bytes += got;
        stats_add(&f->p->stats, bytes_received, got);
    }
    free(buf);
    if (st) {
        hash_abort(&h);
        return st;
    }
    hash_final(&h, hex);
    if (strcmp(hex, item->zmd5) != 0)
        return fail(f, FS_EMISMATCH, "archive MD5 mismatch (received %s)", hex);
    if (fsync(f->fd) < 0)
        return fail(f, FS_EIO, "fsync failed: %s", strerror(errno));
    return FS_OK;
}

/* Extracts, verifies the item against the hit, and renames it into place. */
static fs_status install(struct fetch *f)
{
    char top[MSG_MAX_NAME + 1], item_path[PATH_MAX + 400], final[PATH_MAX + 300];
    const char *why = NULL;
    struct zipio_limits lim = zipio_default_limits;
    enum msg_kind kind;
    uint64_t size, files;
    char md5[MSG_MD5_LEN + 1];

    if (mkdir(f->xdir, 0700) < 0)
        return fail(f, FS_EIO, "cannot create %s", f->xdir);
    lim.max_total_bytes = f->hit->size; /* the FOUND said how much content there is */
    fs_status st = zipio_unpack(f->zip, f->xdir, &lim, top, sizeof top, &why);
    if (st)
        return fail(f, st, "archive refused: %s", why ? why : fs_strerror(st));
    if (strcmp(top, f->hit->name) != 0)
        return fail(f, FS_EZIP, "archive holds another name than the item");
    snprintf(item_path, sizeof item_path, "%s/%s", f->xdir, top);
    st = share_digest(item_path, &kind, &size, &files, md5);
    if (st)
        return fail(f, st, "cannot verify the extracted item: %s", fs_strerror(st));
    if (kind != f->hit->kind || size != f->hit->size || strcmp(md5, f->hit->md5) != 0)
        return fail(f, FS_EMISMATCH, "content MD5 mismatch (got %s)", md5);
    snprintf(final, sizeof final, "%s/%s", f->share, top);
    if (renameat2(AT_FDCWD, item_path, AT_FDCWD, final, RENAME_NOREPLACE) < 0) {
        if (errno == EEXIST)
            return fail(f, FS_EEXIST, "%s already exists in the share, not overwritten", top);
        return fail(f, FS_EIO, "cannot move the item into place: %s", strerror(errno));
    }
    int dfd = open(f->share, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd); /* the rename itself must survive a crash */
        close(dfd);
    }
    return FS_OK;
}

fs_status xfer_fetch(struct peer *p, const struct msg *hit, struct xfer_result *res)
{
    struct fetch f = {.p = p, .hit = hit, .res = res, .fd = -1};
    struct cfg c;
    struct conn cn;
    struct msg item;
    uint64_t t0 = net_now_ms();
    int sock = -1;
    fs_status st;

    memset(res, 0, sizeof *res);
    peer_cfg_snapshot(p, &c);
    struct share *sh = peer_share_get(p);
    snprintf(f.share, sizeof f.share, "%s", share_dir(sh));
    peer_share_put(p);
    tmp_name(f.zip, sizeof f.zip, f.share, "in", ".zip");
    tmp_name(f.xdir, sizeof f.xdir, f.share, "x", "");

    char final[PATH_MAX + 300];
    struct stat sb;
    snprintf(final, sizeof final, "%s/%s", f.share, hit->name);
    if (lstat(final, &sb) == 0)
        return fail(&f, FS_EEXIST, "%s already exists in the share, not overwritten", hit->name);

    st = net_connect_tcp(&hit->holder, (int)c.connect_timeout_ms, &sock);
    if (st)
        return fail(&f, st, "cannot connect to the holder: %s", fs_strerror(st));
    peer_track(p, sock);
    conn_init(&cn, sock, (int)c.io_timeout_ms);
    st = ask(&f, &cn, &item);
    if (st == FS_OK)
        st = receive(&f, &cn, &item);
    peer_untrack(p, sock);
    close(sock);
    if (f.fd >= 0)
        close(f.fd);
    if (st == FS_OK)
        st = install(&f);
    unlink(f.zip);
    zipio_remove_tree(f.xdir);
    res->seconds = (double)(net_now_ms() - t0) / 1000.0;
    if (st == FS_OK) {
        stats_inc(&p->stats, downloads);
        sh = peer_share_get(p);
        share_mark_dirty(sh);
        peer_share_put(p);
    } else if (st != FS_EEXIST) {
        stats_inc(&p->stats, downloads_failed);
    }
    return st;
}
