#!/usr/bin/env bash
# The test command: builds sealmail (gcc, -Werror) and runs every test suite:
# unit, integration (real LMDB, real TLS, real sockets, real clients) and the fuzz
# corpus replay. Usage: ./run-tests.sh [meson test args...]
set -euo pipefail
cd "$(dirname "$0")"
bash .ci/install-deps.sh
if [ ! -d build ]; then
  meson setup build -Dfuzz=true
fi
meson compile -C build
meson test -C build --print-errorlogs --num-processes 2 "$@"
