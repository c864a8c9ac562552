/* tls.c - TLS 1.3 contexts for peer connections (tls.h). */
#include "floodshare/tls.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#define TLS_SUITE "TLS_AES_128_GCM_SHA256"

struct tls_ctx {
    SSL_CTX *ssl;
    enum tls_mode mode;
    unsigned char psk[TLS_PSK_LEN];
    int keylog_fd; /* -1: off */
};

fs_status tls_derive_psk(const char *passphrase, size_t len, unsigned char out[TLS_PSK_LEN])
{
    static const char salt[] = TLS_PSK_SALT;

    if (len > INT32_MAX)
        return FS_EINVAL;
    if (PKCS5_PBKDF2_HMAC(passphrase, (int)len, (const unsigned char *)salt,
                          (int)(sizeof salt - 1), TLS_PSK_ITER, EVP_sha256(), TLS_PSK_LEN,
                          out) != 1)
        return FS_EIO;
    return FS_OK;
}

static struct tls_ctx *ctx_of(SSL *s)
{
    return SSL_CTX_get_app_data(SSL_get_SSL_CTX(s));
}

/* A session carrying the external PSK, bound to our one cipher suite. */
static SSL_SESSION *psk_session(SSL *s)
{
    static const unsigned char aes128gcm[] = {0x13, 0x01};
    const SSL_CIPHER *cipher = SSL_CIPHER_find(s, aes128gcm);
    SSL_SESSION *sess = cipher ? SSL_SESSION_new() : NULL;

    if (sess && (!SSL_SESSION_set1_master_key(sess, ctx_of(s)->psk, TLS_PSK_LEN) ||
                 !SSL_SESSION_set_cipher(sess, cipher) ||
                 !SSL_SESSION_set_protocol_version(sess, TLS1_3_VERSION))) {
        SSL_SESSION_free(sess);
        sess = NULL;
    }
    return sess;
}

/* Client: offers the PSK. md is the hash already chosen after a
 * HelloRetryRequest (NULL at first); ours is always SHA-256. */
static int psk_use(SSL *s, const EVP_MD *md, const unsigned char **id, size_t *idlen,
                   SSL_SESSION **sess)
{
    *sess = NULL;
    if (md && EVP_MD_get_type(md) != NID_sha256)
        return 1; /* no PSK for another hash: the handshake fails */
    *sess = psk_session(s);
    *id = (const unsigned char *)TLS_PSK_IDENTITY;
    *idlen = sizeof TLS_PSK_IDENTITY - 1;
    return *sess ? 1 : 0;
}

/* Server: the PSK for our identity; any other identity finds none, and
 * with no certificate to fall back on, the handshake fails. A client with
 * the right identity but another passphrase fails the binder check. */
static int psk_find(SSL *s, const unsigned char *id, size_t idlen, SSL_SESSION **sess)
{
    *sess = NULL;
    if (idlen != sizeof TLS_PSK_IDENTITY - 1 || memcmp(id, TLS_PSK_IDENTITY, idlen) != 0)
        return 1;
    *sess = psk_session(s);
    return *sess ? 1 : 0;
}

/* NSS key log lines, appended: one write(2) per line, so lines from
 * several threads never interleave. */
static void keylog_line(const SSL *s, const char *line)
{
    struct tls_ctx *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(s));
    char buf[512];
    int n = snprintf(buf, sizeof buf, "%s\n", line);

    if (t->keylog_fd >= 0 && n > 0 && (size_t)n < sizeof buf && write(t->keylog_fd, buf, (size_t)n) < 0) {
        /* a full disk loses a key line, never a connection */
    }
}

static fs_status fail(char *err, size_t cap, const char *what)
{
    unsigned long e = ERR_get_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;

    snprintf(err, cap, "%s%s%s", what, r ? ": " : "", r ? r : "");
    ERR_clear_error();
    return FS_EIO;
}

/* What every mode shares: TLS 1.3 only, one suite, no tickets, writes that
 * may move and be partial (the flood plane's queue), EOF without
 * close_notify read as an end (FLOOD/1 frames its own lengths). */
static fs_status ctx_common(struct tls_ctx *t, const char *keylog, char *err, size_t cap)
{
    t->keylog_fd = -1;
    t->ssl = SSL_CTX_new(TLS_method());
    if (!t->ssl)
        return fail(err, cap, "cannot make a TLS context");
    SSL_CTX_set_app_data(t->ssl, t);
    if (!SSL_CTX_set_min_proto_version(t->ssl, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(t->ssl, TLS1_3_VERSION) ||
        !SSL_CTX_set_ciphersuites(t->ssl, TLS_SUITE) || !SSL_CTX_set_num_tickets(t->ssl, 0))
        return fail(err, cap, "cannot set TLS 1.3 with " TLS_SUITE);
    SSL_CTX_set_session_cache_mode(t->ssl, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(t->ssl, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(t->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    if (keylog && *keylog) {
        t->keylog_fd = open(keylog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (t->keylog_fd < 0) {
            snprintf(err, cap, "[security] keylog: cannot open %s", keylog);
            return FS_EIO;
        }
        SSL_CTX_set_keylog_callback(t->ssl, keylog_line);
    }
    /* OpenSSL writes to sockets with write(2): a peer that vanished must
     * be an error return, not a signal that ends this process. */
    signal(SIGPIPE, SIG_IGN);
    return FS_OK;
}

fs_status tls_ctx_new_psk(struct tls_ctx **out, const char *passphrase, size_t len,
                          const char *keylog, char *err, size_t cap)
{
    struct tls_ctx *t = calloc(1, sizeof *t);
    fs_status st;

    *out = NULL;
    if (!t) {
        snprintf(err, cap, "out of memory");
        return FS_ENOMEM;
    }
    t->mode = TLS_PASSPHRASE;
    st = ctx_common(t, keylog, err, cap);
    if (!st && tls_derive_psk(passphrase, len, t->psk) != FS_OK)
        st = fail(err, cap, "cannot derive the key of the passphrase");
    if (st) {
        tls_ctx_free(t);
        return st;
    }
    SSL_CTX_set_psk_use_session_callback(t->ssl, psk_use);
    SSL_CTX_set_psk_find_session_callback(t->ssl, psk_find);
    *out = t;
    return FS_OK;
}

void tls_ctx_free(struct tls_ctx *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ssl);
    if (t->keylog_fd >= 0)
        close(t->keylog_fd);
    OPENSSL_cleanse(t->psk, sizeof t->psk);
    free(t);
}

enum tls_mode tls_ctx_mode(const struct tls_ctx *t)
{
    return t ? t->mode : TLS_PLAIN;
}

SSL *tls_new_ssl(struct tls_ctx *t, int fd, int server)
{
    SSL *s = SSL_new(t->ssl);

    if (!s)
        return NULL;
    if (!SSL_set_fd(s, fd)) {
        SSL_free(s);
        return NULL;
    }
    if (server)
        SSL_set_accept_state(s);
    else
        SSL_set_connect_state(s);
    return s;
}

void tls_read_ahead(SSL *ssl)
{
    SSL_set_read_ahead(ssl, 1);
}

const char *tls_last_error(void)
{
    unsigned long e = ERR_get_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;

    ERR_clear_error();
    return r ? r : "the handshake failed";
}
