/* fuzz_msg.c - msg_parse() over bytes as they come off a peer's socket.
 *
 * Covers every verb: the flood (GET, FOUND), the archive transfer (REQUEST,
 * ITEM, ERROR), the transfer headers (FETCH, RANGE with its optional mode,
 * DATA, LIST, MANIFEST, BUSY), the link handshake (HELLO, CHALLENGE, PROVE)
 * and a send (OFFER, ACCEPT, PROGRESS, DONE). Beyond "no crash" it checks what the rest of the peer relies
 * on: the result codes are the documented ones, a refusal always says why
 * (and maps to an ERROR code), an accepted header consumed a whole line of at
 * most MSG_MAX_HEADER bytes, its names and paths pass name_valid() and
 * path_valid(), and msg_format() of it parses back to the same message (so
 * a relayed FOUND or a forwarded GET is exactly what was received). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "floodshare/msg.h"
#include "floodshare/pieces.h"

#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int is_code(const char *c)
{
    return !strcmp(c, "toolarge") || !strcmp(c, "version") || !strcmp(c, "unknown") ||
           !strcmp(c, "malformed");
}

/* The fields each verb carries, as in msg.h; comparing only those keeps the
 * check honest about what msg_format() promises to carry. */
static void check_same(const struct msg *a, const struct msg *b)
{
    CHECK(a->type == b->type);
    switch (a->type) {
    case MSG_GET:
        CHECK(!strcmp(a->qid, b->qid) && a->ttl == b->ttl && a->hops == b->hops);
        CHECK(addr_equal(&a->origin, &b->origin) && addr_equal(&a->from, &b->from));
        CHECK(!strcmp(a->name, b->name));
        break;
    case MSG_FOUND:
        CHECK(!strcmp(a->qid, b->qid) && a->hops == b->hops);
        CHECK(addr_equal(&a->holder, &b->holder) && a->peer_id == b->peer_id);
        CHECK(a->kind == b->kind && a->size == b->size && !strcmp(a->md5, b->md5));
        CHECK(!strcmp(a->path, b->path) && !strcmp(a->name, b->name));
        CHECK(!strcmp(a->root, b->root)); /* the optional root, "" when absent */
        break;
    case MSG_HASHES:
    case MSG_ROOTS:
        CHECK(!strcmp(a->path, b->path) && !strcmp(a->md5, b->md5) && !strcmp(a->root, b->root));
        break;
    case MSG_ROOTLIST:
        CHECK(!strcmp(a->md5, b->md5) && !strcmp(a->root, b->root) && a->len == b->len);
        break;
    case MSG_HASHLIST:
        CHECK(a->size == b->size && !strcmp(a->md5, b->md5) && !strcmp(a->root, b->root));
        CHECK(a->piece == b->piece && a->len == b->len);
        break;
    case MSG_REQUEST:
    case MSG_LIST:
        CHECK(!strcmp(a->path, b->path) && !strcmp(a->md5, b->md5));
        break;
    case MSG_ITEM:
        CHECK(a->kind == b->kind && a->size == b->size && !strcmp(a->md5, b->md5));
        CHECK(a->len == b->len && !strcmp(a->zmd5, b->zmd5));
        break;
    case MSG_ERROR:
        CHECK(!strcmp(a->code, b->code) && !strcmp(a->text, b->text));
        break;
    case MSG_FETCH:
        CHECK(!strcmp(a->path, b->path) && !strcmp(a->md5, b->md5) && a->offset == b->offset &&
              a->chunk == b->chunk && a->end == b->end);
        break;
    case MSG_RANGE:
        CHECK(a->size == b->size && !strcmp(a->md5, b->md5) && a->offset == b->offset);
        CHECK(a->chunk == b->chunk);
        /* The optional mode: carried exactly, and only when it was given. */
        CHECK(a->has_mode == b->has_mode);
        CHECK(!a->has_mode || a->mode == b->mode);
        break;
    case MSG_DATA:
        CHECK(a->idx == b->idx && a->len == b->len && a->crc == b->crc);
        break;
    case MSG_MANIFEST:
        CHECK(!strcmp(a->md5, b->md5) && a->len == b->len);
        break;
    case MSG_BUSY:
        CHECK(a->retry == b->retry);
        break;
    case MSG_HELLO:
        CHECK(addr_equal(&a->from, &b->from) && a->peer_id == b->peer_id);
        break;
    case MSG_CHALLENGE:
    case MSG_PROVE:
        CHECK(addr_equal(&a->from, &b->from) && !strcmp(a->nonce, b->nonce));
        break;
    case MSG_OFFER:
        CHECK(!strcmp(a->name, b->name) && a->kind == b->kind && a->size == b->size);
        CHECK(!strcmp(a->md5, b->md5) && addr_equal(&a->holder, &b->holder));
        CHECK(a->peer_id == b->peer_id && !strcmp(a->root, b->root));
        break;
    case MSG_ACCEPT:
        CHECK(a->offset == b->offset);
        break;
    case MSG_PROGRESS:
        CHECK(a->offset == b->offset && a->size == b->size);
        break;
    case MSG_DONE:
        CHECK(a->size == b->size && !strcmp(a->md5, b->md5) && a->len == b->len &&
              a->offset == b->offset);
        break;
    case MSG_BROWSE: /* the optional path, "" (the top level) when absent */
        CHECK(addr_equal(&a->from, &b->from) && a->offset == b->offset);
        CHECK(!strcmp(a->path, b->path));
        break;
    case MSG_WATCH:
        CHECK(addr_equal(&a->from, &b->from) && !strcmp(a->path, b->path));
        break;
    case MSG_CHANGED: /* the optional md5, "" (no such item) when absent */
        CHECK(!strcmp(a->path, b->path) && !strcmp(a->md5, b->md5));
        break;
    case MSG_LISTING:
        CHECK(a->peer_id == b->peer_id && a->total == b->total && a->offset == b->offset);
        CHECK(a->count == b->count && a->next == b->next && a->len == b->len);
        CHECK(!strcmp(a->path, b->path));
        break;
    }
}

/* What the verb's fields must satisfy for the rest of the peer to use them. */
static void check_fields(const struct msg *m)
{
    switch (m->type) {
    case MSG_GET:
        CHECK(strlen(m->qid) == MSG_QID_LEN);
        CHECK(m->ttl <= MSG_MAX_HOPS && m->hops <= MSG_MAX_HOPS);
        CHECK(m->origin.port != 0 && m->from.port != 0);
        CHECK(name_valid(m->name, strlen(m->name)));
        break;
    case MSG_FOUND:
        CHECK(m->peer_id >= 1 && m->peer_id <= 65535 && m->holder.port != 0);
        CHECK(m->kind == MSG_KIND_FILE || m->kind == MSG_KIND_FOLDER);
        CHECK(name_valid(m->name, strlen(m->name)));
        CHECK(path_valid(m->path, strlen(m->path)));
        CHECK(strlen(m->md5) == MSG_MD5_LEN);
        CHECK(m->root[0] == '\0' || pieces_root_valid(m->root)); /* optional */
        break;
    case MSG_REQUEST:
    case MSG_FETCH:
    case MSG_LIST:
        CHECK(path_valid(m->path, strlen(m->path)));
        CHECK(strlen(m->md5) == MSG_MD5_LEN);
        break;
    case MSG_HASHES:
    case MSG_ROOTS:
        CHECK(path_valid(m->path, strlen(m->path)));
        CHECK(strlen(m->md5) == MSG_MD5_LEN && pieces_root_valid(m->root));
        break;
    case MSG_BROWSE:
    case MSG_LISTING: /* browse.h: "" is the share's top level */
        CHECK(m->path[0] == '\0' || path_valid(m->path, strlen(m->path)));
        CHECK(m->type == MSG_LISTING || m->from.port != 0);
        CHECK(m->type == MSG_BROWSE || (m->peer_id >= 1 && m->total <= MSG_MAX_ENTRIES &&
                                        m->count <= MSG_MAX_ENTRIES &&
                                        m->next <= MSG_MAX_ENTRIES));
        break;
    case MSG_HASHLIST:
        CHECK(strlen(m->md5) == MSG_MD5_LEN && pieces_root_valid(m->root) && m->piece >= 1);
        break;
    case MSG_ROOTLIST:
        CHECK(strlen(m->md5) == MSG_MD5_LEN && pieces_root_valid(m->root));
        break;
    case MSG_ITEM:
        CHECK(m->kind == MSG_KIND_FILE || m->kind == MSG_KIND_FOLDER);
        CHECK(strlen(m->md5) == MSG_MD5_LEN && strlen(m->zmd5) == MSG_MD5_LEN);
        break;
    case MSG_ERROR:
        CHECK(strlen(m->code) >= 1);
        for (const char *p = m->text; *p; p++)
            CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
        break;
    case MSG_RANGE:
        CHECK(m->chunk >= 1 && strlen(m->md5) == MSG_MD5_LEN);
        /* mode= is 1 to 4 octal digits; without it, nothing is claimed. */
        CHECK(m->has_mode == 0 || m->has_mode == 1);
        CHECK(m->has_mode ? m->mode <= 07777 : m->mode == 0);
        break;
    case MSG_MANIFEST:
        CHECK(strlen(m->md5) == MSG_MD5_LEN);
        break;
    case MSG_DATA:
        break;
    case MSG_BUSY:
        CHECK(m->retry >= 1 && m->retry <= MSG_MAX_RETRY_MS);
        break;
    case MSG_HELLO:
        CHECK(m->from.port != 0 && m->peer_id >= 1 && m->peer_id <= 65535);
        break;
    case MSG_CHALLENGE:
    case MSG_PROVE:
        CHECK(m->from.port != 0 && strlen(m->nonce) == MSG_NONCE_LEN);
        for (const char *p = m->nonce; *p; p++) /* lower-case hex only */
            CHECK((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));
        break;
    case MSG_OFFER: /* what the receiver relies on before it dials the holder */
        CHECK(name_valid(m->name, strlen(m->name)));
        CHECK(m->kind == MSG_KIND_FILE || m->kind == MSG_KIND_FOLDER);
        CHECK(strlen(m->md5) == MSG_MD5_LEN && m->holder.port != 0);
        CHECK(m->peer_id >= 1 && m->peer_id <= 65535);
        CHECK(m->root[0] == '\0' || pieces_root_valid(m->root));
        break;
    case MSG_DONE:
        CHECK(strlen(m->md5) == MSG_MD5_LEN);
        break;
    case MSG_ACCEPT:
    case MSG_PROGRESS:
        break;
    case MSG_WATCH: /* the holder looks path up in its index: confined, never empty */
        CHECK(path_valid(m->path, strlen(m->path)) && m->from.port != 0);
        break;
    case MSG_CHANGED:
        CHECK(path_valid(m->path, strlen(m->path)));
        CHECK(m->md5[0] == '\0' || strlen(m->md5) == MSG_MD5_LEN); /* optional */
        break;
    default:
        CHECK(!"msg_parse() accepted a type msg.h does not list");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so ASan sees any read past the end. */
    char *buf = malloc(size ? size : 1);
    struct msg m, back;
    size_t used = 12345, used2 = 0;
    const char *why = NULL;
    char line[MSG_MAX_HEADER + 1];

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    fs_status st = msg_parse(buf, size, &m, &used, &why);
    if (st == FS_NEED_MORE) {
        CHECK(size < MSG_MAX_HEADER && !memchr(buf, '\n', size));
        CHECK(used == 0);
    } else if (st == FS_EPROTO) {
        CHECK(why != NULL && why[0] != '\0');
        CHECK(is_code(msg_error_code(why)));
        CHECK(used == 0);
    } else {
        CHECK(st == FS_OK);
        CHECK(used >= 1 && used <= size && used <= MSG_MAX_HEADER && buf[used - 1] == '\n');
        CHECK(!memchr(buf, '\n', used - 1)); /* the first line, not a later one */
        check_fields(&m);
        int n = msg_format(&m, line, sizeof line);
        CHECK(n > 0 && (size_t)n <= MSG_MAX_HEADER);
        CHECK(msg_parse(line, (size_t)n, &back, &used2, NULL) == FS_OK);
        CHECK(used2 == (size_t)n);
        check_same(&m, &back);
        /* The header parses the same whatever follows it (an ITEM body). */
        CHECK(msg_parse(buf, used, &back, &used2, NULL) == FS_OK && used2 == used);
        check_same(&m, &back);
    }
    /* Parsing is pure: the same bytes give the same answer. */
    CHECK(msg_parse(buf, size, &back, &used2, NULL) == st);
    free(buf);
    return 0;
}
