#!/usr/bin/env bash
# The body of `npm test` after setup: typecheck, lint, then every vitest project (unit, integration,
# e2e), each phase timed. Runs under npm, so node_modules/.bin (Node 24, tsc, eslint, vitest) is on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
summary=()
phase() {
  local name=$1 t0=$SECONDS; shift
  echo "test: $name ..."
  "$@" || { echo "test: $name FAILED after $((SECONDS - t0))s" >&2; exit 1; }
  summary+=("$name $((SECONDS - t0))s")
  echo "test: $name done in $((SECONDS - t0))s"
}
phase typecheck tsc -p tsconfig.json --noEmit
phase lint eslint .
phase vitest vitest run
echo "test: all phases passed (${summary[*]})"
