/* Greedy generation and teacher forcing on top of the forward pass. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ryz/model.h"

/* Copies row t of every sequence's forward output (B, T, vpad) to position
 * pos of the (B, rows, vocab) logits record. */
static void keep_logits(float *dst, const float *src, int B, int T, int t, int pos, int rows,
                        int vocab, int vpad) {
    for (int b = 0; b < B; b++)
        memcpy(dst + ((size_t)b * rows + pos) * vocab, src + ((size_t)b * T + t) * vpad,
               (size_t)vocab * sizeof(float));
}

/* Prefills prompt (B, P) in chunks of at most max_chunk; next (B)
 * receives each sequence's greedy id after the prompt (from the final
 * chunk). Without a logits record and with last-only prefill set, only the
 * last row's logits are computed (the LM head is ~1/4 of a small model's
 * prefill). */
static ryz_status prefill(ryz_model *m, const int *prompt, int B, int P, int *tok,
                          float *logits, int rows, int *next) {
    int vocab = ryz_model_config_of(m)->vocab, vpad = ryz_model_shard(m)->vocab_padded;
    int max_chunk = ryz_model_opts_of(m)->max_chunk;
    int last = !logits && ryz_model_last_only_prefill(m);
    for (int pos = 0, T; pos < P; pos += T) {
        T = P - pos < max_chunk ? P - pos : max_chunk;
        for (int b = 0; b < B; b++)
            memcpy(tok + (size_t)b * T, prompt + (size_t)b * P + pos, (size_t)T * sizeof(int));
        ryz_status st = ryz_model_step(m, tok, B, T, pos, last, pos + T == P ? next : NULL,
                                       logits != NULL);
        const float *out = NULL;
        if (st == RYZ_OK && logits) st = ryz_model_step_logits(m, &out);
        if (st != RYZ_OK) return st;
        for (int i = 0; logits && i < T; i++)
            keep_logits(logits, out, B, T, i, pos + i, rows, vocab, vpad);
    }
    return RYZ_OK;
}

/* One decode step at pos for tok (B); next receives the greedy ids, and
 * the logits record (when given) row pos. */
static ryz_status decode_step(ryz_model *m, const int *tok, int B, int pos, int *next,
                              float *logits, int rows) {
    int vocab = ryz_model_config_of(m)->vocab, vpad = ryz_model_shard(m)->vocab_padded;
    ryz_status st = ryz_model_step(m, tok, B, 1, pos, 0, next, logits != NULL);
    const float *out = NULL;
    if (st == RYZ_OK && logits) st = ryz_model_step_logits(m, &out);
    if (st == RYZ_OK && logits) keep_logits(logits, out, B, 1, 0, pos, rows, vocab, vpad);
    return st;
}

ryz_status ryz_model_generate(ryz_model *m, const int *prompt, int B, int P, int n_new,
                              const int *forced, int *ids, float *logits, ryz_gen_timing *tm) {
    const ryz_model_config *c = ryz_model_config_of(m);
    int len = P + n_new, rows = len - 1, max_chunk = ryz_model_opts_of(m)->max_chunk;
    if (P < 1 || n_new < 1 || rows > c->seq_len)
        return ryz_error(RYZ_EINVAL, "prompt %d + new tokens %d - 1 must be in [1, seq_len %d]",
                         P, n_new, c->seq_len);
    size_t chunk = (size_t)B * (size_t)(P < max_chunk ? P : max_chunk);
    int *tok = malloc((chunk + (size_t)B) * sizeof(int)), *next = tok + chunk;
    if (!tok) return ryz_error(RYZ_ENOMEM, "out of memory for %d x %d prompt tokens", B, P);
    for (int b = 0; b < B; b++)
        memcpy(ids + (size_t)b * len, prompt + (size_t)b * P, (size_t)P * sizeof(int));
    ryz_gen_timing t = {0};
    void *hook_ctx;
    ryz_step_hook hook = ryz_model_step_hook(m, &hook_ctx);
    double t0 = ryz_time_now(), hook_s = 0;
    ryz_status st = prefill(m, prompt, B, P, tok, logits, rows, next);
    t.prefill_s = ryz_time_now() - t0;
    t0 = ryz_time_now();
    for (int pos = P; st == RYZ_OK; pos++) {
        for (int b = 0; b < B; b++) {
            ids[(size_t)b * len + pos] = next[b];
            tok[b] = forced ? forced[(size_t)b * len + pos] : next[b];
        }
        if (pos == len - 1) break;
        st = decode_step(m, tok, B, pos, next, logits, rows);
        t.decode_steps++;
        if (st == RYZ_OK && hook) {
            double h0 = ryz_time_now();
            st = hook(hook_ctx);
            hook_s += ryz_time_now() - h0;
        }
    }
    t.decode_s = ryz_time_now() - t0 - hook_s;
    if (tm) *tm = t;
    free(tok);
    return st;
}
