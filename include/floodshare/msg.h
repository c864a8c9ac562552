/* msg.h - the peer wire format (docs/PROTOCOL.md, protocol FLOOD/1).
 *
 * Pure functions over (bytes, length): no I/O, no allocation, no globals, so
 * they can be unit-tested and fuzzed alone. A message is one text header
 * line, "FLOOD/1 VERB key=value ...\n", at most MSG_MAX_HEADER bytes; an ITEM
 * header is followed by exactly `len` bytes of body, which the caller reads. */
#ifndef FLOODSHARE_MSG_H
#define FLOODSHARE_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "floodshare/addr.h"
#include "floodshare/name.h"
#include "floodshare/status.h"

#define MSG_PROTO "FLOOD/1"
#define MSG_MAX_HEADER 2048 /* bytes of one header line, '\n' included */
#define MSG_MAX_NAME NAME_MAX_LEN /* bytes of a decoded item name (name_valid()) */
#define MSG_MAX_PATH PATH_MAX_LEN /* bytes of a decoded share-relative path (path_valid()) */
#define MSG_MAX_TEXT 255    /* bytes of a decoded ERROR msg */
#define MSG_MAX_CODE 31     /* bytes of an ERROR code word */
#define MSG_QID_LEN 16      /* a query id is 16 lower-case hex digits */
#define MSG_MD5_LEN 32      /* an MD5 is 32 lower-case hex digits */
#define MSG_ROOT_LEN 64      /* a piece root is 64 lower-case hex digits (pieces.h) */
#define MSG_NONCE_LEN 32    /* a link challenge is 32 lower-case hex digits */
#define MSG_MAX_HOPS 255    /* ttl and hops must parse as 0..255 */
#define MSG_MAX_RETRY_MS 600000 /* a BUSY's retry: at most 10 minutes */
/* LISTING's total, count, offset and next: a folder of more entries than
 * this is not browsed (browse.h); a listing claiming more is malformed. */
#define MSG_MAX_ENTRIES 1048576

enum msg_type {
    MSG_GET = 1, /* flood query */
    MSG_FOUND,   /* a hit, travelling back along the reverse path */
    MSG_REQUEST, /* ask a holder for an item */
    MSG_ITEM,    /* the holder's answer; `len` body bytes follow */
    MSG_ERROR,   /* error reply; the sender closes the connection after it */
    MSG_FETCH,   /* ask a holder for a file's bytes from `offset` on */
    MSG_RANGE,   /* the holder's answer to FETCH; DATA frames follow */
    MSG_DATA,    /* one chunk of a file; `len` body bytes follow */
    MSG_LIST,    /* ask a holder for a folder's manifest */
    MSG_MANIFEST, /* the holder's answer to LIST; `len` body bytes follow */
    MSG_HELLO,    /* first message on a neighbour link: who dialled */
    MSG_CHALLENGE, /* "prove that link is you": sent over our own link to `from` */
    MSG_PROVE,     /* the answer, sent over the link being proven */
    MSG_BUSY,     /* a holder's refusal for now: every upload slot is taken; ask
                     again after `retry` ms (the holder closes the connection) */
    MSG_HASHES,   /* ask a holder for a file's piece hash list */
    MSG_HASHLIST, /* the holder's answer; `len` body bytes (the list) follow */
    MSG_OFFER,    /* "take my item": a send's offer; the receiver pulls it from holder */
    MSG_ACCEPT,   /* the receiver took the offer; `offset` bytes were already there */
    MSG_PROGRESS, /* the receiver has `offset` of the item's `size` bytes */
    MSG_DONE,     /* the receiver verified the item and gave it its name */
    MSG_BROWSE,   /* ask a holder for one page of a folder's listing (browse.h) */
    MSG_LISTING,  /* the holder's answer; `len` body bytes (listing.h lines) follow */
    MSG_ROOTS,    /* ask a holder for the piece roots of a folder's files */
    MSG_ROOTLIST, /* the holder's answer; `len` body bytes (32 per file) follow */
    MSG_WATCH,    /* a sync pair's watch: "tell me when path changes" (swatch.h) */
    MSG_CHANGED,  /* the holder's answer to WATCH, now and at each change of path */
};

enum msg_kind { MSG_KIND_FILE = 1, MSG_KIND_FOLDER = 2 };

/* A decoded message. Which fields are set depends on type; see PROTOCOL.md:
 *   GET:     qid ttl hops origin from name
 *   FOUND:   qid hops holder peer_id kind size md5 path name [root]
 *   REQUEST: path md5
 *   ITEM:    kind size md5 len zmd5
 *   ERROR:   code text
 *   FETCH:   path md5 offset [chunk] [end]   ([..]: optional; 0 when absent)
 *   RANGE:   size md5 offset chunk [mode]
 *   DATA:    idx len crc
 *   LIST:    path md5
 *   MANIFEST: md5 len
 *   HELLO:   from peer_id
 *   CHALLENGE, PROVE: from nonce
 *   BUSY:    retry
 *   HASHES:  path md5 root
 *   HASHLIST: size md5 root piece len
 *   OFFER:   name kind size md5 holder peer_id [root]
 *   ACCEPT:  offset (bytes of the item the receiver already had)
 *   PROGRESS: offset size
 *   DONE:    size md5 len offset (len: bytes received this time)
 *   BROWSE:  from offset [path]        (no path: the share's top level)
 *   LISTING: peer total offset count next len [path]
 *   ROOTS:   path md5 root              (md5, root: the folder's, from its FOUND)
 *   ROOTLIST: md5 root len             (len: 32 bytes per file of the manifest)
 *   WATCH:   from path
 *   CHANGED: path [md5]                (no md5: the holder has no item at path)
 * Strings are NUL-terminated and decoded (no percent escapes left). */
struct msg {
    enum msg_type type;
    char qid[MSG_QID_LEN + 1];
    unsigned ttl, hops;
    struct fs_addr origin; /* GET: the peer that started the query */
    struct fs_addr from;   /* GET: the previous hop, where FOUND goes back;
                              FOUND: the hop that sent it (checked against
                              where the query went) */
    struct fs_addr holder; /* FOUND: where to send REQUEST */
    unsigned peer_id;      /* FOUND: holder's id, 1..65535 */
    enum msg_kind kind;
    uint64_t size;              /* FOUND/ITEM: item content bytes */
    char md5[MSG_MD5_LEN + 1];  /* FOUND/REQUEST/ITEM: item digest */
    char zmd5[MSG_MD5_LEN + 1]; /* ITEM: MD5 of the body (the zip payload) */
    uint64_t len;               /* ITEM: body bytes after the header */
    char name[MSG_MAX_NAME + 1];
    char path[MSG_MAX_PATH + 1];
    char code[MSG_MAX_CODE + 1];
    char text[MSG_MAX_TEXT + 1];
    uint64_t offset; /* FETCH/RANGE: first byte of the file to send */
    uint64_t chunk;  /* RANGE: bytes per DATA frame (the last may be shorter);
                        FETCH: the frame size asked for, 0 = none asked */
    uint64_t idx;    /* DATA: chunk index in the file (byte idx * chunk) */
    uint32_t crc;    /* DATA: CRC-32 of the frame's bytes (8 lower-case hex) */
    char nonce[MSG_NONCE_LEN + 1]; /* CHALLENGE/PROVE */
    uint64_t retry;  /* BUSY: ms to wait before asking again, 1..MSG_MAX_RETRY_MS */
    unsigned mode;   /* RANGE: the file's permission bits on the holder (octal on
                        the wire, 0..07777), when has_mode */
    int has_mode;    /* RANGE: mode was given (older holders send none) */
    char root[MSG_ROOT_LEN + 1]; /* FOUND (optional, "" when absent), HASHES,
                                    HASHLIST: the root of the piece hashes;
                                    ROOTS, ROOTLIST: the folder root */
    uint64_t piece;  /* HASHLIST: bytes per piece */
    uint64_t end;    /* FETCH: send bytes before this one only; 0 = to the end */
    uint64_t nocrc;  /* FETCH: 1 = the requester checks every piece by its SHA-256, so
                        the holder leaves DATA's crc at 0 instead of computing it; 0 */
    uint64_t total;  /* LISTING: entries the folder has in all */
    uint64_t count;  /* LISTING: entries (lines) in this page's body */
    uint64_t next;   /* LISTING: the offset to ask for next; == total at the end */
};

/* Parses one header from buf[0..len).
 * Returns FS_OK with *consumed = header bytes (through '\n') and *out filled;
 * FS_NEED_MORE when no '\n' is in buf yet, len < MSG_MAX_HEADER and the
 * bytes so far can still begin a valid header (nothing in *out is
 * meaningful); FS_EPROTO when the header is malformed, unknown or longer
 * than MSG_MAX_HEADER, with *why a constant sentence naming the problem
 * (e.g. "ttl is not a number from 0 to 255"). why may be NULL.
 * A start that can no longer become a header (not "FLOOD/1", a raw control
 * byte) is refused before its '\n' arrives, with the sentence the whole
 * line would get: the verdict on a stream never depends on how it was cut
 * into reads. Never reads past buf[len-1]. A trailing "\r\n" is accepted
 * as "\n". */
fs_status msg_parse(const char *buf, size_t len, struct msg *out, size_t *consumed,
                    const char **why);

/* Writes m as a header line (with '\n') into out[0..cap). Returns the number
 * of bytes written, or -1 if m has a field that is invalid or does not fit.
 * msg_parse() of the result gives back an equal message. */
int msg_format(const struct msg *m, char *out, size_t cap);

/* Percent-encodes src[0..len) into dst (cap bytes, NUL-terminated): bytes
 * 0x21..0x7e other than '%' are kept, everything else becomes %XX (upper-case
 * hex). Returns the encoded length, or -1 if it does not fit. */
int msg_pct_encode(const char *src, size_t len, char *dst, size_t cap);

/* Decodes src[0..len) into dst (cap bytes, NUL-terminated). Returns the
 * decoded length, or -1 on a bad escape, a decoded NUL, or no room. */
int msg_pct_decode(const char *src, size_t len, char *dst, size_t cap);

/* 1 with *out set when s[0..n) is a number as the wire writes them (decimal
 * digits only, no sign, no leading zero, at most UINT64_MAX), else 0: for
 * the line formats beside the messages (listings, sync state). Pure. */
int msg_dec_u64(const char *s, size_t n, uint64_t *out);

/* The ERROR code to answer a msg_parse() failure with, from its *why:
 * "toolarge", "version", "unknown" or "malformed". */
const char *msg_error_code(const char *why);

/* "GET", "FOUND", ...; "?" for other values. */
const char *msg_type_name(enum msg_type t);
/* "file" or "folder". */
const char *msg_kind_name(enum msg_kind k);

#endif
