/* model: Llama decoder config and its TP shard plan, synthetic weights, TP
 * layers and the per-rank forward pass. No allocation inside the forward. */
#ifndef RYZ_MODEL_H
#define RYZ_MODEL_H

#include "ryz/backend.h"
#include "ryz/ckpt.h"
#include "ryz/comm.h"
#include "ryz/core.h"


/* What one rank of a TP group owns. */
typedef struct {
    int tp, rank;
    int head_dim;
    int heads, head_start;          /* query heads: n_heads / tp */
    int kv_heads, kv_start, kv_mul; /* KV heads this rank holds */
    int kv_replicated;              /* 1 when some KV head lives on several ranks
                                       (n_kv_heads < tp, or groups straddle ranks) */
    int hidden, hidden_start;       /* FFN rows; uneven when hidden % tp != 0 */
    int vocab_padded;               /* vocab rounded up to a multiple of tp */
    int vocab_local, vocab_start;   /* vocab rows this rank owns */
} ryz_shard;

/* Parses a model source. Now: "synthetic:PRESET[,key=value...]" with
 * presets tiny, 15m, 110m, 1b, 7b and keys dim, hidden, layers, heads,
 * kv_heads, vocab, seq_len, seed. EINVAL naming the bad part otherwise. */
ryz_status ryz_model_source_parse(const char *src, ryz_model_config *cfg);
/* Opens any model source for `rank` of a TP group of `tp`: "synthetic:..."
 * or a checkpoint path (ryz_ckpt_open). Fills *cfg; *w receives the weight
 * source (close with ryz_weights_close). Does not validate the TP rules. */
ryz_status ryz_model_source_open(const char *src, int tp, int rank, ryz_model_config *cfg,
                                 ryz_weights **w);
/* Checks every rule of DESIGN section 1 for TP degree tp, before anything is
 * allocated. On failure: EINVAL, and the message holds one line per violated
 * rule ("n_heads 4 not divisible by tp 3"). */
ryz_status ryz_config_validate(const ryz_model_config *cfg, int tp);
/* The shard of `rank` in a TP group of `tp` (config must be valid). */
void ryz_shard_plan(const ryz_model_config *cfg, int tp, int rank, ryz_shard *out);
/* Total parameter bytes of the unsharded model (float32). */
size_t ryz_model_weight_bytes(const ryz_model_config *cfg);
/* Bytes of the unsharded model's KV cache (float32 keys and values of
 * seq_len positions, every layer) for `batch` sequences; the ranks'
 * caches sum to at least this (more where KV heads are replicated). */
size_t ryz_model_kv_bytes(const ryz_model_config *cfg, int batch);
/* Bytes rank s's shard holds in the backend's memory, at least: its
 * matrices (layers and LM head) stored as dtype with its norms and
 * embedding rows in float32 (*weights), and its KV cache for `batch`
 * sequences (*kv); the build adds scratch. Computed in double and held at
 * SIZE_MAX: a checkpoint's sizes need not fit size_t. */
void ryz_model_shard_bytes(const ryz_model_config *cfg, const ryz_shard *s, ryz_dtype dtype,
                           int batch, size_t *weights, size_t *kv);
/* Bytes of weights a rank reads per decoded token (all matrices, one
 * embedding row): the numerator of the decode roofline. */
size_t ryz_model_bytes_per_token(const ryz_model_config *cfg, const ryz_shard *s);
/* The same with the matrices (layers and LM head) stored as dtype; norms and
 * the embedding row stay float32. */
size_t ryz_model_bytes_per_token_as(const ryz_model_config *cfg, const ryz_shard *s,
                                    ryz_dtype dtype);

/* Synthetic weights: element (row, col) of tensor t is a pure function of
 * (seed, t, row, col), uniform in [-scale, scale) (norms: 1 + 0.1 * that).
 * The synthetic weight source (scales 1/sqrt(fan in)). */
ryz_status ryz_weights_synthetic(const ryz_model_config *cfg, ryz_weights **out);
/* Fills out (nrows, ncols, leading dimension ld) with rows row0.. and columns
 * col0.. of tensor t; rows >= row_limit are zero (padding). */
void ryz_synth_fill(uint64_t seed, uint32_t t, float scale, int64_t row0, int nrows,
                    int64_t row_limit, int64_t col0, int ncols, int ld, float *out);
float ryz_synth_value(uint64_t seed, uint32_t t, int64_t row, int64_t col);


/* TP layers (also used directly by tests). Each returns the comm status.
 * Every buffer is b's memory (device memory on cuda). When
 * ryz_tp_staged(b, c), the collectives go through `stage`, a host buffer
 * of the size each layer names; otherwise stage is unused (NULL is fine). */
/* 1 when collectives on b's memory must be staged through the host: more
 * than one rank, b's memory not host-visible (cuda) and c taking host
 * memory only (mpi). */
int ryz_tp_staged(const ryz_backend *b, const ryz_comm *c);
/* Vocab-parallel embedding: x (n, dim) = rows of emb_local (vocab_local, dim)
 * for tokens (n, in b's memory) in [vocab_start, vocab_start+vocab_local),
 * zero elsewhere, then all-reduce. stage: n * dim floats. */
ryz_status ryz_tp_embedding(ryz_backend *b, ryz_comm *c, float *x, const int *tokens, int n,
                            const float *emb_local, int vocab_start, int vocab_local, int dim,
                            float *stage);
/* Column-parallel linear: y (n, out_local) = x (n, in) . W_local^T. */
void ryz_tp_column(ryz_backend *b, float *y, const float *x, ryz_matrix w_local, int n, int in,
                   int out_local);
/* Several column-parallel products of one x (ryz_backend_matmul_multi):
 * q, k and v. */
void ryz_tp_column_multi(ryz_backend *b, int count, float *const *y, const float *x,
                         const ryz_matrix *w_local, const int *out_local, int n, int in);
/* SwiGLU's two column-parallel linears of one x and shape, w1 and w3
 * (ryz_backend_matmul_pair): y1 = silu(x . W1_local^T) * (x . W2_local^T),
 * y2 (n, out_local) scratch. */
void ryz_tp_column_pair(ryz_backend *b, float *y1, float *y2, const float *x, ryz_matrix w1_local,
                        ryz_matrix w2_local, int n, int in, int out_local);
/* Row-parallel linear: y (n, out) = sum over ranks of x_local (n, in_local)
 * . W_local^T, W_local (out, in_local). stage: n * out floats. */
ryz_status ryz_tp_row(ryz_backend *b, ryz_comm *c, float *y, const float *x_local,
                      ryz_matrix w_local, int n, int in_local, int out, float *stage);
/* Vocab-parallel LM head: logits (n, vocab_padded) gathered from every rank's
 * x (n, dim) . cls_local^T, padded columns (>= vocab) set to -inf.
 * part (n * vocab_local) and gather (n * vocab_padded) are scratch (unused
 * at tp 1, where the matmul writes logits directly and nothing is
 * gathered). stage: n * (vocab_local + vocab_padded) floats. */
ryz_status ryz_tp_lm_head(ryz_backend *b, ryz_comm *c, float *logits, const float *x,
                          ryz_matrix cls_local, int n, int dim, int vocab,
                          const ryz_shard *s, float *part, float *gather, float *stage);
/* Greedy ids of n rows of vocab-parallel logits without gathering them
 * (host-visible memory): each rank sends, per row, its shard's first logit
 * and its first maximum (NaNs skipped) with that logit's global index,
 * RYZ_GREEDY_FLOATS floats; one all_gather of those, and every rank picks for
 * row r the id ryz_argmax would give on the gathered row (a scan from the
 * row's first logit, replaced by a strictly larger one: the lowest index
 * on ties). part (n, vocab_local) is this rank's logits, columns past
 * vocab ignored; pairs is scratch of n * RYZ_GREEDY_FLOATS * (tp + 1)
 * floats; ids (n) on every rank. */
#define RYZ_GREEDY_FLOATS 3
ryz_status ryz_tp_greedy_ids(ryz_comm *c, const float *part, int n, int vocab,
                             const ryz_shard *s, float *pairs, int *ids);

typedef struct ryz_model ryz_model;

typedef struct {
    int max_batch; /* sequences per forward */
    int max_chunk; /* new tokens per sequence per forward (prefill length) */
    ryz_dtype dtype; /* storage of the weight matrices (zero: f32) */
} ryz_model_opts;

/* Builds this rank's shard (rank and tp from comm) with weights from `w`,
 * its KV cache and scratch, all in the backend's memory (weights uploaded
 * a block of rows at a time when the host cannot see it). Validates first,
 * including that the backend has opts->dtype (bf16 needs a matmul_bf16:
 * cpu and cuda have one; on cuda the bf16 rows are packed on the host and
 * uploaded a block at a time); allocates nothing on failure. The model
 * borrows w (only during the build), comm and backend; comm and backend
 * must outlive it. On a backend whose memory is not host-visible with a
 * host-only comm on several ranks (cuda with mpi), collectives are staged
 * through a host buffer. */
ryz_status ryz_model_build_from(const ryz_model_config *cfg, ryz_weights *w, ryz_comm *comm,
                                ryz_backend *backend, const ryz_model_opts *opts,
                                ryz_model **out);
/* Opens `src` for this rank (tp and rank from comm), validates, builds and
 * closes the source: what the commands use. */
ryz_status ryz_model_open(const char *src, ryz_comm *comm, ryz_backend *backend,
                          const ryz_model_opts *opts, ryz_model **out);
/* ryz_model_build_from with the synthetic weights of cfg. */
ryz_status ryz_model_build(const ryz_model_config *cfg, ryz_comm *comm, ryz_backend *backend,
                           const ryz_model_opts *opts, ryz_model **out);
void ryz_model_free(ryz_model *m);
const ryz_model_config *ryz_model_config_of(const ryz_model *m);
const ryz_shard *ryz_model_shard(const ryz_model *m);
const ryz_model_opts *ryz_model_opts_of(const ryz_model *m);

/* One forward pass: tokens (B, T, host memory) at positions pos0..pos0+T-1
 * of each of B sequences. *logits points at (B*T, vocab_padded) floats in
 * host memory owned by the model (downloaded from the device on cuda),
 * valid until the next call; columns >= vocab are -inf. Waits for the
 * backend once, and returns the error any of its ops kept. */
ryz_status ryz_model_forward(ryz_model *m, const int *tokens, int B, int T, int pos0,
                             const float **logits);

/* Wall time of the phases of one generate call. */
typedef struct {
    double prefill_s; /* forward of the prompt */
    double decode_s;  /* all decode steps */
    int decode_steps;
} ryz_gen_timing;

/* The same pass, but the LM head runs only on each sequence's last row:
 * *logits is (B, vocab_padded). Same results for those rows. */
ryz_status ryz_model_forward_last(ryz_model *m, const int *tokens, int B, int T, int pos0,
                                  const float **logits);

/* With on, ryz_model_generate calls without a logits record compute only
 * what greedy decoding needs: the prefill's last rows
 * (ryz_model_forward_last; no head at all for the chunks before the
 * last), and at TP > 1 on host-visible memory each
 * step's ids from every rank's part of the logits (ryz_tp_greedy_ids), with
 * no all-gather of the vocab. Off by default: every rank of a TP group must
 * make the same choice, and none may pass a logits record while it is on
 * (the LM head's collectives depend on both), so callers set it uniformly,
 * e.g. for timed greedy runs. */
void ryz_model_set_last_only_prefill(ryz_model *m, int on);
int ryz_model_last_only_prefill(const ryz_model *m);
/* fn(ctx) after each decode step of ryz_model_generate, its time left out
 * of decode_s: a measurement between the tokens (ryz bench reads a slice
 * of its bandwidth probe there). An error from fn ends the generation and
 * is returned. fn NULL (the default): none. */
typedef ryz_status (*ryz_step_hook)(void *ctx);
void ryz_model_set_step_hook(ryz_model *m, ryz_step_hook fn, void *ctx);
ryz_step_hook ryz_model_step_hook(const ryz_model *m, void **ctx);
/* 1 while m records its decode steps and replays them (its backend
 * records, TP=1, RYZ_CUDA_GRAPHS is not 0, and no recording has failed;
 * a failed one turns recording off with a warning), else 0. */
int ryz_model_recording(const ryz_model *m);

/* Greedy generation for B sequences. prompt (B, P); ids receives (B,
 * P + n_new): the prompt, then each step's argmax. With forced (B, P + n_new)
 * non-NULL, the token fed at position p >= P is forced[b][p] (teacher
 * forcing) while ids still records the argmax. logits, when non-NULL,
 * receives every forward position's logits (B, P + n_new - 1, vocab),
 * unpadded. The prompt is prefilled in chunks of opts.max_chunk.
 * P + n_new - 1 must fit seq_len. */
ryz_status ryz_model_generate(ryz_model *m, const int *prompt, int B, int P, int n_new,
                              const int *forced, int *ids, float *logits, ryz_gen_timing *t);

/* Test-only fault hook: when nonzero, ranks > 0 take their wo shard one
 * column off, so TP output is wrong. Also set by RYZ_TEST_SHARD_SKEW=1. */
void ryz_test_set_shard_skew(int on);

#endif
