#!/usr/bin/env bash
# Installs what ryz needs to build, run and test, and nothing that is already
# there. Idempotent: a second run on a ready machine does no network work.
# Debian/Ubuntu only (apt-get). Runs `apt-get update` at most once.
set -euo pipefail

PKGS=(libopenmpi-dev openmpi-bin libhdf5-dev hdf5-tools gnuplot-nox check
      libopenblas-dev pkg-config libsubunit-dev libxml2-utils)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all dependencies present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
