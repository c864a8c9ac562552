/* link.c - a small cache of outgoing flood connections. */
#include "floodshare/link.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "floodshare/conn.h"
#include "floodshare/net.h"

struct link {
    struct fs_addr to;
    _Atomic int fd;      /* -1 when not connected; atomic for links_shutdown() */
    int in_use;          /* slot holds a destination */
    uint64_t last_used;  /* ms, for idle and LRU */
    uint64_t down_until; /* ms; 0 when not down */
    unsigned users;      /* senders between the table lock and their send: not evictable */
    pthread_mutex_t send_lock; /* serialises writes on fd */
};

/* `lock` guards the table: every slot's to, in_use, last_used, down_until
 * and users. A slot's fd is opened, written and closed only under its
 * send_lock. A sender pins its slot (users++) under `lock`, releases
 * `lock`, and only then waits for send_lock, so a slow send to one
 * destination never blocks sends to the others; a pinned slot is never
 * evicted. Order: lock, then send_lock (eviction only, on an unpinned slot
 * whose send_lock nobody holds); never the reverse. */
struct links {
    struct links_opts o;
    pthread_mutex_t lock;
    struct link *slots;
};

struct links *links_new(const struct links_opts *opts)
{
    struct links *l = calloc(1, sizeof *l);

    if (!l)
        return NULL;
    l->o = *opts;
    l->slots = calloc(opts->max_links, sizeof *l->slots);
    if (!l->slots) {
        free(l);
        return NULL;
    }
    pthread_mutex_init(&l->lock, NULL);
    for (size_t i = 0; i < opts->max_links; i++) {
        l->slots[i].fd = -1;
        pthread_mutex_init(&l->slots[i].send_lock, NULL);
    }
    return l;
}

void links_free(struct links *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->o.max_links; i++) {
        if (l->slots[i].fd >= 0)
            close(l->slots[i].fd);
        pthread_mutex_destroy(&l->slots[i].send_lock);
    }
    pthread_mutex_destroy(&l->lock);
    free(l->slots);
    free(l);
}

/* The slot for `to`: its own, else a free one, else the least recently
 * used one, reset for `to`. Called with l->lock held. An evicted slot's fd
 * is closed under its send_lock, so no sender is using it. */
static struct link *slot_for(struct links *l, const struct fs_addr *to)
{
    struct link *free_slot = NULL, *lru = NULL;

    for (size_t i = 0; i < l->o.max_links; i++) {
        struct link *k = &l->slots[i];
        if (k->in_use && addr_equal(&k->to, to))
            return k;
        if (!k->in_use) {
            if (!free_slot)
                free_slot = k;
        } else if (k->users == 0 && (!lru || k->last_used < lru->last_used)) {
            lru = k;
        }
    }
    struct link *v = free_slot ? free_slot : lru;
    if (!v)
        return NULL; /* every slot is busy sending */
    pthread_mutex_lock(&v->send_lock);
    if (v->fd >= 0)
        close(v->fd);
    v->fd = -1;
    pthread_mutex_unlock(&v->send_lock);
    v->to = *to;
    v->in_use = 1;
    v->down_until = 0;
    v->last_used = 0;
    return v;
}

/* A cached connection the receiver has closed shows up as readable (EOF
 * or an ERROR it sent before closing): such a link must not be reused,
 * or the message would be lost in a dead socket. */
static int link_stale(const struct link *k, uint64_t idle_for, uint32_t idle_ms)
{
    if (k->fd < 0)
        return 1;
    if (idle_for > idle_ms)
        return 1;
    return net_wait_readable(k->fd, 0) != 0;
}

static fs_status send_on(struct links *l, struct link *k, const struct fs_addr *to,
                         const struct msg *m, uint64_t idle_for)
{
    char line[MSG_MAX_HEADER];
    int n = msg_format(m, line, sizeof line);

    if (n < 0)
        return FS_EINVAL;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (attempt > 0 || link_stale(k, idle_for, l->o.idle_ms)) {
            int fd;
            if (k->fd >= 0)
                close(k->fd);
            k->fd = -1;
            fs_status st = net_connect_tcp(to, l->o.connect_timeout_ms, &fd);
            if (st)
                return st;
            k->fd = fd;
        }
        if (net_write_all(k->fd, line, (size_t)n, l->o.io_timeout_ms) == FS_OK)
            return FS_OK;
    }
    return FS_EIO;
}

fs_status links_send(struct links *l, const struct fs_addr *to, const struct msg *m)
{
    uint64_t now = net_now_ms();

    pthread_mutex_lock(&l->lock);
    struct link *k = slot_for(l, to);
    if (!k || k->down_until > now) {
        pthread_mutex_unlock(&l->lock);
        return FS_EBUSY;
    }
    uint64_t idle_for = k->last_used ? now - k->last_used : UINT64_MAX;
    k->last_used = now;
    k->users++;
    pthread_mutex_unlock(&l->lock);

    pthread_mutex_lock(&k->send_lock);
    fs_status st = send_on(l, k, to, m, idle_for);
    pthread_mutex_unlock(&k->send_lock);

    pthread_mutex_lock(&l->lock);
    k->users--;
    k->down_until = (st == FS_ECONNECT || st == FS_ETIMEDOUT) ? net_now_ms() + l->o.down_ms : 0;
    pthread_mutex_unlock(&l->lock);
    return st;
}

void links_shutdown(struct links *l)
{
    pthread_mutex_lock(&l->lock);
    for (size_t i = 0; i < l->o.max_links; i++)
        if (l->slots[i].fd >= 0)
            shutdown(l->slots[i].fd, SHUT_RDWR);
    pthread_mutex_unlock(&l->lock);
}
