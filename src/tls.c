/* tls.c - TLS 1.3 contexts for peer connections (tls.h). */
#include "floodshare/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define TLS_SUITE "TLS_AES_128_GCM_SHA256"
#define TLS_READ_BUF (256 * 1024) /* bytes one read(2) may bring in (tls_read_ahead) */

struct tls_ctx {
    SSL_CTX *ssl;
    enum tls_mode mode;
    unsigned char psk[TLS_PSK_LEN];
    int keylog_fd; /* -1: off */
    unsigned char (*trusted)[FP_LEN]; /* keys mode: n_trusted pinned fingerprints */
    size_t n_trusted;
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

/* SHA-256 of the DER SubjectPublicKeyInfo of pkey, as OpenSSH prints. */
static int spki_fp(EVP_PKEY *pkey, unsigned char fp[FP_LEN])
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(pkey, &der);
    unsigned int len = 0;
    int ok = n > 0 && EVP_Digest(der, (size_t)n, fp, &len, EVP_sha256(), NULL) == 1 &&
             len == FP_LEN;

    OPENSSL_free(der);
    return ok;
}

/* Replaces OpenSSL's chain check: a self-signed certificate has no chain,
 * and what matters is only whether its key is one we pinned (the
 * handshake's CertificateVerify proved the peer holds that key). */
static int verify_pinned(X509_STORE_CTX *x, void *arg)
{
    struct tls_ctx *t = arg;
    X509 *leaf = X509_STORE_CTX_get0_cert(x);
    EVP_PKEY *pk = leaf ? X509_get0_pubkey(leaf) : NULL;
    unsigned char fp[FP_LEN];

    if (pk && spki_fp(pk, fp))
        for (size_t i = 0; i < t->n_trusted; i++)
            if (CRYPTO_memcmp(fp, t->trusted[i], FP_LEN) == 0)
                return 1;
    X509_STORE_CTX_set_error(x, X509_V_ERR_CERT_REJECTED);
    return 0;
}

/* The private key in path; refused when group or others may read it. */
static EVP_PKEY *load_key(const char *path, char *err, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat sb;
    EVP_PKEY *k = NULL;

    if (fd < 0) {
        snprintf(err, cap, "[security] key: cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (sb.st_mode & 077)) {
        snprintf(err, cap, "[security] key: %s must be a file only its owner can read "
                 "(chmod 600 %s)", path, path);
        close(fd);
        return NULL;
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!k)
        fail(err, cap, "[security] key: not a PEM private key (make one with floodshare keygen)");
    return k;
}

/* A self-signed certificate of k: it only carries the key to the other
 * side, which checks the key, never the name or the dates. */
static X509 *self_signed(EVP_PKEY *k)
{
    X509 *x = X509_new();
    X509_NAME *name = x ? X509_get_subject_name(x) : NULL;

    if (!x || !X509_set_version(x, 2) || !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -86400) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), 100L * 365 * 86400) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"floodshare",
                                    -1, -1, 0) ||
        !X509_set_issuer_name(x, name) || !X509_set_pubkey(x, k) || !X509_sign(x, k, NULL)) {
        X509_free(x);
        return NULL;
    }
    return x;
}

fs_status tls_ctx_new_keys(struct tls_ctx **out, const char *key_file,
                           const unsigned char (*trusted)[FP_LEN], size_t n,
                           const char *keylog, char *err, size_t cap)
{
    struct tls_ctx *t = calloc(1, sizeof *t);
    EVP_PKEY *k = NULL;
    X509 *x = NULL;
    fs_status st;

    *out = NULL;
    if (!t || !(t->trusted = calloc(n ? n : 1, FP_LEN))) {
        free(t);
        snprintf(err, cap, "out of memory");
        return FS_ENOMEM;
    }
    t->mode = TLS_KEYS;
    memcpy(t->trusted, trusted, n * FP_LEN);
    t->n_trusted = n;
    st = ctx_common(t, keylog, err, cap);
    if (!st && !(k = load_key(key_file, err, cap)))
        st = FS_EIO;
    if (!st && !(x = self_signed(k)))
        st = fail(err, cap, "[security] key: cannot make a certificate of it");
    if (!st && (!SSL_CTX_use_certificate(t->ssl, x) || !SSL_CTX_use_PrivateKey(t->ssl, k) ||
                !SSL_CTX_check_private_key(t->ssl)))
        st = fail(err, cap, "[security] key: cannot use it for TLS");
    X509_free(x);
    EVP_PKEY_free(k);
    if (st) {
        tls_ctx_free(t);
        return st;
    }
    SSL_CTX_set_verify(t->ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_cert_verify_callback(t->ssl, verify_pinned, t);
    *out = t;
    return FS_OK;
}

fs_status tls_key_fingerprint(const char *key_file, unsigned char fp[FP_LEN], char *err,
                              size_t cap)
{
    EVP_PKEY *k = load_key(key_file, err, cap);
    int ok = k && spki_fp(k, fp);

    EVP_PKEY_free(k);
    if (k && !ok)
        return fail(err, cap, "cannot hash the key");
    return ok ? FS_OK : FS_EIO;
}

fs_status tls_keygen(const char *path, unsigned char fp[FP_LEN], char *err, size_t cap)
{
    char tmp[PATH_MAX];
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    fs_status st = FS_OK;
    int fd = -1;

    if (!k)
        return fail(err, cap, "cannot make an Ed25519 key");
    if (access(path, F_OK) == 0 || errno != ENOENT) {
        snprintf(err, cap, "%s already exists: a key is never overwritten", path);
        EVP_PKEY_free(k);
        return FS_EEXIST;
    }
    if (snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path) >= (int)sizeof tmp) {
        snprintf(err, cap, "%s: path too long", path);
        EVP_PKEY_free(k);
        return FS_EINVAL;
    }
    mode_t old = umask(077); /* mkstemp makes 0600 anyway: no window with more */
    fd = mkstemp(tmp);
    umask(old);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        snprintf(err, cap, "cannot write next to %s: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        EVP_PKEY_free(k);
        return FS_EIO;
    }
    if (!PEM_write_PKCS8PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) || fflush(f) != 0 ||
        fsync(fileno(f)) != 0 || !spki_fp(k, fp))
        st = fail(err, cap, "cannot write the key");
    if (fclose(f) != 0 && !st)
        st = fail(err, cap, "cannot write the key");
    /* link(2), not rename(2): it fails rather than replace a file that
     * appeared meanwhile. */
    if (!st && link(tmp, path) != 0) {
        int e = errno;
        snprintf(err, cap, e == EEXIST ? "%s already exists: a key is never overwritten"
                                       : "cannot create %s", path);
        st = e == EEXIST ? FS_EEXIST : FS_EIO;
    }
    unlink(tmp);
    EVP_PKEY_free(k);
    return st;
}

void tls_ctx_free(struct tls_ctx *t)
{
    if (!t)
        return;
    free(t->trusted);
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
    BIO *sock = SSL_get_rbio(ssl);
    BIO *buf;

    if (!sock || BIO_method_type(sock) == BIO_TYPE_BUFFER)
        return; /* already done */
    buf = BIO_new(BIO_f_buffer());
    if (!buf || BIO_set_read_buffer_size(buf, TLS_READ_BUF) != 1) {
        BIO_free(buf);
        return; /* two reads per record: slower, not wrong */
    }
    /* Not SSL_set_read_ahead(): OpenSSL 3.0 aligns each record's payload
     * by moving everything still unread in its buffer to the front when a
     * record starts (ssl3_read_n), so a read-ahead of 256 KiB moved every
     * byte about 8 times (perf: memmove ~0.25 s of CPU per GiB, as much as
     * the AES-GCM). Below the SSL, the buffer BIO is filled by one read(2)
     * and copied out once; the SSL takes exactly one record at a time. */
    SSL_set_read_ahead(ssl, 0);
    BIO_up_ref(sock); /* SSL_set0_rbio drops the reference it replaces */
    SSL_set0_rbio(ssl, BIO_push(buf, sock));
    SSL_clear_mode(ssl, SSL_MODE_RELEASE_BUFFERS); /* busy: keep its record buffer */
}

const char *tls_last_error(void)
{
    unsigned long e = ERR_get_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;

    ERR_clear_error();
    return r ? r : "the handshake failed";
}
