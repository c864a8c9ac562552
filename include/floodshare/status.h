/* status.h - the one status type of floodshare.
 *
 * Every fallible function returns fs_status: FS_OK (0) on success, a negative
 * value otherwise, so `if (st)` means "failed". Names and messages come from
 * one list so they can never drift apart. */
#ifndef FLOODSHARE_STATUS_H
#define FLOODSHARE_STATUS_H

#define FS_STATUS_MAP(X)                                   \
    X(OK, 0, "ok")                                         \
    X(NEED_MORE, -1, "incomplete input, read more")        \
    X(ENOMEM, -2, "out of memory")                         \
    X(EIO, -3, "input/output error")                       \
    X(ETIMEDOUT, -4, "timed out")                          \
    X(ECLOSED, -5, "connection closed")                    \
    X(EPROTO, -6, "malformed message")                     \
    X(ETOOBIG, -7, "too large")                            \
    X(ENOTFOUND, -8, "not found")                          \
    X(EEXIST, -9, "already exists")                        \
    X(EBADNAME, -10, "bad name")                           \
    X(ECONFIG, -11, "bad configuration")                   \
    X(EMISMATCH, -12, "checksum or size mismatch")         \
    X(EZIP, -13, "bad archive")                            \
    X(EREFUSED, -14, "refused")                            \
    X(ECONNECT, -15, "cannot connect")                     \
    X(EINVAL, -16, "invalid argument")                     \
    X(EBUSY, -17, "busy")                                  \
    X(ECANCELED, -18, "cancelled")                         \
    X(ENOTSUP, -19, "not supported by the other side")     \
    X(EAUTH, -20, "failed the TLS passphrase or key check")

typedef enum {
#define FS_STATUS_ENUM(name, value, text) FS_##name = (value),
    FS_STATUS_MAP(FS_STATUS_ENUM)
#undef FS_STATUS_ENUM
} fs_status;

/* A constant string describing st; never NULL, never a static buffer. */
const char *fs_strerror(int st);

/* The short name of st ("ETIMEDOUT"); "UNKNOWN" for values outside the list. */
const char *fs_status_name(int st);

#endif
