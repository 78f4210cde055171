// MQTT over WebSocket (ws) and secure WebSocket (wss), subprotocol `mqtt`. [MQTT-6.0.0]
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Server as HttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { WebSocketServer, createWebSocketStream } from 'ws';
import type { ListenerConfig } from '../config.ts';
import type { Broker } from '../server.ts';
import { verifiedPeer } from './cert-info.ts';
import { closeServer, listenOn, peerHostOf } from './index.ts';
import type { RunningListener } from './index.ts';
import { acceptTlsPeer, tlsServerOptions } from './tls.ts';
import { readTlsMaterial, watchTlsMaterial } from './tls-material.ts';

export async function startWsListener(broker: Broker, config: ListenerConfig): Promise<RunningListener> {
  const tls = config.tls;
  const info = { name: config.name, allowAnonymous: config.allowAnonymous === true };
  const server = tls === undefined
    ? createHttpServer()
    : createHttpsServer({ ...tlsServerOptions(tls), ...(await readTlsMaterial(tls)) });
  const wss = new WebSocketServer({
    server,
    path: config.path ?? '/mqtt',
    maxPayload: broker.config.limits.maxPacketSize + 8,
    perMessageDeflate: false,
    handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false),
  });
  wss.on('connection', (ws, req) => {
    const socket = req.socket as TLSSocket;
    if (tls !== undefined && !acceptTlsPeer(socket, tls)) {
      ws.terminate();
      return;
    }
    const stream = createWebSocketStream(ws);
    broker.accept(stream, info, peerHostOf(req.socket.remoteAddress), tls === undefined ? undefined : verifiedPeer(socket));
  });
  let stopWatching = (): void => undefined;
  if (tls !== undefined) {
    stopWatching = watchTlsMaterial(tls, () => {
      readTlsMaterial(tls).then((material) => {
        (server as HttpsServer).setSecureContext({ ...tlsServerOptions(tls), ...material });
        broker.log.info({ listener: config.name }, 'TLS material reloaded');
      }, (err: unknown) => broker.log.error({ listener: config.name, err: (err as Error).message }, 'TLS reload failed; keeping the old material'));
    });
  }
  const port = await listenOn(server, config.host, config.port);
  return {
    name: config.name, protocol: config.protocol, host: config.host, port,
    close: async () => {
      stopWatching();
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.closeAllConnections();
      await closeServer(server);
    },
  };
}
