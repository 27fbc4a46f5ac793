#!/usr/bin/env bash
# A longer fuzzing campaign for one harness, e.g. overnight:
#
#   fuzz/run.sh TARGET HOURS        e.g. fuzz/run.sh imap_session 8
#
# Builds the clang libFuzzer + ASan + UBSan build in build-fuzz/ if it is missing (the
# configuration fuzz/run-ci.sh uses), then runs fuzz_TARGET with one job per worker
# (FUZZ_WORKERS, default: half the cores, at least 1) for HOURS (fractions allowed),
# each job under `nice -n FUZZ_NICE` (default 10) so interactive work keeps priority.
# The working corpus build-fuzz/campaign/TARGET/ persists between campaigns. At the
# end the new inputs that add coverage are merged into fuzz/corpus/TARGET/ with
# -merge=1 (only the ones that add features; review and commit them), and it prints
# per job the last exec/s, cov and ft libFuzzer reported, plus the CPU time used.
# A crash stops that job; its reproducer is in fuzz/artifacts/TARGET-crash-*.
# Memory: -rss_limit_mb=FUZZ_RSS_MB (default 512) and -malloc_limit_mb=FUZZ_MALLOC_MB
# (default 256) per job. Exit: 0 clean, 1 if any job found a crash/leak/timeout/OOM.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 2 ]; then
  echo "usage: $0 TARGET HOURS   (targets: $(cd fuzz && ls fuzz_*.c | sed 's/fuzz_//; s/\.c$//' | tr '\n' ' '))" >&2
  exit 2
fi
t=$1
secs=$(awk -v h="$2" 'BEGIN { s = int(h * 3600); if (s < 1) exit 1; print s }') || {
  echo "HOURS must be a positive number" >&2; exit 2; }
[ -f "fuzz/fuzz_$t.c" ] || { echo "no harness fuzz/fuzz_$t.c" >&2; exit 2; }
cores=$(nproc 2>/dev/null || echo 1)
workers=${FUZZ_WORKERS:-$(( cores / 2 > 0 ? cores / 2 : 1 ))}
nice_n=${FUZZ_NICE:-10}

if [ ! -d build-fuzz ]; then
  CC=clang meson setup build-fuzz -Dfuzz=true -Dfuzzing_engine=libfuzzer \
    -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized
fi
nice -n "$nice_n" meson compile -C build-fuzz "fuzz/fuzz_$t"
root=$(pwd)
exe=$root/build-fuzz/fuzz/fuzz_$t
work=$root/build-fuzz/campaign/$t
logs=$root/build-fuzz/campaign/$t-logs
mkdir -p "$work" "$logs" fuzz/artifacts
rm -f "$logs"/fuzz-*.log
dict=()
[ -f "fuzz/$t.dict" ] && dict=(-dict="$root/fuzz/$t.dict")
echo "== fuzz_$t: $workers job(s) x ${secs}s, nice $nice_n, corpus ${work#$root/} (+ fuzz/corpus/$t)"
status=0
TIMEFORMAT='cpu: %U s user + %S s sys (wall %R s)'
# -jobs runs each job as its own process with its own log in the current directory.
{ time ( cd "$logs" && UBSAN_OPTIONS=halt_on_error=1 nice -n "$nice_n" "$exe" \
    "${dict[@]}" -jobs="$workers" -workers="$workers" \
    -max_total_time="$secs" -rss_limit_mb="${FUZZ_RSS_MB:-512}" \
    -malloc_limit_mb="${FUZZ_MALLOC_MB:-256}" -timeout=20 -print_final_stats=1 \
    -artifact_prefix="$root/fuzz/artifacts/$t-" "$work" "$root/fuzz/corpus/$t" \
    > /dev/null 2>&1 ) || status=1; } 2> "$logs/time.txt"

echo "== merging new coverage into fuzz/corpus/$t (-merge=1)"
before=$(ls "fuzz/corpus/$t" | wc -l)
"$exe" -merge=1 -rss_limit_mb=2048 -timeout=60 "fuzz/corpus/$t" "$work" > "$logs/merge.log" 2>&1 ||
  { echo "merge failed, see $logs/merge.log"; status=1; }
after=$(ls "fuzz/corpus/$t" | wc -l)
echo "   fuzz/corpus/$t: $before -> $after files (new ones to review and commit)"

echo "== fuzz_$t results"
for l in "$logs"/fuzz-*.log; do
  [ -f "$l" ] || continue
  last=$(grep -aE '^#[0-9]+' "$l" | tail -n 1 || true)
  echo "$(basename "$l"): ${last:-no progress line}"
  grep -aE '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$l" |
    tr '\n' ' '; echo
  if grep -aqE '^==[0-9]+==ERROR|^SUMMARY: |deadly signal|Test unit written' "$l"; then
    echo "  FAILURE in $l:"; grep -aE 'ERROR|SUMMARY|Test unit written' "$l" | head -n 5
    status=1
  fi
done
cat "$logs/time.txt"
exit $status
