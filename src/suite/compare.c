/* Logit comparison between the baseline and a sharded run. */
#include <math.h>

#include "ryz/backend.h"
#include "ryz/suite.h"

static double row_range(const float *r, int n) {
    double m = 0;
    for (int i = 0; i < n; i++)
        if (fabs(r[i]) > m) m = fabs(r[i]);
    return m > 0 ? m : 1.0;
}

int ryz_compare_near_tie(const float *row, int vocab, double atol, double rtol) {
    int a = -1, b = -1; /* top-1 and top-2 */
    for (int i = 0; i < vocab; i++) {
        if (a < 0 || row[i] > row[a]) b = a, a = i;
        else if (b < 0 || row[i] > row[b]) b = i;
    }
    if (b < 0) return 0;
    double bound = atol * row_range(row, vocab) + rtol * fabs(row[a]);
    return row[a] - row[b] <= 2 * bound;
}

/* Compares one row, folding into out. A NaN on either side is out of
 * tolerance; equal infinities are skipped in the cosine. */
static void compare_row(const float *b, const float *a, int row, int vocab, double atol,
                        double rtol, ryz_compare *out) {
    double range = row_range(b, vocab), dot = 0, na = 0, nb = 0;
    for (int i = 0; i < vocab; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (a[i] == b[i]) d = 0; /* equal infinities */
        int bad = isnan(d) || d > atol * range + rtol * fabs(b[i]);
        out->out_of_tol += bad;
        if (d > out->max_abs || (isnan(d) && !isinf(out->max_abs))) {
            out->max_abs = isnan(d) ? INFINITY : d;
            out->worst_row = row, out->worst_col = i;
            out->worst_base = b[i], out->worst_cand = a[i];
        }
        if (d / range > out->max_rel) out->max_rel = d / range;
        if (!isfinite(a[i]) && a[i] == b[i]) continue;
        dot += (double)a[i] * b[i], na += (double)a[i] * a[i], nb += (double)b[i] * b[i];
    }
    double cos = na == 0 && nb == 0 ? 1.0 : dot / (sqrt(na) * sqrt(nb));
    if (isnan(cos) || cos < out->min_cos) out->min_cos = isnan(cos) ? -1 : cos;
    if (ryz_argmax(a, vocab) == ryz_argmax(b, vocab)) out->top1_agree++;
    else if (!ryz_compare_near_tie(b, vocab, atol, rtol)) out->top1_real_mismatch++;
}

void ryz_compare_logits(const float *base, const float *cand, int rows, int vocab, double atol,
                        double rtol, ryz_compare *out) {
    *out = (ryz_compare){.min_cos = 1.0, .rows = rows, .worst_row = -1, .worst_col = -1};
    for (int r = 0; r < rows; r++)
        compare_row(base + (size_t)r * vocab, cand + (size_t)r * vocab, r, vocab, atol, rtol,
                    out);
    out->pass = out->out_of_tol == 0 && out->top1_real_mismatch == 0;
}
