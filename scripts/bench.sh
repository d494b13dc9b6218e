#!/usr/bin/env bash
# Every benchmark under bench/, one after another (they share this machine's two cores, so never in
# parallel). `npm run bench -- tailer` runs only the benchmarks whose file name contains "tailer".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-postfix.sh
bash scripts/deps.sh
filter="${1:-}"
for f in bench/*.bench.ts; do
  [[ -z "$filter" || "$f" == *"$filter"* ]] || continue
  echo "=== $f"
  node --import tsx "$f"
done
