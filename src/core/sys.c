/* Timers, accounted memory and environment parsing. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* MADV_HUGEPAGE */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ryz/core.h"

double ryz_time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

ryz_status ryz_self_exe(char *buf, size_t cap) {
    ssize_t n = cap > 1 ? readlink("/proc/self/exe", buf, cap - 1) : -1;
    if (n <= 0 || (size_t)n >= cap - 1)
        return ryz_error(RYZ_EIO, "cannot find own executable: %s",
                         n < 0 ? strerror(errno) : "path too long");
    buf[n] = '\0';
    return RYZ_OK;
}

/* A run of huge pages that weight blocks too small for their own share:
 * bump-allocated, freed when its last block is. */
typedef struct slab {
    size_t used; /* bytes handed out, this header included */
    size_t live; /* blocks not yet freed */
} slab;

/* Every block carries a 64-byte header (size, kind, slab) so free can
 * un-count it and the payload stays 64-byte aligned. */
typedef struct {
    size_t bytes;
    slab *from; /* the slab it was carved from, else NULL */
    int kind;
    char pad[64 - sizeof(size_t) - sizeof(slab *) - sizeof(int)];
} mem_header;
_Static_assert(sizeof(mem_header) == 64, "mem_header keeps payloads 64-byte aligned");

#define HUGE_PAGE ((size_t)2 << 20)
#define HUGE_MIN ((size_t)4 << 20) /* blocks from here get huge pages of their own */
/* Weight blocks from SLAB_MIN up to HUGE_MIN share SLAB_BYTES slabs of huge
 * pages: rounding each up to whole huge pages would waste up to 40 % of a
 * model's memory, and on 4 KiB pages the decode GEMV read bf16 110m 7-8 %
 * slower (its 48 matrices of 1.2 MB and 36 of 3.1 MB, docs/performance.md). */
#define SLAB_MIN ((size_t)256 << 10)
#if defined(__SANITIZE_ADDRESS__)
#define SLABS 0 /* ASan sees overruns only between blocks of their own */
#else
#define SLABS 1
#endif
#define SLAB_BYTES ((size_t)32 << 20)

void *ryz_alloc_stream(size_t bytes) {
    size_t total = (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    void *p = aligned_alloc(HUGE_PAGE, total);
#ifdef MADV_HUGEPAGE
    if (p) madvise(p, total, MADV_HUGEPAGE); /* advice only: failure is harmless */
#endif
    return p;
}

/* The slab weight blocks are carved from now (none before the first). */
static slab *slab_current;

/* total bytes (a multiple of 64, below SLAB_BYTES) from the current slab,
 * or from a new one when it has no room left; NULL when out of memory. */
static void *slab_carve(size_t total) {
    if (!slab_current || slab_current->used + total > SLAB_BYTES) {
        slab *s = ryz_alloc_stream(SLAB_BYTES);
        if (!s) return NULL;
        *s = (slab){.used = 64, .live = 0}; /* the header's own 64 bytes */
        slab_current = s; /* the old one is freed with its last block */
    }
    void *p = (char *)slab_current + slab_current->used;
    slab_current->used += total;
    slab_current->live++;
    return p;
}

static size_t mem_live[RYZ_MEM_NKINDS];
static size_t mem_high[RYZ_MEM_NKINDS];

void *ryz_mem_alloc(ryz_mem_kind kind, size_t count, size_t size) {
    RYZ_ASSERT((unsigned)kind < RYZ_MEM_NKINDS);
    size_t bytes;
    if (!ryz_mul_ok(count, size, &bytes) || bytes > SIZE_MAX - sizeof(mem_header) - 64) {
        ryz_error(RYZ_ENOMEM, "allocation of %zu x %zu bytes overflows", count, size);
        return NULL;
    }
    size_t total = (sizeof(mem_header) + bytes + 63) & ~(size_t)63;
    int slabbed = SLABS && kind == RYZ_MEM_WEIGHTS && total >= SLAB_MIN && total < HUGE_MIN;
    mem_header *h = slabbed            ? slab_carve(total)
                    : total >= HUGE_MIN ? ryz_alloc_stream(total)
                                        : aligned_alloc(64, total);
    if (!h) {
        ryz_error(RYZ_ENOMEM, "out of memory allocating %zu bytes of %s", bytes,
                  ryz_mem_kind_name(kind));
        return NULL;
    }
    slab *from = slabbed ? slab_current : NULL;
    memset(h, 0, total);
    h->bytes = bytes;
    h->kind = (int)kind;
    h->from = from;
    mem_live[kind] += bytes;
    if (mem_live[kind] > mem_high[kind]) mem_high[kind] = mem_live[kind];
    return h + 1;
}

void ryz_mem_free(void *p) {
    if (!p) return;
    mem_header *h = (mem_header *)p - 1;
    mem_live[h->kind] -= h->bytes;
    if (!h->from) {
        free(h);
    } else if (--h->from->live == 0) {
        if (h->from == slab_current) slab_current = NULL;
        free(h->from);
    }
}

size_t ryz_mem_bytes(ryz_mem_kind kind) {
    return mem_live[kind];
}

size_t ryz_mem_peak(ryz_mem_kind kind) {
    return mem_high[kind];
}

const char *ryz_mem_kind_name(ryz_mem_kind kind) {
    static const char *names[] = {"weights", "kv_cache", "scratch"};
    return (unsigned)kind < RYZ_MEM_NKINDS ? names[kind] : "unknown";
}

/* The "KEY: N kB" line of a /proc file, in bytes; 0 when absent. */
static size_t proc_kb(const char *path, const char *key) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[256];
    size_t n = strlen(key), kb = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':' && sscanf(line + n + 1, "%zu kB", &kb) == 1)
            break;
    fclose(f);
    return kb * 1024;
}

size_t ryz_mem_peak_rss(void) {
    return proc_kb("/proc/self/status", "VmHWM");
}

ryz_status ryz_open_regular(const char *path, int *fd) {
    struct stat sb;
    *fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (*fd < 0) return ryz_error(RYZ_EIO, "%s: cannot open: %s", path, strerror(errno));
    const char *why = fstat(*fd, &sb) != 0 ? strerror(errno)
                      : S_ISDIR(sb.st_mode) ? "is a directory"
                      : !S_ISREG(sb.st_mode)
                          ? "not a regular file (a FIFO, socket or device; want a file)"
                          : NULL;
    if (!why && fcntl(*fd, F_SETFL, fcntl(*fd, F_GETFL) & ~O_NONBLOCK) != 0) why = strerror(errno);
    if (!why) return RYZ_OK;
    close(*fd);
    *fd = -1;
    return ryz_error(RYZ_EIO, "%s: %s", path, why);
}

size_t ryz_mem_available(void) {
    const char *test = getenv("RYZ_TEST_MEM_AVAILABLE");
    if (test && *test) return (size_t)strtoull(test, NULL, 10);
    return proc_kb("/proc/meminfo", "MemAvailable");
}

ryz_status ryz_mem_check_available(size_t bytes, const char *what) {
    return ryz_mem_check_fits(bytes, ryz_mem_available(), what,
                              "this machine has available (MemAvailable)",
                              "use a smaller model or a machine with more memory");
}

ryz_status ryz_mem_check_fits(size_t bytes, size_t avail, const char *what, const char *where,
                              const char *fix) {
    if (avail == 0 || bytes <= avail) return RYZ_OK;
    int gb = avail >= 1000000000;
    double unit = gb ? 1e9 : 1e6;
    const char *name = gb ? "GB" : "MB";
    return ryz_error(RYZ_EINVAL, "%s: %.1f %s, more than the %.1f %s %s; %s", what,
                     (double)bytes / unit, name, (double)avail / unit, name, where, fix);
}

ryz_status ryz_cpu_ticks_read(const char *path, ryz_cpu_ticks *t) {
    const char *file = path ? path : "/proc/stat";
    unsigned long long v[8] = {0}; /* user nice system idle iowait irq softirq steal */
    char line[512];
    int n = 0;
    FILE *f = fopen(file, "r");
    while (f && n == 0 && fgets(line, sizeof line, f))
        if (!strncmp(line, "cpu ", 4))
            n = sscanf(line + 4, "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                       &v[3], &v[4], &v[5], &v[6], &v[7]);
    int err = errno;
    if (f) fclose(f);
    if (!f) return ryz_error(RYZ_EIO, "%s: cannot read the CPU times: %s", file, strerror(err));
    if (n < 7)
        return ryz_error(RYZ_EIO, "%s: no \"cpu\" line of at least 7 times (want Linux's "
                         "/proc/stat)", file);
    t->busy = v[0] + v[1] + v[2] + v[5] + v[6];
    t->steal = v[7];
    t->total = t->busy + v[3] + v[4] + v[7];
    return RYZ_OK;
}

ryz_status ryz_proc_ticks_read(const char *path, unsigned long long *ticks) {
    char line[1024];
    unsigned long long user = 0, sys = 0;
    FILE *f = fopen(path, "r");
    int err = errno, got = f && fgets(line, sizeof line, f) != NULL;
    if (f) fclose(f);
    if (!f) return ryz_error(RYZ_EIO, "%s: cannot read: %s", path, strerror(err));
    /* the command name in parentheses may hold spaces and ')' */
    const char *end = got ? strrchr(line, ')') : NULL;
    if (!end || sscanf(end + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &user,
                       &sys) != 2)
        return ryz_error(RYZ_EIO, "%s: no utime and stime (want Linux's /proc/PID/stat)", path);
    *ticks = user + sys;
    return RYZ_OK;
}

double ryz_cpu_steal_fraction(const ryz_cpu_ticks *a, const ryz_cpu_ticks *b) {
    if (b->busy < a->busy || b->steal < a->steal) return NAN; /* not in order */
    double busy = (double)(b->busy - a->busy), steal = (double)(b->steal - a->steal);
    return busy + steal > 0 ? steal / (busy + steal) : NAN;
}

void ryz_load_mark_take(const int *pids, int n, ryz_load_mark *m) {
    m->ours = 0, m->n = n;
    m->ok = n > 0 && ryz_cpu_ticks_read(NULL, &m->cpu) == RYZ_OK;
    for (int i = 0; m->ok && i < n; i++) {
        char path[64];
        unsigned long long t = 0;
        snprintf(path, sizeof path, "/proc/%d/stat", pids[i]);
        m->ok = ryz_proc_ticks_read(path, &t) == RYZ_OK;
        m->ours += t;
    }
}

void ryz_load_between(const ryz_load_mark *a, const ryz_load_mark *b, double *steal,
                      double *other) {
    *steal = *other = NAN;
    unsigned long long floor = (unsigned long long)RYZ_LOAD_MIN_TICKS * (unsigned)(a->n + 1);
    if (!a->ok || !b->ok || a->n != b->n || b->cpu.total < a->cpu.total + floor ||
        b->cpu.busy < a->cpu.busy || b->ours < a->ours)
        return;
    *steal = ryz_cpu_steal_fraction(&a->cpu, &b->cpu);
    /* process times and the host's are sampled apart: a tick either way */
    double busy = (double)(b->cpu.busy - a->cpu.busy), ours = (double)(b->ours - a->ours);
    *other = fmax(0, busy - ours) / (double)(b->cpu.total - a->cpu.total);
}

int ryz_load_disturbed(double steal, double other) {
    return steal > RYZ_LOAD_DISTURBED || other > RYZ_LOAD_DISTURBED;
}

ryz_status ryz_mem_peak_reset(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    int ok = f && fputs("5", f) >= 0;
    if (f && fclose(f) != 0) ok = 0; /* the kernel answers the write at the flush */
    return ok ? RYZ_OK
              : ryz_error(RYZ_EIO, "cannot reset the peak RSS (/proc/self/clear_refs): %s",
                          strerror(errno));
}

ryz_status ryz_env_int(const char *name, long def, long lo, long hi, long *out) {
    const char *v = getenv(name);
    if (!v || !*v) {
        *out = def;
        return RYZ_OK;
    }
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v)
        return ryz_error(RYZ_EINVAL, "%s='%s' is not an integer", name, v);
    if (x < lo || x > hi)
        return ryz_error(RYZ_EINVAL, "%s=%ld out of range [%ld, %ld]", name, x, lo, hi);
    *out = x;
    return RYZ_OK;
}

static _Atomic uint64_t streamed;

void ryz_streamed_add(uint64_t bytes) {
    atomic_fetch_add_explicit(&streamed, bytes, memory_order_relaxed);
}

uint64_t ryz_streamed_total(void) {
    return atomic_load_explicit(&streamed, memory_order_relaxed);
}
