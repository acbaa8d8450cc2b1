/* libFuzzer harness body shared by tests/fuzz/fuzz_*.c: runs one checkpoint
 * parser (src/ckpt/fuzz.c, ryz_ckpt_parse_buffer) over each input. Any
 * status is fine; a crash, sanitizer report, hang or leak is the bug. */
#ifndef RYZ_FUZZ_HARNESS_H
#define RYZ_FUZZ_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "ryz/ckpt.h"

#define RYZ_FUZZ_TARGET(parser)                                                                    \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);                                  \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {                                 \
        (void)ryz_ckpt_parse_buffer(parser, data, size);                                           \
        return 0;                                                                                  \
    }

#endif
