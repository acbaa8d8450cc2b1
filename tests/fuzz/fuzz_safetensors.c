/* libFuzzer harness: safetensors headers (lengths, dtypes, shapes, offsets, overlap). */
#include "harness.h"

RYZ_FUZZ_TARGET("safetensors")
