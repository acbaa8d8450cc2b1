/* suite: suite files (INI), the runner (baseline vs sharded), comparison
 * and gating. */
#ifndef RYZ_SUITE_H
#define RYZ_SUITE_H

#include <stdio.h>

#include "ryz/backend.h"
#include "ryz/comm.h"
#include "ryz/core.h"
#include "ryz/results.h"

#define RYZ_SUITE_MAX_TP 16
#define RYZ_SUITE_NAME_MAX 64
#define RYZ_SUITE_MAX_REPEAT 64 /* timed runs kept per (case, TP, phase) */
/* Runs of each TP degree the host's neighbours must leave alone (neither
 * steal nor others above RYZ_LOAD_DISTURBED) for bandwidth_scaling to judge
 * those alone, and for a suite's extra_runs to stop. */
#define RYZ_SUITE_MIN_UNDISTURBED 3
/* Longest prompt_text (bytes): some 2000 tokens of English, the longest
 * context of the presets (1b's seq_len 2048); a fixed array keeps a case
 * copyable by value. */
#define RYZ_SUITE_TEXT_MAX 8192
#define RYZ_SUITE_PATH_MAX 1024 /* longest tokenizer path */

/* Default tolerance (atol and rtol) of f32 cases against the f32 TP=1
 * reference (DESIGN 4.3: a suite may tighten it). */
#define RYZ_F32_TOL 1e-4

/* Default tolerance (atol and rtol) of bf16 weights against the f32 model:
 * bf16 keeps 8 bits of mantissa, and 110m logits land within 5e-3 of the
 * range (docs/performance.md), so 2e-2 leaves room without hiding a bug. */
#define RYZ_BF16_TOL 2e-2
/* Default tolerance of cases run with TF32 GEMMs (tf32 = 1, cuda): TF32
 * rounds both operands to 11 significant bits, against bf16's 8 on the
 * weights alone, so its error is expected below bf16's; 1e-2 keeps the same
 * margin. Not yet measured on a GPU (docs/gpu.md). */
#define RYZ_TF32_TOL 1e-2

typedef struct {
    char name[RYZ_SUITE_NAME_MAX];  /* from "[case NAME]" */
    char model[256];                /* model source, e.g. "synthetic:15m,layers=2" */
    int tp[RYZ_SUITE_MAX_TP];       /* TP degrees, in file order, each >= 1 */
    int n_tp;
    int batch;                      /* sequences, >= 1 (default 1) */
    int *prompt;                    /* prompt token ids (malloc'd); for prompt_text
                                       NULL until ryz_suite_validate encodes it */
    int prompt_len;                 /* >= 1 (0 while prompt_text is not encoded) */
    char prompt_text[RYZ_SUITE_TEXT_MAX]; /* prompt_text: UTF-8 text, "" for prompt = ids */
    char tokenizer[RYZ_SUITE_PATH_MAX];   /* tokenizer.bin of prompt_text; "": the default
                                             (ryz_suite_validate) */
    int prompt_line, tokenizer_line;      /* lines of those keys in the file (0: unset) */
    int new_tokens;                 /* >= 1 (default 16) */
    char backend[16];               /* "cpu" (default) or "cuda" */
    char comm[16];                  /* "mpi" (default), "nccl" or "shm" */
    ryz_dtype dtype;                /* weight storage of every run (default f32); the
                                       reference outputs always come from f32 TP=1 */
    int tf32;                       /* 1: cuBLAS may use TF32 (backend = cuda only) */
} ryz_suite_case;

/* A threshold for one TP degree; tp 0 applies to every TP > 1. */
typedef struct {
    int tp;
    double value;
} ryz_threshold;

/* [acceptance]: hardware-acceptance thresholds; NAN (or n == 0) means not
 * checked. Correctness (outputs within tolerance) is always checked. */
typedef struct {
    int present;                                   /* the file had [acceptance] */
    ryz_threshold min_speedup[RYZ_SUITE_MAX_TP];   /* decode T1/Tk */
    int n_min_speedup;
    ryz_threshold min_efficiency[RYZ_SUITE_MAX_TP]; /* decode speedup / k */
    int n_min_efficiency;
    double max_allreduce_p99_us;   /* at allreduce_bytes, or every size measured */
    double allreduce_bytes;        /* 0: every size */
    double max_comm_fraction;      /* decode time in collectives / wall time */
    double min_memory_efficiency;  /* (baseline / k) / largest rank */
    double max_logit_error;        /* teacher-forced max abs error */
    double max_collective_ratio;   /* last-arriver p50 / isolated p50 after the same
                                      reads, worst (op, size) */
    double min_bandwidth_scaling;  /* decode speedup / (read bw of k ranks / of 1) */
} ryz_acceptance;

typedef struct {
    char name[RYZ_SUITE_NAME_MAX]; /* [suite] name, default: file base name */
    int ranks;                     /* world size to launch; 0 = largest tp */
    int repeat;                    /* timed repetitions (default 3) */
    int extra_runs;                /* more probed runs, at most, while fewer than
                                      RYZ_SUITE_MIN_UNDISTURBED were left alone (0) */
    int warmup;                    /* untimed repetitions (default 1) */
    int threads;                   /* threads per rank (default 1) */
    double atol, rtol;             /* tolerance (default RYZ_F32_TOL) */
    double bf16_atol, bf16_rtol;   /* tolerance of bf16 cases against f32 (RYZ_BF16_TOL) */
    double tf32_atol, tf32_rtol;   /* tolerance of tf32 cases against f32 (RYZ_TF32_TOL) */
    ryz_acceptance acc;            /* [acceptance] thresholds */
    ryz_suite_case *cases;         /* malloc'd array */
    int n_cases;
    char *text;                    /* the whole file (malloc'd), for results */
    char *where;                   /* the file's name in messages (malloc'd) */
} ryz_suite;

/* Parses INI text. `where` names the source in messages ("suites/q.ini").
 * Unknown sections or keys, bad values, a case without model or prompt, and
 * a file without cases are EINVAL with "FILE:LINE: what is wrong". A case's
 * prompt is `prompt = IDS` or `prompt_text = TEXT` (exactly one), with
 * `tokenizer = PATH` only beside prompt_text; text is kept, not encoded
 * (that needs the model and the tokenizer file: ryz_suite_validate). On
 * error *out is left freed (safe to ryz_suite_free again). */
ryz_status ryz_suite_parse(const char *text, const char *where, ryz_suite *out);
/* ryz_suite_parse of the text a results file recorded: the rules added
 * after files were written (a tp or a threshold's TP listed twice, a
 * threshold for a TP no case runs, a name with '/' or a leading '.') are
 * not applied, so an older run's cases still read. */
ryz_status ryz_suite_parse_recorded(const char *text, const char *where, ryz_suite *out);
/* Reads and parses a file (EIO when unreadable). */
ryz_status ryz_suite_load(const char *path, ryz_suite *out);
/* Frees what a parse allocated; safe on a zeroed or freed struct. */
void ryz_suite_free(ryz_suite *s);
/* Largest TP degree of all cases (1 for an empty suite). */
int ryz_suite_max_tp(const ryz_suite *s);
/* Checks what can be checked before any rank allocates: every case's model
 * source, the TP rules for each of its degrees; a prompt_text encoded into
 * c->prompt (once: a case already encoded is kept) with llama2.c's
 * tokenizer, BOS first, as `ryz generate --prompt` does: the case's
 * tokenizer, else tokenizer.bin in the model checkpoint's directory when
 * there is one, else ./tokenizer.bin (a synthetic model has none: the key
 * is required); prompt ids inside the vocab, prompt + new_tokens within
 * seq_len (prompt problems as "FILE:LINE: case NAME: ..."); then its
 * backend and comm: comm = nccl needs backend = cuda, tf32 = 1 needs
 * backend = cuda, backend = cuda needs a CUDA build and a device
 * (ryz_backend_available), and comm = nccl one device per rank on this node
 * (the ranks mpirun put here, or those `ryz suite` would launch). EINVAL
 * naming the case and the problem, e.g. "case a: backend cuda: no CUDA
 * device: ..." (EIO for a tokenizer file that cannot be read). */
ryz_status ryz_suite_validate(ryz_suite *s);
/* EINVAL "suite NAME: repeat R above the N timed runs kept per phase" when
 * s->repeat exceeds RYZ_SUITE_MAX_REPEAT, or "suite NAME: repeat R +
 * extra_runs E above ..." when both together do: part of ryz_suite_validate, and
 * what the runner checks again before trusting it. */
ryz_status ryz_suite_check_repeat(const ryz_suite *s);
/* The tolerance case c's outputs are held to against the f32 TP=1
 * reference: the suite's atol/rtol, or, when the case rounds its weights
 * (dtype bf16) or its GEMM operands (tf32 = 1), the larger of those
 * precisions' own (bf16_atol, tf32_atol and their rtol). */
void ryz_suite_case_tol(const ryz_suite *s, const ryz_suite_case *c, double *atol,
                        double *rtol);
/* Bytes that hold every line ryz_suite_loosened can write, any prefix of
 * up to 32 bytes included. */
#define RYZ_SUITE_LOOSENED_MAX 1024
/* The tolerances s sets above their defaults (atol, rtol: RYZ_F32_TOL;
 * bf16_*: RYZ_BF16_TOL; tf32_*: RYZ_TF32_TOL), which DESIGN 4.3 lets a
 * suite tighten only, and which older suites loosen: one line per key, in
 * file-format order, `prefix` + "suite loosens KEY to V (default D): WHO
 * held to less than ...\n", written into out[cap] ("" when none; cut short
 * and still terminated when cap is too small). Returns the number of keys
 * loosened. `ryz suite` prints them as notes and `ryz report` beside the
 * correctness table, so that a PASS against a looser bound says so. */
int ryz_suite_loosened(const ryz_suite *s, const char *prefix, char *out, size_t cap);
/* Whether any case has comm = `comm` ("nccl" or "shm": the run then needs
 * ryz_run_opts.nccl or .shm). */
int ryz_suite_needs_comm(const ryz_suite *s, const char *comm);
/* Parses a list of token ids separated by spaces or commas into a malloc'd
 * array. EINVAL naming the bad token; ids must be in [0, 2^31). */
ryz_status ryz_parse_ids(const char *text, int **ids, int *n);

/* Agreement of a candidate's logits with the baseline's, over `rows`
 * positions of `vocab` logits. An element passes when
 * |a - b| <= atol * range + rtol * |b|, range = max |b| of its row (so atol
 * is relative to the logit range). max_rel is max |a - b| / range. */
typedef struct {
    double max_abs, max_rel, min_cos;
    int worst_row, worst_col;  /* where max_abs occurred */
    double worst_base, worst_cand;
    int rows, top1_agree;      /* positions compared, argmax agreements */
    int top1_real_mismatch;    /* argmax differs where the baseline had no near-tie */
    int out_of_tol;            /* elements outside the tolerance */
    int pass;                  /* out_of_tol == 0 && top1_real_mismatch == 0 */
} ryz_compare;

void ryz_compare_logits(const float *base, const float *cand, int rows, int vocab, double atol,
                        double rtol, ryz_compare *out);
/* Whether a row's top-2 margin is within what the tolerance lets two
 * implementations disagree on: margin <= 2 * (atol * range + rtol * |top1|). */
int ryz_compare_near_tie(const float *row, int vocab, double atol, double rtol);

/* Options of a run. */
typedef struct {
    int quiet; /* no progress lines on stderr */
    /* The nccl communicator over the ranks of world, in the same order
     * (ryz_comm_init_nccl_world), from which the TP groups of comm = nccl
     * cases are split; world stays the one for everything else (broadcasts,
     * barriers, peer checks). NULL when no case has comm = nccl. */
    ryz_comm *nccl;
    /* The same for comm = shm (ryz_comm_init_shm_world). */
    ryz_comm *shm;
    /* TEST ONLY: makes the backend of a case's runs instead of
     * ryz_backend_init(case backend, threads), so that tests can run a
     * case with backend = cuda on a stand-in (tests/shadow_backend.h).
     * NULL in normal use. The reference outputs use the cpu backend
     * either way. */
    ryz_status (*backend_init)(const ryz_suite_case *c, int threads, ryz_backend *out);
} ryz_run_opts;

/* Runs every case on `world` (size >= max tp; rank 0 reports and prints one
 * table per case). Per case the reference outputs come from the f32 model
 * at TP=1 on the cpu backend (world rank 0), whatever the case's backend,
 * so a cuda case is also checked against the cpu at every TP; the TP=1
 * timing baseline and every TP degree run on the case's backend and dtype
 * (ryz_backend_init, or opts->backend_init), their TP groups split from
 * world, or from opts->nccl or opts->shm for comm = nccl or shm. Memory rows are the backend's
 * bytes (device bytes on cuda). Call ryz_suite_validate first (it encodes
 * prompt_text; a case left unencoded is EINVAL); every rank runs world rank
 * 0's prompt ids (broadcast). Returns OK
 * and *failed = number of failed (case, tp) checks, or an error status
 * (EINVAL bad input, e.g. a comm = nccl case without opts->nccl;
 * ECOMM/ETIMEOUT communication). On world rank 0, res (initialised by the
 * caller) receives the tables and the machine attributes; other ranks
 * leave it empty. All ranks return the same result. */
ryz_status ryz_suite_run(const ryz_suite *s, ryz_comm *world, const ryz_run_opts *opts,
                         ryz_results *res, int *failed);

/* The reference after reads, sampled between a TP group's timed runs
 * instead of once after them, so that it spans the same stretch of the
 * machine's drift as the in-situ calls: after each run, each (op, bytes)
 * of that run's records runs alone a few times on `dup`, a duplicate of
 * the group's comm (so the group's records stay the model's), each call
 * after the reads its in-situ calls followed. */
typedef struct ryz_collective_ref {
    ryz_comm *dup;
    void *keys;  /* (ranks) agreement buffer */
    size_t seen; /* records of the group's comm already sampled */
    int ok;      /* every sample so far agreed on every rank: the samples stand */
    int sick;    /* this rank lost samples (out of memory): its rows do not stand */
    struct ryz_ref_row {
        ryz_comm_op op;
        uint64_t bytes;
        double *us; /* the harness's per-call latencies (malloc'd) */
        size_t n, cap;
    } * rows;
    size_t n_rows;
} ryz_collective_ref;
#define RYZ_REF_SAMPLES 12 /* latencies each sample adds per (op, bytes) */
/* Collective over c, before c's records are cleared for the timed runs:
 * *r empty, with its duplicate of c. Where any rank could not set up, r->ok
 * is 0 on every rank (no samples: the pass after the runs stands in); the
 * error returned is only a communication failure on c. */
ryz_status ryz_collective_ref_open(ryz_comm *c, ryz_collective_ref *r);
/* Collective over r's comm: samples the calls c recorded since the last
 * sample. Where the ranks' calls differ, c's records wrapped, or fewer
 * remain than were sampled (cleared since), r->ok becomes 0 on every rank
 * and sampling stops. Returns the communication error, every rank alike. */
ryz_status ryz_collective_ref_sample(ryz_collective_ref *r, ryz_comm *c);
/* Frees r's samples and its comm; safe on a zeroed r. */
void ryz_collective_ref_close(ryz_collective_ref *r);

/* Collective statistics of one TP group (docs/performance.md, "Collectives:
 * in situ against ryz comm"). Collective over c: every rank of c calls it
 * after the same sequence of collectives. Reads this rank's records of c
 * (since the last clear) before it issues any collective itself; *comm_s
 * gets their total seconds. On more than one rank, the ranks then agree
 * on the number and the (op, bytes) sequence of their records (one
 * all_gather of a fixed size): when they differ, rank 0 warns and the
 * cross-rank columns stay 0; when they agree, every call's durations are
 * gathered and reduced with ryz_collectives_cross_rank. With `isolate`
 * (and agreement), each distinct (op, bytes) is then run alone on c with
 * the `ryz comm` harness (ryz_bench_run: warm-up, then back-to-back calls,
 * p50 of the slowest rank's call, in place where ryz_comm can say so, as
 * the model's all-reduces are), a few hundred calls at most, and (unless
 * ref has it, below) once more with each call after reading the bytes the
 * records say this rank read before its calls, in call order (evict_each;
 * the fastest rank's call), which clears c's records; not on a comm that takes device memory
 * (nccl), since the harness's host buffers would time nccl's host staging
 * instead of the model's in-place device calls (the isolated columns stay
 * 0). res (NULL: none) gets one /collectives row per (op, bytes) of c's
 * records, barriers left out: p50/p99/mean of this rank's times,
 * streamed_bytes, p50_last_us, wait_p50_us, the two isolated p50s and
 * their ratios (0 where not measured).
 * With ref (NULL: none), a row's reference after reads is the p50 of
 * ref's samples of its (op, bytes) where every rank has them (ref ok, not
 * sick), instead of that pass; where no rank read anything it is the
 * back-to-back figure.
 * Returns OK or the communication error (every rank alike). */
ryz_status ryz_suite_collectives(ryz_comm *c, const char *case_name, int isolate,
                                 const ryz_collective_ref *ref, ryz_results *res,
                                 double *comm_s);

/* Per-call reduction over the k ranks of a TP group: seconds holds k rows
 * (rank-major) of the n calls' durations, call i being the same collective
 * on every rank. last[i] = the smallest duration of call i (that of the
 * rank that arrived last, which waited for no one: the collective itself),
 * wait[i] = largest - smallest (how long the first rank waited for it). */
void ryz_collectives_cross_rank(const double *seconds, int k, size_t n, double *last,
                                double *wait);

/* One acceptance check of one (case, TP): measured against threshold. */
typedef struct {
    char case_name[RYZ_SUITE_NAME_MAX];
    int tp;
    char check[32];     /* "outputs_within_tolerance", "speedup", "efficiency", ... */
    char op[3];         /* ">=" or "<=" */
    double measured, threshold;
    int pass;
    int skipped;        /* timing check on an oversubscribed run: not meaningful */
    char note[RYZ_NOTE_LEN];
} ryz_check;

typedef struct {
    ryz_check *checks;
    int n, failed, skipped;
} ryz_checks;

/* Evaluates correctness (always) and the suite's [acceptance] thresholds
 * against a run's results (rank 0's tables). Timing checks are skipped, not
 * failed, when the run was oversubscribed. */
ryz_status ryz_acceptance_evaluate(const ryz_suite *s, const ryz_results *r, ryz_checks *out);
void ryz_checks_free(ryz_checks *c);
/* One line per check, failures first. */
void ryz_checks_print(const ryz_checks *c, FILE *out);
/* Whether the checks are listed (ryz_checks_print) before the verdict
 * line, by `ryz suite` and `ryz show` alike: when the suite has
 * [acceptance] (its thresholds are what the list is for; s NULL, a suite
 * not known, counts as having it), when `junit` (--junit asked for the
 * checks), and whenever a check failed, so that a failure never shows
 * only as a count. Otherwise the verdict line sums up the correctness
 * checks that the per-case tables already show. */
int ryz_checks_listed(const ryz_suite *s, const ryz_checks *c, int junit);
/* The verdict line `ryz suite` ends with, after a blank line: "suite NAME:
 * FAIL (F failed checks of N)" or "... PASS (0 failed checks of N)". */
void ryz_checks_print_verdict(const ryz_checks *c, const char *suite, FILE *out);
/* Appends one /acceptance row per check of c to res, so the results file
 * keeps the verdict (ENOMEM). */
ryz_status ryz_checks_store(const ryz_checks *c, ryz_results *res);
/* The checks of r's /acceptance rows, counts included: what
 * ryz_checks_store kept (out->n 0 for a file without any, e.g. one before
 * schema 5). ENOMEM; free with ryz_checks_free. */
ryz_status ryz_checks_from_results(const ryz_results *r, ryz_checks *out);
/* JUnit XML: one <testsuite> per case, one <testcase> per (TP, check);
 * failures carry the measured value and the threshold. Written atomically
 * (temporary name, then rename). EIO naming the path. */
ryz_status ryz_checks_write_junit(const ryz_checks *c, const char *suite_name, const char *path);

/* The per-case table printed while a suite runs (and by `ryz show`); a
 * case on a backend other than cpu, or on comm = nccl, gets a line saying
 * what its reference, memory and collective columns are. */
void ryz_suite_print_case_header(const ryz_suite_case *c, int positions, FILE *out);
/* One row for (case, tp) from the results tables; tp 0 prints the baseline
 * (timing and memory only); tp > 1 is followed by one line per collective
 * (p50 in situ, last arriver, wait, isolated, bytes read before a call,
 * isolated after reading as much, last arriver over that). Prints
 * nothing for rows not (yet) present. */
void ryz_suite_print_row(const ryz_results *r, const char *case_name, int tp, FILE *out);

#endif
