// Owns where things live: the repository root, the tool cache that scripts/build-tools.sh fills
// (the same rule as the script: $ENCLAVE_CACHE, else $XDG_CACHE_HOME/enclave, else
// ~/.cache/enclave) and the temp root.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root directory (this file is test/support/paths.ts). */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function cacheDir(): string {
  if (process.env.ENCLAVE_CACHE) return process.env.ENCLAVE_CACHE;
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'enclave');
}

/** Directory holding etcd, kube-apiserver, kube-controller-manager, kubectl, helm, kube-linter. */
export function binDir(): string {
  return join(cacheDir(), 'bin');
}

/** Absolute path of a built tool; a clear error when the build step has not run. */
export function tool(name: string, dir = binDir()): string {
  const path = join(dir, name);
  if (!existsSync(path)) {
    throw new Error(`${name} not found in ${dir}: run \`npm run setup\` (scripts/build-tools.sh) to build it`);
  }
  return path;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes run dirs left behind by runs that were SIGKILLed (their services died with them through
 * the parent-death signal, but nobody could delete the files). Only dirs whose owner pid is gone.
 */
async function sweepStaleRunDirs(prefix: string): Promise<void> {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(prefix)) continue;
    const dir = join(tmpdir(), name);
    let owner: number;
    try {
      owner = Number(readFileSync(join(dir, 'owner.pid'), 'utf8'));
    } catch {
      continue; // not ours, or still being created
    }
    if (Number.isInteger(owner) && owner > 0 && !alive(owner)) await rm(dir, { recursive: true, force: true });
  }
}

/** A fresh private directory for one run of the world (services, certs, logs). */
export async function makeRunDir(prefix = 'enclave-world-'): Promise<string> {
  await sweepStaleRunDirs(prefix);
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await writeFile(join(dir, 'owner.pid'), String(process.pid));
  return dir;
}
