#!/usr/bin/env bash
# sealmail against Dovecot, side by side (issue 8). Usage:
#
#   bench/run.sh [--install] [--build DIR] [--smoke] [--rounds N] [--only W,..] [--skip W,..]
#
#   --install   install what is missing (runs .ci/install-deps.sh, then apt-get for the
#               chart tool); without it nothing is installed: missing packages are listed
#               with the apt-get line, and the run stops if a required one is missing.
#   --build DIR meson build directory with sealmail built (default: build/, else
#               $SEALMAIL_BUILD); `meson compile` is run in it first.
#   --smoke     tiny sizes, one round, OWASP-minimum Argon2id (~30-60 s): the harness test.
#
# Needs (Debian 12): dovecot-imapd dovecot-lmtpd (the reference server), python3,
# gnuplot-nox or python3-matplotlib (the PNG chart; optional), libsodium-dev libssl-dev
# (the limits probe; already needed to build sealmail), a C compiler.
# Output: a table on stdout, bench/results/latest.json and latest.png (smoke: smoke.*).
# The full run takes up to 20 minutes; all servers listen on 127.0.0.1 only.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
BUILD="${SEALMAIL_BUILD:-$ROOT/build}"
INSTALL=0
PASS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --install) INSTALL=1 ;;
    --build) BUILD="$2"; shift ;;
    --build=*) BUILD="${1#--build=}" ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exec python3 "$HERE/bench.py" --help ;;
    *) PASS+=("$1") ;;
  esac
  shift
done

REQUIRED=(dovecot-imapd dovecot-lmtpd python3)
CHART=(gnuplot-nox python3-matplotlib)      # either one
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
for p in "${REQUIRED[@]}"; do installed "$p" || missing+=("$p"); done
have_chart=0
for p in "${CHART[@]}"; do installed "$p" && have_chart=1; done
command -v gnuplot >/dev/null && have_chart=1

if [ $INSTALL -eq 1 ]; then
  "$ROOT/.ci/install-deps.sh"
  if [ $have_chart -eq 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    echo "bench: installing gnuplot-nox (for the chart)"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gnuplot-nox
  fi
  missing=()
elif [ ${#missing[@]} -gt 0 ]; then
  echo "bench: missing Debian packages: ${missing[*]}" >&2
  # the meson smoke test skips (77) rather than fails on a machine without Dovecot
  [ -n "${BENCH_SKIP_MISSING:-}" ] && { echo "bench: skipped" >&2; exit 77; }
  echo "bench: install them with:  sudo apt-get install --no-install-recommends ${missing[*]}" >&2
  echo "bench: (or run bench/run.sh --install)" >&2
  exit 2
fi
if [ $have_chart -eq 0 ] && [ $INSTALL -eq 0 ]; then
  echo "bench: no chart tool; the PNG is skipped. For it: sudo apt-get install --no-install-recommends gnuplot-nox" >&2
fi

# sealmail built?
if [ ! -d "$BUILD" ]; then
  echo "bench: no build directory $BUILD: meson setup $BUILD && meson compile -C $BUILD (or --build DIR)" >&2
  exit 2
fi
if [ -z "${BENCH_NO_COMPILE:-}" ]; then
  meson compile -C "$BUILD" >/dev/null || { echo "bench: meson compile -C $BUILD failed" >&2; exit 2; }
fi

# the physical-limits probe (same libraries as sealmail); optional: LIMITS.md otherwise
TMP="$(mktemp -d /tmp/sm-bench.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
PROBE=""
if cc -O2 -o "$TMP/limits" "$HERE/limits.c" $(pkg-config --cflags --libs libsodium libcrypto 2>/dev/null) 2>"$TMP/cc.log"; then
  PROBE="$TMP/limits"
else
  echo "bench: limits probe not built (using shared/LIMITS.md figures): $(head -3 "$TMP/cc.log")" >&2
fi

# 10,000 connections: this process and its children need the descriptors
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

export PYTHONDONTWRITEBYTECODE=1
rc=0
python3 "$HERE/bench.py" --build "$BUILD" --probe "$PROBE" "${PASS[@]}" || rc=$?
exit $rc
