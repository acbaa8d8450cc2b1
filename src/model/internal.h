/* What generate.c needs of the forward pass beyond include/ryz/model.h:
 * the pass without fetching its logits, and greedy ids from the backend. */
#ifndef RYZ_MODEL_INTERNAL_H
#define RYZ_MODEL_INTERNAL_H

#include "ryz/model.h"

/* The forward pass of ryz_model_forward (last_only 0) or
 * ryz_model_forward_last (1), leaving the logits in the backend's memory.
 * With next non-NULL, next (B, host) receives each sequence's greedy id:
 * the argmax over the vocab of its last row, computed on the backend, so
 * only B ints are downloaded; or, when want_logits is 0 at TP > 1 on
 * host-visible memory with one head row per sequence, from each rank's
 * part of the logits (ryz_tp_greedy_ids), and then no logits are made
 * (ryz_model_step_logits has no rows). With last-only prefill on, a step
 * with neither next nor want_logits (a prefill chunk before the last)
 * skips the head. Waits for the backend once;
 * returns the input check's, a collective's or a kept backend error. */
ryz_status ryz_model_step(ryz_model *m, const int *tokens, int B, int T, int pos0, int last_only,
                          int *next, int want_logits);
/* The last step's logits in host memory ((B*T or B, vocab_padded), as
 * ryz_model_forward describes them): the backend's buffer itself when the
 * host can see it, else downloaded. *logits is set even on failure. */
ryz_status ryz_model_step_logits(ryz_model *m, const float **logits);

#endif
