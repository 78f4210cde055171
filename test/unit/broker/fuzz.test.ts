// A short fuzz run over the frame parser, the v5 wire rules and the packet handlers of a live
// in-process broker (fuzz-harness.ts), after replaying the corpus (bench/fuzz/corpus/); `npm run
// fuzz` runs it for long.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fuzzInputArb, readCorpus, startFuzzBroker } from './fuzz-harness.ts';
import type { FuzzBroker } from './fuzz-harness.ts';

let fb: FuzzBroker;
beforeAll(async () => {
  fb = await startFuzzBroker();
});
afterAll(async () => {
  await fb.stop();
});

describe('fuzzing the broker with generated and mutated client sessions', () => {
  it.each(readCorpus().map(({ file, input }) => [file, input] as const))('corpus %s', async (_file, input) => {
    expect(await fb.run(input)).toEqual([]);
  });

  it('no handler throws, every answer is a well-formed packet, no connection outlives its socket', async () => {
    await fc.assert(fc.asyncProperty(fuzzInputArb, async (input) => {
      const problems = await fb.run(input);
      if (problems.length > 0) throw new Error(problems.join('\n'));
    }), { numRuns: 2000 });
  }, 60_000);
});
