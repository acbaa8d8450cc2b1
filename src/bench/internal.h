/* Private to src/bench: what the harness and the printers share. */
#ifndef RYZ_BENCH_INTERNAL_H
#define RYZ_BENCH_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include "ryz/bench.h"

/* One rank as the header lists it; 64 bytes, gathered as 16 floats. */
typedef struct {
    int32_t pid;
    char host[60];
} bench_rank_info;

/* The printed reduction of op: "sum" or "none". */
const char *bench_redop(ryz_comm_op op);

/* nccl-tests-style output, rank 0 only. The header names the run and every
 * rank; each op gets a table head; rows print as they complete. */
void bench_print_header(FILE *f, const ryz_bench_opts *o, const char *backend,
                        const bench_rank_info *ranks, int k);
void bench_print_table_head(FILE *f, ryz_comm_op op);
void bench_print_row(FILE *f, const ryz_bench_row *row);
void bench_print_footer(FILE *f, const ryz_bench_report *r);

#endif
