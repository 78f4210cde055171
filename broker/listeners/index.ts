// Starts one configured listener of any protocol and hands its sockets to the broker.
import type { ListenerConfig } from '../config.ts';
import type { ListenerHost, RunningListener } from './net.ts';
import { startTcpListener } from './tcp.ts';
import { startTlsListener } from './tls.ts';
import { startWsListener } from './ws.ts';

export type { ListenerHost, RunningListener } from './net.ts';

export function startListener(host: ListenerHost, config: ListenerConfig): Promise<RunningListener> {
  switch (config.protocol) {
    case 'mqtt':
      return startTcpListener(host, config);
    case 'mqtts':
      return startTlsListener(host, config);
    case 'ws':
    case 'wss':
      return startWsListener(host, config);
  }
}
