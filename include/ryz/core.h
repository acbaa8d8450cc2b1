/* core: status codes and last-error message, rank-prefixed logging,
 * monotonic timers, memory accounting by category, environment parsing. */
#ifndef RYZ_CORE_H
#define RYZ_CORE_H

#include <stddef.h>
#include <stdint.h>

#define RYZ_VERSION "0.1.0"

typedef enum {
    RYZ_OK = 0,
    RYZ_EINVAL,    /* bad input or usage: exit code 2 */
    RYZ_EIO,       /* file or system error: exit code 2 */
    RYZ_ECOMM,     /* a collective failed: exit code 3 */
    RYZ_ETIMEOUT,  /* a collective timed out: exit code 3 */
    RYZ_ENOMEM,    /* allocation failed: exit code 2 */
    RYZ_EMISMATCH, /* a correctness check failed: exit code 1 */
} ryz_status;

/* Records a printf-style message for `s` (thread-local) and returns `s`,
 * so error sites read `return ryz_error(RYZ_EINVAL, "...")`. */
ryz_status ryz_error(ryz_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prefixes the current message with printf-style context ("case a: " +
 * message) and returns `s`; each line of a multi-line message gets it. */
ryz_status ryz_error_wrap(ryz_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The message of the most recent ryz_error() on this thread ("" if none). */
const char *ryz_last_error(void);
/* Forgets the last error message. */
void ryz_error_clear(void);
/* Short name of a status ("EINVAL"). */
const char *ryz_status_name(ryz_status s);
/* The process exit code the CLI uses for a status (see DESIGN 4.5). */
int ryz_status_exit_code(ryz_status s);

/* Programmer-error assertion: prints file and line, then aborts. */
#define RYZ_ASSERT(cond)                                                     \
    do {                                                                     \
        if (!(cond)) ryz_assert_fail(#cond, __FILE__, __LINE__);             \
    } while (0)
void ryz_assert_fail(const char *expr, const char *file, int line)
    __attribute__((noreturn));

/* Logging to stderr as "[ryz r0 INFO] msg". Level from RYZ_LOG
 * (error|warn|info|debug, default warn). */
typedef enum { RYZ_LOG_ERROR = 0, RYZ_LOG_WARN, RYZ_LOG_INFO, RYZ_LOG_DEBUG } ryz_log_level;
void ryz_log_set_rank(int rank);
void ryz_log_set_level(ryz_log_level level);
ryz_log_level ryz_log_get_level(void);
void ryz_log(ryz_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define RYZ_ERROR(...) ryz_log(RYZ_LOG_ERROR, __VA_ARGS__)
#define RYZ_WARN(...) ryz_log(RYZ_LOG_WARN, __VA_ARGS__)
#define RYZ_INFO(...) ryz_log(RYZ_LOG_INFO, __VA_ARGS__)
#define RYZ_DEBUG(...) ryz_log(RYZ_LOG_DEBUG, __VA_ARGS__)

/* Monotonic clock in seconds (CLOCK_MONOTONIC). */
double ryz_time_now(void);

/* This process's executable, resolved (/proc/self/exe), into buf: EIO
 * where it cannot be read or does not fit. */
ryz_status ryz_self_exe(char *buf, size_t cap);
/* Opens `path` for reading into *fd (close-on-exec) when it is a regular
 * file: a directory, FIFO, socket or device is EIO "PATH: is a directory"
 * or "PATH: not a regular file", without blocking (a FIFO with no writer
 * would hold a plain open forever). EIO "PATH: cannot open: REASON". */
ryz_status ryz_open_regular(const char *path, int *fd);

/* Memory accounting. Every long-lived buffer of the engine is allocated
 * through ryz_mem_alloc with its category, so per-rank bytes are exact. */
typedef enum { RYZ_MEM_WEIGHTS = 0, RYZ_MEM_KV, RYZ_MEM_SCRATCH, RYZ_MEM_NKINDS } ryz_mem_kind;
/* 64-byte aligned, zeroed; NULL on failure (message set). Overflow-checked
 * for count * size. */
void *ryz_mem_alloc(ryz_mem_kind kind, size_t count, size_t size);
/* Frees a ryz_mem_alloc block and un-counts it; NULL is a no-op. */
void ryz_mem_free(void *p);
size_t ryz_mem_bytes(ryz_mem_kind kind); /* live bytes of a kind */
size_t ryz_mem_peak(ryz_mem_kind kind);  /* high-water mark of a kind */
const char *ryz_mem_kind_name(ryz_mem_kind kind);
/* Allocates `bytes` for streaming reads: 2 MiB aligned and, where the
 * kernel allows, backed by transparent huge pages (fewer TLB misses when
 * decode streams the weights). Free with free(). NULL on failure. */
void *ryz_alloc_stream(size_t bytes);
/* Peak resident set size of this process in bytes (VmHWM), 0 if unknown. */
size_t ryz_mem_peak_rss(void);
/* Starts a new peak: ryz_mem_peak_rss then counts from the resident size
 * of now (Linux's /proc/self/clear_refs "5"), so a run's peak leaves out
 * what earlier work once held. EIO where the kernel does not allow it; the
 * peak then still holds the earlier one. */
ryz_status ryz_mem_peak_reset(void);
/* Bytes a new allocation can get without swapping (MemAvailable of
 * /proc/meminfo); 0 when unknown. RYZ_TEST_MEM_AVAILABLE (bytes) stands in
 * for it in tests. */
size_t ryz_mem_available(void);
/* EINVAL "WHAT: X GB, more than the Y GB this machine has available"
 * when `bytes` exceed ryz_mem_available(): checked before a model is
 * built, since past it the kernel kills a rank mid-load with no message.
 * OK when they fit or the figure is unknown. */
ryz_status ryz_mem_check_available(size_t bytes, const char *what);
/* EINVAL "WHAT: X GB, more than the Y GB WHERE; FIX" when `bytes` exceed
 * `avail` (in GB, or MB where avail is under 1 GB): the message of every
 * memory check, host or device. OK when they fit or avail is 0 (unknown). */
ryz_status ryz_mem_check_fits(size_t bytes, size_t avail, const char *what, const char *where,
                              const char *fix);
/* CPU time of the whole machine, in ticks (USER_HZ), from the "cpu " line
 * of /proc/stat: busy is what its CPUs ran (user, nice, system, irq,
 * softirq; guests are counted in user), steal what the hypervisor ran
 * elsewhere while they wanted to run. */
typedef struct {
    unsigned long long busy, steal, total; /* total: every column up to steal, idle included */
} ryz_cpu_ticks;
/* Reads path's "cpu " line (NULL: /proc/stat) into *t; a kernel without a
 * steal column reads steal 0. EIO naming the file when it cannot be read
 * or has no such line. */
ryz_status ryz_cpu_ticks_read(const char *path, ryz_cpu_ticks *t);
/* The share of the CPU time wanted from a to b that the host took:
 * steal / (busy + steal) of the difference; NAN when no tick passed (a
 * tick is 10 ms at USER_HZ 100, so a run shorter than that reads none). */
double ryz_cpu_steal_fraction(const ryz_cpu_ticks *a, const ryz_cpu_ticks *b);
/* The CPU time one process has run (utime + stime, its threads included)
 * in ticks, from its /proc/PID/stat at path. EIO naming the file when it
 * cannot be read or parsed (the process has ended, or not Linux). */
ryz_status ryz_proc_ticks_read(const char *path, unsigned long long *ticks);
/* The host's CPU ticks and those of a set of n processes ("ours") at one
 * moment (ok 0: unknown). */
typedef struct {
    ryz_cpu_ticks cpu;
    unsigned long long ours;
    int n, ok;
} ryz_load_mark;
/* Past this median share of stolen or others' CPU time, timed runs are
 * reported as a busy machine's. */
#define RYZ_LOAD_DISTURBED 0.10
/* Whether either share (NAN: unknown, not past it) is past
 * RYZ_LOAD_DISTURBED. */
int ryz_load_disturbed(double steal, double other);
/* All CPUs' ticks that must pass between two marks of n processes for a
 * share: RYZ_LOAD_MIN_TICKS x (n + 1). Each counter read is cut to a
 * whole tick, the host's and each process's, and others' share is clipped
 * at 0, so the error only adds, up to about 2 (n + 1) ticks: under 10 %
 * past this floor (0.25 s on 2 CPUs for one process, 0.375 s for two). */
#define RYZ_LOAD_MIN_TICKS 25
/* Reads a mark of the n processes pids (n > 0); ok 0 where /proc cannot
 * say (not Linux, or a process has ended). */
void ryz_load_mark_take(const int *pids, int n, ryz_load_mark *m);
/* Between marks a and b, the share of the CPU time wanted that the
 * hypervisor took (*steal, ryz_cpu_steal_fraction) and the share of the
 * host's CPUs' time that processes other than the mark's ran (*other):
 * what a shared machine's neighbours cost what ran between them. NAN for
 * both when a mark is unknown, the marks are of different process sets,
 * a counter went back, or too few ticks passed (RYZ_LOAD_MIN_TICKS). */
void ryz_load_between(const ryz_load_mark *a, const ryz_load_mark *b, double *steal,
                      double *other);
/* Bytes of weights this process has read from host memory, as the cpu
 * backend's matmuls count them (any thread). The comm layer's records take
 * the growth between two collectives: what streamed through the caches
 * before a call, which `ryz comm --evict` replays (docs/comm.md). */
void ryz_streamed_add(uint64_t bytes);
uint64_t ryz_streamed_total(void);

/* Order statistics of samples (x is sorted in place; n >= 1). Percentiles
 * by nearest rank. */
typedef struct {
    double median, p10, p90, p99, mean, min, max;
} ryz_stats;
void ryz_stats_compute(double *x, size_t n, ryz_stats *out);
/* The median of the known (not NAN) values of x[0..n), x untouched; NAN
 * when none is known (or no memory to sort them). */
double ryz_stats_known_median(const double *x, size_t n);
/* How much of a lock-step computation's time k ranks kept busy, from
 * their seconds per step (rank by rank: sec[i * steps + s]): the ranks'
 * mean seconds summed over the steps, over the slowest rank's seconds
 * summed over the steps (each step waits for its slowest). 1 when no rank
 * ever waits; 0 when no step took time. */
double ryz_lockstep_efficiency(const float *sec, int k, int steps);

/* Memory read bandwidth in bytes/s: `threads` threads each read their
 * part of a `bytes` buffer (larger than the caches) as four sequential
 * streams side by side, `reps` times; the best rep counts. 0 with a
 * message on failure. */
double ryz_mem_read_bandwidth(size_t bytes, int threads, int reps);
/* One thread's read of [p, p + bytes) as that probe reads its part: four
 * streams side by side, 32-byte loads where the CPU has AVX2. Returns the
 * sum of its 8-byte words (bytes / 8 of them; p 8-byte aligned), for the
 * caller to keep observable. */
uint64_t ryz_mem_read_sum(const void *p, size_t bytes);
/* Reads one word of every 64-byte line of p[0..bytes), which brings the
 * whole line into the caches: a pass that evicts them, or stands in for a
 * model streaming its weights. Returns their sum, for the caller to keep
 * observable. */
uint64_t ryz_mem_read_lines(const void *p, size_t bytes);
/* The passes behind it: `reps` timed passes (seconds[r]) over one buffer,
 * calling before(ctx, r) ahead of each pass, so that several processes can
 * start every pass together (a barrier) and their aggregate be taken pass
 * by pass; a status other than RYZ_OK from before() stops and is returned.
 * before() is first called once the buffer exists: ENOMEM (or EINVAL for
 * bad arguments) returns without calling it. */
ryz_status ryz_mem_read_passes(size_t bytes, int threads, int reps,
                               ryz_status (*before)(void *ctx, int rep), void *ctx,
                               double *seconds);
/* The same over slices: pass r reads `slice` bytes of the buffer, each
 * slice after the one before it and back to the start where the next
 * would not fit whole, so that ranks reading in lock-step (a barrier in
 * before()) read as a sharded model does between two collectives, from
 * memory rather than the caches when bytes is large. */
ryz_status ryz_mem_read_slices(size_t bytes, size_t slice, int threads, int reps,
                               ryz_status (*before)(void *ctx, int rep), void *ctx,
                               double *seconds);

/* Interruption (src/core/signal.c). Installs SIGINT and SIGTERM handlers
 * that only record the first signal (idempotent); a second one at least a
 * second later takes the default action (a forced stop). */
void ryz_signals_install(void);
/* Under an MPI launcher: where the first stop signal came from elsewhere
 * than the parent process (a self-launching ryz tells its ranks at once,
 * src/cli/launch.c), a later one from the parent is mpirun's own kill
 * sequence (it signals the ranks a second after it was signalled, and
 * kills them a second after that), not a user's repeat, so it does not
 * force the stop. Where the parent sent the first (your own mpirun, srun),
 * its repeats count as before. */
void ryz_signals_parent_escalates(void);
/* The signal that interrupted this process (SIGINT or SIGTERM), 0 if none.
 * Safe to call from any thread. */
int ryz_interrupted(void);
/* RYZ_OK, or ECOMM "interrupted by signal N" once a stop signal came: the
 * status a run unwinds with (the comm wrapper's on rank 0 at a collective),
 * from which ryz_cli_fail makes exit code 128 + N. */
ryz_status ryz_interrupt_check(void);
/* TEST ONLY: behave as if signal `sig` had arrived (0 clears). */
void ryz_interrupt_set(int sig);

/* Environment: integer variable `name` in [lo, hi]; `def` when unset.
 * EINVAL with a message naming the variable when malformed or out of range. */
ryz_status ryz_env_int(const char *name, long def, long lo, long hi, long *out);
/* Checked size_t multiply: 0 on overflow, else 1 and *out = a*b. */
int ryz_mul_ok(size_t a, size_t b, size_t *out);

#endif
