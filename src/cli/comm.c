/* ryz comm: not built yet (placeholder until its issue lands). */
#include <stdio.h>

#include "ryz/cli.h"

int ryz_cmd_comm(int argc, char **argv) {
    (void)argc, (void)argv;
    fprintf(stderr, "ryz: error: 'comm' is not implemented in this build\n");
    return 2;
}
