/* net.h - blocking sockets with deadlines.
 *
 * Every read and write here takes a timeout in milliseconds and waits with
 * poll(2), so no call can block forever on a silent or stalled peer. All
 * descriptors are created close-on-exec. */
#ifndef FLOODSHARE_NET_H
#define FLOODSHARE_NET_H

#include <stddef.h>
#include <stdint.h>

#include "floodshare/addr.h"
#include "floodshare/status.h"

/* Monotonic clock in milliseconds. */
uint64_t net_now_ms(void);

/* Listens on host:port (port 0 picks a free one; *bound gets the real port
 * when bound is not NULL). SO_REUSEADDR is set so a restarted peer does not
 * hit "address already in use". FS_ECONNECT with errno kept on failure. */
fs_status net_listen_tcp(const char *host, uint16_t port, int *fd, uint16_t *bound);

/* Listens on a UNIX socket at path with mode 0600. A stale socket file
 * (nobody accepting) is replaced; a live one gives FS_EEXIST. */
fs_status net_listen_unix(const char *path, int *fd);

/* Connects within timeout_ms. FS_ECONNECT or FS_ETIMEDOUT on failure. */
fs_status net_connect_tcp(const struct fs_addr *to, int timeout_ms, int *fd);
fs_status net_connect_unix(const char *path, int timeout_ms, int *fd);
/* Like net_connect_tcp(), from the local address from (a host, port 0)
 * when it is one of this machine's: a peer configured with host 127.0.0.3
 * then fetches from 127.0.0.3, the address it advertises. NULL, "",
 * 0.0.0.0 or an address that is not local: the kernel picks, as usual. */
fs_status net_connect_tcp_from(const struct fs_addr *to, const char *from, int timeout_ms,
                               int *fd);

/* Waits until fd is readable (1), or timeout_ms passes (0); -1 on error. */
int net_wait_readable(int fd, int timeout_ms);

/* Writes all n bytes, each wait for buffer space bounded by timeout_ms.
 * Never raises SIGPIPE. FS_ETIMEDOUT, FS_ECLOSED or FS_EIO on failure. */
fs_status net_write_all(int fd, const void *buf, size_t n, int timeout_ms);

/* Reads 1..cap bytes into buf within timeout_ms; *got gets the count.
 * FS_ECLOSED on end of stream, FS_ETIMEDOUT, FS_EIO. */
fs_status net_read_some(int fd, void *buf, size_t cap, size_t *got, int timeout_ms);

/* The remote address of a connected TCP socket (numeric), or "?:0"-like
 * zeroes when unknown. */
void net_peer_addr(int fd, struct fs_addr *out);

#endif
