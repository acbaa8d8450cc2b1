/* TEST ONLY: fault injection (RYZ_FAULT, ryz_comm_fault_set) and the
 * RYZ_TEST_CORRUPT hook, kept apart from the wrapper: comm.c calls
 * comm_fault_before and comm_fault_after around every collective and knows
 * nothing else of this file. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

typedef enum {
    FAULT_NONE = 0,
    FAULT_KILL,
    FAULT_HANG,
    FAULT_CORRUPT,
    FAULT_SLOW,
    FAULT_DESYNC,
    FAULT_NKINDS
} fault_kind;

static const char *const kind_names[FAULT_NKINDS] = {"none",    "kill", "hang",
                                                     "corrupt", "slow", "desync"};

typedef struct {
    fault_kind kind;
    long rank, step;
    int op;          /* -1: every collective counts */
    long seen;       /* collectives counted since the fault was set */
    int corrupt_due; /* the current call's result is to be corrupted */
} fault_spec;

static fault_spec fault = {.op = -1};
static int test_corrupt = -1; /* -1 until RYZ_TEST_CORRUPT has been read */

#define FAULT_USAGE "expected KIND:rank=R:step=S[:op=NAME], KIND kill|hang|corrupt|slow|desync"

/* ---- parsing ---------------------------------------------------------- */

/* An integer >= lo for field `key`. */
static ryz_status parse_long(const char *key, const char *v, long lo, long *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo)
        return ryz_error(RYZ_EINVAL, "%s=%s is not an integer >= %ld", key, v, lo);
    *out = x;
    return RYZ_OK;
}

/* The op of a name as ryz_comm_op_name spells it, or comm_split; -1 none. */
static int op_from_name(const char *name) {
    for (int op = 0; op < RYZ_OP_COUNT; op++)
        if (!strcmp(name, ryz_comm_op_name((ryz_comm_op)op)))
            return op;
    return strcmp(name, "comm_split") ? -1 : COMM_OP_SPLIT;
}

/* One "key=value" field into f; *have gets bit 1 for rank, 2 for step. */
static ryz_status parse_field(char *field, fault_spec *f, int *have) {
    char *eq = strchr(field, '=');
    if (!eq)
        return ryz_error(RYZ_EINVAL, "'%s' is not key=value", field);
    *eq = '\0';
    const char *key = field, *v = eq + 1;
    if (!strcmp(key, "rank")) {
        *have |= 1;
        return parse_long(key, v, 0, &f->rank);
    }
    if (!strcmp(key, "step")) {
        *have |= 2;
        return parse_long(key, v, 1, &f->step);
    }
    if (strcmp(key, "op"))
        return ryz_error(RYZ_EINVAL, "unknown field '%s' (rank, step, op)", key);
    f->op = op_from_name(v);
    if (f->op < 0)
        return ryz_error(RYZ_EINVAL,
                         "op=%s is not all_reduce, all_gather, reduce_scatter, "
                         "broadcast, barrier or comm_split",
                         v);
    return RYZ_OK;
}

ryz_status ryz_comm_fault_set(const char *spec) {
    fault_spec f = {.op = -1};
    if (!spec || !*spec) {
        fault = f;
        return RYZ_OK;
    }
    char buf[256], *save = NULL;
    if (strlen(spec) >= sizeof buf)
        return ryz_error(RYZ_EINVAL, "fault spec of %zu characters is too long", strlen(spec));
    strcpy(buf, spec);
    const char *kind = strtok_r(buf, ":", &save);
    for (int k = FAULT_KILL; kind && k < FAULT_NKINDS; k++)
        if (!strcmp(kind, kind_names[k]))
            f.kind = (fault_kind)k;
    if (f.kind == FAULT_NONE)
        return ryz_error(RYZ_EINVAL, "fault '%s': unknown kind '%s' (" FAULT_USAGE ")", spec,
                         kind ? kind : "");
    int have = 0;
    for (char *field; (field = strtok_r(NULL, ":", &save));) {
        ryz_status st = parse_field(field, &f, &have);
        if (st != RYZ_OK)
            return ryz_error_wrap(st, "fault '%s'", spec);
    }
    if (have != 3)
        return ryz_error(RYZ_EINVAL, "fault '%s': missing %s (" FAULT_USAGE ")", spec,
                         have & 1   ? "step=S"
                         : have & 2 ? "rank=R"
                                    : "rank=R and step=S");
    fault = f;
    return RYZ_OK;
}

/* ---- firing ----------------------------------------------------------- */

void comm_fault_before(const comm_call *call, uint64_t *count) {
    fault.corrupt_due = 0;
    if (fault.kind == FAULT_NONE || fault.rank != comm_process_rank())
        return;
    if (fault.op >= 0 && fault.op != call->op)
        return;
    if (++fault.seen != fault.step)
        return;
    char what[160];
    comm_describe(call, what, sizeof what);
    fprintf(stderr, "ryz: RYZ_FAULT on rank %d: %s at %s\n", comm_process_rank(),
            kind_names[fault.kind], what);
    fflush(stderr);
    switch (fault.kind) {
    case FAULT_KILL:
        raise(SIGKILL);
        break;
    case FAULT_HANG:
        for (;;)
            pause(); /* until killed: signals only interrupt pause */
    case FAULT_SLOW:
        comm_sleep(1.0);
        break;
    case FAULT_DESYNC:
        if (*count > 0)
            (*count)--;
        break;
    case FAULT_CORRUPT:
        fault.corrupt_due = 1;
        break;
    default:
        break;
    }
}

void ryz_comm_test_corrupt(int on) {
    test_corrupt = on;
}

void comm_fault_after(int op, void *result, size_t bytes) {
    int due = fault.corrupt_due;
    fault.corrupt_due = 0;
    if (op == RYZ_OP_ALL_REDUCE) {
        if (test_corrupt < 0) {
            const char *e = getenv("RYZ_TEST_CORRUPT");
            test_corrupt = e && !strcmp(e, "1");
        }
        due |= test_corrupt;
    }
    if (!due || bytes == 0)
        return;
    if (op == RYZ_OP_BROADCAST)
        ((unsigned char *)result)[bytes / 2] += 1;
    else
        ((float *)result)[bytes / sizeof(float) / 2] += 1.0f;
}
