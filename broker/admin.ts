// Admin HTTP port: /healthz (process alive), /readyz (listeners up, not draining, state backend
// reachable or only briefly not: broker/replication.ts), /metrics.
import { createServer } from 'node:http';
import { closeServer, listenOn } from './listeners/net.ts';
import type { BrokerMetrics } from './metrics.ts';

/** What the admin port reads of the broker. */
export interface AdminTarget {
  /** undefined when ready, else what /readyz says with its 503. */
  readonly notReadyReason: string | undefined;
  readonly metrics: BrokerMetrics;
}

export interface AdminServer {
  port: number;
  close(): Promise<void>;
}

export async function startAdmin(broker: AdminTarget, host: string, port: number): Promise<AdminServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const reason = broker.notReadyReason;
      res.writeHead(reason === undefined ? 200 : 503, { 'content-type': 'text/plain' }).end(reason === undefined ? 'ready\n' : `${reason}\n`);
    } else if (path === '/metrics') {
      broker.metrics.registry.metrics().then((text) => {
        res.writeHead(200, { 'content-type': broker.metrics.registry.contentType }).end(text);
      }, (err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${(err as Error).message}\n`);
      });
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  const bound = await listenOn(server, host, port);
  return { port: bound, close: () => { server.closeAllConnections(); return closeServer(server); } };
}
