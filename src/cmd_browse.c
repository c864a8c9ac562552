/* cmd_browse.c - `browse M [PATH]` and `get PATH from M`: another peer's
 * share, looked into and fetched from directly (cmd_browse.h). */
#include "floodshare/cmd_browse.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "floodshare/browse.h"
#include "floodshare/cfg.h"
#include "floodshare/ctl.h"
#include "floodshare/json.h"
#include "floodshare/log.h"
#include "floodshare/name.h"
#include "floodshare/net.h"
#include "floodshare/node.h"
#include "floodshare/rundir.h"
#include "floodshare/xfer.h"

/* A browse's JSON: 10,000 entries take about 2.5 MB; a folder of
 * MSG_MAX_ENTRIES would not fit and is refused as too large to show. */
#define BROWSE_JSON_MAX (64u * 1024 * 1024)

struct bargs {
    int json;
    int n;
    const char *pos[4];
};

static int bargs_parse(int argc, char **argv, struct bargs *a, struct ctl_out *o)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            a->json = 1;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            ctl_print(o, 2, "floodshare: %s: unknown option %s", argv[0], argv[i]);
            return -1;
        } else if (a->n < 4) {
            a->pos[a->n++] = argv[i];
        } else {
            ctl_print(o, 2, "floodshare: %s: too many arguments", argv[0]);
            return -1;
        }
    }
    return 0;
}

/* A peer id of the run folder (digits only, 1..65535): the address its INI
 * advertises (advertise, else host:port), read from the folder the peer
 * itself runs in, which is the folder the CLI, the REPL and the dashboard
 * found its socket in. 0, or -1 after saying why. */
static int resolve_id(const struct cmd_env *e, struct ctl_out *o, const char *cmd, const char *s,
                      struct fs_addr *out, unsigned *idp)
{
    char path[RUNDIR_PATH_MAX], why[RUNDIR_ERR_MAX], err[CFG_ERR_MAX];
    unsigned long id = strtoul(s, NULL, 10);
    struct cfg *c = malloc(sizeof *c);
    const char *dir = node_run_dir(e->node);
    int rc = -1;

    if (c && id >= 1 && id <= 65535 && s[0] != '0' &&
        rundir_ini_path(dir, (unsigned)id, path, sizeof path, why, sizeof why) == FS_OK &&
        cfg_load(path, c, err, sizeof err) == FS_OK) {
        *out = c->advertise;
        if (idp)
            *idp = (unsigned)id;
        rc = 0;
    } else {
        ctl_print(o, 2, "floodshare: %s: no peer %s in %s (give HOST:PORT for a peer "
                  "elsewhere)", cmd, s, dir);
    }
    free(c);
    return rc;
}

int cmd_peer_addr(const struct cmd_env *e, struct ctl_out *o, const char *cmd, const char *s,
                  struct fs_addr *out, unsigned *id)
{
    const char *why = NULL;

    if (id)
        *id = 0;
    if (s[0] && strspn(s, "0123456789") == strlen(s))
        return resolve_id(e, o, cmd, s, out, id);
    if (addr_parse(s, strlen(s), out, &why) == FS_OK)
        return 0;
    ctl_print(o, 2, "floodshare: %s: \"%s\" is not a peer: give a peer id of the run folder or "
              "HOST:PORT ([v6]:PORT for IPv6): %s", cmd, s, why ? why : "bad address");
    return -1;
}

/* A PATH argument as the wire takes it: "" (top level) or a path_valid()
 * path; trailing slashes are dropped ("docs/" is "docs"). */
static int parse_path(struct ctl_out *o, const char *cmd, const char *s, char *out, size_t cap,
                      int allow_top)
{
    size_t n = strlen(s);

    while (n > 1 && s[n - 1] == '/')
        n--;
    if (n < cap && (n == 0 ? allow_top : path_valid(s, n) && s[0] != '/')) {
        memcpy(out, s, n);
        out[n] = '\0';
        return 0;
    }
    ctl_print(o, 2, "floodshare: %s: \"%s\" is not a path inside a share (relative, no . or .. "
              "component, no empty component, at most %d bytes)", cmd, s, PATH_MAX_LEN);
    return -1;
}

static void time_text(uint64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) && strftime(out, 32, "%Y-%m-%d %H:%M:%S", &tm) > 0)
        return;
    snprintf(out, 32, "%" PRIu64, t);
}

static void entry_text(struct ctl_out *o, const struct listing_entry *e)
{
    char size[24], when[32];

    if (e->size_known)
        snprintf(size, sizeof size, "%" PRIu64, e->size);
    else
        snprintf(size, sizeof size, "?");
    time_text(e->mtime, when);
    ctl_print(o, 1, "  %-6s %14s  %-32s  %s  %s%s", msg_kind_name(e->kind), size,
              e->md5[0] ? e->md5 : "(not hashed yet)", when, e->name,
              e->kind == MSG_KIND_FOLDER ? "/" : "");
}

static void entry_json(struct json *j, const struct listing_entry *e)
{
    json_obj_open(j, NULL);
    json_str(j, "name", e->name);
    json_str(j, "kind", msg_kind_name(e->kind));
    if (e->size_known)
        json_uint(j, "size", e->size);
    else
        json_str(j, "size", NULL);
    json_str(j, "md5", e->md5[0] ? e->md5 : NULL);
    json_bool(j, "hashed", e->md5[0] != '\0');
    json_uint(j, "mtime", e->mtime);
    json_str(j, "root", e->root[0] ? e->root : NULL);
    json_obj_close(j);
}

int cmd_browse(const struct cmd_env *e, int argc, char **argv, struct ctl_out *o)
{
    struct bargs a;
    struct fs_addr holder;
    char path[PATH_MAX_LEN + 1] = "", err[512], h[ADDR_STR_MAX];
    struct browse_conn bc;
    struct json j;
    int code = CTL_EXIT_FAIL;

    if (bargs_parse(argc, argv, &a, o) < 0)
        return CTL_EXIT_USAGE;
    if (a.n < 1 || a.n > 2) {
        ctl_print(o, 2, "usage: peer N browse M [PATH] [--json]   (M: a peer id or HOST:PORT)");
        return CTL_EXIT_USAGE;
    }
    if (cmd_peer_addr(e, o, "browse", a.pos[0], &holder, NULL) < 0 ||
        (a.n == 2 && parse_path(o, "browse", a.pos[1], path, sizeof path, 1) < 0))
        return CTL_EXIT_USAGE;
    addr_format(&holder, h);
    if (browse_connect(e->node, &holder, &bc, err, sizeof err) != FS_OK) {
        ctl_print(o, 2, "floodshare: browse: %s", err);
        return CTL_EXIT_FAIL;
    }
    if (a.json) {
        json_init(&j, BROWSE_JSON_MAX);
        json_obj_open(&j, NULL);
        json_str(&j, "holder", h);
        json_str(&j, "path", path);
        json_arr_open(&j, "entries");
    }
    uint64_t offset = 0, listed = 0, pages = 0, total = 0;
    unsigned peer = 0;
    uint64_t t0 = net_now_ms();
    for (;;) {
        struct browse_result r;
        fs_status st = browse_fetch_page(&bc, path, offset, &r, err, sizeof err);
        if (st) {
            ctl_print(o, 2, "floodshare: browse: %s", err);
            goto out;
        }
        if (pages == 0 && !a.json)
            ctl_print(o, 1, "peer %u %s, %s%s: %" PRIu64 " entr%s", r.peer, h,
                      path[0] ? path : "top level", path[0] ? "/" : "", r.total,
                      r.total == 1 ? "y" : "ies");
        peer = r.peer;
        total = r.total;
        pages++;
        for (size_t i = 0; i < r.count; i++) {
            if (a.json)
                entry_json(&j, &r.entries[i]);
            else
                entry_text(o, &r.entries[i]);
        }
        listed += r.count;
        offset = r.next;
        browse_result_free(&r);
        if (offset >= total)
            break;
        if (o->broken || ctl_client_gone(o) || node_stopping(e->node))
            goto out; /* the client left (Ctrl-C): nobody reads the rest */
    }
    code = CTL_EXIT_OK;
out:
    browse_close(&bc);
    if (!a.json)
        return code;
    json_arr_close(&j);
    json_uint(&j, "peer", peer);
    json_uint(&j, "total", total);
    json_uint(&j, "listed", listed);
    json_uint(&j, "pages", pages);
    json_uint(&j, "page_entries", BROWSE_PAGE_ENTRIES);
    json_double(&j, "seconds", (double)(net_now_ms() - t0) / 1000.0);
    json_bool(&j, "ok", code == CTL_EXIT_OK);
    json_obj_close(&j);
    size_t len;
    const char *doc = json_result(&j, &len);
    if (!doc) {
        ctl_print(o, 2, "floodshare: browse: the listing is too large for --json");
        code = CTL_EXIT_FAIL;
    } else if (code == CTL_EXIT_OK) {
        ctl_write(o, 1, doc, len);
    }
    json_free(&j);
    return code;
}

int cmd_is_get_from(int argc, char **argv)
{
    int pos = 0;

    if (argc < 4 || strcmp(argv[0], "get") != 0)
        return 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            continue;
        if (++pos == 2)
            return strcmp(argv[i], "from") == 0;
    }
    return 0;
}

/* Finds the entry name in folder dir of bc's holder, page by page (names
 * come sorted, so the walk stops at the first page that passes it). FS_OK
 * with *out and *peer; FS_ENOTFOUND; or why not in err. */
static fs_status find_entry(struct browse_conn *bc, const char *dir, const char *name,
                            struct listing_entry *out, unsigned *peer, char *err, size_t cap)
{
    uint64_t offset = 0;

    for (;;) {
        struct browse_result r;
        fs_status st = browse_fetch_page(bc, dir, offset, &r, err, cap);
        if (st)
            return st;
        *peer = r.peer;
        int past = 0;
        for (size_t i = 0; i < r.count && !past; i++) {
            int c = strcmp(r.entries[i].name, name);
            if (c == 0) {
                *out = r.entries[i];
                browse_result_free(&r);
                return FS_OK;
            }
            past = c > 0;
        }
        offset = r.next;
        browse_result_free(&r);
        if (past || offset >= r.total) {
            snprintf(err, cap, "not found in the listing");
            return FS_ENOTFOUND;
        }
    }
}

void cmd_browse_hit(struct msg *hit, const struct fs_addr *holder, unsigned peer,
                     const char *path, const struct listing_entry *e)
{
    unsigned char r[8];
    static const char hex[] = "0123456789abcdef";

    memset(hit, 0, sizeof *hit);
    hit->type = MSG_FOUND;
    /* No query went out: a fresh id names this download in the trace. */
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        memset(r, 0, sizeof r);
    for (size_t i = 0; i < sizeof r; i++) {
        hit->qid[2 * i] = hex[r[i] >> 4];
        hit->qid[2 * i + 1] = hex[r[i] & 15];
    }
    hit->from = *holder;
    hit->holder = *holder;
    hit->peer_id = peer;
    hit->kind = e->kind;
    hit->size = e->size;
    memcpy(hit->md5, e->md5, sizeof hit->md5);
    memcpy(hit->root, e->root, sizeof hit->root);
    snprintf(hit->path, sizeof hit->path, "%s", path);
    snprintf(hit->name, sizeof hit->name, "%s", e->name);
}

struct from_ctx {
    struct ctl_out *o;
    uint64_t deadline;
};

static int from_cancelled(void *ctx)
{
    struct from_ctx *f = ctx;
    return ctl_client_gone(f->o) || net_now_ms() >= f->deadline;
}

static void from_progress(void *ctx, const struct xfer_event *ev)
{
    struct from_ctx *f = ctx;
    struct ctl_progress pr;

    memset(&pr, 0, sizeof pr);
    pr.done = ev->done;
    pr.total = ev->total;
    pr.resumed = ev->resumed_from;
    pr.rate = (uint64_t)ev->rate;
    pr.peer = ev->peer;
    addr_format(ev->holder, pr.holder);
    snprintf(pr.name, sizeof pr.name, "%s", ev->name);
    ctl_send_progress(f->o, &pr);
}

static void from_json(struct ctl_out *o, const char *name, const char *path,
                      const struct msg *hit, int ok, const struct xfer_result *res,
                      const char *error)
{
    struct json j;
    char h[ADDR_STR_MAX];

    json_init(&j, 64 * 1024);
    json_obj_open(&j, NULL);
    json_str(&j, "name", name);
    json_str(&j, "path", path);
    json_bool(&j, "ok", ok);
    json_str(&j, "holder", addr_format(&hit->holder, h));
    if (hit->md5[0]) {
        json_uint(&j, "peer", hit->peer_id);
        json_str(&j, "kind", msg_kind_name(hit->kind));
        json_uint(&j, "size", hit->size);
        json_str(&j, "md5", hit->md5);
    }
    if (ok) {
        json_uint(&j, "bytes", res->bytes);
        json_uint(&j, "resumed_from", res->resumed_from);
        json_double(&j, "seconds", res->seconds);
        json_double(&j, "ttfb_seconds", res->ttfb);
    } else {
        json_str(&j, "error", error);
    }
    json_obj_close(&j);
    size_t len;
    const char *doc = json_result(&j, &len);
    if (doc)
        ctl_write(o, 1, doc, len);
    json_free(&j);
}

int cmd_get_from(const struct cmd_env *e, int argc, char **argv, struct ctl_out *o)
{
    struct bargs a;
    struct fs_addr holder;
    struct listing_entry ent;
    struct browse_conn bc;
    struct xfer_result res;
    struct msg hit;
    char path[PATH_MAX_LEN + 1], dir[PATH_MAX_LEN + 1], err[512], error[8192] = "";
    char final[PATH_MAX + PATH_MAX_LEN + 2], h[ADDR_STR_MAX];
    unsigned peer = 0;
    fs_status st;

    memset(&res, 0, sizeof res);
    memset(&hit, 0, sizeof hit);
    if (bargs_parse(argc, argv, &a, o) < 0)
        return CTL_EXIT_USAGE;
    if (a.n != 3 || strcmp(a.pos[1], "from") != 0) {
        ctl_print(o, 2, "usage: peer N get PATH from M [--json]   (M: a peer id or HOST:PORT)");
        return CTL_EXIT_USAGE;
    }
    if (parse_path(o, "get", a.pos[0], path, sizeof path, 0) < 0 ||
        cmd_peer_addr(e, o, "get", a.pos[2], &holder, NULL) < 0)
        return CTL_EXIT_USAGE;
    hit.holder = holder;
    addr_format(&holder, h);
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 0, path);
    const struct cfg *c = node_cfg_get(e->node);
    uint64_t deadline = c->get_timeout_ms ? net_now_ms() + c->get_timeout_ms : UINT64_MAX;
    snprintf(final, sizeof final, "%s/%s", c->share_dir, name);
    int exists = access(final, F_OK) == 0 || errno != ENOENT;
    if (exists)
        snprintf(error, sizeof error, "\"%s\" already exists in %s: not overwritten", name,
                 c->share_dir);
    node_cfg_put(c);
    if (exists)
        goto out;
    if (browse_connect(e->node, &holder, &bc, err, sizeof err) != FS_OK) {
        snprintf(error, sizeof error, "%s", err);
        goto out;
    }
    st = find_entry(&bc, dir, name, &ent, &peer, err, sizeof err);
    browse_close(&bc);
    if (st == FS_ENOTFOUND && strcmp(err, "not found in the listing") == 0) {
        snprintf(error, sizeof error, "not found: %s has no \"%s\"", h, path);
        goto out;
    }
    if (st) {
        snprintf(error, sizeof error, "%s", err);
        goto out;
    }
    if (!ent.md5[0]) {
        snprintf(error, sizeof error, "\"%s\" is not hashed yet at %s: try again in a moment",
                 path, h);
        goto out;
    }
    cmd_browse_hit(&hit, &holder, peer, path, &ent);
    if (!a.json)
        ctl_print(o, 1, "peer %u %s has \"%s\" (%s, %" PRIu64 " bytes): downloading, no query "
                  "sent", peer, h, path, msg_kind_name(ent.kind), ent.size);
    struct from_ctx fc = {.o = o, .deadline = deadline};
    struct xfer_watch watch = {.progress = from_progress, .cancelled = from_cancelled, .ctx = &fc};
    st = xfer_fetch(e->xfers, &hit, &watch, &res);
    if (st == FS_OK) {
        double mbs = res.seconds > 0 ? (double)res.bytes / res.seconds / 1e6 : 0;
        if (a.json)
            from_json(o, name, path, &hit, 1, &res, NULL);
        else
            ctl_print(o, 1, "downloaded \"%s\" from peer %u: %" PRIu64 " bytes in %.2f s "
                      "(%.1f MB/s), MD5 %s verified", name, peer, hit.size, res.seconds, mbs,
                      hit.md5);
        return CTL_EXIT_OK;
    }
    if (st == FS_ECANCELED)
        snprintf(error, sizeof error, "%s: the partial download is kept, `get %s from %s` "
                 "resumes it", res.why, path, a.pos[2]);
    else
        snprintf(error, sizeof error, "%s", res.why);
out:
    if (a.json)
        from_json(o, name, path, &hit, 0, &res, error);
    else
        ctl_print(o, 2, "floodshare: get: %s", error);
    return CTL_EXIT_FAIL;
}
