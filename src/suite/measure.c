/* Machine description, per-rank gathers and collective statistics. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "measure.h"
#include "ryz/info.h"

/* Whether name is one of the comma-separated entries of list. */
static int listed(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && !strncmp(p, name, n)) return 1;
        p += len + (p[len] == ',');
    }
    return 0;
}

enum { HOST = 64 }; /* bytes of a hostname as gathered */

/* This process's hostname, NUL-padded to HOST bytes, as floats to gather. */
static void host_floats(float *out) {
    char name[HOST] = "";
    gethostname(name, HOST - 1);
    memcpy(out, name, HOST);
}

/* Distinct hostnames of the world, comma-separated, in rank order. */
static ryz_status world_hosts(ryz_comm *world, char *out, size_t cap) {
    enum { H = HOST };
    float mine[H / sizeof(float)];
    host_floats(mine);
    int n = ryz_comm_size(world);
    float *all = malloc((size_t)n * H);
    if (!all) return ryz_error(RYZ_ENOMEM, "out of memory gathering hostnames");
    ryz_status st = ryz_comm_all_gather(world, mine, all, H / sizeof(float));
    out[0] = '\0';
    for (int r = 0; st == RYZ_OK && r < n; r++) {
        char h[H + 1] = "";
        memcpy(h, (char *)all + (size_t)r * H, H);
        if (listed(out, h)) continue;
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s%s", len ? "," : "", h);
    }
    free(all);
    return st;
}

/* The suite's distinct "backend+comm" pairs, comma-separated, in case order. */
static void suite_backends(const ryz_suite *s, char *out, size_t cap) {
    out[0] = '\0';
    for (int i = 0; i < s->n_cases; i++) {
        char pair[40];
        snprintf(pair, sizeof pair, "%s+%s", s->cases[i].backend, s->cases[i].comm);
        if (listed(out, pair)) continue;
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s%s", len ? "," : "", pair);
    }
}

/* "cpu", or when a case runs on cuda the runtime and devices `ryz info`
 * lists, on one line (the attribute is printed in a table row). */
static void suite_device(const ryz_suite *s, char *out, size_t cap) {
    snprintf(out, cap, "cpu");
    for (int i = 0; i < s->n_cases; i++)
        if (!strcmp(s->cases[i].backend, "cuda")) {
            ryz_info_cuda_line(out, cap);
            return;
        }
}

ryz_status ryz_measure_machine(ryz_comm *world, const ryz_suite *s, ryz_results_meta *meta) {
    char hosts[1024], backends[256], device[1024];
    ryz_status st = world_hosts(world, hosts, sizeof hosts);
    if (st != RYZ_OK) return st;
    suite_backends(s, backends, sizeof backends);
    suite_device(s, device, sizeof device);
    st = ryz_results_meta_machine(meta, ryz_comm_size(world), s->threads, hosts, backends,
                                  s->name, s->text);
    if (st == RYZ_OK) st = ryz_results_set_str(&meta->kind, RYZ_KIND_SUITE);
    return st == RYZ_OK ? ryz_results_set_str(&meta->device, device) : st;
}

int ryz_measure_starved(const char *var, int rank) {
    long starved = -1;
    return ryz_env_int(var, -1, -1, 1 << 20, &starved) == RYZ_OK && starved == rank;
}

ryz_status ryz_measure_ranks(ryz_comm *c, const ryz_backend *be, double peak_rss, double comm_s,
                             double wall_s, double *out) {
    double mine[RANK_NFIELDS] = {(double)ryz_backend_mem_bytes(be, RYZ_MEM_WEIGHTS),
                                 (double)ryz_backend_mem_bytes(be, RYZ_MEM_KV),
                                 (double)ryz_backend_mem_bytes(be, RYZ_MEM_SCRATCH), peak_rss,
                                 comm_s, wall_s};
    /* Doubles travel as pairs of floats (an exact byte copy), so byte
     * counts past 2^24 stay exact. */
    size_t per = RANK_NFIELDS * (sizeof(double) / sizeof(float));
    return ryz_comm_all_gather(c, (const float *)(const void *)mine, (float *)(void *)out, per);
}

ryz_status ryz_measure_local_ranks(ryz_comm *world, ryz_local_ranks *out) {
    enum { PER = HOST / sizeof(float) + 1 }; /* hostname, then the pid's bytes */
    float mine[PER];
    int pid = (int)getpid(), n = ryz_comm_size(world);
    host_floats(mine);
    memcpy(&mine[PER - 1], &pid, sizeof pid);
    float *all = malloc((size_t)n * sizeof mine);
    out->n = 0;
    if (!all) return ryz_error(RYZ_ENOMEM, "out of memory gathering the ranks' pids");
    ryz_status st = ryz_comm_all_gather(world, mine, all, PER);
    for (int r = 0; st == RYZ_OK && ryz_comm_rank(world) == 0 && r < n; r++) {
        const float *e = all + (size_t)r * PER;
        if (memcmp(e, mine, HOST) != 0) continue;
        if (out->n == RYZ_LOAD_MAX_PIDS) { /* a partial set would count ranks as others */
            out->n = 0;
            break;
        }
        memcpy(&out->pid[out->n++], &e[PER - 1], sizeof pid);
    }
    free(all);
    return st;
}
