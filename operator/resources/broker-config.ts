// The broker-config Secret: the rendered BrokerConfig (config.yaml) plus copies of every credential
// and TLS file it names, all in one Secret mounted as a whole volume at /etc/enclave (no subPath), so
// a rotated credential reaches the running broker's hot reload. The config hash covers config.yaml
// only: a rotated password or certificate must not roll the pods, a changed config must. One
// exception: the managed Redis' password, which the broker reads at start only (and Redis too), so
// a new one (its Secret deleted by hand) must roll both; it is random, so hashing it reveals nothing.
import { createHash } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { ConfigError, validateBrokerConfig, type BrokerConfig, type ListenerConfig } from '../../broker/config.ts';
import { authSourceProblems, chainRoleProblems } from '../../broker/auth/source-schema.ts';
import type { AuthSourceConfig, BackendTls, PasswordHashConfig } from '../../broker/auth/config.ts';
import type { AuthSource, BackendTlsSpec, JwtSpec, SqlSpec } from '../api/types.ts';
import { sourceSecretKeys, type SecretFileField } from '../api/auth-source-secrets.ts';
import { DurationError, parseDuration } from '../api/duration.ts';
import { ADMIN_PORT, BROKER_CONFIG_SECRET, LABEL_ROLE, ROLE_BROKER_CONFIG, ownerLabels } from '../api/names.ts';
import { type BuildContext, ownerOf, targetNamespace } from './context.ts';
import { unusableSecret } from '../policy/secret-references.ts';
import { referencedSources, servedListeners } from './listeners.ts';
import { stateConfig } from './state.ts';

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

class Files {
  readonly data: Record<string, string> = {};
  readonly missing: string[] = [];
  /** Values the broker config cannot take (a malformed duration), each naming its field. */
  readonly invalid: string[] = [];
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
  /** `text` in milliseconds; a malformed one is recorded as invalid (so nothing is applied) and left out. */
  durationMs(text: string | undefined, field: string): number | undefined {
    if (text === undefined) return undefined;
    try {
      return parseDuration(text, field);
    } catch (err) {
      if (!(err instanceof DurationError)) throw err;
      this.invalid.push(err.message);
      return undefined;
    }
  }
}

/** The copied Secret files of a source, by the broker-config field that names each (api/auth-source-secrets.ts). */
type Copied = Partial<Record<SecretFileField, string>>;

function copySecretFiles(files: Files, source: AuthSource): Copied {
  const copied: Copied = {};
  for (const k of sourceSecretKeys(source)) {
    if (k.optional && files.secretData(k.secret)?.[k.key] === undefined) continue;
    copied[k.field] = files.copy(k.secret, k.key, `source-${source.metadata.name}-${k.file}`);
  }
  return copied;
}

/** The copied files that sit at the top of a source's config (the `tls.*` ones go into its tls block). */
function topLevelFiles(copied: Copied): Record<string, string> {
  return Object.fromEntries(Object.entries(copied).filter(([field]) => !field.startsWith('tls.')));
}

const opt = <T>(key: string, v: T | undefined): Record<string, T> => (v === undefined ? {} : { [key]: v });

function backendTls(tls: BackendTlsSpec | undefined, copied: Copied): BackendTls | undefined {
  if (!tls?.enabled) return undefined;
  return {
    enabled: true, verify: !tls.insecureSkipVerify, ...(tls.serverName ? { serverName: tls.serverName } : {}),
    ...opt('caFile', copied['tls.caFile']), ...opt('certFile', copied['tls.certFile']), ...opt('keyFile', copied['tls.keyFile']),
  };
}

/** What every source type shares, and the files copied for it. */
interface SourceParts {
  spec: AuthSource['spec'];
  common: { onBackendFailure: 'deny' | 'ignore'; timeoutMs?: number };
  files: Record<string, string>;
  copied: Copied;
  hash: PasswordHashConfig;
  /** Durations of this source, named by field for the error. */
  durationMs: (text: string | undefined, field: string) => number | undefined;
}

function sqlConfig(type: 'postgres' | 'mysql', q: SqlSpec, p: SourceParts): AuthSourceConfig {
  return {
    type, ...p.common, host: q.host, port: q.port ?? (type === 'postgres' ? 5432 : 3306), database: q.database, ...p.files,
    ...opt('tls', backendTls(q.tls, p.copied)), ...opt('poolSize', q.poolSize),
    ...opt('authQuery', q.authQuery), ...opt('superuserQuery', q.superuserQuery), ...opt('aclQuery', q.aclQuery),
    passwordHash: p.hash,
  };
}

function jwtConfig(j: JwtSpec, p: SourceParts): AuthSourceConfig {
  const refreshMs = p.durationMs(j.jwksRefresh, 'spec.jwt.jwksRefresh');
  return {
    type: 'jwt', ...p.common, from: j.from ?? 'password', ...p.files, ...opt('secretBase64', j.secretBase64),
    ...opt('jwksUrl', j.jwksUrl), ...opt('jwksRefreshSeconds', refreshMs === undefined ? undefined : refreshMs / 1000),
    ...opt('algorithms', j.algorithms), ...opt('issuer', j.issuer), ...opt('audience', j.audience),
    ...opt('verifyClaims', j.verifyClaims), ...opt('aclClaim', j.aclClaim), ...opt('disconnectOnExpiry', j.disconnectOnExpiry),
  };
}

/** One source's config by type; the CRD guarantees the block named by `type` is the one set. */
const byType: Record<AuthSource['spec']['type'], (p: SourceParts) => AuthSourceConfig> = {
  builtin: (p) => ({ type: 'builtin', ...p.common, dataFile: p.copied.dataFile ?? '', passwordHash: p.hash }),
  postgres: (p) => sqlConfig('postgres', p.spec.postgres!, p),
  mysql: (p) => sqlConfig('mysql', p.spec.mysql!, p),
  redis: (p) => {
    const r = p.spec.redis!;
    return {
      type: 'redis', ...p.common, host: r.host, port: r.port ?? 6379, ...opt('db', r.db), ...p.files,
      ...opt('tls', backendTls(r.tls, p.copied)), ...opt('authCommand', r.authCommand), ...opt('aclCommand', r.aclCommand),
      passwordHash: p.hash,
    };
  },
  http: (p) => {
    const h = p.spec.http!;
    return {
      type: 'http', ...p.common, url: h.url, method: h.method ?? 'POST', ...opt('bodyFormat', h.bodyFormat), ...opt('headers', h.headers),
      ...opt('body', h.body), ...opt('aclUrl', h.aclUrl), ...p.files, ...opt('tls', backendTls(h.tls, p.copied)),
    };
  },
  jwt: (p) => jwtConfig(p.spec.jwt!, p),
  x509: (p) => ({ type: 'x509', ...p.common, identityFrom: p.spec.x509?.identityFrom ?? 'cn', ...opt('superusers', p.spec.x509?.superusers) }),
};

function sourceConfig(files: Files, source: AuthSource): AuthSourceConfig {
  const s = source.spec;
  const durationMs = (text: string | undefined, field: string) => files.durationMs(text, `AuthSource ${source.metadata.name} ${field}`);
  const copied = copySecretFiles(files, source);
  return byType[s.type]({
    spec: s,
    common: { onBackendFailure: s.onBackendFailure ?? 'deny', ...opt('timeoutMs', durationMs(s.timeout, 'spec.timeout')) },
    files: topLevelFiles(copied),
    copied,
    hash: s.passwordHash ?? { algorithm: 'sha256', saltPosition: 'prefix' },
    durationMs,
  });
}

/** A served listener; TLS files are put into the bundle (empty, and reported missing, when the material is absent). */
function listenerConfig(files: Files, ctx: BuildContext, l: ReturnType<typeof servedListeners>[number]): ListenerConfig {
  const out: ListenerConfig = { name: l.name, protocol: l.protocol, host: '0.0.0.0', port: l.port, ...(l.path ? { path: l.path } : {}) };
  if (l.tlsCertificate === undefined) return out;
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
  return out;
}

function sourcesConfig(files: Files, ctx: BuildContext): Record<string, AuthSourceConfig> {
  const sources: Record<string, AuthSourceConfig> = {};
  for (const name of referencedSources(ctx.md)) {
    const source = ctx.sources.get(name);
    if (source) sources[name] = sourceConfig(files, source);
    else files.missing.push(`AuthSource ${name}`);
  }
  return sources;
}

function authorizationConfig(files: Files, md: BuildContext['md']): BrokerConfig['authorization'] {
  const a = md.spec.authorization;
  return {
    chain: (a?.chain ?? []).map((r) => r.name),
    noMatch: a?.noMatch ?? 'deny',
    denyAction: a?.denyAction ?? 'ignore',
    cache: {
      enabled: a?.cache?.enabled ?? true,
      maxSize: a?.cache?.maxSize ?? 32,
      ttlSeconds: (files.durationMs(a?.cache?.ttl ?? '1m', 'spec.authorization.cache.ttl') ?? 0) / 1000,
    },
  };
}

export function renderBrokerConfig(ctx: BuildContext): RenderedConfig {
  const files = new Files(ctx);
  const md = ctx.md;
  const config: BrokerConfig = {
    name: `${md.metadata.namespace}/${md.metadata.name}`,
    // Only served listeners: one whose TlsCertificate was deleted is left out with its files (status says so).
    listeners: servedListeners(ctx).map((l) => listenerConfig(files, ctx, l)),
    admin: { host: '0.0.0.0', port: ADMIN_PORT },
    limits: { ...limitsFrom(md) } as BrokerConfig['limits'],
    authentication: { chain: (md.spec.authentication?.chain ?? []).map((r) => r.name), allowAnonymous: md.spec.authentication?.allowAnonymous ?? false },
    authorization: authorizationConfig(files, md),
    sources: sourcesConfig(files, ctx),
    logging: { level: 'info', accessLog: true },
    shutdown: { gracePeriodSeconds: 10 },
    state: stateConfig(files, ctx),
  };
  // `memory` is the broker's default and is left out: the config.yaml (and hash) of a deployment
  // without a state backend stays what it was before the section existed, so no pod rolls for it.
  const written = config.state.backend === 'memory' ? Object.fromEntries(Object.entries(config).filter(([k]) => k !== 'state')) : config;
  const configYaml = stringify(written, { sortMapEntries: true });
  const configHash = createHash('sha256').update(configYaml).update(ctx.redisPassword !== undefined && config.state.backend === 'redis' ? ctx.redisPassword : '').digest('hex').slice(0, 16);
  const secret: V1Secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: { name: BROKER_CONFIG_SECRET, namespace: targetNamespace(md), labels: { ...ownerLabels(ownerOf(md)), [LABEL_ROLE]: ROLE_BROKER_CONFIG } },
    data: { ...sortedObject(files.data), 'config.yaml': Buffer.from(configYaml).toString('base64') },
  };
  const invalid = files.missing.length > 0 ? [] : [...files.invalid, ...brokerConfigProblems(config)];
  return { secret, configHash, missing: files.missing, invalid };
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
