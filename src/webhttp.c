/* webhttp.c - the request parser of `floodshare web` (webhttp.h). */
#include "floodshare/webhttp.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Copies s[0..n) into dst (cap bytes). 0 when it does not fit. */
static int copy_field(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        return 0;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 1;
}

/* Where the head ends (just past "\r\n\r\n" or "\n\n"), or 0. */
static size_t head_end(const char *buf, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (buf[i] == '\n' && buf[i + 1] == '\n')
            return i + 2;
        if (i + 3 < len && memcmp(buf + i, "\r\n\r\n", 4) == 0)
            return i + 4;
    }
    return 0;
}

static fs_status parse_request_line(const char *s, size_t n, struct web_req *req, const char **why)
{
    const char *sp1 = memchr(s, ' ', n);
    if (!sp1 || !copy_field(req->method, sizeof req->method, s, (size_t)(sp1 - s))) {
        *why = "bad request line";
        return FS_EPROTO;
    }
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "POST") != 0) {
        *why = "method not supported (GET and POST only)";
        return FS_EPROTO;
    }
    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', n - (size_t)(target - s));
    if (!sp2 || target[0] != '/') {
        *why = "bad request target (must start with /)";
        return FS_EPROTO;
    }
    size_t vlen = n - (size_t)(sp2 + 1 - s);
    if (!((vlen == 8 && memcmp(sp2 + 1, "HTTP/1.1", 8) == 0) ||
          (vlen == 8 && memcmp(sp2 + 1, "HTTP/1.0", 8) == 0))) {
        *why = "HTTP version not supported (1.0 or 1.1)";
        return FS_EPROTO;
    }
    const char *q = memchr(target, '?', (size_t)(sp2 - target));
    const char *pend = q ? q : sp2;
    if (!copy_field(req->path, sizeof req->path, target, (size_t)(pend - target)) ||
        !copy_field(req->query, sizeof req->query, q ? q + 1 : sp2, q ? (size_t)(sp2 - q - 1) : 0)) {
        *why = "request target too long";
        return FS_EPROTO;
    }
    for (const char *c = target; c < sp2; c++) {
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f) {
            *why = "control or non-ASCII byte in the request target";
            return FS_EPROTO;
        }
    }
    return FS_OK;
}

static fs_status parse_header(const char *s, size_t n, struct web_req *req, const char **why)
{
    const char *colon = memchr(s, ':', n);
    if (!colon || colon == s) {
        *why = "bad header line";
        return FS_EPROTO;
    }
    size_t klen = (size_t)(colon - s);
    const char *v = colon + 1;
    size_t vlen = n - klen - 1;
    while (vlen && (*v == ' ' || *v == '\t'))
        v++, vlen--;
    while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
        vlen--;
#define IS(k) (klen == sizeof(k) - 1 && strncasecmp(s, k, klen) == 0)
    if (IS("Host")) {
        if (!copy_field(req->host, sizeof req->host, v, vlen)) {
            *why = "Host header too long";
            return FS_EPROTO;
        }
    } else if (IS("X-Floodshare-Token")) {
        if (!copy_field(req->token, sizeof req->token, v, vlen)) {
            *why = "X-Floodshare-Token too long";
            return FS_EPROTO;
        }
    } else if (IS("Authorization")) {
        /* "Bearer" SP+ token; another scheme is not ours and is ignored. */
        if (vlen > 6 && strncasecmp(v, "Bearer", 6) == 0 && (v[6] == ' ' || v[6] == '\t')) {
            const char *t = v + 7;
            size_t tlen = vlen - 7;
            while (tlen && (*t == ' ' || *t == '\t'))
                t++, tlen--;
            if (!copy_field(req->bearer, sizeof req->bearer, t, tlen)) {
                *why = "Authorization: Bearer token too long";
                return FS_EPROTO;
            }
        }
    } else if (IS("X-Floodshare")) {
        req->csrf_header = vlen == 1 && v[0] == '1';
    } else if (IS("Content-Length")) {
        char num[24];
        char *end;
        if (!vlen || !copy_field(num, sizeof num, v, vlen) || num[0] < '0' || num[0] > '9') {
            *why = "bad Content-Length";
            return FS_EPROTO;
        }
        unsigned long long cl = strtoull(num, &end, 10);
        if (*end) {
            *why = "bad Content-Length";
            return FS_EPROTO;
        }
        if (cl > WEB_MAX_BODY) {
            *why = "request body too large";
            return FS_ETOOBIG;
        }
        req->content_length = (size_t)cl;
    } else if (IS("Transfer-Encoding")) {
        *why = "Transfer-Encoding not supported (send Content-Length)";
        return FS_EPROTO;
    }
#undef IS
    return FS_OK;
}

fs_status webhttp_parse(const char *buf, size_t len, struct web_req *req, const char **why)
{
    memset(req, 0, sizeof *req);
    *why = NULL;
    size_t end = head_end(buf, len < WEB_MAX_HEAD ? len : WEB_MAX_HEAD);
    if (!end) {
        if (len >= WEB_MAX_HEAD) {
            *why = "request head too large";
            return FS_ETOOBIG;
        }
        return FS_NEED_MORE;
    }
    size_t pos = 0;
    int first = 1;
    while (pos < end) {
        const char *nl = memchr(buf + pos, '\n', end - pos);
        size_t n = (size_t)(nl - (buf + pos));
        if (n && buf[pos + n - 1] == '\r')
            n--;
        if (n == 0)
            break; /* the blank line */
        if (memchr(buf + pos, '\0', n)) {
            *why = "NUL byte in the request head";
            return FS_EPROTO;
        }
        fs_status st = first ? parse_request_line(buf + pos, n, req, why)
                             : parse_header(buf + pos, n, req, why);
        if (st != FS_OK)
            return st;
        first = 0;
        pos = (size_t)(nl - buf) + 1;
    }
    if (first) {
        *why = "empty request";
        return FS_EPROTO;
    }
    req->head_len = end;
    return FS_OK;
}

int webhttp_query(const char *query, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    const char *s = query;

    while (s && *s) {
        const char *amp = strchr(s, '&');
        size_t n = amp ? (size_t)(amp - s) : strlen(s);
        if (n > klen && strncmp(s, key, klen) == 0 && s[klen] == '=') {
            size_t vlen = n - klen - 1;
            if (vlen >= cap)
                vlen = cap - 1;
            memcpy(out, s + klen + 1, vlen);
            out[vlen] = '\0';
            return 1;
        }
        s = amp ? amp + 1 : NULL;
    }
    return 0;
}

/* Trims spaces and tabs on both ends of s[0..*n). */
static const char *trim(const char *s, size_t *n)
{
    while (*n && (*s == ' ' || *s == '\t'))
        s++, (*n)--;
    while (*n && (s[*n - 1] == ' ' || s[*n - 1] == '\t'))
        (*n)--;
    return s;
}

/* Looks at one Cookie header's value v[0..n): "a=1; b=2". Returns 1/-1 as
 * webhttp_cookie when the *left-th cookie called name (counting down
 * through every header) is here, else 0 with *left lowered by the ones seen. */
static int cookie_in(const char *v, size_t n, const char *name, size_t *left, char *out,
                     size_t cap)
{
    size_t nlen = strlen(name);

    while (n) {
        const char *semi = memchr(v, ';', n);
        size_t plen = semi ? (size_t)(semi - v) : n;
        size_t len = plen;
        const char *pair = trim(v, &len);
        const char *eq = memchr(pair, '=', len);
        if (eq && (size_t)(eq - pair) == nlen && memcmp(pair, name, nlen) == 0) {
            if (*left == 0) {
                size_t vl = len - nlen - 1;
                const char *val = trim(eq + 1, &vl);
                if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"')
                    val++, vl -= 2;
                if (vl >= cap)
                    return -1;
                memcpy(out, val, vl);
                out[vl] = '\0';
                return 1;
            }
            (*left)--;
        }
        if (!semi)
            break;
        v = semi + 1;
        n -= plen + 1;
    }
    return 0;
}

int webhttp_cookie(const char *head, size_t len, const char *name, size_t nth, char *out,
                   size_t cap)
{
    size_t pos = 0, left = nth;
    int first = 1;

    if (cap)
        out[0] = '\0';
    if (!cap || !name[0])
        return 0;
    while (pos < len) {
        const char *nl = memchr(head + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (head + pos)) : len - pos;
        const char *line = head + pos;
        pos += n + 1;
        if (n && line[n - 1] == '\r')
            n--;
        if (first) { /* the request line */
            first = 0;
            continue;
        }
        if (n == 0)
            break; /* the blank line: the head ends */
        if (n > 7 && strncasecmp(line, "Cookie:", 7) == 0) {
            int r = cookie_in(line + 7, n - 7, name, &left, out, cap);
            if (r) {
                if (r < 0)
                    out[0] = '\0';
                return r;
            }
        }
    }
    return 0;
}
