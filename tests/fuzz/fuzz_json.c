/* libFuzzer harness: the JSON parser (config.json, index files, safetensors headers). */
#include "harness.h"

RYZ_FUZZ_TARGET("json")
