/* libFuzzer harness: llama2.c checkpoints (versions 0 and 1): open, then read every tensor. */
#include "harness.h"

RYZ_FUZZ_TARGET("llama2c")
