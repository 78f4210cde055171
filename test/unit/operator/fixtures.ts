// Small builders of CR objects for the operator's table tests.
import type { AuthSource, MqttDeployment, MqttDeploymentSpec } from '../../../operator/api/types.ts';
import type { BuildContext, SecretData, TlsMaterial } from '../../../operator/resources/context.ts';

export function md(spec: MqttDeploymentSpec = {}, name = 'prod', namespace = 'team-a'): MqttDeployment {
  return { apiVersion: 'mqtt.enclave.dev/v1alpha1', kind: 'MqttDeployment', metadata: { name, namespace, uid: 'uid-1', generation: 3 }, spec };
}

export function source(name: string, spec: AuthSource['spec']): AuthSource {
  return { apiVersion: 'mqtt.enclave.dev/v1alpha1', kind: 'AuthSource', metadata: { name, namespace: 'team-a', generation: 1 }, spec };
}

export function ctx(m: MqttDeployment, extra: { sources?: AuthSource[]; secrets?: Record<string, SecretData>; tls?: Record<string, TlsMaterial>; absentCertificates?: string[] } = {}): BuildContext {
  return {
    md: m,
    config: { defaultImage: 'enclave/broker:test', operatorNamespace: 'enclave-system', clusterDomain: 'cluster.local' },
    sources: new Map((extra.sources ?? []).map((s) => [s.metadata.name, s])),
    secrets: new Map(Object.entries(extra.secrets ?? {})),
    tls: new Map(Object.entries(extra.tls ?? {})),
    absentCertificates: new Set(extra.absentCertificates ?? []),
  };
}

export const b64 = (s: string) => Buffer.from(s).toString('base64');
