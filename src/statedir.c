/* statedir.c - a share's state folder: temporary names, and the sweep of
 * what interrupted transfers left behind (statedir.h). */
#include "floodshare/statedir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "floodshare/log.h"
#include "floodshare/partial.h"
#include "floodshare/share.h"
#include "floodshare/zipio.h"

void statedir_tmp_name(char *out, size_t cap, const char *prefix, const char *suffix)
{
    unsigned char r[6];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        memset(r, 0, sizeof r);
    snprintf(out, cap, "%s-%02x%02x%02x%02x%02x%02x%s", prefix, r[0], r[1], r[2], r[3], r[4],
             r[5], suffix);
}

fs_status statedir_open(int root_fd, int *out)
{
    struct stat sb;
    int made = 0, fd = -1;
    fs_status st;

    *out = -1;
    st = share_open_beneath(root_fd, SHARE_STATE_DIR, O_RDONLY | O_DIRECTORY, 0, &fd);
    if (st == FS_ENOTFOUND && errno == ENOENT) {
        made = mkdirat(root_fd, SHARE_STATE_DIR, 0700) == 0;
        /* EEXIST: another writer made it since the open above. */
        if (made || errno == EEXIST)
            st = share_open_beneath(root_fd, SHARE_STATE_DIR, O_RDONLY | O_DIRECTORY, 0, &fd);
    }
    if (st == FS_ENOTFOUND && errno == ENOTDIR) /* a file of that name: not ours to use */
        st = FS_EREFUSED;
    if (st)
        return st == FS_EREFUSED ? FS_EREFUSED : FS_EIO;
    /* Someone else's folder under our name (made by another user who can
     * write the share) could read or swap our partial downloads. */
    if (fstat(fd, &sb) != 0 || sb.st_uid != geteuid()) {
        close(fd);
        errno = EPERM;
        return FS_EREFUSED;
    }
    if ((sb.st_mode & 07777) != 0700 && fchmod(fd, 0700) != 0) {
        int err = errno;
        close(fd);
        errno = err;
        return FS_EIO;
    }
    /* Its name must be on disk before the partial downloads inside it. */
    if (made)
        (void)fsync(root_fd);
    *out = fd;
    return FS_OK;
}

fs_status statedir_prepare(int root_fd)
{
    int sfd = -1;
    fs_status st = statedir_open(root_fd, &sfd);

    if (st)
        return st;
    int dfd = fcntl(sfd, F_DUPFD_CLOEXEC, 0);
    DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
    if (!d) {
        int err = errno;
        if (dfd >= 0)
            close(dfd);
        close(sfd);
        errno = err;
        return FS_EIO;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        /* A staging folder whose item took its name before the kill. */
        if (!strncmp(e->d_name, "d-", 2)) {
            if (unlinkat(sfd, e->d_name, AT_REMOVEDIR) == 0)
                log_msg(L_INFO, "removed the empty staging folder %s/%s", SHARE_STATE_DIR,
                        e->d_name);
            continue;
        }
        if (strncmp(e->d_name, "out-", 4) && strncmp(e->d_name, "in-", 3) &&
            strncmp(e->d_name, "x-", 2))
            continue;
        zipio_remove_at(sfd, e->d_name);
        log_msg(L_INFO, "removed leftover of an interrupted transfer: %s/%s", SHARE_STATE_DIR,
                e->d_name);
    }
    closedir(d);
    long swept = partial_sweep_at(sfd);
    if (swept > 0)
        log_msg(L_INFO, "removed %ld orphaned partial file(s) from %s", swept, SHARE_STATE_DIR);
    close(sfd);
    return FS_OK;
}
