/* repl.c - the interactive shell over the peers of a run directory.
 *
 * On a terminal the line is read with libedit's own interface (histedit.h),
 * not its readline emulation: the emulation cannot bind a key to a function
 * of ours, and it turns Ctrl-C at the prompt into a SIGINT that ends the
 * REPL. Here, while a line is being edited, the terminal's ISIG is off, so
 * Ctrl-C is a key like any other, bound to repl_ctrl_c(): it shows "^C",
 * drops the line and gives a fresh prompt, as bash does. While a command
 * runs, libedit has put the terminal back as it was (ISIG on): Ctrl-C is a
 * SIGINT again, which a `get` (cli.c's call_interruptible) or a `watch`
 * takes as "stop"; any other command lets it pass (repl_on_sigint), so a
 * stray Ctrl-C never ends the REPL. Leaving takes `exit` or Ctrl-D. */
#include <errno.h>
#include <histedit.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

#include "floodshare/cli.h"
#include "floodshare/ctl.h"

#define REPL_MAX_WORDS 32
#define REPL_MAX_LINE 4096
#define REPL_HISTORY_SIZE 1000 /* lines kept in ~/.floodshare_history */
#define REPL_PROMPT "floodshare> "

static char *read_plain(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);

    if (n < 0) {
        free(line);
        return NULL;
    }
    if (n > 0 && line[n - 1] == '\n')
        line[n - 1] = '\0';
    return line;
}

static void history_path(char *out, size_t cap)
{
    const char *home = getenv("HOME");
    snprintf(out, cap, "%s/.floodshare_history", home && *home ? home : ".");
}

static char *repl_prompt(EditLine *el)
{
    (void)el;
    return REPL_PROMPT;
}

/* Set by repl_ctrl_c() while el_gets() runs: the line it returns is dropped. */
static int repl_cancelled;

/* Ctrl-C while editing: show "^C" at the end of the line, then end the line
 * with the newline key (so libedit moves to a fresh line as it does for
 * Enter); the loop sees repl_cancelled and drops what was typed. */
static unsigned char repl_ctrl_c(EditLine *el, int ch)
{
    (void)ch;
    const LineInfo *li = el_line(el);

    repl_cancelled = 1;
    el_cursor(el, (int)(li->lastchar - li->cursor));
    el_insertstr(el, "^C");
    el_push(el, "\n");
    return CC_REFRESH;
}

/* A SIGINT while a command that does not stop on it runs (`peers`, `ls`):
 * nothing, so that it does not end the REPL. SA_RESTART: the command goes on. */
static void repl_on_sigint(int sig)
{
    (void)sig;
}

/* The terminal session: libedit, its history, and where that is saved. */
struct term {
    EditLine *el;
    History *hist;
    HistEvent ev;
    char path[4096];
};

static int term_open(struct term *t)
{
    memset(t, 0, sizeof *t);
    history_path(t->path, sizeof t->path);
    t->hist = history_init();
    t->el = el_init("floodshare", stdin, stdout, stderr);
    if (!t->hist || !t->el)
        return -1;
    history(t->hist, &t->ev, H_SETSIZE, REPL_HISTORY_SIZE);
    history(t->hist, &t->ev, H_SETUNIQUE, 1);
    history(t->hist, &t->ev, H_LOAD, t->path); /* none yet is fine */
    el_set(t->el, EL_EDITOR, "emacs");
    el_set(t->el, EL_HIST, history, t->hist);
    el_set(t->el, EL_PROMPT, repl_prompt);
    el_set(t->el, EL_SIGNAL, 1); /* window size changes, suspend and resume */
    el_source(t->el, NULL);      /* ~/.editrc, as other libedit programs */
    /* After ~/.editrc, so that these two win: Ctrl-C is a key while editing. */
    el_set(t->el, EL_SETTY, "-d", "-isig", NULL);
    /* el_wset with literals: el_set would copy the two names and never free them. */
    el_wset(t->el, EL_ADDFN, L"fs-cancel-line", L"drop the line, as Ctrl-C in bash", repl_ctrl_c);
    el_set(t->el, EL_BIND, "^C", "fs-cancel-line", NULL);
    return 0;
}

static void term_close(struct term *t)
{
    if (t->el)
        el_end(t->el);
    if (t->hist)
        history_end(t->hist);
}

/* Reads one line into a malloc'ed string without its newline; NULL at the
 * end (Ctrl-D on an empty line, or stdin gone). *cancelled is 1 when the
 * line was dropped with Ctrl-C (an empty string is returned then). */
static char *term_read(struct term *t, int *cancelled)
{
    int count;

    for (;;) {
        repl_cancelled = 0;
        const char *s = el_gets(t->el, &count);
        *cancelled = repl_cancelled;
        repl_cancelled = 0;
        if (*cancelled)
            return strdup("");
        if (!s && count < 0 && errno == EINTR)
            continue; /* a signal (not the keyboard's: ISIG is off) while editing */
        if (!s)
            return NULL;
        size_t n = strcspn(s, "\r\n");
        char *line = strndup(s, n);
        return line;
    }
}

/* Adds the line to the history and saves the whole history at once, so
 * that the file holds every command typed so far whatever happens next. */
static void term_remember(struct term *t, const char *line)
{
    history(t->hist, &t->ev, H_ENTER, line);
    history(t->hist, &t->ev, H_SAVE, t->path); /* mode 0600: libedit's fchmod */
}

int cli_repl(const char *run_dir)
{
    int tty = isatty(STDIN_FILENO);
    char storage[REPL_MAX_LINE];
    char *argv[REPL_MAX_WORDS];
    int code = CTL_EXIT_OK;
    struct term t;
    struct sigaction sa, old_int;

    if (tty && term_open(&t) < 0) {
        term_close(&t);
        fprintf(stderr, "floodshare: cannot set up line editing; reading lines as they come\n");
        tty = 0;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = repl_on_sigint;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (tty) {
        sigaction(SIGINT, &sa, &old_int);
        printf("floodshare %s: peers in %s. Type `help`, `peers`, `peer N get NAME`, `exit`.\n",
               FS_VERSION, run_dir);
        fflush(stdout);
    }
    int eof = 0;
    for (;;) {
        int cancelled = 0;
        char *line = tty ? term_read(&t, &cancelled) : read_plain();
        if (!line) {
            eof = 1;
            break;
        }
        if (cancelled) {
            free(line);
            continue;
        }
        const char *why = NULL;
        int argc = cli_split(line, argv, REPL_MAX_WORDS, storage, sizeof storage, &why);
        if (argc != 0 && tty)
            term_remember(&t, line);
        free(line);
        if (argc < 0) {
            fprintf(stderr, "floodshare: %s\n", why);
            code = CTL_EXIT_USAGE;
            continue;
        }
        if (argc == 0)
            continue;
        if (strcmp(argv[0], "exit") == 0 || strcmp(argv[0], "quit") == 0)
            break;
        if (strcmp(argv[0], "serve") == 0) {
            fprintf(stderr, "floodshare: start peers from a shell (scripts/topology up), not the REPL\n");
            code = CTL_EXIT_USAGE;
            continue;
        }
        if (strcmp(argv[0], "help") == 0) {
            cli_repl_help(stdout);
            code = CTL_EXIT_OK;
            continue;
        }
        code = cli_exec(run_dir, argc, argv);
        fflush(stdout);
        if (tty) /* `web` leaves its own handler behind */
            sigaction(SIGINT, &sa, NULL);
    }
    if (tty) {
        if (eof)
            printf("\n"); /* Ctrl-D leaves the cursor after the prompt */
        sigaction(SIGINT, &old_int, NULL);
        term_close(&t);
    }
    return code;
}
