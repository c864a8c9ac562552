/* test_msg.c - the FLOOD/1 wire format: parse, format, percent-encoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "floodshare/msg.h"

#define QID "7f2a90c3d1e4b5a6"
#define MD5 "6f5902ac237024bdd0c176cb93063dc4"
#define ZMD5 "0c2d4c1e8d1b0c3f9e2a6b7c8d9e0f11"
#define A1 "127.0.0.1:10811"
#define A2 "127.0.0.1:10812"

#define GET_LINE(qid, ttl, hops, origin, from, name)                                          \
    "FLOOD/1 GET qid=" qid " ttl=" ttl " hops=" hops " origin=" origin " from=" from          \
    " name=" name "\n"
#define FOUND_LINE(holder, peer, kind, size, md5, path)                                       \
    "FLOOD/1 FOUND qid=" QID " hops=2 from=" A2 " holder=" holder " peer=" peer " kind=" kind  \
    " size=" size " md5=" md5 " path=" path " name=3.txt\n"
#define REQUEST_LINE(path, md5) "FLOOD/1 REQUEST path=" path " md5=" md5 "\n"
#define ITEM_LINE(kind, size, len, zmd5)                                                      \
    "FLOOD/1 ITEM kind=" kind " size=" size " md5=" MD5 " len=" len " zmd5=" zmd5 "\n"
#define ERROR_LINE(code, text) "FLOOD/1 ERROR code=" code " msg=" text "\n"
/* The sentence for a number with a sign or a non-digit in it. */
#define NOT_DIGITS(key) key " is not a decimal number (digits only, no sign)"

/* The examples of docs/PROTOCOL.md, as they appear on the wire. */
static const char *const valid_lines[] = {
    GET_LINE("7f2a90c3d1e4b5a6", "3", "1", A1, A2, "3.txt"),
    FOUND_LINE("127.0.0.1:10813", "3", "file", "12", MD5, "docs/3.txt"),
    REQUEST_LINE("docs/3.txt", MD5),
    ITEM_LINE("file", "12", "130", ZMD5),
    ERROR_LINE("notfound", "no%20such%20item"),
    "FLOOD/1 GET qid=" QID " ttl=0 hops=0 origin=a:1 from=b.c-d:65535 name=x\r\n",
};
#define NVALID (sizeof valid_lines / sizeof valid_lines[0])

struct bad_case {
    const char *line;
    const char *why;
};

static fs_status parse_str(const char *s, struct msg *m, size_t *used, const char **why)
{
    return msg_parse(s, strlen(s), m, used, why);
}

/* Each line must be refused with exactly its why; the failing line is
 * printed so that a table failure says which row broke. */
static void expect_all_malformed(const struct bad_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct msg m;
        size_t used = 99;
        const char *why = NULL;
        fs_status st = parse_str(cases[i].line, &m, &used, &why);
        if (st != FS_EPROTO || !why || strcmp(why, cases[i].why) != 0)
            fail_msg("line %zu \"%s\": got %s \"%s\", want EPROTO \"%s\"", i, cases[i].line,
                     fs_status_name(st), why ? why : "(null)", cases[i].why);
        assert_int_equal(used, 0);
    }
}

#define EXPECT_ALL_MALFORMED(table) expect_all_malformed(table, sizeof table / sizeof table[0])

static void set_addr(struct fs_addr *a, const char *host, uint16_t port)
{
    memset(a, 0, sizeof *a);
    strcpy(a->host, host);
    a->port = port;
}

static void make_get(struct msg *m, const char *name)
{
    memset(m, 0, sizeof *m);
    m->type = MSG_GET;
    strcpy(m->qid, QID);
    m->ttl = 3;
    m->hops = 0;
    set_addr(&m->origin, "127.0.0.1", 10811);
    set_addr(&m->from, "127.0.0.1", 10811);
    strcpy(m->name, name);
}

static void make_found(struct msg *m, const char *path, const char *name)
{
    memset(m, 0, sizeof *m);
    m->type = MSG_FOUND;
    strcpy(m->qid, QID);
    m->hops = 2;
    set_addr(&m->from, "127.0.0.1", 10812);
    set_addr(&m->holder, "peer-3.example", 10813);
    m->peer_id = 3;
    m->kind = MSG_KIND_FOLDER;
    m->size = UINT64_MAX;
    strcpy(m->md5, MD5);
    strcpy(m->path, path);
    strcpy(m->name, name);
}

static void make_request(struct msg *m)
{
    memset(m, 0, sizeof *m);
    m->type = MSG_REQUEST;
    strcpy(m->path, "docs/3.txt");
    strcpy(m->md5, MD5);
}

static void make_item(struct msg *m)
{
    memset(m, 0, sizeof *m);
    m->type = MSG_ITEM;
    m->kind = MSG_KIND_FILE;
    m->size = 12;
    strcpy(m->md5, MD5);
    m->len = 130;
    strcpy(m->zmd5, ZMD5);
}

static void make_error(struct msg *m, const char *code, const char *text)
{
    memset(m, 0, sizeof *m);
    m->type = MSG_ERROR;
    strcpy(m->code, code);
    strcpy(m->text, text);
}

/* Format then parse must give back the same struct. Both sides start from
 * zeroed memory, so a byte compare covers every field (and padding). */
static void assert_round_trip(const struct msg *m)
{
    char line[MSG_MAX_HEADER];
    struct msg back;
    size_t used = 0;
    const char *why = NULL;
    int n = msg_format(m, line, sizeof line);

    assert_true(n > 0);
    assert_int_equal(line[n - 1], '\n');
    assert_int_equal(msg_parse(line, (size_t)n, &back, &used, &why), FS_OK);
    assert_null(why);
    assert_int_equal(used, (size_t)n);
    assert_memory_equal(&back, m, sizeof *m);
}

/* ------------------------------------------------------------ round trips */

static void test_round_trip_get(void **state)
{
    struct msg m;

    (void)state;
    make_get(&m, "3.txt");
    assert_round_trip(&m);
}

static void test_round_trip_found(void **state)
{
    struct msg m;

    (void)state;
    make_found(&m, "docs/3.txt", "3.txt");
    assert_round_trip(&m);
}

static void test_round_trip_request(void **state)
{
    struct msg m;

    (void)state;
    make_request(&m);
    assert_round_trip(&m);
}

static void test_round_trip_item(void **state)
{
    struct msg m;

    (void)state;
    make_item(&m);
    assert_round_trip(&m);
}

static void test_round_trip_error(void **state)
{
    struct msg m;

    (void)state;
    make_error(&m, "notfound", "no such item: 100% \"gone\" \xc3\xa9");
    assert_round_trip(&m);
}

/* A send: the offer (name, never a path), and the receiver's answers. */
static void test_round_trip_send_messages(void **state)
{
    struct msg m;
    size_t used;
    const char *why;

    (void)state;
    memset(&m, 0, sizeof m);
    m.type = MSG_OFFER;
    strcpy(m.name, "my album");
    m.kind = MSG_KIND_FOLDER;
    m.size = 66404;
    strcpy(m.md5, MD5);
    strcpy(m.holder.host, "::1");
    m.holder.port = 10811;
    m.peer_id = 65535;
    assert_round_trip(&m);
    memset(m.root, 'b', MSG_ROOT_LEN); /* the optional piece root of a file */
    m.kind = MSG_KIND_FILE;
    assert_round_trip(&m);
    memset(&m, 0, sizeof m);
    m.type = MSG_ACCEPT;
    m.offset = 6291456;
    assert_round_trip(&m);
    m.type = MSG_PROGRESS;
    m.size = 25165824;
    assert_round_trip(&m);
    m.type = MSG_DONE;
    m.len = 18874368;
    strcpy(m.md5, MD5);
    assert_round_trip(&m);
    /* a name with a path in it, or .., is refused before anybody is dialled */
    static const char *const bad[] = {
        "FLOOD/1 OFFER name=.. kind=file size=1 md5=" MD5 " holder=127.0.0.1:1 peer=1\n",
        "FLOOD/1 OFFER name=a/b kind=file size=1 md5=" MD5 " holder=127.0.0.1:1 peer=1\n",
        "FLOOD/1 OFFER name=%2Fetc kind=file size=1 md5=" MD5 " holder=127.0.0.1:1 peer=1\n",
        "FLOOD/1 OFFER name=x kind=file size=1 md5=" MD5 " peer=1\n", /* no holder */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(msg_parse(bad[i], strlen(bad[i]), &m, &used, &why), FS_EPROTO);
}

/* The link handshake: HELLO names who dialled; CHALLENGE and PROVE carry a
 * 128-bit nonce, and anything but 32 lower-case hex digits is refused. */
static void test_round_trip_link_handshake(void **state)
{
    struct msg m, back;
    size_t used;
    const char *why = NULL;
    static const char bad[] = "FLOOD/1 PROVE from=127.0.0.1:10812 nonce=ABCDEF\n";
    static const char no_nonce[] = "FLOOD/1 CHALLENGE from=127.0.0.1:10812\n";
    static const char no_peer[] = "FLOOD/1 HELLO from=127.0.0.1:10812\n";

    (void)state;
    memset(&m, 0, sizeof m);
    m.type = MSG_HELLO;
    snprintf(m.from.host, sizeof m.from.host, "127.0.0.1");
    m.from.port = 10812;
    m.peer_id = 2;
    assert_round_trip(&m);
    m.peer_id = 0;
    m.type = MSG_CHALLENGE;
    memcpy(m.nonce, "0123456789abcdef0123456789abcdef", MSG_NONCE_LEN + 1);
    assert_round_trip(&m);
    m.type = MSG_PROVE;
    assert_round_trip(&m);
    assert_int_equal(msg_parse(bad, sizeof bad - 1, &back, &used, &why), FS_EPROTO);
    assert_string_equal(why, "nonce is not 32 lower-case hex digits");
    assert_int_equal(msg_parse(no_nonce, sizeof no_nonce - 1, &back, &used, &why), FS_EPROTO);
    assert_string_equal(why, "CHALLENGE needs nonce");
    assert_int_equal(msg_parse(no_peer, sizeof no_peer - 1, &back, &used, &why), FS_EPROTO);
    assert_string_equal(why, "HELLO needs peer");
}

static void test_round_trip_fetch_range_and_data(void **state)
{
    struct msg m;

    (void)state;
    memset(&m, 0, sizeof m);
    m.type = MSG_FETCH;
    strcpy(m.path, "big files/a b.bin");
    strcpy(m.md5, "6f5902ac237024bdd0c176cb93063dc4");
    m.offset = 4194304;
    assert_round_trip(&m);

    memset(&m, 0, sizeof m);
    m.type = MSG_RANGE;
    m.size = UINT64_MAX;
    strcpy(m.md5, "6f5902ac237024bdd0c176cb93063dc4");
    m.offset = 0;
    m.chunk = 4194304;
    assert_round_trip(&m);

    memset(&m, 0, sizeof m);
    m.type = MSG_DATA;
    m.idx = 1023;
    m.len = 4194304;
    m.crc = 0xdeadbeefu;
    assert_round_trip(&m);
    m.crc = 0;
    assert_round_trip(&m);
}

/* FETCH's optional chunk (docs/PROTOCOL.md): written only when set, read
 * when present, absent from an older requester's FETCH (0). */
static void test_fetch_chunk_is_optional(void **state)
{
    static const char old[] = "FLOOD/1 FETCH path=a md5=6f5902ac237024bdd0c176cb93063dc4 "
                              "offset=0\n";
    static const char with[] = "FLOOD/1 FETCH path=a md5=6f5902ac237024bdd0c176cb93063dc4 "
                               "offset=0 chunk=1048576\n";
    static const char first[] = "FLOOD/1 FETCH chunk=65536 path=a "
                                "md5=6f5902ac237024bdd0c176cb93063dc4 offset=4194304\n";
    struct msg m;
    size_t used;
    char out[MSG_MAX_HEADER];

    (void)state;
    assert_int_equal(msg_parse(old, sizeof old - 1, &m, &used, NULL), FS_OK);
    assert_int_equal(m.type, MSG_FETCH);
    assert_int_equal(m.chunk, 0);
    assert_int_equal(msg_format(&m, out, sizeof out), (int)(sizeof old - 1));
    assert_memory_equal(out, old, sizeof old - 1); /* no chunk= written */

    assert_int_equal(msg_parse(with, sizeof with - 1, &m, &used, NULL), FS_OK);
    assert_int_equal(m.chunk, 1048576);
    assert_int_equal(msg_format(&m, out, sizeof out), (int)(sizeof with - 1));
    assert_memory_equal(out, with, sizeof with - 1);
    assert_round_trip(&m);

    assert_int_equal(msg_parse(first, sizeof first - 1, &m, &used, NULL), FS_OK);
    assert_int_equal(m.chunk, 65536); /* any order, like every key */
    assert_int_equal(m.offset, 4194304);
}

/* RANGE's optional mode (docs/PROTOCOL.md): the file's permission bits on
 * the holder, octal; written only when set (0 is a mode: has_mode says),
 * absent from an older holder's RANGE. */
static void test_range_mode_is_optional_and_octal(void **state)
{
    static const char old[] = "FLOOD/1 RANGE size=5 md5=6f5902ac237024bdd0c176cb93063dc4 "
                              "offset=0 chunk=524288\n";
    static const char with[] = "FLOOD/1 RANGE size=5 md5=6f5902ac237024bdd0c176cb93063dc4 "
                               "offset=0 chunk=524288 mode=755\n";
    static const char zero[] = "FLOOD/1 RANGE size=5 md5=6f5902ac237024bdd0c176cb93063dc4 "
                               "offset=0 chunk=524288 mode=0\n";
    static const char four[] = "FLOOD/1 RANGE mode=4755 size=5 "
                               "md5=6f5902ac237024bdd0c176cb93063dc4 offset=0 chunk=524288\n";
    struct msg m;
    size_t used;
    char out[MSG_MAX_HEADER];

    (void)state;
    assert_int_equal(msg_parse(old, sizeof old - 1, &m, &used, NULL), FS_OK);
    assert_int_equal(m.has_mode, 0);
    assert_int_equal(msg_format(&m, out, sizeof out), (int)(sizeof old - 1));
    assert_memory_equal(out, old, sizeof old - 1); /* no mode= written */

    assert_int_equal(msg_parse(with, sizeof with - 1, &m, &used, NULL), FS_OK);
    assert_int_equal(m.has_mode, 1);
    assert_int_equal(m.mode, 0755);
    assert_int_equal(msg_format(&m, out, sizeof out), (int)(sizeof with - 1));
    assert_memory_equal(out, with, sizeof with - 1);
    assert_round_trip(&m);

    assert_int_equal(msg_parse(zero, sizeof zero - 1, &m, &used, NULL), FS_OK);
    assert_int_equal(m.has_mode, 1);
    assert_int_equal(m.mode, 0);
    assert_int_equal(msg_format(&m, out, sizeof out), (int)(sizeof zero - 1));
    assert_memory_equal(out, zero, sizeof zero - 1); /* mode 0 is still written */

    assert_int_equal(msg_parse(four, sizeof four - 1, &m, &used, NULL), FS_OK);
    assert_int_equal(m.mode, 04755); /* parsed whole; the receiver keeps & 0777 */
    assert_round_trip(&m);

    m.mode = 010000; /* more than 4 octal digits: never written */
    assert_int_equal(msg_format(&m, out, sizeof out), -1);
}

static void test_parse_refuses_bad_range_mode(void **state)
{
#define RANGE_HEAD "FLOOD/1 RANGE size=5 md5=6f5902ac237024bdd0c176cb93063dc4 offset=0 chunk=65536"
    static const struct bad_case cases[] = {
        {RANGE_HEAD " mode=\n", "mode is not 1 to 4 octal digits"},
        {RANGE_HEAD " mode=8\n", "mode is not 1 to 4 octal digits"},
        {RANGE_HEAD " mode=0644x\n", "mode is not 1 to 4 octal digits"},
        {RANGE_HEAD " mode=10000\n", "mode is not 1 to 4 octal digits"},
        {RANGE_HEAD " mode=-644\n", "mode is not 1 to 4 octal digits"},
        {RANGE_HEAD " mode=0x1a4\n", "mode is not 1 to 4 octal digits"},
        {RANGE_HEAD " mode=%36%34%34\n", "mode is not 1 to 4 octal digits"},
        {RANGE_HEAD " mode=644 mode=644\n", "duplicate key mode"},
    };
#undef RANGE_HEAD

    (void)state;
    expect_all_malformed(cases, sizeof cases / sizeof cases[0]);
}

/* Piece hashes (docs/PROTOCOL.md): FOUND's optional root, HASHES and
 * HASHLIST, and FETCH's optional end. An older FOUND has no root. */
#define ROOT "b142540ea694b6ad8393c36d8a94fb0aa2865717af0ac6319544bc0a8a36e3e9"

static void test_piece_messages_round_trip_and_root_is_optional(void **state)
{
    static const char hashes[] = "FLOOD/1 HASHES path=a md5=6f5902ac237024bdd0c176cb93063dc4 "
                                 "root=" ROOT "\n";
    static const char list[] = "FLOOD/1 HASHLIST size=2097152 md5=6f5902ac237024bdd0c176cb93063dc4 "
                               "root=" ROOT " piece=1048576 len=64\n";
    static const char fetch[] = "FLOOD/1 FETCH path=a md5=6f5902ac237024bdd0c176cb93063dc4 "
                                "offset=1048576 chunk=1048576 end=2097152\n";
    static const char nocrc[] = "FLOOD/1 FETCH path=a md5=6f5902ac237024bdd0c176cb93063dc4 "
                                "offset=0 chunk=1048576 nocrc=1\n";
    struct msg m;
    size_t used;
    char out[MSG_MAX_HEADER];

    (void)state;
    make_found(&m, "docs/3.txt", "3.txt");
    assert_int_equal(msg_format(&m, out, sizeof out) > 0, 1);
    assert_null(strstr(out, "root=")); /* none set: none written, as older holders */
    strcpy(m.root, ROOT);
    assert_round_trip(&m);
    assert_int_equal(msg_format(&m, out, sizeof out) > 0, 1);
    assert_non_null(strstr(out, " root=" ROOT "\n"));

    assert_int_equal(msg_parse(hashes, sizeof hashes - 1, &m, &used, NULL), FS_OK);
    assert_int_equal(m.type, MSG_HASHES);
    assert_string_equal(m.root, ROOT);
    assert_int_equal(msg_format(&m, out, sizeof out), (int)(sizeof hashes - 1));
    assert_memory_equal(out, hashes, sizeof hashes - 1);
    assert_round_trip(&m);

    assert_int_equal(msg_parse(list, sizeof list - 1, &m, &used, NULL), FS_OK);
    assert_int_equal(m.type, MSG_HASHLIST);
    assert_int_equal(m.piece, 1048576);
    assert_int_equal(m.len, 64);
    assert_int_equal(msg_format(&m, out, sizeof out), (int)(sizeof list - 1));
    assert_memory_equal(out, list, sizeof list - 1);
    assert_round_trip(&m);

    assert_int_equal(msg_parse(fetch, sizeof fetch - 1, &m, &used, NULL), FS_OK);
    assert_int_equal(m.end, 2097152);
    assert_int_equal(m.nocrc, 0); /* absent, as from an older requester */
    assert_int_equal(msg_format(&m, out, sizeof out), (int)(sizeof fetch - 1));
    assert_memory_equal(out, fetch, sizeof fetch - 1);
    assert_round_trip(&m);

    assert_int_equal(msg_parse(nocrc, sizeof nocrc - 1, &m, &used, NULL), FS_OK);
    assert_int_equal(m.nocrc, 1);
    assert_int_equal(msg_format(&m, out, sizeof out), (int)(sizeof nocrc - 1));
    assert_memory_equal(out, nocrc, sizeof nocrc - 1);
    assert_round_trip(&m);
}

static void test_parse_refuses_bad_piece_fields(void **state)
{
    static const struct bad_case cases[] = {
        {"FLOOD/1 HASHES path=a md5=6f5902ac237024bdd0c176cb93063dc4\n", "HASHES needs root"},
        {"FLOOD/1 HASHES path=a md5=6f5902ac237024bdd0c176cb93063dc4 root=abc\n",
         "root is not 64 lower-case hex digits"},
        {"FLOOD/1 HASHES path=a md5=6f5902ac237024bdd0c176cb93063dc4 root="
         "B142540EA694B6AD8393C36D8A94FB0AA2865717AF0AC6319544BC0A8A36E3E9\n",
         "root is not 64 lower-case hex digits"},
        {"FLOOD/1 HASHLIST size=1 md5=6f5902ac237024bdd0c176cb93063dc4 root=" ROOT
         " piece=0 len=32\n", "piece is not a number from 1 up that fits in 64 bits"},
        {"FLOOD/1 HASHLIST size=1 md5=6f5902ac237024bdd0c176cb93063dc4 root=" ROOT
         " piece=65536\n", "HASHLIST needs len"},
        {"FLOOD/1 FETCH path=x md5=6f5902ac237024bdd0c176cb93063dc4 offset=0 end=0\n",
         "end is not a number from 1 up that fits in 64 bits"},
        {"FLOOD/1 FETCH path=x md5=6f5902ac237024bdd0c176cb93063dc4 offset=0 nocrc=0\n",
         "nocrc is not 1 (the only value it has)"},
        {"FLOOD/1 FETCH path=x md5=6f5902ac237024bdd0c176cb93063dc4 offset=0 nocrc=2\n",
         "nocrc is not 1 (the only value it has)"},
        {"FLOOD/1 FOUND qid=0123456789abcdef hops=1 from=127.0.0.1:1 holder=127.0.0.1:1 "
         "peer=1 kind=file size=1 md5=6f5902ac237024bdd0c176cb93063dc4 path=a name=a root=1\n",
         "root is not 64 lower-case hex digits"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct msg m;
        size_t used = 0;
        const char *why = NULL;
        assert_int_equal(msg_parse(cases[i].line, strlen(cases[i].line), &m, &used, &why),
                         FS_EPROTO);
        assert_non_null(why);
        print_message("case %zu: %s\n", i, why);
        assert_string_equal(why, cases[i].why);
    }
}

/* Folder roots (docs/PROTOCOL.md, Folder roots): ROOTS asks by the folder's
 * path, md5 and root; ROOTLIST announces the body's length, which the
 * requester checks against the manifest before it reads a byte. */
static void test_root_messages_round_trip_and_need_every_key(void **state)
{
    static const char roots[] = "FLOOD/1 ROOTS path=photos/2023 "
                                "md5=6f5902ac237024bdd0c176cb93063dc4 root=" ROOT "\n";
    static const char list[] = "FLOOD/1 ROOTLIST md5=6f5902ac237024bdd0c176cb93063dc4 root=" ROOT
                               " len=96\n";
    static const struct bad_case cases[] = {
        {"FLOOD/1 ROOTS path=a md5=6f5902ac237024bdd0c176cb93063dc4\n", "ROOTS needs root"},
        {"FLOOD/1 ROOTS md5=6f5902ac237024bdd0c176cb93063dc4 root=" ROOT "\n",
         "ROOTS needs path"},
        {"FLOOD/1 ROOTS path=../a md5=6f5902ac237024bdd0c176cb93063dc4 root=" ROOT "\n", NULL},
        {"FLOOD/1 ROOTLIST md5=6f5902ac237024bdd0c176cb93063dc4 root=" ROOT "\n",
         "ROOTLIST needs len"},
        {"FLOOD/1 ROOTLIST md5=6f5902ac237024bdd0c176cb93063dc4 root=abc len=32\n",
         "root is not 64 lower-case hex digits"},
    };
    struct msg m;
    size_t used;
    char out[MSG_MAX_HEADER];

    (void)state;
    assert_int_equal(msg_parse(roots, sizeof roots - 1, &m, &used, NULL), FS_OK);
    assert_int_equal(m.type, MSG_ROOTS);
    assert_string_equal(m.path, "photos/2023");
    assert_string_equal(m.root, ROOT);
    assert_int_equal(msg_format(&m, out, sizeof out), (int)(sizeof roots - 1));
    assert_memory_equal(out, roots, sizeof roots - 1);
    assert_round_trip(&m);

    assert_int_equal(msg_parse(list, sizeof list - 1, &m, &used, NULL), FS_OK);
    assert_int_equal(m.type, MSG_ROOTLIST);
    assert_int_equal(m.len, 96);
    assert_int_equal(msg_format(&m, out, sizeof out), (int)(sizeof list - 1));
    assert_memory_equal(out, list, sizeof list - 1);
    assert_round_trip(&m);

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *why = NULL;
        assert_int_equal(msg_parse(cases[i].line, strlen(cases[i].line), &m, &used, &why),
                         FS_EPROTO);
        assert_non_null(why);
        if (cases[i].why)
            assert_string_equal(why, cases[i].why);
    }
}

static void test_parse_refuses_bad_transfer_fields(void **state)
{
    static const struct bad_case cases[] = {
        {"FLOOD/1 DATA idx=1 len=5 crc=DEADBEEF\n", "crc is not 8 lower-case hex digits"},
        {"FLOOD/1 DATA idx=1 len=5 crc=beef\n", "crc is not 8 lower-case hex digits"},
        {"FLOOD/1 DATA idx=-1 len=5 crc=deadbeef\n",
         NOT_DIGITS("idx")},
        {"FLOOD/1 DATA idx=1 crc=deadbeef\n", "DATA needs len"},
        {"FLOOD/1 RANGE size=1 md5=6f5902ac237024bdd0c176cb93063dc4 offset=0 chunk=0\n",
         "chunk is not a number from 1 up that fits in 64 bits"},
        {"FLOOD/1 FETCH path=../x md5=6f5902ac237024bdd0c176cb93063dc4 offset=0\n", NULL},
        {"FLOOD/1 FETCH path=x md5=6f5902ac237024bdd0c176cb93063dc4\n", "FETCH needs offset"},
        {"FLOOD/1 FETCH path=x md5=6f5902ac237024bdd0c176cb93063dc4 offset=0 chunk=0\n",
         "chunk is not a number from 1 up that fits in 64 bits"},
        {"FLOOD/1 FETCH path=x md5=6f5902ac237024bdd0c176cb93063dc4 offset=0 chunk=1x\n",
         NOT_DIGITS("chunk")},
        {"FLOOD/1 FETCH path=x md5=6f5902ac237024bdd0c176cb93063dc4 offset=0 chunk=65536 "
         "chunk=65536\n", "duplicate key chunk"},
        {"FLOOD/1 FETCH path=x md5=6f5902ac237024bdd0c176cb93063dc4 chunk=65536\n",
         "FETCH needs offset"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct msg m;
        size_t used = 0;
        const char *why = NULL;
        assert_int_equal(msg_parse(cases[i].line, strlen(cases[i].line), &m, &used, &why),
                         FS_EPROTO);
        assert_non_null(why);
        if (cases[i].why)
            assert_string_equal(why, cases[i].why);
    }
}

/* BUSY: a holder with every upload slot taken tells the requester when to
 * ask again (docs/PROTOCOL.md). */
static void test_round_trip_busy(void **state)
{
    struct msg m;
    char line[MSG_MAX_HEADER];

    (void)state;
    memset(&m, 0, sizeof m);
    m.type = MSG_BUSY;
    m.retry = 2000;
    assert_int_equal(msg_format(&m, line, sizeof line), (int)strlen("FLOOD/1 BUSY retry=2000\n"));
    assert_string_equal(line, "FLOOD/1 BUSY retry=2000\n");
    assert_round_trip(&m);
    m.retry = 1;
    assert_round_trip(&m);
    m.retry = MSG_MAX_RETRY_MS;
    assert_round_trip(&m);
    assert_string_equal(msg_type_name(MSG_BUSY), "BUSY");
}

static void test_parse_refuses_bad_busy(void **state)
{
    static const struct bad_case cases[] = {
        {"FLOOD/1 BUSY\n", "BUSY needs retry"},
        {"FLOOD/1 BUSY retry=0\n", "retry is not a number of ms from 1 to 600000"},
        {"FLOOD/1 BUSY retry=600001\n", "retry is not a number of ms from 1 to 600000"},
        {"FLOOD/1 BUSY retry=18446744073709551616\n",
         "retry is not a number of ms from 1 to 600000"},
        {"FLOOD/1 BUSY retry=-5\n", NOT_DIGITS("retry")},
        {"FLOOD/1 BUSY retry=0100\n", "retry has a leading zero"},
        {"FLOOD/1 BUSY retry=5 retry=6\n", "duplicate key retry"},
    };

    (void)state;
    EXPECT_ALL_MALFORMED(cases);
}

static void test_format_refuses_busy_without_retry(void **state)
{
    struct msg m;
    char line[MSG_MAX_HEADER];

    (void)state;
    memset(&m, 0, sizeof m);
    m.type = MSG_BUSY;
    assert_int_equal(msg_format(&m, line, sizeof line), -1);
    m.retry = MSG_MAX_RETRY_MS + 1;
    assert_int_equal(msg_format(&m, line, sizeof line), -1);
}

static void test_round_trip_error_with_empty_msg(void **state)
{
    struct msg m;

    (void)state;
    make_error(&m, "busy", "");
    assert_round_trip(&m);
}

static void test_round_trip_names_with_special_bytes(void **state)
{
    static const char *const names[] = {
        "a b.txt", "100%.txt", "a=b.txt", "key=v=w", "café.txt", "日本.txt", "%41",
        " lead", "trail ", "~!@#$^&*()_+{}|:\"<>?`-[];',", "\xf0\x9f\x98\x80.png",
    };

    (void)state;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct msg m;
        make_get(&m, names[i]);
        assert_round_trip(&m);
    }
}

static void test_round_trip_path_with_space_and_percent(void **state)
{
    struct msg m;

    (void)state;
    make_found(&m, "a b/c%d/e.txt", "e.txt");
    assert_round_trip(&m);
}

static void test_round_trip_longest_name(void **state)
{
    struct msg m;
    char name[MSG_MAX_NAME + 1];

    (void)state;
    memset(name, 'n', MSG_MAX_NAME);
    name[MSG_MAX_NAME] = '\0';
    make_get(&m, name);
    assert_round_trip(&m);
}

/* ------------------------------------------------------------- formatting */

static void test_format_writes_protocol_example(void **state)
{
    struct msg m;
    char line[MSG_MAX_HEADER];

    (void)state;
    make_get(&m, "3.txt");
    int n = msg_format(&m, line, sizeof line);
    assert_int_equal(n, (int)strlen(GET_LINE(QID, "3", "0", A1, A1, "3.txt")));
    assert_memory_equal(line, GET_LINE(QID, "3", "0", A1, A1, "3.txt"), (size_t)n);
}

static void test_format_percent_encodes_strings(void **state)
{
    struct msg m;
    char line[MSG_MAX_HEADER];

    (void)state;
    make_found(&m, "a b/c%d/e.txt", "café 1.txt");
    assert_true(msg_format(&m, line, sizeof line) > 0);
    assert_non_null(strstr(line, " path=a%20b/c%25d/e.txt "));
    assert_non_null(strstr(line, " name=caf%C3%A9%201.txt\n"));
}

static void test_format_refuses_invalid_fields(void **state)
{
    struct msg m;
    char line[MSG_MAX_HEADER];

    (void)state;
#define REFUSED(setup)                                                                        \
    do {                                                                                      \
        make_get(&m, "ok.txt");                                                               \
        setup;                                                                                \
        if (msg_format(&m, line, sizeof line) != -1)                                          \
            fail_msg("msg_format accepted: %s", #setup);                                      \
    } while (0)
    REFUSED(m.ttl = 256);
    REFUSED(m.hops = 1000);
    REFUSED(strcpy(m.qid, "7F2A90C3D1E4B5A6"));
    REFUSED(strcpy(m.qid, "7f2a"));
    REFUSED(strcpy(m.name, ".."));
    REFUSED(strcpy(m.name, "."));
    REFUSED(strcpy(m.name, ""));
    REFUSED(strcpy(m.name, "a/b"));
    REFUSED(strcpy(m.name, "a\x01"));
    REFUSED(strcpy(m.name, "\xff"));
    REFUSED(m.from.port = 0);
    REFUSED(strcpy(m.origin.host, "bad host"));
    REFUSED(memset(m.origin.host, 'h', sizeof m.origin.host));
    REFUSED(memset(m.name, 'n', sizeof m.name));
    REFUSED(m.type = (enum msg_type)0);
    REFUSED(m.type = (enum msg_type)99);
    REFUSED(make_found(&m, "/abs", "x"));
    REFUSED(make_found(&m, "a//b", "x"));
    REFUSED(make_found(&m, "a/../b", "x"));
    REFUSED((make_found(&m, "a", "x"), m.peer_id = 0));
    REFUSED((make_found(&m, "a", "x"), m.peer_id = 65536));
    REFUSED((make_found(&m, "a", "x"), m.kind = (enum msg_kind)0));
    REFUSED((make_request(&m), strcpy(m.md5, "6F5902AC237024BDD0C176CB93063DC4")));
    REFUSED((make_item(&m), strcpy(m.zmd5, "0c2d")));
    REFUSED(make_error(&m, "NotFound", "x"));
    REFUSED(make_error(&m, "", "x"));
    REFUSED((make_error(&m, "x", "x"), memset(m.code, 'a', sizeof m.code)));
    REFUSED((make_error(&m, "x", "x"), memset(m.text, 't', sizeof m.text)));
    REFUSED(make_error(&m, "internal", "line\nbreak"));
#undef REFUSED
}

static void test_format_refuses_line_over_2048_bytes(void **state)
{
    struct msg m;
    char line[MSG_MAX_HEADER * 2];
    char path[MSG_MAX_PATH + 1];

    (void)state;
    /* 1023 bytes that each encode to 3: far beyond one header. */
    memset(path, ' ', MSG_MAX_PATH);
    path[MSG_MAX_PATH] = '\0';
    path[0] = 'a';
    path[MSG_MAX_PATH - 1] = 'z';
    make_found(&m, path, "x");
    assert_int_equal(msg_format(&m, line, sizeof line), -1);
}

static void test_format_refuses_too_small_buffer(void **state)
{
    struct msg m;
    char line[MSG_MAX_HEADER];

    (void)state;
    make_request(&m);
    int n = msg_format(&m, line, sizeof line);
    assert_true(n > 0);
    assert_int_equal(msg_format(&m, line, (size_t)n - 1), -1);
    assert_int_equal(msg_format(&m, line, (size_t)n), n);
    assert_int_equal(msg_format(&m, line, 0), -1);
}

/* --------------------------------------------------------- framing rules */

static void test_parse_valid_protocol_examples(void **state)
{
    (void)state;
    for (size_t i = 0; i < NVALID; i++) {
        struct msg m;
        size_t used = 0;
        const char *why = NULL;
        if (parse_str(valid_lines[i], &m, &used, &why) != FS_OK)
            fail_msg("refused \"%s\": %s", valid_lines[i], why);
        assert_int_equal(used, strlen(valid_lines[i]));
    }
}

static void test_parse_fills_get_fields(void **state)
{
    struct msg m;
    size_t used;

    (void)state;
    assert_int_equal(parse_str(valid_lines[0], &m, &used, NULL), FS_OK);
    assert_int_equal(m.type, MSG_GET);
    assert_string_equal(m.qid, QID);
    assert_int_equal(m.ttl, 3);
    assert_int_equal(m.hops, 1);
    assert_string_equal(m.origin.host, "127.0.0.1");
    assert_int_equal(m.origin.port, 10811);
    assert_int_equal(m.from.port, 10812);
    assert_string_equal(m.name, "3.txt");
}

static void test_parse_decodes_percent_escapes(void **state)
{
    struct msg m;
    size_t used;

    (void)state;
    assert_int_equal(parse_str(ERROR_LINE("notfound", "no%20such%20item"), &m, &used, NULL),
                     FS_OK);
    assert_string_equal(m.text, "no such item");
    assert_int_equal(parse_str(GET_LINE(QID, "3", "1", A1, A2, "caf%c3%A9"), &m, &used, NULL),
                     FS_OK);
    assert_string_equal(m.name, "café");
}

static void test_parse_needs_more_at_every_cut_point(void **state)
{
    (void)state;
    for (size_t i = 0; i < NVALID; i++) {
        size_t len = strlen(valid_lines[i]);
        for (size_t cut = 0; cut < len; cut++) {
            /* Exactly cut bytes of heap, so ASan catches any read past len. */
            char *buf = malloc(cut ? cut : 1);
            struct msg m;
            size_t used = 99;
            assert_non_null(buf);
            memcpy(buf, valid_lines[i], cut);
            if (msg_parse(buf, cut, &m, &used, NULL) != FS_NEED_MORE)
                fail_msg("line %zu cut at %zu is not NEED_MORE", i, cut);
            assert_int_equal(used, 0);
            free(buf);
        }
    }
}

static void test_parse_never_reads_past_len(void **state)
{
    static const char *const bad[] = {
        "FLOOD/1 GET qid=" QID " ttl=3 hops=1 origin=" A1 " from=" A2 " name=%4\n",
        "FLOOD/1 GET qid=" QID " ttl=3 hops=1 origin=" A1 " from=" A2 " name=%\n",
        "FLOOD/1 ERROR code=x msg=%",
        "FLOOD/1 ITEM kind=folde",
        "FLOOD/",
        "F",
    };

    (void)state;
    for (size_t i = 0; i < NVALID + sizeof bad / sizeof bad[0]; i++) {
        const char *src = i < NVALID ? valid_lines[i] : bad[i - NVALID];
        size_t len = strlen(src);
        char *buf = malloc(len); /* no room for a NUL: none is read */
        struct msg m;
        size_t used;
        assert_non_null(buf);
        memcpy(buf, src, len);
        fs_status st = msg_parse(buf, len, &m, &used, NULL);
        assert_true(i < NVALID ? st == FS_OK : st != FS_OK);
        free(buf);
    }
}

static void test_parse_back_to_back_messages_one_by_one(void **state)
{
    char two[2 * MSG_MAX_HEADER];
    struct msg m;
    size_t used = 0;
    size_t len1 = strlen(valid_lines[0]), len2 = strlen(valid_lines[2]);

    (void)state;
    memcpy(two, valid_lines[0], len1);
    memcpy(two + len1, valid_lines[2], len2);
    assert_int_equal(msg_parse(two, len1 + len2, &m, &used, NULL), FS_OK);
    assert_int_equal(used, len1);
    assert_int_equal(m.type, MSG_GET);
    assert_int_equal(msg_parse(two + used, len1 + len2 - used, &m, &used, NULL), FS_OK);
    assert_int_equal(used, len2);
    assert_int_equal(m.type, MSG_REQUEST);
    assert_string_equal(m.path, "docs/3.txt");
}

static void test_parse_leaves_item_body_unconsumed(void **state)
{
    char buf[MSG_MAX_HEADER];
    const char *head = ITEM_LINE("file", "12", "5", ZMD5);
    struct msg m;
    size_t used = 0;

    (void)state;
    snprintf(buf, sizeof buf, "%s%s", head, "PK\n\x03\x04");
    assert_int_equal(msg_parse(buf, strlen(head) + 5, &m, &used, NULL), FS_OK);
    assert_int_equal(used, strlen(head));
    assert_int_equal(m.len, 5);
}

static void test_parse_accepts_crlf(void **state)
{
    const char *line = REQUEST_LINE("docs/3.txt", MD5);
    char crlf[MSG_MAX_HEADER];
    struct msg m;
    size_t used = 0;

    (void)state;
    snprintf(crlf, sizeof crlf, "%.*s\r\n", (int)strlen(line) - 1, line);
    assert_int_equal(parse_str(crlf, &m, &used, NULL), FS_OK);
    assert_int_equal(used, strlen(crlf));
    assert_string_equal(m.md5, MD5);
}

static void test_parse_ignores_unknown_keys(void **state)
{
    struct msg m;
    size_t used;

    (void)state;
    assert_int_equal(parse_str("FLOOD/1 REQUEST future=%ZZ!x path=a md5=" MD5 " ttl=999 x=\n",
                               &m, &used, NULL),
                     FS_OK);
    assert_string_equal(m.path, "a");
}

static void test_parse_accepts_keys_in_any_order(void **state)
{
    struct msg m;
    size_t used;

    (void)state;
    assert_int_equal(parse_str("FLOOD/1 REQUEST md5=" MD5 " path=b\n", &m, &used, NULL),
                     FS_OK);
    assert_string_equal(m.path, "b");
}

static void test_parse_accepts_largest_numbers(void **state)
{
    struct msg m;
    size_t used;

    (void)state;
    assert_int_equal(parse_str(ITEM_LINE("folder", "18446744073709551615",
                                         "18446744073709551615", ZMD5),
                               &m, &used, NULL),
                     FS_OK);
    assert_true(m.size == UINT64_MAX && m.len == UINT64_MAX);
    assert_int_equal(m.kind, MSG_KIND_FOLDER);
    assert_int_equal(parse_str(GET_LINE(QID, "255", "255", A1, A2, "x"), &m, &used, NULL),
                     FS_OK);
    assert_int_equal(m.ttl, 255);
}

/* A line of total bytes ('\n' included): a GET padded with an unknown key. */
static size_t padded_get(char *buf, size_t total)
{
    const char *head = GET_LINE(QID, "3", "1", A1, A2, "x");
    size_t hlen = strlen(head) - 1;

    memcpy(buf, head, hlen);
    memcpy(buf + hlen, " pad=", 5);
    memset(buf + hlen + 5, 'p', total - hlen - 6);
    buf[total - 1] = '\n';
    return total;
}

static void test_parse_accepts_header_of_exactly_2048_bytes(void **state)
{
    char buf[MSG_MAX_HEADER];
    struct msg m;
    size_t used = 0;

    (void)state;
    assert_int_equal(msg_parse(buf, padded_get(buf, MSG_MAX_HEADER), &m, &used, NULL), FS_OK);
    assert_int_equal(used, MSG_MAX_HEADER);
}

static void test_parse_refuses_header_of_2049_bytes(void **state)
{
    char buf[MSG_MAX_HEADER + 1];
    struct msg m;
    size_t used;
    const char *why = NULL;

    (void)state;
    assert_int_equal(msg_parse(buf, padded_get(buf, sizeof buf), &m, &used, &why), FS_EPROTO);
    assert_string_equal(why, "header longer than 2048 bytes");
}

/* total bytes of a GET header that never ends: "FLOOD/1 GET qid=aaa...". */
static char *endless_get(size_t total)
{
    static const char head[] = "FLOOD/1 GET qid=";
    char *buf = malloc(total);

    if (buf) {
        memset(buf, 'a', total);
        memcpy(buf, head, sizeof head - 1);
    }
    return buf;
}

static void test_parse_refuses_2048_bytes_without_newline(void **state)
{
    char *buf = endless_get(MSG_MAX_HEADER);
    struct msg m;
    size_t used;
    const char *why = NULL;

    (void)state;
    assert_non_null(buf);
    assert_int_equal(msg_parse(buf, MSG_MAX_HEADER, &m, &used, &why), FS_EPROTO);
    assert_string_equal(why, "header longer than 2048 bytes");
    free(buf);
}

static void test_parse_needs_more_for_2047_bytes_without_newline(void **state)
{
    char *buf = endless_get(MSG_MAX_HEADER - 1);
    struct msg m;
    size_t used;

    (void)state;
    assert_non_null(buf);
    assert_int_equal(msg_parse(buf, MSG_MAX_HEADER - 1, &m, &used, NULL), FS_NEED_MORE);
    free(buf);
}

static void test_parse_refuses_embedded_nul(void **state)
{
    static const char line[] = "FLOOD/1 REQUEST path=a\0b md5=" MD5 "\n";
    struct msg m;
    size_t used;
    const char *why = NULL;

    (void)state;
    assert_int_equal(msg_parse(line, sizeof line - 1, &m, &used, &why), FS_EPROTO);
    assert_string_equal(why, "header contains a NUL byte");
}

static void test_parse_refuses_raw_non_ascii_bytes(void **state)
{
    static const struct bad_case cases[] = {
        {GET_LINE(QID, "3", "1", A1, A2, "café"),
         "header contains a control or non-ASCII byte; values must be percent-encoded"},
        {GET_LINE(QID, "3", "1", A1, A2, "a\tb"),
         "header contains a control or non-ASCII byte; values must be percent-encoded"},
        {"FLOOD/1 REQUEST path=a md5=" MD5 "\r\r\n",
         "header contains a control or non-ASCII byte; values must be percent-encoded"},
    };

    (void)state;
    EXPECT_ALL_MALFORMED(cases);
}

/* ------------------------------------------------ verdicts before the '\n' */

#define RAW "header contains a control or non-ASCII byte; values must be percent-encoded"

/* A start that no later byte can turn into a FLOOD/1 header is refused as it
 * arrives, so a client speaking another protocol is told at once instead of
 * waiting for the header deadline. */
static void test_parse_refuses_a_start_that_cannot_become_a_header(void **state)
{
    static const struct bad_case cases[] = {
        {"hello", "not a FLOOD/1 message"},
        {"\x16\x03\x01\x02", "not a FLOOD/1 message"}, /* a TLS handshake */
        {"SSH-2.0-", "not a FLOOD/1 message"},
        {"FLOOD 1", "not a FLOOD/1 message"},
        {"FLOOX", "not a FLOOD/1 message"},
        {"FLOOD/2", "unsupported protocol version"},
        {"FLOOD/1.1 GET", "unsupported protocol version"},
        {"FLOOD/1X", "unsupported protocol version"},
        {"FLOOD/1\rX", "unsupported protocol version"},
        {"FLOOD/1 GET qid=a\x01", RAW},
        {"FLOOD/1 GET name=caf\xc3", RAW},
        {"FLOOD/1 GET qid=\r ", RAW},
    };
    static const char nul[] = "FLOOD/1 GET qid=\0";
    struct msg m;
    size_t used = 9;
    const char *why = NULL;

    (void)state;
    EXPECT_ALL_MALFORMED(cases);
    assert_int_equal(msg_parse(nul, sizeof nul - 1, &m, &used, &why), FS_EPROTO);
    assert_string_equal(why, "header contains a NUL byte");
    assert_int_equal(used, 0);
}

static void test_parse_needs_more_while_a_header_is_still_possible(void **state)
{
    static const char *const starts[] = {
        "", "F", "FLOOD/", "FLOOD/1", "FLOOD/1\r", "FLOOD/1 ", "FLOOD/1 GET",
        "FLOOD/1 GET name=a\r", "FLOOD/1 GET name=%FF", "FLOOD/1 XYZ =", "FLOOD/1 GET  ",
    };

    (void)state;
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++) {
        struct msg m;
        size_t used = 9;
        if (msg_parse(starts[i], strlen(starts[i]), &m, &used, NULL) != FS_NEED_MORE)
            fail_msg("\"%s\" is not NEED_MORE", starts[i]);
        assert_int_equal(used, 0);
    }
}

/* A line whose first word is not FLOOD/1 gets that verdict before any other
 * (even with raw bytes in it), the same verdict as while it was arriving. */
static void test_parse_judges_the_protocol_word_first(void **state)
{
    static const char garbage[] = "\x00\x01\x02\n";
    struct msg m;
    size_t used;
    const char *why = NULL;

    (void)state;
    assert_int_equal(msg_parse(garbage, sizeof garbage - 1, &m, &used, &why), FS_EPROTO);
    assert_string_equal(why, "not a FLOOD/1 message");
    assert_string_equal(msg_error_code(why), "version");
}

struct bytes {
    const char *p;
    size_t n;
};

#define BYTES(lit) {lit, sizeof lit - 1}

/* Every prefix of a refused line is either still NEED_MORE or refused with
 * the whole line's sentence: the reply never depends on how TCP cut the
 * stream into reads. */
static void expect_same_verdict_at_every_cut(const char *line, size_t len)
{
    struct msg m;
    size_t used;
    const char *full = NULL;

    if (msg_parse(line, len, &m, &used, &full) != FS_EPROTO)
        fail_msg("\"%.60s\" is not refused", line);
    for (size_t cut = 0; cut < len; cut++) {
        char *buf = malloc(cut ? cut : 1); /* exactly cut bytes: ASan sees any overread */
        const char *why = NULL;
        assert_non_null(buf);
        memcpy(buf, line, cut);
        fs_status st = msg_parse(buf, cut, &m, &used, &why);
        free(buf);
        if (st == FS_NEED_MORE)
            continue;
        if (st != FS_EPROTO || strcmp(why, full) != 0)
            fail_msg("\"%.60s\" cut at %zu: %s \"%s\", the whole line \"%s\"", line, cut,
                     fs_status_name(st), why ? why : "(null)", full);
    }
}

static void test_parse_verdict_does_not_depend_on_the_cut(void **state)
{
    static const struct bytes lines[] = {
        BYTES("hello\n"),
        BYTES("\x16\x03\x01 x\n"),
        BYTES("\x00\x01\x02\n"),
        BYTES("FLOOD/2 GET\n"),
        BYTES("FLOOD/\r\n"),
        BYTES("FLOOD/1\rX\n"),
        BYTES("FLOOD/1\r\n"),
        BYTES("FLOOD/1\n"),
        BYTES("FLOOD/1 GET a\x01" "b\n"),
        BYTES("FLOOD/1 GET a\rb\r\n"),
        BYTES("FLOOD/1 GET qid=a\r\r\n"),
        BYTES("FLOOD/1 GET name=a\0b\n"),
        BYTES("FLOOD/1 PUT x=1\n"),
        BYTES("FLOOD/1  GET\n"),
        BYTES(GET_LINE(QID, "-1", "1", A1, A2, "x")),
        BYTES(GET_LINE(QID, "3", "1", A1, A2, "%FF")),
        BYTES(REQUEST_LINE("../x", MD5)),
    };
    char *endless = endless_get(MSG_MAX_HEADER + 100);

    (void)state;
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        expect_same_verdict_at_every_cut(lines[i].p, lines[i].n);
    assert_non_null(endless);
    endless[MSG_MAX_HEADER + 99] = '\n';
    expect_same_verdict_at_every_cut(endless, MSG_MAX_HEADER + 100);
    free(endless);
}

/* Each rule a number can break has its own sentence, naming the key. */
static void test_parse_number_sentences_name_the_rule(void **state)
{
    static const struct bad_case cases[] = {
        {GET_LINE(QID, "3", "-0", A1, A2, "x"), NOT_DIGITS("hops")},
        {GET_LINE(QID, "3", "007", A1, A2, "x"), "hops has a leading zero"},
        {GET_LINE(QID, "3", "18446744073709551616", A1, A2, "x"),
         "hops is not a number from 0 to 255"},
        {GET_LINE(QID, "0256", "1", A1, A2, "x"), "ttl has a leading zero"},
        {GET_LINE(QID, "99999999999999999999x", "1", A1, A2, "x"),
         NOT_DIGITS("ttl")},
        {FOUND_LINE(A1, "+3", "file", "1", MD5, "a"),
         NOT_DIGITS("peer")},
        {FOUND_LINE(A1, "03", "file", "1", MD5, "a"), "peer has a leading zero"},
        {FOUND_LINE(A1, "3", "file", "-12", MD5, "a"),
         NOT_DIGITS("size")},
        {FOUND_LINE(A1, "3", "file", "012", MD5, "a"), "size has a leading zero"},
        {"FLOOD/1 FETCH path=a md5=" MD5 " offset=4194304.0\n",
         NOT_DIGITS("offset")},
        {"FLOOD/1 FETCH path=a md5=" MD5 " offset=18446744073709551616\n",
         "offset is not a number that fits in 64 bits"},
        {"FLOOD/1 DATA idx=01 len=5 crc=deadbeef\n", "idx has a leading zero"},
        {"FLOOD/1 DATA idx=1 len=1e3 crc=deadbeef\n",
         NOT_DIGITS("len")},
        {"FLOOD/1 RANGE size=1 md5=" MD5 " offset=0 chunk=-4194304\n",
         NOT_DIGITS("chunk")},
        {"FLOOD/1 RANGE size=1 md5=" MD5 " offset=0 chunk=18446744073709551616\n",
         "chunk is not a number from 1 up that fits in 64 bits"},
    };

    (void)state;
    EXPECT_ALL_MALFORMED(cases);
}

/* ------------------------------------------------------- malformed tables */

static void test_parse_refuses_bad_structure(void **state)
{
    static const struct bad_case cases[] = {
        {"FLOOD/2 GET qid=" QID "\n", "unsupported protocol version"},
        {"FLOOD/1.1 REQUEST path=a md5=" MD5 "\n", "unsupported protocol version"},
        {"GET / HTTP/1.1\r\n", "not a FLOOD/1 message"},
        {"flood/1 REQUEST path=a md5=" MD5 "\n", "not a FLOOD/1 message"},
        {"\n", "not a FLOOD/1 message"},
        {" FLOOD/1 REQUEST path=a md5=" MD5 "\n", "not a FLOOD/1 message"},
        {"FLOOD/1\n", "message type is missing"},
        {"FLOOD/1 PUT path=a\n", "unknown message type"},
        {"FLOOD/1 get path=a md5=" MD5 "\n", "unknown message type"},
        {"FLOOD/1  REQUEST path=a md5=" MD5 "\n",
         "empty token: tokens are separated by exactly one space"},
        {"FLOOD/1 REQUEST path=a  md5=" MD5 "\n",
         "empty token: tokens are separated by exactly one space"},
        {"FLOOD/1 REQUEST path=a md5=" MD5 " \n",
         "empty token: tokens are separated by exactly one space"},
        {"FLOOD/1 REQUEST path=a md5\n", "token is not key=value"},
        {"FLOOD/1 REQUEST path=a =x md5=" MD5 "\n", "token has an empty key"},
        {"FLOOD/1 REQUEST PATH=a md5=" MD5 "\n", "key is not a lower-case word"},
        {"FLOOD/1 REQUEST path=a md5=" MD5 " path=b\n", "duplicate key path"},
        {GET_LINE(QID, "3 ttl=3", "1", A1, A2, "x"), "duplicate key ttl"},
        {"FLOOD/1 REQUEST path=a ttl=1 md5=" MD5 " ttl=2\n", "duplicate key ttl"},
    };

    (void)state;
    EXPECT_ALL_MALFORMED(cases);
}

static void test_parse_refuses_each_missing_get_key(void **state)
{
    static const char *const tokens[] = {
        "qid=" QID, "ttl=3", "hops=1", "origin=" A1, "from=" A2, "name=x",
    };
    static const char *const whys[] = {
        "GET needs qid", "GET needs ttl",  "GET needs hops",
        "GET needs origin", "GET needs from", "GET needs name",
    };

    (void)state;
    for (size_t skip = 0; skip < 6; skip++) {
        char line[MSG_MAX_HEADER] = "FLOOD/1 GET";
        for (size_t i = 0; i < 6; i++) {
            if (i == skip)
                continue;
            strcat(line, " ");
            strcat(line, tokens[i]);
        }
        strcat(line, "\n");
        struct bad_case c = {line, whys[skip]};
        expect_all_malformed(&c, 1);
    }
}

static void test_parse_refuses_missing_keys_of_other_verbs(void **state)
{
    static const struct bad_case cases[] = {
        {"FLOOD/1 FOUND qid=" QID " hops=2 from=" A2 " holder=" A1 " peer=3 kind=file size=1 md5="
         MD5 " path=a\n",
         "FOUND needs name"},
        {"FLOOD/1 FOUND qid=" QID " hops=2 holder=" A1 " peer=3 kind=file size=1 md5=" MD5
         " path=a name=a\n",
         "FOUND needs from"},
        {"FLOOD/1 REQUEST md5=" MD5 "\n", "REQUEST needs path"},
        {"FLOOD/1 REQUEST path=a\n", "REQUEST needs md5"},
        {"FLOOD/1 ITEM kind=file size=1 md5=" MD5 " zmd5=" ZMD5 "\n", "ITEM needs len"},
        {"FLOOD/1 ERROR msg=x\n", "ERROR needs code"},
        {"FLOOD/1 ERROR code=x\n", "ERROR needs msg"},
        {"FLOOD/1 REQUEST\n", "REQUEST needs path"},
    };

    (void)state;
    EXPECT_ALL_MALFORMED(cases);
}

static void test_parse_refuses_bad_numbers(void **state)
{
    static const struct bad_case cases[] = {
        {GET_LINE(QID, "256", "1", A1, A2, "x"), "ttl is not a number from 0 to 255"},
        {GET_LINE(QID, "-1", "1", A1, A2, "x"), NOT_DIGITS("ttl")},
        {GET_LINE(QID, "+1", "1", A1, A2, "x"), NOT_DIGITS("ttl")},
        {GET_LINE(QID, "01", "1", A1, A2, "x"), "ttl has a leading zero"},
        {GET_LINE(QID, "3a", "1", A1, A2, "x"), NOT_DIGITS("ttl")},
        {GET_LINE(QID, "", "1", A1, A2, "x"), NOT_DIGITS("ttl")},
        {GET_LINE(QID, "99999999999999999999999", "1", A1, A2, "x"),
         "ttl is not a number from 0 to 255"},
        {GET_LINE(QID, "3", "256", A1, A2, "x"), "hops is not a number from 0 to 255"},
        {ITEM_LINE("file", "18446744073709551616", "1", ZMD5),
         "size is not a number that fits in 64 bits"},
        {ITEM_LINE("file", "184467440737095516150", "1", ZMD5),
         "size is not a number that fits in 64 bits"},
        {ITEM_LINE("file", "00", "1", ZMD5), "size has a leading zero"},
        {ITEM_LINE("file", "1", "", ZMD5), NOT_DIGITS("len")},
        {ITEM_LINE("file", "1", "0x10", ZMD5), NOT_DIGITS("len")},
        {FOUND_LINE(A1, "0", "file", "1", MD5, "a"), "peer is not a number from 1 to 65535"},
        {FOUND_LINE(A1, "65536", "file", "1", MD5, "a"), "peer is not a number from 1 to 65535"},
        {FOUND_LINE(A1, "", "file", "1", MD5, "a"),
         NOT_DIGITS("peer")},
    };

    (void)state;
    EXPECT_ALL_MALFORMED(cases);
}

static void test_parse_refuses_bad_hex_and_words(void **state)
{
    static const struct bad_case cases[] = {
        {GET_LINE("7f2a90c3d1e4b5a", "3", "1", A1, A2, "x"), "qid is not 16 lower-case hex digits"},
        {GET_LINE("7f2a90c3d1e4b5a6a", "3", "1", A1, A2, "x"),
         "qid is not 16 lower-case hex digits"},
        {GET_LINE("7F2A90C3D1E4B5A6", "3", "1", A1, A2, "x"), "qid is not 16 lower-case hex digits"},
        {GET_LINE("7f2a90c3d1e4b5g6", "3", "1", A1, A2, "x"), "qid is not 16 lower-case hex digits"},
        {GET_LINE("", "3", "1", A1, A2, "x"), "qid is not 16 lower-case hex digits"},
        {REQUEST_LINE("a", "6f5902ac237024bdd0c176cb93063dc"), "md5 is not 32 lower-case hex digits"},
        {REQUEST_LINE("a", MD5 "0"), "md5 is not 32 lower-case hex digits"},
        {REQUEST_LINE("a", "6F5902AC237024BDD0C176CB93063DC4"), "md5 is not 32 lower-case hex digits"},
        {ITEM_LINE("file", "1", "1", "zz"), "zmd5 is not 32 lower-case hex digits"},
        {ITEM_LINE("dir", "1", "1", ZMD5), "kind is not file or folder"},
        {ITEM_LINE("File", "1", "1", ZMD5), "kind is not file or folder"},
        {ITEM_LINE("", "1", "1", ZMD5), "kind is not file or folder"},
        {ERROR_LINE("NotFound", "x"), "code is not 1 to 31 lower-case letters"},
        {ERROR_LINE("", "x"), "code is not 1 to 31 lower-case letters"},
        {ERROR_LINE("abcdefghijklmnopqrstuvwxyzabcdef", "x"), "code is not 1 to 31 lower-case letters"},
        {ERROR_LINE("x", "a%0Ab"), "msg contains a control byte"},
        {ERROR_LINE("x", "a%7f"), "msg contains a control byte"},
        {ERROR_LINE("x", "100%"), "msg has a '%' not followed by two hex digits"},
        {ERROR_LINE("x", "%00"), "msg contains a NUL byte (%00)"},
    };

    (void)state;
    EXPECT_ALL_MALFORMED(cases);
}

static void test_parse_refuses_bad_names(void **state)
{
    static const struct bad_case cases[] = {
        {GET_LINE(QID, "3", "1", A1, A2, ".."), "name is . or .."},
        {GET_LINE(QID, "3", "1", A1, A2, "."), "name is . or .."},
        {GET_LINE(QID, "3", "1", A1, A2, "%2E%2e"), "name is . or .."},
        {GET_LINE(QID, "3", "1", A1, A2, "a/b"), "name contains '/' or '\\'"},
        {GET_LINE(QID, "3", "1", A1, A2, "a%2Fb"), "name contains '/' or '\\'"},
        {GET_LINE(QID, "3", "1", A1, A2, "a\\b"), "name contains '/' or '\\'"},
        {GET_LINE(QID, "3", "1", A1, A2, "a%00b"), "name contains a NUL byte (%00)"},
        {GET_LINE(QID, "3", "1", A1, A2, "a%01b"), "name contains a control byte"},
        {GET_LINE(QID, "3", "1", A1, A2, "a%7F"), "name contains a control byte"},
        {GET_LINE(QID, "3", "1", A1, A2, "%FF"), "name is not valid UTF-8"},
        {GET_LINE(QID, "3", "1", A1, A2, "caf%C3"), "name is not valid UTF-8"},
        {GET_LINE(QID, "3", "1", A1, A2, "%C0%AF"), "name is not valid UTF-8"},
        {GET_LINE(QID, "3", "1", A1, A2, "%ED%A0%80"), "name is not valid UTF-8"},
        {GET_LINE(QID, "3", "1", A1, A2, ""), "name is empty"},
        {GET_LINE(QID, "3", "1", A1, A2, "a%"), "name has a '%' not followed by two hex digits"},
        {GET_LINE(QID, "3", "1", A1, A2, "a%4"), "name has a '%' not followed by two hex digits"},
        {GET_LINE(QID, "3", "1", A1, A2, "a%4g"), "name has a '%' not followed by two hex digits"},
    };

    (void)state;
    EXPECT_ALL_MALFORMED(cases);
}

static void test_parse_refuses_name_over_255_bytes(void **state)
{
    char line[MSG_MAX_HEADER];
    char name[MSG_MAX_NAME * 3 + 1];
    struct msg m;
    size_t used;
    const char *why = NULL;

    (void)state;
    memset(name, 'n', MSG_MAX_NAME + 1);
    name[MSG_MAX_NAME + 1] = '\0';
    snprintf(line, sizeof line, GET_LINE(QID, "3", "1", A1, A2, "%s"), name);
    assert_int_equal(parse_str(line, &m, &used, &why), FS_EPROTO);
    assert_string_equal(why, "name exceeds 255 bytes");
    /* 766 encoded bytes can never decode into 255: refused before decoding. */
    for (size_t i = 0; i < MSG_MAX_NAME; i++)
        memcpy(name + 3 * i, "%41", 3);
    name[3 * MSG_MAX_NAME] = '\0';
    snprintf(line, sizeof line, GET_LINE(QID, "3", "1", A1, A2, "%sA"), name);
    assert_int_equal(parse_str(line, &m, &used, &why), FS_EPROTO);
    assert_string_equal(why, "name exceeds 255 bytes");
}

static void test_parse_refuses_bad_paths(void **state)
{
    static const struct bad_case cases[] = {
        {REQUEST_LINE("../x", MD5), "path has a . or .. component"},
        {REQUEST_LINE("a/../b", MD5), "path has a . or .. component"},
        {REQUEST_LINE("a/./b", MD5), "path has a . or .. component"},
        {REQUEST_LINE("a/%2E%2E/b", MD5), "path has a . or .. component"},
        {REQUEST_LINE("/abs", MD5), "path is absolute (starts with '/')"},
        {REQUEST_LINE("%2Fabs", MD5), "path is absolute (starts with '/')"},
        {REQUEST_LINE("a//b", MD5), "path has an empty component (a double or trailing '/')"},
        {REQUEST_LINE("a/", MD5), "path has an empty component (a double or trailing '/')"},
        {REQUEST_LINE("", MD5), "path is empty"},
        {REQUEST_LINE("a\\..\\b", MD5), "path contains '\\'"},
        {REQUEST_LINE("a/b%0A", MD5), "path contains a control byte"},
        {REQUEST_LINE("a/%FF", MD5), "path is not valid UTF-8"},
        {REQUEST_LINE("a%00", MD5), "path contains a NUL byte (%00)"},
        {REQUEST_LINE("a%zz", MD5), "path has a '%' not followed by two hex digits"},
        {FOUND_LINE(A1, "3", "file", "1", MD5, "../../etc/passwd"), "path has a . or .. component"},
    };

    (void)state;
    EXPECT_ALL_MALFORMED(cases);
}

static void test_parse_refuses_long_path_component(void **state)
{
    char line[MSG_MAX_HEADER];
    char part[MSG_MAX_NAME + 2];
    struct msg m;
    size_t used;
    const char *why = NULL;

    (void)state;
    memset(part, 'p', MSG_MAX_NAME + 1);
    part[MSG_MAX_NAME + 1] = '\0';
    snprintf(line, sizeof line, REQUEST_LINE("a/%s", MD5), part);
    assert_int_equal(parse_str(line, &m, &used, &why), FS_EPROTO);
    assert_string_equal(why, "path has a component that exceeds 255 bytes");
}

static void test_parse_refuses_bad_addresses(void **state)
{
    static const struct bad_case cases[] = {
        {GET_LINE(QID, "3", "1", "127.0.0.1", A2, "x"),
         "origin is not host:port with a port from 1 to 65535"},
        {GET_LINE(QID, "3", "1", ":10811", A2, "x"),
         "origin is not host:port with a port from 1 to 65535"},
        {GET_LINE(QID, "3", "1", "", A2, "x"), "origin is not host:port with a port from 1 to 65535"},
        {GET_LINE(QID, "3", "1", A1, "127.0.0.1:0", "x"),
         "from is not host:port with a port from 1 to 65535"},
        {GET_LINE(QID, "3", "1", A1, "127.0.0.1:70000", "x"),
         "from is not host:port with a port from 1 to 65535"},
        {GET_LINE(QID, "3", "1", A1, "127.0.0.1:080", "x"),
         "from is not host:port with a port from 1 to 65535"},
        {GET_LINE(QID, "3", "1", A1, "bad_host:1", "x"),
         "from is not host:port with a port from 1 to 65535"},
        {FOUND_LINE("127.0.0.1", "3", "file", "1", MD5, "a"),
         "holder is not host:port with a port from 1 to 65535"},
    };

    (void)state;
    EXPECT_ALL_MALFORMED(cases);
}

/* ------------------------------------------------------ percent-encoding */

static void test_pct_encode_escapes_space_percent_and_high_bytes(void **state)
{
    char out[64];

    (void)state;
    assert_int_equal(msg_pct_encode("a b%=\xc3\xa9\x01~", 9, out, sizeof out), 19);
    assert_string_equal(out, "a%20b%25=%C3%A9%01~");
    assert_int_equal(msg_pct_encode("", 0, out, sizeof out), 0);
    assert_string_equal(out, "");
}

static void test_pct_encode_fails_without_room(void **state)
{
    char out[6];

    (void)state;
    assert_int_equal(msg_pct_encode("abcde", 5, out, 6), 5);
    assert_int_equal(msg_pct_encode("abcdef", 6, out, 6), -1);
    assert_int_equal(msg_pct_encode("ab c", 4, out, 6), -1);
    assert_int_equal(msg_pct_encode("a", 1, out, 0), -1);
}

static void test_pct_decode_accepts_both_hex_cases(void **state)
{
    char out[16];

    (void)state;
    assert_int_equal(msg_pct_decode("caf%c3%A9%20x", 13, out, sizeof out), 7);
    assert_string_equal(out, "caf\xc3\xa9 x");
}

static void test_pct_decode_refuses_bad_escapes_and_nul(void **state)
{
    static const char *const bad[] = {"%", "a%", "%4", "%4g", "%g4", "%00", "a%00b", "%-1"};
    char out[16];

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (msg_pct_decode(bad[i], strlen(bad[i]), out, sizeof out) != -1)
            fail_msg("decoded \"%s\"", bad[i]);
}

static void test_pct_decode_fails_without_room(void **state)
{
    char out[4];

    (void)state;
    assert_int_equal(msg_pct_decode("abc", 3, out, 4), 3);
    assert_int_equal(msg_pct_decode("abcd", 4, out, 4), -1);
    assert_int_equal(msg_pct_decode("%41%42%43", 9, out, 4), 3);
    assert_int_equal(msg_pct_decode("a", 1, out, 0), -1);
}

static void test_type_and_kind_names(void **state)
{
    (void)state;
    assert_string_equal(msg_type_name(MSG_GET), "GET");
    assert_string_equal(msg_type_name(MSG_FOUND), "FOUND");
    assert_string_equal(msg_type_name(MSG_REQUEST), "REQUEST");
    assert_string_equal(msg_type_name(MSG_ITEM), "ITEM");
    assert_string_equal(msg_type_name(MSG_ERROR), "ERROR");
    assert_string_equal(msg_type_name((enum msg_type)0), "?");
    assert_string_equal(msg_kind_name(MSG_KIND_FILE), "file");
    assert_string_equal(msg_kind_name(MSG_KIND_FOLDER), "folder");
    assert_string_equal(msg_kind_name((enum msg_kind)7), "?");
}

/* --- BROWSE / LISTING (browse.h) --- */

static void test_browse_without_path_is_the_top_level(void **state)
{
    (void)state;
    struct msg m;
    size_t used;
    const char *why = NULL;
    const char *line = "FLOOD/1 BROWSE from=" A1 " offset=0\n";

    assert_int_equal(parse_str(line, &m, &used, &why), FS_OK);
    assert_int_equal(m.type, MSG_BROWSE);
    assert_string_equal(m.path, "");
    assert_int_equal(m.offset, 0);
    assert_string_equal(m.from.host, "127.0.0.1");
    char out[MSG_MAX_HEADER];
    assert_int_equal(msg_format(&m, out, sizeof out), (int)strlen(line));
    assert_string_equal(out, line);
}

static void test_browse_with_path_round_trips(void **state)
{
    (void)state;
    struct msg m, back;
    size_t used;
    char out[MSG_MAX_HEADER];

    memset(&m, 0, sizeof m);
    m.type = MSG_BROWSE;
    assert_int_equal(addr_parse(A2, strlen(A2), &m.from, NULL), FS_OK);
    m.offset = 1000;
    strcpy(m.path, "docs/my notes");
    int n = msg_format(&m, out, sizeof out);
    assert_true(n > 0);
    assert_string_equal(out, "FLOOD/1 BROWSE from=" A2 " offset=1000 path=docs/my%20notes\n");
    assert_int_equal(msg_parse(out, (size_t)n, &back, &used, NULL), FS_OK);
    assert_string_equal(back.path, "docs/my notes");
    assert_int_equal(back.offset, 1000);
}

/* The path of a BROWSE is confined by the parser as FETCH's is. */
static void test_browse_refuses_dotdot_absolute_and_missing_keys(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"FLOOD/1 BROWSE from=" A1 " offset=0 path=../etc\n", "path has a . or .. component"},
        {"FLOOD/1 BROWSE from=" A1 " offset=0 path=a/../../b\n", "path has a . or .. component"},
        {"FLOOD/1 BROWSE from=" A1 " offset=0 path=%2Fetc\n",
         "path is absolute (starts with '/')"},
        {"FLOOD/1 BROWSE from=" A1 " offset=0 path=\n", "path is empty"},
        {"FLOOD/1 BROWSE offset=0\n", "BROWSE needs from"},
        {"FLOOD/1 BROWSE from=" A1 "\n", "BROWSE needs offset"},
    };
    expect_all_malformed(cases, sizeof cases / sizeof cases[0]);
}

static void test_listing_round_trips_and_bounds_its_counts(void **state)
{
    (void)state;
    static const char line[] =
        "FLOOD/1 LISTING peer=3 total=10000 offset=1000 count=1000 next=2000 len=123456 path=d\n";
    static const struct bad_case cases[] = {
        {"FLOOD/1 LISTING peer=3 total=1048577 offset=0 count=0 next=0 len=0\n",
         "total is not a number from 0 to 1048576"},
        {"FLOOD/1 LISTING peer=3 total=1 offset=0 count=99999999 next=1 len=0\n",
         "count is not a number from 0 to 1048576"},
        {"FLOOD/1 LISTING peer=3 total=1 offset=0 count=1 len=5\n", "LISTING needs next"},
        {"FLOOD/1 LISTING total=1 offset=0 count=1 next=1 len=5\n", "LISTING needs peer"},
    };
    struct msg m;
    size_t used;
    char out[MSG_MAX_HEADER];

    assert_int_equal(parse_str(line, &m, &used, NULL), FS_OK);
    assert_int_equal(m.type, MSG_LISTING);
    assert_int_equal(m.peer_id, 3);
    assert_int_equal(m.total, 10000);
    assert_int_equal(m.offset, 1000);
    assert_int_equal(m.count, 1000);
    assert_int_equal(m.next, 2000);
    assert_int_equal(m.len, 123456);
    assert_string_equal(m.path, "d");
    assert_int_equal(msg_format(&m, out, sizeof out), (int)strlen(line));
    assert_string_equal(out, line);
    expect_all_malformed(cases, sizeof cases / sizeof cases[0]);
}

/* --- WATCH / CHANGED (swatch.h, a sync pair's watch) --- */

static void test_watch_and_changed_round_trip(void **state)
{
    (void)state;
    static const char watch[] = "FLOOD/1 WATCH from=" A1 " path=Course%20Notes\n";
    static const char changed[] =
        "FLOOD/1 CHANGED path=Course%20Notes md5=0123456789abcdef0123456789abcdef\n";
    static const char gone[] = "FLOOD/1 CHANGED path=Course%20Notes\n";
    struct msg m;
    size_t used;
    char out[MSG_MAX_HEADER];

    assert_int_equal(parse_str(watch, &m, &used, NULL), FS_OK);
    assert_int_equal(m.type, MSG_WATCH);
    assert_string_equal(m.path, "Course Notes");
    assert_string_equal(m.from.host, "127.0.0.1");
    assert_int_equal(msg_format(&m, out, sizeof out), (int)strlen(watch));
    assert_string_equal(out, watch);
    assert_int_equal(parse_str(changed, &m, &used, NULL), FS_OK);
    assert_int_equal(m.type, MSG_CHANGED);
    assert_string_equal(m.md5, "0123456789abcdef0123456789abcdef");
    assert_int_equal(msg_format(&m, out, sizeof out), (int)strlen(changed));
    assert_string_equal(out, changed);
    /* No md5: the holder has no item there (any more). */
    assert_int_equal(parse_str(gone, &m, &used, NULL), FS_OK);
    assert_int_equal(m.type, MSG_CHANGED);
    assert_string_equal(m.md5, "");
    assert_int_equal(msg_format(&m, out, sizeof out), (int)strlen(gone));
    assert_string_equal(out, gone);
}

static void test_watch_and_changed_refuse_bad_fields(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"FLOOD/1 WATCH from=" A1 "\n", "WATCH needs path"},
        {"FLOOD/1 WATCH path=notes\n", "WATCH needs from"},
        {"FLOOD/1 WATCH from=" A1 " path=../etc\n", "path has a . or .. component"},
        {"FLOOD/1 WATCH from=" A1 " path=%2Fetc\n", "path is absolute (starts with '/')"},
        {"FLOOD/1 CHANGED md5=0123456789abcdef0123456789abcdef\n", "CHANGED needs path"},
        {"FLOOD/1 CHANGED path=a md5=xyz\n", "md5 is not 32 lower-case hex digits"},
        {"FLOOD/1 CHANGED path=a path=b\n", "duplicate key path"},
    };
    expect_all_malformed(cases, sizeof cases / sizeof cases[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_get),
        cmocka_unit_test(test_watch_and_changed_round_trip),
        cmocka_unit_test(test_watch_and_changed_refuse_bad_fields),
        cmocka_unit_test(test_round_trip_found),
        cmocka_unit_test(test_round_trip_request),
        cmocka_unit_test(test_round_trip_item),
        cmocka_unit_test(test_round_trip_error),
        cmocka_unit_test(test_round_trip_send_messages),
        cmocka_unit_test(test_round_trip_link_handshake),
        cmocka_unit_test(test_round_trip_fetch_range_and_data),
        cmocka_unit_test(test_fetch_chunk_is_optional),
        cmocka_unit_test(test_range_mode_is_optional_and_octal),
        cmocka_unit_test(test_parse_refuses_bad_range_mode),
        cmocka_unit_test(test_parse_refuses_bad_transfer_fields),
        cmocka_unit_test(test_piece_messages_round_trip_and_root_is_optional),
        cmocka_unit_test(test_parse_refuses_bad_piece_fields),
        cmocka_unit_test(test_root_messages_round_trip_and_need_every_key),
        cmocka_unit_test(test_round_trip_busy),
        cmocka_unit_test(test_parse_refuses_bad_busy),
        cmocka_unit_test(test_format_refuses_busy_without_retry),
        cmocka_unit_test(test_round_trip_error_with_empty_msg),
        cmocka_unit_test(test_round_trip_names_with_special_bytes),
        cmocka_unit_test(test_round_trip_path_with_space_and_percent),
        cmocka_unit_test(test_round_trip_longest_name),
        cmocka_unit_test(test_format_writes_protocol_example),
        cmocka_unit_test(test_format_percent_encodes_strings),
        cmocka_unit_test(test_format_refuses_invalid_fields),
        cmocka_unit_test(test_format_refuses_line_over_2048_bytes),
        cmocka_unit_test(test_format_refuses_too_small_buffer),
        cmocka_unit_test(test_parse_valid_protocol_examples),
        cmocka_unit_test(test_parse_fills_get_fields),
        cmocka_unit_test(test_parse_decodes_percent_escapes),
        cmocka_unit_test(test_parse_needs_more_at_every_cut_point),
        cmocka_unit_test(test_parse_never_reads_past_len),
        cmocka_unit_test(test_parse_back_to_back_messages_one_by_one),
        cmocka_unit_test(test_parse_leaves_item_body_unconsumed),
        cmocka_unit_test(test_parse_accepts_crlf),
        cmocka_unit_test(test_parse_ignores_unknown_keys),
        cmocka_unit_test(test_parse_accepts_keys_in_any_order),
        cmocka_unit_test(test_parse_accepts_largest_numbers),
        cmocka_unit_test(test_parse_accepts_header_of_exactly_2048_bytes),
        cmocka_unit_test(test_parse_refuses_header_of_2049_bytes),
        cmocka_unit_test(test_parse_refuses_2048_bytes_without_newline),
        cmocka_unit_test(test_parse_needs_more_for_2047_bytes_without_newline),
        cmocka_unit_test(test_parse_refuses_embedded_nul),
        cmocka_unit_test(test_parse_refuses_raw_non_ascii_bytes),
        cmocka_unit_test(test_parse_refuses_a_start_that_cannot_become_a_header),
        cmocka_unit_test(test_parse_needs_more_while_a_header_is_still_possible),
        cmocka_unit_test(test_parse_judges_the_protocol_word_first),
        cmocka_unit_test(test_parse_verdict_does_not_depend_on_the_cut),
        cmocka_unit_test(test_parse_number_sentences_name_the_rule),
        cmocka_unit_test(test_parse_refuses_bad_structure),
        cmocka_unit_test(test_parse_refuses_each_missing_get_key),
        cmocka_unit_test(test_parse_refuses_missing_keys_of_other_verbs),
        cmocka_unit_test(test_parse_refuses_bad_numbers),
        cmocka_unit_test(test_parse_refuses_bad_hex_and_words),
        cmocka_unit_test(test_parse_refuses_bad_names),
        cmocka_unit_test(test_parse_refuses_name_over_255_bytes),
        cmocka_unit_test(test_parse_refuses_bad_paths),
        cmocka_unit_test(test_parse_refuses_long_path_component),
        cmocka_unit_test(test_parse_refuses_bad_addresses),
        cmocka_unit_test(test_pct_encode_escapes_space_percent_and_high_bytes),
        cmocka_unit_test(test_pct_encode_fails_without_room),
        cmocka_unit_test(test_pct_decode_accepts_both_hex_cases),
        cmocka_unit_test(test_pct_decode_refuses_bad_escapes_and_nul),
        cmocka_unit_test(test_pct_decode_fails_without_room),
        cmocka_unit_test(test_type_and_kind_names),
        cmocka_unit_test(test_browse_without_path_is_the_top_level),
        cmocka_unit_test(test_browse_with_path_round_trips),
        cmocka_unit_test(test_browse_refuses_dotdot_absolute_and_missing_keys),
        cmocka_unit_test(test_listing_round_trips_and_bounds_its_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
