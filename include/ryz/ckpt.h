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

#endif
