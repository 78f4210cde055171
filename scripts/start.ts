// `npm start` (minimal, until the operator's own entry point lands): brings up the local Kubernetes
// control plane from test/support on 127.0.0.1, prints how to reach it with kubectl/helm, and on
// Ctrl-C (or SIGTERM) stops every process and removes its temp directory.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startWorld } from '../test/support/start-world.ts';

const started = Date.now();
console.log('enclave: starting the local control plane (etcd, kube-apiserver, kube-controller-manager) ...');
const world = await startWorld({ kubeOnly: true, log: (line) => console.log(`enclave: ${line}`) });
const { kube, runDir } = world.info;
const kubectl = join(kube.binDir, 'kubectl');

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log(`\nenclave: ${signal}: stopping the control plane ...`);
  await world.stop();
  await rm(runDir, { recursive: true, force: true });
  console.log('enclave: stopped, temp files removed');
  process.exit(0);
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void shutdown(signal));

console.log(`
enclave: control plane ready in ${((Date.now() - started) / 1000).toFixed(1)} s
  API server:  ${kube.server}
  kubeconfig:  ${kube.kubeconfigPath}   (admin, group system:masters)
  logs:        ${kube.dir}/*.log

Use it from another shell:
  export KUBECONFIG=${kube.kubeconfigPath}
  ${kubectl} get namespaces
  ${join(kube.binDir, 'helm')} list -A

Press Ctrl-C to stop everything.`);
// Keep the process alive until a signal arrives.
setInterval(() => {}, 1 << 30);
