// Listener defaults (ports EMQX users know) applied on read: the operator never writes them back.
import { DEFAULT_PORTS, type ListenerProtocol, type MqttDeployment } from '../api/types.ts';
import type { BuildContext } from './context.ts';

export interface EffectiveListener {
  name: string;
  protocol: ListenerProtocol;
  port: number;
  path?: string;
  tlsCertificate?: string;
  clientAuth: 'none' | 'optional' | 'required';
  clientCa?: string;
}

export function effectiveListeners(md: MqttDeployment): EffectiveListener[] {
  const listeners = md.spec.listeners ?? [{ name: 'mqtt', protocol: 'mqtt' as const }];
  return listeners.map((l) => ({
    name: l.name,
    protocol: l.protocol,
    port: l.port ?? DEFAULT_PORTS[l.protocol],
    ...(l.protocol === 'ws' || l.protocol === 'wss' ? { path: l.path ?? '/mqtt' } : {}),
    ...(l.tlsCertificateRef ? { tlsCertificate: l.tlsCertificateRef.name } : {}),
    clientAuth: l.clientAuth ?? 'none',
    ...(l.clientCaRef ? { clientCa: l.clientCaRef.name } : {}),
  }));
}

/** Names of every AuthSource referenced by either chain, in first-use order. */
export function referencedSources(md: MqttDeployment): string[] {
  const names = [...(md.spec.authentication?.chain ?? []), ...(md.spec.authorization?.chain ?? [])].map((r) => r.name);
  return [...new Set(names)];
}

/** Names of every TlsCertificate referenced by a listener. */
export function referencedCertificates(md: MqttDeployment): string[] {
  const names = effectiveListeners(md).flatMap((l) => [l.tlsCertificate, l.clientCa]).filter((n): n is string => n !== undefined);
  return [...new Set(names)];
}

/** A listener that is declared but not served, and why (for status and events). */
export interface DisabledListener {
  name: string;
  /** The TlsCertificates it needs that do not exist. */
  absent: string[];
}

/** Listeners whose TlsCertificate (or client CA) does not exist, with the name of what is absent. */
export function disabledListeners(ctx: Pick<BuildContext, 'md' | 'absentCertificates'>): DisabledListener[] {
  const absent = ctx.absentCertificates ?? new Set<string>();
  const out: DisabledListener[] = [];
  for (const l of effectiveListeners(ctx.md)) {
    const gone = [l.tlsCertificate, l.clientCa].filter((n): n is string => n !== undefined && absent.has(n));
    if (gone.length > 0) out.push({ name: l.name, absent: gone });
  }
  return out;
}

/** The listeners the broker actually serves: every declared one minus the disabled ones. */
export function servedListeners(ctx: Pick<BuildContext, 'md' | 'absentCertificates'>): EffectiveListener[] {
  const disabled = new Set(disabledListeners(ctx).map((d) => d.name));
  return effectiveListeners(ctx.md).filter((l) => !disabled.has(l.name));
}
