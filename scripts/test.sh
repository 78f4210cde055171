#!/usr/bin/env bash
# The body of `npm test` after setup: typecheck, lint, then every vitest project (unit, integration,
# e2e), each phase timed. Runs under npm, so node_modules/.bin (Node 24, tsc, eslint, vitest) is on PATH.
# Ends with the plain line "tests: N passed, N failed" (from vitest's JSON report in .cache/).
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

report=.cache/vitest-report.json
mkdir -p .cache && rm -f "$report"
t0=$SECONDS
echo "test: vitest ..."
if vitest run --reporter=default --reporter=json --outputFile.json="$report"; then rc=0; else rc=$?; fi
summary+=("vitest $((SECONDS - t0))s")
echo "test: phases: ${summary[*]}"
if [ -f "$report" ]; then
  node -e '
    const r = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
    const skipped = r.numPendingTests + r.numTodoTests;
    console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
  ' "$report"
else
  echo "tests: 0 passed, 1 failed"   # vitest died before writing its report
fi
exit $rc
