/* ryz generate: greedy decoding of one prompt, optionally sharded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "ryz/cli.h"
#include "ryz/cuda.h"
#include "ryz/model.h"
#include "ryz/suite.h"

typedef struct {
    const char *model, *ids, *text, *tokenizer, *dump;
    char tok_default[4096]; /* --prompt's tokenizer when none is named (ryz_tokenizer_default) */
    int new_tokens, tp, tp_set, batch, threads;
    const char *comm; /* --comm: mpi (default), nccl or shm */
    int tf32; /* --tf32: cuBLAS may use TF32 (cuda) */
    ryz_dtype dtype;
    ryz_backend_kind backend;
} gen_args;

static void gen_usage(FILE *f) {
    fprintf(f, "usage: ryz generate --model SRC (--prompt-ids \"1 2 3\" | --prompt TEXT\n"
               "                    [--tokenizer tokenizer.bin]) --new-tokens N\n"
               "                    [--tp K] [--batch B] [--threads T] [--dtype f32|bf16]\n"
               "                    [--backend cpu|cuda [--tf32]] [--comm mpi|nccl|shm]\n"
               "                    [--dump-logits FILE]\n"
               "  Prints the prompt and generated ids as one line 'ids: ...'. With --tp K > 1\n"
               "  outside mpirun it launches K ranks. --dump-logits writes float32 LE, one\n"
               "  row of vocab floats per forward position (sequence 0). --dtype bf16 stores\n"
               "  the weight matrices as bfloat16 (fp32 accumulation; half the bytes).\n"
               "  --prompt encodes text with llama2.c's tokenizer (default: tokenizer.bin\n"
               "  beside the checkpoint, else ./tokenizer.bin);\n"
               "  with a tokenizer the sequence is also printed as one 'text:' line.\n"
               "  --backend cuda runs each rank on a GPU (its local rank's) and needs a CUDA\n"
               "  build (make CUDA=1) and a device; --tf32 lets its fp32 GEMMs use TF32\n"
               "  tensor cores (10 mantissa bits). --comm nccl (cuda only) all-reduces\n"
               "  device buffers with NCCL, one GPU per rank; with mpi (the default) a cuda\n"
               "  run stages each collective through host memory. --comm shm uses ryz's own\n"
               "  shared-memory collectives (all ranks on one node) instead of Open MPI's.\n"
               "  SRC: synthetic:PRESET[,key=value...] (presets tiny 15m 110m 1b 7b), a\n"
               "  llama2.c .bin, a Hugging Face directory, or a `ryz shard` directory (its tp\n"
               "  is the default --tp).\n");
}

/* --comm's value: "mpi", "nccl" or "shm". */
static ryz_status gen_parse_comm(const char *v, gen_args *a) {
    if (v && (!strcmp(v, "mpi") || !strcmp(v, "nccl") || !strcmp(v, "shm"))) {
        a->comm = v;
        return RYZ_OK;
    }
    return ryz_error(RYZ_EINVAL, "--comm '%s' unknown (known: mpi, nccl, shm)", v ? v : "");
}

static ryz_status gen_parse(int argc, char **argv, gen_args *a, int *help) {
    *a = (gen_args){.new_tokens = 16, .tp = 1, .batch = 1, .threads = 1, .comm = "mpi"};
    *help = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        ryz_status st = RYZ_OK;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) *help = 1;
        else if (!strcmp(o, "--model")) a->model = ryz_arg_value(argc, argv, &i);
        else if (!strcmp(o, "--prompt-ids")) a->ids = ryz_arg_value(argc, argv, &i);
        else if (!strcmp(o, "--prompt")) a->text = ryz_arg_value(argc, argv, &i);
        else if (!strcmp(o, "--tokenizer")) a->tokenizer = ryz_arg_value(argc, argv, &i);
        else if (!strcmp(o, "--dump-logits")) a->dump = ryz_arg_value(argc, argv, &i);
        else if (!strcmp(o, "--new-tokens"))
            st = ryz_arg_int(o, ryz_arg_value(argc, argv, &i), 1, 1 << 20, &a->new_tokens);
        else if (!strcmp(o, "--tp"))
            st = ryz_arg_int(o, ryz_arg_value(argc, argv, &i), 1, 4096, &a->tp), a->tp_set = 1;
        else if (!strcmp(o, "--batch"))
            st = ryz_arg_int(o, ryz_arg_value(argc, argv, &i), 1, 4096, &a->batch);
        else if (!strcmp(o, "--threads"))
            st = ryz_arg_int(o, ryz_arg_value(argc, argv, &i), 1, 1024, &a->threads);
        else if (!strcmp(o, "--dtype")) {
            const char *v = ryz_arg_value(argc, argv, &i);
            st = v ? ryz_dtype_parse(v, &a->dtype) : ryz_error(RYZ_EINVAL, "--dtype needs a value");
        } else if (!strcmp(o, "--backend")) {
            const char *v = ryz_arg_value(argc, argv, &i);
            st = v ? ryz_backend_kind_parse(v, &a->backend)
                   : ryz_error(RYZ_EINVAL, "--backend needs a value (cpu or cuda)");
        } else if (!strcmp(o, "--comm")) st = gen_parse_comm(ryz_arg_value(argc, argv, &i), a);
        else if (!strcmp(o, "--tf32")) a->tf32 = 1;
        else return ryz_error(RYZ_EINVAL, "generate: unknown option '%s' (see --help)", o);
        if (st != RYZ_OK) return st;
    }
    if (*help) return RYZ_OK;
    if (!a->model) return ryz_error(RYZ_EINVAL, "generate: --model is required");
    if (!a->ids == !a->text)
        return ryz_error(RYZ_EINVAL, "generate: give one of --prompt-ids or --prompt");
    ryz_tokenizer_default(a->model, a->tok_default, sizeof a->tok_default);
    if (!strcmp(a->comm, "nccl") && a->backend != RYZ_BACKEND_CUDA)
        return ryz_error(RYZ_EINVAL,
                         "generate: --comm nccl needs --backend cuda (NCCL moves GPU memory; the "
                         "cpu backend uses --comm mpi)");
    if (a->tf32 && a->backend != RYZ_BACKEND_CUDA)
        return ryz_error(RYZ_EINVAL, "generate: --tf32 needs --backend cuda (the cpu backend "
                         "computes in IEEE fp32 only)");
    return RYZ_OK;
}

/* The cpu backend's weights and KV cache of this node's ranks (all of
 * them when ryz launches the job; under mpirun, the node's share of the tp
 * shards) against the memory available, before any rank builds its
 * shard. */
static ryz_status gen_check_memory(const gen_args *a, const ryz_model_config *cfg) {
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    int here = local && atoi(local) > 0 && atoi(local) < a->tp ? atoi(local) : a->tp;
    double weights = (double)ryz_model_weight_bytes(cfg) * ryz_dtype_size(a->dtype) / 4;
    double bytes = (weights + (double)ryz_model_kv_bytes(cfg, a->batch)) * here / a->tp;
    char what[160];
    snprintf(what, sizeof what, "%s: the %s weights and KV cache of %d rank(s) on this node",
             a->model, ryz_dtype_name(a->dtype), here);
    return ryz_mem_check_available((size_t)bytes, what);
}

/* The tokenizer of --tokenizer, or --prompt's default, into *t (NULL
 * when the command has neither); its errors name the option. */
static ryz_status gen_tokenizer(const gen_args *a, int vocab, ryz_tokenizer **t) {
    *t = NULL;
    if (!a->tokenizer && !a->text) return RYZ_OK;
    ryz_status st = ryz_tokenizer_load(a->tokenizer ? a->tokenizer : a->tok_default, vocab, t);
    return st == RYZ_OK ? st : ryz_error_wrap(st, "tokenizer (--tokenizer)");
}

/* With a tokenizer (gen_tokenizer), the sequence as text: one "text: ..."
 * line, pieces decoded as llama2.c's run.c does. */
static ryz_status gen_text(const gen_args *a, const int *ids, int len, int vocab) {
    ryz_tokenizer *t = NULL;
    ryz_status st = gen_tokenizer(a, vocab, &t);
    if (st != RYZ_OK || !t) return st;
    printf("text: ");
    for (int i = 1; i < len; i++) {
        const char *piece = ryz_tokenizer_decode(t, ids[i - 1], ids[i]);
        for (const char *c = piece; *c; c++) putchar(*c == '\n' ? ' ' : *c); /* one line */
    }
    printf("\n");
    ryz_tokenizer_free(t);
    return RYZ_OK;
}

/* Rank 0's output: the ids line, the text line and the logits dump. */
static ryz_status gen_report(const gen_args *a, const int *ids, int len, const float *logits,
                             int vocab) {
    printf("ids:");
    for (int i = 0; i < len; i++) printf(" %d", ids[i]);
    printf("\n");
    ryz_status st = gen_text(a, ids, len, vocab);
    fflush(stdout);
    if (st != RYZ_OK || !a->dump) return st;
    FILE *f = fopen(a->dump, "wb");
    if (!f) return ryz_error(RYZ_EIO, "cannot write --dump-logits %s", a->dump);
    size_t n = (size_t)(len - 1) * vocab;
    size_t w = fwrite(logits, sizeof(float), n, f);
    if (fclose(f) != 0 || w != n)
        return ryz_error(RYZ_EIO, "short write to --dump-logits %s", a->dump);
    return RYZ_OK;
}

/* Prints every rank's memory by category (in the backend's memory: device
 * bytes on cuda) and its peak RSS, gathered to rank 0. */
static ryz_status gen_memory(ryz_comm *c, const ryz_backend *be) {
    float mine[4] = {(float)ryz_backend_mem_bytes(be, RYZ_MEM_WEIGHTS),
                     (float)ryz_backend_mem_bytes(be, RYZ_MEM_KV),
                     (float)ryz_backend_mem_bytes(be, RYZ_MEM_SCRATCH), (float)ryz_mem_peak_rss()};
    int k = ryz_comm_size(c);
    float all[4 * 64];
    if (k > 64) return RYZ_OK;
    ryz_status st = ryz_comm_all_gather(c, mine, all, 4);
    if (st != RYZ_OK || ryz_comm_rank(c) != 0) return st;
    fprintf(stderr, "memory (MiB)  rank  weights  kv_cache  scratch  peak_rss  (%s memory)\n",
            be->iface->name);
    for (int r = 0; r < k; r++)
        fprintf(stderr, "              %4d %8.1f %9.1f %8.1f %9.1f\n", r, all[4 * r] / 1048576,
                all[4 * r + 1] / 1048576, all[4 * r + 2] / 1048576, all[4 * r + 3] / 1048576);
    return RYZ_OK;
}

/* Builds the shard on this rank of a tp group and generates. */
static ryz_status gen_run(const gen_args *a, const ryz_model_config *cfg, const int *prompt,
                          int P, ryz_comm *tpc) {
    ryz_backend be = {0};
    ryz_model *m = NULL;
    int len = P + a->new_tokens, B = a->batch;
    int *prompts = malloc((size_t)B * P * sizeof(int)), *ids = malloc((size_t)B * len * sizeof(int));
    float *logits = NULL;
    ryz_status st = prompts && ids ? RYZ_OK : ryz_error(RYZ_ENOMEM, "out of memory");
    for (int b = 0; st == RYZ_OK && b < B; b++)
        for (int i = 0; i < P; i++) prompts[b * P + i] = prompt[i];
    ryz_backend_opts bo = {.threads = a->threads, .tf32 = a->tf32};
    if (st == RYZ_OK) st = ryz_backend_init_opts(a->backend, &bo, &be);
    ryz_model_opts opts = {.max_batch = B, .max_chunk = P < cfg->seq_len ? P : cfg->seq_len,
                           .dtype = a->dtype};
    if (st == RYZ_OK) st = ryz_model_open(a->model, tpc, &be, &opts, &m);
    if (st == RYZ_OK && a->dump && ryz_comm_rank(tpc) == 0) {
        logits = malloc((size_t)B * (len - 1) * cfg->vocab * sizeof(float));
        if (!logits) st = ryz_error(RYZ_ENOMEM, "out of memory for --dump-logits");
    }
    if (st == RYZ_OK) st = ryz_model_generate(m, prompts, B, P, a->new_tokens, NULL, ids, logits, NULL);
    if (st == RYZ_OK) st = gen_memory(tpc, &be);
    if (st == RYZ_OK && ryz_comm_rank(tpc) == 0) st = gen_report(a, ids, len, logits, cfg->vocab);
    ryz_model_free(m);
    ryz_backend_free(&be);
    free(prompts);
    free(ids);
    free(logits);
    return st;
}

int ryz_cmd_generate(int argc, char **argv) {
    gen_args a;
    int help, code, *prompt = NULL, P = 0;
    ryz_model_config cfg;
    ryz_status st = gen_parse(argc, argv, &a, &help);
    if (st == RYZ_OK && help) {
        gen_usage(stdout);
        return 0;
    }
    int shard_tp = 0;
    if (st == RYZ_OK && !a.tp_set) st = ryz_ckpt_sharded_tp(a.model, &shard_tp);
    if (shard_tp > 0) a.tp = shard_tp; /* a shard directory runs at its own tp */
    ryz_weights *w = NULL;
    if (st == RYZ_OK) st = ryz_model_source_open(a.model, a.tp, 0, &cfg, &w);
    ryz_weights_close(w);
    if (st == RYZ_OK) st = ryz_config_validate(&cfg, a.tp);
    if (st == RYZ_OK)
        st = a.text ? ryz_tokenizer_prompt(a.tokenizer ? a.tokenizer : a.tok_default, cfg.vocab,
                                           a.text, &prompt, &P)
                    : ryz_parse_ids(a.ids, &prompt, &P);
    for (int i = 0; st == RYZ_OK && i < P; i++)
        if (prompt[i] >= cfg.vocab)
            st = ryz_error(RYZ_EINVAL, "prompt id %d outside vocab [0, %d)", prompt[i], cfg.vocab);
    if (st == RYZ_OK && P + a.new_tokens - 1 > cfg.seq_len)
        st = ryz_error(RYZ_EINVAL, "prompt %d + new tokens %d exceed seq_len %d", P,
                       a.new_tokens, cfg.seq_len);
    if (st == RYZ_OK) st = ryz_backend_available(a.backend); /* before any rank starts */
    if (st == RYZ_OK && a.backend == RYZ_BACKEND_CPU) st = gen_check_memory(&a, &cfg);
    const char *opts[] = {"--model", "--tokenizer", "--dump-logits"},
               *paths[] = {a.model, a.tokenizer ? a.tokenizer : a.text ? a.tok_default : NULL,
                           a.dump}; /* --prompt's default tokenizer is an input too */
    if (st == RYZ_OK) st = ryz_args_distinct_files(3, 2, opts, paths);
    if (st == RYZ_OK && a.dump) st = ryz_results_check_writable(a.dump);
    if (st == RYZ_OK && a.tokenizer && !a.text) { /* --prompt's read it already */
        ryz_tokenizer *t = NULL;
        st = gen_tokenizer(&a, cfg.vocab, &t);
        ryz_tokenizer_free(t);
    }
    if (st != RYZ_OK) {
        free(prompt);
        return ryz_cli_fail(st, NULL);
    }
    ryz_comm *world = NULL, *over = NULL, *tpc = NULL; /* over: the --comm world, unless mpi */
    st = ryz_cli_world(a.tp, argc + 1, argv - 1, &world, &code);
    if (st == RYZ_OK && !world) { /* the job ran under mpirun, launched from here */
        free(prompt);
        return code;
    }
    if (st == RYZ_OK) st = ryz_cli_comm_world(a.comm, &over);
    if (st == RYZ_OK) st = ryz_comm_split_first(over ? over : world, a.tp, &tpc);
    if (st == RYZ_OK && tpc) st = gen_run(&a, &cfg, prompt, P, tpc);
    code = st == RYZ_OK ? 0 : ryz_cli_fail(st, world);
    ryz_comm_free(tpc);
    ryz_comm_free(over);
    ryz_cli_world_free(world); /* also the singleton MPI of a one-rank nccl or shm run */
    free(prompt);
    return code;
}
