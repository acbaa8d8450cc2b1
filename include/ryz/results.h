/* results: one HDF5 file per run (DESIGN section 5), its reader, and the
 * in-memory tables both share. Tables are arrays of plain rows; the HDF5
 * file holds each as a compound dataset of the same fields. */
#ifndef RYZ_RESULTS_H
#define RYZ_RESULTS_H

#include <stdint.h>
#include <stdio.h>

#include "ryz/core.h"

/* Layout version written. 2 added /timing read_bandwidth_gbs and the
 * /collectives last-arriver, wait and isolated columns; 3 the
 * /collectives streamed bytes and the isolated reference after streaming
 * them; 4 the root attribute blas; 5 the /acceptance table and the root
 * attribute kind; 6 a longer /acceptance note (383 characters, for the
 * host-load terms of bandwidth_scaling). Older files are still read, the newer columns as 0 (not
 * measured), the newer attributes as NULL, the newer tables empty, their shorter strings padded. */
#define RYZ_RESULTS_SCHEMA 6
#define RYZ_RESULTS_SCHEMA_OLDEST 1 /* the oldest version ryz_results_read accepts */
#define RYZ_NAME_LEN 64
#define RYZ_NOTE_LEN 384 /* an acceptance check's note, its NUL included (256 before schema 6) */

/* /correctness: one row per (case, tp). */
typedef struct {
    char case_name[RYZ_NAME_LEN];
    int32_t tp, batch, positions; /* positions compared (batch * rows) */
    double max_abs, max_rel, min_cos;
    int32_t top1_agree;
    int32_t greedy_divergence;    /* first diverging position, -1 none */
    int32_t greedy_class;         /* 0 identical, 1 near-tie, 2 mismatch */
    int32_t pass;                 /* 1 pass, 0 fail */
} ryz_row_correctness;

/* /timing: one row per (case, tp, phase), phase "prefill" or "decode". */
typedef struct {
    char case_name[RYZ_NAME_LEN];
    int32_t tp;
    char phase[16];
    int32_t runs;                 /* timed repetitions */
    double median_s, p10_s, p90_s; /* wall time of the phase per run */
    double tokens_per_s;          /* median */
    double ttft_s;                /* time to first token (prefill rows); 0 for decode */
    double speedup;               /* T1 / Tk of this phase */
    double efficiency;            /* speedup / tp */
    double comm_fraction;         /* time in collectives / wall time, max over ranks */
    double roofline_fraction;     /* decode: tokens/s / (bandwidth / bytes per token); 0 n/a */
    double read_bandwidth_gbs;    /* read bandwidth of tp ranks streaming at once (GB/s,
                                     the roofline's); 0 not measured (schema 2) */
} ryz_row_timing;

/* /collectives: one row per (case, tp, op, bytes); case "comm" for `ryz comm`. */
typedef struct {
    char case_name[RYZ_NAME_LEN];
    int32_t tp;
    char op[16];                  /* all_reduce, all_gather, reduce_scatter, broadcast */
    uint64_t bytes;               /* per call, as nccl-tests counts it (see comm.h) */
    uint64_t count;               /* calls measured */
    double p50_us, p99_us, mean_us;
    double algbw_gbs, busbw_gbs;  /* nccl-tests conventions, at p50 */
    /* Schema 2; 0 where not measured (TP 1, `ryz comm` rows, version 1 files). */
    double p50_last_us;           /* p50 over calls of the fastest rank's time (the
                                     last to arrive: the collective after all arrived) */
    double wait_p50_us;           /* p50 over calls of slowest - fastest rank's time */
    double isolated_p50_us;       /* the same op and size alone on the same ranks
                                     (`ryz comm`'s harness), p50 */
    double last_over_isolated;    /* p50_last_us / isolated_p50_us */
    /* Schema 3; 0 where not measured (as above, and files before it). */
    uint64_t streamed_bytes;      /* p50 over rank 0's calls of the weight bytes it
                                     read since its previous collective */
    double isolated_evict_p50_us; /* as isolated_p50_us, each call after reading
                                     streamed_bytes (`ryz comm --evict`): the caches
                                     as in situ; = isolated_p50_us when 0 streamed */
    double last_over_evict;       /* p50_last_us / isolated_evict_p50_us: what
                                     max_collective_ratio gates */
} ryz_row_collective;

/* /memory: one row per (case, tp, rank). */
typedef struct {
    char case_name[RYZ_NAME_LEN];
    int32_t tp, rank;
    uint64_t weights, kv_cache, scratch, peak_rss; /* bytes */
    double mem_efficiency;        /* (baseline bytes / tp) / largest rank's bytes */
} ryz_row_memory;

/* /samples: raw per-iteration times. */
typedef struct {
    char case_name[RYZ_NAME_LEN];
    int32_t tp;
    char metric[32];              /* "prefill_s", "decode_s", "all_reduce_us@8192", ... */
    int32_t iter;
    double value;
} ryz_row_sample;

/* /acceptance: one row per check of a suite run (schema 5): correctness
 * and the [acceptance] thresholds, as ryz_acceptance_evaluate judged them
 * and `ryz suite` printed them. */
typedef struct {
    char case_name[RYZ_NAME_LEN];
    int32_t tp;
    char check[32];               /* "outputs_within_tolerance", "speedup", ... */
    double measured;              /* inf or 0 where not measured (the note says so) */
    char op[4];                   /* ">=" or "<=": how measured must stand to threshold */
    double threshold;
    int32_t pass;                 /* 1 pass (or skipped), 0 fail */
    int32_t skipped;              /* 1 not judged: timing of an oversubscribed run */
    char note[RYZ_NOTE_LEN];      /* why it was skipped, what was not measured, ... */
} ryz_row_acceptance;

/* What wrote a results file (root attribute kind, schema 5). */
#define RYZ_KIND_SUITE "suite" /* `ryz suite` */
#define RYZ_KIND_BENCH "bench" /* `ryz bench` */
#define RYZ_KIND_COMM "comm"   /* `ryz comm` */

/* Root attributes. Strings are owned (malloc'd) by the struct. */
typedef struct {
    int32_t schema_version;       /* RYZ_RESULTS_SCHEMA */
    char *tool_version, *git_rev, *time_utc, *hosts, *backends, *device, *cpu_model;
    char *suite_name, *suite_text;
    char *blas;                   /* the BLAS build and the core it runs (schema 4; NULL before) */
    char *kind;                   /* RYZ_KIND_*: what wrote the file (schema 5; NULL before:
                                     ryz_results_kind tells it from suite_name) */
    int32_t world_size, cores, threads_per_rank;
    int32_t oversubscribed;       /* ranks * threads > cores: efficiency not meaningful */
    int32_t interrupted;          /* the run stopped early; tables are partial */
    double read_bandwidth_gbs;    /* measured in the same run, 0 if not */
} ryz_results_meta;

typedef struct {
    ryz_results_meta meta;
    ryz_row_correctness *correctness;
    ryz_row_timing *timing;
    ryz_row_collective *collectives;
    ryz_row_memory *memory;
    ryz_row_sample *samples;
    ryz_row_acceptance *acceptance;
    size_t n_correctness, n_timing, n_collectives, n_memory, n_samples, n_acceptance;
    size_t cap_correctness, cap_timing, cap_collectives, cap_memory, cap_samples, cap_acceptance;
} ryz_results;

/* Zeroes r and sets schema_version. */
void ryz_results_init(ryz_results *r);
/* Frees every table and string; safe on a zeroed or freed struct. */
void ryz_results_free(ryz_results *r);
/* Appends a copy of a row (ENOMEM on failure). */
ryz_status ryz_results_add_correctness(ryz_results *r, const ryz_row_correctness *row);
ryz_status ryz_results_add_timing(ryz_results *r, const ryz_row_timing *row);
ryz_status ryz_results_add_collective(ryz_results *r, const ryz_row_collective *row);
ryz_status ryz_results_add_memory(ryz_results *r, const ryz_row_memory *row);
ryz_status ryz_results_add_acceptance(ryz_results *r, const ryz_row_acceptance *row);
/* RYZ_KIND_SUITE, _BENCH or _COMM: meta's kind where the file recorded one;
 * for files before schema 5 (kind NULL or ""), told from the suite name,
 * "comm" and "bench" being the names those commands gave their files. */
const char *ryz_results_kind(const ryz_results_meta *m);
/* The value of `key` in [case NAME] of a recorded suite text (a suite
 * file's, or `ryz bench`'s one [case bench], whose key `work` no suite
 * parser takes), into out[cap]: inline comments and quotes dropped, blanks
 * made one (prompt_text's kept as written, prompt's commas read as
 * blanks); "" when the case or the key is not there. */
void ryz_results_case_value(const char *text, const char *name, const char *key, char *out,
                            size_t cap);

/* The /memory rows of one (case, tp), summed up the ways the suite table,
 * the acceptance checks and `ryz compare` read them. */
typedef struct {
    int ranks;            /* rows found (0: none, the rest is 0 / NAN) */
    double largest_state; /* weights + KV cache of the largest rank, bytes */
    double largest_total; /* weights + KV + scratch of the largest rank, bytes */
    double efficiency;    /* lowest memory efficiency over the ranks (NAN: none) */
} ryz_memory_summary;
void ryz_results_memory_of(const ryz_results *r, const char *case_name, int tp,
                           ryz_memory_summary *out);
ryz_status ryz_results_add_sample(ryz_results *r, const ryz_row_sample *row);
/* The values of r's /samples rows of (case, tp, metric), in file order, as
 * a malloc'd array of *n (NULL when out of memory). */
double *ryz_results_sample_values(const ryz_results *r, const char *case_name, int tp,
                                  const char *metric, int *n);
/* Sets an owned string attribute (*field = strdup(value)). */
ryz_status ryz_results_set_str(char **field, const char *value);

/* Fills the tool and machine attributes of meta: tool version, git
 * revision (of the build), UTC time, CPU model, the BLAS and its core,
 * cores, world size, threads per rank, the oversubscription flag (ranks
 * on this host x threads > cores), and the given hosts, backends, suite
 * name and suite text; device "cpu". */
ryz_status ryz_results_meta_machine(ryz_results_meta *m, int world, int threads,
                                    const char *hosts, const char *backends,
                                    const char *suite_name, const char *suite_text);
/* Sets meta's device to the CUDA runtime, driver, NCCL and devices on one
 * line (ryz_info_cuda_line), for a run on the GPU. ENOMEM. */
ryz_status ryz_results_meta_set_cuda_device(ryz_results_meta *m);
/* The git revision this build was made from ("unknown" outside git). */
const char *ryz_git_rev(void);

/* Writes the file atomically: PATH.tmp.PID is written, flushed, fsynced and
 * renamed to PATH, and the directory fsynced; on any failure the temporary
 * is removed and PATH is untouched. EIO naming the path and the HDF5 call. */
ryz_status ryz_results_write(const ryz_results *r, const char *path);
/* Reads a file written by ryz_results_write. EIO/EINVAL naming the file and
 * the missing or malformed part; a schema version outside
 * [RYZ_RESULTS_SCHEMA_OLDEST, RYZ_RESULTS_SCHEMA] is EINVAL. Columns a
 * file's version predates read as 0; meta.schema_version keeps the file's. */
ryz_status ryz_results_read(const char *path, ryz_results *out);
/* Checks that `dir` exists and a file can be created in it, before a run
 * spends its compute (EIO naming the directory otherwise). */
ryz_status ryz_results_check_writable(const char *path);
/* JSON output shared by every writer: a string literal of s (quotes,
 * backslashes and control characters escaped; NULL as ""), and a number
 * (null when not finite, which JSON cannot hold). */
void ryz_json_string(FILE *f, const char *s);
void ryz_json_number(FILE *f, double x);
/* Prints every table as aligned text (what `ryz show` prints). */
void ryz_results_print(const ryz_results *r, FILE *out);

#endif
