/* json.h - a small JSON writer into a bounded, growable buffer.
 *
 * Calls never fail individually: the first error (out of memory, over the
 * maximum size, nesting deeper than JSON_MAX_DEPTH) is remembered and
 * json_result() then returns NULL. Keys are ignored inside arrays and at top
 * level; commas are inserted automatically. Strings are escaped per RFC 8259;
 * bytes that are not valid UTF-8 become U+FFFD. */
#ifndef FLOODSHARE_JSON_H
#define FLOODSHARE_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "floodshare/status.h"

#define JSON_MAX_DEPTH 32

struct json {
    char *buf; /* owned; freed by json_free() */
    size_t len, cap, max;
    int depth;
    unsigned char first[JSON_MAX_DEPTH + 1]; /* no element written yet at this depth */
    unsigned char in_obj[JSON_MAX_DEPTH + 1];
    fs_status err;
};

/* max: the largest document allowed, in bytes. */
void json_init(struct json *j, size_t max);
void json_free(struct json *j);

void json_obj_open(struct json *j, const char *key);
void json_obj_close(struct json *j);
void json_arr_open(struct json *j, const char *key);
void json_arr_close(struct json *j);
void json_str(struct json *j, const char *key, const char *val); /* NULL val -> null */
void json_strn(struct json *j, const char *key, const char *val, size_t len);
void json_int(struct json *j, const char *key, int64_t val);
void json_uint(struct json *j, const char *key, uint64_t val);
void json_double(struct json *j, const char *key, double val); /* %.3f; non-finite -> null */
void json_bool(struct json *j, const char *key, int val);

/* The document (NUL-terminated, owned by j) or NULL if an error occurred;
 * *len (if not NULL) gets its length. Valid until the next call on j. */
const char *json_result(struct json *j, size_t *len);

#endif
