/* cli.h - the command line and the REPL (one parser for both). */
#ifndef FLOODSHARE_CLI_H
#define FLOODSHARE_CLI_H

#include <stddef.h>
#include <stdio.h>

/* main(): options, then one command or the REPL. Returns the exit code. */
int cli_main(int argc, char **argv);

/* Runs one command (already split into words) against the peers of
 * run_dir: "peer ID CMD ...", "peers [--json]", "help". Returns the exit
 * code (0, 1, 64, 69, 78). */
int cli_exec(const char *run_dir, int argc, char **argv);

/* Splits a REPL line into words, honouring '...' and "..." quotes and
 * backslash escapes, into storage[0..cap). Returns the word count, or -1
 * with *why set (unterminated quote, too many words, too long). Pure. */
int cli_split(const char *line, char **argv, int max, char *storage, size_t cap, const char **why);

/* Reads commands from the terminal (line editing and history via libedit)
 * or, when stdin is not a terminal, line by line. On a terminal, Ctrl-C
 * drops the line being typed (or stops a running get or watch) and the
 * history file, ~/.floodshare_history, is saved after every line. Leaves
 * on `exit` or end of input (Ctrl-D). Returns the exit code of the last
 * command. */
int cli_repl(const char *run_dir);

/* The REPL's `help`: its commands as typed at its prompt, to f. */
void cli_repl_help(FILE *f);

#endif
