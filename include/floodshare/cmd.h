/* cmd.h - the commands a running peer executes for the CLI and REPL:
 * get, search, ls, config, modify, stats, ping. */
#ifndef FLOODSHARE_CMD_H
#define FLOODSHARE_CMD_H

struct peer;
struct ctl_out;

/* Runs argv[0..argc) (argv[0] is the command, "--json" may appear among
 * the arguments) and writes its output to o. Returns the exit code. */
int cmd_run(struct peer *p, int argc, char **argv, struct ctl_out *o);

#endif
