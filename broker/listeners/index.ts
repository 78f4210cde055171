// Starts one configured listener of any protocol and hands its sockets to the broker.
import type { ListenerConfig } from '../config.ts';
import type { Broker } from '../server.ts';
import { startTcpListener } from './tcp.ts';
import { startTlsListener } from './tls.ts';
import { startWsListener } from './ws.ts';

export interface RunningListener {
  name: string;
  protocol: ListenerConfig['protocol'];
  host: string;
  port: number;
  close(): Promise<void>;
}

export function startListener(broker: Broker, config: ListenerConfig): Promise<RunningListener> {
  switch (config.protocol) {
    case 'mqtt':
      return startTcpListener(broker, config);
    case 'mqtts':
      return startTlsListener(broker, config);
    case 'ws':
    case 'wss':
      return startWsListener(broker, config);
  }
}

/** `::ffff:127.0.0.1` → `127.0.0.1` */
export function peerHostOf(address: string | undefined): string {
  if (address === undefined) return '';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

export function listenOn(server: import('node:net').Server, host: string, port: number): Promise<number> {
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

export function closeServer(server: import('node:net').Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
