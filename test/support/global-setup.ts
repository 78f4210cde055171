// vitest globalSetup for the integration and e2e projects: starts the world ONCE per vitest run
// (control plane, PostgreSQL, MariaDB, Redis, in parallel, each in a private temp dir), provides its
// connection info to test files as `inject('world')` (typed in world.ts), and tears it all down
// afterwards. Both projects list this file; they share one world (reference-counted on globalThis,
// which is the same main process for all projects), so tests must use their own namespaces/tables.
// Set ENCLAVE_KEEP_WORLD=1 to keep the temp dir (logs, data) after the run; ENCLAVE_WORLD_NODE=0
// starts no node (see StartWorldOptions.noNode).
import { rm } from 'node:fs/promises';
import type { TestProject } from 'vitest/node';
import { startWorld, type RunningWorld } from './start-world.ts';

interface Shared {
  world: Promise<RunningWorld>;
  users: number;
}

const key = Symbol.for('enclave.test.world');
const holder = globalThis as typeof globalThis & { [key]?: Shared };

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let shared = holder[key];
  if (shared === undefined) {
    shared = { world: startWorld({ log: (line) => console.log(`[world] ${line}`), noNode: process.env.ENCLAVE_WORLD_NODE === '0' }), users: 0 };
    holder[key] = shared;
  }
  shared.users++;
  const world = await shared.world;
  project.provide('world', world.info);
  return async () => {
    const current = holder[key];
    if (current === undefined || --current.users > 0) return;
    delete holder[key];
    await world.stop();
    if (!process.env.ENCLAVE_KEEP_WORLD) await rm(world.info.runDir, { recursive: true, force: true });
  };
}
