/* cmd.h - the commands a running peer executes for the CLI and REPL:
 * get, search, ls, config, modify, stats, transfers, link, pause, watch,
 * events, ping. */
#ifndef FLOODSHARE_CMD_H
#define FLOODSHARE_CMD_H

struct ctl_out;
struct flood;
struct node;
struct syncpairs;
struct xfer_plane;

/* What the commands act on: the node, and its flood and transfer planes.
 * All borrowed; they outlive every command. */
struct cmd_env {
    struct node *node;
    struct flood *flood;
    struct xfer_plane *xfers;
    struct syncpairs *pairs; /* [sync]'s pairs (syncpair.h); NULL when none */
};

/* Runs argv[0..argc) (argv[0] is the command, "--json" may appear among
 * the arguments) and writes its output to o. Returns the exit code. */
int cmd_run(const struct cmd_env *e, int argc, char **argv, struct ctl_out *o);

/* `send NAME to M [--json]` (cmd_send.c): offers an item of this peer's
 * share to peer M, which pulls it (offer.h); relays M's progress to o.
 * Returns get's exit codes. */
int cmd_send_run(const struct cmd_env *e, int argc, char **argv, struct ctl_out *o);

/* `sync NAME from M [--delete] [--json]` (cmd_sync.c): makes this peer's
 * item NAME identical to M's with sync_run() (sync.h). Returns get's exit
 * codes; 64 for bad arguments, naming what was wrong. */
int cmd_sync_run(const struct cmd_env *e, int argc, char **argv, struct ctl_out *o);

#endif
