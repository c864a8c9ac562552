/* qcache.c - the seen-query table.
 *
 * Entries live in a ring in insertion order. Every entry gets the same ttl,
 * so insertion order is expiry order: expiring pops from the head while the
 * head is stale, and "full" evicts the head. A linear-probing hash index
 * maps a qid to its ring slot; deletion shifts later entries back instead
 * of leaving tombstones, so churn can never clog the index.
 *
 * What an entry knows per hop (the links it went out over, the highest ttl
 * each neighbour sent it with) is a small array of its own, grown as hops
 * are added and freed with the entry: a peer has 4 neighbours where it may
 * have 64, and the ring's slots, all touched once it has gone round, stay
 * 112 bytes each instead of carrying room for 64 of everything. */
#include "floodshare/qcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "floodshare/msg.h"

/* Keeps 2 * capacity, rounded up to a power of two, inside uint32_t. */
#define QC_MAX_CAPACITY ((size_t)1 << 30)

enum qhop_kind {
    QH_SENT_LINK, /* key: a link the query went out over */
    QH_SENT_ADDR, /* key: dest_tag() of an address it was sent to */
    QH_HEARD,     /* key: addr_key() of a neighbour that sent a copy; ttl: the highest */
};

struct qhop {
    uint64_t key;
    uint8_t kind; /* enum qhop_kind */
    uint8_t ttl;
};

#define QC_MAX_HOPS (QCACHE_MAX_SENT + QCACHE_MAX_HEARD)

struct qentry {
    char qid[MSG_QID_LEN]; /* not NUL-terminated; a shorter id is zero-padded */
    uint32_t hash;
    uint32_t prev_link;  /* the link the first copy came over (0: none) */
    uint64_t expires_ms; /* dead once now_ms >= expires_ms */
    struct qhop *hops;   /* n_hops of cap_hops; NULL while none */
    uint8_t n_hops, cap_hops, n_sent, n_heard;
    uint8_t local;       /* started by this peer: there is no previous hop */
    uint8_t max_ttl;     /* the highest ttl a copy of it was handled with */
    struct fs_addr prev;
};
_Static_assert(QC_MAX_HOPS <= UINT8_MAX, "hop counts fit a byte");

struct qcache {
    /* capacity, mask and ttl_ms are set once by qcache_new() and only read. */
    size_t capacity;
    size_t mask; /* index slots - 1; slots >= 2 * capacity keeps the load <= 1/2 */
    uint32_t ttl_ms;

    /* lock guards everything below: the ring, its head and count, the
     * index, and every entry's hops. Every public call holds it for its
     * whole (short, non-blocking) run and calls nothing outside this file
     * while holding it but malloc and free. */
    pthread_mutex_t lock;
    struct qentry *ring; /* capacity slots; live: head .. head+count-1 (mod capacity) */
    size_t head, count;
    /* 0 = empty slot, else ring position + 1. Invariant: every live entry is
     * reachable by probing forward from its home slot without an empty slot
     * in between. */
    uint32_t *index;
};

static void qid_key(const char *qid, char key[MSG_QID_LEN])
{
    size_t n = strnlen(qid, MSG_QID_LEN);

    memset(key, 0, MSG_QID_LEN);
    memcpy(key, qid, n);
}

/* FNV-1a: qids are random hex chosen by peers, and the table is bounded
 * and expiring, so a simple spread-everything hash is enough. */
static uint32_t qid_hash(const char key[MSG_QID_LEN])
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < MSG_QID_LEN; i++) {
        h ^= (unsigned char)key[i];
        h *= 16777619u;
    }
    return h;
}

static size_t round_up_pow2(size_t n)
{
    size_t p = 1;

    while (p < n)
        p <<= 1;
    return p;
}

struct qcache *qcache_new(size_t capacity, uint32_t ttl_ms)
{
    struct qcache *qc;

    if (capacity == 0 || capacity > QC_MAX_CAPACITY)
        return NULL;
    qc = calloc(1, sizeof *qc);
    if (!qc)
        return NULL;
    qc->capacity = capacity;
    qc->mask = round_up_pow2(2 * capacity) - 1;
    qc->ttl_ms = ttl_ms;
    qc->ring = calloc(capacity, sizeof *qc->ring);
    qc->index = calloc(qc->mask + 1, sizeof *qc->index);
    if (!qc->ring || !qc->index || pthread_mutex_init(&qc->lock, NULL) != 0)
        goto fail;
    return qc;
fail:
    free(qc->ring);
    free(qc->index);
    free(qc);
    return NULL;
}

void qcache_free(struct qcache *qc)
{
    if (!qc)
        return;
    for (size_t i = 0; i < qc->count; i++)
        free(qc->ring[(qc->head + i) % qc->capacity].hops);
    pthread_mutex_destroy(&qc->lock);
    free(qc->ring);
    free(qc->index);
    free(qc);
}

/* The index slot holding key, or SIZE_MAX. The load is at most 1/2, so an
 * empty slot always ends the probe. */
static size_t find_slot(const struct qcache *qc, const char key[MSG_QID_LEN], uint32_t hash)
{
    for (size_t i = hash & qc->mask;; i = (i + 1) & qc->mask) {
        uint32_t v = qc->index[i];
        if (v == 0)
            return SIZE_MAX;
        const struct qentry *e = &qc->ring[v - 1];
        if (e->hash == hash && memcmp(e->qid, key, MSG_QID_LEN) == 0)
            return i;
    }
}

/* The index slot pointing at ring position pos (which is live). */
static size_t slot_of(const struct qcache *qc, size_t pos)
{
    size_t i = qc->ring[pos].hash & qc->mask;

    while (qc->index[i] != pos + 1)
        i = (i + 1) & qc->mask;
    return i;
}

/* Backward-shift deletion: pulls each later entry of the probe run into the
 * hole when the hole lies on that entry's path from its home slot, which
 * restores the index invariant without tombstones. */
static void index_delete(struct qcache *qc, size_t hole)
{
    for (size_t j = (hole + 1) & qc->mask; qc->index[j] != 0; j = (j + 1) & qc->mask) {
        size_t home = qc->ring[qc->index[j] - 1].hash & qc->mask;
        if (((j - home) & qc->mask) >= ((j - hole) & qc->mask)) {
            qc->index[hole] = qc->index[j];
            hole = j;
        }
    }
    qc->index[hole] = 0;
}

static void index_insert(struct qcache *qc, size_t pos)
{
    size_t i = qc->ring[pos].hash & qc->mask;

    while (qc->index[i] != 0)
        i = (i + 1) & qc->mask;
    qc->index[i] = (uint32_t)(pos + 1);
}

static void pop_head(struct qcache *qc)
{
    struct qentry *e = &qc->ring[qc->head];

    free(e->hops);
    e->hops = NULL;
    e->n_hops = e->cap_hops = e->n_sent = e->n_heard = 0;
    index_delete(qc, slot_of(qc, qc->head));
    qc->head = (qc->head + 1) % qc->capacity;
    qc->count--;
}

static void expire(struct qcache *qc, uint64_t now_ms)
{
    while (qc->count > 0 && qc->ring[qc->head].expires_ms <= now_ms)
        pop_head(qc);
}

/* Callers read the clock before taking the lock, so now_ms can step back a
 * little between threads. Never letting an entry expire before the one
 * inserted ahead of it keeps the ring sorted by expiry, which is what makes
 * popping from the head enough; such an entry just lives a few ms longer. */
static uint64_t expiry_for(const struct qcache *qc, uint64_t now_ms)
{
    uint64_t exp = now_ms > UINT64_MAX - qc->ttl_ms ? UINT64_MAX : now_ms + qc->ttl_ms;

    if (qc->count > 0) {
        size_t tail = (qc->head + qc->count - 1) % qc->capacity;
        if (qc->ring[tail].expires_ms > exp)
            exp = qc->ring[tail].expires_ms;
    }
    return exp;
}

static void add_entry(struct qcache *qc, const char key[MSG_QID_LEN], uint32_t hash,
                      const struct fs_addr *prev, uint32_t prev_link, unsigned ttl,
                      uint64_t now_ms)
{
    if (qc->count == qc->capacity)
        pop_head(qc);
    size_t pos = (qc->head + qc->count) % qc->capacity;
    struct qentry *e = &qc->ring[pos];
    memcpy(e->qid, key, MSG_QID_LEN);
    e->hash = hash;
    e->local = prev == NULL;
    memset(&e->prev, 0, sizeof e->prev);
    if (prev)
        e->prev = *prev;
    e->prev_link = prev_link;
    e->max_ttl = (uint8_t)(ttl > UINT8_MAX ? UINT8_MAX : ttl);
    e->expires_ms = expiry_for(qc, now_ms);
    /* hops: NULL and 0 in a slot never used or emptied by pop_head() */
    index_insert(qc, pos);
    qc->count++;
}

/* e's hop of that kind and key, or NULL. */
static struct qhop *find_hop(struct qentry *e, enum qhop_kind kind, uint64_t key)
{
    for (unsigned i = 0; i < e->n_hops; i++)
        if (e->hops[i].kind == kind && e->hops[i].key == key)
            return &e->hops[i];
    return NULL;
}

/* Appends a hop to e: NULL past the bound of its kind, or out of memory. */
static struct qhop *add_hop(struct qentry *e, enum qhop_kind kind, uint64_t key)
{
    uint8_t *n = kind == QH_HEARD ? &e->n_heard : &e->n_sent;

    if (*n >= (kind == QH_HEARD ? QCACHE_MAX_HEARD : QCACHE_MAX_SENT))
        return NULL;
    if (e->n_hops == e->cap_hops) {
        unsigned cap = e->cap_hops ? 2u * e->cap_hops : 4u;
        if (cap > QC_MAX_HOPS)
            cap = QC_MAX_HOPS;
        struct qhop *h = realloc(e->hops, cap * sizeof *h);
        if (!h)
            return NULL;
        e->hops = h;
        e->cap_hops = (uint8_t)cap;
    }
    ++*n;
    struct qhop *h = &e->hops[e->n_hops++];
    h->kind = (uint8_t)kind;
    h->key = key;
    h->ttl = 0;
    return h;
}

int qcache_see(struct qcache *qc, const char *qid, const struct fs_addr *prev,
               uint32_t prev_link, unsigned ttl, uint64_t now_ms)
{
    char key[MSG_QID_LEN];
    int verdict = QCACHE_DUP;

    qid_key(qid, key);
    uint32_t hash = qid_hash(key);
    pthread_mutex_lock(&qc->lock);
    expire(qc, now_ms);
    /* After expire() every entry left is live (the ring is sorted by
     * expiry), so a hit here is a genuine duplicate. */
    size_t slot = find_slot(qc, key, hash);
    if (slot == SIZE_MAX) {
        add_entry(qc, key, hash, prev, prev_link, ttl, now_ms);
        verdict = QCACHE_NEW;
    } else {
        struct qentry *e = &qc->ring[qc->index[slot] - 1];
        if (!e->local && ttl > e->max_ttl) {
            e->max_ttl = (uint8_t)(ttl > UINT8_MAX ? UINT8_MAX : ttl);
            verdict = QCACHE_MORE_TTL;
        }
    }
    pthread_mutex_unlock(&qc->lock);
    return verdict;
}

int qcache_insert(struct qcache *qc, const char *qid, const struct fs_addr *prev,
                  uint64_t now_ms)
{
    return qcache_see(qc, qid, prev, 0, 0, now_ms) == QCACHE_NEW;
}

fs_status qcache_route(struct qcache *qc, const char *qid, uint64_t now_ms,
                       struct fs_addr *prev, int *local)
{
    return qcache_route_link(qc, qid, now_ms, prev, NULL, local);
}

fs_status qcache_route_link(struct qcache *qc, const char *qid, uint64_t now_ms,
                            struct fs_addr *prev, uint32_t *prev_link, int *local)
{
    char key[MSG_QID_LEN];
    fs_status st = FS_ENOTFOUND;

    if (prev_link)
        *prev_link = 0;
    if (prev)
        memset(prev, 0, sizeof *prev);
    if (local)
        *local = 0;
    qid_key(qid, key);
    uint32_t hash = qid_hash(key);
    pthread_mutex_lock(&qc->lock);
    expire(qc, now_ms);
    size_t slot = find_slot(qc, key, hash);
    if (slot != SIZE_MAX) {
        const struct qentry *e = &qc->ring[qc->index[slot] - 1];
        if (prev)
            *prev = e->prev;
        if (prev_link)
            *prev_link = e->prev_link;
        if (local)
            *local = e->local;
        st = FS_OK;
    }
    pthread_mutex_unlock(&qc->lock);
    return st;
}

/* A numeric IPv4 address, or an IPv6 one (a name never holds ':'; addr.h
 * keeps IPv6 in one canonical spelling, so it can match exactly). */
static int numeric_host(const char *h)
{
    if (strchr(h, ':'))
        return 1;
    for (; *h; h++)
        if ((*h < '0' || *h > '9') && *h != '.')
            return 0;
    return 1;
}

/* port, 15 bits of the host's hash, and a bit for "the host is a name":
 * compact enough to keep one per neighbour in every entry. */
static uint32_t dest_tag(const struct fs_addr *a)
{
    uint32_t h = 2166136261u;

    for (const char *c = a->host; *c; c++) {
        h ^= (unsigned char)*c;
        h *= 16777619u;
    }
    return (numeric_host(a->host) ? 0 : 0x80000000u) | (h & 0x7fffu) << 16 | a->port;
}

/* Names are not resolved here, so a host name on either side matches any
 * host with the same port: a neighbour written as "localhost" must not lose
 * its hits. Numeric addresses must match exactly. */
static int tag_match(uint32_t sent, uint32_t from)
{
    if ((sent & 0xffffu) != (from & 0xffffu))
        return 0;
    return (sent | from) & 0x80000000u ? 1 : sent == from;
}

/* The live entry of qid, or NULL; lock held. */
static struct qentry *live_entry(struct qcache *qc, const char *qid, uint64_t now_ms)
{
    char key[MSG_QID_LEN];

    qid_key(qid, key);
    expire(qc, now_ms);
    size_t slot = find_slot(qc, key, qid_hash(key));
    return slot == SIZE_MAX ? NULL : &qc->ring[qc->index[slot] - 1];
}

void qcache_sent_to(struct qcache *qc, const char *qid, const struct fs_addr *to, uint64_t now_ms)
{
    uint32_t tag = dest_tag(to);

    pthread_mutex_lock(&qc->lock);
    struct qentry *e = live_entry(qc, qid, now_ms);
    if (e && !find_hop(e, QH_SENT_ADDR, tag))
        add_hop(e, QH_SENT_ADDR, tag);
    pthread_mutex_unlock(&qc->lock);
}

int qcache_was_sent_to(struct qcache *qc, const char *qid, const struct fs_addr *from,
                       uint64_t now_ms)
{
    int ok = 0;
    uint32_t tag = dest_tag(from);

    pthread_mutex_lock(&qc->lock);
    struct qentry *e = live_entry(qc, qid, now_ms);
    for (unsigned i = 0; e && i < e->n_hops && !ok; i++)
        ok = e->hops[i].kind == QH_SENT_ADDR && tag_match((uint32_t)e->hops[i].key, tag);
    pthread_mutex_unlock(&qc->lock);
    return ok;
}

void qcache_sent_link(struct qcache *qc, const char *qid, uint32_t link, uint64_t now_ms)
{
    pthread_mutex_lock(&qc->lock);
    struct qentry *e = live_entry(qc, qid, now_ms);
    /* a copy forwarded again goes over the same links: kept once */
    if (e && !find_hop(e, QH_SENT_LINK, link))
        add_hop(e, QH_SENT_LINK, link);
    pthread_mutex_unlock(&qc->lock);
}

int qcache_was_sent_link(struct qcache *qc, const char *qid, uint32_t link, uint64_t now_ms)
{
    int ok;

    pthread_mutex_lock(&qc->lock);
    struct qentry *e = live_entry(qc, qid, now_ms);
    ok = e && find_hop(e, QH_SENT_LINK, link) != NULL;
    pthread_mutex_unlock(&qc->lock);
    return ok;
}

/* 64 bits of host and port: neighbours are told apart exactly in practice
 * (a 32-bit dest_tag() keeps only 15 bits of the host). */
static uint64_t addr_key(const struct fs_addr *a)
{
    uint64_t h = 14695981039346656037ull;

    for (const char *c = a->host; *c; c++) {
        h ^= (unsigned char)*c;
        h *= 1099511628211ull;
    }
    h ^= a->port;
    h *= 1099511628211ull;
    return h;
}

void qcache_heard(struct qcache *qc, const char *qid, const struct fs_addr *from, unsigned ttl,
                  uint64_t now_ms)
{
    uint64_t key = addr_key(from);

    if (ttl > UINT8_MAX)
        ttl = UINT8_MAX;
    pthread_mutex_lock(&qc->lock);
    struct qentry *e = live_entry(qc, qid, now_ms);
    struct qhop *h = e ? find_hop(e, QH_HEARD, key) : NULL;
    if (e && !h)
        h = add_hop(e, QH_HEARD, key);
    if (h && ttl > h->ttl)
        h->ttl = (uint8_t)ttl;
    pthread_mutex_unlock(&qc->lock);
}

int qcache_heard_ttl(struct qcache *qc, const char *qid, const struct fs_addr *from,
                     uint64_t now_ms, unsigned *ttl)
{
    uint64_t key = addr_key(from);
    int heard = 0;

    *ttl = 0;
    pthread_mutex_lock(&qc->lock);
    struct qentry *e = live_entry(qc, qid, now_ms);
    struct qhop *h = e ? find_hop(e, QH_HEARD, key) : NULL;
    if (h) {
        *ttl = h->ttl;
        heard = 1;
    }
    pthread_mutex_unlock(&qc->lock);
    return heard;
}

size_t qcache_count(struct qcache *qc, uint64_t now_ms)
{
    size_t n;

    pthread_mutex_lock(&qc->lock);
    expire(qc, now_ms);
    n = qc->count;
    pthread_mutex_unlock(&qc->lock);
    return n;
}
