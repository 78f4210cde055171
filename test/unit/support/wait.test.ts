// The shared waits (test/support/wait.ts): what a failing wait says is what a person reads first
// when a test times out, so the message is part of the contract.
import { describe, expect, it } from 'vitest';
import { eventually, sleep, within } from '../../support/wait.ts';

describe('eventually', () => {
  it('returns the first value that is neither undefined nor false', async () => {
    let n = 0;
    const v = await eventually('n reaches 3', async () => (++n >= 3 ? { n } : undefined), 2_000, 1);
    expect(v).toEqual({ n: 3 });
  });

  it('retries a check that throws, and names what it waited for and the last error on timeout', async () => {
    let n = 0;
    const err = await eventually('the thing', async () => {
      n++;
      throw new Error(`not yet (${n})`);
    }, 100, 10).catch((e: unknown) => e as Error);
    expect(n).toBeGreaterThan(1);
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(/^timed out after 100 ms waiting for: the thing \(last error: not yet \(\d+\)\)$/);
    expect((err.cause as Error).message).toMatch(/^not yet/);
  });

  it('says when the last error is older than the last "not yet"', async () => {
    let n = 0;
    const err = await eventually<never>('the other thing', async () => {
      if (++n === 1) throw new Error('flake');
      return false;
    }, 100, 10).catch((e: unknown) => e as Error);
    expect(err.message).toBe('timed out after 100 ms waiting for: the other thing (last error, before the check last answered "not yet": flake)');
  });

  it('without any error the message names only what it waited for', async () => {
    const err = await eventually<never>('never', async () => false, 50, 10).catch((e: unknown) => e as Error);
    expect(err.message).toBe('timed out after 50 ms waiting for: never');
  });
});

describe('within', () => {
  it('passes a promise that settles in time through', async () => {
    expect(await within('quick', sleep(5).then(() => 42), 1_000)).toBe(42);
  });

  it('rejects naming what it waited for when the promise does not settle', async () => {
    await expect(within('a SUBACK', new Promise(() => undefined), 20)).rejects.toThrow('timed out after 20 ms waiting for: a SUBACK');
  });
});
