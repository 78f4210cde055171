// `npm run fuzz [-- --execs N] [-- --seed S]` (node --expose-gc bench/fuzz/run.ts): a long run of
// the broker fuzz harness (test/unit/broker/fuzz-harness.ts; the unit suite runs 2,000 inputs of
// it). The corpus in bench/fuzz/corpus/ is replayed first. Prints executions, rate, what the inputs
// reached (messages in, sessions, retained) and the process's RSS and heap every 100,000
// executions; a failing input is added to the corpus as failure-seed-<S>.json (commit it with the
// fix: every later run and the unit suite replay it) and the run exits 1. Flat memory across the
// run is part of the check.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { corpusDir, fuzzInputArb, readCorpus, startFuzzBroker, toCorpusEntry } from '../../test/unit/broker/fuzz-harness.ts';

const args = process.argv.slice(2);
const arg = (name: string, dflt: number): number => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt);
const total = arg('--execs', 1_000_000);
const seed = arg('--seed', Date.now() % 2_147_483_647);
const batch = 100_000;
const MiB = 1024 * 1024;

const fb = await startFuzzBroker();
const corpus = readCorpus();
for (const { file, input } of corpus) {
  const problems = await fb.run(input);
  if (problems.length > 0) {
    console.log(`FAILED on corpus/${file}:\n${problems.join('\n')}`);
    await fb.stop();
    process.exit(1);
  }
}
console.log(`fuzz: corpus of ${corpus.length} inputs replayed`);
const started = performance.now();
let done = 0;
console.log(`fuzz: ${total} executions, seed ${seed}`);
for (let round = 0; done < total; round++) {
  const n = Math.min(batch, total - done);
  const result = await fc.check(fc.asyncProperty(fuzzInputArb, async (input) => {
    const problems = await fb.run(input);
    if (problems.length > 0) throw new Error(problems.join('\n'));
  }), { numRuns: n, seed: seed + round, endOnFailure: true });
  if (result.failed) {
    const file = join(corpusDir, `failure-seed-${seed + round}.json`);
    const input = result.counterexample?.[0];
    if (input !== undefined) writeFileSync(file, `${JSON.stringify(toCorpusEntry(input, `failed: ${String(result.errorInstance).slice(0, 500)}`), null, 2)}\n`);
    console.log(`FAILED after ${done + result.numRuns} executions: ${String(result.errorInstance)}\ninput written to ${file}`);
    await fb.stop();
    process.exit(1);
  }
  done += n;
  globalThis.gc?.();
  const m = process.memoryUsage();
  const secs = (performance.now() - started) / 1000;
  const metrics = fb.broker.metrics;
  console.log(`${done} executions  ${Math.round(done / secs)}/s  messages in ${metrics.messagesIn}  sessions ${fb.broker.sessions.size}  retained ${fb.broker.retained.size}  rss ${(m.rss / MiB).toFixed(0)} MiB  heap ${(m.heapUsed / MiB).toFixed(1)} MiB`);
}
await fb.stop();
console.log(`fuzz: ${done} executions, no failure, ${((performance.now() - started) / 1000).toFixed(0)} s`);
