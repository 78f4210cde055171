// Owns the typed view of "the world" a test file runs in: the connection info that
// test/support/global-setup.ts started and provided once per vitest run. Import from here in
// integration/e2e tests (see test/support/README.md):
//
//   import { world, adminKubeConfig, asUser, kubectl } from '../support/world.ts';
//   const w = world();                      // { kube, postgres, mariadb, redis, runDir }
//   const core = adminKubeConfig().makeApiClient(CoreV1Api);
//   await kubectl(['apply', '-f', '-'], { input: yaml });   // helm([...]) likewise
//   const tenant = await asUser('alice', ['team-a']);   // RBAC applies to tenant.kubeConfig
import { inject } from 'vitest';
import type { KubeConfig } from '@kubernetes/client-node';
import type { ControlPlaneInfo } from './control-plane.ts';
import type { DatabaseInfo } from './databases.ts';
import type { NodeInfo } from './node.ts';
import { helm as runHelm, kubeConfigFromFile, kubectl as runKubectl, userKubeConfig, type KubectlOptions, type KubectlResult } from './kube.ts';

export interface WorldInfo {
  kube: ControlPlaneInfo;
  postgres: DatabaseInfo;
  mariadb: DatabaseInfo;
  redis: DatabaseInfo;
  /** The single node: its name, containerd socket and the images it holds (broker, operator...). */
  node: NodeInfo;
  /** Private temp directory of this run (all services' data and logs are under it). */
  runDir: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    world: WorldInfo;
  }
}

/** The world's connection info (only in the integration and e2e projects). */
export function world(): WorldInfo {
  const info = inject('world');
  if (info === undefined) {
    throw new Error('no world provided: this file must run in the integration or e2e vitest project (globalSetup test/support/global-setup.ts)');
  }
  return info;
}

/** client-node KubeConfig for the admin user (group system:masters). */
export function adminKubeConfig(): KubeConfig {
  return kubeConfigFromFile(world().kube.kubeconfigPath);
}

/** Kubeconfig for an arbitrary user and groups: RBAC decides what it may do. */
export function asUser(user: string, groups: string[] = []): Promise<{ kubeconfigPath: string; kubeConfig: KubeConfig }> {
  return userKubeConfig(world().kube, user, groups);
}

/** The built kubectl against the world (admin unless opts.kubeconfig is given). */
export function kubectl(args: string[], opts: KubectlOptions = {}): Promise<KubectlResult> {
  return runKubectl(world().kube, args, opts);
}

/** The built helm v3 against the world (admin unless opts.kubeconfig is given). */
export function helm(args: string[], opts: KubectlOptions = {}): Promise<KubectlResult> {
  return runHelm(world().kube, args, opts);
}
