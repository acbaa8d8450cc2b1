/* The Open MPI backend and its watchdog.
 *
 * Collectives are MPI's blocking ones on communicators with
 * MPI_ERRORS_RETURN, so a failed collective becomes a ryz_status with MPI's
 * message. A hang cannot return from a blocking call; instead a watchdog
 * thread per process reads what the wrapper publishes (comm_inflight_get)
 * and, once this process has been inside one collective longer than
 * RYZ_TIMEOUT, asks every rank where it is over a private duplicate of the
 * world (the side channel), prints which ranks did not arrive, and ends the
 * job with MPI_Abort(3). The same thread answers the other ranks' questions,
 * so a rank stuck in a collective or in computation still says where it
 * is, and a rank that does not answer is dead or unreachable. Non-blocking
 * collectives polled against a deadline would let a timed-out call return
 * a status instead, but Open MPI 4.1 serves them from libnbc at about twice
 * the latency of the blocking ones below 4 KiB (docs/reliability.md).
 *
 * Every communicator here is a split_first of the world, so its ranks are
 * world ranks 0..size-1 and a member's world rank is its rank. */
#define _POSIX_C_SOURCE 200809L
#include <mpi.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

typedef struct {
    MPI_Comm comm;
    int owned; /* 1 when we created it and must free it */
} mpi_ctx;

static ryz_status mpi_check(int rc, const char *op) {
    if (rc == MPI_SUCCESS)
        return RYZ_OK;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return ryz_error(RYZ_ECOMM, "MPI %s failed: %s", op, msg);
}

/* ---- the watchdog ------------------------------------------------------ */

#define TICK_S 0.02       /* how often the thread looks and answers */
#define ANSWER_WAIT_S 1.0 /* how long a timed-out rank waits for answers */
#define SIGNAL_WAIT_S 0.2 /* a collective may still run this long after a signal */
#define SIGNAL_ASK_S 0.4  /* then a rank that does not answer within this is dead */
#define PRINT_WAIT_S 0.5  /* lets the other ranks print before the abort */

/* Side channel tags. A question carries the tag its answer must use, which
 * says why it is asked: a watchdog that timed out (the ranks that are
 * waiting too then report and stop), one that saw a signal, or the main
 * thread (ryz_comm_check_peers). */
enum { TAG_ASK = 0x7e01, TAG_TIMEOUT, TAG_SIGNAL, TAG_MAIN, N_ASKERS = 3 };

/* An answer: where a rank is (fields of comm_call). */
enum { A_BUSY, A_COMM, A_SIZE, A_OP, A_SEQ, A_COUNT, A_ROOT, A_LEN };

/* One round of questions to ranks 0..n-1, and its answers. */
typedef struct {
    int64_t tag;              /* the question's payload: TAG_TIMEOUT, TAG_SIGNAL or TAG_MAIN */
    MPI_Request *send;        /* (size) */
    MPI_Request *recv;        /* (size) */
    int64_t (*answer)[A_LEN]; /* (size, A_LEN) */
    int *answered;            /* (size) 1 when rank p answered (and for this rank) */
} query;

static struct {
    int on, side_on; /* thread running; side channel usable (MPI_THREAD_MULTIPLE) */
    MPI_Comm side;
    int rank, size;
    pthread_t thread;
    atomic_int stop;
    int64_t question; /* the question being received */
    MPI_Request question_req;
    int64_t (*reply)[A_LEN]; /* (N_ASKERS * size, A_LEN) per asker and tag */
    MPI_Request *reply_req;  /* (N_ASKERS * size) */
    query ask[2];            /* [0] the watchdog's, [1] the main thread's */
    double signal_seen;      /* when the thread first saw a signal */
    int signal_checked;      /* it has asked whether a rank died since */
    int timed_out_peer;      /* a rank whose watchdog timed out asked us, else -1 */
} wd;

/* This process's answer: the collective it is in, or was last in. */
static void my_answer(int64_t a[A_LEN]) {
    comm_call k;
    comm_inflight_get(&k);
    a[A_BUSY] = k.busy, a[A_COMM] = k.comm_id, a[A_SIZE] = k.size, a[A_OP] = k.op;
    a[A_SEQ] = (int64_t)k.seq, a[A_COUNT] = (int64_t)k.count, a[A_ROOT] = k.root;
}

/* The call an answer from my_answer describes. */
static comm_call call_of_answer(const int64_t a[A_LEN]) {
    return (comm_call){.busy = (int)a[A_BUSY],
                       .comm_id = a[A_COMM],
                       .size = (int)a[A_SIZE],
                       .op = (int)a[A_OP],
                       .seq = (uint64_t)a[A_SEQ],
                       .count = (uint64_t)a[A_COUNT],
                       .root = (int)a[A_ROOT]};
}

/* Answers every question that has arrived (watchdog thread only) and
 * notes a timed-out asker. An asker whose previous answer is still being
 * sent gets none this time. */
static void answer_questions(void) {
    for (;;) {
        int done = 0;
        MPI_Status s;
        if (MPI_Test(&wd.question_req, &done, &s) != MPI_SUCCESS || !done)
            return;
        int tag = (int)wd.question, slot = N_ASKERS * s.MPI_SOURCE + (tag - TAG_TIMEOUT);
        if (tag == TAG_TIMEOUT && wd.timed_out_peer < 0)
            wd.timed_out_peer = s.MPI_SOURCE;
        int free_slot = 1;
        if (tag < TAG_TIMEOUT || tag > TAG_MAIN)
            free_slot = 0; /* not ours: ignore */
        else if (wd.reply_req[slot] != MPI_REQUEST_NULL)
            MPI_Test(&wd.reply_req[slot], &free_slot, MPI_STATUS_IGNORE);
        if (free_slot) {
            my_answer(wd.reply[slot]);
            MPI_Isend(wd.reply[slot], A_LEN, MPI_INT64_T, s.MPI_SOURCE, tag, wd.side,
                      &wd.reply_req[slot]);
        }
        MPI_Irecv(&wd.question, 1, MPI_INT64_T, MPI_ANY_SOURCE, TAG_ASK, wd.side, &wd.question_req);
    }
}

/* Asks ranks 0..n-1 where they are, saying why (tag), and waits up to
 * `wait` seconds for the answers (q->answered). `serve`: also answer others
 * meanwhile (the watchdog thread must; the main thread leaves that to it).
 * Returns how many ranks did not answer. */
static int ask_ranks(query *q, int tag, int n, double wait, int serve) {
    int pending = 0;
    q->tag = tag;
    for (int p = 0; p < n; p++) {
        q->answered[p] = p == wd.rank;
        q->send[p] = q->recv[p] = MPI_REQUEST_NULL;
        if (p == wd.rank)
            continue;
        MPI_Irecv(q->answer[p], A_LEN, MPI_INT64_T, p, (int)q->tag, wd.side, &q->recv[p]);
        MPI_Isend(&q->tag, 1, MPI_INT64_T, p, TAG_ASK, wd.side, &q->send[p]);
        pending++;
    }
    for (double end = ryz_time_now() + wait; pending > 0 && ryz_time_now() < end;) {
        for (int p = 0; p < n; p++) {
            int done = 0;
            if (q->recv[p] == MPI_REQUEST_NULL)
                continue;
            MPI_Test(&q->recv[p], &done, MPI_STATUS_IGNORE);
            if (done)
                q->answered[p] = 1, pending--;
        }
        if (serve)
            answer_questions();
        comm_sleep(0.001);
    }
    for (int p = 0; p < n; p++) {
        if (q->recv[p] != MPI_REQUEST_NULL) {
            MPI_Cancel(&q->recv[p]);
            MPI_Wait(&q->recv[p], MPI_STATUS_IGNORE);
        }
        if (q->send[p] != MPI_REQUEST_NULL)
            MPI_Request_free(&q->send[p]);
    }
    return pending;
}

/* Appends printf-style text to buf (cap bytes, *len used so far). */
__attribute__((format(printf, 4, 5))) static void append(char *buf, size_t cap, size_t *len,
                                                         const char *fmt, ...) {
    if (*len >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len += (size_t)n;
}

/* Appends what rank p's answer says about the stuck call k: nothing when it
 * is in k too. Returns 1 when p did not arrive at k. */
static int describe_rank(const comm_call *k, int p, const query *q, char *buf, size_t cap,
                         size_t *len) {
    if (!q->answered[p]) {
        append(buf, cap, len, "; rank %d did not answer (exited, killed or unreachable)", p);
        return 1;
    }
    comm_call other = call_of_answer(q->answer[p]);
    char what[160];
    comm_describe(&other, what, sizeof what);
    if (other.busy && other.comm_id == k->comm_id && other.seq == k->seq && other.op == k->op)
        return 0;
    if (other.busy)
        append(buf, cap, len, "; rank %d is in %s on %d ranks instead", p, what, other.size);
    else if (other.seq == 0)
        append(buf, cap, len, "; rank %d did not arrive (alive; no collective yet)", p);
    else
        append(buf, cap, len, "; rank %d did not arrive (alive; its last collective was %s)", p,
               what);
    return 1;
}

/* The first words of the watchdog's report on call k: why it fired (signal
 * sig, else rank `peer` timed out, else this rank did). */
static void fire_headline(const comm_call *k, int sig, int peer, char *msg, size_t cap,
                          size_t *len) {
    char what[160];
    comm_describe(k, what, sizeof what);
    if (sig)
        append(msg, cap, len, "stopped by signal %d while in %s on %d ranks", sig, what, k->size);
    else if (peer >= 0)
        append(msg, cap, len,
               "%s on %d ranks had waited %.1f s when rank %d timed out "
               "(RYZ_TIMEOUT %g s)",
               what, k->size, ryz_time_now() - k->t0, peer, ryz_comm_timeout());
    else
        append(msg, cap, len, "%s on %d ranks did not complete within %g s (RYZ_TIMEOUT)", what,
               k->size, ryz_comm_timeout());
}

/* The watchdog's verdict on call k, which has run too long (peer -1), or
 * was still running when rank `peer` timed out, or after signal sig: asks
 * the ranks of its communicator where they are, prints which did not
 * arrive, and ends the job with exit code 3. After a signal it reports and
 * ends only when a rank did not answer (a live rank stops by itself);
 * otherwise it returns. */
static void watchdog_fire(const comm_call *k, int sig, int peer) {
    query *q = &wd.ask[0];
    int silent = wd.side_on ? ask_ranks(q, sig ? TAG_SIGNAL : TAG_TIMEOUT, k->size,
                                        sig ? SIGNAL_ASK_S : ANSWER_WAIT_S, 1)
                            : 0;
    if (sig && (!wd.side_on || silent == 0))
        return;
    char msg[4096];
    size_t len = 0, missing = 0;
    fire_headline(k, sig, peer, msg, sizeof msg, &len);
    for (int p = 0; wd.side_on && p < k->size; p++)
        if (p != wd.rank && (!sig || !q->answered[p]))
            missing += (size_t)describe_rank(k, p, q, msg, sizeof msg, &len);
    if (!wd.side_on)
        append(msg, sizeof msg, &len, "; no rank could be asked (no MPI thread support)");
    else if (missing == 0)
        append(msg, sizeof msg, &len, "; every rank arrived, so the transport is stuck");
    fprintf(stderr, "ryz: error (rank %d): %s\n", wd.rank, msg);
    fflush(stderr);
    comm_sleep(PRINT_WAIT_S);
    if (wd.side_on)
        MPI_Abort(MPI_COMM_WORLD, 3);
    _exit(3);
}

/* One look at the published call: fires on a timeout, or once after a
 * signal when the call outlives it by SIGNAL_WAIT_S. */
static void watchdog_look(void) {
    comm_call k;
    if (!comm_inflight_get(&k) || k.size < 2)
        return;
    double now = ryz_time_now(), timeout = ryz_comm_timeout();
    int own = timeout > 0 && now - k.t0 >= timeout;
    if (own || wd.timed_out_peer >= 0)
        watchdog_fire(&k, 0, own ? -1 : wd.timed_out_peer);
    int sig = ryz_interrupted();
    if (!sig || wd.signal_checked)
        return;
    if (wd.signal_seen == 0)
        wd.signal_seen = now;
    if (now - (k.t0 > wd.signal_seen ? k.t0 : wd.signal_seen) < SIGNAL_WAIT_S)
        return;
    wd.signal_checked = 1;
    watchdog_fire(&k, sig, -1);
}

/* The thread: every TICK_S, answers questions and looks at the published
 * call, until wd.stop; then cancels what it has posted. */
static void *watchdog_main(void *arg) {
    (void)arg;
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, NULL); /* signals go to the main thread */
    if (wd.side_on)
        MPI_Irecv(&wd.question, 1, MPI_INT64_T, MPI_ANY_SOURCE, TAG_ASK, wd.side, &wd.question_req);
    while (!atomic_load(&wd.stop)) {
        comm_sleep(TICK_S);
        if (wd.side_on)
            answer_questions();
        watchdog_look();
    }
    if (wd.side_on) {
        MPI_Cancel(&wd.question_req);
        MPI_Wait(&wd.question_req, MPI_STATUS_IGNORE);
        for (int i = 0; i < N_ASKERS * wd.size; i++)
            if (wd.reply_req[i] != MPI_REQUEST_NULL)
                MPI_Request_free(&wd.reply_req[i]);
    }
    return NULL;
}

/* Frees what watchdog_alloc took and zeroes wd (safe on a half-built wd). */
static void watchdog_free_buffers(void) {
    free(wd.reply);
    free(wd.reply_req);
    for (int i = 0; i < 2; i++) {
        free(wd.ask[i].send);
        free(wd.ask[i].recv);
        free(wd.ask[i].answer);
        free(wd.ask[i].answered);
    }
    memset(&wd, 0, sizeof wd);
}

/* The answer and question buffers for `size` ranks. ENOMEM on failure
 * (watchdog_free_buffers releases a partial set). */
static ryz_status watchdog_alloc(int size) {
    wd.reply = calloc(N_ASKERS * (size_t)size, sizeof *wd.reply);
    wd.reply_req = malloc(N_ASKERS * (size_t)size * sizeof *wd.reply_req);
    int ok = wd.reply && wd.reply_req;
    for (int i = 0; i < 2; i++) {
        query *q = &wd.ask[i];
        q->send = malloc((size_t)size * sizeof *q->send);
        q->recv = malloc((size_t)size * sizeof *q->recv);
        q->answer = calloc((size_t)size, sizeof *q->answer);
        q->answered = calloc((size_t)size, sizeof *q->answered);
        ok = ok && q->send && q->recv && q->answer && q->answered;
    }
    if (!ok)
        return ryz_error(RYZ_ENOMEM, "out of memory starting the watchdog");
    for (int i = 0; i < N_ASKERS * size; i++)
        wd.reply_req[i] = MPI_REQUEST_NULL;
    return RYZ_OK;
}

/* Starts the thread (once per process). The side channel needs
 * MPI_THREAD_MULTIPLE; without it the thread still ends a hung job, but
 * cannot say which ranks are missing. */
static ryz_status watchdog_start(int rank, int size) {
    if (wd.on)
        return RYZ_OK;
    int level = MPI_THREAD_SINGLE;
    MPI_Query_thread(&level);
    wd.rank = rank, wd.size = size, wd.side_on = level >= MPI_THREAD_MULTIPLE;
    wd.timed_out_peer = -1;
    atomic_store(&wd.stop, 0);
    ryz_status st = watchdog_alloc(size);
    if (st == RYZ_OK && wd.side_on) {
        st = mpi_check(MPI_Comm_dup(MPI_COMM_WORLD, &wd.side), "comm_dup (watchdog)");
        if (st == RYZ_OK)
            MPI_Comm_set_errhandler(wd.side, MPI_ERRORS_RETURN);
        else
            wd.side_on = 0;
    }
    if (st == RYZ_OK && pthread_create(&wd.thread, NULL, watchdog_main, NULL) != 0)
        st = ryz_error(RYZ_ECOMM, "cannot start the watchdog thread");
    if (st != RYZ_OK) {
        if (wd.side_on)
            MPI_Comm_free(&wd.side);
        watchdog_free_buffers();
        return st;
    }
    wd.on = 1;
    return RYZ_OK;
}

/* Stops and joins the thread, frees the side channel (no-op when off). */
static void watchdog_stop(void) {
    if (!wd.on)
        return;
    atomic_store(&wd.stop, 1);
    pthread_join(wd.thread, NULL);
    if (wd.side_on)
        MPI_Comm_free(&wd.side);
    watchdog_free_buffers();
}

/* Which of ranks 0..n-1 answer within grace_s (main thread). */
ryz_status comm_mpi_check_peers(void *ctx, int n, double grace_s) {
    (void)ctx;
    if (!wd.on || !wd.side_on)
        return ryz_error(RYZ_ECOMM, "cannot tell whether the other ranks are alive: no watchdog "
                                    "(RYZ_TIMEOUT=0 or MPI without thread support)");
    query *q = &wd.ask[1];
    if (ask_ranks(q, TAG_MAIN, n, grace_s, 0) == 0)
        return RYZ_OK;
    char msg[2048];
    size_t len = 0;
    for (int p = 0; p < n; p++)
        if (!q->answered[p])
            append(msg, sizeof msg, &len, "%s%d", len ? ", " : "", p);
    return ryz_error(RYZ_ECOMM,
                     "rank(s) %s did not answer within %g s (exited, killed or unreachable)", msg,
                     grace_s);
}

/* ---- the collectives ----------------------------------------------------- */

static ryz_status mpi_all_reduce_sum(void *ctx, const float *send, float *recv, size_t count) {
    mpi_ctx *m = ctx;
    const void *s = send == recv ? MPI_IN_PLACE : send;
    return mpi_check(MPI_Allreduce(s, recv, (int)count, MPI_FLOAT, MPI_SUM, m->comm), "all_reduce");
}

static ryz_status mpi_all_gather(void *ctx, const float *send, float *recv, size_t n) {
    mpi_ctx *m = ctx;
    return mpi_check(MPI_Allgather(send, (int)n, MPI_FLOAT, recv, (int)n, MPI_FLOAT, m->comm),
                     "all_gather");
}

static ryz_status mpi_reduce_scatter(void *ctx, const float *send, float *recv, size_t n) {
    mpi_ctx *m = ctx;
    return mpi_check(MPI_Reduce_scatter_block(send, recv, (int)n, MPI_FLOAT, MPI_SUM, m->comm),
                     "reduce_scatter");
}

static ryz_status mpi_broadcast(void *ctx, void *buf, size_t bytes, int root) {
    mpi_ctx *m = ctx;
    return mpi_check(MPI_Bcast(buf, (int)bytes, MPI_BYTE, root, m->comm), "broadcast");
}

static ryz_status mpi_barrier(void *ctx) {
    mpi_ctx *m = ctx;
    return mpi_check(MPI_Barrier(m->comm), "barrier");
}

static void mpi_abort(void *ctx, int code) {
    mpi_ctx *m = ctx;
    MPI_Abort(m->comm, code);
}

static void mpi_free(void *ctx) {
    mpi_ctx *m = ctx;
    if (m && m->owned && m->comm != MPI_COMM_NULL)
        MPI_Comm_free(&m->comm);
    free(m);
}

static ryz_status mpi_wrap(MPI_Comm comm, int owned, ryz_comm **out);

static ryz_status mpi_split_first(void *ctx, int n, ryz_comm **out) {
    mpi_ctx *m = ctx;
    int rank;
    MPI_Comm_rank(m->comm, &rank);
    MPI_Comm sub;
    ryz_status s =
        mpi_check(MPI_Comm_split(m->comm, rank < n ? 0 : MPI_UNDEFINED, rank, &sub), "comm_split");
    if (s != RYZ_OK || sub == MPI_COMM_NULL)
        return s;
    return mpi_wrap(sub, 1, out);
}

static const ryz_comm_iface mpi_iface = {
    .name = "mpi",
    .all_reduce_sum = mpi_all_reduce_sum,
    .all_gather = mpi_all_gather,
    .reduce_scatter = mpi_reduce_scatter,
    .broadcast = mpi_broadcast,
    .barrier = mpi_barrier,
    .abort = mpi_abort,
    .split_first = mpi_split_first,
    .free = mpi_free,
    .check_peers = comm_mpi_check_peers,
};

static ryz_status mpi_wrap(MPI_Comm comm, int owned, ryz_comm **out) {
    mpi_ctx *m = calloc(1, sizeof *m);
    if (!m)
        return ryz_error(RYZ_ENOMEM, "out of memory creating mpi communicator");
    m->comm = comm;
    m->owned = owned;
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    return ryz_comm_create(&mpi_iface, m, rank, size, out);
}

ryz_status ryz_mpi_init(int *argc, char ***argv) {
    ryz_status st = ryz_comm_setup();
    if (st != RYZ_OK)
        return st;
    int inited = 0;
    MPI_Initialized(&inited);
    if (inited)
        return RYZ_OK;
    int provided;
    int want = ryz_comm_timeout() > 0 ? MPI_THREAD_MULTIPLE : MPI_THREAD_FUNNELED;
    return mpi_check(MPI_Init_thread(argc, argv, want, &provided), "init");
}

void ryz_mpi_finalize(void) {
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (!inited || finalized)
        return;
    watchdog_stop();
    MPI_Finalize();
}

int ryz_mpi_launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

ryz_status ryz_comm_init_mpi_world(ryz_comm **out) {
    ryz_status st = mpi_wrap(MPI_COMM_WORLD, 0, out);
    if (st != RYZ_OK)
        return st;
    int rank = ryz_comm_rank(*out), size = ryz_comm_size(*out);
    comm_set_process_rank(rank);
    if (size > 1 && ryz_comm_timeout() > 0)
        st = watchdog_start(rank, size);
    if (st != RYZ_OK) {
        ryz_comm_free(*out);
        *out = NULL;
    }
    return st;
}
