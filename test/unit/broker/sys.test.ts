// $SYS/broker/version reports the version in package.json (sys.ts finds it above the broker code,
// in the repository as in the image), not a string kept by hand.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../support/paths.ts';
import { startTestBroker } from './helpers.ts';

describe('$SYS', () => {
  it('$SYS/broker/version is retained with the version of package.json', async () => {
    const { version } = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    const own = await startTestBroker();
    try {
      own.broker.publishSysNow();
      const [entry] = own.broker.retained.matchEntries('$SYS/broker/version', Date.now());
      expect(String(entry?.message.payload)).toBe(`enclave-broker ${version}`);
    } finally {
      await own.stop();
    }
  });
});
