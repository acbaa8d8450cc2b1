/* libFuzzer harness: llama2.c tokenizer.bin, then an encode and decodes. */
#include "harness.h"

RYZ_FUZZ_TARGET("tokenizer")
