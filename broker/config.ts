// The broker's configuration: the contract the operator renders (operator/resources/broker-config
// imports these types) and the broker validates at start. One YAML file plus the secret files it
// references. Validation errors name the path of the bad field and exit non-zero.
import { readFile } from 'node:fs/promises';
import { Ajv } from 'ajv';
import type { ErrorObject } from 'ajv';
import { parse as parseYaml } from 'yaml';
import type { AuthenticationConfig, AuthorizationConfig, AuthSourceConfig } from './auth/config.ts';
import { stateConfigSchema, type StateConfig } from './cluster/config.ts';

export type ListenerProtocol = 'mqtt' | 'mqtts' | 'ws' | 'wss';
export type ClientAuthMode = 'none' | 'optional' | 'required';

export interface ListenerTlsConfig {
  certFile: string;
  keyFile: string;
  /** CA bundle for verifying client certificates. */
  clientCaFile?: string;
  clientAuth: ClientAuthMode;
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
}

export interface ListenerConfig {
  name: string;
  protocol: ListenerProtocol;
  host: string;
  port: number;
  /** WebSocket path for ws/wss (default "/mqtt"). */
  path?: string;
  tls?: ListenerTlsConfig;
  /** Anonymous access on this listener only (the embedded default config uses it). */
  allowAnonymous?: boolean;
}

export interface LimitsConfig {
  maxConnections: number;
  maxPacketSize: number;
  maxInflight: number;
  maxQueuedMessages: number;
  /** Bytes one session may hold queued (payload, topic, properties, per-message overhead). */
  maxQueuedBytes: number;
  queueOverflow: 'drop-oldest' | 'drop-newest';
  maxTopicLength: number;
  maxTopicLevels: number;
  /** Messages per second per client; 0 = unlimited. */
  publishRatePerSecond: number;
  connectTimeoutMs: number;
  /** A packet whose first byte arrived must be complete within this; otherwise the connection is closed. */
  packetReadTimeoutMs: number;
  maxSessionExpirySeconds: number;
  maxKeepaliveSeconds: number;
  topicAliasMaximum: number;
  /** Persistent sessions (expiry > 0) kept, online or offline; a new one beyond it is refused. */
  maxSessions: number;
  /** Subscriptions one session may hold; extra filters are refused in SUBACK. */
  maxSubscriptionsPerClient: number;
  /** Total payload bytes of retained messages; a retained message beyond it is delivered but not kept. */
  maxRetainedBytes: number;
  /** TLS and WebSocket handshakes in progress, all listeners together; a connection beyond it is closed at accept. */
  maxPendingHandshakes: number;
  /** A TLS or WebSocket handshake not finished within this closes the connection. */
  handshakeTimeoutMs: number;
}

export interface BrokerConfig {
  /** Tenant/deployment name, for logs and $SYS. */
  name: string;
  listeners: ListenerConfig[];
  admin: { host: string; port: number };
  limits: LimitsConfig;
  authentication: AuthenticationConfig;
  authorization: AuthorizationConfig;
  sources: Record<string, AuthSourceConfig>;
  logging: { level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'; accessLog: boolean };
  shutdown: { gracePeriodSeconds: number };
  /** Where routing, retained messages and sessions live: this process (default) or a Redis shared by the replicas (docs/ha.md). */
  state: StateConfig;
}

export type { AuthSourceConfig, AuthenticationConfig, AuthorizationConfig };

// ---- defaults, schema, loading -------------------------------------------------------------

export const defaultLimits: LimitsConfig = {
  maxConnections: 100_000,
  maxPacketSize: 1024 * 1024,
  maxInflight: 64,
  maxQueuedMessages: 1000,
  maxQueuedBytes: 16 * 1024 * 1024,
  queueOverflow: 'drop-oldest',
  maxTopicLength: 1024,
  maxTopicLevels: 32,
  publishRatePerSecond: 0,
  connectTimeoutMs: 10_000,
  packetReadTimeoutMs: 30_000,
  maxSessionExpirySeconds: 7 * 24 * 3600,
  maxKeepaliveSeconds: 3600,
  topicAliasMaximum: 64,
  maxSessions: 100_000,
  maxSubscriptionsPerClient: 1000,
  maxRetainedBytes: 128 * 1024 * 1024,
  maxPendingHandshakes: 512,
  handshakeTimeoutMs: 10_000,
};

/**
 * The embedded default config: one TCP listener on 127.0.0.1:1883 with anonymous access allowed on
 * that listener only, for a quick local try (`enclave-broker` with no arguments).
 */
export function embeddedDefaultConfig(host = '127.0.0.1', port = 1883): BrokerConfig {
  return {
    name: 'local',
    listeners: [{ name: 'default', protocol: 'mqtt', host, port, allowAnonymous: true }],
    admin: { host: '127.0.0.1', port: 0 },
    limits: { ...defaultLimits },
    authentication: { chain: [], allowAnonymous: false },
    authorization: { chain: [], noMatch: 'allow', denyAction: 'ignore', cache: { enabled: true, maxSize: 32, ttlSeconds: 60 } },
    sources: {},
    logging: { level: 'info', accessLog: false },
    shutdown: { gracePeriodSeconds: 10 },
    state: { backend: 'memory' },
  };
}

const tlsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['certFile', 'keyFile'],
  properties: {
    certFile: { type: 'string', minLength: 1 },
    keyFile: { type: 'string', minLength: 1 },
    clientCaFile: { type: 'string', minLength: 1 },
    clientAuth: { enum: ['none', 'optional', 'required'], default: 'none' },
    minVersion: { enum: ['TLSv1.2', 'TLSv1.3'] },
  },
};

const int = (minimum: number, maximum: number, dflt: number): object => ({ type: 'integer', minimum, maximum, default: dflt });

/** JSON schema of the broker config. Auth sources are validated by their own module (broker/auth). */
export const brokerConfigSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['listeners'],
  properties: {
    name: { type: 'string', default: 'broker' },
    listeners: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'protocol', 'port'],
        properties: {
          name: { type: 'string', minLength: 1 },
          protocol: { enum: ['mqtt', 'mqtts', 'ws', 'wss'] },
          host: { type: 'string', default: '0.0.0.0' },
          port: { type: 'integer', minimum: 0, maximum: 65535 },
          path: { type: 'string', pattern: '^/' },
          tls: tlsSchema,
          allowAnonymous: { type: 'boolean' },
        },
      },
    },
    admin: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { host: { type: 'string', default: '0.0.0.0' }, port: int(0, 65535, 9090) },
    },
    limits: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        maxConnections: int(1, 10_000_000, defaultLimits.maxConnections),
        maxPacketSize: int(64, 268_435_455, defaultLimits.maxPacketSize),
        maxInflight: int(1, 65535, defaultLimits.maxInflight),
        maxQueuedMessages: int(0, 10_000_000, defaultLimits.maxQueuedMessages),
        maxQueuedBytes: int(1024, Number.MAX_SAFE_INTEGER, defaultLimits.maxQueuedBytes),
        queueOverflow: { enum: ['drop-oldest', 'drop-newest'], default: defaultLimits.queueOverflow },
        maxTopicLength: int(1, 65535, defaultLimits.maxTopicLength),
        maxTopicLevels: int(1, 1000, defaultLimits.maxTopicLevels),
        publishRatePerSecond: int(0, 10_000_000, defaultLimits.publishRatePerSecond),
        connectTimeoutMs: int(100, 600_000, defaultLimits.connectTimeoutMs),
        packetReadTimeoutMs: int(500, 3_600_000, defaultLimits.packetReadTimeoutMs),
        maxSessionExpirySeconds: int(0, 4_294_967_295, defaultLimits.maxSessionExpirySeconds),
        maxKeepaliveSeconds: int(0, 65535, defaultLimits.maxKeepaliveSeconds),
        topicAliasMaximum: int(0, 65535, defaultLimits.topicAliasMaximum),
        maxSessions: int(0, 10_000_000, defaultLimits.maxSessions),
        maxSubscriptionsPerClient: int(1, 10_000_000, defaultLimits.maxSubscriptionsPerClient),
        maxRetainedBytes: int(1, Number.MAX_SAFE_INTEGER, defaultLimits.maxRetainedBytes),
        maxPendingHandshakes: int(1, 1_000_000, defaultLimits.maxPendingHandshakes),
        handshakeTimeoutMs: int(100, 600_000, defaultLimits.handshakeTimeoutMs),
      },
    },
    authentication: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        chain: { type: 'array', items: { type: 'string' }, default: [] },
        allowAnonymous: { type: 'boolean', default: false },
      },
    },
    authorization: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        chain: { type: 'array', items: { type: 'string' }, default: [] },
        noMatch: { enum: ['allow', 'deny'], default: 'deny' },
        denyAction: { enum: ['ignore', 'disconnect'], default: 'ignore' },
        cache: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            enabled: { type: 'boolean', default: true },
            maxSize: int(1, 1_048_576, 32),
            ttlSeconds: int(0, 86_400, 60),
          },
        },
      },
    },
    sources: { type: 'object', default: {}, additionalProperties: { type: 'object', required: ['type'] } },
    logging: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        level: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace'], default: 'info' },
        accessLog: { type: 'boolean', default: false },
      },
    },
    shutdown: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { gracePeriodSeconds: int(0, 3600, 10) },
    },
    state: stateConfigSchema,
  },
} as const;

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(source: string, problems: string[]) {
    super(`invalid broker config ${source}:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const validateSchema = ajv.compile(brokerConfigSchema);

/** `/listeners/1/port` → `listeners[1].port` */
function jsonPointerToPath(pointer: string): string {
  let out = '';
  for (const part of pointer.split('/').slice(1)) {
    const seg = part.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(seg) ? `[${seg}]` : out === '' ? seg : `.${seg}`;
  }
  return out === '' ? '(root)' : out;
}

function formatError(e: ErrorObject): string {
  const path = jsonPointerToPath(e.instancePath);
  if (e.keyword === 'additionalProperties') {
    return `${path}: unknown field "${String((e.params as { additionalProperty: string }).additionalProperty)}"`;
  }
  if (e.keyword === 'required') {
    const missing = String((e.params as { missingProperty: string }).missingProperty);
    return `${path === '(root)' ? missing : `${path}.${missing}`}: is required`;
  }
  if (e.keyword === 'enum') {
    return `${path}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
  }
  return `${path}: ${e.message ?? 'is invalid'}`;
}

/** Rules the schema cannot express: cross-field references. */
function semanticProblems(c: BrokerConfig): string[] {
  const problems: string[] = [];
  const names = new Set<string>();
  const endpoints = new Set<string>();
  c.listeners.forEach((l, i) => {
    if (names.has(l.name)) problems.push(`listeners[${i}].name: duplicate listener name "${l.name}"`);
    names.add(l.name);
    const ep = `${l.host}:${l.port}`;
    if (l.port !== 0 && endpoints.has(ep)) problems.push(`listeners[${i}].port: ${ep} is used by another listener`);
    endpoints.add(ep);
    const secure = l.protocol === 'mqtts' || l.protocol === 'wss';
    if (secure && !l.tls) problems.push(`listeners[${i}].tls: is required for protocol ${l.protocol}`);
    if (!secure && l.tls) problems.push(`listeners[${i}].tls: only allowed for mqtts and wss`);
    if (l.tls && l.tls.clientAuth !== 'none' && !l.tls.clientCaFile) {
      problems.push(`listeners[${i}].tls.clientCaFile: is required when clientAuth is ${l.tls.clientAuth}`);
    }
  });
  for (const [key, list] of [['authentication', c.authentication.chain], ['authorization', c.authorization.chain]] as const) {
    list.forEach((name, i) => {
      if (!(name in c.sources)) problems.push(`${key}.chain[${i}]: no source named "${name}" in sources`);
    });
  }
  return problems;
}

/** Validates a parsed config object and fills defaults; throws ConfigError naming every bad path. */
export function validateBrokerConfig(raw: unknown, source = '(inline)'): BrokerConfig {
  const copy: unknown = structuredClone(raw ?? {});
  if (!validateSchema(copy)) {
    throw new ConfigError(source, (validateSchema.errors ?? []).map(formatError));
  }
  const config = copy as BrokerConfig;
  const problems = semanticProblems(config);
  if (problems.length > 0) throw new ConfigError(source, problems);
  return config;
}

/** Reads and validates one YAML (or JSON) config file. */
export async function loadBrokerConfig(file: string): Promise<BrokerConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read file: ${(err as Error).message}`]);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(file, [`not valid YAML: ${(err as Error).message}`]);
  }
  return validateBrokerConfig(raw, file);
}
