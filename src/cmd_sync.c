/* cmd_sync.c - `sync NAME from M [--delete] [--json]`: the argument side of
 * a sync (sync.h does it). */
#include <stdio.h>
#include <string.h>

#include "floodshare/addr.h"
#include "floodshare/cmd.h"
#include "floodshare/cmd_browse.h"
#include "floodshare/ctl.h"
#include "floodshare/name.h"
#include "floodshare/sync.h"

#define SYNC_USAGE "sync NAME from PEER-ID|HOST:PORT [--delete] [--json]"

int cmd_sync_run(const struct cmd_env *e, int argc, char **argv, struct ctl_out *o)
{
    const char *pos[3];
    int npos = 0;
    unsigned flags = 0;
    struct fs_addr from;
    struct sync_result res;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            flags |= SYNC_JSON;
        } else if (strcmp(argv[i], "--delete") == 0) {
            flags |= SYNC_DELETE;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            ctl_print(o, 2, "floodshare: sync: unknown option %s\nusage: peer N " SYNC_USAGE,
                      argv[i]);
            return CTL_EXIT_USAGE;
        } else if (npos < 3) {
            pos[npos++] = argv[i];
        } else {
            ctl_print(o, 2, "floodshare: sync: too many arguments\nusage: peer N " SYNC_USAGE);
            return CTL_EXIT_USAGE;
        }
    }
    if (npos != 3 || strcmp(pos[1], "from") != 0) {
        ctl_print(o, 2, "usage: peer N " SYNC_USAGE);
        return CTL_EXIT_USAGE;
    }
    if (!name_valid(pos[0], strlen(pos[0]))) {
        ctl_print(o, 2, "floodshare: sync: \"%s\" is not an item name of the share (one path "
                  "component, no '/', not . or .., at most %d bytes)", pos[0], NAME_MAX_LEN);
        return CTL_EXIT_USAGE;
    }
    if (cmd_peer_addr(e, o, "sync", pos[2], &from, NULL) < 0)
        return CTL_EXIT_USAGE;
    return sync_run(e, pos[0], &from, flags, o, &res);
}
