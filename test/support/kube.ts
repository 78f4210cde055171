// Owns the ways a test talks to the control plane: client-node KubeConfig objects (admin or any
// user/groups, for RBAC tests acting as tenants) and the built kubectl and helm binaries. Works from the plain
// ControlPlaneInfo, so it runs in any vitest worker.
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import type { ControlPlaneInfo } from './control-plane.ts';
import { createLeaf, renderKubeconfig } from './pki.ts';
import { tool } from './paths.ts';

/** A client-node KubeConfig loaded from a kubeconfig file (admin's by default). */
export function kubeConfigFromFile(path: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

let userSeq = 0;

/**
 * Issues a client certificate for `user` with `groups` (signed by the control plane's client CA)
 * and writes a kubeconfig for it. The apiserver authenticates it as that user; what it may do is
 * up to RBAC, so a test can act as a tenant. Returns the kubeconfig path and a KubeConfig.
 */
export async function userKubeConfig(
  cp: Pick<ControlPlaneInfo, 'dir' | 'server' | 'caCertPath' | 'clientCaCertPath' | 'clientCaKeyPath'>,
  user: string,
  groups: string[] = [],
): Promise<{ kubeconfigPath: string; kubeConfig: KubeConfig }> {
  const dir = join(cp.dir, 'users');
  await mkdir(dir, { recursive: true });
  const name = `${process.pid}-${++userSeq}-${user.replace(/[^A-Za-z0-9_.-]/g, '_')}`;
  const pair = await createLeaf(dir, name, { cert: cp.clientCaCertPath, key: cp.clientCaKeyPath }, {
    commonName: user,
    organizations: groups,
    usage: 'clientAuth',
  });
  const kubeconfigPath = join(dir, `${name}.kubeconfig`);
  await writeFile(kubeconfigPath, await renderKubeconfig(cp.server, cp.caCertPath, pair, user), { mode: 0o600 });
  return { kubeconfigPath, kubeConfig: kubeConfigFromFile(kubeconfigPath) };
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface KubectlOptions {
  /** Written to kubectl's stdin (e.g. a manifest for `apply -f -`). */
  input?: string;
  /** Defaults to the admin kubeconfig of `cp`. */
  kubeconfig?: string;
  /** When false (default), a non-zero exit throws with kubectl's stderr. */
  allowFailure?: boolean;
  /** Kill the command after this long (default 120 s); `helm --wait` on the node may need more. */
  timeoutMs?: number;
}

async function runTool(bin: string, args: string[], opts: KubectlOptions, env?: NodeJS.ProcessEnv): Promise<KubectlResult> {
  const name = bin.split('/').pop() ?? bin;
  const result = await new Promise<KubectlResult>((resolve, reject) => {
    const child = execFile(bin, args, { maxBuffer: 64 * 1024 * 1024, timeout: opts.timeoutMs ?? 120_000, env: env ?? process.env }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        reject(new Error(`${name} ${args.join(' ')}: ${err.message}`, { cause: err }));
        return;
      }
      resolve({ code: typeof err?.code === 'number' ? err.code : 0, stdout, stderr });
    });
    child.stdin?.on('error', () => {}); // a command that exits without reading its input
    child.stdin?.end(opts.input ?? '');
  });
  if (result.code !== 0 && !opts.allowFailure) {
    throw new Error(`${name} ${args.join(' ')} exited ${result.code}: ${result.stderr.trim()}`);
  }
  return result;
}

/** Runs the built kubectl against the test control plane. */
export function kubectl(
  cp: Pick<ControlPlaneInfo, 'kubeconfigPath' | 'binDir'>,
  args: string[],
  opts: KubectlOptions = {},
): Promise<KubectlResult> {
  return runTool(tool('kubectl', cp.binDir), [`--kubeconfig=${opts.kubeconfig ?? cp.kubeconfigPath}`, ...args], opts);
}

/**
 * Runs the built helm (v3) against the test control plane. Helm's cache/config/data dirs live in the
 * control plane's private dir, so tests never read or write the user's ~/.config/helm.
 */
export function helm(
  cp: Pick<ControlPlaneInfo, 'kubeconfigPath' | 'binDir' | 'dir'>,
  args: string[],
  opts: KubectlOptions = {},
): Promise<KubectlResult> {
  const home = join(cp.dir, 'helm');
  const env = {
    ...process.env,
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_DATA_HOME: join(home, 'data'),
  };
  return runTool(tool('helm', cp.binDir), [`--kubeconfig=${opts.kubeconfig ?? cp.kubeconfigPath}`, ...args], opts, env);
}
