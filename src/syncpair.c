/* syncpair.c - the automatic sync pairs of [sync]: one thread that runs
 * sync_run() for each pair when M or this peer changes it, or at the
 * interval (syncpair.h). */
#include "floodshare/syncpair.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "floodshare/browse.h"
#include "floodshare/cfg.h"
#include "floodshare/cmd.h"
#include "floodshare/conn.h"
#include "floodshare/ctl.h"
#include "floodshare/json.h"
#include "floodshare/log.h"
#include "floodshare/msg.h"
#include "floodshare/net.h"
#include "floodshare/node.h"
#include "floodshare/rundir.h"
#include "floodshare/share.h"
#include "floodshare/sync.h"

#define SYNCPAIR_BACKOFF_MIN_MS 1000
#define SYNCPAIR_FRESH_MS 2000 /* how long a finished sync waits for the index to show it */
#define SYNCPAIR_JSON_MAX (256u * 1024)

enum pair_state { PAIR_IDLE, PAIR_SYNCING, PAIR_WAITING, PAIR_CONFLICT };

static const char *const state_names[] = {"idle", "syncing", "waiting", "conflict"};

/* What `sync status` shows of a pair: written by the sync thread, read by
 * control threads, under the set's lock. */
struct pair_status {
    enum pair_state state;
    int watching;        /* the WATCH connection to M is up */
    int64_t last_sync;   /* unix seconds the last sync ended; 0: none yet */
    unsigned syncs;      /* syncs run since start */
    int code;            /* the last sync's exit code */
    uint64_t bytes;      /* fetched from M by the last sync */
    uint64_t reused;     /* taken from this peer's own copy by it */
    uint64_t bytes_total; /* fetched from M since start */
    unsigned files, conflicts; /* of the last sync */
    char error[256];     /* why the last sync, or the watch, failed; "" */
};

/* One pair. Everything but st is the sync thread's alone. */
struct pair {
    struct cfg_sync_pair cfg;
    struct browse_conn bc;   /* the WATCH connection, when bc.open */
    uint64_t retry_at;       /* net_now_ms() when the WATCH is dialled again */
    unsigned backoff_ms;     /* the wait after the next failure */
    uint64_t backstop_at;    /* the interval's next sync */
    int due;                 /* run at the next turn */
    char n_md5[MSG_MD5_LEN + 1]; /* this peer's md5 of NAME as the last sync left it */
    char m_md5[MSG_MD5_LEN + 1]; /* M's, as its last CHANGED said ("" unknown or none) */
    struct pair_status st;
};

struct syncpairs {
    struct cmd_env env; /* a copy: the planes it names outlive the set */
    uint64_t interval_ms;
    int efd;            /* eventfd: this peer's share changed, or stop */
    atomic_int stop;
    pthread_t thread;
    int started;
    pthread_mutex_t lock; /* guards every pair's st; a leaf lock */
    size_t n;
    struct pair p[];
};

/* --- the status, under the lock --- */

static void status_set(struct syncpairs *sp, struct pair *p, enum pair_state s)
{
    pthread_mutex_lock(&sp->lock);
    p->st.state = s;
    pthread_mutex_unlock(&sp->lock);
}

/* The state a pair rests in after a sync or a change of its watch. */
static enum pair_state rest_state(const struct pair *p)
{
    if ((p->st.syncs && p->st.code) || !p->st.watching)
        return PAIR_WAITING; /* for M: the last sync failed, or its watch is down */
    return p->st.syncs && p->st.conflicts ? PAIR_CONFLICT : PAIR_IDLE;
}

static void watch_status(struct syncpairs *sp, struct pair *p, int up, const char *why)
{
    pthread_mutex_lock(&sp->lock);
    p->st.watching = up;
    if (why)
        snprintf(p->st.error, sizeof p->st.error, "%s", why);
    if (p->st.state != PAIR_SYNCING)
        p->st.state = rest_state(p);
    pthread_mutex_unlock(&sp->lock);
}

/* --- M's address --- */

/* The address of the pair's M: HOST:PORT as written, or the advertised
 * address in the INI of peer id PEER of the run folder, read now (the peer
 * may have moved since this one started). 0, or -1 with err. */
static int pair_addr(struct syncpairs *sp, const struct pair *p, struct fs_addr *out,
                     char *err, size_t cap)
{
    char path[RUNDIR_PATH_MAX], why[RUNDIR_ERR_MAX], cerr[CFG_ERR_MAX];

    if (!p->cfg.peer_id) {
        *out = p->cfg.addr;
        return 0;
    }
    struct cfg *c = malloc(sizeof *c);
    int rc = -1;
    if (!c) {
        snprintf(err, cap, "out of memory");
    } else if (rundir_ini_path(node_run_dir(sp->env.node), p->cfg.peer_id, path, sizeof path,
                               why, sizeof why) != FS_OK ||
               cfg_load(path, c, cerr, sizeof cerr) != FS_OK) {
        snprintf(err, cap, "no peer %u in %s", p->cfg.peer_id, node_run_dir(sp->env.node));
    } else {
        *out = c->advertise;
        rc = 0;
    }
    free(c);
    return rc;
}

/* --- the WATCH connection --- */

static void watch_close(struct syncpairs *sp, struct pair *p, const char *why)
{
    char esc[LOG_ESCAPE_BUF];

    if (p->bc.open) {
        browse_close(&p->bc);
        log_msg(L_INFO, "sync %s: watch of peer %s lost (%s); again in %u ms",
                log_escape_str(esc, p->cfg.name), p->cfg.peer, why, p->backoff_ms);
    }
    p->retry_at = net_now_ms() + p->backoff_ms;
    p->backoff_ms = p->backoff_ms * 2 > SYNCPAIR_BACKOFF_MAX_MS ? SYNCPAIR_BACKOFF_MAX_MS
                                                                : p->backoff_ms * 2;
    watch_status(sp, p, 0, why);
}

/* Dials M and sends WATCH. M answers CHANGED at once; the pair runs then
 * if M's md5 is not ours (watch_read()). */
static void watch_open(struct syncpairs *sp, struct pair *p)
{
    char err[256];
    struct fs_addr at;
    struct msg m;

    if (pair_addr(sp, p, &at, err, sizeof err) < 0) {
        watch_close(sp, p, err);
        return;
    }
    if (browse_connect(sp->env.node, &at, &p->bc, err, sizeof err) != FS_OK) {
        watch_close(sp, p, err);
        return;
    }
    memset(&m, 0, sizeof m);
    m.type = MSG_WATCH;
    m.from = *node_self(sp->env.node);
    memcpy(m.path, p->cfg.name, sizeof p->cfg.name);
    if (conn_send_msg(&p->bc.c, &m, p->bc.c.timeout_ms) != FS_OK) {
        watch_close(sp, p, "cannot send WATCH");
        return;
    }
    p->backoff_ms = SYNCPAIR_BACKOFF_MIN_MS;
    watch_status(sp, p, 1, "");
}

/* Reads what M sent on the watch: CHANGED lines for our NAME. Anything
 * else (ERROR included: M refused) ends the watch. */
static void watch_read(struct syncpairs *sp, struct pair *p)
{
    fs_status st = conn_fill(&p->bc.c);

    if (st != FS_OK && st != FS_NEED_MORE) {
        watch_close(sp, p, "M closed the connection");
        return;
    }
    while (p->bc.open && conn_ready(&p->bc.c)) {
        struct msg m;
        const char *why = "";
        if (conn_read_msg(&p->bc.c, &m, 0, &why) != FS_OK) {
            watch_close(sp, p, why);
            return;
        }
        if (m.type == MSG_ERROR) {
            char text[300];
            snprintf(text, sizeof text, "M refused the watch: %s", m.text);
            watch_close(sp, p, text);
            return;
        }
        if (m.type != MSG_CHANGED || strcmp(m.path, p->cfg.name) != 0) {
            watch_close(sp, p, "M sent something other than CHANGED for this item");
            return;
        }
        /* No md5: M has no such item (or is rewriting it): nothing to pull. */
        memcpy(p->m_md5, m.md5, sizeof p->m_md5);
        if (m.md5[0] && strcmp(m.md5, p->n_md5) != 0)
            p->due = 1;
    }
}

/* --- running a pair --- */

/* This peer's md5 of NAME now ("" when it has none). */
static void own_md5(struct syncpairs *sp, const char *name, char md5[MSG_MD5_LEN + 1])
{
    struct share_item it;
    struct share *sh = node_share_get(sp->env.node);

    md5[0] = '\0';
    if (share_lookup(sh, name, &it) == FS_OK)
        memcpy(md5, it.md5, MSG_MD5_LEN + 1);
    node_share_put(sp->env.node);
}

static void pair_run(struct syncpairs *sp, struct pair *p)
{
    struct sync_result res;
    struct fs_addr at;
    char esc[LOG_ESCAPE_BUF];

    p->due = 0;
    p->backstop_at = net_now_ms() + sp->interval_ms;
    status_set(sp, p, PAIR_SYNCING);
    memset(&res, 0, sizeof res);
    if (pair_addr(sp, p, &at, res.error, sizeof res.error) < 0)
        res.code = CTL_EXIT_FAIL;
    else
        sync_run(&sp->env, p->cfg.name, &at, 0, NULL, &res);
    /* The index shows what the sync did before its md5 is taken as ours:
     * else our own rescan would look like a local edit. */
    struct share *sh = node_share_get(sp->env.node);
    share_refresh_wait(sh, SYNCPAIR_FRESH_MS);
    node_share_put(sp->env.node);
    own_md5(sp, p->cfg.name, p->n_md5);
    /* Ours is not M's after a sync that worked: M changed again (its
     * CHANGED may be on the way) or this peer's copy was edited while the
     * sync ended (kept aside by the next one). Either way, once more. */
    if (!res.code && p->bc.open && p->m_md5[0] && strcmp(p->n_md5, p->m_md5) != 0)
        p->due = 1;
    log_msg(res.code ? L_WARN : L_INFO, "sync %s from peer %s: %s, %" PRIu64 " bytes fetched, "
            "%u conflicts", log_escape_str(esc, p->cfg.name), p->cfg.peer,
            res.code ? res.error : "done", res.bytes, res.conflicts);
    pthread_mutex_lock(&sp->lock);
    p->st.syncs++;
    p->st.last_sync = (int64_t)time(NULL);
    p->st.code = res.code;
    p->st.bytes = res.bytes;
    p->st.reused = res.reused;
    p->st.bytes_total += res.bytes;
    p->st.files = res.files;
    p->st.conflicts = res.conflicts;
    snprintf(p->st.error, sizeof p->st.error, "%s", res.code ? res.error : "");
    p->st.state = rest_state(p);
    pthread_mutex_unlock(&sp->lock);
}

/* The share listener (node.h), on the share's thread: wakes the sync
 * thread only; it compares md5s itself. */
static void share_changed(void *arg)
{
    struct syncpairs *sp = arg;
    uint64_t one = 1;

    if (write(sp->efd, &one, sizeof one) < 0) {
        /* The counter is already set: the thread will look. */
    }
}

/* After a wake-up from the share: a pair whose item is no longer what the
 * last sync left runs (a local edit is set aside as a conflict at once). */
static void check_own(struct syncpairs *sp)
{
    char md5[MSG_MD5_LEN + 1];

    for (size_t i = 0; i < sp->n; i++) {
        own_md5(sp, sp->p[i].cfg.name, md5);
        /* An item missing from the index is also one being rewritten (a
         * rescan leaves it out until it holds still, then tells again):
         * only a new md5 is a change; a removal waits for the backstop. */
        if (md5[0] && strcmp(md5, sp->p[i].n_md5) != 0)
            sp->p[i].due = 1;
    }
}

/* How long poll() may sleep: until the earliest backstop or redial; -1
 * never happens (the interval is always set), so an idle pair wakes once
 * per interval and otherwise costs nothing. */
static int sleep_ms(struct syncpairs *sp, uint64_t now)
{
    uint64_t next = UINT64_MAX;

    for (size_t i = 0; i < sp->n; i++) {
        struct pair *p = &sp->p[i];
        if (p->due || (p->bc.open && conn_pending(&p->bc.c)))
            return 0;
        if (p->backstop_at < next)
            next = p->backstop_at;
        if (!p->bc.open && p->retry_at < next)
            next = p->retry_at;
    }
    if (next <= now)
        return 0;
    return next - now > 3600000 ? 3600000 : (int)(next - now);
}

static void *sync_main(void *arg)
{
    struct syncpairs *sp = arg;
    struct pollfd *pf = calloc(sp->n + 1, sizeof *pf);

    pthread_setname_np(pthread_self(), "fs-sync");
    if (!pf) {
        log_msg(L_ERROR, "sync: out of memory: [sync] pairs are not kept in step");
        return NULL;
    }
    while (!atomic_load(&sp->stop) && !node_stopping(sp->env.node)) {
        uint64_t now = net_now_ms();
        for (size_t i = 0; i < sp->n; i++) {
            struct pair *p = &sp->p[i];
            /* A new watch is answered with M's md5 now: a change made
             * while it was down is seen then (watch_read()). */
            if (!p->bc.open && now >= p->retry_at)
                watch_open(sp, p);
            if (now >= p->backstop_at)
                p->due = 1;
        }
        /* One pair at a time, in turn; a wake-up meanwhile waits in efd. */
        for (size_t i = 0; i < sp->n && !atomic_load(&sp->stop); i++)
            if (sp->p[i].due)
                pair_run(sp, &sp->p[i]);
        pf[0] = (struct pollfd){.fd = sp->efd, .events = POLLIN};
        for (size_t i = 0; i < sp->n; i++)
            pf[i + 1] = (struct pollfd){.fd = sp->p[i].bc.open ? sp->p[i].bc.c.fd : -1,
                                        .events = POLLIN};
        int n = poll(pf, sp->n + 1, sleep_ms(sp, net_now_ms()));
        if (n < 0 && errno != EINTR) {
            log_msg(L_ERROR, "sync: poll: %s: [sync] pairs are no longer kept in step",
                    strerror(errno));
            break;
        }
        if (atomic_load(&sp->stop))
            break;
        if (n > 0 && pf[0].revents) {
            uint64_t v;
            if (read(sp->efd, &v, sizeof v) < 0) {
                /* EAGAIN: another wake-up took it */
            }
            check_own(sp);
        }
        for (size_t i = 0; i < sp->n; i++)
            if (sp->p[i].bc.open && (pf[i + 1].revents || conn_pending(&sp->p[i].bc.c)))
                watch_read(sp, &sp->p[i]);
    }
    for (size_t i = 0; i < sp->n; i++)
        if (sp->p[i].bc.open)
            browse_close(&sp->p[i].bc);
    free(pf);
    return NULL;
}

fs_status syncpairs_start(struct syncpairs **out, const struct cmd_env *e, const struct cfg *c)
{
    pthread_attr_t at;
    sigset_t all, old;
    struct syncpairs *sp;

    *out = NULL;
    if (c->n_sync == 0)
        return FS_OK;
    sp = calloc(1, sizeof *sp + c->n_sync * sizeof sp->p[0]);
    if (!sp)
        return FS_ENOMEM;
    sp->env = *e;
    sp->interval_ms = (uint64_t)c->sync_interval * 1000;
    sp->n = c->n_sync;
    atomic_init(&sp->stop, 0);
    pthread_mutex_init(&sp->lock, NULL);
    uint64_t now = net_now_ms();
    for (size_t i = 0; i < sp->n; i++) {
        sp->p[i].cfg = c->sync[i];
        sp->p[i].due = 1; /* on start */
        sp->p[i].backoff_ms = SYNCPAIR_BACKOFF_MIN_MS;
        sp->p[i].retry_at = now;
        sp->p[i].backstop_at = now + sp->interval_ms;
        sp->p[i].st.state = PAIR_WAITING;
        snprintf(sp->p[i].n_md5, sizeof sp->p[i].n_md5, "-"); /* not yet looked at */
    }
    sp->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (sp->efd < 0 || node_on_share_change(e->node, share_changed, sp) != FS_OK) {
        syncpairs_free(sp);
        return FS_ENOMEM;
    }
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, SYNCPAIR_STACK);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&sp->thread, &at, sync_main, sp);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&at);
    if (rc) {
        /* The share may already call share_changed(): keep sp, with no thread. */
        log_msg(L_ERROR, "sync: cannot start the sync thread: %s", strerror(rc));
        *out = sp;
        return FS_ENOMEM;
    }
    sp->started = 1;
    *out = sp;
    return FS_OK;
}

void syncpairs_stop(struct syncpairs *sp)
{
    uint64_t one = 1;

    if (!sp || !sp->started)
        return;
    atomic_store(&sp->stop, 1);
    if (write(sp->efd, &one, sizeof one) < 0) {
        /* already signalled */
    }
    pthread_join(sp->thread, NULL);
    sp->started = 0;
}

void syncpairs_free(struct syncpairs *sp)
{
    if (!sp)
        return;
    if (sp->efd >= 0)
        close(sp->efd);
    pthread_mutex_destroy(&sp->lock);
    free(sp);
}

/* --- sync status --- */

static void time_text(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (!t || !gmtime_r(&tt, &tm) || !strftime(out, 32, "%Y-%m-%d %H:%M:%S UTC", &tm))
        snprintf(out, 32, "never");
}

int cmd_sync_status(const struct cmd_env *e, int argc, char **argv, struct ctl_out *o)
{
    struct syncpairs *sp = e->pairs;
    int json = 0;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else {
            ctl_print(o, 2, "floodshare: sync status: unexpected argument \"%s\"\nusage: peer "
                      "N sync status [--json]", argv[i]);
            return CTL_EXIT_USAGE;
        }
    }
    size_t n = sp ? sp->n : 0;
    struct pair_status *st = calloc(n ? n : 1, sizeof *st);
    if (!st) {
        ctl_print(o, 2, "floodshare: sync status: out of memory");
        return CTL_EXIT_FAIL;
    }
    if (sp) {
        pthread_mutex_lock(&sp->lock);
        for (size_t i = 0; i < n; i++)
            st[i] = sp->p[i].st;
        pthread_mutex_unlock(&sp->lock);
    }
    const struct cfg *c = node_cfg_get(e->node);
    int rc = CTL_EXIT_OK;
    if (json) {
        struct json j;
        json_init(&j, SYNCPAIR_JSON_MAX);
        json_obj_open(&j, NULL);
        json_uint(&j, "interval", c->sync_interval);
        json_arr_open(&j, "pairs");
        for (size_t i = 0; i < n; i++) {
            json_obj_open(&j, NULL);
            json_str(&j, "name", sp->p[i].cfg.name);
            json_str(&j, "peer", sp->p[i].cfg.peer);
            json_str(&j, "state", state_names[st[i].state]);
            json_bool(&j, "watching", st[i].watching);
            json_int(&j, "last_sync", st[i].last_sync);
            json_uint(&j, "syncs", st[i].syncs);
            json_int(&j, "code", st[i].code);
            json_uint(&j, "bytes", st[i].bytes);
            json_uint(&j, "reused", st[i].reused);
            json_uint(&j, "bytes_total", st[i].bytes_total);
            json_uint(&j, "files", st[i].files);
            json_uint(&j, "conflicts", st[i].conflicts);
            json_str(&j, "error", st[i].error);
            json_obj_close(&j);
        }
        json_arr_close(&j);
        json_obj_close(&j);
        size_t len;
        const char *doc = json_result(&j, &len);
        if (doc)
            ctl_write(o, 1, doc, len);
        else
            rc = CTL_EXIT_FAIL;
        json_free(&j);
    } else if (!n) {
        ctl_print(o, 1, "peer %u keeps no item in step: add NAME = PEER lines under [sync] in "
                  "%s and restart it", c->id, c->path);
    } else {
        ctl_print(o, 1, "peer %u: %zu sync pair%s, a backstop sync every %u s", c->id, n,
                  n == 1 ? "" : "s", c->sync_interval);
        for (size_t i = 0; i < n; i++) {
            char when[32];
            time_text(st[i].last_sync, when);
            ctl_print(o, 1, "  %-24s from %-22s %-8s last %s, %" PRIu64 " bytes fetched%s%s%s",
                      sp->p[i].cfg.name, sp->p[i].cfg.peer, state_names[st[i].state], when,
                      st[i].bytes, st[i].conflicts ? ", conflicts set aside" : "",
                      st[i].error[0] ? ": " : "", st[i].error);
        }
    }
    node_cfg_put(c);
    free(st);
    return rc;
}
