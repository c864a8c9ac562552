/* msg.c - FLOOD/1 header lines: parse, validate and format (docs/PROTOCOL.md).
 *
 * Every *why set here is a constant sentence that a peer sends back verbatim
 * in an ERROR reply, so each one names the field and the rule it broke.
 * msg_error_code() maps them to the reply's code by identity, not text. */
#include "floodshare/msg.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char WHY_TOO_LONG[] = "header longer than 2048 bytes";
static const char WHY_NUL[] = "header contains a NUL byte";
static const char WHY_RAW_BYTE[] =
    "header contains a control or non-ASCII byte; values must be percent-encoded";
static const char WHY_VERSION[] = "unsupported protocol version";
static const char WHY_NOT_FLOOD[] = "not a FLOOD/1 message";
static const char WHY_NO_VERB[] = "message type is missing";
static const char WHY_UNKNOWN[] = "unknown message type";
static const char WHY_EMPTY_TOKEN[] =
    "empty token: tokens are separated by exactly one space";
static const char WHY_NO_EQ[] = "token is not key=value";
static const char WHY_EMPTY_KEY[] = "token has an empty key";
static const char WHY_BAD_KEY[] = "key is not a lower-case word";

/* ---------------------------------------------------------------- decoding */

enum { DEC_ESCAPE = -1, DEC_NUL = -2, DEC_ROOM = -3 };

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* msg_pct_decode() with the reason for a failure, so the parser can say
 * which rule a value broke. dst may be left without a terminator on error. */
static int pct_decode(const char *src, size_t len, char *dst, size_t cap)
{
    size_t j = 0;

    if (cap == 0)
        return DEC_ROOM;
    if (cap > INT_MAX)
        cap = INT_MAX; /* so that the decoded length fits the int result */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '%') {
            if (len - i < 3)
                return DEC_ESCAPE;
            int hi = hex_value((unsigned char)src[i + 1]);
            int lo = hex_value((unsigned char)src[i + 2]);
            if (hi < 0 || lo < 0)
                return DEC_ESCAPE;
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        }
        if (c == 0)
            return DEC_NUL;
        if (j + 1 >= cap)
            return DEC_ROOM;
        dst[j++] = (char)c;
    }
    dst[j] = '\0';
    return (int)j;
}

int msg_pct_decode(const char *src, size_t len, char *dst, size_t cap)
{
    int n = pct_decode(src, len, dst, cap);

    if (n < 0) {
        if (cap > 0)
            dst[0] = '\0';
        return -1;
    }
    return n;
}

int msg_pct_encode(const char *src, size_t len, char *dst, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t j = 0;

    if (cap == 0)
        return -1;
    if (cap > INT_MAX)
        cap = INT_MAX;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        int keep = c >= 0x21 && c <= 0x7e && c != '%';
        size_t need = keep ? 1 : 3;
        if (cap - j <= need) {
            dst[0] = '\0';
            return -1;
        }
        if (keep) {
            dst[j++] = (char)c;
        } else {
            dst[j++] = '%';
            dst[j++] = hex[c >> 4];
            dst[j++] = hex[c & 0x0f];
        }
    }
    dst[j] = '\0';
    return (int)j;
}

/* ------------------------------------------------------------ field rules */

static int is_lower_hex(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f')))
            return 0;
    return 1;
}

/* How a decimal value broke the rules of PROTOCOL.md ("decimal, unsigned,
 * without sign or leading zeros"), so the reply can say which one. */
enum num_flaw { NUM_OK, NUM_NOT_DIGITS, NUM_LEADING_ZERO, NUM_RANGE };

/* Decimal from min to max. Every byte must be a digit before the value is
 * judged, and the bound is checked before each multiply, so no input can
 * overflow. */
static enum num_flaw dec_u64(const char *v, size_t n, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t x = 0;
    int over = 0;

    if (n == 0)
        return NUM_NOT_DIGITS;
    for (size_t i = 0; i < n; i++)
        if (v[i] < '0' || v[i] > '9')
            return NUM_NOT_DIGITS;
    if (n > 1 && v[0] == '0')
        return NUM_LEADING_ZERO;
    for (size_t i = 0; i < n && !over; i++) {
        unsigned d = (unsigned)(v[i] - '0');
        /* x * 10 + d > max, without wrapping (max - d wrapped for a digit
         * above a maximum below 9: nocrc=2 passed as 1's only value) */
        if (x > max / 10 || (x == max / 10 && d > max % 10))
            over = 1;
        else
            x = x * 10 + d;
    }
    if (over || x < min)
        return NUM_RANGE;
    *out = x;
    return NUM_OK;
}

int msg_dec_u64(const char *s, size_t n, uint64_t *out)
{
    return dec_u64(s, n, 0, UINT64_MAX, out) == NUM_OK;
}

static fs_status fail(const char **why, const char *sentence)
{
    *why = sentence;
    return FS_EPROTO;
}

static fs_status hex_field(const char *v, size_t n, size_t want, char *dst, const char *bad,
                           const char **why)
{
    if (n != want || !is_lower_hex(v, n))
        return fail(why, bad);
    memcpy(dst, v, n);
    dst[n] = '\0';
    return FS_OK;
}

/* The sentences for the ways a number can break the rules. */
struct num_why {
    const char *not_digits, *leading_zero, *range;
};

#define NUM_WHY(key, range)                                                                   \
    {#key " is not a decimal number (digits only, no sign)", #key " has a leading zero",       \
     #key " is not " range}

static fs_status num_field(const char *v, size_t n, uint64_t min, uint64_t max, uint64_t *dst,
                           const struct num_why *w, const char **why)
{
    switch (dec_u64(v, n, min, max, dst)) {
    case NUM_OK: return FS_OK;
    case NUM_NOT_DIGITS: return fail(why, w->not_digits);
    case NUM_LEADING_ZERO: return fail(why, w->leading_zero);
    case NUM_RANGE: break;
    }
    return fail(why, w->range);
}

static fs_status small_field(const char *v, size_t n, uint64_t min, uint64_t max, unsigned *dst,
                             const struct num_why *w, const char **why)
{
    uint64_t x;
    fs_status st = num_field(v, n, min, max, &x, w, why);

    if (st == FS_OK)
        *dst = (unsigned)x;
    return st;
}

static fs_status addr_field(const char *v, size_t n, struct fs_addr *dst, const char *bad,
                            const char **why)
{
    if (addr_parse(v, n, dst, NULL) != FS_OK)
        return fail(why, bad);
    return FS_OK;
}

/* The sentences for the ways a percent-encoded text value can fail to decode. */
struct text_why {
    const char *escape, *nul, *too_long;
};

/* Decodes v[0..n) into dst (cap bytes with the NUL); *dlen = decoded bytes. */
static fs_status text_field(const char *v, size_t n, char *dst, size_t cap,
                            const struct text_why *w, size_t *dlen, const char **why)
{
    /* Every decoded byte takes 1 to 3 encoded ones: a longer value cannot
     * fit, whatever it holds, so it is refused before any decoding. */
    if (n > 3 * (cap - 1))
        return fail(why, w->too_long);
    int r = pct_decode(v, n, dst, cap);
    if (r == DEC_ESCAPE)
        return fail(why, w->escape);
    if (r == DEC_NUL)
        return fail(why, w->nul);
    if (r < 0)
        return fail(why, w->too_long);
    *dlen = (size_t)r;
    return FS_OK;
}

/* Why name_valid() refused a name, so the reply can say which rule broke.
 * name_valid() alone decides validity; this only picks the sentence. */
enum name_flaw { FLAW_EMPTY, FLAW_LONG, FLAW_DOTS, FLAW_SLASH, FLAW_CONTROL, FLAW_UTF8 };

static enum name_flaw name_flaw(const char *s, size_t n)
{
    if (n == 0)
        return FLAW_EMPTY;
    if (n > NAME_MAX_LEN)
        return FLAW_LONG;
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return FLAW_DOTS;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '/' || c == '\\')
            return FLAW_SLASH;
        if (c < 0x20 || c == 0x7f)
            return FLAW_CONTROL;
        if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] < 0xa0 &&
            (unsigned char)s[i + 1] >= 0x80)
            return FLAW_CONTROL; /* a C1 control, U+0080..U+009F */
    }
    return FLAW_UTF8;
}

/* The flaw of the first component of a path that path_valid() refused. */
static enum name_flaw path_flaw(const char *s, size_t n)
{
    size_t start = 0;

    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '/') {
            if (!name_valid(s + start, i - start))
                return name_flaw(s + start, i - start);
            start = i + 1;
        }
    }
    return FLAW_UTF8;
}

/* ------------------------------------------------------ one parser per key */

static fs_status parse_qid(const char *v, size_t n, struct msg *m, const char **why)
{
    return hex_field(v, n, MSG_QID_LEN, m->qid, "qid is not 16 lower-case hex digits", why);
}

static fs_status parse_ttl(const char *v, size_t n, struct msg *m, const char **why)
{
    static const struct num_why w = NUM_WHY(ttl, "a number from 0 to 255");

    return small_field(v, n, 0, MSG_MAX_HOPS, &m->ttl, &w, why);
}

static fs_status parse_hops(const char *v, size_t n, struct msg *m, const char **why)
{
    static const struct num_why w = NUM_WHY(hops, "a number from 0 to 255");

    return small_field(v, n, 0, MSG_MAX_HOPS, &m->hops, &w, why);
}

static fs_status parse_origin(const char *v, size_t n, struct msg *m, const char **why)
{
    return addr_field(v, n, &m->origin,
                      "origin is not host:port with a port from 1 to 65535", why);
}

static fs_status parse_from(const char *v, size_t n, struct msg *m, const char **why)
{
    return addr_field(v, n, &m->from, "from is not host:port with a port from 1 to 65535",
                      why);
}

static fs_status parse_holder(const char *v, size_t n, struct msg *m, const char **why)
{
    return addr_field(v, n, &m->holder,
                      "holder is not host:port with a port from 1 to 65535", why);
}

static fs_status parse_peer(const char *v, size_t n, struct msg *m, const char **why)
{
    static const struct num_why w = NUM_WHY(peer, "a number from 1 to 65535");

    return small_field(v, n, 1, 65535, &m->peer_id, &w, why);
}

static fs_status parse_kind(const char *v, size_t n, struct msg *m, const char **why)
{
    if (n == 4 && memcmp(v, "file", 4) == 0)
        m->kind = MSG_KIND_FILE;
    else if (n == 6 && memcmp(v, "folder", 6) == 0)
        m->kind = MSG_KIND_FOLDER;
    else
        return fail(why, "kind is not file or folder");
    return FS_OK;
}

static fs_status parse_size(const char *v, size_t n, struct msg *m, const char **why)
{
    static const struct num_why w = NUM_WHY(size, "a number that fits in 64 bits");

    return num_field(v, n, 0, UINT64_MAX, &m->size, &w, why);
}

static fs_status parse_len(const char *v, size_t n, struct msg *m, const char **why)
{
    static const struct num_why w = NUM_WHY(len, "a number that fits in 64 bits");

    return num_field(v, n, 0, UINT64_MAX, &m->len, &w, why);
}

static fs_status parse_md5(const char *v, size_t n, struct msg *m, const char **why)
{
    return hex_field(v, n, MSG_MD5_LEN, m->md5, "md5 is not 32 lower-case hex digits", why);
}

static fs_status parse_zmd5(const char *v, size_t n, struct msg *m, const char **why)
{
    return hex_field(v, n, MSG_MD5_LEN, m->zmd5, "zmd5 is not 32 lower-case hex digits",
                     why);
}

static fs_status parse_offset(const char *v, size_t n, struct msg *m, const char **why)
{
    static const struct num_why w = NUM_WHY(offset, "a number that fits in 64 bits");

    return num_field(v, n, 0, UINT64_MAX, &m->offset, &w, why);
}

static fs_status parse_chunk(const char *v, size_t n, struct msg *m, const char **why)
{
    static const struct num_why w = NUM_WHY(chunk, "a number from 1 up that fits in 64 bits");

    return num_field(v, n, 1, UINT64_MAX, &m->chunk, &w, why);
}

static fs_status parse_root(const char *v, size_t n, struct msg *m, const char **why)
{
    return hex_field(v, n, MSG_ROOT_LEN, m->root, "root is not 64 lower-case hex digits", why);
}

static fs_status parse_piece(const char *v, size_t n, struct msg *m, const char **why)
{
    static const struct num_why w =
        NUM_WHY(piece, "a number from 1 up that fits in 64 bits");

    return num_field(v, n, 1, UINT64_MAX, &m->piece, &w, why);
}

static fs_status parse_end(const char *v, size_t n, struct msg *m, const char **why)
{
    static const struct num_why w = NUM_WHY(end, "a number from 1 up that fits in 64 bits");

    return num_field(v, n, 1, UINT64_MAX, &m->end, &w, why);
}

static fs_status parse_nocrc(const char *v, size_t n, struct msg *m, const char **why)
{
    static const struct num_why w = NUM_WHY(nocrc, "1 (the only value it has)");

    return num_field(v, n, 1, 1, &m->nocrc, &w, why);
}

static fs_status parse_total(const char *v, size_t n, struct msg *m, const char **why)
{
    static const struct num_why w = NUM_WHY(total, "a number from 0 to 1048576");

    return num_field(v, n, 0, MSG_MAX_ENTRIES, &m->total, &w, why);
}

static fs_status parse_count(const char *v, size_t n, struct msg *m, const char **why)
{
    static const struct num_why w = NUM_WHY(count, "a number from 0 to 1048576");

    return num_field(v, n, 0, MSG_MAX_ENTRIES, &m->count, &w, why);
}

static fs_status parse_next(const char *v, size_t n, struct msg *m, const char **why)
{
    static const struct num_why w = NUM_WHY(next, "a number from 0 to 1048576");

    return num_field(v, n, 0, MSG_MAX_ENTRIES, &m->next, &w, why);
}

static fs_status parse_idx(const char *v, size_t n, struct msg *m, const char **why)
{
    static const struct num_why w = NUM_WHY(idx, "a number that fits in 64 bits");

    return num_field(v, n, 0, UINT64_MAX, &m->idx, &w, why);
}

static fs_status parse_crc(const char *v, size_t n, struct msg *m, const char **why)
{
    char hex[9];

    if (hex_field(v, n, 8, hex, "crc is not 8 lower-case hex digits", why) != FS_OK)
        return FS_EPROTO;
    m->crc = (uint32_t)strtoul(hex, NULL, 16);
    return FS_OK;
}

static fs_status parse_nonce(const char *v, size_t n, struct msg *m, const char **why)
{
    return hex_field(v, n, MSG_NONCE_LEN, m->nonce, "nonce is not 32 lower-case hex digits", why);
}

static fs_status parse_retry(const char *v, size_t n, struct msg *m, const char **why)
{
    static const struct num_why w = NUM_WHY(retry, "a number of ms from 1 to 600000");

    return num_field(v, n, 1, MSG_MAX_RETRY_MS, &m->retry, &w, why);
}

/* 1 to 4 octal digits (a leading 0 is fine: it is octal); the receiver
 * keeps only the permission bits (& 0777). */
static fs_status parse_mode(const char *v, size_t n, struct msg *m, const char **why)
{
    unsigned x = 0;

    if (n == 0 || n > 4)
        return fail(why, "mode is not 1 to 4 octal digits");
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '7')
            return fail(why, "mode is not 1 to 4 octal digits");
        x = x * 8 + (unsigned)(v[i] - '0');
    }
    m->mode = x;
    m->has_mode = 1;
    return FS_OK;
}

static fs_status parse_name(const char *v, size_t n, struct msg *m, const char **why)
{
    static const struct text_why w = {
        "name has a '%' not followed by two hex digits",
        "name contains a NUL byte (%00)",
        "name exceeds 255 bytes",
    };
    static const char *const flaw_why[] = {
        [FLAW_EMPTY] = "name is empty",
        [FLAW_LONG] = "name exceeds 255 bytes",
        [FLAW_DOTS] = "name is . or ..",
        [FLAW_SLASH] = "name contains '/' or '\\'",
        [FLAW_CONTROL] = "name contains a control byte",
        [FLAW_UTF8] = "name is not valid UTF-8",
    };
    size_t dlen;
    fs_status st = text_field(v, n, m->name, sizeof m->name, &w, &dlen, why);

    if (st)
        return st;
    if (!name_valid(m->name, dlen))
        return fail(why, flaw_why[name_flaw(m->name, dlen)]);
    return FS_OK;
}

static fs_status parse_path(const char *v, size_t n, struct msg *m, const char **why)
{
    static const struct text_why w = {
        "path has a '%' not followed by two hex digits",
        "path contains a NUL byte (%00)",
        "path exceeds 1023 bytes",
    };
    static const char *const flaw_why[] = {
        [FLAW_EMPTY] = "path has an empty component (a double or trailing '/')",
        [FLAW_LONG] = "path has a component that exceeds 255 bytes",
        [FLAW_DOTS] = "path has a . or .. component",
        [FLAW_SLASH] = "path contains '\\'",
        [FLAW_CONTROL] = "path contains a control byte",
        [FLAW_UTF8] = "path is not valid UTF-8",
    };
    size_t dlen;
    fs_status st = text_field(v, n, m->path, sizeof m->path, &w, &dlen, why);

    if (st)
        return st;
    if (dlen == 0)
        return fail(why, "path is empty");
    if (m->path[0] == '/')
        return fail(why, "path is absolute (starts with '/')");
    if (!path_valid(m->path, dlen))
        return fail(why, flaw_why[path_flaw(m->path, dlen)]);
    return FS_OK;
}

static fs_status parse_code(const char *v, size_t n, struct msg *m, const char **why)
{
    if (n == 0 || n > MSG_MAX_CODE)
        return fail(why, "code is not 1 to 31 lower-case letters");
    for (size_t i = 0; i < n; i++)
        if (v[i] < 'a' || v[i] > 'z')
            return fail(why, "code is not 1 to 31 lower-case letters");
    memcpy(m->code, v, n);
    m->code[n] = '\0';
    return FS_OK;
}

/* An empty msg is allowed: the code alone already says what went wrong. */
static fs_status parse_msg(const char *v, size_t n, struct msg *m, const char **why)
{
    static const struct text_why w = {
        "msg has a '%' not followed by two hex digits",
        "msg contains a NUL byte (%00)",
        "msg exceeds 255 bytes",
    };
    size_t dlen;
    fs_status st = text_field(v, n, m->text, sizeof m->text, &w, &dlen, why);

    if (st)
        return st;
    for (size_t i = 0; i < dlen; i++) {
        unsigned char c = (unsigned char)m->text[i];
        if (c < 0x20 || c == 0x7f)
            return fail(why, "msg contains a control byte");
    }
    return FS_OK;
}

/* ------------------------------------------------------------ key tables */

typedef fs_status (*parse_fn)(const char *v, size_t n, struct msg *m, const char **why);

#define KEY_LIST(X)                                                                           \
    X(qid) X(ttl) X(hops) X(origin) X(from) X(holder) X(peer) X(kind) X(size) X(md5) X(path)  \
        X(name) X(len) X(zmd5) X(code) X(msg) X(offset) X(chunk) X(idx) X(crc) X(nonce) X(retry) \
            X(mode) X(root) X(piece) X(end) X(total) X(count) X(next) X(nocrc)

enum key {
#define KEY_ENUM(k) K_##k,
    KEY_LIST(KEY_ENUM)
#undef KEY_ENUM
        K_COUNT
};

/* parse_pair() keeps the keys seen in one unsigned's bits. */
_Static_assert(K_COUNT <= 32, "more keys than bits in parse_pair()'s seen set");

struct key_spec {
    const char *name;
    const char *dup_why;
    parse_fn parse;
};

static const struct key_spec keys[K_COUNT] = {
#define KEY_SPEC(k) [K_##k] = {#k, "duplicate key " #k, parse_##k},
    KEY_LIST(KEY_SPEC)
#undef KEY_SPEC
};

struct need {
    enum key key;
    const char *missing_why;
};

#define NEED(verb, k) {K_##k, #verb " needs " #k}

/* Keys in the order msg_format() writes them (the order of PROTOCOL.md). */
static const struct need get_keys[] = {
    NEED(GET, qid),    NEED(GET, ttl),  NEED(GET, hops),
    NEED(GET, origin), NEED(GET, from), NEED(GET, name),
};
static const struct need found_keys[] = {
    NEED(FOUND, qid),  NEED(FOUND, hops), NEED(FOUND, from), NEED(FOUND, holder),
    NEED(FOUND, peer), NEED(FOUND, kind), NEED(FOUND, size),
    NEED(FOUND, md5),  NEED(FOUND, path), NEED(FOUND, name),
};
/* The root of the file's piece hashes (pieces.h), from holders that have
 * one: older holders and folders send none. */
static const struct need found_opt[] = {{K_root, NULL}};
static const struct need request_keys[] = {NEED(REQUEST, path), NEED(REQUEST, md5)};
static const struct need item_keys[] = {
    NEED(ITEM, kind), NEED(ITEM, size), NEED(ITEM, md5), NEED(ITEM, len), NEED(ITEM, zmd5),
};
static const struct need error_keys[] = {NEED(ERROR, code), NEED(ERROR, msg)};
static const struct need fetch_keys[] = {NEED(FETCH, path), NEED(FETCH, md5), NEED(FETCH, offset)};
/* Optional keys: parsed when present, written when set (non-zero), never
 * missing. Older peers skip them as unknown keys. */
static const struct need fetch_opt[] = {{K_chunk, NULL}, {K_end, NULL}, {K_nocrc, NULL}};
static const struct need range_keys[] = {
    NEED(RANGE, size), NEED(RANGE, md5), NEED(RANGE, offset), NEED(RANGE, chunk),
};
/* The file's permission bits on the holder, so the download gets them. */
static const struct need range_opt[] = {{K_mode, NULL}};
static const struct need data_keys[] = {NEED(DATA, idx), NEED(DATA, len), NEED(DATA, crc)};
static const struct need list_keys[] = {NEED(LIST, path), NEED(LIST, md5)};
static const struct need manifest_keys[] = {NEED(MANIFEST, md5), NEED(MANIFEST, len)};
static const struct need hello_keys[] = {NEED(HELLO, from), NEED(HELLO, peer)};
static const struct need challenge_keys[] = {NEED(CHALLENGE, from), NEED(CHALLENGE, nonce)};
static const struct need prove_keys[] = {NEED(PROVE, from), NEED(PROVE, nonce)};
static const struct need busy_keys[] = {NEED(BUSY, retry)};
static const struct need hashes_keys[] = {NEED(HASHES, path), NEED(HASHES, md5),
                                          NEED(HASHES, root)};
static const struct need hashlist_keys[] = {
    NEED(HASHLIST, size), NEED(HASHLIST, md5), NEED(HASHLIST, root), NEED(HASHLIST, piece),
    NEED(HASHLIST, len),
};
/* A large folder's file roots (docs/PROTOCOL.md, Folder roots): asked by
 * the folder's path, md5 and folder root; the answer's body is one binary
 * root per file of the manifest, in its order. */
static const struct need roots_keys[] = {NEED(ROOTS, path), NEED(ROOTS, md5), NEED(ROOTS, root)};
static const struct need rootlist_keys[] = {NEED(ROOTLIST, md5), NEED(ROOTLIST, root),
                                            NEED(ROOTLIST, len)};
/* A send (cmd_send.c, offer.c): the sender's offer, and the receiver's
 * answers on the same connection while it pulls the item. */
static const struct need offer_keys[] = {
    NEED(OFFER, name), NEED(OFFER, kind), NEED(OFFER, size),
    NEED(OFFER, md5),  NEED(OFFER, holder), NEED(OFFER, peer),
};
static const struct need accept_keys[] = {NEED(ACCEPT, offset)};
static const struct need progress_keys[] = {NEED(PROGRESS, offset), NEED(PROGRESS, size)};
static const struct need done_keys[] = {NEED(DONE, size), NEED(DONE, md5), NEED(DONE, len),
                                        NEED(DONE, offset)};

/* BROWSE without path asks for the share's top level (a path cannot be
 * empty on the wire); LISTING names the folder the same way. */
static const struct need browse_keys[] = {NEED(BROWSE, from), NEED(BROWSE, offset)};
static const struct need browse_opt[] = {{K_path, NULL}};
static const struct need listing_keys[] = {
    NEED(LISTING, peer),  NEED(LISTING, total), NEED(LISTING, offset),
    NEED(LISTING, count), NEED(LISTING, next),  NEED(LISTING, len),
};
static const struct need listing_opt[] = {{K_path, NULL}};
/* A sync pair's watch (swatch.h): CHANGED comes at once with the item's
 * state, then at each change, on the same connection. No md5: the holder
 * has no item at path (now, or any more). */
static const struct need watch_keys[] = {NEED(WATCH, from), NEED(WATCH, path)};
static const struct need changed_keys[] = {NEED(CHANGED, path)};
static const struct need changed_opt[] = {{K_md5, NULL}};

struct verb_spec {
    const char *name;
    enum msg_type type;
    const struct need *keys;
    size_t nkeys;
    const struct need *opt;
    size_t nopt;
};

#define VERB(name, type, list) {name, type, list, sizeof list / sizeof list[0], NULL, 0}
#define VERB_OPT(name, type, list, opt)                                                       \
    {name, type, list, sizeof list / sizeof list[0], opt, sizeof opt / sizeof opt[0]}

static const struct verb_spec verbs[] = {
    VERB("GET", MSG_GET, get_keys),
    VERB_OPT("FOUND", MSG_FOUND, found_keys, found_opt),
    VERB("REQUEST", MSG_REQUEST, request_keys),
    VERB("ITEM", MSG_ITEM, item_keys),
    VERB("ERROR", MSG_ERROR, error_keys),
    VERB_OPT("FETCH", MSG_FETCH, fetch_keys, fetch_opt),
    VERB_OPT("RANGE", MSG_RANGE, range_keys, range_opt),
    VERB("DATA", MSG_DATA, data_keys),
    VERB("LIST", MSG_LIST, list_keys),
    VERB("MANIFEST", MSG_MANIFEST, manifest_keys),
    VERB("HELLO", MSG_HELLO, hello_keys),
    VERB("CHALLENGE", MSG_CHALLENGE, challenge_keys),
    VERB("PROVE", MSG_PROVE, prove_keys),
    VERB("BUSY", MSG_BUSY, busy_keys),
    VERB("HASHES", MSG_HASHES, hashes_keys),
    VERB("HASHLIST", MSG_HASHLIST, hashlist_keys),
    VERB_OPT("OFFER", MSG_OFFER, offer_keys, found_opt),
    VERB("ACCEPT", MSG_ACCEPT, accept_keys),
    VERB("PROGRESS", MSG_PROGRESS, progress_keys),
    VERB("DONE", MSG_DONE, done_keys),
    VERB_OPT("BROWSE", MSG_BROWSE, browse_keys, browse_opt),
    VERB_OPT("LISTING", MSG_LISTING, listing_keys, listing_opt),
    VERB("ROOTS", MSG_ROOTS, roots_keys),
    VERB("ROOTLIST", MSG_ROOTLIST, rootlist_keys),
    VERB("WATCH", MSG_WATCH, watch_keys),
    VERB_OPT("CHANGED", MSG_CHANGED, changed_keys, changed_opt),
};

#define NVERBS (sizeof verbs / sizeof verbs[0])

static int bytes_eq(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

static const struct verb_spec *verb_by_name(const char *s, size_t n)
{
    for (size_t i = 0; i < NVERBS; i++)
        if (bytes_eq(s, n, verbs[i].name))
            return &verbs[i];
    return NULL;
}

static const struct verb_spec *verb_by_type(enum msg_type t)
{
    for (size_t i = 0; i < NVERBS; i++)
        if (verbs[i].type == t)
            return &verbs[i];
    return NULL;
}

static int key_by_name(const char *s, size_t n)
{
    for (int k = 0; k < K_COUNT; k++)
        if (bytes_eq(s, n, keys[k].name))
            return k;
    return -1;
}

static int verb_uses(const struct verb_spec *v, int k)
{
    for (size_t i = 0; i < v->nkeys; i++)
        if ((int)v->keys[i].key == k)
            return 1;
    for (size_t i = 0; i < v->nopt; i++)
        if ((int)v->opt[i].key == k)
            return 1;
    return 0;
}

/* ---------------------------------------------------------------- parsing */

/* Finds the end of the first line. A '\n' beyond MSG_MAX_HEADER is never
 * looked for, so a peer cannot make us scan an unbounded buffer. Returns 1
 * with the line (without "\n" or "\r\n") when there is one, else 0. */
static int find_line(const char *buf, size_t len, size_t *line_len, size_t *consumed)
{
    size_t scan = len < MSG_MAX_HEADER ? len : MSG_MAX_HEADER;
    const char *nl = scan > 0 ? memchr(buf, '\n', scan) : NULL;

    if (!nl)
        return 0;
    *consumed = (size_t)(nl - buf) + 1;
    *line_len = (size_t)(nl - buf);
    if (*line_len > 0 && buf[*line_len - 1] == '\r')
        (*line_len)--;
    return 1;
}

/* The checks below run in a fixed order (protocol word, raw bytes, length,
 * then the fields), each on the bytes that have arrived. Each one refuses
 * only what no later byte can repair, so a stream gets the same verdict
 * however TCP cuts it into reads, and a sender that is not speaking FLOOD/1
 * at all (a TLS handshake, a binary blob) is told so at once instead of
 * holding a worker until the header deadline. complete says that s[0..n)
 * is a whole line; otherwise it is the start of one still arriving. */

/* The first token must be MSG_PROTO. */
static fs_status check_proto(const char *s, size_t n, int complete, const char **why)
{
    static const char proto[] = MSG_PROTO, family[] = "FLOOD/";
    const size_t plen = sizeof proto - 1, flen = sizeof family - 1;
    const char *sp = n > 0 ? memchr(s, ' ', n) : NULL;
    size_t tlen = sp ? (size_t)(sp - s) : n;

    if (n == 0)
        return complete ? fail(why, WHY_NOT_FLOOD) : FS_NEED_MORE;
    if (sp || complete) {
        if (tlen == plen && memcmp(s, proto, plen) == 0)
            return FS_OK;
    } else if ((tlen <= plen && memcmp(s, proto, tlen) == 0) ||
               (tlen == plen + 1 && memcmp(s, proto, plen) == 0 && s[plen] == '\r')) {
        return FS_NEED_MORE; /* may still become MSG_PROTO (the '\r' of a "\r\n") */
    }
    return fail(why, tlen >= flen && memcmp(s, family, flen) == 0 ? WHY_VERSION : WHY_NOT_FLOOD);
}

/* Values are percent-encoded, so a raw byte outside 0x20..0x7e can only
 * come from a broken or hostile sender. A '\r' that ends an incomplete
 * line is not judged yet: it may be the first half of "\r\n". */
static fs_status check_bytes(const char *line, size_t n, int complete, const char **why)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c == 0)
            return fail(why, WHY_NUL);
        if (c == '\r' && !complete && i == n - 1)
            break;
        if (c < 0x20 || c > 0x7e)
            return fail(why, WHY_RAW_BYTE);
    }
    return FS_OK;
}

struct token {
    const char *p;
    size_t n;
};

/* Splits on single spaces: n spaces always make n + 1 tokens, so a double,
 * leading or trailing space shows up as an empty token. */
struct lexer {
    const char *p, *end;
    int done;
};

static int lex_next(struct lexer *lx, struct token *t)
{
    if (lx->done)
        return 0;
    const char *sp = lx->p < lx->end ? memchr(lx->p, ' ', (size_t)(lx->end - lx->p)) : NULL;
    t->p = lx->p;
    if (sp) {
        t->n = (size_t)(sp - lx->p);
        lx->p = sp + 1;
    } else {
        t->n = (size_t)(lx->end - lx->p);
        lx->done = 1;
    }
    return 1;
}

static int key_chars_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

static fs_status parse_pair(const struct token *t, const struct verb_spec *v, struct msg *m,
                            unsigned *seen, const char **why)
{
    if (t->n == 0)
        return fail(why, WHY_EMPTY_TOKEN);
    const char *eq = memchr(t->p, '=', t->n);
    if (!eq)
        return fail(why, WHY_NO_EQ);
    size_t klen = (size_t)(eq - t->p);
    if (klen == 0)
        return fail(why, WHY_EMPTY_KEY);
    if (!key_chars_ok(t->p, klen))
        return fail(why, WHY_BAD_KEY);
    int k = key_by_name(t->p, klen);
    if (k < 0)
        return FS_OK; /* left for later versions of the protocol */
    if (*seen & (1u << k))
        return fail(why, keys[k].dup_why);
    *seen |= 1u << k;
    if (!verb_uses(v, k))
        return FS_OK;
    return keys[k].parse(eq + 1, t->n - klen - 1, m, why);
}

/* The protocol word was checked by check_proto(): skip it, read the verb. */
static fs_status parse_start(struct lexer *lx, struct msg *m, const struct verb_spec **v,
                             const char **why)
{
    struct token t;

    lex_next(lx, &t);
    if (!lex_next(lx, &t))
        return fail(why, WHY_NO_VERB);
    if (t.n == 0)
        return fail(why, WHY_EMPTY_TOKEN);
    *v = verb_by_name(t.p, t.n);
    if (!*v)
        return fail(why, WHY_UNKNOWN);
    m->type = (*v)->type;
    return FS_OK;
}

static fs_status parse_line(const char *line, size_t n, struct msg *m, const char **why)
{
    struct lexer lx = {line, line + n, 0};
    const struct verb_spec *v = NULL;
    struct token t;
    unsigned seen = 0;
    fs_status st = parse_start(&lx, m, &v, why);

    while (st == FS_OK && lex_next(&lx, &t))
        st = parse_pair(&t, v, m, &seen, why);
    if (st)
        return st;
    for (size_t i = 0; i < v->nkeys; i++)
        if (!(seen & (1u << v->keys[i].key)))
            return fail(why, v->keys[i].missing_why);
    return FS_OK;
}

fs_status msg_parse(const char *buf, size_t len, struct msg *out, size_t *consumed,
                    const char **why)
{
    const char *ignored;
    size_t line_len = 0, used = 0;

    if (!why)
        why = &ignored;
    *why = NULL;
    *consumed = 0;
    int complete = find_line(buf, len, &line_len, &used);
    if (!complete) /* judge what has arrived, at most one header's worth */
        line_len = len < MSG_MAX_HEADER ? len : MSG_MAX_HEADER;
    fs_status st = check_proto(buf, line_len, complete, why);
    if (st == FS_OK)
        st = check_bytes(buf, line_len, complete, why);
    if (st == FS_OK && !complete)
        st = len < MSG_MAX_HEADER ? FS_NEED_MORE : fail(why, WHY_TOO_LONG);
    if (st)
        return st;
    memset(out, 0, sizeof *out);
    st = parse_line(buf, line_len, out, why);
    if (st == FS_OK)
        *consumed = used;
    return st;
}

/* -------------------------------------------------------------- formatting */

/* An append-only window on the caller's buffer; once anything does not fit
 * (or a field is unusable) bad sticks and the rest is skipped. */
struct wbuf {
    char *p;
    size_t cap, len;
    int bad;
};

static void put_bytes(struct wbuf *w, const char *s, size_t n)
{
    if (w->bad || n > w->cap - w->len) {
        w->bad = 1;
        return;
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
}

static void put_str(struct wbuf *w, const char *s)
{
    put_bytes(w, s, strlen(s));
}

/* field is a char array of size bytes; one with no NUL inside is garbage. */
static void put_enc(struct wbuf *w, const char *field, size_t size)
{
    size_t n = strnlen(field, size);

    if (w->bad || n == size) {
        w->bad = 1;
        return;
    }
    int r = msg_pct_encode(field, n, w->p + w->len, w->cap - w->len);
    if (r < 0)
        w->bad = 1;
    else
        w->len += (size_t)r;
}

static void put_u64(struct wbuf *w, uint64_t x)
{
    char tmp[24];

    snprintf(tmp, sizeof tmp, "%" PRIu64, x);
    put_str(w, tmp);
}

static void put_crc(struct wbuf *w, uint32_t crc)
{
    char tmp[9];

    snprintf(tmp, sizeof tmp, "%08" PRIx32, crc);
    put_str(w, tmp);
}

static void put_mode(struct wbuf *w, unsigned mode)
{
    char tmp[16];

    if (mode > 07777) {
        w->bad = 1;
        return;
    }
    snprintf(tmp, sizeof tmp, "%o", mode);
    put_str(w, tmp);
}

static void put_addr(struct wbuf *w, const struct fs_addr *a)
{
    char tmp[ADDR_STR_MAX];

    if (strnlen(a->host, sizeof a->host) == sizeof a->host) {
        w->bad = 1;
        return;
    }
    put_str(w, addr_format(a, tmp));
}

/* Writes the value without judging it: msg_format() re-parses the line. */
static void put_value(struct wbuf *w, const struct msg *m, enum key k)
{
    switch (k) {
    case K_qid: put_enc(w, m->qid, sizeof m->qid); break;
    case K_ttl: put_u64(w, m->ttl); break;
    case K_hops: put_u64(w, m->hops); break;
    case K_origin: put_addr(w, &m->origin); break;
    case K_from: put_addr(w, &m->from); break;
    case K_holder: put_addr(w, &m->holder); break;
    case K_peer: put_u64(w, m->peer_id); break;
    case K_kind: put_str(w, msg_kind_name(m->kind)); break;
    case K_size: put_u64(w, m->size); break;
    case K_md5: put_enc(w, m->md5, sizeof m->md5); break;
    case K_path: put_enc(w, m->path, sizeof m->path); break;
    case K_name: put_enc(w, m->name, sizeof m->name); break;
    case K_len: put_u64(w, m->len); break;
    case K_zmd5: put_enc(w, m->zmd5, sizeof m->zmd5); break;
    case K_code: put_enc(w, m->code, sizeof m->code); break;
    case K_msg: put_enc(w, m->text, sizeof m->text); break;
    case K_offset: put_u64(w, m->offset); break;
    case K_chunk: put_u64(w, m->chunk); break;
    case K_idx: put_u64(w, m->idx); break;
    case K_crc: put_crc(w, m->crc); break;
    case K_nonce: put_enc(w, m->nonce, sizeof m->nonce); break;
    case K_retry: put_u64(w, m->retry); break;
    case K_mode: put_mode(w, m->mode); break;
    case K_root: put_enc(w, m->root, sizeof m->root); break;
    case K_piece: put_u64(w, m->piece); break;
    case K_end: put_u64(w, m->end); break;
    case K_nocrc: put_u64(w, m->nocrc); break;
    case K_total: put_u64(w, m->total); break;
    case K_count: put_u64(w, m->count); break;
    case K_next: put_u64(w, m->next); break;
    case K_COUNT: w->bad = 1; break;
    }
}

/* Is optional key k set in m? chunk is a number whose 0 means "not given"
 * (a value its parser refuses); mode, where 0 is a mode, has its flag. */
static int opt_set(const struct msg *m, enum key k)
{
    if (k == K_chunk)
        return m->chunk != 0;
    if (k == K_mode)
        return m->has_mode;
    if (k == K_root)
        return m->root[0] != '\0';
    if (k == K_end)
        return m->end != 0;
    if (k == K_nocrc)
        return m->nocrc != 0;
    if (k == K_path) /* optional only for BROWSE and LISTING: "" is the top level */
        return m->path[0] != '\0';
    if (k == K_md5) /* optional only for CHANGED: "" is "no such item" */
        return m->md5[0] != '\0';
    return 1;
}

int msg_format(const struct msg *m, char *out, size_t cap)
{
    const struct verb_spec *v = verb_by_type(m->type);
    struct wbuf w = {out, cap < MSG_MAX_HEADER ? cap : MSG_MAX_HEADER, 0, 0};
    struct msg check;
    size_t used;

    if (!v || cap == 0)
        return -1;
    put_str(&w, MSG_PROTO " ");
    put_str(&w, v->name);
    for (size_t i = 0; i < v->nkeys; i++) {
        put_str(&w, " ");
        put_str(&w, keys[v->keys[i].key].name);
        put_str(&w, "=");
        put_value(&w, m, v->keys[i].key);
    }
    for (size_t i = 0; i < v->nopt; i++) {
        if (!opt_set(m, v->opt[i].key))
            continue;
        put_str(&w, " ");
        put_str(&w, keys[v->opt[i].key].name);
        put_str(&w, "=");
        put_value(&w, m, v->opt[i].key);
    }
    put_str(&w, "\n");
    /* Re-parsing applies exactly the receiver's rules to every field, so we
     * can never send a line that a peer running this code would refuse. */
    if (w.bad || msg_parse(out, w.len, &check, &used, NULL) != FS_OK || used != w.len) {
        out[0] = '\0';
        return -1;
    }
    if (w.len < cap)
        out[w.len] = '\0'; /* a convenience for logs; callers use the length */
    return (int)w.len;
}

const char *msg_type_name(enum msg_type t)
{
    const struct verb_spec *v = verb_by_type(t);

    return v ? v->name : "?";
}

const char *msg_kind_name(enum msg_kind k)
{
    switch (k) {
    case MSG_KIND_FILE: return "file";
    case MSG_KIND_FOLDER: return "folder";
    }
    return "?";
}

const char *msg_error_code(const char *why)
{
    if (why == WHY_TOO_LONG)
        return "toolarge";
    if (why == WHY_VERSION || why == WHY_NOT_FLOOD)
        return "version";
    if (why == WHY_UNKNOWN)
        return "unknown";
    return "malformed";
}
