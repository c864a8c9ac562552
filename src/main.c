/* main.c - the floodshare program: a peer daemon, a CLI and a REPL. */
#include "floodshare/cli.h"

int main(int argc, char **argv)
{
    return cli_main(argc, argv);
}
