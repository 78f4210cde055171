// A replica that goes away while a persistent QoS 1 subscriber is connected to it, with QoS 1
// traffic from a publisher on another replica: killed (SIGKILL, a crash) or stopped (SIGTERM, a
// rollout). The subscriber reconnects to the surviving replica with the same client id and
// resumes; every message the publisher got a PUBACK for arrives (lost = 0), duplicates are counted
// and reported. Two broker processes on the world's Redis, MQTT.js clients.
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { sleep } from '../../support/wait.ts';
import { BrokerReplica, replicaFixture, startReplicas } from './broker-replicas.ts';
import { testPrefix, until } from './replicas.ts';

const { redis, replicas, clients, client } = replicaFixture();

interface Run {
  sent: number;
  acked: Set<number>;
  received: number[];
}

/**
 * Publisher on `survivor`, persistent QoS 1 subscriber on `doomed`; `end` is applied to `doomed`
 * after 1 s of traffic; the subscriber then resumes on `survivor`; traffic runs 2 s more.
 */
async function throughLoss(survivor: BrokerReplica, doomed: BrokerReplica, end: () => Promise<unknown>, clientId: string): Promise<Run> {
  const run: Run = { sent: 0, acked: new Set(), received: [] };
  const opts = { clientId, protocolVersion: 5 as const, clean: false, properties: { sessionExpiryInterval: 600 }, reconnectPeriod: 0 };
  const onMessage = (_t: string, payload: Buffer): void => {
    run.received.push(Number(payload.toString()));
  };
  const sub = await client(doomed, opts);
  sub.on('message', onMessage);
  await sub.subscribeAsync('crash/#', { qos: 1 });
  await sleep(200);
  const pub = await client(survivor, { clientId: `${clientId}-pub`, protocolVersion: 5 });
  let stop = false;
  const traffic = (async () => {
    while (!stop) {
      const window = Array.from({ length: 10 }, () => run.sent++);
      await Promise.all(window.map((i) => pub.publishAsync('crash/t', String(i), { qos: 1 }).then(() => run.acked.add(i), () => undefined)));
      await sleep(10);
    }
  })();
  await sleep(1_000);
  const closed = new Promise<void>((resolve) => sub.once('close', () => resolve()));
  await end();
  await closed;
  // Reconnect at once to the survivor with the same client id: the session resumes there.
  // The handler is in place before CONNACK: resent messages may arrive in the same read.
  const back = mqtt.connect({ host: '127.0.0.1', port: survivor.port, ...opts });
  clients.push(back);
  back.on('message', onMessage);
  await new Promise<void>((resolve, reject) => {
    back.once('connect', () => resolve());
    back.once('error', reject);
  });
  await sleep(2_000);
  stop = true;
  await traffic;
  const acked = [...run.acked];
  await until(() => acked.every((i) => run.received.includes(i)), 10_000, 'every acknowledged message').catch(() => undefined);
  return run;
}

function report(what: string, run: Run): { lost: number; duplicates: number } {
  const unique = new Set(run.received);
  const lost = [...run.acked].filter((i) => !unique.has(i)).length;
  const duplicates = run.received.length - unique.size;
  console.log(`${what}: sent ${run.sent}, acknowledged ${run.acked.size}, received ${run.received.length}, lost ${lost}, duplicates ${duplicates}`);
  return { lost, duplicates };
}

describe('a replica goes away under a persistent QoS 1 subscriber', () => {
  it('SIGKILL mid-traffic: the subscriber resumes on the other replica, no acknowledged message lost, duplicates bounded', async () => {
    const rs = await startReplicas(['crash-0', 'crash-1'], { redis: redis(), keyPrefix: testPrefix('wired-crash') });
    replicas.push(...rs);
    const run = await throughLoss(rs[0]!, rs[1]!, () => rs[1]!.kill(), 'crash-sub');
    const { lost, duplicates } = report('SIGKILL', run);
    expect(lost).toBe(0);
    // Duplicates come from the replay window (the dead owner's last heartbeat, ≤ 2 s, plus 1 s).
    expect(duplicates).toBeLessThan(run.acked.size);
  });

  it('SIGTERM mid-traffic (graceful stop): the session is released and resumes on the other replica at once', async () => {
    const rs = await startReplicas(['term-0', 'term-1'], { redis: redis(), keyPrefix: testPrefix('wired-term'), takeoverTimeoutMs: 10_000 });
    replicas.push(...rs);
    const started = Date.now();
    const run = await throughLoss(rs[0]!, rs[1]!, () => rs[1]!.terminate(), 'term-sub');
    const { lost } = report('SIGTERM', run);
    expect(lost).toBe(0);
    // Released at stop: the claim on the survivor did not wait for the 10 s takeover timeout.
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(rs[0]!.logLines().some((l) => l.msg === 'session taken over from another replica')).toBe(false);
  });
});
