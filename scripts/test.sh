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

# Two vitest runs: the shared world's projects, then `npm start`'s own (it starts a node of its
# own, and one node per machine means the world's must be gone first). One report each; the
# summary line adds them up.
mkdir -p .cache && rm -f .cache/vitest-report*.json
rc=0
t0=$SECONDS
echo "test: vitest (unit, integration, e2e) ..."
vitest run --project unit --project integration --project e2e --reporter=default --reporter=json --outputFile.json=.cache/vitest-report-world.json || rc=$?
summary+=("vitest $((SECONDS - t0))s")
t0=$SECONDS
echo "test: vitest (start) ..."
vitest run --project start --reporter=default --reporter=json --outputFile.json=.cache/vitest-report-start.json || rc=$?
summary+=("start $((SECONDS - t0))s")
echo "test: phases: ${summary[*]}"
# The combined report .ci/run reads, and the summary line.
node -e '
  const fs = require("node:fs");
  const files = [".cache/vitest-report-world.json", ".cache/vitest-report-start.json"];
  const sum = { numPassedTests: 0, numFailedTests: 0, numPendingTests: 0, numTodoTests: 0 };
  for (const f of files) {
    if (!fs.existsSync(f)) { sum.numFailedTests++; continue; }   // vitest died before writing its report
    const r = JSON.parse(fs.readFileSync(f, "utf8"));
    for (const k of Object.keys(sum)) sum[k] += r[k];
  }
  fs.writeFileSync(".cache/vitest-report.json", JSON.stringify(sum));
  const skipped = sum.numPendingTests + sum.numTodoTests;
  console.log(`tests: ${sum.numPassedTests} passed, ${sum.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
'
exit $rc
