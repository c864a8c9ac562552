/* tracefmt.c - trace events as text: type names, JSON, the readable line,
 * and the control socket's line form with its parser (tracefmt.h). Pure
 * functions of an event; nothing here touches the ring. */
#include "floodshare/tracefmt.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "floodshare/json.h"

static atomic_uint_fast64_t formatted;

uint64_t trace_formatted_count(void)
{
    return atomic_load(&formatted);
}

static void count_formatted(void)
{
    atomic_fetch_add_explicit(&formatted, 1, memory_order_relaxed);
}

/* --- names --- */

static const char *const type_names[TR_COUNT] = {
    [TR_NONE] = "?",
#define TRACE_NAME(name, text) [TR_##name] = text,
    TRACE_TYPES(TRACE_NAME)
#undef TRACE_NAME
};

const char *trace_type_name(enum trace_type type)
{
    return type > TR_NONE && type < TR_COUNT ? type_names[type] : "?";
}

enum trace_type trace_type_parse(const char *s)
{
    for (int i = TR_NONE + 1; i < TR_COUNT; i++)
        if (strcmp(type_names[i], s) == 0)
            return (enum trace_type)i;
    return TR_NONE;
}

static const char *role_name(enum trace_role r)
{
    return r == TR_ROLE_REQUESTER ? "requester" : r == TR_ROLE_HOLDER ? "holder" : NULL;
}

/* Which optional fields an event type has (docs/TRACE.md lists them). */
enum {
    F_NAME = 1 << 0, F_FROM = 1 << 1, F_TO = 1 << 2, F_ORIGIN = 1 << 3, F_TTL = 1 << 4,
    F_HOPS = 1 << 5, F_HOLDER = 1 << 6, F_COUNT = 1 << 7, F_ROLE = 1 << 8, F_BYTES = 1 << 9,
    F_SIZE = 1 << 10, F_MD5 = 1 << 11, F_REASON = 1 << 12, F_DETAIL = 1 << 13, F_MSG = 1 << 14,
    F_SOURCE = 1 << 15, /* transfers: source_bytes and count, when set */
};

static unsigned fields_of(enum trace_type t)
{
    const unsigned get = F_NAME | F_FROM | F_ORIGIN | F_TTL | F_HOPS;
    const unsigned found = F_NAME | F_HOPS | F_HOLDER | F_SIZE | F_MD5;
    const unsigned xfer =
        F_NAME | F_FROM | F_TO | F_HOLDER | F_ROLE | F_BYTES | F_SIZE | F_MD5 | F_SOURCE;

    switch (t) {
    case TR_PEER_UP: return F_TTL | F_COUNT | F_REASON;
    case TR_PEER_DOWN: return F_REASON;
    case TR_QUERY_STARTED: return F_NAME | F_TTL | F_COUNT;
    case TR_RECEIVED:
    case TR_DUPLICATE: return get;
    case TR_DROPPED: return get | F_REASON;
    case TR_FORWARDED: return F_NAME | F_TO | F_TTL | F_HOPS;
    case TR_SEND_FAILED: return F_MSG | F_TO | F_REASON;
    case TR_SEARCHED: return F_NAME | F_COUNT;
    case TR_FOUND_SENT: return found | F_TO | F_ORIGIN;
    case TR_FOUND_RELAYED: return found | F_FROM | F_TO;
    case TR_FOUND_RECEIVED: return found | F_FROM;
    case TR_FOUND_DROPPED: return found | F_FROM | F_REASON;
    case TR_TRANSFER_STARTED:
    case TR_TRANSFER_PROGRESS:
    case TR_TRANSFER_DONE: return xfer;
    case TR_TRANSFER_FAILED: return xfer | F_REASON | F_DETAIL;
    case TR_LOST: return F_COUNT | F_REASON;
    case TR_PIECE_RECEIVED: return F_NAME | F_FROM | F_HOLDER | F_ROLE | F_BYTES | F_MD5 | F_SOURCE;
    case TR_OFFER_RECEIVED:
    case TR_OFFER_ACCEPTED: return F_NAME | F_FROM | F_HOLDER | F_BYTES | F_SIZE | F_MD5;
    case TR_OFFER_REFUSED: return F_NAME | F_FROM | F_HOLDER | F_SIZE | F_MD5 | F_REASON | F_DETAIL;
    case TR_SYNC_STARTED: return F_NAME | F_FROM | F_HOLDER;
    case TR_SYNC_DONE: return F_NAME | F_FROM | F_HOLDER | F_BYTES | F_COUNT;
    case TR_SYNC_FAILED: return F_NAME | F_FROM | F_HOLDER | F_BYTES | F_COUNT | F_REASON | F_DETAIL;
    default: return 0;
    }
}

/* --- JSON --- */

static void json_addr(struct json *j, const char *key, const struct fs_addr *a)
{
    char s[ADDR_STR_MAX];
    json_str(j, key, a->port ? addr_format(a, s) : NULL);
}

void trace_json(struct json *jw, const struct trace_event *ev)
{
    unsigned f = fields_of(ev->type);

    count_formatted();
    json_obj_open(jw, NULL);
    json_uint(jw, "ts_us", ev->ts_us);
    json_uint(jw, "seq", ev->seq);
    json_str(jw, "type", trace_type_name(ev->type));
    json_uint(jw, "peer", ev->peer);
    json_addr(jw, "addr", &ev->addr);
    json_str(jw, "qid", ev->qid[0] ? ev->qid : NULL);
    if (f & F_NAME)
        json_str(jw, "name", ev->name);
    if (f & F_FROM && ev->from.port) {
        json_addr(jw, "from", &ev->from);
        if (ev->from_peer)
            json_uint(jw, "from_peer", ev->from_peer);
    }
    if (f & F_TO && ev->to.port) {
        json_addr(jw, "to", &ev->to);
        if (ev->to_peer)
            json_uint(jw, "to_peer", ev->to_peer);
    }
    if (f & F_ORIGIN && ev->origin.port)
        json_addr(jw, "origin", &ev->origin);
    if (f & F_TTL)
        json_uint(jw, "ttl", ev->ttl);
    if (f & F_HOPS)
        json_uint(jw, "hops", ev->hops);
    if (f & F_HOPS && (f & F_TTL)) /* a GET: the hop it travels, as trace numbers them */
        json_uint(jw, "hop", ev->hops + 1);
    if (f & F_HOLDER && ev->holder)
        json_uint(jw, "holder", ev->holder);
    if (f & F_COUNT) {
        int sync = ev->type == TR_SYNC_DONE || ev->type == TR_SYNC_FAILED;
        json_uint(jw, ev->type == TR_SEARCHED ? "hits" : ev->type == TR_LOST ? "lost"
                      : sync ? "files" : "neighbours", ev->count);
        if (sync) /* bytes taken from this peer's own copy instead of fetched */
            json_uint(jw, "reused", ev->source_bytes);
        if (ev->type == TR_SEARCHED)
            json_bool(jw, "hit", ev->count > 0);
    }
    if (f & F_ROLE)
        json_str(jw, "role", role_name(ev->role));
    if (f & F_BYTES)
        json_uint(jw, "bytes", ev->bytes);
    if (f & F_SIZE)
        json_uint(jw, "size", ev->size);
    if (f & F_MD5 && ev->md5[0])
        json_str(jw, "md5", ev->md5);
    /* Absent when 0: a one-holder requester does not count by source. A
     * piece_received always has its index, 0 included. */
    if (f & F_SOURCE && ev->source_bytes)
        json_uint(jw, "source_bytes", ev->source_bytes);
    if (f & F_SOURCE && (ev->count || ev->type == TR_PIECE_RECEIVED))
        json_uint(jw, "count", ev->count);
    if (f & F_MSG)
        json_str(jw, "msg", ev->msg);
    if (f & F_REASON)
        json_str(jw, "reason", ev->reason[0] ? ev->reason : NULL);
    if (f & F_DETAIL && ev->detail[0])
        json_str(jw, "detail", ev->detail);
    json_obj_close(jw);
}

int trace_format_json(const struct trace_event *ev, char *out, size_t cap)
{
    struct json j;
    size_t len;

    json_init(&j, cap > 0 ? cap - 1 : 0);
    trace_json(&j, ev);
    const char *doc = json_result(&j, &len);
    int n = -1;
    if (doc && len < cap) {
        memcpy(out, doc, len + 1);
        n = (int)len;
    }
    json_free(&j);
    return n;
}

/* --- text --- */

struct tbuf {
    char *p;
    size_t cap, len;
    int bad;
};

static void tput(struct tbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void tput(struct tbuf *b, const char *fmt, ...)
{
    va_list ap;

    if (b->bad)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len)
        b->bad = 1;
    else
        b->len += (size_t)n;
}

/* "peer 3" when resolve knows the address (or its id is given), else the
 * address itself. */
static const char *who(const struct fs_addr *a, unsigned id, trace_resolve_fn resolve, void *ctx,
                       char out[ADDR_STR_MAX + 8])
{
    if (!id && resolve && a->port)
        id = resolve(ctx, a);
    if (id)
        snprintf(out, ADDR_STR_MAX + 8, "peer %u", id);
    else if (a->port)
        addr_format(a, out);
    else
        snprintf(out, ADDR_STR_MAX + 8, "?");
    return out;
}

/* The item name as a quoted, printable string (names come from the wire). */
static const char *quoted(const char *s, char out[TRACE_NAME_MAX * 4 + 3])
{
    size_t k = 0;

    out[k++] = '"';
    for (const unsigned char *u = (const unsigned char *)s; *u; u++) {
        if (*u < 0x20 || *u == 0x7f || *u == '"' || *u == '\\')
            k += (size_t)sprintf(out + k, "\\x%02x", *u);
        else
            out[k++] = (char)*u;
    }
    out[k++] = '"';
    out[k] = '\0';
    return out;
}

static const char *type_color(enum trace_type t)
{
    switch (t) {
    case TR_PEER_UP:
    case TR_PEER_DOWN: return "\033[1m";
    case TR_QUERY_STARTED: return "\033[1;34m";
    case TR_RECEIVED:
    case TR_FORWARDED: return "\033[36m";
    case TR_DUPLICATE:
    case TR_SEARCHED: return "\033[2m";
    case TR_FOUND_SENT:
    case TR_FOUND_RELAYED:
    case TR_FOUND_RECEIVED: return "\033[32m";
    case TR_TRANSFER_STARTED:
    case TR_TRANSFER_PROGRESS:
    case TR_PIECE_RECEIVED:
    case TR_TRANSFER_DONE: return "\033[35m";
    default: return "\033[31m"; /* drops, failures, losses */
    }
}

static void describe(struct tbuf *b, const struct trace_event *e, trace_resolve_fn res, void *ctx)
{
    char w1[ADDR_STR_MAX + 8], w2[ADDR_STR_MAX + 8], q[TRACE_NAME_MAX * 4 + 3];
    int up = e->role == TR_ROLE_HOLDER;

    switch (e->type) {
    case TR_PEER_UP: {
        char a[ADDR_STR_MAX];
        if (strncmp(e->reason, "watch", 5) == 0) /* the CLI's: it reached the peer again */
            tput(b, "up (%s)", e->reason);
        else
            tput(b, "up at %s (ttl %u, %u neighbours)", addr_format(&e->addr, a), e->ttl,
                 e->count);
        break;
    }
    case TR_PEER_DOWN: tput(b, "down (%s)", e->reason[0] ? e->reason : "stopping"); break;
    case TR_QUERY_STARTED:
        tput(b, "query started for %s (ttl %u, to %u neighbours)", quoted(e->name, q), e->ttl,
             e->count);
        break;
    case TR_RECEIVED:
        tput(b, "received %s from %s (ttl %u, hop %u)", quoted(e->name, q),
             who(&e->from, e->from_peer, res, ctx, w1), e->ttl, e->hops + 1);
        break;
    case TR_DUPLICATE:
        tput(b, "duplicate from %s dropped (ttl %u, hop %u)",
             who(&e->from, e->from_peer, res, ctx, w1), e->ttl, e->hops + 1);
        break;
    case TR_DROPPED:
        tput(b, "GET from %s dropped: %s (ttl %u, hop %u)",
             who(&e->from, e->from_peer, res, ctx, w1), e->reason, e->ttl, e->hops + 1);
        break;
    case TR_FORWARDED:
        tput(b, "forwarded to %s (ttl %u, hop %u)", who(&e->to, e->to_peer, res, ctx, w1), e->ttl,
             e->hops + 1);
        break;
    case TR_SEND_FAILED:
        tput(b, "%s to %s not sent: %s", e->msg, who(&e->to, e->to_peer, res, ctx, w1), e->reason);
        break;
    case TR_SEARCHED:
        if (e->count)
            tput(b, "searched %s: %u hit%s", quoted(e->name, q), e->count, e->count == 1 ? "" : "s");
        else
            tput(b, "searched %s: miss", quoted(e->name, q));
        break;
    case TR_FOUND_SENT:
        tput(b, "hit %s (%" PRIu64 " bytes): FOUND sent to %s", quoted(e->name, q), e->size,
             who(&e->to, e->to_peer, res, ctx, w1));
        break;
    case TR_FOUND_RELAYED:
        tput(b, "FOUND from %s (holder peer %u) relayed to %s",
             who(&e->from, e->from_peer, res, ctx, w1), e->holder,
             who(&e->to, e->to_peer, res, ctx, w2));
        break;
    case TR_FOUND_RECEIVED:
        tput(b, "FOUND arrived from %s: %s at peer %u, %u hops away",
             who(&e->from, e->from_peer, res, ctx, w1), quoted(e->name, q), e->holder, e->hops);
        break;
    case TR_FOUND_DROPPED:
        tput(b, "FOUND from %s (holder peer %u) dropped: %s",
             who(&e->from, e->from_peer, res, ctx, w1), e->holder, e->reason);
        break;
    case TR_TRANSFER_STARTED:
        if (up)
            tput(b, "uploading %s to %s (%" PRIu64 " bytes)", quoted(e->name, q),
                 who(&e->to, e->to_peer, res, ctx, w1), e->size);
        else
            tput(b, "downloading %s from %s (%" PRIu64 " bytes%s)", quoted(e->name, q),
                 who(&e->from, e->from_peer, res, ctx, w1), e->size,
                 e->bytes ? ", resuming" : "");
        break;
    case TR_TRANSFER_PROGRESS:
        tput(b, "%s %s: %" PRIu64 " of %" PRIu64 " bytes (%.0f%%)", up ? "upload" : "download",
             quoted(e->name, q), e->bytes, e->size,
             e->size ? 100.0 * (double)e->bytes / (double)e->size : 100.0);
        break;
    case TR_TRANSFER_DONE:
        tput(b, "%s %s: %" PRIu64 " bytes", up ? "uploaded" : "downloaded", quoted(e->name, q),
             e->bytes);
        if (e->source_bytes && up)
            tput(b, " (%" PRIu64 " sent in %u piece%s)", e->source_bytes, e->count,
                 e->count == 1 ? "" : "s");
        else if (e->source_bytes)
            tput(b, " (%" PRIu64 " from this source in %u piece%s)", e->source_bytes, e->count,
                 e->count == 1 ? "" : "s");
        break;
    case TR_PIECE_RECEIVED:
        tput(b, "piece %u of %s (%" PRIu64 " bytes) from %s", e->count, quoted(e->name, q),
             e->bytes, who(&e->from, e->holder, res, ctx, w1));
        break;
    case TR_TRANSFER_FAILED:
        tput(b, "%s of %s failed: %s%s%s", up ? "upload" : "download", quoted(e->name, q),
             e->reason, e->detail[0] ? ": " : "", e->detail);
        break;
    case TR_LOST:
        tput(b, "missed %u event%s from peer %u (%s)", e->count, e->count == 1 ? "" : "s", e->peer,
             e->reason[0] ? e->reason : "this watcher read too slowly");
        break;
    case TR_OFFER_RECEIVED:
        tput(b, "offer of %s (%" PRIu64 " bytes) from %s", quoted(e->name, q), e->size,
             who(&e->from, e->from_peer, res, ctx, w1));
        break;
    case TR_OFFER_ACCEPTED:
        tput(b, "offer of %s from %s accepted: pulling it%s", quoted(e->name, q),
             who(&e->from, e->from_peer, res, ctx, w1), e->bytes ? ", resuming" : "");
        break;
    case TR_OFFER_REFUSED:
        tput(b, "offer of %s from %s refused: %s", quoted(e->name, q),
             who(&e->from, e->from_peer, res, ctx, w1), e->detail);
        break;
    case TR_SYNC_STARTED:
        tput(b, "sync of %s from %s started", quoted(e->name, q),
             who(&e->from, e->from_peer, res, ctx, w1));
        break;
    case TR_SYNC_DONE:
        tput(b, "sync of %s from %s done: %u file%s changed, %" PRIu64 " bytes moved, %" PRIu64
             " reused", quoted(e->name, q), who(&e->from, e->from_peer, res, ctx, w1), e->count,
             e->count == 1 ? "" : "s", e->bytes, e->source_bytes);
        break;
    case TR_SYNC_FAILED:
        tput(b, "sync of %s from %s failed: %s", quoted(e->name, q),
             who(&e->from, e->from_peer, res, ctx, w1), e->detail);
        break;
    default: tput(b, "?"); break;
    }
}

int trace_format_text(const struct trace_event *ev, trace_resolve_fn resolve, void *ctx,
                      int color, char *out, size_t cap)
{
    struct tbuf b = {out, cap, 0, cap == 0};
    time_t secs = (time_t)(ev->ts_us / 1000000u);
    struct tm tm;
    char qid[8] = "-";

    count_formatted();
    localtime_r(&secs, &tm);
    if (ev->qid[0])
        snprintf(qid, sizeof qid, "q%.4s", ev->qid);
    tput(&b, "%02d:%02d:%02d.%03u peer %-3u %-6s ", tm.tm_hour, tm.tm_min, tm.tm_sec,
         (unsigned)(ev->ts_us / 1000u % 1000u), ev->peer, qid);
    if (color)
        tput(&b, "%s", type_color(ev->type));
    describe(&b, ev, resolve, ctx);
    if (color)
        tput(&b, "\033[0m");
    return b.bad ? -1 : (int)b.len;
}

/* --- the control socket's line form --- */

static void put_kv(struct tbuf *b, const char *key, const char *val)
{
    if (b->bad || !val[0])
        return;
    tput(b, " %s=", key);
    if (b->bad)
        return;
    int n = msg_pct_encode(val, strlen(val), b->p + b->len, b->cap - b->len);
    if (n < 0)
        b->bad = 1;
    else
        b->len += (size_t)n;
}

static void put_num(struct tbuf *b, const char *key, uint64_t v)
{
    if (v)
        tput(b, " %s=%" PRIu64, key, v);
}

static void put_addr_kv(struct tbuf *b, const char *key, const struct fs_addr *a)
{
    char s[ADDR_STR_MAX];
    if (a->port)
        put_kv(b, key, addr_format(a, s));
}

int trace_encode(const struct trace_event *ev, char *out, size_t cap)
{
    struct tbuf b = {out, cap, 0, cap == 0};

    count_formatted();
    tput(&b, "type=%s ts=%" PRIu64 " seq=%" PRIu64 " peer=%u", trace_type_name(ev->type),
         ev->ts_us, ev->seq, ev->peer);
    put_addr_kv(&b, "addr", &ev->addr);
    put_kv(&b, "qid", ev->qid);
    put_kv(&b, "name", ev->name);
    put_addr_kv(&b, "from", &ev->from);
    put_num(&b, "from_peer", ev->from_peer);
    put_addr_kv(&b, "to", &ev->to);
    put_num(&b, "to_peer", ev->to_peer);
    put_addr_kv(&b, "origin", &ev->origin);
    put_num(&b, "holder", ev->holder);
    put_num(&b, "ttl", ev->ttl);
    put_num(&b, "hops", ev->hops);
    put_num(&b, "count", ev->count);
    put_num(&b, "role", ev->role);
    put_num(&b, "bytes", ev->bytes);
    put_num(&b, "size", ev->size);
    put_num(&b, "source_bytes", ev->source_bytes);
    put_kv(&b, "md5", ev->md5);
    put_kv(&b, "reason", ev->reason);
    put_kv(&b, "detail", ev->detail);
    put_kv(&b, "msg", ev->msg);
    return b.bad ? -1 : (int)b.len;
}

static fs_status bad(const char **why, const char *text)
{
    if (why)
        *why = text;
    return FS_EPROTO;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (!*s || (s[0] == '0' && s[1]))
        return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
            return 0;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (v > max)
        return 0;
    *out = v;
    return 1;
}

static int is_hex(const char *s, size_t n)
{
    if (strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* Stores one decoded key=value into ev; a constant sentence when bad. */
static const char *decode_field(struct trace_event *ev, const char *k, const char *v, int *have)
{
    struct { const char *key; unsigned *u; uint64_t *u64; uint64_t max; } nums[] = {
        {"ts", NULL, &ev->ts_us, UINT64_MAX},  {"seq", NULL, &ev->seq, UINT64_MAX},
        {"peer", &ev->peer, NULL, 65535},       {"from_peer", &ev->from_peer, NULL, 65535},
        {"to_peer", &ev->to_peer, NULL, 65535}, {"holder", &ev->holder, NULL, 65535},
        {"ttl", &ev->ttl, NULL, 255},           {"hops", &ev->hops, NULL, 255},
        {"count", &ev->count, NULL, UINT32_MAX}, {"bytes", NULL, &ev->bytes, UINT64_MAX},
        {"size", NULL, &ev->size, UINT64_MAX}, {"source_bytes", NULL, &ev->source_bytes, UINT64_MAX},
    };
    struct { const char *key; char *dst; size_t cap; } strs[] = {
        {"name", ev->name, sizeof ev->name},     {"reason", ev->reason, sizeof ev->reason},
        {"detail", ev->detail, sizeof ev->detail}, {"msg", ev->msg, sizeof ev->msg},
    };
    struct { const char *key; struct fs_addr *a; } addrs[] = {
        {"addr", &ev->addr}, {"from", &ev->from}, {"to", &ev->to}, {"origin", &ev->origin},
    };
    uint64_t x;
    const char *why = NULL;

    if (strcmp(k, "type") == 0) {
        ev->type = trace_type_parse(v);
        *have |= 1;
        return ev->type == TR_NONE ? "unknown event type" : NULL;
    }
    if (strcmp(k, "qid") == 0) {
        trace_set(ev->qid, sizeof ev->qid, v);
        return is_hex(v, MSG_QID_LEN) ? NULL : "qid is not 16 lower-case hex digits";
    }
    if (strcmp(k, "md5") == 0) {
        trace_set(ev->md5, sizeof ev->md5, v);
        return is_hex(v, MSG_MD5_LEN) ? NULL : "md5 is not 32 lower-case hex digits";
    }
    if (strcmp(k, "role") == 0) {
        if (!parse_u64(v, TR_ROLE_HOLDER, &x))
            return "role is not 0, 1 or 2";
        ev->role = (enum trace_role)x;
        return NULL;
    }
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        if (strcmp(k, nums[i].key) != 0)
            continue;
        if (!parse_u64(v, nums[i].max, &x))
            return "a number is malformed or out of range";
        if (nums[i].u)
            *nums[i].u = (unsigned)x;
        else
            *nums[i].u64 = x;
        *have |= strcmp(k, "ts") == 0 ? 2 : strcmp(k, "seq") == 0 ? 4 : 0;
        return NULL;
    }
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        if (strcmp(k, strs[i].key) == 0) {
            if (strlen(v) >= strs[i].cap)
                return "a text field is too long";
            trace_set(strs[i].dst, strs[i].cap, v);
            return NULL;
        }
    }
    for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++)
        if (strcmp(k, addrs[i].key) == 0)
            return addr_parse(v, strlen(v), addrs[i].a, &why) == FS_OK ? NULL
                                                                       : "an address is malformed";
    return NULL; /* unknown keys: a later version's */
}

fs_status trace_decode(const char *s, size_t len, struct trace_event *ev, const char **why)
{
    char key[16], val[3 * 1024];
    int have = 0;
    size_t i = 0;

    memset(ev, 0, sizeof *ev);
    while (i < len) {
        while (i < len && s[i] == ' ')
            i++;
        if (i == len)
            break;
        size_t start = i;
        while (i < len && s[i] != ' ')
            i++;
        const char *eq = memchr(s + start, '=', i - start);
        if (!eq)
            return bad(why, "a field has no '='");
        size_t kn = (size_t)(eq - (s + start));
        if (kn == 0 || kn >= sizeof key)
            return bad(why, "a field name is empty or too long");
        memcpy(key, s + start, kn);
        key[kn] = '\0';
        if (msg_pct_decode(eq + 1, (size_t)(s + i - eq - 1), val, sizeof val) < 0)
            return bad(why, "a value has a bad percent escape or is too long");
        const char *problem = decode_field(ev, key, val, &have);
        if (problem)
            return bad(why, problem);
    }
    if (have != 7)
        return bad(why, "an event needs type, ts and seq");
    return FS_OK;
}
