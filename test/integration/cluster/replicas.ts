// Owns the cluster tests' "replicas": several instances of the cluster state layer in one process,
// each with its own Redis connections and replica id, sharing one key prefix on a real Redis (the
// world's, or a private redis-server these tests stop and restart on the same port).
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { Bus } from '../../../broker/cluster/bus.ts';
import { Cluster } from '../../../broker/cluster/cluster.ts';
import type { Envelope } from '../../../broker/cluster/envelope.ts';
import type { RedisLink } from '../../../broker/cluster/link.ts';
import type { RedisRetained } from '../../../broker/cluster/retained-store.ts';
import type { SessionStore } from '../../../broker/cluster/session-store.ts';
import type { SharedGroups } from '../../../broker/cluster/shared.ts';
import { spawnService, waitUntilReady } from '../../support/process.ts';
import type { ServiceProcess } from '../../support/process.ts';
import { world } from '../../support/world.ts';

export interface RedisAddress {
  host: string;
  port: number;
  password: string;
}

export interface Replica {
  id: string;
  cluster: Cluster;
  link: RedisLink;
  bus: Bus;
  retained: RedisRetained;
  sessions: SessionStore;
  shared: SharedGroups;
  /** Messages from other replicas, in arrival order. */
  received: Envelope[];
  /** Retained updates in bus order: topic → payload ('' = none). */
  retainedView: Map<string, string>;
  /** Client ids "connected" here: a takeover of one of them is answered (released). */
  connected: Set<string>;
  /** Takeover requests seen: `clientId@epoch`. */
  takeovers: string[];
  events: string[];
  close(): Promise<void>;
}

/** The test world's Redis, as the replicas and admin clients take it. */
export function worldRedis(): RedisAddress {
  const w = world().redis;
  return { host: w.host, port: w.port, password: w.password };
}

/** Closes every replica a test file opened (its afterAll). */
export async function closeAll(open: readonly Replica[]): Promise<void> {
  await Promise.all(open.map((r) => r.close()));
}

export function testPrefix(name: string): string {
  return `enclave-test:${name}:${randomBytes(4).toString('hex')}:`;
}

/** An admin client for assertions (SCAN, MEMORY USAGE, TTL). */
export function adminClient(r: RedisAddress): Redis {
  const c = new Redis({ host: r.host, port: r.port, password: r.password, maxRetriesPerRequest: 1, retryStrategy: (n) => Math.min(n * 50, 500) });
  c.on('error', () => undefined);
  return c;
}

export async function startReplica(id: string, redis: RedisAddress, keyPrefix: string, maxRetainedBytes = 1 << 20): Promise<Replica> {
  const events: string[] = [];
  const received: Envelope[] = [];
  const retainedView = new Map<string, string>();
  const connected = new Set<string>();
  const takeovers: string[] = [];
  const cluster = new Cluster({
    replicaId: id, maxRetainedBytes, shared: { heartbeatMs: 200, liveMs: 1000 },
    link: { host: redis.host, port: redis.port, password: redis.password, keyPrefix, backoffBaseMs: 50, backoffMaxMs: 500, commandTimeoutMs: 1000 },
    observer: { up: () => events.push('up'), down: (reason) => events.push(`down ${reason}`) },
  }, {
    message: (e) => received.push({ ...e, payload: Buffer.from(e.payload) }),
    retained: (e, kept) => retainedView.set(e.topic, kept ? e.payload.toString() : ''),
    takeover: (clientId, epoch) => {
      takeovers.push(`${clientId}@${epoch}`);
      return Promise.resolve(connected.delete(clientId));
    },
    recovered: () => events.push('recovered'),
  });
  if (!await cluster.start(10_000)) throw new Error(`replica ${id}: Redis not reachable`);
  // The bus reads from the stream's end as of its first read: give it a moment to get there.
  await new Promise((r) => setTimeout(r, 300));
  return {
    id, cluster, link: cluster.link, bus: cluster.bus, retained: cluster.retained, sessions: cluster.sessions, shared: cluster.shared,
    received, retainedView, connected, takeovers, events,
    close: () => cluster.stop(),
  };
}

export function envelopeOf(bus: Bus, topic: string, payload: string | Buffer, overrides: Partial<Envelope> = {}): Envelope {
  return bus.stamp({
    senderId: 'client-1', topic, payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload), qos: 1, retain: false,
    expiresAt: 0, properties: undefined, sharedPicks: undefined, ...overrides,
  });
}

/** Polls until `check` is true or fails after `timeoutMs`. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A redis-server of our own on a fixed port, so it can be killed and started again at the same address. */
export class PrivateRedis {
  readonly address: RedisAddress;
  private readonly dir: string;
  private service: ServiceProcess | undefined;

  constructor(dir: string, port: number) {
    this.dir = dir;
    this.address = { host: '127.0.0.1', port, password: randomBytes(12).toString('hex') };
  }

  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const { port, password } = this.address;
    this.service = spawnService({
      name: `redis-${port}`,
      command: 'redis-server',
      logFile: join(this.dir, 'redis.log'),
      args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir,
        '--requirepass', password, '--daemonize', 'no', '--logfile', ''],
    });
    const probe = adminClient(this.address);
    try {
      await waitUntilReady(this.service, async () => (await probe.ping()) === 'PONG', 20_000);
    } finally {
      probe.disconnect();
    }
  }

  /** SIGKILL: a crash, not a shutdown (memory-only: everything is gone). */
  async kill(): Promise<void> {
    if (this.service === undefined) return;
    process.kill(this.service.pid, 'SIGKILL');
    await this.service.stop(100);
    this.service = undefined;
  }
}
