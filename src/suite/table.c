/* The per-case table: correctness, speed and memory of each TP degree. */
#include <stdio.h>
#include <string.h>

#include "ryz/suite.h"

void ryz_suite_print_case_header(const ryz_suite_case *c, int positions, FILE *out) {
    /* A prompt_text's length is known once encoded (a run), not from the
     * suite text alone (`ryz show` re-reads that). */
    char prompt[32];
    if (!c->prompt_text[0])
        snprintf(prompt, sizeof prompt, "%d", c->prompt_len);
    else if (c->prompt_len)
        snprintf(prompt, sizeof prompt, "%d (text)", c->prompt_len);
    else
        snprintf(prompt, sizeof prompt, "text");
    fprintf(out, "\ncase %s: %s  batch %d  prompt %s  new_tokens %d  (%d positions compared)\n",
            c->name, c->model, c->batch, prompt, c->new_tokens, positions);
    int bf16 = c->dtype == RYZ_DTYPE_BF16;
    if (bf16 || c->tf32) /* the tolerance ryz_suite_case_tol gives them */
        fprintf(out, "  %s at every TP, each against the f32 TP=1 reference with %s\n",
                bf16 && c->tf32 ? "bf16 weights and TF32 GEMMs" : bf16 ? "bf16 weights"
                                                                       : "TF32 GEMMs",
                bf16 && c->tf32 ? "the larger of bf16's and tf32's tolerances"
                : bf16          ? "bf16's tolerance (bf16_atol, bf16_rtol)"
                                : "tf32's tolerance (tf32_atol, tf32_rtol)");
    if (*c->backend && strcmp(c->backend, "cpu") != 0) /* "": a file without its suite */
        fprintf(out, "  backend %s: every TP against the cpu backend's f32 TP=1 reference; "
                     "MiB/rank in %s memory, roof%% not measured\n",
                c->backend, c->backend);
    if (strcmp(c->comm, "nccl") == 0)
        fprintf(out, "  comm nccl: collectives in place on device memory; isolated reference "
                     "not measured (its harness uses host buffers)\n");
    fprintf(out, "   tp    max_abs    max_rel    min_cos   top1      greedy         prefill_ms "
                 "decode_tok/s speedup   eff  comm%%  roof%% MiB/rank mem_eff  result\n");
    fflush(out);
}

static const ryz_row_timing *find_timing(const ryz_results *r, const char *name, int tp,
                                         const char *phase) {
    for (size_t i = 0; i < r->n_timing; i++)
        if (r->timing[i].tp == tp && !strcmp(r->timing[i].case_name, name) &&
            !strcmp(r->timing[i].phase, phase))
            return &r->timing[i];
    return NULL;
}

static const ryz_row_correctness *find_correctness(const ryz_results *r, const char *name,
                                                   int tp) {
    for (size_t i = 0; i < r->n_correctness; i++)
        if (r->correctness[i].tp == tp && !strcmp(r->correctness[i].case_name, name))
            return &r->correctness[i];
    return NULL;
}

static void print_correctness(const ryz_row_correctness *c, FILE *out) {
    char top1[24], greedy[32];
    if (!c) {
        fprintf(out, "  %9s  %9s  %9s  %-9s %-14s", "-", "-", "-", "-", "(baseline)");
        return;
    }
    snprintf(top1, sizeof top1, "%d/%d", c->top1_agree, c->positions);
    if (c->greedy_divergence < 0) snprintf(greedy, sizeof greedy, "identical");
    else snprintf(greedy, sizeof greedy, "%s@%d", c->greedy_class == 1 ? "near-tie" : "MISMATCH",
                  c->greedy_divergence);
    fprintf(out, "  %9.3e  %9.3e  %9.7f  %-9s %-14s", c->max_abs, c->max_rel, c->min_cos, top1,
            greedy);
}

/* A p50 cell ("12.3 us"), "-" when not measured (0: a size the harness
 * cannot express, or a comm = nccl case). */
static void us_cell(double us, char *cell, size_t cap) {
    if (us > 0) snprintf(cell, cap, "%6.1f us", us);
    else snprintf(cell, cap, "-");
}

/* Under a TP row, its collectives, p50 per call: in situ (rank 0's calls),
 * last arriver and wait (per call across the ranks), isolated back to back,
 * the weights read before each call in situ, isolated after reading as
 * much, and the last arriver over that. */
static void print_collectives(const ryz_results *r, const char *name, int tp, FILE *out) {
    int head = 0;
    for (size_t i = 0; i < r->n_collectives; i++) {
        const ryz_row_collective *c = &r->collectives[i];
        if (c->tp != tp || strcmp(c->case_name, name)) continue;
        if (!head++)
            fprintf(out, "       %-14s %8s %6s %9s %9s %9s %9s %9s %9s %8s\n", "collective p50",
                    "bytes", "calls", "in-situ", "last-arr", "wait", "isolated", "streamed",
                    "iso+read", "last/i+r");
        char iso[16], evict[16], ratio[16] = "-";
        us_cell(c->isolated_p50_us, iso, sizeof iso);
        us_cell(c->isolated_evict_p50_us, evict, sizeof evict);
        if (c->last_over_evict > 0) snprintf(ratio, sizeof ratio, "%.2f", c->last_over_evict);
        fprintf(out, "       %-14s %8llu %6llu %6.1f us %6.1f us %6.1f us %9s %5.1f MiB %9s %8s\n",
                c->op, (unsigned long long)c->bytes, (unsigned long long)c->count, c->p50_us,
                c->p50_last_us, c->wait_p50_us, iso, c->streamed_bytes / 1048576.0, evict, ratio);
    }
}

void ryz_suite_print_row(const ryz_results *r, const char *name, int tp, FILE *out) {
    if (!r) return;
    int ttp = tp == 0 ? 1 : tp; /* TP=1 timing is the baseline's */
    const ryz_row_correctness *c = tp ? find_correctness(r, name, tp) : NULL;
    const ryz_row_timing *pre = find_timing(r, name, ttp, "prefill");
    const ryz_row_timing *dec = find_timing(r, name, ttp, "decode");
    if ((tp && !c) || !pre || !dec) return;
    ryz_memory_summary mem;
    ryz_results_memory_of(r, name, ttp, &mem);
    if (tp) fprintf(out, "  %3d", tp);
    else fprintf(out, " base");
    print_correctness(c, out);
    fprintf(out, " %10.2f %12.1f %7.2f %5.2f %5.1f%% %5.1f%% %8.1f %7.3f  %s\n",
            1e3 * pre->median_s, dec->tokens_per_s, dec->speedup, dec->efficiency,
            100 * dec->comm_fraction, 100 * dec->roofline_fraction, mem.largest_total / 1048576.0,
            mem.ranks ? mem.efficiency : 0,
            !c ? "" : c->pass ? "PASS" : "FAIL");
    if (tp > 1) print_collectives(r, name, tp, out);
    fflush(out);
}
