// Plain MQTT over TCP.
import { createServer } from 'node:net';
import type { ListenerConfig } from '../config.ts';
import type { Broker } from '../server.ts';
import { closeServer, listenOn, peerHostOf } from './index.ts';
import type { RunningListener } from './index.ts';

export async function startTcpListener(broker: Broker, config: ListenerConfig): Promise<RunningListener> {
  const info = { name: config.name, allowAnonymous: config.allowAnonymous === true };
  const server = createServer({ noDelay: true }, (socket) => {
    broker.accept(socket, info, peerHostOf(socket.remoteAddress), undefined);
  });
  const port = await listenOn(server, config.host, config.port);
  return { name: config.name, protocol: config.protocol, host: config.host, port, close: () => closeServer(server) };
}
