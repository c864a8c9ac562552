/* webhttp.h - the HTTP/1.1 request parser of `floodshare web` (web.h).
 *
 * Pure functions over (bytes, length): no I/O, no allocation. They read
 * only what the dashboard needs (method, path, query, Host, Content-Length,
 * X-Floodshare-Token, X-Floodshare, Authorization: Bearer, one cookie) and
 * refuse everything they do not understand, so a request is either
 * understood whole or answered 4xx. */
#ifndef FLOODSHARE_WEBHTTP_H
#define FLOODSHARE_WEBHTTP_H

#include <stddef.h>

#include "floodshare/status.h"

#define WEB_MAX_HEAD 8192  /* bytes of request line + headers */
#define WEB_MAX_BODY 4096  /* bytes of a POST body (one control command) */
#define WEB_MAX_PATH 512
#define WEB_MAX_HOST 256
#define WEB_TOKEN_MAX 64  /* bytes of a token as sent (the dashboard's is 64 hex digits) */
#define WEB_MAX_COOKIES 16 /* cookies of one name looked at (webhttp_cookie's nth) */

struct web_req {
    char method[8];               /* "GET" or "POST" */
    char path[WEB_MAX_PATH];      /* before '?', not decoded */
    char query[WEB_MAX_PATH];     /* after '?', "" when none */
    char host[WEB_MAX_HOST];      /* the Host header, "" when none */
    char token[WEB_TOKEN_MAX + 1]; /* X-Floodshare-Token, "" when none */
    char bearer[WEB_TOKEN_MAX + 1]; /* Authorization: Bearer TOKEN, "" when none or another scheme */
    int csrf_header;              /* X-Floodshare: 1 was sent (only scripts of the page can) */
    size_t content_length;
    size_t head_len;              /* bytes of the head, including the blank line */
};

/* Parses the head of a request in buf[0..len). FS_OK with *req filled and
 * req->head_len set; FS_NEED_MORE when the blank line has not come yet;
 * FS_ETOOBIG when the head is longer than WEB_MAX_HEAD or the body longer
 * than WEB_MAX_BODY; FS_EPROTO (with *why: a literal naming what was wrong)
 * for anything malformed or not supported (methods other than GET and POST,
 * Transfer-Encoding, HTTP other than 1.0/1.1, a field too long, a Bearer
 * token longer than WEB_TOKEN_MAX). Authorization with another scheme
 * (Basic...) is ignored, as are the Cookie headers: webhttp_cookie reads
 * those from the head when it is needed. */
fs_status webhttp_parse(const char *buf, size_t len, struct web_req *req, const char **why);

/* Finds key=value in a query string ("a=1&token=x"), copying the value
 * (undecoded, cut to cap-1 bytes) into out. 1 if found, else 0. */
int webhttp_query(const char *query, const char *key, char *out, size_t cap);

/* Finds the nth (0-based) cookie called name in the Cookie headers of the
 * head head[0..len) (as webhttp_parse accepted it: len is req.head_len),
 * in the order they were sent, and copies its value into out[cap]
 * (surrounding double quotes removed, as RFC 6265 allows them). Cookie
 * names are case-sensitive; header names are not. Returns 1 when found and
 * it fits; -1 when found but its value needs more than cap-1 bytes (out is
 * ""); 0 when there is no nth such cookie (out is ""). Pure: a browser may
 * send several cookies of one name (another server on the same host can set
 * one for a narrower Path), so the caller looks at each in turn. */
int webhttp_cookie(const char *head, size_t len, const char *name, size_t nth, char *out,
                   size_t cap);

#endif
