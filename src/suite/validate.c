/* Up-front validation of a suite, so bad input fails before any launch. */
#include <string.h>

#include "ryz/model.h"
#include "ryz/suite.h"

static ryz_status validate_case(const ryz_suite_case *c) {
    ryz_model_config cfg;
    for (int i = 0; i < c->n_tp; i++) {
        ryz_weights *w = NULL;
        ryz_status st = ryz_model_source_open(c->model, c->tp[i], 0, &cfg, &w);
        ryz_weights_close(w);
        if (st == RYZ_OK) st = ryz_config_validate(&cfg, c->tp[i]);
        if (st != RYZ_OK) return ryz_error_wrap(st, "case %s", c->name);
    }
    for (int i = 0; i < c->prompt_len; i++)
        if (c->prompt[i] >= cfg.vocab)
            return ryz_error(RYZ_EINVAL, "case %s: prompt id %d outside vocab [0, %d)", c->name,
                             c->prompt[i], cfg.vocab);
    if (c->prompt_len + c->new_tokens - 1 > cfg.seq_len)
        return ryz_error(RYZ_EINVAL, "case %s: prompt %d + new_tokens %d exceed seq_len %d",
                         c->name, c->prompt_len, c->new_tokens, cfg.seq_len);
    if (strcmp(c->backend, "cpu") != 0)
        return ryz_error(RYZ_EINVAL,
                         "case %s: backend %s is not in this build (available: cpu)", c->name,
                         c->backend);
    if (strcmp(c->comm, "mpi") != 0)
        return ryz_error(RYZ_EINVAL, "case %s: comm %s is not in this build (available: mpi)",
                         c->name, c->comm);
    return RYZ_OK;
}

ryz_status ryz_suite_validate(const ryz_suite *s) {
    for (int i = 0; i < s->n_cases; i++) {
        ryz_status st = validate_case(&s->cases[i]);
        if (st != RYZ_OK) return st;
    }
    if (s->repeat > RYZ_SUITE_MAX_REPEAT)
        return ryz_error(RYZ_EINVAL, "suite %s: repeat %d above the %d timed runs kept per phase",
                         s->name, s->repeat, RYZ_SUITE_MAX_REPEAT);
    if (s->ranks && s->ranks < ryz_suite_max_tp(s))
        return ryz_error(RYZ_EINVAL, "suite %s: ranks %d smaller than its largest tp %d",
                         s->name, s->ranks, ryz_suite_max_tp(s));
    return RYZ_OK;
}
