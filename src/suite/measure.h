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
 * CUDA runtime and devices (as `ryz info` says) on one line, kind
 * RYZ_KIND_SUITE. `threads` is per rank. */
ryz_status ryz_measure_machine(ryz_comm *world, const ryz_suite *s, ryz_results_meta *meta);
/* Gathers RANK_NFIELDS doubles per rank (this rank's weights, KV and
 * scratch bytes in be's memory (device bytes on cuda), its peak_rss in
 * bytes, comm_s and wall_s) into out (size * RANK_NFIELDS) on every rank. */
ryz_status ryz_measure_ranks(ryz_comm *c, const ryz_backend *be, double peak_rss, double comm_s,
                             double wall_s, double *out);
/* One call of a rank's comm records, for grouping by (op, bytes). */
typedef struct {
    ryz_comm_op op;
    uint64_t bytes;
    size_t i; /* index in call order */
} ryz_call_ref;
/* qsort order of calls: by (op, bytes), then call order. */
int ryz_call_cmp(const void *a, const void *b);
/* In calls[0..n) sorted by ryz_call_cmp, the end of the (op, bytes)
 * group that starts at i. */
size_t ryz_call_group_end(const ryz_call_ref *calls, size_t n, size_t i);
/* FNV-1a hash of the (op, bytes) sequence of n calls. */
uint64_t ryz_calls_hash(const ryz_call_ref *calls, size_t n);
/* What a TP group's ranks agree on before gathering anything sized by
 * their records: the record count and ryz_calls_hash of them. 16 bytes,
 * sent as 4 floats. */
typedef struct {
    uint64_t n, hash;
} ryz_calls_key;

/* Whether the `ryz comm` harness can run (op, bytes) on k ranks alone:
 * not a barrier, and a whole number of floats per rank. */
int ryz_replayable(ryz_comm_op op, uint64_t bytes, int k);
/* What came before call g[j], for its replay: seq[j] = the bytes read
 * (streamed, indexed by call), at most ryz_bench_evict_enough(), and
 * gaps[j] = the seconds since the comm's previous call ended (gap, by
 * call), at most RYZ_REPLAY_MAX_GAP_S; returns how many read anything. */
size_t ryz_replay_reads(const ryz_call_ref *g, size_t n, const double *streamed,
                        const double *gap, uint64_t *seq, double *gaps);
/* Past this an idle gap replays as this: a cap that keeps the replay short
 * (a run's first call follows seconds of the suite's own work), not where
 * Open MPI's latency stops growing (it still grows at 10 ms, docs/comm.md);
 * the model's own gaps are well under it. */
#define RYZ_REPLAY_MAX_GAP_S 0.01
/* Runs (op, bytes) alone on c with the harness: warmup calls, then iters
 * timed ones, each after reading seq[i * n / iters] bytes and idling until
 * gaps[i * n / iters] seconds after the previous call (n 0: back to back,
 * the slowest rank's latency; else the fastest's), in place where ryz_comm
 * can say so. *p50 gets their p50 in us (0 when the harness ran no row)
 * and samples (NULL: not wanted) the iters latencies. */
ryz_status ryz_replay_run(ryz_comm *c, ryz_comm_op op, uint64_t bytes, int iters, int warmup,
                          const uint64_t *seq, const double *gaps, size_t n, double *p50,
                          float *samples);

/* Aggregate read bandwidth (bytes/s) of the group's ranks streaming at
 * once, each with `threads` threads over its own `mib` MiB (collective
 * over group). Every pass
 * starts on a barrier and the aggregate of a pass is all bytes over the
 * slowest rank's time: summing each rank's best pass would count passes
 * that ran while the others had finished, and overstate it; the best pass
 * counts. A rank out of memory for its buffer (or `starved`, the test
 * hook) makes every rank return ENOMEM, naming how many ranks lack it. */
ryz_status ryz_probe_group(ryz_comm *group, int threads, int mib, int starved, double *bw);

/* How much of the time the group's ranks keep busy when they read in
 * lock-step, as sharded decode does between collectives: each rank reads
 * slices of `slice` bytes (within [4 KiB, `mib` MiB]) of its own buffer, the
 * ranks starting each slice together (a barrier), and *eff is
 * ryz_lockstep_efficiency of their times (1: no rank ever waits). With
 * equal slices on every rank, what it misses of 1 is the host's jitter
 * alone: identical reads on the development VM's two cores keep
 * 0.92-0.97 (docs/performance.md, "session 19"). With threads > 1 each
 * slice also starts and joins its threads, which the model's pool does
 * not. Collective over group; ENOMEM as ryz_probe_group. */
ryz_status ryz_probe_lockstep(ryz_comm *group, int threads, int mib, size_t slice, int starved,
                              double *eff);

/* Collective over group: OK when every rank passes ok = 1, else ENOMEM
 * "WHAT: N of K ranks are out of memory for MIB MiB" on every rank, so
 * that a rank that could not allocate its probe buffer leaves none of the
 * others waiting in the probe's collectives. */
ryz_status ryz_probe_agree(ryz_comm *group, int ok, const char *what, int mib);
/* The same agreement for a failure other than memory: `code` and "WHAT: N
 * of K ranks FAILED" on every rank where any passes ok = 0 (each failing
 * rank says its own reason first, since the others cannot know it). */
ryz_status ryz_probe_agree_on(ryz_comm *group, int ok, const char *what, ryz_status code,
                              const char *failed);

/* The suite's processes on world rank 0's host, whose CPU time is the
 * suite's own when a run's load is measured there (rank 0 only). */
#define RYZ_LOAD_MAX_PIDS 64
typedef struct {
    int pid[RYZ_LOAD_MAX_PIDS];
    int n;
} ryz_local_ranks;
/* Collective over world: into *out on rank 0, the pids of the ranks on its
 * host (hostname and pid gathered), itself first; the rest get n 0, and
 * so does rank 0 past RYZ_LOAD_MAX_PIDS such ranks (the load is then not
 * measured rather than measured wrong). */
ryz_status ryz_measure_local_ranks(ryz_comm *world, ryz_local_ranks *out);
/* Test hook: whether environment variable `var` names `rank`, whose
 * allocation then fails as if out of memory (RYZ_TEST_PROBE_NOMEM: the
 * bandwidth probe, world rank; RYZ_TEST_LOCKSTEP_NOMEM: the lock-step
 * probe, world rank; RYZ_TEST_STEP_PROBE_NOMEM: the probe between decode
 * steps, world rank; RYZ_TEST_RECORDS_NOMEM: the collective records, rank
 * in the TP group), or (RYZ_TEST_STEP_READ_NOMEM, world rank) whose every
 * slice read between decode steps fails (EIO). */
int ryz_measure_starved(const char *var, int rank);

#endif
