/* ryz shard: writes a one-file-per-rank checkpoint of any model source.
 * Each rank file holds exactly the blocks ryz_model_open asks that rank's
 * source for (src/model/model.c build_weights and build_layer); the writer
 * holds one block at a time, never the full model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "ryz/cli.h"
#include "ryz/model.h"

typedef struct {
    const char *model, *out;
    int tp;
} shard_args;

/* The --help text. */
static void shard_usage(FILE *f) {
    fprintf(f, "usage: ryz shard --model SRC --tp K --out DIR\n"
               "  Writes DIR/rank{0..K-1}.safetensors (each rank's blocks only, float32) and\n"
               "  DIR/config.json (model config, tp, format version, sha256 of every rank\n"
               "  file). `--model DIR` then loads rank r from DIR/rank{r}.safetensors alone.\n"
               "  SRC: synthetic:PRESET[,key=value...], a llama2.c .bin, a Hugging Face\n"
               "  directory or another shard directory of the same K.\n");
}

/* Parses the options; EINVAL naming a bad or missing one. */
static ryz_status shard_parse(int argc, char **argv, shard_args *a, int *help) {
    *a = (shard_args){.tp = 0};
    *help = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        ryz_status st = RYZ_OK;
        if (!strcmp(o, "--help") || !strcmp(o, "-h"))
            *help = 1;
        else if (!strcmp(o, "--model"))
            a->model = ryz_arg_value(argc, argv, &i);
        else if (!strcmp(o, "--out"))
            a->out = ryz_arg_value(argc, argv, &i);
        else if (!strcmp(o, "--tp"))
            st = ryz_arg_int(o, ryz_arg_value(argc, argv, &i), 1, 256, &a->tp);
        else
            return ryz_error(RYZ_EINVAL, "shard: unknown option '%s' (see --help)", o);
        if (st != RYZ_OK)
            return st;
    }
    if (*help)
        return RYZ_OK;
    if (!a->model || !a->out || !a->tp)
        return ryz_error(RYZ_EINVAL, "shard: --model, --tp and --out are required");
    return RYZ_OK;
}

/* The blocks rank s->rank requests, in the order the model build asks:
 * embedding, LM head, final norm, then per layer the norms, wq, wk, wv, wo,
 * w1, w3, w2. b holds 3 + 9 * layers entries. */
static int rank_blocks(const ryz_model_config *c, const ryz_shard *s, ryz_block *b) {
    int n = 0, dim = c->dim, hd = s->head_dim, qd = s->heads * hd, kvd = s->kv_heads * hd;
    int64_t q0 = (int64_t)s->head_start * hd, kv0 = (int64_t)s->kv_start * hd;
    b[n++] = (ryz_block){RYZ_T_EMBED, s->vocab_start, s->vocab_local, 0, dim};
    b[n++] = (ryz_block){RYZ_T_CLS, s->vocab_start, s->vocab_local, 0, dim};
    b[n++] = (ryz_block){RYZ_T_FINAL_NORM, 0, 1, 0, dim};
    for (int l = 0; l < c->n_layers; l++) {
        b[n++] = (ryz_block){RYZ_T_LAYER(l, RYZ_T_ATT_NORM), 0, 1, 0, dim};
        b[n++] = (ryz_block){RYZ_T_LAYER(l, RYZ_T_FFN_NORM), 0, 1, 0, dim};
        b[n++] = (ryz_block){RYZ_T_LAYER(l, RYZ_T_WQ), q0, qd, 0, dim};
        b[n++] = (ryz_block){RYZ_T_LAYER(l, RYZ_T_WK), kv0, kvd, 0, dim};
        b[n++] = (ryz_block){RYZ_T_LAYER(l, RYZ_T_WV), kv0, kvd, 0, dim};
        b[n++] = (ryz_block){RYZ_T_LAYER(l, RYZ_T_WO), 0, dim, q0, qd};
        b[n++] = (ryz_block){RYZ_T_LAYER(l, RYZ_T_W1), s->hidden_start, s->hidden, 0, dim};
        b[n++] = (ryz_block){RYZ_T_LAYER(l, RYZ_T_W3), s->hidden_start, s->hidden, 0, dim};
        b[n++] = (ryz_block){RYZ_T_LAYER(l, RYZ_T_W2), 0, dim, s->hidden_start, s->hidden};
    }
    return n;
}

/* Opens the source as rank r of tp and writes that rank's file. */
static ryz_status shard_rank(const shard_args *a, int r, ryz_model_config *cfg, char hex[65]) {
    ryz_weights *w = NULL;
    ryz_block *blocks = NULL;
    ryz_shard s;
    ryz_status st = ryz_model_source_open(a->model, a->tp, r, cfg, &w);
    if (st == RYZ_OK)
        st = ryz_config_validate(cfg, a->tp);
    if (st == RYZ_OK && !(blocks = malloc((3 + 9 * (size_t)cfg->n_layers) * sizeof *blocks)))
        st = ryz_error(RYZ_ENOMEM, "out of memory");
    if (st == RYZ_OK) {
        ryz_shard_plan(cfg, a->tp, r, &s);
        int n = rank_blocks(cfg, &s, blocks);
        st = ryz_ckpt_write_rank(a->out, a->tp, r, cfg, w, blocks, n, hex);
    }
    if (st == RYZ_OK)
        printf("rank %d: %s/rank%d.safetensors sha256 %s\n", r, a->out, r, hex);
    free(blocks);
    ryz_weights_close(w);
    return st;
}

int ryz_cmd_shard(int argc, char **argv) {
    shard_args a;
    int help;
    char(*hex)[65] = NULL;
    ryz_model_config cfg, first;
    ryz_status st = shard_parse(argc, argv, &a, &help);
    if (st == RYZ_OK && help) {
        shard_usage(stdout);
        return 0;
    }
    if (st == RYZ_OK && !(hex = calloc((size_t)a.tp, sizeof *hex)))
        st = ryz_error(RYZ_ENOMEM, "out of memory");
    for (int r = 0; st == RYZ_OK && r < a.tp; r++) {
        st = shard_rank(&a, r, &cfg, hex[r]);
        if (r == 0)
            first = cfg;
    }
    if (st == RYZ_OK)
        st = ryz_ckpt_write_shard_config(a.out, a.model, a.tp, &first, hex);
    if (st == RYZ_OK)
        printf("wrote %s/config.json (tp %d)\n", a.out, a.tp);
    free(hex);
    return st == RYZ_OK ? 0 : ryz_cli_fail(st, NULL);
}
