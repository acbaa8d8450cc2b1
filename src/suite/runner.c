/* The suite runner: per case, on rank 0 the reference outputs (f32, TP=1,
 * cpu backend) and the TP=1 timing baseline (the case's backend and dtype),
 * then each TP degree teacher-forced (every position compared) and greedy
 * (first divergence classified), timed, with one table per case printed by
 * rank 0 and every figure recorded in the results tables. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "measure.h"
#include "ryz/model.h"
#include "ryz/suite.h"

/* The probe's buffer per rank: at the start of the suite, and before each
 * timed run, where a suite of 36 runs would otherwise spend 10 s probing
 * (4x the 32 MiB L3 of the development VM is still far out of cache). */
#define PROBE_MIB 256
#define RUN_PROBE_MIB 128
/* The slice each rank reads after every decode step of a timed run, of a
 * buffer of RUN_PROBE_MIB. */
#define STEP_PROBE_MIB 64

/* Read bandwidth per TP degree (k ranks x threads), measured once at the
 * start of the suite: TP=1 for the results' own figure, every degree where
 * runs are not probed one by one (case_ctx.probe_runs) for the rows. */
typedef struct {
    int k[RYZ_SUITE_MAX_TP * 4];
    double bw[RYZ_SUITE_MAX_TP * 4];
    int n;
} bw_table;

/* What one case shares between the baseline and the sharded runs. */
typedef struct {
    const ryz_suite *s;
    const ryz_suite_case *c;
    const ryz_run_opts *opts;
    ryz_comm *world;
    ryz_results *res; /* world rank 0 only */
    const bw_table *bw;
    const ryz_local_ranks *local; /* the suite's processes on rank 0's host (rank 0) */
    int probe_runs; /* probe the bandwidth before each timed run (host memory) */
    ryz_model_config cfg;
    int B, P, len, rows;
    int *prompts;        /* (B, P) */
    int *base_ids;       /* (B, len), every rank */
    float *base_logits;  /* (B, rows, vocab), world rank 0 only */
    double base_prefill; /* baseline median prefill seconds */
    double base_decode;  /* baseline median decode seconds */
    double base_state;   /* baseline weights + KV bytes */
} case_ctx;

/* A backend and the case's model on it, opened and closed together. */
typedef struct {
    ryz_backend be;
    ryz_model *m;
} model_env;

/* Timed greedy runs of one model on one rank, and the aggregate read
 * bandwidth (bytes/s) of its group in each (n_bw 0: not probed): bw read
 * between the run's decode steps, before just before the run. */
typedef struct {
    double prefill_s[RYZ_SUITE_MAX_REPEAT], decode_s[RYZ_SUITE_MAX_REPEAT];
    double bw[RYZ_SUITE_MAX_REPEAT], before[RYZ_SUITE_MAX_REPEAT];
    double lock[RYZ_SUITE_MAX_REPEAT]; /* lock-step efficiency, probed before (tp > 1) */
    /* shares of CPU time on rank 0's host during each run (NAN: unknown):
     * stolen by the hypervisor, and run by processes other than the suite's */
    double steal[RYZ_SUITE_MAX_REPEAT], other[RYZ_SUITE_MAX_REPEAT];
    int n, n_bw, decode_steps;
    double wall_s;
    double peak_rss; /* bytes: the rank's peak from its model's opening through the
                      * warm-up runs, before the probes' and the reference's buffers */
} run_samples;

static void progress(const case_ctx *k, int tp, const char *phase) {
    if (k->opts->quiet || ryz_comm_rank(k->world) != 0) return;
    fprintf(stderr, "[ryz] case %ld/%d %s: tp=%d %s\n", (long)(k->c - k->s->cases) + 1,
            k->s->n_cases, k->c->name, tp, phase);
}

/* Weight bytes rank `rank` of a TP group of tp reads per decoded token. */
static size_t token_bytes(const case_ctx *k, int tp, int rank) {
    ryz_shard sh;
    ryz_shard_plan(&k->cfg, tp, rank, &sh);
    return ryz_model_bytes_per_token_as(&k->cfg, &sh, k->c->dtype);
}

/* Bytes that rank reads per token between two of its collectives: its
 * weights per token over the 2 all-reduces of each layer and the greedy
 * gather after the LM head. */
static size_t segment_bytes(const case_ctx *k, int tp, int rank) {
    return token_bytes(k, tp, rank) / (size_t)(2 * k->cfg.n_layers + 1);
}

/* The probe between the decode steps of a timed run: after every step
 * each rank of the group reads the next slice of its own buffer on the
 * model's backend (its threads, as the decode's GEMVs schedule them),
 * after a barrier of the group and before the ranks agree that every
 * read succeeded, so that the slices run together, no rank's next step
 * waits for another's slice (the hook's time is not decode's), and a
 * failed read stops every rank. */
typedef struct {
    ryz_probe_slices ps;
    ryz_comm *group; /* a duplicate of the model's comm: its records stay the model's */
    float *sec;      /* this run's slices' seconds, up to cap */
    float *all;      /* every rank's, gathered (group size x cap) */
    int n, cap;
    int fail_reads; /* test hook RYZ_TEST_STEP_READ_NOMEM: this rank's reads fail */
} step_probe;

/* mine, agreed over the group where it has peers: as ryz_probe_agree
 * (out of memory for the probe's buffer) when read_failed is NULL, else
 * EIO "step probe: N of K ranks READ_FAILED". A lone rank has no one to
 * tell, and adds no collective to its count. */
static ryz_status step_probe_agree(ryz_comm *group, ryz_status mine, const char *read_failed) {
    if (ryz_comm_size(group) == 1) return mine;
    if (!read_failed) return ryz_probe_agree(group, mine == RYZ_OK, "step probe", RUN_PROBE_MIB);
    return ryz_probe_agree_on(group, mine == RYZ_OK, "step probe", RYZ_EIO, read_failed);
}

static ryz_status step_probe_hook(void *ctx) {
    step_probe *p = ctx;
    double dt = 0;
    int peers = ryz_comm_size(p->group) > 1;
    ryz_status st = peers ? ryz_comm_barrier(p->group) : RYZ_OK;
    if (st != RYZ_OK) return st;
    st = p->fail_reads ? ryz_error(RYZ_EIO, "slice read failed (RYZ_TEST_STEP_READ_NOMEM)")
                       : ryz_probe_slices_read(&p->ps, &dt);
    if (st == RYZ_OK && p->n < p->cap) p->sec[p->n++] = (float)dt;
    if (st != RYZ_OK) RYZ_WARN("step probe: %s", ryz_last_error());
    return step_probe_agree(p->group, st, "could not read a slice between decode steps");
}

/* The group's bandwidth over the run's slices, into *bw (0 when none was
 * read): all ranks' bytes over the sum of each slice's slowest time, as
 * ryz_probe_group counts a pass. Collective over the group; then the next
 * run's slices start. */
static ryz_status step_probe_take(step_probe *p, double *bw) {
    int k = ryz_comm_size(p->group), n = p->n;
    ryz_status st = n > 0 ? ryz_comm_all_gather(p->group, p->sec, p->all, (size_t)n) : RYZ_OK;
    double slowest = 0;
    for (int s = 0; st == RYZ_OK && s < n; s++) {
        float t = 0;
        for (int r = 0; r < k; r++) t = fmaxf(t, p->all[r * n + s]);
        slowest += t;
    }
    *bw = slowest > 0 ? (double)k * (double)n * (double)p->ps.slice / slowest : 0;
    p->n = 0;
    return st;
}

/* The group's read bandwidth just before timed run i, into out->before[i],
 * and with peers its lock-step efficiency over slices of a segment's
 * bytes, into out->lock[i]. */
static ryz_status probe_run(const case_ctx *k, ryz_comm *probe, run_samples *out, int i) {
    int starved = ryz_measure_starved("RYZ_TEST_PROBE_NOMEM", ryz_comm_rank(k->world));
    int tp = ryz_comm_size(probe);
    out->n_bw = i + 1;
    ryz_status st =
        ryz_probe_group(probe, k->s->threads, RUN_PROBE_MIB, starved, &out->before[i]);
    if (st != RYZ_OK || tp == 1) return st;
    starved = ryz_measure_starved("RYZ_TEST_LOCKSTEP_NOMEM", ryz_comm_rank(k->world));
    return ryz_probe_lockstep(probe, k->s->threads, RUN_PROBE_MIB,
                              segment_bytes(k, tp, ryz_comm_rank(probe)), starved, &out->lock[i]);
}

/* One greedy run of the case on m, timed into *t, and on world rank 0 what
 * the host's neighbours took meanwhile (ryz_load_between; NAN elsewhere or
 * where /proc cannot say): at TP > 1 every rank waits for the one they
 * slowed. A mark costs rank 0 about 25 us of /proc reads (2 ranks, the
 * development VM), which its peers wait out at prefill's first collective:
 * under 0.1 % of a 110m prefill, and none of decode. */
static ryz_status greedy_run(case_ctx *k, ryz_model *m, int *ids, ryz_gen_timing *t,
                             double *steal, double *other) {
    ryz_load_mark a = {0}, b = {0};
    int lead = ryz_comm_rank(k->world) == 0;
    if (lead) ryz_load_mark_take(k->local->pid, k->local->n, &a);
    ryz_status st =
        ryz_model_generate(m, k->prompts, k->B, k->P, k->c->new_tokens, NULL, ids, NULL, t);
    if (lead) ryz_load_mark_take(k->local->pid, k->local->n, &b);
    ryz_load_between(&a, &b, steal, other);
    return st;
}

/* RYZ_TEST_HOST_OTHER="A,B,...": on world rank 0, the others' share of
 * timed run i of every group is the i-th value (the last for later runs)
 * instead of what /proc said, so that tests choose which runs were
 * disturbed. */
static void test_host_other(const case_ctx *k, int i, double *other) {
    const char *v = getenv("RYZ_TEST_HOST_OTHER");
    if (!v || !*v || ryz_comm_rank(k->world) != 0) return;
    for (int j = 0; j <= i; j++) {
        char *end = NULL;
        double x = strtod(v, &end);
        if (end == v) return;
        *other = x;
        if (*end != ',') return;
        v = end + 1;
    }
}

/* How many of out's first n runs the host's neighbours left alone (a run
 * without host figures counts, as the scaling check counts it). */
static int runs_alone(const run_samples *out, int n) {
    int alone = 0;
    for (int i = 0; i < n; i++) alone += !ryz_load_disturbed(out->steal[i], out->other[i]);
    return alone;
}

/* Whether the probed group of sp times another run after out's: world
 * rank 0, which reads what its host's neighbours took (other hosts' are
 * not read), says yes while they disturbed some run and left fewer than
 * RYZ_SUITE_MIN_UNDISTURBED alone, and fewer than `cap` ran; every rank of
 * the group gets its answer, over sp's own group so that the comm's
 * records stay the model's. */
static ryz_status more_runs(const case_ctx *k, const step_probe *sp, const run_samples *out,
                            int cap, int *more) {
    int alone = runs_alone(out, out->n);
    *more = ryz_comm_rank(k->world) == 0 && out->n < cap && alone < out->n &&
            alone < RYZ_SUITE_MIN_UNDISTURBED;
    if (ryz_comm_size(sp->group) == 1) return RYZ_OK;
    return ryz_comm_broadcast(sp->group, more, sizeof *more, 0);
}

/* On world rank 0, when a group timed more than its `planned` runs: why,
 * even with --quiet, since the suite then ran longer than its file says. */
static void note_extra(const case_ctx *k, int tp, const run_samples *out, int planned) {
    if (ryz_comm_rank(k->world) != 0 || out->n <= planned) return;
    int alone = runs_alone(out, out->n);
    fprintf(stderr, "ryz: note: case %s tp=%d: the host's neighbours disturbed %d of the %d timed "
            "runs, so %d more ran (extra_runs %d); %d of %d left alone%s\n", k->c->name, tp,
            planned - runs_alone(out, planned), planned, out->n - planned, k->s->extra_runs,
            alone, out->n,
            alone < RYZ_SUITE_MIN_UNDISTURBED ? ": too few, so bandwidth_scaling judges every run"
                                              : "");
}

/* What a run does between its decode steps: where `alone` (world rank 0
 * alone in its group: a lone process, or its baseline while the other
 * ranks wait for it in a collective), stop on SIGINT or SIGTERM
 * (ryz_interrupt_check), since such a run reaches no collective where the
 * comm wrapper would stop it and under mpirun rank 0 has only a second or
 * two before it is killed; then the probe's slices where sp (NULL: none). */
typedef struct {
    int alone;
    step_probe *sp;
} run_hook;

static ryz_status run_step_hook(void *ctx) {
    run_hook *h = ctx;
    ryz_status st = h->alone ? ryz_interrupt_check() : RYZ_OK;
    return st == RYZ_OK && h->sp ? step_probe_hook(h->sp) : st;
}

/* `warmup` untimed greedy runs, then `runs` timed ones with the comm records
 * cleared at the start; ids from the last run. With ref (NULL: none),
 * opened just before the clear and sampled after each timed run; with sp
 * (NULL: none), the group's read bandwidth probed just before each timed
 * run and read between its decode steps, so that a roofline and the
 * bandwidth-scaling check hold each run to the machine of its own moments
 * (a shared VM's bandwidth moves by tens of percent within a suite); and
 * with sp, up to `extra` more timed runs while the host's neighbours left
 * too few alone (more_runs). */
static ryz_status timed_greedy(case_ctx *k, ryz_model *m, ryz_comm *c, step_probe *sp,
                               int warmup, int runs, int extra, int *ids,
                               ryz_collective_ref *ref, run_samples *out) {
    memset(out, 0, sizeof *out);
    out->n = runs; /* <= RYZ_SUITE_MAX_REPEAT: ryz_suite_validate checks */
    ryz_model_set_last_only_prefill(m, 1); /* every rank times the same way */
    run_hook h = {.alone = ryz_comm_size(c) == 1 && ryz_comm_rank(k->world) == 0};
    for (int i = -warmup; i < out->n; i++) {
        if (i == 0 && ref) {
            ryz_status st = ryz_collective_ref_open(c, ref);
            if (st != RYZ_OK) return st;
        }
        if (i == 0) ryz_comm_records_clear(c);
        ryz_status st = h.alone ? ryz_interrupt_check() : RYZ_OK;
        if (st == RYZ_OK && i >= 0 && sp) st = probe_run(k, sp->group, out, i);
        ryz_gen_timing t;
        double steal = NAN, other = NAN;
        h.sp = i >= 0 ? sp : NULL;
        ryz_model_set_step_hook(m, h.alone || h.sp ? run_step_hook : NULL, &h);
        if (st == RYZ_OK) st = greedy_run(k, m, ids, &t, &steal, &other);
        ryz_model_set_step_hook(m, NULL, NULL);
        if (st == RYZ_OK && i >= 0 && sp) st = step_probe_take(sp, &out->bw[i]);
        if (st == RYZ_OK && i >= 0 && sp && !(out->bw[i] > 0)) /* no decode step to read after */
            out->bw[i] = out->before[i];
        if (st == RYZ_OK && i >= 0 && ref) st = ryz_collective_ref_sample(ref, c);
        if (st != RYZ_OK) return st;
        if (i < 0) continue;
        out->prefill_s[i] = t.prefill_s, out->decode_s[i] = t.decode_s;
        out->decode_steps = t.decode_steps, out->steal[i] = steal, out->other[i] = other;
        test_host_other(k, i, &out->other[i]);
        out->wall_s += t.prefill_s + t.decode_s;
        int more = 0;
        if (sp && extra > 0 && i == out->n - 1) st = more_runs(k, sp, out, runs + extra, &more);
        if (st != RYZ_OK) return st;
        out->n += more;
    }
    if (sp) note_extra(k, ryz_comm_size(c), out, runs);
    return RYZ_OK;
}

/* Opens sp's buffers on every rank of its group, or none: a rank that
 * cannot (or is starved by the test hook) makes every rank fail. */
static ryz_status step_probe_open(const case_ctx *k, model_env *e, step_probe *sp) {
    int starved = ryz_measure_starved("RYZ_TEST_STEP_PROBE_NOMEM", ryz_comm_rank(k->world));
    sp->fail_reads = ryz_measure_starved("RYZ_TEST_STEP_READ_NOMEM", ryz_comm_rank(k->world));
    size_t cap = (size_t)sp->cap, group = (size_t)ryz_comm_size(sp->group);
    sp->sec = starved ? NULL : malloc(cap * sizeof *sp->sec);
    sp->all = starved ? NULL : malloc(group * cap * sizeof *sp->all);
    ryz_status mine = sp->sec && sp->all ? RYZ_OK : ryz_error(RYZ_ENOMEM, "out of memory");
    if (mine == RYZ_OK)
        mine = ryz_probe_slices_open(&e->be, (size_t)RUN_PROBE_MIB << 20,
                                     (size_t)STEP_PROBE_MIB << 20, &sp->ps);
    if (mine != RYZ_OK) RYZ_WARN("step probe: %s", ryz_last_error());
    return step_probe_agree(sp->group, mine, NULL);
}

/* The suite's extra_runs where they serve: a case with a TP > 1 that
 * bandwidth_scaling checks (the only judge of which runs were left alone);
 * else 0. */
static int extra_runs_of(const case_ctx *k) {
    if (isnan(k->s->acc.min_bandwidth_scaling)) return 0;
    for (int i = 0; i < k->c->n_tp; i++)
        if (k->c->tp[i] > 1) return k->s->extra_runs;
    return 0;
}

/* timed_greedy of e's model on c, probed when `probe` (the runs' times are
 * recorded), the case probes runs and e's backend computes in host memory
 * (the memory the probe reads); the probe runs on a duplicate of c, so
 * that c's records stay the model's. */
static ryz_status timed_runs(case_ctx *k, model_env *e, ryz_comm *c, int runs, int probe,
                             int *ids, ryz_collective_ref *ref, run_samples *out) {
    step_probe sp = {.cap = k->c->new_tokens};
    int probed = probe && k->probe_runs && e->be.iface->host_visible;
    ryz_status st = timed_greedy(k, e->m, c, NULL, k->s->warmup, 0, 0, ids, NULL, out);
    double peak = (double)ryz_mem_peak_rss(); /* the model's: no probe buffer yet */
    if (probed && st == RYZ_OK) st = ryz_comm_split_first(c, ryz_comm_size(c), &sp.group);
    if (probed && st == RYZ_OK) st = step_probe_open(k, e, &sp);
    if (st == RYZ_OK)
        st = timed_greedy(k, e->m, c, probed ? &sp : NULL, 0, runs, extra_runs_of(k), ids, ref,
                          out);
    out->peak_rss = peak;
    ryz_probe_slices_free(&sp.ps);
    free(sp.sec), free(sp.all);
    ryz_comm_free(sp.group);
    return st;
}

/* The /samples rows of the runs: prefill_s and decode_s, and
 * read_bandwidth_gbs and read_bandwidth_before_gbs (and with peers
 * lockstep_efficiency) where the runs were probed, and host_steal_fraction
 * and host_other_load (rank 0's host) where /proc told them. */
static void add_samples(case_ctx *k, int tp, const run_samples *rs) {
    static const char *const metric[] = {"prefill_s", "decode_s", "read_bandwidth_gbs",
                                         "read_bandwidth_before_gbs", "lockstep_efficiency",
                                         "host_steal_fraction", "host_other_load"};
    static const double per[] = {1, 1, 1e9, 1e9, 1, 1, 1}; /* GB/s for the bandwidths */
    const double *col[] = {rs->prefill_s, rs->decode_s, rs->bw,   rs->before,
                           rs->lock,      rs->steal,    rs->other};
    for (int i = 0; i < rs->n; i++)
        for (int m = 0; m < 7; m++) {
            int probed = m < 2 || (i < rs->n_bw && (m < 4 || (m == 4 && tp > 1)));
            if (m < 5 ? !probed : isnan(col[m][i])) continue;
            ryz_row_sample row = {.tp = tp, .iter = i, .value = col[m][i] / per[m]};
            snprintf(row.case_name, sizeof row.case_name, "%s", k->c->name);
            snprintf(row.metric, sizeof row.metric, "%s", metric[m]);
            ryz_results_add_sample(k->res, &row);
        }
}

/* Index of TP degree k in the table, -1 if not measured. */
static int bw_index(const bw_table *t, int k) {
    for (int i = 0; i < t->n; i++)
        if (t->k[i] == k) return i;
    return -1;
}

static double bw_of(const bw_table *t, int k) {
    int i = bw_index(t, k);
    return i < 0 ? 0 : t->bw[i];
}

/* A note on stderr (not hidden by --quiet: it qualifies the figures)
 * where the median over (case, tp)'s timed runs of what the host's
 * neighbours took, stolen or run by others, passes RYZ_LOAD_DISTURBED. */
static void note_disturbed(const case_ctx *k, int tp, const run_samples *rs) {
    double steal = ryz_stats_known_median(rs->steal, (size_t)rs->n);
    double other = ryz_stats_known_median(rs->other, (size_t)rs->n);
    if (!ryz_load_disturbed(steal, other)) return;
    fprintf(stderr, "ryz: note: case %s tp=%d: other processes ran %.0f %% of this host's CPU "
            "time and the hypervisor took %.0f %% of what its CPUs wanted (medians over the "
            "timed runs): these timings are a busy machine's\n", k->c->name, tp, 100 * other,
            100 * steal);
}

/* Two /timing rows (prefill, decode) from samples; comm_frac from ranks.
 * The roofline and read bandwidth only for a backend whose weights are in
 * host memory: the probe measures host memory, not a device's. The
 * bandwidth is the median of the runs' own probes, or the suite's start
 * probe where the runs were not probed. */
static void add_timing(case_ctx *k, int tp, run_samples *rs, double comm_frac,
                       int host_memory) {
    /* The tp ranks stream their shards concurrently through the bandwidth
     * they share: the roofline is aggregate bandwidth / all ranks' bytes. */
    double bytes = 0;
    for (int r = 0; r < tp; r++) bytes += (double)token_bytes(k, tp, r);
    double bw = host_memory ? bw_of(k->bw, tp) : 0;
    if (host_memory && rs->n_bw > 0) {
        ryz_stats q;
        double x[RYZ_SUITE_MAX_REPEAT];
        memcpy(x, rs->bw, sizeof x);
        ryz_stats_compute(x, (size_t)rs->n_bw, &q);
        bw = q.median;
    }
    double roof = k->B * bw / bytes;
    for (int ph = 0; ph < 2; ph++) {
        ryz_stats st;
        double x[RYZ_SUITE_MAX_REPEAT];
        memcpy(x, ph ? rs->decode_s : rs->prefill_s, sizeof x);
        ryz_stats_compute(x, (size_t)rs->n, &st);
        double tokens = ph ? (double)k->B * rs->decode_steps : (double)k->B * k->P;
        double *base_s = ph ? &k->base_decode : &k->base_prefill;
        if (tp == 1) *base_s = st.median; /* the baseline is the reference of speedup */
        double base = *base_s;
        ryz_row_timing row = {.tp = tp, .runs = rs->n, .median_s = st.median, .p10_s = st.p10,
                              .p90_s = st.p90, .comm_fraction = comm_frac,
                              .read_bandwidth_gbs = bw / 1e9};
        snprintf(row.case_name, sizeof row.case_name, "%s", k->c->name);
        snprintf(row.phase, sizeof row.phase, "%s", ph ? "decode" : "prefill");
        row.tokens_per_s = st.median > 0 ? tokens / st.median : 0;
        row.ttft_s = ph ? 0 : st.median;
        row.speedup = st.median > 0 ? base / st.median : 0;
        row.efficiency = row.speedup / tp;
        row.roofline_fraction = ph && roof > 0 ? row.tokens_per_s / roof : 0;
        ryz_results_add_timing(k->res, &row);
    }
    add_samples(k, tp, rs);
    note_disturbed(k, tp, rs);
}

/* /memory rows from the gathered per-rank figures; returns the largest
 * rank's comm fraction. */
static double add_memory(case_ctx *k, int tp, const double *ranks) {
    double largest = 0, frac = 0;
    for (int r = 0; r < tp; r++) {
        const double *f = ranks + (size_t)r * RANK_NFIELDS;
        if (f[RANK_WEIGHTS] + f[RANK_KV] > largest) largest = f[RANK_WEIGHTS] + f[RANK_KV];
        if (f[RANK_WALL_S] > 0 && f[RANK_COMM_S] / f[RANK_WALL_S] > frac)
            frac = f[RANK_COMM_S] / f[RANK_WALL_S];
    }
    for (int r = 0; r < tp; r++) {
        const double *f = ranks + (size_t)r * RANK_NFIELDS;
        ryz_row_memory row = {.tp = tp, .rank = r, .weights = (uint64_t)f[RANK_WEIGHTS],
                              .kv_cache = (uint64_t)f[RANK_KV],
                              .scratch = (uint64_t)f[RANK_SCRATCH],
                              .peak_rss = (uint64_t)f[RANK_RSS],
                              .mem_efficiency = largest > 0 ? k->base_state / tp / largest : 0};
        snprintf(row.case_name, sizeof row.case_name, "%s", k->c->name);
        ryz_results_add_memory(k->res, &row);
    }
    return frac;
}

/* After timed runs on group c with backend be: collectives (with their
 * cross-rank and isolated columns when tp > 1), per-rank figures (memory
 * in be's memory), timing rows (lead only adds rows). */
static ryz_status record_group(case_ctx *k, ryz_comm *c, const ryz_backend *be, int tp,
                               const ryz_collective_ref *ref, run_samples *rs) {
    int lead = ryz_comm_rank(c) == 0;
    double comm_s = 0;
    ryz_status st = ryz_suite_collectives(c, k->c->name, tp > 1, ref,
                                          lead && tp > 1 ? k->res : NULL, &comm_s);
    if (st != RYZ_OK) return st;
    double *ranks = malloc((size_t)tp * RANK_NFIELDS * sizeof *ranks);
    if (!ranks) return ryz_error(RYZ_ENOMEM, "out of memory");
    st = ryz_measure_ranks(c, be, rs->peak_rss, comm_s, rs->wall_s, ranks);
    if (st == RYZ_OK && lead) {
        if (tp == 1) k->base_state = ranks[RANK_WEIGHTS] + ranks[RANK_KV];
        double frac = add_memory(k, tp, ranks);
        add_timing(k, tp, rs, frac, be->iface->host_visible);
    }
    free(ranks);
    return st;
}

/* The backend of the case's runs: its `backend` with the suite's threads
 * and the case's tf32, or the test hook's. */
static ryz_status case_backend(const case_ctx *k, ryz_backend *be) {
    if (k->opts->backend_init) return k->opts->backend_init(k->c, k->s->threads, be);
    ryz_backend_kind kind;
    ryz_backend_opts o = {.threads = k->s->threads, .tf32 = k->c->tf32};
    ryz_status st = ryz_backend_kind_parse(k->c->backend, &kind);
    return st == RYZ_OK ? ryz_backend_init_opts(kind, &o, be) : st;
}

/* Opens the case's model on comm: the reference (f32 on the cpu backend)
 * or the case's own (its backend and dtype). The peak RSS starts anew, so
 * that the memory rows leave out the suite's start probe and earlier
 * models (where the kernel allows: ryz_mem_peak_reset). */
static ryz_status env_open(const case_ctx *k, ryz_comm *comm, int reference, model_env *e) {
    *e = (model_env){0};
    if (ryz_mem_peak_reset() != RYZ_OK) RYZ_DEBUG("%s", ryz_last_error());
    ryz_status st =
        reference ? ryz_backend_init_cpu(k->s->threads, &e->be) : case_backend(k, &e->be);
    ryz_model_opts o = {.max_batch = k->B, .max_chunk = k->P,
                        .dtype = reference ? RYZ_DTYPE_F32 : k->c->dtype};
    if (st == RYZ_OK) st = ryz_model_open(k->c->model, comm, &e->be, &o, &e->m);
    return st;
}

static void env_close(model_env *e) {
    ryz_model_free(e->m);
    ryz_backend_free(&e->be);
    *e = (model_env){0};
}

/* Whether the case runs what the reference runs (cpu, f32): then one
 * model serves both. */
static int case_is_reference(const case_ctx *k) {
    return !k->opts->backend_init && !strcmp(k->c->backend, "cpu") &&
           k->c->dtype == RYZ_DTYPE_F32;
}

/* World rank 0: the reference outputs, then timed runs of the case's
 * backend and dtype (the TP=1 timing and memory rows, and the reference
 * of speedup). The reference model is closed before the case's opens, so
 * the memory figures are the case's alone. */
static ryz_status baseline_on_lead(case_ctx *k) {
    ryz_comm *self = NULL;
    model_env ref = {0}, run = {0};
    run_samples rs;
    int same = case_is_reference(k), *ids = malloc((size_t)k->B * k->len * sizeof(int));
    progress(k, 1, "baseline");
    ryz_status st = ids ? ryz_comm_init_self(&self) : ryz_error(RYZ_ENOMEM, "out of memory");
    run_hook alone = {.alone = 1};
    if (st == RYZ_OK) st = env_open(k, self, 1, &ref);
    if (st == RYZ_OK) ryz_model_set_step_hook(ref.m, run_step_hook, &alone);
    if (st == RYZ_OK)
        st = ryz_model_generate(ref.m, k->prompts, k->B, k->P, k->c->new_tokens, NULL,
                                k->base_ids, k->base_logits, NULL);
    if (st == RYZ_OK) ryz_model_set_step_hook(ref.m, NULL, NULL);
    if (!same) env_close(&ref);
    if (st == RYZ_OK && !same) st = env_open(k, self, 0, &run);
    model_env *timed = same ? &ref : &run;
    if (st == RYZ_OK) st = timed_runs(k, timed, self, k->s->repeat, 1, ids, NULL, &rs);
    if (st == RYZ_OK) st = record_group(k, self, &timed->be, 1, NULL, &rs);
    free(ids);
    env_close(&ref);
    env_close(&run);
    ryz_comm_free(self);
    return st;
}

/* The baseline on world rank 0, then the reference ids to every rank. */
static ryz_status run_baseline(case_ctx *k) {
    ryz_status st = ryz_comm_rank(k->world) == 0 ? baseline_on_lead(k) : RYZ_OK;
    int ok = st == RYZ_OK;
    ryz_status bs = ryz_comm_broadcast(k->world, &ok, sizeof ok, 0);
    if (bs != RYZ_OK) return bs;
    if (!ok) return st != RYZ_OK ? st : ryz_error(RYZ_EINVAL, "baseline failed on rank 0");
    return ryz_comm_broadcast(k->world, k->base_ids, (size_t)k->B * k->len * sizeof(int), 0);
}

/* First position where greedy ids left the baseline's, or -1. */
static int first_divergence(const case_ctx *k, const int *ids, int *seq) {
    for (int p = k->P; p < k->len; p++)
        for (int b = 0; b < k->B; b++)
            if (ids[(size_t)b * k->len + p] != k->base_ids[(size_t)b * k->len + p]) {
                *seq = b;
                return p;
            }
    return -1;
}

/* The /correctness row of one TP degree; returns 1 if it failed. */
static int add_correctness(case_ctx *k, int tp, const ryz_compare *cmp, const int *greedy) {
    int seq = 0, div = first_divergence(k, greedy, &seq), cls = 0;
    if (div >= 0) {
        const float *row = k->base_logits + ((size_t)seq * k->rows + div - 1) * k->cfg.vocab;
        double atol, rtol;
        ryz_suite_case_tol(k->s, k->c, &atol, &rtol);
        cls = ryz_compare_near_tie(row, k->cfg.vocab, atol, rtol) ? 1 : 2;
    }
    ryz_row_correctness row = {.tp = tp, .batch = k->B, .positions = cmp->rows,
                               .max_abs = cmp->max_abs, .max_rel = cmp->max_rel,
                               .min_cos = cmp->min_cos, .top1_agree = cmp->top1_agree,
                               .greedy_divergence = div, .greedy_class = cls,
                               .pass = cmp->pass && cls != 2};
    snprintf(row.case_name, sizeof row.case_name, "%s", k->c->name);
    ryz_results_add_correctness(k->res, &row);
    ryz_suite_print_row(k->res, k->c->name, tp, stdout);
    if (!cmp->pass && cmp->worst_row >= 0)
        printf("       worst: position %d logit %d baseline %.6g tp%d %.6g; %d elements out of "
               "tolerance, %d top-1 mismatches off near-ties\n",
               cmp->worst_row, cmp->worst_col, cmp->worst_base, tp, cmp->worst_cand,
               cmp->out_of_tol, cmp->top1_real_mismatch);
    fflush(stdout);
    return !row.pass;
}

/* One TP degree on ranks 0..tp-1: teacher-forced, then greedy (timed when
 * tp > 1; TP=1 timing is the baseline's). */
static ryz_status run_tp_group(case_ctx *k, ryz_comm *tpc, int tp, int *failed) {
    int lead = ryz_comm_rank(tpc) == 0;
    model_env e = {0};
    run_samples rs;
    size_t nlog = (size_t)k->B * k->rows * k->cfg.vocab;
    float *logits = lead ? malloc(nlog * sizeof(float)) : NULL;
    int *ids = malloc((size_t)k->B * k->len * sizeof(int));
    ryz_status st = ids && (logits || !lead) ? RYZ_OK : ryz_error(RYZ_ENOMEM, "out of memory");
    if (st == RYZ_OK) st = env_open(k, tpc, 0, &e);
    progress(k, tp, "teacher-forced");
    if (st == RYZ_OK)
        st = ryz_model_generate(e.m, k->prompts, k->B, k->P, k->c->new_tokens, k->base_ids, ids,
                                logits, NULL);
    progress(k, tp, "greedy");
    /* The reference is host memory's (ryz_suite_collectives says why). */
    ryz_collective_ref ref = {0};
    int sampled = tp > 1 && !ryz_comm_device_memory(tpc);
    if (st == RYZ_OK)
        st = timed_runs(k, &e, tpc, tp > 1 ? k->s->repeat : 1, tp > 1, ids, sampled ? &ref : NULL,
                        &rs);
    if (st == RYZ_OK && tp > 1) st = record_group(k, tpc, &e.be, tp, &ref, &rs);
    ryz_collective_ref_close(&ref);
    if (st == RYZ_OK && lead) {
        ryz_compare cmp;
        double atol, rtol;
        ryz_suite_case_tol(k->s, k->c, &atol, &rtol);
        ryz_compare_logits(k->base_logits, logits, k->B * k->rows, k->cfg.vocab, atol, rtol,
                           &cmp);
        *failed += add_correctness(k, tp, &cmp, ids);
    }
    env_close(&e);
    free(logits);
    free(ids);
    return st;
}

/* World rank 0's prompt of the case on every rank: k->P and row 0 of
 * k->prompts (allocated here, (B, P)). Each rank encoded a prompt_text
 * itself (ryz_suite_validate) from its own tokenizer file, and a rank that
 * read another file (another node's copy) would feed its shard other
 * tokens than its group's; rank 0's are the ones the case runs, and a rank
 * whose own differ says so. Collective over world. */
static ryz_status agree_prompt(case_ctx *k) {
    const ryz_suite_case *c = k->c;
    int lead = ryz_comm_rank(k->world) == 0;
    k->P = c->prompt_len;
    ryz_status st = ryz_comm_broadcast(k->world, &k->P, sizeof k->P, 0);
    if (st != RYZ_OK)
        return st;
    k->prompts = malloc((size_t)k->B * k->P * sizeof(int));
    if (!k->prompts)
        return ryz_error(RYZ_ENOMEM, "out of memory for case %s", c->name);
    if (lead)
        memcpy(k->prompts, c->prompt, (size_t)k->P * sizeof(int));
    st = ryz_comm_broadcast(k->world, k->prompts, (size_t)k->P * sizeof(int), 0);
    if (st == RYZ_OK && !lead &&
        (k->P != c->prompt_len || memcmp(k->prompts, c->prompt, (size_t)k->P * sizeof(int))))
        RYZ_WARN("case %s: prompt encoded to other ids here than on rank 0 (another "
                 "tokenizer file?); running rank 0's %d ids",
                 c->name, k->P);
    return st;
}

/* Sets up the shared inputs of a case: config and per-sequence prompts
 * (sequence b's ids shifted by 97 * b, so batch rows differ). */
static ryz_status case_prepare(case_ctx *k) {
    ryz_weights *w = NULL;
    ryz_status st = ryz_model_source_open(k->c->model, 1, 0, &k->cfg, &w);
    ryz_weights_close(w);
    k->B = k->c->batch;
    if (st == RYZ_OK)
        st = agree_prompt(k);
    if (st != RYZ_OK) return st;
    k->len = k->P + k->c->new_tokens;
    k->rows = k->len - 1;
    k->base_ids = malloc((size_t)k->B * k->len * sizeof(int));
    if (ryz_comm_rank(k->world) == 0)
        k->base_logits = malloc((size_t)k->B * k->rows * k->cfg.vocab * sizeof(float));
    if (!k->base_ids || (ryz_comm_rank(k->world) == 0 && !k->base_logits))
        return ryz_error(RYZ_ENOMEM, "out of memory for case %s", k->c->name);
    for (int b = k->B - 1; b >= 0; b--) /* row 0 last: the others read it */
        for (int i = 0; i < k->P; i++)
            k->prompts[b * k->P + i] = (k->prompts[i] + 97 * b) % k->cfg.vocab;
    return RYZ_OK;
}

/* What ryz_suite_validate leaves for the run to trust, checked the same
 * way on every rank (from the suite alone): repeat within the samples
 * kept, and every prompt_text encoded. */
static ryz_status check_validated(const ryz_suite *s) {
    ryz_status st = ryz_suite_check_repeat(s);
    for (int i = 0; st == RYZ_OK && i < s->n_cases; i++)
        if (!s->cases[i].prompt || s->cases[i].prompt_len < 1)
            return ryz_error(RYZ_EINVAL,
                             "case %s: prompt_text not encoded (ryz_suite_validate "
                             "encodes it before the run)",
                             s->cases[i].name);
    return st;
}

/* The communicator the TP groups of a comm = `name` case are split from:
 * opts' one over world's ranks for nccl and shm, world itself for mpi. */
static ryz_comm *comm_for(const ryz_run_opts *o, ryz_comm *world, const char *name) {
    return !strcmp(name, "nccl") ? o->nccl : !strcmp(name, "shm") ? o->shm : world;
}

/* EINVAL when a case's comm is missing from opts, or has other ranks than
 * world. */
static ryz_status check_run_comms(const ryz_suite *s, ryz_comm *world, const ryz_run_opts *o) {
    static const char *const names[] = {"nccl", "shm"};
    for (int i = 0; i < 2; i++) {
        ryz_comm *c = comm_for(o, world, names[i]);
        if (!c && ryz_suite_needs_comm(s, names[i]))
            return ryz_error(RYZ_EINVAL, "suite %s has a case with comm = %s but the run has no "
                             "%s communicator (ryz_run_opts.%s)", s->name, names[i], names[i],
                             names[i]);
        if (c && ryz_comm_size(c) != ryz_comm_size(world))
            return ryz_error(RYZ_EINVAL, "suite %s: the %s communicator has %d ranks, the world %d",
                             s->name, names[i], ryz_comm_size(c), ryz_comm_size(world));
    }
    return RYZ_OK;
}

static ryz_status run_case(case_ctx *k, int *failed) {
    ryz_comm *parent = comm_for(k->opts, k->world, k->c->comm);
    ryz_status st = case_prepare(k);
    if (st == RYZ_OK && ryz_comm_rank(k->world) == 0)
        ryz_suite_print_case_header(k->c, k->B * k->rows, stdout);
    if (st == RYZ_OK) st = run_baseline(k);
    if (st == RYZ_OK && ryz_comm_rank(k->world) == 0)
        ryz_suite_print_row(k->res, k->c->name, 0, stdout);
    for (int i = 0; st == RYZ_OK && i < k->c->n_tp; i++) {
        ryz_comm *tpc = NULL;
        st = ryz_comm_split_first(parent, k->c->tp[i], &tpc);
        if (st == RYZ_OK && tpc) st = run_tp_group(k, tpc, k->c->tp[i], failed);
        ryz_comm_free(tpc);
        if (st == RYZ_OK) st = ryz_comm_barrier(k->world);
    }
    free(k->prompts);
    free(k->base_ids);
    free(k->base_logits);
    return st;
}

/* Aggregate read bandwidth of k ranks of world streaming at once, into t
 * (a collective over world; the ranks past k wait). One rank with
 * k * threads threads would instead share cores with the ranks spinning in
 * the barrier. */
static ryz_status bandwidth_of_k(const ryz_suite *s, ryz_comm *world, int k, bw_table *t) {
    ryz_comm *group = NULL;
    double best = 0;
    int starved = ryz_measure_starved("RYZ_TEST_PROBE_NOMEM", ryz_comm_rank(world));
    ryz_status st = ryz_comm_split_first(world, k, &group);
    if (st == RYZ_OK && group) st = ryz_probe_group(group, s->threads, PROBE_MIB, starved, &best);
    ryz_comm_free(group);
    t->k[t->n] = k, t->bw[t->n] = best;
    t->n++;
    return st == RYZ_OK ? ryz_comm_barrier(world) : st;
}

/* Bandwidth for TP=1 (the baseline, and the results' own figure) and,
 * where the runs are not probed one by one, every TP degree of the suite. */
static ryz_status measure_bandwidth(const ryz_suite *s, ryz_comm *world, int probe_runs,
                                    bw_table *t) {
    ryz_status st = bandwidth_of_k(s, world, 1, t); /* the baseline's, always */
    for (int i = 0; st == RYZ_OK && !probe_runs && i < s->n_cases; i++)
        for (int j = 0; st == RYZ_OK && j < s->cases[i].n_tp; j++) {
            int k = s->cases[i].tp[j];
            /* decided the same way on every rank (not from a rank's value) */
            if (bw_index(t, k) >= 0 || t->n == (int)(sizeof t->k / sizeof t->k[0])) continue;
            st = bandwidth_of_k(s, world, k, t);
        }
    return st;
}

/* One note per tolerance the suite loosens (ryz_suite_loosened), on
 * stderr beside the progress lines but not left out by --quiet: it
 * changes what the run's PASS means. */
static void note_loosened(const ryz_suite *s) {
    char notes[RYZ_SUITE_LOOSENED_MAX];
    if (ryz_suite_loosened(s, "ryz: note: ", notes, sizeof notes))
        fputs(notes, stderr);
}

ryz_status ryz_suite_run(const ryz_suite *s, ryz_comm *world, const ryz_run_opts *opts,
                         ryz_results *res, int *failed) {
    *failed = 0;
    int need = ryz_suite_max_tp(s), lead = ryz_comm_rank(world) == 0;
    if (ryz_comm_size(world) < need)
        return ryz_error(RYZ_EINVAL, "suite %s needs %d ranks (largest tp) but the world has %d",
                         s->name, need, ryz_comm_size(world));
    bw_table bw = {0};
    ryz_local_ranks local = {0};
    if (lead) note_loosened(s);
    ryz_status st = check_validated(s);
    if (st == RYZ_OK)
        st = check_run_comms(s, world, opts);
    if (st == RYZ_OK) st = ryz_measure_machine(world, s, &res->meta);
    if (st == RYZ_OK) st = ryz_measure_local_ranks(world, &local);
    /* Oversubscribed ranks would probe while others hold their cores: the
     * start probe serves then. Rank 0's view, so that every rank probes
     * (a collective) or none. */
    int probe_runs = !res->meta.oversubscribed;
    if (st == RYZ_OK) st = ryz_comm_broadcast(world, &probe_runs, sizeof probe_runs, 0);
    if (st == RYZ_OK) st = measure_bandwidth(s, world, probe_runs, &bw);
    res->meta.read_bandwidth_gbs = bw_of(&bw, 1) / 1e9;
    if (st == RYZ_OK && lead && res->meta.oversubscribed)
        printf("note: %d ranks x %d thread(s) on %d cores: oversubscribed, so speedup and "
               "efficiency are not meaningful (recorded in the results)\n",
               res->meta.world_size, s->threads, res->meta.cores);
    for (int i = 0; st == RYZ_OK && i < s->n_cases; i++) {
        case_ctx k = {.s = s, .c = &s->cases[i], .opts = opts, .world = world,
                      .res = lead ? res : NULL, .bw = &bw, .local = &local,
                      .probe_runs = probe_runs};
        st = run_case(&k, failed);
    }
    if (st != RYZ_OK) return st;
    /* Only rank 0 compared; everyone returns its verdict. */
    return ryz_comm_broadcast(world, failed, sizeof *failed, 0);
}
