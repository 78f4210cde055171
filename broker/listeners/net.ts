// What every listener shares: the narrow view of the broker a listener gets (ListenerHost), the
// running-listener record, and the socket helpers. Protocol listeners import this file, never
// listeners/index.ts (which imports them) nor server.ts.
import type { Server } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { VerifiedCertificate } from '../auth/hook.ts';
import type { BrokerConfig, ListenerConfig } from '../config.ts';
import type { BrokerMetrics } from '../metrics.ts';
import type { ListenerInfo } from '../services.ts';

/** What a listener may touch of the broker: limits, logs, metrics, and the door sockets go through. */
export interface ListenerHost {
  readonly config: BrokerConfig;
  readonly log: Logger;
  readonly metrics: BrokerMetrics;
  accept(socket: Duplex, listener: ListenerInfo, peerHost: string, certificate: VerifiedCertificate | undefined): void;
}

export interface RunningListener {
  name: string;
  protocol: ListenerConfig['protocol'];
  host: string;
  port: number;
  close(): Promise<void>;
}

/** The listener as connections see it. */
export function listenerInfo(config: ListenerConfig): ListenerInfo {
  return { name: config.name, anonymousBypassesChain: config.allowAnonymous === true };
}

/** `::ffff:127.0.0.1` → `127.0.0.1` */
export function peerHostOf(address: string | undefined): string {
  if (address === undefined) return '';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

export function listenOn(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(new Error(`cannot listen on ${host}:${port}: ${err.message}`));
    server.once('error', onError);
    server.listen({ host, port, backlog: 1024 }, () => {
      server.off('error', onError);
      const addr = server.address();
      resolve(typeof addr === 'object' && addr !== null ? addr.port : port);
    });
  });
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
