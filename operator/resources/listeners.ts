// Listener defaults (ports EMQX users know) applied on read: the operator never writes them back.
import { DEFAULT_PORTS, type ListenerProtocol, type MqttDeployment } from '../api/types.ts';

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
