/* fplane.c - neighbour links on the event loop (fplane.h). */
#include "floodshare/fplane.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "floodshare/conn.h"
#include "floodshare/ev.h"
#include "floodshare/log.h"
#include "floodshare/net.h"
#include "floodshare/tls.h"

#define FP_STACK (256 * 1024) /* the loop's deepest frame is a few KiB (msg + header) */
#define FP_READS_PER_WAKE 16  /* reads from one link per wake-up, so none can hog the loop */
#define FP_HOLD_BYTES 16384   /* GET/FOUND bytes held while a claim is being proven */
#define FP_QUEUE_MIN 2048     /* an output queue's first size; doubled up to max_queue_bytes */

enum link_state {
    LS_NEW,      /* inbound, has named nobody yet */
    LS_CLAIMED,  /* names a neighbour it has not proven (challenge pending, or a stranger) */
    LS_PROVEN,   /* dialled by us, or answered our challenge */
    LS_REFUTED,  /* its claim failed: everything it sends is dropped as spoofed */
};

struct link {
    struct ev_watch w;
    struct fplane *fp;
    uint32_t id;
    int outbound;   /* we dialled it (one per configured neighbour) */
    int connecting; /* outbound, connect() not finished */
    int handshaking; /* outbound under TLS: connected, handshake not over */
    int dead;       /* closed; freed by a post once this round is over */
    enum link_state state;
    struct fs_addr addr;
    int challenged; /* a challenge is pending: deadline is its end */
    char nonce[MSG_NONCE_LEN + 1];
    int spoof_logged;
    struct conn *in; /* the read buffer: adopted from the gate, or our own */
    int adopted;
    char *held;      /* GETs and FOUNDs that came while its claim was challenged */
    size_t held_len;
    char *out;       /* the output queue: bytes not yet written; out_cap bytes, */
    size_t out_off, out_len, out_cap; /* grown as needed up to max_queue_bytes */
    struct link *next;
};

/* An outbound slot per configured neighbour: its link when one is open,
 * and when it may be dialled again after a failure. */
struct nslot {
    struct fs_addr addr;
    struct link *link;
    uint64_t down_until;
};

struct fplane {
    struct fplane_opts o;
    struct ev *ev;
    pthread_t thread;
    int started; /* the thread runs (main thread only) */
    int stopped; /* the thread has been joined (main thread only) */
    uint32_t next_id;
    struct link *links; /* every open link, inbound and outbound */
    struct nslot slots[CFG_MAX_NEIGHBOURS];
    size_t n_slots;
};

static void link_close(struct link *l, const char *why);
static int release_held(struct link *l);

/* ----------------------------------------------------------- set-up */

struct fplane *fplane_new(const struct fplane_opts *o)
{
    struct fplane *fp = calloc(1, sizeof *fp);

    if (!fp)
        return NULL;
    fp->o = *o;
    fp->next_id = 1;
    fp->ev = ev_new();
    if (!fp->ev) {
        free(fp);
        return NULL;
    }
    return fp;
}

static void *loop_main(void *arg)
{
    struct fplane *fp = arg;

    ev_run(fp->ev);
    return NULL;
}

fs_status fplane_start(struct fplane *fp)
{
    pthread_attr_t at;
    int rc;

    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, FP_STACK);
    rc = pthread_create(&fp->thread, &at, loop_main, fp);
    pthread_attr_destroy(&at);
    if (rc != 0)
        return FS_ENOMEM;
    fp->started = 1;
    return FS_OK;
}

static void free_link(struct link *l)
{
    free(l->held);
    free(l->out);
    if (!l->adopted)
        free(l->in);
    free(l);
}

void fplane_stop(struct fplane *fp)
{
    if (!fp || fp->stopped)
        return;
    ev_stop(fp->ev);
    if (fp->started)
        pthread_join(fp->thread, NULL);
    fp->stopped = 1; /* only now: the loop reads it no more */
    /* The loop is gone: this thread owns every link now. */
    while (fp->links)
        link_close(fp->links, NULL);
}

void fplane_free(struct fplane *fp)
{
    if (!fp)
        return;
    ev_free(fp->ev);
    free(fp);
}

int fplane_is_flood_msg(enum msg_type t)
{
    return t == MSG_GET || t == MSG_FOUND || t == MSG_HELLO || t == MSG_CHALLENGE ||
           t == MSG_PROVE;
}

fs_status fplane_call(struct fplane *fp, void (*fn)(void *arg), void *arg)
{
    return ev_call(fp->ev, fn, arg);
}

void fplane_counts(struct fplane *fp, unsigned *open, unsigned *proven)
{
    *open = *proven = 0;
    for (struct link *l = fp->links; l; l = l->next) {
        ++*open;
        if (l->state == LS_PROVEN)
            ++*proven;
    }
}

int fplane_proven_host(struct fplane *fp, const struct fs_addr *nb, struct fs_addr *sock)
{
    for (struct link *l = fp->links; l; l = l->next) {
        if (l->state != LS_PROVEN || l->dead || l->connecting || !addr_equal(&l->addr, nb))
            continue;
        net_peer_addr(l->in->fd, sock);
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------- writing */

/* Writes what the queue holds; 0, or -1 when the link broke. */
static int flush(struct link *l)
{
    while (l->out_len > 0 && !l->connecting && !l->handshaking) {
        size_t n = 0;
        if (conn_write_some(l->in, l->out + l->out_off, l->out_len, &n) != FS_OK)
            return -1;
        if (n == 0)
            break; /* the socket is full: EV_WRITE says when to go on */
        l->out_off += n;
        l->out_len -= n;
    }
    if (l->out_len == 0) { /* an idle link holds no queue memory */
        free(l->out);
        l->out = NULL;
        l->out_off = l->out_cap = 0;
    }
    uint32_t want = EV_READ | (l->out_len > 0 || l->connecting ||
                                       (l->handshaking && l->in->want_write) ? EV_WRITE : 0);
    if (want != l->w.events) {
        l->w.events = want;
        ev_update(l->fp->ev, &l->w);
    }
    return 0;
}

/* Appends a formatted message to l's queue and writes what it can. The
 * whole message fits or none of it is queued: a full queue means the
 * neighbour stopped reading, and dropping is what keeps the others going. */
static fs_status enqueue(struct link *l, const struct msg *m)
{
    char buf[MSG_MAX_HEADER];
    int n = msg_format(m, buf, sizeof buf);

    if (n < 0)
        return FS_EINVAL;
    size_t sent = 0;
    if (l->out_len == 0 && !l->connecting && !l->handshaking) {
        /* The usual case: nothing waits, so the kernel takes it now and no
         * queue memory is touched. A TLS write that could not go is queued
         * whole and repeated from the queue (same bytes, as TLS wants). */
        if (conn_write_some(l->in, buf, (size_t)n, &sent) != FS_OK) {
            link_close(l, "write failed");
            return FS_ECONNECT;
        }
        if (sent == (size_t)n)
            return FS_OK;
        /* the rest must follow: framing */
    }
    if (!sent && l->out_len + (size_t)n > l->fp->o.max_queue_bytes) {
        stats_inc(l->fp->o.stats, flow_dropped);
        return FS_EBUSY;
    }
    size_t rest = (size_t)n - sent, need = l->out_len + rest;
    if (l->out_off + need > l->out_cap && l->out_off > 0) {
        memmove(l->out, l->out + l->out_off, l->out_len);
        l->out_off = 0;
    }
    if (need > l->out_cap) {
        /* Grown, not allocated whole: most queues only ever hold a HELLO
         * that waits for connect(), and every touched page of a freed
         * 64 KiB buffer stays in the loop's malloc arena. */
        size_t cap = l->out_cap ? l->out_cap : FP_QUEUE_MIN;
        while (cap < need)
            cap *= 2;
        if (cap > l->fp->o.max_queue_bytes && need <= l->fp->o.max_queue_bytes)
            cap = l->fp->o.max_queue_bytes;
        char *q = realloc(l->out, cap);
        if (!q) {
            if (sent) /* half a message is on the wire: the link cannot go on */
                link_close(l, "out of memory");
            return FS_ENOMEM;
        }
        l->out = q;
        l->out_cap = cap;
    }
    memcpy(l->out + l->out_off + l->out_len, buf + sent, rest);
    l->out_len += rest;
    if (flush(l) < 0) {
        link_close(l, "write failed");
        return FS_ECONNECT;
    }
    return FS_OK;
}

/* ---------------------------------------------------- links: life */

static struct link *link_new(struct fplane *fp, int fd, int outbound)
{
    struct link *l = calloc(1, sizeof *l);

    if (!l)
        return NULL;
    l->fp = fp;
    l->id = fp->next_id++;
    if (fp->next_id == 0)
        fp->next_id = 1; /* 0 means "no link" */
    l->outbound = outbound;
    l->w.fd = fd;
    l->w.events = EV_READ;
    l->w.arg = l;
    l->next = fp->links;
    fp->links = l;
    return l;
}

static void post_free(void *arg)
{
    free_link(arg);
}

static void unlist(struct link *l)
{
    for (struct link **pp = &l->fp->links; *pp; pp = &(*pp)->next) {
        if (*pp == l) {
            *pp = l->next;
            return;
        }
    }
}

/* Closes l: unwatched, its descriptor closed (or the adopted conn given
 * back), freed once the loop's round is over (an event for it may still be
 * pending in this round). why NULL: quietly (shutdown). */
static void link_close(struct link *l, const char *why)
{
    struct fplane *fp = l->fp;
    char a[ADDR_STR_MAX];

    if (l->dead)
        return;
    if (l->held && why) { /* it claimed a neighbour and left before proving it */
        l->state = LS_REFUTED;
        release_held(l);
    }
    l->dead = 1;
    if (why)
        log_msg(L_DEBUG, "link %u %s %s closed: %s", l->id, l->outbound ? "to" : "from",
                l->state == LS_NEW ? "?" : addr_format(&l->addr, a), why);
    ev_del(fp->ev, &l->w);
    unlist(l);
    for (size_t i = 0; i < fp->n_slots; i++)
        if (fp->slots[i].link == l)
            fp->slots[i].link = NULL;
    if (l->adopted)
        fp->o.release(fp->o.arg, l->in);
    else
        conn_close(l->in);
    if (ev_post(fp->ev, post_free, l) != FS_OK) /* the loop has stopped: nothing is pending */
        free_link(l);
}

static void link_cb(struct ev *ev, struct ev_watch *w, uint32_t what);
static int dispatch(struct link *l, const struct msg *m, const char *raw, size_t n);
static void count_spoofed(struct link *l, const struct msg *m, const char *why);

/* A numeric address for `a`: names are resolved here (config only: peers
 * name their neighbours, so this is a local lookup, never a wire value). */
static int sockaddr_of(const struct fs_addr *a, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;

    memset(ss, 0, sizeof *ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(a->port);
    if (inet_pton(AF_INET, a->host, &sin->sin_addr) == 1) {
        *len = sizeof *sin;
        return 0;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)a->port);
    if (getaddrinfo(a->host, port, &hints, &res) != 0 || !res)
        return -1;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* Dials neighbour slot s without waiting: the link exists at once, and
 * what is queued on it leaves once connect() finishes. */
static struct link *dial(struct fplane *fp, struct nslot *s)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int one = 1;

    if (sockaddr_of(&s->addr, &ss, &len) < 0)
        return NULL;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = connect(fd, (struct sockaddr *)&ss, len);
    if (rc < 0 && errno != EINPROGRESS) {
        close(fd);
        return NULL;
    }
    struct link *l = link_new(fp, fd, 1);
    if (!l) {
        close(fd);
        return NULL;
    }
    l->in = malloc(sizeof *l->in);
    if (!l->in) {
        unlist(l);
        close(fd);
        free(l);
        return NULL;
    }
    conn_init(l->in, fd, 0);
    l->w.cb = link_cb;
    l->connecting = rc < 0;
    l->state = LS_PROVEN; /* whoever listens there is, by definition, that neighbour */
    l->addr = s->addr;
    l->w.events = EV_READ | (l->connecting ? EV_WRITE : 0);
    l->w.deadline_ms = l->connecting ? net_now_ms() + (uint64_t)fp->o.connect_timeout_ms : 0;
    if (ev_add(fp->ev, &l->w) != FS_OK) {
        unlist(l);
        free(l->in);
        close(fd);
        free(l);
        return NULL;
    }
    s->link = l;
    struct msg hello = {.type = MSG_HELLO, .from = fp->o.self, .peer_id = fp->o.self_id};
    enqueue(l, &hello);
    return l;
}

static struct nslot *slot_of(struct fplane *fp, const struct fs_addr *a)
{
    for (size_t i = 0; i < fp->n_slots; i++)
        if (addr_equal(&fp->slots[i].addr, a))
            return &fp->slots[i];
    return NULL;
}

/* Our open link to neighbour slot s, dialling it when it is not in its
 * down period. NULL when it is unreachable. */
static struct link *out_link(struct fplane *fp, struct nslot *s)
{
    if (s->link)
        return s->link;
    if (net_now_ms() < s->down_until)
        return NULL;
    if (!dial(fp, s))
        s->down_until = net_now_ms() + fp->o.down_ms;
    return s->link;
}

void fplane_set_neighbours(struct fplane *fp, const struct fs_addr *n, size_t count)
{
    struct nslot old[CFG_MAX_NEIGHBOURS];
    size_t n_old = fp->n_slots;

    if (count > CFG_MAX_NEIGHBOURS)
        count = CFG_MAX_NEIGHBOURS;
    memcpy(old, fp->slots, sizeof old);
    memset(fp->slots, 0, sizeof fp->slots);
    for (size_t i = 0; i < count; i++) {
        fp->slots[i].addr = n[i];
        for (size_t j = 0; j < n_old; j++) {
            if (old[j].link && addr_equal(&old[j].addr, &n[i])) {
                fp->slots[i] = old[j];
                old[j].link = NULL;
            }
        }
    }
    fp->n_slots = count;
    for (size_t j = 0; j < n_old; j++)
        if (old[j].link)
            link_close(old[j].link, "no longer a neighbour");
    /* Links up front: proofs and the first flood need not wait for a dial. */
    for (size_t i = 0; i < count; i++)
        out_link(fp, &fp->slots[i]);
}

/* ---------------------------------------------------------- proving */

static void new_nonce(char out[MSG_NONCE_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char r[MSG_NONCE_LEN / 2];

    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) /* cannot fail for 16 bytes */
        memset(r, 0, sizeof r);
    for (size_t i = 0; i < sizeof r; i++) {
        out[2 * i] = hex[r[i] >> 4];
        out[2 * i + 1] = hex[r[i] & 15];
    }
    out[MSG_NONCE_LEN] = '\0';
}

/* l (inbound) now claims to be addr: challenge the claim when addr is a
 * configured neighbour, over our own link to it. A stranger's claim stays
 * unproven (it may still send: into the shared bucket), and it is closed
 * when idle. */
static void claim(struct link *l, const struct fs_addr *addr)
{
    struct fplane *fp = l->fp;
    struct nslot *s = slot_of(fp, addr);

    l->addr = *addr;
    l->state = LS_CLAIMED;
    if (!s) {
        l->w.deadline_ms = net_now_ms() + fp->o.idle_ms;
        ev_update(fp->ev, &l->w);
        return;
    }
    s->down_until = 0; /* it dialled us, so it is up now, whatever a dial found before */
    new_nonce(l->nonce);
    l->challenged = 1;
    l->w.deadline_ms = net_now_ms() + fp->o.challenge_ms;
    ev_update(fp->ev, &l->w);
    struct link *o = out_link(fp, s);
    struct msg ch = {.type = MSG_CHALLENGE, .from = fp->o.self};
    memcpy(ch.nonce, l->nonce, sizeof ch.nonce);
    if (o)
        enqueue(o, &ch); /* if it cannot go, the deadline refutes the claim */
}

/* What l held while its claim was challenged, parsed again: dispatched now
 * that it is proven, or counted as spoofed now that it is refuted. 0, or
 * -1 when l closed. */
static int release_held(struct link *l)
{
    char *q = l->held;
    size_t off = 0, end = l->held_len;
    int rc = 0;

    l->held = NULL;
    l->held_len = 0;
    while (q && off < end && rc == 0) {
        struct msg m;
        size_t used;
        if (msg_parse(q + off, end - off, &m, &used, NULL) != FS_OK)
            break;
        if (l->state == LS_PROVEN)
            rc = dispatch(l, &m, q + off, used);
        else
            count_spoofed(l, &m, "the link's claim was refuted");
        off += used;
    }
    free(q);
    return rc;
}

static void refute(struct link *l, const char *why)
{
    char a[ADDR_STR_MAX];

    l->state = LS_REFUTED;
    l->challenged = 0;
    l->w.deadline_ms = net_now_ms() + l->fp->o.idle_ms;
    ev_update(l->fp->ev, &l->w);
    log_msg(L_INFO, "link %u claiming to be %s: %s; what it sends is dropped as spoofed", l->id,
            addr_format(&l->addr, a), why);
    release_held(l);
}

/* l answered its challenge. 0, or -1 when l closed meanwhile. */
static int proven(struct link *l)
{
    struct fplane *fp = l->fp;
    char a[ADDR_STR_MAX];

    l->state = LS_PROVEN;
    l->challenged = 0;
    l->w.deadline_ms = 0;
    ev_update(fp->ev, &l->w);
    /* An older proven link of the same neighbour is from before it
     * restarted: the newest proof wins. Another link still claiming the
     * address is a liar. */
    for (struct link *o = fp->links, *next; o; o = next) {
        next = o->next;
        if (o == l || o->outbound || !addr_equal(&o->addr, &l->addr))
            continue;
        if (o->state == LS_PROVEN)
            link_close(o, "superseded by a newer proven link");
        else if (o->state == LS_CLAIMED)
            refute(o, "another link proved that address");
    }
    log_msg(L_DEBUG, "link %u from %s proven", l->id, addr_format(&l->addr, a));
    return release_held(l);
}

static void on_challenge(struct link *l, const struct msg *m)
{
    struct fplane *fp = l->fp;
    struct nslot *s = slot_of(fp, &m->from);

    /* The answer goes over our own link to that neighbour, which is the
     * link being proven over there; never to an address we do not dial. */
    if (!s || !s->link)
        return;
    struct msg pr = {.type = MSG_PROVE, .from = fp->o.self};
    memcpy(pr.nonce, m->nonce, sizeof pr.nonce);
    enqueue(s->link, &pr);
}

static int on_prove(struct link *l, const struct msg *m)
{
    if (l->state != LS_CLAIMED || !l->challenged || !addr_equal(&m->from, &l->addr))
        return 0;
    if (strcmp(m->nonce, l->nonce) != 0)
        return 0;
    return proven(l);
}

/* Keeps a GET or FOUND until l's claim is decided: before that, a message
 * on a link claiming a neighbour's address is neither trusted nor refused.
 * Past FP_HOLD_BYTES it is dropped (flow_control). */
static void hold(struct link *l, const char *raw, size_t n)
{
    if (l->held_len + n > FP_HOLD_BYTES) {
        stats_inc(l->fp->o.stats, flow_dropped);
        return;
    }
    if (!l->held && !(l->held = malloc(FP_HOLD_BYTES)))
        return;
    memcpy(l->held + l->held_len, raw, n);
    l->held_len += n;
}

/* ---------------------------------------------------------- reading */

static void count_spoofed(struct link *l, const struct msg *m, const char *why)
{
    char a[ADDR_STR_MAX], b[ADDR_STR_MAX];

    stats_inc(l->fp->o.stats, spoofed_dropped);
    if (!l->spoof_logged) { /* once per link: a liar must not fill the log */
        l->spoof_logged = 1;
        log_msg(L_INFO, "link %u (%s): %s naming %s dropped as spoofed (%s); later ones are "
                "counted only", l->id, addr_format(&l->addr, a), msg_type_name(m->type),
                addr_format(&m->from, b), why);
    }
}

/* Hands one parsed message (raw: its n bytes on the wire) to where it
 * belongs. 0, or -1 when l closed. */
static int dispatch(struct link *l, const struct msg *m, const char *raw, size_t n)
{
    struct fplane *fp = l->fp;

    if (!fplane_is_flood_msg(m->type)) {
        char text[MSG_MAX_TEXT + 1];
        stats_inc(fp->o.stats, malformed_dropped);
        snprintf(text, sizeof text, "%s on a neighbour link: only GET, FOUND, HELLO, CHALLENGE "
                 "and PROVE travel here", msg_type_name(m->type));
        struct msg e = {.type = MSG_ERROR};
        snprintf(e.code, sizeof e.code, "unexpected");
        snprintf(e.text, sizeof e.text, "%s", text);
        enqueue(l, &e);
        link_close(l, text);
        return -1;
    }
    if (l->state == LS_NEW && !l->outbound) {
        if (m->type == MSG_HELLO || m->type == MSG_GET || m->type == MSG_FOUND)
            claim(l, &m->from); /* an older peer names itself in its first GET or FOUND */
    }
    switch (m->type) {
    case MSG_HELLO:
        if (!addr_equal(&m->from, &l->addr) && !l->outbound)
            count_spoofed(l, m, "a second HELLO naming someone else");
        return 0;
    case MSG_CHALLENGE:
        on_challenge(l, m);
        return 0;
    case MSG_PROVE:
        return on_prove(l, m);
    default:
        break;
    }
    /* Claims that another link already proved are lies: say so at once. */
    if (l->state == LS_CLAIMED && !l->outbound) {
        for (struct link *o = fp->links; o; o = o->next) {
            if (o != l && !o->outbound && o->state == LS_PROVEN && addr_equal(&o->addr, &l->addr)) {
                refute(l, "another link already proved that address");
                break;
            }
        }
    }
    if (l->challenged) {
        hold(l, raw, n);
        return 0;
    }
    struct route_hop hop = {.link = l->id, .addr = l->addr, .proven = l->state == LS_PROVEN,
                            .refuted = l->state == LS_REFUTED};
    if (hop.refuted || !addr_equal(&m->from, &l->addr)) {
        count_spoofed(l, m, hop.refuted ? "the link's claim was refuted"
                                        : "its from is not the link's neighbour");
        return 0;
    }
    if (!l->outbound && l->state != LS_PROVEN) /* a stranger's link lives while it talks */
        l->w.deadline_ms = net_now_ms() + fp->o.idle_ms;
    uint32_t id = l->id;
    fp->o.on_msg(fp->o.arg, m, &hop);
    /* on_msg may have closed l (a failed send): look it up again. */
    for (struct link *o = fp->links; o; o = o->next)
        if (o->id == id)
            return 0;
    return -1;
}

/* Parses and dispatches every whole message buffered on l. 0, or -1 when
 * l closed. */
static int drain(struct link *l)
{
    struct conn *c = l->in;

    for (;;) {
        struct msg m;
        size_t used;
        const char *why = NULL;
        fs_status st = msg_parse(c->buf + c->off, c->len - c->off, &m, &used, &why);
        if (st == FS_NEED_MORE)
            return 0;
        if (st != FS_OK) {
            stats_inc(l->fp->o.stats, malformed_dropped);
            struct msg e = {.type = MSG_ERROR};
            snprintf(e.code, sizeof e.code, "%s", msg_error_code(why));
            snprintf(e.text, sizeof e.text, "%s", why);
            enqueue(l, &e);
            link_close(l, why);
            return -1;
        }
        c->off += used;
        if (dispatch(l, &m, c->buf + c->off - used, used) < 0)
            return -1;
    }
}

/* Our dial of l's neighbour failed: what was queued on it is lost, and the
 * neighbour is skipped for down_ms. */
static void dial_failed(struct link *l, const char *why)
{
    struct fplane *fp = l->fp;
    struct nslot *s = slot_of(fp, &l->addr);
    char a[ADDR_STR_MAX];

    if (s)
        s->down_until = net_now_ms() + fp->o.down_ms;
    log_msg(L_DEBUG, "dial of %s failed: %s", addr_format(&l->addr, a), why);
    /* What was queued never left: parse it back, so each message is
     * reported as a send that failed, as a synchronous failure would be. */
    struct fs_addr to = l->addr;
    size_t off = l->out_off, end = l->out_off + l->out_len;
    char *q = l->out;
    l->out = NULL;
    l->out_len = l->out_cap = 0;
    link_close(l, why);
    while (q && off < end) {
        struct msg m;
        size_t used;
        if (msg_parse(q + off, end - off, &m, &used, NULL) != FS_OK)
            break;
        off += used;
        fp->o.on_lost(fp->o.arg, &m, &to, FS_ECONNECT);
    }
    free(q);
}

/* Our dial reached a peer that failed the TLS check (or is not TLS): the
 * same as a failed dial, and counted as `auth`. */
static void auth_failed(struct link *l, const char *why)
{
    char a[ADDR_STR_MAX], text[160];

    stats_inc(l->fp->o.stats, auth_failed);
    log_msg(L_INFO, "link to %s: TLS handshake failed (%s): closed", addr_format(&l->addr, a),
            why);
    snprintf(text, sizeof text, "TLS handshake failed: %s", why);
    dial_failed(l, text);
}

/* One step of an outbound link's handshake; once over, what waited in
 * its queue (HELLO first) leaves. */
static void handshake(struct link *l)
{
    fs_status st = conn_handshake_step(l->in);

    if (st == FS_NEED_MORE) {
        flush(l); /* only updates the events it waits for */
        return;
    }
    if (st != FS_OK) {
        auth_failed(l, tls_last_error());
        return;
    }
    l->handshaking = 0;
    l->w.deadline_ms = 0;
    if (flush(l) < 0)
        link_close(l, "write failed");
}

static void on_connected(struct link *l)
{
    int err = 0;
    socklen_t len = sizeof err;

    getsockopt(l->w.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        dial_failed(l, strerror(err));
        return;
    }
    l->connecting = 0;
    l->w.deadline_ms = 0;
    if (l->fp->o.tls) {
        struct ssl_st *ssl = tls_new_ssl(l->fp->o.tls, l->w.fd, 0);
        if (!ssl) {
            dial_failed(l, "cannot start TLS");
            return;
        }
        conn_set_tls(l->in, ssl);
        l->handshaking = 1;
        l->w.deadline_ms = net_now_ms() + (uint64_t)l->fp->o.connect_timeout_ms;
        ev_update(l->fp->ev, &l->w);
        handshake(l);
        return;
    }
    if (flush(l) < 0)
        link_close(l, "write failed");
}

static void on_timeout(struct link *l)
{
    if (l->connecting) {
        dial_failed(l, "connect timed out");
    } else if (l->handshaking) {
        auth_failed(l, "no answer in time (silent, or not TLS)");
    } else if (l->challenged) {
        refute(l, "the challenge sent to that address went unanswered");
    } else if (!l->outbound && l->state != LS_PROVEN) {
        link_close(l, "unproven and idle");
    }
}

static void read_msgs(struct link *l);

static void link_cb(struct ev *ev, struct ev_watch *w, uint32_t what)
{
    struct link *l = w->arg;

    (void)ev;
    if (what & EV_TIMEOUT) {
        on_timeout(l);
        return;
    }
    if (l->connecting && (what & (EV_WRITE | EV_HUP))) {
        on_connected(l);
        if (l->dead || l->handshaking)
            return;
    }
    if (l->handshaking) {
        handshake(l);
        return;
    }
    if ((what & EV_WRITE) && flush(l) < 0) {
        link_close(l, "write failed");
        return;
    }
    if (!(what & EV_READ) || l->connecting)
        return;
    read_msgs(l);
}

/* Reads and dispatches what l sent: FP_READS_PER_WAKE reads, then what
 * still waits decrypted in its SSL (at most one TLS record), which no
 * event would announce. */
static void read_msgs(struct link *l)
{
    for (int i = 0; i < FP_READS_PER_WAKE || conn_pending(l->in); i++) {
        fs_status st = conn_fill(l->in);
        if (st == FS_NEED_MORE)
            return;
        if (st != FS_OK) {
            /* Whole messages before the end still count; a header cut by
             * the end is malformed, and said so, like any other. */
            if (drain(l) < 0)
                return;
            if (st == FS_ECLOSED && l->in->len > l->in->off) {
                static const char cut[] = "connection closed in the middle of a header";
                struct msg e = {.type = MSG_ERROR};
                stats_inc(l->fp->o.stats, malformed_dropped);
                snprintf(e.code, sizeof e.code, "malformed");
                snprintf(e.text, sizeof e.text, "%s", cut);
                enqueue(l, &e);
                if (!l->dead)
                    link_close(l, cut);
                return;
            }
            link_close(l, st == FS_ECLOSED ? "closed by the other side" : "read failed");
            return;
        }
        if (drain(l) < 0)
            return;
    }
}

/* ------------------------------------------------------------ adopt */

struct adopt_job {
    struct fplane *fp;
    struct conn *c;
};

static void adopt_on_loop(void *arg)
{
    struct adopt_job *j = arg;
    struct fplane *fp = j->fp;
    struct link *l = link_new(fp, j->c->fd, 0);

    if (!l) {
        fp->o.release(fp->o.arg, j->c);
        free(j);
        return;
    }
    int one = 1; /* answers are single small messages: no Nagle delay on them */
    setsockopt(l->w.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    l->in = j->c;
    l->adopted = 1;
    l->w.cb = link_cb;
    free(j);
    if (ev_add(fp->ev, &l->w) != FS_OK) {
        link_close(l, "cannot watch it");
        return;
    }
    if (drain(l) == 0 && conn_pending(l->in)) /* the gate already read its first header */
        read_msgs(l);
}

void fplane_adopt(struct fplane *fp, struct conn *c)
{
    struct adopt_job *j = malloc(sizeof *j);

    if (j) {
        j->fp = fp;
        j->c = c;
        if (ev_post(fp->ev, adopt_on_loop, j) == FS_OK)
            return;
        free(j);
    }
    fp->o.release(fp->o.arg, c);
}

/* ------------------------------------------------------------ sends */

fs_status fplane_send(struct fplane *fp, const struct fs_addr *to, const struct msg *m,
                      uint32_t *link)
{
    struct nslot *s = slot_of(fp, to);

    if (link)
        *link = 0;
    if (!s)
        return FS_ENOTFOUND;
    struct link *l = out_link(fp, s);
    if (!l)
        return FS_EREFUSED;
    if (link)
        *link = l->id;
    return enqueue(l, m);
}

fs_status fplane_send_link(struct fplane *fp, uint32_t id, const struct msg *m)
{
    for (struct link *l = fp->links; l; l = l->next)
        if (l->id == id)
            return enqueue(l, m);
    return FS_ENOTFOUND;
}
