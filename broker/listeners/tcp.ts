// Plain MQTT over TCP.
import { createServer } from 'node:net';
import type { ListenerConfig } from '../config.ts';
import { closeServer, listenerInfo, listenOn, peerHostOf } from './net.ts';
import type { ListenerHost, RunningListener } from './net.ts';

export async function startTcpListener(broker: ListenerHost, config: ListenerConfig): Promise<RunningListener> {
  const info = listenerInfo(config);
  const server = createServer({ noDelay: true }, (socket) => {
    broker.accept(socket, info, peerHostOf(socket.remoteAddress), undefined);
  });
  const port = await listenOn(server, config.host, config.port);
  return { name: config.name, protocol: config.protocol, host: config.host, port, close: () => closeServer(server) };
}
