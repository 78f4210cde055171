// Owns the `state` section of the broker config (proposed; phase 2 adds it to broker/config.ts):
// `memory` (one replica) or `redis` with the connection, credentials from mounted files and the key
// prefix the operator derives from the MqttDeployment UID. The replica id is the pod name (downward
// API, env ENCLAVE_REPLICA_ID). Pure: schema, types, and the mapping to the link's config.
import { readFileSync } from 'node:fs';
import type { RedisLinkConfig } from './link.ts';

export interface RedisStateConfig {
  host: string;
  port: number;
  username?: string;
  /**
   * File holding the password (a mounted Secret key): read at start and again whenever it changes;
   * the new password is used from the next (re)connect, so a rotation needs no restart.
   */
  passwordFile?: string;
  /** CA bundle of Redis' server certificate; TLS when set. */
  caFile?: string;
  tlsServerName?: string;
  db: number;
  /** `enclave:<MqttDeployment uid>:` */
  keyPrefix: string;
  /** Bus stream entries kept for replicas that reconnect. */
  streamMaxEntries: number;
  /** How long a new owner waits for the old one to release a session before fencing it. */
  takeoverTimeoutMs: number;
}

export type StateConfig = { backend: 'memory' } | { backend: 'redis'; redis: RedisStateConfig };

export const stateConfigSchema = {
  type: 'object',
  additionalProperties: false,
  default: { backend: 'memory' },
  required: ['backend'],
  properties: {
    backend: { enum: ['memory', 'redis'] },
    redis: {
      type: 'object',
      additionalProperties: false,
      required: ['host', 'keyPrefix'],
      properties: {
        host: { type: 'string', minLength: 1 },
        port: { type: 'integer', minimum: 1, maximum: 65535, default: 6379 },
        username: { type: 'string', minLength: 1 },
        passwordFile: { type: 'string', minLength: 1 },
        caFile: { type: 'string', minLength: 1 },
        tlsServerName: { type: 'string', minLength: 1 },
        db: { type: 'integer', minimum: 0, maximum: 15, default: 0 },
        keyPrefix: { type: 'string', pattern: '^[^*?\\[\\]\\\\]{3,200}$' },
        streamMaxEntries: { type: 'integer', minimum: 1000, maximum: 10_000_000, default: 50_000 },
        takeoverTimeoutMs: { type: 'integer', minimum: 100, maximum: 60_000, default: 2_000 },
      },
    },
  },
  if: { properties: { backend: { const: 'redis' } } },
  then: { required: ['redis'] },
} as const;

/** The replica id: the pod name from the downward API, else the host name. */
export function replicaId(env: NodeJS.ProcessEnv = process.env, hostname = ''): string {
  const id = env.ENCLAVE_REPLICA_ID ?? env.POD_NAME ?? hostname;
  if (id === '' || Buffer.byteLength(id) > 255) throw new RangeError('replica id: set ENCLAVE_REPLICA_ID to the pod name (1..255 bytes)');
  return id;
}

export function linkConfig(c: RedisStateConfig): RedisLinkConfig {
  return {
    host: c.host, port: c.port, db: c.db, keyPrefix: c.keyPrefix,
    ...(c.username !== undefined ? { username: c.username } : {}),
    // Read now (a missing file fails the start); the link watches it for rotations.
    ...(c.passwordFile !== undefined ? { password: readFileSync(c.passwordFile, 'utf8').trim(), passwordFile: c.passwordFile } : {}),
    ...(c.caFile !== undefined ? { caFile: c.caFile } : {}),
    ...(c.tlsServerName !== undefined ? { tlsServerName: c.tlsServerName } : {}),
  };
}
