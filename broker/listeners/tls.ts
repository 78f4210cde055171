// MQTT over TLS 1.2/1.3 with client certificates none | optional | required.
import { createServer } from 'node:tls';
import type { TlsOptions, TLSSocket } from 'node:tls';
import type { ListenerConfig, ListenerTlsConfig } from '../config.ts';
import type { Broker } from '../server.ts';
import { verifiedPeer } from './cert-info.ts';
import { handshakeGate } from './handshakes.ts';
import { closeServer, listenOn, peerHostOf } from './index.ts';
import type { RunningListener } from './index.ts';
import { readTlsMaterial, watchTlsMaterial } from './tls-material.ts';

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

export async function startTlsListener(broker: Broker, config: ListenerConfig): Promise<RunningListener> {
  const tls = config.tls!;
  const info = { name: config.name, allowAnonymous: config.allowAnonymous === true };
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
  const stopWatching = watchTlsMaterial(tls, () => {
    readTlsMaterial(tls).then((material) => {
      server.setSecureContext({ ...tlsServerOptions(tls), ...material });
      broker.log.info({ listener: config.name }, 'TLS material reloaded');
    }, (err: unknown) => broker.log.error({ listener: config.name, err: (err as Error).message }, 'TLS reload failed; keeping the old material'));
  });
  const port = await listenOn(server, config.host, config.port);
  return {
    name: config.name, protocol: config.protocol, host: config.host, port,
    close: async () => {
      stopWatching();
      await closeServer(server);
    },
  };
}
