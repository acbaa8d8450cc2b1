#include "ryz/cli.h"
int ryz_cmd_bench(int argc, char **argv) { (void)argc; (void)argv; return 2; }
