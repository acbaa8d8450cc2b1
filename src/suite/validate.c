/* Up-front validation of a suite, so bad input fails before any launch. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ryz/ckpt.h"
#include "ryz/cuda.h"
#include "ryz/model.h"
#include "ryz/suite.h"

/* "WHERE:LINE: " for a key of s on `line`, into buf[cap]; "" when the suite
 * was not parsed from text or the key was not in it. */
static const char *at_line(const ryz_suite *s, int line, char *buf, size_t cap) {
    if (!s->where || line <= 0)
        return "";
    snprintf(buf, cap, "%s:%d: ", s->where, line);
    return buf;
}

/* The tokenizer.bin that encodes c's prompt_text, into path[cap]: the case's
 * tokenizer key; else, for a checkpoint, tokenizer.bin in its directory (a
 * .bin's, or a model directory itself) where that exists, since llama2.c
 * ships the two side by side; else ./tokenizer.bin, `ryz generate
 * --prompt`'s default. EINVAL naming both places when neither exists, and
 * for a synthetic model without the key: its vocabulary has no words. */
static ryz_status tokenizer_path(const ryz_suite *s, const ryz_suite_case *c, char *path,
                                 size_t cap) {
    char where[300];
    const char *w = at_line(s, c->prompt_line, where, sizeof where);
    if (c->tokenizer[0]) {
        snprintf(path, cap, "%s", c->tokenizer);
        return RYZ_OK;
    }
    if (!strncmp(c->model, "synthetic:", 10))
        return ryz_error(RYZ_EINVAL,
                         "%scase %s: prompt_text needs 'tokenizer = PATH' with a synthetic model "
                         "(%s has no tokenizer.bin of its own; give a llama2.c tokenizer.bin "
                         "whose ids fit its vocab, or the prompt as ids: 'prompt = 1 2 3')",
                         w, c->name, c->model);
    if (ryz_tokenizer_default(c->model, path, cap))
        return RYZ_OK;
    return ryz_error(RYZ_EINVAL,
                     "%scase %s: prompt_text: no tokenizer: neither tokenizer.bin beside %s nor "
                     "./tokenizer.bin exists (add 'tokenizer = PATH' to the case)",
                     w, c->name, c->model);
}

/* Encodes c's prompt_text into c->prompt (vocab: the model's), unless that
 * was done before. Errors as "WHERE:LINE: case NAME: prompt_text: ...". */
static ryz_status encode_text(const ryz_suite *s, ryz_suite_case *c, int vocab) {
    char path[RYZ_SUITE_PATH_MAX + 32], where[300];
    if (!c->prompt_text[0] || c->prompt)
        return RYZ_OK;
    ryz_status st = tokenizer_path(s, c, path, sizeof path);
    if (st != RYZ_OK)
        return st;
    st = ryz_tokenizer_prompt(path, vocab, c->prompt_text, &c->prompt, &c->prompt_len);
    if (st != RYZ_OK)
        return ryz_error_wrap(
            st, "%scase %s: prompt_text (tokens of the model's vocab %d)",
            at_line(s, c->tokenizer_line ? c->tokenizer_line : c->prompt_line, where, sizeof where),
            c->name, vocab);
    return RYZ_OK;
}

/* Case c of s: its model at each TP degree (its config into *out), then
 * its prompt (text encoded first) against the model's vocab and seq_len.
 * EINVAL/EIO naming the case, and for the prompt the file and line of its
 * key. */
static ryz_status validate_case(const ryz_suite *s, ryz_suite_case *c, ryz_model_config *out) {
    ryz_model_config cfg;
    char where[300];
    for (int i = 0; i < c->n_tp; i++) {
        ryz_weights *w = NULL;
        ryz_status st = ryz_model_source_open(c->model, c->tp[i], 0, &cfg, &w);
        ryz_weights_close(w);
        if (st == RYZ_OK) st = ryz_config_validate(&cfg, c->tp[i]);
        if (st != RYZ_OK) return ryz_error_wrap(st, "case %s", c->name);
    }
    *out = cfg;
    ryz_status st = encode_text(s, c, cfg.vocab);
    if (st != RYZ_OK)
        return st;
    const char *w = at_line(s, c->prompt_line, where, sizeof where);
    const char *what = c->prompt_text[0] ? "prompt_text" : "prompt";
    for (int i = 0; i < c->prompt_len; i++)
        if (c->prompt[i] >= cfg.vocab)
            return ryz_error(RYZ_EINVAL, "%scase %s: %s id %d outside vocab [0, %d)", w, c->name,
                             what, c->prompt[i], cfg.vocab);
    if (c->prompt_len + c->new_tokens - 1 > cfg.seq_len)
        return ryz_error(RYZ_EINVAL,
                         "%scase %s: %s %d + new_tokens %d exceed seq_len %d (shorten the "
                         "prompt or lower new_tokens)",
                         w, c->name, what, c->prompt_len, c->new_tokens, cfg.seq_len);
    return RYZ_OK;
}

/* The case's TP=1 f32 reference holds every weight of model cfg (as
 * validate_case read it) on one rank: refused here when its model is a
 * shard directory (each file holds one rank's part) or this machine lacks
 * the memory; after the backend checks, which say first what the machine
 * cannot run at all. */
static ryz_status check_whole_model(const ryz_suite_case *c, const ryz_model_config *cfg) {
    int shard_tp = 0;
    ryz_status st = ryz_ckpt_sharded_tp(c->model, &shard_tp);
    if (st == RYZ_OK && shard_tp > 0)
        return ryz_error(RYZ_EINVAL, "case %s: %s is a shard directory for tp %d, but a suite's "
                         "TP=1 baseline needs the whole model: give the checkpoint it was "
                         "sharded from (docs/checkpoints.md)", c->name, c->model, shard_tp);
    if (st == RYZ_OK)
        st = ryz_mem_check_available(ryz_model_weight_bytes(cfg) +
                                         ryz_model_kv_bytes(cfg, c->batch),
                                     "the weights and KV cache of its TP=1 f32 reference (all "
                                     "on one rank)");
    return st == RYZ_OK ? st : ryz_error_wrap(st, "case %s: %s", c->name, c->model);
}

/* Ranks of the suite on this node: as mpirun says when under it, else the
 * world `ryz suite` launches here; 0 when a launcher does not say. */
static int ranks_on_node(const ryz_suite *s) {
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (local) return atoi(local);
    if (ryz_mpi_launched()) return 0;
    return s->ranks ? s->ranks : ryz_suite_max_tp(s);
}

/* NCCL refuses two ranks on one GPU: with fewer devices than ranks on this
 * node the nccl set-up would fail after launch, so say it here. */
static ryz_status check_gpu_per_rank(const ryz_suite *s, const ryz_suite_case *c) {
    int devices = 0, ranks = ranks_on_node(s);
    ryz_status st = ryz_cuda_device_count(&devices);
    if (st != RYZ_OK) return ryz_error_wrap(st, "case %s: comm nccl", c->name);
    if (ranks <= devices) return RYZ_OK;
    return ryz_error(RYZ_EINVAL,
                     "case %s: comm nccl needs one GPU per rank, but %d ranks run on this node "
                     "and it has %d CUDA device%s (NCCL refuses two ranks on one GPU; ranks "
                     "sharing a GPU use comm = mpi, which stages collectives through host memory)",
                     c->name, ranks, devices, devices == 1 ? "" : "s");
}

/* The case's backend, comm and dtype: combinations no machine can run
 * first, then what this build and machine offer. */
static ryz_status validate_backend(const ryz_suite *s, const ryz_suite_case *c) {
    ryz_backend_kind kind;
    ryz_status st = ryz_backend_kind_parse(c->backend, &kind);
    if (st != RYZ_OK) return ryz_error_wrap(st, "case %s", c->name);
    if (!strcmp(c->comm, "nccl") && kind != RYZ_BACKEND_CUDA)
        return ryz_error(RYZ_EINVAL,
                         "case %s: comm nccl needs backend = cuda (NCCL moves GPU memory; "
                         "backend %s uses comm = mpi)",
                         c->name, c->backend);
    if (c->tf32 && kind != RYZ_BACKEND_CUDA)
        return ryz_error(RYZ_EINVAL,
                         "case %s: tf32 = 1 needs backend = cuda (backend %s computes in IEEE "
                         "fp32 only; drop tf32 or set backend = cuda)",
                         c->name, c->backend);
    st = ryz_backend_available(kind);
    if (st != RYZ_OK) return ryz_error_wrap(st, "case %s: backend %s", c->name, c->backend);
    return strcmp(c->comm, "nccl") ? RYZ_OK : check_gpu_per_rank(s, c);
}

void ryz_suite_case_tol(const ryz_suite *s, const ryz_suite_case *c, double *atol,
                        double *rtol) {
    int bf16 = c->dtype == RYZ_DTYPE_BF16, tf32 = c->tf32;
    double a = bf16 || tf32 ? 0 : s->atol, r = bf16 || tf32 ? 0 : s->rtol;
    if (bf16) a = fmax(a, s->bf16_atol), r = fmax(r, s->bf16_rtol);
    if (tf32) a = fmax(a, s->tf32_atol), r = fmax(r, s->tf32_rtol);
    *atol = a, *rtol = r;
}

int ryz_suite_loosened(const ryz_suite *s, const char *prefix, char *out, size_t cap) {
    static const char *const who[3] = {
        "outputs are judged against a looser bound than the fp32 default",
        "bf16 cases are judged against a looser bound than bf16's default",
        "tf32 cases are judged against a looser bound than tf32's default"};
    const struct {
        const char *key;
        double value, def;
        int kind; /* index into who */
    } tol[] = {{"atol", s->atol, RYZ_F32_TOL, 0},
               {"rtol", s->rtol, RYZ_F32_TOL, 0},
               {"bf16_atol", s->bf16_atol, RYZ_BF16_TOL, 1},
               {"bf16_rtol", s->bf16_rtol, RYZ_BF16_TOL, 1},
               {"tf32_atol", s->tf32_atol, RYZ_TF32_TOL, 2},
               {"tf32_rtol", s->tf32_rtol, RYZ_TF32_TOL, 2}};
    int n = 0;
    size_t len = 0;
    if (cap)
        out[0] = '\0';
    for (size_t i = 0; i < sizeof tol / sizeof tol[0]; i++) {
        if (!(tol[i].value > tol[i].def))
            continue;
        n++;
        if (len < cap)
            len += (size_t)snprintf(out + len, cap - len,
                                    "%ssuite loosens %s to %g (default %g): %s\n", prefix,
                                    tol[i].key, tol[i].value, tol[i].def, who[tol[i].kind]);
    }
    return n;
}

int ryz_suite_needs_comm(const ryz_suite *s, const char *comm) {
    for (int i = 0; i < s->n_cases; i++)
        if (!strcmp(s->cases[i].comm, comm)) return 1;
    return 0;
}

ryz_status ryz_suite_check_repeat(const ryz_suite *s) {
    if (s->repeat > RYZ_SUITE_MAX_REPEAT)
        return ryz_error(RYZ_EINVAL, "suite %s: repeat %d above the %d timed runs kept per phase",
                         s->name, s->repeat, RYZ_SUITE_MAX_REPEAT);
    if (s->extra_runs > RYZ_SUITE_MAX_REPEAT - s->repeat)
        return ryz_error(RYZ_EINVAL, "suite %s: repeat %d + extra_runs %d above the %d timed runs "
                         "kept per phase (extra_runs %d at most)", s->name, s->repeat,
                         s->extra_runs, RYZ_SUITE_MAX_REPEAT, RYZ_SUITE_MAX_REPEAT - s->repeat);
    return RYZ_OK;
}

ryz_status ryz_suite_validate(ryz_suite *s) {
    for (int i = 0; i < s->n_cases; i++) {
        ryz_model_config cfg;
        ryz_status st = validate_case(s, &s->cases[i], &cfg);
        if (st == RYZ_OK) st = validate_backend(s, &s->cases[i]);
        if (st == RYZ_OK) st = check_whole_model(&s->cases[i], &cfg);
        if (st != RYZ_OK) return st;
    }
    ryz_status st = ryz_suite_check_repeat(s);
    if (st != RYZ_OK)
        return st;
    if (s->ranks && s->ranks < ryz_suite_max_tp(s))
        return ryz_error(RYZ_EINVAL, "suite %s: ranks %d smaller than its largest tp %d",
                         s->name, s->ranks, ryz_suite_max_tp(s));
    return RYZ_OK;
}
