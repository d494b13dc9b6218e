#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls `npm test`, which runs this).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-postfix.sh
bash scripts/deps.sh
echo "== lint + format (biome)"
npx biome check .
echo "== typecheck (tsc)"
npx tsc -p tsconfig.json --noEmit
echo "== imports: layers, no cycles (dependency-cruiser)"
npm run --silent deps:check
echo "== sizes: files up to 400 lines, sidecar functions up to 80"
node --import tsx scripts/check-size.ts
# The policy daemon's 5,000-connection test holds both ends of every connection in one process;
# Debian's default soft limit (1,024 descriptors) is far below that.
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 16384 ]; then
  ulimit -n 16384 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi
echo "== tests (node:test)"
files=("$@")
[ "${#files[@]}" -gt 0 ] || mapfile -t files < <(ls test/*.test.ts)
node --import tsx --test --test-concurrency="${TEST_CONCURRENCY:-2}" --test-timeout=600000 "${files[@]}"
