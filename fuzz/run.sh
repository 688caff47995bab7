#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 20 s each). Needs cargo-fuzz
# (`cargo install cargo-fuzz`); RUSTC_BOOTSTRAP lets it build with the stable toolchain.
# Exits non-zero on the first crash; the crashing input is left in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-20}
export RUSTC_BOOTSTRAP=1
for target in idx checkpoint config image_archive cifar_bin; do
  mkdir -p "corpus/$target"
  log="corpus/$target.log"
  if ! cargo fuzz run --sanitizer none -O "$target" "corpus/$target" "seeds/$target" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 -max_len=16384 >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz target $target failed: see fuzz/artifacts/$target/" >&2
    exit 1
  fi
  echo "$target: $(grep -E '^Done' "$log")"
done
