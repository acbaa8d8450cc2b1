/* Up-front validation of a suite, so bad input fails before any launch. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ryz/cuda.h"
#include "ryz/model.h"
#include "ryz/suite.h"

static ryz_status validate_case(const ryz_suite_case *c) {
    ryz_model_config cfg;
    for (int i = 0; i < c->n_tp; i++) {
        ryz_weights *w = NULL;
        ryz_status st = ryz_model_source_open(c->model, c->tp[i], 0, &cfg, &w);
        ryz_weights_close(w);
        if (st == RYZ_OK) st = ryz_config_validate(&cfg, c->tp[i]);
        if (st != RYZ_OK) return ryz_error_wrap(st, "case %s", c->name);
    }
    for (int i = 0; i < c->prompt_len; i++)
        if (c->prompt[i] >= cfg.vocab)
            return ryz_error(RYZ_EINVAL, "case %s: prompt id %d outside vocab [0, %d)", c->name,
                             c->prompt[i], cfg.vocab);
    if (c->prompt_len + c->new_tokens - 1 > cfg.seq_len)
        return ryz_error(RYZ_EINVAL, "case %s: prompt %d + new_tokens %d exceed seq_len %d",
                         c->name, c->prompt_len, c->new_tokens, cfg.seq_len);
    return RYZ_OK;
}

/* The case's TP=1 f32 reference holds every weight on one rank: refused
 * here when its model is a shard directory (each file holds one rank's
 * part) or this machine lacks the memory; after the backend checks, which
 * say first what the machine cannot run at all. */
static ryz_status check_whole_model(const ryz_suite_case *c) {
    ryz_model_config cfg;
    ryz_weights *w = NULL;
    int shard_tp = 0;
    ryz_status st = ryz_ckpt_sharded_tp(c->model, &shard_tp);
    if (st == RYZ_OK && shard_tp > 0)
        return ryz_error(RYZ_EINVAL, "case %s: %s is a shard directory for tp %d, but a suite's "
                         "TP=1 baseline needs the whole model: give the checkpoint it was "
                         "sharded from (docs/checkpoints.md)", c->name, c->model, shard_tp);
    if (st == RYZ_OK) st = ryz_model_source_open(c->model, 1, 0, &cfg, &w);
    ryz_weights_close(w);
    if (st == RYZ_OK)
        st = ryz_mem_check_available(ryz_model_weight_bytes(&cfg),
                                     "the weights of its TP=1 f32 reference (all on one rank)");
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

int ryz_suite_needs_comm(const ryz_suite *s, const char *comm) {
    for (int i = 0; i < s->n_cases; i++)
        if (!strcmp(s->cases[i].comm, comm)) return 1;
    return 0;
}

ryz_status ryz_suite_validate(const ryz_suite *s) {
    for (int i = 0; i < s->n_cases; i++) {
        ryz_status st = validate_case(&s->cases[i]);
        if (st == RYZ_OK) st = validate_backend(s, &s->cases[i]);
        if (st == RYZ_OK) st = check_whole_model(&s->cases[i]);
        if (st != RYZ_OK) return st;
    }
    if (s->repeat > RYZ_SUITE_MAX_REPEAT)
        return ryz_error(RYZ_EINVAL, "suite %s: repeat %d above the %d timed runs kept per phase",
                         s->name, s->repeat, RYZ_SUITE_MAX_REPEAT);
    if (s->ranks && s->ranks < ryz_suite_max_tp(s))
        return ryz_error(RYZ_EINVAL, "suite %s: ranks %d smaller than its largest tp %d",
                         s->name, s->ranks, ryz_suite_max_tp(s));
    return RYZ_OK;
}
