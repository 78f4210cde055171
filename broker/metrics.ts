// Prometheus metrics of one broker (own registry, so tests can run several brokers in a process).
// Hot-path counters are plain numbers folded into prom-client at scrape time.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class BrokerMetrics {
  readonly registry: Registry;
  // Plain counters bumped on the hot path; read by collect() callbacks.
  messagesIn = 0;
  messagesOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** Retained PUBLISHes delivered but not kept (retained store full or over `maxRetainedBytes`). */
  retainedNotStored = 0;
  /** Times a publisher's connection stopped reading because its message was queued for a session over half full. */
  publishersHeld = 0;
  readonly drops = new Map<string, number>();
  readonly latency: Histogram;
  readonly connectionsTotal: Counter<'listener'>;
  readonly authDecisions: Counter<'action' | 'result'>;
  readonly disconnects: Counter<'reason'>;
  readonly handshakesAborted: Counter<'reason'>;
  private latencySample = 0;

  constructor(registry: Registry | undefined, gauges: { connections: () => number; sessions: () => number; subscriptions: () => number; retained: () => number; retainedBytes: () => number }) {
    this.registry = registry ??= new Registry();
    collectDefaultMetrics({ register: registry, prefix: 'enclave_broker_process_' });
    const counter = (name: string, help: string, read: () => number): void => {
      const self = new Counter({ name, help, registers: [registry], collect() {
        self.reset();
        self.inc(read());
      } });
    };
    counter('enclave_broker_messages_received_total', 'PUBLISH packets received from clients', () => this.messagesIn);
    counter('enclave_broker_messages_sent_total', 'PUBLISH packets sent to clients', () => this.messagesOut);
    counter('enclave_broker_bytes_received_total', 'Bytes read from client sockets', () => this.bytesIn);
    counter('enclave_broker_bytes_sent_total', 'Bytes written to client sockets', () => this.bytesOut);
    counter('enclave_broker_publishers_held_total', 'Times a publisher\'s connection stopped reading: its message was queued for a connected session whose queue is over half full', () => this.publishersHeld);
    counter('enclave_broker_retained_not_stored_total', 'Retained messages delivered but not kept: retained store full or over maxRetainedBytes', () => this.retainedNotStored);
    const drops = new Counter({ name: 'enclave_broker_messages_dropped_total', help: 'Messages dropped, by reason', labelNames: ['reason'], registers: [registry], collect: () => {
      drops.reset();
      for (const [reason, n] of this.drops) drops.inc({ reason }, n);
    } });
    const gauge = (name: string, help: string, read: () => number): void => {
      const g = new Gauge({ name, help, registers: [registry], collect() {
        g.set(read());
      } });
    };
    gauge('enclave_broker_connections', 'Open client connections', gauges.connections);
    gauge('enclave_broker_sessions', 'Sessions (online and offline)', gauges.sessions);
    gauge('enclave_broker_subscriptions', 'Subscriptions', gauges.subscriptions);
    gauge('enclave_broker_retained_messages', 'Retained messages', gauges.retained);
    gauge('enclave_broker_retained_bytes', 'Bytes held by retained messages: payload, topic, properties, per-message overhead (bounded by maxRetainedBytes)', gauges.retainedBytes);
    this.connectionsTotal = new Counter({ name: 'enclave_broker_connections_total', help: 'Accepted connections', labelNames: ['listener'], registers: [registry] });
    this.authDecisions = new Counter({ name: 'enclave_broker_auth_decisions_total', help: 'Authentication and authorization decisions', labelNames: ['action', 'result'], registers: [registry] });
    this.disconnects = new Counter({ name: 'enclave_broker_disconnects_total', help: 'Connections closed, by reason', labelNames: ['reason'], registers: [registry] });
    this.handshakesAborted = new Counter({
      name: 'enclave_broker_handshakes_aborted_total',
      help: 'TLS and WebSocket handshakes cut: too many in progress (limit) or not finished in handshakeTimeoutMs (timeout)',
      labelNames: ['reason'],
      registers: [registry],
    });
    this.latency = new Histogram({
      name: 'enclave_broker_publish_to_deliver_seconds',
      help: 'Time from PUBLISH arrival to the write of the first delivery (sampled 1 in 16)',
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05],
      registers: [registry],
    });
  }

  drop(reason: string): void {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + 1);
  }

  /** Samples 1 in 16 deliveries so the histogram stays off the hot path. */
  observeDelivery(receivedAt: number): void {
    if ((++this.latencySample & 15) !== 0 || receivedAt === 0) return;
    this.latency.observe((performance.now() - receivedAt) / 1000);
  }
}
