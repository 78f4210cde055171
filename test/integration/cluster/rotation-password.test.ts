// A rotated Redis password reaches running replicas without a restart. Two real broker processes
// read it from one mounted-Secret-like file on a redis-server of the test's own; Redis' password is
// changed (CONFIG SET requirepass), the replicas' connections are dropped, Redis refuses the old
// password (the links stay down), then the file is rewritten:
// the same processes reconnect with the new password and their clients get cross-replica messages
// again; later reconnects use it too.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import type { MqttClient } from 'mqtt';
import { Redis } from 'ioredis';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../support/paths.ts';
import { freePort } from '../../support/process.ts';
import { PrivateRedis, testPrefix, until } from './replicas.ts';

let dir: string;
const servers: PrivateRedis[] = [];
const children: ChildProcess[] = [];
const clients: MqttClient[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cluster-rotation-'));
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
  for (const c of children) c.kill('SIGKILL');
  for (const s of servers) await s.kill();
  await rm(dir, { recursive: true, force: true });
});

interface Replica {
  child: ChildProcess;
  port: number;
  adminPort: number;
  log: () => string;
}

/** A broker process whose state config reads the Redis password from `passwordFile`. */
async function replica(id: string, redisPort: number, passwordFile: string, keyPrefix: string): Promise<Replica> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const config = join(dir, `${id}.yaml`);
  await writeFile(config, stringify({
    name: 'rotation-test',
    listeners: [{ name: 'default', protocol: 'mqtt', host: '127.0.0.1', port, allowAnonymous: true }],
    admin: { host: '127.0.0.1', port: adminPort },
    authentication: { chain: [], allowAnonymous: true },
    authorization: { chain: [], noMatch: 'allow' },
    logging: { level: 'info' },
    state: { backend: 'redis', redis: { host: '127.0.0.1', port: redisPort, passwordFile, keyPrefix } },
  }));
  const child = spawn(process.execPath, [join(repoRoot, 'broker', 'main.ts'), '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ENCLAVE_REPLICA_ID: id },
  });
  children.push(child);
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  await until(() => out.includes('"broker started"'), 20_000, `${id} started`);
  return { child, port, adminPort, log: () => out };
}

/** Redis' answer to AUTH with `password` on a new connection, as bytes on the wire. */
async function authReply(port: number, password: string): Promise<string> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.write(`AUTH ${password}\r\n`);
  const [reply] = await once(socket, 'data') as [Buffer];
  socket.destroy();
  return reply.toString();
}

async function backendUp(r: Replica): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${r.adminPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('enclave_state_backend_up '));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

async function client(r: Replica, clientId: string, clean = true): Promise<MqttClient> {
  const c = await mqtt.connectAsync({ host: '127.0.0.1', port: r.port, clientId, clean, reconnectPeriod: 0 });
  clients.push(c);
  return c;
}

/** Publishes `n` QoS 1 messages on `a`; resolves once `received` holds all of them. */
async function crossReplica(pub: MqttClient, received: string[], label: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await pub.publishAsync('rot/t', `${label}-${i}`, { qos: 1 });
  await until(() => Array.from({ length: n }, (_, i) => `${label}-${i}`).every((m) => received.includes(m)), 10_000, `${label} across replicas`);
}

describe('Redis password rotation', () => {
  it('refused after a rotation, the replicas reconnect with the rewritten file: same processes, cross-replica delivery again', async () => {
    const server = new PrivateRedis(join(dir, 'redis'), await freePort());
    servers.push(server);
    await server.start();
    const old = server.address.password;
    const passwordFile = join(dir, 'redis-password');
    await writeFile(passwordFile, `${old}\n`);
    const prefix = testPrefix('rotation');
    const a = await replica('rot-a', server.address.port, passwordFile, prefix);
    const b = await replica('rot-b', server.address.port, passwordFile, prefix);
    const pids = [a.child.pid, b.child.pid];

    const sub = await client(b, 'rot-sub', false);
    const received: string[] = [];
    sub.on('message', (_t, payload) => received.push(payload.toString()));
    await sub.subscribeAsync('rot/t', { qos: 1 });
    const pub = await client(a, 'rot-pub');
    await until(async () => {
      await pub.publishAsync('rot/t', 'probe', { qos: 1 });
      return received.includes('probe');
    }, 10_000, 'the route from a to b');
    await crossReplica(pub, received, 'before', 20);

    // Redis' password changes; connections already authenticated stay. Dropping them makes the
    // replicas reconnect, and Redis refuses the password they still hold.
    const next = randomBytes(12).toString('hex');
    const admin = new Redis({ host: '127.0.0.1', port: server.address.port, password: old, lazyConnect: true, maxRetriesPerRequest: 1 });
    await admin.connect();
    await admin.config('SET', 'requirepass', next);
    await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    admin.disconnect();
    await until(async () => (await backendUp(a)) === 0 && (await backendUp(b)) === 0, 10_000, 'both links down');
    expect(await authReply(server.address.port, old)).toMatch(/^-WRONGPASS/);
    await new Promise((r) => setTimeout(r, 1500));
    expect([await backendUp(a), await backendUp(b)]).toEqual([0, 0]); // still refused: the file is unchanged

    // The Secret's new content lands in the file (kubelet): no restart, the next reconnect uses it.
    await writeFile(passwordFile, `${next}\n`);
    await until(async () => (await backendUp(a)) === 1 && (await backendUp(b)) === 1, 20_000, 'both links up with the new password');
    expect([a.child.pid, b.child.pid]).toEqual(pids);
    expect([a.child.exitCode, b.child.exitCode]).toEqual([null, null]);
    await crossReplica(pub, received, 'after', 20);

    // Every later reconnect uses the new password too.
    const admin2 = new Redis({ host: '127.0.0.1', port: server.address.port, password: next, lazyConnect: true, maxRetriesPerRequest: 1 });
    await admin2.connect();
    await admin2.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    admin2.disconnect();
    await until(async () => (await backendUp(a)) === 1 && (await backendUp(b)) === 1, 20_000, 'up again after a second drop');
    await crossReplica(pub, received, 'again', 20);
    for (const log of [a.log(), b.log()]) {
      expect(log).not.toContain(old);
      expect(log).not.toContain(next);
    }
  });
});
