/* test_conn_tls.c - conn under TLS 1.3 (conn.h, tls.h) over a socketpair: the handshake
 * in each mode, refusals (wrong passphrase, unknown key, not TLS), and exact framing of messages and bodies
 * through TLS records. Both ends run in this one thread: handshakes step without waiting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "floodshare/conn.h"
#include "floodshare/net.h"
#include "floodshare/tls.h"

static const char GET_LINE[] = "FLOOD/1 GET qid=7f2a90c3d1e4b5a6 ttl=3 hops=1 "
                               "origin=127.0.0.1:10811 from=127.0.0.1:10812 name=3.txt\n";

struct ends {
    int sv[2];
    struct conn srv, cli; /* srv on sv[0], cli on sv[1] */
};

static struct tls_ctx *psk_ctx(const char *phrase)
{
    struct tls_ctx *t = NULL;
    char err[TLS_ERR_MAX];

    assert_int_equal(tls_ctx_new_psk(&t, phrase, strlen(phrase), NULL, err, sizeof err), FS_OK);
    return t;
}

/* Connects a server conn (ctx s, NULL: plain) and a client conn (ctx c). */
static void open_ends(struct ends *e, struct tls_ctx *s, struct tls_ctx *c)
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, e->sv), 0);
    conn_init(&e->srv, e->sv[0], 2000);
    conn_init(&e->cli, e->sv[1], 2000);
    if (s)
        conn_set_tls(&e->srv, tls_new_ssl(s, e->sv[0], 1));
    if (c)
        conn_set_tls(&e->cli, tls_new_ssl(c, e->sv[1], 0));
}

/* Steps both handshakes until each is over or failed (a bounded number of
 * rounds: on a socketpair each step moves what the other needs). */
static void handshake_both(struct ends *e, fs_status *srv, fs_status *cli)
{
    *srv = *cli = FS_NEED_MORE;
    for (int round = 0; round < 50 && (*srv == FS_NEED_MORE || *cli == FS_NEED_MORE); round++) {
        if (*cli == FS_NEED_MORE)
            *cli = conn_handshake_step(&e->cli);
        if (*srv == FS_NEED_MORE)
            *srv = conn_handshake_step(&e->srv);
    }
}

static void close_ends(struct ends *e)
{
    conn_close(&e->srv);
    conn_close(&e->cli);
}

static void test_same_passphrase_handshakes_and_frames_exactly(void **state)
{
    struct tls_ctx *a = psk_ctx("correct horse battery"), *b = psk_ctx("correct horse battery");
    struct ends e;
    fs_status s, c;
    struct msg m;
    const char *why;
    char body[100000];

    (void)state;
    open_ends(&e, a, b);
    handshake_both(&e, &s, &c);
    assert_int_equal(c, FS_OK);
    assert_int_equal(s, FS_OK);

    /* Two headers and a body in one write: each read gets exactly its own bytes. */
    size_t hl = strlen(GET_LINE);
    char *out = malloc(2 * hl + sizeof body);
    assert_non_null(out);
    memcpy(out, GET_LINE, hl);
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (char)(i * 7 + 3);
    memcpy(out + hl, body, sizeof body);
    memcpy(out + hl + sizeof body, GET_LINE, hl);
    /* The writer and reader share this thread: write what fits, read, repeat. */
    size_t sent = 0, got_body = 0;
    char in[sizeof body];
    int have_first = 0, have_second = 0;
    while (!have_second) {
        size_t w = 0;
        if (sent < 2 * hl + sizeof body) {
            assert_int_equal(conn_write_some(&e.cli, out + sent, 2 * hl + sizeof body - sent, &w),
                             FS_OK);
            sent += w;
        }
        if (!have_first) {
            if (conn_fill(&e.srv) == FS_OK && conn_ready(&e.srv)) {
                assert_int_equal(conn_read_msg(&e.srv, &m, 0, &why), FS_OK);
                assert_int_equal(m.type, MSG_GET);
                assert_string_equal(m.name, "3.txt");
                have_first = 1;
            }
        } else if (got_body < sizeof body) {
            size_t n = 0;
            if (conn_read_body_some(&e.srv, in + got_body, sizeof body - got_body, &n) == FS_OK)
                got_body += n;
        } else {
            assert_int_equal(conn_read_msg(&e.srv, &m, 2000, &why), FS_OK);
            assert_int_equal(m.type, MSG_GET);
            have_second = 1;
        }
    }
    assert_memory_equal(in, body, sizeof body);
    /* And back: a whole message through conn_send_msg. */
    assert_int_equal(conn_send_error(&e.srv, "busy", "try again", 1000), FS_OK);
    assert_int_equal(conn_read_msg(&e.cli, &m, 1000, &why), FS_OK);
    assert_int_equal(m.type, MSG_ERROR);
    assert_string_equal(m.code, "busy");
    free(out);
    close_ends(&e);
    tls_ctx_free(a);
    tls_ctx_free(b);
}

/* An upload's bulk buffer: records gather and leave in big writes, and
 * conn_write_all() returns only once all of them left. */
static void test_bulk_sending_frames_exactly_and_flushes(void **state)
{
    struct tls_ctx *a = psk_ctx("correct horse battery");
    struct ends e;
    fs_status s, c;
    struct msg m;
    const char *why;
    static char body[700000], in[sizeof body];

    (void)state;
    open_ends(&e, a, a);
    handshake_both(&e, &s, &c);
    assert_int_equal(c, FS_OK);
    assert_int_equal(s, FS_OK);
    conn_tls_bulk(&e.srv);
    conn_tls_bulk(&e.srv); /* twice is once */
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (char)(i * 13 + 1);
    /* A small message alone must not wait in the buffer. */
    assert_int_equal(conn_send_error(&e.srv, "busy", "a", 1000), FS_OK);
    assert_int_equal(conn_flush(&e.srv), FS_OK);
    assert_int_equal(conn_read_msg(&e.cli, &m, 1000, &why), FS_OK);
    assert_string_equal(m.code, "busy");
    /* A body larger than the socket buffers: written and read in turns
     * (a read that finds nothing waits only a moment). */
    e.cli.timeout_ms = 20;
    size_t sent = 0, got = 0;
    while (got < sizeof body) {
        size_t w = 0, n = 0;
        if (sent < sizeof body) {
            assert_int_equal(conn_write_some(&e.srv, body + sent, sizeof body - sent, &w), FS_OK);
            sent += w;
        } else {
            fs_status f = conn_flush(&e.srv);
            assert_true(f == FS_OK || f == FS_NEED_MORE);
        }
        fs_status r = conn_read_body_some(&e.cli, in + got, sizeof in - got, &n);
        if (r == FS_OK)
            got += n;
        else
            assert_int_equal(r, FS_ETIMEDOUT); /* nothing yet: the writer goes on */
    }
    assert_memory_equal(in, body, sizeof body);
    assert_int_equal(conn_flush(&e.srv), FS_OK);
    close_ends(&e);
    tls_ctx_free(a);
}

/* A fetcher's read-ahead (tls_read_ahead): the SSL reads through one
 * buffer BIO over the socket, not with OpenSSL's own read-ahead (which
 * moves what it holds at every record: the copies it saved are the
 * point), and a body larger than that buffer, then the next header, come
 * out exact even when reads find nothing for a while. */
static void test_read_ahead_reads_through_one_buffer_and_frames_exactly(void **state)
{
    struct tls_ctx *a = psk_ctx("correct horse battery");
    struct ends e;
    fs_status s, c;
    struct msg m;
    const char *why;
    static char body[700000], in[sizeof body];

    (void)state;
    open_ends(&e, a, a);
    tls_read_ahead(e.cli.ssl);
    tls_read_ahead(e.cli.ssl); /* twice is once */
    BIO *rb = SSL_get_rbio(e.cli.ssl);
    assert_int_equal(SSL_get_read_ahead(e.cli.ssl), 0);
    assert_int_equal(BIO_method_type(rb), BIO_TYPE_BUFFER);
    assert_int_equal(BIO_method_type(BIO_next(rb)), BIO_TYPE_SOCKET);
    handshake_both(&e, &s, &c);
    assert_int_equal(c, FS_OK);
    assert_int_equal(s, FS_OK);
    conn_tls_bulk(&e.srv);
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (char)(i * 11 + 5);
    assert_int_equal(conn_send_error(&e.srv, "first", "a", 1000), FS_OK);
    assert_int_equal(conn_read_msg(&e.cli, &m, 1000, &why), FS_OK);
    assert_string_equal(m.code, "first");
    e.cli.timeout_ms = 20;
    size_t sent = 0, got = 0;
    int last_sent = 0;
    while (got < sizeof body) {
        size_t w = 0, n = 0;
        if (sent < sizeof body) {
            assert_int_equal(conn_write_some(&e.srv, body + sent, sizeof body - sent, &w), FS_OK);
            sent += w;
        } else if (!last_sent) {
            /* the next header right behind the body: it arrives in the
             * same read as the body's end and must wait in the buffer */
            assert_int_equal(conn_write_some(&e.srv, GET_LINE, strlen(GET_LINE), &w), FS_OK);
            last_sent = w == strlen(GET_LINE);
        } else {
            fs_status f = conn_flush(&e.srv);
            assert_true(f == FS_OK || f == FS_NEED_MORE);
        }
        fs_status r = conn_read_body_some(&e.cli, in + got, sizeof in - got, &n);
        if (r == FS_OK)
            got += n;
        else
            assert_int_equal(r, FS_ETIMEDOUT); /* nothing yet: the writer goes on */
    }
    assert_memory_equal(in, body, sizeof body);
    while (!last_sent) {
        size_t w = 0;
        assert_int_equal(conn_write_some(&e.srv, GET_LINE, strlen(GET_LINE), &w), FS_OK);
        last_sent = w == strlen(GET_LINE);
    }
    assert_int_equal(conn_write_all(&e.srv, NULL, 0, 1000), FS_OK);
    e.cli.timeout_ms = 1000;
    assert_int_equal(conn_read_msg(&e.cli, &m, 1000, &why), FS_OK);
    assert_int_equal(m.type, MSG_GET);
    assert_string_equal(m.name, "3.txt");
    close_ends(&e);
    tls_ctx_free(a);
}

static void test_wire_bytes_are_not_plain_text(void **state)
{
    struct tls_ctx *a = psk_ctx("correct horse battery");
    struct ends e;
    fs_status s, c;
    char raw[4096];

    (void)state;
    open_ends(&e, a, a);
    handshake_both(&e, &s, &c);
    assert_int_equal(c, FS_OK);
    assert_int_equal(s, FS_OK);
    assert_int_equal(conn_write_all(&e.cli, GET_LINE, strlen(GET_LINE), 1000), FS_OK);
    ssize_t n = recv(e.sv[0], raw, sizeof raw, 0); /* under the server's SSL */
    assert_true(n > (ssize_t)strlen(GET_LINE));
    assert_null(memmem(raw, (size_t)n, "FLOOD/1", 7));
    assert_null(memmem(raw, (size_t)n, "3.txt", 5));
    close_ends(&e);
    tls_ctx_free(a);
}

static void test_wrong_passphrase_fails_both_sides(void **state)
{
    struct tls_ctx *a = psk_ctx("correct horse battery"), *b = psk_ctx("correct horse battery!");
    struct ends e;
    fs_status s, c;

    (void)state;
    open_ends(&e, a, b);
    handshake_both(&e, &s, &c);
    assert_int_equal(s, FS_EAUTH);
    assert_int_equal(c, FS_EAUTH);
    close_ends(&e);
    tls_ctx_free(a);
    tls_ctx_free(b);
}

static void test_plain_flood_to_a_tls_server_fails_at_once(void **state)
{
    struct tls_ctx *a = psk_ctx("correct horse battery");
    struct ends e;

    (void)state;
    open_ends(&e, a, NULL);
    assert_int_equal(write(e.sv[1], GET_LINE, strlen(GET_LINE)), (ssize_t)strlen(GET_LINE));
    assert_int_equal(conn_handshake(&e.srv, 1000), FS_EAUTH);
    close_ends(&e);
    tls_ctx_free(a);
}

static void test_a_silent_client_times_out(void **state)
{
    struct tls_ctx *a = psk_ctx("correct horse battery");
    struct ends e;

    (void)state;
    open_ends(&e, a, NULL);
    assert_int_equal(conn_handshake(&e.srv, 100), FS_ETIMEDOUT);
    close_ends(&e);
    tls_ctx_free(a);
}

/* Three keys in a private temporary folder: a, b, c, with their fingerprints. */
struct keys {
    char dir[64], path[3][96];
    unsigned char fp[3][FP_LEN];
};

static void make_keys(struct keys *k)
{
    char err[TLS_ERR_MAX + 128];

    snprintf(k->dir, sizeof k->dir, "/tmp/fs-tls-XXXXXX");
    assert_non_null(mkdtemp(k->dir));
    for (int i = 0; i < 3; i++) {
        snprintf(k->path[i], sizeof k->path[i], "%s/%c.key", k->dir, 'a' + i);
        assert_int_equal(tls_keygen(k->path[i], k->fp[i], err, sizeof err), FS_OK);
    }
}

static void drop_keys(struct keys *k)
{
    for (int i = 0; i < 3; i++)
        unlink(k->path[i]);
    rmdir(k->dir);
}

static struct tls_ctx *key_ctx(struct keys *k, int self, int trust)
{
    struct tls_ctx *t = NULL;
    char err[TLS_ERR_MAX + 128];

    assert_int_equal(tls_ctx_new_keys(&t, k->path[self], &k->fp[trust], 1, NULL, err, sizeof err),
                     FS_OK);
    return t;
}

static void test_pinned_keys_handshake_and_an_unknown_key_fails(void **state)
{
    struct keys k;
    struct ends e;
    fs_status s, c;
    struct msg m;
    const char *why;

    (void)state;
    make_keys(&k);
    struct tls_ctx *a = key_ctx(&k, 0, 1), *b = key_ctx(&k, 1, 0), *stranger = key_ctx(&k, 2, 0);

    open_ends(&e, a, b); /* a and b trust each other */
    handshake_both(&e, &s, &c);
    assert_int_equal(c, FS_OK);
    assert_int_equal(s, FS_OK);
    assert_int_equal(conn_write_all(&e.cli, GET_LINE, strlen(GET_LINE), 1000), FS_OK);
    assert_int_equal(conn_read_msg(&e.srv, &m, 1000, &why), FS_OK);
    assert_int_equal(m.type, MSG_GET);
    close_ends(&e);

    open_ends(&e, a, stranger); /* the stranger trusts a, but a does not know its key */
    handshake_both(&e, &s, &c);
    assert_int_equal(s, FS_EAUTH);
    /* TLS 1.3: the client is done before the server judged its key; it
     * learns of the refusal at its first read, and gets no message. */
    assert_int_not_equal(conn_read_msg(&e.cli, &m, 1000, &why), FS_OK);
    close_ends(&e);

    open_ends(&e, stranger, a); /* and the other way round: a, the client, refuses it */
    handshake_both(&e, &s, &c);
    assert_int_equal(c, FS_EAUTH);
    close_ends(&e);

    open_ends(&e, a, NULL); /* a passphrase peer, or none, cannot talk to a keys peer */
    assert_int_equal(write(e.sv[1], GET_LINE, strlen(GET_LINE)), (ssize_t)strlen(GET_LINE));
    assert_int_equal(conn_handshake(&e.srv, 1000), FS_EAUTH);
    close_ends(&e);

    tls_ctx_free(a);
    tls_ctx_free(b);
    tls_ctx_free(stranger);
    drop_keys(&k);
}

static void test_keygen_never_overwrites_and_fingerprints_agree(void **state)
{
    struct keys k;
    unsigned char fp[FP_LEN];
    char err[TLS_ERR_MAX + 128];
    struct stat sb;

    (void)state;
    make_keys(&k);
    assert_int_equal(stat(k.path[0], &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(tls_keygen(k.path[0], fp, err, sizeof err), FS_EEXIST);
    assert_int_equal(tls_key_fingerprint(k.path[0], fp, err, sizeof err), FS_OK);
    assert_memory_equal(fp, k.fp[0], FP_LEN); /* the file was not replaced */
    assert_memory_not_equal(k.fp[0], k.fp[1], FP_LEN);
    chmod(k.path[1], 0644); /* a key others can read is refused */
    assert_int_equal(tls_key_fingerprint(k.path[1], fp, err, sizeof err), FS_EIO);
    assert_non_null(strstr(err, "only its owner"));
    drop_keys(&k);
}

static void test_psk_is_pbkdf2_of_the_passphrase(void **state)
{
    unsigned char k1[TLS_PSK_LEN], k2[TLS_PSK_LEN], k3[TLS_PSK_LEN];

    (void)state;
    assert_int_equal(tls_derive_psk("abcdefgh", 8, k1), FS_OK);
    assert_int_equal(tls_derive_psk("abcdefgh", 8, k2), FS_OK);
    assert_int_equal(tls_derive_psk("abcdefgi", 8, k3), FS_OK);
    assert_memory_equal(k1, k2, sizeof k1);
    assert_memory_not_equal(k1, k3, sizeof k1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_passphrase_handshakes_and_frames_exactly),
        cmocka_unit_test(test_wire_bytes_are_not_plain_text),
        cmocka_unit_test(test_bulk_sending_frames_exactly_and_flushes),
        cmocka_unit_test(test_read_ahead_reads_through_one_buffer_and_frames_exactly),
        cmocka_unit_test(test_wrong_passphrase_fails_both_sides),
        cmocka_unit_test(test_plain_flood_to_a_tls_server_fails_at_once),
        cmocka_unit_test(test_a_silent_client_times_out),
        cmocka_unit_test(test_psk_is_pbkdf2_of_the_passphrase),
        cmocka_unit_test(test_pinned_keys_handshake_and_an_unknown_key_fails),
        cmocka_unit_test(test_keygen_never_overwrites_and_fingerprints_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
