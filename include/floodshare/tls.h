/* tls.h - closing the network: TLS 1.3 under FLOOD/1 (docs/SECURITY.md).
 *
 * A tls_ctx is made once at start from [security] and lives, unchanged,
 * until the peer stops (a change of [security] needs a restart: `modify`
 * refuses it). It wraps one OpenSSL SSL_CTX used for both sides of every
 * peer connection: neighbour links, the gate's accepted connections, and
 * transfer connections. Two modes:
 *
 *   passphrase  a TLS 1.3 external PSK. The key is PBKDF2-HMAC-SHA256 of
 *               the passphrase, salt TLS_PSK_SALT, TLS_PSK_ITER rounds, 32
 *               bytes, offered under the identity TLS_PSK_IDENTITY. Only a
 *               peer that derived the same key completes the handshake.
 *   keys        each side presents a self-signed certificate of its key
 *               (made in memory at start) and checks the other's public key
 *               fingerprint against `trusted` (tls_fp_*).
 *
 * Cipher: TLS_AES_128_GCM_SHA256 only (AES-NI); no session tickets, no
 * resumption: every connection proves itself afresh.
 *
 * Threads: a tls_ctx is read-only after tls_ctx_new(); SSL objects made
 * from it belong to the conn that holds them (conn.h). */
#ifndef FLOODSHARE_TLS_H
#define FLOODSHARE_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "floodshare/fp.h"
#include "floodshare/status.h"

#define TLS_PSK_SALT "floodshare/psk/v1"   /* versioned: a new KDF gets a new salt */
#define TLS_PSK_IDENTITY "floodshare-psk-v1"
#define TLS_PSK_ITER 100000
#define TLS_PSK_LEN 32
#define TLS_ERR_MAX 256

struct tls_ctx;
struct ssl_st;

enum tls_mode { TLS_PLAIN, TLS_PASSPHRASE, TLS_KEYS };

/* Derives the PSK of passphrase (len bytes) into out. FS_EIO if OpenSSL
 * fails. Pure apart from the CPU it costs (tens of ms). */
fs_status tls_derive_psk(const char *passphrase, size_t len, unsigned char out[TLS_PSK_LEN]);

/* Makes a passphrase-mode context. keylog: NULL, or a file that NSS key
 * log lines are appended to (created mode 0600). FS_EIO with err filled
 * on failure. The caller frees *out with tls_ctx_free(). */
fs_status tls_ctx_new_psk(struct tls_ctx **out, const char *passphrase, size_t len,
                          const char *keylog, char *err, size_t cap);

/* Makes a keys-mode context: this peer's private key from key_file (PEM,
 * as `floodshare keygen` writes it; refused when others may read it), a
 * self-signed certificate of it made in memory, and the n fingerprints a
 * peer's key must match (copied). Both sides check each other. */
fs_status tls_ctx_new_keys(struct tls_ctx **out, const char *key_file,
                           const unsigned char (*trusted)[FP_LEN], size_t n,
                           const char *keylog, char *err, size_t cap);

/* Writes a new Ed25519 private key to path (PEM, mode 0600). Never
 * replaces a file: FS_EEXIST when path exists. Written under a temporary
 * name and linked into place, so path is whole or absent. fp gets the
 * key's fingerprint. err says what went wrong. */
fs_status tls_keygen(const char *path, unsigned char fp[FP_LEN], char *err, size_t cap);

/* The fingerprint of the key in key_file (its public half). */
fs_status tls_key_fingerprint(const char *key_file, unsigned char fp[FP_LEN], char *err,
                              size_t cap);

/* NULL is fine. Call once no SSL made from ctx is alive. */
void tls_ctx_free(struct tls_ctx *ctx);

enum tls_mode tls_ctx_mode(const struct tls_ctx *ctx);

/* A new SSL for the connected socket fd, as server (accepting) or client.
 * NULL on failure. The caller owns it (conn_set_tls takes it). */
struct ssl_st *tls_new_ssl(struct tls_ctx *ctx, int fd, int server);

/* Lets ssl read ahead of the record it decrypts: fewer system calls for
 * a stream of bodies. ssl then reads through a buffer BIO of 256 KiB
 * (freed with ssl), not with OpenSSL's own read-ahead, which copies the
 * bytes it holds again at every record. Call before the handshake, once
 * (twice is once). Only for a conn that is never polled from outside (a
 * fetcher's own): that buffer may hold bytes conn_pending() misses. */
void tls_read_ahead(struct ssl_st *ssl);

/* A constant sentence for why the last handshake on this thread failed
 * (OpenSSL's reason string), for logs. Clears OpenSSL's error queue. */
const char *tls_last_error(void);

#endif
