#!/usr/bin/env bash
# Installs the Node dependencies exactly as locked (npm ci), skipping it when node_modules was already
# installed from this very package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."
want=$(sha256sum package-lock.json | cut -d' ' -f1)
have=$(cat node_modules/.freight-lock-sha256 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  npm ci --no-audit --no-fund
  echo "$want" > node_modules/.freight-lock-sha256
fi
