// vitest globalSetup for the integration and e2e projects: starts the world ONCE per run (control
// plane, PostgreSQL, MariaDB, Redis, in parallel, each in a private temp dir), provides its
// connection info to test files as `inject('world')` (typed in world.ts), and tears it all down
// afterwards. Set ENCLAVE_KEEP_WORLD=1 to keep the temp dir (logs, data) after the run.
import { rm } from 'node:fs/promises';
import type { TestProject } from 'vitest/node';
import { startWorld } from './start-world.ts';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const world = await startWorld({ log: (line) => console.log(`[world] ${line}`) });
  project.provide('world', world.info);
  return async () => {
    await world.stop();
    if (!process.env.ENCLAVE_KEEP_WORLD) await rm(world.info.runDir, { recursive: true, force: true });
  };
}
