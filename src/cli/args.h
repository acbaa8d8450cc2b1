/* Option helpers private to cli/. */
#ifndef RYZ_CLI_ARGS_H
#define RYZ_CLI_ARGS_H

#include "ryz/core.h"

/* Parses option `opt`'s value v as an integer in [lo, hi]. */
ryz_status ryz_arg_int(const char *opt, const char *v, long lo, long hi, int *out);
/* The value after argv[*i] (advancing *i), or NULL at the end. */
const char *ryz_arg_value(int argc, char **argv, int *i);

#endif
