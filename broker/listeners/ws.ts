// MQTT over WebSocket (ws) and secure WebSocket (wss), subprotocol `mqtt` (or `mqttv3.1`, what
// older clients offer). An upgrade that offers neither is refused with HTTP 400 before any MQTT
// byte is read: every MQTT client must offer it [MQTT-6.0.0-3], and a page that did not ask for
// MQTT must not be handed a socket into the broker.
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { WebSocketServer, createWebSocketStream } from 'ws';
import type { ListenerConfig } from '../config.ts';
import { verifiedPeer } from './cert-info.ts';
import { handshakeGate } from './handshakes.ts';
import { closeServer, listenerInfo, listenOn, peerHostOf } from './net.ts';
import type { ListenerHost, RunningListener } from './net.ts';
import { acceptTlsPeer, tlsServerOptions } from './tls.ts';
import { readTlsMaterial, reloadTlsOnChange } from './tls-material.ts';

/** The subprotocol to answer for a Sec-WebSocket-Protocol request header, undefined when MQTT is not offered. */
export function mqttSubprotocol(header: string | undefined): 'mqtt' | 'mqttv3.1' | undefined {
  if (header === undefined) return undefined;
  const offered = header.split(',').map((p) => p.trim());
  return offered.includes('mqtt') ? 'mqtt' : offered.includes('mqttv3.1') ? 'mqttv3.1' : undefined;
}

export async function startWsListener(broker: ListenerHost, config: ListenerConfig): Promise<RunningListener> {
  const tls = config.tls;
  const info = listenerInfo(config);
  const https = tls === undefined ? undefined : createHttpsServer({ ...tlsServerOptions(tls), ...(await readTlsMaterial(tls)) });
  const server = https ?? createHttpServer();
  // The handshake is TCP accept → (TLS) → HTTP upgrade: over when the WebSocket is open.
  const gate = handshakeGate(broker);
  gate.guard(server);
  const wss = new WebSocketServer({
    server,
    path: config.path ?? '/mqtt',
    maxPayload: broker.config.limits.maxPacketSize + 8,
    perMessageDeflate: false,
    verifyClient: (info, done) => {
      if (mqttSubprotocol(info.req.headers['sec-websocket-protocol']) !== undefined) done(true);
      else done(false, 400, 'MQTT over WebSocket needs the subprotocol "mqtt" (Sec-WebSocket-Protocol)');
    },
    handleProtocols: (protocols) => mqttSubprotocol([...protocols].join(',')) ?? false,
  });
  wss.on('connection', (ws, req) => {
    gate.done(req.socket);
    const socket = req.socket as TLSSocket;
    if (tls !== undefined && !acceptTlsPeer(socket, tls)) {
      ws.terminate();
      return;
    }
    const stream = createWebSocketStream(ws);
    broker.accept(stream, info, peerHostOf(req.socket.remoteAddress), tls === undefined ? undefined : verifiedPeer(socket));
  });
  const stopWatching = https === undefined || tls === undefined
    ? (): void => undefined
    : reloadTlsOnChange(https, config.name, tls, { log: broker.log, options: tlsServerOptions(tls) });
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
