// The state layer alone, without the broker around it: two `Cluster` instances in one process on
// the bench's Redis, replica A publishing envelopes, replica B receiving them and doing the QoS 1
// write-through a persistent subscriber's session does (in-flight record before delivery, removed
// at the ack). Not an MQTT number — no sockets to clients — but the Redis cost and the
// cross-replica latency (publish → in-flight record stored on the subscriber's replica, the moment
// its PUBLISH would be written) the broker adds on top of its local path.
import { Cluster } from '../../broker/cluster/cluster.ts';
import type { Envelope } from '../../broker/cluster/envelope.ts';
import type { PrivateRedis } from './run.ts';

export interface LayerResult {
  name: string;
  messages: number;
  msgPerSec: number;
  p50Ms: number;
  p99Ms: number;
  lost: number;
  /** CPU of this process (both replicas) per message. */
  processUsPerMsg: number;
}

function replica(id: string, redis: PrivateRedis, onMessage: (e: Envelope) => void): Cluster {
  return new Cluster({
    replicaId: id, maxRetainedBytes: 1 << 26,
    link: { host: '127.0.0.1', port: redis.port, password: redis.password, keyPrefix: 'enclave:layer:' },
  }, { message: onMessage, retained: () => undefined, takeover: () => Promise.resolve(false) });
}

const quantile = (sorted: number[], f: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * f))] ?? NaN;

/** `rate` 0 = as fast as a window of 256 outstanding publishes allows. */
async function once(redis: PrivateRedis, name: string, total: number, rate: number): Promise<LayerResult> {
  await redis.client.flushall();
  const latencies: number[] = [];
  const holder: { receiver?: Cluster } = {};
  let epoch = 0;
  const b = replica('layer-b', redis, (e) => {
    const id = (e.seq % 65535) + 1;
    const record = { stage: 'publish' as const, qos: 1 as const, retain: false, subscriptionIds: [], message: e };
    // Write-through as the subscriber's session will: the in-flight record is in Redis before the
    // PUBLISH goes to the client (the moment latency is taken), and removed at the ack, later.
    const sessions = holder.receiver!.sessions;
    void sessions.setInflight('sub-1', epoch, id, record)
      .then(() => {
        latencies.push(performance.now() - e.payload.readDoubleBE(0));
        return sessions.deleteInflight('sub-1', epoch, id);
      })
      .catch(() => undefined);
  });
  holder.receiver = b;
  const a = replica('layer-a', redis, () => undefined);
  await Promise.all([a.start(), b.start()]);
  epoch = (await b.sessions.claim('sub-1', true)).epoch;
  await new Promise((r) => setTimeout(r, 300));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await publishAll(a, total, rate);
  const deadline = performance.now() + 10_000;
  while (latencies.length < total && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  const elapsed = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await Promise.all([a.stop(), b.stop()]);
  const sorted = latencies.sort((x, y) => x - y);
  return {
    name, messages: latencies.length, msgPerSec: latencies.length / (elapsed / 1000), p50Ms: quantile(sorted, 0.5), p99Ms: quantile(sorted, 0.99),
    lost: total - latencies.length, processUsPerMsg: (cpu.user + cpu.system) / Math.max(1, latencies.length),
  };
}

function envelope(a: Cluster, seq: number): Envelope {
  const payload = Buffer.alloc(64);
  payload.writeDoubleBE(performance.now(), 0);
  return a.bus.stamp({ senderId: `pub-${seq % 10}`, topic: 'ha/pair/0', payload, qos: 1, retain: false, expiresAt: 0, properties: undefined, sharedPicks: undefined });
}

async function publishAll(a: Cluster, total: number, rate: number): Promise<void> {
  const t0 = performance.now();
  let sent = 0;
  let inFlight = 0;
  while (sent < total) {
    const due = rate === 0 ? total : Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate));
    while (sent < due && inFlight < 256) {
      inFlight++;
      void a.bus.publish(envelope(a, sent)).finally(() => inFlight--);
      sent++;
    }
    await new Promise((r) => (rate === 0 ? setImmediate(r) : setTimeout(r, 1)));
  }
}

export async function measureLayer(redis: PrivateRedis, quick: boolean): Promise<LayerResult[]> {
  await once(redis, 'warm-up (JIT)', 10_000, 0); // discarded: the first run pays for compilation
  return [
    await once(redis, 'throughput (window 256)', quick ? 20_000 : 60_000, 0),
    await once(redis, 'latency at 5,000 msg/s', quick ? 10_000 : 20_000, 5_000),
  ];
}

export function layerTable(results: LayerResult[]): string {
  const rows = results.map((r) => `| ${r.name.padEnd(24)} | ${r.msgPerSec.toFixed(0).padStart(6)} | ${r.p50Ms.toFixed(2).padStart(6)} | ${r.p99Ms.toFixed(2).padStart(6)} | ${String(r.lost).padStart(4)} | ${r.processUsPerMsg.toFixed(1).padStart(19)} |`);
  return [
    'State layer alone (broker/cluster, 2 replicas in one process: bus publish → other replica → in-flight write + delete; no MQTT sockets)',
    '| run                      | msg/s  | p50 ms | p99 ms | lost | process µs/msg (2×) |',
    '|--------------------------|--------|--------|--------|------|---------------------|',
    ...rows,
  ].join('\n');
}
