// Pure: turns the broker config the operator rendered for a pod into one that runs on this machine.
// Absolute paths under a volume mountPath move under the local root (same files, materialized by
// volumes.ts), every listener and the admin port bind 127.0.0.1 on a local port chosen by the
// caller, and nothing else changes — so the local broker runs exactly the rendered config.
import { join } from 'node:path';

export interface PortPlan {
  /** Container port → local port, for every listener; and the admin port. */
  listeners: Map<number, number>;
  admin: number;
}

/** Every string value `"<mountPath>/x"` (or the mountPath itself) becomes `"<root><mountPath>/x"`. */
export function rewritePaths(value: unknown, mountPaths: readonly string[], root: string): unknown {
  if (typeof value === 'string') {
    for (const m of mountPaths) {
      const base = m.replace(/\/+$/, '');
      if (value === base || value.startsWith(`${base}/`)) return join(root, value);
    }
    return value;
  }
  if (Array.isArray(value)) return value.map((v) => rewritePaths(v, mountPaths, root));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, rewritePaths(v, mountPaths, root)]));
  }
  return value;
}

interface ListenerLike { name?: string; protocol?: string; host?: string; port?: number; [k: string]: unknown }
interface ConfigLike { listeners?: ListenerLike[]; admin?: { host?: string; port?: number }; [k: string]: unknown }

/** Container ports the config listens on (listeners, then admin), for the caller to allocate. */
export function containerPorts(config: ConfigLike): { listeners: number[]; admin: number | undefined } {
  return { listeners: (config.listeners ?? []).map((l) => l.port ?? 0), admin: config.admin?.port };
}

/** The rendered config with local paths and 127.0.0.1 ports. Throws if a port has no plan. */
export function rewriteConfig(config: ConfigLike, mountPaths: readonly string[], root: string, ports: PortPlan): ConfigLike {
  const out = rewritePaths(config, mountPaths, root) as ConfigLike;
  out.listeners = (out.listeners ?? []).map((l) => {
    const local = ports.listeners.get(l.port ?? 0);
    if (local === undefined) throw new Error(`listener ${l.name ?? '?'}: no local port for container port ${l.port}`);
    return { ...l, host: '127.0.0.1', port: local };
  });
  out.admin = { ...(out.admin ?? {}), host: '127.0.0.1', port: ports.admin };
  return out;
}
