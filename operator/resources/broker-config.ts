// The broker-config Secret: the rendered BrokerConfig (config.yaml) plus copies of every credential
// and TLS file it names, all in one Secret mounted as a whole volume at /etc/enclave (no subPath), so
// a rotated credential reaches the running broker's hot reload. The config hash covers config.yaml
// only: a rotated password or certificate must not roll the pods, a changed config must.
import { createHash } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { ConfigError, validateBrokerConfig, type BrokerConfig, type ListenerConfig } from '../../broker/config.ts';
import { authSourceProblems, chainRoleProblems } from '../../broker/auth/source-schema.ts';
import type { AuthSourceConfig, BackendTls, PasswordHashConfig } from '../../broker/auth/config.ts';
import type { AuthSource, BackendTlsSpec } from '../api/types.ts';
import { ADMIN_PORT, BROKER_CONFIG_SECRET, LABEL_ROLE, ROLE_BROKER_CONFIG, ownerLabels } from '../api/names.ts';
import { type BuildContext, ownerOf, targetNamespace } from './context.ts';
import { unusableSecret } from '../policy/secret-references.ts';
import { referencedSources, servedListeners } from './listeners.ts';

export const CONFIG_DIR = '/etc/enclave';

export interface RenderedConfig {
  secret: V1Secret;
  configHash: string;
  /** References that could not be resolved; non-empty means the config is incomplete. */
  missing: string[];
  /**
   * What the broker's own validation says about the rendered config (paths into config.yaml);
   * non-empty means pods would refuse to start, so it is never applied.
   */
  invalid: string[];
}

/** The broker's validation of a rendered config: the same code the broker runs at start. */
export function brokerConfigProblems(config: BrokerConfig): string[] {
  const problems: string[] = [];
  try {
    validateBrokerConfig(config);
  } catch (err) {
    problems.push(...(err instanceof ConfigError ? err.problems : [(err as Error).message]));
  }
  problems.push(...authSourceProblems(config.sources));
  if (problems.length === 0) problems.push(...chainRoleProblems(config));
  return problems;
}

/** Go-style duration (`5s`, `1m30s`, `250ms`) to milliseconds. */
export function durationMs(text: string): number {
  let total = 0;
  for (const [, n, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)) {
    total += Number(n) * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as Record<string, number>)[unit!]!;
  }
  return total;
}

class Files {
  readonly data: Record<string, string> = {};
  readonly missing: string[] = [];
  private readonly ctx: BuildContext;
  constructor(ctx: BuildContext) {
    this.ctx = ctx;
  }
  secretData(name: string): Record<string, string> | undefined {
    return this.ctx.secrets.get(name);
  }
  /**
   * Copies key `key` of tenant Secret `secret` into the bundle; returns its mounted path. `ctx.secrets`
   * holds only the Secrets their owner opted in: any other reads as unusable, never as "no such key".
   */
  copy(secret: string, key: string, as: string): string {
    const data = this.ctx.secrets.get(secret);
    const value = data?.[key];
    const problem = data === undefined ? unusableSecret(secret) : `Secret ${secret} key ${key}`;
    if (value === undefined) {
      if (!this.missing.includes(problem)) this.missing.push(problem);
    } else {
      this.data[as] = value;
    }
    return `${CONFIG_DIR}/${as}`;
  }
  put(as: string, base64: string): string {
    this.data[as] = base64;
    return `${CONFIG_DIR}/${as}`;
  }
}

function backendTls(files: Files, prefix: string, tls: BackendTlsSpec | undefined): BackendTls | undefined {
  if (!tls?.enabled) return undefined;
  const out: BackendTls = { enabled: true, verify: !tls.insecureSkipVerify, ...(tls.serverName ? { serverName: tls.serverName } : {}) };
  if (tls.secretRef) {
    const data = files.secretData(tls.secretRef.name);
    out.caFile = files.copy(tls.secretRef.name, 'ca.crt', `${prefix}-ca.crt`);
    if (data?.['tls.crt'] !== undefined) out.certFile = files.copy(tls.secretRef.name, 'tls.crt', `${prefix}-tls.crt`);
    if (data?.['tls.key'] !== undefined) out.keyFile = files.copy(tls.secretRef.name, 'tls.key', `${prefix}-tls.key`);
  }
  return out;
}

function sourceConfig(files: Files, source: AuthSource): AuthSourceConfig {
  const s = source.spec;
  const p = `source-${source.metadata.name}`;
  const common = {
    onBackendFailure: s.onBackendFailure ?? 'deny',
    ...(s.timeout ? { timeoutMs: durationMs(s.timeout) } : {}),
  };
  const hash: PasswordHashConfig = s.passwordHash ?? { algorithm: 'sha256', saltPosition: 'prefix' };
  const opt = <T>(key: string, v: T | undefined) => (v === undefined ? {} : { [key]: v });
  switch (s.type) {
    case 'builtin':
      return { type: 'builtin', ...common, dataFile: files.copy(s.builtin!.secretRef.name, s.builtin!.secretRef.key ?? 'users.yaml', `${p}-data.yaml`), passwordHash: hash };
    case 'postgres':
    case 'mysql': {
      const q = (s.type === 'postgres' ? s.postgres : s.mysql)!;
      const cred = q.credentialsSecretRef?.name;
      return {
        type: s.type, ...common, host: q.host, port: q.port ?? (s.type === 'postgres' ? 5432 : 3306), database: q.database,
        ...(cred ? { usernameFile: files.copy(cred, 'username', `${p}-username`), passwordFile: files.copy(cred, 'password', `${p}-password`) } : {}),
        ...opt('tls', backendTls(files, p, q.tls)), ...opt('poolSize', q.poolSize),
        ...opt('authQuery', q.authQuery), ...opt('superuserQuery', q.superuserQuery), ...opt('aclQuery', q.aclQuery),
        passwordHash: hash,
      };
    }
    case 'redis': {
      const r = s.redis!;
      const cred = r.credentialsSecretRef?.name;
      const hasUser = cred !== undefined && files.secretData(cred)?.username !== undefined;
      return {
        type: 'redis', ...common, host: r.host, port: r.port ?? 6379, ...opt('db', r.db),
        ...(hasUser ? { usernameFile: files.copy(cred, 'username', `${p}-username`) } : {}),
        ...(cred ? { passwordFile: files.copy(cred, 'password', `${p}-password`) } : {}),
        ...opt('tls', backendTls(files, p, r.tls)), ...opt('authCommand', r.authCommand), ...opt('aclCommand', r.aclCommand),
        passwordHash: hash,
      };
    }
    case 'http': {
      const h = s.http!;
      return {
        type: 'http', ...common, url: h.url, method: h.method ?? 'POST', ...opt('bodyFormat', h.bodyFormat), ...opt('headers', h.headers),
        ...opt('body', h.body), ...opt('aclUrl', h.aclUrl),
        ...(h.bearerTokenSecretRef ? { bearerTokenFile: files.copy(h.bearerTokenSecretRef.name, h.bearerTokenSecretRef.key ?? 'token', `${p}-token`) } : {}),
        ...opt('tls', backendTls(files, p, h.tls)),
      };
    }
    case 'jwt': {
      const j = s.jwt!;
      return {
        type: 'jwt', ...common, from: j.from ?? 'password',
        ...(j.secretRef ? { secretFile: files.copy(j.secretRef.name, j.secretRef.key ?? 'secret', `${p}-secret`) } : {}),
        ...opt('secretBase64', j.secretBase64),
        ...(j.publicKeySecretRef ? { publicKeyFile: files.copy(j.publicKeySecretRef.name, j.publicKeySecretRef.key ?? 'public.pem', `${p}-public.pem`) } : {}),
        ...(j.jwksSecretRef ? { jwksFile: files.copy(j.jwksSecretRef.name, j.jwksSecretRef.key ?? 'jwks.json', `${p}-jwks.json`) } : {}),
        ...opt('jwksUrl', j.jwksUrl), ...(j.jwksRefresh ? { jwksRefreshSeconds: durationMs(j.jwksRefresh) / 1000 } : {}),
        ...opt('algorithms', j.algorithms), ...opt('issuer', j.issuer), ...opt('audience', j.audience),
        ...opt('verifyClaims', j.verifyClaims), ...opt('aclClaim', j.aclClaim), ...opt('disconnectOnExpiry', j.disconnectOnExpiry),
      };
    }
    case 'x509':
      return { type: 'x509', ...common, identityFrom: s.x509?.identityFrom ?? 'cn', ...opt('superusers', s.x509?.superusers) };
  }
}

export function renderBrokerConfig(ctx: BuildContext): RenderedConfig {
  const files = new Files(ctx);
  const md = ctx.md;
  // Only served listeners: one whose TlsCertificate was deleted is left out with its files (status says so).
  const listeners: ListenerConfig[] = servedListeners(ctx).map((l) => {
    const out: ListenerConfig = { name: l.name, protocol: l.protocol, host: '0.0.0.0', port: l.port, ...(l.path ? { path: l.path } : {}) };
    if (l.tlsCertificate !== undefined) {
      const material = ctx.tls.get(l.tlsCertificate);
      if (!material) files.missing.push(`TlsCertificate ${l.tlsCertificate}`);
      const certFile = files.put(`tls-${l.tlsCertificate}.crt`, material?.crt ?? '');
      const keyFile = files.put(`tls-${l.tlsCertificate}.key`, material?.key ?? '');
      let clientCaFile: string | undefined;
      if (l.clientCa !== undefined) {
        const ca = ctx.tls.get(l.clientCa);
        if (!ca?.ca && !ca?.crt) files.missing.push(`TlsCertificate ${l.clientCa} (client CA)`);
        clientCaFile = files.put(`clientca-${l.clientCa}.crt`, ca?.ca ?? ca?.crt ?? '');
      }
      out.tls = { certFile, keyFile, clientAuth: l.clientAuth, ...(clientCaFile ? { clientCaFile } : {}) };
    }
    return out;
  });
  const sources: Record<string, AuthSourceConfig> = {};
  for (const name of referencedSources(md)) {
    const source = ctx.sources.get(name);
    if (source) sources[name] = sourceConfig(files, source);
    else files.missing.push(`AuthSource ${name}`);
  }
  const config: BrokerConfig = {
    name: `${md.metadata.namespace}/${md.metadata.name}`,
    listeners,
    admin: { host: '0.0.0.0', port: ADMIN_PORT },
    limits: { ...limitsFrom(md) } as BrokerConfig['limits'],
    authentication: { chain: (md.spec.authentication?.chain ?? []).map((r) => r.name), allowAnonymous: md.spec.authentication?.allowAnonymous ?? false },
    authorization: {
      chain: (md.spec.authorization?.chain ?? []).map((r) => r.name),
      noMatch: md.spec.authorization?.noMatch ?? 'deny',
      denyAction: md.spec.authorization?.denyAction ?? 'ignore',
      cache: {
        enabled: md.spec.authorization?.cache?.enabled ?? true,
        maxSize: md.spec.authorization?.cache?.maxSize ?? 32,
        ttlSeconds: durationMs(md.spec.authorization?.cache?.ttl ?? '1m') / 1000,
      },
    },
    sources,
    logging: { level: 'info', accessLog: true },
    shutdown: { gracePeriodSeconds: 10 },
  };
  const configYaml = stringify(config, { sortMapEntries: true });
  const configHash = createHash('sha256').update(configYaml).digest('hex').slice(0, 16);
  const secret: V1Secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: { name: BROKER_CONFIG_SECRET, namespace: targetNamespace(md), labels: { ...ownerLabels(ownerOf(md)), [LABEL_ROLE]: ROLE_BROKER_CONFIG } },
    data: { ...sortedObject(files.data), 'config.yaml': Buffer.from(configYaml).toString('base64') },
  };
  return { secret, configHash, missing: files.missing, invalid: files.missing.length > 0 ? [] : brokerConfigProblems(config) };
}

/** Only the limits the tenant set; the broker's own schema defaults fill the rest. */
function limitsFrom(md: BuildContext['md']): Partial<BrokerConfig['limits']> {
  const l = md.spec.limits ?? {};
  const out: Partial<BrokerConfig['limits']> = {};
  if (l.maxConnections !== undefined) out.maxConnections = l.maxConnections;
  if (l.maxPacketSize !== undefined) out.maxPacketSize = l.maxPacketSize;
  if (l.maxInflight !== undefined) out.maxInflight = l.maxInflight;
  if (l.maxQueuedMessages !== undefined) out.maxQueuedMessages = l.maxQueuedMessages;
  if (l.publishRatePerSecond !== undefined) out.publishRatePerSecond = l.publishRatePerSecond;
  return out;
}

function sortedObject(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}
