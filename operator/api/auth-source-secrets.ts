// The tenant Secret keys an AuthSource needs, and the broker-config field that names the copy of
// each: one list, read by the AuthSource's status (reconcile/auth-source.ts: is every key there?)
// and by the broker config (resources/broker-config.ts: copy each one into the mounted bundle).
import type { AuthSource, AuthSourceSpec, BackendTlsSpec } from './types.ts';

/** The broker-config field naming the copied file; `tls.*` ones sit in the backend's tls block. */
export type SecretFileField =
  | 'dataFile' | 'usernameFile' | 'passwordFile' | 'bearerTokenFile' | 'secretFile' | 'publicKeyFile' | 'jwksFile'
  | 'tls.caFile' | 'tls.certFile' | 'tls.keyFile';

export interface SourceSecretKey {
  /** A Secret in the AuthSource's own namespace. */
  secret: string;
  key: string;
  field: SecretFileField;
  /** The copy's file name is `source-<AuthSource name>-<file>`. */
  file: string;
  /** Used when present and no problem when absent: a Redis login without a user name, a backend TLS client certificate. */
  optional?: true;
}

type Ref = { name: string; key?: string } | undefined;

function keyOf(ref: Ref, defaultKey: string, field: SecretFileField, file: string): SourceSecretKey[] {
  return ref ? [{ secret: ref.name, key: ref.key ?? defaultKey, field, file }] : [];
}

/** The backend CA (and, for client authentication, a certificate and key) of an enabled backend TLS block. */
function backendTlsKeys(tls: BackendTlsSpec | undefined): SourceSecretKey[] {
  if (!tls?.enabled || !tls.secretRef) return [];
  const secret = tls.secretRef.name;
  return [
    { secret, key: 'ca.crt', field: 'tls.caFile', file: 'ca.crt' },
    { secret, key: 'tls.crt', field: 'tls.certFile', file: 'tls.crt', optional: true },
    { secret, key: 'tls.key', field: 'tls.keyFile', file: 'tls.key', optional: true },
  ];
}

/** A login from credentialsSecretRef: SQL needs both keys (the broker reads both files); Redis may go without a user name. */
function loginKeys(secret: string | undefined, userOptional: boolean): SourceSecretKey[] {
  if (secret === undefined) return [];
  return [
    { secret, key: 'username', field: 'usernameFile', file: 'username', ...(userOptional ? { optional: true as const } : {}) },
    { secret, key: 'password', field: 'passwordFile', file: 'password' },
  ];
}

const byType: Record<AuthSourceSpec['type'], (s: AuthSourceSpec) => SourceSecretKey[]> = {
  builtin: (s) => keyOf(s.builtin?.secretRef, 'users.yaml', 'dataFile', 'data.yaml'),
  postgres: (s) => [...loginKeys(s.postgres?.credentialsSecretRef?.name, false), ...backendTlsKeys(s.postgres?.tls)],
  mysql: (s) => [...loginKeys(s.mysql?.credentialsSecretRef?.name, false), ...backendTlsKeys(s.mysql?.tls)],
  redis: (s) => [...loginKeys(s.redis?.credentialsSecretRef?.name, true), ...backendTlsKeys(s.redis?.tls)],
  http: (s) => [...keyOf(s.http?.bearerTokenSecretRef, 'token', 'bearerTokenFile', 'token'), ...backendTlsKeys(s.http?.tls)],
  jwt: (s) => [
    ...keyOf(s.jwt?.secretRef, 'secret', 'secretFile', 'secret'),
    ...keyOf(s.jwt?.publicKeySecretRef, 'public.pem', 'publicKeyFile', 'public.pem'),
    ...keyOf(s.jwt?.jwksSecretRef, 'jwks.json', 'jwksFile', 'jwks.json'),
  ],
  x509: () => [],
};

/** Every Secret key the AuthSource's own type block names (the CRD allows no other block), in the order the broker config lists them. */
export function sourceSecretKeys(source: AuthSource): SourceSecretKey[] {
  return byType[source.spec.type](source.spec);
}
