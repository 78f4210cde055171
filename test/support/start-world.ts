// Owns starting and stopping the whole world together (used by global-setup.ts and scripts/start.ts):
// control plane, databases and the node's images in parallel, then the node on top of the control
// plane. If any part fails to start, everything already started is stopped before the error
// propagates; stop() takes the node down before the control plane.
import { startControlPlane } from './control-plane.ts';
import { startMariadb, startPostgres, startRedis, type RunningDatabase } from './databases.ts';
import { ensureNodeImages } from './images.ts';
import { startNode, type RunningNode } from './node.ts';
import { makeRunDir } from './paths.ts';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { WorldInfo } from './world.ts';

export interface StartWorldOptions {
  log?: (line: string) => void;
  /** Skip the databases (e.g. `npm start` only needs Kubernetes). */
  kubeOnly?: boolean;
  /**
   * Skip the node and its images (ENCLAVE_WORLD_NODE=0): a focused run of tests that need only the
   * API server and the databases, which may then run beside a full world (one node per machine).
   * Tests that touch `world().node` fail in such a world.
   */
  noNode?: boolean;
}

export interface RunningWorld {
  info: WorldInfo;
  stop: () => Promise<void>;
}

function strip({ stop: _stop, ...info }: RunningDatabase): Omit<RunningDatabase, 'stop'> {
  return info;
}

export async function startWorld(opts: StartWorldOptions = {}): Promise<RunningWorld> {
  const log = opts.log ?? (() => {});
  const runDir = await makeRunDir();
  const t0 = Date.now();
  const timed = <T>(name: string, p: Promise<T>) =>
    p.then((v) => {
      log(`${name} ready in ${Date.now() - t0} ms`);
      return v;
    });
  // Keys and kubeconfigs live here; the run dir itself is world-traversable for the postgres user.
  await mkdir(join(runDir, 'kube'), { recursive: true, mode: 0o700 });
  const parts = await Promise.allSettled([
    timed('control plane', startControlPlane({ dir: join(runDir, 'kube'), log })),
    opts.kubeOnly ? Promise.resolve(null) : timed('postgres', startPostgres(runDir)),
    opts.kubeOnly ? Promise.resolve(null) : timed('mariadb', startMariadb(runDir)),
    opts.kubeOnly ? Promise.resolve(null) : timed('redis', startRedis(runDir)),
    opts.noNode ? Promise.resolve(null) : timed('images', ensureNodeImages(log)),
  ]);
  let node: RunningNode | undefined;
  const stopAll = async () => {
    await node?.stop();
    await Promise.all(parts.map(async (p) => (p.status === 'fulfilled' && p.value !== null && 'stop' in p.value ? p.value.stop() : undefined)));
  };
  const failures = parts.filter((p): p is PromiseRejectedResult => p.status === 'rejected');
  if (failures.length > 0) {
    await stopAll();
    const reasons = failures.map((f) => (f.reason instanceof Error ? f.reason.message || String(f.reason.stack) : String(f.reason)));
    throw new Error(`the test world failed to start (files in ${runDir}):\n${reasons.join('\n\n')}`);
  }
  const [kube, postgres, mariadb, redis, images] = parts.map((p) => (p as PromiseFulfilledResult<unknown>).value) as [
    Awaited<ReturnType<typeof startControlPlane>>,
    RunningDatabase | null,
    RunningDatabase | null,
    RunningDatabase | null,
    Awaited<ReturnType<typeof ensureNodeImages>>,
  ];
  const { stop: _stop, ...kubeInfo } = kube;
  try {
    if (!opts.noNode) node = await timed('node', startNode({ dir: join(runDir, 'node'), kube: kubeInfo, images, log }));
  } catch (err) {
    await stopAll();
    throw new Error(`the test node failed to start (files in ${join(runDir, 'node')}): ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const { stop: _stopNode, ...nodeInfo } = node ?? ({ stop: undefined } as unknown as RunningNode);
  const none = { host: '', port: 0, user: '', password: '', database: '', logFile: '' };
  return {
    info: {
      kube: kubeInfo,
      postgres: postgres ? strip(postgres) : none,
      mariadb: mariadb ? strip(mariadb) : none,
      redis: redis ? strip(redis) : none,
      node: nodeInfo,
      runDir,
    },
    stop: stopAll,
  };
}
