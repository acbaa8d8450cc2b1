/* libFuzzer harness: the config.json of a ryz shard directory (tp, files, checksums). */
#include "harness.h"

RYZ_FUZZ_TARGET("shard_config")
