// Owns the wired-broker replicas of the cluster tests: real broker PROCESSES (`node broker/main.ts
// --config FILE`, like test/unit/broker/broker-process.ts) with `state.backend: redis`, one replica
// id each (ENCLAVE_REPLICA_ID), sharing a key prefix on a real Redis. A replica can be stopped
// gracefully (SIGTERM), killed (SIGKILL) and started again on the same ports.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import type { IClientOptions, MqttClient } from 'mqtt';
import { afterAll, beforeAll } from 'vitest';
import { stringify } from 'yaml';
import { repoRoot } from '../../support/paths.ts';
import { sleep } from '../../support/wait.ts';
import { worldRedis } from './replicas.ts';
import type { RedisAddress } from './replicas.ts';

const main = join(repoRoot, 'broker', 'main.ts');

export interface BrokerReplicaOptions {
  id: string;
  redis: RedisAddress;
  keyPrefix: string;
  /** Fixed ports (a restarted replica keeps its address); 0 = free ports. */
  port?: number;
  adminPort?: number;
  limits?: Record<string, unknown>;
  /** `memory` runs the same config without the state section's Redis. */
  backend?: 'redis' | 'memory';
  takeoverTimeoutMs?: number;
}

export class BrokerReplica {
  readonly id: string;
  port = 0;
  adminPort = 0;
  stdout = '';
  stderr = '';
  private child: ChildProcess | undefined;
  private exited: Promise<number | null> = Promise.resolve(null);
  private readonly dir: string;
  private readonly file: string;

  constructor(options: BrokerReplicaOptions) {
    this.id = options.id;
    this.dir = mkdtempSync(join(tmpdir(), `replica-${options.id}-`));
    this.file = join(this.dir, 'broker.yaml');
    const passwordFile = join(this.dir, 'redis-password');
    writeFileSync(passwordFile, `${options.redis.password}\n`, { mode: 0o600 });
    const backend = options.backend ?? 'redis';
    writeFileSync(this.file, stringify({
      name: 'ha-test',
      listeners: [{ name: 'default', protocol: 'mqtt', host: '127.0.0.1', port: options.port ?? 0, allowAnonymous: true }],
      admin: { host: '127.0.0.1', port: options.adminPort ?? 0 },
      limits: { maxKeepaliveSeconds: 0, ...options.limits },
      authentication: { chain: [], allowAnonymous: true },
      authorization: { chain: [], noMatch: 'allow' },
      logging: { level: 'info' },
      shutdown: { gracePeriodSeconds: 2 },
      state: backend === 'memory' ? { backend } : {
        backend,
        redis: {
          host: options.redis.host, port: options.redis.port, passwordFile, keyPrefix: options.keyPrefix,
          takeoverTimeoutMs: options.takeoverTimeoutMs ?? 1_000,
        },
      },
    }));
  }

  /** Starts the process; resolves once it logged "broker started" (listeners up). */
  async start(): Promise<void> {
    this.stdout = '';
    this.stderr = '';
    const child = this.child = spawn(process.execPath, [main, '--config', this.file], {
      stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ENCLAVE_REPLICA_ID: this.id },
    });
    child.stdout.on('data', (d: Buffer) => (this.stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`replica ${this.id} did not start: ${this.stderr}${this.stdout}`);
      const started = this.logLines().find((l) => l.msg === 'broker started') as { listeners: { port: number }[]; admin: number } | undefined;
      if (started !== undefined) {
        this.port = started.listeners[0]!.port;
        this.adminPort = started.admin;
        break;
      }
      await sleep(50);
    }
    // The bus reads from the stream's end as of its first read: give it a moment to get there.
    await sleep(300);
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Parsed JSON log lines. */
  logLines(): Record<string, unknown>[] {
    return this.stdout.split('\n').flatMap((l) => {
      if (!l.startsWith('{')) return [];
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  }

  async readyz(): Promise<{ status: number; body: string }> {
    const res = await fetch(`http://127.0.0.1:${this.adminPort}/readyz`);
    return { status: res.status, body: (await res.text()).trim() };
  }

  async metric(name: string): Promise<number | undefined> {
    const text = await (await fetch(`http://127.0.0.1:${this.adminPort}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line === undefined ? undefined : Number(line.split(' ')[1]);
  }

  /** SIGTERM: the graceful stop; resolves with the exit code. */
  async terminate(): Promise<number | null> {
    this.child?.kill('SIGTERM');
    return this.exited;
  }

  /** SIGKILL: a crash. */
  async kill(): Promise<void> {
    this.child?.kill('SIGKILL');
    await this.exited;
  }

  async close(): Promise<void> {
    if (this.running) await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function startReplicas(ids: string[], base: Omit<BrokerReplicaOptions, 'id'>): Promise<BrokerReplica[]> {
  const rs = ids.map((id) => new BrokerReplica({ ...base, id }));
  await Promise.all(rs.map((r) => r.start()));
  return rs;
}

/**
 * A test file's replicas and MQTT clients on the world's Redis: registers the hooks that read the
 * Redis address (beforeAll) and end every client, then close every replica (afterAll).
 */
export function replicaFixture(): {
  redis: () => RedisAddress;
  replicas: BrokerReplica[];
  clients: MqttClient[];
  client: (r: BrokerReplica, opts?: IClientOptions) => Promise<MqttClient>;
} {
  let redis: RedisAddress | undefined;
  const replicas: BrokerReplica[] = [];
  const clients: MqttClient[] = [];
  beforeAll(() => {
    redis = worldRedis();
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
    await Promise.all(replicas.map((r) => r.close()));
  });
  return {
    redis: () => {
      if (redis === undefined) throw new Error('replicaFixture: the Redis address is read in beforeAll');
      return redis;
    },
    replicas,
    clients,
    client: async (r, opts = {}) => {
      const c = await mqtt.connectAsync({ host: '127.0.0.1', port: r.port, reconnectPeriod: 0, ...opts });
      clients.push(c);
      return c;
    },
  };
}
