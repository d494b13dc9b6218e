#!/usr/bin/env bash
# Runs the whole stack on this machine: installs Postfix if missing, installs and builds Freight, then
# `freight up` with ./freight.conf (or the example config when there is none).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-postfix.sh
bash scripts/deps.sh
npm run build --silent
config="${FREIGHT_CONFIG:-}"
if [ -z "$config" ]; then
  if [ -f freight.conf ]; then config=freight.conf; else config=freight.conf.example; fi
fi
exec node bin/freight.js up --config "$config"
