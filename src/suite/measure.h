/* Measurement helpers of the suite runner (private to suite/). */
#ifndef RYZ_SUITE_MEASURE_H
#define RYZ_SUITE_MEASURE_H

#include "ryz/comm.h"
#include "ryz/results.h"
#include "ryz/suite.h"

/* Per-rank figures gathered to a TP group's rank 0. */
enum { RANK_WEIGHTS, RANK_KV, RANK_SCRATCH, RANK_RSS, RANK_COMM_S, RANK_WALL_S, RANK_NFIELDS };

/* Fills the machine attributes of meta (collective over world: hostnames
 * are gathered): backends as the suite's distinct "backend+comm" pairs
 * ("cpu+mpi,cuda+nccl"), device "cpu", or for a suite with a cuda case the
 * CUDA runtime and devices (as `ryz info` says) on one line. `threads` is
 * per rank. */
ryz_status ryz_measure_machine(ryz_comm *world, const ryz_suite *s, ryz_results_meta *meta);
/* Gathers RANK_NFIELDS doubles per rank (this rank's weights, KV and
 * scratch bytes in be's memory (device bytes on cuda), its peak RSS, comm_s
 * and wall_s) into out (size * RANK_NFIELDS) on every rank. */
ryz_status ryz_measure_ranks(ryz_comm *c, const ryz_backend *be, double comm_s, double wall_s,
                             double *out);
/* Test hook: whether environment variable `var` names `rank`, whose
 * allocation then fails as if out of memory (RYZ_TEST_PROBE_NOMEM: the
 * bandwidth probe, world rank; RYZ_TEST_RECORDS_NOMEM: the collective
 * records, rank in the TP group). */
int ryz_measure_starved(const char *var, int rank);

#endif
