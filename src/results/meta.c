/* Tool and machine attributes of a results file. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ryz/info.h"
#include "ryz/results.h"

#ifndef RYZ_GIT_REV
#define RYZ_GIT_REV "unknown"
#endif

const char *ryz_git_rev(void) {
    return RYZ_GIT_REV;
}

/* The first "model name" of /proc/cpuinfo, or "unknown". */
static void cpu_model(char *buf, size_t cap) {
    snprintf(buf, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) != 0 || !colon) continue;
        snprintf(buf, cap, "%s", colon + 2);
        buf[strcspn(buf, "\n")] = '\0';
        break;
    }
    fclose(f);
}

ryz_status ryz_results_meta_machine(ryz_results_meta *m, int world, int threads,
                                    const char *hosts, const char *backends,
                                    const char *suite_name, const char *suite_text) {
    char when[32], cpu[256], blas[512];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cpu_model(cpu, sizeof cpu);
    ryz_info_blas(blas, sizeof blas); /* names the core OpenBLAS runs: its sgemm varies 5x */
    m->world_size = world;
    m->cores = (int32_t)sysconf(_SC_NPROCESSORS_ONLN);
    m->threads_per_rank = threads;
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    m->oversubscribed = (local ? atoi(local) : world) * threads > m->cores;
    const char *vals[] = {RYZ_VERSION, RYZ_GIT_REV, when, hosts ? hosts : "",
                          backends,    "cpu",       cpu,  suite_name ? suite_name : "",
                          suite_text ? suite_text : "", blas};
    char **fields[] = {&m->tool_version, &m->git_rev,    &m->time_utc,   &m->hosts,
                       &m->backends,     &m->device,     &m->cpu_model,  &m->suite_name,
                       &m->suite_text,   &m->blas};
    ryz_status st = RYZ_OK;
    for (size_t i = 0; st == RYZ_OK && i < sizeof fields / sizeof fields[0]; i++)
        st = ryz_results_set_str(fields[i], vals[i]);
    return st;
}

ryz_status ryz_results_meta_set_cuda_device(ryz_results_meta *m) {
    char device[1024];
    ryz_info_cuda_line(device, sizeof device);
    return ryz_results_set_str(&m->device, device);
}
