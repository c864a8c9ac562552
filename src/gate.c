/* gate.c - accept connections, hold them until a header is complete. */
#include "floodshare/gate.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "floodshare/log.h"
#include "floodshare/net.h"
#include "floodshare/tls.h"

#define GATE_ACCEPT_BATCH 64 /* accepts per wake-up, so waiting ones get read too */
#define GATE_EMFILE_PAUSE_MS 100

enum slot_state { SLOT_FREE, SLOT_WAITING, SLOT_SERVED };

/* conn comes first: a worker's struct conn * is its slot. */
struct slot {
    struct conn c;
    enum slot_state state;
    char host[INET6_ADDRSTRLEN];
    uint64_t since;      /* when it arrived or was parked */
    uint64_t order;      /* ...as a sequence number: the oldest has the lowest */
    uint64_t first_byte; /* when its pending header began; 0 if none has */
    int handshaking;     /* TLS: its handshake is not over (nothing is read before) */
};

/* lock guards every slot's state, host, since, first_byte, n_open and
 * stopping; a WAITING slot's conn belongs to the gate's thread, a SERVED
 * one to the worker holding it. */
struct gate {
    int listen_fd, wake_fd;
    struct gate_limits lim;
    struct stats *stats;
    gate_ready_fn ready;
    void *arg;
    pthread_mutex_t lock;
    struct slot *slots; /* lim.max_conns of them */
    unsigned n_open;
    uint64_t next_order;
    int stopping;
    /* the gate thread's own */
    struct pollfd *pfd;
    unsigned *pslot;
    uint64_t paused_until;
};

fs_status gate_open(struct gate **out, int listen_fd, const struct gate_limits *lim,
                    struct stats *stats, gate_ready_fn ready, void *arg)
{
    struct gate *g = calloc(1, sizeof *g);

    *out = NULL;
    if (!g)
        return FS_ENOMEM;
    pthread_mutex_init(&g->lock, NULL);
    g->listen_fd = listen_fd;
    g->lim = *lim;
    g->stats = stats;
    g->ready = ready;
    g->arg = arg;
    g->slots = calloc(lim->max_conns, sizeof *g->slots);
    g->pfd = calloc(lim->max_conns + 2, sizeof *g->pfd);
    g->pslot = calloc(lim->max_conns + 2, sizeof *g->pslot);
    g->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    fs_status st = !g->slots || !g->pfd || !g->pslot ? FS_ENOMEM : g->wake_fd < 0 ? FS_EIO : FS_OK;
    /* Accept in batches until EAGAIN, never blocking the gate. */
    int fl = st == FS_OK ? fcntl(listen_fd, F_GETFL) : -1;
    if (st == FS_OK && (fl < 0 || fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) < 0))
        st = FS_EIO;
    if (st) {
        gate_free(g);
        return st;
    }
    *out = g;
    return FS_OK;
}

static void wake(struct gate *g)
{
    uint64_t one = 1;
    if (write(g->wake_fd, &one, sizeof one) < 0) {
        /* the counter is already non-zero: the gate will wake anyway */
    }
}

/* Frees a slot; lock held. */
static void release(struct gate *g, struct slot *s)
{
    conn_close(&s->c);
    s->state = SLOT_FREE;
    g->n_open--;
}

/* The waiting slot that has waited longest, from host if host is not NULL;
 * lock held. */
static struct slot *oldest_waiting(struct gate *g, const char *host)
{
    struct slot *best = NULL;

    for (unsigned i = 0; i < g->lim.max_conns; i++) {
        struct slot *s = &g->slots[i];
        if (s->state == SLOT_WAITING && (!host || strcmp(s->host, host) == 0) &&
            (!best || s->order < best->order))
            best = s;
    }
    return best;
}

static unsigned count_from(struct gate *g, const char *host)
{
    unsigned n = 0;

    for (unsigned i = 0; i < g->lim.max_conns; i++)
        if (g->slots[i].state != SLOT_FREE && strcmp(g->slots[i].host, host) == 0)
            n++;
    return n;
}

/* Takes a slot for a new connection from host, closing the longest waiting
 * one if a limit is reached; NULL when nothing could make room. Lock held. */
static struct slot *make_room(struct gate *g, const char *host)
{
    int per_full = count_from(g, host) >= g->lim.max_per_addr;

    if (per_full || g->n_open >= g->lim.max_conns) {
        struct slot *victim = oldest_waiting(g, per_full ? host : NULL);
        if (!victim)
            return NULL;
        stats_inc(g->stats, limit_refused);
        log_msg(L_DEBUG, "connection from %s waited longest at the %s limit: closed",
                victim->host, per_full ? "max_conns_per_addr" : "max_conns");
        release(g, victim);
    }
    for (unsigned i = 0; i < g->lim.max_conns; i++)
        if (g->slots[i].state == SLOT_FREE)
            return &g->slots[i];
    return NULL;
}

/* An IPv4 peer reaching a dual-stack ("::") listener is named by its IPv4
 * address, as addr_parse() and net_peer_addr() name it. */
static void host_of(const struct sockaddr_storage *sa, char *out, size_t cap)
{
    int family = sa->ss_family;
    const void *a = family == AF_INET6
                        ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                        : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
    if (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)a)) {
        family = AF_INET;
        a = &((const struct in6_addr *)a)->s6_addr[12];
    }
    if (!inet_ntop(family, a, out, (socklen_t)cap))
        snprintf(out, cap, "?");
}

static void admit(struct gate *g, int fd, const char *host, uint64_t now)
{
    /* Replies are a header then a body, written separately: without this,
     * Nagle plus delayed ACKs stall every small reply ~40 ms. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    struct ssl_st *ssl = NULL;
    if (g->lim.tls && !(ssl = tls_new_ssl(g->lim.tls, fd, 1))) {
        log_msg(L_WARN, "connection from %s: cannot start TLS: %s", host, tls_last_error());
        close(fd);
        return;
    }
    pthread_mutex_lock(&g->lock);
    struct slot *s = make_room(g, host);
    if (s) {
        conn_init(&s->c, fd, g->lim.header_ms);
        if (ssl)
            conn_set_tls(&s->c, ssl);
        s->handshaking = ssl != NULL;
        s->state = SLOT_WAITING;
        snprintf(s->host, sizeof s->host, "%s", host);
        s->since = now;
        s->order = g->next_order++;
        s->first_byte = 0;
        g->n_open++;
    }
    pthread_mutex_unlock(&g->lock);
    if (!s) {
        /* Every connection from there (or at all) is being served. */
        stats_inc(g->stats, limit_refused);
        log_msg(L_INFO, "connection from %s refused: connection limit reached", host);
        struct conn tmp;
        conn_init(&tmp, fd, 200);
        if (ssl) /* a plain ERROR would be noise to a TLS client: just close */
            conn_set_tls(&tmp, ssl);
        else
            conn_send_error(&tmp, "busy", "too many connections, try again", 200);
        conn_close(&tmp);
    }
}

static void accept_some(struct gate *g, uint64_t now)
{
    for (int i = 0; i < GATE_ACCEPT_BATCH; i++) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof sa;
        int fd = accept4(g->listen_fd, (struct sockaddr *)&sa, &len, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                /* Out of descriptors: back off instead of spinning. */
                log_msg(L_WARN, "out of file descriptors, pausing accept");
                g->paused_until = now + GATE_EMFILE_PAUSE_MS;
            }
            return; /* EAGAIN: nothing more to accept */
        }
        char host[INET6_ADDRSTRLEN];
        host_of(&sa, host, sizeof host);
        admit(g, fd, host, now);
    }
}

static void dispatch(struct gate *g, struct slot *s)
{
    pthread_mutex_lock(&g->lock);
    s->state = SLOT_SERVED;
    pthread_mutex_unlock(&g->lock);
    g->ready(g->arg, &s->c);
}

static void drop(struct gate *g, struct slot *s)
{
    pthread_mutex_lock(&g->lock);
    release(g, s);
    pthread_mutex_unlock(&g->lock);
}

/* A connection that failed the TLS check: closed before any message was
 * read, counted as drop reason `auth`. */
static void auth_drop(struct gate *g, struct slot *s, const char *why)
{
    stats_inc(g->stats, auth_failed);
    log_msg(L_INFO, "connection from %s: TLS handshake failed (%s): closed", s->host, why);
    drop(g, s);
}

/* One step of a waiting connection's handshake. 1 when it is over (its
 * first message may already be readable), 0 otherwise. */
static int handshake(struct gate *g, struct slot *s, uint64_t now)
{
    fs_status st = conn_handshake_step(&s->c);

    if (st == FS_NEED_MORE)
        return 0;
    if (st != FS_OK) {
        auth_drop(g, s, tls_last_error());
        return 0;
    }
    pthread_mutex_lock(&g->lock);
    s->handshaking = 0;
    s->since = now; /* the idle clock starts now */
    pthread_mutex_unlock(&g->lock);
    return 1;
}

/* Reads what a waiting connection sent; hands it on once a header is there. */
static void service(struct gate *g, struct slot *s, uint64_t now)
{
    if (s->handshaking && !handshake(g, s, now))
        return;
    fs_status st = conn_fill(&s->c);

    if (st == FS_OK) {
        if (!s->first_byte)
            s->first_byte = now;
        if (conn_ready(&s->c))
            dispatch(g, s);
    } else if (st == FS_ECLOSED) {
        /* Cut in the middle of a header: a worker sends the error reply. */
        if (s->c.len > s->c.off)
            dispatch(g, s);
        else
            drop(g, s);
    } else if (st != FS_NEED_MORE) {
        drop(g, s);
    }
}

static uint64_t due_of(const struct gate *g, const struct slot *s)
{
    if (s->handshaking)
        return s->since + (uint64_t)g->lim.handshake_ms;
    return s->first_byte ? s->first_byte + (uint64_t)g->lim.header_ms
                         : s->since + (uint64_t)g->lim.idle_ms;
}

/* Closes waiting connections past their deadline; returns ms until the next
 * one. Holds the lock: a worker may be parking a connection meanwhile. */
static int expire(struct gate *g, uint64_t now)
{
    uint64_t next = UINT64_MAX;

    pthread_mutex_lock(&g->lock);
    for (unsigned i = 0; i < g->lim.max_conns; i++) {
        struct slot *s = &g->slots[i];
        if (s->state != SLOT_WAITING)
            continue;
        uint64_t due = due_of(g, s);
        if (now >= due) {
            if (s->handshaking) {
                stats_inc(g->stats, auth_failed);
                log_msg(L_INFO, "connection from %s: TLS handshake not completed in %d ms "
                        "(silent, or not TLS): closed", s->host, g->lim.handshake_ms);
            } else if (s->first_byte) {
                stats_inc(g->stats, timeouts);
                log_msg(L_INFO, "connection from %s: header not completed in time, closed",
                        s->host);
            }
            release(g, s);
        } else if (due < next) {
            next = due;
        }
    }
    pthread_mutex_unlock(&g->lock);
    if (g->paused_until > now && g->paused_until < next)
        next = g->paused_until;
    return next == UINT64_MAX ? -1 : (int)(next - now);
}

/* Fills the poll set: listen socket, wake fd, every waiting connection.
 * *ready gets 1 when a connection has decrypted bytes waiting in its SSL,
 * which poll(2) would not report: then nobody must wait. */
static unsigned build_pollset(struct gate *g, uint64_t now, int *ready)
{
    unsigned n = 0;

    *ready = 0;
    g->pfd[n++] = (struct pollfd){.fd = g->wake_fd, .events = POLLIN};
    g->pfd[n++] = (struct pollfd){.fd = now < g->paused_until ? -1 : g->listen_fd,
                                  .events = POLLIN};
    pthread_mutex_lock(&g->lock);
    for (unsigned i = 0; i < g->lim.max_conns; i++) {
        struct slot *s = &g->slots[i];
        if (s->state == SLOT_WAITING) {
            g->pslot[n] = i;
            g->pfd[n++] = (struct pollfd){
                .fd = s->c.fd,
                .events = s->handshaking && s->c.want_write ? POLLOUT : POLLIN};
            if (!s->handshaking && conn_pending(&s->c))
                *ready = 1;
        }
    }
    pthread_mutex_unlock(&g->lock);
    return n;
}

void gate_run(struct gate *g)
{
    for (;;) {
        uint64_t now = net_now_ms();
        int timeout = expire(g, now), ready;
        unsigned n = build_pollset(g, now, &ready);
        if (poll(g->pfd, n, ready ? 0 : timeout) < 0 && errno != EINTR)
            break;
        if (g->pfd[0].revents) {
            uint64_t v;
            if (read(g->wake_fd, &v, sizeof v) < 0) {
                /* EAGAIN: another wake-up already drained it */
            }
        }
        pthread_mutex_lock(&g->lock);
        int stopping = g->stopping;
        pthread_mutex_unlock(&g->lock);
        if (stopping)
            break;
        now = net_now_ms();
        for (unsigned i = 2; i < n; i++) {
            struct slot *s = &g->slots[g->pslot[i]];
            if (g->pfd[i].revents || (!s->handshaking && conn_pending(&s->c)))
                service(g, s, now);
        }
        if (g->pfd[1].revents)
            accept_some(g, now);
    }
}

void gate_stop(struct gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->stopping = 1;
    pthread_mutex_unlock(&g->lock);
    wake(g);
}

void gate_park(struct gate *g, struct conn *c)
{
    struct slot *s = (struct slot *)c;
    uint64_t now = net_now_ms();

    pthread_mutex_lock(&g->lock);
    if (g->stopping) {
        release(g, s);
    } else {
        s->state = SLOT_WAITING;
        s->since = now;
        s->order = g->next_order++;
        /* The rest of a header already begun gets header_ms from now. */
        s->first_byte = c->len > c->off ? now : 0;
    }
    pthread_mutex_unlock(&g->lock);
    wake(g);
}

void gate_done(struct gate *g, struct conn *c)
{
    pthread_mutex_lock(&g->lock);
    release(g, (struct slot *)c);
    pthread_mutex_unlock(&g->lock);
}

unsigned gate_count(struct gate *g)
{
    pthread_mutex_lock(&g->lock);
    unsigned n = g->n_open;
    pthread_mutex_unlock(&g->lock);
    return n;
}

void gate_free(struct gate *g)
{
    if (!g)
        return;
    if (g->slots)
        for (unsigned i = 0; i < g->lim.max_conns; i++)
            if (g->slots[i].state != SLOT_FREE)
                conn_close(&g->slots[i].c);
    pthread_mutex_destroy(&g->lock);
    if (g->wake_fd >= 0)
        close(g->wake_fd);
    free(g->slots);
    free(g->pfd);
    free(g->pslot);
    free(g);
}
