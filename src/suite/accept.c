/* Acceptance gating: correctness and the [acceptance] thresholds of a suite
 * evaluated on a run's results, printed and written as JUnit XML. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ryz/suite.h"

/* Appends a check; `higher` says whether measured must be >= threshold. */
static ryz_status add_check(ryz_checks *c, const char *name, int tp, const char *check,
                            double measured, double threshold, int higher, int skip) {
    ryz_check *k = realloc(c->checks, (size_t)(c->n + 1) * sizeof *k);
    if (!k) return ryz_error(RYZ_ENOMEM, "out of memory for acceptance checks");
    c->checks = k;
    ryz_check *x = &k[c->n++];
    memset(x, 0, sizeof *x);
    snprintf(x->case_name, sizeof x->case_name, "%s", name);
    snprintf(x->check, sizeof x->check, "%s", check);
    snprintf(x->op, sizeof x->op, "%s", higher ? ">=" : "<=");
    x->tp = tp, x->measured = measured, x->threshold = threshold;
    x->skipped = skip;
    x->pass = skip || (higher ? measured >= threshold : measured <= threshold);
    if (skip) snprintf(x->note, sizeof x->note, "oversubscribed run: timing not meaningful");
    c->failed += !x->pass;
    c->skipped += skip;
    return RYZ_OK;
}

/* The threshold for tp in a list (exact TP first, then the tp-0 default). */
static double threshold_for(const ryz_threshold *t, int n, int tp) {
    double any = NAN;
    for (int i = 0; i < n; i++) {
        if (t[i].tp == tp) return t[i].value;
        if (t[i].tp == 0) any = t[i].value;
    }
    return any;
}

/* Worst all-reduce p99 of (case, tp), at `bytes` when nonzero. */
static double allreduce_p99(const ryz_results *r, const char *name, int tp, double bytes) {
    double worst = NAN;
    for (size_t i = 0; i < r->n_collectives; i++) {
        const ryz_row_collective *c = &r->collectives[i];
        if (c->tp != tp || strcmp(c->case_name, name) || strcmp(c->op, "all_reduce")) continue;
        if (bytes > 0 && (double)c->bytes != bytes) continue;
        if (isnan(worst) || c->p99_us > worst) worst = c->p99_us;
    }
    return worst;
}

/* The note of an all-reduce p99 that was not measured: which size was
 * asked for and which the run recorded, e.g. "not measured: no all_reduce
 * of 12345 bytes (measured: 256, 1024)". */
static void allreduce_missing(const ryz_results *r, const char *name, int tp, double bytes,
                              char *note, size_t cap) {
    int n = bytes > 0 ? snprintf(note, cap, "not measured: no all_reduce of %.0f bytes", bytes)
                      : snprintf(note, cap, "not measured: no all_reduce recorded");
    const char *sep = " (measured: ";
    for (size_t i = 0; i < r->n_collectives && n > 0 && (size_t)n < cap; i++) {
        const ryz_row_collective *c = &r->collectives[i];
        if (c->tp != tp || strcmp(c->case_name, name) || strcmp(c->op, "all_reduce")) continue;
        n += snprintf(note + n, cap - (size_t)n, "%s%llu", sep, (unsigned long long)c->bytes);
        sep = ", ";
    }
    if (n > 0 && (size_t)n < cap && sep[0] == ',') snprintf(note + n, cap - (size_t)n, ")");
}

static double mem_eff(const ryz_results *r, const char *name, int tp) {
    ryz_memory_summary m;
    ryz_results_memory_of(r, name, tp, &m);
    return m.efficiency;
}

static const ryz_row_timing *decode_row(const ryz_results *r, const char *name, int tp) {
    for (size_t i = 0; i < r->n_timing; i++)
        if (r->timing[i].tp == tp && !strcmp(r->timing[i].case_name, name) &&
            !strcmp(r->timing[i].phase, "decode"))
            return &r->timing[i];
    return NULL;
}

/* Writes a note on the last check added (unless it was skipped, whose
 * note says why). */
static void note_last(ryz_checks *c, const char *what) {
    ryz_check *x = &c->checks[c->n - 1];
    if (!x->skipped) snprintf(x->note, sizeof x->note, "%s", what);
}

/* A row's gated ratio: last arriver over the reference with the caches
 * as in situ; files before schema 3 have only the back-to-back one. */
static double collective_ratio(const ryz_row_collective *c) {
    return c->last_over_evict > 0 ? c->last_over_evict : c->last_over_isolated;
}

/* Worst gated ratio over the collectives of (case, tp) that have one (NAN
 * when none has); *where names its op and size. */
static double worst_collective_ratio(const ryz_results *r, const char *name, int tp,
                                     char *where, size_t cap) {
    double worst = NAN;
    snprintf(where, cap, "not measured (no isolated reference)");
    for (size_t i = 0; i < r->n_collectives; i++) {
        const ryz_row_collective *c = &r->collectives[i];
        double v = collective_ratio(c);
        if (c->tp != tp || strcmp(c->case_name, name) || !(v > 0)) continue;
        if (!isnan(worst) && v <= worst) continue;
        worst = v;
        int n = snprintf(where, cap, "worst: %s of %llu bytes, last-arriver %.1f us / ", c->op,
                         (unsigned long long)c->bytes, c->p50_last_us);
        if (n < 0 || (size_t)n >= cap) continue;
        if (c->last_over_evict > 0)
            snprintf(where + n, cap - (size_t)n, "isolated %.1f us after reading %.1f MiB",
                     c->isolated_evict_p50_us, c->streamed_bytes / 1048576.0);
        else
            snprintf(where + n, cap - (size_t)n, "isolated %.1f us back to back",
                     c->isolated_p50_us);
    }
    return worst;
}

/* The read bandwidth behind decode row t: the probe's, or what decode
 * itself streamed when that was more (roofline fraction above 1): the
 * machine has then shown it reads at least that much, and a probe that
 * under-read at TP k would otherwise pass a speedup it does not explain. */
static double bandwidth_of(const ryz_row_timing *t) {
    return t->read_bandwidth_gbs * (t->roofline_fraction > 1 ? t->roofline_fraction : 1);
}

/* The order statistics of (case, tp)'s /samples of metric; 0 when it has
 * fewer than two (or no memory to sort them). */
static int samples_stats(const ryz_results *r, const char *name, int tp, const char *metric,
                         ryz_stats *q) {
    int n = 0;
    double *v = ryz_results_sample_values(r, name, tp, metric, &n);
    *q = (ryz_stats){0};
    if (n >= 2) ryz_stats_compute(v, (size_t)n, q);
    free(v);
    return n >= 2;
}

/* The spread over runs of the scaling's two terms, for the note: the
 * speedup from the decode row's p90 and p10 times, the bandwidth ratio from
 * the runs' own probes (samples read_bandwidth_gbs, read between their
 * decode steps); "" where neither is known. */
static void scaling_spread(const ryz_results *r, const ryz_row_timing *d, double bw1,
                           char *sp, char *bwr, size_t cap) {
    ryz_stats q;
    sp[0] = bwr[0] = '\0';
    if (d->p10_s > 0 && d->p90_s > 0 && d->median_s > 0)
        snprintf(sp, cap, " (runs %.2f-%.2f)", d->speedup * d->median_s / d->p90_s,
                 d->speedup * d->median_s / d->p10_s);
    if (samples_stats(r, d->case_name, d->tp, "read_bandwidth_gbs", &q))
        snprintf(bwr, cap, " (probes %.2f-%.2f)", q.p10 / bw1, q.p90 / bw1);
}

/* "; host lock-step 0.91 (0.88-0.94)": the median and p10-p90 of (case,
 * tp)'s lockstep_efficiency samples, the share of time the host let its
 * ranks keep busy reading in lock-step, a bound on the check that comes
 * from the host, not from ryz; "" where fewer than two runs were probed
 * so. */
static void lockstep_note(const ryz_results *r, const ryz_row_timing *d, char *out, size_t cap) {
    ryz_stats q;
    out[0] = '\0';
    if (samples_stats(r, d->case_name, d->tp, "lockstep_efficiency", &q))
        snprintf(out, cap, "; host lock-step %.2f (%.2f-%.2f)", q.median, q.p10, q.p90);
}

/* "; steal 0.4 / 6.1 %, others 0.0 / 38.0 %": the median shares of CPU time
 * the hypervisor took (host_steal_fraction samples) and other processes
 * ran (host_other_load) during (case)'s TP=1 runs / its TP=tp runs: a
 * miss with either well above TP=1's is the neighbours' as much as ryz's,
 * since at TP > 1 every rank waits for the one they held up. Each part ""
 * where unknown. */
static void load_note(const ryz_results *r, const char *name, int tp, char *out, size_t cap) {
    static const char *const metric[] = {"host_steal_fraction", "host_other_load"};
    static const char *const label[] = {"steal", "others"};
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < 2 && n < cap; i++) {
        ryz_stats q1, q;
        if (!samples_stats(r, name, 1, metric[i], &q1) ||
            !samples_stats(r, name, tp, metric[i], &q))
            continue;
        int w = snprintf(out + n, cap - n, "%s %s %.1f / %.1f %%", n ? "," : ";", label[i],
                         100 * q1.median, 100 * q.median);
        n += w > 0 ? (size_t)w : 0;
    }
}

/* Whether the host's neighbours left run `iter` of (case, tp) alone, by
 * the rule the runner's extra_runs and the notes apply to the same
 * figures (ryz_load_disturbed of its host_steal_fraction and
 * host_other_load samples; a run without them counts as left alone). */
static int run_undisturbed(const ryz_results *r, const char *name, int tp, int iter) {
    double steal = NAN, other = NAN;
    for (size_t i = 0; i < r->n_samples; i++) {
        const ryz_row_sample *s = &r->samples[i];
        if (s->iter != iter || s->tp != tp || strcmp(s->case_name, name)) continue;
        if (!strcmp(s->metric, "host_steal_fraction")) steal = s->value;
        if (!strcmp(s->metric, "host_other_load")) other = s->value;
    }
    return !ryz_load_disturbed(steal, other);
}

/* What the machine could have read while a decode row's timed runs
 * decoded, in GB, run by run: each run's decode seconds times the
 * bandwidth read between its steps, or the bytes it did stream where that
 * was more (bandwidth_of's rule). The median over every run and over the
 * runs run_undisturbed (0 with fewer than two), and how many each is of:
 * n_all counts the runs probed one by one (as many read_bandwidth_gbs
 * samples as decode_s, the runner writing each run's together, in run
 * order; 0 when they are not paired so). */
typedef struct {
    double all, clean;
    int n_all, n_clean;
} run_capacity;

/* The median of x[0..n), or 0 with fewer than two. */
static double median_of_two_or_more(double *x, int n) {
    ryz_stats q;
    if (n < 2) return 0;
    ryz_stats_compute(x, (size_t)n, &q);
    return q.median;
}

/* run_capacity of decode row d (zeros for NULL). */
static run_capacity capacity_of(const ryz_results *r, const ryz_row_timing *d) {
    run_capacity c = {0};
    if (!d) return c;
    int nd = 0, nb = 0;
    double *dec = ryz_results_sample_values(r, d->case_name, d->tp, "decode_s", &nd);
    double *bw = ryz_results_sample_values(r, d->case_name, d->tp, "read_bandwidth_gbs", &nb);
    double streamed = d->read_bandwidth_gbs * d->roofline_fraction * d->median_s;
    c.n_all = dec && bw && nd == nb ? nb : 0;
    for (int i = 0; i < c.n_all; i++) {
        dec[i] = fmax(dec[i] * bw[i], streamed);
        /* bw[i] is read; the clean runs' capacities fill bw from the front */
        if (run_undisturbed(r, d->case_name, d->tp, i)) bw[c.n_clean++] = dec[i];
    }
    c.clean = median_of_two_or_more(bw, c.n_clean), c.all = median_of_two_or_more(dec, c.n_all);
    free(dec), free(bw);
    return c;
}

/* The runs bandwidth_scaling holds to each other: where the neighbours
 * took more than RYZ_LOAD_DISTURBED of some runs' CPU time but left at
 * least RYZ_SUITE_MIN_UNDISTURBED runs of each degree alone, only those
 * (a shared VM's hypervisor takes a tenth of a lock-stepped pair's time in
 * some minutes and none in others, and the check measures ryz and the
 * memory, not the neighbours; a suite's extra_runs runs more where too few
 * were left alone); else every run. *c1 and *c are the two medians of
 * capacity_of (0: not probed one by one), `which` says which runs. */
static void scaling_runs(const ryz_results *r, const ryz_row_timing *d1, const ryz_row_timing *d,
                         double *c1, double *c, char *which, size_t cap) {
    run_capacity x1 = capacity_of(r, d1), x = capacity_of(r, d);
    int a1 = x1.n_all, k1 = x1.n_clean, a = x.n_all, k = x.n_clean;
    int least = RYZ_SUITE_MIN_UNDISTURBED;
    int clean = (k1 < a1 || k < a) && k1 >= least && k >= least;
    *c1 = clean ? x1.clean : x1.all, *c = clean ? x.clean : x.all;
    which[0] = '\0';
    if (clean)
        snprintf(which, cap, " (the runs the host's neighbours left alone: %d of %d at TP=1, "
                 "%d of %d at TP=%d)", k1, a1, k, a, d->tp);
    else if (k1 < a1 || k < a)
        snprintf(which, cap, " (all runs: the host's neighbours took > %.0f %% in %d of %d at "
                 "TP=1, %d of %d at TP=%d)", 100 * RYZ_LOAD_DISTURBED, a1 - k1, a1, a - k, a,
                 d->tp);
}

/* Decode speedup of (case, tp) over the read-bandwidth ratio bw(tp) / bw(1)
 * (NAN when a bandwidth or the speedup is missing); *why says which, with
 * the spread of each over the runs. Where both TP degrees' runs were
 * probed one by one, run by run: capacity_of at TP=1 over at TP=tp, the
 * same ratio with each run's time held to the bandwidth of its own
 * moments (the medians' ratio, in the note, pairs the median time of one
 * run with the median bandwidth of another). */
static double bandwidth_scaling(const ryz_results *r, const char *name, int tp, char *why,
                                size_t cap) {
    const ryz_row_timing *d = decode_row(r, name, tp), *d1 = decode_row(r, name, 1);
    double bw1 = d1 && d1->read_bandwidth_gbs > 0 ? bandwidth_of(d1) : r->meta.read_bandwidth_gbs;
    if (!d || !(d->read_bandwidth_gbs > 0) || !(bw1 > 0) || !(d->speedup > 0)) {
        snprintf(why, cap, "not measured (decode speedup or read bandwidth missing)");
        return NAN;
    }
    double bw = bandwidth_of(d), ratio = bw / bw1;
    int raised = bw > d->read_bandwidth_gbs || (d1 && d1->read_bandwidth_gbs > 0 &&
                                                 bw1 > d1->read_bandwidth_gbs);
    char sp[32], bwr[32], lock[40], load[64];
    scaling_spread(r, d, bw1, sp, bwr, sizeof sp);
    lockstep_note(r, d, lock, sizeof lock);
    load_note(r, name, tp, load, sizeof load);
    double c1, c;
    char which[128];
    scaling_runs(r, d1, d, &c1, &c, which, sizeof which);
    int n = 0;
    if (c1 > 0 && c > 0)
        n = snprintf(why, cap, "run by run%s: %.2f GB readable in a TP=1 decode / %.2f at "
                     "TP=%d; medians: ", which, c1, c, tp);
    if (n < 0 || (size_t)n >= cap) n = 0;
    snprintf(why + n, cap - (size_t)n,
             "speedup %.3f%s / bandwidth ratio %.3f%s (%.2f / %.2f GB/s%s) = %.3f%s%s",
             d->speedup, sp, ratio, bwr, bw, bw1, raised ? ", decode's where higher" : "",
             d->speedup / ratio, lock, load);
    return c1 > 0 && c > 0 ? c1 / c : d->speedup / ratio;
}

/* The collective-ratio and bandwidth-scaling checks of one sharded (case,
 * tp); a figure that was not measured fails (a gate must not pass on
 * nothing), saying so in its note. */
static ryz_status check_comm(const ryz_acceptance *a, const ryz_results *r, const char *n,
                             int tp, ryz_checks *out) {
    int skip = r->meta.oversubscribed;
    char note[sizeof out->checks->note];
    ryz_status st = RYZ_OK;
    if (!isnan(a->max_collective_ratio)) {
        double worst = worst_collective_ratio(r, n, tp, note, sizeof note);
        st = add_check(out, n, tp, "collective_ratio", isnan(worst) ? INFINITY : worst,
                       a->max_collective_ratio, 0, skip);
        if (st == RYZ_OK) note_last(out, note);
    }
    if (st == RYZ_OK && !isnan(a->min_bandwidth_scaling)) {
        double scaling = bandwidth_scaling(r, n, tp, note, sizeof note);
        st = add_check(out, n, tp, "bandwidth_scaling", isnan(scaling) ? 0 : scaling,
                       a->min_bandwidth_scaling, 1, skip);
        if (st == RYZ_OK) note_last(out, note);
    }
    return st;
}

/* The threshold checks of one sharded (case, tp). A figure the run did
 * not measure fails (inf for an upper bound, 0 for a lower one), with a
 * note saying so (docs/guide.md). */
static ryz_status check_scaling(const ryz_acceptance *a, const ryz_results *r,
                                const ryz_row_correctness *row, ryz_checks *out) {
    static const char no_decode[] = "not measured: no decode timing row";
    const char *n = row->case_name;
    int tp = row->tp, skip = r->meta.oversubscribed;
    const ryz_row_timing *d = decode_row(r, n, tp);
    double sp = threshold_for(a->min_speedup, a->n_min_speedup, tp);
    double ef = threshold_for(a->min_efficiency, a->n_min_efficiency, tp);
    double p99 = allreduce_p99(r, n, tp, a->allreduce_bytes), me = mem_eff(r, n, tp);
    char note[sizeof out->checks->note];
    ryz_status st = RYZ_OK;
    if (!isnan(sp)) {
        st = add_check(out, n, tp, "speedup", d ? d->speedup : 0, sp, 1, skip);
        if (st == RYZ_OK && !d) note_last(out, no_decode);
    }
    if (st == RYZ_OK && !isnan(ef)) {
        st = add_check(out, n, tp, "efficiency", d ? d->efficiency : 0, ef, 1, skip);
        if (st == RYZ_OK && !d) note_last(out, no_decode);
    }
    if (st == RYZ_OK && !isnan(a->max_allreduce_p99_us)) {
        st = add_check(out, n, tp, "allreduce_p99_us", isnan(p99) ? INFINITY : p99,
                       a->max_allreduce_p99_us, 0, skip);
        if (st == RYZ_OK && isnan(p99)) {
            allreduce_missing(r, n, tp, a->allreduce_bytes, note, sizeof note);
            note_last(out, note);
        }
    }
    if (st == RYZ_OK && !isnan(a->max_comm_fraction)) {
        st = add_check(out, n, tp, "comm_fraction", d ? d->comm_fraction : 1,
                       a->max_comm_fraction, 0, skip);
        if (st == RYZ_OK && !d) note_last(out, no_decode);
    }
    if (st == RYZ_OK && !isnan(a->min_memory_efficiency)) {
        st = add_check(out, n, tp, "memory_efficiency", isnan(me) ? 0 : me,
                       a->min_memory_efficiency, 1, 0);
        if (st == RYZ_OK && isnan(me)) note_last(out, "not measured: no memory rows");
    }
    if (st == RYZ_OK) st = check_comm(a, r, n, tp, out);
    return st;
}

/* Whether case `name` computes in IEEE fp32 (f32 weights, no TF32):
 * max_logit_error is an fp32 gate; bf16 and tf32 cases are held to their
 * own tolerances (bf16_atol, tf32_atol). */
static int case_is_f32(const ryz_suite *s, const char *name) {
    for (int i = 0; i < s->n_cases; i++)
        if (!strcmp(s->cases[i].name, name))
            return s->cases[i].dtype == RYZ_DTYPE_F32 && !s->cases[i].tf32;
    return 1;
}

ryz_status ryz_acceptance_evaluate(const ryz_suite *s, const ryz_results *r, ryz_checks *out) {
    memset(out, 0, sizeof *out);
    ryz_status st = RYZ_OK;
    for (size_t i = 0; st == RYZ_OK && i < r->n_correctness; i++) {
        const ryz_row_correctness *row = &r->correctness[i];
        st = add_check(out, row->case_name, row->tp, "outputs_within_tolerance", row->pass, 1, 1,
                       0);
        if (st == RYZ_OK && !isnan(s->acc.max_logit_error) && case_is_f32(s, row->case_name))
            st = add_check(out, row->case_name, row->tp, "logit_error", row->max_abs,
                           s->acc.max_logit_error, 0, 0);
        if (st == RYZ_OK && row->tp > 1) st = check_scaling(&s->acc, r, row, out);
    }
    if (st != RYZ_OK) ryz_checks_free(out);
    return st;
}

ryz_status ryz_checks_store(const ryz_checks *c, ryz_results *res) {
    ryz_status st = RYZ_OK;
    for (int i = 0; st == RYZ_OK && i < c->n; i++) {
        const ryz_check *x = &c->checks[i];
        ryz_row_acceptance row = {.tp = x->tp, .measured = x->measured,
                                  .threshold = x->threshold, .pass = x->pass,
                                  .skipped = x->skipped};
        snprintf(row.case_name, sizeof row.case_name, "%s", x->case_name);
        snprintf(row.check, sizeof row.check, "%s", x->check);
        snprintf(row.op, sizeof row.op, "%s", x->op);
        snprintf(row.note, sizeof row.note, "%s", x->note);
        st = ryz_results_add_acceptance(res, &row);
    }
    return st;
}

ryz_status ryz_checks_from_results(const ryz_results *r, ryz_checks *out) {
    memset(out, 0, sizeof *out);
    if (r->n_acceptance == 0) return RYZ_OK;
    out->checks = calloc(r->n_acceptance, sizeof *out->checks);
    if (!out->checks)
        return ryz_error(RYZ_ENOMEM, "out of memory for %zu acceptance checks", r->n_acceptance);
    for (size_t i = 0; i < r->n_acceptance; i++) {
        const ryz_row_acceptance *a = &r->acceptance[i];
        ryz_check *x = &out->checks[out->n++];
        snprintf(x->case_name, sizeof x->case_name, "%s", a->case_name);
        snprintf(x->check, sizeof x->check, "%s", a->check);
        snprintf(x->op, sizeof x->op, "%.2s", a->op); /* ">=" or "<=" */
        snprintf(x->note, sizeof x->note, "%s", a->note);
        x->tp = a->tp, x->measured = a->measured, x->threshold = a->threshold;
        x->skipped = a->skipped != 0;
        x->pass = a->pass != 0 || x->skipped; /* a skipped check never failed */
        out->failed += !x->pass;
        out->skipped += x->skipped;
    }
    return RYZ_OK;
}

void ryz_checks_print_verdict(const ryz_checks *c, const char *suite, FILE *out) {
    fprintf(out, "\nsuite %s: %s (%d failed check%s of %d)\n", suite, c->failed ? "FAIL" : "PASS",
            c->failed, c->failed == 1 ? "" : "s", c->n);
}

void ryz_checks_free(ryz_checks *c) {
    free(c->checks);
    memset(c, 0, sizeof *c);
}

void ryz_checks_print(const ryz_checks *c, FILE *out) {
    fprintf(out, "\nacceptance: %d checks, %d failed, %d skipped\n", c->n, c->failed, c->skipped);
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < c->n; i++) {
            const ryz_check *x = &c->checks[i];
            if (x->pass != pass) continue;
            fprintf(out, "  %-4s %-20s tp %-3d %-26s %12.4g %s %-10.4g %s\n",
                    x->skipped ? "SKIP" : x->pass ? "ok" : "FAIL", x->case_name, x->tp, x->check,
                    x->measured, x->op, x->threshold, x->note);
        }
}

int ryz_checks_listed(const ryz_suite *s, const ryz_checks *c, int junit) {
    return !s || s->acc.present || junit || c->failed > 0;
}

/* Writes s with XML's five special characters escaped. */
static void xml_escaped(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* One <testsuite> with the checks of case `name`. */
static void junit_case(FILE *f, const ryz_checks *c, const char *suite, const char *name) {
    int n = 0, failed = 0, skipped = 0;
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->checks[i].case_name, name))
            n++, failed += !c->checks[i].pass, skipped += c->checks[i].skipped;
    fprintf(f, "  <testsuite name=\"");
    xml_escaped(f, suite), fputc('.', f), xml_escaped(f, name);
    fprintf(f, "\" tests=\"%d\" failures=\"%d\" skipped=\"%d\">\n", n, failed, skipped);
    for (int i = 0; i < c->n; i++) {
        const ryz_check *x = &c->checks[i];
        if (strcmp(x->case_name, name)) continue;
        fprintf(f, "    <testcase classname=\"");
        xml_escaped(f, suite), fputc('.', f), xml_escaped(f, name);
        fprintf(f, "\" name=\"tp%d.%s\" time=\"0\">", x->tp, x->check);
        char msg[sizeof x->check + sizeof x->note + 96];
        snprintf(msg, sizeof msg, "%s: measured %.6g, threshold %s %.6g%s%s%s", x->check,
                 x->measured, x->op, x->threshold, x->note[0] ? " (" : "", x->note,
                 x->note[0] ? ")" : "");
        if (x->skipped) {
            fprintf(f, "<skipped message=\"");
            xml_escaped(f, x->note);
            fprintf(f, "\"/>");
        } else if (!x->pass) {
            fprintf(f, "<failure type=\"threshold\" message=\"");
            xml_escaped(f, msg);
            fprintf(f, "\">");
            xml_escaped(f, msg);
            fprintf(f, "</failure>");
        }
        fprintf(f, "</testcase>\n");
    }
    fprintf(f, "  </testsuite>\n");
}

ryz_status ryz_checks_write_junit(const ryz_checks *c, const char *suite, const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return ryz_error(RYZ_EIO, "cannot write JUnit file %s", path);
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"");
    xml_escaped(f, suite);
    fprintf(f, "\" tests=\"%d\" failures=\"%d\" skipped=\"%d\">\n", c->n, c->failed, c->skipped);
    for (int i = 0; i < c->n; i++) {
        int first = 1;
        for (int j = 0; j < i && first; j++)
            first = strcmp(c->checks[j].case_name, c->checks[i].case_name) != 0;
        if (first) junit_case(f, c, suite, c->checks[i].case_name);
    }
    fprintf(f, "</testsuites>\n");
    int bad = ferror(f) | (fclose(f) != 0);
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return ryz_error(RYZ_EIO, "cannot write JUnit file %s", path);
    }
    return RYZ_OK;
}
