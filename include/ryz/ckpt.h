/* ckpt: the model config, tensor ids and the weight-source interface that
 * checkpoint readers (llama2.c, Hugging Face safetensors, one-file-per-rank
 * shards) implement. Below model/: it knows shapes, not the forward pass. */
#ifndef RYZ_CKPT_H
#define RYZ_CKPT_H

#include <stdint.h>

#include "ryz/core.h"

typedef struct {
    int dim;        /* model width */
    int hidden;     /* FFN width */
    int n_layers;
    int n_heads;    /* query heads */
    int n_kv_heads; /* key/value heads (grouped-query attention) */
    int vocab;
    int seq_len;    /* KV cache positions */
    uint64_t seed;  /* synthetic weights */
    float norm_eps;
    float rope_base;
} ryz_model_config;

/* Tensor ids: per layer l, RYZ_T_LAYER(l, RYZ_T_*); global ones below. */
enum {
    RYZ_T_WQ = 0, RYZ_T_WK, RYZ_T_WV, RYZ_T_WO, RYZ_T_W1, RYZ_T_W2, RYZ_T_W3,
    RYZ_T_ATT_NORM, RYZ_T_FFN_NORM, RYZ_T_PER_LAYER
};
#define RYZ_T_LAYER(l, t) ((uint32_t)((l) * RYZ_T_PER_LAYER + (t)))
#define RYZ_T_EMBED 0x7fff0001u
#define RYZ_T_CLS 0x7fff0002u
#define RYZ_T_FINAL_NORM 0x7fff0003u

/* Weight sources. The model asks a source for blocks of tensors in the
 * unsharded model's coordinates (tensor ids as above; W is (out, in), norms
 * are one row of dim); each rank asks only for its shard. Rows past a
 * tensor's end (vocab padding of embedding and LM head) must come back zero.
 * synthetic: generates; file readers (llama2.c, safetensors, shards) read
 * only the requested block. */
typedef struct ryz_weights ryz_weights;
typedef struct {
    const char *name;
    ryz_status (*fill)(void *ctx, uint32_t t, int64_t row0, int nrows, int64_t col0, int ncols,
                       int ld, float *out);
    void (*close)(void *ctx);
} ryz_weights_iface;

/* Wraps a backend table and its context (ownership of ctx passes on). */
ryz_status ryz_weights_create(const ryz_weights_iface *iface, void *ctx, ryz_weights **out);
/* Fills a block (see above); EIO/EINVAL from file sources name the file. */
ryz_status ryz_weights_fill(ryz_weights *w, uint32_t t, int64_t row0, int nrows, int64_t col0,
                            int ncols, int ld, float *out);
const char *ryz_weights_name(const ryz_weights *w);
void ryz_weights_close(ryz_weights *w);

/* Opens a checkpoint path as a weight source for `rank` of a TP group of
 * `tp`, filling *cfg from its header. EINVAL/EIO with a one-line message
 * naming the file and the field on bad input. */
ryz_status ryz_ckpt_open(const char *path, int tp, int rank, ryz_model_config *cfg,
                         ryz_weights **out);

/* ---- Added by the checkpoint issue: hashing, writers, tokenizer. ---- */

/* SHA-256 (FIPS 180-4), streaming. */
typedef struct {
    uint32_t h[8];
    uint64_t len; /* bytes hashed so far */
    uint8_t buf[64];
    size_t n; /* bytes waiting in buf */
} ryz_sha256;
void ryz_sha256_init(ryz_sha256 *s);
void ryz_sha256_update(ryz_sha256 *s, const void *data, size_t n);
/* Finishes the digest into out (the state is spent). */
void ryz_sha256_final(ryz_sha256 *s, uint8_t out[32]);
/* SHA-256 of a buffer as 64 lower-case hex digits plus NUL. */
void ryz_sha256_hex(const void *data, size_t n, char hex[65]);

/* The tp a ryz shard directory was written for: *tp = K for such a
 * directory, 0 for anything else (synthetic sources, files, Hugging Face
 * directories, missing paths). Reads DIR/config.json only; EINVAL/EIO when
 * a directory's config.json is unreadable or a shard's has no valid tp. */
ryz_status ryz_ckpt_sharded_tp(const char *path, int *tp);

/* One block a rank asks its source for (see ryz_weights_fill). */
typedef struct {
    uint32_t t;
    int64_t row0;
    int nrows;
    int64_t col0;
    int ncols;
} ryz_block;

/* Writes DIR/rank{rank}.safetensors: exactly `blocks` of w (float32, in
 * the given order, padding rows included), streamed one block at a time;
 * creates DIR if needed; hex receives the file's SHA-256. The file is
 * written under a temporary name and renamed when complete. */
ryz_status ryz_ckpt_write_rank(const char *dir, int tp, int rank, const ryz_model_config *cfg,
                               ryz_weights *w, const ryz_block *blocks, int nblocks,
                               char hex[65]);
/* Writes DIR/config.json of a sharded checkpoint: cfg, tp, format version,
 * the source's name and the SHA-256 of each of the tp rank files. */
ryz_status ryz_ckpt_write_shard_config(const char *dir, const char *source, int tp,
                                       const ryz_model_config *cfg, char (*hex)[65]);
/* Exports the whole model of w as a llama2.c version-0 checkpoint (separate
 * classifier: negative vocab), streaming tensor by tensor. */
ryz_status ryz_ckpt_export_llama2c(const char *path, const ryz_model_config *cfg, ryz_weights *w);
/* Exports w as a Hugging Face LlamaForCausalLM directory: config.json and
 * model.safetensors (float32, q/k rows permuted the Hugging Face way). */
ryz_status ryz_ckpt_export_hf(const char *dir, const ryz_model_config *cfg, ryz_weights *w);

/* Runs parser `name` (json, safetensors, llama2c, hf_config, shard_config,
 * tokenizer) over an in-memory file of n bytes: what the fuzz harnesses and
 * the corpus tests call. OK, EINVAL or EIO; never crashes on any input. */
ryz_status ryz_ckpt_parse_buffer(const char *name, const void *data, size_t n);
/* The parser names above, NULL-terminated. */
extern const char *const ryz_ckpt_parsers[];

/* llama2.c tokenizer.bin: the vocabulary with merge scores. */
typedef struct ryz_tokenizer ryz_tokenizer;
/* Loads tokenizer.bin for a model of `vocab` tokens. EINVAL/EIO naming the
 * file and the field on bad input. */
ryz_status ryz_tokenizer_load(const char *path, int vocab, ryz_tokenizer **out);
/* The same from n bytes in memory (path only names it in messages). */
ryz_status ryz_tokenizer_parse(const char *path, const void *data, size_t n, int vocab,
                               ryz_tokenizer **out);
/* Encodes UTF-8 text exactly as llama2.c's encode(): optional BOS (1),
 * dummy-prefix " ", code points looked up (byte fallback <0xXX> = byte + 3),
 * then merges of the best-scoring adjacent pair until none applies;
 * optional EOS (2). *ids is malloc'd (*n ids). */
ryz_status ryz_tokenizer_encode(const ryz_tokenizer *t, const char *text, int bos, int eos,
                                int **ids, int *n);
/* The text of token id after token prev (llama2.c's decode: leading space
 * dropped after BOS, <0xXX> as the raw byte); "" for an id out of range. */
const char *ryz_tokenizer_decode(const ryz_tokenizer *t, int prev, int id);
void ryz_tokenizer_free(ryz_tokenizer *t);
/* A text prompt as llama2.c's run.c feeds it: tokenizer.bin at `path` for a
 * model of `vocab` tokens, text encoded with BOS. *ids malloc'd (*n ids). */
ryz_status ryz_tokenizer_prompt(const char *path, int vocab, const char *text, int **ids,
                                int *n);
/* Where a text prompt's tokenizer is looked for when none is named, into
 * path[cap]: tokenizer.bin beside checkpoint `model` (inside a model
 * directory, or in a .bin's directory: llama2.c ships the two side by
 * side) where that exists, else ./tokenizer.bin. Returns 1 when the path
 * exists; 0 (the path ./tokenizer.bin) when neither does. */
int ryz_tokenizer_default(const char *model, char *path, size_t cap);

#endif
