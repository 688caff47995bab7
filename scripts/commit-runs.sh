#!/bin/sh
# Copy a comparison's ended runs (finished or stopped; no checkpoints) and its compare.toml from
# runs/<dir> into docs/results/<dir>, then rebuild the report there.
#   scripts/commit-runs.sh runs/X docs/results/X [--no-toml]
# NOWT names the binary (default target/release/nowt). A run that is still training (no
# summary.json, no failed.txt) is left out. --no-toml keeps the destination's compare.toml (a
# second lane's runs copied in beside the first lane's).
set -eu
src=$1 dst=$2 keep_toml=${3:-}
NOWT=${NOWT:-target/release/nowt}
mkdir -p "$dst"
[ "$keep_toml" = --no-toml ] || cp "$src/compare.toml" "$dst/"
for run in "$src"/*/; do
  [ -f "$run/summary.json" ] || [ -f "$run/failed.txt" ] || continue
  name=$(basename "$run")
  mkdir -p "$dst/$name"
  for f in config.toml metrics.jsonl pretrain.jsonl summary.json summary.txt provenance.json failed.txt; do
    if [ -f "$run/$f" ]; then cp "$run/$f" "$dst/$name/"; fi
  done
done
"$NOWT" report "$dst"
