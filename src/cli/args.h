/* Option helpers private to cli/. */
#ifndef RYZ_CLI_ARGS_H
#define RYZ_CLI_ARGS_H

#include "ryz/core.h"

/* Parses option `opt`'s value v as an integer in [lo, hi]. */
ryz_status ryz_arg_int(const char *opt, const char *v, long lo, long hi, int *out);
/* The value after argv[*i] (advancing *i), or NULL at the end. */
const char *ryz_arg_value(int argc, char **argv, int *i);
/* EINVAL when two of the n files of a command are one and at least one of
 * them is written: paths[0..n_in) are read, the rest written, each named
 * on the command line by opts[i] ("FILE", "-o", "--junit"); NULL paths
 * are skipped. Paths that exist are one file when device and inode agree,
 * others when their resolved folders and names do. Called before any
 * work, so that no output lands on an input or on another output. */
ryz_status ryz_args_distinct_files(int n, int n_in, const char *const *opts,
                                   const char *const *paths);

#endif
