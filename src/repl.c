/* repl.c - the interactive shell over the peers of a run directory. */
#include <editline/readline.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "floodshare/cli.h"
#include "floodshare/ctl.h"

#define REPL_MAX_WORDS 32
#define REPL_MAX_LINE 4096

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

int cli_repl(const char *run_dir)
{
    int tty = isatty(STDIN_FILENO);
    char hist[4096], storage[REPL_MAX_LINE];
    char *argv[REPL_MAX_WORDS];
    int code = CTL_EXIT_OK;

    if (tty) {
        history_path(hist, sizeof hist);
        using_history();
        read_history(hist);
        printf("floodshare %s: peers in %s. Type `help`, `peers`, `peer N get NAME`, `exit`.\n",
               FS_VERSION, run_dir);
    }
    for (;;) {
        char *line = tty ? readline("floodshare> ") : read_plain();
        if (!line)
            break;
        const char *why = NULL;
        int argc = cli_split(line, argv, REPL_MAX_WORDS, storage, sizeof storage, &why);
        if (argc > 0 && tty)
            add_history(line);
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
        code = cli_exec(run_dir, argc, argv);
        fflush(stdout);
    }
    if (tty) {
        write_history(hist);
        printf("\n");
    }
    return code;
}
