// $SYS statistics topics, published retained by the broker itself (clients may read, never write).
import { newMessage } from './router/message.ts';
import type { Broker } from './server.ts';

export class SysPublisher {
  private readonly timer: NodeJS.Timeout;
  private readonly broker: Broker;

  constructor(broker: Broker, intervalMs: number) {
    this.broker = broker;
    this.publish('$SYS/broker/version', 'enclave-broker 0.1.0');
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
    this.broker.route(newMessage(topic, Buffer.from(value), 0, true, undefined, 0, '', 0), undefined);
  }
}
