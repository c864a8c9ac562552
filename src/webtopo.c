/* webtopo.c - the dashboard's reshaping buttons (webtopo.h). */
#include "floodshare/webtopo.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "floodshare/name.h"

/* A peer id as the script takes it: 1..65535, digits only (no sign, no
 * space, no leading zero that argparse would read differently). */
static int is_peer_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 5 || s[0] == '0')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return atol(s) <= 65535;
}

static const char *item_problem(const char *item)
{
    size_t n = strlen(item);
    if (n && item[n - 1] == '/')
        n--; /* a folder */
    if (item[0] == '-')
        return "starts with '-'";
    if (memchr(item, ':', n))
        return "has a ':' (the dashboard seeds text files and folders, no :size=)";
    if (!path_valid(item, n))
        return "is not a share path (names joined by '/', no '.', '..' or empty part)";
    if (strncmp(item, ".floodshare", 11) == 0 && (n == 11 || item[11] == '/'))
        return "is inside the peer's own state folder";
    return NULL;
}

const char *webtopo_check(int argc, char *const *argv, char *why, size_t cap)
{
    static const struct {
        const char *verb;
        int ids; /* peer ids that follow */
    } verbs[] = {{"remove-peer", 1}, {"link", 2}, {"unlink", 2}};

    if (argc < 1) {
        snprintf(why, cap, "no topology command");
        return why;
    }
    if (strcmp(argv[0], "add-peer") == 0) {
        if (argc == 1)
            return NULL;
        if (strcmp(argv[1], "--files") != 0) {
            snprintf(why, cap, "usage: add-peer [--files ITEM ...]");
            return why;
        }
        if (argc - 2 > WEBTOPO_MAX_FILES) {
            snprintf(why, cap, "add-peer: at most %d ITEMs from the dashboard", WEBTOPO_MAX_FILES);
            return why;
        }
        for (int i = 2; i < argc; i++) {
            const char *p = item_problem(argv[i]);
            if (p) {
                snprintf(why, cap, "add-peer: \"%.80s\" %s", argv[i], p);
                return why;
            }
        }
        return NULL;
    }
    for (size_t v = 0; v < sizeof verbs / sizeof verbs[0]; v++) {
        if (strcmp(argv[0], verbs[v].verb) != 0)
            continue;
        int ok = argc == 1 + verbs[v].ids;
        for (int i = 1; ok && i < argc; i++)
            ok = is_peer_id(argv[i]);
        if (ok)
            return NULL;
        snprintf(why, cap, "usage: %s %s (peer ids 1..65535)", verbs[v].verb,
                 verbs[v].ids == 1 ? "N" : "A B");
        return why;
    }
    snprintf(why, cap, "the dashboard's topology buttons run add-peer, remove-peer, link and "
             "unlink, not \"%.40s\"", argv[0]);
    return why;
}

/* The child: stdout/stderr to the pipes, nothing else of ours open. */
static void child_exec(const char *script, const char *bin, const char *run_dir, int argc,
                       char *const *argv, int out_fd, int err_fd)
{
    char *args[WEBTOPO_MAX_FILES + 12];
    int n = 0;

    setpgid(0, 0); /* so that a timeout can stop the script and its helpers */
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
        _exit(126);
    closefrom(3); /* the listening socket, pages' sockets, the token file's folder */
    args[n++] = (char *)script;
    for (int i = 0; i < argc && n < (int)(sizeof args / sizeof args[0]) - 5; i++)
        args[n++] = argv[i];
    args[n++] = "--run";
    args[n++] = (char *)run_dir;
    args[n++] = "--bin";
    args[n++] = (char *)bin;
    args[n] = NULL;
    execv(script, args);
    fprintf(stderr, "floodshare web: cannot run %s: %s\n", script, strerror(errno));
    _exit(126);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Appends what fd has to buf (kept up to WEBTOPO_OUT_MAX); 0 at EOF. */
static int drain(int fd, char *buf, size_t *len)
{
    char tmp[4096];
    ssize_t r = read(fd, tmp, sizeof tmp);
    if (r < 0)
        return errno == EINTR || errno == EAGAIN ? 1 : 0;
    if (r == 0)
        return 0;
    size_t take = (size_t)r;
    if (take > WEBTOPO_OUT_MAX - *len)
        take = WEBTOPO_OUT_MAX - *len;
    memcpy(buf + *len, tmp, take);
    *len += take;
    return 1;
}

int webtopo_run(const char *script, const char *bin, const char *run_dir, int argc,
                char *const *argv, char **out, char **err)
{
    int po[2] = {-1, -1}, pe[2] = {-1, -1};
    size_t olen = 0, elen = 0;
    char *ob = calloc(1, WEBTOPO_OUT_MAX + 1), *eb = calloc(1, WEBTOPO_OUT_MAX + 1);

    *out = ob;
    *err = eb;
    if (!ob || !eb)
        return -1;
    if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0) {
        snprintf(eb, WEBTOPO_OUT_MAX, "floodshare web: pipe: %s\n", strerror(errno));
        if (po[0] >= 0) {
            close(po[0]);
            close(po[1]);
        }
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0)
        child_exec(script, bin, run_dir, argc, argv, po[1], pe[1]);
    close(po[1]);
    close(pe[1]);
    if (pid < 0) {
        snprintf(eb, WEBTOPO_OUT_MAX, "floodshare web: fork: %s\n", strerror(errno));
        close(po[0]);
        close(pe[0]);
        return -1;
    }
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    long long deadline = now_ms() + WEBTOPO_TIMEOUT_MS;
    int open_fds = 2, killed = 0;
    while (open_fds > 0) {
        long long left = deadline - now_ms();
        if (left <= 0) {
            kill(-pid, SIGKILL);
            killed = 1;
            break;
        }
        if (poll(fds, 2, (int)left) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                if (!drain(fds[i].fd, i ? eb : ob, i ? &elen : &olen)) {
                    close(fds[i].fd);
                    fds[i].fd = -1;
                    open_fds--;
                }
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0)
            close(fds[i].fd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    ob[olen] = '\0';
    eb[elen] = '\0';
    if (killed) {
        snprintf(eb + elen, WEBTOPO_OUT_MAX + 1 - elen, "floodshare web: stopped after %d s\n",
                 WEBTOPO_TIMEOUT_MS / 1000);
        return 124;
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}
