/* What the comm wrapper (comm.c), the fault injector (fault.c) and the
 * backends share; nothing outside src/comm includes this. */
#ifndef RYZ_COMM_INTERNAL_H
#define RYZ_COMM_INTERNAL_H

#include <stdint.h>

#include "ryz/comm.h"

/* The collective-like ops the wrapper watches besides ryz_comm_op:
 * splitting a communicator is collective over the parent, so it is
 * counted, checked and watched like the others (but not profiled). */
#define COMM_OP_SPLIT ((int)RYZ_OP_COUNT)

/* One collective as the wrapper saw it. */
typedef struct {
    int busy;        /* 1: this process is inside it now; 0: it is the last one */
    int64_t comm_id; /* the same on every member of the communicator */
    int size;        /* ranks of the communicator (world ranks 0..size-1) */
    int op;          /* ryz_comm_op or COMM_OP_SPLIT */
    uint64_t seq;    /* its number on the communicator, from 1 */
    uint64_t count;  /* floats (per rank for all_gather and reduce_scatter),
                        bytes for broadcast, ranks kept for comm_split */
    int root;        /* broadcast root, else 0 */
    double t0;       /* when it began (ryz_time_now) */
} comm_call;

/* Copies the collective this process is in (busy = 1) or was last in
 * (busy = 0; all zero before the first) into *out. Safe from any thread:
 * the wrapper publishes calls through a sequence lock. Returns out->busy. */
int comm_inflight_get(comm_call *out);

/* "all_reduce #12 of 1152 floats", "broadcast #3 of 4 bytes from rank 0",
 * "barrier #5": how messages name a call. Writes at most cap bytes. */
void comm_describe(const comm_call *call, char *buf, size_t cap);

/* This process's rank in the world (0 until the MPI world is created): the
 * rank fault specs and the interruption rule refer to. */
int comm_process_rank(void);
void comm_set_process_rank(int rank);

/* The mpi backend's check_peers (mpi.c), also the shm backend's: asks
 * world ranks 0..n-1 over the watchdog's side channel, ctx unused. */
ryz_status comm_mpi_check_peers(void *ctx, int n, double grace_s);

/* Sleeps s seconds, resuming after signals. */
void comm_sleep(double s);

/* Fault injection (fault.c, TEST ONLY). Before the call: counts it and, when
 * it is the one RYZ_FAULT names on this rank, kills, hangs, sleeps or
 * shrinks *count by one (desync); a corrupt fault is remembered for
 * comm_fault_after. `call` names the collective in the notice printed on
 * stderr when a fault fires. */
void comm_fault_before(const comm_call *call, uint64_t *count);
/* After a successful call: applies a pending corrupt fault, or the
 * RYZ_TEST_CORRUPT hook on all_reduce, to the middle element of the
 * result (`bytes` long; floats except for broadcast). */
void comm_fault_after(int op, void *result, size_t bytes);

#endif
