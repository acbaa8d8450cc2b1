/* ryz project: not built yet (placeholder until its issue lands). */
#include <stdio.h>

#include "ryz/cli.h"

int ryz_cmd_project(int argc, char **argv) {
    (void)argc, (void)argv;
    fprintf(stderr, "ryz: error: 'project' is not implemented in this build\n");
    return 2;
}
