#!/usr/bin/env bash
# Builds every fuzz harness with clang + libFuzzer + ASan + UBSan and runs each for
# FUZZ_SECONDS (default 60) on a copy of its seed corpus. Fails on any crash, leak,
# timeout or out-of-memory. New inputs stay in build-fuzz/corpus-work/ (not committed;
# a crash reproducer is copied to fuzz/artifacts/ for a human to add to the corpus).
# Budget: 10 harnesses x 60 s = 10 min of wall time whatever the machine's load (the
# time is libFuzzer's -max_total_time), in a CI run that took 24 min with 30 s each.
# Small-memory pass: every harness runs with -rss_limit_mb=512 and
# -malloc_limit_mb=64: an input of a few KiB that makes the code ask for 64 MiB at
# once (a length from the wire used before it is checked) or grow past 512 MiB of
# RSS (a quarter of libFuzzer's default) fails the stage. The crafted inputs
# (fuzz/corpus/*/deep-*, huge-*, crafted-*) pass at 256/32 one by one; a 60 s run of
# imap_msg reached 261 MiB of RSS with 40 MiB of live heap, so 512 is the CI bound.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
if [ ! -d build-fuzz ]; then
  CC=clang meson setup build-fuzz -Dfuzz=true -Dfuzzing_engine=libfuzzer \
    -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized
fi
meson compile -C build-fuzz
mkdir -p fuzz/artifacts build-fuzz/corpus-work
status=0
for exe in build-fuzz/fuzz/fuzz_*; do
  [ -f "$exe" ] && [ -x "$exe" ] || continue
  t=$(basename "$exe"); t=${t#fuzz_}
  work=build-fuzz/corpus-work/$t
  mkdir -p "$work"
  dict=()
  # the session harness does a vault copy, an unlock and a whole session per input
  tmo=10; [ "$t" = imap_session ] && tmo=30
  [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
  echo "-- fuzz_$t for ${secs}s"
  # Memory: no single allocation over 64 MiB, and the whole process under 512 MiB.
  # The RSS figure includes libFuzzer's in-memory corpus, ASan's shadow and its
  # quarantine of freed blocks (kept at 64 MiB here); at 256 MiB imap_msg ran out
  # after ~600 inputs of deep MIME with 40 MiB live heap - the limit, not the parser.
  if ! UBSAN_OPTIONS=halt_on_error=1 ASAN_OPTIONS=quarantine_size_mb=64 \
      "$exe" "${dict[@]}" -max_total_time="$secs" \
      -rss_limit_mb=512 -malloc_limit_mb=64 -timeout=$tmo -print_final_stats=1 \
      -artifact_prefix=fuzz/artifacts/"$t"- "$work" "fuzz/corpus/$t" \
      > "build-fuzz/fuzz-$t.log" 2>&1; then
    echo "fuzz_$t FAILED:"; tail -n 60 "build-fuzz/fuzz-$t.log"; status=1
  else
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' \
      "build-fuzz/fuzz-$t.log" | tr '\n' ' '; echo
  fi
done
exit $status
