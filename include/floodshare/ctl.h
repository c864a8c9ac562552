/* ctl.h - the control socket between the CLI/REPL and a running peer.
 *
 * A private, local protocol (the socket is mode 0600 in the run directory):
 * the client sends one line of percent-encoded words ("get 3.txt --json");
 * the peer answers with lines "1 text" (for stdout), "2 text" (for stderr)
 * and finally "= N", the exit code the CLI exits with. */
#ifndef FLOODSHARE_CTL_H
#define FLOODSHARE_CTL_H

#include <stddef.h>
#include <stdio.h>

#include "floodshare/status.h"

#define CTL_MAX_LINE 4096 /* bytes of a request line */
#define CTL_MAX_ARGS 16   /* words in a request */

/* Exit codes (the CLI's contract; see README). */
enum {
    CTL_EXIT_OK = 0,
    CTL_EXIT_FAIL = 1,       /* not found within TTL, every holder failed, refused */
    CTL_EXIT_USAGE = 64,     /* EX_USAGE */
    CTL_EXIT_NOPEER = 69,    /* EX_UNAVAILABLE: no answer on the control socket */
    CTL_EXIT_CONFIG = 78,    /* EX_CONFIG */
};

struct peer;

/* Where a command writes its output: lines go to the client as they are
 * printed (so progress shows while a command runs). `broken` becomes 1 when
 * the client has gone (e.g. Ctrl-C): commands may stop early. */
struct ctl_out {
    int fd;
    int broken;
};

/* Prints to the client's stdout (stream 1) or stderr (stream 2). */
void ctl_print(struct ctl_out *o, int stream, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes s (len bytes) to the client's stdout, split into lines. */
void ctl_write(struct ctl_out *o, int stream, const char *s, size_t len);

/* Parses a request line buf[0..len) (without '\n') into at most max words,
 * decoded into storage[0..cap); argv[i] point into storage. Returns the
 * word count, or -1 with *why set for a bad escape, too many words or no
 * room. Pure: no I/O. */
int ctl_parse_line(const char *buf, size_t len, char **argv, int max, char *storage, size_t cap,
                   const char **why);

/* Serves one control client on fd (read request, run it, answer). */
void ctl_serve(struct peer *p, int fd);

/* Answers a client we cannot serve with an error and exit code 1. */
void ctl_refuse(int fd, const char *why);

/* Client side: runs argv[0..argc) on the peer whose socket is sock_path,
 * copying its output to out and err as it arrives. Returns the exit code,
 * CTL_EXIT_NOPEER when nothing answers on the socket. */
int ctl_call(const char *sock_path, int argc, char **argv, FILE *out, FILE *err);

#endif
