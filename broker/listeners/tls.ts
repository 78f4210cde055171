// MQTT over TLS 1.2/1.3 with client certificates none | optional | required.
import { createServer } from 'node:tls';
import type { TlsOptions, TLSSocket } from 'node:tls';
import type { ListenerConfig, ListenerTlsConfig } from '../config.ts';
import { verifiedPeer } from './cert-info.ts';
import { handshakeGate } from './handshakes.ts';
import { closeServer, listenerInfo, listenOn, peerHostOf } from './net.ts';
import type { ListenerHost, RunningListener } from './net.ts';
import { readTlsMaterial, reloadTlsOnChange } from './tls-material.ts';

export function tlsServerOptions(tls: ListenerTlsConfig): TlsOptions {
  return {
    minVersion: tls.minVersion ?? 'TLSv1.2',
    requestCert: tls.clientAuth !== 'none',
    // optional: the handshake succeeds without a certificate; a presented one must still verify (below)
    rejectUnauthorized: tls.clientAuth === 'required',
  };
}

/** For clientAuth optional: a certificate that was presented but did not verify ends the connection. */
export function acceptTlsPeer(socket: TLSSocket, tls: ListenerTlsConfig): boolean {
  if (tls.clientAuth !== 'optional' || socket.authorized) return true;
  return socket.getPeerX509Certificate() === undefined;
}

export async function startTlsListener(broker: ListenerHost, config: ListenerConfig): Promise<RunningListener> {
  const tls = config.tls!;
  const info = listenerInfo(config);
  const gate = handshakeGate(broker);
  const server = createServer({ ...tlsServerOptions(tls), ...(await readTlsMaterial(tls)) }, (socket) => {
    gate.done(socket);
    if (!acceptTlsPeer(socket, tls)) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    broker.accept(socket, info, peerHostOf(socket.remoteAddress), verifiedPeer(socket));
  });
  gate.guard(server);
  server.on('tlsClientError', (err) => broker.log.debug({ listener: config.name, err: err.message }, 'TLS handshake failed'));
  const stopWatching = reloadTlsOnChange(server, config.name, tls, { log: broker.log, options: tlsServerOptions(tls) });
  const port = await listenOn(server, config.host, config.port);
  return {
    name: config.name, protocol: config.protocol, host: config.host, port,
    close: async () => {
      stopWatching();
      await closeServer(server);
    },
  };
}
