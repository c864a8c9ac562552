/* ctl.h - the control socket between the CLI/REPL and a running peer.
 *
 * A private, local protocol (the socket is mode 0600 in the run directory):
 * the client sends one line of percent-encoded words ("get 3.txt --json");
 * the peer answers with lines "1 text" (for stdout), "2 text" (for stderr),
 * "P ..." (progress), "E ..." (a trace event in trace_encode()'s form, for
 * `watch --raw` and `events --raw`) and finally "= N", the exit code the
 * CLI exits with.
 * A line longer than CTL_MAX_LINE comes in pieces "1+piece" ("+": the same
 * line goes on in the next piece), the last piece "1 rest". */
#ifndef FLOODSHARE_CTL_H
#define FLOODSHARE_CTL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "floodshare/addr.h"
#include "floodshare/msg.h"
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

/* A progress line ("P ..."), sent while a download runs. */
struct ctl_progress {
    uint64_t done, total, resumed;
    uint64_t rate; /* bytes per second, summed over the sources */
    unsigned peer;
    char holder[ADDR_STR_MAX];
    char name[MSG_MAX_NAME + 1];
    unsigned sources; /* holders fetched from at once (a swarmed get), >= 1; the line
                         carries "sources=N" only when N > 1 (an older client ignores
                         it, a line without it means 1) */
};
#define CTL_SOURCES_MAX 64 /* the most sources= a progress line may name */

/* Formats pr as a progress line's text, without "P " and the newline,
 * into out[0..cap). Pure. Its length, or -1 when it does not fit. */
int ctl_format_progress(const struct ctl_progress *pr, char *out, size_t cap);

/* Sends a progress line to the client (dropped if the client has gone). */
void ctl_send_progress(struct ctl_out *o, const struct ctl_progress *pr);

/* Sends a trace event line "E text" (text: trace_encode()'s output, len
 * bytes). Marks o broken when the client is gone or does not read. */
void ctl_send_event(struct ctl_out *o, const char *text, size_t len);

/* 1 if the client has hung up (it sends nothing after its request, so a
 * readable socket means end of stream): marks o broken. Never blocks. */
int ctl_client_gone(struct ctl_out *o);

/* Parses the text of a progress line (after "P "). Pure. FS_EPROTO if it
 * is not one (sources=, when present, must be 1..CTL_SOURCES_MAX). */
fs_status ctl_parse_progress(const char *s, size_t len, struct ctl_progress *out);

/* Parses a request line buf[0..len) (without '\n') into at most max words,
 * decoded into storage[0..cap); argv[i] point into storage. Returns the
 * word count, or -1 with *why set for a bad escape, too many words or no
 * room. Pure: no I/O. */
int ctl_parse_line(const char *buf, size_t len, char **argv, int max, char *storage, size_t cap,
                   const char **why);

/* Runs one request (argv[0] is the command), writing to o; returns the
 * exit code for the client. */
typedef int (*ctl_handler)(void *arg, int argc, char **argv, struct ctl_out *o);

/* Serves one control client on fd: reads its request, has run(arg, ...)
 * execute it, and answers with the output and the exit code. */
void ctl_serve(int fd, ctl_handler run, void *arg);

/* Answers a client we cannot serve with an error and exit code 1. */
void ctl_refuse(int fd, const char *why);

/* How the client shows what a command prints. */
struct ctl_view {
    int quiet; /* drop stdout lines and progress; errors still show */
    /* Called for each progress line (may be NULL: progress is dropped). */
    void (*progress)(void *ctx, const struct ctl_progress *pr);
    /* Called before any other output after progress was shown (to clear a
     * progress bar). May be NULL. */
    void (*clear)(void *ctx);
    /* Called for each trace event line with its text after "E " (not
     * NUL-terminated). May be NULL: the lines are dropped. */
    void (*event)(void *ctx, const char *text, size_t len);
    void *ctx;
};

/* Set by the CLI's SIGINT handler: ctl_call() then hangs up, which cancels
 * the command on the peer (a download stays resumable). */
extern volatile sig_atomic_t ctl_interrupted;

/* Client side: runs argv[0..argc) on the peer whose socket is sock_path,
 * copying its output to out and err as it arrives (view may be NULL).
 * Returns the exit code, CTL_EXIT_NOPEER when nothing answers on the
 * socket, 130 when interrupted. */
int ctl_call(const char *sock_path, int argc, char **argv, FILE *out, FILE *err,
             const struct ctl_view *view);

/* Client side: ctl_call() with the output gathered into *text (malloc'd,
 * NUL-terminated, the caller frees it; NULL unless CTL_EXIT_OK) and the
 * error output dropped. For short machine-read answers such as `ping`. */
int ctl_capture(const char *sock_path, int argc, char **argv, char **text);

/* Client side, for a caller that reads the answer itself (`floodshare
 * watch` reads many peers at once): connects to sock_path and sends the
 * request. CTL_EXIT_OK with *fd (the caller closes it), CTL_EXIT_NOPEER,
 * or CTL_EXIT_USAGE when the request is too long. */
int ctl_open(const char *sock_path, int argc, char **argv, int *fd);

#endif
