// One pooled HTTPS connection set per KubeConfig. @kubernetes/client-node 2.0 builds a new undici
// Agent for EVERY request (KubeConfig.applySecurityAuthentication → createDispatcher), so each API
// call pays a fresh TLS handshake and leaves its keep-alive socket behind until it times out: at a
// few hundred reconciles that is most of the operator's CPU and much of its RSS outside the heap.
// Here the dispatcher is built once per cluster/user pair and reused; per-request auth headers
// (tokens, exec plugins) are untouched, they are set on the request, not the dispatcher.
import type { KubeConfig } from '@kubernetes/client-node';

const SHARED = Symbol.for('enclave.sharedDispatcher');

// createDispatcher is private in client-node's typings; this is the one place that reaches it.
type Dispatcher = { close(): Promise<void> } | undefined;
type CreateDispatcher = (cluster: { name?: string; server?: string } | null, agentOptions: unknown) => Dispatcher;
type Patched = { createDispatcher: CreateDispatcher; getCurrentUser(): { name?: string } | null; [SHARED]?: Map<string, Dispatcher> };

/** Makes `kc` reuse one dispatcher per cluster/user; idempotent. Returns `kc`. */
export function shareConnections(kc: KubeConfig): KubeConfig {
  const patched = kc as unknown as Patched;
  if (patched[SHARED]) return kc;
  const cache = new Map<string, Dispatcher>();
  patched[SHARED] = cache;
  const create = patched.createDispatcher.bind(kc);
  // Idle sockets close on undici's keep-alive timeout, so nothing needs closing on stop (and the
  // same KubeConfig may still serve other users of it, e.g. tests).
  patched.createDispatcher = (cluster, agentOptions) => {
    const key = JSON.stringify([cluster?.name, cluster?.server, patched.getCurrentUser()?.name]);
    let dispatcher = cache.get(key);
    if (dispatcher === undefined) {
      dispatcher = create(cluster, agentOptions);
      cache.set(key, dispatcher);
    }
    return dispatcher;
  };
  return kc;
}
