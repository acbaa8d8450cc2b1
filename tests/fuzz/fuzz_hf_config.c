/* libFuzzer harness: Hugging Face config.json (fields, ranges, refused features). */
#include "harness.h"

RYZ_FUZZ_TARGET("hf_config")
