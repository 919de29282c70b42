#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 600) and
# prints, per target, how many inputs it tried and whether one crashed it.
# A crash leaves its input in fuzz/artifacts/TARGET/; turn it into a
# regression test (bench/README.md, "What the fuzzers found", says where
# each one went). Needs the nightly toolchain and cargo-fuzz (installed
# here when missing). Exits non-zero if any target found a crash.
set -euo pipefail
seconds="${1:-600}"
cd "$(dirname "$0")/../fuzz"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
cargo +nightly fuzz build -O
status=0
for target in $(cargo +nightly fuzz list); do
  log="$(mktemp)"
  if cargo +nightly fuzz run -O "$target" -- -max_total_time="$seconds" >"$log" 2>&1; then
    runs="$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' || echo '?')"
    echo "$target: $runs executions in ${seconds} s, no crash"
  else
    echo "$target: CRASH — input saved in fuzz/artifacts/$target/"
    grep -E -A20 'panicked|ERROR: ' "$log" | head -40
    status=1
  fi
  rm -f "$log"
done
exit "$status"
