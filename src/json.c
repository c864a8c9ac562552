/* json.c - a small JSON writer (RFC 8259) into a bounded, growable buffer. */
#include "floodshare/json.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_FIRST_CAP 256

void json_init(struct json *j, size_t max)
{
    memset(j, 0, sizeof *j);
    /* One byte below SIZE_MAX keeps "max + 1" (room for the NUL) from wrapping. */
    j->max = max < SIZE_MAX ? max : SIZE_MAX - 1;
    j->first[0] = 1;
    j->err = FS_OK;
}

void json_free(struct json *j)
{
    free(j->buf);
    j->buf = NULL;
    j->len = 0;
    j->cap = 0;
}

static void fail(struct json *j, fs_status st)
{
    if (!j->err)
        j->err = st;
}

/* Makes room for n more bytes and the terminating NUL; 0 on success. */
static int reserve(struct json *j, size_t n)
{
    size_t need;
    size_t cap;
    char *p;

    if (j->err)
        return -1;
    if (n > j->max - j->len) {
        fail(j, FS_ETOOBIG);
        return -1;
    }
    need = j->len + n + 1;
    if (need <= j->cap)
        return 0;
    cap = j->cap ? j->cap : JSON_FIRST_CAP;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > j->max + 1)
        cap = j->max + 1;
    p = realloc(j->buf, cap);
    if (!p) {
        fail(j, FS_ENOMEM);
        return -1;
    }
    j->buf = p;
    j->cap = cap;
    return 0;
}

static void put(struct json *j, const char *s, size_t n)
{
    if (reserve(j, n) != 0)
        return;
    memcpy(j->buf + j->len, s, n);
    j->len += n;
    j->buf[j->len] = '\0';
}

/* Length of the valid UTF-8 sequence at s (n bytes available), or 0 if it
 * is not one: overlong forms, surrogates and code points above U+10FFFF are
 * invalid (RFC 3629). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char lo = 0x80, hi = 0xbf;
    size_t len;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        lo = s[0] == 0xe0 ? 0xa0 : lo;
        hi = s[0] == 0xed ? 0x9f : hi;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        lo = s[0] == 0xf0 ? 0x90 : lo;
        hi = s[0] == 0xf4 ? 0x8f : hi;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* c < 0 stands for a byte that is not valid UTF-8; otherwise c is '"', '\\'
 * or a control character. */
static void put_escape(struct json *j, int c)
{
    static const char hex[] = "0123456789abcdef";
    char e[6] = {'\\', 'u', '0', '0', 0, 0};

    if (c < 0) {
        put(j, "\\ufffd", 6);
    } else if (c == '"' || c == '\\') {
        e[1] = (char)c;
        put(j, e, 2);
    } else {
        e[4] = hex[(c >> 4) & 15];
        e[5] = hex[c & 15];
        put(j, e, 6);
    }
}

/* Copies runs of bytes that need no escape in one put(). */
static void put_string(struct json *j, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0;
    size_t i = 0;

    put(j, "\"", 1);
    while (i < n) {
        size_t k = utf8_len(u + i, n - i);
        if (k > 0 && u[i] >= 0x20 && u[i] != '"' && u[i] != '\\') {
            i += k;
            continue;
        }
        put(j, s + run, i - run);
        put_escape(j, k > 0 ? u[i] : -1);
        run = ++i;
    }
    put(j, s + run, n - run);
    put(j, "\"", 1);
}

/* Writes what goes before a value: the comma and, inside an object, the key.
 * Returns 0 if the value may follow. */
static int begin_value(struct json *j, const char *key)
{
    int d = j->depth;

    if (j->err)
        return -1;
    if (d == 0 && !j->first[0]) {
        fail(j, FS_EINVAL); /* a second top-level value is not a document */
        return -1;
    }
    if (j->in_obj[d] && !key) {
        fail(j, FS_EINVAL);
        return -1;
    }
    if (!j->first[d])
        put(j, ",", 1);
    j->first[d] = 0;
    if (j->in_obj[d]) {
        put_string(j, key, strlen(key));
        put(j, ":", 1);
    }
    return j->err ? -1 : 0;
}

static void open_container(struct json *j, const char *key, int is_obj)
{
    if (!j->err && j->depth == JSON_MAX_DEPTH) {
        fail(j, FS_ETOOBIG);
        return;
    }
    if (begin_value(j, key) != 0)
        return;
    put(j, is_obj ? "{" : "[", 1);
    j->depth++;
    j->first[j->depth] = 1;
    j->in_obj[j->depth] = (unsigned char)is_obj;
}

static void close_container(struct json *j, int is_obj)
{
    if (j->err)
        return;
    if (j->depth == 0 || j->in_obj[j->depth] != is_obj) {
        fail(j, FS_EINVAL);
        return;
    }
    put(j, is_obj ? "}" : "]", 1);
    j->depth--;
}

void json_obj_open(struct json *j, const char *key)
{
    open_container(j, key, 1);
}

void json_obj_close(struct json *j)
{
    close_container(j, 1);
}

void json_arr_open(struct json *j, const char *key)
{
    open_container(j, key, 0);
}

void json_arr_close(struct json *j)
{
    close_container(j, 0);
}

static void put_raw_value(struct json *j, const char *key, const char *text)
{
    if (begin_value(j, key) == 0)
        put(j, text, strlen(text));
}

void json_strn(struct json *j, const char *key, const char *val, size_t len)
{
    if (!val) {
        put_raw_value(j, key, "null");
        return;
    }
    if (begin_value(j, key) == 0)
        put_string(j, val, len);
}

void json_str(struct json *j, const char *key, const char *val)
{
    json_strn(j, key, val, val ? strlen(val) : 0);
}

void json_int(struct json *j, const char *key, int64_t val)
{
    char b[24];

    snprintf(b, sizeof b, "%" PRId64, val);
    put_raw_value(j, key, b);
}

void json_uint(struct json *j, const char *key, uint64_t val)
{
    char b[24];

    snprintf(b, sizeof b, "%" PRIu64, val);
    put_raw_value(j, key, b);
}

void json_double(struct json *j, const char *key, double val)
{
    char b[400]; /* "%.3f" of DBL_MAX is 313 characters */

    if (!isfinite(val)) {
        put_raw_value(j, key, "null");
        return;
    }
    snprintf(b, sizeof b, "%.3f", val);
    /* A locale set by the program may make the decimal point a comma. */
    for (char *p = b; *p; p++)
        if (*p == ',')
            *p = '.';
    put_raw_value(j, key, b);
}

void json_bool(struct json *j, const char *key, int val)
{
    put_raw_value(j, key, val ? "true" : "false");
}

const char *json_result(struct json *j, size_t *len)
{
    if (len)
        *len = 0;
    /* An unclosed object or array is not a document yet. */
    if (j->err || j->depth != 0)
        return NULL;
    if (!j->buf && reserve(j, 0) != 0)
        return NULL;
    j->buf[j->len] = '\0';
    if (len)
        *len = j->len;
    return j->buf;
}
