// Owns where things live: the tool cache that scripts/build-tools.sh fills (the same rule as the
// script: $ENCLAVE_CACHE, else $XDG_CACHE_HOME/enclave, else ~/.cache/enclave) and the temp root.
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

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

/** A fresh private directory for one run of the world (services, certs, logs). */
export async function makeRunDir(prefix = 'enclave-world-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}
