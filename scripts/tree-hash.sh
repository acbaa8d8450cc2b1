#!/usr/bin/env bash
# Prints a hash of the sources a build is made from (src/, include/,
# kernels/ and the Makefile), so gpu-check can tell whether an archive of
# scripts/gpu-bundle.sh was built from the tree beside it, with or without
# git there.
set -euo pipefail
cd "$(dirname "$0")/.."
find src include kernels Makefile -type f \( -name '*.[ch]' -o -name '*.cu' -o -name '*.cuh' -o -name Makefile \) \
  -print0 | LC_ALL=C sort -z | xargs -0 cat | sha256sum | cut -c1-16
