// $SYS statistics topics, published retained by the broker itself (clients may read, never write).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrokerMetrics } from './metrics.ts';
import { newMessage } from './router/message.ts';
import type { Message } from './router/message.ts';

/** What the $SYS topics report, and where they go. */
export interface SysSource {
  readonly startedAt: number;
  readonly connectedCount: number;
  readonly sessions: ReadonlyMap<string, unknown>;
  readonly subscriptionCount: number;
  readonly retained: { readonly size: number };
  readonly metrics: BrokerMetrics;
  /** With replicas, this one's id (`$SYS/broker/replica`); $ topics stay on their replica. */
  readonly replicaId: string | undefined;
  route(msg: Message, publisher: undefined): unknown;
}

/**
 * The version in the nearest package.json above this file: `broker/` in the repository,
 * `/app/dist/broker/` in the image (images/broker/Dockerfile copies package.json to /app), so
 * the lookup walks up rather than assuming one depth.
 */
function packageVersion(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
    if (dirname(dir) === dir) throw new Error('enclave-broker: no package.json above the broker code, so no version to report');
  }
}

const VERSION = `enclave-broker ${packageVersion()}`;

export class SysPublisher {
  private readonly timer: NodeJS.Timeout;
  private readonly broker: SysSource;

  constructor(broker: SysSource, intervalMs: number) {
    this.broker = broker;
    this.publish('$SYS/broker/version', VERSION);
    if (broker.replicaId !== undefined) this.publish('$SYS/broker/replica', broker.replicaId);
    this.tick();
    this.timer = setInterval(() => this.tick(), Math.max(intervalMs, 1000));
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private tick(): void {
    const b = this.broker;
    const m = b.metrics;
    this.publish('$SYS/broker/uptime', `${Math.floor((Date.now() - b.startedAt) / 1000)} seconds`);
    this.publish('$SYS/broker/clients/connected', String(b.connectedCount));
    this.publish('$SYS/broker/clients/total', String(b.sessions.size));
    this.publish('$SYS/broker/messages/received', String(m.messagesIn));
    this.publish('$SYS/broker/messages/sent', String(m.messagesOut));
    this.publish('$SYS/broker/bytes/received', String(m.bytesIn));
    this.publish('$SYS/broker/bytes/sent', String(m.bytesOut));
    this.publish('$SYS/broker/subscriptions/count', String(b.subscriptionCount));
    this.publish('$SYS/broker/retained messages/count', String(b.retained.size));
    let dropped = 0;
    for (const n of m.drops.values()) dropped += n;
    this.publish('$SYS/broker/messages/dropped', String(dropped));
  }

  private publish(topic: string, value: string): void {
    this.broker.route(newMessage({ topic, payload: Buffer.from(value), qos: 0, retain: true }, undefined, 0, '', 0), undefined);
  }
}
